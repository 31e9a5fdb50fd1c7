/* test_consumer_redis_restart.c -- Redis going away mid-stream and coming
 * back with its data: the daemon waits, reconnects by itself, and finishes
 * without losing or repeating an entry. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/support.h"

#define AUDIT "caracal.audit.events"

static aw_test_redis redis;
static char dir[PATH_MAX], db[PATH_MAX];

static void setup(void)
{
    aw_test_world_up(&redis, true, dir, db);
}

static void teardown(void)
{
    aw_test_world_down(&redis, dir);
}

TestSuite(consumer_redis_restart, .init = setup, .fini = teardown,
          .timeout = 120);

static void publish_range(int from, int to)
{
    redisContext *c = aw_test_redis_connect(&redis);
    aw_test_pipe pipe = {c, 0, 0};
    aw_test_publish_audit_range(&pipe, AUDIT, from, to);
    redisFree(c);
}

static int count_lines(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* The daemon noticed the loss and a reconnect attempt failed. */
static bool reconnect_refused(void *ud)
{
    char *log = aw_test_read_file(ud, NULL);
    const char *lost = log ? strstr(log, "event=redis_disconnected") : NULL;
    bool refused = lost && strstr(lost, "event=redis_unreachable");
    free(log);
    return refused;
}

Test(consumer_redis_restart, reconnects_after_redis_comes_back_and_finishes)
{
    enum { EVENTS = 20000 };
    const char *streams[] = {AUDIT, NULL};
    aw_test_proc daemon;
    aw_store_stats st;
    redisContext *c;

    aw_test_daemon_start(&daemon, dir, "daemon", &redis, db, NULL, NULL);
    publish_range(0, EVENTS / 2);
    cr_assert(aw_test_wait_entries(db, 1000, 30000));

    aw_test_redis_stop(&redis);
    cr_assert(aw_test_wait_for(reconnect_refused, daemon.err_path, 20000),
              "the daemon did not try to reconnect while Redis was down");
    cr_assert(!aw_test_wait(&daemon, 0),
              "the daemon gave up while Redis was down");
    aw_test_redis_start_again(&redis);
    publish_range(EVENTS / 2, EVENTS);

    cr_assert(aw_test_wait_entries(db, EVENTS, 60000),
              "the daemon did not finish after Redis came back");
    c = aw_test_redis_connect(&redis);
    cr_assert(aw_test_wait_no_pending(c, streams, "auditwatch", 10000));
    redisFree(c);
    aw_test_daemon_stop(&daemon, 5000);

    cr_assert(aw_test_index_stats(db, &st));
    cr_assert_eq(st.entries, EVENTS);
    cr_assert_eq(st.events, EVENTS);

    /* Each change of state is logged once, not once per retry. */
    char *log = aw_test_read_file(daemon.err_path, NULL);
    cr_assert(log);
    cr_assert_eq(count_lines(log, "event=redis_disconnected"), 1, "%s", log);
    cr_assert_eq(count_lines(log, "event=redis_unreachable"), 1, "%s", log);
    cr_assert_eq(count_lines(log, "event=redis_reconnected"), 1, "%s", log);
    free(log);
}

static bool rolled_back_logged(void *ud)
{
    char *log = aw_test_read_file(ud, NULL);
    bool said = log && strstr(log, "event=redis_rolled_back");
    free(log);
    return said;
}

/* Redis restarted from an older save: our group is back where it was then,
 * behind what was indexed. What producers published after the save and
 * auditwatch had not read is gone with no id range to report, so the log
 * says so, once, naming where Redis and the index stand; what comes after
 * is indexed as usual. */
Test(consumer_redis_restart, a_restart_from_an_older_save_is_said)
{
    const char *streams[] = {AUDIT, NULL};
    aw_test_proc daemon;
    aw_store_stats st;
    redisContext *c;

    aw_test_redis_stop(&redis); /* a server that keeps only its saves */
    redis.persistent = false;
    aw_test_redis_start_again(&redis);
    aw_test_daemon_start(&daemon, dir, "daemon", &redis, db, NULL, NULL);
    publish_range(0, 10);
    cr_assert(aw_test_wait_entries(db, 10, 30000));
    c = aw_test_redis_connect(&redis);
    cr_assert(aw_test_wait_no_pending(c, streams, "auditwatch", 10000));
    freeReplyObject(aw_test_command(c, "SAVE"));
    redisFree(c);
    publish_range(10, 20);
    cr_assert(aw_test_wait_entries(db, 20, 30000));

    aw_test_redis_stop(&redis); /* no save on the way down */
    aw_test_redis_start_again(&redis);
    cr_assert(aw_test_wait_for(rolled_back_logged, daemon.err_path, 20000),
              "the rollback was not said");
    publish_range(20, 25);
    cr_assert(aw_test_wait_entries(db, 25, 30000));
    aw_test_daemon_stop(&daemon, 5000);

    cr_assert(aw_test_index_stats(db, &st));
    cr_expect_eq(st.entries, 25);
    char *log = aw_test_read_file(daemon.err_path, NULL);
    cr_assert(log);
    cr_expect_eq(count_lines(log, "event=redis_rolled_back"), 1, "%s", log);
    cr_expect(strstr(log, "stream=" AUDIT " first_id="), "%s", log);
    free(log);
}
