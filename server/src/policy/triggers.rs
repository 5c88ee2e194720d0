//! Zone triggers: declarative observations that escalate a session.
//!
//! An action trigger fires when an action matching its conditions is evaluated; a result
//! trigger fires when a reported result (or the session's totals after it) matches.
//! Triggers only ever raise a zone.

use globset::GlobSet;
use serde::Serialize;

use super::conditions::{ConditionSpec, Conditions, Subject};
use crate::session::{Escalation, Observation, SessionState, Zone};

/// Conditions over a reported result, as they enter the policy version.
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct ResultSpec {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) tags: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) sensitivity: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) egress: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) bytes_over: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) rows_over: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) session_bytes_over: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) session_rows_over: Option<u64>,
}

/// Compiled result conditions.
#[derive(Debug, Default)]
pub(super) struct ResultConditions {
    pub(super) spec: ResultSpec,
    pub(super) tags: Option<GlobSet>,
}

impl ResultConditions {
    fn matches(&self, r: &Observation, after: &SessionState) -> bool {
        let s = &self.spec;
        if let Some(tags) = &self.tags
            && !r.tags.iter().any(|t| tags.is_match(t))
        {
            return false;
        }
        if !s.sensitivity.is_empty() && !s.sensitivity.contains(&r.sensitivity) {
            return false;
        }
        if !s.egress.is_empty() && !s.egress.contains(&r.egress) {
            return false;
        }
        let over = |limit: Option<u64>, value: u64| limit.is_none_or(|l| value > l);
        over(s.bytes_over, r.bytes)
            && over(s.rows_over, r.rows)
            && over(s.session_bytes_over, after.bytes)
            && over(s.session_rows_over, after.rows)
    }
}

/// What a trigger watches.
#[derive(Debug)]
pub(super) enum Watch {
    Action(Box<Conditions>),
    Result(ResultConditions),
}

/// A compiled zone trigger.
#[derive(Debug)]
pub(super) struct Trigger {
    pub(super) origin: super::Origin,
    pub(super) id: String,
    pub(super) zone: Zone,
    pub(super) reason: String,
    pub(super) watch: Watch,
}

/// A trigger's meaning, as it enters the policy version.
#[derive(Debug, Serialize)]
pub(super) struct TriggerSpec<'a> {
    id: &'a str,
    zone: Zone,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    on_action: Option<&'a ConditionSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    on_result: Option<&'a ResultSpec>,
}

impl Trigger {
    pub(super) fn spec(&self) -> TriggerSpec<'_> {
        let (on_action, on_result) = match &self.watch {
            Watch::Action(c) => (Some(&c.spec), None),
            Watch::Result(r) => (None, Some(&r.spec)),
        };
        TriggerSpec {
            id: &self.id,
            zone: self.zone,
            reason: &self.reason,
            on_action,
            on_result,
        }
    }

    fn escalation(&self) -> Escalation {
        Escalation {
            trigger: self.id.clone(),
            zone: self.zone,
            reason: self.reason.clone(),
        }
    }
}

/// Action triggers that fire for `s` in a session in `state` and would raise its zone.
pub(super) fn on_action(
    triggers: &[Trigger],
    s: &Subject<'_>,
    state: &SessionState,
) -> Vec<Escalation> {
    let mut zone = state.zone;
    let mut fired = Vec::new();
    for t in triggers {
        if let Watch::Action(c) = &t.watch
            && t.zone > state.zone
            && c.matches(s, zone, &state.tags)
        {
            zone = zone.max(t.zone);
            fired.push(t.escalation());
        }
    }
    fired
}

/// Result triggers that fire for `r`, given the session `after` the result was counted,
/// and would raise its zone.
pub(super) fn on_result(
    triggers: &[Trigger],
    r: &Observation,
    after: &SessionState,
) -> Vec<Escalation> {
    triggers
        .iter()
        .filter(|t| t.zone > after.zone)
        .filter(|t| matches!(&t.watch, Watch::Result(c) if c.matches(r, after)))
        .map(Trigger::escalation)
        .collect()
}
