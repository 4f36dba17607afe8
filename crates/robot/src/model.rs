//! The kinematic-tree robot model shared by every loader (URDF, MJCF), by kinematics and by the
//! simulator. Units: metres, kilograms, radians, seconds, newtons (N·m for revolute efforts).
//! Frames: every pose is the child frame expressed in the parent frame (URDF convention), z up.

use nalgebra::{Isometry3, Matrix3, Unit, Vector3};
use serde::{Deserialize, Serialize};

/// Index of a link in [`RobotModel::links`].
pub type LinkId = usize;
/// Index of a joint in [`RobotModel::joints`].
pub type JointId = usize;

/// A robot as a tree of rigid links connected by joints. `links[root]` has no parent joint.
/// Joints are stored so that a parent link's joint always precedes its children's joints
/// (topological order), which makes a single forward pass enough for kinematics.
#[derive(Debug, Clone)]
pub struct RobotModel {
    /// Robot name from the description file.
    pub name: String,
    /// All links; `root` is the tree root (fixed to the world in this project).
    pub links: Vec<Link>,
    /// All joints, topologically ordered from the root.
    pub joints: Vec<Joint>,
    /// The root link.
    pub root: LinkId,
}

/// One rigid body of the robot.
#[derive(Debug, Clone)]
pub struct Link {
    /// Unique link name.
    pub name: String,
    /// Mass properties; `None` for massless frames (e.g. a camera mount).
    pub inertial: Option<Inertial>,
    /// Collision geometry in the link frame.
    pub collisions: Vec<Geometry>,
    /// Visual geometry in the link frame.
    pub visuals: Vec<Geometry>,
    /// The joint whose child is this link (`None` for the root).
    pub parent_joint: Option<JointId>,
}

/// Mass properties of a link.
#[derive(Debug, Clone, PartialEq)]
pub struct Inertial {
    /// Mass in kg (> 0).
    pub mass: f64,
    /// Centre-of-mass frame in the link frame; the inertia tensor is expressed in this frame.
    pub origin: Isometry3<f64>,
    /// Symmetric inertia tensor about the centre of mass, kg·m².
    pub inertia: Matrix3<f64>,
}

/// A shape placed in a link frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Geometry {
    /// Optional element name.
    pub name: Option<String>,
    /// Pose of the shape in the link frame.
    pub origin: Isometry3<f64>,
    /// The shape.
    pub shape: Shape,
    /// Linear RGBA in [0, 1], if the file gives one.
    pub rgba: Option<[f32; 4]>,
}

/// Primitive or mesh shape. Cylinders and capsules are aligned with their local z axis
/// (URDF convention), centred on the origin.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Box with full side lengths (m).
    Box { size: Vector3<f64> },
    /// Cylinder along z: radius and full length (m).
    Cylinder { radius: f64, length: f64 },
    /// Capsule along z: radius and length of the cylindrical part (m).
    Capsule { radius: f64, length: f64 },
    /// Sphere (m).
    Sphere { radius: f64 },
    /// Triangle mesh loaded from an STL or OBJ file, vertices already scaled (m).
    Mesh {
        /// Source file, for messages.
        path: String,
        /// Vertices in the shape frame.
        vertices: Vec<[f64; 3]>,
        /// Triangles as vertex indices (counter-clockwise seen from outside).
        triangles: Vec<[u32; 3]>,
    },
}

/// Joint type. Mimic joints keep their own type and carry a [`Mimic`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JointKind {
    /// Rotation about `axis` within limits.
    Revolute,
    /// Rotation about `axis` without position limits.
    Continuous,
    /// Translation along `axis` within limits.
    Prismatic,
    /// Rigid connection.
    Fixed,
}

impl JointKind {
    /// Whether the joint has one degree of freedom.
    pub fn is_movable(self) -> bool {
        !matches!(self, JointKind::Fixed)
    }
}

/// Joint limits. Positions in rad (m for prismatic), velocity in rad/s (m/s), effort in N·m (N).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JointLimits {
    /// Lower position limit (−∞ for continuous joints).
    pub lower: f64,
    /// Upper position limit (+∞ for continuous joints).
    pub upper: f64,
    /// Maximum speed (> 0).
    pub velocity: f64,
    /// Maximum effort (> 0).
    pub effort: f64,
}

/// `q_self = multiplier · q_leader + offset`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mimic {
    /// Leader joint.
    pub joint: JointId,
    /// Gain.
    pub multiplier: f64,
    /// Offset (rad or m).
    pub offset: f64,
}

/// A joint between a parent and a child link.
#[derive(Debug, Clone)]
pub struct Joint {
    /// Unique joint name.
    pub name: String,
    /// Type.
    pub kind: JointKind,
    /// Parent link.
    pub parent: LinkId,
    /// Child link.
    pub child: LinkId,
    /// Joint frame (= child link frame at q = 0) in the parent link frame.
    pub origin: Isometry3<f64>,
    /// Unit axis in the joint frame (ignored for fixed joints).
    pub axis: Unit<Vector3<f64>>,
    /// Limits (meaningful for movable joints).
    pub limits: JointLimits,
    /// Viscous damping (N·m·s/rad or N·s/m) and Coulomb friction (N·m or N) from the file.
    pub damping: f64,
    /// Coulomb friction.
    pub friction: f64,
    /// Mimic relation, if this joint follows another one.
    pub mimic: Option<Mimic>,
}

impl Joint {
    /// Transform of the child link frame in the parent link frame at position `q`.
    pub fn transform(&self, q: f64) -> Isometry3<f64> {
        match self.kind {
            JointKind::Fixed => self.origin,
            JointKind::Revolute | JointKind::Continuous => {
                self.origin * nalgebra::UnitQuaternion::from_axis_angle(&self.axis, q)
            }
            JointKind::Prismatic => {
                self.origin * nalgebra::Translation3::from(self.axis.into_inner() * q)
            }
        }
    }
}

impl RobotModel {
    /// Link index by name.
    pub fn link_id(&self, name: &str) -> Option<LinkId> {
        self.links.iter().position(|l| l.name == name)
    }

    /// Joint index by name.
    pub fn joint_id(&self, name: &str) -> Option<JointId> {
        self.joints.iter().position(|j| j.name == name)
    }

    /// Movable joints in model order (fixed joints skipped; mimic joints included).
    pub fn movable_joints(&self) -> impl Iterator<Item = JointId> + '_ {
        self.joints
            .iter()
            .enumerate()
            .filter(|(_, j)| j.kind.is_movable())
            .map(|(i, _)| i)
    }

    /// Joints from the root to `link` (inclusive of the link's parent joint), root first.
    pub fn chain_to(&self, link: LinkId) -> Vec<JointId> {
        let mut chain = Vec::new();
        let mut cur = link;
        while let Some(j) = self.links[cur].parent_joint {
            chain.push(j);
            cur = self.joints[j].parent;
        }
        chain.reverse();
        chain
    }

    /// Total mass of all links (kg).
    pub fn total_mass(&self) -> f64 {
        self.links
            .iter()
            .filter_map(|l| l.inertial.as_ref())
            .map(|i| i.mass)
            .sum()
    }
}
