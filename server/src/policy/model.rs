//! The policy file as written: YAML deserialized with source positions kept, so that
//! every later check can point at file:line:column.

use serde::Deserialize;
use serde_saphyr::Spanned;

/// Top level of a policy file.
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
    /// Decision when no rule matches: allow, deny or require_approval.
    pub(super) default: Spanned<String>,
    #[serde(default)]
    pub(super) rules: Vec<Spanned<RuleFile>>,
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
    /// Conditions; every one given must hold. A rule without `match` matches everything.
    #[serde(default, rename = "match")]
    pub(super) conditions: Option<Spanned<MatchFile>>,
}

/// The conditions of a rule. Each takes one pattern or a list (any of them may match).
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
    /// Globs over the whole normalized command line.
    #[serde(default, deserialize_with = "present")]
    pub(super) command: Option<Spanned<Patterns>>,
    /// Globs over the destination host of URL resources.
    #[serde(default, deserialize_with = "present")]
    pub(super) host: Option<Spanned<Patterns>>,
    /// Argument groups: each group needs at least one argument matching one of its globs
    /// (path-style globs: `*` stops at `/`).
    #[serde(default, deserialize_with = "present")]
    pub(super) args: Option<Spanned<Vec<Patterns>>>,
}

/// A condition that is written must have a value: `tool: ~` (null) is an error rather
/// than a silently dropped condition (which would widen the rule to every action).
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
