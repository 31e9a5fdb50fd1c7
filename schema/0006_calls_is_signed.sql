-- 0006_calls_is_signed.sql -- whether an observed call's `_sig` verified.
-- The calls stream is written by the team's own log shippers and accepts
-- unsigned entries unless --calls-hmac-key-file is given (issue 9 item 7);
-- access-log lines (import-calls, --calls-log) are never signed. Calls
-- indexed before this migration did not record it and read as unsigned.
ALTER TABLE calls ADD COLUMN is_signed INTEGER NOT NULL DEFAULT 0;
