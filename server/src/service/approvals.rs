//! `warden.v1.Approvals`, and the step of the decision path that applies approvals and
//! break-glass grants to what the policy decided ([`gate`]).
//!
//! An approval is bound to a digest of the normalized action (which includes tenant,
//! agent and session) and the policy version, so a grant allows exactly the action that
//! was asked about, by the agent that asked, in its session, under the policy that
//! asked for approval; a reload that changes the policy asks again.

use std::pin::Pin;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use warden_proto::v1::{
    Approval, ApproveRequest, DenyApprovalRequest, GetApprovalRequest, ListApprovalsRequest,
    ListApprovalsResponse, WatchApprovalRequest, approvals_server::Approvals,
};

use super::{Shared, now_us};
use crate::audit::{KIND_APPROVAL, RecordBody};
use crate::error::ApiError;
use crate::normalize::NormalizedAction;
use crate::policy::{Outcome, Policy, Verdict};
use crate::redact;
use crate::store::{
    ApprovalDecision, ApprovalFilter, ApprovalRow, ApprovalStatus, BreakGlassRow, NewApproval,
};

/// A single-use grant must be used within this long after it is granted.
pub(crate) const SINGLE_USE_WINDOW_US: i64 = 3_600 * 1_000_000;
/// Longest time-limited grant an approver can give.
const MAX_GRANT_TTL_SECS: u64 = 7 * 86_400;
/// Longest a Watch lasts, and how often it looks at the approval.
const MAX_WATCH: Duration = Duration::from_secs(3_600);
const WATCH_POLL: Duration = Duration::from_millis(200);
/// Longest approver name and note.
const MAX_NAME_BYTES: usize = 256;
const MAX_NOTE_BYTES: usize = 2_048;

/// What the policy's outcome became after break-glass and approvals.
#[derive(Debug)]
pub(crate) struct Gated {
    pub(crate) verdict: Verdict,
    pub(crate) reason: String,
    pub(crate) approval_id: String,
    pub(crate) break_glass_id: String,
}

/// What [`gate`] makes of `outcome` when it has nothing to look up: the outcome as it
/// is. `None` when it asks for approval, or when a break-glass grant could lift it and
/// one may be in force (`break_glass_possible`); only [`gate`] can answer then.
pub(crate) fn gate_without_lookup(outcome: &Outcome, break_glass_possible: bool) -> Option<Gated> {
    let liftable = outcome.under_break_glass().is_some() && break_glass_possible;
    (!liftable && outcome.verdict != Verdict::RequireApproval).then(|| as_decided(outcome))
}

/// The outcome as the gate leaves it when nothing changes it.
pub(crate) fn as_decided(outcome: &Outcome) -> Gated {
    Gated {
        verdict: outcome.verdict,
        reason: outcome.reason.clone(),
        approval_id: String::new(),
        break_glass_id: String::new(),
    }
}

