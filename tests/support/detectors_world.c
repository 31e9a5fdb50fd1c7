/* detectors_world.c -- see detectors_world.h. Every feed runs the sequence
 * the consumer runs for one batch, against a real SQLite index, so the
 * detector tests exercise the same store look-ups as production.
 */
#include "detectors_world.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OK_OR_FAIL(call, err)                                                  \
    do {                                                                       \
        int rc_ = (call);                                                      \
        cr_assert_eq(rc_, AW_OK, "%s failed: %d %s", #call, rc_, (err).msg);   \
    } while (0)

static void open_handles(dw_world *w)
{
    aw_error err = {0};
    OK_OR_FAIL(aw_store_open(w->path, AW_STORE_SYNC_NORMAL, &w->store, &err),
               err);
    OK_OR_FAIL(aw_detectors_new(w->store, &w->config, &w->det, &err), err);
}

static void close_handles(dw_world *w)
{
    aw_detectors_free(w->det);
    aw_store_close(w->store);
    w->det = NULL;
    w->store = NULL;
}

void dw_open(dw_world *w, int64_t grace_missing_ms, int64_t grace_revocation_ms)
{
    memset(w, 0, sizeof *w);
    snprintf(w->dir, sizeof w->dir, "/tmp/aw-detectors-XXXXXX");
    cr_assert_not_null(mkdtemp(w->dir), "mkdtemp failed");
    snprintf(w->path, sizeof w->path, "%s/index.db", w->dir);
    aw_detector_config_init(&w->config);
    w->config.grace_missing_ns = grace_missing_ms * 1000000LL;
    w->config.grace_revocation_ns = grace_revocation_ms * 1000000LL;
    open_handles(w);
}

void dw_reopen(dw_world *w)
{
    close_handles(w);
    open_handles(w);
}

void dw_close(dw_world *w)
{
    close_handles(w);
    const char *suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < 4; i++) {
        char path[160];
        snprintf(path, sizeof path, "%s%s", w->path, suffixes[i]);
        unlink(path);
    }
    rmdir(w->dir);
    free(w->changes);
}

/* ---- One batch ----------------------------------------------------------- */

static void record_change(const aw_alert *alert, aw_alert_change change,
                          void *ud)
{
    dw_world *w = ud;
    if (w->nchanges == w->changes_cap) {
        w->changes_cap = w->changes_cap ? w->changes_cap * 2 : 16;
        w->changes = realloc(w->changes, w->changes_cap * sizeof *w->changes);
        cr_assert_not_null(w->changes);
    }
    dw_change *c = &w->changes[w->nchanges++];
    snprintf(c->id, sizeof c->id, "%s", alert->id);
    snprintf(c->kind, sizeof c->kind, "%s", alert->kind);
    snprintf(c->severity, sizeof c->severity, "%s", alert->severity);
    c->state = alert->state;
    c->change = change;
}

static void begin(dw_world *w)
{
    aw_error err = {0};
    OK_OR_FAIL(aw_store_begin(w->store, &err), err);
}

/* Advances to the watermark (as the consumer does per batch), commits, and
 * hands the changes to the "sinks". */
static void finish(dw_world *w)
{
    aw_error err = {0};
    OK_OR_FAIL(aw_detectors_advance(w->det, aw_detectors_clock(w->det), &err),
               err);
    OK_OR_FAIL(aw_store_commit(w->store, &err), err);
    aw_detectors_drain(w->det, record_change, w);
}

static aw_raw_entry *make_entry(dw_world *w, const char *stream,
                                int64_t arrival_ms, const aw_field *fields,
                                size_t nfields)
{
    char id[AW_STREAM_ID_TEXT_MAX];
    snprintf(id, sizeof id, "%lld-%llu", (long long)(DW_T0_MS + arrival_ms),
             (unsigned long long)++w->seq);
    aw_bytes s = {stream, strlen(stream)}, i = {id, strlen(id)};
    aw_raw_entry *entry = NULL;
    aw_error err = {0};
    OK_OR_FAIL(aw_raw_entry_new(s, i, fields, nfields, &entry, &err), err);
    return entry;
}

static aw_field field(const char *name, const char *value)
{
    aw_field f = {{name, strlen(name)}, {value, strlen(value)}};
    return f;
}

