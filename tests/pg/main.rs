//! Integration tests against real PostgreSQL from the test kit: a throwaway cluster (or
//! `DATABASE_URL`), a fresh database per test, faults from the kit's proxy and server controls.

// Helpers are `pub` inside this test binary's modules; nothing is exported from it.
#![allow(unreachable_pub)]

// The names `#[db_op]` functions of this binary use (tests/pg/macros.rs), at the crate root,
// where `#[db_op]` finds them without a `use`. Runtimes built with their own declarations
// (`.pool()`, `.declare()`) do not see them.
sqlx_resilience::policies! {
    pool main { max = 6 }
    retry contention { attempts = 5, base = "10ms", max_delay = "100ms" }
    breaker forced_open { mode = "forced_open" }
    limiter once_a_minute { per_second = 0.016, burst = 1, wait = false }
}

mod adopt;
mod background;
mod breaker;
mod budget;
mod cache;
mod classify;
mod classify_real;
mod copy;
mod credentials;
mod deadline;
mod drills;
mod failover;
mod faults;
mod host_breaker;
mod macros;
mod nested;
mod observe_health;
mod observe_monitor;
mod observe_pgstats;
mod observe_telemetry;
mod order;
mod outage;
mod pgbouncer;
mod pool;
mod pool_lifetimes;
mod replica_hosts;
mod replica_patroni;
mod replicas;
mod retry;
mod shutdown;
mod support;
mod tx;
