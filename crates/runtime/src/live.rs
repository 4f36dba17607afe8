//! Live (wall-clock) nodes over zenoh: each node runs on its own thread at its configured rate,
//! reads its inputs from latest-value subscriptions, publishes its output, keeps counters and
//! declares a liveliness token. [`NodeHandle::stop`] ends a node cleanly.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bicameral_msgs::{
    ActionChunk, CameraFrame, CommandMode, EStop as EStopMsg, Header, Instruction, JointCommand,
    JointState, NodeState, NodeStatus, Plan, SafetyEvent, SafetyEventKind,
};
use bicameral_transport::{Node, Qos, TransportError};

use crate::RuntimeError;
use crate::clock::Clock;
use crate::executor::ExecutorIo;
use crate::hal::RobotHal;
use crate::nodes::{ActionCore, ActionPolicy, Planner, PlannerCore};

/// Paces a loop at a fixed rate with absolute deadlines (a late iteration does not shift the
/// schedule, a very late one re-anchors it).
#[derive(Debug)]
pub struct Rate {
    period: Option<Duration>,
    next: Instant,
}

impl Rate {
    /// `hz` iterations per second (0 = no pacing).
    pub fn new(hz: f64) -> Self {
        let period = (hz > 0.0).then(|| Duration::from_secs_f64(1.0 / hz));
        Rate {
            period,
            next: Instant::now(),
        }
    }

