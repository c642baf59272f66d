//! A retry policy on an op that may write and is not declared safe to run again: the attribute
//! must say which of the three it means.
use sqlx::PgConnection;
use sqlx_resilience::{DbError, Runtime, db_op};

sqlx_resilience::policies! {
    retry transient { attempts = 3 }
}

#[db_op(retry = "transient")]
pub async fn record(rt: &Runtime, conn: &mut PgConnection, v: i64) -> Result<(), DbError> {
    sqlx::query("insert into t values ($1)").bind(v).execute(conn).await?;
    Ok(())
}

fn main() {}
