use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::pool::{WAIT_BUCKETS_US, WaitHistogram};

/// A lock-free latency histogram with the pool's fixed exponential buckets: recording is a few
/// relaxed atomic adds, no allocation, no lock.
#[derive(Debug, Default)]
pub(crate) struct Latency {
    buckets: [AtomicU64; WAIT_BUCKETS_US.len() + 1],
    count: AtomicU64,
    sum_us: AtomicU64,
    max_us: AtomicU64,
}

impl Latency {
    #[inline]
    pub(crate) fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let idx = WAIT_BUCKETS_US.partition_point(|&b| b < us);
        self.buckets[idx].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
        self.max_us.fetch_max(us, Relaxed);
    }

    /// Calls slower than `threshold`, counted by whole buckets: every call in a bucket whose
    /// lower bound is at or above `threshold`.
    pub(crate) fn count_over(&self, threshold: Duration) -> u64 {
        let t = u64::try_from(threshold.as_micros()).unwrap_or(u64::MAX);
        // Bucket i holds (bound[i-1], bound[i]]; its lower bound is bound[i-1].
        let first = WAIT_BUCKETS_US.partition_point(|&b| b < t) + 1;
        self.buckets[first.min(self.buckets.len())..]
            .iter()
            .map(|b| b.load(Relaxed))
            .sum()
    }

    pub(crate) fn snapshot(&self) -> WaitHistogram {
        let buckets: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let count = self.count.load(Relaxed);
        let sum_us = self.sum_us.load(Relaxed);
        let max_us = self.max_us.load(Relaxed);
        WaitHistogram {
            bounds_us: WAIT_BUCKETS_US.to_vec(),
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
            let Some(hi) = WAIT_BUCKETS_US.get(i).copied() else {
                return u64::MAX;
            };
            let lo = if i == 0 { 0 } else { WAIT_BUCKETS_US[i - 1] };
            let frac = (target - seen) / n;
            return lo + ((hi - lo) as f64 * frac).round() as u64;
        }
        seen += n;
    }
    u64::MAX
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_calls_over_a_threshold_by_bucket() {
        let l = Latency::default();
        l.record(Duration::from_millis(3));
        l.record(Duration::from_millis(1500));
        l.record(Duration::from_secs(12));
        assert_eq!(l.count_over(Duration::from_secs(1)), 2);
        assert_eq!(l.count_over(Duration::from_millis(1)), 3);
        assert_eq!(
            l.count_over(Duration::from_secs(5)),
            1,
            "the overflow bucket"
        );
        assert_eq!(
            l.count_over(Duration::from_secs(60)),
            0,
            "no bucket starts above 60 s"
        );
        let s = l.snapshot();
        assert_eq!((s.count, s.max_us), (3, 12_000_000));
    }
}
