//! The executor: turns the latest action chunk into a joint-command stream at the control rate,
//! through the [`SafetyFilter`].
//!
//! [`Executor::tick`] is the whole per-period computation; it does not allocate, lock or log.
//! Inputs arrive through lock-free slots ([`ChunkSender`], [`StateSender`], [`EStop`]) written by
//! the asynchronous side; the command leaves through another slot ([`CommandReceiver`]) and
//! safety events through atomic counters ([`SafetyCounters`]). Live, [`spawn`] runs `tick` on a
//! dedicated thread with absolute deadlines (sleep, then spin); lock-step, the simulation calls
//! `tick` itself with sim time.
//!
//! Per tick: take a newer chunk if there is one (rejecting NaN/Inf, wrong dimension or
//! out-of-limit actions, counted), check the e-stop latch and the plan's age, pick the action
//! for "now" by time (cubic Hermite through the chunk steps with Catmull-Rom tangents, so the
//! commanded velocity is continuous at the steps; or linear), blend from the previous chunk
//! over `blend_ms` after a switch, and filter. No chunk, a stale plan, an exhausted chunk, no
//! joint state for `state_timeout_ms` or an e-stop → hold (decelerating within limits).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use bicameral_msgs::{ActionChunk, CommandMode, NO_PLAN, SafetyEventKind};

use crate::RuntimeError;
use crate::clock::WallClock;
use crate::safety::{SafetyFilter, SafetyLimits};
use crate::slot::{Read, SlotReader, SlotWriter, slot};

/// Executor settings (`[executor]` in launch/robot TOML).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorConfig {
    /// Control rate, Hz (200–1000).
    #[serde(default = "default_rate")]
    pub rate_hz: f64,
    /// Cross-fade (smoothstep) from the old to the new chunk after a switch, ms (0 = switch at
    /// once).
    #[serde(default = "default_blend")]
    pub blend_ms: f64,
    /// A chunk whose plan is older than this holds the robot, ms.
    #[serde(default = "default_ttl")]
    pub plan_ttl_ms: f64,
    /// No joint state for longer than this holds the robot (the measurements stopped), ms;
    /// at least two control periods. Robots publish states at ~100 Hz.
    #[serde(default = "default_state_timeout")]
    pub state_timeout_ms: f64,
    /// Longest accepted chunk, steps.
    #[serde(default = "default_horizon")]
    pub max_horizon: usize,
    /// Busy-wait this long before each deadline instead of sleeping, µs.
    #[serde(default = "default_spin")]
    pub spin_us: u64,
    /// How the command moves between a chunk's steps.
    #[serde(default)]
    pub interpolation: Interpolation,
}

/// Interpolation between a chunk's steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interpolation {
    /// Straight segments: the velocity steps at every chunk step (the acceleration limit then
    /// shapes the command there).
    Linear,
    /// Cubic Hermite segments with Catmull-Rom tangents (one-sided at the chunk's ends): passes
    /// through every step with a continuous velocity; reproduces straight lines exactly.
    #[default]
    Cubic,
}

fn default_rate() -> f64 {
    500.0
}
fn default_blend() -> f64 {
    50.0
}
fn default_ttl() -> f64 {
    1000.0
}
fn default_state_timeout() -> f64 {
    100.0
}
fn default_horizon() -> usize {
    64
}
fn default_spin() -> u64 {
    200
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            rate_hz: default_rate(),
            blend_ms: default_blend(),
            plan_ttl_ms: default_ttl(),
            state_timeout_ms: default_state_timeout(),
            max_horizon: default_horizon(),
            spin_us: default_spin(),
            interpolation: Interpolation::default(),
        }
    }
}

