/* fuzz_support.c -- entry inputs, the test key and the shared checks of the
 * fuzz targets (the input format is described in fuzz_support.h).
 *
 * The harness signs with the real code (aw_hmac_compute over the audit data
 * or over aw_stream_canonical), never with a re-implementation, so a signed
 * input exercises exactly what the daemon verifies.
 */
#include "tests/fuzz/fuzz_support.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char fuzz_key_hex[] =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

void fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    fputs("fuzz: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

aw_hmac_key *fuzz_key(void)
{
    static aw_hmac_key *key;
    if (key == NULL) {
        aw_error err;
        if (aw_hmac_key_from_hex(fuzz_key_hex, strlen(fuzz_key_hex), &key,
                                 &err) != AW_OK)
            fuzz_fail("test key refused: %s", err.msg);
    }
    return key;
}

aw_hmac_key *fuzz_key_for(fuzz_signing signing)
{
    return signing == FUZZ_UNSIGNED ? NULL : fuzz_key();
}

void fuzz_expect_rejection(const char *what, int rc, const aw_error *err)
{
    if (rc != AW_ERR_INVALID)
        fuzz_fail("%s: bad input gave code %d, not AW_ERR_INVALID (%s)", what,
                  rc, err->msg);
    if (err->code != rc)
        fuzz_fail("%s: err.code %d but returned %d", what, err->code, rc);
    if (err->reason <= AW_REJECT_NONE || err->reason >= AW_REJECT_REASON_COUNT)
        fuzz_fail("%s: rejected without a reason (%d): %s", what, err->reason,
                  err->msg);
    size_t len = strnlen(err->msg, AW_ERRMSG_MAX);
    if (len == 0 || len == AW_ERRMSG_MAX)
        fuzz_fail("%s: message empty or not terminated", what);
    /* messages reach logs, terminals and the rejected table: input bytes
     * in them must have been quoted */
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)err->msg[i] < 0x20 || err->msg[i] == 0x7f)
            fuzz_fail("%s: control byte 0x%02x at %zu of the message: %s", what,
                      (unsigned char)err->msg[i], i, err->msg);
    if (!aw_utf8_valid(err->msg, len))
        fuzz_fail("%s: message is not valid UTF-8: %s", what, err->msg);
}

void fuzz_expect_text(const char *what, const char *s, bool required)
{
    if (s == NULL) {
        if (required)
            fuzz_fail("%s: required string is absent", what);
        return;
    }
    size_t len = strlen(s);
    if (required && len == 0)
        fuzz_fail("%s: required string is empty", what);
    if (!aw_utf8_valid(s, len))
        fuzz_fail("%s: decoded string is not valid UTF-8", what);
}

/* ---- Entry inputs -------------------------------------------------------- */

/* The next NUL-terminated piece of [*p, end), or the rest when no NUL. */
static aw_bytes next_piece(const char **p, const char *end)
{
    const char *nul = memchr(*p, '\0', (size_t)(end - *p));
    const char *stop = nul ? nul : end;
    aw_bytes piece = {*p, (size_t)(stop - *p)};
    *p = nul ? nul + 1 : end;
    return piece;
}

static bool named(const aw_field *f, const char *name)
{
    return f->name.len == strlen(name) &&
           memcmp(f->name.ptr, name, f->name.len) == 0;
}

/* Appends the signature field the scheme wants, computed over fields[]. */
static void append_signature(aw_bytes stream, aw_bytes id, aw_field *fields,
                             size_t *n, fuzz_scheme scheme, char hex[65])
{
    unsigned char mac[32];
    aw_error err;
    if (scheme == FUZZ_SCHEME_AUDIT) {
        const aw_field *data = NULL;
        for (size_t i = 0; i < *n && data == NULL; i++)
            if (named(&fields[i], "data"))
                data = &fields[i];
        if (data == NULL)
            return;
        if (aw_hmac_compute(fuzz_key(), data->value.ptr, data->value.len,
                            mac) != AW_OK)
            fuzz_fail("HMAC of data failed");
        fields[(*n)++] = (aw_field){{"sig", 3}, {aw_hex(mac, 32, hex), 64}};
        return;
    }
    aw_raw_entry *unsigned_entry;
    if (aw_raw_entry_new(stream, id, fields, *n, &unsigned_entry, &err) !=
        AW_OK)
        return;
    aw_buf canonical = {0};
    if (aw_stream_canonical(unsigned_entry, &canonical, &err) != AW_OK ||
        aw_hmac_compute(fuzz_key(), canonical.ptr, canonical.len, mac) != AW_OK)
        fuzz_fail("canonical form or its HMAC failed: %s", err.msg);
    aw_buf_free(&canonical);
    aw_raw_entry_free(unsigned_entry);
    fields[(*n)++] = (aw_field){{"_sig", 4}, {aw_hex(mac, 32, hex), 64}};
}

aw_raw_entry *fuzz_entry_from_input(const uint8_t *data, size_t size,
                                    const char *stream, fuzz_scheme scheme,
                                    fuzz_signing *signing)
{
    if (size < 1)
        return NULL;
    *signing = (fuzz_signing)(data[0] % 3);
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    aw_bytes id = next_piece(&p, end);
    aw_field fields[FUZZ_MAX_FIELDS + 1]; /* + the signature */
    size_t n = 0;
    while (p < end && n < FUZZ_MAX_FIELDS) {
        fields[n].name = next_piece(&p, end);
        fields[n].value = p < end ? next_piece(&p, end) : (aw_bytes){"", 0};
        n++;
    }
    aw_bytes stream_bytes = {stream, strlen(stream)};
    char hex[65];
    if (*signing == FUZZ_SIGNED)
        append_signature(stream_bytes, id, fields, &n, scheme, hex);
    aw_raw_entry *entry = NULL;
    aw_error err;
    int rc = aw_raw_entry_new(stream_bytes, id, fields, n, &entry, &err);
    if (rc != AW_OK) {
        fuzz_expect_rejection("aw_raw_entry_new", rc, &err);
        return NULL;
    }
    return entry;
}
