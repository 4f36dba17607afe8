//! Scripted arm motion for humanoids whose embodiment follows the bicameral naming
//! (`left_arm`/`right_arm`, `left_gripper`/`right_gripper`, `waist` groups and
//! `{left,right}_grasp_site` links): Cartesian minimum-jerk moves tracked by damped-least-squares
//! IK over waist + arm, gripper open/close, holds. Used by `bicameral sim view`, the grasp
//! tests, and (later) the scripted experts.

use bicameral_robot::{IkConfig, IkMode, IkSolver, ik::Posture};
use nalgebra::{Isometry3, UnitQuaternion, Vector3};

use crate::error::SimError;
use crate::motion::{interpolate_joints, interpolate_pose, min_jerk};
use crate::setup::SimSetup;
use crate::world::SimWorld;

/// Which arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arm {
    /// The robot's left arm (+y side).
    Left,
    /// The robot's right arm.
    Right,
}

impl Arm {
    /// `"left"` or `"right"`.
    pub fn side(self) -> &'static str {
        match self {
            Arm::Left => "left",
            Arm::Right => "right",
        }
    }

    fn index(self) -> usize {
        match self {
            Arm::Left => 0,
            Arm::Right => 1,
        }
    }
}

/// Orientation of the grasp frame for a top-down grasp: fingers pointing down (−z), the
/// fingers closing along the world direction at angle `yaw` (rad) from +y.
pub fn top_down(yaw: f64) -> UnitQuaternion<f64> {
    UnitQuaternion::from_axis_angle(&Vector3::z_axis(), yaw)
}

/// Something called after every control tick, e.g. to log or to check invariants.
pub type TickFn<'a> = dyn FnMut(&SimWorld) -> Result<(), SimError> + 'a;

/// Statistics of a Cartesian move.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MoveReport {
    /// Largest IK position error along the path (m).
    pub max_ik_pos_err: f64,
    /// Largest IK orientation error along the path (rad).
    pub max_ik_rot_err: f64,
    /// IK position error at the goal (m).
    pub final_pos_err: f64,
    /// IK orientation error at the goal (rad).
    pub final_rot_err: f64,
}

/// Drives a world through scripted moves at a fixed control rate.
pub struct ArmScript {
    solvers: [IkSolver; 2],
    /// The same tool points over the arm alone (waist held).
    arm_solvers: [IkSolver; 2],
    /// Solvers with random restarts (waist + arm, arm alone) for joint-space moves.
    global_solvers: [IkSolver; 2],
    global_arm_solvers: [IkSolver; 2],
    grippers: [usize; 2],
    steps_per_tick: usize,
    /// Commanded DoF vector (PD targets).
    pub targets: Vec<f64>,
    /// Hold the waist still: IK moves only the arm (for two-handed work, where moving the
    /// waist for one hand would drag the other).
    pub lock_waist: bool,
}

impl ArmScript {
    /// Prepares IK for both arms (each over the waist and that arm) at `control_hz`, starting
    /// from the setup's default pose.
    pub fn new(setup: &SimSetup, control_hz: f64) -> Result<Self, SimError> {
        let emb = &setup.embodiment;
        let kin = &setup.kin;
        let cfg_err = |message: String| SimError::Config {
            path: emb.source.clone(),
            message,
        };
        let group = |name: &str| -> Result<Vec<String>, SimError> {
            emb.group(name)
                .map(<[String]>::to_vec)
                .ok_or_else(|| cfg_err(format!("groups: scripted motion needs group \"{name}\"")))
        };
        let waist = group("waist")?;
        let make = |arm: Arm, with_waist: bool, global: bool| -> Result<IkSolver, SimError> {
            let mut dofs = if with_waist {
                waist.clone()
            } else {
                Vec::new()
            };
            dofs.extend(group(&format!("{}_arm", arm.side()))?);
            let names: Vec<&str> = dofs.iter().map(String::as_str).collect();
            let config = IkConfig {
                mode: IkMode::Pose,
                posture: Some(Posture {
                    q_rest: setup.drive.initial.clone(),
                    gain: 0.05,
                }),
                // Tracking warm-starts from the previous solution: restarts would jump. Global
                // solves (for joint-space moves) restart from random configurations.
                restarts: if global { 30 } else { 0 },
                max_iterations: if global { 150 } else { 60 },
                ..IkConfig::default()
            };
            Ok(IkSolver::new(
                kin,
                &format!("{}_grasp_site", arm.side()),
                Vector3::zeros(),
                &names,
                config,
            )?)
        };
        let gripper = |arm: Arm| -> Result<usize, SimError> {
            let g = group(&format!("{}_gripper", arm.side()))?;
            let first = g
                .first()
                .ok_or_else(|| cfg_err(format!("groups.{}_gripper is empty", arm.side())))?;
            Ok(setup.kin.require_dof(first)?)
        };
        let dt = setup.scene.physics.dt;
        Ok(Self {
            solvers: [
                make(Arm::Left, true, false)?,
                make(Arm::Right, true, false)?,
            ],
            arm_solvers: [
                make(Arm::Left, false, false)?,
                make(Arm::Right, false, false)?,
            ],
            global_solvers: [make(Arm::Left, true, true)?, make(Arm::Right, true, true)?],
            global_arm_solvers: [
                make(Arm::Left, false, true)?,
                make(Arm::Right, false, true)?,
            ],
            grippers: [gripper(Arm::Left)?, gripper(Arm::Right)?],
            steps_per_tick: ((1.0 / control_hz) / dt).round().max(1.0) as usize,
            targets: setup.drive.initial.clone(),
            lock_waist: false,
        })
    }

