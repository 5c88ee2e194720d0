//! The gRPC services. Each handler reads top to bottom as the decision path in
//! docs/ARCHITECTURE.md: normalize, decide, audit, answer.

mod admin;
mod approvals;
mod audit;
mod budgets;
mod decisions;
mod rate_limits;
mod sessions;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tonic::Request;

use crate::alerts::Alerts;
use crate::audit::AuditWriter;
use crate::error::ApiError;
use crate::policy::{Policy, PolicyError, SelfGuard};
use crate::store::Store;

pub(crate) use admin::AdminService;
pub(crate) use approvals::{ApprovalsService, SINGLE_USE_WINDOW_US, approval_digest};
pub(crate) use audit::AuditService;
pub(crate) use budgets::BudgetsService;
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
    pub(crate) settings: Arc<Settings>,
    /// Queues alerts for the policy's webhook routes (durable outbox).
    pub(crate) alerts: Alerts,
    /// Rate-limit buckets this daemon last saw empty (the local fast path).
    pub(crate) rate_cache: Arc<rate_limits::RateCache>,
    /// What `--metrics-listen` serves.
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
}

/// Daemon settings the services read.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a pending approval waits for an approver, in microseconds.
    pub approval_timeout_us: i64,
    /// SHA-256 of the admin token, when one is configured.
    admin_token: Option<[u8; 32]>,
}

impl Settings {
    pub fn new(approval_timeout: std::time::Duration, admin_token: Option<&str>) -> Settings {
        Settings {
            approval_timeout_us: i64::try_from(approval_timeout.as_micros()).unwrap_or(i64::MAX),
            admin_token: admin_token.map(|t| Sha256::digest(t.as_bytes()).into()),
        }
    }

    /// Whether admin operations need the admin token.
    pub fn has_admin_token(&self) -> bool {
        self.admin_token.is_some()
    }

    /// Admin operations (policy reload, approving, denying) need the admin token once
    /// one is configured; without one the daemon is in development mode and lets any
    /// caller do them.
    pub(crate) fn check_admin<T>(&self, request: &Request<T>, what: &str) -> Result<(), ApiError> {
        match self.admin_token {
            None => Ok(()),
            Some(expected) => presented_token_matches(request, &expected).then_some(()).ok_or_else(|| {
                ApiError::Unauthenticated(format!(
                    "{what} needs the admin token (`authorization: Bearer <token>`); it was missing or wrong"
                ))
            }),
        }
    }

    /// Operations that must never run unauthenticated (break-glass): the admin token
    /// must be configured and presented.
    pub(crate) fn require_admin<T>(
        &self,
        request: &Request<T>,
        what: &str,
    ) -> Result<(), ApiError> {
        if self.admin_token.is_none() {
            return Err(ApiError::Conflict(format!(
                "{what} is disabled: wardend has no admin token (start it with --admin-token-file)"
            )));
        }
        self.check_admin(request, what)
    }
}

/// Compares the bearer token of `request` with the expected digest in constant time.
fn presented_token_matches<T>(request: &Request<T>, expected: &[u8; 32]) -> bool {
    let Some(value) = request
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(token) = value.strip_prefix("Bearer ") else {
        return false;
    };
    let presented: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
    presented
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// Microseconds since the Unix epoch.
pub(crate) fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}
