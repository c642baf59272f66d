//! Integration tests against real PostgreSQL from the test kit: a throwaway cluster (or
//! `DATABASE_URL`), a fresh database per test, faults from the kit's proxy and server controls.

mod budget;
mod drills;
mod pool;
mod shutdown;
mod support;
