/* test_cli_alerts.c -- `auditwatch alerts`: the filters a person uses to
 * find the alerts that matter, and --ack, on an index of realistic traffic
 * whose alerts are known (tests/support/cli_world.h). */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/cli_world.h"

static cli_world w;

static void build(void)
{
    cw_build(&w, true);
}
static void cleanup(void)
{
    cw_cleanup(&w);
}

TestSuite(cli_alerts, .init = build, .fini = cleanup, .timeout = 120);

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define MAX_ARGS  16

static cJSON *alerts_json(const char *const *args)
{
    const char *argv[MAX_ARGS] = {"alerts", "--db", w.db, "-f", "json"};
    size_t n = 5;
    for (; *args; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    cw_result r = cw_run(&w, argv, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cJSON *rows = cw_json_lines(r.out);
    cw_result_free(&r);
    return rows;
}

static int by_text(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "kind:request_id" of every alert listed, sorted, space-separated. */
static void expect_listed(const char *want, const char *const *args)
{
    cJSON *rows = alerts_json(args), *row;
    size_t count = (size_t)cJSON_GetArraySize(rows), i = 0;
    char **items = calloc(count + 1, sizeof *items);
    char *got = calloc(1, count * 64 + 1);
    cJSON_ArrayForEach(row, rows)
    {
        items[i] = malloc(64);
        snprintf(items[i++], 64, "%s:%s", cw_str(row, "kind"),
                 cw_str(row, "request_id"));
    }
    qsort(items, count, sizeof *items, by_text);
    for (i = 0; i < count; i++) {
        if (i)
            strcat(got, " ");
        strcat(got, items[i]);
        free(items[i]);
    }
    cr_expect_str_eq(got, want);
    free(items);
    free(got);
    cJSON_Delete(rows);
}

#define ALL_OPEN                                                                     \
    "access_after_revocation:req-4 call_without_audit:req-5 caracal_anomaly:req-an " \
    "decision_missing:req-2 signature_invalid:"

Test(cli_alerts, lists_the_open_alerts_by_default)
{
    expect_listed(ALL_OPEN, ARGS("--limit", "100"));
}

static int keep_json(const aw_alert *alert, void *ud)
{
    *(char **)ud = aw_alert_to_json(alert, AW_ALERT_UNCHANGED);
    return 1;
}

/* The sinks' JSON (aw_alert_to_json) of the stored alert id. */
static char *sink_json_of(const char *id)
{
    aw_store *store;
    aw_error err = {0};
    char *json = NULL;
    cr_assert_eq(aw_store_open(w.db, AW_STORE_READONLY, &store, &err), AW_OK,
                 "%s", err.msg);
    aw_store_query_alerts(store, &(aw_alert_filter){.id = id}, keep_json, &json,
                          &err);
    aw_store_close(store);
    cr_assert_not_null(json, "alert %s", id);
    return json;
}

Test(cli_alerts, state_resolved_shows_what_resolved_an_alert_and_how_late)
{
    cJSON *rows = alerts_json(ARGS("--state", "resolved"));
    cr_assert_eq(cJSON_GetArraySize(rows), 1);
    cJSON *a = cJSON_GetArrayItem(rows, 0);
    cr_expect_str_eq(cw_str(a, "kind"), "decision_missing");
    cr_expect_str_eq(cw_str(a, "request_id"), "req-7");
    cr_expect_str_eq(cw_str(a, "state"), "resolved");
    cr_expect_str_eq(cw_str(a, "resolved_by"), "ev-7");
    cr_expect_gt(
        cJSON_GetObjectItemCaseSensitive(a, "late_seconds")->valuedouble, 0);
    cr_expect(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(a, "evidence")));

    /* every member of the sinks' JSON of that alert, under the same name
     * and with the same value: a SIEM reads one schema from either */
    char *sunk = sink_json_of(cw_str(a, "id"));
    cJSON *sink = cJSON_Parse(sunk), *member;
    cr_assert_not_null(sink);
    cJSON_ArrayForEach(member, sink)
    {
        const cJSON *listed =
            cJSON_GetObjectItemCaseSensitive(a, member->string);
        cr_expect(listed && cJSON_Compare(listed, member, true),
                  "%s differs from the sinks' %s", member->string, sunk);
    }
    cJSON_Delete(sink);
    free(sunk);
    cJSON_Delete(rows);
}

Test(cli_alerts, state_all_includes_open_and_resolved)
{
    expect_listed(
        "access_after_revocation:req-4 call_without_audit:req-5 caracal_anomaly:req-an "
        "decision_missing:req-2 decision_missing:req-7 signature_invalid:",
        ARGS("--state", "all"));
}

Test(cli_alerts, filters_by_kind_and_request_id)
{
    expect_listed("decision_missing:req-2 decision_missing:req-7",
                  ARGS("--state", "all", "--kind", "decision_missing"));
    expect_listed("access_after_revocation:req-4",
                  ARGS("--request-id", "req-4"));
    expect_listed("", ARGS("--kind", "audit_evidence_trimmed"));
}

Test(cli_alerts, severity_means_at_least_this_severe)
{
    expect_listed("access_after_revocation:req-4 decision_missing:req-2",
                  ARGS("--severity", "critical"));
    expect_listed("access_after_revocation:req-4 call_without_audit:req-5 "
                  "decision_missing:req-2 signature_invalid:",
                  ARGS("--severity", "high"));
    expect_listed(ALL_OPEN, ARGS("--severity", "medium"));
}

Test(cli_alerts, since_keeps_alerts_raised_from_then_on)
{
    /* The missing-evidence alerts wait out their 300 s grace: the detector
     * clock raised them at +500 s (12:08:20), the others as they came. */
    expect_listed("call_without_audit:req-5 decision_missing:req-2",
                  ARGS("--since", "2026-05-21T12:05:00Z"));
}

Test(cli_alerts, limit_keeps_the_oldest_raised)
{
    cJSON *rows = alerts_json(ARGS("--limit", "1"));
    cr_assert_eq(cJSON_GetArraySize(rows), 1);
    cr_expect_str_eq(cw_str(cJSON_GetArrayItem(rows, 0), "kind"),
                     "access_after_revocation");
    cJSON_Delete(rows);
}

Test(cli_alerts, ack_records_the_note_and_keeps_the_alert_open)
{
    cJSON *rows = alerts_json(ARGS("--request-id", "req-5"));
    cr_assert_eq(cJSON_GetArraySize(rows), 1);
    char id[40];
    snprintf(id, sizeof id, "%s", cw_str(cJSON_GetArrayItem(rows, 0), "id"));
    cr_expect(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(rows, 0), "acked_at")));
    cJSON_Delete(rows);

    cw_result r = cw_run(&w,
                         ARGS("alerts", "--db", w.db, "--ack", id, "--note",
                              "upstream log replayed, \"benign\""),
                         NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect_str_empty(r.out);
    cw_result_free(&r);

    rows = alerts_json(ARGS("--request-id", "req-5"));
    cJSON *a = cJSON_GetArrayItem(rows, 0);
    cr_expect_str_eq(cw_str(a, "state"), "open");
    cr_expect_str_eq(cw_str(a, "ack_note"),
                     "upstream log replayed, \"benign\"");
    cr_expect(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(a, "acked_at")));
    char first_ack[64];
    snprintf(first_ack, sizeof first_ack, "%s", cw_str(a, "acked_at"));
    cJSON_Delete(rows);

    /* A colleague's second ack without a note erases nothing. */
    r = cw_run(&w, ARGS("alerts", "--db", w.db, "--ack", id), NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cw_result_free(&r);
    rows = alerts_json(ARGS("--request-id", "req-5"));
    a = cJSON_GetArrayItem(rows, 0);
    cr_expect_str_eq(cw_str(a, "ack_note"),
                     "upstream log replayed, \"benign\"");
    cr_expect_str_eq(cw_str(a, "acked_at"), first_ack);
    cJSON_Delete(rows);
}

Test(cli_alerts, ack_of_an_unknown_id_exits_1)
{
    cw_result r =
        cw_run(&w, ARGS("alerts", "--db", w.db, "--ack", "0000"), NULL);
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "0000"), "%s", r.err);
    cw_result_free(&r);
}

