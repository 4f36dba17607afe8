//! The executor state machine, lock-step (sim time): tracking by time with interpolation,
//! blending, holds (no chunk, exhausted, stale plan, e-stop latch), rejection of bad chunks.

mod common;

use bicameral_msgs::{CommandMode, SafetyEventKind as K};
use bicameral_runtime::executor::{Executor, ExecutorConfig, Mode};
use common::*;

const MS: u64 = 1_000_000;
/// These tests feed one joint state and then tick for seconds: a state timeout that never
/// fires (the stale-state hold has a test of its own).
const ONE_STATE: f64 = 60_000.0;

fn setup(d: usize) -> (Executor, bicameral_runtime::executor::ExecutorIo) {
    let cfg = ExecutorConfig {
        rate_hz: 500.0,
        state_timeout_ms: ONE_STATE,
        blend_ms: 20.0,
        plan_ttl_ms: 300.0,
        ..Default::default()
    };
    Executor::new(cfg, limits(d)).unwrap()
}

#[test]
fn no_command_before_state_then_holds_start_position() {
    let (mut ex, mut io) = setup(2);
    assert!(ex.tick(0).is_none());
    assert_eq!(ex.mode(), Mode::WaitingForState);
    io.state.send(&[0.1, -0.2]).unwrap();
    let (p, v, m) = ex.tick(2 * MS).unwrap();
    assert_eq!(
        (p, v, m),
        (&[0.1, -0.2][..], &[0.0, 0.0][..], CommandMode::Hold)
    );
    assert_eq!(ex.mode(), Mode::WaitingForChunk);
    // The command also reaches the output slot.
    let mut cmd = io.commands.empty();
    assert!(io.commands.recv_into(&mut cmd));
    assert_eq!(cmd.position, vec![0.1, -0.2]);
    assert_eq!(cmd.stamp_ns, 2 * MS);
    assert!(!io.commands.recv_into(&mut cmd), "nothing newer");
}

#[test]
fn tracks_a_slow_chunk_by_time_with_interpolation() {
    let (mut ex, mut io) = setup(1);
    io.state.send(&[0.0]).unwrap();
    ex.tick(0);
    // A ramp 0 → 0.15 rad over 16 steps of 10 ms: 1 rad/s, inside every limit.
    io.chunks
        .send(&planless(0, 10 * MS, 16, 1, |i, _| i as f32 * 0.01))
        .unwrap();
    let mut t = 0;
    while t <= 150 * MS {
        let (p, v, m) = ex.tick(t).unwrap();
        assert_eq!(m, CommandMode::Track);
        let want = t as f64 / (10 * MS) as f64 * 0.01;
        // Starting at rest, the command catches up with the 1 rad/s ramp within the
        // acceleration limit (50 rad/s²), then follows it exactly, interpolating between steps.
        if (80 * MS..140 * MS).contains(&t) {
            // (1e-6: the chunk carries f32.)
            assert!((p[0] - want).abs() < 1e-6, "t={t} p={} want {want}", p[0]);
            assert!((v[0] - 1.0).abs() < 1e-6, "v={}", v[0]);
        }
        t += 2 * MS;
    }
    // Past the end: hold, counted once, decelerating (not a jump to zero velocity).
    let v_end = ex.filter().velocity()[0];
    ex.tick(t + 10 * MS);
    assert_eq!(ex.mode(), Mode::Hold(K::HoldChunksExhausted));
    assert!((ex.filter().velocity()[0] - v_end).abs() <= 50.0 * 0.002 + 1e-9);
    ex.tick(t + 12 * MS);
    assert_eq!(io.counters.count(K::HoldChunksExhausted), 1);
}

