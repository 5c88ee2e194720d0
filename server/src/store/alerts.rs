//! The alert outbox: alerts waiting to be posted, and what became of them.
//!
//! A row is inserted once the audit record it is about is committed, and stays until
//! the retention prunes it. Workers in any replica claim due rows with a lease: one
//! `UPDATE … RETURNING` that sets `lease_owner` and `lease_until_us` on pending rows
//! whose lease has passed. On PostgreSQL the rows are picked by a sub-select with
//! `FOR UPDATE SKIP LOCKED`, so concurrent claims from two replicas take disjoint rows
//! without waiting for each other; on SQLite the statement runs under the database's
//! write lock, which serializes claims. Every later change of a claimed row restates
//! `lease_owner = me AND status = 'pending'`, so a worker whose lease was taken over
//! cannot overwrite the new owner's outcome.

use sqlx::Row;

use super::{Backend, Store, StoreError, on_backend, on_backend_write, sqlite_sql};

/// Where an outbox row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxStatus {
    /// Not delivered yet; attempted again at `next_attempt_us`.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up: a response that retrying cannot fix, or out of attempts.
    Failed,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Delivered => "delivered",
            OutboxStatus::Failed => "failed",
        }
    }
}

/// An alert to enqueue: one event for one route.
#[derive(Debug, Clone)]
pub struct NewAlert {
    /// Unique; sent as `x-warden-delivery` so receivers can drop repeats.
    pub id: String,
    pub route_id: String,
    pub url: String,
    /// `json` or `slack`.
    pub format: String,
    /// Environment variable holding the signing key; empty when unsigned.
    pub secret_env: String,
    /// Longest one attempt may take.
    pub timeout_ms: i64,
    /// The event name (`deny`, …), sent as `x-warden-event`.
    pub event: String,
    /// The exact request body.
    pub payload: String,
    pub created_us: i64,
}

/// A stored alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: String,
    pub route_id: String,
    pub url: String,
    pub format: String,
    pub secret_env: String,
    pub timeout_ms: i64,
    pub event: String,
    pub payload: String,
    pub created_us: i64,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts started so far (a claim counts as one).
    pub attempts: i64,
    pub next_attempt_us: i64,
    pub lease_owner: String,
    pub lease_until_us: i64,
    /// When the receiver accepted it; 0 until then.
    pub delivered_us: i64,
    /// HTTP status of the last answer; 0 when there was none (network error, timeout).
    pub last_status: i64,
    pub last_error: String,
}

const OUTBOX_COLUMNS: &str = "id, route_id, url, format, secret_env, timeout_ms, event, \
     payload, created_us, status, attempts, next_attempt_us, lease_owner, lease_until_us, \
     delivered_us, last_status, last_error";

/// Values an insert binds per alert.
const INSERT_COLUMNS: usize = 9;

fn outbox_row<'r, R>(row: &'r R) -> Result<OutboxRow, StoreError>
where
    R: Row,
    &'static str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(OutboxRow {
        id: row.try_get("id")?,
        route_id: row.try_get("route_id")?,
        url: row.try_get("url")?,
        format: row.try_get("format")?,
        secret_env: row.try_get("secret_env")?,
        timeout_ms: row.try_get("timeout_ms")?,
        event: row.try_get("event")?,
        payload: row.try_get("payload")?,
        created_us: row.try_get("created_us")?,
        status: row.try_get("status")?,
        attempts: row.try_get("attempts")?,
        next_attempt_us: row.try_get("next_attempt_us")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_until_us: row.try_get("lease_until_us")?,
        delivered_us: row.try_get("delivered_us")?,
        last_status: row.try_get("last_status")?,
        last_error: row.try_get("last_error")?,
    })
}

/// What a finished attempt writes to its row.
struct Finish<'a> {
    status: OutboxStatus,
    next_attempt_us: i64,
    delivered_us: i64,
    last_status: i64,
    last_error: &'a str,
}

impl Store {
    /// Inserts alerts, all or none, in one statement. Each is due at once.
    pub async fn alert_enqueue(&self, alerts: &[NewAlert]) -> Result<(), StoreError> {
        if alerts.is_empty() {
            return Ok(());
        }
        let rows: Vec<String> = (0..alerts.len())
            .map(|i| {
                let p: Vec<String> = (1..=INSERT_COLUMNS)
                    .map(|c| format!("${}", i * INSERT_COLUMNS + c))
                    .collect();
                // Due at once: next_attempt_us is created_us (the 9th value).
                format!("({}, 'pending', ${})", p.join(", "), i * INSERT_COLUMNS + 9)
            })
            .collect();
        let sql = format!(
            "INSERT INTO alert_outbox (id, route_id, url, format, secret_env, timeout_ms, event, \
             payload, created_us, status, next_attempt_us) VALUES {}",
            rows.join(", ")
        );
        on_backend_write!(self, sql.as_str(), |pool, q| {
            let mut query = sqlx::query(q);
            for a in alerts {
                query = query
                    .bind(a.id.as_str())
                    .bind(a.route_id.as_str())
                    .bind(a.url.as_str())
                    .bind(a.format.as_str())
                    .bind(a.secret_env.as_str())
                    .bind(a.timeout_ms)
                    .bind(a.event.as_str())
                    .bind(a.payload.as_str())
                    .bind(a.created_us);
            }
            query.execute(pool).await?;
        });
        Ok(())
    }

