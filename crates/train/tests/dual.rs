//! System 2 + System 1 trained jointly: the flow-matching loss reaches the planner, the plan
//! carries the instruction and the image (data where neither the state nor System 1 alone can
//! tell the episodes apart), the subgoal head learns its labels, frozen parts stay frozen, and
//! the checkpoint round-trips the planner and its tokenizer.

#![allow(clippy::needless_range_loop)] // episodes are indexed by number on purpose

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bicameral_dataset::{DatasetSpec, DatasetWriter, Episode, Format, Frame};
use bicameral_policy::HostTensor;
use bicameral_train::config::{PlannerPart, PlannerSize};
use bicameral_train::policy::View;
use bicameral_train::{TrainConfig, load_checkpoint, train, train_s1};
use common::{tiny_config, tmp};

const SIDE: usize = 16;
const T: usize = 24;

/// The four episodes: (instruction, image colour, direction, amplitude).
const EPISODES: [(&str, [u8; 3], f32, f32); 4] = [
    ("go left", [220, 30, 30], 1.0, 1.0),
    ("go left", [30, 30, 220], 1.0, 0.5),
    ("go right", [220, 30, 30], -1.0, 1.0),
    ("go right", [30, 30, 220], -1.0, 0.5),
];

fn action(ep: usize, t: usize) -> Vec<f32> {
    let (_, _, dir, amp) = EPISODES[ep];
    let x = t as f32 * 0.25;
    vec![
        dir * amp * (0.2 + 0.6 * x.sin()),
        amp * (0.4 * (0.5 * x).cos()),
    ]
}

fn image(ep: usize) -> Vec<u8> {
    let c = EPISODES[ep].1;
    (0..SIDE * SIDE).flat_map(|_| c).collect()
}

fn subgoal(ep: usize) -> [f32; 6] {
    let (_, _, dir, amp) = EPISODES[ep];
    [0.3 * dir, 0.2 * amp, 0.8, -0.3 * dir, 0.1, 0.8]
}

/// Writes the toy layout with `episodes` given as (instruction, frames, metadata).
fn write_toy(dir: &Path, episodes: Vec<(&str, Vec<Frame>, serde_json::Value)>) {
    let spec = DatasetSpec {
        fps: 10.0,
        robot_type: "toy_arm".into(),
        state_names: vec!["phase".into(), "zero".into()],
        action_names: vec!["j0".into(), "j1".into()],
        state_slices: vec![("arm".into(), 0, 2)],
        action_slices: vec![("arm".into(), 0, 2)],
        cameras: vec![("head".into(), SIDE as u32, SIDE as u32)],
        video: false,
    };
    let mut w = DatasetWriter::create(dir, Format::LeRobotV30, spec, false).unwrap();
    for (task, frames, meta) in episodes {
        w.write_episode(&Episode {
            task: task.into(),
            frames,
            meta,
        })
        .unwrap();
    }
    w.finish().unwrap();
}

/// Grounding data alone teaches the subgoal head: the demonstrations carry no subgoal labels,
/// one-frame grounding episodes (as `datagen --scenes` writes) do. Their actions are absurd
/// (±50) on purpose: System 1 must never train on them, so its chunks still match the
/// demonstrations.
#[test]
fn grounding_frames_train_only_the_subgoal_head() {
    let dir = tmp("grounding");
    let (demos, scenes) = (dir.join("demos"), dir.join("scenes"));
    write_toy(&demos, demo_episodes(|_| serde_json::json!({})));
    write_scenes(&scenes, [50.0, -50.0]);
    let device = bicameral_policy::cpu_device();
    let steps = 500;
    let mut cfg = dual_config(steps);
    // Without grounding frames the subgoal loss has no labels at all.
    let err = train(
        std::slice::from_ref(&demos),
        std::slice::from_ref(&scenes),
        &cfg,
        &dir.join("bad"),
        false,
        &device,
        &mut |_| true,
    )
    .unwrap_err();
    assert!(err.to_string().contains("grounding_batch"), "{err}");
    cfg.planner.as_mut().unwrap().grounding_batch = 4;
    // Attention pooling in the subgoal head (its queries train through the same loss).
    cfg.planner.as_mut().unwrap().subgoal_queries = 2;
    let run = train(
        &[demos],
        &[scenes],
        &cfg,
        &dir.join("run"),
        false,
        &device,
        &mut |_| true,
    )
    .unwrap();
    let (l0, l1) = (run.losses[0].1, mean_last(&run.losses, 50));
    eprintln!("flow loss {l0:.3} → {l1:.4}");
    assert!(l1 < l0 / 10.0, "flow loss fell only from {l0} to {l1}");
    // The demonstrations carry no subgoal labels here, so the grounding rows are the only
    // labeled ones: the loss curve's grounding column equals its subgoal column, and falls.
    let csv = std::fs::read_to_string(dir.join("run/loss.csv")).unwrap();
    assert!(csv.starts_with(bicameral_train::LOSS_CSV_HEADER), "{csv}");
    let cols: Vec<(f32, f32)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let v: Vec<f32> = l.split(',').map(|x| x.parse().unwrap()).collect();
            (v[4], v[5])
        })
        .collect();
    assert_eq!(cols.len(), steps);
    for (i, (sg, g)) in cols.iter().enumerate() {
        assert!(
            (sg - g).abs() <= 1e-5 * sg.abs().max(1e-6),
            "step {i}: subgoal {sg} vs grounding {g}"
        );
    }
    let g1 = cols[cols.len() - 50..].iter().map(|c| c.1).sum::<f32>() / 50.0;
    assert!(g1 < cols[0].1 / 10.0, "grounding loss {} → {g1}", cols[0].1);
    let (policy, _, _) = load_checkpoint(&run.checkpoint, &device).unwrap();
    // System 1 never saw the ±50 actions: its chunks follow the demonstrations.
    let e = chunk_error(&policy, true);
    eprintln!("chunk error {e:.4}");
    assert!(e < 0.2, "chunk error {e}");
    assert_subgoals_learned(&policy);
    std::fs::remove_dir_all(&dir).ok();
}

