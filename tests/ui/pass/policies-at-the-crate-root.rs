//! `policies!` at the crate root: ops in any module find the names without a `use`, and a
//! repository finds its runtime through `#[derive(HasRuntime)]`.
#![deny(warnings)]

sqlx_resilience::policies! {
    pool http { max = 20 }
    retry transient { attempts = 3 }
}

mod deep {
    pub mod repo {
        use sqlx::PgConnection;
        use sqlx_resilience::{DbError, HasRuntime, Runtime, db_op};

        #[derive(HasRuntime)]
        pub struct Repo {
            pub rt: Runtime,
            pub region: String,
        }

        impl Repo {
            #[db_op(pool = "http", retry = transient, read_only)]
            pub async fn one(&self, conn: &mut PgConnection) -> Result<i64, DbError> {
                let (n,): (i64,) = sqlx::query_as("select 1::int8").fetch_one(conn).await?;
                Ok(n)
            }
        }
    }
}

fn main() {
    let _ = |repo: &'static deep::repo::Repo| repo.one();
}
