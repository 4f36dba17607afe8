//! The message types (see the crate docs for units and PROTOCOL.md for the wire view).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Message, MsgError, SCHEMA_VERSION, Tensor};

/// Every message's first field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Schema version ([`SCHEMA_VERSION`]).
    pub schema: u16,
    /// Message kind ([`Message::KIND`]).
    pub kind: String,
    /// Per-publisher sequence number, starting at 0, +1 per message.
    pub seq: u64,
    /// Time the message describes, ns on the sender's clock (sim time or wall clock since the
    /// launch's epoch).
    pub stamp_ns: u64,
    /// Robot id (the key-expression prefix's second chunk).
    pub robot: String,
}

impl Header {
    /// A header for message type `M`.
    pub fn new<M: Message>(robot: &str, seq: u64, stamp_ns: u64) -> Self {
        Header {
            schema: SCHEMA_VERSION,
            kind: M::KIND.to_string(),
            seq,
            stamp_ns,
            robot: robot.to_string(),
        }
    }
}

macro_rules! message {
    ($t:ty, $kind:literal) => {
        impl Message for $t {
            const KIND: &'static str = $kind;
            fn header(&self) -> &Header {
                &self.header
            }
            fn header_mut(&mut self) -> &mut Header {
                &mut self.header
            }
            fn validate(&self) -> Result<(), MsgError> {
                self.check()
            }
        }
    };
}

fn same_len_or_empty(field: &'static str, len: usize, expected: usize) -> Result<(), MsgError> {
    if len != 0 && len != expected {
        return Err(MsgError::invalid(
            field,
            format!("has {len} entries, `position` has {expected} (or send none)"),
        ));
    }
    Ok(())
}

/// Measured joint state, in the embodiment's action order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JointState {
    /// Header; `stamp_ns` is the measurement time.
    pub header: Header,
    /// Positions, rad (m).
    pub position: Vec<f64>,
    /// Velocities, rad/s (m/s); empty if not measured.
    pub velocity: Vec<f64>,
    /// Efforts, N·m (N); empty if not measured.
    pub effort: Vec<f64>,
}
message!(JointState, "joint_state");

impl JointState {
    fn check(&self) -> Result<(), MsgError> {
        let n = self.position.len();
        same_len_or_empty("velocity", self.velocity.len(), n)?;
        same_len_or_empty("effort", self.effort.len(), n)
    }
}

/// Pixel layout of a [`CameraFrame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageEncoding {
    /// Row-major RGB, 3 bytes per pixel, no padding.
    Rgb8,
    /// A PNG file.
    Png,
}

/// One camera image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraFrame {
    /// Header; `stamp_ns` is the exposure time.
    pub header: Header,
    /// Camera name (as in the embodiment).
    pub camera: String,
    /// Width, px.
    pub width: u32,
    /// Height, px.
    pub height: u32,
    /// Pixel layout of `data`.
    pub encoding: ImageEncoding,
    /// Pixels.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}
message!(CameraFrame, "camera_frame");

