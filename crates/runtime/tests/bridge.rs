//! The executor's zenoh bridge with a robot device: a chunk received over a real zenoh session
//! (peer mode on loopback) is tracked on the device, and stopping the bridge mid-motion brakes
//! the device within the acceleration limit and leaves it a final hold at rest, not a "track"
//! with a stale feed-forward velocity (nor an instant stop). A device whose reads start
//! failing mid-motion makes the executor hold (published as `hold_state_stale`), and it tracks
//! again once the reads recover.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bicameral_msgs::{ActionChunk, CommandMode, SafetyEvent, SafetyEventKind};
use bicameral_runtime::RuntimeError;
use bicameral_runtime::clock::{Clock, WallClock};
use bicameral_runtime::executor::{Command, Executor, ExecutorConfig, ExecutorThread, spawn};
use bicameral_runtime::hal::RobotHal;
use bicameral_runtime::live::{NodeHandle, spawn_executor_bridge};
use bicameral_transport::{Node, Publisher, Qos, Subscriber, ZenohConfig};
use common::planless;

/// Echoes every command as the measured position and keeps them all; its reads fail while
/// `unplugged` is set.
struct RecordingHal {
    q: Vec<f64>,
    fresh: bool,
    log: Arc<Mutex<Vec<Command>>>,
    moving: Arc<AtomicBool>,
    unplugged: Arc<AtomicBool>,
}

impl RobotHal for RecordingHal {
    fn name(&self) -> &str {
        "recording"
    }

    fn dim(&self) -> usize {
        self.q.len()
    }

    fn read_state(&mut self, q: &mut [f64]) -> Result<bool, RuntimeError> {
        if self.unplugged.load(Ordering::Acquire) {
            return Err(RuntimeError::Node("encoder bus: no response".into()));
        }
        q.copy_from_slice(&self.q);
        Ok(std::mem::replace(&mut self.fresh, false))
    }

