//! The alerts an Evaluate decision raises, built once its audit record is committed.

use super::super::approvals::Gated;
use crate::alerts::{AlertEvent, AlertEventKind};
use crate::normalize::NormalizedAction;
use crate::policy::{Outcome, Verdict};
use crate::redact;

/// Whether a decision raises any alert; `allow` decisions without break-glass do not,
/// and skip building events at all.
pub(super) fn raises_alerts(gated: &Gated) -> bool {
    matches!(gated.verdict, Verdict::Deny | Verdict::RequireApproval)
        || !gated.break_glass_id.is_empty()
}

/// The events about one committed decision, most specific first (a route receives
/// the first it subscribes to, see [`crate::alerts::Alerts::emit_all`]):
/// `break_glass_used` when a grant lifted a refusal, then `deny` or `require_approval`
/// for the final verdict. `base` carries the decision's fields.
pub(super) fn decision_alerts(
    action: &NormalizedAction,
    outcome: &Outcome,
    gated: &Gated,
    base: AlertEvent,
) -> Vec<AlertEvent> {
    let base = base
        .detail("channel", action.channel.as_str())
        .detail("tool", action.tool.as_str())
        .detail("operation", action.operation.as_str())
        .detail("resource", redact::redact(&action.resource).into_owned())
        .detail("command", redact::redact(&action.command_line).into_owned())
        .detail("approval_id", gated.approval_id.as_str())
        .detail("break_glass_id", gated.break_glass_id.as_str());
    let mut events = Vec::new();
    if !gated.break_glass_id.is_empty() {
        events.push(
            AlertEvent {
                kind: AlertEventKind::BreakGlassUsed,
                ..base.clone()
            }
            .detail("overridden_verdict", outcome.verdict.as_str())
            .detail("overridden_reason", outcome.reason.as_str()),
        );
    }
    let kind = match gated.verdict {
        Verdict::Deny => Some(AlertEventKind::Deny),
        Verdict::RequireApproval => Some(AlertEventKind::RequireApproval),
        Verdict::Allow | Verdict::AllowWithRedaction => None,
    };
    if let Some(kind) = kind {
        events.push(AlertEvent { kind, ..base });
    }
    events
}
