use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::TryRecvError;
use tokio::time::advance;

use super::*;
use crate::settings::{Section, Value};

const MS: Duration = Duration::from_millis(1);

fn config(pairs: &[(&str, Value)]) -> BreakerConfig {
    let mut c = BreakerConfig::default();
    for (k, v) in pairs {
        c.set(k, v).unwrap_or_else(|e| panic!("{k} = {v}: {e}"));
    }
    c
}

fn breaker(pairs: &[(&str, Value)]) -> CircuitBreaker {
    CircuitBreaker::new("test", config(pairs))
}

/// Seed system 004: 5 failures within 1 minute, open 30 s, 3 half-open probes.
fn seed_004() -> CircuitBreaker {
    breaker(&[
        ("failures", 5i64.into()),
        ("within", "60s".into()),
        ("open_for", "30s".into()),
        ("half_open", 3i64.into()),
    ])
}

fn fail(b: &CircuitBreaker) {
    b.try_acquire().expect("permitted").failure(MS);
}

fn succeed(b: &CircuitBreaker) {
    b.try_acquire().expect("permitted").success(MS);
}

fn drain(rx: &mut tokio::sync::broadcast::Receiver<BreakerEvent>) -> Vec<BreakerEvent> {
    let mut events = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(e) => events.push(e),
            Err(TryRecvError::Empty) => return events,
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn breaker_types_can_be_shared_and_held_across_awaits() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<CircuitBreaker>();
    send_sync::<BreakerPermit<'static>>();
    send_sync::<BreakerRejected>();
    send_sync::<BreakerEvent>();
}

// ---- configuration ----

#[test]
fn set_accepts_good_values_and_explains_bad_ones() {
    let c = config(&[
        ("failures", 5i64.into()),
        ("within", "1m".into()),
        ("consecutive_failures", "10".into()),
        ("failure_rate", 50.5.into()),
        ("slow_rate", 80i64.into()),
        ("slow_call", "2s".into()),
        ("window_calls", 100i64.into()),
        ("minimum_calls", 20i64.into()),
        ("open_for", "30s".into()),
        ("open_for_max", "10m".into()),
        ("open_backoff", 2i64.into()),
        ("half_open", 3i64.into()),
        ("mode", "metrics_only".into()),
    ]);
    assert_eq!(c.failures, Some(5));
    assert_eq!(c.within, Some(Duration::from_secs(60)));
    assert_eq!(c.consecutive_failures, Some(10));
    assert_eq!(c.failure_rate, Some(50.5));
    assert_eq!(c.window_calls, Some(100));
    assert_eq!(c.open_backoff, 2.0);
    assert_eq!(c.mode, BreakerMode::MetricsOnly);
    assert_eq!(c.validate(), Ok(()));

    let mut c = BreakerConfig::default();
    let err = |c: &mut BreakerConfig, k: &str, v: Value| c.set(k, &v).unwrap_err();
    assert_eq!(
        err(&mut c, "failures", 0i64.into()),
        "a whole number from 1 to 1000000"
    );
    assert!(err(&mut c, "within", "2h".into()).contains("from 1ms to 1h"));
    assert!(err(&mut c, "failure_rate", 150i64.into()).contains("percentage"));
    assert_eq!(
        err(&mut c, "window_calls", 1i64.into()),
        "a whole number from 2 to 100000"
    );
    assert_eq!(
        err(&mut c, "open_backoff", 0.5.into()),
        "a number from 1 to 10"
    );
    assert!(err(&mut c, "open_for_max", "2d".into()).contains("to 24h"));
    assert_eq!(
        err(&mut c, "mode", "off".into()),
        "one of \"normal\", \"disabled\", \"metrics_only\", \"forced_open\""
    );
    assert!(err(&mut c, "falures", 1i64.into()).contains("failures, within"));
    assert_eq!(
        c,
        BreakerConfig::default(),
        "a rejected value changes nothing"
    );
    for key in BreakerConfig::SCHEMA.keys {
        assert!(
            !key.doc.is_empty() && !key.rule.expected().is_empty(),
            "{key:?}"
        );
    }
}

