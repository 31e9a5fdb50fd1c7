/* test_event_dead_letter.c -- what auditwatch makes of Caracal's dead
 * letters (DESIGN §2.4): the audit service's DLQ entries, the STS/Gateway
 * `.dead` entries and the SDK's, each read back into the original entry and
 * then decoded by the ordinary audit or revocation decoder, and every bad
 * envelope refused with the reason a user sees in the rejected table. */
#include "event/event.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(str)         ((aw_bytes){(str), strlen(str)})
#define B(lit)         ((aw_bytes){(lit), sizeof(lit) - 1})
#define F(name, value) ((aw_field){S(name), S(value)})

#define AUDIT  "caracal.audit.events"
#define DLQ    "caracal.audit.events.dlq"
#define REVOKE "caracal.sessions.revoke"
#define DEAD   "caracal.sessions.revoke.dead"

static const char key_hex[] =
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
static const char data[] =
    "{\"id\":\"evt-dl\",\"zone_id\":\"zone-1\",\"event_type\":\"gateway_resource_request\","
    "\"request_id\":\"req-dl\",\"decision\":\"allow\",\"occurred_at\":\"2026-05-21T12:00:00Z\"}";

static aw_hmac_key *test_key(void)
{
    aw_hmac_key *key = NULL;
    aw_error err;
    cr_assert_eq(aw_hmac_key_from_hex(key_hex, strlen(key_hex), &key, &err),
                 AW_OK);
    return key;
}

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

/* The stream scheme's `_sig` of e, as Caracal's SignedXAdd writes it. */
static void sign_stream(aw_hmac_key *key, const aw_raw_entry *e, char hex[65])
{
    aw_buf canon = {0};
    unsigned char mac[32];
    aw_error err;
    cr_assert_eq(aw_stream_canonical(e, &canon, &err), AW_OK);
    aw_hmac_compute(key, canon.ptr, canon.len, mac);
    aw_hex(mac, 32, hex);
    aw_buf_free(&canon);
}

static void sign_audit(aw_hmac_key *key, char hex[65])
{
    unsigned char mac[32];
    aw_hmac_compute(key, data, strlen(data), mac);
    aw_hex(mac, 32, hex);
}

static void expect_reject(int rc, aw_dead_letter *letter, const aw_error *err,
                          aw_reject_reason want, const char *what)
{
    cr_assert_eq(rc, AW_ERR_INVALID, "%s: accepted (rc %d)", what, rc);
    cr_expect_null(letter, "%s: output set on failure", what);
    cr_assert_eq(err->reason, want, "%s: got %s (%s), want %s", what,
                 aw_reject_reason_name(err->reason), err->msg,
                 aw_reject_reason_name(want));
}

static void expect_audit_rejected(aw_raw_entry *e, aw_reject_reason want,
                                  const char *what)
{
    aw_dead_letter *letter = (aw_dead_letter *)1;
    aw_error err = {0};
    int rc = aw_dead_letter_decode_audit(e, AUDIT, &letter, &err);
    expect_reject(rc, rc == AW_OK ? NULL : letter, &err, want, what);
    aw_raw_entry_free(e);
}

static void expect_dead_rejected(aw_raw_entry *e, aw_hmac_key *key,
                                 aw_reject_reason want, const char *what)
{
    aw_dead_letter *letter = (aw_dead_letter *)1;
    aw_error err = {0};
    int rc = aw_dead_letter_decode_revocation(e, REVOKE, key, &letter, &err);
    if (rc == AW_OK)
        aw_dead_letter_free(letter);
    expect_reject(rc, rc == AW_OK ? NULL : letter, &err, want, what);
    aw_raw_entry_free(e);
}

/* ---- caracal.audit.events.dlq ------------------------------------------- */

