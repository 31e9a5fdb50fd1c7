/* raw_entry.c -- stream entries kept verbatim, and their msgpack form.
 *
 * A raw entry is what Redis handed us: stream name, entry id, and the field
 * list in its original order, every byte kept (values are binary and may hold
 * NUL or 0xff). auditwatch stores it so that signatures can be re-verified
 * and a window exported byte for byte; decoded events are only derived views.
 *
 * Layout: one malloc holds the struct, the field array, then the stream
 * name, the id, and each field's name and value, every one followed by a NUL
 * that its length does not count. One free releases it all, and no piece can
 * outlive another.
 *
 * The msgpack form is [stream(bin), id(bin), [name(bin), value(bin), ...]].
 * It is written with msgpack-c but read with the small bounds-checked reader
 * below: msgpack-c's unpacker allocates an array's storage from the count in
 * its header before reading any element, so five bytes of a corrupt blob can
 * make it ask for ~100 GB. Here every declared count and length is checked
 * against the bytes actually left, so a truncated or hostile blob fails
 * cleanly at any length.
 */
#include "event/event.h"
#include "event/event.h"
#include "event/decode.h"

#include <assert.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

/* ---- Stream ids ---------------------------------------------------------- */

static int parse_u64(const char *s, size_t len, uint64_t *out)
{
    if (len == 0)
        return AW_ERR_INVALID;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return AW_ERR_INVALID;
        v = v * 10 + d;
    }
    *out = v;
    return AW_OK;
}

int aw_stream_id_parse(const char *s, size_t len, uint64_t *ms, uint64_t *seq)
{
    const char *dash = memchr(s, '-', len);
    if (dash == NULL) {
        *seq = 0;
        return parse_u64(s, len, ms);
    }
    size_t ms_len = (size_t)(dash - s);
    if (parse_u64(s, ms_len, ms) != AW_OK)
        return AW_ERR_INVALID;
    return parse_u64(dash + 1, len - ms_len - 1, seq);
}

/* ---- Building the one block ---------------------------------------------- */

/* Yields the fields to copy, one per call, in order. */
typedef void (*field_reader)(void *state, aw_field *field);

static bool size_add(size_t *acc, size_t v)
{
    if (v > SIZE_MAX - *acc)
        return false;
    *acc += v;
    return true;
}

static char *copy_nul(char *cursor, aw_bytes src, aw_bytes *dst)
{
    if (src.len)
        memcpy(cursor, src.ptr, src.len);
    cursor[src.len] = '\0';
    dst->ptr = cursor;
    dst->len = src.len;
    return cursor + src.len + 1;
}

/* field_bytes: the sum of every name and value length. */
static int raw_entry_build(aw_bytes stream, aw_bytes id, size_t nfields,
                           size_t field_bytes, field_reader next, void *state,
                           aw_raw_entry **out, aw_error *err)
{
    char q[AW_QUOTE_SIZE];
    uint64_t ms, seq;
    *out = NULL;
    if (aw_stream_id_parse(id.ptr, id.len, &ms, &seq) != AW_OK)
        return aw_error_reject(err, AW_REJECT_BAD_VALUE,
                               "entry id \"%s\" is not <ms>-<seq>",
                               aw_quote(id.ptr, id.len, q));
    if (memchr(stream.ptr, '\0', stream.len) != NULL)
        return aw_error_reject(err, AW_REJECT_EMBEDDED_NUL,
                               "stream name has a NUL byte");
    size_t size = sizeof(aw_raw_entry);
    bool fits = nfields <= SIZE_MAX / sizeof(aw_field) &&
                size_add(&size, nfields * sizeof(aw_field)) &&
                size_add(&size, stream.len + 1) &&
                size_add(&size, id.len + 1) && size_add(&size, field_bytes) &&
                nfields <= SIZE_MAX / 2 && size_add(&size, 2 * nfields);
    if (!fits)
        return aw_error_reject(err, AW_REJECT_OVERSIZED,
                               "entry larger than memory");
    aw_raw_entry *e = malloc(size);
    if (e == NULL)
        return aw_error_set(err, AW_ERR_NOMEM,
                            "out of memory for a %zu-byte entry", size);
    e->id_ms = ms;
    e->id_seq = seq;
    e->nfields = nfields;
    e->fields = (aw_field *)(e + 1);
    char *cursor = (char *)(e->fields + nfields);
    cursor = copy_nul(cursor, stream, &e->stream);
    cursor = copy_nul(cursor, id, &e->id);
    for (size_t i = 0; i < nfields; i++) {
        aw_field f;
        next(state, &f);
        cursor = copy_nul(cursor, f.name, &e->fields[i].name);
        cursor = copy_nul(cursor, f.value, &e->fields[i].value);
    }
    *out = e;
    return AW_OK;
}

