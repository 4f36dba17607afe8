//! Forward kinematics and geometric Jacobians over the independent degrees of freedom.
//!
//! The configuration vector `q` holds one entry per *independent* DoF: the movable joints that
//! do not mimic another joint, in model (topological) order — see [`Kinematics::dof_names`].
//! Mimic joints are computed from their leader (`q_m = multiplier·q_leader + offset`) and their
//! Jacobian contributions are folded into the leader's column.
//!
//! All poses are link frames expressed in the world frame; the root link sits at the base pose
//! (identity unless given). Positions in m, angles in rad.

use nalgebra::{Isometry3, Matrix6xX, Point3, Vector3};

use crate::error::RobotError;
use crate::model::{Joint, JointId, JointKind, JointLimits, LinkId, RobotModel};

/// How a joint's position is obtained from the DoF vector.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Coord {
    /// Fixed joint: no position.
    Fixed,
    /// Independent DoF with this index in `q`.
    Dof(usize),
    /// `multiplier · q[dof] + offset`.
    Mimic {
        dof: usize,
        multiplier: f64,
        offset: f64,
    },
}

/// Precomputed kinematic structure of a [`RobotModel`]. Cheap to clone; owns its data.
#[derive(Debug, Clone)]
pub struct Kinematics {
    robot: String,
    joints: Vec<Joint>,
    coords: Vec<Coord>,
    dof_joints: Vec<JointId>,
    dof_names: Vec<String>,
    dof_limits: Vec<JointLimits>,
    link_names: Vec<String>,
    parent_joint: Vec<Option<JointId>>,
    root: LinkId,
}

impl Kinematics {
    /// Builds the DoF layout of `model`. The model must come from a loader (validated: mimic
    /// leaders are independent movable joints, joints topologically ordered).
    pub fn new(model: &RobotModel) -> Self {
        let mut dof_of_joint = vec![None; model.joints.len()];
        let mut dof_joints = Vec::new();
        for (ji, joint) in model.joints.iter().enumerate() {
            if joint.kind.is_movable() && joint.mimic.is_none() {
                dof_of_joint[ji] = Some(dof_joints.len());
                dof_joints.push(ji);
            }
        }
        let coords = model
            .joints
            .iter()
            .enumerate()
            .map(|(ji, joint)| match (dof_of_joint[ji], &joint.mimic) {
                (Some(dof), _) => Coord::Dof(dof),
                (None, Some(m)) if joint.kind.is_movable() => match dof_of_joint[m.joint] {
                    Some(dof) => Coord::Mimic {
                        dof,
                        multiplier: m.multiplier,
                        offset: m.offset,
                    },
                    // Loaders reject mimics of non-DoFs; a hand-built one gets a frozen joint.
                    None => Coord::Fixed,
                },
                _ => Coord::Fixed,
            })
            .collect();
        Self {
            robot: model.name.clone(),
            joints: model.joints.clone(),
            coords,
            dof_names: dof_joints
                .iter()
                .map(|&j| model.joints[j].name.clone())
                .collect(),
            dof_limits: dof_joints.iter().map(|&j| model.joints[j].limits).collect(),
            dof_joints,
            link_names: model.links.iter().map(|l| l.name.clone()).collect(),
            parent_joint: model.links.iter().map(|l| l.parent_joint).collect(),
            root: model.root,
        }
    }

    /// Robot name.
    pub fn robot_name(&self) -> &str {
        &self.robot
    }

    /// Number of independent DoFs (length of `q`).
    pub fn dof_count(&self) -> usize {
        self.dof_joints.len()
    }

    /// Names of the independent DoFs, in `q` order.
    pub fn dof_names(&self) -> &[String] {
        &self.dof_names
    }

    /// Model joint index of each DoF.
    pub fn dof_joints(&self) -> &[JointId] {
        &self.dof_joints
    }

    /// Limits of each DoF (rad or m; ±∞ for continuous joints).
    pub fn dof_limits(&self) -> &[JointLimits] {
        &self.dof_limits
    }

