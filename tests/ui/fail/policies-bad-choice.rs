//! A value outside a key's choices: the choices are listed.
use sqlx_resilience::policies;

policies! {
    retry r { jitter = "half" }
    pool p { startup = "later" }
}

fn main() {}
