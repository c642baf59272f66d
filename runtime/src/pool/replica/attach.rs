//! A pool with its read replicas: the constructors of [`Pool`] that build the replicas its
//! configuration names and attach them to it. They live here, not in `pool`, because a
//! replica is a pool of its own: `pool` builds one pool, and this module builds on it.

use std::sync::Arc;

use sqlx::PgPool;

use super::Replicas;
use crate::error::Result;
use crate::observer::{Observer, Unobserved};
use crate::pool::{PasswordProvider, Pool, PoolConfig, password_source};
use crate::recovery::Servers;
use crate::secret::DatabaseUrl;

impl Pool {
    /// Builds a pool without connecting; call [`Pool::start`] to open connections eagerly.
    /// A pool built on its own reports to no observer: its figures are in [`Pool::stats`];
    /// the pools a runtime builds also report each acquire and release to the runtime's
    /// observer (which records the connection histograms).
    ///
    /// The pool watches its server on its own; pools built by a runtime share one watch per
    /// server (see `crate::recovery`).
    pub fn new(name: &str, config: PoolConfig, default_url: Option<&DatabaseUrl>) -> Result<Pool> {
        Pool::watched(name, config, default_url, &Servers::default(), &Unobserved)
    }

    /// Builds a pool whose server is watched through `servers`.
    pub(crate) fn watched(
        name: &str,
        config: PoolConfig,
        default_url: Option<&DatabaseUrl>,
        servers: &Servers,
        observer: &dyn Observer,
    ) -> Result<Pool> {
        Pool::watched_with(name, config, default_url, servers, observer, None)
    }

    /// Builds a pool whose server is watched through `servers`, asking `provider` (when
    /// given) for the password before it may open a connection.
    pub(crate) fn watched_with(
        name: &str,
        config: PoolConfig,
        default_url: Option<&DatabaseUrl>,
        servers: &Servers,
        observer: &dyn Observer,
        provider: Option<Arc<dyn PasswordProvider>>,
    ) -> Result<Pool> {
        let password = password_source(&config, provider);
        let pool = Pool::built(name, config, default_url, servers, observer, password)?;
        attach(&pool, servers)?;
        Ok(pool)
    }

    /// A named pool around a sqlx pool the application built (gradual migration, test
    /// fixtures such as `#[sqlx::test]`'s). Ops, statistics, leak detection and the server's
    /// health watch work as on a pool the runtime built; what the runtime cannot apply to it
    /// is listed in `docs/ADOPTING.md`. `config`'s sizing keys are replaced by the pool's own
    /// (see [`PoolConfig::adopting`]).
    pub fn adopt(name: &str, config: PoolConfig, sqlx: PgPool) -> Pool {
        Pool::adopted(name, config, sqlx, &Servers::default(), &Unobserved)
    }

    /// Adopts `sqlx`, its server watched through `servers`, reporting to `observer`; the
    /// replicas its configuration names are attached, or left out with a warning (an adopted
    /// pool is the application's, and its start does not fail on them).
    pub(crate) fn adopted(
        name: &str,
        config: PoolConfig,
        sqlx: PgPool,
        servers: &Servers,
        observer: &dyn Observer,
    ) -> Pool {
        let pool = Pool::adopted_plain(name, config, sqlx, servers, observer);
        if let Err(e) = attach(&pool, servers) {
            tracing::warn!(pool = %name, error = %e, "replicas of an adopted pool left out");
        }
        pool
    }
}

/// Builds the replicas `pool`'s configuration names, if any, and attaches them.
fn attach(pool: &Pool, servers: &Servers) -> Result<()> {
    let name = &pool.shared.name;
    let host_list = pool.url().host_list(&format!("pools.{name}.url"))?;
    let replicas = Replicas::build(
        name,
        pool.config(),
        (*pool.sqlx().connect_options()).clone(),
        host_list.as_ref(),
        servers,
        pool.password_source(),
    )?;
    if let Some(replicas) = replicas {
        pool.attach(replicas);
    }
    Ok(())
}

impl Pool {
    /// Its read replicas, if it names any.
    pub(crate) fn replicas(&self) -> Option<&Replicas> {
        let attached: &dyn std::any::Any = self.attached()?.as_ref();
        attached.downcast_ref::<Replicas>()
    }
}
