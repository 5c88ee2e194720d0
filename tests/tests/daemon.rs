//! End-to-end tests of `wardend serve` as a real process, on SQLite and on PostgreSQL,
//! driven by the generated client.

use std::time::Duration;

use prost::Message;
use warden_proto::v1::{
    Action, AuditQueryRequest, AuditReplayRequest, AuditVerifyRequest, GetPolicyRequest,
    ReloadPolicyRequest, ReportRequest, ResultMeta, Verdict, admin_client::AdminClient,
    audit_client::AuditClient,
};
use warden_tests::{
    Backend, Daemon, TestDb, both_backends, evaluate, exec_action, raw, wardend_cli,
};

async fn decisions_are_audited_before_they_return(kind: Backend) {
    let db = TestDb::of(kind).await;
    let daemon = Daemon::start(&db.url, &[]);
    let mut client = daemon.decisions().await;

    let allowed = evaluate(&mut client, exec_action("s1", &["ls", "-la"])).await;
    assert_eq!(allowed.verdict(), Verdict::Allow);
    assert!(allowed.matched_rules.is_empty());
    assert!(allowed.reason.contains("default"), "{}", allowed.reason);
    assert_eq!(allowed.policy_version.len(), 64);

    let denied = evaluate(&mut client, exec_action("s1", &["sudo", "rm", "-fr", "/"])).await;
    assert_eq!(denied.verdict(), Verdict::Deny);
    // The rule for root deletions and the analyzer's `destructive` fact both match.
    assert_eq!(
        denied.matched_rules,
        vec![
            "baseline/deny-recursive-delete-of-root-or-home",
            "baseline/deny-destructive-command"
        ]
    );

    let shadow = evaluate(
        &mut client,
        Action {
            channel: "FILE".into(),
            operation: "Read".into(),
            resource: "/etc/../etc//shadow".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        shadow.verdict(),
        Verdict::Deny,
        "normalized path must match"
    );

    // Every answered decision is already in the log, with the id it was answered with.
    let mut audit = AuditClient::new(daemon.channel().await);
    let records = audit
        .query(AuditQueryRequest {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    assert_eq!(records.len(), 3);
    for (record, decision) in records.iter().zip([&allowed, &denied, &shadow]) {
        let id = decision.id.as_ref().unwrap();
        assert_eq!((record.seq, &record.hash), (id.seq, &id.hash));
        assert_eq!(record.policy_version, decision.policy_version);
    }
    assert_eq!(records[1].verdict, "deny");
    assert_eq!(records[1].rule_ids, denied.matched_rules);
    assert_eq!(records[1].agent, "test-agent");
    assert_eq!(records[2].agent, "default");
    assert!(
        records[2].action_json.contains("\"/etc/shadow\""),
        "{}",
        records[2].action_json
    );

    // Report appends a record tied to its decision.
    let report = client
        .report(ReportRequest {
            then_evaluate: Vec::new(),
            action: Some(exec_action("s1", &["ls", "-la"])),
            decision_seq: allowed.id.as_ref().unwrap().seq,
            result: Some(ResultMeta {
                exit_code: Some(0),
                stdout_bytes: 120,
                bytes: 120,
                tags: vec!["PII".into(), "pii".into()],
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.id.as_ref().unwrap().seq, 4);
    let replay = audit
        .replay(AuditReplayRequest {
            session: "s1".into(),
            tenant: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    assert_eq!(
        replay.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 4]
    );
    assert_eq!(replay[2].kind, "report");
    assert_eq!(replay[2].decision_seq, 1);
    assert!(
        replay[2].result_json.contains(r#""tags":["pii"]"#),
        "{}",
        replay[2].result_json
    );

    let verify = audit
        .verify(AuditVerifyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(verify.ok, "{}", verify.problem);
    assert_eq!(verify.records, 4);

    assert!(daemon.stop().success());
    db.drop_pg().await;
}
both_backends!(
    decisions_are_audited_before_they_return,
    super::decisions_are_audited_before_they_return
);

async fn secrets_do_not_reach_the_audit_log(kind: Backend) {
    let db = TestDb::of(kind).await;
    let daemon = Daemon::start(&db.url, &[]);
    let mut client = daemon.decisions().await;
    let secret = "sk-live0123456789abcdefghijkl";
    evaluate(
        &mut client,
        exec_action(
            "s",
            &[
                "curl",
                "-H",
                &format!("Authorization: Bearer {secret}"),
                "https://api.example.com",
            ],
        ),
    )
    .await;
    evaluate(
        &mut client,
        exec_action(
            "s",
            &[
                "env",
                &format!("OPENAI_API_KEY={secret}"),
                "python",
                "agent.py",
            ],
        ),
    )
    .await;
    daemon.stop();
    let (code, export, _) = wardend_cli(&["audit", "export", "--db", &db.url]);
    assert_eq!(code, 0);
    assert_eq!(export.lines().count(), 2);
    assert!(
        !export.contains(secret),
        "secret leaked into the audit log:\n{export}"
    );
    assert!(export.contains("[REDACTED]"));

    // The export alone is enough to recompute the chain.
    let mut prev = warden_server::audit::GENESIS_HASH.to_string();
    for line in export.lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let text = |k: &str| r[k].as_str().unwrap().to_string();
        let body = warden_server::audit::RecordBody {
            time_us: r["time_us"].as_i64().unwrap(),
            kind: text("kind"),
            tenant: text("tenant"),
            agent: text("agent"),
            session: text("session"),
            channel: text("channel"),
            action: text("action_json"),
            verdict: text("verdict"),
            rule_ids: serde_json::from_value(r["rule_ids"].clone()).unwrap(),
            reason: text("reason"),
            policy_version: text("policy_version"),
            zone: text("zone"),
            approval_id: text("approval_id"),
            break_glass_id: text("break_glass_id"),
            result: text("result_json"),
            decision_seq: r["decision_seq"].as_u64().unwrap(),
        };
        assert_eq!(text("prev_hash"), prev);
        let hash = warden_server::audit::chain_hash(
            &prev,
            r["seq"].as_u64().unwrap(),
            &body.canonical_json(),
        );
        assert_eq!(hash, text("hash"), "export line does not re-hash: {line}");
        prev = hash;
    }
    db.drop_pg().await;
}
both_backends!(
    secrets_do_not_reach_the_audit_log,
    super::secrets_do_not_reach_the_audit_log
);

async fn bad_requests_are_invalid_argument_and_change_nothing(kind: Backend) {
    let db = TestDb::of(kind).await;
    let daemon = Daemon::start(&db.url, &[]);
    let mut client = daemon.decisions().await;
    let cases = [
        (
            Action {
                ..Default::default()
            },
            "action.channel",
        ),
        (
            Action {
                channel: "carrier-pigeon".into(),
                ..Default::default()
            },
            "unknown channel",
        ),
        (
            Action {
                channel: "exec".into(),
                ..Default::default()
            },
            "needs argv or a command line",
        ),
        (
            Action {
                channel: "exec".into(),
                agent: "a\u{7}b".into(),
                argv: vec!["ls".into()],
                ..Default::default()
            },
            "action.agent",
        ),
        (
            Action {
                channel: "exec".into(),
                argv: vec!["x".repeat(70 * 1024)],
                ..Default::default()
            },
            "action.argv",
        ),
    ];
    for (action, words) in cases {
        let status = client
            .evaluate(warden_proto::v1::EvaluateRequest {
                action: Some(action),
            })
            .await
            .expect_err("must be refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().contains(words),
            "{:?} should mention {words:?}",
            status.message()
        );
    }
    let status = client
        .evaluate(warden_proto::v1::EvaluateRequest { action: None })
        .await
        .expect_err("missing action");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);

    // Not protobuf at all.
    let status = raw::call(
        daemon.channel().await,
        "/warden.v1.Decisions/Evaluate",
        vec![0xff; 16],
    )
    .await
    .expect_err("garbage");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("malformed"),
        "{}",
        status.message()
    );

    // Larger than the 1 MiB request limit (but under the transport limit).
    let big = warden_proto::v1::EvaluateRequest {
        action: Some(Action {
            channel: "exec".into(),
            argv: vec!["y".repeat(2 * 1024 * 1024)],
            ..Default::default()
        }),
    };
    let status = raw::call(
        daemon.channel().await,
        "/warden.v1.Decisions/Evaluate",
        big.encode_to_vec(),
    )
    .await
    .expect_err("oversized");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("limit"), "{}", status.message());

    // Nothing was audited; the daemon still answers.
    let mut audit = AuditClient::new(daemon.channel().await);
    let v = audit
        .verify(AuditVerifyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((v.ok, v.records), (true, 0));
    assert_eq!(
        evaluate(&mut client, exec_action("s", &["true"]))
            .await
            .verdict(),
        Verdict::Allow
    );
    // A command line bash cannot parse is not a bad request but a command whose effect
    // cannot be checked: held for approval, naming why (never allowed).
    let unparseable = evaluate(
        &mut client,
        Action {
            channel: "exec".into(),
            command_line: "echo 'unterminated".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(unparseable.verdict(), Verdict::RequireApproval);
    assert_eq!(
        unparseable.matched_rules,
        ["baseline/approve-obfuscated-or-unparseable"]
    );
    db.drop_pg().await;
}
both_backends!(
    bad_requests_are_invalid_argument_and_change_nothing,
    super::bad_requests_are_invalid_argument_and_change_nothing
);

/// A restarted daemon continues the same chain; `wardend audit verify` agrees.
async fn restart_continues_the_chain(kind: Backend) {
    let db = TestDb::of(kind).await;
    let first = Daemon::start(&db.url, &[]);
    let mut client = first.decisions().await;
    for i in 0..5 {
        evaluate(&mut client, exec_action("s", &["echo", &i.to_string()])).await;
    }
    assert!(first.stop().success());

    let second = Daemon::start(&db.url, &[]);
    let mut client = second.decisions().await;
    let d = evaluate(&mut client, exec_action("s", &["echo", "after restart"])).await;
    assert_eq!(d.id.as_ref().unwrap().seq, 6);
    assert!(second.stop().success());

    let (code, out, err) = wardend_cli(&["audit", "verify", "--db", &db.url]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("intact: 6 records"), "{out}");

    // Tampering is reported by the CLI with the record's number and a failing exit.
    db.exec_sql("UPDATE audit_log SET reason = 'edited' WHERE seq = 3")
        .await;
    let (code, out, _) = wardend_cli(&["audit", "verify", "--db", &db.url]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at record 3"), "{out}");

    let (code, out, _) = wardend_cli(&["audit", "replay", "--db", &db.url, "s"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 6);
    assert!(
        out.lines().last().unwrap().contains("echo 'after restart'"),
        "{out}"
    );
    db.drop_pg().await;
}
both_backends!(
    restart_continues_the_chain,
    super::restart_continues_the_chain
);

/// SIGTERM while many requests are in flight: every answered decision is in the log
/// and the chain is intact.
async fn graceful_shutdown_loses_no_answered_decision(kind: Backend) {
    let db = TestDb::of(kind).await;
    let daemon = Daemon::start(&db.url, &[]);
    let channel = daemon.channel().await;
    let mut tasks = Vec::new();
    for worker in 0..32 {
        let channel = channel.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = warden_proto::v1::decisions_client::DecisionsClient::new(channel);
            let mut answered = Vec::new();
            for i in 0..10_000 {
                let action = exec_action(&format!("w{worker}"), &["echo", &i.to_string()]);
                match client
                    .evaluate(warden_proto::v1::EvaluateRequest {
                        action: Some(action),
                    })
                    .await
                {
                    Ok(r) => answered.push(r.into_inner().decision.unwrap().id.unwrap().seq),
                    Err(_) => break,
                }
            }
            answered
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let status = tokio::task::spawn_blocking(move || daemon.stop())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    let mut answered: Vec<u64> = Vec::new();
    for t in tasks {
        answered.extend(t.await.unwrap());
    }
    assert!(
        answered.len() > 32,
        "load ran ({} answered)",
        answered.len()
    );

    let store = warden_tests::store(&db).await;
    let v = warden_server::audit::verify(&store).await.unwrap();
    assert_eq!(v.failure, None);
    let max = *answered.iter().max().unwrap();
    assert!(
        v.records >= max,
        "answered decision {max} but the log has {}",
        v.records
    );
    store.close().await;
    db.drop_pg().await;
}
both_backends!(
    graceful_shutdown_loses_no_answered_decision,
    super::graceful_shutdown_loses_no_answered_decision
);

/// Health and reflection: what `grpcurl -plaintext HOST:PORT list` asks for.
#[tokio::test]
async fn health_and_reflection_answer() {
    use tokio_stream_shim::once;
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let db = TestDb::sqlite().await;
    let daemon = Daemon::start(&db.url, &[]);
    let mut health = tonic_health::pb::health_client::HealthClient::new(daemon.channel().await);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "warden.v1.Decisions".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    let mut reflection = ServerReflectionClient::new(daemon.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(once(request))
        .await
        .unwrap()
        .into_inner();
    let response = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    for want in [
        "grpc.health.v1.Health",
        "warden.v1.Admin",
        "warden.v1.Audit",
        "warden.v1.Decisions",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    assert!(
        !names.iter().any(|n| n.contains("bench")),
        "bench service must not be served: {names:?}"
    );
}

/// Minimal one-item stream without another dependency.
mod tokio_stream_shim {
    pub(crate) fn once<T: Send + 'static>(
        item: T,
    ) -> impl tonic::codegen::tokio_stream::Stream<Item = T> + Send + 'static {
        tonic::codegen::tokio_stream::iter(std::iter::once(item))
    }
}

#[tokio::test]
async fn reload_keeps_the_old_policy_when_the_new_one_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    let deny_curl = "version: 1\ndefault: allow\nrules:\n  - id: no-curl\n    decision: deny\n    reason: no curl here\n    match: { tool: curl }\n";
    std::fs::write(&policy, deny_curl).unwrap();
    let db = TestDb::sqlite().await;
    // File watching off: this test is about the explicit triggers.
    let daemon = Daemon::start(
        &db.url,
        &["--policy", policy.to_str().unwrap(), "--policy-watch", "0"],
    );
    let mut client = daemon.decisions().await;
    let mut admin = AdminClient::new(daemon.channel().await);
    assert_eq!(
        evaluate(&mut client, exec_action("s", &["curl", "x"]))
            .await
            .verdict(),
        Verdict::Deny
    );

    // An invalid file: the reload is refused with file:line:column, the old policy stays.
    std::fs::write(
        &policy,
        "version: 1\ndefault: allow\nrules:\n  - id: x\n    decision: maybe\n    reason: r\n",
    )
    .unwrap();
    let err = admin
        .reload_policy(ReloadPolicyRequest {})
        .await
        .expect_err("invalid policy");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(
        err.message()
            .contains(&format!("{}:5:15", policy.display())),
        "{}",
        err.message()
    );
    assert!(err.message().contains("maybe"), "{}", err.message());
    assert_eq!(
        evaluate(&mut client, exec_action("s", &["curl", "x"]))
            .await
            .verdict(),
        Verdict::Deny
    );

    // A valid file: new decisions use it and carry its version.
    std::fs::write(&policy, deny_curl.replace("curl", "wget")).unwrap();
    let reloaded = admin
        .reload_policy(ReloadPolicyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(reloaded.changed);
    let d = evaluate(&mut client, exec_action("s", &["curl", "x"])).await;
    assert_eq!(d.verdict(), Verdict::Allow);
    assert_eq!(d.policy_version, reloaded.policy_version);
    assert_eq!(
        evaluate(&mut client, exec_action("s", &["wget", "x"]))
            .await
            .verdict(),
        Verdict::Deny
    );

    // SIGHUP reloads too.
    std::fs::write(&policy, deny_curl).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let mut denied = false;
    for _ in 0..100 {
        if evaluate(&mut client, exec_action("s", &["curl", "x"]))
            .await
            .verdict()
            == Verdict::Deny
        {
            denied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        denied,
        "SIGHUP did not reload the policy; log:\n{}",
        daemon.log()
    );
}

/// Polls until `check` holds, up to `secs` seconds.
async fn eventually<F: std::future::Future<Output = bool>>(
    secs: u64,
    mut check: impl FnMut() -> F,
) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn policy_file_changes_reload_and_bad_files_are_kept_out() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    let deny = |tool: &str| {
        format!(
            "version: 1\ndefault: allow\nrules:\n  - id: no-{tool}\n    decision: deny\n    reason: no {tool} here\n    match: {{ tool: {tool} }}\n"
        )
    };
    std::fs::write(&policy, deny("curl")).unwrap();
    let db = TestDb::sqlite().await;
    let daemon = Daemon::start(
        &db.url,
        &["--policy", policy.to_str().unwrap(), "--policy-watch", "1s"],
    );
    let channel = daemon.channel().await;
    let version = || {
        let mut admin = AdminClient::new(channel.clone());
        async move {
            admin
                .get_policy(GetPolicyRequest {})
                .await
                .unwrap()
                .into_inner()
                .policy_version
        }
    };
    let first = version().await;

    // Replaced the way editors and ConfigMaps do it: a new file renamed over the old.
    let staged = dir.path().join("policy.yaml.new");
    std::fs::write(&staged, deny("wget")).unwrap();
    std::fs::rename(&staged, &policy).unwrap();
    assert!(
        eventually(15, || async { version().await != first }).await,
        "the changed file was not picked up; log:\n{}",
        daemon.log()
    );
    let second = version().await;
    let mut client = daemon.decisions().await;
    let d = evaluate(&mut client, exec_action("s", &["wget", "x"])).await;
    assert_eq!(d.verdict(), Verdict::Deny);
    assert_eq!(d.policy_version, second);
    assert_eq!(
        evaluate(&mut client, exec_action("s", &["curl", "x"]))
            .await
            .verdict(),
        Verdict::Allow
    );

    // Written in place and invalid: logged with file:line:column, the old policy stays.
    std::fs::write(
        &policy,
        "version: 1\ndefault: allow\nrules:\n  - id: x\n    decision: maybe\n    reason: r\n",
    )
    .unwrap();
    let where_ = format!("{}:5:15", policy.display());
    assert!(
        eventually(15, || async { daemon.log().contains(&where_) }).await,
        "the invalid file was not reported; log:\n{}",
        daemon.log()
    );
    assert_eq!(version().await, second);
    assert_eq!(
        evaluate(&mut client, exec_action("s", &["wget", "x"]))
            .await
            .verdict(),
        Verdict::Deny
    );
}

/// Two daemons on one PostgreSQL database, both under load: one chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_on_one_postgres_keep_one_chain() {
    let db = TestDb::postgres().await;
    let a = Daemon::start(&db.url, &[]);
    let b = Daemon::start(&db.url, &[]);
    let mut tasks = Vec::new();
    for (i, daemon) in [&a, &b, &a, &b, &a, &b, &a, &b].into_iter().enumerate() {
        let mut client = daemon.decisions().await;
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for j in 0..150 {
                seqs.push(
                    evaluate(
                        &mut client,
                        exec_action(&format!("s{i}"), &["echo", &j.to_string()]),
                    )
                    .await
                    .id
                    .unwrap()
                    .seq,
                );
            }
            seqs
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.extend(t.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=1200).collect::<Vec<_>>());
    a.stop();
    b.stop();
    let (code, out, err) = wardend_cli(&["audit", "verify", "--db", &db.url]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("intact: 1200 records"), "{out}");
    db.drop_pg().await;
}

#[tokio::test]
async fn start_up_errors_exit_non_zero_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "version: 1\ndefault: allow\nrules:\n  - id: a\n    decision: deny\n    reason: r\n    match:\n      tool: ['[unclosed']\n").unwrap();
    let db = format!("sqlite://{}/w.db", dir.path().display());
    let (code, _, err) = wardend_cli(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--db",
        &db,
        "--policy",
        bad.to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains(&format!("{}:8:13", bad.display())), "{err}");
    assert!(err.contains("not a valid glob"), "{err}");

    let unknown_key = dir.path().join("unknown.yaml");
    std::fs::write(&unknown_key, "version: 1\ndefault: allow\nrulez: []\n").unwrap();
    let (code, _, err) = wardend_cli(&["policy", "validate", unknown_key.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("{}:3:1", unknown_key.display())),
        "{err}"
    );
    assert!(err.contains("rulez"), "{err}");

    let (code, _, err) = wardend_cli(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--db",
        &db,
        "--policy",
        "/nonexistent/policy.yaml",
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("/nonexistent/policy.yaml") && err.contains("cannot read"),
        "{err}"
    );

    let (code, _, err) = wardend_cli(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--db",
        "postgres://nobody:secretpw@127.0.0.1:1/nothing",
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("cannot open database postgres://nobody:***@127.0.0.1:1/nothing"),
        "{err}"
    );
    assert!(!err.contains("secretpw"), "password leaked: {err}");
    assert!(!err.contains("panicked"), "{err}");

    let (code, _, err) = wardend_cli(&["migrate", "--db", "mysql://x"]);
    assert_ne!(code, 0);
    assert!(err.contains("unsupported database URL"), "{err}");

    let (code, _, err) = wardend_cli(&[
        "audit",
        "verify",
        "--db",
        &format!("sqlite://{}/empty.db", dir.path().display()),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("does not hold a Warden audit log"), "{err}");
}

/// With no arguments at all, `wardend serve` starts on the embedded default in the
/// working directory and creates warden.db there.
#[tokio::test]
async fn serve_starts_with_no_setup() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(warden_tests::wardend())
        .arg("serve")
        .current_dir(dir.path())
        .env_remove("WARDEN_DB")
        .env_remove("WARDEN_LISTEN")
        .env_remove("WARDEN_POLICY")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the "listening on" log line: the signal handlers are installed by then
    // (warden.db appears earlier, when the store connects).
    use std::io::BufRead;
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    for line in stderr.by_ref() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.contains("listening on 127.0.0.1:50051") {
            break;
        }
        if line.contains("cannot listen on 127.0.0.1:50051") {
            // Port 50051 is taken on this machine: that must be this clear error.
            assert!(!child.wait().unwrap().success());
            return;
        }
    }
    assert!(log.contains("listening on 127.0.0.1:50051"), "{log}");
    assert!(
        dir.path().join("warden.db").exists(),
        "warden.db was not created in the working directory"
    );
    // Keep reading its log, as a terminal would, so it can log its shutdown.
    let rest = std::thread::spawn(move || stderr.map_while(Result::ok).collect::<Vec<_>>());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let rest = rest.join().unwrap().join("\n");
    assert!(status.success(), "{status:?}\n{log}{rest}");
    assert!(rest.contains("wardend stopped"), "{rest}");
}

/// A decision stuck behind a locked database: SIGTERM still ends the daemon once the
/// drain timeout passes, and the stuck caller gets an error, never an unaudited answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_timeout_bounds_shutdown() {
    use sqlx::Connection;
    let db = TestDb::sqlite().await;
    let daemon = Daemon::start(&db.url, &["--drain-timeout", "1"]);
    let mut client = daemon.decisions().await;
    evaluate(&mut client, exec_action("s", &["true"])).await;

    // Take SQLite's write lock and keep it.
    let mut locker = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut locker)
        .await
        .unwrap();
    let stuck = tokio::spawn(async move {
        client
            .evaluate(warden_proto::v1::EvaluateRequest {
                action: Some(exec_action("s", &["echo", "stuck"])),
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || daemon.stop())
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(status.code().is_some(), "{status:?}");
    assert!(
        took < Duration::from_secs(8),
        "shutdown took {took:?} with a 1 s drain timeout"
    );
    assert!(
        stuck.await.unwrap().is_err(),
        "a decision whose record was never committed was answered"
    );
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut locker)
        .await
        .unwrap();
}

/// A daemon whose log pipe was closed (its reader went away) still shuts down cleanly
/// and exits 0: failing to write a log line must never take it down.
#[tokio::test]
async fn closed_log_pipe_does_not_crash_the_daemon() {
    use std::io::BufRead;
    let db = TestDb::sqlite().await;
    let mut child = std::process::Command::new(warden_tests::wardend())
        .args(["serve", "--listen", "127.0.0.1:0", "--db", &db.url])
        .env("WARDEN_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        for line in stderr.lines() {
            if line.unwrap().contains("listening on") {
                break;
            }
        }
    } // the read end closes here
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// Allows and deploys need approval; `rm -rf` is denied but a break-glass grant could
/// lift it. On SQLite an allowed action's record commits in its session step's
/// transaction, while the other two go through the audit writer after it.
const MIXED_POLICY: &str = r#"version: 1
name: mixed-writers
default: allow
rules:
  - id: deploy-needs-approval
    decision: require_approval
    reason: deploys need a human
    match: { channel: exec, tool: deploy }
  - id: no-rm-rf
    decision: deny
    reason: recursive deletes are refused
    match: { channel: exec, command: "rm -rf *" }
"#;

/// Records made in the session steps' transactions and records made by the audit
/// writer, at once on many sessions, build one chain: every answer names the record it
/// was answered with (same seq, hash, kind and verdict), no two answers share a
/// record, every decision and report in the log was answered, and the chain verifies.
async fn records_from_steps_and_the_audit_writer_build_one_chain(kind: Backend) {
    let db = TestDb::of(kind).await;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, MIXED_POLICY).unwrap();
    let daemon = Daemon::start(&db.url, &["--policy", policy.to_str().unwrap()]);
    let channel = daemon.channel().await;
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let channel = channel.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = warden_proto::v1::decisions_client::DecisionsClient::new(channel);
            let session = format!("mixed-{worker}");
            let echo = |i: usize| exec_action(&session, &["echo", &i.to_string()]);
            let deploy = exec_action(&session, &["deploy", "prod"]);
            // (seq, hash, kind, verdict) of every answer.
            let mut answered: Vec<(u64, String, &'static str, String)> = Vec::new();
            let mut last_allowed = 0;
            for i in 0..40 {
                let action = match i % 4 {
                    0 => echo(i),
                    1 => deploy.clone(),
                    2 => exec_action(&session, &["rm", "-rf", "/tmp/x"]),
                    _ => {
                        // A report with follow-ups: one the step can record, and
                        // every other time one that needs the approvals gate too.
                        let mut then_evaluate = vec![echo(i)];
                        if i % 8 == 7 {
                            then_evaluate.push(deploy.clone());
                        }
                        let r = client
                            .report(ReportRequest {
                                action: Some(echo(i - 3)),
                                decision_seq: last_allowed,
                                result: Some(ResultMeta {
                                    exit_code: Some(0),
                                    bytes: 10,
                                    ..Default::default()
                                }),
                                then_evaluate,
                            })
                            .await
                            .expect("report")
                            .into_inner();
                        let id = r.id.expect("report id");
                        answered.push((id.seq, id.hash, "report", String::new()));
                        for d in r.decisions {
                            let id = d.id.clone().expect("decision id");
                            answered.push((id.seq, id.hash, "evaluate", verdict_name(&d)));
                        }
                        continue;
                    }
                };
                let d = evaluate(&mut client, action).await;
                let id = d.id.clone().expect("decision id");
                if d.verdict() == Verdict::Allow {
                    last_allowed = id.seq;
                }
                answered.push((id.seq, id.hash, "evaluate", verdict_name(&d)));
            }
            answered
        }));
    }
    let mut answered = Vec::new();
    for t in tasks {
        answered.extend(t.await.unwrap());
    }
    // 8 workers x (30 decisions + 10 reports with 15 follow-ups).
    assert_eq!(answered.len(), 8 * (30 + 10 + 15));
    let verdicts: std::collections::HashSet<_> = answered.iter().map(|a| a.3.as_str()).collect();
    for v in ["allow", "require_approval", "deny"] {
        assert!(verdicts.contains(v), "no {v} among {verdicts:?}");
    }

    let mut audit = AuditClient::new(daemon.channel().await);
    let mut records = std::collections::BTreeMap::new();
    let mut after_seq = 0;
    loop {
        let page = audit
            .query(AuditQueryRequest {
                after_seq,
                limit: 500,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .records;
        let Some(last) = page.last() else { break };
        after_seq = last.seq;
        records.extend(page.into_iter().map(|r| (r.seq, r)));
    }
    let mut seen = std::collections::HashSet::new();
    for (seq, hash, kind, verdict) in &answered {
        assert!(seen.insert(*seq), "two answers name record {seq}");
        let record = records
            .get(seq)
            .unwrap_or_else(|| panic!("answered record {seq} is not in the log"));
        assert_eq!(&record.hash, hash, "record {seq}");
        assert_eq!(record.kind, *kind, "record {seq}");
        if *kind == "evaluate" {
            assert_eq!(&record.verdict, verdict, "record {seq}");
        }
    }
    let unanswered: Vec<_> = records
        .values()
        .filter(|r| (r.kind == "evaluate" || r.kind == "report") && !seen.contains(&r.seq))
        .map(|r| r.seq)
        .collect();
    assert!(
        unanswered.is_empty(),
        "records never answered: {unanswered:?}"
    );
    let verify = audit
        .verify(AuditVerifyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(verify.ok, "{}", verify.problem);
    assert_eq!(verify.records as usize, records.len());

    assert!(daemon.stop().success());
    db.drop_pg().await;
}
both_backends!(
    records_from_steps_and_the_audit_writer_build_one_chain,
    super::records_from_steps_and_the_audit_writer_build_one_chain
);

/// A decision's verdict as the audit log spells it.
fn verdict_name(d: &warden_proto::v1::Decision) -> String {
    match d.verdict() {
        Verdict::Allow => "allow",
        Verdict::AllowWithRedaction => "allow_with_redaction",
        Verdict::RequireApproval => "require_approval",
        Verdict::Deny => "deny",
        other => panic!("unexpected verdict {other:?}"),
    }
    .into()
}
