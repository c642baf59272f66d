//! The runner: the retry loop around attempts, and the order of policies within an attempt.
//!
//! Retry wraps each attempt; an attempt goes limiter -> breaker -> bulkhead -> pool acquire
//! -> timeout -> body. An open breaker ends retrying at once; limiter and bulkhead rejections
//! are returned at once too (retrying a shed call is what turns overload into a storm), and
//! never count against the breaker. The deadline covers the whole call: limiter and bulkhead
//! waits, acquiring, every attempt and every retry delay; no retry sleeps past it.
//!
//! Nothing here depends on the body's types: the runner sees the body as a `dyn Body`, which
//! keeps the body's value or error itself, so the runner is compiled once and each op adds
//! only its body and a small adapter to the application's build.

use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;

use super::attempt::{self, Body, Ended, Kept, Phase};
use super::host::{Host, InFlight};
use super::resolve::Resolved;
use crate::breaker::{BreakerPermit, BreakerRejected, CircuitBreaker, Recovery};
use crate::bulkhead::BulkheadSlot;
use crate::classify::{Classification, FailureKind, Reach, classify};
use crate::error::{Error, Site};
use crate::faults::Injected;
use crate::pool::replica::Lease;
use crate::pool::{CloseReason, Holder, PooledConn};
use crate::recovery::WaitEnd;
use crate::retry::{RetryDecision, RetryState, StopReason};

/// What the runner decided about a failed attempt.
#[derive(Debug, Clone, Copy)]
struct Verdict {
    kind: FailureKind,
    /// Safe and worth running again, if a retry policy agrees.
    rerun: bool,
    /// A reused connection turned out dead and the op may run again: replace it and run once
    /// more, outside any retry policy (a connection that died idle is never the caller's
    /// failure).
    replace: bool,
    /// It failed on a read replica in a way a read on the primary would not: run it again
    /// on the primary, outside any retry policy (see `crate::replica`).
    reroute: bool,
}

impl Verdict {
    fn final_(kind: FailureKind) -> Self {
        Verdict {
            kind,
            rerun: false,
            replace: false,
            reroute: false,
        }
    }
}

/// What to do after a failed attempt.
enum Next {
    Retry(Duration),
    Replace,
    Reroute,
    Stop,
    Deadline,
}

/// Runs an op and hands back what its body kept: the value when the call succeeded, else
/// the error (the body's own, or the runner's converted to the body's error type).
pub(crate) async fn execute<'env, B, T, E>(
    rt: &dyn Host,
    op: &Resolved,
    key: Option<&str>,
    mut body: Kept<'env, B, T, E>,
) -> Result<T, E>
where
    Kept<'env, B, T, E>: Body<'env>,
    E: From<Error>,
{
    let ok = execute_erased(rt, op, key, &mut body).await;
    body.finish(ok)
}

/// Runs an op inside the span its observer gives, and reports its duration and outcome to the
/// observer when it ends (see `crate::observer`); true when it succeeded.
pub(crate) async fn execute_erased<'env>(
    rt: &dyn Host,
    op: &Resolved,
    key: Option<&str>,
    body: &mut dyn Body<'env>,
) -> bool {
    // An open breaker turns the call away before anything is set up, when it comes first in
    // the order (no rate limiter) and nobody listens for the op's span: no span, no clock of
    // the call's own; the outcome is still counted. Otherwise the attempt decides, below.
    if op.limiter.is_none()
        && let Some(breaker) = &op.breaker
        && !op.observer.span_wanted()
        && !rt.is_shutting_down()
        && let Some(r) = breaker.rejects_now()
    {
        let error = Error::BreakerOpen {
            site: op.site(),
            breaker: breaker.name().clone(),
            retry_after: r.retry_after,
        };
        op.observer.turned_away(&error);
        op.observer
            .attempt_failed(1, FailureKind::BreakerOpen, false, Some(&error));
        body.fail(error);
        return false;
    }
    let span = op.observer.call_started();
    // One reading of the clock for the call's start, shared by the observer and the deadline;
    // real time: durations are measured, not scheduled, so tokio's (pausable) clock is not used.
    let clock = std::time::Instant::now();
    let started = Instant::from_std(clock);
    // Boxed: the attempts' state (every policy's wait, the pool's acquire) is tens of
    // kilobytes, which every call's future would otherwise carry inline and move, the calls
    // turned away above included; one allocation beside a round trip to the server is noise.
    let (ok, attempts) = Box::pin(execute_inner(rt, op, key, body, started))
        .instrument(span.clone())
        .await;
    let elapsed = clock.elapsed();
    let failure = (!ok).then(|| body.db_error().map(|e| &*e));
    op.observer.call_finished(&span, elapsed, attempts, failure);
    span.in_scope(|| finished(op, elapsed, attempts));
    ok
}

