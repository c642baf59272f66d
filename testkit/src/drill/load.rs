//! The load every fault drill runs: workers doing reads and keyed idempotent writes through
//! the op API, what each op did, and the count of lost and duplicated writes taken from the
//! table at the end.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value as Json;
use sqlx::Connection;
use sqlx_resilience_runtime::{Error, FailureKind, Op};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::figures::{ms, percentile};
use super::load_report::LoadReport;
use crate::Result;
use crate::admin;

/// The drill's tables. Writes come in three kinds, so that a write applied twice or torn
/// shows in the table, whatever the client believes:
///
/// - a plain insert (`drill_insert`), not idempotent: one row per key into `drill_writes`,
///   whose key is deliberately not unique, so an insert applied twice is two rows;
/// - an idempotent upsert (`drill_upsert`) into `drill_upserts`, keyed by its key;
/// - a transaction of two inserts into `drill_writes` with one key: applied once it is two
///   rows, applied twice four, torn (one without the other) an odd count.
const SCHEMA: &str = r#"
create table drill_items (id bigint primary key, v bigint not null);
insert into drill_items select g, g * 10 from generate_series(1, 1000) g;
create table drill_writes (
    key bigint not null,
    worker int not null,
    written_at timestamptz not null default clock_timestamp()
);
create index drill_writes_key on drill_writes (key);
create table drill_upserts (
    key bigint primary key,
    worker int not null,
    applied int not null default 1
);
create function drill_read(p_id bigint, p_sleep float8) returns bigint
language plpgsql as $$
declare r bigint;
begin
    if p_sleep > 0 then perform pg_sleep(p_sleep); end if;
    select v into r from drill_items where id = p_id;
    return r;
end $$;
create function drill_insert(p_key bigint, p_worker int, p_sleep float8) returns void
language plpgsql as $$
begin
    insert into drill_writes (key, worker) values (p_key, p_worker);
    if p_sleep > 0 then perform pg_sleep(p_sleep); end if;
end $$;
create function drill_upsert(p_key bigint, p_worker int, p_sleep float8) returns void
language plpgsql as $$
begin
    insert into drill_upserts (key, worker) values (p_key, p_worker)
        on conflict (key) do update set applied = drill_upserts.applied + 1;
    if p_sleep > 0 then perform pg_sleep(p_sleep); end if;
end $$;
"#;

/// Creates the drill's tables in the database at `url` (straight to the server).
pub(crate) async fn create_schema(url: &str) -> Result<()> {
    let mut conn = connect(url, "create the drill's tables").await?;
    let result = sqlx::raw_sql(SCHEMA).execute(&mut conn).await;
    let _ = conn.close().await;
    result.map(drop).map_err(|e| {
        Error::test_kit(
            "create the drill's tables",
            sqlx_resilience_runtime::redact(&e.to_string()),
            "the drill's database must be new and owned by the connecting role",
        )
    })
}

pub(crate) async fn connect(url: &str, action: &str) -> Result<sqlx::PgConnection> {
    admin::connect(url)
        .await
        .map_err(|detail| Error::test_kit(action, detail, crate::error::SERVER_HINT))
}

/// What the tables say about the writes, counted straight on the server.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TableCheck {
    /// Acknowledged writes whose rows are absent.
    pub(crate) lost: u64,
    /// Inserts with more than one row, transactions with more than two.
    pub(crate) duplicates: u64,
    /// Transactions with an odd count of rows: one insert without the other.
    pub(crate) torn: u64,
    /// Failed writes (any kind) whose rows are present.
    pub(crate) unacked_present: u64,
    /// Inserts and transactions reported failed with a kind other than `unknown_outcome`
    /// whose rows are present: the caller was told a write that happened did not.
    pub(crate) applied_but_reported_failed: u64,
}

/// The keys of the writes in `samples`, sorted into what the check needs.
#[derive(Debug, Default)]
struct Keys {
    /// Acknowledged inserts and transactions.
    acked_rows: Vec<i64>,
    /// Acknowledged upserts.
    acked_upserts: Vec<i64>,
    /// Every insert.
    inserts: Vec<i64>,
    /// Every transaction.
    transactions: Vec<i64>,
    /// Inserts and transactions that failed with a kind other than `unknown_outcome`.
    failed_known: Vec<i64>,
    /// Every failed write.
    failed: Vec<i64>,
}