typedef struct array_fields {
    const aw_field *fields;
    size_t next;
} array_fields;

static void read_array_field(void *state, aw_field *field)
{
    array_fields *a = state;
    *field = a->fields[a->next++];
}

int aw_raw_entry_new(aw_bytes stream, aw_bytes id, const aw_field *fields,
                     size_t nfields, aw_raw_entry **out, aw_error *err)
{
    size_t bytes = 0;
    for (size_t i = 0; i < nfields; i++) {
        if (!size_add(&bytes, fields[i].name.len) ||
            !size_add(&bytes, fields[i].value.len)) {
            *out = NULL;
            return aw_error_reject(err, AW_REJECT_OVERSIZED,
                                   "entry larger than memory");
        }
    }
    array_fields state = {fields, 0};
    return raw_entry_build(stream, id, nfields, bytes, read_array_field, &state,
                           out, err);
}

void aw_raw_entry_free(aw_raw_entry *entry)
{
    free(entry);
}

const aw_bytes *aw_raw_entry_get(const aw_raw_entry *entry, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < entry->nfields; i++) {
        const aw_bytes *n = &entry->fields[i].name;
        if (n->len == len && memcmp(n->ptr, name, len) == 0)
            return &entry->fields[i].value;
    }
    return NULL;
}

/* ---- msgpack out (msgpack-c) --------------------------------------------- */

static int pack_write(void *data, const char *bytes, size_t len)
{
    return aw_buf_append(data, bytes, len) == AW_OK ? 0 : -1;
}

static void pack_bin(msgpack_packer *pk, aw_bytes b, int *failed)
{
    *failed |= msgpack_pack_bin(pk, b.len);
    *failed |= msgpack_pack_bin_body(pk, b.ptr, b.len);
}

int aw_raw_entry_pack(const aw_raw_entry *entry, aw_buf *out, aw_error *err)
{
    /* bin32 and array32 bound every length the format can carry */
    size_t total = 32 + entry->stream.len + entry->id.len;
    bool fits = entry->stream.len <= UINT32_MAX &&
                entry->id.len <= UINT32_MAX && entry->nfields <= UINT32_MAX / 2;
    for (size_t i = 0; fits && i < entry->nfields; i++) {
        const aw_field *f = &entry->fields[i];
        fits = f->name.len <= UINT32_MAX && f->value.len <= UINT32_MAX &&
               size_add(&total, f->name.len + f->value.len + 10);
    }
    if (!fits)
        return aw_error_reject(err, AW_REJECT_OVERSIZED,
                               "entry too large for msgpack");
    if (aw_buf_reserve(out, total) != AW_OK)
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory packing entry");

    size_t start = out->len;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, pack_write);
    int failed = msgpack_pack_array(&pk, 3);
    pack_bin(&pk, entry->stream, &failed);
    pack_bin(&pk, entry->id, &failed);
    failed |= msgpack_pack_array(&pk, (uint32_t)(2 * entry->nfields));
    for (size_t i = 0; i < entry->nfields; i++) {
        pack_bin(&pk, entry->fields[i].name, &failed);
        pack_bin(&pk, entry->fields[i].value, &failed);
    }
    if (failed) {
        out->len = start;
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory packing entry");
    }
    return AW_OK;
}

/* ---- msgpack in (bounds-checked reader) ---------------------------------- */

enum { MP_OK = 0, MP_SHORT, MP_BAD };

typedef struct mp_reader {
    const unsigned char *p, *end;
} mp_reader;

