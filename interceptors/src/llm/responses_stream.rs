//! Streamed Responses API calls (`POST /v1/responses`, `"stream": true`), held until
//! checked, like streamed Chat Completions ([`super::stream`]).
//!
//! The provider's events (`event: response.…` + `data: {"type", "sequence_number", …}`)
//! are read to the end and assembled into the Response they describe ([`assemble`]):
//! the `response` of the terminal event (`response.completed`, `response.incomplete`
//! or `response.failed`), its `output` taken from the `response.output_item.done`
//! items when the terminal event carries none. Everything a client could read is
//! checked against that one object, so what is judged is what any client sees: the
//! items of `response.output_item.done` must be those of the terminal response, and
//! the text, refusal and argument deltas (and their `.done` events) must add up to
//! the items' final text. A stream that disagrees with itself, ends without a terminal
//! event or goes on after it is an error: the caller withholds it.
//!
//! When the judged Response is unchanged the client gets the provider's bytes; when a
//! call was refused or text redacted it gets a new, valid event sequence that says the
//! checked Response ([`synthesize`]).

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{Value, json};

/// Highest `output_index` / `content_index` accepted.
const MAX_INDEX: u64 = 4096;

/// The terminal event types, and the `status` each one's response carries.
const TERMINAL: [(&str, &str); 3] = [
    ("response.completed", "completed"),
    ("response.incomplete", "incomplete"),
    ("response.failed", "failed"),
];

/// What the events before the terminal one said, by output index.
#[derive(Default)]
struct Seen {
    /// `response.output_item.added`: the item as it started (the event number too).
    added: BTreeMap<u64, usize>,
    /// `response.output_item.done`: the finished item.
    done: BTreeMap<u64, (usize, Value)>,
    /// Fragments by (output index, content index): `output_text` deltas and `refusal`
    /// deltas, appended in order.
    text: BTreeMap<(u64, u64), String>,
    refusal: BTreeMap<(u64, u64), String>,
    /// `response.function_call_arguments.delta`, appended in order.
    arguments: BTreeMap<u64, String>,
    /// Whole values the `.done` events claim: (event, output index, content index,
    /// field of the item's content part or of the item, value).
    claims: Vec<Claim>,
}

/// One `.done` event's statement about a finished item.
struct Claim {
    event: usize,
    output: u64,
    /// `None`: about the item itself (`arguments`); `Some(k)`: about `content[k]`.
    part: Option<u64>,
    /// `None`: the whole content part; `Some(field)`: that string field of it.
    field: Option<&'static str>,
    value: Value,
}

