//! `Decisions.Report`: what happened after an action ran, and the actions it led to
//! (`then_evaluate`: `warden llm` sends a model answer's usage with the tool calls it
//! proposes). The report's session step and every follow-up's run as one chain in one
//! transaction (`Store::session_steps`), and all their records commit together.

use serde::Serialize;
use warden_proto::v1::{AuditRef, ReportRequest, ReportResponse, ResultMeta};

use super::{Deciding, DecisionsService, identity_body, picked, session_key};
use crate::audit::{KIND_REPORT, KIND_REPORT_REJECTED, RecordBody};
use crate::error::ApiError;
use crate::normalize::{self, NormalizedAction};
use crate::redact;
use crate::service::{budgets, now_us};
use crate::session::{self, Escalation, Observation, SessionState, Zone};
use crate::store::{BudgetRow, SettleRecorder, Settlement, StepChain, UsageRow};

/// The most one report may claim; more is refused as absurd.
const MAX_REPORTED_TOKENS: u64 = 100_000_000;
const MAX_REPORTED_BYTES: u64 = 1 << 50;
const MAX_REPORTED_ROWS: u64 = 1_000_000_000_000;
const MAX_REPORTED_DURATION_MS: u64 = 30 * 86_400_000;
const MAX_REPORTED_COST_USD: f64 = 1_000_000.0;

/// Most tags a report may carry, and the longest tag.
const MAX_TAGS: usize = 256;
const MAX_TAG_BYTES: usize = 256;

impl DecisionsService {
    /// A report, and the actions it led to (`then_evaluate`): the report's session step,
    /// then each follow-up's on the session as the report and the follow-ups before it
    /// left it, in the order given (so the same every time), all in one transaction;
    /// then each follow-up's gate in the same order; and the report's record and every
    /// decision's record are committed in one audit transaction before any of them is
    /// answered.
    pub(super) async fn report(&self, req: ReportRequest) -> Result<ReportResponse, ApiError> {
        let arrived = std::time::Instant::now();
        let action = std::sync::Arc::new(normalize::normalize(req.action.as_ref())?);
        // A malformed follow-up fails the call before anything is stored.
        let policy = self.shared.policy.current();
        let deciding = follow_ups(&action, &req.then_evaluate)?
            .into_iter()
            .map(|a| Deciding::new(a, policy.clone(), arrived))
            .collect::<Result<Vec<_>, _>>()?;
        let reporting = self
            .reporting(action, policy, req.decision_seq, req.result.as_ref())
            .await?;
        let mut chain = StepChain::new(session_key(&reporting.action));
        let report_step = chain.settle_recorded(self.report_step(&reporting));
        let steps: Vec<_> = deciding
            .iter()
            .map(|d| chain.admit_recorded(self.decide_step(d)))
            .collect();
        let mut ran = self.shared.store.session_steps(chain).await?;
        // On SQLite the chain's records may have been committed with its steps: all of
        // them or none (`store/steps.rs`).
        let mut places = vec![report_step.recorded(&ran)];
        let (body, reported) = self
            .reported(reporting, report_step.settled(&mut ran)?)
            .await?;
        let mut bodies = vec![body];
        let mut decided = Vec::with_capacity(deciding.len());
        let mut failure = None;
        for (d, step) in deciding.into_iter().zip(steps) {
            // A step that refused (the session ended) ended the chain, so the ones
            // after it did not run. The decisions made are recorded and answered below
            // (their steps are stored); the caller gets the first error and refuses
            // them all.
            let place = step.recorded(&ran);
            let ran_step = step.admitted(&mut ran);
            let stopped = ran_step.is_err();
            match self.decided(d, ran_step, place.is_some()).await {
                Ok((body, d)) => {
                    bodies.push(body);
                    places.push(place);
                    decided.push(d);
                }
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
            if stopped {
                break;
            }
        }
        let committed = if places.iter().all(Option::is_none) {
            self.shared.audit.append_all(bodies).await?
        } else {
            places
                .into_iter()
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    crate::audit::AuditError::Store(
                        "only some of the report's records were committed with its steps".into(),
                    )
                })?
        };
        let mut committed = committed.into_iter();
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

