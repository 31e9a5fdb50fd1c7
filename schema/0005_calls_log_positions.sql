-- 0005_calls_log_positions.sql -- where `run --calls-log PATH` is in each
-- access log it follows, written in the same transaction as the calls it
-- read, so a restart neither skips nor repeats a line.
--
-- inode is the file being read (a new inode at PATH is a create-mode
-- rotation); offset the bytes consumed, always just after a '\n'; lines
-- the lines read from PATH over all its files, the sequence of the next
-- entry id (so ids stay unique across rotations and truncations).
CREATE TABLE calls_log_positions (
    path       TEXT PRIMARY KEY,
    inode      INTEGER NOT NULL,
    offset     INTEGER NOT NULL,
    lines      INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
