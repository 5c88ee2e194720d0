//! SQLite backend: one file, WAL journal, `synchronous=FULL` so a commit survives power
//! loss. Each batch runs in a `BEGIN IMMEDIATE` transaction, which takes the database's
//! write lock up front, so two processes sharing a file still build one chain.

use std::str::FromStr;
use std::sync::{Arc, LazyLock};

use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Sqlite, SqliteConnection, SqlitePool};

use super::{
    AuditFilter, CONNECT_TIMEOUT, NewRecord, StoreError, audit_columns, audit_row, chain,
    committed, head_after, rule_ids_json,
};
use crate::audit::{AuditRow, Committed};

/// Opens the file with `synchronous=FULL` (`durable`) or `NORMAL`: a NORMAL commit is
/// written to the WAL but not synced; the next FULL commit's sync covers it.
pub(super) async fn connect(url: &str, durable: bool) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(if durable {
            SqliteSynchronous::Full
        } else {
            SqliteSynchronous::Normal
        })
        .busy_timeout(CONNECT_TIMEOUT)
        .foreign_keys(true);
    SqlitePoolOptions::new()
        .max_connections(4)
        // No ping before each use: the connection is a handle on a local file, not a
        // socket that can go stale, and the ping is a round trip to SQLite's worker
        // thread (two context switches) before every transaction. A broken handle
        // fails its first statement instead, and the caller refuses as for any error.
        .test_before_acquire(false)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_with(options)
        .await
}

/// Appends `records` in one `BEGIN IMMEDIATE` transaction, in two round trips to
/// SQLite's worker thread for up to [`CHUNK`] records (one more per further `CHUNK`):
/// `BEGIN IMMEDIATE` with the head read, then the rows, the new head and the `COMMIT`
/// in one multi-statement query. Each round trip is two thread hand-offs, which cost
/// more than the statements themselves; run one statement at a time, the same append
/// took five.
///
/// The transaction is thus opened and committed by SQL rather than by sqlx, so a
/// failure (or a cancelled call) can leave it open on the connection: such a connection
/// is closed, which rolls the transaction back, and never handed back to the pool.
pub(super) async fn append_batch(
    pool: &SqlitePool,
    records: &[NewRecord],
) -> Result<Vec<Committed>, StoreError> {
    // Nothing to append would open a transaction that no statement commits.
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let mut conn = ClosedUnlessCommitted::acquire(pool).await?;
    let committed = append_on(conn.connection()?, records).await?;
    conn.committed();
    Ok(committed)
}

async fn append_on(
    conn: &mut SqliteConnection,
    records: &[NewRecord],
) -> Result<Vec<Committed>, StoreError> {
    let (seq, hash): (i64, String) =
        sqlx::query_as("BEGIN IMMEDIATE; SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&mut *conn)
            .await?;
    let head = Committed {
        seq: seq as u64,
        hash,
    };
    let links = chain(&head, records);
    let (last_seq, last_hash) = head_after(&head, &links);
    // One multi-row statement per CHUNK records; the last one also moves the head and
    // commits. A batch of n records costs 1 + ceil(n / CHUNK) round trips.
    let rows: Vec<_> = records.iter().zip(&links).collect();
    let mut chunks = rows.chunks(CHUNK).peekable();
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let sql = if last {
            &FINISHING_INSERTS[chunk.len() - 1]
        } else {
            &MULTI_ROW_INSERTS[chunk.len() - 1]
        };
        let mut query = sqlx::query(AssertSqlSafe(sql.clone()));
        for (r, link) in chunk {
            query = bind_row(query, r, link);
        }
        if last {
            query = query.bind(last_seq as i64).bind(&last_hash);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(committed(links))
}

/// A pooled connection that may hold a transaction opened by SQL: dropped before
/// [`ClosedUnlessCommitted::committed`], it is closed (SQLite rolls back) instead of
/// going back to the pool.
pub(super) struct ClosedUnlessCommitted(Option<sqlx::pool::PoolConnection<Sqlite>>);

impl ClosedUnlessCommitted {
    pub(super) async fn acquire(pool: &SqlitePool) -> Result<ClosedUnlessCommitted, StoreError> {
        Ok(ClosedUnlessCommitted(Some(pool.acquire().await?)))
    }

    pub(super) fn connection(&mut self) -> Result<&mut SqliteConnection, StoreError> {
        self.0
            .as_deref_mut()
            .ok_or_else(|| StoreError::Failed("the SQLite connection is gone".into()))
    }

    /// The transaction committed: the connection may go back to the pool.
    pub(super) fn committed(mut self) {
        self.0 = None;
    }
}

impl Drop for ClosedUnlessCommitted {
    fn drop(&mut self) {
        if let Some(conn) = self.0.as_mut() {
            conn.close_on_drop();
        }
    }
}

/// Rows per multi-row INSERT: 32 x 19 = 608 parameters, well under SQLite's limit.
pub(super) const CHUNK: usize = 32;

/// Moves the chain head (two parameters: seq, hash).
pub(super) const MOVE_HEAD: &str = "UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1";

/// `INSERT INTO audit_log … VALUES` with `rows` (1 ..= [`CHUNK`]) rows; bind each with
/// [`bind_row`].
pub(super) fn audit_insert_sql(rows: usize) -> Arc<str> {
    MULTI_ROW_INSERTS[rows.clamp(1, CHUNK) - 1].clone()
}

/// `INSERT INTO audit_log … VALUES` with 1 ..= CHUNK rows, at index rows - 1.
static MULTI_ROW_INSERTS: LazyLock<Vec<Arc<str>>> = LazyLock::new(|| inserts(""));

/// The same, each followed by the head's update (two more parameters: seq, hash) and the
/// `COMMIT`: a batch's last statement.
static FINISHING_INSERTS: LazyLock<Vec<Arc<str>>> =
    LazyLock::new(|| inserts(&format!("; {MOVE_HEAD}; COMMIT")));

fn inserts(then: &str) -> Vec<Arc<str>> {
    let row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    (1..=CHUNK)
        .map(|n| {
            format!(
                "INSERT INTO audit_log ({}) VALUES {}{then}",
                audit_columns!(),
                vec![row; n].join(", ")
            )
            .into()
        })
        .collect()
}

pub(super) type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments>;

/// Binds one record's 19 columns, in [`audit_columns!`] order.
pub(super) fn bind_row<'q>(
    query: SqliteQuery<'q>,
    r: &'q NewRecord,
    (seq, prev, hash): &'q (u64, String, String),
) -> SqliteQuery<'q> {
    let b = &r.body;
    query
        .bind(*seq as i64)
        .bind(b.time_us)
        .bind(&b.kind)
        .bind(&b.tenant)
        .bind(&b.agent)
        .bind(&b.session)
        .bind(&b.channel)
        .bind(&b.action)
        .bind(&b.verdict)
        .bind(rule_ids_json(&b.rule_ids))
        .bind(&b.reason)
        .bind(&b.policy_version)
        .bind(&b.zone)
        .bind(&b.approval_id)
        .bind(&b.break_glass_id)
        .bind(&b.result)
        .bind(b.decision_seq as i64)
        .bind(prev)
        .bind(hash)
}

pub(super) async fn audit_page(
    pool: &SqlitePool,
    filter: &AuditFilter,
    after_seq: u64,
    limit: u32,
) -> Result<Vec<AuditRow>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        audit_columns!(),
        " FROM audit_log WHERE seq > ?1 \
           AND (?2 = '' OR tenant = ?2) AND (?3 = '' OR agent = ?3) AND (?4 = '' OR session = ?4) \
         ORDER BY seq LIMIT ?5"
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
