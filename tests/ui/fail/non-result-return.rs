//! Failures of the policies reach the caller through the error type.
use sqlx::PgConnection;
use sqlx_resilience::{Runtime, db_op};

sqlx_resilience::policies! {
    pool http { max = 20 }
    breaker stats { consecutive_failures = 5 }
    retry transient { attempts = 3 }
    limiter api { per_second = 100 }
    bulkhead reports { max_concurrent = 4 }
}

#[db_op]
pub async fn op(rt: &Runtime, conn: &mut PgConnection) -> i64 {
    let _ = conn;
    1
}

fn main() {}
