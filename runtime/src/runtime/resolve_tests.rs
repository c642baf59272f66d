//! How the builder resolves its configuration sources (code, TOML, environment).

use crate::config::*;
use crate::error::{Error, PolicyKind};
use crate::runtime::Runtime;

fn declared() -> PolicySet {
    let mut set = PolicySet::new();
    set.declare(
        PolicyKind::Pool,
        "http",
        &[("max", 150u32.into()), ("min", 10u32.into())],
        None,
    );
    set.declare(PolicyKind::Pool, "ws", &[("max", 30u32.into())], None);
    set.declare(
        PolicyKind::Pool,
        "background",
        &[("max", 20u32.into())],
        None,
    );
    set
}

fn builder() -> crate::runtime::RuntimeBuilder {
    Runtime::builder()
        .policies(declared())
        .env_vars(Vec::<(String, String)>::new())
}

const FILE: &str = r#"
url = "postgres://app:filepw@db.internal/app"
profile = "staging"

[pools.http]
max = 100
acquire_timeout = "2s"

[budget]
instances = 2

[profiles.staging.pools.http]
max = 50

[profiles.production.pools.http]
max = 200
statement_timeout = "30s"
"#;

#[test]
fn code_defaults_apply_without_other_sources() {
    let c = builder().resolve().unwrap();
    assert_eq!(c.pools["http"].max, 150);
    assert_eq!(c.pools["http"].min, 10);
    assert_eq!(c.pools["ws"].max, 30);
    assert_eq!(
        c.settings.default_pool, None,
        "three pools: no implicit default"
    );
}

#[test]
fn file_then_profile_then_environment() {
    let c = builder().config_toml(FILE, "db.toml").resolve().unwrap();
    assert_eq!(c.profile.as_deref(), Some("staging"));
    assert_eq!(
        c.pools["http"].max, 50,
        "profile from the file overrides the base"
    );
    assert_eq!(c.pools["http"].min, 10, "code default kept");
    assert_eq!(c.pools["http"].acquire_timeout.as_secs(), 2);
    assert_eq!(c.settings.instances, 2);

    let c = builder()
        .config_toml(FILE, "db.toml")
        .profile("production")
        .resolve()
        .unwrap();
    assert_eq!(c.pools["http"].max, 200, "builder profile beats the file's");
    assert_eq!(c.pools["http"].statement_timeout.unwrap().as_secs(), 30);

    let c = builder()
        .config_toml(FILE, "db.toml")
        .profile("staging")
        .env_prefix("DB")
        .env_vars([
            ("DB__PROFILE", "production"),
            ("DB__POOLS__HTTP__MAX", "175"),
            ("DB__POOLS__WS__ACQUIRE_TIMEOUT", "750ms"),
            ("DB__BUDGET__MODE", "scale"),
            ("DB_HOST", "ignored: single underscore is not ours"),
        ])
        .resolve()
        .unwrap();
    assert_eq!(c.profile.as_deref(), Some("production"), "env profile wins");
    assert_eq!(
        c.pools["http"].max, 175,
        "environment beats every file value"
    );
    assert_eq!(c.pools["http"].statement_timeout.unwrap().as_secs(), 30);
    assert_eq!(c.pools["ws"].acquire_timeout.as_millis(), 750);
    assert_eq!(c.settings.budget_mode, crate::pool::BudgetMode::Scale);
}

#[test]
fn code_set_overrides_declarations_but_not_files() {
    let c = builder()
        .set("pools.ws.max", 40u32)
        .config_toml("[pools.ws]\nmin = 5\n", "db.toml")
        .resolve()
        .unwrap();
    assert_eq!((c.pools["ws"].max, c.pools["ws"].min), (40, 5));
    let c = builder()
        .set("pools.ws.max", 40u32)
        .config_toml("[pools.ws]\nmax = 45\n", "db.toml")
        .resolve()
        .unwrap();
    assert_eq!(c.pools["ws"].max, 45);
}

fn config_error(e: Error) -> (String, String, String, String) {
    match e {
        Error::Config {
            key,
            value,
            expected,
            origin,
        } => (key, value, expected, origin),
        other => panic!("expected a config error, got {other}"),
    }
}

