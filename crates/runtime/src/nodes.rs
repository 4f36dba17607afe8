//! The two minds as nodes, independent of transport and clock: [`PlannerCore`] (System 2) and
//! [`ActionCore`] (System 1) take decoded messages and the current time and produce plans and
//! chunks. The live runtime feeds them from zenoh on their own threads ([`crate::live`]); a
//! lock-step evaluation calls them directly on sim time. Policies enter through the
//! [`Planner`] and [`ActionPolicy`] traits, implemented over the burn models by the binary.

use std::collections::BTreeMap;

use bicameral_msgs::{
    ActionChunk, CameraFrame, Header, ImageEncoding, Instruction, JointState, NO_PLAN, Plan, Tensor,
};
use serde::{Deserialize, Serialize};

use crate::RuntimeError;
use crate::clock::MAX_FUTURE_NS;

/// How far ahead of `now_ns` stamp `stamp_ns` is, ms, when that is more than [`MAX_FUTURE_NS`].
fn too_far_ahead(stamp_ns: u64, now_ns: u64) -> Option<f64> {
    (stamp_ns > now_ns.saturating_add(MAX_FUTURE_NS)).then(|| (stamp_ns - now_ns) as f64 * 1e-6)
}

/// An RGB8 image handed to a planner.
#[derive(Debug, Clone, Copy)]
pub struct Image<'a> {
    /// Row-major RGB, 3 bytes per pixel.
    pub rgb: &'a [u8],
    /// Width, px.
    pub width: usize,
    /// Height, px.
    pub height: usize,
}

/// A planner's output: plan tokens `[len, dim]` with masks and an optional subgoal.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanTokens {
    /// Tokens, row-major `[len, dim]`.
    pub tokens: Vec<f32>,
    /// Number of tokens `S`.
    pub len: usize,
    /// Token width `D`.
    pub dim: usize,
    /// `[S]`, 1 = real token.
    pub attention_mask: Vec<u8>,
    /// `[S]`, 1 = image token.
    pub image_mask: Vec<u8>,
    /// Subgoal (empty if none); for the default planner object xyz + destination xyz, m, world.
    pub subgoal: Vec<f32>,
}

impl PlanTokens {
    /// Reads a plan message's tensors.
    pub fn from_plan(plan: &Plan) -> Result<Self, RuntimeError> {
        let dims = plan.tokens.dims();
        let bad = |e: bicameral_msgs::MsgError| RuntimeError::Node(format!("plan: {e}"));
        let tokens = plan.tokens.to_f32().map_err(bad)?;
        if dims[0] == 0 || dims[1] == 0 {
            return Err(RuntimeError::Node(format!(
                "plan {}: no tokens ({dims:?})",
                plan.header.seq
            )));
        }
        if plan.header.seq == NO_PLAN {
            return Err(RuntimeError::Node(format!(
                "plan seq {NO_PLAN} is reserved for \"no plan\""
            )));
        }
        if tokens.iter().any(|x| !x.is_finite()) {
            return Err(RuntimeError::Node(format!(
                "plan {}: non-finite token values",
                plan.header.seq
            )));
        }
        Ok(PlanTokens {
            tokens,
            len: dims[0],
            dim: dims[1],
            attention_mask: plan.attention_mask.data.clone(),
            image_mask: plan.image_mask.data.clone(),
            subgoal: plan.subgoal.clone(),
        })
    }
}

/// System 2 as the runtime sees it.
pub trait Planner: Send {
    /// Cameras the planner looks at, in the order it takes them.
    fn cameras(&self) -> Vec<String>;

