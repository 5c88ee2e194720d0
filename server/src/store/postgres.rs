//! PostgreSQL backend. Replicas share one chain: every batch locks the single
//! `audit_head` row `FOR UPDATE`, so batches from different processes append one after
//! another, and inserts the whole batch with one `UNNEST` statement.

use std::str::FromStr;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::{
    AuditFilter, CONNECT_TIMEOUT, NewRecord, StoreError, audit_columns, audit_row, chain,
    committed, head_after, rule_ids_json,
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

    // One array per column, in audit_columns! order, for a single UNNEST insert.
    let seqs: Vec<i64> = links.iter().map(|(seq, _, _)| *seq as i64).collect();
    let column = |f: fn(&NewRecord) -> &str| -> Vec<&str> { records.iter().map(f).collect() };
    let rule_ids: Vec<String> = records
        .iter()
        .map(|r| rule_ids_json(&r.body.rule_ids))
        .collect();
    let times: Vec<i64> = records.iter().map(|r| r.body.time_us).collect();
    let decision_seqs: Vec<i64> = records.iter().map(|r| r.body.decision_seq as i64).collect();
    let prevs: Vec<&str> = links.iter().map(|(_, p, _)| p.as_str()).collect();
    let hashes: Vec<&str> = links.iter().map(|(_, _, h)| h.as_str()).collect();

    sqlx::query(concat!(
        "INSERT INTO audit_log (",
        audit_columns!(),
        ") SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], \
         $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], \
         $13::text[], $14::text[], $15::text[], $16::text[], $17::bigint[], $18::text[], $19::text[])"
    ))
    .bind(&seqs)
    .bind(&times)
    .bind(column(|r| &r.body.kind))
    .bind(column(|r| &r.body.tenant))
    .bind(column(|r| &r.body.agent))
    .bind(column(|r| &r.body.session))
    .bind(column(|r| &r.body.channel))
    .bind(column(|r| &r.body.action))
    .bind(column(|r| &r.body.verdict))
    .bind(&rule_ids)
    .bind(column(|r| &r.body.reason))
    .bind(column(|r| &r.body.policy_version))
    .bind(column(|r| &r.body.zone))
    .bind(column(|r| &r.body.approval_id))
    .bind(column(|r| &r.body.break_glass_id))
    .bind(column(|r| &r.body.result))
    .bind(&decision_seqs)
    .bind(&prevs)
    .bind(&hashes)
    .execute(&mut *tx)
    .await?;

    let (last_seq, last_hash) = head_after(&head, &links);
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(last_seq as i64)
        .bind(&last_hash)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(committed(links))
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
