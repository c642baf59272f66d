//! [`FaultProxy`]: a loopback TCP proxy that adds latency, resets, blackholes, refusals and
//! bandwidth caps between a client and a server, changed while connections are open.

mod connection;
mod shared;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx_resilience_runtime::Error;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{AbortHandle, JoinHandle};

use self::shared::{Faults, Shared};
use crate::Result;

/// Which way a fault applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server (queries).
    ToServer,
    /// Server to client (results).
    ToClient,
    /// Both ways: each direction gets the whole amount.
    Both,
}

/// What the proxy has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyStats {
    /// Connections accepted since the start.
    pub accepted: u64,
    /// Connections open now.
    pub open: u64,
    /// Bytes forwarded from clients to the server.
    pub bytes_to_server: u64,
    /// Bytes forwarded from the server to clients.
    pub bytes_to_client: u64,
}

enum Command {
    Refuse(oneshot::Sender<()>),
    Accept(oneshot::Sender<std::io::Result<()>>),
}

/// A loopback TCP proxy in front of `upstream`, with faults switched at run time.
///
/// Point a client at [`FaultProxy::addr`] (for a test database: [`crate::TestDb::url_via`]),
/// then inject faults while it runs:
///
/// | call | effect |
/// | --- | --- |
/// | [`set_latency`](Self::set_latency) | delays every chunk by the given time from the moment it is read; order is kept and throughput is not limited to one chunk per delay |
/// | [`reset`](Self::reset) | resets (TCP RST) every open connection; clients see "connection reset"; new connections work |
/// | [`blackhole`](Self::blackhole) | forwards nothing, on open and new connections alike; clients hang until their own timeouts |
/// | [`refuse`](Self::refuse) | closes the listening socket: new connections are refused; open ones keep working |
/// | [`bandwidth`](Self::bandwidth) | caps each direction of each connection to so many bytes per second |
/// | [`heal`](Self::heal) | clears every fault |
///
/// The proxy runs on the tokio runtime that started it. Dropping it ends every task, closes
/// the listener and every connection.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    accept_loop: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1` (an unused port) forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Result<FaultProxy> {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).map_err(|e| {
            Error::test_kit(
                "start a fault proxy",
                format!("cannot listen on a loopback port: {e}"),
                "check that the loopback interface is up",
            )
        })?;
        let addr = listener.local_addr().map_err(|e| {
            Error::test_kit(
                "start a fault proxy",
                format!("cannot read the listening address: {e}"),
                "check that the loopback interface is up",
            )
        })?;
        let shared = Arc::new(Shared {
            upstream,
            faults: watch::Sender::new(Faults::default()),
            resets: watch::Sender::new(0),
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            bytes_to_server: AtomicU64::new(0),
            bytes_to_client: AtomicU64::new(0),
        });
        let (commands, receiver) = mpsc::unbounded_channel();
        let accept_loop = tokio::spawn(accept_loop(
            Arc::clone(&shared),
            addr,
            Some(listener),
            receiver,
        ));
        Ok(FaultProxy {
            addr,
            shared,
            commands,
            accept_loop,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the proxy forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Adds `latency` to every chunk going in `direction` (replacing what was set before).
    /// Chunks already read keep the latency they were read with. With [`Direction::Both`] a
    /// round trip takes twice `latency` longer.
    pub fn set_latency(&self, direction: Direction, latency: Duration) {
        self.shared.faults.send_modify(|f| match direction {
            Direction::ToServer => f.latency_to_server = latency,
            Direction::ToClient => f.latency_to_client = latency,
            Direction::Both => {
                f.latency_to_server = latency;
                f.latency_to_client = latency;
            }
        });
    }

    /// Caps each direction of each connection at `bytes_per_second` (`None`: no cap).
    pub fn bandwidth(&self, bytes_per_second: Option<u64>) {
        self.shared
            .faults
            .send_modify(|f| f.bandwidth = bytes_per_second.map(|b| b.max(1)));
    }

    /// Stops forwarding in both directions, on open connections and on new ones (which are
    /// still accepted). Data is held, not dropped: after [`FaultProxy::heal`] it is delivered
    /// in order (a blackholed connection whose client gave up is then closed by the client).
    pub fn blackhole(&self) {
        self.shared.faults.send_modify(|f| f.blackhole = true);
    }

    /// Resets every open connection (TCP RST on both sides: the client's next read or write
    /// fails with "connection reset"). Returns once they are closed. New connections work
    /// unless another fault is set.
    pub async fn reset(&self) {
        let before: Vec<u64> = self.lock_open().keys().copied().collect();
        self.shared.resets.send_modify(|epoch| *epoch += 1);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !before.iter().any(|id| self.lock_open().contains_key(id)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tracing::warn!("fault proxy: connections still open 5s after a reset");
    }

    /// Closes the listening socket: new connections are refused (ECONNREFUSED); open ones
    /// keep working. Returns once the socket is closed. [`FaultProxy::heal`] listens again on
    /// the same port.
    pub async fn refuse(&self) {
        let (ack, done) = oneshot::channel();
        if self.commands.send(Command::Refuse(ack)).is_ok() {
            let _ = done.await;
        }
    }

    /// Clears every fault: no latency, no cap, forwarding (held data is delivered), and
    /// listening on the same port again after [`FaultProxy::refuse`]. Fails only if that port
    /// was taken by another process in the meantime.
    pub async fn heal(&self) -> Result<()> {
        self.shared.faults.send_replace(Faults::default());
        let (ack, done) = oneshot::channel();
        let failure = |detail: String| {
            Error::test_kit(
                "heal the fault proxy",
                detail,
                "keep the proxy's runtime alive while the proxy is used",
            )
        };
        self.commands
            .send(Command::Accept(ack))
            .map_err(|_| failure("the proxy's accept loop has ended".to_owned()))?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::test_kit(
                "heal the fault proxy",
                format!("cannot listen on {} again: {e}", self.addr),
                "another process took the port while connections were refused; start a new proxy",
            )),
            Err(_) => Err(failure("the proxy's accept loop has ended".to_owned())),
        }
    }

    /// Connections and bytes so far.
    pub fn stats(&self) -> ProxyStats {
        let s = &self.shared;
        ProxyStats {
            accepted: s.accepted.load(Ordering::Relaxed),
            open: self.lock_open().len() as u64,
            bytes_to_server: s.bytes_to_server.load(Ordering::Relaxed),
            bytes_to_client: s.bytes_to_client.load(Ordering::Relaxed),
        }
    }

    fn lock_open(&self) -> std::sync::MutexGuard<'_, HashMap<u64, AbortHandle>> {
        self.shared.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept_loop.abort();
        for (_, task) in self.lock_open().drain() {
            task.abort();
        }
    }
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .field("faults", &*self.shared.faults.borrow())
            .field("stats", &self.stats())
            .finish()
    }
}

