//! Turns the [`Action`] an interceptor sent into a [`NormalizedAction`], once, before any
//! rule sees it.
//!
//! Interceptors may be sloppy: upper-case channels, relative paths, a command line without
//! argv, a URL with a default port. Everything after this module is strict. Invalid input
//! (unknown channel, oversized fields, control characters in identities) is rejected here
//! with an error that names the field.

mod arguments;
pub(crate) mod command;
mod path;
mod url;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use warden_proto::v1::Action;

pub use crate::analyzer::FACT_NAMES;
pub(crate) use command::ExecFacts;
pub(crate) use url::is_internal;

/// Largest accepted command line, resource or attribute value (bytes).
const MAX_FIELD_BYTES: usize = 64 * 1024;
/// Largest accepted number of argv entries or attributes.
const MAX_ITEMS: usize = 4096;
/// Largest accepted identity (tenant, agent, session) or enum-like field.
const MAX_NAME_BYTES: usize = 256;

/// The channel an action came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Exec,
    Shell,
    Http,
    Mcp,
    Llm,
    Sdk,
    File,
}

impl Channel {
    pub const ALL: [Channel; 7] = [
        Channel::Exec,
        Channel::Shell,
        Channel::Http,
        Channel::Mcp,
        Channel::Llm,
        Channel::Sdk,
        Channel::File,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Exec => "exec",
            Channel::Shell => "shell",
            Channel::Http => "http",
            Channel::Mcp => "mcp",
            Channel::Llm => "llm",
            Channel::Sdk => "sdk",
            Channel::File => "file",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Channels whose actions are command lines.
    fn is_command(self) -> bool {
        matches!(self, Channel::Exec | Channel::Shell)
    }
}

/// Whether data leaves the configured internal networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Egress {
    Internal,
    External,
}

impl Egress {
    pub fn as_str(self) -> &'static str {
        match self {
            Egress::Internal => "internal",
            Egress::External => "external",
        }
    }

    pub fn parse(s: &str) -> Option<Egress> {
        [Egress::Internal, Egress::External]
            .into_iter()
            .find(|e| e.as_str() == s)
    }
}

/// An action after normalization: lower-cased enums, absolute lexically-clean paths,
/// parsed URLs and hosts, argv and command line both present for command channels.
#[derive(Debug, Clone, Serialize)]
pub struct NormalizedAction {
    pub tenant: String,
    pub agent: String,
    pub session: String,
    pub channel: Channel,
    pub tool: String,
    pub operation: String,
    pub resource: String,
    /// Destination host for URL resources (lower-case, no port), else empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress: Option<Egress>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub argv: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub command_line: String,
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub arguments: serde_json::Value,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cwd: String,
    /// What the command normalizer learned about a command action; not part of the
    /// audit encoding (it is derived from argv).
    #[serde(skip)]
    pub exec: Option<ExecFacts>,
    /// Command-analyzer facts (see [`FACT_NAMES`]); empty for non-command actions.
    #[serde(skip)]
    pub facts: BTreeSet<&'static str>,
    /// The analyzer's explanations of those facts (fact, sentence), in the order found;
    /// derived like `facts`, so not part of the audit encoding either.
    #[serde(skip)]
    pub fact_notes: Vec<(&'static str, String)>,
    /// Lower-case destination hosts: the URL resource's host and, for commands, every
    /// network destination the analyzer found (in argv or in structured arguments).
    #[serde(skip)]
    pub hosts: BTreeSet<String>,
    /// Paths found in structured arguments (`normalize/arguments.rs`), cleaned;
    /// `resource` rules match them as they match the resource. Derived, so not part of
    /// the audit encoding.
    #[serde(skip)]
    pub arg_paths: Vec<String>,
}

/// Input that cannot be normalized. The message names the field.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidAction {
    pub field: &'static str,
    pub problem: String,
}

