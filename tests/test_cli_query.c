/* test_cli_query.c -- `auditwatch query`: every filter, stable paging with
 * the cursor, relative times, empty results and bad arguments, on an index
 * of realistic traffic (tests/support/cli_world.h). */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

TestSuite(cli_query, .init = build, .fini = cleanup, .timeout = 120);

#define MAX_ARGS 24

/* Runs query --db W --format json plus args; returns the event ids found,
 * space-separated, in output order (heap), and the exit status. */
static char *query_ids(int *status, const char *const *args)
{
    const char *argv[MAX_ARGS] = {"query", "--db", w.db, "--format", "json"};
    size_t n = 5;
    for (; *args; args++) {
        cr_assert_lt(n + 1, MAX_ARGS);
        argv[n++] = *args;
    }
    argv[n] = NULL;
    cw_result r = cw_run(&w, argv, NULL);
    cJSON *rows = cw_json_lines(r.out);
    char *ids = calloc(1, strlen(r.out) + 1);
    cJSON *row;
    cJSON_ArrayForEach(row, rows)
    {
        if (*ids)
            strcat(ids, " ");
        strcat(ids, cw_str(row, "id"));
    }
    *status = r.status;
    cJSON_Delete(rows);
    cw_result_free(&r);
    return ids;
}

static void expect_ids(const char *want, const char *const *args)
{
    int status;
    char *ids = query_ids(&status, args);
    cr_expect_eq(status, 0);
    cr_expect_str_eq(ids, want);
    free(ids);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

Test(cli_query, filters_by_zone)
{
    expect_ids("ev-6 gw-6", ARGS("--zone", "zone-2"));
}

Test(cli_query, filters_by_decision)
{
    expect_ids("ev-3 ev-an", ARGS("--decision", "deny"));
}

Test(cli_query, filters_by_any_of_a_list_of_event_types)
{
    expect_ids("ev-an", ARGS("--event-type", "replay_detected"));
    expect_ids("ev-6 gw-6",
               ARGS("--event-type", "token_exchange,gateway_resource_request",
                    "--zone", "zone-2"));
    expect_ids("ev-3 ev-an",
               ARGS("--event-type", "replay_detected", "--event-type",
                    "token_exchange", "--decision", "deny"));
}

Test(cli_query, filters_by_request_id)
{
    expect_ids("ev-1 gw-1", ARGS("--request-id", "req-1"));
}

Test(cli_query,
     filters_by_session_agent_session_and_edge_including_chain_elements)
{
    expect_ids("ev-1 gw-1 ev-4 gw-4", ARGS("--session", "ar-1"));
    expect_ids("ev-4 gw-4", ARGS("--agent-session", "as-4"));
    /* as-0 and e-0 appear only inside ev-1's delegation chain. */
    expect_ids("ev-1", ARGS("--agent-session", "as-0"));
    expect_ids("ev-1", ARGS("--edge", "e-0"));
}

Test(cli_query, filters_by_resource_and_application)
{
    expect_ids("ev-3", ARGS("--resource", "resource://billing"));
    expect_ids("ev-6 gw-6", ARGS("--application", "app-3"));
    expect_ids("ev-6", ARGS("--application", "app-3", "--event-type",
                            "token_exchange"));
}

Test(cli_query, filters_by_an_absolute_time_window_with_until_excluded)
{
    expect_ids("evf-000 gwf-000 evf-001 gwf-001",
               ARGS("--since", "2026-05-21T12:03:20Z", "--until",
                    "2026-05-21T14:03:22+02:00"));
}

Test(cli_query, accepts_times_relative_to_now)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t wall_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int64_t recent_ms = wall_ms - 30 * 60 * 1000;
    cw_add_exchange(&w, "ev-recent", "req-recent", recent_ms * 1000000,
                    recent_ms);

    expect_ids("ev-recent", ARGS("--since", "-1h"));
    expect_ids("ev-recent", ARGS("--since", "-2h", "--until", "now"));
    expect_ids("ev-recent", ARGS("--since", "-3600s", "--session", "ar-extra"));
    int status;
    char *ids = query_ids(&status, ARGS("--since", "-15m"));
    cr_expect_eq(status, 1);
    cr_expect_str_empty(ids);
    free(ids);
    ids = query_ids(&status,
                    ARGS("--until", "-1h", "--request-id", "req-recent"));
    cr_expect_eq(status, 1);
    free(ids);
    expect_ids("ev-recent", ARGS("--until", "-10m", "--since", "-1d",
                                 "--request-id", "req-recent"));
}

