//! Integration tests against real PostgreSQL from the test kit: a throwaway cluster (or
//! `DATABASE_URL`), a fresh database per test, faults from the kit's proxy and server controls.

mod breaker;
mod budget;
mod classify;
mod deadline;
mod macros;
mod order;
mod pool;
mod retry;
mod shutdown;
mod support;
mod tx;
