/* test_consumer_alert_ocsf.c -- every alert kind, in every change, leaves as
 * an OCSF 1.3.0 Detection Finding a SIEM accepts: the class, the activity of
 * the change, the alert id as finding_info.uid, the severity, epoch-ms
 * times, the product, and only attributes the schema has.
 *
 * No JSON Schema of OCSF ships as a Debian package, so the schema check is
 * done here: the attribute names of each object auditwatch writes, copied
 * from OCSF 1.3.0 (detection_finding with what it inherits from finding and
 * base_event, and the objects finding_info, analytic, metadata, product,
 * resource_details, observable, evidences), and every key of a rendered
 * finding must be among them. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "consumer/consumer.h"

/* ---- OCSF 1.3.0 attribute names ------------------------------------------ */

static const char *const detection_finding_attrs[] = {"action",
                                                      "action_id",
                                                      "activity_id",
                                                      "activity_name",
                                                      "actor",
                                                      "api",
                                                      "attacks",
                                                      "authorizations",
                                                      "category_name",
                                                      "category_uid",
                                                      "class_name",
                                                      "class_uid",
                                                      "cloud",
                                                      "comment",
                                                      "confidence",
                                                      "confidence_id",
                                                      "confidence_score",
                                                      "count",
                                                      "device",
                                                      "disposition",
                                                      "disposition_id",
                                                      "duration",
                                                      "end_time",
                                                      "enrichments",
                                                      "evidences",
                                                      "finding_info",
                                                      "firewall_rule",
                                                      "impact",
                                                      "impact_id",
                                                      "impact_score",
                                                      "malware",
                                                      "message",
                                                      "metadata",
                                                      "observables",
                                                      "osint",
                                                      "raw_data",
                                                      "remediation",
                                                      "resources",
                                                      "risk_details",
                                                      "risk_level",
                                                      "risk_level_id",
                                                      "risk_score",
                                                      "severity",
                                                      "severity_id",
                                                      "start_time",
                                                      "status",
                                                      "status_code",
                                                      "status_detail",
                                                      "status_id",
                                                      "time",
                                                      "timezone_offset",
                                                      "type_name",
                                                      "type_uid",
                                                      "unmapped",
                                                      "vulnerabilities",
                                                      NULL};
static const char *const finding_info_attrs[] = {"analytic",
                                                 "attacks",
                                                 "created_time",
                                                 "data_sources",
                                                 "desc",
                                                 "first_seen_time",
                                                 "kill_chain",
                                                 "last_seen_time",
                                                 "modified_time",
                                                 "product_uid",
                                                 "related_analytics",
                                                 "related_events",
                                                 "src_url",
                                                 "title",
                                                 "types",
                                                 "uid",
                                                 NULL};
static const char *const analytic_attrs[] = {
    "category", "desc",    "name", "related_analytics", "type", "type_id",
    "uid",      "version", NULL};
static const char *const metadata_attrs[] = {
    "correlation_uid", "data_classification",
    "event_code",      "extension",
    "extensions",      "labels",
    "log_level",       "log_name",
    "log_provider",    "log_version",
    "logged_time",     "loggers",
    "modified_time",   "original_time",
    "processed_time",  "product",
    "profiles",        "sequence",
    "tenant_uid",      "uid",
    "version",         NULL};
static const char *const product_attrs[] = {
    "cpe_name", "data_classification", "feature",     "lang",    "name", "path",
    "uid",      "url_string",          "vendor_name", "version", NULL};
static const char *const resource_details_attrs[] = {"agent_list",
                                                     "cloud_partition",
                                                     "criticality",
                                                     "data",
                                                     "data_classification",
                                                     "group",
                                                     "labels",
                                                     "name",
                                                     "namespace",
                                                     "owner",
                                                     "region",
                                                     "type",
                                                     "uid",
                                                     "version",
                                                     NULL};
static const char *const observable_attrs[] = {"name",    "reputation", "type",
                                               "type_id", "value",      NULL};
static const char *const evidences_attrs[] = {
    "actor",      "api",    "connection_info", "container", "data", "database",
    "databucket", "device", "dst_endpoint",    "email",     "file", "job",
    "process",    "query",  "src_endpoint",    "url",       "user", NULL};

static bool listed(const char *const *names, const char *name)
{
    for (; *names; names++)
        if (strcmp(*names, name) == 0)
            return true;
    return false;
}

static void expect_only(const cJSON *o, const char *const *names,
                        const char *where)
{
    const cJSON *item;
    cr_assert(cJSON_IsObject(o), "%s is not an object", where);
    cJSON_ArrayForEach(item, o)
        cr_expect(listed(names, item->string),
                  "%s.%s is not an OCSF 1.3.0 attribute", where, item->string);
}

