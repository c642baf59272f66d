//! What the telemetry hooks add to one op call, in release mode: the op's span, its clock, the
//! duration histogram and counters, and the pool's acquire and release histograms.
//!
//! ```text
//! cargo bench -p sqlx-resilience-benches --bench observe
//! ```
//!
//! Three settings: nothing listening (no tracing subscriber, no metrics recorder: what a
//! service that does not observe pays), a Prometheus recorder installed, and a tracing
//! registry that records the span too.

use criterion::{Criterion, criterion_group, criterion_main};
use sqlx_resilience::telemetry::bench::Hooks;
use sqlx_resilience::{Pool, PoolConfig};

fn lazy_pool(rt: &tokio::runtime::Runtime) -> Pool {
    let _enter = rt.enter();
    // Lazy: never connects.
    Pool::new(
        "bench",
        PoolConfig::default(),
        Some(&"postgres://u:p@127.0.0.1:1/db".into()),
    )
    .unwrap()
}

fn hooks(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pool = lazy_pool(&rt);

    let quiet = Hooks::new(&pool);
    c.bench_function("op hooks, nothing listening", |b| b.iter(|| quiet.call()));

    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let with_recorder = metrics::with_local_recorder(&recorder, || Hooks::new(&pool));
    c.bench_function("op hooks, prometheus recorder", |b| {
        b.iter(|| with_recorder.call())
    });

    let subscriber = tracing_subscriber::registry();
    tracing::subscriber::with_default(subscriber, || {
        tracing::callsite::rebuild_interest_cache();
        c.bench_function(
            "op hooks, prometheus recorder and a tracing registry",
            |b| b.iter(|| with_recorder.call()),
        );
    });
}

criterion_group!(benches, hooks);
criterion_main!(benches);
