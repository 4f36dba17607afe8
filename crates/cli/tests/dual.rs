//! `bicameral train dual` on a small LeRobot dataset with camera images, then `policy plan` on
//! the checkpoint with a PNG and an instruction, and `bench s2` on the shipped default size.

mod common;

use std::path::Path;

use bicameral_dataset::{DatasetSpec, DatasetWriter, Episode, Format, Frame, encode_png};
use common::{bicameral, ok, tmp_dir};

const SIDE: usize = 16;

fn colour_image(rgb: [u8; 3]) -> Vec<u8> {
    (0..SIDE * SIDE).flat_map(|_| rgb).collect()
}

/// Two episodes: "go left" with a red view, "go right" with a blue one; subgoal labels.
fn write_dataset(dir: &Path) {
    let spec = DatasetSpec {
        fps: 10.0,
        robot_type: "toy_arm".into(),
        state_names: vec!["phase".into()],
        action_names: vec!["j0".into()],
        state_slices: vec![("arm".into(), 0, 1)],
        action_slices: vec![("arm".into(), 0, 1)],
        cameras: vec![("head".into(), SIDE as u32, SIDE as u32)],
        video: false,
    };
    let mut w = DatasetWriter::create(dir, Format::LeRobotV30, spec, false).unwrap();
    for (task, rgb, dir) in [
        ("go left", [200, 20, 20], 1.0f32),
        ("go right", [20, 20, 200], -1.0),
    ] {
        let frames = (0..12)
            .map(|t| Frame {
                state: vec![t as f32 / 12.0],
                action: vec![dir * 0.1 * t as f32],
                images: vec![colour_image(rgb)],
            })
            .collect();
        w.write_episode(&Episode {
            task: task.into(),
            frames,
            meta: serde_json::json!({ "subgoal": [0.4, 0.2 * dir, 0.8, 0.5, -0.2 * dir, 0.8] }),
        })
        .unwrap();
    }
    w.finish().unwrap();
}

const CONFIG: &str = r#"
steps = 30
batch_size = 8
seed = 1
checkpoint_every = 15

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
action_horizon = 4
inference_steps = 2

[planner]
cameras = ["observation.images.head"]
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
max_text_tokens = 4
subgoal_weight = 0.5
freeze = ["vision"]

[optim]
lr = 3e-3
warmup_steps = 5
weight_decay = 0.0
grad_clip_norm = 1.0
"#;

#[test]
fn train_dual_then_plan() {
    let dir = tmp_dir("dual");
    let data = dir.join("data");
    write_dataset(&data);
    let cfg = dir.join("dual.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let out = dir.join("run");
    let s = |p: &Path| p.to_str().unwrap().to_owned();

    // The S1-only entry point refuses a config with a planner, and vice versa.
    let res = bicameral(&[
        "train",
        "s1",
        "--dataset",
        &s(&data),
        "--config",
        &s(&cfg),
        "--out",
        &s(&out),
    ]);
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("train dual"));

    let text = ok(
        &bicameral(&[
            "train",
            "dual",
            "--dataset",
            &s(&data),
            "--config",
            &s(&cfg),
            "--out",
            &s(&out),
        ]),
        "train dual",
    );
    assert!(text.contains("trained 30 steps"), "{text}");
    let ckpt = out.join("checkpoint");
    for f in [
        "planner.json",
        "planner.safetensors",
        "tokenizer.json",
        "model.safetensors",
    ] {
        assert!(ckpt.join(f).is_file(), "{f} missing from the checkpoint");
    }
    let csv = std::fs::read_to_string(out.join("loss.csv")).unwrap();
    assert!(
        csv.starts_with("step,loss,lr,grad_norm,subgoal_loss"),
        "{csv}"
    );

    // policy score: the checkpoint's losses on its dataset (a dual checkpoint: the subgoal
    // loss too, its labels being in the episodes' metadata when present).
    let json = ok(
        &bicameral(&[
            "policy",
            "score",
            "--checkpoint",
            &s(&ckpt),
            "--dataset",
            &s(&data),
            "--last-episodes",
            "1",
        ]),
        "policy score",
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let flow = v["flow_loss"].as_f64().unwrap();
    assert!(flow.is_finite() && flow > 0.0, "{v}");
    let frames = v["frames"].as_u64().unwrap();
    assert!(frames > 0, "{v}");
    assert_eq!(v["step"], 30);

    // policy plan on a PNG.
    let png = dir.join("view.png");
    std::fs::write(
        &png,
        encode_png(&colour_image([200, 20, 20]), SIDE as u32, SIDE as u32).unwrap(),
    )
    .unwrap();
    let json = ok(
        &bicameral(&[
            "policy",
            "plan",
            "--checkpoint",
            &s(&ckpt),
            "--image",
            &s(&png),
            "--instruction",
            "go left",
            "--repeats",
            "2",
            "--json",
            "--out",
            &s(&dir.join("plan.safetensors")),
        ]),
        "policy plan",
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    // 16 px / patch 8 → 4 image tokens + 4 text tokens; "go left" = 2 real text tokens.
    assert_eq!(v["plan_shape"], serde_json::json!([1, 8, 16]));
    assert_eq!(v["image_tokens"], 4);
    assert_eq!(v["real_tokens"], 6);
    assert_eq!(v["subgoal"].as_array().unwrap().len(), 6);
    assert!(v["planner_ms_median"].as_f64().unwrap() > 0.0);
    let plan = bicameral_policy::read_safetensors(&dir.join("plan.safetensors")).unwrap();
    assert_eq!(plan["plan_tokens"].shape, vec![1, 8, 16]);

    // Text output and a clear error for a missing image.
    let text = ok(
        &bicameral(&[
            "policy",
            "plan",
            "--checkpoint",
            &s(&ckpt),
            "--image",
            &s(&png),
            "--instruction",
            "go left",
        ]),
        "policy plan (text)",
    );
    assert!(
        text.contains("plan [1, 8, 16]") && text.contains("subgoal: object at"),
        "{text}"
    );
    let res = bicameral(&[
        "policy",
        "plan",
        "--checkpoint",
        &s(&ckpt),
        "--image",
        &s(&dir.join("nope.png")),
        "--instruction",
        "go left",
    ]);
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("nope.png"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bench_s2_reports_the_default_size() {
    let json = ok(
        &bicameral(&[
            "bench",
            "s2",
            "--configs",
            "default",
            "--repeats",
            "1",
            "--json",
        ]),
        "bench s2",
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let d = &v["configs"]["default"];
    // models/dual_default.toml: 96 px / patch 16 = 36 image tokens + 16 text tokens, width 256.
    assert_eq!(d["plan_tokens"], 52);
    assert_eq!(d["plan_dim"], 256);
    assert_eq!(d["image_tokens"], 36);
    assert_eq!(d["text_tokens"], 16);
    assert!(d["observation_ms"].as_f64().unwrap() > 0.0);
    let res = bicameral(&["bench", "s2", "--configs", "huge"]);
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("huge"));
}
