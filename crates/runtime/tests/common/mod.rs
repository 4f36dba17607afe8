//! Shared helpers: limits, chunks.
#![allow(dead_code)]

use bicameral_msgs::{ActionChunk, Header, NO_PLAN, Tensor};
use bicameral_runtime::safety::SafetyLimits;

pub fn limits(n: usize) -> SafetyLimits {
    SafetyLimits::uniform(n, (-1.0, 1.0), 2.0, 50.0, 0.05)
}

/// A chunk of `h` steps whose joint k at step i is `f(i, k)`.
pub fn chunk(
    t0_ns: u64,
    dt_ns: u64,
    h: usize,
    d: usize,
    plan_seq: u64,
    plan_stamp_ns: u64,
    f: impl Fn(usize, usize) -> f32,
) -> ActionChunk {
    let v: Vec<f32> = (0..h * d).map(|x| f(x / d, x % d)).collect();
    ActionChunk {
        header: Header::new::<ActionChunk>("r1", 0, t0_ns),
        plan_seq,
        plan_stamp_ns,
        obs_stamp_ns: t0_ns,
        t0_ns,
        dt_ns,
        actions: Tensor::from_f32(&[h, d], &v).unwrap(),
    }
}

pub fn planless(
    t0_ns: u64,
    dt_ns: u64,
    h: usize,
    d: usize,
    f: impl Fn(usize, usize) -> f32,
) -> ActionChunk {
    chunk(t0_ns, dt_ns, h, d, NO_PLAN, 0, f)
}
