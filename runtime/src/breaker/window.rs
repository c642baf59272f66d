//! Lock-free windows: the failure ring for `failures within`, the time-bucketed and
//! count-based windows for the rates.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

/// The last `failures` failure times, for "N failures within a duration". Exact: the breaker
/// trips when the oldest of the last N failures is younger than `within`.
#[derive(Debug)]
pub(super) struct FailureRing {
    /// Failure times in nanoseconds since the breaker's start, plus one (0 = empty).
    slots: Box<[AtomicU64]>,
    head: AtomicUsize,
    within: u64,
}

impl FailureRing {
    pub(super) fn new(failures: u32, within: Duration) -> Self {
        let n = failures.max(1) as usize;
        FailureRing {
            slots: (0..n).map(|_| AtomicU64::new(0)).collect(),
            head: AtomicUsize::new(0),
            within: nanos(within),
        }
    }

    /// Records a failure at `now`; true when the last N failures all fall within the window.
    pub(super) fn push(&self, now: u64) -> bool {
        let n = self.slots.len();
        let i = self.head.fetch_add(1, Relaxed) % n;
        self.slots[i].store(now + 1, Relaxed);
        let oldest = self.slots[(i + 1) % n].load(Relaxed);
        oldest != 0 && (now + 1).saturating_sub(oldest) < self.within
    }

    /// Failures recorded within the window before `now`.
    pub(super) fn count(&self, now: u64) -> u32 {
        self.slots
            .iter()
            .map(|s| s.load(Relaxed))
            .filter(|&t| t != 0 && (now + 1).saturating_sub(t) < self.within)
            .count() as u32
    }

    pub(super) fn clear(&self) {
        for s in self.slots.iter() {
            s.store(0, Relaxed);
        }
    }
}

/// Calls, failures and slow calls in a window, as read for a rate decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Totals {
    pub(super) calls: u64,
    pub(super) failures: u64,
    pub(super) slow: u64,
}

/// How many buckets a time window is cut into.
pub(super) const BUCKETS: u32 = 20;

/// A sliding time window of `BUCKETS` buckets. Each counter is one `AtomicU64` holding the
/// bucket's index (high 32 bits) and its count (low 32 bits): a recorder that finds an old
/// index starts the bucket afresh in the same compare-and-swap, so there is no separate reset
/// step to race with. A read sums the buckets whose index lies in the last `BUCKETS` indexes,
/// so an outcome falls out of the window between `window - window / BUCKETS` and `window`
/// after it was recorded.
#[derive(Debug)]
pub(super) struct TimeWindow {
    bucket: u64,
    calls: Box<[AtomicU64]>,
    failures: Box<[AtomicU64]>,
    slow: Box<[AtomicU64]>,
}

fn counters() -> Box<[AtomicU64]> {
    (0..BUCKETS).map(|_| AtomicU64::new(0)).collect()
}

fn bump(counter: &AtomicU64, index: u32) {
    let _ = counter.fetch_update(Relaxed, Relaxed, |v| {
        let tag = (v >> 32) as u32;
        if (index.wrapping_sub(tag) as i32) < 0 {
            // A recorder that read the clock a whole window ago, after the slot moved on:
            // its outcome is too old to count, and must not wipe the newer bucket.
            return None;
        }
        Some(if tag == index {
            let count = (v as u32).saturating_add(1);
            (v & !0xffff_ffff) | u64::from(count)
        } else {
            (u64::from(index) << 32) | 1
        })
    });
}

fn read(counters: &[AtomicU64], index: u32) -> u64 {
    counters
        .iter()
        .map(|c| c.load(Relaxed))
        .filter(|v| index.wrapping_sub((v >> 32) as u32) < BUCKETS)
        .map(|v| u64::from(v as u32))
        .sum()
}

impl TimeWindow {
    pub(super) fn new(window: Duration) -> Self {
        TimeWindow {
            bucket: (nanos(window) / u64::from(BUCKETS)).max(1),
            calls: counters(),
            failures: counters(),
            slow: counters(),
        }
    }

    fn index(&self, now: u64) -> u32 {
        (now / self.bucket) as u32
    }

    pub(super) fn record(&self, now: u64, failed: bool, slow: bool) {
        let index = self.index(now);
        let slot = (index % BUCKETS) as usize;
        bump(&self.calls[slot], index);
        if failed {
            bump(&self.failures[slot], index);
        }
        if slow {
            bump(&self.slow[slot], index);
        }
    }

    pub(super) fn totals(&self, now: u64) -> Totals {
        let index = self.index(now);
        Totals {
            calls: read(&self.calls, index),
            failures: read(&self.failures, index),
            slow: read(&self.slow, index),
        }
    }

    pub(super) fn clear(&self) {
        for c in self.calls.iter().chain(&*self.failures).chain(&*self.slow) {
            c.store(0, Relaxed);
        }
    }
}

const FILLED: u8 = 1;
const FAILED: u8 = 2;
const SLOW: u8 = 4;

/// The last N calls: a ring of one byte per call plus running totals. Every change to a slot
/// is a `swap` whose difference is applied to the totals, clearing included, so the totals
/// equal the ring's contents whenever no recorder is between its swap and its total update.
#[derive(Debug)]
pub(super) struct CountWindow {
    slots: Box<[AtomicU8]>,
    head: AtomicUsize,
    calls: AtomicU32,
    failures: AtomicU32,
    slow: AtomicU32,
}

