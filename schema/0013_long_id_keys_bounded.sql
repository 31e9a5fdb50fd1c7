-- 0013_long_id_keys_bounded.sql -- the event identity look-up in one probe
-- (issue 11).
--
-- Rows written before schema 12 keep the long id_key, later ones the short
-- one (0012). The look-up tried both with `id_key IN (short, long)`, which
-- SQLite runs through a temporary B-tree of its own, opened and closed on
-- every call: a sixth of the daemon's time in it went there. It now probes
-- the short key, and the long one only for an event that occurred no later
-- than the newest event this index held when it reached this version: an
-- event of a long-keyed row has that row's occurred_at, so a later one can
-- have none. Traffic that follows the upgrade needs one probe.
--
-- An index without events has no long-keyed rows and gets no value.
INSERT OR REPLACE INTO meta(key, value)
SELECT 'long_id_keys_until', max(occurred_at) FROM events
HAVING count(*) > 0;
