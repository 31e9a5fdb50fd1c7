/* dead_letter.c -- reading what Caracal dead-lettered (DESIGN §2.4) back into
 * the entry it gave up on.
 *
 * Caracal moves entries it cannot process out of the way: the audit service
 * to caracal.audit.events.dlq (the original's fields prefixed `src_`), the
 * STS and Gateway to `<stream>.dead` (the original's fields as a JSON object
 * in `values`, the envelope signed under the `.dead` stream name), the SDK
 * to `<stream>.dead` too (`payload`, unsigned). Those entries never reach
 * Caracal's ledger or its enforcers, so they are exactly the evidence and
 * revocations nobody else sees.
 *
 * Each shape is turned into one thing: the dead-letter reason plus the
 * original entry as an aw_raw_entry of its origin stream, which the decoder
 * of that stream then verifies and decodes unchanged. Nothing here
 * re-implements audit or revocation decoding, and nothing is trusted before
 * it is checked: the envelope's bounds and (ENFORCER) signature first, then
 * every field it names; embedded JSON goes through aw_json_validate before
 * a member is read, so duplicate keys, NUL and bad UTF-8 are rejected with
 * their own reason rather than read two ways.
 *
 * The audit DLQ keeps no reliable original entry id: Caracal writes the
 * entry id to `src_id` and then overwrites it with the original `id` field
 * (every audit producer writes one). `src_id` is therefore read back as the
 * original `id` field, and the rebuilt entry takes the dead letter's own id
 * (an upper bound on its arrival). Revocation dead letters do carry the
 * original id, and must: a revocation's time is its entry id.
 */
#include "event/event.h"
#include "event/decode.h"

#include <stdlib.h>
#include <string.h>

#define SRC_PREFIX     "src_"
#define SRC_PREFIX_LEN (sizeof SRC_PREFIX - 1)

const char *aw_dead_letter_shape_name(aw_dead_letter_shape shape)
{
    switch (shape) {
    case AW_DEAD_AUDIT_DLQ: return "audit_dlq";
    case AW_DEAD_ENFORCER: return "enforcer";
    case AW_DEAD_SDK: return "sdk";
    }
    return "unknown";
}

/* A dead letter must mean one thing: no field name twice, whatever it is
 * (aw_flat_pick only looks at the names it picks; `src_` fields are many). */
static int reject_repeated_fields(const aw_raw_entry *entry, aw_error *err)
{
    char q[AW_QUOTE_SIZE];
    for (size_t i = 0; i < entry->nfields; i++)
        for (size_t j = i + 1; j < entry->nfields; j++) {
            const aw_bytes *a = &entry->fields[i].name,
                           *b = &entry->fields[j].name;
            if (a->len == b->len && memcmp(a->ptr, b->ptr, a->len) == 0)
                return aw_error_reject(err, AW_REJECT_DUPLICATE_KEY,
                                       "field %s appears twice",
                                       aw_quote(a->ptr, a->len, q));
        }
    return AW_OK;
}

/* Epoch milliseconds as decimal digits, to ns. */
static int parse_epoch_ms(aw_bytes text, const char *name, int64_t *ns,
                          aw_error *err)
{
    char q[AW_QUOTE_SIZE];
    uint64_t ms = 0;
    bool ok = text.len > 0 && text.len <= 19;
    for (size_t i = 0; ok && i < text.len; i++) {
        ok = text.ptr[i] >= '0' && text.ptr[i] <= '9';
        ms = ms * 10 + (uint64_t)(text.ptr[i] - '0');
    }
    if (!ok || ms > (uint64_t)(INT64_MAX / 1000000))
        return aw_error_reject(err, AW_REJECT_BAD_TIME,
                               "%s: expected epoch milliseconds, got %s", name,
                               aw_quote(text.ptr, text.len, q));
    *ns = aw_ms_to_ns(ms);
    return AW_OK;
}

/* The struct and its two strings in one block, plus the rebuilt original. */
static int letter_new(aw_dead_letter_shape shape, aw_bytes reason,
                      aw_bytes source_id, const aw_raw_entry *dead,
                      aw_bytes origin, aw_bytes original_id,
                      const aw_field *fields, size_t nfields,
                      aw_dead_letter **out, aw_error *err)
{
    aw_raw_entry *original;
    int rc =
        aw_raw_entry_new(origin, original_id, fields, nfields, &original, err);
    if (rc != AW_OK) {
        aw_error_prefix(err, "original entry id");
        return rc;
    }
    size_t source_bytes = source_id.ptr ? source_id.len + 1 : 0;
    aw_dead_letter *letter =
        malloc(sizeof *letter + reason.len + 1 + source_bytes);
    if (letter == NULL) {
        aw_raw_entry_free(original);
        return aw_error_set(err, AW_ERR_NOMEM,
                            "out of memory for a dead letter");
    }
    char *text = (char *)(letter + 1);
    *letter = (aw_dead_letter){.shape = shape, .original = original};
    memcpy(text, reason.ptr, reason.len);
    text[reason.len] = '\0';
    letter->reason = text;
    if (source_id.ptr) {
        char *id = text + reason.len + 1;
        memcpy(id, source_id.ptr, source_id.len);
        id[source_id.len] = '\0';
        letter->source_id = id;
    }
    if (dead->id_ms <= (uint64_t)(INT64_MAX / 1000000))
        letter->dead_lettered_ns = aw_ms_to_ns(dead->id_ms);
    *out = letter;
    return AW_OK;
}

