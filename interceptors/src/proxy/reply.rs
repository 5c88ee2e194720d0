//! The proxy's own answers: refusals and errors as small JSON documents, so an agent
//! (or the person reading its log) learns what was decided, by which rules, and which
//! audit record holds it.
//!
//! `{"decision": "deny" | "require_approval" | "allow_with_redaction" | "none" | "error",
//!   "reason": …, "rules": […], "decision_id": {"seq": N, "hash": "…"} | null,
//!   "approval_id": "…" (approvals), "retry_after_ms": N (rate limits)}`

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::header::{CONTENT_TYPE, HeaderValue, PROXY_AUTHENTICATE, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};
use warden_proto::v1::{Decision, Verdict};

/// Every response body the proxy produces: its own JSON, or an upstream's streamed body.
pub(crate) type ProxyBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// Response header carrying the decision's audit sequence number.
pub(crate) const DECISION_HEADER: &str = "x-warden-decision";

pub(crate) fn full(body: impl Into<Bytes>) -> ProxyBody {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub(crate) fn empty() -> ProxyBody {
    full(Bytes::new())
}

fn json_response(status: StatusCode, body: &Value) -> Response<ProxyBody> {
    let mut text = body.to_string();
    text.push('\n');
    let mut response = Response::new(full(text));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A decision that does not let the request through: 403, or 429 with Retry-After for
/// a rate limit.
pub(crate) fn refused(d: &Decision) -> Response<ProxyBody> {
    let verdict = match d.verdict() {
        Verdict::Deny => "deny",
        Verdict::RequireApproval => "require_approval",
        Verdict::AllowWithRedaction => "allow_with_redaction",
        Verdict::Allow => "allow",
        Verdict::Unspecified => "none",
    };
    let id =
        d.id.as_ref()
            .map_or(Value::Null, |id| json!({"seq": id.seq, "hash": id.hash}));
    let mut body = json!({
        "decision": verdict,
        "reason": d.reason,
        "rules": d.matched_rules,
        "decision_id": id,
    });
    if !d.approval_id.is_empty() {
        body["approval_id"] = json!(d.approval_id);
    }
    let limited = d.retry_after_ms > 0;
    if limited {
        body["retry_after_ms"] = json!(d.retry_after_ms);
    }
    let status = if limited {
        StatusCode::TOO_MANY_REQUESTS
    } else {
        StatusCode::FORBIDDEN
    };
    let mut response = json_response(status, &body);
    if limited {
        let secs = d.retry_after_ms.div_ceil(1000).max(1);
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            response.headers_mut().insert(RETRY_AFTER, v);
        }
    }
    stamp(&mut response, d);
    response
}

/// No decision could be had: 503, fail-closed.
pub(crate) fn no_decision(reason: &str, overridable: bool) -> Response<ProxyBody> {
    let hint = if overridable {
        " (fail-closed; the proxy's --fail-open overrides this)"
    } else {
        " (fail-closed)"
    };
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({
            "decision": "none",
            "reason": format!("no policy decision could be had: {reason}{hint}"),
            "rules": [],
            "decision_id": null,
        }),
    )
}

/// Something the proxy itself cannot or will not do (bad request, upstream failure).
pub(crate) fn error(status: StatusCode, reason: impl std::fmt::Display) -> Response<ProxyBody> {
    json_response(
        status,
        &json!({
            "decision": "error",
            "reason": reason.to_string(),
            "rules": [],
            "decision_id": null,
        }),
    )
}

/// 407 asking for Basic credentials.
pub(crate) fn auth_required(reason: impl std::fmt::Display) -> Response<ProxyBody> {
    let mut response = error(StatusCode::PROXY_AUTHENTICATION_REQUIRED, reason);
    response.headers_mut().insert(
        PROXY_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"warden\""),
    );
    response
}

/// Adds the decision header to a response.
pub(crate) fn stamp<B>(response: &mut Response<B>, d: &Decision) {
    if let Some(id) = &d.id
        && let Ok(v) = HeaderValue::from_str(&id.seq.to_string())
    {
        response.headers_mut().insert(DECISION_HEADER, v);
    }
}
