//! Tasks as data: `sim/tasks/*.toml` names a base scene, an object catalogue (shapes with size
//! ranges, a colour palette), containers or marked spots, layout and domain-randomization
//! ranges, instruction paraphrases (each in the `train` or `heldout` split), a success test and a
//! time limit. [`TaskSpec::sample`] turns a spec and a seed into a concrete [`EpisodeSetup`]:
//! a scene with the objects placed, the instruction, the light, camera-mount jitter and the
//! initial joint offsets, all drawn from one [`SplitMix64`] stream, so a seed reproduces an
//! episode bit for bit.
//!
//! Units: metres, kilograms, seconds, radians; colours are linear RGB in [0, 1].

use std::path::{Path, PathBuf};

use nalgebra::{Isometry3, Point3, Translation3, UnitQuaternion, Vector3};
use serde::Deserialize;

use crate::error::SimError;
use crate::rng::SplitMix64;
use crate::scene::{ObjectConfig, ObjectShape, SceneConfig};
use crate::setup::SimSetup;
use crate::world::SimWorld;

/// An inclusive range `[lo, hi]` sampled uniformly.
pub type Range = [f64; 2];

/// What the robot has to do (selects the scripted expert and the roles of the objects).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Put an object into a container, with one arm.
    PickPlace,
    /// Put a block on another block, with one arm.
    Stack,
    /// Pick an object with one hand, pass it to the other hand, place it on a marked spot.
    Handover,
}

/// A whole task file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Task name.
    pub name: String,
    /// What kind of task this is.
    pub kind: TaskKind,
    /// Base scene (name under `sim/scenes/` or a path). Its fixed objects (the table) and
    /// physics are kept; its loose objects are replaced by the task's.
    pub scene: String,
    /// Control (and recording) rate, Hz.
    #[serde(default = "default_control_hz")]
    pub control_hz: f64,
    /// Episodes longer than this (simulated seconds) fail.
    pub time_limit_s: f64,
    /// Named colours; the names appear in instructions.
    pub colours: Vec<ColourSpec>,
    /// The graspable objects (the task's own and distractors).
    pub objects: ObjectSetSpec,
    /// Containers (required by `pick_place`).
    #[serde(default)]
    pub containers: Option<ContainerSpec>,
    /// The marked spot (required by `handover`).
    #[serde(default)]
    pub spot: Option<SpotSpec>,
    /// Where things go on the table.
    pub layout: LayoutSpec,
    /// Domain randomization beyond the objects.
    #[serde(default)]
    pub randomize: RandomizeSpec,
    /// Instruction templates: `{object}` is the object to move ("red cube"), `{target}` where it
    /// goes ("blue bowl", "green block", "yellow mark").
    pub instructions: Vec<InstructionSpec>,
    /// How success is decided.
    pub success: SuccessSpec,
}

fn default_control_hz() -> f64 {
    20.0
}

/// A named colour.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ColourSpec {
    /// Word used in instructions and object names.
    pub name: String,
    /// Linear RGB.
    pub rgb: [f32; 3],
}

/// A shape of the catalogue with size ranges (m, full extents).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ShapeSpec {
    /// A cube with side in `side`.
    Cube {
        /// Word used in instructions ("cube", "block").
        word: String,
        /// Side length range.
        side: Range,
    },
    /// A box with independent side ranges.
    Box {
        /// Word used in instructions.
        word: String,
        /// Extent along x.
        x: Range,
        /// Extent along y.
        y: Range,
        /// Height.
        z: Range,
    },
    /// An upright cylinder.
    Cylinder {
        /// Word used in instructions.
        word: String,
        /// Radius range.
        radius: Range,
        /// Height range.
        height: Range,
    },
}

impl ShapeSpec {
    /// The instruction word.
    pub fn word(&self) -> &str {
        match self {
            ShapeSpec::Cube { word, .. }
            | ShapeSpec::Box { word, .. }
            | ShapeSpec::Cylinder { word, .. } => word,
        }
    }

    fn ranges(&self) -> Vec<(&'static str, Range)> {
        match self {
            ShapeSpec::Cube { side, .. } => vec![("side", *side)],
            ShapeSpec::Box { x, y, z, .. } => vec![("x", *x), ("y", *y), ("z", *z)],
            ShapeSpec::Cylinder { radius, height, .. } => {
                vec![("radius", *radius), ("height", *height)]
            }
        }
    }

    fn sample(&self, rng: &mut SplitMix64) -> ObjectShape {
        match self {
            ShapeSpec::Cube { side, .. } => {
                let s = uniform(rng, *side);
                ObjectShape::Box { size: [s, s, s] }
            }
            ShapeSpec::Box { x, y, z, .. } => ObjectShape::Box {
                size: [uniform(rng, *x), uniform(rng, *y), uniform(rng, *z)],
            },
            ShapeSpec::Cylinder { radius, height, .. } => ObjectShape::Cylinder {
                radius: uniform(rng, *radius),
                height: uniform(rng, *height),
            },
        }
    }
}

