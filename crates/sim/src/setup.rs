//! Loading a scene with its robot: scene TOML → embodiment TOML → robot description, checked
//! against each other, ready to build worlds and cameras.

use std::sync::Arc;

use bicameral_robot::{Embodiment, Kinematics, RobotModel};

use crate::camera::{CameraSpec, WorldCameras};
use crate::error::SimError;
use crate::render::Intrinsics;
use crate::scene::{DataRoot, SceneConfig};
use crate::world::{DriveGains, RobotDrive, SimWorld};

/// A scene plus its robot, validated.
#[derive(Debug, Clone)]
pub struct SimSetup {
    /// The scene.
    pub scene: SceneConfig,
    /// The robot's embodiment.
    pub embodiment: Embodiment,
    /// The robot's kinematic tree.
    pub model: Arc<RobotModel>,
    /// Kinematics over the robot's independent DoFs.
    pub kin: Kinematics,
    /// PD gains and initial pose per DoF.
    pub drive: RobotDrive,
}

impl SimSetup {
    /// Loads scene `scene` (a name under `sim/scenes/` or a path) with the scene's robot, or
    /// `robot` (a name under `robots/` or a path to an embodiment.toml) if given.
    pub fn load(root: &DataRoot, scene: &str, robot: Option<&str>) -> Result<Self, SimError> {
        let scene = SceneConfig::load(&root.scene_path(scene))?;
        let emb_path = root.embodiment_path(robot.unwrap_or(&scene.robot));
        let embodiment = Embodiment::load(&emb_path)?;
        let model = embodiment.load_robot()?;
        embodiment.validate(&model)?;
        Self::from_parts(scene, embodiment, model)
    }

    /// Assembles a setup from already loaded parts.
    pub fn from_parts(
        scene: SceneConfig,
        embodiment: Embodiment,
        model: RobotModel,
    ) -> Result<Self, SimError> {
        let kin = Kinematics::new(&model);
        let initial = embodiment.default_q(&kin)?;
        let gains = kin
            .dof_names()
            .iter()
            .map(|name| {
                embodiment
                    .gains_for_joint(name)
                    .map(|g| DriveGains { kp: g.kp, kd: g.kd })
                    .ok_or_else(|| SimError::Config {
                        path: embodiment.source.clone(),
                        message: format!(
                            "gains: no gains for joint \"{name}\" (add its group to [gains])"
                        ),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            scene,
            embodiment,
            model: Arc::new(model),
            kin,
            drive: RobotDrive { gains, initial },
        })
    }

    /// Builds a fresh world in the default pose.
    pub fn world(&self) -> Result<SimWorld, SimError> {
        let world = SimWorld::new(self.model.clone(), &self.drive, &self.scene)?;
        if world.dof_names() != self.kin.dof_names() {
            return Err(SimError::Model {
                robot: self.model.name.clone(),
                message: "simulator and kinematics disagree on the DoF order".into(),
            });
        }
        Ok(world)
    }

    /// The robot's cameras (embodiment order) followed by the scene's fixed cameras.
    pub fn camera_specs(&self) -> Result<Vec<CameraSpec>, SimError> {
        let mut specs = Vec::new();
        for c in &self.embodiment.cameras {
            let link = self
                .model
                .link_id(&c.link)
                .ok_or_else(|| SimError::Config {
                    path: self.embodiment.source.clone(),
                    message: format!("cameras \"{}\": unknown link \"{}\"", c.name, c.link),
                })?;
            let k = c.intrinsics();
            specs.push(CameraSpec {
                name: c.name.clone(),
                link: Some(link),
                mount: c.pose_in_link(),
                intrinsics: Intrinsics {
                    width: c.width,
                    height: c.height,
                    fx: k.fx as f32,
                    fy: k.fy as f32,
                    cx: k.cx as f32,
                    cy: k.cy as f32,
                    near: c.near as f32,
                    far: c.far as f32,
                },
            });
        }
        for c in &self.scene.cameras {
            specs.push(CameraSpec::from_scene(c).ok_or_else(|| SimError::Config {
                path: "scene".into(),
                message: format!("cameras \"{}\": looks straight up or down", c.name),
            })?);
        }
        Ok(specs)
    }

    /// Camera renderer for `world` with every camera of [`Self::camera_specs`].
    pub fn cameras(&self, world: &SimWorld) -> Result<WorldCameras, SimError> {
        Ok(WorldCameras::new(
            world,
            self.camera_specs()?,
            &self.scene.light,
        ))
    }
}
