-- 0014_anchor_uses_in_parts.sql -- the anchor index in time parts
-- (issue 11).
--
-- anchor_uses was keyed (anchor_no, occurred_at, event_rowid): an event's
-- uses each landed on the leaf of its anchor, anywhere in an index as
-- large as the history, so once it outgrew the page cache every event
-- cost page reads and dirtied pages that every commit wrote to the WAL and
-- every checkpoint again. Now the key starts with a part number. Part p
-- holds the uses that occurred from its start_at to the next part's; the
-- newest part takes them until it holds 65,536, then a part starting at
-- the next use's time opens (store/anchor_parts.c). New uses go to the
-- newest part, and a late one to an earlier part, recent as a rule, so
-- the pages being written stay few and cached. A look-up by anchor over
-- a time range seeks only the parts that cover it.
--
-- A use keeps occurred_at less its part's base_at (its start, or 0 for a
-- part starting before 1970): nanoseconds from a near time take 4 to 6
-- bytes instead of 8, which pays for the part number. Part 0 starts at
-- the beginning of time and holds the uses stored before; part 1 starts
-- just after the latest of them.
CREATE TABLE anchor_parts (
    part_no  INTEGER PRIMARY KEY,
    start_at INTEGER NOT NULL UNIQUE, -- grows with part_no
    base_at  INTEGER NOT NULL
);
INSERT INTO anchor_parts VALUES (0, -9223372036854775808, 0);
INSERT INTO anchor_parts
    SELECT 1, max(occurred_at) + 1, max(max(occurred_at) + 1, 0)
    FROM anchor_uses
    HAVING count(*) > 0 AND max(occurred_at) < 9223372036854775807;
CREATE TABLE anchor_uses_in_parts (
    part_no     INTEGER NOT NULL,
    anchor_no   INTEGER NOT NULL,
    at          INTEGER NOT NULL, -- occurred_at - anchor_parts.base_at
    event_rowid INTEGER NOT NULL,
    PRIMARY KEY (part_no, anchor_no, at, event_rowid)
) WITHOUT ROWID;
INSERT INTO anchor_uses_in_parts
    SELECT 0, anchor_no, occurred_at, event_rowid FROM anchor_uses
    ORDER BY anchor_no, occurred_at, event_rowid;
DROP TABLE anchor_uses;
ALTER TABLE anchor_uses_in_parts RENAME TO anchor_uses;
