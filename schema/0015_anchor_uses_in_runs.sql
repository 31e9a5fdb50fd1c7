-- 0015_anchor_uses_in_runs.sql -- the anchor index in runs: one row per
-- anchor and batch, not one per use (issue 11).
--
-- anchor_uses held a row per use, two or three per audit event, each a
-- B-tree insert of its own: a build that stored none drained 1.18x as
-- fast. But anchors repeat (a session makes many calls), and a batch of
-- 4,000 entries of the benchmark's traffic names ~590 anchors in ~7,200
-- uses. So the writer keeps a transaction's uses in memory and writes
-- them, by anchor, as runs (store/anchor_index.c): before it commits,
-- before a look-up by anchor in the same transaction, and before a part
-- closes. A run lists the rows of the events that used its anchor as a
-- JSON array of offsets from first_rowid, so a look-up reads it with
-- SQLite's own json_each; at most 512 of them, so that `verify`, which
-- seeks one event in one run, never reads a long one.
--
-- Runs are kept in the parts of schema 14, so the pages being written
-- stay few. A run's time range (min_at, max_at: occurred_at of its
-- events, whole nanoseconds) lets a look-up after a time skip it, and its
-- row range (first_rowid, last_rowid) lets a look-up of one event read
-- one run. The runs of one anchor in one part never overlap in rows.
-- anchor_parts.base_at is no longer needed by anything (uses kept times
-- less it); parts keep it as the occurred_at of their first use.
CREATE TABLE anchor_runs (
    part_no     INTEGER NOT NULL,
    anchor_no   INTEGER NOT NULL,
    first_rowid INTEGER NOT NULL,
    last_rowid  INTEGER NOT NULL,
    min_at      INTEGER NOT NULL,
    max_at      INTEGER NOT NULL,
    event_rows  TEXT NOT NULL, -- JSON array: event rowid - first_rowid
    PRIMARY KEY (part_no, anchor_no, first_rowid)
) WITHOUT ROWID;
WITH uses AS (
    SELECT u.part_no, u.anchor_no, u.event_rowid,
           p.base_at + u.at AS occurred_at,
           (row_number() OVER (PARTITION BY u.part_no, u.anchor_no
                               ORDER BY u.event_rowid) - 1) / 512 AS run
    FROM anchor_uses u JOIN anchor_parts p ON p.part_no = u.part_no
), firsts AS (
    SELECT part_no, anchor_no, run, min(event_rowid) AS first_rowid
    FROM uses GROUP BY part_no, anchor_no, run
)
INSERT INTO anchor_runs
    SELECT u.part_no, u.anchor_no, f.first_rowid, max(u.event_rowid),
           min(u.occurred_at), max(u.occurred_at),
           json_group_array(u.event_rowid - f.first_rowid)
    FROM uses u JOIN firsts f ON f.part_no = u.part_no AND
         f.anchor_no = u.anchor_no AND f.run = u.run
    GROUP BY u.part_no, u.anchor_no, u.run;
DROP TABLE anchor_uses;
