/* integrity.c -- alerts about the evidence itself rather than about what it
 * records: a signature that did not verify (signature_invalid; any other
 * rejection of a dead letter goes to pipeline.c), an event id
 * redelivered with different content (tampered_on_redelivery), entries lost
 * to stream trimming before they were read (audit_evidence_trimmed), and
 * Caracal's own anomaly events (caracal_anomaly).
 *
 * None of these waits for a counterpart: each is raised when its evidence
 * arrives, once per thing it is about (the id's anchor):
 *   signature_invalid       "<stream>:<entry id>"  (zone unknown: the
 *                           unverified fields are not trusted to name it)
 *   tampered_on_redelivery  the event id, with the zone and request id of
 *                           the stored first version of that identity (id,
 *                           occurred_at), so every altered copy of one event
 *                           lands in one alert
 *   audit_evidence_trimmed  the stream, request id "<first>..<last>"
 *   caracal_anomaly         the event id
 */
#include "detectors/alerting.h"

#include <stdlib.h>
#include <string.h>

/* Raises an alert whose summary was built by the caller (freed here). */
static int raise_now(aw_detectors *det, aw_alert *alert, char *summary,
                     aw_det_evidence *ev, aw_error *err)
{
    alert->summary = summary;
    alert->evidence_json = aw_det_evidence_json(ev);
    int rc = aw_det_raise(det, alert, err);
    free(summary);
    aw_det_evidence_free(ev);
    return rc;
}

/* ---- signature_invalid --------------------------------------------------- */

int aw_detectors_on_rejected(aw_detectors *det, const aw_raw_entry *entry,
                             int role, aw_reject_reason reason,
                             const char *detail, aw_error *err)
{
    if (!aw_reject_reason_is_signature(reason)) {
        int origin =
            role >= 0 ? aw_stream_role_dead_letter_origin((aw_stream_role)role)
                      : -1;
        return origin < 0
                   ? AW_OK
                   : aw_det_dead_letter_unreadable(det, entry,
                                                   origin != AW_ROLE_AUDIT,
                                                   reason, detail, err);
    }
    const char *stream = entry->stream.ptr, *entry_id = entry->id.ptr;
    char *anchor = aw_det_printf("%s:%s", stream, entry_id);
    if (!anchor)
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    aw_det_evidence ev;
    aw_det_evidence_init(&ev);
    aw_det_evidence_add(&ev, "entry", stream, entry_id);
    aw_alert alert = {
        .kind = AW_ALERT_SIGNATURE_INVALID,
        .severity = "high",
        .anchor = anchor,
        .event_time_ns = aw_det_entry_ns(entry),
    };
    int rc =
        raise_now(det, &alert,
                  aw_det_printf("Entry %s of stream %s failed signature "
                                "verification (%s%s%s); it was recorded "
                                "as rejected and not indexed.",
                                entry_id, stream, aw_reject_reason_name(reason),
                                detail ? ": " : "", detail ? detail : ""),
                  &ev, err);
    free(anchor);
    return rc;
}

/* ---- audit_evidence_trimmed ---------------------------------------------- */

struct aw_det_trimmed_span {
    char *stream; /* owned */
    int64_t from_ns, to_ns;
};

/* A trimmed alert's request id is its range, "<first id>..<last id>": the
 * span [first ms, last ms + 1 ms). */
static int remember_span(aw_detectors *det, const char *stream,
                         const char *range)
{
    const char *dots = range ? strstr(range, "..") : NULL;
    uint64_t first_ms, last_ms, seq;
    if (!stream || !dots ||
        aw_stream_id_parse(range, (size_t)(dots - range), &first_ms, &seq) ||
        aw_stream_id_parse(dots + 2, strlen(dots + 2), &last_ms, &seq))
        return AW_OK;
    if (!aw_array_grow((void **)&det->trimmed, &det->trimmed_cap,
                       det->ntrimmed + 1, sizeof *det->trimmed))
        return AW_ERR_NOMEM;
    char *copy = strdup(stream);
    if (!copy)
        return AW_ERR_NOMEM;
    det->trimmed[det->ntrimmed++] = (struct aw_det_trimmed_span){
        copy, aw_det_ms_to_ns(first_ms), aw_det_ms_to_ns(last_ms) + 999999};
    return AW_OK;
}

