//! A rapier3d world holding one robot (reduced-coordinate multibody, PD joint motors) and the
//! objects of a scene. Grasping is physical: fingers squeeze objects through contacts and
//! friction; nothing is ever welded or teleported.
//!
//! Units: metres, kilograms, seconds, radians. World frame: z up. Joint vectors are indexed by
//! the robot's independent degrees of freedom (movable, non-mimic joints in model order).

use std::sync::Arc;

use bicameral_robot::model::{Geometry, JointKind, LinkId, RobotModel, Shape};
use nalgebra::{Isometry3, Matrix3, Translation3, UnitQuaternion, Vector3};
use rapier3d::math::{Pose, Rotation, Vector};
use rapier3d::prelude::{
    ColliderBuilder, GenericJointBuilder, JointAxesMask, JointAxis, MassProperties, MotorModel,
    MultibodyJointHandle, PhysicsWorld, RigidBodyBuilder, RigidBodyHandle, SharedShape,
    SpringCoefficients,
};

use crate::error::SimError;
use crate::scene::{ObjectShape, PhysicsConfig, SceneConfig};

/// PD drive of one independent degree of freedom.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriveGains {
    /// Stiffness (N·m/rad, or N/m for prismatic joints).
    pub kp: f64,
    /// Damping (N·m·s/rad, or N·s/m).
    pub kd: f64,
}

/// How the robot is driven: one entry per independent DoF, in DoF order.
#[derive(Debug, Clone)]
pub struct RobotDrive {
    /// Gains per DoF.
    pub gains: Vec<DriveGains>,
    /// Initial joint positions per DoF (also the initial PD targets).
    pub initial: Vec<f64>,
}

/// A movable joint as simulated: a multibody joint with a motor.
#[derive(Debug, Clone)]
struct SimJoint {
    handle: MultibodyJointHandle,
    /// Rapier axis carrying the DoF.
    axis: JointAxis,
    /// Index into the generalized coordinate array (`coords()`): 3 for ANG_X, 0 for LIN_X.
    coord: usize,
    /// Independent DoF this joint follows.
    dof: usize,
    /// Whether this is the DoF's own joint (not a mimic follower).
    leader: bool,
    multiplier: f64,
    offset: f64,
    lower: f64,
    upper: f64,
    effort: f64,
}

/// A geometric part of a body, shared by physics (collider) and rendering.
#[derive(Debug, Clone)]
pub struct BodyPart {
    /// Shape in its own frame.
    pub shape: Shape,
    /// Shape frame in the body frame.
    pub local: Isometry3<f64>,
    /// Linear RGB colour.
    pub colour: [f32; 3],
}

/// An object of the scene as simulated.
#[derive(Debug, Clone)]
pub struct SimObject {
    /// Name from the scene file.
    pub name: String,
    /// Rapier body.
    pub body: RigidBodyHandle,
    /// Geometry (for rendering; colliders were built from the same list, except the ground's:
    /// it collides as the unbounded half-space z ≤ 0 but is drawn as a 6 × 6 m slab, so a body
    /// that has rolled beyond ±3 m rests on a floor the cameras do not show).
    pub parts: Vec<BodyPart>,
    /// Furniture.
    pub fixed: bool,
}

/// One contact point between two bodies, for logging and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactPoint {
    /// Contact point on the first collider (world, m).
    pub point: [f64; 3],
    /// Contact normal (world, unit, from the first towards the second body).
    pub normal: [f64; 3],
    /// Normal impulse over the last step (N·s).
    pub impulse: f64,
    /// Name of the first body (link or object).
    pub body1: String,
    /// Name of the second body.
    pub body2: String,
}

/// The simulated world.
pub struct SimWorld {
    pw: PhysicsWorld,
    model: Arc<RobotModel>,
    physics: PhysicsConfig,
    /// Per link: the body carrying it and the link frame in that body's frame.
    link_body: Vec<(RigidBodyHandle, Isometry3<f64>)>,
    /// Geometry drawn for each link (visual shapes, link frame).
    link_visuals: Vec<Vec<BodyPart>>,
    joints: Vec<SimJoint>,
    gains: Vec<DriveGains>,
    targets: Vec<f64>,
    dof_names: Vec<String>,
    objects: Vec<SimObject>,
    body_names: std::collections::HashMap<RigidBodyHandle, String>,
    step: u64,
}

