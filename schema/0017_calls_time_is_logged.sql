-- 0017_calls_time_is_logged.sql -- whether an observed call's occurred_at
-- is the time its log line gives, or a stand-in: the line had none, so the
-- time it reached auditwatch stands in (the call happened at or before it).
-- call_without_audit counts an audit event for a call with a logged time
-- only when it occurred at most --audit-lookback before it; a stand-in
-- bounds nothing. Calls indexed before this migration did not record it and
-- read as stand-ins, which keeps their old rule: any earlier event counts.
ALTER TABLE calls ADD COLUMN time_is_logged INTEGER NOT NULL DEFAULT 0;