/// Runs an op: attempts, retries, deadline.
async fn execute_inner<'env>(
    rt: &dyn Host,
    op: &Resolved,
    key: Option<&str>,
    body: &mut dyn Body<'env>,
    started: Instant,
) -> (bool, u32) {
    let _in_flight = match InFlight::enter(rt, || op.site()) {
        Ok(guard) => guard,
        Err(e) => {
            body.fail(e);
            return (false, 0);
        }
    };
    let deadline = op.spec.deadline.map(|d| started + d);
    let mut retry = op.retry.as_deref().map(|r| r.start());
    let mut attempts = 0u32;
    let mut replaced = false;
    let mut on_primary = false;
    let ok = loop {
        attempts += 1;
        let flags = Flags {
            after_dead_conn: replaced,
            on_primary,
        };
        // The first attempt's policies judge it as of the call's start, a reading taken a
        // moment ago; a later attempt's read the clock themselves. The reading is real time,
        // as the deadline's is: with tokio's clock paused (test-util), an op's limiter judges
        // its first attempt in real time, where a limiter used on its own follows the paused
        // clock.
        let at = (attempts == 1).then_some(started);
        let verdict = match attempt_once(op, key, body, attempts, at, deadline, flags).await {
            Ok(()) => break true,
            Err(verdict) => verdict,
        };
        op.observer.attempt_failed(
            attempts,
            verdict.kind,
            verdict.rerun,
            body.db_error().map(|e| &*e),
        );
        match next(
            op, &mut retry, verdict, replaced, attempts, started, deadline,
        ) {
            Next::Replace => replaced = true,
            Next::Reroute => on_primary = true,
            Next::Retry(delay) => tokio::time::sleep(delay).await,
            Next::Stop => break false,
            Next::Deadline => {
                let last = body.db_error().map(take_error);
                body.fail(deadline_exceeded(op, attempts, last));
                break false;
            }
        }
    };
    (ok, attempts)
}

/// Decides after a failed attempt.
fn next(
    op: &Resolved,
    retry: &mut Option<RetryState<'_>>,
    verdict: Verdict,
    replaced: bool,
    attempts: u32,
    started: Instant,
    deadline: Option<Instant>,
) -> Next {
    if verdict.reroute {
        return Next::Reroute;
    }
    if verdict.replace && !replaced {
        tracing::debug!(
            op = op.spec.name,
            pool = op.pool.name(),
            "connection died while idle; running again on a checked connection"
        );
        return Next::Replace;
    }
    let Some(state) = retry.as_mut().filter(|_| verdict.rerun) else {
        return Next::Stop;
    };
    match state.next_delay(verdict.kind, started.elapsed(), remaining(deadline)) {
        RetryDecision::RetryAfter(delay) => {
            tracing::debug!(
                op = op.spec.name,
                pool = op.pool.name(),
                attempt = attempts,
                kind = verdict.kind.as_str(),
                delay_ms = delay.as_millis() as u64,
                "attempt failed; retrying"
            );
            Next::Retry(delay)
        }
        RetryDecision::Stop(StopReason::DeadlineTooClose { .. }) => Next::Deadline,
        RetryDecision::Stop(reason) => {
            tracing::debug!(
                op = op.spec.name,
                attempt = attempts,
                kind = verdict.kind.as_str(),
                reason = ?reason,
                "not retrying"
            );
            Next::Stop
        }
    }
}

