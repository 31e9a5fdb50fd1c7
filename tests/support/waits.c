/* waits.c -- conditions the integration tests wait on instead of sleeping,
 * and the seed of randomized tests.
 *
 * A fixed sleep is either too short on a loaded machine (the test flakes) or
 * too long everywhere (the suite crawls); each helper here polls a fact the
 * test is really waiting for, under a deadline.
 */
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

unsigned aw_test_seed(void)
{
    const char *env = getenv("AW_TEST_SEED");
    unsigned seed = env && *env ? (unsigned)strtoul(env, NULL, 10)
                                : (unsigned)time(NULL) ^ (unsigned)getpid();
    fprintf(stderr, "random seed %u (AW_TEST_SEED=%u repeats this run)\n", seed,
            seed);
    return seed;
}

int64_t aw_test_detector_clock_ns(const char *db_path)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    int64_t clock = -1;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) !=
        SQLITE_OK) {
        sqlite3_close(db);
        return -1;
    }
    if (sqlite3_prepare_v2(
            db, "SELECT value FROM meta WHERE key = 'detector_clock_ns'", -1,
            &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            clock = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return clock;
}

typedef struct clock_wait {
    const char *db;
    int64_t at_least;
} clock_wait;

static bool clock_reached(void *ud)
{
    const clock_wait *w = ud;
    return aw_test_detector_clock_ns(w->db) >= w->at_least;
}

bool aw_test_wait_detector_clock(const char *db_path, int64_t at_least_ns,
                                 int timeout_ms)
{
    clock_wait w = {db_path, at_least_ns};
    return aw_test_wait_for(clock_reached, &w, timeout_ms);
}

long long aw_test_redis_connections(redisContext *c)
{
    redisReply *r = aw_test_command(c, "INFO stats");
    const char *at = r->type == REDIS_REPLY_STRING
                         ? strstr(r->str, "total_connections_received:")
                         : NULL;
    long long n = at ? atoll(at + strlen("total_connections_received:")) : -1;
    freeReplyObject(r);
    return n;
}

long long aw_test_pending_idle_ms(redisContext *c, const char *stream,
                                  const char *group)
{
    redisReply *r = aw_test_command(c, "XPENDING %s %s - + 1", stream, group);
    long long idle = -1;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        r->element[0]->type == REDIS_REPLY_ARRAY &&
        r->element[0]->elements >= 3 &&
        r->element[0]->element[2]->type == REDIS_REPLY_INTEGER)
        idle = r->element[0]->element[2]->integer;
    freeReplyObject(r);
    return idle;
}
