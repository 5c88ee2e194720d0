//! Session rows. A step (evaluate or report) runs in one transaction that locks the
//! session's row: `SELECT … FOR UPDATE` on PostgreSQL, the database write lock
//! (`BEGIN IMMEDIATE`, one transaction per batch of steps: `store/steps.rs`) on SQLite. Two replicas acting on one session therefore take
//! turns, and each sees the other's escalation. The stored zone never goes down: the
//! UPDATE keeps the larger of the stored and the new zone.

use std::collections::HashMap;

use sqlx::{PgConnection, SqliteConnection};

use super::budgets::{
    admit_on_pg, admit_on_sqlite, commit_if_admitted, in_lock_order, settle_on_pg, settle_on_sqlite,
};
use super::steps::{RecordFn, StepFn};
use super::{
    AdmissionPlan, Admitted, Backend, BudgetRow, Charge, Refused, Store, StoreError, UsageRow,
};
use crate::audit::{Committed, RecordBody};
use crate::session::{SessionState, Zone};

/// Identifies a session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionKey {
    pub tenant: String,
    pub agent: String,
    pub session: String,
}

/// The columns [`state`] reads.
macro_rules! session_columns {
    () => {
        "zone, actions, reports, bytes, rows_read, tags, started_us, last_seen_us, \
         closed_us, max_tokens, max_cost_micro_usd, tokens, cost_micro_usd"
    };
}
macro_rules! session_select {
    ($where:literal) => {
        concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE ",
            $where
        )
    };
}
const SELECT_SQLITE: &str = session_select!("tenant = ?1 AND agent = ?2 AND session = ?3");
const SELECT_PG: &str = session_select!("tenant = $1 AND agent = $2 AND session = $3");
const SELECT_PG_LOCKED: &str =
    session_select!("tenant = $1 AND agent = $2 AND session = $3 FOR UPDATE");

/// Reads one session row (either backend) by column name.
fn state<'r, R>(row: &'r R) -> Result<SessionState, StoreError>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let zone: i64 = row.try_get("zone")?;
    let zone = i16::try_from(zone)
        .ok()
        .and_then(Zone::from_i16)
        .ok_or_else(|| StoreError::Corrupt(format!("session zone {zone} is not a zone")))?;
    let tags: String = row.try_get("tags")?;
    let count = |column: &'static str| -> Result<u64, StoreError> {
        Ok(row.try_get::<i64, _>(column)?.max(0) as u64)
    };
    Ok(SessionState {
        zone,
        actions: count("actions")?,
        reports: count("reports")?,
        bytes: count("bytes")?,
        rows: count("rows_read")?,
        tags: serde_json::from_str(&tags)
            .map_err(|e| StoreError::Corrupt(format!("session tags: {e}")))?,
        started_us: row.try_get("started_us")?,
        last_seen_us: row.try_get("last_seen_us")?,
        closed_us: row.try_get("closed_us")?,
        max_tokens: row
            .try_get::<Option<i64>, _>("max_tokens")?
            .map(|n| n.max(0) as u64),
        max_cost_micro_usd: row.try_get("max_cost_micro_usd")?,
        tokens: count("tokens")?,
        cost_micro_usd: row.try_get("cost_micro_usd")?,
    })
}

fn tags_json(s: &SessionState) -> String {
    serde_json::to_string(&s.tags).unwrap_or_else(|_| "[]".into())
}

/// Saturating conversion for counters stored as BIGINT.
fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Binds a session's key (tenant, agent, session) to a query or query_as.
macro_rules! bind_key {
    ($query:expr, $key:expr) => {
        $query
            .bind($key.tenant.as_str())
            .bind($key.agent.as_str())
            .bind($key.session.as_str())
    };
}