static int load_span(const aw_alert *alert, void *ud)
{
    return remember_span(ud, alert->anchor, alert->request_id);
}

int aw_det_trimmed_load(aw_detectors *det, aw_error *err)
{
    aw_alert_filter filter = {.kind = AW_ALERT_EVIDENCE_TRIMMED};
    return aw_det_store_result(
        aw_store_query_alerts(det->store, &filter, load_span, det, err), err);
}

void aw_det_trimmed_free(aw_detectors *det)
{
    for (size_t i = 0; i < det->ntrimmed; i++)
        free(det->trimmed[i].stream);
    free(det->trimmed);
}

bool aw_det_trimmed_within(const aw_detectors *det, const char *stream,
                           int64_t from_ns, int64_t to_ns)
{
    for (size_t i = 0; stream && i < det->ntrimmed; i++) {
        const struct aw_det_trimmed_span *t = &det->trimmed[i];
        if (t->from_ns <= to_ns && t->to_ns >= from_ns &&
            strcmp(t->stream, stream) == 0)
            return true;
    }
    return false;
}

int aw_detectors_on_trimmed(aw_detectors *det, const char *stream, int role,
                            const char *first_id, const char *last_id,
                            aw_error *err)
{
    uint64_t first_ms, last_ms, seq;
    if (!stream || !first_id || !last_id ||
        aw_stream_id_parse(first_id, strlen(first_id), &first_ms, &seq) ||
        aw_stream_id_parse(last_id, strlen(last_id), &last_ms, &seq))
        return aw_error_reject(
            err, AW_REJECT_BAD_VALUE,
            "trimmed range needs a stream and two entry ids");
    char *range = aw_det_printf("%s..%s", first_id, last_id);
    if (!range)
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    char from[40], to[40];
    aw_det_evidence ev;
    aw_det_evidence_init(&ev);
    aw_det_evidence_add(&ev, "entry", stream, first_id);
    aw_det_evidence_add(&ev, "entry", stream, last_id);
    bool replayable = role == AW_ROLE_AUDIT_DLQ;
    aw_alert alert = {
        .kind = AW_ALERT_EVIDENCE_TRIMMED,
        .severity = replayable ? "high" : "critical",
        .anchor = stream,
        .request_id = range,
        .event_time_ns = aw_det_ms_to_ns(first_ms),
    };
    int rc = raise_now(
        det, &alert,
        aw_det_printf(
            "Entries %s to %s of stream %s (%s to %s) "
            "were trimmed from the stream before "
            "auditwatch read them; %s",
            first_id, last_id, stream,
            aw_time_format(aw_det_ms_to_ns(first_ms), from, sizeof from),
            aw_time_format(aw_det_ms_to_ns(last_ms), to, sizeof to),
            replayable
                ? "Caracal's DLQ replay deletes an entry after re-publishing "
                  "it on the audit stream, so those events may be indexed "
                  "from there, but which were dead-lettered, and why, is "
                  "lost."
                : "that evidence is lost."),
        &ev, err);
    /* a rolled-back batch leaves its span here: the retried batch finds
     * the same gap, so it is known all the same */
    if (rc == AW_OK && remember_span(det, stream, range) != AW_OK)
        rc = aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    free(range);
    return rc;
}

/* ---- tampered_on_redelivery ---------------------------------------------- */

typedef struct first_version {
    char *block;
    const char *zone_id, *request_id, *stream, *entry_id;
    int64_t occurred_at_ns;
} first_version;

