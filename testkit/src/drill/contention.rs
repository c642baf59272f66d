//! `contention`: workers checking one book in and out through serializable transactions, on
//! the toolkit's default retry policy and on plain sqlx, side by side in the same run.
//!
//! Each side has its own row in `contention_book` and its own pool of one connection per
//! worker. A transaction reads the book; if it is in, the worker checks it out; if the worker
//! holds it, checks it back in; if another worker holds it, it changes nothing (the book is
//! busy). Every change appends a row to `contention_ledger`. Serializable isolation makes
//! concurrent transactions on the row fail with 40001, which plain sqlx surfaces and the op
//! API retries.
//!
//! The ledger is checked in SQL at the end: in id order it alternates out, in, out, ...,
//! each `in` by the worker of the `out` before it, and the book's state is the ledger's last
//! word. The order of ids is the order of commits for these rows: a transaction that changes
//! the book read the previous change, so that change committed before it took its id. The
//! ledger's rows also equal the changes the callers were told of: nothing lost, nothing
//! applied twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Row};
use sqlx_resilience_runtime::{Error, FailureKind, Isolation, Op, PolicyKind, Runtime};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::load::connect;
use super::setup::{APP, Size, close};
use crate::{PgServer, Result, ServerOptions};

const SCHEMA: &str = r#"
create table contention_book (
    side text primary key,
    holder int,
    checked_out bool not null default false
);
insert into contention_book (side) values ('ours'), ('sqlx');
create table contention_ledger (
    id bigserial primary key,
    side text not null,
    worker int not null,
    action text not null
);
"#;

/// What one side of the drill saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ContentionSide {
    /// Transactions that committed (a change or a look at a busy book).
    pub committed: u64,
    /// Committed transactions that changed the book (out or in).
    pub changes: u64,
    /// Committed transactions a second.
    pub committed_per_s: f64,
    /// Serialization failures and deadlocks that reached the caller.
    pub serialization_failures: u64,
    /// Other failures that reached the caller.
    pub other_failures: u64,
    /// Rows in the ledger for this side.
    pub ledger_rows: u64,
    /// Ledger rows that break the out, in, out order or the holder rule, plus 1 when the
    /// book's state disagrees with the ledger's last row.
    pub violations: u64,
}

/// The `contention` drill's figures: one line of JSON.
#[derive(Debug, Clone, Serialize)]
pub struct ContentionReport {
    /// `contention`.
    pub scenario: &'static str,
    /// Workers on each side.
    pub workers: usize,
    /// How long both sides ran, in seconds.
    pub secs: f64,
    /// The op's deadline, in milliseconds.
    pub deadline_ms: f64,
    /// Retries the toolkit made for contention.
    pub ours_retries: u64,
    /// The toolkit on its default retry policy.
    pub ours: ContentionSide,
    /// Plain sqlx 0.9, no retries.
    pub sqlx: ContentionSide,
}

/// What a transaction did to the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Out,
    In,
    Busy,
}

#[derive(Debug, Default)]
struct Counts {
    committed: AtomicU64,
    changes: AtomicU64,
    serialization: AtomicU64,
    other: AtomicU64,
}

