/* test_cli_trace.c -- `auditwatch trace REQUEST_ID` on an index of
 * realistic traffic (tests/support/cli_world.h): what an investigator sees
 * for one request, in every output format. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <string.h>

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

TestSuite(cli_trace, .init = build, .fini = cleanup, .timeout = 120);

static cJSON *trace_json(const char *request_id, cw_result *r)
{
    *r = cw_run(&w,
                (const char *[]){"trace", request_id, "--db", w.db, "--format",
                                 "json", NULL},
                NULL);
    cr_assert_eq(r->status, 0, "trace %s: %s", request_id, r->err);
    return cw_json_lines(r->out);
}

/* auditwatch's own keys of a trace row, and one member of them. */
static const cJSON *aw_of(const cJSON *row)
{
    const cJSON *aw = cJSON_GetObjectItemCaseSensitive(row, "auditwatch");
    cr_assert(cJSON_IsObject(aw), "a row without its auditwatch object");
    return aw;
}

static const cJSON *member(const cJSON *obj, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(obj, name);
}

/* The first row of rows from source (asserting there is one). */
static cJSON *row_from(cJSON *rows, const char *source, int nth)
{
    cJSON *row;
    cJSON_ArrayForEach(
        row, rows) if (strcmp(cw_str(aw_of(row), "source"), source) == 0 &&
                       nth-- == 0) return row;
    cr_assert_fail("no %s row", source);
    return NULL;
}

Test(cli_trace,
     shows_revocation_decision_call_and_alert_of_a_request_in_time_order)
{
    cw_result r;
    cJSON *rows = trace_json("req-4", &r);
    cr_assert_eq(cJSON_GetArraySize(rows), 4, "%s", r.out);
    int64_t prev = 0;
    for (int i = 0; i < 4; i++) {
        const cJSON *aw = aw_of(cJSON_GetArrayItem(rows, i));
        int64_t t;
        const char *time = cw_str(aw, "time");
        cr_assert_eq(aw_time_parse_rfc3339(time, strlen(time), &t, NULL), AW_OK,
                     "%s", time);
        cr_expect_leq(prev, t, "out of time order: %s", r.out);
        prev = t;
    }
    /* The revocation came first: its raw fields, and what auditwatch decoded. */
    cJSON *revocation = cJSON_GetArrayItem(rows, 0);
    cr_assert_str_eq(cw_str(aw_of(revocation), "source"), "revocation", "%s",
                     r.out);
    cr_expect_str_eq(cw_str(revocation, "session_id"), "ar-1");
    cr_expect_str_eq(cw_str(revocation, "reason"), CW_REVOKE_REASON);
    cr_expect_null(member(revocation, "_sig"));
    const cJSON *revoked = member(aw_of(revocation), "revocation");
    cr_expect_str_eq(cw_str(revoked, "action"), "revoke");
    cr_expect_str_eq(cw_str(revoked, "anchor_kind"), "authority_record");
    cr_expect_str_eq(cw_str(revoked, "anchor_id"), "ar-1");
    /* The decision and the Gateway call, under Caracal's names. */
    cJSON *exchange = row_from(rows, "audit", 0),
          *gw = row_from(rows, "audit", 1);
    cr_expect_str_eq(cw_str(exchange, "event_type"), "token_exchange");
    cr_expect_str_eq(cw_str(member(exchange, "anchors"), "session_id"), "ar-1");
    cr_expect_str_eq(cw_str(member(exchange, "anchors"), "agent_session_id"),
                     "as-4");
    cr_expect_str_eq(cw_str(gw, "event_type"), "gateway_resource_request");
    cr_expect_str_eq(cw_str(gw, "decision"), "allow");
    cr_expect_str_eq(cw_str(gw, "evaluation_status"), "executed");
    cr_expect_str_eq(cw_str(member(gw, "metadata_json"), "resource"),
                     "resource://api");
    cr_expect_eq(
        member(member(gw, "metadata_json"), "upstream_status")->valueint, 200);
    const cJSON *alert = member(aw_of(row_from(rows, "alert", 0)), "alert");
    cr_expect_str_eq(cw_str(alert, "kind"), "access_after_revocation");
    cr_expect_str_eq(cw_str(alert, "severity"), "critical");
    cJSON_Delete(rows);
    cw_result_free(&r);
}