/// Applies break-glass grants and approvals to a policy outcome:
///
/// 1. A refusal (deny, require_approval) in the scope of an active break-glass grant
///    drops to what the `unbreakable` rules alone decide (`Outcome::floor`) — allow, or
///    require_approval. The grant's use is counted and the decision names it.
/// 2. A require_approval looks for an approval of this exact action: a usable grant
///    turns it into allow (using it up if single-use); a pending request is returned
///    again rather than duplicated; a refusal by an approver makes it a deny until the
///    request would have expired; otherwise a new pending approval is created.
pub(crate) async fn gate(
    shared: &Shared,
    action: &NormalizedAction,
    policy: &Policy,
    outcome: &Outcome,
    now: i64,
) -> Result<Gated, ApiError> {
    if let Some(gated) = gate_without_lookup(outcome, true) {
        return Ok(gated);
    }
    let mut gated = as_decided(outcome);
    if let Some(lifted) = outcome.under_break_glass()
        && let Some(grant) = shared
            .store
            .break_glass_use(&action.tenant, &action.agent, &action.session, now)
            .await?
    {
        gated.verdict = lifted;
        gated.break_glass_id = grant.id.clone();
        gated.reason = format!(
            "break-glass {} (issued by {}: {}) overrides {}: {}",
            grant.id, grant.issued_by, grant.reason, outcome.verdict, outcome.reason
        );
        if lifted == Verdict::RequireApproval {
            gated.reason.push_str(&format!(
                "; unbreakable rules still require approval: {}",
                outcome.floor_rules.join(", ")
            ));
        }
    }
    if gated.verdict != Verdict::RequireApproval {
        return Ok(gated);
    }

    let digest = approval_digest(action, policy.version());
    let known = shared.store.approvals_for_digest(&digest, now).await?;
    for a in known
        .iter()
        .filter(|a| a.status_at(now) == ApprovalStatus::Approved)
    {
        if let Some(by) = shared.store.approval_use(&a.id, now).await? {
            gated.verdict = Verdict::Allow;
            gated.approval_id = a.id.clone();
            gated.reason = format!(
                "approved by {by} (approval {}); the policy asked: {}",
                a.id, gated.reason
            );
            return Ok(gated);
        }
    }
    if let Some(pending) = known
        .iter()
        .find(|a| a.status_at(now) == ApprovalStatus::Pending)
    {
        // The id travels in Decision.approval_id and the record's approval_id.
        gated.approval_id = pending.id.clone();
        return Ok(gated);
    }
    if let Some(denied) = known
        .iter()
        .find(|a| a.status_at(now) == ApprovalStatus::Denied)
    {
        gated.verdict = Verdict::Deny;
        gated.approval_id = denied.id.clone();
        gated.reason = format!(
            "approval {} was denied by {}{}; the policy asked: {}",
            denied.id,
            denied.decided_by,
            note_suffix(&denied.decision_note),
            gated.reason
        );
        return Ok(gated);
    }
    let id = crate::ids::new_id("apr");
    shared
        .store
        .approval_create(&NewApproval {
            id: &id,
            digest: &digest,
            tenant: &action.tenant,
            agent: &action.agent,
            session: &action.session,
            channel: action.channel.as_str(),
            action: &redact::action_json(action),
            rule_ids: &outcome.matched_rules,
            reason: &outcome.reason,
            policy_version: policy.version(),
            created_us: now,
            expires_us: now.saturating_add(shared.settings.approval_timeout_us),
        })
        .await?;
    gated.approval_id = id;
    Ok(gated)
}

/// SHA-256 over the normalized action (tenant, agent, session and everything the
/// policy can see, secrets included: two commands that differ only in a token are two
/// actions) and the policy version.
pub(crate) fn approval_digest(action: &NormalizedAction, policy_version: &str) -> String {
    #[derive(Serialize)]
    struct Bound<'a> {
        purpose: &'static str,
        policy_version: &'a str,
        action: &'a NormalizedAction,
    }
    let bound = Bound {
        purpose: "warden approval v1",
        policy_version,
        action,
    };
    // A struct of strings, maps and JSON values always serializes.
    let json = serde_json::to_vec(&bound).unwrap_or_default();
    hex::encode(Sha256::digest(&json))
}

fn note_suffix(note: &str) -> String {
    if note.is_empty() {
        String::new()
    } else {
        format!(" ({note})")
    }
}

pub(crate) struct ApprovalsService {
    shared: Shared,
}

impl ApprovalsService {
    pub(crate) fn new(shared: Shared) -> Self {
        ApprovalsService { shared }
    }

