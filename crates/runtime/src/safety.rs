//! The safety filter every joint command passes through, and the limits it enforces.
//!
//! Per joint (embodiment action order): position limits (shrunk by a margin), velocity,
//! acceleration and per-tick step limits, and an effort limit for PD-driven joints
//! (`|kp·(q_cmd − q_measured)| ≤ effort_max`). Non-finite targets are never passed on: the
//! filter holds instead. Holding decelerates within the acceleration limit rather than
//! stopping dead (no velocity jump).

use serde::{Deserialize, Serialize};

use bicameral_robot::{Embodiment, Kinematics};

use crate::RuntimeError;

/// Safety settings not in the robot description (`[safety]` in launch/robot TOML).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafetyConfig {
    /// Margin inside the URDF position limits, rad (m); at most a tenth of a joint's range.
    /// Commands are clamped inside it; chunks are rejected only beyond the URDF limits.
    #[serde(default = "default_margin")]
    pub position_margin: f64,
    /// Fraction of the URDF velocity limit allowed (0, 1].
    #[serde(default = "default_velocity_scale")]
    pub velocity_scale: f64,
    /// Acceleration limit for every joint, rad/s² (m/s²).
    #[serde(default = "default_acceleration")]
    pub max_acceleration: f64,
    /// Largest change of the commanded position in one executor tick, rad (m).
    #[serde(default = "default_step")]
    pub max_step: f64,
    /// Fraction of the URDF effort limit the PD error may demand (0, 1]; needs measured
    /// positions and the embodiment's gains.
    #[serde(default = "default_effort_scale")]
    pub effort_scale: f64,
}

fn default_margin() -> f64 {
    0.01
}
fn default_velocity_scale() -> f64 {
    1.0
}
fn default_acceleration() -> f64 {
    20.0
}
fn default_step() -> f64 {
    0.05
}
fn default_effort_scale() -> f64 {
    1.0
}

impl Default for SafetyConfig {
    fn default() -> Self {
        SafetyConfig {
            position_margin: default_margin(),
            velocity_scale: default_velocity_scale(),
            max_acceleration: default_acceleration(),
            max_step: default_step(),
            effort_scale: default_effort_scale(),
        }
    }
}

impl SafetyConfig {
    /// Checks ranges; `source` names the file in errors.
    pub fn validate(&self, source: &str) -> Result<(), RuntimeError> {
        let bad = |field: &str, problem: &str| RuntimeError::Config {
            file: source.to_string(),
            field: format!("safety.{field}"),
            problem: problem.to_string(),
        };
        if !(self.position_margin.is_finite() && self.position_margin >= 0.0) {
            return Err(bad("position_margin", "must be finite and ≥ 0"));
        }
        if !(self.velocity_scale > 0.0 && self.velocity_scale <= 1.0) {
            return Err(bad("velocity_scale", "must be in (0, 1]"));
        }
        if !(self.max_acceleration.is_finite() && self.max_acceleration > 0.0) {
            return Err(bad("max_acceleration", "must be finite and > 0"));
        }
        if !(self.max_step.is_finite() && self.max_step > 0.0) {
            return Err(bad("max_step", "must be finite and > 0"));
        }
        if !(self.effort_scale > 0.0 && self.effort_scale <= 1.0) {
            return Err(bad("effort_scale", "must be in (0, 1]"));
        }
        Ok(())
    }
}

/// Limits of one joint.
#[derive(Debug, Clone, PartialEq)]
pub struct JointLimit {
    /// Joint name.
    pub name: String,
    /// Lowest allowed command, rad (m): the description's limit plus the margin (commands are
    /// clamped to it).
    pub lower: f64,
    /// Highest allowed command, rad (m).
    pub upper: f64,
    /// A chunk with an action below this (the description's hard limit), rad (m), is rejected
    /// whole; actions between it and `lower` are clamped.
    pub reject_lower: f64,
    /// A chunk with an action above this, rad (m), is rejected whole.
    pub reject_upper: f64,
    /// Speed limit, rad/s (m/s).
    pub max_velocity: f64,
    /// Acceleration limit, rad/s² (m/s²).
    pub max_acceleration: f64,
    /// Largest change per tick, rad (m).
    pub max_step: f64,
    /// Largest position error the PD loop may see, rad (m) (`effort_max / kp`; ∞ without gains).
    pub max_error: f64,
}

/// The limits of every commanded joint, in embodiment action order.
#[derive(Debug, Clone, PartialEq)]
pub struct SafetyLimits {
    /// Per joint.
    pub joints: Vec<JointLimit>,
}

