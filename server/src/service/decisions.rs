//! `warden.v1.Decisions`: the hot path.

mod alerts;
mod limits;
mod report;

use tonic::{Request, Response, Status};
use warden_proto::v1::{
    AuditRef, Decision, EvaluateRequest, EvaluateResponse, NeverAllowedRequest,
    NeverAllowedResponse, ReportRequest, ReportResponse, decisions_server::Decisions,
};

use super::{Shared, approvals, budgets, now_us};
use crate::audit::{Committed, KIND_EVALUATE, RecordBody};
use crate::error::ApiError;
use crate::normalize::{self, NormalizedAction};
use crate::policy::Verdict;
use crate::redact;
use crate::session::{self, Escalation, SessionState, Zone};
use crate::store::{AdmitRecorder, BatchFacts, SessionKey, StepChain};

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
        // 2. Snapshot the live policy: this request finishes on it even if a reload lands.
        let deciding = Deciding::new(action, self.shared.policy.current(), arrived)?;
        // 3. Under the session's lock: load its state, decide, store the next state (on
        //    SQLite with the decision's record, when the step could build it).
        let mut chain = StepChain::new(session_key(&deciding.action));
        let step = chain.admit_recorded(self.decide_step(&deciding));
        let queued = std::time::Instant::now();
        let stepped = self.shared.store.session_steps(chain).await;
        let step_done = std::time::Instant::now();
        let recorded = stepped.as_ref().ok().and_then(|ran| step.recorded(ran));
        let stepped = stepped
            .map_err(ApiError::from)
            .and_then(|mut ran| step.admitted(&mut ran));
        let (body, decided) = self.decided(deciding, stepped, recorded.is_some()).await?;
        // 6. Audit; the decision exists only once its record is committed.
        let committed = match recorded {
            Some(committed) => committed,
            None => self.shared.audit.append(body).await?,
        };
        let answer = self.answer(decided, committed).await;
        tracing::trace!(
            before_us = (queued - arrived).as_micros() as u64,
            step_us = (step_done - queued).as_micros() as u64,
            after_us = step_done.elapsed().as_micros() as u64,
            "evaluate phases"
        );
        Ok(answer)
    }

    /// Step 3 of an Evaluate, to run under the session's lock (on SQLite on the store's
    /// step writer, so it owns what it reads): zone triggers fire before the rules, so
    /// the action is judged in the zone it brings the session into, and an action the
    /// policy lets run is admitted in the same transaction. Unless it asks for approval,
    /// it also hands back the recorder that builds the decision's record there
    /// ([`StepChain::admit_recorded`]); the recorder declines when a break-glass grant
    /// could lift the verdict and one may be in force.
    fn decide_step(
        &self,
        deciding: &Deciding,
    ) -> impl FnOnce(Option<SessionState>) -> Result<Stepped, ApiError> + Send + 'static {
        let (policy, action, now) = (
            deciding.policy.clone(),
            deciding.action.clone(),
            deciding.now,
        );
        let (guard, rate_cache) = (self.shared.guard.clone(), self.shared.rate_cache.clone());
        move |stored| {
            let state = live_session(stored, &policy, now)?;
            let j = session::judge(&policy, &guard, &state, &action, now);
            let zone = j.next.zone;
            let budgets = picked(policy.budgets(), &j.budgets);
            let rate_limits = picked(policy.rate_limits(), &j.rate_limits);
            // 5a. An action the policy lets run is admitted against its rate limits and
            //     budgets in this same transaction (the gate never changes an allow);
            //     see `decisions/limits.rs`.
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
            // A decision that asks for approval needs the approvals outside this
            // transaction; one a grant could lift, only while a grant may be in force.
            let recorder = (j.outcome.verdict != Verdict::RequireApproval).then(|| {
                let made = Made {
                    action: action.clone(),
                    policy: policy.clone(),
                    now,
                    zone,
                    escalations: j.escalations.clone(),
                };
                let outcome = j.outcome.clone();
                let fast = fast_refusal
                    .as_ref()
                    .and_then(|a| a.refusal.as_ref())
                    .map(|r| (r.rule.clone(), r.reason.clone()));
                let (budget_ids, limit_ids) = (j.budgets.clone(), j.rate_limits.clone());
                Box::new(move |admitted: Option<&Result<_, _>>, facts: &BatchFacts| {
                    let mut gated =
                        approvals::gate_without_lookup(&outcome, facts.break_glass_possible)?;
                    let refused = match (admitted, fast) {
                        (Some(result), _) => limits::refusal(
                            &picked(made.policy.rate_limits(), &limit_ids),
                            &picked(made.policy.budgets(), &budget_ids),
                            result,
                        )
                        .map(|r| (r.rule, r.reason)),
                        (None, fast) => fast,
                    };
                    let mut rule_ids = outcome.matched_rules;
                    let reason = refuse(&mut gated, &mut rule_ids, refused, &made.escalations);
                    Some(made.record(&gated, rule_ids, reason))
                }) as AdmitRecorder
            });
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
            Ok((j.next, judged, plan, recorder))
        }
    }

    /// Steps 4-5 of an Evaluate, once its session step has run (`stepped`): the gate,
    /// what admission decided, and the audit record to commit. `recorded`: the step's
    /// transaction already committed the record, which its recorder built without a
    /// lookup, so the gate looks nothing up either (a grant issued since must not make
    /// the answer differ from the record).
    async fn decided(
        &self,
        deciding: Deciding,
        stepped: Result<
            (
                Judged,
                Option<Result<crate::store::Admitted, crate::store::Refused>>,
            ),
            ApiError,
        >,
        recorded: bool,
    ) -> Result<(RecordBody, Decided), ApiError> {
        let (judged, admitted) = stepped?;
        let Deciding {
            action,
            policy,
            now,
            clock,
            arrived,
        } = deciding;
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
        let shared = &self.shared;
        let budgets = picked(policy.budgets(), &budgets);
        let rate_limits = picked(policy.rate_limits(), &rate_limits);
        // 4. Break-glass grants and approvals may change a refusal (see `gate`).
        let mut gated = if recorded {
            approvals::as_decided(&outcome)
        } else {
            approvals::gate(&self.shared, &action, &policy, &outcome, now).await?
        };
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
        let refused = admission
            .refusal
            .as_ref()
            .map(|r| (r.rule.clone(), r.reason.clone()));
        let reason = refuse(&mut gated, &mut rule_ids, refused, &escalations);
        let made = Made {
            action,
            policy,
            now,
            zone,
            escalations,
        };
        let body = made.record(&gated, rule_ids.clone(), reason.clone());
        let Made { action, policy, .. } = made;
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
}

