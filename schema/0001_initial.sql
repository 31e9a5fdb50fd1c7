-- 0001_initial.sql -- the first schema of the auditwatch index.
--
-- Shaped for ingest speed: every index below is paid for on every insert,
-- so there are few of them and their keys are narrow. Random-keyed indexes
-- (event ids, request ids, anchor ids) are the expensive ones: each insert
-- dirties a leaf page somewhere in the tree. Time-ordered keys (entry ids,
-- occurred_at) append at the right edge and are nearly free.
--
-- Times are INTEGER nanoseconds since the Unix epoch, UTC; stream entry ids
-- are kept as their two integers (ms, seq).

-- Stream names, so that entries carry a small integer instead of a name.
CREATE TABLE streams (
    stream_no INTEGER PRIMARY KEY,
    name      TEXT NOT NULL UNIQUE
);

-- Every raw stream entry, verbatim (msgpack), in ingest order. rowid is the
-- ingest sequence, assigned contiguously from 1 so that a deleted row leaves
-- a visible gap; chain = SHA-256(previous chain || stream || 0x00 ||
-- entry id || 0x00 || raw). orig_size is NULL unless the entry was too
-- large and stored with its values truncated (then it is the packed size
-- of the original). The unique key leads with id_ms: it serves both the
-- redelivery check and time-window scans, and appends at the right edge.
CREATE TABLE entries (
    rowid     INTEGER PRIMARY KEY,
    stream_no INTEGER NOT NULL,
    id_ms     INTEGER NOT NULL,
    id_seq    INTEGER NOT NULL,
    chain     BLOB NOT NULL,
    orig_size INTEGER,
    raw       BLOB NOT NULL
);
CREATE UNIQUE INDEX entries_by_id ON entries (id_ms, id_seq, stream_no);

-- The chain's tip as of the last commit that added entries: lets `verify`
-- notice a deleted last row, and lets a writer continue the chain from the
-- truth rather than from whatever row happens to be last.
CREATE TABLE chain_tip (
    one       INTEGER PRIMARY KEY CHECK (one = 1),
    last_rowid INTEGER NOT NULL,
    head      BLOB NOT NULL
);
INSERT INTO chain_tip VALUES (1, 0, zeroblob(32));

-- Decoded audit events. Event and request ids are random (UUIDs), so
-- their indexes are the costly ones: they are kept on id_key/request_key,
-- the first 8 bytes of the id's SHA-256 as an integer, which makes those
-- indexes a third of the size of indexes on the text (more of them stays
-- cached, each insert dirties fewer bytes). Look-ups compare the text too,
-- so a collision costs a row read, never a wrong answer. The first anchor
-- of each kind is copied into the row for display; anchor_uses below is
-- what anchor look-ups use.
CREATE TABLE events (
    rowid              INTEGER PRIMARY KEY,
    id_key             INTEGER NOT NULL,
    request_key        INTEGER,
    event_id           TEXT NOT NULL,
    content_hash       BLOB NOT NULL,
    entry_rowid        INTEGER NOT NULL,
    occurred_at        INTEGER NOT NULL,
    request_id         TEXT,
    zone_id            TEXT NOT NULL,
    event_type         TEXT,
    decision           TEXT,
    evaluation_status  TEXT,
    application_id     TEXT,
    resource           TEXT,
    session_id         TEXT,
    agent_session_id   TEXT,
    delegation_edge_id TEXT,
    result_class       TEXT,
    upstream_status    INTEGER,
    is_signed          INTEGER NOT NULL
);
CREATE INDEX events_by_event_id ON events (id_key);
CREATE INDEX events_by_request ON events (request_key);
CREATE INDEX events_by_time ON events (occurred_at);

-- Every anchor an event names (session, agent session, delegation edge,
-- chain elements). Names are numbered in order of first sight, and uses are
-- keyed by that number: the anchors in use now are the recently numbered
-- ones, so their uses all land near the right edge of anchor_uses instead
-- of on a random page each (keying uses by the anchor's text made them the
-- costliest index at a million events), and the key is three integers.
-- "Which events used anchor X after time T" is one seek into anchor_names
-- and one range scan of anchor_uses.
CREATE TABLE anchor_names (
    anchor_no INTEGER PRIMARY KEY,
    kind      INTEGER NOT NULL,
    anchor_id TEXT NOT NULL,
    UNIQUE (kind, anchor_id)
);
CREATE TABLE anchor_uses (
    anchor_no   INTEGER NOT NULL,
    occurred_at INTEGER NOT NULL,
    event_rowid INTEGER NOT NULL,
    PRIMARY KEY (anchor_no, occurred_at, event_rowid)
) WITHOUT ROWID;

CREATE TABLE revocations (
    rowid       INTEGER PRIMARY KEY,
    entry_rowid INTEGER NOT NULL,
    zone_id     TEXT NOT NULL,
    kind        INTEGER NOT NULL,
    anchor_id   TEXT NOT NULL,
    action      INTEGER NOT NULL,
    at_ns       INTEGER NOT NULL,
    reason      TEXT
);
CREATE INDEX revocations_by_anchor ON revocations (kind, anchor_id, at_ns);
CREATE INDEX revocations_by_time ON revocations (at_ns);

-- Calls observed outside Caracal (DESIGN 2.3).
CREATE TABLE calls (
    rowid       INTEGER PRIMARY KEY,
    entry_rowid INTEGER NOT NULL,
    request_id  TEXT NOT NULL,
    status      INTEGER NOT NULL,
    occurred_at INTEGER NOT NULL,
    zone_id     TEXT,
    resource    TEXT,
    source      TEXT
);
CREATE INDEX calls_by_request ON calls (request_id);
CREATE INDEX calls_by_time ON calls (occurred_at);

-- Entries that could not be indexed; reason is aw_reject_reason_name().
CREATE TABLE rejected (
    rowid       INTEGER PRIMARY KEY,
    entry_rowid INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    detail      TEXT
);

-- severity: 1 medium, 2 high, 3 critical; state: 1 open, 2 resolved.
CREATE TABLE alerts (
    id             TEXT PRIMARY KEY,
    kind           TEXT NOT NULL,
    severity       INTEGER NOT NULL,
    state          INTEGER NOT NULL,
    zone_id        TEXT,
    request_id     TEXT,
    anchor         TEXT,
    event_time     INTEGER NOT NULL,
    raised_at      INTEGER NOT NULL,
    resolved_at    INTEGER NOT NULL DEFAULT 0,
    resolved_by    TEXT,
    late_ns        INTEGER NOT NULL DEFAULT 0,
    evidence_json  TEXT NOT NULL,
    summary        TEXT,
    acked_at       INTEGER NOT NULL DEFAULT 0,
    ack_note       TEXT
) WITHOUT ROWID;
CREATE INDEX alerts_by_raised ON alerts (raised_at);
CREATE INDEX alerts_by_request ON alerts (request_id);

CREATE TABLE checkpoints (
    stream     TEXT PRIMARY KEY,
    entry_id   TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE pending (
    deadline INTEGER NOT NULL,
    kind     INTEGER NOT NULL,
    ref      INTEGER NOT NULL,
    PRIMARY KEY (deadline, kind, ref)
) WITHOUT ROWID;

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
