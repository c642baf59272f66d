//! Telemetry against real PostgreSQL: metric names and values after known traffic (through
//! metrics-util's debugging recorder), and the op span's OpenTelemetry fields and events
//! (through a capturing tracing layer).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::{CompositeKey, MetricKind};
use sqlx_resilience::telemetry::names;
use sqlx_resilience::{Error, PolicyKind};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

use crate::support::{self, scalar_i64};

type Snapshot = Vec<(CompositeKey, DebugValue)>;

fn labels(k: &CompositeKey) -> BTreeMap<String, String> {
    k.key()
        .labels()
        .map(|l| (l.key().to_owned(), l.value().to_owned()))
        .collect()
}

/// The value of the one metric of `kind` named `name` whose labels include `want`.
fn find<'a>(
    snap: &'a Snapshot,
    kind: MetricKind,
    name: &str,
    want: &[(&str, &str)],
) -> &'a DebugValue {
    let hits: Vec<&(CompositeKey, DebugValue)> = snap
        .iter()
        .filter(|(k, _)| k.kind() == kind && k.key().name() == name)
        .filter(|(k, _)| {
            let l = labels(k);
            want.iter()
                .all(|(lk, lv)| l.get(*lk).map(String::as_str) == Some(*lv))
        })
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "{name} {want:?}: {:?}",
        snap.iter()
            .filter(|(k, _)| k.key().name() == name)
            .map(|(k, v)| (labels(k), v))
            .collect::<Vec<_>>()
    );
    &hits[0].1
}

fn histogram_len(v: &DebugValue) -> usize {
    match v {
        DebugValue::Histogram(values) => values.len(),
        other => panic!("not a histogram: {other:?}"),
    }
}

fn gauge(v: &DebugValue) -> f64 {
    match v {
        DebugValue::Gauge(g) => g.into_inner(),
        other => panic!("not a gauge: {other:?}"),
    }
}

fn counter(v: &DebugValue) -> u64 {
    match v {
        DebugValue::Counter(c) => *c,
        other => panic!("not a counter: {other:?}"),
    }
}

