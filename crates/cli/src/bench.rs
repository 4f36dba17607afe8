//! `bicameral bench sim`: physics and rendering throughput, printed as JSON. The comparison
//! against MuJoCo lives in `benches/sim_vs_mujoco.sh`, which runs this command with
//! `--trajectory-out` and replays the same joint targets in MuJoCo.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use bicameral_robot::JointKind;
use bicameral_sim::{CameraImage, DataRoot, SimSetup, SimWorld, WorldBatch};
use clap::Args;
use serde_json::json;

#[derive(Debug, Args)]
pub struct BenchSimArgs {
    /// Scene name under sim/scenes/ or a path.
    #[arg(long, default_value = "default")]
    scene: String,
    /// Print JSON only (no human summary on stderr).
    #[arg(long)]
    json: bool,
    /// Length of the joint-target trajectory (s of simulated time).
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Repetitions of the trajectory for the one-world timing.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Worker threads for the N-world measurement (default: available cores).
    #[arg(long)]
    workers: Option<usize>,
    /// Frames rendered for the render-only measurement.
    #[arg(long, default_value_t = 300)]
    frames: usize,
    /// Camera rate for the physics + cameras measurement (Hz of simulated time).
    #[arg(long, default_value_t = 20.0)]
    camera_hz: f64,
    /// Write the trajectory (targets and link origins per step) for the MuJoCo comparison.
    #[arg(long)]
    trajectory_out: Option<PathBuf>,
}

/// Joint targets at time `t`: every arm, waist and head joint swings around the default pose
/// (amplitude 0.35 rad, 0.5–0.8 Hz, a different phase per joint; shoulder rolls outward only),
/// ramped in over 0.5 s and clamped inside the limits; fingers open and close. No link touches
/// another along it.
fn targets_at(setup: &SimSetup, t: f64) -> Vec<f64> {
    let ramp = (t / 0.5).min(1.0);
    setup
        .kin
        .dof_names()
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let base = setup.drive.initial[i];
            let lim = setup.kin.dof_limits()[i];
            let joint = &setup.model.joints[setup.kin.dof_joints()[i]];
            let f = 0.5 + 0.05 * (i % 7) as f64;
            let phase = i as f64 * 0.7;
            let amp = if joint.kind == JointKind::Prismatic {
                0.02
            } else {
                0.35
            };
            let wave = (std::f64::consts::TAU * f * t + phase).sin();
            // Shoulder rolls swing outward only (0.05–0.35 rad away from the default), so the
            // upper arms never touch the torso: the MuJoCo comparison runs without contacts.
            let v = if joint.name.ends_with("_shoulder_roll") {
                base + ramp * base.signum() * (0.2 + 0.15 * wave)
            } else {
                base + ramp * amp * wave
            };
            v.clamp(lim.lower, lim.upper)
        })
        .collect()
}

fn run_trajectory(
    setup: &SimSetup,
    world: &mut SimWorld,
    steps: usize,
    mut record: impl FnMut(&SimWorld),
) -> Result<()> {
    for k in 0..steps {
        world.set_joint_targets(&targets_at(setup, k as f64 * world.dt()))?;
        world.step()?;
        record(world);
    }
    Ok(())
}

