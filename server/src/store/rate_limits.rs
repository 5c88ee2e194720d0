//! Rate-limit buckets, shared by every replica on one database.
//!
//! A take is one conditional upsert on the bucket's row (see `policy/rate_limits.rs` for
//! the algorithm): `tat = max(tat, now) + interval`, unless that lands more than the
//! bucket's tolerance ahead of `now`. The stored TAT is first clamped to `now +
//! tolerance` (an empty bucket under the limit's current figures): that changes
//! nothing while a limit's rate and burst stay the same, and after a reload that makes
//! a limit faster, an empty bucket refills at the new rate instead of waiting out a
//! TAT computed at the old one. On PostgreSQL the upsert locks the row and
//! re-checks its `WHERE` against the committed TAT, so concurrent takes through any
//! number of replicas are applied one after another and never hand out more tokens
//! than the bucket holds. `now` is the database's clock there (`clock_timestamp()`),
//! so replicas whose clocks disagree still share one time line; on SQLite (one node)
//! it is the daemon's. Takes run inside the admission transaction of
//! `store/budgets.rs`, before the budget charges, so a refused action takes nothing.

use super::{Backend, Store, StoreError, sqlite_sql};

/// One token an admission takes from a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Take {
    pub rate_limit: String,
    pub scope_key: String,
    /// Microseconds between two tokens.
    pub interval_us: i64,
    /// How far ahead of now the TAT may be after the take (burst × interval).
    pub tolerance_us: i64,
}

/// A bucket after a take, or as it stood when a take was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketRow {
    pub rate_limit: String,
    pub scope_key: String,
    /// Theoretical arrival time: when the bucket would be full again.
    pub tat_us: i64,
    /// The clock the take was judged by (the database's on PostgreSQL).
    pub now_us: i64,
}

impl BucketRow {
    /// How long until `take` would succeed on this bucket (0 when it would now), with
    /// the TAT clamped as the take clamps it.
    pub fn wait_us(&self, take: &Take) -> i64 {
        let tat = self
            .tat_us
            .min(self.now_us.saturating_add(take.tolerance_us))
            .max(self.now_us);
        tat.saturating_add(take.interval_us)
            .saturating_sub(self.now_us)
            .saturating_sub(take.tolerance_us)
            .max(0)
    }
}

/// The database clock on PostgreSQL, in microseconds since the epoch.
macro_rules! pg_clock {
    () => {
        "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT"
    };
}

/// Takes a token ($1 limit, $2 key, $3 interval, $4 tolerance) on the database clock.
pub(super) const TAKE_PG: &str = concat!(
    "INSERT INTO rate_buckets AS b (rate_limit, scope_key, tat_us, updated_us) \
     SELECT $1, $2, c.now + $3, c.now FROM (SELECT ",
    pg_clock!(),
    " AS now) AS c \
     ON CONFLICT (rate_limit, scope_key) DO UPDATE \
     SET tat_us = GREATEST(LEAST(b.tat_us, EXCLUDED.updated_us + $4), EXCLUDED.updated_us) + $3, \
         updated_us = EXCLUDED.updated_us \
     WHERE GREATEST(LEAST(b.tat_us, EXCLUDED.updated_us + $4), EXCLUDED.updated_us) + $3 \
           - EXCLUDED.updated_us <= $4 \
     RETURNING tat_us, updated_us"
);
/// The same with the daemon's clock as ?5.
pub(super) const TAKE_SQLITE: &str = "INSERT INTO rate_buckets (rate_limit, scope_key, tat_us, updated_us) \
     VALUES (?1, ?2, ?5 + ?3, ?5) \
     ON CONFLICT (rate_limit, scope_key) DO UPDATE \
     SET tat_us = MAX(MIN(rate_buckets.tat_us, excluded.updated_us + ?4), excluded.updated_us) + ?3, \
         updated_us = excluded.updated_us \
     WHERE MAX(MIN(rate_buckets.tat_us, excluded.updated_us + ?4), excluded.updated_us) + ?3 \
           - excluded.updated_us <= ?4 \
     RETURNING tat_us, updated_us";

/// A bucket and the clock, after a refused take.
pub(super) const PEEK_PG: &str = concat!(
    "SELECT tat_us, ",
    pg_clock!(),
    " FROM rate_buckets WHERE rate_limit = $1 AND scope_key = $2"
);
pub(super) const PEEK_SQLITE: &str =
    "SELECT tat_us, ?3 FROM rate_buckets WHERE rate_limit = ?1 AND scope_key = ?2";

