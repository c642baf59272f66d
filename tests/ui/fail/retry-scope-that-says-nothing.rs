//! `retry_scope` narrows a retry policy on an unsafe write: on a safe op, or without a retry
//! policy, it says nothing and is an error.
use sqlx::PgConnection;
use sqlx_resilience::{DbError, Runtime, db_op};

sqlx_resilience::policies! {
    retry transient { attempts = 3 }
}

#[db_op(retry = "transient", idempotent, retry_scope = "before_send")]
pub async fn upsert(rt: &Runtime, conn: &mut PgConnection) -> Result<(), DbError> {
    sqlx::query("select 1").execute(conn).await?;
    Ok(())
}

#[db_op(retry_scope = "before_send")]
pub async fn no_policy(rt: &Runtime, conn: &mut PgConnection) -> Result<(), DbError> {
    sqlx::query("select 1").execute(conn).await?;
    Ok(())
}

#[db_op(retry = "transient", retry_scope = "after_send")]
pub async fn unknown(rt: &Runtime, conn: &mut PgConnection) -> Result<(), DbError> {
    sqlx::query("select 1").execute(conn).await?;
    Ok(())
}

fn main() {}
