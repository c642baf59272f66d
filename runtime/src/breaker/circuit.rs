use std::fmt;
use std::sync::atomic::{
    AtomicU8, AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, broadcast};
use tokio::time::Instant;

use super::config::{BreakerConfig, BreakerMode};
use super::event::{BreakerEvent, TransitionReason};
use super::metrics::BreakerMetrics;
use super::outcome::{Kind, Outcome, Recovery};
use super::permit::{BreakerPermit, Records};
use super::rejected::BreakerRejected;
use super::state::{
    BreakerState, CLOSED, DISABLED, FORCED_OPEN, HALF_OPEN, METRICS_ONLY, NORMAL, OPEN, Word,
    mode_bits, mode_of,
};
use super::window::{CountWindow, FailureRing, RateWindow, TimeWindow, nanos};
use crate::settings::{Invalid, Section};

/// How many events a slow subscriber may fall behind before it misses some.
const EVENT_CAPACITY: usize = 64;

/// `recovery` values.
const TIMER: u8 = 0;
const PROBE: u8 = 1;

/// A circuit breaker: stops calling a failing database for a while, then probes it.
///
/// `Send + Sync`; the runtime keeps each named breaker in an `Arc`. See the
/// [module documentation](super) for the states, the trip conditions and the design.
pub struct CircuitBreaker {
    name: Arc<str>,
    config: BreakerConfig,
    start: Instant,
    /// The state word (see `state.rs`): machine state, mode and epoch.
    word: AtomicU64,
    /// When the open state ends, in nanoseconds since `start`.
    open_until: AtomicU64,
    /// How the current open period ends (`Recovery` as a byte), written before the state
    /// word that opens the breaker, so a reader that sees the open word sees it too.
    recovery: AtomicU8,
    /// Woken at every transition, for callers that wait for the breaker to let them through.
    changed: Notify,
    ring: Option<FailureRing>,
    consecutive_limit: Option<u32>,
    consecutive: AtomicU32,
    rate: Option<RateWindow>,
    minimum_calls: u64,
    slow_call: Option<Duration>,
    control: Mutex<Control>,
    events: broadcast::Sender<BreakerEvent>,
    rejected: AtomicU64,
    transitions: AtomicU64,
    calls_total: AtomicU64,
    failures_total: AtomicU64,
    slow_total: AtomicU64,
}

/// What only transitions and half-open probes touch, under the lock.
#[derive(Debug)]
struct Control {
    /// The open duration to use the next time the breaker opens.
    open_duration: Duration,
    /// Half-open probes running.
    in_flight: u32,
    /// Half-open probes that succeeded.
    succeeded: u32,
}

impl CircuitBreaker {
    /// A breaker with these settings; missing ones take the documented defaults
    /// ([`BreakerConfig::resolved`]).
    ///
    /// # Panics
    ///
    /// When `config` does not pass [`Section::validate`]; the runtime validates every
    /// configuration before it builds policies. Use [`CircuitBreaker::try_new`] to get the
    /// finding instead.
    pub fn new(name: impl Into<Arc<str>>, config: BreakerConfig) -> Self {
        let name = name.into();
        match Self::try_new(name.clone(), config) {
            Ok(b) => b,
            Err(e) => panic!(
                "invalid settings for breaker `{name}`: `{}` = {}: expected {}",
                e.key, e.value, e.expected
            ),
        }
    }

