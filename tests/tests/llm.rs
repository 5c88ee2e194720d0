//! `warden llm` with the official `openai` Python SDK as the agent and a fake
//! OpenAI-compatible provider (tests/llm/fake_openai.py) that records what reaches it:
//! refused tool calls never reach the agent as callable calls, allowed ones pass
//! byte-identical, refused model calls never reach the provider, usage is reported.

use std::process::Command;

use serde_json::Value;
use warden_proto::v1::sessions_client::SessionsClient;
use warden_proto::v1::{GetSessionRequest, OpenSessionRequest, SessionRef};
use warden_tests::proxy::tests_dir;
use warden_tests::python;
use warden_tests::{Daemon, Listening, TestDb, warden};

const POLICY: &str = r#"
version: 1
name: llm-test
default: allow
profiles: [baseline]
prices:
  - { model: "fake-*", input: 1.00, output: 2.00 }
rules:
  - id: no-wipe-tool
    decision: deny
    reason: Agents do not get a tool that wipes disks
    match: { channel: [llm], tool: [wipe_disk] }
  - id: no-reports-after-secrets
    decision: deny
    reason: A session that has seen a secret sends no reports
    match: { channel: [llm], tool: [send_report], zone_at_least: sensitive }
"#;

struct World {
    _dir: tempfile::TempDir,
    record: std::path::PathBuf,
    fake: Listening,
    daemon: Daemon,
    _db: TestDb,
}

async fn world() -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let record = dir.path().join("provider.jsonl");
    let fake = Listening::spawn(
        Command::new(python())
            .arg(tests_dir().join("llm/fake_openai.py"))
            .arg("--record")
            .arg(&record),
        "fake_openai.py",
    );
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).expect("policy");
    let db = TestDb::sqlite().await;
    let daemon = Daemon::start(
        &db.url,
        &[
            "--policy",
            policy.to_str().expect("path"),
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    );
    World {
        _dir: dir,
        record,
        fake,
        daemon,
        _db: db,
    }
}

impl World {
    /// The daemon's Prometheus text, scraped over plain HTTP as Prometheus would.
    fn metrics(&self) -> String {
        use std::io::{Read, Write};
        let log = self.daemon.log();
        let addr = log
            .split("metrics on http://")
            .nth(1)
            .and_then(|rest| rest.split("/metrics").next())
            .unwrap_or_else(|| panic!("no metrics address in the daemon's log:\n{log}"));
        let mut stream = std::net::TcpStream::connect(addr).expect("connect to /metrics");
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: wardend\r\nConnection: close\r\n\r\n")
            .expect("send scrape");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read scrape");
        let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains("text/plain; version=0.0.4"), "{head}");
        body.to_string()
    }

    /// The daemon's view of one of the test agent's sessions.
    async fn session(&self, session: &str) -> warden_proto::v1::SessionInfo {
        SessionsClient::new(self.daemon.channel().await)
            .get(GetSessionRequest {
                session: Some(SessionRef {
                    tenant: String::new(),
                    agent: "llm-test".into(),
                    session: session.into(),
                }),
            })
            .await
            .expect("Sessions.Get")
            .into_inner()
    }

    fn upstream(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.fake.addr)
    }

    fn llm(&self, daemon: &str, extra: &[&str]) -> (Listening, String) {
        let mut cmd = Command::new(warden());
        cmd.args(["llm", "--daemon", daemon, "--listen", "127.0.0.1:0"])
            .args(["--upstream", &self.upstream(), "--agent", "llm-test"])
            .args(extra)
            .env("WARDEN_LOG", "info")
            .env("PROVIDER_KEY", "sk-provider-secret-1234")
            .env_remove("WARDEN_FAIL_OPEN");
        let p = Listening::spawn(&mut cmd, "warden llm");
        let url = format!("http://{}/v1", p.addr);
        (p, url)
    }

    /// What reached the provider.
    fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("record"))
            .collect()
    }
}

