/* test_consumer_claim.c -- two daemons share a group; when one dies, the
 * other takes over the entries it had been handed and never acknowledged. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/support.h"

#define AUDIT  "caracal.audit.events"
#define EVENTS 20000

static aw_test_redis redis;
static char dir[PATH_MAX], db_a[PATH_MAX], db_b[PATH_MAX];

static void setup(void)
{
    aw_test_redis_start(&redis, false);
    aw_test_tmpdir(dir);
    aw_test_path(dir, "a.db", db_a);
    aw_test_path(dir, "b.db", db_b);
}

static void teardown(void)
{
    aw_test_redis_destroy(&redis);
    aw_test_rmtree(dir);
}

TestSuite(consumer_claim, .init = setup, .fini = teardown, .timeout = 120);

static int mark_event(const aw_event_row *row, void *ud)
{
    unsigned char *seen = ud;
    int n;
    cr_assert(sscanf(row->event_id, "evt-%d", &n) == 1 && n >= 0 && n < EVENTS,
              "%s", row->event_id);
    seen[n] = 1;
    return 0;
}

static void mark_indexed(const char *db, unsigned char *seen)
{
    aw_store *store;
    aw_error err = {0};
    cr_assert(aw_store_open(db, AW_STORE_READONLY, &store, &err) == AW_OK, "%s",
              err.msg);
    cr_assert(aw_store_query_events(store, &(aw_event_filter){0}, mark_event,
                                    seen, &err) == AW_OK,
              "%s", err.msg);
    aw_store_close(store);
}

typedef struct pel_of {
    redisContext *c;
    const char *consumer;
} pel_of;

static bool consumer_has_nothing_pending(void *ud)
{
    pel_of *p = ud;
    redisReply *r = aw_test_command(p->c, "XPENDING %s auditwatch - + 10 %s",
                                    AUDIT, p->consumer);
    bool empty = r->type == REDIS_REPLY_ARRAY && r->elements == 0;
    freeReplyObject(r);
    return empty;
}

static bool group_read_everything(void *ud)
{
    return aw_test_group_lag(ud, AUDIT, "auditwatch") == 0;
}

Test(consumer_claim, survivor_claims_what_the_dead_consumer_left_pending)
{
    redisContext *c = aw_test_redis_connect(&redis);
    aw_test_pipe pipe = {c, 0, 0};
    const char *args[] = {"--claim-idle-ms", "1000", "--batch", "200", NULL};
    const char *streams[] = {AUDIT, NULL};
    aw_test_proc a, b;
    aw_store_stats st;

    aw_test_daemon_start(&a, dir, "a", &redis, db_a, args, NULL);
    aw_test_daemon_start(&b, dir, "b", &redis, db_b, args, NULL);
    for (int i = 0; i < EVENTS; i++) {
        char id[32];
        snprintf(id, sizeof id, "evt-%06d", i);
        aw_test_pipe_audit(&pipe, AUDIT, NULL, &(aw_test_audit){.id = id});
    }
    aw_test_pipe_flush(&pipe);
    cr_assert(aw_test_wait_entries(db_a, 1000, 30000), "a never got going");
    aw_test_kill(&a);
    cr_assert(!consumer_has_nothing_pending(&(pel_of){c, "a"}),
              "a had nothing pending when it died: nothing was tested");

    cr_assert(aw_test_wait_for(consumer_has_nothing_pending, &(pel_of){c, "a"},
                               30000),
              "the survivor did not claim a's pending entries");
    cr_assert(aw_test_wait_no_pending(c, streams, "auditwatch", 60000));
    /* Nothing pending can still mean not everything read yet under load. */
    cr_assert(aw_test_wait_for(group_read_everything, c, 60000),
              "the group never read the whole stream: lag %lld",
              (long long)aw_test_group_lag(c, AUDIT, "auditwatch"));
    aw_test_daemon_stop(&b, 5000);

    /* Between the two indexes, every event is there. */
    unsigned char *seen = calloc(EVENTS, 1);
    int missing = 0;
    mark_indexed(db_a, seen);
    mark_indexed(db_b, seen);
    for (int i = 0; i < EVENTS; i++)
        missing += !seen[i];
    free(seen);
    cr_assert_eq(missing, 0, "%d events are in neither index", missing);
    cr_assert(aw_test_index_stats(db_b, &st));
    cr_assert_eq(st.rejected, 0);
    redisFree(c);
}
