//! Sessions end to end: zones escalate from actions and reports, persist across a
//! daemon restart, and stay serialized when two replicas act on one session.

use std::time::Instant;

use tonic::Code;
use warden_proto::v1::sessions_client::SessionsClient;
use warden_proto::v1::{
    Action, CloseSessionRequest, EvaluateRequest, GetSessionRequest, OpenSessionRequest,
    ReportRequest, ResultMeta, SessionRef, Verdict, Zone,
};
use warden_tests::{Backend, Daemon, TestDb, both_backends, evaluate, wardend_cli};

fn file_read(session: &str, path: &str) -> Action {
    Action {
        agent: "analyst".into(),
        session: session.into(),
        channel: "file".into(),
        operation: "read".into(),
        resource: path.into(),
        ..Default::default()
    }
}

fn post(session: &str, url: &str) -> Action {
    Action {
        agent: "analyst".into(),
        session: session.into(),
        channel: "http".into(),
        tool: "POST".into(),
        resource: url.into(),
        ..Default::default()
    }
}

fn session_ref(session: &str) -> Option<SessionRef> {
    Some(SessionRef {
        agent: "analyst".into(),
        session: session.into(),
        ..Default::default()
    })
}

/// Acceptance scenarios 6, 15 and 24: a credential read escalates the session, the
/// escalation survives a restart, and a new session starts safe.
async fn zone_survives_a_restart(kind: Backend) {
    let db = TestDb::of(kind).await;
    let first = Daemon::start(&db.url, &[]);
    let mut client = first.decisions().await;
    let d = evaluate(&mut client, post("s1", "https://upload.example.com/x")).await;
    assert_eq!(d.verdict(), Verdict::Allow, "{d:?}");
    assert_eq!(d.zone(), Zone::Safe);
    let d = evaluate(&mut client, file_read("s1", "~/.aws/credentials")).await;
    assert_eq!(d.verdict(), Verdict::Deny, "{d:?}");
    assert_eq!(d.zone(), Zone::Sensitive, "{d:?}");
    assert!(d.reason.contains("escalated to sensitive"), "{}", d.reason);
    drop(client);
    assert!(first.stop().success());

    let second = Daemon::start(&db.url, &[]);
    let mut sessions = SessionsClient::new(second.channel().await);
    let info = sessions
        .get(GetSessionRequest {
            session: session_ref("s1"),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(info.zone(), Zone::Sensitive);
    assert_eq!(info.actions, 2);
    let mut client = second.decisions().await;
    let d = evaluate(&mut client, post("s1", "https://upload.example.com/x")).await;
    assert_eq!(d.verdict(), Verdict::Deny, "{d:?}");
    assert_eq!(
        d.matched_rules,
        vec!["baseline/deny-egress-from-sensitive-session"]
    );
    // A new session of the same agent starts safe.
    let d = evaluate(&mut client, post("s2", "https://upload.example.com/x")).await;
    assert_eq!(
        (d.verdict(), d.zone()),
        (Verdict::Allow, Zone::Safe),
        "{d:?}"
    );
    second.stop();
    db.drop_pg().await;
}
both_backends!(zone_survives_a_restart_, super::zone_survives_a_restart);

/// Acceptance scenario 8: a reported result tagged salary escalates the session; then
/// external egress is refused and internal egress is not.
async fn reported_tags_escalate(kind: Backend) {
    let db = TestDb::of(kind).await;
    let daemon = Daemon::start(&db.url, &[]);
    let mut client = daemon.decisions().await;
    let query = Action {
        agent: "analyst".into(),
        session: "q".into(),
        channel: "mcp".into(),
        tool: "query".into(),
        resource: "warehouse.employees".into(),
        ..Default::default()
    };
    let d = evaluate(&mut client, query.clone()).await;
    assert_eq!(d.verdict(), Verdict::Allow);
    let report = client
        .report(ReportRequest {
            then_evaluate: Vec::new(),
            action: Some(query),
            decision_seq: d.id.unwrap().seq,
            result: Some(ResultMeta {
                tags: vec!["Salary".into()],
                rows: 10,
                bytes: 512,
                ..Default::default()
            }),
        })
        .await
        .expect("report")
        .into_inner();
    assert_eq!(report.zone(), Zone::Sensitive);
    let d = evaluate(&mut client, post("q", "https://collector.example.net/in")).await;
    assert_eq!(d.verdict(), Verdict::Deny, "{d:?}");
    let d = evaluate(&mut client, post("q", "http://wiki.internal/page")).await;
    assert_eq!(d.verdict(), Verdict::Allow, "{d:?}");
    assert_eq!(d.zone(), Zone::Sensitive, "zones never go down");
    daemon.stop();
    db.drop_pg().await;
}
both_backends!(reported_tags_escalate_, super::reported_tags_escalate);

/// A report with follow-ups (`then_evaluate`, what `warden llm` sends for a model's
/// answer and the tool calls it proposes): the follow-ups are judged on the session as
/// the report left it, in order, and all records are consecutive in the chain. A
/// follow-up outside the report's session fails the call before anything is stored; a
/// follow-up that cannot be decided (ended session) fails it after the report was
/// recorded.
async fn report_then_evaluate(kind: Backend) {
    let db = TestDb::of(kind).await;
    let daemon = Daemon::start(&db.url, &[]);
    let mut client = daemon.decisions().await;
    let query = |session: &str| Action {
        agent: "analyst".into(),
        session: session.into(),
        channel: "mcp".into(),
        tool: "query".into(),
        resource: "warehouse.employees".into(),
        ..Default::default()
    };
    // A report of salary rows read in `session`, with follow-ups.
    let salary = |session: &str, decision_seq: u64, then_evaluate: Vec<Action>| ReportRequest {
        action: Some(query(session)),
        decision_seq,
        result: Some(ResultMeta {
            tags: vec!["salary".into()],
            rows: 10,
            ..Default::default()
        }),
        then_evaluate,
    };
    let d = evaluate(&mut client, query("q")).await;
    assert_eq!(d.verdict(), Verdict::Allow);
    let seq = d.id.unwrap().seq;
    let report = client
        .report(salary(
            "q",
            seq,
            vec![
                post("q", "https://collector.example.net/in"),
                post("q", "http://wiki.internal/page"),
            ],
        ))
        .await
        .expect("report with follow-ups")
        .into_inner();
    assert_eq!(report.zone(), Zone::Sensitive);
    let verdicts: Vec<_> = report.decisions.iter().map(|d| d.verdict()).collect();
    assert_eq!(verdicts, [Verdict::Deny, Verdict::Allow], "{report:?}");
    let seqs: Vec<u64> = std::iter::once(&report.id)
        .chain(report.decisions.iter().map(|d| &d.id))
        .map(|r| r.as_ref().expect("audit ref").seq)
        .collect();
    assert_eq!(seqs, [seq + 1, seq + 2, seq + 3], "one group in the chain");

    // A follow-up in another session: refused whole, the report not applied.
    let err = client
        .report(salary(
            "q2",
            0,
            vec![post("elsewhere", "https://collector.example.net/in")],
        ))
        .await
        .expect_err("a follow-up outside the session");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("then_evaluate[0]: session"),
        "{err:?}"
    );
    let d = evaluate(&mut client, post("q2", "https://collector.example.net/in")).await;
    assert_eq!(
        d.verdict(),
        Verdict::Allow,
        "the refused report changed nothing"
    );
    assert_eq!(d.id.unwrap().seq, seq + 4, "and recorded nothing");

    // An ended session: the report is recorded (what was read was read), the call
    // fails and no follow-up decision exists.
    evaluate(&mut client, query("q3")).await;
    let mut sessions = SessionsClient::new(daemon.channel().await);
    sessions
        .close(CloseSessionRequest {
            session: session_ref("q3"),
        })
        .await
        .expect("close");
    let before = evaluate(&mut client, query("q4")).await.id.unwrap().seq;
    let err = client
        .report(salary(
            "q3",
            0,
            vec![post("q3", "http://wiki.internal/page")],
        ))
        .await
        .expect_err("a follow-up in an ended session");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let after = evaluate(&mut client, query("q4")).await.id.unwrap().seq;
    assert_eq!(after, before + 2, "the report's record, and no decision's");
    daemon.stop();
    db.drop_pg().await;
}
both_backends!(report_then_evaluate_, super::report_then_evaluate);

/// Open, Get, Close; a closed session takes no more actions and cannot be reopened;
/// opening and closing are audited.
async fn session_lifecycle(kind: Backend) {
    let db = TestDb::of(kind).await;
    let daemon = Daemon::start(&db.url, &[]);
    let mut sessions = SessionsClient::new(daemon.channel().await);
    let opened = sessions
        .open(OpenSessionRequest {
            session: Some(SessionRef {
                agent: "analyst".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("open")
        .into_inner();
    assert!(opened.session.starts_with("s-"), "{opened:?}");
    assert!(opened.open);
    assert_eq!(opened.zone(), Zone::Safe);
    let id = opened.session.clone();
    let mut client = daemon.decisions().await;
    let d = evaluate(&mut client, post(&id, "http://api.internal/x")).await;
    assert_eq!(d.verdict(), Verdict::Allow);
    let closed = sessions
        .close(CloseSessionRequest {
            session: session_ref(&id),
        })
        .await
        .expect("close")
        .into_inner();
    assert!(!closed.open);
    assert_eq!(closed.actions, 1);
    assert!(closed.closed_us > 0);
    let err = client
        .evaluate(EvaluateRequest {
            action: Some(post(&id, "http://api.internal/x")),
        })
        .await
        .expect_err("a closed session takes no actions");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("closed"), "{}", err.message());
    let err = sessions
        .open(OpenSessionRequest {
            session: session_ref(&id),
            ..Default::default()
        })
        .await
        .expect_err("a closed session cannot be reopened");
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = sessions
        .get(GetSessionRequest {
            session: session_ref("never-seen"),
        })
        .await
        .expect_err("unknown session");
    assert_eq!(err.code(), Code::NotFound);
    daemon.stop();
    let (code, out, err) = wardend_cli(&["audit", "replay", "--db", &db.url, &id]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("session_open"), "{out}");
    assert!(out.contains("session_close"), "{out}");
    db.drop_pg().await;
}
both_backends!(session_lifecycle_, super::session_lifecycle);

/// Two replicas on one PostgreSQL act on one session at once. No action counter update
/// is lost, and once the escalating action has been answered, no replica allows an
/// external POST in that session again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_serialize_one_session() {
    let db = TestDb::postgres().await;
    let a = Daemon::start(&db.url, &[]);
    let b = Daemon::start(&db.url, &[]);
    let escalated_at = std::sync::Arc::new(std::sync::Mutex::new(None::<Instant>));
    let mut tasks = Vec::new();
    for i in 0..6 {
        let mut client = if i % 2 == 0 {
            a.decisions().await
        } else {
            b.decisions().await
        };
        let escalated_at = escalated_at.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for j in 0..40 {
                if i == 3 && j == 20 {
                    let d = evaluate(&mut client, file_read("shared", "/home/u/.ssh/id_rsa")).await;
                    assert_eq!(d.zone(), Zone::Sensitive);
                    *escalated_at.lock().unwrap() = Some(Instant::now());
                    continue;
                }
                let sent = Instant::now();
                let d = evaluate(&mut client, post("shared", "https://out.example.com/x")).await;
                seen.push((sent, d.verdict(), d.zone()));
            }
            seen
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let escalated_at = escalated_at.lock().unwrap().expect("escalation ran");
    let after: Vec<_> = all
        .iter()
        .filter(|(sent, _, _)| *sent > escalated_at)
        .collect();
    assert!(
        !after.is_empty(),
        "the test must send actions after the escalation"
    );
    for (_, verdict, zone) in &after {
        assert_eq!(*verdict, Verdict::Deny, "a stale zone allowed a POST");
        assert_eq!(*zone, Zone::Sensitive);
    }
    // Zones only go up: an allowed POST was judged in the safe zone.
    for (_, verdict, zone) in &all {
        if *verdict == Verdict::Allow {
            assert_eq!(*zone, Zone::Safe);
        }
    }
    let mut sessions = SessionsClient::new(a.channel().await);
    let info = sessions
        .get(GetSessionRequest {
            session: session_ref("shared"),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        info.actions, 240,
        "every action of both replicas is counted"
    );
    assert_eq!(info.zone(), Zone::Sensitive);
    a.stop();
    b.stop();
    db.drop_pg().await;
}

/// `wardend check` passes every shipped scenario and fails, naming step and rule, when an
/// expectation does not hold.
#[test]
fn check_runs_the_shipped_scenarios_and_reports_mismatches() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let scenarios = repo.join("policies/scenarios/*.yaml");
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("junit.xml");
    let (code, out, err) = wardend_cli(&[
        "check",
        "--scenario",
        scenarios.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("0 failed"), "{out}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<testsuite name=\"1: default"), "{xml}");
    assert!(!xml.contains("<failure"), "{xml}");

    let wrong = dir.path().join("wrong.yaml");
    std::fs::write(
        &wrong,
        "name: wrong\nprofile: coding-agent\nsteps:\n  - exec: ls\n    expect: allow\n  - exec: npm publish\n    expect: allow\n",
    )
    .unwrap();
    let (code, out, _) = wardend_cli(&["check", "--scenario", wrong.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("step 2: exec npm publish: expected allow, got deny"),
        "{out}"
    );
    assert!(out.contains("baseline/deny-publish"), "{out}");

    let (code, _, err) = wardend_cli(&["check", "--scenario", "/nonexistent/*.yaml"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("matches no file"), "{err}");
}

/// What a test's step closure fails with: its own refusal, or the store's error (as
/// text) when the store could not run or store the step.
#[derive(Debug, PartialEq)]
enum Refused {
    Mine,
    Store(String),
}

impl From<warden_server::store::StoreError> for Refused {
    fn from(e: warden_server::store::StoreError) -> Self {
        Refused::Store(e.to_string())
    }
}

/// Many session steps at once, through one store (on SQLite: batched on its step
/// writer): every step that stored its state is counted, two sessions never mix, a step
/// whose closure refuses stores nothing and fails alone, and the store keeps working
/// after a closure panicked.
async fn concurrent_steps_lose_nothing(kind: Backend) {
    use warden_server::session::SessionState;
    use warden_server::store::SessionKey;

    let db = TestDb::of(kind).await;
    let store = warden_tests::store(&db).await;
    let key = |session: &str| SessionKey {
        tenant: "default".into(),
        agent: "steps".into(),
        session: session.into(),
    };
    let mut tasks = Vec::new();
    for i in 0..300u64 {
        let store = store.clone();
        let key = key(if i % 2 == 0 { "even" } else { "odd" });
        tasks.push(tokio::spawn(async move {
            store
                .session_step(&key, move |stored| {
                    if i % 10 == 3 {
                        return Err(Refused::Mine);
                    }
                    let mut s = stored.unwrap_or_else(|| SessionState::new(1));
                    s.actions += 1;
                    s.bytes += i;
                    Ok((s, ()))
                })
                .await
        }));
    }
    let (mut stored, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => stored += 1,
            Err(Refused::Mine) => refused += 1,
            Err(Refused::Store(e)) => panic!("a step failed in the store: {e}"),
        }
    }
    assert_eq!((stored, refused), (270, 30));
    let even = store.session_get(&key("even")).await.unwrap().unwrap();
    let odd = store.session_get(&key("odd")).await.unwrap().unwrap();
    // i % 10 == 3 is always odd: the even session lost none of its 150 steps.
    assert_eq!(even.actions, 150);
    assert_eq!(even.bytes, (0..300).step_by(2).sum::<u64>());
    assert_eq!(odd.actions, 120);
    assert_eq!(
        odd.bytes,
        (1..300).step_by(2).filter(|i| i % 10 != 3).sum::<u64>()
    );

    if kind == Backend::Sqlite {
        // On SQLite the closure runs on the step writer: a panic there is the caller's
        // error, and the writer goes on.
        let err = store
            .session_step(
                &key("even"),
                |_: Option<SessionState>| -> Result<(SessionState, ()), Refused> {
                    panic!("a bug in a step")
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Refused::Store(m) if m.contains("nothing was stored")),
            "{err:?}"
        );
        store
            .session_step(&key("even"), |stored| {
                let mut s = stored.expect("the session exists");
                s.actions += 1;
                Ok::<_, Refused>((s, ()))
            })
            .await
            .unwrap();
        let even = store.session_get(&key("even")).await.unwrap().unwrap();
        assert_eq!(even.actions, 151, "the panicked step stored nothing");

        // A database error fails every step of its batch, and none of them is stored.
        db.exec_sql(
            "CREATE TRIGGER frozen BEFORE UPDATE ON sessions \
             BEGIN SELECT RAISE(ABORT, 'sessions are frozen'); END",
        )
        .await;
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (store, key) = (store.clone(), key("even"));
            tasks.push(tokio::spawn(async move {
                store
                    .session_step(&key, |stored| {
                        let mut s = stored.expect("the session exists");
                        s.actions += 1;
                        Ok::<_, Refused>((s, ()))
                    })
                    .await
            }));
        }
        for t in tasks {
            match t.await.unwrap() {
                Err(Refused::Store(e)) => assert!(e.contains("sessions are frozen"), "{e}"),
                other => panic!("a step of a failed batch came back {other:?}"),
            }
        }
        db.exec_sql("DROP TRIGGER frozen").await;
        let even = store.session_get(&key("even")).await.unwrap().unwrap();
        assert_eq!(even.actions, 151, "no step of a failed batch was stored");
    }
    db.drop_pg().await;
}
both_backends!(
    concurrent_steps_lose_nothing_,
    super::concurrent_steps_lose_nothing
);

/// A chain of steps runs in its order in one transaction, each on the state the ones
/// before it left; a refusal stores nothing of itself and the steps after it never run,
/// while the ones before it are stored. A chain whose first step refuses leaves no row
/// behind, not even a new session's placeholder (PostgreSQL).
async fn chained_steps_run_in_order_and_stop_at_a_refusal(kind: Backend) {
    use warden_server::session::SessionState;
    use warden_server::store::{SessionKey, StepChain};

    type Seen = Result<
        (
            SessionState,
            u64,
            Option<warden_server::store::AdmissionPlan>,
        ),
        Refused,
    >;
    // A step that records how many actions it saw and adds one.
    fn count(stored: Option<SessionState>) -> Seen {
        let mut s = stored.unwrap_or_else(|| SessionState::new(1));
        let seen = s.actions;
        s.actions += 1;
        Ok((s, seen, None))
    }
    fn refuse(_: Option<SessionState>) -> Seen {
        Err(Refused::Mine)
    }

    let db = TestDb::of(kind).await;
    let store = warden_tests::store(&db).await;
    let key = |session: &str| SessionKey {
        tenant: "default".into(),
        agent: "chains".into(),
        session: session.into(),
    };

    let mut chain = StepChain::new(key("s"));
    let steps = [
        chain.admit(count),
        chain.admit(count),
        chain.admit(refuse),
        chain.admit(count),
    ];
    let mut ran = store.session_steps(chain).await.unwrap();
    let seen: Vec<_> = steps
        .into_iter()
        .map(|s| {
            s.admitted(&mut ran)
                .map(|(seen, admitted)| (seen, admitted.is_some()))
        })
        .collect();
    assert_eq!(seen[0], Ok((0, false)));
    assert_eq!(
        seen[1],
        Ok((1, false)),
        "the second step saw the first one's state"
    );
    assert_eq!(seen[2], Err(Refused::Mine));
    assert!(
        matches!(&seen[3], Err(Refused::Store(m)) if m.contains("was not run")),
        "{:?}",
        seen[3]
    );
    let stored = store.session_get(&key("s")).await.unwrap().unwrap();
    assert_eq!(
        stored.actions, 2,
        "the steps before the refusal were stored, none after"
    );

    // A chain of a new session whose first step refuses writes nothing.
    let mut chain = StepChain::new(key("fresh"));
    let first = chain.admit(refuse);
    let second = chain.admit(count);
    let mut ran = store.session_steps(chain).await.unwrap();
    assert_eq!(first.admitted(&mut ran).err(), Some(Refused::Mine));
    assert!(second.admitted(&mut ran).is_err());
    assert_eq!(store.session_get(&key("fresh")).await.unwrap(), None);
    let rows: i64 = if db.is_postgres() {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
            .await
            .unwrap();
        sqlx::query_scalar("SELECT count(*) FROM sessions WHERE session = 'fresh'")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    } else {
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&db.url)
            .await
            .unwrap();
        sqlx::query_scalar("SELECT count(*) FROM sessions WHERE session = 'fresh'")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    assert_eq!(rows, 0, "no row, not even a placeholder, was left behind");
    db.drop_pg().await;
}
both_backends!(
    chained_steps_run_in_order_and_stop_at_a_refusal_,
    super::chained_steps_run_in_order_and_stop_at_a_refusal
);
