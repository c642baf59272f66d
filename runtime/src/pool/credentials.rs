//! Passwords that change while the process runs: read from a file (a mounted secret) or asked
//! of a provider (a cloud IAM token), before the pool may open a connection.
//!
//! PostgreSQL checks a password only when a connection opens; connections already open keep
//! working after a rotation. So the password is fetched again whenever the next acquire may
//! open a connection (no idle one, room below `max`), and handed to sqlx's pool with
//! `Pool::set_connect_options`: sqlx 0.9 has no hook that runs before each connect, so this is
//! the closest point the runtime controls. Connections sqlx opens on its own to keep `min`
//! use the password fetched last.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;

/// Did the server refuse a connection for its password (`invalid_password`,
/// `invalid_authorization_specification`)?
pub(crate) fn refused(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "28P01" || code == "28000")
}

/// What a provider may fail with.
pub type ProviderError = Box<dyn std::error::Error + Send + Sync>;

/// Gives the password for the pool's next connection; called before the pool may open one
/// (see [`RuntimeBuilder::password_provider`](crate::RuntimeBuilder::password_provider)).
///
/// A provider that mints tokens (AWS RDS IAM, Azure AD, Cloud SQL) caches them for their
/// lifetime itself: the pool asks often, only when it may connect.
///
/// ```
/// use sqlx_resilience_runtime::{PasswordProvider, ProviderError};
/// use futures_util::future::BoxFuture;
///
/// struct Vault;
/// impl PasswordProvider for Vault {
///     fn password(&self) -> BoxFuture<'_, Result<String, ProviderError>> {
///         Box::pin(async { Ok(std::env::var("DB_TOKEN")?) })
///     }
/// }
/// ```
pub trait PasswordProvider: Send + Sync + 'static {
    /// The password to connect with now. Its error is reported with the pool's name; its
    /// text should not contain the secret.
    fn password(&self) -> BoxFuture<'_, Result<String, ProviderError>>;
}

/// Where a pool's password comes from when it changes while the process runs.
#[derive(Clone)]
pub(crate) enum Source {
    /// `password_file`: the file's contents, without a trailing line break.
    File(PathBuf),
    /// A provider given in code.
    Provider(Arc<dyn PasswordProvider>),
}

impl Source {
    /// Names the source in errors: the file's path, or "the password provider".
    pub(crate) fn describe(&self) -> String {
        match self {
            Source::File(path) => format!("password_file {}", path.display()),
            Source::Provider(_) => "the password provider".to_owned(),
        }
    }

    /// What to do when fetching fails.
    pub(crate) fn hint(&self) -> &'static str {
        match self {
            Source::File(_) => "check that the file exists, is readable and holds the password",
            Source::Provider(_) => {
                "check the provider's own error; it is asked again before the next connection"
            }
        }
    }

    /// The password now, or why it cannot be had (never the password itself).
    pub(crate) async fn fetch(&self) -> Result<String, String> {
        match self {
            Source::File(path) => {
                let text = tokio::fs::read_to_string(path)
                    .await
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let password = text.strip_suffix('\n').unwrap_or(&text);
                let password = password.strip_suffix('\r').unwrap_or(password);
                if password.is_empty() {
                    return Err(format!("{} is empty", path.display()));
                }
                Ok(password.to_owned())
            }
            Source::Provider(provider) => provider.password().await.map_err(|e| e.to_string()),
        }
    }
}

/// A pool's changing password: its source and the one last handed to sqlx.
pub(crate) struct Credentials {
    source: Source,
    /// The password last set on sqlx's pool, and the connect options it was set in: when
    /// something else replaced them since (a multi-host pool moving to another host), the
    /// password is set again.
    /// The options are held, not only compared, so their address cannot be reused.
    current: Mutex<Option<(String, Arc<PgConnectOptions>)>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("source", &self.source.describe())
            .finish_non_exhaustive()
    }
}

impl Source {
    /// The error for a failed fetch at `site`.
    pub(crate) fn failed(&self, site: &crate::error::Site, reason: String) -> crate::error::Error {
        crate::error::Error::Credentials {
            site: site.clone(),
            source_name: self.describe(),
            reason,
            hint: self.hint().to_owned(),
        }
    }
}

impl Credentials {
    pub(crate) fn new(source: Source) -> Credentials {
        Credentials {
            source,
            current: Mutex::new(None),
        }
    }

    /// Fetches the password and, when it changed, sets it on `sqlx`'s connect options (which
    /// keep their host, which may have changed meanwhile). The error says why it could not
    /// be fetched, without the password.
    pub(crate) async fn refresh(&self, sqlx: &PgPool) -> Result<(), String> {
        let password = self.source.fetch().await?;
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let options = sqlx.connect_options();
        let unchanged = current
            .as_ref()
            .is_some_and(|(p, set)| *p == password && Arc::ptr_eq(set, &options));
        if !unchanged {
            sqlx.set_connect_options(options.as_ref().clone().password(&password));
            *current = Some((password, sqlx.connect_options()));
        }
        Ok(())
    }

    pub(crate) fn source(&self) -> &Source {
        &self.source
    }
}

/// Password providers given in code, by pool name.
#[derive(Clone, Default)]
pub(crate) struct Providers(Vec<(String, Arc<dyn PasswordProvider>)>);

impl Providers {
    pub(crate) fn set(&mut self, pool: &str, provider: Arc<dyn PasswordProvider>) {
        self.0.retain(|(name, _)| name != pool);
        self.0.push((pool.to_owned(), provider));
    }

    pub(crate) fn get(&self, pool: &str) -> Option<Arc<dyn PasswordProvider>> {
        self.0
            .iter()
            .find(|(name, _)| name == pool)
            .map(|(_, provider)| provider.clone())
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(name, _)| name.as_str())
    }
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}