impl SafetyLimits {
    /// Limits from the robot description (positions, velocity, effort), the embodiment (action
    /// order, PD gains) and the safety settings.
    pub fn from_robot(
        kin: &Kinematics,
        embodiment: &Embodiment,
        cfg: &SafetyConfig,
    ) -> Result<Self, RuntimeError> {
        cfg.validate(&embodiment.source.display().to_string())?;
        let dofs = embodiment.action_dof_indices(kin)?;
        let joints = dofs
            .iter()
            .map(|&dof| {
                let l = kin.dof_limits()[dof];
                let name = kin.dof_names()[dof].clone();
                // The margin takes at most a tenth of the range off each end (a 45 mm
                // finger keeps 36 mm of travel under a 10 mm margin).
                let margin = cfg.position_margin.min(0.1 * (l.upper - l.lower).max(0.0));
                let mut lower = l.lower + margin;
                let mut upper = l.upper - margin;
                if lower > upper {
                    let mid = 0.5 * (l.lower + l.upper);
                    (lower, upper) = (mid, mid);
                }
                let max_error = embodiment
                    .gains_for_joint(&name)
                    .filter(|g| g.kp > 0.0)
                    .map_or(f64::INFINITY, |g| l.effort * cfg.effort_scale / g.kp);
                JointLimit {
                    name,
                    lower,
                    upper,
                    reject_lower: l.lower,
                    reject_upper: l.upper,
                    max_velocity: l.velocity * cfg.velocity_scale,
                    max_acceleration: cfg.max_acceleration,
                    max_step: cfg.max_step,
                    max_error,
                }
            })
            .collect();
        Ok(SafetyLimits { joints })
    }

    /// `n` joints named `j0..` sharing one set of limits (tests, benchmarks, devices without a
    /// description); no effort bound.
    pub fn uniform(
        n: usize,
        (lower, upper): (f64, f64),
        max_velocity: f64,
        max_acceleration: f64,
        max_step: f64,
    ) -> Self {
        SafetyLimits {
            joints: (0..n)
                .map(|i| JointLimit {
                    name: format!("j{i}"),
                    lower,
                    upper,
                    reject_lower: lower,
                    reject_upper: upper,
                    max_velocity,
                    max_acceleration,
                    max_step,
                    max_error: f64::INFINITY,
                })
                .collect(),
        }
    }

    /// Number of joints.
    pub fn dim(&self) -> usize {
        self.joints.len()
    }

    /// Whether `q` lies inside the position limits (with `tol` slack).
    pub fn within_position_limits(&self, q: &[f64], tol: f64) -> bool {
        q.len() == self.joints.len()
            && q.iter()
                .zip(&self.joints)
                .all(|(&x, j)| x >= j.lower - tol && x <= j.upper + tol)
    }
}

/// What the filter did to one command.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilterReport {
    /// Some component was shaped by a velocity, acceleration, step or effort limit (a target
    /// merely inside the position margin is moved to the margin without counting).
    pub clamped: bool,
    /// The target had NaN/Inf or the wrong length and was replaced by a hold.
    pub rejected: bool,
}

/// The stateful filter: remembers the last command (position and velocity) to bound velocity,
/// acceleration and step. No allocation after construction.
#[derive(Debug, Clone)]
pub struct SafetyFilter {
    limits: SafetyLimits,
    position: Vec<f64>,
    velocity: Vec<f64>,
    initialized: bool,
}

impl SafetyFilter {
    /// A filter for `limits`; call [`Self::reset_to`] with the measured position before the first
    /// command.
    pub fn new(limits: SafetyLimits) -> Self {
        let n = limits.dim();
        SafetyFilter {
            limits,
            position: vec![0.0; n],
            velocity: vec![0.0; n],
            initialized: false,
        }
    }

    /// The limits.
    pub fn limits(&self) -> &SafetyLimits {
        &self.limits
    }

    /// Whether [`Self::reset_to`] has been called.
    pub fn is_initialized(&self) -> bool {
        self.initialized
    }

    /// Starts from measured position `q` at rest. Non-finite entries keep their previous value;
    /// positions are clamped into the limits.
    pub fn reset_to(&mut self, q: &[f64]) {
        for ((p, v), (x, j)) in self
            .position
            .iter_mut()
            .zip(self.velocity.iter_mut())
            .zip(q.iter().zip(&self.limits.joints))
        {
            if x.is_finite() {
                *p = x.clamp(j.lower, j.upper);
            }
            *v = 0.0;
        }
        self.initialized = true;
    }

    /// The last commanded position, rad (m).
    pub fn position(&self) -> &[f64] {
        &self.position
    }

    /// The last commanded velocity, rad/s (m/s).
    pub fn velocity(&self) -> &[f64] {
        &self.velocity
    }

