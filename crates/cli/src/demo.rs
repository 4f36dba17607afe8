//! `bicameral demo`: the live dual-system in simulation, one command. For each of a few
//! episodes (held-out seeds, tasks in turn) it runs the launch file's setup (by default
//! `launch/sim_s2_s1.toml`: the simulated robot, System 2, System 1 with RTC and the executor
//! over one zenoh session, in real time) with the given checkpoint, stops an episode when its
//! success test has held for a second or at the task's time limit, records everything to one
//! rerun file through the bridge, and prints success and node rates.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bicameral_runtime::clock::{Clock, WallClock};
use bicameral_sim::{DataRoot, TaskEnv};
use bicameral_viz::{Recording, Sink};
use clap::Args;
use serde_json::{Value, json};

use crate::launch::{LaunchFile, RunOptions, run_launch, stop_flag};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Checkpoint with System 2 and System 1 (`bicameral train dual` output).
    #[arg(long, default_value = "models/default")]
    pub checkpoint: PathBuf,
    /// Launch file to start from (its planner and action checkpoints are replaced).
    #[arg(long, default_value = "launch/sim_s2_s1.toml")]
    pub launch: PathBuf,
    /// Tasks, comma-separated; episodes cycle through them.
    #[arg(long, value_delimiter = ',', default_value = "pick_place")]
    pub task: Vec<String>,
    /// Episodes.
    #[arg(long, default_value_t = 3)]
    pub episodes: usize,
    /// Seed of the first episode (episode i uses seed + i; held out from training data).
    #[arg(long, default_value_t = 2_000_000)]
    pub seed: u64,
    /// Longest episode, s of real (= simulated) time (default: the task's time limit).
    #[arg(long, value_parser = crate::launch::seconds_arg)]
    pub seconds: Option<f64>,
    /// The rerun recording.
    #[arg(long, default_value = "demo.rrd")]
    pub save: PathBuf,
    /// Override the zenoh listen port.
    #[arg(long)]
    pub port: Option<u16>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `dir` as given if it exists from here, else under the data root.
fn resolve(dir: &Path, root: &DataRoot) -> Result<PathBuf> {
    if dir.exists() {
        return Ok(std::fs::canonicalize(dir)?);
    }
    let under = root.root.join(dir);
    if under.exists() {
        return Ok(under);
    }
    bail!(
        "checkpoint {} not found (nor under {}): train one with `bicameral train dual` (see \
         models/README.md) or pass --checkpoint DIR",
        dir.display(),
        root.root.display()
    )
}

fn rate(r: &serde_json::Map<String, Value>, node: &str) -> Option<f64> {
    r.get(node)?.get("measured_hz")?.as_f64()
}

pub fn run(args: &DemoArgs) -> Result<()> {
    if args.episodes == 0 {
        bail!("--episodes must be ≥ 1");
    }
    let root = DataRoot::discover().context("finding robots/ and sim/")?;
    let checkpoint = resolve(&args.checkpoint, &root)?;
    let launch_path = if args.launch.exists() {
        args.launch.clone()
    } else {
        root.root.join(&args.launch)
    };
    let mut file = LaunchFile::load(&launch_path)?;
    if let Some(port) = args.port {
        file.zenoh.listen = vec![format!("tcp/127.0.0.1:{port}")];
    }
    let (Some(planner), Some(action), Some(_)) = (&mut file.planner, &mut file.action, &file.sim)
    else {
        bail!(
            "{}: the demo needs [sim], [planner] and [action]",
            launch_path.display()
        );
    };
    planner.checkpoint = checkpoint.clone();
    action.checkpoint = checkpoint.clone();
    let stop = stop_flag()?;
    let t0 = WallClock::new().now_ns();
    let recording = Recording::open("bicameral_demo", &Sink::Save(args.save.clone()))
        .with_context(|| format!("--save {}", args.save.display()))?;
    let mut episodes = Vec::new();
    for i in 0..args.episodes {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        let task = &args.task[i % args.task.len()];
        let env = TaskEnv::load(&root, task).with_context(|| format!("task {task}"))?;
        let seconds = args.seconds.unwrap_or(env.spec.time_limit_s);
        let mut f = file.clone();
        if let Some(sim) = &mut f.sim {
            sim.task = task.clone();
            sim.seed = args.seed + i as u64;
        }
        eprintln!(
            "episode {}/{}: {task}, seed {} (up to {seconds:.0} s)",
            i + 1,
            args.episodes,
            args.seed + i as u64
        );
        let run = run_launch(
            &f,
            &launch_path,
            &RunOptions {
                seconds: Some(seconds),
                stop_after_success_s: Some(1.0),
                recording: Some((&recording, t0)),
            },
        );
        // An episode that ends in an error (e.g. the simulation stopping on a physics blow-up)
        // is reported as a failed episode; the demo goes on with the next one.
        let r = match run {
            Ok(r) => r,
            Err(e) => {
                let error = format!("{e:#}");
                tracing::error!(episode = i + 1, %error, "episode ended with an error");
                eprintln!("  episode failed: {error}");
                episodes.push(json!({
                    "task": task,
                    "seed": args.seed + i as u64,
                    "success": false,
                    "error": error,
                }));
                continue;
            }
        };
        let sim = r.get("sim").cloned().unwrap_or(Value::Null);
        let success = sim["first_success_s"].is_number();
        eprintln!(
            "  \"{}\": {} (S2 {:.1} Hz, S1 {:.1} Hz, executor {:.0} Hz)",
            sim["instruction"].as_str().unwrap_or(""),
            if success {
                format!(
                    "success at {:.1} s",
                    sim["first_success_s"].as_f64().unwrap_or(0.0)
                )
            } else {
                "no success".into()
            },
            rate(&r, "planner").unwrap_or(0.0),
            rate(&r, "action").unwrap_or(0.0),
            rate(&r, "executor").unwrap_or(0.0),
        );
        episodes.push(json!({
            "task": task,
            "seed": sim["seed"],
            "instruction": sim["instruction"],
            "success": success,
            "time_to_success_s": sim["first_success_s"],
            "seconds": r.get("seconds"),
            "planner_hz": rate(&r, "planner"),
            "action_hz": rate(&r, "action"),
            "executor_hz": rate(&r, "executor"),
            "safety": r.get("executor").and_then(|e| e.get("safety")).cloned(),
        }));
    }
    recording.finish()?;
    if !episodes.is_empty() && episodes.iter().all(|e| e.get("error").is_some()) {
        bail!(
            "every episode ended with an error; the first: {}",
            episodes[0]["error"].as_str().unwrap_or("")
        );
    }
    let n = episodes.len();
    let ok = episodes.iter().filter(|e| e["success"] == true).count();
    let mean = |k: &str| {
        let v: Vec<f64> = episodes.iter().filter_map(|e| e[k].as_f64()).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let report = json!({
        "checkpoint": checkpoint.display().to_string(),
        "recording": args.save.display().to_string(),
        "episodes": n,
        "successes": ok,
        "success_rate": if n > 0 { ok as f64 / n as f64 } else { 0.0 },
        "planner_hz": mean("planner_hz"),
        "action_hz": mean("action_hz"),
        "executor_hz": mean("executor_hz"),
        "runs": episodes,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{ok}/{n} episodes succeeded; System 2 {:.1} Hz, System 1 {:.1} Hz, executor {:.0} Hz \
             (means); recording: {}",
            mean("planner_hz").unwrap_or(0.0),
            mean("action_hz").unwrap_or(0.0),
            mean("executor_hz").unwrap_or(0.0),
            args.save.display()
        );
    }
    Ok(())
}
