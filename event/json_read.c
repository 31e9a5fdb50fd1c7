/* json_read.c -- reading JSON text that aw_json_validate accepted, without
 * building a tree.
 *
 * A decoder wants a handful of members of one or two objects. A tree parser
 * (cJSON, before) made a node and a string copy for every value of the text,
 * some forty allocations for one audit event, only to free them again at
 * once. Here a value is a span of the input, found by skipping over it, and
 * a string is handed out as the bytes between its quotes -- or, when it
 * holds escapes, decoded into the document's scratch buffer. That buffer is
 * allocated on the first escaped string, sized to the whole text (decoding
 * never lengthens a string, and every string also has its two quotes for
 * the NUL), and never moves, so what it hands out stays valid until
 * aw_json_close.
 *
 * Everything here relies on the text having passed aw_json_validate: one
 * value in strict grammar, valid UTF-8, no NUL, no key twice in an object.
 * Skipping therefore checks nothing; inside a container a closing bracket
 * or quote is always ahead, and only a number can touch the end of the text
 * (a bare top-level number), which is why skipping one is bounded.
 */
#include "event/decode.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
        p++;
    return p;
}

/* p at an opening quote; returns its closing quote: the first quote not
 * escaped, i.e. after an even run of backslashes (memchr finds candidates
 * many bytes at a time, where a loop per byte would wait on each load). */
static const char *closing_quote(const char *p, const char *end)
{
    for (const char *q = p + 1;;) {
        const char *quote = memchr(q, '"', (size_t)(end - q));
        const char *run = quote;
        while (run[-1] == '\\') /* the opening quote stops the run */
            run--;
        if ((quote - run) % 2 == 0)
            return quote;
        q = quote + 1;
    }
}

/* What may start or end a nesting level, or hide one inside a string. */
static const unsigned char structural[256] = {
    ['"'] = 1, ['{'] = 2, ['['] = 2, ['}'] = 3, [']'] = 3,
};

/* p at '{' or '['; returns the byte after its closing bracket. */
static const char *skip_container(const char *p, const char *end)
{
    int depth = 0;
    for (;; p++) {
        while (!structural[(unsigned char)*p])
            p++;
        switch (structural[(unsigned char)*p]) {
        case 1: p = closing_quote(p, end); break;
        case 2: depth++; break;
        default:
            if (--depth == 0)
                return p + 1;
        }
    }
}

static bool is_number_byte(char c)
{
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' ||
           c == 'e' || c == 'E';
}

/* The value that starts at p and ends right before `after`. */
static aw_json value_span(aw_json_doc *doc, const char *p, const char *after)
{
    aw_json v = {.doc = doc, .ptr = p, .len = (size_t)(after - p)};
    switch (*p) {
    case '"':
        v.type = AW_JSON_STRING;
        v.ptr = p + 1; /* a string's span is its content, without quotes */
        v.len -= 2;
        v.escaped = memchr(v.ptr, '\\', v.len) != NULL;
        break;
    case '{': v.type = AW_JSON_OBJECT; break;
    case '[': v.type = AW_JSON_ARRAY; break;
    case 't': v.type = AW_JSON_TRUE; break;
    case 'f': v.type = AW_JSON_FALSE; break;
    case 'n': v.type = AW_JSON_NULL; break;
    default: v.type = AW_JSON_NUMBER; break;
    }
    return v;
}

/* The value at p (not whitespace), found by skipping over it. */
static aw_json value_at(aw_json_doc *doc, const char *p)
{
    const char *after;
    switch (*p) {
    case '"': after = closing_quote(p, doc->end) + 1; break;
    case '{':
    case '[': after = skip_container(p, doc->end); break;
    case 't':
    case 'n': after = p + 4; break;
    case 'f': after = p + 5; break;
    default:
        after = p;
        while (after < doc->end && is_number_byte(*after))
            after++;
        break;
    }
    return value_span(doc, p, after);
}

/* The byte after value v (a string's closing quote included). */
static const char *value_end(const aw_json *v)
{
    return v->ptr + v->len + (v->type == AW_JSON_STRING);
}

int aw_json_open(aw_json_doc *doc, const char *text, size_t len, aw_json *root,
                 aw_error *err)
{
    doc->end = text + len;
    doc->scratch = NULL;
    doc->used = 0;
    doc->size = len;
    int rc = aw_json_validate(text, len, err);
    if (rc != AW_OK)
        return rc;
    /* the text is this one value and whitespace: no need to skip over it */
    const char *last = doc->end;
    while (last[-1] == ' ' || last[-1] == '\n' || last[-1] == '\r' ||
           last[-1] == '\t')
        last--;
    *root = value_span(doc, skip_ws(text), last);
    return AW_OK;
}

void aw_json_close(aw_json_doc *doc)
{
    free(doc->scratch);
    doc->scratch = NULL;
}

void aw_json_iter_init(aw_json_iter *it, const aw_json *container)
{
    assert(container->type == AW_JSON_OBJECT ||
           container->type == AW_JSON_ARRAY);
    it->doc = container->doc;
    it->p = skip_ws(container->ptr + 1);
    if (*it->p == '}' || *it->p == ']')
        it->p = NULL;
}