#[tokio::test]
async fn metrics_carry_opentelemetry_names_and_counts_after_known_traffic() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let db = support::db().await;
    let rt = support::builder(&db, &[("max", 4u32.into()), ("min", 1u32.into())])
        .declare(PolicyKind::Breaker, "guard", &[])
        .declare(
            PolicyKind::Limiter,
            "tight",
            &[("per_second", 1u32.into()), ("burst", 1u32.into())],
        )
        .build()
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(scalar_i64(&rt, "select 1::int8").await.unwrap(), 1);
    }
    let err = rt
        .op("tests::divide")
        .breaker("guard")
        .run(|conn| {
            Box::pin(async move {
                sqlx::query("select 1 / 0").execute(conn.as_mut()).await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .unwrap_err();
    let kind = err.kind().as_str();
    let limited = |rt: &sqlx_resilience::Runtime| {
        let rt = rt.clone();
        async move {
            rt.op("tests::limited")
                .limiter("tight")
                .run(|conn| {
                    Box::pin(async move {
                        sqlx::query("select 1").execute(conn.as_mut()).await?;
                        Ok::<_, Error>(())
                    })
                })
                .await
        }
    };
    limited(&rt).await.unwrap();
    assert!(
        limited(&rt).await.is_err(),
        "the second call within a second is rejected"
    );
    // sqlx gives connections back to its idle queue on a task of its own: let it.
    for _ in 0..100 {
        if rt.pool("main").unwrap().stats().in_use == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let held = rt.pool("main").unwrap().acquire().await.unwrap();
    rt.publish_metrics();
    drop(held);

    let snap: Snapshot = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(k, _, _, v)| (k, v))
        .collect();
    let d = names::OPERATION_DURATION;
    assert_eq!(
        histogram_len(find(
            &snap,
            MetricKind::Histogram,
            d,
            &[("op", "tests::scalar"), ("pool", "main"), ("outcome", "ok")]
        )),
        3
    );
    assert_eq!(
        histogram_len(find(
            &snap,
            MetricKind::Histogram,
            d,
            &[("op", "tests::divide"), ("outcome", kind)]
        )),
        1
    );
    assert_eq!(
        histogram_len(find(
            &snap,
            MetricKind::Histogram,
            d,
            &[("op", "tests::limited"), ("outcome", "rejected")]
        )),
        1
    );
    // Five ops acquired a connection (the rejected one never did), plus the direct acquire.
    let waits = histogram_len(find(
        &snap,
        MetricKind::Histogram,
        names::CONNECTION_WAIT_TIME,
        &[("pool", "main")],
    ));
    assert_eq!(waits, 6);
    let uses = histogram_len(find(
        &snap,
        MetricKind::Histogram,
        names::CONNECTION_USE_TIME,
        &[("pool", "main")],
    ));
    assert_eq!(
        uses, 6,
        "every connection was given back before the snapshot"
    );
    let creates = histogram_len(find(
        &snap,
        MetricKind::Histogram,
        names::CONNECTION_CREATE_TIME,
        &[("pool", "main")],
    ));
    assert!((1..=waits).contains(&creates), "{creates}");

    let used = gauge(find(
        &snap,
        MetricKind::Gauge,
        names::CONNECTION_COUNT,
        &[("pool", "main"), ("state", "used")],
    ));
    let idle = gauge(find(
        &snap,
        MetricKind::Gauge,
        names::CONNECTION_COUNT,
        &[("pool", "main"), ("state", "idle")],
    ));
    assert_eq!(used, 1.0, "the held connection");
    assert!(idle >= 0.0 && used + idle <= 4.0);
    assert_eq!(
        gauge(find(
            &snap,
            MetricKind::Gauge,
            names::CONNECTION_MAX,
            &[("pool", "main")]
        )),
        4.0
    );
    assert_eq!(
        gauge(find(
            &snap,
            MetricKind::Gauge,
            names::CONNECTION_IDLE_MIN,
            &[("pool", "main")]
        )),
        1.0
    );
    assert_eq!(
        gauge(find(
            &snap,
            MetricKind::Gauge,
            names::CONNECTION_PENDING_REQUESTS,
            &[("pool", "main")]
        )),
        0.0
    );
    assert_eq!(
        counter(find(
            &snap,
            MetricKind::Counter,
            names::CONNECTION_TIMEOUTS,
            &[("pool", "main")]
        )),
        0
    );
    assert_eq!(
        gauge(find(
            &snap,
            MetricKind::Gauge,
            names::BREAKER_STATE,
            &[("breaker", "guard")]
        )),
        0.0
    );
    assert_eq!(
        counter(find(
            &snap,
            MetricKind::Counter,
            names::BREAKER_REJECTIONS,
            &[("breaker", "guard")]
        )),
        0
    );
    assert_eq!(
        counter(find(
            &snap,
            MetricKind::Counter,
            names::LIMITER_REJECTIONS,
            &[("limiter", "tight")]
        )),
        1
    );

    // Labels are bounded: no SQL text anywhere.
    for (k, _) in &snap {
        for (_, v) in labels(k) {
            assert!(!v.contains("select"), "SQL in a label: {v}");
        }
    }

    // The runtime's own figures agree.
    let ops = rt.op_stats();
    let scalar = ops.iter().find(|o| o.op == "tests::scalar").unwrap();
    assert_eq!((scalar.calls, scalar.ok, scalar.failed), (3, 3, 0));
    let divide = ops.iter().find(|o| o.op == "tests::divide").unwrap();
    assert_eq!(divide.failures, vec![(kind.to_owned(), 1)]);
    assert!(divide.last_failure.is_some());
}

/// One span or event as a layer saw it.
#[derive(Debug, Clone, Default)]
struct Seen {
    name: String,
    level: String,
    fields: BTreeMap<String, String>,
    /// For events: the name of the span they happened in.
    parent: Option<String>,
}

#[derive(Clone, Default)]
struct Capture {
    spans: Arc<Mutex<BTreeMap<u64, Seen>>>,
    events: Arc<Mutex<Vec<Seen>>>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut seen = Seen {
            name: attrs.metadata().name().to_owned(),
            level: attrs.metadata().level().to_string(),
            ..Seen::default()
        };
        attrs.record(&mut Fields(&mut seen.fields));
        self.spans.lock().unwrap().insert(id.into_u64(), seen);
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(seen) = self.spans.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut seen.fields));
        }
    }
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut seen = Seen {
            name: event.metadata().name().to_owned(),
            level: event.metadata().level().to_string(),
            parent: ctx.event_span(event).map(|s| s.name().to_owned()),
            ..Seen::default()
        };
        event.record(&mut Fields(&mut seen.fields));
        self.events.lock().unwrap().push(seen);
    }
}

impl Capture {
    fn op_spans(&self, op: &str) -> Vec<Seen> {
        self.spans
            .lock()
            .unwrap()
            .values()
            .filter(|s| {
                s.name == "db.op"
                    && s.fields.get("db.operation.name").map(String::as_str) == Some(op)
            })
            .cloned()
            .collect()
    }
    fn everything(&self) -> String {
        format!(
            "{:?}{:?}",
            self.spans.lock().unwrap(),
            self.events.lock().unwrap()
        )
    }
}