#[test]
fn validate_checks_keys_that_only_make_sense_together() {
    let invalid = |pairs: &[(&str, Value)]| config(pairs).validate().unwrap_err();
    assert_eq!(invalid(&[("failures", 5i64.into())]).key, "failures");
    assert!(
        invalid(&[("failures", 5i64.into())])
            .expected
            .contains("`within`")
    );
    assert_eq!(invalid(&[("within", "60s".into())]).key, "within");
    let both = invalid(&[
        ("failure_rate", 50i64.into()),
        ("window", "60s".into()),
        ("window_calls", 100i64.into()),
    ]);
    assert_eq!(both.key, "window_calls");
    assert!(both.expected.contains("not both"));
    assert_eq!(invalid(&[("window", "60s".into())]).key, "window");
    let slow = invalid(&[("slow_rate", 50i64.into())]);
    assert_eq!(
        (slow.key.as_str(), slow.expected.contains("`slow_call`")),
        ("slow_rate", true)
    );
    let max = invalid(&[("open_for", "60s".into()), ("open_for_max", "30s".into())]);
    assert_eq!(max.key, "open_for_max");
    assert_eq!(
        max.expected,
        "at least `open_for` (1m): the open time starts at `open_for` and grows up to \
         `open_for_max`; raise `open_for_max`"
    );
}

#[test]
fn resolved_fills_in_the_documented_defaults() {
    let c = BreakerConfig::default().resolved();
    assert_eq!(c.failure_rate, Some(50.0));
    assert_eq!(c.window, Some(Duration::from_secs(60)));
    assert_eq!(c.minimum_calls, 10);
    assert_eq!(c.open_for, Duration::from_secs(10));
    assert_eq!(c.open_for_max, Some(Duration::from_secs(300)));
    assert_eq!(c.half_open, 1);

    // A configured condition replaces the default one.
    let c = config(&[("consecutive_failures", 3i64.into())]).resolved();
    assert_eq!((c.failure_rate, c.window), (None, None));
    // A rate without a window gets the default window.
    let c = config(&[("slow_rate", 50i64.into()), ("slow_call", "1s".into())]).resolved();
    assert_eq!(c.window, Some(Duration::from_secs(60)));
}

#[test]
#[should_panic(expected = "invalid settings for breaker `bad`: `failures` = 5")]
fn new_panics_on_settings_that_do_not_validate() {
    let _ = CircuitBreaker::new("bad", config(&[("failures", 5i64.into())]));
}

// ---- seed 004: failures within a window ----

#[tokio::test(start_paused = true)]
async fn seed_004_four_failures_do_not_trip_the_fifth_does() {
    let b = seed_004();
    for _ in 0..4 {
        fail(&b);
        advance(Duration::from_secs(10)).await;
    }
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.metrics().recent_failures, Some(4));
    fail(&b); // 40 s after the first
    assert_eq!(b.state(), BreakerState::Open);
    let rejected = b.try_acquire().unwrap_err();
    assert_eq!(rejected.state, BreakerState::Open);
    assert_eq!(rejected.retry_after, Some(Duration::from_secs(30)));
}

