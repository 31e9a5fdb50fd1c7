/* cmd_trace.c -- `auditwatch trace REQUEST_ID`: the whole story of one
 * request, in time order.
 *
 * Four kinds of evidence share a request id or an anchor: audit events
 * (token_exchange, the Gateway's gateway_resource_request, ...), the
 * revocations of any anchor those events used, calls observed outside
 * Caracal, and alerts. Each is found by an indexed look-up (request id, or
 * (kind, anchor id)), so the answer does not slow down as the index grows.
 *
 * What a reader needs but the index does not keep in columns (determining
 * policies, diagnostics, the full delegation chain) is decoded from the
 * event's raw entry, exactly as it arrived. The rows are gathered, sorted by
 * time (revocations at their entry time, alerts when they were raised) and
 * printed through the one output layer.
 *
 * The table is compact, for people. JSON lines and CSV are for machines:
 * each row is a record (cli/event_view.c) holding what Caracal wrote, under
 * its own names, from the verbatim raw entry, and auditwatch's own keys
 * under "auditwatch" (source, time, stream, entry_id, signed, the decoded
 * revocation or call, the alert).
 */
#include "cli/cli.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: auditwatch trace REQUEST_ID [--format F] [--db PATH]\n\n"
    "Prints every audit event with this request id, every revocation of an\n"
    "anchor those events used, every observed call and every alert of the\n"
    "request, in time order: decision, event type, resource, subject\n"
    "anchors, evaluation status, determining policies and diagnostics.\n\n"
    "  -f, --format F   table (default), json or csv; json and csv carry\n"
    "                   Caracal's own fields from the raw entries, and\n"
    "                   auditwatch's under \"auditwatch\" (README: JSON output)\n"
    "  --db PATH        the index (default $AUDITWATCH_DB or ./auditwatch.db)\n\n"
    "Exit status: 0 found, 1 nothing for this request id, 2 bad usage,\n"
    "3 failure.\n";

static const aw_cli_command command = {
    .name = "trace",
    .usage = usage,
    .common = AW_CLI_WANT_DB | AW_CLI_WANT_FORMAT,
};

enum column {
    COL_TIME,
    COL_SOURCE,
    COL_ID,
    COL_ZONE,
    COL_TYPE,
    COL_DECISION,
    COL_STATUS,
    COL_RESOURCE,
    COL_ANCHORS,
    COL_POLICIES,
    COL_DIAGNOSTICS,
    COL_DETAIL,
    NCOLS
};

static const char *const columns[NCOLS] = {
    "time",   "source",   "id",      "zone",     "type",        "decision",
    "status", "resource", "anchors", "policies", "diagnostics", "detail",
};

/* Sources in the order they sort at equal times: the cause before what it
 * caused. */
enum source { SRC_REVOCATION, SRC_AUDIT, SRC_CALL, SRC_ALERT };
static const char *const source_names[] = {"revocation", "audit", "call",
                                           "alert"};

typedef struct trace_row {
    int64_t time_ns;
    enum source source;
    int64_t rowid;
    int64_t entry_rowid;
    bool is_signed;    /* audit: its signature was verified at ingest */
    char *text[NCOLS]; /* owned; NULL is a null cell; COL_TIME unused */
    cJSON *record;     /* owned; machine formats only */
} trace_row;

/* CSV: members of the records. */
static const char *const record_columns[] = {
    "auditwatch.time",
    "auditwatch.source",
    "id",
    "zone_id",
    "event_type",
    "request_id",
    "decision",
    "evaluation_status",
    "anchors",
    "metadata_json",
    "determining_policies_json",
    "diagnostics_json",
    "auditwatch.revocation",
    "auditwatch.call",
    "auditwatch.alert",
    "auditwatch.stream",
    "auditwatch.entry_id",
    "auditwatch.signed",
};
#define NRECORD_COLS (sizeof record_columns / sizeof record_columns[0])