/// Binds a session's stored fields in the order both UPDATE statements number them:
/// tenant, agent, session, zone, actions, reports, bytes, rows, tags, started, last seen,
/// closed, max tokens, max cost, tokens, cost.
macro_rules! bind_session {
    ($query:expr, $key:expr, $s:expr) => {
        bind_key!($query, $key)
            .bind(i64::from($s.zone.as_i16()))
            .bind(big($s.actions))
            .bind(big($s.reports))
            .bind(big($s.bytes))
            .bind(big($s.rows))
            .bind(tags_json($s))
            .bind($s.started_us)
            .bind($s.last_seen_us)
            .bind($s.closed_us)
            .bind($s.max_tokens.map(big))
            .bind($s.max_cost_micro_usd)
            .bind(big($s.tokens))
            .bind($s.cost_micro_usd)
    };
}

/// What a session step runs after it wrote the state, in the same transaction.
pub(super) enum FollowUp {
    /// Admit the action (rate limits and budgets), under a savepoint.
    Admit(AdmissionPlan),
    /// Settle a report's usage and write its history row.
    Settle(Settlement),
}

/// What the follow-up did.
pub(super) enum FollowedUp {
    Admitted(Result<Admitted, Refused>),
    Settled(Vec<BudgetRow>),
}

/// A report's usage, to settle in its session step: what `Store::budget_settle` takes.
#[derive(Debug, Clone)]
pub struct Settlement {
    pub charges: Vec<Charge>,
    pub usage: Option<UsageRow>,
    pub now: i64,
}

/// Steps of one session to run in order in one transaction ([`Store::session_steps`]).
/// Adding a step hands back a [`Chained`], which takes the step's value out once the
/// chain has run.
pub struct StepChain {
    key: SessionKey,
    steps: Vec<StepFn>,
    /// A step may hand back a recorder: on SQLite the batch then commits durably.
    records: bool,
}

/// What each step of a chain did, as [`Store::session_steps`] returns it.
pub struct ChainRan(Vec<StepRan>);

/// What one step of a chain did: its follow-up's result, and where its audit record
/// went in the chain when the step's own transaction committed it.
#[derive(Default)]
pub(super) struct StepRan {
    pub(super) followed: Option<FollowedUp>,
    pub(super) committed: Option<Committed>,
}

/// Builds an admitting step's audit record from what its admission decided (`None`:
/// it had none) and what the batch's transaction saw ([`BatchFacts`]), on the thread
/// that runs it; `None` back: the record needs more than that thread can do, and the
/// caller appends it itself.
pub type AdmitRecorder =
    Box<dyn FnOnce(Option<&Result<Admitted, Refused>>, &BatchFacts) -> Option<RecordBody> + Send>;

/// What a batch's transaction saw when it opened, for its recorders.
#[derive(Debug, Clone, Copy)]
pub struct BatchFacts {
    /// Some break-glass grant, not revoked, had not yet expired (or expired within
    /// [`BatchFacts::GRANT_MARGIN_US`] of the batch opening, so that no decision waiting
    /// in the batch could still have been covered by it). While it is `false` no grant
    /// can lift a refusal in this batch: the transaction holds the write lock, so none
    /// can be issued before it commits.
    pub break_glass_possible: bool,
}

impl BatchFacts {
    /// How far back a grant's expiry still counts (10 minutes): longer than any step
    /// waits for its batch.
    pub const GRANT_MARGIN_US: i64 = 600 * 1_000_000;
}

/// Builds a report step's audit record, as [`AdmitRecorder`] does for an action.
pub type SettleRecorder = Box<dyn FnOnce() -> Option<RecordBody> + Send>;

/// A step added to a [`StepChain`]: where its caller's value comes back.
pub struct Chained<T, E> {
    index: usize,
    kept: tokio::sync::oneshot::Receiver<Result<T, E>>,
}

impl StepChain {
    pub fn new(key: SessionKey) -> StepChain {
        StepChain {
            key,
            steps: Vec::new(),
            records: false,
        }
    }

