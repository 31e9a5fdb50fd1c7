/* due.c -- the checks that wait for their deadline (decision_missing,
 * call_without_audit), kept in memory instead of a durable row written and
 * deleted per check (issue 11).
 *
 * A check is (deadline, kind, ref): ref is the events row of a Gateway
 * call or the calls row of an observed call, deadline max(occurred_at,
 * arrival) + grace. They wait in a binary min-heap ordered by (deadline,
 * kind, ref); aw_det_due_run pops every one due at the clock and runs it.
 *
 * Why nothing is lost or repeated across a restart or a rollback: the
 * clock is persisted in the transaction that runs the checks due at it,
 * so the checks not yet run are exactly those with deadline > the
 * persisted clock. Their rows are derivable from the index: the rule
 * (missing.c) waits for a row only when it arrives, and rows arrive in row
 * order, so every waiting check has ref >= a mark, the smallest ref the
 * heap holds of that kind (or one past the newest row looked at, when it
 * holds none), persisted per kind in meta (due_events_from,
 * due_calls_from) by every advance, in the transaction of the rows it
 * covers. Any mark at or below every ref the heap holds is right (a row
 * id that a rollback frees and a later row takes again is in the heap
 * then, below the mark). A rebuild (at the first use after the
 * handle is created, and after a rollback) takes every Gateway call event
 * and every calls row at or after its kind's mark whose deadline is after
 * the persisted clock and asks the rule again, with that same deadline,
 * whether it is settled already (a counterpart that arrived by the
 * deadline); those that are not wait again. The answer is what the check
 * itself would conclude, so asking again changes no outcome.
 *
 * Memory: 24 bytes per waiting check (the array doubles, so up to 48).
 * At most config.max_waiting_checks (default 131,072: 3 MiB, inside the
 * daemon's 64 MiB) wait in memory; more go to the
 * store's pending table, whose due rows are taken with the heap's. With
 * Caracal's order (the STS logs a decision before the Gateway logs the
 * call) almost every Gateway call is settled on arrival and nothing waits,
 * but 150,000 events/s with nothing settled on arrival would hold ~22
 * million checks over the default 300 s grace (~540 MB): that is what the
 * bound and the spill are for. A check may sit both in the heap and in the
 * table (spilled, then found again by a rebuild) or twice in the heap (a
 * rebuild inside the batch that added it); the due checks are sorted and
 * each runs once. Rows of an index from before this file (schema 3 and
 * older) stay in the table and are taken from there as before.
 */
#include "detectors/alerting.h"

#include <stdlib.h>
#include <string.h>

static const char *const mark_keys[AW_PENDING_KINDS] = {
    [AW_PENDING_DECISION_MISSING] = "due_events_from",
    [AW_PENDING_CALL_WITHOUT_AUDIT] = "due_calls_from",
};

static int due_cmp(const aw_det_due *a, const aw_det_due *b)
{
    if (a->deadline_ns != b->deadline_ns)
        return a->deadline_ns < b->deadline_ns ? -1 : 1;
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    if (a->ref != b->ref)
        return a->ref < b->ref ? -1 : 1;
    return 0;
}

static int due_qsort_cmp(const void *a, const void *b)
{
    return due_cmp(a, b);
}

static void heap_swap(aw_det_due *items, size_t i, size_t j)
{
    aw_det_due t = items[i];
    items[i] = items[j];
    items[j] = t;
}

