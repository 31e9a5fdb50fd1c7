/* test_cli_export_replay.c -- `auditwatch export` and `auditwatch replay`:
 * a window exported to a bundle and replayed into a fresh index raises the
 * same alerts; an altered bundle is refused whole; replay straight from a
 * real redis-server merges the streams, pages through XRANGE and leaves the
 * consumer groups alone. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <msgpack.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

TestSuite(cli_export_replay, .init = build, .fini = cleanup, .timeout = 180);

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define KEYS                                                                   \
    ((const char *const[]){"AUDIT_HMAC_KEY=" AW_TEST_KEY_HEX,                  \
                           "STREAMS_HMAC_KEY=" AW_TEST_KEY_HEX, NULL})

static int by_text(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "id kind state" of every alert in JSON lines, sorted, one per line. */
static char *alert_set(const char *json_lines)
{
    cJSON *rows = cw_json_lines(json_lines), *row;
    size_t n = (size_t)cJSON_GetArraySize(rows), i = 0;
    char **items = calloc(n + 1, sizeof *items), *set = calloc(1, n * 128 + 1);
    cJSON_ArrayForEach(row, rows)
    {
        items[i] = malloc(128);
        snprintf(items[i++], 128, "%s %s %s\n", cw_str(row, "id"),
                 cw_str(row, "kind"), cw_str(row, "state"));
    }
    qsort(items, n, sizeof *items, by_text);
    for (i = 0; i < n; i++) {
        strcat(set, items[i]);
        free(items[i]);
    }
    free(items);
    cJSON_Delete(rows);
    return set;
}

static void export_window(const char *since, const char *until,
                          const char *bundle)
{
    cw_result r = cw_run(&w,
                         ARGS("export", "--db", w.db, "--since", since,
                              "--until", until, "-o", bundle),
                         NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect_str_empty(r.out);
    cw_result_free(&r);
}

Test(cli_export_replay, replaying_an_exported_window_raises_the_same_alerts)
{
    char bundle[PATH_MAX], fresh[PATH_MAX];
    aw_test_path(w.dir, "window.bundle", bundle);
    aw_test_path(w.dir, "fresh.db", fresh);
    export_window("2026-05-21T12:00:00Z", "2026-05-21T13:00:00Z", bundle);

    cw_result original = cw_run(
        &w, ARGS("alerts", "--db", w.db, "--state", "all", "-f", "json"), NULL);
    cw_result replayed = cw_run(
        &w, ARGS("replay", "--bundle", bundle, "--db", fresh, "-f", "json"),
        KEYS);
    cr_assert_eq(replayed.status, 0, "%s", replayed.err);
    char *want = alert_set(original.out), *got = alert_set(replayed.out);
    cr_expect_eq(cw_lines(want), 6, "%s", want);
    cr_expect_str_eq(got, want);
    free(want);
    free(got);
    cw_result_free(&original);
    cw_result_free(&replayed);

    /* The rebuilt index holds the same evidence. */
    cw_result q =
        cw_run(&w, ARGS("trace", "req-4", "--db", fresh, "-f", "json"), NULL);
    cr_expect_eq(q.status, 0, "%s", q.err);
    cr_expect_eq(cw_lines(q.out), 4, "%s", q.out);
    cw_result_free(&q);
}

Test(cli_export_replay, exports_only_the_entries_of_the_window)
{
    char bundle[PATH_MAX], fresh[PATH_MAX];
    aw_test_path(w.dir, "narrow.bundle", bundle);
    aw_test_path(w.dir, "narrow.db", fresh);
    cw_result r =
        cw_run(&w,
               ARGS("export", "--db", w.db, "--since", "2026-05-21T12:03:20Z",
                    "--until", "2026-05-21T12:03:22Z", "-o", bundle),
               NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.err, " 4 entries"), "%s", r.err);
    cw_result_free(&r);

    r = cw_run(&w, ARGS("replay", "--bundle", bundle, "--db", fresh), KEYS);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cw_result_free(&r);
    r = cw_run(&w, ARGS("query", "--db", fresh, "-f", "csv"), NULL);
    cr_expect_eq(cw_lines(r.out), 5, "%s", r.out);
    cr_expect(strstr(r.out, "\nevf-000,") && strstr(r.out, "\ngwf-001,"), "%s",
              r.out);
    cw_result_free(&r);
}

