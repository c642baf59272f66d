//! A pool whose minimum is above its maximum.
use sqlx_resilience::policies;

policies! {
    pool http { max = 10, min = 20 }
}

fn main() {}
