//! Format-independent half of loading: both the URDF and the MJCF loader describe links and
//! joints by name, and [`assemble`] checks names, tree structure, limits, axes, mimic relations
//! and mass properties, then builds the topologically ordered [`RobotModel`].

use std::collections::{HashMap, VecDeque};

use nalgebra::{Isometry3, Matrix3, Unit, Vector3};

use crate::error::RobotError;
use crate::model::{
    Geometry, Inertial, Joint, JointKind, JointLimits, Link, Mimic, RobotModel, Shape,
};

/// A link as read from the file.
pub(crate) struct RawLink {
    pub name: String,
    pub inertial: Option<Inertial>,
    pub collisions: Vec<Geometry>,
    pub visuals: Vec<Geometry>,
}

/// A mimic relation as read from the file (leader by name).
pub(crate) struct RawMimic {
    pub joint: String,
    pub multiplier: f64,
    pub offset: f64,
}

/// A joint as read from the file (links by name, axis not yet normalised).
pub(crate) struct RawJoint {
    pub name: String,
    pub kind: JointKind,
    pub parent: String,
    pub child: String,
    pub origin: Isometry3<f64>,
    pub axis: Vector3<f64>,
    pub limits: JointLimits,
    pub damping: f64,
    pub friction: f64,
    pub mimic: Option<RawMimic>,
}

/// Validates the raw description from `file` and builds the model.
pub(crate) fn assemble(
    file: &str,
    name: String,
    raw_links: Vec<RawLink>,
    raw_joints: Vec<RawJoint>,
) -> Result<RobotModel, RobotError> {
    let link_index = unique_index(file, "link", raw_links.iter().map(|l| l.name.as_str()))?;
    let joint_index = unique_index(file, "joint", raw_joints.iter().map(|j| j.name.as_str()))?;

    // Resolve link names and find each link's parent joint.
    let mut ends = Vec::with_capacity(raw_joints.len());
    let mut parent_of: Vec<Option<usize>> = vec![None; raw_links.len()];
    for (ji, j) in raw_joints.iter().enumerate() {
        let lookup = |link: &str| {
            link_index
                .get(link)
                .copied()
                .ok_or_else(|| RobotError::UnknownLink {
                    file: file.to_owned(),
                    element: joint_element(&j.name),
                    link: link.to_owned(),
                })
        };
        let (parent, child) = (lookup(&j.parent)?, lookup(&j.child)?);
        if let Some(first) = parent_of[child] {
            return Err(RobotError::MultipleParents {
                file: file.to_owned(),
                link: j.child.clone(),
                first: raw_joints[first].name.clone(),
                second: j.name.clone(),
            });
        }
        parent_of[child] = Some(ji);
        ends.push((parent, child));
    }

    let roots: Vec<usize> = (0..raw_links.len())
        .filter(|&l| parent_of[l].is_none())
        .collect();
    let root = match roots.as_slice() {
        [] => {
            return Err(RobotError::NoRoot {
                file: file.to_owned(),
            });
        }
        [root] => *root,
        _ => {
            return Err(RobotError::MultipleRoots {
                file: file.to_owned(),
                roots: roots.iter().map(|&l| raw_links[l].name.clone()).collect(),
            });
        }
    };

    // Breadth-first from the root, children in declaration order.
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); raw_links.len()];
    for (ji, &(parent, _)) in ends.iter().enumerate() {
        children[parent].push(ji);
    }
    let mut order = Vec::with_capacity(raw_joints.len());
    let mut reached = vec![false; raw_links.len()];
    reached[root] = true;
    let mut queue = VecDeque::from([root]);
    while let Some(link) = queue.pop_front() {
        for &ji in &children[link] {
            let child = ends[ji].1;
            if !reached[child] {
                reached[child] = true;
                order.push(ji);
                queue.push_back(child);
            }
        }
    }
    if let Some(unreached) = reached.iter().position(|r| !r) {
        return Err(RobotError::Cycle {
            file: file.to_owned(),
            link: raw_links[unreached].name.clone(),
            root: raw_links[root].name.clone(),
        });
    }

    // `order[new] = old`; invert it to renumber mimic leaders.
    let mut new_id = vec![0; raw_joints.len()];
    for (new, &old) in order.iter().enumerate() {
        new_id[old] = new;
    }
    let mut sorted: Vec<(usize, RawJoint)> = raw_joints.into_iter().enumerate().collect();
    sorted.sort_by_key(|&(old, _)| new_id[old]);
    let mut joints = Vec::with_capacity(sorted.len());
    let mut raw_mimics = Vec::with_capacity(sorted.len());
    for (old, raw) in sorted {
        let (parent, child) = ends[old];
        let (joint, mimic) = check_joint(file, raw, parent, child)?;
        joints.push(joint);
        raw_mimics.push(mimic);
    }
    resolve_mimics(file, &mut joints, raw_mimics, |name| {
        joint_index.get(name).map(|&old| new_id[old])
    })?;

    let mut links = Vec::with_capacity(raw_links.len());
    for raw in raw_links {
        if let Some(inertial) = &raw.inertial {
            check_inertial(file, &link_element(&raw.name), inertial)?;
        }
        links.push(Link {
            name: raw.name,
            inertial: raw.inertial,
            collisions: raw.collisions,
            visuals: raw.visuals,
            parent_joint: None,
        });
    }
    for (ji, joint) in joints.iter().enumerate() {
        links[joint.child].parent_joint = Some(ji);
    }

    Ok(RobotModel {
        name,
        links,
        joints,
        root,
    })
}