#[tokio::test(start_paused = true)]
async fn seed_004_failures_older_than_the_window_fall_out() {
    let b = seed_004();
    for _ in 0..4 {
        fail(&b);
    }
    advance(Duration::from_secs(60)).await;
    fail(&b); // the first four are a minute old
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.metrics().recent_failures, Some(1));
    for _ in 0..3 {
        fail(&b);
    }
    assert_eq!(b.state(), BreakerState::Closed);
    fail(&b);
    assert_eq!(b.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn seed_004_successes_do_not_clear_failures_within_the_window() {
    let b = seed_004();
    for _ in 0..4 {
        fail(&b);
        succeed(&b);
    }
    fail(&b);
    assert_eq!(b.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn seed_004_half_open_permits_exactly_three_concurrent_probes_and_three_successes_close() {
    let b = seed_004();
    for _ in 0..5 {
        fail(&b);
    }
    advance(Duration::from_secs(29)).await;
    let early = b.try_acquire().unwrap_err();
    assert_eq!(early.retry_after, Some(Duration::from_secs(1)));
    advance(Duration::from_secs(1)).await;

    let probes: Vec<_> = (0..3).map(|_| b.try_acquire().expect("probe")).collect();
    assert!(probes.iter().all(|p| p.is_probe()));
    assert_eq!(b.state(), BreakerState::HalfOpen);
    let fourth = b.try_acquire().unwrap_err();
    assert_eq!(fourth.state, BreakerState::HalfOpen);
    assert_eq!(fourth.retry_after, None);

    let mut probes = probes.into_iter();
    probes.next().unwrap().success(MS);
    probes.next().unwrap().success(MS);
    assert_eq!(b.state(), BreakerState::HalfOpen);
    // Two slots are used up by successes, one is running: still no room.
    assert!(b.try_acquire().is_err());
    probes.next().unwrap().success(MS);
    assert_eq!(b.state(), BreakerState::Closed);

    // Closed with empty windows: four new failures do not trip.
    for _ in 0..4 {
        fail(&b);
    }
    assert_eq!(b.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn seed_004_a_failed_probe_reopens() {
    let b = seed_004();
    for _ in 0..5 {
        fail(&b);
    }
    advance(Duration::from_secs(30)).await;
    let first = b.try_acquire().unwrap();
    let second = b.try_acquire().unwrap();
    first.success(MS);
    second.failure(MS);
    assert_eq!(b.state(), BreakerState::Open);
    let rejected = b.try_acquire().unwrap_err();
    assert_eq!(rejected.retry_after, Some(Duration::from_secs(30)));
}

#[tokio::test(start_paused = true)]
async fn ignored_and_dropped_probes_free_half_open_slots() {
    let b = seed_004();
    for _ in 0..5 {
        fail(&b);
    }
    advance(Duration::from_secs(30)).await;
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire().unwrap();
    let p3 = b.try_acquire().unwrap();
    assert!(b.try_acquire().is_err());
    p1.ignore();
    drop(p2);
    let p4 = b.try_acquire().expect("slot freed by ignore");
    let p5 = b.try_acquire().expect("slot freed by drop");
    assert!(b.try_acquire().is_err());
    p3.success(MS);
    p4.success(MS);
    assert_eq!(
        b.state(),
        BreakerState::HalfOpen,
        "ignored probes do not count"
    );
    p5.success(MS);
    assert_eq!(b.state(), BreakerState::Closed);
}

// ---- seed 003: consecutive failures ----

#[tokio::test(start_paused = true)]
async fn seed_003_ten_consecutive_failures_trip_and_a_success_resets_the_count() {
    let b = breaker(&[
        ("consecutive_failures", 10i64.into()),
        ("open_for", "60s".into()),
    ]);
    for _ in 0..9 {
        fail(&b);
    }
    assert_eq!(b.metrics().consecutive_failures, 9);
    succeed(&b);
    assert_eq!(b.metrics().consecutive_failures, 0);
    for _ in 0..9 {
        fail(&b);
    }
    assert_eq!(b.state(), BreakerState::Closed);
    fail(&b);
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(
        b.try_acquire().unwrap_err().retry_after,
        Some(Duration::from_secs(60))
    );
    advance(Duration::from_secs(60)).await;
    succeed(&b); // the probe
    assert_eq!(b.state(), BreakerState::Closed);
}

// ---- rates ----

#[tokio::test(start_paused = true)]
async fn failure_rate_waits_for_minimum_calls() {
    let b = breaker(&[
        ("failure_rate", 50i64.into()),
        ("window", "60s".into()),
        ("minimum_calls", 10i64.into()),
    ]);
    for _ in 0..9 {
        fail(&b);
    }
    assert_eq!(
        b.state(),
        BreakerState::Closed,
        "9 calls are under the minimum"
    );
    assert_eq!(b.metrics().failure_rate, Some(100.0));
    fail(&b);
    assert_eq!(b.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn failure_rate_below_the_threshold_does_not_trip() {
    let b = breaker(&[
        ("failure_rate", 50i64.into()),
        ("minimum_calls", 4i64.into()),
    ]);
    for _ in 0..20 {
        succeed(&b);
        succeed(&b);
        fail(&b); // 33 %
    }
    assert_eq!(b.state(), BreakerState::Closed);
    let m = b.metrics();
    assert_eq!((m.window_calls, m.window_failures), (Some(60), Some(20)));
}

#[tokio::test(start_paused = true)]
async fn failure_rate_over_a_count_window_sees_only_the_last_calls() {
    let b = breaker(&[
        ("failure_rate", 50i64.into()),
        ("window_calls", 10i64.into()),
        ("minimum_calls", 10i64.into()),
    ]);
    let mut rx = b.subscribe();
    for _ in 0..4 {
        fail(&b);
    }
    for _ in 0..10 {
        succeed(&b); // pushes the four failures out
    }
    assert_eq!(b.metrics().window_failures, Some(0));
    for _ in 0..4 {
        fail(&b);
    }
    assert_eq!(b.state(), BreakerState::Closed, "4 of the last 10");
    fail(&b);
    assert_eq!(b.state(), BreakerState::Open, "5 of the last 10");
    assert_eq!(
        drain(&mut rx)[0].reason,
        TransitionReason::FailureRate {
            rate: 50.0,
            calls: 10
        }
    );
}

#[tokio::test(start_paused = true)]
async fn failure_rate_over_a_time_window_forgets_old_calls() {
    let b = breaker(&[
        ("failure_rate", 50i64.into()),
        ("window", "60s".into()),
        ("minimum_calls", 4i64.into()),
    ]);
    for _ in 0..3 {
        fail(&b);
    }
    advance(Duration::from_secs(60)).await;
    assert_eq!(b.metrics().window_calls, Some(0));
    succeed(&b);
    succeed(&b);
    fail(&b);
    assert_eq!(b.state(), BreakerState::Closed, "1 of 3, under the minimum");
    fail(&b);
    assert_eq!(b.state(), BreakerState::Open, "2 of 4");
}

#[tokio::test(start_paused = true)]
async fn slow_successes_trip_the_slow_call_rate() {
    let b = breaker(&[
        ("slow_rate", 60i64.into()),
        ("slow_call", "1s".into()),
        ("window_calls", 5i64.into()),
        ("minimum_calls", 5i64.into()),
    ]);
    let mut rx = b.subscribe();
    let slow = Duration::from_secs(1);
    for _ in 0..2 {
        b.try_acquire().unwrap().success(MS);
    }
    for _ in 0..2 {
        b.try_acquire().unwrap().success(slow);
    }
    assert_eq!(b.state(), BreakerState::Closed);
    b.try_acquire().unwrap().success(slow + MS);
    assert_eq!(b.state(), BreakerState::Open);
    let events = drain(&mut rx);
    assert_eq!(
        events[0].reason,
        TransitionReason::SlowCallRate {
            rate: 60.0,
            calls: 5
        }
    );
    assert_eq!(b.metrics().slow_total, 3);
}

#[tokio::test(start_paused = true)]
async fn a_slow_probe_fails_when_slow_calls_can_trip() {
    let b = breaker(&[
        ("consecutive_failures", 1i64.into()),
        ("slow_rate", 100i64.into()),
        ("slow_call", "1s".into()),
        ("open_for", "10s".into()),
    ]);
    fail(&b);
    advance(Duration::from_secs(10)).await;
    b.try_acquire().unwrap().success(Duration::from_secs(2));
    assert_eq!(b.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn the_default_trips_when_half_of_ten_calls_fail() {
    let b = CircuitBreaker::new("default", BreakerConfig::default());
    for _ in 0..5 {
        succeed(&b);
    }
    for _ in 0..4 {
        fail(&b);
    }
    assert_eq!(b.state(), BreakerState::Closed);
    fail(&b);
    assert_eq!(b.state(), BreakerState::Open);
}

// ---- open duration ----

#[tokio::test(start_paused = true)]
async fn open_duration_grows_on_failed_probes_up_to_the_cap_and_resets_on_close() {
    let b = breaker(&[
        ("consecutive_failures", 1i64.into()),
        ("open_for", "10s".into()),
        ("open_backoff", 2i64.into()),
        ("open_for_max", "35s".into()),
    ]);
    fail(&b);
    let mut expected = Vec::new();
    let mut seen = Vec::new();
    for want in [10, 20, 35, 35] {
        expected.push(Duration::from_secs(want));
        let left = b.try_acquire().unwrap_err().retry_after.unwrap();
        seen.push(left);
        advance(left).await;
        b.try_acquire().unwrap().failure(MS); // the probe fails
    }
    assert_eq!(seen, expected);
    let left = b.try_acquire().unwrap_err().retry_after.unwrap();
    advance(left).await;
    succeed(&b);
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.metrics().open_duration, Duration::from_secs(10));
    fail(&b);
    assert_eq!(
        b.try_acquire().unwrap_err().retry_after,
        Some(Duration::from_secs(10))
    );
}

#[tokio::test(start_paused = true)]
async fn metrics_report_the_time_until_half_open() {
    let b = breaker(&[
        ("consecutive_failures", 1i64.into()),
        ("open_for", "30s".into()),
    ]);
    assert_eq!(b.metrics().half_open_in, None);
    fail(&b);
    advance(Duration::from_secs(12)).await;
    let m = b.metrics();
    assert_eq!(m.state, BreakerState::Open);
    assert_eq!(m.half_open_in, Some(Duration::from_secs(18)));
    assert_eq!(m.transitions_total, 1);
    let _ = b.try_acquire();
    assert_eq!(b.metrics().rejected_total, 1);
}

// ---- recovery: by the server's answer, or by the timer ----

fn unreachable(b: &CircuitBreaker) {
    b.try_acquire().expect("permitted").unreachable(MS);
}

#[tokio::test(start_paused = true)]
async fn a_breaker_opened_by_an_unreachable_server_half_opens_when_the_server_answers() {
    let b = breaker(&[
        ("consecutive_failures", 2i64.into()),
        ("open_for", "10m".into()),
    ]);
    let mut events = b.subscribe();
    // Before it opens, an answer changes nothing.
    assert!(!b.server_answered());
    unreachable(&b);
    unreachable(&b);
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(b.recovery(), Some(Recovery::ServerProbe));
    let r = b.try_acquire().unwrap_err();
    assert_eq!(r.recovery, Some(Recovery::ServerProbe));
    // The open duration is only the longest wait: the server's answer ends it at once.
    advance(Duration::from_secs(1)).await;
    assert!(b.server_answered());
    assert_eq!(b.state(), BreakerState::HalfOpen);
    let probe = b.try_acquire().expect("a half-open probe");
    assert!(probe.is_probe());
    // Half-open, with its probe slot taken: the rejection says how it is recovering.
    assert_eq!(
        b.try_acquire().unwrap_err().recovery,
        Some(Recovery::ServerProbe)
    );
    probe.success(MS);
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.recovery(), None);
    let reasons: Vec<TransitionReason> = drain(&mut events).into_iter().map(|e| e.reason).collect();
    assert_eq!(reasons[1], TransitionReason::ServerAnswered);
}

#[tokio::test(start_paused = true)]
async fn a_breaker_opened_by_the_ops_own_failures_waits_its_timer() {
    let b = breaker(&[
        ("consecutive_failures", 2i64.into()),
        ("open_for", "30s".into()),
    ]);
    fail(&b);
    fail(&b);
    assert_eq!(b.recovery(), Some(Recovery::Timer));
    assert!(
        !b.server_answered(),
        "a probe cannot tell timeouts are over"
    );
    assert_eq!(b.state(), BreakerState::Open);
    let r = b.try_acquire().unwrap_err();
    assert_eq!(r.recovery, Some(Recovery::Timer));
    assert_eq!(r.retry_after, Some(Duration::from_secs(30)));
    assert!(b.rejects_now().is_some(), "turned away before any set-up");
    advance(Duration::from_secs(30)).await;
    assert!(b.try_acquire().expect("probe after open_for").is_probe());
}

#[tokio::test(start_paused = true)]
async fn the_failure_that_trips_the_breaker_decides_how_it_recovers() {
    // Timeouts first, then a lost connection trips it: the server is unreachable.
    let b = breaker(&[("consecutive_failures", 3i64.into())]);
    fail(&b);
    fail(&b);
    unreachable(&b);
    assert_eq!(b.recovery(), Some(Recovery::ServerProbe));
    assert!(
        b.rejects_now().is_none(),
        "the runner decides: the caller may wait"
    );
    // The server answers, but the half-open probe times out: open again, by the timer now.
    assert!(b.server_answered());
    b.try_acquire().unwrap().failure(MS);
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(b.recovery(), Some(Recovery::Timer));
    assert!(!b.server_answered());
    // A slow-call rate trips on slow successes: the timer.
    let slow = breaker(&[
        ("slow_rate", 50i64.into()),
        ("slow_call", "1s".into()),
        ("window_calls", 4i64.into()),
        ("minimum_calls", 2i64.into()),
    ]);
    slow.try_acquire().unwrap().success(Duration::from_secs(2));
    slow.try_acquire().unwrap().success(Duration::from_secs(2));
    assert_eq!(slow.recovery(), Some(Recovery::Timer));
}

#[tokio::test(start_paused = true)]
async fn waiters_hear_every_transition() {
    let b = Arc::new(breaker(&[("consecutive_failures", 1i64.into())]));
    let changed = b.changed();
    tokio::pin!(changed);
    changed.as_mut().enable();
    unreachable(&b);
    tokio::time::timeout(Duration::from_millis(1), changed)
        .await
        .expect("woken by the transition to open");
    let waiter = {
        let b = Arc::clone(&b);
        tokio::spawn(async move { b.changed().await })
    };
    tokio::task::yield_now().await;
    assert!(b.server_answered());
    tokio::time::timeout(Duration::from_millis(1), waiter)
        .await
        .expect("woken by the transition to half-open")
        .unwrap();
}

// ---- modes and manual control ----

#[tokio::test(start_paused = true)]
async fn forced_open_rejects_until_reset() {
    let b = breaker(&[("consecutive_failures", 1i64.into())]);
    b.force_open();
    assert_eq!(b.state(), BreakerState::ForcedOpen);
    advance(Duration::from_secs(3600)).await;
    let rejected = b.try_acquire().unwrap_err();
    assert_eq!(
        rejected,
        BreakerRejected {
            state: BreakerState::ForcedOpen,
            retry_after: None,
            recovery: None,
        }
    );
    b.reset();
    assert_eq!(b.state(), BreakerState::Closed);
    succeed(&b);
}

#[tokio::test(start_paused = true)]
async fn forced_open_from_the_mode_key() {
    let b = breaker(&[("mode", "forced_open".into())]);
    assert!(b.try_acquire().is_err());
    assert_eq!(b.mode(), BreakerMode::ForcedOpen);
}

#[tokio::test(start_paused = true)]
async fn disabled_permits_everything_and_records_nothing() {
    let b = breaker(&[("consecutive_failures", 1i64.into())]);
    b.disable();
    for _ in 0..100 {
        fail(&b);
    }
    assert_eq!(b.state(), BreakerState::Disabled);
    let m = b.metrics();
    assert_eq!((m.calls_total, m.consecutive_failures), (0, 0));
    b.reset();
    fail(&b);
    assert_eq!(b.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn metrics_only_never_rejects_and_reports_would_be_transitions() {
    let b = breaker(&[
        ("consecutive_failures", 3i64.into()),
        ("open_for", "10s".into()),
        ("mode", "metrics_only".into()),
    ]);
    let mut rx = b.subscribe();
    for _ in 0..3 {
        fail(&b);
    }
    assert_eq!(b.state(), BreakerState::MetricsOnly);
    // It would be open now: calls still run.
    for _ in 0..5 {
        fail(&b);
    }
    advance(Duration::from_secs(10)).await;
    succeed(&b); // the would-be probe
    let seen: Vec<_> = drain(&mut rx)
        .into_iter()
        .map(|e| (e.from, e.to, e.enforced))
        .collect();
    assert_eq!(
        seen,
        vec![
            (BreakerState::Closed, BreakerState::Open, false),
            (BreakerState::Open, BreakerState::HalfOpen, false),
            (BreakerState::HalfOpen, BreakerState::Closed, false),
        ]
    );
    let m = b.metrics();
    assert_eq!(m.rejected_total, 0);
    assert_eq!(
        m.calls_total, 4,
        "calls let through while it would be open are not recorded"
    );
}

#[tokio::test(start_paused = true)]
async fn reset_closes_an_open_breaker_and_clears_its_windows() {
    let b = seed_004();
    for _ in 0..5 {
        fail(&b);
    }
    assert_eq!(b.state(), BreakerState::Open);
    b.reset();
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.metrics().recent_failures, Some(0));
    for _ in 0..4 {
        fail(&b);
    }
    assert_eq!(b.state(), BreakerState::Closed);
}

// ---- events ----

#[tokio::test(start_paused = true)]
async fn events_are_emitted_in_order() {
    let b = seed_004();
    let mut rx = b.subscribe();
    for _ in 0..5 {
        fail(&b);
    }
    advance(Duration::from_secs(30)).await;
    let probe = b.try_acquire().unwrap();
    probe.failure(MS);
    advance(Duration::from_secs(30)).await;
    for _ in 0..3 {
        succeed(&b);
    }
    b.force_open();
    b.reset();
    let seen: Vec<_> = drain(&mut rx)
        .into_iter()
        .map(|e| {
            assert_eq!(&*e.breaker, "test");
            assert!(e.enforced);
            (e.from, e.to, e.reason)
        })
        .collect();
    use BreakerState::*;
    assert_eq!(
        seen,
        vec![
            (
                Closed,
                Open,
                TransitionReason::FailureThreshold {
                    failures: 5,
                    within: Duration::from_secs(60)
                }
            ),
            (Open, HalfOpen, TransitionReason::OpenElapsed),
            (HalfOpen, Open, TransitionReason::ProbeFailed),
            (Open, HalfOpen, TransitionReason::OpenElapsed),
            (HalfOpen, Closed, TransitionReason::ProbesSucceeded),
            (Closed, ForcedOpen, TransitionReason::Manual),
            (ForcedOpen, Closed, TransitionReason::Manual),
        ]
    );
    assert_eq!(b.metrics().transitions_total, 7);
}

#[tokio::test(start_paused = true)]
async fn outcomes_of_calls_started_before_a_transition_are_dropped() {
    let b = breaker(&[
        ("consecutive_failures", 2i64.into()),
        ("open_for", "1s".into()),
    ]);
    let early = b.try_acquire().unwrap();
    fail(&b);
    fail(&b);
    assert_eq!(b.state(), BreakerState::Open);
    advance(Duration::from_secs(1)).await;
    succeed(&b); // probe closes
    early.failure(MS); // started in the previous closed period
    assert_eq!(b.metrics().consecutive_failures, 0);
}

// ---- concurrency ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_closed_use_from_many_tasks_counts_every_outcome() {
    const TASKS: u64 = 8;
    const CALLS: u64 = 5_000;
    let count = Arc::new(breaker(&[
        ("failure_rate", 100i64.into()),
        ("window_calls", 100_000i64.into()),
        ("minimum_calls", 100_000i64.into()),
    ]));
    let time = Arc::new(breaker(&[
        ("failure_rate", 100i64.into()),
        ("window", "1h".into()),
        ("minimum_calls", 100_000i64.into()),
    ]));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (count, time) = (count.clone(), time.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..CALLS {
                for b in [&count, &time] {
                    let permit = b.try_acquire().expect("closed");
                    if (t + i) % 4 == 0 {
                        permit.failure(MS);
                    } else {
                        permit.success(MS);
                    }
                }
                if i % 64 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for b in [&count, &time] {
        let m = b.metrics();
        assert_eq!(m.state, BreakerState::Closed);
        assert_eq!(m.calls_total, TASKS * CALLS);
        assert_eq!(m.failures_total, TASKS * CALLS / 4);
        assert_eq!(m.window_calls, Some(TASKS * CALLS));
        assert_eq!(m.window_failures, Some(TASKS * CALLS / 4));
    }
}
