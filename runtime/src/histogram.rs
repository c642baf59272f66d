//! The one duration histogram: op call durations, pool acquire waits and connection use times
//! are all recorded into a `Recorder` and read as a [`Histogram`], with the same buckets and
//! the same quantile estimate.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;

/// Upper bounds (microseconds) of the buckets; the last bucket holds everything slower.
pub const BUCKETS_US: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000,
];

/// The index of the first bucket whose every value is above `threshold`: bucket `i` holds
/// `(BUCKETS_US[i-1], BUCKETS_US[i]]`, so its lower bound is `BUCKETS_US[i-1]`.
pub fn first_bucket_above(threshold: Duration) -> usize {
    let t = u64::try_from(threshold.as_micros()).unwrap_or(u64::MAX);
    BUCKETS_US.partition_point(|&b| b < t) + 1
}

/// A lock-free histogram with fixed exponential buckets.
///
/// Written here rather than taken from a crate because it sits on the acquire path and the op
/// path of every call: recording is at most one relaxed atomic write per field (none for a
/// field it leaves as it is), with no allocation or lock, which the well-kept histogram crates (hdrhistogram, metrics-util's summaries) do not
/// offer for concurrent writers.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
    count: AtomicU64,
    sum_us: AtomicU64,
    max_us: AtomicU64,
}

impl Recorder {
    #[inline]
    pub(crate) fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let idx = BUCKETS_US.partition_point(|&b| b < us);
        self.buckets[idx].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        // Adding nothing and raising the maximum to what it already is change nothing: skip
        // those atomic writes (a zero duration, a call no slower than the slowest so far).
        if us > 0 {
            self.sum_us.fetch_add(us, Relaxed);
            if self.max_us.load(Relaxed) < us {
                self.max_us.fetch_max(us, Relaxed);
            }
        }
    }

    pub(crate) fn snapshot(&self) -> Histogram {
        let buckets: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let count = self.count.load(Relaxed);
        let sum_us = self.sum_us.load(Relaxed);
        let max_us = self.max_us.load(Relaxed);
        Histogram {
            bounds_us: BUCKETS_US.to_vec(),
            p50_us: quantile(&buckets, count, 0.50).min(max_us),
            p99_us: quantile(&buckets, count, 0.99).min(max_us),
            max_us,
            mean_us: sum_us.checked_div(count).unwrap_or(0),
            count,
            buckets,
        }
    }
}

/// Quantile `q`, interpolated linearly inside its bucket (the overflow bucket reports
/// `u64::MAX`, which the caller caps at the maximum seen).
fn quantile(buckets: &[u64], count: u64, q: f64) -> u64 {
    if count == 0 {
        return 0;
    }
    let target = ((count as f64) * q).ceil().max(1.0);
    let mut seen = 0.0;
    for (i, n) in buckets.iter().enumerate() {
        let n = *n as f64;
        if n > 0.0 && seen + n >= target {
            let Some(hi) = BUCKETS_US.get(i).copied() else {
                return u64::MAX;
            };
            let lo = if i == 0 { 0 } else { BUCKETS_US[i - 1] };
            let frac = (target - seen) / n;
            return lo + ((hi - lo) as f64 * frac).round() as u64;
        }
        seen += n;
    }
    u64::MAX
}

/// Durations recorded so far: op calls, acquire waits or connection use times.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Histogram {
    /// Upper bounds of the buckets in microseconds ([`BUCKETS_US`]); `buckets` has one more
    /// entry for slower.
    pub bounds_us: Vec<u64>,
    /// Durations per bucket.
    pub buckets: Vec<u64>,
    /// Durations recorded.
    pub count: u64,
    /// Mean.
    pub mean_us: u64,
    /// Median, interpolated inside its bucket, at most `max_us`.
    pub p50_us: u64,
    /// 99th percentile, interpolated inside its bucket, at most `max_us`.
    pub p99_us: u64,
    /// Longest.
    pub max_us: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Recorder::default().snapshot()
    }
}

impl Histogram {
    /// Durations longer than `threshold`, counted by whole buckets: every duration in a bucket
    /// whose lower bound is at or above `threshold`.
    pub fn count_over(&self, threshold: Duration) -> u64 {
        let first = first_bucket_above(threshold);
        self.buckets.iter().skip(first).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_inside_buckets() {
        let h = Recorder::default();
        for _ in 0..98 {
            h.record(Duration::from_micros(80));
        }
        h.record(Duration::from_millis(3));
        h.record(Duration::from_secs(10));
        let s = h.snapshot();
        assert_eq!(s.count, 100);
        // 50 of the 98 in (50, 100] µs.
        assert_eq!(s.p50_us, 76);
        // The 99th is the only one in (2.5, 5] ms: its upper bound.
        assert_eq!(s.p99_us, 5_000);
        assert_eq!(s.max_us, 10_000_000);
        assert_eq!(s.buckets.iter().sum::<u64>(), 100);
        assert_eq!(*s.buckets.last().unwrap(), 1);
    }

    #[test]
    fn quantiles_in_the_overflow_bucket_are_the_maximum() {
        let h = Recorder::default();
        h.record(Duration::from_secs(12));
        let s = h.snapshot();
        assert_eq!((s.p50_us, s.p99_us), (12_000_000, 12_000_000));
    }

    #[test]
    fn zero_durations_and_calls_below_the_maximum_keep_sum_and_maximum_right() {
        let h = Recorder::default();
        h.record(Duration::from_millis(3));
        h.record(Duration::ZERO);
        h.record(Duration::from_millis(10));
        h.record(Duration::from_millis(1));
        h.record(Duration::ZERO);
        let s = h.snapshot();
        assert_eq!((s.count, s.max_us, s.mean_us), (5, 10_000, 2_800));
        assert_eq!(s.buckets[0], 2, "the zeros are counted");
    }

    #[test]
    fn empty_histogram() {
        let s = Histogram::default();
        assert_eq!((s.count, s.p50_us, s.p99_us, s.mean_us), (0, 0, 0, 0));
        assert_eq!(s.buckets.len(), BUCKETS_US.len() + 1);
    }

    #[test]
    fn counts_durations_over_a_threshold_by_bucket() {
        let l = Recorder::default();
        l.record(Duration::from_millis(3));
        l.record(Duration::from_millis(1500));
        l.record(Duration::from_secs(12));
        let s = l.snapshot();
        assert_eq!(s.count_over(Duration::from_secs(1)), 2);
        assert_eq!(s.count_over(Duration::from_millis(1)), 3);
        assert_eq!(
            s.count_over(Duration::from_secs(5)),
            1,
            "the overflow bucket"
        );
        assert_eq!(
            s.count_over(Duration::from_secs(60)),
            0,
            "no bucket starts above 60 s"
        );
        assert_eq!((s.count, s.max_us), (3, 12_000_000));
    }
}
