//! A key the pool settings do not have: every accepted key is listed.
use sqlx_resilience::policies;

policies! {
    pool http { maximum = 20 }
}

fn main() {}
