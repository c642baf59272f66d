//! `nemesis`: a seeded random schedule of faults under the mixed load, for a set time.
//!
//! The schedule is drawn from the seed before the load starts, so the same seed gives the same
//! schedule (the faults' effects still depend on timing). Faults, one at a time with a pause
//! of 0.5 to 2 s between them: a fast restart, an immediate restart (no checkpoint, crash
//! recovery), a kill -9 and start, a network blackhole, 200 to 500 ms of added latency each way,
//! a reset of every open connection, every backend terminated, and new connections refused by
//! the database; the timed ones last 0.3 to 2 s. The last 2 s are quiet, so the load ends on a
//! healthy server. Everything goes through the test kit's fault proxy.
//!
//! Goals: 0 lost, 0 duplicated, 0 torn writes; every write whose outcome the runtime could
//! not know reported as `UnknownOutcome` (`unreported_unknown`: inserts and transactions
//! reported failed otherwise, yet applied); no op back later than its deadline + 10%
//! (`late_ops`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value as Json;
use tokio::time::Instant;

use super::load::{Load, Outcome, Plan, XorShift, check_writes, report};
use super::load_report::LoadReport;
use super::setup::{
    BreakerOpens, Limits, Options, Size, close, runtime, server_and_database, workload,
};
use crate::{Direction, FaultProxy, PgServer, RestartMode, Result, TestDb};

/// One fault of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    RestartFast,
    RestartImmediate,
    Kill9,
    Blackhole(Duration),
    Latency { each_way: Duration, lasts: Duration },
    Reset,
    TerminateBackends,
    RefuseConnections(Duration),
}

impl Fault {
    fn describe(self) -> String {
        let ms = |d: Duration| d.as_millis();
        match self {
            Fault::RestartFast => "restart fast".into(),
            Fault::RestartImmediate => "restart immediate".into(),
            Fault::Kill9 => "kill -9".into(),
            Fault::Blackhole(d) => format!("blackhole {} ms", ms(d)),
            Fault::Latency { each_way, lasts } => {
                format!("latency {} ms each way for {} ms", ms(each_way), ms(lasts))
            }
            Fault::Reset => "reset connections".into(),
            Fault::TerminateBackends => "terminate backends".into(),
            Fault::RefuseConnections(d) => format!("refuse connections {} ms", ms(d)),
        }
    }
}

/// The schedule for `seed` over `length`: when each fault starts, from the load's start.
pub(crate) fn schedule(seed: u64, length: Duration) -> Vec<(Duration, Fault)> {
    let mut rng = XorShift::new(seed);
    let mut between = |lo: u64, hi: u64| Duration::from_millis(lo + rng.next() % (hi - lo + 1));
    let quiet_end = length.saturating_sub(Duration::from_secs(2));
    let mut at = Duration::from_secs(1);
    let mut out = Vec::new();
    while at < quiet_end {
        let lasts = between(300, 2000);
        let fault = match between(0, 7).as_millis() {
            0 => Fault::RestartFast,
            1 => Fault::RestartImmediate,
            2 => Fault::Kill9,
            3 => Fault::Blackhole(lasts),
            4 => Fault::Latency {
                each_way: between(200, 500),
                lasts,
            },
            5 => Fault::Reset,
            6 => Fault::TerminateBackends,
            _ => Fault::RefuseConnections(lasts),
        };
        out.push((at, fault));
        at += between(500, 2000)
            + match fault {
                Fault::Blackhole(d)
                | Fault::Latency { lasts: d, .. }
                | Fault::RefuseConnections(d) => d,
                // A restart takes its own time; the pause starts when it returns.
                _ => Duration::ZERO,
            };
    }
    out
}

