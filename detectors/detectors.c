/* detectors.c -- the detector handle: the event-time clock, the pending
 * checks, the change queue for the sinks, and the alert plumbing shared by
 * the rules (missing.c, revocation.c, integrity.c).
 *
 * The clock. Detection is driven by event time so that replaying the same
 * entries yields the same alerts. The clock is the audit stream's watermark:
 * every audit entry handed to aw_detectors_on_event pushes it to that
 * entry's id time (Redis' clock, not the producer's), and the daemon pushes
 * it to the wall clock with aw_detectors_advance when the stream is caught
 * up. It never moves back. Checks that wait for a counterpart are due at
 * max(occurred_at, arrival) + grace and wait in memory (due.c), rebuilt
 * from the index after a restart or a rollback; aw_detectors_advance runs
 * those now due and persists the clock (meta key "detector_clock_ns") in
 * the same transaction, so a restart neither loses nor repeats a check
 * (due.c says how). Hooks only move the clock;
 * due checks run in aw_detectors_advance, which the caller runs once per
 * batch, before the commit.
 *
 * Whether a counterpart counts as "in time" is decided by comparing its
 * arrival (entry id time) with the deadline, never by when the check
 * happens to run. So a batch that holds both a deadline and a late
 * counterpart gives the same result as two batches: the alert is raised and
 * at once resolved by the late evidence.
 *
 * Alerts. Ids are a hash of (kind, zone, anchor, request id): raising the
 * same thing twice upserts one row, and redundant instances agree. Every
 * change the store reports (raised, escalated, resolved) is re-read from the
 * store and queued with its own copy of the strings; the caller hands the
 * queue to the sinks after the commit (aw_detectors_drain) or drops it after
 * a rollback (aw_detectors_discard).
 *
 * Memory for speed, bounded: the filter (seen.h) remembers which anchors
 * were ever revoked and which alerts exist, so that the common case (no
 * revocation, no alert) costs no store look-up; it is filled from the store
 * when the handle is created and kept up to date by the rules. It has a
 * fixed size, and the store stays the only source of truth. (Pairing a
 * Gateway call with its decision counts by request id, and request ids
 * repeat, so only the store can count them; but a second filter of every
 * stored call's request tells the common first call of a request, which a
 * remembered recent decision then pairs, missing.c.)
 *
 * Batches. Within one batch the order in which streams were read must not
 * decide what is raised (a suspend and its resume read together must raise
 * nothing). So the hooks only store and note; access_after_revocation
 * judges the batch's revocations and accesses in aw_detectors_advance,
 * once everything the batch brought is in the store: first each
 * revocation against the accesses it affects, then each access against
 * its anchors' whole history. Raise-then-resolve is left for counterparts
 * that really arrive in a later batch.
 */
#include "detectors/alerting.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* det->seen: 1 MiB, ~1% false positives at 870k revocations and alerts. */
#define SEEN_LOG2_BITS 23

/* ---- Time ---------------------------------------------------------------- */

int64_t aw_det_ms_to_ns(uint64_t ms)
{
    return aw_ms_to_ns(ms);
}

int64_t aw_det_entry_ns(const aw_raw_entry *entry)
{
    return aw_det_ms_to_ns(entry->id_ms);
}

