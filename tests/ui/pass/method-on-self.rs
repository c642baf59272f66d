//! A `&self` method: the runtime comes from `HasRuntime` on the repository, the connection
//! parameter disappears from the public signature.
#![deny(warnings)]

use sqlx::PgConnection;
use sqlx_resilience::{DbError, HasRuntime, Runtime, db_op};

sqlx_resilience::policies! {
    pool http { max = 150, min = 10, acquire_timeout = "2s" }
    breaker harvest_stats { failures = 5, within = "60s", open_for = "30s", half_open = 3 }
    retry transient { attempts = 4, base = "50ms", max_delay = "2s" }
    limiter api { per_second = 100, burst = 20 }
    bulkhead reports { max_concurrent = 8, max_queue = 32 }
}

#[derive(HasRuntime)]
pub struct HarvestRepo {
    rt: Runtime,
}


impl HarvestRepo {
    #[db_op(pool = "http", timeout = "5s", deadline = "20s", retry = "transient",
            breaker = "harvest_stats", limiter = "api", bulkhead = "reports", read_only,
            slow = "1s")]
    pub async fn statistics(&self, conn: &mut PgConnection, estate: i64) -> Result<i64, DbError> {
        let (n,): (i64,) = sqlx::query_as("select $1::bigint")
            .bind(estate)
            .fetch_one(&mut *conn)
            .await?;
        Ok(n)
    }
}

async fn caller(repo: &HarvestRepo) -> Result<i64, DbError> {
    repo.statistics(42).await
}

fn assert_send<F: std::future::Future + Send>(_: F) {}

fn main() {
    let _ = policies::declared();
    let _ = |repo: &'static HarvestRepo| assert_send(caller(repo));
}
