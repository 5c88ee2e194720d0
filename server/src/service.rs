//! The gRPC services. Each handler reads top to bottom as the decision path in
//! docs/ARCHITECTURE.md: normalize, decide, audit, answer.

mod admin;
mod audit;
mod decisions;
mod sessions;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::audit::AuditWriter;
use crate::policy::{Policy, PolicyError, SelfGuard};
use crate::store::Store;

pub(crate) use admin::AdminService;
pub(crate) use audit::AuditService;
pub(crate) use decisions::DecisionsService;
pub(crate) use sessions::SessionsService;

/// The live policy. Requests take an `Arc` snapshot, so a reload never changes the
/// policy under a request that already started.
pub struct PolicyHandle {
    tx: watch::Sender<Arc<Policy>>,
    /// File to reload from; `None` for the built-in default.
    path: Option<PathBuf>,
    /// Serializes reloads (file read + compile), never held by requests.
    reloading: std::sync::Mutex<()>,
}

/// A successful reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    pub previous_version: String,
    pub version: String,
}

impl PolicyHandle {
    pub fn new(policy: Policy, path: Option<PathBuf>) -> Arc<PolicyHandle> {
        let (tx, _) = watch::channel(Arc::new(policy));
        Arc::new(PolicyHandle {
            tx,
            path,
            reloading: std::sync::Mutex::new(()),
        })
    }

    /// The policy in force now.
    pub fn current(&self) -> Arc<Policy> {
        self.tx.borrow().clone()
    }

    /// Swaps in a compiled policy (tests swap policies mid-flight with this).
    pub fn replace(&self, policy: Policy) -> Reloaded {
        let previous = self.tx.send_replace(Arc::new(policy));
        Reloaded {
            previous_version: previous.version().to_string(),
            version: self.current().version().to_string(),
        }
    }

    /// Re-reads the policy source. On error the current policy stays in force.
    pub fn reload(&self) -> Result<Reloaded, PolicyError> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let policy = match &self.path {
            Some(path) => Policy::from_file(path)?,
            None => Policy::builtin_default()?,
        };
        Ok(self.replace(policy))
    }
}

/// What every service shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) policy: Arc<PolicyHandle>,
    /// Recognizes actions that touch this daemon's own files and process.
    pub(crate) guard: Arc<SelfGuard>,
    pub(crate) audit: AuditWriter,
    pub(crate) store: Store,
}

/// Microseconds since the Unix epoch.
pub(crate) fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}
