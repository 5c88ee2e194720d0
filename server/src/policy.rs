//! The policy engine: a YAML policy compiled into matchers, evaluated against a
//! [`NormalizedAction`].
//!
//! Every rule whose conditions all hold is considered, and the most restrictive verdict
//! wins (deny > require_approval > allow_with_redaction > allow). When no rule matches,
//! the policy's `default` decides. A [`Policy`] is immutable; the daemon swaps whole
//! policies through a `tokio::sync::watch` channel, so a request that started on one
//! policy finishes on it.

pub mod alerts;
pub mod budgets;
mod compile;
mod conditions;
mod model;
mod never;
mod profiles;
pub mod rate_limits;
mod selfguard;
mod triggers;

use std::fmt;

use std::collections::BTreeSet;

use globset::GlobSet;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::normalize::{Channel, Egress, NormalizedAction};
use crate::session::{Escalation, Observation, SessionState, Zone};
pub use alerts::{AlertEventKind, AlertFormat, AlertRoute};
pub use budgets::{Budget, Metric, Price, Scope, Window};
use conditions::Conditions;
pub use conditions::Subject;
pub use profiles::{PROFILES, ProfileInfo};
pub use rate_limits::RateLimit;
pub use selfguard::SelfGuard;
use triggers::Trigger;

/// The built-in default policy's YAML, compiled into the binary.
pub const DEFAULT_POLICY_YAML: &str = include_str!("../../policies/default.yaml");
/// Source name of the built-in default policy.
pub const DEFAULT_POLICY_SOURCE: &str = "built-in default";

/// A decision's verdict, ordered from least to most restrictive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allow,
    AllowWithRedaction,
    RequireApproval,
    Deny,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::AllowWithRedaction => "allow_with_redaction",
            Verdict::RequireApproval => "require_approval",
            Verdict::Deny => "deny",
        }
    }

    pub fn parse(s: &str) -> Option<Verdict> {
        [
            Verdict::Allow,
            Verdict::AllowWithRedaction,
            Verdict::RequireApproval,
            Verdict::Deny,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// The proto enum value.
    pub fn to_proto(self) -> warden_proto::v1::Verdict {
        use warden_proto::v1::Verdict as P;
        match self {
            Verdict::Allow => P::Allow,
            Verdict::AllowWithRedaction => P::AllowWithRedaction,
            Verdict::RequireApproval => P::RequireApproval,
            Verdict::Deny => P::Deny,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A policy that failed to load: where and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct PolicyError {
    pub file: String,
    /// 1-based; 0 when the problem has no position (an unreadable file).
    pub line: u64,
    pub column: u64,
    pub message: String,
}

/// Where a rule or trigger was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A redaction the interceptor must apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Redaction {
    pub rule_id: String,
    pub pattern: String,
    pub replacement: String,
}

/// A compiled rule.
#[derive(Debug)]
struct Rule {
    origin: Origin,
    id: String,
    verdict: Verdict,
    reason: String,
    /// Break-glass never overrides this rule.
    unbreakable: bool,
    redactions: Vec<Redaction>,
    conditions: Conditions,
}

/// A rule's meaning, as it enters the policy version.
#[derive(Serialize)]
struct RuleSpec<'a> {
    id: &'a str,
    decision: Verdict,
    reason: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    unbreakable: bool,
    #[serde(skip_serializing_if = "<[Redaction]>::is_empty")]
    redact: &'a [Redaction],
    #[serde(rename = "match")]
    conditions: &'a conditions::ConditionSpec,
}

impl Rule {
    fn spec(&self) -> RuleSpec<'_> {
        RuleSpec {
            id: &self.id,
            decision: self.verdict,
            reason: &self.reason,
            unbreakable: self.unbreakable,
            redact: &self.redactions,
            conditions: &self.conditions.spec,
        }
    }
}

/// A compiled, immutable policy.
#[derive(Debug)]
pub struct Policy {
    /// Lower-case hex SHA-256 of the canonical form (profiles included).
    version: String,
    /// The policy's `name`.
    name: String,
    /// File path, or [`DEFAULT_POLICY_SOURCE`].
    source: String,
    /// The YAML as loaded.
    text: String,
    default: Verdict,
    /// Built-in profiles included, sorted.
    profiles: Vec<String>,
    rules: Vec<Rule>,
    /// For each channel (indexed by `Channel as usize`), the rules that can match it,
    /// in policy order: `decide` never looks at a rule for another channel.
    by_channel: [Vec<usize>; Channel::ALL.len()],
    triggers: Vec<Trigger>,
    /// Webhook routes (`alerts:`), in policy order.
    alerts: Vec<AlertRoute>,
    budgets: Vec<Budget>,
    prices: Vec<Price>,
    /// Token buckets per tool category, in policy order.
    rate_limits: Vec<RateLimit>,
    internal_hosts: GlobSet,
    /// The globs `internal_hosts` was built from (profiles' included), sorted and
    /// deduplicated.
    internal_host_patterns: Vec<String>,
    idle_timeout_us: Option<i64>,
}

/// A rule or zone trigger in the canonical form that enters the policy version, for
/// comparing two policies (`wardend diff`).
#[derive(Debug, Clone)]
pub(crate) struct CanonicalItem {
    pub(crate) id: String,
    pub(crate) origin: Origin,
    /// The JSON object hashed into the version: `id`, `decision`, `reason`,
    /// `unbreakable`, `redact` and `match` for a rule; `id`, `zone`, `reason` and
    /// `on_action` or `on_result` for a trigger. Absent keys are empty or false.
    pub(crate) spec: serde_json::Value,
}

/// What the engine decided for one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    /// Rules that produced the verdict, in policy order; empty when the default decided.
    pub matched_rules: Vec<String>,
    pub reason: String,
    /// For allow_with_redaction: what to redact.
    pub redactions: Vec<Redaction>,
    /// The least a break-glass grant can bring the verdict down to: the most restrictive
    /// verdict of the matching `unbreakable` rules (allow when there are none).
    pub floor: Verdict,
    /// Unbreakable rules behind `floor`.
    pub floor_rules: Vec<String>,
}