/// The graspable objects of an episode.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ObjectSetSpec {
    /// Number of graspable objects, task objects included (inclusive range).
    pub count: [usize; 2],
    /// The catalogue.
    pub shapes: Vec<ShapeSpec>,
    /// Words of the shapes the task's object may have (default: any).
    #[serde(default)]
    pub target_shapes: Vec<String>,
    /// Words of the shapes distractors may have (default: any).
    #[serde(default)]
    pub distractor_shapes: Vec<String>,
    /// Mass range (kg).
    pub mass: Range,
    /// Coulomb friction range.
    pub friction: Range,
    /// Each colour channel is jittered by up to ± this (the colour keeps its name).
    #[serde(default)]
    pub colour_jitter: f64,
}

/// Open-top containers ("bowls").
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ContainerSpec {
    /// Word used in instructions.
    pub word: String,
    /// Number of containers (inclusive range); each has its own colour.
    pub count: [usize; 2],
    /// Outer side length range (square footprint).
    pub size: Range,
    /// Outer height range.
    pub height: Range,
    /// Wall and floor thickness.
    pub wall: f64,
    /// Mass range (kg).
    pub mass: Range,
    /// Friction range.
    pub friction: Range,
}

/// A flat coloured marker fixed on the table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SpotSpec {
    /// Word used in instructions ("mark", "square").
    pub word: String,
    /// Side length range (square).
    pub size: Range,
    /// Thickness (m).
    pub thickness: f64,
}

/// Where objects go.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LayoutSpec {
    /// Range of object centre x (m, world).
    pub x: Range,
    /// Range of object centre y.
    pub y: Range,
    /// Range of object yaw (rad).
    pub yaw: Range,
    /// Smallest gap between the bounding circles of two objects (m): room for open fingers.
    pub min_gap: f64,
    /// One-arm tasks: the object and its destination must both lie on one arm's side, widened
    /// by this band (m) across the midline (`y ≥ −band` for the left arm, `y ≤ band` for the
    /// right one).
    #[serde(default)]
    pub one_arm_band: Option<f64>,
    /// Two-arm tasks: the object starts on one side with `|y|` in this range...
    #[serde(default)]
    pub object_abs_y: Option<Range>,
    /// ...and the destination lies on the other side with `|y|` in this range.
    #[serde(default)]
    pub target_abs_y: Option<Range>,
}

/// Randomization of the environment (everything is uniform in ± the given amount).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RandomizeSpec {
    /// Jitter of each channel of the table colour.
    pub table_colour_jitter: f64,
    /// Jitter of the x and y components of the light direction (z is −1 before jitter).
    pub light_direction_jitter: f64,
    /// Diffuse light intensity range.
    pub light_intensity: Range,
    /// Ambient light range.
    pub light_ambient: Range,
    /// Camera mount translation jitter per axis (m).
    pub camera_translation_m: f64,
    /// Camera mount rotation jitter per axis (rad, rotation vector).
    pub camera_rotation_rad: f64,
    /// Initial joint offset per DoF (rad or m); grippers excluded.
    pub joint_noise_rad: f64,
}

impl Default for RandomizeSpec {
    fn default() -> Self {
        Self {
            table_colour_jitter: 0.0,
            light_direction_jitter: 0.0,
            light_intensity: [0.75, 0.75],
            light_ambient: [0.35, 0.35],
            camera_translation_m: 0.0,
            camera_rotation_rad: 0.0,
            joint_noise_rad: 0.0,
        }
    }
}

/// Which split an instruction paraphrase belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Used for training data.
    Train,
    /// Kept out of training, for evaluating language generalization.
    Heldout,
}

/// One instruction template.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InstructionSpec {
    /// Template with `{object}` and `{target}`.
    pub text: String,
    /// Split.
    pub split: Split,
}

/// The success test. Every kind also requires the moved object to be at rest and not touched
/// by the robot (the gripper has let go).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SuccessSpec {
    /// The object's centre is inside the container's inner footprint and below its rim; the
    /// container is upright.
    Inside {
        /// Largest object speed counted as resting (m/s).
        #[serde(default = "default_max_speed")]
        max_speed: f64,
    },
    /// The object's centre is over the target's top face and its bottom sits on that face.
    OnTop {
        /// Largest object speed counted as resting (m/s).
        #[serde(default = "default_max_speed")]
        max_speed: f64,
        /// Allowed gap between the object's bottom and the target's top (m).
        #[serde(default = "default_z_tolerance")]
        z_tolerance: f64,
    },
    /// The object's centre is over the spot and it stands on it (upright).
    OnSpot {
        /// Largest object speed counted as resting (m/s).
        #[serde(default = "default_max_speed")]
        max_speed: f64,
        /// Allowed gap between the object's bottom and the spot's top (m).
        #[serde(default = "default_z_tolerance")]
        z_tolerance: f64,
    },
}

fn default_max_speed() -> f64 {
    0.03
}
fn default_z_tolerance() -> f64 {
    0.012
}

/// An object placed by [`TaskSpec::sample`], with the words that describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacedItem {
    /// Scene object name (`<colour>_<word>`).
    pub name: String,
    /// Colour word.
    pub colour: String,
    /// Shape word.
    pub word: String,
    /// What it is.
    pub role: ItemRole,
}

