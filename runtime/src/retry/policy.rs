use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::budget::RetryBudget;
use super::config::RetryConfig;
use super::schedule::{Plan, Schedule, jitter};
use crate::classify::FailureKind;
use crate::settings::{Invalid, Section};

const KINDS: usize = FailureKind::ALL.len();

fn index(kind: FailureKind) -> usize {
    FailureKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KINDS - 1)
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Sleep this long, then run the next attempt.
    RetryAfter(Duration),
    /// Do not retry; report the failure.
    Stop(StopReason),
}

/// Why a call is not retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// This policy does not retry this kind of failure.
    NotRetried(FailureKind),
    /// The attempts allowed for this kind are used up.
    AttemptsExhausted {
        /// Attempts made, the first included.
        attempts: u32,
    },
    /// The next attempt would start after `max_elapsed`.
    ElapsedExhausted,
    /// The policy's retry budget is spent: too many retries for the recent traffic.
    BudgetExhausted,
    /// The delay would end after the caller's deadline (the caller reports a deadline error).
    DeadlineTooClose {
        /// The delay the schedule asked for.
        delay: Duration,
        /// The time left before the deadline.
        remaining: Duration,
    },
}

impl StopReason {
    /// The stable name used in telemetry (`not_retried`, `attempts_exhausted`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            StopReason::NotRetried(_) => "not_retried",
            StopReason::AttemptsExhausted { .. } => "attempts_exhausted",
            StopReason::ElapsedExhausted => "elapsed_exhausted",
            StopReason::BudgetExhausted => "budget_exhausted",
            StopReason::DeadlineTooClose { .. } => "deadline_too_close",
        }
    }

    fn slot(&self) -> usize {
        match self {
            StopReason::NotRetried(_) => 0,
            StopReason::AttemptsExhausted { .. } => 1,
            StopReason::ElapsedExhausted => 2,
            StopReason::BudgetExhausted => 3,
            StopReason::DeadlineTooClose { .. } => 4,
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::NotRetried(kind) => write!(f, "{kind} is not retried"),
            StopReason::AttemptsExhausted { attempts } => {
                write!(f, "gave up after {attempts} attempt(s)")
            }
            StopReason::ElapsedExhausted => f.write_str("the retry time limit was reached"),
            StopReason::BudgetExhausted => f.write_str("the retry budget is spent"),
            StopReason::DeadlineTooClose { delay, remaining } => write!(
                f,
                "the next delay ({:?}) would end after the deadline ({:?} left)",
                crate::error::rounded(*delay),
                crate::error::rounded(*remaining)
            ),
        }
    }
}

/// Calls stopped, by reason, since the policy was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct StopCounts {
    /// [`StopReason::NotRetried`].
    pub not_retried: u64,
    /// [`StopReason::AttemptsExhausted`].
    pub attempts_exhausted: u64,
    /// [`StopReason::ElapsedExhausted`].
    pub elapsed_exhausted: u64,
    /// [`StopReason::BudgetExhausted`].
    pub budget_exhausted: u64,
    /// [`StopReason::DeadlineTooClose`].
    pub deadline_too_close: u64,
}

/// A snapshot of a retry policy, from [`RetryPolicy::metrics`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RetryMetrics {
    /// Calls started (the deposits in the policy's budget, [`RetryPolicy::budget`]).
    pub calls: u64,
    /// Retries granted, by the kind of failure that caused them (kinds with none are left
    /// out).
    pub retries: Vec<(FailureKind, u64)>,
    /// Stops, by reason.
    pub stops: StopCounts,
    /// Retries the budget allows now.
    pub budget_balance: f64,
}

/// A named retry policy: which failures are retried, with which delays, within which budget.
/// `Send + Sync`; one per name, shared by every call that uses it. See the
/// [module documentation](super).
pub struct RetryPolicy {
    name: Arc<str>,
    config: RetryConfig,
    plans: [Option<Plan>; KINDS],
    budget: RetryBudget,
    seed: Option<u64>,
    retries: [AtomicU64; KINDS],
    stops: [AtomicU64; 5],
}