impl ExecutorConfig {
    /// Checks ranges; `source` names the file in errors.
    pub fn validate(&self, source: &str) -> Result<(), RuntimeError> {
        let bad = |field: &str, problem: &str| RuntimeError::Config {
            file: source.to_string(),
            field: format!("executor.{field}"),
            problem: problem.to_string(),
        };
        if !(200.0..=1000.0).contains(&self.rate_hz) {
            return Err(bad("rate_hz", "must be in 200..=1000"));
        }
        if !(self.blend_ms.is_finite() && self.blend_ms >= 0.0) {
            return Err(bad("blend_ms", "must be finite and ≥ 0"));
        }
        if !(self.plan_ttl_ms.is_finite() && self.plan_ttl_ms > 0.0) {
            return Err(bad("plan_ttl_ms", "must be finite and > 0"));
        }
        if !(self.state_timeout_ms.is_finite() && self.state_timeout_ms >= 2000.0 / self.rate_hz) {
            return Err(bad(
                "state_timeout_ms",
                "must be finite and at least two control periods",
            ));
        }
        if !(1..=4096).contains(&self.max_horizon) {
            return Err(bad("max_horizon", "must be in 1..=4096"));
        }
        if self.spin_us > 5_000 {
            return Err(bad("spin_us", "must be ≤ 5000"));
        }
        Ok(())
    }

    /// The control period, ns.
    pub fn period_ns(&self) -> u64 {
        (1e9 / self.rate_hz).round() as u64
    }
}

/// Counts of safety events by kind (lock-free; read by the status/event publisher).
#[derive(Debug, Default)]
pub struct SafetyCounters {
    counts: [AtomicU64; SafetyEventKind::ALL.len()],
    last_ns: [AtomicU64; SafetyEventKind::ALL.len()],
    last_joint: [AtomicU64; SafetyEventKind::ALL.len()],
    ticks: AtomicU64,
}

/// No joint for [`SafetyCounters::last_joint`].
const NO_JOINT: u64 = u64::MAX;

impl SafetyCounters {
    fn bump(&self, kind: SafetyEventKind, now_ns: u64, joint: Option<usize>) {
        let i = kind.index();
        self.last_ns[i].store(now_ns, Ordering::Relaxed);
        self.last_joint[i].store(joint.map_or(NO_JOINT, |j| j as u64), Ordering::Relaxed);
        self.counts[i].fetch_add(1, Ordering::Release);
    }

    /// How many events of `kind` so far.
    pub fn count(&self, kind: SafetyEventKind) -> u64 {
        self.counts[kind.index()].load(Ordering::Acquire)
    }

    /// Stamp (ns) and joint of the latest event of `kind`.
    pub fn last(&self, kind: SafetyEventKind) -> (u64, Option<u32>) {
        let i = kind.index();
        let j = self.last_joint[i].load(Ordering::Relaxed);
        (
            self.last_ns[i].load(Ordering::Relaxed),
            (j != NO_JOINT).then_some(j as u32),
        )
    }

    /// Ticks run so far.
    pub fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }
}

/// The e-stop latch, shared between whoever receives e-stop messages and the executor.
/// Engaging is latched: only an explicit [`EStop::reset`] releases it, and a reset releases
/// only the engagements that happened before it.
#[derive(Debug, Default)]
pub struct EStop {
    engaged: AtomicU64,
    reset: AtomicU64,
}

impl EStop {
    /// Engages the stop.
    pub fn engage(&self) {
        self.engaged.fetch_add(1, Ordering::AcqRel);
    }

    /// Releases every engagement so far.
    pub fn reset(&self) {
        let e = self.engaged.load(Ordering::Acquire);
        self.reset.fetch_max(e, Ordering::AcqRel);
    }

    /// Whether the stop is engaged.
    pub fn is_engaged(&self) -> bool {
        self.engaged.load(Ordering::Acquire) > self.reset.load(Ordering::Acquire)
    }
}

/// Words before the actions in a chunk slot: plan_seq, plan_stamp_ns, t0_ns, dt_ns, H, D.
const CHUNK_META: usize = 6;

/// Hands chunks to the executor (the single writer of its chunk slot; not real-time).
#[derive(Debug)]
pub struct ChunkSender {
    writer: SlotWriter,
    words: Vec<u64>,
    max_horizon: usize,
    dim: usize,
    counters: Arc<SafetyCounters>,
}

