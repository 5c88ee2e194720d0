//! `warden proxy` with real clients we did not write — curl, Python `requests`, git —
//! against local upstreams (plain HTTP and TLS through CONNECT) that record what reaches
//! them: allowed requests arrive byte-identical, refused ones never arrive, bytes are
//! reported into the session, and the daemon being down refuses (fail-closed).

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use warden_proto::v1::approvals_client::ApprovalsClient;
use warden_proto::v1::sessions_client::SessionsClient;
use warden_proto::v1::{
    Action, ApprovalStatus, ApproveRequest, GetSessionRequest, ListApprovalsRequest, ReportRequest,
    ResultMeta, SessionInfo, SessionRef, Zone, decisions_client::DecisionsClient,
};
use warden_tests::proxy::{Certs, Upstream, start_proxy, tests_dir};
use warden_tests::python;
use warden_tests::{Daemon, TestDb, warden};

const POLICY: &str = r#"
version: 1
name: proxy-test
default: allow
profiles: [baseline]
rules:
  - id: no-blocked
    decision: deny
    reason: The blocked area is off limits
    match:
      channel: [http]
      resource: ["http://upstream.test*/blocked/**"]
  - id: no-forbidden-host
    decision: deny
    reason: forbidden.test is not a place for agents
    match:
      channel: [http]
      resource: ["https://forbidden.test*/**"]
  - id: ask-for-admin
    decision: require_approval
    reason: Admin pages need a human
    match:
      channel: [http]
      resource: ["http://upstream.test*/admin/**"]
"#;

struct World {
    dir: tempfile::TempDir,
    certs: Certs,
    plain: Upstream,
    tls: Upstream,
    daemon: Daemon,
    _db: TestDb,
}

async fn world(policy: &str) -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = Certs::make(dir.path());
    let plain = Upstream::start(dir.path(), "plain", None, dir.path());
    let tls = Upstream::start(dir.path(), "tls", Some(&certs), dir.path());
    let policy_file = dir.path().join("policy.yaml");
    std::fs::write(&policy_file, policy).expect("write policy");
    let db = TestDb::sqlite().await;
    let daemon = Daemon::start(&db.url, &["--policy", policy_file.to_str().expect("path")]);
    World {
        dir,
        certs,
        plain,
        tls,
        daemon,
        _db: db,
    }
}

fn curl(proxy: &str, args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "30", "-x", proxy])
        .args(args)
        .output()
        .expect("curl")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// curl `-i`: status code and body.
