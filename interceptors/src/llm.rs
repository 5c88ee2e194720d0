//! `warden llm`: an OpenAI-compatible HTTP proxy in front of a model provider. Agents
//! point their SDK's base URL at it; every model call is evaluated before the provider
//! sees it (channel `llm`, tool `llm.chat`, the model, an estimate of its tokens, so
//! budgets and run caps refuse spent sessions), and every tool call the model proposes
//! is evaluated before the agent sees it (channel `llm`, tool = the function name,
//! operation `call`, the parsed arguments). Refused calls are removed and replaced by
//! text the agent can read ([`calls`]). Usage from the response is reported.
//!
//! Streamed answers are held until the model has finished and the answer was judged:
//! Chat Completions ([`stream`]) and Responses API calls ([`responses_stream`]) alike.

mod calls;
mod reply;
mod responses_stream;
mod stream;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, HOST, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use warden_proto::v1::{Action, Decision, ResultMeta, Usage, Verdict};

use self::reply::LlmBody;
use crate::admin::parse_duration;
use crate::client::{DaemonClient, IdentityArgs};
use crate::listen::strip_hop_by_hop;
use crate::listen::{self, ConnLimits};
use crate::mcp::outcome::{self, Redactor};

#[derive(Debug, Args)]
pub struct LlmArgs {
    #[command(flatten)]
    identity: IdentityArgs,
    /// Address to listen on (loopback by default).
    #[arg(long, env = "WARDEN_LLM_LISTEN", default_value = "127.0.0.1:8088")]
    listen: SocketAddr,
    /// The provider's base URL, the one an SDK would be given (`…/v1`).
    #[arg(
        long,
        env = "WARDEN_LLM_UPSTREAM",
        default_value = "https://api.openai.com/v1"
    )]
    upstream: String,
    /// Environment variable holding the provider key. When given, the client's
    /// `Authorization` is replaced by `Bearer <key>`; otherwise it is passed through.
    /// Keys are never logged.
    #[arg(long, value_name = "VAR")]
    upstream_key_env: Option<String>,
    /// Also redact what the detectors find in model output (API keys, private keys,
    /// tokens, emails, card numbers, national ids), whatever the decision says. Without
    /// it, output is redacted only where the decision's redactions say so.
    #[arg(long)]
    redact_detected: bool,
    /// Largest request body accepted, in bytes; larger ones get a 400.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Time allowed for the provider's whole answer.
    #[arg(long, default_value = "600s", value_parser = parse_duration)]
    upstream_timeout: Duration,
    /// On SIGTERM/SIGINT: stop accepting, then give open calls this long to finish.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    drain_timeout: Duration,
}

struct Shared {
    identity: IdentityArgs,
    client: DaemonClient,
    /// Scheme and authority of the provider, and the path its base URL ends in.
    upstream: Uri,
    base_path: String,
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    key: Option<HeaderValue>,
    redact_detected: bool,
    max_body_bytes: usize,
    upstream_timeout: Duration,
    /// Dropped with the last `Arc<Shared>`; shutdown waits for that.
    _drain: mpsc::Sender<()>,
}

pub(crate) async fn run(args: LlmArgs) -> i32 {
    match serve(args).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("warden llm: {e:#}");
            1
        }
    }
}

