//! Watching an episode while something other than the scripted expert drives the robot (a
//! policy in closed loop): whether and when it succeeds, which object the robot lifted first,
//! and, when it fails, why.
//!
//! "Lifted" means raised more than [`LIFT_M`] above where it started while touching a robot
//! link, so objects knocked over or pushed aside do not count as picked. Success is the task's
//! success test plus the rule that no other loose object moved more than
//! [`MAX_DISTURBANCE_M`](crate::episode::MAX_DISTURBANCE_M).

use std::collections::BTreeSet;

use nalgebra::Vector3;

use crate::episode::MAX_DISTURBANCE_M;
use crate::task::{EpisodeSetup, TaskSpec};
use crate::world::SimWorld;

/// An object counts as lifted when it is this far (m) above its starting height and touched
/// by the robot.
pub const LIFT_M: f64 = 0.03;

/// Why a closed-loop episode failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureCause {
    /// The named object was never lifted (and nothing else was).
    MissedGrasp,
    /// The named object was lifted, then let go somewhere that does not pass the test.
    Dropped,
    /// The first object lifted was not the named one.
    WrongObject,
    /// The success test passes but another object was moved.
    Disturbed,
    /// Time ran out with the object still held.
    Timeout,
    /// The executor held the robot for safety (rejected chunks, e-stop, stale plan) and the
    /// episode was stopped.
    SafetyStop,
    /// The physics diverged.
    Diverged,
}

impl FailureCause {
    /// All causes, in report order.
    pub const ALL: [FailureCause; 7] = [
        FailureCause::MissedGrasp,
        FailureCause::Dropped,
        FailureCause::WrongObject,
        FailureCause::Disturbed,
        FailureCause::Timeout,
        FailureCause::SafetyStop,
        FailureCause::Diverged,
    ];

    /// Snake-case name (reports, JSON).
    pub fn name(self) -> &'static str {
        match self {
            FailureCause::MissedGrasp => "missed_grasp",
            FailureCause::Dropped => "dropped",
            FailureCause::WrongObject => "wrong_object",
            FailureCause::Disturbed => "disturbed",
            FailureCause::Timeout => "timeout",
            FailureCause::SafetyStop => "safety_stop",
            FailureCause::Diverged => "diverged",
        }
    }
}

/// How the driver of the episode stopped it (when it did not succeed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The time limit was reached.
    TimeLimit,
    /// A safety stop.
    SafetyStop,
    /// The physics diverged.
    Diverged,
}

/// Follows one episode: call [`EpisodeMonitor::observe`] at every control tick.
#[derive(Debug, Clone)]
pub struct EpisodeMonitor {
    object: String,
    target: String,
    /// Loose objects and where they started (world, m).
    start: Vec<(String, Vector3<f64>)>,
    robot_links: BTreeSet<String>,
    first_lift: Option<(String, f64)>,
    object_lifted: bool,
    object_held: bool,
    success_at: Option<f64>,
    last_check: Result<(), String>,
    /// The robot's grasp sites (links named `*_grasp_site`).
    sites: Vec<bicameral_robot::LinkId>,
    /// Closest distance so far from a grasp site to the named object's origin, m.
    closest: f64,
}

impl EpisodeMonitor {
    /// Starts watching `ep` in `world` (its initial state).
    pub fn new(ep: &EpisodeSetup, world: &SimWorld) -> Self {
        let start = ep
            .scene
            .objects
            .iter()
            .filter(|o| !o.fixed)
            .filter_map(|o| {
                Some((
                    o.name.clone(),
                    world.object_pose(&o.name)?.translation.vector,
                ))
            })
            .collect();
        EpisodeMonitor {
            object: ep.object.clone(),
            target: ep.target.clone(),
            start,
            robot_links: world.model().links.iter().map(|l| l.name.clone()).collect(),
            first_lift: None,
            object_lifted: false,
            object_held: false,
            success_at: None,
            last_check: Err("not observed yet".into()),
            sites: world
                .model()
                .links
                .iter()
                .enumerate()
                .filter(|(_, l)| l.name.ends_with("_grasp_site"))
                .map(|(i, _)| i)
                .collect(),
            closest: f64::INFINITY,
        }
    }

    /// The task's success test plus "nothing else disturbed"; `Err` says what failed.
    pub fn judge(
        &self,
        spec: &TaskSpec,
        ep: &EpisodeSetup,
        world: &SimWorld,
    ) -> Result<(), String> {
        spec.check_success(ep, world)?;
        self.undisturbed(world)
    }

