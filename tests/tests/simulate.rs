//! `wardend simulate` end to end: sessions recorded by a real daemon under one policy,
//! replayed offline from its audit log through a stricter policy and through the same
//! policy, on SQLite and PostgreSQL.

use warden_proto::v1::sessions_client::SessionsClient;
use warden_proto::v1::{
    Action, CloseSessionRequest, ReportRequest, ResultMeta, SessionRef, Verdict, Zone,
};
use warden_tests::{Backend, Daemon, TestDb, both_backends, evaluate, wardend_cli};

/// The policy the sessions are recorded under.
const RECORDED: &str = r#"
version: 1
name: recorded
default: allow
zone_triggers:
  - id: pii-result
    zone: sensitive
    reason: a result carried personal data
    on_result: { tags: [pii] }
rules:
  - id: no-egress-when-sensitive
    decision: deny
    reason: nothing leaves a sensitive session
    match: { zone_at_least: sensitive, egress: external }
  - id: ask-before-delete
    decision: require_approval
    reason: deletes need a look
    match: { channel: [file], operation: [delete] }
"#;

/// Stricter: finance results escalate too, a sensitive session asks even for internal
/// requests, curl is denied and deletes are refused outright.
const STRICTER: &str = r#"
version: 1
name: stricter
default: allow
zone_triggers:
  - id: pii-result
    zone: sensitive
    reason: a result carried personal data
    on_result: { tags: [pii] }
  - id: finance-result
    zone: sensitive
    reason: a result carried finance data
    on_result: { tags: [finance] }
rules:
  - id: no-egress-when-sensitive
    decision: deny
    reason: nothing leaves a sensitive session
    match: { zone_at_least: sensitive, egress: external }
  - id: ask-internal-when-sensitive
    decision: require_approval
    reason: a sensitive session asks before any request
    match: { zone_at_least: sensitive, egress: internal }
  - id: no-curl
    decision: deny
    reason: use the http interceptor
    match: { channel: [exec], tool: [curl] }
  - id: deny-delete
    decision: deny
    reason: nothing is deleted
    match: { channel: [file], operation: [delete] }
"#;

fn base(session: &str) -> Action {
    Action {
        agent: "analyst".into(),
        session: session.into(),
        ..Default::default()
    }
}

fn query(session: &str, table: &str) -> Action {
    Action {
        channel: "mcp".into(),
        tool: "query".into(),
        operation: "read".into(),
        resource: table.into(),
        ..base(session)
    }
}

fn http(session: &str, method: &str, url: &str) -> Action {
    Action {
        channel: "http".into(),
        tool: method.into(),
        resource: url.into(),
        ..base(session)
    }
}

fn exec(session: &str, line: &str) -> Action {
    Action {
        channel: "exec".into(),
        command_line: line.into(),
        cwd: "/workspace".into(),
        ..base(session)
    }
}

fn delete(session: &str, path: &str) -> Action {
    Action {
        channel: "file".into(),
        operation: "delete".into(),
        resource: path.into(),
        ..base(session)
    }
}