#[tokio::test]
async fn each_op_has_one_span_with_opentelemetry_attributes_and_events_for_attempts() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    // With a single registered dispatcher, tracing-core works out a callsite's interest from
    // the default of whichever thread hits the callsite first: another test's thread, with no
    // subscriber, would mark the op span "never". A second live dispatcher makes it ask every
    // registered dispatcher, this test's included.
    let _second = tracing::Dispatch::new(tracing_subscriber::registry());
    tracing::callsite::rebuild_interest_cache();

    let db = support::db().await;
    let rt = support::builder(&db, &[])
        .declare(
            PolicyKind::Retry,
            "twice",
            &[("attempts", 2u32.into()), ("base", "10ms".into())],
        )
        .build()
        .await
        .unwrap();
    sqlx::query("create table accounts (email text primary key)")
        .execute(rt.pool("main").unwrap().sqlx())
        .await
        .unwrap();

    assert_eq!(scalar_i64(&rt, "select 42::int8").await.unwrap(), 42);
    let spans = capture.op_spans("tests::scalar");
    assert_eq!(
        spans.len(),
        1,
        "one span per op call: {}",
        capture.everything()
    );
    let f = &spans[0].fields;
    let url: sqlx::postgres::PgConnectOptions = db.url().parse().unwrap();
    assert_eq!(spans[0].level, "INFO");
    assert_eq!(f["db.system.name"], "postgresql");
    assert_eq!(f["db.operation.name"], "tests::scalar");
    assert_eq!(f["otel.kind"], "client");
    assert_eq!(f["db.namespace"], db.name());
    assert_eq!(f["server.address"], url.get_host());
    assert_eq!(f["server.port"], url.get_port().to_string());
    assert_eq!(f["db.client.connection.pool.name"], "main");
    assert_eq!(f["outcome"], "ok");
    assert_eq!(f["attempts"], "1");
    assert!(!f.contains_key("error.type"));

    // A constraint violation with a secret in its parameters.
    for _ in 0..2 {
        let _ = rt
            .op("tests::insert")
            .run(|conn| {
                Box::pin(async move {
                    sqlx::query("insert into accounts values ($1)")
                        .bind("secret-value-7f3a@example.org")
                        .execute(conn.as_mut())
                        .await?;
                    Ok::<_, Error>(())
                })
            })
            .await;
    }
    let spans = capture.op_spans("tests::insert");
    assert_eq!(spans.len(), 2);
    let f = &spans[1].fields;
    assert_eq!(f["outcome"], "constraint");
    assert_eq!(f["error.type"], "constraint");
    assert_eq!(f["db.response.status_code"], "23505");
    let failed: Vec<Seen> = capture
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| {
            e.fields
                .get("message")
                .is_some_and(|m| m.starts_with("attempt failed"))
        })
        .cloned()
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].parent.as_deref(), Some("db.op"));
    assert_eq!(failed[0].fields["error.type"], "constraint");
    assert_eq!(failed[0].fields["db.response.status_code"], "23505");

    // A connection lost on a read-only op: retried once, with the delay in an event.
    let _ = rt
        .op("tests::lost")
        .read_only(true)
        .retry("twice")
        .run(|conn| {
            Box::pin(async move {
                sqlx::query("select pg_terminate_backend(pg_backend_pid())")
                    .execute(conn.as_mut())
                    .await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .unwrap_err();
    let span = &capture.op_spans("tests::lost")[0];
    let attempts: u32 = span.fields["attempts"].parse().unwrap();
    assert!(attempts >= 2, "retried: {attempts}");
    // pg_terminate_backend ends the session with 57P01: the server's side of a lost connection.
    assert_eq!(span.fields["outcome"], "server_shutdown");
    let events = capture.events.lock().unwrap().clone();
    let retry = events
        .iter()
        .find(|e| e.fields.get("message").map(String::as_str) == Some("attempt failed; retrying"))
        .expect("a retry event");
    assert_eq!(retry.parent.as_deref(), Some("db.op"));
    assert_eq!(retry.fields["kind"], "server_shutdown");
    assert!(retry.fields.contains_key("delay_ms"));

    // A slow op warns once, inside its span.
    rt.op("tests::slow")
        .read_only(true)
        .slow(Duration::from_millis(5))
        .run(|conn| {
            Box::pin(async move {
                sqlx::query("select pg_sleep(0.05)")
                    .execute(conn.as_mut())
                    .await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .unwrap();
    let events = capture.events.lock().unwrap().clone();
    let slow: Vec<&Seen> = events
        .iter()
        .filter(|e| {
            e.fields
                .get("message")
                .is_some_and(|m| m.starts_with("slow op"))
        })
        .collect();
    assert_eq!(slow.len(), 1);
    assert_eq!(slow[0].level, "WARN");
    assert_eq!(slow[0].parent.as_deref(), Some("db.op"));

    assert!(
        !capture.everything().contains("secret-value-7f3a"),
        "a bound parameter reached tracing"
    );
}