    fn undisturbed(&self, world: &SimWorld) -> Result<(), String> {
        for (name, p0) in &self.start {
            if *name == self.object || *name == self.target {
                continue;
            }
            let p = world
                .object_pose(name)
                .map_or(p0.add_scalar(1.0), |p| p.translation.vector);
            let moved = (p - p0).norm();
            if moved > MAX_DISTURBANCE_M {
                return Err(format!("\"{name}\" was disturbed ({moved:.3} m)"));
            }
        }
        Ok(())
    }

    /// Updates lifts and holds from `world` at one control tick and judges success. Returns
    /// whether the episode has succeeded (it stays succeeded).
    pub fn observe(&mut self, spec: &TaskSpec, ep: &EpisodeSetup, world: &SimWorld) -> bool {
        let held: BTreeSet<String> = world
            .contacts()
            .into_iter()
            .filter(|c| c.impulse > 0.0)
            .filter_map(|c| {
                let (a, b) = (
                    self.robot_links.contains(&c.body1),
                    self.robot_links.contains(&c.body2),
                );
                match (a, b) {
                    (true, false) => Some(c.body2),
                    (false, true) => Some(c.body1),
                    _ => None,
                }
            })
            .collect();
        self.object_held = held.contains(&self.object);
        if let Some(p) = world.object_pose(&self.object) {
            for &site in &self.sites {
                let d = (world.link_pose(site).translation.vector - p.translation.vector).norm();
                self.closest = self.closest.min(d);
            }
        }
        for (name, p0) in &self.start {
            if !held.contains(name) {
                continue;
            }
            let Some(p) = world.object_pose(name) else {
                continue;
            };
            if p.translation.vector.z - p0.z > LIFT_M {
                if self.first_lift.is_none() {
                    self.first_lift = Some((name.clone(), world.time()));
                }
                if *name == self.object {
                    self.object_lifted = true;
                }
            }
        }
        if self.success_at.is_none() {
            self.last_check = self.judge(spec, ep, world);
            if self.last_check.is_ok() {
                self.success_at = Some(world.time());
            }
        }
        self.success_at.is_some()
    }

    /// Sim time (s) of the first successful check.
    pub fn success_time(&self) -> Option<f64> {
        self.success_at
    }

    /// The first object lifted and when (sim time, s).
    pub fn first_lift(&self) -> Option<(&str, f64)> {
        self.first_lift.as_ref().map(|(n, t)| (n.as_str(), *t))
    }

    /// Whether the first object lifted was the named one (`None`: nothing was lifted).
    pub fn picked_named(&self) -> Option<bool> {
        self.first_lift.as_ref().map(|(n, _)| *n == self.object)
    }

    /// Closest the robot's grasp sites (links named `*_grasp_site`) came to the named object's
    /// origin over the ticks observed, m (world frame); `None` before the first tick or for a
    /// robot without grasp sites. Tells a grasp closed in the wrong place (a few cm) from an arm
    /// that never reached the object (tens of cm).
    pub fn closest_approach(&self) -> Option<f64> {
        self.closest.is_finite().then_some(self.closest)
    }

    /// Whether the named object was ever lifted.
    pub fn object_lifted(&self) -> bool {
        self.object_lifted
    }

    /// What the last success check said.
    pub fn last_check(&self) -> &Result<(), String> {
        &self.last_check
    }

    /// Why the episode failed, given how it ended; `None` if it succeeded.
    pub fn cause(
        &self,
        spec: &TaskSpec,
        ep: &EpisodeSetup,
        world: &SimWorld,
        ending: Ending,
    ) -> Option<FailureCause> {
        if self.success_at.is_some() {
            return None;
        }
        Some(match ending {
            Ending::Diverged => FailureCause::Diverged,
            Ending::SafetyStop => FailureCause::SafetyStop,
            Ending::TimeLimit => {
                if spec.check_success(ep, world).is_ok() {
                    FailureCause::Disturbed
                } else if self.picked_named() == Some(false) {
                    FailureCause::WrongObject
                } else if !self.object_lifted {
                    FailureCause::MissedGrasp
                } else if self.object_held {
                    FailureCause::Timeout
                } else {
                    FailureCause::Dropped
                }
            }
        })
    }
}
