/* fuzz_raw_entry.c -- libFuzzer target for the raw-entry msgpack reader
 * (aw_raw_entry_unpack, event/raw_entry.c), which reads stored entries and
 * bundle bodies.
 *
 * Input: the bytes of a packed entry, possibly followed by more. A refusal
 * must carry a reason; an accepted entry must have used no more bytes than
 * it was given, and must survive aw_raw_entry_pack and a second unpack
 * unchanged, byte for byte (stream, id, parsed id, every field). The
 * canonical form the stream signature covers is computed too, since
 * verification walks every accepted entry, and an entry of one of Caracal's
 * default stream names goes through that stream's decoder (as replay and
 * verify re-decode stored entries): here field values may hold any byte,
 * NUL included, which the NUL-separated inputs of the other targets cannot.
 */
#include "tests/fuzz/fuzz_support.h"

#include <string.h>

static bool same_bytes(aw_bytes a, aw_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static void expect_same(const aw_raw_entry *a, const aw_raw_entry *b)
{
    if (!same_bytes(a->stream, b->stream) || !same_bytes(a->id, b->id) ||
        a->id_ms != b->id_ms || a->id_seq != b->id_seq ||
        a->nfields != b->nfields)
        fuzz_fail("entry changed through pack and unpack");
    for (size_t i = 0; i < a->nfields; i++)
        if (!same_bytes(a->fields[i].name, b->fields[i].name) ||
            !same_bytes(a->fields[i].value, b->fields[i].value))
            fuzz_fail("field %zu changed through pack and unpack", i);
}

/* The decoder of the entry's stream, when its name is a default one. */
static void decode_by_stream(const aw_raw_entry *entry)
{
    int role = -1;
    for (int r = 0; r < AW_ROLE_COUNT && role < 0; r++)
        if (strcmp(entry->stream.ptr, aw_stream_role_default_stream(r)) == 0)
            role = r;
    aw_error err;
    int rc;
    if (role == AW_ROLE_AUDIT) {
        aw_audit_event *event = NULL;
        rc = aw_event_decode_audit(entry, NULL, &event, &err);
        aw_audit_event_free(event);
    } else if (role == AW_ROLE_CALLS) {
        aw_observed_call *call = NULL;
        rc = aw_event_decode_call_entry(entry, NULL, &call, &err);
        aw_observed_call_free(call);
    } else if (role >= 0 && aw_stream_role_dead_letter_origin(role) >= 0) {
        /* a dead letter: read back, as the consumer does, into the
         * original of its origin stream */
        int origin = aw_stream_role_dead_letter_origin(role);
        const char *origin_stream = aw_stream_role_default_stream(origin);
        aw_dead_letter *letter = NULL;
        rc = origin == AW_ROLE_AUDIT
                 ? aw_dead_letter_decode_audit(entry, origin_stream, &letter,
                                               &err)
                 : aw_dead_letter_decode_revocation(entry, origin_stream, NULL,
                                                    &letter, &err);
        aw_dead_letter_free(letter);
    } else if (role >= 0) {
        aw_revocation_set *set = NULL;
        rc = aw_event_decode_revocation(role, entry, NULL, &set, &err);
        aw_revocation_set_free(set);
    } else {
        return;
    }
    if (rc != AW_OK)
        fuzz_expect_rejection(entry->stream.ptr, rc, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    aw_raw_entry *entry = NULL;
    size_t used = 0;
    aw_error err;
    int rc = aw_raw_entry_unpack((const char *)data, size, &entry, &used, &err);
    if (rc != AW_OK) {
        fuzz_expect_rejection("aw_raw_entry_unpack", rc, &err);
        return 0;
    }
    if (used == 0 || used > size)
        fuzz_fail("used %zu of %zu bytes", used, size);
    if (entry->stream.ptr[entry->stream.len] != '\0' ||
        entry->id.ptr[entry->id.len] != '\0')
        fuzz_fail("stream or id not NUL-terminated");

    aw_buf packed = {0};
    if (aw_raw_entry_pack(entry, &packed, &err) != AW_OK)
        fuzz_fail("cannot pack an unpacked entry: %s", err.msg);
    aw_raw_entry *again = NULL;
    size_t used_again = 0;
    if (aw_raw_entry_unpack(packed.ptr, packed.len, &again, &used_again,
                            &err) != AW_OK)
        fuzz_fail("cannot unpack what pack wrote: %s", err.msg);
    if (used_again != packed.len)
        fuzz_fail("second unpack used %zu of %zu bytes", used_again,
                  packed.len);
    expect_same(entry, again);

    aw_buf canonical = {0};
    if (aw_stream_canonical(entry, &canonical, &err) != AW_OK)
        fuzz_fail("no canonical form: %s", err.msg);
    aw_buf_free(&canonical);
    decode_by_stream(entry);
    aw_raw_entry_free(again);
    aw_buf_free(&packed);
    aw_raw_entry_free(entry);
    return 0;
}
