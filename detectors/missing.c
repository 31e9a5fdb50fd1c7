/* missing.c -- the "call succeeded, but no audit" detectors.
 *
 * decision_missing: the Gateway re-exchanges the mandate at the STS for
 * every call it proxies, with the same request id, and logs the call only
 * when that exchange granted it. So every gateway_resource_request with
 * request id R in zone Z must be paired with its own granting
 * token_exchange (allow or consumed) with request id R in Z. Request ids
 * are the client's X-Request-Id and repeat (DESIGN §2.4), so pairing is one
 * to one, by count: the k-th Gateway call of (Z, R), in (deadline, row)
 * order, is paired when at least k granting decisions of (Z, R) arrived by
 * its deadline. Ranking by deadline, not occurred_at, is what makes that
 * count exact: a decision in time for a call is in time for every call
 * ranked after it, so an alert is raised only when the calls due so far
 * outnumber the decisions they could have had, and a call published late
 * with an early occurred_at cannot take the decision of one already due. A
 * deny (the STS's provider_credential_unavailable after an allow) pairs
 * with nothing, and a decision without a Gateway call is not a gap.
 *
 * call_without_audit: an observed call (resource-server or proxy log) with
 * request id R and a success status must be accompanied by some audit
 * event with request id R (in the call's zone when the log names one).
 * When the log gives the call's time, that event must have occurred at
 * most audit_lookback before it: clients choose request ids, so a call
 * made around the Gateway with the id of an old audited request, or a
 * captured request replayed later, must not pass for audited. Caracal's
 * own evidence of a call is never that far from it (the token_exchange
 * just before the Gateway forwards it, the Gateway's event at its end).
 * A call whose time is a stand-in (the log had none) bounds nothing. The
 * same rule decides which arriving event resolves the alert.
 *
 * Both wait for the counterpart until a deadline, max(occurred_at, arrival)
 * + grace_missing, so evidence published late from replay files still gets
 * its full window. A counterpart counts as in time when its arrival (entry
 * id time) is at or before the deadline. When the evidence arrives its
 * counterparts are looked up by request id (one indexed look-up); if they
 * already settle it the matter ends there, else a check waits (due.c) and
 * repeats the look-up once the clock reaches the deadline. A call that
 * arrives ranked ahead of calls already stored (published late, or stamped
 * ahead of Redis' clock) may take the decision one of them was paired
 * with, so each of those is checked again at its own deadline. The common
 * Gateway call needs no look-up: when no earlier call of (Z, R) is in the
 * index (a filter of every stored call's (Z, R) says "certainly not"), it
 * ranks first, and one granting decision of (Z, R) in time pairs it; the
 * STS logs that decision just before, so a small memory of recent grants
 * usually has it. Anything less certain asks the store. A
 * counterpart that came after the deadline still raises the alert, which
 * it then resolves at once. The outcome thus depends only on timestamps,
 * never on arrival order or on how entries were batched.
 *
 * A counterpart that arrives after the alert was raised resolves it (for
 * decision_missing: once every Gateway call of (Z, R) is paired), with
 * resolved_by = its event id and late_ns = its arrival - the occurred_at
 * of the evidence that raised the alert (how long after the call the
 * decision showed up). Alert ids use no anchor: (kind, zone, "", R), where
 * zone is the Gateway event's zone, or the call's zone (may be absent), so
 * the arriving counterpart can compute the id without a look-up.
 */
#include "detectors/alerting.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A counterpart found: the first to arrive, or the last. Rows come in no
 * particular order, so arrivals in the same millisecond are told apart by
 * (occurred_at, rowid), which makes the choice the same on every run. */
typedef struct counterpart {
    bool found;
    int64_t arrived_ns, occurred_ns, rowid;
    char *event_id;
} counterpart;

static bool arrived_before(const aw_event_row *row, const counterpart *cp)
{
    if (row->arrived_ns != cp->arrived_ns)
        return row->arrived_ns < cp->arrived_ns;
    if (row->occurred_at_ns != cp->occurred_ns)
        return row->occurred_at_ns < cp->occurred_ns;
    return row->rowid < cp->rowid;
}

