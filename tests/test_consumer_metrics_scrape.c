/* test_consumer_metrics_scrape.c -- /metrics of a running daemon, scraped
 * while it ingests from a real redis-server: the figures an operator
 * graphs move the way the ingest does (entries wait with a lag and an age
 * while the index is locked, then the indexed counter rises to what was
 * published and the lag falls to 0), and a malformed and a slow client
 * cost ingest nothing. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/support.h"

#define AUDIT "caracal.audit.events"
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

static bool listening(void *ud)
{
    aw_test_proc *p = ud;
    char *err = aw_test_read_file(p->err_path, NULL);
    const char *at = err ? strstr(err, "event=metrics_listening") : NULL;
    bool yes = at && strstr(at, " port=") && strchr(strstr(at, " port="), '\n');
    free(err);
    return yes;
}

static int metrics_port(aw_test_proc *p)
{
    char *err;
    int port;
    cr_assert(aw_test_wait_for(listening, p, 10000),
              "the daemon did not log metrics_listening");
    err = aw_test_read_file(p->err_path, NULL);
    port = atoi(strstr(strstr(err, "event=metrics_listening"), " port=") + 6);
    free(err);
    return port;
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

    aw_test_daemon_start(&daemon, dir, "metrics", &redis, db, args, NULL);
    s.port = metrics_port(&daemon);
    cr_assert(aw_test_wait_for(connected, &s, 10000),
              "redis_connected never became 1");

    /* Another writer holds the index: reads go on, commits wait. */
    cr_assert_eq(sqlite3_open(db, &lock), SQLITE_OK);
    sqlite3_busy_timeout(lock, 10000);
    cr_assert_eq(sqlite3_exec(lock, "BEGIN EXCLUSIVE", NULL, NULL, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(lock));
    aw_test_publish_audit_range(&pipe, AUDIT, 0, EVENTS);

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
