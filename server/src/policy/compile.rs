//! From [`model::PolicyFile`] to matchers: every pattern is compiled once, every problem
//! is reported with the file:line:column of the value that caused it.

use std::collections::HashMap;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Serialize;
use serde_saphyr::{Location, Spanned};

use super::model::{MatchFile, Patterns, PolicyFile};
use super::{Policy, PolicyError, Verdict, canonical_version};
use crate::normalize::{Channel, NormalizedAction};

/// Policy files larger than this are refused before parsing.
const MAX_POLICY_BYTES: usize = 4 * 1024 * 1024;

/// A rule's meaning, as it enters the policy version.
#[derive(Debug, Clone, Serialize)]
pub(super) struct RuleSpec {
    id: String,
    decision: Verdict,
    reason: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    channel: Vec<Channel>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    operation: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    resource: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    command: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    host: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    args: Vec<Vec<String>>,
}

/// A compiled rule.
#[derive(Debug)]
pub(super) struct Rule {
    pub(super) id: String,
    pub(super) verdict: Verdict,
    pub(super) reason: String,
    pub(super) spec: RuleSpec,
    channel: Option<Vec<Channel>>,
    tool: Option<GlobSet>,
    operation: Option<GlobSet>,
    resource: Option<GlobSet>,
    command: Option<GlobSet>,
    host: Option<GlobSet>,
    args: Vec<GlobSet>,
}

impl Rule {
    /// Whether every condition of the rule holds for `a`.
    pub(super) fn matches(&self, a: &NormalizedAction) -> bool {
        if let Some(channels) = &self.channel
            && !channels.contains(&a.channel)
        {
            return false;
        }
        if let Some(tool) = &self.tool {
            let program = a.exec.as_ref().map(|e| e.program.as_str());
            if !(tool.is_match(&a.tool) || program.is_some_and(|p| tool.is_match(p))) {
                return false;
            }
        }
        if let Some(op) = &self.operation
            && !op.is_match(&a.operation)
        {
            return false;
        }
        if let Some(resource) = &self.resource {
            let in_args = a
                .exec
                .as_ref()
                .is_some_and(|e| e.arg_forms.iter().any(|f| resource.is_match(f)));
            if !((!a.resource.is_empty() && resource.is_match(&a.resource)) || in_args) {
                return false;
            }
        }
        if let Some(command) = &self.command
            && (a.command_line.is_empty() || !command.is_match(&a.command_line))
        {
            return false;
        }
        if let Some(host) = &self.host
            && (a.host.is_empty() || !host.is_match(&a.host))
        {
            return false;
        }
        if !self.args.is_empty() {
            let Some(exec) = &a.exec else {
                return false;
            };
            return self
                .args
                .iter()
                .all(|group| exec.arg_forms.iter().any(|f| group.is_match(f)));
        }
        true
    }
}

/// How a glob treats `/`.
#[derive(Clone, Copy)]
enum GlobKind {
    /// `*` stops at `/`; `**` crosses it (paths, URLs).
    Path,
    /// `*` matches anything (names, command lines).
    Text,
    /// Like `Text`, compared case-insensitively (operations, hosts).
    CaselessText,
}

struct Compiler<'a> {
    file: &'a str,
}

