//! Budget counters and usage history.
//!
//! Admission is one transaction over every budget an action counts against, each a
//! conditional upsert: `INSERT … ON CONFLICT DO UPDATE SET used = used + n … WHERE
//! used + reserved + n <= limit`. On PostgreSQL the upsert takes the counter row's lock
//! and re-checks the `WHERE` against the committed row, so concurrent admissions from
//! any number of replicas add up exactly and none passes a full budget; SQLite's
//! database write lock (`BEGIN IMMEDIATE`) serializes them. Rows are visited in
//! (budget, key) order, so two transactions never wait on each other in a cycle. If any
//! hard budget refuses, the transaction rolls back: nothing is charged.
//!
//! Rate-limit takes (`store/rate_limits.rs`) run first in the same transaction, in
//! (limit, key) order, so an action refused by a budget takes no token and one refused
//! by a rate limit is charged nothing.

use super::rate_limits::{BucketRow, PEEK_PG, PEEK_SQLITE, TAKE_PG, TAKE_SQLITE, Take, take_in};
use super::{Backend, Store, StoreError, sqlite_sql};

/// One budget's part of an admission or a settlement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub budget: String,
    pub scope_key: String,
    pub window_start: i64,
    /// In stored units; 0 for "unlimited" is not a thing: a limit of 0 refuses all.
    pub limit: i64,
    /// Refuse rather than exceed (hard budgets, at admission).
    pub hard: bool,
    /// Added to `used` (tool calls at admission; actual usage at settlement).
    pub used: i64,
    /// Added to `reserved` at admission (an estimate); released at settlement.
    pub reserved: i64,
}

/// A hard budget that refused an admission, with its counter as it stood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub budget: String,
    pub used: i64,
    pub reserved: i64,
    pub limit: i64,
}

/// What refused an admission; nothing was charged or taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// A rate limit's bucket had no token left: the take, and the bucket as it stood.
    RateLimited { take: Take, bucket: BucketRow },
    /// A hard budget would have gone past its limit.
    Budget(Refusal),
}

/// What an admission changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Admitted {
    pub budgets: Vec<BudgetRow>,
    pub buckets: Vec<BucketRow>,
}

/// A counter after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetRow {
    pub budget: String,
    pub scope_key: String,
    pub window_start: i64,
    pub used: i64,
    pub reserved: i64,
}

/// One usage history row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageRow {
    pub time_us: i64,
    pub tenant: String,
    pub agent: String,
    pub session: String,
    pub channel: String,
    pub tool: String,
    pub model: String,
    pub decision_seq: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost_micro_usd: i64,
    pub egress_bytes: i64,
    pub rows: i64,
    pub wall_time_ms: i64,
    pub tool_calls: i64,
}

/// The upsert of an admission: adds `used` and `reserved` unless a hard budget would go
/// past its limit or is already spent; no row comes back then.
const ADMIT: &str = "INSERT INTO budget_usage (budget, scope_key, window_start, used, reserved, updated_us) \
     VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (budget, scope_key, window_start) DO UPDATE \
     SET used = budget_usage.used + $4, reserved = budget_usage.reserved + $5, updated_us = $6 \
     WHERE $8 = 0 OR (budget_usage.used + budget_usage.reserved + $4 + $5 <= $7 \
                      AND budget_usage.used + budget_usage.reserved < $7) \
     RETURNING used, reserved";

const COUNTER: &str = "SELECT used, reserved FROM budget_usage \
     WHERE budget = $1 AND scope_key = $2 AND window_start = $3";

/// The upsert of a settlement: actual usage added, the reservation released (never
/// below zero).
const SETTLE_PG: &str = "INSERT INTO budget_usage (budget, scope_key, window_start, used, reserved, updated_us) \
     VALUES ($1, $2, $3, $4, 0, $6) \
     ON CONFLICT (budget, scope_key, window_start) DO UPDATE \
     SET used = budget_usage.used + $4, reserved = GREATEST(budget_usage.reserved - $5, 0), updated_us = $6 \
     RETURNING used, reserved";
