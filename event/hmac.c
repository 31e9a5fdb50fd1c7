/* hmac.c -- HMAC-SHA256 signatures of Caracal's two schemes, SHA-256, hex.
 *
 * Audit scheme: `sig` is the hex HMAC of the exact bytes of `data`. Stream
 * scheme: `_sig` is the hex HMAC of "<stream>\n" followed by "key=value\n"
 * for every other field, keys sorted bytewise (memcmp order, a prefix before
 * its extensions). Both are checked on the raw bytes, before anything is
 * parsed, and compared in constant time (CRYPTO_memcmp).
 *
 * Speed: a key holds an EVP_MAC context that was keyed once. Re-initialising
 * it without a key restarts from the stored inner/outer pad state, so each
 * message costs one HMAC, not a key schedule. The context is mutable state:
 * one key per thread (aw_hmac_key_dup makes another).
 *
 * Secrecy: the key bytes live only inside OpenSSL's context; the decoded
 * copy is wiped at once, and no message ever contains key text, not even a
 * fragment of a malformed key.
 */
#include "event/event.h"
#include "event/decode.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct aw_hmac_key {
    EVP_MAC_CTX *ctx; /* keyed; re-initialised before each message */
};

static int hex_nibble(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes 2*n hex characters into n bytes; false on a non-hex character. */
static bool hex_decode(const char *hex, size_t n, unsigned char *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hex_nibble((unsigned char)hex[2 * i]);
        int lo = hex_nibble((unsigned char)hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
           c == '\f';
}

static EVP_MAC_CTX *keyed_context(const unsigned char *key, size_t len)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac == NULL)
        return NULL;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac); /* the context holds its own reference */
    if (ctx == NULL)
        return NULL;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    if (!EVP_MAC_init(ctx, key, len, params)) {
        EVP_MAC_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static int key_wrap(EVP_MAC_CTX *ctx, aw_hmac_key **out, aw_error *err)
{
    if (ctx == NULL)
        return aw_error_set(err, AW_ERR,
                            "OpenSSL could not set up HMAC-SHA256");
    aw_hmac_key *key = malloc(sizeof *key);
    if (key == NULL) {
        EVP_MAC_CTX_free(ctx);
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory for an HMAC key");
    }
    key->ctx = ctx;
    *out = key;
    return AW_OK;
}

int aw_hmac_key_from_hex(const char *hex, size_t len, aw_hmac_key **out,
                         aw_error *err)
{
    *out = NULL;
    while (len > 0 && is_space(hex[0])) {
        hex++;
        len--;
    }
    while (len > 0 && is_space(hex[len - 1]))
        len--;
    if (len % 2 != 0)
        return aw_error_reject(err, AW_REJECT_BAD_VALUE,
                               "HMAC key is not hex: odd number of digits");
    size_t n = len / 2;
    if (n < AW_HMAC_MIN_KEY_BYTES || n > AW_HMAC_MAX_KEY_BYTES)
        return aw_error_reject(err, AW_REJECT_BAD_VALUE,
                               "HMAC key is %zu bytes; %d to %d needed", n,
                               AW_HMAC_MIN_KEY_BYTES, AW_HMAC_MAX_KEY_BYTES);
    unsigned char bytes[AW_HMAC_MAX_KEY_BYTES];
    if (!hex_decode(hex, n, bytes)) {
        OPENSSL_cleanse(bytes, sizeof bytes);
        return aw_error_reject(err, AW_REJECT_BAD_VALUE, "HMAC key is not hex");
    }
    EVP_MAC_CTX *ctx = keyed_context(bytes, n);
    OPENSSL_cleanse(bytes, sizeof bytes);
    return key_wrap(ctx, out, err);
}

int aw_hmac_key_dup(const aw_hmac_key *key, aw_hmac_key **out, aw_error *err)
{
    *out = NULL;
    return key_wrap(EVP_MAC_CTX_dup(key->ctx), out, err);
}

void aw_hmac_key_free(aw_hmac_key *key)
{
    if (key == NULL)
        return;
    EVP_MAC_CTX_free(key->ctx);
    free(key);
}

static int mac_begin(aw_hmac_key *key)
{
    return EVP_MAC_init(key->ctx, NULL, 0, NULL) ? AW_OK : AW_ERR;
}

static int mac_update(aw_hmac_key *key, const void *data, size_t len)
{
    return EVP_MAC_update(key->ctx, data, len) ? AW_OK : AW_ERR;
}

static int mac_end(aw_hmac_key *key, unsigned char mac[32])
{
    size_t outl = 0;
    if (!EVP_MAC_final(key->ctx, mac, &outl, 32) || outl != 32)
        return AW_ERR;
    return AW_OK;
}

int aw_hmac_compute(aw_hmac_key *key, const void *data, size_t len,
                    unsigned char mac[32])
{
    if (mac_begin(key) != AW_OK || mac_update(key, data, len) != AW_OK)
        return AW_ERR;
    return mac_end(key, mac);
}

/* Compares a computed MAC with the hex signature in field `name`. */
static int mac_matches(const unsigned char mac[32], aw_bytes sig_hex,
                       const char *name, aw_error *err)
{
    unsigned char want[32];
    if (sig_hex.len != 64 || !hex_decode(sig_hex.ptr, 32, want))
        return aw_error_reject(err, AW_REJECT_SIGNATURE_INVALID,
                               "%s is not 64 hex digits", name);
    if (CRYPTO_memcmp(mac, want, 32) != 0)
        return aw_error_reject(err, AW_REJECT_SIGNATURE_INVALID,
                               "%s does not match", name);
    return AW_OK;
}

static int mac_failed(aw_error *err)
{
    return aw_error_set(err, AW_ERR, "OpenSSL failed computing HMAC-SHA256");
}

int aw_hmac_verify_audit(aw_hmac_key *key, aw_bytes data, aw_bytes sig_hex,
                         aw_error *err)
{
    unsigned char mac[32];
    if (aw_hmac_compute(key, data.ptr, data.len, mac) != AW_OK)
        return mac_failed(err);
    return mac_matches(mac, sig_hex, "sig", err);
}

/* ---- The stream scheme --------------------------------------------------- */

static bool is_sig_field(const aw_field *f)
{
    return f->name.len == 4 && memcmp(f->name.ptr, "_sig", 4) == 0;
}

/* Bytewise order of names, as the canonical form sorts them. */
static int name_cmp(aw_bytes a, aw_bytes b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.ptr, b.ptr, n) : 0;
    if (c != 0)
        return c;
    return (a.len > b.len) - (a.len < b.len);
}

