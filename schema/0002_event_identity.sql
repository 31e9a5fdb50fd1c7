-- 0002_event_identity.sql -- what Caracal's real traffic needs (DESIGN §2.4).
--
-- Event identity is (id, occurred_at), as in Caracal's own ledger
-- (services/audit/internal/pg.go: ON CONFLICT (id, occurred_at)):
-- control.invoke events take the client's request id as their id, so one
-- id names several events at different times. The same id and occurred_at
-- with other content is tampering; the same id at another time is another
-- event. The id look-up index therefore leads with the id key and then the
-- time, so "this id at this time" is one seek and "every event with this
-- id" stays a range. Existing rows keep their meaning: every stored event
-- already has both.
DROP INDEX events_by_event_id;
CREATE INDEX events_by_identity ON events (id_key, occurred_at);

-- delegation_graph_epoch of a token_exchange (NULL when it used no
-- delegation): the delegation-epoch rule compares it with the epoch an
-- edge was revoked at, with no clock involved.
ALTER TABLE events ADD COLUMN delegation_epoch INTEGER;

-- Revocations. delivery_id is the outbox delivery's identity (dedupe_key,
-- else outbox_id; NULL when the producer writes neither): Caracal's outboxes
-- deliver at least once, and every delivery of one revocation shares it.
-- at_ns of every row of one delivery_id (same stream and zone) is the
-- earliest delivery's time, kept so when a later copy arrives and moved
-- back when an earlier one is read after a later one. epoch is the graph
-- epoch a caracal.delegations.invalidate entry was made at (NULL
-- elsewhere). action 2 (suspend) is also what a caracal.sessions.revoke
-- entry means for the agent session it names: Caracal writes one for each
-- suspended session, and a later lifecycle resume ends it; the authority
-- record the entry names stays revoked for good.
ALTER TABLE revocations ADD COLUMN delivery_id TEXT;
ALTER TABLE revocations ADD COLUMN epoch INTEGER;
CREATE INDEX revocations_by_delivery ON revocations (delivery_id)
    WHERE delivery_id IS NOT NULL;
