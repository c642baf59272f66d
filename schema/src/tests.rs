//! The schemas hold together: defaults pass their rules and the constraints, constraints name
//! real keys, and findings read well.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::kinds::{DEFAULT_FAILURE_RATE, DEFAULT_OPEN_FOR_MAX, DEFAULT_RATE_WINDOW};
use crate::*;

const ALL: [&Schema; 10] = [
    &POOL, &BREAKER, &RETRY, &RETRY_ON, &LIMITER, &BULKHEAD, &RUNTIME, &BUDGET, &MONITOR, &FAULTS,
];

/// Given values, by key.
struct Given<'a>(BTreeMap<&'a str, Typed<'a>>);

impl View for Given<'_> {
    fn seen(&self, key: &str) -> Option<Seen<'_>> {
        self.0.get(key).map(|v| Seen {
            value: Some(*v),
            source: Source::Given,
        })
    }
}

fn given<'a>(pairs: &[(&'a str, Typed<'a>)]) -> Given<'a> {
    Given(pairs.iter().copied().collect())
}

fn raw_of(t: Typed<'_>) -> Raw<'_> {
    match t {
        Typed::Duration(_) => unreachable!("durations are written as text"),
        Typed::Whole(n) => Raw::Whole(n),
        Typed::Number(x) => Raw::Number(x),
        Typed::Flag(b) => Raw::Flag(b),
        Typed::Text(s) => Raw::Text(s),
    }
}

#[test]
fn every_default_passes_its_rule() {
    for schema in ALL {
        for key in schema.keys {
            let Some(default) = key.default.value() else {
                continue;
            };
            let text;
            let raw = match default {
                Typed::Duration(d) => {
                    text = show_duration(d);
                    Raw::Text(&text)
                }
                other => raw_of(other),
            };
            let parsed = key.rule.parse(raw);
            assert_eq!(parsed, Ok(default), "{}.{}", schema.kind, key.name);
        }
    }
}

#[test]
fn the_defaults_satisfy_every_constraint() {
    for schema in ALL {
        let view = WithDefaults {
            schema,
            given: &given(&[]),
        };
        let found: Vec<Violation> = schema
            .check_together(&view)
            .into_iter()
            .filter(|v| !v.missing)
            .collect();
        assert!(found.is_empty(), "{}: {found:?}", schema.kind);
    }
}

#[test]
fn constraints_name_keys_of_their_schema_of_comparable_types() {
    for schema in ALL {
        let has = |k: &str| schema.key(k).is_some();
        for c in schema.constraints {
            let keys: Vec<&str> = match *c {
                Constraint::Order { small, large, .. } => {
                    let (s, l) = (schema.key(small).unwrap(), schema.key(large).unwrap());
                    let duration = |r: &Rule| matches!(r, Rule::Duration { .. });
                    assert_eq!(duration(&s.rule), duration(&l.rule), "{c:?}");
                    vec![small, large]
                }
                Constraint::Needs { key, needs, .. } => {
                    let mut all = vec![key];
                    all.extend(needs);
                    all
                }
                Constraint::Excludes { key, other, .. } => vec![key, other],
                Constraint::Useless {
                    key, other, value, ..
                } => {
                    let rule = schema.key(other).unwrap().rule;
                    assert!(rule.parse(raw_of(value)).is_ok(), "{c:?}");
                    vec![key, other]
                }
            };
            for k in keys {
                assert!(has(k), "{}: {c:?} names `{k}`", schema.kind);
            }
        }
    }
}

#[test]
fn keys_are_unique_and_documented() {
    for schema in ALL {
        let mut names: Vec<&str> = schema.keys.iter().map(|k| k.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), schema.keys.len(), "{}", schema.kind);
        for key in schema.keys {
            assert!(!key.doc.is_empty(), "{}.{}", schema.kind, key.name);
        }
    }
}

#[test]
fn derived_defaults_name_the_runtime_constants() {
    let words = |schema: &Schema, key: &str| match schema.key(key).unwrap().default {
        DefaultIs::Derived(words) => words,
        other => panic!("{key}: {other:?}"),
    };
    assert!(words(&BREAKER, "failure_rate").starts_with(&DEFAULT_FAILURE_RATE.to_string()));
    assert!(words(&BREAKER, "window").starts_with(&show_duration(DEFAULT_RATE_WINDOW)));
    assert!(words(&BREAKER, "open_for_max").starts_with(&show_duration(DEFAULT_OPEN_FOR_MAX)));
}

