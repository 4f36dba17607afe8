//! End-to-end tests of the `bicameral` binary: the sim tour writes a recording rerun can decode,
//! the bench prints its JSON, bad input gets a clear error.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::rrd_entities;

fn bicameral() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bicameral"));
    c.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    c.env("BICAMERAL_LOG", "warn");
    c
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bicameral-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn sim_view_saves_a_recording_rerun_decodes() {
    let dir = tmp_dir("view");
    let out = dir.join("view.rrd");
    let res = bicameral()
        .args([
            "sim",
            "view",
            "--seconds",
            "2.5",
            "--camera-hz",
            "4",
            "--save",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "sim view failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(out.is_file(), "no recording written");
    assert!(
        !dir.join("view.rrd.partial").exists(),
        "partial file left behind"
    );
    let (chunks, entities) = rrd_entities(&out);
    assert!(chunks > 100, "only {chunks} chunks");
    for e in [
        "/world/robot/left_hand",
        "/world/robot/left_hand/g0",
        "/world/objects/red_cube",
        "/world/cameras/ego_view/image",
        "/world/cameras/ego_view/depth",
        "/world/cameras/left_wrist/image",
        "/world/contacts",
        "/joints/position/left_elbow_pitch",
        "/joints/effort/waist_pitch",
    ] {
        assert!(
            entities.contains(e),
            "{e} missing from the recording; has {entities:?}"
        );
    }
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(stdout.contains("saved"), "{stdout}");
}

#[test]
fn bench_sim_prints_json() {
    let res = bicameral()
        .args([
            "bench",
            "sim",
            "--json",
            "--seconds",
            "0.2",
            "--repeats",
            "1",
            "--frames",
            "5",
            "--workers",
            "2",
        ])
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&res.stdout).expect("JSON on stdout");
    for key in [
        "physics_steps_per_s_one_world",
        "physics_steps_per_s_n_worlds",
        "physics_steps_per_s_with_cameras",
        "render_frames_per_s",
    ] {
        let x = v[key].as_f64().unwrap_or(0.0);
        assert!(x > 0.0, "{key} = {x}");
    }
    assert_eq!(v["trajectory_steps"].as_u64(), Some(100));
    assert!(v["render_pixels_hit"].as_u64().unwrap() > 1000);
}

#[test]
fn bad_scene_is_a_clear_error() {
    let dir = tmp_dir("bad");
    let scene = dir.join("broken_scene.toml");
    std::fs::write(
        &scene,
        "name = \"x\"\nrobot = \"bc_humanoid\"\n[physics]\ndt = -1.0\n",
    )
    .unwrap();
    let res = bicameral()
        .args(["sim", "view", "--seconds", "0.1", "--scene"])
        .arg(&scene)
        .arg("--save")
        .arg(dir.join("x.rrd"))
        .output()
        .unwrap();
    assert!(!res.status.success());
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains("broken_scene.toml") && err.contains("physics.dt"),
        "{err}"
    );
    assert!(!dir.join("x.rrd").exists());
}

fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// Three pick-and-place demos: two workers in one go, versus one worker killed (SIGKILL) right
/// after its first episode is committed and then resumed — the datasets must be byte-identical.
/// Then `dataset info` and `dataset view` on the result, and bad outputs.
#[test]
fn datagen_is_reproducible_across_workers_and_kill_resume() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tmp_dir("datagen");
    let datagen = |out: &Path, workers: &str| {
        let mut c = bicameral();
        c.args([
            "datagen",
            "--task",
            "pick_place",
            "--format",
            "lerobot-v3",
            "--seed",
            "7",
        ])
        .args(["--episodes", "3", "--workers", workers, "--out"])
        .arg(out);
        c
    };
    let a = dir.join("a");
    let b = dir.join("b");
    let res = datagen(&a, "2").output().unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let summary = String::from_utf8_lossy(&res.stdout);
    assert!(summary.contains("3 episodes"), "{summary}");

    let mut child = datagen(&b, "1")
        .env("BICAMERAL_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let written = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("episode written"));
    assert!(written, "datagen ended before writing an episode");
    child.kill().unwrap();
    child.wait().unwrap();
    let mut resume = datagen(&b, "1");
    resume.arg("--resume");
    let res = resume.output().unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let (fa, fb) = (files(&a), files(&b));
    assert_eq!(
        fa.iter().map(|f| &f.0).collect::<Vec<_>>(),
        fb.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for ((name, x), (_, y)) in fa.iter().zip(&fb) {
        assert!(x == y, "{} differs between the runs", name.display());
    }

    // dataset info: JSON summary with the features and statistics.
    let res = bicameral()
        .args(["dataset", "info", "--json"])
        .arg(&a)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&res.stdout).unwrap();
    assert_eq!(info["total_episodes"], 3);
    assert_eq!(info["codebase_version"], "v3.0");
    let cams: Vec<&str> = info["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(
        cams,
        [
            "observation.images.ego_view",
            "observation.images.left_wrist",
            "observation.images.right_wrist"
        ]
    );
    let state_dim = info["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "observation.state")
        .map(|f| f["shape"][0].as_u64().unwrap() as usize)
        .unwrap();
    assert!(state_dim > 10);
    for k in ["min", "max", "mean", "std", "q01", "q99"] {
        let v = info["stats"]["observation.state"][k]
            .as_array()
            .map(Vec::len);
        assert_eq!(v, Some(state_dim), "observation.state {k}");
    }

    // dataset view: the replay holds the recorded images and signals and the re-simulated world,
    // whose joint states reproduce the recorded ones.
    let rrd = dir.join("ep1.rrd");
    let res = bicameral()
        .args(["dataset", "view", "--episode", "1", "--save"])
        .arg(&rrd)
        .arg(&a)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let out = String::from_utf8_lossy(&res.stdout);
    let diff: f64 = out
        .split("reproduced to ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no re-simulation report in: {out}"));
    assert!(diff < 1e-5, "re-simulated states differ by {diff}");
    let (_, entities) = rrd_entities(&rrd);
    for e in [
        "/dataset/images/ego_view",
        "/dataset/images/right_wrist",
        "/task",
        "/world/robot/left_hand",
    ] {
        assert!(entities.contains(e), "{e} missing from {entities:?}");
    }
    assert!(entities.iter().any(|e| e.starts_with("/world/objects/")));
    assert!(entities.iter().any(|e| e.starts_with("/dataset/action/")));
    let res = bicameral()
        .args(["dataset", "view", "--episode", "3", "--save"])
        .arg(dir.join("x.rrd"))
        .arg(&a)
        .output()
        .unwrap();
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("out of range"));

    // Writing into a directory that is not a dataset is refused and leaves it alone.
    let junk = dir.join("junk");
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(junk.join("notes.txt"), "keep me").unwrap();
    let res = bicameral()
        .args([
            "datagen",
            "--task",
            "pick_place",
            "--episodes",
            "1",
            "--out",
        ])
        .arg(&junk)
        .output()
        .unwrap();
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("junk"));
    assert_eq!(files(&junk).len(), 1);
    assert_eq!(
        std::fs::read_to_string(junk.join("notes.txt")).unwrap(),
        "keep me"
    );
    // An existing dataset without --resume is refused.
    let before = files(&a);
    let res = datagen(&a, "1").output().unwrap();
    assert!(!res.status.success());
    assert!(files(&a) == before, "the existing dataset was modified");
    // Unwritable output (below a regular file).
    let res = bicameral()
        .args([
            "datagen",
            "--task",
            "pick_place",
            "--episodes",
            "1",
            "--out",
        ])
        .arg(junk.join("notes.txt").join("ds"))
        .output()
        .unwrap();
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("notes.txt"));
    let res = bicameral()
        .args([
            "datagen",
            "--task",
            "no_such_task",
            "--episodes",
            "1",
            "--out",
        ])
        .arg(dir.join("c"))
        .output()
        .unwrap();
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("no_such_task"));
    assert!(!dir.join("c").exists());

    train_s1_on_generated_data(&dir, &a);
}

