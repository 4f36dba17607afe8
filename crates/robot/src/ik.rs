//! Damped-least-squares (Levenberg–Marquardt) inverse kinematics for one tool point.
//!
//! The tool frame is the tip link frame translated by `offset` (m, tip frame). A target is the
//! desired tool frame in the world frame (root link at the identity). Each iteration solves
//! `Δq = Jᵀ(JJᵀ + λ²I)⁻¹e` over the allowed DoFs, adds an optional null-space pull toward a rest
//! posture, limits the step, clamps into the joint limits (optionally a margin inside), and
//! accepts the step only if the weighted error decreases — otherwise λ grows and the step is
//! retried. When an attempt fails, the solver restarts from random in-limit configurations drawn
//! from a seeded SplitMix64 generator, so results are deterministic.

use nalgebra::{DMatrix, DVector, Isometry3, Matrix6xX, Point3, Vector3};

use crate::error::RobotError;
use crate::kinematics::Kinematics;
use crate::model::LinkId;

/// What the target constrains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IkMode {
    /// Position and orientation of the tool frame.
    #[default]
    Pose,
    /// Position of the tool point only; the target's rotation is ignored.
    Position,
}

/// A rest posture the solver drifts toward in the task's null space.
#[derive(Debug, Clone, PartialEq)]
pub struct Posture {
    /// Full DoF vector (rad or m); only the solver's DoFs are used.
    pub q_rest: Vec<f64>,
    /// Fraction of the posture error corrected per iteration, in [0, 1].
    pub gain: f64,
}

/// Solver settings. [`Default`] gives 1 mm / 1° tolerances.
#[derive(Debug, Clone, PartialEq)]
pub struct IkConfig {
    /// Pose or position-only targets.
    pub mode: IkMode,
    /// Initial and minimum damping λ (m). Grows ×4 on every rejected step.
    pub damping: f64,
    /// Maximum iterations (accepted or rejected steps) per attempt.
    pub max_iterations: usize,
    /// Position tolerance (m).
    pub pos_tolerance_m: f64,
    /// Orientation tolerance (rad); ignored in [`IkMode::Position`].
    pub rot_tolerance_rad: f64,
    /// Length (m) that converts orientation error (rad) into the least-squares metric; roughly
    /// the arm's reach. Larger values favour orientation.
    pub orientation_weight_m: f64,
    /// Largest change of any DoF per iteration (rad or m).
    pub max_step: f64,
    /// Distance (rad or m) to stay inside finite joint limits; capped at half the range.
    pub limit_margin: f64,
    /// Optional null-space posture term.
    pub posture: Option<Posture>,
    /// Random restarts after the attempt from `q_init` fails.
    pub restarts: usize,
    /// Seed of the restart generator.
    pub seed: u64,
}

impl Default for IkConfig {
    fn default() -> Self {
        Self {
            mode: IkMode::Pose,
            damping: 1e-3,
            max_iterations: 100,
            pos_tolerance_m: 1e-3,
            rot_tolerance_rad: 1f64.to_radians(),
            orientation_weight_m: 0.3,
            max_step: 0.4,
            limit_margin: 0.0,
            posture: None,
            restarts: 10,
            seed: 0x5eed_1c0d_e000_0001,
        }
    }
}

/// Outcome of [`IkSolver::solve`]: the best configuration found, converged or not.
#[derive(Debug, Clone, PartialEq)]
pub struct IkResult {
    /// Full DoF vector; DoFs outside the solver's set keep their `q_init` values.
    pub q: Vec<f64>,
    /// Tool position error (m).
    pub pos_err_m: f64,
    /// Tool orientation error (rad); reported in position mode too.
    pub rot_err_rad: f64,
    /// Iterations used over all attempts.
    pub iterations: usize,
    /// Whether the tolerances were met.
    pub converged: bool,
}

/// Inverse-kinematics solver for one tool point over a subset of DoFs.
#[derive(Debug, Clone)]
pub struct IkSolver {
    kin: Kinematics,
    tip: LinkId,
    offset: Vector3<f64>,
    active: Vec<usize>,
    /// Per active DoF: (lower, upper) after applying the margin.
    bounds: Vec<(f64, f64)>,
    config: IkConfig,
}

/// Mutable per-solve buffers.
struct Workspace {
    poses: Vec<Isometry3<f64>>,
    jac: Matrix6xX<f64>,
}