#[test]
fn full_keys_are_found_through_their_groups() {
    assert_eq!(
        RUNTIME.find("budget.instances").unwrap().key.name,
        "instances"
    );
    assert_eq!(
        RUNTIME.find("monitor.pool_interval").unwrap().key.rule,
        Rule::Duration {
            min: Duration::from_millis(10),
            max: Duration::from_secs(3600)
        }
    );
    let found = RETRY.find("on.contention.base").unwrap();
    assert_eq!(found.key.name, "base");
    assert_eq!(
        found.group.map(|(g, m)| (g.name, m)),
        Some(("on", Some("contention")))
    );

    let unknown = POOL.find("maximum").unwrap_err();
    assert!(
        unknown
            .starts_with("one of the pool keys: url, password_file, max, min, acquire_timeout, "),
        "{unknown}"
    );
    assert!(
        unknown.ends_with(", read_your_writes_window; did you mean `max`?"),
        "{unknown}"
    );
    assert!(
        RETRY
            .find("on.conection_lost.base")
            .unwrap_err()
            .ends_with("not `conection_lost`; did you mean `connection_lost`?")
    );
    assert!(
        RETRY
            .find("retries")
            .unwrap_err()
            .contains("on.<kind>.attempts, on.<kind>.base")
    );
    assert!(
        RUNTIME
            .find("budget.instance")
            .unwrap_err()
            .contains("did you mean `budget.instances`?")
    );
}

#[test]
fn an_order_involving_a_default_names_it_and_blames_the_given_key() {
    let view = given(&[("min", Typed::Whole(20))]);
    let found = POOL.check_together(&WithDefaults {
        schema: &POOL,
        given: &view,
    });
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].key, "min");
    assert_eq!(found[0].value, "20");
    assert_eq!(
        found[0].message,
        "`min` of 20 is above `max` of 10 (the default): a pool keeps at most `max` \
         connections; lower `min` or raise `max`"
    );
    assert_eq!(
        found[0].expected,
        "at most `max` (10, the default): a pool keeps at most `max` connections; lower `min` \
         or raise `max`"
    );

    // Only the larger key given: it is the one at fault.
    let view = given(&[("max_lifetime", Typed::Duration(Duration::from_secs(60)))]);
    let found = POOL.check_together(&WithDefaults {
        schema: &POOL,
        given: &view,
    });
    assert_eq!(found[0].key, "max_lifetime");
    assert!(
        found[0].message.starts_with(
            "`max_lifetime` of 1m is shorter than `idle_timeout` of 10m (the default)"
        ),
        "{}",
        found[0].message
    );
}

#[test]
fn a_capped_default_is_not_a_contradiction() {
    let view = given(&[
        ("failure_rate", Typed::Number(50.0)),
        ("window_calls", Typed::Whole(5)),
    ]);
    let with = WithDefaults {
        schema: &BREAKER,
        given: &view,
    };
    assert_eq!(BREAKER.check_together(&with), []);
    let view = given(&[
        ("failure_rate", Typed::Number(50.0)),
        ("window_calls", Typed::Whole(5)),
        ("minimum_calls", Typed::Whole(6)),
    ]);
    let with = WithDefaults {
        schema: &BREAKER,
        given: &view,
    };
    assert_eq!(BREAKER.check_together(&with)[0].key, "minimum_calls");
}

#[test]
fn a_member_inherits_the_policys_values() {
    let policy = given(&[]);
    let policy = WithDefaults {
        schema: &RETRY,
        given: &policy,
    };
    let own = given(&[("base", Typed::Duration(Duration::from_secs(5)))]);
    let view = Inherit {
        own: &own,
        parent: &policy,
    };
    let found = RETRY.groups[0].check_member("backpressure", &view);
    assert_eq!(found[0].key, "on.backpressure.base");
    assert_eq!(
        found[0].message,
        "`on.backpressure.base` of 5s is longer than `max_delay` of 2s (from the policy): the \
         first delay is above the longest delay; lower `base` or raise `max_delay`"
    );
    // Nothing given in the member: nothing to blame there.
    let none = given(&[]);
    let view = Inherit {
        own: &none,
        parent: &policy,
    };
    assert_eq!(RETRY.groups[0].check_member("backpressure", &view), []);
}

