-- 0009_events_by_time_dropped.sql -- one index fewer on events (issue 11).
--
-- Since 0007, events_by_identity is keyed (occurred_at, id_key): every
-- query on a time range can walk it as it walked events_by_time, whose
-- key is its first column, so that index only cost an insert and 17 bytes
-- per event. Results keep their (occurred_at, rowid) order: the planner
-- sorts the rows of equal occurred_at, which are few.
DROP INDEX events_by_time;
