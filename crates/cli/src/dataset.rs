//! `bicameral dataset info|view`: inspect a LeRobot dataset (v2.1 or v3.0, ours or LeRobot's).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use bicameral_dataset::{Dataset, FeatureStats};
use bicameral_sim::{DataRoot, EpisodeOptions, SimError, TaskEnv};
use bicameral_viz::{Recording, SimLogger};
use clap::Args;
use serde_json::{Value, json};

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Dataset directory (holds meta/info.json).
    dir: PathBuf,
    /// Print JSON instead of a human summary.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ViewArgs {
    /// Dataset directory (holds meta/info.json).
    dir: PathBuf,
    /// Episode index.
    #[arg(long, default_value_t = 0)]
    episode: usize,
    #[command(flatten)]
    output: crate::sink::SinkArgs,
    /// Do not re-simulate the episode's world even when the dataset names its task and seed
    /// (then only the recorded images and signals are shown).
    #[arg(long)]
    no_resim: bool,
}

fn stats_json(s: &FeatureStats) -> Value {
    s.to_json()
}

/// The summary as JSON: format, sizes, tasks, features and dataset-level statistics.
fn summary(ds: &Dataset) -> Value {
    let info = ds.info();
    let lengths: Vec<usize> = (0..ds.num_episodes()).map(|i| ds.episode_len(i)).collect();
    let features: Vec<Value> = info
        .features
        .iter()
        .map(|f| {
            json!({
                "name": f.name,
                "dtype": f.dtype.as_str(),
                "shape": f.shape,
                "names": f.names,
            })
        })
        .collect();
    let stats: serde_json::Map<String, Value> = info
        .stats
        .iter()
        .map(|(k, s)| (k.clone(), stats_json(s)))
        .collect();
    json!({
        "dir": ds.dir().display().to_string(),
        "codebase_version": info.codebase_version,
        "fps": info.fps,
        "robot_type": info.robot_type,
        "total_episodes": info.total_episodes,
        "total_frames": info.total_frames,
        "episode_length": {
            "min": lengths.iter().min(),
            "max": lengths.iter().max(),
            "mean": lengths.iter().sum::<usize>() as f64 / lengths.len().max(1) as f64,
        },
        "tasks": info.tasks,
        "cameras": info.camera_keys(),
        "features": features,
        "stats": stats,
    })
}

fn fmt_vec(v: &[f64]) -> String {
    const SHOW: usize = 8;
    let mut s: Vec<String> = v.iter().take(SHOW).map(|x| format!("{x:.3}")).collect();
    if v.len() > SHOW {
        s.push(format!("… ({} values)", v.len()));
    }
    format!("[{}]", s.join(", "))
}

pub fn info(args: &InfoArgs) -> Result<()> {
    let ds = Dataset::open(&args.dir)
        .with_context(|| format!("cannot open the dataset at {}", args.dir.display()))?;
    let s = summary(&ds);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    let info = ds.info();
    println!(
        "{}: LeRobot {} · robot {} · {} Hz · {} episodes · {} frames ({:.1} s) · {} tasks",
        args.dir.display(),
        info.codebase_version,
        info.robot_type.as_deref().unwrap_or("?"),
        info.fps,
        info.total_episodes,
        info.total_frames,
        info.total_frames as f64 / info.fps,
        info.total_tasks,
    );
    let el = &s["episode_length"];
    println!(
        "episode length (frames): min {} · mean {:.1} · max {}",
        el["min"],
        el["mean"].as_f64().unwrap_or(0.0),
        el["max"]
    );
    println!("tasks:");
    for (i, t) in info.tasks.iter().enumerate().take(20) {
        println!("  {i:>4}  {t}");
    }
    if info.tasks.len() > 20 {
        println!("  … {} more", info.tasks.len() - 20);
    }
    println!("features:");
    for f in &info.features {
        println!("  {:<32} {:<8} {:?}", f.name, f.dtype.as_str(), f.shape);
    }
    println!("statistics:");
    for (k, st) in &info.stats {
        println!("  {k}");
        println!("    min  {}", fmt_vec(&st.min));
        println!("    max  {}", fmt_vec(&st.max));
        println!("    mean {}", fmt_vec(&st.mean));
        println!("    std  {}", fmt_vec(&st.std));
        for (q, v) in &st.quantiles {
            println!("    {q:<4} {}", fmt_vec(v));
        }
    }
    Ok(())
}

