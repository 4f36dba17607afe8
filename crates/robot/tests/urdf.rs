//! URDF loading: conventions, materials, meshes and every class of broken file.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::path::Path;

use bicameral_robot::{JointKind, RobotError, Shape, load_urdf, parse_urdf};
use nalgebra::{UnitQuaternion, Vector3};

use common::{CHAIN_7DOF, chain7, temp_dir};

#[test]
fn joints_are_topologically_ordered_even_if_declared_backwards() {
    let xml = r#"<robot name="r">
      <link name="c"/><link name="b"/><link name="a"/>
      <joint name="jbc" type="fixed"><parent link="b"/><child link="c"/></joint>
      <joint name="jab" type="fixed"><parent link="a"/><child link="b"/></joint>
    </robot>"#;
    let model = parse_urdf(xml, "r.urdf", None).unwrap();
    assert_eq!(model.links[model.root].name, "a");
    let names: Vec<_> = model.joints.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["jab", "jbc"]);
    for (ji, joint) in model.joints.iter().enumerate() {
        assert_eq!(model.links[joint.child].parent_joint, Some(ji));
    }
    assert_eq!(model.chain_to(model.link_id("c").unwrap()), vec![0, 1]);
}

#[test]
fn rpy_is_fixed_axis_roll_pitch_yaw() {
    let (roll, pitch, yaw) = (0.3, -0.5, 1.1);
    let xml = format!(
        r#"<robot name="r"><link name="a"/><link name="b"/>
        <joint name="j" type="fixed"><origin xyz="1 2 3" rpy="{roll} {pitch} {yaw}"/>
        <parent link="a"/><child link="b"/></joint></robot>"#
    );
    let model = parse_urdf(&xml, "r.urdf", None).unwrap();
    let expected = UnitQuaternion::from_axis_angle(&Vector3::z_axis(), yaw)
        * UnitQuaternion::from_axis_angle(&Vector3::y_axis(), pitch)
        * UnitQuaternion::from_axis_angle(&Vector3::x_axis(), roll);
    let origin = model.joints[0].origin;
    assert!(origin.rotation.angle_to(&expected) < 1e-12);
    assert_eq!(origin.translation.vector, Vector3::new(1.0, 2.0, 3.0));
}

#[test]
fn chain_properties() {
    let model = chain7();
    let j1 = &model.joints[model.joint_id("j1").unwrap()];
    assert_eq!(j1.kind, JointKind::Continuous);
    assert_eq!(
        (j1.limits.lower, j1.limits.upper),
        (f64::NEG_INFINITY, f64::INFINITY)
    );
    let j5 = &model.joints[model.joint_id("j5").unwrap()];
    assert!((j5.axis.norm() - 1.0).abs() < 1e-15, "axis normalised");
    let mimic = model.joints[model.joint_id("j8_mimic").unwrap()]
        .mimic
        .clone()
        .unwrap();
    assert_eq!(model.joints[mimic.joint].name, "j4");
    assert_eq!((mimic.multiplier, mimic.offset), (0.5, 0.1));
    assert_eq!(model.movable_joints().count(), 8);
}

#[test]
fn materials_inertials_and_primitives() {
    let xml = r#"<robot name="r">
      <material name="red"><color rgba="1 0 0 1"/></material>
      <link name="a">
        <inertial><mass value="2"/><inertia ixx="0.1" iyy="0.2" izz="0.25" ixy="0.01" ixz="0" iyz="0"/></inertial>
        <visual><geometry><box size="0.1 0.2 0.3"/></geometry><material name="red"/></visual>
        <visual><geometry><sphere radius="0.1"/></geometry>
          <material name="blue"><color rgba="0 0 1 0.5"/></material></visual>
        <visual><geometry><cylinder radius="0.1" length="0.4"/></geometry><material name="blue"/></visual>
        <collision><origin xyz="0 0 0.1"/><geometry><capsule radius="0.05" length="0.2"/></geometry></collision>
      </link>
    </robot>"#;
    let model = parse_urdf(xml, "r.urdf", None).unwrap();
    let link = &model.links[0];
    let inertial = link.inertial.as_ref().unwrap();
    assert_eq!(inertial.mass, 2.0);
    assert_eq!(inertial.inertia[(0, 1)], 0.01);
    assert_eq!(inertial.inertia[(1, 0)], 0.01);
    assert_eq!(link.visuals[0].rgba, Some([1.0, 0.0, 0.0, 1.0]));
    assert_eq!(link.visuals[1].rgba, Some([0.0, 0.0, 1.0, 0.5]));
    assert_eq!(link.visuals[2].rgba, Some([0.0, 0.0, 1.0, 0.5]));
    assert_eq!(
        link.visuals[0].shape,
        Shape::Box {
            size: Vector3::new(0.1, 0.2, 0.3)
        }
    );
    assert_eq!(
        link.collisions[0].shape,
        Shape::Capsule {
            radius: 0.05,
            length: 0.2
        }
    );
    assert_eq!(model.total_mass(), 2.0);
}

