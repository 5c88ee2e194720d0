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

mod answer;
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

use self::answer::Wire;
use self::reply::LlmBody;
use crate::admin::parse_duration;
use crate::client::{DaemonClient, IdentityArgs};
use crate::listen::strip_hop_by_hop;
use crate::listen::{self, ConnLimits};

#[derive(Debug, Args)]
pub struct LlmArgs {
    #[command(flatten)]
    identity: IdentityArgs,
    #[command(flatten)]
    pub(crate) runtime: crate::RuntimeArgs,
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

    // 4. The detectors over what the model wrote and the decision's redactions; then
    //    the report (usage, what the detectors found) with the tool calls the model
    //    proposes, judged in the same round trip on the session as the report left it,
    //    before the agent sees them. Every outcome is reported, a withheld answer too
    //    (its tokens were spent).
    let error = if status.is_success() {
        String::new()
    } else {
        format!("the provider answered {status}")
    };
    let scanned = if status.is_success() && json.is_some() {
        Some(answer::scan(
            shared,
            &action,
            decision.as_ref(),
            wire,
            &answer,
        ))
    } else {
        None
    };
    let out_body = match scanned {
        None => {
            let result = Outcome {
                usage: None,
                bytes: answer.len() as u64,
                tags: Vec::new(),
                error,
            };
            report(shared, &action, decision.as_ref(), started, result).await;
            answer
        }
        Some(Err(w)) => {
            let result = Outcome {
                usage: w.usage,
                bytes: answer.len() as u64,
                tags: Vec::new(),
                error: w.why,
            };
            report(shared, &action, decision.as_ref(), started, result).await;
            return Err(*w.response);
        }
        Some(Ok(mut scanned)) => {
            let result = Outcome {
                usage: scanned.usage,
                bytes: answer.len() as u64,
                tags: std::mem::take(&mut scanned.tags),
                error,
            };
            let follow_ups = scanned.take_follow_ups();
            let judged = report_then_judge(
                shared,
                &action,
                decision.as_ref(),
                started,
                result,
                follow_ups,
            )
            .await;
            scanned.finish(&answer, judged)
        }
    };

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

/// Reports a call that proposed no tool calls to judge; a failure is logged.
async fn report(
    shared: &Shared,
    action: &Action,
    decision: Option<&Decision>,
    started: Instant,
    outcome: Outcome,
) {
    // Without follow-ups nothing can come back to refuse; a failure is logged there.
    let _ = report_then_judge(shared, action, decision, started, outcome, Vec::new()).await;
}

/// Reports the call and has the daemon judge `follow_ups` (the proposed tool calls) in
/// the same round trip; their decisions in order, or why there are none (then none of
/// them may reach the agent). Under `--fail-open` without a pre-call decision there
/// is nothing to report against, but the calls are still judged.
async fn report_then_judge(
    shared: &Shared,
    action: &Action,
    decision: Option<&Decision>,
    started: Instant,
    outcome: Outcome,
    follow_ups: Vec<Action>,
) -> Result<Vec<Decision>, String> {
    if decision.is_none() && follow_ups.is_empty() {
        return Ok(Vec::new());
    }
    let seq = decision.and_then(|d| d.id.as_ref()).map_or(0, |id| id.seq);
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
    client
        .report_then_evaluate(action.clone(), seq, result, follow_ups)
        .await
        .map_err(|e| {
            tracing::warn!(decision = seq, error = %e, "could not report the model call to wardend");
            e.to_string()
        })
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

#[cfg(test)]
mod tests {
    use super::answer::usage_of;
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