impl ChunkSender {
    /// Queues `chunk` as the latest. A chunk too long for the slot or of the wrong action
    /// dimension is refused (and counted as [`SafetyEventKind::ChunkRejected`]); value checks
    /// (NaN, limits) happen in the executor.
    pub fn send(&mut self, chunk: &ActionChunk) -> Result<(), RuntimeError> {
        let (h, d) = (chunk.horizon(), chunk.dim());
        if h == 0 || h > self.max_horizon || d != self.dim {
            self.counters
                .bump(SafetyEventKind::ChunkRejected, chunk.header.stamp_ns, None);
            return Err(RuntimeError::Chunk(format!(
                "chunk {h}×{d} refused: executor takes up to {}×{}",
                self.max_horizon, self.dim
            )));
        }
        self.words.clear();
        self.words.extend_from_slice(&[
            chunk.plan_seq,
            chunk.plan_stamp_ns,
            chunk.t0_ns,
            chunk.dt_ns,
            h as u64,
            d as u64,
        ]);
        self.words.extend(
            chunk
                .actions
                .data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]).to_bits() as u64),
        );
        self.writer
            .write(&self.words)
            .map_err(|cap| RuntimeError::Chunk(format!("chunk exceeds slot of {cap} words")))?;
        Ok(())
    }
}

/// Hands measured joint positions to the executor (rad, action order).
#[derive(Debug)]
pub struct StateSender {
    writer: SlotWriter,
    words: Vec<u64>,
    dim: usize,
}

impl StateSender {
    /// Publishes measured positions; `q.len()` must equal the action dimension (anything else
    /// is refused, and the executor keeps the previous state). A NaN/Inf entry marks that
    /// joint's reading unknown: it loses its effort bound, the other joints keep theirs, and the
    /// executor does not start from such a state.
    pub fn send(&mut self, q: &[f64]) -> Result<(), RuntimeError> {
        if q.len() != self.dim {
            return Err(RuntimeError::Chunk(format!(
                "state of {} joints, the executor drives {}",
                q.len(),
                self.dim
            )));
        }
        self.words.clear();
        self.words.extend(q.iter().map(|x| x.to_bits()));
        self.writer
            .write(&self.words)
            .map(|_| ())
            .map_err(|cap| RuntimeError::Chunk(format!("state of {} > {cap} joints", q.len())))
    }
}

/// A command read back from the executor's output slot.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Tick time, ns.
    pub stamp_ns: u64,
    /// Tracking or holding.
    pub mode: CommandMode,
    /// Positions, rad (m).
    pub position: Vec<f64>,
    /// Velocities, rad/s (m/s).
    pub velocity: Vec<f64>,
}

/// Reads the executor's latest command (for the publisher or an in-process robot).
#[derive(Debug, Clone)]
pub struct CommandReceiver {
    reader: SlotReader,
    have: u64,
    words: Vec<u64>,
    dim: usize,
}

impl CommandReceiver {
    /// The newest command if there is one newer than the last returned; fills `out` (no
    /// allocation once `out` has its size).
    pub fn recv_into(&mut self, out: &mut Command) -> bool {
        match self.reader.read_newer(self.have, &mut self.words) {
            Read::New { version, len } if len == 2 + 2 * self.dim => {
                self.have = version;
                out.stamp_ns = self.words[0];
                out.mode = if self.words[1] == 1 {
                    CommandMode::Hold
                } else {
                    CommandMode::Track
                };
                out.position.clear();
                out.position.extend(
                    self.words[2..2 + self.dim]
                        .iter()
                        .map(|&w| f64::from_bits(w)),
                );
                out.velocity.clear();
                out.velocity.extend(
                    self.words[2 + self.dim..]
                        .iter()
                        .map(|&w| f64::from_bits(w)),
                );
                true
            }
            _ => false,
        }
    }