fn status_and_body(out: &Output) -> (u16, String) {
    let all = text(&out.stdout);
    let (head, body) = all.split_once("\r\n\r\n").unwrap_or((&all, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

async fn session(daemon: &Daemon, agent: &str, session: &str) -> SessionInfo {
    SessionsClient::new(daemon.channel().await)
        .get(GetSessionRequest {
            session: Some(SessionRef {
                tenant: String::new(),
                agent: agent.into(),
                session: session.into(),
            }),
        })
        .await
        .expect("Sessions.Get")
        .into_inner()
}

/// Waits for the proxy's asynchronous reports to land.
async fn session_after_reports(
    daemon: &Daemon,
    agent: &str,
    sess: &str,
    reports: u64,
) -> SessionInfo {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = session(daemon, agent, sess).await;
        if s.reports >= reports || Instant::now() > deadline {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_requests_pass_byte_identical_and_refusals_never_arrive() {
    let w = world(POLICY).await;
    let (_proxy, proxy) = start_proxy(&w.daemon.addr.to_string(), &[]);
    let base = format!("http://upstream.test:{}", w.plain.port);

    // A GET: the upstream sees origin-form, the client's headers, no proxy headers.
    let out = curl(
        &proxy,
        &[
            "-i",
            "-H",
            "X-Custom: kept",
            "-H",
            "Proxy-Connection: keep-alive",
            &format!("{base}/hello?q=1"),
        ],
    );
    let (status, body) = status_and_body(&out);
    assert_eq!(
        (status, body.as_str()),
        (200, "ok GET /hello?q=1\n"),
        "{}",
        text(&out.stderr)
    );
    let got = w.plain.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["path"], "/hello?q=1");
    let headers: Vec<(String, String)> = got[0]["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .map(|h| {
            (
                h[0].as_str().unwrap_or("").to_ascii_lowercase(),
                h[1].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(
        headers.contains(&("x-custom".into(), "kept".into())),
        "{headers:?}"
    );
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "host" && v == &format!("upstream.test:{}", w.plain.port))
    );
    assert!(
        !headers.iter().any(|(k, _)| k.starts_with("proxy-")),
        "{headers:?}"
    );

    // A 1 MiB binary POST streams through both ways byte for byte.
    let payload: Vec<u8> = (0..1_048_576u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let file = w.dir.path().join("payload.bin");
    std::fs::write(&file, &payload).expect("payload");
    let echoed = w.dir.path().join("echoed.bin");
    let out = curl(
        &proxy,
        &[
            "--data-binary",
            &format!("@{}", file.display()),
            "-o",
            echoed.to_str().expect("path"),
            &format!("{base}/echo"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&echoed).expect("echoed"), payload);
    let last = w.plain.received().pop().expect("echo request");
    assert_eq!(last["body_len"], 1_048_576);
    assert_eq!(last["body_sha256"], sha256_hex(&payload));

    // Keep-alive: two URLs in one curl run share one client connection.
    let out = curl(
        &proxy,
        &[
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{num_connects} ",
            &format!("{base}/a"),
            &format!("{base}/b"),
        ],
    );
    assert_eq!(text(&out.stdout).trim(), "1 0", "{}", text(&out.stderr));

    // Denied: 403 with the decision as JSON; the upstream never hears of it.
    let before = w.plain.received().len();
    let out = curl(
        &proxy,
        &[
            "-i",
            "-X",
            "POST",
            "-d",
            "x=1",
            &format!("{base}/blocked/thing"),
        ],
    );
    let (status, body) = status_and_body(&out);
    assert_eq!(status, 403, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON refusal");
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["rules"], serde_json::json!(["no-blocked"]));
    assert_eq!(v["reason"], "The blocked area is off limits");
    assert!(v["decision_id"]["seq"].as_u64().unwrap_or(0) > 0, "{v}");
    assert_eq!(v["decision_id"]["hash"].as_str().map(str::len), Some(64));

    // Approval required: 403 with the approval id, nothing forwarded.
    let out = curl(&proxy, &["-i", &format!("{base}/admin/users")]);
    let (status, body) = status_and_body(&out);
    let v: Value = serde_json::from_str(&body).expect("JSON refusal");
    assert_eq!(
        (status, v["decision"].as_str()),
        (403, Some("require_approval"))
    );
    assert!(
        v["approval_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("apr-")),
        "{v}"
    );
    assert_eq!(
        w.plain.received().len(),
        before,
        "a refused request reached the upstream"
    );

    // A refused CONNECT: curl reports the 403; the TLS upstream sees nothing.
    let out = curl(
        &proxy,
        &[
            "--cacert",
            w.certs.ca.to_str().expect("path"),
            &format!("https://forbidden.test:{}/", w.tls.port),
        ],
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("403"), "{}", text(&out.stderr));
    assert!(w.tls.received().is_empty());

    // An allowed CONNECT: TLS end to end with the upstream's own certificate.
    let out = curl(
        &proxy,
        &[
            "--cacert",
            w.certs.ca.to_str().expect("path"),
            "--data-binary",
            "tls body",
            &format!("https://upstream.test:{}/echo", w.tls.port),
        ],
    );
    assert_eq!(text(&out.stdout), "tls body", "{}", text(&out.stderr));
    assert_eq!(w.tls.paths(), ["/echo"]);

    // Requests the proxy will not make.
    for (args, want) in [
        (
            vec![
                "-i".to_string(),
                format!(
                    "http://127.0.0.1:{}/",
                    proxy.rsplit(':').next().unwrap_or("")
                ),
            ],
            502,
        ),
        (
            vec![
                "-i".into(),
                "-H".into(),
                format!("X-Big: {}", "a".repeat(70_000)),
                format!("{base}/big"),
            ],
            431,
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (status, body) = status_and_body(&curl(&proxy, &args));
        assert_eq!(status, want, "{args:?}: {body}");
    }
    // An origin-form request is not a proxy request.
    let raw = Command::new("curl")
        .args([
            "-sS",
            "-i",
            "--max-time",
            "10",
            &format!("{proxy}/just/a/path"),
        ])
        .output()
        .expect("curl");
    let (status, body) = status_and_body(&raw);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("absolute URL"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_requests_and_git_work_through_the_proxy() {
    let w = world(POLICY).await;
    let (_proxy, proxy) = start_proxy(&w.daemon.addr.to_string(), &[]);

    // Python `requests` with proxies=: plain POST, HTTPS GET over CONNECT, a denied
    // plain request and a denied tunnel, one keep-alive Session.
    let body = b"{\"k\": \"v\", \"bin\": \"\x01\x02\"}";
    let plan = serde_json::json!([
        {"method": "POST", "url": format!("http://upstream.test:{}/echo/json", w.plain.port), "body_hex": hex::encode(body)},
        {"method": "GET", "url": format!("https://upstream.test:{}/bytes/100000", w.tls.port)},
        {"method": "PUT", "url": format!("http://upstream.test:{}/blocked/x", w.plain.port), "body_hex": "00"},
        {"method": "GET", "url": format!("https://forbidden.test:{}/", w.tls.port)},
    ]);
    let out = Command::new(python())
        .arg(tests_dir().join("proxy/requests_client.py"))
        .args([
            &proxy,
            w.certs.ca.to_str().expect("path"),
            &plan.to_string(),
        ])
        .output()
        .expect("python requests client");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let results: Value = serde_json::from_slice(&out.stdout).expect("client output");
    assert_eq!(results[0]["status"], 200);
    assert_eq!(results[0]["body_hex"], hex::encode(body));
    assert_eq!(results[1]["status"], 200);
    assert_eq!(results[1]["body_hex"].as_str().map(str::len), Some(200_000));
    assert_eq!(results[2]["status"], 403);
    let refusal: Value = serde_json::from_slice(
        &hex::decode(results[2]["body_hex"].as_str().unwrap_or("")).unwrap_or_default(),
    )
    .expect("JSON");
    assert_eq!(refusal["rules"], serde_json::json!(["no-blocked"]));
    assert_eq!(results[3]["error"], "proxy", "{}", results[3]);
    assert!(
        results[3]["detail"].as_str().unwrap_or("").contains("403"),
        "{}",
        results[3]
    );
    assert_eq!(w.plain.paths(), ["/echo/json"]);
    assert_eq!(w.tls.paths(), ["/bytes/100000"]);
    let got = &w.plain.received()[0];
    assert_eq!(got["body_sha256"], sha256_hex(body));

    // git clone over HTTPS_PROXY (git's dumb HTTP protocol from the TLS upstream).
    let repo = w.dir.path().join("src");
    let git = |args: &[&str], cwd: &Path| {
        let out = Command::new("git")
            .args(args)
            .current_dir(cwd)
            .env("HTTPS_PROXY", &proxy)
            .env("GIT_SSL_CAINFO", &w.certs.ca)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", w.dir.path())
            .output()
            .expect("git");
        assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    };
    std::fs::create_dir(&repo).expect("mkdir");
    git(&["init", "-q"], &repo);
    std::fs::write(repo.join("README"), "cloned through warden proxy\n").expect("write");
    git(&["add", "README"], &repo);
    git(
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "one",
        ],
        &repo,
    );
    git(&["clone", "-q", "--bare", "src", "repo.git"], w.dir.path());
    git(&["update-server-info"], &w.dir.path().join("repo.git"));
    git(
        &[
            "clone",
            "-q",
            &format!("https://git.test:{}/files/repo.git", w.tls.port),
            "cloned",
        ],
        w.dir.path(),
    );
    assert_eq!(
        std::fs::read_to_string(w.dir.path().join("cloned/README")).expect("cloned file"),
        "cloned through warden proxy\n"
    );
    assert!(
        w.tls.paths().iter().any(|p| p.contains("/info/refs")),
        "{:?}",
        w.tls.paths()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_are_reported_and_feed_zones_across_channels() {
    let w = world(POLICY).await;
    let (_proxy, proxy) = start_proxy(&w.daemon.addr.to_string(), &[]);
    let base = format!("http://upstream.test:{}", w.plain.port);

    // One exchange in its own session (named by Proxy-Authorization): the report
    // carries exactly the body bytes each way.
    let out = curl(
        &proxy,
        &[
            "--proxy-user",
            "counter/s-bytes:",
            "--data-binary",
            &"z".repeat(5000),
            &format!("{base}/echo"),
        ],
    );
    assert_eq!(text(&out.stdout).len(), 5000, "{}", text(&out.stderr));
    let s = session_after_reports(&w.daemon, "counter", "s-bytes", 1).await;
    assert_eq!((s.actions, s.reports, s.bytes), (1, 1, 10_000), "{s:?}");

    // A tunnel reports its bytes when it closes.
    let out = curl(
        &proxy,
        &[
            "--proxy-user",
            "counter/s-tunnel:",
            "--cacert",
            w.certs.ca.to_str().expect("path"),
            &format!("https://upstream.test:{}/bytes/30000", w.tls.port),
        ],
    );
    assert_eq!(text(&out.stdout).len(), 30_000);
    let s = session_after_reports(&w.daemon, "counter", "s-tunnel", 1).await;
    assert!(s.bytes > 30_000, "TLS overhead included: {s:?}");

    // A secret seen on another channel (as `warden mcp` reports a tool result tagged
    // secret) makes the session sensitive; the next external request through the proxy
    // in that session is refused and never arrives.
    let mut decisions = DecisionsClient::new(w.daemon.channel().await);
    let read = Action {
        agent: "proxy-test".into(),
        session: "s-cross".into(),
        channel: "mcp".into(),
        tool: "files__read_file".into(),
        resource: "/srv/app/config.yaml".into(),
        ..Default::default()
    };
    let d = warden_tests::evaluate(&mut decisions, read.clone()).await;
    decisions
        .report(ReportRequest {
            then_evaluate: Vec::new(),
            action: Some(read),
            decision_seq: d.id.map_or(0, |i| i.seq),
            result: Some(ResultMeta {
                tags: vec!["secret".into()],
                bytes: 120,
                ..Default::default()
            }),
        })
        .await
        .expect("report");
    assert_eq!(
        session(&w.daemon, "proxy-test", "s-cross").await.zone(),
        Zone::Sensitive
    );
    let before = w.plain.received().len();
    let out = curl(
        &proxy,
        &[
            "-i",
            "--proxy-user",
            "proxy-test/s-cross:",
            "-d",
            "stolen=1",
            &format!("{base}/upload"),
        ],
    );
    let (status, body) = status_and_body(&out);
    assert_eq!(status, 403, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        v["rules"],
        serde_json::json!(["baseline/deny-egress-from-sensitive-session"])
    );
    assert_eq!(w.plain.received().len(), before);
    // The same request in a fresh session goes through.
    let out = curl(
        &proxy,
        &[
            "--proxy-user",
            "proxy-test/s-clean:",
            "-d",
            "fine=1",
            &format!("{base}/upload"),
        ],
    );
    assert_eq!(text(&out.stdout), "ok POST /upload\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_budgets_refuse_once_spent() {
    let policy = format!(
        "{POLICY}budgets:\n  - id: egress-cap\n    metric: egress_bytes\n    scope: session\n    window: session\n    limit: 50000\n    match: {{ channel: http }}\n"
    );
    let w = world(&policy).await;
    let (_proxy, proxy) = start_proxy(&w.daemon.addr.to_string(), &[]);
    let url = format!("http://upstream.test:{}/bytes/40000", w.plain.port);
    let out = curl(
        &proxy,
        &[
            "--proxy-user",
            "b/s-budget:",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &url,
        ],
    );
    assert_eq!(text(&out.stdout), "200");
    session_after_reports(&w.daemon, "b", "s-budget", 1).await;
    let out = curl(
        &proxy,
        &[
            "--proxy-user",
            "b/s-budget:",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &url,
        ],
    );
    assert_eq!(
        text(&out.stdout),
        "200",
        "40,000 of 50,000 used: still room"
    );
    session_after_reports(&w.daemon, "b", "s-budget", 2).await;
    let out = curl(&proxy, &["-i", "--proxy-user", "b/s-budget:", &url]);
    let (status, body) = status_and_body(&out);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("budget:egress-cap"), "{body}");
    assert_eq!(w.plain.received().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_daemon_means_503_unless_fail_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = Upstream::start(dir.path(), "plain", None, dir.path());
    // A port nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_addr = dead.local_addr().expect("addr").to_string();
    drop(dead);
    let url = format!("http://upstream.test:{}/x", plain.port);

    let (_p, proxy) = start_proxy(&dead_addr, &["--timeout-ms", "1000"]);
    let (status, body) = status_and_body(&curl(&proxy, &["-i", &url]));
    assert_eq!(status, 503, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v["decision"], "none");
    let reason = v["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("cannot reach wardend") && reason.contains("fail-closed"),
        "{reason}"
    );
    assert!(plain.received().is_empty());

    let (p, proxy) = start_proxy(&dead_addr, &["--timeout-ms", "1000", "--fail-open"]);
    let (status, body) = status_and_body(&curl(&proxy, &["-i", &url]));
    assert_eq!((status, body.as_str()), (200, "ok GET /x\n"));
    assert!(p.log().contains("WITHOUT a policy decision"), "{}", p.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_guard_the_proxy_and_name_the_session() {
    let w = world(POLICY).await;
    let token = w.dir.path().join("token");
    std::fs::write(&token, "s3cret-token\n").expect("token");
    let (_p, proxy) = start_proxy(
        &w.daemon.addr.to_string(),
        &["--token-file", token.to_str().expect("path")],
    );
    let url = format!("http://upstream.test:{}/who", w.plain.port);
    for creds in [None, Some("bot/s-tok:wrong")] {
        let mut args = vec!["-i"];
        if let Some(c) = creds {
            args.extend(["--proxy-user", c]);
        }
        args.push(&url);
        let out = curl(&proxy, &args);
        let (status, _) = status_and_body(&out);
        assert_eq!(status, 407, "{creds:?}");
        assert!(
            text(&out.stdout)
                .to_ascii_lowercase()
                .contains("proxy-authenticate: basic")
        );
    }
    assert!(w.plain.received().is_empty());
    let out = curl(&proxy, &["--proxy-user", "bot/s-tok:s3cret-token", &url]);
    assert_eq!(text(&out.stdout), "ok GET /who\n");
    assert_eq!(session(&w.daemon, "bot", "s-tok").await.actions, 1);

    // Off loopback without a token would be an open relay: refused at start.
    let out = Command::new(warden())
        .args([
            "proxy",
            "--daemon",
            &w.daemon.addr.to_string(),
            "--listen",
            "0.0.0.0:0",
        ])
        .output()
        .expect("warden proxy");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("open relay"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_open_transfers_finish() {
    let w = world(POLICY).await;
    let (mut p, proxy) = start_proxy(&w.daemon.addr.to_string(), &["--drain-timeout", "20s"]);
    let url = format!("http://upstream.test:{}/bytes/3000000", w.plain.port);
    let out_file = w.dir.path().join("slow.bin");
    // About three seconds at 1 MB/s.
    let slow = Command::new("curl")
        .args([
            "-sS",
            "--limit-rate",
            "1M",
            "-x",
            &proxy,
            "-o",
            out_file.to_str().expect("path"),
            "-w",
            "%{size_download}",
            &url,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("curl");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let status = p.stop();
    assert!(status.success(), "{status:?}\n{}", p.log());
    let out = slow.wait_with_output().expect("curl");
    assert_eq!(
        text(&out.stdout),
        "3000000",
        "the transfer in flight finished"
    );
    assert!(p.log().contains("drained"), "{}", p.log());
    // And the proxy is gone.
    let out = curl(&proxy, &["--connect-timeout", "2", &url]);
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_can_be_waited_for_and_slow_upstreams_time_out() {
    let w = world(POLICY).await;
    let (p, proxy) = start_proxy(
        &w.daemon.addr.to_string(),
        &["--wait-approval=30s", "--upstream-timeout", "1s"],
    );
    let url = format!("http://upstream.test:{}/admin/panel", w.plain.port);
    let held = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "40",
            "-x",
            &proxy,
            "-w",
            " %{http_code}",
            &url,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("curl");
    // The request waits on a pending approval; an operator grants it.
    let mut approvals = ApprovalsClient::new(w.daemon.channel().await);
    let deadline = Instant::now() + Duration::from_secs(10);
    let id = loop {
        let list = approvals
            .list(ListApprovalsRequest {
                status: ApprovalStatus::Pending as i32,
                ..Default::default()
            })
            .await
            .expect("Approvals.List")
            .into_inner();
        if let Some(a) = list.approvals.first() {
            break a.id.clone();
        }
        assert!(Instant::now() < deadline, "no pending approval appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        w.plain.received().is_empty(),
        "nothing is forwarded before the grant"
    );
    approvals
        .approve(ApproveRequest {
            id,
            approver: "ops@example.com".into(),
            note: "fine".into(),
            ttl_seconds: 0,
        })
        .await
        .expect("approve");
    let out = held.wait_with_output().expect("curl");
    assert_eq!(text(&out.stdout), "ok GET /admin/panel\n 200");
    assert_eq!(w.plain.paths(), ["/admin/panel"]);

    // An upstream that does not answer in time: 504 with the reason, and the report
    // carries the error.
    let (status, body) = status_and_body(&curl(
        &proxy,
        &[
            "-i",
            &format!("http://upstream.test:{}/slow/3", w.plain.port),
        ],
    ));
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("did not answer within"), "{body}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !p.log().contains("/slow/3") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = p.log();
    let line = log
        .lines()
        .find(|l| l.contains("/slow/3"))
        .unwrap_or_default();
    assert!(
        line.contains("status=504") && line.contains("did not answer"),
        "{log}"
    );
}
