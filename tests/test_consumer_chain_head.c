/* test_consumer_chain_head.c -- the daemon keeps a copy of the chain head
 * outside the index: in its log when the head moved and at shutdown, and on
 * a Redis stream with --chain-stream, in the HASH@COUNT form `verify
 * --chain-head` takes. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/support.h"

#define AUDIT "caracal.audit.events"
#define CHAIN "auditwatch.chain"

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

TestSuite(chain_head, .init = setup, .fini = teardown, .timeout = 60);

/* The chain_head field of the newest entry of the chain stream, or "". */
static void newest_head(redisContext *c, char *out, size_t size)
{
    redisReply *r = aw_test_command(c, "XREVRANGE " CHAIN " + - COUNT 1");
    out[0] = '\0';
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
        const redisReply *fields = r->element[0]->element[1];
        for (size_t i = 0; i + 1 < fields->elements; i += 2)
            if (strcmp(fields->element[i]->str, "chain_head") == 0)
                snprintf(out, size, "%s", fields->element[i + 1]->str);
    }
    freeReplyObject(r);
}

static bool head_names_three_entries(void *ud)
{
    char head[128];
    newest_head(ud, head, sizeof head);
    return strstr(head, "@3") != NULL;
}

/* What the index itself says: HASH@COUNT from chain_tip. */
static void index_head(char *out, size_t size)
{
    sqlite3 *h;
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL),
                 SQLITE_OK);
    cr_assert_eq(
        sqlite3_prepare_v2(
            h, "SELECT lower(hex(head)) || '@' || last_rowid FROM chain_tip",
            -1, &st, NULL),
        SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    snprintf(out, size, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(h);
}

Test(chain_head,
     is_published_to_the_log_and_a_stream_while_running_and_at_shutdown)
{
    const char *args[] = {"--chain-stream", CHAIN, "--chain-interval", "0.1s",
                          NULL};
    aw_test_proc daemon;
    redisContext *c = aw_test_redis_connect(&redis);
    aw_test_pipe pipe = {c, 0, 0};
    char published[128], stored[128], line[160];

    aw_test_daemon_start(&daemon, dir, "chain", &redis, db, args, NULL);
    aw_test_publish_audit_range(&pipe, AUDIT, 0, 3);
    cr_assert(aw_test_wait_for(head_names_three_entries, c, 20000),
              "no chain head for the 3 entries on " CHAIN);
    aw_test_daemon_stop(&daemon, 5000);

    newest_head(c, published, sizeof published);
    index_head(stored, sizeof stored);
    cr_expect_str_eq(published, stored,
                     "the published head is not the index's");
    char *log = aw_test_read_file(daemon.err_path, NULL);
    snprintf(line, sizeof line, "chain_head=%s", stored);
    cr_expect(log && strstr(log, line), "the head is not in the log: %s", log);
    cr_expect(log && strstr(log, "reason=shutdown"),
              "no head logged at shutdown: %s", log);
    free(log);
    redisFree(c);
}