int64_t aw_det_add_ns(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

void aw_det_observe(aw_detectors *det, int64_t ns)
{
    if (ns > det->clock_ns) {
        det->clock_ns = ns;
        det->clock_dirty = true;
    }
}

int64_t aw_detectors_clock(const aw_detectors *det)
{
    return det->clock_ns;
}

/* ---- Text ---------------------------------------------------------------- */

char *aw_det_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

const char *aw_det_or_unknown(const char *s)
{
    return s ? s : "unknown";
}

char *aw_det_seconds(int64_t ns, char buf[32])
{
    snprintf(buf, 32, "%.9g s", (double)ns / 1e9);
    return buf;
}

const char *const aw_det_decision_types[2] = {"token_exchange",
                                              "token.exchange"};

bool aw_det_is_decision(const char *event_type)
{
    return event_type && (strcmp(event_type, aw_det_decision_types[0]) == 0 ||
                          strcmp(event_type, aw_det_decision_types[1]) == 0);
}

bool aw_det_is_gateway_call(const char *event_type)
{
    return event_type && strcmp(event_type, AW_EVENT_GATEWAY_CALL) == 0;
}

static void evidence_put(aw_det_evidence *ev, const char *s, size_t len)
{
    if (ev->nomem)
        return;
    if (ev->len + len + 1 > ev->cap) {
        size_t cap = ev->cap ? ev->cap : 128;
        while (cap < ev->len + len + 1)
            cap *= 2;
        char *json = realloc(ev->json, cap);
        if (!json) {
            ev->nomem = true;
            return;
        }
        ev->json = json;
        ev->cap = cap;
    }
    memcpy(ev->json + ev->len, s, len);
    ev->len += len;
    ev->json[ev->len] = '\0';
}

/* Appends s as the inside of a JSON string. Inputs are valid UTF-8 without
 * NUL (event.h guarantees it for decoded strings), so only quotes,
 * backslashes and control characters need escaping. */
static void evidence_put_escaped(aw_det_evidence *ev, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            evidence_put(ev, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            evidence_put(ev, esc, 6);
        } else {
            evidence_put(ev, s, 1);
        }
    }
}

void aw_det_evidence_init(aw_det_evidence *ev)
{
    memset(ev, 0, sizeof *ev);
    evidence_put(ev, "[", 1);
}

/* True when the item that starts at ev->json[start] (quotes included)
 * already appears earlier as a whole item. Items never contain an unescaped
 * quote, so a match that starts right after '[' or ',' is a whole item. */
static bool evidence_has(const aw_det_evidence *ev, size_t start)
{
    const char *item = ev->json + start;
    size_t item_len = ev->len - start;
    for (const char *p = ev->json + 1; p < item; p++) {
        if ((p[-1] == '[' || p[-1] == ',') && p + item_len <= item &&
            memcmp(p, item, item_len) == 0)
            return true;
    }
    return false;
}

void aw_det_evidence_add(aw_det_evidence *ev, const char *what, const char *a,
                         const char *b)
{
    assert(!ev->closed);
    if (ev->nomem)
        return;
    size_t before = ev->len;
    if (ev->len > 1)
        evidence_put(ev, ",", 1);
    size_t start = ev->len;
    evidence_put(ev, "\"", 1);
    evidence_put_escaped(ev, what);
    evidence_put(ev, ":", 1);
    evidence_put_escaped(ev, aw_det_or_unknown(a));
    if (b) {
        evidence_put(ev, "/", 1);
        evidence_put_escaped(ev, b);
    }
    evidence_put(ev, "\"", 1);
    if (!ev->nomem && evidence_has(ev, start)) {
        ev->len = before;
        ev->json[ev->len] = '\0';
    }
}

const char *aw_det_evidence_json(aw_det_evidence *ev)
{
    if (!ev->closed) {
        evidence_put(ev, "]", 1);
        ev->closed = true;
    }
    return ev->nomem ? NULL : ev->json;
}

void aw_det_evidence_free(aw_det_evidence *ev)
{
    free(ev->json);
    memset(ev, 0, sizeof *ev);
}

/* ---- Filter keys --------------------------------------------------------- */

aw_seen_key aw_det_key_revoked_anchor(const char *zone_id,
                                      const aw_anchor *anchor)
{
    const char *parts[] = {zone_id, aw_anchor_kind_name(anchor->kind),
                           anchor->id};
    return aw_seen_key_of(AW_SEEN_REVOKED_ANCHOR, parts, 3);
}

aw_seen_key aw_det_key_alert(const char *kind, const char *zone_id,
                             const char *anchor, const char *request_id)
{
    const char *parts[] = {kind, zone_id, anchor, request_id};
    return aw_seen_key_of(AW_SEEN_ALERT, parts, 4);
}

