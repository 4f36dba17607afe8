//! The project's humanoid: its URDF and embodiment load and validate, and arm IK (waist + one
//! arm, tool = grasp site) reaches random reachable poses.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::path::PathBuf;

use bicameral_robot::ik::SplitMix64;
use bicameral_robot::{Embodiment, IkConfig, IkSolver, Kinematics, RobotModel};
use nalgebra::Vector3;

fn robot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../robots/bc_humanoid")
}

fn load() -> (Embodiment, RobotModel) {
    let embodiment = Embodiment::load(&robot_dir().join("embodiment.toml")).unwrap();
    assert_eq!(
        embodiment.description_path().canonicalize().unwrap(),
        robot_dir().join("bc_humanoid.urdf").canonicalize().unwrap()
    );
    let model = embodiment.load_robot().unwrap();
    (embodiment, model)
}

#[test]
fn humanoid_loads_and_validates() {
    let (embodiment, model) = load();
    let kin = Kinematics::new(&model);
    let q0 = embodiment.default_q(&kin).unwrap();
    assert_eq!(
        embodiment.state_dim(),
        embodiment.state_dof_indices(&kin).unwrap().len()
    );
    assert_eq!(
        embodiment.action_dim(),
        embodiment.action_dof_indices(&kin).unwrap().len()
    );
    for camera in &embodiment.cameras {
        assert!(
            kin.link_id(&camera.link).is_some(),
            "camera link {}",
            camera.link
        );
    }
    for name in kin.dof_names() {
        assert!(
            embodiment.gains_for_joint(name).is_some(),
            "no gains for {name}"
        );
    }
    assert!(
        kin.fk(&q0)
            .iter()
            .all(|p| p.translation.vector.iter().all(|v| v.is_finite()))
    );
}

/// Pose IK for one arm: `count` targets from FK of random in-limit configurations of the
/// waist + arm DoFs (other DoFs at the default pose), each solved from the default pose.
fn arm_ik_success(side: &str, count: usize) -> f64 {
    let (embodiment, model) = load();
    let kin = Kinematics::new(&model);
    let q0 = embodiment.default_q(&kin).unwrap();
    let dofs: Vec<&str> = ["waist", &format!("{side}_arm")]
        .iter()
        .flat_map(|g| embodiment.group(g).unwrap())
        .map(String::as_str)
        .collect();
    let tip = format!("{side}_grasp_site");
    let solver = IkSolver::new(&kin, &tip, Vector3::zeros(), &dofs, IkConfig::default()).unwrap();
    let mut rng = SplitMix64(0xa11 + side.len() as u64);
    let (mut ok, mut iterations) = (0, 0);
    for _ in 0..count {
        let mut q_target = q0.clone();
        for &dof in solver.dofs() {
            let l = kin.dof_limits()[dof];
            q_target[dof] = l.lower + (l.upper - l.lower) * rng.next_f64();
        }
        let target = solver.tool_pose(&q_target);
        let result = solver.solve(&q0, &target);
        let reached = solver.tool_pose(&result.q);
        let pos_err = (reached.translation.vector - target.translation.vector).norm();
        let rot_err = reached.rotation.angle_to(&target.rotation);
        let within = pos_err <= 1e-3 && rot_err <= 1f64.to_radians();
        assert_eq!(within, result.converged);
        ok += usize::from(within);
        iterations += result.iterations;
    }
    let rate = ok as f64 / count as f64;
    eprintln!(
        "{side} arm IK: {ok}/{count} = {:.1} % within 1 mm / 1°, mean iterations {:.1}",
        rate * 100.0,
        iterations as f64 / count as f64
    );
    rate
}

#[test]
fn left_arm_ik_reaches_95_percent() {
    let rate = arm_ik_success("left", 250);
    assert!(rate >= 0.95, "left arm IK success {rate}");
}

#[test]
fn right_arm_ik_reaches_95_percent() {
    let rate = arm_ik_success("right", 250);
    assert!(rate >= 0.95, "right arm IK success {rate}");
}
