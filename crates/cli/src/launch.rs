//! `bicameral launch FILE`: starts the nodes a launch file names (in this process, on one
//! shared zenoh session), supervises them (restart on failure, up to a limit), and stops them
//! cleanly on Ctrl-C / SIGTERM or after `--seconds`, printing the measured node rates.
//!
//! By default the launch's zenoh session is a peer listening on tcp/127.0.0.1:7447 with
//! multicast scouting off: an outside client that connects there sees every topic.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bicameral_msgs::{NodeStatus, SafetyEventKind};
use bicameral_robot::{Embodiment, Kinematics};
use bicameral_runtime::clock::{Clock, WallClock};
use bicameral_runtime::executor::{
    Executor, ExecutorConfig, ExecutorThread, SafetyCounters, spawn,
};
use bicameral_runtime::hal::{LoopbackEcho, RobotHal};
use bicameral_runtime::live::{NodeHandle, spawn_action, spawn_executor_bridge, spawn_planner};
use bicameral_runtime::nodes::{ActionCore, ActionNodeConfig, PlannerCore, PlannerNodeConfig};
use bicameral_runtime::safety::{SafetyConfig, SafetyLimits};
use bicameral_sim::DataRoot;
use bicameral_transport::{DEFAULT_PORT, Node, ZenohConfig};
use bicameral_viz::{Recording, Sink};
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::agents::{BurnActor, BurnPlanner, ComputePool, load};
use crate::bridge::{BridgeRobot, RerunBridge};
use crate::serve::{SimRobot, SimRobotConfig};

/// System 2 in a launch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannerLaunch {
    /// Checkpoint directory (trained with `train dual`).
    pub checkpoint: PathBuf,
    /// Runtime camera names for the planner's views, in order.
    #[serde(default = "default_cameras")]
    pub cameras: Vec<String>,
    /// Plans per second.
    #[serde(default = "default_planner_rate")]
    pub rate_hz: f64,
    /// Threads of the node's own compute pool (0: the process-wide pool, RAYON_NUM_THREADS or
    /// one per core). Default 1: the default model is faster per plan on one thread than on
    /// two, and a node on its own pool never waits behind the other node's work.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Run in the launch's process or as a separate `bicameral node planner` process.
    #[serde(default)]
    pub process: NodeProcess,
}

/// Where a node of a launch runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeProcess {
    /// A thread of the launch process, on its zenoh session.
    #[default]
    InProcess,
    /// A child process (`bicameral node ...`) with its own zenoh session connected to the
    /// launch's listen endpoint; it stops when the launch closes its stdin.
    Separate,
}

fn default_cameras() -> Vec<String> {
    vec!["ego_view".into()]
}
fn default_threads() -> usize {
    1
}
fn default_planner_rate() -> f64 {
    5.0
}

/// System 1 in a launch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionLaunch {
    /// Checkpoint directory.
    pub checkpoint: PathBuf,
    /// The checkpoint's embodiment name (its dataset's robot type).
    #[serde(default = "default_embodiment_name")]
    pub embodiment: String,
    /// Chunks per second.
    #[serde(default = "default_action_rate")]
    pub rate_hz: f64,
    /// Threads of the node's own compute pool (0: the process-wide pool); default 1, as for
    /// the planner.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Time between a chunk's actions, ms (the training data's control period).
    #[serde(default = "default_action_dt")]
    pub action_dt_ms: f64,
    /// Plans older than this are not used, ms.
    #[serde(default = "default_ttl")]
    pub plan_ttl_ms: f64,
    /// Real-time chunking.
    #[serde(default = "default_true")]
    pub rtc: bool,
    /// Guided RTC with this guidance clip β (Black et al. use 5; about 3× the inference cost);
    /// absent: inpainting only.
    #[serde(default)]
    pub rtc_guidance: Option<f32>,
    /// Sampling seed.
    #[serde(default)]
    pub seed: u64,
    /// Run in the launch's process or as a separate `bicameral node action` process.
    #[serde(default)]
    pub process: NodeProcess,
}

