//! The crate's error type. Every message names the file, the element (joint, link, geom, TOML
//! field path…) and the problem, so a user can fix a robot description without a debugger.

use std::path::PathBuf;

use thiserror::Error;

use crate::mesh::MeshError;

/// Everything that can go wrong while loading, validating or using a robot description.
#[derive(Debug, Error)]
pub enum RobotError {
    /// A file could not be read.
    #[error("{}: cannot read file: {source}", path.display())]
    Io {
        /// File that failed.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The XML or TOML text is malformed, or the parser rejected it.
    #[error("{file}: parse error: {message}")]
    Parse {
        /// File (or source label) being parsed.
        file: String,
        /// The parser's message.
        message: String,
    },

    /// A joint names a link that does not exist.
    #[error("{file}: {element} references unknown link \"{link}\"")]
    UnknownLink {
        /// File.
        file: String,
        /// Offending element, e.g. `joint "left_elbow"`.
        element: String,
        /// The missing link name.
        link: String,
    },

    /// Two elements of the same kind share a name.
    #[error("{file}: duplicate {kind} name \"{name}\"")]
    DuplicateName {
        /// File.
        file: String,
        /// `link`, `joint`, …
        kind: &'static str,
        /// The repeated name.
        name: String,
    },

    /// Every link is the child of some joint: the joints form a cycle.
    #[error(
        "{file}: no root link (every link is the child of a joint, so the joints form a cycle)"
    )]
    NoRoot {
        /// File.
        file: String,
    },

    /// More than one link has no parent joint: the description is a forest, not a tree.
    #[error(
        "{file}: multiple root links (links without a parent joint): {}",
        quoted_list(roots)
    )]
    MultipleRoots {
        /// File.
        file: String,
        /// Names of all parentless links.
        roots: Vec<String>,
    },

    /// A link is the child of more than one joint.
    #[error(
        "{file}: link \"{link}\" is the child of both joint \"{first}\" and joint \"{second}\""
    )]
    MultipleParents {
        /// File.
        file: String,
        /// The link.
        link: String,
        /// First parent joint.
        first: String,
        /// Second parent joint.
        second: String,
    },

    /// Some links are not reachable from the root: they hang off a cycle.
    #[error("{file}: kinematic cycle: link \"{link}\" is not reachable from root link \"{root}\"")]
    Cycle {
        /// File.
        file: String,
        /// A link on or below the cycle.
        link: String,
        /// The root link.
        root: String,
    },

    /// Joint limits are inconsistent.
    #[error("{file}: {element}: invalid limits: {problem}")]
    InvalidLimits {
        /// File.
        file: String,
        /// Offending element, e.g. `joint "left_elbow"`.
        element: String,
        /// What is wrong.
        problem: String,
    },

    /// A movable joint has a zero (or non-finite) axis.
    #[error("{file}: {element}: axis {axis:?} has zero length or is not finite")]
    ZeroAxis {
        /// File.
        file: String,
        /// Offending element.
        element: String,
        /// The axis as written.
        axis: [f64; 3],
    },

    /// Mass properties are physically impossible.
    #[error("{file}: {element}: invalid inertial: {problem}")]
    InvalidInertial {
        /// File.
        file: String,
        /// Offending element, e.g. `link "torso"`.
        element: String,
        /// What is wrong.
        problem: String,
    },

    /// A joint type this project does not model (floating, planar, spherical/ball, free).
    #[error(
        "{file}: {element}: unsupported joint type \"{kind}\" (only revolute, continuous, prismatic and fixed joints are supported)"
    )]
    UnsupportedJoint {
        /// File.
        file: String,
        /// Offending element.
        element: String,
        /// The type as written.
        kind: String,
    },

    /// A mimic relation names a joint that does not exist.
    #[error("{file}: {element} mimics unknown joint \"{leader}\"")]
    UnknownMimicLeader {
        /// File.
        file: String,
        /// The following joint.
        element: String,
        /// The missing leader name.
        leader: String,
    },

    /// A mimic relation that cannot be evaluated (leader fixed, itself a mimic, or self).
    #[error("{file}: {element}: invalid mimic: {problem}")]
    InvalidMimic {
        /// File.
        file: String,
        /// The following joint.
        element: String,
        /// What is wrong.
        problem: String,
    },

    /// A mesh file is missing or malformed.
    #[error("{file}: {element}: mesh \"{mesh}\": {source}")]
    Mesh {
        /// Robot description file.
        file: String,
        /// Element using the mesh, e.g. `<visual> #0 in link "hand"`.
        element: String,
        /// Mesh reference as written in the file.
        mesh: String,
        /// What went wrong.
        #[source]
        source: MeshError,
    },

    /// A geometry or other element uses a feature this loader does not support.
    #[error("{file}: {element}: unsupported: {problem}")]
    Unsupported {
        /// File.
        file: String,
        /// Offending element, e.g. `<geom> #3 in body "hand"`.
        element: String,
        /// What is unsupported.
        problem: String,
    },

    /// A numeric value is out of range (negative size, NaN pose, …).
    #[error("{file}: {element}: invalid value: {problem}")]
    InvalidValue {
        /// File.
        file: String,
        /// Offending element.
        element: String,
        /// What is wrong.
        problem: String,
    },

    /// An embodiment TOML file is inconsistent with itself or with the robot.
    #[error("{file}: {field}: {problem}")]
    Embodiment {
        /// The TOML file.
        file: String,
        /// Field path, e.g. `groups.left_arm[2]` or `cameras[0].link`.
        field: String,
        /// What is wrong.
        problem: String,
    },

    /// A link name given at run time (IK tip, camera link…) does not exist in the model.
    #[error("robot \"{robot}\" has no link \"{link}\"")]
    NoSuchLink {
        /// Robot name.
        robot: String,
        /// The missing link.
        link: String,
    },

    /// A joint name given at run time is not an independent degree of freedom (unknown, fixed,
    /// or a mimic joint).
    #[error(
        "robot \"{robot}\": \"{joint}\" is not an independent degree of freedom (unknown, fixed or mimic joint)"
    )]
    NoSuchDof {
        /// Robot name.
        robot: String,
        /// The joint name.
        joint: String,
    },

    /// An argument given at run time is invalid (IK configuration, vector length…).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

fn quoted_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}