static int by_name(const void *x, const void *y)
{
    const aw_field *a = *(const aw_field *const *)x;
    const aw_field *b = *(const aw_field *const *)y;
    int c = name_cmp(a->name, b->name);
    if (c != 0)
        return c;
    return (a > b) - (a < b); /* equal names keep their entry order */
}

/* Receives the canonical text piece by piece. */
typedef int (*canonical_sink)(void *ud, const void *bytes, size_t len);

#define SORT_LOCAL 64

static int canonical_walk(const aw_raw_entry *entry, canonical_sink sink,
                          void *ud, aw_error *err)
{
    const aw_field *local[SORT_LOCAL];
    const aw_field **order = local;
    if (entry->nfields > SORT_LOCAL) {
        order = malloc(entry->nfields * sizeof *order);
        if (order == NULL)
            return aw_error_set(err, AW_ERR_NOMEM,
                                "out of memory sorting %zu fields",
                                entry->nfields);
    }
    size_t n = 0;
    for (size_t i = 0; i < entry->nfields; i++)
        if (!is_sig_field(&entry->fields[i]))
            order[n++] = &entry->fields[i];
    qsort(order, n, sizeof *order, by_name);

    int rc = sink(ud, entry->stream.ptr, entry->stream.len);
    rc |= sink(ud, "\n", 1);
    for (size_t i = 0; i < n; i++) {
        rc |= sink(ud, order[i]->name.ptr, order[i]->name.len);
        rc |= sink(ud, "=", 1);
        rc |= sink(ud, order[i]->value.ptr, order[i]->value.len);
        rc |= sink(ud, "\n", 1);
    }
    if (order != local)
        free(order);
    return rc == AW_OK ? AW_OK : AW_ERR;
}

static int buf_sink(void *ud, const void *bytes, size_t len)
{
    return aw_buf_append(ud, bytes, len);
}

int aw_stream_canonical(const aw_raw_entry *entry, aw_buf *out, aw_error *err)
{
    size_t start = out->len;
    int rc = canonical_walk(entry, buf_sink, out, err);
    if (rc == AW_ERR) {
        out->len = start;
        return aw_error_set(err, AW_ERR_NOMEM,
                            "out of memory writing the canonical form");
    }
    return rc;
}

static int mac_sink(void *ud, const void *bytes, size_t len)
{
    return mac_update(ud, bytes, len);
}

/* Whether a line after a newline of value holds an '=': the value would
 * read as further fields ("x\nsession_id=s" as a reason and a session_id),
 * so the fields of a signed entry could be folded into it. A newline in
 * free text ("compromised\nsee the ticket"), as an operator's revocation
 * reason may hold, reads as nothing else. */
/* The smallest signed field name after name, if any. */
static bool next_name(const aw_raw_entry *entry, aw_bytes name, aw_bytes *next)
{
    bool found = false;
    for (size_t i = 0; i < entry->nfields; i++) {
        const aw_field *f = &entry->fields[i];
        if (!is_sig_field(f) && name_cmp(f->name, name) > 0 &&
            (!found || name_cmp(f->name, *next) < 0)) {
            *next = f->name;
            found = true;
        }
    }
    return found;
}

