-- Approvals: created by REQUIRE_APPROVAL decisions, decided by an approver, used by
-- the retried action. `digest` binds one to the normalized action, agent, session and
-- policy version. status: pending | approved | denied | used; "expired" is derived
-- from the times when read. uses_left NULL means a time-limited grant (any number of
-- uses until grant_expires_us).
CREATE TABLE approvals (
    id               TEXT    PRIMARY KEY,
    digest           TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    tenant           TEXT    NOT NULL,
    agent            TEXT    NOT NULL,
    session          TEXT    NOT NULL,
    channel          TEXT    NOT NULL,
    action           TEXT    NOT NULL,
    rule_ids         TEXT    NOT NULL,
    reason           TEXT    NOT NULL,
    policy_version   TEXT    NOT NULL,
    created_us       BIGINT  NOT NULL,
    expires_us       BIGINT  NOT NULL,
    decided_by       TEXT    NOT NULL DEFAULT '',
    decided_us       BIGINT  NOT NULL DEFAULT 0,
    decision_note    TEXT    NOT NULL DEFAULT '',
    uses_left        BIGINT,
    grant_expires_us BIGINT  NOT NULL DEFAULT 0,
    uses             BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX approvals_by_digest ON approvals (digest, created_us);
CREATE INDEX approvals_by_time ON approvals (created_us);

-- Break-glass grants. Empty agent or session means "any" within the tenant.
CREATE TABLE break_glass (
    id          TEXT    PRIMARY KEY,
    tenant      TEXT    NOT NULL,
    agent       TEXT    NOT NULL DEFAULT '',
    session     TEXT    NOT NULL DEFAULT '',
    reason      TEXT    NOT NULL,
    issued_by   TEXT    NOT NULL,
    created_us  BIGINT  NOT NULL,
    expires_us  BIGINT  NOT NULL,
    revoked_us  BIGINT  NOT NULL DEFAULT 0,
    revoked_by  TEXT    NOT NULL DEFAULT '',
    uses        BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX break_glass_by_tenant ON break_glass (tenant, expires_us);