impl Keys {
    fn of(samples: &[Sample]) -> Keys {
        let mut k = Keys::default();
        for s in samples {
            let (Some(key), Some(kind)) = (s.key, s.write) else {
                continue;
            };
            match kind {
                WriteKind::Insert => k.inserts.push(key),
                WriteKind::Transaction => k.transactions.push(key),
                WriteKind::Upsert => {}
            }
            match (s.outcome, kind) {
                (Ok(()), WriteKind::Upsert) => k.acked_upserts.push(key),
                (Ok(()), _) => k.acked_rows.push(key),
                (Err(e), kind) => {
                    k.failed.push(key);
                    if kind != WriteKind::Upsert && e != FailureKind::UnknownOutcome {
                        k.failed_known.push(key);
                    }
                }
            }
        }
        k
    }
}

/// Counts, in the tables, what happened to the writes of `samples` (see [`TableCheck`]).
pub(crate) async fn check_writes(url: &str, samples: &[Sample]) -> Result<TableCheck> {
    const ACTION: &str = "count the drill's writes";
    let keys = Keys::of(samples);
    let mut conn = connect(url, ACTION).await?;
    let row: std::result::Result<(i64, i64, i64, i64, i64), sqlx::Error> = sqlx::query_as(
        "with w as (select key, count(*) as n from drill_writes group by key) \
         select \
           (select count(*) from unnest($1::int8[]) k \
             where not exists (select 1 from w where w.key = k)) \
           + (select count(*) from unnest($2::int8[]) k \
             where not exists (select 1 from drill_upserts u where u.key = k)), \
           (select count(*) from unnest($3::int8[]) k join w on w.key = k where w.n > 1) \
           + (select count(*) from unnest($4::int8[]) k join w on w.key = k where w.n > 2), \
           (select count(*) from unnest($4::int8[]) k join w on w.key = k where w.n % 2 = 1), \
           (select count(*) from unnest($6::int8[]) k \
             where exists (select 1 from w where w.key = k) \
                or exists (select 1 from drill_upserts u where u.key = k)), \
           (select count(*) from unnest($5::int8[]) k \
             where exists (select 1 from w where w.key = k))",
    )
    .bind(&keys.acked_rows)
    .bind(&keys.acked_upserts)
    .bind(&keys.inserts)
    .bind(&keys.transactions)
    .bind(&keys.failed_known)
    .bind(&keys.failed)
    .fetch_one(&mut conn)
    .await;
    let _ = conn.close().await;
    let (lost, duplicates, torn, unacked_present, applied_failed) = row.map_err(|e| {
        Error::test_kit(
            ACTION,
            sqlx_resilience_runtime::redact(&e.to_string()),
            crate::error::SERVER_HINT,
        )
    })?;
    Ok(TableCheck {
        lost: lost.unsigned_abs(),
        duplicates: duplicates.unsigned_abs(),
        torn: torn.unsigned_abs(),
        unacked_present: unacked_present.unsigned_abs(),
        applied_but_reported_failed: applied_failed.unsigned_abs(),
    })
}

/// Tags statements and notes when the client abandons one: its attempt ran out of time while
/// the statement was in flight. Used where abandoned statements are watched on the server.
#[derive(Debug, Default)]
pub(crate) struct Abandoned {
    next: AtomicU64,
    at: Mutex<HashMap<u64, Instant>>,
}