Test(cli_trace, decodes_policies_diagnostics_and_the_whole_delegation_chain)
{
    cw_result r;
    cJSON *rows = trace_json("req-1", &r);
    cJSON *exchange = cJSON_GetArrayItem(rows, 0);
    cr_assert_str_eq(cw_str(exchange, "id"), "ev-1", "%s", r.out);
    const cJSON *anchors = member(exchange, "anchors");
    cr_expect_str_eq(cw_str(anchors, "session_id"), "ar-1");
    cr_expect_str_eq(cw_str(anchors, "delegation_edge_id"), "e-1");
    const cJSON *chain = member(anchors, "delegation_chain");
    cr_assert(cJSON_IsArray(chain), "%s", r.out);
    cr_expect_str_eq(cw_str(cJSON_GetArrayItem(chain, 0), "agent_session_id"),
                     "as-0");
    cr_expect_str_eq(cw_str(cJSON_GetArrayItem(chain, 0), "delegation_edge_id"),
                     "e-0");
    cr_expect_str_eq(cw_str(exchange, "evaluation_status"), "complete");
    const cJSON *policies = member(exchange, "determining_policies_json");
    const cJSON *diagnostics = member(exchange, "diagnostics_json");
    cr_assert(cJSON_IsArray(policies) && cJSON_IsArray(diagnostics), "%s",
              r.out);
    cr_expect_str_eq(cw_str(cJSON_GetArrayItem(policies, 0), "id"),
                     "baseline-resource-scope");
    cr_expect_str_eq(cw_str(cJSON_GetArrayItem(diagnostics, 0), "code"),
                     "scope_allowed");
    cr_expect(cJSON_IsTrue(member(aw_of(exchange), "signed")), "%s", r.out);
    /* The observed upstream call and the later revocation of ar-1 belong to
     * the story too; the Gateway event has no policies (JSON null). */
    cr_assert_eq(cJSON_GetArraySize(rows), 4, "%s", r.out);
    cr_expect(cJSON_IsNull(
        member(cJSON_GetArrayItem(rows, 1), "determining_policies_json")));
    cJSON *call = cJSON_GetArrayItem(rows, 2);
    cr_expect_str_eq(cw_str(aw_of(call), "source"), "call");
    cr_expect_str_eq(cw_str(call, "status"),
                     "200"); /* the stream field, as written */
    cr_expect_eq(member(member(aw_of(call), "call"), "status")->valueint, 200);
    cr_expect(cJSON_IsFalse(member(aw_of(call), "time_logged")),
              "the line had no time: its arrival stands in: %s", r.out);
    cr_expect_str_eq(cw_str(aw_of(cJSON_GetArrayItem(rows, 3)), "source"),
                     "revocation");
    cJSON_Delete(rows);
    cw_result_free(&r);
}

Test(cli_trace, json_uses_caracal_field_names_and_keeps_auditwatch_keys_apart)
{
    cw_result r;
    cJSON *rows = trace_json("req-1", &r);
    cJSON *exchange = cJSON_GetArrayItem(rows, 0);
    const char *caracal[] = {"id",          "zone_id",      "event_type",
                             "request_id",  "decision",     "evaluation_status",
                             "occurred_at", "metadata_json"};
    for (size_t i = 0; i < sizeof caracal / sizeof *caracal; i++)
        cr_expect_not_null(member(exchange, caracal[i]), "no %s: %s",
                           caracal[i], r.out);
    cr_expect_str_eq(cw_str(exchange, "request_id"), "req-1");
    cr_expect_str_eq(cw_str(exchange, "occurred_at"), "2026-05-21T12:00:01Z");
    cr_expect(cJSON_IsObject(member(exchange, "metadata_json")));
    cr_expect(cJSON_IsObject(member(exchange, "anchors")));
    /* None of auditwatch's names at the top, where Caracal's fields are. */
    const char *ours[] = {"type",        "source", "time",   "stream",
                          "entry_id",    "signed", "detail", "policies",
                          "diagnostics", "status"};
    for (size_t i = 0; i < sizeof ours / sizeof *ours; i++)
        cr_expect_null(member(exchange, ours[i]), "%s at the top: %s", ours[i],
                       r.out);
    const cJSON *aw = aw_of(exchange);
    cr_expect_str_eq(cw_str(aw, "stream"), "caracal.audit.events");
    cr_expect(*cw_str(aw, "entry_id"));
    cr_expect(cJSON_IsArray(member(aw, "alerts")));
    cJSON_Delete(rows);
    cw_result_free(&r);
}

