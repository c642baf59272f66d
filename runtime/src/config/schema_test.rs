//! The configuration structs are the schema's: a field for every key, the schema's defaults,
//! and every rule enforced at its bounds, whatever key is added next.

use std::collections::BTreeSet;
use std::time::Duration;

use super::schema::{self, DefaultIs, Key, Rule, Schema, Typed, show_duration};
use super::{FaultsConfig, MonitorConfig};
use super::{RuntimeSettings, Value};
use crate::breaker::BreakerConfig;
use crate::bulkhead::BulkheadConfig;
use crate::limiter::LimiterConfig;
use crate::pool::PoolConfig;
use crate::retry::{KindOverride, RetryConfig};
use crate::settings::fields::Fields;

/// Keys of `schema` with their full names, without nested tables a struct keeps elsewhere.
fn own_keys(schema: &Schema, skip_groups: &[&str]) -> BTreeSet<String> {
    schema
        .all_keys()
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| {
            !skip_groups
                .iter()
                .any(|g| name.starts_with(&format!("{g}.")))
        })
        .collect()
}

fn fields_of<F: Fields>() -> BTreeSet<String> {
    F::KEYS.iter().map(|k| (*k).to_owned()).collect()
}

#[test]
fn every_key_has_a_field() {
    assert_eq!(own_keys(&schema::POOL, &[]), fields_of::<PoolConfig>());
    assert_eq!(
        own_keys(&schema::BREAKER, &[]),
        fields_of::<BreakerConfig>()
    );
    assert_eq!(
        own_keys(&schema::RETRY, &["on"]),
        fields_of::<RetryConfig>()
    );
    assert_eq!(
        own_keys(&schema::RETRY_ON, &[]),
        fields_of::<KindOverride>()
    );
    assert_eq!(
        own_keys(&schema::LIMITER, &[]),
        fields_of::<LimiterConfig>()
    );
    assert_eq!(
        own_keys(&schema::BULKHEAD, &[]),
        fields_of::<BulkheadConfig>()
    );
    assert_eq!(
        own_keys(&schema::MONITOR, &[]),
        fields_of::<MonitorConfig>()
    );
    assert_eq!(own_keys(&schema::FAULTS, &[]), fields_of::<FaultsConfig>());
    // `profile` selects a profile: the loader reads it.
    let mut runtime = own_keys(&schema::RUNTIME, &["monitor", "faults"]);
    runtime.remove("profile");
    assert_eq!(runtime, fields_of::<RuntimeSettings>());
}

fn defaults_match<F: Fields + Default>() {
    let config = F::default();
    for key in F::KEYS {
        let spec = F::SCHEMA.find(key).unwrap().key;
        let expected = match spec.default {
            DefaultIs::Value(v) => Some(v),
            _ => None,
        };
        assert_eq!(config.lookup(key), expected, "{} `{key}`", F::SCHEMA.kind);
    }
}

#[test]
fn defaults_are_the_schemas() {
    defaults_match::<PoolConfig>();
    defaults_match::<BreakerConfig>();
    defaults_match::<RetryConfig>();
    defaults_match::<KindOverride>();
    defaults_match::<LimiterConfig>();
    defaults_match::<BulkheadConfig>();
    defaults_match::<MonitorConfig>();
    defaults_match::<FaultsConfig>();
    defaults_match::<RuntimeSettings>();
}