aw_seen_key aw_det_key_revoked_request(const char *zone_id,
                                       const char *request_id)
{
    const char *parts[] = {zone_id, request_id};
    return aw_seen_key_of(AW_SEEN_REVOKED_REQUEST, parts, 2);
}

static void remember_alert(aw_detectors *det, const aw_alert *alert)
{
    aw_seen_add(&det->seen, aw_det_key_alert(alert->kind, alert->zone_id,
                                             alert->anchor, alert->request_id));
    if (strcmp(alert->kind, AW_ALERT_ACCESS_AFTER_REVOCATION) == 0)
        aw_seen_add(&det->seen, aw_det_key_revoked_request(alert->zone_id,
                                                           alert->request_id));
}

/* ---- Alerts -------------------------------------------------------------- */

char *aw_detectors_alert_id(const char *kind, const char *zone_id,
                            const char *anchor, const char *request_id,
                            char out[33])
{
    const char *parts[] = {kind, zone_id, anchor, request_id};
    size_t lens[4], total = 3;
    for (int i = 0; i < 4; i++) {
        lens[i] = parts[i] ? strlen(parts[i]) : 0;
        total += lens[i];
    }
    char stack[4096];
    char *buf = total <= sizeof stack ? stack : malloc(total);
    if (!buf)
        return NULL;
    size_t at = 0;
    for (int i = 0; i < 4; i++) {
        if (i > 0)
            buf[at++] = '\0';
        if (lens[i])
            memcpy(buf + at, parts[i], lens[i]);
        at += lens[i];
    }
    unsigned char digest[32];
    aw_sha256(buf, total, digest);
    if (buf != stack)
        free(buf);
    return aw_hex(digest, 16, out);
}

char *aw_det_copy_strings(const char *const *src, const char **dst, size_t n,
                          size_t front)
{
    size_t total = front;
    for (size_t i = 0; i < n; i++)
        if (src[i])
            total += strlen(src[i]) + 1;
    char *block = malloc(total ? total : 1);
    if (!block)
        return NULL;
    char *at = block + front;
    for (size_t i = 0; i < n; i++) {
        dst[i] = NULL;
        if (!src[i])
            continue;
        size_t len = strlen(src[i]) + 1;
        memcpy(at, src[i], len);
        dst[i] = at;
        at += len;
    }
    return block;
}

aw_alert *aw_det_alert_dup(const aw_alert *alert)
{
    aw_alert copy = *alert;
    const char **fields[] = {
        &copy.id,          &copy.kind,          &copy.severity,
        &copy.zone_id,     &copy.request_id,    &copy.anchor,
        &copy.resolved_by, &copy.evidence_json, &copy.summary,
        &copy.ack_note,
    };
    enum { NSTR = sizeof fields / sizeof fields[0] };
    const char *src[NSTR], *dst[NSTR];
    for (size_t i = 0; i < NSTR; i++)
        src[i] = *fields[i];
    char *block = aw_det_copy_strings(src, dst, NSTR, sizeof copy);
    if (!block)
        return NULL;
    for (size_t i = 0; i < NSTR; i++)
        *fields[i] = dst[i];
    memcpy(block, &copy, sizeof copy);
    return (aw_alert *)block;
}

int aw_det_alert_list_add(aw_det_alert_list *list, const aw_alert *alert)
{
    if (!aw_array_grow((void **)&list->items, &list->cap, list->n + 1,
                       sizeof *list->items))
        return AW_ERR_NOMEM;
    list->items[list->n] = aw_det_alert_dup(alert);
    return list->items[list->n++] ? 0 : AW_ERR_NOMEM;
}

void aw_det_alert_list_free(aw_det_alert_list *list)
{
    for (size_t i = 0; i < list->n; i++)
        free(list->items[i]);
    free(list->items);
    *list = (aw_det_alert_list){0};
}

