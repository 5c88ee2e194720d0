//! Answers in the shape OpenAI SDKs parse: `{"error": {"message", "type", "code",
//! "param"}}`, so an agent sees a refusal as an ordinary API error with a readable
//! message instead of a hang or a transport failure.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde_json::json;
use warden_proto::v1::{Decision, Verdict};

pub(crate) type LlmBody = Full<Bytes>;

pub(crate) fn error(
    status: StatusCode,
    kind: &str,
    code: Option<&str>,
    message: impl std::fmt::Display,
) -> Response<LlmBody> {
    let body = json!({"error": {
        "message": message.to_string(),
        "type": kind,
        "code": code,
        "param": null,
    }});
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A request the policy did not let through: 429 for spent budgets, run caps and rate
/// limits (SDKs treat it as "try later"), 403 otherwise; the message names the rules.
pub(crate) fn refused(d: &Decision) -> Response<LlmBody> {
    let rules = if d.matched_rules.is_empty() {
        "policy default".to_string()
    } else {
        d.matched_rules.join(", ")
    };
    let seq = d.id.as_ref().map_or(0, |id| id.seq);
    let limited = d.retry_after_ms > 0
        || d.matched_rules.iter().any(|r| {
            r.starts_with("budget:") || r.starts_with("rate_limit:") || r == "session-cap"
        });
    let (what, kind) = match d.verdict() {
        Verdict::RequireApproval => ("needs approval", "warden_approval_required"),
        _ if limited => ("was refused", "warden_limit_reached"),
        _ => ("was refused", "warden_policy_denied"),
    };
    let approval = if d.approval_id.is_empty() {
        String::new()
    } else {
        format!("; approval id {}", d.approval_id)
    };
    let message = format!(
        "warden: this model call {what}: {} [{rules}] (decision #{seq}{approval})",
        d.reason
    );
    let code = d.matched_rules.first().map(String::as_str);
    let status = if limited {
        StatusCode::TOO_MANY_REQUESTS
    } else {
        StatusCode::FORBIDDEN
    };
    let mut response = error(status, kind, code, message);
    if d.retry_after_ms > 0
        && let Ok(v) = HeaderValue::from_str(&d.retry_after_ms.div_ceil(1000).max(1).to_string())
    {
        response.headers_mut().insert(RETRY_AFTER, v);
    }
    response
}

/// The text an agent reads in place of a tool call that was not let through.
pub(crate) fn call_refusal(name: &str, d: Option<&Decision>, why: &str) -> String {
    match d {
        Some(d) => {
            let rules = if d.matched_rules.is_empty() {
                "policy default".to_string()
            } else {
                d.matched_rules.join(", ")
            };
            let seq = d.id.as_ref().map_or(0, |id| id.seq);
            let approval = if d.approval_id.is_empty() {
                String::new()
            } else {
                format!("; it needs approval {} before it can run", d.approval_id)
            };
            format!(
                "[warden] The tool call `{name}` was not run: {} [{rules}] (decision #{seq}{approval}).",
                d.reason
            )
        }
        None => format!("[warden] The tool call `{name}` was not run: {why}."),
    }
}
