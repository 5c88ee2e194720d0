-- The hash-chained audit log. Every column except seq, prev_hash and hash is part of the
-- hashed record body (see server/src/audit/record.rs). Text columns keep the exact bytes
-- that were hashed; JSON is stored as TEXT, not JSONB, for that reason.
CREATE TABLE audit_log (
    seq            BIGINT PRIMARY KEY,
    time_us        BIGINT NOT NULL,
    kind           TEXT   NOT NULL,
    tenant         TEXT   NOT NULL,
    agent          TEXT   NOT NULL,
    session        TEXT   NOT NULL,
    channel        TEXT   NOT NULL,
    action         TEXT   NOT NULL,
    verdict        TEXT   NOT NULL,
    rule_ids       TEXT   NOT NULL,
    reason         TEXT   NOT NULL,
    policy_version TEXT   NOT NULL,
    zone           TEXT   NOT NULL,
    approval_id    TEXT   NOT NULL,
    break_glass_id TEXT   NOT NULL,
    result         TEXT   NOT NULL,
    decision_seq   BIGINT NOT NULL,
    prev_hash      TEXT   NOT NULL,
    hash           TEXT   NOT NULL
);

CREATE INDEX audit_log_session ON audit_log (tenant, session, seq);
CREATE INDEX audit_log_agent ON audit_log (tenant, agent, seq);

-- The chain head: one row, locked FOR UPDATE by every batch so that all replicas append
-- to one chain.
CREATE TABLE audit_head (
    id   SMALLINT PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT   NOT NULL
);

INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