Test(cli_trace, shows_a_resolved_alert_and_the_late_decision_that_resolved_it)
{
    cw_result r;
    cJSON *rows = trace_json("req-7", &r);
    cr_assert_eq(cJSON_GetArraySize(rows), 3, "%s", r.out);
    cr_expect_str_eq(cw_str(cJSON_GetArrayItem(rows, 0), "id"), "ev-7");
    cr_expect_str_eq(cw_str(cJSON_GetArrayItem(rows, 1), "id"), "gw-7");
    const cJSON *alert = member(aw_of(cJSON_GetArrayItem(rows, 2)), "alert");
    cr_expect_str_eq(cw_str(alert, "kind"), "decision_missing");
    cr_expect_str_eq(cw_str(alert, "state"), "resolved");
    cr_expect_str_eq(cw_str(alert, "resolved_by"), "ev-7");
    cJSON_Delete(rows);
    cw_result_free(&r);
}

Test(cli_trace, unknown_request_id_exits_1_with_nothing_on_stdout)
{
    cw_result r = cw_run(
        &w, (const char *[]){"trace", "req-nobody", "--db", w.db, NULL}, NULL);
    cr_expect_eq(r.status, 1);
    cr_expect_str_empty(r.out);
    cr_expect(strstr(r.err, "req-nobody"), "%s", r.err);
    cw_result_free(&r);
}

Test(cli_trace, csv_quotes_the_json_cells_per_rfc_4180)
{
    cw_result r = cw_run(
        &w, (const char *[]){"trace", "req-1", "--db", w.db, "-f", "csv", NULL},
        NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    const char *header =
        "auditwatch.time,auditwatch.source,id,zone_id,event_type,request_id,"
        "decision,evaluation_status,anchors,metadata_json,"
        "determining_policies_json,diagnostics_json,auditwatch.revocation,"
        "auditwatch.call,auditwatch.alert,auditwatch.stream,"
        "auditwatch.entry_id,auditwatch.signed\r\n";
    cr_expect(strncmp(r.out, header, strlen(header)) == 0, "%s", r.out);
    cr_expect(
        strstr(r.out, ",\"[{\"\"id\"\":\"\"baseline-resource-scope\"\"}]\","),
        "%s", r.out);
    cr_expect_eq(cw_lines(r.out), 5);
    cw_result_free(&r);
}

Test(cli_trace, table_aligns_every_column_under_its_header)
{
    cw_result r = cw_run(
        &w, (const char *[]){"trace", "req-4", "--db", w.db, NULL}, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    const char *header = r.out, *row = strchr(r.out, '\n') + 1;
    size_t col = (size_t)(strstr(header, "decision") - header);
    /* The first data row is the revocation (no decision): "-" sits under
     * the header; the next one is the decision "allow". */
    cr_expect_eq(row[col], '-', "%s", r.out);
    row = strchr(row, '\n') + 1;
    cr_expect_eq(strncmp(row + col, "allow", 5), 0, "%s", r.out);
    cr_expect_eq(cw_lines(r.out), 5);
    cw_result_free(&r);
}

Test(cli_trace, needs_exactly_one_request_id)
{
    cw_result none =
        cw_run(&w, (const char *[]){"trace", "--db", w.db, NULL}, NULL);
    cw_result two = cw_run(
        &w, (const char *[]){"trace", "req-1", "req-2", "--db", w.db, NULL},
        NULL);
    cr_expect_eq(none.status, 2);
    cr_expect_eq(two.status, 2);
    cr_expect_eq(cw_lines(none.err), 1, "%s", none.err);
    cr_expect(strstr(two.err, "req-2"), "%s", two.err);
    cw_result_free(&none);
    cw_result_free(&two);
}

Test(cli_trace, missing_index_is_an_operational_failure)
{
    char path[PATH_MAX];
    cw_result r =
        cw_run(&w,
               (const char *[]){"trace", "req-1", "--db",
                                aw_test_path(w.dir, "absent.db", path), NULL},
               NULL);
    cr_expect_eq(r.status, 3);
    cr_expect(strstr(r.err, "absent.db"), "%s", r.err);
    cw_result_free(&r);
}

Test(cli_trace, finds_the_index_through_AUDITWATCH_DB)
{
    char env[PATH_MAX + 16];
    snprintf(env, sizeof env, "AUDITWATCH_DB=%s", w.db);
    cw_result r = cw_run(&w, (const char *[]){"trace", "req-3", NULL},
                         (const char *[]){env, NULL});
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "ev-3"), "%s", r.out);
    cw_result_free(&r);
}
