//! Tool calls a model proposes, found in and removed from OpenAI-shaped responses.
//!
//! Chat Completions: `choices[i].message.tool_calls[j]` with `function.name` and
//! `function.arguments` (a JSON text). Responses API: every `output[k]` item the
//! *client* is asked to run — `function_call` (`name`, `arguments`, `call_id`),
//! `custom_tool_call` (free-text `input`), `local_shell_call` and `shell_call` (the
//! commands, judged as tool `local_shell`/`shell` with a `command` argument so they go
//! through the command analyzer), `computer_call`, `apply_patch_call`, and any other
//! `*_call` item we do not know (judged as a tool named by its type, never passed
//! unjudged). Items the provider ran itself (web and file search, code interpreter,
//! image generation, remote MCP calls) have already happened and pass. A refused call is removed and
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
            if let Some((name, arguments)) = client_call(item) {
                out.push(Proposed {
                    at: Place::Responses { item: k },
                    id: text(item.get("call_id").or_else(|| item.get("id"))),
                    name,
                    arguments,
                });
            }
        }
    }
    out
}

/// Responses output items the provider ran itself: nothing is left to hold.
const PROVIDER_RUN: &[&str] = &[
    "web_search_call",
    "file_search_call",
    "code_interpreter_call",
    "image_generation_call",
    "mcp_call",
];

/// The tool name and arguments (a JSON text) of a Responses item the client would run.
fn client_call(item: &Value) -> Option<(String, String)> {
    let kind = item.get("type").and_then(Value::as_str)?;
    let command = |cmd: String| json!({ "command": cmd }).to_string();
    match kind {
        "function_call" => Some((text(item.get("name")), text(item.get("arguments")))),
        "custom_tool_call" => Some((
            text(item.get("name")),
            json!({ "input": text(item.get("input")) }).to_string(),
        )),
        "local_shell_call" => {
            let argv: Vec<String> = item
                .pointer("/action/command")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|a| a.as_str().unwrap_or_default().to_string())
                .collect();
            Some(("local_shell".into(), command(shell_words(&argv))))
        }
        "shell_call" => {
            let commands: Vec<&str> = item
                .pointer("/action/commands")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            Some(("shell".into(), command(commands.join("\n"))))
        }
        "computer_call" => Some((
            "computer".into(),
            json!({ "action": item.get("action").cloned().unwrap_or(Value::Null) }).to_string(),
        )),
        "apply_patch_call" => Some((
            "apply_patch".into(),
            item.get("operation")
                .cloned()
                .unwrap_or(Value::Null)
                .to_string(),
        )),
        k if k.ends_with("_call") && !PROVIDER_RUN.contains(&k) => {
            let mut args = item.clone();
            if let Some(obj) = args.as_object_mut() {
                for key in ["type", "id", "call_id", "status"] {
                    obj.remove(key);
                }
            }
            Some((k.to_string(), args.to_string()))
        }
        _ => None,
    }
}

/// An argv as one shell command line, quoting what the shell would split or expand.
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
            if plain {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
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
