/* pipeline.c -- alerts about Caracal's own pipeline (DESIGN §8): evidence
 * and revocations Caracal dead-lettered.
 *
 * A dead letter is something Caracal gave up on. An audit event moved to
 * caracal.audit.events.dlq never reaches Caracal's ledger, so its Console
 * shows no audit for that call; a revocation moved to `<stream>.dead` was
 * not applied by the enforcer that wrote it, so access may go on. The
 * consumer has already stored and judged the original like an entry of its
 * origin stream (so `trace` shows it and access_after_revocation counts
 * it); here only the fact of the dead-lettering is raised:
 *   audit_dead_lettered       (zone, event id, request id): one alert per
 *                             event identity however many copies arrive, a
 *                             copy of an event indexed from the main stream
 *                             included
 *   revocation_dead_lettered  (zone, "<origin stream>/<original entry id>"):
 *                             one alert per revocation entry
 * A dead letter that cannot be read (bad JSON, a missing field, ... but not a
 * bad signature: that is signature_invalid) raises the same kind about the
 * dead letter itself ("<stream>:<entry id>", no zone): Caracal gave up on
 * that evidence and auditwatch cannot read it either.
 * Both are raised when the dead letter arrives. A revocation_dead_lettered
 * is never resolved (its enforcer gave up on it). An audit_dead_lettered is
 * resolved by a copy of its event published on the audit stream after its
 * newest dead letter: that copy is what Caracal's DLQ replay (`POST
 * /api/audit/dlq/replay`) writes, re-publishing `data` and `sig` before it
 * deletes the DLQ entry, and it gives Caracal's audit service another go
 * at the ledger; failing again, the service dead-letters it again, and that
 * reopens the alert. So the alert's event time is the dead letter's entry
 * time (a second dead letter is a new gap), and a copy counts only when its
 * entry time is past every dead letter the alert holds: the original and
 * its redeliveries, read after their dead letter, resolve nothing. A
 * replay copy read before its dead letter leaves the alert open.
 *
 * And what the daemon's poll of Caracal's consumer groups found
 * (aw_detectors_on_pipeline), judged outside (consumer/pipeline_watch.c):
 *   revocation_not_consumed   (group, "<stream>/<revocation entry id>"): the
 *                             oldest revocation an enforcer group has not
 *                             applied within the grace; resolved when the
 *                             group has applied it
 *   audit_ingest_stalled      (audit-ingestor, "<audit stream>/<oldest entry
 *                             not applied when the stall began>"): one alert
 *                             per stall; resolved when it recovers
 * A revocation_not_consumed about a group that was since deleted stays
 * open (that enforcer applies no revocation at all now) and gains
 * "group_deleted:<stream>/<group>" evidence, so whoever reads it sees why
 * nothing resolves it; a group retired on purpose is acknowledged by a
 * person, never resolved by a guess.
 * These carry no zone, so every instance computes the same id from what
 * Redis shows. A poll repeats what it sees; an alert already open is left
 * alone, so the sinks hear of it once.
 */
#include "detectors/alerting.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_critical_evidence(const aw_audit_event *event)
{
    return aw_det_is_gateway_call(event->event_type) ||
           (event->decision && strcmp(event->decision, "allow") == 0);
}

int aw_detectors_on_dead_event(aw_detectors *det, const aw_raw_entry *entry,
                               const aw_dead_letter *letter,
                               const aw_audit_event *event, int64_t event_rowid,
                               aw_put_result put, aw_error *err)
{
    int rc = aw_det_event_rules(det, entry, event, event_rowid, put, err);
    if (rc)
        return rc;
    char when[40], received[40];
    aw_det_evidence ev;
    aw_det_evidence_init(&ev);
    aw_det_evidence_add(&ev, "event", event->id, NULL);
    aw_det_evidence_add(&ev, "entry", entry->stream.ptr, entry->id.ptr);
    aw_alert alert = {
        .kind = AW_ALERT_AUDIT_DEAD_LETTERED,
        .severity = is_critical_evidence(event) ? "critical" : "high",
        .zone_id = event->zone_id,
        .request_id = event->request_id,
        .anchor = event->id,
        .event_time_ns = aw_det_entry_ns(entry),
    };
    char *summary = aw_det_printf(
        "Caracal's audit service dead-lettered event %s (%s, decision %s, "
        "request %s, zone %s, occurred %s), received %s: %s. It is not in "
        "Caracal's ledger; auditwatch indexed it from %s/%s.",
        event->id, aw_det_or_unknown(event->event_type),
        aw_det_or_unknown(event->decision),
        aw_det_or_unknown(event->request_id), event->zone_id,
        aw_time_format(event->occurred_at_ns, when, sizeof when),
        aw_time_format(letter->received_at_ns, received, sizeof received),
        letter->reason, entry->stream.ptr, entry->id.ptr);
    alert.summary = summary;
    alert.evidence_json = aw_det_evidence_json(&ev);
    rc = summary ? aw_det_raise(det, &alert, err)
                 : aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    free(summary);
    aw_det_evidence_free(&ev);
    return rc;
}

