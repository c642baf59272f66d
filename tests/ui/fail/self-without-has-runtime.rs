//! A method whose type does not give a runtime.
use sqlx::PgConnection;
use sqlx_resilience::{DbError, db_op};

sqlx_resilience::policies! {
    pool http { max = 20 }
    breaker stats { consecutive_failures = 5 }
    retry transient { attempts = 3 }
    limiter api { per_second = 100 }
    bulkhead reports { max_concurrent = 4 }
}

pub struct Repo;

impl Repo {
    #[db_op]
    pub async fn op(&self, conn: &mut PgConnection) -> Result<(), DbError> {
        sqlx::query("select 1").execute(conn).await?;
        Ok(())
    }
}

fn main() {}
