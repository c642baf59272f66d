//! `self` by value would be consumed by the first attempt.
use sqlx::PgConnection;
use sqlx_resilience::{DbError, Runtime, db_op};

sqlx_resilience::policies! {
    pool http { max = 20 }
    breaker stats { consecutive_failures = 5 }
    retry transient { attempts = 3 }
    limiter api { per_second = 100 }
    bulkhead reports { max_concurrent = 4 }
}

#[derive(Clone)]
pub struct Repo {
    rt: Runtime,
}

impl sqlx_resilience::HasRuntime for Repo {
    fn runtime(&self) -> &Runtime {
        &self.rt
    }
}

impl Repo {
    #[db_op]
    pub async fn consume(self, conn: &mut PgConnection) -> Result<(), DbError> {
        sqlx::query("select 1").execute(conn).await?;
        Ok(())
    }
}

fn main() {}
