//! Sessions: the zone and counters that make Warden judge an action in the context of
//! what the session has already done.
//!
//! [`SessionState`] is plain data. [`judge`] and [`observe`] are the pure steps the
//! daemon, `wardend check` and `wardend simulate` all run: same policy, same state, same
//! action ⇒ same decision and same next state. Persistence and cross-replica locking live
//! in the store; nothing here knows about them.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::normalize::NormalizedAction;
use crate::policy::{Outcome, Policy, SelfGuard, Verdict};

/// A session's zone. Ordered: a session only ever moves up.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Zone {
    #[default]
    Safe,
    Sensitive,
    Commitment,
    Irreversible,
}

impl Zone {
    pub const ALL: [Zone; 4] = [
        Zone::Safe,
        Zone::Sensitive,
        Zone::Commitment,
        Zone::Irreversible,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Zone::Safe => "safe",
            Zone::Sensitive => "sensitive",
            Zone::Commitment => "commitment",
            Zone::Irreversible => "irreversible",
        }
    }

    pub fn parse(s: &str) -> Option<Zone> {
        Zone::ALL.into_iter().find(|z| z.as_str() == s)
    }

    /// Stored as a small integer (0 = safe).
    pub fn as_i16(self) -> i16 {
        self as i16
    }

    pub fn from_i16(n: i16) -> Option<Zone> {
        Zone::ALL.get(usize::try_from(n).ok()?).copied()
    }

    pub fn to_proto(self) -> warden_proto::v1::Zone {
        use warden_proto::v1::Zone as P;
        match self {
            Zone::Safe => P::Safe,
            Zone::Sensitive => P::Sensitive,
            Zone::Commitment => P::Commitment,
            Zone::Irreversible => P::Irreversible,
        }
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is known about a session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    pub zone: Zone,
    /// Actions evaluated in the session.
    pub actions: u64,
    /// Results reported in the session.
    pub reports: u64,
    /// Bytes the session's reported results carried, in all.
    pub bytes: u64,
    /// Rows the session's reported results carried, in all.
    pub rows: u64,
    /// Every tag a reported result has carried (lower-case).
    pub tags: BTreeSet<String>,
    /// Microseconds since the epoch.
    pub started_us: i64,
    pub last_seen_us: i64,
    /// Set once the session is closed (or found expired).
    pub closed_us: Option<i64>,
    /// Run caps set when the session was opened: once spent, every further action is
    /// denied.
    pub max_tokens: Option<u64>,
    /// In micro-USD.
    pub max_cost_micro_usd: Option<i64>,
    /// Tokens (in + out) and cost (micro-USD) the session's reports carried.
    pub tokens: u64,
    pub cost_micro_usd: i64,
}

impl SessionState {
    /// A session that starts now, in the safe zone.
    pub fn new(now_us: i64) -> SessionState {
        SessionState {
            started_us: now_us,
            last_seen_us: now_us,
            ..SessionState::default()
        }
    }

    /// The run cap that is spent, in words, if one is.
    pub fn spent_cap(&self) -> Option<String> {
        if let Some(max) = self.max_tokens
            && self.tokens >= max
        {
            return Some(format!(
                "the session's run cap max_tokens={max} is spent ({} tokens used)",
                self.tokens
            ));
        }
        if let Some(max) = self.max_cost_micro_usd
            && self.cost_micro_usd >= max
        {
            return Some(format!(
                "the session's run cap max_cost_usd={} is spent (${} used)",
                max as f64 / 1e6,
                self.cost_micro_usd as f64 / 1e6
            ));
        }
        None
    }

    /// Why the session can take no more actions at `now_us`, if it cannot.
    pub fn ended(&self, policy: &Policy, now_us: i64) -> Option<String> {
        if self.closed_us.is_some() {
            return Some("the session is closed; open a new session".into());
        }
        let idle = policy.idle_timeout_us()?;
        (now_us.saturating_sub(self.last_seen_us) > idle).then(|| {
            format!(
                "the session expired after {} idle (policy sessions.idle_timeout); open a new session",
                crate::duration::format_us(idle)
            )
        })
    }
}

