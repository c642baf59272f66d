//! Retry policies tune known failure kinds only.
use sqlx_resilience::policies;

policies! {
    retry r { on conection_lost { attempts = 5 } }
}

fn main() {}