const SETTLE_SQLITE: &str = "INSERT INTO budget_usage (budget, scope_key, window_start, used, reserved, updated_us) \
     VALUES (?1, ?2, ?3, ?4, 0, ?6) \
     ON CONFLICT (budget, scope_key, window_start) DO UPDATE \
     SET used = budget_usage.used + ?4, reserved = MAX(budget_usage.reserved - ?5, 0), updated_us = ?6 \
     RETURNING used, reserved";

const INSERT_USAGE: &str = "INSERT INTO usage_history (time_us, tenant, agent, session, channel, tool, \
     model, decision_seq, tokens_in, tokens_out, cost_micro_usd, egress_bytes, rows_read, \
     wall_time_ms, tool_calls) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";

/// Binds a [`Charge`] to a settle statement ($1-$6).
macro_rules! bind_settle {
    ($query:expr, $c:expr, $now:expr) => {
        $query
            .bind($c.budget.as_str())
            .bind($c.scope_key.as_str())
            .bind($c.window_start)
            .bind($c.used)
            .bind($c.reserved)
            .bind($now)
    };
}

/// Binds a [`Charge`] to [`ADMIT`] ($1-$8).
macro_rules! bind_charge {
    ($query:expr, $c:expr, $now:expr) => {
        bind_settle!($query, $c, $now)
            .bind($c.limit)
            .bind(i64::from($c.hard))
    };
}

macro_rules! bind_usage {
    ($query:expr, $u:expr) => {
        $query
            .bind($u.time_us)
            .bind($u.tenant.as_str())
            .bind($u.agent.as_str())
            .bind($u.session.as_str())
            .bind($u.channel.as_str())
            .bind($u.tool.as_str())
            .bind($u.model.as_str())
            .bind($u.decision_seq)
            .bind($u.tokens_in)
            .bind($u.tokens_out)
            .bind($u.cost_micro_usd)
            .bind($u.egress_bytes)
            .bind($u.rows)
            .bind($u.wall_time_ms)
            .bind($u.tool_calls)
    };
}

/// Runs the admission loop on one transaction `$tx` with statements `$admit` and
/// `$counter` in the backend's dialect.
macro_rules! admit_in {
    ($tx:expr, $charges:expr, $now:expr, $admit:expr, $counter:expr) => {{
        let mut after = Vec::with_capacity($charges.len());
        let mut refused = None;
        for c in $charges {
            // A first charge larger than the limit never fits; the upsert's WHERE only
            // guards existing rows.
            let fits_alone = c.used.saturating_add(c.reserved) <= c.limit && c.limit > 0;
            let row: Option<(i64, i64)> = if c.hard && !fits_alone {
                None
            } else {
                bind_charge!(sqlx::query_as(sqlx::AssertSqlSafe($admit.clone())), c, $now)
                    .fetch_optional(&mut *$tx)
                    .await?
            };
            match row {
                Some((used, reserved)) => after.push(BudgetRow {
                    budget: c.budget.clone(),
                    scope_key: c.scope_key.clone(),
                    window_start: c.window_start,
                    used,
                    reserved,
                }),
                None => {
                    let now: Option<(i64, i64)> =
                        sqlx::query_as(sqlx::AssertSqlSafe($counter.clone()))
                            .bind(c.budget.as_str())
                            .bind(c.scope_key.as_str())
                            .bind(c.window_start)
                            .fetch_optional(&mut *$tx)
                            .await?;
                    let (used, reserved) = now.unwrap_or((0, 0));
                    refused = Some(Refusal {
                        budget: c.budget.clone(),
                        used,
                        reserved,
                        limit: c.limit,
                    });
                    break;
                }
            }
        }
        (after, refused)
    }};
}

/// What one action's admission takes and charges: built by the decision path, run by
/// [`Store::admit`] or inside a session step ([`Store::session_step_admit`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdmissionPlan {
    pub takes: Vec<Take>,
    pub charges: Vec<Charge>,
    /// The history row of an admitted tool call.
    pub usage: Option<UsageRow>,
    /// The daemon's clock (buckets on SQLite, budget windows).
    pub now: i64,
}

