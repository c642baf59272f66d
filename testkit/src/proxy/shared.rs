//! What the proxy handle, its accept loop and its connections share.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::AbortHandle;

/// The faults in force; every connection reads them for each chunk it forwards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Faults {
    pub(crate) latency_to_server: Duration,
    pub(crate) latency_to_client: Duration,
    pub(crate) blackhole: bool,
    pub(crate) bandwidth: Option<u64>,
}

/// State shared by the proxy handle, its accept loop and its connections.
pub(crate) struct Shared {
    pub(crate) upstream: SocketAddr,
    pub(crate) faults: watch::Sender<Faults>,
    /// Bumped by [`FaultProxy::reset`](super::FaultProxy::reset); a connection accepted at an
    /// older value resets.
    pub(crate) resets: watch::Sender<u64>,
    pub(crate) open: Mutex<HashMap<u64, AbortHandle>>,
    pub(crate) next_id: AtomicU64,
    pub(crate) accepted: AtomicU64,
    pub(crate) bytes_to_server: AtomicU64,
    pub(crate) bytes_to_client: AtomicU64,
}
