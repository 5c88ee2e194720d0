//! Rate limits end to end: two replicas on one PostgreSQL hand out exactly one bucket's
//! tokens, buckets refill at their rate and say when to retry, and a refused action
//! (by the policy, a budget or a rate limit) takes and is charged nothing.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use warden_proto::v1::budgets_client::BudgetsClient;
use warden_proto::v1::{Action, GetUsageRequest, Verdict};
use warden_tests::{Backend, Daemon, TestDb, both_backends, evaluate, exec_action, wardend_cli};

fn policy_file(dir: &tempfile::TempDir, yaml: &str) -> String {
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, yaml).unwrap();
    path.to_str().unwrap().to_string()
}

fn as_agent(agent: &str, action: Action) -> Action {
    Action {
        agent: agent.into(),
        ..action
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

const HOUR_US: i64 = 3_600_000_000;

/// Issue 4 point 4: 240 concurrent requests through two replicas against a bucket of
/// 25 that refills once an hour: exactly 25 are admitted, the rest are denied naming
/// the limit with a retry-after, and the bucket moved exactly 25 intervals (nothing
/// taken twice). Another agent and another category have buckets of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_admit_exactly_one_bucket() {
    let db = TestDb::postgres().await;
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_file(
        &dir,
        "version: 1\nname: rl\ndefault: allow\nrate_limits:\n  \
         - { id: commands, rate: 1/hour, burst: 25, match: { channel: exec } }\n",
    );
    let a = Daemon::start(&db.url, &["--policy", &policy]);
    let b = Daemon::start(&db.url, &["--policy", &policy]);

    let started = now_us();
    let mut tasks = Vec::new();
    for i in 0..240 {
        let mut client = if i % 2 == 0 {
            a.decisions().await
        } else {
            b.decisions().await
        };
        // Different sessions of one agent share the agent's bucket.
        let action = as_agent("busy", exec_action(&format!("s{}", i % 7), &["ls"]));
        tasks.push(tokio::spawn(
            async move { evaluate(&mut client, action).await },
        ));
    }
    let mut verdicts: HashMap<i32, usize> = HashMap::new();
    for t in tasks {
        let d = t.await.unwrap();
        if d.verdict() == Verdict::Deny {
            assert_eq!(d.matched_rules, ["rate_limit:commands"], "{d:?}");
            assert!(
                d.reason
                    .contains("rate limit commands reached: 1/hour with bursts of 25 per agent"),
                "{}",
                d.reason
            );
            assert!(
                d.retry_after_ms > 0 && d.retry_after_ms <= 3_600_000,
                "{d:?}"
            );
        } else {
            assert_eq!(d.retry_after_ms, 0, "{d:?}");
        }
        *verdicts.entry(d.verdict).or_default() += 1;
    }
    let finished = now_us();
    assert_eq!(
        verdicts.get(&(Verdict::Allow as i32)),
        Some(&25),
        "{verdicts:?}"
    );
    assert_eq!(
        verdicts.get(&(Verdict::Deny as i32)),
        Some(&215),
        "{verdicts:?}"
    );

    // The bucket's TAT is the first take's clock plus 25 intervals.
    let store = warden_tests::store(&db).await;
    let tat = store
        .rate_bucket("commands", "default\u{1f}busy")
        .await
        .unwrap();
    assert!(
        tat >= started + 25 * HOUR_US && tat <= finished + 25 * HOUR_US,
        "TAT {tat} not 25 h after the burst ({started}..{finished})"
    );

    // Another agent, and an action outside the category, are not limited.
    let mut client = b.decisions().await;
    let other = evaluate(&mut client, as_agent("calm", exec_action("s", &["ls"]))).await;
    assert_eq!(other.verdict(), Verdict::Allow, "{other:?}");
    let http = Action {
        agent: "busy".into(),
        session: "s0".into(),
        channel: "http".into(),
        resource: "https://example.com/".into(),
        operation: "read".into(),
        ..Default::default()
    };
    let d = evaluate(&mut client, http).await;
    assert_eq!(d.verdict(), Verdict::Allow, "{d:?}");
    store.close().await;
    drop((a, b));
    db.drop_pg().await;
}

/// A bucket refills at its rate: after the burst the next action is refused with the
/// time to wait, and once that time has passed it is admitted (the local fast path
/// does not hold on to an empty bucket past its refill).
async fn buckets_refill_at_their_rate(kind: Backend) {
    let db = TestDb::of(kind).await;
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_file(
        &dir,
        "version: 1\nname: rl\ndefault: allow\nrate_limits:\n  \
         - { id: slow, rate: 2/s, burst: 2, scope: session, match: { tool: curl } }\n",
    );
    let daemon = Daemon::start(&db.url, &["--policy", &policy]);
    let mut client = daemon.decisions().await;
    let curl = || exec_action("s", &["curl", "http://10.0.0.1/"]);
    for _ in 0..2 {
        let d = evaluate(&mut client, curl()).await;
        assert_eq!(d.verdict(), Verdict::Allow, "{d:?}");
    }
    let refused = evaluate(&mut client, curl()).await;
    assert_eq!(refused.verdict(), Verdict::Deny, "{refused:?}");
    assert_eq!(refused.matched_rules, ["rate_limit:slow"]);
    assert!((1..=500).contains(&refused.retry_after_ms), "{refused:?}");
    assert!(
        refused.reason.contains("per session; retry in"),
        "{}",
        refused.reason
    );
    // Asked again at once: still refused (by the fast path or the database alike).
    let again = evaluate(&mut client, curl()).await;
    assert_eq!(again.verdict(), Verdict::Deny, "{again:?}");
    // Another session has its own bucket.
    let d = evaluate(&mut client, exec_action("t", &["curl", "http://10.0.0.1/"])).await;
    assert_eq!(d.verdict(), Verdict::Allow, "{d:?}");

    tokio::time::sleep(Duration::from_millis(again.retry_after_ms + 30)).await;
    let d = evaluate(&mut client, curl()).await;
    assert_eq!(d.verdict(), Verdict::Allow, "after the wait: {d:?}");
    let d = evaluate(&mut client, curl()).await;
    assert_eq!(d.verdict(), Verdict::Deny, "one token came back: {d:?}");
    drop(daemon);
    db.drop_pg().await;
}
both_backends!(refill, super::buckets_refill_at_their_rate);

/// Admission is all or nothing: an action the policy denies takes no token, one a
/// budget refuses takes no token, and one a rate limit refuses is charged to no budget.
async fn a_refused_action_takes_nothing(kind: Backend) {
    let db = TestDb::of(kind).await;
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_file(
        &dir,
        r#"version: 1
name: rl
default: allow
rules:
  - { id: no-rm, decision: deny, reason: no deleting, match: { tool: rm } }
rate_limits:
  - { id: exec, rate: 1/hour, burst: 3, match: { channel: exec } }
budgets:
  - { id: one-deploy, metric: tool_calls, scope: agent, window: day, limit: 1, match: { tool: deploy } }
  - { id: all-calls, metric: tool_calls, scope: agent, window: day, limit: 100 }
"#,
    );
    let daemon = Daemon::start(&db.url, &["--policy", &policy]);
    let mut client = daemon.decisions().await;
    let mut run = async |argv: &[&str]| {
        let d = evaluate(&mut client, exec_action("s", argv)).await;
        (d.verdict(), d.matched_rules.join(","))
    };
    let deny = |rule: &str| (Verdict::Deny, rule.to_string());
    let allow = (Verdict::Allow, String::new());
    assert_eq!(run(&["rm", "-rf", "x"]).await, deny("no-rm"));
    assert_eq!(run(&["rm", "-rf", "y"]).await, deny("no-rm"));
    assert_eq!(run(&["deploy", "prod"]).await, allow);
    assert_eq!(run(&["deploy", "prod"]).await, deny("budget:one-deploy"));
    assert_eq!(run(&["deploy", "prod"]).await, deny("budget:one-deploy"));
    // Tokens 2 and 3: neither the policy's nor the budget's refusals took any.
    assert_eq!(run(&["ls"]).await, allow);
    assert_eq!(run(&["ls"]).await, allow);
    assert_eq!(run(&["ls"]).await, deny("rate_limit:exec"));
    assert_eq!(run(&["ls"]).await, deny("rate_limit:exec"));

    let usage = BudgetsClient::new(daemon.channel().await)
        .get_usage(GetUsageRequest {
            agent: "test-agent".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let all = usage
        .budgets
        .iter()
        .find(|b| b.budget == "all-calls")
        .unwrap();
    assert_eq!(all.used, 3.0, "rate-limited calls are not charged: {all:?}");
    drop(daemon);
    db.drop_pg().await;
}
both_backends!(all_or_nothing, super::a_refused_action_takes_nothing);

#[test]
fn malformed_rate_limits_are_policy_errors_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("no slash", "  - { id: r, rate: 30 }\n", ":4:", "has no `/`"),
        (
            "zero count",
            "  - { id: r, rate: 0/s }\n",
            ":4:",
            "positive number",
        ),
        (
            "negative",
            "  - { id: r, rate: -3/minute }\n",
            ":4:",
            "positive number",
        ),
        (
            "bad period",
            "  - { id: r, rate: 3/fortnight }\n",
            ":4:",
            "period",
        ),
        (
            "negative burst",
            "  - { id: r, rate: 3/s, burst: -1 }\n",
            ":4:",
            "`burst`",
        ),
        (
            "fractional burst",
            "  - { id: r, rate: 3/s, burst: 2.5 }\n",
            ":4:",
            "whole number",
        ),
        (
            "bad scope",
            "  - { id: r, rate: 3/s, scope: planet }\n",
            ":4:",
            "unknown scope",
        ),
        (
            "unknown key",
            "  - { id: r, rate: 3/s, bucket: 4 }\n",
            ":4:",
            "bucket",
        ),
        (
            "duplicate id",
            "  - { id: r, rate: 3/s }\n  - { id: r, rate: 4/s }\n",
            ":5:",
            "duplicate rate limit id",
        ),
    ];
    for (what, yaml, at, expected) in cases {
        let path = dir.path().join("p.yaml");
        std::fs::write(
            &path,
            format!("version: 1\ndefault: allow\nrate_limits:\n{yaml}"),
        )
        .unwrap();
        let (code, _, err) = wardend_cli(&["policy", "validate", path.to_str().unwrap()]);
        assert_eq!(code, 1, "{what}: {err}");
        assert!(
            err.contains(&format!("{}{at}", path.display())),
            "{what}: {err}"
        );
        assert!(err.contains(expected), "{what}: {err}");
    }
    // And a good one validates, with a version of its own.
    let path = dir.path().join("ok.yaml");
    std::fs::write(
        &path,
        "version: 1\ndefault: allow\nrate_limits:\n  - { id: r, rate: 3/s, burst: 6 }\n",
    )
    .unwrap();
    let (code, out, err) = wardend_cli(&["policy", "validate", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("version "), "{out}");
}

/// An action that only a break-glass grant lets run is admitted on its own transaction
/// (not in the session step): it takes a token too, and an empty bucket refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lifted_refusal_is_admitted_too() {
    use std::os::unix::fs::PermissionsExt;
    use warden_proto::v1::BreakGlassRequest;
    use warden_proto::v1::admin_client::AdminClient;
    const TOKEN: &str = "rate-limit-test-admin-token";
    let db = TestDb::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_file(
        &dir,
        "version: 1\nname: rl\ndefault: allow\nrules:\n  \
         - { id: no-deploy, decision: deny, reason: no deploys, match: { tool: deploy } }\n\
         rate_limits:\n  - { id: exec, rate: 1/hour, burst: 2, match: { channel: exec } }\n",
    );
    let token = dir.path().join("token");
    std::fs::write(&token, TOKEN).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let daemon = Daemon::start(
        &db.url,
        &[
            "--policy",
            &policy,
            "--admin-token-file",
            token.to_str().unwrap(),
        ],
    );
    let mut request = tonic::Request::new(BreakGlassRequest {
        session: "s".into(),
        reason: "incident 12: hotfix deploy".into(),
        ttl_seconds: 600,
        issued_by: "oncall".into(),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    AdminClient::new(daemon.channel().await)
        .break_glass(request)
        .await
        .unwrap();
    let mut client = daemon.decisions().await;
    let deploy = || exec_action("s", &["deploy", "prod"]);
    let d = evaluate(&mut client, deploy()).await;
    assert_eq!(d.verdict(), Verdict::Allow, "{d:?}");
    assert!(!d.break_glass_id.is_empty(), "{d:?}");
    let d = evaluate(&mut client, exec_action("s", &["ls"])).await;
    assert_eq!(d.verdict(), Verdict::Allow, "{d:?}");
    let d = evaluate(&mut client, deploy()).await;
    assert_eq!(d.verdict(), Verdict::Deny, "{d:?}");
    assert_eq!(d.matched_rules, ["rate_limit:exec"], "{d:?}");
    assert!(d.retry_after_ms > 0);
}
