//! A static judgement on a policy: which tools can it never allow an agent?
//!
//! Used to hide tools an agent could never call (MCP `tools/list`); every call is still
//! evaluated in full. The answer must be *certain*, so the judgement is conservative:
//! a tool is "never allowed" only when
//! - a `deny` rule matches it whatever the action carries: its conditions name nothing
//!   but channel, tool, agent and tenant (no zone, resource, facts, …), and those hold;
//! - or the policy default is `deny` and no rule that could let it through (`allow`,
//!   `allow_with_redaction`, `require_approval`) could match it: a rule could match when
//!   its channel, tool, agent and tenant patterns hold, whatever else it asks for.
//!
//! An active break-glass grant can lift breakable refusals, so while one covers the
//! agent only `unbreakable` unconditional denies count.

use super::conditions::Conditions;
use super::{Policy, Verdict};
use crate::normalize::Channel;

impl Policy {
    /// Whether no action on `channel` with `tool` by this agent can ever be allowed.
    /// `break_glass`: a grant covering the agent is active. Command channels (exec,
    /// shell) are never judged statically: their rules look at the program behind
    /// wrappers, which the tool name alone does not tell.
    pub fn never_allows(
        &self,
        channel: Channel,
        tenant: &str,
        agent: &str,
        tool: &str,
        break_glass: bool,
    ) -> bool {
        if matches!(channel, Channel::Exec | Channel::Shell) {
            return false;
        }
        let mut could_pass = false;
        for rule in self.by_channel[channel as usize]
            .iter()
            .map(|&i| &self.rules[i])
        {
            let c = &rule.conditions;
            if !c.could_match(channel, tenant, agent, tool) {
                continue;
            }
            if rule.verdict == Verdict::Deny {
                if c.only_identity() && (rule.unbreakable || !break_glass) {
                    return true;
                }
            } else {
                could_pass = true;
            }
        }
        !could_pass && !break_glass && self.default == Verdict::Deny
    }
}

impl Conditions {
    /// Whether the channel, tool, agent and tenant conditions hold (the others might).
    fn could_match(&self, channel: Channel, tenant: &str, agent: &str, tool: &str) -> bool {
        self.channel.as_ref().is_none_or(|c| c.contains(&channel))
            && self.tool.as_ref().is_none_or(|t| t.is_match(tool))
            && self.agent.as_ref().is_none_or(|a| a.is_match(agent))
            && self.tenant.as_ref().is_none_or(|t| t.is_match(tenant))
    }

    /// Whether nothing but channel, tool, agent and tenant is constrained.
    fn only_identity(&self) -> bool {
        self.operation.is_none()
            && self.resource.is_none()
            && self.resource_regex.is_none()
            && self.command.is_none()
            && self.command_regex.is_none()
            && self.host.is_none()
            && self.egress.is_none()
            && self.sensitivity.is_none()
            && self.tags.is_none()
            && self.session_tags.is_none()
            && self.zone.is_none()
            && self.facts.is_none()
            && self.args.is_empty()
            && self.warden_self.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> Policy {
        Policy::from_yaml("test.yaml", yaml).expect("policy compiles")
    }

    const P: &str = r#"
version: 1
default: allow
rules:
  - id: no-delete
    decision: deny
    reason: never
    match: { channel: [mcp], tool: ["*__delete_*"] }
  - id: no-shell-for-bob
    decision: deny
    reason: never for bob
    match: { channel: [mcp], tool: ["*__run"], agent: [bob] }
  - id: write-outside-tmp
    decision: deny
    reason: conditional
    match: { channel: [mcp], tool: ["*__write"], resource: ["/etc/**"] }
  - id: secret-zone
    decision: deny
    reason: zone
    match: { channel: [mcp], tool: ["*__send"], zone_at_least: sensitive }
"#;

    #[test]
    fn unconditional_denies_are_never_allowed() {
        let p = policy(P);
        assert!(p.never_allows(Channel::Mcp, "default", "a", "fs__delete_file", false));
        assert!(p.never_allows(Channel::Mcp, "default", "bob", "sh__run", false));
        assert!(!p.never_allows(Channel::Mcp, "default", "alice", "sh__run", false));
        // Conditions on what the call carries or on the session: it might pass.
        assert!(!p.never_allows(Channel::Mcp, "default", "a", "fs__write", false));
        assert!(!p.never_allows(Channel::Mcp, "default", "a", "mail__send", false));
        assert!(!p.never_allows(Channel::Mcp, "default", "a", "fs__read", false));
        // Other channels are untouched by mcp rules.
        assert!(!p.never_allows(Channel::Llm, "default", "a", "fs__delete_file", false));
    }

    #[test]
    fn break_glass_keeps_only_unbreakable_denies() {
        let p = policy(P);
        assert!(!p.never_allows(Channel::Mcp, "default", "a", "fs__delete_file", true));
        let p = policy(
            "version: 1\ndefault: allow\nrules:\n  - id: x\n    decision: deny\n    unbreakable: true\n    reason: r\n    match: { tool: [danger] }\n",
        );
        assert!(p.never_allows(Channel::Mcp, "default", "a", "danger", true));
    }

    #[test]
    fn default_deny_hides_what_no_rule_could_let_through() {
        let p = policy(
            r#"
version: 1
default: deny
rules:
  - id: read
    decision: allow
    reason: reads are fine
    match: { channel: [mcp], tool: ["fs__read*"], resource: ["/work/**"] }
  - id: ask
    decision: require_approval
    reason: ask
    match: { channel: [mcp], tool: ["fs__write*"] }
"#,
        );
        assert!(!p.never_allows(Channel::Mcp, "default", "a", "fs__read_file", false));
        assert!(!p.never_allows(Channel::Mcp, "default", "a", "fs__write_file", false));
        assert!(p.never_allows(Channel::Mcp, "default", "a", "fs__move_file", false));
        assert!(!p.never_allows(Channel::Mcp, "default", "a", "fs__move_file", true));
        // Command channels are not judged statically.
        assert!(!p.never_allows(Channel::Exec, "default", "a", "rm", false));
    }
}
