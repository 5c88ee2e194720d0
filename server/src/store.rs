//! Storage: one [`Store`] with a SQLite backend (embedded default, single node) and a
//! PostgreSQL backend (production, shared by replicas). Both run the same migrations
//! (one directory per dialect) and pass the same conformance suite (`tests/`).
//!
//! Shared state is made correct with transactions and row locks in the database, never
//! with in-process locks, so several processes on one database stay consistent.

mod alerts;
mod approvals;
mod budgets;
mod gate;
mod postgres;
mod rate_limits;
mod sessions;
mod sqlite;
mod steps;

pub use alerts::{NewAlert, OutboxRow, OutboxStatus};
pub use approvals::{
    ApprovalDecision, ApprovalFilter, ApprovalRow, ApprovalStatus, BreakGlassRow, NewApproval,
};
pub use budgets::{AdmissionPlan, Admitted, BudgetRow, Charge, Refusal, Refused, UsageRow};
pub use rate_limits::{BucketRow, Take};
pub use sessions::{
    AdmitRecorder, BatchFacts, ChainRan, Chained, SessionKey, SettleRecorder, Settlement, StepChain,
};

use std::time::Duration;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::audit::{AuditRow, Committed, RecordBody};

/// A record ready to be appended: its body and the body's canonical JSON.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub body: RecordBody,
    pub json: Vec<u8>,
}

/// Filters for reading the audit log; empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub tenant: String,
    pub agent: String,
    pub session: String,
}

/// Storage failures. Messages are safe to show an operator; they never include a
/// password from the database URL.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "unsupported database URL {0:?}: use sqlite://PATH (e.g. sqlite://warden.db) or postgres://USER@HOST:PORT/DB"
    )]
    UnsupportedUrl(String),
    #[error("cannot open database {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("corrupt audit row: {0}")]
    Corrupt(String),
    #[error("cannot start a writer thread: {0}")]
    Runtime(String),
    /// A failure shared by every operation of a batch (its transaction rolled back).
    #[error("database error: {0}")]
    Failed(String),
    /// A session step batch that carried audit records failed to commit them (and
    /// rolled back with everything else in it).
    #[error("the audit records could not be committed: {0}")]
    AuditCommit(String),
}

#[derive(Clone)]
enum Backend {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// Handle to the database; cheap to clone (a connection pool).
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// SQLite only: the same file with `synchronous=NORMAL`, for deferred writes (see
    /// [`Store::begin_sqlite_deferred`]).
    sqlite_deferred: Option<sqlx::SqlitePool>,
    /// SQLite only: this file's writers queue here before `BEGIN IMMEDIATE` (see
    /// `store/gate.rs`).
    sqlite_gate: Option<gate::WriteGate>,
    /// SQLite only: the thread that runs session steps in batches (`store/steps.rs`),
    /// started by the first step.
    sqlite_steps: Option<std::sync::Arc<tokio::sync::OnceCell<steps::StepWriter>>>,
    /// The URL with any password masked, for messages.
    display_url: String,
}

/// PostgreSQL `BEGIN` for deferred writes (see [`Store::begin_sqlite_deferred`]): one
/// round trip, the commit does not wait for its WAL flush.
const PG_BEGIN_DEFERRED: &str = "BEGIN; SET LOCAL synchronous_commit = off";

