//! Names are found under `crate::policies` unless `policies = path` says where: a `policies!`
//! in a module is not found by default.

mod db {
    sqlx_resilience::policies! {
        pool http { max = 20 }
    }
}

mod repo {
    use sqlx::PgConnection;
    use sqlx_resilience::{DbError, Runtime, db_op};

    #[db_op(pool = "http")]
    pub async fn op(rt: &Runtime, conn: &mut PgConnection) -> Result<(), DbError> {
        sqlx::query("select 1").execute(conn).await?;
        Ok(())
    }
}

fn main() {}
