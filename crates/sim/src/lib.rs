//! The bicameral simulator: a rapier3d world built from a robot description and a scene file,
//! PD-controlled multibody joints, physical (contact + friction) grasping, CPU cameras, and a
//! batch API running one world per worker thread; tasks as data with domain randomization,
//! scripted experts and an in-memory demonstration recorder.
//!
//! World frame: z up, x forward from the robot base, metres. Joint vectors follow the robot's
//! independent degrees of freedom ([`bicameral_robot::Kinematics::dof_names`], movable non-mimic joints in model order).

pub mod batch;
pub mod camera;
pub mod episode;
pub mod error;
pub mod expert;
pub mod monitor;
pub mod motion;
pub mod record;
pub mod render;
pub mod rng;
pub mod scene;
pub mod script;
pub mod setup;
pub mod task;
pub mod world;

pub use batch::{WorldBatch, par_map};
pub use camera::{CameraImage, CameraSpec, WorldCameras};
pub use episode::{EpisodeOptions, TaskEnv, run_episode};
pub use error::SimError;
pub use expert::{EpisodeOutcome, run_expert};
pub use monitor::{Ending, EpisodeMonitor, FailureCause, LIFT_M};
pub use record::{RecordedCamera, RecordedEpisode, RecordedFrame, Recorder};
pub use scene::{DataRoot, ObjectConfig, ObjectShape, SceneConfig};
pub use script::{Arm, ArmScript, top_down};
pub use setup::SimSetup;
pub use task::{EpisodeSetup, Split, SuccessSpec, TaskKind, TaskSpec};
pub use world::{BodyPart, ContactPoint, DriveGains, RobotDrive, SimObject, SimWorld};