    /// Adds a step that may admit its action, as [`Store::session_step_admit`] runs it.
    pub fn admit<T, E>(
        &mut self,
        step: impl FnOnce(Option<SessionState>) -> Result<(SessionState, T, Option<AdmissionPlan>), E>
        + Send
        + 'static,
    ) -> Chained<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        self.without_recorder(|chain| {
            chain.admit_recorded(move |stored| {
                step(stored).map(|(next, v, plan)| (next, v, plan, None))
            })
        })
    }

    /// Adds a step through `add` without marking the chain as one that may record.
    fn without_recorder<R>(&mut self, add: impl FnOnce(&mut Self) -> R) -> R {
        let records = self.records;
        let added = add(self);
        self.records = records;
        added
    }

    /// [`StepChain::admit`] whose step may also hand back its audit record's
    /// [`AdmitRecorder`]. On SQLite, when every step of the chain that ran did so and
    /// each recorder built its record, the records are appended to the audit chain in
    /// the steps' own transaction, which then commits durably: one transaction per
    /// decision instead of two. [`Chained::recorded`] tells the caller where its record
    /// went; without it (PostgreSQL, or a recorder that declined), the caller appends
    /// the record itself.
    pub fn admit_recorded<T, E>(
        &mut self,
        step: impl FnOnce(
            Option<SessionState>,
        ) -> Result<
            (
                SessionState,
                T,
                Option<AdmissionPlan>,
                Option<AdmitRecorder>,
            ),
            E,
        > + Send
        + 'static,
    ) -> Chained<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        self.records = true;
        self.push(move |stored| {
            step(stored).map(|(next, v, plan, recorder)| {
                let recorder = recorder.map(|record| -> RecordFn {
                    Box::new(move |followed, facts| match followed {
                        Some(FollowedUp::Admitted(result)) => record(Some(result), facts),
                        _ => record(None, facts),
                    })
                });
                (next, v, plan.map(FollowUp::Admit), recorder)
            })
        })
    }

    /// Adds a report's step, as [`Store::session_step_settle`] runs it.
    pub fn settle<T, E>(
        &mut self,
        step: impl FnOnce(Option<SessionState>) -> Result<(SessionState, T, Option<Settlement>), E>
        + Send
        + 'static,
    ) -> Chained<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        self.without_recorder(|chain| {
            chain.settle_recorded(move |stored| {
                step(stored).map(|(next, v, settle)| (next, v, settle, None))
            })
        })
    }

    /// [`StepChain::settle`] whose step may also hand back its record's
    /// [`SettleRecorder`], as [`StepChain::admit_recorded`].
    pub fn settle_recorded<T, E>(
        &mut self,
        step: impl FnOnce(
            Option<SessionState>,
        )
            -> Result<(SessionState, T, Option<Settlement>, Option<SettleRecorder>), E>
        + Send
        + 'static,
    ) -> Chained<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        self.records = true;
        self.push(move |stored| {
            step(stored).map(|(next, v, settle, recorder)| {
                let recorder =
                    recorder.map(|record| -> RecordFn { Box::new(move |_, _| record()) });
                (next, v, settle.map(FollowUp::Settle), recorder)
            })
        })
    }

    /// Erases `step`: the store runs it on whichever thread runs the transaction, and
    /// its value or error comes back on its own channel.
    fn push<T, E>(
        &mut self,
        step: impl FnOnce(
            Option<SessionState>,
        ) -> Result<(SessionState, T, Option<FollowUp>, Option<RecordFn>), E>
        + Send
        + 'static,
    ) -> Chained<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        let (sent, kept) = tokio::sync::oneshot::channel();
        self.steps.push(Box::new(move |stored| match step(stored) {
            Ok((next, value, follow, recorder)) => {
                let _ = sent.send(Ok(value));
                Some((next, follow, recorder))
            }
            Err(e) => {
                let _ = sent.send(Err(e));
                None
            }
        }));
        Chained {
            index: self.steps.len() - 1,
            kept,
        }
    }
}

