//! Scripted experts: IK-based motion primitives (approach, pre-grasp, grasp, lift, transport,
//! place, release, retreat) built on [`ArmScript`], with minimum-jerk Cartesian segments,
//! randomized pace, pre-grasp offsets and grasp yaw, and via-points that keep the hand and the
//! carried object above everything else on the table (approach from above, lift to a transit
//! height before moving sideways, descend vertically).
//!
//! Like scripted experts generally, it uses privileged information: ground-truth object poses
//! (read from the world when each primitive starts) and sizes. It checks its own progress (both
//! fingers on the object after closing, the object lifted) and stops the episode early with a
//! [`SimError::Stopped`] reason when a step fails. Idle hands are held still in the world (and
//! lifted clear of nearby objects) while the waist moves for the working hand; two-handed work
//! keeps the waist still.

use nalgebra::{Isometry3, Translation3, UnitQuaternion, Vector3};

use crate::error::SimError;
use crate::rng::SplitMix64;
use crate::scene::ObjectShape;
use crate::script::{Arm, ArmScript, TickFn, top_down};
use crate::task::{EpisodeSetup, TaskKind, footprint_radius, grasp_half_width, half_height};
use crate::world::SimWorld;

/// How an episode ended.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeOutcome {
    /// Whether the success test passed (and nothing else was disturbed).
    pub success: bool,
    /// Why not, if not.
    pub failure_reason: Option<String>,
    /// Control ticks taken (= recorded frames).
    pub steps: u64,
    /// Simulated time (s).
    pub sim_time: f64,
}

/// Squeeze: finger target this far (m, per finger) past the object's surface.
const SQUEEZE: f64 = 0.013;
/// Fully open finger target (m per finger).
const OPEN: f64 = 0.04;
/// Clearance kept between the fingertips / carried object and the tops of other objects (m).
const CLEARANCE: f64 = 0.05;
/// Grasp site height above the fingertips (m) for the bc_humanoid hand.
const SITE_ABOVE_TIPS: f64 = 0.015;

fn stopped(reason: String) -> SimError {
    SimError::Stopped(reason)
}

/// A held object: which arm, the grasp orientation, where the object's centre sits relative
/// to the grasp site (world frame, measured after lifting) and how far the site is above the
/// object's bottom.
struct Held {
    arm: Arm,
    rot: UnitQuaternion<f64>,
    offset: Vector3<f64>,
    site_above_bottom: f64,
}

struct Expert<'a> {
    ep: &'a EpisodeSetup,
    script: &'a mut ArmScript,
    rng: SplitMix64,
    /// Duration multiplier of every segment.
    pace: f64,
    /// Grasp-site poses of both hands at the start (left, right).
    home: [Isometry3<f64>; 2],
    /// Height (m) above which each idle hand (left, right) waits: clear of the objects near
    /// its starting place.
    idle_z: [f64; 2],
    /// Whether each hand (left, right) is busy; idle ones are lifted to `idle_z`.
    engaged: [bool; 2],
}

/// Runs the scripted expert of `ep`'s task kind in `world`, calling `on_tick` after every
/// control tick. `script` must start at `ep.initial_q`. Randomness (pace, offsets, yaw) comes
/// from the episode seed.
pub fn run_expert(
    ep: &EpisodeSetup,
    script: &mut ArmScript,
    world: &mut SimWorld,
    on_tick: &mut TickFn<'_>,
) -> Result<(), SimError> {
    let mut rng = SplitMix64::new(ep.seed ^ 0x6578_7065_7274_5eed);
    let pace = rng.range(0.85, 1.2);
    let home = [
        script.commanded_tool_pose(Arm::Left),
        script.commanded_tool_pose(Arm::Right),
    ];
    let mut ex = Expert {
        ep,
        script,
        rng,
        pace,
        home,
        idle_z: [0.0; 2],
        engaged: [false; 2],
    };
    for i in 0..2 {
        ex.idle_z[i] = ex.top_near(world, &ex.home[i].translation.vector, 0.15) + 0.08;
    }
    let wait = ex.rng.range(0.2, 0.5);
    ex.script.hold(world, wait, on_tick)?;
    match ep.kind {
        TaskKind::PickPlace | TaskKind::Stack => ex.pick_and_place(world, on_tick),
        TaskKind::Handover => ex.handover(world, on_tick),
    }
}

