//! `warden.v1.Decisions`: the hot path.

mod alerts;
mod limits;

use serde::Serialize;
use tonic::{Request, Response, Status};
use warden_proto::v1::{
    AuditRef, Decision, EvaluateRequest, EvaluateResponse, NeverAllowedRequest,
    NeverAllowedResponse, ReportRequest, ReportResponse, ResultMeta, decisions_server::Decisions,
};

use super::budgets;
use super::{Shared, now_us};
use crate::audit::{Committed, KIND_EVALUATE, KIND_REPORT, KIND_REPORT_REJECTED, RecordBody};
use crate::error::ApiError;
use crate::normalize::{self, NormalizedAction};
use crate::policy::Verdict;
use crate::redact;
use crate::session::{self, Escalation, Observation, SessionState, Zone};
use crate::store::{SessionKey, Settlement};

/// The most one report may claim; more is refused as absurd.
const MAX_REPORTED_TOKENS: u64 = 100_000_000;
const MAX_REPORTED_BYTES: u64 = 1 << 50;
const MAX_REPORTED_ROWS: u64 = 1_000_000_000_000;
const MAX_REPORTED_DURATION_MS: u64 = 30 * 86_400_000;
const MAX_REPORTED_COST_USD: f64 = 1_000_000.0;

/// Most tags a report may carry, and the longest tag.
const MAX_TAGS: usize = 256;
const MAX_TAG_BYTES: usize = 256;
/// Most tool names one NeverAllowed request may ask about.
const MAX_NEVER_ALLOWED_TOOLS: usize = 4096;

pub(crate) struct DecisionsService {
    shared: Shared,
}

impl DecisionsService {
    pub(crate) fn new(shared: Shared) -> Self {
        DecisionsService { shared }
    }

    async fn evaluate(&self, req: EvaluateRequest) -> Result<Decision, ApiError> {
        let arrived = std::time::Instant::now();
        // 1. Normalize once; nothing after this is sloppy.
        let action = normalize::normalize(req.action.as_ref())?;
        let (body, decided) = self.decide(action, arrived).await?;
        // 6. Audit; the decision exists only once its record is committed.
        let committed = self.shared.audit.append(body).await?;
        Ok(self.answer(decided, committed).await)
    }

