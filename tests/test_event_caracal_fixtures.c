/* test_event_caracal_fixtures.c -- interoperability with Caracal itself:
 * its published audit and revocation fixtures decode, and every vector of
 * its stream-signature canonicalisation gives Caracal's canonical text and
 * signature. Fixtures are read from tests/fixtures/caracal unchanged. */
#include "event/event.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(str) ((aw_bytes){(str), strlen(str)})

static char *read_fixture(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", AW_FIXTURES_DIR, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    char *text = malloc((size_t)size + 1);
    cr_assert_eq(fread(text, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    text[size] = '\0';
    *len = (size_t)size;
    return text;
}

/* An entry whose fields are the string members of a JSON object; a JSON
 * null is a field that is absent (stream fields are always strings). */
static aw_raw_entry *entry_from_object(const char *stream, const char *id,
                                       const cJSON *obj)
{
    aw_field fields[64];
    size_t n = 0;
    for (const cJSON *m = obj->child; m != NULL; m = m->next) {
        if (cJSON_IsNull(m))
            continue;
        cr_assert(cJSON_IsString(m), "fixture field %s is not a string",
                  m->string);
        cr_assert_lt(n, 64);
        fields[n++] = (aw_field){S(m->string), S(m->valuestring)};
    }
    aw_raw_entry *e = NULL;
    aw_error err;
    cr_assert_eq(aw_raw_entry_new(S(stream), S(id), fields, n, &e, &err), AW_OK,
                 "%s", err.msg);
    return e;
}

/* The same entry with `_sig` set to sig. */
static aw_raw_entry *with_sig(const aw_raw_entry *e, const char *sig)
{
    aw_field fields[65];
    size_t n = 0;
    for (size_t i = 0; i < e->nfields; i++)
        if (strcmp(e->fields[i].name.ptr, "_sig") != 0)
            fields[n++] = e->fields[i];
    fields[n++] = (aw_field){S("_sig"), S(sig)};
    aw_raw_entry *out = NULL;
    aw_error err;
    cr_assert_eq(aw_raw_entry_new(e->stream, e->id, fields, n, &out, &err),
                 AW_OK);
    return out;
}

static aw_hmac_key *key_from(const char *hex)
{
    aw_hmac_key *key = NULL;
    aw_error err;
    cr_assert_eq(aw_hmac_key_from_hex(hex, strlen(hex), &key, &err), AW_OK,
                 "%s", err.msg);
    return key;
}

static const char *member(const cJSON *obj, const char *name)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, name);
    cr_assert(cJSON_IsString(m), "vector lacks %s", name);
    return m->valuestring;
}

Test(event_caracal, every_stream_signature_vector_matches_caracal)
{
    size_t len;
    char *text = read_fixture("stream-sig-canonicalize.vectors.json", &len);
    cJSON *vectors = cJSON_ParseWithLength(text, len);
    cr_assert(cJSON_IsArray(vectors));
    int checked = 0;
    for (const cJSON *v = vectors->child; v != NULL; v = v->next, checked++) {
        const char *what = member(v, "description");
        aw_raw_entry *e =
            entry_from_object(member(v, "stream"), "1-0",
                              cJSON_GetObjectItemCaseSensitive(v, "values"));
        aw_buf canonical = {0};
        aw_error err;
        cr_assert_eq(aw_stream_canonical(e, &canonical, &err), AW_OK);
        const char *want = member(v, "expected_canonical");
        cr_expect_eq(canonical.len, strlen(want), "%s", what);
        cr_expect_eq(memcmp(canonical.ptr, want, strlen(want)), 0,
                     "%s: got %.*s", what, (int)canonical.len, canonical.ptr);

        aw_hmac_key *key = key_from(member(v, "hmac_key_hex"));
        unsigned char mac[32];
        char hex[65];
        cr_assert_eq(aw_hmac_compute(key, canonical.ptr, canonical.len, mac),
                     AW_OK);
        cr_expect_str_eq(aw_hex(mac, 32, hex), member(v, "expected_sig_hex"),
                         "%s", what);

        aw_raw_entry *signed_entry = with_sig(e, member(v, "expected_sig_hex"));
        cr_expect_eq(aw_hmac_verify_stream(key, signed_entry, -1, &err), AW_OK,
                     "%s: %s", what, err.msg);
        aw_raw_entry_free(signed_entry);
        aw_hmac_key_free(key);
        aw_buf_free(&canonical);
        aw_raw_entry_free(e);
    }
    cr_expect_eq(checked, 4, "the vector file changed: %d vectors", checked);
    cJSON_Delete(vectors);
    free(text);
}