impl CountWindow {
    pub(super) fn new(calls: u32) -> Self {
        CountWindow {
            slots: (0..calls.max(1)).map(|_| AtomicU8::new(0)).collect(),
            head: AtomicUsize::new(0),
            calls: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            slow: AtomicU32::new(0),
        }
    }

    pub(super) fn len(&self) -> u32 {
        self.slots.len() as u32
    }

    pub(super) fn record(&self, failed: bool, slow: bool) {
        let mut new = FILLED;
        if failed {
            new |= FAILED;
        }
        if slow {
            new |= SLOW;
        }
        let i = self.head.fetch_add(1, Relaxed) % self.slots.len();
        let old = self.slots[i].swap(new, Relaxed);
        self.apply(old, new);
    }

    fn apply(&self, old: u8, new: u8) {
        for (flag, total) in [
            (FILLED, &self.calls),
            (FAILED, &self.failures),
            (SLOW, &self.slow),
        ] {
            match (old & flag != 0, new & flag != 0) {
                (false, true) => {
                    total.fetch_add(1, Relaxed);
                }
                (true, false) => {
                    total.fetch_sub(1, Relaxed);
                }
                _ => {}
            }
        }
    }

    pub(super) fn totals(&self) -> Totals {
        // A total can dip below zero for an instant (a swap's decrement landing before the
        // increment of the swap that filled the slot): read as signed and clamp.
        let n = i64::from(self.len());
        let read = |t: &AtomicU32| (t.load(Relaxed) as i32 as i64).clamp(0, n) as u64;
        Totals {
            calls: read(&self.calls),
            failures: read(&self.failures),
            slow: read(&self.slow),
        }
    }

    pub(super) fn clear(&self) {
        for slot in self.slots.iter() {
            let old = slot.swap(0, Relaxed);
            self.apply(old, 0);
        }
    }
}

/// The rate window: by time or by count.
#[derive(Debug)]
pub(super) enum RateWindow {
    Time(TimeWindow),
    Count(CountWindow),
}

impl RateWindow {
    pub(super) fn record(&self, now: u64, failed: bool, slow: bool) {
        match self {
            RateWindow::Time(w) => w.record(now, failed, slow),
            RateWindow::Count(w) => w.record(failed, slow),
        }
    }

    pub(super) fn totals(&self, now: u64) -> Totals {
        match self {
            RateWindow::Time(w) => w.totals(now),
            RateWindow::Count(w) => w.totals(),
        }
    }

    pub(super) fn clear(&self) {
        match self {
            RateWindow::Time(w) => w.clear(),
            RateWindow::Count(w) => w.clear(),
        }
    }

    pub(super) fn needs_clock(&self) -> bool {
        matches!(self, RateWindow::Time(_))
    }
}

pub(super) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn failure_ring_trips_when_the_oldest_of_n_is_inside_the_window() {
        let ring = FailureRing::new(3, Duration::from_secs(10));
        assert!(!ring.push(0));
        assert!(!ring.push(SEC));
        assert!(ring.push(2 * SEC));
        ring.clear();
        assert!(!ring.push(20 * SEC));
        assert!(!ring.push(25 * SEC));
        // The first of these three is 10 s old: out of the window.
        assert!(!ring.push(30 * SEC));
        assert_eq!(ring.count(30 * SEC), 2);
    }

    #[test]
    fn time_window_forgets_buckets_older_than_the_window() {
        let w = TimeWindow::new(Duration::from_secs(20)); // 1 s buckets
        w.record(0, true, false);
        w.record(SEC / 2, false, true);
        w.record(5 * SEC, false, false);
        assert_eq!(
            w.totals(19 * SEC),
            Totals {
                calls: 3,
                failures: 1,
                slow: 1
            }
        );
        assert_eq!(w.totals(20 * SEC).calls, 1);
        // A new outcome in a reused slot replaces the old bucket's counts.
        w.record(25 * SEC, true, false);
        assert_eq!(
            w.totals(25 * SEC),
            Totals {
                calls: 1,
                failures: 1,
                slow: 0
            }
        );
    }

    #[test]
    fn a_late_recorder_does_not_wipe_a_newer_bucket() {
        let w = TimeWindow::new(Duration::from_secs(20)); // 1 s buckets
        w.record(25 * SEC, true, false); // bucket 25, slot 5
        w.record(5 * SEC, false, false); // bucket 5, same slot, a window older
        assert_eq!(
            w.totals(25 * SEC),
            Totals {
                calls: 1,
                failures: 1,
                slow: 0
            }
        );
    }

    #[test]
    fn count_window_keeps_the_last_n_calls() {
        let w = CountWindow::new(4);
        for failed in [true, true, false, false, false, false] {
            w.record(failed, false);
        }
        assert_eq!(w.totals().calls, 4);
        assert_eq!(w.totals().failures, 0);
        w.record(true, true);
        assert_eq!(
            w.totals(),
            Totals {
                calls: 4,
                failures: 1,
                slow: 1
            }
        );
        w.clear();
        assert_eq!(w.totals(), Totals::default());
    }
}
