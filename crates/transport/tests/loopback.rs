//! Real zenoh sessions in peer mode on loopback: typed pub/sub between two sessions, latest-value
//! semantics, garbage payloads, liveliness, authentication and access control.

use std::io::Write;
use std::net::TcpListener;
use std::time::Duration;

use bicameral_msgs::*;
use bicameral_transport::*;

const T: Duration = Duration::from_secs(10);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn chunk(v: f32) -> ActionChunk {
    ActionChunk {
        header: Header::new::<ActionChunk>("r1", 0, 1),
        plan_seq: NO_PLAN,
        plan_stamp_ns: 0,
        obs_stamp_ns: 1,
        t0_ns: 2,
        dt_ns: 10_000_000,
        actions: Tensor::from_f32(&[16, 32], &[v; 512]).unwrap(),
    }
}

fn estop(engage: bool) -> EStop {
    EStop {
        header: Header::new::<EStop>("r1", 0, 0),
        engage,
        operator: "test".into(),
        reason: "test".into(),
    }
}

/// Two peers on loopback; returns (listener, connector) once each sees the other's token.
fn pair(port: u16) -> (Node, Node) {
    let a = Node::open(&ZenohConfig::loopback_listener(port), "r1", "a").unwrap();
    let b = Node::open(&ZenohConfig::loopback_client(port), "r1", "b").unwrap();
    let watch = a.watch_alive().unwrap();
    let _tb = b.declare_alive().unwrap();
    watch.wait_alive("b", T).unwrap();
    (a, b)
}

#[test]
fn typed_pubsub_liveliness_and_garbage_between_two_peers() {
    let port = free_port();
    let (a, b) = pair(port);
    let sub = a.subscribe::<ActionChunk>(a.keys().action_chunk()).unwrap();
    // The subscription must have reached b before b publishes: wait for b to see a's token
    // declared after the subscriber (declarations travel in order on the link).
    let watch_b = b.watch_alive().unwrap();
    let ta = a.declare_alive().unwrap();
    watch_b.wait_alive("a", T).unwrap();

    let mut publisher = b
        .publisher::<ActionChunk>(b.keys().action_chunk(), Qos::Control)
        .unwrap();
    // On a loaded machine the route may settle after the token arrives, and Control QoS drops
    // rather than blocks: publish until the first message gets through (bounded), then the
    // next five must arrive in order, numbered by the publisher.
    let deadline = std::time::Instant::now() + T;
    let first = loop {
        assert!(std::time::Instant::now() < deadline, "nothing ever arrived");
        publisher.put(&mut chunk(-1.0)).unwrap();
        if let Ok(c) = sub.recv_timeout(Duration::from_millis(200)) {
            break c.header.seq;
        }
    };
    // Drain repeats of the probe still in flight.
    while let Ok(c) = sub.recv_timeout(Duration::from_millis(200)) {
        assert_eq!(c.actions.to_f32().unwrap()[7], -1.0);
    }
    let mut sent = Vec::new();
    for i in 0..5 {
        let mut m = chunk(i as f32);
        publisher.put(&mut m).unwrap();
        sent.push(m.header.seq);
    }
    assert!(sent[0] > first, "the publisher numbers its messages");
    for (i, &seq) in sent.iter().enumerate() {
        let c = sub.recv_timeout(T).unwrap();
        assert_eq!(c.header.seq, seq);
        assert_eq!(c.actions.to_f32().unwrap()[7], i as f32);
    }
    assert!(sent.windows(2).all(|w| w[1] == w[0] + 1), "{sent:?}");

    // Garbage on the topic: an error naming the key, then the next good message still arrives.
    b.put_raw(&b.keys().action_chunk(), &[0xc1u8, 0xff, 0x00, 0x13])
        .unwrap();
    let err = sub.recv_timeout(T).unwrap_err();
    assert!(
        matches!(&err, TransportError::Decode { key, .. } if key == "bicameral/r1/s1/action_chunk"),
        "{err}"
    );
    // A message of another type on the topic is refused by kind.
    let mut wrong = b
        .publisher::<EStop>(b.keys().action_chunk(), Qos::Control)
        .unwrap();
    wrong.put(&mut estop(true)).unwrap();
    let err = sub.recv_timeout(T).unwrap_err().to_string();
    assert!(
        err.contains("expected a `action_chunk` message, got a `estop`"),
        "{err}"
    );
    let mut next = chunk(9.0);
    publisher.put(&mut next).unwrap();
    assert_eq!(next.header.seq, sent[4] + 1);
    assert_eq!(sub.recv_timeout(T).unwrap().header.seq, next.header.seq);

    // Liveliness: dropping a's token is seen by b.
    drop(ta);
    watch_b.wait_gone("a", T).unwrap();
}

