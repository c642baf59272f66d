use std::time::Duration;

use tokio::time::advance;

use super::*;
use crate::FailureKind::{self, *};
use crate::settings::{Section, Value};
use sqlx_resilience_schema::CONTENTION_ATTEMPTS;

fn ms(x: f64) -> Duration {
    Duration::from_secs_f64(x / 1000.0)
}

fn config(pairs: &[(&str, Value)]) -> RetryConfig {
    let mut c = RetryConfig::default();
    for (k, v) in pairs {
        c.set(k, v).unwrap_or_else(|e| panic!("{k} = {v}: {e}"));
    }
    c
}

/// No jitter, a budget that never runs out: schedules alone decide.
fn plain(pairs: &[(&str, Value)]) -> RetryPolicy {
    let mut all: Vec<(&str, Value)> = vec![
        ("jitter", "none".into()),
        ("budget_min_per_second", Value::Int(1_000_000)),
    ];
    all.extend(pairs.iter().cloned());
    RetryPolicy::new("test", config(&all))
}

/// Runs one call that fails with `kind` every time; returns the delays granted and the stop.
fn run(policy: &RetryPolicy, kind: FailureKind) -> (Vec<Duration>, StopReason) {
    let mut state = policy.start();
    let mut delays = Vec::new();
    loop {
        match state.next_delay(kind, Duration::ZERO, None) {
            RetryDecision::RetryAfter(d) => delays.push(d),
            RetryDecision::Stop(reason) => return (delays, reason),
        }
    }
}

/// Seed system 004's retry table.
fn seed_004() -> RetryPolicy {
    plain(&[
        ("on.connection_lost.attempts", Value::Int(5)),
        ("on.connection_lost.base", "500ms".into()),
        ("on.connection_lost.factor", 1.5.into()),
        ("on.connection_lost.max_delay", "30s".into()),
        ("on.backpressure.attempts", Value::Int(10)),
        ("on.backpressure.base", "2s".into()),
        ("on.backpressure.factor", Value::Int(2)),
        ("on.backpressure.max_delay", "60s".into()),
        ("on.contention.attempts", Value::Int(3)),
        ("on.contention.base", "1s".into()),
        ("on.contention.factor", Value::Int(2)),
    ])
}

#[test]
fn retry_types_can_be_shared_and_held_across_awaits() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<RetryPolicy>();
    send_sync::<RetryState<'static>>();
    send_sync::<RetryBudget>();
}

// ---- configuration ----

#[test]
fn set_accepts_good_values_and_explains_bad_ones() {
    let c = config(&[
        ("attempts", Value::Int(4)),
        ("base", "100ms".into()),
        ("factor", 1.5.into()),
        ("max_delay", "5s".into()),
        ("max_elapsed", "30s".into()),
        ("jitter", "equal".into()),
        ("budget_percent", Value::Int(50)),
        ("budget_min_per_second", Value::Int(0)),
        ("budget_window", "30s".into()),
        ("on.statement_timeout.attempts", Value::Int(2)),
    ]);
    assert_eq!(c.attempts, 4);
    assert_eq!(c.factor, 1.5);
    assert_eq!(c.jitter, Jitter::Equal);
    assert_eq!(c.max_elapsed, Some(Duration::from_secs(30)));
    assert_eq!(c.on[&StatementTimeout].attempts, Some(2));
    assert_eq!(c.validate(), Ok(()));

    let mut c = RetryConfig::default();
    let mut err = |k: &str, v: Value| c.set(k, &v).unwrap_err();
    assert_eq!(
        err("attempts", Value::Int(0)),
        "a whole number from 1 to 100"
    );
    assert_eq!(err("factor", 0.5.into()), "a number from 1 to 10");
    assert!(err("base", "fast".into()).starts_with("a duration such as"));
    assert_eq!(
        err("jitter", "some".into()),
        "one of \"full\", \"equal\", \"none\""
    );
    assert_eq!(
        err("budget_percent", Value::Int(1001)),
        "a number from 0 to 1000"
    );
    assert_eq!(
        err("on.constraint.attempts", Value::Int(2)),
        "a key `on.<kind>.<setting>` where <kind> is one of connection_lost, contention, \
         backpressure, server_shutdown, failover, deadline, statement_timeout, canceled, \
         not `constraint`"
    );
    assert!(err("on.conection_lost.base", "1s".into()).contains("not `conection_lost`"));
    assert_eq!(
        err("on.contention.tries", Value::Int(2)),
        "a key `on.contention.<setting>` where <setting> is one of attempts, base, factor, \
         max_delay, not `tries`"
    );
    assert_eq!(
        err("on.contention.attempts", Value::Int(101)),
        "a whole number from 1 to 100"
    );
    assert!(err("retries", Value::Int(3)).contains("attempts, base"));
    assert_eq!(
        c,
        RetryConfig::default(),
        "a rejected value changes nothing"
    );
    assert!(
        RetryConfig::SCHEMA
            .all_keys()
            .iter()
            .any(|(k, _)| k == "on.<kind>.attempts")
    );
}