impl Abandoned {
    /// When each abandoned statement was given up, by tag.
    pub(crate) fn given_up(&self) -> HashMap<u64, Instant> {
        self.at.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One statement in flight; dropped before [`InFlight::finish`], it counts as abandoned.
struct InFlight {
    log: Arc<Abandoned>,
    tag: u64,
    done: bool,
}

impl InFlight {
    fn start(log: &Arc<Abandoned>) -> InFlight {
        InFlight {
            log: Arc::clone(log),
            tag: log.next.fetch_add(1, Ordering::Relaxed),
            done: false,
        }
    }

    fn finish(mut self) {
        self.done = true;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.done {
            let now = Instant::now();
            self.log
                .at
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(self.tag, now);
        }
    }
}

/// The tag a tagged statement carries in its text, as `pg_stat_activity` shows it.
pub(crate) fn tag_of(query: &str) -> Option<u64> {
    let rest = query.split("/* drill:").nth(1)?;
    rest.split(" */").next()?.parse().ok()
}

/// The kinds of write (see the drill's tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteKind {
    /// A plain insert through an op that is not idempotent.
    Insert,
    /// An upsert through an idempotent op.
    Upsert,
    /// Two inserts in one transaction, through a transactional op.
    Transaction,
}

/// The drill's ops: a read and the three kinds of write.
#[derive(Debug, Clone)]
pub(crate) struct Ops {
    /// Read-only.
    pub(crate) read: Op,
    /// Not idempotent: a cut-off attempt ends as `UnknownOutcome`, never run again.
    pub(crate) insert: Op,
    /// Idempotent.
    pub(crate) upsert: Op,
    /// Transactional (run with `run_tx`).
    pub(crate) tx: Op,
}

/// What the workers run.
#[derive(Debug)]
pub(crate) struct Workload {
    /// The ops.
    pub(crate) ops: Ops,
    /// Test-only: re-run an insert whose outcome was unknown, with the same key, as a careless
    /// caller would. The duplicates it makes show that the drill's duplicate count bites.
    pub(crate) retry_unknown: bool,
    /// The kinds writes take turns between (by key).
    pub(crate) kinds: &'static [WriteKind],
    /// How long a slow read keeps the server busy (`pg_sleep`).
    pub(crate) read_sleep: Duration,
    /// One read in this many is slow (1: every read).
    pub(crate) slow_every: u64,
    /// How long each write keeps the server busy after writing.
    pub(crate) write_sleep: Duration,
    /// One op in this many is a write.
    pub(crate) write_every: u64,
    /// When set, statements carry a tag and go by the simple protocol (one message, so a
    /// statement reaches the server even when its client gives up before the answer).
    pub(crate) tracked: Option<Arc<Abandoned>>,
    /// The ops' deadline (bounds how long a worker may take past the plan's duration).
    pub(crate) deadline: Duration,
    next_key: AtomicI64,
}

impl Workload {
    /// Reads and writes with no server-side sleep; one op in four writes, the writes taking
    /// turns: insert, upsert, transaction.
    pub(crate) fn new(ops: Ops, deadline: Duration) -> Workload {
        Workload {
            ops,
            retry_unknown: false,
            kinds: &[WriteKind::Insert, WriteKind::Upsert, WriteKind::Transaction],
            read_sleep: Duration::ZERO,
            slow_every: 1,
            write_sleep: Duration::ZERO,
            write_every: 4,
            tracked: None,
            deadline,
            next_key: AtomicI64::new(1),
        }
    }

    /// A fresh idempotency key.
    pub(crate) fn next_key(&self) -> i64 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    async fn read(&self, id: i64, slow: bool) -> std::result::Result<(), Error> {
        let sleep = if slow {
            self.read_sleep.as_secs_f64()
        } else {
            0.0
        };
        let tracked = self.tracked.clone();
        self.ops
            .read
            .run(move |conn| {
                let tracked = tracked.clone();
                Box::pin(async move {
                    match tracked {
                        None => {
                            sqlx::query("select drill_read($1, $2)")
                                .bind(id)
                                .bind(sleep)
                                .execute(conn.as_mut())
                                .await?;
                        }
                        Some(log) => {
                            let flight = InFlight::start(&log);
                            let sql = format!(
                                "select drill_read({id}, {sleep}) /* drill:{} */",
                                flight.tag
                            );
                            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                                .execute(conn.as_mut())
                                .await?;
                            flight.finish();
                        }
                    }
                    Ok(())
                })
            })
            .await
    }

    /// One write of `kind`; an insert whose outcome was unknown runs again when
    /// [`Workload::retry_unknown`] is set (up to three times in all).
    async fn write(
        &self,
        kind: WriteKind,
        key: i64,
        worker: i32,
    ) -> std::result::Result<(), Error> {
        let mut runs = 0;
        loop {
            runs += 1;
            let result = self.write_once(kind, key, worker).await;
            match result {
                Err(e)
                    if self.retry_unknown
                        && kind == WriteKind::Insert
                        && e.kind() == FailureKind::UnknownOutcome
                        && runs < 3 => {}
                other => return other,
            }
        }
    }

