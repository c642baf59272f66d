//! Seed 003, an LLM chat service (Python, FastAPI and SQLAlchemy, streaming replies).
//!
//! What they built by hand: a bigger SQLAlchemy pool per environment (development 5 + 10
//! overflow, staging 20 + 30, production 50 + 100; `pool_timeout` 30 s, `pool_recycle` 1 h,
//! `pool_pre_ping`), database writes moved off the streaming path with a 30 s timeout, a
//! circuit breaker that opens after 10 consecutive failures and resets after 60 s, so that
//! "streaming continues even if database operations fail", and a health endpoint with
//! utilization and recommendations.
//!
//! What this shows instead: the pool sizes as configuration profiles, the persistence ops
//! under a breaker with the seed's numbers, and the fault it was built for: the database
//! becomes unreachable mid-conversation (a fault proxy resets every connection and refuses new
//! ones). Ten consecutive failures open the breaker; from then on a message save fails in
//! microseconds, so replies keep streaming; the health report says what is wrong and what to
//! do; when the network heals a probe closes the breaker and saving resumes.
//!
//! ```sh
//! cargo run --example seed_003_chat
//! DB__PROFILE=development cargo run --example seed_003_chat   # the development pool size
//! ```
//!
//! Uses the test kit's throwaway server unless `DATABASE_URL` is set. The `drill` profile
//! (the default here) keeps staging's sizes and shortens the 60 s reset and the 30 s pool
//! timeout so the run takes seconds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgConnection;
use sqlx_resilience::breaker::BreakerState;
use sqlx_resilience::{DbError, HasRuntime, Runtime, Tx, db_op};
use sqlx_resilience_testkit::{FaultProxy, PgServer};
use tokio::sync::broadcast::error::RecvError;

sqlx_resilience::policies! {
    /// Staging: pool_size 20 + max_overflow 30; connections above 20 close when idle.
    pool chat { max = 50, min = 20, acquire_timeout = "30s", max_lifetime = "1h", idle_timeout = "10m" }
    /// 10 consecutive failures open it; it resets after 60 s.
    breaker chat_db { consecutive_failures = 10, open_for = "60s" }
    retry persist { attempts = 3, base = "100ms", max_delay = "1s" }
}

const PROFILES: &str = r#"
[profiles.development.pools.chat]
max = 15
min = 5
[profiles.staging.pools.chat]
max = 50
[profiles.production.pools.chat]
max = 150
min = 50
[profiles.drill.pools.chat]
acquire_timeout = "300ms"
[profiles.drill.breakers.chat_db]
open_for = "1s"
"#;

#[derive(HasRuntime)]
struct ChatRepo {
    rt: Runtime,
}

impl ChatRepo {
    #[db_op(pool = "chat", tx, timeout = "30s")]
    async fn setup(&self, tx: &mut Tx<'_>) -> Result<(), DbError> {
        sqlx::raw_sql(
            "create table message (id bigint primary key, conversation int not null, \
               role text not null, content text not null); \
             create table artefact (message bigint primary key references message, body text not null)",
        )
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Saves a message; saving it twice saves it once, so it is safe to run again.
    #[db_op(
        pool = "chat",
        timeout = "30s",
        retry = "persist",
        breaker = "chat_db",
        idempotent
    )]
    async fn save_message(
        &self,
        conn: &mut PgConnection,
        id: i64,
        conversation: i32,
        role: &'static str,
        content: String,
    ) -> Result<(), DbError> {
        sqlx::query("insert into message values ($1, $2, $3, $4) on conflict (id) do nothing")
            .bind(id)
            .bind(conversation)
            .bind(role)
            .bind(content)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// The reply and its artefact, in one transaction (the seed's "async artefact updates").
    #[db_op(
        pool = "chat",
        tx,
        timeout = "30s",
        retry = "persist",
        breaker = "chat_db"
    )]
    async fn save_reply(
        &self,
        tx: &mut Tx<'_>,
        id: i64,
        conversation: i32,
        content: String,
    ) -> Result<(), DbError> {
        sqlx::query(
            "insert into message values ($1, $2, 'assistant', $3) on conflict (id) do nothing",
        )
        .bind(id)
        .bind(conversation)
        .bind(&content)
        .execute(&mut **tx)
        .await?;
        sqlx::query("insert into artefact values ($1, $2) on conflict (message) do nothing")
            .bind(id)
            .bind(format!("summary of {} characters", content.len()))
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    #[db_op(
        pool = "chat",
        timeout = "30s",
        retry = "persist",
        breaker = "chat_db",
        read_only
    )]
    async fn history_len(
        &self,
        conn: &mut PgConnection,
        conversation: i32,
    ) -> Result<i64, DbError> {
        let (n,): (i64,) = sqlx::query_as("select count(*) from message where conversation = $1")
            .bind(conversation)
            .fetch_one(conn)
            .await?;
        Ok(n)
    }
}

