//! End to end: a tiny System 2 + System 1 checkpoint (real burn models, trained two steps on a
//! synthetic bc_humanoid dataset) driving the simulated robot through the executor, all over a
//! real zenoh session on loopback, launched in one process by `bicameral launch`. The node
//! rates must be within 5 % of the configured ones.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{bicameral, free_port, ok, tiny_dual_checkpoint, tmp_dir};

#[derive(Debug, Default)]
struct Faults {
    commands: u64,
    outside_limits: u64,
    estop_event: bool,
    reset_event: bool,
    garbage_estop: bool,
    rejected_event: bool,
    track_while_stopped: u64,
}

/// From another zenoh peer: garbage on every topic (on the e-stop topic it engages the stop,
/// which a reset then releases), a NaN chunk, an out-of-limit chunk, an e-stop and its reset;
/// watches every joint command against the robot's limits.
fn inject_faults(port: u16) -> Faults {
    use bicameral_msgs::*;
    use bicameral_transport::{Node, Qos, ZenohConfig};
    use std::time::{Duration, Instant};
    let t = Duration::from_secs(20);
    let node = Node::open(&ZenohConfig::loopback_client(port), "e2e", "faults").unwrap();
    let keys = node.keys().clone();
    node.watch_alive()
        .unwrap()
        .wait_alive("executor", t)
        .unwrap();
    let cmds = node
        .subscribe::<JointCommand>(keys.joint_command())
        .unwrap();
    let events = node.subscribe::<SafetyEvent>(keys.safety_event()).unwrap();
    // The embodiment's limits, from the robot description (what the executor enforces).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let emb = bicameral_robot::Embodiment::load(&root.join("robots/bc_humanoid/embodiment.toml"))
        .unwrap();
    let kin = bicameral_robot::Kinematics::new(&emb.load_robot().unwrap());
    let limits: Vec<_> = emb
        .action_dof_indices(&kin)
        .unwrap()
        .iter()
        .map(|&d| kin.dof_limits()[d])
        .collect();
    let mut f = Faults::default();
    let check = |f: &mut Faults, stopped: bool| {
        while let Some(c) = cmds.try_recv() {
            // (Our own garbage on the command topic comes back to us undecodable.)
            let Ok(c) = c else { continue };
            f.commands += 1;
            for (q, l) in c.position.iter().zip(&limits) {
                if !(q.is_finite() && *q >= l.lower - 1e-9 && *q <= l.upper + 1e-9) {
                    f.outside_limits += 1;
                }
            }
            if stopped && c.mode == CommandMode::Track {
                f.track_while_stopped += 1;
            }
        }
        while let Some(Ok(e)) = events.try_recv() {
            match e.event {
                SafetyEventKind::EStopEngaged => f.estop_event = true,
                SafetyEventKind::EStopReset => f.reset_event = true,
                SafetyEventKind::ChunkRejected => f.rejected_event = true,
                _ => {}
            }
        }
    };
    let garbage: [&[u8]; 3] = [b"\x00\x01\x02", b"\xde\xad\xbe\xef garbage", &[0x85; 40]];
    for key in [
        keys.joint_state(),
        keys.camera("ego_view"),
        keys.instruction(),
        keys.plan(),
        keys.action_chunk(),
        keys.joint_command(),
    ] {
        for g in garbage {
            node.put_raw(&key, g).unwrap();
        }
    }
    let mut chunks = node
        .publisher::<ActionChunk>(keys.action_chunk(), Qos::Control)
        .unwrap();
    let bad = |v: f32| ActionChunk {
        header: Header::new::<ActionChunk>("e2e", 0, 0),
        plan_seq: NO_PLAN,
        plan_stamp_ns: 0,
        obs_stamp_ns: 0,
        t0_ns: 0,
        dt_ns: 50_000_000,
        actions: Tensor::from_f32(&[8, 21], &[v; 8 * 21]).unwrap(),
    };
    let until = |f: &mut Faults, d: Duration, stopped: bool| {
        let end = Instant::now() + d;
        while Instant::now() < end {
            check(f, stopped);
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let mut estop = node.publisher::<EStop>(keys.estop(), Qos::Control).unwrap();
    let msg = |engage| EStop {
        header: Header::new::<EStop>("e2e", 0, 0),
        engage,
        operator: "test".into(),
        reason: "fault injection".into(),
    };
    // The safety events may lag the commands on a loaded machine: wait for them (bounded).
    let wait_for = |f: &mut Faults, seen: fn(&Faults) -> bool, stopped: bool| {
        let end = Instant::now() + t;
        while !seen(f) && Instant::now() < end {
            until(f, Duration::from_millis(20), stopped);
        }
    };
    // Commands already in flight may still say "track" for a moment after an e-stop; from the
    // first "hold" on, nothing may track (watched for 1 s) until the reset.
    let first_hold_then_watch = |f: &mut Faults| {
        let end = Instant::now() + t;
        'wait: while Instant::now() < end {
            while let Some(c) = cmds.try_recv() {
                let Ok(c) = c else { continue };
                f.commands += 1;
                if c.mode == CommandMode::Hold {
                    break 'wait;
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        until(f, Duration::from_secs(1), true);
    };
    // The e-stop fails closed: garbage on its topic engages it (released by a real reset).
    node.put_raw(&keys.estop(), garbage[1]).unwrap();
    wait_for(&mut f, |f| f.estop_event, false);
    f.garbage_estop = f.estop_event;
    first_hold_then_watch(&mut f);
    estop.put(&mut msg(false)).unwrap();
    wait_for(&mut f, |f| f.reset_event, false);
    (f.estop_event, f.reset_event) = (false, false);
    // The chunk slot keeps only the latest chunk: wait for the NaN chunk's rejection before
    // sending the next bad one (S1's own chunks may supersede it first; then send again).
    let end = Instant::now() + t;
    while !f.rejected_event && Instant::now() < end {
        chunks.put(&mut bad(f32::NAN)).unwrap();
        until(&mut f, Duration::from_millis(20), false);
    }
    chunks.put(&mut bad(50.0)).unwrap();
    until(&mut f, Duration::from_secs(1), false);
    estop.put(&mut msg(true)).unwrap();
    first_hold_then_watch(&mut f);
    wait_for(&mut f, |f| f.estop_event, true);
    estop.put(&mut msg(false)).unwrap();
    wait_for(&mut f, |f| f.reset_event, false);
    f
}

const PY_INSTRUCTION: &str = "put the green cube in the bowl";

/// Runs tests/python/zenoh_client.py against the launch on `port` for 6 s; `None` when
/// BICAMERAL_SKIP_PYTHON_INTEROP is set.
fn python_client(port: u16) -> Option<serde_json::Value> {
    if std::env::var_os("BICAMERAL_SKIP_PYTHON_INTEROP").is_some() {
        return None;
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let setup = Command::new("bash")
        .arg(here.join("setup_zenoh_venv.sh"))
        .output()
        .unwrap();
    let python = ok(&setup, "setup_zenoh_venv.sh").trim().to_string();
    let res = Command::new(python)
        .arg(here.join("zenoh_client.py"))
        .args([&format!("tcp/127.0.0.1:{port}"), "e2e", "6", PY_INSTRUCTION])
        .output()
        .unwrap();
    Some(serde_json::from_str(ok(&res, "zenoh_client.py").trim()).unwrap())
}

#[test]
fn launch_runs_both_minds_the_executor_and_the_sim_at_their_rates() {
    let dir = tmp_dir("launch");
    let ckpt = tiny_dual_checkpoint(&dir);
    let s = |p: &Path| p.to_str().unwrap().to_owned();

    let port = free_port();
    let launch = dir.join("launch.toml");
    std::fs::write(
        &launch,
        format!(
            r#"
robot = "e2e"

[zenoh]
listen = ["tcp/127.0.0.1:{port}"]

[sim]
task = "pick_place"
seed = 3
state_hz = 100
camera_hz = 5

[executor]
rate_hz = 200

[planner]
checkpoint = "{ck}"
rate_hz = 2

[action]
checkpoint = "{ck}"
rate_hz = 10
action_dt_ms = 50
"#,
            ck = s(&ckpt.join("checkpoint"))
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_bicameral"))
        .env("BICAMERAL_LOG", "warn")
        .args(["launch", &s(&launch), "--seconds", "16", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Meanwhile a Python client (PyPI eclipse-zenoh + msgpack) connects to the launch's
    // endpoint, reads joint states and chunks and sends an instruction.
    let client = python_client(port);
    let faults = inject_faults(port);
    let out = ok(&child.wait_with_output().unwrap(), "launch");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    if let Some(c) = client {
        assert!(c["states"].as_u64().unwrap() > 100, "{c}");
        assert!(c["chunks"].as_u64().unwrap() > 10, "{c}");
        assert_eq!(c["state_dim"], 21, "{c}");
        assert_eq!(c["chunk_shape"], serde_json::json!([8, 21]), "{c}");
        assert_eq!(c["chunk_finite"], true, "{c}");
        assert_eq!(
            c["kinds"],
            serde_json::json!(["action_chunk", "joint_state"]),
            "{c}"
        );
        assert_eq!(c["instruction_sent"], true, "{c}");
        assert_eq!(
            report["planner"]["detail"], PY_INSTRUCTION,
            "the planner took the Python client's instruction\n{report:#}"
        );
    }
    let within = |name: &str, want: f64| {
        let got = report[name]["measured_hz"].as_f64().unwrap();
        assert!(
            (got - want).abs() <= 0.05 * want,
            "{name}: measured {got} Hz, configured {want} Hz\n{report:#}"
        );
    };
    within("planner", 2.0);
    within("action", 10.0);
    within("executor", 200.0);
    assert_eq!(report["planner"]["errors"], 0, "{report:#}");
    assert_eq!(report["action"]["errors"], 0, "{report:#}");
    // Faults: every injected bad message was dropped and counted, nothing crashed (the launch
    // exited cleanly and reported), the bad chunks were rejected, the e-stop latched.
    let safety = &report["executor"]["safety"];
    assert!(
        safety["chunk_rejected"].as_u64().unwrap() >= 1,
        "{report:#}"
    );
    assert!(
        safety["chunk_out_of_limits"].as_u64().unwrap() >= 1,
        "{report:#}"
    );
    // Twice: by the garbage on its topic and by the real e-stop.
    assert!(
        safety["e_stop_engaged"].as_u64().unwrap() >= 2,
        "{report:#}"
    );
    assert!(
        report["executor"]["decode_errors"].as_u64().unwrap() >= 3,
        "{report:#}"
    );
    // System 1 reads latest-value subscriptions: a valid message that arrives before it polls
    // replaces the garbage, so it may not count any; it must not have failed or restarted.
    assert_eq!(report["action"]["restarts"], 0, "{report:#}");
    assert!(faults.commands > 200, "{faults:?}");
    assert_eq!(faults.outside_limits, 0, "{faults:?}");
    assert!(
        faults.garbage_estop && faults.estop_event && faults.reset_event && faults.rejected_event,
        "{faults:?}"
    );
    assert_eq!(faults.track_while_stopped, 0, "{faults:?}");
    // The loop was closed: the sim applied the executor's commands.
    assert!(
        report["sim"]["commands_applied"].as_u64().unwrap() > 1000,
        "{report:#}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `launch --record`, System 2 as a separate process: the rerun bridge logs every topic (camera frames, plans as subgoal
/// markers, chunks as 3D grasp-site paths, the executed path, joint plots, node status) and
/// the simulated world; the file is complete when the launch stops.
#[test]
fn launch_records_every_topic_to_rerun() {
    let dir = tmp_dir("launch-record");
    let ckpt = tiny_dual_checkpoint(&dir);
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let port = free_port();
    let launch = dir.join("launch.toml");
    std::fs::write(
        &launch,
        format!(
            r#"
robot = "rec"

[zenoh]
listen = ["tcp/127.0.0.1:{port}"]

[sim]
task = "pick_place"
seed = 5
camera_hz = 5

[executor]
rate_hz = 200

[planner]
checkpoint = "{ck}"
rate_hz = 2
process = "separate"

[action]
checkpoint = "{ck}"
rate_hz = 10
"#,
            ck = s(&ckpt.join("checkpoint"))
        ),
    )
    .unwrap();
    let rrd = dir.join("launch.rrd");
    let out = ok(
        &bicameral(&[
            "launch",
            &s(&launch),
            "--seconds",
            "4",
            "--json",
            "--record",
            &s(&rrd),
        ]),
        "launch --record",
    );
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    // System 2 ran as its own process (`bicameral node planner`), reporting through its status.
    assert!(
        report["planner"]["process"].as_u64().is_some(),
        "{report:#}"
    );
    let hz = report["planner"]["measured_hz"].as_f64().unwrap();
    assert!((hz - 2.0).abs() < 0.3, "separate planner at {hz} Hz");
    let rec = &report["recording"];
    assert!(rec["chunks"].as_u64().unwrap() >= 20, "{rec}");
    assert!(rec["plans"].as_u64().unwrap() >= 4, "{rec}");
    assert!(rec["frames"].as_u64().unwrap() >= 10, "{rec}");
    assert_eq!(rec["decode_errors"], 0);
    assert!(!dir.join("launch.rrd.partial").exists());
    let (_, entities) = common::rrd_entities(&rrd);
    for e in [
        "/cameras/ego_view",
        "/world/plan/chunk",
        "/world/plan/subgoal/object",
        "/world/executed",
        "/task/instruction",
        "/task/episode",
    ] {
        assert!(entities.contains(e), "{e} missing from {entities:?}");
    }
    for prefix in [
        "/world/robot/",
        "/world/objects/",
        "/joints/position/",
        "/joints/command/",
        "/nodes/",
    ] {
        assert!(
            entities.iter().any(|e| e.starts_with(prefix)),
            "nothing under {prefix} in {entities:?}"
        );
    }
}

/// `demo`: episodes in turn over the live runtime, one recording, success and node rates.
#[test]
fn demo_runs_episodes_live_and_reports_rates() {
    let dir = tmp_dir("demo");
    let ckpt = tiny_dual_checkpoint(&dir);
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let rrd = dir.join("demo.rrd");
    let out = ok(
        &bicameral(&[
            "demo",
            "--checkpoint",
            &s(&ckpt.join("checkpoint")),
            "--episodes",
            "2",
            "--seconds",
            "2",
            "--port",
            &free_port().to_string(),
            "--save",
            &s(&rrd),
            "--json",
        ]),
        "demo",
    );
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["episodes"], 2);
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs[0]["seed"], 2_000_000);
    assert_eq!(runs[1]["seed"], 2_000_001);
    assert_ne!(runs[0]["instruction"], runs[1]["instruction"]);
    // launch/sim_s2_s1.toml: S2 at 5 Hz, S1 at 30 Hz, executor at 500 Hz.
    for (k, hz) in [
        ("planner_hz", 5.0),
        ("action_hz", 30.0),
        ("executor_hz", 500.0),
    ] {
        let m = r[k].as_f64().unwrap();
        assert!((m - hz).abs() / hz < 0.15, "{k}: {m}");
    }
    let (_, entities) = common::rrd_entities(&rrd);
    assert!(entities.contains("/world/plan/chunk") && entities.contains("/cameras/ego_view"));
}

/// Kills the child on drop (test cleanup even when an assertion fails).
struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str]) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_bicameral"))
            .env("BICAMERAL_LOG", "warn")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Process-level faults: System 2 and System 1 as separate `bicameral node` processes killed
/// with SIGKILL. Killing S2: S1 goes on with the last plan until the plan ttl, then the executor
/// holds (plan stale). A new S2 process: tracking resumes. Killing S1: the executor holds when
/// the last chunk runs out (within one chunk). Throughout, commands stay inside the limits and
/// never jump by more than the per-tick step limit.
#[test]
fn killed_planner_and_action_processes_end_in_a_safe_hold() {
    use bicameral_msgs::*;
    use bicameral_runtime::clock::{Clock, WallClock};
    use bicameral_transport::{Node, ZenohConfig};
    use std::time::{Duration, Instant};

    let dir = tmp_dir("launch-kill");
    let ckpt = tiny_dual_checkpoint(&dir);
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let port = free_port();
    const TTL_MS: u64 = 1000;
    const MAX_STEP: f64 = 0.05;
    let common = format!(
        r#"
robot = "kill"

[zenoh]
listen = ["tcp/127.0.0.1:{port}"]
"#
    );
    let robot = dir.join("robot.toml");
    std::fs::write(
        &robot,
        format!(
            r#"{common}
[sim]
task = "pick_place"
seed = 7
camera_hz = 5

[executor]
rate_hz = 200
plan_ttl_ms = {TTL_MS}
# The holds timed here are the plan ttl's and the exhausted chunk's; a loaded machine must not
# add a stale-state hold (that one has tests of its own).
state_timeout_ms = 1000

[safety]
max_step = {MAX_STEP}
"#
        ),
    )
    .unwrap();
    let nodes = dir.join("nodes.toml");
    std::fs::write(
        &nodes,
        format!(
            r#"{common}
[planner]
checkpoint = "{ck}"
rate_hz = 2

[action]
checkpoint = "{ck}"
rate_hz = 10
plan_ttl_ms = {TTL_MS}
"#,
            ck = s(&ckpt.join("checkpoint"))
        ),
    )
    .unwrap();
    let _launch = spawn(&["launch", &s(&robot), "--seconds", "120"]);
    let t = Duration::from_secs(30);
    let node = Node::open(&ZenohConfig::loopback_client(port), "kill", "observer").unwrap();
    let keys = node.keys().clone();
    node.watch_alive()
        .unwrap()
        .wait_alive("executor", t)
        .unwrap();
    let cmds = node
        .subscribe::<JointCommand>(keys.joint_command())
        .unwrap();
    let plans = node.subscribe::<Plan>(keys.plan()).unwrap();
    let chunks = node.subscribe::<ActionChunk>(keys.action_chunk()).unwrap();
    let events = node.subscribe::<SafetyEvent>(keys.safety_event()).unwrap();
    let limits: Vec<_> = {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let emb =
            bicameral_robot::Embodiment::load(&root.join("robots/bc_humanoid/embodiment.toml"))
                .unwrap();
        let kin = bicameral_robot::Kinematics::new(&emb.load_robot().unwrap());
        emb.action_dof_indices(&kin)
            .unwrap()
            .iter()
            .map(|&d| kin.dof_limits()[d])
            .collect()
    };
    let clock = WallClock::new();

    #[derive(Default)]
    struct Seen {
        last_cmd: Option<JointCommand>,
        last_plan_obs: u64,
        plans: u64,
        last_chunk: Option<ActionChunk>,
        chunks_since_mark: u64,
        events: Vec<SafetyEventKind>,
    }
    // Reads everything until `until` holds for a command (or the timeout), checking every
    // command against the limits and the previous command.
    let mut seen = Seen::default();
    let pump = |seen: &mut Seen, until: &dyn Fn(&Seen, &JointCommand) -> bool| -> JointCommand {
        let end = Instant::now() + t;
        loop {
            assert!(
                Instant::now() < end,
                "timed out: {} plans, {} chunks since the mark, last command {:?}, events {:?}",
                seen.plans,
                seen.chunks_since_mark,
                seen.last_cmd.as_ref().map(|c| c.mode),
                seen.events
            );
            while let Some(Ok(p)) = plans.try_recv() {
                seen.plans += 1;
                seen.last_plan_obs = p.obs_stamp_ns;
            }
            while let Some(Ok(c)) = chunks.try_recv() {
                seen.chunks_since_mark += 1;
                seen.last_chunk = Some(c);
            }
            while let Some(Ok(e)) = events.try_recv() {
                seen.events.push(e.event);
            }
            let Ok(c) = cmds.recv_timeout(Duration::from_millis(200)) else {
                continue;
            };
            for (k, (q, l)) in c.position.iter().zip(&limits).enumerate() {
                assert!(
                    q.is_finite() && *q >= l.lower - 1e-9 && *q <= l.upper + 1e-9,
                    "joint {k} commanded {q} outside [{}, {}]",
                    l.lower,
                    l.upper
                );
            }
            if let Some(p) = &seen.last_cmd {
                let jump = p
                    .position
                    .iter()
                    .zip(&c.position)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                // One tick apart (commands may be dropped on the way: allow a few ticks).
                let ticks = ((c.header.stamp_ns - p.header.stamp_ns) as f64 / 5e6)
                    .round()
                    .max(1.0);
                assert!(
                    jump <= MAX_STEP * ticks + 1e-9,
                    "jump {jump} over {ticks} ticks"
                );
            }
            seen.last_cmd = Some(c.clone());
            if until(seen, &c) {
                return c;
            }
        }
    };

    // Both minds up: plans arrive and the executor tracks chunks.
    let planner = spawn(&["node", "planner", "--launch", &s(&nodes)]);
    let action = spawn(&["node", "action", "--launch", &s(&nodes)]);
    pump(&mut seen, &|s, c| {
        s.plans >= 3 && c.mode == CommandMode::Track
    });

    // Kill System 2.
    drop(planner);
    let killed = clock.now_ns();
    seen.chunks_since_mark = 0;
    let hold = pump(&mut seen, &|_, c| c.mode == CommandMode::Hold);
    let stale_at = seen.last_plan_obs + TTL_MS * 1_000_000;
    assert!(
        seen.chunks_since_mark > 0,
        "System 1 went on with the last plan after System 2 died"
    );
    assert!(
        hold.header.stamp_ns + 50_000_000 >= stale_at
            && hold.header.stamp_ns <= stale_at + 600_000_000,
        "hold at {} ms after the last plan's observation (ttl {TTL_MS} ms), {} ms after the kill",
        (hold.header.stamp_ns as i64 - seen.last_plan_obs as i64) / 1_000_000,
        (hold.header.stamp_ns as i64 - killed as i64) / 1_000_000
    );
    pump(&mut seen, &|s, _| {
        s.events.contains(&SafetyEventKind::HoldPlanStale)
    });

    // A new System 2 process: tracking resumes.
    let _planner = spawn(&["node", "planner", "--launch", &s(&nodes)]);
    pump(&mut seen, &|_, c| c.mode == CommandMode::Track);

    // Kill System 1: hold once the last chunk runs out.
    drop(action);
    let killed = clock.now_ns();
    let hold = pump(&mut seen, &|_, c| c.mode == CommandMode::Hold);
    let last = seen.last_chunk.as_ref().unwrap();
    let h = last.actions.shape[0] as u64;
    let chunk_end = last.t0_ns + (h - 1) * last.dt_ns;
    assert!(
        hold.header.stamp_ns <= chunk_end.max(killed) + 100_000_000,
        "hold {} ms after the last chunk's end",
        (hold.header.stamp_ns as i64 - chunk_end as i64) / 1_000_000
    );
    assert!(
        hold.header.stamp_ns <= killed + (h * last.dt_ns) + 300_000_000,
        "hold within one chunk ({} ms) of the kill: {} ms",
        h * last.dt_ns / 1_000_000,
        (hold.header.stamp_ns - killed) / 1_000_000
    );
    pump(&mut seen, &|s, _| {
        s.events.contains(&SafetyEventKind::HoldChunksExhausted)
    });
}
