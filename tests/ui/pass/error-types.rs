//! Error types: `DbError`; an application error that wraps it (`OpError`, so failures are
//! classified); an opaque error that only converts from it; and an alias of `Result`. `?` works
//! on sqlx errors and on the runtime's.
#![deny(warnings)]

use sqlx::PgConnection;
use sqlx_resilience::{DbError, OpError, Runtime, db_op};

#[derive(Debug)]
pub enum AppError {
    Db(DbError),
    NotFound(i64),
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        AppError::Db(e)
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        AppError::Db(e.into())
    }
}

impl OpError for AppError {
    fn db_error(&mut self) -> Option<&mut DbError> {
        match self {
            AppError::Db(e) => Some(e),
            AppError::NotFound(_) => None,
        }
    }
}

#[derive(Debug)]
pub struct Opaque(pub String);

impl From<DbError> for Opaque {
    fn from(e: DbError) -> Self {
        Opaque(e.to_string())
    }
}

pub type DbResult<T> = Result<T, DbError>;

#[db_op]
pub async fn find(rt: &Runtime, conn: &mut PgConnection, id: i64) -> Result<String, AppError> {
    let row: Option<(String,)> = sqlx::query_as("select name from t where id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    match row {
        Some((name,)) => Ok(name),
        None => Err(AppError::NotFound(id)),
    }
}

#[db_op]
pub async fn opaque(rt: &Runtime, conn: &mut PgConnection) -> Result<(), Opaque> {
    sqlx::query("select 1").execute(conn).await.map_err(|e| Opaque(e.to_string()))?;
    Ok(())
}

#[db_op]
pub async fn aliased(rt: &Runtime, conn: &mut PgConnection) -> DbResult<i64> {
    let (n,): (i64,) = sqlx::query_as("select 1::bigint").fetch_one(conn).await?;
    if n < 0 {
        return Err(DbError::from(sqlx::Error::RowNotFound));
    }
    Ok(n)
}

#[db_op]
pub async fn runtime_result(rt: &Runtime, conn: &mut PgConnection) -> sqlx_resilience::Result<()> {
    sqlx::query("select 1").execute(conn).await?;
    Ok(())
}

fn main() {
    let _ = |rt: &'static Runtime| async move {
        let _ = find(rt, 1).await;
        let _ = opaque(rt).await;
        let _ = aliased(rt).await;
        runtime_result(rt).await
    };
}