    async fn write_once(
        &self,
        kind: WriteKind,
        key: i64,
        worker: i32,
    ) -> std::result::Result<(), Error> {
        let sleep = self.write_sleep.as_secs_f64();
        let function = match kind {
            WriteKind::Upsert => "drill_upsert",
            WriteKind::Insert | WriteKind::Transaction => "drill_insert",
        };
        let tracked = self.tracked.clone();
        match kind {
            WriteKind::Insert | WriteKind::Upsert => {
                let op = if kind == WriteKind::Insert {
                    &self.ops.insert
                } else {
                    &self.ops.upsert
                };
                op.run(move |conn| {
                    let tracked = tracked.clone();
                    Box::pin(async move {
                        call(
                            conn.as_mut(),
                            tracked.as_ref(),
                            function,
                            key,
                            worker,
                            sleep,
                        )
                        .await
                    })
                })
                .await
            }
            WriteKind::Transaction => {
                self.ops
                    .tx
                    .run_tx(move |tx| {
                        let tracked = tracked.clone();
                        Box::pin(async move {
                            call(tx.as_mut(), tracked.as_ref(), function, key, worker, 0.0).await?;
                            call(tx.as_mut(), tracked.as_ref(), function, key, worker, sleep).await
                        })
                    })
                    .await
            }
        }
    }
}

/// `select FUNCTION(key, worker, sleep)`, tagged and by the simple protocol when `tracked`.
async fn call(
    conn: &mut sqlx::PgConnection,
    tracked: Option<&Arc<Abandoned>>,
    function: &'static str,
    key: i64,
    worker: i32,
    sleep: f64,
) -> std::result::Result<(), Error> {
    match tracked {
        None => {
            let sql = format!("select {function}($1, $2, $3)");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(key)
                .bind(worker)
                .bind(sleep)
                .execute(conn)
                .await?;
        }
        Some(log) => {
            let flight = InFlight::start(log);
            let sql = format!(
                "select {function}({key}, {worker}, {sleep}) /* drill:{} */",
                flight.tag
            );
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(conn)
                .await?;
            flight.finish();
        }
    }
    Ok(())
}

/// How the workers run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// Concurrent callers.
    pub(crate) workers: usize,
    /// Each worker stops after this many ops...
    pub(crate) ops_per_worker: u64,
    /// ...or once this much time has passed since the start, whichever comes first.
    pub(crate) duration: Duration,
    /// Each worker starts an op at most this often (none: back to back).
    pub(crate) pace: Option<Duration>,
}

/// One op: when it ran, what it was, how it ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) start: Instant,
    pub(crate) end: Instant,
    /// The key of a write; `None` for a read.
    pub(crate) key: Option<i64>,
    /// The kind of a write; `None` for a read.
    pub(crate) write: Option<WriteKind>,
    pub(crate) outcome: std::result::Result<(), FailureKind>,
}

impl Sample {
    pub(crate) fn took(&self) -> Duration {
        self.end.saturating_duration_since(self.start)
    }
}

/// Workers running; [`Load::finish`] waits for them.
#[derive(Debug)]
pub(crate) struct Load {
    tasks: JoinSet<Vec<Sample>>,
    go: watch::Sender<Option<Instant>>,
    limit: Duration,
}

impl Load {
    /// Spawns the workers; they wait for [`Load::go`].
    pub(crate) fn spawn(workload: &Arc<Workload>, plan: Plan) -> Load {
        let (go, started) = watch::channel(None);
        let mut tasks = JoinSet::new();
        for index in 0..plan.workers {
            tasks.spawn(worker(index, Arc::clone(workload), plan, started.clone()));
        }
        Load {
            tasks,
            go,
            limit: plan.duration + workload.deadline + Duration::from_secs(30),
        }
    }

    /// Starts every worker at once; returns the start.
    pub(crate) fn go(&self) -> Instant {
        let now = Instant::now();
        self.go.send_replace(Some(now));
        now
    }

    /// Spawns the workers and starts them.
    pub(crate) fn start(workload: &Arc<Workload>, plan: Plan) -> (Load, Instant) {
        let load = Load::spawn(workload, plan);
        let started = load.go();
        (load, started)
    }

    /// Waits for every worker (each stops by itself; a hard limit guards against a hang)
    /// and returns what every op did, in order of start.
    pub(crate) async fn finish(mut self) -> Result<Vec<Sample>> {
        let mut samples = Vec::new();
        let limit = self.limit;
        let all = async {
            while let Some(joined) = self.tasks.join_next().await {
                match joined {
                    Ok(s) => samples.extend(s),
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(_) => {}
                }
            }
        };
        if tokio::time::timeout(limit, all).await.is_err() {
            return Err(Error::test_kit(
                "finish the drill's load",
                format!("workers still running {limit:?} after the start"),
                "an op outlived its deadline by far; this is a bug in the runtime or the drill",
            ));
        }
        samples.sort_by_key(|s| s.start);
        Ok(samples)
    }
}