static int counterpart_set(counterpart *cp, const aw_event_row *row)
{
    char *id = aw_det_printf("%s", row->event_id);
    if (!id)
        return AW_ERR_NOMEM;
    free(cp->event_id);
    *cp = (counterpart){true, row->arrived_ns, row->occurred_at_ns, row->rowid,
                        id};
    return 0;
}

static int keep_first_arrival(const aw_event_row *event, void *ud)
{
    counterpart *cp = ud;
    if (cp->found && !arrived_before(event, cp))
        return 0;
    return counterpart_set(cp, event);
}

int64_t aw_det_audit_floor(const aw_detectors *det, int64_t occurred_ns,
                           bool time_is_logged)
{
    if (!time_is_logged || det->config.audit_lookback_ns == 0)
        return INT64_MIN;
    return aw_det_add_ns(occurred_ns, -det->config.audit_lookback_ns);
}

/* Any audit event of request in zone (zone NULL: any zone) that occurred
 * at or after floor_ns: the counterpart of an observed call. */
static int find_any_event(aw_detectors *det, const char *zone_id,
                          const char *request_id, int64_t floor_ns,
                          counterpart *cp, aw_error *err)
{
    aw_event_filter filter = {
        .request_id = request_id,
        .zone_id = zone_id,
        .has_since = floor_ns != INT64_MIN,
        .since_ns = floor_ns,
        .key_columns_only = true,
        .any_order = true,
    };
    return aw_det_store_result(
        aw_store_query_events(det->store, &filter, keep_first_arrival, cp, err),
        err);
}

/* ---- Pairing Gateway calls with their decisions -------------------------- */

/* The Gateway calls and granting decisions of one (zone, request id). */
typedef struct pairing {
    const aw_detectors *det;
    int64_t deadline_ns; /* decisions arrived by then are in time */
    bool has_call;       /* rank the call (deadline_ns, call_rowid) */
    bool keep_displaced; /* list the calls ranked after it */
    int64_t call_rowid;
    size_t calls;     /* every Gateway call */
    size_t rank;      /* calls ordered at or before the call */
    size_t decisions; /* every granting decision */
    size_t decisions_in_time;
    /* Decisions that occurred after this are not counted. */
    bool has_decisions_until;
    int64_t decisions_until_ns;
    int64_t latest_call_ns; /* the newest call's occurred_at */
    counterpart last;       /* the decision that arrived last */
    aw_det_due *displaced;  /* owned; the calls ranked after the call */
    size_t ndisplaced, displaced_cap;
} pairing;

static int add_displaced(pairing *p, int64_t deadline_ns, int64_t rowid)
{
    if (!aw_array_grow((void **)&p->displaced, &p->displaced_cap,
                       p->ndisplaced + 1, sizeof *p->displaced))
        return AW_ERR_NOMEM;
    p->displaced[p->ndisplaced++] =
        (aw_det_due){deadline_ns, rowid, AW_PENDING_DECISION_MISSING};
    return 0;
}

static int count_pairing(const aw_event_row *row, void *ud)
{
    pairing *p = ud;
    if (aw_det_is_gateway_call(row->event_type)) {
        int64_t due = aw_det_missing_deadline(p->det, row->occurred_at_ns,
                                              row->arrived_ns);
        p->calls++;
        if (p->calls == 1 || row->occurred_at_ns > p->latest_call_ns)
            p->latest_call_ns = row->occurred_at_ns;
        if (!p->has_call || due < p->deadline_ns ||
            (due == p->deadline_ns && row->rowid <= p->call_rowid))
            p->rank++;
        else if (p->keep_displaced)
            return add_displaced(p, due, row->rowid);
        return 0;
    }
    if (!aw_decision_grants(row->decision) ||
        (p->has_decisions_until && row->occurred_at_ns > p->decisions_until_ns))
        return 0;
    p->decisions++;
    if (row->arrived_ns <= p->deadline_ns)
        p->decisions_in_time++;
    if (p->last.found && arrived_before(row, &p->last))
        return 0;
    return counterpart_set(&p->last, row);
}

