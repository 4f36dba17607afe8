//! MJCF (MuJoCo XML) loading via `mjcf-rs` into the same [`RobotModel`] as URDF.
//!
//! Mapping:
//! * every `<body>` becomes a link named after the body (`body<N>` if unnamed). The root link is
//!   the single top-level body when the `<worldbody>` holds exactly one body, that body has no
//!   joint and sits at the world origin, and the worldbody has no geoms or sites of its own;
//!   otherwise the root is a link named `"world"` (the worldbody, with its geoms);
//! * a body with one `hinge` (`slide`) joint is attached by a revolute (prismatic) joint, or a
//!   continuous joint for an unlimited hinge; a body without joints by a fixed joint named
//!   `<body>_fixed`. More than one joint per body, `ball` and `free` joints are rejected;
//! * MJCF places the joint anchor `pos` anywhere in the body; the link frame is put at the
//!   anchor (the model's joint axis passes through the link origin) and the body's geoms,
//!   inertial, sites and child bodies are re-expressed in that frame. The joint's `ref` is
//!   folded into the origin so that `q` is MuJoCo's `qpos`;
//! * named `<site>`s become massless links (named after the site) on fixed joints
//!   `<site>_fixed`, so they can serve as IK tips and camera mounts;
//! * geoms: sphere, capsule, cylinder, box (MJCF half-sizes converted to full sizes; `fromto`
//!   supported for capsule, cylinder and box) and meshes (STL/OBJ files or inline data). Plane
//!   and height-field geoms are environment, not robot, and are skipped. Geoms with
//!   `contype = conaffinity = 0` are visual only; all others are both visual and collision;
//! * mass properties come from `<inertial>`, or — as MuJoCo does — are computed from the
//!   primitive geoms (geom `mass`, else `density`, default 1000 kg/m³) when the body has none
//!   or `<compiler inertiafromgeom="true">`;
//! * joint effort is the largest `|forcerange|` of an actuator on the joint, else
//!   `|ctrlrange|·|gear|` of a `<motor>`, else [`MJCF_DEFAULT_EFFORT`]; MJCF has no velocity
//!   limits, so every joint gets [`MJCF_DEFAULT_VELOCITY`];
//! * linear `<equality><joint>` couplings (`polycoef` a0, a1 only) become mimic joints:
//!   joint1 follows joint2.

use std::path::Path;

use mjcf_rs::body::{Body, Geom, GeomType, InertiaSpec, JointType};
use mjcf_rs::compiler::InertiaFromGeom;
use mjcf_rs::equality::Equality;
use mjcf_rs::extras::ActuatorKind;
use nalgebra::{Isometry3, Matrix3, Quaternion, Translation3, Unit, UnitQuaternion, Vector3};

use crate::assemble::{
    RawJoint, RawLink, RawMimic, assemble, check_geometry, inertia_matrix, is_positive,
    joint_element,
};
use crate::error::RobotError;
use crate::mesh::{MeshError, TriMesh, load_mesh};
use crate::model::{Geometry, Inertial, JointKind, JointLimits, RobotModel, Shape};

/// Effort limit (N·m for hinges, N for slides) of joints without a force-limited actuator.
pub const MJCF_DEFAULT_EFFORT: f64 = 100.0;
/// Velocity limit (rad/s or m/s) given to every MJCF joint (MJCF has none).
pub const MJCF_DEFAULT_VELOCITY: f64 = 10.0;
/// MuJoCo's default geom density (kg/m³) for inferred mass properties.
const DEFAULT_DENSITY: f64 = 1000.0;

