use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;

/// Units per retry token: deposits are fractions of a token (20 % = 200 units).
const TOKEN: i64 = 1000;
/// Slots the window is cut into.
const SLOTS: u32 = 10;
/// Deposits wait in a plain counter and are credited to the current slot once this many
/// have come (and before every withdrawal), so a call reads the clock once in `FOLD`.
const FOLD: u64 = 16;

/// A retry budget shared by every call of a policy, like tower's `TpsBudget`: each call
/// deposits `retry_percent` % of a token, each retry withdraws a whole one, and a reserve of
/// `min_per_sec × window` tokens is always there. Over any window, retries add at most
/// `retry_percent` % of the calls plus the reserve, so a dead database never sees a multiple
/// of normal traffic.
///
/// Lock-free: the window is cut into 10 slots; each slot is one `AtomicU64` holding the slot's
/// index (high 32 bits) and its balance (low 32 bits, signed), so a writer that finds an old
/// index restarts the slot in the same compare-and-swap. Deposits and withdrawals leave the
/// window between 90 % and 100 % of `window` after they were made. A deposit does not read
/// the clock: deposits are counted in a plain atomic (which is also the retry policy's count
/// of calls) and credited to the current slot every 16 deposits and before each withdrawal,
/// so up to 15 deposits may be credited later than they happened (at 20 %, at most 3
/// retries' worth). Two retries racing for the last token may both get it.
pub struct RetryBudget {
    start: Instant,
    slot: u64,
    slots: Box<[AtomicU64]>,
    /// Deposits made, ever.
    deposits: AtomicU64,
    /// Deposits credited to a slot, ever: at most `deposits`.
    credited: AtomicU64,
    reserve: i64,
    deposit: i64,
}

impl RetryBudget {
    /// A budget over `ttl` (tower's name for the window) allowing `min_per_sec` retries a
    /// second plus `retry_percent` % of the calls (0 to 1000).
    pub fn new(ttl: Duration, min_per_sec: u32, retry_percent: f64) -> Self {
        let window = ttl.max(Duration::from_millis(1));
        let slot = u64::try_from(window.as_nanos() / u128::from(SLOTS))
            .unwrap_or(u64::MAX)
            .max(1);
        let reserve = (f64::from(min_per_sec) * window.as_secs_f64() * TOKEN as f64) as i64;
        let deposit = (retry_percent.clamp(0.0, 1000.0) / 100.0 * TOKEN as f64).round() as i64;
        RetryBudget {
            start: Instant::now(),
            slot,
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            deposits: AtomicU64::new(0),
            credited: AtomicU64::new(0),
            reserve,
            deposit,
        }
    }

    fn index(&self) -> u32 {
        let nanos = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        (nanos / self.slot) as u32
    }

    fn add(&self, index: u32, amount: i64) {
        let slot = &self.slots[(index % SLOTS) as usize];
        let _ = slot.fetch_update(Relaxed, Relaxed, |v| {
            let tag = (v >> 32) as u32;
            if (index.wrapping_sub(tag) as i32) < 0 {
                // Read the clock a whole window ago: too old to count, and must not wipe
                // the newer slot.
                return None;
            }
            let current = if tag == index {
                i64::from(v as u32 as i32)
            } else {
                0
            };
            let next = (current + amount).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
            Some((u64::from(index) << 32) | u64::from(next as u32))
        });
    }

    fn units(&self, index: u32) -> i64 {
        let recent: i64 = self
            .slots
            .iter()
            .map(|s| s.load(Relaxed))
            .filter(|v| index.wrapping_sub((v >> 32) as u32) < SLOTS)
            .map(|v| i64::from(v as u32 as i32))
            .sum();
        self.reserve + recent
    }

    /// Credits the deposits not yet credited to the slot of `index`. Concurrent folds credit
    /// disjoint runs of deposits: each takes those between the count it finds credited and
    /// the count it raises it to.
    fn fold(&self, index: u32) {
        if self.deposit == 0 {
            return;
        }
        let total = self.deposits.load(Relaxed);
        let before = self.credited.fetch_max(total, Relaxed);
        if total > before {
            let units = i64::try_from(total - before)
                .unwrap_or(i64::MAX)
                .saturating_mul(self.deposit);
            self.add(index, units);
        }
    }

    /// Records a call (its first attempt).
    pub fn deposit(&self) {
        self.count_deposit();
    }

    /// Records a call; the number of deposits before it (the retry policy's count of calls).
    pub(super) fn count_deposit(&self) -> u64 {
        let n = self.deposits.fetch_add(1, Relaxed);
        if self.deposit > 0 && (n + 1).saturating_sub(self.credited.load(Relaxed)) >= FOLD {
            self.fold(self.index());
        }
        n
    }

    /// Deposits made since the budget was created.
    pub(super) fn deposits(&self) -> u64 {
        self.deposits.load(Relaxed)
    }

    /// Takes one retry from the budget; false when it is spent.
    pub fn withdraw(&self) -> bool {
        let index = self.index();
        self.fold(index);
        if self.units(index) < TOKEN {
            return false;
        }
        self.add(index, -TOKEN);
        true
    }

    /// Retries the budget allows now (may be fractional; negative never).
    pub fn balance(&self) -> f64 {
        let index = self.index();
        self.fold(index);
        (self.units(index).max(0)) as f64 / TOKEN as f64
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("balance", &self.balance())
            .finish_non_exhaustive()
    }
}
