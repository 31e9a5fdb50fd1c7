/* call.c -- calls observed outside Caracal (DESIGN §2.3): the evidence the
 * call_without_audit detector holds against the audit stream.
 *
 * Two sources, one model. A flat stream entry (auditwatch.calls) has string
 * fields request_id, status, occurred_at?, zone_id?, resource?, source?, is
 * checked like every stream-scheme entry (`_sig` first when a key is set),
 * and takes the entry id's time when occurred_at is absent. An NDJSON line
 * (import-calls) comes from access logs whose field names differ, so the
 * names of request_id, status and the time field are configurable; there
 * status may be a number or a digit string, and the time may be RFC 3339, a
 * number of seconds since the epoch (rounded to the microsecond: a double
 * holds no more), or a string of such seconds ("1716300000.123", as nginx's
 * $msec is often quoted), read exactly.
 *
 * Statuses are 0-999: wider than HTTP, so that proxies' private codes (nginx
 * 499, "000" for a dropped connection) survive to be judged by the detector,
 * which counts only 2xx and 3xx as served.
 */
#include "event/event.h"
#include "event/decode.h"

#include <stdlib.h>
#include <string.h>

enum { C_REQUEST_ID, C_STATUS, C_TIME, C_ZONE, C_RESOURCE, C_SOURCE, C_COUNT };

static const char *const default_names[C_COUNT] = {
    "request_id", "status", "occurred_at", "zone_id", "resource", "source",
};

/* The call's strings, borrowed until call_finish copies them. */
typedef struct call_draft {
    aw_observed_call call;
    aw_bytes request_id, zone, resource, source;
} call_draft;

static int call_finish(const call_draft *d, aw_observed_call **out,
                       aw_error *err)
{
    aw_block_string slots[4];
    aw_block block;
    aw_block_init(&block, slots, 4);
    aw_block_add(&block, offsetof(aw_observed_call, request_id), d->request_id);
    aw_block_add(&block, offsetof(aw_observed_call, zone_id), d->zone);
    aw_block_add(&block, offsetof(aw_observed_call, resource), d->resource);
    aw_block_add(&block, offsetof(aw_observed_call, source), d->source);
    aw_observed_call *call = aw_block_alloc(&block, sizeof *call);
    if (call == NULL)
        return aw_error_set(err, AW_ERR_NOMEM,
                            "out of memory for a decoded call");
    *call = d->call;
    aw_block_place(&block, call);
    *out = call;
    return AW_OK;
}

/* ---- Flat stream entries ------------------------------------------------- */

static int read_call_fields(const aw_raw_entry *entry, call_draft *d,
                            aw_error *err)
{
    char q[AW_QUOTE_SIZE];
    const aw_bytes *f[C_COUNT];
    aw_bytes status, when;
    int rc = aw_flat_pick(entry, default_names, C_COUNT, f, err);
    if (rc != AW_OK ||
        (rc = aw_flat_required_text(f[C_REQUEST_ID], "request_id",
                                    AW_MAX_ID_BYTES, &d->request_id, err)) ||
        (rc = aw_flat_required_text(f[C_STATUS], "status", AW_MAX_ID_BYTES,
                                    &status, err)) ||
        (rc = aw_flat_text(f[C_TIME], "occurred_at", AW_MAX_ID_BYTES, &when,
                           err)) ||
        (rc = aw_flat_text(f[C_ZONE], "zone_id", AW_MAX_ID_BYTES, &d->zone,
                           err)) ||
        (rc = aw_flat_text(f[C_RESOURCE], "resource", AW_MAX_VALUE_BYTES,
                           &d->resource, err)) ||
        (rc = aw_flat_text(f[C_SOURCE], "source", AW_MAX_VALUE_BYTES,
                           &d->source, err)))
        return rc;
    if (aw_status_parse(status.ptr, status.len, &d->call.status) != AW_OK)
        return aw_error_reject(err, AW_REJECT_BAD_VALUE,
                               "status \"%s\" is not a status (0-999)",
                               aw_quote(status.ptr, status.len, q));
    if (when.ptr == NULL)
        return aw_entry_time_ns(entry, &d->call.occurred_at_ns, err);
    d->call.time_is_logged = true;
    rc =
        aw_time_parse_rfc3339(when.ptr, when.len, &d->call.occurred_at_ns, err);
    if (rc != AW_OK)
        aw_error_prefix(err, "occurred_at");
    return rc;
}

int aw_event_decode_call_entry(const aw_raw_entry *entry, aw_hmac_key *key,
                               aw_observed_call **out, aw_error *err)
{
    call_draft d = {0};
    bool is_signed;
    *out = NULL;
    int rc = aw_stream_entry_admit(entry, key, AW_ROLE_CALLS, NULL, 0,
                                   &is_signed, err);
    if (rc == AW_OK)
        rc = read_call_fields(entry, &d, err);
    d.call.is_signed = is_signed;
    if (rc == AW_OK)
        rc = call_finish(&d, out, err);
    return rc;
}

/* ---- NDJSON lines -------------------------------------------------------- */

