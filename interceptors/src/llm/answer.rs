//! The provider's answer, checked before the agent sees it: read in its wire format
//! ([`Wire`]: one JSON body, or a chat or Responses event stream), the detectors and
//! the decision's redactions run and the proposed tool calls found ([`scan`]); the
//! calls are judged with the answer's report, in one round trip to the daemon, so what
//! the detectors found escalates the session before its calls are judged; then the
//! answer is written back, byte for byte when nothing changed ([`Scanned::finish`]).

use bytes::Bytes;
use hyper::{Response, StatusCode};
use serde_json::Value;
use warden_proto::v1::{Action, Decision, Usage, Verdict};

use super::reply::{self, LlmBody};
use super::{Route, Shared, calls, responses_stream, stream};
use crate::mcp::outcome::{self, Redactor};

/// An answer read and scanned, its tool calls not yet judged: the report it makes
/// ([`Scanned::usage`], [`Scanned::tags`]) and the calls to judge with it
/// ([`Scanned::take_follow_ups`]), then [`Scanned::finish`] with their decisions.
pub(super) struct Scanned {
    wire: Wire,
    /// The answer as the provider wrote it, parsed.
    parsed: Value,
    /// The same after the detectors' and the decision's redactions.
    rewritten: Value,
    /// A redaction changed one of the stream's events (not only the assembled answer).
    events_redacted: bool,
    pub(super) usage: Option<Usage>,
    /// `secret`, `pii` and `detected:KIND` for what the detectors found.
    pub(super) tags: Vec<String>,
    /// The calls to judge, in the answer's order.
    to_judge: Vec<ToJudge>,
    /// Calls refused without asking (their arguments cannot be checked).
    refused: Vec<(calls::Place, String)>,
}

/// A proposed call to judge: where it sits, its name, its action.
struct ToJudge {
    at: calls::Place,
    name: String,
    action: Action,
}

/// An answer that cannot be let out: the refusal, and what the report says.
pub(super) struct Withheld {
    /// Boxed: the error side of [`scan`] stays small.
    pub(super) response: Box<Response<LlmBody>>,
    pub(super) usage: Option<Usage>,
    pub(super) why: String,
}

/// Reads a successful answer, runs the detectors and the decision's redactions over it,
/// and finds the tool calls it proposes.
pub(super) fn scan(
    shared: &Shared,
    call: &Action,
    decision: Option<&Decision>,
    wire: Wire,
    answer: &Bytes,
) -> Result<Scanned, Withheld> {
    let (parsed, events) = wire.read(answer).map_err(|e| Withheld {
        response: Box::new(reply::error(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            None,
            format!("warden: the provider's answer cannot be read ({e}), so its tool calls cannot be checked; it is withheld"),
        )),
        usage: None,
        why: format!("the answer cannot be read: {e}"),
    })?;
    let usage = usage_of(&parsed);
    let withheld = |e: String| Withheld {
        response: Box::new(reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "warden_error",
            None,
            format!("warden: {e}; the answer is withheld"),
        )),
        usage,
        why: format!("withheld: {e}"),
    };
    let redactor = Redactor::new(decision, shared.redact_detected).map_err(withheld)?;
    let (rewritten, scan) = outcome::inspect(parsed.clone(), &redactor).map_err(withheld)?;
    let mut tags = scan.tags;
    // Every string of every event, too: a client reading the provider's events sees
    // more than the assembled answer (lifecycle snapshots, kinds of deltas that are not
    // assembled). A redaction there means the provider's bytes cannot pass.
    let mut events_redacted = false;
    if let Some(events) = events {
        let (redacted, scan) = outcome::inspect(events.clone(), &redactor).map_err(withheld)?;
        events_redacted = redacted != events;
        tags.extend(scan.tags);
        tags.sort();
        tags.dedup();
    }
    let (to_judge, refused) = proposed_actions(call, &parsed);
    Ok(Scanned {
        wire,
        parsed,
        rewritten,
        events_redacted,
        usage,
        tags,
        to_judge,
        refused,
    })
}

impl Scanned {
    /// The actions to evaluate with the answer's report, one per proposed call, in
    /// order (taken out: [`Scanned::finish`] needs only where each call sits).
    pub(super) fn take_follow_ups(&mut self) -> Vec<Action> {
        self.to_judge
            .iter_mut()
            .map(|c| std::mem::take(&mut c.action))
            .collect()
    }

