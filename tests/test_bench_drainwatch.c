/* test_bench_drainwatch.c -- bench/run's drain clock: drainwatch calls a
 * backlog drained only once every entry is read and acknowledged, and
 * stops with a reason when the consumer it watches dies or time runs out.
 * A wrong answer here would be a wrong drain rate in every benchmark. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/support/support.h"

static aw_test_redis redis;
static char dir[PATH_MAX];

static void setup(void)
{
    aw_test_tmpdir(dir);
    aw_test_redis_start(&redis, false);
}

static void teardown(void)
{
    aw_test_redis_destroy(&redis);
    aw_test_rmtree(dir);
}

TestSuite(bench_drainwatch, .init = setup, .fini = teardown, .timeout = 60);

/* Starts drainwatch on group g of streams a and b, waiting for target
 * entries, sampling pid's CPU; extra args (NULL-terminated) come first. */
static void watch(aw_test_proc *p, const char *tag, int target, pid_t pid,
                  const char *const *extra)
{
    char url[128], target_s[16], pid_s[16], t0[32];
    snprintf(target_s, sizeof target_s, "%d", target);
    snprintf(pid_s, sizeof pid_s, "%d", (int)pid);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    snprintf(t0, sizeof t0, "%lld",
             (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000);
    const char *args[32];
    size_t n = 0;
    for (const char *const *e = extra; e && *e; e++)
        args[n++] = *e;
    const char *fixed[] = {"--redis",
                           aw_test_redis_url(&redis, url),
                           "--group",
                           "g",
                           "--target",
                           target_s,
                           "--pid",
                           pid_s,
                           "--t0-us",
                           t0,
                           "--interval-ms",
                           "20",
                           "a",
                           "b",
                           NULL};
    for (const char *const *f = fixed; *f; f++)
        args[n++] = *f;
    args[n] = NULL;
    aw_test_spawn_program(p, AW_DRAINWATCH, dir, tag, args, NULL);
}

/* The entries-read column of the last sample drainwatch printed. */
static long long last_entries_read(const aw_test_proc *p, int *samples)
{
    char *out = aw_test_read_file(p->out_path, NULL);
    cr_assert_not_null(out);
    long long read = -1;
    *samples = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        double ms;
        long long entries, cpu;
        cr_assert_eq(sscanf(line, "%lf %lld %lld", &ms, &entries, &cpu), 3,
                     "sample line \"%s\"", line);
        read = entries;
        (*samples)++;
    }
    free(out);
    return read;
}

Test(bench_drainwatch, drained_only_once_every_entry_is_read_and_acked)
{
    redisContext *c = aw_test_redis_connect(&redis);
    char id[3][64];
    const char *stream_of[3] = {"a", "a", "b"};
    for (int i = 0; i < 3; i++) {
        redisReply *r = aw_test_command(c, "XADD %s * k v", stream_of[i]);
        snprintf(id[i], sizeof id[i], "%s", r->str);
        freeReplyObject(r);
    }
    freeReplyObject(aw_test_command(c, "XGROUP CREATE a g 0"));
    freeReplyObject(aw_test_command(c, "XGROUP CREATE b g 0"));

    aw_test_proc w;
    watch(&w, "drain", 3, getpid(), NULL);
    cr_assert_not(aw_test_wait(&w, 300), "drained before anything was read");

    freeReplyObject(
        aw_test_command(c, "XREADGROUP GROUP g c1 COUNT 10 STREAMS a b > >"));
    cr_assert_not(aw_test_wait(&w, 300),
                  "drained while all three entries were still pending");

    freeReplyObject(aw_test_command(c, "XACK a g %s %s", id[0], id[1]));
    cr_assert_not(aw_test_wait(&w, 300),
                  "drained while one entry was still pending");

    freeReplyObject(aw_test_command(c, "XACK b g %s", id[2]));
    cr_assert(aw_test_wait(&w, 5000), "not drained after every ack");
    cr_assert_eq(w.status, 0);
    int samples = 0;
    cr_assert_eq(last_entries_read(&w, &samples), 3,
                 "the last sample is not the drained one");
    cr_assert_gt(samples, 10, "only %d samples over ~1 s at 20 ms", samples);
    redisFree(c);
}

Test(bench_drainwatch, a_watched_process_that_exits_ends_the_wait)
{
    aw_test_proc gone;
    aw_test_spawn_program(&gone, "/bin/true", dir, "true",
                          (const char *[]){NULL}, NULL);
    pid_t gone_pid = gone.pid;
    cr_assert(aw_test_wait(&gone, 5000));

    aw_test_proc w;
    watch(&w, "consumer-gone", 1, gone_pid, NULL);
    cr_assert(aw_test_wait(&w, 5000), "still waiting on an exited consumer");
    cr_assert_eq(w.status, 4);
    char *err = aw_test_read_file(w.err_path, NULL);
    char expected[64];
    snprintf(expected, sizeof expected, "process %d exited", (int)gone_pid);
    cr_assert(strstr(err, expected), "stderr: %s", err);
    free(err);

    char alive_pid[16];
    snprintf(alive_pid, sizeof alive_pid, "%d", (int)gone_pid);
    watch(&w, "producer-gone", 1, getpid(),
          (const char *[]){"--alive", alive_pid, NULL});
    cr_assert(aw_test_wait(&w, 5000), "still waiting on an exited producer");
    cr_assert_eq(w.status, 4);
}

Test(bench_drainwatch, not_drained_by_the_deadline_is_a_failure)
{
    redisContext *c = aw_test_redis_connect(&redis);
    freeReplyObject(aw_test_command(c, "XADD a * k v"));
    freeReplyObject(aw_test_command(c, "XGROUP CREATE a g 0"));
    aw_test_proc w;
    watch(&w, "deadline", 1, getpid(),
          (const char *[]){"--deadline", "1", NULL});
    cr_assert(aw_test_wait(&w, 5000), "the deadline did not end the wait");
    cr_assert_eq(w.status, 3);
    char *err = aw_test_read_file(w.err_path, NULL);
    cr_assert(strstr(err, "not drained after 1s (read 0 of 1"), "stderr: %s",
              err);
    free(err);
    redisFree(c);
}