static aw_bytes text_of(const char *s)
{
    return (aw_bytes){s, s ? strlen(s) : 0};
}

/* ---- caracal.audit.events.dlq -------------------------------------------- */

enum { A_REASON, A_RECEIVED_AT, A_SRC_ID, A_COUNT };
static const char *const audit_names[A_COUNT] = {"reason", "received_at",
                                                 "src_id"};

int aw_dead_letter_decode_audit(const aw_raw_entry *entry,
                                const char *origin_stream, aw_dead_letter **out,
                                aw_error *err)
{
    const aw_bytes *v[A_COUNT];
    aw_bytes reason, received, source_id;
    aw_field fields[AW_MAX_FIELDS];
    size_t n = 0;
    int64_t received_ns = 0;
    int rc;

    *out = NULL;
    if ((rc = aw_entry_check_bounds(entry, "src_data", AW_MAX_DATA_BYTES,
                                    err)) != AW_OK ||
        (rc = reject_repeated_fields(entry, err)) != AW_OK ||
        (rc = aw_flat_pick(entry, audit_names, A_COUNT, v, err)) != AW_OK ||
        (rc = aw_flat_required_text(v[A_REASON], "reason", AW_MAX_VALUE_BYTES,
                                    &reason, err)) != AW_OK ||
        (rc = aw_flat_required_text(v[A_RECEIVED_AT], "received_at", 32,
                                    &received, err)) != AW_OK ||
        (rc = parse_epoch_ms(received, "received_at", &received_ns, err)) !=
            AW_OK ||
        (rc = aw_flat_text(v[A_SRC_ID], "src_id", AW_MAX_ID_BYTES, &source_id,
                           err)) != AW_OK)
        return rc;
    for (size_t f = 0; f < entry->nfields; f++) {
        const aw_field *field = &entry->fields[f];
        if (field->name.len < SRC_PREFIX_LEN ||
            memcmp(field->name.ptr, SRC_PREFIX, SRC_PREFIX_LEN) != 0)
            continue;
        if (field->name.len == SRC_PREFIX_LEN)
            return aw_error_reject(err, AW_REJECT_BAD_VALUE,
                                   "field \"src_\" names no original field");
        fields[n].name = (aw_bytes){field->name.ptr + SRC_PREFIX_LEN,
                                    field->name.len - SRC_PREFIX_LEN};
        fields[n++].value = field->value;
    }
    if (n == 0)
        return aw_error_reject(err, AW_REJECT_MISSING_FIELD,
                               "no src_<field> field: the original entry is "
                               "not in the dead letter");
    rc = letter_new(AW_DEAD_AUDIT_DLQ, reason, source_id, entry,
                    text_of(origin_stream), entry->id, fields, n, out, err);
    if (rc == AW_OK)
        (*out)->received_at_ns = received_ns;
    return rc;
}

/* ---- <stream>.dead ------------------------------------------------------- */

enum {
    R_ORIGINAL_ID,
    R_ERROR,
    R_VALUES,
    R_SOURCE_ID,
    R_REASON,
    R_PAYLOAD,
    R_COUNT
};
static const char *const dead_names[R_COUNT] = {
    "original_id", "error", "values", "source_id", "reason", "payload",
};

/* The original fields from a JSON object of strings (`values`, `payload`).
 * fields[] borrow from the text or doc (open once this returns, whatever it
 * returns: the caller closes it). */
static int json_fields(const aw_bytes *json, const char *name, aw_json_doc *doc,
                       aw_field *fields, size_t *n, aw_error *err)
{
    aw_json root, key, value;
    aw_json_iter it;
    int rc = aw_json_open(doc, json->ptr, json->len, &root, err);
    if (rc != AW_OK) {
        aw_error_prefix(err, name);
        return rc;
    }
    if (root.type != AW_JSON_OBJECT)
        return aw_error_reject(err, AW_REJECT_NOT_OBJECT,
                               "%s: expected a JSON object of the original "
                               "fields",
                               name);
    *n = 0;
    aw_json_iter_init(&it, &root);
    while (aw_json_next_member(&it, &key, &value)) {
        if (*n == AW_MAX_FIELDS)
            return aw_error_reject(err, AW_REJECT_OVERSIZED,
                                   "%s: more than %d fields", name,
                                   AW_MAX_FIELDS);
        if ((rc = aw_json_string(&key, &fields[*n].name, err)) != AW_OK)
            return rc;
        if (value.type != AW_JSON_STRING) {
            char q[AW_QUOTE_SIZE];
            return aw_error_reject(
                err, AW_REJECT_WRONG_TYPE, "%s: field %s is not a string", name,
                aw_quote(fields[*n].name.ptr, fields[*n].name.len, q));
        }
        if ((rc = aw_json_string(&value, &fields[(*n)++].value, err)) != AW_OK)
            return rc;
    }
    return AW_OK;
}