/// A listener that can be bound again on the same port while accepted connections live.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn accept_loop(
    shared: Arc<Shared>,
    addr: SocketAddr,
    mut listener: Option<TcpListener>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                None => return,
                Some(Command::Refuse(ack)) => {
                    listener = None;
                    let _ = ack.send(());
                }
                Some(Command::Accept(ack)) => {
                    let result = match listener {
                        Some(_) => Ok(()),
                        None => bind(addr).map(|l| listener = Some(l)),
                    };
                    let _ = ack.send(result);
                }
            },
            accepted = accept(listener.as_ref()) => match accepted {
                Ok(client) => spawn_connection(&shared, client),
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::debug!("fault proxy: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        }
    }
}

async fn accept(listener: Option<&TcpListener>) -> std::io::Result<tokio::net::TcpStream> {
    match listener {
        Some(listener) => listener.accept().await.map(|(stream, _)| stream),
        None => std::future::pending().await,
    }
}

fn spawn_connection(shared: &Arc<Shared>, client: tokio::net::TcpStream) {
    shared.accepted.fetch_add(1, Ordering::Relaxed);
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let epoch = *shared.resets.borrow();
    // Held while spawning, so the task's removal of its entry waits for the insertion.
    let mut open = shared.open.lock().unwrap_or_else(|e| e.into_inner());
    let task = tokio::spawn(connection::run(Arc::clone(shared), id, epoch, client));
    open.insert(id, task.abort_handle());
}
