//! A `tx` op takes the runtime's `Tx`, not sqlx's `Transaction`: the body must not be able to
//! commit or roll back what the runtime manages.
use sqlx_resilience::{DbError, Runtime, db_op};

sqlx_resilience::policies! {
    pool main;
}

#[db_op(tx)]
pub async fn op(rt: &Runtime, tx: &mut sqlx::Transaction<'_, sqlx::Postgres>) -> Result<(), DbError> {
    sqlx::query("select 1").execute(&mut **tx).await?;
    Ok(())
}

fn main() {}