/// Loads and validates an MJCF file; includes and meshes resolve against its directory.
pub fn load_mjcf(path: &Path) -> Result<RobotModel, RobotError> {
    let xml = std::fs::read_to_string(path).map_err(|source| RobotError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_mjcf(&xml, &path.display().to_string(), path.parent())
}

/// Parses and validates MJCF text. `source` names the text in error messages; `base_dir` is
/// where `<include>`s and mesh files resolve (the current directory when `None`).
pub fn parse_mjcf(
    xml: &str,
    source: &str,
    base_dir: Option<&Path>,
) -> Result<RobotModel, RobotError> {
    let base_dir = base_dir.unwrap_or(Path::new("."));
    let mj = mjcf_rs::Model::from_str(xml, base_dir).map_err(|e| RobotError::Parse {
        file: source.to_owned(),
        message: e.to_string(),
    })?;
    let ctx = Ctx {
        file: source,
        mj: &mj,
        base_dir,
    };

    let names: Vec<String> = mj
        .bodies
        .iter()
        .enumerate()
        .map(|(id, e)| match (&e.body.name, id) {
            (Some(name), _) => name.clone(),
            (None, 0) => "world".to_owned(),
            (None, id) => format!("body{id}"),
        })
        .collect();
    let element = |id: usize| match id {
        0 => "<worldbody>".to_owned(),
        _ => format!("<body> \"{}\"", names[id]),
    };

    let top: Vec<usize> = mj
        .bodies_iter()
        .filter(|(_, e)| e.parent == Some(0))
        .map(|(id, _)| id)
        .collect();
    let world = &mj.bodies[0].body;
    let world_is_empty = world.sites.is_empty()
        && world
            .geoms
            .iter()
            .all(|g| matches!(g.type_, GeomType::Plane | GeomType::Hfield));
    let root_body = match top.as_slice() {
        [only]
            if world_is_empty
                && mj.bodies[*only].body.joints.is_empty()
                && mj.bodies[*only].body.pose == mjcf_rs::Pose::IDENTITY =>
        {
            *only
        }
        _ => 0,
    };

    // Joint anchor of each body: its link frame is the body frame shifted by this.
    let mut anchor = vec![Vector3::zeros(); mj.bodies.len()];
    let mut links = Vec::new();
    let mut joints = Vec::new();
    for (id, entry) in mj.bodies.iter().enumerate() {
        if id == 0 && root_body != 0 {
            continue;
        }
        let body = &entry.body;
        let joint_spec = match body.joints.as_slice() {
            [] => None,
            [j] => Some(j),
            many => {
                return Err(RobotError::Unsupported {
                    file: source.to_owned(),
                    element: element(id),
                    problem: format!(
                        "{} joints in one body; at most one is supported",
                        many.len()
                    ),
                });
            }
        };
        if id != root_body {
            let parent = entry.parent.unwrap_or(0);
            let joint = ctx.joint(&names[id], &names[parent], joint_spec, anchor[parent], body)?;
            if let Some(j) = joint_spec {
                anchor[id] = Vector3::from(j.pos);
            }
            joints.push(joint);
        }
        let to_link = Isometry3::from(Translation3::from(-anchor[id]));
        links.push(ctx.link(&names[id], &element(id), body, &to_link)?);
        for site in &body.sites {
            let Some(site_name) = &site.name else {
                continue;
            };
            links.push(RawLink {
                name: site_name.clone(),
                inertial: None,
                collisions: Vec::new(),
                visuals: Vec::new(),
            });
            joints.push(fixed_joint(
                format!("{site_name}_fixed"),
                names[id].clone(),
                site_name.clone(),
                to_link * iso(&site.pose),
            ));
        }
    }
    add_equality_mimics(source, &mj, &mut joints)?;

    let name = mj.name.clone().unwrap_or_else(|| {
        Path::new(source)
            .file_stem()
            .map_or_else(|| "robot".to_owned(), |s| s.to_string_lossy().into_owned())
    });
    let model = assemble(source, name, links, joints)?;
    tracing::debug!(
        file = source,
        links = model.links.len(),
        joints = model.joints.len(),
        "loaded MJCF"
    );
    Ok(model)
}

/// Shared loader state.
struct Ctx<'a> {
    file: &'a str,
    mj: &'a mjcf_rs::Model,
    base_dir: &'a Path,
}