    /// An empty command of the right size to pass to [`Self::recv_into`].
    pub fn empty(&self) -> Command {
        Command {
            stamp_ns: 0,
            mode: CommandMode::Hold,
            position: Vec::with_capacity(self.dim),
            velocity: Vec::with_capacity(self.dim),
        }
    }
}

/// Why the executor is holding (or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No joint state yet: no command is produced.
    WaitingForState,
    /// No chunk yet: holding the measured start position.
    WaitingForChunk,
    /// Following the chunk.
    Tracking,
    /// Holding for a reason.
    Hold(SafetyEventKind),
}

#[derive(Debug, Clone)]
struct ChunkBuf {
    plan_seq: u64,
    plan_stamp_ns: u64,
    t0_ns: u64,
    dt_ns: u64,
    h: usize,
    actions: Vec<f64>,
    interpolation: Interpolation,
}

impl ChunkBuf {
    fn with_capacity(n: usize) -> Self {
        ChunkBuf {
            plan_seq: NO_PLAN,
            plan_stamp_ns: 0,
            t0_ns: 0,
            dt_ns: 1,
            h: 0,
            actions: Vec::with_capacity(n),
            interpolation: Interpolation::default(),
        }
    }

    fn end_ns(&self) -> u64 {
        self.t0_ns
            .saturating_add(self.dt_ns.saturating_mul(self.h.saturating_sub(1) as u64))
    }

    /// Interpolated action and its time derivative at `now_ns`; false past the end.
    fn sample(&self, now_ns: u64, d: usize, pos: &mut [f64], vel: &mut [f64]) -> bool {
        if self.h == 0 || now_ns > self.end_ns() {
            return false;
        }
        let f = now_ns.saturating_sub(self.t0_ns) as f64 / self.dt_ns as f64;
        let i = (f.floor() as usize).min(self.h - 1);
        let frac = (f - i as f64).clamp(0.0, 1.0);
        let j = (i + 1).min(self.h - 1);
        let dt = self.dt_ns as f64 * 1e-9;
        let before = now_ns < self.t0_ns || i == j;
        if self.interpolation == Interpolation::Linear || before {
            for k in 0..d {
                let a = self.actions[i * d + k];
                let b = self.actions[j * d + k];
                pos[k] = a + (b - a) * frac;
                vel[k] = if before { 0.0 } else { (b - a) / dt };
            }
            return true;
        }
        // Cubic Hermite on [i, j] (j = i + 1), tangents per step (Catmull-Rom inside,
        // one-sided at the ends).
        let (t, t2) = (frac, frac * frac);
        let t3 = t2 * t;
        let (h00, h10, h01, h11) = (
            2.0 * t3 - 3.0 * t2 + 1.0,
            t3 - 2.0 * t2 + t,
            -2.0 * t3 + 3.0 * t2,
            t3 - t2,
        );
        let (d00, d10, d01, d11) = (
            6.0 * t2 - 6.0 * t,
            3.0 * t2 - 4.0 * t + 1.0,
            -6.0 * t2 + 6.0 * t,
            3.0 * t2 - 2.0 * t,
        );
        let last = self.h - 1;
        let at = |s: usize, k: usize| self.actions[s * d + k];
        let tangent = |s: usize, k: usize| match s {
            0 => at(1, k) - at(0, k),
            s if s == last => at(last, k) - at(last - 1, k),
            s => 0.5 * (at(s + 1, k) - at(s - 1, k)),
        };
        for k in 0..d {
            let (p1, p2) = (at(i, k), at(j, k));
            let (m1, m2) = (tangent(i, k), tangent(j, k));
            pos[k] = h00 * p1 + h10 * m1 + h01 * p2 + h11 * m2;
            vel[k] = (d00 * p1 + d10 * m1 + d01 * p2 + d11 * m2) / dt;
        }
        true
    }
}

