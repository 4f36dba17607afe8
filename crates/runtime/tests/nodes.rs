//! Node logic with test doubles for the policies (the live and end-to-end tests use the burn
//! models): input gating, stamps, plan ttl, the RTC prefix handed to the policy.

use bicameral_msgs::*;
use bicameral_runtime::RuntimeError;
use bicameral_runtime::nodes::*;

struct EchoPlanner;

impl Planner for EchoPlanner {
    fn cameras(&self) -> Vec<String> {
        vec!["ego_view".into(), "left_wrist".into()]
    }
    fn plan(
        &mut self,
        images: &[Image<'_>],
        instruction: &str,
    ) -> Result<PlanTokens, RuntimeError> {
        // One token per image: its first pixel and the instruction length.
        let tokens = images
            .iter()
            .flat_map(|i| [i.rgb[0] as f32, instruction.len() as f32])
            .collect();
        Ok(PlanTokens {
            tokens,
            len: images.len(),
            dim: 2,
            attention_mask: vec![1; images.len()],
            image_mask: vec![1; images.len()],
            subgoal: vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
        })
    }
}

fn frame(camera: &str, stamp: u64, px: u8) -> CameraFrame {
    CameraFrame {
        header: Header::new::<CameraFrame>("r1", 0, stamp),
        camera: camera.into(),
        width: 2,
        height: 1,
        encoding: ImageEncoding::Rgb8,
        data: vec![px; 6],
    }
}

#[test]
fn planner_waits_for_every_camera_and_an_instruction() {
    let mut p = PlannerCore::new(EchoPlanner, PlannerNodeConfig::default(), "r1");
    assert!(p.step(10).unwrap().is_none());
    p.on_frame(frame("ego_view", 100, 7), 100).unwrap();
    p.on_frame(frame("right_wrist", 100, 9), 100).unwrap(); // not used
    p.on_instruction(Instruction {
        header: Header::new::<Instruction>("r1", 0, 0),
        text: "pick up the cube".into(),
    });
    assert!(p.step(10).unwrap().is_none(), "left_wrist missing");
    p.on_frame(frame("left_wrist", 120, 3), 120).unwrap();
    assert!(p.has_new_observation());
    let plan = p.step(200).unwrap().unwrap();
    assert_eq!(plan.obs_stamp_ns, 100, "oldest frame's stamp");
    assert_eq!(plan.header.stamp_ns, 200);
    assert_eq!(plan.tokens.to_f32().unwrap(), vec![7.0, 16.0, 3.0, 16.0]);
    assert_eq!(plan.instruction, "pick up the cube");
    // The message it produces is valid on the wire.
    decode::<Plan>(&encode(&plan).unwrap()).unwrap();
    assert!(!p.has_new_observation());
    // Frames too far apart are not combined.
    p.on_frame(frame("ego_view", 2_000_000_000, 1), 2_000_000_000)
        .unwrap();
    assert!(p.step(2_000_000_100).unwrap().is_none());
    // A frame stamped beyond the allowed clock skew is dropped with an error naming the camera
    // (taken, it would be "newer" than every later frame and freeze the planner).
    let err = p
        .on_frame(
            frame("left_wrist", 2_000_000_000 + 60_000_000_000, 5),
            2_000_000_200,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("left_wrist") && err.contains("ahead"), "{err}");
    assert!(!p.has_new_observation(), "the future frame was not kept");
    p.on_frame(frame("left_wrist", 2_000_000_150, 5), 2_000_000_250)
        .unwrap();
    let plan = p
        .step(2_000_000_300)
        .unwrap()
        .expect("plans again on sane frames");
    assert_eq!(plan.obs_stamp_ns, 2_000_000_000);
}

/// Records what it was asked; returns a ramp continuing from the prefix.
struct RecordingPolicy {
    needs_plan: bool,
    calls: Vec<(bool, Vec<f32>, usize)>,
}

impl ActionPolicy for RecordingPolicy {
    fn horizon(&self) -> usize {
        4
    }
    fn action_dim(&self) -> usize {
        2
    }
    fn action_dt(&self) -> f64 {
        0.01
    }
    fn needs_plan(&self) -> bool {
        self.needs_plan
    }
    fn act(
        &mut self,
        plan: Option<&PlanTokens>,
        state: &[f32],
        prefix: &[f32],
        frozen: usize,
        _seed: u64,
    ) -> Result<Vec<f32>, RuntimeError> {
        self.calls.push((plan.is_some(), prefix.to_vec(), frozen));
        Ok((0..4)
            .flat_map(|i| [state[0] + i as f32, state[1]])
            .collect())
    }
}

fn state(stamp: u64, q: [f64; 2]) -> JointState {
    JointState {
        header: Header::new::<JointState>("r1", 0, stamp),
        position: q.to_vec(),
        velocity: vec![],
        effort: vec![],
    }
}

fn plan(seq: u64, obs: u64) -> Plan {
    Plan {
        header: Header {
            seq,
            ..Header::new::<Plan>("r1", 0, obs)
        },
        obs_stamp_ns: obs,
        instruction: "x".into(),
        tokens: Tensor::from_f32(&[1, 2], &[0.0, 1.0]).unwrap(),
        attention_mask: Tensor::from_u8(&[1], &[1]).unwrap(),
        image_mask: Tensor::from_u8(&[1], &[0]).unwrap(),
        subgoal: vec![],
    }
}

const MS: u64 = 1_000_000;

#[test]
fn action_node_gates_on_plan_and_ttl_and_stamps_chunks() {
    let cfg = ActionNodeConfig {
        plan_ttl_ms: 500.0,
        rtc: false,
        ..Default::default()
    };
    let mut a = ActionCore::new(
        RecordingPolicy {
            needs_plan: true,
            calls: vec![],
        },
        cfg,
        "r1",
    );
    a.on_state(state(100 * MS, [0.5, -0.5]));
    assert!(a.step(110 * MS).unwrap().is_none(), "no plan yet");
    a.on_plan(&plan(3, 50 * MS)).unwrap();
    let c = a.step(120 * MS).unwrap().unwrap();
    assert_eq!((c.plan_seq, c.plan_stamp_ns), (3, 50 * MS));
    assert_eq!(
        (c.t0_ns, c.dt_ns, c.obs_stamp_ns),
        (100 * MS, 10 * MS, 100 * MS)
    );
    assert_eq!(c.actions.to_f32().unwrap()[..4], [0.5, -0.5, 1.5, -0.5]);
    decode::<ActionChunk>(&encode(&c).unwrap()).unwrap();
    // Past the ttl the plan is not used and this policy needs one.
    assert!(a.step(600 * MS).unwrap().is_none());

    // A planless policy acts without a plan, marking the chunk NO_PLAN.
    let mut b = ActionCore::new(
        RecordingPolicy {
            needs_plan: false,
            calls: vec![],
        },
        ActionNodeConfig::default(),
        "r1",
    );
    b.on_state(state(100 * MS, [0.0, 0.0]));
    assert_eq!(b.step(101 * MS).unwrap().unwrap().plan_seq, NO_PLAN);

    // A state of the wrong dimension is an error naming the mismatch.
    b.on_state(JointState {
        position: vec![0.0; 3],
        ..state(200 * MS, [0.0, 0.0])
    });
    let err = b.step(201 * MS).unwrap_err().to_string();
    assert!(
        err.contains("3 positions") && err.contains("acts on 2"),
        "{err}"
    );

    // Inputs stamped beyond the allowed clock skew are dropped with an error: a state from an
    // hour ahead would otherwise never be "newer" again, a plan would never age past the ttl.
    let hour = 3_600_000 * MS;
    b.on_state(state(hour, [0.0, 0.0]));
    let err = b.step(300 * MS).unwrap_err().to_string();
    assert!(
        err.contains("joint state") && err.contains("ahead"),
        "{err}"
    );
    b.on_state(state(301 * MS, [0.0, 0.0]));
    assert!(
        b.step(302 * MS).unwrap().is_some(),
        "acts again on a sane state"
    );
    a.on_state(state(700 * MS, [0.0, 0.0]));
    a.on_plan(&plan(4, hour)).unwrap();
    let err = a.step(701 * MS).unwrap_err().to_string();
    assert!(err.contains("plan") && err.contains("ahead"), "{err}");
    assert!(a.step(702 * MS).unwrap().is_none(), "the plan is gone");

    // Plans that cannot condition the head are refused: no tokens, NaN tokens, the "no plan"
    // sequence number.
    let empty = Plan {
        tokens: Tensor::from_f32(&[0, 2], &[]).unwrap(),
        attention_mask: Tensor::from_u8(&[0], &[]).unwrap(),
        image_mask: Tensor::from_u8(&[0], &[]).unwrap(),
        ..plan(5, 700 * MS)
    };
    assert!(
        a.on_plan(&empty)
            .unwrap_err()
            .to_string()
            .contains("no tokens")
    );
    let nan = Plan {
        tokens: Tensor::from_f32(&[1, 2], &[f32::NAN, 0.0]).unwrap(),
        ..plan(6, 700 * MS)
    };
    assert!(
        a.on_plan(&nan)
            .unwrap_err()
            .to_string()
            .contains("non-finite")
    );
    assert!(a.on_plan(&plan(NO_PLAN, 700 * MS)).is_err());
    assert!(
        a.step(703 * MS).unwrap().is_none(),
        "none of them was taken"
    );
}

#[test]
fn rtc_prefix_is_the_previous_chunk_at_the_new_steps_and_frozen_covers_the_delay() {
    let cfg = ActionNodeConfig {
        rtc: true,
        rtc_margin_steps: 1,
        ..Default::default()
    };
    let mut a = ActionCore::new(
        RecordingPolicy {
            needs_plan: false,
            calls: vec![],
        },
        cfg,
        "r1",
    );
    a.on_state(state(0, [0.0, 0.0]));
    a.step(MS).unwrap().unwrap(); // chunk: joint 0 = 0, 1, 2, 3 at t = 0, 10, 20, 30 ms
    a.set_expected_delay_ns(12.0 * MS as f64); // 2 steps (ceil) + 1 margin
    a.on_state(state(15 * MS, [9.0, 0.0]));
    a.step(16 * MS).unwrap().unwrap();
    let (_, prefix, frozen) = &a.policy().calls[1];
    // New steps at 15, 25 ms (35 ms is past the old chunk's end at 30 ms): 1.5 and 2.5.
    assert_eq!(prefix, &vec![1.5, 0.0, 2.5, 0.0]);
    assert_eq!(*frozen, 2, "min(2 + 1, prefix steps)");
}