async fn serve(args: LlmArgs) -> anyhow::Result<()> {
    let upstream: Uri = args
        .upstream
        .trim_end_matches('/')
        .parse()
        .with_context(|| format!("--upstream {:?}", args.upstream))?;
    if !matches!(upstream.scheme_str(), Some("http" | "https")) || upstream.host().is_none() {
        bail!(
            "--upstream {:?}: expected http(s)://host[:port]/path",
            args.upstream
        );
    }
    let base_path = upstream.path().trim_end_matches('/').to_string();
    let key = match &args.upstream_key_env {
        Some(var) => {
            let key = std::env::var(var)
                .with_context(|| format!("--upstream-key-env {var}: the variable is not set"))?;
            let mut value = HeaderValue::from_str(&format!("Bearer {}", key.trim()))
                .with_context(|| format!("--upstream-key-env {var}: not a valid header value"))?;
            value.set_sensitive(true);
            Some(value)
        }
        None => None,
    };
    let mut connector = HttpConnector::new();
    connector.enforce_http(false);
    connector.set_nodelay(true);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(provider)?
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    let http = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(https);
    let client = DaemonClient::lazy(&args.identity).map_err(anyhow::Error::new)?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let local = listener.local_addr()?;
    let (drain, drained) = mpsc::channel::<()>(1);
    let shared = Arc::new(Shared {
        identity: args.identity.clone(),
        client,
        upstream,
        base_path,
        http,
        key,
        redact_detected: args.redact_detected,
        max_body_bytes: args.max_body_bytes,
        upstream_timeout: args.upstream_timeout,
        _drain: drain,
    });
    eprintln!(
        "warden llm listening on {local} (upstream {}, wardend at {})",
        args.upstream,
        shared.client.addr()
    );
    let limits = ConnLimits {
        header_timeout: Duration::from_secs(300),
        max_header_bytes: 64 * 1024,
    };
    let accept = {
        let shared = shared.clone();
        move |stream, peer, stopping| {
            let shared = shared.clone();
            let service = {
                let shared = shared.clone();
                hyper::service::service_fn(move |req| handle(shared.clone(), req))
            };
            tokio::spawn(async move {
                let _shared = shared;
                listen::serve_connection(stream, peer, service, stopping, limits).await;
            });
        }
    };
    drop(shared);
    listen::accept_until_signal(listener, args.drain_timeout, drained, accept).await
}

/// What a request is, by method and path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Chat,
    Responses,
    Models,
    Other,
}

impl Route {
    fn of(method: &Method, path: &str) -> Route {
        let path = path.trim_end_matches('/');
        match (method, path.strip_prefix("/v1").unwrap_or(path)) {
            (&Method::POST, "/chat/completions") => Route::Chat,
            (&Method::POST, "/responses") => Route::Responses,
            (&Method::GET, p) if p == "/models" || p.starts_with("/models/") => Route::Models,
            _ => Route::Other,
        }
    }

