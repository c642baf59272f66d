//! The hosts of one multi-host pool: which one the pool uses now, finding it by asking the
//! servers, and failing over when it stops suiting the target.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use rand::seq::SliceRandom;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::watch;
use tokio::time::Instant;

use super::parse::{HostAddr, HostList};
use crate::breaker::{BreakerConfig, BreakerPermit, BreakerState, CircuitBreaker};
use crate::error::{Error, Site};
use crate::host_target::{LoadBalance, Role, TargetSessionAttrs};
use crate::recovery::{Server, Servers};

/// The first pause between discovery rounds that found no suitable host; it doubles to
/// `ROUND_MAX`. A promotion takes a few hundred milliseconds: writers that wait gain from
/// finding the new primary quickly.
const ROUND_FIRST: Duration = Duration::from_millis(25);
const ROUND_MAX: Duration = Duration::from_millis(200);

/// How long an acquire waits before asking whether the host in use still answers, and how
/// often the pool asks while acquires wait.
pub(crate) const STALL_CHECK: Duration = Duration::from_millis(250);

/// What a host was when last asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HostRole {
    /// Not asked yet.
    Unknown,
    /// Not in recovery and accepting writes.
    Primary,
    /// In recovery (a streaming replica), or read-only.
    Standby,
    /// It did not answer the last time it was asked.
    Unreachable,
}

impl HostRole {
    const ALL: [HostRole; 4] = [
        Self::Unknown,
        Self::Primary,
        Self::Standby,
        Self::Unreachable,
    ];

    /// Its name in reports and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Primary => "primary",
            Self::Standby => "standby",
            Self::Unreachable => "unreachable",
        }
    }

    fn of(role: Role) -> Self {
        if role.in_recovery || role.read_only {
            Self::Standby
        } else {
            Self::Primary
        }
    }
}

/// One host of a multi-host pool, for the health report and metrics.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct HostStatus {
    /// The host's name or address (OpenTelemetry's `server.address`).
    pub address: String,
    /// Its port (`server.port`).
    pub port: u16,
    /// What it was when last asked.
    pub role: HostRole,
    /// The pool uses this host now.
    pub current: bool,
    /// Its health watch confirmed it unreachable, and no probe has reached it since.
    pub down: bool,
    /// Times discovery asked it.
    pub checks: u64,
    /// Times it did not answer.
    pub failed_checks: u64,
    /// Times the pool could not open a connection to it while it was the pool's host
    /// (refused, reset, no answer in time; not a server's refusal such as a wrong password):
    /// each counts against its breaker like a failed check.
    pub failed_connects: u64,
    /// Connections acquired from the pool while it was the pool's host.
    pub acquired: u64,
    /// The state of the host's own circuit breaker: open after failed checks and failed
    /// connects in a row (while open, discovery does not wait for the host unless no other
    /// host suits); half-open as soon as its health watch reaches it again, at the latest
    /// after the pool's `host_breaker_open_max`; closed by the next check it answers.
    #[serde(serialize_with = "state_name")]
    pub breaker: BreakerState,
    /// Why its last check or the pool's last connect to it failed (none once it answers).
    pub last_error: Option<String>,
}

fn state_name<S: serde::Serializer>(state: &BreakerState, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(state.as_str())
}

struct Member {
    addr: HostAddr,
    options: PgConnectOptions,
    server: Arc<Server>,
    breaker: Arc<CircuitBreaker>,
    role: AtomicU8,
    checks: AtomicU64,
    failed_checks: AtomicU64,
    failed_connects: AtomicU64,
    acquired: AtomicU64,
    /// Why its last check or the pool's last connect to it failed, without secrets; cleared
    /// when it answers.
    last_error: std::sync::Mutex<Option<String>>,
}

impl Member {
    /// The host did not answer (a check, or the pool's own connect): the failure goes to its
    /// breaker when `permit` is the breaker's leave, and its health watch probes it until it
    /// answers (its health in reports), half-opening the breaker then.
    fn unreachable(&self, permit: Option<BreakerPermit<'_>>, elapsed: Duration, error: &str) {
        if let Some(permit) = permit {
            permit.unreachable(elapsed);
        }
        self.role.store(HostRole::Unreachable as u8, Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.to_owned());
        self.server.report(Some(&self.breaker), error);
    }
}