pub fn view(args: &ViewArgs) -> Result<()> {
    let sink = match args.output.sink() {
        Some(s) => s,
        None => bail!("give --save FILE.rrd, --spawn or --connect URL"),
    };
    let ds = Dataset::open(&args.dir)
        .with_context(|| format!("cannot open the dataset at {}", args.dir.display()))?;
    if args.episode >= ds.num_episodes() {
        bail!(
            "{}: --episode {} out of range (the dataset has {} episodes)",
            args.dir.display(),
            args.episode,
            ds.num_episodes()
        );
    }
    let ep = ds.episode(args.episode)?;
    let info = ds.info();
    let names = |key: &str, dim: usize| -> Vec<String> {
        info.feature(key)
            .and_then(|f| f.names.clone())
            .filter(|n| n.len() == dim)
            .unwrap_or_else(|| (0..dim).map(|i| format!("{i}")).collect())
    };
    let state_names = names("observation.state", info.dim("observation.state"));
    let action_names = names("action", info.dim("action"));

    let recording = Recording::open("bicameral_dataset", &sink)?;
    let log = SimLogger::new(&recording.rec);
    let dt = 1.0 / info.fps;
    log.set_time_secs(0.0);
    log.log_text("task", &ep.task)?;

    // The world: re-simulated from the task and seed datagen stored in the episode metadata.
    let task_name = ep.meta["task_name"].as_str();
    let seed = ep.meta["seed"].as_u64();
    let mut resim_frames = 0usize;
    let mut max_state_diff = 0.0f64;
    if let (false, Some(task), Some(seed)) = (args.no_resim, task_name, seed) {
        let root = DataRoot::discover()?;
        let env = TaskEnv::load(&root, task)
            .with_context(|| format!("re-simulating episode {}: task \"{task}\"", args.episode))?;
        let setup = env.sample(seed, false)?;
        let state_idx = env.base.embodiment.state_dof_indices(&env.base.kin)?;
        let mut first = true;
        let mut observe = |w: &bicameral_sim::SimWorld| -> Result<(), SimError> {
            let viz = |e: bicameral_viz::VizError| SimError::Stopped(e.to_string());
            if first {
                log.log_static_scene(w).map_err(viz)?;
                first = false;
            }
            log.log_state(w).map_err(viz)?;
            // The recorder pairs frame t's observation with the targets commanded after it:
            // the world seen after control tick k is frame k + 1's observation.
            if let Some(recorded) = ep.state.get(resim_frames + 1) {
                let q = w.joint_positions();
                for (k, &i) in state_idx.iter().enumerate() {
                    if let Some(r) = recorded.get(k) {
                        max_state_diff = max_state_diff.max((q[i] as f32 - r).abs() as f64);
                    }
                }
            }
            resim_frames += 1;
            Ok(())
        };
        let options = EpisodeOptions::default();
        env.run_observed(&setup, &options, &mut observe)?;
        tracing::info!(
            task,
            seed,
            frames = resim_frames,
            max_state_diff,
            "re-simulated the episode"
        );
    }

    // The recorded frames: images, state, action.
    for t in 0..ep.state.len() {
        log.set_time_secs(t as f64 * dt);
        let state: Vec<f64> = ep.state[t].iter().map(|&x| x as f64).collect();
        let action: Vec<f64> = ep.action[t].iter().map(|&x| x as f64).collect();
        log.log_scalars("dataset/state", &state_names, &state)?;
        log.log_scalars("dataset/action", &action_names, &action)?;
        for (cam, frames) in &ep.images {
            if let Some(img) = frames.get(t) {
                let name = cam.strip_prefix("observation.images.").unwrap_or(cam);
                log.log_rgb(
                    &format!("dataset/images/{name}"),
                    img.width,
                    img.height,
                    &img.rgb,
                )?;
            }
        }
    }
    recording.finish()?;
    println!(
        "episode {} of {}: {} frames, task \"{}\"{}",
        args.episode,
        args.dir.display(),
        ep.state.len(),
        ep.task,
        if resim_frames > 0 {
            format!(
                "; world re-simulated ({resim_frames} ticks, recorded state reproduced to {max_state_diff:.2e} rad)"
            )
        } else {
            String::new()
        }
    );
    Ok(())
}
