//! Step 5 of Evaluate: an action that may run is admitted against its rate limits and
//! budgets, all or nothing. When the policy allows it, the admission runs inside the
//! session step's transaction (`Store::session_step_admit`); when only the gate lets
//! it run (a break-glass grant, an approval), on its own (`Store::admit`). A bucket
//! without a token or a spent hard budget refuses it; nothing is taken or charged
//! then.

use std::time::Instant;

use warden_proto::v1::BudgetRemaining;

use super::super::{Shared, budgets, rate_limits};
use crate::alerts::{AlertEvent, AlertEventKind};
use crate::error::ApiError;
use crate::normalize::NormalizedAction;
use crate::policy::{Budget, Metric, RateLimit};
use crate::store::{AdmissionPlan, Admitted, Refused};

/// What admission decided.
#[derive(Default)]
pub(super) struct Admission {
    /// Set when a rate limit or a budget refused the action.
    pub(super) refusal: Option<Refusal>,
    /// What is left of each budget the action counted against.
    pub(super) budget_remaining: Vec<BudgetRemaining>,
    /// Budget thresholds crossed, to queue once the decision is committed.
    pub(super) threshold_events: Vec<AlertEvent>,
}

/// A refusal by a limit: it replaces the decision's verdict, rules and reason.
pub(super) struct Refusal {
    /// `rate_limit:<id>` or `budget:<id>`.
    pub(super) rule: String,
    pub(super) reason: String,
    /// For rate limits: how long to wait.
    pub(super) retry_after_ms: u64,
    /// `rate_limited` or `budget_exceeded`, with the limit's details; the decision's
    /// fields are added when it is queued.
    pub(super) event: AlertEvent,
}

/// What to do about an action's limits, worked out before any database work.
pub(super) enum Prepared {
    /// No rate limit or budget applies.
    Nothing,
    /// The fast path refused it: a bucket this daemon saw empty is still empty.
    Refused(Admission),
    /// The admission to run (in the session step, or on its own).
    Admit(AdmissionPlan),
}

/// Works out the admission of `action` against `limits` and `budgets` at `now`.
pub(super) fn prepare(
    rate_cache: &rate_limits::RateCache,
    limits: &[&RateLimit],
    budget_list: &[&Budget],
    action: &NormalizedAction,
    now: i64,
) -> Result<Prepared, ApiError> {
    if limits.is_empty() && budget_list.is_empty() {
        return Ok(Prepared::Nothing);
    }
    let takes = rate_limits::takes(limits, action);
    // A bucket this daemon saw empty moments ago is still empty: no round trip.
    if let Some((i, wait)) = rate_cache.refuses(&takes) {
        return Ok(Prepared::Refused(rate_limited(limits[i], wait)));
    }
    let charges = budgets::admission(budget_list, action, now)?;
    let calls = budget_list.iter().any(|b| b.metric == Metric::ToolCalls);
    Ok(Prepared::Admit(AdmissionPlan {
        takes,
        charges,
        usage: calls.then(|| budgets::tool_call(action, now)),
        now,
    }))
}

/// Admits `action` on its own transaction (when the session step did not: a refusal
/// that the gate lifted). `clock` is when the daemon read `now`, or earlier.
pub(super) async fn admit(
    shared: &Shared,
    limits: &[&RateLimit],
    budget_list: &[&Budget],
    action: &NormalizedAction,
    now: i64,
    clock: Instant,
) -> Result<Admission, ApiError> {
    match prepare(&shared.rate_cache, limits, budget_list, action, now)? {
        Prepared::Nothing => Ok(Admission::default()),
        Prepared::Refused(refusal) => Ok(refusal),
        Prepared::Admit(plan) => {
            let result = shared.store.admit(&plan).await?;
            finish(shared, limits, budget_list, action, &plan, result, clock).await
        }
    }
}

/// Turns the database's answer to `plan` into the decision's admission, and tells the
/// fast path what the buckets looked like. `clock` is no later than the request went
/// out.
pub(super) async fn finish(
    shared: &Shared,
    limits: &[&RateLimit],
    budget_list: &[&Budget],
    action: &NormalizedAction,
    plan: &AdmissionPlan,
    result: Result<Admitted, Refused>,
    clock: Instant,
) -> Result<Admission, ApiError> {
    // `clock` was read before `plan.now`, and both before the request went out.
    let sent = rate_limits::Sent {
        at: clock,
        wall_us: plan.now,
    };
    if let Some(refusal) = refusal(limits, budget_list, &result) {
        if let Err(Refused::RateLimited { take, bucket }) = &result {
            shared.rate_cache.record(
                sent,
                std::slice::from_ref(take),
                std::slice::from_ref(bucket),
            );
        }
        return Ok(Admission {
            refusal: Some(refusal),
            ..Admission::default()
        });
    }
    let Ok(admitted) = result else {
        return Ok(Admission::default());
    };
    if !plan.takes.is_empty() {
        shared
            .rate_cache
            .record(sent, &plan.takes, &admitted.buckets);
    }
    Ok(Admission {
        refusal: None,
        budget_remaining: budgets::remaining(budget_list, &admitted.budgets),
        threshold_events: budgets::threshold_alerts(shared, budget_list, &admitted.budgets, action)
            .await?,
    })
}

/// The refusal the database's answer to an admission makes (`None`: admitted). Pure,
/// so the session step's writer can build the decision's record from it too.
pub(super) fn refusal(
    limits: &[&RateLimit],
    budget_list: &[&Budget],
    result: &Result<Admitted, Refused>,
) -> Option<Refusal> {
    match result {
        Ok(_) => None,
        Err(Refused::RateLimited { take, bucket }) => {
            let wait = bucket.wait_us(take);
            // The takes were made from `limits`, so the id is among them.
            Some(match limits.iter().find(|l| l.id == take.rate_limit) {
                Some(limit) => rate_limited_refusal(limit, wait),
                None => Refusal {
                    rule: format!("rate_limit:{}", take.rate_limit),
                    reason: format!("rate limit {} reached", take.rate_limit),
                    retry_after_ms: rate_limits::retry_after_ms(wait),
                    event: AlertEvent::new(AlertEventKind::RateLimited)
                        .detail("rate_limit", take.rate_limit.as_str()),
                },
            })
        }
        Err(Refused::Budget(refusal)) => Some(Refusal {
            rule: format!("budget:{}", refusal.budget),
            reason: budgets::refusal_reason(budget_list, refusal),
            retry_after_ms: 0,
            event: AlertEvent::new(AlertEventKind::BudgetExceeded)
                .detail("budget", refusal.budget.as_str()),
        }),
    }
}

fn rate_limited(limit: &RateLimit, wait_us: i64) -> Admission {
    Admission {
        refusal: Some(rate_limited_refusal(limit, wait_us)),
        ..Admission::default()
    }
}

fn rate_limited_refusal(limit: &RateLimit, wait_us: i64) -> Refusal {
    Refusal {
        rule: format!("rate_limit:{}", limit.id),
        reason: rate_limits::refusal_reason(limit, wait_us),
        retry_after_ms: rate_limits::retry_after_ms(wait_us),
        event: rate_limits::alert(limit, wait_us),
    }
}
