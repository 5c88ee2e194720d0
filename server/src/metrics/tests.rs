use std::time::Duration;

use super::{MAX_SERIES, Metrics};
use crate::store::UsageRow;

fn llm_usage(model: &str, tokens_in: i64, tokens_out: i64, cost: i64, ms: i64) -> UsageRow {
    UsageRow {
        time_us: 0,
        tenant: "t".into(),
        agent: "a".into(),
        session: "s".into(),
        channel: "llm".into(),
        tool: "llm.chat".into(),
        model: model.into(),
        decision_seq: 1,
        tokens_in,
        tokens_out,
        cost_micro_usd: cost,
        egress_bytes: 0,
        rows: 0,
        wall_time_ms: ms,
        tool_calls: 0,
    }
}

#[test]
fn decisions_and_llm_usage_render_as_prometheus_text() {
    let m = Metrics::default();
    m.decision("exec", "allow", Duration::from_micros(800));
    m.decision("exec", "allow", Duration::from_millis(3));
    m.decision("http", "deny", Duration::from_millis(2));
    m.report(&llm_usage("gpt-4o", 21, 7, 35, 125));
    m.report(&llm_usage("gpt-4o", 9, 1, 5, 375));
    let text = m.render();
    for line in [
        "# TYPE warden_decisions_total counter",
        "warden_decisions_total{channel=\"exec\",verdict=\"allow\"} 2",
        "warden_decisions_total{channel=\"http\",verdict=\"deny\"} 1",
        "# TYPE warden_decision_duration_seconds histogram",
        "warden_decision_duration_seconds_bucket{channel=\"exec\",le=\"0.001\"} 1",
        "warden_decision_duration_seconds_bucket{channel=\"exec\",le=\"0.005\"} 2",
        "warden_decision_duration_seconds_bucket{channel=\"exec\",le=\"+Inf\"} 2",
        "warden_decision_duration_seconds_count{channel=\"exec\"} 2",
        "warden_reports_total{channel=\"llm\"} 2",
        "warden_llm_tokens_total{model=\"gpt-4o\",kind=\"prompt\"} 30",
        "warden_llm_tokens_total{model=\"gpt-4o\",kind=\"completion\"} 8",
        "warden_llm_cost_usd_total{model=\"gpt-4o\"} 0.00004",
        "warden_llm_call_duration_seconds_bucket{model=\"gpt-4o\",le=\"0.1\"} 0",
        "warden_llm_call_duration_seconds_bucket{model=\"gpt-4o\",le=\"0.25\"} 1",
        "warden_llm_call_duration_seconds_bucket{model=\"gpt-4o\",le=\"0.5\"} 2",
        "warden_llm_call_duration_seconds_sum{model=\"gpt-4o\"} 0.5",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
}

#[test]
fn label_values_are_escaped_and_series_are_bounded() {
    let m = Metrics::default();
    m.report(&llm_usage("we\"ird\\\nname", 1, 0, 0, 0));
    assert!(
        m.render()
            .contains("model=\"we\\\"ird\\\\\\nname\",kind=\"prompt\"} 1"),
        "{}",
        m.render()
    );
    for n in 0..MAX_SERIES + 5 {
        m.report(&llm_usage(&format!("model-{n}"), 1, 0, 0, 0));
    }
    let text = m.render();
    assert!(text.contains("warden_llm_cost_usd_total{model=\"_other\"} 0"));
    assert!(
        text.contains("warden_metric_series_folded_total{family=\"warden_llm_cost_usd_total\"} 6"),
        "{text}"
    );
}

#[test]
fn reports_of_other_channels_count_no_tokens() {
    let m = Metrics::default();
    let mut usage = llm_usage("", 5, 5, 0, 0);
    usage.channel = "mcp".into();
    m.report(&usage);
    let text = m.render();
    assert!(text.contains("warden_reports_total{channel=\"mcp\"} 1"));
    assert!(!text.contains("warden_llm_tokens_total{"));
}
