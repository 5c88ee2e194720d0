//! PostgreSQL backend. Replicas share one chain: every batch locks the single
//! `audit_head` row `FOR UPDATE`, so batches from different processes append one after
//! another, and inserts the whole batch with one `UNNEST` statement.

use std::str::FromStr;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::{
    AuditFilter, CONNECT_TIMEOUT, NewRecord, StoreError, audit_columns, audit_row, chain,
    rule_ids_json,
};
use crate::audit::{AuditRow, Committed};

pub(super) async fn connect(url: &str) -> Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?.application_name("wardend");
    PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_with(options)
        .await
}

pub(super) async fn append_batch(
    pool: &PgPool,
    records: &[NewRecord],
) -> Result<Vec<Committed>, StoreError> {
    let mut tx = pool.begin().await?;
    let (seq, hash): (i64, String) =
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE")
            .fetch_one(&mut *tx)
            .await?;
    let head = Committed {
        seq: seq as u64,
        hash,
    };
    let links = chain(&head, records);

    let n = records.len();
    let mut seqs = Vec::with_capacity(n);
    let mut times = Vec::with_capacity(n);
    let mut decision_seqs = Vec::with_capacity(n);
    let mut text: [Vec<&str>; 13] = Default::default();
    let rule_ids: Vec<String> = records.iter().map(|r| rule_ids_json(&r.body.rule_ids)).collect();
    for ((r, (seq, prev, hash)), rules) in records.iter().zip(&links).zip(&rule_ids) {
        let b = &r.body;
        seqs.push(*seq as i64);
        times.push(b.time_us);
        decision_seqs.push(b.decision_seq as i64);
        for (column, value) in text.iter_mut().zip([
            b.kind.as_str(),
            &b.tenant,
            &b.agent,
            &b.session,
            &b.channel,
            &b.action,
            &b.verdict,
            rules,
            &b.reason,
            &b.policy_version,
            &b.zone,
            &b.approval_id,
            &b.break_glass_id,
        ]) {
            column.push(value);
        }
        // `result`, `prev_hash` and `hash` follow separately (owned strings).
        let _ = (prev, hash);
    }
    let results: Vec<&str> = records.iter().map(|r| r.body.result.as_str()).collect();
    let prevs: Vec<&str> = links.iter().map(|(_, p, _)| p.as_str()).collect();
    let hashes: Vec<&str> = links.iter().map(|(_, _, h)| h.as_str()).collect();
    let [kind, tenant, agent, session, channel, action, verdict, rules, reason, version, zone, approval, glass] =
        text;

    sqlx::query(concat!(
        "INSERT INTO audit_log (",
        audit_columns!(),
        ") SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], \
         $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], \
         $13::text[], $14::text[], $15::text[], $16::text[], $17::bigint[], $18::text[], $19::text[])"
    ))
    .bind(&seqs)
    .bind(&times)
    .bind(&kind)
    .bind(&tenant)
    .bind(&agent)
    .bind(&session)
    .bind(&channel)
    .bind(&action)
    .bind(&verdict)
    .bind(&rules)
    .bind(&reason)
    .bind(&version)
    .bind(&zone)
    .bind(&approval)
    .bind(&glass)
    .bind(&results)
    .bind(&decision_seqs)
    .bind(&prevs)
    .bind(&hashes)
    .execute(&mut *tx)
    .await?;

    let (last_seq, _, last_hash) = links.last().cloned().unwrap_or_default();
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(last_seq as i64)
        .bind(&last_hash)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(links
        .into_iter()
        .map(|(seq, _, hash)| Committed { seq, hash })
        .collect())
}

pub(super) async fn audit_page(
    pool: &PgPool,
    filter: &AuditFilter,
    after_seq: u64,
    limit: u32,
) -> Result<Vec<AuditRow>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        audit_columns!(),
        " FROM audit_log WHERE seq > $1 \
           AND ($2 = '' OR tenant = $2) AND ($3 = '' OR agent = $3) AND ($4 = '' OR session = $4) \
         ORDER BY seq LIMIT $5"
    ))
    .bind(after_seq as i64)
    .bind(&filter.tenant)
    .bind(&filter.agent)
    .bind(&filter.session)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(audit_row).collect()
}
