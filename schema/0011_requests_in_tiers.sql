-- 0011_requests_in_tiers.sql -- the request-id index in three tiers
-- (issue 11).
--
-- events_by_request was keyed by a hash of the request id, so each new
-- event dirtied a random leaf of an index as large as the history: at a
-- million events it was two thirds of the pages every commit wrote to the
-- WAL (and the checkpoint wrote again), and the share grew with the index.
-- Now (request_key, event_rowid) pairs go to request_tier_0, which stays
-- small enough to be cached; once it holds 65,536 pairs they are moved, in
-- key order, into request_tier_1, and once that holds 1,048,576 into
-- request_tier_2 (store/request_tiers.c). A move writes each page of the
-- tier it goes to about once, instead of one page per event. A look-up by
-- request id seeks all three tiers.
--
-- events.request_key is left NULL in rows written from now on (the tiers
-- hold it); older rows keep theirs, which is what fills tier 2 here.
CREATE TABLE request_tier_0 (
    request_key INTEGER NOT NULL,
    event_rowid INTEGER NOT NULL,
    PRIMARY KEY (request_key, event_rowid)
) WITHOUT ROWID;
CREATE TABLE request_tier_1 (
    request_key INTEGER NOT NULL,
    event_rowid INTEGER NOT NULL,
    PRIMARY KEY (request_key, event_rowid)
) WITHOUT ROWID;
CREATE TABLE request_tier_2 (
    request_key INTEGER NOT NULL,
    event_rowid INTEGER NOT NULL,
    PRIMARY KEY (request_key, event_rowid)
) WITHOUT ROWID;
INSERT INTO request_tier_2
    SELECT request_key, rowid FROM events WHERE request_key IS NOT NULL
    ORDER BY 1, 2;
DROP INDEX events_by_request;
