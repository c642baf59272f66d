//! `#[derive(HasRuntime)]` needs a field that gives the runtime.
use sqlx_resilience::HasRuntime;

#[derive(HasRuntime)]
pub struct Repo {
    pub pool: sqlx::PgPool,
}

fn main() {}