int aw_det_store_result(int rc, aw_error *err)
{
    if (rc == AW_ERR_NOMEM)
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory in a detector");
    return rc < 0 ? rc : AW_OK;
}

static int copy_first_alert(const aw_alert *alert, void *ud)
{
    aw_alert **out = ud;
    *out = aw_det_alert_dup(alert);
    return *out ? 1 : AW_ERR_NOMEM;
}

int aw_det_find_alert(aw_detectors *det, const char *id, aw_alert_state state,
                      aw_alert **out, aw_error *err)
{
    aw_alert_filter filter = {.id = id, .state = state, .limit = 1};
    *out = NULL;
    return aw_det_store_result(
        aw_store_query_alerts(det->store, &filter, copy_first_alert, out, err),
        err);
}

/* Queues the alert as it is now stored, for the sinks. */
static int record_change(aw_detectors *det, const char *id,
                         aw_alert_change change, aw_error *err)
{
    if (det->nchanges == det->changes_cap) {
        size_t cap = det->changes_cap ? det->changes_cap * 2 : 16;
        aw_det_change *changes = realloc(det->changes, cap * sizeof *changes);
        if (!changes)
            return aw_error_set(err, AW_ERR_NOMEM,
                                "out of memory queueing alert");
        det->changes = changes;
        det->changes_cap = cap;
    }
    aw_alert *alert;
    int rc = aw_det_find_alert(det, id, 0, &alert, err);
    if (rc)
        return rc;
    if (!alert)
        return aw_error_set(err, AW_ERR, "alert %s vanished after it changed",
                            id);
    det->changes[det->nchanges].alert = alert;
    det->changes[det->nchanges].change = change;
    det->nchanges++;
    return AW_OK;
}

int aw_det_escalate(aw_detectors *det, const aw_alert *alert, aw_error *err)
{
    if (!alert->id || !alert->evidence_json)
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory building alert");
    remember_alert(det, alert);
    aw_alert_change change;
    int rc = aw_store_alert_upsert(det->store, alert, &change, err);
    if (rc)
        return rc;
    return change == AW_ALERT_UNCHANGED
               ? AW_OK
               : record_change(det, alert->id, change, err);
}

int aw_det_raise(aw_detectors *det, aw_alert *alert, aw_error *err)
{
    if (!alert->summary)
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory building alert");
    char id[33];
    alert->id = aw_detectors_alert_id(alert->kind, alert->zone_id,
                                      alert->anchor, alert->request_id, id);
    alert->state = AW_ALERT_OPEN;
    alert->raised_at_ns = det->clock_ns;
    alert->resolved_at_ns = 0;
    alert->resolved_by = NULL;
    alert->late_ns = 0;
    alert->acked_at_ns = 0;
    alert->ack_note = NULL;
    int rc = aw_det_escalate(det, alert, err);
    alert->id = NULL;
    return rc;
}

int aw_det_find_open(aw_detectors *det, const char *kind, const char *zone_id,
                     const char *anchor, const char *request_id,
                     aw_alert **open, aw_error *err)
{
    *open = NULL;
    if (!aw_seen_maybe(&det->seen,
                       aw_det_key_alert(kind, zone_id, anchor, request_id)))
        return AW_OK;
    char id[33];
    if (!aw_detectors_alert_id(kind, zone_id, anchor, request_id, id))
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory finding alert");
    return aw_det_find_alert(det, id, AW_ALERT_OPEN, open, err);
}

int aw_det_resolve(aw_detectors *det, const char *kind, const char *zone_id,
                   const char *anchor, const char *request_id,
                   const char *resolved_by, int64_t resolver_ns, aw_error *err)
{
    if (!resolved_by)
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory resolving alert");
    aw_alert *open;
    int rc =
        aw_det_find_open(det, kind, zone_id, anchor, request_id, &open, err);
    if (rc || !open)
        return rc;
    char id[33];
    snprintf(id, sizeof id, "%s", open->id);
    int64_t late = aw_det_add_ns(resolver_ns, -open->event_time_ns);
    free(open);
    aw_alert_change change;
    rc = aw_store_alert_resolve(det->store, id, resolved_by, det->clock_ns,
                                late > 0 ? late : 0, &change, err);
    if (rc)
        return rc;
    return change == AW_ALERT_UNCHANGED ? AW_OK
                                        : record_change(det, id, change, err);
}