/// The breaker of each host: failed checks (and failed connects) in a row that open it, and
/// the longest it stays open before one check is let through again (the pool's
/// `host_breaker_failures` and `host_breaker_open_max`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostBreaker {
    pub(crate) failures: u32,
    pub(crate) open_max: Duration,
}

/// A failover under way: since when, and the host the pool used before.
#[derive(Debug, Clone)]
struct Failover {
    since: Instant,
    since_wall: SystemTime,
    old: Option<usize>,
    reason: String,
}

/// The hosts of one pool and which one it uses.
pub(crate) struct Hosts {
    pool: Arc<str>,
    target: TargetSessionAttrs,
    balance: LoadBalance,
    members: Vec<Member>,
    check_timeout: Duration,
    /// The sqlx pool to point at the chosen host.
    sqlx: OnceLock<PgPool>,
    /// The host in use, `None` while none is known (before the first discovery, and during a
    /// failover).
    current: watch::Sender<Option<usize>>,
    /// Bumped each time the pool moves to another host: connections of an older generation are
    /// never used again.
    generation: AtomicU64,
    /// When the current generation began, in microseconds since `epoch`.
    switched_at_us: AtomicU64,
    epoch: Instant,
    failover: Mutex<Option<Failover>>,
    discovering: AtomicBool,
    failovers: AtomicU64,
    /// The last host used, for the error while there is none.
    last: AtomicU64,
    /// When `current_answers` last asked, in microseconds since `epoch`.
    checked_at_us: AtomicU64,
}

impl Hosts {
    /// The hosts of `list`, each with `settings` (the pool's session settings), its own
    /// health watch from `servers` and its own breaker, opened by `breaker.failures` failed
    /// checks or connects in a row: discovery then stops waiting for that host, which a dead
    /// former primary would otherwise cost every round the whole check timeout.
    pub(crate) fn new(
        pool: Arc<str>,
        list: &HostList,
        settings: impl Fn(PgConnectOptions) -> PgConnectOptions,
        servers: &Servers,
        check_timeout: Duration,
        breaker: HostBreaker,
    ) -> Arc<Hosts> {
        let members = list
            .hosts
            .iter()
            .map(|addr| {
                let options = settings(list.base.clone().host(&addr.host).port(addr.port));
                Member {
                    server: servers.watch(&options, check_timeout),
                    breaker: Arc::new(host_breaker(&pool, addr, breaker)),
                    addr: addr.clone(),
                    options,
                    role: AtomicU8::new(0),
                    checks: AtomicU64::new(0),
                    failed_checks: AtomicU64::new(0),
                    failed_connects: AtomicU64::new(0),
                    last_error: std::sync::Mutex::new(None),
                    acquired: AtomicU64::new(0),
                }
            })
            .collect();
        Arc::new(Hosts {
            pool,
            target: list.target,
            balance: list.balance,
            members,
            check_timeout,
            sqlx: OnceLock::new(),
            current: watch::Sender::new(None),
            generation: AtomicU64::new(0),
            switched_at_us: AtomicU64::new(0),
            epoch: Instant::now(),
            failover: Mutex::new(None),
            discovering: AtomicBool::new(false),
            failovers: AtomicU64::new(0),
            last: AtomicU64::new(0),
            checked_at_us: AtomicU64::new(0),
        })
    }

    /// The options of the first host: the sqlx pool is built with them, and moved as soon
    /// as discovery finds the host to use.
    pub(crate) fn first_options(&self) -> PgConnectOptions {
        self.members[0].options.clone()
    }

    /// Gives the hosts the sqlx pool to point.
    pub(crate) fn attach(&self, sqlx: PgPool) {
        let _ = self.sqlx.set(sqlx);
    }

