//! Per-robot embodiment: how the robot's DoFs are grouped, laid out in the state and action
//! vectors, which cameras it carries, its PD gains and its default pose. Loaded from
//! `robots/<name>/embodiment.toml`:
//!
//! ```toml
//! name = "bc_humanoid"
//! description = "bc_humanoid.urdf"   # robot file relative to this TOML (.urdf, or .xml MJCF)
//! [groups]                            # ordered: group -> independent DoF names
//! waist = ["waist_yaw", "waist_pitch", "waist_roll"]
//! left_arm = ["left_shoulder_pitch", "left_shoulder_roll", "left_elbow"]
//! [[state]]                           # ordered slices of the state vector
//! key = "left_arm"
//! group = "left_arm"
//! [[action]]                          # ordered slices of the action vector
//! key = "left_arm"
//! group = "left_arm"
//! [[cameras]]
//! name = "ego_view"
//! link = "head_camera_link"
//! xyz = [0.0, 0.0, 0.0]               # optical frame in the link frame (m)
//! rpy = [0.0, 0.0, 0.0]               # OpenCV optical frame: x right, y down, z forward
//! width = 224
//! height = 224
//! fov_y_deg = 70.0                    # or fx, fy (px) and optionally cx, cy
//! near = 0.02
//! far = 5.0
//! [gains]                             # per group: N·m/rad, N·m·s/rad (N/m, N·s/m prismatic)
//! waist = { kp = 800.0, kd = 40.0 }
//! left_arm = { kp = 300.0, kd = 20.0 }
//! [default_pose]                      # DoF name -> position (rad or m); others are 0
//! left_elbow = -1.2
//! ```
//!
//! `[groups]` keeps the order of the file (the TOML table is read in document order).
//! Every group needs an entry in `[gains]`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use nalgebra::{Isometry3, Translation3, UnitQuaternion};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::error::RobotError;
use crate::kinematics::Kinematics;
use crate::model::{JointKind, RobotModel};

/// A named, ordered list of independent DoFs.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Group name (e.g. `left_arm`).
    pub name: String,
    /// Joint names (independent DoFs of the robot).
    pub joints: Vec<String>,
}

/// One `[[state]]` or `[[action]]` entry: a group's DoFs as a contiguous slice.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SliceSpec {
    /// Key of the slice in dataset metadata (`modality.json`).
    pub key: String,
    /// The group whose DoFs fill the slice, in group order.
    pub group: String,
}

/// A slice of the state or action vector: `vector[start..end]` holds `group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    /// Slice key.
    pub key: String,
    /// Group name.
    pub group: String,
    /// First index.
    pub start: usize,
    /// One past the last index.
    pub end: usize,
}

/// PD gains of a group: `kp` in N·m/rad (N/m for prismatic DoFs), `kd` in N·m·s/rad (N·s/m).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gains {
    /// Stiffness.
    pub kp: f64,
    /// Damping.
    pub kd: f64,
}

/// A pinhole camera rigidly mounted on a link.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraSpec {
    /// Camera name (e.g. `ego_view`).
    pub name: String,
    /// Link the camera is mounted on.
    pub link: String,
    /// Optical-frame origin in the link frame (m).
    #[serde(default)]
    pub xyz: [f64; 3],
    /// Optical-frame orientation in the link frame, URDF fixed-axis roll-pitch-yaw (rad). The
    /// optical frame follows OpenCV: x right, y down, z forward (viewing direction).
    #[serde(default)]
    pub rpy: [f64; 3],
    /// Image width (px).
    pub width: u32,
    /// Image height (px).
    pub height: u32,
    /// Vertical field of view (degrees); alternative to `fx`/`fy`.
    pub fov_y_deg: Option<f64>,
    /// Focal length along x (px).
    pub fx: Option<f64>,
    /// Focal length along y (px).
    pub fy: Option<f64>,
    /// Principal point x (px); defaults to `width / 2`.
    pub cx: Option<f64>,
    /// Principal point y (px); defaults to `height / 2`.
    pub cy: Option<f64>,
    /// Near clipping distance (m).
    pub near: f64,
    /// Far clipping distance (m).
    pub far: f64,
}

