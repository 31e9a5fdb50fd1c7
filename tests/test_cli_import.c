/* test_cli_import.c -- `auditwatch import-calls`: NDJSON access logs become
 * observed calls; bad lines are stored as rejected with their reason and
 * counted, never dropped; importing the same file again adds nothing. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <string.h>
#include <sys/stat.h>

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

TestSuite(cli_import, .init = build, .fini = cleanup, .timeout = 120);

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static const char access_log[] =
    "{\"request_id\":\"req-1\",\"status\":200,\"occurred_at\":\"2026-05-21T12:00:01.3Z\"}\n"
    "{\"request_id\":\"req-imp\",\"status\":\"502\",\"occurred_at\":\"2026-05-21T12:00:05Z\","
    "\"resource\":\"resource://api\"}\n"
    "GET /api 200 - not json\n"
    "\n"
    "{\"status\":200,\"occurred_at\":\"2026-05-21T12:00:06Z\"}\n";

/* A status figure of the index, from `status -f csv` ("index,calls,4"). */
static bool has_figure(const char *csv_line)
{
    cw_result r = cw_run(&w, ARGS("status", "--db", w.db, "-f", "csv"), NULL);
    bool found = strstr(r.out, csv_line) != NULL;
    cw_result_free(&r);
    return found;
}

Test(cli_import, indexes_good_lines_and_rejects_bad_ones_with_their_reason)
{
    char log[PATH_MAX];
    aw_test_write_file(aw_test_path(w.dir, "access.log", log), access_log,
                       0644);
    cw_result r = cw_run(&w, ARGS("import-calls", log, "--db", w.db), NULL);
    cr_expect_eq(r.status, 1, "some lines were rejected: %s", r.err);
    cr_expect_str_empty(r.out);
    cr_expect(
        strstr(r.err,
               "5 lines, 2 calls indexed, 0 already in the index (0 of them "
               "rejected then), 2 rejected, "
               "1 blank (not_json: 1, missing_field: 1)"),
        "%s", r.err);
    cw_result_free(&r);

    cr_expect(has_figure("index,calls,4\r\n"));
    cr_expect(has_figure("index,rejected,4\r\n"));
    cr_expect(has_figure("rejected_by_reason,missing_field,1\r\n"));

    /* The imported call joins the request's story. */
    r = cw_run(&w, ARGS("trace", "req-1", "--db", w.db, "-f", "json"), NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cJSON *rows = cw_json_lines(r.out), *row;
    int calls = 0, imported = 0;
    char stream[PATH_MAX + 16];
    snprintf(stream, sizeof stream, "import:%s", log);
    cJSON_ArrayForEach(row, rows)
    {
        const cJSON *aw = cJSON_GetObjectItemCaseSensitive(row, "auditwatch");
        if (strcmp(cw_str(aw, "source"), "call") != 0)
            continue;
        calls++;
        if (strcmp(cw_str(aw, "stream"), stream) == 0) {
            imported++;
            cr_expect_str_eq(cw_str(aw, "time"), "2026-05-21T12:00:01.3Z");
        }
    }
    cr_expect_eq(calls, 2, "%s", r.out);
    cr_expect_eq(imported, 1, "named after its absolute path: %s", r.out);
    cJSON_Delete(rows);
    cw_result_free(&r);
}

/* Nothing is stored twice, and the lines rejected the first time still
 * say so: a script rerunning an import is not told all is well. */
Test(cli_import, importing_the_same_file_again_adds_nothing)
{
    char log[PATH_MAX];
    aw_test_write_file(aw_test_path(w.dir, "access.log", log), access_log,
                       0644);
    cw_result first = cw_run(&w, ARGS("import-calls", log, "--db", w.db), NULL);
    cw_result again = cw_run(&w, ARGS("import-calls", log, "--db", w.db), NULL);
    cr_expect_eq(first.status, 1);
    cr_expect_eq(again.status, 1, "%s", again.err);
    cr_expect(strstr(again.err, "0 calls indexed, 4 already in the index (2 "
                                "of them rejected then), 0 rejected"),
              "%s", again.err);
    cr_expect(has_figure("index,calls,4\r\n"));
    cr_expect(has_figure("index,rejected,4\r\n"));
    cw_result_free(&first);
    cw_result_free(&again);
}

/* An import brings no audit, so it cannot move the index's clock: a call
 * the index's audit has passed (plus the grace) is judged at once, and one
 * beyond it waits; the summary says which, so an empty alert list is not
 * taken for a clean bill. The world's audit reaches +2000 s. */
Test(cli_import, says_which_calls_the_index_could_not_judge_yet)
{
    static const char calls[] = "{\"request_id\":\"req-stale\",\"status\":200,"
                                "\"occurred_at\":\"2026-05-21T12:10:00Z\"}\n"
                                "{\"request_id\":\"req-new\",\"status\":200,"
                                "\"occurred_at\":\"2026-05-21T12:40:00Z\"}\n";
    char log[PATH_MAX], waiting[PATH_MAX + 128];
    aw_test_write_file(aw_test_path(w.dir, "calls.log", log), calls, 0644);
    cw_result r = cw_run(&w, ARGS("import-calls", log, "--db", w.db), NULL);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.err, "2 calls indexed"), "%s", r.err);
    cr_expect(strstr(r.err, "; 1 alert raised\n"), "%s", r.err);
    snprintf(waiting, sizeof waiting,
             "1 call of %s is not judged yet: the index's audit reaches "
             "2026-05-21T12:33:20Z",
             log);
    cr_expect(strstr(r.err, waiting), "%s", r.err);
    cw_result_free(&r);

    r = cw_run(&w,
               ARGS("alerts", "--db", w.db, "--kind", "call_without_audit",
                    "-f", "csv"),
               NULL);
    cr_expect(strstr(r.out, "req-stale"), "%s", r.out);
    cr_expect_null(strstr(r.out, "req-new"), "%s", r.out);
    cw_result_free(&r);
}