static void expect_each_only(const cJSON *list, const char *const *names,
                             const char *where)
{
    const cJSON *item;
    if (!list)
        return;
    cr_assert(cJSON_IsArray(list), "%s is not an array", where);
    cJSON_ArrayForEach(item, list) expect_only(item, names, where);
}

static const cJSON *at(const cJSON *o, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(o, name);
}

static double num(const cJSON *o, const char *name)
{
    const cJSON *n = at(o, name);
    cr_assert(cJSON_IsNumber(n), "%s is not a number", name);
    return n->valuedouble;
}

static const char *str(const cJSON *o, const char *name)
{
    const char *s = cJSON_GetStringValue(at(o, name));
    cr_assert(s, "%s is not a string", name);
    return s;
}

/* Every key known to OCSF 1.3.0, and the attributes it requires. */
static void expect_schema(const cJSON *f)
{
    const cJSON *fi = at(f, "finding_info"), *md = at(f, "metadata"), *ob;
    expect_only(f, detection_finding_attrs, "finding");
    expect_only(fi, finding_info_attrs, "finding_info");
    expect_only(at(fi, "analytic"), analytic_attrs, "finding_info.analytic");
    expect_only(md, metadata_attrs, "metadata");
    expect_only(at(md, "product"), product_attrs, "metadata.product");
    expect_each_only(at(f, "resources"), resource_details_attrs, "resources");
    expect_each_only(at(f, "observables"), observable_attrs, "observables");
    expect_each_only(at(f, "evidences"), evidences_attrs, "evidences");
    num(f, "severity_id");
    str(fi, "title");
    str(fi, "uid");
    str(md, "version");
    str(at(md, "product"), "vendor_name");
    num(at(fi, "analytic"), "type_id");
    cJSON_ArrayForEach(ob, at(f, "observables"))
    {
        str(ob, "name");
        num(ob, "type_id");
    }
    cr_expect(cJSON_IsObject(at(f, "unmapped")));
}

/* ---- Alerts of every kind -------------------------------------------------- */

#define T0_NS 1779364800123456789LL /* 2026-05-21T12:00:00.123456789Z */
#define T0_MS 1779364800123LL

typedef struct kind_case {
    const char *kind, *severity, *anchor, *request_id;
    int severity_id;
} kind_case;

static const kind_case every_kind[] = {
    {AW_ALERT_DECISION_MISSING, "critical", "", "req-2", 5},
    {AW_ALERT_CALL_WITHOUT_AUDIT, "high", "", "req-5", 4},
    {AW_ALERT_EVIDENCE_TRIMMED, "critical", "caracal.audit.events", "1-0..9-0",
     5},
    {AW_ALERT_ACCESS_AFTER_REVOCATION, "critical", "authority_record:ar-1",
     "req-4", 5},
    {AW_ALERT_SIGNATURE_INVALID, "high", "caracal.audit.events:1779364935000-0",
     NULL, 4},
    {AW_ALERT_TAMPERED_ON_REDELIVERY, "critical", "ev-9", "req-9", 5},
    {AW_ALERT_CARACAL_ANOMALY, "medium", "ev-an", "req-an", 3},
    {"audit_dead_lettered", "high", "caracal.audit.events.dlq:5-0", "req-d", 4},
    {"revocation_dead_lettered", "critical", "caracal.sessions.revoke.dead:6-0",
     NULL, 5},
    {"revocation_not_consumed", "critical", "sts-revocation:7-0", NULL, 5},
    {"audit_ingest_stalled", "high", "audit-ingestor", NULL, 4},
};
#define NKINDS (sizeof every_kind / sizeof every_kind[0])

static aw_alert alert_of(const kind_case *k, aw_alert_state state)
{
    aw_alert a = {
        .id = "0123456789abcdef0123456789abcdef",
        .kind = k->kind,
        .severity = k->severity,
        .state = state,
        .zone_id = "zone-1",
        .request_id = k->request_id,
        .anchor = k->anchor,
        .event_time_ns = T0_NS - 5000000000LL,
        .raised_at_ns = T0_NS,
        .evidence_json = "[\"event:ev-1\",\"entry:caracal.audit.events/1-0\"]",
        .summary = "something a person should look at",
    };
    if (state == AW_ALERT_RESOLVED) {
        a.resolved_at_ns = T0_NS + 60000000000LL;
        a.resolved_by = "ev-late";
        a.late_ns = 55000000000LL;
    }
    return a;
}

