/* test_event_decode.c -- what the decoders make of crafted entries: audit
 * events (caracal.audit.events), revocations (the three revocation streams)
 * and observed calls (stream entries and NDJSON lines). Every way an entry
 * can be refused is exercised with the reason a user would see in the
 * rejected table, and every accepted form with the values the detectors
 * rely on. */
#include "event/event.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(str) ((aw_bytes){(str), strlen(str)})
/* Literal bytes, which may include NUL. */
#define B(lit)         ((aw_bytes){(lit), sizeof(lit) - 1})
#define F(name, value) ((aw_field){S(name), S(value)})

static const char key_hex[] =
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

static aw_raw_entry *entry_of(const char *stream, const char *id,
                              const aw_field *fields, size_t n)
{
    aw_raw_entry *e = NULL;
    aw_error err;
    cr_assert_eq(aw_raw_entry_new(S(stream), S(id), fields, n, &e, &err), AW_OK,
                 "%s", err.msg);
    return e;
}
#define ENTRY(stream, id, ...)                                                 \
    entry_of(stream, id, (aw_field[]){__VA_ARGS__},                            \
             sizeof((aw_field[]){__VA_ARGS__}) / sizeof(aw_field))

static aw_hmac_key *test_key(void)
{
    aw_hmac_key *key = NULL;
    aw_error err;
    cr_assert_eq(aw_hmac_key_from_hex(key_hex, strlen(key_hex), &key, &err),
                 AW_OK);
    return key;
}

static void expect_reject(int rc, const aw_error *err, aw_reject_reason want,
                          const char *what)
{
    cr_assert_eq(rc, AW_ERR_INVALID, "%s: accepted (rc %d)", what, rc);
    cr_assert_eq(err->reason, want, "%s: got %s (%s), want %s", what,
                 aw_reject_reason_name(err->reason), err->msg,
                 aw_reject_reason_name(want));
}

/* ---- Audit events -------------------------------------------------------- */

#define AUDIT_STREAM "caracal.audit.events"

/* A minimal valid data object, with `extra` members spliced in. */
static char *data_with(const char *extra)
{
    static const char base[] = "{\"id\":\"evt-1\",\"zone_id\":\"zone-1\","
                               "\"occurred_at\":\"2026-05-21T12:00:00Z\"";
    size_t len = strlen(base) + strlen(extra) + 3;
    char *s = malloc(len);
    snprintf(s, len, "%s%s%s}", base, extra[0] ? "," : "", extra);
    return s;
}

static int decode_audit_fields(const aw_field *fields, size_t n,
                               aw_hmac_key *key, aw_audit_event **ev,
                               aw_error *err)
{
    aw_raw_entry *e = entry_of(AUDIT_STREAM, "1779364800000-0", fields, n);
    *ev = (aw_audit_event *)1;
    int rc = aw_event_decode_audit(e, key, ev, err);
    if (rc != AW_OK)
        cr_expect_null(*ev, "output left set on failure");
    aw_raw_entry_free(e);
    return rc;
}

static int decode_data_n(const char *data, size_t len, aw_audit_event **ev,
                         aw_error *err)
{
    aw_field f[] = {{S("data"), {data, len}}};
    return decode_audit_fields(f, 1, NULL, ev, err);
}

static int decode_data(const char *data, aw_audit_event **ev, aw_error *err)
{
    return decode_data_n(data, strlen(data), ev, err);
}

static aw_audit_event *decode_ok(const char *data)
{
    aw_audit_event *ev;
    aw_error err;
    cr_assert_eq(decode_data(data, &ev, &err), AW_OK, "%s: %s", data, err.msg);
    return ev;
}

static void expect_data_rejected(const char *data, aw_reject_reason want)
{
    aw_audit_event *ev;
    aw_error err = {0};
    expect_reject(decode_data(data, &ev, &err), &err, want, data);
}

static void expect_extra_rejected(const char *extra, aw_reject_reason want)
{
    char *data = data_with(extra);
    expect_data_rejected(data, want);
    free(data);
}

Test(event_decode, audit_reads_gateway_request_facts)
{
    char *data = data_with(
        "\"event_type\":\"gateway_resource_request\",\"request_id\":\"r-9\","
        "\"decision\":\"allow\",\"evaluation_status\":\"executed\","
        "\"metadata_json\":{\"application_id\":\"app-1\",\"resource\":\"res\","
        "\"method\":\"POST\",\"gateway_status\":502,\"upstream_status\":\"503\","
        "\"result_class\":\"server_error\",\"error_kind\":\"upstream\","
        "\"latency_ms\":12.5,\"revocation_interrupted\":true}");
    aw_audit_event *ev = decode_ok(data);
    cr_expect_str_eq(ev->event_type, "gateway_resource_request");
    cr_expect_str_eq(ev->request_id, "r-9");
    cr_expect_str_eq(ev->evaluation_status, "executed");
    cr_expect_str_eq(ev->application_id, "app-1");
    cr_expect_str_eq(ev->method, "POST");
    cr_expect_str_eq(ev->result_class, "server_error");
    cr_expect_str_eq(ev->error_kind, "upstream");
    cr_expect_eq(ev->gateway_status, 502);
    cr_expect_eq(ev->upstream_status, 503);
    cr_expect(ev->revocation_interrupted);
    cr_expect_null(ev->subject_kind);
    aw_audit_event_free(ev);
    free(data);
}

Test(event_decode, audit_keys_on_data_id_not_the_stream_field_id)
{
    char *data = data_with("");
    aw_field f[] = {F("id", "req-77"), F("data", data), F("outbox_id", "o-1"),
                    F("_sig", "not-checked-with-the-audit-key")};
    aw_audit_event *ev;
    aw_error err;
    cr_assert_eq(decode_audit_fields(f, 4, NULL, &ev, &err), AW_OK, "%s",
                 err.msg);
    cr_expect_str_eq(ev->id, "evt-1");
    cr_expect_str_eq(ev->zone_id, "zone-1");
    aw_audit_event_free(ev);
    free(data);
}

Test(event_decode, audit_lists_anchors_in_order_once_each)
{
    char *data = data_with(
        "\"metadata_json\":{\"session_id\":\"ar-1\",\"agent_session_id\":\"as-1\","
        "\"delegation_edge_id\":\"de-1\",\"delegation_chain\":["
        "{\"application_id\":\"app\",\"agent_session_id\":\"as-1\","
        "\"delegation_edge_id\":\"de-1\"},"
        "{\"agent_session_id\":\"as-2\",\"delegation_edge_id\":\"de-2\"},"
        "{\"agent_session_id\":\"de-2\",\"delegation_edge_id\":null},"
        "{\"agent_session_id\":\"\"}]}");
    aw_audit_event *ev = decode_ok(data);
    const aw_anchor want[] = {
        {AW_ANCHOR_AUTHORITY_RECORD, "ar-1"}, {AW_ANCHOR_AGENT_SESSION, "as-1"},
        {AW_ANCHOR_DELEGATION_EDGE, "de-1"},  {AW_ANCHOR_AGENT_SESSION, "as-2"},
        {AW_ANCHOR_DELEGATION_EDGE, "de-2"},  {AW_ANCHOR_AGENT_SESSION, "de-2"},
    };
    cr_assert_eq(ev->nanchors, 6);
    for (size_t i = 0; i < 6; i++) {
        cr_expect_eq(ev->anchors[i].kind, want[i].kind, "anchor %zu", i);
        cr_expect_str_eq(ev->anchors[i].id, want[i].id, "anchor %zu", i);
    }
    aw_audit_event_free(ev);
    free(data);
}

Test(event_decode, audit_treats_null_as_absent)
{
    char *data = data_with(
        "\"request_id\":null,\"determining_policies_json\":null,"
        "\"diagnostics_json\":null,\"metadata_json\":{\"upstream_status\":null,"
        "\"session_id\":null,\"delegation_chain\":null,"
        "\"revocation_interrupted\":null},\"future_field\":{\"x\":[1]}");
    aw_audit_event *ev = decode_ok(data);
    cr_expect_null(ev->request_id);
    cr_expect_eq(ev->upstream_status, 0);
    cr_expect_eq(ev->nanchors, 0);
    cr_expect_null(ev->anchors);
    cr_expect(!ev->revocation_interrupted);
    aw_audit_event_free(ev);
    free(data);

    data = data_with("\"metadata_json\":null");
    ev = decode_ok(data);
    cr_expect_null(ev->resource);
    aw_audit_event_free(ev);
    free(data);
}