/// `train s1` on a datagen dataset (given twice: same robot, so one embodiment with merged
/// statistics), with the loss curve logged to rerun; then resumed to more steps.
fn train_s1_on_generated_data(dir: &Path, data: &Path) {
    let cfg = dir.join("tiny.toml");
    let tiny = |steps: usize| {
        format!(
            "steps = {steps}\nbatch_size = 4\nseed = 1\ncheckpoint_every = 10\n\
             [head]\nlayers = 2\nheads = 2\nhead_dim = 16\nhidden_size = 32\nplan_dim = 16\n\
             plan_tokens = 2\nfuture_tokens = 2\nadapter_layers = 1\nadapter_heads = 2\n\
             action_horizon = 8\ninference_steps = 4\n\
             [optim]\nlr = 1e-3\nwarmup_steps = 5\nweight_decay = 0.0\ngrad_clip_norm = 1.0\n\
             ema_decay = 0.9\n"
        )
    };
    std::fs::write(&cfg, tiny(20)).unwrap();
    let run = dir.join("run");
    let rrd = dir.join("train.rrd");
    let train = |extra: &[&str]| {
        bicameral()
            .args(["train", "s1", "--dataset"])
            .arg(data)
            .arg("--dataset")
            .arg(data)
            .arg("--config")
            .arg(&cfg)
            .arg("--out")
            .arg(&run)
            .args(extra)
            .output()
            .unwrap()
    };
    let res = train(&["--save", rrd.to_str().unwrap()]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(String::from_utf8_lossy(&res.stdout).contains("trained 20 steps"));
    let csv = std::fs::read_to_string(run.join("loss.csv")).unwrap();
    let losses: Vec<f64> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(losses.len(), 20);
    assert!(
        losses.iter().all(|l| l.is_finite() && *l > 0.0),
        "{losses:?}"
    );
    let norm: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("checkpoint/normalization.json")).unwrap(),
    )
    .unwrap();
    let embodiments = norm["embodiments"].as_array().unwrap();
    assert_eq!(embodiments.len(), 1, "one robot, one embodiment");
    assert_eq!(embodiments[0]["name"], "bc_humanoid");
    let (_, entities) = rrd_entities(&rrd);
    for e in ["/train/loss", "/train/lr", "/train/grad_norm"] {
        assert!(entities.contains(e), "{e} missing from {entities:?}");
    }
    // Resume to 30 steps: the CSV continues, the checkpoint says 30.
    std::fs::write(&cfg, tiny(30)).unwrap();
    let res = train(&["--resume"]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let csv = std::fs::read_to_string(run.join("loss.csv")).unwrap();
    assert_eq!(csv.lines().count(), 31);
    let state = std::fs::read_to_string(run.join("checkpoint/state.json")).unwrap();
    assert!(state.contains("30"), "{state}");
    // A dataset directory that does not exist is named in the error.
    let res = bicameral()
        .args(["train", "s1", "--dataset"])
        .arg(dir.join("nope"))
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(dir.join("run-nope"))
        .output()
        .unwrap();
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("nope"));
}

#[test]
fn bench_datagen_prints_json() {
    let res = bicameral()
        .args([
            "bench",
            "datagen",
            "--json",
            "--task",
            "pick_place",
            "--episodes",
            "1",
        ])
        .args(["--workers", "1"])
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&res.stdout).unwrap();
    let row = &v["tasks"][0];
    assert_eq!(row["task"], "pick_place");
    assert_eq!(row["episodes"], 1);
    assert!(row["demos_per_hour"].as_f64().unwrap() > 0.0);
    // Both rates are measured (which is faster depends on the machine's load: no timing
    // assertion here).
    assert!(row["demos_per_hour_without_cameras"].as_f64().unwrap() > 0.0);
    assert_eq!(row["expert_success_rate"], 1.0);
    assert_eq!(row["cameras"].as_array().unwrap().len(), 3);
}

