//! The one place request-path errors become gRPC statuses. Clients get a clean message;
//! the log gets the detail; database internals never reach a client.

use tonic::Status;

use crate::audit::AuditError;
use crate::normalize::InvalidAction;
use crate::policy::PolicyError;
use crate::store::StoreError;

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
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        match e {
            ApiError::Invalid(e) => Status::invalid_argument(e.to_string()),
            ApiError::BadRequest(m) => Status::invalid_argument(m),
            ApiError::Audit(e) => {
                tracing::error!(error = %e, "refusing a decision: its audit record was not committed");
                Status::unavailable(
                    "decision refused: its audit record could not be committed (fail-closed); retry later",
                )
            }
            ApiError::Store(e) => {
                tracing::error!(error = %e, "storage error");
                Status::unavailable("the audit store is unavailable; retry later")
            }
            ApiError::Policy(e) => Status::failed_precondition(format!(
                "policy rejected, the previous policy stays in force: {e}"
            )),
        }
    }
}
