//! Alerts end to end: real daemons post to a real local HTTP receiver
//! (`alerts/receiver.rs`) from the durable outbox: signed JSON and Slack bodies, retries
//! of 5xx but not 4xx, delivery after a restart, and exactly one delivery of each
//! alert when two replicas share one PostgreSQL database.

#[path = "alerts/receiver.rs"]
mod receiver;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use receiver::{Receiver, always, script};
use tonic::Request;
use warden_proto::v1::admin_client::AdminClient;
use warden_proto::v1::audit_client::AuditClient;
use warden_proto::v1::decisions_client::DecisionsClient;
use warden_proto::v1::{AuditVerifyRequest, BreakGlassRequest, Verdict};
use warden_server::alerts::verify_signature;
use warden_server::store::{OutboxRow, Store};
use warden_tests::{
    Backend, Channel, Daemon, TestDb, both_backends, evaluate, exec_action, wardend, wardend_cli,
};

/// The variable the signing key is passed in, and the key.
const KEY_VAR: &str = "WARDEN_TEST_ALERT_KEY";
const KEY: &str = "alert-signing-key-for-tests-0123";
/// Fast retries, so tests do not wait for production backoff.
const FAST: [&str; 6] = [
    "--alert-retry-base",
    "100ms",
    "--alert-retry-max",
    "400ms",
    "--alert-poll",
    "50ms",
];
const WAIT: Duration = Duration::from_secs(20);

/// `rm` is denied, `deploy` needs approval, anything else is allowed; `routes` is the
/// `alerts:` list.
fn policy(routes: &str) -> String {
    format!(
        r#"version: 1
name: alerts-test
default: allow
rules:
  - id: no-rm
    decision: deny
    reason: recursive deletes are refused
    match: {{ channel: exec, tool: rm }}
  - id: deploy-needs-approval
    decision: require_approval
    reason: deploys need a human
    match: {{ channel: exec, tool: deploy }}
alerts:
{routes}"#
    )
}

struct Files {
    dir: tempfile::TempDir,
    policy: PathBuf,
}

fn files(yaml: &str) -> Files {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, yaml).unwrap();
    Files { dir, policy }
}

fn rm(session: &str) -> warden_proto::v1::Action {
    exec_action(session, &["rm", "-rf", "/srv/build"])
}

async fn outbox(store: &Store) -> Vec<OutboxRow> {
    store.alert_list(None, 10_000).await.unwrap()
}

