//! PostgreSQL has three isolation levels.
use sqlx_resilience::{DbError, Runtime, db_op};

sqlx_resilience::policies! {
    pool http { max = 20 }
    breaker stats { consecutive_failures = 5 }
    retry transient { attempts = 3 }
    limiter api { per_second = 100 }
    bulkhead reports { max_concurrent = 4 }
}

#[db_op(tx, isolation = "snapshot")]
pub async fn op(rt: &Runtime, tx: &mut sqlx_resilience::Tx<'_>) -> Result<(), DbError> {
    sqlx::query("select 1").execute(&mut **tx).await?;
    Ok(())
}

fn main() {}
