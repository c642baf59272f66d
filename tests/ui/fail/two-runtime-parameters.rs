//! Two runtimes: the op must be told which one.
use sqlx::PgConnection;
use sqlx_resilience::{DbError, Runtime, db_op};

sqlx_resilience::policies! {
    pool http { max = 20 }
    breaker stats { consecutive_failures = 5 }
    retry transient { attempts = 3 }
    limiter api { per_second = 100 }
    bulkhead reports { max_concurrent = 4 }
}

#[db_op]
pub async fn op(primary: &Runtime, replica: &Runtime, conn: &mut PgConnection) -> Result<(), DbError> {
    let _ = (primary, replica);
    sqlx::query("select 1").execute(conn).await?;
    Ok(())
}

fn main() {}
