/* decode.c -- the pieces every decoder of event/ is built from.
 *
 * The decoders share one shape: admit the raw entry (signature first, on the
 * raw bytes, then size bounds), read the fields they know with one set of
 * type rules, and copy the result into a single heap block. Keeping these
 * steps here means audit, revocation and call entries fail the same way for
 * the same fault, with the same reason and the same kind of message.
 *
 * Speed matters (the ingest target is 150,000 events/s on two cores): field
 * look-ups are single passes over the input, JSON is read in place
 * (json_read.c), and the only allocation a decoder makes is the final block
 * (a revocation naming more than a few anchors takes one more, and so does
 * a JSON text with escaped strings).
 */
#include "event/decode.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Messages ------------------------------------------------------------ */

const char *aw_quote(const void *bytes, size_t len, char buf[AW_QUOTE_SIZE])
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = bytes;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        /* room for the widest item (\xNN), "..." and the NUL */
        if (o + 4 + 3 + 1 > AW_QUOTE_SIZE) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (p[i] >= 0x20 && p[i] < 0x7f) {
            buf[o++] = (char)p[i];
        } else {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[p[i] >> 4];
            buf[o++] = hex[p[i] & 15];
        }
    }
    buf[o] = '\0';
    return buf;
}

/* ---- Flat stream fields -------------------------------------------------- */

#define PICK_MAX 16

int aw_flat_pick(const aw_raw_entry *entry, const char *const *names, size_t n,
                 const aw_bytes **values, aw_error *err)
{
    size_t lens[PICK_MAX];
    assert(n <= PICK_MAX);
    for (size_t i = 0; i < n; i++) {
        lens[i] = strlen(names[i]);
        values[i] = NULL;
    }
    for (size_t f = 0; f < entry->nfields; f++) {
        const aw_bytes *name = &entry->fields[f].name;
        for (size_t i = 0; i < n; i++) {
            if (name->len != lens[i] || memcmp(name->ptr, names[i], lens[i]))
                continue;
            if (values[i] != NULL)
                return aw_error_reject(err, AW_REJECT_DUPLICATE_KEY,
                                       "field %s appears twice", names[i]);
            values[i] = &entry->fields[f].value;
            break;
        }
    }
    return AW_OK;
}

int aw_entry_check_bounds(const aw_raw_entry *entry, const char *large_name,
                          size_t large_max, aw_error *err)
{
    char q[AW_QUOTE_SIZE];
    if (entry->nfields > AW_MAX_FIELDS)
        return aw_error_reject(err, AW_REJECT_OVERSIZED,
                               "%zu fields, at most %d allowed", entry->nfields,
                               AW_MAX_FIELDS);
    size_t large_len = large_name ? strlen(large_name) : 0;
    for (size_t f = 0; f < entry->nfields; f++) {
        const aw_field *field = &entry->fields[f];
        if (field->name.len > AW_MAX_KEY_BYTES)
            return aw_error_reject(err, AW_REJECT_OVERSIZED,
                                   "field name of %zu bytes, at most %d "
                                   "allowed",
                                   field->name.len, AW_MAX_KEY_BYTES);
        bool large = large_name && field->name.len == large_len &&
                     memcmp(field->name.ptr, large_name, large_len) == 0;
        size_t max = large ? large_max : AW_MAX_VALUE_BYTES;
        if (field->value.len > max)
            return aw_error_reject(
                err, AW_REJECT_OVERSIZED,
                "field %s holds %zu bytes, at most %zu "
                "allowed",
                aw_quote(field->name.ptr, field->name.len, q), field->value.len,
                max);
    }
    return AW_OK;
}

int aw_flat_text(const aw_bytes *value, const char *name, size_t max,
                 aw_bytes *out, aw_error *err)
{
    out->ptr = NULL;
    out->len = 0;
    if (value == NULL)
        return AW_OK;
    if (value->len > max)
        return aw_error_reject(err, AW_REJECT_OVERSIZED,
                               "%s holds %zu bytes, at most %zu allowed", name,
                               value->len, max);
    const char *nul = memchr(value->ptr, '\0', value->len);
    if (nul != NULL)
        return aw_error_reject(err, AW_REJECT_EMBEDDED_NUL,
                               "%s has a NUL byte at offset %zu", name,
                               (size_t)(nul - value->ptr));
    if (!aw_utf8_valid(value->ptr, value->len))
        return aw_error_reject(err, AW_REJECT_INVALID_UTF8,
                               "%s is not valid UTF-8", name);
    *out = *value;
    return AW_OK;
}

int aw_flat_required_text(const aw_bytes *value, const char *name, size_t max,
                          aw_bytes *out, aw_error *err)
{
    if (value == NULL || value->len == 0)
        return aw_error_reject(err, AW_REJECT_MISSING_FIELD, "%s is %s", name,
                               value ? "empty" : "missing");
    return aw_flat_text(value, name, max, out, err);
}

int aw_stream_entry_admit(const aw_raw_entry *entry, aw_hmac_key *key, int role,
                          const char *large_name, size_t large_max,
                          bool *is_signed, aw_error *err)
{
    *is_signed = false;
    /* bounded first: the signature check sorts the fields */
    if (entry->nfields > AW_MAX_FIELDS)
        return aw_entry_check_bounds(entry, NULL, 0, err);
    if (key != NULL) {
        int rc = aw_hmac_verify_stream(key, entry, role, err);
        if (rc != AW_OK)
            return rc;
        *is_signed = true;
    }
    return aw_entry_check_bounds(entry, large_name, large_max, err);
}

