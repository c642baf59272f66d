//! `policies!` and `#[db_op]` against the runtime: every setting `policies!` accepts is one the
//! runtime's configuration accepts (and every runtime key can be written), the seed systems'
//! declarations resolve, and every annotated function is registered with its spec.

use std::collections::BTreeSet;
use std::time::Duration;

use sqlx::PgConnection;
use sqlx_resilience::config::Section;
use sqlx_resilience::{
    DbError, HasRuntime, Isolation, OpSpec, PolicyKind, PolicySet, Runtime, Tx, db_op,
};

mod everything {
    sqlx_resilience::policies! {
        pool main {
            url = "postgres://app@localhost/app", max = 50, min = 5, acquire_timeout = "2s",
            idle_timeout = "10m", max_lifetime = "30m", connect_timeout = "5s", startup = "lazy",
            startup_timeout = "30s", validation = "idle", validation_window = "1s",
            leak_threshold = "30s", statement_timeout = "10s", lock_timeout = "2s",
            idle_in_transaction_session_timeout = "1m", application_name = "harvest",
            search_path = "app, public", client_connection_check_interval = "5s",
            outage_wait = "3s", outage_waiters = 200, probe_timeout = "1s", pooler = "none",
            host_breaker_failures = 3, host_breaker_open_max = "45s",
            password_file = "/run/secrets/db-password",
            background_capacity = 100, background_when_full = "drop_oldest",
            background_workers = 4,
            replicas = "postgres://app@replica-1/app, postgres://app@replica-2/app",
            replica_max = 5, replicas_refresh = "10s", max_lag = "2s", read_your_writes = "wait",
            read_your_writes_window = "3s",
        }
        breaker windowed {
            failures = 5, within = "1m", consecutive_failures = 3, failure_rate = 50,
            slow_rate = 75.5, slow_call = "2s", window = "1m", minimum_calls = 10,
            open_for = "5s", open_for_max = "5m", open_backoff = 2.0, half_open = 2,
            mode = "normal",
        }
        breaker counted { failure_rate = 50, window_calls = 100 }
        retry r {
            attempts = 3, base = "10ms", factor = 2, max_delay = "1s", max_elapsed = "10s",
            jitter = "full", budget_percent = 20, budget_min_per_second = 10,
            budget_window = "10s",
            on failover { attempts = 2, base = "100ms", factor = 1.5, max_delay = "3s" },
        }
        limiter l { per_second = 0.5, burst = 1, wait = true, max_wait = "1s", per_key = true, max_keys = 1000 }
        bulkhead h { max_concurrent = 10, max_queue = 0, max_wait = "100ms" }
    }
}

mod seeds {
    pub(crate) mod seed_000 {
        sqlx_resilience::policies! {
            pool http { max = 150 }
            pool ws { max = 30 }
            pool background { max = 20 }
            breaker db { consecutive_failures = 5 }
        }
    }

    pub(crate) mod seed_003 {
        sqlx_resilience::policies! {
            breaker primary { consecutive_failures = 10, open_for = "60s" }
        }
    }

    pub(crate) mod seed_004 {
        sqlx_resilience::policies! {
            breaker harvest_stats { failures = 5, within = "60s", open_for = "30s", half_open = 3 }
            retry harvest {
                on connection_lost { attempts = 5, base = "500ms", factor = 1.5 },
                on backpressure { attempts = 10, base = "2s", factor = 2 },
                on contention { attempts = 3, base = "1s", factor = 2.0 },
                on statement_timeout { attempts = 1 },
            }
        }
    }
}

fn resolve(set: PolicySet) -> sqlx_resilience::RuntimeConfig {
    Runtime::builder()
        .url("postgres://app@localhost/app")
        .env_vars(Vec::<(String, String)>::new())
        .policies(set)
        .resolve()
        .unwrap_or_else(|e| panic!("the runtime rejects what policies! accepted: {e}"))
}

#[test]
fn every_setting_policies_accepts_the_runtime_accepts() {
    let config = resolve(everything::policies::declared());
    let main = &config.pools["main"];
    assert_eq!((main.max, main.min), (50, 5));
    assert_eq!(main.acquire_timeout, Duration::from_secs(2));
    assert_eq!(main.probe_timeout, Duration::from_secs(1));
    assert_eq!(main.host_breaker_failures, 3);
    assert_eq!(main.host_breaker_open_max, Duration::from_secs(45));
    assert!(config.breakers.contains_key("windowed") && config.breakers.contains_key("counted"));
    assert!(config.retries.contains_key("r"));
    assert!(config.limiters.contains_key("l"));
    assert!(config.bulkheads.contains_key("h"));
}

