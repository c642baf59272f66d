//! Named connection pools on sqlx's `PgPool`, with session settings applied on connect,
//! validation after an idle window (HikariCP's rule), statistics, events and leak detection.

mod adopt;
mod attached;
mod budget;
mod config;
mod credentials;
mod events;
mod handoff;
mod leak;
pub(crate) mod pooler;
pub mod replica;
mod stats;

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Postgres};
use tokio::sync::broadcast;
use tokio::time::Instant;

pub(crate) use self::attached::Attached;
pub use self::budget::{BudgetCheck, BudgetMode, PoolSizing, SizingReport};
pub use self::config::{PoolConfig, Pooler, Startup, Validation, WhenFull};
pub use self::credentials::{PasswordProvider, ProviderError};
pub use self::events::{CloseReason, PoolEvent, PoolEventKind};
pub use self::stats::{PoolStats, WAIT_BUCKETS_US, WaitHistogram};

use self::credentials::Credentials;
pub(crate) use self::credentials::Providers;
pub(crate) use self::credentials::Source;
use self::events::EventSink;
use self::handoff::{Handed, Handoff, MAX_HANDOFFS};
pub(crate) use self::leak::Holder;
use self::leak::LeakWatch;
use self::stats::Counters;
use crate::classify::{FailureKind, classify};
use crate::error::{Error, Result, Site};
use crate::hosts::{HostBreaker, HostStatus, Hosts, STALL_CHECK};
use crate::observer::{Observer, PoolObserver};
use crate::recovery::{Server, Servers, Waited};
use crate::secret::DatabaseUrl;

/// The longest an acquire timeout waits to find out whether the server is reachable.
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);

/// Why an acquire timed out, as far as the pool can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Stuck {
    /// Saturated, or refused for too many connections (backpressure): the server is healthy.
    Busy = 0,
    /// A live server refused the connection (starting up, a wrong password): unreachable for
    /// the caller, yet no sign that the host is gone.
    Refused = 1,
    /// Connections could not be made or got no answer (refused, reset, timed out).
    Unreachable = 2,
}

impl Stuck {
    fn of(n: u8) -> Stuck {
        match n {
            0 => Stuck::Busy,
            1 => Stuck::Refused,
            _ => Stuck::Unreachable,
        }
    }
}

/// What an acquire asks of, and learns from, the pool's `before_acquire` hook (which runs
/// inside the acquiring task).
#[derive(Debug, Default)]
struct AcquireScope {
    /// Ping any reused connection first, however short its idle time: set for ops that may
    /// write and cannot run again safely, and for a re-run after a dead connection.
    check_reused: bool,
    /// Set by the hook: the connection handed out was idle in the pool (not newly opened).
    reused: std::cell::Cell<bool>,
}

tokio::task_local! {
    static ACQUIRE: AcquireScope;
}

/// A named connection pool. Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    shared: Arc<PoolShared>,
}

pub(crate) struct PoolShared {
    pub(crate) name: Arc<str>,
    pub(crate) config: PoolConfig,
    pub(crate) url: DatabaseUrl,
    pub(crate) sqlx: PgPool,
    pub(crate) counters: Arc<Counters>,
    pub(crate) events: Arc<EventSink>,
    pub(crate) leaks: Option<LeakWatch>,
    /// Where acquires and releases are reported.
    pub(crate) observer: Arc<dyn PoolObserver>,
    /// Callers waiting on a saturated pool, to whom connections are handed straight.
    handoff: Handoff,
    /// The server's health, shared with every pool and breaker that points at it.
    server: Arc<Server>,
    /// The server's recovery count when this pool last looked: when it changes, idle
    /// connections may have died with the server and are checked before use.
    recoveries_seen: std::sync::atomic::AtomicU64,
    /// Built by the application and adopted: its own hooks, not the runtime's, see its
    /// connections opened and checked.
    adopted: bool,
    /// A password fetched again before the pool may open a connection.
    credentials: Option<Credentials>,
    /// The hosts of a multi-host URL, and which one the pool uses (see `crate::hosts`).
    hosts: Option<Arc<Hosts>>,
    /// What a layer built on the pool attached to it (its read replicas), closed with it.
    attached: std::sync::OnceLock<Arc<dyn Attached>>,
}

/// What a [`Pool`] is assembled from.
struct Parts {
    name: Arc<str>,
    config: PoolConfig,
    url: DatabaseUrl,
    sqlx: PgPool,
    counters: Arc<Counters>,
    events: Arc<EventSink>,
    adopted: bool,
    /// Where the password comes from when it is not fixed in the URL.
    password: Option<Source>,
    hosts: Option<Arc<Hosts>>,
}

impl PoolShared {
    pub(crate) fn closed(&self) -> bool {
        self.sqlx.is_closed()
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.shared.name)
            .field("url", &self.shared.url)
            .field("size", &self.shared.sqlx.size())
            .field("max", &self.shared.config.max)
            .finish()
    }
}

