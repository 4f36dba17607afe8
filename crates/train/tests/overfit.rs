//! Training System 1 end to end on two tiny LeRobot datasets of two embodiments mixed in every
//! batch: the loss falls at least 10×, the checkpoint reloads, sampled chunks reproduce each
//! embodiment's training chunks, and a resumed run (weights, EMA, AdamW moments) equals an
//! uninterrupted one bit for bit.

mod common;

use std::path::Path;

use bicameral_dataset::{DatasetSpec, DatasetWriter, Episode, Format, Frame};
use bicameral_train::{TrainConfig, load_checkpoint, train_s1};
use common::{tiny_config, tmp};

/// Embodiment 0 ("toy_arm", 3 DoF) follows one smooth curve, embodiment 1 ("toy_gripper",
/// 2 DoF, other ranges) another; the state is the previous action (as with a stiff position
/// controller).
fn action_at(embodiment: usize, t: usize) -> Vec<f32> {
    let x = t as f32 * 0.25;
    match embodiment {
        0 => vec![0.6 * x.sin(), 0.3 * (0.5 * x).cos() - 0.2, 0.05 * x],
        _ => vec![1.5 - 0.8 * (0.7 * x).cos(), 0.02 + 0.01 * x.sin()],
    }
}

fn state_at(embodiment: usize, t: usize) -> Vec<f32> {
    action_at(embodiment, t.saturating_sub(1))
}

fn write_dataset(dir: &Path, embodiment: usize) {
    write_episodes(dir, embodiment, 1);
}

/// `episodes` episodes of 24 frames; episode `e` is the stretch of the curve from `t = 3e`.
fn write_episodes(dir: &Path, embodiment: usize, episodes: usize) {
    let n = action_at(embodiment, 0).len();
    let spec = DatasetSpec {
        fps: 10.0,
        robot_type: ["toy_arm", "toy_gripper"][embodiment].into(),
        state_names: (0..n).map(|i| format!("j{i}")).collect(),
        action_names: (0..n).map(|i| format!("j{i}")).collect(),
        state_slices: vec![("arm".into(), 0, n)],
        action_slices: vec![("arm".into(), 0, n)],
        cameras: vec![],
        video: false,
    };
    let mut w = DatasetWriter::create(dir, Format::LeRobotV30, spec, false).unwrap();
    for e in 0..episodes {
        let frames = (0..24)
            .map(|t| Frame {
                state: state_at(embodiment, t + 3 * e),
                action: action_at(embodiment, t + 3 * e),
                images: vec![],
            })
            .collect();
        w.write_episode(&Episode {
            task: "trace the curve".into(),
            frames,
            meta: serde_json::json!({}),
        })
        .unwrap();
    }
    w.finish().unwrap();
}

/// Batch 64, not the shared 32: at 32 the run is marginal. Measured at 1500 steps: 3 of 6 seeds
/// (or seed 3 with a different GEMM kernel's rounding) stall at a loss plateau of about 0.22 with
/// embodiment 0 under-learned (a one-embodiment run stalls the same way), while at 64 all 8
/// seeds tried end at 0.014–0.029 (from about 1.46).
fn config(steps: usize) -> TrainConfig {
    TrainConfig {
        batch_size: 64,
        ..tiny_config(steps, 3, Some(0.99))
    }
}

