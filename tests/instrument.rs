//! `#[tracing::instrument]` together with `#[db_op]`, as docs/WEB.md describes it: below
//! `#[db_op]` its span wraps the whole call, `db.op` and every attempt inside it; above, it
//! wraps each attempt inside `db.op`. Spans are recorded by a subscriber layer, with their
//! parent and fields, against real PostgreSQL; the retry comes from the test kit's server
//! controls ending the op's connection during its first attempt.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sqlx::PgConnection;
use sqlx_resilience::{DbError, HasRuntime, Runtime, db_op};
use sqlx_resilience_testkit::{PgServer, TestDb};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

sqlx_resilience::policies! {
    pool main { max = 2 }
    retry transient { attempts = 3, base = "10ms", max_delay = "100ms" }
}

/// A span as it was opened, and the fields recorded on it later.
#[derive(Debug, Clone)]
struct Span {
    name: &'static str,
    parent: Option<usize>,
    fields: BTreeMap<String, String>,
}

/// Records every span: its index in the list is its identity (tracing reuses ids).
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<Span>>>);

struct Index(usize);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let span = ctx.span(id).expect("a new span is in the registry");
        let parent = span
            .parent()
            .and_then(|p| p.extensions().get::<Index>().map(|i| i.0));
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let mut spans = self.0.lock().unwrap();
        spans.push(Span {
            name: attrs.metadata().name(),
            parent,
            fields,
        });
        span.extensions_mut().insert(Index(spans.len() - 1));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let span = ctx.span(id).expect("a recorded span is in the registry");
        let Some(index) = span.extensions().get::<Index>().map(|i| i.0) else {
            return;
        };
        values.record(&mut Fields(&mut self.0.lock().unwrap()[index].fields));
    }
}

impl Spans {
    fn named(&self, name: &str) -> Vec<(usize, Span)> {
        let spans = self.0.lock().unwrap();
        spans
            .iter()
            .enumerate()
            .filter(|(_, s)| s.name == name)
            .map(|(i, s)| (i, s.clone()))
            .collect()
    }
}

/// A repository whose ops end their own connection once, during the first attempt, with the
/// test kit's server controls: the retry policy runs them again.
#[derive(HasRuntime)]
struct Harvests {
    rt: Runtime,
    server: &'static PgServer,
    database: String,
    end_connection_once: AtomicBool,
}

impl Harvests {
    async fn fault(&self) -> Result<(), DbError> {
        if self.end_connection_once.swap(false, Ordering::SeqCst) {
            self.server
                .terminate_backends(&self.database)
                .await
                .expect("the test kit ends the op's connection");
        }
        Ok(())
    }

    /// `#[tracing::instrument]` below `#[db_op]`: it sees the function `#[db_op]` generated,
    /// whose parameters are the caller's (no connection).
    #[db_op(pool = "main", retry = "transient", read_only)]
    #[tracing::instrument(skip(self))]
    async fn below(&self, conn: &mut PgConnection, estate: i64) -> Result<i64, DbError> {
        self.fault().await?;
        Ok(sqlx::query_scalar("select $1::int8 * 2")
            .bind(estate)
            .fetch_one(conn)
            .await?)
    }

    /// `#[tracing::instrument]` above `#[db_op]`: it sees the function as written, connection
    /// included, and its span is opened by each attempt.
    #[tracing::instrument(skip(self, conn))]
    #[db_op(pool = "main", retry = "transient", read_only)]
    async fn above(&self, conn: &mut PgConnection, estate: i64) -> Result<i64, DbError> {
        self.fault().await?;
        Ok(sqlx::query_scalar("select $1::int8 * 2")
            .bind(estate)
            .fetch_one(conn)
            .await?)
    }
}

async fn repo() -> (TestDb, Harvests) {
    let server = PgServer::shared().await.expect("shared test server");
    let db = server.create_database().await.expect("test database");
    let rt = Runtime::builder()
        .url(db.url())
        .build()
        .await
        .expect("runtime");
    let repo = Harvests {
        rt,
        server,
        database: db.name().to_owned(),
        end_connection_once: AtomicBool::new(true),
    };
    (db, repo)
}

/// The fields every `db.op` span carries, as docs/OBSERVABILITY.md lists them.
fn assert_op_span(op: &Span, name: &str, db: &TestDb) {
    let field = |key: &str| op.fields.get(key).map(String::as_str);
    assert_eq!(field("db.operation.name"), Some(name), "{op:?}");
    assert_eq!(field("otel.name"), Some(name), "{op:?}");
    assert_eq!(field("db.system.name"), Some("postgresql"), "{op:?}");
    assert_eq!(field("db.namespace"), Some(db.name()), "{op:?}");
    assert_eq!(
        field("db.client.connection.pool.name"),
        Some("main"),
        "{op:?}"
    );
    assert_eq!(field("attempts"), Some("2"), "{op:?}");
    assert_eq!(field("outcome"), Some("ok"), "{op:?}");
    assert!(field("server.address").is_some(), "{op:?}");
    assert!(field("server.port").is_some(), "{op:?}");
}

#[tokio::test]
async fn instrument_below_db_op_wraps_the_whole_call() {
    let spans = Spans::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
    let (db, repo) = repo().await;

    assert_eq!(repo.below(21).await.unwrap(), 42);

    let outer = spans.named("below");
    assert_eq!(outer.len(), 1, "one span for the call: {outer:?}");
    let (outer_index, outer) = &outer[0];
    assert_eq!(outer.fields.get("estate").map(String::as_str), Some("21"));
    assert!(!outer.fields.contains_key("conn"), "{outer:?}");

    let ops = spans.named("db.op");
    assert_eq!(ops.len(), 1, "{ops:?}");
    let (_, op) = &ops[0];
    assert_eq!(
        op.parent,
        Some(*outer_index),
        "db.op is inside the call's span"
    );
    assert_op_span(op, "instrument::below", &db);
}

#[tokio::test]
async fn instrument_above_db_op_wraps_each_attempt() {
    let spans = Spans::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
    let (db, repo) = repo().await;

    assert_eq!(repo.above(21).await.unwrap(), 42);

    let ops = spans.named("db.op");
    assert_eq!(ops.len(), 1, "{ops:?}");
    let (op_index, op) = &ops[0];
    assert_op_span(op, "instrument::above", &db);

    let attempts = spans.named("above");
    assert_eq!(attempts.len(), 2, "one span per attempt: {attempts:?}");
    for (_, attempt) in &attempts {
        assert_eq!(
            attempt.parent,
            Some(*op_index),
            "each attempt is inside db.op"
        );
        assert_eq!(attempt.fields.get("estate").map(String::as_str), Some("21"));
    }
}
