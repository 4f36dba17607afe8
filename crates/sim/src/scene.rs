//! Scenes as data: `sim/scenes/*.toml` describes the physics settings, the light, the fixed
//! furniture and the loose objects placed around the robot. Units: metres, kilograms, seconds,
//! radians; colours are linear RGB in [0, 1]. World frame: z up, x forward from the robot base.

use std::path::{Path, PathBuf};

use nalgebra::{Isometry3, Translation3, UnitQuaternion, Vector3};
use serde::Deserialize;

use crate::error::SimError;

/// A whole scene file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SceneConfig {
    /// Scene name.
    pub name: String,
    /// Default robot directory name under `robots/` (its `embodiment.toml` is loaded).
    pub robot: String,
    /// Physics settings.
    #[serde(default)]
    pub physics: PhysicsConfig,
    /// Lighting used by the cameras.
    #[serde(default)]
    pub light: LightConfig,
    /// Whether to add a ground plane at z = 0.
    #[serde(default = "default_true")]
    pub ground: bool,
    /// Objects: furniture (`fixed = true`) and loose bodies.
    #[serde(default)]
    pub objects: Vec<ObjectConfig>,
    /// Cameras fixed in the scene (in addition to the robot's own cameras).
    #[serde(default)]
    pub cameras: Vec<SceneCameraConfig>,
}

fn default_true() -> bool {
    true
}

/// Physics parameters. The defaults follow what made contact-only grasping reliable with rapier
/// multibodies (see REFERENCES: no contact recycling, stiff contacts, substeps ≤ 1 ms).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PhysicsConfig {
    /// Physics step (s).
    pub dt: f64,
    /// Solver substeps per step (`num_solver_iterations`).
    pub substeps: usize,
    /// Internal PGS iterations per substep.
    pub pgs_iterations: usize,
    /// Gravity (m/s²), world frame.
    pub gravity: [f64; 3],
    /// Contact spring natural frequency (Hz).
    pub contact_hz: f64,
    /// Contact damping ratio.
    pub contact_damping_ratio: f64,
    /// Rotor armature added to every robot joint (kg·m² or kg).
    pub armature: f64,
    /// Robot links are gravity-compensated by their joint controllers (feed-forward), so PD
    /// gains only have to fight payloads and contacts.
    pub gravity_compensation: bool,
    /// Friction coefficient of the robot's collision shapes (finger pads included).
    pub robot_friction: f64,
    /// Linear speed (m/s) above which a body counts as a numerical blow-up.
    pub max_linear_speed: f64,
    /// Angular speed (rad/s) above which a body counts as a numerical blow-up.
    pub max_angular_speed: f64,
}

impl Default for PhysicsConfig {
    fn default() -> Self {
        Self {
            dt: 0.002,
            substeps: 4,
            pgs_iterations: 2,
            gravity: [0.0, 0.0, -9.81],
            contact_hz: 120.0,
            contact_damping_ratio: 10.0,
            armature: 0.1,
            gravity_compensation: true,
            robot_friction: 1.0,
            max_linear_speed: 20.0,
            max_angular_speed: 200.0,
        }
    }
}

/// A directional light plus ambient term (Lambert shading).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LightConfig {
    /// Direction the light travels (world frame; need not be normalised).
    pub direction: [f64; 3],
    /// Diffuse intensity.
    pub intensity: f64,
    /// Ambient intensity.
    pub ambient: f64,
}

impl Default for LightConfig {
    fn default() -> Self {
        Self {
            direction: [0.3, 0.2, -1.0],
            intensity: 0.8,
            ambient: 0.3,
        }
    }
}

/// Shapes an object can have. Sizes are full extents (m).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ObjectShape {
    /// Box with full side lengths.
    Box { size: [f64; 3] },
    /// Upright cylinder (axis along z).
    Cylinder { radius: f64, height: f64 },
    /// Sphere.
    Sphere { radius: f64 },
    /// Open-top container (bowl, tray, bin) built from a floor and four walls: outer size and
    /// wall thickness.
    Container { size: [f64; 3], wall: f64 },
    /// Table: outer size (x, y, height of the top surface), top thickness and square leg width.
    /// The object's frame is on the floor under the table's centre.
    Table { size: [f64; 3], top: f64, leg: f64 },
}