Test(event_decode, audit_reads_escaped_names_and_strings_as_their_text)
{
    /* keys are matched as decoded text, strings decoded, however spelled */
    char *data = data_with(
        "\"\\u0072equest_id\":\"r\\u00e9q\\/1\\n\",\"decision\":\"allow\","
        "\"metadata_json\":{\"session_\\u0069d\":\"s\\\"1\\\\\","
        "\"resource\":\"\\ud83d\\ude00\",\"delegation_chain\":[{\"x\":"
        "\"}]{\\\"\"},{\"agent_session_id\":\"as-\\u00321\"}]}");
    aw_audit_event *ev = decode_ok(data);
    cr_expect_str_eq(ev->request_id, "r\xc3\xa9q/1\n");
    cr_expect_str_eq(ev->decision, "allow");
    cr_expect_str_eq(ev->resource, "\xf0\x9f\x98\x80");
    cr_assert_eq(ev->nanchors, 2);
    cr_expect_str_eq(ev->anchors[0].id, "s\"1\\");
    cr_expect_str_eq(ev->anchors[1].id, "as-21");
    aw_audit_event_free(ev);
    free(data);
}

Test(event_decode, audit_hashes_the_raw_data_bytes)
{
    char *data = data_with("");
    aw_audit_event *ev = decode_ok(data);
    unsigned char hash[32];
    aw_sha256(data, strlen(data), hash);
    cr_expect_eq(memcmp(ev->content_hash, hash, 32), 0);
    aw_audit_event_free(ev);
    free(data);
}

/* The index keys ids by the first 8 bytes of their SHA-256; the decoder
 * computes them so that the index writer does not have to. A wrong digest
 * would make every request look-up miss. */
Test(event_decode, audit_carries_the_digests_the_index_keys_ids_by)
{
    char *data = data_with("\"request_id\":\"r-9\"");
    aw_audit_event *ev = decode_ok(data);
    cr_expect(ev->has_id_digests);
    cr_expect_eq(ev->id_digest, UINT64_C(0x7b409f932d2c88e9));
    cr_expect_eq(ev->request_digest, UINT64_C(0xfe9d1562ec41b61e));
    cr_expect_eq(aw_id_digest("r-9"), UINT64_C(0xfe9d1562ec41b61e));
    aw_audit_event_free(ev);
    free(data);

    data = data_with("");
    ev = decode_ok(data);
    cr_expect_eq(ev->id_digest, UINT64_C(0x7b409f932d2c88e9));
    cr_expect_eq(ev->request_digest, 0, "no request id, no digest");
    aw_audit_event_free(ev);
    free(data);
}

/* aw_hash64 keys the detectors' filters and the store's name caches: a
 * byte or a length it ignored would make distinct keys collide every
 * time, turning a filter's "certainly not" into look-ups. */
Test(event_decode, hash64_sees_every_byte_and_the_length)
{
    static const char text[] = "0123456789abcdefghij";
    uint64_t whole = aw_hash64(0, text, 20);
    cr_expect_neq(whole, aw_hash64(1, text, 20), "the seed counts");
    char copy[21];
    for (size_t i = 0; i < 20; i++) {
        memcpy(copy, text, sizeof copy);
        copy[i] ^= 1;
        cr_expect_neq(aw_hash64(0, copy, 20), whole, "byte %zu ignored", i);
    }
    static const char zeros[9] = {0};
    for (size_t len = 0; len < 9; len++)
        cr_expect_neq(aw_hash64(0, zeros, len), aw_hash64(0, zeros, len + 1),
                      "%zu and %zu NULs collide", len, len + 1);
}

Test(event_decode, audit_reads_every_occurred_at_form)
{
    static const struct {
        const char *text;
        int64_t ns;
    } forms[] = {
        {"2026-05-21T12:00:00Z", 1779364800000000000LL},
        {"2026-05-21T12:00:00.123Z", 1779364800123000000LL},
        {"2026-05-21T14:00:00.123456789+02:00", 1779364800123456789LL},
        {"2026-05-21T05:00:00.123456-07:00", 1779364800123456000LL},
        {"2026-05-21T17:30:00+05:30", 1779364800000000000LL},
        {"2026-05-21t12:00:00z", 1779364800000000000LL},
    };
    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
        char data[256];
        snprintf(data, sizeof data,
                 "{\"id\":\"e\",\"zone_id\":\"z\",\"occurred_at\":\"%s\"}",
                 forms[i].text);
        aw_audit_event *ev = decode_ok(data);
        cr_expect_eq(ev->occurred_at_ns, forms[i].ns, "%s", forms[i].text);
        aw_audit_event_free(ev);
    }
}

Test(event_decode, audit_rejects_a_bad_occurred_at_naming_the_field)
{
    aw_audit_event *ev;
    aw_error err;
    int rc = decode_data("{\"id\":\"e\",\"zone_id\":\"z\","
                         "\"occurred_at\":\"2026-05-21T12:00:00\"}",
                         &ev, &err);
    expect_reject(rc, &err, AW_REJECT_BAD_TIME, "no offset");
    cr_expect(strstr(err.msg, "data.occurred_at") != NULL, "%s", err.msg);
}

Test(event_decode, audit_rejects_data_that_is_not_json)
{
    expect_data_rejected("", AW_REJECT_NOT_JSON);
    expect_data_rejected("id=evt-1", AW_REJECT_NOT_JSON);
    expect_data_rejected("{\"id\":\"evt-1\",\"zone_id\":\"z\"", /* truncated */
                         AW_REJECT_NOT_JSON);
}

Test(event_decode, audit_rejects_data_that_is_not_an_object)
{
    expect_data_rejected("[{\"id\":\"e\"}]", AW_REJECT_NOT_OBJECT);
    expect_data_rejected("\"{}\"", AW_REJECT_NOT_OBJECT);
    expect_data_rejected("null", AW_REJECT_NOT_OBJECT);
}

Test(event_decode, rejects_duplicate_keys_in_signed_payload)
{
    expect_data_rejected("{\"id\":\"e\",\"zone_id\":\"z\",\"zone_id\":\"y\","
                         "\"occurred_at\":\"2026-05-21T12:00:00Z\"}",
                         AW_REJECT_DUPLICATE_KEY);
    expect_extra_rejected("\"metadata_json\":{\"session_id\":\"a\","
                          "\"session_id\":\"b\"}",
                          AW_REJECT_DUPLICATE_KEY);
    expect_extra_rejected("\"decision\":\"deny\",\"\\u0064ecision\":\"allow\"",
                          AW_REJECT_DUPLICATE_KEY);
}

Test(event_decode, audit_rejects_a_repeated_data_field)
{
    char *data = data_with("");
    aw_field f[] = {F("data", data), F("data", data)};
    aw_audit_event *ev;
    aw_error err;
    expect_reject(decode_audit_fields(f, 2, NULL, &ev, &err), &err,
                  AW_REJECT_DUPLICATE_KEY, "two data fields");
    free(data);
}

Test(event_decode, audit_rejects_invalid_utf8)
{
    expect_extra_rejected("\"request_id\":\"\xc0\xaf\"", /* overlong '/' */
                          AW_REJECT_INVALID_UTF8);
    expect_extra_rejected("\"request_id\":\"\xed\xa0\x80\"", /* surrogate */
                          AW_REJECT_INVALID_UTF8);
    expect_extra_rejected("\"request_id\":\"\\udead\"", AW_REJECT_INVALID_UTF8);
}