#[test]
fn bad_chunks_are_rejected_and_counted_and_never_commanded() {
    let (mut ex, mut io) = setup(2);
    io.state.send(&[0.0, 0.0]).unwrap();
    ex.tick(0);
    io.chunks
        .send(&planless(0, 10 * MS, 8, 2, |_, _| 0.02))
        .unwrap();
    ex.tick(2 * MS);
    assert_eq!(ex.mode(), Mode::Tracking);
    // NaN in one action.
    io.chunks
        .send(&planless(4 * MS, 10 * MS, 8, 2, |i, k| {
            if i == 3 && k == 1 { f32::NAN } else { 0.9 }
        }))
        .unwrap();
    ex.tick(4 * MS);
    assert_eq!(io.counters.count(K::ChunkRejected), 1);
    // Out of the position limits (upper = 1.0).
    io.chunks
        .send(&planless(6 * MS, 10 * MS, 8, 2, |i, k| {
            if i == 5 && k == 0 { 1.7 } else { 0.9 }
        }))
        .unwrap();
    ex.tick(6 * MS);
    assert_eq!(io.counters.count(K::ChunkOutOfLimits), 1);
    assert_eq!(io.counters.last(K::ChunkOutOfLimits), (6 * MS, Some(0)));
    // Wrong dimension: refused at the sender.
    assert!(
        io.chunks
            .send(&planless(8 * MS, 10 * MS, 8, 3, |_, _| 0.0))
            .is_err()
    );
    assert_eq!(io.counters.count(K::ChunkRejected), 2);
    // The good chunk is still what is tracked: nothing moved toward 0.9.
    for t in (8..60).step_by(2) {
        let (p, _, _) = ex.tick(t * MS).unwrap();
        assert!(p.iter().all(|&x| x <= 0.02 + 1e-9), "t={t} {p:?}");
    }
}

#[test]
fn estop_holds_within_one_tick_and_latches_until_reset() {
    let (mut ex, mut io) = setup(1);
    io.state.send(&[0.0]).unwrap();
    ex.tick(0);
    io.chunks
        .send(&planless(0, 10 * MS, 64, 1, |i, _| i as f32 * 0.01))
        .unwrap();
    for t in (2..50).step_by(2) {
        ex.tick(t * MS);
    }
    assert_eq!(ex.mode(), Mode::Tracking);
    io.estop.engage();
    let (_, _, m) = ex.tick(50 * MS).unwrap();
    assert_eq!(m, CommandMode::Hold, "hold on the very next tick");
    assert_eq!(io.counters.count(K::EStopEngaged), 1);
    // Fresh chunks do not release the latch.
    for t in (52..200).step_by(2) {
        io.chunks
            .send(&planless(t * MS, 10 * MS, 64, 1, |i, _| {
                0.5 + i as f32 * 0.001
            }))
            .unwrap();
        let (_, _, m) = ex.tick(t * MS).unwrap();
        assert_eq!(m, CommandMode::Hold);
    }
    assert!(ex.filter().velocity()[0].abs() < 1e-12, "came to rest");
    io.estop.reset();
    let (_, _, m) = ex.tick(200 * MS).unwrap();
    assert_eq!(m, CommandMode::Track);
    assert_eq!(io.counters.count(K::EStopReset), 1);
    assert_eq!(io.counters.count(K::Resumed), 1);
}

#[test]
fn stale_plan_holds_after_the_ttl() {
    let (mut ex, mut io) = setup(1);
    io.state.send(&[0.0]).unwrap();
    ex.tick(0);
    // Plan observed at t=0, ttl 300 ms; a long chunk keeps arriving (S1 alive, S2 dead).
    let mut t = 0;
    while t < 400 * MS {
        if t % (20 * MS) == 0 {
            io.chunks
                .send(&chunk(t, 10 * MS, 16, 1, 7, 0, |_, _| 0.1))
                .unwrap();
        }
        ex.tick(t);
        if t <= 300 * MS {
            assert_eq!(ex.mode(), Mode::Tracking, "t={t}");
        }
        t += 2 * MS;
    }
    assert_eq!(ex.mode(), Mode::Hold(K::HoldPlanStale));
    assert_eq!(io.counters.count(K::HoldPlanStale), 1);
}