/* Moves the iterator past value v and the comma after it, if any. */
static void iter_advance(aw_json_iter *it, const aw_json *v)
{
    const char *p = skip_ws(value_end(v));
    it->p = *p == ',' ? skip_ws(p + 1) : NULL;
}

bool aw_json_next_element(aw_json_iter *it, aw_json *value)
{
    if (it->p == NULL)
        return false;
    *value = value_at(it->doc, it->p);
    iter_advance(it, value);
    return true;
}

bool aw_json_next_member(aw_json_iter *it, aw_json *key, aw_json *value)
{
    if (it->p == NULL)
        return false;
    *key = value_at(it->doc, it->p);
    const char *colon = skip_ws(value_end(key));
    *value = value_at(it->doc, skip_ws(colon + 1));
    iter_advance(it, value);
    return true;
}

size_t aw_json_count(const aw_json *container)
{
    aw_json_iter it;
    aw_json key, value;
    size_t n = 0;
    aw_json_iter_init(&it, container);
    if (container->type == AW_JSON_OBJECT)
        while (aw_json_next_member(&it, &key, &value))
            n++;
    else
        while (aw_json_next_element(&it, &value))
            n++;
    return n;
}

static size_t utf8_encode(uint32_t cp, unsigned char *out)
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xc0 | cp >> 6);
        out[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xe0 | cp >> 12);
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (unsigned char)(0xf0 | cp >> 18);
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* The next decoded piece of string s at *pp: one escape's UTF-8 bytes, or
 * a run of bytes that stand for themselves (pointed to, not copied). */
static size_t next_piece(const unsigned char **pp, const unsigned char *end,
                         unsigned char buf[4], const unsigned char **piece)
{
    const unsigned char *p = *pp;
    if (*p == '\\') {
        *piece = buf;
        return utf8_encode(aw_json_unescape(pp), buf);
    }
    const unsigned char *run = p;
    while (p < end && *p != '\\')
        p++;
    *pp = p;
    *piece = run;
    return (size_t)(p - run);
}

/* Whether string s decodes to name[0..len). */
static bool string_is(const aw_json *s, const char *name, size_t len)
{
    if (!s->escaped)
        return s->len == len && memcmp(s->ptr, name, len) == 0;
    const unsigned char *p = (const unsigned char *)s->ptr, *end = p + s->len;
    size_t at = 0;
    while (p < end) {
        unsigned char buf[4];
        const unsigned char *piece;
        size_t n = next_piece(&p, end, buf, &piece);
        if (n > len - at || memcmp(name + at, piece, n) != 0)
            return false;
        at += n;
    }
    return at == len;
}

void aw_json_pick(const aw_json *obj, const char *const *names, size_t n,
                  aw_json *slots)
{
    size_t lens[AW_JSON_PICK_MAX];
    assert(n <= AW_JSON_PICK_MAX);
    for (size_t i = 0; i < n; i++) {
        lens[i] = strlen(names[i]);
        slots[i] = (aw_json){.type = AW_JSON_ABSENT, .doc = obj->doc};
    }
    aw_json_iter it;
    aw_json key, value;
    aw_json_iter_init(&it, obj);
    while (aw_json_next_member(&it, &key, &value)) {
        for (size_t i = 0; i < n; i++) {
            if (string_is(&key, names[i], lens[i])) {
                slots[i] = value;
                break;
            }
        }
    }
}

int aw_json_string(const aw_json *s, aw_bytes *out, aw_error *err)
{
    assert(s->type == AW_JSON_STRING);
    if (!s->escaped) {
        *out = (aw_bytes){s->ptr, s->len};
        return AW_OK;
    }
    aw_json_doc *doc = s->doc;
    /* the scratch is sized for each string once; a second decoding of the
     * same string would not fit (a caller's bug: refused, not overrun) */
    if (s->len + 1 > doc->size - doc->used) {
        assert(!"a JSON string decoded twice");
        return aw_error_set(err, AW_ERR, "a JSON string decoded twice");
    }
    if (doc->scratch == NULL && (doc->scratch = malloc(doc->size)) == NULL)
        return aw_error_set(err, AW_ERR_NOMEM,
                            "out of memory decoding a JSON string");
    char *start = doc->scratch + doc->used, *o = start;
    const unsigned char *p = (const unsigned char *)s->ptr, *end = p + s->len;
    while (p < end) {
        unsigned char buf[4];
        const unsigned char *piece;
        size_t n = next_piece(&p, end, buf, &piece);
        memcpy(o, piece, n);
        o += n;
    }
    *o = '\0';
    doc->used += (size_t)(o - start) + 1;
    *out = (aw_bytes){start, (size_t)(o - start)};
    return AW_OK;
}

double aw_json_number(const aw_json *num)
{
    assert(num->type == AW_JSON_NUMBER);
    /* A member's or element's number is followed by a delimiter inside the
     * text, where strtod stops (auditwatch never sets a locale, so the
     * decimal point is '.'). */
    assert(num->ptr + num->len < num->doc->end);
    return strtod(num->ptr, NULL);
}