static void heap_push(aw_det_due_heap *h, aw_det_due d)
{
    size_t i = h->n++;
    h->items[i] = d;
    while (i > 0 && due_cmp(&h->items[i], &h->items[(i - 1) / 2]) < 0) {
        heap_swap(h->items, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static aw_det_due heap_pop(aw_det_due_heap *h)
{
    aw_det_due top = h->items[0];
    h->items[0] = h->items[--h->n];
    size_t i = 0;
    for (;;) {
        size_t least = i, l = 2 * i + 1, r = l + 1;
        if (l < h->n && due_cmp(&h->items[l], &h->items[least]) < 0)
            least = l;
        if (r < h->n && due_cmp(&h->items[r], &h->items[least]) < 0)
            least = r;
        if (least == i)
            break;
        heap_swap(h->items, i, least);
        i = least;
    }
    return top;
}

/* ---- Rebuilding from the index ------------------------------------------- */

typedef struct rebuild {
    aw_detectors *det;
    int64_t clock_ns; /* as persisted: checks after it wait */
    aw_error *err;
} rebuild;

static int rebuild_gateway_call(const aw_event_row *row, void *ud)
{
    rebuild *r = ud;
    if (!row->request_id)
        return 0;
    int64_t deadline =
        aw_det_missing_deadline(r->det, row->occurred_at_ns, row->arrived_ns);
    aw_det_due_seen(r->det, AW_PENDING_DECISION_MISSING, row->rowid);
    if (deadline <= r->clock_ns)
        return 0;
    return aw_det_missing_expect_decision(r->det, row->zone_id, row->request_id,
                                          deadline, row->rowid, r->err);
}

static int rebuild_call(const aw_call_row *row, void *ud)
{
    rebuild *r = ud;
    aw_det_due_seen(r->det, AW_PENDING_CALL_WITHOUT_AUDIT, row->rowid);
    if (!row->request_id || !aw_status_is_success(row->status))
        return 0;
    /* The entry id's milliseconds are the call's arrival. */
    aw_stream_id id = {0};
    if (aw_stream_id_from_text(row->entry_id, strlen(row->entry_id), &id))
        return aw_error_set(r->err, AW_ERR, "calls row %lld: entry id %s",
                            (long long)row->rowid, row->entry_id);
    int64_t arrival = aw_ms_to_ns(id.ms);
    int64_t deadline =
        aw_det_missing_deadline(r->det, row->occurred_at_ns, arrival);
    if (deadline <= r->clock_ns)
        return 0;
    return aw_det_missing_expect_audit(
        r->det, row->zone_id, row->request_id,
        aw_det_audit_floor(r->det, row->occurred_at_ns, row->time_is_logged),
        deadline, row->rowid, r->err);
}

static int read_meta(aw_store *store, const char *key, int64_t *value,
                     aw_error *err)
{
    *value = 0;
    int rc = aw_store_meta_get(store, key, value, err);
    return rc == AW_ERR_NOTFOUND ? AW_OK : rc;
}

int aw_det_due_rebuild(aw_detectors *det, aw_error *err)
{
    aw_det_due_heap *h = &det->due;
    h->stale = false;
    h->n = 0;
    rebuild r = {det, 0, err};
    int rc = read_meta(det->store, AW_DET_CLOCK_META_KEY, &r.clock_ns, err);
    for (int kind = 1; !rc && kind < AW_PENDING_KINDS; kind++) {
        rc = read_meta(det->store, mark_keys[kind], &h->mark[kind], err);
        /* Rows looked at in this transaction before the rebuild count. */
        if (h->mark[kind] > h->next_ref[kind])
            h->next_ref[kind] = h->mark[kind];
    }
    static const char *const gateway[] = {AW_EVENT_GATEWAY_CALL};
    aw_event_filter calls_from = {
        .from_rowid = h->mark[AW_PENDING_DECISION_MISSING],
        .event_types = gateway,
        .n_event_types = 1,
    };
    /* A mark of 0: nothing waited in memory yet (a new index, or one
     * whose checks are all in the pending table). */
    if (!rc && calls_from.from_rowid > 0)
        rc = aw_det_store_result(aw_store_query_events(det->store, &calls_from,
                                                       rebuild_gateway_call, &r,
                                                       err),
                                 err);
    if (!rc && h->mark[AW_PENDING_CALL_WITHOUT_AUDIT] > 0)
        rc = aw_det_store_result(
            aw_store_query_calls_from(det->store,
                                      h->mark[AW_PENDING_CALL_WITHOUT_AUDIT],
                                      rebuild_call, &r, err),
            err);
    if (rc)
        h->stale = true;
    return rc;
}

static int due_fresh(aw_detectors *det, aw_error *err)
{
    return det->due.stale ? aw_det_due_rebuild(det, err) : AW_OK;
}

/* ---- Waiting and running ------------------------------------------------- */

void aw_det_due_seen(aw_detectors *det, int kind, int64_t ref)
{
    if (ref >= det->due.next_ref[kind])
        det->due.next_ref[kind] = ref + 1;
}

int aw_det_due_add(aw_detectors *det, int kind, int64_t deadline_ns,
                   int64_t ref, aw_error *err)
{
    int rc = due_fresh(det, err);
    if (rc)
        return rc;
    aw_det_due_heap *h = &det->due;
    if (h->n == det->config.max_waiting_checks)
        return aw_store_pending_add(det->store, kind, deadline_ns, ref, err);
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 1024;
        aw_det_due *grown = realloc(h->items, cap * sizeof *grown);
        if (!grown)
            return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
        h->items = grown;
        h->cap = cap;
    }
    heap_push(h, (aw_det_due){deadline_ns, ref, kind});
    return AW_OK;
}

/* The due checks of this run, from the heap and the pending table. */
typedef struct due_list {
    aw_det_due *items;
    size_t n, cap;
} due_list;

static int due_list_add(due_list *l, aw_det_due d)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        aw_det_due *grown = realloc(l->items, cap * sizeof *grown);
        if (!grown)
            return AW_ERR_NOMEM;
        l->items = grown;
        l->cap = cap;
    }
    l->items[l->n++] = d;
    return AW_OK;
}

