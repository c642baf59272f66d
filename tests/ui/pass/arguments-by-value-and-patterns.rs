//! Arguments by value are cloned for each attempt (`Copy` types too), patterns and `mut`
//! bindings work as written, references are shared by every attempt.
#![deny(warnings)]

use std::sync::Arc;

use sqlx::PgConnection;
use sqlx_resilience::{DbError, Runtime, db_op};

#[derive(Clone, Debug)]
pub struct Estate {
    pub id: i64,
    pub name: String,
}

#[db_op(idempotent)]
pub async fn save(
    rt: &Runtime,
    conn: &mut PgConnection,
    estate: Estate,
    mut tags: Vec<String>,
    (x, y): (i64, i64),
    shared: Arc<str>,
    by_ref: &Estate,
    _unused: u8,
) -> Result<usize, DbError> {
    tags.push(estate.name.clone());
    sqlx::query("insert into estates values ($1, $2, $3, $4)")
        .bind(estate.id + x + y + by_ref.id)
        .bind(tags.join(","))
        .bind(shared.to_string())
        .bind(by_ref.name.as_str())
        .execute(conn)
        .await?;
    Ok(tags.len())
}

fn main() {
    let estate = Estate { id: 1, name: "home".into() };
    let _ = move |rt: &'static Runtime| save(rt, estate.clone(), vec![], (1, 2), Arc::from("s"), Box::leak(Box::new(estate)), 0);
}
