/* test_consumer_crash.c -- killing the daemon at any point loses nothing
 * and duplicates nothing. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

TestSuite(consumer_crash, .init = setup, .fini = teardown, .timeout = 180);

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

Test(consumer_crash, sigkill_at_random_points_loses_and_duplicates_nothing) {
    enum { EVENTS = 50000, CHUNK = 1000, KILLS = 3 };
    unsigned seed = (unsigned)time(NULL);
    redisContext *c = aw_test_redis_connect(&redis);
    aw_test_pipe pipe = {c, 0, 0};
    aw_test_proc daemon;
    int kill_after[KILLS], next_kill = 0, runs = 0;
    char tag[16];

    srand(seed);
    for (int k = 0; k < KILLS; k++)   /* three distinct chunks, in order */
        kill_after[k] = (k * (EVENTS / CHUNK) / KILLS) + 1 + rand() % (EVENTS / CHUNK / KILLS - 1);
    snprintf(tag, sizeof tag, "run%d", runs++);
    aw_test_daemon_start(&daemon, dir, tag, &redis, db, same_consumer, NULL);
    for (int chunk = 0; chunk < EVENTS / CHUNK; chunk++) {
        publish_range(&pipe, chunk * CHUNK, (chunk + 1) * CHUNK);
        if (next_kill < KILLS && chunk == kill_after[next_kill]) {
            usleep((useconds_t)(rand() % 300) * 1000);   /* anywhere in a read or a commit */
            aw_test_kill(&daemon);
            cr_assert_eq(daemon.status, 128 + SIGKILL);
            snprintf(tag, sizeof tag, "run%d", runs++);
            aw_test_daemon_start(&daemon, dir, tag, &redis, db, same_consumer, NULL);
            next_kill++;
        }
    }
    cr_assert(aw_test_wait_entries(db, EVENTS, 90000), "not every event was indexed (seed %u)", seed);
    cr_assert(aw_test_wait_no_pending(c, audit_only, "auditwatch", 10000),
              "entries left pending (seed %u)", seed);
    aw_test_daemon_stop(&daemon, 5000);
    assert_exactly(EVENTS);
    cr_assert_eq(aw_test_group_lag(c, AUDIT, "auditwatch"), 0);
    redisFree(c);
}
