//! The body runs once per attempt: it cannot hold `&mut self`.
use sqlx::PgConnection;
use sqlx_resilience::{DbError, Runtime, db_op};

sqlx_resilience::policies! {
    pool http { max = 20 }
    breaker stats { consecutive_failures = 5 }
    retry transient { attempts = 3 }
    limiter api { per_second = 100 }
    bulkhead reports { max_concurrent = 4 }
}

pub struct Repo {
    rt: Runtime,
    count: u64,
}

impl sqlx_resilience::HasRuntime for Repo {
    fn runtime(&self) -> &Runtime {
        &self.rt
    }
}

impl Repo {
    #[db_op]
    pub async fn bump(&mut self, conn: &mut PgConnection) -> Result<(), DbError> {
        self.count += 1;
        sqlx::query("select 1").execute(conn).await?;
        Ok(())
    }
}

fn main() {}