Test(cli_alerts, ack_on_a_mistyped_index_path_creates_nothing)
{
    char typo[PATH_MAX + 8];
    snprintf(typo, sizeof typo, "%s.typo", w.db);
    cw_result r =
        cw_run(&w, ARGS("alerts", "--db", typo, "--ack", "0000"), NULL);
    cr_expect_eq(r.status, 3, "%s", r.err);
    cr_expect(strstr(r.err, typo), "%s", r.err);
    cr_expect_eq(access(typo, F_OK), -1, "an index was created at %s", typo);
    cw_result_free(&r);
}

Test(cli_alerts, bad_arguments_exit_2)
{
    const char *const *cases[] = {
        ARGS("alerts", "--db", w.db, "--state", "closed"),
        ARGS("alerts", "--db", w.db, "--severity", "low"),
        ARGS("alerts", "--db", w.db, "--note", "orphan"),
        ARGS("alerts", "--db", w.db, "--since", "last week"),
        ARGS("alerts", "--db", w.db, "--limit", "-3"),
        /* a misspelt kind would list nothing, as if all were well */
        ARGS("alerts", "--db", w.db, "--kind", "decison_missing"),
    };
    const char *mention[] = {"closed",    "low",     "--ack",
                             "last week", "--limit", "decison_missing"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cw_result r = cw_run(&w, cases[i], NULL);
        cr_expect_eq(r.status, 2, "case %zu", i);
        cr_expect_eq(cw_lines(r.err), 1, "case %zu: %s", i, r.err);
        cr_expect(strstr(r.err, mention[i]), "case %zu: %s", i, r.err);
        cw_result_free(&r);
    }
}