/// The executor state machine (see the module docs). Construct with [`Executor::new`].
#[derive(Debug)]
pub struct Executor {
    cfg: ExecutorConfig,
    dt_s: f64,
    filter: SafetyFilter,
    dim: usize,
    chunk_reader: SlotReader,
    chunk_have: u64,
    state_reader: SlotReader,
    state_have: u64,
    words: Vec<u64>,
    incoming: ChunkBuf,
    current: ChunkBuf,
    previous: ChunkBuf,
    has_previous: bool,
    switched_ns: u64,
    measured: Vec<f64>,
    has_measured: bool,
    /// Tick time at which the latest joint state was taken, ns.
    measured_ns: u64,
    target: Vec<f64>,
    target_vel: Vec<f64>,
    other: Vec<f64>,
    other_vel: Vec<f64>,
    out_words: Vec<u64>,
    output: SlotWriter,
    estop: Arc<EStop>,
    estop_was: bool,
    counters: Arc<SafetyCounters>,
    mode: Mode,
}

/// The handles of the asynchronous side of one executor.
#[derive(Debug)]
pub struct ExecutorIo {
    /// Chunks in.
    pub chunks: ChunkSender,
    /// Measured joint positions in.
    pub state: StateSender,
    /// Commands out.
    pub commands: CommandReceiver,
    /// E-stop latch.
    pub estop: Arc<EStop>,
    /// Event counters.
    pub counters: Arc<SafetyCounters>,
}

impl Executor {
    /// An executor for joints with `limits` (their order is the action order) and its I/O
    /// handles.
    pub fn new(
        cfg: ExecutorConfig,
        limits: SafetyLimits,
    ) -> Result<(Self, ExecutorIo), RuntimeError> {
        cfg.validate("executor config")?;
        let dim = limits.dim();
        if dim == 0 {
            return Err(RuntimeError::Chunk(
                "the embodiment has no action joints".into(),
            ));
        }
        let n = cfg.max_horizon * dim;
        let (chunk_w, chunk_r) = slot(CHUNK_META + n);
        let (state_w, state_r) = slot(dim);
        let (out_w, out_r) = slot(2 + 2 * dim);
        let estop = Arc::new(EStop::default());
        let counters = Arc::new(SafetyCounters::default());
        let io = ExecutorIo {
            chunks: ChunkSender {
                writer: chunk_w,
                words: Vec::with_capacity(CHUNK_META + n),
                max_horizon: cfg.max_horizon,
                dim,
                counters: counters.clone(),
            },
            state: StateSender {
                writer: state_w,
                words: Vec::with_capacity(dim),
                dim,
            },
            commands: CommandReceiver {
                reader: out_r,
                have: 0,
                words: vec![0; 2 + 2 * dim],
                dim,
            },
            estop: estop.clone(),
            counters: counters.clone(),
        };
        let exec = Executor {
            dt_s: 1.0 / cfg.rate_hz,
            filter: SafetyFilter::new(limits),
            dim,
            chunk_reader: chunk_r,
            chunk_have: 0,
            state_reader: state_r,
            state_have: 0,
            words: vec![0; CHUNK_META + n],
            incoming: ChunkBuf::with_capacity(n),
            current: ChunkBuf::with_capacity(n),
            previous: ChunkBuf::with_capacity(n),
            has_previous: false,
            switched_ns: 0,
            measured: vec![0.0; dim],
            has_measured: false,
            measured_ns: 0,
            target: vec![0.0; dim],
            target_vel: vec![0.0; dim],
            other: vec![0.0; dim],
            other_vel: vec![0.0; dim],
            out_words: vec![0; 2 + 2 * dim],
            output: out_w,
            estop,
            estop_was: false,
            counters,
            cfg,
            mode: Mode::WaitingForState,
        };
        Ok((exec, io))
    }

    /// The settings.
    pub fn config(&self) -> &ExecutorConfig {
        &self.cfg
    }

    /// Current mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The safety filter (its last command: `position()`, `velocity()`).
    pub fn filter(&self) -> &SafetyFilter {
        &self.filter
    }

    /// The event counters.
    pub fn counters(&self) -> &Arc<SafetyCounters> {
        &self.counters
    }