int aw_dead_letter_decode_revocation(const aw_raw_entry *entry,
                                     const char *origin_stream,
                                     aw_hmac_key *key, aw_dead_letter **out,
                                     aw_error *err)
{
    const aw_bytes *v[R_COUNT];
    aw_bytes reason, original_id;
    aw_field fields[AW_MAX_FIELDS];
    size_t n = 0;
    uint64_t ms, seq;
    aw_json_doc doc = {0};
    bool is_signed = false;
    int rc;

    *out = NULL;
    if ((rc = aw_flat_pick(entry, dead_names, R_COUNT, v, err)) != AW_OK)
        return rc;
    bool enforcer = v[R_ORIGINAL_ID] || v[R_ERROR] || v[R_VALUES];
    bool sdk = v[R_SOURCE_ID] || v[R_REASON] || v[R_PAYLOAD];
    if (enforcer && sdk)
        return aw_error_reject(err, AW_REJECT_BAD_VALUE,
                               "mixes the STS/Gateway fields (original_id, "
                               "error, values) with the SDK's (source_id, "
                               "reason, payload)");
    if (!enforcer && !sdk)
        return aw_error_reject(err, AW_REJECT_MISSING_FIELD,
                               "neither original_id/error/values nor "
                               "source_id/reason/payload: not a dead letter");
    /* ENFORCER: signature over the raw envelope before anything is read */
    if (enforcer)
        rc = aw_stream_entry_admit(entry, key, -1, "values",
                                   AW_MAX_EDGE_LIST_BYTES, &is_signed, err);
    else
        rc = aw_entry_check_bounds(entry, "payload", AW_MAX_EDGE_LIST_BYTES,
                                   err);
    if (rc != AW_OK || (rc = reject_repeated_fields(entry, err)) != AW_OK)
        return rc;

    const char *id_name = enforcer ? "original_id" : "source_id";
    const char *reason_name = enforcer ? "error" : "reason";
    const char *fields_name = enforcer ? "values" : "payload";
    const aw_bytes *fields_json = v[enforcer ? R_VALUES : R_PAYLOAD];
    if ((rc = aw_flat_required_text(v[enforcer ? R_ORIGINAL_ID : R_SOURCE_ID],
                                    id_name, AW_MAX_ID_BYTES, &original_id,
                                    err)) != AW_OK ||
        (rc = aw_flat_required_text(v[enforcer ? R_ERROR : R_REASON],
                                    reason_name, AW_MAX_VALUE_BYTES, &reason,
                                    err)) != AW_OK)
        return rc;
    if (aw_stream_id_parse(original_id.ptr, original_id.len, &ms, &seq) !=
        AW_OK) {
        char q[AW_QUOTE_SIZE];
        return aw_error_reject(
            err, AW_REJECT_BAD_VALUE, "%s: expected a stream entry id, got %s",
            id_name, aw_quote(original_id.ptr, original_id.len, q));
    }
    if (fields_json == NULL || fields_json->len == 0)
        return aw_error_reject(err, AW_REJECT_MISSING_FIELD, "%s is missing",
                               fields_name);
    rc = json_fields(fields_json, fields_name, &doc, fields, &n, err);
    if (rc == AW_OK)
        rc = letter_new(enforcer ? AW_DEAD_ENFORCER : AW_DEAD_SDK, reason,
                        original_id, entry, text_of(origin_stream), original_id,
                        fields, n, out, err);
    if (rc == AW_OK)
        (*out)->is_signed = is_signed;
    aw_json_close(&doc);
    return rc;
}

void aw_dead_letter_free(aw_dead_letter *letter)
{
    if (letter == NULL)
        return;
    aw_raw_entry_free(letter->original);
    free(letter);
}

_Static_assert(AW_DEAD_LETTER_REASON_SIZE == AW_QUOTE_SIZE,
               "the reason is rendered by aw_quote");

const char *aw_dead_letter_raw_reason(const aw_raw_entry *entry,
                                      char buf[AW_DEAD_LETTER_REASON_SIZE])
{
    const aw_bytes *reason = aw_raw_entry_get(entry, "reason");
    if (!reason)
        reason = aw_raw_entry_get(entry, "error");
    return reason ? aw_quote(reason->ptr, reason->len, buf) : NULL;
}

bool aw_sts_declined(aw_stream_role origin, const aw_dead_letter *letter,
                     const aw_revocation_set *set)
{
    if (origin != AW_ROLE_SESSION_REVOKE || letter->shape != AW_DEAD_ENFORCER ||
        strcmp(letter->reason, AW_STS_NO_SESSION_ERROR) != 0 || set->n == 0)
        return false;
    for (size_t i = 0; i < set->n; i++)
        if (set->items[i].anchor.kind != AW_ANCHOR_DELEGATION_EDGE)
            return false;
    return true;
}