/// The role of a placed item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemRole {
    /// The object the instruction asks to move.
    Object,
    /// Where it has to go (container, base block or spot).
    Target,
    /// Another graspable object.
    Distractor,
    /// A container that is not the target.
    OtherContainer,
}

/// One concrete episode: everything random already drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeSetup {
    /// Task name.
    pub task: String,
    /// Task kind.
    pub kind: TaskKind,
    /// The seed everything was drawn from.
    pub seed: u64,
    /// The scene: the base scene's furniture plus the placed objects, randomized light.
    pub scene: SceneConfig,
    /// Objects placed for the task (furniture excluded).
    pub items: Vec<PlacedItem>,
    /// Name of the object to move.
    pub object: String,
    /// Name of the destination (container, base block, spot).
    pub target: String,
    /// Height of the table top (m).
    pub table_z: f64,
    /// The instruction.
    pub instruction: String,
    /// The template the instruction was written from (`{object}` and `{target}` placeholders).
    pub template: String,
    /// Whether the instruction came from the held-out split.
    pub heldout: bool,
    /// Initial joint positions (DoF vector): the default pose plus noise.
    pub initial_q: Vec<f64>,
    /// Per robot camera (embodiment order): offset applied to the mount, `mount · jitter`.
    pub camera_jitter: Vec<Isometry3<f64>>,
}

impl EpisodeSetup {
    /// The scene entry of a placed object.
    pub fn object_config(&self, name: &str) -> Option<&ObjectConfig> {
        self.scene.object(name)
    }

    /// Words describing a placed item ("red cube").
    pub fn describe(&self, name: &str) -> Option<String> {
        self.items
            .iter()
            .find(|it| it.name == name)
            .map(|it| format!("{} {}", it.colour, it.word))
    }

    /// The same scene with another instruction: `object` (a distractor of this episode) becomes
    /// the object to move and the old object a distractor; the instruction is rewritten from
    /// the same template. `None` if `object` is not a distractor here.
    pub fn retarget(&self, object: &str) -> Option<EpisodeSetup> {
        let new = self
            .items
            .iter()
            .find(|it| it.name == object && it.role == ItemRole::Distractor)?;
        let mut ep = self.clone();
        for it in &mut ep.items {
            if it.name == self.object {
                it.role = ItemRole::Distractor;
            } else if it.name == new.name {
                it.role = ItemRole::Object;
            }
        }
        ep.object = new.name.clone();
        ep.instruction = self
            .template
            .replace("{object}", &self.describe(&ep.object)?)
            .replace("{target}", &self.describe(&self.target)?);
        Some(ep)
    }

    /// Names of the graspable objects other than the one to move (distractors).
    pub fn distractors(&self) -> Vec<&str> {
        self.items
            .iter()
            .filter(|it| it.role == ItemRole::Distractor)
            .map(|it| it.name.as_str())
            .collect()
    }
}

fn uniform(rng: &mut SplitMix64, r: Range) -> f64 {
    if r[1] > r[0] {
        rng.range(r[0], r[1])
    } else {
        r[0]
    }
}

fn sym(rng: &mut SplitMix64, a: f64) -> f64 {
    if a > 0.0 { rng.range(-a, a) } else { 0.0 }
}

fn pick<'a, T>(rng: &mut SplitMix64, items: &'a [T]) -> &'a T {
    &items[(rng.next_u64() % items.len() as u64) as usize]
}

fn count_in(rng: &mut SplitMix64, c: [usize; 2]) -> usize {
    c[0] + (rng.next_u64() % (c[1] - c[0] + 1) as u64) as usize
}

/// Radius of the bounding circle of a shape's footprint (m).
pub fn footprint_radius(shape: &ObjectShape) -> f64 {
    match shape {
        ObjectShape::Box { size } | ObjectShape::Container { size, .. } => {
            0.5 * size[0].hypot(size[1])
        }
        ObjectShape::Cylinder { radius, .. } | ObjectShape::Sphere { radius } => *radius,
        ObjectShape::Table { size, .. } => 0.5 * size[0].hypot(size[1]),
    }
}

/// Half the height of an upright shape (m).
pub fn half_height(shape: &ObjectShape) -> f64 {
    match shape {
        ObjectShape::Box { size } | ObjectShape::Container { size, .. } => size[2] / 2.0,
        ObjectShape::Cylinder { height, .. } => height / 2.0,
        ObjectShape::Sphere { radius } => *radius,
        ObjectShape::Table { size, .. } => size[2] / 2.0,
    }
}

/// Half the width the fingers close across for a top-down grasp (m): half the box side along
/// the closing direction (the smaller one), or the cylinder's radius.
pub fn grasp_half_width(shape: &ObjectShape) -> f64 {
    match shape {
        ObjectShape::Box { size } | ObjectShape::Container { size, .. } => {
            size[0].min(size[1]) / 2.0
        }
        ObjectShape::Cylinder { radius, .. } | ObjectShape::Sphere { radius } => *radius,
        ObjectShape::Table { size, .. } => size[0].min(size[1]) / 2.0,
    }
}