/// Pinhole intrinsics in pixels (OpenCV convention, origin at the top-left image corner).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Intrinsics {
    /// Focal length along x (px).
    pub fx: f64,
    /// Focal length along y (px).
    pub fy: f64,
    /// Principal point x (px).
    pub cx: f64,
    /// Principal point y (px).
    pub cy: f64,
}

impl CameraSpec {
    /// Intrinsics; from `fov_y_deg` with square pixels (`fx = fy = (height/2) / tan(fov/2)`)
    /// when no focal lengths are given. The principal point defaults to the image centre.
    pub fn intrinsics(&self) -> Intrinsics {
        let (w, h) = (f64::from(self.width), f64::from(self.height));
        let from_fov = self
            .fov_y_deg
            .map(|fov| 0.5 * h / (0.5 * fov.to_radians()).tan());
        let fy = self.fy.or(from_fov).unwrap_or(f64::NAN);
        Intrinsics {
            fx: self.fx.unwrap_or(fy),
            fy,
            cx: self.cx.unwrap_or(0.5 * w),
            cy: self.cy.unwrap_or(0.5 * h),
        }
    }

    /// Vertical field of view (rad), from `fov_y_deg` or from `fy`.
    pub fn fov_y_rad(&self) -> f64 {
        let i = self.intrinsics();
        2.0 * (0.5 * f64::from(self.height) / i.fy).atan()
    }

    /// Optical frame (x right, y down, z forward) in the link frame.
    pub fn pose_in_link(&self) -> Isometry3<f64> {
        let [x, y, z] = self.xyz;
        let [roll, pitch, yaw] = self.rpy;
        Isometry3::from_parts(
            Translation3::new(x, y, z),
            UnitQuaternion::from_euler_angles(roll, pitch, yaw),
        )
    }
}

/// A robot's embodiment configuration (see the module docs for the file format).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Embodiment {
    /// Embodiment name.
    pub name: String,
    /// Robot description file, relative to the TOML file.
    pub description: String,
    /// Ordered DoF groups.
    #[serde(deserialize_with = "ordered_groups")]
    pub groups: Vec<Group>,
    /// Ordered state-vector slices.
    #[serde(default)]
    pub state: Vec<SliceSpec>,
    /// Ordered action-vector slices.
    #[serde(default)]
    pub action: Vec<SliceSpec>,
    /// Cameras.
    #[serde(default)]
    pub cameras: Vec<CameraSpec>,
    /// PD gains per group.
    #[serde(default)]
    pub gains: BTreeMap<String, Gains>,
    /// Default position per DoF name (rad or m); unlisted DoFs are 0.
    #[serde(default)]
    pub default_pose: BTreeMap<String, f64>,
    /// The TOML file this was read from (for messages and resolving `description`).
    #[serde(skip)]
    pub source: PathBuf,
}

/// Deserializes the `[groups]` table into a `Vec` in document order.
fn ordered_groups<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Group>, D::Error> {
    struct GroupsVisitor;
    impl<'de> Visitor<'de> for GroupsVisitor {
        type Value = Vec<Group>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a table of group name = [joint names]")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut groups = Vec::new();
            while let Some((name, joints)) = map.next_entry::<String, Vec<String>>()? {
                groups.push(Group { name, joints });
            }
            Ok(groups)
        }
    }
    deserializer.deserialize_map(GroupsVisitor)
}

