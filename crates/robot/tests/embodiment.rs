//! Embodiment TOML: layout, intrinsics, gains, default pose, and broken files.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::path::Path;

use bicameral_robot::{Embodiment, Kinematics, RobotError};

use common::{chain7, temp_dir};

/// Embodiment for `common::CHAIN_7DOF`. Groups are deliberately not alphabetical.
const GOOD: &str = r#"
name = "chain"
description = "chain7.urdf"

[groups]
wrist = ["j5", "j6", "j7"]
arm = ["j1", "j2", "j4"]
lift = ["j3"]

[[state]]
key = "arm"
group = "arm"
[[state]]
key = "wrist"
group = "wrist"

[[action]]
key = "wrist"
group = "wrist"
[[action]]
key = "lift"
group = "lift"
[[action]]
key = "arm"
group = "arm"

[[cameras]]
name = "ego_view"
link = "tool"
xyz = [0.0, 0.0, 0.1]
rpy = [0.0, 0.0, 0.0]
width = 320
height = 240
fov_y_deg = 90.0
near = 0.02
far = 5.0

[[cameras]]
name = "explicit"
link = "l3"
width = 640
height = 480
fx = 500.0
fy = 510.0
cx = 300.0
near = 0.1
far = 10.0

[gains]
arm = { kp = 800.0, kd = 40.0 }
wrist = { kp = 100.0, kd = 5.0 }
lift = { kp = 5000.0, kd = 100.0 }

[default_pose]
j4 = -1.2
j3 = 0.1
"#;

fn parse(text: &str) -> Result<Embodiment, RobotError> {
    Embodiment::parse(text, Path::new("robots/chain/embodiment.toml"))
}

#[test]
fn layout_and_lookups() {
    let e = parse(GOOD).unwrap();
    let model = chain7();
    e.validate(&model).unwrap();
    let kin = Kinematics::new(&model);
    let names: Vec<_> = e.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["wrist", "arm", "lift"], "file order preserved");
    assert_eq!((e.state_dim(), e.action_dim()), (6, 7));
    let slices: Vec<_> = e
        .action_slices()
        .into_iter()
        .map(|s| (s.key, s.start, s.end))
        .collect();
    assert_eq!(
        slices,
        [
            ("wrist".into(), 0, 3),
            ("lift".into(), 3, 4),
            ("arm".into(), 4, 7)
        ]
    );
    assert_eq!(e.state_slices()[1].start, 3);
    assert_eq!(e.group_dof_indices(&kin, "arm").unwrap(), vec![0, 1, 3]);
    assert_eq!(e.state_dof_indices(&kin).unwrap(), vec![0, 1, 3, 4, 5, 6]);
    assert_eq!(
        e.action_dof_indices(&kin).unwrap(),
        vec![4, 5, 6, 2, 0, 1, 3]
    );
    assert_eq!(
        e.dof_indices(&kin).unwrap()[2],
        ("lift".to_owned(), vec![2])
    );
    assert_eq!(e.gains_for_joint("j6").unwrap().kp, 100.0);
    assert!(e.gains_for_joint("j8_mimic").is_none());
    assert_eq!(
        e.default_q(&kin).unwrap(),
        vec![0.0, 0.0, 0.1, -1.2, 0.0, 0.0, 0.0]
    );
    assert_eq!(e.description_path(), Path::new("robots/chain/chain7.urdf"));

    let ego = e.camera("ego_view").unwrap().intrinsics();
    assert!((ego.fy - 120.0).abs() < 1e-9, "90° over 240 px: fy = 120");
    assert_eq!((ego.fx, ego.cx, ego.cy), (ego.fy, 160.0, 120.0));
    let explicit = e.camera("explicit").unwrap();
    let i = explicit.intrinsics();
    assert_eq!((i.fx, i.fy, i.cx, i.cy), (500.0, 510.0, 300.0, 240.0));
    assert!((explicit.fov_y_rad() - 2.0 * (240.0f64 / 510.0).atan()).abs() < 1e-12);
    assert_eq!(
        e.camera("ego_view").unwrap().pose_in_link().translation.z,
        0.1
    );
}

