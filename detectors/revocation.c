/* revocation.c -- access_after_revocation: authority used after it was
 * revoked.
 *
 * An audit event that grants access (decision allow or consumed) names the
 * anchors it used: the authority record (session_id), the agent session, the
 * delegation edge and every delegation_chain element. Gateway events name
 * none (DESIGN §2.4): a Gateway call's anchors are those of the
 * token_exchange with its request id, and that decision's time is the one
 * that counts (the Gateway's occurred_at is the end of the call), so only
 * decisions are judged and a Gateway call only makes their alert critical.
 * The access at time t is illegitimate for an anchor of the same zone when
 * that anchor has
 *   - a REVOKE (session revoke of an authority record or edge, terminate,
 *     edge_revoke, edge_expire; final) at T with t > T + grace_revocation,
 *   - a SUSPEND (lifecycle suspend, or the agent session a session revoke
 *     names: Caracal writes one with each suspend) at T with
 *     t > T + grace_revocation and no RESUME after it at or before t, or
 *   - a REVOKE of an edge at graph epoch E, and the access's
 *     delegation_graph_epoch is E or later: the STS read a graph in which
 *     the edge was already revoked, whatever the clocks say.
 * The grace covers propagation: Caracal needs a moment to make every STS
 * and Gateway stop honouring a revoked anchor. T of an outbox redelivery is
 * the earliest delivery's (the store keeps it so).
 *
 * Order independence: the rule is judged for an access (against the
 * anchor's revocation history) and for a revocation (against the granting
 * accesses of that anchor in the window the revocation affects, an indexed
 * range). Both judgements wait until the end of the batch
 * (aw_det_revocation_run_deferred, from aw_detectors_advance), when
 * everything the batch brought is stored, so that the order of streams
 * within a batch decides nothing. A RESUME that arrives in a later batch
 * than the access re-judges the accesses it covers and resolves the alerts
 * that no longer hold (an alert stands for every access of its request with
 * that anchor, so only once none is forbidden any more), with resolved_by
 * "revocation:<stream>/<entry id>"
 * and late_ns 0 (the resume was in force before the access: it was read
 * late, not issued late).
 *
 * One alert per (zone, anchor, request id): a token_exchange and the
 * Gateway event of its call share a request id, hence one alert whose
 * evidence lists both. An access that names several revoked anchors raises
 * one alert per anchor (which anchors count does not depend on arrival
 * order). The alert is critical when a Gateway call with that request id
 * executed and ended at or after the decision, within grace_missing of it
 * (request ids repeat: a call that ended before the decision cannot be its
 * call, and one that ended days later is another call; the Gateway
 * exchanges the mandate when the call starts, and the same window pairs a
 * call with its decision in missing.c); a Gateway event that arrives after
 * the alert escalates it the same way.
 *
 * The common case (an anchor never revoked) costs no look-up: det->seen
 * knows every anchor that has a revocation row.
 */
#include "detectors/alerting.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- An anchor's revocation history -------------------------------------- */

typedef struct revocation {
    char *block; /* owns stream and entry_id */
    const char *stream, *entry_id;
    aw_revocation_action action;
    int64_t at_ns;
    uint64_t seq; /* entry id sequence, orders one ms */
    int64_t rowid;
    bool has_epoch; /* graph epoch of an edge revocation */
    int64_t epoch;
    const char *delivery_id; /* the outbox delivery's, or NULL */
    size_t first;            /* index of its first delivery: its own
                                      unless it is an outbox redelivery */
    bool has_occurrence;     /* the coordinator's time of the change */
    int64_t occurrence_ns;
} revocation;

typedef struct history {
    revocation *items; /* ordered as the store gives them */
    size_t n, cap;
} history;

static void history_free(history *h)
{
    for (size_t i = 0; i < h->n; i++)
        free(h->items[i].block);
    free(h->items);
}

static int copy_revocation(const aw_revocation_row *row, void *ud)
{
    history *h = ud;
    if (h->n == h->cap) {
        /* most histories hold one to three rows, and thousands are kept */
        size_t cap = h->cap ? h->cap * 2 : 2;
        revocation *items = realloc(h->items, cap * sizeof *items);
        if (!items)
            return AW_ERR_NOMEM;
        h->items = items;
        h->cap = cap;
    }
    revocation *r = &h->items[h->n];
    const char *src[] = {row->stream, row->entry_id, row->delivery_id};
    const char *dst[3];
    r->block = aw_det_copy_strings(src, dst, 3, 0);
    if (!r->block)
        return AW_ERR_NOMEM;
    r->stream = dst[0];
    r->entry_id = dst[1];
    r->delivery_id = dst[2];
    /* A redelivery (same delivery id on the same stream) is the same
     * revocation: the store gave every copy the first one's time, and the
     * rules look only at the first copy in (time, row) order. */
    r->first = h->n;
    for (size_t i = 0; r->delivery_id && i < h->n; i++)
        if (h->items[i].delivery_id &&
            strcmp(h->items[i].delivery_id, r->delivery_id) == 0 &&
            strcmp(h->items[i].stream, r->stream) == 0) {
            r->first = h->items[i].first;
            break;
        }
    r->has_occurrence =
        aw_delivery_occurrence(r->delivery_id, &r->occurrence_ns);
    r->action = row->action;
    r->at_ns = row->at_ns;
    r->rowid = row->rowid;
    r->has_epoch = row->has_epoch;
    r->epoch = row->epoch;
    uint64_t ms;
    if (aw_stream_id_parse(row->entry_id, strlen(row->entry_id), &ms, &r->seq))
        r->seq = 0;
    h->n++;
    return 0;
}

