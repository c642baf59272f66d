//! sqlx's `Executor` for an attempt's connection and transaction, so queries take them the way
//! sqlx users write a transaction: `&mut *tx` (as well as `&mut **tx` and `tx.as_mut()`).
//!
//! Each call hands the query to the `PgConnection` inside. `describe` (used by sqlx's
//! compile-time query macros, and required by the trait once any crate enables sqlx's
//! `offline` feature, which this crate does so the impl is complete either way) does the same.

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sqlx::postgres::{PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{Either, Execute, Executor, PgConnection, Postgres};
use sqlx_core::sql_str::SqlStr;

use super::conn::{Conn, Tx};

macro_rules! executor_through_the_connection {
    ($ty:ident) => {
        impl<'c, 'env> Executor<'c> for &'c mut $ty<'env> {
            type Database = Postgres;

            fn fetch_many<'e, 'q, E>(
                self,
                query: E,
            ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
            where
                'c: 'e,
                E: Execute<'q, Postgres>,
                'q: 'e,
                E: 'q,
            {
                let conn: &'c mut PgConnection = self;
                conn.fetch_many(query)
            }

            fn fetch_optional<'e, 'q, E>(
                self,
                query: E,
            ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
            where
                'c: 'e,
                E: Execute<'q, Postgres>,
                'q: 'e,
                E: 'q,
            {
                let conn: &'c mut PgConnection = self;
                conn.fetch_optional(query)
            }

            fn prepare_with<'e>(
                self,
                sql: SqlStr,
                parameters: &'e [PgTypeInfo],
            ) -> BoxFuture<'e, Result<PgStatement, sqlx::Error>>
            where
                'c: 'e,
            {
                let conn: &'c mut PgConnection = self;
                conn.prepare_with(sql, parameters)
            }

            fn describe<'e>(
                self,
                sql: SqlStr,
            ) -> BoxFuture<'e, Result<sqlx_core::describe::Describe<Postgres>, sqlx::Error>>
            where
                'c: 'e,
            {
                let conn: &'c mut PgConnection = self;
                conn.describe(sql)
            }
        }
    };
}

executor_through_the_connection!(Tx);
executor_through_the_connection!(Conn);
