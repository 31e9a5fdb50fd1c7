/* test_consumer_calls_log.c -- `run --calls-log` follows an access log in
 * place through a real daemon: each complete line becomes exactly one
 * observed call, a line still being written waits for its newline, and
 * neither a create-mode rotation (rename, a new file; the old one still
 * written to), nor a copytruncate one, nor a restart in the middle skips
 * or repeats a line. A line longer than the daemon takes (256 KiB) is one
 * oversized rejection, however many reads and restarts its rest spans.
 * Field names are mapped as for import-calls. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/support/support.h"

static aw_test_redis redis;
static char dir[PATH_MAX], db[PATH_MAX], logpath[PATH_MAX], rotated[PATH_MAX];

static void setup(void)
{
    aw_test_world_up(&redis, false, dir, db);
    aw_test_path(dir, "access.log", logpath);
    aw_test_path(dir, "access.log.1", rotated);
}
static void teardown(void)
{
    aw_test_world_down(&redis, dir);
}

TestSuite(consumer_calls_log, .init = setup, .fini = teardown, .timeout = 120);

static void append(const char *path, const char *text)
{
    FILE *f = fopen(path, "a");
    cr_assert(f, "cannot append to %s", path);
    cr_assert(fputs(text, f) >= 0);
    cr_assert(fclose(f) == 0);
}

/* One nginx-style line for request r-<n>. */
static void append_call(const char *path, int n)
{
    char line[256];
    snprintf(
        line, sizeof line,
        "{\"rid\":\"r-%d\",\"code\":200,\"ts\":\"2026-05-21T12:00:%02dZ\",\"uri\":\"/v1/x\"}\n",
        n, n);
    append(path, line);
}

static bool calls_reach(void *ud)
{
    aw_store_stats st;
    return aw_test_index_stats(db, &st) && st.calls >= *(int64_t *)ud;
}

static void wait_calls(int64_t n)
{
    aw_store_stats st = {0};
    bool ok = aw_test_wait_for(calls_reach, &n, 20000);
    aw_test_index_stats(db, &st);
    cr_assert(ok, "%lld calls indexed, waited for %lld", (long long)st.calls,
              (long long)n);
}

/* Every request r-1..r-n exactly once in the calls table, nothing else. */
static void assert_each_line_once(int n)
{
    sqlite3 *s;
    sqlite3_stmt *q;
    int rows = 0;
    cr_assert_eq(sqlite3_open_v2(db, &s, SQLITE_OPEN_READONLY, NULL),
                 SQLITE_OK);
    cr_assert_eq(
        sqlite3_prepare_v2(
            s, "SELECT request_id, count(*) FROM calls GROUP BY request_id", -1,
            &q, NULL),
        SQLITE_OK, "%s", sqlite3_errmsg(s));
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *rid = (const char *)sqlite3_column_text(q, 0);
        int k = atoi(rid + 2);
        cr_assert(strncmp(rid, "r-", 2) == 0 && k >= 1 && k <= n,
                  "unexpected call %s", rid);
        cr_assert_eq(sqlite3_column_int(q, 1), 1, "%s indexed %d times", rid,
                     sqlite3_column_int(q, 1));
        rows++;
    }
    sqlite3_finalize(q);
    sqlite3_close(s);
    cr_assert_eq(rows, n, "%d distinct calls for %d lines", rows, n);
}

static void start(aw_test_proc *p, const char *tag)
{
    const char *args[] = {"--calls-log",
                          logpath,
                          "--request-id-field",
                          "rid",
                          "--status-field",
                          "code",
                          "--time-field",
                          "ts",
                          NULL};
    aw_test_daemon_start(p, dir, tag, &redis, db, args, NULL);
}

Test(consumer_calls_log, every_line_once_through_rotations_and_a_restart)
{
    aw_test_proc daemon;
    int fd;

    append_call(logpath, 1);
    append_call(logpath, 2);
    append_call(logpath, 3);
    append(logpath, "{\"rid\":\"r-4\",\"code\":200,"); /* still being written */
    start(&daemon, "first");
    wait_calls(3);
    append(logpath, "\"ts\":\"2026-05-21T12:00:04Z\"}\n");
    wait_calls(4);

    /* create: rename, the writer still appends to the old file, then a new one */
    cr_assert(rename(logpath, rotated) == 0);
    append_call(rotated, 5);
    append_call(logpath, 6);
    wait_calls(6);

    /* a restart, with a line written while stopped */
    aw_test_daemon_stop(&daemon, 10000);
    append_call(logpath, 7);
    start(&daemon, "second");
    wait_calls(7);

    /* copytruncate: the same file, emptied, then written again */
    cr_assert((fd = open(logpath, O_WRONLY | O_TRUNC)) >= 0);
    close(fd);
    append_call(logpath, 8);
    wait_calls(8);
    append_call(logpath, 9);
    wait_calls(9);

    aw_test_daemon_stop(&daemon, 10000);
    assert_each_line_once(9);
}