#[test]
fn chunk_switch_is_blended_not_jumped() {
    // Two chunks that disagree by 0.04 rad. With a 100 ms smoothstep blend the target's peak
    // acceleration is 6·0.04/0.1² = 24 rad/s², inside the 50 rad/s² limit: the command follows
    // it exactly, never clamped. Switching at once asks for a step: the filter has to clamp,
    // and the command runs at the acceleration limit.
    let run = |blend_ms: f64| {
        let cfg = ExecutorConfig {
            rate_hz: 500.0,
            state_timeout_ms: ONE_STATE,
            blend_ms,
            ..Default::default()
        };
        let (mut ex, mut io) = Executor::new(cfg, limits(1)).unwrap();
        io.state.send(&[0.0]).unwrap();
        ex.tick(0);
        io.chunks
            .send(&planless(0, 10 * MS, 32, 1, |_, _| 0.0))
            .unwrap();
        for t in (2..100).step_by(2) {
            ex.tick(t * MS);
        }
        let clamped_before = io.counters.count(K::Clamped);
        io.chunks
            .send(&planless(100 * MS, 10 * MS, 32, 1, |_, _| 0.04))
            .unwrap();
        let mut prev_v = ex.filter().velocity()[0];
        let mut max_acc: f64 = 0.0;
        for t in (100..300).step_by(2) {
            let (p, v, _) = ex.tick(t * MS).unwrap();
            max_acc = max_acc.max((v[0] - prev_v).abs() / 0.002);
            prev_v = v[0];
            let _ = p;
        }
        assert!((ex.filter().position()[0] - 0.04).abs() < 1e-6, "arrives");
        (max_acc, io.counters.count(K::Clamped) - clamped_before)
    };
    let (acc_blended, clamps_blended) = run(100.0);
    let (acc_switched, clamps_switched) = run(0.0);
    assert_eq!(clamps_blended, 0, "blended transition needed clamping");
    assert!(
        acc_blended <= 25.0,
        "blended peak acceleration {acc_blended}"
    );
    assert!(clamps_switched > 0);
    assert!(
        acc_switched >= 49.9,
        "switched peak acceleration {acc_switched}"
    );
}

/// A smooth motion sampled as a chunk (a 2 Hz sine of 0.05 rad, steps 50 ms apart, as System 1
/// emits): linear interpolation turns it into straight segments whose velocity steps at every
/// chunk step, so the acceleration limit (50 rad/s²) has to shape the command there; the cubic
/// interpolation passes through the same steps with a continuous velocity and is not clamped.
#[test]
fn cubic_interpolation_is_smooth_through_the_chunk_steps() {
    use bicameral_runtime::executor::Interpolation;
    let run = |interpolation: Interpolation| {
        let cfg = ExecutorConfig {
            rate_hz: 500.0,
            state_timeout_ms: ONE_STATE,
            interpolation,
            ..Default::default()
        };
        let (mut ex, mut io) = Executor::new(cfg, limits(1)).unwrap();
        io.state.send(&[0.0]).unwrap();
        ex.tick(0);
        let wave = |i: usize| (0.05 * (std::f64::consts::TAU * 2.0 * i as f64 * 0.05).sin()) as f32;
        io.chunks
            .send(&planless(0, 50 * MS, 16, 1, |i, _| wave(i)))
            .unwrap();
        // Clamps are counted from 100 ms on: the start from rest is not what is compared.
        let mut before = 0;
        let (mut max_acc, mut prev_v, mut at_steps) = (0.0f64, 0.0f64, Vec::new());
        for t in (2..=700).step_by(2) {
            let (p, v, m) = ex.tick(t * MS).unwrap();
            assert_eq!(m, CommandMode::Track);
            if t == 100 {
                before = io.counters.count(K::Clamped);
            }
            if t > 100 {
                max_acc = max_acc.max((v[0] - prev_v).abs() / 0.002);
            }
            prev_v = v[0];
            if t % 50 == 0 {
                at_steps.push((p[0], f64::from(wave((t / 50) as usize))));
            }
        }
        (io.counters.count(K::Clamped) - before, max_acc, at_steps)
    };
    let (clamped_lin, acc_lin, _) = run(Interpolation::Linear);
    let (clamped_cub, acc_cub, steps_cub) = run(Interpolation::Cubic);
    eprintln!(
        "clamped ticks: linear {clamped_lin}, cubic {clamped_cub}; peak acceleration: linear \
         {acc_lin:.1}, cubic {acc_cub:.1} rad/s²"
    );
    assert!(clamped_lin > 10, "linear: {clamped_lin} clamped ticks");
    assert_eq!(clamped_cub, 0, "cubic: {clamped_cub} clamped ticks");
    assert!(acc_cub < 0.5 * acc_lin, "{acc_cub} vs {acc_lin}");
    // It still passes through the chunk's steps (after the start-up from rest).
    for (p, want) in &steps_cub[2..] {
        assert!((p - want).abs() < 1e-6, "{p} vs {want}");
    }
}

