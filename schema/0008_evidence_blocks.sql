-- 0008_evidence_blocks.sql -- raw entries compressed per block of
-- consecutive rows (issue 11).
--
-- One entry is too small for zstd to find much in it even with a
-- dictionary, and each entries row paid for its own frame, its own
-- 32-byte chain value and the B-tree cell around both. Entries written
-- from now on keep their entries row (row number, stream, id: what every
-- look-up and join uses) with raw and chain empty (zero-length blobs),
-- and their verbatim bytes live in the block that covers their row: up
-- to 64 consecutive rows, or fewer once the block holds 128 KiB.
--
--   frame  one zstd frame (made with dictionary zstd_dict of
--          evidence_dicts, 0 none) of the block's entries, verbatim and
--          concatenated, followed by each one's size as 4 bytes
--          little-endian, in row order;
--   chain  the hash chain's value after last_rowid. The chain itself is
--          unchanged (it covers every row's verbatim bytes, see chain.c);
--          it is stored once per block instead of once per row, so an
--          edit is located to its block, and a chain value inside a block
--          is recomputed from the one before the block.
--
-- A writer keeps its last block open across commits and rewrites its row
-- with each commit until it is full, so every committed entry is in a
-- block. Rows written before this migration keep raw and chain (verbatim
-- or a per-row frame, see 0003); readers tell the two kinds apart by the
-- empty raw, which no stored entry has. Touches only a table of its own,
-- so old indexes migrate without rewriting a row.
CREATE TABLE evidence_blocks (
    first_rowid INTEGER PRIMARY KEY,
    last_rowid  INTEGER NOT NULL,
    zstd_dict   INTEGER NOT NULL,
    chain       BLOB NOT NULL,
    frame       BLOB NOT NULL
);