    /// Physics steps per control tick.
    pub fn steps_per_tick(&self) -> usize {
        self.steps_per_tick
    }

    fn solver(&self, arm: Arm, waist: bool) -> &IkSolver {
        if waist && !self.lock_waist {
            &self.solvers[arm.index()]
        } else {
            &self.arm_solvers[arm.index()]
        }
    }

    /// Control period (s) for a world with physics step `dt`.
    pub fn control_dt(&self, dt: f64) -> f64 {
        self.steps_per_tick as f64 * dt
    }

    /// Grasp-frame pose commanded for `arm` (FK of the targets).
    pub fn commanded_tool_pose(&self, arm: Arm) -> Isometry3<f64> {
        self.solvers[arm.index()].tool_pose(&self.targets)
    }

    /// Grasp-frame pose of `arm` measured in the world (FK of the measured joints).
    pub fn measured_tool_pose(&self, arm: Arm, world: &SimWorld) -> Isometry3<f64> {
        self.solvers[arm.index()].tool_pose(&world.joint_positions())
    }

    fn tick(&self, world: &mut SimWorld, on_tick: &mut TickFn<'_>) -> Result<(), SimError> {
        world.set_joint_targets(&self.targets)?;
        world.step_n(self.steps_per_tick)?;
        on_tick(world)
    }

    fn ticks(&self, world: &SimWorld, duration: f64) -> usize {
        (duration / self.control_dt(world.dt())).round().max(1.0) as usize
    }

    /// Moves `arm`'s grasp frame to `goal` along a straight line with minimum-jerk timing.
    pub fn move_to(
        &mut self,
        world: &mut SimWorld,
        arm: Arm,
        goal: &Isometry3<f64>,
        duration: f64,
        on_tick: &mut TickFn<'_>,
    ) -> Result<MoveReport, SimError> {
        let start = self.commanded_tool_pose(arm);
        let n = self.ticks(world, duration);
        let mut report = MoveReport::default();
        for k in 1..=n {
            let pose = interpolate_pose(&start, goal, k as f64 / n as f64);
            let r = self.solver(arm, true).solve(&self.targets, &pose);
            report.max_ik_pos_err = report.max_ik_pos_err.max(r.pos_err_m);
            report.max_ik_rot_err = report.max_ik_rot_err.max(r.rot_err_rad);
            self.targets = r.q;
            self.tick(world, on_tick)?;
        }
        Ok(report)
    }

    /// Moves several arms at once, each grasp frame along its own straight line with
    /// minimum-jerk timing. The first arm may use the waist (unless [`Self::lock_waist`]); the
    /// others move their arm only, tracking their goals in the world frame. One report per goal.
    pub fn move_arms(
        &mut self,
        world: &mut SimWorld,
        goals: &[(Arm, Isometry3<f64>)],
        duration: f64,
        on_tick: &mut TickFn<'_>,
    ) -> Result<Vec<MoveReport>, SimError> {
        let (plan, reports) = self.plan_arms(goals, self.ticks(world, duration));
        self.execute(world, &plan, on_tick)?;
        Ok(reports)
    }

