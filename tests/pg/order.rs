//! The order of policies: retry wraps attempts; limiter -> breaker -> bulkhead -> acquire ->
//! timeout -> body within an attempt.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sqlx_resilience::breaker::BreakerState;
use sqlx_resilience::{Error, PolicyKind, Runtime};
use sqlx_resilience_testkit::{PgServer, ShutdownMode};

use crate::support::{self, scalar_i64_with};

#[tokio::test]
async fn an_open_breaker_ends_retrying_at_once() {
    let server = PgServer::start().await.unwrap();
    let db = server.create_database().await.unwrap();
    let rt = Runtime::builder()
        .url(db.url())
        .env_vars(Vec::<(String, String)>::new())
        .pool("main", &[("acquire_timeout", "100ms".into())])
        .declare(
            PolicyKind::Breaker,
            "db",
            &[("consecutive_failures", 1u32.into())],
        )
        .declare(
            PolicyKind::Retry,
            "many",
            &[
                ("attempts", 20u32.into()),
                ("base", "1ms".into()),
                ("max_delay", "5ms".into()),
            ],
        )
        .build()
        .await
        .unwrap();
    server.stop(ShutdownMode::Fast).await.unwrap();
    let e = scalar_i64_with(&rt, |o| o.retry("many").breaker("db"), "select 1::int8")
        .await
        .unwrap_err();
    // Open because the server is unreachable: the call waited for it (within the pool's
    // 100 ms acquire timeout), then stopped, without another attempt.
    assert!(
        matches!(&e, Error::Unavailable { breaker: Some(b), .. } if &**b == "db"),
        "{e}"
    );
    assert_eq!(rt.breaker("db").unwrap().state(), BreakerState::Open);
    let breaker = rt.breaker("db").unwrap().metrics();
    assert_eq!(
        breaker.failures_total, 1,
        "the dead connection's failure opened it"
    );
    assert_eq!(
        breaker.rejected_total, 1,
        "the next attempt was refused, and no more followed"
    );
    let m = rt.retry_policy("many").unwrap().metrics();
    let retries: u64 = m.retries.iter().map(|(_, n)| n).sum();
    assert!(retries <= 2, "{retries} retries");
}

#[tokio::test]
async fn a_bulkhead_rejection_is_not_retried_into_a_storm() {
    let db = support::db().await;
    let rt = support::builder(&db, &[])
        .declare(
            PolicyKind::Bulkhead,
            "one",
            &[("max_concurrent", 1u32.into())],
        )
        .declare(
            PolicyKind::Retry,
            "many",
            &[("attempts", 20u32.into()), ("base", "1ms".into())],
        )
        .build()
        .await
        .unwrap();
    let holder = tokio::spawn({
        let rt = rt.clone();
        async move {
            scalar_i64_with(
                &rt,
                |o| o.bulkhead("one"),
                "select 1::int8 from pg_sleep(0.4)",
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let runs = AtomicU32::new(0);
    let e = rt
        .op("order::shed")
        .retry("many")
        .bulkhead("one")
        .read_only(true)
        .run(|_| {
            runs.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move { Ok::<_, Error>(()) })
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::BulkheadFull {
                max_concurrent: 1,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert!(
        rt.retry_policy("many")
            .unwrap()
            .metrics()
            .retries
            .is_empty()
    );
    assert_eq!(rt.bulkhead("one").unwrap().metrics().shed, 1);
    holder.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_limiter_waits_only_within_the_deadline() {
    let db = support::db().await;
    let rt = support::builder(&db, &[])
        .declare(
            PolicyKind::Limiter,
            "api",
            &[
                ("per_second", 5u32.into()),
                ("burst", 1u32.into()),
                ("wait", true.into()),
            ],
        )
        .build()
        .await
        .unwrap();
    let call = |deadline: Duration| {
        scalar_i64_with(
            &rt,
            move |o| o.limiter("api").deadline(deadline),
            "select 1::int8",
        )
    };
    let started = Instant::now();
    call(Duration::from_secs(1)).await.unwrap();
    // The next permit comes 200 ms after the first: a 1 s deadline waits for it...
    call(Duration::from_secs(1)).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(190));
    // ...a 50 ms deadline is refused at once instead of sleeping and then failing.
    let started = Instant::now();
    let e = call(Duration::from_millis(50)).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::RateLimited {
                retry_after: Some(_),
                ..
            }
        ),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_millis(50));
}

#[tokio::test]
async fn a_per_key_limiter_isolates_tenants() {
    let db = support::db().await;
    let rt = support::builder(&db, &[])
        .declare(
            PolicyKind::Limiter,
            "tenant",
            &[
                ("per_second", 0.5.into()),
                ("burst", 2u32.into()),
                ("per_key", true.into()),
            ],
        )
        .build()
        .await
        .unwrap();
    let call = |tenant: &'static str| {
        rt.op("order::tenant")
            .limiter("tenant")
            .limiter_key(tenant)
            .read_only(true)
            .run(|c| {
                Box::pin(async move {
                    let (v,): (i32,) = sqlx::query_as("select 1").fetch_one(c.as_mut()).await?;
                    Ok::<_, Error>(v)
                })
            })
    };
    call("a").await.unwrap();
    call("a").await.unwrap();
    assert!(matches!(
        call("a").await.unwrap_err(),
        Error::RateLimited { .. }
    ));
    call("b").await.unwrap();
    call("b").await.unwrap();
    assert!(matches!(
        call("b").await.unwrap_err(),
        Error::RateLimited { .. }
    ));
}