Test(cli_query, pages_with_the_cursor_through_every_event_once_in_order)
{
    char cursor[64] = "";
    size_t seen = 0, pages = 0;
    int64_t prev_t = 0;
    char *all = calloc(1, 64 * 1024);
    for (;;) {
        const char *argv[] = {
            "query", "--db",    w.db, "--format",
            "json",  "--limit", "50", cursor[0] ? "--cursor" : NULL,
            cursor,  NULL};
        cw_result r = cw_run(&w, argv, NULL);
        cr_assert_eq(r.status, 0, "%s", r.err);
        cJSON *rows = cw_json_lines(r.out), *row;
        cr_assert_leq(cJSON_GetArraySize(rows), 50);
        cJSON_ArrayForEach(row, rows)
        {
            const char *time = cw_str(row, "occurred_at");
            char key[64];
            int64_t t;
            cr_assert_eq(aw_time_parse_rfc3339(time, strlen(time), &t, NULL),
                         AW_OK);
            cr_expect_leq(prev_t, t, "page %zu goes back in time", pages);
            prev_t = t;
            snprintf(key, sizeof key, " %s ", cw_str(row, "id"));
            cr_expect_null(strstr(all, key), "%s seen twice", key);
            strcat(all, key + 1);
            strcat(all, " ");
            seen++;
        }
        pages++;
        cJSON_Delete(rows);
        const char *next = strstr(r.err, "next-cursor: ");
        if (!next) {
            cw_result_free(&r);
            break;
        }
        cr_assert_eq(sscanf(next, "next-cursor: %63s", cursor), 1);
        cw_result_free(&r);
    }
    free(all);
    cr_expect_eq(seen, CW_EVENTS);
    cr_expect_eq(pages, (CW_EVENTS + 49) / 50);
}

Test(cli_query, an_empty_result_exits_1_with_nothing_on_stdout)
{
    cw_result r =
        cw_run(&w, ARGS("query", "--db", w.db, "--zone", "zone-none"), NULL);
    cr_expect_eq(r.status, 1);
    cr_expect_str_empty(r.out);
    cw_result_free(&r);
}

Test(cli_query, csv_and_table_carry_the_same_rows)
{
    cw_result csv = cw_run(
        &w, ARGS("query", "--db", w.db, "-f", "csv", "--zone", "zone-2"), NULL);
    cw_result table =
        cw_run(&w, ARGS("query", "--db", w.db, "--zone", "zone-2"), NULL);
    cr_assert_eq(csv.status, 0);
    cr_assert_eq(table.status, 0);
    cr_expect_eq(cw_lines(csv.out), 3);
    cr_expect_eq(cw_lines(table.out), 3);
    cr_expect(
        strstr(
            csv.out,
            "\r\nev-6,2026-05-21T12:02:00Z,zone-2,token_exchange,req-6,allow,"),
        "%s", csv.out);
    cr_expect(strstr(table.out, "ev-6") && strstr(table.out, "gw-6"), "%s",
              table.out);
    cw_result_free(&csv);
    cw_result_free(&table);
}

