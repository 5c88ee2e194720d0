//! Step 5 of Evaluate: an action that may run is admitted against its rate limits and
//! budgets, in one transaction (`Store::admit`). A bucket without a token or a spent
//! hard budget refuses it; nothing is taken or charged then.

use std::time::Instant;

use warden_proto::v1::BudgetRemaining;

use super::super::{Shared, budgets, rate_limits};
use crate::alerts::{AlertEvent, AlertEventKind};
use crate::error::ApiError;
use crate::normalize::NormalizedAction;
use crate::policy::{Budget, Metric, RateLimit};
use crate::store::Refused;

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

/// Admits `action` against `limits` and `budgets`. `clock` is when the daemon read
/// `now` (or earlier); the fast path measures from it.
pub(super) async fn admit(
    shared: &Shared,
    limits: &[&RateLimit],
    budget_list: &[&Budget],
    action: &NormalizedAction,
    now: i64,
    clock: Instant,
) -> Result<Admission, ApiError> {
    if limits.is_empty() && budget_list.is_empty() {
        return Ok(Admission::default());
    }
    let takes = rate_limits::takes(limits, action);
    // A bucket this daemon saw empty moments ago is still empty: no round trip.
    if let Some((i, wait)) = shared.rate_cache.refuses(&takes) {
        return Ok(rate_limited(limits[i], wait));
    }
    let charges = budgets::admission(budget_list, action, now)?;
    let calls = budget_list.iter().any(|b| b.metric == Metric::ToolCalls);
    let usage = calls.then(|| budgets::tool_call(action, now));
    let sent = clock.min(Instant::now());
    match shared
        .store
        .admit(&takes, &charges, usage.as_ref(), now)
        .await?
    {
        Ok(admitted) => {
            if !takes.is_empty() {
                shared.rate_cache.record(sent, &takes, &admitted.buckets);
            }
            Ok(Admission {
                refusal: None,
                budget_remaining: budgets::remaining(budget_list, &admitted.budgets),
                threshold_events: budgets::threshold_alerts(
                    shared,
                    budget_list,
                    &admitted.budgets,
                    action,
                )
                .await?,
            })
        }
        Err(Refused::RateLimited { take, bucket }) => {
            shared.rate_cache.record(
                sent,
                std::slice::from_ref(&take),
                std::slice::from_ref(&bucket),
            );
            let wait = bucket.wait_us(&take);
            // The takes were made from `limits`, so the id is among them.
            Ok(match limits.iter().find(|l| l.id == take.rate_limit) {
                Some(limit) => rate_limited(limit, wait),
                None => Admission {
                    refusal: Some(Refusal {
                        rule: format!("rate_limit:{}", take.rate_limit),
                        reason: format!("rate limit {} reached", take.rate_limit),
                        retry_after_ms: rate_limits::retry_after_ms(wait),
                        event: AlertEvent::new(AlertEventKind::RateLimited)
                            .detail("rate_limit", take.rate_limit.as_str()),
                    }),
                    ..Admission::default()
                },
            })
        }
        Err(Refused::Budget(refusal)) => Ok(Admission {
            refusal: Some(Refusal {
                rule: format!("budget:{}", refusal.budget),
                reason: budgets::refusal_reason(budget_list, &refusal),
                retry_after_ms: 0,
                event: AlertEvent::new(AlertEventKind::BudgetExceeded)
                    .detail("budget", refusal.budget.as_str()),
            }),
            ..Admission::default()
        }),
    }
}

fn rate_limited(limit: &RateLimit, wait_us: i64) -> Admission {
    Admission {
        refusal: Some(Refusal {
            rule: format!("rate_limit:{}", limit.id),
            reason: rate_limits::refusal_reason(limit, wait_us),
            retry_after_ms: rate_limits::retry_after_ms(wait_us),
            event: rate_limits::alert(limit, wait_us),
        }),
        ..Admission::default()
    }
}