    /// Steps 2-5 of an Evaluate: everything up to its audit record, which the caller
    /// commits (alone, or with a report and its other follow-ups) before [`answer`].
    ///
    /// [`answer`]: DecisionsService::answer
    async fn decide(
        &self,
        action: NormalizedAction,
        arrived: std::time::Instant,
    ) -> Result<(RecordBody, Decided), ApiError> {
        let action = std::sync::Arc::new(action);
        budgets::check_estimates(&action)?;
        // 2. Snapshot the live policy: this request finishes on it even if a reload lands.
        let policy = self.shared.policy.current();
        // 3. Under the session's lock: load its state, decide, store the next state.
        //    Zone triggers fire before the rules, so the action is judged in the zone it
        //    brings the session into. (On SQLite the step runs on the store's step
        //    writer, so it owns what it reads.)
        let clock = std::time::Instant::now();
        let now = now_us();
        let shared = &self.shared;
        let (judged, admitted) = {
            let (policy, action) = (policy.clone(), action.clone());
            let (guard, rate_cache) = (shared.guard.clone(), shared.rate_cache.clone());
            self.shared
                .store
                .session_step_admit(&session_key(&action), move |stored| {
                    let state = live_session(stored, &policy, now)?;
                    let j = session::judge(&policy, &guard, &state, &action, now);
                    let zone = j.next.zone;
                    let budgets = picked(policy.budgets(), &j.budgets);
                    let rate_limits = picked(policy.rate_limits(), &j.rate_limits);
                    // 5a. An action the policy lets run is admitted against its rate
                    //     limits and budgets in this same transaction (the gate never
                    //     changes an allow); see `decisions/limits.rs`.
                    let runs = runs(j.outcome.verdict);
                    let prepared = if runs {
                        limits::prepare(&rate_cache, &rate_limits, &budgets, &action, now)?
                    } else {
                        limits::Prepared::Nothing
                    };
                    let (plan, fast_refusal) = match prepared {
                        limits::Prepared::Admit(plan) => (Some(plan), None),
                        limits::Prepared::Refused(refusal) => (None, Some(refusal)),
                        limits::Prepared::Nothing => (None, None),
                    };
                    let judged = Judged {
                        outcome: j.outcome,
                        escalations: j.escalations,
                        zone,
                        budgets: j.budgets,
                        rate_limits: j.rate_limits,
                        admitted_in_step: runs,
                        plan: plan.clone(),
                        fast_refusal,
                    };
                    Ok::<_, ApiError>((j.next, judged, plan))
                })
                .await?
        };
        let Judged {
            outcome,
            escalations,
            zone,
            budgets,
            rate_limits,
            admitted_in_step,
            plan,
            fast_refusal,
        } = judged;
        let budgets = picked(policy.budgets(), &budgets);
        let rate_limits = picked(policy.rate_limits(), &rate_limits);
        // 4. Break-glass grants and approvals may change a refusal (see `gate`).
        let mut gated =
            super::approvals::gate(&self.shared, &action, &policy, &outcome, now).await?;
        // 5b. What admission decided; a refusal the gate lifted is admitted now, on its
        //     own. An empty bucket or a spent hard budget refuses the action.
        let mut rule_ids = outcome.matched_rules.clone();
        let admission = match (admitted, plan, fast_refusal) {
            (Some(result), Some(plan), _) => {
                limits::finish(
                    shared,
                    &rate_limits,
                    &budgets,
                    &action,
                    &plan,
                    result,
                    clock,
                )
                .await?
            }
            (_, _, Some(refusal)) => refusal,
            _ if !admitted_in_step && runs(gated.verdict) => {
                limits::admit(shared, &rate_limits, &budgets, &action, now, clock).await?
            }
            _ => limits::Admission::default(),
        };
        if let Some(refusal) = &admission.refusal {
            gated.verdict = Verdict::Deny;
            gated.reason = refusal.reason.clone();
            rule_ids = vec![refusal.rule.clone()];
        }
        let reason = explain(&gated.reason, &escalations);
        let body = RecordBody {
            time_us: now,
            kind: KIND_EVALUATE.into(),
            verdict: gated.verdict.as_str().into(),
            rule_ids: rule_ids.clone(),
            reason: reason.clone(),
            policy_version: policy.version().into(),
            zone: zone.as_str().into(),
            approval_id: gated.approval_id.clone(),
            break_glass_id: gated.break_glass_id.clone(),
            ..identity_body(&action)
        };
        let decided = Decided {
            action,
            policy,
            outcome,
            gated,
            admission,
            rule_ids,
            reason,
            zone,
            now,
            arrived,
        };
        Ok((body, decided))
    }

    /// Steps 7-8 of an Evaluate, once its record is committed: alerts, metrics, and
    /// the decision as the caller gets it.
    async fn answer(&self, decided: Decided, committed: Committed) -> Decision {
        let Decided {
            action,
            policy,
            outcome,
            gated,
            mut admission,
            rule_ids,
            reason,
            zone,
            now,
            arrived,
        } = decided;
        // 7. Alerts, now that the record is committed: queued in the outbox under its
        //    seq. Queueing cannot fail the decision; a failure is logged.
        if alerts::raises_alerts(&gated) {
            let base = crate::alerts::AlertEvent {
                time_us: now,
                tenant: action.tenant.clone(),
                agent: action.agent.clone(),
                session: action.session.clone(),
                decision_seq: committed.seq,
                verdict: gated.verdict.as_str().into(),
                rules: rule_ids.clone(),
                reason: reason.clone(),
                policy_version: policy.version().into(),
                zone: zone.as_str().into(),
                // `decision_alerts` sets the kind of each event it makes from `base`.
                ..crate::alerts::AlertEvent::new(crate::alerts::AlertEventKind::Deny)
            };
            // A limit's own event (rate_limited, budget_exceeded) comes first, so a
            // route that takes both gets it rather than the plain deny.
            let mut events: Vec<_> = admission
                .refusal
                .as_mut()
                .map(|r| crate::alerts::AlertEvent {
                    kind: r.event.kind,
                    details: std::mem::take(&mut r.event.details),
                    ..base.clone()
                })
                .into_iter()
                .collect();
            events.extend(alerts::decision_alerts(&action, &outcome, &gated, base));
            self.shared.alerts.emit_all(events).await;
        }
        for event in admission.threshold_events {
            self.shared.alerts.emit(event).await;
        }
        // 8. Answer.
        self.shared.metrics.decision(
            action.channel.as_str(),
            gated.verdict.as_str(),
            arrived.elapsed(),
        );
        let redactions = if gated.verdict == Verdict::AllowWithRedaction {
            outcome.redactions
        } else {
            Vec::new()
        };
        Decision {
            verdict: gated.verdict.to_proto().into(),
            matched_rules: rule_ids,
            budget_remaining: admission.budget_remaining,
            retry_after_ms: admission.refusal.map_or(0, |r| r.retry_after_ms),
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
        }
    }

