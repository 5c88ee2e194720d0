//! Session rows. A step (evaluate or report) runs in one transaction that locks the
//! session's row: `SELECT … FOR UPDATE` on PostgreSQL, the database write lock
//! (`BEGIN IMMEDIATE`) on SQLite. Two replicas acting on one session therefore take
//! turns, and each sees the other's escalation. The stored zone never goes down: the
//! UPDATE keeps the larger of the stored and the new zone.

use sqlx::{PgConnection, SqliteConnection};

use super::{Backend, Store, StoreError};
use crate::session::{SessionState, Zone};

/// Identifies a session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionKey {
    pub tenant: String,
    pub agent: String,
    pub session: String,
}

const COLUMNS: &str =
    "zone, actions, reports, bytes, rows_read, tags, started_us, last_seen_us, closed_us";

type Row = (i64, i64, i64, i64, i64, String, i64, i64, Option<i64>);

fn state(row: Row) -> Result<SessionState, StoreError> {
    let (zone, actions, reports, bytes, rows, tags, started, seen, closed) = row;
    let zone = i16::try_from(zone)
        .ok()
        .and_then(Zone::from_i16)
        .ok_or_else(|| StoreError::Corrupt(format!("session zone {zone} is not a zone")))?;
    Ok(SessionState {
        zone,
        actions: actions as u64,
        reports: reports as u64,
        bytes: bytes as u64,
        rows: rows as u64,
        tags: serde_json::from_str(&tags)
            .map_err(|e| StoreError::Corrupt(format!("session tags: {e}")))?,
        started_us: started,
        last_seen_us: seen,
        closed_us: closed,
    })
}

fn tags_json(s: &SessionState) -> String {
    serde_json::to_string(&s.tags).unwrap_or_else(|_| "[]".into())
}

/// Saturating conversion for counters stored as BIGINT.
fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store {
    /// Runs one session step under the session's lock: `step` gets the stored state
    /// (`None` for a session never seen) and returns the state to store and a value.
    /// An error from `step` rolls back and stores nothing.
    pub async fn session_step<T, E>(
        &self,
        key: &SessionKey,
        step: impl FnOnce(Option<SessionState>) -> Result<(SessionState, T), E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        match &self.backend {
            Backend::Sqlite(pool) => {
                let mut tx = pool
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(StoreError::from)?;
                let current = sqlite_get(&mut tx, key).await?;
                let (next, value) = step(current.clone())?;
                sqlite_put(&mut tx, key, current.is_some(), &next).await?;
                tx.commit().await.map_err(StoreError::from)?;
                Ok(value)
            }
            Backend::Postgres(pool) => {
                let mut tx = pool.begin().await.map_err(StoreError::from)?;
                let current = pg_get(&mut tx, key, true).await?;
                let (next, value) = step(current.clone())?;
                pg_put(&mut tx, key, current.is_some(), &next).await?;
                tx.commit().await.map_err(StoreError::from)?;
                Ok(value)
            }
        }
    }

    /// The stored state of a session, if it exists.
    pub async fn session_get(&self, key: &SessionKey) -> Result<Option<SessionState>, StoreError> {
        match &self.backend {
            Backend::Sqlite(pool) => {
                let mut conn = pool.acquire().await?;
                sqlite_get(&mut conn, key).await
            }
            Backend::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                pg_get(&mut conn, key, false).await
            }
        }
    }
}

async fn sqlite_get(
    conn: &mut SqliteConnection,
    key: &SessionKey,
) -> Result<Option<SessionState>, StoreError> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM sessions WHERE tenant = ?1 AND agent = ?2 AND session = ?3"
    )))
    .bind(&key.tenant)
    .bind(&key.agent)
    .bind(&key.session)
    .fetch_optional(conn)
    .await?;
    row.map(state).transpose()
}

async fn sqlite_put(
    conn: &mut SqliteConnection,
    key: &SessionKey,
    exists: bool,
    s: &SessionState,
) -> Result<(), StoreError> {
    let sql = if exists {
        "UPDATE sessions SET zone = MAX(zone, ?4), actions = ?5, reports = ?6, bytes = ?7, \
         rows_read = ?8, tags = ?9, last_seen_us = ?11, closed_us = COALESCE(closed_us, ?12) \
         WHERE tenant = ?1 AND agent = ?2 AND session = ?3 AND ?10 = ?10"
    } else {
        "INSERT INTO sessions (tenant, agent, session, zone, actions, reports, bytes, \
         rows_read, tags, started_us, last_seen_us, closed_us) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    };
    sqlx::query(sql)
        .bind(&key.tenant)
        .bind(&key.agent)
        .bind(&key.session)
        .bind(i64::from(s.zone.as_i16()))
        .bind(big(s.actions))
        .bind(big(s.reports))
        .bind(big(s.bytes))
        .bind(big(s.rows))
        .bind(tags_json(s))
        .bind(s.started_us)
        .bind(s.last_seen_us)
        .bind(s.closed_us)
        .execute(conn)
        .await?;
    Ok(())
}

async fn pg_get(
    conn: &mut PgConnection,
    key: &SessionKey,
    lock: bool,
) -> Result<Option<SessionState>, StoreError> {
    if lock {
        // Make sure there is a row to lock, so that two replicas creating the same
        // session also take turns.
        sqlx::query(
            "INSERT INTO sessions (tenant, agent, session, started_us, last_seen_us, tags) \
             VALUES ($1, $2, $3, -1, -1, '[]') ON CONFLICT DO NOTHING",
        )
        .bind(&key.tenant)
        .bind(&key.agent)
        .bind(&key.session)
        .execute(&mut *conn)
        .await?;
    }
    let suffix = if lock { " FOR UPDATE" } else { "" };
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM sessions WHERE tenant = $1 AND agent = $2 AND session = $3{suffix}"
    )))
    .bind(&key.tenant)
    .bind(&key.agent)
    .bind(&key.session)
    .fetch_optional(conn)
    .await?;
    // A placeholder row (started_us = -1) is a session never seen.
    Ok(row.map(state).transpose()?.filter(|s| s.started_us >= 0))
}

async fn pg_put(
    conn: &mut PgConnection,
    key: &SessionKey,
    _exists: bool,
    s: &SessionState,
) -> Result<(), StoreError> {
    // The row exists (pg_get inserted the placeholder under the same lock).
    sqlx::query(
        "UPDATE sessions SET zone = GREATEST(zone, $4), actions = $5, reports = $6, \
         bytes = $7, rows_read = $8, tags = $9, started_us = $10, last_seen_us = $11, \
         closed_us = COALESCE(closed_us, $12) \
         WHERE tenant = $1 AND agent = $2 AND session = $3",
    )
    .bind(&key.tenant)
    .bind(&key.agent)
    .bind(&key.session)
    .bind(i64::from(s.zone.as_i16()))
    .bind(big(s.actions))
    .bind(big(s.reports))
    .bind(big(s.bytes))
    .bind(big(s.rows))
    .bind(tags_json(s))
    .bind(s.started_us)
    .bind(s.last_seen_us)
    .bind(s.closed_us)
    .execute(conn)
    .await?;
    Ok(())
}
