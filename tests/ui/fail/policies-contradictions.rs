//! Settings that contradict each other.
use sqlx_resilience::policies;

policies! {
    retry r { base = "5s", max_delay = "1s" }
    breaker b { open_for = "1m", open_for_max = "30s", window_calls = 10, minimum_calls = 20 }
    limiter l { wait = false, max_wait = "1s" }
}

fn main() {}