Test(cli_query, bad_arguments_exit_2_with_one_line_naming_the_problem)
{
    const char *const *cases[] = {
        ARGS("query", "--db", w.db, "--since", "yesterday"),
        ARGS("query", "--db", w.db, "--since", "-5x"),
        ARGS("query", "--db", w.db, "--limit", "0"),
        ARGS("query", "--db", w.db, "--limit", "ten"),
        ARGS("query", "--db", w.db, "--cursor", "abc"),
        ARGS("query", "--db", w.db, "--session", "ar-1", "--edge", "e-1"),
        ARGS("query", "--db", w.db, "--format", "xml"),
        ARGS("query", "--db", w.db, "--since", "2026-05-22T00:00:00Z",
             "--until", "2026-05-21T00:00:00Z"),
        ARGS("query", "--db", w.db, "--no-such-option"),
        ARGS("query", "--db", w.db, "stray"),
        ARGS("query", "--db", w.db, "--zone"),
    };
    const char *mention[] = {"yesterday", "-5x",      "--limit",
                             "ten",       "--cursor", "only one",
                             "--format",  "--since",  "--no-such-option",
                             "stray",     "--zone"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cw_result r = cw_run(&w, cases[i], NULL);
        cr_expect_eq(r.status, 2, "case %zu: %s", i, r.err);
        cr_expect_eq(cw_lines(r.err), 1, "case %zu: %s", i, r.err);
        cr_expect(strstr(r.err, mention[i]), "case %zu: %s", i, r.err);
        cr_expect_str_empty(r.out);
        cw_result_free(&r);
    }
}

Test(cli_query, each_format_carries_hostile_text_safely)
{
    cw_result json = cw_run(
        &w,
        ARGS("query", "--db", w.db, "--request-id", "req-odd", "-f", "json"),
        NULL);
    cw_result csv = cw_run(
        &w, ARGS("query", "--db", w.db, "--request-id", "req-odd", "-f", "csv"),
        NULL);
    cw_result table = cw_run(
        &w, ARGS("query", "--db", w.db, "--request-id", "req-odd"), NULL);
    cr_assert_eq(json.status + csv.status + table.status, 0);

    /* JSON: escaped, and parses back to the very same text. */
    cJSON *rows = cw_json_lines(json.out);
    cJSON *meta = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(rows, 0),
                                                   "metadata_json");
    cr_expect_str_eq(cw_str(meta, "resource"), CW_ODD_RESOURCE);
    cJSON_Delete(rows);
    /* CSV: quoted, quotes doubled, the newline kept inside the quotes. */
    cr_expect(
        strstr(csv.out, ",\"res \"\"q\"\", a\nb \\ \x1b[31m h\xc3\xa9llo\","),
        "%s", csv.out);
    /* Table: control bytes shown, never sent to the terminal. */
    cr_expect(strstr(table.out, "res \"q\", a\\nb \\ \\x1b[31m h\xc3\xa9llo"),
              "%s", table.out);
    cr_expect_null(strchr(table.out, '\x1b'));
    cr_expect_eq(cw_lines(table.out), 2);
    cw_result_free(&json);
    cw_result_free(&csv);
    cw_result_free(&table);
}

/* Members of object, in order, space-separated (heap). */
static char *keys_of(const cJSON *object)
{
    char *keys = calloc(1, 4096);
    const cJSON *item;
    cJSON_ArrayForEach(item, object)
    {
        if (*keys)
            strcat(keys, " ");
        strcat(keys, item->string);
    }
    return keys;
}

