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
//! ones). The seed moved database writes off the streaming path; here they are background
//! writes (`Op::submit`) on the chat pool's bounded queue, run under the same breaker and
//! retry policy: a chunk never waits for the database, the queue holds the messages through
//! the outage, and they are written once the network heals (none lost, none twice). The run
//! ends with one JSON line measured from the stream (`chunks`, `chunks_waiting_on_db`,
//! `slowest_chunk_ms`) and from the table (messages saved and lost), which
//! `tests/examples.rs` holds to the seed's claim.
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
use sqlx_resilience::{DbError, Error, HasRuntime, OpBuilder, Runtime, Tx, db_op};
use sqlx_resilience_testkit::{FaultProxy, PgServer};
use tokio::sync::broadcast::error::RecvError;

sqlx_resilience::policies! {
    /// Staging: pool_size 20 + max_overflow 30; connections above 20 close when idle.
    /// Messages are saved by its background queue, off the streaming path.
    pool chat {
        max = 50, min = 20, acquire_timeout = "30s", max_lifetime = "1h", idle_timeout = "10m",
        background_capacity = 1000, background_when_full = "drop_oldest", background_workers = 4,
    }
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

/// A save: on the chat pool, 30 s (the seed's timeout), under the retry policy and the
/// breaker, safe to run again.
fn save_op<'a>(rt: &'a Runtime, name: &'static str) -> OpBuilder<'a> {
    rt.op(name)
        .pool("chat")
        .timeout(Duration::from_secs(30))
        .retry("persist")
        .breaker("chat_db")
        .idempotent(true)
}

/// Saves a message in the background: queued at once, written by the chat pool's background
/// workers under the breaker and the retry policy; saving it twice saves it once.
async fn save_message(
    rt: &Runtime,
    id: i64,
    conversation: i32,
    role: &'static str,
    content: String,
) -> Result<u64, Error> {
    save_op(rt, "chat.save_message")
        .submit(move |conn| {
            let content = content.clone();
            Box::pin(async move {
                sqlx::query(
                    "insert into message values ($1, $2, $3, $4) on conflict (id) do nothing",
                )
                .bind(id)
                .bind(conversation)
                .bind(role)
                .bind(content)
                .execute(conn.as_mut())
                .await?;
                Ok(())
            })
        })
        .await
}

/// Saves the reply and its artefact together (one statement) in the background.
async fn save_reply(
    rt: &Runtime,
    id: i64,
    conversation: i32,
    content: String,
) -> Result<u64, Error> {
    save_op(rt, "chat.save_reply")
        .submit(move |conn| {
            let content = content.clone();
            Box::pin(async move {
                sqlx::query(
                    "with m as (insert into message values ($1, $2, 'assistant', $3) \
                       on conflict (id) do nothing returning id) \
                     insert into artefact select id, $4 from m on conflict (message) do nothing",
                )
                .bind(id)
                .bind(conversation)
                .bind(&content)
                .bind(format!("summary of {} characters", content.len()))
                .execute(conn.as_mut())
                .await?;
                Ok(())
            })
        })
        .await
}

/// What one streamed reply measured.
#[derive(Default)]
struct Streamed {
    chunks: u32,
    /// Chunks held up by a database call made before them (longer than [`HELD_UP`]).
    waiting_on_db: u32,
    slowest: Duration,
}

/// A call on the streaming path longer than this waited for the database: a save that went
/// to the database during the outage would wait at least the pool's acquire timeout (300 ms in
/// the drill profile), while queueing one takes microseconds; the margin is for a loaded
/// machine's scheduling.
const HELD_UP: Duration = Duration::from_millis(250);

/// One exchange: the question saved, 20 chunks streamed, the reply saved, each save queued
/// for the background. Returns what the stream measured.
async fn converse(rt: Runtime, conversation: i32, turn: i64) -> Result<Streamed, Error> {
    let id = i64::from(conversation) * 1000 + turn * 2;
    let mut s = Streamed::default();
    let t = Instant::now();
    save_message(&rt, id, conversation, "user", format!("question {turn}")).await?;
    let mut db_wait = t.elapsed();
    let mut reply = String::new();
    for chunk in 0..20 {
        let t = Instant::now();
        reply.push_str(&format!("token{chunk} "));
        tokio::time::sleep(Duration::from_millis(2)).await; // the model's next token
        let gap = t.elapsed() + db_wait;
        s.waiting_on_db += u32::from(db_wait > HELD_UP);
        s.slowest = s.slowest.max(gap);
        s.chunks += 1;
        db_wait = Duration::ZERO;
    }
    // The end of the stream is sent after the reply is queued: that wait counts too.
    let t = Instant::now();
    save_reply(&rt, id + 1, conversation, reply).await?;
    let done = t.elapsed();
    s.waiting_on_db += u32::from(done > HELD_UP);
    s.slowest = s.slowest.max(done);
    Ok(s)
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
    let dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = dropped.clone();
    rt.background().on_dropped(move |write| {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        println!("  not saved: {write:?}");
    });
    let round = |turn: i64| {
        let mut set = tokio::task::JoinSet::new();
        for conversation in 1..=12 {
            set.spawn(converse(rt.clone(), conversation, turn));
        }
        set
    };
    let (mut chunks, mut waiting, mut slowest_chunk) = (0_u32, 0_u32, Duration::ZERO);
    let mut report = |label: &str, results: Vec<Result<Streamed, Error>>| {
        let (mut replies, mut round_chunks, mut slowest) = (0, 0, Duration::ZERO);
        for r in results {
            let s = r.expect("a save is queued");
            replies += 1;
            round_chunks += s.chunks;
            chunks += s.chunks;
            waiting += s.waiting_on_db;
            slowest = slowest.max(s.slowest);
        }
        slowest_chunk = slowest_chunk.max(slowest);
        let queue = &rt.background().stats()[0];
        println!(
            "{label}: {replies} replies, {round_chunks} chunks streamed, slowest chunk {:.1} ms; \
             background queue: {} queued, {} written",
            slowest.as_secs_f64() * 1000.0,
            queue.depth,
            queue.written
        );
    };

    report("turn 1", round(1).join_all().await);
    // The messages of turn 1 are in before the fault.
    wait_for_queue(&rt).await;

    // The fault: the database becomes unreachable mid-conversation.
    proxy.refuse().await;
    proxy.reset().await;
    report("turn 2 (database unreachable)", round(2).join_all().await);
    // The queue tries the saves, the breaker opens on them, and they wait in the queue.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = Instant::now();
    report("turn 3 (still unreachable)", round(3).join_all().await);
    println!(
        "turn 3 took {} ms in all: the saves wait in the queue, replies keep streaming",
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
    // The queue's next try after the open window is the probe; the held saves follow.
    wait_for_queue(&rt).await;
    if breaker.state() != BreakerState::Closed {
        return Err(format!(
            "breaker chat_db is {} after the queue drained",
            breaker.state()
        )
        .into());
    }
    println!(
        "after the network healed: conversation 1 holds {} messages",
        repo.history_len(1).await?
    );
    report("turn 4 (network healed)", round(4).join_all().await);
    wait_for_queue(&rt).await;
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
    // Every message of the 4 turns, counted in the table: 12 conversations x 4 turns x 2.
    let mut saved = 0;
    for conversation in 1..=12 {
        saved += repo.history_len(conversation).await?;
    }
    let lost = 96 - saved;
    rt.shutdown(Duration::from_secs(5)).await?;
    watcher.abort();
    println!(
        "messages: {saved} of 96 saved; {} writes dropped",
        dropped.load(std::sync::atomic::Ordering::Relaxed)
    );
    println!("done in {:.1}s", started.elapsed().as_secs_f64());
    println!(
        "{{\"seed\":\"003\",\"chunks\":{chunks},\"chunks_waiting_on_db\":{waiting},\"slowest_chunk_ms\":{:.1},\"messages_saved\":{saved},\"messages_lost\":{lost}}}",
        slowest_chunk.as_secs_f64() * 1000.0
    );
    Ok(())
}

/// Waits (at most 60 s) until the chat pool's background queue has written everything.
async fn wait_for_queue(rt: &Runtime) {
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        let q = &rt.background().stats()[0];
        if q.depth == 0 && q.running == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