/// How long to wait for a connection before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Store {
    /// Opens `url` (`sqlite://…` or `postgres://…`). Fails if the database cannot be
    /// reached now, with a message naming it.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let display_url = mask_password(url);
        let connect_err = |source| StoreError::Connect {
            url: display_url.clone(),
            source,
        };
        let mut sqlite_deferred = None;
        let mut sqlite_gate = None;
        let backend = if url.starts_with("sqlite:") {
            sqlite_gate = Some(gate::WriteGate::for_url(url));
            let pool = sqlite::connect(url, true).await.map_err(connect_err)?;
            sqlite_deferred = Some(sqlite::connect(url, false).await.map_err(connect_err)?);
            Backend::Sqlite(pool)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres(postgres::connect(url).await.map_err(connect_err)?)
        } else {
            return Err(StoreError::UnsupportedUrl(display_url));
        };
        let sqlite_steps = sqlite_gate
            .is_some()
            .then(|| std::sync::Arc::new(tokio::sync::OnceCell::new()));
        Ok(Store {
            backend,
            sqlite_deferred,
            sqlite_gate,
            sqlite_steps,
            display_url,
        })
    }

    /// Begins a *deferred* write on SQLite: a transaction whose commit is not synced to
    /// disk by itself. Only for state that every caller follows with an audit append
    /// before it answers: session steps, admissions and settlements. The audit commit
    /// is durable (`synchronous=FULL`; `synchronous_commit=on` on PostgreSQL) and both
    /// logs are sequential, so its sync also covers every deferred commit before it,
    /// from any connection or process. A crash can lose only deferred writes whose
    /// decision was never answered. On PostgreSQL the same is
    /// [`PG_BEGIN_DEFERRED`].
    ///
    /// The transaction holds this file's write turn (`store/gate.rs`): keep the
    /// returned turn alive until the transaction has committed or rolled back.
    async fn begin_sqlite_deferred(
        &self,
        pool: &sqlx::SqlitePool,
    ) -> Result<
        (
            Option<gate::WriteTurn>,
            sqlx::Transaction<'static, sqlx::Sqlite>,
        ),
        sqlx::Error,
    > {
        let turn = self.sqlite_write_turn().await;
        let tx = self
            .sqlite_deferred
            .as_ref()
            .unwrap_or(pool)
            .begin_with("BEGIN IMMEDIATE")
            .await?;
        Ok((turn, tx))
    }

    /// The SQLite step writer, started on first use. Only called on SQLite.
    async fn step_writer(&self) -> Result<&steps::StepWriter, StoreError> {
        let (Some(cell), Some(pool), Some(gate)) =
            (&self.sqlite_steps, &self.sqlite_deferred, &self.sqlite_gate)
        else {
            return Err(StoreError::Failed(
                "session steps are batched only on SQLite".into(),
            ));
        };
        cell.get_or_try_init(|| async { steps::StepWriter::start(pool.clone(), gate.clone()) })
            .await
    }

    /// This process's turn to write to the SQLite file; `None` on PostgreSQL.
    async fn sqlite_write_turn(&self) -> Option<gate::WriteTurn> {
        match &self.sqlite_gate {
            Some(gate) => Some(gate.turn().await),
            None => None,
        }
    }

    /// "sqlite" or "postgres".
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// The database URL with any password masked.
    pub fn display_url(&self) -> &str {
        &self.display_url
    }

    /// Applies pending migrations. Safe to run from several processes at once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(pool) => migrator(SQLITE_MIGRATIONS).run(pool).await?,
            Backend::Postgres(pool) => migrator(POSTGRES_MIGRATIONS).run(pool).await?,
        }
        Ok(())
    }

    /// Appends records to the chain in one transaction and returns their places, in
    /// order. All or nothing.
    pub async fn append_batch(&self, records: &[NewRecord]) -> Result<Vec<Committed>, StoreError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        match &self.backend {
            Backend::Sqlite(pool) => {
                let queued = std::time::Instant::now();
                let _turn = self.sqlite_write_turn().await;
                tracing::trace!(
                    waited_us = queued.elapsed().as_micros() as u64,
                    "audit batch has the write turn"
                );
                sqlite::append_batch(pool, records).await
            }
            Backend::Postgres(pool) => postgres::append_batch(pool, records).await,
        }
    }

    /// The chain head as stored (seq 0 and the genesis hash for an empty log).
    pub async fn audit_head(&self) -> Result<Committed, StoreError> {
        let (seq, hash): (i64, String) = match &self.backend {
            Backend::Sqlite(pool) => {
                sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                    .fetch_one(pool)
                    .await?
            }
            Backend::Postgres(pool) => {
                sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                    .fetch_one(pool)
                    .await?
            }
        };
        Ok(Committed {
            seq: seq as u64,
            hash,
        })
    }

    /// Records matching `filter` with `seq > after_seq`, in seq order, at most `limit`.
    pub async fn audit_page(
        &self,
        filter: &AuditFilter,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        match &self.backend {
            Backend::Sqlite(pool) => sqlite::audit_page(pool, filter, after_seq, limit).await,
            Backend::Postgres(pool) => postgres::audit_page(pool, filter, after_seq, limit).await,
        }
    }

    /// Runs a `DELETE … WHERE … column < $1` with `before_us`; returns the rows deleted.
    pub(crate) async fn delete_before(
        &self,
        sql: &'static str,
        before_us: i64,
    ) -> Result<u64, StoreError> {
        on_backend_write!(self, sql, |pool, q| {
            Ok(sqlx::query(q)
                .bind(before_us)
                .execute(pool)
                .await?
                .rows_affected())
        })
    }

    /// Closes every connection.
    pub async fn close(&self) {
        if let Some(pool) = &self.sqlite_deferred {
            pool.close().await;
        }
        match &self.backend {
            Backend::Sqlite(pool) => pool.close().await,
            Backend::Postgres(pool) => pool.close().await,
        }
    }
}

