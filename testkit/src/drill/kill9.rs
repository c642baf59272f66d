//! `kill9`: SIGKILL to the postmaster in the middle of the load, then a start, which runs
//! crash recovery. Commits are durable (`synchronous_commit = on`), so every acknowledged
//! write must survive.

use super::load_report::LoadReport;
use super::restart::{Fault, server_fault};
use super::setup::{Options, Size};
use crate::Result;

pub(super) async fn run(size: Size, options: Options) -> Result<LoadReport> {
    server_fault(size, Fault::Kill9, options).await
}