#[test]
fn meshes_load_relative_package_and_file_uris() {
    let dir = temp_dir("urdf-meshes");
    std::fs::create_dir_all(dir.join("meshes")).unwrap();
    std::fs::write(
        dir.join("meshes/quad.obj"),
        "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1 2 3 4\n",
    )
    .unwrap();
    let abs = dir.join("meshes/quad.obj");
    let xml = format!(
        r#"<robot name="r"><link name="a">
          <visual><geometry><mesh filename="meshes/quad.obj" scale="2 2 2"/></geometry></visual>
          <visual><geometry><mesh filename="package://mypkg/meshes/quad.obj"/></geometry></visual>
          <visual><geometry><mesh filename="file://{}" scale="1 1 -1"/></geometry></visual>
        </link></robot>"#,
        abs.display()
    );
    std::fs::write(dir.join("r.urdf"), xml).unwrap();
    let model = load_urdf(&dir.join("r.urdf")).unwrap();
    let visuals = &model.links[0].visuals;
    let Shape::Mesh {
        vertices,
        triangles,
        ..
    } = &visuals[0].shape
    else {
        panic!()
    };
    assert_eq!(vertices[2], [2.0, 2.0, 0.0]);
    assert_eq!(triangles, &vec![[0, 1, 2], [0, 2, 3]]);
    assert!(matches!(visuals[1].shape, Shape::Mesh { .. }));
    let Shape::Mesh { triangles, .. } = &visuals[2].shape else {
        panic!()
    };
    assert_eq!(triangles[0], [0, 2, 1], "mirroring scale flips winding");
}

/// Asserts that `xml` fails to load and that the message names the file and `needles`.
fn assert_fails(xml: &str, file: &str, needles: &[&str]) -> RobotError {
    let err = parse_urdf(xml, file, Some(Path::new("/nonexistent"))).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(file), "message lacks file name: {msg}");
    for needle in needles {
        assert!(msg.contains(needle), "message lacks {needle:?}: {msg}");
    }
    err
}

#[test]
fn malformed_xml() {
    let err = assert_fails("<robot name=\"r\"><link name=\"a\">", "malformed.urdf", &[]);
    assert!(matches!(err, RobotError::Parse { .. }));
}

#[test]
fn joint_with_missing_link() {
    let xml = r#"<robot name="r"><link name="a"/>
      <joint name="left_elbow" type="fixed"><parent link="a"/><child link="ghost"/></joint></robot>"#;
    let err = assert_fails(xml, "missing.urdf", &["joint \"left_elbow\"", "ghost"]);
    assert!(matches!(err, RobotError::UnknownLink { .. }));
}