#[test]
fn overfits_two_embodiments_and_resumes_exactly() {
    let dir = tmp("overfit");
    let data = vec![dir.join("arm"), dir.join("gripper")];
    write_dataset(&data[0], 0);
    write_dataset(&data[1], 1);
    let device = bicameral_policy::cpu_device();
    let cfg = config(1500);
    let report = train_s1(&data, &cfg, &dir.join("run"), false, &device, &mut |_| true).unwrap();
    let l: Vec<f32> = report.losses.iter().map(|x| x.1).collect();
    let first = l[..20].iter().sum::<f32>() / 20.0;
    let last = l[l.len() - 20..].iter().sum::<f32>() / 20.0;
    eprintln!("loss {first:.4} -> {last:.4}");
    assert!(first / last >= 10.0, "loss fell only {first} -> {last}");
    let csv = std::fs::read_to_string(dir.join("run/loss.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1501);

    // The checkpoint reloads (EMA weights) and its samples reproduce each embodiment's
    // training chunks in its own physical units and width.
    let (policy, saved, step) = load_checkpoint(&report.checkpoint, &device).unwrap();
    assert_eq!(step, 1500);
    assert_eq!(saved, cfg);
    let names: Vec<&str> = policy
        .normalizer
        .embodiments
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(names, ["toy_arm", "toy_gripper"]);
    assert_eq!(policy.head.config.max_num_embodiments, 2);
    for (e, range) in [(0usize, 1.2f32), (1, 1.6)] {
        let (mut worst, mut sum, mut n) = (0.0f32, 0.0f32, 0usize);
        for t in [0usize, 5, 11, 16] {
            let chunk = policy.act(e, &state_at(e, t), 7 + t as u64).unwrap();
            assert_eq!(chunk.len(), 8);
            for (k, a) in chunk.iter().enumerate().take(24 - t) {
                let want = action_at(e, t + k);
                assert_eq!(a.len(), want.len());
                for (x, y) in a.iter().zip(&want) {
                    worst = worst.max((x - y).abs());
                    sum += (x - y).abs();
                    n += 1;
                }
            }
        }
        let mean = sum / n as f32;
        eprintln!(
            "embodiment {e}: sampled-action error mean {mean:.4}, worst {worst:.4} (range ~{range})"
        );
        // An untrained head is off by about a third of the range on average.
        assert!(
            mean < 0.04 * range,
            "embodiment {e}: sampled chunks are off by {mean} on average"
        );
        assert!(
            worst < 0.2 * range,
            "embodiment {e}: sampled chunks are off by up to {worst}"
        );
    }
    // A state of the wrong width for the embodiment is refused with a message.
    let err = policy.act(1, &[0.0; 3], 0).unwrap_err().to_string();
    assert!(err.contains("toy_gripper"), "{err}");

    // Interrupted after 100 steps and resumed to 130: every loss equals the uninterrupted
    // run's (same batches, and the AdamW moments are restored), and the checkpoint (EMA and raw
    // weights) equals that of a run stopped at 130 without interruption.
    let run2 = dir.join("run2");
    train_s1(&data, &cfg, &run2, false, &device, &mut |s| {
        s.step + 1 < 100
    })
    .unwrap();
    // As runs killed after their checkpoints leave it: rows past the checkpoint's step (here
    // 100 and 101, and earlier 90..=97 logged by a run killed after step 97 and resumed from
    // 90), and a loss curve from before the grounding column existed. Resuming keeps the later
    // row of every step, drops those from the checkpoint's step on and pads the old rows.
    let lines: Vec<String> = std::fs::read_to_string(run2.join("loss.csv"))
        .unwrap()
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string() + "\n")
        .collect();
    let stale = (90..98).map(|s| format!("{s},9,9,9,NaN\n"));
    let old_csv: String = lines[..91]
        .iter()
        .cloned()
        .chain(stale)
        .chain(lines[91..].iter().cloned())
        .chain(["100,9,9,9,NaN\n".to_string(), "101,9,9,9,NaN\n".to_string()])
        .collect();
    assert!(old_csv.starts_with("step,loss,lr,grad_norm,subgoal_loss\n"));
    std::fs::write(run2.join("loss.csv"), old_csv).unwrap();
    let resumed = train_s1(&data, &cfg, &run2, true, &device, &mut |s| s.step + 1 < 130).unwrap();
    assert_eq!(resumed.losses.first().unwrap().0, 100);
    assert_eq!(resumed.steps_done, 130);
    let straight: Vec<f32> = report.losses[..130].iter().map(|x| x.1).collect();
    let csv2 = std::fs::read_to_string(run2.join("loss.csv")).unwrap();
    assert!(csv2.starts_with(bicameral_train::LOSS_CSV_HEADER), "{csv2}");
    let steps: Vec<usize> = csv2
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        steps,
        (0..130).collect::<Vec<_>>(),
        "one row per step, in order"
    );
    assert!(
        csv2.lines().skip(1).all(|l| l.split(',').count() == 6),
        "{csv2}"
    );
    assert!(!run2.join("loss.csv.partial").exists());
    let logged: Vec<f32> = csv2
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(logged.len(), 130);
    assert_eq!(
        &logged[..],
        &straight[..],
        "same seed, same batches, same optimizer state: same losses"
    );
    let run3 = dir.join("run3");
    train_s1(&data, &cfg, &run3, false, &device, &mut |s| {
        s.step + 1 < 130
    })
    .unwrap();
    for file in [
        "model.safetensors",
        "null_plan.safetensors",
        "train_state/raw/model.safetensors",
        "state.json",
    ] {
        let a = std::fs::read(run2.join("checkpoint").join(file)).unwrap();
        let b = std::fs::read(run3.join("checkpoint").join(file)).unwrap();
        assert!(
            a == b,
            "{file} differs between the resumed and the straight run"
        );
    }

    // Training again into an existing run without --resume is refused.
    let err = train_s1(&data, &cfg, &dir.join("run"), false, &device, &mut |_| true).unwrap_err();
    assert!(err.to_string().contains("--resume"), "{err}");
    // Resuming with datasets of other embodiments is refused.
    let err = train_s1(&data[..1], &cfg, &run2, true, &device, &mut |_| true).unwrap_err();
    assert!(err.to_string().contains("embodiments"), "{err}");
}

