//! Budgets on the decision path, and `warden.v1.Budgets`.
//!
//! Evaluate admits an action that the policy allows against every budget it counts
//! against: a tool call is charged at once, other metrics reserve the action's estimate
//! (attributes `estimated_tokens`, `estimated_cost_usd`, …). A hard budget that is
//! spent, or that the charge would take past its limit, turns the decision into a deny
//! naming it. Report settles: the actual usage is added, the estimate released, and a
//! usage history row written. See `store/budgets.rs` for why this is exact across
//! replicas.

use tonic::{Request, Response, Status};
use warden_proto::v1::{
    BudgetRemaining, BudgetUsage, GetUsageRequest, GetUsageResponse, ResultMeta, UsageRecord,
    budgets_server::Budgets,
};

use super::{Shared, now_us};
use crate::alerts::{AlertEvent, AlertEventKind};
use crate::error::ApiError;
use crate::normalize::{Egress, NormalizedAction, identity};
use crate::policy::{Budget, Metric, Policy, Scope, Window};
use crate::store::{BudgetRow, Charge, Refusal, UsageRow};

/// Action attribute holding the estimate a metric reserves at admission.
fn estimate_attribute(metric: Metric) -> Option<&'static str> {
    match metric {
        Metric::Tokens => Some("estimated_tokens"),
        Metric::TokensIn => Some("estimated_tokens_in"),
        Metric::TokensOut => Some("estimated_tokens_out"),
        Metric::CostUsd => Some("estimated_cost_usd"),
        Metric::EgressBytes => Some("estimated_bytes"),
        Metric::Rows => Some("estimated_rows"),
        Metric::WallTimeMs => Some("estimated_wall_time_ms"),
        Metric::ToolCalls => None,
    }
}

/// What an action reserves against `metric`, in stored units. Malformed or negative
/// estimates are refused with the attribute named (an estimate is how a caller asks
/// for room; a wrong one must not pass silently).
fn estimate(metric: Metric, action: &NormalizedAction) -> Result<i64, ApiError> {
    let Some(name) = estimate_attribute(metric) else {
        return Ok(0);
    };
    let Some(text) = action.attributes.get(name) else {
        return Ok(0);
    };
    let value: f64 = text.trim().parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "action.attributes.{name}: {text:?} is not a number"
        ))
    })?;
    if !(0.0..=1e15).contains(&value) {
        return Err(ApiError::BadRequest(format!(
            "action.attributes.{name}: {value} is not a usable estimate (0 to 1e15)"
        )));
    }
    Ok((value * metric.scale()).round() as i64)
}

/// Checks every estimate attribute an action carries, before anything is stored.
pub(crate) fn check_estimates(action: &NormalizedAction) -> Result<(), ApiError> {
    for m in Metric::ALL {
        estimate(m, action)?;
    }
    Ok(())
}

/// The history row of one admitted tool call.
pub(crate) fn tool_call(action: &NormalizedAction, now: i64) -> UsageRow {
    UsageRow {
        time_us: now,
        tenant: action.tenant.clone(),
        agent: action.agent.clone(),
        session: action.session.clone(),
        channel: action.channel.as_str().into(),
        tool: action.tool.clone(),
        tool_calls: 1,
        ..UsageRow::default()
    }
}

/// The charges of an admission: a tool call for `tool_calls` budgets, the estimate for
/// the others.
pub(crate) fn admission(
    budgets: &[&Budget],
    action: &NormalizedAction,
    now: i64,
) -> Result<Vec<Charge>, ApiError> {
    budgets
        .iter()
        .map(|b| {
            let (used, reserved) = match b.metric {
                Metric::ToolCalls => (1, 0),
                m => (0, estimate(m, action)?),
            };
            Ok(Charge {
                budget: b.id.clone(),
                scope_key: b.key(action),
                window_start: b.window.start(now),
                limit: b.limit,
                hard: b.hard,
                used,
                reserved,
            })
        })
        .collect()
}