/// After the call: the slow-op warning.
fn finished(op: &Resolved, elapsed: Duration, attempts: u32) {
    if let Some(slow) = op.spec.slow
        && elapsed >= slow
    {
        tracing::warn!(
            op = op.spec.name,
            pool = op.pool.name(),
            elapsed_ms = elapsed.as_millis() as u64,
            slow_ms = slow.as_millis() as u64,
            attempts,
            "slow op: took {elapsed:?}, over its slow threshold of {slow:?}"
        );
    }
}

fn remaining(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

fn take_error(e: &mut Error) -> Error {
    std::mem::replace(
        e,
        Error::Op {
            site: Site::default(),
            message: String::new(),
        },
    )
}

/// Records an attempt's outcome on its breaker permit; `now` is when the attempt ended. A
/// failure that says the server is unreachable is also reported to the server's watch, after
/// the breaker recorded it (so a breaker it opens is half-opened when a probe reaches the
/// server: see `crate::recovery`).
fn record(
    op: &Resolved,
    permit: Option<BreakerPermit<'_>>,
    c: Option<&Classification>,
    error: Option<&Error>,
    elapsed: Duration,
    now: Instant,
) {
    let unreachable = c.is_some_and(|c| c.kind.means_unreachable());
    if let Some(permit) = permit {
        match c {
            None => permit.success_at(elapsed, now),
            Some(_) if unreachable => permit.unreachable_at(elapsed, now),
            Some(c) if c.counts_for_breaker => permit.failure_at(elapsed, now),
            // Backpressure and our own rejections say nothing about the database's health.
            Some(c) if matches!(c.kind, FailureKind::Backpressure | FailureKind::Rejected) => {
                permit.ignore()
            }
            // The database answered (a constraint, no row, a syntax error): it is healthy.
            Some(_) => permit.success_at(elapsed, now),
        }
    }
    if unreachable {
        let text = match (error, c) {
            (Some(e), _) => e.to_string(),
            (None, Some(c)) => c.kind.to_string(),
            (None, None) => String::new(),
        };
        op.pool.server().report(op.breaker.as_ref(), &text);
    }
}

/// How an attempt is to run, from what earlier attempts found.
#[derive(Debug, Clone, Copy)]
struct Flags {
    /// A reused connection died: take a checked one.
    after_dead_conn: bool,
    /// A replica failed the op: run it on the primary.
    on_primary: bool,
}

/// One attempt; the verdict when it failed (its error is kept by the body). `at` is a reading
/// of the clock taken as the attempt started, if the caller has one.
async fn attempt_once<'env>(
    op: &Resolved,
    key: Option<&str>,
    body: &mut dyn Body<'env>,
    attempt: u32,
    at: Option<Instant>,
    deadline: Option<Instant>,
    flags: Flags,
) -> Result<(), Verdict> {
    let is_tx = body.is_tx();
    // An op that may write and cannot run again gets a checked connection: a connection that
    // died while idle must fail before its body runs, not in the middle.
    let check_reused = (!op.spec.safe_to_rerun() && !is_tx) || flags.after_dead_conn;
    let start = Start {
        at,
        deadline,
        check_reused,
        on_primary: flags.on_primary,
    };
    let ready = match prepare(op, key, attempt, start).await {
        Ok(ready) => ready,
        Err((error, verdict)) => {
            body.fail(error);
            return Err(verdict);
        }
    };
    let Ready {
        permit,
        slot,
        conn,
        until,
        started,
        replica,
    } = ready;
    let (ended, mut conn) = run_body(op, body, conn, until).await;
    let now = Instant::now();
    let elapsed = now.saturating_duration_since(started);
    drop(slot);
    if let (Some(lease), Ended::Failed(_)) = (&replica, ended)
        && let Some(db) = body.db_error()
        && crate::pool::replica::reroutable(db)
    {
        lease.failed(db);
        let c = verdict(db);
        if c.evict || c.kind.means_unreachable() {
            conn.evict(CloseReason::Failure);
        }
        drop(conn);
        drop(permit);
        return Err(Verdict {
            reroute: true,
            ..Verdict::final_(c.kind)
        });
    }
    let at = AttemptEnd {
        op,
        permit,
        conn,
        phase: Phase::Body,
        attempt,
        is_tx,
        elapsed,
        now,
    };
    match ended {
        Ended::Ok => {
            let AttemptEnd {
                permit, mut conn, ..
            } = at;
            conn.mark_clean();
            record(op, permit, None, None, elapsed, now);
            if op.pool.replicas().is_some() {
                crate::pool::replica::succeeded(&op.replica_call(), replica.as_ref(), &mut conn)
                    .await;
            }
            drop(conn);
            drop(replica);
            Ok(())
        }
        Ended::TimedOut(phase) => {
            let (error, verdict) = timed_out(AttemptEnd { phase, ..at }, deadline, until);
            body.fail(error);
            Err(verdict)
        }
        Ended::Failed(phase) => Err(failed(AttemptEnd { phase, ..at }, body.db_error())),
    }
}

