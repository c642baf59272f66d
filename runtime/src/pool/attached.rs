//! What a layer built on a pool keeps with it, without the pool knowing the layer: the pool
//! holds it, closes it when it closes, and hands it back to the layer, which downcasts it
//! (`Attached: Any`). The read replicas are attached this way, so `pool` never imports
//! `pool::replica`, which builds each replica as a pool.

use std::any::Any;

use futures_util::future::BoxFuture;

/// Attached to a pool; closed with it.
pub(crate) trait Attached: Any + Send + Sync {
    /// Closes what it holds (the replicas' pools, its background tasks).
    fn close(&self) -> BoxFuture<'_, ()>;
}
