//! Golden tests: each rewrite of a response body, input and expected output in full.

use serde_json::{Value, json};

use super::*;

fn chat_two_calls() -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_a", "type": "function",
                 "function": {"name": "run_command", "arguments": "{\"command\":\"rm -rf /\"}"}},
                {"id": "call_b", "type": "function",
                 "function": {"name": "run_command", "arguments": "{\"command\":\"echo hello\"}"}}
            ]},
            "finish_reason": "tool_calls"
        }],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    })
}

#[test]
fn calls_are_found_in_order() {
    let found = proposed(&chat_two_calls());
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].at, Place::Chat { choice: 0, call: 0 });
    assert_eq!(found[0].name, "run_command");
    assert_eq!(found[0].arguments, "{\"command\":\"rm -rf /\"}");
    assert_eq!(found[1].id, "call_b");
}

#[test]
fn one_refused_call_of_two() {
    let mut body = chat_two_calls();
    remove(
        &mut body,
        &[(Place::Chat { choice: 0, call: 0 }, "refused: no".into())],
    );
    assert_eq!(
        body,
        json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": "refused: no", "tool_calls": [
                    {"id": "call_b", "type": "function",
                     "function": {"name": "run_command", "arguments": "{\"command\":\"echo hello\"}"}}
                ]},
                "finish_reason": "tool_calls"
            }],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        })
    );
}

#[test]
fn every_call_refused_ends_the_turn_with_text() {
    let mut body = chat_two_calls();
    body["choices"][0]["message"]["content"] = json!("Let me clean up.");
    remove(
        &mut body,
        &[
            (Place::Chat { choice: 0, call: 1 }, "second refused".into()),
            (Place::Chat { choice: 0, call: 0 }, "first refused".into()),
        ],
    );
    assert_eq!(
        body["choices"][0],
        json!({
            "index": 0,
            "message": {"role": "assistant", "content": "Let me clean up.\nfirst refused\nsecond refused"},
            "finish_reason": "stop"
        })
    );
}

#[test]
fn responses_function_calls_become_messages() {
    let mut body = json!({
        "id": "resp_1", "object": "response", "status": "completed", "model": "m",
        "output": [
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "run_command",
             "arguments": "{\"command\":\"rm -rf /\"}", "status": "completed"},
            {"type": "function_call", "id": "fc_2", "call_id": "call_2", "name": "run_command",
             "arguments": "{\"command\":\"echo hello\"}", "status": "completed"}
        ]
    });
    let found = proposed(&body);
    assert_eq!(
        found.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["call_1", "call_2"]
    );
    remove(
        &mut body,
        &[(Place::Responses { item: 0 }, "refused".into())],
    );
    assert_eq!(
        body["output"][0],
        json!({"type": "message", "id": "msg_warden_fc_1", "status": "completed", "role": "assistant",
               "content": [{"type": "output_text", "text": "refused", "annotations": []}]})
    );
    assert_eq!(body["output"][1]["call_id"], "call_2");
}

#[test]
fn bodies_without_calls_have_none() {
    assert!(proposed(&json!({"choices": [{"message": {"content": "hi"}}]})).is_empty());
    assert!(proposed(&json!({"output": [{"type": "message"}]})).is_empty());
    assert!(proposed(&json!("not an object")).is_empty());
}