Test(event_dead_letter,
     audit_dlq_entry_verifies_and_decodes_as_the_original_event)
{
    aw_hmac_key *key = test_key();
    char sig[65];
    sign_audit(key, sig);
    aw_raw_entry *e =
        ENTRY(DLQ, "1779364900000-3", F("reason", "pg_permanent_error:boom"),
              F("src_id", "evt-dl"), F("received_at", "1779364899123"),
              F("src_data", data), F("src_sig", sig));
    aw_dead_letter *letter = NULL;
    aw_error err = {0};
    cr_assert_eq(aw_dead_letter_decode_audit(e, AUDIT, &letter, &err), AW_OK,
                 "%s", err.msg);
    cr_expect_eq(letter->shape, AW_DEAD_AUDIT_DLQ);
    cr_expect_str_eq(aw_dead_letter_shape_name(letter->shape), "audit_dlq");
    cr_expect_str_eq(letter->reason, "pg_permanent_error:boom");
    cr_expect_str_eq(letter->source_id, "evt-dl");
    cr_expect_eq(letter->received_at_ns, 1779364899123LL * 1000000);
    cr_expect_eq(letter->dead_lettered_ns, 1779364900000LL * 1000000);
    cr_expect_str_eq(letter->original->stream.ptr, AUDIT);
    cr_expect_eq(letter->original->nfields, 3,
                 "id, data and sig, the prefix dropped");
    cr_expect_not_null(aw_raw_entry_get(letter->original, "id"));

    aw_audit_event *ev = NULL;
    cr_assert_eq(aw_event_decode_audit(letter->original, key, &ev, &err), AW_OK,
                 "%s", err.msg);
    cr_expect(ev->is_signed, "verified with the audit key");
    cr_expect_str_eq(ev->id, "evt-dl");
    cr_expect_str_eq(ev->request_id, "req-dl");
    aw_audit_event_free(ev);
    aw_dead_letter_free(letter);
    aw_raw_entry_free(e);
    aw_hmac_key_free(key);
}

Test(event_dead_letter,
     audit_dlq_copy_with_a_forged_data_fails_the_audit_signature)
{
    aw_hmac_key *key = test_key();
    char sig[65];
    sign_audit(key, sig);
    aw_raw_entry *e =
        ENTRY(DLQ, "1779364900000-0", F("reason", "hmac_verify_failed"),
              F("received_at", "1779364899123"),
              F("src_data", "{\"id\":\"evt-dl\",\"zone_id\":\"zone-9\","
                            "\"occurred_at\":\"2026-05-21T12:00:00Z\"}"),
              F("src_sig", sig));
    aw_dead_letter *letter = NULL;
    aw_error err = {0};
    cr_assert_eq(aw_dead_letter_decode_audit(e, AUDIT, &letter, &err), AW_OK,
                 "%s", err.msg);
    aw_audit_event *ev = NULL;
    cr_expect_eq(aw_event_decode_audit(letter->original, key, &ev, &err),
                 AW_ERR_INVALID);
    cr_expect_eq(err.reason, AW_REJECT_SIGNATURE_INVALID);
    aw_dead_letter_free(letter);
    aw_raw_entry_free(e);
    aw_hmac_key_free(key);
}

Test(event_dead_letter,
     audit_dlq_without_data_keeps_the_reason_for_the_rejected_table)
{
    aw_raw_entry *e = ENTRY(
        DLQ, "1779364900000-0", F("reason", "missing_data_field"),
        F("src_id", "1779364800000-0"), F("received_at", "1779364899123"));
    aw_dead_letter *letter = NULL;
    aw_error err = {0};
    cr_assert_eq(aw_dead_letter_decode_audit(e, AUDIT, &letter, &err), AW_OK,
                 "%s", err.msg);
    cr_expect_str_eq(letter->reason, "missing_data_field");
    aw_audit_event *ev = NULL;
    cr_expect_eq(aw_event_decode_audit(letter->original, NULL, &ev, &err),
                 AW_ERR_INVALID);
    cr_expect_eq(err.reason, AW_REJECT_MISSING_FIELD,
                 "the original has no data");
    aw_dead_letter_free(letter);
    aw_raw_entry_free(e);
}