#[test]
fn validate_checks_delays_against_their_caps() {
    let e = config(&[("base", "3s".into())]).validate().unwrap_err();
    assert_eq!(
        (e.key.as_str(), e.expected.as_str()),
        (
            "base",
            "at most `max_delay` (2s, the default): the first delay is above the longest \
             delay; lower `base` or raise `max_delay`"
        )
    );
    // A kind's base above the policy's max_delay needs the kind's own max_delay.
    let e = config(&[("on.backpressure.base", "5s".into())])
        .validate()
        .unwrap_err();
    assert_eq!(e.key, "on.backpressure.base");
    assert!(
        e.expected
            .starts_with("at most `max_delay` (2s, from the policy)"),
        "{}",
        e.expected
    );
    let ok = config(&[
        ("on.backpressure.base", "5s".into()),
        ("on.backpressure.max_delay", "60s".into()),
    ]);
    assert_eq!(ok.validate(), Ok(()));
    let e = config(&[("max_elapsed", "10ms".into())])
        .validate()
        .unwrap_err();
    assert_eq!(e.key, "max_elapsed");
}

// ---- schedules ----

#[test]
fn without_jitter_delays_are_exact_and_capped_at_max_delay() {
    let p = plain(&[
        ("attempts", Value::Int(8)),
        ("base", "50ms".into()),
        ("max_delay", "1s".into()),
    ]);
    let (delays, stop) = run(&p, ConnectionLost);
    assert_eq!(
        delays,
        [50.0, 100.0, 200.0, 400.0, 800.0, 1000.0, 1000.0].map(ms)
    );
    assert_eq!(stop, StopReason::AttemptsExhausted { attempts: 8 });
    assert_eq!(p.delays(ConnectionLost), delays);
}

#[test]
fn attempts_count_the_first_attempt() {
    let p = plain(&[]);
    let mut state = p.start();
    assert_eq!(state.attempts(), 1);
    assert!(matches!(
        state.next_delay(ConnectionLost, Duration::ZERO, None),
        RetryDecision::RetryAfter(_)
    ));
    assert!(matches!(
        state.next_delay(ConnectionLost, Duration::ZERO, None),
        RetryDecision::RetryAfter(_)
    ));
    assert_eq!(state.attempts(), 3);
    assert_eq!(
        state.next_delay(ConnectionLost, Duration::ZERO, None),
        RetryDecision::Stop(StopReason::AttemptsExhausted { attempts: 3 })
    );
}

#[test]
fn full_jitter_stays_within_bounds_and_repeats_with_a_seed() {
    let cfg = config(&[
        ("attempts", Value::Int(6)),
        ("budget_min_per_second", Value::Int(1_000_000)),
    ]);
    let unjittered = [50.0, 100.0, 200.0, 400.0, 800.0].map(ms);
    let a = RetryPolicy::new("a", cfg.clone()).with_seed(7);
    let b = RetryPolicy::new("b", cfg.clone()).with_seed(7);
    let mut all = Vec::new();
    for _ in 0..50 {
        let (da, _) = run(&a, ConnectionLost);
        let (db, _) = run(&b, ConnectionLost);
        assert_eq!(da, db, "same seed, same delays");
        for (d, max) in da.iter().zip(unjittered) {
            assert!(*d <= max, "{d:?} > {max:?}");
        }
        all.extend(da);
    }
    // Jitter spreads: not every delay is the un-jittered one, and some are below half of it.
    assert!(all.iter().any(|d| *d < ms(25.0)));
    let (seven, _) = run(
        &RetryPolicy::new("c", cfg.clone()).with_seed(7),
        ConnectionLost,
    );
    let (eight, _) = run(&RetryPolicy::new("d", cfg).with_seed(8), ConnectionLost);
    assert_ne!(seven, eight, "another seed, other delays");
}

#[test]
fn equal_jitter_keeps_at_least_half_the_delay() {
    let p = RetryPolicy::new(
        "equal",
        config(&[
            ("jitter", "equal".into()),
            ("attempts", Value::Int(5)),
            ("budget_min_per_second", Value::Int(1_000_000)),
        ]),
    )
    .with_seed(1);
    for _ in 0..50 {
        let (delays, _) = run(&p, Backpressure);
        for (d, full) in delays.iter().zip([50.0, 100.0, 200.0, 400.0].map(ms)) {
            assert!(
                *d >= full / 2 && *d <= full,
                "{d:?} outside [{:?}, {full:?}]",
                full / 2
            );
        }
    }
}