static int64_t store_entry(dw_world *w, const aw_raw_entry *entry)
{
    aw_error err = {0};
    int64_t rowid = 0;
    aw_put_result put;
    OK_OR_FAIL(aw_store_put_entry(w->store, entry, &rowid, &put, &err), err);
    cr_assert_eq(put, AW_PUT_INSERTED, "entry %s stored twice", entry->id.ptr);
    return rowid;
}

static const char *or_default(const char *s, const char *dflt)
{
    return s ? s : dflt;
}

static aw_put_result feed_audit(dw_world *w, const dw_audit *a, bool commit)
{
    char data[2048];
    snprintf(data, sizeof data, "%s|%s|%s|%s|%s|%s|%s|%d|%lld|%s", a->id,
             or_default(a->zone, "zone-1"), or_default(a->type, ""),
             or_default(a->request, ""), or_default(a->decision, "allow"),
             or_default(a->evaluation_status, ""),
             or_default(a->result_class, ""), a->upstream_status,
             (long long)a->occurred_ms, or_default(a->variant, ""));
    aw_field fields[] = {field("id", a->id), field("data", data)};
    aw_raw_entry *entry =
        make_entry(w, a->dead_lettered ? DW_AUDIT_DLQ_STREAM : DW_AUDIT_STREAM,
                   a->arrival_ms, fields, 2);
    aw_anchor anchors[DW_MAX_ANCHORS];
    memcpy(anchors, a->anchors, sizeof anchors);

    aw_audit_event event = {
        .id = a->id,
        .zone_id = or_default(a->zone, "zone-1"),
        .event_type = a->type,
        .request_id = a->request,
        .decision = or_default(a->decision, "allow"),
        .evaluation_status = a->evaluation_status,
        .result_class = a->result_class,
        .upstream_status = a->upstream_status,
        .occurred_at_ns = DW_NS(a->occurred_ms),
        .has_delegation_epoch = a->has_epoch,
        .delegation_epoch = a->epoch,
        .anchors = anchors,
    };
    while (event.nanchors < DW_MAX_ANCHORS && a->anchors[event.nanchors].kind)
        event.nanchors++;
    aw_sha256(data, strlen(data), event.content_hash);

    aw_error err = {0};
    int64_t event_rowid = 0;
    aw_put_result put;
    begin(w);
    int64_t entry_rowid = store_entry(w, entry);
    OK_OR_FAIL(aw_store_put_event(w->store, entry_rowid, &event, &event_rowid,
                                  &put, &err),
               err);
    aw_dead_letter letter = {
        .shape = AW_DEAD_AUDIT_DLQ,
        .reason = DW_CARACAL_REASON,
        .received_at_ns = DW_NS(a->arrival_ms),
        .dead_lettered_ns = DW_NS(a->arrival_ms),
    };
    OK_OR_FAIL(a->dead_lettered
                   ? aw_detectors_on_dead_event(w->det, entry, &letter, &event,
                                                event_rowid, put, &err)
                   : aw_detectors_on_event(w->det, entry, &event, event_rowid,
                                           put, &err),
               err);
    if (commit) {
        finish(w);
    } else {
        aw_store_rollback(w->store);
        aw_detectors_discard(w->det);
    }
    aw_raw_entry_free(entry);
    return put;
}

aw_put_result dw_feed_audit(dw_world *w, const dw_audit *a)
{
    return feed_audit(w, a, true);
}

void dw_feed_audit_rolled_back(dw_world *w, const dw_audit *a)
{
    feed_audit(w, a, false);
}

/* commit false: the batch is judged (aw_detectors_advance), then rolled
 * back, as when its commit fails. */
