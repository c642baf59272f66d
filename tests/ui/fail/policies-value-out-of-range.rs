//! Values outside their ranges.
use sqlx_resilience::policies;

policies! {
    pool http { max = 0 }
    breaker b { failure_rate = 150, half_open = 5000 }
    limiter l { per_second = 0 }
    retry r { factor = 0.5 }
}

fn main() {}
