//! The runner: the retry loop around attempts, and the order of policies within an attempt.
//!
//! Retry wraps each attempt; an attempt goes limiter -> breaker -> bulkhead -> pool acquire
//! -> timeout -> body. An open breaker ends retrying at once; limiter and bulkhead rejections
//! are returned at once too (retrying a shed call is what turns overload into a storm). The
//! deadline covers the whole call: limiter and bulkhead waits, acquiring, every attempt and
//! every retry delay.

use std::time::Duration;

use tokio::time::Instant;

use super::attempt::{Attempt, Ended, Phase};
use super::resolve::Resolved;
use crate::classify::{Classification, FailureKind, Reach, classify};
use crate::error::{Error, Site};
use crate::pool::{CloseReason, Holder};
use crate::runtime::Runtime;

/// Gives the runner the database error inside a body's error type, if there is one.
pub(crate) type ErrAccess<E> = fn(&mut E) -> Option<&mut Error>;

/// What the runner decided about a failed attempt.
struct Judged<E> {
    error: E,
    kind: FailureKind,
    rerun: bool,
    /// A reused connection turned out dead and the op may run again: replace it and run once
    /// more, outside any retry policy (a connection that died idle is never the caller's
    /// failure).
    replace: bool,
}

/// Runs an op: attempts, retries, deadline.
pub(crate) async fn execute<T, E, A>(
    rt: &Runtime,
    op: &Resolved,
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
    let mut attempts = 0u32;
    let mut replaced = false;
    let result = loop {
        attempts += 1;
        let judged = match attempt_once(op, access, &mut body, attempts, deadline, replaced).await
        {
            Ok(v) => break Ok(v),
            Err(j) => j,
        };
        if judged.replace && !replaced {
            replaced = true;
            tracing::debug!(
                op = op.spec.name,
                pool = op.pool.name(),
                "connection died while idle; running again on a checked connection"
            );
            continue;
        }
        if !judged.rerun {
            break Err(judged.error);
        }
        // Retry policies plug in here: until one is configured, an op runs once.
        let _ = judged.kind;
        break Err(judged.error);
    };
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

async fn attempt_once<T, E, A>(
    op: &Resolved,
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

    // Pool acquire, within the pool's acquire timeout and the call's deadline.
    let acquire_limit = match remaining(deadline) {
        Some(left) if left.is_zero() => {
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
            let deadline_hit = remaining(deadline).is_some_and(|l| l.is_zero());
            if deadline_hit && matches!(e, Error::AcquireTimeout { .. }) {
                return Err(deadline_exceeded(op, attempt, Some(e)));
            }
            let c = verdict(&e);
            return Err(Judged {
                kind: c.kind,
                rerun: c.transient,
                replace: false,
                error: E::from(e),
            });
        }
    };

    // The attempt's time limit: its timeout, cut short by the deadline.
    let until = match (spec.timeout, deadline) {
        (Some(t), Some(d)) => Some((Instant::now() + t).min(d)),
        (Some(t), None) => Some(Instant::now() + t),
        (None, d) => d,
    };
    let (ended, mut conn) = body.run(conn, until).await;
    match ended {
        Ended::Ok(v) => Ok(v),
        Ended::TimedOut(phase) => {
            // Closing the socket is what stops the statement on the server.
            conn.evict(CloseReason::Timeout);
            drop(conn);
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
                // The application's own failure: returned as it is, never retried.
                return Err(Judged {
                    kind: FailureKind::Unknown,
                    rerun: false,
                    replace: false,
                    error,
                });
            };
            let c = verdict(db);
            let safe = match (c.reach, phase) {
                (Reach::NotSent, _) | (_, Phase::Begin) => true,
                (Reach::Rejected, _) => spec.safe_to_rerun() || is_tx,
                (Reach::Unknown, Phase::Body) => spec.safe_to_rerun() || is_tx,
                (Reach::Unknown, Phase::Commit) => spec.safe_to_rerun(),
            };
            let dead = matches!(c.kind, FailureKind::ConnectionLost | FailureKind::ServerShutdown);
            let replace = dead && conn.reused() && safe;
            if dead {
                conn.suspect_siblings();
            }
            if c.evict {
                conn.evict(CloseReason::Failure);
            }
            drop(conn);
            let site = op.site();
            let taken = std::mem::replace(
                db,
                Error::Op {
                    site: Site::default(),
                    message: String::new(),
                },
            );
            *db = match taken {
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
                rerun: safe && c.transient,
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
    Judged {
        kind: FailureKind::Deadline,
        rerun: false,
        replace: false,
        error: E::from(Error::DeadlineExceeded {
            site: op.site(),
            deadline: op.spec.deadline.unwrap_or_default(),
            attempts,
            last: last.map(Box::new),
        }),
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