impl<T, E: From<StoreError>> Chained<T, E> {
    /// Where the step's audit record went, when its own transaction committed it (see
    /// [`StepChain::admit_recorded`]); `None`: the caller appends it.
    pub fn recorded(&self, ran: &ChainRan) -> Option<Committed> {
        ran.0.get(self.index).and_then(|r| r.committed.clone())
    }

    /// The step's value and what its admission decided, once its chain has run.
    pub fn admitted(self, ran: &mut ChainRan) -> Result<(T, Option<Result<Admitted, Refused>>), E> {
        let (value, done) = self.take(ran)?;
        Ok((
            value,
            match done {
                Some(FollowedUp::Admitted(result)) => Some(result),
                _ => None,
            },
        ))
    }

    /// The step's value and the budget counters after its settlement (empty without
    /// one), once its chain has run.
    pub fn settled(self, ran: &mut ChainRan) -> Result<(T, Vec<BudgetRow>), E> {
        let (value, done) = self.take(ran)?;
        Ok((
            value,
            match done {
                Some(FollowedUp::Settled(after)) => after,
                _ => Vec::new(),
            },
        ))
    }

    /// The step's own error when it refused; an error saying so when it never ran (a
    /// step before it refused) or died inside the writer.
    fn take(mut self, ran: &mut ChainRan) -> Result<(T, Option<FollowedUp>), E> {
        match self.kept.try_recv() {
            Ok(Ok(value)) => Ok((
                value,
                ran.0.get_mut(self.index).and_then(|r| r.followed.take()),
            )),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::Failed(
                "the session step was not run (a step before it refused, or it failed \
                 inside the writer); nothing was stored"
                    .into(),
            )
            .into()),
        }
    }
}

/// Creates the row of a session never seen, as a placeholder (`started_us = -1`) that
/// only this transaction sees until it commits; no-op when the row exists.
const INSERT_PLACEHOLDER_PG: &str = "INSERT INTO sessions (tenant, agent, session, started_us, last_seen_us) \
     VALUES ($1, $2, $3, -1, -1) ON CONFLICT DO NOTHING";

impl Store {
    /// Runs one session step under the session's lock: `step` gets the stored state
    /// (`None` for a session never seen) and returns the state to store and a value.
    /// An error from `step` rolls back and stores nothing.
    ///
    /// On PostgreSQL the row is locked first (`SELECT … FOR UPDATE`). Only for a session
    /// never seen is a placeholder row inserted and locked, so two replicas creating one
    /// session also take turns, and the common case costs one read and one write. On
    /// SQLite the step runs on the store's step writer (`store/steps.rs`), batched with
    /// the other steps waiting, inside a `BEGIN IMMEDIATE` that already holds the write
    /// lock; `step` runs on that thread, hence `Send + 'static`.
    ///
    /// The commit is deferred (not synced by itself): a caller that changed the state
    /// appends an audit record before it answers, and that durable commit covers this
    /// one (see `Store::begin_sqlite_deferred`).
    pub async fn session_step<T, E>(
        &self,
        key: &SessionKey,
        step: impl FnOnce(Option<SessionState>) -> Result<(SessionState, T), E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (value, _) = self
            .session_step_admit(key, |stored| step(stored).map(|(next, v)| (next, v, None)))
            .await?;
        Ok(value)
    }