Test(cli_export_replay, replay_can_narrow_the_window_of_a_bundle)
{
    char bundle[PATH_MAX], fresh[PATH_MAX];
    aw_test_path(w.dir, "all.bundle", bundle);
    aw_test_path(w.dir, "part.db", fresh);
    export_window("2026-05-21T12:00:00Z", "2026-05-21T13:00:00Z", bundle);
    cw_result r =
        cw_run(&w,
               ARGS("replay", "--bundle", bundle, "--db", fresh, "--since",
                    "2026-05-21T12:03:20Z", "--until", "2026-05-21T12:03:22Z"),
               NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.err, "4 entries replayed"), "%s", r.err);
    cw_result_free(&r);
}

Test(cli_export_replay, an_empty_window_makes_a_valid_empty_bundle)
{
    char bundle[PATH_MAX], fresh[PATH_MAX];
    aw_test_path(w.dir, "empty.bundle", bundle);
    aw_test_path(w.dir, "empty.db", fresh);
    export_window("2026-05-22T00:00:00Z", "2026-05-23T00:00:00Z", bundle);
    cw_result r =
        cw_run(&w, ARGS("replay", "--bundle", bundle, "--db", fresh), NULL);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect_str_empty(r.out);
    cr_expect(strstr(r.err, "0 entries replayed"), "%s", r.err);
    cw_result_free(&r);
}

/* -o - writes the bundle to stdout, for a pipe to another host. */
Test(cli_export_replay, a_bundle_written_to_stdout_replays_like_a_file)
{
    char fresh[PATH_MAX];
    aw_test_proc p;
    const char *args[] = {
        "export", "--db", w.db, "--since", "2026-05-01T00:00:00Z",
        "-o",     "-",    NULL};
    cr_assert_eq(aw_test_run(&p, w.dir, "to-stdout", args, NULL, 60000), 0);
    char *err = aw_test_read_file(p.err_path, NULL);
    cr_expect(err && strstr(err, "written to stdout"), "%s", err);
    free(err);
    aw_test_path(w.dir, "from-stdout.db", fresh);
    cw_result r =
        cw_run(&w, ARGS("replay", "--bundle", p.out_path, "--db", fresh), NULL);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.err, "entries replayed"), "%s", r.err);
    cw_result_free(&r);
}

/* A bundle is evidence handed over: from an index whose chain breaks it is
 * not written, unless asked for in so many words. */
Test(cli_export_replay, an_index_whose_chain_breaks_is_not_exported)
{
    char bundle[PATH_MAX];
    sqlite3 *db;
    aw_test_path(w.dir, "broken.bundle", bundle);
    cr_assert_eq(sqlite3_open(w.db, &db), SQLITE_OK);
    cr_assert_eq(
        sqlite3_exec(db, "DELETE FROM entries WHERE rowid = 100", 0, 0, 0),
        SQLITE_OK);
    cr_assert_eq(sqlite3_changes(db), 1);
    sqlite3_close(db);
    cw_result r = cw_run(&w,
                         ARGS("export", "--db", w.db, "--since",
                              "2026-05-01T00:00:00Z", "-o", bundle),
                         NULL);
    cr_expect_eq(r.status, 1, "%s", r.err);
    cr_expect(strstr(r.err, "hash chain breaks") &&
                  strstr(r.err, "Nothing was written"),
              "%s", r.err);
    cr_expect_neq(access(bundle, F_OK), 0, "no bundle");
    cw_result_free(&r);

    r = cw_run(&w,
               ARGS("export", "--db", w.db, "--since", "2026-05-01T00:00:00Z",
                    "-o", bundle, "--unverified"),
               NULL);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.err, "Written anyway"), "%s", r.err);
    cr_expect_eq(access(bundle, F_OK), 0, "the bundle, as asked");
    cw_result_free(&r);
}