impl AdmissionPlan {
    /// Rows in lock order: buckets by (limit, key), then counters by (budget, key), so
    /// two admissions never wait on each other in a cycle.
    fn sorted(&self) -> AdmissionPlan {
        let mut plan = self.clone();
        plan.takes
            .sort_by(|a, b| (&a.rate_limit, &a.scope_key).cmp(&(&b.rate_limit, &b.scope_key)));
        plan.charges
            .sort_by(|a, b| (&a.budget, &a.scope_key).cmp(&(&b.budget, &b.scope_key)));
        plan
    }
}

/// An admission's statements in one backend's dialect.
struct Dialect {
    take: &'static str,
    peek: &'static str,
    /// The rate-limit statements take the daemon's clock (SQLite) rather than the
    /// database's.
    local_clock: bool,
    admit: String,
    counter: String,
    insert_usage: String,
}

impl Dialect {
    fn sqlite() -> Dialect {
        Dialect {
            take: TAKE_SQLITE,
            peek: PEEK_SQLITE,
            local_clock: true,
            admit: sqlite_sql(ADMIT),
            counter: sqlite_sql(COUNTER),
            insert_usage: sqlite_sql(INSERT_USAGE),
        }
    }

    fn postgres() -> Dialect {
        Dialect {
            take: TAKE_PG,
            peek: PEEK_PG,
            local_clock: false,
            admit: ADMIT.to_string(),
            counter: COUNTER.to_string(),
            insert_usage: INSERT_USAGE.to_string(),
        }
    }
}

/// The statements of an admission (a sorted [`AdmissionPlan`]) on the transaction or
/// savepoint `$tx`: takes, then charges, then the history row. Evaluates to
/// `Result<Admitted, Refused>`; after a refusal the caller rolls `$tx` back.
macro_rules! admission {
    ($tx:expr, $d:expr, $plan:expr) => {
        'admission: {
            let (buckets, throttled) = take_in!(
                $tx,
                &$plan.takes,
                $plan.now,
                $d.take,
                $d.peek,
                $d.local_clock
            );
            if let Some((take, bucket)) = throttled {
                break 'admission Err(Refused::RateLimited { take, bucket });
            }
            let (budgets, refused) =
                admit_in!($tx, &$plan.charges, $plan.now, $d.admit, $d.counter);
            if let Some(r) = refused {
                break 'admission Err(Refused::Budget(r));
            }
            if let Some(u) = &$plan.usage {
                bind_usage!(sqlx::query(sqlx::AssertSqlSafe($d.insert_usage.clone())), u)
                    .execute(&mut *$tx)
                    .await?;
            }
            Ok(Admitted { budgets, buckets })
        }
    };
}

/// Runs an admission's statements on a PostgreSQL transaction or savepoint; the caller
/// commits it, or rolls it back after a refusal ([`commit_if_admitted`]).
pub(super) async fn admit_on_pg(
    tx: &mut sqlx::PgConnection,
    plan: &AdmissionPlan,
) -> Result<Result<Admitted, Refused>, StoreError> {
    let plan = plan.sorted();
    let d = Dialect::postgres();
    Ok(admission!(tx, d, plan))
}

/// [`admit_on_pg`] for SQLite.
pub(super) async fn admit_on_sqlite(
    tx: &mut sqlx::SqliteConnection,
    plan: &AdmissionPlan,
) -> Result<Result<Admitted, Refused>, StoreError> {
    let plan = plan.sorted();
    let d = Dialect::sqlite();
    Ok(admission!(tx, d, plan))
}

