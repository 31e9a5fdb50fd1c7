/* test_consumer_ingest.c -- the daemon against a real redis-server: what is
 * published ends up in the index exactly once, and is acknowledged only
 * once it is there. */
#include <criterion/criterion.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/support.h"

#define AUDIT  "caracal.audit.events"
#define REVOKE "caracal.sessions.revoke"

static const char *const all_streams[] = {AUDIT,
                                          REVOKE,
                                          "caracal.agents.lifecycle",
                                          "caracal.delegations.invalidate",
                                          "auditwatch.calls",
                                          NULL};

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

TestSuite(consumer_ingest, .init = setup, .fini = teardown, .timeout = 120);

/* A signed sessions.revoke entry naming one authority record. */
static void publish_revocation(aw_test_pipe *p, aw_hmac_key *key, int i)
{
    char session[32], sig[65];
    const char *fields[8] = {"zone_id", "zone-1", "session_id",
                             session,   "reason", "grant_revoked"};
    snprintf(session, sizeof session, "authority-record-%d", i);
    aw_test_sign_stream(key, REVOKE, fields, 3, sig);
    fields[6] = "_sig";
    fields[7] = sig;
    aw_test_pipe_xadd(p, REVOKE, fields, NULL, 4);
}

/* The Caracal fixture's bytes, exactly as published, signed. */
static void publish_fixture(aw_test_pipe *p, aw_hmac_key *key)
{
    char path[PATH_MAX], sig[65];
    size_t len;
    char *data = aw_test_read_file(
        aw_test_path(AW_FIXTURES_DIR, "audit-event.allow.valid.json", path),
        &len);
    cr_assert(data);
    aw_test_sign(key, data, len, sig);
    const char *fields[] = {"id", "req-1", "data", data, "sig", sig};
    size_t lens[] = {2, 5, 4, len, 3, 64};
    aw_test_pipe_xadd(p, AUDIT, fields, lens, 3);
    free(data);
}

typedef struct found {
    int n;
    aw_event_row row;
    char zone[64], type[64], request[64], decision[64], resource[64],
        status[64];
} found;

static int keep_row(const aw_event_row *row, void *ud)
{
    found *f = ud;
    f->n++;
    f->row = *row;
    snprintf(f->zone, sizeof f->zone, "%s", row->zone_id);
    snprintf(f->type, sizeof f->type, "%s",
             row->event_type ? row->event_type : "");
    snprintf(f->request, sizeof f->request, "%s",
             row->request_id ? row->request_id : "");
    snprintf(f->decision, sizeof f->decision, "%s",
             row->decision ? row->decision : "");
    snprintf(f->resource, sizeof f->resource, "%s",
             row->resource ? row->resource : "");
    snprintf(f->status, sizeof f->status, "%s",
             row->evaluation_status ? row->evaluation_status : "");
    return 0;
}

