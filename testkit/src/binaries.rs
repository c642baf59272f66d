//! Finding the PostgreSQL server binaries (`initdb`, `postgres`) of one installed version.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::Result;
use crate::command::run_bounded;
use crate::error::no_binaries;

/// The environment variable naming the directory that holds `initdb` and `postgres`.
pub const BINDIR_ENV: &str = "SQLX_RESILIENCE_PG_BINDIR";

/// The server binaries of one PostgreSQL version.
#[derive(Debug, Clone)]
pub(crate) struct Binaries {
    pub(crate) bindir: PathBuf,
    pub(crate) initdb: PathBuf,
    pub(crate) postgres: PathBuf,
    /// The major version, such as 15.
    pub(crate) major: u32,
    /// Where the version keeps its extension libraries (`pg_config --pkglibdir`), when known.
    pub(crate) pkglibdir: Option<PathBuf>,
}

impl Binaries {
    /// Whether `pg_stat_statements` can be preloaded by this version.
    pub(crate) fn has_pg_stat_statements(&self) -> bool {
        self.pkglibdir
            .as_ref()
            .is_some_and(|dir| dir.join("pg_stat_statements.so").is_file())
    }
}

/// Where to look, in order. Built from the environment by [`Search::from_env`]; tests build
/// their own.
#[derive(Debug, Clone)]
pub(crate) struct Search {
    /// A directory chosen by the user: the only place searched when set.
    pub(crate) explicit: Option<(PathBuf, &'static str)>,
    /// The `PATH` to search for `initdb` and `pg_config`.
    pub(crate) path: Option<OsString>,
    /// Roots holding one `<version>/bin` per installed version (Debian's layout).
    pub(crate) versioned_roots: Vec<PathBuf>,
}

impl Search {
    /// The default search: `explicit` (from [`crate::ServerOptions::bindir`]), else
    /// `SQLX_RESILIENCE_PG_BINDIR`, else `PATH`, `pg_config --bindir` and
    /// `/usr/lib/postgresql/*/bin`, newest version first.
    pub(crate) fn from_env(explicit: Option<PathBuf>) -> Search {
        let explicit = match explicit {
            Some(dir) => Some((dir, "ServerOptions::bindir")),
            None => std::env::var_os(BINDIR_ENV)
                .filter(|v| !v.is_empty())
                .map(|v| (PathBuf::from(v), BINDIR_ENV)),
        };
        Search {
            explicit,
            path: std::env::var_os("PATH"),
            versioned_roots: vec![PathBuf::from("/usr/lib/postgresql")],
        }
    }

    /// Finds the binaries, or explains where it looked and what to install.
    pub(crate) fn find(&self) -> Result<Binaries> {
        if let Some((dir, origin)) = &self.explicit {
            return complete(dir).ok_or_else(|| {
                no_binaries(format!(
                    "{origin} is `{}`, which holds no `initdb` and `postgres`",
                    dir.display()
                ))
            });
        }
        let mut searched = Vec::new();
        let from_path = self.on_path("initdb").and_then(|initdb| {
            let real = initdb.canonicalize().unwrap_or(initdb);
            real.parent().map(Path::to_path_buf)
        });
        searched.push(match &from_path {
            Some(dir) => format!("PATH (initdb in {})", dir.display()),
            None => "PATH (no initdb)".to_owned(),
        });
        if let Some(found) = from_path.as_deref().and_then(complete) {
            return Ok(found);
        }
        match self.pg_config_bindir() {
            Some(dir) => {
                if let Some(found) = complete(&dir) {
                    return Ok(found);
                }
                searched.push(format!("pg_config --bindir ({})", dir.display()));
            }
            None => searched.push("pg_config --bindir (no pg_config on PATH)".to_owned()),
        }
        for root in &self.versioned_roots {
            let dirs = versioned_bindirs(root);
            if dirs.is_empty() {
                searched.push(format!("{}/*/bin (none)", root.display()));
            }
            for dir in dirs {
                if let Some(found) = complete(&dir) {
                    return Ok(found);
                }
                searched.push(dir.display().to_string());
            }
        }
        Err(no_binaries(format!(
            "no PostgreSQL server binaries (initdb, postgres) found; searched {}",
            searched.join(", ")
        )))
    }

    fn on_path(&self, name: &str) -> Option<PathBuf> {
        let path = self.path.as_ref()?;
        std::env::split_paths(path)
            .map(|dir| dir.join(name))
            .find(|candidate| is_executable(candidate))
    }