    /// The current generation: a connection acquired under another one is closed on release.
    #[inline]
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Acquire)
    }

    /// Whether a connection `age` old was opened before the pool last moved to another host.
    #[inline]
    pub(crate) fn opened_before_switch(&self, age: Duration) -> bool {
        let switched = self.switched_at_us.load(Acquire);
        if switched == 0 {
            return false;
        }
        let now = u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        now.saturating_sub(u64::try_from(age.as_micros()).unwrap_or(u64::MAX)) <= switched
    }

    /// The health watch of the host in use (or last in use).
    pub(crate) fn server(&self) -> &Arc<Server> {
        let i = (*self.current.borrow()).unwrap_or_else(|| self.last.load(Relaxed) as usize);
        &self.members[i.min(self.members.len() - 1)].server
    }

    /// Failovers the pool went through (moves from one host to another after it began).
    pub(crate) fn failovers(&self) -> u64 {
        self.failovers.load(Relaxed)
    }

    /// A connection was handed out.
    pub(crate) fn acquired(&self) {
        if let Some(i) = *self.current.borrow() {
            self.members[i].acquired.fetch_add(1, Relaxed);
        }
    }

    /// Whether a freshly opened connection is on a server that suits the target; a wrong one
    /// also starts a re-discovery (the host moved under the pool).
    pub(crate) async fn suits(
        self: &Arc<Self>,
        conn: &mut PgConnection,
    ) -> Result<(), sqlx::Error> {
        if self.target == TargetSessionAttrs::Any {
            return Ok(());
        }
        let role = role_of(conn).await?;
        if self.target.accepts(role) || self.target == TargetSessionAttrs::PreferStandby {
            return Ok(());
        }
        let generation = self.generation();
        self.suspect(
            generation,
            "a new connection found the host no longer suits the target",
        );
        Err(sqlx::Error::Protocol(format!(
            "pool `{}`: the host is {} now, not {}; connecting to the host discovery finds",
            self.pool,
            HostRole::of(role).as_str(),
            self.target
        )))
    }

    /// The pool could not open a connection to the host it used under `generation` (refused,
    /// reset, no answer within `waited`): a failure on that host's breaker, as a failed check
    /// would be, so that a host that died between checks is not waited for by the next
    /// discovery round. Callers pass only connection-level failures, never a refusal from a
    /// live server (a wrong password, too many connections).
    pub(crate) fn connect_failed(&self, generation: u64, waited: Duration, error: &str) {
        if generation == 0 || generation != self.generation() {
            return;
        }
        // The host of this generation: the current one, or, once a failure was reported and
        // discovery runs, the one the pool used last.
        let i = (*self.current.borrow()).unwrap_or_else(|| self.last.load(Relaxed) as usize);
        let Some(m) = self.members.get(i) else {
            return;
        };
        m.failed_connects.fetch_add(1, Relaxed);
        m.unreachable(m.breaker.try_acquire().ok(), waited, error);
    }

    /// Asks the host in use (at most once per `STALL_CHECK` for the pool) whether it still
    /// answers as the target wants; when not, starts a re-discovery and returns `false`.
    /// For callers whose acquire has been waiting: a host that died with no op on it yet
    /// (idle connections, refused connects) is noticed here.
    pub(crate) async fn current_answers(self: &Arc<Self>, generation: u64) -> bool {
        let Some(i) = *self.current.borrow() else {
            return true;
        };
        if generation != self.generation() {
            return true;
        }
        let now = u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        let last = self.checked_at_us.load(Acquire);
        let every = u64::try_from(STALL_CHECK.as_micros()).unwrap_or(u64::MAX);
        if now.saturating_sub(last) < every
            || self
                .checked_at_us
                .compare_exchange(last, now, AcqRel, Acquire)
                .is_err()
        {
            return true;
        }
        // The host in use is asked whatever its breaker says (the outcome is recorded when the
        // breaker lets the check through).
        let permit = self.members[i].breaker.try_acquire().ok();
        let suits = self.check(i, permit).await.is_some_and(|role| {
            self.target.accepts(role) || self.target == TargetSessionAttrs::PreferStandby
        });
        if !suits {
            self.suspect(
                generation,
                "the host in use no longer answers as the target wants",
            );
        }
        suits
    }

    /// Waits until a host is in use, until `until` at the latest; starts a discovery when none
    /// is running. Past `until`, the error says a failover is under way (or that no host
    /// suits the target yet).
    pub(crate) async fn ready(self: &Arc<Self>, site: &Site, until: Instant) -> Result<(), Error> {
        if self.current.borrow().is_some() {
            return Ok(());
        }
        let started = Instant::now();
        self.start_discovery();
        let mut rx = self.current.subscribe();
        match tokio::time::timeout_at(until, rx.wait_for(Option::is_some)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(self.failover_error(site, started.elapsed())),
        }
    }

    /// An op found the host of generation `generation` failing in a way that may mean it is
    /// not the one to use any more (25006, a lost connection, a shutdown): unless the pool
    /// has moved since, stop handing out connections and find the host again.
    pub(crate) fn suspect(self: &Arc<Self>, generation: u64, reason: &str) {
        if generation != self.generation() {
            return;
        }
        let Some(old) = *self.current.borrow() else {
            return;
        };
        {
            let mut f = self.failover.lock().unwrap_or_else(|e| e.into_inner());
            if f.is_some() {
                return;
            }
            *f = Some(Failover {
                since: Instant::now(),
                since_wall: SystemTime::now(),
                old: Some(old),
                reason: crate::redact::redact(reason),
            });
        }
        self.last.store(old as u64, Relaxed);
        self.current.send_replace(None);
        tracing::warn!(
            pool = %self.pool,
            host = %self.members[old].addr,
            reason = %crate::redact::redact(reason),
            "the pool's host may have failed over; finding the host to use"
        );
        self.start_discovery();
    }

    /// Starts the discovery task unless one runs.
    fn start_discovery(self: &Arc<Self>) {
        if self.discovering.swap(true, AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.discovering.store(false, Relaxed);
            return;
        };
        runtime.spawn(discover(Arc::downgrade(self)));
    }

    /// Asks every host at once; the first, in the pool's order, that suits the target among
    /// those that answered. A host whose breaker is open is not asked and counts as not
    /// answering, unless no other host suits: then it is asked too, rather than finding none.
    async fn round(&self) -> Option<usize> {
        let mut order: Vec<usize> = (0..self.members.len()).collect();
        if self.balance == LoadBalance::Random {
            order.shuffle(&mut rand::rng());
        }
        let mut answers = vec![Answer::Waiting; order.len()];
        let mut asked = Vec::with_capacity(order.len());
        for (at, &i) in order.iter().enumerate() {
            match self.members[i].breaker.try_acquire() {
                Ok(permit) => asked.push((at, i, Some(permit))),
                Err(_) => answers[at] = Answer::Skipped,
            }
        }
        let found = self.ask(&order, &mut answers, asked).await;
        if found.is_some() {
            return found;
        }
        let skipped: Vec<_> = answers
            .iter()
            .enumerate()
            .filter(|(_, a)| matches!(a, Answer::Skipped))
            .map(|(at, _)| (at, order[at], None))
            .collect();
        if skipped.is_empty() {
            return None;
        }
        for &(at, _, _) in &skipped {
            answers[at] = Answer::Waiting;
        }
        self.ask(&order, &mut answers, skipped).await
    }

    /// Asks the hosts of `asked` (place in `order`, host, breaker permit) at once, and returns
    /// as soon as the choice is known: a host that suits, once every host before it in
    /// `order` has answered or is skipped. Checks of hosts after it are dropped unfinished.
    async fn ask<'a>(
        &'a self,
        order: &[usize],
        answers: &mut [Answer],
        asked: Vec<(usize, usize, Option<BreakerPermit<'a>>)>,
    ) -> Option<usize> {
        let mut pending: FuturesUnordered<_> = asked
            .into_iter()
            .map(|(at, i, permit)| async move { (at, self.check(i, permit).await) })
            .collect();
        loop {
            if let Some(choice) = pick(self.target, order, answers) {
                return choice;
            }
            let (at, role) = pending.next().await?;
            answers[at] = Answer::Got(role);
        }
    }

    /// Asks host `i` what it is, and records the outcome in its breaker when `permit` is
    /// the breaker's leave.
    async fn check(&self, i: usize, permit: Option<BreakerPermit<'_>>) -> Option<Role> {
        let m = &self.members[i];
        m.checks.fetch_add(1, Relaxed);
        let started = Instant::now();
        let ask = async {
            let mut conn = PgConnection::connect_with(&m.options).await?;
            let role = role_of(&mut conn).await;
            let _ = conn.close().await;
            role
        };
        let answer = match tokio::time::timeout(self.check_timeout, ask).await {
            Ok(Ok(role)) => Ok(role),
            Ok(Err(e)) => Err(crate::redact::redact(&e.to_string())),
            Err(_) => Err(format!("no answer within {:?}", self.check_timeout)),
        };
        match answer {
            Ok(role) => {
                match permit {
                    Some(permit) => permit.success(started.elapsed()),
                    // Asked past an open breaker, and it answered: the server is back.
                    None => {
                        m.breaker.server_answered();
                    }
                }
                m.role.store(HostRole::of(role) as u8, Relaxed);
                *m.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
                Some(role)
            }
            Err(error) => {
                m.failed_checks.fetch_add(1, Relaxed);
                m.unreachable(permit, started.elapsed(), &error);
                None
            }
        }
    }

    /// Moves the pool to host `i`.
    fn switch(&self, i: usize) {
        let failover = self
            .failover
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let previous = failover.as_ref().and_then(|f| f.old);
        if let Some(sqlx) = self.sqlx.get() {
            sqlx.set_connect_options(self.members[i].options.clone());
        }
        // Every connection opened before is closed, even when the same host was found again:
        // one name may point at another server now (a managed service's DNS name).
        let now = u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.switched_at_us.store(now.max(1), Release);
        self.generation.fetch_add(1, AcqRel);
        if let Some(f) = &failover
            && previous != Some(i)
        {
            self.failovers.fetch_add(1, Relaxed);
            tracing::warn!(
                pool = %self.pool,
                from = %f.old.map(|o| self.members[o].addr.to_string()).unwrap_or_default(),
                to = %self.members[i].addr,
                after_ms = f.since.elapsed().as_millis() as u64,
                "failover: the pool uses another host now"
            );
        }
        self.last.store(i as u64, Relaxed);
        self.current.send_replace(Some(i));
    }

    fn failover_error(&self, site: &Site, waited: Duration) -> Error {
        let f = self
            .failover
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let (since_wall, old, reason) = match f {
            Some(f) => (f.since_wall, f.old, f.reason),
            None => (SystemTime::now(), None, "not found yet".to_owned()),
        };
        Error::Failover {
            site: site.clone(),
            old_host: old.map(|o| self.members[o].addr.to_string().into()),
            hosts: self
                .members
                .iter()
                .map(|m| {
                    let error = m.last_error.lock().unwrap_or_else(|e| e.into_inner());
                    match error.as_ref() {
                        Some(e) => format!("{} (last failure: {e})", m.addr),
                        None => m.addr.to_string(),
                    }
                })
                .collect(),
            target: self.target,
            since: since_wall,
            waited,
            reason: reason.into(),
        }
    }

    /// Every host, in the order written.
    pub(crate) fn status(&self) -> Vec<HostStatus> {
        let current = *self.current.borrow();
        self.members
            .iter()
            .enumerate()
            .map(|(i, m)| HostStatus {
                address: m.addr.host.clone(),
                port: m.addr.port,
                role: HostRole::ALL[usize::from(m.role.load(Relaxed)).min(3)],
                current: current == Some(i),
                down: m.server.is_down(),
                checks: m.checks.load(Relaxed),
                failed_checks: m.failed_checks.load(Relaxed),
                failed_connects: m.failed_connects.load(Relaxed),
                acquired: m.acquired.load(Relaxed),
                breaker: m.breaker.state(),
                last_error: m
                    .last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
            })
            .collect()
    }
}