    /// One control period at time `now_ns`. Returns the command, or `None` before the first
    /// joint state. No allocation, no locks, no logging.
    pub fn tick(&mut self, now_ns: u64) -> Option<(&[f64], &[f64], CommandMode)> {
        self.counters.ticks.fetch_add(1, Ordering::Relaxed);
        self.take_state(now_ns);
        if !self.filter.is_initialized() {
            // Start only from a state where every joint is known.
            if !(self.has_measured && self.measured.iter().all(|x| x.is_finite())) {
                self.mode = Mode::WaitingForState;
                return None;
            }
            self.filter.reset_to(&self.measured);
            self.mode = Mode::WaitingForChunk;
        }
        self.take_chunk(now_ns);

        let estop = self.estop.is_engaged();
        if self.estop_was && !estop {
            self.counters
                .bump(SafetyEventKind::EStopReset, now_ns, None);
        }
        self.estop_was = estop;
        let state_stale =
            now_ns.saturating_sub(self.measured_ns) as f64 > self.cfg.state_timeout_ms * 1e6;
        let hold_reason = if estop {
            Some(SafetyEventKind::EStopEngaged)
        } else if state_stale {
            Some(SafetyEventKind::HoldStateStale)
        } else if self.current.h == 0 {
            None
        } else if self.current.plan_seq != NO_PLAN
            && now_ns.saturating_sub(self.current.plan_stamp_ns) as f64 > self.cfg.plan_ttl_ms * 1e6
        {
            Some(SafetyEventKind::HoldPlanStale)
        } else if !self.sample_target(now_ns) {
            Some(SafetyEventKind::HoldChunksExhausted)
        } else {
            None
        };
        // An outdated measurement must not bound (pull) the command.
        let measured: &[f64] = if self.has_measured && !state_stale {
            &self.measured
        } else {
            &[]
        };
        let mode = match hold_reason {
            Some(reason) => {
                if self.mode != Mode::Hold(reason) {
                    self.counters.bump(reason, now_ns, None);
                }
                self.filter.hold(measured, self.dt_s);
                Mode::Hold(reason)
            }
            None if self.current.h == 0 => {
                self.filter.hold(measured, self.dt_s);
                Mode::WaitingForChunk
            }
            None => {
                if matches!(self.mode, Mode::Hold(_)) {
                    self.counters.bump(SafetyEventKind::Resumed, now_ns, None);
                }
                let report = self
                    .filter
                    .step(&self.target, &self.target_vel, measured, self.dt_s);
                if report.clamped || report.rejected {
                    self.counters.bump(SafetyEventKind::Clamped, now_ns, None);
                }
                Mode::Tracking
            }
        };
        self.mode = mode;
        let cmd_mode = if mode == Mode::Tracking {
            CommandMode::Track
        } else {
            CommandMode::Hold
        };
        self.out_words[0] = now_ns;
        self.out_words[1] = u64::from(cmd_mode == CommandMode::Hold);
        for k in 0..self.dim {
            self.out_words[2 + k] = self.filter.position()[k].to_bits();
            self.out_words[2 + self.dim + k] = self.filter.velocity()[k].to_bits();
        }
        // The slot is sized for exactly these words.
        let _ = self.output.write(&self.out_words);
        Some((self.filter.position(), self.filter.velocity(), cmd_mode))
    }

    fn take_state(&mut self, now_ns: u64) {
        if let Read::New { version, len } = self
            .state_reader
            .read_newer(self.state_have, &mut self.words[..self.dim])
        {
            self.state_have = version;
            if len == self.dim {
                for k in 0..self.dim {
                    self.measured[k] = f64::from_bits(self.words[k]);
                }
                // A joint whose reading is NaN/Inf loses only its own effort bound (the filter
                // skips non-finite entries); the others keep theirs.
                self.has_measured = true;
                self.measured_ns = now_ns;
            }
        }
    }

