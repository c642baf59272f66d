use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};

use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use tokio::sync::Notify;

use super::{Runtime, Shared};
use crate::breaker::CircuitBreaker;
use crate::bulkhead::Bulkhead;
use crate::config::{FileSource, PolicySet, RuntimeConfig, Sources, Value};
use crate::error::{Error, PolicyKind, Result};
use crate::limiter::RateLimiter;
use crate::observer::{MakeObserver, Unobserved};
use crate::pool::{PasswordProvider, Pool, Providers, Startup};
use crate::retry::RetryPolicy;
use crate::secret::DatabaseUrl;

/// Builds a [`Runtime`]: declarations from code, then a configuration file, its profile and
/// environment variables, checked as a whole before anything connects.
///
/// The names come from every `policies!` in the program, found without being told; code that
/// declares names itself ([`policies`](Self::policies), [`declare`](Self::declare),
/// [`pool`](Self::pool)) uses exactly those instead (a test building a runtime of its own, or a
/// program with several runtimes over different names). Every `#[db_op]` in the program is
/// resolved against the runtime when it is built: a call then finds its pool and policies by
/// index, with no lookup.
#[derive(Debug, Clone)]
pub struct RuntimeBuilder {
    sources: Sources,
    /// sqlx pools the application built, by the declared pool name they stand for.
    adopted: Vec<(String, PgPool)>,
    /// Password providers, by pool name.
    providers: Providers,
    observer: MakeObserver,
}

impl RuntimeBuilder {
    /// A builder whose runtime reports to no observer ([`Runtime::builder`] gives it one).
    pub(crate) fn new() -> Self {
        RuntimeBuilder {
            sources: Sources::default(),
            adopted: Vec::new(),
            providers: Providers::default(),
            observer: || Arc::new(Unobserved),
        }
    }

    /// The runtime's ops and pools report to the observer `make` returns.
    pub(crate) fn observed_by(mut self, make: MakeObserver) -> Self {
        self.observer = make;
        self
    }

    /// The server URL every pool uses unless it has its own (otherwise `url` from the
    /// configuration, `PREFIX__URL`, or `DATABASE_URL`).
    pub fn url(mut self, url: impl AsRef<str>) -> Self {
        self.sources
            .code
            .push(("url".into(), Value::Str(url.as_ref().to_owned())));
        self
    }

    /// The connect options every pool uses unless it has its own, as the application builds
    /// them for sqlx (host, credentials, TLS, `.pgpass`), instead of a URL. They win over a URL
    /// given in code; a `url` from the configuration file or the environment wins over them.
    /// `Debug` of the builder, the configuration and errors never shows their password.
    pub fn connect_options(mut self, options: PgConnectOptions) -> Self {
        self.sources
            .connect
            .push((None, DatabaseUrl::from_options(options)));
        self
    }

    /// Connect options for one declared pool (as [`connect_options`](Self::connect_options)
    /// for the runtime); the configuration's `pools.NAME.url` wins over them.
    pub fn pool_connect_options(mut self, pool: &str, options: PgConnectOptions) -> Self {
        self.sources
            .connect
            .push((Some(pool.to_owned()), DatabaseUrl::from_options(options)));
        self
    }

    /// Runs the ops of the declared pool `name` on a sqlx pool the application built, instead
    /// of building one: for moving an application over gradually (its other code keeps using
    /// the pool), and for test fixtures that hand each test a pool (`#[sqlx::test]`).
    ///
    /// The pool keeps the size, timeouts, connect options and hooks it was built with: the
    /// configuration's `url`, `max`, `min`, `acquire_timeout`, `idle_timeout` and
    /// `max_lifetime` for this pool are replaced by the pool's own, and the session settings
    /// the runtime sends when it opens a connection do not apply (`docs/ADOPTING.md` lists
    /// them). `startup` still decides whether `build` checks the server first. Shutting the
    /// runtime down closes the pool, as it closes its own.
    pub fn adopt_pool(mut self, name: &str, pool: PgPool) -> Self {
        self.adopted.retain(|(n, _)| n != name);
        self.adopted.push((name.to_owned(), pool));
        self
    }