static int count_pairs(aw_detectors *det, const char *zone_id,
                       const char *request_id, pairing *p, aw_error *err)
{
    static const char *const types[] = {"token_exchange", "token.exchange",
                                        AW_EVENT_GATEWAY_CALL};
    aw_event_filter filter = {
        .request_id = request_id,
        .zone_id = zone_id,
        .event_types = types,
        .n_event_types = 3,
        .key_columns_only = true,
        .any_order = true,
    };
    return aw_det_store_result(
        aw_store_query_events(det->store, &filter, count_pairing, p, err), err);
}

/* ---- Pairing from memory ------------------------------------------------- */

/* 2^24 bits (2 MiB): ~10% false positives at 3 million calls, each one a
 * look-up the filter did not spare. */
#define CALLS_LOG2_BITS 24
#define GRANT_SLOTS     4096 /* a power of two */

/* A granting decision stored recently: its (zone, request id) as
 * "zone\0request\0" and its arrival. Direct-mapped: a newer grant of
 * another request takes the slot, which only costs a look-up. */
typedef struct recent_grant {
    char *key; /* owned; NULL: empty */
    int64_t arrived_ns;
} recent_grant;

struct aw_det_grants {
    recent_grant slots[GRANT_SLOTS];
};

static aw_seen_key gateway_call_key(const char *zone_id, const char *request_id)
{
    const char *parts[] = {zone_id, request_id};
    return aw_seen_key_of(AW_SEEN_GATEWAY_CALL, parts, 2);
}

static recent_grant *grant_slot(aw_det_grants *g, const char *zone_id,
                                const char *request_id)
{
    const char *parts[] = {zone_id, request_id};
    aw_seen_key key = aw_seen_key_of(AW_SEEN_GRANT, parts, 2);
    return &g->slots[key.h1 & (GRANT_SLOTS - 1)];
}

static bool grant_is(const recent_grant *slot, const char *zone_id,
                     const char *request_id)
{
    return slot->key && strcmp(slot->key, zone_id) == 0 &&
           strcmp(slot->key + strlen(zone_id) + 1, request_id) == 0;
}

static int remember_grant(aw_detectors *det, const aw_audit_event *decision,
                          int64_t arrival, aw_error *err)
{
    recent_grant *slot =
        grant_slot(det->grants, decision->zone_id, decision->request_id);
    if (grant_is(slot, decision->zone_id, decision->request_id)) {
        if (arrival < slot->arrived_ns)
            slot->arrived_ns = arrival;
        return AW_OK;
    }
    size_t zlen = strlen(decision->zone_id) + 1;
    size_t rlen = strlen(decision->request_id) + 1;
    char *key = malloc(zlen + rlen);
    if (!key)
        return aw_error_set(err, AW_ERR_NOMEM,
                            "out of memory remembering a decision");
    memcpy(key, decision->zone_id, zlen);
    memcpy(key + zlen, decision->request_id, rlen);
    free(slot->key);
    *slot = (recent_grant){key, arrival};
    return AW_OK;
}

/* Keeps det->calls complete: every events row the batch inserts passes
 * here in row order, so a row that does not follow calls_through means
 * rows were stored without the detectors, and the filter is no longer
 * trusted. True when row is a Gateway call of (zone, request id) that no
 * earlier events row certainly has. */
static bool first_call_of_request(aw_detectors *det,
                                  const aw_audit_event *event, int64_t rowid)
{
    bool complete =
        det->calls_through != INT64_MIN && rowid == det->calls_through + 1;
    det->calls_through = complete ? rowid : INT64_MIN;
    if (!event->request_id || !aw_det_is_gateway_call(event->event_type))
        return false;
    aw_seen_key key = gateway_call_key(event->zone_id, event->request_id);
    bool first = complete && !aw_seen_maybe(&det->calls, key);
    aw_seen_add(&det->calls, key);
    return first;
}

/* A Gateway call that ranks first is paired by one granting decision of
 * its request that arrived by the deadline. */
static bool paired_from_memory(aw_detectors *det, const aw_audit_event *call,
                               int64_t deadline_ns)
{
    const recent_grant *slot =
        grant_slot(det->grants, call->zone_id, call->request_id);
    return grant_is(slot, call->zone_id, call->request_id) &&
           slot->arrived_ns <= deadline_ns;
}

