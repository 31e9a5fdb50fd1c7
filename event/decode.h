/* decode.h -- private to event/: what the decoders (audit.c, revocation.c,
 * call.c, dead_letter.c) share: reading flat stream fields, reading JSON
 * members (json_read.c) with the model's type rules, collecting anchors, and
 * packing a decoded object and all its strings into the one heap block that
 * owns them.
 *
 * Type rules, the same everywhere: an absent member and a JSON null are both
 * "absent"; a required string that is absent or empty is MISSING_FIELD; a
 * present member of another type than the model expects is WRONG_TYPE.
 */
#ifndef AW_EVENT_DECODE_H
#define AW_EVENT_DECODE_H

#include "event/event.h"

/* ---- Messages ------------------------------------------------------------ */

/* Rewrites err->msg as "<what>: <msg>". */
void aw_error_prefix(aw_error *err, const char *what);

/* A bounded, printable rendering of untrusted bytes for messages: printable
 * ASCII kept, anything else as \xNN, cut with "..." to fit. Returns buf. */
#define AW_QUOTE_SIZE 48

/* The elements of a fixed array. */
#define AW_COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))
const char *aw_quote(const void *bytes, size_t len, char buf[AW_QUOTE_SIZE]);

/* ---- Flat stream fields -------------------------------------------------- */

/* One pass over entry's fields: values[i] is the field named names[i], or
 * NULL. A named field that appears twice is DUPLICATE_KEY (a signed entry
 * must mean one thing); unnamed fields are not looked at. */
int aw_flat_pick(const aw_raw_entry *entry, const char *const *names, size_t n,
                 const aw_bytes **values, aw_error *err);

/* Size bounds of an entry: at most AW_MAX_FIELDS fields, names of at most
 * AW_MAX_KEY_BYTES, values of at most AW_MAX_VALUE_BYTES except the field
 * named large_name (may be NULL), which may hold large_max. OVERSIZED. */
int aw_entry_check_bounds(const aw_raw_entry *entry, const char *large_name,
                          size_t large_max, aw_error *err);

/* A flat field that decodes into a string: at most max bytes (OVERSIZED),
 * no NUL (EMBEDDED_NUL), valid UTF-8 (INVALID_UTF8). value NULL gives
 * out->ptr NULL. `name` is for the message. */
int aw_flat_text(const aw_bytes *value, const char *name, size_t max,
                 aw_bytes *out, aw_error *err);
/* Same, but absent or empty is MISSING_FIELD. */
int aw_flat_required_text(const aw_bytes *value, const char *name, size_t max,
                          aw_bytes *out, aw_error *err);

/* The checks every stream-scheme entry (revocations, calls) passes before its
 * fields are read: the field count bound, then the `_sig` signature when key
 * is not NULL (verified over the raw fields before anything is parsed, for
 * the decoder of role), then
 * the size bounds (aw_entry_check_bounds, large_name may hold large_max).
 * *is_signed tells whether a signature was verified. */
int aw_stream_entry_admit(const aw_raw_entry *entry, aw_hmac_key *key, int role,
                          const char *large_name, size_t large_max,
                          bool *is_signed, aw_error *err);

/* The entry id's time in ns; an id past year 2262 is BAD_TIME. */
int aw_entry_time_ns(const aw_raw_entry *entry, int64_t *ns, aw_error *err);

/* ---- JSON (json_read.c) -------------------------------------------------- */

/* Text that passed aw_json_validate, read in place. A document owns the
 * scratch buffer that escaped strings decode into; strings handed out stay
 * valid until aw_json_close. Not NUL-terminated text is fine. */
typedef struct aw_json_doc {
    const char *end; /* one past the text */
    char *scratch;   /* NULL until the first escaped string */
    size_t used, size;
} aw_json_doc;

typedef enum aw_json_type {
    AW_JSON_ABSENT = 0, /* a member not there (aw_json_pick) */
    AW_JSON_NULL,
    AW_JSON_FALSE,
    AW_JSON_TRUE,
    AW_JSON_NUMBER,
    AW_JSON_STRING,
    AW_JSON_ARRAY,
    AW_JSON_OBJECT,
} aw_json_type;

/* One value of a document: its bytes (for a string, those between the
 * quotes, still escaped when `escaped`). Borrowed from the text. */
typedef struct aw_json {
    aw_json_type type;
    bool escaped;
    const char *ptr;
    size_t len;
    aw_json_doc *doc;
} aw_json;

/* aw_json_validate(text, len), then *root is its value. On failure the
 * validator's reason; nothing to close then. */
int aw_json_open(aw_json_doc *doc, const char *text, size_t len, aw_json *root,
                 aw_error *err);
void aw_json_close(aw_json_doc *doc);

