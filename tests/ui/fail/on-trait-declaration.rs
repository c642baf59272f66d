//! `#[db_op]` goes on the implementation, not the trait's declaration.
use sqlx_resilience::{DbError, db_op};

sqlx_resilience::policies! {
    pool http { max = 20 }
    breaker stats { consecutive_failures = 5 }
    retry transient { attempts = 3 }
    limiter api { per_second = 100 }
    bulkhead reports { max_concurrent = 4 }
}

pub trait Repo {
    #[db_op]
    async fn op(&self) -> Result<(), DbError>;
}

fn main() {}
