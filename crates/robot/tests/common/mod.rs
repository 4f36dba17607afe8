//! Shared fixtures for the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;

use bicameral_robot::ik::SplitMix64;
use bicameral_robot::{Kinematics, RobotModel, parse_urdf};

/// Planar 2-link arm in the xy plane: link lengths 0.5 m and 0.4 m, both joints about z,
/// tool frame `tip` at the end of the second link.
pub const PLANAR_2LINK: &str = r#"
<robot name="planar">
  <link name="base"/>
  <link name="link1">
    <inertial><mass value="1"/><origin xyz="0.25 0 0"/>
      <inertia ixx="0.01" iyy="0.02" izz="0.02" ixy="0" ixz="0" iyz="0"/></inertial>
  </link>
  <link name="link2"/>
  <link name="tip"/>
  <joint name="joint1" type="revolute">
    <parent link="base"/><child link="link1"/>
    <axis xyz="0 0 1"/><limit lower="-3" upper="3" effort="50" velocity="2"/>
  </joint>
  <joint name="joint2" type="revolute">
    <origin xyz="0.5 0 0"/>
    <parent link="link1"/><child link="link2"/>
    <axis xyz="0 0 1"/><limit lower="-3" upper="3" effort="20" velocity="2"/>
  </joint>
  <joint name="tip_fixed" type="fixed">
    <origin xyz="0.4 0 0"/>
    <parent link="link2"/><child link="tip"/>
  </joint>
</robot>
"#;

/// A spatial chain with 7 independent DoFs (mixed axes, one continuous, one prismatic) plus a
/// mimic joint following `j4`, and a fixed, rotated tool frame.
pub const CHAIN_7DOF: &str = r#"
<robot name="chain7">
  <link name="base"/>
  <link name="l1"/><link name="l2"/><link name="l3"/><link name="l4"/>
  <link name="l5"/><link name="l6"/><link name="l7"/><link name="l8"/>
  <link name="tool"/>
  <joint name="j1" type="continuous">
    <origin xyz="0 0 0.1"/><parent link="base"/><child link="l1"/>
    <axis xyz="0 0 1"/><limit effort="10" velocity="1"/>
  </joint>
  <joint name="j2" type="revolute">
    <origin xyz="0 0 0.2" rpy="0.1 0 0"/><parent link="l1"/><child link="l2"/>
    <axis xyz="0 1 0"/><limit lower="-1.6" upper="1.6" effort="10" velocity="1"/>
  </joint>
  <joint name="j3" type="prismatic">
    <origin xyz="0 0 0.1"/><parent link="l2"/><child link="l3"/>
    <axis xyz="0 0 1"/><limit lower="0" upper="0.2" effort="100" velocity="0.5"/>
  </joint>
  <joint name="j4" type="revolute">
    <origin xyz="0 0.02 0.25" rpy="0 0.2 0.3"/><parent link="l3"/><child link="l4"/>
    <axis xyz="0 1 0"/><limit lower="-2.2" upper="2.2" effort="10" velocity="1"/>
  </joint>
  <joint name="j5" type="revolute">
    <origin xyz="0.05 0 0.2"/><parent link="l4"/><child link="l5"/>
    <axis xyz="1 0 1"/><limit lower="-2.5" upper="2.5" effort="10" velocity="1"/>
  </joint>
  <joint name="j6" type="revolute">
    <origin xyz="0 0 0.15" rpy="0.3 -0.2 0.1"/><parent link="l5"/><child link="l6"/>
    <axis xyz="0 1 0"/><limit lower="-2" upper="2" effort="10" velocity="1"/>
  </joint>
  <joint name="j7" type="revolute">
    <origin xyz="0 0 0.1"/><parent link="l6"/><child link="l7"/>
    <axis xyz="0.2 -0.3 1"/><limit lower="-2.8" upper="2.8" effort="10" velocity="1"/>
  </joint>
  <joint name="j8_mimic" type="revolute">
    <origin xyz="0.03 0 0.08"/><parent link="l7"/><child link="l8"/>
    <axis xyz="1 0 0"/><limit lower="-2" upper="2" effort="10" velocity="1"/>
    <mimic joint="j4" multiplier="0.5" offset="0.1"/>
  </joint>
  <joint name="tool_fixed" type="fixed">
    <origin xyz="0.02 0.01 0.06" rpy="0.5 0.4 -0.3"/><parent link="l8"/><child link="tool"/>
  </joint>
</robot>
"#;

pub fn planar() -> RobotModel {
    parse_urdf(PLANAR_2LINK, "planar.urdf", None).unwrap()
}

pub fn chain7() -> RobotModel {
    parse_urdf(CHAIN_7DOF, "chain7.urdf", None).unwrap()
}

/// Uniform random DoF vector within the limits (±π for unbounded joints).
pub fn random_q(kin: &Kinematics, rng: &mut SplitMix64) -> Vec<f64> {
    kin.dof_limits()
        .iter()
        .map(|l| {
            let (lo, hi) = if l.lower.is_finite() && l.upper.is_finite() {
                (l.lower, l.upper)
            } else {
                (-std::f64::consts::PI, std::f64::consts::PI)
            };
            lo + (hi - lo) * rng.next_f64()
        })
        .collect()
}

/// A fresh, empty directory under the system temp dir, unique per test and process.
pub fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bicameral-robot-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
