//! A free function: the runtime is the `&Runtime` parameter, which stays in the signature.
#![deny(warnings)]

use sqlx::PgConnection;
use sqlx_resilience::{DbError, Runtime, db_op};

sqlx_resilience::policies! {
    pool http { max = 20 }
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

fn main() {
    let _ = |rt: &'static Runtime| touch(rt, 1, "hello");
}