    /// Plan tokens for `images` (one per [`Self::cameras`] entry) and `instruction`.
    fn plan(&mut self, images: &[Image<'_>], instruction: &str)
    -> Result<PlanTokens, RuntimeError>;
}

/// System 1 as the runtime sees it.
pub trait ActionPolicy: Send {
    /// Chunk length `H`.
    fn horizon(&self) -> usize;

    /// Action dimension `D` (the embodiment's action vector).
    fn action_dim(&self) -> usize;

    /// Time between actions in a chunk, s (the training data's control period).
    fn action_dt(&self) -> f64;

    /// Whether chunks need System 2's plan (false: the policy has its own null plan).
    fn needs_plan(&self) -> bool;

    /// One chunk `[H, D]` (row-major, physical units) for `state` (the embodiment's state
    /// vector). `prefix` `[P, D]` holds actions already committed for the first `P` steps
    /// (real-time chunking), of which the first `frozen` must be reproduced exactly.
    fn act(
        &mut self,
        plan: Option<&PlanTokens>,
        state: &[f32],
        prefix: &[f32],
        frozen: usize,
        seed: u64,
    ) -> Result<Vec<f32>, RuntimeError>;
}

/// Planner node settings (`[planner]` in launch files).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannerNodeConfig {
    /// Plans per second (0 = as fast as it can).
    #[serde(default = "default_planner_rate")]
    pub rate_hz: f64,
    /// Camera frames older than this (relative to the newest) are not combined, ms.
    #[serde(default = "default_max_skew")]
    pub max_frame_skew_ms: f64,
}

fn default_planner_rate() -> f64 {
    5.0
}
fn default_max_skew() -> f64 {
    500.0
}

impl Default for PlannerNodeConfig {
    fn default() -> Self {
        PlannerNodeConfig {
            rate_hz: default_planner_rate(),
            max_frame_skew_ms: default_max_skew(),
        }
    }
}

/// System 2's node logic.
pub struct PlannerCore<P: Planner> {
    planner: P,
    cameras: Vec<String>,
    frames: BTreeMap<String, CameraFrame>,
    instruction: Option<String>,
    cfg: PlannerNodeConfig,
    robot: String,
    last_obs_ns: Option<u64>,
}

impl<P: Planner> std::fmt::Debug for PlannerCore<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlannerCore")
            .field("cameras", &self.cameras)
            .field("instruction", &self.instruction)
            .finish()
    }
}

impl<P: Planner> PlannerCore<P> {
    /// A planner node for robot `robot`.
    pub fn new(planner: P, cfg: PlannerNodeConfig, robot: &str) -> Self {
        let cameras = planner.cameras();
        PlannerCore {
            planner,
            cameras,
            frames: BTreeMap::new(),
            instruction: None,
            cfg,
            robot: robot.to_string(),
            last_obs_ns: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &PlannerNodeConfig {
        &self.cfg
    }

    /// Cameras it needs.
    pub fn cameras(&self) -> &[String] {
        &self.cameras
    }

    /// Forgets frames, instruction and what was planned on (a new episode).
    pub fn reset(&mut self) {
        self.frames.clear();
        self.instruction = None;
        self.last_obs_ns = None;
    }

    /// The instruction it plans for.
    pub fn instruction(&self) -> Option<&str> {
        self.instruction.as_deref()
    }

    /// Takes a new instruction.
    pub fn on_instruction(&mut self, m: Instruction) {
        self.instruction = Some(m.text);
    }

    /// Takes a camera frame received at `now_ns` (frames of cameras it does not use are
    /// ignored). A frame stamped more than [`MAX_FUTURE_NS`] ahead of `now_ns` is refused with
    /// an error naming the camera: kept, it would be "newer" than every later frame (and out of
    /// the skew window of the other cameras), and the planner would never plan again.
    pub fn on_frame(&mut self, m: CameraFrame, now_ns: u64) -> Result<(), RuntimeError> {
        if !self.cameras.contains(&m.camera) {
            return Ok(());
        }
        if let Some(ms) = too_far_ahead(m.header.stamp_ns, now_ns) {
            return Err(RuntimeError::Node(format!(
                "camera {}: frame stamped {ms:.0} ms ahead of this node's clock (more than {} \
                 ms of clock skew); dropped",
                m.camera,
                MAX_FUTURE_NS / 1_000_000
            )));
        }
        self.frames.insert(m.camera.clone(), m);
        Ok(())
    }

    /// Whether there is an observation newer than the last one planned on.
    pub fn has_new_observation(&self) -> bool {
        self.obs_stamp()
            .is_some_and(|s| self.last_obs_ns.is_none_or(|l| s > l))
    }

    fn obs_stamp(&self) -> Option<u64> {
        let stamps: Vec<u64> = self
            .cameras
            .iter()
            .map(|c| self.frames.get(c).map(|f| f.header.stamp_ns))
            .collect::<Option<_>>()?;
        let (lo, hi) = (*stamps.iter().min()?, *stamps.iter().max()?);
        ((hi - lo) as f64 <= self.cfg.max_frame_skew_ms * 1e6).then_some(lo)
    }

    /// Plans on the latest frames and instruction; `Ok(None)` while an input is missing.
    /// `now_ns` stamps the plan; its `obs_stamp_ns` is the oldest frame's stamp.
    pub fn step(&mut self, now_ns: u64) -> Result<Option<Plan>, RuntimeError> {
        let (Some(instruction), Some(obs)) = (self.instruction.clone(), self.obs_stamp()) else {
            return Ok(None);
        };
        let mut images = Vec::with_capacity(self.cameras.len());
        for c in &self.cameras {
            let f = &self.frames[c];
            if f.encoding != ImageEncoding::Rgb8 {
                return Err(RuntimeError::Node(format!(
                    "camera {c}: the planner takes rgb8 frames, got {:?}",
                    f.encoding
                )));
            }
            images.push(Image {
                rgb: &f.data,
                width: f.width as usize,
                height: f.height as usize,
            });
        }
        let out = self.planner.plan(&images, &instruction)?;
        self.last_obs_ns = Some(obs);
        let bad = |e: bicameral_msgs::MsgError| RuntimeError::Node(format!("plan output: {e}"));
        Ok(Some(Plan {
            header: Header::new::<Plan>(&self.robot, 0, now_ns),
            obs_stamp_ns: obs,
            instruction,
            tokens: Tensor::from_f32(&[out.len, out.dim], &out.tokens).map_err(bad)?,
            attention_mask: Tensor::from_u8(&[out.len], &out.attention_mask).map_err(bad)?,
            image_mask: Tensor::from_u8(&[out.len], &out.image_mask).map_err(bad)?,
            subgoal: out.subgoal,
        }))
    }
}

/// Action node settings (`[action]` in launch files).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionNodeConfig {
    /// Chunks per second (10–120; 0 = as fast as it can).
    #[serde(default = "default_action_rate")]
    pub rate_hz: f64,
    /// Plans older than this are not used (the executor holds on their chunks), ms.
    #[serde(default = "default_plan_ttl")]
    pub plan_ttl_ms: f64,
    /// Continue the previous chunk with real-time chunking (frozen prefix = expected delay).
    #[serde(default = "default_true")]
    pub rtc: bool,
    /// Extra steps frozen beyond the measured inference delay.
    #[serde(default = "default_margin_steps")]
    pub rtc_margin_steps: usize,
    /// Seed of the sampling noise (chunk k uses seed + k).
    #[serde(default)]
    pub seed: u64,
}

fn default_action_rate() -> f64 {
    30.0
}
fn default_plan_ttl() -> f64 {
    1000.0
}
fn default_true() -> bool {
    true
}
fn default_margin_steps() -> usize {
    1
}

impl Default for ActionNodeConfig {
    fn default() -> Self {
        ActionNodeConfig {
            rate_hz: default_action_rate(),
            plan_ttl_ms: default_plan_ttl(),
            rtc: true,
            rtc_margin_steps: default_margin_steps(),
            seed: 0,
        }
    }
}

/// System 1's node logic.
pub struct ActionCore<A: ActionPolicy> {
    policy: A,
    cfg: ActionNodeConfig,
    robot: String,
    plan: Option<(u64, u64, PlanTokens)>,
    state: Option<JointState>,
    last_state_used: Option<u64>,
    previous: Option<(u64, u64, Vec<f32>)>,
    chunks: u64,
    delay_ns: f64,
}

impl<A: ActionPolicy> std::fmt::Debug for ActionCore<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionCore")
            .field("chunks", &self.chunks)
            .field("delay_ns", &self.delay_ns)
            .finish()
    }
}

