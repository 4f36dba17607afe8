//! The bicameral simulator: a rapier3d world built from a robot description and a scene file,
//! PD-controlled multibody joints, physical (contact + friction) grasping, CPU cameras, and a
//! batch API running one world per worker thread.
//!
//! World frame: z up, x forward from the robot base, metres. Joint vectors follow the robot's
//! independent degrees of freedom ([`bicameral_robot::Kinematics::dof_names`], movable non-mimic joints in model order).

pub mod batch;
pub mod camera;
pub mod error;
pub mod motion;
pub mod render;
pub mod rng;
pub mod scene;
pub mod script;
pub mod setup;
pub mod world;

pub use batch::{WorldBatch, par_map};
pub use camera::{CameraImage, CameraSpec, WorldCameras};
pub use error::SimError;
pub use scene::{DataRoot, ObjectConfig, ObjectShape, SceneConfig};
pub use script::{Arm, ArmScript, top_down};
pub use setup::SimSetup;
pub use world::{BodyPart, ContactPoint, DriveGains, RobotDrive, SimObject, SimWorld};