/// What a discovery round knows of one host.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// Asked, no answer yet.
    Waiting,
    /// Not asked: its breaker is open.
    Skipped,
    /// Its role, or `None` when it did not answer.
    Got(Option<Role>),
}

/// The round's choice once it is known (`None` while a host before every suitable one
/// may still answer): the first host in `order` that answered and suits the target; for
/// `prefer-standby`, when no standby answered, the first that answered at all.
fn pick(target: TargetSessionAttrs, order: &[usize], answers: &[Answer]) -> Option<Option<usize>> {
    for (at, answer) in answers.iter().enumerate() {
        match answer {
            Answer::Waiting => return None,
            Answer::Got(Some(role)) if target.accepts(*role) => {
                return Some(Some(order[at]));
            }
            _ => {}
        }
    }
    // prefer-standby: any server that answers, when no standby does.
    let any = (target == TargetSessionAttrs::PreferStandby)
        .then(|| {
            answers
                .iter()
                .position(|a| matches!(a, Answer::Got(Some(_))))
        })
        .flatten();
    Some(any.map(|at| order[at]))
}

/// The breaker of one host of pool `pool`: opened by `breaker.failures` failures in a row,
/// recovering when the host's health watch reaches it (failures are recorded as unreachable),
/// and letting one check through after `breaker.open_max` at the latest.
fn host_breaker(pool: &str, addr: &HostAddr, breaker: HostBreaker) -> CircuitBreaker {
    let config = BreakerConfig {
        consecutive_failures: Some(breaker.failures),
        open_for: breaker.open_max,
        half_open: 1,
        ..BreakerConfig::default()
    };
    CircuitBreaker::new(format!("{pool} host {addr}"), config)
}