#[test]
fn load_from_disk_and_load_robot() {
    let dir = temp_dir("embodiment");
    std::fs::write(dir.join("chain7.urdf"), common::CHAIN_7DOF).unwrap();
    std::fs::write(dir.join("embodiment.toml"), GOOD).unwrap();
    let e = Embodiment::load(&dir.join("embodiment.toml")).unwrap();
    let model = e.load_robot().unwrap();
    assert_eq!(model.name, "chain7");
}

/// Asserts the TOML is rejected with a message naming the file and each needle.
fn assert_fails(text: &str, needles: &[&str]) {
    let err = parse(text).and_then(|e| e.validate(&chain7())).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("robots/chain/embodiment.toml"),
        "no file in: {msg}"
    );
    for needle in needles {
        assert!(msg.contains(needle), "message lacks {needle:?}: {msg}");
    }
}

#[test]
fn broken_embodiments() {
    assert_fails(
        &GOOD.replace("name = \"chain\"", "name = \"chain\"\ncolour = 3"),
        &["colour"],
    );
    assert_fails(
        &GOOD.replace("fov_y_deg = 90.0", "fov_y_deg = 90.0\nzoom = 2"),
        &["zoom"],
    );
    assert_fails(
        &GOOD.replace("\"j6\"", "\"j66\""),
        &["groups.wrist[1]", "j66"],
    );
    assert_fails(
        &GOOD.replace("\"j6\"", "\"j8_mimic\""),
        &["groups.wrist[1]", "mimics \"j4\""],
    );
    assert_fails(
        &GOOD.replace("\"j6\"", "\"tool_fixed\""),
        &["groups.wrist[1]", "fixed"],
    );
    assert_fails(
        &GOOD.replace("lift = [\"j3\"]", "lift = [\"j3\", \"j1\"]"),
        &["groups.lift[1]", "already in group \"arm\""],
    );
    assert_fails(
        &GOOD.replace(
            "key = \"lift\"\ngroup = \"lift\"",
            "key = \"lift\"\ngroup = \"wrist\"",
        ),
        &["action[1].group", "overlap"],
    );
    assert_fails(
        &GOOD.replace("key = \"lift\"", "key = \"wrist\""),
        &["action[1].key", "already used"],
    );
    assert_fails(
        &GOOD.replace(
            "key = \"lift\"\ngroup = \"lift\"",
            "key = \"lift\"\ngroup = \"legs\"",
        ),
        &["action[1].group", "legs"],
    );
    assert_fails(
        &GOOD.replace("lift = { kp = 5000.0, kd = 100.0 }", ""),
        &["gains.lift", "missing"],
    );
    assert_fails(
        &GOOD.replace(
            "wrist = { kp = 100.0, kd = 5.0 }",
            "wrist = { kp = -1.0, kd = 5.0 }",
        ),
        &["gains.wrist"],
    );
    assert_fails(
        &GOOD.replace("link = \"tool\"", "link = \"hand_cam\""),
        &["cameras[0].link", "hand_cam"],
    );
    assert_fails(
        &GOOD.replace("fov_y_deg = 90.0", "fov_y_deg = 90.0\nfx = 100.0"),
        &["cameras[0].fov_y_deg", "not both"],
    );
    assert_fails(&GOOD.replace("fx = 500.0\n", ""), &["cameras[1].fov_y_deg"]);
    assert_fails(
        &GOOD.replace("far = 5.0", "far = 0.01"),
        &["cameras[0].near"],
    );
    assert_fails(
        &GOOD.replace("j4 = -1.2", "j4 = -3.0"),
        &["default_pose.j4", "outside"],
    );
    assert_fails(
        &GOOD.replace("j4 = -1.2", "j44 = 0.0"),
        &["default_pose.j44", "unknown joint"],
    );
    assert_fails("this is not toml", &[]);
    assert_fails(&GOOD.replace("[groups]", "[grops]"), &["grops"]);
}

#[test]
fn missing_file_is_io_error() {
    let err = Embodiment::load(Path::new("/nonexistent/embodiment.toml")).unwrap_err();
    assert!(matches!(err, RobotError::Io { .. }));
}