    fn tool(self) -> &'static str {
        match self {
            Route::Chat => "llm.chat",
            Route::Responses => "llm.responses",
            Route::Models => "llm.models",
            Route::Other => "llm.request",
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<LlmBody>, Infallible> {
    Ok(match call(&shared, req).await {
        Ok(r) | Err(r) => r,
    })
}

/// The phases of one call; every early way out is an OpenAI-shaped answer.
async fn call(
    shared: &Shared,
    req: Request<Incoming>,
) -> Result<Response<LlmBody>, Response<LlmBody>> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let route = Route::of(&parts.method, parts.uri.path());

    // 1. The request, whole and bounded.
    let body = Limited::new(body, shared.max_body_bytes)
        .collect()
        .await
        .map_err(|e| {
            reply::error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("body_too_large"),
                format!(
                    "warden: cannot read the request body (limit {} bytes): {e}",
                    shared.max_body_bytes
                ),
            )
        })?
        .to_bytes();
    let json: Option<Value> = match route {
        Route::Chat | Route::Responses => {
            let v: Value = serde_json::from_slice(&body).map_err(|e| {
                reply::error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    Some("invalid_json"),
                    format!("warden: the request body is not valid JSON: {e}"),
                )
            })?;
            if !v.is_object() {
                return Err(reply::error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    Some("invalid_json"),
                    "warden: the request body must be a JSON object",
                ));
            }
            Some(v)
        }
        _ => None,
    };
    let wire = Wire::of(route, json.as_ref());
    let model = json
        .as_ref()
        .and_then(|v| v.get("model"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();

    // 2. Who is asking, and the pre-call decision.
    let mut action = Action {
        channel: "llm".into(),
        tool: route.tool().into(),
        operation: "call".into(),
        resource: format!(
            "{}{}",
            shared.upstream,
            parts
                .uri
                .path()
                .strip_prefix("/v1")
                .unwrap_or(parts.uri.path())
        ),
        ..Default::default()
    };
    stamp_identity(&mut action, &parts.headers, &shared.identity);
    if !model.is_empty() {
        action.attributes.insert("model".into(), model.clone());
    }
    if let Some(v) = &json {
        action.attributes.insert(
            "estimated_tokens".into(),
            estimate_tokens(v, body.len()).to_string(),
        );
    }
    let decision = decide(shared, &action).await?;

    // 3. The provider.
    let upstream_response = forward(shared, &parts, body.clone()).await;
    let (status, headers, answer) = match upstream_response {
        Ok(r) => r,
        Err(why) => {
            let result = Outcome {
                usage: None,
                bytes: 0,
                tags: Vec::new(),
                error: why.clone(),
            };
            report(shared, &action, decision.as_ref(), started, result).await;
            return Err(reply::error(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                None,
                format!("warden: the provider could not be reached: {why}"),
            ));
        }
    };

    // 4. Tool calls the model proposes, judged before the agent sees them; then the
    //    detectors over what the model wrote, and the decision's redactions. Every
    //    outcome is reported, a withheld answer too (its tokens were spent).
    let checked = if status.is_success() && json.is_some() {
        check(shared, &action, decision.as_ref(), wire, &answer).await
    } else {
        Ok(Checked {
            body: answer.clone(),
            usage: None,
            tags: Vec::new(),
        })
    };
    let (out_body, result) = match checked {
        Ok(c) => {
            let error = if status.is_success() {
                String::new()
            } else {
                format!("the provider answered {status}")
            };
            let result = Outcome {
                usage: c.usage,
                bytes: answer.len() as u64,
                tags: c.tags,
                error,
            };
            (c.body, result)
        }
        Err(w) => {
            let result = Outcome {
                usage: w.usage,
                bytes: answer.len() as u64,
                tags: Vec::new(),
                error: w.why,
            };
            report(shared, &action, decision.as_ref(), started, result).await;
            return Err(w.response);
        }
    };
    report(shared, &action, decision.as_ref(), started, result).await;

    let mut response = Response::new(Full::new(out_body.clone()));
    *response.status_mut() = status;
    let mut headers = headers;
    strip_hop_by_hop(&mut headers);
    for (name, value) in &headers {
        if name != CONTENT_LENGTH {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    if let Ok(len) = HeaderValue::from_str(&out_body.len().to_string()) {
        response.headers_mut().insert(CONTENT_LENGTH, len);
    }
    Ok(response)
}

/// A checked answer: what the agent gets, and what the report says.
struct Checked {
    body: Bytes,
    usage: Option<Usage>,
    tags: Vec<String>,
}

/// An answer that cannot be let out: the refusal, and what the report says.
struct Withheld {
    response: Response<LlmBody>,
    usage: Option<Usage>,
    why: String,
}

/// Reads a successful answer, judges its tool calls, runs the detectors and the
/// decision's redactions; the provider's bytes when nothing changed.
async fn check(
    shared: &Shared,
    action: &Action,
    decision: Option<&Decision>,
    wire: Wire,
    answer: &Bytes,
) -> Result<Checked, Withheld> {
    let (parsed, events) = wire.read(answer).map_err(|e| Withheld {
        response: reply::error(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            None,
            format!("warden: the provider's answer cannot be read ({e}), so its tool calls cannot be checked; it is withheld"),
        ),
        usage: None,
        why: format!("the answer cannot be read: {e}"),
    })?;
    let usage = usage_of(&parsed);
    let withheld = |e: String| Withheld {
        response: reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "warden_error",
            None,
            format!("warden: {e}; the answer is withheld"),
        ),
        usage,
        why: format!("withheld: {e}"),
    };
    let refused = judge_calls(shared, action, &parsed).await;
    let redactor = Redactor::new(decision, shared.redact_detected).map_err(withheld)?;
    let (mut rewritten, scan) = outcome::inspect(parsed.clone(), &redactor).map_err(withheld)?;
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
    if !refused.is_empty() {
        calls::remove(&mut rewritten, &refused);
    }
    let body = if rewritten != parsed || events_redacted {
        wire.encode(&rewritten)
    } else {
        answer.clone()
    };
    Ok(Checked { body, usage, tags })
}

/// How an answer is framed, so how it is read and how a checked one is written back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// One JSON body.
    Json,
    /// Server-sent `chat.completion.chunk` events ([`stream`]).
    ChatStream,
    /// Server-sent Responses API events ([`responses_stream`]).
    ResponsesStream,
}

impl Wire {
    fn of(route: Route, request: Option<&Value>) -> Wire {
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

/// The pre-call decision; `Ok(None)` under `--fail-open` without one.
async fn decide(shared: &Shared, action: &Action) -> Result<Option<Decision>, Response<LlmBody>> {
    let mut client = shared.client.clone();
    match client.evaluate(action.clone()).await {
        Ok(d) if d.verdict() == Verdict::Allow || d.verdict() == Verdict::AllowWithRedaction => {
            Ok(Some(d))
        }
        Ok(d) => Err(reply::refused(&d)),
        Err(e) if e.is_unavailable() && shared.identity.fail_open => {
            tracing::warn!(error = %e, "calling the model WITHOUT a policy decision (--fail-open)");
            Ok(None)
        }
        Err(e) => Err(reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "warden_unavailable",
            None,
            format!(
                "warden: no policy decision could be had: {e} (fail-closed; nothing was sent to the model)"
            ),
        )),
    }
}

/// Evaluates each proposed tool call; returns the refused ones with their refusal text.
async fn judge_calls(shared: &Shared, call: &Action, body: &Value) -> Vec<(calls::Place, String)> {
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
        let mut client = shared.client.clone();
        match client.evaluate(action).await {
            Ok(d)
                if d.verdict() == Verdict::Allow || d.verdict() == Verdict::AllowWithRedaction => {}
            Ok(d) => {
                tracing::info!(
                    tool = p.name.as_str(),
                    decision = d.id.as_ref().map_or(0, |i| i.seq),
                    "proposed tool call refused"
                );
                refused.push((p.at, reply::call_refusal(&p.name, Some(&d), "")));
            }
            // Nothing unchecked reaches the agent: no decision is a refusal, always.
            Err(e) => refused.push((
                p.at,
                reply::call_refusal(
                    &p.name,
                    None,
                    &format!("no policy decision could be had ({e})"),
                ),
            )),
        }
    }
    refused
}

async fn forward(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    body: Bytes,
) -> Result<(StatusCode, hyper::HeaderMap, Bytes), String> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let path = path.strip_prefix("/v1").unwrap_or(path);
    let uri = format!(
        "{}://{}{}{}",
        shared.upstream.scheme_str().unwrap_or("https"),
        shared.upstream.authority().map_or("", |a| a.as_str()),
        shared.base_path,
        path
    );
    let mut request = Request::builder().method(parts.method.clone()).uri(&uri);
    let mut headers = parts.headers.clone();
    strip_hop_by_hop(&mut headers);
    for (name, value) in &headers {
        if name == HOST || name.as_str().starts_with("x-warden-") {
            continue;
        }
        if name == AUTHORIZATION && shared.key.is_some() {
            continue;
        }
        request = request.header(name, value);
    }
    if let Some(key) = &shared.key {
        request = request.header(AUTHORIZATION, key.clone());
    }
    let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
    let work = async {
        let response = shared
            .http
            .request(request)
            .await
            .map_err(|e| format!("{uri}: {e}"))?;
        let (parts, body) = response.into_parts();
        let bytes = body
            .collect()
            .await
            .map_err(|e| format!("{uri}: {e}"))?
            .to_bytes();
        Ok::<_, String>((parts.status, parts.headers, bytes))
    };
    tokio::time::timeout(shared.upstream_timeout, work)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "no complete answer within {:?}",
                shared.upstream_timeout
            ))
        })
}

