-- Sessions: zone and counters, so a restarted daemon continues a session where it was.
-- The zone is stored as 0 = safe, 1 = sensitive, 2 = commitment, 3 = irreversible, and
-- updates never lower it (MAX in the UPDATE).
CREATE TABLE sessions (
    tenant       TEXT    NOT NULL,
    agent        TEXT    NOT NULL,
    session      TEXT    NOT NULL,
    zone         INTEGER NOT NULL DEFAULT 0,
    actions      INTEGER NOT NULL DEFAULT 0,
    reports      INTEGER NOT NULL DEFAULT 0,
    bytes        INTEGER NOT NULL DEFAULT 0,
    rows_read    INTEGER NOT NULL DEFAULT 0,
    tags         TEXT    NOT NULL DEFAULT '[]',
    started_us   INTEGER NOT NULL,
    last_seen_us INTEGER NOT NULL,
    closed_us    INTEGER,
    PRIMARY KEY (tenant, agent, session)
);