impl Pool {
    /// Builds a pool whose password, when not fixed in its URL, comes from `password`,
    /// without the read replicas its configuration may name: the constructors that attach
    /// them (`Pool::new`, and the runtime's) are in `replica::attach`, which builds on this
    /// module (a replica is a pool of its own).
    pub(crate) fn built(
        name: &str,
        config: PoolConfig,
        default_url: Option<&DatabaseUrl>,
        servers: &Servers,
        observer: &dyn Observer,
        password: Option<Source>,
    ) -> Result<Pool> {
        let name: Arc<str> = Arc::from(name);
        let url = config
            .url
            .clone()
            .or_else(|| default_url.cloned())
            .ok_or_else(|| {
                Error::config(
                    format!("pools.{name}.url"),
                    "(not set)",
                    "a postgres:// URL for this pool, or the runtime's url (DATABASE_URL)",
                    "code",
                )
            })?;
        let origin = format!("pools.{name}.url");
        let host_list = url.host_list(&origin)?;
        let hosts = host_list.as_ref().map(|list| {
            let check_timeout = config.connect_timeout.min(config.probe_timeout);
            let settings = |o| session_settings(&name, &config, o);
            let breaker = HostBreaker {
                failures: config.host_breaker_failures,
                open_max: config.host_breaker_open_max,
            };
            Hosts::new(
                name.clone(),
                list,
                settings,
                servers,
                check_timeout,
                breaker,
            )
        });
        let options = match &hosts {
            Some(h) => h.first_options(),
            None => session_settings(&name, &config, url.connect_options(&origin)?),
        };
        let (h1, h2) = (
            hosts.as_ref().map(Arc::downgrade),
            hosts.as_ref().map(Arc::downgrade),
        );
        let counters = Arc::new(Counters::default());
        let events = Arc::new(EventSink::new(name.clone()));

        let validation = config.validation;
        let window = config.validation_window;
        let check_interval = config.client_connection_check_interval;
        let behind = (config.pooler != Pooler::None).then(|| config.clone());
        let (c1, e1) = (counters.clone(), events.clone());
        let (c2, e2) = (counters.clone(), events.clone());
        let sqlx = PgPoolOptions::new()
            .max_connections(config.max)
            .min_connections(config.min)
            .acquire_timeout(config.acquire_timeout)
            .idle_timeout(config.idle_timeout)
            .max_lifetime(config.max_lifetime)
            .test_before_acquire(false)
            .after_connect(move |conn, _meta| {
                let (counters, events) = (c1.clone(), e1.clone());
                let hosts = h1.as_ref().and_then(std::sync::Weak::upgrade);
                let behind = behind.clone();
                Box::pin(async move {
                    // A multi-host pool's new connection must land on a host of the role it
                    // asks for; sqlx closes a wrong one and connects again.
                    if let Some(hosts) = hosts {
                        hosts.suits(conn).await?;
                    }
                    match behind {
                        Some(config) => {
                            after_connect_behind_pooler(conn, config, counters, events).await
                        }
                        None => after_connect(conn, check_interval, counters, events).await,
                    }
                })
            })
            .before_acquire(move |conn, meta| {
                let (counters, events) = (c2.clone(), e2.clone());
                // Opened before the pool moved to another host: never used again.
                if let Some(hosts) = h2.as_ref().and_then(std::sync::Weak::upgrade)
                    && hosts.opened_before_switch(meta.age)
                {
                    counters.evicted.fetch_add(1, Relaxed);
                    events.emit(PoolEventKind::Close {
                        reason: CloseReason::Failure,
                    });
                    return Box::pin(async { Ok(false) });
                }
                Box::pin(before_acquire(
                    conn, meta, validation, window, counters, events,
                ))
            })
            .connect_lazy_with(options);
        if let Some(h) = &hosts {
            h.attach(sqlx.clone());
        }
        let parts = Parts {
            name,
            config,
            url,
            sqlx,
            counters,
            events,
            adopted: false,
            password,
            hosts,
        };
        Ok(Pool::assemble(parts, servers, observer))
    }

    /// The pool around a sqlx pool, built here or adopted (see `adopt`).
    fn assemble(parts: Parts, servers: &Servers, observer: &dyn Observer) -> Pool {
        let Parts {
            name,
            config,
            url,
            sqlx,
            counters,
            events,
            adopted,
            password,
            hosts,
        } = parts;
        let leaks = config.leak_threshold.map(LeakWatch::new);
        let observer = observer.pool(&name);
        let server = servers.watch(
            &sqlx.connect_options(),
            config.connect_timeout.min(config.probe_timeout),
        );
        let shared = Arc::new(PoolShared {
            observer,
            recoveries_seen: std::sync::atomic::AtomicU64::new(server.recoveries()),
            server,
            handoff: Handoff::default(),
            name,
            url,
            sqlx,
            counters,
            events,
            leaks,
            config,
            adopted,
            credentials: password.map(Credentials::new),
            hosts,
            attached: std::sync::OnceLock::new(),
        });
        if let Some(threshold) = shared.config.leak_threshold
            && tokio::runtime::Handle::try_current().is_ok()
        {
            let pool = Arc::downgrade(&shared);
            LeakWatch::spawn_scanner(threshold, move || {
                let Some(pool) = pool.upgrade().filter(|p| !p.closed()) else {
                    return false;
                };
                if let Some(watch) = &pool.leaks {
                    watch.scan(&pool.name, &pool.counters.leaks, &pool.events);
                }
                true
            });
        }
        Pool { shared }
    }