fn default_embodiment_name() -> String {
    "bc_humanoid".into()
}
fn default_action_rate() -> f64 {
    30.0
}
fn default_action_dt() -> f64 {
    50.0
}
fn default_ttl() -> f64 {
    1000.0
}
fn default_true() -> bool {
    true
}

/// What happens when a node's thread ends with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// Leave it stopped (the launch goes on; the executor holds if chunks stop).
    Never,
    /// Start it again, up to `max_restarts` times.
    #[default]
    OnFailure,
}

/// Supervision settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuperviseConfig {
    /// Restart policy.
    #[serde(default)]
    pub restart: Restart,
    /// Restarts allowed per node.
    #[serde(default = "default_max_restarts")]
    pub max_restarts: u32,
}

fn default_max_restarts() -> u32 {
    3
}

impl Default for SuperviseConfig {
    fn default() -> Self {
        SuperviseConfig {
            restart: Restart::OnFailure,
            max_restarts: default_max_restarts(),
        }
    }
}

/// Robot devices the executor can drive directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HalKind {
    /// A loopback echo device: its state is its last command (tests, dry runs).
    Loopback,
}

/// The robot device (`[hal]`). Without it the robot is reached over zenoh: its joint states
/// arrive on the joint-state topic and it follows the command topic (e.g. `sim serve`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HalConfig {
    /// Which device.
    pub kind: HalKind,
}

/// A launch file (`launch/*.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchFile {
    /// Robot id (the key-expression prefix `bicameral/{robot}`).
    pub robot: String,
    /// The embodiment file (joint order and limits), relative to the data root.
    #[serde(default = "default_embodiment")]
    pub embodiment: PathBuf,
    /// The launch's zenoh session (default: peer listening on tcp/127.0.0.1:7447).
    #[serde(default = "default_zenoh")]
    pub zenoh: ZenohConfig,
    /// A simulated robot in this process.
    #[serde(default)]
    pub sim: Option<SimRobotConfig>,
    /// The executor (runs when present).
    #[serde(default)]
    pub executor: Option<ExecutorConfig>,
    /// Safety limits beyond the robot description.
    #[serde(default)]
    pub safety: SafetyConfig,
    /// System 2.
    #[serde(default)]
    pub planner: Option<PlannerLaunch>,
    /// System 1.
    #[serde(default)]
    pub action: Option<ActionLaunch>,
    /// Supervision.
    #[serde(default)]
    pub supervise: SuperviseConfig,
    /// The robot device driven by the executor (default: the robot over zenoh).
    #[serde(default)]
    pub hal: Option<HalConfig>,
}

fn default_embodiment() -> PathBuf {
    PathBuf::from("robots/bc_humanoid/embodiment.toml")
}

fn default_zenoh() -> ZenohConfig {
    ZenohConfig::loopback_listener(DEFAULT_PORT)
}

impl LaunchFile {
    /// Reads and checks a launch file; relative paths resolve against the data root.
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut f: LaunchFile = toml::from_str(&text)
            .with_context(|| format!("{}: invalid launch file", path.display()))?;
        let src = path.display().to_string();
        // Relative paths in launch files are relative to the data root.
        if let Some(auth) = &mut f.zenoh.auth
            && let Some(d) = &auth.dictionary_file
            && d.is_relative()
        {
            let root = DataRoot::discover().context("finding the data root")?;
            auth.dictionary_file = Some(root.root.join(d));
        }
        f.zenoh.validate(&src)?;
        f.safety.validate(&src)?;
        if let Some(e) = &f.executor {
            e.validate(&src)?;
        }
        if let Some(p) = &f.planner
            && !(p.rate_hz >= 0.0 && p.rate_hz <= 100.0)
        {
            bail!(
                "{src}: `planner.rate_hz` = {} must be in 0..=100",
                p.rate_hz
            );
        }
        if let Some(a) = &f.action {
            if !(a.rate_hz == 0.0 || (1.0..=120.0).contains(&a.rate_hz)) {
                bail!(
                    "{src}: `action.rate_hz` = {} must be 0 or in 1..=120",
                    a.rate_hz
                );
            }
            if a.action_dt_ms.is_nan() || a.action_dt_ms <= 0.0 {
                bail!("{src}: `action.action_dt_ms` must be > 0");
            }
        }
        Ok(f)
    }
}

