//! Drills: real load through the op API against a throwaway PostgreSQL with faults injected —
//! a fast restart, a kill -9, a network blackhole, added latency, a connection storm, leaked
//! connections — and the op API's overhead against raw sqlx and pgbench.
//!
//! ```sh
//! cargo run --release --example drill -- restart                # full size
//! cargo run --release --example drill -- storm --size small     # a few seconds
//! cargo run --release --example drill -- overhead
//! cargo run --release --example drill -- nemesis --seed 7 --secs 60
//! ```
//!
//! Scenarios: restart, kill9, blackhole, latency, storm, exhaust, overhead, nemesis (a seeded
//! random schedule of faults), contention (the toolkit and plain sqlx side by side), outage
//! (one line per case, ours and plain sqlx side by side), pgbouncer (many instances behind a
//! real PgBouncer in transaction mode, against the same load straight to the server), failover
//! (a multi-host pool on a Patroni cluster through a switchover and a kill -9 of the leader),
//! replica-lag (reads through streaming replicas while their replay is paused).
//! Progress goes to
//! stderr (`RUST_LOG` changes how much); the last line on stdout is the report, one JSON
//! object. Needs only the PostgreSQL server package: each drill starts a server of its own and
//! removes it afterwards. `docs/DRILLS.md` explains each scenario and lists measured figures.

use std::process::ExitCode;

use sqlx_resilience_testkit::drill::{self, Options, Scenario, Size};
use tracing_subscriber::EnvFilter;

const USAGE: &str =
    "usage: drill SCENARIO [--size small|full] [--case NAME ...] [--seed N] [--secs S]
scenarios: restart, kill9, blackhole, latency, storm, exhaust, overhead, outage, contention, nemesis, copy, pgbouncer, failover, replica-lag
--case: outage only; --seed and --secs: nemesis only";

/// The command line: a scenario, its size, for `outage` the cases to run, for `nemesis` its
/// seed and length.
struct Args {
    scenario: Scenario,
    size: Size,
    cases: Vec<String>,
    options: Options,
}

fn number(value: Option<&String>, option: &str) -> Result<u64, String> {
    value
        .ok_or_else(|| format!("{option} needs a number"))?
        .parse()
        .map_err(|_| format!("{option} needs a whole number"))
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut scenario = None;
    let mut size = Size::Full;
    let mut cases = Vec::new();
    let mut options = Options::default();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--size" => {
                let value = rest.next().ok_or("--size needs small or full")?;
                size = value.parse()?;
            }
            "--case" => cases.push(rest.next().ok_or("--case needs a case name")?.clone()),
            "--seed" => options.seed = Some(number(rest.next(), "--seed")?),
            "--secs" => options.secs = Some(number(rest.next(), "--secs")?),
            s if s.starts_with("--size=") => size = s["--size=".len()..].parse()?,
            s if s.starts_with('-') => return Err(format!("unknown option `{s}`")),
            s if scenario.is_none() => scenario = Some(s.parse()?),
            s => return Err(format!("unexpected argument `{s}`")),
        }
    }
    let scenario = scenario.ok_or("name a scenario")?;
    if !cases.is_empty() && scenario != Scenario::Outage {
        return Err("--case applies to the outage drill only".into());
    }
    if (options.seed.is_some() || options.secs.is_some()) && scenario != Scenario::Nemesis {
        return Err("--seed and --secs apply to the nemesis drill only".into());
    }
    Ok(Args {
        scenario,
        size,
        cases,
        options,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,sqlx_resilience_testkit::drill=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let Args {
        scenario,
        size,
        cases,
        options,
    } = match parse(&args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("drill: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let report = if cases.is_empty() {
        drill::run_with(scenario, size, options).await
    } else {
        drill::run_outage(size, &cases).await
    };
    match report {
        Ok(report) => {
            println!("{}", report.to_json());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("drill {scenario} failed: {e}");
            ExitCode::FAILURE
        }
    }
}