Test(consumer_ingest, indexes_signed_events_and_revocations_exactly_once)
{
    enum { EVENTS = 10000, REVOCATIONS = 100 };
    aw_hmac_key *key = aw_test_key();
    redisContext *c = aw_test_redis_connect(&redis);
    aw_test_pipe pipe = {c, 0, 0};
    aw_test_proc daemon;
    aw_store_stats st;
    const char *args[] = {"--audit-hmac-key-file", keyfile,
                          "--streams-hmac-key-file", keyfile, NULL};

    aw_test_daemon_start(&daemon, dir, "ingest", &redis, db, args, NULL);
    for (int i = 0; i < EVENTS; i++) {
        char id[32];
        snprintf(id, sizeof id, "evt-%05d", i);
        aw_test_pipe_audit(&pipe, AUDIT, key, &(aw_test_audit){.id = id});
        if (i % 100 == 0)
            publish_revocation(&pipe, key, i / 100);
    }
    publish_fixture(&pipe, key);
    aw_test_pipe_flush(&pipe);

    cr_assert(aw_test_wait_entries(db, EVENTS + REVOCATIONS + 1, 60000),
              "the index did not get every entry");
    cr_assert(aw_test_wait_no_pending(c, all_streams, "auditwatch", 10000),
              "entries are still pending after they were indexed");
    aw_test_daemon_stop(&daemon, 5000);

    cr_assert(aw_test_index_stats(db, &st));
    cr_assert_eq(st.entries, EVENTS + REVOCATIONS + 1);
    cr_assert_eq(st.events, EVENTS + 1);
    cr_assert_eq(st.revocations, REVOCATIONS);
    cr_assert_eq(st.rejected, 0);
    cr_assert_eq(aw_test_group_lag(c, AUDIT, "auditwatch"), 0);

    /* The fixture's fields are queryable as Caracal wrote them. */
    aw_store *store;
    aw_error err = {0};
    found f = {0};
    int64_t when;
    cr_assert(aw_store_open(db, AW_STORE_READONLY, &store, &err) == AW_OK, "%s",
              err.msg);
    cr_assert(aw_store_query_events(store,
                                    &(aw_event_filter){.event_id = "audit-1"},
                                    keep_row, &f, &err) == AW_OK,
              "%s", err.msg);
    aw_store_close(store);
    cr_assert_eq(f.n, 1);
    cr_assert_str_eq(f.zone, "zone-1");
    cr_assert_str_eq(f.type, "token.exchange");
    cr_assert_str_eq(f.request, "req-1");
    cr_assert_str_eq(f.decision, "allow");
    cr_assert_str_eq(f.resource, "resource://api");
    cr_assert_str_eq(f.status, "complete");
    cr_assert(f.row.is_signed);
    cr_assert(aw_time_parse_rfc3339("2026-05-21T12:00:00Z", 20, &when, &err) ==
              AW_OK);
    cr_assert_eq(f.row.occurred_at_ns, when);

    redisFree(c);
    aw_hmac_key_free(key);
}

/* Everything published was read by the group, and all of it is still
 * pending: read, not acknowledged. */
static bool read_but_pending(void *ud)
{
    redisContext *c = ud;
    return aw_test_group_lag(c, AUDIT, "auditwatch") == 0 &&
           aw_test_pending_count(c, AUDIT, "auditwatch") == 50;
}

Test(consumer_ingest, acks_only_after_commit)
{
    aw_test_redis *r = &redis;
    redisContext *c = aw_test_redis_connect(r);
    aw_test_pipe pipe = {c, 0, 0};
    aw_test_proc daemon;
    sqlite3 *lock;
    aw_store_stats st;
    const char *streams[] = {AUDIT, NULL};

    /* The index exists and the daemon is caught up. */
    aw_test_daemon_start(&daemon, dir, "acks", r, db, NULL, NULL);
    aw_test_pipe_audit(&pipe, AUDIT, NULL, &(aw_test_audit){.id = "before"});
    aw_test_pipe_flush(&pipe);
    cr_assert(aw_test_wait_entries(db, 1, 20000));
    cr_assert(aw_test_wait_no_pending(c, streams, "auditwatch", 10000));

    /* While another writer holds the index, nothing can commit... */
    cr_assert(sqlite3_open(db, &lock) == SQLITE_OK);
    cr_assert(sqlite3_exec(lock, "BEGIN IMMEDIATE", NULL, NULL, NULL) ==
              SQLITE_OK);
    for (int i = 0; i < 50; i++) {
        char id[32];
        snprintf(id, sizeof id, "during-%d", i);
        aw_test_pipe_audit(&pipe, AUDIT, NULL, &(aw_test_audit){.id = id});
    }
    aw_test_pipe_flush(&pipe);
    /* ...so the entries are read but stay pending. */
    cr_assert(aw_test_wait_for(read_but_pending, c, 20000),
              "the daemon did not read them");

    sqlite3_exec(lock, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(lock);
    cr_assert(aw_test_wait_entries(db, 51, 60000), "the batch was not retried");
    cr_assert(aw_test_wait_no_pending(c, streams, "auditwatch", 10000));
    aw_test_daemon_stop(&daemon, 5000);
    cr_assert(aw_test_index_stats(db, &st));
    cr_assert_eq(st.events, 51);
    redisFree(c);
}