static int take_spilled(int kind, int64_t deadline_ns, int64_t ref, void *ud)
{
    return due_list_add(ud, (aw_det_due){deadline_ns, ref, kind});
}

/* Persists each kind's mark when it moved (see the story above). */
static int persist_marks(aw_detectors *det, aw_error *err)
{
    aw_det_due_heap *h = &det->due;
    int64_t mark[AW_PENDING_KINDS];
    memcpy(mark, h->next_ref, sizeof mark);
    for (size_t i = 0; i < h->n; i++) {
        int64_t *m = &mark[h->items[i].kind];
        if (*m == 0 || h->items[i].ref < *m)
            *m = h->items[i].ref;
    }
    int rc = AW_OK;
    for (int kind = 1; !rc && kind < AW_PENDING_KINDS; kind++) {
        if (mark[kind] == h->mark[kind])
            continue;
        rc = aw_store_meta_set(det->store, mark_keys[kind], mark[kind], err);
        if (!rc)
            h->mark[kind] = mark[kind];
    }
    return rc;
}

int aw_det_due_run(aw_detectors *det, aw_error *err)
{
    int rc = due_fresh(det, err);
    if (rc)
        return rc;
    aw_det_due_heap *h = &det->due;
    due_list due = {0};
    while (!rc && h->n > 0 && h->items[0].deadline_ns <= det->clock_ns)
        rc = due_list_add(&due, heap_pop(h));
    if (rc) {
        free(due.items);
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    }
    aw_error store_err = {0};
    rc = aw_store_pending_take_due(det->store, det->clock_ns, take_spilled,
                                   &due, &store_err);
    if (rc == AW_ERR_NOMEM && !store_err.msg[0])
        aw_error_set(&store_err, AW_ERR_NOMEM, "out of memory");
    if (rc && err)
        *err = store_err;
    if (!rc && due.n > 1)
        qsort(due.items, due.n, sizeof *due.items, due_qsort_cmp);
    for (size_t i = 0; !rc && i < due.n; i++) {
        if (i > 0 && due_cmp(&due.items[i], &due.items[i - 1]) == 0)
            continue;
        rc = aw_det_missing_check(det, due.items[i].kind,
                                  due.items[i].deadline_ns, due.items[i].ref,
                                  err);
    }
    free(due.items);
    if (!rc)
        rc = persist_marks(det, err);
    return rc;
}

void aw_det_due_free(aw_detectors *det)
{
    free(det->due.items);
    det->due = (aw_det_due_heap){0};
}