Test(event_dead_letter, audit_dlq_rejects_bad_envelopes_with_their_reason)
{
    expect_audit_rejected(
        ENTRY(DLQ, "1-0", F("received_at", "1"), F("src_data", data)),
        AW_REJECT_MISSING_FIELD, "no reason");
    expect_audit_rejected(
        ENTRY(DLQ, "1-0", F("reason", "x"), F("src_data", data)),
        AW_REJECT_MISSING_FIELD, "no received_at");
    expect_audit_rejected(ENTRY(DLQ, "1-0", F("reason", "x"),
                                F("received_at", "12x"), F("src_data", data)),
                          AW_REJECT_BAD_TIME, "received_at not digits");
    expect_audit_rejected(ENTRY(DLQ, "1-0", F("reason", "x"),
                                F("received_at", "99999999999999999999"),
                                F("src_data", data)),
                          AW_REJECT_BAD_TIME, "received_at past int64");
    expect_audit_rejected(
        ENTRY(DLQ, "1-0", F("reason", "x"), F("received_at", "1")),
        AW_REJECT_MISSING_FIELD, "no src_ field");
    expect_audit_rejected(ENTRY(DLQ, "1-0", F("reason", "x"),
                                F("received_at", "1"), F("src_", "v")),
                          AW_REJECT_BAD_VALUE, "src_ naming nothing");
    expect_audit_rejected(ENTRY(DLQ, "1-0", F("reason", "x"),
                                F("received_at", "1"), F("src_data", data),
                                F("src_data", "{}")),
                          AW_REJECT_DUPLICATE_KEY, "two src_data");
    expect_audit_rejected(ENTRY(DLQ, "1-0", F("reason", "a"), F("reason", "b"),
                                F("received_at", "1"), F("src_data", data)),
                          AW_REJECT_DUPLICATE_KEY, "two reasons");
    expect_audit_rejected(entry_of(DLQ, "1-0",
                                   (aw_field[]){{S("reason"), B("trunc\0ated")},
                                                F("received_at", "1"),
                                                F("src_data", data)},
                                   3),
                          AW_REJECT_EMBEDDED_NUL, "NUL in reason");
    expect_audit_rejected(entry_of(DLQ, "1-0",
                                   (aw_field[]){{S("reason"), B("caf\xc3")},
                                                F("received_at", "1"),
                                                F("src_data", data)},
                                   3),
                          AW_REJECT_INVALID_UTF8,
                          "reason cut inside a UTF-8 sequence");
    char *big = malloc(AW_MAX_DATA_BYTES + 2);
    memset(big, 'x', AW_MAX_DATA_BYTES + 1);
    big[AW_MAX_DATA_BYTES + 1] = '\0';
    expect_audit_rejected(ENTRY(DLQ, "1-0", F("reason", "x"),
                                F("received_at", "1"), F("src_data", big)),
                          AW_REJECT_OVERSIZED, "src_data past the data bound");
    free(big);
}

/* ---- <stream>.dead from the STS and Gateway ------------------------------ */

static const char values[] =
    "{\"_sig\":\"%s\",\"session_id\":\"ar-9\",\"zone_id\":\"zone-1\"}";

/* The original revocation and its `.dead` envelope, both signed as Caracal
 * signs them (the envelope under the `.dead` stream name). */
static aw_raw_entry *enforcer_dead(aw_hmac_key *key, const char *error,
                                   bool sign_envelope)
{
    char orig_sig[65], json[256], dead_sig[65];
    aw_raw_entry *orig = ENTRY(REVOKE, "1779364830000-0",
                               F("session_id", "ar-9"), F("zone_id", "zone-1"));
    sign_stream(key, orig, orig_sig);
    aw_raw_entry_free(orig);
    snprintf(json, sizeof json, values, orig_sig);
    aw_raw_entry *unsigned_dead =
        ENTRY(DEAD, "1779364900000-0", F("original_id", "1779364830000-0"),
              F("error", error), F("values", json));
    if (!sign_envelope)
        return unsigned_dead;
    sign_stream(key, unsigned_dead, dead_sig);
    aw_raw_entry_free(unsigned_dead);
    return ENTRY(DEAD, "1779364900000-0", F("original_id", "1779364830000-0"),
                 F("error", error), F("values", json), F("_sig", dead_sig));
}

Test(event_dead_letter,
     enforcer_dead_letter_gives_the_signed_revocation_at_its_own_time)
{
    aw_hmac_key *key = test_key();
    aw_raw_entry *e = enforcer_dead(key, "store unavailable", true);
    aw_dead_letter *letter = NULL;
    aw_error err = {0};
    cr_assert_eq(
        aw_dead_letter_decode_revocation(e, REVOKE, key, &letter, &err), AW_OK,
        "%s", err.msg);
    cr_expect_eq(letter->shape, AW_DEAD_ENFORCER);
    cr_expect(letter->is_signed);
    cr_expect_str_eq(letter->reason, "store unavailable");
    cr_expect_str_eq(letter->source_id, "1779364830000-0");
    cr_expect_str_eq(letter->original->stream.ptr, REVOKE);
    cr_expect_str_eq(letter->original->id.ptr, "1779364830000-0");

    aw_revocation_set *set = NULL;
    cr_assert_eq(aw_event_decode_revocation(AW_ROLE_SESSION_REVOKE,
                                            letter->original, key, &set, &err),
                 AW_OK, "%s", err.msg);
    cr_expect(set->is_signed,
              "the original's own _sig verified under its stream");
    cr_expect_eq(set->at_ns, 1779364830000LL * 1000000,
                 "revoked when first written");
    cr_assert_eq(set->n, 1);
    cr_expect_str_eq(set->items[0].anchor.id, "ar-9");
    aw_revocation_set_free(set);
    aw_dead_letter_free(letter);
    aw_raw_entry_free(e);
    aw_hmac_key_free(key);
}

