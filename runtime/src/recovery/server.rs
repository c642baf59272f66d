use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use sqlx::postgres::PgConnectOptions;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::probe::{self, Probed};
use crate::breaker::CircuitBreaker;
use crate::error::WaitEnd;

/// How long after the server last answered a new outage counts as the same flapping one: its
/// first probe then waits (growing each time) instead of running at once, so a server that
/// answers probes but fails real calls is not half-opened in a tight loop.
const FLAP_WINDOW: Duration = Duration::from_secs(5);

/// Below this much time left, a caller does not start waiting.
const MIN_WAIT: Duration = Duration::from_millis(5);

/// What became of a wait for the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waited {
    /// It answered (or was never down): go on.
    Up,
    /// The caller gave up.
    Ended(WaitEnd),
}

/// One database server's health, as the recovery watch sees it (`Runtime::servers`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStatus {
    /// `host:port/database`.
    pub server: String,
    /// A probe confirmed the server unreachable, and none has reached it since.
    pub down: bool,
    /// When the current outage began (the first failure reported), while there is one.
    pub down_since: Option<SystemTime>,
    /// How long the current outage has lasted.
    pub down_for: Option<Duration>,
    /// The last failure seen in the current outage, with any password redacted.
    pub last_error: Option<String>,
    /// Callers waiting for the server now.
    pub waiting: u32,
    /// Probes made since the runtime started.
    pub probes: u64,
    /// Probes that did not reach the server.
    pub failed_probes: u64,
    /// Outages confirmed by a probe and ended by one.
    pub outages: u64,
    /// How long the last ended outage lasted, from the first failure to the probe that ended it.
    pub last_outage: Option<Duration>,
}

/// Every server watch of a runtime, by `host:port/database`: pools and breakers that point at
/// the same server share one.
/// A clone shares the map: replicas found later (from Patroni) join the runtime's watches.
#[derive(Debug, Default, Clone)]
pub(crate) struct Servers {
    map: Arc<Mutex<HashMap<String, Weak<Server>>>>,
}

impl Servers {
    /// The watch of the server `options` point at; `probe_timeout` bounds each probe (the
    /// first pool's setting wins).
    pub(crate) fn watch(&self, options: &PgConnectOptions, probe_timeout: Duration) -> Arc<Server> {
        let key = key_of(options);
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(server) = map.get(&key).and_then(Weak::upgrade) {
            return server;
        }
        let server = Arc::new(Server::new(key.clone(), options.clone(), probe_timeout));
        map.insert(key, Arc::downgrade(&server));
        server
    }

    /// Stops every prober and wakes every waiting caller (the runtime is shutting down).
    pub(crate) fn close(&self) {
        for server in self.all() {
            server.close();
        }
    }

    /// Every server still in use, by key.
    pub(crate) fn all(&self) -> Vec<Arc<Server>> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<Arc<Server>> = map.values().filter_map(Weak::upgrade).collect();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all
    }
}

fn key_of(options: &PgConnectOptions) -> String {
    format!(
        "{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("")
    )
}

/// The watch of one database server: whether it is down, since when, who waits for it, and
/// the breakers to half-open when it answers again.
pub(crate) struct Server {
    key: Arc<str>,
    options: PgConnectOptions,
    probe_timeout: Duration,
    /// Confirmed down: read by every acquire (one atomic load).
    down: AtomicBool,
    /// Incremented each time an outage ends, so pools know their idle connections may be dead.
    recoveries: AtomicU64,
    up: Notify,
    /// Woken when a probe first confirms an outage, for callers that are still connecting.
    went_down: Notify,
    /// Probes started so far; the number of a probe is this count just after it started.
    probes_started: AtomicU64,
    /// The last probe's verdict: (its number, whether it reached the server).
    verdict: watch::Sender<(u64, bool)>,
    waiting: AtomicU32,
    closed: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    outage: Option<Outage>,
    probing: bool,
    /// Breakers that saw this server unreachable since it last answered.
    breakers: Vec<Weak<CircuitBreaker>>,
    last_up: Option<Instant>,
    /// The delay before the first probe of the last outage (grows while the server flaps).
    first_delay: Duration,
    probes: u64,
    failed_probes: u64,
    outages: u64,
    last_outage: Option<Duration>,
}

struct Outage {
    since: Instant,
    since_wall: SystemTime,
    confirmed: bool,
    error: String,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("server", &self.key)
            .field("down", &self.is_down())
            .finish_non_exhaustive()
    }
}

impl Server {
    fn new(key: String, options: PgConnectOptions, probe_timeout: Duration) -> Server {
        Server {
            key: key.into(),
            options,
            probe_timeout,
            down: AtomicBool::new(false),
            recoveries: AtomicU64::new(0),
            up: Notify::new(),
            went_down: Notify::new(),
            probes_started: AtomicU64::new(0),
            verdict: watch::Sender::new((0, true)),
            waiting: AtomicU32::new(0),
            closed: AtomicBool::new(false),
            state: Mutex::new(State::default()),
        }
    }