typedef struct trace {
    aw_store *store;
    const char *request_id;
    bool records; /* machine formats: build each row's record */
    trace_row *rows;
    size_t nrows, cap;
    /* anchors the request's events used, with their zone, to look up
     * revocations once each */
    struct used_anchor {
        aw_anchor_kind kind;
        char *id;
        char *zone;
    } * anchors;
    size_t nanchors, anchors_cap;
    aw_error err;
} trace;

/* ---- collecting -------------------------------------------------------- */

static trace_row *new_row(trace *t, int64_t time_ns, enum source source,
                          int64_t rowid)
{
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        trace_row *grown = realloc(t->rows, cap * sizeof *grown);
        if (!grown)
            return NULL;
        t->rows = grown;
        t->cap = cap;
    }
    trace_row *r = &t->rows[t->nrows++];
    memset(r, 0, sizeof *r);
    r->time_ns = time_ns;
    r->source = source;
    r->rowid = rowid;
    return r;
}

/* Sets a text cell (a copy of s, NULL stays NULL). False when out of memory. */
static bool set_text(trace_row *r, enum column c, const char *s)
{
    if (!s)
        return true;
    return (r->text[c] = strdup(s)) != NULL;
}

static bool set_printf(trace_row *r, enum column c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool set_printf(trace_row *r, enum column c, const char *fmt, ...)
{
    va_list ap;
    char buf[AW_MAX_ID_BYTES * 2];
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return set_text(r, c, buf);
}

static int nomem(trace *t)
{
    return aw_error_set(&t->err, AW_ERR_NOMEM, "out of memory");
}

static bool remember_anchor(trace *t, const aw_anchor *a, const char *zone)
{
    for (size_t i = 0; i < t->nanchors; i++)
        if (t->anchors[i].kind == a->kind &&
            strcmp(t->anchors[i].id, a->id) == 0 &&
            strcmp(t->anchors[i].zone, zone) == 0)
            return true;
    if (t->nanchors == t->anchors_cap) {
        size_t cap = t->anchors_cap ? t->anchors_cap * 2 : 8;
        void *grown = realloc(t->anchors, cap * sizeof *t->anchors);
        if (!grown)
            return false;
        t->anchors = grown;
        t->anchors_cap = cap;
    }
    char *id = strdup(a->id), *z = strdup(zone);
    if (!id || !z) {
        free(id);
        free(z);
        return false;
    }
    t->anchors[t->nanchors++] = (struct used_anchor){a->kind, id, z};
    return true;
}

/* "kind:id kind:id ..." */
static char *anchor_list(const aw_anchor *anchors, size_t n)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(aw_anchor_kind_name(anchors[i].kind)) +
               strlen(anchors[i].id) + 2;
    char *s = malloc(len), *p = s;
    if (!s)
        return NULL;
    *p = '\0';
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s%s:%s", i ? " " : "",
                     aw_anchor_kind_name(anchors[i].kind), anchors[i].id);
    return s;
}

/* A member of the event's data as compact JSON text; NULL when absent or
 * null. */
static char *json_member(const cJSON *data, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(data, name);
    if (!v || cJSON_IsNull(v))
        return NULL;
    return cJSON_PrintUnformatted(v);
}

/* What only the raw entry knows: anchors (the whole chain), policies,
 * diagnostics and the Gateway's call details. */
typedef struct raw_details {
    trace *t;
    trace_row *row;
    int rc;
} raw_details;

