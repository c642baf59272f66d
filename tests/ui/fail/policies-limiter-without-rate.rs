//! A limiter has no default rate.
use sqlx_resilience::policies;

policies! {
    limiter api { burst = 10 }
}

fn main() {}