    fn write_command(&mut self, command: &Command) -> Result<(), RuntimeError> {
        self.q.clone_from(&command.position);
        self.fresh = true;
        if command.mode == CommandMode::Track && command.velocity[0].abs() > 0.1 {
            self.moving.store(true, Ordering::Release);
        }
        self.log
            .lock()
            .map_err(|_| RuntimeError::Node("log poisoned".into()))?
            .push(command.clone());
        Ok(())
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An executor at 500 Hz on a 2-joint [`RecordingHal`] behind its zenoh bridge, and a
/// controller on another session publishing chunks to it.
struct Rig {
    clock: WallClock,
    log: Arc<Mutex<Vec<Command>>>,
    moving: Arc<AtomicBool>,
    unplugged: Arc<AtomicBool>,
    bridge: NodeHandle,
    thread: ExecutorThread,
    ctl: Node,
    chunks: Publisher<ActionChunk>,
}

impl Rig {
    fn start(cfg: ExecutorConfig) -> Rig {
        let port = free_port();
        let clock = WallClock::new();
        let (exec, io) = Executor::new(cfg, common::limits(2)).unwrap();
        let (log, moving, unplugged) = (
            Arc::new(Mutex::new(Vec::new())),
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let hal = RecordingHal {
            q: vec![0.0, 0.0],
            fresh: true,
            log: log.clone(),
            moving: moving.clone(),
            unplugged: unplugged.clone(),
        };
        let robot = Node::open(&ZenohConfig::loopback_listener(port), "r1", "executor").unwrap();
        let bridge =
            spawn_executor_bridge(robot, io, Arc::new(clock), 500.0, Some(Box::new(hal))).unwrap();
        let thread = spawn(exec, clock).unwrap();
        let ctl = Node::open(&ZenohConfig::loopback_client(port), "r1", "action").unwrap();
        ctl.watch_alive()
            .unwrap()
            .wait_alive("executor", Duration::from_secs(10))
            .unwrap();
        let chunks = ctl
            .publisher::<ActionChunk>(ctl.keys().action_chunk(), Qos::Control)
            .unwrap();
        Rig {
            clock,
            log,
            moving,
            unplugged,
            bridge,
            thread,
            ctl,
            chunks,
        }
    }

    /// Publishes a chunk starting now: joint 0 ramps at 0.5 rad/s for 1.5 s.
    fn send_ramp(&mut self) {
        let t0 = self.clock.now_ns();
        self.chunks
            .put(&mut planless(t0, 100_000_000, 16, 2, |i, k| {
                if k == 0 { 0.05 * i as f32 } else { 0.0 }
            }))
            .unwrap();
    }

    /// Sends a ramp every 50 ms until `done` (polled between, at most 10 s); whether it held.
    fn ramp_until(&mut self, mut done: impl FnMut(&Rig) -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(10);
        while !done(self) && Instant::now() < end {
            self.send_ramp();
            let wait = Instant::now() + Duration::from_millis(50);
            while !done(self) && Instant::now() < wait {
                std::thread::yield_now();
            }
        }
        done(self)
    }

    /// Whether a command of `mode` reached the device after its first `from` commands.
    fn commanded_since(&self, from: usize, mode: CommandMode) -> bool {
        self.log.lock().unwrap()[from..]
            .iter()
            .any(|c| c.mode == mode)
    }
}

#[test]
fn stopping_the_bridge_mid_motion_brakes_to_a_hold_at_rest() {
    let mut rig = Rig::start(ExecutorConfig {
        rate_hz: 500.0,
        ..Default::default()
    });
    assert!(
        rig.ramp_until(|r| r.moving.load(Ordering::Acquire)),
        "the device never tracked"
    );

    rig.bridge.stop().unwrap();
    let log = rig.log.lock().unwrap();
    let last = log.last().unwrap();
    assert_eq!(last.mode, CommandMode::Hold, "{last:?}");
    assert_eq!(last.velocity, vec![0.0, 0.0]);
    // From the last "track" on: only holds, braking within the acceleration limit (50 rad/s²,
    // 0.1 rad/s per 2 ms tick; the bridge may forward every other tick), down to rest.
    let first_hold = log
        .iter()
        .rposition(|c| c.mode == CommandMode::Track)
        .unwrap()
        + 1;
    assert!(
        log[first_hold - 1].velocity[0] > 0.1,
        "stopped mid-motion: {:?}",
        log[first_hold - 1]
    );
    for w in log[first_hold - 1..].windows(2) {
        assert_eq!(w[1].mode, CommandMode::Hold);
        let dv = (w[1].velocity[0] - w[0].velocity[0]).abs();
        assert!(
            dv <= 0.3 + 1e-9,
            "velocity jumped by {dv}: {:?} -> {:?}",
            w[0],
            w[1]
        );
    }
    assert_eq!(
        last.position,
        log[log.len() - 2].position,
        "holds where it came to rest"
    );
    rig.thread.stop().unwrap();
}

#[test]
fn a_device_whose_reads_fail_mid_motion_is_held_then_resumed() {
    let mut rig = Rig::start(ExecutorConfig {
        rate_hz: 500.0,
        state_timeout_ms: 50.0,
        ..Default::default()
    });
    let events: Subscriber<SafetyEvent> = rig.ctl.subscribe(rig.ctl.keys().safety_event()).unwrap();
    // Fresh chunks keep coming the whole test (System 1 alive).
    assert!(
        rig.ramp_until(|r| r.moving.load(Ordering::Acquire)),
        "the device never tracked"
    );
    // Waits for a safety event of `kind` while sending chunks.
    let wait_event = |rig: &mut Rig, kind: SafetyEventKind| {
        let mut found = None;
        rig.ramp_until(|_| {
            while let Some(Ok(ev)) = events.try_recv() {
                if ev.event == kind {
                    found = Some(ev);
                }
            }
            found.is_some()
        });
        found.unwrap_or_else(|| panic!("no {} event", kind.name()))
    };

    rig.unplugged.store(true, Ordering::Release);
    let mark = rig.log.lock().unwrap().len();
    let ev = wait_event(&mut rig, SafetyEventKind::HoldStateStale);
    assert_eq!(ev.count, 1);
    // (The event may overtake the tick's command: wait for the hold to reach the device.)
    assert!(
        rig.ramp_until(|r| r.commanded_since(mark, CommandMode::Hold)),
        "no hold reached the device"
    );
    // From the unplugging on, the device was driven to a hold, braking within the
    // acceleration limit (0.1 rad/s per tick; the bridge may forward every other tick).
    {
        let log = rig.log.lock().unwrap();
        for w in log[mark.saturating_sub(1)..].windows(2) {
            let dv = (w[1].velocity[0] - w[0].velocity[0]).abs();
            assert!(dv <= 0.3 + 1e-9, "velocity jumped by {dv}");
        }
        let held = mark
            + log[mark..]
                .iter()
                .position(|c| c.mode == CommandMode::Hold)
                .unwrap();
        assert!(
            log[held..].iter().all(|c| c.mode == CommandMode::Hold),
            "no tracking while the reads fail"
        );
    }
    assert!(rig.bridge.stats.errors() > 0, "read failures are counted");

    rig.unplugged.store(false, Ordering::Release);
    wait_event(&mut rig, SafetyEventKind::Resumed);
    // The next commands track the fresh chunks.
    let mark = rig.log.lock().unwrap().len();
    assert!(
        rig.ramp_until(|r| r.commanded_since(mark, CommandMode::Track)),
        "tracking again after the reads recovered"
    );
    rig.bridge.stop().unwrap();
    rig.thread.stop().unwrap();
}
