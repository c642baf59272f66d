//! Pools the application built with sqlx, adopted as named pools.
//!
//! The runtime cannot change how a sqlx pool it did not build opens and checks its
//! connections: its size and timeouts were fixed when it was built, and its connect options
//! and hooks are the application's. Adopting takes the pool as it is, states those settings in
//! the pool's configuration so statistics, health and the connection budget tell the truth,
//! and runs ops on it like on any other pool.

use std::sync::Arc;

use sqlx::PgPool;

use super::events::EventSink;
use super::stats::Counters;
use super::{Parts, Pool, PoolConfig};
use crate::observer::Observer;
use crate::recovery::Servers;
use crate::secret::DatabaseUrl;

impl Pool {
    /// Adopts `sqlx`, its server watched through `servers`, reporting to `observer`, without
    /// the read replicas its configuration may name (`replica::attach` attaches them).
    pub(crate) fn adopted_plain(
        name: &str,
        mut config: PoolConfig,
        sqlx: PgPool,
        servers: &Servers,
        observer: &dyn Observer,
    ) -> Pool {
        config.adopting(&sqlx);
        let name: Arc<str> = Arc::from(name);
        let url = DatabaseUrl::from_options((*sqlx.connect_options()).clone());
        let password = config
            .password_file
            .as_ref()
            .map(|path| super::credentials::Source::File(path.into()));
        let parts = Parts {
            events: Arc::new(EventSink::new(name.clone())),
            counters: Arc::new(Counters::default()),
            name,
            config,
            url,
            password,
            sqlx,
            adopted: true,
            hosts: None,
        };
        Pool::assemble(parts, servers, observer)
    }
}

impl PoolConfig {
    /// The settings an adopted sqlx pool fixed when it was built, in place of the configured
    /// ones: where it connects (`url`), `max`, `min`, `acquire_timeout`, `idle_timeout` and
    /// `max_lifetime`.
    pub fn adopting(&mut self, sqlx: &PgPool) {
        let options = sqlx.options();
        self.url = Some(DatabaseUrl::from_options((*sqlx.connect_options()).clone()));
        self.max = options.get_max_connections();
        self.min = options.get_min_connections();
        self.acquire_timeout = options.get_acquire_timeout();
        self.idle_timeout = options.get_idle_timeout();
        self.max_lifetime = options.get_max_lifetime();
    }
}
