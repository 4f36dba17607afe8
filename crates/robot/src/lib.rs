//! Robot descriptions for bicameral: URDF/MJCF loading into one validated kinematic-tree
//! [`RobotModel`], forward kinematics and Jacobians ([`Kinematics`]), damped-least-squares
//! inverse kinematics ([`IkSolver`]) and the per-robot [`Embodiment`] configuration
//! (joint groups, state/action layout, cameras, gains).
//!
//! Units are SI throughout (m, kg, s, rad, N, N·m); frames are z-up, right-handed.

#![forbid(unsafe_code)]

mod assemble;
pub mod embodiment;
pub mod error;
pub mod ik;
pub mod kinematics;
pub mod mesh;
pub mod mjcf;
pub mod model;
pub mod urdf;

pub use embodiment::{CameraSpec, Embodiment, Gains, Group, Intrinsics, Slice, SliceSpec};
pub use error::RobotError;
pub use ik::{IkConfig, IkMode, IkResult, IkSolver, Posture};
pub use kinematics::Kinematics;
pub use mesh::{MeshError, TriMesh};
pub use mjcf::{load_mjcf, parse_mjcf};
pub use model::{
    Geometry, Inertial, Joint, JointId, JointKind, JointLimits, Link, LinkId, Mimic, RobotModel,
    Shape,
};
pub use urdf::{load_urdf, parse_urdf};

/// Loads a robot description, choosing the parser by extension: `.urdf` → URDF,
/// `.xml`/`.mjcf` → MJCF.
pub fn load_robot(path: &std::path::Path) -> Result<RobotModel, RobotError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("urdf") => load_urdf(path),
        Some("xml" | "mjcf") => load_mjcf(path),
        _ => Err(RobotError::Unsupported {
            file: path.display().to_string(),
            element: "file name".to_owned(),
            problem: "unknown robot description format (expected .urdf, .xml or .mjcf)".to_owned(),
        }),
    }
}