Test(cli_export_replay, an_altered_bundle_is_refused_and_leaves_no_index)
{
    char bundle[PATH_MAX], fresh[PATH_MAX];
    size_t len;
    aw_test_path(w.dir, "altered.bundle", bundle);
    aw_test_path(w.dir, "altered.db", fresh);
    export_window("2026-05-21T12:00:00Z", "2026-05-21T13:00:00Z", bundle);

    char *bytes = aw_test_read_file(bundle, &len);
    char *hit = NULL;
    for (size_t i = 0; !hit && i + 5 <= len; i++)
        if (memcmp(bytes + i, "req-4", 5) == 0)
            hit = bytes + i;
    cr_assert_not_null(hit);
    hit[4] = '9'; /* one byte of one entry */
    FILE *fp = fopen(bundle, "wb");
    cr_assert_eq(fwrite(bytes, 1, len, fp), len);
    fclose(fp);

    cw_result r =
        cw_run(&w, ARGS("replay", "--bundle", bundle, "--db", fresh), NULL);
    cr_expect_eq(r.status, 3);
    cr_expect(strstr(r.err, "SHA-256"), "%s", r.err);
    cr_expect_neq(access(fresh, F_OK), 0, "no index is left behind");
    cw_result_free(&r);

    fp = fopen(bundle, "wb"); /* cut short */
    cr_assert_eq(fwrite(bytes, 1, len / 2, fp), len / 2);
    fclose(fp);
    r = cw_run(&w, ARGS("replay", "--bundle", bundle, "--db", fresh), NULL);
    cr_expect_eq(r.status, 3);
    cr_expect(strstr(r.err, "truncated"), "%s", r.err);
    cw_result_free(&r);
    free(bytes);
}

static void pack_cstr(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

/* A bundle with a true header around the given entries, in the given order. */
static void write_bundle(const char *path, aw_raw_entry *const *entries,
                         size_t n)
{
    aw_buf body = {0};
    aw_error err;
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(aw_raw_entry_pack(entries[i], &body, &err), AW_OK, "%s",
                     err.msg);
    unsigned char sha[32];
    char hex[65];
    aw_sha256(body.ptr, body.len, sha);
    msgpack_sbuffer header;
    msgpack_sbuffer_init(&header);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &header, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6);
    pack_cstr(&pk, "format");
    pack_cstr(&pk, "auditwatch-bundle");
    pack_cstr(&pk, "version");
    msgpack_pack_int(&pk, 1);
    pack_cstr(&pk, "window");
    msgpack_pack_map(&pk, 2);
    pack_cstr(&pk, "since_ms");
    msgpack_pack_int64(&pk, 1716300000000);
    pack_cstr(&pk, "until_ms");
    msgpack_pack_int64(&pk, 1716300060000);
    pack_cstr(&pk, "counts");
    msgpack_pack_map(&pk, 1);
    pack_cstr(&pk, "entries");
    msgpack_pack_int64(&pk, (int64_t)n);
    pack_cstr(&pk, "body_bytes");
    msgpack_pack_uint64(&pk, body.len);
    pack_cstr(&pk, "body_sha256");
    pack_cstr(&pk, aw_hex(sha, 32, hex));
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp);
    cr_assert_eq(fwrite(header.data, 1, header.size, fp), header.size);
    cr_assert_eq(fwrite(body.ptr, 1, body.len, fp), body.len);
    fclose(fp);
    msgpack_sbuffer_destroy(&header);
    aw_buf_free(&body);
}

