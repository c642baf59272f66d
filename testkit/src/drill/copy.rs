//! `copy`: rows a second loading one table three ways through the op API on one server, one
//! after another: `COPY ... FROM STDIN` in batches ([`Op::copy_in`]), batched inserts
//! (`insert ... select * from unnest($1, $2)`, one statement a batch) and one insert a row.

use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::Connection;
use sqlx_resilience_runtime::copy::CopyRows;
use sqlx_resilience_runtime::{Error, Op, PolicyKind, Runtime};

use super::figures::round1;
use super::load::connect;
use super::setup::{APP, Size, close};
use crate::{PgServer, Result, ServerOptions};

/// The `copy` drill's figures.
#[derive(Debug, Clone, Serialize)]
pub struct CopyBench {
    /// `copy`.
    pub scenario: &'static str,
    /// Rows loaded by COPY and by batched inserts.
    pub rows: u64,
    /// Rows loaded one insert at a time (fewer: it is slow).
    pub single_rows: u64,
    /// Rows in a batch, for COPY and batched inserts.
    pub batch: usize,
    /// COPY, rows a second.
    pub copy_rows_s: f64,
    /// Batched inserts, rows a second.
    pub batched_insert_rows_s: f64,
    /// One insert a row, rows a second.
    pub single_insert_rows_s: f64,
    /// COPY against batched inserts.
    pub copy_vs_batched: f64,
    /// COPY against one insert a row.
    pub copy_vs_single: f64,
}

fn body(id: i64) -> String {
    format!("post {id}: a line of text about as long as a short social media post")
}

pub(super) async fn run(size: Size) -> Result<CopyBench> {
    let rows = size.pick(20_000i64, 200_000);
    let single_rows = size.pick(1_000i64, 10_000);
    let batch = 5_000usize;
    let server =
        PgServer::start_with(ServerOptions::new().setting("synchronous_commit", "on")).await?;
    let db = server.create_database().await?;
    {
        let mut conn = connect(db.url(), "create the copy drill's tables").await?;
        let made = sqlx::raw_sql(
            "create table copied (id bigint not null, body text not null);
             create table batched (id bigint not null, body text not null);
             create table single (id bigint not null, body text not null);",
        )
        .execute(&mut conn)
        .await;
        let _ = conn.close().await;
        made.map_err(|e| {
            Error::test_kit("create the copy drill's tables", e, "a bug in the drill")
        })?;
    }
    let rt = Runtime::builder()
        .url(db.url())
        .env_vars(Vec::<(String, String)>::new())
        .pool(
            "drill",
            &[("application_name", APP.into()), ("max", 2u32.into())],
        )
        .declare(PolicyKind::Retry, "drill", &[])
        .build()
        .await?;
    let op = |name: &'static str| -> Result<Op> {
        rt.op(name)
            .pool("drill")
            .retry("drill")
            .timeout(Duration::from_secs(60))
            .build()
    };

    let mut copy_rows = CopyRows::new();
    for id in 0..rows {
        copy_rows.push([Some(id.to_string()), Some(body(id))]);
    }
    let started = Instant::now();
    let report = op("drill::copy")?
        .copy_in("COPY copied (id, body) FROM STDIN", &copy_rows, batch)
        .await?;
    let copy_s = started.elapsed();
    tracing::info!(
        rows = report.rows,
        ms = copy_s.as_millis() as u64,
        "COPY done"
    );

    let insert = op("drill::insert_batch")?;
    let started = Instant::now();
    for chunk in (0..rows).collect::<Vec<_>>().chunks(batch) {
        let ids = chunk.to_vec();
        let bodies: Vec<String> = chunk.iter().map(|id| body(*id)).collect();
        insert
            .run_tx(move |tx| {
                let (ids, bodies) = (ids.clone(), bodies.clone());
                Box::pin(async move {
                    sqlx::query(
                        "insert into batched (id, body) select * from unnest($1::int8[], $2::text[])",
                    )
                    .bind(ids)
                    .bind(bodies)
                    .execute(tx.as_mut())
                    .await?;
                    Ok::<_, Error>(())
                })
            })
            .await?;
    }
    let batched_s = started.elapsed();
    tracing::info!(ms = batched_s.as_millis() as u64, "batched inserts done");

    let one = op("drill::insert_one")?;
    let started = Instant::now();
    for id in 0..single_rows {
        one.run_tx(move |tx| {
            Box::pin(async move {
                sqlx::query("insert into single (id, body) values ($1, $2)")
                    .bind(id)
                    .bind(body(id))
                    .execute(tx.as_mut())
                    .await?;
                Ok::<_, Error>(())
            })
        })
        .await?;
    }
    let single_s = started.elapsed();
    close(&rt).await;
    // Every row arrived, once, each way.
    let mut conn = connect(db.url(), "count the copy drill's rows").await?;
    let counted: std::result::Result<(i64, i64, i64), sqlx::Error> = sqlx::query_as(
        "select (select count(distinct id) from copied), (select count(distinct id) from batched),
                (select count(distinct id) from single)",
    )
    .fetch_one(&mut conn)
    .await;
    let _ = conn.close().await;
    let counted = counted
        .map_err(|e| Error::test_kit("count the copy drill's rows", e, "a bug in the drill"))?;
    if counted != (rows, rows, single_rows) {
        return Err(Error::test_kit(
            "count the copy drill's rows",
            format!(
                "{counted:?} rows (copied, batched, single), not ({rows}, {rows}, {single_rows})"
            ),
            "a load lost rows: this is a bug in the runtime or the drill",
        ));
    }
    drop(db);
    drop(server);

    let per_s = |n: i64, d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
    let (c, b, s) = (
        per_s(rows, copy_s),
        per_s(rows, batched_s),
        per_s(single_rows, single_s),
    );
    Ok(CopyBench {
        scenario: "copy",
        rows: rows.unsigned_abs(),
        single_rows: single_rows.unsigned_abs(),
        batch,
        copy_rows_s: round1(c),
        batched_insert_rows_s: round1(b),
        single_insert_rows_s: round1(s),
        copy_vs_batched: round1(c / b.max(1e-9)),
        copy_vs_single: round1(c / s.max(1e-9)),
    })
}
