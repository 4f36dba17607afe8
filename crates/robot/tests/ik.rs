//! Inverse kinematics on random reachable targets.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use bicameral_robot::ik::SplitMix64;
use bicameral_robot::{IkConfig, IkMode, IkSolver, Kinematics, Posture, RobotError};
use nalgebra::Vector3;

use common::{chain7, planar, random_q};

const CHAIN_DOFS: [&str; 7] = ["j1", "j2", "j3", "j4", "j5", "j6", "j7"];

/// Solves `count` targets from FK of random q, each from another random start; returns the
/// success rate and the mean iterations.
fn success_rate(solver: &IkSolver, kin: &Kinematics, count: usize, seed: u64) -> (f64, f64) {
    let mut rng = SplitMix64(seed);
    let mut ok = 0;
    let mut iterations = 0;
    for _ in 0..count {
        let target = solver.tool_pose(&random_q(kin, &mut rng));
        let start = random_q(kin, &mut rng);
        let result = solver.solve(&start, &target);
        iterations += result.iterations;
        // Verify independently of the solver's own bookkeeping.
        let reached = solver.tool_pose(&result.q);
        let pos_err = (reached.translation.vector - target.translation.vector).norm();
        let rot_err = reached.rotation.angle_to(&target.rotation);
        let within = pos_err <= 1e-3
            && (solver.config().mode == IkMode::Position || rot_err <= 1f64.to_radians());
        assert_eq!(
            within, result.converged,
            "converged flag disagrees: {result:?}"
        );
        for (dof, l) in kin.dof_limits().iter().enumerate() {
            assert!(
                result.q[dof] >= l.lower && result.q[dof] <= l.upper,
                "limit violated"
            );
        }
        ok += usize::from(within);
    }
    (ok as f64 / count as f64, iterations as f64 / count as f64)
}

#[test]
fn chain7_pose_ik_reaches_95_percent() {
    let kin = Kinematics::new(&chain7());
    let solver = IkSolver::new(
        &kin,
        "tool",
        Vector3::new(0.0, 0.0, 0.05),
        &CHAIN_DOFS,
        IkConfig::default(),
    )
    .unwrap();
    let (rate, iters) = success_rate(&solver, &kin, 300, 1);
    eprintln!(
        "chain7 pose IK: success {:.1} %, mean iterations {iters:.1}",
        rate * 100.0
    );
    assert!(rate >= 0.95, "success rate {rate}");
}

#[test]
fn chain7_position_ik_reaches_95_percent() {
    let kin = Kinematics::new(&chain7());
    let config = IkConfig {
        mode: IkMode::Position,
        ..IkConfig::default()
    };
    let solver = IkSolver::new(&kin, "tool", Vector3::zeros(), &CHAIN_DOFS, config).unwrap();
    let (rate, iters) = success_rate(&solver, &kin, 200, 2);
    eprintln!(
        "chain7 position IK: success {:.1} %, mean iterations {iters:.1}",
        rate * 100.0
    );
    assert!(rate >= 0.95, "success rate {rate}");
}

#[test]
fn margin_and_posture_are_respected() {
    let kin = Kinematics::new(&chain7());
    let q_rest = vec![0.0, 0.3, 0.1, -0.5, 0.0, 0.4, 0.0];
    let config = IkConfig {
        limit_margin: 0.05,
        posture: Some(Posture {
            q_rest: q_rest.clone(),
            gain: 0.2,
        }),
        ..IkConfig::default()
    };
    let solver = IkSolver::new(&kin, "tool", Vector3::zeros(), &CHAIN_DOFS, config).unwrap();
    let mut rng = SplitMix64(5);
    let mut converged = 0;
    for _ in 0..50 {
        let target = solver.tool_pose(&random_q(&kin, &mut rng));
        let result = solver.solve(&q_rest, &target);
        converged += usize::from(result.converged);
        for (dof, l) in kin.dof_limits().iter().enumerate() {
            if l.lower.is_finite() {
                let margin = 0.05f64.min(0.5 * (l.upper - l.lower));
                assert!(result.q[dof] >= l.lower + margin - 1e-12);
                assert!(result.q[dof] <= l.upper - margin + 1e-12);
            }
        }
    }
    assert!(converged >= 45, "converged {converged}/50");
}

#[test]
fn only_listed_dofs_move() {
    let kin = Kinematics::new(&chain7());
    let solver = IkSolver::new(
        &kin,
        "l5",
        Vector3::zeros(),
        &["j1", "j2", "j4"],
        IkConfig {
            mode: IkMode::Position,
            ..IkConfig::default()
        },
    )
    .unwrap();
    let start = vec![0.0, 0.1, 0.1, 0.2, 0.3, 0.4, 0.5];
    let mut goal = start.clone();
    goal[0] = 0.5;
    goal[1] = -0.4;
    goal[3] = 0.9;
    let result = solver.solve(&start, &solver.tool_pose(&goal));
    assert!(result.converged, "{result:?}");
    for dof in [2, 4, 5, 6] {
        assert_eq!(result.q[dof], start[dof]);
    }
}

#[test]
fn unreachable_target_reports_failure() {
    let kin = Kinematics::new(&planar());
    let solver = IkSolver::new(
        &kin,
        "tip",
        Vector3::zeros(),
        &["joint1", "joint2"],
        IkConfig {
            mode: IkMode::Position,
            restarts: 2,
            ..IkConfig::default()
        },
    )
    .unwrap();
    let target = nalgebra::Isometry3::translation(2.0, 0.0, 0.0);
    let result = solver.solve(&[0.1, 0.1], &target);
    assert!(!result.converged);
    assert!((result.pos_err_m - 1.1).abs() < 1e-3, "{result:?}");
    assert!(result.q.iter().all(|v| v.is_finite()));
}

#[test]
fn solver_is_deterministic() {
    let kin = Kinematics::new(&chain7());
    let solver = IkSolver::new(
        &kin,
        "tool",
        Vector3::zeros(),
        &CHAIN_DOFS,
        IkConfig::default(),
    )
    .unwrap();
    let mut rng = SplitMix64(9);
    let target = solver.tool_pose(&random_q(&kin, &mut rng));
    let start = random_q(&kin, &mut rng);
    assert_eq!(solver.solve(&start, &target), solver.solve(&start, &target));
}

#[test]
fn bad_solver_arguments_are_errors() {
    let kin = Kinematics::new(&chain7());
    let err =
        IkSolver::new(&kin, "nope", Vector3::zeros(), &["j1"], IkConfig::default()).unwrap_err();
    assert!(matches!(err, RobotError::NoSuchLink { .. }));
    assert!(err.to_string().contains("nope"));
    let err = IkSolver::new(
        &kin,
        "tool",
        Vector3::zeros(),
        &["j8_mimic"],
        IkConfig::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("j8_mimic"), "{err}");
    let err = IkSolver::new(
        &kin,
        "tool",
        Vector3::zeros(),
        &["j1", "j1"],
        IkConfig::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("twice"), "{err}");
}
