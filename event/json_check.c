/* json_check.c -- reading JSON the way a signed payload must be read.
 *
 * Common JSON parsers (cJSON among them) accept duplicate keys (the last one
 * wins, or the first, depending on how you look a key up), do not validate
 * UTF-8, and cut strings at an escaped \u0000. A signed payload read like
 * that can mean two things to two readers. So before a decoder reads a
 * member (json_read.c, which relies on all of this), aw_json_validate makes
 * one pass that checks, without building a tree:
 *
 *   - strict RFC 8259 grammar, one value, nothing after it but whitespace;
 *   - UTF-8: no overlongs, no surrogates, nothing above U+10FFFF, and no
 *     \u escape that would decode to a lone surrogate;
 *   - no NUL, neither raw nor as \u0000 (decoded strings must be C strings);
 *   - no object with the same key twice, comparing keys as decoded text, so
 *     "a" and "\u0061" are the same key;
 *   - nesting no deeper than AW_MAX_JSON_DEPTH.
 *
 * Duplicate keys: while scanning an object its keys are pushed, as spans of
 * the input plus a hash of their decoded code points, onto one stack shared
 * by every nesting level; when the object closes its keys are sorted by hash
 * and only neighbours whose hashes agree have their text compared. Then they
 * are popped. The stack lives in
 * the scanner and reaches the heap only for inputs with very many live keys.
 */
#include "event/event.h"
#include "event/decode.h"

#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 --------------------------------------------------------------- */

static bool is_cont(unsigned char c)
{
    return (c & 0xc0) == 0x80;
}

/* Decodes one well-formed UTF-8 sequence at p (p < end). Returns its length,
 * or 0 when the bytes are not well-formed (overlong, surrogate, > U+10FFFF,
 * truncated, stray continuation byte). */
static size_t utf8_decode(const unsigned char *p, const unsigned char *end,
                          uint32_t *cp)
{
    unsigned char c = p[0];
    size_t left = (size_t)(end - p);
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c < 0xc2)
        return 0;
    if (c < 0xe0) {
        if (left < 2 || !is_cont(p[1]))
            return 0;
        *cp = ((uint32_t)(c & 0x1f) << 6) | (p[1] & 0x3f);
        return 2;
    }
    if (c < 0xf0) {
        if (left < 3 || !is_cont(p[2]))
            return 0;
        unsigned char lo = c == 0xe0 ? 0xa0 : 0x80,
                      hi = c == 0xed ? 0x9f : 0xbf;
        if (p[1] < lo || p[1] > hi)
            return 0;
        *cp = ((uint32_t)(c & 0x0f) << 12) | ((uint32_t)(p[1] & 0x3f) << 6) |
              (p[2] & 0x3f);
        return 3;
    }
    if (c < 0xf5) {
        if (left < 4 || !is_cont(p[2]) || !is_cont(p[3]))
            return 0;
        unsigned char lo = c == 0xf0 ? 0x90 : 0x80,
                      hi = c == 0xf4 ? 0x8f : 0xbf;
        if (p[1] < lo || p[1] > hi)
            return 0;
        *cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(p[1] & 0x3f) << 12) |
              ((uint32_t)(p[2] & 0x3f) << 6) | (p[3] & 0x3f);
        return 4;
    }
    return 0;
}

bool aw_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        /* ASCII runs, eight bytes at a time */
        while ((size_t)(end - p) >= 8) {
            uint64_t word;
            memcpy(&word, p, 8);
            if (word & 0x8080808080808080ULL)
                break;
            p += 8;
        }
        if (p == end)
            break;
        uint32_t cp;
        size_t n = utf8_decode(p, end, &cp);
        if (n == 0)
            return false;
        p += n;
    }
    return true;
}

/* ---- Keys ---------------------------------------------------------------- */

typedef struct key_span {
    const unsigned char *raw; /* first byte after the opening quote */
    size_t len;               /* raw bytes before the closing quote */
    uint64_t hash;            /* FNV-1a over the decoded code points */
    bool escaped;             /* raw holds a backslash escape */
} key_span;

#define FNV_OFFSET 14695981039346656037ULL
#define FNV_PRIME  1099511628211ULL

static unsigned hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return 16;
}

/* Four hex digits at p, or a value above 0xffff when one is not hex. */
static uint32_t hex4(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned d = hex_value(p[i]);
        if (d > 15)
            return 0x10000;
        v = (v << 4) | d;
    }
    return v;
}