#[test]
fn bad_value_names_key_value_expectation_and_origin() {
    let e = builder()
        .config_toml("[pools.http]\nmax = 0\n", "db.toml")
        .resolve()
        .unwrap_err();
    let (key, value, expected, origin) = config_error(e);
    assert_eq!(key, "pools.http.max");
    assert_eq!(value, "0");
    assert_eq!(expected, "a whole number from 1 to 10000");
    assert_eq!(origin, "db.toml:2:7");

    let e = builder()
        .env_prefix("APP")
        .env_vars([("APP__POOLS__HTTP__ACQUIRE_TIMEOUT", "two seconds")])
        .resolve()
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("`pools.http.acquire_timeout` = \"two seconds\""),
        "{text}"
    );
    assert!(
        text.contains("expected a duration such as \"250ms\" or \"5s\""),
        "{text}"
    );
    assert!(
        text.contains("environment variable APP__POOLS__HTTP__ACQUIRE_TIMEOUT"),
        "{text}"
    );
}

#[test]
fn unknown_keys_are_rejected_with_the_accepted_list() {
    let e = builder()
        .config_toml("[pools.http]\nmax_size = 10\n", "db.toml")
        .resolve()
        .unwrap_err();
    let (key, _, expected, _) = config_error(e);
    assert_eq!(key, "pools.http.max_size");
    assert!(
        expected.starts_with("one of the pool keys: url, password_file, max, min, acquire_timeout"),
        "{expected}"
    );

    let e = builder()
        .config_toml("urll = \"x\"\n", "db.toml")
        .resolve()
        .unwrap_err();
    let (key, _, expected, _) = config_error(e);
    assert_eq!(key, "urll");
    assert!(expected.contains("pools.NAME.KEY"), "{expected}");

    let e = builder()
        .env_prefix("DB")
        .env_vars([("DB__POOLZ__HTTP__MAX", "3")])
        .resolve()
        .unwrap_err();
    assert_eq!(config_error(e).0, "poolz.http.max");
}

#[test]
fn configuration_cannot_invent_names() {
    let e = builder()
        .config_toml("[pools.htp]\nmax = 10\n", "db.toml")
        .resolve()
        .unwrap_err();
    match e {
        Error::UndeclaredName {
            kind,
            name,
            origin,
            declared,
            suggestion,
            ..
        } => {
            assert_eq!(kind, PolicyKind::Pool);
            assert_eq!(name, "htp");
            assert_eq!(origin, "db.toml:2:7");
            assert_eq!(declared, "background, http, ws");
            assert_eq!(suggestion, " (did you mean `http`?)");
        }
        other => panic!("{other}"),
    }
    let e = builder()
        .env_prefix("DB")
        .env_vars([("DB__BREAKERS__HARVEST__FAILURES", "5")])
        .resolve()
        .unwrap_err();
    assert!(e.to_string().contains("breaker `harvest`"), "{e}");
}

#[test]
fn cross_key_validation_reports_the_origin() {
    let e = builder()
        .config_toml("[pools.ws]\nmin = 31\n", "db.toml")
        .resolve()
        .unwrap_err();
    let (key, value, expected, origin) = config_error(e);
    assert_eq!(key, "pools.ws.min");
    assert_eq!(value, "31");
    assert_eq!(
        expected,
        "at most `max` (30): a pool keeps at most `max` connections; lower `min` or raise `max`"
    );
    assert_eq!(origin, "db.toml:2:7");
}

#[test]
fn unknown_profile_lists_the_defined_ones() {
    let e = builder()
        .config_toml(FILE, "db.toml")
        .profile("prod")
        .resolve()
        .unwrap_err();
    let (key, _, expected, _) = config_error(e);
    assert_eq!(key, "profile");
    assert_eq!(expected, "a defined profile; defined: production, staging");
}

