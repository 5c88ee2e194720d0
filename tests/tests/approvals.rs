//! Approvals and break-glass end to end: real daemons, real CLI processes, both
//! backends, and two replicas racing for one single-use grant.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tonic::{Code, Request};
use warden_proto::v1::admin_client::AdminClient;
use warden_proto::v1::approvals_client::ApprovalsClient;
use warden_proto::v1::{
    Action, ApprovalStatus, ApproveRequest, AuditQueryRequest, AuditVerifyRequest,
    BreakGlassRequest, DenyApprovalRequest, GetApprovalRequest, ListApprovalsRequest,
    ListBreakGlassRequest, ReloadPolicyRequest, RevokeBreakGlassRequest, Verdict,
    audit_client::AuditClient,
};
use warden_tests::{Backend, Channel, Daemon, TestDb, both_backends, evaluate, warden};

/// Deploys need approval; `rm -rf` is denied but breakable; reading the vault is denied
/// and unbreakable.
const POLICY: &str = r#"version: 1
name: approvals-test
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
  - id: vault-is-sealed
    decision: deny
    unbreakable: true
    reason: the vault is never read by agents
    match: { channel: exec, tool: cat, resource: "/srv/vault/**" }
"#;

const TOKEN: &str = "test-admin-token-0123456789";

struct Setup {
    _dir: tempfile::TempDir,
    policy: PathBuf,
    token: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let token = dir.path().join("admin.token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    Setup {
        _dir: dir,
        policy,
        token,
    }
}

fn start(db: &str, s: &Setup, with_token: bool) -> Daemon {
    let policy = s.policy.to_str().unwrap();
    let token = s.token.to_str().unwrap();
    if with_token {
        Daemon::start(db, &["--policy", policy, "--admin-token-file", token])
    } else {
        Daemon::start(db, &["--policy", policy])
    }
}

