//! The policy file as written: YAML deserialized with source positions kept, so that
//! every later check can point at file:line:column.

use serde::Deserialize;
use serde_saphyr::Spanned;

/// Top level of a policy file (and of a built-in profile, which has the same shape).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PolicyFile {
    /// Format version; only 1 exists.
    pub(super) version: Spanned<u32>,
    /// Human name of the policy.
    #[serde(default)]
    pub(super) name: Option<String>,
    /// For readers of the file; not used by the engine.
    #[serde(default, rename = "description")]
    pub(super) _description: Option<String>,
    /// Decision when no rule matches: allow, deny or require_approval. Optional when the
    /// file uses profiles (the most restrictive of all defaults applies).
    #[serde(default, deserialize_with = "present")]
    pub(super) default: Option<Spanned<String>>,
    /// Built-in profiles whose rules and triggers are added to this file's.
    #[serde(default)]
    pub(super) profiles: Vec<Spanned<String>>,
    /// Host globs that count as internal in addition to private addresses and
    /// cluster-local names.
    #[serde(default, deserialize_with = "present")]
    pub(super) internal_hosts: Option<Spanned<Patterns>>,
    /// Session settings.
    #[serde(default, deserialize_with = "present")]
    pub(super) sessions: Option<Spanned<SessionsFile>>,
    /// Observations that escalate a session's zone.
    #[serde(default)]
    pub(super) zone_triggers: Vec<Spanned<TriggerFile>>,
    #[serde(default)]
    pub(super) rules: Vec<Spanned<RuleFile>>,
    /// Webhook routes: which events are posted where.
    #[serde(default)]
    pub(super) alerts: Vec<Spanned<AlertRouteFile>>,
    /// Usage limits per session, agent or tenant.
    #[serde(default)]
    pub(super) budgets: Vec<Spanned<BudgetFile>>,
    /// USD prices per million tokens, by model (glob); the first match wins.
    #[serde(default)]
    pub(super) prices: Vec<Spanned<PriceFile>>,
    /// Token buckets per tool category (each limit's `match`) and agent.
    #[serde(default)]
    pub(super) rate_limits: Vec<Spanned<RateLimitFile>>,
}

/// One rate limit as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RateLimitFile {
    /// Names the limit and the tool category it defines.
    pub(super) id: Spanned<String>,
    /// Refill rate: `N/PERIOD`, e.g. `30/minute`, `5/s`, `100/10m`.
    pub(super) rate: Spanned<String>,
    /// Most actions at once (the bucket's size); default: the rate's count, rounded up.
    #[serde(default, deserialize_with = "present")]
    pub(super) burst: Option<Spanned<f64>>,
    /// agent (default), session or tenant: whose bucket an action takes from.
    #[serde(default, deserialize_with = "present")]
    pub(super) scope: Option<Spanned<String>>,
    #[serde(default, rename = "description")]
    pub(super) _description: Option<String>,
    /// The actions of the category; all when omitted.
    #[serde(default, rename = "match")]
    pub(super) conditions: Option<Spanned<MatchFile>>,
}

/// One budget as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BudgetFile {
    pub(super) id: Spanned<String>,
    /// tokens, tokens_in, tokens_out, cost_usd, tool_calls, egress_bytes, rows,
    /// wall_time_ms.
    pub(super) metric: Spanned<String>,
    /// session, agent or tenant.
    pub(super) scope: Spanned<String>,
    /// session, hour, day or month (calendar, UTC).
    pub(super) window: Spanned<String>,
    /// The most the scope may use in a window, in the metric's unit (USD for cost).
    pub(super) limit: Spanned<f64>,
    /// hard (default: refuse actions once spent) or soft (alert only).
    #[serde(default, deserialize_with = "present")]
    pub(super) enforce: Option<Spanned<String>>,
    /// Fractions of the limit at which a budget_threshold alert fires (e.g. 0.8, 1.0).
    #[serde(default)]
    pub(super) alert_at: Vec<Spanned<f64>>,
    #[serde(default, rename = "description")]
    pub(super) _description: Option<String>,
    /// Which actions count against the budget; all when omitted.
    #[serde(default, rename = "match")]
    pub(super) conditions: Option<Spanned<MatchFile>>,
}

