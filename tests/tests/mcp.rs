//! `warden mcp` between peers we did not write: the Python `mcp` SDK's client (agent
//! side) and an MCP server built with the Python `mcp` SDK (upstream,
//! tests/mcp/upstream.py), over stdio and streamable HTTP on both sides, in front of a
//! real `wardend`. The upstream records every request it receives, so a refused call
//! is shown never to have arrived.
//!
//! The Python interpreter is [`warden_tests::python`]: `WARDEN_TEST_PYTHON`, else
//! `target/pyenv/bin/python` (scripts/test.sh creates it with the pinned `mcp`);
//! missing, the tests fail.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warden_proto::v1::{Action, Verdict, Zone};
use warden_tests::{Backend, Daemon, Listening, TestDb, both_backends, evaluate, python, warden};

const POLICY: &str = r#"
version: 1
profiles: [baseline]
default: allow
rules:
  - id: no-delete
    decision: deny
    reason: Deleting everything is never agent work
    match: { channel: [mcp], tool: ["*__delete_everything"] }
  - id: approve-pay
    decision: require_approval
    reason: Payments need a human
    match: { channel: [mcp], tool: ["*__pay"] }
  - id: no-private-notes
    decision: deny
    reason: Private notes stay private
    match: { channel: [mcp], resource_regex: ["^notes://private"] }
  - id: no-forbidden-prompt
    decision: deny
    reason: That prompt is off limits
    match: { channel: [mcp], tool: ["*__forbidden"] }
  - id: no-etc
    decision: deny
    reason: Agents may not read /etc through tools
    match: { channel: [mcp], resource: ["/etc/**"] }
  - id: no-moves
    decision: deny
    reason: Files are not moved by agents
    match: { channel: [mcp], tool: ["files__move_file"] }
  - id: protected-stays
    decision: deny
    reason: The protected directory is read-only
    match: { channel: [mcp], tool: ["files__write_file", "files__edit_file"], resource: ["**/protected/**"] }
  - id: redact-echoed-keys
    decision: allow_with_redaction
    reason: Keys echoed back are redacted
    redact: [{ pattern: "AKIA[A-Z0-9]{16}" }]
    match: { channel: [mcp], tool: ["*__echo"] }
"#;

/// The published filesystem MCP server from npm (scripts/test.sh installs the pinned
/// version into target/npm), or `WARDEN_TEST_MCP_FS`.
fn filesystem_server() -> PathBuf {
    let path = std::env::var("WARDEN_TEST_MCP_FS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(
                "../target/npm/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js",
            )
        });
    assert!(
        path.exists(),
        "{} not found: the MCP tests need @modelcontextprotocol/server-filesystem (scripts/test.sh installs it into target/npm), or WARDEN_TEST_MCP_FS",
        path.display()
    );
    path
}

fn script(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("mcp")
        .join(name)
        .display()
        .to_string()
}

/// A daemon with the test policy, and a file the upstream records into.
struct Setup {
    _db: TestDb,
    daemon: Daemon,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn new(kind: Backend) -> Setup {
        let db = TestDb::of(kind).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let policy = dir.path().join("policy.yaml");
        std::fs::write(&policy, POLICY).expect("policy");
        let daemon = Daemon::start(&db.url, &["--policy", &policy.display().to_string()]);
        Setup {
            _db: db,
            daemon,
            dir,
        }
    }

    fn record(&self) -> PathBuf {
        self.dir.path().join("received.jsonl")
    }

