//! [`AlertEvent`]: what happened, as the code that saw it describes it. Routes decide
//! where it goes and in which format (`payload.rs`).

use serde_json::{Map, Value};

use crate::policy::AlertEventKind;

/// Longest string value an alert carries in `details`; longer ones are cut.
const MAX_DETAIL_CHARS: usize = 1024;

/// One thing worth an alert. Fill what applies and leave the rest empty: the JSON
/// payload carries every field for every event (empty when it does not apply), so a
/// receiver parses one shape.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertEvent {
    pub kind: AlertEventKind,
    /// When it happened, microseconds since the Unix epoch; 0 means "now" at emit.
    pub time_us: i64,
    pub tenant: String,
    pub agent: String,
    pub session: String,
    /// Audit sequence number of the committed record this alert is about (the
    /// decision's `id.seq`); 0 when there is none (e.g. `chain_broken`).
    pub decision_seq: u64,
    /// The decision's final verdict (`deny`, `require_approval`, `allow`, …); empty
    /// when the event is not about a decision.
    pub verdict: String,
    /// Rule ids behind the verdict.
    pub rules: Vec<String>,
    /// Human explanation; for decisions, the decision's reason.
    pub reason: String,
    /// Version of the policy the decision was made under; empty means the policy in
    /// force at emit.
    pub policy_version: String,
    /// The session's zone after the action; empty when not about a session.
    pub zone: String,
    /// Event-specific fields (docs/POLICY.md, "Alerts", lists them per event).
    pub details: Map<String, Value>,
}

impl AlertEvent {
    /// An event of `kind` with every other field empty.
    pub fn new(kind: AlertEventKind) -> AlertEvent {
        AlertEvent {
            kind,
            time_us: 0,
            tenant: String::new(),
            agent: String::new(),
            session: String::new(),
            decision_seq: 0,
            verdict: String::new(),
            rules: Vec::new(),
            reason: String::new(),
            policy_version: String::new(),
            zone: String::new(),
            details: Map::new(),
        }
    }

    /// Adds one `details` field. Long strings are cut to a bounded length; empty
    /// strings are left out.
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> AlertEvent {
        let value = match value.into() {
            Value::String(s) if s.is_empty() => return self,
            Value::String(s) => Value::String(truncate(&s, MAX_DETAIL_CHARS)),
            other => other,
        };
        self.details.insert(key.to_string(), value);
        self
    }
}

/// `s` cut to at most `max` characters, marked with `…` when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_skip_empty_strings_and_cut_long_ones() {
        let e = AlertEvent::new(AlertEventKind::Deny)
            .detail("empty", "")
            .detail("long", "x".repeat(5000))
            .detail("n", 3);
        assert!(!e.details.contains_key("empty"));
        assert_eq!(e.details["n"], 3);
        let long = e.details["long"].as_str().unwrap();
        assert_eq!(long.chars().count(), MAX_DETAIL_CHARS + 1);
        assert!(long.ends_with('…'));
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hé", 2), "hé");
    }
}