static int event_details(const aw_entry_row *entry, void *ud)
{
    raw_details *d = ud;
    trace_row *r = d->row;
    aw_raw_entry *raw = NULL;
    aw_dead_letter *letter = NULL;
    aw_audit_event *ev = NULL;
    aw_error err = {0};
    char detail[1024], received[40];
    size_t n = 0;

    const aw_raw_entry *audit = NULL;
    if (aw_raw_entry_unpack(entry->raw, entry->raw_len, &raw, NULL, &err) !=
            AW_OK ||
        aw_event_decode_audit(audit = aw_cli_audit_original(raw, &letter), NULL,
                              &ev, &err) != AW_OK) {
        /* Stored, but no longer decodable: say so rather than hide it. */
        d->rc = set_printf(r, COL_DETAIL, "raw entry %s unreadable: %s",
                           entry->entry_id, err.msg)
                    ? AW_OK
                    : nomem(d->t);
        aw_dead_letter_free(letter);
        aw_raw_entry_free(raw);
        return d->rc;
    }
    const aw_bytes *data = aw_raw_entry_get(audit, "data");
    cJSON *json = data ? cJSON_ParseWithLength(data->ptr, data->len) : NULL;
    bool ok =
        (r->text[COL_ANCHORS] = anchor_list(ev->anchors, ev->nanchors)) != NULL;
    if (json) {
        r->text[COL_POLICIES] = json_member(json, "determining_policies_json");
        r->text[COL_DIAGNOSTICS] = json_member(json, "diagnostics_json");
        cJSON_Delete(json);
    }
    for (size_t i = 0; ok && i < ev->nanchors; i++)
        ok = remember_anchor(d->t, &ev->anchors[i], ev->zone_id);

    detail[0] = '\0';
#define DETAIL(...)                                                            \
    n += (size_t)snprintf(                                                     \
        detail + n, n < sizeof detail ? sizeof detail - n : 0, __VA_ARGS__)
    if (ev->application_id)
        DETAIL("application=%s ", ev->application_id);
    if (ev->method)
        DETAIL("method=%s ", ev->method);
    if (ev->gateway_status)
        DETAIL("gateway_status=%d ", ev->gateway_status);
    if (ev->upstream_status)
        DETAIL("upstream_status=%d ", ev->upstream_status);
    if (ev->result_class)
        DETAIL("result=%s ", ev->result_class);
    if (ev->error_kind)
        DETAIL("error=%s ", ev->error_kind);
    if (ev->revocation_interrupted)
        DETAIL("revocation_interrupted ");
    if (ev->policy_set_version_id)
        DETAIL("policy_set_version=%s ", ev->policy_set_version_id);
    if (ev->trace_id)
        DETAIL("trace_id=%s ", ev->trace_id);
    if (letter)
        DETAIL(
            "dead_lettered reason=%s received_at=%s ", letter->reason,
            aw_time_format(letter->received_at_ns, received, sizeof received));
    DETAIL("%s entry=%s/%s", r->is_signed ? "signed" : "unsigned",
           entry->stream, entry->entry_id);
#undef DETAIL
    ok = ok && set_text(r, COL_DETAIL, detail);
    aw_dead_letter_free(letter);
    aw_audit_event_free(ev);
    aw_raw_entry_free(raw);
    d->rc = ok ? AW_OK : nomem(d->t);
    return d->rc;
}

static int add_event(const aw_event_row *e, void *ud)
{
    trace *t = ud;
    trace_row *r = new_row(t, e->occurred_at_ns, SRC_AUDIT, e->rowid);
    if (!r)
        return nomem(t);
    r->entry_rowid = e->entry_rowid;
    r->is_signed = e->is_signed;
    if (!set_text(r, COL_ID, e->event_id) ||
        !set_text(r, COL_ZONE, e->zone_id) ||
        !set_text(r, COL_TYPE, e->event_type) ||
        !set_text(r, COL_DECISION, e->decision) ||
        !set_text(r, COL_STATUS, e->evaluation_status) ||
        !set_text(r, COL_RESOURCE, e->resource))
        return nomem(t);
    return t->records ? aw_cli_event_record(t->store, e, &r->record, &t->err)
                      : 0;
}