/// Chunks stamped in the future (start or plan beyond the allowed clock skew) or spanning more
/// than the longest chunk span are rejected: the executor never tracks them.
#[test]
fn chunks_from_the_future_or_of_endless_span_are_rejected() {
    let (mut ex, mut io) = setup(1);
    io.state.send(&[0.0]).unwrap();
    ex.tick(0).unwrap();
    let hour = 3_600_000 * MS;
    io.chunks
        .send(&planless(hour, 10 * MS, 16, 1, |_, _| 0.1))
        .unwrap();
    ex.tick(2 * MS).unwrap();
    io.chunks
        .send(&chunk(0, 10 * MS, 16, 1, 1, hour, |_, _| 0.1))
        .unwrap();
    ex.tick(4 * MS).unwrap();
    io.chunks
        .send(&planless(0, 1000 * MS, 16, 1, |_, _| 0.1))
        .unwrap();
    ex.tick(6 * MS).unwrap();
    assert_eq!(io.counters.count(K::ChunkRejected), 3);
    assert_eq!(ex.mode(), Mode::WaitingForChunk);
    // Within the limits it tracks.
    io.chunks
        .send(&planless(8 * MS, 10 * MS, 16, 1, |_, _| 0.1))
        .unwrap();
    ex.tick(8 * MS).unwrap();
    assert_eq!(ex.mode(), Mode::Tracking);
}

/// A NaN reading on one joint costs only that joint its effort bound (the command may not run
/// more than `max_error` ahead of the measured position); a state of the wrong length is
/// refused; the executor never starts from a state with an unknown joint.
#[test]
fn a_nan_reading_drops_only_that_joints_effort_bound() {
    let mut l = limits(2);
    for j in &mut l.joints {
        j.max_error = 0.05;
    }
    let cfg = ExecutorConfig {
        rate_hz: 500.0,
        state_timeout_ms: ONE_STATE,
        blend_ms: 20.0,
        plan_ttl_ms: 300.0,
        ..Default::default()
    };
    let (mut ex, mut io) = Executor::new(cfg, l).unwrap();
    assert!(io.state.send(&[0.0]).is_err(), "short state refused");
    assert!(
        io.state.send(&[0.0, 0.0, 0.0]).is_err(),
        "long state refused"
    );
    io.state.send(&[0.0, f64::NAN]).unwrap();
    assert!(ex.tick(0).is_none(), "no start from an unknown joint");
    io.state.send(&[0.0, 0.0]).unwrap();
    ex.tick(2 * MS).unwrap();
    // Both joints are asked to go to 0.5 rad; the robot does not move (joint 0 reads 0, joint 1
    // reads NaN).
    io.chunks
        .send(&planless(2 * MS, 10 * MS, 40, 2, |_, _| 0.5))
        .unwrap();
    io.state.send(&[0.0, f64::NAN]).unwrap();
    let mut t = 4 * MS;
    for _ in 0..150 {
        ex.tick(t).unwrap();
        t += 2 * MS;
    }
    let p = ex.filter().position();
    assert!(
        p[0] <= 0.05 + 1e-9,
        "joint 0 ran {} ahead of its reading",
        p[0]
    );
    assert!(p[1] > 0.2, "joint 1 (unknown reading) tracks: {}", p[1]);
}

