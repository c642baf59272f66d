//! Durations: bad syntax, zero, and above a key's bound.
use sqlx_resilience::policies;

policies! {
    pool http { acquire_timeout = "2 secs" }
    breaker b { within = "2h", open_for = "0s" }
    retry r { base = 50 }
}

fn main() {}