    /// [`Store::session_step`] that may also admit the action in the same transaction:
    /// when `step` returns an [`AdmissionPlan`], it runs after the session state is
    /// written, under a savepoint, so a refused admission undoes only itself (the
    /// attempt still counts in the session). One transaction instead of two for an
    /// allowed action with rate limits or budgets. Lock order: session row, then
    /// buckets, then budget counters, as everywhere else.
    pub async fn session_step_admit<T, E>(
        &self,
        key: &SessionKey,
        step: impl FnOnce(Option<SessionState>) -> Result<(SessionState, T, Option<AdmissionPlan>), E>
        + Send
        + 'static,
    ) -> Result<(T, Option<Result<Admitted, Refused>>), E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let mut chain = StepChain::new(key.clone());
        let step = chain.admit(step);
        let mut ran = self.session_steps(chain).await?;
        step.admitted(&mut ran)
    }

    /// [`Store::session_step`] for a report: when `step` returns a [`Settlement`], it is
    /// settled after the session state is written, in the same transaction, and the
    /// counters after it come back (empty without one). One transaction instead of two;
    /// lock order session row, then budget counters, as everywhere else.
    pub async fn session_step_settle<T, E>(
        &self,
        key: &SessionKey,
        step: impl FnOnce(Option<SessionState>) -> Result<(SessionState, T, Option<Settlement>), E>
        + Send
        + 'static,
    ) -> Result<(T, Vec<BudgetRow>), E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let mut chain = StepChain::new(key.clone());
        let step = chain.settle(step);
        let mut ran = self.session_steps(chain).await?;
        step.settled(&mut ran)
    }

    /// Runs a chain of steps of one session in its order, in one transaction under the
    /// session's lock, each on the state the steps before it left (a report, then the
    /// actions it led to, cost one transaction instead of one each). A step that
    /// refuses stores nothing and the steps after it are not run; the steps before it
    /// are stored. Each step's value comes back through its [`Chained`].
    pub async fn session_steps(&self, chain: StepChain) -> Result<ChainRan, StoreError> {
        let StepChain {
            key,
            steps,
            records,
        } = chain;
        match &self.backend {
            // On the store's step writer, batched with other steps.
            Backend::Sqlite(_) => Ok(ChainRan(
                self.step_writer().await?.steps(key, steps, records).await?,
            )),
            Backend::Postgres(pool) => {
                let mut tx = pool.begin_with(super::PG_BEGIN_DEFERRED).await?;
                let mut current = pg_get(&mut tx, &key, true).await?;
                if current.is_none() {
                    bind_key!(sqlx::query(INSERT_PLACEHOLDER_PG), &key)
                        .execute(&mut *tx)
                        .await?;
                    current = pg_get(&mut tx, &key, true).await?;
                }
                let mut current = current.filter(is_real);
                let mut done = Vec::with_capacity(steps.len());
                let (mut stored, mut refused) = (false, false);
                for step in steps {
                    // After a refusal the rest is dropped unrun.
                    if refused {
                        done.push(StepRan::default());
                        continue;
                    }
                    // A recorder is not run here: on PostgreSQL the record goes through
                    // the audit writer (its group commit shares the chain head's lock
                    // with the other replicas), so the caller appends it.
                    let Some((next, follow, _recorder)) = step(current.clone()) else {
                        refused = true;
                        done.push(StepRan::default());
                        continue;
                    };
                    pg_put(&mut tx, &key, &next).await?;
                    let followed = match follow {
                        None => None,
                        Some(FollowUp::Admit(plan)) => Some(FollowedUp::Admitted({
                            let mut sp = sqlx::Connection::begin(&mut *tx).await?;
                            let result = admit_on_pg(&mut sp, &plan).await?;
                            commit_if_admitted(sp, result).await?
                        })),
                        Some(FollowUp::Settle(s)) => Some(FollowedUp::Settled(
                            settle_on_pg(
                                &mut tx,
                                &in_lock_order(&s.charges),
                                s.usage.as_ref(),
                                s.now,
                            )
                            .await?,
                        )),
                    };
                    done.push(StepRan {
                        followed,
                        committed: None,
                    });
                    current = Some(next);
                    stored = true;
                }
                // Nothing stored (the first step refused): roll back, so not even a
                // new session's placeholder row is left behind.
                if stored {
                    tx.commit().await?;
                } else {
                    tx.rollback().await?;
                }
                Ok(ChainRan(done))
            }
        }
    }

    /// The stored state of a session, if it exists.
    pub async fn session_get(&self, key: &SessionKey) -> Result<Option<SessionState>, StoreError> {
        let row = match &self.backend {
            Backend::Sqlite(pool) => sqlite_get(&mut *pool.acquire().await?, key).await?,
            Backend::Postgres(pool) => pg_get(&mut *pool.acquire().await?, key, false).await?,
        };
        Ok(row.filter(is_real))
    }
}

