//! Training System 1 end to end on a tiny LeRobot dataset: the loss falls at least 10×, the
//! checkpoint reloads, sampled chunks reproduce the training chunks, and a resumed run equals
//! an uninterrupted one.

use std::path::{Path, PathBuf};

use bicameral_dataset::{DatasetSpec, DatasetWriter, Episode, Format, Frame};
use bicameral_train::{HeadSize, OptimConfig, TrainConfig, load_checkpoint, train_s1};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bicameral-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// One episode of 24 frames: a 3-DoF arm follows a smooth curve; the state is the previous
/// action (as with a stiff position controller).
fn action_at(t: usize) -> Vec<f32> {
    let x = t as f32 * 0.25;
    vec![0.6 * x.sin(), 0.3 * (0.5 * x).cos() - 0.2, 0.05 * x]
}

fn write_dataset(dir: &Path) {
    let spec = DatasetSpec {
        fps: 10.0,
        robot_type: "toy_arm".into(),
        state_names: (0..3).map(|i| format!("j{i}")).collect(),
        action_names: (0..3).map(|i| format!("j{i}")).collect(),
        state_slices: vec![("arm".into(), 0, 3)],
        action_slices: vec![("arm".into(), 0, 3)],
        cameras: vec![],
        video: false,
    };
    let mut w = DatasetWriter::create(dir, Format::LeRobotV30, spec, false).unwrap();
    let frames = (0..24)
        .map(|t| Frame {
            state: if t == 0 {
                action_at(0)
            } else {
                action_at(t - 1)
            },
            action: action_at(t),
            images: vec![],
        })
        .collect();
    w.write_episode(&Episode {
        task: "trace the curve".into(),
        frames,
        meta: serde_json::json!({}),
    })
    .unwrap();
    w.finish().unwrap();
}

fn config(steps: usize) -> TrainConfig {
    TrainConfig {
        steps,
        batch_size: 16,
        seed: 3,
        checkpoint_every: 100,
        head: HeadSize {
            layers: 2,
            heads: 2,
            head_dim: 16,
            hidden_size: 32,
            plan_dim: 16,
            plan_tokens: 2,
            future_tokens: 2,
            adapter_layers: 1,
            adapter_heads: 2,
            action_horizon: 8,
            inference_steps: 8,
        },
        optim: OptimConfig {
            lr: 3e-3,
            warmup_steps: 50,
            final_lr_fraction: 0.1,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            grad_clip_norm: Some(1.0),
        },
    }
}

#[test]
fn overfits_a_tiny_dataset_and_resumes_exactly() {
    let dir = tmp("overfit");
    let data = dir.join("data");
    write_dataset(&data);
    let device = bicameral_policy::cpu_device();
    let cfg = config(1500);
    let report = train_s1(
        &data,
        &cfg,
        &dir.join("run"),
        false,
        &device,
        &mut |_, _| true,
    )
    .unwrap();
    let l: Vec<f32> = report.losses.iter().map(|x| x.1).collect();
    let first = l[..20].iter().sum::<f32>() / 20.0;
    let last = l[l.len() - 20..].iter().sum::<f32>() / 20.0;
    eprintln!("loss {first:.4} -> {last:.4}");
    assert!(first / last >= 10.0, "loss fell only {first} -> {last}");
    let csv = std::fs::read_to_string(dir.join("run/loss.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1501);

    // The checkpoint reloads and its samples reproduce the training chunks (physical units).
    let (policy, saved, step) = load_checkpoint(&report.checkpoint, &device).unwrap();
    assert_eq!(step, 1500);
    assert_eq!(saved, cfg);
    let (mut worst, mut sum, mut n) = (0.0f32, 0.0f32, 0usize);
    for t in [0usize, 5, 11, 16] {
        let state = if t == 0 {
            action_at(0)
        } else {
            action_at(t - 1)
        };
        let chunk = policy.act(&state, 7 + t as u64).unwrap();
        assert_eq!(chunk.len(), 8);
        for (k, a) in chunk.iter().enumerate().take(24 - t) {
            let want = action_at(t + k);
            for (x, y) in a.iter().zip(&want) {
                worst = worst.max((x - y).abs());
                sum += (x - y).abs();
                n += 1;
            }
        }
    }
    let mean = sum / n as f32;
    eprintln!("sampled-action error: mean {mean:.4}, worst {worst:.4} (action range ~1.2)");
    // An untrained head is off by ~0.5 on average (its samples are noise-scale).
    assert!(mean < 0.04, "sampled chunks are off by {mean} on average");
    assert!(worst < 0.25, "sampled chunks are off by up to {worst}");

    // Interrupted after 200 steps and resumed: the first 200 losses equal the uninterrupted
    // run's (same seed, same batches), the resumed run starts at step 200 and the loss curve
    // continues in the same CSV.
    let run2 = dir.join("run2");
    train_s1(&data, &cfg, &run2, false, &device, &mut |step, _| {
        step + 1 < 200
    })
    .unwrap();
    let resumed = train_s1(&data, &cfg, &run2, true, &device, &mut |step, _| {
        step + 1 < 260
    })
    .unwrap();
    assert_eq!(resumed.losses.first().unwrap().0, 200);
    assert_eq!(resumed.steps_done, 260);
    let straight: Vec<f32> = report.losses[..200].iter().map(|x| x.1).collect();
    let csv2 = std::fs::read_to_string(run2.join("loss.csv")).unwrap();
    let logged: Vec<f32> = csv2
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(logged.len(), 260);
    assert_eq!(
        &logged[..200],
        &straight[..],
        "same seed, same batches, same losses"
    );
    let (_, _, step) = load_checkpoint(&run2.join("checkpoint"), &device).unwrap();
    assert_eq!(step, 260);

    // Training again into an existing run without --resume is refused.
    let err = train_s1(
        &data,
        &cfg,
        &dir.join("run"),
        false,
        &device,
        &mut |_, _| true,
    )
    .unwrap_err();
    assert!(err.to_string().contains("--resume"), "{err}");
}

#[test]
fn bad_configs_name_the_field() {
    let dir = tmp("badcfg");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("c.toml");
    let mut text = toml::to_string(&config(10)).unwrap();
    text = text.replace("batch_size = 16", "batch_size = 0");
    std::fs::write(&p, &text).unwrap();
    let err = TrainConfig::load(&p).unwrap_err().to_string();
    assert!(
        err.contains("batch_size") && err.contains("c.toml"),
        "{err}"
    );
    std::fs::write(
        &p,
        text.replace("batch_size = 0", "batch_size = 4\nbogus = 1"),
    )
    .unwrap();
    let err = TrainConfig::load(&p).unwrap_err().to_string();
    assert!(err.contains("bogus"), "{err}");
}
