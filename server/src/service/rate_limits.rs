//! Rate limits on the decision path: the takes an action makes, the words of a
//! refusal, and a local fast path for buckets known to be empty.
//!
//! **The fast path.** A bucket's TAT only ever grows (every take moves it forward;
//! pruning deletes only rows already in the past, which are full buckets). So a TAT
//! this daemon saw in an answer from the database is a lower bound of the TAT there
//! now. If even that lower bound leaves no token at an estimate of the database's
//! clock that is never behind it, the database would refuse too, and the action is
//! refused here without a round trip. The estimate is the database clock of the
//! answer plus the monotonic time since the request was *sent* (the database read its
//! clock after that), so it runs ahead of the real clock, which only makes the fast
//! path refuse less. Anything the fast path does not refuse goes to the database,
//! which decides. So the fast path never refuses an action the database would admit,
//! and admits nothing on its own.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::alerts::{AlertEvent, AlertEventKind};
use crate::normalize::NormalizedAction;
use crate::policy::RateLimit;
use crate::store::{BucketRow, Take};

/// The takes of an admission: one token from each category's bucket.
pub(crate) fn takes(limits: &[&RateLimit], action: &NormalizedAction) -> Vec<Take> {
    limits
        .iter()
        .map(|l| Take {
            rate_limit: l.id.clone(),
            scope_key: l.key(action),
            interval_us: l.interval_us,
            tolerance_us: l.tolerance_us(),
        })
        .collect()
}

/// The reason of a rate-limit refusal.
pub(crate) fn refusal_reason(limit: &RateLimit, wait_us: i64) -> String {
    format!(
        "rate limit {} reached: {} with bursts of {} per {}; retry in {}",
        limit.id,
        limit.rate,
        limit.burst,
        limit.scope.as_str(),
        human_wait(wait_us)
    )
}

/// `retry_after_ms` of a refusal: the wait rounded up to a millisecond, at least 1.
pub(crate) fn retry_after_ms(wait_us: i64) -> u64 {
    u64::try_from(wait_us.max(1)).unwrap_or(1).div_ceil(1000)
}

fn human_wait(us: i64) -> String {
    let ms = retry_after_ms(us);
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// The `rate_limited` alert's own fields (the decision's are added by the caller).
pub(crate) fn alert(limit: &RateLimit, wait_us: i64) -> AlertEvent {
    AlertEvent::new(AlertEventKind::RateLimited)
        .detail("rate_limit", limit.id.as_str())
        .detail("rate", limit.rate.as_str())
        .detail("burst", limit.burst)
        .detail("scope", limit.scope.as_str())
        .detail("retry_after_ms", retry_after_ms(wait_us))
}

/// When a request to the database went out, on both of the daemon's clocks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sent {
    pub(crate) at: Instant,
    /// Microseconds since the epoch, read no earlier than `at`.
    pub(crate) wall_us: i64,
}

impl Sent {
    /// Time since the request went out: the larger of the monotonic clock (which stops
    /// while the host is suspended) and the wall clock (which may be stepped), so the
    /// fast path never underestimates how much the bucket refilled.
    fn elapsed_us(&self, at: Instant, wall_us: i64) -> i64 {
        let monotonic =
            i64::try_from(at.saturating_duration_since(self.at).as_micros()).unwrap_or(i64::MAX);
        monotonic.max(wall_us.saturating_sub(self.wall_us))
    }
}

/// Buckets this daemon last saw empty.
#[derive(Default)]
pub(crate) struct RateCache {
    buckets: Mutex<HashMap<String, Seen>>,
}

/// A bucket as the database last answered for it.
#[derive(Debug, Clone, Copy)]
struct Seen {
    tat_us: i64,
    /// The database's clock in that answer…
    db_now_us: i64,
    /// …and when the request that got it was sent (or, for SQLite, when the daemon
    /// read the clock it passed).
    sent: Sent,
    interval_us: i64,
    tolerance_us: i64,
}

/// Entries kept at most; past this, entries that no longer refuse are dropped, and
/// if that is not enough, all of them (the cache only ever saves round trips).
const MAX_ENTRIES: usize = 65_536;

fn cache_key(rate_limit: &str, scope_key: &str) -> String {
    format!("{rate_limit}\u{1f}{scope_key}")
}

impl Seen {
    /// How long the database would make `take` wait at `at` (wall clock `wall_us`), at
    /// least.
    fn wait_at_least(&self, take: &Take, at: Instant, wall_us: i64) -> i64 {
        // Another interval or burst (a reloaded policy): the bound does not carry over.
        if take.interval_us != self.interval_us || take.tolerance_us != self.tolerance_us {
            return 0;
        }
        let db_now = self
            .db_now_us
            .saturating_add(self.sent.elapsed_us(at, wall_us));
        BucketRow {
            rate_limit: String::new(),
            scope_key: String::new(),
            tat_us: self.tat_us,
            now_us: db_now,
        }
        .wait_us(take)
    }
}