/// A placeholder row (`started_us = -1`) is a session never seen.
pub(super) fn is_real(s: &SessionState) -> bool {
    s.started_us >= 0
}

pub(super) async fn sqlite_get(
    conn: &mut SqliteConnection,
    key: &SessionKey,
) -> Result<Option<SessionState>, StoreError> {
    let row = bind_key!(sqlx::query(SELECT_SQLITE), key)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(state).transpose()
}

/// Opens a `BEGIN IMMEDIATE` transaction and reads the audit chain's head, whether a
/// break-glass grant could be in force ([`BatchFacts`]) and the stored rows of `keys` (placeholders included; a key without a row is absent), in
/// one query: one round trip to SQLite's worker thread. The transaction's commit is
/// durable (`synchronous=FULL`) when `durable`, for a batch that may append audit
/// records, and deferred (`NORMAL`) otherwise. The caller must end the transaction by
/// SQL, or close the connection.
pub(super) async fn sqlite_begin_get_many(
    conn: &mut SqliteConnection,
    durable: bool,
    keys: &[&SessionKey],
) -> Result<(Committed, BatchFacts, HashMap<SessionKey, SessionState>), StoreError> {
    // SQLite refuses to change the safety level inside a transaction, hence before it.
    let begin = format!(
        "PRAGMA synchronous = {}; BEGIN IMMEDIATE; \
         SELECT seq, hash FROM audit_head WHERE id = 1; \
         SELECT COUNT(*) AS grants FROM break_glass WHERE revoked_us = 0 AND expires_us > ?",
        if durable { "FULL" } else { "NORMAL" }
    );
    let sql = if keys.is_empty() {
        begin
    } else {
        format!(
            concat!(
                "{}; SELECT tenant, agent, session, ",
                session_columns!(),
                " FROM sessions WHERE (tenant, agent, session) IN (VALUES {})"
            ),
            begin,
            vec!["(?, ?, ?)"; keys.len()].join(", ")
        )
    };
    let since = crate::service::now_us() - BatchFacts::GRANT_MARGIN_US;
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(since);
    for key in keys {
        query = bind_key!(query, key);
    }
    let rows = query.fetch_all(conn).await?;
    use sqlx::Row as _;
    // The head's row comes first (the table always holds it), then the count's, then
    // the sessions'.
    let [head, grants, sessions @ ..] = rows.as_slice() else {
        return Err(StoreError::Corrupt(
            "the audit head or the break-glass count is missing".into(),
        ));
    };
    let head = Committed {
        seq: head.try_get::<i64, _>("seq")? as u64,
        hash: head.try_get("hash")?,
    };
    let facts = BatchFacts {
        break_glass_possible: grants.try_get::<i64, _>("grants")? > 0,
    };
    let sessions = sessions
        .iter()
        .map(|row| {
            let key = SessionKey {
                tenant: row.try_get("tenant")?,
                agent: row.try_get("agent")?,
                session: row.try_get("session")?,
            };
            Ok((key, state(row)?))
        })
        .collect::<Result<_, StoreError>>()?;
    Ok((head, facts, sessions))
}

