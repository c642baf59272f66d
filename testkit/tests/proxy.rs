//! The fault proxy on its own (against a small echo server) and with sqlx against the test
//! kit's PostgreSQL. Timing assertions are one-sided ("took at least") or bounds so wide that
//! a loaded machine cannot miss them.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use sqlx_resilience_testkit::{Direction, FaultProxy, PgServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// An echo server that greets each connection with `hello` first.
async fn echo_server() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                if write.write_all(b"hello").await.is_ok() {
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                }
            });
        }
    });
    Ok(addr)
}

/// Connects through the proxy and reads the greeting.
async fn greeted(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr).await?;
    let mut greeting = [0; 5];
    stream.read_exact(&mut greeting).await?;
    assert_eq!(&greeting, b"hello");
    Ok(stream)
}

async fn round_trip(stream: &mut TcpStream, data: &[u8]) -> std::io::Result<Duration> {
    let start = Instant::now();
    stream.write_all(data).await?;
    let mut back = vec![0; data.len()];
    stream.read_exact(&mut back).await?;
    assert_eq!(back, data);
    Ok(start.elapsed())
}

/// Sends `len` bytes and reads them back concurrently; returns how long it took.
async fn transfer(stream: TcpStream, len: usize) -> std::io::Result<Duration> {
    let start = Instant::now();
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        let data = vec![7u8; len];
        write.write_all(&data).await?;
        Ok::<_, std::io::Error>(write)
    });
    let mut back = vec![0; len];
    read.read_exact(&mut back).await?;
    writer.await.expect("the writer does not panic")?;
    assert!(back.iter().all(|b| *b == 7));
    Ok(start.elapsed())
}

#[tokio::test]
async fn latency_applies_to_each_direction_separately() -> TestResult {
    let proxy = FaultProxy::start(echo_server().await?).await?;

    proxy.set_latency(Direction::ToServer, Duration::from_secs(2));
    // The greeting flows to the client, which has no latency: it is not held for 2 s.
    let mut stream = tokio::time::timeout(Duration::from_millis(1500), greeted(proxy.addr()))
        .await
        .map_err(|_| "latency towards the server delayed data towards the client")??;
    let took = round_trip(&mut stream, b"ping").await?;
    assert!(took >= Duration::from_secs(2), "{took:?}");

    proxy.set_latency(Direction::ToServer, Duration::ZERO);
    proxy.set_latency(Direction::ToClient, Duration::from_millis(300));
    let took = round_trip(&mut stream, b"pong").await?;
    assert!(took >= Duration::from_millis(300), "{took:?}");

    proxy.set_latency(Direction::Both, Duration::from_millis(200));
    let took = round_trip(&mut stream, b"both").await?;
    assert!(took >= Duration::from_millis(400), "{took:?}");
    Ok(())
}

/// Latency delays chunks, it does not serialise them: 1 MiB with 200 ms each way takes about
/// one round trip, where one chunk per delay would take many seconds (64 chunks of 16 KiB).
#[tokio::test]
async fn latency_keeps_throughput_and_order() -> TestResult {
    let proxy = FaultProxy::start(echo_server().await?).await?;
    let stream = greeted(proxy.addr()).await?;
    proxy.set_latency(Direction::Both, Duration::from_millis(200));
    let took = transfer(stream, 1 << 20).await?;
    assert!(took >= Duration::from_millis(400), "{took:?}");
    assert!(
        took < Duration::from_secs(8),
        "throughput collapsed: {took:?}"
    );
    Ok(())
}

#[tokio::test]
async fn reset_gives_the_client_connection_reset_and_new_connections_work() -> TestResult {
    let proxy = FaultProxy::start(echo_server().await?).await?;
    let mut stream = greeted(proxy.addr()).await?;
    round_trip(&mut stream, b"before").await?;

    proxy.reset().await;
    let mut buf = [0; 16];
    let error = stream.read(&mut buf).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConnectionReset, "{error}");
    assert_eq!(proxy.stats().open, 0);

    let mut again = greeted(proxy.addr()).await?;
    round_trip(&mut again, b"after").await?;
    Ok(())
}

#[tokio::test]
async fn blackhole_hangs_until_the_client_gives_up_and_heal_delivers_held_data() -> TestResult {
    let proxy = FaultProxy::start(echo_server().await?).await?;
    let mut open = greeted(proxy.addr()).await?;
    round_trip(&mut open, b"warm").await?;

    proxy.blackhole();
    open.write_all(b"held").await?;
    let mut buf = [0; 4];
    let waited = tokio::time::timeout(Duration::from_millis(500), open.read_exact(&mut buf)).await;
    assert!(waited.is_err(), "data crossed a blackhole");
    // New connections are accepted but get nothing (not even the greeting).
    let new = tokio::time::timeout(Duration::from_millis(500), greeted(proxy.addr())).await;
    assert!(new.is_err(), "a new connection got through a blackhole");

    proxy.heal().await?;
    tokio::time::timeout(Duration::from_secs(10), open.read_exact(&mut buf)).await??;
    assert_eq!(&buf, b"held");
    Ok(())
}

