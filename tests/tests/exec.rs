//! `warden exec` as a real process in front of a real `wardend`: exit codes, stdio and
//! environment passthrough, signals, refusals that start nothing, fail-closed, and the
//! Report that follows a run.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use warden_tests::{Backend, Daemon, TestDb, both_backends, warden, wardend_cli};

fn exec(daemon: &str, args: &[&str]) -> Output {
    exec_with_stdin(daemon, args, b"")
}

fn exec_with_stdin(daemon: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(warden())
        .args([
            "exec",
            "--daemon",
            daemon,
            "--agent",
            "exec-test",
            "--session",
            "s-exec",
            "--",
        ])
        .args(args)
        .env_remove("WARDEN_FAIL_OPEN")
        .env("WARDEN_CANARY", "passed-through")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn warden");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().expect("warden output")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn allowed_commands_run_exactly_as_given(kind: Backend) {
    let db = TestDb::of(kind).await;
    let daemon = Daemon::start(&db.url, &[]);
    let addr = daemon.addr.to_string();

    // stdout, stderr, exit code, argv with spaces and quotes, environment, stdin.
    let out = exec(
        &addr,
        &[
            "sh",
            "-c",
            "printf '%s|' \"$@\"; echo \"$WARDEN_CANARY\"; echo oops >&2; exit 3",
            "sh",
            "a b",
            "c'd",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "a b|c'd|passed-through\n");
    assert_eq!(text(&out.stderr), "oops\n");

    let out = exec_with_stdin(&addr, &["wc", "-c"], b"twelve bytes");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout).trim(), "12");

    let out = exec(&addr, &["ls", "-la", "/"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("etc"));

    // Killed by a signal: 128 + N.
    let out = exec(&addr, &["sh", "-c", "kill -KILL $$"]);
    assert_eq!(out.status.code(), Some(128 + 9));

    // Allowed but not runnable.
    let out = exec(&addr, &["no-such-program-warden-test"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(text(&out.stderr).contains("command not found"));

    daemon.stop();
    // Each run was evaluated and then reported with its exit status and byte counts.
    let (code, export, _) = wardend_cli(&["audit", "export", "--db", &db.url]);
    assert_eq!(code, 0);
    let records: Vec<serde_json::Value> = export
        .lines()
        .map(|l| {
            let mut record: serde_json::Value = serde_json::from_str(l).unwrap();
            let result = record["result_json"].as_str().unwrap().to_string();
            record["result"] = serde_json::from_str(&result).unwrap_or_default();
            record
        })
        .collect();
    assert_eq!(records.len(), 10, "{export}");
    let first_report = &records[1];
    assert_eq!(first_report["kind"], "report");
    assert_eq!(first_report["decision_seq"], 1);
    assert_eq!(first_report["agent"], "exec-test");
    assert_eq!(first_report["session"], "s-exec");
    assert_eq!(first_report["result"]["exit_code"], 3);
    assert_eq!(
        first_report["result"]["stdout_bytes"],
        "a b|c'd|passed-through\n".len()
    );
    assert_eq!(first_report["result"]["stderr_bytes"], 5);
    assert_eq!(records[7]["result"]["signal"], 9);
    assert!(
        records[9]["result"]["error"]
            .as_str()
            .unwrap()
            .contains("command not found")
    );
    db.drop_pg().await;
}
both_backends!(
    allowed_commands_run_exactly_as_given,
    super::allowed_commands_run_exactly_as_given
);

#[tokio::test]
async fn denied_commands_never_start() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "version: 1\ndefault: allow\nrules:\n  - id: no-touch\n    decision: deny\n    reason: touching files is not allowed here\n    match: { tool: touch }\n  - id: ask-first\n    decision: require_approval\n    reason: publishing needs a human\n    match: { command: 'npm publish*' }\n",
    )
    .unwrap();
    let db = TestDb::sqlite().await;
    let daemon = Daemon::start(&db.url, &["--policy", policy.to_str().unwrap()]);
    let addr = daemon.addr.to_string();

    let out = exec(&addr, &["touch", marker.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(126));
    assert!(!marker.exists(), "a denied command ran");
    let err = text(&out.stderr);
    assert!(
        err.contains("denied: touching files is not allowed here [no-touch]"),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    let out = exec(&addr, &["npm", "publish", "--tag", "latest"]);
    assert_eq!(out.status.code(), Some(126));
    assert!(
        text(&out.stderr).contains("approval required: publishing needs a human [ask-first]"),
        "{}",
        text(&out.stderr)
    );

    // The default policy's own denial.
    // The database must outlive the daemon (a dropped TestDb deletes its file).
    let db2 = TestDb::sqlite().await;
    let daemon2 = Daemon::start(&db2.url, &[]);
    let out = exec(&daemon2.addr.to_string(), &["rm", "-rf", "/"]);
    assert_eq!(out.status.code(), Some(126));
    assert!(text(&out.stderr).contains("deny-recursive-delete-of-root-or-home"));
}

#[tokio::test]
async fn no_daemon_means_no_run_unless_fail_open() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");

    let out = exec(&addr, &["touch", marker.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(125));
    assert!(!marker.exists(), "ran without a decision");
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot reach wardend") && err.contains("fail-closed"),
        "{err}"
    );

    // A daemon that accepts connections but never answers: timed out, refused.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let out = Command::new(warden())
        .args([
            "exec",
            "--daemon",
            &silent_addr,
            "--timeout-ms",
            "300",
            "--",
            "touch",
            marker.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    assert!(!marker.exists());
    drop(silent);

    // --fail-open runs it, and says so.
    let out = Command::new(warden())
        .args([
            "exec",
            "--daemon",
            &addr,
            "--fail-open",
            "--",
            "touch",
            marker.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(marker.exists());
    assert!(
        text(&out.stderr).contains("WITHOUT a policy decision"),
        "{}",
        text(&out.stderr)
    );
}

/// SIGTERM sent to `warden exec` reaches the program, and warden exits as it did.
#[tokio::test]
async fn signals_are_forwarded_to_the_program() {
    let db = TestDb::sqlite().await;
    let daemon = Daemon::start(&db.url, &[]);
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let script = format!(
        "trap 'echo got-term; exit 42' TERM; touch {}; while true; do sleep 0.05; done",
        ready.display()
    );
    let child = Command::new(warden())
        .args([
            "exec",
            "--daemon",
            &daemon.addr.to_string(),
            "--",
            "sh",
            "-c",
            &script,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ready.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "program did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(42));
    assert_eq!(text(&out.stdout), "got-term\n");
}

/// The daemon is reachable but cannot commit audit records: it answers "no decision"
/// (UNAVAILABLE marked with warden-cause), and `--fail-open` does not override that:
/// fail-open is for a daemon that cannot be reached, not one that refused to decide.
#[tokio::test]
async fn audit_store_failure_is_not_overridden_by_fail_open() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let db = TestDb::sqlite().await;
    let daemon = Daemon::start(&db.url, &[]);
    let addr = daemon.addr.to_string();
    assert_eq!(exec(&addr, &["true"]).status.code(), Some(0));

    db.exec_sql("DROP TABLE audit_log").await;
    let out = Command::new(warden())
        .args([
            "exec",
            "--daemon",
            &addr,
            "--fail-open",
            "--",
            "touch",
            marker.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        !marker.exists(),
        "ran although the daemon refused to decide"
    );
    assert!(err.contains("audit record could not be committed"), "{err}");
    assert!(!err.contains("WITHOUT a policy decision"), "{err}");
}

/// On SQLite the session step writer keeps one connection from batch to batch. A batch
/// that fails must close it (rolling back what it had begun) rather than keep it: a kept
/// connection would still hold the open transaction, and every later batch would fail
/// on its `BEGIN`. Here the audit table goes away, a decision is refused, the table comes
/// back, and decisions are made again on a chain that verifies, with nothing of the
/// refused one in it.
#[tokio::test]
async fn decisions_resume_after_a_failed_step_batch() {
    let db = TestDb::sqlite().await;
    let daemon = Daemon::start(&db.url, &[]);
    let addr = daemon.addr.to_string();
    assert_eq!(exec(&addr, &["true"]).status.code(), Some(0));

    db.exec_sql("ALTER TABLE audit_log RENAME TO audit_log_away")
        .await;
    let out = exec(&addr, &["true"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(err.contains("audit record could not be committed"), "{err}");

    db.exec_sql("ALTER TABLE audit_log_away RENAME TO audit_log")
        .await;
    for _ in 0..3 {
        let out = exec(&addr, &["true"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    // The first run and the three after it: an Evaluate and a Report each.
    let (code, out, err) = wardend_cli(&["audit", "verify", "--db", &db.url]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("intact: 8 records"), "{out}");
}