static int load_history(aw_detectors *det, const char *zone_id,
                        const aw_anchor *anchor, history *h, aw_error *err)
{
    aw_revocation_filter filter = {.zone_id = zone_id, .anchor = *anchor};
    memset(h, 0, sizeof *h);
    int rc =
        aw_det_store_result(aw_store_query_revocations(det->store, &filter,
                                                       copy_revocation, h, err),
                            err);
    /* the history is cached as it is: no spare room from the doubling */
    revocation *fit = rc == AW_OK && h->n && h->n < h->cap
                          ? realloc(h->items, h->n * sizeof *fit)
                          : NULL;
    if (fit) {
        h->items = fit;
        h->cap = h->n;
    }
    return rc;
}

/* ---- Histories kept between batches -------------------------------------- */

/* An anchor that was revoked and is in use again (a resumed agent session)
 * makes every one of its accesses judged against its history; reading it
 * from the store each time cost a sixth of the daemon's time. So recent
 * histories stay in memory, direct-mapped by the filter's hash of (zone,
 * anchor). A history changes only when a revocation of that anchor is
 * stored, and aw_det_revocation_on_set forgets it then; a rollback forgets
 * them all, since they may hold rolled-back rows. Resumed agent sessions
 * pile up as the stream goes on: 1,024 slots thrashed, and each miss is a
 * store look-up (8,192 drained 1.12x as fast). Their histories also grow
 * with every suspension (ten rows on average over the bench's 10M
 * entries), so memory is bounded by rows, not slots: past
 * HISTORY_ROWS_MAX (~3 MiB) every history is forgotten and the ones in
 * use are read again. */
#define HISTORY_SLOTS    8192 /* a power of two */
#define HISTORY_ROWS_MAX 16384

typedef struct cached_history {
    char *block; /* owns zone_id and anchor_id; NULL: the slot is empty */
    const char *zone_id, *anchor_id;
    aw_anchor_kind kind;
    history h;
} cached_history;

struct aw_det_histories {
    cached_history slots[HISTORY_SLOTS];
    size_t rows; /* revocations held by all slots */
};

static cached_history *history_slot(aw_det_histories *hs, const char *zone_id,
                                    const aw_anchor *anchor)
{
    aw_seen_key key = aw_det_key_revoked_anchor(zone_id, anchor);
    return &hs->slots[key.h1 & (HISTORY_SLOTS - 1)];
}