#[test]
fn lower_above_upper() {
    let xml = CHAIN_7DOF.replace(r#"lower="-1.6" upper="1.6""#, r#"lower="1.6" upper="-1.6""#);
    let err = assert_fails(&xml, "limits.urdf", &["joint \"j2\"", "lower"]);
    assert!(matches!(err, RobotError::InvalidLimits { .. }));
}

#[test]
fn non_positive_velocity() {
    let xml = CHAIN_7DOF.replace(
        r#"upper="0.2" effort="100" velocity="0.5""#,
        r#"upper="0.2" effort="100" velocity="0""#,
    );
    assert_fails(&xml, "velocity.urdf", &["joint \"j3\"", "velocity"]);
}

#[test]
fn negative_mass() {
    let xml = r#"<robot name="r"><link name="torso">
      <inertial><mass value="-1"/><inertia ixx="1" iyy="1" izz="1" ixy="0" ixz="0" iyz="0"/></inertial>
      </link></robot>"#;
    let err = assert_fails(xml, "mass.urdf", &["link \"torso\"", "mass"]);
    assert!(matches!(err, RobotError::InvalidInertial { .. }));
}

#[test]
fn indefinite_inertia() {
    let xml = r#"<robot name="r"><link name="torso">
      <inertial><mass value="1"/><inertia ixx="1" iyy="1" izz="1" ixy="2" ixz="0" iyz="0"/></inertial>
      </link></robot>"#;
    assert_fails(
        xml,
        "inertia.urdf",
        &["link \"torso\"", "positive definite"],
    );
}

#[test]
fn two_roots() {
    let xml = r#"<robot name="r"><link name="a"/><link name="b"/></robot>"#;
    let err = assert_fails(xml, "roots.urdf", &["\"a\"", "\"b\""]);
    assert!(matches!(err, RobotError::MultipleRoots { .. }));
}

#[test]
fn cycle() {
    let xml = r#"<robot name="r"><link name="a"/><link name="b"/><link name="c"/>
      <joint name="ab" type="fixed"><parent link="a"/><child link="b"/></joint>
      <joint name="bc" type="fixed"><parent link="b"/><child link="c"/></joint>
      <joint name="ca" type="fixed"><parent link="c"/><child link="a"/></joint></robot>"#;
    let err = assert_fails(xml, "cycle.urdf", &["cycle"]);
    assert!(matches!(err, RobotError::NoRoot { .. }));
    let xml = r#"<robot name="r"><link name="root"/><link name="b"/><link name="c"/>
      <joint name="bc" type="fixed"><parent link="b"/><child link="c"/></joint>
      <joint name="cb" type="fixed"><parent link="c"/><child link="b"/></joint></robot>"#;
    let err = assert_fails(xml, "cycle2.urdf", &["cycle", "root"]);
    assert!(matches!(err, RobotError::Cycle { .. }));
}

#[test]
fn link_with_two_parents() {
    let xml = r#"<robot name="r"><link name="a"/><link name="b"/><link name="c"/>
      <joint name="ab" type="fixed"><parent link="a"/><child link="b"/></joint>
      <joint name="cb" type="fixed"><parent link="c"/><child link="b"/></joint></robot>"#;
    assert_fails(xml, "parents.urdf", &["\"b\"", "\"ab\"", "\"cb\""]);
}

#[test]
fn duplicate_names() {
    let xml = r#"<robot name="r"><link name="a"/><link name="a"/></robot>"#;
    let err = assert_fails(xml, "dup.urdf", &["link", "\"a\""]);
    assert!(matches!(err, RobotError::DuplicateName { .. }));
}

#[test]
fn mimic_of_unknown_joint() {
    let xml = CHAIN_7DOF.replace(r#"<mimic joint="j4""#, r#"<mimic joint="j42""#);
    let err = assert_fails(&xml, "mimic.urdf", &["joint \"j8_mimic\"", "j42"]);
    assert!(matches!(err, RobotError::UnknownMimicLeader { .. }));
}

#[test]
fn mimic_of_fixed_joint() {
    let xml = CHAIN_7DOF.replace(r#"<mimic joint="j4""#, r#"<mimic joint="tool_fixed""#);
    assert_fails(
        &xml,
        "mimic2.urdf",
        &["joint \"j8_mimic\"", "tool_fixed", "fixed"],
    );
}

#[test]
fn zero_axis() {
    let xml = CHAIN_7DOF.replace(r#"<axis xyz="1 0 1"/>"#, r#"<axis xyz="0 0 0"/>"#);
    let err = assert_fails(&xml, "axis.urdf", &["joint \"j5\"", "axis"]);
    assert!(matches!(err, RobotError::ZeroAxis { .. }));
}

#[test]
fn unsupported_joint_type() {
    let xml = r#"<robot name="r"><link name="a"/><link name="b"/>
      <joint name="float" type="floating"><parent link="a"/><child link="b"/></joint></robot>"#;
    let err = assert_fails(xml, "floating.urdf", &["joint \"float\"", "floating"]);
    assert!(matches!(err, RobotError::UnsupportedJoint { .. }));
}

#[test]
fn bad_mesh_path() {
    let xml = r#"<robot name="r"><link name="hand">
      <visual><geometry><mesh filename="meshes/missing.stl"/></geometry></visual></link></robot>"#;
    let err = assert_fails(xml, "mesh.urdf", &["link \"hand\"", "missing.stl"]);
    assert!(matches!(err, RobotError::Mesh { .. }));
    let xml = r#"<robot name="r"><link name="hand">
      <collision><geometry><mesh filename="package://pkg/missing.stl"/></geometry></collision></link></robot>"#;
    assert_fails(
        xml,
        "mesh2.urdf",
        &["<collision> #0 in link \"hand\"", "missing.stl"],
    );
}

#[test]
fn negative_geometry_size() {
    let xml = r#"<robot name="r"><link name="hand">
      <visual><geometry><sphere radius="-1"/></geometry></visual></link></robot>"#;
    assert_fails(
        xml,
        "size.urdf",
        &["<visual> #0 in link \"hand\"", "radius"],
    );
}

#[test]
fn missing_file_is_io_error() {
    let err = load_urdf(Path::new("/nonexistent/robot.urdf")).unwrap_err();
    assert!(matches!(err, RobotError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/robot.urdf"));
}
