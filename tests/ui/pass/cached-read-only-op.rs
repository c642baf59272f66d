//! A cached read-only op: its arguments by value and by reference make the key.
use sqlx::PgConnection;
use sqlx_resilience::{DbError, HasRuntime, Runtime, db_op};

sqlx_resilience::policies! {
    pool http { max = 20 }
    retry transient { attempts = 3 }
}

#[derive(HasRuntime)]
pub struct Kols {
    rt: Runtime,
}

impl Kols {
    #[db_op(pool = http, read_only, retry = transient, cache = "5m")]
    pub async fn followers(
        &self,
        conn: &mut PgConnection,
        platform: &str,
        handle: String,
        ids: &[i64],
    ) -> Result<Vec<i64>, DbError> {
        let rows: Vec<(i64,)> = sqlx::query_as(
            "select followers from kols where platform = $1 and handle = $2 and id = any($3)",
        )
        .bind(platform)
        .bind(&handle)
        .bind(ids)
        .fetch_all(conn)
        .await?;
        Ok(rows.into_iter().map(|(n,)| n).collect())
    }
}

#[db_op(read_only, cache = "30s", retry = none)]
pub async fn count(rt: &Runtime, conn: &mut PgConnection) -> Result<i64, DbError> {
    let (n,): (i64,) = sqlx::query_as("select count(*) from kols").fetch_one(conn).await?;
    Ok(n)
}

fn main() {}
