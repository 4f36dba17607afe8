//! The rerun bridge of a launch (`bicameral launch FILE --record out.rrd`, `bicameral demo`):
//! a zenoh node that subscribes to every topic of the robot and logs it to a rerun recording.
//!
//! Entities (3D in the world frame, z up, m; timeline `sim_time` = seconds since the bridge
//! started, from the messages' stamps):
//! - `cameras/<name>`: camera frames;
//! - `task/instruction`, `task/result`: text;
//! - `world/plan/subgoal/{object,destination}`: System 2's subgoal as 3D markers;
//! - `world/plan/chunk`: each predicted chunk as the grasp sites' 3D trajectories (forward
//!   kinematics of the chunk's joint targets; joints it does not command stay as measured);
//! - `world/executed`: the grasp sites' executed trajectory (FK of the joint states);
//! - `joints/{position,command}/<joint>`: joint plots;
//! - `safety/events` (text) and `safety/count/<kind>`;
//! - `nodes/<node>/rate_hz/<what>`, `nodes/<node>/latency_ms/<what>`: node rates.
//!
//! The robot's base is the world origin (as in the simulator's scenes).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use bicameral_msgs::{
    ActionChunk, CameraFrame, ImageEncoding, Instruction, JointCommand, JointState, NodeStatus,
    Plan, SafetyEvent,
};
use bicameral_robot::{Embodiment, Kinematics, RobotModel};
use bicameral_transport::Node;
use bicameral_viz::{RecordingStream, SimLogger};
use nalgebra::Isometry3;

/// Points kept in the executed trail per grasp site.
const TRAIL: usize = 600;

/// The robot's kinematics as the bridge needs them.
pub struct BridgeRobot {
    kin: Kinematics,
    /// DoF index of each state value.
    state_dofs: Vec<usize>,
    /// DoF index of each action value.
    action_dofs: Vec<usize>,
    /// Names of the action joints.
    action_names: Vec<String>,
    /// Names of the state joints.
    state_names: Vec<String>,
    /// Grasp-site link indices.
    sites: Vec<usize>,
}

impl BridgeRobot {
    /// From the robot model and its embodiment.
    pub fn new(model: &RobotModel, emb: &Embodiment) -> Result<Self> {
        let kin = Kinematics::new(model);
        let state_dofs = emb.state_dof_indices(&kin)?;
        let action_dofs = emb.action_dof_indices(&kin)?;
        let names = |d: &[usize]| d.iter().map(|&i| kin.dof_names()[i].clone()).collect();
        let sites = ["left_grasp_site", "right_grasp_site"]
            .iter()
            .filter_map(|n| model.links.iter().position(|l| l.name == *n))
            .collect();
        Ok(BridgeRobot {
            state_names: names(&state_dofs),
            action_names: names(&action_dofs),
            kin,
            state_dofs,
            action_dofs,
            sites,
        })
    }

    fn sites_at(&self, q: &[f64]) -> Vec<[f64; 3]> {
        let poses = self.kin.fk_with_base(&Isometry3::identity(), q);
        self.sites
            .iter()
            .map(|&s| {
                let t = poses[s].translation.vector;
                [t.x, t.y, t.z]
            })
            .collect()
    }
}

/// Counters of the bridge.
#[derive(Debug, Default)]
pub struct BridgeStats {
    /// Messages logged.
    pub logged: AtomicU64,
    /// Messages that did not decode.
    pub decode_errors: AtomicU64,
    /// Predicted chunks drawn.
    pub chunks: AtomicU64,
    /// Plans drawn.
    pub plans: AtomicU64,
    /// Camera frames logged.
    pub frames: AtomicU64,
}

/// A running bridge.
pub struct RerunBridge {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<()>>>,
    /// Counters.
    pub stats: Arc<BridgeStats>,
}

const COLOURS: [[u8; 3]; 2] = [[80, 160, 255], [255, 140, 60]];

