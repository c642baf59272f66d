//! Breaker keys that need another key, and two windows at once.
use sqlx_resilience::policies;

policies! {
    breaker a { failures = 5 }
    breaker b { slow_rate = 50 }
    breaker c { failure_rate = 50, window = "1m", window_calls = 100 }
}

fn main() {}
