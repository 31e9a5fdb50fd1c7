/* readack.c -- the bare read-and-ack ceiling of bench/run --backlog: what a
 * consumer that stores nothing reaches on the same backlog, on the same
 * Redis, in the same run as auditwatch.
 *
 * It joins its own consumer group (created at 0) on every stream named and
 * loops: one XREADGROUP COUNT n over all streams, then one XACK per stream
 * with every id it got, pipelined behind each other in one round trip. It
 * stops when a read returns nothing (no BLOCK: the backlog is published
 * before it starts), and prints one line
 *   readack entries=N seconds=S rate=R
 * so that bench/run can read it like loadgen's summary. Anything auditwatch
 * does beyond this (decode, verify, index, commit) is what the gap between
 * the two rates measures.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "consumer/consumer.h"

#define RA_MAX_STREAMS 16

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "readack: %s%s%s\n", what, detail ? ": " : "",
            detail ? detail : "");
    exit(1);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static redisReply *command(redisContext *c, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    if (r == NULL)
        die("Redis", c->errstr);
    return r;
}

static void create_group(redisContext *c, const char *stream, const char *group)
{
    const char *argv[] = {"XGROUP", "CREATE", stream, group, "0", "MKSTREAM"};
    redisReply *r = command(c, 6, argv);
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0)
        die("XGROUP CREATE", r->str);
    freeReplyObject(r);
}

/* Queues one XACK of every id in a stream's reply; returns whether one was
 * queued. */
static int append_ack(redisContext *c, const char *group,
                      const redisReply *stream_reply, size_t *acked)
{
    const redisReply *name = stream_reply->element[0];
    const redisReply *items = stream_reply->element[1];
    if (items->elements == 0)
        return 0;
    size_t argc = 3 + items->elements;
    const char **argv = malloc(argc * sizeof *argv);
    size_t *lens = malloc(argc * sizeof *lens);
    if (argv == NULL || lens == NULL)
        die("out of memory", NULL);
    argv[0] = "XACK", lens[0] = 4;
    argv[1] = name->str, lens[1] = name->len;
    argv[2] = group, lens[2] = strlen(group);
    for (size_t i = 0; i < items->elements; i++) {
        const redisReply *id = items->element[i]->element[0];
        argv[3 + i] = id->str;
        lens[3 + i] = id->len;
    }
    if (redisAppendCommandArgv(c, (int)argc, argv, lens) != REDIS_OK)
        die("Redis", c->errstr);
    free(argv);
    free(lens);
    *acked += items->elements;
    return 1;
}

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: readack [--redis URL] [--group G] [--count N] STREAM...\n"
        "Reads every STREAM through consumer group G (default readack, created at\n"
        "0) with XREADGROUP COUNT N (default 1000) and acks each batch, storing\n"
        "nothing, until a read returns nothing. Prints\n"
        "  readack entries=N seconds=S rate=R\n");
}

int main(int argc, char **argv)
{
    const char *url = "redis://127.0.0.1:6379", *group = "readack";
    const char *count = "1000";
    static const struct option opts[] = {
        {"redis", required_argument, NULL, 'r'},
        {"group", required_argument, NULL, 'g'},
        {"count", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'r': url = optarg; break;
        case 'g': group = optarg; break;
        case 'c': count = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    int nstreams = argc - optind;
    if (nstreams < 1 || nstreams > RA_MAX_STREAMS || atoi(count) < 1) {
        usage(stderr);
        return 2;
    }
    redisContext *c;
    aw_error err = {0};
    if (aw_redis_connect(url, NULL, 5000, &c, &err) != AW_OK)
        die("Redis", err.msg);

    const char *read_argv[7 + 2 * RA_MAX_STREAMS] = {
        "XREADGROUP", "GROUP", group, "readack-1", "COUNT", count, "STREAMS"};
    int read_argc = 7;
    for (int i = 0; i < nstreams; i++) {
        create_group(c, argv[optind + i], group);
        read_argv[read_argc++] = argv[optind + i];
    }
    for (int i = 0; i < nstreams; i++)
        read_argv[read_argc++] = ">";

    size_t acked = 0;
    double start = now_s();
    for (;;) {
        redisReply *r = command(c, read_argc, read_argv);
        if (r->type == REDIS_REPLY_ERROR)
            die("XREADGROUP", r->str);
        int queued = 0;
        if (r->type == REDIS_REPLY_ARRAY)
            for (size_t i = 0; i < r->elements; i++)
                queued += append_ack(c, group, r->element[i], &acked);
        freeReplyObject(r);
        if (queued == 0)
            break;
        for (int i = 0; i < queued; i++) {
            void *ack = NULL;
            if (redisGetReply(c, &ack) != REDIS_OK)
                die("Redis", c->errstr);
            if (((redisReply *)ack)->type == REDIS_REPLY_ERROR)
                die("XACK", ((redisReply *)ack)->str);
            freeReplyObject(ack);
        }
    }
    double seconds = now_s() - start;
    printf("readack entries=%zu seconds=%.3f rate=%.0f\n", acked, seconds,
           seconds > 0 ? (double)acked / seconds : 0.0);
    redisFree(c);
    return 0;
}