    /// Whether a probe confirmed the server unreachable and none has reached it since.
    #[inline]
    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    /// How many outages have ended: a change tells a pool its idle connections may be dead.
    #[inline]
    pub(crate) fn recoveries(&self) -> u64 {
        self.recoveries.load(Ordering::Acquire)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Plain fields, consistent after every step: a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An op found the server unreachable (after its breaker, if it has one, recorded the
    /// failure): remember the breaker, so it half-opens when the server answers, and make
    /// sure one prober is looking.
    pub(crate) fn report(self: &Arc<Self>, breaker: Option<&Arc<CircuitBreaker>>, error: &str) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let mut st = self.lock();
        if let Some(b) = breaker
            && !st
                .breakers
                .iter()
                .any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(b)))
        {
            st.breakers.push(Arc::downgrade(b));
        }
        match &mut st.outage {
            Some(outage) => outage.error = crate::redact::redact(error),
            None => {
                st.outage = Some(Outage {
                    since: Instant::now(),
                    since_wall: SystemTime::now(),
                    confirmed: false,
                    error: crate::redact::redact(error),
                });
            }
        }
        if st.probing {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No tokio runtime to probe from: breakers fall back to their timer.
            return;
        };
        let flapping = st.last_up.is_some_and(|t| t.elapsed() < FLAP_WINDOW);
        st.first_delay = if flapping {
            (st.first_delay * 2).clamp(probe::FIRST, probe::MAX)
        } else {
            Duration::ZERO
        };
        st.probing = true;
        runtime.spawn(probe::run(Arc::downgrade(self), st.first_delay));
    }

    /// Resolves when a probe next confirms an outage. Create it before looking at
    /// [`Server::is_down`], so an outage confirmed in between is not missed.
    pub(crate) fn went_down(&self) -> tokio::sync::futures::Notified<'_> {
        self.went_down.notified()
    }

    /// Stops probing and wakes every waiting caller.
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.up.notify_waiters();
        // Callers waiting for a verdict get "down".
        let last = self.probes_started.load(Ordering::Acquire);
        self.verdict.send_replace((last.saturating_add(1), false));
    }

    /// Waits (until `until` at the latest) for the verdict of a probe that starts after this
    /// call, and says whether it reached the server. A caller that would fail fast because
    /// the outage is old asks this first, so that a server that came back since the last probe
    /// is never reported unavailable: the price is at most one probe interval.
    pub(crate) async fn fresh_verdict(&self, until: Instant) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        let after = self.probes_started.load(Ordering::Acquire);
        let mut verdicts = self.verdict.subscribe();
        if !self.is_down() {
            return true;
        }
        // An answer from any probe ends the outage; "down" counts only from a probe that
        // started after this call.
        let verdict = verdicts.wait_for(|(probe, up)| *up || *probe > after);
        match tokio::time::timeout_at(until, verdict).await {
            Ok(Ok(v)) => v.1 && !self.closed.load(Ordering::Acquire),
            _ => false,
        }
    }

    /// When the current outage began, and how long ago.
    pub(crate) fn outage(&self) -> Option<(SystemTime, Duration)> {
        self.lock()
            .outage
            .as_ref()
            .map(|o| (o.since_wall, o.since.elapsed()))
    }

    /// How long a caller may wait for the server, given its own limit `until`: no later than
    /// `outage_wait` after the outage began, and not at all when that leaves (almost) nothing.
    pub(crate) fn wait_limit(
        &self,
        until: Instant,
        outage_wait: Duration,
    ) -> Result<Instant, WaitEnd> {
        let now = Instant::now();
        let until = match self.lock().outage.as_ref() {
            Some(o) => {
                let limit = o.since + outage_wait;
                if limit <= now {
                    return Err(WaitEnd::OutageTooOld);
                }
                until.min(limit)
            }
            None => until,
        };
        if until.saturating_duration_since(now) < MIN_WAIT {
            return Err(WaitEnd::NoTimeLeft);
        }
        Ok(until)
    }

    /// Waits until the server answers a probe, until `until` at the latest, unless
    /// `max_waiting` callers already wait or the outage is older than `outage_wait`.
    pub(crate) async fn wait_up(
        &self,
        until: Instant,
        outage_wait: Duration,
        max_waiting: u32,
    ) -> Waited {
        let notified = self.up.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !self.is_down() {
            return Waited::Up;
        }
        let Some(_ticket) = self.ticket(max_waiting) else {
            return Waited::Ended(WaitEnd::TooManyWaiting);
        };
        let own = until;
        let until = match self.wait_limit(own, outage_wait) {
            Ok(until) => until,
            // Before failing fast, the next probe's word: the server may be back already.
            Err(WaitEnd::OutageTooOld) if self.fresh_verdict(own).await => return Waited::Up,
            Err(end) => return Waited::Ended(end),
        };
        match tokio::time::timeout_at(until, notified).await {
            Ok(()) if !self.closed.load(Ordering::Acquire) => Waited::Up,
            // The outage grew too old while this caller waited: as above, the next probe's
            // word before failing (the server may have come back a moment ago).
            Err(_) if until < own && self.fresh_verdict(own).await => Waited::Up,
            _ => Waited::Ended(WaitEnd::WaitedOut),
        }
    }

    /// A place among the callers waiting for the server, or `None` when they are too many.
    pub(crate) fn ticket(&self, max_waiting: u32) -> Option<Ticket<'_>> {
        Ticket::take(&self.waiting, max_waiting)
    }

    /// The error for a caller that stopped waiting for this server after `waited`.
    pub(crate) fn unavailable(
        &self,
        site: &crate::error::Site,
        waited: Duration,
        wait: WaitEnd,
        breaker: Option<Arc<str>>,
    ) -> crate::error::Error {
        let (since, down_for) = self
            .outage()
            .unwrap_or_else(|| (SystemTime::now(), Duration::ZERO));
        crate::error::Error::Unavailable {
            site: site.clone(),
            server: self.key.clone(),
            since,
            down_for,
            waited,
            wait,
            breaker,
        }
    }

    /// A snapshot for the health report.
    pub(crate) fn status(&self) -> ServerStatus {
        let st = self.lock();
        ServerStatus {
            server: self.key.to_string(),
            down: self.is_down(),
            down_since: st.outage.as_ref().map(|o| o.since_wall),
            down_for: st.outage.as_ref().map(|o| o.since.elapsed()),
            last_error: st.outage.as_ref().map(|o| o.error.clone()),
            waiting: self.waiting.load(Ordering::Relaxed),
            probes: st.probes,
            failed_probes: st.failed_probes,
            outages: st.outages,
            last_outage: st.last_outage,
        }
    }
}

