//! The runner: the retry loop around attempts, and the order of policies within an attempt.
//!
//! Retry wraps each attempt; an attempt goes limiter -> breaker -> bulkhead -> pool acquire
//! -> timeout -> body. An open breaker ends retrying at once; limiter and bulkhead rejections
//! are returned at once too (retrying a shed call is what turns overload into a storm), and
//! never count against the breaker. The deadline covers the whole call: limiter and bulkhead
//! waits, acquiring, every attempt and every retry delay; no retry sleeps past it.

use std::time::Duration;

use tokio::time::Instant;

use super::attempt::{Attempt, Ended, Phase};
use super::resolve::Resolved;
use crate::breaker::BreakerPermit;
use crate::classify::{Classification, FailureKind, Reach, classify};
use crate::error::{Error, Site};
use crate::pool::{CloseReason, Holder};
use crate::retry::{RetryDecision, StopReason};
use crate::runtime::Runtime;

/// Gives the runner the database error inside a body's error type, if there is one.
pub(crate) type ErrAccess<E> = fn(&mut E) -> Option<&mut Error>;

/// What the runner decided about a failed attempt.
struct Judged<E> {
    error: E,
    kind: FailureKind,
    /// Safe and worth running again, if a retry policy agrees.
    rerun: bool,
    /// A reused connection turned out dead and the op may run again: replace it and run once
    /// more, outside any retry policy (a connection that died idle is never the caller's
    /// failure).
    replace: bool,
}

impl<E> Judged<E> {
    fn final_(error: E, kind: FailureKind) -> Self {
        Judged {
            error,
            kind,
            rerun: false,
            replace: false,
        }
    }
}

/// Runs an op inside its telemetry: the op's span around the call, its duration and outcome
/// recorded when it ends (see `crate::telemetry`).
pub(crate) async fn execute<T, E, A>(
    rt: &Runtime,
    op: &Resolved,
    key: Option<&str>,
    access: ErrAccess<E>,
    body: A,
) -> Result<T, E>
where
    A: Attempt<T, E>,
    E: From<Error>,
{
    let call = op.telemetry.start();
    let mut result = call
        .instrument(execute_inner(rt, op, key, access, body))
        .await;
    call.finish(result.as_mut().err().map(|e| access(e).map(|e| &*e)));
    result
}