static bool is_high_surrogate(uint32_t u)
{
    return u >= 0xd800 && u <= 0xdbff;
}

static bool is_low_surrogate(uint32_t u)
{
    return u >= 0xdc00 && u <= 0xdfff;
}

uint32_t aw_json_unescape(const unsigned char **pp)
{
    const unsigned char *p = *pp;
    uint32_t cp = 0;
    switch (p[1]) {
    case 'b': cp = '\b'; break;
    case 'f': cp = '\f'; break;
    case 'n': cp = '\n'; break;
    case 'r': cp = '\r'; break;
    case 't': cp = '\t'; break;
    case 'u':
        cp = hex4(p + 2);
        if (is_high_surrogate(cp)) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (hex4(p + 8) - 0xdc00);
            *pp = p + 12;
            return cp;
        }
        *pp = p + 6;
        return cp;
    default: cp = p[1]; break; /* \" \\ \/ */
    }
    *pp = p + 2;
    return cp;
}

/* The next code point of an already validated string span. */
static uint32_t next_code_point(const unsigned char **pp,
                                const unsigned char *end)
{
    const unsigned char *p = *pp;
    uint32_t cp = 0;
    if (*p == '\\')
        return aw_json_unescape(pp);
    *pp = p + utf8_decode(p, end, &cp);
    return cp;
}

static bool keys_equal(const key_span *a, const key_span *b)
{
    if (!a->escaped && !b->escaped)
        return a->len == b->len && memcmp(a->raw, b->raw, a->len) == 0;
    const unsigned char *pa = a->raw, *ea = a->raw + a->len;
    const unsigned char *pb = b->raw, *eb = b->raw + b->len;
    while (pa < ea && pb < eb)
        if (next_code_point(&pa, ea) != next_code_point(&pb, eb))
            return false;
    return pa == ea && pb == eb;
}

static int by_hash(const void *x, const void *y)
{
    const key_span *a = x, *b = y;
    return (a->hash > b->hash) - (a->hash < b->hash);
}

/* ---- The scanner --------------------------------------------------------- */

#define KEYS_LOCAL          128
#define KEYS_INSERTION_SORT 32

typedef struct scanner {
    const unsigned char *start, *p, *end;
    aw_error *err;
    key_span *keys; /* local, or the heap once it outgrew it */
    size_t nkeys, cap;
    key_span local[KEYS_LOCAL];
} scanner;

static size_t offset(const scanner *s)
{
    return (size_t)(s->p - s->start);
}

/* The byte at s->p is not what the grammar wants here. */
static int unexpected(scanner *s, const char *wanted)
{
    if (s->p == s->end)
        return aw_error_reject(s->err, AW_REJECT_NOT_JSON,
                               "truncated at byte %zu (wanted %s)", offset(s),
                               wanted);
    if (*s->p == '\0')
        return aw_error_reject(s->err, AW_REJECT_EMBEDDED_NUL,
                               "NUL byte at byte %zu", offset(s));
    return aw_error_reject(s->err, AW_REJECT_NOT_JSON,
                           "unexpected byte 0x%02x at byte %zu (wanted %s)",
                           *s->p, offset(s), wanted);
}

