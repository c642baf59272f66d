use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Runtime;
use crate::error::{Error, Result};

impl Runtime {
    /// Shuts down gracefully: new ops fail at once with [`Error::ShuttingDown`], ops in flight
    /// get until `deadline` to finish, then every pool is closed. Returns
    /// [`Error::ShutdownTimeout`] when ops were still running at the deadline (the pools are
    /// closed anyway; those ops fail with [`Error::PoolClosed`] or lose their connection).
    ///
    /// Background writes go first: new ones are refused, and those accepted are made while
    /// the deadline allows (`crate::background`); any not made by then are reported to the
    /// dropped-write hook, and shutdown returns [`Error::BackgroundUnwritten`] (unless ops
    /// were abandoned too: then [`Error::ShutdownTimeout`]).
    pub async fn shutdown(&self, deadline: Duration) -> Result<()> {
        let shared = &self.shared;
        let until = tokio::time::Instant::now() + deadline;
        let unwritten = shared.background.drain(until).await;
        shared.closing.store(true, Ordering::Release);
        let wait = async {
            loop {
                let drained = shared.drained.notified();
                if shared.in_flight.load(Ordering::Acquire) == 0 {
                    return;
                }
                drained.await;
            }
        };
        let finished = tokio::time::timeout_at(until, wait).await.is_ok();
        let in_flight = shared.in_flight.load(Ordering::Acquire);
        // No more probing, and nobody left waiting for a server.
        shared.servers.close();
        for pool in self.pools() {
            if finished {
                pool.close().await;
            } else {
                // Connections held by abandoned ops would keep close() waiting: close in the
                // background and return now.
                let pool = pool.clone();
                tokio::spawn(async move { pool.close().await });
            }
        }
        tracing::info!(finished, in_flight, unwritten, "runtime shut down");
        if finished && unwritten > 0 {
            Err(Error::BackgroundUnwritten {
                deadline,
                unwritten,
            })
        } else if finished {
            Ok(())
        } else {
            Err(Error::ShutdownTimeout {
                deadline,
                in_flight,
            })
        }
    }
}