    /// A breaker with these settings, or the setting that does not fit.
    pub fn try_new(name: impl Into<Arc<str>>, config: BreakerConfig) -> Result<Self, Invalid> {
        config.validate()?;
        let config = config.resolved();
        let ring = match (config.failures, config.within) {
            (Some(n), Some(w)) => Some(FailureRing::new(n, w)),
            _ => None,
        };
        let has_rate = config.failure_rate.is_some() || config.slow_rate.is_some();
        let rate = match (has_rate, config.window, config.window_calls) {
            (false, _, _) => None,
            (true, _, Some(n)) => Some(RateWindow::Count(CountWindow::new(n))),
            (true, w, None) => Some(RateWindow::Time(TimeWindow::new(
                w.unwrap_or(super::config::DEFAULT_RATE_WINDOW),
            ))),
        };
        let minimum_calls = match config.window_calls {
            Some(n) => config.minimum_calls.min(n),
            None => config.minimum_calls,
        };
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let breaker = CircuitBreaker {
            name: name.into(),
            start: Instant::now(),
            word: AtomicU64::new(Word::new(0, mode_bits(config.mode), CLOSED).0),
            open_until: AtomicU64::new(0),
            recovery: AtomicU8::new(TIMER),
            changed: Notify::new(),
            ring,
            consecutive_limit: config.consecutive_failures,
            consecutive: AtomicU32::new(0),
            rate,
            minimum_calls: u64::from(minimum_calls.max(1)),
            slow_call: config.slow_call,
            control: Mutex::new(Control {
                open_duration: config.open_for,
                in_flight: 0,
                succeeded: 0,
            }),
            events,
            rejected: AtomicU64::new(0),
            transitions: AtomicU64::new(0),
            calls_total: AtomicU64::new(0),
            failures_total: AtomicU64::new(0),
            slow_total: AtomicU64::new(0),
            config,
        };
        Ok(breaker)
    }

    /// The breaker's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The settings in force, with defaults filled in ([`BreakerConfig::resolved`]).
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The current state. An open breaker whose open duration has passed still reports
    /// `Open` until the next [`try_acquire`](Self::try_acquire) moves it to half-open.
    pub fn state(&self) -> BreakerState {
        self.load().public()
    }

