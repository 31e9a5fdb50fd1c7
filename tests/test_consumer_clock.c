/* test_consumer_clock.c -- the detector clock is Redis' clock: this host's
 * clock being ahead of it (or stepped forward) must not bring a grace
 * window's end forward. The daemon runs with its CLOCK_REALTIME an hour
 * ahead (tests/shim/clock_shift.c); Redis keeps the true time. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/support/support.h"

#define AUDIT "caracal.audit.events"

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

TestSuite(consumer_clock, .init = setup, .fini = teardown, .timeout = 120);

/* "YYYY-MM-DDTHH" of now plus shift_s. */
static void hour_of(int64_t shift_s, char out[14])
{
    char when[40];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    aw_time_format(((int64_t)ts.tv_sec + shift_s) * 1000000000LL, when,
                   sizeof when);
    snprintf(out, 14, "%.13s", when);
}

/* A Gateway call, then its decision 3 s later on Redis' clock, well within
 * the 10 s grace: an hour on this host's clock has passed meanwhile, but
 * that is no reason to judge the call. */
/* The environment that puts a daemon's clock an hour ahead. */
typedef struct hour_ahead {
    char preload[PATH_MAX + 16], asan[512];
    const char *env[4];
} hour_ahead;

static void hour_ahead_init(hour_ahead *h)
{
    snprintf(h->preload, sizeof h->preload, "LD_PRELOAD=%s",
             AW_CLOCK_SHIFT_LIB);
    const char *inherited = getenv("ASAN_OPTIONS");
    /* the shim is loaded ahead of the sanitizers' runtime */
    snprintf(h->asan, sizeof h->asan,
             "ASAN_OPTIONS=%s%sverify_asan_link_order=0",
             inherited ? inherited : "", inherited ? ":" : "");
    h->env[0] = h->preload;
    h->env[1] = "AW_TEST_CLOCK_SHIFT_S=3600";
    h->env[2] = h->asan;
    h->env[3] = NULL;
}

Test(consumer_clock, a_host_clock_ahead_of_redis_does_not_end_the_grace)
{
    char before[14], after[14];
    hour_ahead ahead;
    hour_ahead_init(&ahead);
    const char *const *env = ahead.env;
    const char *args[] = {"--grace-missing", "10", NULL};
    redisContext *c = aw_test_redis_connect(&redis);
    aw_test_pipe pipe = {c, 0, 0};
    aw_test_proc daemon;

    hour_of(3600, before);
    aw_test_daemon_start(&daemon, dir, "ahead", &redis, db, args, env);
    aw_test_pipe_audit(
        &pipe, AUDIT, NULL,
        &(aw_test_audit){.id = "g-1",
                         .request_id = "req-1",
                         .event_type = "gateway_resource_request",
                         .evaluation_status = "executed",
                         .metadata_json =
                             "{\"upstream_status\":200,\"result_class\":"
                             "\"success\"}"});
    aw_test_pipe_flush(&pipe);
    cr_assert(aw_test_wait_entries(db, 1, 20000));
    usleep(3000 * 1000); /* idle reads, the streams read up */
    aw_test_pipe_audit(&pipe, AUDIT, NULL,
                       &(aw_test_audit){.id = "te-1", .request_id = "req-1"});
    aw_test_pipe_flush(&pipe);
    cr_assert(aw_test_wait_entries(db, 2, 20000));
    usleep(1500 * 1000);
    aw_test_daemon_stop(&daemon, 10000);
    hour_of(3600, after);

    char *log = aw_test_read_file(daemon.err_path, NULL);
    cr_assert(log && (strstr(log, before) || strstr(log, after)),
              "the daemon's clock was not shifted: %s", log ? log : "");
    free(log);
    cr_expect_eq(aw_test_sql_int(db, "SELECT count(*) FROM alerts WHERE kind "
                                     "= 'decision_missing'"),
                 0, "the call was judged on this host's clock");
    cr_expect_eq(aw_test_sql_int(db, "SELECT count(*) FROM events"), 2);
    redisFree(c);
}

/* The pipeline watch ages a revocation by Redis' clock too: a Gateway that
 * applies it within the enforcer grace is not alerted because this host's
 * clock says an hour has passed. */
Test(consumer_clock, a_host_clock_ahead_of_redis_does_not_age_revocations)
{
    hour_ahead ahead;
    hour_ahead_init(&ahead);
    const char *args[] = {"--enforcer-poll", "100ms", "--grace-enforcer", "5s",
                          NULL};
    redisContext *c = aw_test_redis_connect(&redis);
    aw_test_proc daemon;
    const char *groups[] = {"sts-revocation", "gateway-revocation:gw"};
    for (int i = 0; i < 2; i++)
        freeReplyObject(aw_test_command(
            c, "XGROUP CREATE caracal.sessions.revoke %s $ MKSTREAM",
            groups[i]));
    aw_test_daemon_start(&daemon, dir, "ahead", &redis, db, args, ahead.env);
    freeReplyObject(aw_test_command(c, "XADD caracal.sessions.revoke * "
                                       "zone_id zone-1 session_id ar-1 "
                                       "reason revoked"));
    usleep(1500 * 1000); /* polls see it unapplied, a second and a half old */
    for (int i = 0; i < 2; i++) {
        redisReply *r =
            aw_test_command(c,
                            "XREADGROUP GROUP %s reader COUNT 10 STREAMS "
                            "caracal.sessions.revoke >",
                            groups[i]);
        cr_assert(r->type == REDIS_REPLY_ARRAY, "XREADGROUP %s", groups[i]);
        freeReplyObject(aw_test_command(
            c, "XACK caracal.sessions.revoke %s %s", groups[i],
            r->element[0]->element[1]->element[0]->element[0]->str));
        freeReplyObject(r);
    }
    usleep(1000 * 1000);
    aw_test_daemon_stop(&daemon, 10000);
    cr_expect_eq(aw_test_sql_int(db, "SELECT count(*) FROM alerts WHERE kind "
                                     "= 'revocation_not_consumed'"),
                 0, "a revocation was aged on this host's clock");
    redisFree(c);
}