    /// Sleeps until the next deadline, or until `stop` is set (checked every 50 ms).
    pub fn wait(&mut self, stop: &AtomicBool) {
        let Some(period) = self.period else {
            return;
        };
        self.next += period;
        let now = Instant::now();
        if now > self.next + period {
            self.next = now;
            return;
        }
        while !stop.load(Ordering::Relaxed) {
            let left = self.next.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}

/// Counters of a live node (lock-free, read by status publishers and tests).
#[derive(Debug)]
pub struct NodeStats {
    started: Instant,
    first_output: Mutex<Option<Instant>>,
    outputs: AtomicU64,
    errors: AtomicU64,
    decode_errors: AtomicU64,
    latency_ns: AtomicU64,
    /// The last [`LATENCY_SAMPLES`] latencies, ns (for quantiles).
    samples: Mutex<std::collections::VecDeque<u64>>,
    detail: Mutex<String>,
}

/// Latencies kept per node for quantiles.
pub const LATENCY_SAMPLES: usize = 4096;

impl Default for NodeStats {
    fn default() -> Self {
        NodeStats {
            started: Instant::now(),
            first_output: Mutex::new(None),
            outputs: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            decode_errors: AtomicU64::new(0),
            latency_ns: AtomicU64::new(0),
            samples: Mutex::new(std::collections::VecDeque::with_capacity(LATENCY_SAMPLES)),
            detail: Mutex::new(String::new()),
        }
    }
}

impl NodeStats {
    /// Counts one output (no latency: the executor bridge's commands).
    fn count_output(&self) {
        if self.outputs.fetch_add(1, Ordering::Relaxed) == 0
            && let Ok(mut f) = self.first_output.lock()
        {
            *f = Some(Instant::now());
        }
    }

    /// Counts one output and its latency (ns).
    fn output(&self, latency_ns: u64) {
        self.count_output();
        self.latency_ns.store(latency_ns, Ordering::Relaxed);
        self.record_latency(latency_ns);
    }

    /// Keeps a latency sample (ns) for [`NodeStats::latency_quantile_ns`].
    pub fn record_latency(&self, ns: u64) {
        if let Ok(mut v) = self.samples.lock() {
            if v.len() == LATENCY_SAMPLES {
                v.pop_front();
            }
            v.push_back(ns);
        }
    }

    /// Quantile `q` in [0, 1] of the recent latencies, ns (`None` before the first). For the
    /// planner and action nodes: observation stamp → output published; for the executor
    /// bridge: a chunk's observation stamp → the chunk handed to the executor (its first
    /// command follows within one control period).
    pub fn latency_quantile_ns(&self, q: f64) -> Option<u64> {
        let mut v: Vec<u64> = self.samples.lock().ok()?.iter().copied().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let i = ((q.clamp(0.0, 1.0) * (v.len() - 1) as f64).round()) as usize;
        Some(v[i])
    }

    fn decode_error(&self, e: &TransportError) {
        let n = self.decode_errors.fetch_add(1, Ordering::Relaxed);
        // Log the first few and then every 1000th: garbage floods must not flood the log.
        if n < 5 || n.is_multiple_of(1000) {
            tracing::warn!(error = %e, count = n + 1, "dropped a malformed message");
        }
    }

    fn set_detail(&self, detail: &str) {
        if let Ok(mut d) = self.detail.lock() {
            detail.clone_into(&mut d);
        }
    }

    /// What the node is working on (the planner: its current instruction).
    pub fn detail(&self) -> String {
        self.detail.lock().map(|d| d.clone()).unwrap_or_default()
    }

    /// The decoded message of a subscription poll; a decode error is counted (and logged,
    /// rate-limited) and dropped.
    fn take<M>(&self, polled: Option<Result<M, TransportError>>) -> Option<M> {
        match polled? {
            Ok(m) => Some(m),
            Err(e) => {
                self.decode_error(&e);
                None
            }
        }
    }

    /// Counts and logs a failure of the node's work (policy, publishing).
    fn error(&self, what: &str, e: &dyn std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %e, "{what}");
    }

    /// Records the outcome of publishing one output.
    fn published(&self, result: Result<(), TransportError>, latency_ns: u64, what: &str) {
        match result {
            Ok(()) => self.output(latency_ns),
            Err(e) => self.error(what, &e),
        }
    }

    /// Outputs (plans, chunks, commands) so far.
    pub fn outputs(&self) -> u64 {
        self.outputs.load(Ordering::Relaxed)
    }

    /// Errors from the policy or the transport.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Messages that did not decode.
    pub fn decode_errors(&self) -> u64 {
        self.decode_errors.load(Ordering::Relaxed)
    }

    /// Latency of the last output, ns (inference: from the observation stamp to publishing).
    pub fn last_latency_ns(&self) -> u64 {
        self.latency_ns.load(Ordering::Relaxed)
    }

    /// Output rate since the first output, Hz.
    pub fn rate_hz(&self) -> f64 {
        let n = self.outputs();
        let first = self.first_output.lock().ok().and_then(|f| *f);
        match first {
            Some(t) if n > 1 => (n - 1) as f64 / t.elapsed().as_secs_f64().max(1e-9),
            _ => 0.0,
        }
    }

    /// Seconds since the node started.
    pub fn uptime_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

/// A running live node.
#[derive(Debug)]
pub struct NodeHandle {
    name: String,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Result<(), RuntimeError>>>,
    /// Its counters.
    pub stats: Arc<NodeStats>,
}

impl NodeHandle {
    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether its threads are still running.
    pub fn is_running(&self) -> bool {
        self.threads.iter().all(|t| !t.is_finished())
    }

    /// Asks the node to stop without waiting.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Stops the node and waits for its threads; the first error they ended with.
    pub fn stop(mut self) -> Result<(), RuntimeError> {
        self.stop.store(true, Ordering::Relaxed);
        let mut result = Ok(());
        for t in self.threads.drain(..) {
            let r = t
                .join()
                .map_err(|_| RuntimeError::Thread(format!("node {} panicked", self.name)))
                .and_then(|r| r);
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn transport(e: TransportError) -> RuntimeError {
    RuntimeError::Transport(e.to_string())
}

fn spawn_thread(
    name: &str,
    f: impl FnOnce() -> Result<(), RuntimeError> + Send + 'static,
) -> Result<JoinHandle<Result<(), RuntimeError>>, RuntimeError> {
    std::thread::Builder::new()
        .name(format!("bicameral-{name}"))
        .spawn(f)
        .map_err(|e| RuntimeError::Thread(format!("cannot spawn {name}: {e}")))
}

fn status(
    node: &Node,
    stats: &NodeStats,
    output: &str,
    now_ns: u64,
    extra: &[(&str, u64)],
) -> NodeStatus {
    let mut s = NodeStatus {
        header: Header::new::<NodeStatus>(node.robot(), 0, now_ns),
        node: node.name().to_string(),
        state: if stats.outputs() > 0 {
            NodeState::Running
        } else {
            NodeState::Starting
        },
        rates_hz: [(output.to_string(), stats.rate_hz())].into(),
        latency_ms: [
            ("last".to_string(), stats.last_latency_ns() as f64 * 1e-6),
            (
                "p50".to_string(),
                stats.latency_quantile_ns(0.5).unwrap_or(0) as f64 * 1e-6,
            ),
            (
                "p99".to_string(),
                stats.latency_quantile_ns(0.99).unwrap_or(0) as f64 * 1e-6,
            ),
        ]
        .into(),
        counters: [
            ("outputs".to_string(), stats.outputs()),
            ("errors".to_string(), stats.errors()),
            ("decode_errors".to_string(), stats.decode_errors()),
        ]
        .into(),
    };
    for (k, v) in extra {
        s.counters.insert(k.to_string(), *v);
    }
    s
}

/// Publishes a node's status about once per second.
struct StatusTicker {
    publisher: bicameral_transport::Publisher<NodeStatus>,
    last: Instant,
}

impl StatusTicker {
    fn new(node: &Node) -> Result<Self, RuntimeError> {
        Ok(StatusTicker {
            publisher: node
                .publisher(node.keys().status(node.name()), Qos::State)
                .map_err(transport)?,
            last: Instant::now(),
        })
    }

    fn maybe(&mut self, make: impl FnOnce() -> NodeStatus) {
        if self.last.elapsed() >= Duration::from_secs(1) {
            self.last = Instant::now();
            if let Err(e) = self.publisher.put(&mut make()) {
                tracing::warn!(error = %e, "status not published");
            }
        }
    }
}

/// Starts System 2: latest camera frames + instructions in, plans out at `rate_hz`.
pub fn spawn_planner<P: Planner + 'static>(
    node: Node,
    mut core: PlannerCore<P>,
    clock: Arc<dyn Clock>,
) -> Result<NodeHandle, RuntimeError> {
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(NodeStats::default());
    let keys = node.keys().clone();
    // Only the newest instruction matters; a flood of them must not block zenoh's receive
    // thread (a full FIFO would).
    let instructions = node
        .latest::<Instruction>(keys.instruction())
        .map_err(transport)?;
    let cameras = core
        .cameras()
        .iter()
        .map(|c| node.latest::<CameraFrame>(keys.camera(c)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(transport)?;
    let mut plans = node
        .publisher::<Plan>(keys.plan(), Qos::Control)
        .map_err(transport)?;
    let token = node.declare_alive().map_err(transport)?;
    let (s, st) = (stop.clone(), stats.clone());
    let name = node.name().to_string();
    let thread = spawn_thread(&name, move || {
        let _token = token;
        let mut ticker = StatusTicker::new(&node)?;
        let mut rate = Rate::new(core.config().rate_hz);
        while !s.load(Ordering::Relaxed) {
            while let Some(polled) = instructions.try_recv() {
                if let Some(m) = st.take(Some(polled)) {
                    if core.instruction() != Some(m.text.as_str()) {
                        tracing::info!(instruction = %m.text, "new instruction");
                    }
                    st.set_detail(&m.text);
                    core.on_instruction(m);
                }
            }
            for c in &cameras {
                if let Some(f) = st.take(c.try_recv())
                    && let Err(e) = core.on_frame(f, clock.now_ns())
                {
                    st.error("camera frame refused", &e);
                }
            }
            if core.has_new_observation() {
                match core.step(clock.now_ns()) {
                    Ok(Some(mut plan)) => {
                        let latency = clock.now_ns().saturating_sub(plan.obs_stamp_ns);
                        st.published(plans.put(&mut plan), latency, "plan not published");
                    }
                    Ok(None) => {}
                    Err(e) => st.error("planner failed", &e),
                }
            }
            ticker.maybe(|| status(&node, &st, "plan", clock.now_ns(), &[]));
            rate.wait(&s);
        }
        Ok(())
    })?;
    Ok(NodeHandle {
        name,
        stop,
        threads: vec![thread],
        stats,
    })
}

/// Starts System 1: latest plan + joint state in, chunks out at `rate_hz` (RTC prefix from its
/// previous chunk; the frozen length follows the measured latency).
pub fn spawn_action<A: ActionPolicy + 'static>(
    node: Node,
    mut core: ActionCore<A>,
    clock: Arc<dyn Clock>,
) -> Result<NodeHandle, RuntimeError> {
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(NodeStats::default());
    let keys = node.keys().clone();
    let plans = node.latest::<Plan>(keys.plan()).map_err(transport)?;
    let states = node
        .latest::<JointState>(keys.joint_state())
        .map_err(transport)?;
    let mut chunks = node
        .publisher::<ActionChunk>(keys.action_chunk(), Qos::Control)
        .map_err(transport)?;
    let token = node.declare_alive().map_err(transport)?;
    let (s, st) = (stop.clone(), stats.clone());
    let name = node.name().to_string();
    let thread = spawn_thread(&name, move || {
        let _token = token;
        let mut ticker = StatusTicker::new(&node)?;
        let mut rate = Rate::new(core.config().rate_hz);
        let mut delay_ema: Option<f64> = None;
        while !s.load(Ordering::Relaxed) {
            if let Some(p) = st.take(plans.try_recv())
                && let Err(e) = core.on_plan(&p)
            {
                st.error("plan refused", &e);
            }
            if let Some(m) = st.take(states.try_recv()) {
                core.on_state(m);
            }
            if core.has_new_state() {
                match core.step(clock.now_ns()) {
                    Ok(Some(mut chunk)) => {
                        let latency = clock.now_ns().saturating_sub(chunk.obs_stamp_ns) as f64;
                        let ema = delay_ema.map_or(latency, |d| 0.8 * d + 0.2 * latency);
                        delay_ema = Some(ema);
                        core.set_expected_delay_ns(ema);
                        let sent = chunks.put(&mut chunk);
                        st.published(sent, latency as u64, "chunk not published");
                    }
                    Ok(None) => {}
                    Err(e) => st.error("action policy failed", &e),
                }
            }
            ticker.maybe(|| status(&node, &st, "action_chunk", clock.now_ns(), &[]));
            rate.wait(&s);
        }
        Ok(())
    })?;
    Ok(NodeHandle {
        name,
        stop,
        threads: vec![thread],
        stats,
    })
}

/// A run of consecutive failures of one device call, for logging it without a flood (the
/// bridge calls the device at the control rate: a disconnected robot fails 500 times a second;
/// every failure is still counted in the node's errors).
#[derive(Debug, Default)]
struct ErrorStreak {
    n: u64,
}

impl ErrorStreak {
    /// Failures logged at the start of a run, then one in this many.
    const EVERY: u64 = 500;

    /// Counts a failure; `Some(run length)` when this one should be logged (the first three of
    /// a run, then every [`Self::EVERY`]th).
    fn fail(&mut self) -> Option<u64> {
        self.n += 1;
        (self.n <= 3 || self.n.is_multiple_of(Self::EVERY)).then_some(self.n)
    }

    /// A success; `Some(run length)` when it ends a run of failures.
    fn ok(&mut self) -> Option<u64> {
        (self.n > 0).then(|| std::mem::take(&mut self.n))
    }
}

/// Hands one executor command to the device (if any) and publishes it.
fn forward_command(
    cmd: &crate::executor::Command,
    hal: Option<&mut Box<dyn RobotHal>>,
    msg: &mut JointCommand,
    publisher: &mut bicameral_transport::Publisher<JointCommand>,
    st: &NodeStats,
    write_errors: &mut ErrorStreak,
) {
    if let Some(hal) = hal {
        match hal.write_command(cmd) {
            Ok(()) => {
                if let Some(n) = write_errors.ok() {
                    tracing::warn!(
                        device = hal.name(),
                        failed = n,
                        "commanding the robot works again"
                    );
                }
            }
            Err(e) => {
                st.errors.fetch_add(1, Ordering::Relaxed);
                if let Some(n) = write_errors.fail() {
                    tracing::error!(device = hal.name(), error = %e, in_a_row = n, "commanding the robot failed");
                }
            }
        }
    }
    msg.header.stamp_ns = cmd.stamp_ns;
    msg.position.clone_from(&cmd.position);
    msg.velocity.clone_from(&cmd.velocity);
    msg.mode = cmd.mode;
    match publisher.put(msg) {
        Ok(()) => st.count_output(),
        Err(e) => {
            st.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "command not published");
        }
    }
}

/// Connects an executor's I/O to zenoh: chunks and e-stops in (on zenoh's receive threads,
/// straight into the lock-free slots); commands, safety events and status out from a publisher
/// thread polling at `rate_hz`. Joint states come from the joint-state topic, or, with a `hal`,
/// from the device (then published on the topic at ~100 Hz), which also receives every command.
pub fn spawn_executor_bridge(
    node: Node,
    io: ExecutorIo,
    clock: Arc<dyn Clock>,
    rate_hz: f64,
    hal: Option<Box<dyn RobotHal>>,
) -> Result<NodeHandle, RuntimeError> {
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(NodeStats::default());
    let keys = node.keys().clone();
    let ExecutorIo {
        chunks,
        state,
        mut commands,
        estop,
        counters,
    } = io;
    let chunks = Mutex::new(chunks);
    let st = stats.clone();
    let clk = clock.clone();
    let chunk_sub = node
        .on_message::<ActionChunk>(keys.action_chunk(), move |m| match m {
            Ok(c) => {
                if let Ok(mut tx) = chunks.lock() {
                    match tx.send(&c) {
                        Ok(()) => st.record_latency(clk.now_ns().saturating_sub(c.obs_stamp_ns)),
                        Err(e) => tracing::warn!(error = %e, "chunk refused"),
                    }
                }
            }
            Err(e) => st.decode_error(&e),
        })
        .map_err(transport)?;
    let (state_sub, mut hal_io) = match hal {
        None => {
            let state = Mutex::new(state);
            let st = stats.clone();
            let sub = node
                .on_message::<JointState>(keys.joint_state(), move |m| match m {
                    Ok(js) => {
                        if let Ok(mut tx) = state.lock()
                            && tx.send(&js.position).is_err()
                        {
                            st.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) => st.decode_error(&e),
                })
                .map_err(transport)?;
            (Some(sub), None)
        }
        Some(hal) => {
            let publisher = node
                .publisher::<JointState>(keys.joint_state(), Qos::State)
                .map_err(transport)?;
            let q = vec![0.0; hal.dim()];
            (None, Some((hal, state, publisher, q)))
        }
    };
    let e = estop.clone();
    let stop_estop = estop.clone();
    let st = stats.clone();
    let estop_sub = node
        .on_message::<EStopMsg>(keys.estop(), move |m| match m {
            Ok(msg) if msg.engage => {
                e.engage();
                tracing::warn!(operator = %msg.operator, reason = %msg.reason, "E-STOP engaged");
            }
            Ok(msg) => {
                e.reset();
                tracing::warn!(operator = %msg.operator, "e-stop reset");
            }
            // Fail closed: anything on the e-stop topic that is not a well-formed reset (an
            // undecodable payload, a newer schema, another message kind) engages the stop.
            Err(err) => {
                if !e.is_engaged() {
                    tracing::error!(error = %err, "E-STOP engaged by an undecodable e-stop message");
                }
                e.engage();
                st.decode_error(&err);
            }
        })
        .map_err(transport)?;
    let mut cmd_pub = node
        .publisher::<JointCommand>(keys.joint_command(), Qos::Control)
        .map_err(transport)?;
    let mut event_pub = node
        .publisher::<SafetyEvent>(keys.safety_event(), Qos::Control)
        .map_err(transport)?;
    let token = node.declare_alive().map_err(transport)?;
    let (s, st) = (stop.clone(), stats.clone());
    let name = node.name().to_string();
    let thread = spawn_thread(&name, move || {
        let _subs = (chunk_sub, state_sub, estop_sub, token);
        let mut ticker = StatusTicker::new(&node)?;
        let mut rate = Rate::new(rate_hz);
        let mut cmd = commands.empty();
        let mut seen = [0u64; SafetyEventKind::ALL.len()];
        let mut msg = JointCommand {
            header: Header::new::<JointCommand>(node.robot(), 0, 0),
            position: Vec::new(),
            velocity: Vec::new(),
            mode: CommandMode::Hold,
        };
        let state_every = ((rate_hz / 100.0).round() as u64).max(1);
        let mut tick: u64 = 0;
        let mut commanded = false;
        let (mut read_errors, mut write_errors) = (ErrorStreak::default(), ErrorStreak::default());
        while !s.load(Ordering::Relaxed) {
            tick += 1;
            if let Some((hal, tx, publisher, q)) = &mut hal_io {
                let read = hal.read_state(q);
                if read.is_ok()
                    && let Some(n) = read_errors.ok()
                {
                    tracing::warn!(
                        device = hal.name(),
                        failed = n,
                        "reading the robot works again"
                    );
                }
                match read {
                    Ok(true) => {
                        if tx.send(q).is_err() {
                            st.errors.fetch_add(1, Ordering::Relaxed);
                        }
                        if tick.is_multiple_of(state_every) {
                            let mut js = JointState {
                                header: Header::new::<JointState>(node.robot(), 0, clock.now_ns()),
                                position: q.clone(),
                                velocity: Vec::new(),
                                effort: Vec::new(),
                            };
                            if let Err(e) = publisher.put(&mut js) {
                                tracing::warn!(error = %e, "joint state not published");
                            }
                        }
                    }
                    Ok(false) => {}
                    Err(e) => {
                        st.errors.fetch_add(1, Ordering::Relaxed);
                        if let Some(n) = read_errors.fail() {
                            tracing::error!(device = hal.name(), error = %e, in_a_row = n, "reading the robot failed");
                        }
                    }
                }
            }
            if commands.recv_into(&mut cmd) {
                commanded = true;
                let hal = hal_io.as_mut().map(|(hal, ..)| hal);
                forward_command(&cmd, hal, &mut msg, &mut cmd_pub, &st, &mut write_errors);
            }
            for kind in SafetyEventKind::ALL {
                let n = counters.count(kind);
                if n != seen[kind.index()] {
                    seen[kind.index()] = n;
                    let (stamp, joint) = counters.last(kind);
                    let detail = match joint {
                        Some(j) => format!("{} (joint {j})", kind.name()),
                        None => kind.name().to_string(),
                    };
                    // Log each kind's first events and then every 100th (a rejected
                    // stream of chunks must not flood the log; every event is published).
                    if n <= 3 || n.is_multiple_of(100) {
                        tracing::warn!(event = kind.name(), count = n, "safety event");
                    }
                    let mut ev = SafetyEvent {
                        header: Header::new::<SafetyEvent>(node.robot(), 0, stamp),
                        event: kind,
                        joint,
                        count: n,
                        detail,
                    };
                    if let Err(e) = event_pub.put(&mut ev) {
                        tracing::warn!(error = %e, "safety event not published");
                    }
                }
            }
            ticker.maybe(|| {
                let extra: Vec<(&str, u64)> = SafetyEventKind::ALL
                    .iter()
                    .map(|k| (k.name(), counters.count(*k)))
                    .chain([("ticks", counters.ticks())])
                    .collect();
                status(&node, &st, "joint_command", clock.now_ns(), &extra)
            });
            rate.wait(&s);
        }
        // Leaving while the robot may be moving: engage the executor's stop and forward its
        // braking hold (within the acceleration limit) until the command is at rest, for at
        // most a second; then the last word to the robot is a hold there at zero velocity (not
        // a "track" with a feed-forward velocity that nobody will update).
        if commanded {
            stop_estop.engage();
            let until = Instant::now() + Duration::from_secs(1);
            let mut rate = Rate::new(rate_hz);
            while Instant::now() < until {
                if commands.recv_into(&mut cmd) {
                    let hal = hal_io.as_mut().map(|(hal, ..)| hal);
                    forward_command(&cmd, hal, &mut msg, &mut cmd_pub, &st, &mut write_errors);
                    if cmd.velocity.iter().all(|v| v.abs() < 1e-9) {
                        break;
                    }
                }
                rate.wait(&AtomicBool::new(false));
            }
            cmd.mode = CommandMode::Hold;
            cmd.velocity.iter_mut().for_each(|v| *v = 0.0);
            cmd.stamp_ns = clock.now_ns();
            let hal = hal_io.as_mut().map(|(hal, ..)| hal);
            forward_command(&cmd, hal, &mut msg, &mut cmd_pub, &st, &mut write_errors);
        }
        Ok(())
    })?;
    Ok(NodeHandle {
        name,
        stop,
        threads: vec![thread],
        stats,
    })
}

#[cfg(test)]
mod tests {
    use super::ErrorStreak;

    /// A device failing at the control rate is logged at the start of the run and then once per
    /// `EVERY` failures; a success ends the run (and says how long it was) and a new run is
    /// logged from its start again.
    #[test]
    fn error_streaks_log_the_start_then_every_500th() {
        let mut e = ErrorStreak::default();
        assert_eq!(e.ok(), None, "no run to end");
        let logged: Vec<u64> = (0..1500).filter_map(|_| e.fail()).collect();
        assert_eq!(logged, [1, 2, 3, 500, 1000, 1500]);
        assert_eq!(e.ok(), Some(1500));
        assert_eq!(e.ok(), None);
        assert_eq!(e.fail(), Some(1));
    }
}