static void feed_revocation(dw_world *w, const dw_revocation *r, bool commit)
{
    const char *zone = or_default(r->zone, "zone-1");
    bool lifecycle = r->action != AW_ACTION_REVOKE;
    aw_field fields[] = {
        field("zone_id", zone),
        field(lifecycle ? "event" : "reason",
              lifecycle ? aw_revocation_action_name(r->action)
                        : "grant_revoked"),
        field("dedupe_key", or_default(r->dedupe_key, "")),
    };
    aw_raw_entry *entry = make_entry(w,
                                     lifecycle      ? DW_LIFECYCLE_STREAM
                                     : r->has_epoch ? DW_DELEGATIONS_STREAM
                                                    : DW_REVOKE_STREAM,
                                     r->at_ms, fields, r->dedupe_key ? 3 : 2);

    aw_revocation items[DW_MAX_ANCHORS];
    aw_revocation_set set = {
        .zone_id = zone,
        .reason = "test",
        .at_ns = DW_NS(r->at_ms),
        .delivery_id = r->dedupe_key,
        .has_epoch = r->has_epoch,
        .epoch = r->epoch,
        .items = items,
    };
    while (set.n < DW_MAX_ANCHORS && r->anchors[set.n].kind) {
        items[set.n].anchor = r->anchors[set.n];
        items[set.n].action = r->action;
        set.n++;
    }
    aw_error err = {0};
    begin(w);
    int64_t entry_rowid = store_entry(w, entry);
    OK_OR_FAIL(aw_store_put_revocations(w->store, entry_rowid, &set, &err),
               err);
    OK_OR_FAIL(aw_detectors_on_revocations(w->det, entry, &set, &err), err);
    if (commit) {
        finish(w);
    } else {
        OK_OR_FAIL(
            aw_detectors_advance(w->det, aw_detectors_clock(w->det), &err),
            err);
        aw_store_rollback(w->store);
        aw_detectors_discard(w->det);
    }
    aw_raw_entry_free(entry);
}

void dw_feed_revocation(dw_world *w, const dw_revocation *r)
{
    feed_revocation(w, r, true);
}

void dw_feed_revocation_rolled_back(dw_world *w, const dw_revocation *r)
{
    feed_revocation(w, r, false);
}

void dw_feed_call(dw_world *w, const dw_call *c)
{
    char status[16];
    snprintf(status, sizeof status, "%d", c->status);
    aw_field fields[] = {field("request_id", c->request),
                         field("status", status)};
    aw_raw_entry *entry =
        make_entry(w, DW_CALLS_STREAM, c->arrival_ms, fields, 2);
    aw_observed_call call = {
        .request_id = c->request,
        .status = c->status,
        .occurred_at_ns = DW_NS(c->occurred_ms),
        .time_is_logged = c->logged,
        .zone_id = c->zone,
        .resource = "resource://api",
        .source = "nginx",
    };
    aw_error err = {0};
    int64_t call_rowid = 0;
    begin(w);
    int64_t entry_rowid = store_entry(w, entry);
    OK_OR_FAIL(
        aw_store_put_call(w->store, entry_rowid, &call, &call_rowid, &err),
        err);
    OK_OR_FAIL(aw_detectors_on_call(w->det, entry, &call, call_rowid, &err),
               err);
    finish(w);
    aw_raw_entry_free(entry);
}

void dw_feed_rejected(dw_world *w, aw_stream_role role, int64_t arrival_ms,
                      aw_reject_reason reason, const char *detail)
{
    aw_field fields[] = {field("data", "{}"), field("sig", "00"),
                         field("reason", DW_CARACAL_REASON)};
    bool dead = aw_stream_role_dead_letter_origin(role) >= 0;
    aw_raw_entry *entry = make_entry(w, aw_stream_role_default_stream(role),
                                     arrival_ms, fields, dead ? 3 : 2);
    aw_error err = {0};
    begin(w);
    int64_t entry_rowid = store_entry(w, entry);
    OK_OR_FAIL(
        aw_store_put_rejected(w->store, entry_rowid, reason, detail, &err),
        err);
    OK_OR_FAIL(
        aw_detectors_on_rejected(w->det, entry, role, reason, detail, &err),
        err);
    finish(w);
    aw_raw_entry_free(entry);
}

int dw_trimmed(dw_world *w, const char *stream, int role, const char *first_id,
               const char *last_id)
{
    aw_error err = {0};
    begin(w);
    int rc =
        aw_detectors_on_trimmed(w->det, stream, role, first_id, last_id, &err);
    if (rc) {
        aw_store_rollback(w->store);
        aw_detectors_discard(w->det);
        return rc;
    }
    finish(w);
    return AW_OK;
}