impl<A: ActionPolicy> ActionCore<A> {
    /// An action node for robot `robot`.
    pub fn new(policy: A, cfg: ActionNodeConfig, robot: &str) -> Self {
        ActionCore {
            policy,
            cfg,
            robot: robot.to_string(),
            plan: None,
            state: None,
            last_state_used: None,
            previous: None,
            chunks: 0,
            delay_ns: 0.0,
        }
    }

    /// The settings.
    pub fn config(&self) -> &ActionNodeConfig {
        &self.cfg
    }

    /// The policy.
    pub fn policy(&self) -> &A {
        &self.policy
    }

    /// Forgets plan, state and the previous chunk, and restarts the chunk count (a new
    /// episode: the noise seeds start again from `seed`).
    pub fn reset(&mut self) {
        self.plan = None;
        self.state = None;
        self.last_state_used = None;
        self.previous = None;
        self.chunks = 0;
    }

    /// Takes a plan (kept until a newer one arrives or it ages past the ttl).
    pub fn on_plan(&mut self, plan: &Plan) -> Result<(), RuntimeError> {
        let tokens = PlanTokens::from_plan(plan)?;
        self.plan = Some((plan.header.seq, plan.obs_stamp_ns, tokens));
        Ok(())
    }

    /// Takes a joint state.
    pub fn on_state(&mut self, state: JointState) {
        self.state = Some(state);
    }

    /// Whether there is a joint state newer than the last one acted on.
    pub fn has_new_state(&self) -> bool {
        self.state
            .as_ref()
            .is_some_and(|s| self.last_state_used.is_none_or(|l| s.header.stamp_ns > l))
    }