/* Reads a big-endian integer of `width` bytes. */
static int mp_uint(mp_reader *r, size_t width, uint32_t *out)
{
    if ((size_t)(r->end - r->p) < width)
        return MP_SHORT;
    uint32_t v = 0;
    for (size_t i = 0; i < width; i++)
        v = (v << 8) | r->p[i];
    r->p += width;
    *out = v;
    return MP_OK;
}

static int mp_array(mp_reader *r, uint32_t *n)
{
    if (r->p == r->end)
        return MP_SHORT;
    unsigned char tag = *r->p++;
    int rc = MP_OK;
    if ((tag & 0xf0) == 0x90)
        *n = tag & 0x0f;
    else if (tag == 0xdc)
        rc = mp_uint(r, 2, n);
    else if (tag == 0xdd)
        rc = mp_uint(r, 4, n);
    else
        return MP_BAD;
    /* every element takes at least one byte */
    if (rc == MP_OK && *n > (size_t)(r->end - r->p))
        return MP_SHORT;
    return rc;
}

/* A bin or str object; its bytes are borrowed from the reader's input. */
static int mp_bytes(mp_reader *r, aw_bytes *out)
{
    if (r->p == r->end)
        return MP_SHORT;
    unsigned char tag = *r->p++;
    uint32_t len;
    int rc = MP_OK;
    if ((tag & 0xe0) == 0xa0)
        len = tag & 0x1f;
    else if (tag == 0xc4 || tag == 0xd9)
        rc = mp_uint(r, 1, &len);
    else if (tag == 0xc5 || tag == 0xda)
        rc = mp_uint(r, 2, &len);
    else if (tag == 0xc6 || tag == 0xdb)
        rc = mp_uint(r, 4, &len);
    else
        return MP_BAD;
    if (rc != MP_OK)
        return rc;
    if (len > (size_t)(r->end - r->p))
        return MP_SHORT;
    out->ptr = (const char *)r->p;
    out->len = len;
    r->p += len;
    return MP_OK;
}

static void read_packed_field(void *state, aw_field *field)
{
    /* the layout was checked by unpack before the block was built */
    mp_reader *r = state;
    int rc = mp_bytes(r, &field->name);
    assert(rc == MP_OK);
    rc = mp_bytes(r, &field->value);
    assert(rc == MP_OK);
    (void)rc;
}

static int unpack_failed(int rc, size_t offset, aw_error *err)
{
    if (rc == MP_SHORT)
        return aw_error_reject(err, AW_REJECT_BAD_VALUE,
                               "packed entry truncated at byte %zu", offset);
    return aw_error_reject(err, AW_REJECT_BAD_VALUE,
                           "packed entry malformed at byte %zu", offset);
}

int aw_raw_entry_unpack(const char *data, size_t len, aw_raw_entry **out,
                        size_t *used, aw_error *err)
{
    const unsigned char *start = (const unsigned char *)data;
    mp_reader r = {start, start + len};
    aw_bytes stream, id, name, value;
    uint32_t top, nitems;
    *out = NULL;

    int rc = mp_array(&r, &top);
    if (rc == MP_OK && top != 3)
        rc = MP_BAD;
    if (rc == MP_OK)
        rc = mp_bytes(&r, &stream);
    if (rc == MP_OK)
        rc = mp_bytes(&r, &id);
    if (rc == MP_OK)
        rc = mp_array(&r, &nitems);
    if (rc == MP_OK && nitems % 2 != 0)
        rc = MP_BAD;
    mp_reader fields = r;
    size_t bytes = 0;
    for (uint32_t i = 0; rc == MP_OK && i < nitems; i++) {
        rc = mp_bytes(&r, i % 2 ? &value : &name);
        bytes += i % 2 ? value.len : name.len;
    }
    if (rc != MP_OK)
        return unpack_failed(rc, (size_t)(r.p - start), err);

    rc = raw_entry_build(stream, id, nitems / 2, bytes, read_packed_field,
                         &fields, out, err);
    if (rc == AW_OK && used != NULL)
        *used = (size_t)(r.p - start);
    return rc;
}
