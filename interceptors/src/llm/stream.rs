//! Streamed Chat Completions (`"stream": true`), held until checked.
//!
//! The provider's server-sent events are read to the end, parsed ([`events`]) and
//! assembled into the completion they describe ([`assemble`]); that completion is
//! judged like a non-streamed one (tool calls, detectors, redactions). When nothing
//! changed, the client gets the provider's events byte for byte; when something did,
//! it gets a new, valid stream that says the checked completion ([`synthesize`]): per
//! choice a role/content chunk, a chunk with the complete tool calls that were let
//! through, a finish chunk, then the usage chunk and `[DONE]`.
//!
//! The window is the whole answer: no text reaches the client before the model has
//! finished and everything was judged. That costs time to first token (the client sees
//! the answer when a non-streamed call would have ended), and buys that nothing
//! unchecked — a tool call, a key split over two chunks — is ever let out.

use bytes::Bytes;
use serde_json::{Map, Value, json};

/// Largest single event accepted.
const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// The `data` of each event, in order (comments and other fields dropped); `[DONE]`
/// ends the stream.
pub(crate) fn events(raw: &[u8]) -> Result<Vec<String>, String> {
    let text = std::str::from_utf8(raw).map_err(|e| format!("the stream is not UTF-8: {e}"))?;
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        if block.len() > MAX_EVENT_BYTES {
            return Err(format!("an event is larger than {MAX_EVENT_BYTES} bytes"));
        }
        let mut data: Vec<&str> = Vec::new();
        for line in block.lines() {
            if let Some(rest) = line.strip_prefix("data:") {
                data.push(rest.strip_prefix(' ').unwrap_or(rest));
            } else if !is_other_field(line) {
                // Fail closed: an answer that is not an event stream (a provider that
                // ignored "stream": true and sent JSON) would otherwise assemble to
                // nothing and pass unchecked.
                return Err(format!(
                    "not a server-sent event stream: a line starts {:?}",
                    line.chars().take(40).collect::<String>()
                ));
            }
        }
        if data.is_empty() {
            continue;
        }
        let data = data.join("\n");
        if data.trim() == "[DONE]" {
            break;
        }
        out.push(data);
    }
    Ok(out)
}

/// A line of an event that is not data: empty, a comment, or a field we do not use.
fn is_other_field(line: &str) -> bool {
    line.is_empty()
        || line.starts_with(':')
        || ["event:", "id:", "retry:"]
            .iter()
            .any(|f| line.starts_with(f))
        || ["event", "id", "retry"].contains(&line)
}

/// The completion a stream of `chat.completion.chunk` events describes, in the
/// non-streamed shape (`choices[].message`, `usage`).
pub(crate) fn assemble(events: &[String]) -> Result<Value, String> {
    let mut head = Map::new();
    let mut choices: Vec<Choice> = Vec::new();
    let mut usage = Value::Null;
    let mut chunks = 0;
    for (n, data) in events.iter().enumerate() {
        let chunk: Value =
            serde_json::from_str(data).map_err(|e| format!("event {}: not JSON: {e}", n + 1))?;
        for key in ["id", "created", "model", "system_fingerprint"] {
            if let Some(v) = chunk.get(key)
                && !head.contains_key(key)
            {
                head.insert(key.into(), v.clone());
            }
        }
        if let Some(u) = chunk.get("usage")
            && !u.is_null()
        {
            usage = u.clone();
        }
        let listed = chunk.get("choices").and_then(Value::as_array);
        chunks += usize::from(listed.is_some());
        for c in listed.into_iter().flatten() {
            let index = c.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
            if index > 1024 {
                return Err(format!("event {}: choice index {index}", n + 1));
            }
            while choices.len() <= index {
                choices.push(Choice::default());
            }
            choices[index].add(c, n + 1)?;
        }
    }
    if chunks == 0 {
        return Err("the stream has no chat.completion.chunk with choices".into());
    }
    let mut body = Value::Object(head);
    body["object"] = json!("chat.completion");
    body["choices"] = Value::Array(
        choices
            .into_iter()
            .enumerate()
            .map(|(i, c)| c.into_json(i))
            .collect(),
    );
    if !usage.is_null() {
        body["usage"] = usage;
    }
    Ok(body)
}

#[derive(Default)]
struct Choice {
    role: Option<String>,
    content: Option<String>,
    calls: Vec<Call>,
    finish: Option<String>,
}

#[derive(Default)]
struct Call {
    id: String,
    name: String,
    arguments: String,
}

impl Choice {
    fn add(&mut self, c: &Value, event: usize) -> Result<(), String> {
        let delta = c.get("delta").unwrap_or(&Value::Null);
        if let Some(r) = delta.get("role").and_then(Value::as_str) {
            self.role = Some(r.into());
        }
        if let Some(t) = delta.get("content").and_then(Value::as_str) {
            self.content.get_or_insert_with(String::new).push_str(t);
        }
        for tc in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let k = tc.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
            if k > 1024 {
                return Err(format!("event {event}: tool call index {k}"));
            }
            while self.calls.len() <= k {
                self.calls.push(Call::default());
            }
            let call = &mut self.calls[k];
            if let Some(id) = tc.get("id").and_then(Value::as_str) {
                call.id = id.into();
            }
            if let Some(name) = tc.pointer("/function/name").and_then(Value::as_str) {
                call.name.push_str(name);
            }
            if let Some(a) = tc.pointer("/function/arguments").and_then(Value::as_str) {
                call.arguments.push_str(a);
            }
        }
        if let Some(f) = c.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(f.into());
        }
        Ok(())
    }

    fn into_json(self, index: usize) -> Value {
        let mut message = json!({
            "role": self.role.unwrap_or_else(|| "assistant".into()),
            "content": self.content,
        });
        if !self.calls.is_empty() {
            message["tool_calls"] = Value::Array(
                self.calls
                    .into_iter()
                    .map(|c| {
                        json!({"id": c.id, "type": "function",
                               "function": {"name": c.name, "arguments": c.arguments}})
                    })
                    .collect(),
            );
        }
        json!({"index": index, "message": message, "finish_reason": self.finish})
    }
}

