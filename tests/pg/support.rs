//! Helpers shared by the integration tests.

use std::io::Write;
use std::sync::{Arc, Mutex};

use sqlx_resilience::{Error, Runtime, RuntimeBuilder, Value};
use sqlx_resilience_testkit::{PgServer, TestDb};

/// A fresh database on the shared server.
pub(crate) async fn db() -> TestDb {
    PgServer::shared()
        .await
        .expect("shared test server")
        .create_database()
        .await
        .expect("test database")
}

/// A builder for a runtime on `db` with one pool `main` and the given settings.
pub(crate) fn builder(db: &TestDb, settings: &[(&str, Value)]) -> RuntimeBuilder {
    Runtime::builder()
        .url(db.url())
        .env_vars(Vec::<(String, String)>::new())
        .pool("main", settings)
}

/// A runtime on `db` with one pool `main`.
pub(crate) async fn runtime(db: &TestDb, settings: &[(&str, Value)]) -> Runtime {
    builder(db, settings).build().await.expect("runtime")
}

/// Runs set-up statements (`sql`, several allowed) through an op named `op`; panics on failure.
pub(crate) async fn setup(rt: &Runtime, op: &'static str, sql: &'static str) {
    rt.op(op)
        .run(|c| {
            Box::pin(async move {
                sqlx::raw_sql(sql).execute(c.as_mut()).await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .expect("set-up statements");
}

/// A single-row, single-column query through the op API.
pub(crate) async fn scalar_i64(rt: &Runtime, sql: &'static str) -> Result<i64, Error> {
    rt.op("tests::scalar")
        .read_only(true)
        .run(|conn| {
            Box::pin(async move {
                let (v,): (i64,) = sqlx::query_as(sql).fetch_one(conn.as_mut()).await?;
                Ok(v)
            })
        })
        .await
}

/// Like [`scalar_i64`], with more policies set on the op.
pub(crate) async fn scalar_i64_with(
    rt: &Runtime,
    policies: impl FnOnce(sqlx_resilience::OpBuilder<'_>) -> sqlx_resilience::OpBuilder<'_>,
    sql: &'static str,
) -> Result<i64, Error> {
    policies(rt.op("tests::scalar").read_only(true))
        .run(|conn| {
            Box::pin(async move {
                let (v,): (i64,) = sqlx::query_as(sql).fetch_one(conn.as_mut()).await?;
                Ok(v)
            })
        })
        .await
}

/// Text of one setting as a pooled connection sees it.
pub(crate) async fn show(rt: &Runtime, setting: &'static str) -> String {
    rt.op("tests::show")
        .read_only(true)
        .run(|conn| {
            Box::pin(async move {
                let (v,): (String,) = sqlx::query_as("select current_setting($1)")
                    .bind(setting)
                    .fetch_one(conn.as_mut())
                    .await?;
                Ok::<_, Error>(v)
            })
        })
        .await
        .expect("show setting")
}

/// Everything `tracing` writes while the guard lives (for this thread: use it in a
/// current-thread runtime, where spawned tasks run on the same thread).
#[derive(Clone, Default)]
pub(crate) struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub(crate) fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The password in a URL.
pub(crate) fn password_of(url: &str) -> String {
    let after = url.split("://").nth(1).expect("url");
    let userinfo = after.split('@').next().expect("userinfo");
    userinfo.split(':').nth(1).expect("password").to_owned()
}

/// `url` (through one address, `via`) with every address of `hosts` in its place, in that
/// order, and `target_session_attrs=read-write`: a multi-host URL.
pub(crate) fn read_write_hosts(
    url: &str,
    via: std::net::SocketAddr,
    hosts: &[std::net::SocketAddr],
) -> String {
    let list: Vec<String> = hosts.iter().map(ToString::to_string).collect();
    format!(
        "{}{}target_session_attrs=read-write",
        url.replace(&via.to_string(), &list.join(",")),
        if url.contains('?') { "&" } else { "?" }
    )
}

/// The counter `name`'s value per `server.port` label in a snapshot of a debugging recorder.
pub(crate) fn counters_by_port(
    snapshotter: &metrics_util::debugging::Snapshotter,
    name: &str,
) -> Vec<(String, u64)> {
    by_port(snapshotter, name, |v| match v {
        metrics_util::debugging::DebugValue::Counter(c) => Some(c),
        _ => None,
    })
}

/// The gauge `name`'s value per `server.port` label in a snapshot of a debugging recorder.
pub(crate) fn gauges_by_port(
    snapshotter: &metrics_util::debugging::Snapshotter,
    name: &str,
) -> Vec<(String, f64)> {
    by_port(snapshotter, name, |v| match v {
        metrics_util::debugging::DebugValue::Gauge(g) => Some(g.into_inner()),
        _ => None,
    })
}

/// The values of metric `name` that `value` reads, per `server.port` label.
fn by_port<T>(
    snapshotter: &metrics_util::debugging::Snapshotter,
    name: &str,
    value: impl Fn(metrics_util::debugging::DebugValue) -> Option<T>,
) -> Vec<(String, T)> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(k, _, _, _)| k.key().name() == name)
        .filter_map(|(k, _, _, v)| {
            let port = k.key().labels().find(|l| l.key() == "server.port")?;
            Some((port.value().to_owned(), value(v)?))
        })
        .collect()
}