/// `joint "name"`, as used in error messages.
pub(crate) fn joint_element(name: &str) -> String {
    format!("joint \"{name}\"")
}

/// `link "name"`, as used in error messages.
pub(crate) fn link_element(name: &str) -> String {
    format!("link \"{name}\"")
}

/// Maps names to indices, rejecting duplicates.
fn unique_index<'a>(
    file: &str,
    kind: &'static str,
    names: impl Iterator<Item = &'a str>,
) -> Result<HashMap<String, usize>, RobotError> {
    let mut index = HashMap::new();
    for (i, name) in names.enumerate() {
        if index.insert(name.to_owned(), i).is_some() {
            return Err(RobotError::DuplicateName {
                file: file.to_owned(),
                kind,
                name: name.to_owned(),
            });
        }
    }
    Ok(index)
}

/// Checks origin, axis and limits of one joint and converts it (mimic still unresolved).
fn check_joint(
    file: &str,
    raw: RawJoint,
    parent: usize,
    child: usize,
) -> Result<(Joint, Option<RawMimic>), RobotError> {
    let element = joint_element(&raw.name);
    if !isometry_is_finite(&raw.origin) {
        return Err(RobotError::InvalidValue {
            file: file.to_owned(),
            element,
            problem: "origin is not finite".to_owned(),
        });
    }
    let axis = if raw.kind.is_movable() {
        let norm = raw.axis.norm();
        if !(norm.is_finite() && norm > 1e-12) {
            return Err(RobotError::ZeroAxis {
                file: file.to_owned(),
                element,
                axis: raw.axis.into(),
            });
        }
        Unit::new_unchecked(raw.axis / norm)
    } else {
        Vector3::x_axis()
    };
    if raw.kind.is_movable() {
        check_limits(file, &element, raw.kind, &raw.limits)?;
    }
    if !(raw.damping.is_finite()
        && raw.damping >= 0.0
        && raw.friction.is_finite()
        && raw.friction >= 0.0)
    {
        return Err(RobotError::InvalidValue {
            file: file.to_owned(),
            element,
            problem: format!(
                "damping ({}) and friction ({}) must be finite and >= 0",
                raw.damping, raw.friction
            ),
        });
    }
    if let Some(m) = &raw.mimic
        && !(m.multiplier.is_finite() && m.offset.is_finite())
    {
        return Err(RobotError::InvalidMimic {
            file: file.to_owned(),
            element,
            problem: format!(
                "multiplier ({}) and offset ({}) must be finite",
                m.multiplier, m.offset
            ),
        });
    }
    let joint = Joint {
        name: raw.name,
        kind: raw.kind,
        parent,
        child,
        origin: raw.origin,
        axis,
        limits: raw.limits,
        damping: raw.damping,
        friction: raw.friction,
        mimic: None,
    };
    Ok((joint, raw.mimic))
}