/// Runs the body, or the fault injected in its place (`crate::faults`).
async fn run_body<'env>(
    op: &Resolved,
    body: &mut dyn Body<'env>,
    mut conn: PooledConn,
    until: Option<Instant>,
) -> (Ended, PooledConn) {
    let Some(fault) = op
        .faults
        .as_ref()
        .and_then(|f| f.pick(&op.name, op.pool.name()))
    else {
        return attempt::run(body, op, conn, until).await;
    };
    match crate::faults::apply(&fault, &mut conn, until).await {
        Injected::Proceed => attempt::run(body, op, conn, until).await,
        // As a body's `?` would convert it.
        Injected::Failed(e) => {
            body.fail(Error::from(e));
            (Ended::Failed(Phase::Body), conn)
        }
        Injected::TimedOut => (Ended::TimedOut(Phase::Body), conn),
    }
}

/// What an attempt holds while its body runs.
struct Ready<'a> {
    permit: Option<BreakerPermit<'a>>,
    slot: Option<BulkheadSlot<'a>>,
    conn: PooledConn,
    until: Option<Instant>,
    /// When the body starts.
    started: Instant,
    /// The replica it runs on, if any.
    replica: Option<Lease>,
}

/// How an attempt starts.
#[derive(Debug, Clone, Copy)]
struct Start {
    /// A reading of the clock as the attempt started, if the caller has one.
    at: Option<Instant>,
    deadline: Option<Instant>,
    /// Ping a reused connection before the body runs.
    check_reused: bool,
    /// Take the connection from the primary, not a replica.
    on_primary: bool,
}