/* The newest id of the dead letters in an alert's evidence ("entry:<dead
 * letter stream>/<id>" items), or false when it names none. */
static bool newest_dead_letter(const char *evidence_json, aw_stream_id *newest)
{
    cJSON *items = cJSON_Parse(evidence_json ? evidence_json : "");
    bool found = false;
    const cJSON *item;
    cJSON_ArrayForEach(item, items)
    {
        const char *text = cJSON_GetStringValue(item);
        const char *slash =
            text && strncmp(text, "entry:", 6) == 0 ? strrchr(text, '/') : NULL;
        aw_stream_id id;
        if (slash &&
            aw_stream_id_from_text(slash + 1, strlen(slash + 1), &id) ==
                AW_OK &&
            (!found || aw_stream_id_cmp(id, *newest) > 0)) {
            *newest = id;
            found = true;
        }
    }
    cJSON_Delete(items);
    return found;
}

int aw_det_dead_letter_replayed(aw_detectors *det, const aw_raw_entry *entry,
                                const aw_audit_event *event, aw_error *err)
{
    aw_alert *open;
    int rc = aw_det_find_open(det, AW_ALERT_AUDIT_DEAD_LETTERED, event->zone_id,
                              event->id, event->request_id, &open, err);
    if (rc || !open)
        return rc;
    aw_stream_id newest;
    /* Redis stamps both ids with one clock, but sequence numbers of two
     * streams do not compare: the copy must be a millisecond later. */
    bool after = newest_dead_letter(open->evidence_json, &newest) &&
                 entry->id_ms > newest.ms;
    free(open);
    if (!after)
        return AW_OK;
    char *by = aw_det_printf("entry:%s/%s", entry->stream.ptr, entry->id.ptr);
    rc = by ? aw_det_resolve(det, AW_ALERT_AUDIT_DEAD_LETTERED, event->zone_id,
                             event->id, event->request_id, by,
                             aw_det_entry_ns(entry), err)
            : aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    free(by);
    return rc;
}

/* "agent_session as-1, delegation_edge e-1" into a new string. */
static char *anchor_list(const aw_revocation_set *set)
{
    size_t len = 1;
    for (size_t i = 0; i < set->n; i++)
        len += strlen(aw_anchor_kind_name(set->items[i].anchor.kind)) +
               strlen(set->items[i].anchor.id) + 3;
    char *out = malloc(len), *p = out;
    if (!out)
        return NULL;
    *p = '\0';
    for (size_t i = 0; i < set->n; i++)
        p += sprintf(p, "%s%s %s", i ? ", " : "",
                     aw_anchor_kind_name(set->items[i].anchor.kind),
                     set->items[i].anchor.id);
    return out;
}

int aw_detectors_on_dead_revocations(
    aw_detectors *det, const aw_raw_entry *entry, aw_stream_role origin,
    const aw_dead_letter *letter, const aw_revocation_set *set, aw_error *err)
{
    if (set->n == 0 || aw_sts_declined(origin, letter, set))
        return AW_OK;
    const aw_raw_entry *orig = letter->original;
    char *anchor = aw_det_printf("%s/%s", orig->stream.ptr, orig->id.ptr);
    char *anchors = anchor_list(set);
    char when[40];
    aw_det_evidence ev;
    aw_det_evidence_init(&ev);
    aw_det_evidence_add(&ev, "revocation", orig->stream.ptr, orig->id.ptr);
    aw_det_evidence_add(&ev, "entry", entry->stream.ptr, entry->id.ptr);
    for (size_t i = 0; i < set->n; i++)
        aw_det_evidence_add(&ev, aw_anchor_kind_name(set->items[i].anchor.kind),
                            set->items[i].anchor.id, NULL);
    aw_alert alert = {
        .kind = AW_ALERT_REVOCATION_DEAD_LETTERED,
        .severity = "critical",
        .zone_id = set->zone_id,
        .anchor = anchor,
        .event_time_ns = set->at_ns,
    };
    char *summary =
        anchor && anchors
            ? aw_det_printf(
                  "A revocation enforcer gave up on revocation %s/%s (zone %s, %s at %s%s%s) "
                  "and dead-lettered it to %s (%s, %s): it may not be enforced.",
                  orig->stream.ptr, orig->id.ptr, set->zone_id, anchors,
                  aw_time_format(set->at_ns, when, sizeof when),
                  set->reason ? ", reason " : "",
                  set->reason ? set->reason : "", entry->stream.ptr,
                  aw_dead_letter_shape_name(letter->shape), letter->reason)
            : NULL;
    alert.summary = summary;
    alert.evidence_json = aw_det_evidence_json(&ev);
    int rc = summary ? aw_det_raise(det, &alert, err)
                     : aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    free(summary);
    free(anchors);
    free(anchor);
    aw_det_evidence_free(&ev);
    return rc;
}