#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// Launch file.
    pub file: PathBuf,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_parser = seconds_arg)]
    pub seconds: Option<f64>,
    /// Override the zenoh listen endpoint's port (e.g. to run two launches on one host).
    #[arg(long)]
    pub port: Option<u16>,
    /// Print the final report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Record every topic (and the simulated world) to this rerun file through a bridge node.
    #[arg(long)]
    pub record: Option<PathBuf>,
}

enum Slot {
    Planner(PlannerLaunch),
    Action(ActionLaunch),
}

/// A node as it runs: a thread of this process or a child process.
enum Running {
    Thread(NodeHandle),
    Process(std::process::Child),
}

impl Running {
    fn is_running(&mut self) -> bool {
        match self {
            Running::Thread(h) => h.is_running(),
            Running::Process(c) => matches!(c.try_wait(), Ok(None)),
        }
    }

    /// Stops it: a thread is asked to stop and joined; a child gets its stdin closed (its
    /// signal to stop cleanly) and is killed if it has not exited after 5 s.
    fn stop(self) -> Result<()> {
        match self {
            Running::Thread(h) => Ok(h.stop()?),
            Running::Process(mut c) => {
                drop(c.stdin.take());
                let end = Instant::now() + Duration::from_secs(5);
                loop {
                    match c.try_wait()? {
                        Some(status) if status.success() => return Ok(()),
                        Some(status) => bail!("the node process exited with {status}"),
                        None if Instant::now() >= end => {
                            c.kill()?;
                            c.wait()?;
                            bail!("the node process did not stop within 5 s; killed");
                        }
                        None => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            }
        }
    }
}

struct Supervised {
    slot: Slot,
    handle: Option<Running>,
    restarts: u32,
    outputs_before: u64,
    first_start: Instant,
}

impl Slot {
    fn name(&self) -> &'static str {
        match self {
            Slot::Planner(_) => "planner",
            Slot::Action(_) => "action",
        }
    }

    fn process(&self) -> NodeProcess {
        match self {
            Slot::Planner(p) => p.process,
            Slot::Action(a) => a.process,
        }
    }
}

/// Starts `slot` as configured: a thread on `node`'s session, or a `bicameral node` child
/// process for the launch file `source` connecting to the launch's endpoint.
fn start_running(
    slot: &Slot,
    node: &Node,
    clock: &Arc<dyn Clock>,
    root: &DataRoot,
    source: &Path,
    file: &LaunchFile,
) -> Result<Running> {
    match slot.process() {
        NodeProcess::InProcess => Ok(Running::Thread(start_slot(slot, node, clock, root)?)),
        NodeProcess::Separate => {
            let endpoint = file.zenoh.listen.first().with_context(|| {
                format!(
                    "{}: a separate-process node needs the launch to listen (zenoh.listen)",
                    source.display()
                )
            })?;
            let exe = std::env::current_exe().context("finding the bicameral executable")?;
            let child = std::process::Command::new(exe)
                .args(["node", slot.name(), "--launch"])
                .arg(source)
                .args(["--connect", endpoint, "--stop-on-stdin-eof"])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .with_context(|| format!("starting the {} process", slot.name()))?;
            tracing::info!(node = slot.name(), pid = child.id(), "node process started");
            Ok(Running::Process(child))
        }
    }
}

/// The compute pool of a node: its own with `threads` workers, or the process-wide one for 0.
fn node_pool(name: &str, threads: usize) -> Result<ComputePool> {
    let pool = if threads == 0 {
        ComputePool::global()
    } else {
        ComputePool::new(name, threads)?
    };
    tracing::info!(node = name, threads = pool.threads(), "compute pool");
    Ok(pool)
}

fn start_slot(
    slot: &Slot,
    node: &Node,
    clock: &Arc<dyn Clock>,
    root: &DataRoot,
) -> Result<NodeHandle> {
    match slot {
        Slot::Planner(p) => {
            let (policy, _) = load(&root.root.join(&p.checkpoint))?;
            let planner = BurnPlanner::new(policy, p.cameras.clone())?
                .with_pool(node_pool("planner", p.threads)?);
            let core = PlannerCore::new(
                planner,
                PlannerNodeConfig {
                    rate_hz: p.rate_hz,
                    ..Default::default()
                },
                node.robot(),
            );
            Ok(spawn_planner(
                node.with_name("planner")?,
                core,
                clock.clone(),
            )?)
        }
        Slot::Action(a) => {
            let (policy, _) = load(&root.root.join(&a.checkpoint))?;
            let actor = BurnActor::new(policy, &a.embodiment, a.action_dt_ms * 1e-3)?
                .with_rtc_guidance(a.rtc_guidance)
                .with_pool(node_pool("action", a.threads)?);
            let core = ActionCore::new(
                actor,
                ActionNodeConfig {
                    rate_hz: a.rate_hz,
                    plan_ttl_ms: a.plan_ttl_ms,
                    rtc: a.rtc,
                    rtc_margin_steps: 1,
                    seed: a.seed,
                },
                node.robot(),
            );
            Ok(spawn_action(
                node.with_name("action")?,
                core,
                clock.clone(),
            )?)
        }
    }
}

/// Which node `bicameral node` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NodeKind {
    /// System 2 (the launch file's `[planner]`).
    Planner,
    /// System 1 (the launch file's `[action]`).
    Action,
}

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Which node.
    #[arg(value_enum)]
    pub kind: NodeKind,
    /// Launch file with the node's section, the robot id and the zenoh settings.
    #[arg(long)]
    pub launch: PathBuf,
    /// zenoh endpoint to connect to (default: the launch file's first listen endpoint).
    #[arg(long)]
    pub connect: Option<String>,
    /// Stop cleanly when stdin closes (how a launch stops its node processes).
    #[arg(long)]
    pub stop_on_stdin_eof: bool,
    /// Stop after this many seconds (default: until Ctrl-C / SIGTERM).
    #[arg(long, value_parser = seconds_arg)]
    pub seconds: Option<f64>,
}

