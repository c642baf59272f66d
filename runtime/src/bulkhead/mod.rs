//! Bulkheads: concurrency limits with a bounded queue.