impl Outcome {
    /// The verdict an active break-glass grant turns this outcome into, or `None` when
    /// a grant changes nothing: only refusals (deny, require_approval) are lifted, and
    /// only down to what the `unbreakable` rules alone decide (allow or
    /// require_approval; an unbreakable redaction or deny is never lifted).
    pub fn under_break_glass(&self) -> Option<Verdict> {
        let refused = matches!(self.verdict, Verdict::Deny | Verdict::RequireApproval);
        let breakable = matches!(self.floor, Verdict::Allow | Verdict::RequireApproval);
        (refused && breakable && self.floor < self.verdict).then_some(self.floor)
    }
}

impl Policy {
    /// Compiles YAML text. `source` names it in errors (a path, or the built-in name).
    pub fn from_yaml(source: &str, text: &str) -> Result<Policy, PolicyError> {
        compile::compile(source, text)
    }

    /// Reads and compiles a policy file.
    pub fn from_file(path: &std::path::Path) -> Result<Policy, PolicyError> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
            file: source.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read policy file: {e}"),
        })?;
        Policy::from_yaml(&source, &text)
    }

    /// The built-in default policy.
    pub fn builtin_default() -> Result<Policy, PolicyError> {
        Policy::from_yaml(DEFAULT_POLICY_SOURCE, DEFAULT_POLICY_YAML)
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Built-in profiles the policy includes (directly or through other profiles), sorted.
    pub fn profiles(&self) -> &[String] {
        &self.profiles
    }

    /// The alert routes, in policy order.
    pub fn alerts(&self) -> &[AlertRoute] {
        &self.alerts
    }

    /// Every budget, in policy order.
    pub fn budgets(&self) -> &[Budget] {
        &self.budgets
    }

    /// The budgets an action counts against (their `match` holds), as indices into
    /// [`Policy::budgets`].
    pub fn budgets_for(
        &self,
        s: &Subject<'_>,
        zone: Zone,
        session_tags: &BTreeSet<String>,
    ) -> Vec<usize> {
        matching(
            self.budgets.iter().map(|b| &b.conditions),
            s,
            zone,
            session_tags,
        )
    }

    /// Every rate limit, in policy order.
    pub fn rate_limits(&self) -> &[RateLimit] {
        &self.rate_limits
    }

    /// The rate limits (tool categories) an action falls under, as indices into
    /// [`Policy::rate_limits`].
    pub fn rate_limits_for(
        &self,
        s: &Subject<'_>,
        zone: Zone,
        session_tags: &BTreeSet<String>,
    ) -> Vec<usize> {
        matching(
            self.rate_limits.iter().map(|r| &r.conditions),
            s,
            zone,
            session_tags,
        )
    }

    /// The price of `model` from the price table (first matching line).
    pub fn price(&self, model: &str) -> Option<&Price> {
        self.prices.iter().find(|p| p.matcher.is_match(model))
    }

    /// How long a session may sit idle before it ends, if the policy limits it.
    pub fn idle_timeout_us(&self) -> Option<i64> {
        self.idle_timeout_us
    }

    /// The decision when no rule matches.
    pub(crate) fn default_verdict(&self) -> Verdict {
        self.default
    }

    /// The `internal_hosts` globs (profiles' included), sorted.
    pub(crate) fn internal_host_patterns(&self) -> &[String] {
        &self.internal_host_patterns
    }

    /// Every rule (profiles' included) in policy order, in canonical form.
    pub(crate) fn canonical_rules(&self) -> Vec<CanonicalItem> {
        self.rules
            .iter()
            .map(|r| CanonicalItem {
                id: r.id.clone(),
                origin: r.origin.clone(),
                spec: serde_json::to_value(r.spec()).unwrap_or_default(),
            })
            .collect()
    }

    /// Every zone trigger (profiles' included) in policy order, in canonical form.
    pub(crate) fn canonical_triggers(&self) -> Vec<CanonicalItem> {
        self.triggers
            .iter()
            .map(|t| CanonicalItem {
                id: t.id.clone(),
                origin: t.origin.clone(),
                spec: serde_json::to_value(t.spec()).unwrap_or_default(),
            })
            .collect()
    }

    /// The action as this policy's rules see it.
    pub fn context<'a>(&self, action: &'a NormalizedAction, guard: &SelfGuard) -> Subject<'a> {
        let egress = if action.hosts.is_empty() {
            None
        } else if action
            .hosts
            .iter()
            .all(|h| crate::normalize::is_internal(h) || self.internal_hosts.is_match(h))
        {
            Some(Egress::Internal)
        } else {
            Some(Egress::External)
        };
        let tags = action
            .attributes
            .get("tags")
            .map(|t| {
                t.split(',')
                    .map(|x| x.trim().to_ascii_lowercase())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let sensitivity = action
            .attributes
            .get("sensitivity")
            .map(|s| s.trim().to_ascii_lowercase())
            .unwrap_or_default();
        Subject {
            action,
            egress,
            tags,
            sensitivity,
            warden_self: guard.touches(action),
        }
    }

    /// Action triggers that would raise a session in `state` for this action.
    pub fn action_triggers(&self, s: &Subject<'_>, state: &SessionState) -> Vec<Escalation> {
        triggers::on_action(&self.triggers, s, state)
    }

    /// Result triggers that would raise a session that is `after` once `r` is counted.
    pub fn result_triggers(&self, r: &Observation, after: &SessionState) -> Vec<Escalation> {
        triggers::on_result(&self.triggers, r, after)
    }

    /// Decides one action in a session in `zone` whose results carried `session_tags`.
    /// Pure: same inputs, same outcome.
    pub fn decide(&self, s: &Subject<'_>, zone: Zone, session_tags: &BTreeSet<String>) -> Outcome {
        let mut verdict = None;
        let mut matched: Vec<&Rule> = Vec::new();
        let mut floor = Verdict::Allow;
        let mut floor_rules: Vec<&Rule> = Vec::new();
        let mut redactions = Vec::new();
        let candidates = &self.by_channel[s.action.channel as usize];
        for rule in candidates.iter().map(|&i| &self.rules[i]) {
            if !rule.conditions.matches(s, zone, session_tags) {
                continue;
            }
            if rule.unbreakable {
                if rule.verdict > floor {
                    floor = rule.verdict;
                    floor_rules.clear();
                }
                if rule.verdict == floor {
                    floor_rules.push(rule);
                }
            }
            redactions.extend(rule.redactions.iter().cloned());
            match verdict {
                Some(v) if rule.verdict < v => continue,
                Some(v) if rule.verdict == v => matched.push(rule),
                _ => {
                    verdict = Some(rule.verdict);
                    matched.clear();
                    matched.push(rule);
                }
            }
        }
        let ids = |rules: &[&Rule]| rules.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
        let floor_rules = if floor == Verdict::Allow {
            Vec::new()
        } else {
            ids(&floor_rules)
        };
        match verdict {
            None => Outcome {
                verdict: self.default,
                matched_rules: Vec::new(),
                reason: format!("no rule matched; the policy default is {}", self.default),
                redactions: Vec::new(),
                floor,
                floor_rules,
            },
            Some(verdict) => Outcome {
                verdict,
                matched_rules: ids(&matched),
                reason: matched
                    .iter()
                    .map(|r| explained(r, s.action))
                    .collect::<Vec<_>>()
                    .join("; "),
                redactions: if verdict == Verdict::AllowWithRedaction {
                    redactions
                } else {
                    Vec::new()
                },
                floor,
                floor_rules,
            },
        }
    }

    /// Decides one action as the first action of a fresh session, with only the
    /// built-in self-protection paths (tests and benchmarks).
    pub fn evaluate(&self, action: &NormalizedAction) -> Outcome {
        let subject = self.context(action, SelfGuard::builtin());
        self.decide(&subject, Zone::Safe, &BTreeSet::new())
    }
}