static int remember_call(const char *zone_id, const char *request_id, void *ud)
{
    aw_detectors *det = ud;
    aw_seen_add(&det->calls, gateway_call_key(zone_id, request_id));
    return 0;
}

int aw_det_missing_new(aw_detectors *det, aw_error *err)
{
    det->grants = calloc(1, sizeof *det->grants);
    if (!det->grants || aw_seen_init(&det->calls, CALLS_LOG2_BITS))
        return aw_error_set(err, AW_ERR_NOMEM,
                            "out of memory for the pairing filter");
    int rc = aw_store_each_request_of_type(det->store, AW_EVENT_GATEWAY_CALL,
                                           remember_call, det,
                                           &det->calls_through, err);
    det->calls_at_advance = det->calls_through;
    return aw_det_store_result(rc, err);
}

static void forget_grants(aw_detectors *det)
{
    for (size_t i = 0; det->grants && i < GRANT_SLOTS; i++) {
        free(det->grants->slots[i].key);
        det->grants->slots[i] = (recent_grant){0};
    }
}

void aw_det_missing_free(aw_detectors *det)
{
    forget_grants(det);
    free(det->grants);
    det->grants = NULL;
    aw_seen_free(&det->calls);
}

void aw_det_missing_judged(aw_detectors *det)
{
    det->calls_at_advance = det->calls_through;
}

/* The rolled-back rows are gone: grants may name them, and the rows the
 * filter covers are those before the batch (if the batch had been judged
 * already, the next row does not follow and the filter is dropped). The
 * rolled-back calls' keys stay in it, which only costs look-ups. */
void aw_det_missing_forget(aw_detectors *det)
{
    forget_grants(det);
    det->calls_through = det->calls_at_advance;
}

/* The call the pairing ranked has a decision of its own, in time. */
static bool call_paired(const pairing *p)
{
    return p->decisions_in_time >= p->rank;
}

/* ---- Evidence arrives ---------------------------------------------------- */

int64_t aw_det_missing_deadline(const aw_detectors *det, int64_t occurred_ns,
                                int64_t arrival_ns)
{
    int64_t from = occurred_ns > arrival_ns ? occurred_ns : arrival_ns;
    return aw_det_add_ns(from, det->config.grace_missing_ns);
}

/* Waits for a decision until the deadline, unless the Gateway call is
 * paired with a decision in time already (the common order: the STS logs
 * the decision before the Gateway logs the call), which settles it now.
 * The calls it now ranks ahead of (it was published late) may have lost
 * their decision to it, so each is checked again at its own deadline. */
int aw_det_missing_expect_decision(aw_detectors *det, const char *zone_id,
                                   const char *request_id, int64_t deadline_ns,
                                   int64_t rowid, aw_error *err)
{
    aw_det_due_seen(det, AW_PENDING_DECISION_MISSING, rowid);
    pairing p = {
        .det = det,
        .deadline_ns = deadline_ns,
        .has_call = true,
        .keep_displaced = true,
        .call_rowid = rowid,
    };
    int rc = count_pairs(det, zone_id, request_id, &p, err);
    for (size_t i = 0; !rc && i < p.ndisplaced; i++)
        rc =
            aw_det_due_add(det, AW_PENDING_DECISION_MISSING,
                           p.displaced[i].deadline_ns, p.displaced[i].ref, err);
    if (!rc && !call_paired(&p))
        rc = aw_det_due_add(det, AW_PENDING_DECISION_MISSING, deadline_ns,
                            rowid, err);
    free(p.last.event_id);
    free(p.displaced);
    return rc;
}

int aw_det_missing_expect_audit(aw_detectors *det, const char *zone_id,
                                const char *request_id, int64_t floor_ns,
                                int64_t deadline_ns, int64_t ref, aw_error *err)
{
    aw_det_due_seen(det, AW_PENDING_CALL_WITHOUT_AUDIT, ref);
    counterpart cp = {0};
    int rc = find_any_event(det, zone_id, request_id, floor_ns, &cp, err);
    free(cp.event_id);
    if (rc || (cp.found && cp.arrived_ns <= deadline_ns))
        return rc;
    return aw_det_due_add(det, AW_PENDING_CALL_WITHOUT_AUDIT, deadline_ns, ref,
                          err);
}

