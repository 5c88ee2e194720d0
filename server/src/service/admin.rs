//! `warden.v1.Admin`: policy reload and inspection, break-glass grants.
//!
//! Until authentication is configured (a later issue), callers are trusted, except that
//! once an admin token is configured (`--admin-token-file`) policy reload needs it, and
//! break-glass always needs it: without a token break-glass is off.

use tonic::{Request, Response, Status};
use warden_proto::v1::{
    BreakGlassGrant, BreakGlassRequest, GetPolicyRequest, GetPolicyResponse, ListBreakGlassRequest,
    ListBreakGlassResponse, ReloadPolicyRequest, ReloadPolicyResponse, RevokeBreakGlassRequest,
    admin_server::Admin,
};

use super::approvals::grant_to_proto;
use super::{Shared, now_us};
use crate::audit::{KIND_BREAK_GLASS, RecordBody};
use crate::error::ApiError;
use crate::normalize::identity;
use crate::store::BreakGlassRow;

/// Longest break-glass grant.
const MAX_BREAK_GLASS_SECS: u64 = 86_400;
/// Longest reason and name.
const MAX_REASON_BYTES: usize = 2_048;
const MAX_NAME_BYTES: usize = 256;

pub(crate) struct AdminService {
    shared: Shared,
}

impl AdminService {
    pub(crate) fn new(shared: Shared) -> Self {
        AdminService { shared }
    }

    async fn break_glass(&self, r: BreakGlassRequest) -> Result<BreakGlassGrant, ApiError> {
        let issued_by = bounded("issued_by", &r.issued_by, MAX_NAME_BYTES)?;
        let reason = bounded("reason", &r.reason, MAX_REASON_BYTES)?;
        if r.ttl_seconds == 0 || r.ttl_seconds > MAX_BREAK_GLASS_SECS {
            return Err(ApiError::BadRequest(format!(
                "ttl_seconds: must be 1 to {MAX_BREAK_GLASS_SECS} (24 hours)"
            )));
        }
        let tenant = identity("tenant", &r.tenant)?;
        let named = |field, v: &str| -> Result<String, ApiError> {
            Ok(if v.trim().is_empty() {
                String::new()
            } else {
                identity(field, v)?
            })
        };
        let agent = named("agent", &r.agent)?;
        let session = named("session", &r.session)?;
        if agent.is_empty() && session.is_empty() && !r.tenant_wide {
            return Err(ApiError::BadRequest(
                "scope: name an agent or a session, or set tenant_wide for the whole tenant".into(),
            ));
        }
        let now = now_us();
        let grant = BreakGlassRow {
            id: crate::ids::new_id("bg"),
            tenant,
            agent,
            session,
            reason,
            issued_by,
            created_us: now,
            expires_us: now.saturating_add(r.ttl_seconds as i64 * 1_000_000),
            revoked_us: 0,
            revoked_by: String::new(),
            uses: 0,
        };
        self.shared.store.break_glass_create(&grant).await?;
        self.audit_grant(
            &grant,
            now,
            format!(
                "break-glass issued by {} for {}s, scope {}: {}",
                grant.issued_by,
                r.ttl_seconds,
                scope(&grant),
                grant.reason
            ),
        )
        .await?;
        tracing::warn!(grant = %grant.id, issued_by = %grant.issued_by, scope = %scope(&grant), ttl_s = r.ttl_seconds, reason = %grant.reason, "break-glass issued");
        Ok(grant_to_proto(&grant, now))
    }

    async fn revoke(&self, r: RevokeBreakGlassRequest) -> Result<BreakGlassGrant, ApiError> {
        let by = bounded("revoked_by", &r.revoked_by, MAX_NAME_BYTES)?;
        let id = r.id.trim();
        let now = now_us();
        let grant = self
            .shared
            .store
            .break_glass_revoke(id, &by, now)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no break-glass grant {id:?}")))?;
        if grant.revoked_us == now {
            let why = if r.reason.trim().is_empty() {
                String::new()
            } else {
                format!(": {}", r.reason.trim())
            };
            self.audit_grant(&grant, now, format!("break-glass revoked by {by}{why}"))
                .await?;
            tracing::warn!(grant = %grant.id, revoked_by = %by, "break-glass revoked");
        }
        Ok(grant_to_proto(&grant, now))
    }

    async fn audit_grant(
        &self,
        g: &BreakGlassRow,
        now: i64,
        reason: String,
    ) -> Result<(), ApiError> {
        self.shared
            .audit
            .append(RecordBody {
                time_us: now,
                kind: KIND_BREAK_GLASS.into(),
                tenant: g.tenant.clone(),
                agent: g.agent.clone(),
                session: g.session.clone(),
                reason,
                policy_version: self.shared.policy.current().version().into(),
                break_glass_id: g.id.clone(),
                ..RecordBody::default()
            })
            .await?;
        Ok(())
    }
}

/// A required, trimmed, printable text field of at most `max` bytes.
fn bounded(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() || v.len() > max || v.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "{field}: is required (1-{max} printable bytes)"
        )));
    }
    Ok(v.to_string())
}

/// A grant's scope in words.
fn scope(g: &BreakGlassRow) -> String {
    match (g.agent.as_str(), g.session.as_str()) {
        ("", "") => format!("tenant {}", g.tenant),
        (agent, "") => format!("tenant {} agent {agent}", g.tenant),
        ("", session) => format!("tenant {} session {session}", g.tenant),
        (agent, session) => format!("tenant {} agent {agent} session {session}", g.tenant),
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn reload_policy(
        &self,
        request: Request<ReloadPolicyRequest>,
    ) -> Result<Response<ReloadPolicyResponse>, Status> {
        self.shared
            .settings
            .check_admin(&request, "reloading the policy")?;
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

    async fn break_glass(
        &self,
        request: Request<BreakGlassRequest>,
    ) -> Result<Response<BreakGlassGrant>, Status> {
        self.shared
            .settings
            .require_admin(&request, "break-glass")?;
        Ok(Response::new(
            AdminService::break_glass(self, request.into_inner()).await?,
        ))
    }

    async fn revoke_break_glass(
        &self,
        request: Request<RevokeBreakGlassRequest>,
    ) -> Result<Response<BreakGlassGrant>, Status> {
        self.shared
            .settings
            .require_admin(&request, "revoking break-glass")?;
        Ok(Response::new(self.revoke(request.into_inner()).await?))
    }

    async fn list_break_glass(
        &self,
        request: Request<ListBreakGlassRequest>,
    ) -> Result<Response<ListBreakGlassResponse>, Status> {
        let now = now_us();
        let grants = self
            .shared
            .store
            .break_glass_list(request.into_inner().all, now)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(ListBreakGlassResponse {
            grants: grants.iter().map(|g| grant_to_proto(g, now)).collect(),
        }))
    }
}
