-- 0007_identity_by_time.sql -- the identity index keyed by time first
-- (issue 11).
--
-- An event's identity is (event id, occurred_at); every new event is
-- looked up by it before it is stored. Keyed by a hash of the event id
-- first, each insert and look-up landed on a random page of an index
-- that grows with the whole history (26 bytes per event), so once it
-- outgrew the page cache most of them read a page back and dirtied it for
-- the next commit. Keyed by occurred_at first, events arrive in roughly
-- the order of their time and the pages being written are the last few.
-- Every query on the identity names its occurred_at, so the same
-- look-ups use it; the bytes per event are the same.
DROP INDEX events_by_identity;
CREATE INDEX events_by_identity ON events (occurred_at, id_key);
