//! What the policies cost.
//!
//! ```sh
//! cargo bench -p sqlx-resilience-benches --bench overhead            # everything
//! cargo bench -p sqlx-resilience-benches --bench overhead -- stack   # the stack, ready future
//! cargo bench -p sqlx-resilience-benches --bench overhead -- db      # sqlx, op API, #[db_op]
//! ```
//!
//! - `stack/*`: the runtime's policies (limiter -> breaker -> bulkhead -> timeout, in a call
//!   with a retry state, timing the body as the runner does) around a future that is already
//!   ready, each policy alone, and the same stack built from tower layers (tower has no circuit
//!   breaker: its stack is retry, rate limit, concurrency limit and timeout).
//! - `reject/open_breaker`: a whole op call refused by an open breaker (no connection taken).
//! - `db/*`: `select $1` on a throwaway PostgreSQL through raw sqlx, a prebuilt op, the op
//!   builder and a `#[db_op]` function, on the same pool. The figures are in
//!   docs/PERFORMANCE.md.

use std::future::ready;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sqlx::PgConnection;
use sqlx_resilience::breaker::{BreakerConfig, CircuitBreaker};
use sqlx_resilience::bulkhead::{Bulkhead, BulkheadConfig};
use sqlx_resilience::limiter::{LimiterConfig, RateLimiter};
use sqlx_resilience::retry::{RetryConfig, RetryPolicy};
use sqlx_resilience::{DbError, Error, HasRuntime, PolicyKind, Runtime, db_op};

fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The policies one op call goes through, set so they never refuse during the benchmark.
struct Stack {
    limiter: RateLimiter,
    breaker: CircuitBreaker,
    bulkhead: Bulkhead,
    retry: RetryPolicy,
}

impl Stack {
    fn new() -> Stack {
        let mut limiter = LimiterConfig::default();
        // Far above any rate a benchmark loop reaches, so every call takes the permit path.
        limiter.per_second = Some(1e9);
        let mut bulkhead = BulkheadConfig::default();
        bulkhead.max_concurrent = 1000;
        Stack {
            limiter: RateLimiter::new("bench", limiter),
            breaker: CircuitBreaker::new("bench", BreakerConfig::default()),
            bulkhead: Bulkhead::new("bench", bulkhead),
            retry: RetryPolicy::new("bench", RetryConfig::default()),
        }
    }

    /// One call as the runner makes it, around a ready future.
    async fn call(&self) -> u64 {
        // As the runner does: one reading as the call starts, lent to the limiter; one at the
        // body's end, given to the breaker. The runner starts the body's time limit and its
        // timing at the pool's reading of when it handed the connection over; with no pool
        // here, the call's start stands in for it.
        let started = tokio::time::Instant::now();
        let retry = self.retry.start();
        self.limiter
            .acquire_at(None, None, started)
            .await
            .expect("permit");
        let permit = self.breaker.try_acquire().expect("closed");
        let slot = self.bulkhead.acquire_slot(None).await.expect("slot");
        let v =
            sqlx_resilience::timeout::within(Some(started + Duration::from_secs(5)), ready(1u64))
                .await
                .expect("ready");
        let now = tokio::time::Instant::now();
        permit.success_at(now - started, now);
        drop(slot);
        black_box(retry.attempts());
        v
    }
}

fn stack(c: &mut Criterion) {
    let rt = tokio();
    let s = Stack::new();
    let mut g = c.benchmark_group("stack");
    g.bench_function("full", |b| {
        b.to_async(&rt).iter(|| async { black_box(s.call().await) })
    });
    g.bench_function("limiter", |b| {
        b.to_async(&rt)
            .iter(|| async { s.limiter.acquire(None, None).await.expect("permit") })
    });
    g.bench_function("breaker", |b| {
        b.iter(|| {
            let p = s.breaker.try_acquire().expect("closed");
            p.success_at(Duration::from_micros(100), tokio::time::Instant::now());
        })
    });
    g.bench_function("bulkhead", |b| {
        b.to_async(&rt)
            .iter(|| async { drop(s.bulkhead.acquire(None).await.expect("slot")) })
    });
    g.bench_function("retry_start", |b| {
        b.iter(|| black_box(s.retry.start().attempts()))
    });
    g.bench_function("timeout", |b| {
        b.to_async(&rt).iter(|| async {
            let until = tokio::time::Instant::now() + Duration::from_secs(5);
            sqlx_resilience::timeout::within(Some(until), ready(1u64))
                .await
                .expect("ready")
        })
    });
    g.bench_function("tower", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            use tower::{Service, ServiceBuilder, ServiceExt};
            // tower's retry needs a `Clone` inner service, which its limits are not, so the
            // retry layer sits inside them here; the work per call is the same.
            let mut svc = ServiceBuilder::new()
                .rate_limit(u64::MAX / 2, Duration::from_secs(1))
                .concurrency_limit(1000)
                .retry(NeverRetry)
                .timeout(Duration::from_secs(5))
                .service_fn(|n: u64| ready(Ok::<u64, tower::BoxError>(n)));
            let started = Instant::now();
            for _ in 0..iters {
                let svc = svc.ready().await.expect("ready");
                black_box(svc.call(1).await.expect("ok"));
            }
            started.elapsed()
        })
    });
    g.finish();
}

