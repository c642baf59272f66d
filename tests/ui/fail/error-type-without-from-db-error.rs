//! The error type must carry the runtime's failures.
use sqlx::PgConnection;
use sqlx_resilience::{Runtime, db_op};

sqlx_resilience::policies! {
    pool http { max = 20 }
    breaker stats { consecutive_failures = 5 }
    retry transient { attempts = 3 }
    limiter api { per_second = 100 }
    bulkhead reports { max_concurrent = 4 }
}

#[derive(Debug)]
pub struct MyError;

impl From<sqlx::Error> for MyError {
    fn from(_: sqlx::Error) -> Self {
        MyError
    }
}

#[db_op]
pub async fn op(rt: &Runtime, conn: &mut PgConnection) -> Result<(), MyError> {
    sqlx::query("select 1").execute(conn).await?;
    Ok(())
}

fn main() {}
