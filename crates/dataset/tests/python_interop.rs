//! Real consumers: pyarrow/pandas and LeRobot itself (0.4.4 for v3.0, 0.3.3 for v2.1) read our
//! datasets, and our reader reads datasets LeRobot wrote. Runs
//! `tests/python/setup_venv.sh` (a pinned venv under ~/.cache/bicameral, created once: a few
//! minutes and ~6.5 GB the first time) and `tests/python/interop.py`.
//! Set `BICAMERAL_SKIP_PYTHON_INTEROP=1` to skip on machines without PyPI access.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use bicameral_dataset::{Dataset, Format};
use common::*;
use serde_json::{Value, json};

fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python")
}

fn expected(dir: &Path, video: bool) -> Value {
    let ds = Dataset::open(dir).expect("open ours");
    let mut rows = vec![];
    for (e, t) in [(0usize, 0usize), (0, 6), (1, 0), (1, 2), (2, 11)] {
        let ep = ds.episode(e).expect("episode");
        rows.push(json!({
            "index": ep.global_index[t],
            "episode_index": e,
            "frame_index": t,
            "task": ep.task,
            "timestamp": ep.timestamps[t] as f64,
            "state": ep.state[t].iter().map(|&v| v as f64).collect::<Vec<_>>(),
            "action": ep.action[t].iter().map(|&v| v as f64).collect::<Vec<_>>(),
            "image0": ep.images[0].1[t].rgb,
        }));
    }
    json!({
        "state_dim": 5, "action_dim": 4, "cameras": ["ego_view", "wrist_view"],
        "width": if video { VW } else { W }, "height": if video { VH } else { H }, "horizon": 5,
        "video": video,
        "total_frames": ds.info().total_frames,
        "lengths": LENGTHS,
        "tasks": ds.info().tasks,
        "rows": rows,
    })
}

/// Compares a dataset LeRobot wrote with the values its script recorded.
fn check_lerobot_written(dir: &Path, record: &Path, format: Format) {
    let ds = Dataset::open(dir).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()));
    let rec: Value = serde_json::from_slice(&std::fs::read(record).expect("record")).unwrap();
    assert_eq!(ds.info().format, format);
    assert_eq!(ds.info().fps, 15.0);
    assert_eq!(ds.info().robot_type.as_deref(), Some("lerobot_toy"));
    let eps = rec["episodes"].as_array().unwrap();
    assert_eq!(ds.num_episodes(), eps.len());
    let mut global = 0;
    for (i, e) in eps.iter().enumerate() {
        let got = ds
            .episode(i)
            .unwrap_or_else(|err| panic!("{}: episode {i}: {err}", dir.display()));
        assert_eq!(got.task, e["task"].as_str().unwrap());
        let n = e["state"].as_array().unwrap().len();
        assert_eq!(got.state.len(), n);
        for t in 0..n {
            let f32s = |v: &Value| -> Vec<f32> {
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap() as f32)
                    .collect()
            };
            assert_eq!(got.state[t], f32s(&e["state"][t]), "ep {i} t {t} state");
            assert_eq!(got.action[t], f32s(&e["action"][t]), "ep {i} t {t} action");
            let px: Vec<u8> = e["image"][t]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u8)
                .collect();
            assert_eq!(got.images[0].0, "observation.images.cam");
            if rec["video"].as_bool() == Some(true) {
                // LeRobot's AV1 (CRF 30) through our ffmpeg decoder: lossy but the right frame.
                let diff = |a: &[u8], b: &[u8]| -> f64 {
                    a.iter()
                        .zip(b)
                        .map(|(x, y)| (*x as f64 - *y as f64).abs())
                        .sum::<f64>()
                        / a.len() as f64
                };
                let d = diff(&got.images[0].1[t].rgb, &px);
                assert!(
                    d < 8.0,
                    "{}: ep {i} t {t}: mean abs diff {d}",
                    dir.display()
                );
            } else {
                assert_eq!(got.images[0].1[t].rgb, px, "ep {i} t {t} image");
            }
            assert_eq!(got.global_index[t], global);
            assert!((got.timestamps[t] as f64 - t as f64 / 15.0).abs() < 1e-4);
            global += 1;
        }
        let s = ds.sample(i, n - 1, 3, true).expect("sample");
        assert_eq!(s.action_mask, vec![1.0, 0.0, 0.0]);
        assert_eq!(s.images[0].1.rgb, got.images[0].1[n - 1].rgb);
    }
    let st = ds.info().stats("observation.state").expect("state stats");
    assert_eq!(st.mean.len(), 3);
}

