/* test_consumer_metrics_scrape.c -- /metrics of a running daemon, scraped
 * while it ingests from a real redis-server: the figures an operator
 * graphs move the way the ingest does (entries wait with a lag and an age
 * while the index is locked, then the indexed counter rises to what was
 * published and the lag falls to 0), and a malformed and a slow client
 * cost ingest nothing; and Caracal's enforcer groups' lag, pending count
 * and dead letters, and audit-ingestor's lag, are what Redis holds,
 * following it as they move. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/support.h"

#define AUDIT  "caracal.audit.events"
#define REVOKE "caracal.sessions.revoke"
#define DLQ    "caracal.audit.events.dlq"
#define DEAD   "caracal.sessions.revoke.dead"
/* More than the daemon holds in memory while its commit waits (one batch
 * committing, one of GROUP_MAX_ENTRIES 4000 ready, plus one read), so some
 * stay undelivered and the lag shows. */
#define EVENTS 15000

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

TestSuite(consumer_metrics_scrape, .init = setup, .fini = teardown,
          .timeout = 120);

typedef struct scrape {
    int port;
    double indexed, lag, oldest, connected;
    bool has_lag;
} scrape;

static void take(scrape *s)
{
    char *answer =
        aw_test_http_request(s->port, "GET /metrics HTTP/1.0\r\n\r\n", 3000);
    cr_assert(strstr(answer, " 200 "), "scrape failed: %s", answer);
    cr_assert(aw_test_metric(answer,
                             "auditwatch_entries_indexed_total{stream=\"" AUDIT
                             "\"}",
                             &s->indexed),
              "%s", answer);
    cr_assert(aw_test_metric(answer,
                             "auditwatch_oldest_pending_seconds{stream=\"" AUDIT
                             "\"}",
                             &s->oldest),
              "%s", answer);
    cr_assert(
        aw_test_metric(answer, "auditwatch_redis_connected", &s->connected),
        "%s", answer);
    s->has_lag = aw_test_metric(
        answer, "auditwatch_stream_lag_entries{stream=\"" AUDIT "\"}", &s->lag);
    free(answer);
}

static bool connected(void *ud)
{
    scrape *s = ud;
    take(s);
    return s->connected == 1;
}

/* Entries delivered and waiting, none indexed: the lock holds the commit. */
static bool waiting_behind_the_lock(void *ud)
{
    scrape *s = ud;
    take(s);
    cr_assert_eq(s->indexed, 0, "indexed while the index was locked");
    return s->has_lag && s->lag > 0 && s->oldest > 0;
}

static bool all_indexed(void *ud)
{
    scrape *s = ud;
    take(s);
    return s->indexed == EVENTS && s->has_lag && s->lag == 0 && s->oldest == 0;
}

