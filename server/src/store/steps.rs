//! SQLite session steps, batched: one writer thread per store takes every step waiting,
//! runs them one after another in one transaction, commits once and only then answers
//! each caller.
//!
//! SQLite has one writer at a time, so session steps queue anyway (`store/gate.rs`).
//! Run one per transaction from the request tasks, a step cost a `BEGIN IMMEDIATE`, a
//! read, a write and a `COMMIT`, each a round trip to sqlx's SQLite worker thread and
//! back through the shared runtime, and the next step could not start until the
//! runtime had polled the previous one's task again: about 0.35 ms per step, the
//! daemon's ceiling under load. Here a batch pays the `BEGIN` and the `COMMIT` once,
//! and its steps run back to back on a thread that does nothing else. Without
//! admissions or settlements a batch is two queries: `BEGIN IMMEDIATE` with the read
//! of the audit chain's head and of all its sessions, then the upsert of those it
//! changed, the usage history rows, the audit records and the `COMMIT`. Each follow-up
//! adds its own statements. The transaction is opened and ended by SQL rather than by
//! sqlx: a batch that fails drops its connection, which closes it (SQLite rolls back),
//! and an admission's savepoint is issued by hand.
//!
//! **One connection of its own.** The writer keeps one connection, taken out of the
//! pool, from batch to batch. SQLite keeps a page cache per connection and drops all of
//! it when it finds that another connection wrote to the file since; a writer handed a
//! different pooled connection each time re-read every page a batch touches (about
//! fifteen `pread`s per batch, traced). Kept, the cache stays warm for as long as
//! this writer is the only one writing, which on the decision path it is.
//!
//! A step's closure runs on this thread, in batch order, and sees every earlier step of
//! the batch (same transaction): two steps of one session in one batch take turns as
//! they would in two transactions. A caller may queue a chain of steps of one session
//! (a report and the actions it led to); they run back to back in its order. A closure
//! that refuses (returns its error) writes nothing, and the steps after it in its chain
//! are not run. A database error fails the whole batch: it rolls back and every step in it
//! gets the error, so no caller acts on a step that was not stored.
//!
//! **Records in the step's transaction.** A step may hand back a recorder, which builds
//! its audit record here once its follow-up ran (`StepChain::admit_recorded`). When
//! every step of a chain that ran has one and each built its record, the chain's
//! records are appended to the audit chain in this same transaction (the head was read
//! in its `BEGIN IMMEDIATE`, which holds the write lock) and the batch commits durably
//! (`synchronous=FULL`): a decision costs one transaction and one sync instead of a
//! step transaction and then an audit writer's. A chain whose records cannot all be
//! built here (a break-glass grant or an approval may change its verdict, which needs
//! the database outside this transaction) appends none: its caller appends them
//! through the audit writer, after the batch, as before. SQLite sets the safety level
//! only outside a transaction, so a batch is durable when any of its chains may record
//! (every Evaluate and Report does); a batch of steps that never record (opening or
//! closing a session) commits deferred (`synchronous=NORMAL`), and the audit append
//! each such caller makes before it answers is the durable one (see
//! `Store::begin_sqlite_deferred`).

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;

use sqlx::{SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::budgets::{USAGE_ROWS_PER_INSERT, bind_usage_rows, usage_insert_sql};
use super::gate::WriteGate;
use super::sessions::{
    BatchFacts, FollowUp, FollowedUp, SessionKey, StepRan, bind_puts, sqlite_begin_get_many,
    sqlite_follow_up, sqlite_put_many_sql,
};
use super::sqlite;
use super::{NewRecord, StoreError, chain, committed, head_after};
use crate::audit::RecordBody;
use crate::session::SessionState;

/// Most steps run in one transaction.
const MAX_BATCH: usize = 256;
/// Steps that may wait for the writer before callers feel back-pressure.
const QUEUE_CAPACITY: usize = 16_384;

/// A type-erased step: the stored state in; the state to store, the follow-up and the
/// step's recorder out, or `None` when the caller's closure refused (it has kept its
/// own error).
pub(super) type StepFn = Box<
    dyn FnOnce(Option<SessionState>) -> Option<(SessionState, Option<FollowUp>, Option<RecordFn>)>
        + Send,
>;

/// A type-erased recorder: what the step's follow-up did in, its audit record out, or
/// `None` when the record cannot be built on the writer's thread.
pub(super) type RecordFn =
    Box<dyn FnOnce(Option<&FollowedUp>, &BatchFacts) -> Option<RecordBody> + Send>;

/// What the writer answers a chain: for each step, what its follow-up did (nothing
/// without one, when the closure refused, or when an earlier step of the chain
/// refused) and where its record went when the batch appended it.
pub(super) type ChainDone = Result<Vec<StepRan>, StoreError>;

/// A batch's failure, as every step in it is told (a `StoreError` is not `Clone`).
#[derive(Clone)]
struct BatchFailed {
    message: String,
    /// The batch carried audit records: they were not committed.
    audit: bool,
}

struct Job {
    key: SessionKey,
    steps: Vec<StepFn>,
    /// A step of the chain may hand back a recorder.
    records: bool,
    done: oneshot::Sender<Result<Vec<StepRan>, BatchFailed>>,
}

/// Handle to a store's step writer; cheap to clone. The thread stops when every handle
/// is dropped.
#[derive(Clone)]
pub(super) struct StepWriter {
    tx: mpsc::Sender<Job>,
}

impl StepWriter {
    /// Starts the writer thread on `pool` (the deferred pool), queueing for the file's
    /// write turn at `gate` like every other writer of this process.
    pub(super) fn start(pool: SqlitePool, gate: WriteGate) -> Result<StepWriter, StoreError> {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Runtime(e.to_string()))?;
        std::thread::Builder::new()
            .name("warden-steps".into())
            .spawn(move || runtime.block_on(run(pool, gate, rx)))
            .map_err(|e| StoreError::Runtime(e.to_string()))?;
        Ok(StepWriter { tx })
    }

    /// Queues a chain of steps of one session and waits until its batch has committed
    /// (or failed).
    /// `records`: a step of the chain may hand back a recorder.
    pub(super) async fn steps(
        &self,
        key: SessionKey,
        steps: Vec<StepFn>,
        records: bool,
    ) -> ChainDone {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job {
                key,
                steps,
                records,
                done,
            })
            .await
            .map_err(|_| stopped())?;
        wait.await
            .map_err(|_| stopped())?
            .map_err(|BatchFailed { message, audit }| {
                if audit {
                    StoreError::AuditCommit(message)
                } else {
                    StoreError::Failed(message)
                }
            })
    }
}

