/* event_view.c -- how evidence is shown to machines, shared by `query` and
 * `trace` so that both print one shape (README "JSON output").
 *
 * The raw entry is the source for display: the decoded rows are narrow on
 * purpose (DESIGN §6) and keep only what the detectors join on, while a
 * script wants everything Caracal wrote, under Caracal's own names. So an
 * audit event is shown as the members of its verbatim `data` object, with
 * the *_json members as the JSON values they are; an "anchors" object
 * gathers the authority it used from the metadata; everything auditwatch
 * adds (where the entry came from, whether its signature was verified, the
 * alerts of its request) sits under one "auditwatch" key, apart from
 * Caracal's fields. Flat stream entries (revocations, observed calls) are
 * shown as their fields, signatures left out.
 *
 * A raw entry that is missing or cannot be read does not hide the row: its
 * columns stand in, and auditwatch.raw_entry says what happened (`verify`
 * says more).
 */
#include "cli/cli.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* The anchors of an event, in its metadata. */
static const char *const anchor_keys[] = {
    "session_id",
    "agent_session_id",
    "delegation_edge_id",
    "delegation_chain",
};

/* Adds a string member, or null for NULL. False when out of memory. */
static bool add_text(cJSON *obj, const char *name, const char *s)
{
    return (s ? cJSON_AddStringToObject(obj, name, s)
              : cJSON_AddNullToObject(obj, name)) != NULL;
}

static bool add_time(cJSON *obj, const char *name, int64_t ns)
{
    char buf[40];
    return add_text(obj, name, aw_time_format(ns, buf, sizeof buf));
}

/* Puts item under name, replacing a member of that name. */
static bool put(cJSON *obj, const char *name, cJSON *item)
{
    if (!item)
        return false;
    cJSON_DeleteItemFromObjectCaseSensitive(obj, name);
    return cJSON_AddItemToObject(obj, name, item);
}

typedef struct raw_read {
    aw_raw_entry *raw;
    char why[AW_ERRMSG_MAX + 16];
} raw_read;

static int unpack_cb(const aw_entry_row *row, void *ud)
{
    raw_read *r = ud;
    aw_error err = {0};
    if (aw_raw_entry_unpack(row->raw, row->raw_len, &r->raw, NULL, &err) !=
        AW_OK)
        snprintf(r->why, sizeof r->why, "unreadable: %s", err.msg);
    return 0;
}

/* The raw entry at entry_rowid, or NULL with why set (missing, unreadable). */
static int read_raw(aw_store *store, int64_t entry_rowid, raw_read *r,
                    aw_error *err)
{
    memset(r, 0, sizeof *r);
    int rc = aw_store_get_entry(store, entry_rowid, unpack_cb, r, err);
    if (rc == AW_ERR_NOTFOUND) {
        snprintf(r->why, sizeof r->why, "missing (row %lld)",
                 (long long)entry_rowid);
        return AW_OK;
    }
    return rc;
}

const aw_raw_entry *aw_cli_audit_original(const aw_raw_entry *raw,
                                          aw_dead_letter **letter)
{
    *letter = NULL;
    if (aw_raw_entry_get(raw, "data") || !aw_raw_entry_get(raw, "src_data") ||
        aw_dead_letter_decode_audit(raw, raw->stream.ptr, letter, NULL) !=
            AW_OK)
        return raw;
    return (*letter)->original;
}

/* bytes as a JSON object, or NULL when they are not one. */
static cJSON *parse_object(const aw_bytes *bytes)
{
    if (!bytes || aw_json_validate(bytes->ptr, bytes->len, NULL) != AW_OK)
        return NULL;
    cJSON *obj = cJSON_ParseWithLength(bytes->ptr, bytes->len);
    if (obj && !cJSON_IsObject(obj)) {
        cJSON_Delete(obj);
        return NULL;
    }
    return obj;
}

static bool is_signature_field(const aw_field *f)
{
    return (f->name.len == 3 && memcmp(f->name.ptr, "sig", 3) == 0) ||
           (f->name.len == 4 && memcmp(f->name.ptr, "_sig", 4) == 0);
}

/* The fields of a flat entry, as strings (a repeated name once, the first);
 * bytes that are not text (NUL, invalid UTF-8) shown as U+FFFD so that the
 * line stays JSON. */