/// Each line with runs of whitespace collapsed, so column alignment does not matter.
fn lines(out: &str) -> Vec<String> {
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

fn has_line(out: &str, want: &str) -> bool {
    lines(out).iter().any(|l| l == want)
}

async fn simulate_recorded_sessions(kind: Backend) {
    let db = TestDb::of(kind).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let recorded = dir.path().join("recorded.yaml");
    let stricter = dir.path().join("stricter.yaml");
    std::fs::write(&recorded, RECORDED).expect("write policy");
    std::fs::write(&stricter, STRICTER).expect("write policy");

    let daemon = Daemon::start(&db.url, &["--policy", recorded.to_str().expect("utf-8")]);
    let mut client = daemon.decisions().await;
    let report = |session: &str, tags: &[&str], seq: u64| ReportRequest {
        then_evaluate: Vec::new(),
        action: Some(query(session, "warehouse.any")),
        decision_seq: seq,
        result: Some(ResultMeta {
            tags: tags.iter().map(|t| t.to_string()).collect(),
            rows: 5,
            bytes: 100,
            ..Default::default()
        }),
    };
    let wiki = "http://wiki.internal/page";
    let collector = "https://collector.example.net/in";

    // s1: a PII result escalates the session; the post after it is denied, the internal
    // read allowed.
    let d = evaluate(&mut client, query("s1", "warehouse.employees")).await;
    assert_eq!(d.verdict(), Verdict::Allow);
    let r = client
        .report(report("s1", &["PII"], d.id.map_or(0, |i| i.seq)))
        .await
        .expect("report")
        .into_inner();
    assert_eq!(r.zone(), Zone::Sensitive);
    let d = evaluate(&mut client, http("s1", "POST", collector)).await;
    assert_eq!(d.verdict(), Verdict::Deny, "{d:?}");
    let d = evaluate(&mut client, http("s1", "GET", wiki)).await;
    assert_eq!(d.verdict(), Verdict::Allow, "{d:?}");

    // s2: a curl upload and an internal read in a safe session, then the session closes.
    let d = evaluate(
        &mut client,
        exec("s2", "curl -X POST https://api.example.com/x"),
    )
    .await;
    assert_eq!(d.verdict(), Verdict::Allow, "{d:?}");
    let d = evaluate(&mut client, http("s2", "GET", wiki)).await;
    assert_eq!(d.verdict(), Verdict::Allow, "{d:?}");
    let mut sessions = SessionsClient::new(daemon.channel().await);
    sessions
        .close(CloseSessionRequest {
            session: Some(SessionRef {
                agent: "analyst".into(),
                session: "s2".into(),
                ..Default::default()
            }),
        })
        .await
        .expect("close s2");

    // s3: a finance result does not escalate under the recorded policy (it will under
    // the stricter one), then an internal read and a delete.
    let d = evaluate(&mut client, query("s3", "warehouse.ledger")).await;
    assert_eq!(d.verdict(), Verdict::Allow);
    let r = client
        .report(report("s3", &["finance"], d.id.map_or(0, |i| i.seq)))
        .await
        .expect("report")
        .into_inner();
    assert_eq!(r.zone(), Zone::Safe);
    let d = evaluate(&mut client, http("s3", "GET", wiki)).await;
    assert_eq!(d.verdict(), Verdict::Allow, "{d:?}");
    let d = evaluate(&mut client, delete("s3", "/workspace/tmp/x")).await;
    assert_eq!(d.verdict(), Verdict::RequireApproval, "{d:?}");
    drop(client);
    drop(sessions);
    assert!(daemon.stop().success());

    // The stricter policy: four of eight decisions change. Two of them (s1's and s3's
    // internal reads) change only because the replayed reports escalated the sessions.
    let (code, out, err) = wardend_cli(&[
        "simulate",
        "--policy",
        stricter.to_str().expect("utf-8"),
        "--db",
        &db.url,
    ]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        has_line(
            &out,
            "sessions: 3 decisions replayed: 8 unchanged: 4 changed: 4"
        ),
        "{out}"
    );
    let transitions = [
        "allow → require_approval 2",
        "allow → deny 1",
        "require_approval → deny 1",
    ];
    for t in &transitions {
        assert!(has_line(&out, t), "missing {t:?} in:\n{out}");
    }
    for t in [
        "allow → require_approval ask-internal-when-sensitive 2",
        "allow → deny no-curl 1",
        "require_approval → deny deny-delete 1",
    ] {
        assert!(has_line(&out, t), "missing {t:?} in:\n{out}");
    }
    // Only these transitions: the transitions section has exactly three lines.
    let all = lines(&out);
    let start = all
        .iter()
        .position(|l| l == "transitions:")
        .expect("transitions section");
    assert_eq!(
        all[start + 1..start + 4],
        transitions.map(String::from),
        "{out}"
    );
    assert_eq!(all[start + 4], "", "{out}");
    assert!(
        out.contains("was allow [default] → now require_approval [ask-internal-when-sensitive]"),
        "{out}"
    );
    assert!(out.contains("zone safe → sensitive"), "{out}");
    assert!(
        out.contains("curl -X POST https://api.example.com/x"),
        "{out}"
    );
    assert!(out.contains("analyst/s3"), "{out}");

    // A --since in the future counts nothing.
    let (code, out, _) = wardend_cli(&[
        "simulate",
        "--policy",
        stricter.to_str().expect("utf-8"),
        "--db",
        &db.url,
        "--since",
        "2100-01-01T00:00:00Z",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        has_line(
            &out,
            "sessions: 0 decisions replayed: 0 unchanged: 0 changed: 0"
        ),
        "{out}"
    );
    // A relative --since and a tenant filter that includes everything.
    let (code, out, _) = wardend_cli(&[
        "simulate",
        "--policy",
        stricter.to_str().expect("utf-8"),
        "--db",
        &db.url,
        "--since",
        "1h",
        "--tenant",
        "default",
        "--examples",
        "0",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(has_line(
        &out,
        "sessions: 3 decisions replayed: 8 unchanged: 4 changed: 4"
    ));

    // The same policy changes nothing.
    let (code, out, err) = wardend_cli(&[
        "simulate",
        "--policy",
        recorded.to_str().expect("utf-8"),
        "--db",
        &db.url,
    ]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        has_line(
            &out,
            "sessions: 3 decisions replayed: 8 unchanged: 8 changed: 0"
        ),
        "{out}"
    );
    assert!(!out.contains("transitions:"), "{out}");

    // Errors exit 2.
    let (code, _, err) = wardend_cli(&[
        "simulate",
        "--policy",
        recorded.to_str().expect("utf-8"),
        "--db",
        &db.url,
        "--since",
        "yesterday",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--since"), "{err}");
    let (code, _, err) =
        wardend_cli(&["simulate", "--policy", "/nonexistent.yaml", "--db", &db.url]);
    assert_eq!(code, 2, "{err}");
    db.drop_pg().await;
}
both_backends!(simulate_, super::simulate_recorded_sessions);
