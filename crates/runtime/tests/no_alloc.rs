//! The executor's period loop never allocates: a counting global allocator counts allocations
//! made on the executor thread while it runs ticks with chunk hand-offs, state updates, an
//! e-stop and its reset, from another thread.
#![allow(unsafe_code)] // GlobalAlloc is an unsafe trait.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bicameral_runtime::clock::{Clock, WallClock};
use bicameral_runtime::executor::{Executor, ExecutorConfig, TickStats, run_periodic};

struct Counting;

static ALLOCS_ON_WATCHED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static WATCHED: Cell<bool> = const { Cell::new(false) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if WATCHED.with(|w| w.get()) {
            ALLOCS_ON_WATCHED.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if WATCHED.with(|w| w.get()) {
            ALLOCS_ON_WATCHED.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if WATCHED.with(|w| w.get()) {
            ALLOCS_ON_WATCHED.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn the_period_loop_does_not_allocate() {
    let cfg = ExecutorConfig {
        rate_hz: 1000.0,
        ..Default::default()
    };
    let (mut exec, mut io) = Executor::new(cfg, common::limits(32)).unwrap();
    let clock = WallClock::new();
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(TickStats::default());
    let (s, st) = (stop.clone(), stats.clone());
    let rt = std::thread::spawn(move || {
        WATCHED.with(|w| w.set(true));
        run_periodic(&mut exec, &clock, &s, &st);
        WATCHED.with(|w| w.set(false));
        exec
    });

    // Feed it from this thread: state, then chunks at ~100 Hz, an e-stop and a reset, until
    // it has run 400 ticks.
    io.state.send(&[0.0; 32]).unwrap();
    let mut cmd = io.commands.empty();
    let mut sent = 0u64;
    while stats.count() < 400 {
        let now = clock.now_ns();
        let c = common::planless(now, 10_000_000, 16, 32, |i, k| (i * k) as f32 * 1e-3);
        io.chunks.send(&c).unwrap();
        io.state.send(&[0.001 * sent as f64; 32]).unwrap();
        sent += 1;
        if sent == 10 {
            io.estop.engage();
        }
        if sent == 20 {
            io.estop.reset();
        }
        // Wait (event-driven) for the executor to publish a command past this chunk's start.
        while !(io.commands.recv_into(&mut cmd) && cmd.stamp_ns >= now) {
            std::hint::spin_loop();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let exec = rt.join().unwrap();
    assert!(exec.counters().ticks() >= 400);
    assert_eq!(
        io.counters
            .count(bicameral_msgs::SafetyEventKind::EStopEngaged),
        1,
        "the e-stop path ran"
    );
    assert_eq!(
        ALLOCS_ON_WATCHED.load(Ordering::Relaxed),
        0,
        "the executor thread allocated or freed inside its loop"
    );
}