    fn take_chunk(&mut self, now_ns: u64) {
        let Read::New { version, len } = self
            .chunk_reader
            .read_newer(self.chunk_have, &mut self.words)
        else {
            return;
        };
        self.chunk_have = version;
        let w = &self.words;
        let (h, d) = (w[4] as usize, w[5] as usize);
        if d != self.dim || h == 0 || len != CHUNK_META + h * d || w[3] == 0 {
            self.counters
                .bump(SafetyEventKind::ChunkRejected, now_ns, None);
            return;
        }
        // Stamped in the future (a plan or start time ahead of this clock) or spanning too
        // long: it would keep the executor tracking with its staleness checks blind.
        let ahead = now_ns.saturating_add(crate::clock::MAX_FUTURE_NS);
        if w[1] > ahead
            || w[2] > ahead
            || (h as u64 - 1).saturating_mul(w[3]) > crate::clock::MAX_CHUNK_SPAN_NS
        {
            self.counters
                .bump(SafetyEventKind::ChunkRejected, now_ns, None);
            return;
        }
        let inc = &mut self.incoming;
        inc.plan_seq = w[0];
        inc.plan_stamp_ns = w[1];
        inc.t0_ns = w[2];
        inc.dt_ns = w[3];
        inc.h = h;
        inc.interpolation = self.cfg.interpolation;
        inc.actions.clear();
        let mut non_finite = false;
        let mut out_of_limits = None;
        for (i, &word) in w[CHUNK_META..CHUNK_META + h * d].iter().enumerate() {
            let x = f32::from_bits(word as u32) as f64;
            non_finite |= !x.is_finite();
            let j = &self.filter.limits().joints[i % d];
            if out_of_limits.is_none()
                && x.is_finite()
                && (x < j.reject_lower - 1e-6 || x > j.reject_upper + 1e-6)
            {
                out_of_limits = Some(i % d);
            }
            inc.actions.push(x);
        }
        if non_finite {
            self.counters
                .bump(SafetyEventKind::ChunkRejected, now_ns, None);
            return;
        }
        if let Some(joint) = out_of_limits {
            self.counters
                .bump(SafetyEventKind::ChunkOutOfLimits, now_ns, Some(joint));
            return;
        }
        // Blend from the old chunk only if it still covers "now".
        self.has_previous = self.current.h > 0 && now_ns <= self.current.end_ns();
        std::mem::swap(&mut self.previous, &mut self.current);
        std::mem::swap(&mut self.current, &mut self.incoming);
        self.switched_ns = now_ns;
    }

    /// Fills `target` for `now_ns` from the current chunk (blended with the previous one
    /// during the cross-fade); false when the current chunk is exhausted.
    fn sample_target(&mut self, now_ns: u64) -> bool {
        let d = self.dim;
        if !self
            .current
            .sample(now_ns, d, &mut self.target, &mut self.target_vel)
        {
            return false;
        }
        let blend_ns = self.cfg.blend_ms * 1e6;
        let since = now_ns.saturating_sub(self.switched_ns) as f64;
        if self.has_previous && since < blend_ns {
            if self
                .previous
                .sample(now_ns, d, &mut self.other, &mut self.other_vel)
            {
                // Smoothstep weight: the blended target's velocity is continuous at both ends.
                let x = since / blend_ns;
                let w = x * x * (3.0 - 2.0 * x);
                let w_rate = 6.0 * x * (1.0 - x) * 1e9 / blend_ns;
                for k in 0..d {
                    let (old, new) = (self.other[k], self.target[k]);
                    self.target[k] = (1.0 - w) * old + w * new;
                    self.target_vel[k] = (1.0 - w) * self.other_vel[k]
                        + w * self.target_vel[k]
                        + (new - old) * w_rate;
                }
            } else {
                self.has_previous = false;
            }
        }
        true
    }
}

/// Tick-lateness statistics of the executor thread (lock-free histogram, 1 µs buckets up to
/// 10 ms).
#[derive(Debug)]
pub struct TickStats {
    buckets: Box<[AtomicU64]>,
    max_ns: AtomicU64,
    count: AtomicU64,
    misses: AtomicU64,
}