fn iso_to_pose(iso: &Isometry3<f64>) -> Pose {
    let t = iso.translation.vector;
    let q = iso.rotation.quaternion();
    Pose::from_parts(
        Vector::new(t.x as f32, t.y as f32, t.z as f32),
        Rotation::from_xyzw(q.i as f32, q.j as f32, q.k as f32, q.w as f32).normalize(),
    )
}

fn pose_to_iso(p: &Pose) -> Isometry3<f64> {
    let r = p.rotation;
    Isometry3::from_parts(
        Translation3::new(
            f64::from(p.translation.x),
            f64::from(p.translation.y),
            f64::from(p.translation.z),
        ),
        UnitQuaternion::from_quaternion(nalgebra::Quaternion::new(
            f64::from(r.w),
            f64::from(r.x),
            f64::from(r.y),
            f64::from(r.z),
        )),
    )
}

/// Rotation taking the x axis onto `axis` (used to put a URDF joint axis on rapier's X axis).
fn x_to_axis(axis: &Vector3<f64>) -> UnitQuaternion<f64> {
    UnitQuaternion::rotation_between(&Vector3::x(), axis).unwrap_or_else(|| {
        // Antiparallel: half a turn about z.
        UnitQuaternion::from_axis_angle(&Vector3::z_axis(), std::f64::consts::PI)
    })
}

/// Collider for a shape centred in its own frame (cylinders and capsules along local z).
fn collider_for(shape: &Shape) -> Option<ColliderBuilder> {
    Some(match shape {
        Shape::Box { size } => ColliderBuilder::cuboid(
            (size.x / 2.0) as f32,
            (size.y / 2.0) as f32,
            (size.z / 2.0) as f32,
        ),
        // rapier cylinders are along y: rotate +90° about x to put them along z.
        Shape::Cylinder { radius, length } => {
            ColliderBuilder::cylinder((length / 2.0) as f32, *radius as f32)
        }
        Shape::Capsule { radius, length } => {
            ColliderBuilder::capsule_z((length / 2.0) as f32, *radius as f32)
        }
        Shape::Sphere { radius } => ColliderBuilder::ball(*radius as f32),
        Shape::Mesh { vertices, .. } => {
            let pts: Vec<Vector> = vertices
                .iter()
                .map(|v| Vector::new(v[0] as f32, v[1] as f32, v[2] as f32))
                .collect();
            ColliderBuilder::convex_hull(&pts)?
        }
    })
}

/// Extra rotation applied to a shape's frame so that rapier's primitive matches ours.
fn shape_fix(shape: &Shape) -> Isometry3<f64> {
    match shape {
        Shape::Cylinder { .. } => Isometry3::rotation(Vector3::x() * std::f64::consts::FRAC_PI_2),
        _ => Isometry3::identity(),
    }
}

fn shape_volume(shape: &Shape) -> f64 {
    use std::f64::consts::PI;
    match shape {
        Shape::Box { size } => size.x * size.y * size.z,
        Shape::Cylinder { radius, length } => PI * radius * radius * length,
        Shape::Capsule { radius, length } => {
            PI * radius * radius * length + 4.0 / 3.0 * PI * radius.powi(3)
        }
        Shape::Sphere { radius } => 4.0 / 3.0 * PI * radius.powi(3),
        Shape::Mesh { .. } => 0.0,
    }
}

