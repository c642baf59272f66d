//! `policies!` in another module, with its own name: ops name it with `policies = path`.
#![deny(warnings)]

mod db {
    sqlx_resilience::policies! {
        /// Every pool and policy of the application.
        pub mod db_policies;
        pool http { max = 20 }
        retry transient { attempts = 3 }
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
        repo_with_key::two(rt).await
    };
}
