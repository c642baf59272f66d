//! The result cache of read-only ops: one query for a burst of callers on a miss, a new one
//! after the time to live, invalidation by op and key, errors not kept. Queries are counted on
//! the server: each run of an op's body takes a value of the sequence `runs`.

use std::time::Duration;

use sqlx::PgConnection;
use sqlx_resilience::{DbError, Error, HasRuntime, Runtime, db_op};
use sqlx_resilience_testkit::TestDb;

use crate::support;

#[derive(HasRuntime)]
struct Prices {
    rt: Runtime,
}

impl Prices {
    /// Slow enough for a burst of callers to arrive while it runs.
    #[db_op(pool = "main", read_only, cache = "5m", name = "tests::cache::price")]
    async fn price(&self, conn: &mut PgConnection, item: i64, unit: &str) -> Result<i64, DbError> {
        let (_, price): (i64, i64) = sqlx::query_as(
            "select nextval('runs'), price from prices, pg_sleep(0.3) \
             where item = $1 and unit = $2",
        )
        .bind(item)
        .bind(unit)
        .fetch_one(conn)
        .await?;
        Ok(price)
    }

    #[db_op(pool = "main", read_only, cache = "1s")]
    async fn fresh(&self, conn: &mut PgConnection) -> Result<i64, DbError> {
        let (_, n): (i64, i64) = sqlx::query_as("select nextval('runs'), 1::int8")
            .fetch_one(conn)
            .await?;
        Ok(n)
    }

    /// `10 / divisor`: division by zero, a real PostgreSQL error, until the divisor changes.
    #[db_op(pool = "main", read_only, cache = "5m")]
    async fn share(&self, conn: &mut PgConnection) -> Result<i64, DbError> {
        let (_, n): (i64, i64) =
            sqlx::query_as("select nextval('runs'), 10 / divisor from divisor")
                .fetch_one(conn)
                .await?;
        Ok(n)
    }

    /// Queries made so far.
    async fn runs(&self) -> i64 {
        support::scalar_i64(&self.rt, "select last_value - 1 from runs")
            .await
            .expect("runs")
    }
}

async fn prices() -> (TestDb, Prices) {
    let db = support::db().await;
    let rt = support::runtime(&db, &[]).await;
    support::setup(
        &rt,
        "tests::cache::tables",
        "create sequence runs; select nextval('runs');
         create table prices (item int8, unit text, price int8);
         insert into prices values (1, 'kg', 10), (2, 'kg', 20);
         create table divisor (divisor int8); insert into divisor values (0);",
    )
    .await;
    (db, Prices { rt })
}

#[tokio::test]
async fn a_burst_on_a_miss_makes_one_query_and_invalidation_makes_another() {
    let (_db, prices) = prices().await;
    let prices = std::sync::Arc::new(prices);
    let burst: Vec<_> = (0..50)
        .map(|_| {
            let prices = prices.clone();
            tokio::spawn(async move { prices.price(1, "kg").await })
        })
        .collect();
    for call in burst {
        assert_eq!(call.await.unwrap().expect("price"), 10);
    }
    assert_eq!(
        prices.runs().await,
        1,
        "50 callers on a miss made one query"
    );
    let stats = prices.rt.cache().stats();
    assert_eq!((stats.hits, stats.misses), (49, 1), "{stats:?}");

    // Another key is another entry; the first stays.
    assert_eq!(prices.price(2, "kg").await.unwrap(), 20);
    assert_eq!(prices.price(1, "kg").await.unwrap(), 10);
    assert_eq!(prices.runs().await, 2);

    // Invalidating one key: the next call of that key queries, the other key does not.
    support::setup(
        &prices.rt,
        "tests::cache::reprice",
        "update prices set price = price + 1",
    )
    .await;
    let op = "tests::cache::price";
    prices
        .rt
        .cache()
        .invalidate(op, (1_i64, "kg".to_owned()))
        .await;
    assert_eq!(prices.price(1, "kg").await.unwrap(), 11);
    assert_eq!(prices.price(2, "kg").await.unwrap(), 20, "still cached");
    assert_eq!(prices.runs().await, 3);

    // Invalidating the op: every key queries again.
    prices.rt.cache().invalidate_op(op);
    assert_eq!(prices.price(2, "kg").await.unwrap(), 21);
    assert_eq!(prices.runs().await, 4);

    let health = prices.rt.health().await;
    let price = health.cache.ops.iter().find(|o| o.op == op).expect("op");
    assert_eq!((price.hits, price.misses), (51, 4), "{price:?}");
    assert!(price.hit_ratio.is_some_and(|r| r > 0.9), "{price:?}");
}

#[tokio::test]
async fn entries_expire_and_errors_are_not_kept() {
    let (_db, prices) = prices().await;

    // A failure is not kept: the next call queries again, and its success is.
    let err = prices.share().await.expect_err("division by zero");
    assert_eq!(err.sqlstate().as_deref(), Some("22012"), "{err}");
    assert!(prices.share().await.is_err());
    assert_eq!(prices.runs().await, 2, "each failing call queried");
    support::setup(
        &prices.rt,
        "tests::cache::divisor",
        "update divisor set divisor = 2",
    )
    .await;
    assert_eq!(prices.share().await.unwrap(), 5);
    assert_eq!(prices.share().await.unwrap(), 5);
    assert_eq!(prices.runs().await, 3, "the success was kept");

    // After its time to live, an entry is queried again.
    prices.fresh().await.unwrap();
    let before = prices.runs().await;
    let mut waited = Duration::ZERO;
    while prices.runs().await == before {
        assert!(waited < Duration::from_secs(60), "the entry never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
        waited += Duration::from_millis(200);
        prices.fresh().await.unwrap();
    }
}

#[tokio::test]
async fn the_op_api_caches_read_only_ops_and_refuses_others() {
    let db = support::db().await;
    let rt = support::runtime(&db, &[]).await;
    support::setup(&rt, "tests::cache::seq", "create sequence runs").await;
    async fn call(rt: &Runtime, read_only: bool) -> Result<i64, Error> {
        rt.op("tests::cache::api")
            .read_only(read_only)
            .cache(Duration::from_secs(300))
            .run_cached(("key",), |conn| {
                Box::pin(async move {
                    let (n,): (i64,) = sqlx::query_as("select nextval('runs')")
                        .fetch_one(conn.as_mut())
                        .await?;
                    Ok::<_, Error>(n)
                })
            })
            .await
    }
    assert_eq!(call(&rt, true).await.unwrap(), 1);
    assert_eq!(call(&rt, true).await.unwrap(), 1, "answered from the cache");
    let err = call(&rt, false).await.expect_err("an op that may write");
    assert!(
        matches!(err, Error::Config { ref key, .. } if key == "cache"),
        "{err}"
    );
}
