-- Alert outbox: one row per alert and route, inserted after the decision's audit
-- record is committed and delivered by a worker in any replica.
-- status: pending | delivered | failed. A worker claims due pending rows by setting
-- lease_owner and lease_until_us; another worker takes a row only once its lease has
-- passed, so one alert is sent by one replica at a time. payload is the exact request
-- body (what x-warden-signature signs); secret_env names the variable holding the
-- signing key, never the key.
CREATE TABLE alert_outbox (
    id              TEXT     PRIMARY KEY,
    route_id        TEXT     NOT NULL,
    url             TEXT     NOT NULL,
    format          TEXT     NOT NULL,
    secret_env      TEXT     NOT NULL DEFAULT '',
    timeout_ms      INTEGER  NOT NULL,
    event           TEXT     NOT NULL,
    payload         TEXT     NOT NULL,
    created_us      INTEGER  NOT NULL,
    status          TEXT     NOT NULL DEFAULT 'pending',
    attempts        INTEGER  NOT NULL DEFAULT 0,
    next_attempt_us INTEGER  NOT NULL,
    lease_owner     TEXT     NOT NULL DEFAULT '',
    lease_until_us  INTEGER  NOT NULL DEFAULT 0,
    delivered_us    INTEGER  NOT NULL DEFAULT 0,
    last_status     INTEGER  NOT NULL DEFAULT 0,
    last_error      TEXT     NOT NULL DEFAULT ''
);
-- What the worker looks for: pending rows in due order.
CREATE INDEX alert_outbox_due ON alert_outbox (next_attempt_us) WHERE status = 'pending';
CREATE INDEX alert_outbox_by_time ON alert_outbox (created_us);
