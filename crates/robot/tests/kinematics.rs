//! Forward kinematics and Jacobians against hand-computed values and finite differences.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use bicameral_robot::Kinematics;
use bicameral_robot::ik::SplitMix64;
use nalgebra::{Isometry3, Point3, Translation3, UnitQuaternion, Vector3};
use proptest::prelude::*;

use common::{chain7, planar, random_q};

fn assert_pose_eq(a: &Isometry3<f64>, b: &Isometry3<f64>, tol: f64) {
    let dp = (a.translation.vector - b.translation.vector).norm();
    let dr = a.rotation.angle_to(&b.rotation);
    assert!(
        dp <= tol && dr <= tol,
        "poses differ: {a} vs {b} (dp {dp}, dr {dr})"
    );
}

#[test]
fn planar_fk_matches_hand_computation() {
    let model = planar();
    let kin = Kinematics::new(&model);
    assert_eq!(kin.dof_names(), ["joint1", "joint2"]);
    let [link1, link2, tip] = ["link1", "link2", "tip"].map(|n| kin.link_id(n).unwrap());
    for &(q1, q2) in &[
        (0.0, 0.0),
        (0.3, -0.7),
        (1.2, 0.9),
        (-2.5, 2.9),
        (std::f64::consts::FRAC_PI_2, 0.0),
    ] {
        let poses = kin.fk(&[q1, q2]);
        let rot = |a: f64| UnitQuaternion::from_axis_angle(&Vector3::z_axis(), a);
        let expect_link1 = Isometry3::from_parts(Translation3::identity(), rot(q1));
        let elbow = Vector3::new(0.5 * q1.cos(), 0.5 * q1.sin(), 0.0);
        let expect_link2 = Isometry3::from_parts(elbow.into(), rot(q1 + q2));
        let hand = elbow + Vector3::new(0.4 * (q1 + q2).cos(), 0.4 * (q1 + q2).sin(), 0.0);
        let expect_tip = Isometry3::from_parts(hand.into(), rot(q1 + q2));
        assert_pose_eq(&poses[link1], &expect_link1, 1e-12);
        assert_pose_eq(&poses[link2], &expect_link2, 1e-12);
        assert_pose_eq(&poses[tip], &expect_tip, 1e-12);
        assert_pose_eq(&kin.link_pose(&[q1, q2], tip), &expect_tip, 1e-12);
        assert_pose_eq(&poses[model.root], &Isometry3::identity(), 0.0);
    }
}

#[test]
fn base_pose_moves_every_link() {
    let kin = Kinematics::new(&chain7());
    let base = Isometry3::from_parts(
        Translation3::new(1.0, -2.0, 0.5),
        UnitQuaternion::from_euler_angles(0.1, 0.2, 0.3),
    );
    let q = random_q(&kin, &mut SplitMix64(7));
    let local = kin.fk(&q);
    let world = kin.fk_with_base(&base, &q);
    for (l, w) in local.iter().zip(&world) {
        assert_pose_eq(&(base * l), w, 1e-12);
    }
}

#[test]
fn dofs_skip_fixed_and_mimic_joints() {
    let model = chain7();
    let kin = Kinematics::new(&model);
    assert_eq!(kin.dof_names(), ["j1", "j2", "j3", "j4", "j5", "j6", "j7"]);
    let q = [0.1, 0.2, 0.05, 0.4, 0.5, 0.6, 0.7];
    let positions = kin.joint_positions(&q);
    let mimic = model.joint_id("j8_mimic").unwrap();
    assert!((positions[mimic] - (0.5 * 0.4 + 0.1)).abs() < 1e-15);
    assert_eq!(positions[model.joint_id("tool_fixed").unwrap()], 0.0);
    let tool = kin.link_id("tool").unwrap();
    assert_eq!(kin.chain_dofs(tool), (0..7).collect::<Vec<_>>());
    assert_eq!(kin.chain_dofs(kin.link_id("l3").unwrap()), vec![0, 1, 2]);
}

