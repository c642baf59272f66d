//! `max_lag` on an op not declared read-only: only read-only ops go to a replica.
use sqlx::PgConnection;
use sqlx_resilience::{DbError, Runtime, db_op};

sqlx_resilience::policies! {
    pool http { max = 20, replicas = "postgres://app@replica1/app" }
}

#[db_op(max_lag = "500ms")]
pub async fn touch(rt: &Runtime, conn: &mut PgConnection, id: i64) -> Result<i64, DbError> {
    let (n,): (i64,) = sqlx::query_as("update t set seen = now() where id = $1 returning id")
        .bind(id)
        .fetch_one(conn)
        .await?;
    Ok(n)
}

fn main() {}
