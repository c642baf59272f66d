//! A method that has `&self` and a `&Runtime` parameter runs on the parameter's runtime; a
//! static method finds it in its parameter.
#![deny(warnings)]

use sqlx::PgConnection;
use sqlx_resilience::{DbError, HasRuntime, Runtime, db_op};

pub struct Repo {
    rt: Runtime,
}

impl HasRuntime for Repo {
    fn runtime(&self) -> &Runtime {
        &self.rt
    }
}

impl Repo {
    #[db_op]
    pub async fn on_other(&self, rt: &Runtime, conn: &mut PgConnection) -> Result<(), DbError> {
        sqlx::query("select 1").execute(conn).await?;
        let _ = (&self.rt, rt);
        Ok(())
    }

    #[db_op(runtime = self)]
    pub async fn on_own(&self, other: &Runtime, conn: &mut PgConnection) -> Result<(), DbError> {
        sqlx::query("select 1").execute(conn).await?;
        let _ = other;
        Ok(())
    }

    #[db_op]
    pub async fn create(rt: &Runtime, conn: &mut PgConnection) -> Result<i64, DbError> {
        let (n,): (i64,) = sqlx::query_as("select 1::bigint").fetch_one(conn).await?;
        Ok(n)
    }
}

fn main() {
    let _ = |repo: &'static Repo| async move {
        repo.on_other(&repo.rt).await?;
        repo.on_own(&repo.rt).await?;
        Repo::create(&repo.rt).await
    };
}