    /// Opens the pool's first connections (`min`, at least one) within `startup_timeout`, and
    /// fails with the driver's reason when the server cannot be reached.
    pub async fn start(&self) -> Result<()> {
        let cfg = &self.shared.config;
        let site = Site::pool(self.shared.name.clone());
        if let Some(hosts) = &self.shared.hosts {
            // Find the host to use first; the checks below then go to it.
            hosts
                .ready(&site, Instant::now() + cfg.startup_timeout)
                .await?;
        }
        self.refresh_password(&site, Instant::now() + cfg.startup_timeout)
            .await?;
        let options = self.shared.sqlx.connect_options();
        // A direct connect first: the pool's own connect loop retries refusals until its
        // timeout and would hide the reason.
        let probe = tokio::time::timeout(
            cfg.startup_timeout.min(cfg.connect_timeout),
            PgConnection::connect_with(&options),
        )
        .await;
        match probe {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
            }
            Ok(Err(source)) => {
                return Err(Error::Connect {
                    site,
                    target: self.shared.url.redacted(),
                    source,
                });
            }
            Err(_) => {
                return Err(Error::Connect {
                    site,
                    target: self.shared.url.redacted(),
                    source: sqlx::Error::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "no answer within {:?} (startup_timeout)",
                            cfg.startup_timeout.min(cfg.connect_timeout)
                        ),
                    )),
                });
            }
        }
        // The server answers; now open `min` connections (at least one). The pool's own
        // acquire timeout may be shorter than a connect under load, so keep asking until the
        // start-up deadline.
        let want = cfg.min.max(1) as usize;
        let deadline = Instant::now() + cfg.startup_timeout;
        let mut held = Vec::with_capacity(want);
        while held.len() < want {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.shared.sqlx.acquire()).await {
                Ok(Ok(conn)) => held.push(conn),
                Ok(Err(sqlx::Error::PoolTimedOut)) if !left.is_zero() => continue,
                Ok(Err(source)) => {
                    return Err(Error::Connect {
                        site,
                        target: self.shared.url.redacted(),
                        source,
                    });
                }
                Err(_) => break,
            }
        }
        drop(held);
        Ok(())
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub(crate) fn name_arc(&self) -> &Arc<str> {
        &self.shared.name
    }

    /// The pool's settings.
    pub fn config(&self) -> &PoolConfig {
        &self.shared.config
    }

    /// The server URL, with any password redacted.
    pub fn url(&self) -> &DatabaseUrl {
        &self.shared.url
    }

    /// The watch of the server this pool connects to (for a multi-host pool, the host it
    /// uses now).
    pub(crate) fn server(&self) -> &Arc<Server> {
        match &self.shared.hosts {
            Some(hosts) => hosts.server(),
            None => &self.shared.server,
        }
    }

    /// For a pool on a multi-host URL, every host: its role, health and counters, and which
    /// one the pool uses now. `None` for a one-server pool.
    pub fn hosts(&self) -> Option<Vec<HostStatus>> {
        self.shared.hosts.as_ref().map(|h| h.status())
    }

    /// For a pool on a multi-host URL, how many times it moved to another host after the
    /// one it used failed (25006, a lost connection, a shutdown).
    pub fn failovers(&self) -> Option<u64> {
        self.shared.hosts.as_ref().map(|h| h.failovers())
    }

    /// For a pool on a multi-host URL, the address of the host it uses now (`host:port`), or
    /// `None` during a failover or for a one-server pool.
    pub fn current_host(&self) -> Option<String> {
        let hosts = self.hosts()?;
        hosts
            .into_iter()
            .find(|h| h.current)
            .map(|h| format!("{}:{}", h.address, h.port))
    }

    /// The underlying sqlx pool, for code that needs sqlx directly. Connections taken from it
    /// bypass the runtime's statistics and leak detection.
    pub fn sqlx(&self) -> &PgPool {
        &self.shared.sqlx
    }

    /// Subscribes to the pool's events (connect, acquire, release, close, error, leak). A slow
    /// subscriber that falls more than 1024 events behind skips the oldest ones
    /// (`RecvError::Lagged`). Acquire and release events are sent only while someone listens.
    pub fn subscribe(&self) -> broadcast::Receiver<PoolEvent> {
        self.shared.events.subscribe()
    }

    /// A snapshot of the pool's state and counters.
    pub fn stats(&self) -> PoolStats {
        let s = &self.shared;
        let c = &s.counters;
        let size = s.sqlx.size();
        let idle = u32::try_from(s.sqlx.num_idle())
            .unwrap_or(u32::MAX)
            .min(size);
        let in_use = size - idle;
        let opened = c.opened.load(Relaxed);
        PoolStats {
            name: s.name.to_string(),
            size,
            idle,
            in_use,
            waiting: c.waiting.load(Relaxed),
            max: s.config.max,
            min: s.config.min,
            utilization_pct: f64::from(in_use) * 100.0 / f64::from(s.config.max.max(1)),
            acquired: c.acquired.load(Relaxed),
            acquire_timeouts: c.acquire_timeouts.load(Relaxed),
            opened,
            closed: opened.saturating_sub(u64::from(size)),
            evicted: c.evicted.load(Relaxed),
            handed_on: c.handed_on.load(Relaxed),
            errors: c.errors.load(Relaxed),
            leaks: c.leaks.load(Relaxed),
            validations: c.validations.load(Relaxed),
            validation_failures: c.validation_failures.load(Relaxed),
            acquire_wait: c.wait.snapshot(),
            use_time: c.use_time.snapshot(),
        }
    }

    /// Takes a connection for code that does not go through an op. It counts in the pool's
    /// statistics and, with a leak threshold set, a connection held too long is reported with
    /// the caller's location.
    #[track_caller]
    pub fn acquire(&self) -> impl Future<Output = Result<PooledConn>> + Send + '_ {
        let holder = Holder {
            op: None,
            location: Some(crate::location::Location::caller()),
        };
        let site = Site::pool(self.shared.name.clone());
        async move {
            let timeout = self.shared.config.acquire_timeout;
            self.acquire_for(&site, timeout, None, false, holder).await
        }
    }

    /// Acquires within `timeout`; `check_reused` pings any reused connection first. After a
    /// timeout, finding out why never runs past `deadline` (the caller's).
    ///
    /// With a password from a file or a provider, a connect the server refuses for its
    /// password (28P01, 28000) fetches the password again and tries once more: sqlx may open
    /// a connection in place of a dead idle one, which the check before acquiring cannot see.
    pub(crate) async fn acquire_for(
        &self,
        site: &Site,
        timeout: Duration,
        deadline: Option<Instant>,
        check_reused: bool,
        holder: Holder,
    ) -> Result<PooledConn> {
        let started = Instant::now();
        let first = self
            .acquire_once(site, timeout, deadline, check_reused, holder.clone())
            .await;
        match first {
            Err(Error::Database { ref source, .. })
                if self.shared.credentials.is_some() && credentials::refused(source) =>
            {
                let limit = started + timeout;
                self.refresh_password(site, limit).await?;
                let left = limit.saturating_duration_since(Instant::now());
                self.acquire_once(site, left, deadline, check_reused, holder)
                    .await
            }
            other => other,
        }
    }

    async fn acquire_once(
        &self,
        site: &Site,
        timeout: Duration,
        deadline: Option<Instant>,
        check_reused: bool,
        holder: Holder,
    ) -> Result<PooledConn> {
        let s = &self.shared;
        let waiting = WaitingGuard::new(&s.counters);
        let started = Instant::now();
        let mut limit = started + timeout;
        let mut generation = 0;
        let acquired_before = s.counters.acquired.load(Relaxed);
        let opened_before = s.counters.opened.load(Relaxed);
        if s.sqlx.num_idle() == 0 && s.sqlx.size() < s.config.max {
            // This acquire may open a connection: with the password of now.
            self.refresh_password(site, limit).await?;
        }
        let result = loop {
            // A multi-host pool between hosts: wait for one, within the caller's deadline;
            // the server watched below is then the new host's.
            if let Some(hosts) = &s.hosts {
                let wait_from = Instant::now();
                hosts.ready(site, deadline.unwrap_or(limit)).await?;
                generation = hosts.generation();
                // Waiting for the new host used up the acquire timeout: the acquire gets its
                // own again, within the deadline.
                let now = Instant::now();
                if now > limit && now > wait_from {
                    limit = deadline.map_or(now + timeout, |d| d.min(now + timeout));
                }
            }
            // A server confirmed down: wait for a probe to reach it (bounded), instead of
            // every caller trying to connect on its own.
            if self.server().is_down() {
                let waited = self
                    .server()
                    .wait_up(limit, s.config.outage_wait, s.config.max_outage_waiters())
                    .await;
                if let Waited::Ended(end) = waited {
                    drop(waiting);
                    return Err(self
                        .server()
                        .unavailable(site, started.elapsed(), end, None));
                }
            }
            self.after_recovery();
            // Found down while this caller is connecting (sqlx retries refused connects until
            // its timeout, with a growing backoff): stop, and wait for the server instead.
            let went_down = self.server().went_down();
            tokio::pin!(went_down);
            went_down.as_mut().enable();
            if self.server().is_down() {
                continue;
            }
            // A multi-host pool's acquire that waits: is the host still there? (Its idle
            // connections may have died with it, and sqlx retries refused connects until the
            // timeout.) When not, the loop waits for the host discovery finds.
            let stalled = async {
                match &s.hosts {
                    Some(hosts) => loop {
                        tokio::time::sleep(STALL_CHECK).await;
                        if !hosts.current_answers(generation).await {
                            break;
                        }
                    },
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                r = tokio::time::timeout_at(limit, self.take(check_reused)) => break match r {
                    Ok((r, reused, handoffs)) => (Ok(r), reused, handoffs),
                    Err(e) => (Err(e), false, 0),
                },
                () = &mut went_down => continue,
                () = stalled => continue,
            }
        };
        let (result, reused, handoffs) = result;
        let acquired_at = Instant::now();
        let waited = acquired_at.saturating_duration_since(started);
        drop(waiting);
        match result {
            Ok(Ok(conn)) => {
                s.counters.acquired.fetch_add(1, Relaxed);
                if let Some(hosts) = &s.hosts {
                    hosts.acquired();
                }
                s.counters.wait.record(waited);
                s.counters.in_use.fetch_add(1, Relaxed);
                s.events.emit(PoolEventKind::Acquire { waited });
                // An adopted pool never says whether it opened the connection: no create time.
                s.observer.acquired(waited, reused || s.adopted);
                let leak_id = s.leaks.as_ref().map(|w| w.register(holder));
                Ok(PooledConn {
                    conn: Some(conn),
                    pool: self.shared.clone(),
                    since: acquired_at,
                    leak_id,
                    evict: None,
                    reused,
                    handoffs,
                    clean: false,
                    generation,
                })
            }
            Ok(Err(sqlx::Error::PoolTimedOut)) | Err(_) => {
                s.counters.acquire_timeouts.fetch_add(1, Relaxed);
                let stuck = self.stuck(acquired_before, opened_before, deadline).await;
                let unreachable = stuck != Stuck::Busy;
                if unreachable && let Some(hosts) = &s.hosts {
                    let reason = "connections to the host could not be opened";
                    if stuck == Stuck::Unreachable {
                        hosts.connect_failed(generation, waited, reason);
                    }
                    hosts.suspect(generation, reason);
                }
                Err(self.timeout_error(site, waited, unreachable))
            }
            Ok(Err(sqlx::Error::PoolClosed)) => Err(Error::PoolClosed { site: site.clone() }),
            Ok(Err(source)) => {
                s.counters.errors.fetch_add(1, Relaxed);
                let verdict = classify(&source);
                let kind = verdict.kind;
                // sqlx's pool hands back its connect's failure: one that never reached a live
                // server (reset, TLS) counts against the host's breaker.
                if verdict.unreached()
                    && let Some(hosts) = &s.hosts
                {
                    let reason = crate::redact::redact(&source.to_string());
                    hosts.connect_failed(generation, waited, &reason);
                }
                s.events.emit(PoolEventKind::Error {
                    kind,
                    message: crate::redact::redact(&source.to_string()),
                });
                Err(Error::Database {
                    site: site.clone(),
                    kind,
                    attempts: 1,
                    source,
                })
            }
        }
    }

    /// Where the pool's password comes from when it changes while the process runs.
    pub(crate) fn password_source(&self) -> Option<&Source> {
        self.shared.credentials.as_ref().map(Credentials::source)
    }

    /// Fetches the password again (from `password_file` or the provider), within `limit`.
    async fn refresh_password(&self, site: &Site, limit: Instant) -> Result<()> {
        let Some(credentials) = &self.shared.credentials else {
            return Ok(());
        };
        let failed = |reason| credentials.source().failed(site, reason);
        match tokio::time::timeout_at(limit, credentials.refresh(&self.shared.sqlx)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(failed(reason)),
            Err(_) => Err(failed(format!(
                "no answer within the acquire's time ({:?})",
                crate::error::rounded(limit.saturating_duration_since(Instant::now()))
            ))),
        }
    }

    /// One try at a connection from sqlx's pool or, on a saturated pool, handed straight on by
    /// an op that just finished (see `handoff`), tested first when a connection from the pool
    /// would be (see `handed_usable`). Returns whether it was reused and how many times in a
    /// row it was handed on.
    async fn take(
        &self,
        check_reused: bool,
    ) -> (
        std::result::Result<PoolConnection<Postgres>, sqlx::Error>,
        bool,
        u32,
    ) {
        let s = &self.shared;
        let scope = AcquireScope {
            check_reused,
            reused: std::cell::Cell::new(false),
        };
        let from_pool = ACQUIRE.scope(scope, async {
            let conn = s.sqlx.acquire().await;
            (conn, ACQUIRE.with(|a| a.reused.get()))
        });
        let saturated = s.sqlx.num_idle() == 0 && s.sqlx.size() >= s.config.max;
        if !saturated {
            let (r, reused) = from_pool.await;
            return (r, reused, 0);
        }
        tokio::pin!(from_pool);
        loop {
            let mut waiter = s.handoff.register();
            tokio::select! {
                biased;
                Ok(h) = &mut waiter.rx => {
                    if s.hosts.as_ref().is_some_and(|hs| hs.generation() != h.generation) {
                        release(s, h.conn, Some(CloseReason::Failure));
                        continue;
                    }
                    if let Some(conn) = self.handed_usable(h.conn, check_reused).await {
                        return (Ok(conn), true, h.handoffs);
                    }
                }
                (r, reused) = &mut from_pool => return (r, reused, 0),
            }
        }
    }

    /// After an outage ended, idle connections may have died with the server: reused ones
    /// are checked before use for a while.
    fn after_recovery(&self) {
        let s = &self.shared;
        let recoveries = self.server().recoveries();
        if s.recoveries_seen.load(Relaxed) != recoveries
            && s.recoveries_seen.swap(recoveries, Relaxed) != recoveries
        {
            s.counters
                .suspect_idle(s.config.validation_window.max(Duration::from_secs(1)));
        }
    }

    /// A connection handed on, tested first by the rules of `before_acquire` (it was idle for
    /// no time): always with `validation = "always"`, for callers that must test a reused
    /// connection, and after recent failures. A dead one is closed (`None`).
    async fn handed_usable(
        &self,
        mut conn: PoolConnection<Postgres>,
        check_reused: bool,
    ) -> Option<PoolConnection<Postgres>> {
        let s = &self.shared;
        let needed = match s.config.validation {
            Validation::Always => true,
            Validation::Never => false,
            Validation::Idle => check_reused || s.counters.suspicious(),
        };
        if !needed {
            return Some(conn);
        }
        s.counters.validations.fetch_add(1, Relaxed);
        match conn.ping().await {
            Ok(()) => Some(conn),
            Err(e) => {
                s.counters.validation_failures.fetch_add(1, Relaxed);
                tracing::debug!(error = %e, "handed-on connection found dead before use");
                release(s, conn, Some(CloseReason::ValidationFailed));
                None
            }
        }
    }

    /// After an acquire timed out: was the pool unable to open connections because the
    /// server is unreachable (which says the database is down), or refused by a live server
    /// (starting up, a wrong password), or was it saturated, or refused for too many
    /// connections (backpressure, which says nothing of its health)?
    ///
    /// sqlx's pool retries failed connects until the acquire timeout and reports only the
    /// timeout, so the reason is found with one direct connect, at most every 250 ms per pool
    /// and never past the caller's deadline. With no time left, the last probe's answer stands
    /// or, with none yet, the pool's state: below max with nobody idle, it could not connect.
    async fn stuck(
        &self,
        acquired_before: u64,
        opened_before: u64,
        deadline: Option<Instant>,
    ) -> Stuck {
        let s = &self.shared;
        if self.server().is_down() {
            // A probe already found the server unreachable.
            return Stuck::Unreachable;
        }
        if s.sqlx.size() >= s.config.max {
            // At max, the pool is exhausted only when callers hold the connections, or keep
            // getting them. Slots that callers gave back and that never came back, while no
            // caller got a connection during the whole wait, are tied up by the pool's own
            // round trips (sqlx pings every returned connection, and reopens `min`
            // connections, without a time limit): on a dead network those hang, and that is
            // the network failing, not backpressure.
            let held = s.counters.in_use.load(Relaxed);
            let served = s.counters.acquired.load(Relaxed) != acquired_before;
            return if held < s.config.max && !served {
                Stuck::Unreachable
            } else {
                Stuck::Busy
            };
        }
        if s.counters.opened.load(Relaxed) != opened_before {
            // The pool opened connections during the wait: the server is reachable, only
            // slow to accept them (a cold start of a large pool on a busy machine).
            return Stuck::Busy;
        }
        let now_us = u64::try_from(s.counters.epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        let probed = s.counters.probed_at_us.load(Relaxed);
        let last_probe = || Stuck::of(s.counters.probe_stuck.load(Relaxed));
        if probed != 0 && now_us.saturating_sub(probed) < 250_000 {
            return last_probe();
        }
        let budget = deadline.map_or(PROBE_TIMEOUT, |d| {
            d.saturating_duration_since(Instant::now())
                .min(PROBE_TIMEOUT)
        });
        if budget < PROBE_TIMEOUT / 5 {
            return if probed != 0 {
                last_probe()
            } else if s.sqlx.num_idle() == 0 {
                Stuck::Unreachable
            } else {
                Stuck::Busy
            };
        }
        s.counters.probed_at_us.store(now_us.max(1), Relaxed);
        let options = s.sqlx.connect_options();
        let probe = tokio::time::timeout(budget, PgConnection::connect_with(&options)).await;
        let stuck = match probe {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                Stuck::Busy
            }
            Ok(Err(e)) => {
                let verdict = classify(&e);
                if verdict.kind == FailureKind::Backpressure {
                    Stuck::Busy
                } else if verdict.unreached() {
                    Stuck::Unreachable
                } else {
                    Stuck::Refused
                }
            }
            Err(_) => Stuck::Unreachable,
        };
        s.counters.probe_stuck.store(stuck as u8, Relaxed);
        stuck
    }

    fn timeout_error(&self, site: &Site, waited: Duration, unreachable: bool) -> Error {
        let s = &self.shared;
        let size = s.sqlx.size();
        let idle = u32::try_from(s.sqlx.num_idle()).unwrap_or(0).min(size);
        s.events.emit(PoolEventKind::Error {
            kind: if unreachable {
                FailureKind::ConnectionLost
            } else {
                FailureKind::Backpressure
            },
            message: format!(
                "acquire timed out after {:?}",
                crate::error::rounded(waited)
            ),
        });
        Error::AcquireTimeout {
            site: site.clone(),
            waited,
            in_use: size - idle,
            max: s.config.max,
            waiting: s.counters.waiting.load(Relaxed),
            unreachable,
        }
    }

    /// Closes every connection (its replicas' too); later acquires fail with
    /// [`Error::PoolClosed`].
    pub async fn close(&self) {
        if let Some(attached) = self.shared.attached.get() {
            attached.close().await;
        }
        self.shared.sqlx.close().await;
    }

    /// Attaches what a layer built on the pool keeps with it; once only (a second is
    /// dropped).
    pub(crate) fn attach(&self, attached: Arc<dyn Attached>) {
        let _ = self.shared.attached.set(attached);
    }

    /// What was attached, if anything.
    pub(crate) fn attached(&self) -> Option<&Arc<dyn Attached>> {
        self.shared.attached.get()
    }

    /// Whether [`Pool::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.shared.sqlx.is_closed()
    }
}