Test(event_dead_letter,
     enforcer_envelope_signature_is_checked_under_the_dead_stream_name)
{
    aw_hmac_key *key = test_key();
    expect_dead_rejected(enforcer_dead(key, "x", false), key,
                         AW_REJECT_SIGNATURE_MISSING,
                         "unsigned envelope under a key");
    aw_raw_entry *signed_dead = enforcer_dead(key, "x", true);
    /* the same fields on another stream: the signature names the stream */
    aw_raw_entry *moved =
        entry_of("caracal.agents.lifecycle.dead", signed_dead->id.ptr,
                 signed_dead->fields, signed_dead->nfields);
    expect_dead_rejected(moved, key, AW_REJECT_SIGNATURE_INVALID,
                         "signed for another stream");
    aw_dead_letter *letter = NULL;
    aw_error err = {0};
    cr_expect_eq(aw_dead_letter_decode_revocation(signed_dead, REVOKE, NULL,
                                                  &letter, &err),
                 AW_OK, "without a key the envelope is read unverified: %s",
                 err.msg);
    cr_expect_not(letter && letter->is_signed);
    aw_dead_letter_free(letter);
    aw_raw_entry_free(signed_dead);
    aw_hmac_key_free(key);
}

Test(event_dead_letter, enforcer_rejects_bad_values_and_ids)
{
#define DEAD_WITH(id, vals)                                                    \
    ENTRY(DEAD, "1-0", F("original_id", id), F("error", "e"), F("values", vals))
    expect_dead_rejected(DEAD_WITH("1-0", "{\"zone_id\":"), NULL,
                         AW_REJECT_NOT_JSON, "truncated values");
    expect_dead_rejected(DEAD_WITH("1-0", "[\"zone_id\"]"), NULL,
                         AW_REJECT_NOT_OBJECT, "values an array");
    expect_dead_rejected(
        DEAD_WITH("1-0", "{\"session_id\":\"a\",\"session_id\":\"b\"}"), NULL,
        AW_REJECT_DUPLICATE_KEY, "duplicate keys in values");
    expect_dead_rejected(DEAD_WITH("1-0", "{\"session_id\":\"a\\u0000b\"}"),
                         NULL, AW_REJECT_EMBEDDED_NUL, "escaped NUL in values");
    expect_dead_rejected(DEAD_WITH("1-0", "{\"session_id\":\"\xff\"}"), NULL,
                         AW_REJECT_INVALID_UTF8, "non-UTF-8 in values");
    expect_dead_rejected(DEAD_WITH("1-0", "{\"epoch\":7}"), NULL,
                         AW_REJECT_WRONG_TYPE, "a value that is not a string");
    expect_dead_rejected(DEAD_WITH("not-an-id", "{\"session_id\":\"a\"}"), NULL,
                         AW_REJECT_BAD_VALUE, "original_id not a stream id");
    expect_dead_rejected(
        ENTRY(DEAD, "1-0", F("original_id", "1-0"), F("values", "{}")), NULL,
        AW_REJECT_MISSING_FIELD, "no error");
    expect_dead_rejected(
        ENTRY(DEAD, "1-0", F("original_id", "1-0"), F("error", "e")), NULL,
        AW_REJECT_MISSING_FIELD, "no values");
    expect_dead_rejected(ENTRY(DEAD, "1-0", F("original_id", "1-0"),
                               F("error", "e"), F("values", "{}"),
                               F("values", "{}")),
                         NULL, AW_REJECT_DUPLICATE_KEY, "values twice");
    char many[AW_MAX_FIELDS * 16 + 8];
    size_t at = (size_t)snprintf(many, sizeof many, "{");
    for (int i = 0; i <= AW_MAX_FIELDS; i++)
        at += (size_t)snprintf(many + at, sizeof many - at, "%s\"f%d\":\"v\"",
                               i ? "," : "", i);
    snprintf(many + at, sizeof many - at, "}");
    expect_dead_rejected(DEAD_WITH("1-0", many), NULL, AW_REJECT_OVERSIZED,
                         "more original fields than an entry may have");
    expect_dead_rejected(ENTRY(DEAD, "1-0", F("original_id", "1-0"),
                               F("error", "e"), F("payload", "{}")),
                         NULL, AW_REJECT_BAD_VALUE, "both shapes mixed");
    expect_dead_rejected(ENTRY(DEAD, "1-0", F("zone_id", "zone-1")), NULL,
                         AW_REJECT_MISSING_FIELD,
                         "no dead-letter fields at all");
#undef DEAD_WITH
}