static cJSON *render(const aw_alert *a, aw_alert_change change)
{
    char *text = aw_alert_to_ocsf(a, change);
    cr_assert(text);
    cr_assert(!strchr(text, '\n'), "a finding must be one line: %s", text);
    cJSON *f = cJSON_Parse(text);
    cr_assert(f, "not JSON: %s", text);
    free(text);
    return f;
}

typedef struct change_case {
    aw_alert_change change;
    aw_alert_state state;
    int activity_id;
    const char *activity_name;
    int status_id;
    int64_t time_ms;
} change_case;

static const change_case every_change[] = {
    {AW_ALERT_RAISED, AW_ALERT_OPEN, 1, "Create", 1, T0_MS},
    {AW_ALERT_ESCALATED, AW_ALERT_OPEN, 2, "Update", 1, T0_MS},
    {AW_ALERT_RESOLVED_NOW, AW_ALERT_RESOLVED, 3, "Close", 4, T0_MS + 60000},
    /* Stored alerts, as `alerts --format ocsf` prints them. */
    {AW_ALERT_UNCHANGED, AW_ALERT_OPEN, 1, "Create", 1, T0_MS},
    {AW_ALERT_UNCHANGED, AW_ALERT_RESOLVED, 3, "Close", 4, T0_MS + 60000},
};
#define NCHANGES (sizeof every_change / sizeof every_change[0])

Test(consumer_alert_ocsf,
     every_kind_in_every_change_is_a_detection_finding_of_ocsf_1_3_0)
{
    for (size_t k = 0; k < NKINDS; k++)
        for (size_t c = 0; c < NCHANGES; c++) {
            const change_case *cc = &every_change[c];
            aw_alert a = alert_of(&every_kind[k], cc->state);
            cJSON *f = render(&a, cc->change);
            const cJSON *fi = at(f, "finding_info"), *md = at(f, "metadata");
            cr_log_info("%s %d", every_kind[k].kind, (int)cc->change);
            expect_schema(f);
            cr_expect_eq(num(f, "class_uid"), 2004);
            cr_expect_str_eq(str(f, "class_name"), "Detection Finding");
            cr_expect_eq(num(f, "category_uid"), 2);
            cr_expect_eq(num(f, "activity_id"), cc->activity_id);
            cr_expect_str_eq(str(f, "activity_name"), cc->activity_name);
            cr_expect_eq(num(f, "type_uid"), 200400 + cc->activity_id);
            cr_expect_eq(num(f, "severity_id"), every_kind[k].severity_id);
            cr_expect_eq(num(f, "status_id"), cc->status_id);
            cr_expect_eq((int64_t)num(f, "time"), cc->time_ms,
                         "time is epoch ms of the change");
            cr_expect_str_eq(str(fi, "uid"), a.id);
            cr_expect_eq(cJSON_GetArraySize(at(fi, "types")), 1);
            cr_expect_str_eq(
                cJSON_GetStringValue(cJSON_GetArrayItem(at(fi, "types"), 0)),
                every_kind[k].kind);
            cr_expect_str_neq(str(fi, "title"), every_kind[k].kind,
                              "a title, not the kind");
            cr_expect_eq((int64_t)num(fi, "created_time"), T0_MS);
            cr_expect_eq((int64_t)num(fi, "first_seen_time"), T0_MS - 5000);
            cr_expect_str_eq(str(md, "version"), "1.3.0");
            cr_expect_str_eq(str(at(md, "product"), "name"), "auditwatch");
            cr_expect_str_eq(str(at(md, "product"), "version"), AW_VERSION);
            cr_expect_str_eq(str(md, "tenant_uid"), "zone-1");
            cr_expect_str_eq(str(at(f, "unmapped"), "state"),
                             cc->state == AW_ALERT_OPEN ? "open" : "resolved");
            cJSON_Delete(f);
        }
}

Test(consumer_alert_ocsf, severity_becomes_severity_id_and_its_caption)
{
    static const struct {
        const char *severity;
        int id;
        const char *caption;
    } levels[] = {{"medium", 3, "Medium"},
                  {"high", 4, "High"},
                  {"critical", 5, "Critical"}};
    for (size_t i = 0; i < 3; i++) {
        kind_case k = {AW_ALERT_DECISION_MISSING, levels[i].severity, "",
                       "req-1", 0};
        aw_alert a = alert_of(&k, AW_ALERT_OPEN);
        cJSON *f = render(&a, AW_ALERT_RAISED);
        cr_expect_eq(num(f, "severity_id"), levels[i].id);
        cr_expect_str_eq(str(f, "severity"), levels[i].caption);
        cJSON_Delete(f);
    }
}

