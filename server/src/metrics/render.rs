//! The Prometheus text exposition format (0.0.4): `# HELP`, `# TYPE`, then one line per
//! series; histograms as cumulative `_bucket{le=…}` lines, `_sum` and `_count`.

use std::fmt::Write;

use super::{BUCKETS, Families, Family, Histogram};

pub(super) fn families(f: &Families) -> String {
    let mut out = String::new();
    counter(
        &mut out,
        "warden_decisions_total",
        "Evaluate requests answered, by channel and verdict.",
        &["channel", "verdict"],
        &f.decisions,
        |n| *n as f64,
    );
    histogram(
        &mut out,
        "warden_decision_duration_seconds",
        "Time from an Evaluate's arrival to its answer, audit commit included.",
        &["channel"],
        &f.decision_seconds,
    );
    counter(
        &mut out,
        "warden_reports_total",
        "Reports accepted, by channel.",
        &["channel"],
        &f.reports,
        |n| *n as f64,
    );
    counter(
        &mut out,
        "warden_llm_tokens_total",
        "Model tokens reported, by model and kind (prompt or completion).",
        &["model", "kind"],
        &f.llm_tokens,
        |n| *n as f64,
    );
    counter(
        &mut out,
        "warden_llm_cost_usd_total",
        "Model cost reported or priced by the policy, in US dollars, by model.",
        &["model"],
        &f.llm_cost_micro_usd,
        |n| *n as f64 / 1e6,
    );
    histogram(
        &mut out,
        "warden_llm_call_duration_seconds",
        "Latency of a model call as its interceptor reported it, by model.",
        &["model"],
        &f.llm_call_seconds,
    );
    let folded = [
        ("warden_decisions_total", f.decisions.folded),
        (
            "warden_decision_duration_seconds",
            f.decision_seconds.folded,
        ),
        ("warden_reports_total", f.reports.folded),
        ("warden_llm_tokens_total", f.llm_tokens.folded),
        ("warden_llm_cost_usd_total", f.llm_cost_micro_usd.folded),
        (
            "warden_llm_call_duration_seconds",
            f.llm_call_seconds.folded,
        ),
    ];
    header(
        &mut out,
        "warden_metric_series_folded_total",
        "Observations counted under label value _other because their family was full.",
        "counter",
    );
    for (family, n) in folded {
        let _ = writeln!(
            out,
            "warden_metric_series_folded_total{{family=\"{family}\"}} {n}"
        );
    }
    out
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn counter<T>(
    out: &mut String,
    name: &str,
    help: &str,
    keys: &[&str],
    family: &Family<T>,
    value: impl Fn(&T) -> f64,
) {
    header(out, name, help, "counter");
    for (labels, v) in &family.series {
        let _ = writeln!(
            out,
            "{name}{} {}",
            labels_text(keys, labels, None),
            value(v)
        );
    }
}

fn histogram(out: &mut String, name: &str, help: &str, keys: &[&str], family: &Family<Histogram>) {
    header(out, name, help, "histogram");
    for (labels, h) in &family.series {
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(h.buckets) {
            cumulative += n;
            let le = bound.to_string();
            let _ = writeln!(
                out,
                "{name}_bucket{} {cumulative}",
                labels_text(keys, labels, Some(&le))
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{} {}",
            labels_text(keys, labels, Some("+Inf")),
            h.count
        );
        let plain = labels_text(keys, labels, None);
        let _ = writeln!(out, "{name}_sum{plain} {}", h.sum);
        let _ = writeln!(out, "{name}_count{plain} {}", h.count);
    }
}

/// `{k1="v1",k2="v2"[,le="…"]}` with values escaped as the format requires.
fn labels_text(keys: &[&str], values: &[String], le: Option<&str>) -> String {
    let mut parts: Vec<String> = keys
        .iter()
        .zip(values)
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// Backslash, double quote and newline are escaped in label values.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