/// Every task's datagen output opens in pyarrow and in LeRobot's own loader (v2.1 with LeRobot
/// 0.3.3, v3.0 with LeRobot 0.4.4), which see the same frames, values and tasks as our reader.
/// Uses the dataset crate's pinned venv; `BICAMERAL_SKIP_PYTHON_INTEROP=1` skips it.
#[test]
fn datagen_output_opens_in_lerobot() {
    if std::env::var_os("BICAMERAL_SKIP_PYTHON_INTEROP").is_some() {
        eprintln!("BICAMERAL_SKIP_PYTHON_INTEROP set: skipping");
        return;
    }
    let dir = tmp_dir("datagen-lerobot");
    let runs = [
        ("pick_place", "lerobot-v2.1"),
        ("stack", "lerobot-v3"),
        ("handover", "lerobot-v3"),
        ("handover", "lerobot-v2.1"),
    ];
    let mut dirs = Vec::new();
    for (task, format) in runs {
        let out = dir.join(format!("{task}-{format}"));
        let res = bicameral()
            .args([
                "datagen",
                "--task",
                task,
                "--format",
                format,
                "--episodes",
                "1",
            ])
            .args(["--workers", "1", "--seed", "3", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            res.status.success(),
            "{task}: {}",
            String::from_utf8_lossy(&res.stderr)
        );
        dirs.push(out);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let setup = Command::new("bash")
        .arg(manifest.join("../dataset/tests/python/setup_venv.sh"))
        .output()
        .unwrap();
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );
    let venv = String::from_utf8_lossy(&setup.stdout)
        .trim()
        .lines()
        .last()
        .unwrap()
        .to_string();
    let res = Command::new(Path::new(&venv).join("bin/python"))
        .arg(manifest.join("tests/python/lerobot_open.py"))
        .args(&dirs)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(
        res.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("OPENED "))
        .unwrap();
    let opened: serde_json::Value = serde_json::from_str(line).unwrap();
    for d in &dirs {
        let theirs = &opened[d.to_str().unwrap()];
        let ours = bicameral_dataset::Dataset::open(d).unwrap();
        let ep = ours.episode(0).unwrap();
        assert_eq!(
            theirs["frames"],
            ours.info().total_frames,
            "{}",
            d.display()
        );
        assert_eq!(theirs["pyarrow_rows"], ours.info().total_frames);
        assert_eq!(theirs["episodes"], 1);
        for item in theirs["items"].as_array().unwrap() {
            let i = item["index"].as_u64().unwrap() as usize;
            assert_eq!(item["task"], ep.task.as_str());
            let f32s = |v: &serde_json::Value| -> Vec<f32> {
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap() as f32)
                    .collect()
            };
            assert_eq!(
                f32s(&item["state"]),
                ep.state[i],
                "{} frame {i}",
                d.display()
            );
            assert_eq!(
                f32s(&item["action"]),
                ep.action[i],
                "{} frame {i}",
                d.display()
            );
            let images = item["images"].as_object().unwrap();
            assert_eq!(images.len(), 3);
            for shape in images.values() {
                assert_eq!(shape, &serde_json::json!([3, 224, 224]));
            }
        }
    }
}

