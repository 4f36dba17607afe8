//! One demonstration episode end to end: sample the task, build the world, run the scripted
//! expert in lock-step while recording, judge success.

use crate::camera::WorldCameras;
use crate::error::SimError;
use crate::expert::{EpisodeOutcome, run_expert};
use crate::monitor::EpisodeMonitor;
use crate::record::{RecordedEpisode, Recorder};
use crate::scene::DataRoot;
use crate::script::ArmScript;
use crate::setup::SimSetup;
use crate::task::{EpisodeSetup, TaskSpec};
use crate::world::SimWorld;

/// How to run an episode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EpisodeOptions {
    /// Render and keep the robot cameras' images at every frame.
    pub record_images: bool,
    /// Draw the instruction from the held-out paraphrases instead of the training ones.
    pub heldout_instructions: bool,
    /// Return the recording of failed episodes too (for debugging; datasets keep successes).
    pub keep_failures: bool,
}

/// Loose objects other than the task's own may move at most this far (m) for the episode to
/// count: the expert must not sweep things around.
pub const MAX_DISTURBANCE_M: f64 = 0.03;

/// A task ready to run episodes: its spec and its base scene with the robot.
#[derive(Debug, Clone)]
pub struct TaskEnv {
    /// The task.
    pub spec: TaskSpec,
    /// The base scene and robot.
    pub base: SimSetup,
}

impl TaskEnv {
    /// Prepares `spec` (loads its base scene and robot).
    pub fn new(root: &DataRoot, spec: TaskSpec) -> Result<Self, SimError> {
        let base = SimSetup::load(root, &spec.scene, None)?;
        Ok(Self { spec, base })
    }

    /// Loads task `name` (a name under `sim/tasks/` or a path) and prepares it.
    pub fn load(root: &DataRoot, name: &str) -> Result<Self, SimError> {
        let spec = TaskSpec::load(&root.task_path(name))?;
        Self::new(root, spec)
    }

    /// The concrete episode of `seed`.
    pub fn sample(&self, seed: u64, heldout: bool) -> Result<EpisodeSetup, SimError> {
        self.spec.sample(&self.base, seed, heldout)
    }

    /// Builds the world of `ep` in its initial state.
    pub fn world(&self, ep: &EpisodeSetup) -> Result<SimWorld, SimError> {
        let mut world = SimWorld::new(self.base.model.clone(), &self.base.drive, &ep.scene)?;
        world.set_joint_positions(&ep.initial_q)?;
        world.set_joint_targets(&ep.initial_q)?;
        Ok(world)
    }

    /// The robot cameras of `ep` (embodiment order, mounts jittered) for `world`.
    pub fn cameras(&self, ep: &EpisodeSetup, world: &SimWorld) -> Result<WorldCameras, SimError> {
        let n = self.base.embodiment.cameras.len();
        let mut specs = self.base.camera_specs()?;
        specs.truncate(n);
        for (spec, jitter) in specs.iter_mut().zip(&ep.camera_jitter) {
            spec.mount *= jitter;
        }
        Ok(WorldCameras::new(world, specs, &ep.scene.light))
    }

    /// The robot cameras of `ep` whose names are in `names` (in the embodiment's order); every
    /// camera when `names` is `None`. An unknown name is an error naming the cameras there are.
    pub fn cameras_named(
        &self,
        ep: &EpisodeSetup,
        world: &SimWorld,
        names: Option<&[String]>,
    ) -> Result<WorldCameras, SimError> {
        let all = self.cameras(ep, world)?;
        let Some(names) = names else {
            return Ok(all);
        };
        let have: Vec<&str> = all.specs().iter().map(|s| s.name.as_str()).collect();
        if let Some(bad) = names.iter().find(|n| !have.contains(&n.as_str())) {
            return Err(SimError::Model {
                robot: self.base.model.name.clone(),
                message: format!("no camera \"{bad}\" (it has {have:?})"),
            });
        }
        let specs = all
            .specs()
            .iter()
            .filter(|s| names.contains(&s.name))
            .cloned()
            .collect();
        Ok(WorldCameras::new(world, specs, &ep.scene.light))
    }