static void skip_ws(scanner *s)
{
    while (s->p < s->end &&
           (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

static int push_key(scanner *s, const key_span *key)
{
    if (s->nkeys == s->cap) {
        size_t cap = s->cap * 2;
        key_span *keys = malloc(cap * sizeof *keys);
        if (keys == NULL)
            return aw_error_set(s->err, AW_ERR_NOMEM,
                                "out of memory checking JSON keys");
        memcpy(keys, s->keys, s->nkeys * sizeof *keys);
        if (s->keys != s->local)
            free(s->keys);
        s->keys = keys;
        s->cap = cap;
    }
    s->keys[s->nkeys++] = *key;
    return AW_OK;
}

/* Reads \uXXXX (and its low half when it is a high surrogate) at s->p, which
 * points at the 'u'; leaves s->p after the last hex digit. */
static int scan_unicode_escape(scanner *s, uint32_t *cp)
{
    if (s->end - s->p < 5)
        return unexpected(s, "four hex digits");
    uint32_t u = hex4(s->p + 1);
    if (u > 0xffff)
        return aw_error_reject(s->err, AW_REJECT_NOT_JSON,
                               "bad \\u escape at byte %zu", offset(s));
    s->p += 5;
    if (is_low_surrogate(u))
        return aw_error_reject(s->err, AW_REJECT_INVALID_UTF8,
                               "unpaired surrogate escape at byte %zu",
                               offset(s));
    if (is_high_surrogate(u)) {
        size_t left = (size_t)(s->end - s->p);
        bool escape_next =
            left > 0 && s->p[0] == '\\' && (left == 1 || s->p[1] == 'u');
        if (left == 0 || (escape_next && left < 6))
            return unexpected(s, "a low surrogate escape");
        uint32_t lo = escape_next ? hex4(s->p + 2) : 0;
        if (!is_low_surrogate(lo))
            return aw_error_reject(s->err, AW_REJECT_INVALID_UTF8,
                                   "unpaired surrogate escape at byte %zu",
                                   offset(s));
        u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
        s->p += 6;
    }
    if (u == 0)
        return aw_error_reject(s->err, AW_REJECT_EMBEDDED_NUL,
                               "\\u0000 escape at byte %zu", offset(s));
    *cp = u;
    return AW_OK;
}

/* s->p at a backslash inside a string; leaves it after the escape. */
static int scan_escape(scanner *s, uint32_t *cp)
{
    s->p++;
    if (s->p == s->end)
        return unexpected(s, "an escape letter");
    switch (*s->p) {
    case '"':
    case '\\':
    case '/': *cp = *s->p; break;
    case 'b': *cp = '\b'; break;
    case 'f': *cp = '\f'; break;
    case 'n': *cp = '\n'; break;
    case 'r': *cp = '\r'; break;
    case 't': *cp = '\t'; break;
    case 'u': return scan_unicode_escape(s, cp);
    default: return unexpected(s, "an escape letter");
    }
    s->p++;
    return AW_OK;
}

/* Bytes that stand for themselves inside a string: printable ASCII but the
 * quote and the backslash. Runs of them are skipped without decoding. */
static bool is_plain(unsigned char c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* s->p at the opening quote. When key is not NULL it is filled in. */
static int scan_string(scanner *s, key_span *key)
{
    const unsigned char *end = s->end;
    uint64_t hash = FNV_OFFSET;
    bool escaped = false;
    const unsigned char *raw = ++s->p;
    for (;;) {
        const unsigned char *run = s->p;
        while (s->p < end && is_plain(*s->p))
            s->p++;
        if (key != NULL)
            for (const unsigned char *q = run; q < s->p; q++)
                hash = (hash ^ *q) * FNV_PRIME;
        if (s->p == end)
            return unexpected(s, "a closing quote");
        unsigned char c = *s->p;
        uint32_t cp = 0;
        if (c == '"') {
            break;
        } else if (c == '\\') {
            int rc = scan_escape(s, &cp);
            if (rc != AW_OK)
                return rc;
            escaped = true;
        } else if (c < 0x20) {
            if (c == 0)
                return unexpected(s, "a string byte");
            return aw_error_reject(s->err, AW_REJECT_NOT_JSON,
                                   "control byte 0x%02x in a string at byte "
                                   "%zu",
                                   c, offset(s));
        } else {
            size_t n = utf8_decode(s->p, end, &cp);
            if (n == 0)
                return aw_error_reject(s->err, AW_REJECT_INVALID_UTF8,
                                       "invalid UTF-8 at byte %zu", offset(s));
            s->p += n;
        }
        if (key != NULL)
            hash = (hash ^ cp) * FNV_PRIME;
    }
    if (key != NULL) {
        key->raw = raw;
        key->len = (size_t)(s->p - raw);
        key->hash = hash;
        key->escaped = escaped;
    }
    s->p++;
    return AW_OK;
}

static int duplicate_key(scanner *s, const key_span *a, const key_span *b)
{
    char q[AW_QUOTE_SIZE];
    const key_span *later = a->raw > b->raw ? a : b;
    return aw_error_reject(s->err, AW_REJECT_DUPLICATE_KEY,
                           "duplicate key \"%s\" at byte %zu",
                           aw_quote(later->raw, later->len, q),
                           (size_t)(later->raw - 1 - s->start));
}

/* Orders keys by hash: insertion sort for the handful an object usually
 * has, qsort beyond. */
static void sort_by_hash(key_span *k, size_t n)
{
    if (n > KEYS_INSERTION_SORT) {
        qsort(k, n, sizeof *k, by_hash);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        key_span moving = k[i];
        size_t j = i;
        for (; j > 0 && k[j - 1].hash > moving.hash; j--)
            k[j] = k[j - 1];
        k[j] = moving;
    }
}

/* Compares the keys of the object that just closed, keys[base..]: sorted
 * by hash, only neighbours with equal hashes need their text compared. */
static int check_duplicates(scanner *s, size_t base)
{
    key_span *k = s->keys + base;
    size_t n = s->nkeys - base;
    if (n < 2)
        return AW_OK;
    sort_by_hash(k, n);
    for (size_t i = 0; i + 1 < n; i++)
        for (size_t j = i + 1; j < n && k[j].hash == k[i].hash; j++)
            if (keys_equal(&k[i], &k[j]))
                return duplicate_key(s, &k[i], &k[j]);
    return AW_OK;
}

static int scan_value(scanner *s, int depth);

static int enter(scanner *s, int depth)
{
    if (depth >= AW_MAX_JSON_DEPTH)
        return aw_error_reject(s->err, AW_REJECT_OVERSIZED,
                               "nested deeper than %d levels at byte %zu",
                               AW_MAX_JSON_DEPTH, offset(s));
    s->p++;
    skip_ws(s);
    return AW_OK;
}

static int scan_object(scanner *s, int depth)
{
    int rc = enter(s, depth);
    if (rc != AW_OK)
        return rc;
    size_t base = s->nkeys;
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return AW_OK;
    }
    for (;;) {
        key_span key;
        if (s->p == s->end || *s->p != '"')
            return unexpected(s, "a key");
        if ((rc = scan_string(s, &key)) != AW_OK ||
            (rc = push_key(s, &key)) != AW_OK)
            return rc;
        skip_ws(s);
        if (s->p == s->end || *s->p != ':')
            return unexpected(s, "':'");
        s->p++;
        if ((rc = scan_value(s, depth + 1)) != AW_OK)
            return rc;
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            skip_ws(s);
            continue;
        }
        if (s->p < s->end && *s->p == '}')
            break;
        return unexpected(s, "',' or '}'");
    }
    s->p++;
    rc = check_duplicates(s, base);
    s->nkeys = base;
    return rc;
}

static int scan_array(scanner *s, int depth)
{
    int rc = enter(s, depth);
    if (rc != AW_OK)
        return rc;
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return AW_OK;
    }
    for (;;) {
        if ((rc = scan_value(s, depth + 1)) != AW_OK)
            return rc;
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        if (s->p < s->end && *s->p == ']')
            break;
        return unexpected(s, "',' or ']'");
    }
    s->p++;
    return AW_OK;
}

static bool is_digit(const scanner *s)
{
    return s->p < s->end && *s->p >= '0' && *s->p <= '9';
}

static int digit_run(scanner *s)
{
    if (!is_digit(s))
        return unexpected(s, "a digit");
    while (is_digit(s))
        s->p++;
    return AW_OK;
}

static int scan_number(scanner *s)
{
    if (*s->p == '-')
        s->p++;
    if (s->p < s->end && *s->p == '0')
        s->p++;
    else if (digit_run(s) != AW_OK)
        return AW_ERR_INVALID;
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (digit_run(s) != AW_OK)
            return AW_ERR_INVALID;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (digit_run(s) != AW_OK)
            return AW_ERR_INVALID;
    }
    return AW_OK;
}