/* Two hosts' access.log, the same lines at the same places and times but
 * for other requests: each is its own stream, nothing is taken for the
 * other's line. */
Test(cli_import, two_files_of_one_name_in_two_directories_stay_apart)
{
    char a_dir[PATH_MAX], b_dir[PATH_MAX], a[PATH_MAX], b[PATH_MAX];
    aw_test_path(w.dir, "gw-a", a_dir);
    aw_test_path(w.dir, "gw-b", b_dir);
    cr_assert(mkdir(a_dir, 0755) == 0 && mkdir(b_dir, 0755) == 0);
    aw_test_write_file(aw_test_path(a_dir, "access.log", a),
                       "{\"request_id\":\"req-a\",\"status\":200,"
                       "\"occurred_at\":\"2026-05-21T12:00:01Z\"}\n",
                       0644);
    aw_test_write_file(aw_test_path(b_dir, "access.log", b),
                       "{\"request_id\":\"req-b\",\"status\":200,"
                       "\"occurred_at\":\"2026-05-21T12:00:01Z\"}\n",
                       0644);
    cw_result first = cw_run(&w, ARGS("import-calls", a, "--db", w.db), NULL);
    cw_result second = cw_run(&w, ARGS("import-calls", b, "--db", w.db), NULL);
    cr_expect_eq(first.status, 0, "%s", first.err);
    cr_expect_eq(second.status, 0, "%s", second.err);
    cr_expect(strstr(second.err, "1 calls indexed, 0 already in the index"),
              "%s", second.err);
    cw_result_free(&first);
    cw_result_free(&second);
    cw_result trace = cw_run(&w, ARGS("trace", "req-b", "--db", w.db), NULL);
    cr_expect_eq(trace.status, 0, "req-b was indexed: %s", trace.err);
    cw_result_free(&trace);
}