static int add_revocation(const aw_revocation_row *v, void *ud)
{
    trace *t = ud;
    for (size_t i = 0; i < t->nrows; i++) /* one revocation, several anchors */
        if (t->rows[i].source == SRC_REVOCATION && t->rows[i].rowid == v->rowid)
            return 0;
    trace_row *r = new_row(t, v->at_ns, SRC_REVOCATION, v->rowid);
    if (!r)
        return nomem(t);
    if (!set_text(r, COL_ID, v->entry_id) ||
        !set_text(r, COL_ZONE, v->zone_id) ||
        !set_text(r, COL_TYPE, aw_revocation_action_name(v->action)) ||
        !set_printf(r, COL_ANCHORS, "%s:%s",
                    aw_anchor_kind_name(v->anchor.kind), v->anchor.id) ||
        !set_printf(r, COL_DETAIL, "%s%s%sstream=%s",
                    v->reason ? "reason=" : "", v->reason ? v->reason : "",
                    v->reason ? " " : "", v->stream))
        return nomem(t);
    return t->records
               ? aw_cli_revocation_record(t->store, v, &r->record, &t->err)
               : 0;
}

static int add_call(const aw_call_row *c, void *ud)
{
    trace *t = ud;
    trace_row *r = new_row(t, c->occurred_at_ns, SRC_CALL, c->rowid);
    if (!r)
        return nomem(t);
    if (!set_text(r, COL_ID, c->entry_id) ||
        !set_text(r, COL_ZONE, c->zone_id) ||
        !set_text(r, COL_TYPE, "observed_call") ||
        !set_printf(r, COL_STATUS, "%d", c->status) ||
        !set_text(r, COL_RESOURCE, c->resource) ||
        !set_printf(r, COL_DETAIL, "%s time=%s %s%s%sstream=%s",
                    c->is_signed ? "signed" : "unsigned",
                    c->time_is_logged ? "logged" : "arrival",
                    c->source ? "source=" : "", c->source ? c->source : "",
                    c->source ? " " : "", c->stream))
        return nomem(t);
    return t->records ? aw_cli_call_record(t->store, c, &r->record, &t->err)
                      : 0;
}

static int add_alert(const aw_alert *a, void *ud)
{
    trace *t = ud;
    trace_row *r = new_row(t, a->raised_at_ns, SRC_ALERT, (int64_t)t->nrows);
    if (!r)
        return nomem(t);
    if (!set_text(r, COL_ID, a->id) || !set_text(r, COL_ZONE, a->zone_id) ||
        !set_text(r, COL_TYPE, a->kind) ||
        !set_text(r, COL_STATUS, aw_alert_state_name(a->state)) ||
        !set_text(r, COL_ANCHORS, a->anchor) ||
        !set_printf(r, COL_DETAIL, "severity=%s %s", a->severity,
                    a->summary ? a->summary : ""))
        return nomem(t);
    return t->records ? aw_cli_alert_record(a, &r->record, &t->err) : 0;
}

static int collect(trace *t)
{
    aw_event_filter events = {.request_id = t->request_id};
    aw_alert_filter alerts = {.request_id = t->request_id};
    size_t nevents;
    int rc;

    if ((rc = aw_store_query_events(t->store, &events, add_event, t,
                                    &t->err)) != AW_OK)
        return rc;
    nevents = t->nrows;
    for (size_t i = 0; i < nevents; i++) {
        raw_details d = {t, &t->rows[i], AW_OK};
        rc = aw_store_get_entry(t->store, t->rows[i].entry_rowid, event_details,
                                &d, &t->err);
        if (rc == AW_ERR_NOTFOUND) {
            /* The event's entry row is gone: verify will say more. */
            if (!set_printf(&t->rows[i], COL_DETAIL,
                            "raw entry row %lld missing",
                            (long long)t->rows[i].entry_rowid))
                return nomem(t);
        } else if (rc != AW_OK) {
            return rc;
        }
    }
    for (size_t i = 0; i < t->nanchors; i++) {
        aw_revocation_filter f = {
            .zone_id = t->anchors[i].zone,
            .anchor = {t->anchors[i].kind, t->anchors[i].id},
        };
        if ((rc = aw_store_query_revocations(t->store, &f, add_revocation, t,
                                             &t->err)) != AW_OK)
            return rc;
    }
    rc = aw_store_query_calls(t->store, 0, t->request_id, INT64_MIN, INT64_MAX,
                              add_call, t, &t->err);
    if (rc == AW_OK)
        rc = aw_store_query_alerts(t->store, &alerts, add_alert, t, &t->err);
    return rc;
}

