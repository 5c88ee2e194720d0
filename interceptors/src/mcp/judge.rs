//! What the gateway asks wardend: the [`Action`] for an MCP request, and the answer
//! turned into "forward it" or "refuse it, with this reason".

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use warden_proto::v1::{Action, Decision, Verdict};

use crate::client::{DaemonClient, IdentityArgs, Waited};

/// Attribute naming the upstream server.
pub(crate) const ATTR_SERVER: &str = "mcp.server";
/// Attribute with the MCP method (`tools/call`, `resources/read`, `prompts/get`).
pub(crate) const ATTR_METHOD: &str = "mcp.method";
/// Attribute with the tool's or prompt's name at the upstream (not namespaced).
pub(crate) const ATTR_NAME: &str = "mcp.name";
/// Attribute with the resource URI as the agent sent it.
pub(crate) const ATTR_URI: &str = "mcp.uri";

/// The action for one MCP request.
pub(crate) struct Request<'a> {
    pub(crate) identity: &'a IdentityArgs,
    pub(crate) server: &'a str,
    /// `tools/call`, `resources/read` or `prompts/get`.
    pub(crate) method: &'static str,
    /// Namespaced tool or prompt name; empty for resources.
    pub(crate) name: &'a str,
    /// The name at the upstream.
    pub(crate) upstream_name: &'a str,
    pub(crate) uri: Option<&'a str>,
    pub(crate) arguments: Option<&'a serde_json::Map<String, Value>>,
}

impl Request<'_> {
    pub(crate) fn action(&self) -> Action {
        let (tool, operation) = match self.method {
            "tools/call" => (self.name.to_string(), "call"),
            "prompts/get" => (self.name.to_string(), "get"),
            _ => (
                format!("{}{}resources/read", self.server, super::config::SEPARATOR),
                "read",
            ),
        };
        let mut attributes = HashMap::from([
            (ATTR_SERVER.to_string(), self.server.to_string()),
            (ATTR_METHOD.to_string(), self.method.to_string()),
        ]);
        if !self.upstream_name.is_empty() {
            attributes.insert(ATTR_NAME.to_string(), self.upstream_name.to_string());
        }
        // A file URI is a path to the daemon (so path rules apply); others stay URIs.
        let resource = match self.uri {
            Some(uri) => {
                attributes.insert(ATTR_URI.to_string(), uri.to_string());
                uri.strip_prefix("file://").unwrap_or(uri).to_string()
            }
            None => String::new(),
        };
        let mut action = Action {
            channel: "mcp".into(),
            tool,
            operation: operation.into(),
            resource,
            arguments: self.arguments.map(to_struct),
            attributes,
            ..Default::default()
        };
        self.identity.stamp(&mut action);
        action
    }
}

/// What to do with a request.
pub(crate) enum Judgement {
    /// Forward it; `None` when no decision was had and `--fail-open` let it through.
    Forward(Option<Decision>),
    /// Refuse it with this message; it never reaches the upstream.
    Refuse(String),
}

/// Asks the daemon about `action`, waits on an approval when configured, and says
/// whether to forward.
pub(crate) async fn judge(
    client: &mut DaemonClient,
    identity: &IdentityArgs,
    action: &Action,
    wait_approval: Option<Duration>,
) -> Judgement {
    let decision = match client.evaluate(action.clone()).await {
        Ok(d) => d,
        Err(e) if identity.fail_open && e.is_unavailable() => {
            tracing::warn!(tool = %action.tool, error = %e, "forwarding WITHOUT a policy decision (--fail-open)");
            return Judgement::Forward(None);
        }
        Err(e) => {
            let hint = if e.is_unavailable() {
                "; --fail-open overrides this"
            } else {
                ""
            };
            tracing::warn!(tool = %action.tool, error = %e, "refused: no decision");
            return Judgement::Refuse(format!(
                "warden: refused {}: no policy decision: {e} (fail-closed: the request was not forwarded{hint})",
                action.tool
            ));
        }
    };
    let decision = match wait_approval {
        Some(timeout)
            if decision.verdict() == Verdict::RequireApproval
                && !decision.approval_id.is_empty() =>
        {
            tracing::info!(tool = %action.tool, approval = %decision.approval_id, "waiting for approval");
            match client.await_approval(action, decision, timeout).await {
                Waited::Decided(d) => d,
                Waited::NotGranted(why) | Waited::Failed(why) => {
                    return Judgement::Refuse(format!(
                        "warden: refused {}: {why}; the request was not forwarded",
                        action.tool
                    ));
                }
            }
        }
        _ => decision,
    };
    let seq = decision.id.as_ref().map_or(0, |id| id.seq);
    tracing::info!(
        tool = %action.tool,
        verdict = decision.verdict().as_str_name(),
        decision = seq,
        rules = ?decision.matched_rules,
        "decided"
    );
    match refusal(&decision) {
        None => Judgement::Forward(Some(decision)),
        Some(why) => Judgement::Refuse(format!("warden: {why}")),
    }
}

/// The message for a decision that does not let the request through.
fn refusal(d: &Decision) -> Option<String> {
    let rules = if d.matched_rules.is_empty() {
        "policy default".to_string()
    } else {
        d.matched_rules.join(", ")
    };
    let seq = d.id.as_ref().map_or(0, |id| id.seq);
    match d.verdict() {
        Verdict::Allow | Verdict::AllowWithRedaction => None,
        Verdict::Deny => Some(format!("denied: {} [{rules}] (decision #{seq})", d.reason)),
        Verdict::RequireApproval if d.approval_id.is_empty() => Some(format!(
            "approval required: {} [{rules}] (decision #{seq})",
            d.reason
        )),
        Verdict::RequireApproval => Some(format!(
            "approval required: {} [{rules}] (decision #{seq}); approval id {id}: once `warden approvals approve {id}` is done, call again",
            d.reason,
            id = d.approval_id
        )),
        Verdict::Unspecified => Some(format!(
            "refused: wardend returned no verdict (decision #{seq})"
        )),
    }
}

/// JSON object → protobuf Struct.
pub(crate) fn to_struct(map: &serde_json::Map<String, Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map.iter().map(|(k, v)| (k.clone(), to_value(v))).collect(),
    }
}

fn to_value(v: &Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.iter().map(to_value).collect(),
        }),
        Value::Object(o) => Kind::StructValue(to_struct(o)),
    };
    prost_types::Value { kind: Some(kind) }
}