/// One evaluated configuration.
struct Eval {
    /// Weighted error vector (3 or 6 rows).
    err: DVector<f64>,
    pos_err: f64,
    rot_err: f64,
}

impl Eval {
    fn cost(&self) -> f64 {
        self.err.norm_squared()
    }
}

impl IkSolver {
    /// Creates a solver moving `dofs` (names of independent DoFs, e.g. waist + one arm) to put
    /// the tool frame (`tip` link frame shifted by `offset`, m) on targets.
    pub fn new(
        kin: &Kinematics,
        tip: &str,
        offset: Vector3<f64>,
        dofs: &[&str],
        config: IkConfig,
    ) -> Result<Self, RobotError> {
        let tip = kin.require_link(tip)?;
        let active = dofs
            .iter()
            .map(|name| kin.require_dof(name))
            .collect::<Result<Vec<_>, _>>()?;
        if active.is_empty() {
            return Err(RobotError::InvalidArgument(
                "IK needs at least one DoF".to_owned(),
            ));
        }
        if let Some(dup) = active
            .iter()
            .enumerate()
            .find(|&(i, dof)| active[..i].contains(dof))
        {
            return Err(RobotError::InvalidArgument(format!(
                "IK DoF \"{}\" listed twice",
                kin.dof_names()[*dup.1]
            )));
        }
        if let Some(posture) = &config.posture
            && posture.q_rest.len() != kin.dof_count()
        {
            return Err(RobotError::InvalidArgument(format!(
                "IK posture has {} entries, robot \"{}\" has {} DoFs",
                posture.q_rest.len(),
                kin.robot_name(),
                kin.dof_count()
            )));
        }
        let bounds = active
            .iter()
            .map(|&dof| {
                let l = kin.dof_limits()[dof];
                let margin = config.limit_margin.clamp(0.0, 0.5 * (l.upper - l.lower));
                if l.lower.is_finite() && l.upper.is_finite() {
                    (l.lower + margin, l.upper - margin)
                } else {
                    (l.lower, l.upper)
                }
            })
            .collect();
        Ok(Self {
            kin: kin.clone(),
            tip,
            offset,
            active,
            bounds,
            config,
        })
    }

    /// The solver's DoF indices, in the order given to [`Self::new`].
    pub fn dofs(&self) -> &[usize] {
        &self.active
    }

    /// The configuration.
    pub fn config(&self) -> &IkConfig {
        &self.config
    }

    /// World pose of the tool frame at `q` (root at the identity).
    pub fn tool_pose(&self, q: &[f64]) -> Isometry3<f64> {
        self.kin.link_pose(q, self.tip) * nalgebra::Translation3::from(self.offset)
    }

    /// Solves for `target` (tool frame in the world frame) starting from `q_init` (full DoF
    /// vector). Returns the best result over the first attempt and the random restarts.
    ///
    /// # Panics
    /// If `q_init.len()` differs from the robot's DoF count.
    pub fn solve(&self, q_init: &[f64], target: &Isometry3<f64>) -> IkResult {
        assert_eq!(
            q_init.len(),
            self.kin.dof_count(),
            "q_init must have one entry per DoF"
        );
        let mut ws = Workspace {
            poses: Vec::with_capacity(self.kin.link_count()),
            jac: Matrix6xX::zeros(self.kin.dof_count()),
        };
        let mut q = q_init.to_vec();
        for (i, &dof) in self.active.iter().enumerate() {
            q[dof] = q[dof].clamp(self.bounds[i].0, self.bounds[i].1);
        }
        let (mut best, mut iterations) = self.attempt(&mut q, target, &mut ws);
        let mut best_q = q.clone();
        let mut rng = SplitMix64(self.config.seed);
        for _ in 0..self.config.restarts {
            if self.converged(&best) {
                break;
            }
            self.randomize(&mut q, q_init, &mut rng);
            let (eval, used) = self.attempt(&mut q, target, &mut ws);
            iterations += used;
            if self.converged(&eval) || eval.cost() < best.cost() {
                best = eval;
                best_q.copy_from_slice(&q);
            }
        }
        let converged = self.converged(&best);
        if !converged {
            tracing::debug!(
                pos_err_m = best.pos_err,
                rot_err_rad = best.rot_err,
                iterations,
                "IK did not converge"
            );
        }
        IkResult {
            q: best_q,
            pos_err_m: best.pos_err,
            rot_err_rad: best.rot_err,
            iterations,
            converged,
        }
    }