/// Runs the takes of an admission on transaction `$tx` with statements `$take` and
/// `$peek`; `$now` is bound as the daemon's clock where the dialect uses it. Evaluates
/// to `(buckets after, the first refused bucket)`.
macro_rules! take_in {
    ($tx:expr, $takes:expr, $now:expr, $take:expr, $peek:expr, $local_clock:expr) => {{
        let mut after = Vec::with_capacity($takes.len());
        let mut refused = None;
        for t in $takes {
            let q = sqlx::query_as(sqlx::AssertSqlSafe($take))
                .bind(t.rate_limit.as_str())
                .bind(t.scope_key.as_str())
                .bind(t.interval_us)
                .bind(t.tolerance_us);
            let q = if $local_clock { q.bind($now) } else { q };
            let row: Option<(i64, i64)> = q.fetch_optional(&mut *$tx).await?;
            let taken = row.is_some();
            let (tat_us, now_us) = match row {
                Some(r) => r,
                None => {
                    let q = sqlx::query_as(sqlx::AssertSqlSafe($peek))
                        .bind(t.rate_limit.as_str())
                        .bind(t.scope_key.as_str());
                    let q = if $local_clock { q.bind($now) } else { q };
                    q.fetch_optional(&mut *$tx).await?.unwrap_or((0, $now))
                }
            };
            let row = BucketRow {
                rate_limit: t.rate_limit.clone(),
                scope_key: t.scope_key.clone(),
                tat_us,
                now_us,
            };
            if !taken {
                refused = Some((t.clone(), row));
                break;
            }
            after.push(row);
        }
        (after, refused)
    }};
}
pub(super) use take_in;

impl Store {
    /// Deletes buckets that were full before `before_us`: a missing row is a full
    /// bucket, so this changes no decision.
    pub async fn rate_buckets_prune(&self, before_us: i64) -> Result<u64, StoreError> {
        self.delete_before("DELETE FROM rate_buckets WHERE tat_us < $1", before_us)
            .await
    }

    /// A bucket's TAT as stored (0, a full bucket, when it has no row).
    pub async fn rate_bucket(&self, rate_limit: &str, scope_key: &str) -> Result<i64, StoreError> {
        let sql = "SELECT tat_us FROM rate_buckets WHERE rate_limit = $1 AND scope_key = $2";
        super::on_backend!(self, sql, |pool, q| {
            let row: Option<(i64,)> = sqlx::query_as(q)
                .bind(rate_limit)
                .bind(scope_key)
                .fetch_optional(pool)
                .await?;
            Ok(row.map_or(0, |r| r.0))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(interval_us: i64, burst: i64) -> Take {
        Take {
            rate_limit: "r".into(),
            scope_key: "k".into(),
            interval_us,
            tolerance_us: interval_us.saturating_mul(burst),
        }
    }

    fn bucket(tat_us: i64, now_us: i64) -> BucketRow {
        BucketRow {
            rate_limit: "r".into(),
            scope_key: "k".into(),
            tat_us,
            now_us,
        }
    }

    #[test]
    fn waits_follow_the_tat_and_clamp_to_the_current_figures() {
        let now = 1_000_000_000;
        let slow = take(1_000_000, 3);
        assert_eq!(bucket(0, now).wait_us(&slow), 0, "a full bucket");
        assert_eq!(
            bucket(now + 2_000_000, now).wait_us(&slow),
            0,
            "one token left"
        );
        assert_eq!(
            bucket(now + 3_000_000, now).wait_us(&slow),
            1_000_000,
            "empty"
        );
        // A bucket emptied under slow figures (TAT 10 h ahead) waits one interval of the
        // faster figures a reload brought, not ten hours.
        let fast = take(10_000, 100);
        assert_eq!(
            bucket(now + 36_000_000_000, now).wait_us(&fast),
            10_000,
            "clamped to an empty bucket under the new figures"
        );
        // Extreme values saturate rather than overflow.
        let huge = take(i64::MAX / 2, 4);
        assert!((0..=i64::MAX / 2).contains(&bucket(i64::MAX, now).wait_us(&huge)));
    }
}
