/* trace_latency.c -- how long `auditwatch trace REQUEST_ID` takes on a big
 * index (DESIGN §6: < 10 ms on 10 million events).
 *
 * usage: trace_latency AUDITWATCH_BINARY INDEX_PATH [EVENTS] [RUNS]
 *
 * When INDEX_PATH does not exist it is built first, through the consumer's
 * ingest path (the daemon's own), from synthetic Caracal traffic: every
 * request is a token_exchange at the STS followed by the Gateway's
 * gateway_resource_request with the same request id; a session makes 25
 * requests in a row, every 50th session is revoked after its last one, and
 * every 10th request also has an observed upstream call. EVENTS audit
 * events in all (default 1,000,000).
 *
 * Then the binary is run RUNS times (default 200) on request ids drawn at
 * random over the whole index, output to /dev/null, and the wall time of
 * each whole run (process start, index open, look-ups, output, exit) is
 * reported as percentiles, next to the same figures for `auditwatch
 * --version` (process start and exit alone), so that the difference is the
 * cost of the trace itself. The CPU time the runs used (user + system,
 * from the children's rusage) is reported too: on a shared machine it
 * moves far less with the load than wall time does. Build without
 * sanitizers for figures that mean anything.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "consumer/consumer.h"

#define BATCH                    5000
#define REQUESTS_PER_SESSION     25
#define REVOKE_EVERY_NTH_SESSION 50
#define T0_MS                    1779364800000LL /* 2026-05-21T12:00:00Z */
#define REQUEST_SPACING_MS       2

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

typedef struct builder {
    aw_ingest *ing;
    aw_raw_entry *entries[BATCH];
    aw_ingest_item items[BATCH];
    size_t n;
    uint64_t seq;
} builder;

static void die(const char *what, const aw_error *err)
{
    fprintf(stderr, "trace_latency: %s: %s\n", what, err ? err->msg : "failed");
    exit(1);
}

static void flush(builder *b)
{
    aw_error err = {0};
    if (b->n && aw_ingest_batch(b->ing, b->items, b->n, NULL, 0, 0, NULL,
                                &err) != AW_OK)
        die("ingest", &err);
    for (size_t i = 0; i < b->n; i++)
        aw_raw_entry_free(b->entries[i]);
    b->n = 0;
}

static void ignore_change(const aw_alert *a, aw_alert_change c, void *ud)
{
    (void)a;
    (void)c;
    (void)ud;
}

static void add(builder *b, const char *stream, int64_t ms,
                const aw_field *fields, size_t n)
{
    char id[48];
    aw_error err = {0};
    snprintf(id, sizeof id, "%" PRId64 "-%" PRIu64, ms, b->seq++);
    if (aw_raw_entry_new((aw_bytes){stream, strlen(stream)},
                         (aw_bytes){id, strlen(id)}, fields, n,
                         &b->entries[b->n], &err) != AW_OK)
        die("entry", &err);
    b->items[b->n] = (aw_ingest_item){.entry = b->entries[b->n]};
    if (++b->n == BATCH) {
        flush(b);
        aw_ingest_drain_alerts(b->ing, ignore_change, NULL);
    }
}

static void add_audit(builder *b, int64_t ms, const char *data)
{
    aw_field f[2] = {{{"id", 2}, {"x", 1}},
                     {{"data", 4}, {data, strlen(data)}}};
    add(b, "caracal.audit.events", ms, f, 2);
}