/// The SDK's view of one call.
fn sdk(base: &str, session: &str, kind: &str, prompt: &str) -> Value {
    let out = Command::new(python())
        .arg(tests_dir().join("llm/openai_client.py"))
        .args([base, session, kind, prompt])
        .output()
        .expect("openai client");
    assert!(
        out.status.success(),
        "openai client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("client JSON")
}

/// A raw POST with curl: (status, body).
fn post(url: &str, body: &str, headers: &[&str]) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "20",
        "-w",
        "\n%{http_code}",
        "-X",
        "POST",
    ])
    .args([
        "-H",
        "content-type: application/json",
        "--data-binary",
        body,
    ]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or((&text, "0"));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tool_calls_never_reach_the_agent() {
    let w = world().await;
    let (_llm, base) = w.llm(&w.daemon.addr.to_string(), &[]);

    // Allowed: the call arrives as the model proposed it.
    let v = sdk(&base, "s-echo", "chat", "echo");
    assert_eq!(v["finish_reason"], "tool_calls", "{v}");
    assert_eq!(v["tool_calls"][0]["name"], "run_command");
    assert_eq!(
        v["tool_calls"][0]["arguments"],
        "{\"command\": \"echo hello\"}"
    );

    // `rm -rf /` proposed: no callable call reaches the SDK; the turn ends with text.
    let v = sdk(&base, "s-rm", "chat", "rm");
    assert_eq!(v["tool_calls"], serde_json::json!([]), "{v}");
    assert_eq!(v["finish_reason"], "stop");
    let content = v["content"].as_str().unwrap_or("");
    assert!(
        content.contains("[warden] The tool call `run_command` was not run"),
        "{content}"
    );
    assert!(content.contains("baseline/"), "{content}");

    // Parallel calls: the allowed one stays, the refused one goes.
    let v = sdk(&base, "s-both", "chat", "both");
    let calls = v["tool_calls"].as_array().expect("calls");
    assert_eq!(calls.len(), 1, "{v}");
    assert_eq!(calls[0]["id"], "call_1");
    assert_eq!(v["finish_reason"], "tool_calls");
    assert!(v["content"].as_str().unwrap_or("").contains("was not run"));

    // Responses API: the refused function_call becomes an assistant message.
    let v = sdk(&base, "s-resp", "responses", "both");
    let types: Vec<&str> = v["output"]
        .as_array()
        .expect("output")
        .iter()
        .map(|o| o["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(types, ["function_call", "message"], "{v}");
    assert_eq!(v["output"][0]["arguments"], "{\"command\": \"echo hello\"}");
    assert!(
        v["text"].as_str().unwrap_or("").contains("was not run"),
        "{v}"
    );

    // Arguments that are not JSON cannot be checked: refused.
    let v = sdk(&base, "s-broken", "chat", "broken");
    assert_eq!(v["tool_calls"], serde_json::json!([]), "{v}");
    assert!(
        v["content"]
            .as_str()
            .unwrap_or("")
            .contains("not a JSON object")
    );

    // Byte-identical when nothing is refused: the same bytes as straight from the
    // provider.
    let request = r#"{"model":"fake-large","messages":[{"role":"user","content":"echo"}]}"#;
    let (status, through) = post(&format!("{base}/chat/completions"), request, &[]);
    let (_, direct) = post(&format!("{}/chat/completions", w.upstream()), request, &[]);
    assert_eq!((status, through), (200, direct));

    // Models pass through.
    let v = sdk(&base, "s-models", "models", "-");
    assert_eq!(v["models"], serde_json::json!(["fake-large", "fake-small"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_calls_are_judged_before_the_provider_sees_them() {
    let w = world().await;
    let (llm, base) = w.llm(
        &w.daemon.addr.to_string(),
        &["--upstream-key-env", "PROVIDER_KEY"],
    );

    // The provider sees its own key, never the client's; the log shows neither.
    sdk(&base, "s-key", "chat", "hi");
    let got = w.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0]["headers"]["authorization"],
        "Bearer sk-provider-secret-1234"
    );
    assert!(
        !got[0]["headers"]
            .as_object()
            .expect("headers")
            .contains_key("x-warden-session")
    );
    assert!(!llm.log().contains("sk-provider-secret") && !llm.log().contains("sk-client-key"));

    // Usage is reported into the session and priced by the policy's table.
    let info = w.session("s-key").await;
    assert_eq!((info.reports, info.tokens), (1, 28), "{info:?}");
    assert!(
        (info.cost_usd - (21.0 * 1.0 + 7.0 * 2.0) / 1e6).abs() < 1e-9,
        "{info:?}"
    );
    // And into the daemon's metrics: tokens, cost and provider latency per model, and
    // both decisions (the call, the tool-less answer has none) by channel.
    let metrics = w.metrics();
    for line in [
        "warden_llm_tokens_total{model=\"fake-large\",kind=\"prompt\"} 21",
        "warden_llm_tokens_total{model=\"fake-large\",kind=\"completion\"} 7",
        "warden_llm_cost_usd_total{model=\"fake-large\"} 0.000035",
        "warden_llm_call_duration_seconds_count{model=\"fake-large\"} 1",
        "warden_decisions_total{channel=\"llm\",verdict=\"allow\"} 1",
        "warden_reports_total{channel=\"llm\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in:\n{metrics}"
        );
    }

    // A run cap spent: the next call is a 429 in OpenAI's shape, never forwarded.
    SessionsClient::new(w.daemon.channel().await)
        .open(OpenSessionRequest {
            session: Some(SessionRef {
                tenant: String::new(),
                agent: "llm-test".into(),
                session: "s-cap".into(),
            }),
            max_tokens: 20,
            max_cost_usd: 0.0,
        })
        .await
        .expect("open");
    let first = sdk(&base, "s-cap", "chat", "hi");
    assert_eq!(first["content"], "you said: hi");
    let before = w.received().len();
    let v = sdk(&base, "s-cap", "chat", "hi");
    assert_eq!(v["error"]["status"], 429, "{v}");
    assert_eq!(v["error"]["type"], "warden_limit_reached");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("warden: this model call was refused"),
        "{v}"
    );
    assert_eq!(w.received().len(), before);

    // Malformed requests: 400 in the same shape, nothing forwarded.
    for (path, body) in [("chat/completions", "{not json"), ("responses", "[1]")] {
        let (status, text) = post(&format!("{base}/{path}"), body, &[]);
        let v: Value = serde_json::from_str(&text).expect("JSON error");
        assert_eq!(
            (status, v["error"]["type"].as_str()),
            (400, Some("invalid_request_error")),
            "{text}"
        );
    }
    assert_eq!(w.received().len(), before);

    // A provider error passes through unchanged.
    let v = sdk(&base, "s-500", "chat", "fail-500");
    assert_eq!(v["error"]["status"], 500);
    assert_eq!(v["error"]["message"], "the fake provider failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_daemon_means_an_openai_shaped_503() {
    let w = world().await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_addr = dead.local_addr().expect("addr").to_string();
    drop(dead);
    let (_llm, base) = w.llm(&dead_addr, &["--timeout-ms", "1000"]);
    let v = sdk(&base, "s-down", "chat", "hi");
    assert_eq!(v["error"]["status"], 503, "{v}");
    assert_eq!(v["error"]["type"], "warden_unavailable");
    let message = v["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("cannot reach wardend") && message.contains("fail-closed"),
        "{message}"
    );
    assert!(w.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_in_model_text_are_tagged_and_redacted() {
    let w = world().await;
    // Without --redact-detected: the text passes, but the report tags it, and the
    // session is sensitive from then on.
    let (_llm, base) = w.llm(&w.daemon.addr.to_string(), &[]);
    let v = sdk(&base, "s-leak", "chat", "leak");
    assert!(
        v["content"].as_str().unwrap_or("").contains("sk-proj-AbCd"),
        "{v}"
    );
    let info = w.session("s-leak").await;
    assert_eq!(info.zone(), warden_proto::v1::Zone::Sensitive, "{info:?}");
    assert!(
        info.tags.iter().any(|t| t == "secret") && info.tags.iter().any(|t| t == "pii"),
        "{info:?}"
    );

    // A secret in the text of an answer escalates the session before that answer's
    // own tool calls are judged (they go to the daemon with its report): the call a
    // sensitive session may not make never reaches the agent, streamed or not.
    for (kind, session) in [("chat", "s-leak-send"), ("chat-stream", "s-leak-send-2")] {
        let v = sdk(&base, session, kind, "leak-and-send");
        assert_eq!(v["tool_calls"], serde_json::json!([]), "{kind}: {v}");
        let content = v["content"].as_str().unwrap_or("");
        assert!(
            content.contains("`send_report` was not run")
                && content.contains("no-reports-after-secrets"),
            "{kind}: {content}"
        );
        let info = w.session(session).await;
        assert_eq!(info.zone(), warden_proto::v1::Zone::Sensitive, "{info:?}");
    }

    // With --redact-detected: the key and the address never reach the agent.
    // (This one runs on two threads, the other tests' sidecars on one.)
    let (_llm2, base2) = w.llm(
        &w.daemon.addr.to_string(),
        &["--redact-detected", "--worker-threads", "2"],
    );
    let v = sdk(&base2, "s-leak-2", "chat", "leak");
    let content = v["content"].as_str().unwrap_or("");
    assert!(
        !content.contains("sk-proj-") && !content.contains("ops@example.com"),
        "{content}"
    );
    assert!(content.contains("[REDACTED:"), "{content}");
    assert_eq!(v["finish_reason"], "stop");

    // A key in a streamed field the assembly does not keep (a delta's
    // reasoning_content) is found too: the stream is re-synthesized without it.
    let request = r#"{"model":"fake-large","stream":true,"messages":[{"role":"user","content":"think-leak"}]}"#;
    let (status, body) = post(
        &format!("{base2}/chat/completions"),
        request,
        &["x-warden-session: s-leak-3"],
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.contains("sk-proj-") && !body.contains("ops@example.com"),
        "{body}"
    );
    assert!(
        body.contains("\"ok\"") && body.ends_with("data: [DONE]\n\n"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_run_items_other_than_functions_are_judged_too() {
    let w = world().await;
    let (_llm, base) = w.llm(&w.daemon.addr.to_string(), &[]);

    // A provider that answers a streamed request with plain JSON: withheld (the tool
    // call in it never reaches the agent), and still reported.
    let (status, body) = post(
        &format!("{base}/chat/completions"),
        r#"{"model":"fake-large","stream":true,"messages":[{"role":"user","content":"ignore-stream"}]}"#,
        &["x-warden-session: s-ignore"],
    );
    assert_eq!(status, 502, "{body}");
    assert!(!body.contains("rm -rf"), "{body}");
    let info = w.session("s-ignore").await;
    assert_eq!(info.reports, 1, "{info:?}");

    // The Responses API's local shell tool: the client would run `rm -rf /`.
    let (status, body) = post(
        &format!("{base}/responses"),
        r#"{"model":"fake-large","input":"local-rm"}"#,
        &["x-warden-session: s-local"],
    );
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    let output = v["output"].as_array().expect("output");
    assert!(
        output.iter().all(|i| i["type"] != "local_shell_call"),
        "{body}"
    );
    assert_eq!(output[0]["type"], "message", "{body}");
    assert!(
        output[0]["content"][0]["text"]
            .as_str()
            .unwrap_or("")
            .contains("local_shell"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_held_until_checked() {
    let w = world().await;
    let (_llm, base) = w.llm(&w.daemon.addr.to_string(), &["--redact-detected"]);

    // Allowed: the provider's events pass byte for byte.
    let request = r#"{"model":"fake-large","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"echo"}]}"#;
    let (status, through) = post(&format!("{base}/chat/completions"), request, &[]);
    let (_, direct) = post(&format!("{}/chat/completions", w.upstream()), request, &[]);
    assert_eq!(status, 200);
    assert!(
        direct.matches("data: ").count() > 10,
        "fragmented: {direct}"
    );
    assert_eq!(through, direct);
    let v = sdk(&base, "s-stream-echo", "chat-stream", "echo");
    assert_eq!(
        v["tool_calls"][0]["arguments"], "{\"command\": \"echo hello\"}",
        "{v}"
    );
    assert_eq!(v["finish_reason"], "tool_calls");
    assert_eq!(v["usage"], serde_json::json!([21, 7]));

    // `rm -rf /` in fragments: never a callable call; parallel calls keep the allowed one.
    let v = sdk(&base, "s-stream-rm", "chat-stream", "rm");
    assert_eq!(v["tool_calls"], serde_json::json!([]), "{v}");
    assert_eq!(v["finish_reason"], "stop");
    assert!(
        v["content"].as_str().unwrap_or("").contains("was not run"),
        "{v}"
    );
    assert_eq!(
        v["usage"],
        serde_json::json!([21, 7]),
        "the usage chunk survives"
    );
    let v = sdk(&base, "s-stream-both", "chat-stream", "both");
    let calls = v["tool_calls"].as_array().expect("calls");
    assert_eq!(calls.len(), 1, "{v}");
    assert_eq!(calls[0]["arguments"], "{\"command\": \"echo hello\"}");

    // A key split over several events is still found and redacted.
    let v = sdk(&base, "s-stream-leak", "chat-stream", "leak");
    let content = v["content"].as_str().unwrap_or("");
    assert!(
        !content.contains("sk-proj-") && content.contains("[REDACTED:"),
        "{content}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_streams_are_held_until_checked() {
    let w = world().await;
    let (_llm, base) = w.llm(&w.daemon.addr.to_string(), &["--redact-detected"]);

    // Allowed: the provider's events pass byte for byte.
    let request = r#"{"model":"fake-large","stream":true,"input":"echo"}"#;
    let (status, through) = post(&format!("{base}/responses"), request, &[]);
    let (_, direct) = post(&format!("{}/responses", w.upstream()), request, &[]);
    assert_eq!(status, 200);
    assert!(
        direct
            .matches("event: response.function_call_arguments.delta")
            .count()
            > 3,
        "fragmented: {direct}"
    );
    assert_eq!(through, direct);
    let v = sdk(&base, "s-rstream-echo", "responses-stream", "echo");
    assert_eq!(v["output"][0]["type"], "function_call", "{v}");
    assert_eq!(v["output"][0]["arguments"], "{\"command\": \"echo hello\"}");
    assert_eq!(
        v["from_deltas"]["arguments"],
        serde_json::json!(["{\"command\": \"echo hello\"}"])
    );
    assert_eq!(v["usage"], serde_json::json!([11, 4]));

    // Usage is reported as for non-streamed calls.
    let info = w.session("s-rstream-echo").await;
    assert_eq!((info.reports, info.tokens), (1, 15), "{info:?}");

    // `rm -rf /` in argument deltas: never a function_call, neither in the events nor
    // in the final response; the refusal is text, and the usage survives.
    let v = sdk(&base, "s-rstream-rm", "responses-stream", "rm");
    let types: Vec<&str> = v["output"]
        .as_array()
        .expect("output")
        .iter()
        .map(|o| o["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(types, ["message"], "{v}");
    assert_eq!(v["from_deltas"]["arguments"], serde_json::json!([]), "{v}");
    for text in [&v["text"], &v["from_deltas"]["text"]] {
        let text = text.as_str().unwrap_or("");
        assert!(
            text.contains("[warden] The tool call `run_command` was not run"),
            "{v}"
        );
    }
    assert!(
        !v["events"]
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e == "response.function_call_arguments.delta"),
        "{v}"
    );
    assert_eq!(v["usage"], serde_json::json!([11, 4]));

    // Parallel calls: the allowed one stays, the refused one becomes a message.
    let v = sdk(&base, "s-rstream-both", "responses-stream", "both");
    assert_eq!(v["output"][0]["type"], "function_call", "{v}");
    assert_eq!(v["output"][0]["arguments"], "{\"command\": \"echo hello\"}");
    assert_eq!(v["output"][1]["type"], "message", "{v}");
    assert_eq!(
        v["from_deltas"]["arguments"],
        serde_json::json!(["{\"command\": \"echo hello\"}"])
    );

    // A key split over several text deltas is still found and redacted, in the deltas
    // and in the final response.
    let v = sdk(&base, "s-rstream-leak", "responses-stream", "leak");
    for text in [&v["text"], &v["from_deltas"]["text"]] {
        let text = text.as_str().unwrap_or("");
        assert!(
            !text.contains("sk-proj-")
                && !text.contains("ops@example.com")
                && text.contains("[REDACTED:"),
            "{v}"
        );
    }
}