impl RetryPolicy {
    /// A policy with these settings.
    ///
    /// # Panics
    ///
    /// When `config` does not pass [`Section::validate`] (the runtime validates first); see
    /// [`RetryPolicy::try_new`].
    pub fn new(name: impl Into<Arc<str>>, config: RetryConfig) -> Self {
        let name = name.into();
        match Self::try_new(name.clone(), config) {
            Ok(p) => p,
            Err(e) => panic!(
                "invalid settings for retry policy `{name}`: `{}` = {}: expected {}",
                e.key, e.value, e.expected
            ),
        }
    }

    /// A policy with these settings, or the setting that does not fit.
    pub fn try_new(name: impl Into<Arc<str>>, config: RetryConfig) -> Result<Self, Invalid> {
        config.validate()?;
        let plans = FailureKind::ALL.map(|kind| {
            let o = config.on.get(&kind);
            if o.is_none() && !kind.is_transient() {
                return None;
            }
            let o = o.copied().unwrap_or_default();
            let plan = Plan {
                attempts: o
                    .attempts
                    .unwrap_or_else(|| default_attempts(kind, config.attempts)),
                base: o.base.unwrap_or(config.base),
                factor: o.factor.unwrap_or(config.factor),
                max_delay: o.max_delay.unwrap_or(config.max_delay),
            };
            (plan.attempts > 1).then_some(plan)
        });
        let budget = RetryBudget::new(
            config.budget_window,
            config.budget_min_per_second,
            config.budget_percent,
        );
        Ok(RetryPolicy {
            name: name.into(),
            plans,
            budget,
            seed: None,
            retries: std::array::from_fn(|_| AtomicU64::new(0)),
            stops: std::array::from_fn(|_| AtomicU64::new(0)),
            config,
        })
    }

    /// Makes jitter deterministic: call number `n` of this policy draws from a generator
    /// seeded with `seed` and `n`. For tests and drills.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The policy's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The settings in force.
    pub fn config(&self) -> &RetryConfig {
        &self.config
    }

    /// The retry budget shared by the policy's calls.
    pub fn budget(&self) -> &RetryBudget {
        &self.budget
    }

    /// Is this kind of failure retried by this policy?
    pub fn retries(&self, kind: FailureKind) -> bool {
        self.plans[index(kind)].is_some()
    }

    /// The attempts allowed for this kind of failure (1 when it is not retried).
    pub fn attempts(&self, kind: FailureKind) -> u32 {
        self.plans[index(kind)].map_or(1, |p| p.attempts)
    }

    /// The delays before jitter for a call that fails with this kind every time: one per
    /// retry (empty when the kind is not retried).
    pub fn delays(&self, kind: FailureKind) -> Vec<Duration> {
        match self.plans[index(kind)] {
            Some(plan) => {
                let mut s = plan.backoff();
                (1..plan.attempts).map(|_| s.next_delay()).collect()
            }
            None => Vec::new(),
        }
    }