    /// The tools the live policy can never allow (see `policy/never.rs`). Not audited:
    /// it decides nothing, changes no state and counts against nothing (like
    /// `GetPolicy`); every call of a listed tool is still evaluated and audited.
    async fn never_allowed(
        &self,
        req: NeverAllowedRequest,
    ) -> Result<NeverAllowedResponse, ApiError> {
        let tenant = normalize::identity("tenant", &req.tenant)?;
        let agent = normalize::identity("agent", &req.agent)?;
        let session = normalize::identity("session", &req.session)?;
        let channel_text = req.channel.trim().to_ascii_lowercase();
        let channel = normalize::Channel::parse(&channel_text).ok_or_else(|| {
            ApiError::BadRequest(format!("channel: unknown channel {channel_text:?}"))
        })?;
        if req.tools.len() > MAX_NEVER_ALLOWED_TOOLS {
            return Err(ApiError::BadRequest(format!(
                "tools: {} names; the limit is {MAX_NEVER_ALLOWED_TOOLS}",
                req.tools.len()
            )));
        }
        let policy = self.shared.policy.current();
        let now = now_us();
        let break_glass = self
            .shared
            .store
            .break_glass_list(false, now)
            .await?
            .iter()
            .any(|g| {
                g.active_at(now)
                    && g.tenant == tenant
                    && (g.agent.is_empty() || g.agent == agent)
                    && (g.session.is_empty() || g.session == session)
            });
        let tools = req
            .tools
            .into_iter()
            .filter(|t| policy.never_allows(channel, &tenant, &agent, t.trim(), break_glass))
            .collect();
        Ok(NeverAllowedResponse {
            tools,
            policy_version: policy.version().to_string(),
        })
    }

