/* test_event_hmac.c -- keys load from key-file text and never leak into
 * messages; HMAC-SHA256 and SHA-256 give the published values; a reused
 * keyed context gives the same answer every time; audit signatures verify
 * only for the exact bytes; the stream scheme sorts keys bytewise.
 * (Caracal's own stream vectors are in test_event_caracal_fixtures.c.) */
#include "event/event.h"

#include <criterion/criterion.h>
#include <string.h>

#define B(lit) ((aw_bytes){(lit), sizeof(lit) - 1})

static const char key_hex[] =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static aw_hmac_key *load(const char *hex)
{
    aw_hmac_key *key = NULL;
    aw_error err;
    cr_assert_eq(aw_hmac_key_from_hex(hex, strlen(hex), &key, &err), AW_OK,
                 "%s", err.msg);
    return key;
}

static void expect_key_refused_quietly(const char *hex, const char *secret)
{
    aw_hmac_key *key = (aw_hmac_key *)1;
    aw_error err = {0};
    cr_expect_eq(aw_hmac_key_from_hex(hex, strlen(hex), &key, &err),
                 AW_ERR_INVALID, "accepted %zu chars", strlen(hex));
    cr_expect_null(key);
    cr_expect(err.msg[0] != '\0');
    cr_expect(strstr(err.msg, secret) == NULL, "message echoes the key: %s",
              err.msg);
}

Test(event_hmac, loads_a_key_file_with_surrounding_whitespace)
{
    aw_hmac_key *a = load(key_hex);
    aw_hmac_key *b = load("  \t0123456789ABCDEF0123456789abcdef0123456789abcdef"
                          "0123456789abcdef\r\n");
    unsigned char ma[32], mb[32];
    cr_assert_eq(aw_hmac_compute(a, "x", 1, ma), AW_OK);
    cr_assert_eq(aw_hmac_compute(b, "x", 1, mb), AW_OK);
    cr_expect_eq(memcmp(ma, mb, 32), 0);
    aw_hmac_key_free(a);
    aw_hmac_key_free(b);
}

