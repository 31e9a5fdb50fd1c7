-- 0018_rejected_by_entry.sql -- whether an entry stored before was
-- rejected, answered without a scan: a file imported again, or a batch
-- delivered again, tells "already rejected" from "already indexed".
CREATE INDEX IF NOT EXISTS rejected_by_entry ON rejected (entry_rowid);
