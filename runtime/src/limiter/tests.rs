use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, advance};

use super::*;
use crate::settings::{Section, Value};

const MS: Duration = Duration::from_millis(1);

fn config(pairs: &[(&str, Value)]) -> LimiterConfig {
    let mut c = LimiterConfig::default();
    for (k, v) in pairs {
        c.set(k, v).unwrap_or_else(|e| panic!("{k} = {v}: {e}"));
    }
    c
}

fn limiter(pairs: &[(&str, Value)]) -> RateLimiter {
    RateLimiter::new("test", config(pairs))
}

fn ten_per_second(extra: &[(&str, Value)]) -> RateLimiter {
    let mut pairs = vec![("per_second", Value::Int(10)), ("burst", Value::Int(5))];
    pairs.extend(extra.iter().cloned());
    limiter(&pairs)
}

#[test]
fn limiter_types_can_be_shared() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<RateLimiter>();
    send_sync::<LimiterRejected>();
}

#[test]
fn set_accepts_good_values_and_explains_bad_ones() {
    let c = config(&[
        ("per_second", 0.5.into()),
        ("burst", Value::Int(3)),
        ("wait", true.into()),
        ("max_wait", "250ms".into()),
        ("per_key", "true".into()),
        ("max_keys", Value::Int(100)),
    ]);
    assert_eq!(c.per_second, Some(0.5));
    assert_eq!(c.effective_burst(), 3);
    assert!(c.wait && c.per_key);
    assert_eq!(c.max_wait, Duration::from_millis(250));
    assert_eq!(c.max_keys, 100);
    assert_eq!(c.validate(), Ok(()));

    let mut c = LimiterConfig::default();
    let mut err = |k: &str, v: Value| c.set(k, &v).unwrap_err();
    assert_eq!(
        err("per_second", Value::Int(0)),
        "a number above 0 and at most 1000000"
    );
    assert!(err("per_second", "fast".into()).starts_with("a number above 0"));
    assert_eq!(
        err("burst", Value::Int(0)),
        "a whole number from 1 to 1000000"
    );
    assert_eq!(err("wait", "yes".into()), "`true` or `false`");
    assert_eq!(
        err("max_keys", Value::Int(0)),
        "a whole number from 1 to 10000000"
    );
    assert!(err("rate", Value::Int(1)).contains("per_second, burst"));
    assert_eq!(
        c,
        LimiterConfig::default(),
        "a rejected value changes nothing"
    );

    let missing = LimiterConfig::default().validate().unwrap_err();
    assert_eq!(missing.key, "per_second");
    assert!(missing.expected.contains("per_second = 100"));
}

