use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use tokio::time::{Instant, sleep};

use super::*;
use crate::settings::{Section, Value};

const MS: Duration = Duration::from_millis(1);

fn bulkhead(pairs: &[(&str, Value)]) -> Arc<Bulkhead> {
    let mut c = BulkheadConfig::default();
    for (k, v) in pairs {
        c.set(k, v).unwrap_or_else(|e| panic!("{k} = {v}: {e}"));
    }
    Arc::new(Bulkhead::new("test", c))
}

/// Lets spawned tasks run until they block.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[test]
fn bulkhead_permits_are_owned_and_sendable() {
    fn owned_send_sync<T: Send + Sync + 'static>() {}
    owned_send_sync::<Bulkhead>();
    owned_send_sync::<BulkheadPermit>();
    owned_send_sync::<BulkheadRejected>();
}

#[test]
fn set_accepts_good_values_and_explains_bad_ones() {
    let mut c = BulkheadConfig::default();
    assert_eq!(
        (c.max_concurrent, c.max_queue, c.max_wait),
        (10, 0, Duration::from_secs(1))
    );
    c.set("max_concurrent", &Value::Int(4)).unwrap();
    c.set("max_queue", &"100".into()).unwrap();
    c.set("max_wait", &"250ms".into()).unwrap();
    assert_eq!(
        (c.max_concurrent, c.max_queue, c.max_wait),
        (4, 100, 250 * MS)
    );
    assert_eq!(c.validate(), Ok(()));

    let before = c.clone();
    assert_eq!(
        c.set("max_concurrent", &Value::Int(0)).unwrap_err(),
        "a whole number from 1 to 100000"
    );
    assert_eq!(
        c.set("max_queue", &Value::Int(-1)).unwrap_err(),
        "a whole number from 0 to 1000000"
    );
    assert!(
        c.set("max_wait", &"2h".into())
            .unwrap_err()
            .contains("from 1ms to 1h")
    );
    assert!(
        c.set("queue", &Value::Int(1))
            .unwrap_err()
            .contains("max_concurrent, max_queue, max_wait")
    );
    assert_eq!(c, before, "a rejected value changes nothing");
}

