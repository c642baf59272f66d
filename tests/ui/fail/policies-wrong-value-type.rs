//! Values of the wrong type.
use sqlx_resilience::policies;

policies! {
    pool http { max = "150", url = 5 }
    limiter l { per_second = 10, wait = "yes", burst = 1.5 }
}

fn main() {}
