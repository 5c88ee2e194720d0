//! One writer at a time per SQLite file, queued in this process instead of in SQLite's
//! busy handler.
//!
//! SQLite admits one write transaction at a time. A connection that finds the write
//! lock taken does not queue: its busy handler sleeps (1, 2, 5, 10, 15, 20, 25 … ms)
//! and tries again. Under load that made the daemon's writers — the session steps on
//! four pooled connections and the audit writer on its own thread — spend their time
//! asleep with the lock free: `wardend bench evaluate --concurrency 32` made ~4,700
//! `clock_nanosleep` calls in 6 s and ran at ~1,500 decisions/s.
//!
//! So every write transaction this process opens on a file first takes the file's
//! [`WriteGate`]: writers wait their turn on a FIFO queue and find the lock free when
//! they get it. The audit writer queues like everyone else: letting it go first was
//! tried and halved throughput (its batches shrank to a few records, each paying a
//! full sync). The gate is an optimization only; correctness never depended on it.
//! Another process on the same file still meets the busy handler, and the database's
//! own lock still decides who writes.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// The turn of one write transaction; the next writer goes when it is dropped.
pub(crate) type WriteTurn = OwnedMutexGuard<()>;

/// The queue of one database file's writers; cheap to clone.
#[derive(Clone)]
pub(crate) struct WriteGate(Arc<AsyncMutex<()>>);

/// Live gates by database URL. Entries are weak, so a closed store's gate goes away
/// with its last handle.
static GATES: LazyLock<Mutex<HashMap<String, Weak<AsyncMutex<()>>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

impl WriteGate {
    /// The gate of the database at `url`, shared with every other store of this process
    /// opened on the same URL (the daemon's pools and its audit writer's own).
    pub(crate) fn for_url(url: &str) -> WriteGate {
        // A poisoned map only means another thread panicked while inserting; the map
        // itself is still usable.
        let mut gates = GATES.lock().unwrap_or_else(|p| p.into_inner());
        gates.retain(|_, g| g.strong_count() > 0);
        if let Some(gate) = gates.get(url).and_then(Weak::upgrade) {
            return WriteGate(gate);
        }
        let gate = Arc::new(AsyncMutex::new(()));
        gates.insert(url.to_string(), Arc::downgrade(&gate));
        WriteGate(gate)
    }

    /// Waits for this writer's turn, behind every writer already waiting.
    pub(crate) async fn turn(&self) -> WriteTurn {
        self.0.clone().lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::WriteGate;

    #[tokio::test]
    async fn one_url_one_queue() {
        let a = WriteGate::for_url("sqlite:///tmp/gate-a.db");
        let same = WriteGate::for_url("sqlite:///tmp/gate-a.db");
        let other = WriteGate::for_url("sqlite:///tmp/gate-b.db");
        let turn = a.turn().await;
        assert!(same.0.try_lock().is_err(), "the same file shares the queue");
        assert!(other.0.try_lock().is_ok(), "another file has its own");
        drop(turn);
        assert!(same.0.try_lock().is_ok(), "the turn ends when dropped");
    }
}
