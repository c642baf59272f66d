//! Drills: real load through the op API against a throwaway PostgreSQL with faults injected —
//! a fast restart, a kill -9, a network blackhole, added latency, a connection storm, leaked
//! connections — and the op API's overhead against raw sqlx and pgbench.
//!
//! ```sh
//! cargo run --release --example drill -- restart                # full size
//! cargo run --release --example drill -- storm --size small     # a few seconds
//! cargo run --release --example drill -- overhead
//! ```
//!
//! Scenarios: restart, kill9, blackhole, latency, storm, exhaust, overhead. Progress goes to
//! stderr (`RUST_LOG` changes how much); the last line on stdout is the report, one JSON
//! object. Needs only the PostgreSQL server package: each drill starts a server of its own and
//! removes it afterwards. `docs/DRILLS.md` explains each scenario and lists measured figures.

use std::process::ExitCode;

use sqlx_resilience_testkit::drill::{self, Scenario, Size};
use tracing_subscriber::EnvFilter;

const USAGE: &str = "usage: drill SCENARIO [--size small|full]
scenarios: restart, kill9, blackhole, latency, storm, exhaust, overhead";

fn parse(args: &[String]) -> Result<(Scenario, Size), String> {
    let mut scenario = None;
    let mut size = Size::Full;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--size" => {
                let value = rest.next().ok_or("--size needs small or full")?;
                size = value.parse()?;
            }
            s if s.starts_with("--size=") => size = s["--size=".len()..].parse()?,
            s if s.starts_with('-') => return Err(format!("unknown option `{s}`")),
            s if scenario.is_none() => scenario = Some(s.parse()?),
            s => return Err(format!("unexpected argument `{s}`")),
        }
    }
    Ok((scenario.ok_or("name a scenario")?, size))
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
    let (scenario, size) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("drill: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match drill::run(scenario, size).await {
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