Test(event_caracal, audit_fixture_decodes_as_the_data_of_an_entry)
{
    size_t len;
    char *data = read_fixture("audit-event.allow.valid.json", &len);
    /* the stream field id holds the request id, as some producers do */
    aw_field f[] = {{S("id"), S("req-1")}, {S("data"), {data, len}}};
    aw_raw_entry *e = NULL;
    aw_error err;
    cr_assert_eq(aw_raw_entry_new(S("caracal.audit.events"),
                                  S("1779364800000-0"), f, 2, &e, &err),
                 AW_OK);
    aw_audit_event *ev = NULL;
    cr_assert_eq(aw_event_decode_audit(e, NULL, &ev, &err), AW_OK, "%s",
                 err.msg);
    cr_expect_str_eq(ev->id, "audit-1");
    cr_expect_str_eq(ev->zone_id, "zone-1");
    cr_expect_str_eq(ev->event_type, "token.exchange"); /* kept as written */
    cr_expect_str_eq(ev->request_id, "req-1");
    cr_expect_str_eq(ev->decision, "allow");
    cr_expect_str_eq(ev->policy_set_id, "policy-set-1");
    cr_expect_str_eq(ev->policy_set_version_id, "policy-set-version-1");
    cr_expect_str_eq(ev->manifest_sha, "sha256:3a6eb0790f39ac87c94f3856b2dd2c5"
                                       "d110e6811602261a9a923d3bb23adc8b7");
    cr_expect_str_eq(ev->evaluation_status, "complete");
    cr_expect_str_eq(ev->resource, "resource://api");
    cr_expect_str_eq(ev->trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    cr_expect_null(ev->application_id);
    cr_expect_eq(ev->occurred_at_ns, 1779364800000000000LL);
    cr_expect_eq(ev->nanchors, 0);
    cr_expect(!ev->is_signed);
    unsigned char hash[32];
    aw_sha256(data, len, hash);
    cr_expect_eq(memcmp(ev->content_hash, hash, 32), 0);
    aw_audit_event_free(ev);
    aw_raw_entry_free(e);
    free(data);
}

Test(event_caracal, signed_audit_fixture_verifies_with_the_audit_key)
{
    size_t len;
    char *data = read_fixture("audit-event.allow.valid.json", &len);
    aw_hmac_key *key = key_from(
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    unsigned char mac[32];
    char sig[65];
    aw_hmac_compute(key, data, len, mac);
    aw_hex(mac, 32, sig);
    aw_field f[] = {{S("data"), {data, len}}, {S("sig"), S(sig)}};
    aw_raw_entry *e = NULL;
    aw_error err;
    cr_assert_eq(
        aw_raw_entry_new(S("caracal.audit.events"), S("1-0"), f, 2, &e, &err),
        AW_OK);
    aw_audit_event *ev = NULL;
    cr_assert_eq(aw_event_decode_audit(e, key, &ev, &err), AW_OK, "%s",
                 err.msg);
    cr_expect(ev->is_signed);
    aw_audit_event_free(ev);
    aw_raw_entry_free(e);
    aw_hmac_key_free(key);
    free(data);
}

static aw_raw_entry *revocation_fixture_entry(void)
{
    size_t len;
    char *text = read_fixture("revocation-event.session.valid.json", &len);
    cJSON *obj = cJSON_ParseWithLength(text, len);
    cr_assert(cJSON_IsObject(obj));
    aw_raw_entry *e =
        entry_from_object("caracal.sessions.revoke", "1779364805123-0", obj);
    cJSON_Delete(obj);
    free(text);
    return e;
}

Test(event_caracal, session_revocation_fixture_decodes_as_flat_fields)
{
    aw_raw_entry *e = revocation_fixture_entry();
    aw_revocation_set *set = NULL;
    aw_error err;
    cr_assert_eq(
        aw_event_decode_revocation(AW_ROLE_SESSION_REVOKE, e, NULL, &set, &err),
        AW_OK, "%s", err.msg);
    cr_expect_str_eq(set->zone_id, "zone-1");
    cr_expect_str_eq(set->reason, "grant_revoked");
    cr_expect_eq(set->at_ns, 1779364805123000000LL);
    cr_expect(!set->is_signed);
    cr_assert_eq(set->n, 1);
    cr_expect_eq(set->items[0].anchor.kind, AW_ANCHOR_AUTHORITY_RECORD);
    cr_expect_str_eq(set->items[0].anchor.id, "authority-record-1");
    cr_expect_eq(set->items[0].action, AW_ACTION_REVOKE);
    aw_revocation_set_free(set);
    aw_raw_entry_free(e);
}

Test(event_caracal, revocation_fixture_placeholder_sig_fails_under_a_key)
{
    aw_raw_entry *e = revocation_fixture_entry();
    aw_hmac_key *key = key_from(
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    aw_revocation_set *set = (aw_revocation_set *)1;
    aw_error err;
    cr_expect_eq(
        aw_event_decode_revocation(AW_ROLE_SESSION_REVOKE, e, key, &set, &err),
        AW_ERR_INVALID);
    cr_expect_eq(err.reason, AW_REJECT_SIGNATURE_INVALID, "%s", err.msg);
    cr_expect_null(set);
    aw_hmac_key_free(key);
    aw_raw_entry_free(e);
}
