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
 * Both are raised when the dead letter arrives; nothing resolves them (the
 * evidence stays lost to Caracal).
 */
#include "detectors/alerting.h"

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
                               const aw_audit_event *event, aw_error *err)
{
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
        .event_time_ns = event->occurred_at_ns,
    };
    char *summary = aw_det_printf(
        "Caracal's audit service dead-lettered event %s (%s, decision %s, "
        "request %s, zone %s, occurred %s), received %s: %s. It is not in "
        "Caracal's ledger; auditwatch indexed it from %s/%s.",
        event->id, aw_det_or_unknown(event->event_type),
        aw_det_or_unknown(event->decision), aw_det_or_unknown(event->request_id),
        event->zone_id, aw_time_format(event->occurred_at_ns, when, sizeof when),
        aw_time_format(letter->received_at_ns, received, sizeof received),
        letter->reason, entry->stream.ptr, entry->id.ptr);
    alert.summary = summary;
    alert.evidence_json = aw_det_evidence_json(&ev);
    int rc = summary ? aw_det_raise(det, &alert, err)
                     : aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    free(summary);
    aw_det_evidence_free(&ev);
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

int aw_detectors_on_dead_revocations(aw_detectors *det,
                                     const aw_raw_entry *entry,
                                     const aw_dead_letter *letter,
                                     const aw_revocation_set *set,
                                     aw_error *err)
{
    if (set->n == 0)
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
    char *summary = anchor && anchors ? aw_det_printf(
        "A revocation enforcer gave up on revocation %s/%s (zone %s, %s at %s%s%s) "
        "and dead-lettered it to %s (%s, %s): it may not be enforced.",
        orig->stream.ptr, orig->id.ptr, set->zone_id, anchors,
        aw_time_format(set->at_ns, when, sizeof when),
        set->reason ? ", reason " : "", set->reason ? set->reason : "",
        entry->stream.ptr, aw_dead_letter_shape_name(letter->shape),
        letter->reason) : NULL;
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
