/* alert_ocsf.c -- an alert as an OCSF Detection Finding, for SIEMs.
 *
 * The second form an alert leaves auditwatch in, beside aw_alert_to_json:
 * one OCSF 1.3.0 Detection Finding (class_uid 2004, category Findings 2).
 * Each alert change is one finding activity -- raised is Create, escalated
 * is Update, resolved is Close -- and a stored alert printed by the CLI
 * takes the activity of its state. finding_info.uid is the alert id, which
 * is deterministic, so a SIEM fed by two redundant instances can de-duplicate
 * on it as the other sinks do.
 *
 * Invariant: every attribute written here exists in that class (or object)
 * in OCSF 1.3.0; what OCSF has no place for goes under `unmapped`, never
 * into an invented attribute. The test lists the 1.3.0 attributes and checks
 * every key against them. Times are epoch milliseconds (OCSF timestamp_t).
 *
 * Trade-off: auditwatch keeps no time of an escalation, so an Update carries
 * the time the alert was raised; the change itself is in unmapped.change.
 */
#include "consumer/consumer.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef AW_VERSION
#error "AW_VERSION (the project version) comes from CMakeLists.txt"
#endif

#define OCSF_VERSION          "1.3.0"
#define DETECTION_FINDING_UID 2004
#define FINDINGS_CATEGORY_UID 2
#define OBSERVABLE_TYPE_OTHER 99
#define ANALYTIC_TYPE_RULE    1

/* What OCSF needs to know per kind that the alert row does not say. */
typedef struct kind_mapping {
    const char *kind;
    const char *title;         /* finding_info.title */
    const char *resource_type; /* resources[].type of the anchor; NULL: none */
    /* False where the alert's request_id holds something else (the trimmed
     * entry range): it then goes to unmapped, not to correlation_uid. */
    bool request_id_is_request;
} kind_mapping;

static const kind_mapping kinds[] = {
    {AW_ALERT_DECISION_MISSING,
     "Gateway call without an authorization decision", NULL, true},
    {AW_ALERT_CALL_WITHOUT_AUDIT, "Upstream call without an audit event", NULL,
     true},
    {AW_ALERT_EVIDENCE_TRIMMED, "Audit evidence trimmed before it was read",
     "Redis stream", false},
    {AW_ALERT_ACCESS_AFTER_REVOCATION, "Access after revocation",
     "Caracal anchor", true},
    {AW_ALERT_SIGNATURE_INVALID, "Stream entry with an invalid signature",
     "Redis stream entry", true},
    {AW_ALERT_TAMPERED_ON_REDELIVERY, "Audit event changed on redelivery",
     "Audit event", true},
    {AW_ALERT_CARACAL_ANOMALY, "Anomaly reported by Caracal", "Audit event",
     true},
    /* Caracal's own pipeline (DESIGN §8). */
    {AW_ALERT_AUDIT_DEAD_LETTERED, "Audit event dead-lettered", NULL, true},
    {AW_ALERT_REVOCATION_DEAD_LETTERED,
     "Revocation dead-lettered by an enforcer", NULL, true},
    /* request_id: "<stream>/<entry id>" the group has not applied */
    {AW_ALERT_REVOCATION_NOT_CONSUMED, "Revocation not applied by an enforcer",
     NULL, false},
    {AW_ALERT_AUDIT_INGEST_STALLED, "Audit ingest stalled", NULL, false},
};

static const kind_mapping *mapping_of(const char *kind)
{
    for (size_t i = 0; kind && i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kinds[i].kind, kind) == 0)
            return &kinds[i];
    return NULL;
}

bool aw_alert_kind_known(const char *kind)
{
    return mapping_of(kind) != NULL;
}

static bool present(const char *s)
{
    return s && *s;
}

static double epoch_ms(int64_t ns)
{
    return (double)(ns / 1000000);
}

static void add_string(cJSON *o, const char *name, const char *value)
{
    if (present(value))
        cJSON_AddStringToObject(o, name, value);
}

static void add_time(cJSON *o, const char *name, int64_t ns)
{
    if (ns)
        cJSON_AddNumberToObject(o, name, epoch_ms(ns));
}

typedef struct activity {
    int id;
    const char *name;
} activity;

