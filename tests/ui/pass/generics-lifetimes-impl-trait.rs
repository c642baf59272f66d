//! Generics, where clauses, named lifetimes and `impl Trait` arguments are kept; by-value
//! arguments are cloned for each attempt.
#![deny(warnings)]

use std::fmt::Display;

use sqlx::PgConnection;
use sqlx_resilience::{DbError, Runtime, db_op};

#[db_op]
pub async fn insert_all<'a, T, I>(
    rt: &'a Runtime,
    conn: &'a mut PgConnection,
    table: &'a str,
    rows: I,
    tag: impl Display + Clone + Send + Sync,
) -> Result<Vec<&'a str>, DbError>
where
    T: Display + Send + Sync,
    I: IntoIterator<Item = T> + Clone + Send + Sync,
    I::IntoIter: Send,
{
    for row in rows {
        sqlx::query("insert into t values ($1, $2)")
            .bind(row.to_string())
            .bind(tag.to_string())
            .execute(&mut *conn)
            .await?;
    }
    Ok(vec![table])
}

fn main() {
    let _ = |rt: &'static Runtime| insert_all(rt, "items", vec![1, 2, 3], "tag");
}