async fn worker(
    index: usize,
    workload: Arc<Workload>,
    plan: Plan,
    mut started: watch::Receiver<Option<Instant>>,
) -> Vec<Sample> {
    let start = match started.wait_for(Option::is_some).await {
        Ok(start) => *start,
        Err(_) => None,
    };
    let Some(start) = start else {
        return Vec::new();
    };
    let end = start + plan.duration;
    let mut samples = Vec::new();
    let mut rng = XorShift::new(index as u64 + 1);
    let mut next = Instant::now();
    for n in 0..plan.ops_per_worker {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let every = workload.write_every.max(1);
        let is_write = (index as u64 + n).is_multiple_of(every);
        let (key, write, outcome) = if is_write {
            let key = workload.next_key();
            let worker = i32::try_from(index).unwrap_or(i32::MAX);
            let kinds = workload.kinds;
            let kind = kinds[key.unsigned_abs() as usize % kinds.len().max(1)];
            (
                Some(key),
                Some(kind),
                workload.write(kind, key, worker).await,
            )
        } else {
            let id = (rng.next() % 1000) as i64 + 1;
            let slow = (index as u64 + n / every).is_multiple_of(workload.slow_every.max(1));
            (None, None, workload.read(id, slow).await)
        };
        let done = Instant::now();
        samples.push(Sample {
            start: now,
            end: done,
            key,
            write,
            outcome: outcome.map_err(|e| e.kind()),
        });
        if let Some(pace) = plan.pace {
            next = (next + pace).max(done);
            tokio::time::sleep_until(next).await;
        }
    }
    samples
}

/// A tiny, seeded random sequence for picking rows and faults: the same seed, the same
/// sequence (the drills need nothing stronger).
pub(crate) struct XorShift(u64);

impl XorShift {
    pub(crate) fn new(seed: u64) -> XorShift {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Everything a load report needs besides the samples.
#[derive(Debug)]
pub(crate) struct Outcome<'a> {
    pub(crate) scenario: &'static str,
    pub(crate) samples: &'a [Sample],
    /// The moment the server was ready again, if the scenario has one.
    pub(crate) ready: Option<Instant>,
    pub(crate) deadline: Duration,
    pub(crate) table: TableCheck,
    pub(crate) breaker_opens: u64,
    pub(crate) extra: BTreeMap<&'static str, Json>,
}

/// Summarises the samples into the drill's report.
pub(crate) fn report(o: Outcome<'_>) -> LoadReport {
    let samples = o.samples;
    let mut took: Vec<Duration> = samples.iter().map(Sample::took).collect();
    took.sort();
    let mut errors = BTreeMap::new();
    for s in samples {
        if let Err(kind) = s.outcome {
            *errors.entry(kind.as_str()).or_insert(0) += 1;
        }
    }
    let count = |f: &dyn Fn(&Sample) -> bool| samples.iter().filter(|s| f(s)).count() as u64;
    let ok = count(&|s| s.outcome.is_ok());
    let recovery = o.ready.and_then(|ready| {
        samples
            .iter()
            .filter(|s| s.outcome.is_ok() && s.end >= ready)
            .map(|s| s.end - ready)
            .min()
    });
    let lateness = took
        .last()
        .map(|t| t.saturating_sub(o.deadline))
        .unwrap_or_default();
    let first = samples.iter().map(|s| s.start).min();
    let last = samples.iter().map(|s| s.end).max();
    LoadReport {
        scenario: o.scenario,
        ops: samples.len() as u64,
        ok,
        failed: samples.len() as u64 - ok,
        errors,
        lost_writes: o.table.lost,
        duplicate_writes: o.table.duplicates,
        p50_ms: ms(percentile(&took, 0.5)),
        p99_ms: ms(percentile(&took, 0.99)),
        max_ms: ms(took.last().copied().unwrap_or_default()),
        recovery_ms: recovery.map(ms),
        reads: count(&|s| s.key.is_none()),
        reads_ok: count(&|s| s.key.is_none() && s.outcome.is_ok()),
        writes: count(&|s| s.key.is_some()),
        writes_ok: count(&|s| s.key.is_some() && s.outcome.is_ok()),
        unacked_writes_present: o.table.unacked_present,
        non_idempotent_writes: count(&|s| {
            matches!(s.write, Some(WriteKind::Insert | WriteKind::Transaction))
        }),
        unknown_outcome: count(&|s| {
            s.key.is_some() && s.outcome == Err(FailureKind::UnknownOutcome)
        }),
        applied_but_reported_failed: o.table.applied_but_reported_failed,
        torn_transactions: o.table.torn,
        breaker_opens: o.breaker_opens,
        deadline_ms: ms(o.deadline),
        worst_lateness_ms: ms(lateness),
        duration_ms: match (first, last) {
            (Some(a), Some(b)) => ms(b - a),
            _ => 0.0,
        },
        extra: o.extra,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_read_back_from_the_statement_text() {
        assert_eq!(tag_of("select drill_read(3, 5) /* drill:42 */"), Some(42));
        assert_eq!(tag_of("select 1"), None);
    }

    #[test]
    fn the_random_sequence_is_not_stuck() {
        let mut r = XorShift::new(1);
        let a = r.next();
        let b = r.next();
        assert_ne!(a, b);
        assert_ne!(a, 0);
    }
}