/// A thing to place: its shape and the constraint on its centre's y.
struct ToPlace {
    config: ObjectConfig,
    item: PlacedItem,
    /// Allowed y interval of the centre.
    y: Range,
}

impl TaskSpec {
    /// Reads and validates a task file.
    pub fn load(path: &Path) -> Result<Self, SimError> {
        Self::parse(&crate::scene::read_text(path)?, path)
    }

    /// Parses and validates task TOML; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, SimError> {
        let spec: TaskSpec = crate::scene::parse_toml(text, path)?;
        spec.validate(path)?;
        Ok(spec)
    }

    /// The instruction templates of one split.
    pub fn templates(&self, split: Split) -> Vec<&str> {
        self.instructions
            .iter()
            .filter(|i| i.split == split)
            .map(|i| i.text.as_str())
            .collect()
    }

    fn validate(&self, path: &Path) -> Result<(), SimError> {
        let bad = |message: String| SimError::Config {
            path: path.to_path_buf(),
            message,
        };
        let range_ok = |r: Range| r[0].is_finite() && r[1].is_finite() && r[0] <= r[1];
        let positive = |r: Range| range_ok(r) && r[0] > 0.0;
        if !(self.control_hz > 0.0 && self.control_hz <= 1000.0) {
            return Err(bad(format!(
                "control_hz = {}: must be in (0, 1000]",
                self.control_hz
            )));
        }
        if !(self.time_limit_s > 0.0 && self.time_limit_s.is_finite()) {
            return Err(bad("time_limit_s must be > 0".into()));
        }
        // Colours.
        if self.colours.is_empty() {
            return Err(bad("colours: at least one colour is needed".into()));
        }
        for (i, c) in self.colours.iter().enumerate() {
            if c.name.is_empty() || c.name.contains(char::is_whitespace) {
                return Err(bad(format!(
                    "colours[{i}].name \"{}\": one word expected",
                    c.name
                )));
            }
            if !c.rgb.iter().all(|v| (0.0..=1.0).contains(v)) {
                return Err(bad(format!(
                    "colours[{i}] (\"{}\").rgb must be in [0, 1]",
                    c.name
                )));
            }
            if self.colours[..i].iter().any(|o| o.name == c.name) {
                return Err(bad(format!("colours[{i}]: duplicate name \"{}\"", c.name)));
            }
        }
        // Objects.
        let o = &self.objects;
        if o.count[0] == 0 || o.count[0] > o.count[1] {
            return Err(bad(format!(
                "objects.count = {:?}: need 1 ≤ min ≤ max",
                o.count
            )));
        }
        if self.kind == TaskKind::Stack && o.count[0] < 2 {
            return Err(bad("objects.count: stacking needs at least 2 blocks".into()));
        }
        if o.shapes.is_empty() {
            return Err(bad("objects.shapes: the catalogue is empty".into()));
        }
        for (i, s) in o.shapes.iter().enumerate() {
            for (field, r) in s.ranges() {
                if !positive(r) {
                    return Err(bad(format!(
                        "objects.shapes[{i}] (\"{}\").{field} = {r:?}: need 0 < lo ≤ hi",
                        s.word()
                    )));
                }
            }
        }
        for (field, words) in [
            ("target_shapes", &o.target_shapes),
            ("distractor_shapes", &o.distractor_shapes),
        ] {
            for w in words {
                if !o.shapes.iter().any(|s| s.word() == w) {
                    return Err(bad(format!(
                        "objects.{field}: \"{w}\" is not a shape of objects.shapes"
                    )));
                }
            }
        }
        if !(positive(o.mass) && range_ok(o.friction) && o.friction[0] >= 0.0) {
            return Err(bad(
                "objects.mass must be > 0 and objects.friction ≥ 0 (lo ≤ hi)".into(),
            ));
        }
        // Distinct (colour, shape) pairs are needed to name every object unambiguously.
        // Distractors draw from their own shapes and must avoid the object's pair (and, when
        // stacking, the base block's colour).
        let n_distractor_shapes = if o.distractor_shapes.is_empty() {
            o.shapes.len()
        } else {
            o.distractor_shapes.len()
        };
        let combos = self.colours.len() * n_distractor_shapes;
        if o.count[1] > combos {
            return Err(bad(format!(
                "objects.count max {} exceeds the {combos} distinct colour/shape pairs of the distractors",
                o.count[1]
            )));
        }
        if self.kind == TaskKind::Stack && o.count[1] > self.colours.len() {
            return Err(bad(format!(
                "objects.count max {}: stacked blocks are told apart by colour, only {} colours",
                o.count[1],
                self.colours.len()
            )));
        }
        // Kind-specific parts.
        match self.kind {
            TaskKind::PickPlace => {
                let Some(c) = &self.containers else {
                    return Err(bad("pick_place needs a [containers] table".into()));
                };
                if c.count[0] == 0 || c.count[0] > c.count[1] || c.count[1] > self.colours.len() {
                    return Err(bad(format!(
                        "containers.count = {:?}: need 1 ≤ min ≤ max ≤ number of colours",
                        c.count
                    )));
                }
                let sizes_ok = positive(c.size) && positive(c.height) && positive(c.mass);
                let walls_ok = c.wall > 0.0 && 2.0 * c.wall < c.size[0] && c.wall < c.height[0];
                if !(sizes_ok && walls_ok) {
                    return Err(bad(
                        "containers: sizes, height and mass must be > 0, walls thinner than half the size".into(),
                    ));
                }
            }
            TaskKind::Handover => {
                let Some(s) = &self.spot else {
                    return Err(bad("handover needs a [spot] table".into()));
                };
                if !(positive(s.size) && s.thickness > 0.0) {
                    return Err(bad("spot.size and spot.thickness must be > 0".into()));
                }
                let ok = |r: Option<Range>| r.is_some_and(|r| range_ok(r) && r[0] >= 0.0);
                if !(ok(self.layout.object_abs_y) && ok(self.layout.target_abs_y)) {
                    return Err(bad(
                        "handover needs layout.object_abs_y and layout.target_abs_y (0 ≤ lo ≤ hi): the object and the spot lie on opposite sides".into(),
                    ));
                }
            }
            TaskKind::Stack => {}
        }
        let success_ok = matches!(
            (self.kind, &self.success),
            (TaskKind::PickPlace, SuccessSpec::Inside { .. })
                | (TaskKind::Stack, SuccessSpec::OnTop { .. })
                | (TaskKind::Handover, SuccessSpec::OnSpot { .. })
        );
        if !success_ok {
            return Err(bad(format!(
                "success.kind does not fit kind {:?} (pick_place → inside, stack → on_top, handover → on_spot)",
                self.kind
            )));
        }
        // Layout.
        let l = &self.layout;
        if !(range_ok(l.x) && range_ok(l.y) && range_ok(l.yaw) && l.min_gap >= 0.0) {
            return Err(bad(
                "layout: x, y, yaw ranges need lo ≤ hi, min_gap ≥ 0".into()
            ));
        }
        // Randomization.
        let r = &self.randomize;
        let amounts = [
            r.table_colour_jitter,
            r.light_direction_jitter,
            r.camera_translation_m,
            r.camera_rotation_rad,
            r.joint_noise_rad,
            o.colour_jitter,
        ];
        if amounts.iter().any(|a| !(a.is_finite() && *a >= 0.0))
            || !(range_ok(r.light_intensity) && range_ok(r.light_ambient))
        {
            return Err(bad(
                "randomize: jitters must be ≥ 0 and light ranges lo ≤ hi".into(),
            ));
        }
        // Instructions.
        for (i, ins) in self.instructions.iter().enumerate() {
            let t = &ins.text;
            if !(t.contains("{object}") && t.contains("{target}")) {
                return Err(bad(format!(
                    "instructions[{i}] \"{t}\": must contain {{object}} and {{target}}"
                )));
            }
            let stripped = t.replace("{object}", "").replace("{target}", "");
            if stripped.contains('{') || stripped.contains('}') {
                return Err(bad(format!(
                    "instructions[{i}] \"{t}\": only {{object}} and {{target}} can be substituted"
                )));
            }
        }
        for split in [Split::Train, Split::Heldout] {
            if self.templates(split).is_empty() {
                return Err(bad(format!(
                    "instructions: no template in the {split:?} split"
                )));
            }
        }
        Ok(())
    }

    /// Draws a concrete episode from `seed` on top of `base` (the task's scene with its robot).
    /// The instruction comes from the training split, or from the held-out one if `heldout`.
    pub fn sample(
        &self,
        base: &SimSetup,
        seed: u64,
        heldout: bool,
    ) -> Result<EpisodeSetup, SimError> {
        let mut rng = SplitMix64::new(seed);
        let fail = |message: String| SimError::Config {
            path: PathBuf::from(format!("task \"{}\"", self.name)),
            message,
        };
        let table = base
            .scene
            .objects
            .iter()
            .find(|o| o.fixed && matches!(o.shape, ObjectShape::Table { .. }))
            .ok_or_else(|| {
                fail(format!(
                    "scene \"{}\" has no fixed table to put objects on",
                    base.scene.name
                ))
            })?;
        let table_z = match table.shape {
            ObjectShape::Table { size, .. } => table.position[2] + size[2],
            _ => unreachable!(),
        };

        // Scene: furniture with a randomized table colour, randomized light.
        let mut scene = base.scene.clone();
        scene.objects.retain(|o| o.fixed);
        let rz = &self.randomize;
        for o in scene
            .objects
            .iter_mut()
            .filter(|o| matches!(o.shape, ObjectShape::Table { .. }))
        {
            for c in &mut o.colour {
                *c = (*c + sym(&mut rng, rz.table_colour_jitter) as f32).clamp(0.0, 1.0);
            }
        }
        let base_dir = Vector3::from(base.scene.light.direction);
        let base_dir = base_dir / -base_dir.z.min(-1e-3);
        scene.light.direction = [
            base_dir.x + sym(&mut rng, rz.light_direction_jitter),
            base_dir.y + sym(&mut rng, rz.light_direction_jitter),
            -1.0,
        ];
        scene.light.intensity = uniform(&mut rng, rz.light_intensity);
        scene.light.ambient = uniform(&mut rng, rz.light_ambient);

        // Robot: joint noise (grippers keep their default opening), camera-mount jitter.
        let gripper_dofs: Vec<usize> = ["left_gripper", "right_gripper"]
            .iter()
            .filter_map(|g| base.embodiment.group_dof_indices(&base.kin, g).ok())
            .flatten()
            .collect();
        let limits = base.kin.dof_limits();
        let initial_q: Vec<f64> = base
            .drive
            .initial
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let noise = sym(&mut rng, rz.joint_noise_rad);
                if gripper_dofs.contains(&i) {
                    *q
                } else {
                    (q + noise).clamp(limits[i].lower, limits[i].upper)
                }
            })
            .collect();
        let camera_jitter: Vec<Isometry3<f64>> = base
            .embodiment
            .cameras
            .iter()
            .map(|_| {
                let t = Vector3::new(
                    sym(&mut rng, rz.camera_translation_m),
                    sym(&mut rng, rz.camera_translation_m),
                    sym(&mut rng, rz.camera_translation_m),
                );
                let r = Vector3::new(
                    sym(&mut rng, rz.camera_rotation_rad),
                    sym(&mut rng, rz.camera_rotation_rad),
                    sym(&mut rng, rz.camera_rotation_rad),
                );
                Isometry3::from_parts(Translation3::from(t), UnitQuaternion::new(r))
            })
            .collect();

        // What goes on the table.
        let (to_place, object, target) = self.choose_items(&mut rng, table_z)?;

        // Placement by rejection sampling; the whole layout is redrawn if an item does not fit.
        let l = &self.layout;
        let mut placed: Vec<(ObjectConfig, PlacedItem)> = Vec::new();
        'layout: for _attempt in 0..100 {
            placed.clear();
            for tp in &to_place {
                let r = footprint_radius(&tp.config.shape);
                let y_lo = l.y[0].max(tp.y[0]);
                let y_hi = l.y[1].min(tp.y[1]);
                if y_lo > y_hi {
                    return Err(fail(format!(
                        "layout.y {:?} leaves no room for \"{}\" (needs y in {:?})",
                        l.y, tp.item.name, tp.y
                    )));
                }
                let mut found = None;
                for _ in 0..200 {
                    let x = uniform(&mut rng, l.x);
                    let y = uniform(&mut rng, [y_lo, y_hi]);
                    let clear = placed.iter().all(|(o, _)| {
                        let d = (x - o.position[0]).hypot(y - o.position[1]);
                        d >= r + footprint_radius(&o.shape) + l.min_gap
                    });
                    if clear {
                        found = Some((x, y));
                        break;
                    }
                }
                let Some((x, y)) = found else {
                    continue 'layout;
                };
                let mut config = tp.config.clone();
                config.position[0] = x;
                config.position[1] = y;
                config.rpy[2] = uniform(&mut rng, l.yaw);
                placed.push((config, tp.item.clone()));
            }
            break;
        }
        if placed.len() != to_place.len() {
            return Err(fail(format!(
                "could not place {} objects with min_gap {} m in x {:?}, y {:?}",
                to_place.len(),
                l.min_gap,
                l.x,
                l.y
            )));
        }

        // Instruction.
        let split = if heldout {
            Split::Heldout
        } else {
            Split::Train
        };
        let templates = self.templates(split);
        let template = *pick(&mut rng, &templates);
        let describe = |name: &str| {
            placed
                .iter()
                .find(|(o, _)| o.name == name)
                .map(|(_, it)| format!("{} {}", it.colour, it.word))
                .unwrap_or_default()
        };
        let instruction = template
            .replace("{object}", &describe(&object))
            .replace("{target}", &describe(&target));

        let items = placed.iter().map(|(_, it)| it.clone()).collect();
        scene.objects.extend(placed.into_iter().map(|(o, _)| o));
        scene.name = format!("{}#{seed}", self.name);
        Ok(EpisodeSetup {
            task: self.name.clone(),
            kind: self.kind,
            seed,
            scene,
            items,
            object,
            target,
            table_z,
            instruction,
            template: template.to_string(),
            heldout,
            initial_q,
            camera_jitter,
        })
    }

    /// Draws the objects of an episode (shapes, sizes, colours, masses, frictions), their roles
    /// and their allowed y intervals. Returns them with the names of the object and target.
    fn choose_items(
        &self,
        rng: &mut SplitMix64,
        table_z: f64,
    ) -> Result<(Vec<ToPlace>, String, String), SimError> {
        let os = &self.objects;
        let n_colours = self.colours.len();
        let jitter = |rng: &mut SplitMix64, rgb: [f32; 3], amount: f64| {
            rgb.map(|c| (c + sym(rng, amount) as f32).clamp(0.0, 1.0))
        };
        let graspable =
            |rng: &mut SplitMix64, colour: usize, shape: &ShapeSpec, role: ItemRole| -> ToPlace {
                let c = &self.colours[colour];
                let obj_shape = shape.sample(rng);
                let hz = half_height(&obj_shape);
                let config = ObjectConfig {
                    name: format!("{}_{}", c.name, shape.word()),
                    shape: obj_shape,
                    position: [0.0, 0.0, table_z + hz + 0.0005],
                    rpy: [0.0; 3],
                    fixed: false,
                    mass: uniform(rng, os.mass),
                    friction: uniform(rng, os.friction),
                    restitution: 0.0,
                    colour: jitter(rng, c.rgb, os.colour_jitter),
                };
                ToPlace {
                    item: PlacedItem {
                        name: config.name.clone(),
                        colour: c.name.clone(),
                        word: shape.word().to_owned(),
                        role,
                    },
                    config,
                    y: [f64::NEG_INFINITY, f64::INFINITY],
                }
            };

        let n_objects = count_in(rng, os.count);
        let allowed = |words: &[String]| -> Vec<usize> {
            (0..os.shapes.len())
                .filter(|&i| words.is_empty() || words.iter().any(|w| w == os.shapes[i].word()))
                .collect()
        };
        let target_shapes = allowed(&os.target_shapes);
        let distractor_shapes = allowed(&os.distractor_shapes);
        // The object to move.
        let obj_colour = (rng.next_u64() % n_colours as u64) as usize;
        let obj_shape = *pick(rng, &target_shapes);
        let mut used: Vec<(usize, usize)> = vec![(obj_colour, obj_shape)];
        let mut list = vec![graspable(
            rng,
            obj_colour,
            &os.shapes[obj_shape],
            ItemRole::Object,
        )];

        // The destination.
        match self.kind {
            TaskKind::PickPlace => {
                let cs = self.containers.as_ref().expect("validated");
                let n = count_in(rng, cs.count);
                let mut colours: Vec<usize> = Vec::new();
                while colours.len() < n {
                    let c = (rng.next_u64() % n_colours as u64) as usize;
                    if !colours.contains(&c) {
                        colours.push(c);
                    }
                }
                for (k, &c) in colours.iter().enumerate() {
                    let side = uniform(rng, cs.size);
                    let h = uniform(rng, cs.height);
                    let colour = &self.colours[c];
                    let config = ObjectConfig {
                        name: format!("{}_{}", colour.name, cs.word),
                        shape: ObjectShape::Container {
                            size: [side, side, h],
                            wall: cs.wall,
                        },
                        position: [0.0, 0.0, table_z + h / 2.0 + 0.0005],
                        rpy: [0.0; 3],
                        fixed: false,
                        mass: uniform(rng, cs.mass),
                        friction: uniform(rng, cs.friction),
                        restitution: 0.0,
                        colour: jitter(rng, colour.rgb, os.colour_jitter),
                    };
                    list.push(ToPlace {
                        item: PlacedItem {
                            name: config.name.clone(),
                            colour: colour.name.clone(),
                            word: cs.word.clone(),
                            role: if k == 0 {
                                ItemRole::Target
                            } else {
                                ItemRole::OtherContainer
                            },
                        },
                        config,
                        y: [f64::NEG_INFINITY, f64::INFINITY],
                    });
                }
            }
            TaskKind::Stack => {
                let mut c = (rng.next_u64() % n_colours as u64) as usize;
                while c == obj_colour {
                    c = (rng.next_u64() % n_colours as u64) as usize;
                }
                let s = *pick(rng, &target_shapes);
                used.push((c, s));
                list.push(graspable(rng, c, &os.shapes[s], ItemRole::Target));
            }
            TaskKind::Handover => {
                let sp = self.spot.as_ref().expect("validated");
                let c = (rng.next_u64() % n_colours as u64) as usize;
                let side = uniform(rng, sp.size);
                let colour = &self.colours[c];
                let config = ObjectConfig {
                    name: format!("{}_{}", colour.name, sp.word),
                    shape: ObjectShape::Box {
                        size: [side, side, sp.thickness],
                    },
                    position: [0.0, 0.0, table_z + sp.thickness / 2.0],
                    rpy: [0.0; 3],
                    fixed: true,
                    mass: 1.0,
                    friction: 0.8,
                    restitution: 0.0,
                    colour: jitter(rng, colour.rgb, os.colour_jitter),
                };
                list.push(ToPlace {
                    item: PlacedItem {
                        name: config.name.clone(),
                        colour: colour.name.clone(),
                        word: sp.word.clone(),
                        role: ItemRole::Target,
                    },
                    config,
                    y: [f64::NEG_INFINITY, f64::INFINITY],
                });
            }
        }

        // Side constraints of the object and its destination.
        let side_left = rng.uniform() < 0.5;
        if let Some(band) = self.layout.one_arm_band {
            let y = if side_left {
                [-band, f64::INFINITY]
            } else {
                [f64::NEG_INFINITY, band]
            };
            list[0].y = y;
            list[1].y = y;
        }
        if let (Some(a), Some(b)) = (self.layout.object_abs_y, self.layout.target_abs_y) {
            let (a, b) = if side_left {
                (a, [-b[1], -b[0]])
            } else {
                ([-a[1], -a[0]], b)
            };
            list[0].y = a;
            list[1].y = b;
        }

        // Distractors: other colour/shape pairs (other colours for stacked blocks).
        let n_task_objects = if self.kind == TaskKind::Stack { 2 } else { 1 };
        for _ in n_task_objects..n_objects {
            let (c, s) = loop {
                let c = (rng.next_u64() % n_colours as u64) as usize;
                let s = *pick(rng, &distractor_shapes);
                let taken = if self.kind == TaskKind::Stack {
                    used.iter().any(|u| u.0 == c)
                } else {
                    used.contains(&(c, s))
                };
                if !taken {
                    break (c, s);
                }
            };
            used.push((c, s));
            list.push(graspable(rng, c, &os.shapes[s], ItemRole::Distractor));
        }
        // Big things first: they are the hardest to fit.
        let object = list[0].item.name.clone();
        let target = list[1].item.name.clone();
        list.sort_by(|a, b| {
            footprint_radius(&b.config.shape).total_cmp(&footprint_radius(&a.config.shape))
        });
        Ok((list, object, target))
    }

    /// Checks the task's success test on `world` for `episode`. `Err` says why it failed.
    pub fn check_success(&self, episode: &EpisodeSetup, world: &SimWorld) -> Result<(), String> {
        self.success.check(episode, world)
    }
}

