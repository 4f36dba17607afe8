//! The onboard daemon (`bicameral robot`) with a loopback echo device, authentication and an
//! ACL: a controller's chunks move the robot; an operator's chunks never do (its e-stop does
//! stop it); a peer with a wrong password never connects.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bicameral_msgs::*;
use bicameral_runtime::clock::{Clock, WallClock};
use bicameral_transport::{AuthConfig, Node, Qos, ZenohConfig};
use common::{free_port, ok, tmp_dir};

fn peer(port: u16, user: &str, password: &str) -> ZenohConfig {
    ZenohConfig {
        connect: vec![format!("tcp/127.0.0.1:{port}")],
        auth: Some(AuthConfig {
            user: user.into(),
            password: password.into(),
            dictionary_file: None,
        }),
        ..Default::default()
    }
}

/// A 16-step chunk due now that holds joint 0 (left shoulder pitch) at `q0` and every other
/// joint at `rest`.
fn chunk(clock: &WallClock, q0: f32, rest: &[f64]) -> ActionChunk {
    let now = clock.now_ns();
    let row: Vec<f32> = rest
        .iter()
        .enumerate()
        .map(|(i, &x)| if i == 0 { q0 } else { x as f32 })
        .collect();
    let v: Vec<f32> = (0..16).flat_map(|_| row.clone()).collect();
    ActionChunk {
        header: Header::new::<ActionChunk>("r1", 0, now),
        plan_seq: NO_PLAN,
        plan_stamp_ns: 0,
        obs_stamp_ns: now,
        t0_ns: now,
        dt_ns: 50_000_000,
        actions: Tensor::from_f32(&[16, rest.len()], &v).unwrap(),
    }
}

