//! A name declared twice for one kind: reported at the second.
use sqlx_resilience::policies;

policies! {
    pool http { max = 20 }
    pool http { max = 30 }
}

fn main() {}