static int scan_literal(scanner *s, const char *word, size_t len)
{
    for (size_t i = 0; i < len; i++, s->p++)
        if (s->p == s->end || *s->p != (unsigned char)word[i])
            return unexpected(s, word);
    return AW_OK;
}

static int scan_value(scanner *s, int depth)
{
    skip_ws(s);
    if (s->p == s->end)
        return unexpected(s, "a value");
    switch (*s->p) {
    case '{': return scan_object(s, depth);
    case '[': return scan_array(s, depth);
    case '"': return scan_string(s, NULL);
    case 't': return scan_literal(s, "true", 4);
    case 'f': return scan_literal(s, "false", 5);
    case 'n': return scan_literal(s, "null", 4);
    default:
        if (*s->p == '-' || is_digit(s))
            return scan_number(s);
        return unexpected(s, "a value");
    }
}

int aw_json_validate(const char *text, size_t len, aw_error *err)
{
    scanner s;
    s.start = s.p = (const unsigned char *)text;
    s.end = s.start + len;
    s.err = err;
    s.keys = s.local;
    s.nkeys = 0;
    s.cap = KEYS_LOCAL;
    int rc = scan_value(&s, 0);
    if (rc == AW_OK) {
        skip_ws(&s);
        if (s.p != s.end)
            rc = unexpected(&s, "the end after the value");
    }
    if (s.keys != s.local)
        free(s.keys);
    return rc;
}
