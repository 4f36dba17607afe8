//! `bicameral datagen`: scripted-expert demonstrations written as a LeRobot dataset.
//!
//! Attempt `k` of a run with seed `S` simulates the episode of seed `mix(S, k)`; attempts run
//! in parallel batches but are written strictly in attempt order and only when successful, so
//! the dataset is the same whatever `--workers` is, and `--resume` continues at the attempt after
//! the last one written (stored in each episode's metadata).
//!
//! With `--scenes`, each episode is only its first frame (a *scene*: the sampled world, the
//! instruction, the subgoal label and the camera images, no expert run): grounding data for
//! System 2, which needs many more distinct scenes than System 1 needs demonstrations
//! (`train dual --grounding`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bicameral_dataset::{Dataset, DatasetSpec, DatasetWriter, Episode, Format, Frame};
use bicameral_sim::RecordedEpisode;
use bicameral_sim::{DataRoot, par_map};
use bicameral_sim::{EpisodeOptions, TaskEnv};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// LeRobot v2.1 with GR00T's meta/modality.json.
    #[value(name = "lerobot-v2.1")]
    V21,
    /// LeRobot v3.0.
    #[value(name = "lerobot-v3")]
    V3,
}

#[derive(Debug, Args)]
pub struct DatagenArgs {
    /// Task name under sim/tasks/ or a path to a task TOML.
    #[arg(long)]
    task: String,
    /// Number of successful episodes to write.
    #[arg(long)]
    episodes: usize,
    /// Worker threads (one world each).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Output dataset directory.
    #[arg(long)]
    out: PathBuf,
    /// Dataset format.
    #[arg(long, value_enum, default_value = "lerobot-v2.1")]
    format: FormatArg,
    /// Run seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Continue an interrupted run in `--out`.
    #[arg(long)]
    resume: bool,
    /// Store cameras as mp4 (needs ffmpeg on PATH) instead of PNG images.
    #[arg(long)]
    video: bool,
    /// Give up after this many attempts per requested episode (expert failures).
    #[arg(long, default_value_t = 3)]
    max_attempts_factor: usize,
    /// Write scenes instead of demonstrations: one frame per episode (the episode's start,
    /// robot holding its initial pose), with the instruction and subgoal label; no expert run.
    #[arg(long)]
    scenes: bool,
    /// With --scenes: record only these cameras (comma-separated robot camera names, e.g.
    /// `ego_view`); default: every camera of the robot.
    #[arg(long, value_delimiter = ',')]
    cameras: Option<Vec<String>>,
    /// With --scenes: drop the task's one-arm side constraint (`layout.one_arm_band`: the
    /// expert needs the named object and its destination on one arm's side). Without it a
    /// planner trained on the scenes can guess the object from the destination's side instead
    /// of reading the instruction.
    #[arg(long, requires = "scenes")]
    any_side: bool,
}