    /// A report, and the actions it led to (`then_evaluate`): the report is applied,
    /// then each follow-up is decided on the session as the report and the follow-ups
    /// before it left it, one after another in the order given (so the same every
    /// time), and the report's record and every decision's record are committed in one
    /// audit transaction before any of them is answered.
    async fn report(&self, req: ReportRequest) -> Result<ReportResponse, ApiError> {
        let arrived = std::time::Instant::now();
        let action = std::sync::Arc::new(normalize::normalize(req.action.as_ref())?);
        // A malformed follow-up fails the call before anything is stored.
        let follow_ups = follow_ups(&action, &req.then_evaluate)?;
        let (body, reported) = self
            .apply_report(action, req.decision_seq, req.result.as_ref())
            .await?;
        let mut bodies = vec![body];
        let mut decided = Vec::with_capacity(follow_ups.len());
        let mut failure = None;
        for follow_up in follow_ups {
            match self.decide(follow_up, arrived).await {
                Ok((body, d)) => {
                    bodies.push(body);
                    decided.push(d);
                }
                // The decisions already made are recorded and answered below (their
                // steps are stored); the caller gets this error and refuses them all.
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let mut committed = self.shared.audit.append_all(bodies).await?.into_iter();
        let report_ref = committed.next().ok_or_else(|| {
            crate::audit::AuditError::Store("the report's record was not committed".into())
        })?;
        let zone = reported.zone;
        self.finish_report(reported).await;
        let mut decisions = Vec::with_capacity(decided.len());
        for (d, c) in decided.into_iter().zip(committed) {
            decisions.push(self.answer(d, c).await);
        }
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(ReportResponse {
            id: Some(AuditRef {
                seq: report_ref.seq,
                hash: report_ref.hash,
            }),
            zone: zone.to_proto().into(),
            decisions,
        })
    }

    /// A report up to its audit record (returned, for the caller to commit):
    /// validated, its observation and settlement stored. An invalid result is recorded
    /// as rejected (committed here) and refused.
    async fn apply_report(
        &self,
        action: std::sync::Arc<NormalizedAction>,
        decision_seq: u64,
        result: Option<&ResultMeta>,
    ) -> Result<(RecordBody, Reported), ApiError> {
        // Refused before anything is stored, as in Evaluate: the settlement reads them.
        budgets::check_estimates(&action)?;
        let result = result.ok_or_else(|| ApiError::BadRequest("result: is required".into()))?;
        let policy = self.shared.policy.current();
        let now = now_us();
        let (result_json, mut observation) = match result_json(result) {
            Ok(r) => r,
            Err(e) => {
                // Recorded as refused, counted nowhere.
                let body = RecordBody {
                    time_us: now,
                    kind: KIND_REPORT_REJECTED.into(),
                    policy_version: policy.version().into(),
                    decision_seq,
                    reason: format!("report rejected: {e}"),
                    ..identity_body(&action)
                };
                self.shared.audit.append(body).await?;
                return Err(e);
            }
        };
        let usage = budgets::reported_usage(&policy, &action, result, decision_seq, now);
        observation.cost_micro_usd = usage.cost_micro_usd;
        // The observation, and the usage settled against the budgets it counts against
        // (kept in the history), in one transaction.
        let history = budgets::carries_usage(&usage).then(|| usage.clone());
        let ((zone, escalations, budgets), after) = {
            let (policy, guard) = (policy.clone(), self.shared.guard.clone());
            let (action, usage) = (action.clone(), usage.clone());
            self.shared
                .store
                .session_step_settle(&session_key(&action), move |stored| {
                    // A result still counts after the session ended: what was read was
                    // read.
                    let state = stored.unwrap_or_else(|| SessionState::new(now));
                    let (next, fired) = session::observe(&policy, &state, &observation, now);
                    let zone = next.zone;
                    let counted: Vec<usize> = if policy.budgets().is_empty() {
                        Vec::new()
                    } else {
                        policy.budgets_for(&policy.context(&action, &guard), zone, &next.tags)
                    };
                    let settle = if !counted.is_empty() || history.is_some() {
                        let budgets = picked(policy.budgets(), &counted);
                        Some(Settlement {
                            charges: budgets::settlement(&budgets, &action, &usage, now)?,
                            usage: history,
                            now,
                        })
                    } else {
                        None
                    };
                    Ok::<_, ApiError>((next, (zone, fired, counted), settle))
                })
                .await?
        };
        let budgets = picked(policy.budgets(), &budgets);
        let budget_events = if budgets.is_empty() {
            Vec::new()
        } else {
            budgets::threshold_alerts(&self.shared, &budgets, &after, &action).await?
        };
        let body = RecordBody {
            time_us: now,
            kind: KIND_REPORT.into(),
            policy_version: policy.version().into(),
            result: result_json,
            decision_seq,
            zone: zone.as_str().into(),
            reason: explain("", &escalations),
            ..identity_body(&action)
        };
        let reported = Reported {
            zone,
            usage,
            decision_seq,
            budget_events,
        };
        Ok((body, reported))
    }

    /// A report once its record is committed: metrics, and the budget alerts it raised.
    async fn finish_report(&self, reported: Reported) {
        self.shared.metrics.report(&reported.usage);
        for event in reported.budget_events {
            self.shared
                .alerts
                .emit(crate::alerts::AlertEvent {
                    decision_seq: reported.decision_seq,
                    ..event
                })
                .await;
        }
    }
}

/// A report applied, its record not yet committed ([`DecisionsService::apply_report`]):
/// what finishing it needs.
struct Reported {
    /// The session's zone after the report.
    zone: Zone,
    usage: crate::store::UsageRow,
    decision_seq: u64,
    budget_events: Vec<crate::alerts::AlertEvent>,
}

/// Most follow-ups one report may carry.
const MAX_FOLLOW_UPS: usize = 128;

/// A report's follow-up actions, normalized; each must be in the report's session.
fn follow_ups(
    report: &NormalizedAction,
    actions: &[warden_proto::v1::Action],
) -> Result<Vec<NormalizedAction>, ApiError> {
    if actions.len() > MAX_FOLLOW_UPS {
        return Err(ApiError::BadRequest(format!(
            "then_evaluate: {} actions; the limit is {MAX_FOLLOW_UPS}",
            actions.len()
        )));
    }
    actions
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let action = normalize::normalize(Some(a))
                .map_err(|e| ApiError::BadRequest(format!("then_evaluate[{i}]: {e}")))?;
            for (what, theirs, ours) in [
                ("tenant", &action.tenant, &report.tenant),
                ("agent", &action.agent, &report.agent),
                ("session", &action.session, &report.session),
            ] {
                if theirs != ours {
                    return Err(ApiError::BadRequest(format!(
                        "then_evaluate[{i}]: {what} {theirs:?} is not the report's {what} {ours:?}"
                    )));
                }
            }
            Ok(action)
        })
        .collect()
}

