//! An error in one declaration still generates the others, so ops that use them do not fail too.

sqlx_resilience::policies! {
    pool http { max = 20 }
    pool ws { max = 0 }
}

use sqlx::PgConnection;
use sqlx_resilience::{DbError, Runtime, db_op};

#[db_op(pool = "http")]
pub async fn op(rt: &Runtime, conn: &mut PgConnection) -> Result<(), DbError> {
    sqlx::query("select 1").execute(conn).await?;
    Ok(())
}

fn main() {}
