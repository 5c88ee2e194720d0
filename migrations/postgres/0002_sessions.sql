-- Sessions: zone and counters, so a restarted daemon continues a session where it was.
-- The zone is stored as 0 = safe, 1 = sensitive, 2 = commitment, 3 = irreversible, and
-- updates never lower it (GREATEST in the UPDATE).
CREATE TABLE sessions (
    tenant       TEXT    NOT NULL,
    agent        TEXT    NOT NULL,
    session      TEXT    NOT NULL,
    zone         BIGINT   NOT NULL DEFAULT 0,
    actions      BIGINT   NOT NULL DEFAULT 0,
    reports      BIGINT   NOT NULL DEFAULT 0,
    bytes        BIGINT   NOT NULL DEFAULT 0,
    rows_read    BIGINT   NOT NULL DEFAULT 0,
    tags         TEXT    NOT NULL DEFAULT '[]',
    started_us   BIGINT  NOT NULL,
    last_seen_us BIGINT  NOT NULL,
    closed_us    BIGINT ,
    PRIMARY KEY (tenant, agent, session)
);
