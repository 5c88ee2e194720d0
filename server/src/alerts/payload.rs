//! Alert bodies: Warden's JSON object, or a Slack-compatible message. A body is
//! rendered once, when the alert is enqueued; the outbox stores those exact bytes, so
//! the signature and every retry cover the same body.

use serde::Serialize;
use serde_json::{Value, json};

use super::event::{AlertEvent, truncate};
use crate::policy::AlertFormat;

/// Longest reason a Slack line carries; the JSON body carries it whole.
const SLACK_REASON_CHARS: usize = 500;

/// The body for one route.
pub(crate) fn render(format: AlertFormat, id: &str, e: &AlertEvent) -> String {
    match format {
        AlertFormat::Json => json_body(id, e),
        AlertFormat::Slack => slack_body(id, e),
    }
}

/// Warden's own format: every field, always present.
fn json_body(id: &str, e: &AlertEvent) -> String {
    #[derive(Serialize)]
    struct Body<'a> {
        id: &'a str,
        event: &'a str,
        time: String,
        tenant: &'a str,
        agent: &'a str,
        session: &'a str,
        decision_seq: u64,
        verdict: &'a str,
        rules: &'a [String],
        reason: &'a str,
        policy_version: &'a str,
        zone: &'a str,
        details: &'a serde_json::Map<String, Value>,
    }
    let body = Body {
        id,
        event: e.kind.as_str(),
        time: crate::cli::format_time_us(e.time_us),
        tenant: &e.tenant,
        agent: &e.agent,
        session: &e.session,
        decision_seq: e.decision_seq,
        verdict: &e.verdict,
        rules: &e.rules,
        reason: &e.reason,
        policy_version: &e.policy_version,
        zone: &e.zone,
        details: &e.details,
    };
    // Strings, numbers and a JSON map always serialize.
    serde_json::to_string(&body).unwrap_or_default()
}

/// A Slack incoming-webhook message (also understood by Mattermost and others): a
/// one-line summary in `text`, and the fields as a legacy attachment.
fn slack_body(id: &str, e: &AlertEvent) -> String {
    let mut line = format!("*Warden: {}*", e.kind.as_str().replace('_', " "));
    if !e.agent.is_empty() {
        line.push_str(&format!(
            " — agent `{}` session `{}` tenant `{}`",
            e.agent, e.session, e.tenant
        ));
    }
    if !e.reason.is_empty() {
        line.push_str(": ");
        line.push_str(&truncate(&e.reason, SLACK_REASON_CHARS));
    }
    let mut fields = Vec::new();
    let mut field = |title: &str, value: String| {
        if !value.is_empty() {
            fields.push(json!({"title": title, "value": escape(&value), "short": true}));
        }
    };
    field("verdict", e.verdict.clone());
    field("rules", e.rules.join(", "));
    field("zone", e.zone.clone());
    if e.decision_seq > 0 {
        field("audit record", e.decision_seq.to_string());
    }
    for (key, value) in &e.details {
        let value = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        field(key, value);
    }
    field(
        "policy version",
        e.policy_version.chars().take(12).collect(),
    );
    field("delivery", id.to_string());
    json!({
        "text": escape(&line),
        "attachments": [{
            "color": color(e),
            "fallback": escape(&line),
            "fields": fields,
            "footer": format!("wardend · {}", crate::cli::format_time_us(e.time_us)),
        }],
    })
    .to_string()
}

/// Slack reads `&`, `<` and `>` as markup; these three must be escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn color(e: &AlertEvent) -> &'static str {
    use crate::policy::AlertEventKind as K;
    match e.kind {
        K::Deny | K::ChainBroken | K::BudgetExceeded => "#d40e0d",
        K::RequireApproval | K::BudgetThreshold | K::RateLimited => "#e8a317",
        K::BreakGlassUsed => "#7b2fbe",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::AlertEventKind;

    fn deny() -> AlertEvent {
        AlertEvent {
            time_us: 1_795_301_280_500_000,
            tenant: "acme".into(),
            agent: "coder".into(),
            session: "s1".into(),
            decision_seq: 42,
            verdict: "deny".into(),
            rules: vec!["no-rm".into()],
            reason: "recursive deletes <are> refused & logged".into(),
            policy_version: "ab".repeat(32),
            zone: "safe".into(),
            ..AlertEvent::new(AlertEventKind::Deny)
        }
        .detail("tool", "rm")
    }

    #[test]
    fn json_body_has_every_field() {
        let body: Value =
            serde_json::from_str(&render(AlertFormat::Json, "alr-1", &deny())).unwrap();
        assert_eq!(body["id"], "alr-1");
        assert_eq!(body["event"], "deny");
        assert_eq!(body["time"], "2026-11-21T22:48:00.500000Z");
        assert_eq!(body["tenant"], "acme");
        assert_eq!(body["agent"], "coder");
        assert_eq!(body["session"], "s1");
        assert_eq!(body["decision_seq"], 42);
        assert_eq!(body["verdict"], "deny");
        assert_eq!(body["rules"], json!(["no-rm"]));
        assert_eq!(body["zone"], "safe");
        assert_eq!(body["details"]["tool"], "rm");
        let empty: Value = serde_json::from_str(&render(
            AlertFormat::Json,
            "alr-2",
            &AlertEvent::new(AlertEventKind::ChainBroken),
        ))
        .unwrap();
        assert_eq!(empty["agent"], "");
        assert_eq!(empty["rules"], json!([]));
        assert_eq!(empty["details"], json!({}));
    }

    #[test]
    fn slack_body_is_one_escaped_line_with_fields() {
        let body: Value =
            serde_json::from_str(&render(AlertFormat::Slack, "alr-1", &deny())).unwrap();
        let text = body["text"].as_str().unwrap();
        assert!(!text.contains('\n'));
        assert!(text.starts_with("*Warden: deny* — agent `coder`"), "{text}");
        assert!(text.contains("&lt;are&gt; refused &amp; logged"), "{text}");
        let fields = body["attachments"][0]["fields"].as_array().unwrap();
        let titles: Vec<&str> = fields
            .iter()
            .map(|f| f["title"].as_str().unwrap())
            .collect();
        assert_eq!(
            titles,
            [
                "verdict",
                "rules",
                "zone",
                "audit record",
                "tool",
                "policy version",
                "delivery"
            ]
        );
    }
}