static cJSON *flat_fields(const aw_raw_entry *raw)
{
    cJSON *obj = cJSON_CreateObject();
    for (size_t i = 0; obj && i < raw->nfields; i++) {
        const aw_field *f = &raw->fields[i];
        if (is_signature_field(f) || !aw_utf8_valid(f->name.ptr, f->name.len) ||
            memchr(f->name.ptr, 0, f->name.len) ||
            cJSON_GetObjectItemCaseSensitive(obj, f->name.ptr))
            continue;
        bool text = aw_utf8_valid(f->value.ptr, f->value.len) &&
                    !memchr(f->value.ptr, 0, f->value.len);
        if (!cJSON_AddStringToObject(obj, f->name.ptr,
                                     text ? f->value.ptr : "\xef\xbf\xbd")) {
            cJSON_Delete(obj);
            obj = NULL;
        }
    }
    return obj;
}

/* The fields of the raw entry at entry_rowid as a new object: an imported
 * access-log line as the object it is, else each stream field as a string.
 * When the entry is missing, an empty object, and auditwatch gets
 * "raw_entry" saying so. */
static int entry_fields(aw_store *store, int64_t entry_rowid, cJSON **fields,
                        cJSON *auditwatch, aw_error *err)
{
    raw_read r;
    int rc = read_raw(store, entry_rowid, &r, err);
    *fields = NULL;
    if (rc != AW_OK)
        return rc;
    if (r.raw) {
        bool imported = strncmp(r.raw->stream.ptr, AW_INGEST_IMPORT_PREFIX,
                                strlen(AW_INGEST_IMPORT_PREFIX)) == 0;
        if (imported)
            *fields =
                parse_object(aw_raw_entry_get(r.raw, AW_INGEST_IMPORT_FIELD));
        if (!*fields)
            *fields = flat_fields(r.raw);
        aw_raw_entry_free(r.raw);
    } else if ((*fields = cJSON_CreateObject()) &&
               !add_text(auditwatch, "raw_entry", r.why)) {
        cJSON_Delete(*fields);
        *fields = NULL;
    }
    return *fields ? AW_OK : aw_error_set(err, AW_ERR_NOMEM, "out of memory");
}

/* ---- audit events -------------------------------------------------------- */

/* The row's own columns, under Caracal's names: the stand-in for a raw
 * entry that cannot be shown. */
static cJSON *from_row(const aw_event_row *row)
{
    cJSON *obj = cJSON_CreateObject(), *meta = cJSON_CreateObject();
    bool ok = obj && meta &&
              add_text(meta, "application_id", row->application_id) &&
              add_text(meta, "resource", row->resource) &&
              add_text(meta, "session_id", row->session_id) &&
              add_text(meta, "agent_session_id", row->agent_session_id) &&
              add_text(meta, "delegation_edge_id", row->delegation_edge_id) &&
              cJSON_AddItemToObject(obj, "metadata_json", meta);
    if (!ok)
        cJSON_Delete(meta);
    ok = ok && add_text(obj, "id", row->event_id) &&
         add_text(obj, "zone_id", row->zone_id) &&
         add_text(obj, "event_type", row->event_type) &&
         add_text(obj, "request_id", row->request_id) &&
         add_text(obj, "decision", row->decision) &&
         add_text(obj, "evaluation_status", row->evaluation_status) &&
         add_time(obj, "occurred_at", row->occurred_at_ns);
    if (!ok) {
        cJSON_Delete(obj);
        return NULL;
    }
    return obj;
}

static cJSON *anchors_of(const cJSON *event)
{
    const cJSON *meta =
        cJSON_GetObjectItemCaseSensitive(event, "metadata_json");
    cJSON *anchors = cJSON_CreateObject();
    for (size_t i = 0; anchors && i < sizeof anchor_keys / sizeof *anchor_keys;
         i++) {
        const cJSON *v =
            cJSON_IsObject(meta)
                ? cJSON_GetObjectItemCaseSensitive(meta, anchor_keys[i])
                : NULL;
        cJSON *copy = v ? cJSON_Duplicate(v, true) : cJSON_CreateNull();
        if (!copy || !cJSON_AddItemToObject(anchors, anchor_keys[i], copy)) {
            cJSON_Delete(copy);
            cJSON_Delete(anchors);
            anchors = NULL;
        }
    }
    return anchors;
}

