//! Audit records back into what the daemon judged: the action of an evaluate record
//! (normalized again) and the observation of a report record.

use serde::Deserialize;
use warden_proto::v1::Action;

use crate::normalize;
use crate::session::Observation;

/// The action of an evaluate record, normalized again.
///
/// The record holds the normalized action as JSON (`redact::action_json`); the fields
/// an interceptor sends are read back into a `warden.v1.Action` and normalization runs
/// again, so the replay sees exactly what the daemon's rules see (host, egress, command
/// facts and argument forms are derived again, not read). Normalization is idempotent:
/// clean paths stay clean, a normalized URL stays the same, argv and command line are
/// both present.
pub(super) fn stored_action(json: &str) -> Result<normalize::NormalizedAction, String> {
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Stored {
        tenant: String,
        agent: String,
        session: String,
        channel: String,
        tool: String,
        operation: String,
        resource: String,
        argv: Vec<String>,
        command_line: String,
        arguments: serde_json::Value,
        attributes: std::collections::BTreeMap<String, String>,
        cwd: String,
    }
    let s: Stored = serde_json::from_str(json)
        .map_err(|e| format!("the recorded action is not valid JSON: {e}"))?;
    let arguments = match s.arguments {
        serde_json::Value::Object(map) => Some(json_struct(map)),
        serde_json::Value::Null => None,
        other => {
            return Err(format!(
                "the recorded action's arguments are not an object: {other}"
            ));
        }
    };
    let action = Action {
        tenant: s.tenant,
        agent: s.agent,
        session: s.session,
        channel: s.channel,
        tool: s.tool,
        operation: s.operation,
        resource: s.resource,
        argv: s.argv,
        command_line: s.command_line,
        arguments,
        attributes: s.attributes.into_iter().collect(),
        cwd: s.cwd,
    };
    normalize::normalize(Some(&action))
        .map_err(|e| format!("the recorded action does not normalize: {e}"))
}

fn json_struct(map: serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map.into_iter().map(|(k, v)| (k, json_value(v))).collect(),
    }
}

fn json_value(v: serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s),
        serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.into_iter().map(json_value).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(json_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// The observation of a report record, from its `ResultMeta` JSON (as
/// `service::decisions` wrote it: tags already lower-case, sorted, deduplicated).
pub(super) fn stored_observation(json: &str) -> Result<Observation, String> {
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Stored {
        sensitivity: String,
        tags: Vec<String>,
        rows: u64,
        bytes: u64,
        egress: String,
    }
    let s: Stored = serde_json::from_str(json)
        .map_err(|e| format!("the recorded result is not valid JSON: {e}"))?;
    let mut tags: Vec<String> = s
        .tags
        .iter()
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    tags.sort();
    tags.dedup();
    Ok(Observation {
        sensitivity: s.sensitivity,
        tags,
        rows: s.rows,
        bytes: s.bytes,
        egress: s.egress,
        // Run caps are not replayed (Sessions.Open records do not carry them).
        ..Observation::default()
    })
}