    async fn load(&self, id: &str) -> Result<ApprovalRow, ApiError> {
        let id = id.trim();
        if id.is_empty() {
            return Err(ApiError::BadRequest("id: is required".into()));
        }
        self.shared
            .store
            .approval_get(id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no approval {id:?}")))
    }

    /// Approve or deny: checks, then one conditional update, then the audit record.
    async fn decide(
        &self,
        id: &str,
        approver: &str,
        note: &str,
        grant: Option<u64>,
    ) -> Result<Approval, ApiError> {
        let approver = approver.trim();
        if approver.is_empty() || approver.len() > MAX_NAME_BYTES {
            return Err(ApiError::BadRequest(format!(
                "approver: is required (1-{MAX_NAME_BYTES} bytes): who approves or denies"
            )));
        }
        if note.len() > MAX_NOTE_BYTES || note.chars().any(|c| c.is_control() && c != '\n') {
            return Err(ApiError::BadRequest(format!(
                "note: at most {MAX_NOTE_BYTES} printable bytes"
            )));
        }
        let row = self.load(id).await?;
        if approver.eq_ignore_ascii_case(&row.agent) {
            return Err(ApiError::Forbidden(format!(
                "agent {:?} requested approval {} and cannot decide it; another approver must",
                row.agent, row.id
            )));
        }
        let now = now_us();
        let status = row.status_at(now);
        if status != ApprovalStatus::Pending {
            return Err(ApiError::Conflict(format!(
                "approval {} is {}, not pending",
                row.id,
                status.as_str()
            )));
        }
        let (uses_left, grant_expires_us, what) = match grant {
            None => (None, 0, "denied".to_string()),
            Some(0) => (
                Some(1),
                now.saturating_add(SINGLE_USE_WINDOW_US),
                "approved for one use".to_string(),
            ),
            Some(ttl) if ttl <= MAX_GRANT_TTL_SECS => (
                None,
                now.saturating_add(ttl as i64 * 1_000_000),
                format!("approved for {ttl}s"),
            ),
            Some(_) => {
                return Err(ApiError::BadRequest(format!(
                    "ttl_seconds: at most {MAX_GRANT_TTL_SECS} (7 days)"
                )));
            }
        };
        let decided = self
            .shared
            .store
            .approval_decide(
                &row.id,
                &ApprovalDecision {
                    approve: grant.is_some(),
                    by: approver,
                    note,
                    now,
                    uses_left,
                    grant_expires_us,
                },
            )
            .await?;
        if !decided {
            return Err(ApiError::Conflict(format!(
                "approval {} was decided by someone else or expired meanwhile",
                row.id
            )));
        }
        self.shared
            .audit
            .append(RecordBody {
                time_us: now,
                kind: KIND_APPROVAL.into(),
                tenant: row.tenant.clone(),
                agent: row.agent.clone(),
                session: row.session.clone(),
                channel: row.channel.clone(),
                action: row.action.clone(),
                rule_ids: row.rule_ids.clone(),
                reason: format!("{what} by {approver}{}", note_suffix(note)),
                policy_version: row.policy_version.clone(),
                approval_id: row.id.clone(),
                ..RecordBody::default()
            })
            .await?;
        let row = self.load(&row.id).await?;
        Ok(to_proto(&row, now))
    }
}

/// An approval as the API shows it.
fn to_proto(a: &ApprovalRow, now: i64) -> Approval {
    use warden_proto::v1::ApprovalStatus as P;
    let status = match a.status_at(now) {
        ApprovalStatus::Pending => P::Pending,
        ApprovalStatus::Approved => P::Approved,
        ApprovalStatus::Denied => P::Denied,
        ApprovalStatus::Expired => P::Expired,
        ApprovalStatus::Used => P::Used,
    };
    let small = |n: i64| u32::try_from(n.max(0)).unwrap_or(u32::MAX);
    Approval {
        id: a.id.clone(),
        status: status.into(),
        tenant: a.tenant.clone(),
        agent: a.agent.clone(),
        session: a.session.clone(),
        channel: a.channel.clone(),
        action_json: a.action.clone(),
        rule_ids: a.rule_ids.clone(),
        reason: a.reason.clone(),
        policy_version: a.policy_version.clone(),
        digest: a.digest.clone(),
        created_us: a.created_us,
        expires_us: a.expires_us,
        decided_by: a.decided_by.clone(),
        decided_us: a.decided_us,
        decision_note: a.decision_note.clone(),
        uses_left: a.uses_left.map_or(0, small),
        grant_expires_us: a.grant_expires_us,
        uses: small(a.uses),
    }
}

/// Break-glass grants as the API shows them.
pub(crate) fn grant_to_proto(g: &BreakGlassRow, now: i64) -> warden_proto::v1::BreakGlassGrant {
    warden_proto::v1::BreakGlassGrant {
        id: g.id.clone(),
        tenant: g.tenant.clone(),
        agent: g.agent.clone(),
        session: g.session.clone(),
        reason: g.reason.clone(),
        issued_by: g.issued_by.clone(),
        created_us: g.created_us,
        expires_us: g.expires_us,
        revoked_us: g.revoked_us,
        revoked_by: g.revoked_by.clone(),
        uses: u64::try_from(g.uses).unwrap_or(0),
        active: g.active_at(now),
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<Approval, Status>> + Send>>;

#[tonic::async_trait]
impl Approvals for ApprovalsService {
    async fn list(
        &self,
        request: Request<ListApprovalsRequest>,
    ) -> Result<Response<ListApprovalsResponse>, Status> {
        use warden_proto::v1::ApprovalStatus as P;
        let r = request.into_inner();
        let status = match r.status() {
            P::Unspecified => None,
            P::Pending => Some(ApprovalStatus::Pending),
            P::Approved => Some(ApprovalStatus::Approved),
            P::Denied => Some(ApprovalStatus::Denied),
            P::Expired => Some(ApprovalStatus::Expired),
            P::Used => Some(ApprovalStatus::Used),
        };
        let filter = ApprovalFilter {
            status,
            tenant: r.tenant.trim().into(),
            agent: r.agent.trim().into(),
            session: r.session.trim().into(),
        };
        let limit = match r.limit {
            0 => 100,
            n => n.min(1000),
        };
        let now = now_us();
        let rows = self
            .shared
            .store
            .approval_list(&filter, now, limit)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(ListApprovalsResponse {
            approvals: rows.iter().map(|a| to_proto(a, now)).collect(),
        }))
    }

    async fn get(
        &self,
        request: Request<GetApprovalRequest>,
    ) -> Result<Response<Approval>, Status> {
        let row = self.load(&request.into_inner().id).await?;
        Ok(Response::new(to_proto(&row, now_us())))
    }

    async fn approve(
        &self,
        request: Request<ApproveRequest>,
    ) -> Result<Response<Approval>, Status> {
        self.shared.settings.check_admin(&request, "approving")?;
        let r = request.into_inner();
        let a = self
            .decide(&r.id, &r.approver, &r.note, Some(r.ttl_seconds))
            .await?;
        tracing::info!(approval = %a.id, approver = %r.approver.trim(), "approval granted");
        Ok(Response::new(a))
    }

    async fn deny(
        &self,
        request: Request<DenyApprovalRequest>,
    ) -> Result<Response<Approval>, Status> {
        self.shared.settings.check_admin(&request, "denying")?;
        let r = request.into_inner();
        let a = self.decide(&r.id, &r.approver, &r.note, None).await?;
        tracing::info!(approval = %a.id, approver = %r.approver.trim(), "approval denied");
        Ok(Response::new(a))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<WatchApprovalRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let r = request.into_inner();
        let first = self.load(&r.id).await?;
        let timeout = match r.timeout_ms {
            0 => MAX_WATCH,
            ms => Duration::from_millis(ms).min(MAX_WATCH),
        };
        let store = self.shared.store.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        // Polls the database, so an approval decided on another replica is seen too.
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            let mut last: Option<Approval> = None;
            let mut row = first;
            loop {
                let now = now_us();
                let shown = to_proto(&row, now);
                let settled = row.status_at(now) != ApprovalStatus::Pending;
                if last.as_ref() != Some(&shown) {
                    if tx.send(Ok(shown.clone())).await.is_err() {
                        return;
                    }
                    last = Some(shown);
                }
                if settled || tokio::time::Instant::now() >= deadline {
                    return;
                }
                tokio::select! {
                    () = tokio::time::sleep(WATCH_POLL) => {}
                    () = tx.closed() => return,
                }
                row = match store.approval_get(&row.id).await {
                    Ok(Some(r)) => r,
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.send(Err(ApiError::from(e).into())).await;
                        return;
                    }
                };
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}