    /// The targets, tick by tick, that [`Self::move_arms`] would command over `ticks` control
    /// ticks (IK only, the world is not touched), with one report per goal.
    pub fn plan_arms(
        &self,
        goals: &[(Arm, Isometry3<f64>)],
        ticks: usize,
    ) -> (Vec<Vec<f64>>, Vec<MoveReport>) {
        let starts: Vec<Isometry3<f64>> = goals
            .iter()
            .map(|(arm, _)| self.commanded_tool_pose(*arm))
            .collect();
        let n = ticks.max(1);
        let mut reports = vec![MoveReport::default(); goals.len()];
        let mut q = self.targets.clone();
        let mut plan = Vec::with_capacity(n);
        for k in 1..=n {
            for (i, ((arm, goal), start)) in goals.iter().zip(&starts).enumerate() {
                let pose = interpolate_pose(start, goal, k as f64 / n as f64);
                let r = self.solver(*arm, i == 0).solve(&q, &pose);
                let report = &mut reports[i];
                report.max_ik_pos_err = report.max_ik_pos_err.max(r.pos_err_m);
                report.max_ik_rot_err = report.max_ik_rot_err.max(r.rot_err_rad);
                if k == n {
                    report.final_pos_err = r.pos_err_m;
                    report.final_rot_err = r.rot_err_rad;
                }
                q = r.q;
            }
            plan.push(q.clone());
        }
        (plan, reports)
    }

    /// Commands `plan` (one DoF target vector per control tick).
    pub fn execute(
        &mut self,
        world: &mut SimWorld,
        plan: &[Vec<f64>],
        on_tick: &mut TickFn<'_>,
    ) -> Result<(), SimError> {
        for q in plan {
            self.targets.clone_from(q);
            self.tick(world, on_tick)?;
        }
        Ok(())
    }

    /// Number of control ticks of a segment lasting `duration` seconds.
    pub fn ticks_for(&self, world: &SimWorld, duration: f64) -> usize {
        self.ticks(world, duration)
    }

    /// Solves IK for `arm`'s grasp frame at `goal` from the current targets, with random
    /// restarts (for joint-space moves to poses the Cartesian tracking cannot reach).
    pub fn solve_global(&self, arm: Arm, goal: &Isometry3<f64>) -> bicameral_robot::IkResult {
        let solver = if self.lock_waist {
            &self.global_arm_solvers[arm.index()]
        } else {
            &self.global_solvers[arm.index()]
        };
        solver.solve(&self.targets, goal)
    }

    /// Moves every DoF to `goal` (joint space, minimum-jerk).
    pub fn move_joints(
        &mut self,
        world: &mut SimWorld,
        goal: &[f64],
        duration: f64,
        on_tick: &mut TickFn<'_>,
    ) -> Result<(), SimError> {
        let start = self.targets.clone();
        let n = self.ticks(world, duration);
        for k in 1..=n {
            self.targets = interpolate_joints(&start, goal, k as f64 / n as f64);
            self.tick(world, on_tick)?;
        }
        Ok(())
    }

    /// Drives `arm`'s finger target to `q` (m from the midline per finger; past the object's
    /// surface to squeeze through the finger spring).
    pub fn gripper(
        &mut self,
        world: &mut SimWorld,
        arm: Arm,
        q: f64,
        duration: f64,
        on_tick: &mut TickFn<'_>,
    ) -> Result<(), SimError> {
        let dof = self.grippers[arm.index()];
        let start = self.targets[dof];
        let n = self.ticks(world, duration);
        for k in 1..=n {
            self.targets[dof] = start + (q - start) * min_jerk(k as f64 / n as f64);
            self.tick(world, on_tick)?;
        }
        Ok(())
    }

    /// Keeps the current targets for `duration` seconds.
    pub fn hold(
        &mut self,
        world: &mut SimWorld,
        duration: f64,
        on_tick: &mut TickFn<'_>,
    ) -> Result<(), SimError> {
        for _ in 0..self.ticks(world, duration) {
            self.tick(world, on_tick)?;
        }
        Ok(())
    }
}
