-- The event log. Positions are assigned under a transaction-scoped advisory lock (see
-- docs/decisions/0006-gap-free-positions-on-postgresql.md), so they commit in order, with no gaps.
CREATE TABLE IF NOT EXISTS events (
    position        BIGINT      PRIMARY KEY,
    stream          TEXT        NOT NULL,
    version         BIGINT      NOT NULL,
    event_id        UUID        NOT NULL UNIQUE,
    event_type      TEXT        NOT NULL,
    schema_version  INTEGER     NOT NULL,
    conference_id   UUID,
    command_id      UUID        NOT NULL,
    correlation_id  UUID        NOT NULL,
    causation_id    UUID,
    actor           TEXT        NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL,
    data            JSONB       NOT NULL,
    UNIQUE (stream, version)
);
CREATE INDEX IF NOT EXISTS events_by_conference ON events (conference_id, position)
    WHERE conference_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_by_command ON events (stream, command_id);

CREATE TABLE IF NOT EXISTS snapshots (
    stream   TEXT    PRIMARY KEY,
    version  BIGINT  NOT NULL,
    schema   INTEGER NOT NULL,
    data     TEXT    NOT NULL
);