/// Central finite differences of the point position and of the orientation.
fn numeric_jacobian(
    kin: &Kinematics,
    q: &[f64],
    link: usize,
    point: &Vector3<f64>,
) -> nalgebra::Matrix6xX<f64> {
    let h = 1e-6;
    let mut jac = nalgebra::Matrix6xX::zeros(q.len());
    for i in 0..q.len() {
        let (mut qp, mut qm) = (q.to_vec(), q.to_vec());
        qp[i] += h;
        qm[i] -= h;
        let (tp, tm) = (kin.link_pose(&qp, link), kin.link_pose(&qm, link));
        let v = ((tp * Point3::from(*point)) - (tm * Point3::from(*point))) / (2.0 * h);
        let w = (tp.rotation * tm.rotation.inverse()).scaled_axis() / (2.0 * h);
        jac.fixed_view_mut::<3, 1>(0, i).copy_from(&v);
        jac.fixed_view_mut::<3, 1>(3, i).copy_from(&w);
    }
    jac
}

#[test]
fn jacobian_matches_finite_differences() {
    let kin = Kinematics::new(&chain7());
    let mut rng = SplitMix64(42);
    for link_name in ["tool", "l8", "l5", "l3"] {
        let link = kin.link_id(link_name).unwrap();
        for _ in 0..50 {
            let q = random_q(&kin, &mut rng);
            let point = Vector3::new(
                rng.next_f64() - 0.5,
                rng.next_f64() - 0.5,
                rng.next_f64() - 0.5,
            ) * 0.2;
            let analytic = kin.jacobian(&q, link, &point);
            let numeric = numeric_jacobian(&kin, &q, link, &point);
            let diff = (&analytic - &numeric).amax();
            assert!(
                diff < 1e-6,
                "{link_name}: |J - J_fd| = {diff}\n{analytic}\n{numeric}"
            );
        }
    }
}

#[test]
fn jacobian_into_agrees_with_base_pose() {
    let kin = Kinematics::new(&chain7());
    let base = Isometry3::from_parts(
        Translation3::new(0.3, 0.1, -0.2),
        UnitQuaternion::from_euler_angles(-0.4, 0.1, 1.0),
    );
    let q = random_q(&kin, &mut SplitMix64(3));
    let tool = kin.link_id("tool").unwrap();
    let point = Vector3::new(0.01, 0.02, 0.03);
    let mut poses = Vec::new();
    kin.fk_into(&base, &q, &mut poses);
    let mut jac = nalgebra::Matrix6xX::zeros(kin.dof_count());
    kin.jacobian_into(&poses, tool, &point, &mut jac);
    let local = kin.jacobian(&q, tool, &point);
    let r = base.rotation.to_rotation_matrix();
    for c in 0..kin.dof_count() {
        let lin = r * local.fixed_view::<3, 1>(0, c).into_owned();
        let ang = r * local.fixed_view::<3, 1>(3, c).into_owned();
        assert!((jac.fixed_view::<3, 1>(0, c) - lin).amax() < 1e-12);
        assert!((jac.fixed_view::<3, 1>(3, c) - ang).amax() < 1e-12);
    }
}

proptest! {
    #[test]
    fn fk_and_jacobian_are_finite(q in proptest::collection::vec(-10.0f64..10.0, 7)) {
        let kin = Kinematics::new(&chain7());
        let poses = kin.fk(&q);
        for p in &poses {
            prop_assert!(p.translation.vector.iter().all(|v| v.is_finite()));
            prop_assert!(p.rotation.coords.iter().all(|v| v.is_finite()));
        }
        let jac = kin.jacobian(&q, kin.link_id("tool").unwrap(), &Vector3::new(0.1, 0.0, 0.0));
        prop_assert!(jac.iter().all(|v| v.is_finite()));
    }
}
