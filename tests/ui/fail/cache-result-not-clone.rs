//! A cached op's result is kept and cloned for each caller: it must be `Clone`.
use sqlx::PgConnection;
use sqlx_resilience::{DbError, Runtime, db_op};

sqlx_resilience::policies! {
    pool http { max = 20 }
}

pub struct Report {
    pub rows: i64,
}

#[db_op(read_only, cache = "5m")]
pub async fn report(rt: &Runtime, conn: &mut PgConnection) -> Result<Report, DbError> {
    let (rows,): (i64,) = sqlx::query_as("select count(*) from t").fetch_one(conn).await?;
    Ok(Report { rows })
}

fn main() {}
