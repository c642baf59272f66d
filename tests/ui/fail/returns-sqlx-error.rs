//! `sqlx::Error` cannot carry a timeout, an open breaker or an unreachable database: the op
//! must return `DbError`.
use sqlx::PgConnection;
use sqlx_resilience::{Runtime, db_op};

#[db_op]
pub async fn read(rt: &Runtime, conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as("select 1::int8").fetch_one(conn).await?;
    Ok(n)
}

#[db_op]
pub async fn count(rt: &Runtime, conn: &mut PgConnection) -> sqlx::Result<i64> {
    let (n,): (i64,) = sqlx::query_as("select 1::int8").fetch_one(conn).await?;
    Ok(n)
}

fn main() {}
