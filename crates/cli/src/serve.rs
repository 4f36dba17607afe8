//! The simulated robot over zenoh (`bicameral sim serve`, and the in-process robot of a
//! launch): a task episode's world stepped in real time, publishing joint states and camera
//! frames and applying the latest joint command as the PD targets.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bicameral_msgs::{CameraFrame, Header, ImageEncoding, Instruction, JointCommand, JointState};
use bicameral_runtime::clock::Clock;
use bicameral_sim::{CameraImage, DataRoot, EpisodeSetup, TaskEnv};
use bicameral_transport::{Node, Qos};
use bicameral_viz::{RecordingStream, SimLogger};
use serde::{Deserialize, Serialize};

/// The simulated robot's settings (`[sim]` in launch files, or `sim serve` flags).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimRobotConfig {
    /// Task (under `sim/tasks/`) whose episode sets the scene.
    pub task: String,
    /// Episode seed.
    #[serde(default)]
    pub seed: u64,
    /// Joint-state rate, Hz.
    #[serde(default = "default_state_hz")]
    pub state_hz: f64,
    /// Camera rate, Hz (each of `cameras`).
    #[serde(default = "default_camera_hz")]
    pub camera_hz: f64,
    /// Cameras to publish (embodiment camera names).
    #[serde(default = "default_cameras")]
    pub cameras: Vec<String>,
    /// Publish the episode's instruction at start, then the robot's current instruction (the
    /// latest one on the topic, e.g. an operator's) every second, so that nodes joining late
    /// (a restarted planner) get it.
    #[serde(default = "default_true")]
    pub publish_instruction: bool,
}

fn default_state_hz() -> f64 {
    100.0
}
fn default_camera_hz() -> f64 {
    10.0
}
fn default_cameras() -> Vec<String> {
    vec!["ego_view".into()]
}
fn default_true() -> bool {
    true
}

/// Counters of the simulated robot.
#[derive(Debug, Default)]
pub struct SimStats {
    /// Physics steps.
    pub steps: AtomicU64,
    /// Joint states published.
    pub states: AtomicU64,
    /// Camera frames published.
    pub frames: AtomicU64,
    /// Joint commands applied.
    pub commands: AtomicU64,
    /// Joint commands refused (wrong size, non-finite).
    pub bad_commands: AtomicU64,
    /// Whether the episode's success test passes (updated at each camera frame).
    pub success: AtomicBool,
    /// Simulated time (ms) at which the success test first passed; `u64::MAX` while it has not.
    pub first_success_ms: AtomicU64,
}

impl SimStats {
    fn new() -> Self {
        SimStats {
            first_success_ms: AtomicU64::new(u64::MAX),
            ..SimStats::default()
        }
    }

    /// Simulated time (s) at which the success test first passed.
    pub fn first_success_s(&self) -> Option<f64> {
        let ms = self.first_success_ms.load(Ordering::Relaxed);
        (ms != u64::MAX).then_some(ms as f64 * 1e-3)
    }
}

/// A running simulated robot.
pub struct SimRobot {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<()>>>,
    /// Counters.
    pub stats: Arc<SimStats>,
    /// The episode it runs.
    pub episode: EpisodeSetup,
}

