/* test_consumer_ops.c -- the daemon under ordinary operational trouble: the
 * index held by another writer for a while, then a restart. What it read
 * while it could not commit must be indexed once the index is writable
 * again, never thrown away as a poisonous entry. */
#include <criterion/criterion.h>
#include <sqlite3.h>
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
    aw_test_world_up(&redis, false, dir, db);
}

static void teardown(void)
{
    aw_test_world_down(&redis, dir);
}

TestSuite(consumer_ops, .init = setup, .fini = teardown, .timeout = 120);

/* XPENDING's delivery count of the oldest entry pending in the group. */
static long long oldest_delivery_count(redisContext *c)
{
    redisReply *r = aw_test_command(c, "XPENDING %s auditwatch - + 1", AUDIT);
    long long n = -1;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        r->element[0]->elements == 4)
        n = r->element[0]->element[3]->integer;
    freeReplyObject(r);
    return n;
}

/* An index locked by another writer (a backup, an operator's sqlite3
 * shell) for a while: the batch waits and is retried, and the daemon's own
 * XAUTOCLAIM rounds must not count deliveries of the entries it holds, or
 * a restart before the lock goes rejects them TOO_MANY_DELIVERIES: never
 * indexed, and no alert says so. */
Test(consumer_ops, held_batch_survives_a_locked_index_and_a_restart)
{
    redisContext *c = aw_test_redis_connect(&redis);
    aw_test_pipe pipe = {c, 0, 0};
    const char *args[] = {"--claim-idle-ms", "200", NULL};
    aw_test_proc p;
    sqlite3 *lock;

    aw_test_daemon_start(&p, dir, "a", &redis, db, args, NULL);
    aw_test_pipe_audit(&pipe, AUDIT, NULL, &(aw_test_audit){.id = "evt-0"});
    aw_test_pipe_flush(&pipe);
    cr_assert(aw_test_wait_entries(db, 1, 30000), "the daemon never indexed");

    cr_assert(sqlite3_open(db, &lock) == SQLITE_OK);
    cr_assert(sqlite3_exec(lock, "BEGIN IMMEDIATE", NULL, NULL, NULL) ==
              SQLITE_OK);
    aw_test_pipe_audit(&pipe, AUDIT, NULL, &(aw_test_audit){.id = "evt-1"});
    aw_test_pipe_flush(&pipe);
    /* twenty claim rounds while the commit is held */
    usleep(4000 * 1000);
    long long count = oldest_delivery_count(c);
    aw_test_kill(&p);
    sqlite3_exec(lock, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(lock);

    aw_test_daemon_start(&p, dir, "a", &redis, db, NULL, NULL);
    cr_assert(aw_test_wait_entries(db, 2, 30000), "evt-1 never stored");
    const char *streams[] = {AUDIT, NULL};
    cr_assert(aw_test_wait_no_pending(c, streams, "auditwatch", 30000));
    aw_test_daemon_stop(&p, 10000);
    cr_assert_eq(aw_test_sql_int(db, "SELECT count(*) FROM rejected"), 0,
                 "evt-1 was rejected after %lld deliveries, all of them the "
                 "daemon's own claims of an entry it held",
                 count);
    aw_test_assert_indexed_exactly(db, 2);
    redisFree(c);
}