    /// One Levenberg–Marquardt run from `q` (updated in place). Returns the final evaluation
    /// and the iterations used.
    fn attempt(&self, q: &mut [f64], target: &Isometry3<f64>, ws: &mut Workspace) -> (Eval, usize) {
        const MAX_DAMPING: f64 = 1e3;
        let rows = match self.config.mode {
            IkMode::Pose => 6,
            IkMode::Position => 3,
        };
        let n = self.active.len();
        let mut lambda = self.config.damping;
        let mut eval = self.evaluate(q, target, ws);
        let mut candidate = q.to_vec();
        let mut jac = DMatrix::zeros(rows, n);
        let mut iterations = 0;
        while iterations < self.config.max_iterations && !self.converged(&eval) {
            // `ws.poses` holds the FK of `q`.
            self.kin
                .jacobian_into(&ws.poses, self.tip, &self.offset, &mut ws.jac);
            for (c, &dof) in self.active.iter().enumerate() {
                for r in 0..rows {
                    let w = if r < 3 {
                        1.0
                    } else {
                        self.config.orientation_weight_m
                    };
                    jac[(r, c)] = w * ws.jac[(r, dof)];
                }
            }
            let posture = self.posture_pull(q);
            let mut accepted = false;
            while !accepted && iterations < self.config.max_iterations && lambda <= MAX_DAMPING {
                iterations += 1;
                let Some((task, null)) =
                    self.bounded_step(q, &jac, &eval.err, posture.as_ref(), lambda)
                else {
                    lambda *= 4.0;
                    continue;
                };
                // Try with the posture term first, then the bare task step.
                let steps = null
                    .map(|null| &task + null)
                    .into_iter()
                    .chain([task.clone()]);
                for step in steps {
                    self.apply_step(q, &step, &mut candidate);
                    let next = self.evaluate(&candidate, target, ws);
                    if next.cost() < eval.cost() {
                        q.copy_from_slice(&candidate);
                        eval = next;
                        accepted = true;
                        break;
                    }
                }
                if accepted {
                    lambda = (lambda * 0.25).max(self.config.damping);
                } else {
                    lambda *= 4.0;
                }
            }
            if !accepted {
                // Stalled (damping exhausted) or out of iterations.
                break;
            }
            // The accepted candidate was evaluated last, so `ws.poses` is the FK of `q`.
        }
        (eval, iterations)
    }

    /// DLS step with a clamping loop: DoFs on a bound that the step would push further out are
    /// frozen (Jacobian column and posture entry removed) and the step is recomputed, so the
    /// remaining DoFs compensate instead of the clamp silently discarding part of the step.
    fn bounded_step(
        &self,
        q: &[f64],
        jac: &DMatrix<f64>,
        err: &DVector<f64>,
        posture: Option<&DVector<f64>>,
        lambda: f64,
    ) -> Option<(DVector<f64>, Option<DVector<f64>>)> {
        let mut jac = jac.clone();
        let mut posture = posture.cloned();
        let mut frozen = vec![false; self.active.len()];
        loop {
            let (task, null) = dls_step(&jac, err, posture.as_ref(), lambda)?;
            let mut newly_frozen = false;
            for (i, &dof) in self.active.iter().enumerate() {
                let (lo, hi) = self.bounds[i];
                let step = task[i] + null.as_ref().map_or(0.0, |n| n[i]);
                if !frozen[i] && ((q[dof] <= lo && step < 0.0) || (q[dof] >= hi && step > 0.0)) {
                    frozen[i] = true;
                    newly_frozen = true;
                    jac.column_mut(i).fill(0.0);
                    if let Some(p) = posture.as_mut() {
                        p[i] = 0.0;
                    }
                }
            }
            if !newly_frozen {
                return Some((task, null));
            }
        }
    }

    /// Null-space posture velocity for the active DoFs, if configured.
    fn posture_pull(&self, q: &[f64]) -> Option<DVector<f64>> {
        let posture = self.config.posture.as_ref()?;
        Some(DVector::from_iterator(
            self.active.len(),
            self.active
                .iter()
                .map(|&dof| posture.gain * (posture.q_rest[dof] - q[dof])),
        ))
    }

    /// `candidate = clamp(q + step)` with the step scaled to at most `max_step` per DoF.
    fn apply_step(&self, q: &[f64], step: &DVector<f64>, candidate: &mut [f64]) {
        let largest = step.amax();
        let scale = if largest > self.config.max_step {
            self.config.max_step / largest
        } else {
            1.0
        };
        candidate.copy_from_slice(q);
        for (i, &dof) in self.active.iter().enumerate() {
            let (lo, hi) = self.bounds[i];
            candidate[dof] = (q[dof] + scale * step[i]).clamp(lo, hi);
        }
    }

