//! Bulk loading with `COPY ... FROM STDIN`, in batches, under an op's policies.
//!
//! [`Op::copy_in`] cuts [`CopyRows`] into batches and sends each batch as one transaction of
//! the op: a batch is committed whole or not at all, so the op's retry policy may run a batch
//! again without duplicating a row (the transaction of a failed attempt rolled back). Only a
//! failure during `COMMIT` leaves a batch's outcome unknown; it ends the load as
//! [`Error::UnknownOutcome`] inside [`Error::Copy`], which says how many rows were committed
//! before, so the caller can resume from there.
//!
//! ```no_run
//! # async fn load(rt: &sqlx_resilience_runtime::Runtime) -> sqlx_resilience_runtime::Result<()> {
//! use sqlx_resilience_runtime::copy::CopyRows;
//!
//! let mut rows = CopyRows::new();
//! for id in 0..100_000i64 {
//!     rows.push([Some(id.to_string()), Some(format!("post {id}"))]);
//! }
//! let op = rt.op("kol::load_posts").pool("batch").retry("transient").build()?;
//! let done = op.copy_in("COPY posts (id, body) FROM STDIN", &rows, 5_000).await?;
//! assert_eq!(done.rows, 100_000);
//! # Ok(()) }
//! ```

mod rows;

use std::time::{Duration, Instant};

pub use self::rows::CopyRows;
use crate::error::{Error, Result};
use crate::op::Op;

/// What a load did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CopyReport {
    /// Rows committed.
    pub rows: u64,
    /// Batches committed, each one transaction.
    pub batches: u64,
    /// How long the whole load took.
    pub elapsed: Duration,
}

impl Op {
    /// Loads `rows` with `statement` (`COPY table (columns) FROM STDIN`, text format), at most
    /// `rows_per_batch` rows a transaction, each batch under this op's policies (timeout,
    /// deadline and retry apply per batch). Batches run one after another on one connection
    /// at a time.
    ///
    /// On a failure, the batches before it stay committed and the error is [`Error::Copy`],
    /// with the rows committed so far.
    pub async fn copy_in(
        &self,
        statement: &str,
        rows: &CopyRows,
        rows_per_batch: usize,
    ) -> Result<CopyReport> {
        let started = Instant::now();
        let mut report = CopyReport {
            rows: 0,
            batches: 0,
            elapsed: Duration::ZERO,
        };
        for (text, count) in rows.batches(rows_per_batch) {
            let text = text.as_str();
            let sent: Result<u64> = self
                .run_tx(move |tx| {
                    Box::pin(async move {
                        let mut copy = tx.as_mut().copy_in_raw(statement).await?;
                        copy.send(text.as_bytes()).await?;
                        Ok(copy.finish().await?)
                    })
                })
                .await;
            match sent {
                Ok(n) => {
                    report.rows += n;
                    report.batches += 1;
                }
                Err(source) => {
                    return Err(Error::Copy {
                        op: self.name(),
                        committed_rows: report.rows,
                        committed_batches: report.batches,
                        batch_rows: count,
                        source: Box::new(source),
                    });
                }
            }
        }
        report.elapsed = started.elapsed();
        Ok(report)
    }
}
