//! A retry policy name `policies!` does not declare.
use sqlx::PgConnection;
use sqlx_resilience::{DbError, Runtime, db_op};

sqlx_resilience::policies! {
    pool http { max = 20 }
    breaker stats { consecutive_failures = 5 }
    retry transient { attempts = 3 }
    limiter api { per_second = 100 }
    bulkhead reports { max_concurrent = 4 }
}

#[db_op(retry = "transiant", read_only)]
pub async fn op(rt: &Runtime, conn: &mut PgConnection) -> Result<(), DbError> {
    sqlx::query("select 1").execute(conn).await?;
    Ok(())
}

fn main() {}