impl Expert<'_> {
    /// Traces (at debug level) where the hands and the task's object are and which robot
    /// contacts exist: the first thing to read when an expert fails.
    fn debug(&self, world: &SimWorld, what: &str) {
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let v = |p: &Isometry3<f64>| {
            let t = p.translation.vector;
            format!("({:.3}, {:.3}, {:.3})", t.x, t.y, t.z)
        };
        let mut hands = String::new();
        for arm in [Arm::Left, Arm::Right] {
            let c = self.script.commanded_tool_pose(arm);
            let m = self.script.measured_tool_pose(arm, world);
            hands += &format!(
                "{} commanded {} measured {} (rotation error {:.2} rad); ",
                arm.side(),
                v(&c),
                v(&m),
                c.rotation.angle_to(&m.rotation)
            );
        }
        let object = world.object_pose(&self.ep.object).map(|p| {
            let tilt = (p.rotation * Vector3::z()).z.clamp(-1.0, 1.0).acos();
            format!("{} tilt {tilt:.2} rad", v(&p))
        });
        let robot: Vec<&str> = world
            .model()
            .links
            .iter()
            .map(|l| l.name.as_str())
            .collect();
        let mut contacts: Vec<String> = world
            .contacts()
            .into_iter()
            .filter(|c| {
                c.impulse > 0.0
                    && (robot.contains(&c.body1.as_str()) || robot.contains(&c.body2.as_str()))
            })
            .map(|c| format!("{}-{}", c.body1, c.body2))
            .collect();
        contacts.sort();
        contacts.dedup();
        tracing::debug!(
            seed = self.ep.seed,
            t = world.time(),
            phase = what,
            %hands,
            ?object,
            ?contacts,
            "expert"
        );
    }

    fn shape(&self, name: &str) -> Result<ObjectShape, SimError> {
        self.ep
            .object_config(name)
            .map(|o| o.shape.clone())
            .ok_or_else(|| stopped(format!("no object \"{name}\"")))
    }

    fn pose(world: &SimWorld, name: &str) -> Result<Isometry3<f64>, SimError> {
        world
            .object_pose(name)
            .ok_or_else(|| stopped(format!("no object \"{name}\" in the world")))
    }

    fn sym(&mut self, a: f64) -> f64 {
        self.rng.range(-a, a)
    }

    /// Highest top (m) of the loose objects within `radius` (xy) of `at` (at least the table).
    fn top_near(&self, world: &SimWorld, at: &Vector3<f64>, radius: f64) -> f64 {
        self.ep
            .scene
            .objects
            .iter()
            .filter(|o| !o.fixed)
            .filter_map(|o| {
                let p = world.object_pose(&o.name)?.translation.vector;
                let near = (p.xy() - at.xy()).norm() < radius + footprint_radius(&o.shape);
                near.then(|| p.z + half_height(&o.shape))
            })
            .fold(self.ep.table_z, f64::max)
    }

    /// Highest top (m) of the loose objects other than `except`.
    fn highest_top(&self, world: &SimWorld, except: &str) -> f64 {
        self.ep
            .scene
            .objects
            .iter()
            .filter(|o| !o.fixed && o.name != except)
            .filter_map(|o| {
                let p = world.object_pose(&o.name)?;
                Some(p.translation.z + half_height(&o.shape))
            })
            .fold(self.ep.table_z, f64::max)
    }

    /// Grasp-site height that keeps the fingertips and an object hanging `site_above_bottom`
    /// below the site clear of everything but `except`.
    fn transit_z(&self, world: &SimWorld, except: &str, site_above_bottom: f64) -> f64 {
        let top = self.highest_top(world, except);
        top + CLEARANCE + site_above_bottom.max(SITE_ABOVE_TIPS)
    }

    /// Minimum-jerk move of `arm`'s grasp frame, timed from the distance and rotation (with
    /// the episode's pace and ±10 % jitter). Fails the episode if IK cannot follow.
    fn move_arm(
        &mut self,
        world: &mut SimWorld,
        on_tick: &mut TickFn<'_>,
        arm: Arm,
        pos: Vector3<f64>,
        rot: UnitQuaternion<f64>,
        speed: f64,
    ) -> Result<(), SimError> {
        let start = self.script.commanded_tool_pose(arm);
        let d = (pos - start.translation.vector).norm();
        let a = start.rotation.angle_to(&rot);
        let base = (0.35 + d / speed + a / 2.0).clamp(0.5, 3.5);
        let duration = base * self.pace * self.rng.range(0.9, 1.1);
        let goal = Isometry3::from_parts(Translation3::from(pos), rot);
        // The other hand holds its place in the world while the waist moves.
        let other = match arm {
            Arm::Left => Arm::Right,
            Arm::Right => Arm::Left,
        };
        let mut pinned = self.script.commanded_tool_pose(other);
        if !self.engaged[usize::from(other == Arm::Right)] {
            // An idle hand is also lifted clear of the objects (its home can be low).
            let z = self.idle_z[usize::from(other == Arm::Right)];
            pinned.translation.vector.z = pinned.translation.vector.z.max(z);
        }
        self.engaged[usize::from(arm == Arm::Right)] = true;
        let ticks = self.script.ticks_for(world, duration);
        let (plan, reports) = self
            .script
            .plan_arms(&[(arm, goal), (other, pinned)], ticks);
        let r = reports[0];
        if r.final_pos_err <= 0.005 && r.final_rot_err <= 0.05 && r.max_ik_pos_err <= 0.03 {
            return self.script.execute(world, &plan, on_tick);
        }
        // The straight line cannot be tracked (e.g. far from the current posture): move in
        // joint space to a globally solved configuration instead.
        let sol = self.script.solve_global(arm, &goal);
        if !sol.converged {
            return Err(stopped(format!(
                "the {} arm cannot reach ({:.3}, {:.3}, {:.3}): IK error {:.3} m / {:.3} rad",
                arm.side(),
                pos.x,
                pos.y,
                pos.z,
                sol.pos_err_m,
                sol.rot_err_rad
            )));
        }
        self.debug(world, "joint-space move");
        self.script.move_joints(world, &sol.q, duration, on_tick)
    }

    fn gripper(
        &mut self,
        world: &mut SimWorld,
        on_tick: &mut TickFn<'_>,
        arm: Arm,
        q: f64,
        duration: f64,
    ) -> Result<(), SimError> {
        let d = duration * self.rng.range(0.9, 1.15);
        self.script.gripper(world, arm, q, d, on_tick)
    }

    fn fingers_on(world: &SimWorld, arm: Arm, name: &str) -> bool {
        let touching = world.touching(name);
        let side = arm.side();
        ["a", "b"]
            .iter()
            .all(|f| touching.iter().any(|n| *n == format!("{side}_finger_{f}")))
    }

    /// Top-down grasp yaw for `shape` at `pose`: fingers closing across the narrower side of a
    /// box (any of the four faces of a square one), any yaw for a cylinder; the candidate
    /// nearest a random preferred yaw. The preferred yaw turns the hand outwards (positive for
    /// the right hand, negative for the left one): inward yaws make the upper arm sweep across
    /// the torso near the midline (measured with the bc_humanoid).
    fn grasp_yaw(&mut self, arm: Arm, shape: &ObjectShape, pose: &Isometry3<f64>) -> f64 {
        use std::f64::consts::{FRAC_PI_2, PI};
        let outward = if arm == Arm::Right { 1.0 } else { -1.0 };
        let preferred = outward * self.rng.range(0.25, 0.65);
        let (theta, period) = match shape {
            ObjectShape::Box { size } => {
                let yaw = pose.rotation.euler_angles().2;
                if (size[0] - size[1]).abs() < 0.002 {
                    (yaw, FRAC_PI_2)
                } else if size[0] < size[1] {
                    (yaw + FRAC_PI_2, PI)
                } else {
                    (yaw, PI)
                }
            }
            _ => return preferred,
        };
        // Candidates around the preferred yaw; outward ones (up to a quarter turn) first.
        let k = ((preferred - theta) / period).round();
        let candidates = [-1.0, 0.0, 1.0].map(|dk| theta + (k + dk) * period);
        let outward_ok = |y: &f64| (-0.1..=FRAC_PI_2 + 0.1).contains(&(outward * y));
        let nearest = |ok: &dyn Fn(&f64) -> bool| {
            candidates
                .iter()
                .copied()
                .filter(|y| ok(y))
                .min_by(|a, b| (a - preferred).abs().total_cmp(&(b - preferred).abs()))
        };
        nearest(&outward_ok)
            .or_else(|| nearest(&|_| true))
            .unwrap_or(preferred)
    }

    /// Approach from above, descend, close, check the grasp, lift to the transit height.
    /// `shift` (world, horizontal) moves the grasp point away from the object's centre, e.g.
    /// to one end of a bar.
    fn pick_top_down(
        &mut self,
        world: &mut SimWorld,
        on_tick: &mut TickFn<'_>,
        arm: Arm,
        name: &str,
        shift: Vector3<f64>,
    ) -> Result<Held, SimError> {
        let shape = self.shape(name)?;
        let pose = Self::pose(world, name)?;
        let c = pose.translation.vector + shift;
        let hh = half_height(&shape);
        let rot = top_down(self.grasp_yaw(arm, &shape, &pose));
        // Short objects are grasped at their centre, tall ones 2 cm below the top; the
        // fingertips stay above the table.
        let gz = if 2.0 * hh <= 0.07 {
            c.z
        } else {
            c.z + hh - 0.02
        };
        let gz = gz.max(self.ep.table_z + 0.022);
        let grasp = Vector3::new(c.x, c.y, gz);
        let site_above_bottom = gz - (c.z - hh);
        let transit = self.transit_z(world, name, site_above_bottom);
        // Pre-grasp above the object, randomly offset: the final descent is slightly oblique.
        let pre_z = (gz + self.rng.range(0.08, 0.12)).max(self.highest_top(world, name) + 0.06);
        let pre = Vector3::new(c.x + self.sym(0.012), c.y + self.sym(0.012), pre_z);
        self.move_arm(world, on_tick, arm, pre, rot, 0.25)?;
        self.move_arm(world, on_tick, arm, grasp, rot, 0.12)?;
        let q = (grasp_half_width(&shape) - SQUEEZE).max(0.0);
        self.gripper(world, on_tick, arm, q, 0.5)?;
        let settle = self.rng.range(0.15, 0.3);
        self.script.hold(world, settle, on_tick)?;
        self.debug(world, "grasped");
        if !Self::fingers_on(world, arm, name) {
            return Err(stopped(format!(
                "grasp of \"{name}\" missed: not both {} fingers touch it",
                arm.side()
            )));
        }
        let z0 = Self::pose(world, name)?.translation.z;
        let lift = Vector3::new(c.x, c.y, transit);
        self.move_arm(world, on_tick, arm, lift, rot, 0.2)?;
        self.debug(world, "lifted");
        let obj = Self::pose(world, name)?.translation.vector;
        if obj.z < z0 + 0.5 * (transit - gz) {
            return Err(stopped(format!(
                "\"{name}\" was not lifted (rose {:.3} m)",
                obj.z - z0
            )));
        }
        let site = self
            .script
            .measured_tool_pose(arm, world)
            .translation
            .vector;
        Ok(Held {
            arm,
            rot,
            offset: obj - site,
            site_above_bottom,
        })
    }

    /// Carries `held` above `(x, y)` at the transit height, lowers it until its bottom is at
    /// `bottom_z`, lets go (opening just enough), and retreats upwards.
    #[allow(clippy::too_many_arguments)]
    fn place(
        &mut self,
        world: &mut SimWorld,
        on_tick: &mut TickFn<'_>,
        held: &Held,
        name: &str,
        x: f64,
        y: f64,
        bottom_z: f64,
    ) -> Result<(), SimError> {
        let arm = held.arm;
        let shape = self.shape(name)?;
        let hh = half_height(&shape);
        let transit = self.transit_z(world, name, held.site_above_bottom);
        let site_z = |centre_z: f64| centre_z - held.offset.z;
        let sx = x - held.offset.x;
        let sy = y - held.offset.y;
        let here = self.script.commanded_tool_pose(arm).translation.vector;
        let z = here.z.max(transit);
        if here.z < transit - 1e-3 {
            self.move_arm(
                world,
                on_tick,
                arm,
                Vector3::new(here.x, here.y, z),
                held.rot,
                0.2,
            )?;
        }
        self.move_arm(world, on_tick, arm, Vector3::new(sx, sy, z), held.rot, 0.25)?;
        let down = Vector3::new(sx, sy, site_z(bottom_z + hh));
        self.move_arm(world, on_tick, arm, down, held.rot, 0.12)?;
        self.debug(world, "lowered");
        let open = (grasp_half_width(&shape) + 0.012).min(OPEN);
        self.gripper(world, on_tick, arm, open, 0.35)?;
        let settle = self.rng.range(0.15, 0.3);
        self.script.hold(world, settle, on_tick)?;
        let up = Vector3::new(sx, sy, down.z + self.rng.range(0.08, 0.12));
        self.move_arm(world, on_tick, arm, up, held.rot, 0.2)?;
        Ok(())
    }

    /// Cartesian move of `arm` back over its starting place, at least at the idle height, in
    /// its starting orientation, passing above every object but `held` (carried by the other
    /// hand); the hand is idle afterwards.
    fn retreat_home(
        &mut self,
        world: &mut SimWorld,
        on_tick: &mut TickFn<'_>,
        arm: Arm,
        held: &str,
    ) -> Result<(), SimError> {
        let i = usize::from(arm == Arm::Right);
        let home = self.home[i];
        let idle_z = self.idle_z[i].max(self.highest_top(world, held) + 0.08);
        let mut p = home.translation.vector;
        p.z = p.z.max(idle_z);
        let here = self.script.commanded_tool_pose(arm).translation.vector;
        if here.z < idle_z {
            let up = Vector3::new(here.x, here.y, idle_z);
            let rot = self.script.commanded_tool_pose(arm).rotation;
            self.move_arm(world, on_tick, arm, up, rot, 0.2)?;
        }
        self.move_arm(world, on_tick, arm, p, home.rotation, 0.25)?;
        self.engaged[i] = false;
        Ok(())
    }

    fn pick_and_place(
        &mut self,
        world: &mut SimWorld,
        on_tick: &mut TickFn<'_>,
    ) -> Result<(), SimError> {
        let ep = self.ep;
        let obj = Self::pose(world, &ep.object)?.translation.vector;
        let tgt_pose = Self::pose(world, &ep.target)?;
        let tgt = tgt_pose.translation.vector;
        // The nearer arm for both the object and the destination.
        let arm = if obj.y + tgt.y >= 0.0 {
            Arm::Left
        } else {
            Arm::Right
        };
        let held = self.pick_top_down(world, on_tick, arm, &ep.object, Vector3::zeros())?;
        let tgt_shape = self.shape(&ep.target)?;
        let tgt_pose = Self::pose(world, &ep.target)?;
        let t = tgt_pose.translation.vector;
        let (x, y, bottom_z) = match tgt_shape {
            // Into a container: centred, released 1.5 cm above the floor.
            ObjectShape::Container { size, wall } => {
                let floor = t.z - size[2] / 2.0 + wall;
                (t.x + self.sym(0.01), t.y + self.sym(0.01), floor + 0.015)
            }
            // Onto a block: centred, released 5 mm above its top.
            ref s => (
                t.x + self.sym(0.004),
                t.y + self.sym(0.004),
                t.z + half_height(s) + 0.005,
            ),
        };
        self.place(world, on_tick, &held, &ep.object, x, y, bottom_z)?;
        self.retreat_home(world, on_tick, arm, "")?;
        let settle = self.rng.range(0.3, 0.5);
        self.script.hold(world, settle, on_tick)
    }

    /// Passes a bar from one hand to the other: the hand on the bar's side grasps its outer
    /// end from above and holds it across the middle in front of the robot; the other hand
    /// grasps the other end from above; the first lets go and withdraws; the second sets the
    /// bar down flat on the mark.
    fn handover(&mut self, world: &mut SimWorld, on_tick: &mut TickFn<'_>) -> Result<(), SimError> {
        use std::f64::consts::{FRAC_PI_2, PI};
        let ep = self.ep;
        let name = ep.object.as_str();
        let pose = Self::pose(world, name)?;
        let c = pose.translation.vector;
        let (giver, receiver) = if c.y >= 0.0 {
            (Arm::Left, Arm::Right)
        } else {
            (Arm::Right, Arm::Left)
        };
        let side = if giver == Arm::Left { 1.0 } else { -1.0 };
        let shape = self.shape(name)?;
        let hh = half_height(&shape);
        let (axis_local, half_len) = match shape {
            ObjectShape::Box { size } if size[1] >= size[0] => (Vector3::y(), size[1] / 2.0),
            ObjectShape::Box { size } => (Vector3::x(), size[0] / 2.0),
            _ => (Vector3::y(), 0.0),
        };
        // Grasp points: `grip` from the centre along the bar, each hand on its own side.
        let grip = (half_len - 0.04).clamp(0.0, 0.05);
        let axis = |p: &Isometry3<f64>| {
            let a = p.rotation * axis_local;
            let a = Vector3::new(a.x, a.y, 0.0).normalize();
            if a.y * side >= 0.0 { a } else { -a }
        };
        let u = axis(&pose);
        // Two hands at work: the waist holds still, so that neither hand drags the other (the
        // task keeps its objects within the arms' reach without the waist).
        self.script.lock_waist = true;
        let held = self.pick_top_down(world, on_tick, giver, name, u * grip)?;

        // Bring the bar across the middle, its axis roughly along y, in front of the robot.
        let bottom = (ep.table_z + self.rng.range(0.10, 0.14))
            .max(self.highest_top(world, name) + CLEARANCE);
        let centre = Vector3::new(self.rng.range(0.38, 0.47), self.sym(0.02), bottom + hh);
        let psi = self.sym(0.25);
        let u_des = Vector3::new(-psi.sin(), psi.cos(), 0.0) * side;
        let p = Self::pose(world, name)?;
        let u_now = axis(&p);
        let turn = u_now.y.atan2(u_now.x);
        let delta = {
            let d = u_des.y.atan2(u_des.x) - turn;
            (d + PI).rem_euclid(2.0 * PI) - PI
        };
        let spin = UnitQuaternion::from_axis_angle(&Vector3::z_axis(), delta);
        let site_now = self.script.commanded_tool_pose(giver).translation.vector;
        let r = spin * (p.translation.vector - site_now);
        let site = centre - r;
        self.move_arm(world, on_tick, giver, site, spin * held.rot, 0.25)?;
        self.script.hold(world, 0.2, on_tick)?;
        self.debug(world, "at handover point");

        // The receiver takes the other end from above.
        let p = Self::pose(world, name)?;
        let u = axis(&p);
        let c = p.translation.vector;
        let target = c - u * grip;
        let alpha = u.y.atan2(u.x);
        let outward = -side;
        let yaw = [alpha, alpha - PI, alpha + PI]
            .into_iter()
            .min_by(|a, b| {
                let score = |y: f64| (y - outward * FRAC_PI_2).abs();
                score(*a).total_cmp(&score(*b))
            })
            .unwrap_or(alpha);
        let rot = top_down(yaw);
        let gz = c.z.max(ep.table_z + 0.022);
        let pre = Vector3::new(
            target.x + self.sym(0.01),
            target.y + self.sym(0.01),
            gz + self.rng.range(0.08, 0.11),
        );
        self.move_arm(world, on_tick, receiver, pre, rot, 0.25)?;
        self.debug(world, "receiver above");
        self.move_arm(
            world,
            on_tick,
            receiver,
            Vector3::new(target.x, target.y, gz),
            rot,
            0.12,
        )?;
        let q = (grasp_half_width(&shape) - SQUEEZE).max(0.0);
        self.gripper(world, on_tick, receiver, q, 0.5)?;
        self.script.hold(world, 0.2, on_tick)?;
        self.debug(world, "receiver closed");
        if !Self::fingers_on(world, receiver, name) {
            return Err(stopped(format!(
                "handover of \"{name}\" missed: not both {} fingers touch it",
                receiver.side()
            )));
        }
        // The giver lets go and withdraws.
        self.gripper(world, on_tick, giver, OPEN, 0.35)?;
        self.script.hold(world, 0.2, on_tick)?;
        let g = self.script.commanded_tool_pose(giver);
        let up = g.translation.vector + Vector3::new(0.0, 0.0, self.rng.range(0.07, 0.1));
        self.move_arm(world, on_tick, giver, up, g.rotation, 0.2)?;
        self.retreat_home(world, on_tick, giver, name)?;
        self.debug(world, "giver home");

        // The receiver sets the bar down flat on the mark.
        let obj = Self::pose(world, name)?.translation.vector;
        let site = self
            .script
            .measured_tool_pose(receiver, world)
            .translation
            .vector;
        let held = Held {
            arm: receiver,
            rot,
            offset: obj - site,
            site_above_bottom: site.z - (obj.z - hh),
        };
        let spot = Self::pose(world, &ep.target)?.translation.vector;
        let spot_top = spot.z
            + ep.object_config(&ep.target)
                .map_or(0.0, |o| half_height(&o.shape));
        let (x, y) = (spot.x + self.sym(0.01), spot.y + self.sym(0.01));
        self.place(world, on_tick, &held, name, x, y, spot_top + 0.005)?;
        self.debug(world, "placed");
        self.retreat_home(world, on_tick, receiver, "")?;
        let settle = self.rng.range(0.3, 0.5);
        self.script.hold(world, settle, on_tick)
    }
}