/* ---- The change queue ---------------------------------------------------- */

void aw_detectors_drain(aw_detectors *det, aw_alert_change_fn fn, void *ud)
{
    for (size_t i = 0; i < det->nchanges; i++) {
        fn(det->changes[i].alert, det->changes[i].change, ud);
        free(det->changes[i].alert);
    }
    det->nchanges = 0;
}

static void drop_changes(aw_detectors *det)
{
    for (size_t i = 0; i < det->nchanges; i++)
        free(det->changes[i].alert);
    det->nchanges = 0;
}

void aw_detectors_discard(aw_detectors *det)
{
    drop_changes(det);
    /* The rolled-back transaction may have held the clock's update, and
     * checks it added or ran. */
    det->clock_dirty = true;
    det->due.stale = true;
    aw_det_revocation_drop_deferred(det);
    aw_det_histories_forget(det);
    aw_det_missing_forget(det);
}

/* ---- Handle -------------------------------------------------------------- */

static int seen_revocation(const aw_revocation_row *row, void *ud)
{
    aw_detectors *det = ud;
    aw_seen_add(&det->seen,
                aw_det_key_revoked_anchor(row->zone_id, &row->anchor));
    return 0;
}

static int seen_alert(const aw_alert *alert, void *ud)
{
    remember_alert(ud, alert);
    return 0;
}

/* Fills the filter with what the store already holds: one pass over the
 * revocations and the alerts, once per start. */
static int load_seen(aw_detectors *det, aw_error *err)
{
    aw_revocation_filter revocations = {
        .has_since = true,
        .since_ns = INT64_MIN,
        .has_until = true,
        .until_ns = INT64_MAX,
    };
    int rc = aw_store_query_revocations(det->store, &revocations,
                                        seen_revocation, det, err);
    if (rc)
        return rc;
    aw_alert_filter alerts = {0};
    return aw_store_query_alerts(det->store, &alerts, seen_alert, det, err);
}

void aw_detector_config_init(aw_detector_config *config)
{
    *config = (aw_detector_config){
        .grace_missing_ns = AW_DEFAULT_GRACE_MISSING_NS,
        .grace_revocation_ns = AW_DEFAULT_GRACE_REVOCATION_NS,
        .audit_lookback_ns = AW_DEFAULT_AUDIT_LOOKBACK_NS,
    };
}

int aw_detectors_new(aw_store *store, const aw_detector_config *config,
                     aw_detectors **out, aw_error *err)
{
    aw_detector_config defaults;
    aw_detector_config_init(&defaults);
    if (!config)
        config = &defaults;
    if (config->grace_missing_ns < 0 || config->grace_revocation_ns < 0 ||
        config->audit_lookback_ns < 0)
        return aw_error_reject(err, AW_REJECT_BAD_VALUE,
                               "detector grace periods and the audit lookback "
                               "must not be negative");
    const char *audit_stream =
        config->audit_stream ? config->audit_stream
                             : aw_stream_role_default_stream(AW_ROLE_AUDIT);
    if (strlen(audit_stream) >= AW_MAX_STREAM_NAME_BYTES)
        return aw_error_reject(err, AW_REJECT_OVERSIZED,
                               "audit stream name is too long");
    aw_detectors *det = calloc(1, sizeof *det);
    if (!det || aw_seen_init(&det->seen, SEEN_LOG2_BITS) ||
        aw_det_histories_new(det)) {
        aw_detectors_free(det);
        return aw_error_set(err, AW_ERR_NOMEM,
                            "out of memory creating detectors");
    }
    det->store = store;
    det->config = *config;
    strcpy(det->audit_stream, audit_stream);
    det->config.audit_stream = det->audit_stream;
    if (det->config.max_waiting_checks == 0)
        det->config.max_waiting_checks = AW_DEFAULT_MAX_WAITING_CHECKS;
    /* Rebuilt inside the first transaction, where a check may spill. */
    det->due.stale = true;
    int rc =
        aw_store_meta_get(store, AW_DET_CLOCK_META_KEY, &det->clock_ns, err);
    if (rc == AW_ERR_NOTFOUND)
        rc = AW_OK;
    if (!rc)
        rc = load_seen(det, err);
    if (!rc)
        rc = aw_det_missing_new(det, err);
    if (!rc)
        rc = aw_det_trimmed_load(det, err);
    if (rc) {
        aw_detectors_free(det);
        return rc;
    }
    *out = det;
    return AW_OK;
}