/* Walks the members of an object or the elements of an array. */
typedef struct aw_json_iter {
    const char *p; /* the next member or element; NULL after the last */
    aw_json_doc *doc;
} aw_json_iter;
void aw_json_iter_init(aw_json_iter *it, const aw_json *container);
/* False after the last. key is a STRING value. */
bool aw_json_next_member(aw_json_iter *it, aw_json *key, aw_json *value);
bool aw_json_next_element(aw_json_iter *it, aw_json *value);
/* Members of an object, elements of an array. */
size_t aw_json_count(const aw_json *container);

/* One pass over obj's members: slots[i] is the member named names[i]
 * (keys compared as decoded text), or of type ABSENT. At most
 * AW_JSON_PICK_MAX names. */
#define AW_JSON_PICK_MAX 16
void aw_json_pick(const aw_json *obj, const char *const *names, size_t n,
                  aw_json *slots);

/* A STRING value's decoded text (no NUL inside, one after it). Decode each
 * string once (the scratch has room for each once). AW_ERR_NOMEM when an
 * escaped string finds no memory to decode into. */
int aw_json_string(const aw_json *s, aw_bytes *out, aw_error *err);
/* A NUMBER member's or element's value, as strtod reads it. */
double aw_json_number(const aw_json *num);

/* The code point of the escape at *pp (a backslash of validated text);
 * moves *pp past it, a surrogate pair's second half included
 * (json_check.c). */
uint32_t aw_json_unescape(const unsigned char **pp);

/* An optional string member of at most max bytes. Absent or null gives
 * out->ptr NULL. `what` names the member in messages. */
int aw_json_text(const aw_json *item, const char *what, size_t max,
                 aw_bytes *out, aw_error *err);
/* Same, but absent, null or empty is MISSING_FIELD. */
int aw_json_required_text(const aw_json *item, const char *what, size_t max,
                          aw_bytes *out, aw_error *err);

/* An HTTP status: a JSON number, or a string of decimal digits (producers
 * that stringify numbers), integral, in 0..999. Absent or null leaves *out
 * untouched and returns AW_OK with *present false (present may be NULL). */
int aw_json_status(const aw_json *item, const char *what, int *out,
                   bool *present, aw_error *err);
/* "200" → 200: 1 to 3 decimal digits, nothing else. 0 or AW_ERR_INVALID. */
int aw_status_parse(const char *text, size_t len, int *out);

/* ---- Anchors ------------------------------------------------------------- */

typedef struct aw_anchor_ref {
    aw_anchor_kind kind;
    aw_bytes id; /* borrowed from the input */
} aw_anchor_ref;

/* Anchors in the order they were named, each (kind, id) once. The caller
 * sizes items for the most anchors its input can name. */
typedef struct aw_anchor_list {
    aw_anchor_ref *items;
    size_t n, cap;
} aw_anchor_list;

/* Adds (kind, id) unless id is absent or empty, or already listed. The
 * look-up is linear: lists hold a handful of anchors, and only an
 * edge_revoke's affected_edges (rare) holds more. */
void aw_anchor_list_add(aw_anchor_list *list, aw_anchor_kind kind, aw_bytes id);

/* ---- The one block that owns a decoded object ---------------------------- */

/* A decoded object is one malloc: the struct and its arrays (the "head"),
 * then every string it points to, NUL-terminated. Strings are first
 * scheduled (pointer slot at byte offset `at` of the block, source bytes),
 * then the block is allocated with the head's final size, the caller copies
 * the head in, and aw_block_place writes the strings and sets the
 * pointers. */
typedef struct aw_block_string {
    size_t at;
    aw_bytes text;
} aw_block_string;

typedef struct aw_block {
    size_t head; /* bytes of the struct and its arrays */
    size_t text; /* bytes of the strings, NULs included */
    size_t n, cap;
    aw_block_string *strings;
} aw_block;

/* slots holds room for the most strings the caller can schedule. */
void aw_block_init(aw_block *block, aw_block_string *slots, size_t cap);
/* Schedules text (ptr NULL: the slot stays NULL). */
void aw_block_add(aw_block *block, size_t at, aw_bytes text);
/* Schedules every anchor id of list, for an array of structs of `stride`
 * bytes whose first aw_anchor sits at byte offset anchor_at of the block. */
void aw_block_add_anchor_ids(aw_block *block, size_t anchor_at, size_t stride,
                             const aw_anchor_list *list);
/* Allocates head + text bytes; NULL when out of memory. */
void *aw_block_alloc(aw_block *block, size_t head);
/* Copies the strings after the head and points their slots at them. */
void aw_block_place(const aw_block *block, void *memory);

#endif /* AW_EVENT_DECODE_H */