/* ---- <stream>.dead from the SDK ------------------------------------------ */

Test(event_dead_letter, sdk_dead_letter_gives_the_unsigned_revocation)
{
    aw_raw_entry *e = ENTRY(
        DEAD, "1779364900000-1", F("source_id", "1779364831000-2"),
        F("reason", "handler raised"),
        F("payload", "{\"zone_id\":\"zone-1\",\"agent_session_id\":\"as-4\","
                     "\"delegation_edge_id\":\"e-4\"}"));
    aw_dead_letter *letter = NULL;
    aw_error err = {0};
    cr_assert_eq(
        aw_dead_letter_decode_revocation(e, REVOKE, NULL, &letter, &err), AW_OK,
        "%s", err.msg);
    cr_expect_eq(letter->shape, AW_DEAD_SDK);
    cr_expect_not(letter->is_signed);
    cr_expect_str_eq(letter->reason, "handler raised");
    aw_revocation_set *set = NULL;
    cr_assert_eq(aw_event_decode_revocation(AW_ROLE_SESSION_REVOKE,
                                            letter->original, NULL, &set, &err),
                 AW_OK, "%s", err.msg);
    cr_expect_eq(set->at_ns, 1779364831000LL * 1000000);
    cr_expect_eq(set->n, 2, "agent session and edge");
    aw_revocation_set_free(set);
    aw_dead_letter_free(letter);
    aw_raw_entry_free(e);
}

Test(event_dead_letter, sdk_rejects_bad_payloads)
{
#define SDK_WITH(id, reason, payload)                                          \
    ENTRY(DEAD, "1-0", F("source_id", id), F("reason", reason),                \
          F("payload", payload))
    expect_dead_rejected(SDK_WITH("1-0", "r", "{\"zone_id\":\"z\""), NULL,
                         AW_REJECT_NOT_JSON, "truncated payload");
    expect_dead_rejected(
        SDK_WITH("1-0", "r", "{\"a\":\"1\",\"\\u0061\":\"2\"}"), NULL,
        AW_REJECT_DUPLICATE_KEY, "the same key spelled twice");
    expect_dead_rejected(SDK_WITH("1-0", "r", "\"a string\""), NULL,
                         AW_REJECT_NOT_OBJECT, "payload a string");
    expect_dead_rejected(SDK_WITH("", "r", "{}"), NULL, AW_REJECT_MISSING_FIELD,
                         "empty source_id");
    expect_dead_rejected(SDK_WITH("1-0", "", "{}"), NULL,
                         AW_REJECT_MISSING_FIELD, "empty reason");
    expect_dead_rejected(
        entry_of(DEAD, "1-0",
                 (aw_field[]){F("source_id", "1-0"),
                              F("reason", "r"),
                              {S("payload"), B("{\"zone_id\":\"z\0\"}")}},
                 3),
        NULL, AW_REJECT_EMBEDDED_NUL, "raw NUL in payload");
    /* a copy of an edge_expire of 500 edges fits; beyond that, no */
    char *big = malloc(AW_MAX_EDGE_LIST_BYTES + 16);
    memset(big, ' ', AW_MAX_EDGE_LIST_BYTES + 8);
    memcpy(big, "{}", 2);
    big[AW_MAX_EDGE_LIST_BYTES + 8] = '\0';
    expect_dead_rejected(SDK_WITH("1-0", "r", big), NULL, AW_REJECT_OVERSIZED,
                         "oversized payload");
    free(big);
#undef SDK_WITH
}
