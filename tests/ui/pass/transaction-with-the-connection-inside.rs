//! A `tx` op may take the connection inside its transaction, as sqlx users write it.
#![deny(warnings)]
use sqlx::PgConnection;
use sqlx_resilience::{DbError, Runtime, db_op};

sqlx_resilience::policies! {
    pool http { max = 20 }
    retry transient { attempts = 3 }
}

#[db_op(tx, pool = http, retry = transient)]
pub async fn op(rt: &Runtime, conn: &mut PgConnection) -> Result<(), DbError> {
    sqlx::query("select 1").execute(&mut *conn).await?;
    sqlx::query("select 2").execute(conn).await?;
    Ok(())
}

fn main() {
    let _ = |rt: &'static Runtime| op(rt);
}