#[test]
fn bad_configs_name_the_field() {
    let dir = tmp("badcfg");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("c.toml");
    let mut text = toml::to_string(&config(10)).unwrap();
    text = text.replace("batch_size = 64", "batch_size = 0");
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

/// Held-out episodes: `validation_episodes = 1` keeps each dataset's last episode (here a
/// phase-shifted stretch of the same curve) out of the batches and writes its loss at every
/// checkpoint to `val.csv`; the loss falls as the head learns the curve, and an interrupted,
/// resumed run writes the same file byte for byte as an uninterrupted one.
#[test]
fn validation_episodes_are_held_out_and_scored_at_checkpoints() {
    let dir = tmp("validation");
    let data = dir.join("arm");
    write_episodes(&data, 0, 4);
    let device = bicameral_policy::cpu_device();
    let data = vec![data];
    let cfg = TrainConfig {
        validation_episodes: 1,
        checkpoint_every: 50,
        ..tiny_config(200, 5, None)
    };
    let straight = dir.join("straight");
    train_s1(&data, &cfg, &straight, false, &device, &mut |_| true).unwrap();
    let val = std::fs::read_to_string(straight.join("val.csv")).unwrap();
    let rows: Vec<(usize, f32)> = val
        .lines()
        .skip(1)
        .map(|l| {
            let v: Vec<&str> = l.split(',').collect();
            (v[0].parse().unwrap(), v[1].parse().unwrap())
        })
        .collect();
    assert!(val.starts_with(bicameral_train::VAL_CSV_HEADER), "{val}");
    let steps: Vec<usize> = rows.iter().map(|r| r.0).collect();
    assert_eq!(steps, [50, 100, 150, 200], "{val}");
    assert!(rows.iter().all(|r| r.1.is_finite()), "{val}");
    // Fixed batches, so no sampling noise: it falls at every checkpoint (measured 1.38, 1.12,
    // 1.03, 1.02; the 200 steps include the warm-up).
    assert!(
        rows.windows(2).all(|w| w[1].1 < w[0].1) && rows[3].1 < 0.8 * rows[0].1,
        "held-out loss did not fall: {val}"
    );

    // Scoring the checkpoint offline on the held-out episode reproduces the last validation
    // row (same batches and weights; inference instead of training kernels, so not bit for
    // bit); a dataset of another robot is refused by name.
    let (policy, saved, _) = load_checkpoint(&straight.join("checkpoint"), &device).unwrap();
    let sc = bicameral_train::score(&policy, &saved, &data, Some(1), &device).unwrap();
    assert_eq!(sc.frames, 24);
    assert!(
        (sc.flow_loss - rows[3].1).abs() < 1e-4 * rows[3].1,
        "score {} vs validation {}",
        sc.flow_loss,
        rows[3].1
    );
    assert!(sc.subgoal_loss.is_nan(), "no subgoal head");
    let all = bicameral_train::score(&policy, &saved, &data, None, &device).unwrap();
    assert_eq!(all.frames, 4 * 24);
    write_dataset(&dir.join("gripper"), 1);
    let err = bicameral_train::score(&policy, &saved, &[dir.join("gripper")], None, &device)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("toy_gripper") && err.contains("toy_arm"),
        "{err}"
    );

    let resumed = dir.join("resumed");
    train_s1(&data, &cfg, &resumed, false, &device, &mut |s| {
        s.step + 1 < 100
    })
    .unwrap();
    train_s1(&data, &cfg, &resumed, true, &device, &mut |_| true).unwrap();
    assert_eq!(
        std::fs::read_to_string(resumed.join("val.csv")).unwrap(),
        val,
        "resumed and straight runs score the same held-out batches with the same weights"
    );

    // Holding out every episode leaves nothing to train on: refused, naming the dataset.
    let all = TrainConfig {
        validation_episodes: 4,
        ..cfg
    };
    let err = train_s1(&data, &all, &dir.join("bad"), false, &device, &mut |_| true)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("validation_episodes") && err.contains("arm"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