async fn inject(fault: Fault, server: &PgServer, db: &TestDb, proxy: &FaultProxy) -> Result<()> {
    match fault {
        Fault::RestartFast => server.restart(RestartMode::Fast).await,
        Fault::RestartImmediate => server.restart(RestartMode::Immediate).await,
        Fault::Kill9 => server.kill9_and_start().await,
        Fault::Blackhole(d) => {
            proxy.blackhole();
            tokio::time::sleep(d).await;
            proxy.heal().await
        }
        Fault::Latency { each_way, lasts } => {
            proxy.set_latency(Direction::Both, each_way);
            tokio::time::sleep(lasts).await;
            proxy.heal().await
        }
        Fault::Reset => {
            proxy.reset().await;
            Ok(())
        }
        Fault::TerminateBackends => server.terminate_backends(db.name()).await.map(drop),
        Fault::RefuseConnections(d) => {
            server.refuse_connections(db.name()).await?;
            tokio::time::sleep(d).await;
            server.allow_connections(db.name()).await
        }
    }
}

/// Runs the load for `options.secs` (8 s small, 60 s full) under the schedule of
/// `options.seed` (1 by default), and reports.
pub(super) async fn run(size: Size, options: Options) -> Result<LoadReport> {
    let seed = options.seed.unwrap_or(1);
    let length = Duration::from_secs(options.secs.unwrap_or(size.pick(8, 60)));
    let plan_of_faults = schedule(seed, length);
    for (at, fault) in &plan_of_faults {
        tracing::info!(at_ms = at.as_millis() as u64, fault = %fault.describe(), "scheduled");
    }

    let (server, db) = server_and_database().await?;
    let proxy = FaultProxy::start(server.tcp_addr()).await?;
    let workers = size.pick(4u32, 16);
    let rt = runtime(
        &db.url_via(proxy.addr()),
        &[
            ("max", workers.into()),
            ("min", workers.into()),
            ("acquire_timeout", "2s".into()),
            ("connect_timeout", "2s".into()),
        ],
    )
    .await?;
    let limits = Limits {
        timeout: Duration::from_secs(1),
        deadline: Duration::from_secs(5),
    };
    let workload = workload(&rt, limits, options)?;
    let opens = BreakerOpens::watch(&rt)?;
    let plan = Plan {
        workers: workers as usize,
        ops_per_worker: u64::MAX,
        duration: length,
        pace: Some(size.pick(Duration::from_millis(10), Duration::from_millis(5))),
    };
    let (load, started) = Load::start(&workload, plan);
    let mut injected = Vec::new();
    for (at, fault) in &plan_of_faults {
        tokio::time::sleep_until(started + *at).await;
        let began = Instant::now();
        tracing::info!(fault = %fault.describe(), "injecting");
        inject(*fault, &server, &db, &proxy).await?;
        injected.push(Json::from(format!(
            "{:.1}s {} ({} ms)",
            at.as_secs_f64(),
            fault.describe(),
            began.elapsed().as_millis()
        )));
    }
    let samples = load.finish().await?;
    close(&rt).await;
    let table = check_writes(db.url(), &samples).await?;
    let late_limit = limits.deadline.mul_f64(1.1);
    let late = samples.iter().filter(|s| s.took() > late_limit).count();
    let extra = BTreeMap::from([
        ("seed", Json::from(seed)),
        ("secs", Json::from(length.as_secs())),
        ("faults", Json::from(injected.len())),
        ("schedule", Json::from(injected)),
        (
            "unreported_unknown",
            Json::from(table.applied_but_reported_failed),
        ),
        ("late_ops", Json::from(late)),
    ]);
    drop(proxy);
    drop(server);
    Ok(report(Outcome {
        scenario: "nemesis",
        samples: &samples,
        ready: None,
        deadline: limits.deadline,
        table,
        breaker_opens: opens.count(),
        extra,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_schedule_and_another_seed_another() {
        let length = Duration::from_secs(60);
        let a = schedule(7, length);
        assert_eq!(a, schedule(7, length));
        assert_ne!(a, schedule(8, length));
        assert!(a.len() >= 10, "{a:?}");
        assert!(
            a.iter()
                .all(|(at, _)| *at < length - Duration::from_secs(2))
        );
        // Every kind of fault comes up in a long enough schedule.
        let kinds: std::collections::BTreeSet<String> = schedule(7, Duration::from_secs(600))
            .iter()
            .map(|(_, f)| f.describe().split(' ').next().unwrap_or("").to_owned())
            .collect();
        assert_eq!(kinds.len(), 7, "{kinds:?}");
    }
}
