//! Recording demonstrations in memory: per control tick the measured joint state (the
//! embodiment's state layout), the commanded joint targets (its action layout) and the robot
//! cameras' RGB images. Plain data without dependencies; converting to a dataset format is
//! someone else's job.
//!
//! Causal pairing: frame `t` holds the observation taken at the start of control tick `t` and
//! the action (absolute PD targets) commanded right after that observation, which is then held
//! for one control period. The observation after the last action is not recorded.

use bicameral_robot::{Embodiment, Kinematics};

use crate::camera::{CameraImage, WorldCameras};
use crate::error::SimError;
use crate::world::SimWorld;

/// One recorded control tick.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedFrame {
    /// Measured joint positions in the embodiment's state layout (rad or m).
    pub state: Vec<f32>,
    /// Joint position targets commanded after observing `state`, in the action layout.
    pub action: Vec<f32>,
    /// One H×W×3 sRGB image per camera of [`RecordedEpisode::cameras`] (empty when images are
    /// not recorded).
    pub images: Vec<Vec<u8>>,
}

/// A camera of a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCamera {
    /// Camera name (`ego_view`, `left_wrist`, ...).
    pub name: String,
    /// Width (px).
    pub width: u32,
    /// Height (px).
    pub height: u32,
}

/// A whole recorded episode.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEpisode {
    /// The instruction given for the episode.
    pub task: String,
    /// Frames per second (the control rate).
    pub fps: f64,
    /// Seed the episode was drawn from.
    pub seed: u64,
    /// Whether the episode met its success test.
    pub success: bool,
    /// Joint name of each state entry.
    pub state_names: Vec<String>,
    /// Joint name of each action entry.
    pub action_names: Vec<String>,
    /// Cameras, in image order (empty when images are not recorded).
    pub cameras: Vec<RecordedCamera>,
    /// The frames.
    pub frames: Vec<RecordedFrame>,
}

impl RecordedEpisode {
    /// A hash of every frame (state, action and image bits) and the task string: equal hashes
    /// mean bit-identical recordings.
    pub fn hash(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for &b in bytes {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        eat(self.task.as_bytes());
        for f in &self.frames {
            for v in f.state.iter().chain(&f.action) {
                eat(&v.to_bits().to_le_bytes());
            }
            for img in &f.images {
                eat(img);
            }
        }
        h
    }
}

/// Captures frames at each control tick; see the module documentation for the pairing.
pub struct Recorder {
    state_dofs: Vec<usize>,
    action_dofs: Vec<usize>,
    state_names: Vec<String>,
    action_names: Vec<String>,
    cameras: Option<WorldCameras>,
    image: CameraImage,
    pending: Option<(Vec<f32>, Vec<Vec<u8>>)>,
    frames: Vec<RecordedFrame>,
}

impl Recorder {
    /// A recorder for `embodiment`'s layouts; renders `cameras` at every frame if given.
    pub fn new(
        embodiment: &Embodiment,
        kin: &Kinematics,
        cameras: Option<WorldCameras>,
    ) -> Result<Self, SimError> {
        let state_dofs = embodiment.state_dof_indices(kin)?;
        let action_dofs = embodiment.action_dof_indices(kin)?;
        let names = |dofs: &[usize]| dofs.iter().map(|&i| kin.dof_names()[i].clone()).collect();
        Ok(Self {
            state_names: names(&state_dofs),
            action_names: names(&action_dofs),
            state_dofs,
            action_dofs,
            cameras,
            image: CameraImage::default(),
            pending: None,
            frames: Vec::new(),
        })
    }

    fn observe(&mut self, world: &SimWorld) -> Result<(Vec<f32>, Vec<Vec<u8>>), SimError> {
        let q = world.joint_positions();
        let state = self.state_dofs.iter().map(|&i| q[i] as f32).collect();
        let mut images = Vec::new();
        if let Some(cams) = self.cameras.as_mut() {
            for i in 0..cams.specs().len() {
                cams.render_into(world, i, &mut self.image)
                    .map_err(|e| SimError::Render(e.to_string()))?;
                images.push(self.image.rgb.clone());
            }
        }
        Ok((state, images))
    }

    /// Takes the first observation (before the first command).
    pub fn begin(&mut self, world: &SimWorld) -> Result<(), SimError> {
        self.frames.clear();
        self.pending = Some(self.observe(world)?);
        Ok(())
    }

    /// Call after every control tick: pairs the pending observation with the targets that were
    /// commanded after it (`world.joint_targets()`), then observes the world for the next frame.
    pub fn tick(&mut self, world: &SimWorld) -> Result<(), SimError> {
        if let Some((state, images)) = self.pending.take() {
            let targets = world.joint_targets();
            let action = self
                .action_dofs
                .iter()
                .map(|&i| targets[i] as f32)
                .collect();
            self.frames.push(RecordedFrame {
                state,
                action,
                images,
            });
        }
        self.pending = Some(self.observe(world)?);
        Ok(())
    }

    /// Frames recorded so far.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether no frame has been recorded.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The recording (the last, unanswered observation is dropped).
    pub fn finish(self, task: String, fps: f64, seed: u64, success: bool) -> RecordedEpisode {
        let cameras = self
            .cameras
            .as_ref()
            .map(|c| {
                c.specs()
                    .iter()
                    .map(|s| RecordedCamera {
                        name: s.name.clone(),
                        width: s.intrinsics.width,
                        height: s.intrinsics.height,
                    })
                    .collect()
            })
            .unwrap_or_default();
        RecordedEpisode {
            task,
            fps,
            seed,
            success,
            state_names: self.state_names,
            action_names: self.action_names,
            cameras,
            frames: self.frames,
        }
    }
}