/// Parts of a scene object in its body frame.
pub fn object_parts(shape: &ObjectShape, colour: [f32; 3]) -> Vec<BodyPart> {
    let part = |shape: Shape, local: Isometry3<f64>| BodyPart {
        shape,
        local,
        colour,
    };
    match shape {
        ObjectShape::Box { size } => vec![part(
            Shape::Box {
                size: Vector3::from(*size),
            },
            Isometry3::identity(),
        )],
        ObjectShape::Cylinder { radius, height } => vec![part(
            Shape::Cylinder {
                radius: *radius,
                length: *height,
            },
            Isometry3::identity(),
        )],
        ObjectShape::Sphere { radius } => vec![part(
            Shape::Sphere { radius: *radius },
            Isometry3::identity(),
        )],
        ObjectShape::Container { size, wall } => {
            let [sx, sy, sz] = *size;
            let w = *wall;
            let at = |x: f64, y: f64, z: f64| Isometry3::translation(x, y, z);
            let bx = |x: f64, y: f64, z: f64| Shape::Box {
                size: Vector3::new(x, y, z),
            };
            vec![
                part(bx(sx, sy, w), at(0.0, 0.0, -sz / 2.0 + w / 2.0)),
                part(bx(w, sy, sz), at(sx / 2.0 - w / 2.0, 0.0, 0.0)),
                part(bx(w, sy, sz), at(-sx / 2.0 + w / 2.0, 0.0, 0.0)),
                part(bx(sx - 2.0 * w, w, sz), at(0.0, sy / 2.0 - w / 2.0, 0.0)),
                part(bx(sx - 2.0 * w, w, sz), at(0.0, -sy / 2.0 + w / 2.0, 0.0)),
            ]
        }
        ObjectShape::Table { size, top, leg } => {
            let [sx, sy, h] = *size;
            let (t, l) = (*top, *leg);
            let leg_h = h - t;
            let mut parts = vec![part(
                Shape::Box {
                    size: Vector3::new(sx, sy, t),
                },
                Isometry3::translation(0.0, 0.0, h - t / 2.0),
            )];
            for (fx, fy) in [(1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0)] {
                parts.push(part(
                    Shape::Box {
                        size: Vector3::new(l, l, leg_h),
                    },
                    Isometry3::translation(
                        fx * (sx / 2.0 - l / 2.0),
                        fy * (sy / 2.0 - l / 2.0),
                        leg_h / 2.0,
                    ),
                ));
            }
            parts
        }
    }
}

/// Mass properties of `(mass, com frame in body, inertia about com)` items combined.
fn combine_inertials(items: &[(f64, Isometry3<f64>, Matrix3<f64>)]) -> Option<MassProperties> {
    let mass: f64 = items.iter().map(|i| i.0).sum();
    if mass <= 0.0 {
        return None;
    }
    let com = items.iter().fold(Vector3::zeros(), |acc, (m, f, _)| {
        acc + f.translation.vector * *m
    }) / mass;
    let mut inertia = Matrix3::zeros();
    for (m, frame, i_local) in items {
        let r = frame.rotation.to_rotation_matrix();
        let i_rot = r.matrix() * i_local * r.matrix().transpose();
        let d = frame.translation.vector - com;
        let parallel = (Matrix3::identity() * d.dot(&d) - d * d.transpose()) * *m;
        inertia += i_rot + parallel;
    }
    let m32 = rapier3d::math::Matrix::from_cols_array(&[
        inertia[(0, 0)] as f32,
        inertia[(1, 0)] as f32,
        inertia[(2, 0)] as f32,
        inertia[(0, 1)] as f32,
        inertia[(1, 1)] as f32,
        inertia[(2, 1)] as f32,
        inertia[(0, 2)] as f32,
        inertia[(1, 2)] as f32,
        inertia[(2, 2)] as f32,
    ]);
    Some(MassProperties::with_inertia_matrix(
        Vector::new(com.x as f32, com.y as f32, com.z as f32),
        mass as f32,
        m32,
    ))
}