#[tokio::test(start_paused = true)]
async fn concurrency_never_exceeds_the_limit() {
    let b = bulkhead(&[
        ("max_concurrent", Value::Int(5)),
        ("max_queue", Value::Int(100)),
        ("max_wait", "10s".into()),
    ]);
    let running = Arc::new(AtomicU32::new(0));
    let peak = Arc::new(AtomicU32::new(0));
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (b, running, peak) = (b.clone(), running.clone(), peak.clone());
            tokio::spawn(async move {
                let _permit = b.acquire(None).await.expect("admitted");
                let now = running.fetch_add(1, SeqCst) + 1;
                peak.fetch_max(now, SeqCst);
                sleep(MS * (1 + i % 7)).await;
                running.fetch_sub(1, SeqCst);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(peak.load(SeqCst), 5);
    let m = b.metrics();
    assert_eq!((m.admitted, m.running, m.queued, m.shed), (50, 0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_sheds_the_excess_at_once() {
    let b = bulkhead(&[
        ("max_concurrent", Value::Int(1)),
        ("max_queue", Value::Int(2)),
    ]);
    let _running = b.acquire(None).await.unwrap();
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let b = b.clone();
            tokio::spawn(async move { b.acquire(None).await.map(drop) })
        })
        .collect();
    settle().await;
    assert_eq!(b.metrics().queued, 2);
    let start = Instant::now();
    let shed = b.acquire(None).await.unwrap_err();
    assert_eq!(
        shed,
        BulkheadRejected {
            reason: BulkheadRejection::QueueFull,
            max_concurrent: 1,
            max_queue: 2
        }
    );
    assert_eq!(start.elapsed(), Duration::ZERO, "shed without waiting");
    assert_eq!(b.metrics().shed, 1);
    drop(_running);
    for w in waiters {
        w.await.unwrap().expect("queued callers get their turn");
    }
}

#[tokio::test(start_paused = true)]
async fn without_a_queue_a_full_bulkhead_sheds() {
    let b = bulkhead(&[("max_concurrent", Value::Int(1))]);
    let _running = b.acquire(None).await.unwrap();
    assert_eq!(
        b.acquire(None).await.unwrap_err().reason,
        BulkheadRejection::QueueFull
    );
    assert_eq!(
        b.try_acquire().unwrap_err().reason,
        BulkheadRejection::QueueFull
    );
}

#[tokio::test(start_paused = true)]
async fn a_waiter_gives_up_after_max_wait() {
    let b = bulkhead(&[
        ("max_concurrent", Value::Int(1)),
        ("max_queue", Value::Int(1)),
        ("max_wait", "100ms".into()),
    ]);
    let _running = b.acquire(None).await.unwrap();
    let start = Instant::now();
    let err = b.acquire(None).await.unwrap_err();
    assert_eq!(err.reason, BulkheadRejection::WaitTimedOut);
    assert_eq!(start.elapsed(), 100 * MS);
    let m = b.metrics();
    assert_eq!((m.timed_out, m.queued), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_waiter_gives_up_at_its_deadline_when_that_comes_first() {
    let b = bulkhead(&[
        ("max_concurrent", Value::Int(1)),
        ("max_queue", Value::Int(1)),
        ("max_wait", "1s".into()),
    ]);
    let _running = b.acquire(None).await.unwrap();
    let start = Instant::now();
    let err = b.acquire(Some(start + 30 * MS)).await.unwrap_err();
    assert_eq!(err.reason, BulkheadRejection::WaitTimedOut);
    assert_eq!(start.elapsed(), 30 * MS);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_is_admitted_when_a_slot_frees_in_time() {
    let b = bulkhead(&[
        ("max_concurrent", Value::Int(1)),
        ("max_queue", Value::Int(1)),
    ]);
    let running = b.acquire(None).await.unwrap();
    let releaser = tokio::spawn(async move {
        sleep(40 * MS).await;
        drop(running);
    });
    let start = Instant::now();
    let _permit = b.acquire(None).await.expect("admitted after 40 ms");
    assert_eq!(start.elapsed(), 40 * MS);
    releaser.await.unwrap();
    assert_eq!(b.metrics().running, 1);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_waiter_frees_its_queue_slot() {
    let b = bulkhead(&[
        ("max_concurrent", Value::Int(1)),
        ("max_queue", Value::Int(1)),
        ("max_wait", "10s".into()),
    ]);
    let running = b.acquire(None).await.unwrap();
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move { b.acquire(None).await.map(drop) })
    };
    settle().await;
    assert_eq!(b.metrics().queued, 1);
    assert!(b.acquire(None).await.is_err(), "the queue is full");
    waiter.abort();
    assert!(waiter.await.unwrap_err().is_cancelled());
    assert_eq!(b.metrics().queued, 0);

    let next = {
        let b = b.clone();
        tokio::spawn(async move { b.acquire(None).await.map(drop) })
    };
    settle().await;
    assert_eq!(b.metrics().queued, 1, "the freed slot is usable");
    drop(running);
    next.await.unwrap().expect("admitted");
    assert_eq!(b.metrics().running, 0, "the cancelled waiter took no slot");
}

#[tokio::test(start_paused = true)]
async fn waiters_are_served_in_arrival_order() {
    let b = bulkhead(&[
        ("max_concurrent", Value::Int(1)),
        ("max_queue", Value::Int(10)),
        ("max_wait", "10s".into()),
    ]);
    let running = b.acquire(None).await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for id in 0..5 {
        let (b, order) = (b.clone(), order.clone());
        waiters.push(tokio::spawn(async move {
            let _permit = b.acquire(None).await.unwrap();
            order.lock().unwrap().push(id);
            sleep(MS).await;
        }));
        settle().await;
    }
    drop(running);
    for w in waiters {
        w.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_dropped_as_it_is_served_passes_its_slot_to_the_next() {
    let b = bulkhead(&[
        ("max_concurrent", Value::Int(1)),
        ("max_queue", Value::Int(2)),
        ("max_wait", "10s".into()),
    ]);
    let running = b.acquire(None).await.unwrap();
    let mut first = Box::pin(b.acquire(None));
    let polled = std::future::poll_fn(|cx| Poll::Ready(first.as_mut().poll(cx))).await;
    assert!(polled.is_pending(), "queued behind the running call");
    let second = {
        let b = b.clone();
        tokio::spawn(async move { b.acquire(None).await.map(drop) })
    };
    settle().await;
    assert_eq!(b.metrics().queued, 2);
    // The slot goes to the first waiter, which is dropped before it sees it.
    drop(running);
    drop(first);
    second
        .await
        .unwrap()
        .expect("the slot went on to the next waiter");
    let m = b.metrics();
    assert_eq!((m.running, m.queued, m.admitted), (0, 0, 2));
    assert!(b.try_acquire().is_ok(), "no slot was lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slots_are_neither_exceeded_nor_lost_under_contention() {
    let b = bulkhead(&[
        ("max_concurrent", Value::Int(3)),
        ("max_queue", Value::Int(1000)),
        ("max_wait", "50ms".into()),
    ]);
    let running = Arc::new(AtomicU32::new(0));
    let peak = Arc::new(AtomicU32::new(0));
    let tasks: Vec<_> = (0..64u32)
        .map(|t| {
            let (b, running, peak) = (b.clone(), running.clone(), peak.clone());
            tokio::spawn(async move {
                for i in 0..200u32 {
                    let wait = b.acquire(None);
                    // Some waiters give up early, as a cancelled call would.
                    let permit = if (t + i) % 5 == 0 {
                        match tokio::time::timeout(Duration::from_micros(50), wait).await {
                            Ok(Ok(p)) => p,
                            _ => continue,
                        }
                    } else {
                        match wait.await {
                            Ok(p) => p,
                            Err(_) => continue,
                        }
                    };
                    let now = running.fetch_add(1, SeqCst) + 1;
                    peak.fetch_max(now, SeqCst);
                    tokio::task::yield_now().await;
                    running.fetch_sub(1, SeqCst);
                    drop(permit);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert!(peak.load(SeqCst) <= 3, "peak {}", peak.load(SeqCst));
    let m = b.metrics();
    assert_eq!((m.running, m.queued), (0, 0));
    let all: Vec<_> = (0..3).map(|_| b.try_acquire().expect("free")).collect();
    assert!(b.try_acquire().is_err(), "exactly three slots");
    drop(all);
}

#[tokio::test(start_paused = true)]
async fn a_borrowed_slot_counts_and_frees_like_a_permit() {
    let b = bulkhead(&[
        ("max_concurrent", Value::Int(1)),
        ("max_queue", Value::Int(1)),
        ("max_wait", "10s".into()),
    ]);
    let slot = b.acquire_slot(None).await.unwrap();
    assert_eq!(b.metrics().running, 1);
    assert_eq!(
        b.try_acquire().unwrap_err().reason,
        BulkheadRejection::QueueFull
    );
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move { b.acquire(None).await.map(drop) })
    };
    settle().await;
    drop(slot);
    waiter.await.unwrap().expect("the slot went to the waiter");
    let m = b.metrics();
    assert_eq!((m.running, m.queued, m.admitted), (0, 0, 2));
}