    /// Filters `target` (positions for `dt` s from now; `target_velocity` its time derivative,
    /// or empty) into the next command, stored in the filter ([`Self::position`],
    /// [`Self::velocity`]). `measured` (may be empty) enables the effort limit. A target with
    /// NaN/Inf or the wrong length is rejected: the filter holds.
    ///
    /// A target that respects every limit passes through exactly. Otherwise the command moves
    /// toward it as fast as the limits allow and brakes in time (discrete-time braking
    /// distance), so it does not overshoot a target it had to chase by more than
    /// `max_acceleration·dt²/8`.
    pub fn step(
        &mut self,
        target: &[f64],
        target_velocity: &[f64],
        measured: &[f64],
        dt: f64,
    ) -> FilterReport {
        let n = self.limits.dim();
        if target.len() != n
            || target.iter().any(|x| !x.is_finite())
            || !(target_velocity.is_empty() || target_velocity.len() == n)
            || target_velocity.iter().any(|x| !x.is_finite())
        {
            self.hold(measured, dt);
            return FilterReport {
                clamped: false,
                rejected: true,
            };
        }
        let mut report = FilterReport::default();
        let use_measured = measured.len() == n;
        for (i, j) in self.limits.joints.iter().enumerate() {
            let (p0, v0) = (self.position[i], self.velocity[i]);
            let mut goal = target[i].clamp(j.lower, j.upper);
            if use_measured && measured[i].is_finite() && j.max_error.is_finite() {
                goal = goal.clamp(measured[i] - j.max_error, measured[i] + j.max_error);
            }
            let v_ref = if target_velocity.is_empty() || goal != target[i] {
                0.0
            } else {
                target_velocity[i]
            };
            // Error left after following the reference velocity for one tick; correct it no
            // faster than we could brake to a stop within it.
            let e = goal - (p0 + v_ref * dt);
            let adt = j.max_acceleration * dt;
            let brake = adt * ((0.25 + 2.0 * e.abs() / (adt * dt)).sqrt() - 0.5);
            let correction = e.signum() * (e.abs() / dt).min(brake);
            let desired_v = if (v_ref * dt + correction * dt - (goal - p0)).abs() < 1e-12 {
                (goal - p0) / dt
            } else {
                v_ref + correction
            };
            let vmax = j.max_velocity.min(j.max_step / dt);
            let v = desired_v.clamp(-vmax, vmax).clamp(v0 - adt, v0 + adt);
            let p = (p0 + v * dt).clamp(j.lower, j.upper);
            report.clamped |= (p - target[i].clamp(j.lower, j.upper)).abs() > 1e-9;
            self.velocity[i] = (p - p0) / dt;
            self.position[i] = p;
        }
        report
    }