/* Whether f's value could be fields folded into it: a line after a newline
 * reads "k=..." with k sorting between f's name and the next signed name,
 * so that splitting the value there gives sorted fields, which a producer
 * may have signed (the canonical form sorts its keys); and either field is
 * one role's decoder takes meaning from, so the two readings would mean
 * different things. Any other line is free text ("ticket=INC-4312" in a
 * revocation's reason). */
static bool value_reads_as_fields(const aw_raw_entry *entry, const aw_field *f,
                                  int role)
{
    const char *p = f->value.ptr, *end = f->value.ptr + f->value.len;
    if (f->value.len == 0 || !memchr(p, '\n', f->value.len))
        return false; /* nearly every value: nothing to fold */
    bool own_matters = aw_stream_name_matters(role, f->name);
    aw_bytes next = {0};
    bool has_next = next_name(entry, f->name, &next);
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        const char *line = ++p;
        const char *stop = memchr(line, '\n', (size_t)(end - line));
        const char *eq =
            memchr(line, '=', (size_t)((stop ? stop : end) - line));
        aw_bytes key = {line, eq ? (size_t)(eq - line) : 0};
        if (eq && name_cmp(key, f->name) > 0 &&
            (!has_next || name_cmp(key, next) < 0) &&
            (own_matters || aw_stream_name_matters(role, key)))
            return true;
    }
    return false;
}

/* The canonical form is one "k=v\n" line per field, sorted by k, so a `\n`
 * in a key, an `=` in a key, or a value with a line that could be one more
 * field in its place lets one field set sign as another (a value
 * "x\nrole=admin" before zone_id reads as two fields). Such entries are
 * refused before the MAC is computed: a valid signature over them would
 * prove nothing. */
static int check_unambiguous(const aw_raw_entry *entry, int role, aw_error *err)
{
    char q[AW_QUOTE_SIZE];
    for (size_t i = 0; i < entry->nfields; i++) {
        const aw_field *f = &entry->fields[i];
        if (is_sig_field(f))
            continue;
        if (memchr(f->name.ptr, '\n', f->name.len) != NULL ||
            memchr(f->name.ptr, '=', f->name.len) != NULL)
            return aw_error_reject(err, AW_REJECT_AMBIGUOUS_SIGNED_FIELD,
                                   "field name \"%s\" holds a newline or "
                                   "'=', which the stream signature cannot "
                                   "tell from other fields",
                                   aw_quote(f->name.ptr, f->name.len, q));
        if (value_reads_as_fields(entry, f, role))
            return aw_error_reject(err, AW_REJECT_AMBIGUOUS_SIGNED_FIELD,
                                   "the value of %s holds a line that reads "
                                   "as a further field in sorted place, "
                                   "which the stream signature cannot tell "
                                   "from one",
                                   aw_quote(f->name.ptr, f->name.len, q));
    }
    return AW_OK;
}

int aw_hmac_verify_stream(aw_hmac_key *key, const aw_raw_entry *entry, int role,
                          aw_error *err)
{
    const aw_bytes *sig = NULL;
    for (size_t i = 0; i < entry->nfields; i++) {
        if (!is_sig_field(&entry->fields[i]))
            continue;
        if (sig != NULL)
            return aw_error_reject(err, AW_REJECT_SIGNATURE_INVALID,
                                   "_sig appears twice");
        sig = &entry->fields[i].value;
    }
    if (sig == NULL)
        return aw_error_reject(err, AW_REJECT_SIGNATURE_MISSING,
                               "no _sig field, and a stream key is set");
    int ambiguous = check_unambiguous(entry, role, err);
    if (ambiguous != AW_OK)
        return ambiguous;
    unsigned char mac[32];
    if (mac_begin(key) != AW_OK)
        return mac_failed(err);
    int rc = canonical_walk(entry, mac_sink, key, err);
    if (rc == AW_ERR || (rc == AW_OK && mac_end(key, mac) != AW_OK))
        return mac_failed(err);
    if (rc != AW_OK)
        return rc;
    return mac_matches(mac, *sig, "_sig", err);
}

/* ---- SHA-256 and hex ----------------------------------------------------- */

/* SHA256() looks the algorithm up in OpenSSL's provider store on every
 * call, under a lock (as long as hashing a whole entry); it is looked up
 * once per process instead. The fetched EVP_MD is immutable and safe to
 * share between threads, so this is a cache, not state. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void aw_sha256(const void *data, size_t len, unsigned char out[32])
{
    pthread_once(&sha256_once, sha256_fetch);
    if (sha256_md == NULL || !EVP_Digest(data, len, out, NULL, sha256_md, NULL))
        SHA256(data, len, out);
}

uint64_t aw_id_digest(const char *id)
{
    unsigned char digest[32];
    aw_sha256(id, strlen(id), digest);
    uint64_t key = 0;
    for (int i = 0; i < 8; i++)
        key = key << 8 | digest[i];
    return key;
}

char *aw_hex(const unsigned char *bytes, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * len] = '\0';
    return out;
}
