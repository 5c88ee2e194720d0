//! Budgets and prices as compiled: what a budget limits, whose usage it adds up, over
//! which window, and the units amounts are counted in.
//!
//! Every amount is an integer in the metric's unit, so sums are exact across replicas:
//! tokens, calls, bytes, rows and milliseconds as themselves, cost in micro-USD.

use globset::GlobMatcher;
use serde::Serialize;

use super::Origin;
use super::conditions::Conditions;
use crate::normalize::NormalizedAction;

/// What a budget limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Tokens,
    TokensIn,
    TokensOut,
    CostUsd,
    ToolCalls,
    EgressBytes,
    Rows,
    WallTimeMs,
}

impl Metric {
    pub const ALL: [Metric; 8] = [
        Metric::Tokens,
        Metric::TokensIn,
        Metric::TokensOut,
        Metric::CostUsd,
        Metric::ToolCalls,
        Metric::EgressBytes,
        Metric::Rows,
        Metric::WallTimeMs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Tokens => "tokens",
            Metric::TokensIn => "tokens_in",
            Metric::TokensOut => "tokens_out",
            Metric::CostUsd => "cost_usd",
            Metric::ToolCalls => "tool_calls",
            Metric::EgressBytes => "egress_bytes",
            Metric::Rows => "rows",
            Metric::WallTimeMs => "wall_time_ms",
        }
    }

    pub fn parse(s: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Stored units per unit written in a policy (micro-USD per USD).
    pub fn scale(self) -> f64 {
        match self {
            Metric::CostUsd => 1_000_000.0,
            _ => 1.0,
        }
    }

    /// A stored amount in the unit people read (USD for cost).
    pub fn display(self, amount: i64) -> f64 {
        amount as f64 / self.scale()
    }
}

/// Whose usage a budget adds up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Session,
    Agent,
    Tenant,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "session" => Some(Scope::Session),
            "agent" => Some(Scope::Agent),
            "tenant" => Some(Scope::Tenant),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Session => "session",
            Scope::Agent => "agent",
            Scope::Tenant => "tenant",
        }
    }

    /// The counter key of `tenant`/`agent`/`session` under this scope. The parts are
    /// joined with a byte identities cannot contain (they are printable).
    pub fn key(self, tenant: &str, agent: &str, session: &str) -> String {
        match self {
            Scope::Tenant => tenant.to_string(),
            Scope::Agent => format!("{tenant}\u{1f}{agent}"),
            Scope::Session => format!("{tenant}\u{1f}{agent}\u{1f}{session}"),
        }
    }
}

/// The period usage is added up over; calendar periods are UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// The whole life of a session (with scope session) or of the scope.
    Session,
    Hour,
    Day,
    Month,
}

impl Window {
    pub fn parse(s: &str) -> Option<Window> {
        match s {
            "session" => Some(Window::Session),
            "hour" => Some(Window::Hour),
            "day" => Some(Window::Day),
            "month" => Some(Window::Month),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Window::Session => "session",
            Window::Hour => "hour",
            Window::Day => "day",
            Window::Month => "month",
        }
    }

    /// Start of the window holding `now_us` (microseconds since the epoch); 0 for the
    /// session window, which never rolls over.
    pub fn start(self, now_us: i64) -> i64 {
        const HOUR: i64 = 3_600_000_000;
        const DAY: i64 = 24 * HOUR;
        match self {
            Window::Session => 0,
            Window::Hour => now_us - now_us.rem_euclid(HOUR),
            Window::Day => now_us - now_us.rem_euclid(DAY),
            Window::Month => {
                let (year, month, _) = civil_from_days(now_us.div_euclid(DAY));
                days_from_civil(year, month, 1) * DAY
            }
        }
    }
}

