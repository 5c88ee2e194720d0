//! Golden tests: a Responses API stream as a provider sends it, the Response it
//! assembles into, the stream synthesized from a rewritten Response, and the ways a
//! stream is refused.

use serde_json::{Value, json};

use super::*;
use crate::llm::stream::events;

/// One event as providers frame it: `event:` line, `data:` line with type and number.
fn ev(seq: u64, kind: &str, mut data: Value) -> String {
    data["type"] = json!(kind);
    data["sequence_number"] = json!(seq);
    format!("event: {kind}\ndata: {data}\n\n")
}

fn message() -> Value {
    json!({"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
           "content": [{"type": "output_text", "text": "Running it.", "annotations": []}]})
}

fn call() -> Value {
    json!({"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "run_command",
           "arguments": "{\"command\":\"rm -rf /\"}", "status": "completed"})
}

fn head(status: &str) -> Value {
    json!({"id": "resp_1", "object": "response", "created_at": 5, "model": "m",
           "status": status, "output": [], "usage": null})
}

fn usage() -> Value {
    json!({"input_tokens": 11, "output_tokens": 4, "total_tokens": 15})
}

/// The completed Response of [`provider_stream`].
fn completed() -> Value {
    let mut r = head("completed");
    r["output"] = json!([message(), call()]);
    r["usage"] = usage();
    r
}

/// Text and arguments in fragments, a keep-alive comment, CRLF framing in one place.
fn provider_stream(terminal: Value) -> String {
    let mut added_msg = message();
    added_msg["status"] = json!("in_progress");
    added_msg["content"] = json!([]);
    let mut added_call = call();
    added_call["status"] = json!("in_progress");
    added_call["arguments"] = json!("");
    let part = json!({"type": "output_text", "text": "", "annotations": []});
    let at = |k: u64, extra: Value| {
        let mut v = json!({"item_id": if k == 0 { "msg_1" } else { "fc_1" }, "output_index": k});
        if let (Some(v), Value::Object(e)) = (v.as_object_mut(), extra) {
            v.extend(e);
        }
        v
    };
    let mut s = String::from(": keep-alive\n\n");
    let mut n = 0..;
    let mut push = |kind: &str, data: Value| s.push_str(&ev(n.next().unwrap_or(0), kind, data));
    push("response.created", json!({"response": head("in_progress")}));
    push(
        "response.in_progress",
        json!({"response": head("in_progress")}),
    );
    push(
        "response.output_item.added",
        json!({"output_index": 0, "item": added_msg}),
    );
    push(
        "response.content_part.added",
        at(0, json!({"content_index": 0, "part": part})),
    );
    for d in ["Runn", "ing ", "it."] {
        push(
            "response.output_text.delta",
            at(0, json!({"content_index": 0, "delta": d, "logprobs": []})),
        );
    }
    push(
        "response.output_text.done",
        at(
            0,
            json!({"content_index": 0, "text": "Running it.", "logprobs": []}),
        ),
    );
    push(
        "response.content_part.done",
        at(
            0,
            json!({"content_index": 0, "part": message()["content"][0]}),
        ),
    );
    push(
        "response.output_item.done",
        json!({"output_index": 0, "item": message()}),
    );
    push(
        "response.output_item.added",
        json!({"output_index": 1, "item": added_call}),
    );
    for d in ["{\"comm", "and\":\"r", "m -rf /\"}"] {
        push(
            "response.function_call_arguments.delta",
            at(1, json!({"delta": d})),
        );
    }
    push(
        "response.function_call_arguments.done",
        at(1, json!({"arguments": "{\"command\":\"rm -rf /\"}"})),
    );
    push(
        "response.output_item.done",
        json!({"output_index": 1, "item": call()}),
    );
    push("response.completed", json!({"response": terminal}));
    s.replacen("\n\n", "\r\n\r\n", 3)
}

fn assembled(stream: &str) -> Result<Value, String> {
    assemble(&events(stream.as_bytes())?)
}

#[test]
fn fragments_assemble_into_the_completed_response() {
    let r = assembled(&provider_stream(completed())).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r, completed());
}

#[test]
fn without_output_in_the_terminal_event_the_done_items_are_used() {
    let mut terminal = completed();
    if let Some(t) = terminal.as_object_mut() {
        t.remove("output");
    }
    let r = assembled(&provider_stream(terminal)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r, completed());
}

