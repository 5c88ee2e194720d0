//! `warden.v1.Decisions`: the hot path.

use serde::Serialize;
use tonic::{Request, Response, Status};
use warden_proto::v1::{
    AuditRef, Decision, EvaluateRequest, EvaluateResponse, ReportRequest, ReportResponse,
    ResultMeta, decisions_server::Decisions,
};

use super::{Shared, now_us};
use crate::audit::{KIND_EVALUATE, KIND_REPORT, RecordBody};
use crate::error::ApiError;
use crate::normalize::{self, NormalizedAction};
use crate::policy::Verdict;
use crate::redact;
use crate::session::{self, Escalation, Observation, SessionState, Zone};
use crate::store::SessionKey;

/// Most tags a report may carry, and the longest tag.
const MAX_TAGS: usize = 256;
const MAX_TAG_BYTES: usize = 256;

pub(crate) struct DecisionsService {
    shared: Shared,
}

impl DecisionsService {
    pub(crate) fn new(shared: Shared) -> Self {
        DecisionsService { shared }
    }

    async fn evaluate(&self, req: EvaluateRequest) -> Result<Decision, ApiError> {
        // 1. Normalize once; nothing after this is sloppy.
        let action = normalize::normalize(req.action.as_ref())?;
        // 2. Snapshot the live policy: this request finishes on it even if a reload lands.
        let policy = self.shared.policy.current();
        // 3. Under the session's lock: load its state, decide, store the next state.
        //    Zone triggers fire before the rules, so the action is judged in the zone it
        //    brings the session into.
        let now = now_us();
        let guard = &self.shared.guard;
        let judgement = self
            .shared
            .store
            .session_step(&session_key(&action), |stored| {
                let state = live_session(stored, &policy, now)?;
                let j = session::judge(&policy, guard, &state, &action, now);
                let zone = j.next.zone;
                Ok::<_, ApiError>((j.next, (j.outcome, j.escalations, zone)))
            })
            .await?;
        let (outcome, escalations, zone) = judgement;
        // 4. Break-glass grants and approvals may change a refusal (see `gate`).
        let gated = super::approvals::gate(&self.shared, &action, &policy, &outcome, now).await?;
        let reason = explain(&gated.reason, &escalations);
        // 5. Audit; the decision exists only once its record is committed.
        let body = RecordBody {
            time_us: now,
            kind: KIND_EVALUATE.into(),
            verdict: gated.verdict.as_str().into(),
            rule_ids: outcome.matched_rules.clone(),
            reason: reason.clone(),
            policy_version: policy.version().into(),
            zone: zone.as_str().into(),
            approval_id: gated.approval_id.clone(),
            break_glass_id: gated.break_glass_id.clone(),
            ..identity_body(&action)
        };
        let committed = self.shared.audit.append(body).await?;
        // 6. Answer.
        let redactions = if gated.verdict == Verdict::AllowWithRedaction {
            outcome.redactions
        } else {
            Vec::new()
        };
        Ok(Decision {
            verdict: gated.verdict.to_proto().into(),
            matched_rules: outcome.matched_rules,
            reason,
            policy_version: policy.version().into(),
            zone: zone.to_proto().into(),
            id: Some(AuditRef {
                seq: committed.seq,
                hash: committed.hash,
            }),
            approval_id: gated.approval_id,
            break_glass_id: gated.break_glass_id,
            redactions: redactions
                .into_iter()
                .map(|r| warden_proto::v1::Redaction {
                    rule_id: r.rule_id,
                    pattern: r.pattern,
                    replacement: r.replacement,
                })
                .collect(),
            ..Default::default()
        })
    }

    async fn report(&self, req: ReportRequest) -> Result<ReportResponse, ApiError> {
        let action = normalize::normalize(req.action.as_ref())?;
        let result = req
            .result
            .as_ref()
            .ok_or_else(|| ApiError::BadRequest("result: is required".into()))?;
        let (result_json, observation) = result_json(result)?;
        let policy = self.shared.policy.current();
        let now = now_us();
        let (zone, escalations) = self
            .shared
            .store
            .session_step(&session_key(&action), |stored| {
                // A result still counts after the session ended: what was read was read.
                let state = stored.unwrap_or_else(|| SessionState::new(now));
                let (next, fired) = session::observe(&policy, &state, &observation, now);
                let zone = next.zone;
                Ok::<_, ApiError>((next, (zone, fired)))
            })
            .await?;
        let body = RecordBody {
            time_us: now,
            kind: KIND_REPORT.into(),
            policy_version: policy.version().into(),
            result: result_json,
            decision_seq: req.decision_seq,
            zone: zone.as_str().into(),
            reason: explain("", &escalations),
            ..identity_body(&action)
        };
        let committed = self.shared.audit.append(body).await?;
        Ok(ReportResponse {
            id: Some(AuditRef {
                seq: committed.seq,
                hash: committed.hash,
            }),
            zone: zone.to_proto().into(),
        })
    }
}

/// The session an action belongs to.
pub(super) fn session_key(action: &NormalizedAction) -> SessionKey {
    SessionKey {
        tenant: action.tenant.clone(),
        agent: action.agent.clone(),
        session: action.session.clone(),
    }
}

