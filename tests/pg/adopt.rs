//! Fitting an existing sqlx application: its own `PgConnectOptions`, its own `PgPool`, and
//! start-up with or without the database.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx_resilience::{Error, Runtime, RuntimeBuilder};
use sqlx_resilience_testkit::{FaultProxy, TestDb};

use crate::support::{self, Logs, password_of, scalar_i64, show};

fn options(url: &str) -> PgConnectOptions {
    url.parse().expect("the test kit's URL")
}

fn bare() -> RuntimeBuilder {
    Runtime::builder().env_vars(Vec::<(String, String)>::new())
}

#[tokio::test(flavor = "current_thread")]
async fn connect_options_reach_the_pools_and_never_show_their_password() {
    let db = support::db().await;
    let password = password_of(db.url());
    assert!(password.len() >= 8);
    let (logs, _guard) = Logs::capture();

    // Runtime-wide, with the application's own application_name kept.
    let builder = bare()
        .connect_options(options(db.url()).application_name("billing-app"))
        .pool("main", &[]);
    let mut renderings = vec![format!("{builder:?}")];
    let rt = builder.build().await.expect("runtime");
    assert_eq!(scalar_i64(&rt, "select 41::int8 + 1").await.unwrap(), 42);
    assert_eq!(show(&rt, "application_name").await, "billing-app");
    let pool = rt.pool("main").unwrap();
    renderings.extend([
        format!("{rt:?}"),
        format!("{:?}", rt.config()),
        format!("{pool:?}"),
        format!("{:?}", pool.config()),
        format!("{}", pool.url()),
    ]);
    assert!(
        pool.url().to_string().contains(":***@"),
        "the password is shown as ***: {}",
        pool.url()
    );

    // For one pool, over a runtime URL that leads nowhere.
    let rt = bare()
        .url("postgres://app:pw@127.0.0.1:9/nowhere")
        .pool("main", &[])
        .pool_connect_options("main", options(db.url()))
        .build()
        .await
        .expect("the pool's own options win over the runtime's URL");
    assert_eq!(scalar_i64(&rt, "select 7::int8").await.unwrap(), 7);

    // A refused connect: the error names the server without the password.
    let wrong = options(db.url()).password(&format!("{password}-wrong"));
    let err = bare()
        .connect_options(wrong)
        .pool("main", &[("startup_timeout", "3s".into())])
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err}");
    renderings.push(err.to_string());
    renderings.push(format!("{err:?}"));
    // A pool that is not declared.
    let err = bare()
        .connect_options(options(db.url()))
        .pool("main", &[])
        .pool_connect_options("mian", options(db.url()))
        .resolve()
        .unwrap_err();
    assert!(matches!(err, Error::UndeclaredName { .. }), "{err}");
    renderings.push(format!("{err:?}"));
    renderings.push(logs.text());
    for text in &renderings {
        assert!(!text.contains(&password), "password leaked in: {text}");
    }
}

/// A file's or the environment's URL wins over options from code, as over a URL from code.
#[tokio::test]
async fn configuration_wins_over_connect_options_from_code() {
    let config = bare()
        .connect_options(options("postgres://app:pw@code.internal/app"))
        .pool("main", &[])
        .config_toml("url = \"postgres://app@file.internal/app\"", "db.toml")
        .resolve()
        .unwrap();
    assert_eq!(
        config.settings.url.unwrap().to_string(),
        "postgres://app@file.internal/app"
    );
}

async fn refusing(db: &TestDb) -> FaultProxy {
    let proxy = FaultProxy::start(db.server().tcp_addr()).await.unwrap();
    proxy.refuse().await;
    proxy
}

/// Eager start-up (the default) checks the server and refuses to start without it; lazy
/// start-up boots without it and connects on first use.
#[tokio::test]
async fn eager_start_up_needs_the_server_and_lazy_start_up_boots_without_it() {
    let db = support::db().await;
    let proxy = refusing(&db).await;
    let url = db.url_via(proxy.addr());

    let err = bare()
        .url(&url)
        .pool("main", &[("startup_timeout", "3s".into())])
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err}");

    let rt = bare()
        .url(&url)
        .pool("main", &[("startup", "lazy".into())])
        .build()
        .await
        .expect("a lazy pool starts while the server refuses connections");
    assert_eq!(rt.pool("main").unwrap().stats().size, 0);
    proxy.heal().await.unwrap();
    assert_eq!(scalar_i64(&rt, "select 1::int8").await.unwrap(), 1);

    let rt = bare()
        .url(&url)
        .pool("main", &[])
        .build()
        .await
        .expect("eager start-up with the server up");
    assert!(
        rt.pool("main").unwrap().stats().size >= 1,
        "opened at start-up"
    );
}

/// A pool the test built with sqlx, as `#[sqlx::test]` hands one to each test.
async fn runtime_on(pool: sqlx::PgPool, settings: &[(&str, sqlx_resilience::Value)]) -> Runtime {
    bare()
        .pool("main", settings)
        .adopt_pool("main", pool)
        .build()
        .await
        .expect("runtime on the adopted pool")
}

#[tokio::test]
async fn an_adopted_sqlx_pool_runs_the_ops_with_its_own_settings() {
    let db = support::db().await;
    let pool = PgPoolOptions::new()
        .max_connections(3)
        .acquire_timeout(Duration::from_secs(7))
        .connect_with(options(db.url()).application_name("sqlx-fixture"))
        .await
        .unwrap();
    // No URL anywhere but in the pool; the configured size is not the pool's.
    let rt = runtime_on(pool.clone(), &[("max", 50u32.into())]).await;
    let main = rt.pool("main").unwrap();
    assert_eq!(scalar_i64(&rt, "select 5::int8").await.unwrap(), 5);
    assert_eq!(
        show(&rt, "application_name").await,
        "sqlx-fixture",
        "the ops ran on the adopted pool's connections"
    );
    assert_eq!(
        main.config().max,
        3,
        "the pool's own size, not the configured 50"
    );
    assert_eq!(main.config().acquire_timeout, Duration::from_secs(7));
    assert_eq!(rt.config().pools["main"].max, 3);
    assert_eq!(main.stats().max, 3);
    assert!(main.stats().acquired >= 2, "{:?}", main.stats());
    assert!(main.url().to_string().contains(":***@"), "{}", main.url());
    assert!(!format!("{:?}", rt.config()).contains(&password_of(db.url())));

    // The application's other code keeps using the same pool until the runtime shuts down.
    let (n,): (i64,) = sqlx::query_as("select 1::int8")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    assert!(
        pool.is_closed(),
        "shutting the runtime down closes the pool it adopted"
    );
}

#[tokio::test]
async fn a_lazy_adopted_pool_boots_without_the_server() {
    let db = support::db().await;
    let proxy = refusing(&db).await;
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy(&db.url_via(proxy.addr()))
        .unwrap();
    let rt = runtime_on(pool, &[("startup", "lazy".into())]).await;
    proxy.heal().await.unwrap();
    assert_eq!(scalar_i64(&rt, "select 3::int8").await.unwrap(), 3);
}

#[tokio::test]
async fn adopting_a_pool_that_is_not_declared_is_refused() {
    let pool = PgPoolOptions::new()
        .connect_lazy("postgres://app:pw@127.0.0.1:9/nowhere")
        .unwrap();
    let err = bare()
        .pool("main", &[])
        .adopt_pool("mian", pool)
        .resolve()
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::UndeclaredName { .. }), "{text}");
    assert!(text.contains("mian") && text.contains("main"), "{text}");
}
