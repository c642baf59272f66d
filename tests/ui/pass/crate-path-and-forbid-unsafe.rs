//! A crate that forbids `unsafe` and reaches sqlx-resilience through its own re-export
//! (`crate = path`), with the runtime found through a parameter named by `runtime = ..`.
#![forbid(unsafe_code)]
#![deny(warnings)]

pub mod facade {
    pub use sqlx_resilience::*;
}

facade::policies! {
    crate = crate::facade;
    pool http { max = 10 }
}

use std::sync::Arc;

use sqlx::PgConnection;

pub struct AppState {
    rt: facade::Runtime,
}

impl facade::HasRuntime for AppState {
    fn runtime(&self) -> &facade::Runtime {
        &self.rt
    }
}

#[facade::db_op(crate = crate::facade, pool = "http", runtime = state)]
pub async fn ping(state: Arc<AppState>, conn: &mut PgConnection) -> Result<(), facade::DbError> {
    sqlx::query("select 1").execute(conn).await?;
    let _ = &state.rt;
    Ok(())
}

#[facade::db_op(crate = crate::facade)]
pub async fn by_value_runtime(rt: facade::Runtime, conn: &mut PgConnection) -> Result<(), facade::DbError> {
    sqlx::query("select 1").execute(conn).await?;
    Ok(())
}

fn main() {
    let _ = |state: Arc<AppState>| ping(state);
    let _ = |rt: facade::Runtime| by_value_runtime(rt);
}