/// The stored session, or a new one; an ended session takes no more actions.
fn live_session(
    stored: Option<SessionState>,
    policy: &crate::policy::Policy,
    now: i64,
) -> Result<SessionState, ApiError> {
    match stored {
        None => Ok(SessionState::new(now)),
        Some(s) => match s.ended(policy, now) {
            Some(why) => Err(ApiError::SessionEnded(why)),
            None => Ok(s),
        },
    }
}

/// The verdict's reason, followed by any zone escalation the action caused.
fn explain(reason: &str, escalations: &[Escalation]) -> String {
    let mut out = reason.to_string();
    for e in escalations {
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(&format!(
            "session escalated to {} by {} ({})",
            e.zone, e.trigger, e.reason
        ));
    }
    out
}

/// The record fields every kind shares, taken from the normalized action.
fn identity_body(action: &NormalizedAction) -> RecordBody {
    RecordBody {
        time_us: 0,
        kind: String::new(),
        tenant: action.tenant.clone(),
        agent: action.agent.clone(),
        session: action.session.clone(),
        channel: action.channel.as_str().into(),
        action: redact::action_json(action),
        verdict: String::new(),
        rule_ids: Vec::new(),
        reason: String::new(),
        policy_version: String::new(),
        zone: Zone::Safe.as_str().into(),
        approval_id: String::new(),
        break_glass_id: String::new(),
        result: String::new(),
        decision_seq: 0,
    }
}

/// ResultMeta as canonical JSON, after validation, and as the zone triggers see it.
fn result_json(r: &ResultMeta) -> Result<(String, Observation), ApiError> {
    if r.tags.len() > MAX_TAGS {
        return Err(ApiError::BadRequest(format!(
            "result.tags: has {} entries; the limit is {MAX_TAGS}",
            r.tags.len()
        )));
    }
    let mut tags = Vec::with_capacity(r.tags.len());
    for tag in &r.tags {
        let tag = tag.trim().to_ascii_lowercase();
        if tag.is_empty() || tag.len() > MAX_TAG_BYTES || tag.chars().any(char::is_control) {
            return Err(ApiError::BadRequest(format!(
                "result.tags: {tag:?} is not a valid tag (1-{MAX_TAG_BYTES} printable bytes)"
            )));
        }
        tags.push(tag);
    }
    tags.sort();
    tags.dedup();
    let usage = r.usage.unwrap_or_default();
    if !usage.cost_usd.is_finite() || usage.cost_usd < 0.0 {
        return Err(ApiError::BadRequest(
            "result.usage.cost_usd: must be a finite, non-negative number".into(),
        ));
    }
    if r.error.len() > 4096 || r.destination.len() > 4096 {
        return Err(ApiError::BadRequest(
            "result.error and result.destination: at most 4096 bytes each".into(),
        ));
    }

    #[derive(Serialize)]
    struct Canonical<'a> {
        sensitivity: &'static str,
        tags: Vec<String>,
        rows: u64,
        bytes: u64,
        egress: &'static str,
        destination: &'a str,
        tokens_in: u64,
        tokens_out: u64,
        cost_usd: f64,
        exit_code: Option<i32>,
        signal: Option<i32>,
        duration_ms: u64,
        stdout_bytes: u64,
        stderr_bytes: u64,
        error: std::borrow::Cow<'a, str>,
    }
    use warden_proto::v1::{Egress, Sensitivity};
    let sensitivity = match r.sensitivity() {
        Sensitivity::Unspecified => "",
        Sensitivity::Low => "low",
        Sensitivity::Medium => "medium",
        Sensitivity::High => "high",
    };
    let egress = match r.egress() {
        Egress::Unspecified => "",
        Egress::Internal => "internal",
        Egress::External => "external",
    };
    let canonical = Canonical {
        sensitivity,
        tags,
        rows: r.rows,
        bytes: r.bytes,
        egress,
        destination: r.destination.trim(),
        tokens_in: usage.tokens_in,
        tokens_out: usage.tokens_out,
        cost_usd: usage.cost_usd,
        exit_code: r.exit_code,
        signal: r.signal,
        duration_ms: r.duration_ms,
        stdout_bytes: r.stdout_bytes,
        stderr_bytes: r.stderr_bytes,
        error: redact::redact(&r.error),
    };
    let json = serde_json::to_string(&canonical)
        .map_err(|e| ApiError::BadRequest(format!("result: cannot be encoded: {e}")))?;
    let observation = Observation {
        sensitivity: sensitivity.into(),
        tags: canonical.tags,
        rows: r.rows,
        bytes: r.bytes,
        egress: egress.into(),
    };
    Ok((json, observation))
}

#[tonic::async_trait]
impl Decisions for DecisionsService {
    async fn evaluate(
        &self,
        request: Request<EvaluateRequest>,
    ) -> Result<Response<EvaluateResponse>, Status> {
        let decision = DecisionsService::evaluate(self, request.into_inner()).await?;
        Ok(Response::new(EvaluateResponse {
            decision: Some(decision),
        }))
    }

    async fn report(
        &self,
        request: Request<ReportRequest>,
    ) -> Result<Response<ReportResponse>, Status> {
        Ok(Response::new(
            DecisionsService::report(self, request.into_inner()).await?,
        ))
    }
}
