-- Rate-limit buckets: one row per (rate limit, scope key). A bucket is its theoretical
-- arrival time (GCRA): the microsecond at which it would be full again. A row whose
-- tat_us is in the past is a full bucket, so such rows may be deleted at any time.
-- updated_us is the clock (the database's, on PostgreSQL) of the last take.
CREATE TABLE rate_buckets (
    rate_limit TEXT    NOT NULL,
    scope_key  TEXT    NOT NULL,
    tat_us     INTEGER  NOT NULL,
    updated_us INTEGER  NOT NULL,
    PRIMARY KEY (rate_limit, scope_key)
);
CREATE INDEX rate_buckets_by_tat ON rate_buckets (tat_us);