    /// One tick of holding: every joint decelerates toward rest within its acceleration limit
    /// (and stays within position limits). `measured` enables the effort limit.
    pub fn hold(&mut self, measured: &[f64], dt: f64) {
        let use_measured = measured.len() == self.limits.dim();
        for (i, j) in self.limits.joints.iter().enumerate() {
            let v0 = self.velocity[i];
            let dv = j.max_acceleration * dt;
            let v = v0 - v0.clamp(-dv, dv);
            let mut p = (self.position[i] + v * dt).clamp(j.lower, j.upper);
            if use_measured && measured[i].is_finite() && j.max_error.is_finite() {
                p = p.clamp(measured[i] - j.max_error, measured[i] + j.max_error);
            }
            self.velocity[i] = (p - self.position[i]) / dt;
            self.position[i] = p;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(n: usize) -> SafetyLimits {
        SafetyLimits::uniform(n, (-1.0, 1.0), 2.0, 20.0, 0.05)
    }

    /// Limits from the bc_humanoid's description: the margin shrinks the commanded range (by
    /// at most a tenth of it), chunks are rejected only beyond the description's limits.
    #[test]
    fn robot_limits_clamp_inside_the_margin_and_reject_beyond_the_description() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let emb = Embodiment::load(&root.join("robots/bc_humanoid/embodiment.toml")).unwrap();
        let kin = Kinematics::new(&emb.load_robot().unwrap());
        let lim = SafetyLimits::from_robot(&kin, &emb, &SafetyConfig::default()).unwrap();
        assert_eq!(lim.dim(), emb.action_dim());
        let finger = lim
            .joints
            .iter()
            .find(|j| j.name == "left_gripper_finger")
            .unwrap();
        // 0..45 mm: a 4.5 mm margin (not 10 mm), rejection at the hard limits.
        assert!((finger.lower - 0.0045).abs() < 1e-12 && (finger.upper - 0.0405).abs() < 1e-12);
        assert_eq!((finger.reject_lower, finger.reject_upper), (0.0, 0.045));
        let elbow = lim
            .joints
            .iter()
            .find(|j| j.name == "left_elbow_pitch")
            .unwrap();
        assert!(
            (elbow.upper - (0.0872665 - 0.01)).abs() < 1e-9,
            "{}",
            elbow.upper
        );
        assert!((elbow.reject_upper - 0.0872665).abs() < 1e-9);
        // The filter clamps a target between the margin and the hard limit.
        let k = lim
            .joints
            .iter()
            .position(|j| j.name == "left_gripper_finger")
            .unwrap();
        let mut f = SafetyFilter::new(lim.clone());
        let mut q: Vec<f64> = lim
            .joints
            .iter()
            .map(|j| 0.5 * (j.lower + j.upper))
            .collect();
        q[k] = 0.04;
        f.reset_to(&q);
        let mut target = q.clone();
        target[k] = 0.044;
        let v = vec![0.0; q.len()];
        for _ in 0..100 {
            f.step(&target, &v, &q, 0.002);
        }
        assert!(
            (f.position()[k] - 0.0405).abs() < 1e-12,
            "{}",
            f.position()[k]
        );
    }

    #[test]
    fn every_limit_holds_whatever_the_target() {
        let dt = 0.002;
        let mut f = SafetyFilter::new(limits(3));
        f.reset_to(&[0.0, 0.5, -0.5]);
        let targets: [[f64; 3]; 6] = [
            [5.0, -5.0, 0.0],
            [f64::NAN, 0.0, 0.0],
            [-5.0, 5.0, f64::INFINITY],
            [0.3, 0.3, 0.3],
            [1e300, -1e300, 0.0],
            [-0.9, 0.9, 0.0],
        ];
        let mut prev_v = [0.0; 3];
        let mut prev_p = [0.0, 0.5, -0.5];
        for k in 0..2000 {
            let t = targets[(k / 50) % targets.len()];
            let r = f.step(&t, &[], &[], dt);
            assert_eq!(r.rejected, t.iter().any(|x| !x.is_finite()));
            for i in 0..3 {
                let (p, v) = (f.position()[i], f.velocity()[i]);
                assert!((-1.0..=1.0).contains(&p), "position {p}");
                assert!(v.abs() <= 2.0 + 1e-9, "velocity {v}");
                assert!((v - prev_v[i]).abs() <= 20.0 * dt + 1e-9, "acceleration");
                assert!((p - prev_p[i]).abs() <= 0.05 + 1e-12, "step");
                prev_v[i] = v;
                prev_p[i] = p;
            }
        }
    }

    #[test]
    fn feasible_targets_pass_exactly_and_chased_targets_are_not_overshot() {
        let dt = 0.002;
        let mut f = SafetyFilter::new(limits(1));
        f.reset_to(&[0.0]);
        // A 0.5 rad/s sine well inside the limits passes through unchanged (after the start).
        for k in 1..500 {
            let t = k as f64 * dt;
            let (x, v) = (0.2 * (2.5 * t).sin(), 0.5 * (2.5 * t).cos());
            let r = f.step(&[x], &[v], &[], dt);
            if k > 50 {
                assert!(!r.clamped && (f.position()[0] - x).abs() < 1e-9, "k={k}");
            }
        }
        // A 0.7 rad step is chased at the limits and approached without overshoot (up to the
        // discrete braking slack a·dt²/8 = 1e-5 rad).
        let start = f.position()[0];
        let goal = start + 0.7;
        for _ in 0..1000 {
            f.step(&[goal], &[], &[], dt);
            let over = f.position()[0] - goal;
            assert!(over <= 20.0 * dt * dt / 8.0 + 1e-12, "overshot by {over}");
        }
        assert!((f.position()[0] - goal).abs() < 1e-12);
    }

    #[test]
    fn hold_decelerates_without_a_velocity_jump() {
        let dt = 0.001;
        let mut f = SafetyFilter::new(limits(1));
        f.reset_to(&[-0.9]);
        for _ in 0..300 {
            f.step(&[0.9], &[], &[], dt);
        }
        let v_before = f.velocity()[0];
        assert!(v_before > 1.9, "should be at speed, got {v_before}");
        let mut ticks = 0;
        while f.velocity()[0].abs() > 0.0 {
            let v = f.velocity()[0];
            f.hold(&[], dt);
            assert!((f.velocity()[0] - v).abs() <= 20.0 * dt + 1e-9);
            ticks += 1;
            assert!(ticks < 1000);
        }
        // 2 rad/s at 20 rad/s² stops in ~0.1 s.
        assert!((95..=105).contains(&ticks), "{ticks}");
    }

    #[test]
    fn effort_limit_bounds_the_pd_error() {
        let mut l = limits(1);
        l.joints[0].max_error = 0.1;
        l.joints[0].max_step = 1.0;
        l.joints[0].max_velocity = 1e3;
        l.joints[0].max_acceleration = 1e6;
        let mut f = SafetyFilter::new(l);
        f.reset_to(&[0.0]);
        let r = f.step(&[0.8], &[], &[0.0], 0.01);
        assert!(r.clamped);
        assert!((f.position()[0] - 0.1).abs() < 1e-12, "{}", f.position()[0]);
    }
}
