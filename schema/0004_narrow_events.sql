-- 0004_narrow_events.sql -- decoded events as small integers (issue 11).
--
-- Most text of an events row repeats from row to row: a zone, an event
-- type, a decision, an evaluation status, an application, a resource, a
-- result class, and the session, agent session and delegation edge the
-- event used. Stored as text they were about half of the bytes of a row
-- and of every page write. Now each is a number:
--  - terms numbers the repeated words (zone ids, event types, decisions,
--    evaluation statuses, application ids, resources, result classes):
--    one dictionary for them all, numbered at first sight, never deleted
--    or renumbered, so a number read once stays right (the writer keeps
--    the numbers it used in memory and asks SQLite only for new words);
--  - the first session, agent session and delegation edge of the event
--    are its anchor_names numbers, which every event's anchors already
--    had in anchor_uses.
-- Readers map numbers back to text in their queries, so every row struct
-- carries the same strings as before, and filters on a word compare with
-- its number (a word never seen matches nothing). The identity (event_id,
-- id_key, occurred_at, content_hash) and the request id stay as they
-- were: duplicates, conflicts and request look-ups compare their text.
-- Row ids are kept, so anchor_uses and alerts' evidence still point right.
CREATE TABLE terms (
    term_no INTEGER PRIMARY KEY,
    term    TEXT NOT NULL UNIQUE
);
INSERT OR IGNORE INTO terms(term)
    SELECT v FROM (SELECT zone_id AS v FROM events
                   UNION SELECT event_type FROM events
                   UNION SELECT decision FROM events
                   UNION SELECT evaluation_status FROM events
                   UNION SELECT application_id FROM events
                   UNION SELECT resource FROM events
                   UNION SELECT result_class FROM events)
    WHERE v IS NOT NULL ORDER BY v;

CREATE TABLE events_narrow (
    rowid              INTEGER PRIMARY KEY,
    id_key             INTEGER NOT NULL,
    request_key        INTEGER,
    entry_rowid        INTEGER NOT NULL,
    occurred_at        INTEGER NOT NULL,
    zone_no            INTEGER NOT NULL,  -- terms
    type_no            INTEGER,           -- terms
    decision_no        INTEGER,           -- terms
    status_no          INTEGER,           -- terms: evaluation_status
    application_no     INTEGER,           -- terms
    resource_no        INTEGER,           -- terms
    result_class_no    INTEGER,           -- terms
    session_no         INTEGER,           -- anchor_names (kind 1)
    agent_session_no   INTEGER,           -- anchor_names (kind 2)
    edge_no            INTEGER,           -- anchor_names (kind 3)
    upstream_status    INTEGER,
    is_signed          INTEGER NOT NULL,
    delegation_epoch   INTEGER,
    event_id           TEXT NOT NULL,
    request_id         TEXT,
    content_hash       BLOB NOT NULL
);
INSERT INTO events_narrow
    SELECT e.rowid, e.id_key, e.request_key, e.entry_rowid, e.occurred_at,
           (SELECT term_no FROM terms WHERE term = e.zone_id),
           (SELECT term_no FROM terms WHERE term = e.event_type),
           (SELECT term_no FROM terms WHERE term = e.decision),
           (SELECT term_no FROM terms WHERE term = e.evaluation_status),
           (SELECT term_no FROM terms WHERE term = e.application_id),
           (SELECT term_no FROM terms WHERE term = e.resource),
           (SELECT term_no FROM terms WHERE term = e.result_class),
           (SELECT anchor_no FROM anchor_names
            WHERE kind = 1 AND anchor_id = e.session_id),
           (SELECT anchor_no FROM anchor_names
            WHERE kind = 2 AND anchor_id = e.agent_session_id),
           (SELECT anchor_no FROM anchor_names
            WHERE kind = 3 AND anchor_id = e.delegation_edge_id),
           e.upstream_status, e.is_signed, e.delegation_epoch, e.event_id,
           e.request_id, e.content_hash
    FROM events e ORDER BY e.rowid;
DROP TABLE events;
ALTER TABLE events_narrow RENAME TO events;
CREATE INDEX events_by_identity ON events (id_key, occurred_at);
CREATE INDEX events_by_request ON events (request_key);
CREATE INDEX events_by_time ON events (occurred_at);