fn stopped() -> StoreError {
    StoreError::Failed("the session step writer has stopped".into())
}

async fn run(pool: SqlitePool, gate: WriteGate, mut rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // The writer's own connection; `None` after a failed batch closed it.
    let mut own: Option<SqliteConnection> = None;
    while crate::batch::next_batch(&mut rx, &mut batch, MAX_BATCH).await {
        let steps = batch.len();
        let durable = batch.iter().any(|j| j.records);
        let (dones, work): (Vec<_>, Vec<_>) =
            batch.drain(..).map(|j| (j.done, (j.key, j.steps))).unzip();
        let result = run_batch(&pool, &mut own, &gate, work, durable).await;
        let result = result.map_err(|e| {
            tracing::error!(error = %e, steps, "session step batch failed; refusing its steps");
            BatchFailed {
                audit: matches!(e, StoreError::AuditCommit(_)),
                message: e.to_string(),
            }
        });
        crate::batch::answer_all(dones, result);
    }
    tracing::debug!("session step writer stopped");
}

/// Runs `work` in one transaction, committed durably when `durable` (a step may hand
/// back a recorder; the batch opens before it knows whether one will): one read of the audit chain's head and of every
/// session the batch touches, the chains in order and each chain's steps in order
/// (each on the state the steps before it left, its follow-up and its recorder right
/// after it; a refusal ends its chain), one write of every session that changed, one of
/// the settlements' usage history rows and one of the chains' audit records. The
/// answers come back in `work`'s order, and count only once this returns `Ok` (the
/// batch committed).
async fn run_batch(
    pool: &SqlitePool,
    own: &mut Option<SqliteConnection>,
    gate: &WriteGate,
    work: Vec<(SessionKey, Vec<StepFn>)>,
    durable: bool,
) -> Result<Vec<Vec<StepRan>>, StoreError> {
    let queued = std::time::Instant::now();
    let _turn = gate.turn().await;
    let waited = queued.elapsed();
    // Taken out for the batch and put back only once it committed: a batch that fails
    // on the way drops it, which closes it and rolls back what it had begun.
    let mut conn = match own.take() {
        Some(conn) => conn,
        None => pool.acquire().await?.detach(),
    };
    let tx = &mut conn;
    let mut keys: Vec<&SessionKey> = work.iter().map(|(key, _)| key).collect();
    keys.sort_unstable_by(|a, b| {
        (&a.tenant, &a.agent, &a.session).cmp(&(&b.tenant, &b.agent, &b.session))
    });
    keys.dedup();
    let chains = work.len();
    let began = std::time::Instant::now();
    let (head, facts, mut sessions) = sqlite_begin_get_many(tx, durable, &keys).await?;
    let read = began.elapsed();
    // The sessions the batch changed, in the order it first changed them.
    let mut changed: Vec<SessionKey> = Vec::new();
    let mut is_changed: HashSet<SessionKey> = HashSet::new();
    let mut answers = Vec::with_capacity(work.len());
    let mut history = Vec::new();
    // The records to append, in chain order, and the (chain, step) each belongs to.
    let mut records: Vec<NewRecord> = Vec::new();
    let mut owners: Vec<(usize, usize)> = Vec::new();
    for (key, steps) in work {
        let mut ran = Vec::with_capacity(steps.len());
        // This chain's records: `None` once a step that ran could not build its own.
        let mut chain_records = Some(Vec::new());
        let mut refused = false;
        for step in steps {
            // After a refusal the rest of the chain is dropped unrun: its callers see
            // their value's channel closed.
            if refused {
                ran.push(StepRan::default());
                continue;
            }
            let stored = sessions.get(&key).cloned();
            let Some((next, follow, recorder)) = run_step(&key, step, stored) else {
                refused = true;
                ran.push(StepRan::default());
                continue;
            };
            let followed = sqlite_follow_up(tx, follow, &mut history).await?;
            let record = recorder.and_then(|r| run_recorder(&key, r, followed.as_ref(), &facts));
            chain_records = chain_records.zip(record).map(|(mut all, body)| {
                all.push((ran.len(), body));
                all
            });
            ran.push(StepRan {
                followed,
                committed: None,
            });
            sessions.insert(key.clone(), next);
            if is_changed.insert(key.clone()) {
                changed.push(key.clone());
            }
        }
        for (step, body) in chain_records.into_iter().flatten() {
            let json = body.canonical_json();
            records.push(NewRecord { body, json });
            owners.push((answers.len(), step));
        }
        answers.push(ran);
    }
    let rows: Vec<_> = changed
        .iter()
        .filter_map(|k| Some((k, sessions.get(k)?)))
        .collect();
    let stepped = began.elapsed();
    let links = chain(&head, &records);
    // The sessions' upsert, the usage history rows, the audit records with the head's
    // move, and the COMMIT go as one query.
    let mut statements = Vec::new();
    if !rows.is_empty() {
        statements.push(sqlite_put_many_sql(rows.len()));
    }
    let usage = history.chunks(USAGE_ROWS_PER_INSERT);
    statements.extend(usage.clone().map(|chunk| usage_insert_sql(chunk.len())));
    let linked: Vec<_> = records.iter().zip(&links).collect();
    let appends = linked.chunks(sqlite::CHUNK);
    statements.extend(
        appends
            .clone()
            .map(|c| sqlite::audit_insert_sql(c.len()).to_string()),
    );
    if !records.is_empty() {
        statements.push(sqlite::MOVE_HEAD.into());
    }
    statements.push("COMMIT".into());
    let mut query = sqlx::query(sqlx::AssertSqlSafe(statements.join("; ")));
    if !rows.is_empty() {
        query = bind_puts(query, &rows);
    }
    for chunk in usage {
        query = bind_usage_rows(query, chunk);
    }
    for chunk in appends {
        for (record, link) in chunk {
            query = sqlite::bind_row(query, record, link);
        }
    }
    let (last_seq, last_hash) = head_after(&head, &links);
    if !records.is_empty() {
        query = query.bind(last_seq as i64).bind(last_hash);
    }
    query.execute(&mut *tx).await.map_err(|e| {
        if records.is_empty() {
            StoreError::from(e)
        } else {
            StoreError::AuditCommit(e.to_string())
        }
    })?;
    *own = Some(conn);
    // One event per committed batch: the wait for the write turn, then the first query
    // (`BEGIN IMMEDIATE` and the reads), the steps, and the writes with the `COMMIT`.
    tracing::trace!(
        steps = chains,
        records = records.len(),
        waited_us = waited.as_micros() as u64,
        read_us = read.as_micros() as u64,
        steps_us = (stepped - read).as_micros() as u64,
        write_us = (began.elapsed() - stepped).as_micros() as u64,
        elapsed_us = queued.elapsed().as_micros() as u64,
        "session step batch"
    );
    for ((chain, step), place) in owners.into_iter().zip(committed(links)) {
        answers[chain][step].committed = Some(place);
    }
    Ok(answers)
}