static bool same_text(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static bool slot_holds(const cached_history *c, const char *zone_id,
                       const aw_anchor *anchor)
{
    return c->block && c->kind == anchor->kind &&
           same_text(c->zone_id, zone_id) &&
           strcmp(c->anchor_id, anchor->id) == 0;
}

static void slot_empty(aw_det_histories *hs, cached_history *c)
{
    if (!c->block)
        return;
    hs->rows -= c->h.n;
    history_free(&c->h);
    free(c->block);
    memset(c, 0, sizeof *c);
}

int aw_det_histories_new(aw_detectors *det)
{
    det->histories = calloc(1, sizeof *det->histories);
    return det->histories ? AW_OK : AW_ERR_NOMEM;
}

void aw_det_histories_forget(aw_detectors *det)
{
    for (size_t i = 0; det->histories && i < HISTORY_SLOTS; i++)
        slot_empty(det->histories, &det->histories->slots[i]);
}

void aw_det_histories_free(aw_detectors *det)
{
    aw_det_histories_forget(det);
    free(det->histories);
    det->histories = NULL;
}

/* The anchor's revocation history in zone, from memory or the store.
 * Borrowed: valid until the next call. */
static int history_of(aw_detectors *det, const char *zone_id,
                      const aw_anchor *anchor, const history **out,
                      aw_error *err)
{
    aw_det_histories *hs = det->histories;
    cached_history *c = history_slot(hs, zone_id, anchor);
    if (!slot_holds(c, zone_id, anchor)) {
        history h;
        int rc = load_history(det, zone_id, anchor, &h, err);
        if (rc) {
            history_free(&h);
            return rc;
        }
        slot_empty(hs, c);
        if (hs->rows + h.n > HISTORY_ROWS_MAX)
            aw_det_histories_forget(det);
        const char *src[] = {zone_id, anchor->id};
        const char *dst[2];
        c->block = aw_det_copy_strings(src, dst, 2, 0);
        if (!c->block) {
            history_free(&h);
            return aw_error_set(err, AW_ERR_NOMEM,
                                "out of memory keeping a revocation history");
        }
        c->zone_id = dst[0];
        c->anchor_id = dst[1];
        c->kind = anchor->kind;
        c->h = h;
        hs->rows += h.n;
    }
    *out = &c->h;
    return AW_OK;
}

/* A revocation of anchor in zone was stored: its history there, and the
 * one of any zone, are out of date. */
static void history_changed(aw_detectors *det, const char *zone_id,
                            const aw_anchor *anchor)
{
    const char *zones[] = {zone_id, NULL};
    for (size_t i = 0; i < 2; i++) {
        cached_history *c = history_slot(det->histories, zones[i], anchor);
        if (slot_holds(c, zones[i], anchor))
            slot_empty(det->histories, c);
    }
}

/* a comes after b in Redis: by time, then, on one stream, by entry
 * sequence. Entry sequences of two streams are unrelated, so within one
 * millisecond of two streams a resume counts as after a suspension
 * (Caracal's suspend writes a lifecycle suspend, ordered on that stream,
 * and a session revoke that its resume may share a millisecond with);
 * otherwise rows decide. */
static bool arrived_after(const revocation *a, const revocation *b)
{
    if (a->at_ns != b->at_ns)
        return a->at_ns > b->at_ns;
    if (strcmp(a->stream, b->stream) == 0 && a->seq != b->seq)
        return a->seq > b->seq;
    bool a_resumes = a->action == AW_ACTION_RESUME;
    if (a_resumes != (b->action == AW_ACTION_RESUME))
        return a_resumes;
    return a->rowid > b->rowid;
}

/* a comes after b. Redis' order and the coordinator's (the times in the
 * outbox keys) can disagree: a retried XADD publishes a suspend after the
 * resume that followed it, and two transactions that race stamp the later
 * one earlier. Then a resume counts as the later of the two, so that a
 * disagreement never leaves a session suspended that either order says
 * was resumed (a false alert costs more than a missed one). */
static bool comes_after(const revocation *a, const revocation *b)
{
    bool redis = arrived_after(a, b);
    bool resumes = a->action == AW_ACTION_RESUME;
    if (!a->has_occurrence || !b->has_occurrence ||
        a->occurrence_ns == b->occurrence_ns ||
        redis == (a->occurrence_ns > b->occurrence_ns) ||
        resumes == (b->action == AW_ACTION_RESUME))
        return redis;
    return resumes;
}

/* When a resume takes effect: its entry time, or the coordinator's time
 * of it when that is earlier (its XADD was retried). */
static int64_t resumed_at(const revocation *r)
{
    return r->has_occurrence && r->occurrence_ns < r->at_ns ? r->occurrence_ns
                                                            : r->at_ns;
}

static bool is_redelivery(const history *h, const revocation *r)
{
    return r->first != (size_t)(r - h->items);
}

/* A granting access, as the rule needs it (strings borrowed or owned by
 * block). */
typedef struct access {
    char *block;
    const char *event_id, *zone_id, *request_id, *decision;
    int64_t occurred_at_ns;
    int64_t arrived_ns; /* its entry id's time */
    bool has_epoch;     /* delegation_graph_epoch */
    int64_t epoch;
    const char *own_edge; /* its delegation_edge_id (the chain's last edge),
                             NULL when it names none or was not read */
} access;

/* The access a stored event's row records. */
static access access_of_row(const aw_event_row *row)
{
    return (access){
        .occurred_at_ns = row->occurred_at_ns,
        .arrived_ns = row->arrived_ns,
        .has_epoch = row->has_delegation_epoch,
        .epoch = row->delegation_epoch,
        .own_edge = row->delegation_edge_id,
    };
}

static bool resumed_by(const history *h, const revocation *suspend,
                       int64_t access_ns)
{
    for (size_t i = 0; i < h->n; i++) {
        const revocation *r = &h->items[i];
        if (r->action == AW_ACTION_RESUME && comes_after(r, suspend) &&
            resumed_at(r) <= access_ns)
            return true;
    }
    return false;
}

/* The delegation-epoch rule: the STS decided on a graph in which this
 * edge was already revoked, whatever the clocks say. Caracal's STS
 * (services/sts/internal/exchange.go, validateSessionReferences) reads the
 * decision's own edge (delegation_edge_id) before the epoch, and only the
 * upstream edges after it (buildDelegationChain): a revoke of its own edge
 * committing between those reads gives an allow at the revocation's epoch,
 * milliseconds after it, that no enforcer could have refused. For that
 * edge the epoch counts only when the decision reached Redis past the
 * revocation's arrival and the grace: both times are Redis' own, so an STS
 * clock that is wrong still hides nothing. */
static bool revoked_by_epoch(const aw_detectors *det, const aw_anchor *anchor,
                             const revocation *r, const access *a)
{
    if (r->action != AW_ACTION_REVOKE || !r->has_epoch || !a->has_epoch ||
        a->epoch < r->epoch)
        return false;
    bool own_edge = anchor->kind == AW_ANCHOR_DELEGATION_EDGE && a->own_edge &&
                    strcmp(a->own_edge, anchor->id) == 0;
    return !own_edge ||
           a->arrived_ns >
               aw_det_add_ns(r->at_ns, det->config.grace_revocation_ns);
}

/* Store reads of an anchor's accesses: the decision's own edge is read
 * for an edge anchor, which the epoch rule needs (revoked_by_epoch). */
static bool key_columns_suffice(const aw_anchor *anchor)
{
    return anchor->kind != AW_ANCHOR_DELEGATION_EDGE;
}

/* When an access may have happened: between its occurred_at (the STS's or
 * Gateway's clock) and its arrival in Redis (Redis' clock, which stamped
 * the revocations, and never before the access). A clock ahead of Redis
 * or behind it moves occurred_at; the arrival bounds it on one side. */
static int64_t access_earliest(const access *a)
{
    return a->arrived_ns > 0 && a->arrived_ns < a->occurred_at_ns
               ? a->arrived_ns
               : a->occurred_at_ns;
}

static int64_t access_latest(const access *a)
{
    return a->arrived_ns > a->occurred_at_ns ? a->arrived_ns
                                             : a->occurred_at_ns;
}

/* Does revocation r make access a illegitimate? Only when every time the
 * access may have happened at is past r and its grace, and, for a
 * suspension, before any resume. */
static bool forbids(const aw_detectors *det, const aw_anchor *anchor,
                    const history *h, const revocation *r, const access *a)
{
    if (r->action == AW_ACTION_RESUME || is_redelivery(h, r))
        return false;
    if (revoked_by_epoch(det, anchor, r, a))
        return true;
    if (access_earliest(a) <=
        aw_det_add_ns(r->at_ns, det->config.grace_revocation_ns))
        return false;
    return r->action == AW_ACTION_REVOKE || !resumed_by(h, r, access_latest(a));
}

static const revocation *first_forbidding(const aw_detectors *det,
                                          const aw_anchor *anchor,
                                          const history *h, const access *a)
{
    for (size_t i = 0; i < h->n; i++)
        if (forbids(det, anchor, h, &h->items[i], a))
            return &h->items[i];
    return NULL;
}

/* ---- Accesses ------------------------------------------------------------ */

typedef struct gateway_calls {
    aw_det_evidence *ev;
    bool executed;
} gateway_calls;

static bool executed(const char *evaluation_status)
{
    return evaluation_status && strcmp(evaluation_status, "executed") == 0;
}

static int note_gateway_call(const aw_event_row *row, void *ud)
{
    gateway_calls *gc = ud;
    aw_det_evidence_add(gc->ev, "event", row->event_id, NULL);
    if (executed(row->evaluation_status))
        gc->executed = true;
    return 0;
}

/* Adds the Gateway events of the access's request that can be its call
 * (ended at or after the decision, within grace_missing of it) to the
 * evidence; true in *executed when one of them executed the call. */
static int find_gateway_calls(aw_detectors *det, const access *a,
                              aw_det_evidence *ev, bool *executed,
                              aw_error *err)
{
    static const char *const gateway_type[] = {AW_EVENT_GATEWAY_CALL};
    gateway_calls gc = {ev, false};
    *executed = false;
    if (!a->request_id)
        return AW_OK;
    aw_event_filter filter = {
        .request_id = a->request_id,
        .zone_id = a->zone_id,
        .event_types = gateway_type,
        .n_event_types = 1,
        .has_since = true,
        .since_ns = a->occurred_at_ns,
        .has_until = true,
        .until_ns = aw_det_add_ns(
            aw_det_add_ns(a->occurred_at_ns, det->config.grace_missing_ns), 1),
        .key_columns_only = true,
    };
    int rc =
        aw_store_query_events(det->store, &filter, note_gateway_call, &gc, err);
    *executed = gc.executed;
    return rc;
}

static char *anchor_name(const aw_anchor *anchor)
{
    return aw_det_printf("%s:%s", aw_anchor_kind_name(anchor->kind),
                         anchor->id);
}

static int raise_access_alert(aw_detectors *det, const aw_anchor *anchor,
                              const history *h, const access *a,
                              const revocation *cause, aw_error *err)
{
    aw_det_evidence ev;
    aw_det_evidence_init(&ev);
    aw_det_evidence_add(&ev, "event", a->event_id, NULL);
    bool executed;
    int rc = find_gateway_calls(det, a, &ev, &executed, err);
    if (rc) {
        aw_det_evidence_free(&ev);
        return rc;
    }
    for (size_t i = 0; i < h->n; i++)
        if (forbids(det, anchor, h, &h->items[i], a))
            aw_det_evidence_add(&ev, "revocation", h->items[i].stream,
                                h->items[i].entry_id);

    char when[40], revoked_when[40], grace[32];
    char *name = anchor_name(anchor);
    aw_alert alert = {
        .kind = AW_ALERT_ACCESS_AFTER_REVOCATION,
        .severity = executed ? "critical" : "high",
        .zone_id = a->zone_id,
        .request_id = a->request_id,
        .anchor = name,
        .event_time_ns = a->occurred_at_ns,
        .evidence_json = aw_det_evidence_json(&ev),
    };
    bool revoked = cause->action == AW_ACTION_REVOKE;
    char why[96];
    if (revoked_by_epoch(det, anchor, cause, a))
        snprintf(why, sizeof why,
                 "at delegation graph epoch %lld, the edge's revocation "
                 "epoch %lld or later",
                 (long long)a->epoch, (long long)cause->epoch);
    else
        snprintf(why, sizeof why, "past the %s propagation grace",
                 aw_det_seconds(det->config.grace_revocation_ns, grace));
    if (name)
        alert.summary = aw_det_printf(
            "Access by event %s (request %s, decision %s at %s) used %s in "
            "zone %s after it was %s at %s (entry %s/%s)%s, %s.",
            a->event_id, a->request_id ? a->request_id : "none", a->decision,
            aw_time_format(a->occurred_at_ns, when, sizeof when), name,
            a->zone_id, revoked ? "revoked" : "suspended",
            aw_time_format(cause->at_ns, revoked_when, sizeof revoked_when),
            cause->stream, cause->entry_id,
            revoked ? "" : " with no resume before the access", why);
    rc = aw_det_raise(det, &alert, err);
    free((char *)alert.summary);
    free(name);
    aw_det_evidence_free(&ev);
    return rc;
}

/* Judges one access against one anchor's history: raises when forbidden,
 * unless the cause is a suspension whose resume may be among entries of
 * its stream trimmed unread (that alert stands for it). */
static int judge(aw_detectors *det, const aw_anchor *anchor, const history *h,
                 const access *a, aw_error *err)
{
    const revocation *cause = first_forbidding(det, anchor, h, a);
    if (!cause || (cause->action == AW_ACTION_SUSPEND &&
                   aw_det_trimmed_within(det, cause->stream, cause->at_ns,
                                         access_latest(a))))
        return AW_OK;
    return raise_access_alert(det, anchor, h, a, cause, err);
}

/* ---- Accesses of one alert ----------------------------------------------- */

typedef struct forbidden_search {
    const aw_detectors *det;
    const aw_anchor *anchor;
    const history *h;
    const char *request_id;
    bool found;
} forbidden_search;

static int find_forbidden(const aw_event_row *row, void *ud)
{
    forbidden_search *fs = ud;
    access seen = access_of_row(row);
    fs->found = same_text(row->request_id, fs->request_id) &&
                first_forbidding(fs->det, fs->anchor, fs->h, &seen) != NULL;
    return fs->found ? 1 : 0;
}

/* Whether a granting access of request_id (NULL: none) in zone with anchor,
 * at a time in filter's window, is forbidden by h: an access alert stands
 * for every such access of its (zone, anchor, request). */
static int forbidden_access(aw_detectors *det, const aw_anchor *anchor,
                            const history *h, const char *zone_id,
                            const char *request_id, aw_event_filter *filter,
                            bool *forbidden, aw_error *err)
{
    forbidden_search fs = {det, anchor, h, request_id, false};
    filter->zone_id = zone_id;
    filter->anchor = *anchor;
    filter->request_id = request_id;
    filter->grants_only = true;
    filter->key_columns_only = key_columns_suffice(anchor);
    filter->any_order = true;
    int rc = aw_det_store_result(
        aw_store_query_events(det->store, filter, find_forbidden, &fs, err),
        err);
    *forbidden = fs.found;
    return rc;
}

/* ---- Escalation by a later Gateway event --------------------------------- */

typedef struct alert_list {
    const char *zone_id;
    aw_det_alert_list found;
} alert_list;

static int collect_alert(const aw_alert *alert, void *ud)
{
    alert_list *list = ud;
    if (!alert->zone_id || strcmp(alert->zone_id, list->zone_id) != 0)
        return 0;
    return aw_det_alert_list_add(&list->found, alert);
}

/* Whether the open access alert stands for a forbidden access that the
 * Gateway call that ended at call_ns can be the call of: one decided at
 * most grace_missing before. */
static int alert_has_decision_of(aw_detectors *det, const aw_alert *alert,
                                 int64_t call_ns, bool *found, aw_error *err)
{
    *found = false;
    const char *colon = alert->anchor ? strchr(alert->anchor, ':') : NULL;
    if (!colon)
        return AW_OK;
    char kind[32];
    size_t len = (size_t)(colon - alert->anchor);
    if (len >= sizeof kind)
        return AW_OK;
    memcpy(kind, alert->anchor, len);
    kind[len] = '\0';
    aw_anchor anchor = {aw_anchor_kind_from_name(kind), colon + 1};
    const history *h;
    int rc =
        anchor.kind ? history_of(det, alert->zone_id, &anchor, &h, err) : AW_OK;
    aw_event_filter window = {
        .has_since = true,
        .since_ns = aw_det_add_ns(call_ns, -det->config.grace_missing_ns),
        .has_until = true,
        .until_ns = aw_det_add_ns(call_ns, 1),
    };
    if (!rc && anchor.kind)
        rc = forbidden_access(det, &anchor, h, alert->zone_id,
                              alert->request_id, &window, found, err);
    return rc;
}

/* Gateway event G arrived: open alerts of its request become critical
 * when G executed, and list G as evidence. */
static int escalate_for_gateway_call(aw_detectors *det, const aw_audit_event *g,
                                     aw_error *err)
{
    if (!aw_det_is_gateway_call(g->event_type) || !g->request_id ||
        !aw_seen_maybe(&det->seen,
                       aw_det_key_revoked_request(g->zone_id, g->request_id)))
        return AW_OK;
    alert_list list = {.zone_id = g->zone_id};
    /* A resolved alert was about an access found legitimate since. */
    aw_alert_filter filter = {
        .kind = AW_ALERT_ACCESS_AFTER_REVOCATION,
        .request_id = g->request_id,
        .state = AW_ALERT_OPEN,
    };
    int rc = aw_det_store_result(
        aw_store_query_alerts(det->store, &filter, collect_alert, &list, err),
        err);
    for (size_t i = 0; i < list.found.n && !rc; i++) {
        const aw_alert *found = list.found.items[i];
        bool of_alert = false;
        rc = alert_has_decision_of(det, found, g->occurred_at_ns, &of_alert,
                                   err);
        if (!rc && of_alert) {
            aw_det_evidence ev;
            aw_det_evidence_init(&ev);
            aw_det_evidence_add(&ev, "event", g->id, NULL);
            aw_alert grown = *found;
            if (executed(g->evaluation_status))
                grown.severity = "critical";
            grown.evidence_json = aw_det_evidence_json(&ev);
            rc = aw_det_escalate(det, &grown, err);
            aw_det_evidence_free(&ev);
        }
    }
    aw_det_alert_list_free(&list.found);
    return rc;
}

/* ---- Work deferred to the end of the batch ------------------------------- */

/* One judgement the batch defers: an access against one anchor, or one
 * anchor of a revocation entry against the accesses it affects. Strings
 * live in block. */
struct aw_det_deferred {
    char *block;
    int64_t clock_ns; /* the detector clock when it came */
    bool is_revocation;
    aw_anchor anchor;
    const char *zone_id;
    const char *stream, *entry_id; /* a revocation's entry */
    access a;                      /* an access (block unused) */
};

/* A new deferred slot holding *item, its block holding copies[i] of the n
 * strings src[i]; NULL when out of memory. */
static aw_det_deferred *defer(aw_detectors *det, const aw_det_deferred *item,
                              const char *const *src, const char **copies,
                              size_t n)
{
    if (det->ndeferred == det->deferred_cap) {
        size_t cap = det->deferred_cap ? det->deferred_cap * 2 : 64;
        aw_det_deferred *grown = realloc(det->deferred, cap * sizeof *grown);
        if (!grown)
            return NULL;
        det->deferred = grown;
        det->deferred_cap = cap;
    }
    aw_det_deferred *d = &det->deferred[det->ndeferred];
    *d = *item;
    d->clock_ns = det->clock_ns;
    d->block = aw_det_copy_strings(src, copies, n, 0);
    if (!d->block)
        return NULL;
    det->ndeferred++;
    return d;
}

static int deferred_nomem(aw_error *err)
{
    return aw_error_set(err, AW_ERR_NOMEM, "out of memory deferring a check");
}

int aw_det_revocation_on_event(aw_detectors *det, const aw_raw_entry *entry,
                               const aw_audit_event *event, aw_error *err)
{
    int rc = AW_OK;
    if (aw_decision_grants(event->decision)) {
        aw_det_deferred item = {
            .a =
                {
                    .occurred_at_ns = event->occurred_at_ns,
                    .arrived_ns = aw_det_entry_ns(entry),
                    .has_epoch = event->has_delegation_epoch,
                    .epoch = event->delegation_epoch,
                },
        };
        /* The store keeps the first edge an event names as its
         * delegation_edge_id (the STS's own edge when it names one). */
        const char *own_edge = NULL;
        for (size_t i = 0; !own_edge && i < event->nanchors; i++)
            if (event->anchors[i].kind == AW_ANCHOR_DELEGATION_EDGE)
                own_edge = event->anchors[i].id;
        /* An anchor not yet revoked is judged, if a revocation of this
         * batch names it, by that revocation. */
        for (size_t i = 0; !rc && i < event->nanchors; i++) {
            const aw_anchor *anchor = &event->anchors[i];
            if (!aw_seen_maybe(&det->seen, aw_det_key_revoked_anchor(
                                               event->zone_id, anchor)))
                continue;
            item.anchor.kind = anchor->kind;
            const char *src[] = {event->id,         event->zone_id,
                                 event->request_id, event->decision,
                                 anchor->id,        own_edge};
            const char *c[6];
            aw_det_deferred *d = defer(det, &item, src, c, 6);
            if (!d)
                return deferred_nomem(err);
            d->a.event_id = c[0];
            d->zone_id = d->a.zone_id = c[1];
            d->a.request_id = c[2];
            d->a.decision = c[3];
            d->anchor.id = c[4];
            d->a.own_edge = c[5];
        }
    }
    if (!rc)
        rc = escalate_for_gateway_call(det, event, err);
    return rc;
}

/* ---- A revocation arrives ------------------------------------------------ */

/* The accesses a newly arrived revocation affects, with what to do. */
typedef struct affected {
    aw_detectors *det;
    const aw_anchor *anchor;
    const history *h;
    bool resume; /* re-judge (resolve) instead of raise */
    char *anchor_name;
    access *items;
    size_t n, cap;
} affected;

/* Keeps only the accesses that need work, so a long range costs memory
 * only for the alerts it raises or may resolve. */
static int collect_affected(const aw_event_row *row, void *ud)
{
    affected *af = ud;
    access seen = access_of_row(row);
    bool forbidden =
        first_forbidding(af->det, af->anchor, af->h, &seen) != NULL;
    if (af->resume) {
        if (forbidden ||
            !aw_seen_maybe(&af->det->seen,
                           aw_det_key_alert(AW_ALERT_ACCESS_AFTER_REVOCATION,
                                            row->zone_id, af->anchor_name,
                                            row->request_id)))
            return 0;
    } else if (!forbidden) {
        return 0;
    }
    if (af->n == af->cap) {
        size_t cap = af->cap ? af->cap * 2 : 8;
        access *items = realloc(af->items, cap * sizeof *items);
        if (!items)
            return AW_ERR_NOMEM;
        af->items = items;
        af->cap = cap;
    }
    access *a = &af->items[af->n];
    const char *src[] = {row->event_id, row->zone_id, row->request_id,
                         row->decision, row->delegation_edge_id};
    const char *dst[5];
    a->block = aw_det_copy_strings(src, dst, 5, 0);
    if (!a->block)
        return AW_ERR_NOMEM;
    a->event_id = dst[0];
    a->zone_id = dst[1];
    a->request_id = dst[2];
    a->decision = dst[3];
    a->own_edge = dst[4];
    a->occurred_at_ns = row->occurred_at_ns;
    a->arrived_ns = row->arrived_ns;
    a->has_epoch = seen.has_epoch;
    a->epoch = seen.epoch;
    af->n++;
    return 0;
}

/* The occurred_at range [since, until) of the accesses whose judgement the
 * revocation `self` can change. */
static void affected_window(const aw_detectors *det, const history *h,
                            const revocation *self, aw_event_filter *filter)
{
    int64_t grace = det->config.grace_revocation_ns;
    filter->has_since = true;
    filter->has_until = false;
    if (self->action == AW_ACTION_RESUME) {
        /* An access stamped before the resume may have arrived after it
         * (access_latest): any access past a suspension it ends can
         * change. Accesses after the next suspension or revocation (plus
         * grace) stay forbidden by it, whatever this resume says. */
        filter->since_ns = resumed_at(self);
        for (size_t i = 0; i < h->n; i++) {
            const revocation *r = &h->items[i];
            int64_t past = aw_det_add_ns(aw_det_add_ns(r->at_ns, grace), 1);
            if (r->action == AW_ACTION_SUSPEND && !is_redelivery(h, r) &&
                comes_after(self, r) && past < filter->since_ns)
                filter->since_ns = past;
        }
        for (size_t i = 0; i < h->n; i++) {
            const revocation *r = &h->items[i];
            if (r->action != AW_ACTION_RESUME && !is_redelivery(h, r) &&
                comes_after(r, self)) {
                filter->has_until = true;
                filter->until_ns =
                    aw_det_add_ns(aw_det_add_ns(r->at_ns, grace), 1);
                break;
            }
        }
        return;
    }
    if (self->has_epoch) {
        /* the epoch rule reaches accesses of any time */
        filter->has_since = false;
        return;
    }
    filter->since_ns = aw_det_add_ns(aw_det_add_ns(self->at_ns, grace), 1);
    if (self->action == AW_ACTION_SUSPEND) {
        for (size_t i = 0; i < h->n; i++) {
            const revocation *r = &h->items[i];
            if (r->action == AW_ACTION_RESUME && !is_redelivery(h, r) &&
                comes_after(r, self)) {
                filter->has_until = true;
                filter->until_ns = resumed_at(r);
                break;
            }
        }
    }
}

static const revocation *find_self(const history *h, const char *stream,
                                   const char *entry_id)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->items[i].entry_id, entry_id) == 0 &&
            strcmp(h->items[i].stream, stream) == 0)
            return &h->items[i];
    return NULL;
}