/* `import-calls -` with the file on its stdin. */
static int import_stdin(const char *file, const char *tag, char **err)
{
    aw_test_proc p;
    const char *args[] = {
        "-c",      "exec \"$0\" import-calls - --db \"$1\" < \"$2\"",
        AW_BINARY, w.db,
        file,      NULL};
    aw_test_spawn_program(&p, "/bin/sh", w.dir, tag, args, NULL);
    cr_assert(aw_test_wait(&p, 60000), "import-calls - did not finish");
    *err = aw_test_read_file(p.err_path, NULL);
    return p.status;
}

/* stdin has no name: the same data piped twice is stored once, and other
 * data piped later is not taken for it. */
Test(cli_import, stdin_is_told_apart_by_its_lines)
{
    char one[PATH_MAX], other[PATH_MAX], *err;
    aw_test_write_file(aw_test_path(w.dir, "one.ndjson", one),
                       "{\"request_id\":\"req-1\",\"status\":200,"
                       "\"occurred_at\":\"2026-05-21T12:00:01Z\"}\n",
                       0644);
    aw_test_write_file(aw_test_path(w.dir, "other.ndjson", other),
                       "{\"request_id\":\"req-2\",\"status\":200,"
                       "\"occurred_at\":\"2026-05-21T12:00:01Z\"}\n",
                       0644);
    cr_expect_eq(import_stdin(one, "stdin-1", &err), 0, "%s", err);
    cr_expect(err && strstr(err, "-: 1 lines, 1 calls indexed"), "%s", err);
    free(err);
    cr_expect_eq(import_stdin(one, "stdin-2", &err), 0, "%s", err);
    cr_expect(err && strstr(err, "0 calls indexed, 1 already in the index"),
              "the same data again: %s", err);
    free(err);
    cr_expect_eq(import_stdin(other, "stdin-3", &err), 0, "%s", err);
    cr_expect(err && strstr(err, "1 calls indexed, 0 already in the index"),
              "other data at the same line and time: %s", err);
    free(err);
}

Test(cli_import, maps_other_field_names_and_epoch_seconds)
{
    char log[PATH_MAX];
    aw_test_write_file(
        aw_test_path(w.dir, "nginx.json", log),
        "{\"rid\":\"req-3\",\"code\":403,\"ts\":1779364820.25}\n", 0644);
    cw_result r =
        cw_run(&w,
               ARGS("import-calls", log, "--db", w.db, "--request-id-field",
                    "rid", "--status-field", "code", "--time-field", "ts"),
               NULL);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cw_result_free(&r);
    r = cw_run(&w, ARGS("trace", "req-3", "--db", w.db, "-f", "csv"), NULL);
    cr_expect(strstr(r.out, "2026-05-21T12:00:20.25Z,call,"), "%s", r.out);
    cr_expect(
        strstr(r.out, "\"\"request_id\"\":\"\"req-3\"\",\"\"status\"\":403,"),
        "%s", r.out);
    cw_result_free(&r);
}

Test(cli_import, shows_progress_on_stderr_when_asked)
{
    char log[PATH_MAX];
    aw_test_write_file(aw_test_path(w.dir, "access.log", log), access_log,
                       0644);
    cw_result r =
        cw_run(&w, ARGS("import-calls", log, "--db", w.db, "--progress"), NULL);
    /* stderr is a file here: plain lines a log can keep, no escapes */
    cr_expect(strstr(r.err, "import-calls: 5 lines") ||
                  strstr(r.err, "import-calls: 1 lines"),
              "%s", r.err);
    cr_expect_null(strchr(r.err, '\r'), "%s", r.err);
    cr_expect_null(strchr(r.err, '\033'), "%s", r.err);
    cw_result_free(&r);
}