#[test]
fn latest_value_and_ring_subscribers_keep_only_the_newest() {
    let port = free_port();
    let (a, b) = pair(port);
    let latest = a.latest::<ActionChunk>(a.keys().action_chunk()).unwrap();
    let ring = a
        .buffered::<ActionChunk>(a.keys().action_chunk(), 8)
        .unwrap();
    // A FIFO subscriber on the same session marks when everything has arrived.
    let all = a.subscribe::<ActionChunk>(a.keys().action_chunk()).unwrap();
    let watch_b = b.watch_alive().unwrap();
    let _ta = a.declare_alive().unwrap();
    watch_b.wait_alive("a", T).unwrap();

    let mut publisher = b
        .publisher::<ActionChunk>(b.keys().action_chunk(), Qos::Control)
        .unwrap();
    for i in 0..100 {
        publisher.put(&mut chunk(i as f32)).unwrap();
    }
    // Control QoS drops under congestion (a loaded machine may lose some of the burst): wait
    // until the FIFO has seen the end of the burst, re-publishing when nothing arrives.
    let deadline = std::time::Instant::now() + T;
    let end = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the burst never arrived"
        );
        match all.recv_timeout(Duration::from_millis(300)) {
            Ok(c) if c.header.seq >= 99 => break c.header.seq,
            Ok(_) => {}
            Err(_) => publisher.put(&mut chunk(0.0)).unwrap(),
        }
    };
    // The ring of one holds at most the newest couple (the newest may still be on its way to
    // the ring's callback when the FIFO's arrives).
    let mut got = Vec::new();
    loop {
        let c = latest.recv_timeout(T).unwrap();
        got.push(c.header.seq);
        if c.header.seq >= end {
            break;
        }
    }
    assert!(got.len() <= 2, "latest-value subscriber delivered {got:?}");
    // The ring of eight: the newest eight (or nine, as above), oldest first, never blocking.
    let mut got = Vec::new();
    loop {
        let c = ring.recv_timeout(T).unwrap();
        got.push(c.header.seq);
        if c.header.seq >= end {
            break;
        }
    }
    assert!(
        (8..=9).contains(&got.len()) && got.windows(2).all(|w| w[0] < w[1]),
        "ring subscriber delivered {got:?}"
    );
}

fn auth_files(dir: &std::path::Path) -> std::path::PathBuf {
    let dict = dir.join("users.txt");
    let mut f = std::fs::File::create(&dict).unwrap();
    writeln!(f, "robot:robot-secret").unwrap();
    writeln!(f, "planner:planner-secret").unwrap();
    writeln!(f, "operator:operator-secret").unwrap();
    dict
}

fn peer(port: u16, user: &str, password: &str, dict: &std::path::Path) -> ZenohConfig {
    ZenohConfig {
        connect: vec![format!("tcp/127.0.0.1:{port}")],
        auth: Some(AuthConfig {
            user: user.into(),
            password: password.into(),
            dictionary_file: Some(dict.to_path_buf()),
        }),
        ..Default::default()
    }
}

#[test]
fn access_control_keeps_unauthorized_chunks_away_from_the_robot() {
    let dir = std::env::temp_dir().join(format!("bicameral-acl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dict = auth_files(&dir);
    let port = free_port();
    let robot_cfg = ZenohConfig {
        listen: vec![format!("tcp/127.0.0.1:{port}")],
        auth: Some(AuthConfig {
            user: "robot".into(),
            password: "robot-secret".into(),
            dictionary_file: Some(dict.clone()),
        }),
        acl: Some(AclConfig {
            controllers: vec!["robot".into(), "planner".into()],
            operators: vec!["operator".into()],
        }),
        ..Default::default()
    };
    let robot = Node::open(&robot_cfg, "r1", "robot").unwrap();
    let chunks = robot
        .subscribe::<ActionChunk>(robot.keys().action_chunk())
        .unwrap();
    let estops = robot.subscribe::<EStop>(robot.keys().estop()).unwrap();
    let watch = robot.watch_alive().unwrap();

    let planner = Node::open(
        &peer(port, "planner", "planner-secret", &dict),
        "r1",
        "planner",
    )
    .unwrap();
    let operator = Node::open(
        &peer(port, "operator", "operator-secret", &dict),
        "r1",
        "operator",
    )
    .unwrap();
    let intruder = Node::open(
        &peer(port, "planner", "wrong-password", &dict),
        "r1",
        "intruder",
    )
    .unwrap();
    let _t1 = planner.declare_alive().unwrap();
    let _t2 = operator.declare_alive().unwrap();
    let _t3 = intruder.declare_alive().unwrap();
    watch.wait_alive_all(&["planner", "operator"], T).unwrap();

    // The intruder's password is wrong: it never becomes a peer of the robot.
    let peers: Vec<_> = robot.session().info().peers_zid().wait_peers();
    assert!(peers.contains(&planner.session().zid()));
    assert!(peers.contains(&operator.session().zid()));
    assert!(
        !peers.contains(&intruder.session().zid()),
        "intruder connected"
    );

    // The operator publishes a chunk (denied) and then an e-stop (allowed); the planner a chunk.
    let mut op_chunk = operator
        .publisher::<ActionChunk>(operator.keys().action_chunk(), Qos::Control)
        .unwrap();
    let mut op_estop = operator
        .publisher::<EStop>(operator.keys().estop(), Qos::Control)
        .unwrap();
    let mut intr_chunk = intruder
        .publisher::<ActionChunk>(intruder.keys().action_chunk(), Qos::Control)
        .unwrap();
    for _ in 0..3 {
        op_chunk.put(&mut chunk(0.5)).unwrap();
        intr_chunk.put(&mut chunk(0.7)).unwrap();
    }
    op_estop.put(&mut estop(true)).unwrap();
    let e = estops.recv_timeout(T).unwrap();
    assert!(e.engage);
    let mut pl_chunk = planner
        .publisher::<ActionChunk>(planner.keys().action_chunk(), Qos::Control)
        .unwrap();
    pl_chunk.put(&mut chunk(0.25)).unwrap();
    let c = chunks.recv_timeout(T).unwrap();
    assert_eq!(
        c.actions.to_f32().unwrap()[0],
        0.25,
        "the first chunk the robot received must be the planner's"
    );
    assert!(
        chunks.try_recv().is_none(),
        "no other chunk reached the robot"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Small helpers to keep the tests readable over zenoh's resolvable builders.
trait WaitPeers {
    fn wait_peers(self) -> Vec<zenoh::session::ZenohId>;
}
impl<T: zenoh::Wait<To = I>, I: Iterator<Item = zenoh::session::ZenohId>> WaitPeers for T {
    fn wait_peers(self) -> Vec<zenoh::session::ZenohId> {
        self.wait().collect()
    }
}