#[test]
fn only_authorized_chunks_move_the_robot() {
    let dir = tmp_dir("robot");
    let dict = dir.join("users.txt");
    let mut f = std::fs::File::create(&dict).unwrap();
    writeln!(f, "robot:r-secret\naction:a-secret\noperator:o-secret").unwrap();
    let port = free_port();
    let cfg = dir.join("robot.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
robot = "r1"
[zenoh]
listen = ["tcp/127.0.0.1:{port}"]
[zenoh.auth]
user = "robot"
password = "r-secret"
dictionary_file = "{dict}"
[zenoh.acl]
controllers = ["robot", "action"]
operators = ["operator"]
[executor]
rate_hz = 500
[hal]
kind = "loopback"
"#,
            dict = dict.display()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_bicameral"))
        .env("BICAMERAL_LOG", "warn")
        .args([
            "robot",
            "--config",
            cfg.to_str().unwrap(),
            "--seconds",
            "12",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let t = Duration::from_secs(20);
    let clock = WallClock::new();
    let action = Node::open(&peer(port, "action", "a-secret"), "r1", "action").unwrap();
    let operator = Node::open(&peer(port, "operator", "o-secret"), "r1", "operator").unwrap();
    let intruder = Node::open(&peer(port, "action", "wrong"), "r1", "intruder").unwrap();
    let states = action
        .latest::<JointState>(action.keys().joint_state())
        .unwrap();
    action
        .watch_alive()
        .unwrap()
        .wait_alive("executor", t)
        .unwrap();
    let first = states.recv_timeout(t).unwrap();
    let rest = first.position.clone();
    let q_start = rest[0];

    // The controller's chunks drive joint 0 to start + 0.3 rad.
    let mut ctl = action
        .publisher::<ActionChunk>(action.keys().action_chunk(), Qos::Control)
        .unwrap();
    let goal = q_start + 0.3;
    let end = Instant::now() + t;
    let mut reached = false;
    while Instant::now() < end && !reached {
        ctl.put(&mut chunk(&clock, goal as f32, &rest)).unwrap();
        if let Ok(s) = states.recv_timeout(Duration::from_millis(100)) {
            reached = (s.position[0] - goal).abs() < 1e-3;
        }
    }
    assert!(
        reached,
        "the controller's chunks did not move joint 0 to {goal}"
    );

    // The operator's and the intruder's chunks (to start − 0.3 rad) are refused by the ACL /
    // never get through: joint 0 stays at the goal (the executor holds once the controller's
    // last chunk runs out).
    let mut op = operator
        .publisher::<ActionChunk>(operator.keys().action_chunk(), Qos::Control)
        .unwrap();
    let mut bad = intruder
        .publisher::<ActionChunk>(intruder.keys().action_chunk(), Qos::Control)
        .unwrap();
    let end = Instant::now() + Duration::from_secs(2);
    let mut seen = 0;
    while Instant::now() < end {
        op.put(&mut chunk(&clock, (q_start - 0.3) as f32, &rest))
            .unwrap();
        bad.put(&mut chunk(&clock, (q_start - 0.3) as f32, &rest))
            .unwrap();
        if let Ok(s) = states.recv_timeout(Duration::from_millis(50)) {
            seen += 1;
            assert!(
                (s.position[0] - goal).abs() < 0.02,
                "an unauthorized chunk moved joint 0: {} (goal {goal})",
                s.position[0]
            );
        }
    }
    assert!(seen > 5);

    // The operator may stop the robot.
    let mut estop = operator
        .publisher::<EStop>(operator.keys().estop(), Qos::Control)
        .unwrap();
    let events = action
        .subscribe::<SafetyEvent>(action.keys().safety_event())
        .unwrap();
    estop
        .put(&mut EStop {
            header: Header::new::<EStop>("r1", 0, clock.now_ns()),
            engage: true,
            operator: "operator".into(),
            reason: "test".into(),
        })
        .unwrap();
    let end = Instant::now() + t;
    let mut stopped = false;
    while Instant::now() < end && !stopped {
        if let Ok(e) = events.recv_timeout(Duration::from_millis(100)) {
            stopped = e.event == SafetyEventKind::EStopEngaged;
        }
    }
    assert!(stopped, "the operator's e-stop was not honoured");

    let out = ok(&child.wait_with_output().unwrap(), "robot daemon");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        report["executor"]["measured_hz"].as_f64().unwrap() > 450.0,
        "{report:#}"
    );
    assert_eq!(
        report["executor"]["safety"]["e_stop_engaged"], 1,
        "{report:#}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The daemon with System 1 in-process (`[action]` beside `[executor]` and `[hal]`): a tiny
/// System 1 checkpoint (`train s1`, learned null plan) acts on the loopback device's joint
/// states and its chunks reach the executor, inside the limits.
#[test]
fn daemon_runs_system_1_in_process() {
    let dir = common::tmp_dir("robot-s1");
    let data = dir.join("data");
    common::write_dataset(&data);
    let planner = common::CONFIG.find("[planner]").unwrap();
    let optim = common::CONFIG.find("[optim]").unwrap();
    let s1_config = format!("{}{}", &common::CONFIG[..planner], &common::CONFIG[optim..]);
    let cfg = dir.join("s1.toml");
    std::fs::write(&cfg, s1_config).unwrap();
    let run = dir.join("run");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    common::ok(
        &common::bicameral(&[
            "train",
            "s1",
            "--dataset",
            &s(&data),
            "--config",
            &s(&cfg),
            "--out",
            &s(&run),
        ]),
        "train s1",
    );
    let robot = dir.join("robot.toml");
    std::fs::write(
        &robot,
        format!(
            r#"
robot = "r2"
[zenoh]
listen = ["tcp/127.0.0.1:{port}"]
[executor]
rate_hz = 200
[hal]
kind = "loopback"
[action]
checkpoint = "{ck}"
rate_hz = 10
"#,
            port = free_port(),
            ck = s(&run.join("checkpoint"))
        ),
    )
    .unwrap();
    let out = common::ok(
        &common::bicameral(&["robot", "--config", &s(&robot), "--seconds", "3", "--json"]),
        "robot with [action]",
    );
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let hz = r["action"]["measured_hz"].as_f64().unwrap();
    assert!((hz - 10.0).abs() < 1.5, "System 1 at {hz} Hz\n{r:#}");
    assert!(
        r["executor"]["commands_published"].as_u64().unwrap() > 300,
        "{r:#}"
    );
    let safety = &r["executor"]["safety"];
    assert_eq!(safety["chunk_out_of_limits"], 0, "{r:#}");
    assert_eq!(safety["chunk_rejected"], 0, "{r:#}");
    assert_eq!(safety["hold_chunks_exhausted"], 0, "{r:#}");
}