/// Commits an admission's transaction (or releases its savepoint), or rolls it back
/// when the admission was refused, so a refusal leaves nothing behind.
pub(super) async fn commit_if_admitted<DB: sqlx::Database>(
    tx: sqlx::Transaction<'_, DB>,
    result: Result<Admitted, Refused>,
) -> Result<Result<Admitted, Refused>, StoreError> {
    if result.is_ok() {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(result)
}

macro_rules! settle_in {
    ($tx:expr, $charges:expr, $usage:expr, $now:expr, $settle:expr, $insert:expr) => {{
        let mut after = Vec::with_capacity($charges.len());
        for c in $charges {
            let (used, reserved): (i64, i64) = bind_settle!(sqlx::query_as($settle), c, $now)
                .fetch_one(&mut *$tx)
                .await?;
            after.push(BudgetRow {
                budget: c.budget.clone(),
                scope_key: c.scope_key.clone(),
                window_start: c.window_start,
                used,
                reserved,
            });
        }
        if let Some(u) = $usage {
            bind_usage!(sqlx::query(sqlx::AssertSqlSafe($insert)), u)
                .execute(&mut *$tx)
                .await?;
        }
        after
    }};
}

/// Settles sorted `charges` and writes the usage history row on `conn`, inside the
/// caller's transaction (a settlement alone, or a report's session step).
pub(super) async fn settle_on_sqlite(
    conn: &mut sqlx::SqliteConnection,
    charges: &[Charge],
    usage: Option<&UsageRow>,
    now: i64,
) -> Result<Vec<BudgetRow>, StoreError> {
    let insert = sqlite_sql(INSERT_USAGE);
    Ok(settle_in!(conn, charges, usage, now, SETTLE_SQLITE, insert))
}

/// Usage history rows per INSERT: 15 parameters a row, far under SQLite's limit.
pub(super) const USAGE_ROWS_PER_INSERT: usize = 64;

/// One `INSERT INTO usage_history` of `rows` rows, with anonymous parameters, for a
/// step batch's settlements to write theirs together (see [`bind_usage_rows`]).
pub(super) fn usage_insert_sql(rows: usize) -> String {
    let head = &INSERT_USAGE[..INSERT_USAGE.find("VALUES").unwrap_or(INSERT_USAGE.len())];
    let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; rows].join(", ");
    format!("{head}VALUES {values}")
}

/// Binds `rows` to [`usage_insert_sql`]`(rows.len())`.
pub(super) fn bind_usage_rows<'q>(
    mut query: super::sqlite::SqliteQuery<'q>,
    rows: &'q [UsageRow],
) -> super::sqlite::SqliteQuery<'q> {
    for u in rows {
        query = bind_usage!(query, u);
    }
    query
}

/// [`settle_on_sqlite`] on PostgreSQL.
pub(super) async fn settle_on_pg(
    conn: &mut sqlx::PgConnection,
    charges: &[Charge],
    usage: Option<&UsageRow>,
    now: i64,
) -> Result<Vec<BudgetRow>, StoreError> {
    let insert = INSERT_USAGE.to_string();
    Ok(settle_in!(conn, charges, usage, now, SETTLE_PG, insert))
}

/// Charges in lock order: (budget, scope key), as admissions visit them.
pub(super) fn in_lock_order(charges: &[Charge]) -> Vec<Charge> {
    let mut charges = charges.to_vec();
    charges.sort_by(|a, b| (&a.budget, &a.scope_key).cmp(&(&b.budget, &b.scope_key)));
    charges
}

impl Store {
    /// Admits an action: takes a token from every rate-limit bucket and charges every
    /// budget, all or nothing. `Err` names the first bucket or hard budget that refused;
    /// nothing was taken or charged then. The commit is deferred: the decision's audit
    /// append covers it (see `Store::begin_sqlite_deferred`).
    pub async fn admit(
        &self,
        plan: &AdmissionPlan,
    ) -> Result<Result<Admitted, Refused>, StoreError> {
        match &self.backend {
            Backend::Sqlite(pool) => {
                let (_turn, mut tx) = self.begin_sqlite_deferred(pool).await?;
                let result = admit_on_sqlite(&mut tx, plan).await?;
                commit_if_admitted(tx, result).await
            }
            Backend::Postgres(pool) => {
                let mut tx = pool.begin_with(super::PG_BEGIN_DEFERRED).await?;
                let result = admit_on_pg(&mut tx, plan).await?;
                commit_if_admitted(tx, result).await
            }
        }
    }

