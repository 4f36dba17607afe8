//! MJCF loading: the 2-link arm must match its URDF twin; MJCF specifics and broken files.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use bicameral_robot::{JointKind, Kinematics, RobotError, Shape, parse_mjcf};
use nalgebra::Vector3;

use common::planar;

/// The planar arm of `common::PLANAR_2LINK`, in MJCF. The second joint's anchor is offset
/// inside its body (body at x = 0.3, joint at x = +0.2) to exercise anchor handling.
const ARM_MJCF: &str = r#"
<mujoco model="planar">
  <compiler angle="radian"/>
  <worldbody>
    <geom name="floor" type="plane" size="5 5 0.1"/>
    <body name="base">
      <geom type="box" size="0.05 0.05 0.05" rgba="0.2 0.2 0.2 1"/>
      <body name="link1">
        <joint name="joint1" type="hinge" axis="0 0 1" range="-3 3" damping="0.5"/>
        <inertial pos="0.25 0 0" mass="1" diaginertia="0.01 0.02 0.02"/>
        <geom type="capsule" fromto="0 0 0 0.5 0 0" size="0.02"/>
        <body name="link2" pos="0.3 0 0">
          <joint name="joint2" axis="0 0 1" pos="0.2 0 0" range="-3 3"/>
          <geom type="cylinder" fromto="0.2 0 0 0.6 0 0" size="0.02" contype="0" conaffinity="0"/>
          <site name="tip" pos="0.6 0 0"/>
        </body>
      </body>
    </body>
  </worldbody>
  <actuator>
    <motor joint="joint1" ctrlrange="-1 1" gear="50"/>
    <position joint="joint2" forcerange="-20 20" kp="100"/>
  </actuator>
</mujoco>
"#;

