//! `none` means "no retries" in #[db_op]; it cannot name a policy.
use sqlx_resilience::policies;

policies! {
    retry none { attempts = 1 }
}

fn main() {}