/// Where the password comes from when it may change: the provider given in code, else
/// `password_file`.
pub(crate) fn password_source(
    config: &PoolConfig,
    provider: Option<Arc<dyn PasswordProvider>>,
) -> Option<Source> {
    provider.map(Source::Provider).or_else(|| {
        config
            .password_file
            .as_ref()
            .map(|path| Source::File(path.into()))
    })
}

/// The server settings of every session, sent in the startup packet (no extra round trip);
/// behind a pooler, applied by statements instead (see `pooler`).
fn session_settings(
    name: &str,
    config: &PoolConfig,
    mut options: PgConnectOptions,
) -> PgConnectOptions {
    // The configured name, else the one the connect options or the URL carry, else the
    // pool's.
    let app = config
        .application_name
        .clone()
        .or_else(|| options.get_application_name().map(str::to_owned))
        .unwrap_or_else(|| name.to_owned());
    options = options.application_name(&app);
    let mut settings: Vec<(&str, String)> = Vec::new();
    let ms = |d: Duration| d.as_millis().to_string();
    if let Some(d) = config.statement_timeout {
        settings.push(("statement_timeout", ms(d)));
    }
    if let Some(d) = config.lock_timeout {
        settings.push(("lock_timeout", ms(d)));
    }
    if let Some(d) = config.idle_in_transaction_session_timeout {
        settings.push(("idle_in_transaction_session_timeout", ms(d)));
    }
    if let Some(path) = &config.search_path {
        settings.push(("search_path", path.clone()));
    }
    if !settings.is_empty() && config.pooler == Pooler::None {
        options = options.options(settings);
    }
    pooler::startup(options, config.pooler)
}

