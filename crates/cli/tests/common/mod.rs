//! Helpers shared by the CLI tests: scratch directories and running the binary.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use bicameral_dataset::{DatasetSpec, DatasetWriter, Episode, Format, Frame};
use std::process::{Command, Output};

/// A fresh scratch directory for test `name` (per process).
pub fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bicameral-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the `bicameral` binary with `args` (logging at warn).
pub fn bicameral(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bicameral"))
        .env("BICAMERAL_LOG", "warn")
        .args(args)
        .output()
        .unwrap()
}

/// Asserts success (showing stderr otherwise) and returns stdout.
pub fn ok(res: &Output, what: &str) -> String {
    assert!(
        res.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    String::from_utf8_lossy(&res.stdout).into_owned()
}

/// A loopback TCP port free right now (for a zenoh listener).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub const SIDE: usize = 16;
pub const DOF: usize = 21;

/// The bc_humanoid's default pose over its action joints (inside every joint's limits).
pub fn default_action_pose() -> Vec<f32> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let emb = bicameral_robot::Embodiment::load(&root.join("robots/bc_humanoid/embodiment.toml"))
        .unwrap();
    let kin = bicameral_robot::Kinematics::new(&emb.load_robot().unwrap());
    let q = emb.default_q(&kin).unwrap();
    emb.action_dof_indices(&kin)
        .unwrap()
        .iter()
        .map(|&d| q[d] as f32)
        .collect()
}

/// A synthetic 21-DoF bc_humanoid dataset (two tasks, 8 frames each, 16 px ego view): states
/// and actions creep from the default pose (so a model trained on it acts inside the limits).
pub fn write_dataset(dir: &Path) {
    let q0 = default_action_pose();
    assert_eq!(q0.len(), DOF);
    let names: Vec<String> = (0..DOF).map(|i| format!("q{i}")).collect();
    let spec = DatasetSpec {
        fps: 20.0,
        robot_type: "bc_humanoid".into(),
        state_names: names.clone(),
        action_names: names,
        state_slices: vec![("all".into(), 0, DOF)],
        action_slices: vec![("all".into(), 0, DOF)],
        cameras: vec![("ego_view".into(), SIDE as u32, SIDE as u32)],
        video: false,
    };
    let mut w = DatasetWriter::create(dir, Format::LeRobotV30, spec, false).unwrap();
    for (task, shade) in [
        ("pick up the red cube", 200u8),
        ("pick up the blue cube", 40),
    ] {
        let frames = (0..8)
            .map(|t| Frame {
                state: q0.iter().map(|q| q + 0.0005 * t as f32).collect(),
                action: q0.iter().map(|q| q + 0.0005 * (t + 1) as f32).collect(),
                images: vec![(0..SIDE * SIDE * 3).map(|_| shade).collect()],
            })
            .collect();
        w.write_episode(&Episode {
            task: task.into(),
            frames,
            meta: serde_json::json!({ "subgoal": [0.4, 0.1, 0.8, 0.5, -0.2, 0.8] }),
        })
        .unwrap();
    }
    w.finish().unwrap();
}

/// A tiny `train dual` config (real burn models, two steps).
pub const CONFIG: &str = r#"
steps = 2
batch_size = 4
seed = 1
checkpoint_every = 2

[head]
layers = 2
heads = 2
head_dim = 8
hidden_size = 16
plan_dim = 16
plan_tokens = 2
future_tokens = 2
adapter_layers = 1
adapter_heads = 2
action_horizon = 8
inference_steps = 2

[planner]
cameras = ["observation.images.ego_view"]
image_size = 16
patch_size = 8
vision_layers = 1
vision_width = 16
vision_heads = 2
vision_mlp = 32
connector = "linear"
lm_layers = 1
lm_width = 16
lm_heads = 2
lm_kv_heads = 1
lm_head_dim = 8
lm_mlp = 32
vocab_size = 16
max_text_tokens = 8
subgoal_weight = 0.5

[optim]
lr = 1e-3
warmup_steps = 1
weight_decay = 0.0
grad_clip_norm = 1.0
"#;

/// Trains the tiny System 2 + System 1 on the synthetic dataset under `dir`; returns the run
/// directory (`bicameral train dual --out`).
pub fn tiny_dual_checkpoint(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    write_dataset(&data);
    let cfg = dir.join("dual.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let ckpt = dir.join("run");
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    ok(
        &bicameral(&[
            "train",
            "dual",
            "--dataset",
            &s(&data),
            "--config",
            &s(&cfg),
            "--out",
            &s(&ckpt),
        ]),
        "train dual",
    );
    ckpt
}

/// Entity paths of every chunk in an .rrd file, decoded with rerun's own decoder.
pub fn rrd_entities(path: &Path) -> (usize, BTreeSet<String>) {
    use rerun::external::re_log_encoding::DecoderApp;
    use rerun::external::re_log_types::LogMsg;
    let reader = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let mut chunks = 0;
    let mut entities = BTreeSet::new();
    for msg in DecoderApp::decode_eager(reader).expect("an rrd file") {
        if let LogMsg::ArrowMsg(_, arrow) = msg.expect("decodable message") {
            let chunk = rerun::log::Chunk::from_arrow_msg(&arrow).expect("a chunk");
            chunks += 1;
            entities.insert(chunk.entity_path().to_string());
        }
    }
    (chunks, entities)
}
