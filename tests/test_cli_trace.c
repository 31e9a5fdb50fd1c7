/* test_cli_trace.c -- `auditwatch trace REQUEST_ID` on an index of
 * realistic traffic (tests/support/cli_world.h): what an investigator sees
 * for one request, in every output format. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <string.h>

#include "tests/support/cli_world.h"

static cli_world w;

static void build(void) { cw_build(&w, true); }
static void cleanup(void) { cw_cleanup(&w); }

TestSuite(cli_trace, .init = build, .fini = cleanup, .timeout = 120);

static cJSON *trace_json(const char *request_id, cw_result *r) {
    *r = cw_run(&w, (const char *[]){"trace", request_id, "--db", w.db, "--format", "json", NULL},
                NULL);
    cr_assert_eq(r->status, 0, "trace %s: %s", request_id, r->err);
    return cw_json_lines(r->out);
}

Test(cli_trace, shows_revocation_decision_call_and_alert_of_a_request_in_time_order) {
    cw_result r;
    cJSON *rows = trace_json("req-4", &r);
    const char *want[][3] = {
        {"revocation", "revoke", "authority_record:ar-1"},
        {"audit", "token_exchange", "authority_record:ar-1 agent_session:as-4"},
        {"alert", "access_after_revocation", "authority_record:ar-1"},
        {"audit", "gateway_resource_request", "authority_record:ar-1 agent_session:as-4"},
    };
    cr_assert_eq(cJSON_GetArraySize(rows), 4, "%s", r.out);
    int64_t prev = 0;
    for (int i = 0; i < 4; i++) {
        cJSON *row = cJSON_GetArrayItem(rows, i);
        cr_expect_str_eq(cw_str(row, "source"), want[i][0]);
        cr_expect_str_eq(cw_str(row, "type"), want[i][1]);
        cr_expect_str_eq(cw_str(row, "anchors"), want[i][2]);
        int64_t t;
        const char *time = cw_str(row, "time");
        cr_assert_eq(aw_time_parse_rfc3339(time, strlen(time), &t, NULL), AW_OK, "%s", time);
        cr_expect_leq(prev, t, "out of time order: %s", r.out);
        prev = t;
    }
    cJSON *gw = cJSON_GetArrayItem(rows, 3);
    cr_expect_str_eq(cw_str(gw, "decision"), "allow");
    cr_expect_str_eq(cw_str(gw, "status"), "executed");
    cr_expect_str_eq(cw_str(gw, "resource"), "resource://api");
    cr_expect(strstr(cw_str(gw, "detail"), "upstream_status=200"), "%s", cw_str(gw, "detail"));
    cr_expect(strstr(cw_str(cJSON_GetArrayItem(rows, 2), "detail"), "severity=critical"));
    cJSON_Delete(rows);
    cw_result_free(&r);
}

Test(cli_trace, decodes_policies_diagnostics_and_the_whole_delegation_chain) {
    cw_result r;
    cJSON *rows = trace_json("req-1", &r);
    cJSON *exchange = cJSON_GetArrayItem(rows, 0);
    cr_assert_str_eq(cw_str(exchange, "id"), "ev-1", "%s", r.out);
    cr_expect_str_eq(cw_str(exchange, "anchors"),
                     "authority_record:ar-1 agent_session:as-1 delegation_edge:e-1 "
                     "agent_session:as-0 delegation_edge:e-0");
    cr_expect_str_eq(cw_str(exchange, "status"), "complete");
    cJSON *policies = cJSON_GetObjectItemCaseSensitive(exchange, "policies");
    cJSON *diagnostics = cJSON_GetObjectItemCaseSensitive(exchange, "diagnostics");
    cr_assert(cJSON_IsArray(policies) && cJSON_IsArray(diagnostics), "%s", r.out);
    cr_expect_str_eq(cw_str(cJSON_GetArrayItem(policies, 0), "id"), "baseline-resource-scope");
    cr_expect_str_eq(cw_str(cJSON_GetArrayItem(diagnostics, 0), "code"), "scope_allowed");
    cr_expect(strstr(cw_str(exchange, "detail"), "signed"), "%s", cw_str(exchange, "detail"));
    /* The observed upstream call and the later revocation of ar-1 belong to
     * the story too; the Gateway event has no policies (JSON null). */
    cr_assert_eq(cJSON_GetArraySize(rows), 4, "%s", r.out);
    cr_expect(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(rows, 1), "policies")));
    cr_expect_str_eq(cw_str(cJSON_GetArrayItem(rows, 2), "source"), "call");
    cr_expect_str_eq(cw_str(cJSON_GetArrayItem(rows, 2), "status"), "200");
    cr_expect_str_eq(cw_str(cJSON_GetArrayItem(rows, 3), "source"), "revocation");
    cJSON_Delete(rows);
    cw_result_free(&r);
}

