//! Running an example program as its users would, for the tests that hold what it prints to
//! the claims it makes: it must exit 0 and leave no throwaway server directory behind, and a
//! seed example ends with one JSON line of KPIs ([`KpiLine`]). The assertions at the end
//! ([`assert_line`], [`kpi_line`], [`kpi`], [`kpi_number`]) panic with the example's output,
//! for use in tests.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx_resilience_runtime::Error;

use crate::Result;
use crate::cleanup::DIR_PREFIX;

/// How long the test kit's watchdog may take to remove a finished example's server directory.
const CLEANUP_LIMIT: Duration = Duration::from_secs(15);

/// What an example printed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ExampleOutput {
    /// Its standard output.
    pub stdout: String,
    /// Its standard error (its log).
    pub stderr: String,
}

impl ExampleOutput {
    /// Whether a line of standard output contains `text`.
    pub fn printed(&self, text: &str) -> bool {
        self.stdout.lines().any(|l| l.contains(text))
    }

    /// Whether a line of standard error contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.stderr.lines().any(|l| l.contains(text))
    }

    /// The last line of standard output as a seed's KPI line, `None` when it is not one.
    pub fn kpi_line(&self) -> Option<KpiLine<'_>> {
        KpiLine::parse(self.stdout.lines().last().unwrap_or_default())
    }
}

/// The example binary `name` that cargo built for the calling test's profile: a test's
/// executable is `target/<profile>/deps/<test>-<hash>` and examples are in
/// `target/<profile>/examples/`. `cargo test` builds a package's examples before its tests.
pub fn example_binary(name: &str) -> Result<PathBuf> {
    const ACTION: &str = "find the example's binary";
    let exe = std::env::current_exe()
        .map_err(|e| Error::test_kit(ACTION, e.to_string(), "run it from a test built by cargo"))?;
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples").join(name))
        .ok_or_else(|| {
            Error::test_kit(
                ACTION,
                format!("{} is not in target/<profile>/deps", exe.display()),
                "run it from a test built by cargo",
            )
        })?;
    if !bin.exists() {
        return Err(Error::test_kit(
            ACTION,
            format!("{} not found", bin.display()),
            format!(
                "`cargo test` on the example's package builds it; or `cargo build --example {name}`"
            ),
        ));
    }
    Ok(bin)
}

/// Runs the example `name` (see [`example_binary`]) to its end, without `DB__PROFILE` from
/// the caller's environment. Fails, with both outputs, when it exits non-zero or when its
/// throwaway server's directory is still there 15 s after it ended.
pub fn run_example(name: &str) -> Result<ExampleOutput> {
    const ACTION: &str = "run the example";
    let started = Instant::now();
    let child = Command::new(example_binary(name)?)
        .env_remove("DB__PROFILE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::test_kit(ACTION, format!("cannot start {name}: {e}"), "build it"))?;
    let pid = child.id();
    let output = child
        .wait_with_output()
        .map_err(|e| Error::test_kit(ACTION, format!("{name}'s output: {e}"), "run it again"))?;
    let out = ExampleOutput {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    eprintln!(
        "{name}: exit {:?} in {:.1}s",
        output.status.code(),
        started.elapsed().as_secs_f64()
    );
    if !output.status.success() {
        return Err(Error::test_kit(
            ACTION,
            format!(
                "{name} failed with {}\n--- stdout\n{}\n--- stderr\n{}",
                output.status, out.stdout, out.stderr
            ),
            "read its output above",
        ));
    }
    let left = leftovers(pid, CLEANUP_LIMIT);
    if !left.is_empty() {
        return Err(Error::test_kit(
            ACTION,
            format!("{name} left its server directory behind: {left:?}"),
            "every PgServer must be dropped or its process end; see the test kit's cleanup",
        ));
    }
    Ok(out)
}

/// The throwaway server directories of process `pid` still in the temp directory after
/// waiting up to `limit` for the watchdog to remove them.
fn leftovers(pid: u32, limit: Duration) -> Vec<String> {
    let prefix = format!("{DIR_PREFIX}{pid}-");
    let deadline = Instant::now() + limit;
    loop {
        let left: Vec<String> = std::fs::read_dir(std::env::temp_dir())
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&prefix))
                    .collect()
            })
            .unwrap_or_default();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A seed example's last line: one flat JSON object of its KPIs, `{"seed":"00N",...}`.
#[derive(Debug, Clone, Copy)]
pub struct KpiLine<'a> {
    line: &'a str,
}

impl std::fmt::Display for KpiLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.line)
    }
}

impl<'a> KpiLine<'a> {
    /// `line` when it is a KPI line.
    pub fn parse(line: &'a str) -> Option<KpiLine<'a>> {
        (line.starts_with("{\"seed\":") && line.ends_with('}')).then_some(KpiLine { line })
    }

    /// The whole line.
    pub fn as_str(&self) -> &'a str {
        self.line
    }

    /// The text of `key`'s value: a number or `true`/`false` as written, a string with its
    /// quotes, an array's inside.
    pub fn text(&self, key: &str) -> Option<&'a str> {
        let at = self.line.find(&format!("\"{key}\":"))?;
        let rest = &self.line[at + key.len() + 3..];
        if let Some(list) = rest.strip_prefix('[') {
            return Some(&list[..list.find(']')?]);
        }
        Some(&rest[..rest.find([',', '}'])?])
    }

    /// `key`'s value as a number.
    pub fn number(&self, key: &str) -> Option<f64> {
        self.text(key)?.parse().ok()
    }
}

/// Asserts that a line of `text` (what example `name` printed) contains `expected`.
///
/// # Panics
///
/// When none does, with the whole text.
pub fn assert_line(name: &str, text: &str, expected: &str) {
    assert!(
        text.lines().any(|l| l.contains(expected)),
        "example {name} did not print a line containing {expected:?}\n--- output\n{text}"
    );
}

/// The last line of `stdout` (what example `name` printed) as its KPI line.
///
/// # Panics
///
/// When that line is not a KPI line, with the whole output.
pub fn kpi_line<'a>(name: &str, stdout: &'a str) -> KpiLine<'a> {
    KpiLine::parse(stdout.lines().last().unwrap_or_default()).unwrap_or_else(|| {
        panic!("example {name} did not end with its KPI line\n--- stdout\n{stdout}")
    })
}

/// The text of `key`'s value in `line` (see [`KpiLine::text`]).
///
/// # Panics
///
/// When the line has no `key`.
pub fn kpi<'a>(line: KpiLine<'a>, key: &str) -> &'a str {
    line.text(key)
        .unwrap_or_else(|| panic!("no `{key}` in the KPI line {line}"))
}

/// `key`'s value in `line` as a number.
///
/// # Panics
///
/// When the line has no `key` or its value is not a number.
pub fn kpi_number(line: KpiLine<'_>, key: &str) -> f64 {
    line.number(key)
        .unwrap_or_else(|| panic!("`{key}` is not a number in {line}"))
}

#[cfg(test)]
mod tests {
    use super::KpiLine;

    #[test]
    fn a_kpi_line_gives_numbers_flags_and_lists() {
        let line =
            KpiLine::parse(r#"{"seed":"001","profiles_run":["a","b"],"ok":true,"rate":0.5}"#)
                .unwrap();
        assert_eq!(line.text("seed"), Some("\"001\""));
        assert_eq!(line.text("profiles_run"), Some("\"a\",\"b\""));
        assert_eq!(line.text("ok"), Some("true"));
        assert_eq!(line.number("rate"), Some(0.5));
        assert_eq!(line.text("missing"), None);
        assert!(KpiLine::parse("done in 1.0s").is_none());
    }
}
