/* test_consumer_durability.c -- stopping the daemon, gently (SIGTERM) or
 * not (SIGKILL), at any point loses nothing and duplicates nothing. */
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

static void setup(void)
{
    aw_test_world_up(&redis, false, dir, db);
}

static void teardown(void)
{
    aw_test_world_down(&redis, dir);
}

TestSuite(consumer_durability, .init = setup, .fini = teardown, .timeout = 180);

Test(consumer_durability, sigkill_at_random_points_loses_and_duplicates_nothing)
{
    enum { EVENTS = 50000, CHUNK = 1000, KILLS = 3 };
    unsigned seed = aw_test_seed();
    redisContext *c = aw_test_redis_connect(&redis);
    aw_test_pipe pipe = {c, 0, 0};
    aw_test_proc daemon;
    int kill_after[KILLS], next_kill = 0, runs = 0;
    char tag[16];

    srand(seed);
    for (int k = 0; k < KILLS; k++) /* three distinct chunks, in order */
        kill_after[k] = (k * (EVENTS / CHUNK) / KILLS) + 1 +
                        rand() % (EVENTS / CHUNK / KILLS - 1);
    snprintf(tag, sizeof tag, "run%d", runs++);
    aw_test_daemon_start(&daemon, dir, tag, &redis, db, same_consumer, NULL);
    for (int chunk = 0; chunk < EVENTS / CHUNK; chunk++) {
        aw_test_publish_audit_range(&pipe, AUDIT, chunk * CHUNK,
                                    (chunk + 1) * CHUNK);
        if (next_kill < KILLS && chunk == kill_after[next_kill]) {
            usleep((useconds_t)(rand() % 300) *
                   1000); /* anywhere in a read or a commit */
            aw_test_kill(&daemon);
            cr_assert_eq(daemon.status, 128 + SIGKILL);
            snprintf(tag, sizeof tag, "run%d", runs++);
            aw_test_daemon_start(&daemon, dir, tag, &redis, db, same_consumer,
                                 NULL);
            next_kill++;
        }
    }
    cr_assert(aw_test_wait_entries(db, EVENTS, 90000),
              "not every event was indexed (seed %u)", seed);
    cr_assert(aw_test_wait_no_pending(c, audit_only, "auditwatch", 10000),
              "entries left pending (seed %u)", seed);
    aw_test_daemon_stop(&daemon, 5000);
    aw_test_assert_indexed_exactly(db, EVENTS);
    cr_assert_eq(aw_test_group_lag(c, AUDIT, "auditwatch"), 0);
    redisFree(c);
}

Test(consumer_durability,
     sigterm_in_a_backlog_exits_within_5s_and_loses_nothing)
{
    enum { EVENTS = 50000 };
    redisContext *c = aw_test_redis_connect(&redis);
    aw_test_pipe pipe = {c, 0, 0};
    aw_test_proc daemon;
    aw_store_stats st;
    int64_t asked;

    aw_test_publish_audit_range(&pipe, AUDIT, 0, EVENTS);
    aw_test_daemon_start(&daemon, dir, "backlog", &redis, db, same_consumer,
                         NULL);
    cr_assert(aw_test_wait_entries(db, 5000, 60000));
    aw_test_signal(&daemon, SIGTERM);
    asked = aw_test_now_ms();
    cr_assert(aw_test_wait(&daemon, 5000), "still running 5 s after SIGTERM");
    cr_assert_eq(daemon.status, 0);
    cr_assert(aw_test_now_ms() - asked < 5000);
    cr_assert(aw_test_index_stats(db, &st));
    cr_assert_lt(st.entries, EVENTS,
                 "the backlog was gone before the signal: nothing was tested");

    aw_test_daemon_start(&daemon, dir, "resume", &redis, db, same_consumer,
                         NULL);
    cr_assert(aw_test_wait_entries(db, EVENTS, 90000),
              "the rest of the backlog was not indexed");
    cr_assert(aw_test_wait_no_pending(c, audit_only, "auditwatch", 10000));
    aw_test_daemon_stop(&daemon, 5000);
    aw_test_assert_indexed_exactly(db, EVENTS);
    redisFree(c);
}
