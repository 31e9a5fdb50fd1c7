/* test_event_json.c -- a signed payload must mean one thing: aw_json_validate
 * refuses duplicate keys (compared as decoded text), invalid UTF-8, NUL in
 * any form, excessive nesting and anything that is not exactly one JSON
 * value, each with its own reason; well-formed JSON passes untouched. */
#include "event/event.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length-explicit, so cases may hold NUL bytes. */
#define VALIDATE(lit, err) aw_json_validate((lit), sizeof(lit) - 1, (err))

static void expect_valid_n(const char *text, size_t len)
{
    aw_error err = {0};
    cr_expect_eq(aw_json_validate(text, len, &err), AW_OK, "%s: %s", text,
                 err.msg);
}
#define expect_valid(lit) expect_valid_n((lit), sizeof(lit) - 1)

static void expect_reason_n(const char *text, size_t len, aw_reject_reason want)
{
    aw_error err = {0};
    int rc = aw_json_validate(text, len, &err);
    cr_expect_eq(rc, AW_ERR_INVALID, "accepted: %.*s", (int)len, text);
    cr_expect_eq(err.reason, want, "%.*s: got %s (%s), want %s", (int)len, text,
                 aw_reject_reason_name(err.reason), err.msg,
                 aw_reject_reason_name(want));
}
#define expect_reason(lit, want) expect_reason_n((lit), sizeof(lit) - 1, (want))

Test(event_json, accepts_well_formed_values)
{
    expect_valid("{}");
    expect_valid("[]");
    expect_valid(" \t\r\n{\"a\" : [1, -2.5e+3, 0, 0.0, 1E9, true, false, null,"
                 " \"x\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\"]} \n");
    expect_valid("\"just a string\"");
    expect_valid("42");
    expect_valid("{\"a\":{\"a\":{\"a\":1}}}"); /* same key, other objects */
    expect_valid("[{\"k\":1},{\"k\":2}]");
    expect_valid("{\"a\":1,\"A\":2}");
    expect_valid("{\"\":1,\" \":2}");
}

Test(event_json, accepts_multibyte_utf8_and_escaped_pairs)
{
    expect_valid("{\"caf\xc3\xa9\":\"\xe2\x82\xac \xf0\x9f\x98\x80 "
                 "\xf4\x8f\xbf\xbf\"}");
    expect_valid("\"\\ud83d\\ude00\"");
}

Test(event_json, rejects_what_is_not_json)
{
    expect_reason("", AW_REJECT_NOT_JSON);
    expect_reason("   ", AW_REJECT_NOT_JSON);
    expect_reason("nope", AW_REJECT_NOT_JSON);
    expect_reason("{'a':1}", AW_REJECT_NOT_JSON);
    expect_reason("{\"a\":}", AW_REJECT_NOT_JSON);
    expect_reason("{\"a\" 1}", AW_REJECT_NOT_JSON);
    expect_reason("{\"a\":1,}", AW_REJECT_NOT_JSON);
    expect_reason("[1,]", AW_REJECT_NOT_JSON);
    expect_reason("[1 2]", AW_REJECT_NOT_JSON);
    expect_reason("01", AW_REJECT_NOT_JSON);
    expect_reason("1.", AW_REJECT_NOT_JSON);
    expect_reason("-", AW_REJECT_NOT_JSON);
    expect_reason("1e", AW_REJECT_NOT_JSON);
    expect_reason("+1", AW_REJECT_NOT_JSON);
    expect_reason("tru", AW_REJECT_NOT_JSON);
    expect_reason("\"tab\there\"", AW_REJECT_NOT_JSON);
    expect_reason("\"\\x41\"", AW_REJECT_NOT_JSON);
    expect_reason("\"\\u12G4\"", AW_REJECT_NOT_JSON);
    expect_reason("{} {}", AW_REJECT_NOT_JSON);
    expect_reason("{}x", AW_REJECT_NOT_JSON);
}

