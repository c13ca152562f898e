-- comgate storage, version 2: site alarms, and what comgate last observed
-- of each system's agent (the customer list's connectivity).
--
-- Portable as version 1 (see its header): plain types, BIGINT unix seconds,
-- ids from id_sequences.

-- One row per distinct alarm of a system (manual chapter 4): the alarm's
-- identity is its type and text; a repeat updates the row (last
-- occurrence, count, severity, detail, whether still active) instead of
-- adding one. Rows go when cleared, which only an inactive alarm may be.
CREATE TABLE alarms (
    id BIGINT NOT NULL PRIMARY KEY,
    system_id BIGINT NOT NULL REFERENCES systems (id) ON DELETE CASCADE,
    alarm_type TEXT NOT NULL CHECK (alarm_type IN ('Configuration', 'Trunk', 'Link', 'Services', 'QoS', 'Security')),
    text TEXT NOT NULL,
    severity TEXT NOT NULL CHECK (severity IN ('critical', 'major', 'minor', 'warning')),
    detail TEXT,
    source TEXT NOT NULL CHECK (source IN ('site', 'agent')),
    active BOOLEAN NOT NULL,
    first_at BIGINT NOT NULL,
    last_at BIGINT NOT NULL,
    occurrences BIGINT NOT NULL,
    UNIQUE (system_id, alarm_type, text)
);

-- Clear all of a type.
CREATE INDEX alarms_by_type ON alarms (alarm_type);

INSERT INTO id_sequences (name, last_value) VALUES ('alarms', 0);

-- Per system: when its agent last connected and was last seen (a session's
-- end, or its start while it runs), when an agent last failed to
-- authenticate as it, and the settings and capabilities it last reported.
-- Whether it is connected right now is the running gateway's knowledge (its
-- hub), not the database's: a crashed gateway leaves no stale "connected".
ALTER TABLE systems ADD COLUMN last_connected_at BIGINT;
ALTER TABLE systems ADD COLUMN last_seen_at BIGINT;
ALTER TABLE systems ADD COLUMN last_auth_failure_at BIGINT;
ALTER TABLE systems ADD COLUMN remote_access BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE systems ADD COLUMN colocated_servers BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE systems ADD COLUMN centralized_management BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE systems ADD COLUMN legacy_agent BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE systems ADD COLUMN agent_version TEXT;
