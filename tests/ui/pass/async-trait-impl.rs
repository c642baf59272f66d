//! `#[async_trait]` on the impl expands before `#[db_op]` on its methods; `#[db_op]` recognises
//! the boxed future it produced and wraps it the same way, keeping the trait's signature.
#![deny(warnings)]

use async_trait::async_trait;
use sqlx::PgConnection;
use sqlx_resilience::{DbError, HasRuntime, Runtime, db_op};

#[async_trait]
pub trait Harvests: Send + Sync {
    async fn total(&self, estate: i64, season: &str) -> Result<i64, DbError>;
    async fn record(&self, estate: i64, tons: i64) -> Result<(), DbError>;
}

#[derive(HasRuntime)]
pub struct PgHarvests {
    rt: Runtime,
}


#[async_trait]
impl Harvests for PgHarvests {
    #[db_op(read_only, timeout = "3s")]
    async fn total(&self, conn: &mut PgConnection, estate: i64, season: &str) -> Result<i64, DbError> {
        let (n,): (i64,) = sqlx::query_as("select sum(tons) from harvests where estate = $1 and season = $2")
            .bind(estate)
            .bind(season)
            .fetch_one(&mut *conn)
            .await?;
        let _ = &self.rt;
        Ok(n)
    }

    #[db_op(retry = none)]
    async fn record(&self, conn: &mut PgConnection, estate: i64, tons: i64) -> Result<(), DbError> {
        sqlx::query("insert into harvests values ($1, $2)")
            .bind(estate)
            .bind(tons)
            .execute(conn)
            .await?;
        Ok(())
    }
}

fn main() {
    let _ = |repo: &'static dyn Harvests| repo.total(1, "2024");
    let _ = |repo: &'static PgHarvests| repo.record(1, 2);
}