// ---- per-kind overrides: seed 004 ----

#[test]
fn seed_004_table_attempts_and_delays() {
    let p = seed_004();
    assert_eq!(p.attempts(ConnectionLost), 5);
    assert_eq!(
        p.delays(ConnectionLost),
        [500.0, 750.0, 1125.0, 1687.5].map(ms),
        "connection reset: 5 tries from 500 ms x 1.5"
    );
    assert_eq!(p.attempts(Backpressure), 10);
    assert_eq!(
        p.delays(Backpressure),
        [
            2000.0, 4000.0, 8000.0, 16000.0, 32000.0, 60000.0, 60000.0, 60000.0, 60000.0
        ]
        .map(ms),
        "pool exhaustion: 10 tries from 2 s x 2, capped at 60 s"
    );
    assert_eq!(
        p.delays(Contention),
        [1000.0, 2000.0].map(ms),
        "lock timeout: 3 tries"
    );
    assert!(
        p.delays(StatementTimeout).is_empty(),
        "statement timeout: never"
    );

    let (delays, stop) = run(&p, ConnectionLost);
    assert_eq!(delays, p.delays(ConnectionLost));
    assert_eq!(stop, StopReason::AttemptsExhausted { attempts: 5 });
    let (delays, stop) = run(&p, StatementTimeout);
    assert!(delays.is_empty());
    assert_eq!(stop, StopReason::NotRetried(StatementTimeout));
}

#[test]
fn a_call_keeps_one_schedule_per_kind() {
    let p = seed_004();
    let mut s = p.start();
    let mut next = |k| match s.next_delay(k, Duration::ZERO, None) {
        RetryDecision::RetryAfter(d) => d,
        stop => panic!("{stop:?}"),
    };
    assert_eq!(next(ConnectionLost), ms(500.0));
    assert_eq!(next(ConnectionLost), ms(750.0));
    assert_eq!(
        next(Backpressure),
        ms(2000.0),
        "its own schedule starts at its base"
    );
    assert_eq!(
        next(ConnectionLost),
        ms(1125.0),
        "and the first one carries on"
    );
}

#[test]
fn statement_timeout_is_never_retried_by_default_but_can_be() {
    let p = plain(&[]);
    assert!(!p.retries(StatementTimeout));
    assert_eq!(
        run(&p, StatementTimeout).1,
        StopReason::NotRetried(StatementTimeout)
    );
    assert_eq!(run(&p, Constraint).1, StopReason::NotRetried(Constraint));

    let p = plain(&[("on.statement_timeout.attempts", Value::Int(2))]);
    let (delays, stop) = run(&p, StatementTimeout);
    assert_eq!(delays, [ms(50.0)]);
    assert_eq!(stop, StopReason::AttemptsExhausted { attempts: 2 });

    let p = plain(&[("on.connection_lost.attempts", Value::Int(1))]);
    assert_eq!(
        run(&p, ConnectionLost).1,
        StopReason::NotRetried(ConnectionLost)
    );
}

// ---- time limits ----

#[test]
fn max_elapsed_stops_a_retry_that_would_end_past_it() {
    let p = plain(&[("max_elapsed", "1s".into())]);
    let mut s = p.start();
    assert_eq!(
        s.next_delay(ConnectionLost, ms(900.0), None),
        RetryDecision::RetryAfter(ms(50.0))
    );
    assert_eq!(
        s.next_delay(ConnectionLost, ms(900.0), None),
        RetryDecision::Stop(StopReason::ElapsedExhausted),
        "900 ms + 100 ms reaches the limit"
    );
}

#[test]
fn a_delay_that_would_end_after_the_deadline_stops_at_once() {
    let p = plain(&[]);
    let mut s = p.start();
    assert_eq!(
        s.next_delay(ConnectionLost, Duration::ZERO, Some(ms(40.0))),
        RetryDecision::Stop(StopReason::DeadlineTooClose {
            delay: ms(50.0),
            remaining: ms(40.0)
        })
    );
    let mut s = p.start();
    assert_eq!(
        s.next_delay(ConnectionLost, Duration::ZERO, Some(ms(60.0))),
        RetryDecision::RetryAfter(ms(50.0))
    );
    assert_eq!(p.metrics().stops.deadline_too_close, 1);
}

// ---- budget ----

#[tokio::test(start_paused = true)]
async fn the_budget_allows_a_percentage_of_recent_calls() {
    let budget = RetryBudget::new(Duration::from_secs(10), 0, 20.0);
    for _ in 0..100 {
        budget.deposit();
    }
    let granted = (0..100).filter(|_| budget.withdraw()).count();
    assert_eq!(granted, 20);

    let with_min = RetryBudget::new(Duration::from_secs(10), 1, 20.0);
    for _ in 0..100 {
        with_min.deposit();
    }
    let granted = (0..100).filter(|_| with_min.withdraw()).count();
    assert_eq!(granted, 30, "20 % of 100 calls plus 1 a second over 10 s");
}