impl SimWorld {
    /// Builds the world: the robot's root link fixed at the world origin, every movable joint a
    /// multibody joint with a force-based PD motor (effort-limited), every link with a
    /// collision shape a dynamic body, and the scene's objects.
    pub fn new(
        model: Arc<RobotModel>,
        drive: &RobotDrive,
        scene: &SceneConfig,
    ) -> Result<Self, SimError> {
        let physics = scene.physics.clone();
        let mut pw = PhysicsWorld::new();
        pw.gravity = Vector::new(
            physics.gravity[0] as f32,
            physics.gravity[1] as f32,
            physics.gravity[2] as f32,
        );
        {
            let ip = &mut pw.integration_parameters;
            ip.dt = physics.dt as f32;
            ip.num_solver_iterations = physics.substeps;
            ip.num_internal_pgs_iterations = physics.pgs_iterations;
            ip.contact_recycling = false;
            ip.contact_softness = SpringCoefficients::new(
                physics.contact_hz as f32,
                physics.contact_damping_ratio as f32,
            );
            ip.static_contact_softness = SpringCoefficients::new(
                2.0 * physics.contact_hz as f32,
                physics.contact_damping_ratio as f32,
            );
        }
        let model_err = |message: String| SimError::Model {
            robot: model.name.clone(),
            message,
        };

        // Independent DoFs: movable joints that mimic nothing.
        let dof_joints: Vec<usize> = model
            .movable_joints()
            .filter(|&j| model.joints[j].mimic.is_none())
            .collect();
        let dof_names: Vec<String> = dof_joints
            .iter()
            .map(|&j| model.joints[j].name.clone())
            .collect();
        let n = dof_joints.len();
        if drive.gains.len() != n || drive.initial.len() != n {
            return Err(model_err(format!(
                "drive has {} gains and {} initial positions for {n} degrees of freedom",
                drive.gains.len(),
                drive.initial.len()
            )));
        }

        // Which body carries each link: walk up through fixed joints.
        let nl = model.links.len();
        let mut carrier: Vec<(LinkId, Isometry3<f64>)> = vec![(0, Isometry3::identity()); nl];
        for (l, slot) in carrier.iter_mut().enumerate() {
            let mut cur = l;
            let mut off = Isometry3::identity();
            while let Some(j) = model.links[cur].parent_joint {
                let joint = &model.joints[j];
                if joint.kind != JointKind::Fixed {
                    break;
                }
                off = joint.origin * off;
                cur = joint.parent;
            }
            *slot = (cur, off);
        }

        // Bodies for carrier links, with combined inertials.
        let mut body_of_link: Vec<Option<RigidBodyHandle>> = vec![None; nl];
        let mut body_names = std::collections::HashMap::new();
        for l in 0..nl {
            if carrier[l].0 != l {
                continue;
            }
            let items: Vec<(f64, Isometry3<f64>, Matrix3<f64>)> = (0..nl)
                .filter(|&k| carrier[k].0 == l)
                .filter_map(|k| {
                    model.links[k]
                        .inertial
                        .as_ref()
                        .map(|i| (i.mass, carrier[k].1 * i.origin, i.inertia))
                })
                .collect();
            let builder = if l == model.root {
                RigidBodyBuilder::fixed()
            } else {
                let mprops = combine_inertials(&items).ok_or_else(|| {
                    model_err(format!(
                        "link \"{}\" is moved by a joint but has no mass",
                        model.links[l].name
                    ))
                })?;
                RigidBodyBuilder::dynamic()
                    .additional_mass_properties(mprops)
                    .gravity_scale(if physics.gravity_compensation {
                        0.0
                    } else {
                        1.0
                    })
                    .can_sleep(false)
            };
            let h = pw.bodies.insert(builder.build());
            body_of_link[l] = Some(h);
            body_names.insert(h, model.links[l].name.clone());
        }
        let link_body: Vec<(RigidBodyHandle, Isometry3<f64>)> = (0..nl)
            .map(|l| {
                let (c, off) = carrier[l];
                body_of_link[c].map(|h| (h, off)).ok_or_else(|| {
                    model_err(format!("link \"{}\" has no body", model.links[l].name))
                })
            })
            .collect::<Result<_, _>>()?;

        // Colliders (density 0: mass comes from the URDF inertials).
        for (l, link) in model.links.iter().enumerate() {
            let (body, off) = link_body[l];
            for g in &link.collisions {
                let Some(builder) = collider_for(&g.shape) else {
                    return Err(model_err(format!(
                        "link \"{}\": mesh collision shape has no convex hull",
                        link.name
                    )));
                };
                let local = off * g.origin * shape_fix(&g.shape);
                let c = builder
                    .position(iso_to_pose(&local))
                    .density(0.0)
                    .friction(physics.robot_friction as f32)
                    .build();
                pw.colliders.insert_with_parent(c, body, &mut pw.bodies);
            }
        }

        // Multibody joints.
        let mut joints = Vec::new();
        let mut damping_of = Vec::new();
        for (ji, joint) in model.joints.iter().enumerate() {
            if joint.kind == JointKind::Fixed {
                continue;
            }
            let (parent_body, parent_off) = link_body[joint.parent];
            let child_body = body_of_link[joint.child].ok_or_else(|| {
                model_err(format!("joint \"{}\": child link has no body", joint.name))
            })?;
            let r = x_to_axis(&joint.axis);
            let frame1 = parent_off * joint.origin * r;
            let frame2 = Isometry3::from_parts(Translation3::identity(), r);
            let (mask, axis, coord) = match joint.kind {
                JointKind::Prismatic => (JointAxesMask::LOCKED_PRISMATIC_AXES, JointAxis::LinX, 0),
                _ => (JointAxesMask::LOCKED_REVOLUTE_AXES, JointAxis::AngX, 3),
            };
            let (dof_joint, multiplier, offset) = match &joint.mimic {
                Some(m) => (m.joint, m.multiplier, m.offset),
                None => (ji, 1.0, 0.0),
            };
            let dof = dof_joints
                .iter()
                .position(|&d| d == dof_joint)
                .ok_or_else(|| {
                    model_err(format!(
                        "joint \"{}\" mimics \"{}\", which is not an independent joint",
                        joint.name, model.joints[dof_joint].name
                    ))
                })?;
            let g = drive.gains[dof];
            // Adjacent links may overlap at the joint (URDF practice): no contacts between them.
            // Non-adjacent links of the robot do collide (multibody self-contacts stay on).
            let mut b = GenericJointBuilder::new(mask)
                .contacts_enabled(false)
                .local_frame1(iso_to_pose(&frame1))
                .local_frame2(iso_to_pose(&frame2))
                .motor_model(axis, MotorModel::ForceBased)
                .motor_position(axis, 0.0, g.kp as f32, g.kd as f32)
                .motor_max_force(axis, joint.limits.effort as f32);
            if joint.kind != JointKind::Continuous {
                b = b.limits(axis, [joint.limits.lower as f32, joint.limits.upper as f32]);
            }
            let handle = pw
                .multibody_joints
                .insert(parent_body, child_body, b.build(), true)
                .ok_or_else(|| {
                    model_err(format!(
                        "joint \"{}\" would close a kinematic loop",
                        joint.name
                    ))
                })?;
            damping_of.push(joint.damping);
            joints.push(SimJoint {
                handle,
                axis,
                coord,
                dof,
                leader: joint.mimic.is_none(),
                multiplier,
                offset,
                lower: joint.limits.lower,
                upper: joint.limits.upper,
                effort: joint.limits.effort,
            });
        }

        // Armature and viscous damping from the URDF on every DoF.
        for (j, damping) in joints.iter().zip(&damping_of) {
            if let Some((mb, link_id)) = pw.multibody_joints.get_mut(j.handle)
                && let Some(dof) = mb.link(link_id).map(|l| l.assembly_id())
            {
                mb.armature_mut()[dof] = physics.armature as f32;
                mb.damping_mut()[dof] = *damping as f32;
            }
        }

        let link_visuals = model
            .links
            .iter()
            .map(|link| {
                link.visuals
                    .iter()
                    .map(|g: &Geometry| BodyPart {
                        shape: g.shape.clone(),
                        local: g.origin,
                        colour: g.rgba.map_or([0.7, 0.7, 0.7], |c| [c[0], c[1], c[2]]),
                    })
                    .collect()
            })
            .collect();

        let mut world = Self {
            pw,
            model,
            physics,
            link_body,
            link_visuals,
            joints,
            gains: drive.gains.clone(),
            targets: drive.initial.clone(),
            dof_names,
            objects: Vec::new(),
            body_names,
            step: 0,
        };
        world.set_joint_positions(&drive.initial)?;
        world.apply_targets();
        if scene.ground {
            world.add_ground();
        }
        for o in &scene.objects {
            world.add_object(o);
        }
        Ok(world)
    }

