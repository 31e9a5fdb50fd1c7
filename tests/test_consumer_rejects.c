/* test_consumer_rejects.c -- entries that cannot be indexed are recorded
 * with their reason and acknowledged; the daemon keeps going and the good
 * entries around them are indexed. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/support.h"

#define AUDIT     "caracal.audit.events"
#define LIFECYCLE "caracal.agents.lifecycle"
#define BIG_BYTES (10 * 1024 * 1024)

static aw_test_redis redis;
static char dir[PATH_MAX], db[PATH_MAX], keyfile[PATH_MAX];

static void setup(void)
{
    aw_test_world_up(&redis, false, dir, db);
    aw_test_key_file(dir, "hmac.key", keyfile);
}

static void teardown(void)
{
    aw_test_world_down(&redis, dir);
}

TestSuite(consumer_rejects, .init = setup, .fini = teardown, .timeout = 120);

/* An audit entry whose data is exactly these bytes, correctly signed, so
 * the rejection is about the content. */
static void publish_data(aw_test_pipe *p, aw_hmac_key *key, const char *id,
                         const char *data, size_t len)
{
    char sig[65];
    aw_test_sign(key, data, len, sig);
    const char *fields[] = {"id", id, "data", data, "sig", sig};
    size_t lens[] = {2, strlen(id), 4, len, 3, 64};
    aw_test_pipe_xadd(p, AUDIT, fields, lens, 3);
}

static void publish_text(aw_test_pipe *p, aw_hmac_key *key, const char *id,
                         const char *data)
{
    publish_data(p, key, id, data, strlen(data));
}

typedef struct reasons {
    int count[AW_REJECT_REASON_COUNT];
    int total;
} reasons;

static int count_reason(const aw_rejected_row *row, void *ud)
{
    reasons *r = ud;
    r->count[row->reason]++;
    r->total++;
    return 0;
}

Test(consumer_rejects, records_every_reason_acks_and_keeps_indexing)
{
    aw_hmac_key *key = aw_test_key();
    redisContext *c = aw_test_redis_connect(&redis);
    aw_test_pipe pipe = {c, 0, 0};
    aw_test_proc daemon;
    aw_store_stats st;
    char data[4096], good_sig[65];
    size_t len;
    const char *args[] = {"--audit-hmac-key-file",
                          keyfile,
                          "--streams-hmac-key-file",
                          keyfile,
                          "--claim-idle-ms",
                          "300",
                          "--max-deliveries",
                          "3",
                          NULL};

    aw_test_pipe_audit(&pipe, AUDIT, key, &(aw_test_audit){.id = "good-1"});
    publish_text(&pipe, key, "not-json", "this is not json");
    publish_text(&pipe, key, "not-object", "[1,2,3]");
    publish_text(
        &pipe, key, "dup-key",
        "{\"id\":\"a\",\"id\":\"b\",\"zone_id\":\"z\",\"occurred_at\":\"2026-05-21T12:00:00Z\"}");
    publish_text(
        &pipe, key, "bad-utf8",
        "{\"id\":\"u\",\"zone_id\":\"z\xff\xfe\",\"occurred_at\":\"2026-05-21T12:00:00Z\"}");
    static const char with_nul[] =
        "{\"id\":\"n\",\"zone_id\":\"z\0z\",\"occurred_at\":\"2026-05-21T12:00:00Z\"}";
    publish_data(&pipe, key, "nul", with_nul, sizeof with_nul - 1);
    publish_text(&pipe, key, "missing",
                 "{\"id\":\"m\",\"occurred_at\":\"2026-05-21T12:00:00Z\"}");
    publish_text(
        &pipe, key, "wrong-type",
        "{\"id\":\"w\",\"zone_id\":5,\"occurred_at\":\"2026-05-21T12:00:00Z\"}");
    publish_text(
        &pipe, key, "bad-time",
        "{\"id\":\"t\",\"zone_id\":\"z\",\"occurred_at\":\"yesterday\"}");

    /* A 10 MiB field. */
    char *big = malloc(BIG_BYTES);
    cr_assert(big);
    memset(big, 'x', BIG_BYTES);
    len = aw_test_audit_data(&(aw_test_audit){.id = "big"}, data, sizeof data);
    aw_test_sign(key, data, len, good_sig);
    {
        const char *fields[] = {"id",  "big",    "data",    data,
                                "sig", good_sig, "padding", big};
        size_t lens[] = {2, 3, 4, len, 3, 64, 7, BIG_BYTES};
        aw_test_pipe_xadd(&pipe, AUDIT, fields, lens, 4);
    }
    free(big);

    /* Signatures. */
    len = aw_test_audit_data(&(aw_test_audit){.id = "unsigned"}, data,
                             sizeof data);
    {
        const char *fields[] = {"id", "unsigned", "data", data};
        aw_test_pipe_xadd(&pipe, AUDIT, fields, NULL, 2);
    }
    len =
        aw_test_audit_data(&(aw_test_audit){.id = "forged"}, data, sizeof data);
    {
        const char *fields[] = {"id", "forged", "data", data, "sig", good_sig};
        aw_test_pipe_xadd(&pipe, AUDIT, fields, NULL, 3);
    }

    /* A lifecycle event nobody knows, correctly signed. */
    {
        char sig[65];
        const char *fields[8] = {"event",  "explode",          "zone_id",
                                 "zone-1", "agent_session_id", "as-1"};
        aw_test_sign_stream(key, LIFECYCLE, fields, 3, sig);
        fields[6] = "_sig";
        fields[7] = sig;
        aw_test_pipe_xadd(&pipe, LIFECYCLE, fields, NULL, 4);
    }
    aw_test_pipe_audit(&pipe, AUDIT, key, &(aw_test_audit){.id = "good-2"});
    aw_test_pipe_flush(&pipe);

    /* A poisonous entry a dead consumer already had delivered many times. */
    aw_test_pipe_audit(&pipe, "caracal.delegations.invalidate", NULL,
                       &(aw_test_audit){.id = "poison"});
    aw_test_pipe_flush(&pipe);
    freeReplyObject(aw_test_command(
        c, "XGROUP CREATE caracal.delegations.invalidate auditwatch 0"));
    redisReply *read =
        aw_test_command(c, "XREADGROUP GROUP auditwatch ghost STREAMS "
                           "caracal.delegations.invalidate >");
    const char *poison_id =
        read->element[0]->element[1]->element[0]->element[0]->str;
    freeReplyObject(aw_test_command(
        c,
        "XCLAIM caracal.delegations.invalidate auditwatch ghost 0 %s "
        "RETRYCOUNT 10",
        poison_id));
    freeReplyObject(read);

    aw_test_daemon_start(&daemon, dir, "rejects", &redis, db, args, NULL);
    cr_assert(aw_test_wait_entries(db, 15, 60000),
              "not every entry reached the index");
    const char *all[] = {AUDIT, LIFECYCLE, "caracal.delegations.invalidate",
                         NULL};
    cr_assert(aw_test_wait_no_pending(c, all, "auditwatch", 10000),
              "rejected entries were not acknowledged");

    /* Still running: a good entry published now is indexed too. */
    aw_test_pipe_audit(&pipe, AUDIT, key, &(aw_test_audit){.id = "good-3"});
    aw_test_pipe_flush(&pipe);
    cr_assert(aw_test_wait_entries(db, 16, 20000),
              "the daemon stopped indexing");
    aw_test_daemon_stop(&daemon, 5000);

    reasons got = {0};
    aw_store *store;
    aw_error err = {0};
    cr_assert(aw_store_open(db, AW_STORE_READONLY, &store, &err) == AW_OK, "%s",
              err.msg);
    cr_assert(aw_store_query_rejected(store, 0, 0, count_reason, &got, &err) ==
                  AW_OK,
              "%s", err.msg);
    cr_assert(aw_store_get_stats(store, &st, &err) == AW_OK);
    aw_store_close(store);

    static const aw_reject_reason expected[] = {
        AW_REJECT_NOT_JSON,
        AW_REJECT_NOT_OBJECT,
        AW_REJECT_DUPLICATE_KEY,
        AW_REJECT_INVALID_UTF8,
        AW_REJECT_EMBEDDED_NUL,
        AW_REJECT_MISSING_FIELD,
        AW_REJECT_WRONG_TYPE,
        AW_REJECT_BAD_TIME,
        AW_REJECT_OVERSIZED,
        AW_REJECT_SIGNATURE_MISSING,
        AW_REJECT_SIGNATURE_INVALID,
        AW_REJECT_BAD_VALUE,
        AW_REJECT_TOO_MANY_DELIVERIES,
    };
    for (size_t i = 0; i < sizeof expected / sizeof *expected; i++)
        cr_expect_eq(got.count[expected[i]], 1, "%s: %d rows",
                     aw_reject_reason_name(expected[i]),
                     got.count[expected[i]]);
    cr_assert_eq(got.total, 13);
    cr_assert_eq(st.events, 3,
                 "the good entries around the bad ones are indexed");
    redisFree(c);
    aw_hmac_key_free(key);
}