/// An Evaluate about to take its session step: the action, checked, and the policy
/// snapshot and clock readings every later step of it uses.
struct Deciding {
    action: std::sync::Arc<NormalizedAction>,
    policy: std::sync::Arc<crate::policy::Policy>,
    now: i64,
    /// Read before `now`, for the rate-limit cache (see `limits::finish`).
    clock: std::time::Instant,
    arrived: std::time::Instant,
}

impl Deciding {
    /// Refuses an action whose estimates are out of range, before anything is stored.
    fn new(
        action: NormalizedAction,
        policy: std::sync::Arc<crate::policy::Policy>,
        arrived: std::time::Instant,
    ) -> Result<Deciding, ApiError> {
        budgets::check_estimates(&action)?;
        let clock = std::time::Instant::now();
        Ok(Deciding {
            action: std::sync::Arc::new(action),
            policy,
            now: now_us(),
            clock,
            arrived,
        })
    }
}

/// What an Evaluate's record is made of besides its verdict: the same wherever the
/// record is built (the step writer's thread, or [`DecisionsService::decided`]).
struct Made {
    action: std::sync::Arc<NormalizedAction>,
    policy: std::sync::Arc<crate::policy::Policy>,
    now: i64,
    zone: Zone,
    escalations: Vec<Escalation>,
}

impl Made {
    /// The decision's audit record, once the gate and admission have had their say.
    fn record(
        &self,
        gated: &super::approvals::Gated,
        rule_ids: Vec<String>,
        reason: String,
    ) -> RecordBody {
        RecordBody {
            time_us: self.now,
            kind: KIND_EVALUATE.into(),
            verdict: gated.verdict.as_str().into(),
            rule_ids,
            reason,
            policy_version: self.policy.version().into(),
            zone: self.zone.as_str().into(),
            approval_id: gated.approval_id.clone(),
            break_glass_id: gated.break_glass_id.clone(),
            ..identity_body(&self.action)
        }
    }
}

/// Applies a limit's refusal (`rule`, `reason`) to what the gate made of the outcome:
/// a refused action is denied by that limit alone. Returns the decision's reason, with
/// the session's escalations.
fn refuse(
    gated: &mut super::approvals::Gated,
    rule_ids: &mut Vec<String>,
    refused: Option<(String, String)>,
    escalations: &[Escalation],
) -> String {
    if let Some((rule, reason)) = refused {
        gated.verdict = Verdict::Deny;
        gated.reason = reason;
        *rule_ids = vec![rule];
    }
    explain(&gated.reason, escalations)
}

/// An Evaluate decided, its record not yet committed ([`DecisionsService::decided`]):
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

/// What an Evaluate's session step hands back: the state to store, what it found, the
/// admission to run and the recorder of its record.
type Stepped = (
    SessionState,
    Judged,
    Option<crate::store::AdmissionPlan>,
    Option<AdmitRecorder>,
);

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