    /// Computes FK of `q` into `ws.poses` and the tool error against `target`.
    fn evaluate(&self, q: &[f64], target: &Isometry3<f64>, ws: &mut Workspace) -> Eval {
        self.kin.fk_into(&Isometry3::identity(), q, &mut ws.poses);
        let tip = &ws.poses[self.tip];
        let point = tip * Point3::from(self.offset);
        let dp = target.translation.vector - point.coords;
        let rot = target.rotation * tip.rotation.inverse();
        let dr = rot.scaled_axis();
        let err = match self.config.mode {
            IkMode::Pose => DVector::from_iterator(
                6,
                dp.iter()
                    .copied()
                    .chain(dr.iter().map(|v| v * self.config.orientation_weight_m)),
            ),
            IkMode::Position => DVector::from_column_slice(dp.as_slice()),
        };
        Eval {
            err,
            pos_err: dp.norm(),
            rot_err: rot.angle(),
        }
    }

    fn converged(&self, eval: &Eval) -> bool {
        eval.pos_err <= self.config.pos_tolerance_m
            && (self.config.mode == IkMode::Position
                || eval.rot_err <= self.config.rot_tolerance_rad)
    }

    /// Uniform random values for the active DoFs within their bounds (±π around `q_init` for
    /// unbounded joints); the other DoFs are reset to `q_init`.
    fn randomize(&self, q: &mut [f64], q_init: &[f64], rng: &mut SplitMix64) {
        q.copy_from_slice(q_init);
        for (i, &dof) in self.active.iter().enumerate() {
            let (lo, hi) = self.bounds[i];
            let (lo, hi) = if lo.is_finite() && hi.is_finite() {
                (lo, hi)
            } else {
                let centre = q_init[dof].clamp(lo, hi);
                (
                    (centre - std::f64::consts::PI).max(lo),
                    (centre + std::f64::consts::PI).min(hi),
                )
            };
            q[dof] = lo + (hi - lo) * rng.next_f64();
        }
    }
}

/// Damped least-squares step `Jᵀ(JJᵀ + λ²I)⁻¹e` and, if a posture velocity `v` is given, its
/// projection `(I − J⁺J)v` onto the (damped) null space. `None` if the system is singular.
fn dls_step(
    jac: &DMatrix<f64>,
    err: &DVector<f64>,
    posture: Option<&DVector<f64>>,
    lambda: f64,
) -> Option<(DVector<f64>, Option<DVector<f64>>)> {
    let rows = jac.nrows();
    let gram = jac * jac.transpose() + DMatrix::identity(rows, rows) * (lambda * lambda);
    let chol = gram.cholesky()?;
    let task = jac.transpose() * chol.solve(err);
    let null = posture.map(|v| v - jac.transpose() * chol.solve(&(jac * v)));
    Some((task, null))
}

/// SplitMix64 (Steele, Lea & Flood 2014): a tiny, well-mixed deterministic generator.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_reference_output() {
        // First output for seed 0 from the reference implementation.
        assert_eq!(SplitMix64(0).next_u64(), 0xe220_a839_7b1d_cdaf);
        let mut rng = SplitMix64(7);
        assert!(
            (0..1000)
                .map(|_| rng.next_f64())
                .all(|v| (0.0..1.0).contains(&v))
        );
    }

    #[test]
    fn dls_step_solves_well_posed_systems() {
        let jac = DMatrix::from_row_slice(2, 2, &[2.0, 0.0, 0.0, 4.0]);
        let err = DVector::from_column_slice(&[2.0, 4.0]);
        let (step, null) = dls_step(&jac, &err, None, 1e-9).unwrap_or_else(|| unreachable!());
        assert!((step - DVector::from_column_slice(&[1.0, 1.0])).amax() < 1e-9);
        assert!(null.is_none());
        // A full-rank task leaves no null space for the posture term.
        let v = DVector::from_column_slice(&[1.0, -1.0]);
        let (_, null) = dls_step(&jac, &err, Some(&v), 1e-9).unwrap_or_else(|| unreachable!());
        assert!(null.map_or(f64::INFINITY, |n| n.amax()) < 1e-9);
    }
}