Test(consumer_calls_log,
     a_rotation_while_stopped_finishes_the_old_file_from_its_first_name)
{
    aw_test_proc daemon;

    append_call(logpath, 1);
    start(&daemon, "before");
    wait_calls(1);
    aw_test_daemon_stop(&daemon, 10000);
    append_call(logpath, 2); /* after the stop, before the rotation */
    cr_assert(rename(logpath, rotated) == 0);
    append_call(logpath, 3);
    start(&daemon, "after");
    wait_calls(3);
    aw_test_daemon_stop(&daemon, 10000);
    assert_each_line_once(3);
}

/* ---- Over-long lines ---------------------------------------------------- */

#define LONG_LINE (300 * 1024) /* over calls_log.c's 256 KiB */

/* bytes of an over-long line's middle: no newline */
static void append_padding(const char *path, size_t bytes)
{
    char *pad = malloc(bytes + 1);
    cr_assert(pad);
    memset(pad, 'x', bytes);
    pad[bytes] = '\0';
    append(path, pad);
    free(pad);
}

static bool rejects_reach(void *ud)
{
    aw_store_stats st;
    return aw_test_index_stats(db, &st) && st.rejected >= *(int64_t *)ud;
}

/* Exactly one rejection in the index, and it is the oversized one. */
static void assert_one_oversized_rejection(void)
{
    sqlite3 *s;
    sqlite3_stmt *q;
    cr_assert_eq(sqlite3_open_v2(db, &s, SQLITE_OPEN_READONLY, NULL),
                 SQLITE_OK);
    cr_assert_eq(
        sqlite3_prepare_v2(s, "SELECT reason FROM rejected", -1, &q, NULL),
        SQLITE_OK, "%s", sqlite3_errmsg(s));
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW, "the over-long line vanished");
    cr_assert_str_eq((const char *)sqlite3_column_text(q, 0), "oversized");
    cr_assert_eq(sqlite3_step(q), SQLITE_DONE,
                 "the rest of the over-long line was taken as another line");
    sqlite3_finalize(q);
    sqlite3_close(s);
}

/* The committed position has consumed the whole file. */
static bool committed_to_the_end(void *ud)
{
    sqlite3 *s;
    sqlite3_stmt *q;
    struct stat st;
    bool yes = false;
    (void)ud;
    if (stat(logpath, &st) != 0 ||
        sqlite3_open_v2(db, &s, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        return false;
    if (sqlite3_prepare_v2(s, "SELECT offset FROM calls_log_positions", -1, &q,
                           NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        yes = sqlite3_column_int64(q, 0) == (sqlite3_int64)st.st_size;
    sqlite3_finalize(q);
    sqlite3_close(s);
    return yes;
}

/* r-1, then an over-long line not yet ended. */
static void append_call_and_long_line_start(void)
{
    append_call(logpath, 1);
    append(logpath, "{\"rid\":\"r-long\",\"pad\":\"");
    append_padding(logpath, LONG_LINE);
}

static void assert_two_calls_one_rejection(aw_test_proc *daemon)
{
    wait_calls(2);
    aw_test_daemon_stop(daemon, 10000);
    assert_each_line_once(2);
    assert_one_oversized_rejection();
}

Test(consumer_calls_log, an_over_long_line_is_one_oversized_rejection)
{
    aw_test_proc daemon;
    append_call_and_long_line_start();
    append(logpath, "\"}\n");
    append_call(logpath, 2);
    start(&daemon, "long");
    assert_two_calls_one_rejection(&daemon);
}

Test(consumer_calls_log,
     an_over_long_line_spanning_reads_and_a_restart_is_one_rejection)
{
    aw_test_proc daemon;
    int64_t one = 1;
    append_call_and_long_line_start(); /* still being written */
    start(&daemon, "before");
    wait_calls(1);
    cr_assert(aw_test_wait_for(rejects_reach, &one, 20000),
              "an unfinished over-long line was waited on");
    append_padding(logpath, 100 * 1024); /* skipped while running */
    cr_assert(aw_test_wait_for(committed_to_the_end, NULL, 20000),
              "the rest of an over-long line was not skipped");
    aw_test_daemon_stop(&daemon, 10000);
    append_padding(logpath, 100 * 1024); /* written while stopped */
    append(logpath, "\"}\n");
    append_call(logpath, 2);
    start(&daemon, "after");
    assert_two_calls_one_rejection(&daemon);
}
