//! `on <kind> { .. }` blocks belong to retry policies.
use sqlx_resilience::policies;

policies! {
    breaker b { on connection_lost { failures = 5 } }
}

fn main() {}