    /// The ground: drawn as a 6 × 6 m slab under the robot, but colliding as the half-space
    /// z ≤ 0, so a body knocked off the table stays on the floor wherever it rolls (with a
    /// finite slab, a cylinder rolling off its edge fell until the speed check reported a
    /// divergence).
    fn add_ground(&mut self) {
        let parts = vec![BodyPart {
            shape: Shape::Box {
                size: Vector3::new(6.0, 6.0, 0.1),
            },
            local: Isometry3::translation(0.0, 0.0, -0.05),
            colour: [0.45, 0.47, 0.50],
        }];
        let body = self.pw.bodies.insert(RigidBodyBuilder::fixed().build());
        let collider = ColliderBuilder::new(SharedShape::halfspace(Vector::Z))
            .friction(1.0)
            .restitution(0.0)
            .build();
        self.pw
            .colliders
            .insert_with_parent(collider, body, &mut self.pw.bodies);
        let name = "ground".to_string();
        self.body_names.insert(body, name.clone());
        self.objects.push(SimObject {
            name,
            body,
            parts,
            fixed: true,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn insert_object(
        &mut self,
        name: String,
        fixed: bool,
        pose: Isometry3<f64>,
        parts: Vec<BodyPart>,
        mass: f64,
        friction: f64,
        restitution: f64,
    ) {
        let builder = if fixed {
            RigidBodyBuilder::fixed()
        } else {
            RigidBodyBuilder::dynamic().can_sleep(false)
        };
        let body = self
            .pw
            .bodies
            .insert(builder.pose(iso_to_pose(&pose)).build());
        let total_volume: f64 = parts.iter().map(|p| shape_volume(&p.shape)).sum();
        for p in &parts {
            if let Some(cb) = collider_for(&p.shape) {
                let mut cb = cb
                    .position(iso_to_pose(&(p.local * shape_fix(&p.shape))))
                    .friction(friction as f32)
                    .restitution(restitution as f32);
                if !fixed && total_volume > 0.0 {
                    cb = cb.mass((mass * shape_volume(&p.shape) / total_volume) as f32);
                }
                self.pw
                    .colliders
                    .insert_with_parent(cb.build(), body, &mut self.pw.bodies);
            }
        }
        self.body_names.insert(body, name.clone());
        self.objects.push(SimObject {
            name,
            body,
            parts,
            fixed,
        });
    }

    /// Adds an object from a scene entry.
    pub fn add_object(&mut self, o: &crate::scene::ObjectConfig) {
        let parts = object_parts(&o.shape, o.colour);
        self.insert_object(
            o.name.clone(),
            o.fixed,
            o.pose(),
            parts,
            o.mass,
            o.friction,
            o.restitution,
        );
    }

    /// The robot model.
    pub fn model(&self) -> &Arc<RobotModel> {
        &self.model
    }

    /// Names of the independent DoFs, in joint-vector order.
    pub fn dof_names(&self) -> &[String] {
        &self.dof_names
    }

    /// Physics step (s).
    pub fn dt(&self) -> f64 {
        self.physics.dt
    }

    /// Simulated time since construction (s).
    pub fn time(&self) -> f64 {
        self.step as f64 * self.physics.dt
    }

    /// Number of physics steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Objects of the scene (ground included).
    pub fn objects(&self) -> &[SimObject] {
        &self.objects
    }

    /// Teleports the robot's joints (DoF vector, mimic joints follow) with zero velocity.
    /// Meant for resets before an episode, never during one.
    pub fn set_joint_positions(&mut self, q: &[f64]) -> Result<(), SimError> {
        self.check_dof_vector(q)?;
        for j in &self.joints {
            let target = (j.multiplier * q[j.dof] + j.offset).clamp(j.lower, j.upper);
            if let Some((mb, link_id)) = self.pw.multibody_joints.get_mut(j.handle) {
                let Some(link) = mb.link(link_id) else {
                    continue;
                };
                let idx = link.assembly_id();
                let current = link.joint.coords()[j.coord];
                let mut disp = vec![0.0f32; mb.ndofs()];
                disp[idx] = target as f32 - current;
                mb.apply_displacements(&disp);
                mb.generalized_velocity_mut().fill(0.0);
            }
        }
        let handles: Vec<MultibodyJointHandle> = self.joints.iter().map(|j| j.handle).collect();
        for h in handles {
            if let Some((mb, _)) = self.pw.multibody_joints.get_mut(h) {
                mb.forward_kinematics(&self.pw.bodies, false);
                mb.update_rigid_bodies(&mut self.pw.bodies, true);
            }
        }
        Ok(())
    }

    fn check_dof_vector(&self, q: &[f64]) -> Result<(), SimError> {
        if q.len() != self.dof_names.len() {
            return Err(SimError::Command(format!(
                "expected {} joint values ({}), got {}",
                self.dof_names.len(),
                self.dof_names.join(", "),
                q.len()
            )));
        }
        if let Some(i) = q.iter().position(|v| !v.is_finite()) {
            return Err(SimError::Command(format!(
                "joint \"{}\" value is {}",
                self.dof_names[i], q[i]
            )));
        }
        Ok(())
    }

    /// Sets the PD position targets (DoF vector; rad or m). Targets are clamped into the joint
    /// limits; mimic joints follow their leader.
    pub fn set_joint_targets(&mut self, targets: &[f64]) -> Result<(), SimError> {
        self.check_dof_vector(targets)?;
        self.targets.copy_from_slice(targets);
        self.apply_targets();
        Ok(())
    }

    /// The current PD targets.
    pub fn joint_targets(&self) -> &[f64] {
        &self.targets
    }

    fn apply_targets(&mut self) {
        for j in &self.joints {
            let g = self.gains[j.dof];
            let target = (j.multiplier * self.targets[j.dof] + j.offset).clamp(j.lower, j.upper);
            if let Some((mb, link_id)) = self.pw.multibody_joints.get_mut(j.handle)
                && let Some(link) = mb.link_mut(link_id)
            {
                link.joint
                    .data
                    .set_motor_position(j.axis, target as f32, g.kp as f32, g.kd as f32);
            }
        }
    }

    fn joint_coord(&self, j: &SimJoint) -> (f64, f64) {
        self.pw
            .multibody_joints
            .get(j.handle)
            .and_then(|(mb, link_id)| {
                let link = mb.link(link_id)?;
                let q = link.joint.coords()[j.coord];
                let v = mb.joint_velocity(link).get(0).copied().unwrap_or(0.0);
                Some((f64::from(q), f64::from(v)))
            })
            .unwrap_or((0.0, 0.0))
    }

    /// Positions of the independent DoFs (rad or m).
    pub fn joint_positions(&self) -> Vec<f64> {
        self.leader_values(|c| c.0)
    }

    fn leader_values(&self, f: impl Fn((f64, f64)) -> f64) -> Vec<f64> {
        let mut out = vec![0.0; self.dof_names.len()];
        for j in self.joints.iter().filter(|j| j.leader) {
            out[j.dof] = f(self.joint_coord(j));
        }
        out
    }

    /// Velocities of the independent DoFs (rad/s or m/s).
    pub fn joint_velocities(&self) -> Vec<f64> {
        self.leader_values(|c| c.1)
    }

    /// Efforts the PD drives command (N·m or N): `clamp(kp·(target − q) − kd·q̇, ±effort)`.
    pub fn joint_efforts(&self) -> Vec<f64> {
        let q = self.joint_positions();
        let v = self.joint_velocities();
        let mut out = vec![0.0; q.len()];
        for j in self.joints.iter().filter(|j| j.leader) {
            let g = self.gains[j.dof];
            let t = self.targets[j.dof].clamp(j.lower, j.upper);
            out[j.dof] = (g.kp * (t - q[j.dof]) - g.kd * v[j.dof]).clamp(-j.effort, j.effort);
        }
        out
    }

    /// Advances physics by one step and checks for numerical blow-ups.
    pub fn step(&mut self) -> Result<(), SimError> {
        self.pw.step();
        self.step += 1;
        self.check_health()
    }

    /// Advances by `n` steps.
    pub fn step_n(&mut self, n: usize) -> Result<(), SimError> {
        for _ in 0..n {
            self.step()?;
        }
        Ok(())
    }

    fn check_health(&self) -> Result<(), SimError> {
        for (h, b) in self.pw.bodies.iter() {
            if !b.is_dynamic() {
                continue;
            }
            let p = b.translation();
            let v = b.linvel();
            let w = b.angvel();
            let name = || self.body_names.get(&h).cloned().unwrap_or_default();
            let finite = p.is_finite() && v.is_finite() && w.is_finite();
            let reason = if !finite {
                Some(format!("body \"{}\" has a non-finite state", name()))
            } else if f64::from(v.length()) > self.physics.max_linear_speed {
                Some(format!(
                    "body \"{}\" moves at {:.1} m/s (limit {})",
                    name(),
                    v.length(),
                    self.physics.max_linear_speed
                ))
            } else if f64::from(w.length()) > self.physics.max_angular_speed {
                Some(format!(
                    "body \"{}\" spins at {:.1} rad/s (limit {})",
                    name(),
                    w.length(),
                    self.physics.max_angular_speed
                ))
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(SimError::Diverged {
                    step: self.step,
                    time: self.time(),
                    reason,
                });
            }
        }
        Ok(())
    }

    /// World pose of every robot link (link frames, model order).
    pub fn link_poses(&self) -> Vec<Isometry3<f64>> {
        self.link_body
            .iter()
            .map(|(h, off)| self.body_pose(*h) * off)
            .collect()
    }

    /// World pose of one link.
    pub fn link_pose(&self, link: LinkId) -> Isometry3<f64> {
        let (h, off) = self.link_body[link];
        self.body_pose(h) * off
    }

    fn body_pose(&self, h: RigidBodyHandle) -> Isometry3<f64> {
        self.pw
            .bodies
            .get(h)
            .map_or(Isometry3::identity(), |b| pose_to_iso(b.position()))
    }

    /// Visual geometry of each link (link frame).
    pub fn link_visuals(&self) -> &[Vec<BodyPart>] {
        &self.link_visuals
    }

    /// World pose of an object by name.
    pub fn object_pose(&self, name: &str) -> Option<Isometry3<f64>> {
        self.objects
            .iter()
            .find(|o| o.name == name)
            .map(|o| self.body_pose(o.body))
    }

    /// World pose of an object's body.
    pub fn object_body_pose(&self, o: &SimObject) -> Isometry3<f64> {
        self.body_pose(o.body)
    }

    /// Linear velocity of an object (m/s, world).
    pub fn object_velocity(&self, name: &str) -> Option<Vector3<f64>> {
        let o = self.objects.iter().find(|o| o.name == name)?;
        let v = self.pw.bodies.get(o.body)?.linvel();
        Some(Vector3::new(f64::from(v.x), f64::from(v.y), f64::from(v.z)))
    }

    /// Places a loose object (zero velocity). For episode resets only.
    pub fn set_object_pose(&mut self, name: &str, pose: &Isometry3<f64>) -> bool {
        let Some(o) = self.objects.iter().find(|o| o.name == name) else {
            return false;
        };
        let Some(b) = self.pw.bodies.get_mut(o.body) else {
            return false;
        };
        b.set_position(iso_to_pose(pose), true);
        b.set_linvel(Vector::ZERO, true);
        b.set_angvel(Vector::ZERO, true);
        true
    }

    /// Active contact points after the last step.
    pub fn contacts(&self) -> Vec<ContactPoint> {
        let mut out = Vec::new();
        for pair in self.pw.narrow_phase.contact_pairs() {
            if !pair.has_any_active_contact() {
                continue;
            }
            let (Some(c1), Some(c2)) = (
                self.pw.colliders.get(pair.collider1),
                self.pw.colliders.get(pair.collider2),
            ) else {
                continue;
            };
            let name = |c: &rapier3d::geometry::Collider| {
                c.parent()
                    .and_then(|h| self.body_names.get(&h).cloned())
                    .unwrap_or_default()
            };
            for m in pair.manifolds() {
                let n = c1.position().rotation * m.local_n1;
                for p in &m.points {
                    let wp = c1.position() * p.local_p1;
                    out.push(ContactPoint {
                        point: [f64::from(wp.x), f64::from(wp.y), f64::from(wp.z)],
                        normal: [f64::from(n.x), f64::from(n.y), f64::from(n.z)],
                        impulse: f64::from(p.data.impulse),
                        body1: name(c1),
                        body2: name(c2),
                    });
                }
            }
        }
        out
    }

    /// Names of bodies touching the named body (links or objects).
    pub fn touching(&self, name: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .contacts()
            .into_iter()
            .filter(|c| c.impulse > 0.0 && (c.body1 == name || c.body2 == name))
            .map(|c| if c.body1 == name { c.body2 } else { c.body1 })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// A hash of the full dynamic state (positions, rotations, velocities of every body, joint
    /// coordinates), bit-exact: equal hashes mean bit-identical states.
    pub fn state_hash(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |x: f32| {
            for b in x.to_bits().to_le_bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        for (_, b) in self.pw.bodies.iter() {
            let p = b.position();
            for x in [p.translation.x, p.translation.y, p.translation.z] {
                eat(x);
            }
            for x in [p.rotation.x, p.rotation.y, p.rotation.z, p.rotation.w] {
                eat(x);
            }
            let v = b.linvel();
            let w = b.angvel();
            for x in [v.x, v.y, v.z, w.x, w.y, w.z] {
                eat(x);
            }
        }
        for j in &self.joints {
            let (q, v) = self.joint_coord(j);
            eat(q as f32);
            eat(v as f32);
        }
        h
    }
}