impl Ctx<'_> {
    /// The joint attaching body `name` to its parent (`parent_anchor`: the parent's joint
    /// anchor, which is its link origin in its body frame).
    fn joint(
        &self,
        name: &str,
        parent: &str,
        spec: Option<&mjcf_rs::body::Joint>,
        parent_anchor: Vector3<f64>,
        body: &Body,
    ) -> Result<RawJoint, RobotError> {
        let in_parent_link = Translation3::from(-parent_anchor) * iso(&body.pose);
        let Some(j) = spec else {
            return Ok(fixed_joint(
                format!("{name}_fixed"),
                parent.to_owned(),
                name.to_owned(),
                in_parent_link,
            ));
        };
        let joint_name = j.name.clone().unwrap_or_else(|| format!("{name}_joint"));
        let element = joint_element(&joint_name);
        let axis = Vector3::from(j.axis);
        let kind_name = match j.type_ {
            JointType::Hinge => "hinge",
            JointType::Slide => "slide",
            JointType::Ball => "ball",
            JointType::Free => "free",
        };
        let limited = j
            .limited
            .resolve(self.mj.compiler.autolimits, j.range.is_some());
        let (kind, lower, upper) = match (j.type_, limited, j.range) {
            (JointType::Hinge, true, Some([lo, hi])) => (JointKind::Revolute, lo, hi),
            (JointType::Hinge, false, _) => {
                (JointKind::Continuous, f64::NEG_INFINITY, f64::INFINITY)
            }
            (JointType::Slide, true, Some([lo, hi])) => (JointKind::Prismatic, lo, hi),
            (JointType::Slide, false, _) => {
                return Err(RobotError::InvalidLimits {
                    file: self.file.to_owned(),
                    element,
                    problem: "unlimited slide joints are not supported; give a range".to_owned(),
                });
            }
            (JointType::Hinge | JointType::Slide, true, None) => {
                return Err(RobotError::InvalidLimits {
                    file: self.file.to_owned(),
                    element,
                    problem: "limited=\"true\" but no range".to_owned(),
                });
            }
            (JointType::Ball | JointType::Free, ..) => {
                return Err(RobotError::UnsupportedJoint {
                    file: self.file.to_owned(),
                    element,
                    kind: kind_name.to_owned(),
                });
            }
        };
        // `q = qpos`, and the body pose in the file is the pose at `qpos = ref`.
        let unit_axis = Unit::try_new(axis, 1e-12);
        let reference = match (kind, unit_axis) {
            (JointKind::Prismatic, Some(a)) => {
                Isometry3::from(Translation3::from(-j.ref_ * a.into_inner()))
            }
            (_, Some(a)) => Isometry3::from_parts(
                Translation3::identity(),
                UnitQuaternion::from_axis_angle(&a, -j.ref_),
            ),
            // A zero axis is reported by validation.
            (_, None) => Isometry3::identity(),
        };
        let origin = in_parent_link * Translation3::from(Vector3::from(j.pos)) * reference;
        Ok(RawJoint {
            name: joint_name.clone(),
            kind,
            parent: parent.to_owned(),
            child: name.to_owned(),
            origin,
            axis,
            limits: JointLimits {
                lower,
                upper,
                velocity: MJCF_DEFAULT_VELOCITY,
                effort: self.effort(&joint_name),
            },
            damping: j.damping,
            friction: j.frictionloss,
            mimic: None,
        })
    }

    /// Effort limit from the actuators driving `joint`.
    fn effort(&self, joint: &str) -> f64 {
        let autolimits = self.mj.compiler.autolimits;
        self.mj
            .actuators
            .iter()
            .filter(|a| a.joint.as_deref() == Some(joint))
            .filter_map(|a| {
                let force = a
                    .force_range
                    .filter(|_| a.force_limited.resolve(autolimits, a.force_range.is_some()));
                let ctrl = a
                    .ctrl_range
                    .filter(|_| a.kind == ActuatorKind::Motor)
                    .filter(|_| a.ctrl_limited.resolve(autolimits, a.ctrl_range.is_some()));
                match (force, ctrl) {
                    (Some([lo, hi]), _) => Some(lo.abs().max(hi.abs())),
                    (None, Some([lo, hi])) => Some(lo.abs().max(hi.abs()) * a.gear[0].abs()),
                    (None, None) => None,
                }
            })
            .filter(|&e| e > 0.0)
            .reduce(f64::max)
            .unwrap_or(MJCF_DEFAULT_EFFORT)
    }

    /// The link of one body; `to_link` maps body-frame poses into the link frame.
    fn link(
        &self,
        name: &str,
        body_element: &str,
        body: &Body,
        to_link: &Isometry3<f64>,
    ) -> Result<RawLink, RobotError> {
        let mut visuals = Vec::new();
        let mut collisions = Vec::new();
        let mut parts = Vec::new();
        for (gi, g) in body.geoms.iter().enumerate() {
            let element = format!("<geom> #{gi} in {body_element}");
            let Some((origin, shape)) = self.shape(g, &element)? else {
                continue;
            };
            let geometry = Geometry {
                name: g.name.clone(),
                origin: to_link * origin,
                shape,
                rgba: g
                    .rgba
                    .or_else(|| {
                        g.material
                            .as_deref()
                            .and_then(|m| self.mj.assets.material(m))
                            .and_then(|m| m.rgba)
                    })
                    .map(|c| c.map(|v| v as f32)),
            };
            check_geometry(self.file, &element, &geometry)?;
            if let Some(part) = primitive_inertia(&geometry, g) {
                parts.push(part);
            }
            if g.contype != 0 || g.conaffinity != 0 {
                collisions.push(geometry.clone());
            }
            visuals.push(geometry);
        }
        let from_geoms = match self.mj.compiler.inertia_from_geom {
            InertiaFromGeom::True => true,
            InertiaFromGeom::Auto => body.inertial.is_none(),
            InertiaFromGeom::False => false,
        };
        let inertial = if from_geoms {
            combine_inertia(&parts)
        } else {
            body.inertial.as_ref().map(|i| Inertial {
                mass: i.mass,
                origin: to_link * iso(&i.pose),
                inertia: match i.inertia {
                    InertiaSpec::Diagonal([xx, yy, zz]) => {
                        inertia_matrix(xx, yy, zz, 0.0, 0.0, 0.0)
                    }
                    InertiaSpec::Full([xx, yy, zz, xy, xz, yz]) => {
                        inertia_matrix(xx, yy, zz, xy, xz, yz)
                    }
                },
            })
        };
        Ok(RawLink {
            name: name.to_owned(),
            inertial,
            collisions,
            visuals,
        })
    }

    /// Pose (body frame) and model shape of a geom; `None` for environment geoms.
    fn shape(
        &self,
        g: &Geom,
        element: &str,
    ) -> Result<Option<(Isometry3<f64>, Shape)>, RobotError> {
        let [s0, s1, s2] = g.size;
        // `fromto` replaces the pose: centre at the midpoint, z along the segment.
        let segment = g.fromto.map(|[ax, ay, az, bx, by, bz]| {
            let (a, b) = (Vector3::new(ax, ay, az), Vector3::new(bx, by, bz));
            let rotation = UnitQuaternion::rotation_between(&Vector3::z(), &(b - a))
                .unwrap_or_else(|| {
                    // Anti-parallel (or degenerate) segment: flip about x.
                    UnitQuaternion::from_axis_angle(&Vector3::x_axis(), std::f64::consts::PI)
                });
            (
                Isometry3::from_parts(Translation3::from((a + b) / 2.0), rotation),
                (b - a).norm(),
            )
        });
        let pose = segment.map_or_else(|| iso(&g.pose), |(p, _)| p);
        let shape = match (g.type_, segment) {
            (GeomType::Sphere, _) => Shape::Sphere { radius: s0 },
            (GeomType::Capsule, None) => Shape::Capsule {
                radius: s0,
                length: 2.0 * s1,
            },
            (GeomType::Capsule, Some((_, length))) => Shape::Capsule { radius: s0, length },
            (GeomType::Cylinder, None) => Shape::Cylinder {
                radius: s0,
                length: 2.0 * s1,
            },
            (GeomType::Cylinder, Some((_, length))) => Shape::Cylinder { radius: s0, length },
            (GeomType::Box, None) => Shape::Box {
                size: Vector3::new(2.0 * s0, 2.0 * s1, 2.0 * s2),
            },
            (GeomType::Box, Some((_, length))) => Shape::Box {
                size: Vector3::new(2.0 * s0, 2.0 * s1, length),
            },
            (GeomType::Mesh, _) => self.mesh(g, element)?,
            (GeomType::Plane | GeomType::Hfield, _) => {
                tracing::debug!(file = self.file, element, "skipping environment geom");
                return Ok(None);
            }
            (GeomType::Ellipsoid | GeomType::Sdf, _) => {
                return Err(RobotError::Unsupported {
                    file: self.file.to_owned(),
                    element: element.to_owned(),
                    problem: format!("geom type {:?}", g.type_).to_lowercase(),
                });
            }
        };
        Ok(Some((pose, shape)))
    }

    fn mesh(&self, g: &Geom, element: &str) -> Result<Shape, RobotError> {
        let reference = g.mesh.clone().unwrap_or_default();
        let err = |source| RobotError::Mesh {
            file: self.file.to_owned(),
            element: element.to_owned(),
            mesh: reference.clone(),
            source,
        };
        let asset = self.mj.assets.mesh(&reference).ok_or_else(|| {
            err(MeshError::Unresolvable(
                "no <mesh> asset with this name".into(),
            ))
        })?;
        let (mesh, label) = match (&asset.inline_vertices, &asset.inline_faces) {
            (Some(v), Some(f)) => (
                inline_mesh(v, f).map_err(err)?,
                format!("<mesh> \"{reference}\""),
            ),
            _ => {
                let path = self
                    .mj
                    .resolve_mesh_file(asset, self.base_dir)
                    .ok_or_else(|| err(MeshError::Unresolvable("<mesh> has no file".into())))?;
                (load_mesh(&path).map_err(err)?, path.display().to_string())
            }
        };
        Ok(mesh.scaled(asset.scale).into_shape(label))
    }
}