/// `subgoal_from_demos = false`: labeled demonstrations no longer train the subgoal head, only
/// the grounding frames do, so the logged subgoal loss (over the rows that train it) equals the
/// grounding rows' column; with the default both kinds of row count and the two differ.
#[test]
fn subgoal_from_demos_off_leaves_only_grounding_rows() {
    let dir = tmp("sg_demos");
    let (demos, scenes) = (dir.join("demos"), dir.join("scenes"));
    write_dataset(&demos);
    write_scenes(&scenes, [0.0, 0.0]);
    let device = bicameral_policy::cpu_device();
    let columns = |run: &str, from_demos: bool| -> Vec<(f32, f32)> {
        let mut cfg = dual_config(8);
        let p = cfg.planner.as_mut().unwrap();
        p.grounding_batch = 4;
        p.subgoal_from_demos = from_demos;
        let out = dir.join(run);
        train(
            std::slice::from_ref(&demos),
            std::slice::from_ref(&scenes),
            &cfg,
            &out,
            false,
            &device,
            &mut |_| true,
        )
        .unwrap();
        std::fs::read_to_string(out.join("loss.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| {
                let v: Vec<f32> = l.split(',').map(|x| x.parse().unwrap()).collect();
                (v[4], v[5])
            })
            .collect()
    };
    let off = columns("off", false);
    assert_eq!(off.len(), 8);
    for (sg, g) in &off {
        assert!((sg - g).abs() <= 1e-5 * g.abs().max(1e-6), "{sg} vs {g}");
    }
    let on = columns("on", true);
    assert!(
        on.iter().any(|(sg, g)| (sg - g).abs() > 1e-3 * g.abs()),
        "demonstration rows did not count: {on:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// One-frame grounding scenes (as `datagen --scenes` writes), one per episode's image and
/// instruction, labeled with its subgoal; `action` fills the (unused) action column.
fn write_scenes(dir: &Path, action: [f32; 2]) {
    write_toy(
        dir,
        (0..EPISODES.len())
            .map(|ep| {
                let frames = vec![Frame {
                    state: vec![0.0, 0.0],
                    action: action.to_vec(),
                    images: vec![image(ep)],
                }];
                let meta = serde_json::json!({ "subgoal": subgoal(ep) });
                (EPISODES[ep].0, frames, meta)
            })
            .collect(),
    );
}

/// One 2-DoF embodiment; the state is the time only (the same in every episode), so what to do
/// comes from the instruction (sign) and the image (amplitude).
fn write_dataset(dir: &Path) {
    write_toy(
        dir,
        demo_episodes(|ep| serde_json::json!({ "subgoal": subgoal(ep) })),
    );
}

/// The four demonstrations, with `meta(episode)` as their metadata.
fn demo_episodes(
    meta: impl Fn(usize) -> serde_json::Value,
) -> Vec<(&'static str, Vec<Frame>, serde_json::Value)> {
    (0..EPISODES.len())
        .map(|ep| {
            let frames = (0..T)
                .map(|t| Frame {
                    state: vec![t as f32 / T as f32, 0.0],
                    action: action(ep, t),
                    images: vec![image(ep)],
                })
                .collect();
            (EPISODES[ep].0, frames, meta(ep))
        })
        .collect()
}

/// The planner's subgoal for each episode's image and instruction is within 0.1 of its label.
fn assert_subgoals_learned(policy: &bicameral_train::Policy) {
    for ep in 0..EPISODES.len() {
        let img = image(ep);
        let view = View {
            rgb: &img,
            width: SIDE,
            height: SIDE,
        };
        let out = policy.plan_observation(&[view], EPISODES[ep].0).unwrap();
        let got = out
            .subgoal
            .unwrap()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        let err = got
            .iter()
            .zip(subgoal(ep))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            err < 0.1,
            "episode {ep}: subgoal {got:?} vs {:?}",
            subgoal(ep)
        );
    }
}

fn planner_size(freeze: Vec<PlannerPart>) -> PlannerSize {
    PlannerSize {
        cameras: vec!["observation.images.head".into()],
        image_size: 16,
        patch_size: 8,
        vision_layers: 1,
        vision_width: 16,
        vision_heads: 2,
        vision_mlp: 32,
        pixel_shuffle: 1,
        connector: bicameral_policy::ConnectorKind::Mlp,
        lm_layers: 1,
        lm_width: 16,
        lm_heads: 2,
        lm_kv_heads: 1,
        lm_head_dim: 8,
        lm_mlp: 32,
        vocab_size: 16,
        max_text_tokens: 4,
        subgoal_weight: 0.5,
        subgoal_queries: 0,
        freeze,
        grounding_batch: 0,
        subgoal_from_demos: true,
        prompt_template: None,
    }
}

fn dual_config(steps: usize) -> TrainConfig {
    let mut c = tiny_config(steps, 5, None);
    c.planner = Some(planner_size(vec![]));
    c
}

fn mean_last(losses: &[(usize, f32)], n: usize) -> f32 {
    let tail = &losses[losses.len() - n..];
    tail.iter().map(|(_, l)| l).sum::<f32>() / n as f32
}

/// Mean absolute error of sampled chunks against the demonstrations, over all episodes and a
/// few start frames; `with_plan` runs System 2 on the episode's image and instruction.
fn chunk_error(policy: &bicameral_train::Policy, with_plan: bool) -> f32 {
    let h = policy.head.config.action_horizon;
    let (mut sum, mut n) = (0.0f32, 0usize);
    for ep in 0..EPISODES.len() {
        let img = image(ep);
        for t0 in [0usize, 6, 12] {
            let state = [t0 as f32 / T as f32, 0.0];
            let chunk = if with_plan {
                let view = View {
                    rgb: &img,
                    width: SIDE,
                    height: SIDE,
                };
                let plan = policy.plan_observation(&[view], EPISODES[ep].0).unwrap();
                policy
                    .act_with_plan(0, &state, plan.tokens, 11 + t0 as u64)
                    .unwrap()
            } else {
                policy.act(0, &state, 11 + t0 as u64).unwrap()
            };
            for (k, a) in chunk.iter().enumerate().take(h.min(T - t0)) {
                for (x, y) in a.iter().zip(action(ep, t0 + k)) {
                    sum += (x - y).abs();
                    n += 1;
                }
            }
        }
    }
    sum / n as f32
}

#[test]
fn planner_and_head_train_jointly() {
    let dir = tmp("dual");
    let data = vec![dir.join("data")];
    write_dataset(&data[0]);
    let device = bicameral_policy::cpu_device();
    let steps = 700;

    let joint = train_s1(
        &data,
        &dual_config(steps),
        &dir.join("joint"),
        false,
        &device,
        &mut |_| true,
    )
    .unwrap();
    let alone = train_s1(
        &data,
        &tiny_config(steps, 5, None),
        &dir.join("alone"),
        false,
        &device,
        &mut |_| true,
    )
    .unwrap();
    let (j0, j1) = (joint.losses[0].1, mean_last(&joint.losses, 50));
    let a1 = mean_last(&alone.losses, 50);
    eprintln!("joint loss {j0:.3} → {j1:.4}; System 1 alone → {a1:.4}");
    assert!(j1 < j0 / 10.0, "joint loss fell only from {j0} to {j1}");
    assert!(
        j1 < 0.5 * a1,
        "the plan does not help: joint {j1} vs System 1 alone {a1}"
    );

    let (policy, cfg, step) = load_checkpoint(&joint.checkpoint, &device).unwrap();
    assert_eq!(step, steps);
    assert!(cfg.planner.is_some() && policy.planner.is_some());
    let (alone_policy, _, _) = load_checkpoint(&alone.checkpoint, &device).unwrap();
    assert!(alone_policy.planner.is_none());
    let ej = chunk_error(&policy, true);
    let ea = chunk_error(&alone_policy, false);
    eprintln!("chunk error: joint {ej:.4}, System 1 alone {ea:.4}");
    assert!(ej < 0.5 * ea, "joint {ej} vs alone {ea}");

    // The subgoal head learned its labels (they differ by instruction and image).
    let csv = std::fs::read_to_string(dir.join("joint/loss.csv")).unwrap();
    let sg: Vec<f32> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(4).unwrap().parse().unwrap())
        .collect();
    // No grounding data: its column is NaN on every row.
    assert!(
        csv.lines()
            .skip(1)
            .all(|l| l.rsplit(',').next() == Some("NaN")),
        "{csv}"
    );
    let (s0, s1) = (sg[0], sg[sg.len() - 50..].iter().sum::<f32>() / 50.0);
    eprintln!("subgoal loss {s0:.4} → {s1:.5}");
    assert!(s1 < s0 / 10.0, "subgoal loss {s0} → {s1}");
    assert_subgoals_learned(&policy);
    // The tokenizer travelled with the checkpoint and knows the instructions' words.
    let tok = policy.prompt.as_ref().unwrap();
    assert!(tok.tokenize("go right").unwrap().iter().all(|&id| id != 1));
    std::fs::remove_dir_all(&dir).ok();
}