/* A granting decision arrived: an open decision_missing alert of its
 * request is resolved once every Gateway call of it is paired, by decisions
 * that occurred by the newest call plus the grace. Request ids repeat: a
 * decision after that is a later use of the id, not one a call lacked. */
static int settle_decision_missing(aw_detectors *det,
                                   const aw_audit_event *decision,
                                   int64_t arrival, aw_error *err)
{
    if (!aw_seen_maybe(&det->seen, aw_det_key_alert(AW_ALERT_DECISION_MISSING,
                                                    decision->zone_id, NULL,
                                                    decision->request_id)))
        return AW_OK;
    pairing all = {.det = det, .deadline_ns = INT64_MAX};
    int rc =
        count_pairs(det, decision->zone_id, decision->request_id, &all, err);
    free(all.last.event_id);
    if (rc || all.decisions < all.calls || all.calls == 0)
        return rc;
    int64_t until =
        aw_det_add_ns(all.latest_call_ns, det->config.grace_missing_ns);
    if (decision->occurred_at_ns > until)
        return AW_OK;
    pairing p = {.det = det,
                 .deadline_ns = INT64_MAX,
                 .has_decisions_until = true,
                 .decisions_until_ns = until};
    rc = count_pairs(det, decision->zone_id, decision->request_id, &p, err);
    free(p.last.event_id);
    if (rc || p.decisions < p.calls)
        return rc;
    return aw_det_resolve(det, AW_ALERT_DECISION_MISSING, decision->zone_id,
                          NULL, decision->request_id, decision->id, arrival,
                          err);
}

/* Whether an audit event of occurred_ns counts for one successful call of
 * zone_id (NULL: calls that name no zone). */
typedef struct answered {
    const aw_detectors *det;
    const char *zone_id;
    int64_t occurred_ns;
    bool any;
} answered;

static int note_answered(const aw_call_row *call, void *ud)
{
    answered *a = ud;
    bool zone_matches =
        a->zone_id ? call->zone_id && strcmp(call->zone_id, a->zone_id) == 0
                   : !call->zone_id;
    a->any = zone_matches && aw_status_is_success(call->status) &&
             a->occurred_ns >= aw_det_audit_floor(a->det, call->occurred_at_ns,
                                                  call->time_is_logged);
    return a->any;
}

/* An audit event arrived: it answers a call logged in its zone or in no
 * zone, so it resolves their open call_without_audit alert when it counts
 * for the call that raised it (the one at the alert's event time). */
static int settle_calls_without_audit(aw_detectors *det,
                                      const aw_audit_event *event,
                                      int64_t arrival, aw_error *err)
{
    const char *zones[] = {event->zone_id, NULL};
    int rc = AW_OK;
    for (size_t i = 0; !rc && i < 2; i++) {
        aw_alert *open;
        rc = aw_det_find_open(det, AW_ALERT_CALL_WITHOUT_AUDIT, zones[i], NULL,
                              event->request_id, &open, err);
        if (rc || !open)
            continue;
        int64_t raised_by = open->event_time_ns;
        free(open);
        answered a = {det, zones[i], event->occurred_at_ns, false};
        rc = aw_det_store_result(
            aw_store_query_calls(det->store, 0, event->request_id, raised_by,
                                 aw_det_add_ns(raised_by, 1), note_answered, &a,
                                 err),
            err);
        if (!rc && a.any)
            rc =
                aw_det_resolve(det, AW_ALERT_CALL_WITHOUT_AUDIT, zones[i], NULL,
                               event->request_id, event->id, arrival, err);
    }
    return rc;
}

