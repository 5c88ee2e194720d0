//! Approval and break-glass rows.
//!
//! Every state change is one conditional `UPDATE` whose `WHERE` restates what must still
//! be true (pending, not expired, uses left, not revoked). Two replicas racing to use a
//! single-use grant therefore cannot both succeed: on PostgreSQL the second `UPDATE`
//! waits for the first's row lock and then re-checks its `WHERE` against the committed
//! row; on SQLite writes are serialized. The queries are written once, in PostgreSQL's
//! `$N` style, and rewritten to SQLite's `?N` when run there.

use sqlx::Row;

use super::{Backend, Store, StoreError, on_backend, on_backend_write, sqlite_sql};

/// How an approval stands, as stored and as derived from the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Denied,
    Expired,
    Used,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Denied => "denied",
            ApprovalStatus::Expired => "expired",
            ApprovalStatus::Used => "used",
        }
    }

    pub fn parse(s: &str) -> Option<ApprovalStatus> {
        [
            ApprovalStatus::Pending,
            ApprovalStatus::Approved,
            ApprovalStatus::Denied,
            ApprovalStatus::Expired,
            ApprovalStatus::Used,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// A stored approval.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalRow {
    pub id: String,
    pub digest: String,
    /// As stored: pending, approved, denied or used. See [`ApprovalRow::status_at`].
    pub stored_status: String,
    pub tenant: String,
    pub agent: String,
    pub session: String,
    pub channel: String,
    pub action: String,
    pub rule_ids: Vec<String>,
    pub reason: String,
    pub policy_version: String,
    pub created_us: i64,
    pub expires_us: i64,
    pub decided_by: String,
    pub decided_us: i64,
    pub decision_note: String,
    /// `None` for a time-limited grant.
    pub uses_left: Option<i64>,
    pub grant_expires_us: i64,
    pub uses: i64,
}

impl ApprovalRow {
    /// The status at time `now`: a pending approval past its expiry, or a grant past its
    /// end, is expired.
    pub fn status_at(&self, now: i64) -> ApprovalStatus {
        match self.stored_status.as_str() {
            "pending" if now < self.expires_us => ApprovalStatus::Pending,
            "pending" => ApprovalStatus::Expired,
            "approved" if now < self.grant_expires_us => ApprovalStatus::Approved,
            "approved" => ApprovalStatus::Expired,
            "denied" => ApprovalStatus::Denied,
            _ => ApprovalStatus::Used,
        }
    }
}

/// A new approval request.
#[derive(Debug, Clone)]
pub struct NewApproval<'a> {
    pub id: &'a str,
    pub digest: &'a str,
    pub tenant: &'a str,
    pub agent: &'a str,
    pub session: &'a str,
    pub channel: &'a str,
    pub action: &'a str,
    pub rule_ids: &'a [String],
    pub reason: &'a str,
    pub policy_version: &'a str,
    pub created_us: i64,
    pub expires_us: i64,
}

/// An approver's decision.
#[derive(Debug, Clone)]
pub struct ApprovalDecision<'a> {
    pub approve: bool,
    pub by: &'a str,
    pub note: &'a str,
    pub now: i64,
    /// For approvals: `Some(1)` for a single-use grant, `None` for time-limited.
    pub uses_left: Option<i64>,
    pub grant_expires_us: i64,
}

/// Filters for listing approvals; empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct ApprovalFilter {
    pub status: Option<ApprovalStatus>,
    pub tenant: String,
    pub agent: String,
    pub session: String,
}

/// A stored break-glass grant.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakGlassRow {
    pub id: String,
    pub tenant: String,
    pub agent: String,
    pub session: String,
    pub reason: String,
    pub issued_by: String,
    pub created_us: i64,
    pub expires_us: i64,
    pub revoked_us: i64,
    pub revoked_by: String,
    pub uses: i64,
}

impl BreakGlassRow {
    pub fn active_at(&self, now: i64) -> bool {
        self.revoked_us == 0 && now < self.expires_us
    }
}

const APPROVAL_COLUMNS: &str = "id, digest, status, tenant, agent, session, channel, action, \
     rule_ids, reason, policy_version, created_us, expires_us, decided_by, decided_us, \
     decision_note, uses_left, grant_expires_us, uses";

const GRANT_COLUMNS: &str = "id, tenant, agent, session, reason, issued_by, created_us, \
     expires_us, revoked_us, revoked_by, uses";

fn approval_row<'r, R>(row: &'r R) -> Result<ApprovalRow, StoreError>
where
    R: Row,
    &'static str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let id: String = row.try_get("id")?;
    let rule_ids: String = row.try_get("rule_ids")?;
    let rule_ids = serde_json::from_str(&rule_ids)
        .map_err(|e| StoreError::Corrupt(format!("approval {id}: rule_ids: {e}")))?;
    Ok(ApprovalRow {
        digest: row.try_get("digest")?,
        stored_status: row.try_get("status")?,
        tenant: row.try_get("tenant")?,
        agent: row.try_get("agent")?,
        session: row.try_get("session")?,
        channel: row.try_get("channel")?,
        action: row.try_get("action")?,
        rule_ids,
        reason: row.try_get("reason")?,
        policy_version: row.try_get("policy_version")?,
        created_us: row.try_get("created_us")?,
        expires_us: row.try_get("expires_us")?,
        decided_by: row.try_get("decided_by")?,
        decided_us: row.try_get("decided_us")?,
        decision_note: row.try_get("decision_note")?,
        uses_left: row.try_get("uses_left")?,
        grant_expires_us: row.try_get("grant_expires_us")?,
        uses: row.try_get("uses")?,
        id,
    })
}

