//! Wire codec properties: every message round-trips; arbitrary or corrupted bytes never panic a
//! decoder; version, kind and shape problems are named.

use std::collections::BTreeMap;

use bicameral_msgs::*;
use proptest::prelude::*;

fn header<M: Message>() -> impl Strategy<Value = Header> {
    (any::<u64>(), any::<u64>(), "[a-z0-9_-]{1,12}")
        .prop_map(|(seq, stamp, robot)| Header::new::<M>(&robot, seq, stamp))
}

fn f64s(n: usize) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(any::<f64>().prop_filter("NaN != NaN", |v| !v.is_nan()), n)
}

fn joint_state() -> impl Strategy<Value = JointState> {
    (0usize..40, header::<JointState>()).prop_flat_map(|(n, h)| {
        (
            Just(h),
            f64s(n),
            prop_oneof![Just(0), Just(n)],
            any::<bool>(),
        )
            .prop_flat_map(move |(h, pos, nv, eff)| {
                (Just(h), Just(pos), f64s(nv), f64s(if eff { n } else { 0 })).prop_map(
                    |(header, position, velocity, effort)| JointState {
                        header,
                        position,
                        velocity,
                        effort,
                    },
                )
            })
    })
}

fn f32_tensor(max_rows: usize, max_cols: usize) -> impl Strategy<Value = (usize, Tensor)> {
    (1..=max_rows, 1..=max_cols).prop_flat_map(|(r, c)| {
        prop::collection::vec(
            any::<f32>().prop_filter("NaN != NaN", |v| !v.is_nan()),
            r * c,
        )
        .prop_map(move |v| (r, Tensor::from_f32(&[r, c], &v).unwrap()))
    })
}

fn action_chunk() -> impl Strategy<Value = ActionChunk> {
    (
        header::<ActionChunk>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        1u64..u64::MAX,
        f32_tensor(17, 33),
    )
        .prop_map(
            |(header, plan_seq, obs, t0, dt, (_, actions))| ActionChunk {
                header,
                plan_seq,
                plan_stamp_ns: obs / 2,
                obs_stamp_ns: obs,
                t0_ns: t0,
                dt_ns: dt,
                actions,
            },
        )
}

fn plan() -> impl Strategy<Value = Plan> {
    (
        header::<Plan>(),
        any::<u64>(),
        ".{1,40}",
        f32_tensor(20, 16),
    )
        .prop_flat_map(|(header, obs, instruction, (s, tokens))| {
            (
                prop::collection::vec(0u8..2, s),
                prop::collection::vec(0u8..2, s),
                prop::collection::vec(-10f32..10.0, 0..7),
            )
                .prop_map(move |(am, im, subgoal)| Plan {
                    header: header.clone(),
                    obs_stamp_ns: obs,
                    instruction: instruction.clone(),
                    tokens: tokens.clone(),
                    attention_mask: Tensor::from_u8(&[s], &am).unwrap(),
                    image_mask: Tensor::from_u8(&[s], &im).unwrap(),
                    subgoal,
                })
        })
}

fn camera_frame() -> impl Strategy<Value = CameraFrame> {
    (header::<CameraFrame>(), 1u32..9, 1u32..9, "[a-z_]{1,10}").prop_flat_map(
        |(header, w, h, camera)| {
            prop::collection::vec(any::<u8>(), (w * h * 3) as usize).prop_map(move |data| {
                CameraFrame {
                    header: header.clone(),
                    camera: camera.clone(),
                    width: w,
                    height: h,
                    encoding: ImageEncoding::Rgb8,
                    data,
                }
            })
        },
    )
}

fn joint_command() -> impl Strategy<Value = JointCommand> {
    (header::<JointCommand>(), 0usize..40, any::<bool>()).prop_flat_map(|(header, n, hold)| {
        (f64s(n), f64s(n)).prop_map(move |(position, velocity)| JointCommand {
            header: header.clone(),
            position,
            velocity,
            mode: if hold {
                CommandMode::Hold
            } else {
                CommandMode::Track
            },
        })
    })
}

fn node_status() -> impl Strategy<Value = NodeStatus> {
    (
        header::<NodeStatus>(),
        "[a-z0-9_]{1,16}",
        prop::collection::btree_map("[a-z_]{1,8}", 0f64..1e4, 0..4),
        prop::collection::btree_map("[a-z_]{1,8}", any::<u64>(), 0..4),
    )
        .prop_map(|(header, node, rates_hz, counters)| NodeStatus {
            header,
            node,
            state: NodeState::Running,
            rates_hz,
            latency_ms: BTreeMap::from([("p50".to_string(), 1.5)]),
            counters,
        })
}

fn roundtrip<M: Message + PartialEq + std::fmt::Debug>(m: &M) {
    let bytes = encode(m).unwrap();
    let back: M = decode(&bytes).unwrap();
    assert_eq!(&back, m);
}