/// An Evaluate decided, its record not yet committed ([`DecisionsService::decide`]):
/// what answering it needs.
struct Decided {
    action: std::sync::Arc<NormalizedAction>,
    policy: std::sync::Arc<crate::policy::Policy>,
    outcome: crate::policy::Outcome,
    /// The verdict after break-glass, approvals and admission.
    gated: super::approvals::Gated,
    admission: limits::Admission,
    rule_ids: Vec<String>,
    reason: String,
    zone: Zone,
    now: i64,
    arrived: std::time::Instant,
}

/// What the session step of an Evaluate found.
struct Judged {
    outcome: crate::policy::Outcome,
    escalations: Vec<Escalation>,
    zone: Zone,
    /// The policy's budgets and rate limits the action counts against, by index.
    budgets: Vec<usize>,
    rate_limits: Vec<usize>,
    /// The policy let the action run, so its limits were dealt with in the step.
    admitted_in_step: bool,
    /// The admission the step ran, if any.
    plan: Option<crate::store::AdmissionPlan>,
    /// The fast path's refusal, if it refused.
    fast_refusal: Option<limits::Admission>,
}

/// The items of `all` at `indices` (the policy's budgets or rate limits an action
/// counts against).
fn picked<'p, T>(all: &'p [T], indices: &[usize]) -> Vec<&'p T> {
    indices.iter().filter_map(|&i| all.get(i)).collect()
}

/// Whether a verdict lets the action run.
fn runs(v: Verdict) -> bool {
    matches!(v, Verdict::Allow | Verdict::AllowWithRedaction)
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
    // Larger than any one action can do: a broken or lying interceptor. Refused, so that
    // one bad report cannot spend (or wrap) a budget.
    let absurd = [
        (
            "result.usage.tokens_in",
            usage.tokens_in,
            MAX_REPORTED_TOKENS,
        ),
        (
            "result.usage.tokens_out",
            usage.tokens_out,
            MAX_REPORTED_TOKENS,
        ),
        ("result.bytes", r.bytes, MAX_REPORTED_BYTES),
        ("result.rows", r.rows, MAX_REPORTED_ROWS),
        (
            "result.duration_ms",
            r.duration_ms,
            MAX_REPORTED_DURATION_MS,
        ),
    ];
    for (field, value, max) in absurd {
        if value > max {
            return Err(ApiError::BadRequest(format!(
                "{field}: {value} is more than one action can report (at most {max})"
            )));
        }
    }
    if usage.cost_usd > MAX_REPORTED_COST_USD {
        return Err(ApiError::BadRequest(format!(
            "result.usage.cost_usd: {} is more than one action can report (at most {MAX_REPORTED_COST_USD})",
            usage.cost_usd
        )));
    }
    if r.outcome.len() > 64 || r.outcome.chars().any(|c| c.is_control()) {
        return Err(ApiError::BadRequest(
            "result.outcome: at most 64 printable bytes".into(),
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
        // Newer fields are left out when unset, so records without them encode (and
        // hash) exactly as before they existed.
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<u32>,
        #[serde(skip_serializing_if = "is_zero")]
        bytes_sent: u64,
        #[serde(skip_serializing_if = "is_zero")]
        bytes_received: u64,
        #[serde(skip_serializing_if = "str::is_empty")]
        outcome: &'a str,
    }
    fn is_zero(n: &u64) -> bool {
        *n == 0
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
        status: r.status,
        bytes_sent: r.bytes_sent,
        bytes_received: r.bytes_received,
        outcome: r.outcome.trim(),
    };
    let json = serde_json::to_string(&canonical)
        .map_err(|e| ApiError::BadRequest(format!("result: cannot be encoded: {e}")))?;
    let observation = Observation {
        sensitivity: sensitivity.into(),
        tags: canonical.tags,
        rows: r.rows,
        bytes: r.bytes,
        egress: egress.into(),
        tokens: usage.tokens_in.saturating_add(usage.tokens_out),
        // Priced by the caller, which knows the policy's price table.
        cost_micro_usd: 0,
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

    async fn never_allowed(
        &self,
        request: Request<NeverAllowedRequest>,
    ) -> Result<Response<NeverAllowedResponse>, Status> {
        Ok(Response::new(
            DecisionsService::never_allowed(self, request.into_inner()).await?,
        ))
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