#[test]
fn concurrent_deposits_are_each_credited_once() {
    let budget = RetryBudget::new(Duration::from_secs(600), 0, 20.0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..1003 {
                    budget.deposit();
                }
            });
        }
    });
    // 20 % of 8024 calls; `balance` credits the last few.
    assert_eq!(budget.balance(), 1604.8);
}

#[tokio::test(start_paused = true)]
async fn calls_older_than_the_window_no_longer_pay_for_retries() {
    let budget = RetryBudget::new(Duration::from_secs(10), 0, 20.0);
    for _ in 0..96 {
        budget.deposit(); // credited 16 at a time
    }
    advance(Duration::from_secs(10)).await;
    assert_eq!(budget.balance(), 0.0);
    assert!(!budget.withdraw());
    for _ in 0..100 {
        budget.deposit();
    }
    assert_eq!(budget.balance(), 20.0, "recent calls count");
}

#[tokio::test(start_paused = true)]
async fn the_budget_refills_as_time_advances() {
    let budget = RetryBudget::new(Duration::from_secs(10), 1, 0.0);
    let granted = (0..20).filter(|_| budget.withdraw()).count();
    assert_eq!(granted, 10);
    assert!(!budget.withdraw());
    advance(Duration::from_secs(5)).await;
    assert!(
        !budget.withdraw(),
        "the withdrawals are still in the window"
    );
    advance(Duration::from_secs(5)).await;
    assert_eq!(budget.balance(), 10.0);
    assert!(budget.withdraw());
}

#[tokio::test(start_paused = true)]
async fn retries_stop_when_the_budget_is_spent() {
    let p = RetryPolicy::new(
        "budget",
        config(&[
            ("jitter", "none".into()),
            ("attempts", Value::Int(10)),
            ("budget_percent", Value::Int(20)),
            ("budget_min_per_second", Value::Int(0)),
        ]),
    );
    // 100 calls in the window, every one failing with a lost connection.
    let mut states: Vec<_> = (0..100).map(|_| p.start()).collect();
    let mut retries = 0;
    for s in &mut states {
        while let RetryDecision::RetryAfter(_) = s.next_delay(ConnectionLost, Duration::ZERO, None)
        {
            retries += 1;
        }
    }
    assert_eq!(retries, 20);
    let m = p.metrics();
    assert_eq!(m.calls, 100);
    assert_eq!(m.retries, vec![(ConnectionLost, 20)]);
    // The first two calls use all 9 retries each, the third gets the last 2.
    assert_eq!(m.stops.attempts_exhausted, 2);
    assert_eq!(m.stops.budget_exhausted, 98);
    assert_eq!(m.budget_balance, 0.0);
}

#[tokio::test(start_paused = true)]
async fn the_budget_is_not_drawn_on_when_another_check_stops() {
    let p = RetryPolicy::new(
        "budget",
        config(&[
            ("budget_percent", Value::Int(0)),
            ("budget_min_per_second", Value::Int(1)),
        ]),
    );
    let before = p.budget().balance();
    let mut s = p.start();
    let _ = s.next_delay(Constraint, Duration::ZERO, None);
    let _ = s.next_delay(
        ConnectionLost,
        Duration::ZERO,
        Some(Duration::from_nanos(1)),
    );
    assert_eq!(p.budget().balance(), before);
}

#[tokio::test(start_paused = true)]
async fn contention_retries_do_not_draw_on_the_budget() {
    let p = RetryPolicy::new(
        "budget",
        config(&[
            ("jitter", "none".into()),
            ("budget_percent", Value::Int(0)),
            ("budget_min_per_second", Value::Int(0)),
        ]),
    );
    // A spent budget refuses a lost connection's retry ...
    let mut lost = p.start();
    assert_eq!(
        lost.next_delay(ConnectionLost, Duration::ZERO, None),
        RetryDecision::Stop(StopReason::BudgetExhausted)
    );
    // ... and still grants every attempt of a serialization failure's schedule.
    let attempts = p.attempts(Contention);
    assert_eq!(
        attempts, CONTENTION_ATTEMPTS,
        "contention gets at least 10 by default"
    );
    assert_eq!(
        p.attempts(ConnectionLost),
        3,
        "other kinds get the policy's"
    );
    let (delays, stop) = run(&p, Contention);
    assert_eq!(delays.len() as u32, attempts - 1);
    assert_eq!(stop, StopReason::AttemptsExhausted { attempts });
    assert_eq!(p.budget().balance(), 0.0);
}