fn inline_mesh(vertices: &[f64], faces: &[u32]) -> Result<TriMesh, MeshError> {
    let bad = |what: &str| MeshError::Unresolvable(format!("inline mesh: {what}"));
    if !vertices.len().is_multiple_of(3) || !faces.len().is_multiple_of(3) {
        return Err(bad("vertex and face counts must be multiples of 3"));
    }
    let count = vertices.len() / 3;
    if faces.iter().any(|&i| i as usize >= count) {
        return Err(bad("face index out of range"));
    }
    let mesh = TriMesh {
        vertices: vertices
            .chunks_exact(3)
            .map(|c| [c[0], c[1], c[2]])
            .collect(),
        triangles: faces.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect(),
    };
    if mesh.triangles.is_empty() {
        return Err(MeshError::Empty);
    }
    Ok(mesh)
}

fn fixed_joint(name: String, parent: String, child: String, origin: Isometry3<f64>) -> RawJoint {
    RawJoint {
        name,
        kind: JointKind::Fixed,
        parent,
        child,
        origin,
        axis: Vector3::x(),
        limits: JointLimits {
            lower: 0.0,
            upper: 0.0,
            velocity: 0.0,
            effort: 0.0,
        },
        damping: 0.0,
        friction: 0.0,
        mimic: None,
    }
}