int aw_det_missing_on_event(aw_detectors *det, const aw_raw_entry *entry,
                            const aw_audit_event *event, int64_t event_rowid,
                            aw_error *err)
{
    bool first_call = first_call_of_request(det, event, event_rowid);
    if (!event->request_id)
        return AW_OK;
    int64_t arrival = aw_det_entry_ns(entry);
    int64_t deadline =
        aw_det_missing_deadline(det, event->occurred_at_ns, arrival);
    int rc = AW_OK;
    if (first_call && paired_from_memory(det, event, deadline))
        aw_det_due_seen(det, AW_PENDING_DECISION_MISSING, event_rowid);
    else if (aw_det_is_gateway_call(event->event_type))
        rc = aw_det_missing_expect_decision(
            det, event->zone_id, event->request_id, deadline, event_rowid, err);
    if (!rc && aw_det_is_decision(event->event_type) &&
        aw_decision_grants(event->decision)) {
        rc = remember_grant(det, event, arrival, err);
        if (!rc)
            rc = settle_decision_missing(det, event, arrival, err);
    }
    return rc ? rc : settle_calls_without_audit(det, event, arrival, err);
}

static int copy_arrival(const aw_event_row *row, void *ud)
{
    *(int64_t *)ud = row->arrived_ns;
    return 1;
}

int aw_det_missing_on_copy(aw_detectors *det, const aw_raw_entry *entry,
                           const aw_audit_event *event, int64_t event_rowid,
                           aw_error *err)
{
    bool call = aw_det_is_gateway_call(event->event_type);
    bool grant = aw_det_is_decision(event->event_type) &&
                 aw_decision_grants(event->decision);
    if (!event->request_id || (!call && !grant))
        return AW_OK;
    int64_t arrival = aw_det_entry_ns(entry), stored = INT64_MIN;
    aw_event_filter by_row = {
        .rowid = event_rowid, .limit = 1, .key_columns_only = true};
    int rc = aw_det_store_result(
        aw_store_query_events(det->store, &by_row, copy_arrival, &stored, err),
        err);
    if (rc || stored != arrival)
        return rc;
    if (grant)
        return remember_grant(det, event, arrival, err);
    return aw_det_missing_expect_decision(
        det, event->zone_id, event->request_id,
        aw_det_missing_deadline(det, event->occurred_at_ns, arrival),
        event_rowid, err);
}

int aw_det_missing_on_call(aw_detectors *det, const aw_raw_entry *entry,
                           const aw_observed_call *call, int64_t call_rowid,
                           aw_error *err)
{
    if (!call->request_id || !aw_status_is_success(call->status))
        return AW_OK;
    return aw_det_missing_expect_audit(
        det, call->zone_id, call->request_id,
        aw_det_audit_floor(det, call->occurred_at_ns, call->time_is_logged),
        aw_det_missing_deadline(det, call->occurred_at_ns,
                                aw_det_entry_ns(entry)),
        call_rowid, err);
}

/* ---- The due checks ------------------------------------------------------ */

/* The evidence a check waited on, copied out of the borrowed row. */
typedef struct evidence_row {
    char *block;
    bool found;
    const char *event_id; /* NULL for an observed call */
    const char *zone_id, *request_id, *resource, *result_class, *source;
    const char *stream, *entry_id;
    int status; /* upstream status, or the call's status */
    int64_t occurred_at_ns;
    bool time_is_logged;     /* an observed call's */
    size_t calls, decisions; /* the request's pairing, for a Gateway
                                      call */
} evidence_row;

static int copy_evidence(evidence_row *row, const char *const *src)
{
    const char *dst[8];
    row->block = aw_det_copy_strings(src, dst, 8, 0);
    if (!row->block)
        return AW_ERR_NOMEM;
    row->event_id = dst[0];
    row->zone_id = dst[1];
    row->request_id = dst[2];
    row->resource = dst[3];
    row->result_class = dst[4];
    row->source = dst[5];
    row->stream = dst[6];
    row->entry_id = dst[7];
    row->found = true;
    return 1;
}

static int copy_gateway_call(const aw_event_row *event, void *ud)
{
    evidence_row *row = ud;
    const char *src[8] = {event->event_id,     event->zone_id,
                          event->request_id,   event->resource,
                          event->result_class, NULL,
                          event->stream,       event->entry_id};
    row->status = event->upstream_status;
    row->occurred_at_ns = event->occurred_at_ns;
    return copy_evidence(row, src);
}