/// Decodes `bytes` as every message type; any outcome but a panic is fine.
fn decode_all(bytes: &[u8]) {
    let _ = decode::<JointState>(bytes);
    let _ = decode::<CameraFrame>(bytes);
    let _ = decode::<Instruction>(bytes);
    let _ = decode::<Plan>(bytes);
    let _ = decode::<ActionChunk>(bytes);
    let _ = decode::<JointCommand>(bytes);
    let _ = decode::<EStop>(bytes);
    let _ = decode::<SafetyEvent>(bytes);
    let _ = decode::<NodeStatus>(bytes);
    let _ = peek_header(bytes);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_message_roundtrips(
        js in joint_state(),
        chunk in action_chunk(),
        plan in plan(),
        frame in camera_frame(),
        cmd in joint_command(),
        status in node_status(),
        text in "[a-zA-Z ]{0,20}[a-z]",
        engage in any::<bool>(),
    ) {
        roundtrip(&js);
        roundtrip(&chunk);
        roundtrip(&plan);
        roundtrip(&frame);
        roundtrip(&cmd);
        roundtrip(&status);
        roundtrip(&Instruction { header: Header::new::<Instruction>("r", 1, 2), text: text.clone() });
        roundtrip(&EStop { header: Header::new::<EStop>("r", 1, 2), engage, operator: "op".into(), reason: text });
        roundtrip(&SafetyEvent {
            header: Header::new::<SafetyEvent>("r", 3, 4),
            event: SafetyEventKind::Clamped,
            joint: Some(3),
            count: 7,
            detail: "joint 3 velocity".into(),
        });
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_all(&bytes);
    }

    #[test]
    fn corrupted_messages_never_panic(
        chunk in action_chunk(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = encode(&chunk).unwrap();
        for (i, b) in flips {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        decode_all(&bytes);
        let cut = cut.index(bytes.len());
        decode_all(&bytes[..cut]);
    }
}

fn chunk(h: usize, d: usize) -> ActionChunk {
    ActionChunk {
        header: Header::new::<ActionChunk>("r1", 0, 0),
        plan_seq: 0,
        plan_stamp_ns: 0,
        obs_stamp_ns: 0,
        t0_ns: 0,
        dt_ns: 10_000_000,
        actions: Tensor::from_f32(&[h, d], &vec![0.5; h * d]).unwrap(),
    }
}

#[test]
fn version_and_kind_are_checked_before_the_body() {
    let mut c = chunk(2, 3);
    c.header.schema = SCHEMA_VERSION + 1;
    let err = decode::<ActionChunk>(&encode(&c).unwrap()).unwrap_err();
    assert!(
        matches!(err, MsgError::Version { got, .. } if got == SCHEMA_VERSION + 1),
        "{err}"
    );

    let c = chunk(2, 3);
    let err = decode::<Plan>(&encode(&c).unwrap()).unwrap_err();
    assert!(
        err.to_string()
            .contains("expected a `plan` message, got a `action_chunk`"),
        "{err}"
    );
}

#[test]
fn shape_problems_name_the_field() {
    let mut c = chunk(2, 3);
    c.actions.data.pop();
    let err = decode::<ActionChunk>(&encode(&c).unwrap()).unwrap_err();
    assert!(
        err.to_string().contains("`actions`") && err.to_string().contains("24 bytes, got 23"),
        "{err}"
    );

    let mut c = chunk(2, 3);
    c.dt_ns = 0;
    let err = decode::<ActionChunk>(&encode(&c).unwrap()).unwrap_err();
    assert!(err.to_string().contains("dt_ns"), "{err}");

    let js = JointState {
        header: Header::new::<JointState>("r1", 0, 0),
        position: vec![0.0; 3],
        velocity: vec![0.0; 2],
        effort: vec![],
    };
    let err = decode::<JointState>(&encode(&js).unwrap()).unwrap_err();
    assert!(
        err.to_string().contains("`velocity` has 2 entries")
            || err.to_string().contains("velocity"),
        "{err}"
    );
}

#[test]
fn fields_travel_by_name_and_tensors_as_bin() {
    // A msgpack map whose keys are the field names (what Python's msgpack.unpackb returns),
    // and tensor bytes as `bin` (0xc4/0xc5 marker) rather than an array of ints.
    let bytes = encode(&chunk(1, 2)).unwrap();
    let hay = String::from_utf8_lossy(&bytes);
    for key in [
        "header", "schema", "kind", "seq", "stamp_ns", "robot", "t0_ns", "dt_ns", "actions",
        "dtype", "shape", "data",
    ] {
        assert!(hay.contains(key), "missing key {key}");
    }
    let data_at = bytes.windows(4).position(|w| w == b"data").unwrap();
    assert_eq!(bytes[data_at + 4], 0xc4, "tensor data must be msgpack bin8");
    assert_eq!(bytes[data_at + 5], 8);
    assert_eq!(&bytes[data_at + 6..data_at + 10], &0.5f32.to_le_bytes());
}

#[test]
fn safety_event_names_match_the_wire() {
    for (i, kind) in SafetyEventKind::ALL.iter().enumerate() {
        assert_eq!(kind.index(), i);
        let bytes = rmp_serde::to_vec(kind).unwrap();
        let name: String = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(name, kind.name());
    }
}
