//! `bicameral eval`: closed-loop evaluation in lock-step simulation.
//!
//! Each episode runs the same node code as the live runtime (the runtime's `PlannerCore`,
//! `ActionCore` and `Executor`) on simulated time: the world steps at its physics rate, camera
//! frames and joint states are produced at their rates, System 2 plans at its rate, System 1
//! samples a chunk at its rate (RTC on the previous chunk), and the executor ticks at the
//! control rate through the safety filter; its commands become the robot's PD targets.
//! Inference takes no simulated time (lock-step), so results do not depend on the machine.
//!
//! Conditions (each on the same seeds):
//! - `policy`: System 2 + System 1, training instruction templates;
//! - `paraphrase`: the same with held-out paraphrases of the instructions;
//! - `shuffled`: the instruction names another graspable object of the same scene (roles
//!   swapped, same template): a language-following policy moves the newly named object;
//! - `no_plan`: System 1 alone on the checkpoint's learned null plan (no System 2);
//! - `expert`: the scripted expert (privileged state): the upper bound of the task itself.
//!
//! Seeds: datagen draws training episodes from `--seed 0` upwards; eval defaults to seeds from
//! 1 000 000 so its scenes are held out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};
use bicameral_msgs::{
    CameraFrame, Header, ImageEncoding, Instruction, JointState, SafetyEventKind,
};
use bicameral_runtime::executor::{Executor, ExecutorConfig};
use bicameral_runtime::nodes::{ActionCore, ActionNodeConfig, PlannerCore, PlannerNodeConfig};
use bicameral_runtime::safety::{SafetyConfig, SafetyLimits};
use bicameral_sim::{
    CameraImage, DataRoot, Ending, EpisodeMonitor, EpisodeOptions, EpisodeSetup, FailureCause,
    SimError, SimWorld, TaskEnv,
};
use bicameral_viz::{Recording, SimLogger, Sink};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::agents::{BurnActor, BurnPlanner, ComputePool, load};

/// An evaluation condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Condition {
    /// System 2 + System 1 on training instruction templates.
    Policy,
    /// System 2 + System 1 on held-out paraphrases.
    Paraphrase,
    /// The instruction names another object of the scene.
    Shuffled,
    /// System 1 alone with the learned null plan.
    NoPlan,
    /// The scripted expert.
    Expert,
}

impl Condition {
    /// Snake-case name.
    pub fn name(self) -> &'static str {
        match self {
            Condition::Policy => "policy",
            Condition::Paraphrase => "paraphrase",
            Condition::Shuffled => "shuffled",
            Condition::NoPlan => "no_plan",
            Condition::Expert => "expert",
        }
    }

    fn needs_checkpoint(self) -> bool {
        self != Condition::Expert
    }
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Checkpoint directory written by `bicameral train dual` (not needed for `--conditions expert`).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Tasks (under sim/tasks/), comma-separated, or `all`.
    #[arg(long, value_delimiter = ',', default_value = "pick_place")]
    pub task: Vec<String>,
    /// Episodes per task and condition.
    #[arg(long, default_value_t = 20)]
    pub episodes: usize,
    /// First episode seed (episode i uses seed + i).
    #[arg(long, default_value_t = 1_000_000)]
    pub seed: u64,
    /// Worker threads (each loads its own copy of the model and computes on one thread of its
    /// own, so the results do not depend on the worker count).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Conditions, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "policy,paraphrase,shuffled,no_plan,expert"
    )]
    pub conditions: Vec<Condition>,
    /// Save one rerun recording per episode into this directory.
    #[arg(long)]
    pub save_rrd: Option<PathBuf>,
    /// Write the results as JSON here; the markdown report goes next to it (same stem, `.md`).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// System 2 rate, Hz (simulated time).
    #[arg(long, default_value_t = 5.0)]
    pub planner_hz: f64,
    /// System 1 rate, chunks per second (simulated time).
    #[arg(long, default_value_t = 30.0)]
    pub action_hz: f64,
    /// Time between chunk steps, ms (the training data's frame period).
    #[arg(long, default_value_t = 50.0)]
    pub action_dt_ms: f64,
    /// Executor rate, Hz.
    #[arg(long, default_value_t = 500.0)]
    pub control_hz: f64,
    /// Camera frame rate, Hz.
    #[arg(long, default_value_t = 10.0)]
    pub camera_hz: f64,
    /// Joint-state rate (to System 1), Hz.
    #[arg(long, default_value_t = 100.0)]
    pub state_hz: f64,
    /// Switch chunks without real-time chunking.
    #[arg(long)]
    pub no_rtc: bool,
    /// Guided real-time chunking with this guidance clip β (Black et al. use 5); without it,
    /// RTC is inpainting only.
    #[arg(long, conflicts_with = "no_rtc")]
    pub rtc_guidance: Option<f32>,
    /// Embodiment (the checkpoint's name for the robot's action space).
    #[arg(long, default_value = "bc_humanoid")]
    pub embodiment: String,
    /// Override the tasks' time limits, s.
    #[arg(long)]
    pub time_limit: Option<f64>,
}

/// Timing of the lock-step loop.
#[derive(Debug, Clone, Serialize)]
pub struct LoopConfig {
    /// System 2 rate, Hz.
    pub planner_hz: f64,
    /// System 1 rate, Hz.
    pub action_hz: f64,
    /// Chunk step period, s.
    pub action_dt_s: f64,
    /// Executor rate, Hz.
    pub control_hz: f64,
    /// Camera rate, Hz.
    pub camera_hz: f64,
    /// Joint-state rate, Hz.
    pub state_hz: f64,
    /// Real-time chunking.
    pub rtc: bool,
    /// Guided RTC's clip β (`None`: inpainting only).
    pub rtc_guidance: Option<f32>,
    /// Time limit override, s.
    pub time_limit_s: Option<f64>,
}