    /// Asks to run one call. In the closed state this is one atomic load.
    ///
    /// Rejects while open (with the time left), forced open, or half-open with every probe
    /// slot taken. The permit records the call's outcome.
    #[inline]
    pub fn try_acquire(&self) -> Result<BreakerPermit<'_>, BreakerRejected> {
        let word = self.load();
        if word.0 & 0xff == 0 {
            // Normal mode, closed: the fast path.
            return Ok(self.permit(Kind::Record(word)));
        }
        self.acquire_slow(word, true)
    }

    /// [`try_acquire`](Self::try_acquire) again for a caller that was rejected and waited for
    /// a transition: a second rejection of the same call is not counted again.
    pub(crate) fn try_acquire_again(&self) -> Result<BreakerPermit<'_>, BreakerRejected> {
        let word = self.load();
        if word.0 & 0xff == 0 {
            return Ok(self.permit(Kind::Record(word)));
        }
        self.acquire_slow(word, false)
    }

    /// Whether a call would be rejected now without deciding anything: forced open, or open
    /// with time left. A rejection is counted, as by [`try_acquire`](Self::try_acquire); any
    /// other state (half-open with every probe slot taken included) answers `None` and leaves
    /// the decision to `try_acquire`.
    #[inline]
    pub(crate) fn rejects_now(&self) -> Option<BreakerRejected> {
        let word = self.load();
        if word.0 & 0xff == 0 {
            return None;
        }
        match (word.mode(), word.machine()) {
            (FORCED_OPEN, _) => Some(self.reject(BreakerState::ForcedOpen, None)),
            // A breaker waiting for the server lets the runner decide: the caller may wait.
            (NORMAL, OPEN) if self.current_recovery() == Recovery::Timer => {
                let now = self.now();
                let until = self.open_until.load(Acquire);
                (now < until).then(|| {
                    self.reject(BreakerState::Open, Some(Duration::from_nanos(until - now)))
                })
            }
            _ => None,
        }
    }

    /// How the breaker recovers: `Some` while it is open, or half-open on its way back.
    pub fn recovery(&self) -> Option<Recovery> {
        match self.load().machine() {
            OPEN | HALF_OPEN => Some(self.current_recovery()),
            _ => None,
        }
    }

    /// The server behind this breaker answered a probe: a breaker open because the server was
    /// unreachable ([`Recovery::ServerProbe`]) moves to half-open now instead of waiting out
    /// `open_for`. Any other state, or a breaker opened by the ops' own failures, is left as
    /// it is. Returns whether the breaker moved.
    pub fn server_answered(&self) -> bool {
        let mut ctl = self.lock();
        let word = self.load();
        let open = word.machine() == OPEN && matches!(word.mode(), NORMAL | METRICS_ONLY);
        if !open || self.current_recovery() != Recovery::ServerProbe {
            return false;
        }
        self.transition(
            &mut ctl,
            word,
            word.mode(),
            HALF_OPEN,
            TransitionReason::ServerAnswered,
        );
        true
    }

    /// Resolves at the breaker's next transition. Create it before looking at the state, so a
    /// transition in between is not missed (see `tokio::sync::Notify::notified`).
    pub(crate) fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    fn current_recovery(&self) -> Recovery {
        match self.recovery.load(Relaxed) {
            PROBE => Recovery::ServerProbe,
            _ => Recovery::Timer,
        }
    }

    /// Receives every transition from now on, in order.
    pub fn subscribe(&self) -> broadcast::Receiver<BreakerEvent> {
        self.events.subscribe()
    }

    /// Closes the breaker, clears its windows and returns to normal mode.
    pub fn reset(&self) {
        self.set_mode(BreakerMode::Normal);
    }

    /// Rejects every call until [`reset`](Self::reset).
    pub fn force_open(&self) {
        self.set_mode(BreakerMode::ForcedOpen);
    }

    /// Permits every call and records nothing, until [`reset`](Self::reset).
    pub fn disable(&self) {
        self.set_mode(BreakerMode::Disabled);
    }

    /// Permits every call, records outcomes and reports would-be transitions as events
    /// (`enforced = false`), until [`reset`](Self::reset).
    pub fn metrics_only(&self) {
        self.set_mode(BreakerMode::MetricsOnly);
    }

    /// The current mode.
    pub fn mode(&self) -> BreakerMode {
        mode_of(self.load().mode())
    }

    /// Switches mode. Every switch (to normal included) starts from a closed breaker with
    /// empty windows; switching to normal is [`reset`](Self::reset).
    pub fn set_mode(&self, mode: BreakerMode) {
        let mut ctl = self.lock();
        let word = self.load();
        self.transition(
            &mut ctl,
            word,
            mode_bits(mode),
            CLOSED,
            TransitionReason::Manual,
        );
    }

    /// A snapshot of the breaker's counters and windows.
    pub fn metrics(&self) -> BreakerMetrics {
        let word = self.load();
        let now = self.now();
        let open_duration = self.lock().open_duration;
        let totals = self.rate.as_ref().map(|w| w.totals(now));
        let percent =
            |part: u64, calls: u64| (calls > 0).then(|| part as f64 * 100.0 / calls as f64);
        let half_open_in = (word.machine() == OPEN
            && matches!(
                word.public(),
                BreakerState::Open | BreakerState::MetricsOnly
            ))
        .then(|| Duration::from_nanos(self.open_until.load(Acquire).saturating_sub(now)));
        BreakerMetrics {
            state: word.public(),
            window_calls: totals.map(|t| t.calls),
            window_failures: totals.map(|t| t.failures),
            failure_rate: totals.and_then(|t| percent(t.failures, t.calls)),
            slow_rate: totals.and_then(|t| percent(t.slow, t.calls)),
            recent_failures: self.ring.as_ref().map(|r| r.count(now)),
            consecutive_failures: self.consecutive.load(Relaxed),
            calls_total: self.calls_total.load(Relaxed),
            failures_total: self.failures_total.load(Relaxed),
            slow_total: self.slow_total.load(Relaxed),
            rejected_total: self.rejected.load(Relaxed),
            transitions_total: self.transitions.load(Relaxed),
            open_duration,
            half_open_in,
            recovery: self.recovery(),
        }
    }

    // ---- acquiring ----

    fn load(&self) -> Word {
        Word(self.word.load(Acquire))
    }

    fn now(&self) -> u64 {
        nanos(self.start.elapsed())
    }

    /// `at` (a reading the caller has) or the clock, as nanoseconds since the breaker's start.
    fn now_or(&self, at: Option<Instant>) -> u64 {
        match at {
            Some(at) => nanos(at.saturating_duration_since(self.start)),
            None => self.now(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Control> {
        // The lock guards plain counters that every path leaves consistent: a panic elsewhere
        // cannot leave them half-updated, so a poisoned lock is still usable.
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn permit(&self, kind: Kind) -> BreakerPermit<'_> {
        BreakerPermit {
            breaker: self,
            kind,
            done: false,
        }
    }

    fn reject(&self, state: BreakerState, retry_after: Option<Duration>) -> BreakerRejected {
        self.reject_counted(state, retry_after, true)
    }

    fn reject_counted(
        &self,
        state: BreakerState,
        retry_after: Option<Duration>,
        count: bool,
    ) -> BreakerRejected {
        if count {
            self.rejected.fetch_add(1, Relaxed);
        }
        let recovery = matches!(state, BreakerState::Open | BreakerState::HalfOpen)
            .then(|| self.current_recovery());
        BreakerRejected {
            state,
            retry_after,
            recovery,
        }
    }

    #[cold]
    fn acquire_slow(&self, word: Word, count: bool) -> Result<BreakerPermit<'_>, BreakerRejected> {
        match word.mode() {
            DISABLED => return Ok(self.permit(Kind::Unrecorded)),
            FORCED_OPEN => return Err(self.reject_counted(BreakerState::ForcedOpen, None, count)),
            _ => {}
        }
        match word.machine() {
            CLOSED => Ok(self.permit(Kind::Record(word))),
            OPEN => {
                let now = self.now();
                let until = self.open_until.load(Acquire);
                if now < until {
                    return self.while_open(word, Duration::from_nanos(until - now), count);
                }
                self.acquire_locked(count)
            }
            _ => self.acquire_locked(count),
        }
    }

    fn while_open(
        &self,
        word: Word,
        left: Duration,
        count: bool,
    ) -> Result<BreakerPermit<'_>, BreakerRejected> {
        if word.mode() == NORMAL {
            Err(self.reject_counted(BreakerState::Open, Some(left), count))
        } else {
            Ok(self.permit(Kind::Unrecorded))
        }
    }

    /// Open past its duration, or half-open: decide under the lock.
    fn acquire_locked(&self, count: bool) -> Result<BreakerPermit<'_>, BreakerRejected> {
        let mut ctl = self.lock();
        let mut word = self.load();
        match word.mode() {
            DISABLED => return Ok(self.permit(Kind::Unrecorded)),
            FORCED_OPEN => return Err(self.reject_counted(BreakerState::ForcedOpen, None, count)),
            _ => {}
        }
        match word.machine() {
            CLOSED => return Ok(self.permit(Kind::Record(word))),
            OPEN => {
                let now = self.now();
                let until = self.open_until.load(Acquire);
                if now < until {
                    return self.while_open(word, Duration::from_nanos(until - now), count);
                }
                word = self.transition(
                    &mut ctl,
                    word,
                    word.mode(),
                    HALF_OPEN,
                    TransitionReason::OpenElapsed,
                );
            }
            _ => {}
        }
        if ctl.in_flight + ctl.succeeded < self.config.half_open {
            ctl.in_flight += 1;
            Ok(self.permit(Kind::Probe(word)))
        } else if word.mode() == NORMAL {
            Err(self.reject_counted(BreakerState::HalfOpen, None, count))
        } else {
            Ok(self.permit(Kind::Unrecorded))
        }
    }

    // ---- recording ----

    fn is_slow(&self, elapsed: Duration) -> bool {
        self.slow_call.is_some_and(|t| elapsed >= t)
    }

    fn record_closed(&self, word: Word, outcome: Outcome, at: Option<Instant>) {
        let (failed, elapsed, recovery) = match outcome {
            Outcome::Ignore => return,
            Outcome::Success(e) => (false, e, Recovery::Timer),
            Outcome::Failure(e, recovery) => (true, e, recovery),
        };
        if self.word.load(Acquire) != word.0 {
            // The call started before a transition: its outcome belongs to no window.
            return;
        }
        let slow = self.is_slow(elapsed);
        self.calls_total.fetch_add(1, Relaxed);
        if slow {
            self.slow_total.fetch_add(1, Relaxed);
        }
        if !failed {
            if self.consecutive_limit.is_some() && self.consecutive.load(Relaxed) != 0 {
                self.consecutive.store(0, Relaxed);
            }
            if let Some(rate) = &self.rate {
                let now = if rate.needs_clock() {
                    self.now_or(at)
                } else {
                    0
                };
                rate.record(now, false, slow);
                // A fast success only lowers the rates; a slow one may raise the slow rate.
                if slow && let Some(reason) = self.rate_reason(rate, now) {
                    self.trip(word, reason, Recovery::Timer);
                }
            }
            return;
        }
        self.failures_total.fetch_add(1, Relaxed);
        let now = self.now_or(at);
        let mut reason = None;
        if let Some(ring) = &self.ring
            && ring.push(now)
        {
            reason = Some(TransitionReason::FailureThreshold {
                failures: self.config.failures.unwrap_or(1),
                within: self.config.within.unwrap_or_default(),
            });
        }
        if let Some(limit) = self.consecutive_limit {
            let n = self.consecutive.fetch_add(1, Relaxed).saturating_add(1);
            if reason.is_none() && n >= limit {
                reason = Some(TransitionReason::ConsecutiveFailures(n));
            }
        }
        if let Some(rate) = &self.rate {
            rate.record(now, true, slow);
            if reason.is_none() {
                reason = self.rate_reason(rate, now);
            }
        }
        if let Some(reason) = reason {
            self.trip(word, reason, recovery);
        }
    }

    fn rate_reason(&self, rate: &RateWindow, now: u64) -> Option<TransitionReason> {
        let t = rate.totals(now);
        if t.calls < self.minimum_calls {
            return None;
        }
        let percent = |part: u64| part as f64 * 100.0 / t.calls as f64;
        if let Some(threshold) = self.config.failure_rate {
            let rate = percent(t.failures);
            if rate >= threshold {
                return Some(TransitionReason::FailureRate {
                    rate,
                    calls: t.calls,
                });
            }
        }
        if let Some(threshold) = self.config.slow_rate {
            let rate = percent(t.slow);
            if rate >= threshold {
                return Some(TransitionReason::SlowCallRate {
                    rate,
                    calls: t.calls,
                });
            }
        }
        None
    }

    fn trip(&self, word: Word, reason: TransitionReason, recovery: Recovery) {
        let mut ctl = self.lock();
        if self.load() == word {
            self.open(&mut ctl, word, reason, recovery);
        }
    }

    /// Opens the breaker, to recover as the failure that opened it says.
    fn open(&self, ctl: &mut Control, from: Word, reason: TransitionReason, recovery: Recovery) {
        let byte = match recovery {
            Recovery::ServerProbe => PROBE,
            Recovery::Timer => TIMER,
        };
        // Before the state word: a reader that sees the breaker open sees how it recovers.
        self.recovery.store(byte, Relaxed);
        self.transition(ctl, from, from.mode(), OPEN, reason);
    }

    fn record_probe(&self, word: Word, outcome: Outcome) {
        let mut ctl = self.lock();
        if self.load() != word {
            // The half-open period that issued this probe is over.
            return;
        }
        ctl.in_flight = ctl.in_flight.saturating_sub(1);
        let (ok, recovery) = match outcome {
            Outcome::Ignore => return,
            // A slow probe fails when slow calls can trip the breaker.
            Outcome::Success(e) => (
                !(self.config.slow_rate.is_some() && self.is_slow(e)),
                Recovery::Timer,
            ),
            Outcome::Failure(_, recovery) => (false, recovery),
        };
        self.calls_total.fetch_add(1, Relaxed);
        if !ok {
            self.failures_total.fetch_add(1, Relaxed);
        }
        if ok {
            ctl.succeeded += 1;
            if ctl.succeeded >= self.config.half_open {
                self.transition(
                    &mut ctl,
                    word,
                    word.mode(),
                    CLOSED,
                    TransitionReason::ProbesSucceeded,
                );
            }
        } else {
            self.open(&mut ctl, word, TransitionReason::ProbeFailed, recovery);
        }
    }

    // ---- transitions ----

    /// Moves from `from` to (`mode`, `machine`) under the lock, and reports it.
    fn transition(
        &self,
        ctl: &mut Control,
        from: Word,
        mode: u8,
        machine: u8,
        reason: TransitionReason,
    ) -> Word {
        let to = Word::new(from.epoch().wrapping_add(1), mode, machine);
        match machine {
            OPEN => {
                if from.machine() == HALF_OPEN {
                    let grown = ctl.open_duration.mul_f64(self.config.open_backoff);
                    let max = self.config.open_for_max.unwrap_or(self.config.open_for);
                    ctl.open_duration = grown.min(max).max(self.config.open_for);
                }
                let until = self.now().saturating_add(nanos(ctl.open_duration));
                self.open_until.store(until, Release);
            }
            HALF_OPEN => {
                ctl.in_flight = 0;
                ctl.succeeded = 0;
            }
            _ => {
                self.recovery.store(TIMER, Relaxed);
                if let Some(ring) = &self.ring {
                    ring.clear();
                }
                if let Some(rate) = &self.rate {
                    rate.clear();
                }
                self.consecutive.store(0, Relaxed);
                ctl.open_duration = self.config.open_for;
                ctl.in_flight = 0;
                ctl.succeeded = 0;
            }
        }
        self.word.store(to.0, Release);
        self.changed.notify_waiters();

        let shadow = from.mode() == to.mode() && to.public() == BreakerState::MetricsOnly;
        let (from_state, to_state) = if shadow {
            (from.machine_state(), to.machine_state())
        } else {
            (from.public(), to.public())
        };
        if from_state != to_state {
            self.transitions.fetch_add(1, Relaxed);
            self.emit(from_state, to_state, reason, !shadow);
        }
        to
    }

    fn emit(&self, from: BreakerState, to: BreakerState, reason: TransitionReason, enforced: bool) {
        if !enforced {
            tracing::info!(
                breaker = %self.name, %from, %to, %reason, enforced,
                "circuit breaker in metrics-only mode would change state"
            );
        } else if to.rejects() {
            tracing::warn!(
                breaker = %self.name, %from, %to, %reason, enforced,
                "circuit breaker opened"
            );
        } else {
            tracing::info!(
                breaker = %self.name, %from, %to, %reason, enforced,
                "circuit breaker state changed"
            );
        }
        // No subscriber is fine: events are for whoever listens.
        let _ = self.events.send(BreakerEvent {
            breaker: self.name.clone(),
            from,
            to,
            reason,
            at: SystemTime::now(),
            enforced,
        });
    }
}

impl Records for CircuitBreaker {
    fn record(&self, kind: Kind, outcome: Outcome, at: Option<Instant>) {
        match kind {
            Kind::Unrecorded => {}
            Kind::Record(word) => self.record_closed(word, outcome, at),
            Kind::Probe(word) => self.record_probe(word, outcome),
        }
    }

    fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.name)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}