#[test]
fn a_synthesized_stream_is_exactly_this() {
    let mut r = head("completed");
    r["output"] = json!([
        {"type": "message", "id": "m", "status": "completed", "role": "assistant",
         "content": [{"type": "output_text", "text": "hi", "annotations": []}]},
        {"type": "function_call", "id": "f", "call_id": "c", "name": "ls", "arguments": "{}",
         "status": "completed"}
    ]);
    r["usage"] = usage();
    let got = synthesize(&r);
    let text = std::str::from_utf8(&got).unwrap_or_default();
    let lines: Vec<&str> = text.split("\n\n").filter(|b| !b.is_empty()).collect();
    let expected = [
        r#"event: response.created
data: {"response":{"created_at":5,"id":"resp_1","model":"m","object":"response","output":[],"status":"in_progress","usage":null},"sequence_number":0,"type":"response.created"}"#,
        r#"event: response.in_progress
data: {"response":{"created_at":5,"id":"resp_1","model":"m","object":"response","output":[],"status":"in_progress","usage":null},"sequence_number":1,"type":"response.in_progress"}"#,
        r#"event: response.output_item.added
data: {"item":{"content":[],"id":"m","role":"assistant","status":"in_progress","type":"message"},"output_index":0,"sequence_number":2,"type":"response.output_item.added"}"#,
        r#"event: response.content_part.added
data: {"content_index":0,"item_id":"m","output_index":0,"part":{"annotations":[],"text":"","type":"output_text"},"sequence_number":3,"type":"response.content_part.added"}"#,
        r#"event: response.output_text.delta
data: {"content_index":0,"delta":"hi","item_id":"m","logprobs":[],"output_index":0,"sequence_number":4,"type":"response.output_text.delta"}"#,
        r#"event: response.output_text.done
data: {"content_index":0,"item_id":"m","logprobs":[],"output_index":0,"sequence_number":5,"text":"hi","type":"response.output_text.done"}"#,
        r#"event: response.content_part.done
data: {"content_index":0,"item_id":"m","output_index":0,"part":{"annotations":[],"text":"hi","type":"output_text"},"sequence_number":6,"type":"response.content_part.done"}"#,
        r#"event: response.output_item.done
data: {"item":{"content":[{"annotations":[],"text":"hi","type":"output_text"}],"id":"m","role":"assistant","status":"completed","type":"message"},"output_index":0,"sequence_number":7,"type":"response.output_item.done"}"#,
        r#"event: response.output_item.added
data: {"item":{"arguments":"","call_id":"c","id":"f","name":"ls","status":"in_progress","type":"function_call"},"output_index":1,"sequence_number":8,"type":"response.output_item.added"}"#,
        r#"event: response.function_call_arguments.delta
data: {"delta":"{}","item_id":"f","output_index":1,"sequence_number":9,"type":"response.function_call_arguments.delta"}"#,
        r#"event: response.function_call_arguments.done
data: {"arguments":"{}","item_id":"f","output_index":1,"sequence_number":10,"type":"response.function_call_arguments.done"}"#,
        r#"event: response.output_item.done
data: {"item":{"arguments":"{}","call_id":"c","id":"f","name":"ls","status":"completed","type":"function_call"},"output_index":1,"sequence_number":11,"type":"response.output_item.done"}"#,
        r#"event: response.completed
data: {"response":{"created_at":5,"id":"resp_1","model":"m","object":"response","output":[{"content":[{"annotations":[],"text":"hi","type":"output_text"}],"id":"m","role":"assistant","status":"completed","type":"message"},{"arguments":"{}","call_id":"c","id":"f","name":"ls","status":"completed","type":"function_call"}],"status":"completed","usage":{"input_tokens":11,"output_tokens":4,"total_tokens":15}},"sequence_number":12,"type":"response.completed"}"#,
    ];
    assert_eq!(lines, expected);
    assert!(text.ends_with("}\n\n"));
}