/// The Response a stream of Responses API events describes, in the non-streamed shape.
pub(crate) fn assemble(events: &[String]) -> Result<Value, String> {
    let mut seen = Seen::default();
    let mut terminal: Option<(usize, Value)> = None;
    // What an `error` event said, for the refusal when no terminal event follows.
    let mut provider_error: Option<String> = None;
    let mut last_seq: Option<u64> = None;
    for (i, data) in events.iter().enumerate() {
        let n = i + 1;
        let ev: Value =
            serde_json::from_str(data).map_err(|e| format!("event {n}: not JSON: {e}"))?;
        let kind = ev
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("event {n}: no \"type\""))?;
        if let Some((t, _)) = &terminal {
            return Err(format!("event {n} ({kind}) follows the terminal event {t}"));
        }
        if let Some(s) = ev.get("sequence_number") {
            let s = s
                .as_u64()
                .ok_or_else(|| format!("event {n}: sequence_number is not a number"))?;
            if last_seq.is_some_and(|l| s <= l) {
                return Err(format!("event {n}: sequence_number {s} does not increase"));
            }
            last_seq = Some(s);
        }
        match kind {
            "response.created" | "response.queued" | "response.in_progress" => {
                let output = ev.pointer("/response/output");
                if output
                    .is_some_and(|o| !o.is_null() && o.as_array().is_none_or(|a| !a.is_empty()))
                {
                    return Err(format!("event {n} ({kind}) already carries output items"));
                }
            }
            "response.output_item.added" => {
                let k = index(&ev, "output_index", n)?;
                if seen.added.insert(k, n).is_some() {
                    return Err(format!("event {n}: output item {k} added twice"));
                }
            }
            "response.output_item.done" => {
                let k = index(&ev, "output_index", n)?;
                let item = ev.get("item").cloned().unwrap_or(Value::Null);
                if seen.done.insert(k, (n, item)).is_some() {
                    return Err(format!("event {n}: output item {k} finished twice"));
                }
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                let at = (
                    index(&ev, "output_index", n)?,
                    index(&ev, "content_index", n)?,
                );
                let delta = string(&ev, "delta", n)?;
                let into = if kind == "response.output_text.delta" {
                    &mut seen.text
                } else {
                    &mut seen.refusal
                };
                into.entry(at).or_default().push_str(delta);
            }
            "response.function_call_arguments.delta" => {
                let k = index(&ev, "output_index", n)?;
                let delta = string(&ev, "delta", n)?;
                seen.arguments.entry(k).or_default().push_str(delta);
            }
            "response.output_text.done" | "response.refusal.done" => {
                let (field, value) = if kind == "response.output_text.done" {
                    ("text", string(&ev, "text", n)?)
                } else {
                    ("refusal", string(&ev, "refusal", n)?)
                };
                seen.claims.push(Claim {
                    event: n,
                    output: index(&ev, "output_index", n)?,
                    part: Some(index(&ev, "content_index", n)?),
                    field: Some(field),
                    value: json!(value),
                });
            }
            "response.content_part.done" => seen.claims.push(Claim {
                event: n,
                output: index(&ev, "output_index", n)?,
                part: Some(index(&ev, "content_index", n)?),
                field: None,
                value: ev.get("part").cloned().unwrap_or(Value::Null),
            }),
            "response.function_call_arguments.done" => seen.claims.push(Claim {
                event: n,
                output: index(&ev, "output_index", n)?,
                part: None,
                field: Some("arguments"),
                value: json!(string(&ev, "arguments", n)?),
            }),
            _ if TERMINAL.iter().any(|(t, _)| *t == kind) => {
                let response = ev
                    .get("response")
                    .filter(|r| r.is_object())
                    .ok_or_else(|| format!("event {n} ({kind}): no response object"))?;
                terminal = Some((n, response.clone()));
            }
            "error" => {
                let said = |k: &str| ev.get(k).and_then(Value::as_str).unwrap_or_default();
                provider_error = Some(format!("{} {}", said("code"), said("message")));
            }
            // Other events (reasoning, annotations, tool progress) say nothing the
            // finished items do not.
            _ => {}
        }
    }
    let Some((_, mut response)) = terminal else {
        return Err(match provider_error {
            // The provider's own words, so the client learns why its call failed.
            Some(said) => format!("the provider sent an error event: {}", said.trim()),
            None => "the stream ended without response.completed, response.incomplete or \
                     response.failed (cut short?)"
                .into(),
        });
    };
    // The finished items by output index: the terminal response's, or the done events'.
    let output = response.get("output").filter(|o| !o.is_null());
    if output.is_some_and(|o| !o.is_array()) {
        return Err("the terminal response's output is not a list".into());
    }
    let items: BTreeMap<u64, Value> = match output.and_then(Value::as_array) {
        Some(output) => {
            for (k, (n, item)) in &seen.done {
                let usize_k = usize::try_from(*k).unwrap_or(usize::MAX);
                if output.get(usize_k) != Some(item) {
                    return Err(format!(
                        "event {n}: output item {k} differs from the terminal response's"
                    ));
                }
            }
            (0u64..).zip(output.iter().cloned()).collect()
        }
        None => {
            let items: BTreeMap<u64, Value> = seen
                .done
                .iter()
                .map(|(k, (_, v))| (*k, v.clone()))
                .collect();
            response["output"] = Value::Array(items.values().cloned().collect());
            items
        }
    };
    // As many items and parts as the indexes of a stream written back can say.
    let too_many = |v: Option<&Value>| {
        v.and_then(Value::as_array)
            .is_some_and(|a| a.len() as u64 > MAX_INDEX + 1)
    };
    if too_many(response.get("output")) || items.values().any(|i| too_many(i.get("content"))) {
        return Err(format!(
            "more than {} output items or content parts",
            MAX_INDEX + 1
        ));
    }
    verify(&seen, &items)?;
    Ok(response)
}

/// Every fragment and `.done` claim agrees with the finished items.
fn verify(seen: &Seen, items: &BTreeMap<u64, Value>) -> Result<(), String> {
    for (k, n) in &seen.added {
        if !items.contains_key(k) {
            return Err(format!(
                "event {n}: output item {k} was added but never finished"
            ));
        }
    }
    let part = |k: u64, c: u64| {
        items
            .get(&k)
            .and_then(|i| i.get("content"))
            .and_then(Value::as_array)
            .and_then(|parts| parts.get(usize::try_from(c).ok()?))
    };
    for (field, fragments) in [("text", &seen.text), ("refusal", &seen.refusal)] {
        for (&(k, c), text) in fragments {
            if part(k, c)
                .and_then(|p| p.get(field))
                .and_then(Value::as_str)
                != Some(text)
            {
                return Err(format!(
                    "the {field} deltas of output item {k} part {c} do not add up to its {field}"
                ));
            }
        }
    }
    for (k, arguments) in &seen.arguments {
        let item = items.get(k);
        if item
            .and_then(|i| i.get("arguments"))
            .and_then(Value::as_str)
            != Some(arguments)
        {
            return Err(format!(
                "the argument deltas of output item {k} do not add up to its arguments"
            ));
        }
    }
    for c in &seen.claims {
        let at = match c.part {
            Some(p) => part(c.output, p),
            None => items.get(&c.output),
        };
        let claimed = match c.field {
            Some(f) => at.and_then(|v| v.get(f)),
            None => at,
        };
        if claimed != Some(&c.value) {
            return Err(format!(
                "event {}: differs from output item {} as finished",
                c.event, c.output
            ));
        }
    }
    Ok(())
}

