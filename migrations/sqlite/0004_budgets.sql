-- Budget counters: one row per (budget, scope key, window start). Amounts are integers
-- in the metric's unit (micro-USD for cost). `used` is what reports and tool calls
-- charged; `reserved` what allowed actions estimated and have not reported yet.
-- `alerted_permille` is the highest alert_at threshold already announced.
CREATE TABLE budget_usage (
    budget           TEXT    NOT NULL,
    scope_key        TEXT    NOT NULL,
    window_start     INTEGER  NOT NULL,
    used             INTEGER  NOT NULL DEFAULT 0,
    reserved         INTEGER  NOT NULL DEFAULT 0,
    alerted_permille INTEGER  NOT NULL DEFAULT 0,
    updated_us       INTEGER  NOT NULL,
    PRIMARY KEY (budget, scope_key, window_start)
);

-- Usage history: one row per report that carried usage, and per admitted tool call.
CREATE TABLE usage_history (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    time_us        INTEGER  NOT NULL,
    tenant         TEXT    NOT NULL,
    agent          TEXT    NOT NULL,
    session        TEXT    NOT NULL,
    channel        TEXT    NOT NULL,
    tool           TEXT    NOT NULL,
    model          TEXT    NOT NULL DEFAULT '',
    decision_seq   INTEGER  NOT NULL DEFAULT 0,
    tokens_in      INTEGER  NOT NULL DEFAULT 0,
    tokens_out     INTEGER  NOT NULL DEFAULT 0,
    cost_micro_usd INTEGER  NOT NULL DEFAULT 0,
    egress_bytes   INTEGER  NOT NULL DEFAULT 0,
    rows_read      INTEGER  NOT NULL DEFAULT 0,
    wall_time_ms   INTEGER  NOT NULL DEFAULT 0,
    tool_calls     INTEGER  NOT NULL DEFAULT 0
);
CREATE INDEX usage_history_by_time ON usage_history (time_us);
CREATE INDEX usage_history_by_agent ON usage_history (tenant, agent, time_us);

-- Run caps a session was opened with, and what its reports spent against them.
ALTER TABLE sessions ADD COLUMN max_tokens INTEGER;
ALTER TABLE sessions ADD COLUMN max_cost_micro_usd INTEGER;
ALTER TABLE sessions ADD COLUMN tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN cost_micro_usd INTEGER NOT NULL DEFAULT 0;