fn planner_tensors(dir: &Path) -> BTreeMap<String, HostTensor> {
    bicameral_policy::read_safetensors(&dir.join("planner.safetensors")).unwrap()
}

#[test]
fn frozen_parts_do_not_change() {
    let dir = tmp("dual-freeze");
    let data: Vec<PathBuf> = vec![dir.join("data")];
    write_dataset(&data[0]);
    let device = bicameral_policy::cpu_device();
    let mut cfg = tiny_config(12, 9, None);
    cfg.planner = Some(planner_size(vec![
        PlannerPart::Vision,
        PlannerPart::Language,
    ]));
    let out = dir.join("run");
    // Stop after 4 steps (checkpoint), then resume to 12.
    train_s1(&data, &cfg, &out, false, &device, &mut |s| s.step < 3).unwrap();
    let before = planner_tensors(&out.join("checkpoint"));
    train_s1(&data, &cfg, &out, true, &device, &mut |_| true).unwrap();
    let after = planner_tensors(&out.join("checkpoint"));
    assert_eq!(before.len(), after.len());
    let (mut frozen, mut trained) = (0, 0);
    for (k, v) in &before {
        let same = after[k] == *v;
        if k.starts_with("vision_model.") || k.starts_with("language_model.") {
            assert!(same, "{k} changed although frozen");
            frozen += 1;
        } else if k.starts_with("mlp1.") && k.ends_with("weight") {
            assert!(!same, "{k} did not train");
            trained += 1;
        }
    }
    assert!(
        frozen > 10 && trained >= 2,
        "{frozen} frozen, {trained} trained"
    );

    // A camera the dataset does not have is named in the error.
    let mut bad = cfg.clone();
    if let Some(p) = bad.planner.as_mut() {
        p.cameras = vec!["observation.images.wrist".into()];
    }
    let err = train_s1(&data, &bad, &dir.join("bad"), false, &device, &mut |_| true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("observation.images.wrist"), "{err}");
    // The plan width must match the head.
    let mut bad = cfg.clone();
    bad.head.plan_dim = 32;
    let e = bad.validate().unwrap_err();
    assert!(e.contains("planner.lm_width"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A new planner's vocabulary takes the words of every instruction it trains on: words that only
/// the grounding scenes use ("touch", "block", "yellow") get tokens of their own, not the
/// unknown token.
#[test]
fn grounding_instructions_join_the_vocabulary() {
    let dir = tmp("vocab");
    let (demos, scenes) = (dir.join("demos"), dir.join("scenes"));
    write_toy(&demos, demo_episodes(|_| serde_json::json!({})));
    let frames = || {
        vec![Frame {
            state: vec![0.0, 0.0],
            action: vec![0.0, 0.0],
            images: vec![image(0)],
        }]
    };
    let label = serde_json::json!({ "subgoal": subgoal(0) });
    write_toy(
        &scenes,
        vec![
            ("touch the yellow block", frames(), label.clone()),
            ("go left", frames(), label),
        ],
    );
    let mut cfg = dual_config(1);
    cfg.planner.as_mut().unwrap().grounding_batch = 2;
    let out = dir.join("run");
    train(
        &[demos],
        &[scenes],
        &cfg,
        &out,
        false,
        &bicameral_policy::cpu_device(),
        &mut |_| true,
    )
    .unwrap();
    let tok: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("checkpoint/tokenizer.json")).unwrap(),
    )
    .unwrap();
    let vocab = tok["model"]["vocab"].as_object().unwrap();
    for w in ["touch", "the", "yellow", "block", "go", "left", "right"] {
        assert!(vocab.contains_key(w), "{w} not in {vocab:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