fn index(ev: &Value, key: &str, n: usize) -> Result<u64, String> {
    match ev.get(key).and_then(Value::as_u64) {
        Some(k) if k <= MAX_INDEX => Ok(k),
        Some(k) => Err(format!("event {n}: {key} {k} is too large")),
        None => Err(format!("event {n}: no {key}")),
    }
}

fn string<'a>(ev: &'a Value, key: &str, n: usize) -> Result<&'a str, String> {
    ev.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("event {n}: no {key} text"))
}

/// A stream that says `response` (checked, possibly rewritten): `response.created` and
/// `response.in_progress` (no output yet), per output item its `added` event, its
/// content or arguments in one delta each and their `.done` events, its `done` event,
/// then the terminal event its `status` calls for, carrying the whole response.
pub(crate) fn synthesize(response: &Value) -> Bytes {
    let mut out = Writer::default();
    let mut head = response.clone();
    if let Some(h) = head.as_object_mut() {
        h.insert("status".into(), json!("in_progress"));
        h.insert("output".into(), json!([]));
        h.insert("usage".into(), Value::Null);
        for key in ["completed_at", "error", "incomplete_details"] {
            if h.contains_key(key) {
                h.insert(key.into(), Value::Null);
            }
        }
    }
    out.emit("response.created", json!({"response": head}));
    out.emit("response.in_progress", json!({"response": head}));
    let items = response.get("output").and_then(Value::as_array);
    for (k, item) in items.into_iter().flatten().enumerate() {
        item_events(&mut out, k, item);
    }
    let status = response.get("status").and_then(Value::as_str);
    let kind = TERMINAL
        .iter()
        .find(|(_, s)| Some(*s) == status)
        .map_or("response.completed", |(t, _)| t);
    out.emit(kind, json!({"response": response}));
    Bytes::from(out.text)
}

/// The events of one output item, `k`.
fn item_events(out: &mut Writer, k: usize, item: &Value) {
    let id = item.get("id").cloned().unwrap_or(json!(""));
    let kind = item.get("type").and_then(Value::as_str);
    let mut started = item.clone();
    if let Some(s) = started.as_object_mut()
        && s.contains_key("status")
    {
        s.insert("status".into(), json!("in_progress"));
    }
    match kind {
        Some("message") => {
            if let Some(s) = started.as_object_mut() {
                s.insert("content".into(), json!([]));
            }
        }
        Some("function_call") if item.get("arguments").is_some_and(Value::is_string) => {
            started["arguments"] = json!("");
        }
        _ => {}
    }
    out.emit(
        "response.output_item.added",
        json!({"output_index": k, "item": started}),
    );
    let at = |extra: Value| {
        let mut v = json!({"item_id": id, "output_index": k});
        if let (Some(v), Value::Object(extra)) = (v.as_object_mut(), extra) {
            v.extend(extra);
        }
        v
    };
    let parts = item.get("content").and_then(Value::as_array);
    if kind == Some("message") {
        for (c, part) in parts.into_iter().flatten().enumerate() {
            // The part as it starts: its text fields empty.
            let mut empty = part.clone();
            let text = [("output_text", "text"), ("refusal", "refusal")]
                .into_iter()
                .find(|(t, f)| {
                    part.get("type").and_then(Value::as_str) == Some(*t)
                        && part.get(*f).is_some_and(Value::is_string)
                });
            if let Some((_, field)) = text {
                empty[field] = json!("");
            }
            out.emit(
                "response.content_part.added",
                at(json!({"content_index": c, "part": empty})),
            );
            match text {
                Some(("output_text", _)) => {
                    let t = &part["text"];
                    out.emit(
                        "response.output_text.delta",
                        at(json!({"content_index": c, "delta": t, "logprobs": []})),
                    );
                    out.emit(
                        "response.output_text.done",
                        at(json!({"content_index": c, "text": t, "logprobs": []})),
                    );
                }
                Some((_, _)) => {
                    let r = &part["refusal"];
                    out.emit(
                        "response.refusal.delta",
                        at(json!({"content_index": c, "delta": r})),
                    );
                    out.emit(
                        "response.refusal.done",
                        at(json!({"content_index": c, "refusal": r})),
                    );
                }
                None => {}
            }
            out.emit(
                "response.content_part.done",
                at(json!({"content_index": c, "part": part})),
            );
        }
    }
    if kind == Some("function_call")
        && let Some(a) = item.get("arguments").filter(|a| a.is_string())
    {
        out.emit(
            "response.function_call_arguments.delta",
            at(json!({"delta": a})),
        );
        out.emit(
            "response.function_call_arguments.done",
            at(json!({"arguments": a})),
        );
    }
    out.emit(
        "response.output_item.done",
        json!({"output_index": k, "item": item}),
    );
}

/// Server-sent events with increasing sequence numbers.
#[derive(Default)]
struct Writer {
    text: String,
    seq: u64,
}

impl Writer {
    fn emit(&mut self, kind: &str, mut data: Value) {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.seq);
        self.seq += 1;
        self.text.push_str("event: ");
        self.text.push_str(kind);
        self.text.push_str("\ndata: ");
        self.text.push_str(&data.to_string());
        self.text.push_str("\n\n");
    }
}

#[cfg(test)]
mod tests;
