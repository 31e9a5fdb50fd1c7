-- 0014_anchor_uses_in_parts.sql -- the anchor index in parts that are
-- written once (issue 11).
--
-- anchor_uses was keyed (anchor_no, occurred_at, event_rowid): an event's
-- two or three uses each landed on the leaf of its anchor, anywhere in an
-- index as large as the history, so once it outgrew the page cache every
-- event cost page reads and dirtied pages that every commit wrote to the
-- WAL and every checkpoint again. A build that stored no uses drained
-- 1.24x as fast. Now the key starts with a part number: the uses go to
-- the newest part until it holds 65,536 (store/anchor_parts.c), then to a
-- new one, so the pages being written stay few and cached, and a part is
-- never written again once closed. anchor_parts says, per part, the
-- occurred_at range of its uses (the open part claims all time), and a
-- look-up by anchor seeks each part whose range meets the one asked.
--
-- Uses are stored with their events, in row order, so a part also holds
-- the uses of the events from its first_rowid to the next part's: a
-- look-up of one event's uses (`verify`) seeks one part. A look-up after a
-- time (a revocation's) finds the parts that reach it by their max_at.
--
-- A use keeps occurred_at less its part's base_at (the first use's
-- occurred_at): nanoseconds from a near time take 4 to 6 bytes instead of
-- 8, which pays for the part number. The uses stored before become part 0,
-- closed, with base_at 0.
CREATE TABLE anchor_parts (
    part_no     INTEGER PRIMARY KEY,
    first_rowid INTEGER NOT NULL UNIQUE, -- grows with part_no
    base_at     INTEGER NOT NULL,
    min_at      INTEGER NOT NULL,
    max_at      INTEGER NOT NULL
);
CREATE INDEX anchor_parts_by_end ON anchor_parts (max_at);
CREATE TABLE anchor_uses_in_parts (
    part_no     INTEGER NOT NULL,
    anchor_no   INTEGER NOT NULL,
    at          INTEGER NOT NULL, -- occurred_at - anchor_parts.base_at
    event_rowid INTEGER NOT NULL,
    PRIMARY KEY (part_no, anchor_no, at, event_rowid)
) WITHOUT ROWID;
INSERT INTO anchor_parts
    SELECT 0, 0, 0, min(occurred_at), max(occurred_at) FROM anchor_uses
    HAVING count(*) > 0;
INSERT INTO anchor_uses_in_parts
    SELECT 0, anchor_no, occurred_at, event_rowid FROM anchor_uses
    ORDER BY anchor_no, occurred_at, event_rowid;
DROP TABLE anchor_uses;
ALTER TABLE anchor_uses_in_parts RENAME TO anchor_uses;