    /// The first frame of `ep` alone (a *scene*): the world as the episode starts, the robot
    /// holding its initial pose for one control period, recorded like an episode's first frame
    /// (joint state, the hold action, images of the cameras `cameras` selects, see
    /// [`TaskEnv::cameras_named`]). System 2's grounding data: many more distinct scenes than
    /// full demonstrations at a small fraction of their cost (no expert run).
    pub fn record_scene(
        &self,
        ep: &EpisodeSetup,
        cameras: Option<&[String]>,
    ) -> Result<RecordedEpisode, SimError> {
        let mut world = self.world(ep)?;
        let cams = self.cameras_named(ep, &world, cameras)?;
        let mut recorder = Recorder::new(&self.base.embodiment, &self.base.kin, Some(cams))?;
        let period = 1.0 / self.spec.control_hz;
        let steps = (period / world.dt()).round().max(1.0) as usize;
        recorder.begin(&world)?;
        for _ in 0..steps {
            world.step()?;
        }
        recorder.tick(&world)?;
        Ok(recorder.finish(
            ep.instruction.clone(),
            1.0 / (steps as f64 * world.dt()),
            ep.seed,
            true,
        ))
    }

    /// Runs the episode of `seed`.
    pub fn run(
        &self,
        seed: u64,
        options: &EpisodeOptions,
    ) -> Result<(EpisodeOutcome, Option<RecordedEpisode>), SimError> {
        let ep = self.sample(seed, options.heldout_instructions)?;
        self.run_setup(&ep, options)
    }

    /// Runs a sampled episode. Physics blow-ups, the time limit and failed expert steps end the
    /// episode as failed (with the reason); only configuration problems are errors. The
    /// recording is returned for successful episodes (and failed ones with `keep_failures`).
    pub fn run_setup(
        &self,
        ep: &EpisodeSetup,
        options: &EpisodeOptions,
    ) -> Result<(EpisodeOutcome, Option<RecordedEpisode>), SimError> {
        self.run_observed(ep, options, &mut |_| Ok(()))
    }

    /// [`TaskEnv::run_setup`], calling `observe` with the world at every control tick (after
    /// the tick's observation is recorded, before its action is applied), e.g. to log the
    /// episode to rerun. An error from `observe` ends the episode with that error.
    pub fn run_observed(
        &self,
        ep: &EpisodeSetup,
        options: &EpisodeOptions,
        observe: &mut dyn FnMut(&SimWorld) -> Result<(), SimError>,
    ) -> Result<(EpisodeOutcome, Option<RecordedEpisode>), SimError> {
        let mut world = self.world(ep)?;
        let cameras = if options.record_images {
            Some(self.cameras(ep, &world)?)
        } else {
            None
        };
        let mut recorder = Recorder::new(&self.base.embodiment, &self.base.kin, cameras)?;
        let mut script = ArmScript::new(&self.base, self.spec.control_hz)?;
        script.targets = ep.initial_q.clone();
        let fps = 1.0 / script.control_dt(world.dt());
        let monitor = EpisodeMonitor::new(ep, &world);

        recorder.begin(&world)?;
        let limit = self.spec.time_limit_s;
        let result = {
            let mut on_tick = |w: &SimWorld| -> Result<(), SimError> {
                recorder.tick(w)?;
                observe(w)?;
                if w.time() > limit {
                    return Err(SimError::Stopped(format!(
                        "time limit of {limit} s reached"
                    )));
                }
                Ok(())
            };
            run_expert(ep, &mut script, &mut world, &mut on_tick)
        };
        let failure = match result {
            Ok(()) => monitor.judge(&self.spec, ep, &world).err(),
            Err(SimError::Stopped(reason)) => Some(reason),
            Err(e @ SimError::Diverged { .. }) => Some(e.to_string()),
            Err(e) => return Err(e),
        };
        let success = failure.is_none();
        if let Some(reason) = &failure {
            tracing::debug!(task = %self.spec.name, seed = ep.seed, %reason, "episode failed");
        }
        let outcome = EpisodeOutcome {
            success,
            failure_reason: failure,
            steps: recorder.len() as u64,
            sim_time: world.time(),
        };
        let recording = (success || options.keep_failures)
            .then(|| recorder.finish(ep.instruction.clone(), fps, ep.seed, success));
        Ok((outcome, recording))
    }
}

/// Loads `task`'s base scene from `root` and runs the episode of `seed` (see
/// [`TaskEnv::run_setup`]). For many episodes, build a [`TaskEnv`] once instead.
pub fn run_episode(
    root: &DataRoot,
    task: &TaskSpec,
    seed: u64,
    options: &EpisodeOptions,
) -> Result<(EpisodeOutcome, Option<RecordedEpisode>), SimError> {
    TaskEnv::new(root, task.clone())?.run(seed, options)
}