/// A stream that says `completion` (checked, possibly rewritten).
pub(crate) fn synthesize(completion: &Value) -> Bytes {
    let head = |choices: Value| {
        let mut c = json!({
            "id": completion.get("id").cloned().unwrap_or(json!("chatcmpl-warden")),
            "object": "chat.completion.chunk",
            "created": completion.get("created").cloned().unwrap_or(json!(0)),
            "model": completion.get("model").cloned().unwrap_or(json!("")),
            "choices": choices,
        });
        if let Some(fp) = completion.get("system_fingerprint") {
            c["system_fingerprint"] = fp.clone();
        }
        c
    };
    let mut out = String::new();
    let mut emit = |v: Value| {
        out.push_str("data: ");
        out.push_str(&v.to_string());
        out.push_str("\n\n");
    };
    for c in completion
        .get("choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let index = c.get("index").cloned().unwrap_or(json!(0));
        let message = c.get("message").unwrap_or(&Value::Null);
        emit(head(json!([{"index": index, "delta": {
            "role": message.get("role").cloned().unwrap_or(json!("assistant")),
            "content": message.get("content").cloned().unwrap_or(Value::Null),
        }, "finish_reason": null}])));
        if let Some(calls) = message.get("tool_calls").and_then(Value::as_array)
            && !calls.is_empty()
        {
            let deltas: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(k, call)| {
                    let mut d = call.clone();
                    d["index"] = json!(k);
                    d
                })
                .collect();
            emit(head(
                json!([{"index": index, "delta": {"tool_calls": deltas}, "finish_reason": null}]),
            ));
        }
        emit(head(json!([{"index": index, "delta": {},
            "finish_reason": c.get("finish_reason").cloned().unwrap_or(json!("stop"))}])));
    }
    if let Some(u) = completion.get("usage") {
        let mut chunk = head(json!([]));
        chunk["usage"] = u.clone();
        emit(chunk);
    }
    out.push_str("data: [DONE]\n\n");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream as providers send it: role first, content and tool-call arguments in
    /// fragments, two parallel calls, a finish chunk, a usage chunk.
    const STREAM: &str = concat!(
        ": keep-alive comment\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Run\"},\"finish_reason\":null}]}\r\n\r\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"run_command\",\"arguments\":\"{\\\"comm\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"run_command\",\"arguments\":\"{\\\"command\\\":\\\"ls\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"and\\\":\\\"rm -rf /\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}\n\n",
        "data: [DONE]\n\n",
    );

    #[test]
    fn fragments_assemble_into_the_completion() {
        let ev = events(STREAM.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ev.len(), 7);
        let c = assemble(&ev).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c,
            json!({
                "id": "c1", "created": 5, "model": "m", "object": "chat.completion",
                "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                    "role": "assistant", "content": "Run", "tool_calls": [
                        {"id": "call_a", "type": "function", "function": {"name": "run_command", "arguments": "{\"command\":\"rm -rf /\"}"}},
                        {"id": "call_b", "type": "function", "function": {"name": "run_command", "arguments": "{\"command\":\"ls\"}"}}
                    ]}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
            })
        );
    }

    #[test]
    fn a_synthesized_stream_says_the_same_completion() {
        let ev = events(STREAM.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let c = assemble(&ev).unwrap_or_else(|e| panic!("{e}"));
        let again = synthesize(&c);
        let text = std::str::from_utf8(&again).unwrap_or_default();
        assert!(text.ends_with("data: [DONE]\n\n"));
        let ev2 = events(&again).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(assemble(&ev2).unwrap_or_else(|e| panic!("{e}")), c);
    }

    #[test]
    fn broken_streams_are_errors() {
        assert!(events(&[0xff, 0xfe]).is_err());
        let bad = vec!["{not json".to_string()];
        assert!(assemble(&bad).unwrap_err().contains("event 1"));
    }

    #[test]
    fn answers_that_are_not_event_streams_are_errors() {
        // A provider that ignored "stream": true: plain JSON with a tool call.
        let json = br#"{"id":"x","choices":[{"index":0,"message":{"tool_calls":[{"id":"c","type":"function","function":{"name":"run_command","arguments":"{\"command\":\"rm -rf /\"}"}}]}}]}"#;
        let e = events(json).unwrap_err();
        assert!(e.contains("not a server-sent event stream"), "{e}");
        // Events that carry no chunk at all.
        assert!(
            assemble(&[])
                .unwrap_err()
                .contains("no chat.completion.chunk")
        );
        let only_usage = vec![r#"{"usage":{"prompt_tokens":1}}"#.to_string()];
        assert!(assemble(&only_usage).is_err());
        // Comments, ids and event names are fine.
        let ok = b": keep-alive\nid: 1\nevent: message\ndata: {\"choices\":[]}\n\ndata: [DONE]\n\n";
        assert_eq!(events(ok).unwrap_or_else(|e| panic!("{e}")).len(), 1);
    }
}
