//! Prometheus metrics: what the daemon decided and what was reported back, served as
//! text on `--metrics-listen` (`GET /metrics`).
//!
//! A small registry of our own rather than a global recorder: each daemon (several run
//! in one test process) owns its figures, and the families are few and fixed. Updates
//! take a short std mutex; rendering copies nothing it does not print.
//!
//! Families:
//! - `warden_decisions_total{channel,verdict}` and
//!   `warden_decision_duration_seconds{channel}`: every answered `Evaluate`, timed from
//!   the request's arrival to the answer (audit commit included).
//! - `warden_reports_total{channel}`: every accepted `Report`.
//! - `warden_llm_tokens_total{model,kind}` (`kind` = `prompt` | `completion`),
//!   `warden_llm_cost_usd_total{model}` and `warden_llm_call_duration_seconds{model}`:
//!   the usage, cost and latency `warden llm` (or any caller of channel `llm`) reports
//!   per model call (for `warden llm`: from the request's arrival to the answer, the
//!   provider and the checks included).
//!
//! Label values come from callers (a model name is whatever the agent asked for), so
//! each family keeps at most [`MAX_SERIES`] label sets; later ones are counted under
//! the value `_other` and the overflow is itself a metric.

pub(crate) mod http;
mod render;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::store::UsageRow;

/// Most label sets one family keeps before folding new ones into `_other`.
pub const MAX_SERIES: usize = 1000;

/// Upper bounds (seconds) of the latency histograms' buckets.
const BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    120.0,
];

/// Label values, in the family's label order.
type Labels = Vec<String>;

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Observations at or below each bound in [`BUCKETS`] (not cumulative here).
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(i) = BUCKETS.iter().position(|&b| seconds <= b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// One family's series, bounded.
#[derive(Debug)]
struct Family<T> {
    series: BTreeMap<Labels, T>,
    /// Label sets refused because the family was full.
    folded: u64,
}

impl<T: Default> Family<T> {
    fn new() -> Self {
        Family {
            series: BTreeMap::new(),
            folded: 0,
        }
    }

    /// The series for `labels`, or the `_other` series once the family is full.
    fn get(&mut self, labels: Labels) -> &mut T {
        if !self.series.contains_key(&labels) && self.series.len() >= MAX_SERIES {
            self.folded += 1;
            let other = vec!["_other".to_string(); labels.len()];
            return self.series.entry(other).or_default();
        }
        self.series.entry(labels).or_default()
    }
}

#[derive(Debug)]
struct Families {
    decisions: Family<u64>,
    decision_seconds: Family<Histogram>,
    reports: Family<u64>,
    llm_tokens: Family<u64>,
    /// Micro-USD, printed as USD: sums stay exact.
    llm_cost_micro_usd: Family<u64>,
    llm_call_seconds: Family<Histogram>,
}

/// The daemon's metrics; shared by every service.
#[derive(Debug)]
pub struct Metrics {
    families: Mutex<Families>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            families: Mutex::new(Families {
                decisions: Family::new(),
                decision_seconds: Family::new(),
                reports: Family::new(),
                llm_tokens: Family::new(),
                llm_cost_micro_usd: Family::new(),
                llm_call_seconds: Family::new(),
            }),
        }
    }
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Families) -> R) -> R {
        // A panic while holding the lock leaves counters that are still counters.
        let mut families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut families)
    }

    /// An answered Evaluate.
    pub fn decision(&self, channel: &str, verdict: &str, took: Duration) {
        self.with(|f| {
            *f.decisions.get(vec![channel.into(), verdict.into()]) += 1;
            f.decision_seconds
                .get(vec![channel.into()])
                .observe(took.as_secs_f64());
        });
    }

    /// An accepted Report, with the usage it carried.
    pub fn report(&self, usage: &UsageRow) {
        self.with(|f| {
            *f.reports.get(vec![usage.channel.clone()]) += 1;
            if usage.channel != "llm" {
                return;
            }
            let model = if usage.model.is_empty() {
                "unknown".to_string()
            } else {
                usage.model.clone()
            };
            for (kind, n) in [
                ("prompt", usage.tokens_in),
                ("completion", usage.tokens_out),
            ] {
                *f.llm_tokens.get(vec![model.clone(), kind.into()]) += n.max(0) as u64;
            }
            *f.llm_cost_micro_usd.get(vec![model.clone()]) += usage.cost_micro_usd.max(0) as u64;
            // A report without a duration counts as 0 s: every call is observed.
            f.llm_call_seconds
                .get(vec![model])
                .observe(usage.wall_time_ms.max(0) as f64 / 1e3);
        });
    }

    /// Everything, in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        self.with(|f| render::families(f))
    }
}

#[cfg(test)]
mod tests;
