//! A transactional op: the parameter is the transaction, which the runtime begins on each
//! attempt (with the isolation level) and commits when the body returns `Ok`.
#![deny(warnings)]

use sqlx_resilience::{DbError, Runtime, Tx, db_op};

sqlx_resilience::policies! {
    pool http { max = 20 }
    retry contention { attempts = 5, on contention { attempts = 5, base = "10ms" } }
}

#[db_op(tx, isolation = "serializable", pool = "http", retry = "contention")]
pub async fn transfer(rt: &Runtime, tx: &mut Tx<'_>, from: i64, to: i64, cents: i64) -> Result<(), DbError> {
    sqlx::query("update accounts set cents = cents - $2 where id = $1")
        .bind(from)
        .bind(cents)
        .execute(&mut **tx)
        .await?;
    sqlx::query("update accounts set cents = cents + $2 where id = $1")
        .bind(to)
        .bind(cents)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[db_op(tx = true, isolation = repeatable_read, read_only)]
pub async fn report(rt: &Runtime, tx: &mut Tx<'_>) -> Result<i64, DbError> {
    let (n,): (i64,) = sqlx::query_as("select count(*) from accounts").fetch_one(&mut **tx).await?;
    Ok(n)
}

fn main() {
    let _ = |rt: &'static Runtime| async move {
        transfer(rt, 1, 2, 100).await?;
        report(rt).await
    };
}