static int copy_call(const aw_call_row *call, void *ud)
{
    evidence_row *row = ud;
    const char *src[8] = {NULL,           call->zone_id, call->request_id,
                          call->resource, NULL,          call->source,
                          call->stream,   call->entry_id};
    row->status = call->status;
    row->occurred_at_ns = call->occurred_at_ns;
    row->time_is_logged = call->time_is_logged;
    return copy_evidence(row, src);
}

static bool gateway_call_succeeded(const evidence_row *g)
{
    return (g->status >= 200 && g->status < 300) ||
           (g->result_class && strcmp(g->result_class, "success") == 0);
}

static void fill_decision_missing(const aw_detectors *det,
                                  const evidence_row *g, aw_alert *alert,
                                  aw_det_evidence *ev)
{
    char when[40], grace[32], upstream[16];
    if (g->status)
        snprintf(upstream, sizeof upstream, "%d", g->status);
    else
        snprintf(upstream, sizeof upstream, "none");
    alert->kind = AW_ALERT_DECISION_MISSING;
    alert->severity = gateway_call_succeeded(g) ? "critical" : "high";
    alert->summary = aw_det_printf(
        "Gateway call for request %s (event %s, resource %s, upstream status "
        "%s) at %s has no granting token_exchange decision of its own in "
        "zone %s within the %s grace window (%zu Gateway call%s, %zu "
        "granting decision%s with this request id).",
        g->request_id, g->event_id, aw_det_or_unknown(g->resource), upstream,
        aw_time_format(g->occurred_at_ns, when, sizeof when), g->zone_id,
        aw_det_seconds(det->config.grace_missing_ns, grace), g->calls,
        g->calls == 1 ? "" : "s", g->decisions, g->decisions == 1 ? "" : "s");
    aw_det_evidence_add(ev, "event", g->event_id, NULL);
    aw_det_evidence_add(ev, "entry", g->stream, g->entry_id);
}

static void fill_call_without_audit(const aw_detectors *det,
                                    const evidence_row *call, aw_alert *alert,
                                    aw_det_evidence *ev)
{
    char when[40], grace[32], lookback[32];
    bool bounded = aw_det_audit_floor(det, call->occurred_at_ns,
                                      call->time_is_logged) != INT64_MIN;
    alert->kind = AW_ALERT_CALL_WITHOUT_AUDIT;
    alert->severity = "high";
    alert->summary = aw_det_printf(
        "Observed call for request %s (status %d, resource %s, source %s) at "
        "%s has no audit event %s%s within the %s grace window%s%s%s.",
        call->request_id, call->status, aw_det_or_unknown(call->resource),
        aw_det_or_unknown(call->source),
        aw_time_format(call->occurred_at_ns, when, sizeof when),
        call->zone_id ? "in zone " : "in any zone",
        call->zone_id ? call->zone_id : "",
        aw_det_seconds(det->config.grace_missing_ns, grace),
        bounded ? " that occurred at most " : "",
        bounded ? aw_det_seconds(det->config.audit_lookback_ns, lookback) : "",
        bounded ? " before it" : "");
    aw_det_evidence_add(ev, "entry", call->stream, call->entry_id);
}

/* Raises the alert for `what` (its counterpart did not arrive in time);
 * late, when found, is the counterpart that came after the deadline and
 * resolves it at once. */
static int conclude(aw_detectors *det, int kind, const evidence_row *what,
                    const counterpart *late, aw_error *err)
{
    aw_alert alert = {0};
    aw_det_evidence ev;
    aw_det_evidence_init(&ev);
    if (kind == AW_PENDING_DECISION_MISSING)
        fill_decision_missing(det, what, &alert, &ev);
    else
        fill_call_without_audit(det, what, &alert, &ev);
    alert.zone_id = what->zone_id;
    alert.request_id = what->request_id;
    alert.event_time_ns = what->occurred_at_ns;
    alert.evidence_json = aw_det_evidence_json(&ev);
    int rc = aw_det_raise(det, &alert, err);
    if (!rc && late->found)
        rc = aw_det_resolve(det, alert.kind, alert.zone_id, NULL,
                            alert.request_id, late->event_id, late->arrived_ns,
                            err);
    free((char *)alert.summary);
    aw_det_evidence_free(&ev);
    return rc;
}

