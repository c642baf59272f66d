//! Certificates for a throwaway server that speaks TLS: a certificate authority of its own
//! and a server certificate it signs for `127.0.0.1` and `localhost`, made with the `openssl`
//! command (it comes with Debian's `postgresql`, through `ssl-cert`). A second, unrelated
//! authority lets tests show that verification refuses a server it does not vouch for.
//!
//! The files live in the cluster's own directory, so they go when the cluster goes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sqlx_resilience_runtime::Error;

use crate::Result;
use crate::command::{RunAs, run_bounded};
use crate::scratch::make_subdir;

const ACTION: &str = "make TLS certificates for a throwaway PostgreSQL";

/// The certificate files of a server started with [`ServerOptions::tls`](crate::ServerOptions::tls).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The authority that signed the server's certificate: what a client verifies against
    /// (`sslrootcert`).
    pub root_cert: PathBuf,
    /// An authority that signed nothing the server holds: verifying against it must fail.
    pub other_root_cert: PathBuf,
    /// The server's certificate (`ssl_cert_file`).
    pub server_cert: PathBuf,
    /// The server's private key (`ssl_key_file`), readable by the server's user only.
    pub server_key: PathBuf,
}

impl TlsFiles {
    /// Makes the authorities and the server's certificate in `dir/tls`.
    pub(crate) fn make(dir: &Path, run_as: Option<&RunAs>) -> Result<TlsFiles> {
        let tls = dir.join("tls");
        make_subdir(&tls, None).map_err(|e| {
            crate::scratch::io_failure(ACTION, "create the certificate directory", &tls, e)
        })?;
        let files = TlsFiles {
            root_cert: tls.join("root.crt"),
            other_root_cert: tls.join("other-root.crt"),
            server_cert: tls.join("server.crt"),
            server_key: tls.join("server.key"),
        };
        let root_key = tls.join("root.key");
        let other_key = tls.join("other-root.key");
        let csr = tls.join("server.csr");
        let ext = tls.join("server.ext");
        std::fs::write(
            &ext,
            "subjectAltName = IP:127.0.0.1, DNS:localhost\nbasicConstraints = CA:FALSE\n",
        )
        .map_err(|e| crate::scratch::io_failure(ACTION, "write the extensions", &ext, e))?;
        for (key, cert, name) in [
            (&root_key, &files.root_cert, "sqlx-resilience test CA"),
            (&other_key, &files.other_root_cert, "unrelated test CA"),
        ] {
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                path(key),
                "-out",
                path(cert),
            ])?;
        }
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            path(&files.server_key),
            "-out",
            path(&csr),
        ])?;
        openssl(&[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            path(&csr),
            "-CA",
            path(&files.root_cert),
            "-CAkey",
            path(&root_key),
            "-CAcreateserial",
            "-extfile",
            path(&ext),
            "-out",
            path(&files.server_cert),
        ])?;
        // The server refuses a key that others may read, and must be able to read it itself.
        let own = |file: &Path| -> std::io::Result<()> {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))?;
            if let Some(user) = run_as {
                user.chown(file)?;
            }
            Ok(())
        };
        for file in [&files.server_key, &files.server_cert] {
            own(file).map_err(|e| {
                crate::scratch::io_failure(ACTION, "hand the file to the server's user", file, e)
            })?;
        }
        // The directory itself must be reachable by the server's user.
        if let Some(user) = run_as {
            user.chown(&tls).map_err(|e| {
                crate::scratch::io_failure(
                    ACTION,
                    "hand the directory to the server's user",
                    &tls,
                    e,
                )
            })?;
        }
        Ok(files)
    }

    /// The `postgresql.conf` settings that turn TLS on with these files.
    pub(crate) fn settings(&self) -> Vec<(String, String)> {
        vec![
            ("ssl".to_owned(), "on".to_owned()),
            (
                "ssl_cert_file".to_owned(),
                path(&self.server_cert).to_owned(),
            ),
            ("ssl_key_file".to_owned(), path(&self.server_key).to_owned()),
        ]
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

fn openssl(args: &[&str]) -> Result<()> {
    let mut cmd = Command::new("openssl");
    cmd.args(args);
    let output = run_bounded(&mut cmd, Duration::from_secs(60)).map_err(|e| {
        Error::test_kit(
            ACTION,
            format!("cannot run openssl: {e}"),
            "install the `openssl` package (Debian's postgresql brings it)",
        )
    })?;
    if output.status.success() {
        return Ok(());
    }
    Err(Error::test_kit(
        ACTION,
        format!(
            "openssl {} exited with {}:\n    {}\n",
            args[0],
            output.status,
            output.tail()
        ),
        "check the openssl installation",
    ))
}