static int by_time(const void *pa, const void *pb)
{
    const trace_row *a = pa, *b = pb;
    if (a->time_ns != b->time_ns)
        return a->time_ns < b->time_ns ? -1 : 1;
    if (a->source != b->source)
        return a->source < b->source ? -1 : 1;
    return a->rowid < b->rowid ? -1 : a->rowid > b->rowid;
}

static int print_rows(const trace *t, aw_cli_format format)
{
    aw_cli_out *out =
        t->records
            ? aw_cli_out_new(format, record_columns, NRECORD_COLS, stdout)
            : aw_cli_out_new(format, columns, NCOLS, stdout);
    int rc = out ? AW_OK : AW_ERR_NOMEM;
    for (size_t i = 0; i < t->nrows && rc == AW_OK; i++) {
        const trace_row *r = &t->rows[i];
        if (t->records) {
            rc = aw_cli_out_record(out, r->record);
            continue;
        }
        aw_cli_cell cells[NCOLS];
        for (int c = 0; c < NCOLS; c++)
            cells[c] = c == COL_POLICIES || c == COL_DIAGNOSTICS
                           ? aw_cli_json(r->text[c])
                           : aw_cli_str(r->text[c]);
        cells[COL_TIME] = aw_cli_time(r->time_ns);
        cells[COL_SOURCE] = aw_cli_str(source_names[r->source]);
        rc = aw_cli_out_row(out, cells);
    }
    if (aw_cli_out_close(out) != AW_OK && rc == AW_OK)
        rc = AW_ERR_IO;
    return rc;
}

static void trace_free(trace *t)
{
    for (size_t i = 0; i < t->nrows; i++) {
        for (int c = 0; c < NCOLS; c++)
            free(t->rows[i].text[c]);
        cJSON_Delete(t->rows[i].record);
    }
    for (size_t i = 0; i < t->nanchors; i++) {
        free(t->anchors[i].id);
        free(t->anchors[i].zone);
    }
    free(t->rows);
    free(t->anchors);
}

int aw_cmd_trace(int argc, char **argv)
{
    aw_cli_common common;
    trace t = {0};
    int first, rc;

    rc = aw_cli_parse(&command, argc, argv, &common, NULL, NULL, &first);
    if (rc != AW_CLI_PROCEED)
        return rc;
    if ((rc = aw_cli_expect_args(&command, argc, argv, first, 1,
                                 "REQUEST_ID")) != AW_CLI_PROCEED)
        return rc;
    t.request_id = argv[first];
    t.records = common.format != AW_CLI_TABLE;
    if (!*t.request_id)
        return aw_cli_usage_error(&command, "empty REQUEST_ID");
    if ((rc =
             aw_cli_open_store(&command, &common, AW_STORE_READONLY, &t.store)))
        return rc;
    rc = collect(&t);
    aw_store_close(t.store);
    if (rc == AW_OK) {
        if (t.nrows)
            qsort(t.rows, t.nrows, sizeof *t.rows, by_time);
        if (print_rows(&t, common.format) != AW_OK)
            rc = aw_error_set(&t.err, AW_ERR_IO, "cannot write the output");
    }
    if (rc != AW_OK)
        rc = aw_cli_fail(&command, AW_EXIT_FAILURE, "%s", t.err.msg);
    else if (t.nrows == 0)
        rc = aw_cli_fail(&command, AW_EXIT_NO,
                         "nothing indexed for request id %s", t.request_id);
    else
        rc = AW_EXIT_OK;
    trace_free(&t);
    return rc;
}