impl CameraFrame {
    fn check(&self) -> Result<(), MsgError> {
        if self.width == 0 || self.height == 0 || self.width > 8192 || self.height > 8192 {
            return Err(MsgError::invalid(
                "width/height",
                format!("{}x{} outside 1..=8192", self.width, self.height),
            ));
        }
        if self.encoding == ImageEncoding::Rgb8 {
            let expected = self.width as usize * self.height as usize * 3;
            if self.data.len() != expected {
                return Err(MsgError::invalid(
                    "data",
                    format!(
                        "rgb8 {}x{} needs {expected} bytes, got {}",
                        self.width,
                        self.height,
                        self.data.len()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A language instruction for System 2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instruction {
    /// Header.
    pub header: Header,
    /// The instruction, e.g. "pick up the red cube and place it in the bowl".
    pub text: String,
}
message!(Instruction, "instruction");

/// Longest accepted instruction, bytes.
pub const MAX_INSTRUCTION_BYTES: usize = 4096;

impl Instruction {
    fn check(&self) -> Result<(), MsgError> {
        if self.text.trim().is_empty() || self.text.len() > MAX_INSTRUCTION_BYTES {
            return Err(MsgError::invalid(
                "text",
                format!(
                    "must be non-empty and at most {MAX_INSTRUCTION_BYTES} bytes (got {})",
                    self.text.len()
                ),
            ));
        }
        Ok(())
    }
}

/// System 2's plan: the plan tokens System 1 cross-attends to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Header; `stamp_ns` is when the plan was published.
    pub header: Header,
    /// Stamp of the observation (camera frame) the plan was computed from, ns.
    pub obs_stamp_ns: u64,
    /// The instruction the plan follows.
    pub instruction: String,
    /// Plan tokens `[S, D]` f32.
    pub tokens: Tensor,
    /// `[S]` u8, 1 = real token, 0 = padding.
    pub attention_mask: Tensor,
    /// `[S]` u8, 1 = image token.
    pub image_mask: Tensor,
    /// Optional subgoal (empty if the planner has no subgoal head); for the default planner
    /// `[object x, y, z, destination x, y, z]` in m, world frame.
    pub subgoal: Vec<f32>,
}
message!(Plan, "plan");

impl Plan {
    fn check(&self) -> Result<(), MsgError> {
        self.tokens.check("tokens")?;
        self.attention_mask.check("attention_mask")?;
        self.image_mask.check("image_mask")?;
        if self.tokens.dtype != crate::DType::F32 || self.tokens.shape.len() != 2 {
            return Err(MsgError::invalid(
                "tokens",
                "must be a 2-D f32 tensor [S, D]",
            ));
        }
        let s = self.tokens.shape[0];
        for (field, mask) in [
            ("attention_mask", &self.attention_mask),
            ("image_mask", &self.image_mask),
        ] {
            if mask.dtype != crate::DType::U8 || mask.shape != [s] {
                return Err(MsgError::invalid(
                    field,
                    format!(
                        "must be a u8 tensor [{s}] (got {:?} {:?})",
                        mask.dtype, mask.shape
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// `ActionChunk::plan_seq` of a chunk made without a plan.
pub const NO_PLAN: u64 = u64::MAX;

/// System 1's action chunk: `H` future joint targets at a fixed step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionChunk {
    /// Header; `stamp_ns` is when the chunk was published.
    pub header: Header,
    /// `seq` of the plan it was conditioned on ([`NO_PLAN`] when System 1 runs without one).
    pub plan_seq: u64,
    /// `obs_stamp_ns` of that plan (its age decides staleness; ignored for [`NO_PLAN`]).
    pub plan_stamp_ns: u64,
    /// Stamp of the joint state it was conditioned on, ns.
    pub obs_stamp_ns: u64,
    /// Time at which `actions[0]` is due, ns (same clock as the stamps).
    pub t0_ns: u64,
    /// Time between consecutive actions, ns (> 0).
    pub dt_ns: u64,
    /// Absolute joint position targets `[H, D]` f32, rad (m), embodiment action order.
    pub actions: Tensor,
}
message!(ActionChunk, "action_chunk");

impl ActionChunk {
    fn check(&self) -> Result<(), MsgError> {
        self.actions.check("actions")?;
        if self.actions.dtype != crate::DType::F32
            || self.actions.shape.len() != 2
            || self.actions.shape[0] == 0
            || self.actions.shape[1] == 0
        {
            return Err(MsgError::invalid(
                "actions",
                format!(
                    "must be a non-empty 2-D f32 tensor [H, D] (got {:?})",
                    self.actions.shape
                ),
            ));
        }
        if self.dt_ns == 0 {
            return Err(MsgError::invalid("dt_ns", "must be > 0"));
        }
        Ok(())
    }

    /// Horizon `H`.
    pub fn horizon(&self) -> usize {
        self.actions.shape.first().copied().unwrap_or(0) as usize
    }

    /// Action dimension `D`.
    pub fn dim(&self) -> usize {
        self.actions.shape.get(1).copied().unwrap_or(0) as usize
    }
}

/// How the robot should treat a [`JointCommand`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandMode {
    /// Track `position` (and `velocity` as feed-forward).
    Track,
    /// The executor is holding (stale plan, no chunks, e-stop); `position` is the hold target.
    Hold,
}

/// The executor's command to the motors (after the safety filter).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JointCommand {
    /// Header; `stamp_ns` is the tick time the command is for.
    pub header: Header,
    /// Position targets, rad (m), embodiment action order.
    pub position: Vec<f64>,
    /// Velocity feed-forward, rad/s (m/s); same length as `position`.
    pub velocity: Vec<f64>,
    /// Tracking or holding.
    pub mode: CommandMode,
}
message!(JointCommand, "joint_command");

impl JointCommand {
    fn check(&self) -> Result<(), MsgError> {
        same_len_or_empty("velocity", self.velocity.len(), self.position.len())
    }
}

/// Emergency stop (engage) or its reset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EStop {
    /// Header.
    pub header: Header,
    /// `true` engages the stop (latched); `false` resets it.
    pub engage: bool,
    /// Who sent it.
    pub operator: String,
    /// Why.
    pub reason: String,
}
message!(EStop, "estop");

impl EStop {
    fn check(&self) -> Result<(), MsgError> {
        Ok(())
    }
}

/// What the safety layer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SafetyEventKind {
    /// A chunk with NaN/Inf or the wrong dimension was rejected.
    ChunkRejected,
    /// A chunk action outside the position limits was rejected.
    ChunkOutOfLimits,
    /// A command was shaped by the velocity, acceleration, step or effort limits (targets moved
    /// into the position margin are not counted).
    Clamped,
    /// E-stop engaged (hold latched).
    EStopEngaged,
    /// E-stop reset.
    EStopReset,
    /// Holding: the latest plan is older than the plan ttl.
    HoldPlanStale,
    /// Holding: the current chunk ran out and no newer one arrived.
    HoldChunksExhausted,
    /// Tracking chunks again after a hold.
    Resumed,
    /// The executor missed its deadline by more than one period.
    DeadlineMiss,
    /// Holding: no joint state arrived for longer than the state timeout (the robot's
    /// measurements stopped: a disconnected device, a dead driver or a partitioned network).
    HoldStateStale,
}

impl SafetyEventKind {
    /// Every kind, in a fixed order ([`Self::index`]).
    pub const ALL: [SafetyEventKind; 10] = [
        SafetyEventKind::ChunkRejected,
        SafetyEventKind::ChunkOutOfLimits,
        SafetyEventKind::Clamped,
        SafetyEventKind::EStopEngaged,
        SafetyEventKind::EStopReset,
        SafetyEventKind::HoldPlanStale,
        SafetyEventKind::HoldChunksExhausted,
        SafetyEventKind::Resumed,
        SafetyEventKind::DeadlineMiss,
        SafetyEventKind::HoldStateStale,
    ];

    /// Position in [`Self::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// snake_case name (as on the wire).
    pub fn name(self) -> &'static str {
        match self {
            SafetyEventKind::ChunkRejected => "chunk_rejected",
            SafetyEventKind::ChunkOutOfLimits => "chunk_out_of_limits",
            SafetyEventKind::Clamped => "clamped",
            SafetyEventKind::EStopEngaged => "e_stop_engaged",
            SafetyEventKind::EStopReset => "e_stop_reset",
            SafetyEventKind::HoldPlanStale => "hold_plan_stale",
            SafetyEventKind::HoldChunksExhausted => "hold_chunks_exhausted",
            SafetyEventKind::Resumed => "resumed",
            SafetyEventKind::DeadlineMiss => "deadline_miss",
            SafetyEventKind::HoldStateStale => "hold_state_stale",
        }
    }
}

/// A safety-layer event (published and logged).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SafetyEvent {
    /// Header; `stamp_ns` is the executor tick.
    pub header: Header,
    /// What happened.
    pub event: SafetyEventKind,
    /// Joint index (action order) the event concerns, if one.
    pub joint: Option<u32>,
    /// Count of this kind of event since start.
    pub count: u64,
    /// Human-readable detail.
    pub detail: String,
}
message!(SafetyEvent, "safety_event");

impl SafetyEvent {
    fn check(&self) -> Result<(), MsgError> {
        Ok(())
    }
}

/// A node's life cycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Loading, waiting for inputs.
    Starting,
    /// Working at its rate.
    Running,
    /// Working, but an input is stale or the rate is below target.
    Degraded,
    /// Shutting down.
    Stopping,
}

/// A node's periodic status report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Header.
    pub header: Header,
    /// Node name.
    pub node: String,
    /// Life cycle state.
    pub state: NodeState,
    /// Measured rates, Hz, by output (e.g. `"plan": 6.1`).
    pub rates_hz: BTreeMap<String, f64>,
    /// Measured latencies, ms, by stage (e.g. `"inference_p50": 21.0`).
    pub latency_ms: BTreeMap<String, f64>,
    /// Counters (messages in/out, rejects, ...).
    pub counters: BTreeMap<String, u64>,
}
message!(NodeStatus, "node_status");

impl NodeStatus {
    fn check(&self) -> Result<(), MsgError> {
        crate::keys::check_chunk("node", &self.node)
    }
}