    fn pg_config_bindir(&self) -> Option<PathBuf> {
        let pg_config = self.on_path("pg_config")?;
        pg_config_value(&pg_config, "--bindir")
    }
}

/// The binaries in `dir`, when both are there, with their version and library directory.
fn complete(dir: &Path) -> Option<Binaries> {
    let initdb = dir.join("initdb");
    let postgres = dir.join("postgres");
    if !is_executable(&initdb) || !is_executable(&postgres) {
        return None;
    }
    let bindir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let major = major_version(&postgres).unwrap_or(0);
    let pkglibdir = pkglibdir(&bindir);
    Some(Binaries {
        bindir,
        initdb,
        postgres,
        major,
        pkglibdir,
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `<root>/<version>/bin` for every version under `root`, newest first.
fn versioned_bindirs(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let key = name
                .split('.')
                .map(|part| part.parse::<u32>().ok())
                .collect::<Option<Vec<u32>>>()?;
            Some((key, e.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

/// The major version printed by `postgres --version` ("postgres (PostgreSQL) 15.18 (Debian)").
fn major_version(postgres: &Path) -> Option<u32> {
    let out = run_bounded(
        Command::new(postgres).arg("--version"),
        Duration::from_secs(10),
    )
    .ok()?;
    parse_major(&String::from_utf8_lossy(&out.stdout))
}

fn parse_major(text: &str) -> Option<u32> {
    let after = text.split(')').nth(1)?.trim_start();
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn pg_config_value(pg_config: &Path, flag: &str) -> Option<PathBuf> {
    let out = run_bounded(Command::new(pg_config).arg(flag), Duration::from_secs(10)).ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (!text.is_empty()).then(|| PathBuf::from(text))
}

/// The library directory of the version in `bindir`: its own `pg_config`, a `pg_config` on
/// `PATH` that reports the same bindir, or Debian's `<bindir>/../lib`.
fn pkglibdir(bindir: &Path) -> Option<PathBuf> {
    let own = bindir.join("pg_config");
    if is_executable(&own) {
        return pg_config_value(&own, "--pkglibdir");
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("pg_config"))
            .find(|candidate| is_executable(candidate))
    });
    if let Some(pg_config) = on_path {
        let same = pg_config_value(&pg_config, "--bindir")
            .and_then(|dir| dir.canonicalize().ok())
            .is_some_and(|dir| dir == bindir);
        if same {
            return pg_config_value(&pg_config, "--pkglibdir");
        }
    }
    let sibling = bindir.parent()?.join("lib");
    sibling.is_dir().then_some(sibling)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nowhere() -> Search {
        Search {
            explicit: None,
            path: Some(OsString::new()),
            versioned_roots: vec![PathBuf::from("/nonexistent/sqlx-resilience-test")],
        }
    }

    #[test]
    fn nothing_found_says_what_to_install_and_where_it_looked() {
        let message = nowhere().find().unwrap_err().to_string();
        assert!(message.contains("apt-get install postgresql"), "{message}");
        assert!(message.contains("DATABASE_URL"), "{message}");
        assert!(message.contains(BINDIR_ENV), "{message}");
        assert!(message.contains("PATH (no initdb)"), "{message}");
        assert!(message.contains("no pg_config on PATH"), "{message}");
        assert!(
            message.contains("/nonexistent/sqlx-resilience-test/*/bin"),
            "{message}"
        );
    }

    #[test]
    fn an_explicit_directory_without_binaries_is_named() {
        let search = Search {
            explicit: Some((PathBuf::from("/nonexistent/bin"), BINDIR_ENV)),
            ..nowhere()
        };
        let message = search.find().unwrap_err().to_string();
        assert!(message.contains("`/nonexistent/bin`"), "{message}");
        assert!(message.contains(BINDIR_ENV), "{message}");
        assert!(message.contains("apt-get install postgresql"), "{message}");
    }

    #[test]
    fn versions_sort_newest_first() {
        let root = std::env::temp_dir().join(format!(
            "sqlx-resilience-binaries-test-{}",
            std::process::id()
        ));
        for v in ["9.6", "15", "10", "not-a-version"] {
            std::fs::create_dir_all(root.join(v)).unwrap();
        }
        let dirs = versioned_bindirs(&root);
        std::fs::remove_dir_all(&root).unwrap();
        let names: Vec<_> = dirs
            .iter()
            .map(|d| d.parent().unwrap().file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["15", "10", "9.6"]);
    }

    #[test]
    fn parses_the_major_version() {
        assert_eq!(
            parse_major("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
            Some(15)
        );
        assert_eq!(parse_major("postgres (PostgreSQL) 9.6.24\n"), Some(9));
        assert_eq!(parse_major("garbage"), None);
    }
}
