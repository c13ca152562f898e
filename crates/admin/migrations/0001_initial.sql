-- comgate storage, version 1: proxy accounts, customers, systems, users.
--
-- This file runs unchanged on SQLite and PostgreSQL: plain types only
-- (TEXT, BIGINT, BOOLEAN), timestamps as BIGINT unix seconds, and ids handed
-- out by the application from id_sequences, because the two databases share
-- no auto-increment syntax. Every NOT NULL is spelled out: SQLite lets a
-- non-INTEGER primary key hold NULL otherwise.

-- One row per table with a numeric id; the store takes the next id with a
-- single UPDATE ... RETURNING, which is atomic on both databases and never
-- reuses an id, so audit records that name an id stay unambiguous.
-- A later migration that adds such a table adds its row here.
CREATE TABLE id_sequences (
    name TEXT NOT NULL PRIMARY KEY,
    last_value BIGINT NOT NULL
);

INSERT INTO id_sequences (name, last_value) VALUES
    ('proxy_accounts', 0),
    ('systems', 0),
    ('users', 0);

-- The maintenance proxy account of one reseller or distributor (the owner).
-- The front door looks accounts up by username on every CONNECT, hence its
-- unique index; owner is unique because an owner has one account.
CREATE TABLE proxy_accounts (
    id BIGINT NOT NULL PRIMARY KEY,
    owner TEXT NOT NULL UNIQUE,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- id is letters and digits, lowercase: the first part of a maintenance
-- address. reseller and provider (distributor) hold proxy_accounts.owner
-- values, without a foreign key: a customer may be added before its
-- reseller's proxy account exists.
CREATE TABLE customers (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    reseller TEXT NOT NULL,
    provider TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Visibility by label (the admin plane) filters customers by these.
CREATE INDEX customers_reseller ON customers (reseller);
CREATE INDEX customers_provider ON customers (provider);

-- label is the DNS-label form of name, the system part of a maintenance
-- address; (customer_id, label) is what the router looks a system up by.
-- secret_hash is the argon2 hash of the agent secret.
CREATE TABLE systems (
    id BIGINT NOT NULL PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    label TEXT NOT NULL,
    is_primary BOOLEAN NOT NULL DEFAULT FALSE,
    secret_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (customer_id, label)
);

-- At most one primary system per customer; also the index the router uses
-- for an address without a system part.
CREATE UNIQUE INDEX systems_one_primary ON systems (customer_id) WHERE is_primary;

-- COM users. The admin plane adds the rest of the manual's user settings
-- (labels, expiry, session timeout, password history, ...) in later versions.
CREATE TABLE users (
    id BIGINT NOT NULL PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('administrator', 'supervisor', 'operator', 'support', 'read-only')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
