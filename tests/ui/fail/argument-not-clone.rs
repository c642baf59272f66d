//! A by-value argument that cannot be copied for the next attempt.
use sqlx::PgConnection;
use sqlx_resilience::{DbError, Runtime, db_op};

sqlx_resilience::policies! {
    pool http { max = 20 }
    breaker stats { consecutive_failures = 5 }
    retry transient { attempts = 3 }
    limiter api { per_second = 100 }
    bulkhead reports { max_concurrent = 4 }
}

pub struct Batch {
    pub rows: Vec<i64>,
}

#[db_op]
pub async fn op(rt: &Runtime, conn: &mut PgConnection, batch: Batch) -> Result<(), DbError> {
    for row in batch.rows {
        sqlx::query("select $1").bind(row).execute(&mut *conn).await?;
    }
    Ok(())
}

fn main() {}