/// One object of the scene.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ObjectConfig {
    /// Unique name (used by tasks and instructions).
    pub name: String,
    /// Shape.
    pub shape: ObjectShape,
    /// Position of the shape's centre (for containers: the centre of the outer box), world frame.
    pub position: [f64; 3],
    /// Roll, pitch, yaw (rad), fixed axes.
    #[serde(default)]
    pub rpy: [f64; 3],
    /// Furniture that never moves.
    #[serde(default)]
    pub fixed: bool,
    /// Mass (kg) of a loose object; ignored for fixed ones.
    #[serde(default = "default_mass")]
    pub mass: f64,
    /// Coulomb friction coefficient.
    #[serde(default = "default_friction")]
    pub friction: f64,
    /// Restitution.
    #[serde(default)]
    pub restitution: f64,
    /// Linear RGB colour.
    #[serde(default = "default_colour")]
    pub colour: [f32; 3],
}

fn default_mass() -> f64 {
    0.1
}
fn default_friction() -> f64 {
    0.8
}
fn default_colour() -> [f32; 3] {
    [0.6, 0.6, 0.6]
}

/// A camera fixed in the world.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SceneCameraConfig {
    /// Camera name.
    pub name: String,
    /// Eye position (world, m).
    pub position: [f64; 3],
    /// Point looked at (world, m).
    pub look_at: [f64; 3],
    /// Vertical field of view (degrees).
    pub fov_y_deg: f64,
    /// Image width (px).
    pub width: u32,
    /// Image height (px).
    pub height: u32,
}

impl ObjectConfig {
    /// Pose of the object in the world.
    pub fn pose(&self) -> Isometry3<f64> {
        Isometry3::from_parts(
            Translation3::from(Vector3::from(self.position)),
            UnitQuaternion::from_euler_angles(self.rpy[0], self.rpy[1], self.rpy[2]),
        )
    }
}