fn invalid(field: &'static str, problem: impl Into<String>) -> InvalidAction {
    InvalidAction {
        field,
        problem: problem.into(),
    }
}

/// Normalizes an action. `None` (a request without an action) is an error.
pub fn normalize(action: Option<&Action>) -> Result<NormalizedAction, InvalidAction> {
    let action = action.ok_or_else(|| invalid("action", "is required"))?;

    let tenant = identity("action.tenant", &action.tenant)?;
    let agent = identity("action.agent", &action.agent)?;
    let session = identity("action.session", &action.session)?;

    let channel_text = name("action.channel", &action.channel)?;
    if channel_text.is_empty() {
        return Err(invalid(
            "action.channel",
            "is required (one of exec, shell, http, mcp, llm, sdk, file)",
        ));
    }
    let channel = Channel::parse(&channel_text).ok_or_else(|| {
        invalid(
            "action.channel",
            format!(
                "unknown channel {channel_text:?} (expected one of exec, shell, http, mcp, llm, sdk, file)"
            ),
        )
    })?;
    let mut operation = name("action.operation", &action.operation)?;

    bounded("action.tool", &action.tool)?;
    bounded("action.resource", &action.resource)?;
    bounded("action.command_line", &action.command_line)?;
    bounded("action.cwd", &action.cwd)?;
    if action.argv.len() > MAX_ITEMS {
        return Err(invalid(
            "action.argv",
            format!(
                "has {} entries; the limit is {MAX_ITEMS}",
                action.argv.len()
            ),
        ));
    }
    let argv_bytes: usize = action.argv.iter().map(String::len).sum();
    if argv_bytes > MAX_FIELD_BYTES {
        return Err(invalid(
            "action.argv",
            format!("is {argv_bytes} bytes in all; the limit is {MAX_FIELD_BYTES}"),
        ));
    }
    if action.attributes.len() > MAX_ITEMS {
        return Err(invalid(
            "action.attributes",
            format!(
                "has {} entries; the limit is {MAX_ITEMS}",
                action.attributes.len()
            ),
        ));
    }
    let mut attributes = BTreeMap::new();
    for (k, v) in &action.attributes {
        bounded("action.attributes", v)?;
        attributes.insert(name("action.attributes key", k)?, v.clone());
    }

    let cwd = if action.cwd.is_empty() {
        String::new()
    } else {
        path::clean(&action.cwd, "")
    };
    let mut tool = action.tool.trim().to_string();
    let mut resource = action.resource.trim().to_string();
    let mut host = String::new();
    let mut egress = None;
    let mut argv = action.argv.clone();
    let mut command_line = action.command_line.clone();
    let mut exec = None;
    let mut analyzed = crate::analyzer::Analysis::default();

    if channel.is_command() {
        if argv.is_empty() {
            // A line the word splitter cannot take (an unbalanced quote, a here-doc
            // with an apostrophe) is still a command: the analyzer judges it, and an
            // unparseable one is a fact of its own.
            argv = command::split(&command_line).unwrap_or_else(|_| {
                command_line
                    .split_whitespace()
                    .map(str::to_string)
                    .collect()
            });
        }
        if argv.is_empty() {
            return Err(invalid(
                "action.argv",
                "an exec or shell action needs argv or a command line",
            ));
        }
        if command_line.is_empty() {
            command_line = command::join(&argv);
        }
        let facts = command::facts(&argv, &cwd);
        if tool.is_empty() {
            tool = facts.program.clone();
        }
        if operation.is_empty() {
            operation = "execute".into();
        }
        exec = Some(facts);
        analyzed = crate::analyzer::analyze(&command_line);
    }

    let arguments = match &action.arguments {
        Some(s) => struct_to_json(s),
        None => serde_json::Value::Null,
    };
    if arguments.to_string().len() > MAX_FIELD_BYTES {
        return Err(invalid(
            "action.arguments",
            format!("encodes to more than {MAX_FIELD_BYTES} bytes"),
        ));
    }
    // Structured arguments say what a tool call touches: commands are analyzed,
    // URLs are destinations, paths are resources (`normalize/arguments.rs`). The first
    // path (else URL) becomes the resource when the caller gave none.
    let mut arg_paths = Vec::new();
    if !arguments.is_null() {
        let derived = arguments::derive(&tool, &arguments, &cwd);
        analyzed.facts.extend(derived.analysis.facts);
        analyzed.hosts.extend(derived.analysis.hosts);
        for (fact, note) in derived.analysis.notes {
            analyzed.fact(fact, note);
        }
        if resource.is_empty() {
            if let Some(p) = derived.paths.first() {
                resource = p.clone();
            } else if let Some((u, _)) = derived.urls.first() {
                resource = u.clone();
            }
        }
        if command_line.is_empty()
            && let Some(c) = derived.command
        {
            command_line = c;
        }
        arg_paths = derived.paths;
    }

    if let Some(parsed) = url::parse(&resource) {
        resource = parsed.normalized;
        egress = Some(if url::is_internal(&parsed.host) {
            Egress::Internal
        } else {
            Egress::External
        });
        host = parsed.host;
        analyzed.hosts.insert(host.clone());
    } else if path::looks_like_path(&resource) {
        resource = path::clean(&resource, &cwd);
    }

    if channel == Channel::Http && operation.is_empty() {
        let method = attributes
            .get("method")
            .map(|m| m.to_ascii_lowercase())
            .unwrap_or_else(|| tool.to_ascii_lowercase());
        operation = match method.as_str() {
            "get" | "head" | "options" => "read".into(),
            "connect" => "connect".into(),
            "" => String::new(),
            _ => "send".into(),
        };
    }

    Ok(NormalizedAction {
        tenant,
        agent,
        session,
        channel,
        tool,
        operation,
        resource,
        host,
        egress,
        argv,
        command_line,
        arguments,
        attributes,
        cwd,
        exec,
        facts: analyzed.facts,
        hosts: analyzed.hosts,
        fact_notes: analyzed.notes,
        arg_paths,
    })
}