/// Runs a step's recorder; `None` back: it declined, or panicked (the chain's records
/// are then left to their callers, as when it declines).
fn run_recorder(
    key: &SessionKey,
    recorder: RecordFn,
    followed: Option<&FollowedUp>,
    facts: &BatchFacts,
) -> Option<RecordBody> {
    guarded(
        key,
        "a step's recorder panicked; its caller appends the chain's records",
        || recorder(followed, facts),
    )
}

/// Runs a caller's closure; a panic in it is a bug in that caller, which fails its own
/// step (logged with `what`) and not the writer.
fn guarded<T>(key: &SessionKey, what: &str, f: impl FnOnce() -> Option<T>) -> Option<T> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        tracing::error!(agent = %key.agent, session = %key.session, "{what}");
        None
    })
}

/// Runs one step's closure on the state the batch holds for its session (`None`: never
/// seen). `None` back: the closure refused, or panicked; either way nothing of it is
/// stored.
fn run_step(
    key: &SessionKey,
    step: StepFn,
    stored: Option<SessionState>,
) -> Option<(SessionState, Option<FollowUp>, Option<RecordFn>)> {
    // The caller sees its value's channel dropped.
    guarded(
        key,
        "a session step panicked; nothing of it was stored",
        || step(stored.filter(super::sessions::is_real)),
    )
}