Test(event_json, rejects_every_truncation_of_an_object)
{
    static const char doc[] =
        "{\"id\":\"a\\u00e9\\ud83d\\ude00\",\"n\":[1.5e3,true,null],"
        "\"o\":{\"k\":\"caf\xc3\xa9\"}}";
    size_t len = sizeof doc - 1;
    expect_valid_n(doc, len);
    for (size_t cut = 0; cut < len; cut++) {
        aw_error err = {0};
        int rc = aw_json_validate(doc, cut, &err);
        cr_assert_eq(rc, AW_ERR_INVALID, "prefix of %zu bytes accepted", cut);
        /* cutting inside a multi-byte character is bad UTF-8 as well */
        cr_assert(err.reason == AW_REJECT_NOT_JSON ||
                      err.reason == AW_REJECT_INVALID_UTF8,
                  "prefix of %zu bytes: %s", cut, err.msg);
    }
}

Test(event_json, rejects_duplicate_keys_in_signed_payload)
{
    expect_reason("{\"a\":1,\"a\":2}", AW_REJECT_DUPLICATE_KEY);
    expect_reason("{\"a\":1,\"b\":2,\"a\":1}", AW_REJECT_DUPLICATE_KEY);
}

Test(event_json, rejects_duplicate_keys_in_nested_objects)
{
    expect_reason("{\"m\":{\"x\":1,\"x\":2}}", AW_REJECT_DUPLICATE_KEY);
    expect_reason("[1,[{\"ok\":1},{\"d\":1,\"d\":1}]]",
                  AW_REJECT_DUPLICATE_KEY);
    /* the outer object's keys survive the inner object's scan */
    expect_reason("{\"a\":{\"b\":1},\"a\":2}", AW_REJECT_DUPLICATE_KEY);
}

Test(event_json, compares_keys_as_decoded_text)
{
    expect_reason("{\"a\":1,\"\\u0061\":2}", AW_REJECT_DUPLICATE_KEY);
    expect_reason("{\"\\u0061\":1,\"a\":2}", AW_REJECT_DUPLICATE_KEY);
    expect_reason("{\"/\":1,\"\\/\":2}", AW_REJECT_DUPLICATE_KEY);
    expect_reason("{\"\xc3\xa9\":1,\"\\u00E9\":2}", AW_REJECT_DUPLICATE_KEY);
    expect_reason("{\"\xf0\x9f\x98\x80\":1,\"\\ud83d\\ude00\":2}",
                  AW_REJECT_DUPLICATE_KEY);
    expect_valid("{\"a\":1,\"\\u0062\":2,\"ab\":3,\"\\u0061\\u0062c\":4}");
}

/* {"k0":0,"k1":1,...} with n keys, and `dup` repeated at the end if set. */
static char *many_keys(int n, const char *dup)
{
    size_t cap = (size_t)n * 24 + 64;
    char *s = malloc(cap);
    size_t o = (size_t)snprintf(s, cap, "{");
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(s + o, cap - o, "%s\"k%d\":{\"k%d\":%d}",
                              i ? "," : "", i, i, i);
    if (dup)
        o += (size_t)snprintf(s + o, cap - o, ",\"%s\":0", dup);
    snprintf(s + o, cap - o, "}");
    return s;
}

Test(event_json, finds_duplicates_among_many_keys)
{
    char *ok = many_keys(300, NULL);
    expect_valid_n(ok, strlen(ok));
    char *dup_first = many_keys(300, "k0");
    expect_reason_n(dup_first, strlen(dup_first), AW_REJECT_DUPLICATE_KEY);
    char *dup_escaped = many_keys(20, "\\u006b19");
    expect_reason_n(dup_escaped, strlen(dup_escaped), AW_REJECT_DUPLICATE_KEY);
    free(ok);
    free(dup_first);
    free(dup_escaped);
}

Test(event_json, names_the_duplicate_key)
{
    aw_error err;
    VALIDATE("{\"zone_id\":\"a\",\"zone_id\":\"b\"}", &err);
    cr_expect(strstr(err.msg, "zone_id") != NULL, "%s", err.msg);
}