/// Discovery rounds until a host suits the target (or the pool is gone).
async fn discover(hosts: Weak<Hosts>) {
    let mut pause = ROUND_FIRST;
    loop {
        let Some(h) = hosts.upgrade() else {
            return;
        };
        if h.sqlx.get().is_some_and(PgPool::is_closed) {
            h.discovering.store(false, Relaxed);
            return;
        }
        if let Some(i) = h.round().await {
            h.switch(i);
            h.discovering.store(false, Release);
            // A failure reported between the switch and now found no discovery running to
            // start: look again.
            if h.current.borrow().is_none() {
                h.start_discovery();
            }
            return;
        }
        drop(h);
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(ROUND_MAX);
    }
}

async fn role_of(conn: &mut PgConnection) -> Result<Role, sqlx::Error> {
    // A simple query: no prepared statement, so it works through a transaction pooler.
    let row = sqlx::raw_sql(
        "select pg_is_in_recovery(), current_setting('transaction_read_only') = 'on'",
    )
    .fetch_one(conn)
    .await?;
    let (in_recovery, read_only): (bool, bool) =
        (sqlx::Row::try_get(&row, 0)?, sqlx::Row::try_get(&row, 1)?);
    Ok(Role {
        in_recovery,
        read_only,
    })
}

#[cfg(test)]
mod tests {
    use super::{Answer, pick};
    use crate::host_target::{Role, TargetSessionAttrs};