/* The index refuses one event (a trigger, as a schema constraint would):
 * the daemon finds that entry by splitting its batch, rejects it with the
 * index's reason, commits and acknowledges the rest, and goes on. */
Test(consumer_rejects,
     an_entry_the_index_refuses_is_rejected_and_the_rest_commits)
{
    const char *streams[] = {AUDIT, NULL};
    aw_test_proc daemon;
    redisContext *c = aw_test_redis_connect(&redis);
    aw_test_pipe pipe = {c, 0, 0};
    aw_store_stats st;
    sqlite3 *h;

    aw_test_daemon_start(&daemon, dir, "refused", &redis, db, NULL, NULL);
    aw_test_publish_audit_range(&pipe, AUDIT, 0, 1);
    cr_assert(aw_test_wait_entries(db, 1, 20000));
    cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
    cr_assert_eq(
        sqlite3_exec(h,
                     "CREATE TRIGGER refuse BEFORE INSERT ON events "
                     "WHEN NEW.event_id = 'evt-000057' "
                     "BEGIN SELECT RAISE(ABORT, 'this event is refused'); END",
                     NULL, NULL, NULL),
        SQLITE_OK, "%s", sqlite3_errmsg(h));
    sqlite3_close(h);
    aw_test_publish_audit_range(&pipe, AUDIT, 1, 200);
    cr_assert(aw_test_wait_entries(db, 200, 20000),
              "ingest wedged behind the refused entry");
    cr_assert(aw_test_wait_no_pending(c, streams, "auditwatch", 10000),
              "entries left unacknowledged");
    aw_test_daemon_stop(&daemon, 5000);
    cr_assert(aw_test_index_stats(db, &st));
    cr_expect_eq(st.events, 199);
    cr_expect_eq(st.rejected, 1);
    char *log = aw_test_read_file(daemon.err_path, NULL);
    cr_expect(log && strstr(log, "event=entry_refused_by_index") &&
                  strstr(log, "this event is refused"),
              "%s", log);
    free(log);
    redisFree(c);
}