/// Turns linear `<equality><joint>` couplings into mimic relations on `joints`.
fn add_equality_mimics(
    file: &str,
    mj: &mjcf_rs::Model,
    joints: &mut [RawJoint],
) -> Result<(), RobotError> {
    for (k, eq) in mj.equality.iter().enumerate() {
        let Equality::Joint(ej) = eq else {
            continue;
        };
        let element = format!("<equality><joint> #{k}");
        let [a0, a1, a2, a3, a4] = ej.polycoef;
        let Some(leader) = ej.joint2.as_ref().filter(|_| ej.common.active) else {
            tracing::warn!(file, element, "inactive or single-joint equality ignored");
            continue;
        };
        if [a2, a3, a4].iter().any(|&c| c != 0.0) {
            return Err(RobotError::Unsupported {
                file: file.to_owned(),
                element,
                problem: "non-linear joint coupling (polycoef beyond a1)".to_owned(),
            });
        }
        let reference = |name: &str| {
            mj.joint_by_name(name)
                .map(|(b, j)| mj.bodies[b].body.joints[j].ref_)
        };
        let Some(leader_ref) = reference(leader) else {
            return Err(RobotError::UnknownMimicLeader {
                file: file.to_owned(),
                element,
                leader: leader.clone(),
            });
        };
        let follower_ref = reference(&ej.joint1);
        let follower = joints.iter_mut().find(|j| j.name == ej.joint1);
        let (Some(follower), Some(follower_ref)) = (follower, follower_ref) else {
            return Err(RobotError::InvalidMimic {
                file: file.to_owned(),
                element,
                problem: format!("unknown joint1 \"{}\"", ej.joint1),
            });
        };
        if follower.mimic.is_some() {
            return Err(RobotError::InvalidMimic {
                file: file.to_owned(),
                element: joint_element(&follower.name),
                problem: "coupled by more than one <equality><joint>".to_owned(),
            });
        }
        // y − y0 = a0 + a1·(x − x0)  ⇒  y = a1·x + (a0 + y0 − a1·x0).
        follower.mimic = Some(RawMimic {
            joint: leader.clone(),
            multiplier: a1,
            offset: a0 + follower_ref - a1 * leader_ref,
        });
    }
    Ok(())
}