Test(consumer_alert_ocsf,
     request_id_anchor_and_zone_go_to_correlation_resources_and_tenant)
{
    aw_alert a =
        alert_of(&every_kind[3], AW_ALERT_OPEN); /* access_after_revocation */
    cJSON *f = render(&a, AW_ALERT_RAISED);
    const cJSON *res = cJSON_GetArrayItem(at(f, "resources"), 0), *ob;
    bool request_observable = false, anchor_observable = false;
    cr_expect_str_eq(str(at(f, "metadata"), "correlation_uid"), "req-4");
    cr_assert(res);
    cr_expect_str_eq(str(res, "uid"), "authority_record:ar-1");
    cr_expect_str_eq(str(res, "namespace"), "zone-1");
    cJSON_ArrayForEach(ob, at(f, "observables"))
    {
        if (!strcmp(str(ob, "name"), "metadata.correlation_uid"))
            request_observable = !strcmp(str(ob, "value"), "req-4");
        if (!strcmp(str(ob, "name"), "resources.uid"))
            anchor_observable =
                !strcmp(str(ob, "value"), "authority_record:ar-1");
    }
    cr_expect(request_observable && anchor_observable,
              "request id and anchor are observables");
    cJSON_Delete(f);
}

Test(consumer_alert_ocsf, evidence_items_are_kept_in_evidences_data)
{
    aw_alert a = alert_of(&every_kind[0], AW_ALERT_OPEN);
    cJSON *f = render(&a, AW_ALERT_RAISED);
    const cJSON *data = at(cJSON_GetArrayItem(at(f, "evidences"), 0), "data");
    cr_assert(cJSON_IsArray(data));
    cr_expect_eq(cJSON_GetArraySize(data), 2);
    cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetArrayItem(data, 0)),
                     "event:ev-1");
    cr_expect(!at(f, "resources"), "no anchor, no resource");
    cJSON_Delete(f);
}

Test(consumer_alert_ocsf, a_trimmed_range_is_not_taken_for_a_request_id)
{
    aw_alert a =
        alert_of(&every_kind[2], AW_ALERT_OPEN); /* audit_evidence_trimmed */
    cJSON *f = render(&a, AW_ALERT_RAISED);
    cr_expect(!at(at(f, "metadata"), "correlation_uid"));
    cr_expect_str_eq(str(at(f, "unmapped"), "request_id"), "1-0..9-0");
    cr_expect_str_eq(str(cJSON_GetArrayItem(at(f, "resources"), 0), "type"),
                     "Redis stream");
    cJSON_Delete(f);
}

Test(consumer_alert_ocsf, a_resolved_finding_says_what_resolved_it_and_how_late)
{
    aw_alert a = alert_of(&every_kind[0], AW_ALERT_RESOLVED);
    cJSON *f = render(&a, AW_ALERT_RESOLVED_NOW);
    const cJSON *u = at(f, "unmapped");
    cr_expect_str_eq(str(f, "status"), "Resolved");
    cr_expect_eq((int64_t)num(at(f, "finding_info"), "modified_time"),
                 T0_MS + 60000);
    cr_expect_str_eq(str(u, "resolved_by"), "ev-late");
    cr_expect_eq(num(u, "late_seconds"), 55);
    cr_expect_str_eq(str(u, "change"), "resolved");
    cJSON_Delete(f);
}

Test(consumer_alert_ocsf,
     an_acknowledged_open_alert_is_in_progress_with_its_note)
{
    aw_alert a = alert_of(&every_kind[1], AW_ALERT_OPEN);
    a.acked_at_ns = T0_NS + 1000000000LL;
    a.ack_note = "looking into it";
    cJSON *f = render(&a, AW_ALERT_UNCHANGED);
    cr_expect_eq(num(f, "status_id"), 2);
    cr_expect_str_eq(str(f, "status"), "In Progress");
    cr_expect_str_eq(str(f, "comment"), "looking into it");
    cr_expect_eq((int64_t)num(at(f, "unmapped"), "acked_time"), T0_MS + 1000);
    expect_schema(f);
    cJSON_Delete(f);
}

Test(consumer_alert_ocsf, an_unknown_kind_is_titled_by_its_summary)
{
    kind_case k = {"some_future_kind", "high", "", NULL, 4};
    aw_alert a = alert_of(&k, AW_ALERT_OPEN);
    cJSON *f = render(&a, AW_ALERT_RAISED);
    cr_expect_str_eq(str(at(f, "finding_info"), "title"), a.summary);
    const cJSON *types = at(at(f, "finding_info"), "types");
    cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetArrayItem(types, 0)),
                     "some_future_kind");
    expect_schema(f);
    cJSON_Delete(f);
}