static int on_revoked_anchor(aw_detectors *det, const char *stream,
                             const char *entry_id, const char *zone_id,
                             const aw_anchor *anchor, aw_error *err)
{
    const history *h;
    int rc = history_of(det, zone_id, anchor, &h, err);
    const revocation *self = rc ? NULL : find_self(h, stream, entry_id);
    if (!self) {
        return rc ? rc
                  : aw_error_set(
                        err, AW_ERR,
                        "revocation %s/%s of %s:%s is not in the index", stream,
                        entry_id, aw_anchor_kind_name(anchor->kind),
                        anchor->id);
    }
    /* A redelivery changes nothing but, when it was the earlier delivery,
     * the first copy's time: judge as the first copy. */
    self = &h->items[self->first];
    affected af = {
        .det = det,
        .anchor = anchor,
        .h = h,
        .resume = self->action == AW_ACTION_RESUME,
        .anchor_name = anchor_name(anchor),
    };
    aw_event_filter filter = {
        .zone_id = zone_id,
        .anchor = *anchor,
        .grants_only = true,
        .key_columns_only = key_columns_suffice(anchor),
    };
    affected_window(det, h, self, &filter);
    rc = af.anchor_name ? aw_store_query_events(det->store, &filter,
                                                collect_affected, &af, err)
                        : AW_ERR_NOMEM;
    rc = aw_det_store_result(rc, err);
    char *resolver = af.resume ? aw_det_printf("revocation:%s/%s", self->stream,
                                               self->entry_id)
                               : NULL;
    int64_t clock_ns = det->clock_ns;
    for (size_t i = 0; i < af.n; i++) {
        const access *a = &af.items[i];
        /* known once both had come: the access may be the later */
        det->clock_ns = a->arrived_ns > clock_ns ? a->arrived_ns : clock_ns;
        bool forbidden = false;
        aw_event_filter any_time = {0};
        if (!rc && af.resume)
            rc = forbidden_access(det, anchor, h, a->zone_id, a->request_id,
                                  &any_time, &forbidden, err);
        if (!rc && af.resume && !forbidden)
            rc = aw_det_resolve(det, AW_ALERT_ACCESS_AFTER_REVOCATION,
                                a->zone_id, af.anchor_name, a->request_id,
                                resolver, self->at_ns, err);
        else if (!rc && !af.resume)
            rc = judge(det, anchor, h, a, err);
        free(af.items[i].block);
    }
    det->clock_ns = clock_ns;
    free(resolver);
    free(af.items);
    free(af.anchor_name);
    return rc;
}

