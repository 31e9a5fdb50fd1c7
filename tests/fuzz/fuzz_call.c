/* fuzz_call.c -- libFuzzer target for the observed-call readers
 * (event/call.c): NDJSON lines as import-calls reads them, and flat
 * auditwatch.calls entries.
 *
 * Input: byte 0 is the control byte of fuzz_support.h. Its selector
 * (byte 0 / 3) picks the reader: even, the rest of the input is one NDJSON
 * line, read with the default field names (selector / 2 even) or with
 * mapped ones ("rid", "code", "ts", as --request-id-field and friends set);
 * odd, the whole input is an entry in the NUL-separated format, and byte 0's
 * signing mode applies (`_sig` with the test key). A refusal must carry a
 * reason; an accepted call must have its request id, a status in 0-999 and
 * valid strings.
 */
#include "tests/fuzz/fuzz_support.h"

#define FALLBACK_NS 1716300000123456789LL

static const aw_call_fields mapped = {"rid", "code", "ts"};

static void expect_call(const aw_observed_call *c)
{
    fuzz_expect_text("request_id", c->request_id, true);
    fuzz_expect_text("zone_id", c->zone_id, false);
    fuzz_expect_text("resource", c->resource, false);
    fuzz_expect_text("source", c->source, false);
    if (c->status < 0 || c->status > 999)
        fuzz_fail("status %d outside 0-999", c->status);
}

static void read_line(const uint8_t *data, size_t size, unsigned selector)
{
    const aw_call_fields *names = selector / 2 % 2 ? &mapped : NULL;
    aw_observed_call *call = NULL;
    aw_error err;
    int rc = aw_event_decode_call_json((const char *)data, size, names,
                                       FALLBACK_NS, &call, &err);
    if (rc == AW_OK)
        expect_call(call);
    else
        fuzz_expect_rejection("aw_event_decode_call_json", rc, &err);
    aw_observed_call_free(call);
}

static void read_entry(const uint8_t *data, size_t size)
{
    fuzz_signing signing;
    aw_raw_entry *entry = fuzz_entry_from_input(data, size, "auditwatch.calls",
                                                FUZZ_SCHEME_STREAM, &signing);
    if (entry == NULL)
        return;
    aw_observed_call *call = NULL;
    aw_error err;
    int rc =
        aw_event_decode_call_entry(entry, fuzz_key_for(signing), &call, &err);
    if (rc == AW_OK)
        expect_call(call);
    else
        fuzz_expect_rejection("aw_event_decode_call_entry", rc, &err);
    aw_observed_call_free(call);
    aw_raw_entry_free(entry);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned selector = data[0] / 3;
    if (selector % 2 == 0)
        read_line(data + 1, size - 1, selector);
    else
        read_entry(data, size);
    return 0;
}