impl SimRobot {
    /// Builds the task episode and starts stepping it in real time on its own thread. With
    /// `record` (a rerun stream and the clock's ns at time zero) the world (links, objects,
    /// joint signals, contacts) is logged at every camera frame, and the success test's result.
    pub fn start(
        node: Node,
        cfg: SimRobotConfig,
        clock: Arc<dyn Clock>,
        record: Option<(RecordingStream, u64)>,
    ) -> Result<Self> {
        let root = DataRoot::discover().context("finding robots/ and sim/")?;
        let env = TaskEnv::load(&root, &cfg.task).with_context(|| format!("task {}", cfg.task))?;
        let ep = env.sample(cfg.seed, false)?;
        let mut world = env.world(&ep)?;
        let mut cameras = env.cameras(&ep, &world)?;
        let cam_index: Vec<usize> = cfg
            .cameras
            .iter()
            .map(|c| {
                cameras
                    .index(c)
                    .with_context(|| format!("sim.cameras: the robot has no camera \"{c}\""))
            })
            .collect::<Result<_>>()?;
        let dofs = env.base.embodiment.action_dof_indices(&env.base.kin)?;
        let keys = node.keys().clone();
        let mut state_pub = node.publisher::<JointState>(keys.joint_state(), Qos::State)?;
        let mut cam_pubs = cfg
            .cameras
            .iter()
            .map(|c| node.publisher::<CameraFrame>(keys.camera(c), Qos::Bulk))
            .collect::<Result<Vec<_>, _>>()?;
        let mut instr_pub = node.publisher::<Instruction>(keys.instruction(), Qos::State)?;
        // The robot's current instruction (the episode's, or the latest an operator sent).
        let instr_sub = node.latest::<Instruction>(keys.instruction())?;
        let commands = node.latest::<JointCommand>(keys.joint_command())?;
        let token = node.declare_alive()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(SimStats::new());
        let (s, st) = (stop.clone(), stats.clone());
        let episode = ep.clone();
        let robot = node.robot().to_string();
        let thread = std::thread::Builder::new()
            .name("bicameral-sim".into())
            .spawn(move || -> Result<()> {
                let _token = token;
                let dt = world.dt();
                let steps_per_state = ((1.0 / cfg.state_hz) / dt).round().max(1.0) as u64;
                let steps_per_frame = ((1.0 / cfg.camera_hz) / dt).round().max(1.0) as u64;
                let mut targets = world.joint_targets().to_vec();
                let mut img = CameraImage::default();
                let logger = record.as_ref().map(|(rec, t0)| (SimLogger::new(rec), *t0));
                if let Some((lg, t0)) = &logger {
                    lg.set_time_secs(clock.now_ns().saturating_sub(*t0) as f64 * 1e-9);
                    lg.log_static_scene(&world)?;
                    lg.log_text(
                        "task/episode",
                        &format!("{} seed {}: {}", ep.task, ep.seed, ep.instruction),
                    )?;
                }
                let mut was_ok = false;
                let start = Instant::now();
                let mut step: u64 = 0;
                // Re-sent every second, so nodes that join late (a restarted planner) get it.
                let steps_per_instruction = (1.0 / dt).round().max(1.0) as u64;
                let mut instruction_due = 0u64;
                let mut current_instruction = ep.instruction.clone();
                while !s.load(Ordering::Relaxed) {
                    while let Some(m) = commands.try_recv() {
                        match m {
                            Ok(c)
                                if c.position.len() == dofs.len()
                                    && c.position.iter().all(|x| x.is_finite()) =>
                            {
                                for (&dof, &q) in dofs.iter().zip(&c.position) {
                                    targets[dof] = q;
                                }
                                world.set_joint_targets(&targets)?;
                                st.commands.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(_) | Err(_) => {
                                st.bad_commands.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    world.step()?;
                    step += 1;
                    st.steps.fetch_add(1, Ordering::Relaxed);
                    let now = clock.now_ns();
                    if step.is_multiple_of(steps_per_state) {
                        let q = world.joint_positions();
                        let v = world.joint_velocities();
                        let e = world.joint_efforts();
                        let pick = |x: &[f64]| dofs.iter().map(|&i| x[i]).collect::<Vec<_>>();
                        state_pub.put(&mut JointState {
                            header: Header::new::<JointState>(&robot, 0, now),
                            position: pick(&q),
                            velocity: pick(&v),
                            effort: pick(&e),
                        })?;
                        st.states.fetch_add(1, Ordering::Relaxed);
                    }
                    if step.is_multiple_of(steps_per_frame) {
                        while let Some(m) = instr_sub.try_recv() {
                            if let Ok(m) = m {
                                current_instruction = m.text;
                            }
                        }
                        if cfg.publish_instruction && step >= instruction_due {
                            instr_pub.put(&mut Instruction {
                                header: Header::new::<Instruction>(&robot, 0, now),
                                text: current_instruction.clone(),
                            })?;
                            instruction_due = step + steps_per_instruction;
                        }
                        for (p, &ci) in cam_pubs.iter_mut().zip(&cam_index) {
                            cameras.render_into(&world, ci, &mut img)?;
                            p.put(&mut CameraFrame {
                                header: Header::new::<CameraFrame>(&robot, 0, now),
                                camera: cameras.specs()[ci].name.clone(),
                                width: img.width,
                                height: img.height,
                                encoding: ImageEncoding::Rgb8,
                                data: img.rgb.clone(),
                            })?;
                            st.frames.fetch_add(1, Ordering::Relaxed);
                        }
                        let ok = env.spec.check_success(&ep, &world).is_ok();
                        st.success.store(ok, Ordering::Relaxed);
                        if ok {
                            let ms = (world.time() * 1e3).round() as u64;
                            let _ = st.first_success_ms.compare_exchange(
                                u64::MAX,
                                ms,
                                Ordering::Relaxed,
                                Ordering::Relaxed,
                            );
                        }
                        if let Some((lg, t0)) = &logger {
                            lg.set_time_secs(now.saturating_sub(*t0) as f64 * 1e-9);
                            lg.log_state(&world)?;
                            if ok != was_ok {
                                lg.log_text(
                                    "task/result",
                                    if ok {
                                        "success test passes"
                                    } else {
                                        "success test fails"
                                    },
                                )?;
                            }
                        }
                        was_ok = ok;
                    }
                    // Real time: sleep until this step's wall-clock deadline.
                    let due = start + Duration::from_secs_f64(step as f64 * dt);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
                Ok(())
            })
            .context("spawning the simulation thread")?;
        Ok(SimRobot {
            stop,
            thread: Some(thread),
            stats,
            episode,
        })
    }

    /// Stops the simulation; the error it ended with, if any.
    pub fn stop(mut self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow::anyhow!("the simulation thread panicked"))?,
            None => Ok(()),
        }
    }

    /// Whether the simulation thread is still running.
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for SimRobot {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Task whose episode sets the scene.
    #[arg(long, default_value = "pick_place")]
    task: String,
    /// Episode seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Robot id (key-expression prefix `bicameral/{robot}`).
    #[arg(long, default_value = "bc_humanoid")]
    robot: String,
    /// Connect to a launch listening on this endpoint (default: listen on tcp/127.0.0.1:7447).
    #[arg(long)]
    connect: Option<String>,
    /// Camera rate, Hz.
    #[arg(long, default_value_t = 10.0)]
    camera_hz: f64,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long)]
    seconds: Option<f64>,
}

pub fn run(args: &ServeArgs) -> Result<()> {
    let zenoh = match &args.connect {
        Some(ep) => bicameral_transport::ZenohConfig {
            connect: vec![ep.clone()],
            ..Default::default()
        },
        None => {
            bicameral_transport::ZenohConfig::loopback_listener(bicameral_transport::DEFAULT_PORT)
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    {
        let s = stop.clone();
        ctrlc::set_handler(move || s.store(true, Ordering::Relaxed))
            .context("installing the Ctrl-C handler")?;
    }
    let node = Node::open(&zenoh, &args.robot, "sim")?;
    let clock: Arc<dyn Clock> = Arc::new(bicameral_runtime::clock::WallClock::new());
    let cfg = SimRobotConfig {
        task: args.task.clone(),
        seed: args.seed,
        state_hz: default_state_hz(),
        camera_hz: args.camera_hz,
        cameras: default_cameras(),
        publish_instruction: true,
    };
    let sim = SimRobot::start(node.clone(), cfg, clock, None)?;
    tracing::info!(task = %args.task, instruction = %sim.episode.instruction, "serving the simulated robot");
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed)
        && args
            .seconds
            .is_none_or(|s| started.elapsed().as_secs_f64() < s)
        && sim.is_running()
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let steps = sim.stats.steps.load(Ordering::Relaxed);
    let success = sim.stats.success.load(Ordering::Relaxed);
    sim.stop()?;
    node.close()?;
    eprintln!(
        "served {:.1} s: {steps} physics steps, task success {success}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