impl Compiler<'_> {
    fn error(&self, at: Location, message: impl Into<String>) -> PolicyError {
        PolicyError {
            file: self.file.to_string(),
            line: at.line(),
            column: at.column(),
            message: message.into(),
        }
    }

    fn verdict(&self, value: &Spanned<String>, what: &str) -> Result<Verdict, PolicyError> {
        Verdict::parse(value.value.trim()).ok_or_else(|| {
            self.error(
                value.referenced,
                format!(
                    "unknown {what} {:?} (expected allow, deny, require_approval or allow_with_redaction)",
                    value.value
                ),
            )
        })
    }

    fn globs(
        &self,
        field: &str,
        patterns: &Spanned<Patterns>,
        kind: GlobKind,
    ) -> Result<(GlobSet, Vec<String>), PolicyError> {
        let list = patterns.value.to_vec();
        if list.is_empty() {
            return Err(self.error(
                patterns.referenced,
                format!("`{field}` is an empty list, so the rule could never match"),
            ));
        }
        let mut set = GlobSetBuilder::new();
        for pattern in &list {
            if pattern.is_empty() {
                return Err(self.error(
                    patterns.referenced,
                    format!("`{field}` contains an empty pattern"),
                ));
            }
            set.add(self.glob(field, pattern, patterns.referenced, kind)?);
        }
        let set = set
            .build()
            .map_err(|e| self.error(patterns.referenced, format!("`{field}`: {e}")))?;
        Ok((set, list))
    }

    fn glob(
        &self,
        field: &str,
        pattern: &str,
        at: Location,
        kind: GlobKind,
    ) -> Result<Glob, PolicyError> {
        let mut builder = GlobBuilder::new(pattern);
        match kind {
            GlobKind::Path => builder.literal_separator(true),
            GlobKind::Text => builder.literal_separator(false),
            GlobKind::CaselessText => builder.literal_separator(false).case_insensitive(true),
        };
        builder.backslash_escape(true).build().map_err(|e| {
            self.error(
                at,
                format!("`{field}` pattern {pattern:?} is not a valid glob: {e}"),
            )
        })
    }

    fn channels(&self, patterns: &Spanned<Patterns>) -> Result<Vec<Channel>, PolicyError> {
        let list = patterns.value.to_vec();
        if list.is_empty() {
            return Err(self.error(
                patterns.referenced,
                "`channel` is an empty list, so the rule could never match",
            ));
        }
        list.iter()
            .map(|c| {
                Channel::parse(&c.trim().to_ascii_lowercase()).ok_or_else(|| {
                    self.error(
                        patterns.referenced,
                        format!(
                            "unknown channel {c:?} (expected exec, shell, http, mcp, llm, sdk or file)"
                        ),
                    )
                })
            })
            .collect()
    }

    fn rule(&self, raw: &Spanned<super::model::RuleFile>) -> Result<Rule, PolicyError> {
        let r = &raw.value;
        let id = r.id.value.trim().to_string();
        if id.is_empty() {
            return Err(self.error(r.id.referenced, "rule id is empty"));
        }
        let verdict = self.verdict(&r.decision, "decision")?;
        let reason = r.reason.value.trim().to_string();
        if reason.is_empty() {
            return Err(self.error(
                r.reason.referenced,
                format!("rule {id:?} has an empty reason; every decision must explain itself"),
            ));
        }
        let empty = MatchFile::default();
        let m = r.conditions.as_ref().map_or(&empty, |c| &c.value);
        let mut spec = RuleSpec {
            id: id.clone(),
            decision: verdict,
            reason: reason.clone(),
            channel: Vec::new(),
            tool: Vec::new(),
            operation: Vec::new(),
            resource: Vec::new(),
            command: Vec::new(),
            host: Vec::new(),
            args: Vec::new(),
        };
        let channel = m.channel.as_ref().map(|c| self.channels(c)).transpose()?;
        if let Some(c) = &channel {
            spec.channel = c.clone();
        }
        let field = |name: &str,
                     value: &Option<Spanned<Patterns>>,
                     kind: GlobKind,
                     out: &mut Vec<String>|
         -> Result<Option<GlobSet>, PolicyError> {
            match value {
                None => Ok(None),
                Some(p) => {
                    let (set, list) = self.globs(name, p, kind)?;
                    *out = list;
                    Ok(Some(set))
                }
            }
        };
        let tool = field("tool", &m.tool, GlobKind::Text, &mut spec.tool)?;
        let operation = field(
            "operation",
            &m.operation,
            GlobKind::CaselessText,
            &mut spec.operation,
        )?;
        let resource = field("resource", &m.resource, GlobKind::Path, &mut spec.resource)?;
        let command = field("command", &m.command, GlobKind::Text, &mut spec.command)?;
        let host = field("host", &m.host, GlobKind::CaselessText, &mut spec.host)?;

        let mut args = Vec::new();
        if let Some(groups) = &m.args {
            if groups.value.is_empty() {
                return Err(self.error(groups.referenced, "`args` is an empty list"));
            }
            let only_non_command = channel.as_ref().is_some_and(|cs| {
                cs.iter()
                    .all(|c| !matches!(c, Channel::Exec | Channel::Shell))
            });
            if only_non_command {
                return Err(self.error(
                    groups.referenced,
                    "`args` only matches exec and shell actions, but the rule's channels exclude both, so it could never match",
                ));
            }
            for group in &groups.value {
                let spanned = Spanned::new(group.clone(), groups.referenced, groups.defined);
                let (set, list) = self.globs("args", &spanned, GlobKind::Path)?;
                args.push(set);
                spec.args.push(list);
            }
        }

        Ok(Rule {
            id,
            verdict,
            reason,
            spec,
            channel,
            tool,
            operation,
            resource,
            command,
            host,
            args,
        })
    }
}

/// Parses and compiles a policy.
pub(super) fn compile(source: &str, text: &str) -> Result<Policy, PolicyError> {
    let c = Compiler { file: source };
    if text.len() > MAX_POLICY_BYTES {
        return Err(PolicyError {
            file: source.to_string(),
            line: 0,
            column: 0,
            message: format!(
                "policy is {} bytes; the limit is {MAX_POLICY_BYTES}",
                text.len()
            ),
        });
    }
    let file: PolicyFile = serde_saphyr::from_str(text).map_err(|e| {
        let at = e.location();
        PolicyError {
            file: source.to_string(),
            line: at.map_or(0, |l| l.line()),
            column: at.map_or(0, |l| l.column()),
            message: first_line(&e.without_snippet().to_string()),
        }
    })?;
    if file.version.value != 1 {
        return Err(c.error(
            file.version.referenced,
            format!(
                "unsupported policy version {} (this wardend reads version 1)",
                file.version.value
            ),
        ));
    }
    let default = c.verdict(&file.default, "default decision")?;
    if default == Verdict::AllowWithRedaction {
        return Err(c.error(
            file.default.referenced,
            "the default decision must be allow, deny or require_approval (redaction needs a rule that names its patterns)",
        ));
    }
    let mut seen: HashMap<String, Location> = HashMap::new();
    let mut rules = Vec::with_capacity(file.rules.len());
    for raw in &file.rules {
        let rule = c.rule(raw)?;
        if let Some(first) = seen.get(&rule.id) {
            return Err(c.error(
                raw.value.id.referenced,
                format!(
                    "duplicate rule id {:?} (first defined at line {})",
                    rule.id,
                    first.line()
                ),
            ));
        }
        seen.insert(rule.id.clone(), raw.value.id.referenced);
        rules.push(rule);
    }
    Ok(Policy {
        version: canonical_version(default, &rules),
        name: file.name.unwrap_or_else(|| "unnamed".into()),
        source: source.to_string(),
        text: text.to_string(),
        default,
        rules,
    })
}

/// serde-saphyr messages may carry a location suffix or several lines; the policy error
/// adds its own location, so keep the first line's message.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message).trim();
    match line.rfind(" at line ") {
        Some(i) if line[i..].contains(", column ") => line[..i].trim_end().to_string(),
        _ => line.to_string(),
    }
}