    /// Starts a call: its first attempt counts as attempt 1 and as a deposit in the budget.
    pub fn start(&self) -> RetryState<'_> {
        // The budget's count of deposits is the count of calls: one atomic add for both.
        let n = self.budget.count_deposit();
        RetryState {
            policy: self,
            attempts: 1,
            schedules: Vec::new(),
            rng: self
                .seed
                .map(|seed| SmallRng::seed_from_u64(seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15))),
        }
    }

    /// A snapshot of the policy's counters and budget.
    pub fn metrics(&self) -> RetryMetrics {
        let retries = FailureKind::ALL
            .iter()
            .zip(&self.retries)
            .map(|(k, n)| (*k, n.load(Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        let s = |i: usize| self.stops[i].load(Relaxed);
        RetryMetrics {
            calls: self.budget.deposits(),
            retries,
            stops: StopCounts {
                not_retried: s(0),
                attempts_exhausted: s(1),
                elapsed_exhausted: s(2),
                budget_exhausted: s(3),
                deadline_too_close: s(4),
            },
            budget_balance: self.budget.balance(),
        }
    }

    fn stop(&self, reason: StopReason) -> RetryDecision {
        self.stops[reason.slot()].fetch_add(1, Relaxed);
        RetryDecision::Stop(reason)
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The retry state of one call, from [`RetryPolicy::start`]: attempts so far and one backoff
/// schedule per failure kind seen (a call may see a lost connection, then backpressure).
pub struct RetryState<'a> {
    policy: &'a RetryPolicy,
    attempts: u32,
    schedules: Vec<(FailureKind, Schedule)>,
    rng: Option<SmallRng>,
}

impl RetryState<'_> {
    /// Attempts started so far, the first included.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Decides after a failed attempt of this `kind`. `elapsed` is the time since the call
    /// started; `remaining` the time left before the caller's deadline, if it has one.
    ///
    /// Checks, in order: the kind is retried; attempts are left for it (the call's attempts
    /// so far against the kind's `attempts`); the next delay (the kind's schedule, jittered)
    /// ends before `max_elapsed` and before the deadline; the budget has a retry left (the
    /// budget is only drawn on when every other check passed, and never for contention). On `RetryAfter` the attempt
    /// count goes up by one.
    pub fn next_delay(
        &mut self,
        kind: FailureKind,
        elapsed: Duration,
        remaining: Option<Duration>,
    ) -> RetryDecision {
        let policy = self.policy;
        let Some(plan) = policy.plans[index(kind)] else {
            return policy.stop(StopReason::NotRetried(kind));
        };
        if self.attempts >= plan.attempts {
            return policy.stop(StopReason::AttemptsExhausted {
                attempts: self.attempts,
            });
        }
        let schedule = match self.schedules.iter().position(|(k, _)| *k == kind) {
            Some(i) => &mut self.schedules[i].1,
            None => {
                self.schedules.push((kind, plan.backoff()));
                &mut self.schedules.last_mut().expect("just pushed").1
            }
        };
        let delay = jitter(
            schedule.next_delay(),
            policy.config.jitter,
            self.rng.as_mut(),
        );
        if let Some(max) = policy.config.max_elapsed
            && elapsed.saturating_add(delay) >= max
        {
            return policy.stop(StopReason::ElapsedExhausted);
        }
        if let Some(remaining) = remaining
            && delay >= remaining
        {
            return policy.stop(StopReason::DeadlineTooClose { delay, remaining });
        }
        // The budget guards a struggling server against retry storms. Contention is not a
        // struggling server: it answered at once, and running the transaction again is the
        // remedy, so those retries are bounded by their attempts, delays and the deadline only.
        if kind != FailureKind::Contention && !policy.budget.withdraw() {
            return policy.stop(StopReason::BudgetExhausted);
        }
        policy.retries[index(kind)].fetch_add(1, Relaxed);
        self.attempts += 1;
        RetryDecision::RetryAfter(delay)
    }
}

/// Attempts a failure kind gets when its `on.<kind>.attempts` is not set: the policy's, but at
/// least [`CONTENTION_ATTEMPTS`] for contention when the policy retries at all. Contention
/// clears by running again, and when many transactions touch the same rows a few attempts
/// are not enough: with 8 to 16 workers on one row, 3 attempts surfaced serialization
/// failures that 10 did not (the `contention` drill).
fn default_attempts(kind: FailureKind, policy: u32) -> u32 {
    if kind == FailureKind::Contention && policy > 1 {
        policy.max(CONTENTION_ATTEMPTS)
    } else {
        policy
    }
}

use sqlx_resilience_schema::CONTENTION_ATTEMPTS;

impl fmt::Debug for RetryState<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryState")
            .field("policy", &self.policy.name)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}