int aw_det_revocation_on_set(aw_detectors *det, const aw_raw_entry *entry,
                             const aw_revocation_set *set, aw_error *err)
{
    aw_det_deferred item = {.is_revocation = true};
    for (size_t i = 0; i < set->n; i++) {
        const aw_anchor *anchor = &set->items[i].anchor;
        aw_seen_add(&det->seen,
                    aw_det_key_revoked_anchor(set->zone_id, anchor));
        history_changed(det, set->zone_id, anchor);
        item.anchor.kind = anchor->kind;
        const char *src[] = {entry->stream.ptr, entry->id.ptr, set->zone_id,
                             anchor->id};
        const char *c[4];
        aw_det_deferred *d = defer(det, &item, src, c, 4);
        if (!d)
            return deferred_nomem(err);
        d->stream = c[0];
        d->entry_id = c[1];
        d->zone_id = c[2];
        d->anchor.id = c[3];
    }
    return AW_OK;
}

/* Revocations first, so that accesses are judged once against histories
 * that hold the whole batch; judging an access twice upserts one alert.
 * An alert is raised (or resolved) at the clock its evidence came at, so
 * where batches happen to end changes no raised_at. */
int aw_det_revocation_run_deferred(aw_detectors *det, aw_error *err)
{
    int rc = AW_OK;
    int64_t clock_ns = det->clock_ns;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; !rc && i < det->ndeferred; i++) {
            aw_det_deferred *d = &det->deferred[i];
            if (d->is_revocation != (pass == 0))
                continue;
            det->clock_ns = d->clock_ns;
            if (d->is_revocation) {
                rc = on_revoked_anchor(det, d->stream, d->entry_id, d->zone_id,
                                       &d->anchor, err);
                continue;
            }
            const history *h;
            rc = history_of(det, d->zone_id, &d->anchor, &h, err);
            if (!rc)
                rc = judge(det, &d->anchor, h, &d->a, err);
        }
    }
    det->clock_ns = clock_ns;
    aw_det_revocation_drop_deferred(det);
    return rc;
}

void aw_det_revocation_drop_deferred(aw_detectors *det)
{
    for (size_t i = 0; i < det->ndeferred; i++)
        free(det->deferred[i].block);
    det->ndeferred = 0;
}
