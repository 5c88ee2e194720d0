//! The one place request-path errors become gRPC statuses. Clients get a clean message;
//! the log gets the detail; database internals never reach a client.
//!
//! When the daemon itself could not decide (its audit store failed), the status carries
//! the metadata key [`CAUSE_KEY`] = [`CAUSE_AUDIT_STORE`], so an interceptor can tell
//! "wardend answered: no decision" from "wardend could not be reached" without parsing
//! messages (only the latter may be overridden by `--fail-open`).

use tonic::Status;

use crate::audit::AuditError;
use crate::normalize::InvalidAction;
use crate::policy::PolicyError;
use crate::store::StoreError;

/// Metadata key naming why the daemon produced no decision.
pub const CAUSE_KEY: &str = "warden-cause";
/// [`CAUSE_KEY`] value: the audit store could not commit the decision's record.
pub const CAUSE_AUDIT_STORE: &str = "audit-store";

fn audit_store_unavailable(message: &'static str) -> Status {
    let mut status = Status::unavailable(message);
    status.metadata_mut().insert(
        CAUSE_KEY,
        tonic::metadata::MetadataValue::from_static(CAUSE_AUDIT_STORE),
    );
    status
}

/// Errors a request can end in.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error(transparent)]
    Invalid(#[from] InvalidAction),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The session is closed or expired; the agent must open a new one.
    #[error("{0}")]
    SessionEnded(String),
    #[error("{0}")]
    NotFound(String),
    /// The caller may not do this (an agent approving its own request).
    #[error("{0}")]
    Forbidden(String),
    /// Admin operation without a valid admin token.
    #[error("{0}")]
    Unauthenticated(String),
    /// The operation does not fit the object's state (an approval already decided,
    /// break-glass not configured).
    #[error("{0}")]
    Conflict(String),
}

/// The refusal of a decision whose audit record was not committed.
fn audit_not_committed(e: &dyn std::fmt::Display) -> Status {
    tracing::error!(error = %e, "refusing a decision: its audit record was not committed");
    audit_store_unavailable(
        "decision refused: its audit record could not be committed (fail-closed); retry later",
    )
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        match e {
            ApiError::Invalid(e) => Status::invalid_argument(e.to_string()),
            ApiError::BadRequest(m) => Status::invalid_argument(m),
            ApiError::Audit(e) => audit_not_committed(&e),
            // The session step's batch carried the record (SQLite): the same refusal.
            ApiError::Store(e @ StoreError::AuditCommit(_)) => audit_not_committed(&e),
            ApiError::Store(e) => {
                tracing::error!(error = %e, "storage error");
                audit_store_unavailable("the audit store is unavailable; retry later")
            }
            ApiError::Policy(e) => Status::failed_precondition(format!(
                "policy rejected, the previous policy stays in force: {e}"
            )),
            ApiError::SessionEnded(m) => Status::failed_precondition(m),
            ApiError::NotFound(m) => Status::not_found(m),
            ApiError::Forbidden(m) => Status::permission_denied(m),
            ApiError::Unauthenticated(m) => Status::unauthenticated(m),
            ApiError::Conflict(m) => Status::failed_precondition(m),
        }
    }
}