pub fn run_sim(args: &BenchSimArgs) -> Result<()> {
    let root = DataRoot::discover()?;
    let full = SimSetup::load(&root, &args.scene, None)?;
    // Physics timings and the trajectory use the robot alone (scene objects removed), moving in
    // free space: the same conditions as the MuJoCo comparison, which runs without contacts.
    let mut setup = full.clone();
    setup.scene.objects.clear();
    let dt = setup.scene.physics.dt;
    let steps = (args.seconds / dt).round() as usize;

    // Trajectory file (and a warm-up run).
    let moving_links: Vec<usize> = (0..setup.model.links.len())
        .filter(|&l| {
            setup.model.links[l]
                .parent_joint
                .is_some_and(|j| setup.model.joints[j].kind != JointKind::Fixed)
        })
        .collect();
    let mut world = setup.world()?;
    let mut origins: Vec<Vec<[f64; 3]>> = Vec::with_capacity(steps);
    let mut targets: Vec<Vec<f64>> = Vec::with_capacity(steps);
    run_trajectory(&setup, &mut world, steps, |w| {
        let poses = w.link_poses();
        origins.push(
            moving_links
                .iter()
                .map(|&l| poses[l].translation.vector.into())
                .collect(),
        );
        targets.push(w.joint_targets().to_vec());
    })?;
    if let Some(path) = &args.trajectory_out {
        write_trajectory(path, &setup, dt, &moving_links, &targets, &origins)?;
    }

    // One world, physics only.
    let t0 = Instant::now();
    for _ in 0..args.repeats {
        let mut w = setup.world()?;
        run_trajectory(&setup, &mut w, steps, |_| {})?;
    }
    let one_world = (args.repeats * steps) as f64 / t0.elapsed().as_secs_f64();

    // N worlds on N threads.
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let worlds = (0..workers)
        .map(|_| setup.world())
        .collect::<Result<Vec<_>, _>>()?;
    let mut batch = WorldBatch::new(worlds, workers);
    let t0 = Instant::now();
    let results =
        batch.for_each(|_, w| run_trajectory(&setup, w, steps, |_| {}).map_err(|e| e.to_string()));
    let n_worlds_time = t0.elapsed().as_secs_f64();
    for r in results {
        r.map_err(anyhow::Error::msg)?;
    }
    let n_worlds = (workers * steps) as f64 / n_worlds_time;

    // Physics + the robot's cameras at camera_hz, in the full scene (table and objects).
    let mut w = full.world()?;
    let mut cams = full.cameras(&w)?;
    let robot_cams = full.embodiment.cameras.len();
    let every = ((1.0 / args.camera_hz) / dt).round().max(1.0) as usize;
    let mut img = CameraImage::default();
    let t0 = Instant::now();
    for k in 0..steps {
        w.set_joint_targets(&targets_at(&setup, k as f64 * dt))?;
        w.step()?;
        if k % every == 0 {
            for c in 0..robot_cams {
                cams.render_into(&w, c, &mut img)?;
            }
        }
    }
    let with_cameras = steps as f64 / t0.elapsed().as_secs_f64();

    // Rendering only: the ego camera (first robot camera) on the full scene, one thread.
    let t0 = Instant::now();
    for _ in 0..args.frames {
        cams.render_into(&w, 0, &mut img)?;
    }
    let render_fps = args.frames as f64 / t0.elapsed().as_secs_f64();
    let lit = img.depth.iter().filter(|d| d.is_finite()).count();

    let report = json!({
        "bench": "sim",
        "scene": setup.scene.name,
        "robot": setup.model.name,
        "dof": setup.kin.dof_count(),
        "dt": dt,
        "substeps": setup.scene.physics.substeps,
        "trajectory_steps": steps,
        "physics_scene": "robot alone in free space (scene objects removed), as in the MuJoCo comparison",
        "physics_steps_per_s_one_world": one_world,
        "realtime_factor_one_world": one_world * dt,
        "workers": workers,
        "physics_steps_per_s_n_worlds": n_worlds,
        "physics_steps_per_s_with_cameras": with_cameras,
        "cameras": robot_cams,
        "camera_hz": args.camera_hz,
        "render_frames_per_s": render_fps,
        "render_resolution": [img.width, img.height],
        "render_pixels_hit": lit,
        "compare_with": "benches/sim_vs_mujoco.sh (MuJoCo, same URDF, dt and targets)",
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    if !args.json {
        eprintln!(
            "one world: {one_world:.0} steps/s ({:.1}× real time); {workers} worlds: {n_worlds:.0} steps/s; with {robot_cams} cameras at {} Hz: {with_cameras:.0} steps/s; render: {render_fps:.0} frames/s",
            one_world * dt,
            args.camera_hz
        );
    }
    Ok(())
}

fn write_trajectory(
    path: &PathBuf,
    setup: &SimSetup,
    dt: f64,
    links: &[usize],
    targets: &[Vec<f64>],
    origins: &[Vec<[f64; 3]>],
) -> Result<()> {
    let model = &setup.model;
    let joints: Vec<_> = model
        .joints
        .iter()
        .filter(|j| j.kind != JointKind::Fixed)
        .map(|j| {
            let leader = j
                .mimic
                .as_ref()
                .map_or(j.name.clone(), |m| model.joints[m.joint].name.clone());
            let dof = setup.kin.dof_index(&leader).unwrap_or(0);
            let g = setup.drive.gains[dof];
            json!({
                "name": j.name, "kp": g.kp, "kd": g.kd, "effort": j.limits.effort,
                "damping": j.damping, "target_of": leader,
            })
        })
        .collect();
    let urdf = setup.embodiment.description_path();
    let urdf = std::fs::canonicalize(&urdf).unwrap_or(urdf);
    let doc = json!({
        "urdf": urdf,
        "dt": dt,
        "steps": targets.len(),
        "armature": setup.scene.physics.armature,
        "gravity_compensation": setup.scene.physics.gravity_compensation,
        "joints": joints,
        "dof_names": setup.kin.dof_names(),
        "initial": setup.drive.initial,
        "targets": targets,
        "links": links.iter().map(|&l| model.links[l].name.clone()).collect::<Vec<_>>(),
        "origins": origins,
    });
    let tmp = path.with_extension("json.partial");
    std::fs::write(&tmp, serde_json::to_vec(&doc)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

#[derive(Debug, Args)]
pub struct BenchDatagenArgs {
    /// Tasks to measure (default: every task of the datagen target list).
    #[arg(long = "task")]
    tasks: Vec<String>,
    /// Successful episodes per task and per measurement.
    #[arg(long, default_value_t = 8)]
    episodes: usize,
    /// Worker threads (default: available cores).
    #[arg(long)]
    workers: Option<usize>,
    /// Run seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print JSON only (no human summary on stderr).
    #[arg(long)]
    json: bool,
}

/// Demonstrations per hour, end to end: scripted expert + physics + three 224² robot cameras
/// at the control rate + PNG encoding + LeRobot v2.1 writing (parquet, stats), into a scratch
/// directory that is removed afterwards. The same run without cameras is measured alongside,
/// which shows what rendering and image storage cost.
pub fn run_datagen(args: &BenchDatagenArgs) -> Result<()> {
    use crate::datagen::{GenConfig, generate};
    let root = DataRoot::discover()?;
    let tasks = if args.tasks.is_empty() {
        vec!["pick_place".to_string(), "stack".into(), "handover".into()]
    } else {
        args.tasks.clone()
    };
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let scratch =
        std::env::temp_dir().join(format!("bicameral-bench-datagen-{}", std::process::id()));
    let mut rows = Vec::new();
    for task in &tasks {
        let env = bicameral_sim::TaskEnv::load(&root, task)?;
        let measure = |images: bool| -> Result<crate::datagen::GenReport> {
            let out = scratch.join(format!("{task}-{images}"));
            let cfg = GenConfig {
                episodes: args.episodes,
                workers,
                seed: args.seed,
                resume: false,
                max_attempts_factor: 3,
                images,
                scenes: false,
                cameras: None,
                progress: false,
            };
            let r = generate(
                &env,
                &out,
                bicameral_dataset::Format::LeRobotV21,
                false,
                &cfg,
            );
            std::fs::remove_dir_all(&out).ok();
            r
        };
        let with = measure(true)?;
        let without = measure(false)?;
        let cams = &env.base.embodiment.cameras;
        rows.push(json!({
            "task": env.spec.name,
            "episodes": with.successes,
            "attempts": with.attempts,
            "expert_success_rate": with.success_rate(),
            "failures": with.failures,
            "frames": with.total_frames,
            "mean_episode_s": with.total_frames as f64 / with.total_episodes.max(1) as f64 / env.spec.control_hz,
            "wall_s": with.wall_s,
            "demos_per_hour": with.demos_per_hour(),
            "cameras": cams.iter().map(|c| format!("{} {}x{}", c.name, c.width, c.height)).collect::<Vec<_>>(),
            "demos_per_hour_without_cameras": without.demos_per_hour(),
            "camera_cost_ratio": without.demos_per_hour() / with.demos_per_hour().max(1e-9),
        }));
        if !args.json {
            eprintln!(
                "{task}: {:.0} demos/h with cameras, {:.0} without; expert success {}/{}",
                with.demos_per_hour(),
                without.demos_per_hour(),
                with.successes,
                with.attempts
            );
        }
    }
    std::fs::remove_dir_all(&scratch).ok();
    let report = json!({
        "bench": "datagen",
        "workers": workers,
        "format": "lerobot-v2.1, PNG images",
        "tasks": rows,
        "compare_with": "targets: pick_place >= 600 demos/h (goal 2000) on a 2-core machine; demos_per_hour_without_cameras is the same run without rendering or images",
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

#[derive(Debug, Args)]
pub struct BenchS1Args {
    /// Configurations to time (comma-separated): default-cpu, small, n1.5.
    #[arg(long, default_value = "default-cpu,small,n1.5")]
    configs: String,
    /// Timed chunks per configuration (the n1.5 size uses at most 5).
    #[arg(long, default_value_t = 20)]
    repeats: usize,
    /// Write each configuration's random weights as a checkpoint directory `DIR/<config>/`
    /// (config.json, model.safetensors, bench_inputs.json) for benches/s1_vs_torch.sh.
    #[arg(long)]
    export: Option<PathBuf>,
    /// Print JSON only (no human summary on stderr).
    #[arg(long)]
    json: bool,
}

/// An S1 benchmark configuration: the head config and the plan length.
struct S1Bench {
    name: &'static str,
    plan_tokens: usize,
    config: serde_json::Value,
}

/// Head config: DiT `layers × (heads · head_dim)`, backbone width `db`, `hs` hidden size,
/// `future` future tokens; the vl adapter has 4 layers, heads of 64 channels (32 when narrow).
fn s1_config(
    layers: usize,
    heads: usize,
    head_dim: usize,
    db: usize,
    hs: usize,
    future: usize,
) -> serde_json::Value {
    let d = heads * head_dim;
    let vl_head_dim = if db >= 512 { 64 } else { 32 };
    json!({
        "action_dim": 32,
        "action_horizon": 16,
        "add_pos_embed": true,
        "backbone_embedding_dim": db,
        "diffusion_model_cfg": {
            "attention_head_dim": head_dim,
            "cross_attention_dim": db,
            "dropout": 0.0,
            "final_dropout": false,
            "interleave_self_attention": true,
            "norm_type": "ada_norm",
            "num_attention_heads": heads,
            "num_layers": layers,
            "output_dim": hs,
            "positional_embeddings": null
        },
        "hidden_size": hs,
        "input_embedding_dim": d,
        "max_action_dim": 32,
        "max_num_embodiments": 32,
        "max_seq_len": 1024,
        "max_state_dim": 64,
        "model_dtype": "float32",
        "noise_beta_alpha": 1.5,
        "noise_beta_beta": 1.0,
        "noise_s": 0.999,
        "num_inference_timesteps": 4,
        "num_target_vision_tokens": future,
        "num_timestep_buckets": 1000,
        "tune_diffusion_model": true,
        "tune_projector": true,
        "use_vlln": true,
        "vl_self_attention_cfg": {
            "attention_head_dim": vl_head_dim,
            "dropout": 0.0,
            "final_dropout": false,
            "num_attention_heads": db / vl_head_dim,
            "num_layers": 4,
            "positional_embeddings": null
        }
    })
}

fn s1_benches() -> Vec<S1Bench> {
    vec![
        // Our CPU real-time size: DiT 4 × 128, 32 plan tokens of width 128.
        S1Bench {
            name: "default-cpu",
            plan_tokens: 32,
            config: s1_config(4, 4, 32, 128, 128, 32),
        },
        // DiT 8 × 512, 64 plan tokens × 512, 32 future tokens.
        S1Bench {
            name: "small",
            plan_tokens: 64,
            config: s1_config(8, 8, 64, 512, 512, 32),
        },
        // GR00T N1.5: DiT 16 × 1536 (32 heads × 48), hidden 1024, Eagle features 2048 wide,
        // 276 plan tokens, 32 future tokens.
        S1Bench {
            name: "n1.5",
            plan_tokens: 276,
            config: s1_config(16, 32, 48, 2048, 1024, 32),
        },
    ]
}

/// Latency of one action chunk (condition once, K = 4 Euler steps, H = 16, B = 1) of our burn
/// head on the CPU (flex; threads from RAYON_NUM_THREADS, on a pool the timing runs inside). The PyTorch comparison on the same
/// weights is benches/s1_vs_torch.sh.
pub fn run_s1(args: &BenchS1Args) -> Result<()> {
    use bicameral_policy::burn::tensor::{Tensor, TensorData};
    use bicameral_policy::{ActionHead, FlowmatchingActionHeadConfig, InitialNoise};
    let device = bicameral_policy::cpu_device();
    let wanted: Vec<&str> = args.configs.split(',').map(str::trim).collect();
    let all = s1_benches();
    for w in &wanted {
        if !all.iter().any(|b| b.name == *w) {
            anyhow::bail!(
                "--configs: unknown configuration \"{w}\" (known: default-cpu, small, n1.5)"
            );
        }
    }
    let mut rows = serde_json::Map::new();
    for b in all.iter().filter(|b| wanted.contains(&b.name)) {
        let cfg = FlowmatchingActionHeadConfig::from_json_str(&b.config.to_string())?;
        let head = ActionHead::init(&cfg, &device, 0)?;
        let tensors = head.to_tensors("")?;
        let params: usize = tensors
            .values()
            .map(|t| t.shape.iter().product::<usize>())
            .sum();
        drop(tensors);
        if let Some(dir) = &args.export {
            let d = dir.join(b.name);
            head.save(&d)?;
            std::fs::write(
                d.join("bench_inputs.json"),
                serde_json::to_vec(&json!({"plan_tokens": b.plan_tokens, "steps": 4}))?,
            )
            .with_context(|| format!("writing {}", d.display()))?;
        }
        let mut rng = bicameral_policy::rng::Rng::new(1);
        let mut randn = |n: usize| -> Vec<f32> { rng.normal_vec(n) };
        let db = cfg.backbone_embedding_dim;
        let feats = Tensor::<3>::from_data(
            TensorData::new(randn(b.plan_tokens * db), [1, b.plan_tokens, db]),
            &device,
        );
        let state = Tensor::<3>::from_data(
            TensorData::new(randn(cfg.max_state_dim), [1, 1, cfg.max_state_dim]),
            &device,
        );
        let shape = [1, cfg.action_horizon, cfg.action_dim];
        let noise = Tensor::<3>::from_data(
            TensorData::new(randn(shape.iter().product()), shape),
            &device,
        );
        let chunk = || -> Result<f64> {
            let t0 = Instant::now();
            let s = head.get_action(
                feats.clone(),
                state.clone(),
                &[0],
                InitialNoise::Tensor(noise.clone()),
                Some(4),
            )?;
            // Wait for the result (the backend may run lazily).
            let _ = s.actions.into_data();
            Ok(t0.elapsed().as_secs_f64() * 1000.0)
        };
        let repeats = if b.name == "n1.5" {
            args.repeats.min(5)
        } else {
            args.repeats
        }
        .max(1);
        // Timed inside a compute pool, as the runtime's nodes run (a caller outside the pool
        // would hand every parallel op to the pool's threads and sleep until it is done).
        let pool = crate::agents::ComputePool::sized_like_global("bench")?;
        let mut times = pool.run(|| -> Result<Vec<f64>> {
            for _ in 0..2 {
                chunk()?;
            }
            (0..repeats).map(|_| chunk()).collect()
        })?;
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        if !args.json {
            eprintln!("{}: {params} parameters, {median:.2} ms per chunk", b.name);
        }
        rows.insert(
            b.name.to_string(),
            json!({
                "params": params,
                "plan_tokens": b.plan_tokens,
                "chunk_ms": median,
                "chunk_ms_min": times[0],
                "repeats": repeats,
            }),
        );
    }
    let report = json!({
        "bench": "s1",
        "backend": "burn flex (CPU)",
        "threads": rayon::current_num_threads(),
        "chunk": {"K": 4, "H": 16, "B": 1},
        "configs": rows,
        "compare_with": "benches/s1_vs_torch.sh (PyTorch eager, same weights and inputs; REFERENCES.md lists torch 2.5.1 at 8.9 / 112 / 1900 ms with 2 threads)",
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
