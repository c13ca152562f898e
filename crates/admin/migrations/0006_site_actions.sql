-- comgate storage, version 6: the actions customer systems perform (an
-- upgrade, a backup), as their sites report them: the customer list's
-- "in progress", "action completed" and "action failed" icons.
--
-- Portable as version 1 (see its header): plain types, BIGINT unix seconds,
-- ids from id_sequences.

-- One row per run of an action, named by the site (`site_action_id`, the
-- same in each report of that run). A row starts `in_progress` or straight
-- in its final state; once ended it is final. A few ended rows per system
-- are kept as history (the store trims the rest).
CREATE TABLE site_actions (
    id BIGINT NOT NULL PRIMARY KEY,
    system_id BIGINT NOT NULL REFERENCES systems (id) ON DELETE CASCADE,
    site_action_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('in_progress', 'completed', 'failed')),
    detail TEXT,
    started_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    ended_at BIGINT,
    UNIQUE (system_id, site_action_id)
);

INSERT INTO id_sequences (name, last_value) VALUES ('site_actions', 0);