#[test]
fn a_synthesized_stream_says_the_same_response() {
    // A refused call rewritten into a message (as calls::remove does), a refusal part,
    // an item of a kind without deltas, and an incomplete response.
    let mut r = completed();
    r["status"] = json!("incomplete");
    r["output"][1] = json!({"type": "message", "id": "msg_warden_fc_1", "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "[warden] not run.", "annotations": []},
                    {"type": "refusal", "refusal": "no"}]});
    if let Some(o) = r["output"].as_array_mut() {
        o.push(json!({"type": "reasoning", "id": "rs_1", "summary": []}));
    }
    let again = synthesize(&r);
    let text = std::str::from_utf8(&again).unwrap_or_default();
    assert!(text.contains("event: response.incomplete\n"), "{text}");
    assert!(text.contains("event: response.refusal.delta\n"), "{text}");
    assert_eq!(assembled(text), Ok(r));
    // And the provider's own stream, assembled and synthesized, reads back the same.
    let c = completed();
    let again = synthesize(&c);
    assert_eq!(
        assembled(std::str::from_utf8(&again).unwrap_or_default()),
        Ok(c)
    );
}

/// `provider_stream` with one event's data changed by `edit` (events numbered from 1).
fn edited(n: usize, edit: impl Fn(&mut Value)) -> String {
    let s = provider_stream(completed());
    let evs = events(s.as_bytes()).unwrap_or_default();
    let mut out = String::new();
    for (i, data) in evs.iter().enumerate() {
        let mut v: Value = serde_json::from_str(data).unwrap_or_default();
        if i + 1 == n {
            edit(&mut v);
        }
        out.push_str(&format!("data: {v}\n\n"));
    }
    out
}

fn refused(stream: &str) -> String {
    match assembled(stream) {
        Ok(r) => panic!("accepted: {r}"),
        Err(e) => e,
    }
}

#[test]
fn streams_that_disagree_with_themselves_are_refused() {
    // Cut short: no terminal event.
    let s = provider_stream(completed());
    let cut = &s[..s.rfind("event: response.completed").unwrap_or(0)];
    assert!(refused(cut).contains("ended without response.completed"));
    // An argument fragment that is not in the finished call.
    let e = refused(&edited(13, |v| v["delta"] = json!("{\"comm")));
    assert!(e.contains("argument deltas of output item 1"), "{e}");
    // Text deltas that do not add up to the item's text.
    let e = refused(&edited(5, |v| v["delta"] = json!("sk-")));
    assert!(e.contains("text deltas of output item 0 part 0"), "{e}");
    // A done item other than the terminal response's.
    let e = refused(&edited(10, |v| {
        v["item"]["content"][0]["text"] = json!("other")
    }));
    assert!(e.contains("event 10: output item 0 differs"), "{e}");
    // A `.done` event that says other arguments.
    let e = refused(&edited(15, |v| v["arguments"] = json!("{}")));
    assert!(e.contains("event 15: differs from output item 1"), "{e}");
    // Sequence numbers going back.
    let e = refused(&edited(4, |v| v["sequence_number"] = json!(0)));
    assert!(e.contains("does not increase"), "{e}");
    // Output items before any were added.
    let e = refused(&edited(1, |v| v["response"]["output"] = json!([call()])));
    assert!(e.contains("already carries output items"), "{e}");
    // An output that is not a list.
    let e = refused(&edited(17, |v| {
        v["response"]["output"] = json!("sk-hidden")
    }));
    assert!(e.contains("not a list"), "{e}");
}

#[test]
fn broken_streams_are_refused() {
    let s = provider_stream(completed());
    let after = format!("{s}{}", ev(99, "response.output_text.delta", json!({})));
    assert!(refused(&after).contains("follows the terminal event"));
    assert!(refused("data: {not json\n\n").contains("event 1: not JSON"));
    assert!(refused("data: {\"sequence_number\":1}\n\n").contains("no \"type\""));
    let added = ev(
        0,
        "response.output_item.added",
        json!({"output_index": 0, "item": call()}),
    );
    let done = ev(
        1,
        "response.completed",
        json!({"response": head("completed")}),
    );
    assert!(refused(&format!("{added}{done}")).contains("added but never finished"));
    let far = ev(
        0,
        "response.output_item.done",
        json!({"output_index": 99999, "item": {}}),
    );
    assert!(refused(&far).contains("too large"));
    let mut big = head("completed");
    big["output"] = Value::Array(vec![json!(0); 4098]);
    let big = ev(0, "response.completed", json!({"response": big}));
    assert!(refused(&big).contains("more than 4097 output items"));
    // A stream that is only the provider's error says what the provider said.
    let error = ev(
        0,
        "error",
        json!({"code": "rate_limit_exceeded", "message": "slow down", "param": null}),
    );
    assert_eq!(
        refused(&error),
        "the provider sent an error event: rate_limit_exceeded slow down"
    );
}