    /// Index in `q` of the DoF named `name`.
    pub fn dof_index(&self, name: &str) -> Option<usize> {
        self.dof_names.iter().position(|n| n == name)
    }

    /// Like [`Self::dof_index`], with an error naming the robot and joint.
    pub fn require_dof(&self, name: &str) -> Result<usize, RobotError> {
        self.dof_index(name).ok_or_else(|| RobotError::NoSuchDof {
            robot: self.robot.clone(),
            joint: name.to_owned(),
        })
    }

    /// Number of links (length of [`Self::fk`]'s result).
    pub fn link_count(&self) -> usize {
        self.link_names.len()
    }

    /// Link names, indexed by [`LinkId`].
    pub fn link_names(&self) -> &[String] {
        &self.link_names
    }

    /// Link index by name.
    pub fn link_id(&self, name: &str) -> Option<LinkId> {
        self.link_names.iter().position(|n| n == name)
    }

    /// Like [`Self::link_id`], with an error naming the robot and link.
    pub fn require_link(&self, name: &str) -> Result<LinkId, RobotError> {
        self.link_id(name).ok_or_else(|| RobotError::NoSuchLink {
            robot: self.robot.clone(),
            link: name.to_owned(),
        })
    }

    /// Position of every model joint (rad or m; 0 for fixed joints), mimic joints included.
    ///
    /// # Panics
    /// If `q.len() != self.dof_count()`.
    pub fn joint_positions(&self, q: &[f64]) -> Vec<f64> {
        self.check_len(q);
        (0..self.joints.len())
            .map(|ji| self.joint_position(q, ji))
            .collect()
    }

    /// DoF indices that move `link`: the DoFs on its chain from the root, plus the leaders of
    /// mimic joints on that chain; sorted, without duplicates.
    pub fn chain_dofs(&self, link: LinkId) -> Vec<usize> {
        let mut dofs: Vec<usize> = self
            .chain_joints(link)
            .filter_map(|ji| match self.coords[ji] {
                Coord::Fixed => None,
                Coord::Dof(dof) | Coord::Mimic { dof, .. } => Some(dof),
            })
            .collect();
        dofs.sort_unstable();
        dofs.dedup();
        dofs
    }

    /// World pose of every link with the root at the identity.
    ///
    /// # Panics
    /// If `q.len() != self.dof_count()`.
    pub fn fk(&self, q: &[f64]) -> Vec<Isometry3<f64>> {
        self.fk_with_base(&Isometry3::identity(), q)
    }

    /// World pose of every link with the root link at `base` (world frame).
    ///
    /// # Panics
    /// If `q.len() != self.dof_count()`.
    pub fn fk_with_base(&self, base: &Isometry3<f64>, q: &[f64]) -> Vec<Isometry3<f64>> {
        let mut poses = Vec::new();
        self.fk_into(base, q, &mut poses);
        poses
    }

    /// [`Self::fk_with_base`] into a reused buffer (resized to [`Self::link_count`]).
    ///
    /// # Panics
    /// If `q.len() != self.dof_count()`.
    pub fn fk_into(&self, base: &Isometry3<f64>, q: &[f64], poses: &mut Vec<Isometry3<f64>>) {
        self.check_len(q);
        poses.clear();
        poses.resize(self.link_names.len(), Isometry3::identity());
        poses[self.root] = *base;
        // Topological order: the parent's pose is final before any child joint is visited.
        for (ji, joint) in self.joints.iter().enumerate() {
            poses[joint.child] = poses[joint.parent] * joint.transform(self.joint_position(q, ji));
        }
    }

    /// World pose of one link (root at the identity), walking only its chain.
    ///
    /// # Panics
    /// If `q.len() != self.dof_count()` or `link` is out of range.
    pub fn link_pose(&self, q: &[f64], link: LinkId) -> Isometry3<f64> {
        self.check_len(q);
        let mut pose = Isometry3::identity();
        let mut cur = link;
        while let Some(ji) = self.parent_joint[cur] {
            let joint = &self.joints[ji];
            pose = joint.transform(self.joint_position(q, ji)) * pose;
            cur = joint.parent;
        }
        pose
    }