    /// Settles a report: actual usage added to every counter, reservations released, one
    /// history row; all in one transaction, deferred like [`Store::admit`] (the report's
    /// audit append covers it).
    pub async fn budget_settle(
        &self,
        charges: &[Charge],
        usage: Option<&UsageRow>,
        now: i64,
    ) -> Result<Vec<BudgetRow>, StoreError> {
        let charges = in_lock_order(charges);
        match &self.backend {
            Backend::Sqlite(pool) => {
                let (_turn, mut tx) = self.begin_sqlite_deferred(pool).await?;
                let after = settle_on_sqlite(&mut tx, &charges, usage, now).await?;
                tx.commit().await?;
                Ok(after)
            }
            Backend::Postgres(pool) => {
                let mut tx = pool.begin_with(super::PG_BEGIN_DEFERRED).await?;
                let after = settle_on_pg(&mut tx, &charges, usage, now).await?;
                tx.commit().await?;
                Ok(after)
            }
        }
    }

    /// A counter as stored; (0, 0) when nothing was charged yet.
    pub async fn budget_counter(
        &self,
        budget: &str,
        scope_key: &str,
        window_start: i64,
    ) -> Result<(i64, i64), StoreError> {
        super::on_backend!(self, COUNTER, |pool, q| {
            let row: Option<(i64, i64)> = sqlx::query_as(q)
                .bind(budget)
                .bind(scope_key)
                .bind(window_start)
                .fetch_optional(pool)
                .await?;
            Ok(row.unwrap_or((0, 0)))
        })
    }

    /// Raises a counter's announced alert level to `permille`; `true` when it was lower
    /// (so exactly one replica announces each threshold).
    pub async fn budget_mark_alerted(
        &self,
        row: &BudgetRow,
        permille: i64,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE budget_usage SET alerted_permille = $4 \
                   WHERE budget = $1 AND scope_key = $2 AND window_start = $3 \
                   AND alerted_permille < $4";
        super::on_backend_write!(self, sql, |pool, q| {
            let done = sqlx::query(q)
                .bind(row.budget.as_str())
                .bind(row.scope_key.as_str())
                .bind(row.window_start)
                .bind(permille)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Usage history of a tenant (and agent, and session, when not empty) since
    /// `since_us`, newest first, at most `limit` rows.
    pub async fn usage_history(
        &self,
        tenant: &str,
        agent: &str,
        session: &str,
        since_us: i64,
        limit: u32,
    ) -> Result<Vec<UsageRow>, StoreError> {
        let sql = "SELECT time_us, tenant, agent, session, channel, tool, model, decision_seq, \
                   tokens_in, tokens_out, cost_micro_usd, egress_bytes, rows_read, wall_time_ms, \
                   tool_calls FROM usage_history \
                   WHERE tenant = $1 AND ($2 = '' OR agent = $2) AND ($3 = '' OR session = $3) \
                   AND time_us >= $4 ORDER BY id DESC LIMIT $5";
        type Row = (
            i64,
            String,
            String,
            String,
            String,
            String,
            String,
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
        );
        let rows: Vec<Row> = super::on_backend!(self, sql, |pool, q| {
            sqlx::query_as(q)
                .bind(tenant)
                .bind(agent)
                .bind(session)
                .bind(since_us)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| UsageRow {
                time_us: r.0,
                tenant: r.1,
                agent: r.2,
                session: r.3,
                channel: r.4,
                tool: r.5,
                model: r.6,
                decision_seq: r.7,
                tokens_in: r.8,
                tokens_out: r.9,
                cost_micro_usd: r.10,
                egress_bytes: r.11,
                rows: r.12,
                wall_time_ms: r.13,
                tool_calls: r.14,
            })
            .collect())
    }

    /// Deletes usage history older than `before_us`; returns how many rows went.
    pub async fn usage_prune(&self, before_us: i64) -> Result<u64, StoreError> {
        self.delete_before("DELETE FROM usage_history WHERE time_us < $1", before_us)
            .await
    }
}