int aw_entry_time_ns(const aw_raw_entry *entry, int64_t *ns, aw_error *err)
{
    if (entry->id_ms > (uint64_t)(INT64_MAX / 1000000))
        return aw_error_reject(err, AW_REJECT_BAD_TIME,
                               "entry id %s is past the year 2262",
                               entry->id.ptr);
    *ns = (int64_t)entry->id_ms * 1000000;
    return AW_OK;
}

/* ---- JSON members -------------------------------------------------------- */

static const char *json_type_name(const aw_json *item)
{
    switch (item->type) {
    case AW_JSON_STRING: return "a string";
    case AW_JSON_NUMBER: return "a number";
    case AW_JSON_TRUE:
    case AW_JSON_FALSE: return "a boolean";
    case AW_JSON_OBJECT: return "an object";
    case AW_JSON_ARRAY: return "an array";
    default: return "null";
    }
}

static bool json_absent(const aw_json *item)
{
    return item->type == AW_JSON_ABSENT || item->type == AW_JSON_NULL;
}

int aw_json_text(const aw_json *item, const char *what, size_t max,
                 aw_bytes *out, aw_error *err)
{
    out->ptr = NULL;
    out->len = 0;
    if (json_absent(item))
        return AW_OK;
    if (item->type != AW_JSON_STRING)
        return aw_error_reject(err, AW_REJECT_WRONG_TYPE,
                               "%s: expected a string, got %s", what,
                               json_type_name(item));
    aw_bytes text;
    int rc = aw_json_string(item, &text, err);
    if (rc != AW_OK)
        return rc;
    if (text.len > max)
        return aw_error_reject(err, AW_REJECT_OVERSIZED,
                               "%s holds %zu bytes, at most %zu allowed", what,
                               text.len, max);
    *out = text;
    return AW_OK;
}

int aw_json_required_text(const aw_json *item, const char *what, size_t max,
                          aw_bytes *out, aw_error *err)
{
    int rc = aw_json_text(item, what, max, out, err);
    if (rc != AW_OK)
        return rc;
    if (out->len == 0)
        return aw_error_reject(err, AW_REJECT_MISSING_FIELD, "%s is %s", what,
                               out->ptr ? "empty" : "missing");
    return AW_OK;
}

int aw_status_parse(const char *text, size_t len, int *out)
{
    if (len == 0 || len > 3)
        return AW_ERR_INVALID;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return AW_ERR_INVALID;
        v = v * 10 + (text[i] - '0');
    }
    *out = v;
    return AW_OK;
}

int aw_json_status(const aw_json *item, const char *what, int *out,
                   bool *present, aw_error *err)
{
    char q[AW_QUOTE_SIZE];
    if (present != NULL)
        *present = false;
    if (json_absent(item))
        return AW_OK;
    if (item->type == AW_JSON_NUMBER) {
        double d = aw_json_number(item);
        if (!(d >= 0 && d <= 999) || d != (double)(int)d)
            return aw_error_reject(err, AW_REJECT_BAD_VALUE,
                                   "%s: %g is not a status (0-999)", what, d);
        *out = (int)d;
    } else if (item->type == AW_JSON_STRING) {
        aw_bytes s;
        int rc = aw_json_string(item, &s, err);
        if (rc != AW_OK)
            return rc;
        if (aw_status_parse(s.ptr, s.len, out) != AW_OK)
            return aw_error_reject(err, AW_REJECT_BAD_VALUE,
                                   "%s: \"%s\" is not a status (0-999)", what,
                                   aw_quote(s.ptr, s.len, q));
    } else {
        return aw_error_reject(err, AW_REJECT_WRONG_TYPE,
                               "%s: expected a number, got %s", what,
                               json_type_name(item));
    }
    if (present != NULL)
        *present = true;
    return AW_OK;
}

/* ---- Anchors ------------------------------------------------------------- */

void aw_anchor_list_add(aw_anchor_list *list, aw_anchor_kind kind, aw_bytes id)
{
    if (id.ptr == NULL || id.len == 0)
        return;
    for (size_t i = 0; i < list->n; i++) {
        const aw_anchor_ref *a = &list->items[i];
        if (a->kind == kind && a->id.len == id.len &&
            memcmp(a->id.ptr, id.ptr, id.len) == 0)
            return;
    }
    assert(list->n < list->cap);
    list->items[list->n].kind = kind;
    list->items[list->n].id = id;
    list->n++;
}

/* ---- The one block ------------------------------------------------------- */

void aw_block_init(aw_block *block, aw_block_string *slots, size_t cap)
{
    block->head = 0;
    block->text = 0;
    block->n = 0;
    block->cap = cap;
    block->strings = slots;
}

void aw_block_add(aw_block *block, size_t at, aw_bytes text)
{
    if (text.ptr == NULL)
        return;
    assert(block->n < block->cap);
    block->strings[block->n].at = at;
    block->strings[block->n].text = text;
    block->n++;
    block->text += text.len + 1;
}

void aw_block_add_anchor_ids(aw_block *block, size_t anchor_at, size_t stride,
                             const aw_anchor_list *list)
{
    for (size_t i = 0; i < list->n; i++)
        aw_block_add(block, anchor_at + i * stride + offsetof(aw_anchor, id),
                     list->items[i].id);
}

void *aw_block_alloc(aw_block *block, size_t head)
{
    block->head = head;
    return malloc(head + block->text);
}

void aw_block_place(const aw_block *block, void *memory)
{
    char *base = memory;
    char *cursor = base + block->head;
    for (size_t i = 0; i < block->n; i++) {
        const aw_block_string *s = &block->strings[i];
        assert(s->at + sizeof cursor <= block->head);
        memcpy(cursor, s->text.ptr, s->text.len);
        cursor[s->text.len] = '\0';
        memcpy(base + s->at, &cursor, sizeof cursor);
        cursor += s->text.len + 1;
    }
    assert(cursor == base + block->head + block->text);
}