/// A result as the zone triggers see it (validated ResultMeta).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// low, medium or high; empty when not reported.
    pub sensitivity: String,
    /// Lower-case, sorted, deduplicated.
    pub tags: Vec<String>,
    pub rows: u64,
    pub bytes: u64,
    /// internal or external; empty when not reported.
    pub egress: String,
    /// Tokens in + out the result reported.
    pub tokens: u64,
    /// Its cost in micro-USD (reported, or from the policy's price table).
    pub cost_micro_usd: i64,
}

/// A zone trigger that fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    pub trigger: String,
    pub zone: Zone,
    pub reason: String,
}

/// The decision for one action and the session state after it.
#[derive(Debug, Clone)]
pub struct Judgement {
    pub outcome: Outcome,
    pub zone_before: Zone,
    pub escalations: Vec<Escalation>,
    pub next: SessionState,
    /// Indices into `Policy::budgets` of the budgets the action counts against, matched
    /// on the same subject the rules saw.
    pub budgets: Vec<usize>,
    /// Indices into `Policy::rate_limits` of the tool categories the action falls under.
    pub rate_limits: Vec<usize>,
}

/// Decides `action` in a session in `state`. Action triggers fire first, so the action is
/// judged in the zone it brings the session into (reading a credential and sending it out
/// in one command is judged as a send from the sensitive zone). Triggers fire on the
/// attempt, whatever the verdict: asking for a secret is itself a signal.
pub fn judge(
    policy: &Policy,
    guard: &SelfGuard,
    state: &SessionState,
    action: &NormalizedAction,
    now_us: i64,
) -> Judgement {
    let mut next = state.clone();
    let facts = policy.context(action, guard);
    let escalations = policy.action_triggers(&facts, state);
    for e in &escalations {
        next.zone = next.zone.max(e.zone);
    }
    let mut outcome = policy.decide(&facts, next.zone, &state.tags);
    if let Some(cap) = state.spent_cap() {
        outcome.verdict = Verdict::Deny;
        outcome.reason = format!("{cap}; open a new session to go on");
        outcome.matched_rules = vec!["session-cap".into()];
        outcome.redactions.clear();
        // A cap is money, not a rule: break-glass does not lift it.
        outcome.floor = Verdict::Deny;
        outcome.floor_rules = vec!["session-cap".into()];
    }
    next.actions = next.actions.saturating_add(1);
    next.last_seen_us = next.last_seen_us.max(now_us);
    let budgets = policy.budgets_for(&facts, next.zone, &next.tags);
    let rate_limits = policy.rate_limits_for(&facts, next.zone, &next.tags);
    Judgement {
        outcome,
        zone_before: state.zone,
        escalations,
        next,
        budgets,
        rate_limits,
    }
}

/// Folds a reported result into the session: counters, tags, and result triggers.
pub fn observe(
    policy: &Policy,
    state: &SessionState,
    result: &Observation,
    now_us: i64,
) -> (SessionState, Vec<Escalation>) {
    let mut next = state.clone();
    next.reports = next.reports.saturating_add(1);
    next.bytes = next.bytes.saturating_add(result.bytes);
    next.rows = next.rows.saturating_add(result.rows);
    next.tokens = next.tokens.saturating_add(result.tokens);
    next.cost_micro_usd = next.cost_micro_usd.saturating_add(result.cost_micro_usd);
    next.tags.extend(result.tags.iter().cloned());
    next.last_seen_us = next.last_seen_us.max(now_us);
    let escalations = policy.result_triggers(result, &next);
    for e in &escalations {
        next.zone = next.zone.max(e.zone);
    }
    (next, escalations)
}
