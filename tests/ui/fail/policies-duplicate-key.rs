//! A key given twice in one declaration.
use sqlx_resilience::policies;

policies! {
    breaker stats { consecutive_failures = 5, consecutive_failures = 10 }
}

fn main() {}