/// Runs an op: attempts, retries, deadline.
async fn execute_inner<T, E, A>(
    rt: &Runtime,
    op: &Resolved,
    key: Option<&str>,
    access: ErrAccess<E>,
    mut body: A,
) -> Result<T, E>
where
    A: Attempt<T, E>,
    E: From<Error>,
{
    let started = Instant::now();
    let deadline = op.spec.deadline.map(|d| started + d);
    let _in_flight = rt.enter(|| op.site()).map_err(E::from)?;
    let mut retry = op.retry.as_deref().map(|r| r.start());
    let mut attempts = 0u32;
    let mut replaced = false;
    let result = loop {
        attempts += 1;
        let mut judged =
            match attempt_once(op, key, access, &mut body, attempts, deadline, replaced).await {
                Ok(v) => break Ok(v),
                Err(j) => j,
            };
        crate::telemetry::attempt_failed(
            op.spec.name,
            attempts,
            judged.kind,
            judged.rerun,
            access(&mut judged.error).map(|e| &*e),
        );
        if judged.replace && !replaced {
            replaced = true;
            tracing::debug!(
                op = op.spec.name,
                pool = op.pool.name(),
                "connection died while idle; running again on a checked connection"
            );
            continue;
        }
        let Some(state) = retry.as_mut().filter(|_| judged.rerun) else {
            break Err(judged.error);
        };
        match state.next_delay(judged.kind, started.elapsed(), remaining(deadline)) {
            RetryDecision::RetryAfter(delay) => {
                tracing::debug!(
                    op = op.spec.name,
                    pool = op.pool.name(),
                    attempt = attempts,
                    kind = judged.kind.as_str(),
                    delay_ms = delay.as_millis() as u64,
                    "attempt failed; retrying"
                );
                tokio::time::sleep(delay).await;
            }
            RetryDecision::Stop(StopReason::DeadlineTooClose { .. }) => {
                let mut error = judged.error;
                let last = access(&mut error).map(take_error);
                break Err(deadline_exceeded(op, attempts, last).error);
            }
            RetryDecision::Stop(reason) => {
                tracing::debug!(
                    op = op.spec.name,
                    attempt = attempts,
                    kind = judged.kind.as_str(),
                    reason = ?reason,
                    "not retrying"
                );
                break Err(judged.error);
            }
        }
    };
    crate::telemetry::attempts(attempts);
    let elapsed = started.elapsed();
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
    result
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

/// Records an attempt's outcome on its breaker permit.
fn record(permit: Option<BreakerPermit<'_>>, c: Option<&Classification>, elapsed: Duration) {
    let Some(permit) = permit else { return };
    match c {
        None => permit.success(elapsed),
        Some(c) if c.counts_for_breaker => permit.failure(elapsed),
        // Backpressure and our own rejections say nothing about the database's health.
        Some(c) if matches!(c.kind, FailureKind::Backpressure | FailureKind::Rejected) => {
            permit.ignore()
        }
        // The database answered (a constraint, no row, a syntax error): it is healthy.
        Some(_) => permit.success(elapsed),
    }
}

#[allow(clippy::too_many_arguments)]
async fn attempt_once<T, E, A>(
    op: &Resolved,
    key: Option<&str>,
    access: ErrAccess<E>,
    body: &mut A,
    attempt: u32,
    deadline: Option<Instant>,
    after_dead_conn: bool,
) -> Result<T, Judged<E>>
where
    A: Attempt<T, E>,
    E: From<Error>,
{
    let spec = &op.spec;
    let pool = &op.pool;
    let is_tx = body.tx().is_some();

    // 1. Rate limiter: waits (when configured to) only within the deadline.
    if let Some(limiter) = &op.limiter
        && let Err(r) = limiter.acquire(key, deadline).await
    {
        let error = Error::RateLimited {
            site: op.site(),
            limiter: limiter.name().clone(),
            retry_after: Some(r.retry_after),
        };
        return Err(Judged::final_(E::from(error), FailureKind::Rejected));
    }

    // 2. Circuit breaker: an open breaker ends the call, retries included.
    let permit = match &op.breaker {
        Some(breaker) => match breaker.try_acquire() {
            Ok(p) => Some(p),
            Err(r) => {
                let error = Error::BreakerOpen {
                    site: op.site(),
                    breaker: breaker.name().clone(),
                    retry_after: r.retry_after,
                };
                return Err(Judged::final_(E::from(error), FailureKind::BreakerOpen));
            }
        },
        None => None,
    };

    // 3. Bulkhead: a full one sheds the call; the breaker does not hear of it.
    let _slot = match &op.bulkhead {
        Some(bulkhead) => match bulkhead.acquire(deadline).await {
            Ok(slot) => Some(slot),
            Err(r) => {
                drop(permit);
                let error = Error::BulkheadFull {
                    site: op.site(),
                    bulkhead: bulkhead.name().clone(),
                    max_concurrent: r.max_concurrent,
                    max_queue: r.max_queue,
                };
                return Err(Judged::final_(E::from(error), FailureKind::Rejected));
            }
        },
        None => None,
    };

    // 4. Pool acquire, within the pool's acquire timeout and the call's deadline.
    let acquire_limit = match remaining(deadline) {
        Some(left) if left.is_zero() => {
            drop(permit);
            return Err(deadline_exceeded(op, attempt, None));
        }
        Some(left) => left.min(pool.config().acquire_timeout),
        None => pool.config().acquire_timeout,
    };
    // An op that may write and cannot run again gets a checked connection: a connection that
    // died while idle must fail before its body runs, not in the middle.
    let check_reused = (!spec.safe_to_rerun() && !is_tx) || after_dead_conn;
    let holder = Holder {
        op: Some(op.name.clone()),
        location: Some(spec.location),
    };
    let conn = match pool
        .acquire_for(&op.site_cached, acquire_limit, check_reused, holder)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            let c = verdict(&e);
            record(permit, Some(&c), Duration::ZERO);
            let deadline_hit = remaining(deadline).is_some_and(|l| l.is_zero());
            if deadline_hit && matches!(e, Error::AcquireTimeout { .. }) {
                return Err(deadline_exceeded(op, attempt, Some(e)));
            }
            return Err(Judged {
                kind: c.kind,
                rerun: c.transient,
                replace: false,
                error: E::from(e),
            });
        }
    };

    // 5. The attempt's time limit: its timeout, cut short by the deadline.
    let until = match (spec.timeout, deadline) {
        (Some(t), Some(d)) => Some((Instant::now() + t).min(d)),
        (Some(t), None) => Some(Instant::now() + t),
        (None, d) => d,
    };

    // 6. The body.
    let body_started = Instant::now();
    let (ended, mut conn) = body.run(conn, until).await;
    let elapsed = body_started.elapsed();
    match ended {
        Ended::Ok(v) => {
            record(permit, None, elapsed);
            Ok(v)
        }
        Ended::TimedOut(phase) => {
            // Closing the socket is what stops the statement on the server.
            conn.evict(CloseReason::Timeout);
            drop(conn);
            let c = Classification::of_kind(FailureKind::Deadline, None, Reach::Unknown);
            record(permit, Some(&c), elapsed);
            let by_deadline = deadline.is_some_and(|d| until == Some(d));
            let error = match spec.timeout {
                Some(timeout) if !by_deadline => Error::Timeout {
                    site: op.site(),
                    timeout,
                    attempt,
                },
                _ => return Err(deadline_exceeded(op, attempt, None)),
            };
            let rerun = match phase {
                Phase::Begin => true,
                Phase::Body => spec.safe_to_rerun() || is_tx,
                Phase::Commit => spec.safe_to_rerun(),
            };
            Err(Judged {
                kind: FailureKind::Deadline,
                rerun,
                replace: false,
                error: E::from(error),
            })
        }
        Ended::Failed(mut error, phase) => {
            let Some(db) = access(&mut error) else {
                // The application's own failure: returned as it is, never retried, and the
                // breaker does not count it.
                drop(permit);
                return Err(Judged::final_(error, FailureKind::Unknown));
            };
            let c = verdict(db);
            record(permit, Some(&c), elapsed);
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
            let replace = dead && conn.reused() && safe;
            if dead {
                conn.suspect_siblings();
            }
            if c.evict {
                conn.evict(CloseReason::Failure);
            }
            drop(conn);
            let site = op.site();
            *db = match take_error(db) {
                Error::Database { source, .. } if !safe && c.reach == Reach::Unknown => {
                    Error::UnknownOutcome { site, source }
                }
                Error::Database { source, kind, .. } => Error::Database {
                    site,
                    kind,
                    attempts: attempt,
                    source,
                },
                other => other.with_site(&site),
            };
            Err(Judged {
                kind: c.kind,
                rerun: safe && c.transient_for_retry(),
                replace,
                error,
            })
        }
    }
}

fn deadline_exceeded<E: From<Error>>(
    op: &Resolved,
    attempts: u32,
    last: Option<Error>,
) -> Judged<E> {
    Judged::final_(
        E::from(Error::DeadlineExceeded {
            site: op.site(),
            deadline: op.spec.deadline.unwrap_or_default(),
            attempts,
            last: last.map(Box::new),
        }),
        FailureKind::Deadline,
    )
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
