//! `#[db_op]` goes on functions.
use sqlx_resilience::db_op;

sqlx_resilience::policies! {
    pool http { max = 20 }
    breaker stats { consecutive_failures = 5 }
    retry transient { attempts = 3 }
    limiter api { per_second = 100 }
    bulkhead reports { max_concurrent = 4 }
}

#[db_op(pool = "http")]
pub struct Repo;

fn main() {}