/// The policies before the body: limiter, breaker, bulkhead, pool acquire, and the attempt's
/// time limit.
async fn prepare<'a>(
    op: &'a Resolved,
    key: Option<&str>,
    attempt: u32,
    start: Start,
) -> Result<Ready<'a>, (Error, Verdict)> {
    let spec = &op.spec;
    let pool = &op.pool;
    let Start {
        at,
        deadline,
        check_reused,
        on_primary,
    } = start;

    // 1. Rate limiter: waits (when configured to) only within the deadline; judges the call
    //    as of the attempt's start when there is a reading of it.
    if let Some(limiter) = &op.limiter {
        let permitted = match at {
            Some(now) => limiter.acquire_at(key, deadline, now).await,
            None => limiter.acquire(key, deadline).await,
        };
        if let Err(r) = permitted {
            let error = Error::RateLimited {
                site: op.site(),
                limiter: limiter.name().clone(),
                retry_after: Some(r.retry_after),
            };
            return Err((error, Verdict::final_(FailureKind::Rejected)));
        }
    }

    // 2. Circuit breaker: an open breaker ends the call, retries included; one open because
    //    the server was unreachable lets the call wait for the server, within its limits.
    let permit = match &op.breaker {
        Some(breaker) => match breaker_permit(op, breaker, deadline).await {
            Ok(p) => Some(p),
            Err(error) => {
                let kind = error.kind();
                return Err((error, Verdict::final_(kind)));
            }
        },
        None => None,
    };

    // 3. Bulkhead: a full one sheds the call; the breaker does not hear of it.
    let slot = match &op.bulkhead {
        Some(bulkhead) => match bulkhead.acquire_slot(deadline).await {
            Ok(slot) => Some(slot),
            Err(r) => {
                drop(permit);
                let error = Error::BulkheadFull {
                    site: op.site(),
                    bulkhead: bulkhead.name().clone(),
                    max_concurrent: r.max_concurrent,
                    max_queue: r.max_queue,
                };
                return Err((error, Verdict::final_(FailureKind::Rejected)));
            }
        },
        None => None,
    };

    // 4. Pool acquire, within the pool's acquire timeout and the call's deadline.
    let acquire_limit = match remaining(deadline) {
        Some(left) if left.is_zero() => {
            drop(permit);
            let error = deadline_exceeded(op, attempt, None);
            return Err((error, Verdict::final_(FailureKind::Deadline)));
        }
        Some(left) => left.min(pool.config().acquire_timeout),
        None => pool.config().acquire_timeout,
    };
    let holder = Holder {
        op: Some(op.name.clone()),
        location: Some(spec.location),
    };
    // A read-only op of a pool with replicas: a replica within its lag limit, if one can
    // give a connection in half the time; else the primary, below.
    let routed = if on_primary || op.pool.replicas().is_none() {
        None
    } else {
        on_replica(op, acquire_limit, deadline, &holder).await
    };
    let (replica, conn) = match routed {
        Some((lease, conn)) => (Some(lease), Some(conn)),
        None => (None, None),
    };
    let conn = match conn {
        Some(conn) => Ok(conn),
        None => {
            pool.acquire_for(
                &op.site_cached,
                acquire_limit,
                deadline,
                check_reused,
                holder,
            )
            .await
        }
    };
    let conn = match conn {
        Ok(c) => c,
        Err(e) => {
            let c = verdict(&e);
            record(
                op,
                permit,
                Some(&c),
                Some(&e),
                Duration::ZERO,
                Instant::now(),
            );
            let deadline_hit = remaining(deadline).is_some_and(|l| l.is_zero());
            if deadline_hit && matches!(e, Error::AcquireTimeout { .. }) {
                let error = deadline_exceeded(op, attempt, Some(e));
                return Err((error, Verdict::final_(FailureKind::Deadline)));
            }
            let verdict = Verdict {
                kind: c.kind,
                rerun: c.transient,
                replace: false,
                reroute: false,
            };
            return Err((e, verdict));
        }
    };

    // 5. The attempt's time limit: its timeout, cut short by the deadline, from when the pool
    //    handed the connection over (the pool's own reading: nothing waits in between).
    let started = conn.acquired_at();
    let until = match (spec.timeout, deadline) {
        (Some(t), Some(d)) => Some((started + t).min(d)),
        (Some(t), None) => Some(started + t),
        (None, d) => d,
    };
    Ok(Ready {
        permit,
        slot,
        conn,
        until,
        started,
        replica,
    })
}

/// A connection to a replica for `op`, when [`crate::pool::replica::route`] names one and it
/// gives a connection within half of `limit`; a replica that cannot is marked down and the
/// op goes to the primary.
async fn on_replica(
    op: &Resolved,
    limit: Duration,
    deadline: Option<Instant>,
    holder: &Holder,
) -> Option<(Lease, PooledConn)> {
    let lease = crate::pool::replica::route(&op.replica_call(), deadline).await?;
    let acquired = lease
        .pool()
        .acquire_for(&op.site_cached, limit / 2, deadline, false, holder.clone())
        .await;
    match acquired {
        Ok(conn) => Some((lease, conn)),
        Err(e) => {
            lease.failed(&e);
            None
        }
    }
}