/// The measurements stop (a disconnected device): the executor holds once the state is older
/// than `state_timeout_ms`, counted once, decelerating within the acceleration limit, and it
/// resumes tracking with the next fresh state. The stale reading no longer bounds the command.
#[test]
fn no_joint_state_for_the_timeout_holds_until_states_return() {
    // Braking at 10 rad/s² from ~1 rad/s takes ~5 cm, more than is left of the effort bound.
    let mut l = limits(1);
    l.joints[0].max_error = 0.08;
    l.joints[0].max_acceleration = 10.0;
    let cfg = ExecutorConfig {
        rate_hz: 500.0,
        state_timeout_ms: 50.0,
        ..Default::default()
    };
    let (mut ex, mut io) = Executor::new(cfg, l).unwrap();
    io.state.send(&[0.0]).unwrap();
    ex.tick(0).unwrap();
    // A ramp at 1 rad/s for 0.63 s.
    io.chunks
        .send(&planless(0, 10 * MS, 64, 1, |i, _| i as f32 * 0.01))
        .unwrap();
    // States every 10 ms (following the command) until t = 100 ms, then none.
    let mut t = 2 * MS;
    let mut last_reading = 0.0;
    while t <= 150 * MS {
        if t <= 100 * MS && t.is_multiple_of(10 * MS) {
            last_reading = ex.filter().position()[0];
            io.state.send(&[last_reading]).unwrap();
        }
        let (_, _, m) = ex.tick(t).unwrap();
        assert_eq!(
            m,
            CommandMode::Track,
            "t={t}: the state is at most 50 ms old"
        );
        t += 2 * MS;
    }
    let v_before = ex.filter().velocity()[0];
    assert!(v_before > 0.9, "tracking the ramp: {v_before}");
    let (_, v, m) = ex.tick(t).unwrap();
    let v = v[0];
    assert_eq!(m, CommandMode::Hold, "52 ms without a state");
    assert_eq!(ex.mode(), Mode::Hold(K::HoldStateStale));
    assert!(
        (v - v_before).abs() <= 10.0 * 0.002 + 1e-9,
        "decelerates, no jump"
    );
    // Holding until at rest; the fresh chunks S1 might still send do not release it.
    for _ in 0..150 {
        t += 2 * MS;
        io.chunks
            .send(&planless(t, 10 * MS, 16, 1, |_, _| 0.9))
            .unwrap();
        let (_, _, m) = ex.tick(t).unwrap();
        assert_eq!(m, CommandMode::Hold);
    }
    assert_eq!(io.counters.count(K::HoldStateStale), 1);
    assert!(ex.filter().velocity()[0].abs() < 1e-12, "came to rest");
    // The hold is not bounded by the outdated reading: it came to rest where deceleration took
    // it, beyond the reading's effort bound (which would have stopped it with a jump in
    // velocity).
    let rest = ex.filter().position()[0];
    assert!(
        rest > last_reading + 0.08,
        "rest at {rest}, last reading {last_reading}"
    );
    // States return: tracking resumes (counted), toward the newest chunk.
    io.state.send(&[rest]).unwrap();
    t += 2 * MS;
    io.chunks
        .send(&planless(t, 10 * MS, 16, 1, |_, _| rest as f32 + 0.01))
        .unwrap();
    let (_, _, m) = ex.tick(t).unwrap();
    assert_eq!(m, CommandMode::Track);
    assert_eq!(io.counters.count(K::Resumed), 1);
}

#[test]
fn a_state_timeout_shorter_than_two_periods_is_refused() {
    let cfg = ExecutorConfig {
        rate_hz: 500.0,
        state_timeout_ms: 3.0,
        ..Default::default()
    };
    let err = cfg.validate("launch/robot.toml").unwrap_err().to_string();
    assert!(
        err.contains("launch/robot.toml") && err.contains("executor.state_timeout_ms"),
        "{err}"
    );
}