static int add_alert(const aw_alert *a, void *ud)
{
    cJSON *alert = cJSON_CreateObject();
    if (!alert || !add_text(alert, "id", a->id) ||
        !add_text(alert, "kind", a->kind) ||
        !add_text(alert, "severity", a->severity) ||
        !add_text(alert, "state", aw_alert_state_name(a->state)) ||
        !cJSON_AddItemToArray(ud, alert)) {
        cJSON_Delete(alert);
        return AW_ERR_NOMEM;
    }
    return 0;
}

/* auditwatch's own keys of an event. */
static int auditwatch_of(aw_store *store, const aw_event_row *row,
                         const char *raw_why, const aw_dead_letter *letter,
                         cJSON **out, aw_error *err)
{
    cJSON *aw = cJSON_CreateObject(), *alerts = cJSON_CreateArray();
    cJSON *dead = letter ? cJSON_AddObjectToObject(aw, "dead_letter") : NULL;
    int rc = AW_ERR_NOMEM;
    *out = NULL;
    if (letter && !(dead && add_text(dead, "stream", row->stream) &&
                    add_text(dead, "reason", letter->reason) &&
                    add_time(dead, "received_at", letter->received_at_ns))) {
        cJSON_Delete(alerts);
        cJSON_Delete(aw);
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    }
    if (aw && alerts && add_text(aw, "source", "audit") &&
        add_text(aw, "stream", row->stream) &&
        add_text(aw, "entry_id", row->entry_id) &&
        cJSON_AddNumberToObject(aw, "row_id", (double)row->rowid) &&
        cJSON_AddBoolToObject(aw, "signed", row->is_signed) &&
        add_time(aw, "time", row->occurred_at_ns) &&
        (!raw_why || add_text(aw, "raw_entry", raw_why))) {
        aw_alert_filter f = {.request_id = row->request_id};
        rc = row->request_id
                 ? aw_store_query_alerts(store, &f, add_alert, alerts, err)
                 : AW_OK;
        if (rc == AW_OK && cJSON_AddItemToObject(aw, "alerts", alerts)) {
            *out = aw;
            return AW_OK;
        }
    }
    cJSON_Delete(alerts);
    cJSON_Delete(aw);
    return rc == AW_ERR_NOMEM ? aw_error_set(err, rc, "out of memory") : rc;
}

int aw_cli_event_record(aw_store *store, const aw_event_row *row, cJSON **out,
                        aw_error *err)
{
    raw_read r;
    cJSON *event = NULL, *aw = NULL;
    aw_dead_letter *letter = NULL;
    int rc = read_raw(store, row->entry_rowid, &r, err);
    *out = NULL;
    if (rc != AW_OK)
        return rc;
    if (r.raw && !(event = parse_object(aw_raw_entry_get(
                       aw_cli_audit_original(r.raw, &letter), "data"))))
        snprintf(r.why, sizeof r.why, "its data is not a JSON object");
    aw_raw_entry_free(r.raw);
    if (!event)
        event = from_row(row);
    if (!event) {
        aw_dead_letter_free(letter);
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    }
    rc = auditwatch_of(store, row, r.why[0] ? r.why : NULL, letter, &aw, err);
    aw_dead_letter_free(letter);
    if (rc == AW_OK) {
        cJSON *anchors = anchors_of(event);
        if (!put(event, "anchors", anchors)) {
            cJSON_Delete(anchors);
            rc = aw_error_set(err, AW_ERR_NOMEM, "out of memory");
        }
    }
    if (rc == AW_OK) {
        if (put(event, "auditwatch", aw))
            aw = NULL;
        else
            rc = aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    }
    cJSON_Delete(aw);
    if (rc != AW_OK) {
        cJSON_Delete(event);
        return rc;
    }
    *out = event;
    return AW_OK;
}

/* ---- revocations, observed calls, alerts ------------------------------------ */

/* fields of the entry with auditwatch (owned, consumed) under "auditwatch". */
static int flat_record(aw_store *store, int64_t entry_rowid, cJSON *aw,
                       cJSON **out, aw_error *err)
{
    cJSON *fields = NULL;
    int rc = aw ? entry_fields(store, entry_rowid, &fields, aw, err)
                : aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    *out = NULL;
    if (rc == AW_OK && put(fields, "auditwatch", aw)) {
        *out = fields;
        return AW_OK;
    }
    cJSON_Delete(aw);
    cJSON_Delete(fields);
    return rc != AW_OK ? rc : aw_error_set(err, AW_ERR_NOMEM, "out of memory");
}

