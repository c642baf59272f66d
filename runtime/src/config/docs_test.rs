//! The policy documentation lists every key the code accepts.

use super::Section;
use crate::breaker::BreakerConfig;
use crate::bulkhead::BulkheadConfig;
use crate::limiter::LimiterConfig;
use crate::pool::PoolConfig;
use crate::retry::RetryConfig;

fn assert_documented<S: Section>(doc: &str, file: &str) {
    for spec in S::KEYS {
        assert!(
            doc.contains(&format!("| `{}` |", spec.key)),
            "{} key `{}` is missing from docs/{file}",
            S::KIND,
            spec.key
        );
    }
}

#[test]
fn every_policy_key_is_documented() {
    let policies = include_str!("../../../docs/POLICIES.md");
    assert_documented::<BreakerConfig>(policies, "POLICIES.md");
    assert_documented::<RetryConfig>(policies, "POLICIES.md");
    assert_documented::<LimiterConfig>(policies, "POLICIES.md");
    assert_documented::<BulkheadConfig>(policies, "POLICIES.md");
    let configuration = include_str!("../../../docs/CONFIGURATION.md");
    assert_documented::<PoolConfig>(configuration, "CONFIGURATION.md");
}