void dw_advance(dw_world *w, int64_t ms)
{
    aw_error err = {0};
    begin(w);
    OK_OR_FAIL(aw_detectors_advance(w->det, DW_NS(ms), &err), err);
    OK_OR_FAIL(aw_store_commit(w->store, &err), err);
    aw_detectors_drain(w->det, record_change, w);
}

/* ---- Reading alerts back ------------------------------------------------- */

typedef struct alert_list {
    const char *request;
    dw_alert *items;
    size_t n, cap;
} alert_list;

static int copy_alert(const aw_alert *a, void *ud)
{
    alert_list *list = ud;
    if (list->request &&
        (!a->request_id || strcmp(a->request_id, list->request)))
        return 0;
    if (list->n == list->cap) {
        list->cap = list->cap ? list->cap * 2 : 8;
        list->items = realloc(list->items, list->cap * sizeof *list->items);
        cr_assert_not_null(list->items);
    }
    dw_alert *d = &list->items[list->n++];
    memset(d, 0, sizeof *d);
    snprintf(d->id, sizeof d->id, "%s", a->id);
    snprintf(d->kind, sizeof d->kind, "%s", a->kind);
    snprintf(d->severity, sizeof d->severity, "%s", a->severity);
    snprintf(d->zone, sizeof d->zone, "%s", or_default(a->zone_id, ""));
    snprintf(d->request, sizeof d->request, "%s",
             or_default(a->request_id, ""));
    snprintf(d->anchor, sizeof d->anchor, "%s", or_default(a->anchor, ""));
    snprintf(d->resolved_by, sizeof d->resolved_by, "%s",
             or_default(a->resolved_by, ""));
    snprintf(d->evidence, sizeof d->evidence, "%s",
             or_default(a->evidence_json, ""));
    snprintf(d->summary, sizeof d->summary, "%s", or_default(a->summary, ""));
    d->state = a->state;
    d->event_time_ns = a->event_time_ns;
    d->raised_at_ns = a->raised_at_ns;
    d->resolved_at_ns = a->resolved_at_ns;
    d->late_ns = a->late_ns;
    return 0;
}

static int by_id(const void *a, const void *b)
{
    return strcmp(((const dw_alert *)a)->id, ((const dw_alert *)b)->id);
}

static alert_list load_alerts(dw_world *w, const char *kind,
                              const char *request)
{
    alert_list list = {.request = request};
    aw_alert_filter filter = {.kind = kind, .request_id = request};
    aw_error err = {0};
    OK_OR_FAIL(
        aw_store_query_alerts(w->store, &filter, copy_alert, &list, &err), err);
    if (list.n)
        qsort(list.items, list.n, sizeof *list.items, by_id);
    return list;
}

size_t dw_alerts(dw_world *w, const char *kind, const char *request,
                 dw_alert *out, size_t max)
{
    alert_list list = load_alerts(w, kind, request);
    for (size_t i = 0; i < list.n && i < max; i++)
        out[i] = list.items[i];
    free(list.items);
    return list.n;
}

dw_alert dw_the_alert(dw_world *w, const char *kind, const char *request)
{
    dw_alert alert;
    size_t n = dw_alerts(w, kind, request, &alert, 1);
    cr_assert_eq(n, 1, "expected one %s alert for %s, found %zu", kind,
                 request ? request : "any request", n);
    return alert;
}

char *dw_snapshot(dw_world *w)
{
    alert_list list = load_alerts(w, NULL, NULL);
    size_t size = list.n * AW_STREAM_ID_TEXT_MAX + 1;
    char *out = calloc(1, size);
    cr_assert_not_null(out);
    size_t len = 0;
    for (size_t i = 0; i < list.n; i++)
        len +=
            (size_t)snprintf(out + len, size - len, "%s %s\n", list.items[i].id,
                             aw_alert_state_name(list.items[i].state));
    free(list.items);
    return out;
}

size_t dw_count_changes(const dw_world *w, const char *kind,
                        aw_alert_change change)
{
    size_t n = 0;
    for (size_t i = 0; i < w->nchanges; i++)
        if ((!kind || strcmp(w->changes[i].kind, kind) == 0) &&
            w->changes[i].change == change)
            n++;
    return n;
}
