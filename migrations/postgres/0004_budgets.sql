-- Budget counters: one row per (budget, scope key, window start). Amounts are integers
-- in the metric's unit (micro-USD for cost). `used` is what reports and tool calls
-- charged; `reserved` what allowed actions estimated and have not reported yet.
-- `alerted_permille` is the highest alert_at threshold already announced.
CREATE TABLE budget_usage (
    budget           TEXT    NOT NULL,
    scope_key        TEXT    NOT NULL,
    window_start     BIGINT  NOT NULL,
    used             BIGINT  NOT NULL DEFAULT 0,
    reserved         BIGINT  NOT NULL DEFAULT 0,
    alerted_permille BIGINT  NOT NULL DEFAULT 0,
    updated_us       BIGINT  NOT NULL,
    PRIMARY KEY (budget, scope_key, window_start)
);

-- Usage history: one row per report that carried usage, and per admitted tool call.
CREATE TABLE usage_history (
    id             BIGSERIAL PRIMARY KEY,
    time_us        BIGINT  NOT NULL,
    tenant         TEXT    NOT NULL,
    agent          TEXT    NOT NULL,
    session        TEXT    NOT NULL,
    channel        TEXT    NOT NULL,
    tool           TEXT    NOT NULL,
    model          TEXT    NOT NULL DEFAULT '',
    decision_seq   BIGINT  NOT NULL DEFAULT 0,
    tokens_in      BIGINT  NOT NULL DEFAULT 0,
    tokens_out     BIGINT  NOT NULL DEFAULT 0,
    cost_micro_usd BIGINT  NOT NULL DEFAULT 0,
    egress_bytes   BIGINT  NOT NULL DEFAULT 0,
    rows_read      BIGINT  NOT NULL DEFAULT 0,
    wall_time_ms   BIGINT  NOT NULL DEFAULT 0,
    tool_calls     BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX usage_history_by_time ON usage_history (time_us);
CREATE INDEX usage_history_by_agent ON usage_history (tenant, agent, time_us);

-- Run caps a session was opened with, and what its reports spent against them.
ALTER TABLE sessions ADD COLUMN max_tokens BIGINT;
ALTER TABLE sessions ADD COLUMN max_cost_micro_usd BIGINT;
ALTER TABLE sessions ADD COLUMN tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN cost_micro_usd BIGINT NOT NULL DEFAULT 0;
