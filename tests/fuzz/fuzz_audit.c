/* fuzz_audit.c -- libFuzzer target for audit decoding
 * (aw_event_decode_audit, event/audit.c).
 *
 * Input: an entry of caracal.audit.events in the format of fuzz_support.h
 * (control byte, then NUL-separated id, name, value, ...); the control byte
 * picks unsigned, harness-signed (`sig` over `data` with the test key) or
 * as-given signatures. A refusal must carry a reason; an accepted event
 * must hold what the header promises: the required strings, valid UTF-8
 * everywhere, each anchor once, the SHA-256 of the raw data, and is_signed
 * exactly when a key verified it.
 */
#include "tests/fuzz/fuzz_support.h"

#include <string.h>

static void expect_event(const aw_audit_event *e, const aw_raw_entry *entry,
                         bool keyed)
{
    fuzz_expect_text("id", e->id, true);
    fuzz_expect_text("zone_id", e->zone_id, true);
    const char *optional[] = {
        e->event_type,
        e->request_id,
        e->decision,
        e->policy_set_id,
        e->policy_set_version_id,
        e->manifest_sha,
        e->evaluation_status,
        e->application_id,
        e->resource,
        e->method,
        e->subject_kind,
        e->result_class,
        e->error_kind,
        e->trace_id,
    };
    for (size_t i = 0; i < sizeof optional / sizeof *optional; i++)
        fuzz_expect_text("optional member", optional[i], false);
    if (e->upstream_status < 0 || e->upstream_status > 999 ||
        e->gateway_status < 0 || e->gateway_status > 999)
        fuzz_fail("status outside 0-999");
    if (e->is_signed != keyed)
        fuzz_fail("is_signed %d with%s a key", e->is_signed,
                  keyed ? "" : "out");
    for (size_t i = 0; i < e->nanchors; i++) {
        const aw_anchor *a = &e->anchors[i];
        if (a->kind < AW_ANCHOR_AUTHORITY_RECORD ||
            a->kind > AW_ANCHOR_DELEGATION_EDGE)
            fuzz_fail("anchor %zu of unknown kind %d", i, a->kind);
        fuzz_expect_text("anchor id", a->id, true);
        for (size_t j = 0; j < i; j++)
            if (e->anchors[j].kind == a->kind &&
                strcmp(e->anchors[j].id, a->id) == 0)
                fuzz_fail("anchor %s listed twice", a->id);
    }
    const aw_bytes *data = aw_raw_entry_get(entry, "data");
    unsigned char hash[32];
    aw_sha256(data->ptr, data->len, hash);
    if (memcmp(hash, e->content_hash, 32) != 0)
        fuzz_fail("content_hash is not the SHA-256 of data");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_signing signing;
    aw_raw_entry *entry = fuzz_entry_from_input(
        data, size, "caracal.audit.events", FUZZ_SCHEME_AUDIT, &signing);
    if (entry == NULL)
        return 0;
    aw_hmac_key *key = fuzz_key_for(signing);
    aw_audit_event *event = NULL;
    aw_error err;
    int rc = aw_event_decode_audit(entry, key, &event, &err);
    if (rc == AW_OK)
        expect_event(event, entry, key != NULL);
    else
        fuzz_expect_rejection("aw_event_decode_audit", rc, &err);
    aw_audit_event_free(event);
    aw_raw_entry_free(entry);
    return 0;
}
