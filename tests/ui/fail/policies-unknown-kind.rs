//! A kind `policies!` does not know.
use sqlx_resilience::policies;

policies! {
    pool http { max = 20 }
    pools ws { max = 30 }
}

fn main() {}