#[test]
fn mjcf_arm_matches_urdf_arm() {
    let urdf = planar();
    let mjcf = parse_mjcf(ARM_MJCF, "arm.xml", None).unwrap();
    assert_eq!(mjcf.links[mjcf.root].name, "base");
    let (ku, km) = (Kinematics::new(&urdf), Kinematics::new(&mjcf));
    assert_eq!(ku.dof_names(), km.dof_names());
    for q in [[0.0, 0.0], [0.4, -1.1], [2.0, 2.5], [-1.3, 0.7]] {
        let (pu, pm) = (ku.fk(&q), km.fk(&q));
        for name in ["base", "link1", "link2", "tip"] {
            let (a, b) = (pu[ku.link_id(name).unwrap()], pm[km.link_id(name).unwrap()]);
            assert!(
                (a.translation.vector - b.translation.vector).norm() < 1e-12
                    && a.rotation.angle_to(&b.rotation) < 1e-12,
                "{name} at {q:?}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn mjcf_details() {
    let model = parse_mjcf(ARM_MJCF, "arm.xml", None).unwrap();
    let joint = |n: &str| &model.joints[model.joint_id(n).unwrap()];
    assert_eq!(joint("joint1").kind, JointKind::Revolute);
    assert_eq!(
        joint("joint1").limits.effort,
        50.0,
        "motor ctrlrange × gear"
    );
    assert_eq!(joint("joint2").limits.effort, 20.0, "forcerange");
    assert_eq!(joint("joint1").damping, 0.5);
    assert_eq!(
        (joint("joint1").limits.lower, joint("joint1").limits.upper),
        (-3.0, 3.0)
    );
    assert_eq!(joint("tip_fixed").kind, JointKind::Fixed);

    let link1 = &model.links[model.link_id("link1").unwrap()];
    assert_eq!(link1.inertial.as_ref().unwrap().mass, 1.0);
    let capsule = &link1.collisions[0];
    assert_eq!(
        capsule.shape,
        Shape::Capsule {
            radius: 0.02,
            length: 0.5
        }
    );
    assert!((capsule.origin.translation.vector - Vector3::new(0.25, 0.0, 0.0)).norm() < 1e-12);
    assert!(((capsule.origin.rotation * Vector3::z()) - Vector3::x()).norm() < 1e-12);

    // Visual-only cylinder, re-expressed in the link frame at the joint anchor.
    let link2 = &model.links[model.link_id("link2").unwrap()];
    assert!(link2.collisions.is_empty());
    let cylinder = &link2.visuals[0];
    let Shape::Cylinder { radius, length } = cylinder.shape else {
        panic!("expected a cylinder, got {:?}", cylinder.shape);
    };
    assert!((radius - 0.02).abs() < 1e-12 && (length - 0.4).abs() < 1e-12);
    assert!((cylinder.origin.translation.vector - Vector3::new(0.2, 0.0, 0.0)).norm() < 1e-12);

    // Inferred mass: a 0.02 × 0.4 m cylinder of water.
    let mass = link2.inertial.as_ref().unwrap().mass;
    let expected = 1000.0 * std::f64::consts::PI * 0.02f64.powi(2) * 0.4;
    assert!((mass - expected).abs() < 1e-9, "{mass} vs {expected}");
    let base = &model.links[model.link_id("base").unwrap()];
    assert_eq!(base.visuals[0].rgba, Some([0.2, 0.2, 0.2, 1.0]));
    assert_eq!(
        base.visuals[0].shape,
        Shape::Box {
            size: Vector3::new(0.1, 0.1, 0.1)
        }
    );
}

#[test]
fn world_root_ref_and_equality_mimic() {
    let xml = r#"
    <mujoco>
      <worldbody>
        <body name="a"><joint name="ja" axis="0 1 0" range="-90 90" ref="30"/><geom size="0.1"/></body>
        <body name="b"><joint name="jb" type="slide" axis="1 0 0" range="0 0.1"/><geom size="0.1"/></body>
        <body name="c"><joint name="jc" type="slide" axis="1 0 0" range="0 0.1"/><geom size="0.1"/></body>
      </worldbody>
      <equality><joint joint1="jc" joint2="jb" polycoef="0.01 -1 0 0 0"/></equality>
    </mujoco>"#;
    let model = parse_mjcf(xml, "multi.xml", None).unwrap();
    assert_eq!(model.links[model.root].name, "world");
    let kin = Kinematics::new(&model);
    assert_eq!(kin.dof_names(), ["ja", "jb"]);
    // Degrees converted; at q = ref the body is where the file puts it.
    let a = kin.link_id("a").unwrap();
    let pose = kin.link_pose(&[30f64.to_radians(), 0.0], a);
    assert!(pose.rotation.angle() < 1e-12);
    let c = kin.link_id("c").unwrap();
    let pose = kin.link_pose(&[0.0, 0.05], c);
    assert!((pose.translation.x - (0.01 - 0.05)).abs() < 1e-12);
}

fn assert_fails(xml: &str, file: &str, needles: &[&str]) -> RobotError {
    let err = parse_mjcf(xml, file, None).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(file), "message lacks file name: {msg}");
    for needle in needles {
        assert!(msg.contains(needle), "message lacks {needle:?}: {msg}");
    }
    err
}

#[test]
fn broken_mjcf() {
    let err = assert_fails("<mujoco><worldbody><body>", "broken.xml", &[]);
    assert!(matches!(err, RobotError::Parse { .. }));
    assert_fails(
        r#"<mujoco><worldbody><body name="hand"><freejoint/><geom size="0.1"/></body></worldbody></mujoco>"#,
        "free.xml",
        &["free"],
    );
    assert_fails(
        r#"<mujoco><worldbody><body name="hand"><joint name="a"/><joint name="b"/></body></worldbody></mujoco>"#,
        "twojoints.xml",
        &["<body> \"hand\"", "2 joints"],
    );
    assert_fails(
        r#"<mujoco><worldbody><body name="hand"><geom size="0.1"/><geom type="ellipsoid" size="0.1 0.2 0.3"/></body></worldbody></mujoco>"#,
        "ellipsoid.xml",
        &["<geom> #1 in <body> \"hand\"", "ellipsoid"],
    );
    assert_fails(
        r#"<mujoco><asset><mesh name="m" file="nope.stl"/></asset>
           <worldbody><body name="hand"><geom type="mesh" mesh="m"/></body></worldbody></mujoco>"#,
        "mesh.xml",
        &["<geom> #0 in <body> \"hand\"", "nope.stl"],
    );
    assert_fails(
        r#"<mujoco><worldbody><body name="hand"><inertial mass="-2" diaginertia="1 1 1"/></body></worldbody></mujoco>"#,
        "mass.xml",
        &["link \"hand\"", "mass"],
    );
    assert_fails(
        r#"<mujoco><worldbody><body name="hand"><joint name="j" range="1 -1" limited="true"/></body></worldbody></mujoco>"#,
        "range.xml",
        &["joint \"j\"", "lower"],
    );
}
