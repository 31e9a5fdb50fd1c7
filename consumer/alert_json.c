/* alert_json.c -- the one JSON form of an alert.
 *
 * Every place an alert leaves auditwatch as JSON -- the stdout sink, the
 * exec hook's stdin, and the CLI when it prints alerts as JSON lines -- goes
 * through aw_alert_to_json, so a consumer of one can read the others. Times
 * are RFC 3339 strings in UTC, absent values are null (never ""), and the
 * evidence is a real JSON array, not a string holding one.
 */
#include "consumer/consumer.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

const char *aw_alert_change_name(aw_alert_change change)
{
    switch (change) {
    case AW_ALERT_RAISED: return "raised";
    case AW_ALERT_ESCALATED: return "escalated";
    case AW_ALERT_RESOLVED_NOW: return "resolved";
    case AW_ALERT_REOPENED: return "reopened";
    default: return NULL;
    }
}

static cJSON *string_or_null(const char *s)
{
    return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

static cJSON *time_or_null(int64_t ns)
{
    char buf[40];
    return ns ? cJSON_CreateString(aw_time_format(ns, buf, sizeof buf))
              : cJSON_CreateNull();
}

/* The stored evidence is a JSON array; anything else is kept as one string
 * element rather than lost. */
static cJSON *evidence(const char *json)
{
    cJSON *arr = json ? cJSON_Parse(json) : NULL;
    if (arr && cJSON_IsArray(arr))
        return arr;
    cJSON_Delete(arr);
    arr = cJSON_CreateArray();
    if (arr && json)
        cJSON_AddItemToArray(arr, cJSON_CreateString(json));
    return arr;
}

char *aw_alert_to_json(const aw_alert *a, aw_alert_change change)
{
    cJSON *o = cJSON_CreateObject();
    const char *change_name = aw_alert_change_name(change);
    char *text;
    if (!o)
        return NULL;
    cJSON_AddItemToObject(o, "id", string_or_null(a->id));
    cJSON_AddItemToObject(o, "kind", string_or_null(a->kind));
    cJSON_AddItemToObject(o, "severity", string_or_null(a->severity));
    cJSON_AddItemToObject(o, "state",
                          string_or_null(aw_alert_state_name(a->state)));
    if (change_name)
        cJSON_AddItemToObject(o, "change", cJSON_CreateString(change_name));
    cJSON_AddItemToObject(o, "zone", string_or_null(a->zone_id));
    cJSON_AddItemToObject(o, "request_id", string_or_null(a->request_id));
    cJSON_AddItemToObject(o, "anchor", string_or_null(a->anchor));
    cJSON_AddItemToObject(o, "event_time", time_or_null(a->event_time_ns));
    cJSON_AddItemToObject(o, "raised_at", time_or_null(a->raised_at_ns));
    cJSON_AddItemToObject(o, "resolved_at", time_or_null(a->resolved_at_ns));
    cJSON_AddItemToObject(o, "resolved_by", string_or_null(a->resolved_by));
    cJSON_AddItemToObject(o, "late_seconds",
                          a->state == AW_ALERT_RESOLVED
                              ? cJSON_CreateNumber((double)a->late_ns / 1e9)
                              : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "evidence", evidence(a->evidence_json));
    cJSON_AddItemToObject(o, "summary", string_or_null(a->summary));
    text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}