Test(
    cli_query,
    machine_output_uses_caracal_field_names_with_anchors_and_metadata_as_objects)
{
    cw_result r = cw_run(
        &w, ARGS("query", "--db", w.db, "--request-id", "req-1", "-f", "json"),
        NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cJSON *rows = cw_json_lines(r.out);
    cJSON *ev = cJSON_GetArrayItem(rows, 0);
    cr_assert_str_eq(cw_str(ev, "id"), "ev-1", "%s", r.out);
    /* Caracal's own names, as its producers write `data`. */
    char *keys = keys_of(ev);
    cr_expect_str_eq(
        keys, "id zone_id event_type request_id decision evaluation_status "
              "determining_policies_json diagnostics_json metadata_json "
              "occurred_at anchors auditwatch");
    free(keys);
    cr_expect_str_eq(cw_str(ev, "event_type"), "token_exchange");
    cr_expect_str_eq(cw_str(ev, "request_id"), "req-1");
    cr_expect_str_eq(cw_str(ev, "zone_id"), "zone-1");
    cr_expect_str_eq(cw_str(ev, "decision"), "allow");
    cr_expect_str_eq(cw_str(ev, "evaluation_status"), "complete");
    cr_expect_str_eq(cw_str(ev, "occurred_at"), "2026-05-21T12:00:01Z");
    cr_expect(cJSON_IsArray(
        cJSON_GetObjectItemCaseSensitive(ev, "determining_policies_json")));
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(ev, "metadata_json");
    cr_assert(cJSON_IsObject(meta), "%s", r.out);
    cr_expect_str_eq(cw_str(meta, "application_id"), "app-1");
    /* The anchors, one object, the chain an array of objects. */
    const cJSON *anchors = cJSON_GetObjectItemCaseSensitive(ev, "anchors");
    cr_assert(cJSON_IsObject(anchors), "%s", r.out);
    cr_expect_str_eq(cw_str(anchors, "session_id"), "ar-1");
    cr_expect_str_eq(cw_str(anchors, "agent_session_id"), "as-1");
    cr_expect_str_eq(cw_str(anchors, "delegation_edge_id"), "e-1");
    const cJSON *chain =
        cJSON_GetObjectItemCaseSensitive(anchors, "delegation_chain");
    cr_assert(cJSON_IsArray(chain), "%s", r.out);
    cr_expect_str_eq(cw_str(cJSON_GetArrayItem(chain, 0), "delegation_edge_id"),
                     "e-0");
    /* auditwatch's own keys, apart. */
    const cJSON *aw = cJSON_GetObjectItemCaseSensitive(ev, "auditwatch");
    cr_assert(cJSON_IsObject(aw), "%s", r.out);
    cr_expect_str_eq(cw_str(aw, "stream"), "caracal.audit.events");
    cr_expect(*cw_str(aw, "entry_id"));
    cr_expect(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(aw, "signed")));
    cr_expect(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(aw, "alerts")));
    cJSON_Delete(rows);
    cw_result_free(&r);
}

Test(cli_query, machine_output_lists_the_alerts_of_the_request)
{
    cw_result r = cw_run(
        &w, ARGS("query", "--db", w.db, "--request-id", "req-4", "-f", "json"),
        NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cJSON *rows = cw_json_lines(r.out);
    const cJSON *aw = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(rows, 0), "auditwatch");
    const cJSON *alerts = cJSON_GetObjectItemCaseSensitive(aw, "alerts");
    cr_assert_eq(cJSON_GetArraySize(alerts), 1, "%s", r.out);
    cr_expect_str_eq(cw_str(cJSON_GetArrayItem(alerts, 0), "kind"),
                     "access_after_revocation");
    cr_expect_str_eq(cw_str(cJSON_GetArrayItem(alerts, 0), "severity"),
                     "critical");
    cJSON_Delete(rows);
    cw_result_free(&r);
}

Test(cli_query, csv_headers_use_caracal_field_names)
{
    cw_result r = cw_run(
        &w, ARGS("query", "--db", w.db, "--request-id", "req-1", "-f", "csv"),
        NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    const char *header =
        "id,occurred_at,zone_id,event_type,request_id,decision,"
        "evaluation_status,policy_set_id,policy_set_version_id,manifest_sha,"
        "anchors.session_id,anchors.agent_session_id,anchors.delegation_edge_id,"
        "anchors.delegation_chain,metadata_json.application_id,"
        "metadata_json.resource,metadata_json,determining_policies_json,"
        "diagnostics_json,auditwatch.stream,auditwatch.entry_id,"
        "auditwatch.signed,auditwatch.alerts\r\n";
    cr_expect(strncmp(r.out, header, strlen(header)) == 0, "%s", r.out);
    cr_expect(
        strstr(
            r.out,
            "\r\nev-1,2026-05-21T12:00:01Z,zone-1,token_exchange,req-1,allow,"
            "complete,,,,ar-1,as-1,e-1,"),
        "%s", r.out);
    cw_result_free(&r);
}
