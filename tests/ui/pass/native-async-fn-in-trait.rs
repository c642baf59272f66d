//! A trait with native `async fn`: the impl's method takes the connection, the trait does not.
#![deny(warnings)]

use sqlx::PgConnection;
use sqlx_resilience::{DbError, HasRuntime, Runtime, db_op};

pub trait Accounts {
    fn balance(&self, id: i64) -> impl std::future::Future<Output = Result<i64, DbError>> + Send;
    #[allow(async_fn_in_trait)]
    async fn rename(&self, id: i64, name: String) -> Result<(), DbError>;
}

#[derive(HasRuntime)]
pub struct PgAccounts {
    rt: Runtime,
}


impl Accounts for PgAccounts {
    #[db_op(read_only, timeout = "2s")]
    async fn balance(&self, conn: &mut PgConnection, id: i64) -> Result<i64, DbError> {
        let (cents,): (i64,) = sqlx::query_as("select cents from accounts where id = $1")
            .bind(id)
            .fetch_one(conn)
            .await?;
        Ok(cents)
    }

    #[db_op(idempotent)]
    async fn rename(&self, conn: &mut PgConnection, id: i64, name: String) -> Result<(), DbError> {
        sqlx::query("update accounts set name = $2 where id = $1")
            .bind(id)
            .bind(name)
            .execute(conn)
            .await?;
        Ok(())
    }
}

fn main() {
    let _ = |a: &'static PgAccounts| a.balance(1);
}