/// One line of the price table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PriceFile {
    /// Model name glob, matched against the action's `model` attribute.
    pub(super) model: Spanned<String>,
    /// USD per million input (prompt) tokens.
    pub(super) input: Spanned<f64>,
    /// USD per million output (completion) tokens.
    pub(super) output: Spanned<f64>,
}

/// `sessions:` settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SessionsFile {
    /// A session idle longer than this (e.g. `30m`, `8h`) has ended; actions in it are
    /// refused and the agent must open a new one.
    #[serde(default, deserialize_with = "present")]
    pub(super) idle_timeout: Option<Spanned<String>>,
}

/// One alert route as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AlertRouteFile {
    pub(super) id: Spanned<String>,
    /// Event names this route receives (deny, require_approval, …).
    pub(super) events: Spanned<Vec<Spanned<String>>>,
    /// Webhook URL, http or https.
    pub(super) url: Spanned<String>,
    /// json (default) or slack.
    #[serde(default, deserialize_with = "present")]
    pub(super) format: Option<Spanned<String>>,
    /// Environment variable holding the HMAC-SHA256 key; unsigned when omitted.
    #[serde(default, deserialize_with = "present")]
    pub(super) secret_env: Option<Spanned<String>>,
    /// Longest one delivery attempt may take, e.g. `5s` (the default).
    #[serde(default, deserialize_with = "present")]
    pub(super) timeout: Option<Spanned<String>>,
    #[serde(default, rename = "description")]
    pub(super) _description: Option<String>,
}

/// One rule as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RuleFile {
    pub(super) id: Spanned<String>,
    pub(super) decision: Spanned<String>,
    /// Human explanation returned with every decision this rule produces.
    pub(super) reason: Spanned<String>,
    /// Longer explanation for readers of the file; not used by the engine.
    #[serde(default, rename = "description")]
    pub(super) _description: Option<String>,
    /// A break-glass grant never overrides this rule.
    #[serde(default)]
    pub(super) unbreakable: bool,
    /// For `allow_with_redaction`: what the interceptor must redact.
    #[serde(default)]
    pub(super) redact: Vec<Spanned<RedactFile>>,
    /// Conditions; every one given must hold. A rule without `match` matches everything.
    #[serde(default, rename = "match")]
    pub(super) conditions: Option<Spanned<MatchFile>>,
}

/// One redaction of an `allow_with_redaction` rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RedactFile {
    /// Regular expression (RE2 syntax) whose matches are replaced.
    pub(super) pattern: Spanned<String>,
    /// Replacement text; `[REDACTED]` when omitted.
    #[serde(default)]
    pub(super) replacement: Option<String>,
}

/// One zone trigger as written: exactly one of `on_action` and `on_result`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TriggerFile {
    pub(super) id: Spanned<String>,
    /// Zone the session escalates to (never lowered).
    pub(super) zone: Spanned<String>,
    pub(super) reason: Spanned<String>,
    #[serde(default, rename = "description")]
    pub(super) _description: Option<String>,
    /// Fires when an action matching these conditions is evaluated (attempted).
    #[serde(default, deserialize_with = "present")]
    pub(super) on_action: Option<Spanned<MatchFile>>,
    /// Fires when a reported result matches.
    #[serde(default, deserialize_with = "present")]
    pub(super) on_result: Option<Spanned<ResultMatchFile>>,
}

/// Conditions over a reported result (ResultMeta) and the session's totals after it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ResultMatchFile {
    /// Any of these tags on the result (globs).
    #[serde(default, deserialize_with = "present")]
    pub(super) tags: Option<Spanned<Patterns>>,
    /// The result's sensitivity is one of these (low, medium, high).
    #[serde(default, deserialize_with = "present")]
    pub(super) sensitivity: Option<Spanned<Patterns>>,
    /// The result's egress (internal, external).
    #[serde(default, deserialize_with = "present")]
    pub(super) egress: Option<Spanned<Patterns>>,
    /// This one result carried more than N bytes.
    #[serde(default, deserialize_with = "present")]
    pub(super) bytes_over: Option<Spanned<u64>>,
    /// This one result carried more than N rows.
    #[serde(default, deserialize_with = "present")]
    pub(super) rows_over: Option<Spanned<u64>>,
    /// The session has read more than N bytes in all.
    #[serde(default, deserialize_with = "present")]
    pub(super) session_bytes_over: Option<Spanned<u64>>,
    /// The session has read more than N rows in all.
    #[serde(default, deserialize_with = "present")]
    pub(super) session_rows_over: Option<Spanned<u64>>,
}