/// One episode's result.
#[derive(Debug, Clone, Serialize)]
pub struct EpisodeResult {
    /// Condition.
    pub condition: Condition,
    /// Task.
    pub task: String,
    /// Seed.
    pub seed: u64,
    /// The instruction given.
    pub instruction: String,
    /// Its template.
    pub template: String,
    /// Success test passed (and nothing else disturbed).
    pub success: bool,
    /// Simulated time of success, s.
    pub time_to_success_s: Option<f64>,
    /// Why it failed.
    pub failure: Option<&'static str>,
    /// The expert's own failure message (expert condition).
    pub detail: Option<String>,
    /// The first object lifted.
    pub first_lifted: Option<String>,
    /// Whether the first object lifted was the one the instruction names.
    pub picked_named: Option<bool>,
    /// Simulated time at the end, s.
    pub sim_time_s: f64,
    /// Plans made by System 2.
    pub plans: u64,
    /// Chunks made by System 1.
    pub chunks: u64,
    /// Chunks the executor rejected (NaN, out of limits).
    pub rejected_chunks: u64,
    /// Executor ticks whose command the safety filter clamped (count of clamp events).
    pub clamp_events: u64,
    /// At each chunk switch: max over joints of |new chunk − old chunk| at the switch time, rad.
    pub boundary_jumps_rad: Vec<f64>,
    /// System 2's subgoal error, mean over its plans of the episode's first second: distance
    /// from the predicted to the true start of the named object and of its destination, m
    /// (world frame). `None` without a
    /// subgoal head, a plan, or a label (the destination is not an object).
    pub subgoal_error_m: Option<[f64; 2]>,
    /// Closest a grasp site came to the named object's origin during the episode, m (world
    /// frame); `None` for a robot without grasp sites.
    pub closest_approach_m: Option<f64>,
}

/// Plans judged for the subgoal error: those of the first second (simulated), ns.
const SUBGOAL_WINDOW_NS: u64 = 1_000_000_000;