/// `bicameral node planner|action --launch FILE`: one node of a launch in its own process,
/// with its own zenoh session (peer) connected to the launch.
pub fn run_node(args: &NodeArgs) -> Result<()> {
    let file = LaunchFile::load(&args.launch)?;
    let src = args.launch.display();
    let slot = match args.kind {
        NodeKind::Planner => Slot::Planner(
            file.planner
                .clone()
                .with_context(|| format!("{src}: no [planner] section"))?,
        ),
        NodeKind::Action => Slot::Action(
            file.action
                .clone()
                .with_context(|| format!("{src}: no [action] section"))?,
        ),
    };
    let endpoint = match &args.connect {
        Some(e) => e.clone(),
        None => file.zenoh.listen.first().cloned().with_context(|| {
            format!("{src}: no zenoh.listen endpoint to connect to; pass --connect")
        })?,
    };
    // A client of the launch's peer: the peer routes between its clients, so the node
    // processes see each other's topics without a mesh between them.
    let mut zenoh = file.zenoh.clone();
    zenoh.mode = bicameral_transport::SessionMode::Client;
    zenoh.listen = Vec::new();
    zenoh.connect = vec![endpoint.clone()];
    let root = DataRoot::discover().context("finding robots/ and sim/")?;
    let stop = stop_flag()?;
    if args.stop_on_stdin_eof {
        let s = stop.clone();
        std::thread::Builder::new()
            .name("stdin-eof".into())
            .spawn(move || {
                let mut sink = Vec::new();
                let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
                s.store(true, Ordering::Relaxed);
            })
            .context("spawning the stdin watcher")?;
    }
    let clock: Arc<dyn Clock> = Arc::new(WallClock::new());
    let session = Node::open(&zenoh, &file.robot, slot.name())
        .with_context(|| format!("{src}: connecting to {endpoint}"))?;
    let handle = start_slot(&slot, &session, &clock, &root)?;
    tracing::info!(node = slot.name(), %endpoint, "node running");
    let deadline = args
        .seconds
        .map(|s| Instant::now() + Duration::from_secs_f64(s));
    while !stop.load(Ordering::Relaxed)
        && handle.is_running()
        && deadline.is_none_or(|d| Instant::now() < d)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let result = handle.stop();
    session.close()?;
    Ok(result?)
}

