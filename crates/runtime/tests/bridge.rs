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
use bicameral_runtime::executor::{Command, Executor, ExecutorConfig, spawn};
use bicameral_runtime::hal::RobotHal;
use bicameral_runtime::live::spawn_executor_bridge;
use bicameral_transport::{Node, Qos, ZenohConfig};
use common::planless;

/// Echoes every command as the measured position and keeps them all.
struct RecordingHal {
    q: Vec<f64>,
    fresh: bool,
    log: Arc<Mutex<Vec<Command>>>,
    moving: Arc<AtomicBool>,
}

impl RobotHal for RecordingHal {
    fn name(&self) -> &str {
        "recording"
    }

    fn dim(&self) -> usize {
        self.q.len()
    }

    fn read_state(&mut self, q: &mut [f64]) -> Result<bool, RuntimeError> {
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

#[test]
fn stopping_the_bridge_mid_motion_brakes_to_a_hold_at_rest() {
    let port = free_port();
    let clock = WallClock::new();
    let (exec, io) = Executor::new(
        ExecutorConfig {
            rate_hz: 500.0,
            ..Default::default()
        },
        common::limits(2),
    )
    .unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let moving = Arc::new(AtomicBool::new(false));
    let hal = RecordingHal {
        q: vec![0.0, 0.0],
        fresh: true,
        log: log.clone(),
        moving: moving.clone(),
    };
    let robot = Node::open(&ZenohConfig::loopback_listener(port), "r1", "executor").unwrap();
    let bridge =
        spawn_executor_bridge(robot, io, Arc::new(clock), 500.0, Some(Box::new(hal))).unwrap();
    let thread = spawn(exec, clock).unwrap();

    // A controller on another session: joint 0 ramps at 0.5 rad/s for 1.5 s.
    let ctl = Node::open(&ZenohConfig::loopback_client(port), "r1", "action").unwrap();
    ctl.watch_alive()
        .unwrap()
        .wait_alive("executor", Duration::from_secs(10))
        .unwrap();
    let mut chunks = ctl
        .publisher::<ActionChunk>(ctl.keys().action_chunk(), Qos::Control)
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while !moving.load(Ordering::Acquire) && Instant::now() < end {
        let t0 = clock.now_ns();
        chunks
            .put(&mut planless(t0, 100_000_000, 16, 2, |i, k| {
                if k == 0 { 0.05 * i as f32 } else { 0.0 }
            }))
            .unwrap();
        let wait = Instant::now() + Duration::from_millis(100);
        while !moving.load(Ordering::Acquire) && Instant::now() < wait {
            std::thread::yield_now();
        }
    }
    assert!(moving.load(Ordering::Acquire), "the device never tracked");

    bridge.stop().unwrap();
    let log = log.lock().unwrap();
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
    thread.stop().unwrap();
}

/// Echoes commands like [`RecordingHal`], but its reads fail while `unplugged` is set.
struct UnpluggableHal {
    inner: RecordingHal,
    unplugged: Arc<AtomicBool>,
}

impl RobotHal for UnpluggableHal {
    fn name(&self) -> &str {
        "unpluggable"
    }

    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn read_state(&mut self, q: &mut [f64]) -> Result<bool, RuntimeError> {
        if self.unplugged.load(Ordering::Acquire) {
            return Err(RuntimeError::Node("encoder bus: no response".into()));
        }
        self.inner.read_state(q)
    }

    fn write_command(&mut self, command: &Command) -> Result<(), RuntimeError> {
        self.inner.write_command(command)
    }
}

#[test]
fn a_device_whose_reads_fail_mid_motion_is_held_then_resumed() {
    let port = free_port();
    let clock = WallClock::new();
    let (exec, io) = Executor::new(
        ExecutorConfig {
            rate_hz: 500.0,
            state_timeout_ms: 50.0,
            ..Default::default()
        },
        common::limits(2),
    )
    .unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let moving = Arc::new(AtomicBool::new(false));
    let unplugged = Arc::new(AtomicBool::new(false));
    let hal = UnpluggableHal {
        inner: RecordingHal {
            q: vec![0.0, 0.0],
            fresh: true,
            log: log.clone(),
            moving: moving.clone(),
        },
        unplugged: unplugged.clone(),
    };
    let robot = Node::open(&ZenohConfig::loopback_listener(port), "r1", "executor").unwrap();
    let bridge =
        spawn_executor_bridge(robot, io, Arc::new(clock), 500.0, Some(Box::new(hal))).unwrap();
    let thread = spawn(exec, clock).unwrap();

    let ctl = Node::open(&ZenohConfig::loopback_client(port), "r1", "action").unwrap();
    let events = ctl
        .subscribe::<SafetyEvent>(ctl.keys().safety_event())
        .unwrap();
    ctl.watch_alive()
        .unwrap()
        .wait_alive("executor", Duration::from_secs(10))
        .unwrap();
    let mut chunks = ctl
        .publisher::<ActionChunk>(ctl.keys().action_chunk(), Qos::Control)
        .unwrap();
    // Joint 0 ramps at 0.5 rad/s; fresh chunks keep coming the whole test (S1 alive).
    let send = |chunks: &mut bicameral_transport::Publisher<ActionChunk>| {
        let t0 = clock.now_ns();
        chunks
            .put(&mut planless(t0, 100_000_000, 16, 2, |i, k| {
                if k == 0 { 0.05 * i as f32 } else { 0.0 }
            }))
            .unwrap();
    };
    // Waits for a safety event of `kind`, sending a chunk every 50 ms meanwhile.
    let wait_event = |kind: SafetyEventKind, chunks: &mut _| {
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            send(chunks);
            if let Ok(ev) = events.recv_timeout(Duration::from_millis(50))
                && ev.event == kind
            {
                return ev;
            }
        }
        panic!("no {} event", kind.name());
    };
    let end = Instant::now() + Duration::from_secs(10);
    while !moving.load(Ordering::Acquire) && Instant::now() < end {
        send(&mut chunks);
        let wait = Instant::now() + Duration::from_millis(100);
        while !moving.load(Ordering::Acquire) && Instant::now() < wait {
            std::thread::yield_now();
        }
    }
    assert!(moving.load(Ordering::Acquire), "the device never tracked");

    unplugged.store(true, Ordering::Release);
    let mark = log.lock().unwrap().len();
    let ev = wait_event(SafetyEventKind::HoldStateStale, &mut chunks);
    assert_eq!(ev.count, 1);
    // (The event may overtake the tick's command: wait for the hold to reach the device.)
    let held = || {
        log.lock().unwrap()[mark..]
            .iter()
            .any(|c| c.mode == CommandMode::Hold)
    };
    let end = Instant::now() + Duration::from_secs(10);
    while !held() && Instant::now() < end {
        std::thread::yield_now();
    }
    // From the unplugging on, the device was driven to a hold, braking within the
    // acceleration limit (0.1 rad/s per tick; the bridge may forward every other tick).
    {
        let log = log.lock().unwrap();
        let held = log[mark..]
            .iter()
            .position(|c| c.mode == CommandMode::Hold)
            .expect("a hold reached the device")
            + mark;
        for w in log[mark.saturating_sub(1)..].windows(2) {
            let dv = (w[1].velocity[0] - w[0].velocity[0]).abs();
            assert!(dv <= 0.3 + 1e-9, "velocity jumped by {dv}");
        }
        assert!(
            log[held..].iter().all(|c| c.mode == CommandMode::Hold),
            "no tracking while the reads fail"
        );
    }
    assert!(bridge.stats.errors() > 0, "read failures are counted");

    unplugged.store(false, Ordering::Release);
    wait_event(SafetyEventKind::Resumed, &mut chunks);
    // The next commands track the fresh chunks.
    let mark = log.lock().unwrap().len();
    let tracking = || {
        log.lock().unwrap()[mark..]
            .iter()
            .any(|c| c.mode == CommandMode::Track)
    };
    let end = Instant::now() + Duration::from_secs(10);
    while !tracking() && Instant::now() < end {
        send(&mut chunks);
        let wait = Instant::now() + Duration::from_millis(50);
        while !tracking() && Instant::now() < wait {
            std::thread::yield_now();
        }
    }
    assert!(
        log.lock().unwrap()[mark..]
            .iter()
            .any(|c| c.mode == CommandMode::Track),
        "tracking again after the reads recovered"
    );
    bridge.stop().unwrap();
    thread.stop().unwrap();
}