impl SuccessSpec {
    /// Checks this test on `world`. `Err` says which condition failed.
    pub fn check(&self, episode: &EpisodeSetup, world: &SimWorld) -> Result<(), String> {
        let obj_cfg = episode
            .object_config(&episode.object)
            .ok_or_else(|| format!("no object \"{}\" in the scene", episode.object))?;
        let tgt_cfg = episode
            .object_config(&episode.target)
            .ok_or_else(|| format!("no target \"{}\" in the scene", episode.target))?;
        let obj = world
            .object_pose(&episode.object)
            .ok_or_else(|| format!("\"{}\" not in the world", episode.object))?;
        let tgt = world
            .object_pose(&episode.target)
            .ok_or_else(|| format!("\"{}\" not in the world", episode.target))?;
        let max_speed = match self {
            SuccessSpec::Inside { max_speed }
            | SuccessSpec::OnTop { max_speed, .. }
            | SuccessSpec::OnSpot { max_speed, .. } => *max_speed,
        };
        let speed = world
            .object_velocity(&episode.object)
            .map_or(f64::INFINITY, |v| v.norm());
        if speed > max_speed {
            return Err(format!(
                "\"{}\" still moves at {speed:.3} m/s",
                episode.object
            ));
        }
        let robot_links: Vec<&str> = world
            .model()
            .links
            .iter()
            .map(|l| l.name.as_str())
            .collect();
        if let Some(link) = world
            .touching(&episode.object)
            .into_iter()
            .find(|n| robot_links.contains(&n.as_str()))
        {
            return Err(format!(
                "\"{}\" is still touched by the robot (\"{link}\")",
                episode.object
            ));
        }
        let local = tgt.inverse_transform_point(&Point3::from(obj.translation.vector));
        let upright = |pose: &Isometry3<f64>| (pose.rotation * Vector3::z()).z > 0.9;
        let obj_half_h = half_height(&obj_cfg.shape);
        match (self, &tgt_cfg.shape) {
            (SuccessSpec::Inside { .. }, ObjectShape::Container { size, wall }) => {
                if !upright(&tgt) {
                    return Err(format!("\"{}\" tipped over", episode.target));
                }
                let (ix, iy) = (size[0] / 2.0 - wall, size[1] / 2.0 - wall);
                if local.x.abs() > ix || local.y.abs() > iy {
                    return Err(format!(
                        "\"{}\" is outside \"{}\" ({:.3}, {:.3}) m from its centre",
                        episode.object, episode.target, local.x, local.y
                    ));
                }
                if local.z > size[2] / 2.0 || local.z < -size[2] / 2.0 {
                    return Err(format!(
                        "\"{}\" is not below the rim of \"{}\" (height {:.3} m in it)",
                        episode.object, episode.target, local.z
                    ));
                }
                Ok(())
            }
            (SuccessSpec::OnTop { z_tolerance, .. }, shape)
            | (SuccessSpec::OnSpot { z_tolerance, .. }, shape) => {
                let (hx, hy) = match shape {
                    ObjectShape::Box { size } => (size[0] / 2.0, size[1] / 2.0),
                    ObjectShape::Cylinder { radius, .. } => (*radius, *radius),
                    _ => return Err(format!("\"{}\" has no flat top", episode.target)),
                };
                if !upright(&tgt) {
                    return Err(format!("\"{}\" tipped over", episode.target));
                }
                if local.x.abs() > hx || local.y.abs() > hy {
                    return Err(format!(
                        "\"{}\" is not over \"{}\" ({:.3}, {:.3}) m from its centre",
                        episode.object, episode.target, local.x, local.y
                    ));
                }
                let gap = local.z - half_height(shape) - obj_half_h;
                if gap.abs() > *z_tolerance || !upright(&obj) {
                    return Err(format!(
                        "\"{}\" does not stand on \"{}\" (gap {gap:.3} m, upright {})",
                        episode.object,
                        episode.target,
                        upright(&obj)
                    ));
                }
                Ok(())
            }
            (SuccessSpec::Inside { .. }, _) => {
                Err(format!("\"{}\" is not a container", episode.target))
            }
        }
    }
}