#[test]
fn burst_defaults_to_one_second_of_permits() {
    assert_eq!(config(&[("per_second", 2.5.into())]).effective_burst(), 3);
    assert_eq!(config(&[("per_second", 0.5.into())]).effective_burst(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_burst_is_permitted_then_calls_are_rejected_with_the_time_to_the_next_permit() {
    let l = ten_per_second(&[]);
    for _ in 0..5 {
        l.acquire(None, None).await.expect("within the burst");
    }
    let rejected = l.acquire(None, None).await.unwrap_err();
    assert_eq!(rejected.retry_after, 100 * MS);
    advance(40 * MS).await;
    assert_eq!(l.try_acquire(None).unwrap_err().retry_after, 60 * MS);
    let m = l.metrics();
    assert_eq!((m.permitted, m.rejected), (5, 2));
}

#[tokio::test(start_paused = true)]
async fn permits_refill_at_the_rate_up_to_the_burst() {
    let l = ten_per_second(&[]);
    for _ in 0..5 {
        l.try_acquire(None).unwrap();
    }
    advance(100 * MS).await;
    l.try_acquire(None).expect("one permit after 100 ms");
    assert!(l.try_acquire(None).is_err());
    advance(Duration::from_secs(10)).await;
    let granted = (0..20).filter(|_| l.try_acquire(None).is_ok()).count();
    assert_eq!(granted, 5, "a quiet period refills the burst, no more");
}

#[tokio::test(start_paused = true)]
async fn fractional_rates_space_permits_out() {
    let l = limiter(&[("per_second", 0.5.into())]);
    l.try_acquire(None).unwrap();
    assert_eq!(
        l.try_acquire(None).unwrap_err().retry_after,
        Duration::from_secs(2)
    );
    advance(Duration::from_secs(2)).await;
    l.try_acquire(None).unwrap();
}

#[tokio::test(start_paused = true)]
async fn acquire_at_judges_the_call_at_the_reading_it_is_given() {
    let l = ten_per_second(&[]);
    let start = Instant::now();
    for _ in 0..5 {
        l.acquire_at(None, None, start)
            .await
            .expect("within the burst");
    }
    // The clock has not moved: a check at a reading 100 ms on finds the next permit there.
    let rejected = l.acquire_at(None, None, start).await.unwrap_err();
    assert_eq!(rejected.retry_after, 100 * MS);
    l.acquire_at(None, None, start + 100 * MS)
        .await
        .expect("judged 100 ms on");
    // The reading was lent to that check only: the next one reads the clock again.
    assert_eq!(l.try_acquire(None).unwrap_err().retry_after, 200 * MS);

    let keyed = ten_per_second(&[("per_key", true.into())]);
    for _ in 0..5 {
        keyed.acquire_at(Some("a"), None, start).await.unwrap();
    }
    assert!(keyed.acquire_at(Some("a"), None, start).await.is_err());
    keyed
        .acquire_at(Some("a"), None, start + 100 * MS)
        .await
        .expect("a key's cell judged 100 ms on");
}

#[tokio::test(start_paused = true)]
async fn a_waiter_judged_at_a_reading_sleeps_until_its_permit_and_checks_the_clock() {
    let l = limiter(&[
        ("per_second", Value::Int(10)),
        ("burst", Value::Int(1)),
        ("wait", true.into()),
    ]);
    let start = Instant::now();
    l.acquire_at(None, None, start).await.unwrap();
    l.acquire_at(None, Some(start + 500 * MS), start)
        .await
        .expect("waits 100 ms");
    assert_eq!(start.elapsed(), 100 * MS);
    let m = l.metrics();
    assert_eq!((m.permitted, m.waited, m.rejected), (2, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn waiting_for_a_permit_within_the_deadline_succeeds() {
    let l = limiter(&[
        ("per_second", Value::Int(10)),
        ("burst", Value::Int(1)),
        ("wait", true.into()),
    ]);
    l.acquire(None, None).await.unwrap();
    let start = Instant::now();
    l.acquire(None, Some(start + 500 * MS))
        .await
        .expect("waits 100 ms");
    assert_eq!(start.elapsed(), 100 * MS);
    let m = l.metrics();
    assert_eq!((m.permitted, m.waited, m.rejected), (2, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_permit_after_the_deadline_is_rejected_without_waiting() {
    let l = limiter(&[
        ("per_second", Value::Int(10)),
        ("burst", Value::Int(1)),
        ("wait", true.into()),
    ]);
    l.acquire(None, None).await.unwrap();
    let start = Instant::now();
    let rejected = l.acquire(None, Some(start + 50 * MS)).await.unwrap_err();
    assert_eq!(rejected.retry_after, 100 * MS);
    assert_eq!(start.elapsed(), Duration::ZERO, "no sleep before failing");
}

#[tokio::test(start_paused = true)]
async fn max_wait_bounds_the_wait_without_a_deadline() {
    let l = limiter(&[
        ("per_second", Value::Int(1)),
        ("wait", true.into()),
        ("max_wait", "500ms".into()),
    ]);
    l.acquire(None, None).await.unwrap();
    let start = Instant::now();
    let rejected = l.acquire(None, None).await.unwrap_err();
    assert_eq!(rejected.retry_after, Duration::from_secs(1));
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn concurrent_waiters_all_get_permits_spaced_by_the_rate() {
    let l = Arc::new(limiter(&[
        ("per_second", Value::Int(10)),
        ("burst", Value::Int(1)),
        ("wait", true.into()),
    ]));
    l.try_acquire(None).unwrap();
    let start = Instant::now();
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let l = l.clone();
            tokio::spawn(async move {
                l.acquire(None, Some(start + Duration::from_secs(1)))
                    .await
                    .map(|()| start.elapsed())
            })
        })
        .collect();
    let mut done = Vec::new();
    for t in tasks {
        done.push(t.await.unwrap().expect("within the deadline"));
    }
    done.sort();
    // Each waiter gets its own permit: no two in the same 100 ms slot.
    assert!(done[0] >= 100 * MS, "{done:?}");
    assert!(done[1] >= done[0] + 100 * MS, "{done:?}");
    assert!(done[2] >= done[1] + 100 * MS, "{done:?}");
    assert_eq!(l.metrics().permitted, 4);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_waiter_takes_no_permit() {
    let l = limiter(&[
        ("per_second", Value::Int(10)),
        ("burst", Value::Int(1)),
        ("wait", true.into()),
    ]);
    l.try_acquire(None).unwrap();
    let waiting = tokio::time::timeout(50 * MS, l.acquire(None, None)).await;
    assert!(waiting.is_err(), "gave up while waiting");
    advance(50 * MS).await;
    l.try_acquire(None)
        .expect("the permit at 100 ms is still free");
}

#[tokio::test(start_paused = true)]
async fn per_key_limits_are_isolated() {
    let l = ten_per_second(&[("per_key", true.into())]);
    for _ in 0..5 {
        l.try_acquire(Some("tenant-a")).unwrap();
    }
    assert!(l.try_acquire(Some("tenant-a")).is_err());
    for _ in 0..5 {
        l.try_acquire(Some("tenant-b"))
            .expect("b has its own burst");
    }
    // Calls without a key share one bucket of their own.
    for _ in 0..5 {
        l.try_acquire(None).unwrap();
    }
    assert!(l.try_acquire(None).is_err());
    assert_eq!(l.metrics().keys, 2);
}

#[tokio::test(start_paused = true)]
async fn a_plain_limiter_ignores_keys() {
    let l = ten_per_second(&[]);
    for _ in 0..5 {
        l.try_acquire(Some("tenant-a")).unwrap();
    }
    assert!(l.try_acquire(Some("tenant-b")).is_err());
    assert_eq!(l.metrics().keys, 0);
}

#[tokio::test(start_paused = true)]
async fn the_key_bound_refuses_new_keys_until_one_goes_idle() {
    // 10/s, burst 5: a key is as good as new 500 ms after its last permit.
    let l = ten_per_second(&[("per_key", true.into()), ("max_keys", Value::Int(2))]);
    l.try_acquire(Some("a")).unwrap();
    advance(100 * MS).await;
    l.try_acquire(Some("b")).unwrap();
    let refused = l.try_acquire(Some("c")).unwrap_err();
    assert_eq!(
        refused.retry_after,
        400 * MS,
        "a goes idle 500 ms after its permit"
    );
    l.try_acquire(Some("a")).expect("known keys carry on");
    assert_eq!(l.try_acquire(Some("c")).unwrap_err().retry_after, 400 * MS);
    advance(400 * MS).await;
    assert!(
        l.try_acquire(Some("c")).is_err(),
        "a was used again at 100 ms"
    );
    advance(100 * MS).await;
    l.try_acquire(Some("c")).expect("a and b idle: pruned");
    let m = l.metrics();
    assert_eq!(m.keys, 1);
    assert_eq!(m.keys_refused, 3);
}