#[test]
fn python_consumers_read_ours_and_we_read_theirs() {
    if std::env::var_os("BICAMERAL_SKIP_PYTHON_INTEROP").is_some() {
        eprintln!("BICAMERAL_SKIP_PYTHON_INTEROP set: skipping the Python interop test");
        return;
    }
    let work = scratch("python-interop");
    let v21 = work.join("ours-v21");
    let v30 = work.join("ours-v30");
    write_dataset(&v21, Format::LeRobotV21, &Default::default(), 3);
    write_dataset(&v30, Format::LeRobotV30, &Default::default(), 3);
    let mut exp = json!({"v21": expected(&v21, false), "v30": expected(&v30, false)});
    // Video datasets too when ffmpeg is available (LeRobot decodes them with PyAV).
    let video = ffmpeg();
    if video {
        for (format, name) in [
            (Format::LeRobotV21, "v21-video"),
            (Format::LeRobotV30, "v30-video"),
        ] {
            let dir = work.join(format!("ours-{name}"));
            let mut w = bicameral_dataset::DatasetWriter::create(&dir, format, video_spec(), false)
                .expect("create video dataset");
            for i in 0..3 {
                w.write_episode(&video_episode(i)).expect("video episode");
            }
            w.finish().expect("finish video dataset");
            exp[name] = expected(&dir, true);
        }
    } else {
        eprintln!("ffmpeg not on PATH: LeRobot video interop not exercised");
    }
    std::fs::write(
        work.join("expected.json"),
        serde_json::to_vec_pretty(&exp).unwrap(),
    )
    .unwrap();

    let setup = Command::new("bash")
        .arg(python_dir().join("setup_venv.sh"))
        .output()
        .expect("run setup_venv.sh");
    assert!(
        setup.status.success(),
        "setup_venv.sh failed:\n{}",
        String::from_utf8_lossy(&setup.stderr)
    );
    let venv = String::from_utf8_lossy(&setup.stdout)
        .trim()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    let python = Path::new(&venv).join("bin/python");
    assert!(python.exists(), "no python in venv {venv:?}");

    let out = Command::new(&python)
        .arg(python_dir().join("interop.py"))
        .args(["all", "--work"])
        .arg(work.as_os_str())
        .output()
        .expect("run interop.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "interop.py failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("INTEROP "))
        .map(|l| serde_json::from_str(l).expect("summary JSON"))
        .expect("INTEROP line");
    eprintln!("interop summary: {summary}");
    let total = LENGTHS.iter().sum::<usize>() as u64;
    assert_eq!(summary["lerobot_0.4.4_loads_ours_v30"]["frames"], total);
    assert_eq!(summary["lerobot_0.3.3_loads_ours_v21"]["frames"], total);
    assert_eq!(
        summary["lerobot_0.4.4_loads_converted_v21"]["frames"],
        total
    );
    assert_eq!(summary["lerobot_0.4.4_loads_ours_v30"]["rows_checked"], 5);
    assert!(summary["pyarrow_v21"]["files"].as_u64().unwrap() >= 3);
    assert!(summary["pyarrow_v30"]["files"].as_u64().unwrap() >= 3);
    if video {
        assert_eq!(
            summary["lerobot_0.4.4_loads_ours_v30-video"]["frames"],
            total
        );
        assert_eq!(
            summary["lerobot_0.3.3_loads_ours_v21-video"]["frames"],
            total
        );
    }

    // Datasets written by LeRobot itself.
    check_lerobot_written(
        &work.join("lerobot-v30"),
        &work.join("lerobot-v30.json"),
        Format::LeRobotV30,
    );
    check_lerobot_written(
        &work.join("lerobot-v21"),
        &work.join("lerobot-v21.json"),
        Format::LeRobotV21,
    );
    if video {
        // LeRobot's mp4s (AV1; v3.0 concatenates episodes in one file) decoded by ffmpeg.
        check_lerobot_written(
            &work.join("lerobot-v30-video"),
            &work.join("lerobot-v30-video.json"),
            Format::LeRobotV30,
        );
        check_lerobot_written(
            &work.join("lerobot-v21-video"),
            &work.join("lerobot-v21-video.json"),
            Format::LeRobotV21,
        );
    }

    // Our v2.1 after LeRobot's own v2.1 → v3.0 conversion reads back identical.
    let conv = Dataset::open(&work.join("converted/bicameral/interop")).expect("open converted");
    let ours = Dataset::open(&v21).unwrap();
    assert_eq!(conv.info().format, Format::LeRobotV30);
    assert_eq!(conv.info().tasks, ours.info().tasks);
    for i in 0..3 {
        let (a, b) = (conv.episode(i).unwrap(), ours.episode(i).unwrap());
        assert_eq!(a.state, b.state);
        assert_eq!(a.action, b.action);
        assert_eq!(a.images, b.images);
        assert_eq!(a.global_index, b.global_index);
        assert_eq!(a.meta, b.meta, "episode_meta survives LeRobot's conversion");
    }
}