async fn after_connect(
    conn: &mut PgConnection,
    check_interval: Option<Duration>,
    counters: Arc<Counters>,
    events: Arc<EventSink>,
) -> std::result::Result<(), sqlx::Error> {
    counters.opened.fetch_add(1, Relaxed);
    // client_connection_check_interval exists from PostgreSQL 14; older servers would reject
    // it in the startup packet, so it is set here where the version is known.
    let interval = check_interval
        .filter(|_| conn.server_version_num().unwrap_or(0) >= 140_000)
        .map(|d| d.as_millis().to_string())
        .unwrap_or_default();
    let pid: Option<i32> = if !interval.is_empty() || events.listening() {
        let (pid,): (i32,) = sqlx::query_as(
            "select pg_backend_pid(), \
             case when $1 <> '' then set_config('client_connection_check_interval', $1, false) end",
        )
        .bind(interval)
        .fetch_one(&mut *conn)
        .await?;
        Some(pid)
    } else {
        None
    };
    events.emit(PoolEventKind::Connect { backend_pid: pid });
    Ok(())
}

/// After connect through a pooler: behind a session pooler the session settings, as `SET`
/// (one simple query: a statement with arguments takes two round trips, which a transaction
/// pooler may serve from two server connections); behind a transaction pooler nothing, since
/// the next statement may run on another server connection (the settings go with every
/// transaction instead, and there is no one backend to name).
async fn after_connect_behind_pooler(
    conn: &mut PgConnection,
    config: PoolConfig,
    counters: Arc<Counters>,
    events: Arc<EventSink>,
) -> std::result::Result<(), sqlx::Error> {
    counters.opened.fetch_add(1, Relaxed);
    if config.pooler == Pooler::Session {
        let version = conn.server_version_num().unwrap_or(0);
        let sql = pooler::settings_sql(&config, version, false, true);
        if let Some(sql) = sql.strip_prefix("; ") {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&mut *conn)
                .await?;
        }
    }
    events.emit(PoolEventKind::Connect { backend_pid: None });
    Ok(())
}