    const PRIMARY: Answer = Answer::Got(Some(Role {
        in_recovery: false,
        read_only: false,
    }));
    const STANDBY: Answer = Answer::Got(Some(Role {
        in_recovery: true,
        read_only: true,
    }));
    const SILENT: Answer = Answer::Got(None);

    #[test]
    fn the_first_suitable_host_in_order_wins_once_every_host_before_it_is_settled() {
        let rw = TargetSessionAttrs::ReadWrite;
        let order = [2, 0, 1];
        // A host before the primary may still answer: not known yet.
        assert_eq!(pick(rw, &order, &[Answer::Waiting, PRIMARY, PRIMARY]), None);
        // Hosts after it are not waited for.
        assert_eq!(
            pick(rw, &order, &[PRIMARY, Answer::Waiting, Answer::Waiting]),
            Some(Some(2))
        );
        // A silent host, a standby and a skipped one (open breaker) do not suit.
        assert_eq!(pick(rw, &order, &[SILENT, STANDBY, PRIMARY]), Some(Some(1)));
        assert_eq!(
            pick(rw, &order, &[Answer::Skipped, PRIMARY, Answer::Waiting]),
            Some(Some(0))
        );
        assert_eq!(
            pick(rw, &order, &[Answer::Skipped, STANDBY, SILENT]),
            Some(None)
        );
    }

    #[test]
    fn prefer_standby_takes_any_answering_host_only_once_all_are_settled() {
        let prefer = TargetSessionAttrs::PreferStandby;
        let order = [0, 1, 2];
        assert_eq!(
            pick(prefer, &order, &[PRIMARY, STANDBY, Answer::Waiting]),
            Some(Some(1))
        );
        assert_eq!(
            pick(prefer, &order, &[PRIMARY, SILENT, Answer::Waiting]),
            None
        );
        assert_eq!(
            pick(prefer, &order, &[SILENT, PRIMARY, Answer::Skipped]),
            Some(Some(1))
        );
        assert_eq!(
            pick(prefer, &order, &[Answer::Skipped, SILENT, SILENT]),
            Some(None)
        );
    }
}