/* Neither Caracal nor auditwatch can read it: what was lost is unknown, so
 * the alert names the entry, both reasons, and where its raw fields are. */
int aw_det_dead_letter_unreadable(aw_detectors *det, const aw_raw_entry *entry,
                                  bool revocation, aw_reject_reason reason,
                                  const char *detail, aw_error *err)
{
    char caracal_reason[AW_DEAD_LETTER_REASON_SIZE];
    const char *said = aw_dead_letter_raw_reason(entry, caracal_reason);
    const char *stream = entry->stream.ptr, *entry_id = entry->id.ptr;
    char *anchor = aw_det_printf("%s:%s", stream, entry_id);
    char *summary = aw_det_printf(
        "%s dead-lettered entry %s of %s (its reason: %s), and auditwatch "
        "cannot read it either (%s%s%s): %s It is kept as rejected, with its "
        "raw fields.",
        revocation ? "A revocation enforcer" : "Caracal's audit service",
        entry_id, stream, aw_det_or_unknown(said),
        aw_reject_reason_name(reason), detail ? ": " : "", detail ? detail : "",
        revocation ? "which revocation an enforcer failed to apply is "
                     "unknown, and it may not be enforced."
                   : "the event it held is in neither Caracal's ledger nor "
                     "this index.");
    aw_det_evidence ev;
    aw_det_evidence_init(&ev);
    aw_det_evidence_add(&ev, "entry", stream, entry_id);
    aw_det_evidence_add(&ev, "rejected", aw_reject_reason_name(reason), NULL);
    aw_alert alert = {
        .kind = revocation ? AW_ALERT_REVOCATION_DEAD_LETTERED
                           : AW_ALERT_AUDIT_DEAD_LETTERED,
        .severity = revocation ? "critical" : "high",
        .anchor = anchor,
        .event_time_ns = aw_det_entry_ns(entry),
        .summary = summary,
        .evidence_json = aw_det_evidence_json(&ev),
    };
    int rc = anchor && summary
                 ? aw_det_raise(det, &alert, err)
                 : aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    free(summary);
    free(anchor);
    aw_det_evidence_free(&ev);
    return rc;
}

/* ---- Polled findings ----------------------------------------------------- */

static const char *finding_alert_kind(aw_pipeline_finding_kind kind)
{
    return kind == AW_FINDING_NOT_CONSUMED ? AW_ALERT_REVOCATION_NOT_CONSUMED
                                           : AW_ALERT_AUDIT_INGEST_STALLED;
}

/* The anchors of the revocation at entry_id of stream, as the index holds
 * it: "authority_record ar-1, ..." appended to a growing text. */
typedef struct anchors_found {
    const char *stream, *entry_id;
    char text[512];
    size_t len;
    char zone[128];
} anchors_found;

static int add_anchor(const aw_revocation_row *row, void *ud)
{
    anchors_found *a = ud;
    if (strcmp(row->stream, a->stream) != 0 ||
        strcmp(row->entry_id, a->entry_id) != 0)
        return 0;
    if (a->len < sizeof a->text)
        a->len += (size_t)snprintf(a->text + a->len, sizeof a->text - a->len,
                                   "%s%s %s", a->len ? ", " : "",
                                   aw_anchor_kind_name(row->anchor.kind),
                                   row->anchor.id);
    snprintf(a->zone, sizeof a->zone, "%s", row->zone_id);
    return 0;
}