static aw_raw_entry *entry_on(const char *stream, const char *id)
{
    aw_field fields[] = {{{"zone_id", 7}, {"zone-1", 6}},
                         {{"session_id", 10}, {"ar-1", 4}}};
    aw_raw_entry *e = NULL;
    aw_error err;
    cr_assert_eq(aw_raw_entry_new((aw_bytes){stream, strlen(stream)},
                                  (aw_bytes){id, strlen(id)}, fields, 2, &e,
                                  &err),
                 AW_OK, "%s", err.msg);
    return e;
}

/* Found by tests/fuzz/fuzz_bundle: the refusal quoted the entry's stream name,
 * bundle bytes that may hold terminal escapes or invalid UTF-8. */
Test(cli_export_replay,
     an_unsorted_bundle_is_refused_naming_the_entry_not_its_raw_stream)
{
    char bundle[PATH_MAX], fresh[PATH_MAX];
    aw_test_path(w.dir, "unsorted.bundle", bundle);
    aw_test_path(w.dir, "unsorted.db", fresh);
    aw_raw_entry *entries[] = {
        entry_on("caracal.sessions.revoke", "1716300000001-0"),
        entry_on("caracal.sessions.revoke\x1b[2J\xcb", "1716300000000-0"),
    };
    write_bundle(bundle, entries, 2);

    cw_result r =
        cw_run(&w, ARGS("replay", "--bundle", bundle, "--db", fresh), NULL);
    cr_expect_neq(r.status, 0);
    cr_expect(
        strstr(r.err, "entry 2 (id 1716300000000-0) is out of entry-id order"),
        "%s", r.err);
    for (const char *p = r.err; *p; p++)
        cr_expect(*p == '\n' ||
                      ((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f),
                  "raw byte 0x%02x from the bundle reached stderr",
                  (unsigned char)*p);
    cw_result_free(&r);
    aw_raw_entry_free(entries[0]);
    aw_raw_entry_free(entries[1]);
}

Test(cli_export_replay, replay_refuses_to_touch_an_existing_index)
{
    char bundle[PATH_MAX];
    aw_test_path(w.dir, "b.bundle", bundle);
    export_window("2026-05-21T12:00:00Z", "2026-05-21T13:00:00Z", bundle);
    cw_result r =
        cw_run(&w, ARGS("replay", "--bundle", bundle, "--db", w.db), NULL);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "exists"), "%s", r.err);
    cw_result_free(&r);
}

Test(cli_export_replay, bad_arguments_exit_2)
{
    const char *const *cases[] = {
        ARGS("export", "--db", w.db, "-o", "x.bundle"),
        ARGS("export", "--db", w.db, "--since", "-1h"),
        ARGS("export", "--db", w.db, "--since", "now", "--until", "-1h", "-o",
             "x.bundle"),
        ARGS("replay", "--db", "new.db"),
        ARGS("replay", "--bundle", "a", "--from-redis", "redis://127.0.0.1:1",
             "--db", "new.db"),
        ARGS("replay", "--from-redis", "redis://127.0.0.1:1", "--db", "new.db"),
        ARGS("replay", "--bundle", "a"),
        ARGS("replay", "--bundle", "a", "--db", "new.db", "--grace-missing",
             "soon"),
    };
    const char *mention[] = {
        "--since",     "-o",      "--since", "--bundle",
        "exactly one", "--since", "--db",    "--grace-missing"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cw_result r = cw_run(&w, cases[i], NULL);
        cr_expect_eq(r.status, 2, "case %zu: %s", i, r.err);
        cr_expect_eq(cw_lines(r.err), 1, "case %zu: %s", i, r.err);
        cr_expect(strstr(r.err, mention[i]), "case %zu: %s", i, r.err);
        cw_result_free(&r);
    }
}

/* ---- from Redis ------------------------------------------------------------ */

