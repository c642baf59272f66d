//! HTTP endpoints and the status page, on axum (feature `axum`).
//!
//! ```no_run
//! # async fn f(rt: sqlx_resilience_runtime::Runtime) -> std::io::Result<()> {
//! use sqlx_resilience_runtime::http::Endpoints;
//!
//! let app = axum::Router::new().nest("/resilience", Endpoints::new(&rt).router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! | path | answers | status |
//! | --- | --- | --- |
//! | `/` | the status page (HTML, refreshes itself every 5 s) | 200 |
//! | `/health` | [`HealthReport`](crate::health::HealthReport) as JSON | 200, or 503 when unhealthy |
//! | `/health/database` | each server's [`DatabaseHealth`](crate::health::DatabaseHealth) | 200, or 503 when one does not answer |
//! | `/ready` | [`Readiness`](crate::health::Readiness) | 200, or 503 when not ready |
//! | `/live` | `{"live": true}` | 200, or 503 once shut down |
//! | `/metrics` | Prometheus text (feature `prometheus`, with a handle) | 200, or 404 without an exporter |
//! | `/status` | [`StatusReport`](crate::health::StatusReport) as JSON | 200 |
//! | `/pool-config` | [`PoolConfigReport`](crate::health::PoolConfigReport) as JSON | 200 |
//! | `/pg-stats` | [`PgStats`](crate::pgstats::PgStats) as JSON | 200, or 503 when the database does not answer |
//!
//! Every response is marked `Cache-Control: no-store`.

mod page;
#[cfg(feature = "prometheus")]
mod prometheus;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

#[cfg(feature = "prometheus")]
pub use self::prometheus::{PrometheusHandle, install_prometheus};
use crate::observability::health::HealthStatus;
use crate::observability::pgstats::PgStatsOptions;
use crate::runtime::Runtime;

/// The endpoints of one runtime; [`Endpoints::router`] makes the axum router.
#[derive(Clone)]
pub struct Endpoints {
    rt: Runtime,
    #[cfg(feature = "prometheus")]
    prometheus: Option<PrometheusHandle>,
}

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoints")
            .field("rt", &self.rt)
            .finish_non_exhaustive()
    }
}

impl Endpoints {
    /// The endpoints of `rt`. `/metrics` answers 404 until an exporter is given.
    pub fn new(rt: &Runtime) -> Self {
        Endpoints {
            rt: rt.clone(),
            #[cfg(feature = "prometheus")]
            prometheus: None,
        }
    }

    /// Serves `/metrics` from this Prometheus exporter (see [`install_prometheus`]).
    #[cfg(feature = "prometheus")]
    pub fn prometheus(mut self, handle: PrometheusHandle) -> Self {
        self.prometheus = Some(handle);
        self
    }

    /// The router: mount it at the root or under a prefix with `Router::nest`. Starts the
    /// runtime's sampling task, which feeds the page's utilization chart.
    pub fn router(self) -> Router {
        self.rt.ensure_sampler();
        Router::new()
            .route("/", get(index))
            .route("/health", get(health))
            .route("/health/database", get(health_database))
            .route("/ready", get(ready))
            .route("/live", get(live))
            .route("/metrics", get(metrics))
            .route("/status", get(status))
            .route("/pool-config", get(pool_config))
            .route("/pg-stats", get(pg_stats))
            .with_state(Arc::new(self))
    }
}

type S = State<Arc<Endpoints>>;

fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn json<T: Serialize>(code: StatusCode, body: &T) -> Response {
    no_store((code, axum::Json(body)).into_response())
}

fn code(ok: bool) -> StatusCode {
    if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn index(State(e): S) -> Response {
    let status = e.rt.status().await;
    no_store(Html(page::render(&status, &e.rt)).into_response())
}

async fn health(State(e): S) -> Response {
    let report = e.rt.health().await;
    json(code(report.status != HealthStatus::Unhealthy), &report)
}

#[derive(Serialize)]
struct Databases {
    reachable: bool,
    databases: Vec<crate::observability::health::DatabaseHealth>,
}

async fn health_database(State(e): S) -> Response {
    let databases = e.rt.probe_databases().await;
    let reachable = databases.iter().all(|d| d.reachable);
    json(
        code(reachable),
        &Databases {
            reachable,
            databases,
        },
    )
}

async fn ready(State(e): S) -> Response {
    let r = e.rt.ready().await;
    json(code(r.ready), &r)
}

#[derive(Serialize)]
struct Live {
    live: bool,
}

async fn live(State(e): S) -> Response {
    let live = e.rt.live();
    json(code(live), &Live { live })
}

async fn metrics(State(e): S) -> Response {
    #[cfg(feature = "prometheus")]
    if let Some(handle) = &e.prometheus {
        e.rt.publish_metrics();
        let mut r = handle.render().into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        return no_store(r);
    }
    let _ = &e;
    no_store(
        (
            StatusCode::NOT_FOUND,
            "no metrics exporter: build with the `prometheus` feature and pass \
             install_prometheus()'s handle to Endpoints::prometheus\n",
        )
            .into_response(),
    )
}

async fn status(State(e): S) -> Response {
    json(StatusCode::OK, &e.rt.status().await)
}

async fn pool_config(State(e): S) -> Response {
    json(StatusCode::OK, &e.rt.pool_config_report())
}

#[derive(Serialize)]
struct Failure {
    error: String,
}

async fn pg_stats(State(e): S) -> Response {
    match e.rt.pg_stats(&PgStatsOptions::default()).await {
        Ok(stats) => json(StatusCode::OK, &stats),
        Err(err) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            &Failure {
                error: err.to_string(),
            },
        ),
    }
}