    /// What the agent gets, given the decisions on [`Scanned::take_follow_ups`] (in order)
    /// or why there are none: every call not allowed is removed, with its refusal
    /// text; the provider's bytes when nothing changed.
    pub(super) fn finish(self, answer: &Bytes, judged: Result<Vec<Decision>, String>) -> Bytes {
        let Scanned {
            wire,
            parsed,
            mut rewritten,
            events_redacted,
            to_judge,
            mut refused,
            ..
        } = self;
        match judged {
            Ok(decisions) => {
                for (ToJudge { at, name, .. }, d) in to_judge.into_iter().zip(decisions) {
                    if matches!(d.verdict(), Verdict::Allow | Verdict::AllowWithRedaction) {
                        continue;
                    }
                    tracing::info!(
                        tool = name.as_str(),
                        decision = d.id.as_ref().map_or(0, |i| i.seq),
                        "proposed tool call refused"
                    );
                    refused.push((at, reply::call_refusal(&name, Some(&d), "")));
                }
            }
            // Nothing unchecked reaches the agent: no decision is a refusal, always.
            Err(e) => {
                for ToJudge { at, name, .. } in to_judge {
                    let why = format!("no policy decision could be had ({e})");
                    refused.push((at, reply::call_refusal(&name, None, &why)));
                }
            }
        }
        if !refused.is_empty() {
            calls::remove(&mut rewritten, &refused);
        }
        if rewritten != parsed || events_redacted {
            wire.encode(&rewritten)
        } else {
            answer.clone()
        }
    }
}

/// How an answer is framed, so how it is read and how a checked one is written back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wire {
    /// One JSON body.
    Json,
    /// Server-sent `chat.completion.chunk` events ([`stream`]).
    ChatStream,
    /// Server-sent Responses API events ([`responses_stream`]).
    ResponsesStream,
}

impl Wire {
    pub(super) fn of(route: Route, request: Option<&Value>) -> Wire {
        let streamed = request
            .and_then(|v| v.get("stream"))
            .and_then(Value::as_bool)
            == Some(true);
        match (streamed, route) {
            (true, Route::Responses) => Wire::ResponsesStream,
            (true, _) => Wire::ChatStream,
            (false, _) => Wire::Json,
        }
    }

    /// The answer in its non-streamed shape; for streams also every event, as a JSON
    /// array, for the detectors (fields the assembly does not keep, such as a chat
    /// delta's `reasoning_content`, are still scanned; a redaction there re-synthesizes
    /// the stream from the assembled answer, which leaves them out).
    fn read(self, raw: &[u8]) -> Result<(Value, Option<Value>), String> {
        let ev = match self {
            Wire::Json => {
                return serde_json::from_slice(raw)
                    .map(|v| (v, None))
                    .map_err(|e| format!("not valid JSON: {e}"));
            }
            Wire::ChatStream | Wire::ResponsesStream => stream::events(raw)?,
        };
        let answer = if self == Wire::ChatStream {
            stream::assemble(&ev)?
        } else {
            responses_stream::assemble(&ev)?
        };
        // `assemble` has parsed each of them already.
        let all = ev
            .iter()
            .map(|d| serde_json::from_str(d).unwrap_or(Value::Null))
            .collect();
        Ok((answer, Some(Value::Array(all))))
    }

    fn encode(self, answer: &Value) -> Bytes {
        match self {
            Wire::Json => Bytes::from(answer.to_string()),
            Wire::ChatStream => stream::synthesize(answer),
            Wire::ResponsesStream => responses_stream::synthesize(answer),
        }
    }
}

/// An action per proposed tool call (channel `llm`, the function name, operation
/// `call`, the parsed arguments), and the calls refused without asking because their
/// arguments are not a JSON object.
fn proposed_actions(call: &Action, body: &Value) -> (Vec<ToJudge>, Vec<(calls::Place, String)>) {
    let mut to_judge = Vec::new();
    let mut refused = Vec::new();
    for p in calls::proposed(body) {
        let arguments = match serde_json::from_str::<Value>(if p.arguments.trim().is_empty() {
            "{}"
        } else {
            &p.arguments
        }) {
            Ok(Value::Object(map)) => map,
            Ok(_) | Err(_) => {
                refused.push((
                    p.at,
                    reply::call_refusal(
                        &p.name,
                        None,
                        "its arguments are not a JSON object, so they cannot be checked",
                    ),
                ));
                continue;
            }
        };
        let mut action = Action {
            tenant: call.tenant.clone(),
            agent: call.agent.clone(),
            session: call.session.clone(),
            channel: "llm".into(),
            tool: p.name.clone(),
            operation: "call".into(),
            arguments: Some(crate::mcp::judge::to_struct(&arguments)),
            ..Default::default()
        };
        action
            .attributes
            .insert("llm.proposed_call".into(), p.id.clone());
        if let Some(model) = call.attributes.get("model") {
            action.attributes.insert("model".into(), model.clone());
        }
        to_judge.push(ToJudge {
            at: p.at,
            name: p.name,
            action,
        });
    }
    (to_judge, refused)
}

/// Token usage of a Chat Completions (`prompt_tokens`, `completion_tokens`) or Responses
/// (`input_tokens`, `output_tokens`) answer.
pub(super) fn usage_of(body: &Value) -> Option<Usage> {
    let u = body.get("usage")?;
    let n = |keys: [&str; 2]| {
        keys.iter()
            .find_map(|k| u.get(*k).and_then(Value::as_u64))
            .unwrap_or(0)
    };
    Some(Usage {
        tokens_in: n(["prompt_tokens", "input_tokens"]),
        tokens_out: n(["completion_tokens", "output_tokens"]),
        cost_usd: 0.0,
    })
}