Test(event_decode, audit_rejects_embedded_nul)
{
    static const char raw_nul[] = "{\"id\":\"e\0vil\",\"zone_id\":\"z\","
                                  "\"occurred_at\":\"2026-05-21T12:00:00Z\"}";
    aw_audit_event *ev;
    aw_error err;
    expect_reject(decode_data_n(raw_nul, sizeof raw_nul - 1, &ev, &err), &err,
                  AW_REJECT_EMBEDDED_NUL, "raw NUL in data");
    expect_extra_rejected("\"request_id\":\"r\\u0000x\"",
                          AW_REJECT_EMBEDDED_NUL);
}

Test(event_decode, audit_rejects_missing_required_fields)
{
    expect_data_rejected("{\"zone_id\":\"z\","
                         "\"occurred_at\":\"2026-05-21T12:00:00Z\"}",
                         AW_REJECT_MISSING_FIELD);
    expect_data_rejected("{\"id\":\"e\",\"zone_id\":null,"
                         "\"occurred_at\":\"2026-05-21T12:00:00Z\"}",
                         AW_REJECT_MISSING_FIELD);
    expect_data_rejected("{\"id\":\"\",\"zone_id\":\"z\","
                         "\"occurred_at\":\"2026-05-21T12:00:00Z\"}",
                         AW_REJECT_MISSING_FIELD);
    expect_data_rejected("{\"id\":\"e\",\"zone_id\":\"z\"}",
                         AW_REJECT_MISSING_FIELD);

    aw_field f[] = {F("id", "evt-1"), F("sig", "00")};
    aw_audit_event *ev;
    aw_error err;
    expect_reject(decode_audit_fields(f, 2, NULL, &ev, &err), &err,
                  AW_REJECT_MISSING_FIELD, "no data field");
}

Test(event_decode, audit_rejects_known_keys_of_the_wrong_type)
{
    expect_data_rejected("{\"id\":17,\"zone_id\":\"z\","
                         "\"occurred_at\":\"2026-05-21T12:00:00Z\"}",
                         AW_REJECT_WRONG_TYPE);
    expect_data_rejected("{\"id\":\"e\",\"zone_id\":\"z\","
                         "\"occurred_at\":1779364800}",
                         AW_REJECT_WRONG_TYPE);
    expect_extra_rejected("\"metadata_json\":\"{}\"", AW_REJECT_WRONG_TYPE);
    expect_extra_rejected("\"determining_policies_json\":{}",
                          AW_REJECT_WRONG_TYPE);
    expect_extra_rejected("\"diagnostics_json\":\"none\"",
                          AW_REJECT_WRONG_TYPE);
    /* Caracal's Python AuditClient writes {} for no diagnostics */
    char *python = data_with("\"diagnostics_json\":{}");
    aw_audit_event_free(decode_ok(python));
    free(python);
    expect_extra_rejected("\"metadata_json\":{\"gateway_status\":true}",
                          AW_REJECT_WRONG_TYPE);
    expect_extra_rejected("\"metadata_json\":{\"revocation_interrupted\":1}",
                          AW_REJECT_WRONG_TYPE);
    expect_extra_rejected("\"metadata_json\":{\"session_id\":[\"a\"]}",
                          AW_REJECT_WRONG_TYPE);
    expect_extra_rejected("\"metadata_json\":{\"delegation_chain\":{}}",
                          AW_REJECT_WRONG_TYPE);
    expect_extra_rejected("\"metadata_json\":{\"delegation_chain\":[\"as-1\"]}",
                          AW_REJECT_WRONG_TYPE);
}

Test(event_decode, audit_names_the_field_of_the_wrong_type)
{
    char *data = data_with("\"metadata_json\":{\"delegation_chain\":["
                           "{\"agent_session_id\":\"a\"},"
                           "{\"delegation_edge_id\":5}]}");
    aw_audit_event *ev;
    aw_error err;
    decode_data(data, &ev, &err);
    cr_expect(strstr(err.msg, "delegation_chain[1]") != NULL, "%s", err.msg);
    cr_expect(strstr(err.msg, "delegation_edge_id") != NULL, "%s", err.msg);
    free(data);
}

Test(event_decode, audit_status_must_be_a_whole_number_in_range)
{
    expect_extra_rejected("\"metadata_json\":{\"upstream_status\":200.5}",
                          AW_REJECT_BAD_VALUE);
    expect_extra_rejected("\"metadata_json\":{\"upstream_status\":1000}",
                          AW_REJECT_BAD_VALUE);
    expect_extra_rejected("\"metadata_json\":{\"upstream_status\":-1}",
                          AW_REJECT_BAD_VALUE);
    expect_extra_rejected("\"metadata_json\":{\"upstream_status\":\"2xx\"}",
                          AW_REJECT_BAD_VALUE);
}