/// MJCF pose → nalgebra isometry.
fn iso(p: &mjcf_rs::Pose) -> Isometry3<f64> {
    let (t, r) = (p.translation, p.rotation);
    Isometry3::from_parts(
        Translation3::new(t.x, t.y, t.z),
        UnitQuaternion::from_quaternion(Quaternion::new(r.w, r.x, r.y, r.z)),
    )
}

/// Mass, centre (link frame) and inertia about that centre (link axes) of one geom.
struct Part {
    mass: f64,
    centre: Vector3<f64>,
    inertia: Matrix3<f64>,
}

/// Solid-body mass properties of a primitive geom (meshes are skipped, as are geoms with
/// zero density).
fn primitive_inertia(geometry: &Geometry, g: &Geom) -> Option<Part> {
    use std::f64::consts::PI;
    // Volume and inertia per unit mass (about the centre, geom axes).
    let (volume, unit): (f64, Vector3<f64>) = match &geometry.shape {
        Shape::Sphere { radius: r } => (4.0 / 3.0 * PI * r.powi(3), Vector3::repeat(0.4 * r * r)),
        Shape::Box { size } => {
            let s = size.component_mul(size);
            (
                size.product(),
                Vector3::new(s.y + s.z, s.x + s.z, s.x + s.y) / 12.0,
            )
        }
        Shape::Cylinder {
            radius: r,
            length: l,
        } => {
            let axial = 0.5 * r * r;
            let transverse = (3.0 * r * r + l * l) / 12.0;
            (PI * r * r * l, Vector3::new(transverse, transverse, axial))
        }
        Shape::Capsule {
            radius: r,
            length: l,
        } => {
            let (vc, vs) = (PI * r * r * l, 4.0 / 3.0 * PI * r.powi(3));
            let (fc, fs) = (vc / (vc + vs), vs / (vc + vs));
            let axial = fc * 0.5 * r * r + fs * 0.4 * r * r;
            let transverse = fc * (l * l / 12.0 + r * r / 4.0)
                + fs * (0.4 * r * r + l * l / 4.0 + 3.0 * l * r / 8.0);
            (vc + vs, Vector3::new(transverse, transverse, axial))
        }
        Shape::Mesh { .. } => return None,
    };
    let mass = g
        .mass
        .unwrap_or_else(|| g.density.unwrap_or(DEFAULT_DENSITY) * volume);
    if !is_positive(mass) {
        return None;
    }
    let rot = geometry.origin.rotation.to_rotation_matrix();
    let inertia = rot.matrix() * Matrix3::from_diagonal(&(unit * mass)) * rot.matrix().transpose();
    Some(Part {
        mass,
        centre: geometry.origin.translation.vector,
        inertia,
    })
}