/// The keys written above are every key of the schema that both `policies!` and the runtime
/// read (`on.failover.base` standing for `on.<kind>.base`), so every key goes the whole way:
/// literal, `policies::declared()`, the runtime's parser, its rules between keys. A key added
/// to the schema fails this test until it is written above.
#[test]
fn policies_covers_every_schema_key() {
    let declared = everything::policies::declared();
    let written = |kind: PolicyKind| -> BTreeSet<String> {
        declared
            .iter()
            .filter(|d| d.kind == kind)
            .flat_map(|d| d.settings.iter().map(|(k, _)| generic_key(k)))
            .collect()
    };
    fn schema_keys<S: Section>() -> BTreeSet<String> {
        S::SCHEMA.all_keys().into_iter().map(|(k, _)| k).collect()
    }
    use sqlx_resilience::{breaker, bulkhead, limiter, pool, retry};
    assert_eq!(written(PolicyKind::Pool), schema_keys::<pool::PoolConfig>());
    assert_eq!(
        written(PolicyKind::Breaker),
        schema_keys::<breaker::BreakerConfig>()
    );
    assert_eq!(
        written(PolicyKind::Retry),
        schema_keys::<retry::RetryConfig>()
    );
    assert_eq!(
        written(PolicyKind::Limiter),
        schema_keys::<limiter::LimiterConfig>()
    );
    assert_eq!(
        written(PolicyKind::Bulkhead),
        schema_keys::<bulkhead::BulkheadConfig>()
    );
}

/// `on.failover.base` -> `on.<kind>.base`, as the schema documents its keys.
fn generic_key(key: &str) -> String {
    match key
        .strip_prefix("on.")
        .and_then(|rest| rest.split_once('.'))
    {
        Some((_, setting)) => format!("on.<kind>.{setting}"),
        None => key.to_owned(),
    }
}

#[test]
fn the_seed_declarations_resolve() {
    let config = resolve(seeds::seed_000::policies::declared());
    let maxima: Vec<u32> = ["http", "ws", "background"]
        .iter()
        .map(|p| config.pools[*p].max)
        .collect();
    assert_eq!(maxima, [150, 30, 20]);
    assert!(config.breakers.contains_key("db"));

    let mut set = seeds::seed_003::policies::declared();
    set.merge(&seeds::seed_004::policies::declared());
    set.declare(PolicyKind::Pool, "main", &[], None);
    let config = resolve(set);
    assert!(config.breakers.contains_key("primary"));
    assert!(config.breakers.contains_key("harvest_stats"));
    assert!(config.retries.contains_key("harvest"));
}

// Annotated functions of every shape; they are registered even though this test never runs
// them (running them needs PostgreSQL: see the integration tests).

sqlx_resilience::policies! {
    pool http { max = 10 }
    retry transient { attempts = 3 }
}

#[derive(HasRuntime)]
struct Repo {
    rt: Runtime,
}

impl Repo {
    #[db_op(pool = "http", timeout = "5s", deadline = "20s", retry = transient, read_only, slow = "1s")]
    async fn statistics(&self, conn: &mut PgConnection, estate: i64) -> Result<i64, DbError> {
        let (n,): (i64,) = sqlx::query_as("select $1::bigint")
            .bind(estate)
            .fetch_one(conn)
            .await?;
        Ok(n)
    }
}

#[db_op(tx, isolation = "serializable", name = "accounts.transfer")]
async fn transfer(rt: &Runtime, tx: &mut Tx<'_>, cents: i64) -> Result<(), DbError> {
    sqlx::query("select $1")
        .bind(cents)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn registered(name: &str) -> &'static OpSpec {
    sqlx_resilience::op::declared_ops()
        .into_iter()
        .find(|spec| spec.name == name)
        .unwrap_or_else(|| panic!("{name} is not registered"))
}

#[test]
fn every_annotated_function_is_registered_with_its_spec() {
    let spec = registered(concat!(module_path!(), "::statistics"));
    assert_eq!(spec.pool.map(|n| n.as_str()), Some("http"));
    assert_eq!(spec.retry.map(|n| n.as_str()), Some("transient"));
    // A typed reference to the declaration, with its settings.
    match spec.pool {
        Some(sqlx_resilience::op::Name::Declared(p)) => {
            assert!(std::ptr::eq(p, &policies::pool::http));
            assert_eq!(p.kind(), PolicyKind::Pool);
        }
        other => panic!("a reference to policies::pool::http, not {other:?}"),
    }
    assert_eq!(spec.timeout, Some(Duration::from_secs(5)));
    assert_eq!(spec.deadline, Some(Duration::from_secs(20)));
    assert_eq!(spec.slow, Some(Duration::from_secs(1)));
    assert!(spec.read_only && !spec.idempotent && spec.tx.is_none());
    assert!(
        spec.location.file.ends_with("macros.rs"),
        "{}",
        spec.location
    );

    let spec = registered("accounts.transfer");
    let tx = spec.tx.expect("a transactional op");
    assert_eq!(tx.isolation, Some(Isolation::Serializable));
    assert!(!tx.read_only);

    // The functions keep their public signatures, without the connection.
    let _ = |repo: &'static Repo| repo.statistics(1);
    let _ = |rt: &'static Runtime| transfer(rt, 100);
}
