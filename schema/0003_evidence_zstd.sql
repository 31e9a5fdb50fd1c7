-- 0003_evidence_zstd.sql -- raw entries stored compressed with zstd.
--
-- entries.raw keeps its meaning for every row written before this
-- migration: the verbatim msgpack entry (zstd_dict NULL). Rows written
-- after it may hold a zstd frame instead, flagged per row by zstd_dict:
--   NULL  raw is the verbatim entry (schema 1 rows, and entries that do
--         not get smaller);
--   0     raw is a zstd frame made without a dictionary (the first entries
--         of an index, before there is traffic to train one on);
--   N > 0 raw is a zstd frame made with dictionary N of evidence_dicts.
-- The hash chain still covers the verbatim bytes, so readers decompress
-- before hashing, exporting or replaying, and an edited frame or
-- dictionary shows as an edited row. Adding a column rewrites no row: old
-- rows read NULL. Touches only the entries table and a table of its own,
-- so it commutes with migrations of the decoded tables.
ALTER TABLE entries ADD COLUMN zstd_dict INTEGER;

-- Dictionaries trained on the index's own entries (ZDICT_trainFromBuffer
-- over the newest entries when trained). Never updated or deleted: rows
-- that name one must stay readable. A later dictionary gets the next
-- number and is used for rows written after it. zstd_id is the id zstd
-- writes into the dictionary (for diagnostics); trained_at the last entry
-- row the samples came from.
CREATE TABLE evidence_dicts (
    dict_no    INTEGER PRIMARY KEY,
    zstd_id    INTEGER NOT NULL,
    trained_at INTEGER NOT NULL,
    samples    INTEGER NOT NULL,
    dict       BLOB NOT NULL
);