/// Combines geom parts into one inertial about the joint centre of mass (parallel-axis theorem).
fn combine_inertia(parts: &[Part]) -> Option<Inertial> {
    let mass: f64 = parts.iter().map(|p| p.mass).sum();
    if !is_positive(mass) {
        return None;
    }
    let centre = parts
        .iter()
        .map(|p| p.centre * p.mass)
        .sum::<Vector3<f64>>()
        / mass;
    let inertia = parts
        .iter()
        .map(|p| {
            let d = p.centre - centre;
            p.inertia + (Matrix3::identity() * d.norm_squared() - d * d.transpose()) * p.mass
        })
        .sum();
    Some(Inertial {
        mass,
        origin: Isometry3::from(Translation3::from(centre)),
        inertia,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(shape: Shape, density: f64) -> Part {
        let geometry = Geometry {
            name: None,
            origin: Isometry3::identity(),
            shape,
            rgba: None,
        };
        let geom = Geom {
            density: Some(density),
            ..Geom::default()
        };
        primitive_inertia(&geometry, &geom).unwrap_or_else(|| unreachable!("positive mass"))
    }

    #[test]
    fn primitive_mass_properties() {
        let sphere = part(Shape::Sphere { radius: 0.5 }, 3.0);
        let m = 3.0 * 4.0 / 3.0 * std::f64::consts::PI * 0.125;
        assert!((sphere.mass - m).abs() < 1e-12);
        assert!((sphere.inertia[(0, 0)] - 0.4 * m * 0.25).abs() < 1e-12);

        let cuboid = part(
            Shape::Box {
                size: Vector3::new(1.0, 2.0, 3.0),
            },
            1.0,
        );
        assert_eq!(cuboid.mass, 6.0);
        assert!((cuboid.inertia[(0, 0)] - 6.0 * (4.0 + 9.0) / 12.0).abs() < 1e-12);

        // A zero-length capsule is a sphere.
        let capsule = part(
            Shape::Capsule {
                radius: 0.5,
                length: 0.0,
            },
            3.0,
        );
        assert!((capsule.mass - sphere.mass).abs() < 1e-12);
        assert!((capsule.inertia - sphere.inertia).amax() < 1e-12);
    }

    #[test]
    fn parallel_axis_theorem() {
        let point = |x: f64| Part {
            mass: 1.0,
            centre: Vector3::new(x, 0.0, 0.0),
            inertia: Matrix3::zeros(),
        };
        let combined =
            combine_inertia(&[point(-1.0), point(1.0)]).unwrap_or_else(|| unreachable!());
        assert_eq!(combined.mass, 2.0);
        assert_eq!(combined.origin.translation.vector, Vector3::zeros());
        assert_eq!(
            combined.inertia,
            Matrix3::from_diagonal(&Vector3::new(0.0, 2.0, 2.0))
        );
        assert!(combine_inertia(&[]).is_none());
    }
}