fn check_limits(
    file: &str,
    element: &str,
    kind: JointKind,
    limits: &JointLimits,
) -> Result<(), RobotError> {
    let JointLimits {
        lower,
        upper,
        velocity,
        effort,
    } = *limits;
    let problem = if lower.is_nan() || upper.is_nan() {
        Some(format!(
            "lower ({lower}) and upper ({upper}) must be numbers"
        ))
    } else if kind != JointKind::Continuous && !(lower.is_finite() && upper.is_finite()) {
        Some(format!(
            "lower ({lower}) and upper ({upper}) must be finite for a {kind:?} joint"
        ))
    } else if lower > upper {
        Some(format!("lower ({lower}) > upper ({upper})"))
    } else if !is_positive(velocity) {
        Some(format!(
            "velocity must be > 0 (got {velocity}); give <limit velocity=…>"
        ))
    } else if !is_positive(effort) {
        Some(format!(
            "effort must be > 0 (got {effort}); give <limit effort=…>"
        ))
    } else {
        None
    };
    match problem {
        Some(problem) => Err(RobotError::InvalidLimits {
            file: file.to_owned(),
            element: element.to_owned(),
            problem,
        }),
        None => Ok(()),
    }
}

/// Resolves mimic leaders by name and checks that each relation can be evaluated from the
/// independent joint positions (leader movable, not itself a mimic, not the joint itself).
fn resolve_mimics(
    file: &str,
    joints: &mut [Joint],
    raw_mimics: Vec<Option<RawMimic>>,
    leader_id: impl Fn(&str) -> Option<usize>,
) -> Result<(), RobotError> {
    let is_follower: Vec<bool> = raw_mimics.iter().map(Option::is_some).collect();
    for (ji, raw) in raw_mimics.into_iter().enumerate() {
        let Some(raw) = raw else {
            continue;
        };
        let element = joint_element(&joints[ji].name);
        let Some(leader) = leader_id(&raw.joint) else {
            return Err(RobotError::UnknownMimicLeader {
                file: file.to_owned(),
                element,
                leader: raw.joint,
            });
        };
        let problem = if leader == ji {
            Some("a joint cannot mimic itself".to_owned())
        } else if !joints[ji].kind.is_movable() {
            Some("a fixed joint cannot mimic another joint".to_owned())
        } else if !joints[leader].kind.is_movable() {
            Some(format!("leader joint \"{}\" is fixed", raw.joint))
        } else if is_follower[leader] {
            Some(format!(
                "leader joint \"{}\" is itself a mimic joint (chains are not supported)",
                raw.joint
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(RobotError::InvalidMimic {
                file: file.to_owned(),
                element,
                problem,
            });
        }
        joints[ji].mimic = Some(Mimic {
            joint: leader,
            multiplier: raw.multiplier,
            offset: raw.offset,
        });
    }
    Ok(())
}

/// Checks mass > 0, a finite pose, and a symmetric positive-definite inertia tensor. Inertias
/// that violate the triangle inequality are physically impossible but common in exported
/// files; they only produce a warning.
pub(crate) fn check_inertial(
    file: &str,
    element: &str,
    inertial: &Inertial,
) -> Result<(), RobotError> {
    let invalid = |problem: String| RobotError::InvalidInertial {
        file: file.to_owned(),
        element: element.to_owned(),
        problem,
    };
    if !(inertial.mass.is_finite() && inertial.mass > 0.0) {
        return Err(invalid(format!(
            "mass must be finite and > 0 kg (got {})",
            inertial.mass
        )));
    }
    if !isometry_is_finite(&inertial.origin) {
        return Err(invalid("origin is not finite".to_owned()));
    }
    let i = &inertial.inertia;
    if i.iter().any(|v| !v.is_finite()) {
        return Err(invalid(format!("inertia has non-finite entries: {i:?}")));
    }
    if (i - i.transpose()).abs().max() > 1e-9 * i.abs().max() {
        return Err(invalid("inertia tensor is not symmetric".to_owned()));
    }
    let eig = i.symmetric_eigenvalues();
    if eig.iter().any(|&e| e <= 0.0) {
        return Err(invalid(format!(
            "inertia tensor is not positive definite (principal moments {:?} kg·m²)",
            eig.as_slice()
        )));
    }
    let (a, b, c) = (eig[0], eig[1], eig[2]);
    let slack = 1e-9 * (a + b + c);
    if a + b + slack < c || a + c + slack < b || b + c + slack < a {
        tracing::warn!(
            file,
            element,
            "principal moments {a:.3e}, {b:.3e}, {c:.3e} kg·m² violate the triangle inequality"
        );
    }
    Ok(())
}

/// Builds a symmetric inertia tensor from its six independent entries (kg·m²).
pub(crate) fn inertia_matrix(
    ixx: f64,
    iyy: f64,
    izz: f64,
    ixy: f64,
    ixz: f64,
    iyz: f64,
) -> Matrix3<f64> {
    Matrix3::new(ixx, ixy, ixz, ixy, iyy, iyz, ixz, iyz, izz)
}

/// Checks that a shape's dimensions are finite and positive and its pose finite.
pub(crate) fn check_geometry(
    file: &str,
    element: &str,
    geometry: &Geometry,
) -> Result<(), RobotError> {
    let bad = |problem: String| RobotError::InvalidValue {
        file: file.to_owned(),
        element: element.to_owned(),
        problem,
    };
    if !isometry_is_finite(&geometry.origin) {
        return Err(bad("origin is not finite".to_owned()));
    }
    let positive = |v: f64| v.is_finite() && v > 0.0;
    match &geometry.shape {
        Shape::Box { size } if !size.iter().all(|&s| positive(s)) => {
            Err(bad(format!("box size {:?} must be > 0", size.as_slice())))
        }
        Shape::Cylinder { radius, length } if !(positive(*radius) && positive(*length)) => {
            Err(bad(format!(
                "cylinder radius {radius} and length {length} must be > 0"
            )))
        }
        Shape::Capsule { radius, length }
            if !(positive(*radius) && length.is_finite() && *length >= 0.0) =>
        {
            Err(bad(format!(
                "capsule radius {radius} must be > 0 and length {length} >= 0"
            )))
        }
        Shape::Sphere { radius } if !positive(*radius) => {
            Err(bad(format!("sphere radius {radius} must be > 0")))
        }
        Shape::Mesh { vertices, .. } if vertices.iter().flatten().any(|c| !c.is_finite()) => {
            Err(bad("mesh has non-finite vertices".to_owned()))
        }
        _ => Ok(()),
    }
}

/// `v > 0`, false for NaN.
pub(crate) fn is_positive(v: f64) -> bool {
    v > 0.0
}

fn isometry_is_finite(iso: &Isometry3<f64>) -> bool {
    iso.translation.vector.iter().all(|v| v.is_finite())
        && iso.rotation.coords.iter().all(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inertial(mass: f64, diagonal: [f64; 3]) -> Inertial {
        Inertial {
            mass,
            origin: Isometry3::identity(),
            inertia: Matrix3::from_diagonal(&Vector3::from(diagonal)),
        }
    }

    #[test]
    fn inertial_checks() {
        assert!(check_inertial("f", "link \"a\"", &inertial(1.0, [1.0, 1.0, 1.0])).is_ok());
        // Violates the triangle inequality: accepted with a warning.
        assert!(check_inertial("f", "link \"a\"", &inertial(1.0, [1.0, 1.0, 3.0])).is_ok());
        for bad in [
            inertial(0.0, [1.0, 1.0, 1.0]),
            inertial(f64::NAN, [1.0, 1.0, 1.0]),
            inertial(1.0, [1.0, -1.0, 1.0]),
            inertial(1.0, [1.0, f64::NAN, 1.0]),
        ] {
            let err = check_inertial("f.urdf", "link \"a\"", &bad).map_err(|e| e.to_string());
            assert!(err.is_err_and(|m| m.contains("f.urdf: link \"a\"")));
        }
        let mut asymmetric = inertial(1.0, [1.0, 1.0, 1.0]);
        asymmetric.inertia[(0, 1)] = 0.1;
        assert!(check_inertial("f", "link \"a\"", &asymmetric).is_err());
    }
}
