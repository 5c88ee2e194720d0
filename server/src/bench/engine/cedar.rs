//! Cedar's side of `wardend bench engine` (feature `cedar-bench`): the benchmark policy
//! as a Cedar policy set, one prebuilt request per workload action, and Warden's four
//! verdicts recovered from the policies that determined Cedar's decision.
//!
//! The request's context is built from Warden's normalized action (tool, program,
//! operation, resource, command line, hosts, egress, facts, argument forms, declared
//! tags and sensitivity) and the session (zone, zone level, session tags), so both
//! engines judge the same facts. Building it is not timed.

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;

use anyhow::Context as _;
use cedar_policy::{
    Authorizer, Context, Decision, Entities, EntityId, EntityTypeName, EntityUid, PolicyId,
    PolicySet, Request, Response, RestrictedExpression,
};

use super::rules::{BenchRule, DEFAULT_POLICY_ID, cedar_policies, zone_level};
use crate::normalize::NormalizedAction;
use crate::policy::{Subject, Verdict};
use crate::session::Zone;

/// The Cedar policy set and what is needed to ask it.
pub(crate) struct CedarEngine {
    authorizer: Authorizer,
    policies: PolicySet,
    entities: Entities,
    /// Policy order and Warden verdict of each rule, by policy id.
    rules: HashMap<String, (usize, Verdict)>,
    agent_type: EntityTypeName,
    action_type: EntityTypeName,
    resource_type: EntityTypeName,
}

impl CedarEngine {
    /// Parses the Cedar rendering of `rules`.
    pub(crate) fn new(rules: &[BenchRule]) -> anyhow::Result<CedarEngine> {
        let mut policies = PolicySet::new();
        for (id, text) in cedar_policies(rules) {
            let policy = cedar_policy::Policy::parse(Some(PolicyId::new(&id)), &text)
                .with_context(|| format!("Cedar policy {id}:\n{text}"))?;
            policies
                .add(policy)
                .with_context(|| format!("adding Cedar policy {id}"))?;
        }
        let type_name = |name: &str| {
            EntityTypeName::from_str(name).with_context(|| format!("Cedar entity type {name}"))
        };
        Ok(CedarEngine {
            authorizer: Authorizer::new(),
            policies,
            entities: Entities::empty(),
            rules: rules
                .iter()
                .enumerate()
                .map(|(i, r)| (r.id.to_string(), (i, r.verdict)))
                .collect(),
            agent_type: type_name("Agent")?,
            action_type: type_name("Action")?,
            resource_type: type_name("Resource")?,
        })
    }

    /// Number of Cedar policies (the rules and the default permit).
    pub(crate) fn policy_count(&self) -> usize {
        self.policies.policies().count()
    }

    /// The request for one action in a session in `zone` whose results carried
    /// `session_tags`: principal `Agent::"<agent>"`, action `Action::"<channel>"`,
    /// resource `Resource::"<resource>"`, and the context.
    pub(crate) fn request(
        &self,
        subject: &Subject<'_>,
        zone: Zone,
        session_tags: &BTreeSet<String>,
    ) -> anyhow::Result<Request> {
        let a: &NormalizedAction = subject.action;
        let text = |v: &str| RestrictedExpression::new_string(v.to_string());
        let set = |items: &mut dyn Iterator<Item = &str>| {
            RestrictedExpression::new_set(items.map(text).collect::<Vec<_>>())
        };
        let program = a.exec.as_ref().map_or("", |e| e.program.as_str());
        let host = match a.hosts.len() {
            1 => a.hosts.iter().next().map_or("", String::as_str),
            _ => "",
        };
        let no_args: &[String] = &[];
        let args = a.exec.as_ref().map_or(no_args, |e| e.arg_forms.as_slice());
        let pairs = vec![
            ("tool", text(&a.tool)),
            ("program", text(program)),
            ("operation", text(&a.operation)),
            ("resource", text(&a.resource)),
            ("command", text(&a.command_line)),
            ("host", text(host)),
            ("hosts", set(&mut a.hosts.iter().map(String::as_str))),
            (
                "egress",
                text(subject.egress.map_or("", crate::normalize::Egress::as_str)),
            ),
            ("facts", set(&mut a.facts.iter().copied())),
            ("args", set(&mut args.iter().map(String::as_str))),
            ("tags", set(&mut subject.tags.iter().map(String::as_str))),
            ("sensitivity", text(&subject.sensitivity)),
            (
                "session_tags",
                set(&mut session_tags.iter().map(String::as_str)),
            ),
            ("zone", text(zone.as_str())),
            (
                "zone_level",
                RestrictedExpression::new_long(zone_level(zone.as_str())),
            ),
            ("agent", text(&a.agent)),
            ("tenant", text(&a.tenant)),
        ];
        let context = Context::from_pairs(pairs.into_iter().map(|(k, v)| (k.to_string(), v)))
            .context("building the Cedar context")?;
        let uid = |t: &EntityTypeName, id: &str| {
            EntityUid::from_type_name_and_id(t.clone(), EntityId::new(id))
        };
        Request::new(
            uid(&self.agent_type, &a.agent),
            uid(&self.action_type, a.channel.as_str()),
            uid(&self.resource_type, &a.resource),
            context,
            None,
        )
        .context("building the Cedar request")
    }

    /// What is timed: one authorization.
    pub(crate) fn is_authorized(&self, request: &Request) -> Response {
        self.authorizer
            .is_authorized(request, &self.policies, &self.entities)
    }

    /// Warden's verdict and rules from Cedar's response: the most restrictive verdict
    /// among the determining policies (forbids for a Deny, permits other than the default
    /// for an Allow) and the rules with that verdict, in policy order. An evaluation
    /// error is an error: Cedar skips a policy that errs, which would hide a mismatch.
    pub(crate) fn verdict(&self, response: &Response) -> Result<(Verdict, Vec<String>), String> {
        let errors: Vec<String> = response
            .diagnostics()
            .errors()
            .map(|e| e.to_string())
            .collect();
        if !errors.is_empty() {
            return Err(format!("Cedar evaluation errors: {}", errors.join("; ")));
        }
        let mut determining: Vec<(usize, Verdict, &str)> = Vec::new();
        for id in response.diagnostics().reason() {
            let id: &str = id.as_ref();
            if id == DEFAULT_POLICY_ID {
                continue;
            }
            let (index, verdict) = self
                .rules
                .get(id)
                .ok_or_else(|| format!("unknown Cedar policy {id}"))?;
            determining.push((*index, *verdict, id));
        }
        let Some(top) = determining.iter().map(|(_, v, _)| *v).max() else {
            return match response.decision() {
                Decision::Allow => Ok((Verdict::Allow, Vec::new())),
                Decision::Deny => Err("Cedar denied with no determining policy".into()),
            };
        };
        determining.retain(|(_, v, _)| *v == top);
        determining.sort_by_key(|(i, _, _)| *i);
        Ok((
            top,
            determining
                .into_iter()
                .map(|(_, _, id)| id.to_string())
                .collect(),
        ))
    }
}
