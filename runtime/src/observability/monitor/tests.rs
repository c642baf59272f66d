use std::time::Duration;

use super::alert::Dedup;
use super::rules::{Checker, SlowCount};
use crate::config::{MonitorConfig, RuntimeSettings, Value};
use crate::histogram::Histogram;
use crate::observability::alerts::{Alert, AlertKind, Severity};
use crate::pool::PoolStats;

fn stats(name: &str, in_use: u32, max: u32) -> PoolStats {
    let empty = Histogram::default();
    PoolStats {
        name: name.into(),
        size: in_use,
        idle: 0,
        in_use,
        waiting: 0,
        max,
        min: 0,
        utilization_pct: f64::from(in_use) * 100.0 / f64::from(max),
        acquired: 0,
        acquire_timeouts: 0,
        opened: 0,
        closed: 0,
        evicted: 0,
        handed_on: 0,
        errors: 0,
        leaks: 0,
        validations: 0,
        validation_failures: 0,
        acquire_wait: empty.clone(),
        use_time: empty,
    }
}

fn kinds(alerts: &[Alert]) -> Vec<AlertKind> {
    alerts.iter().map(|a| a.kind).collect()
}

#[test]
fn utilization_above_the_threshold_alerts_with_seed_advice() {
    let mut c = Checker::new(MonitorConfig::default());
    let alerts = c.pools(&[stats("http", 138, 150), stats("ws", 3, 30)], &[]);
    assert_eq!(kinds(&alerts), [AlertKind::PoolUtilization]);
    let a = &alerts[0];
    assert_eq!(
        (a.subject.as_str(), a.severity),
        ("http", Severity::Warning)
    );
    assert!(
        a.message.starts_with(
            "pool http at 92% (138 of 150 in use, 0 waiting): raise max or find slow ops"
        ),
        "{}",
        a.message
    );
    let mut full = stats("http", 150, 150);
    full.waiting = 4;
    let alerts = c.pools(&[full], &[]);
    assert_eq!(alerts[0].severity, Severity::Critical);
}

#[tokio::test(start_paused = true)]
async fn counters_are_compared_between_checks() {
    let mut c = Checker::new(MonitorConfig::default());
    let mut s = stats("http", 10, 150);
    s.opened = 1_000;
    s.acquire_timeouts = 7;
    assert!(
        c.pools(&[s.clone()], &[]).is_empty(),
        "first check only marks"
    );

    tokio::time::advance(Duration::from_secs(15)).await;
    s.opened += 300; // 1200 a minute replacing closed ones, the pool's size unchanged: churn
    s.closed += 300;
    s.acquire_timeouts += 2;
    *s.acquire_wait.buckets.last_mut().unwrap() += 3; // three waits over 5 s
    let alerts = c.pools(&[s.clone()], &[]);
    assert_eq!(
        kinds(&alerts),
        [
            AlertKind::AcquireWait,
            AlertKind::AcquireTimeouts,
            AlertKind::ConnectionStorm
        ]
    );
    assert!(
        alerts[0]
            .message
            .contains("3 callers waited longer than 5s"),
        "{}",
        alerts[0].message
    );
    assert!(
        alerts[1].message.contains("2 callers gave up"),
        "{}",
        alerts[1].message
    );
    assert!(
        (alerts[2].value - 1200.0).abs() < 1.0,
        "{}",
        alerts[2].value
    );

    tokio::time::advance(Duration::from_secs(15)).await;
    assert!(
        c.pools(&[s.clone()], &[]).is_empty(),
        "nothing new since the last check"
    );

    tokio::time::advance(Duration::from_secs(15)).await;
    s.opened += 100;
    s.size += 100;
    s.max = 300;
    assert!(
        c.pools(&[s.clone()], &[]).is_empty(),
        "a pool growing is no storm"
    );

    tokio::time::advance(Duration::from_secs(15)).await;
    s.opened += 100; // the size read before the new connections counted
    assert!(
        c.pools(&[s], &[]).is_empty(),
        "connections opened while none closed replace nothing"
    );
}