    /// A report checked, before its session step. An invalid result is recorded as
    /// rejected (committed here) and refused.
    async fn reporting(
        &self,
        action: std::sync::Arc<NormalizedAction>,
        policy: std::sync::Arc<crate::policy::Policy>,
        decision_seq: u64,
        result: Option<&ResultMeta>,
    ) -> Result<Reporting, ApiError> {
        // Refused before anything is stored, as in Evaluate: the settlement reads them.
        budgets::check_estimates(&action)?;
        let result = result.ok_or_else(|| ApiError::BadRequest("result: is required".into()))?;
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
        Ok(Reporting {
            action,
            policy,
            now,
            decision_seq,
            result_json,
            observation,
            usage,
        })
    }

    /// A report's session step: the observation, and the usage settled against the
    /// budgets it counts against (kept in the history), in the step's transaction.
    fn report_step(
        &self,
        r: &Reporting,
    ) -> impl FnOnce(Option<SessionState>) -> Result<ReportStepOut, ApiError> + Send + 'static {
        let (policy, guard) = (r.policy.clone(), self.shared.guard.clone());
        let made = r.made();
        let (action, usage, observation, now) = (
            r.action.clone(),
            r.usage.clone(),
            r.observation.clone(),
            r.now,
        );
        let history = budgets::carries_usage(&usage).then(|| usage.clone());
        move |stored| {
            // A result still counts after the session ended: what was read was read.
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
            // The report's record needs nothing but the step: it is built on the
            // writer's thread, and committed there with the chain's other records.
            let body = made.record(zone, &fired);
            let recorder: SettleRecorder = Box::new(move || Some(body));
            Ok((
                next,
                ReportStepped {
                    zone,
                    escalations: fired,
                    budgets: counted,
                },
                settle,
                Some(recorder),
            ))
        }
    }

    /// A report once its session step has run: the budget alerts it raised, and its
    /// audit record to commit.
    async fn reported(
        &self,
        r: Reporting,
        (stepped, after): (ReportStepped, Vec<BudgetRow>),
    ) -> Result<(RecordBody, Reported), ApiError> {
        let budgets = picked(r.policy.budgets(), &stepped.budgets);
        let budget_events = if budgets.is_empty() {
            Vec::new()
        } else {
            budgets::threshold_alerts(&self.shared, &budgets, &after, &r.action).await?
        };
        let body = r.made().record(stepped.zone, &stepped.escalations);
        let reported = Reported {
            zone: stepped.zone,
            usage: r.usage,
            decision_seq: r.decision_seq,
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

/// A report checked, before its session step ([`DecisionsService::reporting`]).
struct Reporting {
    action: std::sync::Arc<NormalizedAction>,
    policy: std::sync::Arc<crate::policy::Policy>,
    now: i64,
    decision_seq: u64,
    /// The result as the record stores it.
    result_json: String,
    observation: Observation,
    /// The usage to settle, priced.
    usage: UsageRow,
}

impl Reporting {
    /// What the report's record is made of besides the zone it left.
    fn made(&self) -> ReportMade {
        ReportMade(RecordBody {
            time_us: self.now,
            kind: KIND_REPORT.into(),
            policy_version: self.policy.version().into(),
            result: self.result_json.clone(),
            decision_seq: self.decision_seq,
            ..identity_body(&self.action)
        })
    }
}

/// A report's record but for the zone it left and the escalations it caused.
struct ReportMade(RecordBody);

impl ReportMade {
    fn record(&self, zone: Zone, escalations: &[Escalation]) -> RecordBody {
        RecordBody {
            zone: zone.as_str().into(),
            reason: super::explain("", escalations),
            ..self.0.clone()
        }
    }
}

/// What a report's session step hands back: the state to store, what it found, the
/// usage to settle and the recorder of its record.
type ReportStepOut = (
    SessionState,
    ReportStepped,
    Option<Settlement>,
    Option<SettleRecorder>,
);

/// What a report's session step found.
struct ReportStepped {
    /// The session's zone after the report.
    zone: Zone,
    /// The result triggers that raised the zone.
    escalations: Vec<Escalation>,
    /// The policy's budgets the usage counts against, by index.
    budgets: Vec<usize>,
}

/// A report applied, its record not yet committed ([`DecisionsService::reported`]):
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