/// A permit from the op's breaker. While the breaker is open (or half-open on its way back)
/// because the server was unreachable, the call waits for the server to answer a probe,
/// within its deadline, its pool's `acquire_timeout` and `outage_wait`, and if fewer than
/// `outage_waiters` callers already wait; otherwise it fails at once with
/// `Error::Unavailable`. A breaker opened by the ops' own failures rejects at once with
/// `Error::BreakerOpen`.
async fn breaker_permit<'a>(
    op: &Resolved,
    breaker: &'a CircuitBreaker,
    deadline: Option<Instant>,
) -> Result<BreakerPermit<'a>, Error> {
    match breaker.try_acquire() {
        Ok(permit) => return Ok(permit),
        Err(r) if r.recovery == Some(Recovery::ServerProbe) => {}
        Err(r) => return Err(breaker_open(op, breaker, r)),
    }
    let server = op.pool.server();
    let pool = op.pool.config();
    let started = Instant::now();
    let unavailable = |end: WaitEnd| {
        server.unavailable(
            &op.site_cached,
            started.elapsed(),
            end,
            Some(breaker.name().clone()),
        )
    };
    let own = started + pool.acquire_timeout;
    let own = deadline.map_or(own, |d| d.min(own));
    let Some(_ticket) = server.ticket(pool.max_outage_waiters()) else {
        return Err(unavailable(WaitEnd::TooManyWaiting));
    };
    let mut until = match server.wait_limit(own, pool.outage_wait) {
        Ok(until) => until,
        // Before failing fast, the next probe's word: if the server is back, the breaker is
        // half-open now, and the call waits for its half-open call within its own limits.
        Err(WaitEnd::OutageTooOld) if server.fresh_verdict(own).await => own,
        Err(end) => return Err(unavailable(end)),
    };
    loop {
        let changed = breaker.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        match breaker.try_acquire_again() {
            Ok(permit) => return Ok(permit),
            Err(r) if r.recovery == Some(Recovery::ServerProbe) => {}
            Err(r) => return Err(breaker_open(op, breaker, r)),
        }
        if tokio::time::timeout_at(until, changed).await.is_err() {
            // The outage grew too old while this call waited: the next probe's word first.
            if until < own && server.fresh_verdict(own).await {
                until = own;
                continue;
            }
            return Err(unavailable(WaitEnd::WaitedOut));
        }
    }
}

fn breaker_open(op: &Resolved, breaker: &CircuitBreaker, r: BreakerRejected) -> Error {
    Error::BreakerOpen {
        site: op.site(),
        breaker: breaker.name().clone(),
        retry_after: r.retry_after,
    }
}

/// How an attempt's body ended, for judging it.
struct AttemptEnd<'a> {
    op: &'a Resolved,
    permit: Option<BreakerPermit<'a>>,
    conn: PooledConn,
    phase: Phase,
    attempt: u32,
    is_tx: bool,
    elapsed: Duration,
    /// When the body ended.
    now: Instant,
}

/// The attempt ran out of time.
fn timed_out(
    at: AttemptEnd<'_>,
    deadline: Option<Instant>,
    until: Option<Instant>,
) -> (Error, Verdict) {
    let AttemptEnd {
        op,
        permit,
        mut conn,
        phase,
        attempt,
        is_tx,
        elapsed,
        now,
    } = at;
    // Closing the socket is what stops the statement on the server.
    conn.evict(CloseReason::Timeout);
    drop(conn);
    let c = Classification::of_kind(FailureKind::Deadline, None, Reach::Unknown);
    record(op, permit, Some(&c), None, elapsed, now);
    let by_deadline = deadline.is_some_and(|d| until == Some(d));
    // Whether what the attempt ran may have been applied in part or in whole: a plain body that
    // may write was cut off while running (the runtime cannot see which of its statements had
    // reached the server), or a transaction's COMMIT had been sent. A transaction cut off
    // before COMMIT is rolled back; nothing ran before BEGIN answered.
    let safe = op.spec.safe_to_rerun();
    let maybe_applied = !safe
        && match phase {
            Phase::Begin => false,
            Phase::Body => !is_tx,
            Phase::Commit => true,
        };
    let (error, rerun) = match op.spec.timeout {
        Some(timeout) if !by_deadline => {
            let rerun = match phase {
                Phase::Begin => true,
                Phase::Body => safe || is_tx,
                Phase::Commit => safe,
            };
            let error = Error::Timeout {
                site: op.site(),
                timeout,
                attempt,
            };
            (error, rerun)
        }
        _ => (deadline_exceeded(op, attempt, None), false),
    };
    if maybe_applied {
        let error = Error::UnknownOutcome {
            site: op.site(),
            source: Box::new(error),
        };
        return (error, Verdict::final_(FailureKind::UnknownOutcome));
    }
    let verdict = Verdict {
        kind: FailureKind::Deadline,
        rerun,
        replace: false,
        reroute: false,
    };
    (error, verdict)
}

