/* fuzz_revocation.c -- libFuzzer target for revocation decoding
 * (aw_event_decode_revocation, event/revocation.c), all three streams.
 *
 * Input: an entry in the format of fuzz_support.h; the control byte's
 * selector (byte 0 / 3, modulo 3) picks caracal.sessions.revoke,
 * caracal.agents.lifecycle or caracal.delegations.invalidate, and its
 * signing mode unsigned, harness-signed (`_sig` over the canonical form
 * with the test key) or as given. A refusal must carry a reason; an
 * accepted set must name at least one anchor (unless its event is spawn or
 * edge_create, ordinary traffic), each once with a non-empty id and a known
 * action, in the zone, at the entry id's time.
 */
#include "tests/fuzz/fuzz_support.h"

#include <string.h>

static const struct {
    aw_stream_role role;
    const char *stream;
} streams[] = {
    {AW_ROLE_SESSION_REVOKE, "caracal.sessions.revoke"},
    {AW_ROLE_AGENT_LIFECYCLE, "caracal.agents.lifecycle"},
    {AW_ROLE_DELEGATION_INVALIDATE, "caracal.delegations.invalidate"},
};

static void expect_set(const aw_revocation_set *set, const aw_raw_entry *entry,
                       bool keyed)
{
    fuzz_expect_text("zone_id", set->zone_id, true);
    fuzz_expect_text("reason", set->reason, false);
    if (set->is_signed != keyed)
        fuzz_fail("is_signed %d with%s a key", set->is_signed,
                  keyed ? "" : "out");
    if ((uint64_t)set->at_ns != entry->id_ms * 1000000)
        fuzz_fail("at_ns is not the entry id's time");
    /* only ordinary traffic (spawn, edge_create) may name nothing */
    const aw_bytes *event = aw_raw_entry_get(entry, "event");
    bool names_nothing_revoked =
        event != NULL && (strcmp(event->ptr, "spawn") == 0 ||
                          strcmp(event->ptr, "edge_create") == 0);
    if (set->n == 0 && !names_nothing_revoked)
        fuzz_fail("accepted a revocation of nothing");
    for (size_t i = 0; i < set->n; i++) {
        const aw_revocation *r = &set->items[i];
        if (r->action < AW_ACTION_REVOKE || r->action > AW_ACTION_RESUME)
            fuzz_fail("item %zu has unknown action %d", i, r->action);
        if (r->anchor.kind < AW_ANCHOR_AUTHORITY_RECORD ||
            r->anchor.kind > AW_ANCHOR_DELEGATION_EDGE)
            fuzz_fail("item %zu has unknown anchor kind %d", i, r->anchor.kind);
        fuzz_expect_text("anchor id", r->anchor.id, true);
        for (size_t j = 0; j < i; j++)
            if (set->items[j].anchor.kind == r->anchor.kind &&
                strcmp(set->items[j].anchor.id, r->anchor.id) == 0)
                fuzz_fail("anchor %s listed twice", r->anchor.id);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_signing signing;
    unsigned which = size ? data[0] / 3 % 3 : 0;
    aw_raw_entry *entry = fuzz_entry_from_input(
        data, size, streams[which].stream, FUZZ_SCHEME_STREAM, &signing);
    if (entry == NULL)
        return 0;
    aw_hmac_key *key = fuzz_key_for(signing);
    aw_revocation_set *set = NULL;
    aw_error err;
    int rc =
        aw_event_decode_revocation(streams[which].role, entry, key, &set, &err);
    if (rc == AW_OK)
        expect_set(set, entry, key != NULL);
    else
        fuzz_expect_rejection("aw_event_decode_revocation", rc, &err);
    aw_revocation_set_free(set);
    aw_raw_entry_free(entry);
    return 0;
}
