//! URDF loading via `urdf-rs`, with validation (see [`RobotError`]) and mesh loading.
//!
//! Conventions: `rpy` is fixed-axis roll-pitch-yaw, `R = Rz(yaw)·Ry(pitch)·Rx(roll)`;
//! continuous joints get ±∞ position limits; a link without `<inertial>` (mass 0 and zero
//! inertia, which is how `urdf-rs` reports a missing element) is massless (`inertial: None`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use nalgebra::{Isometry3, Translation3, UnitQuaternion, Vector3};

use crate::assemble::{
    RawJoint, RawLink, RawMimic, assemble, check_geometry, inertia_matrix, joint_element,
};
use crate::error::RobotError;
use crate::mesh::{MeshError, load_mesh};
use crate::model::{Geometry, Inertial, JointKind, JointLimits, RobotModel, Shape};

/// Loads and validates a URDF file. Relative mesh paths resolve against the file's directory.
pub fn load_urdf(path: &Path) -> Result<RobotModel, RobotError> {
    let xml = std::fs::read_to_string(path).map_err(|source| RobotError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_urdf(&xml, &path.display().to_string(), path.parent())
}

/// Parses and validates URDF text. `source` names the text in error messages (usually the
/// file path); `base_dir` is where relative and `package://` mesh paths resolve (the current
/// directory when `None`).
pub fn parse_urdf(
    xml: &str,
    source: &str,
    base_dir: Option<&Path>,
) -> Result<RobotModel, RobotError> {
    let robot = urdf_rs::read_from_string(xml).map_err(|e| RobotError::Parse {
        file: source.to_owned(),
        message: format!("invalid URDF XML: {e}"),
    })?;
    let base_dir = base_dir.unwrap_or(Path::new(""));

    // Named colours: robot-level materials, then any named material defined inline in a visual
    // (URDF lets later visuals refer to it by name alone).
    let mut colours: HashMap<&str, [f32; 4]> = HashMap::new();
    let inline = robot
        .links
        .iter()
        .flat_map(|l| &l.visual)
        .filter_map(|v| v.material.as_ref());
    for material in robot.materials.iter().chain(inline) {
        if let Some(color) = &material.color {
            colours
                .entry(material.name.as_str())
                .or_insert_with(|| rgba(&color.rgba));
        }
    }

    let mut links = Vec::with_capacity(robot.links.len());
    for link in &robot.links {
        let mut visuals = Vec::with_capacity(link.visual.len());
        for (i, v) in link.visual.iter().enumerate() {
            let element = format!("<visual> #{i} in link \"{}\"", link.name);
            let colour = v.material.as_ref().and_then(|m| {
                m.color
                    .as_ref()
                    .map(|c| rgba(&c.rgba))
                    .or_else(|| colours.get(m.name.as_str()).copied())
            });
            let geometry = Geometry {
                name: v.name.clone(),
                origin: pose(&v.origin),
                shape: shape(&v.geometry, source, &element, base_dir)?,
                rgba: colour,
            };
            check_geometry(source, &element, &geometry)?;
            visuals.push(geometry);
        }
        let mut collisions = Vec::with_capacity(link.collision.len());
        for (i, c) in link.collision.iter().enumerate() {
            let element = format!("<collision> #{i} in link \"{}\"", link.name);
            let geometry = Geometry {
                name: c.name.clone(),
                origin: pose(&c.origin),
                shape: shape(&c.geometry, source, &element, base_dir)?,
                rgba: None,
            };
            check_geometry(source, &element, &geometry)?;
            collisions.push(geometry);
        }
        links.push(RawLink {
            name: link.name.clone(),
            inertial: inertial(&link.inertial),
            collisions,
            visuals,
        });
    }

    let mut joints = Vec::with_capacity(robot.joints.len());
    for j in &robot.joints {
        let kind = match j.joint_type {
            urdf_rs::JointType::Revolute => JointKind::Revolute,
            urdf_rs::JointType::Continuous => JointKind::Continuous,
            urdf_rs::JointType::Prismatic => JointKind::Prismatic,
            urdf_rs::JointType::Fixed => JointKind::Fixed,
            ref other => {
                return Err(RobotError::UnsupportedJoint {
                    file: source.to_owned(),
                    element: joint_element(&j.name),
                    kind: format!("{other:?}").to_lowercase(),
                });
            }
        };
        let (lower, upper) = if kind == JointKind::Continuous {
            (f64::NEG_INFINITY, f64::INFINITY)
        } else {
            (j.limit.lower, j.limit.upper)
        };
        let dynamics = j.dynamics.clone().unwrap_or_default();
        joints.push(RawJoint {
            name: j.name.clone(),
            kind,
            parent: j.parent.link.clone(),
            child: j.child.link.clone(),
            origin: pose(&j.origin),
            axis: Vector3::from(j.axis.xyz.0),
            limits: JointLimits {
                lower,
                upper,
                velocity: j.limit.velocity,
                effort: j.limit.effort,
            },
            damping: dynamics.damping,
            friction: dynamics.friction,
            mimic: j.mimic.as_ref().map(|m| RawMimic {
                joint: m.joint.clone(),
                multiplier: m.multiplier.unwrap_or(1.0),
                offset: m.offset.unwrap_or(0.0),
            }),
        });
    }

    let model = assemble(source, robot.name, links, joints)?;
    tracing::debug!(
        file = source,
        links = model.links.len(),
        joints = model.joints.len(),
        "loaded URDF"
    );
    Ok(model)
}

/// URDF `<origin xyz rpy>` as an isometry (fixed-axis roll-pitch-yaw).
fn pose(p: &urdf_rs::Pose) -> Isometry3<f64> {
    let [x, y, z] = p.xyz.0;
    let [roll, pitch, yaw] = p.rpy.0;
    Isometry3::from_parts(
        Translation3::new(x, y, z),
        UnitQuaternion::from_euler_angles(roll, pitch, yaw),
    )
}

fn rgba(c: &urdf_rs::Vec4) -> [f32; 4] {
    c.0.map(|v| v as f32)
}

/// `urdf-rs` fills a missing `<inertial>` with zeros; that is a massless link, not an error.
fn inertial(i: &urdf_rs::Inertial) -> Option<Inertial> {
    let t = &i.inertia;
    let entries = [i.mass.value, t.ixx, t.iyy, t.izz, t.ixy, t.ixz, t.iyz];
    if entries.iter().all(|&v| v == 0.0) {
        return None;
    }
    Some(Inertial {
        mass: i.mass.value,
        origin: pose(&i.origin),
        inertia: inertia_matrix(t.ixx, t.iyy, t.izz, t.ixy, t.ixz, t.iyz),
    })
}

fn shape(
    g: &urdf_rs::Geometry,
    file: &str,
    element: &str,
    base_dir: &Path,
) -> Result<Shape, RobotError> {
    Ok(match g {
        urdf_rs::Geometry::Box { size } => Shape::Box {
            size: Vector3::from(size.0),
        },
        urdf_rs::Geometry::Cylinder { radius, length } => Shape::Cylinder {
            radius: *radius,
            length: *length,
        },
        urdf_rs::Geometry::Capsule { radius, length } => Shape::Capsule {
            radius: *radius,
            length: *length,
        },
        urdf_rs::Geometry::Sphere { radius } => Shape::Sphere { radius: *radius },
        urdf_rs::Geometry::Mesh { filename, scale } => {
            let scale = scale.map_or([1.0; 3], |s| s.0);
            let mesh_err = |source| RobotError::Mesh {
                file: file.to_owned(),
                element: element.to_owned(),
                mesh: filename.clone(),
                source,
            };
            let path = resolve_mesh_path(filename, base_dir).map_err(mesh_err)?;
            let mesh = load_mesh(&path).map_err(mesh_err)?.scaled(scale);
            mesh.into_shape(path.display().to_string())
        }
    })
}

/// Resolves a URDF mesh reference to a file.
///
/// * `file:///abs/path` and `file://rel/path` → that path (relative to `base_dir`);
/// * `package://pkg/sub/mesh.stl` → the first existing of `base_dir/pkg/sub/mesh.stl`,
///   `base_dir/sub/mesh.stl` (the URDF sits in the package root) and
///   `base_dir/../pkg/sub/mesh.stl` (the package is a sibling directory);
/// * anything else → relative to `base_dir`.
fn resolve_mesh_path(filename: &str, base_dir: &Path) -> Result<PathBuf, MeshError> {
    if let Some(rest) = filename.strip_prefix("file://") {
        return Ok(base_dir.join(rest));
    }
    let Some(rest) = filename.strip_prefix("package://") else {
        return Ok(base_dir.join(filename));
    };
    let mut candidates = vec![base_dir.join(rest)];
    if let Some((_package, inner)) = rest.split_once('/') {
        candidates.push(base_dir.join(inner));
    }
    if let Some(parent) = base_dir.parent() {
        candidates.push(parent.join(rest));
    }
    candidates.dedup();
    candidates
        .iter()
        .find(|c| c.is_file())
        .cloned()
        .ok_or_else(|| {
            let tried: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
            MeshError::Unresolvable(format!("no such file; tried {}", tried.join(", ")))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesh_paths() {
        let base = Path::new("/robots/r");
        assert_eq!(
            resolve_mesh_path("meshes/a.stl", base).ok(),
            Some(PathBuf::from("/robots/r/meshes/a.stl"))
        );
        assert_eq!(
            resolve_mesh_path("file:///abs/a.stl", base).ok(),
            Some(PathBuf::from("/abs/a.stl"))
        );
        let err = resolve_mesh_path("package://pkg/m/a.stl", base).map_err(|e| e.to_string());
        let Err(msg) = err else {
            unreachable!("no such files exist");
        };
        for tried in [
            "/robots/r/pkg/m/a.stl",
            "/robots/r/m/a.stl",
            "/robots/pkg/m/a.stl",
        ] {
            assert!(msg.contains(tried), "{msg}");
        }
    }

    #[test]
    fn missing_inertial_is_massless() {
        assert!(inertial(&urdf_rs::Inertial::default()).is_none());
    }
}