impl Counts {
    fn record(&self, result: std::result::Result<Outcome, FailureKind>) {
        match result {
            Ok(outcome) => {
                self.committed.fetch_add(1, Ordering::Relaxed);
                if outcome != Outcome::Busy {
                    self.changes.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(FailureKind::Contention) => {
                self.serialization.fetch_add(1, Ordering::Relaxed);
            }
            Err(kind) => {
                self.other.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%kind, "contention drill: a transaction failed");
            }
        }
    }

    fn side(&self, secs: f64) -> ContentionSide {
        let committed = self.committed.load(Ordering::Relaxed);
        ContentionSide {
            committed,
            changes: self.changes.load(Ordering::Relaxed),
            committed_per_s: (committed as f64 / secs * 10.0).round() / 10.0,
            serialization_failures: self.serialization.load(Ordering::Relaxed),
            other_failures: self.other.load(Ordering::Relaxed),
            ledger_rows: 0,
            violations: 0,
        }
    }
}

/// One transaction's statements, the same on both sides.
async fn check_in_or_out(
    conn: &mut sqlx::PgConnection,
    side: &str,
    worker: i32,
) -> std::result::Result<Outcome, sqlx::Error> {
    let row = sqlx::query("select holder, checked_out from contention_book where side = $1")
        .bind(side)
        .fetch_one(&mut *conn)
        .await?;
    let holder: Option<i32> = row.try_get("holder")?;
    let checked_out: bool = row.try_get("checked_out")?;
    let (outcome, action) = match (checked_out, holder) {
        (false, _) => (Outcome::Out, "out"),
        (true, Some(h)) if h == worker => (Outcome::In, "in"),
        (true, _) => return Ok(Outcome::Busy),
    };
    let out = outcome == Outcome::Out;
    sqlx::query("update contention_book set checked_out = $2, holder = $3 where side = $1")
        .bind(side)
        .bind(out)
        .bind(out.then_some(worker))
        .execute(&mut *conn)
        .await?;
    sqlx::query("insert into contention_ledger (side, worker, action) values ($1, $2, $3)")
        .bind(side)
        .bind(worker)
        .bind(action)
        .execute(&mut *conn)
        .await?;
    Ok(outcome)
}

/// Runs the drill: `workers` on each side (16 at full size) for 15 s (3 s small).
pub(crate) async fn run(size: Size) -> Result<ContentionReport> {
    let workers = size.pick(8, 16);
    let secs = size.pick(3.0, 15.0);
    let deadline = Duration::from_secs(5);
    let server =
        PgServer::start_with(ServerOptions::new().setting("synchronous_commit", "on")).await?;
    let db = server.create_database().await?;
    {
        let mut conn = connect(db.url(), "create the contention drill's tables").await?;
        let created = sqlx::raw_sql(SCHEMA).execute(&mut conn).await;
        let _ = conn.close().await;
        created.map_err(|e| {
            Error::test_kit(
                "create the contention drill's tables",
                e,
                "this is a bug in the drill",
            )
        })?;
    }

    // The toolkit: one pool connection per worker, a retry policy on its defaults.
    let rt = Runtime::builder()
        .url(db.url())
        .env_vars(Vec::<(String, String)>::new())
        .pool(
            "drill",
            &[
                ("application_name", APP.into()),
                ("max", (workers as u32).into()),
                ("min", (workers as u32).into()),
            ],
        )
        .declare(PolicyKind::Retry, "defaults", &[])
        .build()
        .await?;
    let op: Op = rt
        .op("drill::check_in_or_out")
        .pool("drill")
        .retry("defaults")
        .deadline(deadline)
        .isolation(Isolation::Serializable)
        .build()?;
    // Plain sqlx: the same pool size, sqlx's other defaults.
    let plain = PgPoolOptions::new()
        .max_connections(workers as u32)
        .min_connections(workers as u32)
        .connect(db.url())
        .await
        .map_err(|e| Error::test_kit("open plain sqlx's pool", e, crate::error::SERVER_HINT))?;

    let ours = Arc::new(Counts::default());
    let theirs = Arc::new(Counts::default());
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(secs);
    let mut tasks = JoinSet::new();
    for worker in 0..workers as i32 {
        let op = op.clone();
        let counts = Arc::clone(&ours);
        tasks.spawn(async move {
            while Instant::now() < until {
                let result: std::result::Result<Outcome, Error> = op
                    .run_tx(|tx| {
                        Box::pin(async move {
                            check_in_or_out(tx, "ours", worker)
                                .await
                                .map_err(Error::from)
                        })
                    })
                    .await;
                counts.record(result.map_err(|e| e.kind()));
            }
        });
        let pool = plain.clone();
        let counts = Arc::clone(&theirs);
        tasks.spawn(async move {
            while Instant::now() < until {
                counts.record(plain_tx(&pool, worker).await);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let ran = started.elapsed().as_secs_f64();

    let ours_retries = rt
        .retry_policy("defaults")
        .map(|r| {
            r.metrics()
                .retries
                .iter()
                .filter(|(k, _)| *k == FailureKind::Contention)
                .map(|(_, n)| *n)
                .sum()
        })
        .unwrap_or(0);
    let mut report = ContentionReport {
        scenario: "contention",
        workers,
        secs: (ran * 10.0).round() / 10.0,
        deadline_ms: deadline.as_secs_f64() * 1000.0,
        ours_retries,
        ours: ours.side(ran),
        sqlx: theirs.side(ran),
    };
    plain.close().await;
    close(&rt).await;

    let mut conn = connect(db.url(), "check the contention drill's ledger").await?;
    for (side, figures) in [("ours", &mut report.ours), ("sqlx", &mut report.sqlx)] {
        let (rows, violations) = check_ledger(&mut conn, side).await?;
        figures.ledger_rows = rows;
        figures.violations = violations;
    }
    let _ = conn.close().await;
    drop(db);
    drop(server);
    Ok(report)
}

/// One transaction through plain sqlx at serializable isolation, no retry.
async fn plain_tx(pool: &sqlx::PgPool, worker: i32) -> std::result::Result<Outcome, FailureKind> {
    let attempt = async {
        let mut tx = pool.begin().await?;
        sqlx::query("set transaction isolation level serializable")
            .execute(&mut *tx)
            .await?;
        let outcome = check_in_or_out(&mut tx, "sqlx", worker).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(outcome)
    };
    attempt
        .await
        .map_err(|e| sqlx_resilience_runtime::classify(&e).kind)
}

/// The ledger's rows for `side` and the rows that break its rules (see the module docs).
async fn check_ledger(conn: &mut sqlx::PgConnection, side: &str) -> Result<(u64, u64)> {
    let row = sqlx::query(
        "with l as (
             select action, worker,
                    lag(action) over (order by id) as prev_action,
                    lag(worker) over (order by id) as prev_worker,
                    row_number() over (order by id) as n,
                    last_value(action) over (order by id
                        rows between unbounded preceding and unbounded following) as last_action
             from contention_ledger where side = $1
         )
         select
             (select count(*) from l) as rows,
             (select count(*) from l
              where (n = 1 and action <> 'out')
                 or (n > 1 and action = prev_action)
                 or (action = 'in' and worker <> prev_worker)) as broken,
             (select checked_out from contention_book where side = $1)
                 is distinct from
             coalesce((select last_action = 'out' from l limit 1), false) as state_wrong",
    )
    .bind(side)
    .fetch_one(&mut *conn)
    .await
    .map_err(bug)?;
    let rows: i64 = row.try_get("rows").map_err(bug)?;
    let broken: i64 = row.try_get("broken").map_err(bug)?;
    let state_wrong: bool = row.try_get("state_wrong").map_err(bug)?;
    Ok((
        rows.unsigned_abs(),
        broken.unsigned_abs() + u64::from(state_wrong),
    ))
}

fn bug(e: sqlx::Error) -> Error {
    Error::test_kit(
        "check the contention drill's ledger",
        e,
        "this is a bug in the drill",
    )
}