/* ms since the epoch of an RFC 3339 cell of the JSON listing. */
static int64_t ms_of(const cJSON *row, const char *name)
{
    int64_t ns = 0;
    const char *text = cw_str(row, name);
    cr_assert_eq(aw_time_parse_rfc3339(text, strlen(text), &ns, NULL), AW_OK,
                 "%s", text);
    return ns / 1000000;
}

Test(cli_alerts, format_ocsf_prints_one_detection_finding_per_alert)
{
    cJSON *rows = alerts_json(ARGS("--state", "all")), *row;
    cw_result r = cw_run(
        &w, ARGS("alerts", "--db", w.db, "--state", "all", "--format", "ocsf"),
        NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cJSON *findings = cw_json_lines(r.out);
    cr_assert_eq(cJSON_GetArraySize(findings), cJSON_GetArraySize(rows), "%s",
                 r.out);
    cr_assert_eq(cJSON_GetArraySize(findings), 6);
    size_t i = 0;
    cJSON_ArrayForEach(row, rows)
    {
        /* Same order as the listing: oldest raised first. */
        const cJSON *f = cJSON_GetArrayItem(findings, (int)i++);
        const cJSON *fi = cJSON_GetObjectItemCaseSensitive(f, "finding_info");
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(f, "metadata");
        bool resolved = strcmp(cw_str(row, "state"), "resolved") == 0;
        const char *sev = cw_str(row, "severity");
        int severity_id = !strcmp(sev, "critical") ? 5
                          : !strcmp(sev, "high")   ? 4
                                                   : 3;
        cr_expect_eq(cJSON_GetObjectItem(f, "class_uid")->valueint, 2004);
        cr_expect_eq(cJSON_GetObjectItem(f, "category_uid")->valueint, 2);
        cr_expect_eq(cJSON_GetObjectItem(f, "activity_id")->valueint,
                     resolved ? 3 : 1);
        cr_expect_eq(cJSON_GetObjectItem(f, "type_uid")->valueint,
                     resolved ? 200403 : 200401);
        cr_expect_str_eq(cw_str(f, "status"), resolved ? "Resolved" : "New");
        cr_expect_eq(cJSON_GetObjectItem(f, "severity_id")->valueint,
                     severity_id);
        cr_expect_str_eq(cw_str(fi, "uid"), cw_str(row, "id"));
        cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetArrayItem(
                             cJSON_GetObjectItemCaseSensitive(fi, "types"), 0)),
                         cw_str(row, "kind"));
        cr_expect_eq((int64_t)cJSON_GetObjectItem(f, "time")->valuedouble,
                     ms_of(row, resolved ? "resolved_at" : "raised_at"));
        cr_expect_str_eq(cw_str(md, "version"), "1.3.0");
        cr_expect_str_eq(
            cw_str(cJSON_GetObjectItemCaseSensitive(md, "product"), "name"),
            "auditwatch");
        if (*cw_str(row, "request_id"))
            cr_expect_str_eq(cw_str(md, "correlation_uid"),
                             cw_str(row, "request_id"));
    }
    cJSON_Delete(findings);
    cJSON_Delete(rows);
    cw_result_free(&r);

    /* The other listings have columns, not findings. */
    r = cw_run(&w, ARGS("query", "--db", w.db, "--format", "ocsf"), NULL);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "ocsf"), "%s", r.err);
    cw_result_free(&r);
}

/* Every kind auditwatch raises, written to an index of its own: the even
 * ones resolved, kind 1 acknowledged. */
static const char *const every_kind[] = {
    AW_ALERT_DECISION_MISSING,  AW_ALERT_CALL_WITHOUT_AUDIT,
    AW_ALERT_EVIDENCE_TRIMMED,  AW_ALERT_ACCESS_AFTER_REVOCATION,
    AW_ALERT_SIGNATURE_INVALID, AW_ALERT_TAMPERED_ON_REDELIVERY,
    AW_ALERT_CARACAL_ANOMALY,   "audit_dead_lettered",
    "revocation_dead_lettered", "revocation_not_consumed",
    "audit_ingest_stalled",
};
#define NKINDS (sizeof every_kind / sizeof every_kind[0])