Test(cli_import, bad_arguments_exit_2_and_an_unreadable_file_3)
{
    char absent[PATH_MAX];
    cw_result none = cw_run(&w, ARGS("import-calls", "--db", w.db), NULL);
    cw_result two =
        cw_run(&w, ARGS("import-calls", "a.log", "b.log", "--db", w.db), NULL);
    cw_result empty = cw_run(
        &w, ARGS("import-calls", "a.log", "--status-field", "", "--db", w.db),
        NULL);
    cw_result missing =
        cw_run(&w,
               ARGS("import-calls", aw_test_path(w.dir, "absent.log", absent),
                    "--db", w.db),
               NULL);
    cr_expect_eq(none.status, 2);
    cr_expect(strstr(none.err, "FILE"), "%s", none.err);
    cr_expect_eq(two.status, 2);
    cr_expect_eq(empty.status, 2);
    cr_expect_eq(missing.status, 3);
    cr_expect(strstr(missing.err, "absent.log"), "%s", missing.err);
    cw_result_free(&none);
    cw_result_free(&two);
    cw_result_free(&empty);
    cw_result_free(&missing);
}

typedef struct daemon_view {
    const char *db;
    const char *kind;
    const char *request_id;
} daemon_view;

static int count_alert(const aw_alert *a, void *ud)
{
    (void)a;
    ++*(size_t *)ud;
    return 0;
}

static bool daemon_alerted(void *ud)
{
    const daemon_view *v = ud;
    aw_store *store;
    aw_error err = {0};
    size_t n = 0;
    if (aw_store_open(v->db, AW_STORE_READONLY, &store, &err) != AW_OK)
        return false;
    aw_store_query_alerts(
        store, &(aw_alert_filter){.kind = v->kind, .request_id = v->request_id},
        count_alert, &n, &err);
    aw_store_close(store);
    return n > 0;
}

/* With a daemon on the index, import-calls --redis hands the calls to it:
 * the daemon indexes them, judges them on its clock and keeps the line it
 * cannot read as rejected. The daemon requires signed calls here: the call
 * is indexed only because import-calls signed it under the same key. */
Test(cli_import, with_redis_the_running_daemon_indexes_judges_and_alerts)
{
    aw_test_redis redis;
    aw_test_proc daemon;
    char url[64], db[PATH_MAX], log[PATH_MAX], key[PATH_MAX], when[40],
        line[256];
    aw_test_redis_start(&redis, false);
    aw_test_redis_url(&redis, url);
    aw_test_path(w.dir, "daemon.db", db);
    aw_test_key_file(w.dir, "calls.key", key);
    const char *daemon_args[] = {"--grace-missing", "1",
                                 "--calls-hmac-key-file", key, NULL};
    aw_test_daemon_start(&daemon, w.dir, "import-daemon", &redis, db,
                         daemon_args, NULL);
    aw_time_format(aw_test_now_ms() * 1000000LL - 600LL * 1000000000LL, when,
                   sizeof when);
    snprintf(line, sizeof line,
             "{\"request_id\":\"req-around\",\"status\":200,"
             "\"occurred_at\":\"%s\"}\nnot json\n",
             when);
    aw_test_write_file(aw_test_path(w.dir, "live.log", log), line, 0644);

    cw_result r = cw_run(
        &w,
        ARGS("import-calls", log, "--redis", url, "--calls-hmac-key-file", key),
        NULL);
    cr_expect_eq(r.status, 1, "one line could not be read: %s", r.err);
    cr_expect(strstr(r.err, "2 lines, 1 calls published to auditwatch.calls, "
                            "1 unreadable") &&
                  strstr(r.err, "not_json: 1"),
              "%s", r.err);
    cw_result_free(&r);

    daemon_view v = {db, "call_without_audit", "req-around"};
    cr_expect(aw_test_wait_for(daemon_alerted, &v, 15000),
              "the daemon did not alert on the imported call");
    aw_test_daemon_stop(&daemon, 5000);
    cr_expect_eq(aw_test_sql_int(db, "SELECT count(*) FROM rejected"), 1,
                 "the unreadable line is kept");
    aw_test_redis_destroy(&redis);
}