/// Values the rule accepts, and values just outside it.
fn samples(spec: &Key) -> (Vec<Value>, Vec<Value>) {
    let ms = Duration::from_millis(1);
    let duration = |d: Duration| Value::Str(show_duration(d));
    match spec.rule {
        Rule::Duration { min, max } => (
            vec![duration(min), duration(max)],
            vec![
                duration(min.saturating_sub(ms).max(Duration::ZERO)),
                duration(max + ms),
                Value::Int(5),
            ],
        ),
        Rule::Whole { min, max } => (
            vec![
                Value::Int(min),
                Value::Int(max),
                Value::Str(max.to_string()),
            ],
            vec![Value::Int(min - 1), Value::Int(max + 1), Value::Float(1.5)],
        ),
        Rule::Number {
            min,
            max,
            above_min,
        } => {
            let low = if above_min { min + 0.001 } else { min };
            (
                vec![
                    Value::Float(low),
                    Value::Float(max),
                    Value::Str(max.to_string()),
                ],
                vec![
                    Value::Float(if above_min { min } else { min - 0.001 }),
                    Value::Float(max + 0.001),
                    Value::Str("many".into()),
                ],
            )
        }
        Rule::Percent { min, above_min } => {
            let low = if above_min { min + 0.001 } else { min };
            (
                vec![Value::Float(low), Value::Int(100)],
                vec![
                    Value::Float(if above_min { min } else { min - 0.001 }),
                    Value::Float(100.001),
                ],
            )
        }
        Rule::Flag => (
            vec![Value::Bool(true), Value::Str("false".into())],
            vec![Value::Str("maybe".into()), Value::Int(1)],
        ),
        Rule::Choice(words) => (
            words.iter().map(|w| Value::from(*w)).collect(),
            vec![Value::Str("none of them".into())],
        ),
        Rule::Url => (
            vec![Value::from(
                "postgres://app@db.internal:5432/app?sslmode=require",
            )],
            vec![
                Value::from("mysql://app@db/app"),
                Value::from("postgres://app@db/app?sslmode=bogus"),
            ],
        ),
        Rule::Ascii { max_len } => (
            vec![Value::Str("a".repeat(max_len))],
            vec![Value::Str("a".repeat(max_len + 1)), Value::from("ünï")],
        ),
        Rule::SchemaList => (
            vec![Value::from("app, public")],
            vec![Value::from("app; drop table x")],
        ),
        Rule::Name(_) => (vec![Value::from("http")], vec![Value::from(" ")]),
        Rule::UrlList => (
            vec![Value::from("postgres://app@r1/app, postgres://app@r2/app")],
            vec![
                Value::from("mysql://app@db/app"),
                Value::from("postgres://app@r1/app?sslmode=bogus"),
            ],
        ),
    }
}

/// Every key accepts its rule's bounds (and reads back what it was given) and refuses what is
/// just outside, changing nothing.
fn bounds_hold<F: Fields + Default + PartialEq + std::fmt::Debug>(
    set: impl Fn(&mut F, &str, &Value) -> Result<(), String>,
    prefix: &str,
) {
    for key in F::KEYS {
        let spec = F::SCHEMA.find(key).unwrap().key;
        let (good, bad) = samples(spec);
        for value in good {
            let mut config = F::default();
            set(&mut config, &format!("{prefix}{key}"), &value)
                .unwrap_or_else(|e| panic!("{prefix}{key} = {value}: {e}"));
            let expected = spec.rule.parse(value.raw()).unwrap();
            assert_eq!(
                config.lookup(key),
                Some(expected),
                "{prefix}{key} = {value}"
            );
        }
        for value in bad {
            let mut config = F::default();
            let refused = set(&mut config, &format!("{prefix}{key}"), &value);
            assert!(refused.is_err(), "{prefix}{key} = {value} was accepted");
            assert_eq!(
                config,
                F::default(),
                "{prefix}{key} = {value} changed something"
            );
        }
    }
}

#[test]
fn every_rule_holds_at_its_bounds() {
    use super::Section;
    bounds_hold::<PoolConfig>(|c, k, v| c.set(k, v), "");
    bounds_hold::<BreakerConfig>(|c, k, v| c.set(k, v), "");
    bounds_hold::<RetryConfig>(|c, k, v| c.set(k, v), "");
    bounds_hold::<LimiterConfig>(|c, k, v| c.set(k, v), "");
    bounds_hold::<BulkheadConfig>(|c, k, v| c.set(k, v), "");
    bounds_hold::<MonitorConfig>(|c, k, v| c.set(k, v), "");
    bounds_hold::<RuntimeSettings>(|c, k, v| c.set(k, v), "");
    // Each failure kind's table, through the retry policy.
    for kind in schema::RETRY.groups[0].each.unwrap().names {
        bounds_hold::<KindOverride>(
            |o, k, v| {
                let mut policy = RetryConfig::default();
                policy.set(k, v)?;
                *o = policy.on.values().next().copied().unwrap_or_default();
                Ok(())
            },
            &format!("on.{kind}."),
        );
    }
}

#[test]
fn every_failure_kind_of_the_schema_is_retryable() {
    let names: Vec<&str> = crate::retry::RETRYABLE_KINDS
        .iter()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(names, schema::RETRY.groups[0].each.unwrap().names);
}

#[test]
fn typed_values_compare_as_the_schema_reads_them() {
    // A whole number stored in an f64 field reads back as a number, not a whole number.
    let mut c = BreakerConfig::default();
    super::Section::set(&mut c, "open_backoff", &Value::Int(2)).unwrap();
    assert_eq!(c.lookup("open_backoff"), Some(Typed::Number(2.0)));
}
