/* test_consumer_signature_policy.c -- signature policy is per stream,
 * through the daemon: Caracal's streams need Caracal's keys, and the calls
 * stream (written by the team's own log shippers, who do not hold
 * STREAMS_HMAC_KEY) accepts unsigned entries unless --calls-hmac-key-file is
 * given, in which case it needs that key. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/support.h"

#define CALLS  "auditwatch.calls"
#define REVOKE "caracal.sessions.revoke"

static aw_test_redis redis;
static char dir[PATH_MAX], db[PATH_MAX];

static void setup(void)
{
    aw_test_world_up(&redis, false, dir, db);
}
static void teardown(void)
{
    aw_test_world_down(&redis, dir);
}

TestSuite(signature_policy, .init = setup, .fini = teardown, .timeout = 60);

/* XADD of fields (n names) to stream, with `_sig` when key is given. */
static void add_entry(aw_test_pipe *p, const char *stream, aw_hmac_key *key,
                      const char *const *fields, size_t n)
{
    const char *all[2 * 8 + 2];
    char sig[65];
    memcpy(all, fields, 2 * n * sizeof *all);
    if (key) {
        aw_test_sign_stream(key, stream, fields, n, sig);
        all[2 * n] = "_sig";
        all[2 * n + 1] = sig;
    }
    aw_test_pipe_xadd(p, stream, all, NULL, key ? n + 1 : n);
}

static const char *const call_a[] = {"request_id", "req-a", "status", "200"};
static const char *const call_b[] = {"request_id", "req-b", "status", "200"};
static const char *const revoke[] = {"zone_id", "zone-1", "session_id",
                                     "sess-1",  "reason", "x"};
static const char *const revoke2[] = {"zone_id", "zone-1", "session_id",
                                      "sess-2",  "reason", "x"};

static long long count(const char *sql)
{
    sqlite3 *h;
    sqlite3_stmt *st;
    long long n = -1;
    cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK, "%s",
                 sqlite3_errmsg(h));
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return n;
}

/* `trace REQUEST_ID --format json`: the call's line says whether it was
 * signed. */
static void expect_trace_signed(const char *request_id, bool is_signed)
{
    aw_test_proc trace;
    const char *args[] = {"trace", "--db",     db,  "--format",
                          "json",  request_id, NULL};
    char *out;
    cr_assert_eq(aw_test_run(&trace, dir, "trace", args, NULL, 10000), 0);
    out = aw_test_read_file(trace.out_path, NULL);
    cr_assert(out && strstr(out, "\"source\":\"call\""),
              "no call in the trace: %s", out);
    cr_expect(strstr(out, is_signed ? "\"signed\":true" : "\"signed\":false"),
              "the call is not shown %s: %s", is_signed ? "signed" : "unsigned",
              out);
    free(out);
}

Test(signature_policy,
     unsigned_calls_are_indexed_while_caracal_streams_need_their_key)
{
    char env_key[128];
    const char *env[] = {env_key, NULL};
    aw_test_proc daemon;
    redisContext *c = aw_test_redis_connect(&redis);
    aw_test_pipe pipe = {c, 0, 0};
    aw_hmac_key *key = aw_test_key();

    snprintf(env_key, sizeof env_key, "STREAMS_HMAC_KEY=%s", AW_TEST_KEY_HEX);
    aw_test_daemon_start(&daemon, dir, "calls", &redis, db, NULL, env);
    add_entry(&pipe, CALLS, NULL, call_a, 2);
    add_entry(&pipe, REVOKE, NULL, revoke, 3);
    add_entry(&pipe, REVOKE, key, revoke2, 3);
    aw_test_pipe_flush(&pipe);
    cr_assert(aw_test_wait_entries(db, 3, 20000));
    aw_test_daemon_stop(&daemon, 5000);
    cr_expect_eq(
        count("SELECT count(*) FROM calls WHERE request_id = 'req-a'"), 1,
        "an unsigned call was refused for want of Caracal's streams key");
    cr_expect_eq(
        count("SELECT is_signed FROM calls WHERE request_id = 'req-a'"), 0,
        "an unsigned call is not marked unsigned");
    expect_trace_signed("req-a", false);
    cr_expect_eq(count("SELECT count(*) FROM rejected"), 1);
    cr_expect_eq(
        count(
            "SELECT count(*) FROM rejected WHERE reason = 'signature_missing'"),
        1,
        "an unsigned Caracal revocation passed although STREAMS_HMAC_KEY was set");
    aw_hmac_key_free(key);
    redisFree(c);
}

Test(signature_policy, a_calls_key_makes_the_calls_stream_need_that_key)
{
    char key_path[PATH_MAX];
    const char *args[] = {"--calls-hmac-key-file", key_path, NULL};
    aw_test_proc daemon;
    redisContext *c = aw_test_redis_connect(&redis);
    aw_test_pipe pipe = {c, 0, 0};
    aw_hmac_key *key = aw_test_key();

    aw_test_key_file(dir, "calls.key", key_path);
    aw_test_daemon_start(&daemon, dir, "calls-key", &redis, db, args, NULL);
    add_entry(&pipe, CALLS, NULL, call_a, 2);
    add_entry(&pipe, CALLS, key, call_b, 2);
    add_entry(&pipe, REVOKE, NULL, revoke, 3);
    aw_test_pipe_flush(&pipe);
    cr_assert(aw_test_wait_entries(db, 3, 20000));
    aw_test_daemon_stop(&daemon, 5000);
    cr_expect_eq(count("SELECT count(*) FROM calls WHERE request_id = 'req-b'"),
                 1);
    cr_expect_eq(
        count("SELECT is_signed FROM calls WHERE request_id = 'req-b'"), 1,
        "a call whose _sig verified is not marked signed");
    expect_trace_signed("req-b", true);
    cr_expect_eq(
        count("SELECT count(*) FROM calls WHERE request_id = 'req-a'"), 0,
        "an unsigned call passed although --calls-hmac-key-file was given");
    cr_expect_eq(
        count(
            "SELECT count(*) FROM rejected WHERE reason = 'signature_missing'"),
        1);
    cr_expect_eq(count("SELECT count(*) FROM revocations"), 1,
                 "the calls key made Caracal's streams need a key");
    aw_hmac_key_free(key);
    redisFree(c);
}
