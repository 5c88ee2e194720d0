//! Pieces for the `warden proxy` tests: a local upstream (plain or TLS) that records what
//! reaches it, a throwaway certificate authority made with the `openssl` CLI, and the
//! proxy itself as a child process.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Listening, python, warden};

/// The repository's `tests/` directory (scripts live under it).
pub fn tests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A CA and a server certificate for `upstream.test`, `git.test` and `forbidden.test`.
pub struct Certs {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Certs {
    pub fn make(dir: &Path) -> Certs {
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("openssl (the tests make their certificates with it)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        std::fs::write(
            dir.join("san.cnf"),
            "subjectAltName=DNS:upstream.test,DNS:git.test,DNS:forbidden.test\n",
        )
        .expect("write san.cnf");
        #[rustfmt::skip]
        run(&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
              "-out", "ca.pem", "-days", "2", "-subj", "/CN=warden test CA"]);
        #[rustfmt::skip]
        run(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out",
              "srv.csr", "-subj", "/CN=upstream.test"]);
        #[rustfmt::skip]
        run(&["x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
              "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "san.cnf"]);
        Certs {
            ca: dir.join("ca.pem"),
            cert: dir.join("srv.pem"),
            key: dir.join("srv.key"),
        }
    }
}

/// `tests/proxy/upstream.py`, recording every request it receives.
pub struct Upstream {
    pub port: u16,
    record: PathBuf,
    _process: Listening,
}

impl Upstream {
    /// Plain HTTP when `tls` is `None`; `root` is served under `/files/`.
    pub fn start(dir: &Path, name: &str, tls: Option<&Certs>, root: &Path) -> Upstream {
        let record = dir.join(format!("{name}.jsonl"));
        let mut cmd = Command::new(python());
        cmd.arg(tests_dir().join("proxy/upstream.py"))
            .arg("--record")
            .arg(&record)
            .arg("--root")
            .arg(root);
        if let Some(c) = tls {
            cmd.arg("--cert").arg(&c.cert).arg("--key").arg(&c.key);
        }
        let process = Listening::spawn(&mut cmd, "upstream.py");
        Upstream {
            port: process.addr.parse().expect("upstream port"),
            record,
            _process: process,
        }
    }

    /// Every request received so far, oldest first.
    pub fn received(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("record line"))
            .collect()
    }

    /// Paths of the requests received so far.
    pub fn paths(&self) -> Vec<String> {
        self.received()
            .iter()
            .map(|r| r["path"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

/// `warden proxy` on a free loopback port, with the `*.test` hosts resolved to
/// 127.0.0.1 (they count as external hosts for the policy).
pub fn start_proxy(daemon: &str, extra: &[&str]) -> (Listening, String) {
    let mut cmd = Command::new(warden());
    cmd.args(["proxy", "--daemon", daemon, "--listen", "127.0.0.1:0"])
        .args(["--agent", "proxy-test", "--session", "s-proxy"])
        .args(["--resolve", "upstream.test=127.0.0.1"])
        .args(["--resolve", "git.test=127.0.0.1"])
        .args(["--resolve", "forbidden.test=127.0.0.1"])
        .args(extra)
        .env("WARDEN_LOG", "info")
        .env_remove("WARDEN_FAIL_OPEN");
    let process = Listening::spawn(&mut cmd, "warden proxy");
    let url = format!("http://{}", process.addr);
    (process, url)
}
