/* drainwatch.c -- how far a consumer group has drained, sampled for
 * bench/run without taking the CPU it measures.
 *
 * bench/run used to poll from the shell: every 0.1 s a redis-cli, an awk
 * and a subshell, ~13 ms of CPU a poll, ~11 % of a core taken from the
 * daemon on the 2-core machine the benchmark runs on. This keeps one
 * connection and sends one pipelined XINFO GROUPS per stream a poll.
 *
 * Every interval it prints
 *   MS ENTRIES_READ CPU_US
 * (milliseconds since --t0-us, the group's entries-read summed over the
 * streams, the user + system time of --pid in microseconds), and stops
 * with status 0 after printing the sample at which the group has read
 * --target entries with none pending and no lag. Status 3: not drained
 * within --deadline seconds; 4: --pid or an --alive process exited first;
 * 1: Redis failed; 2: usage.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "consumer/consumer.h"

#define DW_MAX_STREAMS 16
#define DW_MAX_ALIVE   4

typedef struct group_figures {
    long long entries_read, pending, lag;
    bool lag_known; /* every stream reported its lag */
} group_figures;

static int64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* User + system time of pid in microseconds, or -1 once it has exited
 * (a zombie its parent has not waited for yet counts as exited). */
static long long cpu_us(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The state and fields 14, 15 follow the command name, which may hold
     * spaces and parentheses. */
    const char *p = strrchr(buf, ')');
    char state;
    unsigned long long utime, stime;
    if (p == NULL ||
        sscanf(p + 2,
               "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u "
               "%*u %llu %llu",
               &state, &utime, &stime) != 3 ||
        state == 'Z' || state == 'X')
        return -1;
    return (long long)((utime + stime) * 1000000ULL /
                       (unsigned long long)sysconf(_SC_CLK_TCK));
}

static bool is_alive(pid_t pid)
{
    return kill(pid, 0) == 0 || errno == EPERM;
}

/* Adds one group's fields (a flat name/value array) when it is group. */
static void add_group(const redisReply *g, const char *group,
                      group_figures *out)
{
    if (g->type != REDIS_REPLY_ARRAY)
        return;
    bool mine = false;
    long long read = 0, pending = 0, lag = 0;
    bool lag_known = false;
    for (size_t i = 0; i + 1 < g->elements; i += 2) {
        const char *field = g->element[i]->str;
        const redisReply *v = g->element[i + 1];
        if (field == NULL)
            continue;
        if (strcmp(field, "name") == 0)
            mine = v->str != NULL && strcmp(v->str, group) == 0;
        else if (strcmp(field, "entries-read") == 0)
            read = v->type == REDIS_REPLY_INTEGER ? v->integer : 0;
        else if (strcmp(field, "pending") == 0)
            pending = v->type == REDIS_REPLY_INTEGER ? v->integer : 0;
        else if (strcmp(field, "lag") == 0) {
            lag_known = v->type == REDIS_REPLY_INTEGER;
            lag = lag_known ? v->integer : 0;
        }
    }
    if (!mine)
        return;
    out->entries_read += read;
    out->pending += pending;
    out->lag += lag;
    out->lag_known = out->lag_known && lag_known;
}

/* One pipelined XINFO GROUPS per stream; a stream that does not exist yet
 * counts as one without the group. Returns 0, or -1 when Redis failed. */