fn before_acquire(
    conn: &mut PgConnection,
    meta: sqlx::pool::PoolConnectionMetadata,
    validation: Validation,
    window: Duration,
    counters: Arc<Counters>,
    events: Arc<EventSink>,
) -> BoxFuture<'_, std::result::Result<bool, sqlx::Error>> {
    let check_reused = ACQUIRE
        .try_with(|a| {
            a.reused.set(true);
            a.check_reused
        })
        .unwrap_or(false);
    let needed = match validation {
        Validation::Always => true,
        Validation::Never => false,
        Validation::Idle => meta.idle_for > window || check_reused || counters.suspicious(),
    };
    Box::pin(async move {
        if !needed {
            return Ok(true);
        }
        counters.validations.fetch_add(1, Relaxed);
        match conn.ping().await {
            Ok(()) => Ok(true),
            Err(e) => {
                counters.validation_failures.fetch_add(1, Relaxed);
                tracing::debug!(error = %e, "connection found dead before use; replacing it");
                events.emit(PoolEventKind::Close {
                    reason: CloseReason::ValidationFailed,
                });
                // Ok(false): sqlx closes it and hands out another or opens a new one.
                Ok(false)
            }
        }
    })
}

struct WaitingGuard<'a>(&'a Counters);

impl<'a> WaitingGuard<'a> {
    fn new(c: &'a Counters) -> Self {
        c.waiting.fetch_add(1, Relaxed);
        WaitingGuard(c)
    }
}

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Relaxed);
    }
}