/* The start of an auditwatch object: source, stream, entry, time. */
static cJSON *auditwatch_new(const char *source, const char *stream,
                             const char *entry_id, int64_t row_id,
                             int64_t time_ns)
{
    cJSON *aw = cJSON_CreateObject();
    if (aw && add_text(aw, "source", source) &&
        add_text(aw, "stream", stream) && add_text(aw, "entry_id", entry_id) &&
        cJSON_AddNumberToObject(aw, "row_id", (double)row_id) &&
        add_time(aw, "time", time_ns))
        return aw;
    cJSON_Delete(aw);
    return NULL;
}

int aw_cli_revocation_record(aw_store *store, const aw_revocation_row *row,
                             cJSON **out, aw_error *err)
{
    cJSON *aw = auditwatch_new("revocation", row->stream, row->entry_id,
                               row->rowid, row->at_ns);
    cJSON *what = aw ? cJSON_AddObjectToObject(aw, "revocation") : NULL;
    bool ok =
        what &&
        add_text(what, "action", aw_revocation_action_name(row->action)) &&
        add_text(what, "anchor_kind", aw_anchor_kind_name(row->anchor.kind)) &&
        add_text(what, "anchor_id", row->anchor.id) &&
        add_text(what, "zone_id", row->zone_id) &&
        add_time(what, "at", row->at_ns) &&
        add_text(what, "reason", row->reason);
    if (!ok) {
        cJSON_Delete(aw);
        aw = NULL;
    }
    return flat_record(store, row->entry_rowid, aw, out, err);
}

int aw_cli_call_record(aw_store *store, const aw_call_row *row, cJSON **out,
                       aw_error *err)
{
    cJSON *aw = auditwatch_new("call", row->stream, row->entry_id, row->rowid,
                               row->occurred_at_ns);
    cJSON *call = aw ? cJSON_AddObjectToObject(aw, "call") : NULL;
    bool ok = call && add_text(call, "request_id", row->request_id) &&
              cJSON_AddNumberToObject(call, "status", row->status) &&
              add_time(call, "occurred_at", row->occurred_at_ns) &&
              add_text(call, "zone_id", row->zone_id) &&
              add_text(call, "resource", row->resource) &&
              add_text(call, "source", row->source) &&
              cJSON_AddBoolToObject(aw, "signed", row->is_signed) &&
              cJSON_AddBoolToObject(aw, "time_logged", row->time_is_logged);
    if (!ok) {
        cJSON_Delete(aw);
        aw = NULL;
    }
    return flat_record(store, row->entry_rowid, aw, out, err);
}

int aw_cli_alert_record(const aw_alert *a, cJSON **out, aw_error *err)
{
    cJSON *record = cJSON_CreateObject();
    cJSON *aw = record ? cJSON_AddObjectToObject(record, "auditwatch") : NULL;
    bool ok = aw && add_text(aw, "source", "alert") &&
              add_time(aw, "time", a->raised_at_ns);
    cJSON *alert = ok ? cJSON_AddObjectToObject(aw, "alert") : NULL;
    ok = alert && add_text(alert, "id", a->id) &&
         add_text(alert, "kind", a->kind) &&
         add_text(alert, "severity", a->severity) &&
         add_text(alert, "state", aw_alert_state_name(a->state)) &&
         add_text(alert, "zone_id", a->zone_id) &&
         add_text(alert, "request_id", a->request_id) &&
         add_text(alert, "anchor", a->anchor) &&
         add_text(alert, "summary", a->summary) &&
         add_time(alert, "raised_at", a->raised_at_ns) &&
         (a->resolved_at_ns ? add_time(alert, "resolved_at", a->resolved_at_ns)
                            : add_text(alert, "resolved_at", NULL)) &&
         add_text(alert, "resolved_by", a->resolved_by);
    if (ok) {
        cJSON *evidence =
            a->evidence_json ? cJSON_Parse(a->evidence_json) : NULL;
        if (!evidence)
            evidence = cJSON_CreateNull();
        if (!put(alert, "evidence", evidence)) {
            cJSON_Delete(evidence);
            ok = false;
        }
    }
    *out = ok ? record : NULL;
    if (!ok)
        cJSON_Delete(record);
    return ok ? AW_OK : aw_error_set(err, AW_ERR_NOMEM, "out of memory");
}