pub fn run(args: &LaunchArgs) -> Result<()> {
    let file = LaunchFile::load(&args.file)?;
    run_file(file, args)
}

#[derive(Debug, Args)]
pub struct RobotArgs {
    /// Daemon configuration (a launch file with `[executor]`, usually `[hal]`, optionally
    /// `[action]`; no `[sim]`).
    #[arg(long)]
    pub config: PathBuf,
    /// Stop after this many seconds (default: run until Ctrl-C / SIGTERM).
    #[arg(long, value_parser = seconds_arg)]
    pub seconds: Option<f64>,
    /// Print the final report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `bicameral robot`: the onboard daemon: executor + safety + robot device (+ System 1).
pub fn run_robot(args: &RobotArgs) -> Result<()> {
    let file = LaunchFile::load(&args.config)?;
    let src = args.config.display();
    if file.executor.is_none() {
        bail!("{src}: the robot daemon needs an `[executor]` section");
    }
    if file.sim.is_some() {
        bail!(
            "{src}: `[sim]` belongs in a launch file; the daemon drives `[hal]` or a robot over zenoh"
        );
    }
    run_file(
        file,
        &LaunchArgs {
            file: args.config.clone(),
            seconds: args.seconds,
            port: None,
            json: args.json,
            record: None,
        },
    )
}

/// The process-wide stop flag, set by Ctrl-C / SIGTERM (the handler is installed once).
pub fn stop_flag() -> Result<Arc<AtomicBool>> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    if let Some(f) = FLAG.get() {
        return Ok(f.clone());
    }
    let flag = Arc::new(AtomicBool::new(false));
    let s = flag.clone();
    ctrlc::set_handler(move || s.store(true, Ordering::Relaxed))
        .context("installing the Ctrl-C handler")?;
    Ok(FLAG.get_or_init(|| flag).clone())
}

