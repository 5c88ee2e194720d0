//! Group commit: one writer task per process takes every pending record off a channel,
//! writes as many as are waiting in one transaction, and only then answers each caller.
//!
//! While one batch commits, the next one gathers, so under load the cost of a commit is
//! shared by hundreds of decisions, and under no load a lone record commits at once.
//! Across processes the chain stays single because each batch locks the chain head row
//! (see `store`).
//!
//! The writer runs on a thread of its own, with its own single-threaded runtime and its
//! own connection pool. On the shared runtime it was one task among thousands of request
//! tasks, and each await inside a commit waited its turn behind them: batches of ~450
//! records took 55-80 ms on PostgreSQL. Commit latency is the cost every decision waits
//! for, so it gets a thread that is never busy with anything else.

use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::record::RecordBody;
use crate::store::{NewRecord, Store, StoreError};

/// Most records written in one transaction.
pub const DEFAULT_MAX_BATCH: usize = 2048;
/// Records that may wait for the writer before callers feel back-pressure.
const QUEUE_CAPACITY: usize = 65_536;

/// A committed record's place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub seq: u64,
    pub hash: String,
}

/// Why a record was not committed. The decision it belonged to must not be returned.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    #[error("the audit writer has shut down")]
    Closed,
    #[error("the audit store failed to commit: {0}")]
    Store(String),
}

/// Records that commit together (one, or a report and its follow-up decisions).
struct Pending {
    records: Vec<NewRecord>,
    done: oneshot::Sender<Result<Vec<Committed>, AuditError>>,
}

/// Handle for appending records; cheap to clone. When every handle is dropped, the writer
/// commits what is queued and stops.
#[derive(Clone)]
pub struct AuditWriter {
    tx: mpsc::Sender<Pending>,
}

/// The writer thread; [`WriterTask::finished`] completes when it has committed what was
/// queued and stopped.
pub struct WriterTask {
    done: oneshot::Receiver<()>,
}

impl WriterTask {
    /// Waits until every queued record is committed (or failed) and the writer stopped.
    pub async fn finished(self) {
        let _ = self.done.await;
    }
}

impl AuditWriter {
    /// Starts the writer thread with its own connection to `db_url`. Fails if the
    /// database cannot be opened.
    pub async fn start(
        db_url: &str,
        max_batch: usize,
    ) -> Result<(AuditWriter, WriterTask), StoreError> {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let (ready_tx, ready_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let url = db_url.to_string();
        let max_batch = max_batch.max(1);
        std::thread::Builder::new()
            .name("warden-audit".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(StoreError::Runtime(e.to_string())));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let store = match Store::connect(&url).await {
                        Ok(store) => store,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    run(store.clone(), rx, max_batch).await;
                    store.close().await;
                });
                let _ = done_tx.send(());
            })
            .map_err(|e| StoreError::Runtime(e.to_string()))?;
        ready_rx.await.map_err(|_| {
            StoreError::Runtime("the audit writer thread died while starting".into())
        })??;
        Ok((AuditWriter { tx }, WriterTask { done: done_rx }))
    }

    /// Appends a record and waits until it is durably committed.
    pub async fn append(&self, body: RecordBody) -> Result<Committed, AuditError> {
        self.append_all(vec![body])
            .await?
            .pop()
            .ok_or_else(|| AuditError::Store("the writer committed no record".into()))
    }

    /// Appends records in this order, consecutive in the chain and in one transaction
    /// (all are committed or none), and waits until they are durably committed.
    pub async fn append_all(&self, bodies: Vec<RecordBody>) -> Result<Vec<Committed>, AuditError> {
        // Encode here, on the caller's task, so the single writer only hashes and writes.
        let records = bodies
            .into_iter()
            .map(|body| {
                let json = body.canonical_json();
                NewRecord { body, json }
            })
            .collect();
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Pending { records, done })
            .await
            .map_err(|_| AuditError::Closed)?;
        wait.await.map_err(|_| AuditError::Closed)?
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Pending>, max_batch: usize) {
    let mut batch: Vec<Pending> = Vec::with_capacity(max_batch);
    let mut records: Vec<NewRecord> = Vec::with_capacity(max_batch);
    let mut sizes: Vec<usize> = Vec::with_capacity(max_batch);
    while crate::batch::next_batch(&mut rx, &mut batch, max_batch).await {
        let done: Vec<_> = batch
            .drain(..)
            .map(|p| {
                sizes.push(p.records.len());
                records.extend(p.records);
                p.done
            })
            .collect();
        let started = Instant::now();
        // Each group gets its own records' places back, in order.
        let result = store.append_batch(&records).await.map(|committed| {
            let mut committed = committed.into_iter();
            sizes
                .drain(..)
                .map(|n| committed.by_ref().take(n).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        });
        // A failed batch did not drain them.
        sizes.clear();
        tracing::trace!(
            records = records.len(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "audit batch"
        );
        let result = result.map_err(|e| {
            tracing::error!(error = %e, records = records.len(), "audit batch failed; refusing its decisions");
            AuditError::Store(e.to_string())
        });
        crate::batch::answer_all(done, result);
        records.clear();
    }
    tracing::debug!("audit writer drained and stopped");
}