impl Embodiment {
    /// Reads and self-checks an embodiment file (robot-independent checks; see
    /// [`Self::validate`] for the checks against the robot).
    pub fn load(path: &Path) -> Result<Self, RobotError> {
        let text = std::fs::read_to_string(path).map_err(|source| RobotError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and self-checks embodiment TOML; `path` is used for messages and to resolve
    /// `description`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, RobotError> {
        let mut embodiment: Self = toml::from_str(text).map_err(|e| RobotError::Parse {
            file: path.display().to_string(),
            message: e.to_string(),
        })?;
        embodiment.source = path.to_path_buf();
        embodiment.check()?;
        Ok(embodiment)
    }

    /// Path of the robot description (`description` resolved against the TOML's directory).
    pub fn description_path(&self) -> PathBuf {
        self.source
            .parent()
            .unwrap_or(Path::new(""))
            .join(&self.description)
    }

    /// Loads the robot description (URDF or MJCF by extension) and validates this embodiment
    /// against it.
    pub fn load_robot(&self) -> Result<RobotModel, RobotError> {
        let model = crate::load_robot(&self.description_path())?;
        self.validate(&model)?;
        Ok(model)
    }

    /// Checks the embodiment against the robot: group joints are independent DoFs, camera
    /// links exist, default positions name DoFs and lie within limits.
    pub fn validate(&self, model: &RobotModel) -> Result<(), RobotError> {
        let dof_problem = |joint: &str| -> Option<String> {
            let Some(ji) = model.joint_id(joint) else {
                return Some(format!(
                    "unknown joint \"{joint}\" (robot \"{}\")",
                    model.name
                ));
            };
            let j = &model.joints[ji];
            if j.kind == JointKind::Fixed {
                Some(format!("joint \"{joint}\" is fixed, not a DoF"))
            } else {
                j.mimic.as_ref().map(|m| {
                    format!(
                        "joint \"{joint}\" mimics \"{}\"; list the leader instead",
                        model.joints[m.joint].name
                    )
                })
            }
        };
        for group in &self.groups {
            for (i, joint) in group.joints.iter().enumerate() {
                if let Some(problem) = dof_problem(joint) {
                    return Err(self.error(format!("groups.{}[{i}]", group.name), problem));
                }
            }
        }
        for (i, camera) in self.cameras.iter().enumerate() {
            if model.link_id(&camera.link).is_none() {
                return Err(self.error(
                    format!("cameras[{i}].link"),
                    format!(
                        "unknown link \"{}\" (robot \"{}\")",
                        camera.link, model.name
                    ),
                ));
            }
        }
        for (joint, &value) in &self.default_pose {
            let field = format!("default_pose.{joint}");
            if let Some(problem) = dof_problem(joint) {
                return Err(self.error(field, problem));
            }
            let limits = model
                .joint_id(joint)
                .map(|ji| model.joints[ji].limits)
                .filter(|l| !(l.lower..=l.upper).contains(&value));
            if let Some(l) = limits {
                return Err(self.error(
                    field,
                    format!(
                        "{value} is outside the joint limits [{}, {}]",
                        l.lower, l.upper
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The joints of group `name`.
    pub fn group(&self, name: &str) -> Option<&[String]> {
        self.groups
            .iter()
            .find(|g| g.name == name)
            .map(|g| g.joints.as_slice())
    }

    /// Length of the state vector.
    pub fn state_dim(&self) -> usize {
        self.slices(&self.state).last().map_or(0, |s| s.end)
    }

    /// Length of the action vector.
    pub fn action_dim(&self) -> usize {
        self.slices(&self.action).last().map_or(0, |s| s.end)
    }

    /// State-vector layout, in order.
    pub fn state_slices(&self) -> Vec<Slice> {
        self.slices(&self.state)
    }

    /// Action-vector layout, in order.
    pub fn action_slices(&self) -> Vec<Slice> {
        self.slices(&self.action)
    }

    /// DoF indices (into the [`Kinematics`] `q` vector) of every group, in group order.
    pub fn dof_indices(&self, kin: &Kinematics) -> Result<Vec<(String, Vec<usize>)>, RobotError> {
        self.groups
            .iter()
            .map(|g| Ok((g.name.clone(), self.group_dof_indices(kin, &g.name)?)))
            .collect()
    }

    /// DoF indices of one group's joints, in group order.
    pub fn group_dof_indices(
        &self,
        kin: &Kinematics,
        group: &str,
    ) -> Result<Vec<usize>, RobotError> {
        let Some(g) = self.groups.iter().find(|g| g.name == group) else {
            return Err(self.error("groups".to_owned(), format!("no group \"{group}\"")));
        };
        g.joints
            .iter()
            .enumerate()
            .map(|(i, joint)| {
                kin.dof_index(joint).ok_or_else(|| {
                    self.error(
                        format!("groups.{group}[{i}]"),
                        format!(
                            "\"{joint}\" is not an independent DoF of robot \"{}\"",
                            kin.robot_name()
                        ),
                    )
                })
            })
            .collect()
    }

    /// For each state-vector entry, the DoF index it reads.
    pub fn state_dof_indices(&self, kin: &Kinematics) -> Result<Vec<usize>, RobotError> {
        self.layout_dof_indices(kin, &self.state)
    }

    /// For each action-vector entry, the DoF index it drives.
    pub fn action_dof_indices(&self, kin: &Kinematics) -> Result<Vec<usize>, RobotError> {
        self.layout_dof_indices(kin, &self.action)
    }

    /// Gains of the group containing `joint`.
    pub fn gains_for_joint(&self, joint: &str) -> Option<Gains> {
        self.groups
            .iter()
            .find(|g| g.joints.iter().any(|j| j == joint))
            .and_then(|g| self.gains.get(&g.name).copied())
    }

    /// The default pose as a DoF vector (unlisted DoFs are 0).
    pub fn default_q(&self, kin: &Kinematics) -> Result<Vec<f64>, RobotError> {
        let mut q = vec![0.0; kin.dof_count()];
        for (joint, &value) in &self.default_pose {
            let dof = kin.dof_index(joint).ok_or_else(|| {
                self.error(
                    format!("default_pose.{joint}"),
                    format!(
                        "\"{joint}\" is not an independent DoF of robot \"{}\"",
                        kin.robot_name()
                    ),
                )
            })?;
            q[dof] = value;
        }
        Ok(q)
    }

    /// The camera named `name`.
    pub fn camera(&self, name: &str) -> Option<&CameraSpec> {
        self.cameras.iter().find(|c| c.name == name)
    }

    fn layout_dof_indices(
        &self,
        kin: &Kinematics,
        specs: &[SliceSpec],
    ) -> Result<Vec<usize>, RobotError> {
        let mut indices = Vec::new();
        for spec in specs {
            indices.extend(self.group_dof_indices(kin, &spec.group)?);
        }
        Ok(indices)
    }

    fn slices(&self, specs: &[SliceSpec]) -> Vec<Slice> {
        let mut start = 0;
        specs
            .iter()
            .map(|spec| {
                let len = self.group(&spec.group).map_or(0, <[String]>::len);
                let slice = Slice {
                    key: spec.key.clone(),
                    group: spec.group.clone(),
                    start,
                    end: start + len,
                };
                start += len;
                slice
            })
            .collect()
    }

    fn error(&self, field: String, problem: String) -> RobotError {
        RobotError::Embodiment {
            file: self.source.display().to_string(),
            field,
            problem,
        }
    }

    /// Robot-independent consistency checks.
    fn check(&self) -> Result<(), RobotError> {
        let err = |field: String, problem: String| Err(self.error(field, problem));
        if self.groups.is_empty() {
            return err("groups".into(), "at least one group is required".into());
        }
        let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
        for group in &self.groups {
            if group.joints.is_empty() {
                return err(format!("groups.{}", group.name), "group is empty".into());
            }
            for (i, joint) in group.joints.iter().enumerate() {
                if let Some(other) = owner.insert(joint, &group.name) {
                    return err(
                        format!("groups.{}[{i}]", group.name),
                        format!("joint \"{joint}\" is already in group \"{other}\""),
                    );
                }
            }
            match self.gains.get(&group.name) {
                None => {
                    return err(
                        format!("gains.{}", group.name),
                        "missing gains for this group".into(),
                    );
                }
                Some(g)
                    if !(g.kp.is_finite() && g.kp >= 0.0 && g.kd.is_finite() && g.kd >= 0.0) =>
                {
                    return err(
                        format!("gains.{}", group.name),
                        format!("kp ({}) and kd ({}) must be finite and >= 0", g.kp, g.kd),
                    );
                }
                Some(_) => {}
            }
        }
        if let Some(unknown) = self.gains.keys().find(|k| self.group(k).is_none()) {
            return err(
                format!("gains.{unknown}"),
                format!("no group \"{unknown}\""),
            );
        }
        for (table, specs) in [("state", &self.state), ("action", &self.action)] {
            for (i, spec) in specs.iter().enumerate() {
                if self.group(&spec.group).is_none() {
                    return err(
                        format!("{table}[{i}].group"),
                        format!("no group \"{}\"", spec.group),
                    );
                }
                if let Some(j) = specs[..i].iter().position(|s| s.key == spec.key) {
                    return err(
                        format!("{table}[{i}].key"),
                        format!("key \"{}\" already used by {table}[{j}]", spec.key),
                    );
                }
                if let Some(j) = specs[..i].iter().position(|s| s.group == spec.group) {
                    return err(
                        format!("{table}[{i}].group"),
                        format!(
                            "group \"{}\" already in {table}[{j}]: slices would overlap",
                            spec.group
                        ),
                    );
                }
            }
        }
        for (i, camera) in self.cameras.iter().enumerate() {
            self.check_camera(i, camera)?;
        }
        if let Some((joint, value)) = self.default_pose.iter().find(|(_, v)| !v.is_finite()) {
            return err(
                format!("default_pose.{joint}"),
                format!("{value} is not finite"),
            );
        }
        Ok(())
    }

    fn check_camera(&self, i: usize, c: &CameraSpec) -> Result<(), RobotError> {
        let field = |name: &str| format!("cameras[{i}].{name}");
        let err = |name: &str, problem: String| Err(self.error(field(name), problem));
        if let Some(j) = self.cameras[..i].iter().position(|o| o.name == c.name) {
            return err(
                "name",
                format!("camera \"{}\" already defined at cameras[{j}]", c.name),
            );
        }
        if c.width == 0 || c.height == 0 {
            return err(
                "width",
                format!("image size {}×{} must be positive", c.width, c.height),
            );
        }
        if !(c.near > 0.0 && c.far > c.near && c.far.is_finite()) {
            return err(
                "near",
                format!("need 0 < near ({}) < far ({})", c.near, c.far),
            );
        }
        if c.xyz.iter().chain(&c.rpy).any(|v| !v.is_finite()) {
            return err("xyz", "xyz and rpy must be finite".into());
        }
        match (c.fov_y_deg, c.fx, c.fy) {
            (Some(fov), None, None) => {
                if !(fov > 0.0 && fov < 180.0) {
                    return err("fov_y_deg", format!("{fov} must be in (0, 180)"));
                }
            }
            (None, Some(fx), Some(fy)) => {
                if !(fx > 0.0 && fy > 0.0 && fx.is_finite() && fy.is_finite()) {
                    return err("fx", format!("focal lengths fx={fx}, fy={fy} must be > 0"));
                }
            }
            (Some(_), _, _) => {
                return err(
                    "fov_y_deg",
                    "give either fov_y_deg or fx/fy, not both".into(),
                );
            }
            (None, _, _) => {
                return err("fov_y_deg", "give fov_y_deg, or both fx and fy".into());
            }
        }
        for (name, v) in [("cx", c.cx), ("cy", c.cy)] {
            if v.is_some_and(|v| !v.is_finite()) {
                return err(name, "principal point must be finite".into());
            }
        }
        Ok(())
    }
}
