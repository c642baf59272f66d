//! Background writes: a chat reply is streamed while its messages are saved by the pool's
//! background queue, so a database outage never holds up the stream; the queue rides the
//! outage out and shutdown drains it.
//!
//! ```sh
//! cargo run --example background_writes
//! ```
//!
//! Uses the test kit's throwaway server and its fault proxy to cut the database for a while.
//! Ends with one JSON line: messages submitted, written and dropped, and the slowest chunk of
//! the stream (how long one submission held the stream up).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx_resilience::{Error, Runtime};
use sqlx_resilience_testkit::{FaultProxy, PgServer};

/// Saves one message in the background: the stream goes on at once.
async fn save(rt: &Runtime, chat: i64, text: String) -> Result<u64, Error> {
    rt.op("chat::save_message")
        .pool("writes")
        .retry("transient")
        .timeout(Duration::from_secs(2))
        .submit(move |conn| {
            let text = text.clone();
            Box::pin(async move {
                sqlx::query("insert into messages (chat, text) values ($1, $2)")
                    .bind(chat)
                    .bind(text)
                    .execute(conn.as_mut())
                    .await?;
                Ok(())
            })
        })
        .await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = PgServer::shared().await?;
    let db = server.create_database().await?;
    let proxy = FaultProxy::start(server.tcp_addr()).await?;
    let rt = Runtime::builder()
        .url(db.url_via(proxy.addr()))
        .env_vars(Vec::<(String, String)>::new())
        .pool(
            "writes",
            &[
                ("max", 2u32.into()),
                ("background_capacity", 500u32.into()),
                ("background_when_full", "drop_oldest".into()),
            ],
        )
        .declare(
            sqlx_resilience::PolicyKind::Retry,
            "transient",
            &[("attempts", 3u32.into())],
        )
        .build()
        .await?;
    let dropped = Arc::new(AtomicU64::new(0));
    let counted = dropped.clone();
    rt.background().on_dropped(move |write| {
        counted.fetch_add(1, Ordering::Relaxed);
        eprintln!("not saved: {write:?}");
    });
    rt.op("chat::schema")
        .run(|conn| {
            Box::pin(async move {
                sqlx::raw_sql("create table messages (chat int8, text text)")
                    .execute(conn.as_mut())
                    .await?;
                Ok::<_, Error>(())
            })
        })
        .await?;

    // Three replies of 40 chunks; the database is cut during the second one.
    let mut slowest = Duration::ZERO;
    let mut submitted = 0_u64;
    for reply in 0..3_i64 {
        if reply == 1 {
            proxy.refuse().await;
            proxy.reset().await;
            println!("database cut");
        }
        for chunk in 0..40 {
            let started = Instant::now();
            save(&rt, reply, format!("reply {reply} chunk {chunk}")).await?;
            slowest = slowest.max(started.elapsed());
            submitted += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if reply == 1 {
            let queue = &rt.background().stats()[0];
            println!(
                "during the outage: {} queued, oldest {} ms",
                queue.depth, queue.oldest_age_ms
            );
            proxy.heal().await?;
            println!("database back");
        }
    }

    // Shutdown makes every accepted write, or reports those it could not.
    rt.shutdown(Duration::from_secs(30)).await?;
    let queue = &rt.background().stats()[0];
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db.url()).await?;
    let (rows,): (i64,) = sqlx::query_as("select count(*) from messages")
        .fetch_one(&mut conn)
        .await?;
    println!(
        "{{\"submitted\":{submitted},\"written\":{},\"rows\":{rows},\"dropped\":{},\"held\":{},\"slowest_chunk_ms\":{:.1}}}",
        queue.written,
        dropped.load(Ordering::Relaxed),
        queue.held,
        slowest.as_secs_f64() * 1000.0
    );
    Ok(())
}
