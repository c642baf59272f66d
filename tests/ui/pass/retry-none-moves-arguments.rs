//! With `retry = none` the body runs once, so arguments are moved into it: they need not be
//! `Clone`, and `&mut` borrows are allowed.
#![deny(warnings)]

use sqlx::PgConnection;
use sqlx_resilience::{DbError, Runtime, db_op};

pub struct Batch {
    pub rows: Vec<i64>,
}

#[db_op(retry = none)]
pub async fn load(rt: &Runtime, conn: &mut PgConnection, batch: Batch, seen: &mut Vec<i64>) -> Result<(), DbError> {
    for row in batch.rows {
        sqlx::query("insert into t values ($1)").bind(row).execute(&mut *conn).await?;
        seen.push(row);
    }
    Ok(())
}

fn main() {
    let _ = |rt: &'static Runtime, seen: &'static mut Vec<i64>| load(rt, Batch { rows: vec![1] }, seen);
}