/// One exchange: save the question, stream 20 chunks, save the reply. Database failures are
/// logged and the stream goes on. Returns (saved, slowest chunk).
async fn converse(repo: Arc<ChatRepo>, conversation: i32, turn: i64) -> (bool, Duration) {
    let id = i64::from(conversation) * 1000 + turn * 2;
    let mut slowest = Duration::ZERO;
    let mut saved = repo
        .save_message(id, conversation, "user", format!("question {turn}"))
        .await
        .is_ok();
    let mut reply = String::new();
    for chunk in 0..20 {
        let t = Instant::now();
        reply.push_str(&format!("token{chunk} "));
        tokio::time::sleep(Duration::from_millis(2)).await; // the model's next token
        slowest = slowest.max(t.elapsed());
    }
    let t = Instant::now();
    saved &= repo.save_reply(id + 1, conversation, reply).await.is_ok();
    (saved, slowest.max(t.elapsed()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let server = PgServer::shared().await?;
    let db = server.create_database().await?;
    let proxy = FaultProxy::start(server.tcp_addr()).await?;
    let rt = Runtime::builder()
        .url(db.url_via(proxy.addr()))
        .config_toml(PROFILES, "the chat profiles")
        .profile("drill")
        .env_prefix("DB")
        .build()
        .await?;
    let chat = rt.pool("chat").expect("declared").config().clone();
    println!(
        "pool chat: max {}, min {}, acquire timeout {:?}",
        chat.max, chat.min, chat.acquire_timeout
    );
    let breaker = rt.breaker("chat_db").expect("declared").clone();
    let mut events = breaker.subscribe();
    let watcher = tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(e) => println!(
                    "breaker {}: {} -> {} ({})",
                    e.breaker, e.from, e.to, e.reason
                ),
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            }
        }
    });

    let repo = Arc::new(ChatRepo { rt: rt.clone() });
    repo.setup().await?;
    let round = |turn: i64| {
        let mut set = tokio::task::JoinSet::new();
        for conversation in 1..=12 {
            set.spawn(converse(repo.clone(), conversation, turn));
        }
        set
    };
    let report = |label: &str, results: Vec<(bool, Duration)>| {
        let saved = results.iter().filter(|(s, _)| *s).count();
        let slowest = results.iter().map(|(_, d)| *d).max().unwrap_or_default();
        println!(
            "{label}: 12 replies streamed, {saved} saved, slowest chunk or save {} ms",
            slowest.as_millis()
        );
    };

    report("turn 1", round(1).join_all().await);

    // The fault: the database becomes unreachable mid-conversation.
    proxy.refuse().await;
    proxy.reset().await;
    report("turn 2 (database unreachable)", round(2).join_all().await);
    let t = Instant::now();
    report("turn 3 (breaker open)", round(3).join_all().await);
    println!(
        "turn 3 took {} ms in all: saves fail at once, replies keep streaming",
        t.elapsed().as_millis()
    );
    let health = rt.health().await;
    println!(
        "health during the outage: {} (score {})",
        health.status, health.score
    );
    for r in &health.recommendations {
        println!("  recommendation: {r}");
    }

    proxy.heal().await?;
    tokio::time::sleep(breaker.metrics().open_duration + Duration::from_millis(100)).await;
    // The first call after the open window is the probe; its success closes the breaker.
    println!(
        "probe: conversation 1 holds {} messages",
        repo.history_len(1).await?
    );
    if breaker.state() != BreakerState::Closed {
        return Err(format!(
            "breaker chat_db is {} after a successful probe",
            breaker.state()
        )
        .into());
    }
    report("turn 4 (network healed)", round(4).join_all().await);
    let health = rt.health().await;
    println!(
        "health after recovery: {} (score {})",
        health.status, health.score
    );
    for r in &health.recommendations {
        println!("  recommendation: {r}");
    }
    let m = breaker.metrics();
    println!(
        "breaker chat_db: {} failures counted, {} calls rejected",
        m.failures_total, m.rejected_total
    );
    for stats in rt.pool_stats() {
        println!("{stats}");
    }
    rt.shutdown(Duration::from_secs(5)).await?;
    watcher.abort();
    println!("done in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}
