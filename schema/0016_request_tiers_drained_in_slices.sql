-- 0016_request_tiers_drained_in_slices.sql -- the request-id index in five
-- tiers, each full one drained into the next a slice per commit (issue 11).
--
-- A full tier used to move into the next one inside one commit. The last
-- tier holds most of the history, so moving tier 1's million pairs into it
-- rewrote about every page of it: each million events, a commit that took
-- longer the longer auditwatch had run (2.3 s at 10 million events; at a
-- billion, ~20 GB of pages read and written while no entry is
-- acknowledged and Caracal's MAXLEN trimming runs on). Now each tier
-- receives at most sixteen times what the one before it holds (tier t
-- holds first_limit * 16^t pairs before it moves: 65,536, 1,048,576,
-- 16,777,216, 268,435,456; the fifth is unbounded). Tier 0 still moves
-- whole, into a tier 1 that is bounded now; a later full tier is drained
-- into the next one in key order, a slice per commit of four times the
-- pairs that commit added, until its drain cursor has passed every pair
-- (store/request_tiers.c). So each commit writes a bounded share of each
-- tier's pages, however old the index. At every commit each pair is in
-- exactly one tier, and a look-up seeks all five.
--
-- meta keeps what the writer needs across commits and restarts, rather
-- than counting large tiers again: request_tier_rows_N (pairs in tier N),
-- request_tier_cursor_key_N and _rowid_N (the drain cursor: the pairs of
-- tier N above it, in (request_key, event_rowid) order, are still to move;
-- at the top of the key space when tier N is not draining), and
-- request_tier_first_limit.
CREATE TABLE request_tier_3 (
    request_key INTEGER NOT NULL,
    event_rowid INTEGER NOT NULL,
    PRIMARY KEY (request_key, event_rowid)
) WITHOUT ROWID;
CREATE TABLE request_tier_4 (
    request_key INTEGER NOT NULL,
    event_rowid INTEGER NOT NULL,
    PRIMARY KEY (request_key, event_rowid)
) WITHOUT ROWID;
INSERT OR REPLACE INTO meta(key, value) VALUES
    ('request_tier_first_limit', 65536),
    ('request_tier_rows_0', (SELECT count(*) FROM request_tier_0)),
    ('request_tier_rows_1', (SELECT count(*) FROM request_tier_1)),
    ('request_tier_rows_2', (SELECT count(*) FROM request_tier_2)),
    ('request_tier_rows_3', 0),
    ('request_tier_cursor_key_0', 9223372036854775807),
    ('request_tier_cursor_rowid_0', 9223372036854775807),
    ('request_tier_cursor_key_1', 9223372036854775807),
    ('request_tier_cursor_rowid_1', 9223372036854775807),
    ('request_tier_cursor_key_2', 9223372036854775807),
    ('request_tier_cursor_rowid_2', 9223372036854775807),
    ('request_tier_cursor_key_3', 9223372036854775807),
    ('request_tier_cursor_rowid_3', 9223372036854775807);