#[test]
fn companions_exclusions_and_required_keys() {
    let check = |schema: &Schema, pairs: &[(&str, Typed<'static>)]| {
        let g = given(pairs);
        schema.check_together(&WithDefaults { schema, given: &g })
    };
    let found = check(&BREAKER, &[("failures", Typed::Whole(5))]);
    assert_eq!(
        found[0].message,
        "`failures` needs `within`: failures count within a time window, such as `failures = 5, \
         within = \"60s\"` (or use `consecutive_failures = 5`)"
    );
    let found = check(
        &BREAKER,
        &[
            ("failure_rate", Typed::Number(50.0)),
            ("window", Typed::Duration(Duration::from_secs(60))),
            ("window_calls", Typed::Whole(100)),
        ],
    );
    assert_eq!(found[0].key, "window_calls");
    assert!(found[0].message.contains("not both"));
    let found = check(&BREAKER, &[("window_calls", Typed::Whole(100))]);
    assert_eq!(
        found[0].expected,
        "`failure_rate` or `slow_rate` as well: the window only applies to rates"
    );

    let found = check(
        &LIMITER,
        &[
            ("per_second", Typed::Number(1.0)),
            ("max_wait", Typed::Duration(Duration::from_secs(2))),
        ],
    );
    assert_eq!(
        found[0].message,
        "`max_wait` has no effect with `wait = false` (the default): `max_wait` bounds how long a \
         call waits for a permit, but `wait = false` rejects calls at once; set `wait = true` or \
         remove `max_wait`"
    );
    assert_eq!(
        check(
            &LIMITER,
            &[
                ("per_second", Typed::Number(1.0)),
                ("wait", Typed::Flag(true)),
                ("max_wait", Typed::Duration(Duration::from_secs(2))),
            ]
        ),
        []
    );
    let found = check(&LIMITER, &[]);
    assert!(found[0].missing);
    assert_eq!(found[0].key, "per_second");
    assert!(found[0].expected.contains("per_second = 100"));
}

#[test]
fn every_block_renders() {
    for block in docs::BLOCKS {
        let text = docs::render(block.name).unwrap();
        assert!(text.contains('`'), "{}", block.name);
    }
    let pool = docs::render("pool").unwrap();
    assert!(
        pool.contains("| `max` | whole number, 1..=10000 connections | 10 | maximum connections |"),
        "{pool}"
    );
    assert!(
        pool.contains("- `min` at most `max`: a pool keeps"),
        "{pool}"
    );
    let retry = docs::render("retry").unwrap();
    assert!(
        retry.contains("| `on.<kind>.base` | duration, 1ms..=1h | the policy's `base` |"),
        "{retry}"
    );
    assert!(
        retry.contains("- `on.<kind>.base` at most `on.<kind>.max_delay`"),
        "{retry}"
    );
}

#[test]
fn blocks_are_replaced_between_their_markers() {
    let doc = format!(
        "intro\n{}\nold\n{}\noutro\n",
        docs::begin_marker("pool"),
        docs::end_marker("pool")
    );
    assert_eq!(docs::current(&doc, "pool").unwrap(), "old\n");
    let new = docs::replace(&doc, "pool", "new\n").unwrap();
    assert_eq!(docs::current(&new, "pool").unwrap(), "new\n");
    assert!(new.starts_with("intro\n") && new.ends_with("<!-- end schema:pool -->\noutro\n"));
    assert!(docs::current(&doc, "retry").is_err());
}

#[test]
fn the_contention_default_is_said_in_words_with_its_value() {
    let attempts = crate::RETRY_ON
        .keys
        .iter()
        .find(|k| k.name == "attempts")
        .expect("on.<kind>.attempts");
    let words = format!("{:?}", attempts.default);
    assert!(
        words.contains(&format!("at least {}", crate::CONTENTION_ATTEMPTS)),
        "{words}"
    );
}
