//! The policy engine: a YAML policy compiled into matchers, evaluated against a
//! [`NormalizedAction`].
//!
//! Every rule whose conditions all hold is considered, and the most restrictive verdict
//! wins (deny > require_approval > allow_with_redaction > allow). When no rule matches,
//! the policy's `default` decides. A [`Policy`] is immutable; the daemon swaps whole
//! policies through a `tokio::sync::watch` channel, so a request that started on one
//! policy finishes on it.

mod compile;
mod model;

use std::fmt;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::normalize::NormalizedAction;
use compile::Rule;

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

    fn parse(s: &str) -> Option<Verdict> {
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

/// A compiled, immutable policy.
#[derive(Debug)]
pub struct Policy {
    /// Lower-case hex SHA-256 of the canonical form.
    version: String,
    /// The policy's `name`.
    name: String,
    /// File path, or [`DEFAULT_POLICY_SOURCE`].
    source: String,
    /// The YAML as loaded.
    text: String,
    default: Verdict,
    rules: Vec<Rule>,
}

/// What the engine decided for one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    /// Rules that produced the verdict, in policy order; empty when the default decided.
    pub matched_rules: Vec<String>,
    pub reason: String,
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

    /// Decides one action. Pure: same policy and action, same outcome.
    pub fn evaluate(&self, action: &NormalizedAction) -> Outcome {
        let mut verdict = None;
        let mut matched: Vec<&Rule> = Vec::new();
        for rule in &self.rules {
            if !rule.matches(action) {
                continue;
            }
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
        match verdict {
            None => Outcome {
                verdict: self.default,
                matched_rules: Vec::new(),
                reason: format!("no rule matched; the policy default is {}", self.default),
            },
            Some(verdict) => Outcome {
                verdict,
                matched_rules: matched.iter().map(|r| r.id.clone()).collect(),
                reason: matched
                    .iter()
                    .map(|r| r.reason.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            },
        }
    }
}

/// SHA-256 over a canonical JSON rendering of what the policy means (not its
/// formatting or comments), hex encoded.
fn canonical_version(default: Verdict, rules: &[Rule]) -> String {
    #[derive(Serialize)]
    struct Canonical<'a> {
        format: u32,
        default: Verdict,
        rules: Vec<&'a compile::RuleSpec>,
    }
    let canonical = Canonical {
        format: 1,
        default,
        rules: rules.iter().map(|r| &r.spec).collect(),
    };
    // Serializing plain strings, vectors and enums cannot fail.
    let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests;