Test(event_hmac, refuses_short_or_non_hex_keys_without_echoing_them)
{
    expect_key_refused_quietly("5ec2e75ec2e75ec2e75ec2e75ec2e75e",
                               "5ec2e7"); /* 16 bytes */
    expect_key_refused_quietly("zzsecretzz0123456789abcdef0123456789abcdef"
                               "0123456789abcdef012345",
                               "secret");
    expect_key_refused_quietly(
        "0123456789abcdef0123456789abcdef0123456789abcdef"
        "0123456789abcdefe",
        "89abcdefe"); /* odd */
    expect_key_refused_quietly("", "x");
    char longkey[2 * (AW_HMAC_MAX_KEY_BYTES + 1) + 1];
    memset(longkey, 'a', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    expect_key_refused_quietly(longkey, "aaaaaa");
}

Test(event_hmac, matches_rfc4231_with_a_long_key)
{
    /* RFC 4231 test case 6: 131-byte key of 0xaa */
    char hex[2 * 131 + 1];
    for (int i = 0; i < 131; i++)
        memcpy(hex + 2 * i, "aa", 2);
    hex[262] = '\0';
    aw_hmac_key *key = load(hex);
    static const char msg[] =
        "Test Using Larger Than Block-Size Key - Hash Key First";
    unsigned char mac[32];
    char out[65];
    cr_assert_eq(aw_hmac_compute(key, msg, sizeof msg - 1, mac), AW_OK);
    cr_expect_str_eq(aw_hex(mac, 32, out),
                     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f"
                     "0ee37f54");
    aw_hmac_key_free(key);
}

Test(event_hmac, reused_and_duplicated_contexts_agree)
{
    aw_hmac_key *key = load(key_hex), *copy = NULL;
    aw_error err;
    cr_assert_eq(aw_hmac_key_dup(key, &copy, &err), AW_OK, "%s", err.msg);
    unsigned char first[32], other[32], again[32], from_copy[32];
    aw_hmac_compute(key, "message one", 11, first);
    aw_hmac_compute(key, "message two", 11, other);
    aw_hmac_compute(copy, "message one", 11, from_copy);
    aw_hmac_compute(key, "message one", 11, again);
    cr_expect_neq(memcmp(first, other, 32), 0);
    cr_expect_eq(memcmp(first, again, 32), 0);
    cr_expect_eq(memcmp(first, from_copy, 32), 0);
    aw_hmac_key_free(key);
    aw_hmac_key_free(copy);
}

static void sign(aw_hmac_key *key, aw_bytes data, char hex[65])
{
    unsigned char mac[32];
    cr_assert_eq(aw_hmac_compute(key, data.ptr, data.len, mac), AW_OK);
    aw_hex(mac, 32, hex);
}

Test(event_hmac, audit_signature_covers_the_exact_bytes)
{
    aw_hmac_key *key = load(key_hex);
    aw_bytes data = B("{\"id\":\"e1\"}");
    char sig[65];
    sign(key, data, sig);
    aw_error err;
    cr_expect_eq(aw_hmac_verify_audit(key, data, (aw_bytes){sig, 64}, &err),
                 AW_OK, "%s", err.msg);
    for (int i = 0; i < 64; i++) /* hex case does not matter */
        if (sig[i] >= 'a')
            sig[i] = (char)(sig[i] - 32);
    cr_expect_eq(aw_hmac_verify_audit(key, data, (aw_bytes){sig, 64}, &err),
                 AW_OK, "%s", err.msg);

    aw_bytes respaced = B("{\"id\": \"e1\"}");
    cr_expect_eq(aw_hmac_verify_audit(key, respaced, (aw_bytes){sig, 64}, &err),
                 AW_ERR_INVALID);
    cr_expect_eq(err.reason, AW_REJECT_SIGNATURE_INVALID);
    aw_hmac_key_free(key);
}

Test(event_hmac, malformed_audit_signatures_are_invalid)
{
    aw_hmac_key *key = load(key_hex);
    aw_bytes data = B("{}");
    char sig[65];
    sign(key, data, sig);
    aw_error err;
    const aw_bytes bad[] = {
        {sig, 63},
        B(""),
        B("zz23456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
    };
    for (size_t i = 0; i < 3; i++) {
        cr_expect_eq(aw_hmac_verify_audit(key, data, bad[i], &err),
                     AW_ERR_INVALID, "case %zu", i);
        cr_expect_eq(err.reason, AW_REJECT_SIGNATURE_INVALID, "case %zu", i);
    }
    aw_hmac_key_free(key);
}

Test(event_hmac, sha256_and_hex_match_the_published_digest)
{
    unsigned char d[32];
    char hex[65];
    aw_sha256("abc", 3, d);
    cr_expect_str_eq(aw_hex(d, 32, hex),
                     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61"
                     "f20015ad");
    cr_expect_str_eq(aw_hex((const unsigned char *)"\x00\xff", 2, hex), "00ff");
}

Test(event_hmac, stream_canonical_form_sorts_keys_bytewise)
{
    aw_field f[] = {
        {B("b"), B("2")}, {B("ab"), B("3")}, {B("_sig"), B("x")},
        {B("a"), B("1")}, {B("B"), B("4")},  {B("\xc3\xa9"), B("5")},
    };
    aw_raw_entry *e = NULL;
    aw_error err;
    cr_assert_eq(aw_raw_entry_new(B("st"), B("1-0"), f, 6, &e, &err), AW_OK);
    aw_buf buf = {0};
    cr_assert_eq(aw_stream_canonical(e, &buf, &err), AW_OK);
    static const char want[] = "st\nB=4\na=1\nab=3\nb=2\n\xc3\xa9=5\n";
    cr_expect_eq(buf.len, sizeof want - 1);
    cr_expect_eq(memcmp(buf.ptr, want, sizeof want - 1), 0, "%.*s",
                 (int)buf.len, buf.ptr);
    aw_buf_free(&buf);
    aw_raw_entry_free(e);
}

Test(event_hmac, stream_entries_without_or_with_two_signatures_fail)
{
    aw_hmac_key *key = load(key_hex);
    aw_field unsigned_fields[] = {{B("zone_id"), B("z")}};
    aw_field twice[] = {{B("_sig"), B("a")}, {B("_sig"), B("b")}};
    aw_raw_entry *e1 = NULL, *e2 = NULL;
    aw_error err;
    cr_assert_eq(
        aw_raw_entry_new(B("s"), B("1-0"), unsigned_fields, 1, &e1, &err),
        AW_OK);
    cr_assert_eq(aw_raw_entry_new(B("s"), B("1-0"), twice, 2, &e2, &err),
                 AW_OK);
    cr_expect_eq(aw_hmac_verify_stream(key, e1, -1, &err), AW_ERR_INVALID);
    cr_expect_eq(err.reason, AW_REJECT_SIGNATURE_MISSING);
    cr_expect_eq(aw_hmac_verify_stream(key, e2, -1, &err), AW_ERR_INVALID);
    cr_expect_eq(err.reason, AW_REJECT_SIGNATURE_INVALID);
    aw_raw_entry_free(e1);
    aw_raw_entry_free(e2);
    aw_hmac_key_free(key);
}

/* The n fields f, with a correct `_sig` over their canonical form added
 * as f[n] (f has room for it). Caller frees. */
static aw_raw_entry *correctly_signed(aw_hmac_key *key, aw_field *f, size_t n,
                                      char hex[65])
{
    aw_raw_entry *e = NULL;
    aw_error err = {0};
    cr_assert_eq(aw_raw_entry_new(B("st"), B("1-0"), f, n, &e, &err), AW_OK);
    aw_buf buf = {0};
    cr_assert_eq(aw_stream_canonical(e, &buf, &err), AW_OK);
    unsigned char mac[32];
    cr_assert_eq(aw_hmac_compute(key, buf.ptr, buf.len, mac), AW_OK);
    aw_hex(mac, 32, hex);
    aw_buf_free(&buf);
    aw_raw_entry_free(e);
    f[n] = (aw_field){B("_sig"), {hex, 64}};
    cr_assert_eq(aw_raw_entry_new(B("st"), B("1-0"), f, n + 1, &e, &err),
                 AW_OK);
    return e;
}

/* A correct `_sig` over fields whose canonical lines could stand for other
 * fields (a value "x\nrole=admin" reads as two fields) proves nothing. */
static void expect_ambiguous(aw_hmac_key *key, aw_field *f, size_t n)
{
    char hex[65];
    aw_error err = {0};
    aw_raw_entry *e = correctly_signed(key, f, n, hex);
    cr_expect_eq(aw_hmac_verify_stream(key, e, -1, &err), AW_ERR_INVALID);
    cr_expect_eq(err.reason, AW_REJECT_AMBIGUOUS_SIGNED_FIELD, "%s", err.msg);
    aw_raw_entry_free(e);
}

Test(event_hmac, signed_fields_with_newlines_or_equals_in_keys_are_refused)
{
    aw_hmac_key *key = load(key_hex);
    aw_field value_newline[3] = {{B("reason"), B("x\nrole=admin")},
                                 {B("zone_id"), B("z")}};
    aw_field key_newline[3] = {{B("a\nb"), B("1")}, {B("zone_id"), B("z")}};
    aw_field key_equals[3] = {{B("a=b"), B("1")}, {B("zone_id"), B("z")}};
    aw_field later_line[3] = {{B("reason"), B("see\nthe ticket\nrole=admin")},
                              {B("zone_id"), B("z")}};
    expect_ambiguous(key, value_newline, 2);
    expect_ambiguous(key, key_newline, 2);
    expect_ambiguous(key, key_equals, 2);
    expect_ambiguous(key, later_line, 2);
    aw_hmac_key_free(key);
}

/* A line of a value reads as a further field only in its sorted place
 * (between the value's own name and the next signed name): anywhere else
 * no sorted field set, which is all a producer signs, could give it. */
Test(event_hmac, a_value_line_reads_as_a_field_only_in_sorted_place)
{
    aw_hmac_key *key = load(key_hex);
    aw_field hides_session[3] = {{B("reason"), B("x\nsession_id=victim")},
                                 {B("zone_id"), B("z")}};
    aw_field last_field[3] = {{B("agent_session_id"), B("a")},
                              {B("reason"), B("x\nticket=1")}};
    expect_ambiguous(key, hides_session, 2);
    expect_ambiguous(key, last_field, 2);

    aw_field after_next[4] = {
        {B("reason"), B("Suspended pending review\nticket=INC-4312")},
        {B("session_id"), B("ar-9")},
        {B("zone_id"), B("z")}};
    aw_field before_own[3] = {{B("reason"), B("x\nagent=1")},
                              {B("zone_id"), B("z")}};
    char hex[65];
    aw_error err = {0};
    aw_raw_entry *e = correctly_signed(key, after_next, 3, hex);
    cr_expect_eq(aw_hmac_verify_stream(key, e, -1, &err), AW_OK, "%s", err.msg);
    aw_raw_entry_free(e);
    e = correctly_signed(key, before_own, 2, hex);
    cr_expect_eq(aw_hmac_verify_stream(key, e, -1, &err), AW_OK, "%s", err.msg);
    aw_raw_entry_free(e);
    aw_hmac_key_free(key);
}

/* A folded line is ambiguous only where a decoder would read the two
 * readings differently: a session_id folded into a revocation's reason
 * means another revocation; to the lifecycle decoder, which reads no
 * session_id, it means the same suspend. */
Test(event_hmac, a_folded_line_counts_only_for_a_field_its_decoder_reads)
{
    aw_hmac_key *key = load(key_hex);
    aw_field f[4] = {{B("agent_session_id"), B("as-1")},
                     {B("reason"), B("x\nsession_id=victim")},
                     {B("zone_id"), B("z")}};
    char hex[65];
    aw_error err = {0};
    aw_raw_entry *e = correctly_signed(key, f, 3, hex);
    cr_expect_eq(aw_hmac_verify_stream(key, e, AW_ROLE_SESSION_REVOKE, &err),
                 AW_ERR_INVALID);
    cr_expect_eq(err.reason, AW_REJECT_AMBIGUOUS_SIGNED_FIELD);
    cr_expect_eq(aw_hmac_verify_stream(key, e, -1, &err), AW_ERR_INVALID);
    cr_expect_eq(aw_hmac_verify_stream(key, e, AW_ROLE_AGENT_LIFECYCLE, &err),
                 AW_OK, "%s", err.msg);
    aw_raw_entry_free(e);
    aw_hmac_key_free(key);
}

/* An operator's revocation reason may span lines: free text reads as no
 * other field, and Caracal's own verifier takes it. */
Test(event_hmac, a_signed_value_of_free_text_lines_verifies)
{
    aw_hmac_key *key = load(key_hex);
    aw_field f[3] = {{B("reason"), B("compromised laptop\nsee ticket 4312")},
                     {B("zone_id"), B("z")}};
    char hex[65];
    aw_error err = {0};
    aw_raw_entry *e = correctly_signed(key, f, 2, hex);
    cr_expect_eq(aw_hmac_verify_stream(key, e, -1, &err), AW_OK, "%s", err.msg);
    aw_raw_entry_free(e);
    aw_hmac_key_free(key);
}