/// The body (or its transaction's begin or commit) failed.
fn failed(at: AttemptEnd<'_>, db: Option<&mut Error>) -> Verdict {
    let AttemptEnd {
        op,
        permit,
        mut conn,
        phase,
        attempt,
        is_tx,
        elapsed,
        now,
    } = at;
    let Some(db) = db else {
        // The application's own outcome: returned as it is, never retried, the breaker does
        // not count it, and it is reported as what it is.
        drop(permit);
        return Verdict::final_(FailureKind::Application);
    };
    let spec = &op.spec;
    let c = verdict(db);
    record(op, permit, Some(&c), Some(db), elapsed, now);
    let safe = match (c.reach, phase) {
        (Reach::NotSent, _) | (_, Phase::Begin) => true,
        (Reach::Rejected, _) => spec.safe_to_rerun() || is_tx,
        (Reach::Unknown, Phase::Body) => spec.safe_to_rerun() || is_tx,
        (Reach::Unknown, Phase::Commit) => spec.safe_to_rerun(),
    };
    let dead = matches!(
        c.kind,
        FailureKind::ConnectionLost | FailureKind::ServerShutdown
    );
    // On a multi-host pool these may be a failover: the pool finds its host again, and a
    // body that is safe to run again runs once more there (waiting for it within the deadline).
    let moved = (dead || c.kind == FailureKind::Failover) && conn.suspect_host(&db.to_string());
    let replace = (dead && conn.reused() || moved) && safe;
    if dead {
        conn.suspect_siblings();
    }
    if c.evict {
        conn.evict(CloseReason::Failure);
    }
    drop(conn);
    let site = op.site();
    *db = match take_error(db) {
        Error::Database { source, kind, .. } if !safe && c.reach == Reach::Unknown => {
            Error::UnknownOutcome {
                site: site.clone(),
                source: Box::new(Error::Database {
                    site,
                    kind,
                    attempts: attempt,
                    source,
                }),
            }
        }
        Error::Database { source, kind, .. } => Error::Database {
            site,
            kind,
            attempts: attempt,
            source,
        },
        other => other.with_site(&site),
    };
    Verdict {
        kind: c.kind,
        rerun: safe && c.transient_for_retry(),
        replace,
        reroute: false,
    }
}

fn deadline_exceeded(op: &Resolved, attempts: u32, last: Option<Error>) -> Error {
    Error::DeadlineExceeded {
        site: op.site(),
        deadline: op.spec.deadline.unwrap_or_default(),
        attempts,
        last: last.map(Box::new),
    }
}

/// The verdict on one of our errors.
pub(crate) fn verdict(error: &Error) -> Classification {
    match error {
        Error::Database { source, .. } | Error::Connect { source, .. } => classify(source),
        Error::AcquireTimeout { unreachable, .. } => Classification::of_kind(
            if *unreachable {
                FailureKind::ConnectionLost
            } else {
                FailureKind::Backpressure
            },
            None,
            Reach::NotSent,
        ),
        Error::Timeout { .. } => {
            Classification::of_kind(FailureKind::Deadline, None, Reach::Unknown)
        }
        other => {
            let mut c = Classification::of_kind(other.kind(), None, Reach::Rejected);
            c.transient = false;
            c
        }
    }
}