/// What one model call came to, for its report.
struct Outcome {
    usage: Option<Usage>,
    bytes: u64,
    /// `secret`, `pii` and `detected:KIND` for what the detectors found in the answer.
    tags: Vec<String>,
    error: String,
}

async fn report(
    shared: &Shared,
    action: &Action,
    decision: Option<&Decision>,
    started: Instant,
    outcome: Outcome,
) {
    let Some(d) = decision else { return };
    let seq = d.id.as_ref().map_or(0, |id| id.seq);
    let result = ResultMeta {
        bytes: outcome.bytes,
        bytes_received: outcome.bytes,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        usage: outcome.usage,
        tags: outcome.tags,
        error: outcome.error,
        destination: shared.upstream.host().unwrap_or_default().to_string(),
        ..Default::default()
    };
    let mut client = shared.client.clone();
    if let Err(e) = client.report(action.clone(), seq, result).await {
        tracing::warn!(decision = seq, error = %e, "could not report the model call to wardend");
    }
}

/// Identity from `x-warden-tenant`/`-agent`/`-session` headers (taken on trust, like the
/// daemon in development mode), else the flags.
fn stamp_identity(action: &mut Action, headers: &hyper::HeaderMap, defaults: &IdentityArgs) {
    defaults.stamp(action);
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 256)
            .map(str::to_string)
    };
    if let Some(t) = get("x-warden-tenant") {
        action.tenant = t;
    }
    if let Some(a) = get("x-warden-agent") {
        action.agent = a;
    }
    if let Some(s) = get("x-warden-session") {
        action.session = s;
    }
}

