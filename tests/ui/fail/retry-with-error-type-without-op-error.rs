//! A retry policy must tell the database's failures from the application's: an error type
//! that only converts from `DbError` hides them, which used to compile and silently get no
//! retry at all.
use sqlx::PgConnection;
use sqlx_resilience::{DbError, Runtime, db_op};

sqlx_resilience::policies! {
    retry transient { attempts = 3 }
}

#[derive(Debug)]
pub struct Opaque(pub String);

impl From<DbError> for Opaque {
    fn from(e: DbError) -> Self {
        Opaque(e.to_string())
    }
}

#[db_op(retry = "transient", read_only)]
pub async fn read(rt: &Runtime, conn: &mut PgConnection) -> Result<(), Opaque> {
    sqlx::query("select 1").execute(conn).await.map_err(|e| Opaque(e.to_string()))?;
    Ok(())
}

fn main() {}