    /// Asks `provider` for the password of pool `pool` before the pool may open a connection
    /// (rotating credentials such as cloud IAM tokens); it wins over `password_file` and a
    /// password in the URL. Connections already open keep working after a rotation:
    /// PostgreSQL checks a password only when a connection opens. A provider's failure is
    /// [`Error::Credentials`](crate::Error::Credentials), naming the pool; the password never
    /// appears in logs, errors or `Debug`.
    pub fn password_provider(mut self, pool: &str, provider: impl PasswordProvider) -> Self {
        self.providers.set(pool, Arc::new(provider));
        self
    }

    /// Declares every name in `set` with its default settings, instead of every `policies!`
    /// declaration in the program (see [`RuntimeBuilder`]).
    pub fn policies(mut self, set: PolicySet) -> Self {
        self.sources.declared.merge(&set);
        self
    }

    /// Declares one name with default settings, for code that does not use `policies!`.
    pub fn declare(mut self, kind: PolicyKind, name: &str, settings: &[(&str, Value)]) -> Self {
        self.sources.declared.declare(kind, name, settings, None);
        self
    }

    /// Declares a pool with default settings (`settings` as in the configuration file).
    pub fn pool(self, name: &str, settings: &[(&str, Value)]) -> Self {
        self.declare(PolicyKind::Pool, name, settings)
    }