impl Probed for Server {
    /// The connect options and time limit of a probe, or `None` once the runtime closed.
    fn probe_target(&self) -> Option<(PgConnectOptions, Duration)> {
        if self.closed.load(Ordering::Acquire) {
            self.lock().probing = false;
            return None;
        }
        Some((self.options.clone(), self.probe_timeout))
    }

    /// A probe is starting: its number, for its verdict.
    fn probe_starting(&self) -> u64 {
        self.probes_started.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// A probe reached the server: the outage is over.
    fn answered(&self, probe: u64) {
        let (outage, breakers) = {
            let mut st = self.lock();
            st.probes += 1;
            st.probing = false;
            st.last_up = Some(Instant::now());
            let outage = st.outage.take();
            if let Some(o) = outage.as_ref().filter(|o| o.confirmed) {
                st.outages += 1;
                st.last_outage = Some(o.since.elapsed());
            }
            self.down.store(false, Ordering::Release);
            (outage, std::mem::take(&mut st.breakers))
        };
        if outage.as_ref().is_some_and(|o| o.confirmed) {
            self.recoveries.fetch_add(1, Ordering::AcqRel);
        }
        // Breakers first: a caller woken below finds its breaker half-open.
        let mut half_opened = 0;
        for breaker in breakers.iter().filter_map(Weak::upgrade) {
            if breaker.server_answered() {
                half_opened += 1;
            }
        }
        self.verdict.send_replace((probe, true));
        self.up.notify_waiters();
        if let Some(o) = outage.filter(|o| o.confirmed) {
            tracing::info!(
                server = %self.key,
                down_ms = o.since.elapsed().as_millis() as u64,
                breakers_half_opened = half_opened,
                "database server answers again"
            );
        }
    }

    /// A probe did not reach the server: it is down.
    fn probe_failed(&self, probe: u64, error: String) {
        let mut st = self.lock();
        st.probes += 1;
        st.failed_probes += 1;
        let outage = st.outage.get_or_insert_with(|| Outage {
            since: Instant::now(),
            since_wall: SystemTime::now(),
            confirmed: false,
            error: String::new(),
        });
        let first = !outage.confirmed;
        outage.confirmed = true;
        outage.error = error;
        if first {
            tracing::warn!(
                server = %self.key,
                error = %outage.error,
                "database server unreachable; probing until it answers"
            );
        }
        self.down.store(true, Ordering::Release);
        drop(st);
        self.verdict.send_replace((probe, false));
        if first {
            self.went_down.notify_waiters();
        }
    }
}

/// One caller waiting for a server; leaves the count when dropped.
#[derive(Debug)]
pub(crate) struct Ticket<'a>(&'a AtomicU32);

impl<'a> Ticket<'a> {
    fn take(waiting: &'a AtomicU32, max: u32) -> Option<Ticket<'a>> {
        waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Ticket(waiting))
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