void aw_detectors_free(aw_detectors *det)
{
    if (!det)
        return;
    drop_changes(det);
    free(det->changes);
    aw_det_revocation_drop_deferred(det);
    free(det->deferred);
    aw_seen_free(&det->seen);
    aw_det_missing_free(det);
    aw_det_histories_free(det);
    aw_det_due_free(det);
    aw_det_trimmed_free(det);
    free(det);
}

/* ---- Hooks --------------------------------------------------------------- */

int aw_detectors_on_event(aw_detectors *det, const aw_raw_entry *entry,
                          const aw_audit_event *event, int64_t event_rowid,
                          aw_put_result put, aw_error *err)
{
    aw_det_observe(det, aw_det_entry_ns(entry));
    int rc = aw_det_event_rules(det, entry, event, event_rowid, put, err);
    return !rc && put == AW_PUT_DUPLICATE
               ? aw_det_dead_letter_replayed(det, entry, event, err)
               : rc;
}

int aw_det_event_rules(aw_detectors *det, const aw_raw_entry *entry,
                       const aw_audit_event *event, int64_t event_rowid,
                       aw_put_result put, aw_error *err)
{
    switch (put) {
    case AW_PUT_INSERTED: break;
    case AW_PUT_DUPLICATE:
        return aw_det_missing_on_copy(det, entry, event, event_rowid, err);
    case AW_PUT_CONFLICT:
        /* The stored first version is the evidence; the other is only proof
         * of tampering and must not feed the other rules. */
        return aw_det_integrity_on_conflict(det, entry, event, err);
    default:
        return aw_error_set(err, AW_ERR_INVALID, "unknown put result %d",
                            (int)put);
    }
    int rc = aw_det_missing_on_event(det, entry, event, event_rowid, err);
    if (!rc)
        rc = aw_det_revocation_on_event(det, entry, event, err);
    if (!rc)
        rc = aw_det_integrity_on_event(det, entry, event, err);
    return rc;
}

int aw_detectors_on_revocations(aw_detectors *det, const aw_raw_entry *entry,
                                const aw_revocation_set *set, aw_error *err)
{
    return aw_det_revocation_on_set(det, entry, set, err);
}

int aw_detectors_on_call(aw_detectors *det, const aw_raw_entry *entry,
                         const aw_observed_call *call, int64_t call_rowid,
                         aw_error *err)
{
    return aw_det_missing_on_call(det, entry, call, call_rowid, err);
}

/* ---- Advancing the clock ------------------------------------------------- */

int aw_detectors_advance(aw_detectors *det, int64_t clock_ns, aw_error *err)
{
    aw_det_observe(det, clock_ns);
    int rc = aw_det_revocation_run_deferred(det, err);
    /* Before the clock is written: a rebuild reads the persisted clock. */
    if (!rc)
        rc = aw_det_due_run(det, err);
    if (!rc && det->clock_dirty) {
        rc = aw_store_meta_set(det->store, AW_DET_CLOCK_META_KEY, det->clock_ns,
                               err);
        if (!rc)
            det->clock_dirty = false;
    }
    if (!rc)
        aw_det_missing_judged(det);
    return rc;
}