Test(cli_trace, shows_a_resolved_alert_and_the_late_decision_that_resolved_it) {
    cw_result r;
    cJSON *rows = trace_json("req-7", &r);
    cr_assert_eq(cJSON_GetArraySize(rows), 3, "%s", r.out);
    cr_expect_str_eq(cw_str(cJSON_GetArrayItem(rows, 0), "id"), "ev-7");
    cr_expect_str_eq(cw_str(cJSON_GetArrayItem(rows, 1), "id"), "gw-7");
    cJSON *alert = cJSON_GetArrayItem(rows, 2);
    cr_expect_str_eq(cw_str(alert, "type"), "decision_missing");
    cr_expect_str_eq(cw_str(alert, "status"), "resolved");
    cJSON_Delete(rows);
    cw_result_free(&r);
}

Test(cli_trace, unknown_request_id_exits_1_with_nothing_on_stdout) {
    cw_result r = cw_run(&w, (const char *[]){"trace", "req-nobody", "--db", w.db, NULL}, NULL);
    cr_expect_eq(r.status, 1);
    cr_expect_str_empty(r.out);
    cr_expect(strstr(r.err, "req-nobody"), "%s", r.err);
    cw_result_free(&r);
}

Test(cli_trace, csv_quotes_the_json_cells_per_rfc_4180) {
    cw_result r = cw_run(&w, (const char *[]){"trace", "req-1", "--db", w.db, "-f", "csv", NULL},
                         NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    const char *header = "time,source,id,zone,type,decision,status,resource,anchors,"
                         "policies,diagnostics,detail\r\n";
    cr_expect(strncmp(r.out, header, strlen(header)) == 0, "%s", r.out);
    cr_expect(strstr(r.out, ",\"[{\"\"id\"\":\"\"baseline-resource-scope\"\"}]\","), "%s", r.out);
    cr_expect_eq(cw_lines(r.out), 5);
    cw_result_free(&r);
}

Test(cli_trace, table_aligns_every_column_under_its_header) {
    cw_result r = cw_run(&w, (const char *[]){"trace", "req-4", "--db", w.db, NULL}, NULL);
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

Test(cli_trace, needs_exactly_one_request_id) {
    cw_result none = cw_run(&w, (const char *[]){"trace", "--db", w.db, NULL}, NULL);
    cw_result two = cw_run(&w, (const char *[]){"trace", "req-1", "req-2", "--db", w.db, NULL},
                           NULL);
    cr_expect_eq(none.status, 2);
    cr_expect_eq(two.status, 2);
    cr_expect_eq(cw_lines(none.err), 1, "%s", none.err);
    cr_expect(strstr(two.err, "req-2"), "%s", two.err);
    cw_result_free(&none);
    cw_result_free(&two);
}

Test(cli_trace, missing_index_is_an_operational_failure) {
    char path[PATH_MAX];
    cw_result r = cw_run(&w, (const char *[]){"trace", "req-1", "--db",
                                              aw_test_path(w.dir, "absent.db", path), NULL},
                         NULL);
    cr_expect_eq(r.status, 3);
    cr_expect(strstr(r.err, "absent.db"), "%s", r.err);
    cw_result_free(&r);
}

Test(cli_trace, finds_the_index_through_AUDITWATCH_DB) {
    char env[PATH_MAX + 16];
    snprintf(env, sizeof env, "AUDITWATCH_DB=%s", w.db);
    cw_result r = cw_run(&w, (const char *[]){"trace", "req-3", NULL}, (const char *[]){env, NULL});
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "ev-3"), "%s", r.out);
    cw_result_free(&r);
}