    /// Sets the expected inference delay (ns) used to size the RTC frozen prefix; live runners
    /// update it from measured latency.
    pub fn set_expected_delay_ns(&mut self, delay_ns: f64) {
        self.delay_ns = delay_ns.max(0.0);
    }

    /// One chunk from the latest state (and plan), stamped `now_ns`; `Ok(None)` while an input
    /// is missing or the plan is older than the ttl.
    /// A state or plan stamped more than [`MAX_FUTURE_NS`] ahead of `now_ns` is dropped with
    /// an error.
    pub fn step(&mut self, now_ns: u64) -> Result<Option<ActionChunk>, RuntimeError> {
        let skew = MAX_FUTURE_NS / 1_000_000;
        if let Some(ms) = self
            .state
            .as_ref()
            .and_then(|s| too_far_ahead(s.header.stamp_ns, now_ns))
        {
            self.state = None;
            return Err(RuntimeError::Node(format!(
                "joint state stamped {ms:.0} ms ahead of this node's clock (more than {skew} ms \
                 of clock skew); dropped"
            )));
        }
        if let Some(ms) = self
            .plan
            .as_ref()
            .and_then(|(_, stamp, _)| too_far_ahead(*stamp, now_ns))
        {
            self.plan = None;
            return Err(RuntimeError::Node(format!(
                "plan observed {ms:.0} ms ahead of this node's clock (more than {skew} ms of \
                 clock skew); dropped"
            )));
        }
        let Some(state) = &self.state else {
            return Ok(None);
        };
        let t_obs = state.header.stamp_ns;
        let plan = match &self.plan {
            Some((seq, stamp, tokens))
                if (now_ns.saturating_sub(*stamp) as f64) <= self.cfg.plan_ttl_ms * 1e6 =>
            {
                Some((*seq, *stamp, tokens))
            }
            _ => None,
        };
        if plan.is_none() && self.policy.needs_plan() {
            return Ok(None);
        }
        let (h, d) = (self.policy.horizon(), self.policy.action_dim());
        if state.position.len() != d {
            return Err(RuntimeError::Node(format!(
                "joint state has {} positions, the policy acts on {d}",
                state.position.len()
            )));
        }
        let dt_ns = ((self.policy.action_dt() * 1e9).round() as u64).max(1);
        let s: Vec<f32> = state.position.iter().map(|&x| x as f32).collect();
        // RTC prefix: the previous chunk resampled at this chunk's step times.
        let mut prefix = Vec::new();
        let mut frozen = 0;
        if self.cfg.rtc
            && let Some((t0, pdt, prev)) = &self.previous
        {
            let ph = prev.len() / d;
            for i in 0..h {
                let t = t_obs.saturating_add((i as u64).saturating_mul(dt_ns));
                if t < *t0 {
                    break;
                }
                let f = (t - t0) as f64 / *pdt as f64;
                if f > (ph - 1) as f64 {
                    break;
                }
                let j = f.floor() as usize;
                let k = (j + 1).min(ph - 1);
                let w = (f - j as f64) as f32;
                for c in 0..d {
                    prefix.push(prev[j * d + c] * (1.0 - w) + prev[k * d + c] * w);
                }
            }
            let steps = prefix.len() / d;
            let delay_steps = (self.delay_ns / dt_ns as f64).ceil() as usize;
            frozen = (delay_steps + self.cfg.rtc_margin_steps).min(steps);
        }
        let seed = self.cfg.seed.wrapping_add(self.chunks);
        let actions = self
            .policy
            .act(plan.map(|p| p.2), &s, &prefix, frozen, seed)?;
        if actions.len() != h * d || actions.iter().any(|x| !x.is_finite()) {
            return Err(RuntimeError::Node(format!(
                "the policy returned {} values (want {h}×{d}) or non-finite ones",
                actions.len()
            )));
        }
        self.chunks += 1;
        self.last_state_used = Some(t_obs);
        let bad = |e: bicameral_msgs::MsgError| RuntimeError::Node(format!("chunk: {e}"));
        let chunk = ActionChunk {
            header: Header::new::<ActionChunk>(&self.robot, 0, now_ns),
            plan_seq: plan.map_or(NO_PLAN, |p| p.0),
            plan_stamp_ns: plan.map_or(0, |p| p.1),
            obs_stamp_ns: t_obs,
            t0_ns: t_obs,
            dt_ns,
            actions: Tensor::from_f32(&[h, d], &actions).map_err(bad)?,
        };
        self.previous = Some((t_obs, dt_ns, actions));
        Ok(Some(chunk))
    }
}