static char *repeated(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

Test(event_decode, audit_bounds_ids_and_data_size)
{
    char *id = repeated('i', AW_MAX_ID_BYTES + 1);
    char extra[AW_MAX_ID_BYTES + 64];
    snprintf(extra, sizeof extra, "\"request_id\":\"%s\"", id);
    expect_extra_rejected(extra, AW_REJECT_OVERSIZED);
    id[AW_MAX_ID_BYTES] = '\0'; /* exactly at the bound */
    snprintf(extra, sizeof extra, "\"request_id\":\"%s\"", id);
    char *data = data_with(extra);
    aw_audit_event_free(decode_ok(data));
    free(data);
    free(id);

    /* what only describes an event may be longer than an id: the Gateway's
     * resource is the client's X-Caracal-Resource header */
    char *resource = repeated('r', AW_MAX_TEXT_BYTES);
    char *long_extra = malloc(strlen(resource) + 64);
    sprintf(long_extra, "\"metadata_json\":{\"resource\":\"%s\"}", resource);
    data = data_with(long_extra);
    aw_audit_event *ev = decode_ok(data);
    cr_expect_eq(strlen(ev->resource), AW_MAX_TEXT_BYTES);
    aw_audit_event_free(ev);
    free(data);
    free(long_extra);
    free(resource);
    resource = repeated('r', AW_MAX_TEXT_BYTES + 1); /* one byte over */
    long_extra = malloc(strlen(resource) + 64);
    sprintf(long_extra, "\"metadata_json\":{\"resource\":\"%s\"}", resource);
    expect_extra_rejected(long_extra, AW_REJECT_OVERSIZED);
    free(long_extra);
    free(resource);

    /* data may exceed the bound of other fields, up to its own */
    char *pad = repeated('p', AW_MAX_VALUE_BYTES * 2);
    char *big_extra = malloc(strlen(pad) + 16);
    sprintf(big_extra, "\"pad\":\"%s\"", pad);
    data = data_with(big_extra);
    aw_audit_event_free(decode_ok(data));
    free(data);
    free(pad);
    free(big_extra);

    pad = repeated('p', AW_MAX_DATA_BYTES);
    big_extra = malloc(strlen(pad) + 16);
    sprintf(big_extra, "\"pad\":\"%s\"", pad);
    expect_extra_rejected(big_extra, AW_REJECT_OVERSIZED);
    free(pad);
    free(big_extra);
}

Test(event_decode, audit_bounds_other_fields_and_their_number)
{
    char *data = data_with("");
    char *big = repeated('x', AW_MAX_VALUE_BYTES + 1);
    aw_field f[AW_MAX_FIELDS + 1];
    aw_audit_event *ev;
    aw_error err;
    f[0] = F("data", data);
    f[1] = F("outbox_id", big);
    expect_reject(decode_audit_fields(f, 2, NULL, &ev, &err), &err,
                  AW_REJECT_OVERSIZED, "oversized outbox_id");

    for (size_t i = 1; i <= AW_MAX_FIELDS; i++)
        f[i] = F("filler", "x");
    cr_expect_eq(decode_audit_fields(f, AW_MAX_FIELDS, NULL, &ev, &err), AW_OK,
                 "%s", err.msg);
    aw_audit_event_free(ev);
    expect_reject(decode_audit_fields(f, AW_MAX_FIELDS + 1, NULL, &ev, &err),
                  &err, AW_REJECT_OVERSIZED, "too many fields");
    free(big);
    free(data);
}

Test(event_decode, audit_bounds_the_delegation_chain)
{
    size_t cap = (AW_MAX_CHAIN + 1) * 40 + 64;
    char *extra = malloc(cap);
    size_t o = (size_t)snprintf(extra, cap,
                                "\"metadata_json\":{\"delegation_chain\":[");
    for (int i = 0; i <= AW_MAX_CHAIN; i++)
        o += (size_t)snprintf(extra + o, cap - o,
                              "%s{\"agent_session_id\":\"as-%d\"}",
                              i ? "," : "", i);
    snprintf(extra + o, cap - o, "]}");
    expect_extra_rejected(extra, AW_REJECT_OVERSIZED);
    free(extra);
}

static char *sign_hex(aw_hmac_key *key, const char *data, char hex[65])
{
    unsigned char mac[32];
    cr_assert_eq(aw_hmac_compute(key, data, strlen(data), mac), AW_OK);
    return aw_hex(mac, 32, hex);
}

Test(event_decode, audit_signature_is_required_and_checked_under_a_key)
{
    aw_hmac_key *key = test_key();
    char *data = data_with("");
    char sig[65];
    sign_hex(key, data, sig);
    aw_audit_event *ev;
    aw_error err;

    aw_field good[] = {F("data", data), F("sig", sig)};
    cr_assert_eq(decode_audit_fields(good, 2, key, &ev, &err), AW_OK, "%s",
                 err.msg);
    cr_expect(ev->is_signed);
    aw_audit_event_free(ev);

    aw_field unsigned_entry[] = {F("data", data)};
    expect_reject(decode_audit_fields(unsigned_entry, 1, key, &ev, &err), &err,
                  AW_REJECT_SIGNATURE_MISSING, "no sig");

    sig[10] = sig[10] == '0' ? '1' : '0';
    expect_reject(decode_audit_fields(good, 2, key, &ev, &err), &err,
                  AW_REJECT_SIGNATURE_INVALID, "altered sig");
    aw_hmac_key_free(key);
    free(data);
}

Test(event_decode, audit_checks_the_signature_before_parsing)
{
    /* a forged entry is a signature failure, whatever its content */
    aw_hmac_key *key = test_key();
    aw_field f[] = {F("data", "{\"id\":1,\"id\":2"), F("sig", "00")};
    aw_audit_event *ev;
    aw_error err;
    expect_reject(decode_audit_fields(f, 2, key, &ev, &err), &err,
                  AW_REJECT_SIGNATURE_INVALID, "forged, malformed data");
    aw_hmac_key_free(key);
}

Test(event_decode, audit_ignores_an_unverifiable_sig_without_a_key)
{
    char *data = data_with("");
    aw_field f[] = {F("data", data), F("sig", "garbage")};
    aw_audit_event *ev;
    aw_error err;
    cr_assert_eq(decode_audit_fields(f, 2, NULL, &ev, &err), AW_OK, "%s",
                 err.msg);
    cr_expect(!ev->is_signed);
    aw_audit_event_free(ev);
    free(data);
}

/* ---- Revocations ---------------------------------------------------------- */

static int decode_revocation(aw_stream_role role, const aw_raw_entry *e,
                             aw_hmac_key *key, aw_revocation_set **set,
                             aw_error *err)
{
    *set = (aw_revocation_set *)1;
    int rc = aw_event_decode_revocation(role, e, key, set, err);
    if (rc != AW_OK)
        cr_expect_null(*set, "output left set on failure");
    return rc;
}

static aw_revocation_set *revocation_ok(aw_stream_role role, aw_raw_entry *e)
{
    aw_revocation_set *set;
    aw_error err;
    cr_assert_eq(decode_revocation(role, e, NULL, &set, &err), AW_OK, "%s",
                 err.msg);
    aw_raw_entry_free(e);
    return set;
}

static void expect_revocation_rejected(aw_stream_role role, aw_raw_entry *e,
                                       aw_reject_reason want, const char *what)
{
    aw_revocation_set *set;
    aw_error err = {0};
    expect_reject(decode_revocation(role, e, NULL, &set, &err), &err, want,
                  what);
    aw_raw_entry_free(e);
}

static void expect_item(const aw_revocation_set *set, size_t i,
                        aw_anchor_kind kind, const char *id,
                        aw_revocation_action action)
{
    cr_assert_lt(i, set->n);
    cr_expect_eq(set->items[i].anchor.kind, kind, "item %zu", i);
    cr_expect_str_eq(set->items[i].anchor.id, id, "item %zu", i);
    cr_expect_eq(set->items[i].action, action, "item %zu", i);
}

#define SESSIONS    "caracal.sessions.revoke"
#define LIFECYCLE   "caracal.agents.lifecycle"
#define DELEGATIONS "caracal.delegations.invalidate"

Test(event_decode, session_revoke_names_every_anchor_at_the_entry_time)
{
    aw_revocation_set *set = revocation_ok(
        AW_ROLE_SESSION_REVOKE,
        ENTRY(SESSIONS, "1779364805123-7", F("zone_id", "zone-1"),
              F("session_id", "ar-1"), F("agent_session_id", "as-1"),
              F("delegation_edge_id", "de-1"), F("sid", "s"),
              F("root_sid", "r"), F("reason", "grant_revoked"),
              F("dedupe_key", "k")));
    cr_expect_str_eq(set->zone_id, "zone-1");
    cr_expect_str_eq(set->reason, "grant_revoked");
    cr_expect_eq(set->at_ns, 1779364805123000000LL);
    cr_expect_str_eq(set->delivery_id, "k");
    cr_assert_eq(set->n, 3);
    expect_item(set, 0, AW_ANCHOR_AUTHORITY_RECORD, "ar-1", AW_ACTION_REVOKE);
    /* Caracal writes this entry for a suspend too: a resume ends it */
    expect_item(set, 1, AW_ANCHOR_AGENT_SESSION, "as-1", AW_ACTION_SUSPEND);
    expect_item(set, 2, AW_ANCHOR_DELEGATION_EDGE, "de-1", AW_ACTION_REVOKE);
    aw_revocation_set_free(set);
}

Test(event_decode, a_lifecycle_outbox_key_names_the_time_of_its_change)
{
    int64_t ns = 0;
    cr_assert(
        aw_delivery_occurrence("suspend:as-1:2026-05-21T12:00:00.250Z", &ns));
    cr_expect_eq(ns, 1779364800250000000LL);
    cr_expect(aw_delivery_occurrence(
        "agent_suspend:as:1:2026-05-21T12:00:00.000Z", &ns));
    cr_expect(
        aw_delivery_occurrence("resume:as-1:2026-05-21T12:00:00.000Z", &ns));
    cr_expect_not(aw_delivery_occurrence("terminate:as-1", &ns));
    cr_expect_not(
        aw_delivery_occurrence("edge_revoke:2026-05-21T12:00:00.000Z", &ns),
        "not a repeatable change");
    cr_expect_not(
        aw_delivery_occurrence("suspend:as-1:2026-05-21T12:00:00Z", &ns),
        "not the coordinator's form");
    cr_expect_not(
        aw_delivery_occurrence("suspend:as-1:2026-13-21T12:00:00.000Z", &ns));
    cr_expect_not(aw_delivery_occurrence(NULL, &ns));
}

Test(event_decode, session_revoke_takes_edge_id_for_delegation_edge_id)
{
    aw_revocation_set *set =
        revocation_ok(AW_ROLE_SESSION_REVOKE,
                      ENTRY(SESSIONS, "5-0", F("zone_id", "z"),
                            F("edge_id", "de-9"), F("outbox_id", "ob-1")));
    cr_expect_str_eq(set->delivery_id, "ob-1");
    cr_assert_eq(set->n, 1);
    expect_item(set, 0, AW_ANCHOR_DELEGATION_EDGE, "de-9", AW_ACTION_REVOKE);
    aw_revocation_set_free(set);
    set = revocation_ok(AW_ROLE_SESSION_REVOKE,
                        ENTRY(SESSIONS, "5-0", F("zone_id", "z"),
                              F("delegation_edge_id", "de-1"),
                              F("edge_id", "de-9")));
    cr_assert_eq(set->n, 1);
    expect_item(set, 0, AW_ANCHOR_DELEGATION_EDGE, "de-1", AW_ACTION_REVOKE);
    aw_revocation_set_free(set);
}

Test(event_decode, spawn_and_edge_create_are_ordinary_traffic)
{
    aw_revocation_set *set = revocation_ok(
        AW_ROLE_AGENT_LIFECYCLE,
        ENTRY(LIFECYCLE, "5-0", F("event", "spawn"), F("zone_id", "z"),
              F("agent_session_id", "a"), F("parent_id", "null"),
              F("application_id", "app")));
    cr_expect_eq(set->n, 0);
    aw_revocation_set_free(set);
    set = revocation_ok(AW_ROLE_DELEGATION_INVALIDATE,
                        ENTRY(DELEGATIONS, "5-0", F("event", "edge_create"),
                              F("zone_id", "z"), F("edge_id", "de-1"),
                              F("source_session_id", "a"),
                              F("target_session_id", "b"), F("epoch", "4")));
    cr_expect_eq(set->n, 0);
    aw_revocation_set_free(set);
}

Test(event_decode, edge_expire_names_every_edge_of_edge_ids)
{
    aw_revocation_set *set = revocation_ok(
        AW_ROLE_DELEGATION_INVALIDATE,
        ENTRY(DELEGATIONS, "5-0", F("event", "edge_expire"), F("zone_id", "z"),
              F("edge_ids", "[\"de-1\",\"de-2\"]"), F("affected_edges", "2"),
              F("epoch", "12")));
    cr_assert_eq(set->n, 2);
    expect_item(set, 0, AW_ANCHOR_DELEGATION_EDGE, "de-1", AW_ACTION_REVOKE);
    expect_item(set, 1, AW_ANCHOR_DELEGATION_EDGE, "de-2", AW_ACTION_REVOKE);
    cr_expect(set->has_epoch);
    cr_expect_eq(set->epoch, 12);
    aw_revocation_set_free(set);
}

/* Caracal's retention cleaner expires RETENTION_CLEANUP_BATCH_SIZE (500)
 * edges per zone at a time: their UUIDs are ~20 KB of edge_ids, more than
 * any other field may hold. */
Test(event_decode, edge_expire_of_a_full_retention_batch_names_every_edge)
{
    enum { EDGES = 500 };
    char *ids = malloc(EDGES * 40 + 3), *p = ids;
    *p++ = '[';
    for (int i = 0; i < EDGES; i++)
        p += sprintf(p, "%s\"%08d-0000-4000-8000-000000000000\"", i ? "," : "",
                     i);
    strcpy(p, "]");
    cr_assert_gt(strlen(ids), AW_MAX_VALUE_BYTES);
    aw_revocation_set *set = revocation_ok(
        AW_ROLE_DELEGATION_INVALIDATE,
        ENTRY(DELEGATIONS, "5-0", F("event", "edge_expire"), F("zone_id", "z"),
              F("affected_edges", "500"), F("edge_ids", ids), F("epoch", "9")));
    cr_assert_eq(set->n, EDGES);
    expect_item(set, EDGES - 1, AW_ANCHOR_DELEGATION_EDGE,
                "00000499-0000-4000-8000-000000000000", AW_ACTION_REVOKE);
    aw_revocation_set_free(set);
    /* the bound still holds for every other field */
    expect_revocation_rejected(
        AW_ROLE_DELEGATION_INVALIDATE,
        ENTRY(DELEGATIONS, "5-0", F("event", "edge_expire"), F("zone_id", "z"),
              F("edge_ids", "[\"de-1\"]"), F("reason", ids)),
        AW_REJECT_OVERSIZED, "a reason of 20 KB");
    free(ids);
}

/* Found by tests/fuzz/fuzz_revocation: an edge_expire without edge_ids was
 * accepted as a revocation of nothing. */
Test(event_decode, edge_expire_naming_no_edge_is_missing_field)
{
    expect_revocation_rejected(
        AW_ROLE_DELEGATION_INVALIDATE,
        ENTRY(DELEGATIONS, "170-0", F("event", "edge_expire"),
              F("zone_id", "on"), F("affected_edges", "2")),
        AW_REJECT_MISSING_FIELD, "edge_expire without edge_ids");
    expect_revocation_rejected(
        AW_ROLE_DELEGATION_INVALIDATE,
        ENTRY(DELEGATIONS, "170-0", F("event", "edge_expire"),
              F("zone_id", "on"), F("edge_ids", "[]")),
        AW_REJECT_MISSING_FIELD, "edge_expire with an empty edge_ids");
}

Test(event_decode, edge_revoke_reads_a_count_of_affected_edges_as_no_edge)
{
    aw_revocation_set *set = revocation_ok(
        AW_ROLE_DELEGATION_INVALIDATE,
        ENTRY(DELEGATIONS, "5-0", F("event", "edge_revoke"), F("zone_id", "z"),
              F("edge_id", "de-1"), F("affected_edges", "3"), F("epoch", "7")));
    cr_assert_eq(set->n, 1);
    expect_item(set, 0, AW_ANCHOR_DELEGATION_EDGE, "de-1", AW_ACTION_REVOKE);
    cr_expect_eq(set->epoch, 7);
    aw_revocation_set_free(set);
    expect_revocation_rejected(
        AW_ROLE_DELEGATION_INVALIDATE,
        ENTRY(DELEGATIONS, "5-0", F("event", "edge_revoke"), F("zone_id", "z"),
              F("edge_id", "de-1"), F("epoch", "seven")),
        AW_REJECT_BAD_VALUE, "epoch");
}

Test(event_decode, session_revoke_may_carry_only_an_edge)
{
    aw_revocation_set *set = revocation_ok(
        AW_ROLE_SESSION_REVOKE,
        ENTRY(SESSIONS, "5-0", F("zone_id", "z"),
              F("delegation_edge_id", "de-9"), F("session_id", "")));
    cr_assert_eq(set->n, 1);
    cr_expect_null(set->reason);
    expect_item(set, 0, AW_ANCHOR_DELEGATION_EDGE, "de-9", AW_ACTION_REVOKE);
    aw_revocation_set_free(set);
}

Test(event_decode, revocation_of_nothing_or_without_zone_is_refused)
{
    expect_revocation_rejected(
        AW_ROLE_SESSION_REVOKE,
        ENTRY(SESSIONS, "5-0", F("zone_id", "z"), F("reason", "r")),
        AW_REJECT_MISSING_FIELD, "no anchor");
    expect_revocation_rejected(AW_ROLE_SESSION_REVOKE,
                               ENTRY(SESSIONS, "5-0", F("session_id", "ar")),
                               AW_REJECT_MISSING_FIELD, "no zone");
    expect_revocation_rejected(
        AW_ROLE_AGENT_LIFECYCLE,
        ENTRY(LIFECYCLE, "5-0", F("zone_id", "z"), F("event", "terminate")),
        AW_REJECT_MISSING_FIELD, "no agent session");
}

Test(event_decode, revocation_flat_fields_must_be_clean_text)
{
    aw_field nul[] = {{S("zone_id"), B("zo\0ne")}, F("session_id", "a")};
    expect_revocation_rejected(AW_ROLE_SESSION_REVOKE,
                               entry_of(SESSIONS, "5-0", nul, 2),
                               AW_REJECT_EMBEDDED_NUL, "NUL in zone_id");
    aw_field bad_utf8[] = {F("zone_id", "z"),
                           {S("session_id"), B("ar-\xc0\xaf")}};
    expect_revocation_rejected(AW_ROLE_SESSION_REVOKE,
                               entry_of(SESSIONS, "5-0", bad_utf8, 2),
                               AW_REJECT_INVALID_UTF8, "overlong in session");
    expect_revocation_rejected(AW_ROLE_SESSION_REVOKE,
                               ENTRY(SESSIONS, "5-0", F("zone_id", "z"),
                                     F("session_id", "a"), F("zone_id", "y")),
                               AW_REJECT_DUPLICATE_KEY, "two zones");
}

Test(event_decode, revocation_bounds_field_sizes_and_count)
{
    char *long_id = repeated('a', AW_MAX_ID_BYTES + 1);
    expect_revocation_rejected(
        AW_ROLE_SESSION_REVOKE,
        ENTRY(SESSIONS, "5-0", F("zone_id", "z"), F("session_id", long_id)),
        AW_REJECT_OVERSIZED, "long session id");
    free(long_id);
    char *huge = repeated('a', AW_MAX_VALUE_BYTES + 1);
    expect_revocation_rejected(AW_ROLE_SESSION_REVOKE,
                               ENTRY(SESSIONS, "5-0", F("zone_id", "z"),
                                     F("session_id", "a"), F("grant_id", huge)),
                               AW_REJECT_OVERSIZED, "huge unknown field");
    free(huge);
    aw_field many[AW_MAX_FIELDS + 1];
    many[0] = F("zone_id", "z");
    many[1] = F("session_id", "a");
    for (size_t i = 2; i <= AW_MAX_FIELDS; i++)
        many[i] = F("x", "y");
    expect_revocation_rejected(
        AW_ROLE_SESSION_REVOKE,
        entry_of(SESSIONS, "5-0", many, AW_MAX_FIELDS + 1), AW_REJECT_OVERSIZED,
        "too many fields");
}

Test(event_decode, revocation_refuses_entry_ids_past_2262)
{
    expect_revocation_rejected(AW_ROLE_SESSION_REVOKE,
                               ENTRY(SESSIONS, "99999999999999999-0",
                                     F("zone_id", "z"), F("session_id", "a")),
                               AW_REJECT_BAD_TIME, "far future id");
}

Test(event_decode, lifecycle_events_map_to_revoke_suspend_resume)
{
    static const struct {
        const char *event;
        aw_revocation_action action;
    } cases[] = {{"terminate", AW_ACTION_REVOKE},
                 {"suspend", AW_ACTION_SUSPEND},
                 {"resume", AW_ACTION_RESUME}};
    for (size_t i = 0; i < 3; i++) {
        aw_revocation_set *set = revocation_ok(
            AW_ROLE_AGENT_LIFECYCLE,
            ENTRY(LIFECYCLE, "100-0", F("event", cases[i].event),
                  F("zone_id", "z"), F("agent_session_id", "as-1"),
                  F("parent_id", "p"), F("reason", "operator")));
        cr_assert_eq(set->n, 1);
        expect_item(set, 0, AW_ANCHOR_AGENT_SESSION, "as-1", cases[i].action);
        cr_expect_eq(set->at_ns, 100000000LL);
        aw_revocation_set_free(set);
    }
}

Test(event_decode, lifecycle_refuses_other_events)
{
    expect_revocation_rejected(AW_ROLE_AGENT_LIFECYCLE,
                               ENTRY(LIFECYCLE, "5-0", F("event", "reboot"),
                                     F("zone_id", "z"),
                                     F("agent_session_id", "a")),
                               AW_REJECT_BAD_VALUE, "reboot");
    expect_revocation_rejected(
        AW_ROLE_AGENT_LIFECYCLE,
        ENTRY(LIFECYCLE, "5-0", F("zone_id", "z"), F("agent_session_id", "a")),
        AW_REJECT_MISSING_FIELD, "no event");
}

Test(event_decode, edge_revoke_reads_affected_edges_as_json_or_list)
{
    const char *forms[] = {"[\"de-2\", \"de-3\", \"de-1\", \"de-2\"]",
                           " de-2 ,de-3,, de-1,de-2 "};
    for (size_t i = 0; i < 2; i++) {
        aw_revocation_set *set = revocation_ok(
            AW_ROLE_DELEGATION_INVALIDATE,
            ENTRY(DELEGATIONS, "7-0", F("event", "edge_revoke"),
                  F("zone_id", "z"), F("edge_id", "de-1"), F("epoch", "4"),
                  F("affected_edges", forms[i])));
        cr_assert_eq(set->n, 3, "%s", forms[i]);
        expect_item(set, 0, AW_ANCHOR_DELEGATION_EDGE, "de-1",
                    AW_ACTION_REVOKE);
        expect_item(set, 1, AW_ANCHOR_DELEGATION_EDGE, "de-2",
                    AW_ACTION_REVOKE);
        expect_item(set, 2, AW_ANCHOR_DELEGATION_EDGE, "de-3",
                    AW_ACTION_REVOKE);
        aw_revocation_set_free(set);
    }
}

Test(event_decode, edge_revoke_takes_long_affected_lists)
{
    size_t cap = 1000 * 8;
    char *list = malloc(cap);
    size_t o = 0;
    for (int i = 0; i < 1000; i++)
        o += (size_t)snprintf(list + o, cap - o, "%se%d", i ? "," : "", i);
    aw_revocation_set *set = revocation_ok(
        AW_ROLE_DELEGATION_INVALIDATE,
        ENTRY(DELEGATIONS, "7-0", F("event", "edge_revoke"), F("zone_id", "z"),
              F("edge_id", "root"), F("affected_edges", list)));
    cr_assert_eq(set->n, 1001);
    expect_item(set, 1000, AW_ANCHOR_DELEGATION_EDGE, "e999", AW_ACTION_REVOKE);
    aw_revocation_set_free(set);
    free(list);
}

Test(event_decode, edge_revoke_refuses_malformed_affected_edges)
{
    expect_revocation_rejected(
        AW_ROLE_DELEGATION_INVALIDATE,
        ENTRY(DELEGATIONS, "7-0", F("event", "edge_revoke"), F("zone_id", "z"),
              F("edge_id", "e"), F("affected_edges", "[\"a\", 5]")),
        AW_REJECT_WRONG_TYPE, "number in array");
    expect_revocation_rejected(
        AW_ROLE_DELEGATION_INVALIDATE,
        ENTRY(DELEGATIONS, "7-0", F("event", "edge_revoke"), F("zone_id", "z"),
              F("edge_id", "e"), F("affected_edges", "[\"a\",")),
        AW_REJECT_NOT_JSON, "truncated array");
    expect_revocation_rejected(AW_ROLE_DELEGATION_INVALIDATE,
                               ENTRY(DELEGATIONS, "7-0",
                                     F("event", "edge_grant"),
                                     F("zone_id", "z"), F("edge_id", "e")),
                               AW_REJECT_BAD_VALUE, "not edge_revoke");
}

Test(event_decode, edge_revoke_affected_edges_alone_suffice)
{
    aw_revocation_set *set =
        revocation_ok(AW_ROLE_DELEGATION_INVALIDATE,
                      ENTRY(DELEGATIONS, "7-0", F("event", "edge_revoke"),
                            F("zone_id", "z"), F("affected_edges", "[\"x\"]")));
    cr_assert_eq(set->n, 1);
    expect_item(set, 0, AW_ANCHOR_DELEGATION_EDGE, "x", AW_ACTION_REVOKE);
    aw_revocation_set_free(set);
}

/* The entry with a correct `_sig` added. */
static aw_raw_entry *signed_entry(aw_hmac_key *key, const char *stream,
                                  const aw_field *fields, size_t n)
{
    aw_raw_entry *plain = entry_of(stream, "9-0", fields, n);
    aw_buf canonical = {0};
    aw_error err;
    cr_assert_eq(aw_stream_canonical(plain, &canonical, &err), AW_OK);
    unsigned char mac[32];
    char hex[65];
    aw_hmac_compute(key, canonical.ptr, canonical.len, mac);
    aw_hex(mac, 32, hex);
    aw_field all[16];
    memcpy(all, fields, n * sizeof *fields);
    all[n] = F("_sig", hex);
    aw_raw_entry *e = entry_of(stream, "9-0", all, n + 1);
    aw_buf_free(&canonical);
    aw_raw_entry_free(plain);
    return e;
}

Test(event_decode, revocation_signature_is_required_and_checked_under_a_key)
{
    aw_hmac_key *key = test_key();
    aw_field f[] = {F("zone_id", "z"), F("session_id", "ar-1")};
    aw_raw_entry *e = signed_entry(key, SESSIONS, f, 2);
    aw_revocation_set *set;
    aw_error err;
    cr_assert_eq(decode_revocation(AW_ROLE_SESSION_REVOKE, e, key, &set, &err),
                 AW_OK, "%s", err.msg);
    cr_expect(set->is_signed);
    aw_revocation_set_free(set);
    /* the same signature under another stream name does not verify */
    aw_raw_entry *moved = entry_of(LIFECYCLE, "9-0", e->fields, e->nfields);
    expect_reject(
        decode_revocation(AW_ROLE_SESSION_REVOKE, moved, key, &set, &err), &err,
        AW_REJECT_SIGNATURE_INVALID, "other stream");
    aw_raw_entry_free(moved);
    aw_raw_entry_free(e);

    e = entry_of(SESSIONS, "9-0", f, 2);
    expect_reject(decode_revocation(AW_ROLE_SESSION_REVOKE, e, key, &set, &err),
                  &err, AW_REJECT_SIGNATURE_MISSING, "unsigned");
    aw_raw_entry_free(e);
    aw_hmac_key_free(key);
}

Test(event_decode, revocation_signature_covers_every_field)
{
    aw_hmac_key *key = test_key();
    aw_field f[] = {F("zone_id", "z"), F("session_id", "ar-1"),
                    F("grant_id", "g")};
    aw_raw_entry *e = signed_entry(key, SESSIONS, f, 3);
    aw_field tampered[4];
    memcpy(tampered, e->fields, sizeof tampered);
    tampered[2] = F("grant_id", "h"); /* a field the decoder never reads */
    aw_raw_entry *t = entry_of(SESSIONS, "9-0", tampered, 4);
    aw_revocation_set *set;
    aw_error err;
    expect_reject(decode_revocation(AW_ROLE_SESSION_REVOKE, t, key, &set, &err),
                  &err, AW_REJECT_SIGNATURE_INVALID, "tampered grant_id");
    aw_raw_entry_free(t);
    aw_raw_entry_free(e);
    aw_hmac_key_free(key);
}

/* Caracal's coordinator takes a suspend reason of up to 256 characters of
 * any text (apps/coordinator/src/routes/agents.ts) and writes it into both
 * entries of a suspend, signed by its outbox (jobs/outbox-publisher.ts,
 * signStream; the signatures below are the ones it computes for these
 * fields). In the caracal.sessions.revoke entry a second line
 * "ticket=INC-4312" sorts after session_id: free text that no sorted field
 * set could give... */
Test(event_decode, a_coordinator_suspend_whose_reason_holds_a_key_value_line)
{
    aw_hmac_key *key = test_key();
    aw_raw_entry *revoke = ENTRY(
        SESSIONS, "1779364801002-0", F("outbox_id", "019a-0001"),
        F("dedupe_key", "agent_suspend:as-9:2026-05-21T12:00:01.000Z"),
        F("zone_id", "z1"), F("session_id", "ar-9"),
        F("agent_session_id", "as-9"),
        F("reason", "Suspended pending review\nticket=INC-4312"),
        F("_sig", "c428ccd8fc22fb245856ef6710f200454c11ece5782045fd88d2920a"
                  "680f6817"));
    /* ...and into its lifecycle suspend, where ticket sorts between reason
     * and zone_id: but the lifecycle decoder reads no ticket, so either
     * reading means the same suspend. */
    aw_raw_entry *suspend = ENTRY(
        LIFECYCLE, "1779364801001-0", F("outbox_id", "019a-0002"),
        F("dedupe_key", "suspend:as-9:2026-05-21T12:00:01.000Z"),
        F("event", "suspend"), F("zone_id", "z1"),
        F("agent_session_id", "as-9"), F("parent_id", "null"),
        F("reason", "Suspended pending review\nticket=INC-4312"),
        F("_sig", "22504735d0004f44cbb92ebe0103602374c7b6f744f11aef6b2b2c77"
                  "da1925a0"));
    aw_revocation_set *set = NULL;
    aw_error err = {0};
    cr_expect_eq(
        decode_revocation(AW_ROLE_SESSION_REVOKE, revoke, key, &set, &err),
        AW_OK, "a legitimate signed revocation was refused: %s (%s)", err.msg,
        aw_reject_reason_name(err.reason));
    cr_expect(set && set->n == 2, "both anchors");
    aw_revocation_set_free(set);
    set = NULL;
    cr_expect_eq(
        decode_revocation(AW_ROLE_AGENT_LIFECYCLE, suspend, key, &set, &err),
        AW_OK, "a legitimate signed suspend was refused: %s (%s)", err.msg,
        aw_reject_reason_name(err.reason));
    cr_expect(set && set->n == 1 && set->items[0].action == AW_ACTION_SUSPEND,
              "the suspend of as-9");
    aw_revocation_set_free(set);
    aw_raw_entry_free(revoke);
    aw_raw_entry_free(suspend);
    aw_hmac_key_free(key);
}

Test(event_decode, revocation_decoder_refuses_non_revocation_roles)
{
    aw_raw_entry *e =
        ENTRY(AUDIT_STREAM, "1-0", F("zone_id", "z"), F("session_id", "a"));
    aw_revocation_set *set;
    aw_error err;
    cr_expect_eq(aw_event_decode_revocation(AW_ROLE_AUDIT, e, NULL, &set, &err),
                 AW_ERR);
    cr_expect_null(set);
    aw_raw_entry_free(e);
}

/* ---- Observed calls ------------------------------------------------------- */

#define CALLS "auditwatch.calls"

static int decode_call(aw_raw_entry *e, aw_hmac_key *key,
                       aw_observed_call **call, aw_error *err)
{
    *call = (aw_observed_call *)1;
    int rc = aw_event_decode_call_entry(e, key, call, err);
    if (rc != AW_OK)
        cr_expect_null(*call, "output left set on failure");
    aw_raw_entry_free(e);
    return rc;
}

Test(event_decode, call_entry_reads_every_field)
{
    aw_observed_call *call;
    aw_error err;
    cr_assert_eq(
        decode_call(ENTRY(CALLS, "1779364900000-0", F("request_id", "r-1"),
                          F("status", "204"),
                          F("occurred_at", "2026-05-21T14:00:00.5+02:00"),
                          F("zone_id", "z"), F("resource", "/v1/x"),
                          F("source", "nginx-edge")),
                    NULL, &call, &err),
        AW_OK, "%s", err.msg);
    cr_expect_str_eq(call->request_id, "r-1");
    cr_expect_eq(call->status, 204);
    cr_expect_eq(call->occurred_at_ns, 1779364800500000000LL);
    cr_expect(call->time_is_logged);
    cr_expect_str_eq(call->zone_id, "z");
    cr_expect_str_eq(call->resource, "/v1/x");
    cr_expect_str_eq(call->source, "nginx-edge");
    aw_observed_call_free(call);
}

Test(event_decode, call_entry_without_time_takes_the_entry_time)
{
    aw_observed_call *call;
    aw_error err;
    cr_assert_eq(decode_call(ENTRY(CALLS, "1779364900123-4",
                                   F("request_id", "r-1"), F("status", "200")),
                             NULL, &call, &err),
                 AW_OK, "%s", err.msg);
    cr_expect_eq(call->occurred_at_ns, 1779364900123000000LL);
    cr_expect_not(call->time_is_logged, "the entry time is a stand-in");
    cr_expect_null(call->zone_id);
    cr_expect_null(call->source);
    aw_observed_call_free(call);
}

Test(event_decode, call_entry_refusals_name_the_reason)
{
    aw_observed_call *call;
    aw_error err;
    expect_reject(
        decode_call(ENTRY(CALLS, "1-0", F("status", "200")), NULL, &call, &err),
        &err, AW_REJECT_MISSING_FIELD, "no request id");
    expect_reject(decode_call(ENTRY(CALLS, "1-0", F("request_id", "r")), NULL,
                              &call, &err),
                  &err, AW_REJECT_MISSING_FIELD, "no status");
    expect_reject(decode_call(ENTRY(CALLS, "1-0", F("request_id", "r"),
                                    F("status", "OK")),
                              NULL, &call, &err),
                  &err, AW_REJECT_BAD_VALUE, "status OK");
    expect_reject(
        decode_call(ENTRY(CALLS, "1-0", F("request_id", "r"),
                          F("status", "200"), F("occurred_at", "yesterday")),
                    NULL, &call, &err),
        &err, AW_REJECT_BAD_TIME, "bad time");
    aw_field nul[] = {{S("request_id"), B("r\0x")}, F("status", "200")};
    expect_reject(
        decode_call(entry_of(CALLS, "1-0", nul, 2), NULL, &call, &err), &err,
        AW_REJECT_EMBEDDED_NUL, "NUL in request id");
}

Test(event_decode, call_entry_signature_is_checked_under_a_key)
{
    aw_hmac_key *key = test_key();
    aw_field f[] = {F("request_id", "r"), F("status", "200")};
    aw_observed_call *call;
    aw_error err;
    cr_assert_eq(decode_call(signed_entry(key, CALLS, f, 2), key, &call, &err),
                 AW_OK, "%s", err.msg);
    aw_observed_call_free(call);
    expect_reject(decode_call(entry_of(CALLS, "1-0", f, 2), key, &call, &err),
                  &err, AW_REJECT_SIGNATURE_MISSING, "unsigned call");
    aw_hmac_key_free(key);
}

static int call_json(const char *line, const aw_call_fields *names,
                     aw_observed_call **call, aw_error *err)
{
    *call = (aw_observed_call *)1;
    int rc =
        aw_event_decode_call_json(line, strlen(line), names, 42, call, err);
    if (rc != AW_OK)
        cr_expect_null(*call, "output left set on failure");
    return rc;
}

static aw_observed_call *call_json_ok(const char *line,
                                      const aw_call_fields *names)
{
    aw_observed_call *call;
    aw_error err;
    cr_assert_eq(call_json(line, names, &call, &err), AW_OK, "%s: %s", line,
                 err.msg);
    return call;
}

Test(event_decode, ndjson_call_reads_default_field_names)
{
    aw_observed_call *call = call_json_ok(
        "{\"request_id\":\"r-1\",\"status\":200,"
        "\"occurred_at\":\"2026-05-21T12:00:00Z\",\"zone_id\":\"z\","
        "\"resource\":\"/a\",\"source\":\"envoy\",\"bytes\":12}",
        NULL);
    cr_expect_str_eq(call->request_id, "r-1");
    cr_expect_eq(call->status, 200);
    cr_expect_eq(call->occurred_at_ns, 1779364800000000000LL);
    cr_expect_str_eq(call->zone_id, "z");
    cr_expect_str_eq(call->resource, "/a");
    cr_expect_str_eq(call->source, "envoy");
    aw_observed_call_free(call);
}

Test(event_decode, ndjson_call_maps_access_log_field_names)
{
    aw_call_fields nginx = {
        .request_id = "rid", .status = "code", .occurred_at = "ts"};
    aw_observed_call *call =
        call_json_ok("{\"rid\":\"r-2\",\"code\":\"502\",\"ts\":1716300000.123,"
                     "\"request_id\":\"not-this\"}",
                     &nginx);
    cr_expect_str_eq(call->request_id, "r-2");
    cr_expect_eq(call->status, 502);
    cr_expect_eq(call->occurred_at_ns, 1716300000123000000LL);
    aw_observed_call_free(call);
}

Test(event_decode, ndjson_call_reads_every_time_form)
{
    static const struct {
        const char *line;
        int64_t ns;
        bool logged; /* else the fallback stands in */
    } cases[] = {
        {"{\"request_id\":\"r\",\"status\":200,\"occurred_at\":1716300000}",
         1716300000000000000LL, true},
        {"{\"request_id\":\"r\",\"status\":200,"
         "\"occurred_at\":\"1716300000.123456789\"}",
         1716300000123456789LL, true},
        {"{\"request_id\":\"r\",\"status\":200,"
         "\"occurred_at\":\"2026-05-21T14:00:00-07:00\"}",
         1779397200000000000LL, true},
        {"{\"request_id\":\"r\",\"status\":200}", 42, false},
        {"{\"request_id\":\"r\",\"status\":200,\"occurred_at\":null}", 42,
         false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        aw_observed_call *call = call_json_ok(cases[i].line, NULL);
        cr_expect_eq(call->occurred_at_ns, cases[i].ns, "%s", cases[i].line);
        cr_expect_eq(call->time_is_logged, cases[i].logged, "%s",
                     cases[i].line);
        aw_observed_call_free(call);
    }
}

Test(event_decode, ndjson_call_refusals_name_the_reason)
{
    static const struct {
        const char *line;
        aw_reject_reason reason;
    } cases[] = {
        {"request_id=r status=200", AW_REJECT_NOT_JSON},
        {"[\"r\",200]", AW_REJECT_NOT_OBJECT},
        {"{\"request_id\":\"r\",\"request_id\":\"s\",\"status\":200}",
         AW_REJECT_DUPLICATE_KEY},
        {"{\"status\":200}", AW_REJECT_MISSING_FIELD},
        {"{\"request_id\":\"r\"}", AW_REJECT_MISSING_FIELD},
        {"{\"request_id\":7,\"status\":200}", AW_REJECT_WRONG_TYPE},
        {"{\"request_id\":\"r\",\"status\":\"ok\"}", AW_REJECT_BAD_VALUE},
        {"{\"request_id\":\"r\",\"status\":200,\"occurred_at\":true}",
         AW_REJECT_WRONG_TYPE},
        {"{\"request_id\":\"r\",\"status\":200,\"occurred_at\":\"noon\"}",
         AW_REJECT_BAD_TIME},
        {"{\"request_id\":\"r\",\"status\":200,\"occurred_at\":1e12}",
         AW_REJECT_BAD_TIME},
        {"{\"request_id\":\"r\",\"status\":200,"
         "\"occurred_at\":\"99999999999.5\"}",
         AW_REJECT_BAD_TIME},
        {"{\"request_id\":\"r\xff\",\"status\":200}", AW_REJECT_INVALID_UTF8},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        aw_observed_call *call;
        aw_error err = {0};
        expect_reject(call_json(cases[i].line, NULL, &call, &err), &err,
                      cases[i].reason, cases[i].line);
    }
}

Test(event_decode, ndjson_call_reads_only_the_bytes_of_the_line)
{
    /* exactly sized, no terminator: a read past the end trips ASan */
    static const char text[] = "{\"request_id\":\"r-3\",\"status\":\"301\"}";
    char *line = malloc(sizeof text - 1);
    memcpy(line, text, sizeof text - 1);
    aw_observed_call *call;
    aw_error err;
    cr_assert_eq(
        aw_event_decode_call_json(line, sizeof text - 1, NULL, 7, &call, &err),
        AW_OK, "%s", err.msg);
    cr_expect_str_eq(call->request_id, "r-3");
    cr_expect_eq(call->status, 301);
    cr_expect_eq(call->occurred_at_ns, 7);
    aw_observed_call_free(call);
    free(line);
}

Test(event_decode, decoders_refuse_bad_input_without_an_error_struct)
{
    /* callers that only need yes or no pass err NULL */
    aw_observed_call *call;
    cr_expect_eq(
        aw_event_decode_call_json("{\"status\":200}", 14, NULL, 0, &call, NULL),
        AW_ERR_INVALID);
    cr_expect_eq(aw_event_decode_call_json("{\"request_id\":\"r\",\"status\":"
                                           "200,\"occurred_at\":\"x\"}",
                                           49, NULL, 0, &call, NULL),
                 AW_ERR_INVALID);
    cr_expect_eq(aw_json_validate("{\"a\":1,\"a\":1}", 13, NULL),
                 AW_ERR_INVALID);
    aw_audit_event *ev;
    aw_field f[] = {F("data", "{\"id\":\"e\",\"zone_id\":\"z\","
                              "\"occurred_at\":\"noon\"}")};
    cr_expect_eq(decode_audit_fields(f, 1, NULL, &ev, NULL), AW_ERR_INVALID);
}