/// A connection taken from a [`Pool`]. Goes back to the pool when dropped, or is closed if it
/// was marked for eviction.
pub struct PooledConn {
    conn: Option<PoolConnection<Postgres>>,
    pool: Arc<PoolShared>,
    since: Instant,
    leak_id: Option<u64>,
    evict: Option<CloseReason>,
    reused: bool,
    /// Times in a row this connection was handed straight on (see `handoff`).
    handoffs: u32,
    /// Set when the op using it ended well: it may be handed straight on.
    clean: bool,
    /// The multi-host generation it was acquired under (see `crate::hosts`).
    generation: u64,
}

impl std::fmt::Debug for PooledConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledConn")
            .field("pool", &self.pool.name)
            .field("held", &self.since.elapsed())
            .finish()
    }
}

impl PooledConn {
    /// Closes this connection instead of returning it to the pool (after a failure that leaves
    /// it unusable, or to stop a statement the client gave up on). Closing the socket makes the
    /// server abandon the statement (it notices within `client_connection_check_interval`).
    pub fn evict(&mut self, reason: CloseReason) {
        self.evict = Some(reason);
    }

    /// The op using this connection ended well: when callers are waiting, it may go
    /// straight to one of them instead of back through sqlx's pool.
    pub(crate) fn mark_clean(&mut self) {
        self.clean = true;
    }