static int poll_group(redisContext *c, const char *group, int nstreams,
                      char **streams, group_figures *out)
{
    *out = (group_figures){.lag_known = true};
    for (int i = 0; i < nstreams; i++)
        if (redisAppendCommand(c, "XINFO GROUPS %s", streams[i]) != REDIS_OK)
            return -1;
    for (int i = 0; i < nstreams; i++) {
        void *reply = NULL;
        if (redisGetReply(c, &reply) != REDIS_OK)
            return -1;
        const redisReply *r = reply;
        if (r->type == REDIS_REPLY_ARRAY)
            for (size_t j = 0; j < r->elements; j++)
                add_group(r->element[j], group, out);
        freeReplyObject(reply);
    }
    return 0;
}

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: drainwatch --redis URL --group G --target N --pid PID\n"
        "                  --t0-us T [--deadline S] [--interval-ms M]\n"
        "                  [--alive PID]... STREAM...\n"
        "Every M ms (default 100) prints \"MS ENTRIES_READ CPU_US\": the time\n"
        "since T (microseconds since the epoch), the entries group G has read\n"
        "on the STREAMs, and PID's CPU time. Exits 0 after the sample at which\n"
        "G has read N entries with none pending and no lag; 3 when not within\n"
        "S seconds of T (default 3600); 4 when PID or an --alive PID exited.\n");
}

int main(int argc, char **argv)
{
    const char *url = NULL, *group = NULL;
    long long target = -1, t0_us = -1, deadline_s = 3600, interval_ms = 100;
    pid_t pid = 0, alive[DW_MAX_ALIVE];
    int nalive = 0;
    static const struct option opts[] = {
        {"redis", required_argument, NULL, 'r'},
        {"group", required_argument, NULL, 'g'},
        {"target", required_argument, NULL, 'n'},
        {"pid", required_argument, NULL, 'p'},
        {"t0-us", required_argument, NULL, 't'},
        {"deadline", required_argument, NULL, 'd'},
        {"interval-ms", required_argument, NULL, 'i'},
        {"alive", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'r': url = optarg; break;
        case 'g': group = optarg; break;
        case 'n': target = atoll(optarg); break;
        case 'p': pid = (pid_t)atoi(optarg); break;
        case 't': t0_us = atoll(optarg); break;
        case 'd': deadline_s = atoll(optarg); break;
        case 'i': interval_ms = atoll(optarg); break;
        case 'a':
            if (nalive == DW_MAX_ALIVE) {
                usage(stderr);
                return 2;
            }
            alive[nalive++] = (pid_t)atoi(optarg);
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    int nstreams = argc - optind;
    if (url == NULL || group == NULL || target < 0 || pid <= 0 || t0_us < 0 ||
        interval_ms < 1 || nstreams < 1 || nstreams > DW_MAX_STREAMS) {
        usage(stderr);
        return 2;
    }
    redisContext *c;
    aw_error err = {0};
    if (aw_redis_connect(url, NULL, 5000, &c, &err) != AW_OK) {
        fprintf(stderr, "drainwatch: %s\n", err.msg);
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    int status;
    for (;;) {
        group_figures g;
        if (poll_group(c, group, nstreams, argv + optind, &g) != 0) {
            fprintf(stderr, "drainwatch: Redis: %s\n", c->errstr);
            status = 1;
            break;
        }
        int64_t now = now_us();
        long long cpu = cpu_us(pid);
        pid_t gone = cpu < 0 ? pid : 0;
        for (int i = 0; gone == 0 && i < nalive; i++)
            gone = is_alive(alive[i]) ? 0 : alive[i];
        if (gone != 0) {
            fprintf(stderr, "drainwatch: process %d exited\n", (int)gone);
            status = 4;
            break;
        }
        printf("%.3f %lld %lld\n", (double)(now - t0_us) / 1000.0,
               g.entries_read, cpu);
        if (g.entries_read >= target && g.pending == 0 && g.lag_known &&
            g.lag == 0) {
            status = 0;
            break;
        }
        if ((now - t0_us) / 1000000 >= deadline_s) {
            fprintf(stderr,
                    "drainwatch: not drained after %llds (read %lld of %lld, "
                    "pending %lld)\n",
                    deadline_s, g.entries_read, target, g.pending);
            status = 3;
            break;
        }
        struct timespec pause = {interval_ms / 1000,
                                 (long)(interval_ms % 1000) * 1000000};
        nanosleep(&pause, NULL);
    }
    redisFree(c);
    return status;
}