/// tower's retry layer with a policy that never retries (the call succeeds).
#[derive(Clone)]
struct NeverRetry;

impl tower::retry::Policy<u64, u64, tower::BoxError> for NeverRetry {
    type Future = std::future::Ready<()>;
    fn retry(
        &mut self,
        _req: &mut u64,
        _result: &mut Result<u64, tower::BoxError>,
    ) -> Option<Self::Future> {
        None
    }
    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

fn reject(c: &mut Criterion) {
    let rt = tokio();
    let runtime = rt.block_on(async {
        Runtime::builder()
            .url("postgres://bench@127.0.0.1:9/never")
            .env_vars(Vec::<(String, String)>::new())
            .declare(PolicyKind::Pool, "p", &[("startup", "lazy".into())])
            .declare(PolicyKind::Breaker, "b", &[("mode", "forced_open".into())])
            .set("ops_check", "off")
            .build()
            .await
            .expect("runtime")
    });
    let op = runtime
        .op("bench::rejected")
        .breaker("b")
        .build()
        .expect("op");
    let mut g = c.benchmark_group("reject");
    g.bench_function("open_breaker", |b| {
        b.to_async(&rt).iter(|| async {
            let r: Result<(), Error> = op.run(|_| Box::pin(async { Ok::<(), Error>(()) })).await;
            black_box(r.is_err())
        })
    });
    g.finish();
}

sqlx_resilience::policies! {
    mod bench_policies;
    pool main { max = 8 }
}

struct Repo {
    rt: Runtime,
}

impl HasRuntime for Repo {
    fn runtime(&self) -> &Runtime {
        &self.rt
    }
}

use bench_policies as policies;

impl Repo {
    #[db_op(pool = "main", read_only)]
    async fn select(&self, conn: &mut PgConnection, n: i32) -> Result<i32, DbError> {
        let (v,): (i32,) = sqlx::query_as("select $1").bind(n).fetch_one(conn).await?;
        Ok(v)
    }
}

fn db(c: &mut Criterion) {
    let rt = tokio();
    let (_db, runtime) = rt.block_on(async {
        let server = sqlx_resilience_testkit::PgServer::shared()
            .await
            .expect("server");
        let db = server.create_database().await.expect("database");
        let runtime = Runtime::builder()
            .url(db.url())
            .env_vars(Vec::<(String, String)>::new())
            .policies(policies::declared())
            .set("ops_check", "off")
            .build()
            .await
            .expect("runtime");
        (db, runtime)
    });
    let pool = runtime.pool("main").expect("pool").sqlx().clone();
    let op = runtime
        .op("bench::select")
        .pool("main")
        .read_only(true)
        .build()
        .expect("op");
    let repo = Arc::new(Repo {
        rt: runtime.clone(),
    });
    let mut g = c.benchmark_group("db");
    g.sample_size(30).measurement_time(Duration::from_secs(6));
    g.bench_function("raw_sqlx", |b| {
        b.to_async(&rt).iter(|| async {
            let (v,): (i32,) = sqlx::query_as("select $1")
                .bind(7)
                .fetch_one(&pool)
                .await
                .expect("row");
            black_box(v)
        })
    });
    g.bench_function("op", |b| {
        b.to_async(&rt).iter(|| async {
            let v = op
                .run(|conn| {
                    Box::pin(async move {
                        let (v,): (i32,) = sqlx::query_as("select $1")
                            .bind(7)
                            .fetch_one(conn.as_mut())
                            .await?;
                        Ok::<_, Error>(v)
                    })
                })
                .await
                .expect("row");
            black_box(v)
        })
    });
    g.bench_function("op_builder", |b| {
        b.to_async(&rt).iter(|| async {
            let v = runtime
                .op("bench::select_built")
                .pool("main")
                .read_only(true)
                .run(|conn| {
                    Box::pin(async move {
                        let (v,): (i32,) = sqlx::query_as("select $1")
                            .bind(7)
                            .fetch_one(conn.as_mut())
                            .await?;
                        Ok::<_, Error>(v)
                    })
                })
                .await
                .expect("row");
            black_box(v)
        })
    });
    g.bench_function("db_op", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(repo.select(7).await.expect("row")) })
    });
    g.finish();
}

criterion_group!(benches, stack, reject, db);
criterion_main!(benches);
