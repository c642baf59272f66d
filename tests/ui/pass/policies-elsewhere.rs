//! `policies!` in another module, with its own name: ops bring it into scope with `use`, or
//! name it with `policies = path`.
#![deny(warnings)]

mod db {
    sqlx_resilience::policies! {
        /// Every pool and policy of the application.
        pub mod db_policies;
        pool http { max = 20 }
        retry transient { attempts = 3 }
    }
}

mod repo_with_use {
    use crate::db::db_policies as policies;
    use sqlx::PgConnection;
    use sqlx_resilience::{DbError, Runtime, db_op};

    #[db_op(pool = "http", retry = "transient")]
    pub async fn one(rt: &Runtime, conn: &mut PgConnection) -> Result<(), DbError> {
        sqlx::query("select 1").execute(conn).await?;
        Ok(())
    }
}

mod repo_with_key {
    use sqlx::PgConnection;
    use sqlx_resilience::{DbError, Runtime, db_op};

    #[db_op(pool = http, policies = crate::db::db_policies, name = "repo.two")]
    pub async fn two(rt: &Runtime, conn: &mut PgConnection) -> Result<(), DbError> {
        sqlx::query("select 1").execute(conn).await?;
        Ok(())
    }
}

fn main() {
    let _ = |rt: &'static sqlx_resilience::Runtime| async move {
        repo_with_use::one(rt).await?;
        repo_with_key::two(rt).await
    };
}