#[test]
fn toml_syntax_errors_name_the_file() {
    let e = builder()
        .config_toml("[pools.http\nmax = 1", "db.toml")
        .resolve()
        .unwrap_err();
    match e {
        Error::ConfigSource { origin, message } => {
            assert_eq!(origin, "db.toml");
            assert!(message.contains("line 1"), "{message}");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn missing_required_file_is_an_error_and_optional_is_not() {
    let e = builder()
        .config_file("/nonexistent/db.toml")
        .resolve()
        .unwrap_err();
    assert!(matches!(e, Error::ConfigSource { .. }), "{e}");
    builder()
        .config_file_if_exists("/nonexistent/db.toml")
        .resolve()
        .unwrap();
}

#[test]
fn database_url_fallback_and_redaction() {
    let c = Runtime::builder()
        .pool("main", &[])
        .env_vars([("DATABASE_URL", "postgres://u:supersecret@h/d")])
        .resolve()
        .unwrap();
    let url = c.settings.url.clone().unwrap();
    assert_eq!(url.expose(), Some("postgres://u:supersecret@h/d"));
    assert!(!format!("{c:?}").contains("supersecret"));
    assert_eq!(
        c.settings.default_pool.as_deref(),
        Some("main"),
        "the only pool is the default"
    );
}

#[test]
fn password_in_a_bad_value_stays_hidden() {
    let e = builder()
        .config_toml("[pools.http]\nurl = \"mysql://u:hunter2@h/d\"\n", "db.toml")
        .resolve()
        .unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[test]
fn a_url_the_driver_refuses_fails_resolve_as_it_would_fail_build() {
    let e = builder()
        .config_toml(
            "url = \"postgres://app:pw@db.internal/app?sslmode=bogus\"\n",
            "db.toml",
        )
        .resolve()
        .unwrap_err();
    let (key, value, expected, origin) = config_error(e);
    assert_eq!((key.as_str(), origin.as_str()), ("url", "db.toml:1:7"));
    assert!(!value.contains("pw@"), "{value}");
    assert_eq!(
        expected,
        "a PostgreSQL URL the driver accepts (unknown value \"bogus\" for `ssl_mode`)"
    );
    let e = builder()
        .env_prefix("DB")
        .env_vars([("DB__POOLS__HTTP__URL", "postgres://h/d?sslmode=bogus")])
        .resolve()
        .unwrap_err();
    let text = e.to_string();
    assert_eq!(
        text.matches("error with configuration").count(),
        0,
        "sqlx's doubled prefix is gone: {text}"
    );
    assert!(
        text.starts_with("invalid configuration: `pools.http.url`"),
        "{text}"
    );
}

#[test]
fn multi_host_urls_resolve_and_a_bad_one_names_its_host() {
    let ok = builder()
        .env_prefix("DB")
        .env_vars([(
            "DB__POOLS__HTTP__URL",
            "host=db1,db2 port=5432,5433 dbname=app target_session_attrs=read-write",
        )])
        .resolve();
    assert!(ok.is_ok(), "{ok:?}");
    let e = builder()
        .config_toml(
            "[pools.http]\nurl = \"postgres://app:hunter2@db1:5432,db2:x/app\"\n",
            "db.toml",
        )
        .resolve()
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("host 2 of 2 (`db2:x`): port `x` is not a number from 1 to 65535"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn unknown_keys_suggest_the_closest() {
    let e = builder()
        .config_toml("[pools.http]\nmaximum = 10\n", "db.toml")
        .resolve()
        .unwrap_err();
    assert!(config_error(e).2.ends_with("; did you mean `max`?"));
    let e = builder()
        .config_toml("[budget]\ninstance = 2\n", "db.toml")
        .resolve()
        .unwrap_err();
    assert!(
        config_error(e)
            .2
            .ends_with("; did you mean `budget.instances`?"),
        "a runtime key too"
    );
}

#[test]
fn a_rule_involving_a_default_blames_the_key_given() {
    let e = builder()
        .config_toml("[pools.ws]\nmax_lifetime = \"1m\"\n", "db.toml")
        .resolve()
        .unwrap_err();
    let (key, value, expected, origin) = config_error(e);
    assert_eq!(
        (key.as_str(), value.as_str(), origin.as_str()),
        ("pools.ws.max_lifetime", "1m", "db.toml:2:16")
    );
    assert!(
        expected.starts_with("at least `idle_timeout` (10m, the default)"),
        "{expected}"
    );
}

#[test]
fn every_problem_of_a_file_is_reported_at_once_with_its_line_and_column() {
    let text = "\
[pools.http]
max = 0
acquire_timout = \"2s\"

[pools.htp]
max = 3

[breakers.x]
failures = 5
";
    let e = builder()
        .config_toml(text, "db.toml")
        .resolve()
        .unwrap_err();
    let Error::ConfigProblems { problems } = &e else {
        panic!("expected every problem at once, got {e}");
    };
    let found: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(found.len(), 4, "{found:#?}");
    let one = |needle: &str| {
        assert!(
            found.iter().any(|p| p.contains(needle)),
            "no problem mentions {needle:?}: {found:#?}"
        )
    };
    one("`pools.http.max` = 0 (from db.toml:2:7)");
    one("`pools.http.acquire_timout` = \"2s\" (from db.toml:3:18)");
    one("did you mean `acquire_timeout`?");
    one("pool `htp` (from db.toml:6:7) is not declared (did you mean `http`?)");
    one("breaker `x` (from db.toml:9:12) is not declared");

    // What a start-up `.expect(..)` prints: the message, one problem per line.
    let debug = format!("{e:?}");
    assert!(
        debug.starts_with("4 problems in the configuration; fix each:\n  1. "),
        "{debug}"
    );
    assert_eq!(debug.lines().count(), 5, "{debug}");
}