static int raise_not_consumed(aw_detectors *det, const aw_pipeline_finding *f,
                              const char *request_id, aw_error *err)
{
    anchors_found found = {.stream = f->stream,
                           .entry_id = strchr(request_id, '/') + 1};
    int64_t at_ns = aw_det_ms_to_ns(f->entry.ms);
    aw_revocation_filter filter = {.has_since = true,
                                   .since_ns = at_ns,
                                   .has_until = true,
                                   .until_ns = aw_det_add_ns(at_ns, 1000000)};
    int rc = aw_store_query_revocations(det->store, &filter, add_anchor, &found,
                                        err);
    if (rc < 0)
        return rc;
    char when[40];
    aw_det_evidence ev;
    aw_det_evidence_init(&ev);
    aw_det_evidence_add(&ev, "revocation", f->stream, found.entry_id);
    /* A host's group left behind is worth tidying, not waking anyone for;
     * the decisions themselves are judged all the same. */
    aw_alert alert = {
        .kind = AW_ALERT_REVOCATION_NOT_CONSUMED,
        .severity = f->left_behind ? "medium" : "critical",
        .anchor = f->group,
        .request_id = request_id,
        .event_time_ns = at_ns,
    };
    char *summary = aw_det_printf(
        "Revocation enforcer group %s has not applied revocation %s of %s (%s, zone %s) "
        "written at %s: %s%s.",
        f->group, found.entry_id, f->stream,
        found.len ? found.text : "anchors not in the index",
        found.zone[0] ? found.zone : "unknown",
        aw_time_format(at_ns, when, sizeof when), aw_det_or_unknown(f->detail),
        f->left_behind
            ? "; no consumer of the group has read since before it was "
              "written: a host retired or renamed, its group left behind? "
              "If so, delete the group (XGROUP DESTROY)"
            : "");
    alert.summary = summary;
    alert.evidence_json = aw_det_evidence_json(&ev);
    rc = aw_det_raise(det, &alert, err);
    free(summary);
    aw_det_evidence_free(&ev);
    return rc;
}

/* The request ids of the open alerts of kind about group on stream. */
typedef struct open_list {
    const char *group, *stream;
    char **ids;
    size_t n, cap;
    bool nomem;
} open_list;

static int collect_open(const aw_alert *a, void *ud)
{
    open_list *l = ud;
    size_t slen = strlen(l->stream);
    if (!a->anchor || strcmp(a->anchor, l->group) != 0 || !a->request_id ||
        strncmp(a->request_id, l->stream, slen) != 0 ||
        (a->request_id[slen] != '/' && a->request_id[slen] != '\0'))
        return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 4;
        char **grown = realloc(l->ids, cap * sizeof *grown);
        if (!grown)
            return AW_ERR_NOMEM;
        l->ids = grown;
        l->cap = cap;
    }
    if (!(l->ids[l->n] = aw_det_printf("%s", a->request_id)))
        return AW_ERR_NOMEM;
    l->n++;
    return 0;
}

/* Resolves the open alerts of f's kind about its group and stream, but for
 * keep (NULL: all) and, for revocations, those at or after keep's entry. */
static int resolve_others(aw_detectors *det, const aw_pipeline_finding *f,
                          const char *keep, aw_error *err)
{
    const char *kind = finding_alert_kind(f->kind);
    open_list l = {.group = f->group, .stream = f->stream};
    aw_alert_filter filter = {.kind = kind, .state = AW_ALERT_OPEN};
    int rc = aw_det_store_result(
        aw_store_query_alerts(det->store, &filter, collect_open, &l, err), err);
    char *resolved_by = aw_det_printf("group:%s/%s", f->stream, f->group);
    if (!rc && !resolved_by)
        rc = aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < l.n && !rc; i++) {
        if (f->kind == AW_FINDING_NOT_CONSUMED) {
            const char *id = strchr(l.ids[i], '/');
            uint64_t ms, seq;
            if (!id ||
                aw_stream_id_parse(id + 1, strlen(id + 1), &ms, &seq) != AW_OK)
                continue;
            aw_stream_id at = {ms, seq};
            if ((keep && aw_stream_id_cmp(at, f->entry) >= 0) ||
                (!aw_stream_pos_is_none(f->first_retained) &&
                 aw_stream_id_cmp(at, f->first_retained) < 0))
                continue;
        } else if (keep && strcmp(keep, l.ids[i]) == 0) {
            continue;
        }
        rc = aw_det_resolve(det, kind, NULL, f->group, l.ids[i], resolved_by,
                            f->observed_ns, err);
    }
    for (size_t i = 0; i < l.n; i++)
        free(l.ids[i]);
    free(l.ids);
    free(resolved_by);
    return rc;
}

