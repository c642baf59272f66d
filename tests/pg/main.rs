//! Integration tests against real PostgreSQL from the test kit: a throwaway cluster (or
//! `DATABASE_URL`), a fresh database per test, faults from the kit's proxy and server controls.

// Helpers are `pub` inside this test binary's modules; nothing is exported from it.
#![allow(unreachable_pub)]

mod breaker;
mod budget;
mod classify;
mod deadline;
mod drills;
mod macros;
mod observe_health;
mod observe_monitor;
mod observe_pgstats;
mod observe_telemetry;
mod order;
mod outage;
mod pool;
mod retry;
mod shutdown;
mod support;
mod tx;
