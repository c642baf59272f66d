//! The lag monitor: a background task per pool with replicas that measures, every interval,
//! how fresh each replica is.
//!
//! Each round reads the primary's `pg_current_wal_lsn()` and remembers it with the moment the
//! question was sent: every write the primary had acknowledged by then lies at or below that
//! position. Each replica then reports `pg_last_wal_replay_lsn()`; the newest remembered
//! moment whose position it has replayed is the moment up to which it has every acknowledged
//! write. Its lag is the time since that moment. An idle primary does not make a replica look
//! stale (its position does not move, so a caught-up replica stays fresh), unlike
//! `now() - pg_last_xact_replay_timestamp()`, which grows while nothing is written.
//!
//! A pool on a multi-host URL has several places the primary may be: the position is read from
//! the one that answered as primary last time, else from the next that is not in recovery,
//! so a failover moves the question with it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::future::join_all;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio::time::Instant;

use super::Replicas;
use super::node::Node;
use crate::pool::Source;
use crate::redact::redact;

/// Positions remembered: at the default interval, well over a minute of history.
const SAMPLES: usize = 512;

/// One connection the monitor keeps, reopened after a failure.
#[derive(Default)]
struct Link(Option<PgConnection>);

impl Link {
    /// Runs `sql` (one row, one or two columns read by `read`) within `limit`. A new
    /// connection takes its password from `password` when given (fetched now, so a rotated
    /// one is used), else from `options`.
    async fn ask<T: Send + Unpin + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>>(
        &mut self,
        options: &PgConnectOptions,
        password: Option<&Source>,
        limit: Duration,
        sql: &'static str,
    ) -> Result<T, String> {
        let asked = async {
            if self.0.is_none() {
                let connected = match password {
                    Some(source) => {
                        let password = source.fetch().await.map_err(|reason| {
                            format!(
                                "cannot fetch the password from {}: {reason}",
                                source.describe()
                            )
                        })?;
                        PgConnection::connect_with(&options.clone().password(&password)).await
                    }
                    None => PgConnection::connect_with(options).await,
                };
                self.0 = Some(connected.map_err(|e| e.to_string())?);
            }
            let conn = self.0.as_mut().expect("connected above");
            // A simple query: no prepared statement, so it works through a transaction pooler.
            let row = sqlx::raw_sql(sql)
                .fetch_one(conn)
                .await
                .map_err(|e| e.to_string())?;
            T::from_row(&row).map_err(|e| e.to_string())
        };
        let answer = match tokio::time::timeout(limit, asked).await {
            Ok(answer) => answer,
            Err(_) => Err(format!("no answer within {limit:?}")),
        };
        if answer.is_err() {
            // Dropped, not closed: a dead or hung server would not answer a goodbye.
            self.0 = None;
        }
        answer.map_err(|e| redact(&e))
    }
}

/// Starts the monitor of `set`; it ends when the set is dropped or its pool closed.
pub(crate) fn spawn(set: &Arc<Replicas>) {
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    let weak = Arc::downgrade(set);
    let interval = set.interval;
    let primaries = set.primaries.len();
    tokio::spawn(async move {
        let mut state = Monitor {
            primaries: (0..primaries).map(|_| Link::default()).collect(),
            primary: 0,
            links: HashMap::new(),
            samples: VecDeque::with_capacity(SAMPLES),
        };
        loop {
            let Some(set) = Weak::upgrade(&weak) else {
                return;
            };
            if set.closed() {
                return;
            }
            state.round(&set).await;
            set.ticked.notify_waiters();
            drop(set);
            tokio::time::sleep(interval).await;
        }
    });
}

struct Monitor {
    /// One link to each place the primary may be.
    primaries: Vec<Link>,
    /// The one that answered as primary last.
    primary: usize,
    /// One link to each replica, by its number; a replica that left takes its link along.
    links: HashMap<usize, Link>,
    /// (when asked, the primary's position then), oldest first.
    samples: VecDeque<(Instant, u64)>,
}

