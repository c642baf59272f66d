//! The seed systems' declarations: seed 000 (three pools, a breaker that opens after 5
//! failures), seed 004 (a breaker
//! with a window and half-open probes, and a retry table per failure kind), seed 003 (a breaker
//! on consecutive failures).
#![deny(warnings)]

mod seed_000 {
    sqlx_resilience::policies! {
        pool http { max = 150 }
        pool ws { max = 30 }
        pool background { max = 20 }
        breaker db { consecutive_failures = 5 }
    }
}

mod seed_004 {
    sqlx_resilience::policies! {
        /// Harvest statistics: the slow, heavy queries.
        breaker harvest_stats { failures = 5, within = "60s", open_for = "30s", half_open = 3 }
        retry harvest {
            on connection_lost { attempts = 5, base = "500ms", factor = 1.5 },
            on backpressure { attempts = 10, base = "2s", factor = 2 },
            on contention { attempts = 3, base = "1s", factor = 2.0 },
            on statement_timeout { attempts = 1 },
        }
    }
}

mod seed_003 {
    sqlx_resilience::policies! {
        breaker primary { consecutive_failures = 10, open_for = "60s" }
    }
}

mod everything {
    sqlx_resilience::policies! {
        pool main {
            url = "postgres://app@localhost/app", max = 50, min = 5, acquire_timeout = "2s",
            idle_timeout = "10m", max_lifetime = "30m", connect_timeout = "5s", startup = "lazy",
            startup_timeout = "30s", validation = "idle", validation_window = "1s",
            leak_threshold = "30s", statement_timeout = "10s", lock_timeout = "2s",
            idle_in_transaction_session_timeout = "1m", application_name = "harvest",
            search_path = "app, public", client_connection_check_interval = "5s",
        }
        pool replica;
        breaker b {
            failures = 5, within = "1m", consecutive_failures = 3, failure_rate = 50,
            slow_rate = 75.5, slow_call = "2s", window = "1m",
            minimum_calls = 10, open_for = "5s", open_for_max = "5m", open_backoff = 2.0,
            half_open = 2, mode = "normal",
        }
        retry r {
            attempts = 3, base = "10ms", factor = 2, max_delay = "1s", max_elapsed = "10s",
            jitter = "full", budget_percent = 20, budget_min_per_second = 10,
            budget_window = "10s",
            on failover { attempts = 2, max_delay = "3s" },
            on server_shutdown { base = "1s" },
            on deadline { attempts = 1 },
            on canceled { attempts = 1 },
        }
        limiter l { per_second = 0.5, burst = 1, wait = true, max_wait = "1s", per_key = true, max_keys = 1000 }
        bulkhead h { max_concurrent = 10, max_queue = 0, max_wait = "100ms" }
    }
}

fn main() {
    let _ = seed_000::policies::declared();
    let _ = seed_004::policies::declared();
    let _ = seed_003::policies::declared();
    let _ = everything::policies::declared();
    let _ = (&seed_000::policies::pool::http, &everything::policies::limiter::l);
}