#[tokio::test]
async fn refuse_refuses_new_connections_keeps_open_ones_and_heal_listens_again() -> TestResult {
    let proxy = FaultProxy::start(echo_server().await?).await?;
    let mut open = greeted(proxy.addr()).await?;

    proxy.refuse().await;
    let error = TcpStream::connect(proxy.addr()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConnectionRefused, "{error}");
    round_trip(&mut open, b"still works").await?;

    proxy.heal().await?;
    let mut again = greeted(proxy.addr()).await?;
    round_trip(&mut again, b"back").await?;
    Ok(())
}

#[tokio::test]
async fn bandwidth_cap_slows_a_transfer_and_stats_count_it() -> TestResult {
    let proxy = FaultProxy::start(echo_server().await?).await?;
    let stream = greeted(proxy.addr()).await?;
    // 1 MiB each way at 512 KiB/s: about two seconds.
    proxy.bandwidth(Some(512 * 1024));
    let took = transfer(stream, 1 << 20).await?;
    assert!(took >= Duration::from_millis(1500), "{took:?}");

    let stats = proxy.stats();
    assert_eq!(stats.accepted, 1);
    assert!(stats.bytes_to_server >= 1 << 20, "{stats:?}");
    assert!(stats.bytes_to_client >= (1 << 20) + 5, "{stats:?}");

    proxy.heal().await?;
    let mut stream = greeted(proxy.addr()).await?;
    round_trip(&mut stream, b"uncapped").await?;
    Ok(())
}

#[tokio::test]
async fn dropping_the_proxy_closes_its_listener_and_connections() -> TestResult {
    let proxy = FaultProxy::start(echo_server().await?).await?;
    let addr = proxy.addr();
    let mut open = greeted(addr).await?;
    assert_eq!(proxy.stats().open, 1);

    drop(proxy);
    let mut buf = [0; 1];
    let read = tokio::time::timeout(Duration::from_secs(10), open.read(&mut buf)).await?;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let error = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConnectionRefused, "{error}");
    Ok(())
}

async fn through_proxy()
-> Result<(FaultProxy, sqlx_resilience_testkit::TestDb), Box<dyn std::error::Error>> {
    let server = PgServer::shared().await?;
    let db = server.create_database().await?;
    let proxy = FaultProxy::start(server.tcp_addr()).await?;
    Ok((proxy, db))
}

#[tokio::test]
async fn sqlx_sees_an_io_error_when_the_proxy_resets() -> TestResult {
    let (proxy, db) = through_proxy().await?;
    let mut conn = PgConnection::connect(&db.url_via(proxy.addr())).await?;
    sqlx::query("SELECT 1").execute(&mut conn).await?;

    proxy.reset().await;
    let error = sqlx::query("SELECT 1")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(matches!(error, sqlx::Error::Io(_)), "{error:?}");

    // The proxy itself keeps working.
    PgConnection::connect(&db.url_via(proxy.addr()))
        .await?
        .close()
        .await?;
    Ok(())
}

#[tokio::test]
async fn sqlx_query_through_a_blackhole_runs_into_the_client_timeout() -> TestResult {
    let (proxy, db) = through_proxy().await?;
    let mut conn = PgConnection::connect(&db.url_via(proxy.addr())).await?;
    sqlx::query("SELECT 1").execute(&mut conn).await?;

    proxy.blackhole();
    let query = sqlx::query("SELECT 1").execute(&mut conn);
    let outcome = tokio::time::timeout(Duration::from_millis(500), query).await;
    assert!(
        outcome.is_err(),
        "the query finished through a blackhole: {outcome:?}"
    );
    Ok(())
}

#[tokio::test]
async fn sqlx_round_trip_takes_at_least_the_added_latency() -> TestResult {
    let (proxy, db) = through_proxy().await?;
    let mut conn = PgConnection::connect(&db.url_via(proxy.addr())).await?;
    sqlx::query("SELECT 1").execute(&mut conn).await?;

    proxy.set_latency(Direction::Both, Duration::from_millis(150));
    let start = Instant::now();
    sqlx::query("SELECT 1").execute(&mut conn).await?;
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    Ok(())
}
