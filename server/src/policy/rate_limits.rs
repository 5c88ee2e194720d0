//! Rate limits as compiled: a token bucket per tool category and scope (by default per
//! agent), refilled at a steady rate and holding at most `burst` tokens.
//!
//! A bucket is kept as one number, its *theoretical arrival time* (TAT, the generic cell
//! rate algorithm): the time at which the bucket would be full again. Taking a token at
//! `now` moves it to `max(tat, now) + interval`; the take is refused when that is more
//! than `burst × interval` ahead of `now`. One integer per bucket is what lets replicas
//! share buckets through one conditional upsert (`store/rate_limits.rs`).

use serde::Serialize;

use super::Origin;
use super::budgets::Scope;
use super::conditions::Conditions;
use crate::normalize::NormalizedAction;

/// A compiled rate limit. Its `match` defines the tool category it limits.
#[derive(Debug)]
pub struct RateLimit {
    /// Also the category's name.
    pub id: String,
    pub origin: Origin,
    /// Whose bucket an action takes from (agent by default).
    pub scope: Scope,
    /// The rate as written (`30/minute`), for messages.
    pub rate: String,
    /// Microseconds between two tokens (rounded up, so never faster than written).
    pub interval_us: i64,
    /// Most tokens the bucket holds: how many actions may come at once.
    pub burst: i64,
    pub(super) conditions: Conditions,
}

impl RateLimit {
    /// The bucket key of an action's scope.
    pub fn key(&self, a: &NormalizedAction) -> String {
        self.scope.key(&a.tenant, &a.agent, &a.session)
    }

    /// How far ahead of now a bucket's TAT may be after a take: `burst` intervals.
    pub fn tolerance_us(&self) -> i64 {
        self.interval_us.saturating_mul(self.burst)
    }

    /// Tokens left in a bucket whose TAT is `tat_us`, at `now_us`.
    pub fn tokens_left(&self, tat_us: i64, now_us: i64) -> i64 {
        let ahead = tat_us.saturating_sub(now_us).max(0);
        (self.tolerance_us().saturating_sub(ahead) / self.interval_us.max(1)).clamp(0, self.burst)
    }

    pub(super) fn spec(&self) -> RateLimitSpec<'_> {
        RateLimitSpec {
            id: &self.id,
            scope: self.scope,
            interval_us: self.interval_us,
            burst: self.burst,
            conditions: &self.conditions.spec,
        }
    }
}

/// What a rate limit means, as it enters the policy version.
#[derive(Serialize)]
pub(super) struct RateLimitSpec<'a> {
    id: &'a str,
    scope: Scope,
    interval_us: i64,
    burst: i64,
    #[serde(rename = "match")]
    conditions: &'a super::conditions::ConditionSpec,
}

/// Most tokens a bucket may hold.
pub(super) const MAX_BURST: f64 = 1e9;
/// Longest a bucket may span (burst × interval), in microseconds: about 3,170 years, so
/// TATs stay far from `i64::MAX`.
pub(super) const MAX_SPAN_US: i128 = 100_000_000_000_000_000;

/// Parses a rate such as `30/minute`, `5/s`, `100/10m` or `0.5/second` into the
/// microseconds between two tokens and the count written (the default burst, rounded
/// up). Errors say what is wrong.
pub(super) fn parse_rate(text: &str) -> Result<(i64, i64), String> {
    const EXAMPLES: &str = "write N/PERIOD, e.g. 30/minute, 5/s or 100/10m";
    let (count, period) = text
        .split_once('/')
        .ok_or_else(|| format!("rate {text:?} has no `/` ({EXAMPLES})"))?;
    let count: f64 = count.trim().parse().map_err(|_| {
        format!(
            "rate {text:?}: {:?} is not a number ({EXAMPLES})",
            count.trim()
        )
    })?;
    if !count.is_finite() || count <= 0.0 {
        return Err(format!(
            "rate {text:?}: the count must be a positive number, not {count}"
        ));
    }
    let period = period.trim().to_ascii_lowercase();
    let period_us = match period.as_str() {
        "s" | "sec" | "second" => 1_000_000,
        "m" | "min" | "minute" => 60_000_000,
        "h" | "hour" => 3_600_000_000,
        "d" | "day" => 86_400_000_000,
        other => crate::duration::parse_us(other)
            .map_err(|e| format!("rate {text:?}: period: {e} ({EXAMPLES})"))?,
    };
    let exact = period_us as f64 / count;
    let interval = exact.ceil();
    if exact < 1.0 {
        return Err(format!(
            "rate {text:?} is faster than one action per microsecond"
        ));
    }
    // A period of days over a tiny count could overflow; 1e15 µs is ~31 years.
    if interval > 1e15 {
        return Err(format!(
            "rate {text:?} is slower than one action in 30 years"
        ));
    }
    Ok((interval as i64, count.ceil().min(MAX_BURST) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_to_intervals() {
        assert_eq!(parse_rate("30/minute"), Ok((2_000_000, 30)));
        assert_eq!(parse_rate("5/s"), Ok((200_000, 5)));
        assert_eq!(parse_rate("100/10m"), Ok((6_000_000, 100)));
        assert_eq!(parse_rate("0.5/second"), Ok((2_000_000, 1)));
        assert_eq!(parse_rate(" 3 / Second "), Ok((333_334, 3)), "rounded up");
        assert_eq!(parse_rate("24/day"), Ok((3_600_000_000, 24)));
        for bad in [
            "30",
            "x/minute",
            "0/s",
            "-1/s",
            "5/fortnight",
            "5/0s",
            "1e9/s",
            "inf/s",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad} should be refused");
        }
        assert!(parse_rate("2000000/s").unwrap_err().contains("microsecond"));
    }

    #[test]
    fn tokens_left_follow_the_tat() {
        let limit = RateLimit {
            id: "x".into(),
            origin: Origin {
                file: "f".into(),
                line: 1,
                column: 1,
            },
            scope: Scope::Agent,
            rate: "1/s".into(),
            interval_us: 1_000_000,
            burst: 5,
            conditions: Conditions::default(),
        };
        let now = 1_000_000_000;
        assert_eq!(limit.tokens_left(0, now), 5, "an old TAT is a full bucket");
        assert_eq!(limit.tokens_left(now + 5_000_000, now), 0);
        assert_eq!(limit.tokens_left(now + 2_500_000, now), 2);
        assert_eq!(limit.tokens_left(now + 9_000_000, now), 0, "never negative");
    }
}
