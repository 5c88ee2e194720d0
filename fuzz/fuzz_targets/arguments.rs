//! Structured arguments (an MCP tool call's, a proposed LLM tool call's) on arbitrary
//! JSON: normalizing them must never panic, must stay bounded however deep or wide the
//! arguments are, and must give the same facts twice.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost_types::{ListValue, Struct, Value as PValue, value::Kind};
use serde_json::Value;
use warden_proto::v1::Action;

/// JSON as the protobuf Struct an interceptor would send.
fn to_proto(v: &Value) -> PValue {
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(a) => Kind::ListValue(ListValue {
            values: a.iter().map(to_proto).collect(),
        }),
        Value::Object(o) => Kind::StructValue(Struct {
            fields: o.iter().map(|(k, v)| (k.clone(), to_proto(v))).collect(),
        }),
    };
    PValue { kind: Some(kind) }
}

fuzz_target!(|data: &[u8]| {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let arguments = Struct {
        fields: map.iter().map(|(k, v)| (k.clone(), to_proto(v))).collect(),
    };
    for channel in ["mcp", "llm"] {
        let action = Action {
            agent: "fuzz".into(),
            session: "s".into(),
            channel: channel.into(),
            tool: "run_command".into(),
            arguments: Some(arguments.clone()),
            ..Default::default()
        };
        let first = warden_server::normalize::normalize(Some(&action));
        let second = warden_server::normalize::normalize(Some(&action));
        match (first, second) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.facts, b.facts);
                assert_eq!(a.host, b.host);
                assert!(a.facts.len() <= 256);
            }
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            _ => panic!("normalizing the same action twice disagreed"),
        }
    }
});