/// Distance between a predicted subgoal `[x, y, z, x, y, z]` and the episode's label, m:
/// object part and destination part.
fn subgoal_error(pred: &[f32], label: &[f64; 6]) -> Option<[f64; 2]> {
    if pred.len() != 6 {
        return None;
    }
    let d = |o: usize| {
        (0..3)
            .map(|i| (f64::from(pred[o + i]) - label[o + i]).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    Some([d(0), d(3)])
}

/// Wilson score interval (95 %) for `k` successes in `n` trials.
pub fn wilson95(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.959_963_984_540_054_f64;
    let (n, p) = (n as f64, k as f64 / n as f64);
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Aggregate of a set of episodes.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Condition.
    pub condition: Condition,
    /// Task (`all` for the pooled row).
    pub task: String,
    /// Episodes.
    pub episodes: usize,
    /// Successes.
    pub successes: usize,
    /// Success rate.
    pub success_rate: f64,
    /// Wilson 95 % interval, low.
    pub ci95_low: f64,
    /// Wilson 95 % interval, high.
    pub ci95_high: f64,
    /// Mean time to success over successful episodes, s.
    pub mean_time_to_success_s: Option<f64>,
    /// Episodes in which some object was lifted.
    pub attempts: usize,
    /// Of those, the fraction whose first lifted object was the named one.
    pub named_object_rate: Option<f64>,
    /// Failures by cause.
    pub failures: BTreeMap<&'static str, usize>,
    /// Mean chunk-boundary jump, rad.
    pub boundary_jump_mean_rad: Option<f64>,
    /// 95th percentile chunk-boundary jump, rad.
    pub boundary_jump_p95_rad: Option<f64>,
    /// Mean over episodes of System 2's subgoal error (object, destination), m.
    pub subgoal_error_m: Option<[f64; 2]>,
    /// Median over episodes of the closest approach of a grasp site to the named object, m.
    pub closest_approach_median_m: Option<f64>,
    /// Success per instruction template: (episodes, successes).
    pub templates: BTreeMap<String, (usize, usize)>,
}

/// Summarizes `eps` (all of one condition; `task` names the row).
pub fn summarize(condition: Condition, task: &str, eps: &[&EpisodeResult]) -> Summary {
    let n = eps.len();
    let k = eps.iter().filter(|e| e.success).count();
    let (lo, hi) = wilson95(k, n);
    let times: Vec<f64> = eps.iter().filter_map(|e| e.time_to_success_s).collect();
    let attempts: Vec<bool> = eps.iter().filter_map(|e| e.picked_named).collect();
    let mut failures: BTreeMap<&'static str, usize> =
        FailureCause::ALL.iter().map(|c| (c.name(), 0)).collect();
    for e in eps {
        if let Some(f) = e.failure {
            *failures.entry(f).or_default() += 1;
        }
    }
    let mut jumps: Vec<f64> = eps
        .iter()
        .flat_map(|e| e.boundary_jumps_rad.iter().copied())
        .collect();
    jumps.sort_by(f64::total_cmp);
    let sg: Vec<[f64; 2]> = eps.iter().filter_map(|e| e.subgoal_error_m).collect();
    let mut reach: Vec<f64> = eps.iter().filter_map(|e| e.closest_approach_m).collect();
    reach.sort_by(f64::total_cmp);
    let mut templates: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for e in eps {
        let t = templates.entry(e.template.clone()).or_default();
        t.0 += 1;
        t.1 += usize::from(e.success);
    }
    Summary {
        condition,
        task: task.to_string(),
        episodes: n,
        successes: k,
        success_rate: if n > 0 { k as f64 / n as f64 } else { 0.0 },
        ci95_low: lo,
        ci95_high: hi,
        mean_time_to_success_s: (!times.is_empty())
            .then(|| times.iter().sum::<f64>() / times.len() as f64),
        attempts: attempts.len(),
        named_object_rate: (!attempts.is_empty())
            .then(|| attempts.iter().filter(|&&b| b).count() as f64 / attempts.len() as f64),
        failures,
        boundary_jump_mean_rad: (!jumps.is_empty())
            .then(|| jumps.iter().sum::<f64>() / jumps.len() as f64),
        boundary_jump_p95_rad: (!jumps.is_empty()).then(|| {
            let i = ((jumps.len() as f64 * 0.95).ceil() as usize).clamp(1, jumps.len()) - 1;
            jumps[i]
        }),
        subgoal_error_m: (!sg.is_empty()).then(|| {
            let n = sg.len() as f64;
            [
                sg.iter().map(|e| e[0]).sum::<f64>() / n,
                sg.iter().map(|e| e[1]).sum::<f64>() / n,
            ]
        }),
        closest_approach_median_m: (!reach.is_empty()).then(|| {
            let m = reach.len() / 2;
            if reach.len() % 2 == 1 {
                reach[m]
            } else {
                0.5 * (reach[m - 1] + reach[m])
            }
        }),
        templates,
    }
}

/// The whole evaluation as written to JSON.
#[derive(Debug, Serialize)]
pub struct EvalReport {
    /// Success rate of the headline condition (`policy` if run, else the first), all tasks.
    pub success_rate: f64,
    /// Episodes of the headline condition.
    pub episodes: usize,
    /// Wilson 95 % interval of the headline success rate.
    pub ci95_low: f64,
    /// Upper end.
    pub ci95_high: f64,
    /// The headline condition.
    pub headline: Condition,
    /// Checkpoint evaluated.
    pub checkpoint: Option<String>,
    /// First seed.
    pub seed: u64,
    /// Loop timing.
    pub config: LoopConfig,
    /// Per condition and task (and `all`).
    pub summaries: Vec<Summary>,
    /// Every episode.
    pub results: Vec<EpisodeResult>,
}

/// The models of one worker.
struct Agents {
    planner: PlannerCore<BurnPlanner>,
    action: ActionCore<BurnActor>,
    null_action: ActionCore<BurnActor>,
}

impl Agents {
    /// The models of `dir`, computing on `pool`.
    fn load(dir: &Path, args: &EvalArgs, lc: &LoopConfig, pool: ComputePool) -> Result<Self> {
        let (p1, _) = load(dir)?;
        let (p2, _) = load(dir)?;
        let p3 = p2.clone();
        let planner = PlannerCore::new(
            BurnPlanner::new(p1, vec!["ego_view".into()])?.with_pool(pool.clone()),
            PlannerNodeConfig {
                rate_hz: lc.planner_hz,
                ..PlannerNodeConfig::default()
            },
            "sim",
        );
        let acfg = ActionNodeConfig {
            rate_hz: lc.action_hz,
            rtc: lc.rtc,
            ..ActionNodeConfig::default()
        };
        let action = ActionCore::new(
            BurnActor::new(p2, &args.embodiment, lc.action_dt_s)?
                .with_rtc_guidance(lc.rtc_guidance)
                .with_pool(pool.clone()),
            acfg.clone(),
            "sim",
        );
        let null_action = ActionCore::new(
            BurnActor::new(p3, &args.embodiment, lc.action_dt_s)?
                .without_plan()
                .with_rtc_guidance(lc.rtc_guidance)
                .with_pool(pool),
            acfg,
            "sim",
        );
        Ok(Agents {
            planner,
            action,
            null_action,
        })
    }
}

/// The action of `chunk` (`[H, D]` row-major, steps `dt_ns` apart from `t0_ns`) at `t_ns`,
/// linearly interpolated and held at the ends.
fn chunk_at(actions: &[f32], d: usize, t0_ns: u64, dt_ns: u64, t_ns: u64, out: &mut [f64]) {
    let h = actions.len() / d;
    let f = (t_ns.saturating_sub(t0_ns) as f64 / dt_ns as f64).min((h - 1) as f64);
    let j = f.floor() as usize;
    let k = (j + 1).min(h - 1);
    let w = f - j as f64;
    for c in 0..d {
        out[c] = f64::from(actions[j * d + c]) * (1.0 - w) + f64::from(actions[k * d + c]) * w;
    }
}

/// Per-episode rerun logging.
struct EpisodeLog {
    rec: Recording,
    /// Grasp-site link indices (left, right).
    sites: Vec<usize>,
}

impl EpisodeLog {
    fn open(path: &Path, env: &TaskEnv, ep: &EpisodeSetup, world: &SimWorld) -> Result<Self> {
        let rec = Recording::open("bicameral_eval", &Sink::Save(path.to_path_buf()))?;
        let log = SimLogger::new(&rec.rec);
        log.log_static_scene(world)?;
        log.set_time(world);
        log.log_text("task/instruction", &ep.instruction)?;
        let sites = ["left_grasp_site", "right_grasp_site"]
            .iter()
            .filter_map(|n| env.base.model.links.iter().position(|l| l.name == *n))
            .collect();
        Ok(EpisodeLog { rec, sites })
    }

    fn logger(&self) -> SimLogger<'_> {
        SimLogger::new(&self.rec.rec)
    }

    /// Each predicted chunk as 3D grasp-site trajectories (forward kinematics of the chunk's
    /// joint targets, the other joints at their current values).
    fn chunk(
        &self,
        env: &TaskEnv,
        world: &SimWorld,
        dofs: &[usize],
        actions: &[f32],
    ) -> Result<()> {
        let q = world.joint_positions();
        let poses = world.link_poses();
        let base = poses[0] * env.base.kin.fk(&q)[0].inverse();
        let d = dofs.len();
        let mut paths = vec![Vec::new(); self.sites.len()];
        let mut qk = q.clone();
        for row in actions.chunks(d) {
            for (&i, &a) in dofs.iter().zip(row) {
                qk[i] = f64::from(a);
            }
            let p = env.base.kin.fk_with_base(&base, &qk);
            for (path, &s) in paths.iter_mut().zip(&self.sites) {
                let t = p[s].translation.vector;
                path.push([t.x, t.y, t.z]);
            }
        }
        let colours = [[80, 160, 255], [255, 140, 60]];
        self.logger()
            .log_paths("world/plan/chunk", &paths, &colours[..paths.len()])?;
        Ok(())
    }

    fn executed(&self, trail: &[Vec<[f64; 3]>]) -> Result<()> {
        self.logger().log_paths(
            "world/executed",
            trail,
            &[[40, 90, 200], [200, 90, 30]][..trail.len()],
        )?;
        Ok(())
    }
}

fn now_ns(world: &SimWorld) -> u64 {
    // Stamps start at 1 s so that no message carries a zero stamp.
    1_000_000_000 + (world.time() * 1e9).round() as u64
}

/// Runs one closed-loop episode of `ep` with System 1 (and System 2 when `planner` is given).
fn run_closed_loop(
    env: &TaskEnv,
    ep: &EpisodeSetup,
    condition: Condition,
    mut planner: Option<&mut PlannerCore<BurnPlanner>>,
    action: &mut ActionCore<BurnActor>,
    lc: &LoopConfig,
    log: Option<&mut EpisodeLog>,
) -> Result<EpisodeResult> {
    let mut world = env.world(ep)?;
    let mut cameras = env.cameras(ep, &world)?;
    let cam_index: Vec<usize> = match &planner {
        Some(p) => p
            .cameras()
            .iter()
            .map(|c| {
                cameras
                    .index(c)
                    .with_context(|| format!("the robot has no camera \"{c}\""))
            })
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    let emb = &env.base.embodiment;
    let dofs = emb.action_dof_indices(&env.base.kin)?;
    let state_dofs = emb.state_dof_indices(&env.base.kin)?;
    let limits = SafetyLimits::from_robot(&env.base.kin, emb, &SafetyConfig::default())?;
    let exec_cfg = ExecutorConfig {
        rate_hz: lc.control_hz,
        ..ExecutorConfig::default()
    };
    let (mut exec, mut io) = Executor::new(exec_cfg, limits)?;
    let mut monitor = EpisodeMonitor::new(ep, &world);
    let robot = "sim";
    action.reset();
    if let Some(p) = planner.as_deref_mut() {
        p.reset();
        p.on_instruction(Instruction {
            header: Header::new::<Instruction>(robot, 0, now_ns(&world)),
            text: ep.instruction.clone(),
        });
    }

    let period = |hz: f64| (1e9 / hz).round() as u64;
    let (p_state, p_cam, p_plan, p_act, p_exec) = (
        period(lc.state_hz),
        period(lc.camera_hz),
        period(lc.planner_hz),
        period(lc.action_hz),
        period(lc.control_hz),
    );
    let p_control = period(env.spec.control_hz);
    let start = now_ns(&world);
    let (mut n_state, mut n_cam, mut n_plan, mut n_act, mut n_exec, mut n_control) =
        (start, start, start, start, start, start);
    let limit = lc.time_limit_s.unwrap_or(env.spec.time_limit_s);
    let mut targets = world.joint_targets().to_vec();
    let mut img = CameraImage::default();
    let mut q_exec = vec![0.0; dofs.len()];
    let (mut plans, mut chunks) = (0u64, 0u64);
    let mut previous: Option<(u64, u64, Vec<f32>)> = None;
    let mut jumps = Vec::new();
    let label = crate::datagen::subgoal(ep);
    let (mut sg_sum, mut sg_n) = ([0.0f64; 2], 0usize);
    let (mut a_old, mut a_new) = (vec![0.0; dofs.len()], vec![0.0; dofs.len()]);
    let mut trail: Vec<Vec<[f64; 3]>> = vec![Vec::new(); log.as_ref().map_or(0, |l| l.sites.len())];

    let mut diverged: Option<String> = None;
    let ending = loop {
        let now = now_ns(&world);
        let q = world.joint_positions();
        if now >= n_state {
            let v = world.joint_velocities();
            let e = world.joint_efforts();
            let pick = |x: &[f64]| state_dofs.iter().map(|&i| x[i]).collect::<Vec<_>>();
            action.on_state(JointState {
                header: Header::new::<JointState>(robot, 0, now),
                position: pick(&q),
                velocity: pick(&v),
                effort: pick(&e),
            });
            n_state += p_state;
        }
        if let Some(p) = planner.as_deref_mut()
            && now >= n_cam
        {
            for &ci in &cam_index {
                cameras.render_into(&world, ci, &mut img)?;
                let name = cameras.specs()[ci].name.clone();
                if let Some(l) = log.as_deref() {
                    l.logger().set_time(&world);
                    l.logger().log_rgb(
                        &format!("cameras/{name}"),
                        img.width,
                        img.height,
                        &img.rgb,
                    )?;
                }
                p.on_frame(
                    CameraFrame {
                        header: Header::new::<CameraFrame>(robot, 0, now),
                        camera: name,
                        width: img.width,
                        height: img.height,
                        encoding: ImageEncoding::Rgb8,
                        data: img.rgb.clone(),
                    },
                    now,
                )?;
            }
            n_cam += p_cam;
        }
        if let Some(p) = planner.as_deref_mut()
            && now >= n_plan
        {
            if p.has_new_observation()
                && let Some(plan) = p.step(now)?
            {
                action.on_plan(&plan)?;
                plans += 1;
                // The label is where things start: judge the plans of the first second, before
                // the robot can have moved anything.
                if now - start <= SUBGOAL_WINDOW_NS
                    && let Some(e) = label.and_then(|l| subgoal_error(&plan.subgoal, &l))
                {
                    sg_sum[0] += e[0];
                    sg_sum[1] += e[1];
                    sg_n += 1;
                }
                if let Some(l) = log.as_deref() {
                    l.logger().set_time(&world);
                    l.logger().log_subgoal(&plan.subgoal)?;
                }
            }
            n_plan += p_plan;
        }
        if now >= n_act {
            if action.has_new_state()
                && let Some(chunk) = action.step(now)?
            {
                let d = dofs.len();
                let acts = chunk.actions.to_f32()?;
                if let Some((t0, dt, prev)) = &previous {
                    chunk_at(prev, d, *t0, *dt, now, &mut a_old);
                    chunk_at(&acts, d, chunk.t0_ns, chunk.dt_ns, now, &mut a_new);
                    let jump = a_old
                        .iter()
                        .zip(&a_new)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0, f64::max);
                    jumps.push(jump);
                }
                if let Some(l) = log.as_deref() {
                    l.logger().set_time(&world);
                    l.chunk(env, &world, &dofs, &acts)?;
                }
                io.chunks.send(&chunk)?;
                previous = Some((chunk.t0_ns, chunk.dt_ns, acts));
                chunks += 1;
            }
            n_act += p_act;
        }
        if now >= n_exec {
            for (m, &i) in q_exec.iter_mut().zip(&dofs) {
                *m = q[i];
            }
            io.state.send(&q_exec)?;
            if let Some((pos, _vel, _mode)) = exec.tick(now) {
                for (&i, &x) in dofs.iter().zip(pos) {
                    targets[i] = x;
                }
                world.set_joint_targets(&targets)?;
            }
            n_exec += p_exec;
        }
        match world.step() {
            Ok(()) => {}
            Err(e @ SimError::Diverged { .. }) => {
                diverged = Some(e.to_string());
                break Ending::Diverged;
            }
            Err(e) => return Err(e.into()),
        }
        let now = now_ns(&world);
        if now >= n_control {
            n_control += p_control;
            if let Some(l) = log.as_deref() {
                let lg = l.logger();
                lg.set_time(&world);
                lg.log_state(&world)?;
                let poses = world.link_poses();
                for (t, &s) in trail.iter_mut().zip(&l.sites) {
                    let p = poses[s].translation.vector;
                    t.push([p.x, p.y, p.z]);
                }
                l.executed(&trail)?;
            }
            if monitor.observe(&env.spec, ep, &world) {
                break Ending::TimeLimit; // not a failure: `cause` sees the success
            }
            let c = exec.counters();
            if c.count(SafetyEventKind::ChunkRejected) + c.count(SafetyEventKind::ChunkOutOfLimits)
                >= 3
            {
                break Ending::SafetyStop;
            }
            if world.time() > limit {
                break Ending::TimeLimit;
            }
        }
    };
    let cause = monitor.cause(&env.spec, ep, &world, ending);
    let c = exec.counters();
    if let Some(l) = log.as_deref() {
        let lg = l.logger();
        lg.set_time(&world);
        lg.log_text(
            "task/result",
            &match cause {
                None => format!("success at {:.2} s", monitor.success_time().unwrap_or(0.0)),
                Some(c) => format!("failed: {}", c.name()),
            },
        )?;
    }
    Ok(EpisodeResult {
        condition,
        task: env.spec.name.clone(),
        seed: ep.seed,
        instruction: ep.instruction.clone(),
        template: ep.template.clone(),
        success: cause.is_none(),
        time_to_success_s: monitor.success_time(),
        failure: cause.map(FailureCause::name),
        detail: match (&cause, diverged, monitor.last_check()) {
            (Some(_), Some(why), _) => Some(why),
            (Some(_), None, Err(m)) => Some(m.clone()),
            _ => None,
        },
        first_lifted: monitor.first_lift().map(|(n, _)| n.to_string()),
        picked_named: monitor.picked_named(),
        sim_time_s: world.time(),
        plans,
        chunks,
        rejected_chunks: c.count(SafetyEventKind::ChunkRejected)
            + c.count(SafetyEventKind::ChunkOutOfLimits),
        clamp_events: c.count(SafetyEventKind::Clamped),
        boundary_jumps_rad: jumps,
        subgoal_error_m: (sg_n > 0).then(|| [sg_sum[0] / sg_n as f64, sg_sum[1] / sg_n as f64]),
        closest_approach_m: monitor.closest_approach(),
    })
}

/// The scripted expert on `ep`, watched by the same monitor.
fn run_expert(env: &TaskEnv, ep: &EpisodeSetup, lc: &LoopConfig) -> Result<EpisodeResult> {
    let mut monitor: Option<EpisodeMonitor> = None;
    let mut env_limited = env.clone();
    if let Some(t) = lc.time_limit_s {
        env_limited.spec.time_limit_s = t;
    }
    let (outcome, _) =
        env_limited.run_observed(ep, &EpisodeOptions::default(), &mut |w: &SimWorld| {
            let m = monitor.get_or_insert_with(|| EpisodeMonitor::new(ep, w));
            m.observe(&env.spec, ep, w);
            Ok(())
        })?;
    let failure = if outcome.success {
        None
    } else if outcome
        .failure_reason
        .as_deref()
        .is_some_and(|r| r.contains("diverged"))
    {
        Some(FailureCause::Diverged)
    } else if outcome
        .failure_reason
        .as_deref()
        .is_some_and(|r| r.contains("time limit"))
    {
        Some(FailureCause::Timeout)
    } else {
        match &monitor {
            Some(m) if m.picked_named() == Some(false) => Some(FailureCause::WrongObject),
            Some(m) if !m.object_lifted() => Some(FailureCause::MissedGrasp),
            _ => Some(FailureCause::Dropped),
        }
    };
    Ok(EpisodeResult {
        condition: Condition::Expert,
        task: env.spec.name.clone(),
        seed: ep.seed,
        instruction: ep.instruction.clone(),
        template: ep.template.clone(),
        success: outcome.success,
        time_to_success_s: outcome.success.then_some(outcome.sim_time),
        failure: failure.map(FailureCause::name),
        detail: outcome.failure_reason.clone(),
        first_lifted: monitor
            .as_ref()
            .and_then(|m| m.first_lift().map(|(n, _)| n.to_string())),
        picked_named: monitor.as_ref().and_then(EpisodeMonitor::picked_named),
        sim_time_s: outcome.sim_time,
        plans: 0,
        chunks: 0,
        rejected_chunks: 0,
        clamp_events: 0,
        boundary_jumps_rad: Vec::new(),
        subgoal_error_m: None,
        closest_approach_m: monitor.as_ref().and_then(EpisodeMonitor::closest_approach),
    })
}

/// The episode a condition runs for `seed` (`None`: the condition does not apply, e.g. no
/// other object to name).
fn episode_for(env: &TaskEnv, condition: Condition, seed: u64) -> Result<Option<EpisodeSetup>> {
    Ok(match condition {
        Condition::Paraphrase => Some(env.sample(seed, true)?),
        Condition::Shuffled => {
            let ep = env.sample(seed, false)?;
            let others = ep.distractors();
            if others.is_empty() {
                None
            } else {
                let pick = others[(seed % others.len() as u64) as usize].to_string();
                ep.retarget(&pick)
            }
        }
        _ => Some(env.sample(seed, false)?),
    })
}

/// Runs every (condition, task, seed) job on `workers` threads; results sorted.
pub fn evaluate(args: &EvalArgs, tasks: &[String], lc: &LoopConfig) -> Result<Vec<EpisodeResult>> {
    let root = DataRoot::discover().context("finding robots/ and sim/")?;
    let envs: Vec<TaskEnv> = tasks
        .iter()
        .map(|t| TaskEnv::load(&root, t).with_context(|| format!("task {t}")))
        .collect::<Result<_>>()?;
    let needs_model = args.conditions.iter().any(|c| c.needs_checkpoint());
    let checkpoint = match (&args.checkpoint, needs_model) {
        (Some(c), _) => Some(c.clone()),
        (None, false) => None,
        (None, true) => bail!(
            "--checkpoint is needed for the conditions {:?} (only `expert` runs without a model)",
            args.conditions
                .iter()
                .filter(|c| c.needs_checkpoint())
                .map(|c| c.name())
                .collect::<Vec<_>>()
        ),
    };
    let mut jobs = Vec::new();
    for &c in &args.conditions {
        for ti in 0..envs.len() {
            for i in 0..args.episodes {
                jobs.push((c, ti, args.seed + i as u64));
            }
        }
    }
    if let Some(dir) = &args.save_rrd {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let bar = ProgressBar::new(jobs.len() as u64).with_style(
        ProgressStyle::with_template(
            "{spinner} eval [{elapsed_precise}] {bar:30} {pos}/{len} episodes (eta {eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<EpisodeResult>> = Mutex::new(Vec::new());
    let successes = AtomicUsize::new(0);
    let workers = args.workers.clamp(1, jobs.len().max(1));
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (checkpoint, next, failed, results, successes, envs, jobs, bar) = (
                    &checkpoint,
                    &next,
                    &failed,
                    &results,
                    &successes,
                    &envs,
                    &jobs,
                    &bar,
                );
                s.spawn(move || -> Result<()> {
                    // Each worker computes on one thread of its own: the results do not depend
                    // on --workers (the number of threads changes float summation order, and
                    // closed loops amplify it), and at the default model size one thread per
                    // call is faster than two.
                    let pool = ComputePool::new(&format!("eval-{w}"), 1)?;
                    let mut agents = match checkpoint {
                        Some(c) => Some(Agents::load(c, args, lc, pool)?),
                        None => None,
                    };
                    loop {
                        if failed.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                        let j = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&(c, ti, seed)) = jobs.get(j) else {
                            return Ok(());
                        };
                        let env = &envs[ti];
                        let mut run = || -> Result<Option<EpisodeResult>> {
                            let Some(ep) = episode_for(env, c, seed)? else {
                                return Ok(None);
                            };
                            if c == Condition::Expert {
                                return Ok(Some(run_expert(env, &ep, lc)?));
                            }
                            let a = agents.as_mut().context("no model loaded")?;
                            let world = env.world(&ep)?;
                            let mut log = match &args.save_rrd {
                                Some(dir) => Some(EpisodeLog::open(
                                    &dir.join(format!("{}_{}_{seed}.rrd", c.name(), env.spec.name)),
                                    env,
                                    &ep,
                                    &world,
                                )?),
                                None => None,
                            };
                            let r = match c {
                                Condition::NoPlan => run_closed_loop(
                                    env,
                                    &ep,
                                    c,
                                    None,
                                    &mut a.null_action,
                                    lc,
                                    log.as_mut(),
                                )?,
                                _ => run_closed_loop(
                                    env,
                                    &ep,
                                    c,
                                    Some(&mut a.planner),
                                    &mut a.action,
                                    lc,
                                    log.as_mut(),
                                )?,
                            };
                            if let Some(l) = log {
                                l.rec.finish()?;
                            }
                            Ok(Some(r))
                        };
                        match run() {
                            Ok(Some(r)) => {
                                if r.success {
                                    successes.fetch_add(1, Ordering::Relaxed);
                                }
                                results
                                    .lock()
                                    .map_err(|_| anyhow::anyhow!("results lock poisoned"))?
                                    .push(r);
                            }
                            Ok(None) => {}
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                return Err(e.context(format!(
                                    "{} episode of {} with seed {seed}",
                                    c.name(),
                                    env.spec.name
                                )));
                            }
                        }
                        bar.inc(1);
                        bar.set_message(format!("{} successes", successes.load(Ordering::Relaxed)));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("an eval worker panicked"))??;
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    let mut results = results
        .into_inner()
        .map_err(|_| anyhow::anyhow!("results lock poisoned"))?;
    results.sort_by(|a, b| (a.condition, &a.task, a.seed).cmp(&(b.condition, &b.task, b.seed)));
    Ok(results)
}

/// Builds the report from results.
pub fn report(args: &EvalArgs, lc: &LoopConfig, results: Vec<EpisodeResult>) -> EvalReport {
    let mut summaries = Vec::new();
    let mut conditions: Vec<Condition> = args.conditions.clone();
    conditions.sort();
    conditions.dedup();
    let tasks: Vec<String> = {
        let mut t: Vec<String> = results.iter().map(|r| r.task.clone()).collect();
        t.sort();
        t.dedup();
        t
    };
    for &c in &conditions {
        for t in &tasks {
            let eps: Vec<&EpisodeResult> = results
                .iter()
                .filter(|r| r.condition == c && &r.task == t)
                .collect();
            summaries.push(summarize(c, t, &eps));
        }
        let all: Vec<&EpisodeResult> = results.iter().filter(|r| r.condition == c).collect();
        summaries.push(summarize(c, "all", &all));
    }
    let headline = if conditions.contains(&Condition::Policy) {
        Condition::Policy
    } else {
        conditions.first().copied().unwrap_or(Condition::Policy)
    };
    let head = summaries
        .iter()
        .find(|s| s.condition == headline && s.task == "all")
        .cloned()
        .unwrap_or_else(|| summarize(headline, "all", &[]));
    EvalReport {
        success_rate: head.success_rate,
        episodes: head.episodes,
        ci95_low: head.ci95_low,
        ci95_high: head.ci95_high,
        headline,
        checkpoint: args.checkpoint.as_ref().map(|p| p.display().to_string()),
        seed: args.seed,
        config: lc.clone(),
        summaries,
        results,
    }
}

fn pct(x: f64) -> String {
    format!("{:.1} %", 100.0 * x)
}

/// Every instruction template of the results, sorted (numbered T1, T2, … in the report).
pub fn templates(r: &EvalReport) -> Vec<String> {
    let mut t: Vec<String> = r.results.iter().map(|e| e.template.clone()).collect();
    t.sort();
    t.dedup();
    t
}

/// The markdown report; `plots` are PNG file names next to it.
pub fn markdown(r: &EvalReport, plots: &[String]) -> String {
    let numbered = templates(r);
    let mut s = String::new();
    s.push_str("# bicameral eval\n\n");
    s.push_str(&format!(
        "Checkpoint: `{}` · first seed {} · lock-step: System 2 at {} Hz, System 1 at {} Hz \
         (chunk step {} ms, RTC {}), executor at {} Hz, cameras at {} Hz.\n\n",
        r.checkpoint.as_deref().unwrap_or("(none)"),
        r.seed,
        r.config.planner_hz,
        r.config.action_hz,
        r.config.action_dt_s * 1e3,
        match (r.config.rtc, r.config.rtc_guidance) {
            (false, _) => "off".to_string(),
            (true, None) => "on".to_string(),
            (true, Some(b)) => format!("on, guided β = {b}"),
        },
        r.config.control_hz,
        r.config.camera_hz,
    ));
    s.push_str(&format!(
        "**Headline ({}):** {} success over {} episodes (Wilson 95 % CI {} – {}).\n\n",
        r.headline.name(),
        pct(r.success_rate),
        r.episodes,
        pct(r.ci95_low),
        pct(r.ci95_high)
    ));
    s.push_str("| condition | task | episodes | success | 95 % CI | time to success | picked named object | failures | chunk-boundary jump mean / p95 | S2 subgoal error (first 1 s) object / destination | closest approach to the object (median) |\n");
    s.push_str("|---|---|---:|---:|---|---:|---:|---|---:|---:|---:|\n");
    for m in &r.summaries {
        let failures: Vec<String> = m
            .failures
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} – {} | {} | {} | {} | {} | {} | {} |\n",
            m.condition.name(),
            m.task,
            m.episodes,
            pct(m.success_rate),
            pct(m.ci95_low),
            pct(m.ci95_high),
            m.mean_time_to_success_s
                .map_or("–".into(), |t| format!("{t:.1} s")),
            m.named_object_rate
                .map_or("–".into(), |x| format!("{} of {}", pct(x), m.attempts)),
            if failures.is_empty() {
                "–".into()
            } else {
                failures.join(", ")
            },
            match (m.boundary_jump_mean_rad, m.boundary_jump_p95_rad) {
                (Some(a), Some(b)) => format!("{a:.3} / {b:.3} rad"),
                _ => "–".into(),
            },
            m.subgoal_error_m.map_or("–".into(), |[o, d]| format!(
                "{:.1} / {:.1} cm",
                o * 100.0,
                d * 100.0
            )),
            m.closest_approach_median_m
                .map_or("–".into(), |r| format!("{:.1} cm", r * 100.0)),
        ));
    }
    for p in plots {
        s.push_str(&format!("\n![{p}]({p})\n"));
    }
    s.push_str("\n## Success per instruction template\n\n");
    s.push_str("| condition | task | template | episodes | success |\n|---|---|---|---:|---:|\n");
    for m in r.summaries.iter().filter(|m| m.task != "all") {
        for (t, (n, k)) in &m.templates {
            let i = numbered.iter().position(|x| x == t).map_or(0, |i| i + 1);
            s.push_str(&format!(
                "| {} | {} | T{i}: {} | {} | {} |\n",
                m.condition.name(),
                m.task,
                t,
                n,
                pct(*k as f64 / (*n).max(1) as f64)
            ));
        }
    }
    s.push_str(
        "\nConditions: `policy` System 2 + System 1 on training templates; `paraphrase` held-out \
         paraphrases; `shuffled` the instruction names another object of the same scene (success \
         and \"picked named object\" refer to the newly named one); `no_plan` System 1 on the \
         learned null plan; `expert` the scripted expert with privileged state.\n",
    );
    s
}

/// Writes `bytes` to `path` atomically (temporary file, then rename).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

pub fn run(args: &EvalArgs) -> Result<()> {
    if args.episodes == 0 {
        bail!("--episodes must be ≥ 1");
    }
    for (name, v) in [
        ("--planner-hz", args.planner_hz),
        ("--action-hz", args.action_hz),
        ("--action-dt-ms", args.action_dt_ms),
        ("--camera-hz", args.camera_hz),
        ("--state-hz", args.state_hz),
    ] {
        if !(v.is_finite() && v > 0.0) {
            bail!("{name} must be > 0, got {v}");
        }
    }
    let tasks: Vec<String> = if args.task.iter().any(|t| t == "all") {
        vec!["pick_place".into(), "stack".into(), "handover".into()]
    } else {
        args.task.clone()
    };
    let lc = LoopConfig {
        planner_hz: args.planner_hz,
        action_hz: args.action_hz,
        action_dt_s: args.action_dt_ms * 1e-3,
        control_hz: args.control_hz,
        camera_hz: args.camera_hz,
        state_hz: args.state_hz,
        rtc: !args.no_rtc,
        rtc_guidance: args.rtc_guidance,
        time_limit_s: args.time_limit,
    };
    ExecutorConfig {
        rate_hz: lc.control_hz,
        ..ExecutorConfig::default()
    }
    .validate("--control-hz")?;
    let results = evaluate(args, &tasks, &lc)?;
    let rep = report(args, &lc, results);
    let plots = match &args.json {
        Some(path) => crate::plots::write_plots(&rep, path, &templates(&rep))?,
        None => Vec::new(),
    };
    let md = markdown(&rep, &plots);
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(&rep)?;
        write_atomic(path, &json)?;
        write_atomic(&path.with_extension("md"), md.as_bytes())?;
        eprintln!(
            "wrote {} and {}",
            path.display(),
            path.with_extension("md").display()
        );
    }
    println!("{md}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_published_values() {
        // Reference values: Wilson score interval, z = 1.96 (Newcombe 1998, table I).
        let (lo, hi) = wilson95(81, 263);
        assert!(
            (lo - 0.2553).abs() < 5e-4 && (hi - 0.3662).abs() < 5e-4,
            "{lo} {hi}"
        );
        let (lo, hi) = wilson95(15, 148);
        assert!(
            (lo - 0.0624).abs() < 5e-4 && (hi - 0.1605).abs() < 5e-4,
            "{lo} {hi}"
        );
        let (lo, hi) = wilson95(0, 20);
        assert!(lo == 0.0 && (hi - 0.1611).abs() < 5e-4, "{lo} {hi}");
        let (lo, hi) = wilson95(29, 29);
        assert!((lo - 0.8830).abs() < 5e-4 && hi == 1.0, "{lo} {hi}");
        assert_eq!(wilson95(0, 0), (0.0, 1.0));
    }

    fn ep(success: bool, failure: Option<FailureCause>, named: Option<bool>) -> EpisodeResult {
        EpisodeResult {
            condition: Condition::Policy,
            task: "pick_place".into(),
            seed: 0,
            instruction: "put the red cube in the blue bowl".into(),
            template: if success { "a" } else { "b" }.into(),
            success,
            time_to_success_s: success.then_some(4.0),
            failure: failure.map(FailureCause::name),
            detail: None,
            first_lifted: None,
            picked_named: named,
            sim_time_s: 5.0,
            plans: 1,
            chunks: 1,
            rejected_chunks: 0,
            clamp_events: 0,
            boundary_jumps_rad: vec![0.1, 0.3],
            subgoal_error_m: Some(if success { [0.01, 0.03] } else { [0.05, 0.07] }),
            closest_approach_m: Some(if success { 0.01 } else { 0.2 }),
        }
    }

    #[test]
    fn summaries_count_successes_causes_and_named_picks() {
        let eps = [
            ep(true, None, Some(true)),
            ep(true, None, Some(true)),
            ep(false, Some(FailureCause::WrongObject), Some(false)),
            ep(false, Some(FailureCause::MissedGrasp), None),
        ];
        let refs: Vec<&EpisodeResult> = eps.iter().collect();
        let s = summarize(Condition::Policy, "pick_place", &refs);
        assert_eq!((s.episodes, s.successes), (4, 2));
        assert_eq!(s.success_rate, 0.5);
        assert_eq!((s.ci95_low, s.ci95_high), wilson95(2, 4));
        assert_eq!(s.attempts, 3);
        assert!((s.named_object_rate.unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(s.failures["wrong_object"], 1);
        assert_eq!(s.failures["missed_grasp"], 1);
        assert_eq!(s.failures["dropped"], 0);
        assert_eq!(s.mean_time_to_success_s, Some(4.0));
        assert!((s.boundary_jump_mean_rad.unwrap() - 0.2).abs() < 1e-12);
        assert_eq!(s.boundary_jump_p95_rad, Some(0.3));
        assert_eq!(s.templates["a"], (2, 2));
        assert_eq!(s.templates["b"], (2, 0));
        // Subgoal error: mean of (0.01, 0.03) twice and (0.05, 0.07) twice.
        let [o, d] = s.subgoal_error_m.unwrap();
        assert!(
            (o - 0.03).abs() < 1e-12 && (d - 0.05).abs() < 1e-12,
            "{o} {d}"
        );
        // Closest approach: median of 0.01, 0.01, 0.2, 0.2; of an odd count, the middle one.
        assert!((s.closest_approach_median_m.unwrap() - 0.105).abs() < 1e-12);
        let s3 = summarize(Condition::Policy, "pick_place", &refs[..3]);
        assert_eq!(s3.closest_approach_median_m, Some(0.01));
    }

    #[test]
    fn subgoal_error_is_the_distance_of_each_part() {
        let label = [0.4, 0.1, 0.8, 0.5, -0.2, 0.8];
        let pred = [0.43f32, 0.14, 0.8, 0.5, -0.2, 0.8];
        let [o, d] = subgoal_error(&pred, &label).unwrap();
        assert!((o - 0.05).abs() < 1e-6, "{o}");
        assert!(d < 1e-6, "{d}");
        assert_eq!(subgoal_error(&[], &label), None);
    }

    #[test]
    fn chunk_interpolation_is_linear_and_held_at_the_ends() {
        let a = [0.0f32, 10.0, 1.0, 20.0, 2.0, 30.0];
        let mut out = [0.0; 2];
        chunk_at(&a, 2, 100, 10, 115, &mut out);
        assert_eq!(out, [1.5, 25.0]);
        chunk_at(&a, 2, 100, 10, 50, &mut out);
        assert_eq!(out, [0.0, 10.0]);
        chunk_at(&a, 2, 100, 10, 1_000, &mut out);
        assert_eq!(out, [2.0, 30.0]);
    }
}