/// Seed of attempt `k` (SplitMix64 finaliser of the pair).
pub fn attempt_seed(seed: u64, k: u64) -> u64 {
    let mut z = seed ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The episode's subgoal, System 2's auxiliary label: where the named object starts and where
/// its destination is, `[x, y, z]` each (m, world frame; the robot's pelvis is fixed in it).
/// `None` when the destination is not an object of the scene.
pub fn subgoal(ep: &bicameral_sim::EpisodeSetup) -> Option<[f64; 6]> {
    let o = ep.object_config(&ep.object)?.position;
    let t = ep.object_config(&ep.target)?.position;
    Some([o[0], o[1], o[2], t[0], t[1], t[2]])
}

fn to_episode(
    rec: RecordedEpisode,
    task_name: &str,
    attempt: u64,
    subgoal: Option<[f64; 6]>,
) -> Episode {
    Episode {
        task: rec.task,
        frames: rec
            .frames
            .into_iter()
            .map(|f| Frame {
                state: f.state,
                action: f.action,
                images: f.images,
            })
            .collect(),
        meta: json!({
            "task_name": task_name,
            "seed": rec.seed,
            "attempt": attempt,
            "success": rec.success,
            "subgoal": subgoal,
        }),
    }
}

/// The dataset layout of `env`'s robot.
pub fn dataset_spec(env: &TaskEnv, video: bool) -> Result<DatasetSpec> {
    let emb = &env.base.embodiment;
    let names = |idx: Vec<usize>| -> Vec<String> {
        idx.iter()
            .map(|&i| env.base.kin.dof_names()[i].clone())
            .collect()
    };
    let slices = |s: Vec<bicameral_robot::Slice>| -> Vec<(String, usize, usize)> {
        s.into_iter().map(|s| (s.key, s.start, s.end)).collect()
    };
    Ok(DatasetSpec {
        fps: env.spec.control_hz,
        robot_type: env.base.model.name.clone(),
        state_names: names(emb.state_dof_indices(&env.base.kin)?),
        action_names: names(emb.action_dof_indices(&env.base.kin)?),
        state_slices: slices(emb.state_slices()),
        action_slices: slices(emb.action_slices()),
        cameras: emb
            .cameras
            .iter()
            .map(|c| (c.name.clone(), c.width, c.height))
            .collect(),
        video,
    })
}

/// What a generation run should do.
pub struct GenConfig {
    /// Successful episodes the dataset should hold at the end.
    pub episodes: usize,
    /// Worker threads.
    pub workers: usize,
    /// Run seed.
    pub seed: u64,
    /// Continue the dataset in the output directory.
    pub resume: bool,
    /// Attempts allowed per requested episode.
    pub max_attempts_factor: usize,
    /// Render and store camera images.
    pub images: bool,
    /// Scenes only: one frame per episode, no expert run (see the module docs).
    pub scenes: bool,
    /// Cameras to record (robot camera names); `None`: all.
    pub cameras: Option<Vec<String>>,
    /// Show a progress bar.
    pub progress: bool,
}

/// What a generation run did.
pub struct GenReport {
    /// Episodes in the dataset at the end.
    pub total_episodes: usize,
    /// Frames in the dataset at the end.
    pub total_frames: usize,
    /// Attempts simulated in this run.
    pub attempts: u64,
    /// Successful attempts (written) in this run.
    pub successes: u64,
    /// Failed attempts by reason.
    pub failures: BTreeMap<String, usize>,
    /// Wall time of the run (s).
    pub wall_s: f64,
}

impl GenReport {
    /// Expert success rate of this run (0 when nothing was attempted).
    pub fn success_rate(&self) -> f64 {
        self.successes as f64 / self.attempts.max(1) as f64
    }

    /// Successful demonstrations per wall-clock hour.
    pub fn demos_per_hour(&self) -> f64 {
        self.successes as f64 / self.wall_s.max(1e-9) * 3600.0
    }
}

/// Runs the scripted expert of `env` and writes its successful episodes to `out`.
pub fn generate(
    env: &TaskEnv,
    out: &Path,
    format: Format,
    video: bool,
    cfg: &GenConfig,
) -> Result<GenReport> {
    if cfg.episodes == 0 {
        bail!("--episodes must be at least 1");
    }
    let mut spec = dataset_spec(env, video)?;
    if !cfg.images {
        spec.cameras.clear();
    }
    if let Some(names) = &cfg.cameras {
        if !cfg.scenes {
            bail!(
                "--cameras selects cameras for --scenes only; demonstrations record every camera"
            );
        }
        let have: Vec<String> = spec.cameras.iter().map(|c| c.0.clone()).collect();
        if let Some(bad) = names.iter().find(|n| !have.contains(n)) {
            bail!("--cameras: the robot has no camera \"{bad}\" (it has {have:?})");
        }
        spec.cameras.retain(|c| names.contains(&c.0));
    }
    // Where to continue: the attempt after the last one written.
    let mut next_attempt = 0u64;
    if cfg.resume && out.join("meta").join("info.json").is_file() {
        let ds =
            Dataset::open(out).with_context(|| format!("reading {} to resume", out.display()))?;
        if ds.num_episodes() > 0 {
            let last = ds.episode(ds.num_episodes() - 1)?;
            next_attempt = last.meta["attempt"].as_u64().map(|a| a + 1).with_context(|| {
                format!(
                    "{}: last episode has no \"attempt\" in its metadata; not written by datagen",
                    out.display()
                )
            })?;
            if last.meta["seed"].as_u64() != Some(attempt_seed(cfg.seed, next_attempt - 1)) {
                bail!(
                    "{}: was generated with another --seed (episode seeds differ); resume with \
                     the original seed",
                    out.display()
                );
            }
        }
    }
    let mut writer = DatasetWriter::create(out, format, spec, cfg.resume)
        .with_context(|| format!("cannot write the dataset at {}", out.display()))?;
    let done_before = writer.episodes_written();
    let bar = if cfg.progress {
        ProgressBar::new(cfg.episodes as u64).with_style(ProgressStyle::with_template(
            "{bar:30} {pos}/{len} episodes [{elapsed_precise} < {eta}] {per_sec} {msg}",
        )?)
    } else {
        ProgressBar::hidden()
    };
    bar.set_position(done_before as u64);
    let options = EpisodeOptions {
        record_images: cfg.images,
        heldout_instructions: false,
        keep_failures: false,
    };
    let max_attempts = next_attempt + (cfg.episodes * cfg.max_attempts_factor.max(1)) as u64;
    let (mut attempts, mut successes) = (0u64, 0u64);
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    let t0 = Instant::now();
    while writer.episodes_written() < cfg.episodes {
        if next_attempt >= max_attempts {
            bail!(
                "expert failed too often: {successes} successes in {attempts} attempts ({failures:?})"
            );
        }
        let batch = cfg.workers.max(1) as u64;
        let mut ks: Vec<u64> = (next_attempt..next_attempt + batch).collect();
        let results = par_map(cfg.workers, &mut ks, |_, k| {
            let ep = env.sample(attempt_seed(cfg.seed, *k), options.heldout_instructions)?;
            let (outcome, rec) = if cfg.scenes {
                let rec = env.record_scene(&ep, cfg.cameras.as_deref())?;
                let outcome = bicameral_sim::EpisodeOutcome {
                    success: true,
                    failure_reason: None,
                    steps: 1,
                    sim_time: 0.0,
                };
                (outcome, Some(rec))
            } else {
                env.run_setup(&ep, &options)?
            };
            Ok::<_, bicameral_sim::SimError>((outcome, rec, subgoal(&ep)))
        });
        for (k, r) in ks.into_iter().zip(results) {
            if writer.episodes_written() >= cfg.episodes {
                break;
            }
            next_attempt = k + 1;
            attempts += 1;
            let (outcome, recording, sg) = r?;
            match (outcome.success, recording) {
                (true, Some(rec)) => {
                    successes += 1;
                    writer.write_episode(&to_episode(rec, &env.spec.name, k, sg))?;
                    tracing::info!(
                        episode = writer.episodes_written() - 1,
                        attempt = k,
                        "episode written"
                    );
                    bar.inc(1);
                }
                _ => {
                    let reason = outcome.failure_reason.unwrap_or_else(|| "unknown".into());
                    tracing::debug!(attempt = k, %reason, "expert failed");
                    *failures.entry(reason).or_default() += 1;
                }
            }
            bar.set_message(format!(
                "expert success {:.0} % ({successes}/{attempts})",
                100.0 * successes as f64 / attempts as f64
            ));
        }
    }
    bar.finish_and_clear();
    let info = writer.finish()?;
    Ok(GenReport {
        total_episodes: info.total_episodes,
        total_frames: info.total_frames,
        attempts,
        successes,
        failures,
        wall_s: t0.elapsed().as_secs_f64(),
    })
}

pub fn run(args: &DatagenArgs) -> Result<()> {
    let root = DataRoot::discover()?;
    let mut env = TaskEnv::load(&root, &args.task)?;
    if args.any_side {
        env.spec.layout.one_arm_band = None;
    }
    let format = match args.format {
        FormatArg::V21 => Format::LeRobotV21,
        FormatArg::V3 => Format::LeRobotV30,
    };
    let cfg = GenConfig {
        episodes: args.episodes,
        workers: args.workers,
        seed: args.seed,
        resume: args.resume,
        max_attempts_factor: args.max_attempts_factor,
        images: true,
        scenes: args.scenes,
        cameras: args.cameras.clone(),
        progress: true,
    };
    let r = generate(&env, &args.out, format, args.video, &cfg)?;
    if args.scenes {
        println!(
            "{}: {} scenes ({} new) of task \"{}\"; {:.0} scenes/h",
            args.out.display(),
            r.total_episodes,
            r.successes,
            env.spec.name,
            r.demos_per_hour(),
        );
        return Ok(());
    }
    println!(
        "{}: {} episodes ({} new) of task \"{}\"; expert success {}/{} ({:.1} %); {:.0} demos/h; failures: {:?}",
        args.out.display(),
        r.total_episodes,
        r.successes,
        env.spec.name,
        r.successes,
        r.attempts,
        100.0 * r.success_rate(),
        r.demos_per_hour(),
        r.failures,
    );
    Ok(())
}
