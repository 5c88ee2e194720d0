-- The hash-chained audit log. Every column except seq, prev_hash and hash is part of the
-- hashed record body (see server/src/audit/record.rs). Text columns keep the exact bytes
-- that were hashed.
CREATE TABLE audit_log (
    seq            INTEGER PRIMARY KEY,
    time_us        INTEGER NOT NULL,
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
    decision_seq   INTEGER NOT NULL,
    prev_hash      TEXT   NOT NULL,
    hash           TEXT   NOT NULL
);

CREATE INDEX audit_log_session ON audit_log (tenant, session, seq);
CREATE INDEX audit_log_agent ON audit_log (tenant, agent, seq);

-- The chain head: one row, locked by every batch (BEGIN IMMEDIATE) so that all processes append
-- to one chain.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT   NOT NULL
);

INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