Test(event_json, rejects_invalid_utf8)
{
    expect_reason("\"\xc0\xaf\"", AW_REJECT_INVALID_UTF8);     /* overlong */
    expect_reason("\"\xe0\x80\xaf\"", AW_REJECT_INVALID_UTF8); /* overlong */
    expect_reason("\"\xf0\x80\x80\xaf\"",
                  AW_REJECT_INVALID_UTF8);                     /* overlong */
    expect_reason("\"\xed\xa0\x80\"", AW_REJECT_INVALID_UTF8); /* surrogate */
    expect_reason("\"\xf4\x90\x80\x80\"", AW_REJECT_INVALID_UTF8); /* >10FFFF */
    expect_reason("\"\x80\"", AW_REJECT_INVALID_UTF8); /* stray continuation */
    expect_reason("\"\xe2\x82\"", AW_REJECT_INVALID_UTF8); /* cut short */
    expect_reason("\"\xff\"", AW_REJECT_INVALID_UTF8);
    expect_reason("{\"k\xc3\":1}", AW_REJECT_INVALID_UTF8); /* in a key */
}

Test(event_json, rejects_escapes_of_lone_surrogates)
{
    expect_reason("\"\\ud800\"", AW_REJECT_INVALID_UTF8);
    expect_reason("\"\\udc00\"", AW_REJECT_INVALID_UTF8);
    expect_reason("\"\\ud800\\u0041\"", AW_REJECT_INVALID_UTF8);
    expect_reason("\"\\ud800 and more text\"", AW_REJECT_INVALID_UTF8);
}

Test(event_json, rejects_nul_raw_escaped_and_outside_strings)
{
    expect_reason("{\"a\":\"x\0y\"}", AW_REJECT_EMBEDDED_NUL);
    expect_reason("{\"a\":\"\\u0000\"}", AW_REJECT_EMBEDDED_NUL);
    expect_reason("{\"a\0\":1}", AW_REJECT_EMBEDDED_NUL);
    expect_reason("{\"a\":1}\0", AW_REJECT_EMBEDDED_NUL);
    expect_reason("{\"a\":\0}", AW_REJECT_EMBEDDED_NUL);
}

static char *nested(int depth)
{
    char *s = malloc((size_t)depth * 2 + 1);
    for (int i = 0; i < depth; i++) {
        s[i] = '[';
        s[depth + i] = ']';
    }
    s[2 * depth] = '\0';
    return s;
}

Test(event_json, bounds_nesting_depth)
{
    char *ok = nested(AW_MAX_JSON_DEPTH);
    char *deep = nested(AW_MAX_JSON_DEPTH + 1);
    expect_valid_n(ok, strlen(ok));
    expect_reason_n(deep, strlen(deep), AW_REJECT_OVERSIZED);
    free(ok);
    free(deep);
}

Test(event_json, utf8_check_agrees_at_every_alignment)
{
    char buf[64];
    const char *chars[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
    const char *bad[] = {"\xc0\x80", "\xed\xbf\xbf", "\xf8\x88\x80\x80\x80"};
    for (size_t pad = 0; pad < 17; pad++) {
        for (size_t c = 0; c < 3; c++) {
            memset(buf, 'a', pad);
            strcpy(buf + pad, chars[c]);
            strcat(buf, "tail-of-ascii");
            cr_expect(aw_utf8_valid(buf, strlen(buf)), "pad %zu char %zu", pad,
                      c);
            strcpy(buf + pad, bad[c]);
            strcat(buf, "tail-of-ascii");
            cr_expect(!aw_utf8_valid(buf, strlen(buf)), "pad %zu bad %zu", pad,
                      c);
        }
    }
    cr_expect(aw_utf8_valid("", 0));
    cr_expect(aw_utf8_valid("\0", 1)); /* NUL is UTF-8; callers check it */
}
