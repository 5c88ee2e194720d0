//! Test harness: real `wardend` and `warden` processes, fresh SQLite files and fresh
//! PostgreSQL databases.
//!
//! Binaries come from the workspace target directory (`cargo build --workspace --bins`
//! runs before the tests; see scripts/test.sh) or from `WARDEN_BIN_DIR`. PostgreSQL comes
//! from `WARDEN_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/postgres`); a test
//! that needs it fails, loudly, when it is not there. Nothing is skipped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use warden_proto::v1::decisions_client::DecisionsClient;
use warden_proto::v1::{Action, Decision, EvaluateRequest};

pub use tonic::transport::Channel;

/// Directory holding the `wardend` and `warden` binaries.
pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("WARDEN_BIN_DIR") {
        return PathBuf::from(dir);
    }
    // target/debug/deps/<test binary> → target/debug
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf();
    assert!(
        dir.join("wardend").exists() && dir.join("warden").exists(),
        "wardend/warden binaries not found in {}: run `cargo build --workspace --bins` first (scripts/test.sh does)",
        dir.display()
    );
    dir
}

pub fn wardend() -> PathBuf {
    bin_dir().join("wardend")
}

pub fn warden() -> PathBuf {
    bin_dir().join("warden")
}

/// The Python of the test peers (the `mcp`, `requests` and `openai` packages):
/// `WARDEN_TEST_PYTHON`, else the venv scripts/test.sh makes at `target/pyenv`. Missing,
/// the tests that need it fail: nothing is skipped.
pub fn python() -> PathBuf {
    let path = std::env::var("WARDEN_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pyenv/bin/python")
        });
    assert!(
        path.exists(),
        "{} not found: the tests' Python peers live in a venv (scripts/test.sh creates target/pyenv), or set WARDEN_TEST_PYTHON",
        path.display()
    );
    path
}

/// A database for one test.
pub struct TestDb {
    pub url: String,
    /// Keeps the SQLite file's directory alive.
    _dir: Option<tempfile::TempDir>,
    /// Name of the PostgreSQL database, dropped by [`TestDb::drop_pg`].
    pg_name: Option<String>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Base URL of the test PostgreSQL server's maintenance database.
pub fn pg_admin_url() -> String {
    std::env::var("WARDEN_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/warden.db", dir.path().display());
        TestDb {
            url,
            _dir: Some(dir),
            pg_name: None,
        }
    }

    /// A new, empty PostgreSQL database. Panics with the reason if PostgreSQL is not
    /// reachable: Postgres tests never skip.
    pub async fn postgres() -> TestDb {
        let admin = pg_admin_url();
        let name = format!(
            "warden_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            Instant::now().elapsed().as_nanos() % 1000
        );
        let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!("PostgreSQL is required for this test and is not reachable at {admin}: {e}")
        });
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        conn.close().await.ok();
        let (base, _) = admin.rsplit_once('/').expect("URL has a database part");
        TestDb {
            url: format!("{base}/{name}"),
            _dir: None,
            pg_name: Some(name),
        }
    }

    pub async fn of(kind: Backend) -> TestDb {
        match kind {
            Backend::Sqlite => TestDb::sqlite().await,
            Backend::Postgres => TestDb::postgres().await,
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.pg_name.is_some()
    }

    /// Drops the PostgreSQL database (call at the end of a passing test).
    pub async fn drop_pg(self) {
        if let Some(name) = &self.pg_name
            && let Ok(mut conn) = PgConnection::connect(&pg_admin_url()).await
        {
            let _ = sqlx::query(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await;
        }
    }

    /// Runs SQL against the database directly (to tamper with it, or inspect it).
    pub async fn exec_sql(&self, sql: &str) {
        if self.is_postgres() {
            let mut conn = PgConnection::connect(&self.url).await.expect("connect");
            sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        } else {
            let mut conn = sqlx::SqliteConnection::connect(&self.url)
                .await
                .expect("connect");
            sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }
}

/// The two storage backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Defines `mod $name { sqlite(); postgres(); }`, each running `$body(Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:path) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $body($crate::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $body($crate::Backend::Postgres).await
            }
        }
    };
}

/// A child process that prints `listening on ADDR` on stderr once it serves; its
/// stderr is collected as its log.
pub struct Listening {
    pub child: Child,
    /// What followed `listening on ` up to the first space (an address or a port).
    pub addr: String,
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Listening {
    /// Spawns `cmd` (stdin and stdout closed, stderr read) and waits up to 30 s for it
    /// to say where it listens; panics with its log otherwise.
    pub fn spawn(cmd: &mut Command, what: &str) -> Listening {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let stderr = child.stderr.take().expect("stderr");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.split("listening on ").nth(1) {
                    let addr = addr.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(addr.to_string());
                }
                let mut l = sink.lock().expect("log lock");
                l.push_str(&line);
                l.push('\n');
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => Listening { child, addr, log },
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "{what} did not start (status {status:?}); log:\n{}",
                    log.lock().expect("log lock")
                );
            }
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// SIGTERM, then wait (up to 30 s) for the process to exit; returns its status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process did not stop within 30 s after SIGTERM; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `wardend serve`.
pub struct Daemon {
    pub addr: SocketAddr,
    process: Listening,
}

impl Daemon {
    /// Starts `wardend serve` on a free port with extra arguments, waits until it listens.
    pub fn start(db: &str, extra: &[&str]) -> Daemon {
        Daemon::start_in(db, extra, None)
    }

    pub fn start_in(db: &str, extra: &[&str], cwd: Option<&Path>) -> Daemon {
        let mut cmd = Command::new(wardend());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--db", db])
            .args(extra)
            .env("WARDEN_LOG", "info")
            .env_remove("WARDEN_POLICY");
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        let process = Listening::spawn(&mut cmd, "wardend");
        Daemon {
            addr: process.addr.parse().expect("listen address"),
            process,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    pub async fn channel(&self) -> Channel {
        tonic::transport::Endpoint::from_shared(self.url())
            .expect("url")
            .connect()
            .await
            .expect("connect to wardend")
    }

    pub async fn decisions(&self) -> DecisionsClient<Channel> {
        DecisionsClient::new(self.channel().await)
    }

    /// SIGTERM, then wait for a clean exit; returns the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.process.stop()
    }

    pub fn pid(&self) -> u32 {
        self.process.child.id()
    }
}

/// An exec action for `argv`.
pub fn exec_action(session: &str, argv: &[&str]) -> Action {
    Action {
        agent: "test-agent".into(),
        session: session.into(),
        channel: "exec".into(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// Evaluates an action and returns the decision, panicking on RPC errors.
pub async fn evaluate(client: &mut DecisionsClient<Channel>, action: Action) -> Decision {
    client
        .evaluate(EvaluateRequest {
            action: Some(action),
        })
        .await
        .expect("evaluate")
        .into_inner()
        .decision
        .expect("decision")
}

/// Runs `wardend` with arguments to completion; returns (exit code, stdout, stderr).
pub fn wardend_cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(wardend())
        .args(args)
        .env("WARDEN_LOG", "warn")
        .env_remove("WARDEN_DB")
        .output()
        .expect("run wardend");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Opens the store behind a test database (already migrated by a daemon or migrate()).
pub async fn store(db: &TestDb) -> warden_server::store::Store {
    let store = warden_server::store::Store::connect(&db.url)
        .await
        .expect("connect store");
    store.migrate().await.expect("migrate");
    store
}

pub mod proxy;
pub mod pty;
pub mod raw;