fn run_file(mut file: LaunchFile, args: &LaunchArgs) -> Result<()> {
    if let Some(port) = args.port {
        file.zenoh.listen = vec![format!("tcp/127.0.0.1:{port}")];
    }
    let t0 = WallClock::new().now_ns();
    let recording = match &args.record {
        Some(path) => Some(
            Recording::open("bicameral_launch", &Sink::Save(path.clone()))
                .with_context(|| format!("--record {}", path.display()))?,
        ),
        None => None,
    };
    let mut report = run_launch(
        &file,
        &args.file,
        &RunOptions {
            seconds: args.seconds,
            stop_after_success_s: None,
            recording: recording.as_ref().map(|r| (r, t0)),
        },
    )?;
    if let Some(r) = recording {
        r.finish()?;
        if let Some(rec) = report.get_mut("recording") {
            rec["file"] = json!(args.record.as_ref().map(|p| p.display().to_string()));
        }
    }
    let report = serde_json::Value::Object(report);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        eprintln!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

/// A duration (s) or rate (Hz) argument: finite, ≥ 0 and at most 10⁹ (a clear error, not a
/// panic when the run starts).
pub fn seconds_arg(text: &str) -> Result<f64, String> {
    let s: f64 = text
        .parse()
        .map_err(|_| format!("\"{text}\" is not a number"))?;
    if !(s.is_finite() && (0.0..=1e9).contains(&s)) {
        return Err(format!("{text}: must be finite, ≥ 0 and ≤ 1e9"));
    }
    Ok(s)
}

/// How to run a launch.
pub struct RunOptions<'a> {
    /// Stop after this many seconds (default: until Ctrl-C).
    pub seconds: Option<f64>,
    /// Stop once the simulated task's success test has passed this long (s).
    pub stop_after_success_s: Option<f64>,
    /// Record to this rerun recording; its `sim_time` zero is the given wall-clock ns.
    pub recording: Option<(&'a Recording, u64)>,
}

/// Starts everything `file` describes, supervises it until `opts` says stop (or Ctrl-C), stops
/// it cleanly and returns the report (rates, counters, the sim's outcome). `source` names the
/// file in errors.
pub fn run_launch(
    file: &LaunchFile,
    source: &Path,
    opts: &RunOptions<'_>,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let root = DataRoot::discover().context("finding robots/ and sim/")?;
    let stop = stop_flag()?;
    // One clock for every node of the launch (the executor schedules chunks stamped by S1).
    let wall = WallClock::new();
    let clock: Arc<dyn Clock> = Arc::new(wall);
    let session = Node::open(&file.zenoh, &file.robot, "launch")
        .with_context(|| format!("{}: opening the zenoh session", source.display()))?;
    tracing::info!(robot = %file.robot, listen = ?file.zenoh.listen, "launch session open");
    let recording = opts.recording.map(|(r, _)| r);
    let t0 = opts.recording.map_or(0, |(_, t)| t);

    let bridge = match &recording {
        Some(r) => {
            let emb = Embodiment::load(&root.root.join(&file.embodiment))?;
            let model = emb.load_robot()?;
            Some(RerunBridge::start(
                session.with_name("rerun")?,
                r.rec.clone(),
                BridgeRobot::new(&model, &emb)?,
                t0,
            )?)
        }
        None => None,
    };
    let mut sim = match &file.sim {
        Some(cfg) => Some(SimRobot::start(
            session.with_name("sim")?,
            cfg.clone(),
            clock.clone(),
            recording.as_ref().map(|r| (r.rec.clone(), t0)),
        )?),
        None => None,
    };

    let mut executor: Option<(ExecutorThread, NodeHandle, Arc<SafetyCounters>)> = None;
    if let Some(cfg) = &file.executor {
        let emb_path = root.root.join(&file.embodiment);
        let embodiment = Embodiment::load(&emb_path)?;
        let model = embodiment.load_robot()?;
        let kin = Kinematics::new(&model);
        let limits = SafetyLimits::from_robot(&kin, &embodiment, &file.safety)?;
        let hal: Option<Box<dyn RobotHal>> = match &file.hal {
            Some(HalConfig {
                kind: HalKind::Loopback,
            }) => {
                // Starts at the embodiment's default pose, inside the limits.
                let q = embodiment.default_q(&kin)?;
                let start = embodiment
                    .action_dof_indices(&kin)?
                    .iter()
                    .zip(&limits.joints)
                    .map(|(&d, l)| q[d].clamp(l.lower, l.upper))
                    .collect();
                Some(Box::new(LoopbackEcho::new(start)))
            }
            None => None,
        };
        let (exec, io) = Executor::new(cfg.clone(), limits)?;
        let counters = io.counters.clone();
        let bridge = spawn_executor_bridge(
            session.with_name("executor")?,
            io,
            clock.clone(),
            cfg.rate_hz,
            hal,
        )?;
        let thread = spawn(exec, wall)?;
        executor = Some((thread, bridge, counters));
    }

    let mut nodes: Vec<Supervised> = Vec::new();
    if let Some(p) = &file.planner {
        nodes.push(Supervised {
            slot: Slot::Planner(p.clone()),
            handle: None,
            restarts: 0,
            outputs_before: 0,
            first_start: Instant::now(),
        });
    }
    if let Some(a) = &file.action {
        nodes.push(Supervised {
            slot: Slot::Action(a.clone()),
            handle: None,
            restarts: 0,
            outputs_before: 0,
            first_start: Instant::now(),
        });
    }
    // Status of every node (separate processes report their rates only through it).
    let status: Vec<_> = nodes
        .iter()
        .map(|n| session.latest::<NodeStatus>(session.keys().status(n.slot.name())))
        .collect::<Result<_, _>>()?;
    let mut last_status: Vec<Option<NodeStatus>> = vec![None; nodes.len()];
    for n in &mut nodes {
        n.handle = Some(start_running(
            &n.slot, &session, &clock, &root, source, file,
        )?);
        n.first_start = Instant::now();
    }

    let started = Instant::now();
    let deadline = opts.seconds.map(|s| started + Duration::from_secs_f64(s));
    let mut ticks_at_start: Option<(Instant, u64)> = None;
    let mut success_since: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
        std::thread::sleep(Duration::from_millis(100));
        if let (Some(hold), Some(s)) = (opts.stop_after_success_s, &sim) {
            if s.stats.success.load(Ordering::Relaxed) {
                let since = *success_since.get_or_insert_with(Instant::now);
                if since.elapsed().as_secs_f64() >= hold {
                    break;
                }
            } else {
                success_since = None;
            }
        }
        if ticks_at_start.is_none()
            && let Some((t, _, _)) = &executor
        {
            ticks_at_start = Some((Instant::now(), t.stats.count()));
        }
        for (sub, last) in status.iter().zip(&mut last_status) {
            while let Some(m) = sub.try_recv() {
                if let Ok(m) = m {
                    *last = Some(m);
                }
            }
        }
        for n in &mut nodes {
            let dead = n.handle.as_mut().is_some_and(|h| !h.is_running());
            if !dead {
                continue;
            }
            let h = n.handle.take().context("node handle")?;
            let name = n.slot.name();
            if let Running::Thread(t) = &h {
                n.outputs_before += t.stats.outputs();
            }
            let err = h.stop().err();
            tracing::error!(node = %name, error = ?err, "node stopped");
            if file.supervise.restart == Restart::OnFailure
                && n.restarts < file.supervise.max_restarts
            {
                n.restarts += 1;
                tracing::warn!(node = %name, restart = n.restarts, "restarting");
                n.handle = Some(start_running(
                    &n.slot, &session, &clock, &root, source, file,
                )?);
            }
        }
        // Without its executor (or the bridge feeding it and the robot) nothing is safe to
        // continue: end the launch with the reason.
        if let Some((thread, bridge, _)) =
            executor.take_if(|(t, b, _)| !(t.is_running() && b.is_running()))
        {
            let why = match (bridge.stop(), thread.stop()) {
                (Err(e), _) => format!("the executor's bridge stopped: {e}"),
                (Ok(()), Err(e)) => format!("the executor stopped: {e}"),
                (Ok(()), Ok(_)) => "the executor stopped".to_string(),
            };
            bail!(why);
        }
        if let Some(s) = sim.take_if(|s| !s.is_running()) {
            return Err(match s.stop() {
                Err(e) => e.context("the simulated robot stopped"),
                Ok(()) => anyhow::anyhow!("the simulated robot stopped"),
            });
        }
    }
    let elapsed = started.elapsed().as_secs_f64();

    // Report, then stop everything.
    let mut report = serde_json::Map::new();
    report.insert("seconds".into(), json!(elapsed));
    for (n, last) in nodes.iter().zip(&last_status) {
        let (name, configured) = match &n.slot {
            Slot::Planner(p) => ("planner", p.rate_hz),
            Slot::Action(a) => ("action", a.rate_hz),
        };
        match &n.handle {
            Some(Running::Thread(h)) => {
                report.insert(
                    name.into(),
                    json!({
                        "configured_hz": configured,
                        "measured_hz": h.stats.rate_hz(),
                        "outputs": h.stats.outputs() + n.outputs_before,
                        "errors": h.stats.errors(),
                        "decode_errors": h.stats.decode_errors(),
                        "last_latency_ms": h.stats.last_latency_ns() as f64 * 1e-6,
                        "latency_p50_ms": h.stats.latency_quantile_ns(0.5).map(|n| n as f64 * 1e-6),
                        "latency_p99_ms": h.stats.latency_quantile_ns(0.99).map(|n| n as f64 * 1e-6),
                        "restarts": n.restarts,
                        "detail": h.stats.detail(),
                    }),
                );
            }
            Some(Running::Process(c)) => {
                // A separate process: what its last NodeStatus said.
                let rate = last
                    .as_ref()
                    .and_then(|m| m.rates_hz.values().next().copied());
                report.insert(
                    name.into(),
                    json!({
                        "configured_hz": configured,
                        "process": c.id(),
                        "measured_hz": rate,
                        "outputs": last.as_ref().and_then(|m| m.counters.get("outputs")),
                        "errors": last.as_ref().and_then(|m| m.counters.get("errors")),
                        "last_latency_ms": last.as_ref().and_then(|m| m.latency_ms.get("last")),
                        "restarts": n.restarts,
                    }),
                );
            }
            None => {}
        }
    }
    if let Some((thread, bridge, counters)) = &executor {
        let counters = safety_json(counters);
        let (t0, n0) = ticks_at_start.unwrap_or((started, 0));
        let measured = (thread.stats.count() - n0) as f64 / t0.elapsed().as_secs_f64();
        report.insert(
            "executor".into(),
            json!({
                "configured_hz": file.executor.as_ref().map(|e| e.rate_hz),
                "measured_hz": measured,
                "lateness_p99_us": thread.stats.quantile_ns(0.99) as f64 / 1000.0,
                // Observation (joint state stamp) → its chunk handed to the executor; the
                // first command from it follows within one control period.
                "obs_to_chunk_ms": {
                    "p50": bridge.stats.latency_quantile_ns(0.5).map(|n| n as f64 * 1e-6),
                    "p99": bridge.stats.latency_quantile_ns(0.99).map(|n| n as f64 * 1e-6),
                    "control_period_ms": file.executor.as_ref().map(|e| 1e3 / e.rate_hz),
                },
                "deadline_misses": thread.stats.misses(),
                "commands_published": bridge.stats.outputs(),
                "decode_errors": bridge.stats.decode_errors(),
                "safety": counters,
            }),
        );
    }
    if let Some(s) = &sim {
        let steps = s.stats.steps.load(Ordering::Relaxed);
        report.insert(
            "sim".into(),
            json!({
                "task": s.episode.task,
                "instruction": s.episode.instruction,
                "physics_steps": steps,
                "states": s.stats.states.load(Ordering::Relaxed),
                "frames": s.stats.frames.load(Ordering::Relaxed),
                "commands_applied": s.stats.commands.load(Ordering::Relaxed),
                "success": s.stats.success.load(Ordering::Relaxed),
                "seed": s.episode.seed,
                "first_success_s": s.stats.first_success_s(),
            }),
        );
    }
    for n in nodes {
        if let Some(h) = n.handle {
            h.stop()?;
        }
    }
    if let Some((thread, bridge, _)) = executor {
        bridge.stop()?;
        thread.stop()?;
    }
    if let Some(s) = sim {
        s.stop()?;
    }
    if let Some(b) = bridge {
        report.insert(
            "recording".into(),
            json!({
                "plans": b.stats.plans.load(Ordering::Relaxed),
                "chunks": b.stats.chunks.load(Ordering::Relaxed),
                "frames": b.stats.frames.load(Ordering::Relaxed),
                "decode_errors": b.stats.decode_errors.load(Ordering::Relaxed),
            }),
        );
        b.stop()?;
    }
    session.close()?;
    Ok(report)
}