static int raise_stalled(aw_detectors *det, const aw_pipeline_finding *f,
                         const char *request_id, aw_error *err)
{
    aw_det_evidence ev;
    aw_det_evidence_init(&ev);
    aw_det_evidence_add(&ev, "group", f->stream, f->group);
    aw_alert alert = {
        .kind = AW_ALERT_AUDIT_INGEST_STALLED,
        .severity = "high",
        .anchor = f->group,
        .request_id = request_id,
        .event_time_ns = f->observed_ns,
    };
    char *summary = aw_det_printf(
        "Caracal's audit ingestor (group %s on %s) is not keeping up while the stream "
        "grows: %s. Audit events may be missing from Caracal's ledger.",
        f->group, f->stream, aw_det_or_unknown(f->detail));
    alert.summary = summary;
    alert.evidence_json = aw_det_evidence_json(&ev);
    int rc = aw_det_raise(det, &alert, err);
    free(summary);
    aw_det_evidence_free(&ev);
    return rc;
}

/* The open revocation_not_consumed alerts about groups of one stream. */
typedef struct stream_alerts {
    const char *stream;
    aw_det_alert_list found;
} stream_alerts;

static int collect_stream_alert(const aw_alert *a, void *ud)
{
    stream_alerts *l = ud;
    size_t slen = strlen(l->stream);
    if (!a->anchor || !a->request_id ||
        strncmp(a->request_id, l->stream, slen) != 0 ||
        a->request_id[slen] != '/')
        return 0;
    return aw_det_alert_list_add(&l->found, a);
}

static bool is_present(const aw_pipeline_finding *f, const char *group)
{
    for (size_t i = 0; i < f->npresent; i++)
        if (strcmp(f->present[i], group) == 0)
            return true;
    return false;
}

static int mark_deleted_groups(aw_detectors *det, const aw_pipeline_finding *f,
                               aw_error *err)
{
    stream_alerts l = {.stream = f->stream};
    aw_alert_filter filter = {.kind = AW_ALERT_REVOCATION_NOT_CONSUMED,
                              .state = AW_ALERT_OPEN};
    int rc = aw_det_store_result(aw_store_query_alerts(det->store, &filter,
                                                       collect_stream_alert, &l,
                                                       err),
                                 err);
    for (size_t i = 0; i < l.found.n && !rc; i++) {
        const aw_alert *open = l.found.items[i];
        if (is_present(f, open->anchor))
            continue;
        aw_det_evidence ev;
        aw_det_evidence_init(&ev);
        aw_det_evidence_add(&ev, "group_deleted", f->stream, open->anchor);
        aw_alert grown = *open;
        grown.evidence_json = aw_det_evidence_json(&ev);
        rc = aw_det_escalate(det, &grown, err);
        aw_det_evidence_free(&ev);
    }
    aw_det_alert_list_free(&l.found);
    return rc;
}

static int on_finding(aw_detectors *det, const aw_pipeline_finding *f,
                      aw_error *err)
{
    if (f->kind == AW_FINDING_ENFORCERS_PRESENT)
        return mark_deleted_groups(det, f, err);
    char *request_id = aw_det_printf("%s/%" PRIu64 "-%" PRIu64, f->stream,
                                     f->entry.ms, f->entry.seq);
    if (!request_id)
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    int rc = resolve_others(det, f, f->trouble ? request_id : NULL, err);
    if (!rc && f->trouble) {
        char id[33];
        aw_alert *open = NULL;
        const char *kind = finding_alert_kind(f->kind);
        if (!aw_detectors_alert_id(kind, NULL, f->group, request_id, id))
            rc = aw_error_set(err, AW_ERR_NOMEM, "out of memory");
        else
            rc = aw_det_find_alert(det, id, AW_ALERT_OPEN, &open, err);
        if (!rc && !open)
            rc = f->kind == AW_FINDING_NOT_CONSUMED
                     ? raise_not_consumed(det, f, request_id, err)
                     : raise_stalled(det, f, request_id, err);
        free(open);
    }
    free(request_id);
    return rc;
}

int aw_detectors_on_pipeline(aw_detectors *det,
                             const aw_pipeline_finding *findings, size_t n,
                             aw_error *err)
{
    for (size_t i = 0; i < n; i++) {
        int rc = on_finding(det, &findings[i], err);
        if (rc)
            return rc;
    }
    return AW_OK;
}