/// (year, month 1-12, day 1-31) of a day number since 1970-01-01 (Howard Hinnant's
/// algorithm).
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Day number since 1970-01-01 of a civil date (the inverse of [`civil_from_days`]).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A compiled budget.
#[derive(Debug)]
pub struct Budget {
    pub id: String,
    pub origin: Origin,
    pub metric: Metric,
    pub scope: Scope,
    pub window: Window,
    /// In stored units (micro-USD for cost).
    pub limit: i64,
    /// Refuse actions once spent (hard) or only alert (soft).
    pub hard: bool,
    /// Fractions of the limit at which to alert, ascending.
    pub alert_at: Vec<f64>,
    pub(super) conditions: Conditions,
}

impl Budget {
    /// The counter key of an action's scope.
    pub fn key(&self, a: &NormalizedAction) -> String {
        self.scope.key(&a.tenant, &a.agent, &a.session)
    }
}

/// What a budget means, as it enters the policy version.
#[derive(Serialize)]
pub(super) struct BudgetSpec<'a> {
    id: &'a str,
    metric: Metric,
    scope: Scope,
    window: Window,
    limit: i64,
    hard: bool,
    alert_at: &'a [f64],
    #[serde(rename = "match")]
    conditions: &'a super::conditions::ConditionSpec,
}

impl Budget {
    pub(super) fn spec(&self) -> BudgetSpec<'_> {
        BudgetSpec {
            id: &self.id,
            metric: self.metric,
            scope: self.scope,
            window: self.window,
            limit: self.limit,
            hard: self.hard,
            alert_at: &self.alert_at,
            conditions: &self.conditions.spec,
        }
    }
}

/// One line of the price table, in micro-USD per million tokens.
#[derive(Debug)]
pub struct Price {
    pub model: String,
    pub(super) matcher: GlobMatcher,
    pub input_micro_per_mtok: i64,
    pub output_micro_per_mtok: i64,
}

#[derive(Serialize)]
pub(super) struct PriceSpec<'a> {
    model: &'a str,
    input: i64,
    output: i64,
}

impl Price {
    pub(super) fn spec(&self) -> PriceSpec<'_> {
        PriceSpec {
            model: &self.model,
            input: self.input_micro_per_mtok,
            output: self.output_micro_per_mtok,
        }
    }

    /// Cost in micro-USD of a call with these token counts (rounded up).
    pub fn cost_micro_usd(&self, tokens_in: u64, tokens_out: u64) -> i64 {
        let micro = i128::from(tokens_in) * i128::from(self.input_micro_per_mtok)
            + i128::from(tokens_out) * i128::from(self.output_micro_per_mtok);
        let cost = (micro + 999_999) / 1_000_000;
        i64::try_from(cost).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_start_on_utc_boundaries() {
        // 2026-11-21T22:48:00.5Z
        let t = 1_795_301_280_500_000;
        assert_eq!(Window::Hour.start(t), 1_795_298_400_000_000); // 22:00
        assert_eq!(Window::Day.start(t), 1_795_219_200_000_000); // 2026-11-21
        assert_eq!(Window::Month.start(t), 1_793_491_200_000_000); // 2026-11-01
        assert_eq!(Window::Session.start(t), 0);
        // 2000-02-29 is in February 2000.
        assert_eq!(
            Window::Month.start(951_782_400_000_000),
            949_363_200_000_000
        );
        for d in [-1000, 0, 10_957, 20_000] {
            let (y, m, day) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, day), d);
        }
    }

    #[test]
    fn prices_round_up_to_a_micro_dollar() {
        let p = Price {
            model: "m".into(),
            matcher: globset::Glob::new("m").unwrap().compile_matcher(),
            input_micro_per_mtok: 2_500_000,
            output_micro_per_mtok: 10_000_000,
        };
        // 1000 in × $2.50/M + 500 out × $10/M = $0.0025 + $0.005
        assert_eq!(p.cost_micro_usd(1000, 500), 7_500);
        assert_eq!(p.cost_micro_usd(1, 0), 3);
    }
}
