//! A free function: the runtime is the `&Runtime` parameter, which stays in the signature.
#![deny(warnings)]

use sqlx::PgConnection;
use sqlx_resilience::{DbError, Runtime, db_op};

sqlx_resilience::policies! {
    pool http { max = 20 }
    retry transient { attempts = 3 }
}

#[db_op(pool = http, timeout = "250ms", idempotent)]
pub async fn touch(rt: &Runtime, conn: &mut PgConnection, id: i64, note: &str) -> Result<u64, DbError> {
    let _ = rt;
    let done = sqlx::query("update items set note = $2 where id = $1")
        .bind(id)
        .bind(note)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// A write that may not run twice, whose retry policy covers only failures before sending.
#[db_op(pool = http, retry = transient, retry_scope = "before_send")]
pub async fn append(rt: &Runtime, conn: &mut PgConnection, v: i64) -> Result<(), DbError> {
    let _ = rt;
    sqlx::query("insert into samples values ($1)").bind(v).execute(conn).await?;
    Ok(())
}

fn main() {
    let _ = |rt: &'static Runtime| touch(rt, 1, "hello");
    let _ = |rt: &'static Runtime| append(rt, 1);
}