fn safety_json(counters: &SafetyCounters) -> serde_json::Value {
    SafetyEventKind::ALL
        .iter()
        .map(|k| (k.name().to_string(), json!(counters.count(*k))))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_must_be_finite_and_non_negative() {
        assert_eq!(seconds_arg("2.5"), Ok(2.5));
        assert_eq!(seconds_arg("0"), Ok(0.0));
        for bad in ["-1", "NaN", "inf", "1e30", "soon"] {
            let err = seconds_arg(bad).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn shipped_launch_files_parse_and_bad_ones_are_named() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../launch");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                LaunchFile::load(&p).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
                n += 1;
            }
        }
        assert!(n > 0);
        let tmp =
            std::env::temp_dir().join(format!("bicameral-launch-{}.toml", std::process::id()));
        std::fs::write(&tmp, "robot = \"r\"\n[executor]\nrate_hz = 5000\n").unwrap();
        let err = format!("{:#}", LaunchFile::load(&tmp).unwrap_err());
        assert!(err.contains("executor.rate_hz"), "{err}");
        std::fs::write(&tmp, "robot = \"r\"\n[planer]\n").unwrap();
        let err = format!("{:#}", LaunchFile::load(&tmp).unwrap_err());
        assert!(
            err.contains("unknown field") && err.contains("planer"),
            "{err}"
        );
        let _ = std::fs::remove_file(&tmp);
    }
}