/* Whether the counterpart of what may be among entries of stream trimmed
 * unread (within a grant's lifetime before it, to its deadline): that
 * audit_evidence_trimmed alert stands for it. */
static bool counterpart_trimmed(const aw_detectors *det, const char *stream,
                                const evidence_row *what, int64_t deadline_ns)
{
    int64_t from_ns = det->config.audit_lookback_ns
                          ? aw_det_add_ns(what->occurred_at_ns,
                                          -det->config.audit_lookback_ns)
                          : INT64_MIN;
    return aw_det_trimmed_within(det, stream, from_ns, deadline_ns);
}

/* Whether a Gateway call's decision may be among trimmed entries. The STS
 * publishes it on the audit stream, also when the call was indexed from
 * its copy on the audit DLQ (its original trimmed unread, and the decision,
 * published just before it, most likely with it): the audit stream's spans
 * count whichever stream the call came from, and so do the call's own. */
static bool decision_trimmed(const aw_detectors *det, const evidence_row *g,
                             int64_t deadline_ns)
{
    const char *audit = det->config.audit_stream;
    return counterpart_trimmed(det, audit, g, deadline_ns) ||
           (g->stream && strcmp(g->stream, audit) != 0 &&
            counterpart_trimmed(det, g->stream, g, deadline_ns));
}

/* A Gateway call's deadline came: raise unless it is paired in time. */
static int check_decision(aw_detectors *det, evidence_row *g, int64_t ref,
                          int64_t deadline_ns, aw_error *err)
{
    pairing p = {
        .det = det,
        .deadline_ns = deadline_ns,
        .has_call = true,
        .call_rowid = ref,
    };
    int rc = count_pairs(det, g->zone_id, g->request_id, &p, err);
    g->calls = p.calls;
    g->decisions = p.decisions_in_time;
    if (!rc && !call_paired(&p) && !decision_trimmed(det, g, deadline_ns)) {
        counterpart none = {0};
        rc = conclude(det, AW_PENDING_DECISION_MISSING, g,
                      p.decisions >= p.calls ? &p.last : &none, err);
    }
    free(p.last.event_id);
    return rc;
}

static int check_call(aw_detectors *det, const evidence_row *call,
                      int64_t deadline_ns, aw_error *err)
{
    counterpart cp = {0};
    int rc = find_any_event(
        det, call->zone_id, call->request_id,
        aw_det_audit_floor(det, call->occurred_at_ns, call->time_is_logged),
        &cp, err);
    if (!rc && !(cp.found && cp.arrived_ns <= deadline_ns) &&
        !counterpart_trimmed(det, det->config.audit_stream, call, deadline_ns))
        rc = conclude(det, AW_PENDING_CALL_WITHOUT_AUDIT, call, &cp, err);
    free(cp.event_id);
    return rc;
}

int aw_det_missing_check(aw_detectors *det, int kind, int64_t deadline_ns,
                         int64_t ref, aw_error *err)
{
    evidence_row what = {0};
    int rc;
    if (kind == AW_PENDING_DECISION_MISSING) {
        aw_event_filter by_row = {.rowid = ref, .limit = 1};
        rc = aw_store_query_events(det->store, &by_row, copy_gateway_call,
                                   &what, err);
    } else if (kind == AW_PENDING_CALL_WITHOUT_AUDIT) {
        rc = aw_store_query_calls(det->store, ref, NULL, INT64_MIN, INT64_MAX,
                                  copy_call, &what, err);
    } else {
        return aw_error_set(err, AW_ERR, "unknown pending check kind %d", kind);
    }
    rc = aw_det_store_result(rc, err);
    /* The row may be gone if the index was pruned: nothing left to check. */
    if (!rc && what.found)
        rc = kind == AW_PENDING_DECISION_MISSING
                 ? check_decision(det, &what, ref, deadline_ns, err)
                 : check_call(det, &what, deadline_ns, err);
    free(what.block);
    return rc;
}