/// Indices of the conditions that hold for an action (budgets' and rate limits' `match`).
fn matching<'c>(
    conditions: impl Iterator<Item = &'c Conditions>,
    s: &Subject<'_>,
    zone: Zone,
    session_tags: &BTreeSet<String>,
) -> Vec<usize> {
    conditions
        .enumerate()
        .filter(|(_, c)| c.matches(s, zone, session_tags))
        .map(|(i, _)| i)
        .collect()
}

/// A rule's reason, followed for rules that matched on command facts by what the
/// analyzer found ("… (starts a shell through vim (`:!/bin/sh`))").
fn explained(rule: &Rule, action: &NormalizedAction) -> String {
    let Some(facts) = &rule.conditions.facts else {
        return rule.reason.clone();
    };
    let notes: Vec<&str> = action
        .fact_notes
        .iter()
        .filter(|(f, _)| facts.contains(f))
        .map(|(_, n)| n.as_str())
        .take(2)
        .collect();
    if notes.is_empty() {
        rule.reason.clone()
    } else {
        format!("{}: {}", rule.reason, notes.join("; "))
    }
}

/// SHA-256 over a canonical JSON rendering of what the policy means (not its
/// formatting or comments), hex encoded. Profiles enter through their rules.
// One argument per part of the canonical form; a struct would only repeat them.
#[allow(clippy::too_many_arguments)]
fn canonical_version(
    default: Verdict,
    profiles: &[String],
    internal_hosts: &[String],
    idle_timeout_us: Option<i64>,
    rules: &[Rule],
    triggers: &[Trigger],
    budgets: &[Budget],
    prices: &[Price],
    rate_limits: &[RateLimit],
) -> String {
    #[derive(Serialize)]
    struct Canonical<'a> {
        format: u32,
        default: Verdict,
        profiles: &'a [String],
        internal_hosts: &'a [String],
        idle_timeout_us: Option<i64>,
        rules: Vec<RuleSpec<'a>>,
        zone_triggers: Vec<triggers::TriggerSpec<'a>>,
        // Left out when empty, so policies without them keep their version.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        budgets: Vec<budgets::BudgetSpec<'a>>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        prices: Vec<budgets::PriceSpec<'a>>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        rate_limits: Vec<rate_limits::RateLimitSpec<'a>>,
    }
    let canonical = Canonical {
        format: 2,
        default,
        profiles,
        internal_hosts,
        idle_timeout_us,
        rules: rules.iter().map(Rule::spec).collect(),
        zone_triggers: triggers.iter().map(Trigger::spec).collect(),
        budgets: budgets.iter().map(Budget::spec).collect(),
        prices: prices.iter().map(Price::spec).collect(),
        rate_limits: rate_limits.iter().map(RateLimit::spec).collect(),
    };
    // Serializing plain strings, vectors and enums cannot fail.
    let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests;