static activity activity_of(const aw_alert *a, aw_alert_change change)
{
    switch (change) {
    case AW_ALERT_RAISED: return (activity){1, "Create"};
    case AW_ALERT_ESCALATED:
    case AW_ALERT_REOPENED: return (activity){2, "Update"};
    case AW_ALERT_RESOLVED_NOW: return (activity){3, "Close"};
    default:
        return a->state == AW_ALERT_RESOLVED ? (activity){3, "Close"}
                                             : (activity){1, "Create"};
    }
}

static void add_severity(cJSON *o, const char *severity)
{
    static const struct {
        const char *name;
        int id;
        const char *caption;
    } levels[] = {{"medium", 3, "Medium"},
                  {"high", 4, "High"},
                  {"critical", 5, "Critical"}};
    for (size_t i = 0; severity && i < sizeof levels / sizeof levels[0]; i++)
        if (strcmp(severity, levels[i].name) == 0) {
            cJSON_AddNumberToObject(o, "severity_id", levels[i].id);
            cJSON_AddStringToObject(o, "severity", levels[i].caption);
            return;
        }
    /* OCSF's Other: the caption is the source's own word. */
    cJSON_AddNumberToObject(o, "severity_id", 99);
    cJSON_AddStringToObject(o, "severity",
                            present(severity) ? severity : "Other");
}

/* OCSF's finding status is the reviewer's view: an acknowledged open alert
 * is one a person is looking at. */
static void add_status(cJSON *o, const aw_alert *a)
{
    int id = a->state == AW_ALERT_RESOLVED ? 4 : a->acked_at_ns ? 2 : 1;
    static const char *const captions[] = {NULL, "New", "In Progress", NULL,
                                           "Resolved"};
    cJSON_AddNumberToObject(o, "status_id", id);
    cJSON_AddStringToObject(o, "status", captions[id]);
}

static cJSON *finding_info(const aw_alert *a, const kind_mapping *m)
{
    cJSON *fi = cJSON_CreateObject(), *types = cJSON_CreateArray();
    cJSON *analytic = cJSON_CreateObject();
    const char *title = m                     ? m->title
                        : present(a->summary) ? a->summary
                                              : a->kind;
    if (!fi || !types || !analytic) {
        cJSON_Delete(fi);
        cJSON_Delete(types);
        cJSON_Delete(analytic);
        return NULL;
    }
    cJSON_AddItemToObject(fi, "uid", cJSON_CreateString(a->id ? a->id : ""));
    cJSON_AddItemToObject(
        fi, "title",
        cJSON_CreateString(present(title) ? title : "auditwatch alert"));
    if (present(a->kind))
        cJSON_AddItemToArray(types, cJSON_CreateString(a->kind));
    cJSON_AddItemToObject(fi, "types", types);
    /* The detector that raised it, named by the alert kind. */
    add_string(analytic, "name", a->kind);
    cJSON_AddNumberToObject(analytic, "type_id", ANALYTIC_TYPE_RULE);
    cJSON_AddStringToObject(analytic, "type", "Rule");
    cJSON_AddItemToObject(fi, "analytic", analytic);
    add_time(fi, "created_time", a->raised_at_ns);
    add_time(fi, "first_seen_time", a->event_time_ns);
    if (a->state == AW_ALERT_RESOLVED)
        add_time(fi, "modified_time", a->resolved_at_ns);
    return fi;
}

static cJSON *metadata(const aw_alert *a, const kind_mapping *m)
{
    cJSON *md = cJSON_CreateObject(), *product = cJSON_CreateObject();
    if (!md || !product) {
        cJSON_Delete(md);
        cJSON_Delete(product);
        return NULL;
    }
    cJSON_AddStringToObject(product, "name", "auditwatch");
    cJSON_AddStringToObject(product, "vendor_name", "auditwatch");
    cJSON_AddStringToObject(product, "version", AW_VERSION);
    cJSON_AddItemToObject(md, "product", product);
    cJSON_AddStringToObject(md, "version", OCSF_VERSION);
    add_string(md, "tenant_uid", a->zone_id);
    if (!m || m->request_id_is_request)
        add_string(md, "correlation_uid", a->request_id);
    return md;
}

static cJSON *observable(const char *name, const char *type, const char *value)
{
    cJSON *ob = cJSON_CreateObject();
    cJSON_AddStringToObject(ob, "name", name);
    cJSON_AddNumberToObject(ob, "type_id", OBSERVABLE_TYPE_OTHER);
    cJSON_AddStringToObject(ob, "type", type);
    cJSON_AddStringToObject(ob, "value", value);
    return ob;
}

/* The stored evidence is a JSON array of "event:ID" / "entry:STREAM/ID"
 * items; anything else is kept as one string item rather than lost. */
