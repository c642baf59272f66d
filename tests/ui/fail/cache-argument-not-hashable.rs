//! A cached op's arguments make its cache key: a float is not `Hash + Eq`.
use sqlx::PgConnection;
use sqlx_resilience::{DbError, Runtime, db_op};

sqlx_resilience::policies! {
    pool http { max = 20 }
}

#[db_op(read_only, cache = "5m")]
pub async fn near(rt: &Runtime, conn: &mut PgConnection, lat: f64) -> Result<i64, DbError> {
    let (n,): (i64,) = sqlx::query_as("select count(*) from places where lat > $1")
        .bind(lat)
        .fetch_one(conn)
        .await?;
    Ok(n)
}

fn main() {}
