//! One conformance suite for the `Store` abstraction, run against SQLite and PostgreSQL:
//! appending, reading, chain integrity, tamper detection (modify, delete, insert,
//! reorder, truncate) and several writers sharing one chain.

use warden_server::audit::{self, AuditWriter, RecordBody, chain_hash};
use warden_server::store::{AuditFilter, NewRecord, Store};
use warden_tests::{Backend, TestDb, both_backends, store};

fn body(i: usize, session: &str) -> RecordBody {
    RecordBody {
        time_us: 1_700_000_000_000_000 + i as i64,
        kind: audit::KIND_EVALUATE.into(),
        tenant: "default".into(),
        agent: format!("agent-{}", i % 3),
        session: session.into(),
        channel: "exec".into(),
        action: format!(r#"{{"argv":["echo","{i}"]}}"#),
        verdict: "allow".into(),
        rule_ids: vec![format!("rule-{}", i % 2)],
        reason: "test".into(),
        policy_version: "v".into(),
        zone: "safe".into(),
        approval_id: String::new(),
        break_glass_id: String::new(),
        result: String::new(),
        decision_seq: 0,
    }
}

fn records(range: std::ops::Range<usize>, session: &str) -> Vec<NewRecord> {
    range
        .map(|i| {
            let body = body(i, session);
            NewRecord {
                json: body.canonical_json(),
                body,
            }
        })
        .collect()
}

async fn seeded(kind: Backend, n: usize) -> (TestDb, Store) {
    let db = TestDb::of(kind).await;
    let store = store(&db).await;
    store
        .append_batch(&records(0..n, "s1"))
        .await
        .expect("append");
    (db, store)
}

async fn assert_broken_at(store: &Store, seq: u64, words: &str) {
    let v = audit::verify(store).await.expect("verify runs");
    let failure = v
        .failure
        .unwrap_or_else(|| panic!("tampering not detected (expected record {seq})"));
    assert_eq!(failure.seq, seq, "first bad record: {}", failure.problem);
    assert!(
        failure.problem.contains(words),
        "problem {:?} should mention {words:?}",
        failure.problem
    );
}

async fn append_read_and_verify(kind: Backend) {
    let db = TestDb::of(kind).await;
    let store = store(&db).await;
    store.migrate().await.expect("migrations are idempotent");
    assert_eq!(store.audit_head().await.unwrap().seq, 0);
    assert_eq!(audit::verify(&store).await.unwrap().records, 0);

    let first = store.append_batch(&records(0..1, "s1")).await.unwrap();
    let second = store.append_batch(&records(1..6, "s2")).await.unwrap();
    let third = store.append_batch(&records(6..106, "s1")).await.unwrap();
    let seqs: Vec<u64> = first
        .iter()
        .chain(&second)
        .chain(&third)
        .map(|c| c.seq)
        .collect();
    assert_eq!(seqs, (1..=106).collect::<Vec<_>>());

    let head = store.audit_head().await.unwrap();
    assert_eq!(head, third.last().unwrap().clone());

    // The stored chain links each record to the one before.
    let all = store
        .audit_page(&AuditFilter::default(), 0, 1000)
        .await
        .unwrap();
    assert_eq!(all.len(), 106);
    assert_eq!(all[0].prev_hash, audit::GENESIS_HASH);
    for pair in all.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
        assert_eq!(
            pair[1].hash,
            chain_hash(
                &pair[1].prev_hash,
                pair[1].seq,
                &pair[1].body.canonical_json()
            )
        );
    }
    // What was written is what is read.
    assert_eq!(all[6].body, body(6, "s1"));

    // Filters and paging.
    let s2 = AuditFilter {
        session: "s2".into(),
        ..Default::default()
    };
    let page = store.audit_page(&s2, 0, 100).await.unwrap();
    assert_eq!(
        page.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![2, 3, 4, 5, 6]
    );
    let agent0 = AuditFilter {
        agent: "agent-0".into(),
        ..Default::default()
    };
    assert!(
        store
            .audit_page(&agent0, 0, 1000)
            .await
            .unwrap()
            .iter()
            .all(|r| r.body.agent == "agent-0")
    );
    let paged = store
        .audit_page(&AuditFilter::default(), 100, 3)
        .await
        .unwrap();
    assert_eq!(
        paged.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![101, 102, 103]
    );
    let other_tenant = AuditFilter {
        tenant: "acme".into(),
        ..Default::default()
    };
    assert!(
        store
            .audit_page(&other_tenant, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let v = audit::verify(&store).await.unwrap();
    assert_eq!((v.records, v.failure), (106, None));
    store.close().await;
    db.drop_pg().await;
}
both_backends!(append_read_and_verify, super::append_read_and_verify);

async fn detects_modified_record(kind: Backend) {
    let (db, store) = seeded(kind, 10).await;
    db.exec_sql("UPDATE audit_log SET verdict = 'deny' WHERE seq = 5")
        .await;
    assert_broken_at(&store, 5, "modified").await;
    db.drop_pg().await;
}
both_backends!(detects_modified_record, super::detects_modified_record);

async fn detects_modified_hash(kind: Backend) {
    let (db, store) = seeded(kind, 10).await;
    // Recompute record 7's hash over altered contents: the next record no longer links.
    let row = &store
        .audit_page(&AuditFilter::default(), 6, 1)
        .await
        .unwrap()[0];
    let mut forged = row.body.clone();
    forged.reason = "nothing to see".into();
    let hash = chain_hash(&row.prev_hash, 7, &forged.canonical_json());
    db.exec_sql(&format!(
        "UPDATE audit_log SET reason = 'nothing to see', hash = '{hash}' WHERE seq = 7"
    ))
    .await;
    assert_broken_at(&store, 8, "does not link").await;
    db.drop_pg().await;
}
both_backends!(detects_modified_hash, super::detects_modified_hash);

async fn detects_deleted_record(kind: Backend) {
    let (db, store) = seeded(kind, 10).await;
    db.exec_sql("DELETE FROM audit_log WHERE seq = 4").await;
    assert_broken_at(&store, 4, "missing").await;
    db.drop_pg().await;
}
both_backends!(detects_deleted_record, super::detects_deleted_record);

async fn detects_truncated_tail(kind: Backend) {
    let (db, store) = seeded(kind, 10).await;
    db.exec_sql("DELETE FROM audit_log WHERE seq >= 9").await;
    assert_broken_at(&store, 9, "missing").await;
    db.drop_pg().await;
}
both_backends!(detects_truncated_tail, super::detects_truncated_tail);

async fn detects_inserted_record(kind: Backend) {
    let (db, store) = seeded(kind, 10).await;
    // Make room at seq 5 and insert a record that links correctly to record 4 and
    // carries a correct hash of its own: the forgery shows at the record after it.
    db.exec_sql("UPDATE audit_log SET seq = seq + 1000000 WHERE seq >= 5")
        .await;
    db.exec_sql("UPDATE audit_log SET seq = seq - 999999 WHERE seq >= 1000000")
        .await;
    let prev = store
        .audit_page(&AuditFilter::default(), 3, 1)
        .await
        .unwrap()[0]
        .hash
        .clone();
    let forged = body(99, "forged");
    let hash = chain_hash(&prev, 5, &forged.canonical_json());
    db.exec_sql(&format!(
        "INSERT INTO audit_log (seq, time_us, kind, tenant, agent, session, channel, action, verdict, rule_ids, reason, policy_version, zone, approval_id, break_glass_id, result, decision_seq, prev_hash, hash) \
         VALUES (5, {}, 'evaluate', 'default', '{}', 'forged', 'exec', '{}', 'allow', '[\"rule-1\"]', 'test', 'v', 'safe', '', '', '', 0, '{prev}', '{hash}')",
        forged.time_us, forged.agent, forged.action
    ))
    .await;
    assert_broken_at(&store, 6, "").await;
    db.drop_pg().await;
}
both_backends!(detects_inserted_record, super::detects_inserted_record);

async fn detects_reordered_records(kind: Backend) {
    let (db, store) = seeded(kind, 10).await;
    db.exec_sql("UPDATE audit_log SET seq = -3 WHERE seq = 3")
        .await;
    db.exec_sql("UPDATE audit_log SET seq = 3 WHERE seq = 4")
        .await;
    db.exec_sql("UPDATE audit_log SET seq = 4 WHERE seq = -3")
        .await;
    assert_broken_at(&store, 3, "").await;
    db.drop_pg().await;
}
both_backends!(detects_reordered_records, super::detects_reordered_records);

/// Two group-commit writers, each with its own connection pool (as two processes would
/// have), and many concurrent appenders: one valid chain.
async fn concurrent_writers_keep_one_chain(kind: Backend) {
    let db = TestDb::of(kind).await;
    let a = store(&db).await;
    // Each writer opens its own connection pool, as two processes would.
    let (wa, ta) = AuditWriter::start(&db.url, 64).await.unwrap();
    let (wb, tb) = AuditWriter::start(&db.url, 64).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..400usize {
        let w = if i % 2 == 0 { wa.clone() } else { wb.clone() };
        tasks.push(tokio::spawn(async move { w.append(body(i, "race")).await }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap().expect("committed").seq);
    }
    drop((wa, wb));
    ta.finished().await;
    tb.finished().await;
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=400).collect::<Vec<_>>(),
        "every record got its own seq"
    );
    let v = audit::verify(&a).await.unwrap();
    assert_eq!((v.records, v.failure), (400, None));
    db.drop_pg().await;
}
both_backends!(
    concurrent_writers_keep_one_chain,
    super::concurrent_writers_keep_one_chain
);

/// Writes a correctly linked record at seq `head + 1` straight into the table, without
/// moving the chain head (as someone bypassing Warden would).
async fn forge_after_head(db: &TestDb, store: &Store) -> u64 {
    let head = store.audit_head().await.unwrap();
    let seq = head.seq + 1;
    let forged = body(77, "forged");
    let hash = chain_hash(&head.hash, seq, &forged.canonical_json());
    db.exec_sql(&format!(
        "INSERT INTO audit_log (seq, time_us, kind, tenant, agent, session, channel, action, verdict, rule_ids, reason, policy_version, zone, approval_id, break_glass_id, result, decision_seq, prev_hash, hash) \
         VALUES ({seq}, {}, 'evaluate', 'default', '{}', 'forged', 'exec', '{}', 'allow', '[\"rule-1\"]', 'test', 'v', 'safe', '', '', '', 0, '{}', '{hash}')",
        forged.time_us, forged.agent, forged.action, head.hash
    ))
    .await;
    seq
}

/// A record appended at the tail with a correct link and hash, but not through the
/// chain head, is flagged.
async fn detects_record_appended_behind_the_heads_back(kind: Backend) {
    let (db, store) = seeded(kind, 5).await;
    let seq = forge_after_head(&db, &store).await;
    assert_eq!(seq, 6);
    assert_broken_at(&store, 6, "beyond the chain head").await;
    db.drop_pg().await;
}
both_backends!(
    detects_record_appended_behind_the_heads_back,
    super::detects_record_appended_behind_the_heads_back
);

/// Verification running while records are appended reports an intact chain.
async fn verify_during_appends_is_not_a_false_alarm(kind: Backend) {
    let (db, store) = seeded(kind, 2000).await;
    let writer = store.clone();
    let appender = tokio::spawn(async move {
        for i in 0..40 {
            writer
                .append_batch(&records(i * 10..i * 10 + 10, "live"))
                .await
                .unwrap();
        }
    });
    for _ in 0..5 {
        let v = audit::verify(&store).await.unwrap();
        assert_eq!(v.failure, None);
    }
    appender.await.unwrap();
    assert_eq!(audit::verify(&store).await.unwrap().records, 2400);
    db.drop_pg().await;
}
both_backends!(
    verify_during_appends_is_not_a_false_alarm,
    super::verify_during_appends_is_not_a_false_alarm
);

/// Two stores on one database (two pools, as two processes would have) append in
/// turns: each batch chains after the head as it is, not where the same store last
/// left it.
async fn stores_taking_turns_keep_one_chain(kind: Backend) {
    let db = TestDb::of(kind).await;
    let a = store(&db).await;
    let b = store(&db).await;
    let first = a.append_batch(&records(0..3, "turns")).await.unwrap();
    let second = b.append_batch(&records(3..5, "turns")).await.unwrap();
    let third = a.append_batch(&records(5..8, "turns")).await.unwrap();
    let fourth = a.append_batch(&records(8..9, "turns")).await.unwrap();
    let seqs: Vec<u64> = [first, second, third, fourth]
        .iter()
        .flatten()
        .map(|c| c.seq)
        .collect();
    assert_eq!(seqs, (1..=9).collect::<Vec<_>>());
    assert_eq!(a.audit_head().await.unwrap().seq, 9);
    let v = audit::verify(&b).await.unwrap();
    assert_eq!((v.records, v.failure), (9, None));
    db.drop_pg().await;
}
both_backends!(
    stores_taking_turns_keep_one_chain,
    super::stores_taking_turns_keep_one_chain
);

/// An append that fails inside its transaction (here: the next seq is already taken)
/// stores none of its records, leaves the head where it was, and leaves no transaction
/// open behind it: once the obstacle is gone, later appends (more of them than the pool
/// has connections) chain on as if the failure never happened.
async fn failed_append_stores_nothing_and_holds_nothing(kind: Backend) {
    let (db, store) = seeded(kind, 5).await;
    let forged = forge_after_head(&db, &store).await;
    let err = store
        .append_batch(&records(5..40, "s1"))
        .await
        .expect_err("seq 6 is taken: the append must fail");
    assert!(!err.to_string().is_empty());
    assert_eq!(store.audit_head().await.unwrap().seq, 5);
    let stored = store
        .audit_page(&AuditFilter::default(), 0, 1000)
        .await
        .unwrap();
    assert_eq!(
        stored.len(),
        6,
        "5 records and the forged one, nothing of the failed batch"
    );

    // The cleanup goes through another connection: a transaction left open by the
    // failed append would hold the write lock (SQLite) and make this wait and fail.
    db.exec_sql(&format!("DELETE FROM audit_log WHERE seq = {forged}"))
        .await;
    for round in 0..12 {
        let at = 5 + round * 2;
        let committed = store
            .append_batch(&records(at..at + 2, "s1"))
            .await
            .unwrap_or_else(|e| panic!("append {round} after the failure: {e}"));
        let seqs: Vec<u64> = committed.iter().map(|c| c.seq).collect();
        assert_eq!(seqs, vec![at as u64 + 1, at as u64 + 2]);
    }
    let v = audit::verify(&store).await.unwrap();
    assert_eq!((v.records, v.failure), (29, None));
    db.drop_pg().await;
}
both_backends!(
    failed_append_stores_nothing_and_holds_nothing,
    super::failed_append_stores_nothing_and_holds_nothing
);