/// The conditions of a rule or action trigger. List-valued conditions take one pattern or
/// a list (any of them may match); every condition given must hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MatchFile {
    #[serde(default, deserialize_with = "present")]
    pub(super) channel: Option<Spanned<Patterns>>,
    #[serde(default, deserialize_with = "present")]
    pub(super) tool: Option<Spanned<Patterns>>,
    #[serde(default, deserialize_with = "present")]
    pub(super) operation: Option<Spanned<Patterns>>,
    /// Path or URL globs. For exec and shell actions, path arguments count too.
    #[serde(default, deserialize_with = "present")]
    pub(super) resource: Option<Spanned<Patterns>>,
    /// Regular expressions over the resource (and, for commands, the arguments).
    #[serde(default, deserialize_with = "present")]
    pub(super) resource_regex: Option<Spanned<Patterns>>,
    /// Globs over the whole normalized command line.
    #[serde(default, deserialize_with = "present")]
    pub(super) command: Option<Spanned<Patterns>>,
    /// Regular expressions over the whole normalized command line.
    #[serde(default, deserialize_with = "present")]
    pub(super) command_regex: Option<Spanned<Patterns>>,
    /// Globs over the destination host (URL resources, network destinations of commands).
    #[serde(default, deserialize_with = "present")]
    pub(super) host: Option<Spanned<Patterns>>,
    /// internal or external.
    #[serde(default, deserialize_with = "present")]
    pub(super) egress: Option<Spanned<Patterns>>,
    /// The action's declared sensitivity (attribute `sensitivity`): low, medium, high.
    #[serde(default, deserialize_with = "present")]
    pub(super) sensitivity: Option<Spanned<Patterns>>,
    /// Globs over the action's declared tags (attribute `tags`, comma-separated).
    #[serde(default, deserialize_with = "present")]
    pub(super) tags: Option<Spanned<Patterns>>,
    /// Globs over the tags the session's reported results have carried so far.
    #[serde(default, deserialize_with = "present")]
    pub(super) session_tags: Option<Spanned<Patterns>>,
    /// The session's zone is one of these.
    #[serde(default, deserialize_with = "present")]
    pub(super) zone: Option<Spanned<Patterns>>,
    /// The session's zone is this one or higher.
    #[serde(default, deserialize_with = "present")]
    pub(super) zone_at_least: Option<Spanned<String>>,
    /// Globs over the agent name.
    #[serde(default, deserialize_with = "present")]
    pub(super) agent: Option<Spanned<Patterns>>,
    /// Globs over the tenant name.
    #[serde(default, deserialize_with = "present")]
    pub(super) tenant: Option<Spanned<Patterns>>,
    /// Command-analyzer facts; any of them must hold.
    #[serde(default, deserialize_with = "present")]
    pub(super) facts: Option<Spanned<Patterns>>,
    /// Argument groups: each group needs at least one argument matching one of its globs
    /// (path-style globs: `*` stops at `/`).
    #[serde(default, deserialize_with = "present")]
    pub(super) args: Option<Spanned<Vec<Patterns>>>,
    /// The action touches Warden itself: its binaries, policy, database or credentials.
    #[serde(default, deserialize_with = "present")]
    pub(super) warden_self: Option<Spanned<bool>>,
}

/// A value that is written must be present: `tool: ~` (null) is an error rather than a
/// silently dropped condition (which would widen the rule to every action).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// One string or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum Patterns {
    One(String),
    Many(Vec<String>),
}

impl Patterns {
    pub(super) fn to_vec(&self) -> Vec<String> {
        match self {
            Patterns::One(p) => vec![p.clone()],
            Patterns::Many(ps) => ps.clone(),
        }
    }
}
