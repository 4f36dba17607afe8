//! Lock-free latest-value slots (seqlocks over atomic words) for handing data between the
//! asynchronous side (zenoh subscribers, node tasks) and the real-time executor thread.
//!
//! One writer ([`SlotWriter`], not `Clone`), any number of readers ([`SlotReader`]). Writing
//! never blocks; reading copies the words into the caller's buffer, never allocates and gives up
//! after a bounded number of attempts if a write keeps racing it (the caller keeps its previous
//! copy for that tick). Everything is safe Rust: each word is an `AtomicU64`.

use std::hint::spin_loop;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering, fence};

/// How many times a reader retries a torn read before giving up for now.
const READ_ATTEMPTS: usize = 8;

#[derive(Debug)]
struct Slot {
    /// Even: stable; odd: a write is in progress. `seq / 2` = number of completed writes.
    seq: AtomicU64,
    /// Number of meaningful words of the last write.
    len: AtomicU64,
    words: Box<[AtomicU64]>,
}

/// Creates a slot holding up to `capacity` 64-bit words.
pub fn slot(capacity: usize) -> (SlotWriter, SlotReader) {
    let slot = Arc::new(Slot {
        seq: AtomicU64::new(0),
        len: AtomicU64::new(0),
        words: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
    });
    (SlotWriter { slot: slot.clone() }, SlotReader { slot })
}

/// The single writer of a slot.
#[derive(Debug)]
pub struct SlotWriter {
    slot: Arc<Slot>,
}

impl SlotWriter {
    /// Capacity in words.
    pub fn capacity(&self) -> usize {
        self.slot.words.len()
    }

    /// Publishes `words` (at most [`Self::capacity`]; longer input is an error and nothing is
    /// written). Returns the new version (≥ 1).
    pub fn write(&mut self, words: &[u64]) -> Result<u64, usize> {
        let s = &self.slot;
        if words.len() > s.words.len() {
            return Err(s.words.len());
        }
        let seq = s.seq.load(Ordering::Relaxed);
        s.seq.store(seq + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        for (dst, &w) in s.words.iter().zip(words) {
            dst.store(w, Ordering::Relaxed);
        }
        s.len.store(words.len() as u64, Ordering::Relaxed);
        s.seq.store(seq + 2, Ordering::Release);
        Ok((seq + 2) / 2)
    }
}

/// A reader of a slot (cheap to clone).
#[derive(Debug, Clone)]
pub struct SlotReader {
    slot: Arc<Slot>,
}

/// Result of [`SlotReader::read_newer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Nothing newer than the version the caller has.
    Unchanged,
    /// A newer value was copied; its version and word count.
    New {
        /// Version (number of completed writes when it was written).
        version: u64,
        /// Number of words copied.
        len: usize,
    },
    /// A write kept racing the read; try again next time.
    Contended,
}

impl SlotReader {
    /// Version of the latest completed write (0 = never written).
    pub fn version(&self) -> u64 {
        self.slot.seq.load(Ordering::Acquire) / 2
    }

    /// If a value newer than `have` exists, copies it into `out[..len]` (`out` must hold
    /// the slot's capacity; shorter buffers get a prefix). No allocation, bounded time.
    pub fn read_newer(&self, have: u64, out: &mut [u64]) -> Read {
        let s = &self.slot;
        for _ in 0..READ_ATTEMPTS {
            let s1 = s.seq.load(Ordering::Acquire);
            if s1 / 2 <= have && s1.is_multiple_of(2) {
                return Read::Unchanged;
            }
            if !s1.is_multiple_of(2) {
                spin_loop();
                continue;
            }
            let len = (s.len.load(Ordering::Relaxed) as usize).min(out.len());
            for (dst, src) in out[..len].iter_mut().zip(s.words.iter()) {
                *dst = src.load(Ordering::Relaxed);
            }
            fence(Ordering::Acquire);
            if s.seq.load(Ordering::Relaxed) == s1 {
                return Read::New {
                    version: s1 / 2,
                    len,
                };
            }
            spin_loop();
        }
        Read::Contended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_never_torn() {
        // The writer writes [k; 64] for k = 1..; a torn read would mix two values.
        let (mut w, r) = slot(64);
        let writer = std::thread::spawn(move || {
            for k in 1..=200_000u64 {
                w.write(&[k; 64]).unwrap();
            }
        });
        let mut buf = [0u64; 64];
        let mut have = 0;
        let mut reads = 0;
        while have < 200_000 {
            if let Read::New { version, len } = r.read_newer(have, &mut buf) {
                assert_eq!(len, 64);
                assert!(buf.iter().all(|&x| x == buf[0]), "torn read: {buf:?}");
                assert!(buf[0] >= have, "went backwards");
                assert_eq!(buf[0], version);
                have = version;
                reads += 1;
            }
        }
        writer.join().unwrap();
        assert!(reads > 0);
        assert_eq!(r.read_newer(have, &mut buf), Read::Unchanged);
    }

    #[test]
    fn oversize_writes_are_refused() {
        let (mut w, r) = slot(4);
        assert_eq!(w.write(&[1; 5]), Err(4));
        assert_eq!(r.version(), 0);
        assert_eq!(w.write(&[1, 2]), Ok(1));
        let mut buf = [0; 4];
        assert_eq!(r.read_newer(0, &mut buf), Read::New { version: 1, len: 2 });
        assert_eq!(&buf[..2], &[1, 2]);
    }
}