/// Migrations compiled into the binary: (version, description, SQL).
type Embedded = &'static [(i64, &'static str, &'static str)];

const SQLITE_MIGRATIONS: Embedded = &[
    (
        1,
        "audit log",
        include_str!("../../migrations/sqlite/0001_audit.sql"),
    ),
    (
        2,
        "sessions",
        include_str!("../../migrations/sqlite/0002_sessions.sql"),
    ),
    (
        3,
        "approvals and break-glass",
        include_str!("../../migrations/sqlite/0003_approvals.sql"),
    ),
    (
        4,
        "budgets and usage history",
        include_str!("../../migrations/sqlite/0004_budgets.sql"),
    ),
    (
        5,
        "alert outbox",
        include_str!("../../migrations/sqlite/0005_alerts.sql"),
    ),
    (
        6,
        "rate limits",
        include_str!("../../migrations/sqlite/0006_rate_limits.sql"),
    ),
];
const POSTGRES_MIGRATIONS: Embedded = &[
    (
        1,
        "audit log",
        include_str!("../../migrations/postgres/0001_audit.sql"),
    ),
    (
        2,
        "sessions",
        include_str!("../../migrations/postgres/0002_sessions.sql"),
    ),
    (
        3,
        "approvals and break-glass",
        include_str!("../../migrations/postgres/0003_approvals.sql"),
    ),
    (
        4,
        "budgets and usage history",
        include_str!("../../migrations/postgres/0004_budgets.sql"),
    ),
    (
        5,
        "alert outbox",
        include_str!("../../migrations/postgres/0005_alerts.sql"),
    ),
    (
        6,
        "rate limits",
        include_str!("../../migrations/postgres/0006_rate_limits.sql"),
    ),
];