/// Waits until `done` holds for the outbox; panics with the rows after `within`.
async fn wait_outbox(
    store: &Store,
    within: Duration,
    done: impl Fn(&[OutboxRow]) -> bool,
) -> Vec<OutboxRow> {
    let deadline = Instant::now() + within;
    loop {
        let rows = outbox(store).await;
        if done(&rows) {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "outbox did not settle: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn all_delivered(n: usize) -> impl Fn(&[OutboxRow]) -> bool {
    move |rows| rows.len() == n && rows.iter().all(|r| r.status == "delivered")
}

/// `wardend serve` with extra environment variables (the harness's `Daemon` passes
/// none), stopped with SIGTERM and killed on drop.
struct EnvDaemon {
    addr: SocketAddr,
    child: Child,
}

impl EnvDaemon {
    fn start(db: &str, args: &[&str], env: &[(&str, &str)]) -> EnvDaemon {
        let mut child = Command::new(wardend())
            .args(["serve", "--listen", "127.0.0.1:0", "--db", db])
            .args(args)
            .envs(env.iter().copied())
            .env("WARDEN_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wardend");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.split("listening on ").nth(1) {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("wardend did not start")
            .parse()
            .unwrap();
        EnvDaemon { addr, child }
    }

    async fn channel(&self) -> Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    async fn decisions(&self) -> DecisionsClient<Channel> {
        DecisionsClient::new(self.channel().await)
    }
}

impl Drop for EnvDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A deny and an approval request reach a signed JSON route with every field, and the
/// deny also a Slack route; an allow sends nothing.
async fn decisions_alert_signed_json_and_slack(kind: Backend) {
    let db = TestDb::of(kind).await;
    let hook = Receiver::start(always(200)).await;
    let f = files(&policy(&format!(
        r#"  - id: security
    events: [deny, require_approval]
    url: {json}
    secret_env: {KEY_VAR}
  - id: chat
    events: [deny]
    url: {slack}
    format: slack
    timeout: 2s
"#,
        json = hook.url("/json"),
        slack = hook.url("/slack"),
    )));
    let daemon = EnvDaemon::start(
        &db.url,
        &["--policy", f.policy.to_str().unwrap()],
        &[(KEY_VAR, KEY)],
    );
    let mut client = daemon.decisions().await;
    let denied = evaluate(&mut client, rm("s1")).await;
    assert_eq!(denied.verdict(), Verdict::Deny);
    let held = evaluate(&mut client, exec_action("s1", &["deploy", "prod"])).await;
    assert_eq!(held.verdict(), Verdict::RequireApproval);
    let allowed = evaluate(&mut client, exec_action("s1", &["ls"])).await;
    assert_eq!(allowed.verdict(), Verdict::Allow);

    let got = hook.wait_for(3, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hook.requests().len(), 3, "{got:#?}");
    let by = |path: &str, event: &str| {
        got.iter()
            .find(|r| r.path == path && r.header("x-warden-event") == event)
            .unwrap_or_else(|| panic!("no {event} at {path}: {got:#?}"))
    };

    // JSON, signed over the exact body bytes.
    let deny = by("/json", "deny");
    assert_eq!(deny.header("content-type"), "application/json");
    let signature = deny.header("x-warden-signature");
    assert!(
        verify_signature(KEY.as_bytes(), &deny.body, signature),
        "{signature}"
    );
    let mut tampered = deny.body.clone();
    tampered[5] ^= 1;
    assert!(!verify_signature(KEY.as_bytes(), &tampered, signature));
    assert!(!verify_signature(b"another key", &deny.body, signature));
    let body = deny.json();
    let id = denied.id.as_ref().unwrap();
    assert_eq!(body["id"], deny.delivery());
    assert!(deny.delivery().starts_with("alr-"), "{}", deny.delivery());
    assert_eq!(body["event"], "deny");
    assert_eq!(body["tenant"], "default");
    assert_eq!(body["agent"], "test-agent");
    assert_eq!(body["session"], "s1");
    assert_eq!(body["decision_seq"], id.seq);
    assert_eq!(body["verdict"], "deny");
    assert_eq!(body["rules"], serde_json::json!(["no-rm"]));
    assert_eq!(body["reason"], denied.reason);
    assert_eq!(body["policy_version"], denied.policy_version);
    assert_eq!(body["zone"], "safe");
    assert!(body["time"].as_str().unwrap().ends_with('Z'), "{body}");
    assert_eq!(body["details"]["channel"], "exec");
    assert_eq!(body["details"]["tool"], "rm");
    assert_eq!(body["details"]["command"], "rm -rf /srv/build");

    let approval = by("/json", "require_approval").json();
    assert_eq!(approval["verdict"], "require_approval");
    assert_eq!(approval["details"]["approval_id"], held.approval_id);
    assert_eq!(approval["decision_seq"], held.id.as_ref().unwrap().seq);

    // Slack: unsigned, a readable line in `text`.
    let slack = by("/slack", "deny");
    assert_eq!(slack.header("x-warden-signature"), "");
    let text = slack.json()["text"].as_str().unwrap().to_string();
    assert!(
        text.contains("deny")
            && text.contains("test-agent")
            && text.contains("recursive deletes are refused"),
        "{text}"
    );

    let store = warden_tests::store(&db).await;
    let rows = wait_outbox(&store, WAIT, all_delivered(3)).await;
    for r in &rows {
        assert_eq!(r.attempts, 1, "{r:?}");
        assert_eq!(r.last_status, 200, "{r:?}");
        assert_eq!(r.lease_owner, "", "{r:?}");
        assert!(r.delivered_us > 0, "{r:?}");
    }
    let secured: Vec<_> = rows.iter().filter(|r| r.route_id == "security").collect();
    assert!(
        secured.iter().all(|r| r.secret_env == KEY_VAR),
        "the outbox names the variable"
    );
    assert!(
        rows.iter()
            .all(|r| !r.payload.contains(KEY) && !r.secret_env.contains(KEY))
    );
    store.close().await;
    drop(daemon);
    db.drop_pg().await;
}
both_backends!(
    decisions_alert,
    super::decisions_alert_signed_json_and_slack
);

/// 500 then 200: delivered by the second attempt, same delivery id and body. 400: given
/// up at once, never sent again.
async fn retries_server_errors_not_client_errors(kind: Backend) {
    let db = TestDb::of(kind).await;
    let flaky = Receiver::start(script(&[500])).await;
    let strict = Receiver::start(always(400)).await;
    let f = files(&policy(&format!(
        "  - {{ id: flaky, events: [deny], url: {} }}\n  - {{ id: strict, events: [deny], url: {} }}\n",
        flaky.url("/hook"),
        strict.url("/hook"),
    )));
    let mut args = vec!["--policy", f.policy.to_str().unwrap()];
    args.extend(FAST);
    let daemon = Daemon::start(&db.url, &args);
    let mut client = daemon.decisions().await;
    assert_eq!(
        evaluate(&mut client, rm("s1")).await.verdict(),
        Verdict::Deny
    );

    let tries = flaky.wait_for(2, WAIT).await;
    assert_eq!(tries[0].status, 500);
    assert_eq!(tries[1].status, 200);
    assert_eq!(tries[0].delivery(), tries[1].delivery());
    assert_eq!(tries[0].body, tries[1].body);
    assert_eq!(tries[0].header("x-warden-attempt"), "1");
    assert_eq!(tries[1].header("x-warden-attempt"), "2");
    let gap = tries[1].at - tries[0].at;
    assert!(gap >= Duration::from_millis(90), "retried after {gap:?}");

    let store = warden_tests::store(&db).await;
    let rows = wait_outbox(&store, WAIT, |rows| {
        rows.len() == 2 && rows.iter().all(|r| r.status != "pending")
    })
    .await;
    let row = |route: &str| rows.iter().find(|r| r.route_id == route).unwrap().clone();
    let ok = row("flaky");
    assert_eq!(
        (ok.status.as_str(), ok.attempts, ok.last_status),
        ("delivered", 2, 200),
        "{ok:?}"
    );
    let refused = row("strict");
    assert_eq!(
        (
            refused.status.as_str(),
            refused.attempts,
            refused.last_status
        ),
        ("failed", 1, 400),
        "{refused:?}"
    );
    assert!(
        refused.last_error.contains("400") && refused.last_error.contains("scripted answer 400"),
        "{refused:?}"
    );
    // Several retry intervals later, still exactly one request.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(strict.requests().len(), 1);
    assert_eq!(flaky.requests().len(), 2);
    store.close().await;
    drop(daemon);
    db.drop_pg().await;
}
both_backends!(retries, super::retries_server_errors_not_client_errors);

/// A receiver that takes its time holds up its own alerts only: others keep flowing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_does_not_hold_up_others() {
    let db = TestDb::sqlite().await;
    let slow = Receiver::start_at(
        "127.0.0.1:0".parse().unwrap(),
        always(200),
        Duration::from_secs(3),
    )
    .await;
    let fast = Receiver::start(always(200)).await;
    let f = files(&policy(&format!(
        "  - {{ id: slow, events: [deny], url: {} }}\n  - {{ id: fast, events: [deny], url: {} }}\n",
        slow.url("/hook"),
        fast.url("/hook"),
    )));
    let daemon = Daemon::start(&db.url, &["--policy", f.policy.to_str().unwrap()]);
    let mut client = daemon.decisions().await;
    evaluate(&mut client, rm("s1")).await;
    slow.wait_for(1, WAIT).await;
    fast.wait_for(1, WAIT).await;
    // The slow receiver is still answering the first alert.
    let asked = Instant::now();
    evaluate(&mut client, rm("s2")).await;
    fast.wait_for(2, WAIT).await;
    assert!(
        asked.elapsed() < Duration::from_millis(1500),
        "the fast route waited {:?}",
        asked.elapsed()
    );
    drop(daemon);
}

/// Alerts queued while the receiver is down survive a SIGTERM and are delivered by the
/// restarted daemon once the receiver is up.
async fn queued_alerts_survive_a_restart(kind: Backend) {
    let db = TestDb::of(kind).await;
    // A port with nothing listening on it (yet).
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let f = files(&policy(&format!(
        "  - {{ id: ops, events: [deny], url: \"http://{addr}/hook\" }}\n"
    )));
    let mut args = vec!["--policy", f.policy.to_str().unwrap()];
    args.extend(FAST);
    let first = Daemon::start(&db.url, &args);
    let mut client = first.decisions().await;
    let mut seqs = Vec::new();
    for i in 0..3 {
        let d = evaluate(&mut client, rm(&format!("s{i}"))).await;
        seqs.push(d.id.unwrap().seq);
    }
    let store = warden_tests::store(&db).await;
    wait_outbox(&store, WAIT, |rows| {
        rows.len() == 3
            && rows
                .iter()
                .all(|r| r.attempts >= 1 && !r.last_error.is_empty())
    })
    .await;
    drop(client);
    assert!(first.stop().success());
    let rows = outbox(&store).await;
    assert!(
        rows.iter()
            .all(|r| r.status == "pending" && r.lease_owner.is_empty()),
        "{rows:#?}"
    );
    assert!(
        rows[0].last_error.to_lowercase().contains("connect"),
        "{rows:#?}"
    );

    let hook = Receiver::start_at(addr, always(200), Duration::ZERO).await;
    let second = Daemon::start(&db.url, &args);
    let got = hook.wait_for(3, WAIT).await;
    let mut delivered: Vec<u64> = got
        .iter()
        .map(|r| r.json()["decision_seq"].as_u64().unwrap())
        .collect();
    delivered.sort();
    assert_eq!(delivered, seqs);
    wait_outbox(&store, WAIT, all_delivered(3)).await;
    store.close().await;
    drop(second);
    db.drop_pg().await;
}
both_backends!(restart, super::queued_alerts_survive_a_restart);

/// Two replicas on one PostgreSQL database, many denies through both, a receiver that
/// fails every third request: every alert is delivered, and none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_deliver_each_alert_once() {
    const DENIES: usize = 60;
    let db = TestDb::postgres().await;
    let hook = Receiver::start_at(
        "127.0.0.1:0".parse().unwrap(),
        std::sync::Arc::new(|n| if n % 3 == 2 { 503 } else { 200 }),
        Duration::from_millis(15),
    )
    .await;
    let f = files(&policy(&format!(
        "  - {{ id: ops, events: [deny], url: {} }}\n",
        hook.url("/hook")
    )));
    let mut args = vec!["--policy", f.policy.to_str().unwrap()];
    args.extend(FAST);
    let a = Daemon::start(&db.url, &args);
    let b = Daemon::start(&db.url, &args);
    let mut tasks = Vec::new();
    for i in 0..DENIES {
        let mut client = if i % 2 == 0 {
            a.decisions().await
        } else {
            b.decisions().await
        };
        tasks.push(tokio::spawn(async move {
            evaluate(&mut client, rm(&format!("race-{i}")))
                .await
                .id
                .unwrap()
                .seq
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort();

    let store = warden_tests::store(&db).await;
    wait_outbox(&store, Duration::from_secs(60), all_delivered(DENIES)).await;
    // Time for a duplicate to show up, if one were coming.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let got = hook.requests();
    let mut accepted: HashMap<String, usize> = HashMap::new();
    for r in got.iter().filter(|r| r.status == 200) {
        *accepted.entry(r.delivery()).or_default() += 1;
    }
    let twice: Vec<_> = accepted.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(accepted.len(), DENIES, "{} alerts accepted", accepted.len());
    let mut delivered: Vec<u64> = got
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.json()["decision_seq"].as_u64().unwrap())
        .collect();
    delivered.sort();
    assert_eq!(delivered, seqs);
    // Nothing is sent again after it was accepted.
    for r in &got {
        let accepted_at = got
            .iter()
            .filter(|x| x.status == 200 && x.delivery() == r.delivery())
            .map(|x| x.at)
            .min()
            .unwrap();
        assert!(
            r.at <= accepted_at,
            "{} was sent after it was accepted",
            r.delivery()
        );
    }
    let rows = outbox(&store).await;
    assert_eq!(
        rows.iter().map(|r| r.attempts).sum::<i64>() as usize,
        got.len()
    );
    store.close().await;
    drop((a, b));
    db.drop_pg().await;
}

/// Audit.Verify on a tampered chain alerts chain_broken; a decision lifted by a
/// break-glass grant alerts break_glass_used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_broken_and_break_glass_alerts() {
    let db = TestDb::sqlite().await;
    let hook = Receiver::start(always(204)).await;
    let f = files(&policy(&format!(
        "  - {{ id: audit, events: [chain_broken, break_glass_used], url: {} }}\n",
        hook.url("/hook")
    )));
    let token_file = f.dir.path().join("admin.token");
    let token = "alerts-test-admin-token-0123456789";
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let daemon = Daemon::start(
        &db.url,
        &[
            "--policy",
            f.policy.to_str().unwrap(),
            "--admin-token-file",
            token_file.to_str().unwrap(),
        ],
    );
    let mut client = daemon.decisions().await;
    let mut grant = Request::new(BreakGlassRequest {
        session: "bg".into(),
        reason: "incident 7: clean the build".into(),
        ttl_seconds: 600,
        issued_by: "oncall".into(),
        ..Default::default()
    });
    grant
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let grant = AdminClient::new(daemon.channel().await)
        .break_glass(grant)
        .await
        .unwrap()
        .into_inner();
    let lifted = evaluate(&mut client, rm("bg")).await;
    assert_eq!(lifted.verdict(), Verdict::Allow, "{lifted:?}");
    let got = hook.wait_for(1, WAIT).await;
    let body = got[0].json();
    assert_eq!(body["event"], "break_glass_used");
    assert_eq!(body["verdict"], "allow");
    assert_eq!(body["details"]["break_glass_id"], lifted.break_glass_id);
    assert_eq!(body["details"]["overridden_verdict"], "deny");
    assert!(
        !lifted.break_glass_id.is_empty() && format!("{grant:?}").contains(&lifted.break_glass_id)
    );

    db.exec_sql("UPDATE audit_log SET reason = 'nothing to see' WHERE seq = 2")
        .await;
    let verdict = AuditClient::new(daemon.channel().await)
        .verify(AuditVerifyRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(!verdict.ok);
    let got = hook.wait_for(2, WAIT).await;
    let body = got[1].json();
    assert_eq!(body["event"], "chain_broken");
    assert_eq!(body["decision_seq"], verdict.first_bad_seq);
    assert_eq!(body["details"]["first_bad_seq"], verdict.first_bad_seq);
    assert!(
        body["reason"].as_str().unwrap().contains("broken"),
        "{body}"
    );
}

/// Bad routes are policy errors naming file:line:column.
#[test]
fn bad_routes_are_policy_errors_with_positions() {
    let cases = [
        (
            "  - { id: a, events: [deny, denied], url: \"http://127.0.0.1:9/\" }\n",
            "14:29",
            "unknown alert event \"denied\"",
        ),
        (
            "  - id: a\n    events: [deny]\n    url: ftp://example.com/hook\n",
            "16:10",
            "only http and https",
        ),
        (
            "  - id: a\n    events: [deny]\n    url: /relative\n",
            "16:10",
            "not an absolute URL",
        ),
        (
            "  - id: a\n    events: [deny]\n    url: https://example.com/\n    secret_env: WARDEN_TEST_SURELY_UNSET_ALERT_KEY\n",
            "17:17",
            "WARDEN_TEST_SURELY_UNSET_ALERT_KEY, which is unset or empty",
        ),
        (
            "  - { id: a, events: [deny], url: \"https://example.com/\", format: xml }\n",
            "14:67",
            "unknown alert format \"xml\"",
        ),
        (
            "  - { id: a, events: [deny], url: \"https://example.com/\" }\n  - { id: a, events: [deny], url: \"https://example.com/\" }\n",
            "15:11",
            "duplicate alert route id \"a\"",
        ),
        (
            "  - { id: a, events: [deny], url: \"http://user:pw@example.com/\" }\n",
            "14:35",
            "carries credentials",
        ),
        (
            "  - { id: a, events: [], url: \"https://example.com/\" }\n",
            "14:22",
            "no `events`",
        ),
        (
            "  - { id: a, events: [deny], url: \"https://example.com/\", timeout: 5m }\n",
            "14:68",
            "`timeout` must be",
        ),
    ];
    for (routes, at, message) in cases {
        let f = files(&policy(routes));
        let path = f.policy.to_str().unwrap();
        let (code, _, err) = wardend_cli(&["policy", "validate", path]);
        assert_eq!(code, 1, "{routes}: {err}");
        assert!(
            err.contains(&format!("{path}:{at}: ")),
            "{routes}: expected {at}: {err}"
        );
        assert!(
            err.contains(message),
            "{routes}: expected {message:?}: {err}"
        );
    }
    // A good route loads, and enters the version.
    let plain = files(&policy("  []\n"));
    let routed = files(&policy(
        "  - { id: a, events: [deny], url: \"https://example.com/\" }\n",
    ));
    let version = |f: &Files| {
        let (code, out, err) = wardend_cli(&["policy", "validate", f.policy.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        out.rsplit("version ").next().unwrap().trim().to_string()
    };
    assert_ne!(version(&plain), version(&routed));
}

/// Budgets raise `budget_threshold` once per threshold and `budget_exceeded` when a
/// hard budget refuses (ahead of the plain deny for a route that takes both).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_raise_threshold_and_exceeded_alerts() {
    let db = TestDb::sqlite().await;
    let receiver = Receiver::start(always(200)).await;
    let yaml = format!(
        r#"version: 1
name: budget-alerts
default: allow
budgets:
  - {{ id: five-calls, metric: tool_calls, scope: agent, window: day, limit: 5, alert_at: [0.6, 1.0] }}
alerts:
  - {{ id: ops, events: [budget_threshold, budget_exceeded, deny], url: {} }}
"#,
        receiver.url("/hook")
    );
    let f = files(&yaml);
    let daemon = Daemon::start(&db.url, &["--policy", f.policy.to_str().unwrap()]);
    let mut client = daemon.decisions().await;
    let mut verdicts = Vec::new();
    for _ in 0..7 {
        verdicts.push(
            evaluate(&mut client, exec_action("s", &["ls"]))
                .await
                .verdict(),
        );
    }
    assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Allow).count(), 5);
    // 60% (3rd call), 100% (5th call), then one budget_exceeded per refusal (6th, 7th).
    let got = receiver.wait_for(4, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Deliveries run in parallel, so compare them in a fixed order.
    let mut events: Vec<String> = receiver
        .requests()
        .iter()
        .map(|r| r.json()["event"].as_str().unwrap_or("").to_string())
        .collect();
    events.sort();
    assert_eq!(
        events,
        [
            "budget_exceeded",
            "budget_exceeded",
            "budget_exceeded",
            "budget_threshold"
        ],
        "{got:?}"
    );
    let bodies: Vec<_> = receiver.requests().iter().map(|r| r.json()).collect();
    let threshold = bodies
        .iter()
        .find(|b| b["event"] == "budget_threshold")
        .unwrap();
    assert_eq!(threshold["details"]["budget"], "five-calls");
    assert_eq!(threshold["details"]["threshold"], 0.6);
    let refusals: Vec<_> = bodies.iter().filter(|b| b["verdict"] == "deny").collect();
    assert_eq!(refusals.len(), 2, "{bodies:?}");
    assert!(
        refusals
            .iter()
            .all(|b| b["rules"][0] == "budget:five-calls")
    );
    drop(daemon);
}

/// A rate-limit refusal raises `rate_limited` (ahead of the plain deny for a route
/// that takes both) with the limit's details and the decision's fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_raise_rate_limited_alerts() {
    let db = TestDb::sqlite().await;
    let receiver = Receiver::start(always(200)).await;
    let yaml = format!(
        r#"version: 1
name: rate-alerts
default: allow
rate_limits:
  - {{ id: commands, rate: 1/hour, burst: 2, match: {{ channel: exec }} }}
alerts:
  - {{ id: ops, events: [rate_limited, deny], url: {} }}
"#,
        receiver.url("/hook")
    );
    let f = files(&yaml);
    let daemon = Daemon::start(&db.url, &["--policy", f.policy.to_str().unwrap()]);
    let mut client = daemon.decisions().await;
    let mut refused = Vec::new();
    for _ in 0..4 {
        let d = evaluate(&mut client, exec_action("s", &["ls"])).await;
        if d.verdict() == Verdict::Deny {
            refused.push(d);
        }
    }
    assert_eq!(refused.len(), 2);
    receiver.wait_for(2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bodies: Vec<_> = receiver.requests().iter().map(|r| r.json()).collect();
    assert_eq!(bodies.len(), 2, "one alert per refusal: {bodies:?}");
    for body in &bodies {
        assert_eq!(body["event"], "rate_limited", "{body}");
        assert_eq!(body["verdict"], "deny");
        assert_eq!(body["rules"][0], "rate_limit:commands");
        assert_eq!(body["agent"], "test-agent");
        assert_eq!(body["details"]["rate_limit"], "commands");
        assert_eq!(body["details"]["rate"], "1/hour");
        assert_eq!(body["details"]["burst"], 2);
        assert!(
            body["details"]["retry_after_ms"].as_u64().unwrap() > 0,
            "{body}"
        );
    }
    let seqs: Vec<u64> = refused.iter().map(|d| d.id.as_ref().unwrap().seq).collect();
    let mut alerted: Vec<u64> = bodies
        .iter()
        .map(|b| b["decision_seq"].as_u64().unwrap())
        .collect();
    alerted.sort();
    assert_eq!(alerted, seqs);
    drop(daemon);
}