impl RateCache {
    /// The first take the database would certainly refuse now, with its least wait.
    pub(crate) fn refuses(&self, takes: &[Take]) -> Option<(usize, i64)> {
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.is_empty() {
            return None;
        }
        let (now, wall) = (Instant::now(), super::now_us());
        takes.iter().enumerate().find_map(|(i, t)| {
            let seen = buckets.get(&cache_key(&t.rate_limit, &t.scope_key))?;
            let wait = seen.wait_at_least(t, now, wall);
            (wait > 0).then_some((i, wait))
        })
    }

    /// Remembers what the database answered for `takes` (sent at `sent`): buckets
    /// left without a token are kept, the others forgotten.
    pub(crate) fn record(&self, sent: Sent, takes: &[Take], rows: &[BucketRow]) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        for row in rows {
            let Some(take) = takes
                .iter()
                .find(|t| t.rate_limit == row.rate_limit && t.scope_key == row.scope_key)
            else {
                continue;
            };
            let seen = Seen {
                tat_us: row.tat_us,
                db_now_us: row.now_us,
                sent,
                interval_us: take.interval_us,
                tolerance_us: take.tolerance_us,
            };
            let key = cache_key(&row.rate_limit, &row.scope_key);
            if row.wait_us(take) > 0 {
                buckets.insert(key, seen);
            } else if !buckets.is_empty() {
                buckets.remove(&key);
            }
        }
        if buckets.len() > MAX_ENTRIES {
            let (now, wall) = (Instant::now(), super::now_us());
            buckets.retain(|_, s| {
                let probe = Take {
                    rate_limit: String::new(),
                    scope_key: String::new(),
                    interval_us: s.interval_us,
                    tolerance_us: s.tolerance_us,
                };
                s.wait_at_least(&probe, now, wall) > 0
            });
            if buckets.len() > MAX_ENTRIES {
                buckets.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sent_now() -> Sent {
        Sent {
            at: Instant::now(),
            wall_us: crate::service::now_us(),
        }
    }

    fn take() -> Take {
        Take {
            rate_limit: "shell".into(),
            scope_key: "t\u{1f}a".into(),
            interval_us: 1_000_000,
            tolerance_us: 3_000_000,
        }
    }

    fn row(tat_us: i64, now_us: i64) -> BucketRow {
        BucketRow {
            rate_limit: "shell".into(),
            scope_key: "t\u{1f}a".into(),
            tat_us,
            now_us,
        }
    }

    #[test]
    fn an_empty_bucket_is_refused_locally_until_it_refills() {
        let cache = RateCache::default();
        let t = take();
        let sent = sent_now();
        // Three tokens taken at once: TAT 3 s ahead, the bucket is empty.
        cache.record(
            sent,
            std::slice::from_ref(&t),
            &[row(13_000_000, 10_000_000)],
        );
        let (i, wait) = cache.refuses(std::slice::from_ref(&t)).expect("refused");
        assert_eq!(i, 0);
        assert!(wait > 900_000 && wait <= 1_000_000, "{wait}");
        // Once the estimated clock passes the next token, the database decides.
        let later = sent.at + Duration::from_millis(1001);
        let seen = *cache
            .buckets
            .lock()
            .unwrap()
            .get(&cache_key("shell", "t\u{1f}a"))
            .unwrap();
        assert_eq!(seen.wait_at_least(&t, later, sent.wall_us), 0);
        // So does a wall clock that moved on while the monotonic one stood still (a
        // suspended host).
        assert_eq!(seen.wait_at_least(&t, sent.at, sent.wall_us + 1_001_000), 0);
        assert!(seen.wait_at_least(&t, sent.at, sent.wall_us) > 0);
    }

    #[test]
    fn buckets_with_tokens_left_and_other_rates_are_not_refused() {
        let cache = RateCache::default();
        let t = take();
        let sent = sent_now();
        cache.record(
            sent,
            std::slice::from_ref(&t),
            &[row(11_000_000, 10_000_000)],
        );
        assert!(
            cache.refuses(std::slice::from_ref(&t)).is_none(),
            "2 tokens left"
        );
        cache.record(
            sent,
            std::slice::from_ref(&t),
            &[row(13_000_000, 10_000_000)],
        );
        let faster = Take {
            interval_us: 10,
            ..take()
        };
        assert!(
            cache.refuses(&[faster]).is_none(),
            "a reloaded rate starts from the database"
        );
        // An answer with a token left forgets the bucket.
        cache.record(
            sent,
            std::slice::from_ref(&t),
            &[row(10_500_000, 10_000_000)],
        );
        assert!(cache.refuses(&[t]).is_none());
    }
}