fn migrator(migrations: Embedded) -> Migrator {
    Migrator::with_migrations(
        migrations
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    (*description).into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// Runs `$body` with `$pool` bound to the backend's pool and `$q` the statement
/// `$sql` (written with `$N` placeholders) in the backend's dialect, ready for
/// `sqlx::query*`.
macro_rules! on_backend {
    ($store:expr, $sql:expr, |$pool:ident, $q:ident| $body:expr) => {
        match &$store.backend {
            Backend::Sqlite($pool) => {
                let $q = sqlx::AssertSqlSafe(sqlite_sql(&$sql));
                $body
            }
            Backend::Postgres($pool) => {
                let $q = sqlx::AssertSqlSafe(String::from($sql));
                $body
            }
        }
    };
}

/// [`on_backend`] for a statement that writes: on SQLite it first takes this process's
/// turn to write to the file (`store/gate.rs`), so it queues behind the step and audit
/// writers instead of sleeping in SQLite's busy handler while they hold the lock.
macro_rules! on_backend_write {
    ($store:expr, $sql:expr, |$pool:ident, $q:ident| $body:expr) => {{
        // `None` on PostgreSQL, whose row locks queue writers themselves.
        let _turn = $store.sqlite_write_turn().await;
        $crate::store::on_backend!($store, $sql, |$pool, $q| $body)
    }};
}

/// `$1` → `?1`: SQLite's numbered placeholders.
pub(crate) fn sqlite_sql(pg: &str) -> String {
    pg.replace('$', "?")
}

use on_backend;
use on_backend_write;

/// Expands to the audit_log column list, in the order [`audit_row`] reads it.
macro_rules! audit_columns {
    () => {
        "seq, time_us, kind, tenant, agent, session, channel, action, verdict, rule_ids, \
         reason, policy_version, zone, approval_id, break_glass_id, result, decision_seq, \
         prev_hash, hash"
    };
}
use audit_columns;

/// Reads one audit_log row (either backend).
fn audit_row<'r, R>(row: &'r R) -> Result<AuditRow, StoreError>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let seq: i64 = row.try_get("seq")?;
    let rule_ids: String = row.try_get("rule_ids")?;
    let rule_ids: Vec<String> = serde_json::from_str(&rule_ids).map_err(|e| {
        StoreError::Corrupt(format!("record {seq}: rule_ids is not a JSON list: {e}"))
    })?;
    let decision_seq: i64 = row.try_get("decision_seq")?;
    Ok(AuditRow {
        seq: seq as u64,
        body: RecordBody {
            time_us: row.try_get("time_us")?,
            kind: row.try_get("kind")?,
            tenant: row.try_get("tenant")?,
            agent: row.try_get("agent")?,
            session: row.try_get("session")?,
            channel: row.try_get("channel")?,
            action: row.try_get("action")?,
            verdict: row.try_get("verdict")?,
            rule_ids,
            reason: row.try_get("reason")?,
            policy_version: row.try_get("policy_version")?,
            zone: row.try_get("zone")?,
            approval_id: row.try_get("approval_id")?,
            break_glass_id: row.try_get("break_glass_id")?,
            result: row.try_get("result")?,
            decision_seq: decision_seq as u64,
        },
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// Replaces the password in `scheme://user:password@host/...` with `***`.
fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Chains `records` after `head`: returns (seq, prev_hash, hash) for each, in order.
fn chain(head: &Committed, records: &[NewRecord]) -> Vec<(u64, String, String)> {
    let mut prev = head.hash.clone();
    let mut seq = head.seq;
    records
        .iter()
        .map(|r| {
            seq += 1;
            let hash = crate::audit::chain_hash(&prev, seq, &r.json);
            (seq, std::mem::replace(&mut prev, hash.clone()), hash)
        })
        .collect()
}

/// The chain head after a batch: its last record.
fn head_after(head: &Committed, links: &[(u64, String, String)]) -> (u64, String) {
    links
        .last()
        .map_or((head.seq, head.hash.clone()), |(seq, _, hash)| {
            (*seq, hash.clone())
        })
}

/// The committed places of a batch, in order.
fn committed(links: Vec<(u64, String, String)>) -> Vec<Committed> {
    links
        .into_iter()
        .map(|(seq, _, hash)| Committed { seq, hash })
        .collect()
}

/// Serializes rule ids as stored (a JSON list).
fn rule_ids_json(ids: &[String]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

#[cfg(test)]
mod tests {
    use super::mask_password;

    #[test]
    fn masks_passwords_only() {
        assert_eq!(
            mask_password("postgres://app:s3cret@db:5432/warden"),
            "postgres://app:***@db:5432/warden"
        );
        assert_eq!(
            mask_password("postgres://app@db/warden"),
            "postgres://app@db/warden"
        );
        assert_eq!(mask_password("sqlite://warden.db"), "sqlite://warden.db");
    }
}
