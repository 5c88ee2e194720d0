//! Budgets end to end: exact admission across two replicas on one PostgreSQL, the
//! single-node path on SQLite, usage history, and bad input.

use std::collections::HashMap;

use tonic::Code;
use warden_proto::v1::budgets_client::BudgetsClient;
use warden_proto::v1::{
    Action, AuditQueryRequest, Decision, GetUsageRequest, GetUsageResponse, ReportRequest,
    ResultMeta, Usage, Verdict, audit_client::AuditClient,
};
use warden_tests::{Backend, Daemon, TestDb, both_backends, evaluate, wardend_cli};

const POLICY: &str = r#"version: 1
name: budgets-test
default: allow
prices:
  - { model: "gpt-4o*", input: 2.50, output: 10.00 }
  - { model: "premium*", input: 10.00, output: 40.00 }
budgets:
  - id: deploys-per-day
    metric: tool_calls
    scope: agent
    window: day
    limit: 50
    match: { channel: exec, tool: deploy }
  - id: tenant-tokens
    metric: tokens
    scope: tenant
    window: month
    limit: 10000
    match: { channel: llm }
  - id: session-cost
    metric: cost_usd
    scope: session
    window: session
    limit: 0.05
    match: { channel: llm }
  - id: soft-rows
    metric: rows
    scope: agent
    window: hour
    limit: 10
    enforce: soft
    alert_at: [0.8, 1.0]
"#;

fn policy_file(dir: &tempfile::TempDir) -> String {
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, POLICY).unwrap();
    path.to_str().unwrap().to_string()
}

fn deploy(agent: &str) -> Action {
    Action {
        agent: agent.into(),
        session: "s".into(),
        channel: "exec".into(),
        argv: vec!["deploy".into(), "prod".into()],
        ..Default::default()
    }
}

fn chat(agent: &str, session: &str, estimate: u64) -> Action {
    model_chat("gpt-4o-mini", agent, session, estimate)
}