    /// Geometric Jacobian of the point `point_in_link` (m, link frame) rigidly attached to
    /// `link`, with respect to all independent DoFs (root at the identity). Rows 0..3: linear
    /// velocity of the point (world frame, m/s per unit DoF velocity); rows 3..6: angular
    /// velocity of the link (world frame, rad/s).
    ///
    /// # Panics
    /// If `q.len() != self.dof_count()` or `link` is out of range.
    pub fn jacobian(
        &self,
        q: &[f64],
        link: LinkId,
        point_in_link: &Vector3<f64>,
    ) -> Matrix6xX<f64> {
        let poses = self.fk(q);
        let mut jac = Matrix6xX::zeros(self.dof_count());
        self.jacobian_into(&poses, link, point_in_link, &mut jac);
        jac
    }

    /// [`Self::jacobian`] from link poses already computed by [`Self::fk_into`] (any base
    /// pose: the result is in the same world frame as `poses`), written into `jac`, which must
    /// have [`Self::dof_count`] columns.
    ///
    /// # Panics
    /// If `poses` or `jac` have the wrong size, or `link` is out of range.
    pub fn jacobian_into(
        &self,
        poses: &[Isometry3<f64>],
        link: LinkId,
        point_in_link: &Vector3<f64>,
        jac: &mut Matrix6xX<f64>,
    ) {
        assert_eq!(
            poses.len(),
            self.link_names.len(),
            "one pose per link expected"
        );
        assert_eq!(
            jac.ncols(),
            self.dof_count(),
            "one Jacobian column per DoF expected"
        );
        jac.fill(0.0);
        let point = poses[link] * Point3::from(*point_in_link);
        for ji in self.chain_joints(link) {
            let (dof, gain) = match self.coords[ji] {
                Coord::Fixed => continue,
                Coord::Dof(dof) => (dof, 1.0),
                Coord::Mimic {
                    dof, multiplier, ..
                } => (dof, multiplier),
            };
            let joint = &self.joints[ji];
            // The child frame rotates/translates about the joint axis, which is invariant
            // under its own motion: the world axis is the child rotation applied to it, and
            // for revolute joints the child origin lies on the axis.
            let child = &poses[joint.child];
            let axis = child.rotation * joint.axis.into_inner();
            let (linear, angular) = match joint.kind {
                JointKind::Revolute | JointKind::Continuous => {
                    let lever = point.coords - child.translation.vector;
                    (axis.cross(&lever), axis)
                }
                JointKind::Prismatic => (axis, Vector3::zeros()),
                JointKind::Fixed => continue,
            };
            let mut column = jac.column_mut(dof);
            column.fixed_rows_mut::<3>(0).axpy(gain, &linear, 1.0);
            column.fixed_rows_mut::<3>(3).axpy(gain, &angular, 1.0);
        }
    }

    fn joint_position(&self, q: &[f64], ji: JointId) -> f64 {
        match self.coords[ji] {
            Coord::Fixed => 0.0,
            Coord::Dof(dof) => q[dof],
            Coord::Mimic {
                dof,
                multiplier,
                offset,
            } => multiplier * q[dof] + offset,
        }
    }

    /// Joints from `link` up to the root (link's parent joint first).
    fn chain_joints(&self, link: LinkId) -> impl Iterator<Item = JointId> + '_ {
        std::iter::successors(self.parent_joint[link], |&ji| {
            self.parent_joint[self.joints[ji].parent]
        })
    }

    fn check_len(&self, q: &[f64]) {
        assert_eq!(
            q.len(),
            self.dof_count(),
            "robot \"{}\": q has {} entries, expected one per DoF ({})",
            self.robot,
            q.len(),
            self.dof_count()
        );
    }
}