impl Monitor {
    async fn round(&mut self, set: &Replicas) {
        let limit = set.query_limit;
        let asked = Instant::now();
        match self.primary_position(set).await {
            Ok(lsn) => {
                if self.samples.len() == SAMPLES {
                    self.samples.pop_front();
                }
                self.samples.push_back((asked, lsn));
            }
            Err(e) => {
                tracing::debug!(pool = %set.pool_name, error = %e, "cannot read the primary's WAL position; replica lag not advanced")
            }
        }
        let nodes = set.nodes();
        let mut links: Vec<(Link, &Arc<Node>)> = nodes
            .iter()
            .map(|node| (self.links.remove(&node.index).unwrap_or_default(), node))
            .collect();
        // Links of replicas no longer in the set are dropped here.
        self.links.clear();
        let samples = &self.samples;
        let asks = links
            .iter_mut()
            .map(|(link, node)| measure(link, node, samples, limit));
        join_all(asks).await;
        self.links
            .extend(links.into_iter().map(|(link, node)| (node.index, link)));
    }

    /// The WAL position of whichever place answers as the primary, starting with the one that
    /// did last time.
    async fn primary_position(&mut self, set: &Replicas) -> Result<u64, String> {
        let n = self.primaries.len();
        let mut last_error = "no primary to ask".to_owned();
        for k in 0..n {
            let i = (self.primary + k) % n;
            let answer = self.primaries[i]
                .ask::<(Option<String>,)>(
                    &set.primaries[i],
                    set.password.as_ref(),
                    set.query_limit,
                    "SELECT CASE WHEN pg_is_in_recovery() THEN NULL \
                     ELSE pg_current_wal_lsn()::text END",
                )
                .await;
            match answer {
                Ok((Some(text),)) => {
                    self.primary = i;
                    return parse_lsn(&text);
                }
                Ok((None,)) => last_error = "every host asked is in recovery".to_owned(),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }
}

async fn measure(
    link: &mut Link,
    node: &Arc<Node>,
    samples: &VecDeque<(Instant, u64)>,
    limit: Duration,
) {
    let options = node.pool.sqlx().connect_options();
    let answer = link
        .ask::<(bool, Option<String>)>(
            &options,
            node.pool.password_source(),
            limit,
            "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text",
        )
        .await;
    match answer {
        Ok((false, _)) => node.not_replica(),
        Ok((true, Some(text))) => match parse_lsn(&text) {
            Ok(replayed) => node.measured(replayed, fresh_as_of(samples, replayed)),
            Err(e) => node.down(&e),
        },
        // A standby that has replayed nothing yet: up, with nothing known.
        Ok((true, None)) => node.measured(0, None),
        Err(e) => {
            if node.state() != super::node::State::Down {
                tracing::warn!(replica = %node.pool.url().redacted(), error = %e, "replica unreachable; its reads go elsewhere");
            }
            node.down(&e);
        }
    }
}

/// The newest moment whose primary position the replica has replayed: it has every write
/// acknowledged before then. `None` when it is behind every remembered position.
fn fresh_as_of(samples: &VecDeque<(Instant, u64)>, replayed: u64) -> Option<Instant> {
    samples
        .iter()
        .rev()
        .find(|(_, lsn)| *lsn <= replayed)
        .map(|(at, _)| *at)
}

/// A `pg_lsn` in PostgreSQL's `X/Y` form as a byte position.
pub(crate) fn parse_lsn(text: &str) -> Result<u64, String> {
    let bad = || format!("`{text}` is not an LSN such as 0/3000148");
    let (high, low) = text.trim().split_once('/').ok_or_else(bad)?;
    let high = u32::from_str_radix(high, 16).map_err(|_| bad())?;
    let low = u32::from_str_radix(low, 16).map_err(|_| bad())?;
    Ok((u64::from(high) << 32) | u64::from(low))
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::time::Duration;

    use tokio::time::Instant;

    use super::{fresh_as_of, parse_lsn};

    #[test]
    fn a_replica_is_as_fresh_as_the_newest_primary_position_it_replayed() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        // The primary wrote up to 100 by 0 ms, 200 by 200 ms, and nothing more by 400 ms
        // (idle).
        let samples: VecDeque<_> = [(at(0), 100), (at(200), 200), (at(400), 200)].into();
        assert_eq!(fresh_as_of(&samples, 50), None);
        assert_eq!(fresh_as_of(&samples, 150), Some(at(0)));
        // Caught up with an idle primary: as fresh as the last question.
        assert_eq!(fresh_as_of(&samples, 200), Some(at(400)));
    }

    #[test]
    fn lsns_read_as_byte_positions() {
        assert_eq!(parse_lsn("16/B374D848"), Ok(0x16_B374_D848));
        assert_eq!(parse_lsn("0/0"), Ok(0));
        assert!(parse_lsn("0-1").is_err());
    }
}