/// Prompt tokens estimated at four bytes each, plus the completion allowance asked for.
fn estimate_tokens(request: &Value, body_len: usize) -> u64 {
    let allowance = ["max_completion_tokens", "max_tokens", "max_output_tokens"]
        .iter()
        .find_map(|k| request.get(*k).and_then(Value::as_u64))
        .unwrap_or(0);
    (body_len as u64).div_ceil(4).saturating_add(allowance)
}

/// Token usage of a Chat Completions (`prompt_tokens`, `completion_tokens`) or Responses
/// (`input_tokens`, `output_tokens`) answer.
fn usage_of(body: &Value) -> Option<Usage> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_method_and_path() {
        assert_eq!(
            Route::of(&Method::POST, "/v1/chat/completions"),
            Route::Chat
        );
        assert_eq!(Route::of(&Method::POST, "/chat/completions/"), Route::Chat);
        assert_eq!(Route::of(&Method::POST, "/v1/responses"), Route::Responses);
        assert_eq!(Route::of(&Method::GET, "/v1/models/gpt-x"), Route::Models);
        assert_eq!(
            Route::of(&Method::GET, "/v1/chat/completions"),
            Route::Other
        );
        assert_eq!(Route::of(&Method::POST, "/v1/embeddings"), Route::Other);
    }

    #[test]
    fn usage_and_estimates() {
        let u =
            usage_of(&serde_json::json!({"usage": {"prompt_tokens": 7, "completion_tokens": 3}}));
        assert_eq!(u.map(|u| (u.tokens_in, u.tokens_out)), Some((7, 3)));
        let u = usage_of(&serde_json::json!({"usage": {"input_tokens": 2, "output_tokens": 9}}));
        assert_eq!(u.map(|u| (u.tokens_in, u.tokens_out)), Some((2, 9)));
        assert_eq!(
            estimate_tokens(&serde_json::json!({"max_tokens": 100}), 400),
            200
        );
    }
}
