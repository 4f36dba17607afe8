//! Clocks. Nodes never read the wall clock directly: they take a [`Clock`], so the same code
//! runs lock-step on sim time (reproducible) and live on the wall clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of time in ns. Stamps in messages are on this clock.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, ns since the clock's epoch.
    fn now_ns(&self) -> u64;

    /// Whether time only moves when a driver advances it (sim time).
    fn is_lockstep(&self) -> bool;
}

/// How far ahead of the receiving node's clock a message's stamps may be, ns (250 ms: clock
/// skew between hosts synchronised by NTP/PTP is far smaller). An input stamped further in the
/// future is refused: taken as fresh forever, it would switch off every staleness check (plan
/// ttl, "newer than the last one used") and freeze the node that took it.
pub const MAX_FUTURE_NS: u64 = 250_000_000;

/// Longest time span one action chunk may cover, ns (first to last step). A chunk spanning
/// more is refused: the executor would track it long after its sender stopped.
pub const MAX_CHUNK_SPAN_NS: u64 = 10_000_000_000;

/// Shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The wall clock: ns since the Unix epoch, anchored once at creation and advanced by the
/// monotonic clock afterwards (so it never jumps back when the system time is adjusted). Two
/// processes on one host agree to within their anchoring error (µs), which is what lets
/// chunks stamped by one process be scheduled by another.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    anchor: Instant,
    anchor_unix_ns: u64,
}

impl WallClock {
    /// A wall clock anchored now.
    pub fn new() -> Self {
        let anchor = Instant::now();
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        WallClock {
            anchor,
            anchor_unix_ns: unix.as_nanos() as u64,
        }
    }

    /// The `Instant` at which this clock reads `ns` (for absolute-deadline sleeping).
    pub fn instant_at(&self, ns: u64) -> Instant {
        if ns >= self.anchor_unix_ns {
            self.anchor + Duration::from_nanos(ns - self.anchor_unix_ns)
        } else {
            self.anchor
                .checked_sub(Duration::from_nanos(self.anchor_unix_ns - ns))
                .unwrap_or(self.anchor)
        }
    }

    /// The clock reading at `instant`.
    pub fn ns_at(&self, instant: Instant) -> u64 {
        match instant.checked_duration_since(self.anchor) {
            Some(d) => self.anchor_unix_ns + d.as_nanos() as u64,
            None => self
                .anchor_unix_ns
                .saturating_sub(self.anchor.duration_since(instant).as_nanos() as u64),
        }
    }
}

impl Default for WallClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for WallClock {
    fn now_ns(&self) -> u64 {
        self.ns_at(Instant::now())
    }

    fn is_lockstep(&self) -> bool {
        false
    }
}

/// Simulation time, advanced by the simulation driver (lock-step runs).
#[derive(Debug, Default)]
pub struct SimClock {
    ns: AtomicU64,
}

impl SimClock {
    /// A sim clock at `start_ns`.
    pub fn new(start_ns: u64) -> Self {
        SimClock {
            ns: AtomicU64::new(start_ns),
        }
    }

    /// Sets the time (monotonic: earlier values are ignored).
    pub fn set_ns(&self, ns: u64) {
        self.ns.fetch_max(ns, Ordering::AcqRel);
    }

    /// Advances by `dt_ns`.
    pub fn advance_ns(&self, dt_ns: u64) {
        self.ns.fetch_add(dt_ns, Ordering::AcqRel);
    }
}

impl Clock for SimClock {
    fn now_ns(&self) -> u64 {
        self.ns.load(Ordering::Acquire)
    }

    fn is_lockstep(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_clock_is_unix_time_and_monotonic() {
        let c = WallClock::new();
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let a = c.now_ns();
        assert!(a.abs_diff(unix) < 1_000_000_000, "{a} vs {unix}");
        let b = c.now_ns();
        assert!(b >= a);
        let t = a + 5_000_000;
        assert_eq!(c.ns_at(c.instant_at(t)), t);
    }

    #[test]
    fn sim_clock_only_moves_forward() {
        let c = SimClock::new(10);
        c.advance_ns(5);
        assert_eq!(c.now_ns(), 15);
        c.set_ns(12);
        assert_eq!(c.now_ns(), 15);
        c.set_ns(100);
        assert_eq!(c.now_ns(), 100);
        assert!(c.is_lockstep());
    }
}