    /// Claims up to `limit` pending alerts that are due at `now` and not leased by
    /// anyone else, leasing them to `owner` until `lease_until_us` and counting the
    /// attempt. Returned in due order.
    pub async fn alert_claim(
        &self,
        owner: &str,
        now: i64,
        lease_until_us: i64,
        limit: u32,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        // SQLite has no row locks: the UPDATE holds the database's write lock, which is
        // what serializes two claimers there.
        let lock = match self.backend {
            Backend::Sqlite(_) => "",
            Backend::Postgres(_) => "FOR UPDATE SKIP LOCKED",
        };
        let due = "status = 'pending' AND next_attempt_us <= $3 AND lease_until_us <= $3";
        let sql = format!(
            "UPDATE alert_outbox SET lease_owner = $1, lease_until_us = $2, \
             attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM alert_outbox WHERE {due} \
               ORDER BY next_attempt_us, created_us LIMIT $4 {lock}) \
             AND {due} RETURNING {OUTBOX_COLUMNS}"
        );
        let mut rows: Vec<OutboxRow> = on_backend_write!(self, sql.as_str(), |pool, q| {
            sqlx::query(q)
                .bind(owner)
                .bind(lease_until_us)
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
                .iter()
                .map(outbox_row)
                .collect::<Result<_, StoreError>>()?
        });
        rows.sort_by_key(|r| (r.next_attempt_us, r.created_us));
        Ok(rows)
    }

    /// Marks a claimed alert delivered. `false` when `owner` no longer holds it.
    pub async fn alert_delivered(
        &self,
        id: &str,
        owner: &str,
        now: i64,
        http_status: u16,
    ) -> Result<bool, StoreError> {
        let finish = Finish {
            status: OutboxStatus::Delivered,
            next_attempt_us: now,
            delivered_us: now,
            last_status: i64::from(http_status),
            last_error: "",
        };
        self.alert_finish(id, owner, &finish).await
    }

    /// Puts a claimed alert back, due again at `next_attempt_us`, noting why the
    /// attempt failed. `false` when `owner` no longer holds it.
    pub async fn alert_retry(
        &self,
        id: &str,
        owner: &str,
        next_attempt_us: i64,
        http_status: u16,
        error: &str,
    ) -> Result<bool, StoreError> {
        let finish = Finish {
            status: OutboxStatus::Pending,
            next_attempt_us,
            delivered_us: 0,
            last_status: i64::from(http_status),
            last_error: error,
        };
        self.alert_finish(id, owner, &finish).await
    }

    /// Gives a claimed alert up. `false` when `owner` no longer holds it.
    pub async fn alert_failed(
        &self,
        id: &str,
        owner: &str,
        now: i64,
        http_status: u16,
        error: &str,
    ) -> Result<bool, StoreError> {
        let finish = Finish {
            status: OutboxStatus::Failed,
            next_attempt_us: now,
            delivered_us: 0,
            last_status: i64::from(http_status),
            last_error: error,
        };
        self.alert_finish(id, owner, &finish).await
    }

    async fn alert_finish(
        &self,
        id: &str,
        owner: &str,
        f: &Finish<'_>,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE alert_outbox SET status = $3, next_attempt_us = $4, delivered_us = $5, \
                   last_status = $6, last_error = $7, lease_owner = '', lease_until_us = 0 \
                   WHERE id = $1 AND lease_owner = $2 AND status = 'pending'";
        on_backend_write!(self, sql, |pool, q| {
            let done = sqlx::query(q)
                .bind(id)
                .bind(owner)
                .bind(f.status.as_str())
                .bind(f.next_attempt_us)
                .bind(f.delivered_us)
                .bind(f.last_status)
                .bind(f.last_error)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Gives back every lease `owner` holds on pending alerts (at shutdown), so another
    /// worker, or this daemon after a restart, can send them without waiting for the
    /// leases to run out. Returns how many were released.
    pub async fn alert_release(&self, owner: &str) -> Result<u64, StoreError> {
        let sql = "UPDATE alert_outbox SET lease_owner = '', lease_until_us = 0 \
                   WHERE lease_owner = $1 AND status = 'pending'";
        on_backend_write!(self, sql, |pool, q| {
            Ok(sqlx::query(q)
                .bind(owner)
                .execute(pool)
                .await?
                .rows_affected())
        })
    }

    /// Deletes delivered and failed alerts created before `before_us`. Pending alerts
    /// are never pruned. Returns how many were deleted.
    pub async fn alert_prune(&self, before_us: i64) -> Result<u64, StoreError> {
        self.delete_before(
            "DELETE FROM alert_outbox WHERE status <> 'pending' AND created_us < $1",
            before_us,
        )
        .await
    }

    /// Alerts, oldest first, at most `limit`; only those in `status` when given.
    pub async fn alert_list(
        &self,
        status: Option<OutboxStatus>,
        limit: u32,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM alert_outbox WHERE ($1 = '' OR status = $1) \
             ORDER BY created_us, id LIMIT $2"
        );
        let status = status.map_or("", OutboxStatus::as_str);
        on_backend!(self, sql.as_str(), |pool, q| {
            sqlx::query(q)
                .bind(status)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
                .iter()
                .map(outbox_row)
                .collect()
        })
    }
}