    /// On a multi-host pool, this connection's host failed in a way that may be a failover
    /// (25006, a lost connection, a shutdown): the pool finds the host to use again, unless it
    /// moved since this connection was acquired. Says whether the pool is multi-host.
    pub(crate) fn suspect_host(&self, reason: &str) -> bool {
        match &self.pool.hosts {
            Some(hosts) => {
                hosts.suspect(self.generation, reason);
                true
            }
            None => false,
        }
    }

    /// Whether the connection was idle in the pool before (rather than newly opened).
    pub fn reused(&self) -> bool {
        self.reused
    }

    /// Marks the pool's idle connections as suspect after this one was found dead: for the
    /// next validation window every reused connection is pinged before use.
    pub(crate) fn suspect_siblings(&self) {
        let window = self
            .pool
            .config
            .validation_window
            .max(Duration::from_millis(500));
        self.pool.counters.suspect_idle(window);
    }

    /// When the pool handed this connection over (the reading its wait was measured with).
    pub(crate) fn acquired_at(&self) -> Instant {
        self.since
    }

    /// How long this connection has been held.
    pub fn held(&self) -> Duration {
        self.since.elapsed()
    }

    /// The pool it came from.
    pub fn pool_name(&self) -> &str {
        &self.pool.name
    }
}

impl Deref for PooledConn {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.conn.as_ref().expect("connection present until drop")
    }
}

impl DerefMut for PooledConn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("connection present until drop")
    }
}

impl AsMut<PgConnection> for PooledConn {
    fn as_mut(&mut self) -> &mut PgConnection {
        self
    }
}

impl Drop for PooledConn {
    fn drop(&mut self) {
        let held = self.since.elapsed();
        let p = &self.pool;
        p.counters.in_use.fetch_sub(1, Relaxed);
        p.counters.use_time.record(held);
        p.observer.released(held);
        if let (Some(id), Some(watch)) = (self.leak_id, &p.leaks) {
            watch.release(id);
        }
        p.events.emit(PoolEventKind::Release { held });
        let Some(conn) = self.conn.take() else {
            return;
        };
        if p.hosts
            .as_ref()
            .is_some_and(|h| h.generation() != self.generation)
        {
            // Acquired before the pool moved to another host: never used again.
            self.evict.get_or_insert(CloseReason::Failure);
        }
        if self.clean && self.evict.is_none() && self.handoffs < MAX_HANDOFFS && !p.closed() {
            let handed = Handed {
                conn,
                handoffs: self.handoffs + 1,
                generation: self.generation,
            };
            match p.handoff.give(handed) {
                Ok(()) => {
                    p.counters.handed_on.fetch_add(1, Relaxed);
                }
                Err(back) => release(p, back.conn, None),
            }
        } else {
            release(p, conn, self.evict);
        }
    }
}

/// Returns a connection to the pool, or closes it abruptly (dropping the socket) when evicted.
pub(crate) fn release(
    pool: &PoolShared,
    conn: PoolConnection<Postgres>,
    evict: Option<CloseReason>,
) {
    match evict {
        None => drop(conn),
        Some(reason) => {
            pool.counters.evicted.fetch_add(1, Relaxed);
            pool.events.emit(PoolEventKind::Close { reason });
            // Detach frees the pool slot at once; dropping the raw connection closes the
            // socket without waiting for the server to finish an abandoned statement.
            drop(conn.detach());
        }
    }
}