#define PAGED_EXCHANGES 1100 /* more than one XRANGE page */

static void publish(aw_test_redis *redis)
{
    redisContext *c = aw_test_redis_connect(redis);
    aw_test_pipe pipe = {.c = c};
    char id[32];
    /* Far outside any recent window. */
    freeReplyObject(aw_test_command(
        c, "XADD auditwatch.calls 1000-0 request_id ancient status 200"));
    for (int i = 0; i < PAGED_EXCHANGES; i++) {
        snprintf(id, sizeof id, "ex-%04d", i);
        aw_test_pipe_audit(
            &pipe, "caracal.audit.events", NULL,
            &(aw_test_audit){.id = id, .occurred_at = "2026-05-21T12:00:00Z"});
        if (i == 500) {
            aw_test_pipe_audit(
                &pipe, "caracal.audit.events", NULL,
                &(aw_test_audit){.id = "gw-lonely",
                                 .event_type = "gateway_resource_request",
                                 .occurred_at = "2026-05-21T12:00:00Z",
                                 .metadata_json =
                                     "{\"upstream_status\":200,"
                                     "\"result_class\":\"success\"}"});
            aw_test_pipe_xadd(
                &pipe, "auditwatch.calls",
                (const char *[]){"request_id", "ex-0005", "status", "200"},
                NULL, 2);
            aw_test_pipe_xadd(
                &pipe, "auditwatch.calls",
                (const char *[]){"request_id", "req-ghost", "status", "200"},
                NULL, 2);
        }
    }
    aw_test_pipe_flush(&pipe);
    redisFree(c);
}

/* The alerts of a replay from Redis of the last ten minutes into the fresh
 * index w.dir/db, with lookback as --audit-lookback, as "kind:request "
 * words (a static buffer). */