Test(consumer_metrics_scrape,
     figures_move_with_ingest_and_bad_clients_do_not_slow_it)
{
    redisContext *c = aw_test_redis_connect(&redis);
    aw_test_pipe pipe = {c, 0, 0};
    aw_test_proc daemon;
    const char *args[] = {"--metrics-listen", "127.0.0.1:0", "--batch", "100",
                          NULL};
    scrape s = {0};
    sqlite3 *lock;
    char *garbage;
    int slow;

    /* A first run creates the index and the group; then another writer
     * holds the index while a backlog waits, and the daemon starts again on
     * it: reads go on, commits wait. (Locked while the daemon runs idle,
     * the lock could catch the empty commit that follows each empty read,
     * and an idle daemon reads again only after that commit.) */
    aw_test_daemon_start(&daemon, dir, "metrics-first", &redis, db, args, NULL);
    s.port = aw_test_daemon_metrics_port(&daemon);
    cr_assert(aw_test_wait_for(connected, &s, 10000),
              "redis_connected never became 1");
    aw_test_daemon_stop(&daemon, 10000);
    cr_assert_eq(sqlite3_open(db, &lock), SQLITE_OK);
    sqlite3_busy_timeout(lock, 10000);
    cr_assert_eq(sqlite3_exec(lock, "BEGIN EXCLUSIVE", NULL, NULL, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(lock));
    aw_test_publish_audit_range(&pipe, AUDIT, 0, EVENTS);
    aw_test_daemon_start(&daemon, dir, "metrics", &redis, db, args, NULL);
    s.port = aw_test_daemon_metrics_port(&daemon);
    cr_assert(aw_test_wait_for(connected, &s, 10000),
              "redis_connected never became 1");

    /* One client never finishes its request, another sends no HTTP at all. */
    slow = aw_test_http_connect(s.port, 3000);
    cr_assert(write(slow, "GET /metr", 9) == 9);
    garbage =
        aw_test_http_request(s.port, "\x16\x03\x01 not http\r\n\r\n", 3000);
    cr_assert(!strstr(garbage, " 200 "), "%s", garbage);
    free(garbage);

    cr_assert(
        aw_test_wait_for(waiting_behind_the_lock, &s, 20000),
        "no lag or pending age seen while the index was locked (lag %g, oldest %g s)",
        s.lag, s.oldest);
    cr_assert_eq(sqlite3_exec(lock, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(lock);

    cr_assert(aw_test_wait_for(all_indexed, &s, 60000),
              "indexed %g of %d, lag %g, oldest pending %g s", s.indexed,
              EVENTS, s.lag, s.oldest);
    close(slow);
    aw_test_daemon_stop(&daemon, 10000);
    aw_test_assert_indexed_exactly(db, EVENTS);
    redisFree(c);
}

/* An empty commit of the idle daemon failed on the lock: it waits to
 * retry, and reads nothing until that commit succeeds. */
static bool idle_commit_held(void *ud)
{
    aw_test_proc *p = ud;
    char *err = aw_test_read_file(p->err_path, NULL);
    bool yes = err && strstr(err, "event=index_commit_failed entries=0");
    free(err);
    return yes;
}

static bool lag_shown(void *ud)
{
    scrape *s = ud;
    take(s);
    return s->has_lag && s->lag == EVENTS;
}

/* The lag comes from the daemon's own reads, and also from the pipeline
 * watch's XINFO GROUPS: it must show while the reads wait on the index. */
Test(consumer_metrics_scrape, lag_shows_while_an_idle_daemon_waits_on_the_index)
{
    redisContext *c = aw_test_redis_connect(&redis);
    aw_test_pipe pipe = {c, 0, 0};
    aw_test_proc daemon;
    const char *args[] = {"--metrics-listen", "127.0.0.1:0", "--enforcer-poll",
                          "200ms", NULL};
    scrape s = {0};
    sqlite3 *lock;

    aw_test_daemon_start(&daemon, dir, "idle", &redis, db, args, NULL);
    s.port = aw_test_daemon_metrics_port(&daemon);
    cr_assert(aw_test_wait_for(connected, &s, 10000),
              "redis_connected never became 1");
    cr_assert_eq(sqlite3_open(db, &lock), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(lock, "BEGIN EXCLUSIVE", NULL, NULL, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(lock));
    cr_assert(aw_test_wait_for(idle_commit_held, &daemon, 20000),
              "the idle daemon's commit never waited on the lock");
    aw_test_publish_audit_range(&pipe, AUDIT, 0, EVENTS);
    cr_assert(aw_test_wait_for(lag_shown, &s, 10000),
              "lag %g (shown: %d) while %d entries waited", s.lag, s.has_lag,
              EVENTS);
    cr_assert_eq(sqlite3_exec(lock, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(lock);
    cr_assert(aw_test_wait_for(all_indexed, &s, 60000),
              "indexed %g of %d, lag %g", s.indexed, EVENTS, s.lag);
    aw_test_daemon_stop(&daemon, 10000);
    redisFree(c);
}

/* ---- Caracal's groups and dead letters ------------------------------------ */

#define STS             "sts-revocation"
#define STS_SERIES      "{stream=\"" REVOKE "\",group=\"" STS "\"}"
#define REVOCATIONS     5
#define INGESTOR_SERIES "{stream=\"" AUDIT "\",group=\"audit-ingestor\"}"

/* The figures as Redis holds them, and as a scrape shows them. */
typedef struct caracal_figures {
    double lag, pending, oldest, dlq, dead, lifecycle_dead, ingestor_lag;
} caracal_figures;

typedef struct caracal_scrape {
    int port;
    redisContext *c;
    caracal_figures want, got;
    bool other_group_shown;
} caracal_scrape;

static long long stream_length(redisContext *c, const char *stream)
{
    redisReply *r = aw_test_command(c, "XLEN %s", stream);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

static void redis_holds(caracal_scrape *s)
{
    s->want.lag = (double)aw_test_group_lag(s->c, REVOKE, STS);
    s->want.pending = (double)aw_test_pending_count(s->c, REVOKE, STS);
    s->want.dlq = (double)stream_length(s->c, DLQ);
    s->want.dead = (double)stream_length(s->c, DEAD);
    s->want.ingestor_lag =
        (double)aw_test_group_lag(s->c, AUDIT, "audit-ingestor");
}

static bool sample(const char *page, const char *series, double *v)
{
    *v = -1;
    return aw_test_metric(page, series, v);
}

/* A scrape agrees with Redis (the watch polls every 100 ms). */
static bool scrape_agrees(void *ud)
{
    caracal_scrape *s = ud;
    char *page =
        aw_test_http_request(s->port, "GET /metrics HTTP/1.0\r\n\r\n", 3000);
    caracal_figures *g = &s->got;
    /* & rather than &&: every sample is read, for the failure message */
    bool all =
        sample(page, "auditwatch_caracal_group_lag_entries" STS_SERIES,
               &g->lag) &
        sample(page, "auditwatch_caracal_group_pending_entries" STS_SERIES,
               &g->pending) &
        sample(page,
               "auditwatch_caracal_group_oldest_unapplied_seconds" STS_SERIES,
               &g->oldest) &
        sample(page, "auditwatch_dead_letter_entries{stream=\"" DLQ "\"}",
               &g->dlq) &
        sample(page, "auditwatch_dead_letter_entries{stream=\"" DEAD "\"}",
               &g->dead) &
        sample(
            page,
            "auditwatch_dead_letter_entries{stream=\"caracal.agents.lifecycle.dead\"}",
            &g->lifecycle_dead) &
        sample(page, "auditwatch_caracal_group_lag_entries" INGESTOR_SERIES,
               &g->ingestor_lag);
    s->other_group_shown |= strstr(page, "group=\"siem-export\"") != NULL;
    free(page);
    redis_holds(s);
    return all && g->lag == s->want.lag && g->pending == s->want.pending &&
           g->dlq == s->want.dlq && g->dead == s->want.dead &&
           g->lifecycle_dead == 0 && g->ingestor_lag == s->want.ingestor_lag &&
           (g->pending + g->lag > 0 ? g->oldest > 0 : g->oldest == 0);
}

static void assert_scrape_agrees(caracal_scrape *s, const char *when)
{
    cr_assert(aw_test_wait_for(scrape_agrees, s, 10000),
              "%s: /metrics shows lag %g pending %g oldest %g s, dlq %g dead "
              "%g lifecycle dead %g ingestor lag %g; Redis holds lag %g "
              "pending %g, dlq %g dead %g ingestor lag %g",
              when, s->got.lag, s->got.pending, s->got.oldest, s->got.dlq,
              s->got.dead, s->got.lifecycle_dead, s->got.ingestor_lag,
              s->want.lag, s->want.pending, s->want.dlq, s->want.dead,
              s->want.ingestor_lag);
}

/* The counts the test set up (not the age, which the clock moves). */
static void assert_counts(const caracal_figures *got,
                          const caracal_figures *want)
{
    cr_assert_eq(got->lag, want->lag);
    cr_assert_eq(got->pending, want->pending);
    cr_assert_eq(got->dlq, want->dlq);
    cr_assert_eq(got->dead, want->dead);
    cr_assert_eq(got->lifecycle_dead, 0);
    cr_assert_eq(got->ingestor_lag, want->ingestor_lag);
}

static void xadd(redisContext *c, const char *stream, const char *field,
                 const char *value)
{
    freeReplyObject(
        aw_test_command(c, "XADD %s * %s %s", stream, field, value));
}

/* STS reads n revocations (a consumer of Caracal's group: the test, not
 * auditwatch) and acknowledges ack of them. */
static void sts_reads(redisContext *c, int n, int ack)
{
    redisReply *r = aw_test_command(
        c, "XREADGROUP GROUP " STS " sts-1 COUNT %d STREAMS " REVOKE " >", n);
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 1);
    const redisReply *entries = r->element[0]->element[1];
    cr_assert_eq(entries->elements, (size_t)n);
    for (int i = 0; i < ack; i++)
        freeReplyObject(aw_test_command(c, "XACK " REVOKE " " STS " %s",
                                        entries->element[i]->element[0]->str));
    freeReplyObject(r);
}

Test(consumer_metrics_scrape,
     caracal_groups_lag_pending_and_dead_letters_follow_redis)
{
    redisContext *c = aw_test_redis_connect(&redis);
    aw_test_proc daemon;
    const char *args[] = {"--metrics-listen", "127.0.0.1:0", "--enforcer-poll",
                          "100ms", NULL};
    caracal_scrape s = {.c = c};

    /* Caracal's groups at `$`, as Caracal creates them, then revocations:
     * STS has read three, acknowledged one; two it never read. */
    freeReplyObject(
        aw_test_command(c, "XGROUP CREATE " REVOKE " " STS " $ MKSTREAM"));
    freeReplyObject(
        aw_test_command(c, "XGROUP CREATE " AUDIT " siem-export $ MKSTREAM"));
    freeReplyObject(aw_test_command(c, "XGROUP CREATE " AUDIT
                                       " audit-ingestor $ MKSTREAM"));
    for (int i = 0; i < REVOCATIONS; i++)
        xadd(c, REVOKE, "session_id", "s-1");
    sts_reads(c, 3, 1);
    xadd(c, DLQ, "reason", "poison");
    xadd(c, DLQ, "reason", "poison");
    xadd(c, DEAD, "original_id", "1-1");
    for (int i = 0; i < 3; i++)
        xadd(c, AUDIT, "id", "evt-unread"); /* audit-ingestor is not running */

    aw_test_daemon_start(&daemon, dir, "caracal", &redis, db, args, NULL);
    s.port = aw_test_daemon_metrics_port(&daemon);
    assert_scrape_agrees(&s, "behind");
    assert_counts(
        &s.got,
        &(caracal_figures){
            .lag = 2, .pending = 2, .dlq = 2, .dead = 1, .ingestor_lag = 3});

    /* STS catches up and acknowledges everything; more dead letters. */
    redisReply *pending =
        aw_test_command(c, "XPENDING " REVOKE " " STS " - + 10");
    for (size_t i = 0; i < pending->elements; i++)
        freeReplyObject(aw_test_command(c, "XACK " REVOKE " " STS " %s",
                                        pending->element[i]->element[0]->str));
    freeReplyObject(pending);
    sts_reads(c, 2, 2);
    xadd(c, DLQ, "reason", "poison");
    xadd(c, DEAD, "original_id", "1-2");
    assert_scrape_agrees(&s, "caught up");
    assert_counts(&s.got,
                  &(caracal_figures){.dlq = 3, .dead = 2, .ingestor_lag = 3});
    cr_assert_eq(s.got.oldest, 0);
    cr_assert(!s.other_group_shown,
              "a group that is neither an enforcer nor audit-ingestor shown");

    aw_test_daemon_stop(&daemon, 10000);
    redisFree(c);
}