fn grant_row<'r, R>(row: &'r R) -> Result<BreakGlassRow, StoreError>
where
    R: Row,
    &'static str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(BreakGlassRow {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant")?,
        agent: row.try_get("agent")?,
        session: row.try_get("session")?,
        reason: row.try_get("reason")?,
        issued_by: row.try_get("issued_by")?,
        created_us: row.try_get("created_us")?,
        expires_us: row.try_get("expires_us")?,
        revoked_us: row.try_get("revoked_us")?,
        revoked_by: row.try_get("revoked_by")?,
        uses: row.try_get("uses")?,
    })
}

impl Store {
    /// Stores a new pending approval.
    pub async fn approval_create(&self, a: &NewApproval<'_>) -> Result<(), StoreError> {
        let sql = "INSERT INTO approvals (id, digest, status, tenant, agent, session, channel, \
                   action, rule_ids, reason, policy_version, created_us, expires_us) \
                   VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
        let rule_ids = super::rule_ids_json(a.rule_ids);
        on_backend_write!(self, sql, |pool, q| {
            sqlx::query(q)
                .bind(a.id)
                .bind(a.digest)
                .bind(a.tenant)
                .bind(a.agent)
                .bind(a.session)
                .bind(a.channel)
                .bind(a.action)
                .bind(rule_ids.as_str())
                .bind(a.reason)
                .bind(a.policy_version)
                .bind(a.created_us)
                .bind(a.expires_us)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Approvals for `digest` that still matter at `now` (pending, usable grants, and
    /// refusals whose request has not expired), newest first.
    pub async fn approvals_for_digest(
        &self,
        digest: &str,
        now: i64,
    ) -> Result<Vec<ApprovalRow>, StoreError> {
        let sql = format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE digest = $1 AND ( \
               (status IN ('pending', 'denied') AND expires_us > $2) \
               OR (status = 'approved' AND grant_expires_us > $2)) \
             ORDER BY created_us DESC LIMIT 20"
        );
        on_backend!(self, sql.as_str(), |pool, q| {
            sqlx::query(q)
                .bind(digest)
                .bind(now)
                .fetch_all(pool)
                .await?
                .iter()
                .map(approval_row)
                .collect()
        })
    }

    /// Uses a granted approval once. `None` when it is no longer usable (used up by
    /// another request, expired, or never granted).
    pub async fn approval_use(&self, id: &str, now: i64) -> Result<Option<String>, StoreError> {
        let sql = "UPDATE approvals SET uses = uses + 1, uses_left = uses_left - 1, \
                   status = CASE WHEN uses_left = 1 THEN 'used' ELSE status END \
                   WHERE id = $1 AND status = 'approved' AND grant_expires_us > $2 \
                   AND (uses_left IS NULL OR uses_left > 0) RETURNING decided_by";
        on_backend_write!(self, sql, |pool, q| {
            let row: Option<(String,)> = sqlx::query_as(q)
                .bind(id)
                .bind(now)
                .fetch_optional(pool)
                .await?;
            Ok(row.map(|(by,)| by))
        })
    }

    /// One approval.
    pub async fn approval_get(&self, id: &str) -> Result<Option<ApprovalRow>, StoreError> {
        let sql = format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = $1");
        on_backend!(self, sql.as_str(), |pool, q| {
            sqlx::query(q)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(approval_row)
                .transpose()
        })
    }

    /// Approvals matching `filter`, newest first, at most `limit`.
    pub async fn approval_list(
        &self,
        filter: &ApprovalFilter,
        now: i64,
        limit: u32,
    ) -> Result<Vec<ApprovalRow>, StoreError> {
        // The derived statuses are conditions on the stored status and the clock.
        let status = match filter.status {
            None => "TRUE",
            Some(ApprovalStatus::Pending) => "(status = 'pending' AND expires_us > $5)",
            Some(ApprovalStatus::Approved) => "(status = 'approved' AND grant_expires_us > $5)",
            Some(ApprovalStatus::Denied) => "status = 'denied'",
            Some(ApprovalStatus::Used) => "status = 'used'",
            Some(ApprovalStatus::Expired) => {
                "((status = 'pending' AND expires_us <= $5) \
                  OR (status = 'approved' AND grant_expires_us <= $5))"
            }
        };
        let sql = format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals \
             WHERE ($1 = '' OR tenant = $1) AND ($2 = '' OR agent = $2) \
             AND ($3 = '' OR session = $3) AND {status} AND $5 = $5 \
             ORDER BY created_us DESC LIMIT $4"
        );
        on_backend!(self, sql.as_str(), |pool, q| {
            sqlx::query(q)
                .bind(filter.tenant.as_str())
                .bind(filter.agent.as_str())
                .bind(filter.session.as_str())
                .bind(i64::from(limit))
                .bind(now)
                .fetch_all(pool)
                .await?
                .iter()
                .map(approval_row)
                .collect()
        })
    }

    /// Records an approver's decision on a pending, unexpired approval. `false` when it
    /// was no longer pending (decided by someone else meanwhile, or expired).
    pub async fn approval_decide(
        &self,
        id: &str,
        d: &ApprovalDecision<'_>,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE approvals SET status = $2, decided_by = $3, decision_note = $4, \
                   decided_us = $5, uses_left = $6, grant_expires_us = $7 \
                   WHERE id = $1 AND status = 'pending' AND expires_us > $5";
        let status = if d.approve { "approved" } else { "denied" };
        on_backend_write!(self, sql, |pool, q| {
            let done = sqlx::query(q)
                .bind(id)
                .bind(status)
                .bind(d.by)
                .bind(d.note)
                .bind(d.now)
                .bind(d.uses_left)
                .bind(d.grant_expires_us)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Stores a break-glass grant.
    pub async fn break_glass_create(&self, g: &BreakGlassRow) -> Result<(), StoreError> {
        let sql = "INSERT INTO break_glass (id, tenant, agent, session, reason, issued_by, \
                   created_us, expires_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        on_backend_write!(self, sql, |pool, q| {
            sqlx::query(q)
                .bind(g.id.as_str())
                .bind(g.tenant.as_str())
                .bind(g.agent.as_str())
                .bind(g.session.as_str())
                .bind(g.reason.as_str())
                .bind(g.issued_by.as_str())
                .bind(g.created_us)
                .bind(g.expires_us)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Uses the active grant covering (tenant, agent, session) at `now`, if any,
    /// counting the use. The grant ending last is used.
    ///
    /// Every refusal a grant could lift asks, and almost always none covers it: so a
    /// read (no write lock, no turn to wait for) looks first, and only a grant it finds
    /// is used by the `UPDATE`, which checks again. A grant issued between the two is
    /// one issued after this decision.
    pub async fn break_glass_use(
        &self,
        tenant: &str,
        agent: &str,
        session: &str,
        now: i64,
    ) -> Result<Option<BreakGlassRow>, StoreError> {
        let any = "SELECT COUNT(*) FROM break_glass WHERE tenant = $1 \
                   AND (agent = '' OR agent = $2) AND (session = '' OR session = $3) \
                   AND revoked_us = 0 AND expires_us > $4";
        let covering: i64 = on_backend!(self, any, |pool, q| {
            sqlx::query_scalar(q)
                .bind(tenant)
                .bind(agent)
                .bind(session)
                .bind(now)
                .fetch_one(pool)
                .await?
        });
        if covering == 0 {
            return Ok(None);
        }
        let sql = format!(
            "UPDATE break_glass SET uses = uses + 1 WHERE id = ( \
               SELECT id FROM break_glass WHERE tenant = $1 \
               AND (agent = '' OR agent = $2) AND (session = '' OR session = $3) \
               AND revoked_us = 0 AND expires_us > $4 \
               ORDER BY expires_us DESC LIMIT 1) \
             AND revoked_us = 0 AND expires_us > $4 RETURNING {GRANT_COLUMNS}"
        );
        on_backend_write!(self, sql.as_str(), |pool, q| {
            sqlx::query(q)
                .bind(tenant)
                .bind(agent)
                .bind(session)
                .bind(now)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(grant_row)
                .transpose()
        })
    }

    /// Revokes a grant; `None` when it does not exist. Revoking twice keeps the first
    /// revocation.
    pub async fn break_glass_revoke(
        &self,
        id: &str,
        by: &str,
        now: i64,
    ) -> Result<Option<BreakGlassRow>, StoreError> {
        let sql = format!(
            "UPDATE break_glass SET revoked_us = CASE WHEN revoked_us = 0 THEN $2 ELSE revoked_us END, \
             revoked_by = CASE WHEN revoked_us = 0 THEN $3 ELSE revoked_by END \
             WHERE id = $1 RETURNING {GRANT_COLUMNS}"
        );
        on_backend_write!(self, sql.as_str(), |pool, q| {
            sqlx::query(q)
                .bind(id)
                .bind(now)
                .bind(by)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(grant_row)
                .transpose()
        })
    }

    /// Grants, newest first; only active ones unless `all`.
    pub async fn break_glass_list(
        &self,
        all: bool,
        now: i64,
    ) -> Result<Vec<BreakGlassRow>, StoreError> {
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM break_glass \
             WHERE $1 OR (revoked_us = 0 AND expires_us > $2) \
             ORDER BY created_us DESC LIMIT 1000"
        );
        on_backend!(self, sql.as_str(), |pool, q| {
            sqlx::query(q)
                .bind(all)
                .bind(now)
                .fetch_all(pool)
                .await?
                .iter()
                .map(grant_row)
                .collect()
        })
    }
}