/// The usage a report carries, as one history row (`None` when it carries none).
pub(crate) fn reported_usage(
    policy: &Policy,
    action: &NormalizedAction,
    result: &ResultMeta,
    decision_seq: u64,
    now: i64,
) -> UsageRow {
    let usage = result.usage.unwrap_or_default();
    let model = action.attributes.get("model").cloned().unwrap_or_default();
    let cost_micro_usd = if usage.cost_usd > 0.0 {
        (usage.cost_usd * 1_000_000.0).round() as i64
    } else {
        policy
            .price(&model)
            .map_or(0, |p| p.cost_micro_usd(usage.tokens_in, usage.tokens_out))
    };
    let external = result.egress() == warden_proto::v1::Egress::External
        || action.egress == Some(Egress::External);
    let big = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    UsageRow {
        time_us: now,
        tenant: action.tenant.clone(),
        agent: action.agent.clone(),
        session: action.session.clone(),
        channel: action.channel.as_str().into(),
        tool: action.tool.clone(),
        model,
        decision_seq: big(decision_seq),
        tokens_in: big(usage.tokens_in),
        tokens_out: big(usage.tokens_out),
        cost_micro_usd,
        egress_bytes: if external { big(result.bytes) } else { 0 },
        rows: big(result.rows),
        wall_time_ms: big(result.duration_ms),
        tool_calls: 0,
    }
}

/// Whether a history row carries any usage worth a row.
pub(crate) fn carries_usage(u: &UsageRow) -> bool {
    u.tokens_in != 0
        || u.tokens_out != 0
        || u.cost_micro_usd != 0
        || u.egress_bytes != 0
        || u.rows != 0
        || u.wall_time_ms != 0
        || u.tool_calls != 0
}

/// The settlement of a report: actual usage added, the admission's estimate released.
pub(crate) fn settlement(
    budgets: &[&Budget],
    action: &NormalizedAction,
    usage: &UsageRow,
    now: i64,
) -> Result<Vec<Charge>, ApiError> {
    budgets
        .iter()
        .filter(|b| b.metric != Metric::ToolCalls)
        .map(|b| {
            let used = match b.metric {
                Metric::Tokens => usage.tokens_in.saturating_add(usage.tokens_out),
                Metric::TokensIn => usage.tokens_in,
                Metric::TokensOut => usage.tokens_out,
                Metric::CostUsd => usage.cost_micro_usd,
                Metric::EgressBytes => usage.egress_bytes,
                Metric::Rows => usage.rows,
                Metric::WallTimeMs => usage.wall_time_ms,
                Metric::ToolCalls => 0,
            };
            Ok(Charge {
                budget: b.id.clone(),
                scope_key: b.key(action),
                window_start: b.window.start(now),
                limit: b.limit,
                hard: b.hard,
                used,
                reserved: estimate(b.metric, action)?,
            })
        })
        .collect()
}

/// What is left of each budget after a change, for `Decision.budget_remaining`.
pub(crate) fn remaining(budgets: &[&Budget], after: &[BudgetRow]) -> Vec<BudgetRemaining> {
    after
        .iter()
        .filter_map(|row| {
            let b = budgets.iter().find(|b| b.id == row.budget)?;
            Some(BudgetRemaining {
                budget: b.id.clone(),
                metric: b.metric.as_str().into(),
                remaining: b.metric.display(
                    b.limit
                        .saturating_sub(row.used)
                        .saturating_sub(row.reserved)
                        .max(0),
                ),
            })
        })
        .collect()
}

/// Alerts for budgets whose usage crossed one of their `alert_at` thresholds with this
/// change. Each threshold is announced once per window, by whichever replica raises the
/// counter's mark first. Crossing 100% of a soft budget is `budget_exceeded`.
pub(crate) async fn threshold_alerts(
    shared: &Shared,
    budgets: &[&Budget],
    after: &[BudgetRow],
    action: &NormalizedAction,
) -> Result<Vec<AlertEvent>, ApiError> {
    let mut events = Vec::new();
    for row in after {
        let Some(b) = budgets.iter().find(|b| b.id == row.budget) else {
            continue;
        };
        if b.limit <= 0 {
            continue;
        }
        let fraction = row.used as f64 / b.limit as f64;
        let Some(crossed) = b.alert_at.iter().rev().find(|t| fraction >= **t) else {
            continue;
        };
        let permille = (crossed * 1000.0).round() as i64;
        if !shared.store.budget_mark_alerted(row, permille).await? {
            continue;
        }
        let kind = if fraction >= 1.0 {
            AlertEventKind::BudgetExceeded
        } else {
            AlertEventKind::BudgetThreshold
        };
        let m = b.metric;
        events.push(
            AlertEvent {
                tenant: action.tenant.clone(),
                agent: action.agent.clone(),
                session: action.session.clone(),
                rules: vec![format!("budget:{}", b.id)],
                reason: format!(
                    "budget {} reached {:.0}% of its limit: {} of {} {} this {}",
                    b.id,
                    crossed * 100.0,
                    m.display(row.used),
                    m.display(b.limit),
                    m.as_str(),
                    b.window.as_str()
                ),
                ..AlertEvent::new(kind)
            }
            .detail("budget", b.id.as_str())
            .detail("metric", m.as_str())
            .detail("scope", b.scope.as_str())
            .detail("window", b.window.as_str())
            .detail("used", m.display(row.used))
            .detail("limit", m.display(b.limit))
            .detail("threshold", *crossed)
            .detail("hard", b.hard),
        );
    }
    Ok(events)
}

