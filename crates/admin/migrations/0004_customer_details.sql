-- comgate storage, version 4: the manual's customer account settings,
-- tags, assigned operators, and each system's kind, profile and version.
--
-- Same rules as version 1: this file runs unchanged on SQLite and PostgreSQL,
-- plain types only (TEXT, BIGINT, BOOLEAN), timestamps as BIGINT unix
-- seconds, every NOT NULL spelled out. Columns are added one ALTER TABLE at a
-- time, each with a default (or nullable), so that existing rows stay valid.
-- The store validates every field before writing and names it; the CHECKs
-- are the backstop.

-- "Customer Account Settings". Text fields are '' when not given.
-- service_user is the IP Office service user comgate presents for the
-- customer (the manual's default is COMAdmin; '' here means not set).
-- service_password is that user's password SEALED (AES-256-GCM, see
-- src/seal.rs: 'v1:' + base64), not hashed: comgate must present it. NULL:
-- no password set. The key is a file outside the database.
ALTER TABLE customers ADD COLUMN service_user TEXT NOT NULL DEFAULT '';
ALTER TABLE customers ADD COLUMN service_password TEXT;
ALTER TABLE customers ADD COLUMN phone TEXT NOT NULL DEFAULT '';
ALTER TABLE customers ADD COLUMN email TEXT NOT NULL DEFAULT '';
ALTER TABLE customers ADD COLUMN address TEXT NOT NULL DEFAULT '';
ALTER TABLE customers ADD COLUMN notes TEXT NOT NULL DEFAULT '';

-- Tags: up to 5 per customer (the store enforces the count), each trimmed
-- and non-empty.
CREATE TABLE customer_tags (
    customer_id TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    tag TEXT NOT NULL CHECK (tag <> ''),
    PRIMARY KEY (customer_id, tag)
);

-- The dashboard's tag panel looks customers up by tag.
CREATE INDEX customer_tags_tag ON customer_tags (tag);

-- "Assigned Operators": users manually assigned to a customer. (Users are
-- also assigned automatically when one of their labels is the customer's
-- reseller or provider; that is computed, not stored.)
CREATE TABLE customer_assignments (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    customer_id TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, customer_id)
);

-- Who is assigned to a customer (the primary key serves by user).
CREATE INDEX customer_assignments_customer ON customer_assignments (customer_id);

-- The manual's system types: the primary server, secondary servers and
-- expansion systems of a Server Edition network. kind = 'primary' exactly
-- when is_primary (the router's column). The column is nullable only
-- because SQLite checks an added column's CHECK against existing rows
-- before the UPDATE below can fill them; the store always writes it, and
-- reads a NULL (a row written without it) from is_primary.
ALTER TABLE systems ADD COLUMN kind TEXT
    CHECK (kind IN ('primary', 'secondary', 'expansion') AND (kind = 'primary') = is_primary);
UPDATE systems SET kind = CASE WHEN is_primary THEN 'primary' ELSE 'secondary' END;

-- "Profile" (IP500 V2, Server Edition, ACCS, ...) and the software version
-- of the system as reported or entered; '' when unknown.
ALTER TABLE systems ADD COLUMN profile TEXT NOT NULL DEFAULT '';
ALTER TABLE systems ADD COLUMN version TEXT NOT NULL DEFAULT '';