    /// What the upstream received: (kind, name) in order.
    fn received(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(self.record())
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("record line");
                (
                    v["kind"].as_str().unwrap_or_default().to_string(),
                    v["name"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    fn stdio_upstream(&self) -> String {
        format!("up={} {} stdio", python().display(), script("upstream.py"))
    }

    /// Gateway arguments for a session, with a stdio upstream unless `extra` names one.
    fn gateway_args(&self, session: &str, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "mcp".into(),
            "--daemon".into(),
            self.daemon.addr.to_string(),
            "--agent".into(),
            "mcp-agent".into(),
            "--session".into(),
            session.into(),
        ];
        if !extra.iter().any(|a| a.starts_with("--upstream")) {
            args.push(format!("--upstream={}", self.stdio_upstream()));
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// Runs the Python client against a gateway it spawns over stdio.
    fn stdio(&self, session: &str, extra: &[&str], steps: Value) -> Vec<Value> {
        let mut args = vec!["stdio".to_string(), warden().display().to_string()];
        args.extend(self.gateway_args(session, extra));
        run_client(&args, steps, &self.record())
    }

    async fn zone(&self, session: &str) -> Zone {
        let mut client = self.daemon.decisions().await;
        let d = evaluate(
            &mut client,
            Action {
                channel: "mcp".into(),
                tool: "up__probe".into(),
                agent: "mcp-agent".into(),
                session: session.into(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(d.verdict(), Verdict::Allow, "{d:?}");
        d.zone()
    }
}

/// Runs tests/mcp/client.py with `args`, feeding it `steps`; its JSON lines.
fn run_client(args: &[String], steps: Value, record: &Path) -> Vec<Value> {
    let mut child = Command::new(python())
        .arg(script("client.py"))
        .args(args)
        .env("RECORD_FILE", record)
        .env("WARDEN_LOG", "info")
        .env_remove("WARDEN_FAIL_OPEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the Python MCP client");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(steps.to_string().as_bytes())
        .expect("steps");
    let out = child.wait_with_output().expect("client output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{stderr}")))
        .collect();
    assert!(
        out.status.success() || lines.iter().any(|l| l.get("connect_error").is_some()),
        "client failed: {stdout}\n{stderr}"
    );
    lines
}

fn ok(v: &Value) -> &Value {
    v.get("ok")
        .unwrap_or_else(|| panic!("expected a result, got {v}"))
}

fn text_of(result: &Value) -> String {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn tool_names(list: &Value) -> Vec<String> {
    list["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Binds a free port and lets it go, for a server that takes a port number.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn allowed_and_denied_calls_over_stdio(kind: Backend) {
    let s = Setup::new(kind).await;
    let out = s.stdio(
        "s-basic",
        &[],
        json!([
            ["list_tools"],
            ["call_tool", "up__echo", {"text": "hello \"world\" \u{e9}"}],
            ["call_tool", "up__delete_everything", {"confirm": true}],
            ["call_tool", "up__read_file", {"path": "/etc/hostname"}],
            ["call_tool", "up__fail", {"why": "because"}],
        ]),
    );
    // tools/list: namespaced; the unconditionally denied tool is hidden, the
    // conditionally denied one is not.
    let names = tool_names(ok(&out[0]));
    assert!(names.contains(&"up__echo".to_string()), "{names:?}");
    assert!(names.contains(&"up__read_file".to_string()), "{names:?}");
    assert!(
        !names.iter().any(|n| n.contains("delete_everything")),
        "{names:?}"
    );
    // Allowed: the upstream's result, byte for byte.
    let echo = ok(&out[1]);
    assert_eq!(text_of(echo), "hello \"world\" \u{e9}");
    assert_eq!(
        echo["structuredContent"]["result"],
        "hello \"world\" \u{e9}"
    );
    assert_eq!(echo["isError"], false);
    // Denied: isError with the reason and the rule.
    let denied = ok(&out[2]);
    assert_eq!(denied["isError"], true, "{denied}");
    assert!(text_of(denied).contains("Deleting everything is never agent work"));
    assert!(text_of(denied).contains("no-delete"));
    // Denied through the path in the arguments.
    let etc = ok(&out[3]);
    assert_eq!(etc["isError"], true, "{etc}");
    assert!(text_of(etc).contains("no-etc"), "{etc}");
    // A tool error passes through as isError.
    assert_eq!(ok(&out[4])["isError"], true);
    // The upstream saw the allowed calls only.
    assert_eq!(
        s.received(),
        vec![
            ("tool".to_string(), "echo".to_string()),
            ("tool".to_string(), "fail".to_string())
        ]
    );
    // The audit has the outcomes: ok and tool_error.
    let (code, audit, err) = warden_tests::wardend_cli(&["audit", "export", "--db", &s._db.url]);
    assert_eq!(code, 0, "{err}");
    assert!(
        audit.contains(r#"\"outcome\":\"ok\""#) || audit.contains(r#""outcome":"ok""#),
        "{audit}"
    );
    assert!(audit.contains("tool_error"), "{audit}");
    s.daemon.stop();
}

both_backends!(
    allowed_and_denied_calls_over_stdio_both,
    super::allowed_and_denied_calls_over_stdio
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_in_results_raise_the_zone_and_redaction_applies() {
    let s = Setup::new(Backend::Sqlite).await;
    let out = s.stdio(
        "s-secret",
        &[],
        json!([
            ["call_tool", "up__leak", {}],
            ["call_tool", "up__echo", {"text": "https://paste.example.net/upload"}],
        ]),
    );
    assert!(text_of(ok(&out[0])).contains("AKIAIOSFODNN7EXAMPLE"));
    // The report tagged the result secret: the session is sensitive, and an
    // argument naming an external host is now refused (egress after a secret read).
    let second = ok(&out[1]);
    assert_eq!(second["isError"], true, "{second}");
    assert!(
        text_of(second).contains("deny-egress-from-sensitive-session"),
        "{second}"
    );
    assert_eq!(s.zone("s-secret").await, Zone::Sensitive);
    assert_eq!(s.received(), vec![("tool".to_string(), "leak".to_string())]);

    // ALLOW_WITH_REDACTION: the decision's pattern is applied to the result.
    let out = s.stdio(
        "s-redact",
        &[],
        json!([["call_tool", "up__echo", {"text": "key AKIAIOSFODNN7EXAMPLE end"}]]),
    );
    let r = ok(&out[0]);
    assert_eq!(text_of(r), "key [REDACTED] end", "{r}");
    assert!(!r.to_string().contains("AKIAIOSFODNN7EXAMPLE"), "{r}");
    // --redact-detected: detector findings are redacted whatever the decision.
    let out = s.stdio(
        "s-detect",
        &["--redact-detected"],
        json!([["call_tool", "up__leak", {}]]),
    );
    let r = ok(&out[0]);
    assert!(text_of(r).contains("[REDACTED:aws_access_key]"), "{r}");
    assert!(text_of(r).contains("[REDACTED:email]"), "{r}");
    s.daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_and_prompts_are_evaluated() {
    let s = Setup::new(Backend::Sqlite).await;
    let out = s.stdio(
        "s-res",
        &[],
        json!([
            ["list_resources"],
            ["read_resource", "notes://public"],
            ["read_resource", "notes://private"],
            ["get_prompt", "up__greet", {"name": "Ada"}],
            ["get_prompt", "up__forbidden", {"name": "Ada"}],
        ]),
    );
    assert_eq!(ok(&out[1])["contents"][0]["text"], "public note");
    let e = &out[2]["error"];
    assert_eq!(e["code"], -32001, "{}", out[2]);
    assert!(
        e["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no-private-notes")
    );
    assert_eq!(
        ok(&out[3])["messages"][0]["content"]["text"],
        "Say hello to Ada."
    );
    assert!(
        out[4]["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no-forbidden-prompt")
    );
    assert_eq!(
        s.received(),
        vec![
            ("resource".to_string(), "notes://public".to_string()),
            ("prompt".to_string(), "greet".to_string())
        ]
    );
    s.daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_return_the_id_or_wait_for_a_grant() {
    let s = Setup::new(Backend::Sqlite).await;
    let out = s.stdio(
        "s-pay",
        &[],
        json!([["call_tool", "up__pay", {"amount": 5}]]),
    );
    let r = ok(&out[0]);
    assert_eq!(r["isError"], true);
    assert!(text_of(r).contains("approval id "), "{r}");
    assert!(s.received().is_empty());

    // With --wait-approval, over streamable HTTP: the call is held until granted.
    let mut gateway = Command::new(warden());
    gateway
        .args(s.gateway_args(
            "s-pay-wait",
            &["--listen", "127.0.0.1:0", "--wait-approval=60s"],
        ))
        .env("RECORD_FILE", s.record())
        .env("WARDEN_LOG", "info");
    let gw = Listening::spawn(&mut gateway, "warden mcp");
    let url = gw.addr.clone();
    let record = s.record();
    let client = std::thread::spawn(move || {
        run_client(
            &["http".to_string(), url],
            json!([["call_tool", "up__pay", {"amount": 7}]]),
            &record,
        )
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let id = loop {
        if let Some(id) = gw
            .log()
            .split("approval=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
        {
            break id.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no approval awaited: {}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = Command::new(warden())
        .args([
            "approvals",
            "approve",
            &id,
            "--daemon",
            &s.daemon.addr.to_string(),
            "--as",
            "tester",
        ])
        .output()
        .expect("approve");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = client.join().expect("client thread");
    assert_eq!(text_of(ok(&out[0])), "paid 7", "{}", gw.log());
    assert_eq!(s.received(), vec![("tool".to_string(), "pay".to_string())]);
    s.daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamable_http_on_both_sides() {
    let s = Setup::new(Backend::Sqlite).await;
    let port = free_port();
    let mut upstream = Command::new(python())
        .args([script("upstream.py"), "http".into(), port.to_string()])
        .env("RECORD_FILE", s.record())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the HTTP upstream");
    wait_for_port(port);
    let flag = format!("--upstream=up=http://127.0.0.1:{port}/mcp");
    let mut gateway = Command::new(warden());
    gateway
        .args(s.gateway_args("s-http", &[&flag, "--listen", "127.0.0.1:0"]))
        .env("WARDEN_LOG", "info");
    let gw = Listening::spawn(&mut gateway, "warden mcp");
    let out = run_client(
        &["http".to_string(), gw.addr.clone()],
        json!([
            ["list_tools"],
            ["call_tool", "up__echo", {"text": "over http"}],
            ["call_tool", "up__delete_everything", {}],
        ]),
        &s.record(),
    );
    assert!(!tool_names(ok(&out[0])).iter().any(|n| n.contains("delete")));
    assert_eq!(text_of(ok(&out[1])), "over http", "{}", gw.log());
    assert_eq!(ok(&out[2])["isError"], true);
    assert_eq!(s.received(), vec![("tool".to_string(), "echo".to_string())]);
    // The stdio agent side in front of the HTTP upstream too.
    let out = s.stdio(
        "s-http2",
        &[&flag],
        json!([["call_tool", "up__echo", {"text": "x"}]]),
    );
    assert_eq!(text_of(ok(&out[0])), "x");
    let _ = upstream.kill();
    let _ = upstream.wait();
    s.daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_down_is_fail_closed_unless_fail_open() {
    let s = Setup::new(Backend::Sqlite).await;
    let dead = format!("127.0.0.1:{}", free_port());
    let args = |extra: &[&str]| {
        let mut a = vec![
            "stdio".to_string(),
            warden().display().to_string(),
            "mcp".into(),
            "--daemon".into(),
            dead.clone(),
            "--timeout-ms".into(),
            "2000".into(),
            format!("--upstream={}", s.stdio_upstream()),
        ];
        a.extend(extra.iter().map(|x| x.to_string()));
        a
    };
    let out = run_client(
        &args(&[]),
        json!([["call_tool", "up__echo", {"text": "hi"}], ["list_tools"]]),
        &s.record(),
    );
    let r = ok(&out[0]);
    assert_eq!(r["isError"], true);
    let why = text_of(r);
    assert!(
        why.contains("cannot reach wardend") && why.contains("fail-closed"),
        "{why}"
    );
    assert!(
        out[1]["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("fail-closed")
    );
    assert!(s.received().is_empty());
    let out = run_client(
        &args(&["--fail-open"]),
        json!([["call_tool", "up__echo", {"text": "hi"}]]),
        &s.record(),
    );
    assert_eq!(text_of(ok(&out[0])), "hi");
    assert_eq!(s.received(), vec![("tool".to_string(), "echo".to_string())]);
    s.daemon.stop();
}

#[test]
fn bad_config_fails_at_start_with_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gateway.yaml");
    std::fs::write(
        &path,
        "upstreams:\n  files:\n    command: x\n    urll: http://h/\n",
    )
    .expect("config");
    let out = Command::new(warden())
        .args(["mcp", "--config", &path.display().to_string()])
        .stdin(Stdio::null())
        .output()
        .expect("warden mcp");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("gateway.yaml:4:"), "{err}");
    assert!(err.contains("urll"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_filesystem_server_upstream() {
    let s = Setup::new(Backend::Sqlite).await;
    let root = s.dir.path().join("root");
    std::fs::create_dir_all(root.join("protected")).expect("dirs");
    std::fs::create_dir_all(root.join(".aws")).expect("dirs");
    std::fs::write(root.join("hello.txt"), "hello from npm\n").expect("file");
    std::fs::write(root.join(".aws/credentials"), "[default]\n").expect("file");
    let root_s = root.display().to_string();
    let flag = format!(
        "--upstream=files=node {} {root_s}",
        filesystem_server().display()
    );
    let out = s.stdio(
        "s-fs",
        &[&flag],
        json!([
            ["list_tools"],
            ["call_tool", "files__read_text_file", {"path": format!("{root_s}/hello.txt")}],
            ["call_tool", "files__write_file", {"path": format!("{root_s}/new.txt"), "content": "made"}],
            ["call_tool", "files__write_file", {"path": format!("{root_s}/protected/x.txt"), "content": "no"}],
            ["call_tool", "files__read_text_file", {"path": format!("{root_s}/.aws/credentials")}],
        ]),
    );
    let names = tool_names(ok(&out[0]));
    assert!(
        names.contains(&"files__read_text_file".to_string()),
        "{names:?}"
    );
    assert!(
        !names.contains(&"files__move_file".to_string()),
        "{names:?}"
    );
    assert_eq!(text_of(ok(&out[1])), "hello from npm\n");
    assert_eq!(ok(&out[2])["isError"], false, "{}", out[2]);
    assert_eq!(
        std::fs::read_to_string(root.join("new.txt")).expect("written"),
        "made"
    );
    // Refused writes never reach the server: the file does not exist.
    let r = ok(&out[3]);
    assert_eq!(r["isError"], true, "{r}");
    assert!(text_of(r).contains("protected-stays"), "{r}");
    assert!(!root.join("protected/x.txt").exists());
    // The path argument is the resource: the baseline's credential rule applies.
    let r = ok(&out[4]);
    assert_eq!(r["isError"], true, "{r}");
    assert!(text_of(r).contains("deny-credential-read"), "{r}");
    s.daemon.stop();
}

/// Zones cross channels: a secret read through `warden mcp`, then an external POST
/// through `warden proxy` in the same session, is refused before it leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_read_over_mcp_stops_egress_through_the_proxy() {
    use warden_tests::proxy::{Upstream, start_proxy};
    let s = Setup::new(Backend::Sqlite).await;
    let web = Upstream::start(s.dir.path(), "web", None, s.dir.path());
    let (_proxy, proxy) = start_proxy(&s.daemon.addr.to_string(), &[]);
    let url = format!("http://upstream.test:{}/upload", web.port);
    let post = |session: &str| {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "20", "-x", &proxy])
            .args(["--proxy-user", &format!("mcp-agent/{session}:")])
            .args(["-w", "\n%{http_code}", "-d", "notes=1", &url])
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    // Before: the session may post to an external host.
    assert!(post("s-cross").ends_with("\n200"));
    // The agent reads a secret through an MCP tool...
    let out = s.stdio("s-cross", &[], json!([["call_tool", "up__leak", {}]]));
    assert!(text_of(ok(&out[0])).contains("AKIAIOSFODNN7EXAMPLE"));
    assert_eq!(s.zone("s-cross").await, Zone::Sensitive);
    // ...and the same session's next POST through the proxy is refused, unsent.
    let refused = post("s-cross");
    let (body, status) = refused.rsplit_once('\n').expect("status line");
    assert_eq!(status, "403", "{refused}");
    let v: Value = serde_json::from_str(body).expect("JSON refusal");
    assert_eq!(
        v["rules"],
        json!(["baseline/deny-egress-from-sensitive-session"])
    );
    assert_eq!(web.paths(), ["/upload"], "only the first POST arrived");
    // Another session is not affected.
    assert!(post("s-other").ends_with("\n200"));
    assert_eq!(web.paths(), ["/upload", "/upload"]);
}