impl RerunBridge {
    /// Subscribes `node` to every topic of its robot and logs to `rec` on its own thread;
    /// `t0_ns` (the launch clock's ns) is time zero of the `sim_time` timeline.
    pub fn start(node: Node, rec: RecordingStream, robot: BridgeRobot, t0_ns: u64) -> Result<Self> {
        let keys = node.keys().clone();
        // Bounded rings (about 8 s of the 500 Hz commands): a recorder that falls behind
        // drops its oldest messages instead of blocking zenoh's receive thread, which the
        // executor's e-stop and chunk callbacks share when recording in-process.
        const RING: usize = 4096;
        let states = node.buffered::<JointState>(keys.joint_state(), RING)?;
        let frames = node.buffered::<CameraFrame>(keys.cameras(), 64)?;
        let instructions = node.buffered::<Instruction>(keys.instruction(), RING)?;
        let plans = node.buffered::<Plan>(keys.plan(), RING)?;
        let chunks = node.buffered::<ActionChunk>(keys.action_chunk(), RING)?;
        let commands = node.buffered::<JointCommand>(keys.joint_command(), RING)?;
        let events = node.buffered::<SafetyEvent>(keys.safety_event(), RING)?;
        let status = node.buffered::<NodeStatus>(format!("{}/status/*", keys.prefix()), RING)?;
        let token = node.declare_alive()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(BridgeStats::default());
        let (s, st) = (stop.clone(), stats.clone());
        let thread = std::thread::Builder::new()
            .name("bicameral-rerun-bridge".into())
            .spawn(move || -> Result<()> {
                let _token = token;
                let _node = node;
                let log = SimLogger::new(&rec);
                let time = |stamp: u64| stamp.saturating_sub(t0_ns) as f64 * 1e-9;
                let mut q_full = vec![0.0; robot.kin.dof_count()];
                let mut trail: Vec<VecDeque<[f64; 3]>> = vec![VecDeque::new(); robot.sites.len()];
                let mut instruction = String::new();
                let bad = |st: &BridgeStats| {
                    st.decode_errors.fetch_add(1, Ordering::Relaxed);
                };
                while !s.load(Ordering::Relaxed) {
                    let mut idle = true;
                    while let Some(m) = states.try_recv() {
                        idle = false;
                        let Ok(m) = m else {
                            bad(&st);
                            continue;
                        };
                        if m.position.len() != robot.state_dofs.len() {
                            continue;
                        }
                        for (&i, &x) in robot.state_dofs.iter().zip(&m.position) {
                            q_full[i] = x;
                        }
                        log.set_time_secs(time(m.header.stamp_ns));
                        log.log_scalars("joints/position", &robot.state_names, &m.position)?;
                        for (t, p) in trail.iter_mut().zip(robot.sites_at(&q_full)) {
                            if t.len() == TRAIL {
                                t.pop_front();
                            }
                            t.push_back(p);
                        }
                        let paths: Vec<Vec<[f64; 3]>> =
                            trail.iter().map(|t| t.iter().copied().collect()).collect();
                        log.log_paths("world/executed", &paths, &COLOURS[..paths.len()])?;
                        st.logged.fetch_add(1, Ordering::Relaxed);
                    }
                    while let Some(m) = frames.try_recv() {
                        idle = false;
                        let Ok(m) = m else {
                            bad(&st);
                            continue;
                        };
                        if m.encoding == ImageEncoding::Rgb8 {
                            log.set_time_secs(time(m.header.stamp_ns));
                            log.log_rgb(
                                &format!("cameras/{}", m.camera),
                                m.width,
                                m.height,
                                &m.data,
                            )?;
                            st.frames.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    while let Some(m) = instructions.try_recv() {
                        idle = false;
                        match m {
                            Ok(m) => {
                                log.set_time_secs(time(m.header.stamp_ns));
                                log.log_text("task/instruction", &m.text)?;
                            }
                            Err(_) => bad(&st),
                        }
                    }
                    while let Some(m) = plans.try_recv() {
                        idle = false;
                        let Ok(m) = m else {
                            bad(&st);
                            continue;
                        };
                        log.set_time_secs(time(m.header.stamp_ns));
                        if m.instruction != instruction {
                            instruction = m.instruction.clone();
                            log.log_text("task/plan_instruction", &instruction)?;
                        }
                        log.log_subgoal(&m.subgoal)?;
                        st.plans.fetch_add(1, Ordering::Relaxed);
                    }
                    while let Some(m) = chunks.try_recv() {
                        idle = false;
                        let Ok(m) = m else {
                            bad(&st);
                            continue;
                        };
                        let Ok(a) = m.actions.to_f32() else { continue };
                        let d = robot.action_dofs.len();
                        if d == 0 || a.len() % d != 0 {
                            continue;
                        }
                        let mut q = q_full.clone();
                        let mut paths = vec![Vec::new(); robot.sites.len()];
                        for row in a.chunks(d) {
                            for (&i, &x) in robot.action_dofs.iter().zip(row) {
                                q[i] = f64::from(x);
                            }
                            for (path, p) in paths.iter_mut().zip(robot.sites_at(&q)) {
                                path.push(p);
                            }
                        }
                        log.set_time_secs(time(m.header.stamp_ns));
                        log.log_paths("world/plan/chunk", &paths, &COLOURS[..paths.len()])?;
                        st.chunks.fetch_add(1, Ordering::Relaxed);
                    }
                    while let Some(m) = commands.try_recv() {
                        idle = false;
                        let Ok(m) = m else {
                            bad(&st);
                            continue;
                        };
                        if m.position.len() == robot.action_names.len() {
                            log.set_time_secs(time(m.header.stamp_ns));
                            log.log_scalars("joints/command", &robot.action_names, &m.position)?;
                        }
                    }
                    while let Some(m) = events.try_recv() {
                        idle = false;
                        let Ok(m) = m else {
                            bad(&st);
                            continue;
                        };
                        log.set_time_secs(time(m.header.stamp_ns));
                        let joint = m
                            .joint
                            .and_then(|j| robot.action_names.get(j as usize))
                            .map_or(String::new(), |n| format!(" ({n})"));
                        log.log_text(
                            "safety/events",
                            &format!("{}{joint} #{} {}", m.event.name(), m.count, m.detail),
                        )?;
                        log.log_scalars(
                            "safety/count",
                            &[m.event.name().to_string()],
                            &[m.count as f64],
                        )?;
                    }
                    while let Some(m) = status.try_recv() {
                        idle = false;
                        let Ok(m) = m else {
                            bad(&st);
                            continue;
                        };
                        log.set_time_secs(time(m.header.stamp_ns));
                        let (names, values): (Vec<String>, Vec<f64>) =
                            m.rates_hz.iter().map(|(k, v)| (k.clone(), *v)).unzip();
                        log.log_scalars(&format!("nodes/{}/rate_hz", m.node), &names, &values)?;
                        let (names, values): (Vec<String>, Vec<f64>) =
                            m.latency_ms.iter().map(|(k, v)| (k.clone(), *v)).unzip();
                        log.log_scalars(&format!("nodes/{}/latency_ms", m.node), &names, &values)?;
                    }
                    if idle {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
                Ok(())
            })
            .context("spawning the rerun bridge thread")?;
        Ok(RerunBridge {
            stop,
            thread: Some(thread),
            stats,
        })
    }

    /// Stops the bridge; the error it ended with, if any.
    pub fn stop(mut self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow::anyhow!("the rerun bridge thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for RerunBridge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
