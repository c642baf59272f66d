//! The nested form runs on the caller's connection, which is not a `Tx`.
use sqlx_resilience::{DbError, Runtime, Tx, db_op};

sqlx_resilience::policies! {
    pool http { max = 20 }
}

#[db_op(tx, nested = create_in)]
pub async fn create(rt: &Runtime, tx: &mut Tx<'_>, id: i64) -> Result<(), DbError> {
    sqlx::query("insert into orders values ($1)").bind(id).execute(&mut *tx).await?;
    Ok(())
}

fn main() {}