    /// Sets one value by its full key (`pools.http.max`, `budget.instances`), as code; the file
    /// and the environment may still override it.
    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.sources.code.push((key.to_owned(), value.into()));
        self
    }

    /// Reads a TOML configuration file, which must exist.
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.sources.files.push(FileSource::Path {
            path: path.into(),
            required: true,
        });
        self
    }

    /// Reads a TOML configuration file if it exists.
    pub fn config_file_if_exists(mut self, path: impl Into<PathBuf>) -> Self {
        self.sources.files.push(FileSource::Path {
            path: path.into(),
            required: false,
        });
        self
    }

    /// Reads TOML configuration from text; `origin` names it in errors.
    pub fn config_toml(mut self, text: impl Into<String>, origin: impl Into<String>) -> Self {
        self.sources.files.push(FileSource::Text {
            text: text.into(),
            origin: origin.into(),
        });
        self
    }

    /// Reads environment variables named `PREFIX__SECTION__NAME__KEY` (such as
    /// `DB__POOLS__HTTP__MAX=200`) and `PREFIX__PROFILE`.
    pub fn env_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.sources.env_prefix = Some(prefix.into());
        self
    }

    /// Uses these variables instead of the process environment (for tests and tools).
    pub fn env_vars<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.sources.env_vars = Some(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// Selects a profile (`[profiles.NAME]` in the configuration file). `PREFIX__PROFILE` in
    /// the environment wins over this, and this over `profile = ...` in the file.
    pub fn profile(mut self, name: impl Into<String>) -> Self {
        self.sources.profile = Some(name.into());
        self
    }

    /// Resolves and checks the configuration without connecting.
    pub fn resolve(&self) -> Result<RuntimeConfig> {
        let mut config = self.with_declarations().resolve()?;
        for (name, pool) in &self.adopted {
            match config.pools.get_mut(name) {
                Some(cfg) => cfg.adopting(pool),
                None => return Err(crate::config::undeclared(&config, name, "adopt_pool")),
            }
        }
        for name in self.providers.names() {
            if !config.pools.contains_key(name) {
                return Err(crate::config::undeclared(
                    &config,
                    name,
                    "password_provider",
                ));
            }
            if self.adopted.iter().any(|(n, _)| n == name) {
                return Err(Error::config(
                    format!("pools.{name}"),
                    "a password provider and an adopted pool",
                    "one of them: an adopted pool connects with its own connect options \
                     (change its password with sqlx's `Pool::set_connect_options`)",
                    "password_provider",
                ));
            }
        }
        Ok(config)
    }

    /// The sources, with every `policies!` declaration of the program when code declared
    /// nothing itself.
    fn with_declarations(&self) -> std::borrow::Cow<'_, Sources> {
        if self.sources.declared.is_empty() {
            let mut sources = self.sources.clone();
            sources.declared = PolicySet::registered();
            std::borrow::Cow::Owned(sources)
        } else {
            std::borrow::Cow::Borrowed(&self.sources)
        }
    }

    /// Resolves the configuration, checks the connection budget against the server, builds
    /// the pools (opening eager ones) and the policies.
    pub async fn build(self) -> Result<Runtime> {
        let mut config = self.resolve()?;
        if config.pools.is_empty() {
            return Err(Error::Config {
                key: "pools".into(),
                value: "(none)".into(),
                expected: "at least one declared pool: declare it in policies! or with \
                           RuntimeBuilder::pool"
                    .into(),
                origin: "code".into(),
            });
        }
        let adopted: Vec<&str> = self.adopted.iter().map(|(n, _)| n.as_str()).collect();
        let budget = super::budget::check(&mut config, &adopted, &self.providers).await?;
        // The budget mode `scale` cannot shrink a pool the application built.
        for (name, pool) in &self.adopted {
            if let Some(cfg) = config.pools.get_mut(name) {
                cfg.adopting(pool);
            }
        }

        let default_url = config.settings.url.clone();
        let servers = crate::recovery::Servers::default();
        let observer = (self.observer)();
        let mut pools = HashMap::new();
        let mut order = Vec::new();
        for (name, cfg) in &config.pools {
            let pool = match self.adopted.iter().find(|(n, _)| n == name) {
                Some((_, sqlx)) => {
                    Pool::adopted(name, cfg.clone(), sqlx.clone(), &servers, &*observer)
                }
                None => Pool::watched_with(
                    name,
                    cfg.clone(),
                    default_url.as_ref(),
                    &servers,
                    &*observer,
                    self.providers.get(name),
                )?,
            };
            let key: Arc<str> = Arc::from(name.as_str());
            order.push(key.clone());
            pools.insert(key, pool);
        }
        for name in &order {
            let pool = &pools[name];
            if pool.config().startup == Startup::Eager {
                pool.start().await?;
            }
        }
        let breakers = build_named(&config.breakers, |n, c| {
            CircuitBreaker::try_new(n, c.clone()).map_err(|i| invalid("breakers", n, i))
        })?;
        let retries = build_named(&config.retries, |n, c| {
            RetryPolicy::try_new(n, c.clone()).map_err(|i| invalid("retries", n, i))
        })?;
        let limiters = build_named(&config.limiters, |n, c| {
            RateLimiter::try_new(n, c.clone()).map_err(|i| invalid("limiters", n, i))
        })?;
        let bulkheads = build_named(&config.bulkheads, |n, c| Ok(Bulkhead::new(n, c.clone())))?;
        let default_pool = config
            .settings
            .default_pool
            .as_deref()
            .and_then(|n| pools.get(n).cloned());
        let cache_max_entries = config.settings.cache_max_entries;
        let background =
            crate::background::BackgroundWrites::new(order.iter().map(|n| (n, pools[n].config())));

        let faults = crate::faults::Faults::from_config(&config.settings.faults)?;
        let rt = Runtime {
            shared: Arc::new(Shared {
                id: Runtime::next_id(),
                config,
                pools,
                pool_order: order,
                default_pool,
                breakers,
                retries,
                limiters,
                bulkheads,
                budget,
                closing: AtomicBool::new(false),
                in_flight: AtomicUsize::new(0),
                drained: Notify::new(),
                ops: Default::default(),
                observer,
                servers,
                faults,
                cache: crate::cache::ResultCache::new(u64::from(cache_max_entries)),
                background,
            }),
        };
        let _ = rt.shared.ops.set(crate::op::resolve_all(&rt));
        rt.check_ops_at_start()?;
        Ok(rt)
    }
}

fn build_named<C, T>(
    configs: &BTreeMap<String, C>,
    make: impl Fn(&str, &C) -> Result<T>,
) -> Result<HashMap<Arc<str>, Arc<T>>> {
    configs
        .iter()
        .map(|(name, c)| Ok((Arc::from(name.as_str()), Arc::new(make(name, c)?))))
        .collect()
}

fn invalid(section: &str, name: &str, i: crate::config::Invalid) -> Error {
    Error::Config {
        key: format!("{section}.{name}.{}", i.key),
        value: i.value,
        expected: i.expected,
        origin: "the combined settings".into(),
    }
}