/// Tenant, agent and session: trimmed, "default" when empty, printable.
pub fn identity(field: &'static str, value: &str) -> Result<String, InvalidAction> {
    let value = value.trim();
    if value.is_empty() {
        return Ok("default".into());
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(invalid(
            field,
            format!("is {} bytes; the limit is {MAX_NAME_BYTES}", value.len()),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "contains control characters"));
    }
    Ok(value.to_string())
}

/// Enum-like fields: trimmed, lower-cased, bounded.
fn name(field: &'static str, value: &str) -> Result<String, InvalidAction> {
    let value = value.trim();
    if value.len() > MAX_NAME_BYTES {
        return Err(invalid(
            field,
            format!("is {} bytes; the limit is {MAX_NAME_BYTES}", value.len()),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "contains control characters"));
    }
    Ok(value.to_ascii_lowercase())
}

fn bounded(field: &'static str, value: &str) -> Result<(), InvalidAction> {
    if value.len() > MAX_FIELD_BYTES {
        return Err(invalid(
            field,
            format!("is {} bytes; the limit is {MAX_FIELD_BYTES}", value.len()),
        ));
    }
    Ok(())
}

/// Converts a protobuf `Struct` into JSON; object keys come out sorted, which keeps the
/// audit encoding canonical.
pub fn struct_to_json(s: &prost_types::Struct) -> serde_json::Value {
    serde_json::Value::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), value_to_json(v)))
            .collect(),
    )
}

fn value_to_json(v: &prost_types::Value) -> serde_json::Value {
    use prost_types::value::Kind;
    match &v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::StructValue(s)) => struct_to_json(s),
        Some(Kind::ListValue(l)) => {
            serde_json::Value::Array(l.values.iter().map(value_to_json).collect())
        }
    }
}

#[cfg(test)]
mod tests;