#[test]
fn slow_ops_alert_on_new_slow_calls_only() {
    let mut c = Checker::new(MonitorConfig::default());
    let count = |slow| SlowCount {
        op: "harvest::stats".into(),
        pool: "http".into(),
        slow,
        p99_us: 2_500_000,
    };
    assert_eq!(kinds(&c.ops(&[count(2)])), [AlertKind::SlowOps]);
    assert!(c.ops(&[count(2)]).is_empty());
    let a = c.ops(&[count(5)]);
    assert!(
        a[0].message.contains("3 calls slower than 1s (p99 2.5s)"),
        "{}",
        a[0].message
    );
}

#[tokio::test(start_paused = true)]
async fn one_alert_per_cooldown() {
    let mut d = Dedup::new(Duration::from_secs(300));
    let a = Alert::new(
        AlertKind::BreakerOpen,
        Severity::Critical,
        "harvest",
        2.0,
        0.0,
        "open",
    );
    let other = Alert::new(
        AlertKind::BreakerOpen,
        Severity::Critical,
        "orders",
        2.0,
        0.0,
        "open",
    );
    assert!(d.admit(&a));
    assert!(d.admit(&other), "another subject has its own cooldown");
    tokio::time::advance(Duration::from_secs(299)).await;
    assert!(!d.admit(&a));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(d.admit(&a), "sent again once the cooldown has passed");
    assert!(!d.admit(&a));
}

#[test]
fn every_monitor_key_is_a_runtime_key() {
    let mut s = RuntimeSettings::default();
    for key in crate::config::schema::MONITOR.keys {
        let full = format!("monitor.{}", key.name);
        assert!(RuntimeSettings::accepts(&full), "{full}");
        let default = key
            .default
            .value()
            .expect("every monitor key has a default");
        let value = match default {
            crate::config::schema::Typed::Duration(d) => Value::from(d),
            crate::config::schema::Typed::Whole(n) => Value::Int(n),
            crate::config::schema::Typed::Number(x) => Value::Float(x),
            crate::config::schema::Typed::Flag(b) => Value::Bool(b),
            crate::config::schema::Typed::Text(t) => Value::from(t),
        };
        s.set(&full, &value)
            .unwrap_or_else(|e| panic!("{full}: {e}"));
    }
    assert_eq!(s, RuntimeSettings::default(), "the defaults read back");
}

#[test]
fn monitor_keys_come_from_the_environment() {
    let rt = crate::Runtime::builder()
        .pool("main", &[])
        .env_prefix("DB")
        .env_vars([
            ("DB__MONITOR__POOL_INTERVAL", "5s"),
            ("DB__MONITOR__UTILIZATION", "90"),
            ("DB__MONITOR__ENABLED", "false"),
            ("DB__MONITOR__COOLDOWN", "1m"),
        ])
        .resolve()
        .unwrap();
    let m = &rt.settings.monitor;
    assert_eq!(m.pool_interval, Duration::from_secs(5));
    assert_eq!(m.utilization_pct, 90.0);
    assert!(!m.enabled);
    assert_eq!(m.cooldown, Duration::from_secs(60));
    assert_eq!(m.breaker_interval, Duration::from_secs(10), "default kept");

    let err = crate::Runtime::builder()
        .pool("main", &[])
        .env_prefix("DB")
        .env_vars([("DB__MONITOR__POOL_INTERVAL", "soon")])
        .resolve()
        .unwrap_err()
        .to_string();
    assert!(err.contains("`monitor.pool_interval`"), "{err}");
    let err = crate::Runtime::builder()
        .pool("main", &[])
        .config_toml("[monitor]\npool_intervall = \"5s\"\n", "db.toml")
        .env_vars(Vec::<(String, String)>::new())
        .resolve()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("monitor.pool_interval"),
        "lists the keys: {err}"
    );
    let mut s = RuntimeSettings::default();
    assert!(s.set("monitor.samples", &Value::Int(1)).is_err());
    s.set("monitor.samples", &Value::Int(300)).unwrap();
    assert_eq!(s.monitor.samples, 300);
}