/// The reason of a budget refusal.
pub(crate) fn refusal_reason(budgets: &[&Budget], r: &Refusal) -> String {
    let Some(b) = budgets.iter().find(|b| b.id == r.budget) else {
        return format!("budget {} is spent", r.budget);
    };
    let m = b.metric;
    let window = match b.window {
        Window::Session => "in this session".to_string(),
        w => format!("this {}", w.as_str()),
    };
    format!(
        "budget {} is spent: {} of {} {} used {window} by this {}{}",
        b.id,
        m.display(r.used),
        m.display(r.limit),
        m.as_str(),
        b.scope.as_str(),
        if r.reserved > 0 {
            format!(
                " ({} more reserved by actions still running)",
                m.display(r.reserved)
            )
        } else {
            String::new()
        }
    )
}

pub(crate) struct BudgetsService {
    shared: Shared,
}

impl BudgetsService {
    pub(crate) fn new(shared: Shared) -> Self {
        BudgetsService { shared }
    }

    async fn get_usage(&self, r: GetUsageRequest) -> Result<GetUsageResponse, ApiError> {
        let tenant = identity("tenant", &r.tenant)?;
        let agent = if r.agent.trim().is_empty() {
            String::new()
        } else {
            identity("agent", &r.agent)?
        };
        let session = if r.session.trim().is_empty() {
            String::new()
        } else {
            identity("session", &r.session)?
        };
        let policy = self.shared.policy.current();
        let now = now_us();
        let mut budgets = Vec::new();
        for b in policy.budgets() {
            let applies = match b.scope {
                Scope::Tenant => true,
                Scope::Agent => !agent.is_empty(),
                Scope::Session => !agent.is_empty() && !session.is_empty(),
            };
            if !applies {
                continue;
            }
            let key = b.scope.key(&tenant, &agent, &session);
            let start = b.window.start(now);
            let (used, reserved) = self.shared.store.budget_counter(&b.id, &key, start).await?;
            let m = b.metric;
            budgets.push(BudgetUsage {
                budget: b.id.clone(),
                metric: m.as_str().into(),
                scope: b.scope.as_str().into(),
                window: b.window.as_str().into(),
                window_start_us: start,
                limit: m.display(b.limit),
                used: m.display(used),
                reserved: m.display(reserved),
                remaining: m.display(b.limit.saturating_sub(used).saturating_sub(reserved).max(0)),
                hard: b.hard,
            });
        }
        let since = if r.since_us > 0 {
            r.since_us
        } else {
            now - 86_400_000_000
        };
        let limit = match r.history_limit {
            0 => 100,
            n => n.min(1000),
        };
        let small = |n: i64| u64::try_from(n).unwrap_or(0);
        let history = self
            .shared
            .store
            .usage_history(&tenant, &agent, &session, since, limit)
            .await?
            .into_iter()
            .map(|u| UsageRecord {
                time_us: u.time_us,
                tenant: u.tenant,
                agent: u.agent,
                session: u.session,
                channel: u.channel,
                tool: u.tool,
                model: u.model,
                decision_seq: small(u.decision_seq),
                tokens_in: small(u.tokens_in),
                tokens_out: small(u.tokens_out),
                cost_usd: Metric::CostUsd.display(u.cost_micro_usd),
                egress_bytes: small(u.egress_bytes),
                rows: small(u.rows),
                wall_time_ms: small(u.wall_time_ms),
                tool_calls: small(u.tool_calls),
            })
            .collect();
        Ok(GetUsageResponse { budgets, history })
    }
}

#[tonic::async_trait]
impl Budgets for BudgetsService {
    async fn get_usage(
        &self,
        request: Request<GetUsageRequest>,
    ) -> Result<Response<GetUsageResponse>, Status> {
        Ok(Response::new(
            BudgetsService::get_usage(self, request.into_inner()).await?,
        ))
    }
}
