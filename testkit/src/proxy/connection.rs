//! One proxied connection: two pipes (one per direction), each a delay queue between a reader
//! and a writer, so latency delays chunks without limiting throughput.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::shared::{Faults, Shared};

/// Bytes read at once.
const CHUNK: usize = 16 * 1024;

/// Chunks queued per direction before the reader stops reading (so a blackholed or slow
/// connection holds at most this much in the proxy; the rest waits in the kernel).
const QUEUE: usize = 64;

/// How long connecting to the upstream may take.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
enum Way {
    ToServer,
    ToClient,
}

impl Way {
    fn latency(self, faults: &Faults) -> Duration {
        match self {
            Way::ToServer => faults.latency_to_server,
            Way::ToClient => faults.latency_to_client,
        }
    }

    fn counter(self, shared: &Shared) -> &AtomicU64 {
        match self {
            Way::ToServer => &shared.bytes_to_server,
            Way::ToClient => &shared.bytes_to_client,
        }
    }
}

enum Item {
    Data(Instant, Vec<u8>),
    /// The reader saw end-of-file: pass it on once the data before it is written.
    Eof,
    /// The reader failed: end the connection abortively.
    Failed,
}

/// Removes the connection from the open set however its task ends (finished or aborted).
struct Registration {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

/// Serves one client until both directions end, an error ends it, or a reset arrives.
pub(super) async fn run(shared: Arc<Shared>, id: u64, epoch: u64, mut client: TcpStream) {
    let _registration = Registration {
        shared: Arc::clone(&shared),
        id,
    };
    let mut resets = shared.resets.subscribe();
    let reset = resets.wait_for(|e| *e != epoch);
    tokio::pin!(reset);

    let connect = tokio::time::timeout(CONNECT_LIMIT, TcpStream::connect(shared.upstream));
    let mut server = tokio::select! {
        connected = connect => match connected {
            Ok(Ok(server)) => server,
            Ok(Err(e)) => {
                tracing::debug!("fault proxy: cannot connect to {}: {e}", shared.upstream);
                abort(&client, None);
                return;
            }
            Err(_) => {
                tracing::debug!("fault proxy: connecting to {} timed out", shared.upstream);
                abort(&client, None);
                return;
            }
        },
        _ = &mut reset => {
            abort(&client, None);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);

    let clean = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let to_server = pipe(&shared, Way::ToServer, client_read, server_write);
        let to_client = pipe(&shared, Way::ToClient, server_read, client_write);
        tokio::select! {
            ended = async { tokio::try_join!(to_server, to_client) } => ended.is_ok(),
            _ = &mut reset => false,
        }
    };
    if !clean {
        abort(&client, Some(&server));
    }
}

/// Makes the coming close send a TCP RST instead of a FIN.
fn abort(client: &TcpStream, server: Option<&TcpStream>) {
    let _ = client.set_zero_linger();
    if let Some(server) = server {
        let _ = server.set_zero_linger();
    }
}

/// Forwards one direction. `Ok` when end-of-file was passed on, `Err` when either side failed.
async fn pipe(
    shared: &Shared,
    way: Way,
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
) -> Result<(), ()> {
    let (queue, mut queued) = mpsc::channel::<Item>(QUEUE);
    let mut faults = shared.faults.subscribe();
    let read = async {
        let mut buf = vec![0; CHUNK];
        loop {
            let item = match from.read(&mut buf).await {
                Ok(0) => Item::Eof,
                Ok(n) => {
                    let due = Instant::now() + way.latency(&shared.faults.borrow());
                    Item::Data(due, buf[..n].to_vec())
                }
                Err(_) => Item::Failed,
            };
            let last = !matches!(item, Item::Data(..));
            if queue.send(item).await.is_err() || last {
                break;
            }
        }
        // The writer decides when this direction ends.
        std::future::pending::<()>().await;
    };
    let write = async {
        let mut bucket = Bucket::default();
        while let Some(item) = queued.recv().await {
            match item {
                Item::Data(due, data) => {
                    tokio::time::sleep_until(due).await;
                    let mut rest = &data[..];
                    while !rest.is_empty() {
                        if faults.wait_for(|f| !f.blackhole).await.is_err() {
                            return Err(());
                        }
                        let rate = faults.borrow().bandwidth;
                        let n = bucket.take(rest.len(), rate).await;
                        to.write_all(&rest[..n]).await.map_err(|_| ())?;
                        way.counter(shared).fetch_add(n as u64, Ordering::Relaxed);
                        rest = &rest[n..];
                    }
                }
                Item::Eof => {
                    let _ = to.shutdown().await;
                    return Ok(());
                }
                Item::Failed => return Err(()),
            }
        }
        Err(())
    };
    tokio::select! {
        written = write => written,
        () = read => unreachable!("the reader never finishes on its own"),
    }
}

/// A token bucket for one direction: at most `rate` bytes per second, in bursts of at most a
/// twentieth of a second's worth.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Default for Bucket {
    fn default() -> Self {
        Bucket {
            tokens: 0.0,
            last: Instant::now(),
        }
    }
}

impl Bucket {
    /// Waits until up to `wanted` bytes may be sent and returns how many.
    async fn take(&mut self, wanted: usize, rate: Option<u64>) -> usize {
        let Some(rate) = rate else {
            self.tokens = 0.0;
            self.last = Instant::now();
            return wanted;
        };
        let (n, wait) = self.plan(wanted, rate, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        n
    }

    /// How many bytes to send next and how long to wait before sending them, as of `now`.
    fn plan(&mut self, wanted: usize, rate: u64, now: Instant) -> (usize, Duration) {
        let burst = (rate / 20).clamp(1, CHUNK as u64);
        let n = wanted.min(usize::try_from(burst).unwrap_or(CHUNK));
        let rate_f = rate as f64;
        // `last` may lie ahead of `now` (time already promised to earlier sends): no credit.
        let earned = now.saturating_duration_since(self.last).as_secs_f64() * rate_f;
        self.tokens = (self.tokens + earned).min(burst as f64);
        self.last = self.last.max(now);
        if self.tokens >= n as f64 {
            self.tokens -= n as f64;
            return (n, Duration::ZERO);
        }
        let wait = Duration::from_secs_f64((n as f64 - self.tokens) / rate_f);
        self.tokens = 0.0;
        self.last += wait;
        (n, self.last.saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 100 KiB at 10 KiB/s: the planned waits add up to about ten seconds.
    #[test]
    fn the_bucket_holds_the_rate() {
        let start = Instant::now();
        let mut bucket = Bucket {
            tokens: 0.0,
            last: start,
        };
        let mut now = start;
        let mut sent = 0;
        while sent < 100 * 1024 {
            let (n, wait) = bucket.plan(100 * 1024 - sent, 10 * 1024, now);
            assert!(n <= 512, "bursts stay within a twentieth of a second: {n}");
            now += wait;
            sent += n;
        }
        let took = now - start;
        assert!(took >= Duration::from_millis(9_900), "{took:?}");
        assert!(took <= Duration::from_millis(10_100), "{took:?}");
    }

    /// A connection idle for a while may send one burst at once, not a backlog.
    #[test]
    fn idle_time_earns_at_most_one_burst() {
        let start = Instant::now();
        let mut bucket = Bucket {
            tokens: 0.0,
            last: start,
        };
        let later = start + Duration::from_secs(60);
        assert_eq!(bucket.plan(16 * 1024, 1024, later), (51, Duration::ZERO));
        let (n, wait) = bucket.plan(16 * 1024, 1024, later);
        assert_eq!(n, 51);
        assert!(wait >= Duration::from_millis(49), "{wait:?}");
    }
}