fn model_chat(model: &str, agent: &str, session: &str, estimate: u64) -> Action {
    Action {
        agent: agent.into(),
        session: session.into(),
        channel: "llm".into(),
        tool: "llm.chat".into(),
        attributes: [
            ("model".to_string(), model.to_string()),
            ("estimated_tokens".to_string(), estimate.to_string()),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    }
}

fn tokens(tokens_in: u64, tokens_out: u64) -> ResultMeta {
    ResultMeta {
        usage: Some(Usage {
            tokens_in,
            tokens_out,
            cost_usd: 0.0,
        }),
        ..Default::default()
    }
}

async fn usage(daemon: &Daemon, agent: &str, session: &str) -> GetUsageResponse {
    BudgetsClient::new(daemon.channel().await)
        .get_usage(GetUsageRequest {
            agent: agent.into(),
            session: session.into(),
            history_limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

fn budget<'a>(u: &'a GetUsageResponse, id: &str) -> &'a warden_proto::v1::BudgetUsage {
    u.budgets
        .iter()
        .find(|b| b.budget == id)
        .unwrap_or_else(|| panic!("no budget {id} in {u:?}"))
}

/// Issue 4 point 3: two replicas, many concurrent clients, one budget: exactly the
/// limit is admitted, and the counters equal the history (nothing counted twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_never_overspend_a_budget() {
    let db = TestDb::postgres().await;
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_file(&dir);
    let a = Daemon::start(&db.url, &["--policy", &policy]);
    let b = Daemon::start(&db.url, &["--policy", &policy]);

    // 200 deploys for one agent over both replicas against a limit of 50 calls.
    let mut tasks = Vec::new();
    for i in 0..200 {
        let mut client = if i % 2 == 0 {
            a.decisions().await
        } else {
            b.decisions().await
        };
        tasks.push(tokio::spawn(async move {
            evaluate(&mut client, deploy("deployer")).await
        }));
    }
    let mut verdicts: HashMap<i32, usize> = HashMap::new();
    for t in tasks {
        let d: Decision = t.await.unwrap();
        if d.verdict() == Verdict::Deny {
            assert_eq!(d.matched_rules, ["budget:deploys-per-day"], "{d:?}");
            assert!(d.reason.contains("50 of 50 tool_calls"), "{}", d.reason);
        }
        *verdicts.entry(d.verdict).or_default() += 1;
    }
    assert_eq!(
        verdicts.get(&(Verdict::Allow as i32)),
        Some(&50),
        "{verdicts:?}"
    );
    assert_eq!(
        verdicts.get(&(Verdict::Deny as i32)),
        Some(&150),
        "{verdicts:?}"
    );
    let u = usage(&a, "deployer", "").await;
    assert_eq!(budget(&u, "deploys-per-day").used, 50.0);
    let calls: u64 = u.history.iter().map(|h| h.tool_calls).sum();
    assert_eq!(calls, 50, "history rows of admitted tool calls");

    // 300 chats, each reserving 100 tokens and reporting 60 + 40, against 10,000
    // tokens for the tenant, spread over sessions so the per-session cost cap (about
    // $0.0007 per chat) stays far away.
    let mut tasks = Vec::new();
    for i in 0..300 {
        let mut client = if i % 2 == 0 {
            a.decisions().await
        } else {
            b.decisions().await
        };
        let session = format!("c{}", i % 30);
        tasks.push(tokio::spawn(async move {
            let action = chat("chatter", &session, 100);
            let d = evaluate(&mut client, action.clone()).await;
            if d.verdict() == Verdict::Allow {
                client
                    .report(ReportRequest {
                        then_evaluate: Vec::new(),
                        action: Some(action),
                        decision_seq: d.id.as_ref().unwrap().seq,
                        result: Some(tokens(60, 40)),
                    })
                    .await
                    .unwrap();
            }
            d.verdict()
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        if t.await.unwrap() == Verdict::Allow {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 100, "admitted chats");
    let u = usage(&b, "chatter", "").await;
    let t = budget(&u, "tenant-tokens");
    assert_eq!(
        (t.used, t.reserved, t.remaining),
        (10_000.0, 0.0, 0.0),
        "{t:?}"
    );
    let reported: u64 = u.history.iter().map(|h| h.tokens_in + h.tokens_out).sum();
    assert_eq!(reported, 10_000, "history equals the counter");
    assert_eq!(u.history.len(), 100);
    db.drop_pg().await;
}

/// The single-node path: remaining budget on every decision, costs from the price
/// table, a session cost cap, soft budgets that never refuse, and bad input refused
/// and recorded.
async fn budgets_on_one_node(kind: Backend) {
    let db = TestDb::of(kind).await;
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_file(&dir);
    let daemon = Daemon::start(&db.url, &["--policy", &policy]);
    let mut client = daemon.decisions().await;

    let d = evaluate(&mut client, deploy("one")).await;
    assert_eq!(d.verdict(), Verdict::Allow);
    let left = d
        .budget_remaining
        .iter()
        .find(|r| r.budget == "deploys-per-day")
        .unwrap();
    assert_eq!((left.metric.as_str(), left.remaining), ("tool_calls", 49.0));

    // premium at $10/M in, $40/M out: 1,000 in + 250 out = $0.02 a chat. The session's
    // $0.05 cap admits chats while it is not spent: the third brings it to $0.06, the
    // fourth is refused naming the cap.
    let mut verdicts = Vec::new();
    for _ in 0..4 {
        let action = model_chat("premium-1", "one", "pricey", 0);
        let d = evaluate(&mut client, action.clone()).await;
        verdicts.push(d.verdict());
        if d.verdict() == Verdict::Allow {
            client
                .report(ReportRequest {
                    then_evaluate: Vec::new(),
                    action: Some(action),
                    decision_seq: d.id.unwrap().seq,
                    result: Some(tokens(1_000, 250)),
                })
                .await
                .unwrap();
        } else {
            assert_eq!(d.matched_rules, ["budget:session-cost"]);
            assert!(
                d.reason.contains(
                    "budget session-cost is spent: 0.06 of 0.05 cost_usd used in this session"
                ),
                "{}",
                d.reason
            );
        }
    }
    assert_eq!(
        verdicts,
        [
            Verdict::Allow,
            Verdict::Allow,
            Verdict::Allow,
            Verdict::Deny
        ]
    );
    // Another session of the same agent has its own cap.
    assert_eq!(
        evaluate(&mut client, model_chat("premium-1", "one", "fresh", 0))
            .await
            .verdict(),
        Verdict::Allow
    );
    // The CLI shows the same.
    let out = std::process::Command::new(warden_tests::warden())
        .args(["budgets", "show", "--agent", "one", "--session", "pricey"])
        .env("WARDEN_DAEMON", daemon.url())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("session-cost") && l.contains("used 0.06 of 0.05")),
        "{text}"
    );
    assert!(
        text.contains("premium-1 tokens=1000+250 cost=$0.02"),
        "{text}"
    );
    let u = usage(&daemon, "one", "pricey").await;
    let cost = budget(&u, "session-cost");
    assert!((cost.used - 0.06).abs() < 1e-9, "{cost:?}");
    assert_eq!(budget(&u, "tenant-tokens").used, 3_750.0);
    assert_eq!(u.history.len(), 3);
    assert!(u.history.iter().all(|h| h.model == "premium-1"));
    assert!((u.history[0].cost_usd - 0.02).abs() < 1e-9);

    // A soft budget only counts: 25 rows against a limit of 10, never refused.
    for _ in 0..5 {
        let action = deploy("one");
        let d = evaluate(&mut client, action.clone()).await;
        assert_eq!(d.verdict(), Verdict::Allow);
        client
            .report(ReportRequest {
                then_evaluate: Vec::new(),
                action: Some(action),
                decision_seq: d.id.unwrap().seq,
                result: Some(ResultMeta {
                    rows: 5,
                    ..Default::default()
                }),
            })
            .await
            .unwrap();
    }
    let u = usage(&daemon, "one", "").await;
    let rows = budget(&u, "soft-rows");
    assert_eq!((rows.used, rows.hard, rows.remaining), (25.0, false, 0.0));

    // Absurd and malformed input: refused, recorded, counted nowhere.
    let err = client
        .report(ReportRequest {
            then_evaluate: Vec::new(),
            action: Some(chat("one", "fresh", 0)),
            decision_seq: 0,
            result: Some(tokens(u64::MAX, 0)),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("result.usage.tokens_in"), "{err:?}");
    let mut bad = chat("one", "fresh", 0);
    bad.attributes
        .insert("estimated_tokens".into(), "-5".into());
    let err = client
        .evaluate(warden_proto::v1::EvaluateRequest { action: Some(bad) })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("estimated_tokens"), "{err:?}");
    let u2 = usage(&daemon, "one", "").await;
    assert_eq!(
        budget(&u2, "tenant-tokens").used,
        budget(&u, "tenant-tokens").used
    );
    let records = AuditClient::new(daemon.channel().await)
        .query(AuditQueryRequest {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    let rejected: Vec<_> = records
        .iter()
        .filter(|r| r.kind == "report_rejected")
        .collect();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(rejected[0].reason.contains("tokens_in"));
}
both_backends!(one_node, super::budgets_on_one_node);

#[test]
fn malformed_budgets_and_prices_are_policy_errors_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "limit: -5",
            "budgets:\n  - { id: b, metric: tokens, scope: agent, window: day, limit: -5 }\n",
            ":4:",
        ),
        (
            "fractional tokens",
            "budgets:\n  - { id: b, metric: tokens, scope: agent, window: day, limit: 1.5 }\n",
            "whole number",
        ),
        (
            "unknown metric",
            "budgets:\n  - { id: b, metric: dollars, scope: agent, window: day, limit: 5 }\n",
            "unknown metric \"dollars\"",
        ),
        (
            "unknown window",
            "budgets:\n  - { id: b, metric: rows, scope: agent, window: week, limit: 5 }\n",
            "unknown window",
        ),
        (
            "negative price",
            "prices:\n  - { model: m, input: -1, output: 2 }\n",
            "`input`",
        ),
        (
            "bad alert_at",
            "budgets:\n  - { id: b, metric: rows, scope: agent, window: day, limit: 5, alert_at: [0] }\n",
            "alert_at",
        ),
    ];
    for (what, yaml, expected) in cases {
        let path = dir.path().join("p.yaml");
        std::fs::write(&path, format!("version: 1\ndefault: allow\n{yaml}")).unwrap();
        let (code, _, err) = wardend_cli(&["policy", "validate", path.to_str().unwrap()]);
        assert_eq!(code, 1, "{what}: {err}");
        assert!(
            err.contains(&format!("{}:", path.display())),
            "{what}: {err}"
        );
        assert!(err.contains(expected), "{what}: {err}");
    }
}

/// Issue 4 point 6: a session opened with run caps denies every action once its reports
/// reach one, naming the cap; break-glass does not lift it.
async fn run_caps_end_a_session(kind: Backend) {
    use warden_proto::v1::sessions_client::SessionsClient;
    use warden_proto::v1::{GetSessionRequest, OpenSessionRequest, SessionRef};
    let db = TestDb::of(kind).await;
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_file(&dir);
    let daemon = Daemon::start(&db.url, &["--policy", &policy]);
    let mut client = daemon.decisions().await;
    let mut sessions = SessionsClient::new(daemon.channel().await);
    let open = |session: &str, max_tokens: u64, max_cost_usd: f64| OpenSessionRequest {
        session: Some(SessionRef {
            agent: "capped".into(),
            session: session.into(),
            ..Default::default()
        }),
        max_tokens,
        max_cost_usd,
    };
    sessions.open(open("tok", 1_000, 0.0)).await.unwrap();
    sessions.open(open("usd", 0, 0.03)).await.unwrap();
    let bad = sessions.open(open("bad", 0, -1.0)).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);

    // 600 tokens a call (an unpriced model): the third call is refused.
    let base = client.clone();
    let run = |model: &'static str, session: &'static str, t_in: u64, t_out: u64| {
        let action = model_chat(model, "capped", session, 0);
        let mut c = base.clone();
        async move {
            let d = evaluate(&mut c, action.clone()).await;
            if d.verdict() == Verdict::Allow {
                c.report(ReportRequest {
                    then_evaluate: Vec::new(),
                    action: Some(action),
                    decision_seq: d.id.as_ref().unwrap().seq,
                    result: Some(tokens(t_in, t_out)),
                })
                .await
                .unwrap();
            }
            d
        }
    };
    let mut verdicts = Vec::new();
    for _ in 0..3 {
        verdicts.push(run("local-llama", "tok", 400, 200).await);
    }
    assert_eq!(verdicts[0].verdict(), Verdict::Allow);
    assert_eq!(verdicts[1].verdict(), Verdict::Allow);
    let refused = &verdicts[2];
    assert_eq!(refused.verdict(), Verdict::Deny);
    assert_eq!(refused.matched_rules, ["session-cap"]);
    assert!(
        refused
            .reason
            .contains("run cap max_tokens=1000 is spent (1200 tokens used)"),
        "{}",
        refused.reason
    );
    // Every further action, of any kind, is refused too.
    let d = evaluate(&mut client, deploy_in("capped", "tok")).await;
    assert_eq!(d.verdict(), Verdict::Deny, "{d:?}");

    // $0.02 a call against $0.03: the third call is refused.
    let mut verdicts = Vec::new();
    for _ in 0..3 {
        verdicts.push(run("premium-1", "usd", 1_000, 250).await.verdict());
    }
    assert_eq!(verdicts, [Verdict::Allow, Verdict::Allow, Verdict::Deny]);
    let info = sessions
        .get(GetSessionRequest {
            session: Some(SessionRef {
                agent: "capped".into(),
                session: "usd".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((info.max_cost_usd, info.tokens), (0.03, 2_500));
    assert!((info.cost_usd - 0.04).abs() < 1e-9, "{info:?}");
}
both_backends!(run_caps, super::run_caps_end_a_session);

fn deploy_in(agent: &str, session: &str) -> Action {
    Action {
        session: session.into(),
        ..deploy(agent)
    }
}

/// Usage history older than `--usage-retention` is pruned (at start, then hourly);
/// budget counters stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_history_retention_prunes_old_rows_only() {
    let db = TestDb::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_file(&dir);
    let first = Daemon::start(&db.url, &["--policy", &policy, "--usage-retention", "0"]);
    let mut client = first.decisions().await;
    for _ in 0..3 {
        evaluate(&mut client, deploy("keeper")).await;
    }
    assert_eq!(usage(&first, "keeper", "").await.history.len(), 3);
    drop(client);
    assert!(first.stop().success());
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;

    let second = Daemon::start(&db.url, &["--policy", &policy, "--usage-retention", "1s"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let u = usage(&second, "keeper", "").await;
        if u.history.is_empty() {
            assert_eq!(budget(&u, "deploys-per-day").used, 3.0, "counters stay");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "history not pruned: {u:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
