//! Compiled conditions, shared by rules and action triggers, and the [`Subject`] they are
//! matched against: one action, seen with the policy's idea of egress, in a session.

use std::collections::BTreeSet;

use globset::GlobSet;
use regex::RegexSet;
use serde::Serialize;

use crate::normalize::{Channel, Egress, NormalizedAction};
use crate::session::Zone;

/// An action as rules see it: the normalized action plus what the policy and the daemon
/// add (egress under the policy's internal hosts, declared tags, self-protection).
#[derive(Debug)]
pub struct Subject<'a> {
    pub action: &'a NormalizedAction,
    /// External when any destination host is outside the internal networks.
    pub egress: Option<Egress>,
    /// The action's declared tags (attribute `tags`), lower-case.
    pub tags: Vec<String>,
    /// The action's declared sensitivity (attribute `sensitivity`), lower-case.
    pub sensitivity: String,
    /// The action touches Warden's own files or process.
    pub warden_self: bool,
}

/// A condition's patterns as they enter the policy version.
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct ConditionSpec {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) channel: Vec<Channel>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) tool: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) operation: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) resource: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) resource_regex: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) command: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) command_regex: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) host: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) egress: Vec<Egress>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) sensitivity: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) tags: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) session_tags: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) zone: Vec<Zone>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) agent: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) tenant: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) facts: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) args: Vec<Vec<String>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(super) warden_self: bool,
}

/// Compiled conditions: `None` means "not constrained".
#[derive(Debug, Default)]
pub(super) struct Conditions {
    pub(super) spec: ConditionSpec,
    pub(super) channel: Option<Vec<Channel>>,
    pub(super) tool: Option<GlobSet>,
    pub(super) operation: Option<GlobSet>,
    pub(super) resource: Option<GlobSet>,
    pub(super) resource_regex: Option<RegexSet>,
    pub(super) command: Option<GlobSet>,
    pub(super) command_regex: Option<RegexSet>,
    pub(super) host: Option<GlobSet>,
    pub(super) egress: Option<Vec<Egress>>,
    pub(super) sensitivity: Option<Vec<String>>,
    pub(super) tags: Option<GlobSet>,
    pub(super) session_tags: Option<GlobSet>,
    /// Zones in which the conditions can hold (from `zone` and `zone_at_least`).
    pub(super) zone: Option<Vec<Zone>>,
    pub(super) agent: Option<GlobSet>,
    pub(super) tenant: Option<GlobSet>,
    pub(super) facts: Option<Vec<&'static str>>,
    pub(super) args: Vec<GlobSet>,
    pub(super) warden_self: Option<bool>,
}

impl Conditions {
    /// Whether every condition holds for `s` in a session in `zone` whose results have
    /// carried `session_tags`. Cheap checks come first.
    pub(super) fn matches(
        &self,
        s: &Subject<'_>,
        zone: Zone,
        session_tags: &BTreeSet<String>,
    ) -> bool {
        let a = s.action;
        if let Some(channels) = &self.channel
            && !channels.contains(&a.channel)
        {
            return false;
        }
        if let Some(zones) = &self.zone
            && !zones.contains(&zone)
        {
            return false;
        }
        if let Some(want) = self.warden_self
            && want != s.warden_self
        {
            return false;
        }
        if let Some(egress) = &self.egress
            && !s.egress.is_some_and(|e| egress.contains(&e))
        {
            return false;
        }
        if let Some(facts) = &self.facts
            && !facts.iter().any(|f| a.facts.contains(f))
        {
            return false;
        }
        if let Some(sensitivity) = &self.sensitivity
            && !sensitivity.contains(&s.sensitivity)
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
        if let Some(agent) = &self.agent
            && !agent.is_match(&a.agent)
        {
            return false;
        }
        if let Some(tenant) = &self.tenant
            && !tenant.is_match(&a.tenant)
        {
            return false;
        }
        if let Some(tags) = &self.tags
            && !s.tags.iter().any(|t| tags.is_match(t))
        {
            return false;
        }
        if let Some(tags) = &self.session_tags
            && !session_tags.iter().any(|t| tags.is_match(t))
        {
            return false;
        }
        if let Some(host) = &self.host
            && !a.hosts.iter().any(|h| host.is_match(h))
        {
            return false;
        }
        if let Some(resource) = &self.resource
            && !any_resource(a, |r| resource.is_match(r))
        {
            return false;
        }
        if let Some(regex) = &self.resource_regex
            && !any_resource(a, |r| regex.is_match(r))
        {
            return false;
        }
        if let Some(command) = &self.command
            && (a.command_line.is_empty() || !command.is_match(&a.command_line))
        {
            return false;
        }
        if let Some(regex) = &self.command_regex
            && (a.command_line.is_empty() || !regex.is_match(&a.command_line))
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

/// The resource, every path in structured arguments, and for commands every argument
/// form.
fn any_resource(a: &NormalizedAction, mut test: impl FnMut(&str) -> bool) -> bool {
    (!a.resource.is_empty() && test(&a.resource))
        || a.arg_paths.iter().any(|p| test(p))
        || a.exec
            .as_ref()
            .is_some_and(|e| e.arg_forms.iter().any(|f| test(f)))
}
