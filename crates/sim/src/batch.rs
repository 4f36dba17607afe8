//! Parallel environments: N independent worlds stepped on W worker threads. Each world is only
//! ever touched by one thread at a time and rapier runs single-threaded inside it, so results
//! are bit-identical whatever W is.

use crate::error::SimError;
use crate::world::SimWorld;

/// A batch of independent worlds.
pub struct WorldBatch {
    worlds: Vec<SimWorld>,
    workers: usize,
}

impl WorldBatch {
    /// Wraps `worlds`, stepping them on `workers` threads (at least 1).
    pub fn new(worlds: Vec<SimWorld>, workers: usize) -> Self {
        Self {
            worlds,
            workers: workers.max(1),
        }
    }

    /// Number of worlds.
    pub fn len(&self) -> usize {
        self.worlds.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.worlds.is_empty()
    }

    /// The worlds.
    pub fn worlds(&self) -> &[SimWorld] {
        &self.worlds
    }

    /// Mutable access to the worlds (to set targets between steps).
    pub fn worlds_mut(&mut self) -> &mut [SimWorld] {
        &mut self.worlds
    }

    /// Runs `f` on every world in parallel and returns its results in world order.
    pub fn for_each<R: Send>(&mut self, f: impl Fn(usize, &mut SimWorld) -> R + Sync) -> Vec<R> {
        par_map(self.workers, &mut self.worlds, f)
    }

    /// Steps every world `n` physics steps. A world that diverges reports its error and stops
    /// stepping; the others go on.
    pub fn step_n(&mut self, n: usize) -> Vec<Result<(), SimError>> {
        self.for_each(|_, w| w.step_n(n))
    }
}

/// Applies `f` to every item on `workers` threads (contiguous chunks); results in item order.
pub fn par_map<T: Send, R: Send>(
    workers: usize,
    items: &mut [T],
    f: impl Fn(usize, &mut T) -> R + Sync,
) -> Vec<R> {
    let workers = workers.clamp(1, items.len().max(1));
    if workers == 1 {
        return items.iter_mut().enumerate().map(|(i, t)| f(i, t)).collect();
    }
    let chunk = items.len().div_ceil(workers);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks_mut(chunk)
            .enumerate()
            .map(|(c, part)| {
                s.spawn(move || {
                    part.iter_mut()
                        .enumerate()
                        .map(|(i, t)| f(c * chunk + i, t))
                        .collect::<Vec<R>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}