static cJSON *evidences(const char *json)
{
    cJSON *items = json ? cJSON_Parse(json) : NULL, *list = cJSON_CreateArray(),
          *one;
    if (!items || !cJSON_IsArray(items)) {
        cJSON_Delete(items);
        items = cJSON_CreateArray();
        if (json)
            cJSON_AddItemToArray(items, cJSON_CreateString(json));
    }
    one = cJSON_CreateObject();
    cJSON_AddItemToObject(one, "data", items);
    cJSON_AddItemToArray(list, one);
    return list;
}

static cJSON *unmapped(const aw_alert *a, aw_alert_change change,
                       const kind_mapping *m)
{
    cJSON *u = cJSON_CreateObject();
    cJSON_AddStringToObject(u, "state", aw_alert_state_name(a->state));
    add_string(u, "change", aw_alert_change_name(change));
    if (m && !m->request_id_is_request)
        add_string(u, "request_id", a->request_id);
    add_string(u, "resolved_by", a->resolved_by);
    if (a->state == AW_ALERT_RESOLVED)
        cJSON_AddNumberToObject(u, "late_seconds", (double)a->late_ns / 1e9);
    add_time(u, "acked_time", a->acked_at_ns);
    return u;
}

char *aw_alert_to_ocsf(const aw_alert *a, aw_alert_change change)
{
    const kind_mapping *m = mapping_of(a->kind);
    activity act = activity_of(a, change);
    int64_t time_ns =
        act.id == 3 && a->resolved_at_ns ? a->resolved_at_ns : a->raised_at_ns;
    cJSON *o = cJSON_CreateObject(), *observables = cJSON_CreateArray();
    char type_name[48];
    char *text;
    if (!o || !observables) {
        cJSON_Delete(o);
        cJSON_Delete(observables);
        return NULL;
    }
    snprintf(type_name, sizeof type_name, "Detection Finding: %s", act.name);
    cJSON_AddNumberToObject(o, "class_uid", DETECTION_FINDING_UID);
    cJSON_AddStringToObject(o, "class_name", "Detection Finding");
    cJSON_AddNumberToObject(o, "category_uid", FINDINGS_CATEGORY_UID);
    cJSON_AddStringToObject(o, "category_name", "Findings");
    cJSON_AddNumberToObject(o, "activity_id", act.id);
    cJSON_AddStringToObject(o, "activity_name", act.name);
    cJSON_AddNumberToObject(o, "type_uid",
                            DETECTION_FINDING_UID * 100 + act.id);
    cJSON_AddStringToObject(o, "type_name", type_name);
    cJSON_AddNumberToObject(o, "time", epoch_ms(time_ns));
    add_severity(o, a->severity);
    add_status(o, a);
    add_string(o, "message", a->summary);
    add_string(o, "comment", a->ack_note);
    cJSON_AddItemToObject(o, "finding_info", finding_info(a, m));
    cJSON_AddItemToObject(o, "metadata", metadata(a, m));
    if (present(a->anchor)) {
        cJSON *resources = cJSON_CreateArray(),
              *resource = cJSON_CreateObject();
        cJSON_AddStringToObject(resource, "uid", a->anchor);
        if (m && m->resource_type)
            cJSON_AddStringToObject(resource, "type", m->resource_type);
        add_string(resource, "namespace", a->zone_id);
        cJSON_AddItemToArray(resources, resource);
        cJSON_AddItemToObject(o, "resources", resources);
        cJSON_AddItemToArray(observables,
                             observable("resources.uid", "Anchor", a->anchor));
    }
    if ((!m || m->request_id_is_request) && present(a->request_id))
        cJSON_AddItemToArray(observables,
                             observable("metadata.correlation_uid",
                                        "Request ID", a->request_id));
    if (cJSON_GetArraySize(observables))
        cJSON_AddItemToObject(o, "observables", observables);
    else
        cJSON_Delete(observables);
    cJSON_AddItemToObject(o, "evidences", evidences(a->evidence_json));
    cJSON_AddItemToObject(o, "unmapped", unmapped(a, change, m));
    /* Out of memory half way: no finding rather than one without its
     * required objects. */
    text = cJSON_GetObjectItem(o, "finding_info") &&
                   cJSON_GetObjectItem(o, "metadata")
               ? cJSON_PrintUnformatted(o)
               : NULL;
    cJSON_Delete(o);
    return text;
}