/// The text of a data file (scene, task), with the path in the error.
pub(crate) fn read_text(path: &Path) -> Result<String, SimError> {
    std::fs::read_to_string(path).map_err(|source| SimError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// TOML → `T`; errors name `path` and the field (toml's message).
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
) -> Result<T, SimError> {
    toml::from_str(text).map_err(|e| SimError::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

impl SceneConfig {
    /// Reads and validates a scene file.
    pub fn load(path: &Path) -> Result<Self, SimError> {
        Self::parse(&read_text(path)?, path)
    }

    /// Parses and validates scene TOML; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, SimError> {
        let scene: SceneConfig = parse_toml(text, path)?;
        scene.validate(path)?;
        Ok(scene)
    }

    fn validate(&self, path: &Path) -> Result<(), SimError> {
        let bad = |message: String| SimError::Config {
            path: path.to_path_buf(),
            message,
        };
        let p = &self.physics;
        if !(p.dt > 0.0 && p.dt <= 0.02) {
            return Err(bad(format!(
                "physics.dt = {} s: must be in (0, 0.02]",
                p.dt
            )));
        }
        if p.substeps == 0 || p.pgs_iterations == 0 {
            return Err(bad(
                "physics.substeps and physics.pgs_iterations must be ≥ 1".into(),
            ));
        }
        if !(p.contact_hz > 0.0 && p.contact_damping_ratio > 0.0) {
            return Err(bad(
                "physics.contact_hz and contact_damping_ratio must be > 0".into(),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, o) in self.objects.iter().enumerate() {
            let at = format!("objects[{i}] (\"{}\")", o.name);
            if !names.insert(o.name.as_str()) {
                return Err(bad(format!("{at}: duplicate object name")));
            }
            let finite = o.position.iter().chain(o.rpy.iter()).all(|v| v.is_finite());
            if !finite {
                return Err(bad(format!("{at}: position/rpy must be finite")));
            }
            let dims_ok = match &o.shape {
                ObjectShape::Box { size } => size.iter().all(|&s| s > 0.0),
                ObjectShape::Cylinder { radius, height } => *radius > 0.0 && *height > 0.0,
                ObjectShape::Sphere { radius } => *radius > 0.0,
                ObjectShape::Container { size, wall } => {
                    size.iter().all(|&s| s > 0.0)
                        && *wall > 0.0
                        && 2.0 * wall < size[0].min(size[1])
                        && *wall < size[2]
                }
                ObjectShape::Table { size, top, leg } => {
                    size.iter().all(|&s| s > 0.0)
                        && *top > 0.0
                        && *top < size[2]
                        && *leg > 0.0
                        && 2.0 * leg < size[0].min(size[1])
                }
            };
            if !dims_ok {
                return Err(bad(format!(
                    "{at}: shape dimensions must be positive (container walls thinner than half the size)"
                )));
            }
            if !(o.fixed || o.mass > 0.0 && o.mass.is_finite()) {
                return Err(bad(format!("{at}: mass must be > 0 kg, got {}", o.mass)));
            }
            if !(o.friction >= 0.0 && (0.0..=1.0).contains(&o.restitution)) {
                return Err(bad(format!(
                    "{at}: friction must be ≥ 0 and restitution in [0, 1]"
                )));
            }
        }
        for (i, c) in self.cameras.iter().enumerate() {
            if c.width == 0 || c.height == 0 || !(c.fov_y_deg > 1.0 && c.fov_y_deg < 179.0) {
                return Err(bad(format!(
                    "cameras[{i}] (\"{}\"): width/height must be > 0 and fov_y_deg in (1, 179)",
                    c.name
                )));
            }
        }
        Ok(())
    }

    /// Index of an object by name.
    pub fn object(&self, name: &str) -> Option<&ObjectConfig> {
        self.objects.iter().find(|o| o.name == name)
    }
}

/// Locations of the shipped data directories, found relative to a workspace root.
#[derive(Debug, Clone)]
pub struct DataRoot {
    /// The directory holding `robots/`, `sim/`, `models/`.
    pub root: PathBuf,
}

impl DataRoot {
    /// Finds the data root: `$BICAMERAL_HOME`, else the first ancestor of the current directory
    /// that has both `robots/` and `sim/`.
    pub fn discover() -> Result<Self, SimError> {
        if let Some(home) = std::env::var_os("BICAMERAL_HOME") {
            return Ok(Self { root: home.into() });
        }
        let cwd = std::env::current_dir().map_err(|source| SimError::Io {
            path: PathBuf::from("."),
            source,
        })?;
        cwd.ancestors()
            .find(|d| d.join("robots").is_dir() && d.join("sim").is_dir())
            .map(|d| Self {
                root: d.to_path_buf(),
            })
            .ok_or(SimError::DataRootNotFound { start: cwd })
    }

    /// `sim/scenes/<name>.toml`, or `name` itself if it is a path to an existing file.
    pub fn scene_path(&self, name: &str) -> PathBuf {
        let p = PathBuf::from(name);
        if p.is_file() {
            return p;
        }
        self.root
            .join("sim")
            .join("scenes")
            .join(format!("{name}.toml"))
    }

    /// `sim/tasks/<name>.toml`, or `name` itself if it is a path to an existing file.
    pub fn task_path(&self, name: &str) -> PathBuf {
        let p = PathBuf::from(name);
        if p.is_file() {
            return p;
        }
        self.root
            .join("sim")
            .join("tasks")
            .join(format!("{name}.toml"))
    }

    /// `robots/<name>/embodiment.toml`, or `name` itself if it is a path to an existing file.
    pub fn embodiment_path(&self, name: &str) -> PathBuf {
        let p = PathBuf::from(name);
        if p.is_file() {
            return p;
        }
        self.root.join("robots").join(name).join("embodiment.toml")
    }
}
