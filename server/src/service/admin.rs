//! `warden.v1.Admin`: policy reload and inspection.
//!
//! Until authentication is configured (a later issue), the daemon runs in development
//! mode and trusts every caller with these operations; it says so at start.

use tonic::{Request, Response, Status};
use warden_proto::v1::{
    GetPolicyRequest, GetPolicyResponse, ReloadPolicyRequest, ReloadPolicyResponse,
    admin_server::Admin,
};

use super::Shared;
use crate::error::ApiError;

pub(crate) struct AdminService {
    shared: Shared,
}

impl AdminService {
    pub(crate) fn new(shared: Shared) -> Self {
        AdminService { shared }
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn reload_policy(
        &self,
        _request: Request<ReloadPolicyRequest>,
    ) -> Result<Response<ReloadPolicyResponse>, Status> {
        let handle = self.shared.policy.clone();
        // Reading and compiling a file is blocking work.
        let result = tokio::task::spawn_blocking(move || handle.reload())
            .await
            .map_err(|e| Status::internal(format!("policy reload task failed: {e}")))?;
        match result {
            Ok(r) => {
                tracing::info!(previous = %r.previous_version, version = %r.version, "policy reloaded (admin request)");
                Ok(Response::new(ReloadPolicyResponse {
                    changed: r.previous_version != r.version,
                    policy_version: r.version,
                    previous_version: r.previous_version,
                }))
            }
            Err(e) => {
                tracing::warn!(error = %e, "policy reload rejected; keeping the previous policy");
                Err(ApiError::Policy(e).into())
            }
        }
    }

    async fn get_policy(
        &self,
        _request: Request<GetPolicyRequest>,
    ) -> Result<Response<GetPolicyResponse>, Status> {
        let policy = self.shared.policy.current();
        Ok(Response::new(GetPolicyResponse {
            policy_version: policy.version().into(),
            source: policy.source().into(),
            text: policy.text().into(),
        }))
    }
}
