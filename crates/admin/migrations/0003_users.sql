-- comgate storage, version 3: the manual's COM user settings, password
-- history and failed logins.
--
-- Same rules as version 1: this file runs unchanged on SQLite and PostgreSQL,
-- plain types only (TEXT, BIGINT, BOOLEAN), timestamps as BIGINT unix
-- seconds, ids from id_sequences, every NOT NULL spelled out. Columns are
-- added one ALTER TABLE at a time (SQLite adds one per statement), each with
-- a default, so that existing users keep working. The store validates every
-- setting before writing and names the field; the CHECKs are the backstop.

-- "COM User Settings". The contact fields are '' when not given.
-- first_name and last_name together are at most 31 characters; phone and
-- mobile are digits (an optional leading +), at most 15 of them.
ALTER TABLE users ADD COLUMN first_name TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN last_name TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN phone TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN mobile TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN email TEXT NOT NULL DEFAULT '';

-- Idle minutes before the user is logged out: 5 to 30 in steps of 5.
ALTER TABLE users ADD COLUMN session_timeout_minutes BIGINT NOT NULL DEFAULT 10
    CHECK (session_timeout_minutes BETWEEN 5 AND 30 AND session_timeout_minutes % 5 = 0);

-- Wallboard mode: only for the support and read-only roles (the store checks
-- it against the role, which a column CHECK cannot see).
ALTER TABLE users ADD COLUMN wallboard BOOLEAN NOT NULL DEFAULT FALSE;

-- "Disable Account" and "Force New Password".
ALTER TABLE users ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN force_password_change BOOLEAN NOT NULL DEFAULT FALSE;

-- "Account Expiration": from this unix time on the account is disabled (the
-- store sets disabled when it notices). NULL: never expires.
ALTER TABLE users ADD COLUMN expires_at BIGINT;

-- The Supervisor who created this Operator (a Supervisor manages only the
-- users it created); NULL for users an Administrator created.
ALTER TABLE users ADD COLUMN created_by BIGINT REFERENCES users (id) ON DELETE SET NULL;

-- Labels: reseller or distributor (provider) names, as in customers.reseller
-- and customers.provider; a customer whose reseller or provider matches one
-- is assigned to the user automatically. Only for the roles that see
-- assigned customers only (supervisor, operator, read-only).
CREATE TABLE user_labels (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    PRIMARY KEY (user_id, label)
);

-- Visibility by label looks users up by label.
CREATE INDEX user_labels_label ON user_labels (label);

-- Every password a user has had (argon2 PHC strings), the current one
-- included, so that a new password can be checked against the last few.
-- id (from id_sequences) orders them: two may be set in the same second.
CREATE TABLE password_history (
    id BIGINT NOT NULL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    password_hash TEXT NOT NULL,
    set_at BIGINT NOT NULL
);

CREATE INDEX password_history_user ON password_history (user_id, id);

INSERT INTO id_sequences (name, last_value) VALUES ('password_history', 0);

-- Failed logins, by the login name tried (whether or not such a user
-- exists, so that being blocked tells a guesser nothing), for the manual's
-- "3 failed login attempts in a 10 minute period block further attempts for
-- the following 10 minutes". A success clears the name's rows; every login
-- attempt deletes the rows (of any name) too old to block anything, through
-- the index on at, so guessed names do not pile up.
CREATE TABLE login_failures (
    username TEXT NOT NULL,
    at BIGINT NOT NULL
);

CREATE INDEX login_failures_username ON login_failures (username, at);

CREATE INDEX login_failures_at ON login_failures (at);
