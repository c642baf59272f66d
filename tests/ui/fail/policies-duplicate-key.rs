//! A key given twice in one declaration.
use sqlx_resilience::policies;

policies! {
    breaker stats { failures = 5, failures = 10 }
}

fn main() {}