static void write_every_kind(const char *path)
{
    aw_store *store;
    aw_error err = {0};
    aw_alert_change change;
    cr_assert_eq(aw_store_open(path, 0, &store, &err), AW_OK, "%s", err.msg);
    cr_assert_eq(aw_store_begin(store, &err), AW_OK, "%s", err.msg);
    for (size_t i = 0; i < NKINDS; i++) {
        char id[33], request_id[16];
        snprintf(request_id, sizeof request_id, "req-k%zu", i);
        aw_alert a = {
            .id = aw_detectors_alert_id(every_kind[i], "zone-1", "anchor-1",
                                        request_id, id),
            .kind = every_kind[i],
            .severity = i % 3 == 0   ? "critical"
                        : i % 3 == 1 ? "high"
                                     : "medium",
            .state = AW_ALERT_OPEN,
            .zone_id = "zone-1",
            .request_id = request_id,
            .anchor = "anchor-1",
            .event_time_ns = CW_NS(1000 * (int64_t)i),
            .raised_at_ns = CW_NS(1000 * (int64_t)i + 500),
            .evidence_json = "[\"event:ev-1\"]",
            .summary = every_kind[i],
        };
        cr_assert_eq(aw_store_alert_upsert(store, &a, &change, &err), AW_OK,
                     "%s", err.msg);
        if (i % 2 == 0)
            cr_assert_eq(aw_store_alert_resolve(store, id, "ev-late",
                                                CW_NS(100000), 1000000000,
                                                &change, &err),
                         AW_OK, "%s", err.msg);
        if (i == 1)
            cr_assert_eq(
                aw_store_alert_ack(store, id, "on it", CW_NS(50000), &err),
                AW_OK, "%s", err.msg);
    }
    cr_assert_eq(aw_store_commit(store, &err), AW_OK, "%s", err.msg);
    aw_store_close(store);
}

Test(cli_alerts, format_ocsf_covers_every_kind_and_state)
{
    char db[PATH_MAX];
    cJSON *f;
    size_t seen = 0;
    aw_test_path(w.dir, "every-kind.db", db);
    write_every_kind(db);
    cw_result r = cw_run(
        &w, ARGS("alerts", "--db", db, "--state", "all", "-f", "ocsf"), NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cJSON *findings = cw_json_lines(r.out);
    cr_assert_eq(cJSON_GetArraySize(findings), (int)NKINDS, "%s", r.out);
    cJSON_ArrayForEach(f, findings)
    {
        /* Oldest raised first: the i-th kind. */
        size_t i = seen++;
        const cJSON *fi = cJSON_GetObjectItemCaseSensitive(f, "finding_info");
        bool resolved = i % 2 == 0;
        int severity_id = i % 3 == 0 ? 5 : i % 3 == 1 ? 4 : 3;
        char id[33], request_id[16];
        snprintf(request_id, sizeof request_id, "req-k%zu", i);
        aw_detectors_alert_id(every_kind[i], "zone-1", "anchor-1", request_id,
                              id);
        cr_expect_eq(cJSON_GetObjectItem(f, "class_uid")->valueint, 2004);
        cr_expect_eq(cJSON_GetObjectItem(f, "category_uid")->valueint, 2);
        cr_expect_eq(cJSON_GetObjectItem(f, "activity_id")->valueint,
                     resolved ? 3 : 1);
        cr_expect_eq(cJSON_GetObjectItem(f, "type_uid")->valueint,
                     resolved ? 200403 : 200401);
        cr_expect_eq(cJSON_GetObjectItem(f, "severity_id")->valueint,
                     severity_id);
        cr_expect_eq(cJSON_GetObjectItem(f, "status_id")->valueint,
                     resolved ? 4
                     : i == 1 ? 2
                              : 1,
                     "kind %s", every_kind[i]);
        cr_expect_eq((int64_t)cJSON_GetObjectItem(f, "time")->valuedouble,
                     resolved ? CW_T0_MS + 100000
                              : CW_T0_MS + 1000 * (int64_t)i + 500);
        cr_expect_str_eq(cw_str(fi, "uid"), id);
        cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetArrayItem(
                             cJSON_GetObjectItemCaseSensitive(fi, "types"), 0)),
                         every_kind[i]);
        cr_expect_str_eq(cw_str(cJSON_GetObjectItem(f, "metadata"), "version"),
                         "1.3.0");
    }
    cJSON_Delete(findings);
    cw_result_free(&r);
}