const BUCKETS: usize = 10_000;

impl Default for TickStats {
    fn default() -> Self {
        TickStats {
            buckets: (0..=BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max_ns: AtomicU64::new(0),
            count: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }
}

impl TickStats {
    /// Records one tick that started `late_ns` after its deadline.
    pub fn record(&self, late_ns: u64) {
        let b = ((late_ns / 1000) as usize).min(BUCKETS);
        self.buckets[b].fetch_add(1, Ordering::Relaxed);
        self.max_ns.fetch_max(late_ns, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Ticks recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Deadlines missed by more than a period (the schedule was re-anchored).
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Largest lateness, ns.
    pub fn max_ns(&self) -> u64 {
        self.max_ns.load(Ordering::Relaxed)
    }

    /// Lateness quantile `q` ∈ [0, 1], ns (upper edge of its 1 µs bucket).
    pub fn quantile_ns(&self, q: f64) -> u64 {
        let total = self.count();
        if total == 0 {
            return 0;
        }
        let want = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= want {
                return if i == BUCKETS {
                    self.max_ns()
                } else {
                    (i as u64 + 1) * 1000
                };
            }
        }
        self.max_ns()
    }
}

/// Runs `exec` periodically on the calling thread until `stop` is set: sleep until `spin_us`
/// before each absolute deadline, spin to it, tick with the deadline's clock reading. A
/// deadline missed by more than one period re-anchors the schedule (counted as
/// [`SafetyEventKind::DeadlineMiss`]). Allocation-free after entry.
pub fn run_periodic(exec: &mut Executor, clock: &WallClock, stop: &AtomicBool, stats: &TickStats) {
    let period = Duration::from_nanos(exec.cfg.period_ns());
    let spin = Duration::from_micros(exec.cfg.spin_us);
    let mut deadline = Instant::now() + period;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if let Some(wait) = deadline.checked_duration_since(now + spin) {
            std::thread::sleep(wait);
        }
        while Instant::now() < deadline {
            std::hint::spin_loop();
        }
        let woke = Instant::now();
        stats.record(woke.duration_since(deadline).as_nanos() as u64);
        let now_ns = clock.ns_at(deadline);
        exec.tick(now_ns);
        deadline += period;
        let after = Instant::now();
        if after > deadline + period {
            stats.misses.fetch_add(1, Ordering::Relaxed);
            exec.counters
                .bump(SafetyEventKind::DeadlineMiss, clock.ns_at(after), None);
            deadline = after + period;
        }
    }
}

/// A running executor thread.
#[derive(Debug)]
pub struct ExecutorThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Executor>>,
    /// Tick-lateness statistics.
    pub stats: Arc<TickStats>,
}

impl ExecutorThread {
    /// Whether the thread is still ticking.
    pub fn is_running(&self) -> bool {
        self.handle.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Stops the thread and returns the executor.
    pub fn stop(mut self) -> Result<Executor, RuntimeError> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .ok_or_else(|| RuntimeError::Thread("executor already stopped".into()))?
            .join()
            .map_err(|_| RuntimeError::Thread("executor thread panicked".into()))
    }
}

impl Drop for ExecutorThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Starts `exec` on a dedicated thread named `bicameral-executor` (see [`run_periodic`]).
pub fn spawn(mut exec: Executor, clock: WallClock) -> Result<ExecutorThread, RuntimeError> {
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(TickStats::default());
    let (s, st) = (stop.clone(), stats.clone());
    let handle = std::thread::Builder::new()
        .name("bicameral-executor".into())
        .spawn(move || {
            run_periodic(&mut exec, &clock, &s, &st);
            exec
        })
        .map_err(|e| RuntimeError::Thread(format!("cannot spawn the executor thread: {e}")))?;
    Ok(ExecutorThread {
        stop,
        handle: Some(handle),
        stats,
    })
}
