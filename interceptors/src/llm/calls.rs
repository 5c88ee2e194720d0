//! Tool calls a model proposes, found in and removed from OpenAI-shaped responses.
//!
//! Chat Completions: `choices[i].message.tool_calls[j]` with `function.name` and
//! `function.arguments` (a JSON text). Responses API: `output[k]` items of type
//! `function_call` with `name`, `arguments` and `call_id`. A refused call is removed and
//! the refusal is put where the agent reads text: appended to the choice's
//! `message.content` (and `finish_reason` becomes `stop` when no call is left), or an
//! assistant `message` output item in place of the call.

use serde_json::{Value, json};

/// One proposed call, with where it sits in the response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Proposed {
    pub(crate) at: Place,
    pub(crate) id: String,
    pub(crate) name: String,
    /// The arguments as the model wrote them (a JSON text, possibly invalid).
    pub(crate) arguments: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// `choices[choice].message.tool_calls[call]`.
    Chat { choice: usize, call: usize },
    /// `output[item]`.
    Responses { item: usize },
}

/// Every tool call in a Chat Completions or Responses body, in order.
pub(crate) fn proposed(body: &Value) -> Vec<Proposed> {
    let mut out = Vec::new();
    if let Some(choices) = body.get("choices").and_then(Value::as_array) {
        for (c, choice) in choices.iter().enumerate() {
            let calls = choice
                .pointer("/message/tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten();
            for (k, call) in calls.enumerate() {
                out.push(Proposed {
                    at: Place::Chat { choice: c, call: k },
                    id: text(call.get("id")),
                    name: text(call.pointer("/function/name")),
                    arguments: text(call.pointer("/function/arguments")),
                });
            }
        }
    }
    if let Some(items) = body.get("output").and_then(Value::as_array) {
        for (k, item) in items.iter().enumerate() {
            if item.get("type").and_then(Value::as_str) == Some("function_call") {
                out.push(Proposed {
                    at: Place::Responses { item: k },
                    id: text(item.get("call_id")),
                    name: text(item.get("name")),
                    arguments: text(item.get("arguments")),
                });
            }
        }
    }
    out
}

fn text(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or_default().to_string()
}

/// Removes the refused calls (`(place, refusal text)`) and leaves the refusals where the
/// agent reads them. The rest of the body is left as it was.
pub(crate) fn remove(body: &mut Value, refused: &[(Place, String)]) {
    // Chat: per choice, drop refused calls (highest index first) and append the texts.
    let mut chat: Vec<(usize, usize, &str)> = refused
        .iter()
        .filter_map(|(p, t)| match p {
            Place::Chat { choice, call } => Some((*choice, *call, t.as_str())),
            Place::Responses { .. } => None,
        })
        .collect();
    chat.sort_by_key(|c| std::cmp::Reverse((c.0, c.1)));
    for (choice, call, _) in &chat {
        if let Some(calls) = body
            .pointer_mut(&format!("/choices/{choice}/message/tool_calls"))
            .and_then(Value::as_array_mut)
            && *call < calls.len()
        {
            calls.remove(*call);
        }
    }
    let mut choices: Vec<usize> = chat.iter().map(|c| c.0).collect();
    choices.sort_unstable();
    choices.dedup();
    for choice in choices {
        let mut texts: Vec<&str> = chat.iter().filter(|c| c.0 == choice).map(|c| c.2).collect();
        texts.reverse();
        let Some(c) = body.pointer_mut(&format!("/choices/{choice}")) else {
            continue;
        };
        let Some(message) = c.get_mut("message").and_then(Value::as_object_mut) else {
            continue;
        };
        let none_left = message
            .get("tool_calls")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if none_left {
            message.remove("tool_calls");
        }
        let mut content = message
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        for t in texts {
            if !content.is_empty() {
                content.push('\n');
            }
            content.push_str(t);
        }
        message.insert("content".into(), Value::String(content));
        if none_left
            && c.get("finish_reason").and_then(Value::as_str) == Some("tool_calls")
            && let Some(obj) = c.as_object_mut()
        {
            obj.insert("finish_reason".into(), json!("stop"));
        }
    }

    // Responses: replace each refused function_call item by an assistant message.
    for (place, t) in refused {
        if let Place::Responses { item } = place
            && let Some(slot) = body.pointer_mut(&format!("/output/{item}"))
        {
            let id = slot
                .get("id")
                .and_then(Value::as_str)
                .map(|i| format!("msg_warden_{i}"))
                .unwrap_or_else(|| format!("msg_warden_{item}"));
            *slot = json!({
                "type": "message",
                "id": id,
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": t, "annotations": []}],
            });
        }
    }
}

#[cfg(test)]
mod tests;