static int copy_first_version(const aw_event_row *row, void *ud)
{
    first_version *fv = ud;
    const char *src[] = {row->zone_id, row->request_id, row->stream,
                         row->entry_id};
    const char *dst[4];
    fv->block = aw_det_copy_strings(src, dst, 4, 0);
    if (!fv->block)
        return AW_ERR_NOMEM;
    fv->zone_id = dst[0];
    fv->request_id = dst[1];
    fv->stream = dst[2];
    fv->entry_id = dst[3];
    fv->occurred_at_ns = row->occurred_at_ns;
    return 1;
}

int aw_det_integrity_on_conflict(aw_detectors *det, const aw_raw_entry *entry,
                                 const aw_audit_event *event, aw_error *err)
{
    first_version fv = {0};
    /* the stored version of this identity: same id and occurred_at */
    aw_event_filter filter = {
        .event_id = event->id,
        .limit = 1,
        .has_since = true,
        .since_ns = event->occurred_at_ns,
        .has_until = true,
        .until_ns = aw_det_add_ns(event->occurred_at_ns, 1),
    };
    int rc =
        aw_det_store_result(aw_store_query_events(det->store, &filter,
                                                  copy_first_version, &fv, err),
                            err);
    if (rc)
        return rc;
    if (!fv.block)
        return aw_error_set(
            err, AW_ERR, "event %s conflicts with a version not in the index",
            event->id);
    aw_det_evidence ev;
    aw_det_evidence_init(&ev);
    aw_det_evidence_add(&ev, "event", event->id, NULL);
    aw_det_evidence_add(&ev, "entry", fv.stream, fv.entry_id);
    aw_det_evidence_add(&ev, "entry", entry->stream.ptr, entry->id.ptr);
    aw_alert alert = {
        .kind = AW_ALERT_TAMPERED_ON_REDELIVERY,
        .severity = "critical",
        .zone_id = fv.zone_id,
        .request_id = fv.request_id,
        .anchor = event->id,
        .event_time_ns = fv.occurred_at_ns,
    };
    rc = raise_now(det, &alert,
                   aw_det_printf("Event %s (request %s, zone %s) was delivered "
                                 "again in entry %s/%s with content that "
                                 "differs from the stored version in entry "
                                 "%s/%s; the stored version is kept.",
                                 event->id, aw_det_or_unknown(fv.request_id),
                                 fv.zone_id, entry->stream.ptr, entry->id.ptr,
                                 fv.stream, fv.entry_id),
                   &ev, err);
    free(fv.block);
    return rc;
}

/* ---- caracal_anomaly ----------------------------------------------------- */

static bool is_anomaly(const char *event_type)
{
    return event_type && (strcmp(event_type, "jti_collision") == 0 ||
                          strcmp(event_type, "replay_detected") == 0);
}

int aw_det_integrity_on_event(aw_detectors *det, const aw_raw_entry *entry,
                              const aw_audit_event *event, aw_error *err)
{
    if (!is_anomaly(event->event_type))
        return AW_OK;
    char when[40];
    aw_det_evidence ev;
    aw_det_evidence_init(&ev);
    aw_det_evidence_add(&ev, "event", event->id, NULL);
    aw_det_evidence_add(&ev, "entry", entry->stream.ptr, entry->id.ptr);
    aw_alert alert = {
        .kind = AW_ALERT_CARACAL_ANOMALY,
        .severity = "medium",
        .zone_id = event->zone_id,
        .request_id = event->request_id,
        .anchor = event->id,
        .event_time_ns = event->occurred_at_ns,
    };
    return raise_now(
        det, &alert,
        aw_det_printf("Caracal reported %s for request %s in zone "
                      "%s at %s (event %s, decision %s).",
                      event->event_type, aw_det_or_unknown(event->request_id),
                      event->zone_id,
                      aw_time_format(event->occurred_at_ns, when, sizeof when),
                      event->id, aw_det_or_unknown(event->decision)),
        &ev, err);
}
