//! [`TestDb`]: a database of its own for one test, made by [`PgServer::create_database`].

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx_resilience_runtime::{Error, redact};

use crate::Result;
use crate::admin::{self, block_on, ident, random_token};
use crate::server::PgServer;

/// A fresh database for one test, from [`PgServer::create_database`].
///
/// Dropping it drops the database (`DROP DATABASE .. WITH (FORCE)`, ending any connection
/// still open to it). The drop runs on a short-lived thread of its own, so it works in
/// synchronous code, in any runtime, and during a panic; failures are logged, not raised.
pub struct TestDb {
    server: PgServer,
    name: String,
    url: String,
    admin_url: String,
}

impl PgServer {
    /// A fresh database with a unique name (`t_<counter>_<random>`), owned by the `app` role
    /// (on an external server: by `DATABASE_URL`'s user). Dropped when the [`TestDb`] is.
    pub async fn create_database(&self) -> Result<TestDb> {
        static COUNTER: AtomicU64 = AtomicU64::new(1);
        let name = format!(
            "t_{}_{}",
            COUNTER.fetch_add(1, Ordering::Relaxed),
            random_token(8)
        );
        let owner = if self.is_throwaway() {
            " OWNER app"
        } else {
            ""
        };
        admin::execute(
            self.admin_url(),
            format!("CREATE DATABASE {}{owner}", ident(&name)),
        )
        .await
        .map_err(|detail| {
            Error::test_kit(
                "create a test database",
                detail,
                "check that the server is up and the user may create databases",
            )
        })?;
        Ok(TestDb::new(self.handle(), name))
    }
}

impl TestDb {
    pub(crate) fn new(server: PgServer, name: String) -> TestDb {
        let url = server.url_for(true, &name, None);
        let admin_url = server.url_for(false, &name, None);
        TestDb {
            server,
            name,
            url,
            admin_url,
        }
    }

    /// The database's name (`t_<counter>_<random>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL tests connect with: the `app` role (not a superuser), over TCP to the server.
    /// On an external server, `DATABASE_URL`'s user. It contains the password; `Debug` of
    /// `TestDb` redacts it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The superuser's URL to this database. It contains the password.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// [`TestDb::url`] with host and port replaced by `addr`: connect through a
    /// [`crate::FaultProxy`] listening there.
    pub fn url_via(&self, addr: SocketAddr) -> String {
        self.server
            .url_for(true, &self.name, Some(&addr.to_string()))
    }

    /// The server holding this database, with its controls.
    pub fn server(&self) -> &PgServer {
        &self.server
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // A stopped throwaway cluster has nothing to drop, and its directory goes with it.
        if self.server.is_throwaway() && self.server.postmaster_pid().is_none() {
            return;
        }
        let maintenance = self.server.admin_url().to_owned();
        let name = ident(&self.name);
        let statements = if self.server.version_num() >= 130_000 {
            vec![format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")]
        } else {
            vec![
                format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {}",
                    admin::literal(&self.name)
                ),
                format!("DROP DATABASE IF EXISTS {name}"),
            ]
        };
        let result = block_on(async {
            let mut conn = admin::connect(&maintenance).await?;
            let mut result = Ok(());
            for sql in statements {
                result = admin::run(&mut conn, sql).await;
                if result.is_err() {
                    break;
                }
            }
            let _ = sqlx::Connection::close(conn).await;
            result
        });
        if let Err(e) = result {
            if self.server.is_throwaway() {
                tracing::debug!(database = %self.name, "cannot drop a test database: {e}");
            } else {
                tracing::warn!(database = %self.name, "cannot drop a test database: {e}");
            }
        }
    }
}

impl fmt::Debug for TestDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestDb")
            .field("name", &self.name)
            .field("url", &redact(&self.url))
            .field("server", &self.server)
            .finish()
    }
}