/// One upsert of `rows` sessions that keeps the larger zone and the first close, as
/// the UPDATE on PostgreSQL does, with anonymous parameters (see [`bind_puts`]).
/// (SQLite needs no placeholder row: the batch's `BEGIN IMMEDIATE` already holds the
/// only write lock.)
pub(super) fn sqlite_put_many_sql(rows: usize) -> String {
    format!(
        "INSERT INTO sessions (tenant, agent, session, zone, actions, reports, bytes, \
         rows_read, tags, started_us, last_seen_us, closed_us, max_tokens, \
         max_cost_micro_usd, tokens, cost_micro_usd) VALUES {} \
         ON CONFLICT (tenant, agent, session) DO UPDATE SET \
         zone = MAX(zone, excluded.zone), actions = excluded.actions, \
         reports = excluded.reports, bytes = excluded.bytes, \
         rows_read = excluded.rows_read, tags = excluded.tags, \
         started_us = excluded.started_us, last_seen_us = excluded.last_seen_us, \
         closed_us = COALESCE(closed_us, excluded.closed_us), \
         max_tokens = excluded.max_tokens, max_cost_micro_usd = excluded.max_cost_micro_usd, \
         tokens = excluded.tokens, cost_micro_usd = excluded.cost_micro_usd",
        vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; rows].join(", ")
    )
}

/// Binds `rows` to [`sqlite_put_many_sql`]`(rows.len())`.
pub(super) fn bind_puts<'q>(
    mut query: super::sqlite::SqliteQuery<'q>,
    rows: &[(&'q SessionKey, &SessionState)],
) -> super::sqlite::SqliteQuery<'q> {
    for (key, s) in rows {
        query = bind_session!(query, key, *s);
    }
    query
}

/// Runs a step's follow-up on SQLite, after its state was written. A settlement's
/// usage history row is not written here but pushed to `history`, for the batch to
/// write in one statement.
pub(super) async fn sqlite_follow_up(
    tx: &mut SqliteConnection,
    follow: Option<FollowUp>,
    history: &mut Vec<UsageRow>,
) -> Result<Option<FollowedUp>, StoreError> {
    Ok(match follow {
        None => None,
        Some(FollowUp::Admit(plan)) => {
            // The batch's transaction was opened by SQL, so sqlx does not know of it
            // (its own nested begin would send a second BEGIN): the savepoint is ours.
            sqlx::raw_sql("SAVEPOINT admission")
                .execute(&mut *tx)
                .await?;
            let result = admit_on_sqlite(tx, &plan).await?;
            let end = if result.is_ok() {
                "RELEASE admission"
            } else {
                "ROLLBACK TO admission; RELEASE admission"
            };
            sqlx::raw_sql(end).execute(&mut *tx).await?;
            Some(FollowedUp::Admitted(result))
        }
        Some(FollowUp::Settle(s)) => {
            let after = settle_on_sqlite(tx, &in_lock_order(&s.charges), None, s.now).await?;
            history.extend(s.usage);
            Some(FollowedUp::Settled(after))
        }
    })
}

async fn pg_get(
    conn: &mut PgConnection,
    key: &SessionKey,
    lock: bool,
) -> Result<Option<SessionState>, StoreError> {
    let sql = if lock { SELECT_PG_LOCKED } else { SELECT_PG };
    let row = bind_key!(sqlx::query(sql), key)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(state).transpose()
}

async fn pg_put(
    conn: &mut PgConnection,
    key: &SessionKey,
    s: &SessionState,
) -> Result<(), StoreError> {
    let sql = "UPDATE sessions SET zone = GREATEST(zone, $4), actions = $5, reports = $6, \
               bytes = $7, rows_read = $8, tags = $9, started_us = $10, last_seen_us = $11, \
               closed_us = COALESCE(closed_us, $12), max_tokens = $13, \
               max_cost_micro_usd = $14, tokens = $15, cost_micro_usd = $16 \
               WHERE tenant = $1 AND agent = $2 AND session = $3";
    bind_session!(sqlx::query(sql), key, s)
        .execute(conn)
        .await?;
    Ok(())
}