/// `bench s1` times a chunk and exports the weights in upstream layout, which load back.
#[test]
fn bench_s1_prints_json_and_exports_a_loadable_checkpoint() {
    let dir = tmp_dir("bench-s1");
    let res = bicameral()
        .args([
            "bench",
            "s1",
            "--json",
            "--configs",
            "default-cpu",
            "--repeats",
            "1",
            "--export",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&res.stdout).unwrap();
    let row = &v["configs"]["default-cpu"];
    assert!(row["chunk_ms"].as_f64().unwrap() > 0.0);
    assert!(row["params"].as_u64().unwrap() > 1_000_000);
    let ckpt = dir.join("default-cpu");
    let device = bicameral_policy::cpu_device();
    let (_, report) =
        bicameral_policy::ActionHead::load(&ckpt, &device, &Default::default()).unwrap();
    assert!(report.loaded > 50);
    assert!(ckpt.join("bench_inputs.json").is_file());
    let res = bicameral()
        .args(["bench", "s1", "--configs", "huge"])
        .output()
        .unwrap();
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("huge"));
}

/// `datagen --scenes`: one-frame episodes of the episode's start with the instruction, the
/// subgoal label and only the cameras asked for; an unknown camera is a clear error.
#[test]
fn datagen_scenes_write_labeled_first_frames() {
    let dir = tmp_dir("scenes");
    let out = dir.join("scenes");
    let res = bicameral()
        .args(["datagen", "--task", "pick_place", "--scenes"])
        .args([
            "--cameras",
            "ego_view",
            "--episodes",
            "4",
            "--seed",
            "3",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(String::from_utf8_lossy(&res.stdout).contains("4 scenes"));
    let ds = bicameral_dataset::Dataset::open(&out).unwrap();
    assert_eq!(ds.num_episodes(), 4);
    assert_eq!(
        ds.info().camera_keys(),
        vec!["observation.images.ego_view"],
        "only the camera asked for"
    );
    for e in 0..4 {
        assert_eq!(ds.episode_len(e), 1);
        let ep = ds.episode(e).unwrap();
        let sg = ep.meta["subgoal"].as_array().expect("a subgoal label");
        assert_eq!(sg.len(), 6);
        // The named object and its bowl lie on the table (z between 0.6 and 0.9 m).
        assert!(sg.iter().all(|v| v.as_f64().unwrap().is_finite()));
        assert!((0.6..0.9).contains(&sg[2].as_f64().unwrap()));
        let (_, imgs) = &ep.images[0];
        assert_eq!(imgs.len(), 1);
        // Not a blank frame: the scene has many colours.
        let px = &imgs[0].rgb;
        let distinct: std::collections::BTreeSet<&[u8]> = px.chunks(3).collect();
        assert!(distinct.len() > 100, "{} colours", distinct.len());
    }
    // --any-side: the named object and its destination also land on opposite sides of the
    // table (y of opposite sign); by default the one-arm band keeps them on one side.
    let sides = |extra: &[&str], name: &str| -> Vec<bool> {
        let out = dir.join(name);
        let res = bicameral()
            .args([
                "datagen",
                "--task",
                "pick_place",
                "--scenes",
                "--episodes",
                "12",
            ])
            .args(["--cameras", "ego_view", "--seed", "5"])
            .args(extra)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        common::ok(&res, name);
        let ds = bicameral_dataset::Dataset::open(&out).unwrap();
        (0..ds.num_episodes())
            .map(|e| {
                let sg = ds.episode(e).unwrap().meta["subgoal"].clone();
                let y = |i: usize| sg[i].as_f64().unwrap();
                y(1) * y(4) < 0.0 && y(1).abs() > 0.03 && y(4).abs() > 0.03
            })
            .collect()
    };
    assert!(!sides(&[], "one_side").contains(&true));
    assert!(sides(&["--any-side"], "any_side").contains(&true));
    // The robot's cameras are named in the error.
    let res = bicameral()
        .args(["datagen", "--task", "pick_place", "--scenes"])
        .args(["--cameras", "nose_cam", "--episodes", "1", "--out"])
        .arg(dir.join("bad"))
        .output()
        .unwrap();
    assert!(!res.status.success());
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains("nose_cam") && err.contains("ego_view"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