static const char *replayed_alerts(const char *url, const char *db,
                                   const char *lookback)
{
    char fresh[PATH_MAX];
    aw_test_path(w.dir, db, fresh);
    cw_result r =
        cw_run(&w,
               ARGS("replay", "--from-redis", url, "--since", "-10m", "--until",
                    "now", "--db", fresh, "--grace-missing", "0",
                    "--audit-lookback", lookback, "-f", "json"),
               NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cJSON *rows = cw_json_lines(r.out), *row;
    static char kinds[256];
    kinds[0] = '\0';
    cJSON_ArrayForEach(row, rows)
    {
        strcat(kinds, cw_str(row, "kind"));
        strcat(kinds, ":");
        strcat(kinds, cw_str(row, "request_id"));
        strcat(kinds, " ");
    }
    cJSON_Delete(rows);
    cw_result_free(&r);
    return kinds;
}

/* "now" of the replay must lie past the newest entry's millisecond. */
static bool clock_past_entries(void *ud)
{
    redisContext *c = aw_test_redis_connect(ud);
    redisReply *r = aw_test_command(c, "XINFO STREAM caracal.audit.events");
    const char *last = NULL;
    struct timespec ts;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements;
         i += 2)
        if (strcmp(r->element[i]->str, "last-generated-id") == 0)
            last = r->element[i + 1]->str;
    clock_gettime(CLOCK_REALTIME, &ts);
    bool past = last && (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 >
                            atoll(last);
    freeReplyObject(r);
    redisFree(c);
    return past;
}

/* A call whose log dates it two hours after the only audit event of its
 * request id is no audited call; with the lookback off it passes, and a
 * call whose log gives no time is judged as before. */
Test(cli_export_replay, replay_applies_the_audit_lookback_to_logged_call_times)
{
    aw_test_redis redis;
    char url[64];
    aw_test_redis_start(&redis, false);
    aw_test_redis_url(&redis, url);
    redisContext *c = aw_test_redis_connect(&redis);
    aw_test_pipe pipe = {.c = c};
    const char *requests[] = {"req-logged", "req-unlogged"};
    for (int i = 0; i < 2; i++)
        aw_test_pipe_audit(
            &pipe, "caracal.audit.events", NULL,
            &(aw_test_audit){.id = requests[i],
                             .request_id = requests[i],
                             .occurred_at = "2026-05-21T12:00:00Z"});
    aw_test_pipe_xadd(&pipe, "auditwatch.calls",
                      (const char *[]){"request_id", "req-logged", "status",
                                       "200", "occurred_at",
                                       "2026-05-21T14:00:00Z"},
                      NULL, 3);
    aw_test_pipe_xadd(
        &pipe, "auditwatch.calls",
        (const char *[]){"request_id", "req-unlogged", "status", "200"}, NULL,
        2);
    aw_test_pipe_flush(&pipe);
    redisFree(c);
    cr_assert(aw_test_wait_for(clock_past_entries, &redis, 5000),
              "the wall clock is not past the newest entry");

    const char *kinds = replayed_alerts(url, "lookback.db", "1h");
    cr_expect_str_eq(kinds, "call_without_audit:req-logged ");
    kinds = replayed_alerts(url, "no-lookback.db", "0");
    cr_expect_str_eq(kinds, "", "with the lookback off: %s", kinds);
    aw_test_redis_destroy(&redis);
}

Test(cli_export_replay,
     replay_from_redis_reads_every_stream_of_the_window_without_a_group)
{
    aw_test_redis redis;
    char url[64], fresh[PATH_MAX];
    aw_test_redis_start(&redis, false);
    aw_test_redis_url(&redis, url);
    publish(&redis);
    cr_assert(aw_test_wait_for(clock_past_entries, &redis, 5000),
              "the wall clock is not past the newest entry");

    const char *kinds = replayed_alerts(url, "from-redis.db", "1h");
    cr_expect(strstr(kinds, "decision_missing:gw-lonely "), "%s", kinds);
    cr_expect(strstr(kinds, "call_without_audit:req-ghost "), "%s", kinds);
    cr_expect_eq(strlen(kinds),
                 strlen("decision_missing:gw-lonely "
                        "call_without_audit:req-ghost "),
                 "two alerts, no more: %s", kinds);

    aw_test_path(w.dir, "from-redis.db", fresh);
    cw_result r = cw_run(&w, ARGS("status", "--db", fresh, "-f", "csv"), NULL);
    char want[64];
    snprintf(want, sizeof want, "index,events,%d\r\n", PAGED_EXCHANGES + 1);
    cr_expect(strstr(r.out, want), "%s", r.out);
    cr_expect(strstr(r.out, "index,calls,2\r\n"),
              "the 1970 call is outside: %s", r.out);
    cw_result_free(&r);

    /* Nothing joined, nothing acknowledged. */
    redisContext *c = aw_test_redis_connect(&redis);
    redisReply *groups =
        aw_test_command(c, "XINFO GROUPS caracal.audit.events");
    cr_expect_eq(groups->elements, 0);
    freeReplyObject(groups);
    redisFree(c);
    aw_test_redis_destroy(&redis);
}

Test(cli_export_replay,
     replay_from_an_unreachable_redis_fails_and_leaves_no_index)
{
    aw_test_redis redis;
    char url[64], fresh[PATH_MAX];
    aw_test_redis_start(&redis, false);
    aw_test_redis_url(&redis, url);
    aw_test_redis_stop(&redis);
    aw_test_path(w.dir, "nowhere.db", fresh);
    cw_result r = cw_run(&w,
                         ARGS("replay", "--from-redis", url, "--since", "-1h",
                              "--until", "now", "--db", fresh),
                         NULL);
    cr_expect_eq(r.status, 3);
    cr_expect(strstr(r.err, "connect"), "%s", r.err);
    cr_expect_neq(access(fresh, F_OK), 0);
    cw_result_free(&r);
    aw_test_redis_destroy(&redis);
}