static void build_index(const char *path, long events)
{
    aw_ingest_options opts = {.db_path = path,
                              .store_flags = AW_STORE_SYNC_NORMAL};
    builder *b = calloc(1, sizeof *b);
    aw_error err = {0};
    char data[1024], when[40];
    int64_t start = now_ns();

    if (!b || aw_ingest_open(&opts, &b->ing, &err) != AW_OK)
        die("open", &err);
    for (long r = 0; r < events / 2; r++) {
        int64_t ms = T0_MS + r * REQUEST_SPACING_MS;
        long s = r / REQUESTS_PER_SESSION;
        aw_time_format(ms * 1000000, when, sizeof when);
        snprintf(
            data, sizeof data,
            "{\"id\":\"sts-%ld\",\"zone_id\":\"zone-1\",\"event_type\":\"token_exchange\","
            "\"request_id\":\"req-%ld\",\"decision\":\"allow\",\"evaluation_status\":\"complete\","
            "\"determining_policies_json\":[{\"id\":\"baseline-resource-scope\"}],"
            "\"diagnostics_json\":[{\"code\":\"scope_allowed\"}],\"metadata_json\":"
            "{\"application_id\":\"app-%ld\",\"resource\":\"resource://api/%ld\","
            "\"session_id\":\"ar-%ld\",\"agent_session_id\":\"as-%ld\","
            "\"delegation_edge_id\":\"edge-%ld\"},\"occurred_at\":\"%s\"}",
            r, r, s % 50, s % 200, s, s, s, when);
        add_audit(b, ms, data);
        snprintf(
            data, sizeof data,
            "{\"id\":\"gw-%ld\",\"zone_id\":\"zone-1\",\"event_type\":\"gateway_resource_request\","
            "\"request_id\":\"req-%ld\",\"decision\":\"allow\",\"evaluation_status\":\"executed\","
            "\"determining_policies_json\":null,\"diagnostics_json\":null,\"metadata_json\":"
            "{\"application_id\":\"app-%ld\",\"resource\":\"resource://api/%ld\",\"method\":\"GET\","
            "\"gateway_status\":200,\"upstream_status\":200,\"result_class\":\"success\","
            "\"session_id\":\"ar-%ld\",\"agent_session_id\":\"as-%ld\"},\"occurred_at\":\"%s\"}",
            r, r, s % 50, s % 200, s, s, when);
        add_audit(b, ms + 1, data);
        if (r % REQUESTS_PER_SESSION == REQUESTS_PER_SESSION - 1 &&
            s % REVOKE_EVERY_NTH_SESSION == 0) {
            char sid[32];
            snprintf(sid, sizeof sid, "ar-%ld", s);
            aw_field f[3] = {{{"zone_id", 7}, {"zone-1", 6}},
                             {{"session_id", 10}, {sid, strlen(sid)}},
                             {{"reason", 6}, {"grant_revoked", 13}}};
            add(b, "caracal.sessions.revoke", ms + 1, f, 3);
        }
        if (r % 10 == 0) {
            char rid[32];
            snprintf(rid, sizeof rid, "req-%ld", r);
            aw_field f[3] = {{{"request_id", 10}, {rid, strlen(rid)}},
                             {{"status", 6}, {"200", 3}},
                             {{"source", 6}, {"nginx", 5}}};
            add(b, "auditwatch.calls", ms + 1, f, 3);
        }
        if (r % 100000 == 0 && r)
            fprintf(stderr, "\rbuilding: %ld events", 2 * r);
    }
    flush(b);
    aw_ingest_drain_alerts(b->ing, ignore_change, NULL);
    aw_ingest_close(b->ing);
    free(b);
    fprintf(stderr, "\rbuilt %ld events in %.1f s\n", events,
            (double)(now_ns() - start) / 1e9);
}

/* Runs `binary trace rid --db path --format json` (rid NULL: `binary
 * --version`) with output to /dev/null; returns the ns taken. */
static int64_t run_trace(const char *binary, const char *path, const char *rid,
                         int *status)
{
    int64_t start = now_ns();
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        if (rid)
            execl(binary, binary, "trace", rid, "--db", path, "--format",
                  "json", (char *)NULL);
        else
            execl(binary, binary, "--version", (char *)NULL);
        _exit(127);
    }
    waitpid(pid, status, 0);
    return now_ns() - start;
}

/* User + system CPU ns used by reaped children so far. */
static int64_t children_cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(
            stderr,
            "usage: trace_latency AUDITWATCH_BINARY INDEX_PATH [EVENTS] [RUNS]\n");
        return 2;
    }
    long events = argc > 3 ? atol(argv[3]) : 1000000;
    int runs = argc > 4 ? atoi(argv[4]) : 200;
    if (events < 2 || runs < 1)
        return 2;
    if (access(argv[2], F_OK) != 0)
        build_index(argv[2], events);

    int64_t *t = calloc((size_t)runs, sizeof *t),
            *base = calloc((size_t)runs, sizeof *base);
    unsigned seed = 42;
    char rid[32];
    int status;
    int64_t cpu_base = 0, cpu_trace = 0, cpu;
    for (int i = 0; i < runs; i++) {
        cpu = children_cpu_ns();
        base[i] = run_trace(argv[1], argv[2], NULL, &status);
        cpu_base += children_cpu_ns() - cpu;
        cpu = children_cpu_ns();
        snprintf(rid, sizeof rid, "req-%ld",
                 (long)(rand_r(&seed) % (events / 2)));
        t[i] = run_trace(argv[1], argv[2], rid, &status);
        cpu_trace += children_cpu_ns() - cpu;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "trace %s exited with %d\n", rid,
                    WEXITSTATUS(status));
            return 1;
        }
    }
    qsort(t, (size_t)runs, sizeof *t, cmp_i64);
    qsort(base, (size_t)runs, sizeof *base, cmp_i64);
    int64_t missing = run_trace(argv[1], argv[2], "req-none", &status);
    printf(
        "trace over %ld events, %d runs (whole process): p50 %.2f ms  p90 %.2f ms  "
        "p99 %.2f ms  max %.2f ms; not found %.2f ms\n",
        events, runs, t[runs / 2] / 1e6, t[runs * 9 / 10] / 1e6,
        t[runs * 99 / 100] / 1e6, t[runs - 1] / 1e6, missing / 1e6);
    printf("auditwatch --version alone: p50 %.2f ms  p90 %.2f ms\n",
           base[runs / 2] / 1e6, base[runs * 9 / 10] / 1e6);
    printf("CPU time per run: trace %.2f ms, --version %.2f ms\n",
           cpu_trace / 1e6 / runs, cpu_base / 1e6 / runs);
    free(t);
    free(base);
    return 0;
}