/* Decimal seconds: digits, then optionally '.' and 1 to 9 digits. */
static bool is_epoch_text(const char *s, size_t len)
{
    size_t i = 0, dot = len;
    for (; i < len; i++) {
        if (s[i] == '.' && dot == len && i > 0)
            dot = i;
        else if (s[i] < '0' || s[i] > '9')
            return false;
    }
    return len > 0 && dot != len - 1 && (dot == len || len - dot - 1 <= 9);
}

/* "1716300000.123" → ns, exactly; text passed is_epoch_text. */
static int epoch_text_ns(const char *s, size_t len, const char *what,
                         int64_t *ns, aw_error *err)
{
    int64_t secs = 0, frac = 0, scale = 1000000000;
    bool overflow = false;
    size_t i = 0;
    for (; i < len && s[i] != '.'; i++)
        overflow |= __builtin_mul_overflow(secs, 10, &secs) ||
                    __builtin_add_overflow(secs, s[i] - '0', &secs);
    for (i++; i < len; i++)
        frac += (s[i] - '0') * (scale /= 10);
    if (overflow || __builtin_mul_overflow(secs, 1000000000, ns) ||
        __builtin_add_overflow(*ns, frac, ns))
        return aw_error_reject(err, AW_REJECT_BAD_TIME,
                               "%s: epoch seconds past the year 2262", what);
    return AW_OK;
}

static int json_time_ns(const aw_json *item, const char *what, int64_t fallback,
                        int64_t *ns, aw_error *err)
{
    if (item->type == AW_JSON_ABSENT || item->type == AW_JSON_NULL) {
        *ns = fallback;
        return AW_OK;
    }
    if (item->type == AW_JSON_NUMBER) {
        double secs = aw_json_number(item);
        if (!(secs >= -9.2e9 && secs <= 9.2e9))
            return aw_error_reject(err, AW_REJECT_BAD_TIME,
                                   "%s: %g seconds is outside 1677-2262", what,
                                   secs);
        double us = secs * 1e6;
        *ns = (int64_t)(us + (us < 0 ? -0.5 : 0.5)) * 1000;
        return AW_OK;
    }
    if (item->type != AW_JSON_STRING)
        return aw_error_reject(err, AW_REJECT_WRONG_TYPE,
                               "%s: expected a date-time string or epoch "
                               "seconds",
                               what);
    aw_bytes text;
    int rc = aw_json_string(item, &text, err);
    if (rc != AW_OK)
        return rc;
    if (is_epoch_text(text.ptr, text.len))
        return epoch_text_ns(text.ptr, text.len, what, ns, err);
    rc = aw_time_parse_rfc3339(text.ptr, text.len, ns, err);
    if (rc != AW_OK)
        aw_error_prefix(err, what);
    return rc;
}

static int read_call_json(const aw_json *root, const char *const *names,
                          int64_t fallback_ns, call_draft *d, aw_error *err)
{
    if (root->type != AW_JSON_OBJECT)
        return aw_error_reject(err, AW_REJECT_NOT_OBJECT,
                               "the line is not a JSON object");
    aw_json m[C_COUNT];
    bool has_status;
    aw_json_pick(root, names, C_COUNT, m);
    int rc;
    if ((rc = aw_json_required_text(&m[C_REQUEST_ID], names[C_REQUEST_ID],
                                    AW_MAX_ID_BYTES, &d->request_id, err)) ||
        (rc = aw_json_status(&m[C_STATUS], names[C_STATUS], &d->call.status,
                             &has_status, err)))
        return rc;
    if (!has_status)
        return aw_error_reject(err, AW_REJECT_MISSING_FIELD, "%s is missing",
                               names[C_STATUS]);
    d->call.time_is_logged =
        m[C_TIME].type != AW_JSON_ABSENT && m[C_TIME].type != AW_JSON_NULL;
    if ((rc = json_time_ns(&m[C_TIME], names[C_TIME], fallback_ns,
                           &d->call.occurred_at_ns, err)) ||
        (rc = aw_json_text(&m[C_ZONE], names[C_ZONE], AW_MAX_ID_BYTES, &d->zone,
                           err)) ||
        (rc = aw_json_text(&m[C_RESOURCE], names[C_RESOURCE],
                           AW_MAX_VALUE_BYTES, &d->resource, err)))
        return rc;
    return aw_json_text(&m[C_SOURCE], names[C_SOURCE], AW_MAX_VALUE_BYTES,
                        &d->source, err);
}

int aw_event_decode_call_json(const char *line, size_t len,
                              const aw_call_fields *fields, int64_t fallback_ns,
                              aw_observed_call **out, aw_error *err)
{
    const char *names[C_COUNT];
    memcpy(names, default_names, sizeof names);
    if (fields != NULL) {
        if (fields->request_id)
            names[C_REQUEST_ID] = fields->request_id;
        if (fields->status)
            names[C_STATUS] = fields->status;
        if (fields->occurred_at)
            names[C_TIME] = fields->occurred_at;
    }
    *out = NULL;
    aw_json_doc doc;
    aw_json root;
    int rc = aw_json_open(&doc, line, len, &root, err);
    if (rc != AW_OK)
        return rc;
    call_draft d = {0};
    rc = read_call_json(&root, names, fallback_ns, &d, err);
    if (rc == AW_OK)
        rc = call_finish(&d, out, err);
    aw_json_close(&doc);
    return rc;
}

void aw_observed_call_free(aw_observed_call *call)
{
    free(call);
}