fn exec(agent: &str, session: &str, argv: &[&str]) -> Action {
    Action {
        agent: agent.into(),
        session: session.into(),
        channel: "exec".into(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn admin<T>(message: T) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    r
}

/// Every audit record so far.
async fn all_records(daemon: &Daemon) -> Vec<warden_proto::v1::AuditRecord> {
    AuditClient::new(daemon.channel().await)
        .query(AuditQueryRequest {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records
}

fn approve(id: &str, approver: &str, ttl_seconds: u64) -> ApproveRequest {
    ApproveRequest {
        id: id.into(),
        approver: approver.into(),
        note: "looked at it".into(),
        ttl_seconds,
    }
}

/// Acceptance scenarios 7 and 19: an approval allows exactly the action it was asked
/// for, once; nothing else; the requesting agent cannot approve it; a denial sticks.
async fn approvals_are_bound_single_use_and_not_self_approvable(kind: Backend) {
    let db = TestDb::of(kind).await;
    let s = setup();
    let daemon = start(&db.url, &s, false);
    let mut client = daemon.decisions().await;
    let mut approvals = ApprovalsClient::new(daemon.channel().await);
    let deploy = || exec("agent-a", "s1", &["deploy", "prod"]);

    let first = evaluate(&mut client, deploy()).await;
    assert_eq!(first.verdict(), Verdict::RequireApproval, "{first:?}");
    let id = first.approval_id.clone();
    assert!(id.starts_with("apr-"), "{first:?}");
    assert_eq!(first.reason, "deploys need a human");
    // Asking again does not pile up requests.
    let again = evaluate(&mut client, deploy()).await;
    assert_eq!(again.approval_id, id);
    let pending = approvals
        .list(ListApprovalsRequest {
            status: ApprovalStatus::Pending.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .approvals;
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].agent, "agent-a");
    assert_eq!(pending[0].rule_ids, vec!["deploy-needs-approval"]);
    assert!(pending[0].action_json.contains("deploy prod"));

    // The requesting agent cannot approve its own request (in any letter case).
    for me in ["agent-a", "AGENT-A"] {
        let err = approvals.approve(approve(&id, me, 0)).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    }
    // No approver at all is a bad request, an unknown id is not found.
    let err = approvals.approve(approve(&id, " ", 0)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let err = approvals
        .approve(approve("apr-nope", "alice", 0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert_eq!(
        evaluate(&mut client, deploy()).await.verdict(),
        Verdict::RequireApproval
    );

    let granted = approvals
        .approve(approve(&id, "alice", 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(granted.status(), ApprovalStatus::Approved);
    assert_eq!(granted.decided_by, "alice");
    assert_eq!(granted.uses_left, 1);
    // Deciding twice is refused.
    let err = approvals
        .deny(DenyApprovalRequest {
            id: id.clone(),
            approver: "bob".into(),
            note: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

    // Not for another agent, another session, or another action.
    for other in [
        exec("agent-b", "s1", &["deploy", "prod"]),
        exec("agent-a", "s2", &["deploy", "prod"]),
        exec("agent-a", "s1", &["deploy", "staging"]),
    ] {
        let d = evaluate(&mut client, other.clone()).await;
        assert_eq!(d.verdict(), Verdict::RequireApproval, "{other:?}: {d:?}");
        assert_ne!(d.approval_id, id, "{other:?}");
    }
    // The same action: allowed once, naming the approval.
    let allowed = evaluate(&mut client, deploy()).await;
    assert_eq!(allowed.verdict(), Verdict::Allow, "{allowed:?}");
    assert_eq!(allowed.approval_id, id);
    assert!(
        allowed.reason.contains("approved by alice"),
        "{}",
        allowed.reason
    );
    let used = approvals
        .get(GetApprovalRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(used.status(), ApprovalStatus::Used);
    assert_eq!(used.uses, 1);
    // Only once: the next try asks again.
    let next = evaluate(&mut client, deploy()).await;
    assert_eq!(next.verdict(), Verdict::RequireApproval);
    assert_ne!(next.approval_id, id);

    // A refusal sticks: the same action is denied, naming who refused it.
    approvals
        .deny(DenyApprovalRequest {
            id: next.approval_id.clone(),
            approver: "bob".into(),
            note: "not on a Friday".into(),
        })
        .await
        .unwrap();
    let denied = evaluate(&mut client, deploy()).await;
    assert_eq!(denied.verdict(), Verdict::Deny, "{denied:?}");
    assert!(
        denied.reason.contains("denied by bob") && denied.reason.contains("not on a Friday"),
        "{}",
        denied.reason
    );

    // A time-limited grant allows the action repeatedly.
    let d = evaluate(&mut client, exec("agent-a", "s3", &["deploy", "prod"])).await;
    approvals
        .approve(approve(&d.approval_id, "alice", 600))
        .await
        .unwrap();
    for _ in 0..3 {
        let d = evaluate(&mut client, exec("agent-a", "s3", &["deploy", "prod"])).await;
        assert_eq!(d.verdict(), Verdict::Allow, "{d:?}");
    }

    // Every approver decision is in the audit log, and the chain holds.
    let records = all_records(&daemon).await;
    let decisions: Vec<_> = records.iter().filter(|r| r.kind == "approval").collect();
    assert_eq!(decisions.len(), 3, "{decisions:?}");
    assert!(
        decisions[0]
            .reason
            .contains("approved for one use by alice")
    );
    assert!(decisions[1].reason.contains("denied by bob"));
    assert!(decisions[2].reason.contains("approved for 600s by alice"));
    let allowed_record = records
        .iter()
        .find(|r| r.seq == allowed.id.as_ref().unwrap().seq)
        .unwrap();
    assert_eq!(allowed_record.approval_id, id);
    assert_eq!(allowed_record.verdict, "allow");
    let verify = AuditClient::new(daemon.channel().await)
        .verify(AuditVerifyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(verify.ok, "{verify:?}");
}
both_backends!(
    approvals_bind,
    super::approvals_are_bound_single_use_and_not_self_approvable
);

/// Acceptance scenario 20 and the self-protection half of 5: break-glass lifts breakable
/// refusals in its scope only, until it expires or is revoked, never unbreakable ones;
/// issuing and every use are audited.
async fn break_glass_is_scoped_expiring_revocable_and_audited(kind: Backend) {
    let db = TestDb::of(kind).await;
    let s = setup();
    let daemon = start(&db.url, &s, true);
    let mut client = daemon.decisions().await;
    let mut admin_api = AdminClient::new(daemon.channel().await);
    let rm = |session: &str| exec("agent-a", session, &["rm", "-rf", "/tmp/build"]);
    assert_eq!(
        evaluate(&mut client, rm("S")).await.verdict(),
        Verdict::Deny
    );

    // Without the token: refused, and nothing was issued.
    let request = || BreakGlassRequest {
        session: "S".into(),
        reason: "incident 4711: clean the build cache".into(),
        ttl_seconds: 600,
        issued_by: "oncall".into(),
        ..Default::default()
    };
    let err = admin_api.break_glass(request()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let mut wrong = Request::new(request());
    wrong
        .metadata_mut()
        .insert("authorization", "Bearer not-the-token".parse().unwrap());
    assert_eq!(
        admin_api.break_glass(wrong).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    // No reason, no TTL, or no scope: bad requests.
    for bad in [
        BreakGlassRequest {
            reason: " ".into(),
            ..request()
        },
        BreakGlassRequest {
            ttl_seconds: 0,
            ..request()
        },
        BreakGlassRequest {
            ttl_seconds: 90_000,
            ..request()
        },
        BreakGlassRequest {
            session: String::new(),
            ..request()
        },
    ] {
        let err = admin_api.break_glass(admin(bad)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    }
    assert!(
        admin_api
            .list_break_glass(ListBreakGlassRequest { all: true })
            .await
            .unwrap()
            .into_inner()
            .grants
            .is_empty()
    );

    let grant = admin_api
        .break_glass(admin(request()))
        .await
        .unwrap()
        .into_inner();
    assert!(grant.active && grant.id.starts_with("bg-"), "{grant:?}");

    // In session S the breakable deny becomes an allow, naming the grant.
    let d = evaluate(&mut client, rm("S")).await;
    assert_eq!(d.verdict(), Verdict::Allow, "{d:?}");
    assert_eq!(d.break_glass_id, grant.id);
    assert_eq!(d.matched_rules, vec!["no-rm-rf"]);
    assert!(d.reason.contains("incident 4711"), "{}", d.reason);
    // Another session is not covered.
    assert_eq!(
        evaluate(&mut client, rm("T")).await.verdict(),
        Verdict::Deny
    );
    // Unbreakable rules hold even in S.
    let vault = evaluate(
        &mut client,
        exec("agent-a", "S", &["cat", "/srv/vault/root.key"]),
    )
    .await;
    assert_eq!(vault.verdict(), Verdict::Deny, "{vault:?}");
    assert!(vault.break_glass_id.is_empty());
    // An allowed action does not use the grant.
    let ls = evaluate(&mut client, exec("agent-a", "S", &["ls"])).await;
    assert_eq!(ls.verdict(), Verdict::Allow);
    assert!(ls.break_glass_id.is_empty());
    // A require_approval is lifted too.
    let deploy = evaluate(&mut client, exec("agent-a", "S", &["deploy", "prod"])).await;
    assert_eq!(deploy.verdict(), Verdict::Allow, "{deploy:?}");

    let listed = admin_api
        .list_break_glass(ListBreakGlassRequest { all: false })
        .await
        .unwrap()
        .into_inner()
        .grants;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].uses, 2, "{listed:?}");

    // Revoked: refused again.
    let revoked = admin_api
        .revoke_break_glass(admin(RevokeBreakGlassRequest {
            id: grant.id.clone(),
            revoked_by: "oncall".into(),
            reason: "done".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(!revoked.active && revoked.revoked_us > 0);
    assert_eq!(
        evaluate(&mut client, rm("S")).await.verdict(),
        Verdict::Deny
    );

    // Expired: refused again.
    let short = admin_api
        .break_glass(admin(BreakGlassRequest {
            ttl_seconds: 1,
            ..request()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        evaluate(&mut client, rm("S")).await.verdict(),
        Verdict::Allow
    );
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(
        evaluate(&mut client, rm("S")).await.verdict(),
        Verdict::Deny
    );
    assert!(
        !admin_api
            .list_break_glass(ListBreakGlassRequest { all: true })
            .await
            .unwrap()
            .into_inner()
            .grants
            .iter()
            .any(|g| g.active),
        "{short:?}"
    );

    // Audited: two issues, one revocation, three uses.
    let records = all_records(&daemon).await;
    let issued: Vec<_> = records.iter().filter(|r| r.kind == "break_glass").collect();
    assert_eq!(issued.len(), 3, "{issued:?}");
    assert!(issued[0].reason.contains("issued by oncall"));
    assert!(issued[1].reason.contains("revoked by oncall"));
    let uses = records
        .iter()
        .filter(|r| r.kind == "evaluate" && !r.break_glass_id.is_empty())
        .count();
    assert_eq!(uses, 3);

    // With a token configured, approving and reloading need it too.
    let mut approvals = ApprovalsClient::new(daemon.channel().await);
    let d = evaluate(&mut client, exec("agent-a", "s9", &["deploy", "x"])).await;
    let err = approvals
        .approve(approve(&d.approval_id, "alice", 0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    approvals
        .approve(admin(approve(&d.approval_id, "alice", 0)))
        .await
        .unwrap();
    let err = admin_api
        .reload_policy(ReloadPolicyRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    admin_api
        .reload_policy(admin(ReloadPolicyRequest {}))
        .await
        .unwrap();
}
both_backends!(
    break_glass,
    super::break_glass_is_scoped_expiring_revocable_and_audited
);

#[tokio::test]
async fn break_glass_is_off_without_an_admin_token() {
    let db = TestDb::sqlite().await;
    let s = setup();
    let daemon = start(&db.url, &s, false);
    let mut admin_api = AdminClient::new(daemon.channel().await);
    let err = admin_api
        .break_glass(admin(BreakGlassRequest {
            agent: "agent-a".into(),
            reason: "r".into(),
            ttl_seconds: 60,
            issued_by: "oncall".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("--admin-token-file"), "{err:?}");
    // And the token file must not be readable by others.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&s.token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(warden_tests::wardend())
        .args(["serve", "--listen", "127.0.0.1:0", "--db", &db.url])
        .args(["--admin-token-file", s.token.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("readable by others"), "{stderr}");
}

fn warden_cli(daemon: &Daemon, token: Option<&Path>, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(warden());
    cmd.args(args)
        .env("WARDEN_DAEMON", daemon.url())
        .env_remove("WARDEN_ADMIN_TOKEN_FILE")
        .env("USER", "alice");
    if let Some(t) = token {
        cmd.env("WARDEN_ADMIN_TOKEN_FILE", t);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn pending_id(channel: &Channel, session: &str) -> String {
    let mut approvals = ApprovalsClient::new(channel.clone());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = approvals
            .list(ListApprovalsRequest {
                status: ApprovalStatus::Pending.into(),
                session: session.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .approvals;
        if let Some(a) = list.first() {
            return a.id.clone();
        }
        assert!(Instant::now() < deadline, "no pending approval appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `warden exec --wait-approval` waits on Watch, runs once approved through
/// `warden approvals approve`, and refuses when `warden approvals deny` says no.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_waits_for_an_approval_given_on_the_command_line() {
    let db = TestDb::sqlite().await;
    let s = setup();
    let daemon = start(&db.url, &s, true);
    let channel = daemon.channel().await;
    let dir = tempfile::tempdir().unwrap();
    // `deploy` is a script here, so the approved run is a real program.
    let deploy = dir.path().join("deploy");
    std::fs::write(&deploy, "#!/bin/sh\necho \"deployed $1\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&deploy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap()
    );

    let spawn = |session: &str| {
        Command::new(warden())
            .args(["exec", "--wait-approval=30s", "--", "deploy", "prod"])
            .env("WARDEN_DAEMON", daemon.url())
            .env("WARDEN_AGENT", "agent-a")
            .env("WARDEN_SESSION", session)
            .env("PATH", &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };

    let child = spawn("w1");
    let id = pending_id(&channel, "w1").await;
    // The CLI lists it, and approving without the token is refused.
    let (code, out, _) = warden_cli(&daemon, Some(&s.token), &["approvals", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains(&id) && out.contains("deploy prod"), "{out}");
    let (code, _, err) = warden_cli(&daemon, None, &["approvals", "approve", &id]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("admin token"), "{err}");
    let (code, out, err) = warden_cli(
        &daemon,
        Some(&s.token),
        &["approvals", "approve", &id, "--reason", "release 1.2"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("approved by alice"), "{out}");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "deployed prod\n");
    assert!(stderr.contains(&id), "{stderr}");

    // Denied: nothing runs, exit 126, the approver named.
    let child = spawn("w2");
    let id = pending_id(&channel, "w2").await;
    let (code, _, err) = warden_cli(
        &daemon,
        Some(&s.token),
        &["approvals", "deny", &id, "--reason", "freeze"],
    );
    assert_eq!(code, 0, "{err}");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(126), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains("denied by alice") && stderr.contains("freeze"),
        "{stderr}"
    );

    // Break-glass through the CLI: issue, list, revoke.
    let (code, out, err) = warden_cli(
        &daemon,
        Some(&s.token),
        &[
            "break-glass",
            "--reason",
            "incident",
            "--ttl",
            "10m",
            "--session",
            "w3",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let grant = out.split_whitespace().next().unwrap().to_string();
    assert!(grant.starts_with("bg-") && out.contains("active"), "{out}");
    let (_, out, _) = warden_cli(&daemon, None, &["break-glass", "list"]);
    assert!(out.contains(&grant), "{out}");
    let (code, out, err) = warden_cli(&daemon, Some(&s.token), &["break-glass", "revoke", &grant]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("revoked"), "{out}");
    let (code, _, err) = warden_cli(&daemon, Some(&s.token), &["break-glass", "--ttl", "1m"]);
    assert_eq!(code, 1);
    assert!(err.contains("--reason"), "{err}");
}

/// Two replicas, one single-use grant, many concurrent retries: exactly one is allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_use_a_single_use_grant_once() {
    let db = TestDb::postgres().await;
    let s = setup();
    let a = start(&db.url, &s, false);
    let b = start(&db.url, &s, false);
    let mut client = a.decisions().await;
    let deploy = exec("agent-a", "race", &["deploy", "prod"]);
    let d = evaluate(&mut client, deploy.clone()).await;
    ApprovalsClient::new(b.channel().await)
        .approve(approve(&d.approval_id, "alice", 0))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let mut c = if i % 2 == 0 {
            a.decisions().await
        } else {
            b.decisions().await
        };
        let action = deploy.clone();
        tasks.push(tokio::spawn(async move {
            evaluate(&mut c, action).await.verdict()
        }));
    }
    let mut allowed = 0;
    for t in tasks {
        if t.await.unwrap() == Verdict::Allow {
            allowed += 1;
        }
    }
    assert_eq!(
        allowed, 1,
        "a single-use approval allowed {allowed} actions"
    );
    db.drop_pg().await;
}
