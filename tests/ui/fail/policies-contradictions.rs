//! Settings that contradict each other.
use sqlx_resilience::policies;

policies! {
    retry r { base = "5s", max_delay = "1s" }
    breaker b { open_for = "1m", open_for_max = "30s", failure_rate = 50, window_calls = 10, minimum_calls = 20 }
    limiter l { per_second = 10, wait = false, max_wait = "1s" }
    pool p { lock_timeout = "5s", statement_timeout = "1s" }
}

fn main() {}
