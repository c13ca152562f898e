-- comgate storage, version 5: admin sessions and the audit log.
--
-- Same rules as version 1: this file runs unchanged on SQLite and PostgreSQL,
-- plain types only, BIGINT unix seconds, ids from id_sequences, every NOT
-- NULL spelled out.

-- A logged-in COM user (the REST API's cookie). The cookie carries a random
-- token; only its SHA-256 is kept, so a copy of the database logs nobody
-- in. csrf_token is what state-changing requests must echo in a header.
-- last_active_at drives the user's idle timeout. wallboard_view is set when
-- a wallboard user's timeout has passed: the one display (path and query)
-- the session may still refresh.
CREATE TABLE sessions (
    token_hash TEXT NOT NULL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_active_at BIGINT NOT NULL,
    last_view TEXT,
    wallboard_view TEXT
);

CREATE INDEX sessions_by_user ON sessions (user_id);

-- Every state change made through the admin plane and every login attempt:
-- who (the user's id and, as it was then, its name), when, from where,
-- what (action and target), the state before and after as JSON text, and
-- the outcome. No foreign keys: the record outlives the user and the
-- customer it names.
CREATE TABLE audit_log (
    id BIGINT NOT NULL PRIMARY KEY,
    at BIGINT NOT NULL,
    actor_id BIGINT,
    actor TEXT NOT NULL,
    source TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    before_state TEXT,
    after_state TEXT,
    outcome TEXT NOT NULL
);

CREATE INDEX audit_log_at ON audit_log (at);

INSERT INTO id_sequences (name, last_value) VALUES ('audit_log', 0);
