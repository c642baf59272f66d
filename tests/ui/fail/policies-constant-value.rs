//! Settings are literals, read when the code compiles.
use sqlx_resilience::policies;

const MAX: i64 = 20;

policies! {
    pool http { max = MAX }
}

fn main() {}
