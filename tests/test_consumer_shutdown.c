/* test_consumer_shutdown.c -- SIGTERM stops the daemon promptly and
 * cleanly, whatever it is doing, and what it had not finished is done by
 * the next start. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/support.h"

#define AUDIT "caracal.audit.events"

static aw_test_redis redis;
static char dir[PATH_MAX], db[PATH_MAX];
static const char *const audit_only[] = {AUDIT, NULL};
/* A restarted daemon is the same consumer: it re-reads its own pending. */
static const char *const same_consumer[] = {"--consumer", "worker", NULL};

static void setup(void) {
    aw_test_redis_start(&redis, false);
    aw_test_tmpdir(dir);
    aw_test_path(dir, "index.db", db);
}

static void teardown(void) {
    aw_test_redis_destroy(&redis);
    aw_test_rmtree(dir);
}

TestSuite(consumer_shutdown, .init = setup, .fini = teardown, .timeout = 180);

static void publish_range(aw_test_pipe *p, int from, int to) {
    for (int i = from; i < to; i++) {
        char id[32];
        snprintf(id, sizeof id, "evt-%06d", i);
        aw_test_pipe_audit(p, AUDIT, NULL, &(aw_test_audit){.id = id});
    }
    aw_test_pipe_flush(p);
}

static void assert_exactly(int64_t events) {
    aw_store_stats st;
    cr_assert(aw_test_index_stats(db, &st));
    cr_assert_eq(st.entries, events, "%lld entries for %lld published", (long long)st.entries,
                 (long long)events);
    cr_assert_eq(st.events, events, "%lld events for %lld published", (long long)st.events,
                 (long long)events);
    cr_assert_eq(st.rejected, 0);
}

Test(consumer_shutdown, sigterm_in_a_backlog_exits_within_5s_and_loses_nothing) {
    enum { EVENTS = 50000 };
    redisContext *c = aw_test_redis_connect(&redis);
    aw_test_pipe pipe = {c, 0, 0};
    aw_test_proc daemon;
    aw_store_stats st;
    int64_t asked;

    publish_range(&pipe, 0, EVENTS);
    aw_test_daemon_start(&daemon, dir, "backlog", &redis, db, same_consumer, NULL);
    cr_assert(aw_test_wait_entries(db, 5000, 60000));
    aw_test_signal(&daemon, SIGTERM);
    asked = aw_test_now_ms();
    cr_assert(aw_test_wait(&daemon, 5000), "still running 5 s after SIGTERM");
    cr_assert_eq(daemon.status, 0);
    cr_assert(aw_test_now_ms() - asked < 5000);
    cr_assert(aw_test_index_stats(db, &st));
    cr_assert_lt(st.entries, EVENTS, "the backlog was gone before the signal: nothing was tested");

    aw_test_daemon_start(&daemon, dir, "resume", &redis, db, same_consumer, NULL);
    cr_assert(aw_test_wait_entries(db, EVENTS, 90000), "the rest of the backlog was not indexed");
    cr_assert(aw_test_wait_no_pending(c, audit_only, "auditwatch", 10000));
    aw_test_daemon_stop(&daemon, 5000);
    assert_exactly(EVENTS);
    redisFree(c);
}
