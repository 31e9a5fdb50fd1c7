/* store_insert.c -- how fast the index takes decoded events, against the
 * plain SQLite loop that DESIGN §6 calls the baseline.
 *
 * Usage: store_insert [EVENTS [DIR]]   (default 1,000,000 events, /tmp)
 *
 * Synthetic traffic shaped like Caracal's: pairs of a token_exchange and a
 * gateway_resource_request sharing one request id, random UUID event and
 * request ids, ~650-byte `data` JSON, and three anchors per event (session,
 * agent session, delegation edge) drawn from a slowly moving pool so that
 * anchors repeat like real sessions do. Times advance at 150,000 events/s
 * with up to 50 ms of jitter (late arrival is normal).
 *
 * Both runs insert the same rows in transactions of BATCH events with
 * synchronous=FULL: the store through its API (raw entry + event + anchors,
 * hash chain included), the baseline as one INSERT per event into a naive
 * table with five separate indexes (event_id unique, request_id,
 * occurred_at, session_id, agent_session_id). Batches are generated outside
 * the timed section. Rates are printed for the first and last 10 % of the
 * events (cost must not grow with the index) and overall.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

#define BATCH             2000
#define EVENTS_PER_SECOND 150000
#define JITTER_NS         50000000LL
#define BASE_TIME_NS      1780000000000000000LL

static const char *const zones[] = {"zone-prod-eu-1", "zone-prod-us-1",
                                    "zone-staging", "zone-prod-ap-2"};

/* One generated event and everything it points into. */
struct slot {
    char event_id[40], request_id[40], session[48], agent[48], edge[48],
        application[48], resource[80], entry_id[48];
    char data[1024], sig[65];
    aw_anchor anchors[3];
    aw_audit_event event;
    aw_raw_entry *raw;
};

struct generator {
    uint64_t rng;
    int64_t next;          /* index of the next event */
    char pair_request[40]; /* request id shared by the current pair */
};

static uint64_t next_random(struct generator *g)
{
    /* xorshift64*: fast, deterministic, good enough for ids. */
    g->rng ^= g->rng >> 12;
    g->rng ^= g->rng << 25;
    g->rng ^= g->rng >> 27;
    return g->rng * 2685821657736338717ULL;
}

static void uuid(struct generator *g, char out[40])
{
    uint64_t a = next_random(g), b = next_random(g);
    snprintf(out, 40, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32),
             (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xfff,
             ((unsigned)(b >> 48) & 0x3fff) | 0x8000,
             (unsigned long long)(b & 0xffffffffffffULL));
}

/* An id from a pool of 5,000 that drifts forward every 20 events. */
static void pooled(struct generator *g, const char *prefix, int64_t i,
                   char *out, size_t size)
{
    uint64_t n = (uint64_t)(i / 20) + next_random(g) % 5000;
    snprintf(out, size, "%s-%016llx", prefix,
             (unsigned long long)(n * 0x9e3779b97f4a7c15ULL));
}

static void generate(struct generator *g, struct slot *s)
{
    int64_t i = g->next++;
    bool exchange = i % 2 == 0;
    if (exchange)
        uuid(g, g->pair_request);
    memcpy(s->request_id, g->pair_request, sizeof s->request_id);
    uuid(g, s->event_id);
    pooled(g, "as", i, s->agent, sizeof s->agent);
    pooled(g, "ar", i, s->session, sizeof s->session);
    pooled(g, "edge", i, s->edge, sizeof s->edge);
    snprintf(s->application, sizeof s->application, "app-%02llu",
             (unsigned long long)(next_random(g) % 50));
    snprintf(s->resource, sizeof s->resource,
             "https://api.example.com/v1/resources/%llu",
             (unsigned long long)(next_random(g) % 200));
    const char *zone = zones[next_random(g) % 4];
    int64_t at = BASE_TIME_NS + i * (1000000000LL / EVENTS_PER_SECOND) +
                 (int64_t)(next_random(g) % JITTER_NS) - JITTER_NS / 2;
    const char *decision = !exchange || next_random(g) % 10 ? "allow" : "deny";
    const char *type = exchange ? "token_exchange" : "gateway_resource_request";
    const char *status = exchange ? "evaluated" : "executed";
    int n = snprintf(
        s->data, sizeof s->data,
        "{\"id\":\"%s\",\"zone_id\":\"%s\",\"event_type\":\"%s\","
        "\"request_id\":\"%s\",\"decision\":\"%s\","
        "\"policy_set_id\":\"ps-7f3a\",\"policy_set_version_id\":\"psv-12\","
        "\"evaluation_status\":\"%s\",\"determining_policies_json\":"
        "[\"policy-allow-read\"],\"diagnostics_json\":null,"
        "\"metadata_json\":{\"application_id\":\"%s\",\"resource\":\"%s\","
        "\"session_id\":\"%s\",\"agent_session_id\":\"%s\","
        "\"delegation_edge_id\":\"%s\",\"method\":\"GET\","
        "\"gateway_status\":200,\"latency_ms\":12,\"result_class\":\"success\""
        "},\"occurred_at\":\"2026-05-21T14:00:00.123456789Z\"}",
        s->event_id, zone, type, s->request_id, decision, status,
        s->application, s->resource, s->session, s->agent, s->edge);
    for (int k = 0; k < 64; k++)
        s->sig[k] = "0123456789abcdef"[next_random(g) & 15];
    s->sig[64] = 0;
    /* Redis ids follow arrival: 150 entries per millisecond. */
    snprintf(s->entry_id, sizeof s->entry_id, "%lld-%lld",
             (long long)(BASE_TIME_NS / 1000000 + i / 150),
             (long long)(i % 150));

    aw_field fields[3] = {{{"id", 2}, {s->event_id, strlen(s->event_id)}},
                          {{"data", 4}, {s->data, (size_t)n}},
                          {{"sig", 3}, {s->sig, 64}}};
    aw_error err;
    if (aw_raw_entry_new((aw_bytes){"caracal.audit.events", 20},
                         (aw_bytes){s->entry_id, strlen(s->entry_id)}, fields,
                         3, &s->raw, &err) != AW_OK) {
        fprintf(stderr, "raw entry: %s\n", err.msg);
        exit(1);
    }
    s->anchors[0] = (aw_anchor){AW_ANCHOR_AUTHORITY_RECORD, s->session};
    s->anchors[1] = (aw_anchor){AW_ANCHOR_AGENT_SESSION, s->agent};
    s->anchors[2] = (aw_anchor){AW_ANCHOR_DELEGATION_EDGE, s->edge};
    s->event = (aw_audit_event){
        .id = s->event_id,
        .zone_id = zone,
        .event_type = type,
        .request_id = s->request_id,
        .decision = decision,
        .evaluation_status = status,
        .occurred_at_ns = at,
        .application_id = s->application,
        .resource = s->resource,
        .result_class = "success",
        .upstream_status = exchange ? 0 : 200,
        .gateway_status = exchange ? 0 : 200,
        .nanchors = 3,
        .anchors = s->anchors,
        .is_signed = true,
    };
    aw_sha256(s->data, (size_t)n, s->event.content_hash);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Inserts one batch; returns its duration in seconds. */
typedef double (*insert_fn)(void *target, struct slot *slots, size_t n);

static double store_batch(void *target, struct slot *slots, size_t n)
{
    aw_store *store = target;
    aw_error err;
    double t0 = now_s();
    int rc = aw_store_begin(store, &err);
    for (size_t i = 0; rc == AW_OK && i < n; i++) {
        int64_t entry_rowid, event_rowid;
        aw_put_result result;
        rc = aw_store_put_entry(store, slots[i].raw, &entry_rowid, &result,
                                &err);
        if (rc == AW_OK)
            rc = aw_store_put_event(store, entry_rowid, &slots[i].event,
                                    &event_rowid, &result, &err);
    }
    if (rc == AW_OK)
        rc = aw_store_commit(store, &err);
    if (rc != AW_OK) {
        fprintf(stderr, "store: %s\n", err.msg);
        exit(1);
    }
    return now_s() - t0;
}

struct baseline {
    sqlite3 *db;
    sqlite3_stmt *insert;
};

static void baseline_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "baseline: %s: %s\n", sql, msg);
        exit(1);
    }
}

static void baseline_open(struct baseline *b, const char *path)
{
    if (sqlite3_open(path, &b->db) != SQLITE_OK) {
        fprintf(stderr, "baseline: cannot open %s\n", path);
        exit(1);
    }
    baseline_exec(b->db, "PRAGMA journal_mode = WAL; "
                         "PRAGMA synchronous = FULL; "
                         "PRAGMA cache_size = -32000; "
                         "CREATE TABLE events (event_id TEXT, zone_id TEXT, "
                         "event_type TEXT, request_id TEXT, decision TEXT, "
                         "evaluation_status TEXT, application_id TEXT, "
                         "resource TEXT, session_id TEXT, "
                         "agent_session_id TEXT, delegation_edge_id TEXT, "
                         "occurred_at INTEGER, data BLOB); "
                         "CREATE UNIQUE INDEX e1 ON events (event_id); "
                         "CREATE INDEX e2 ON events (request_id); "
                         "CREATE INDEX e3 ON events (occurred_at); "
                         "CREATE INDEX e4 ON events (session_id); "
                         "CREATE INDEX e5 ON events (agent_session_id);");
    if (sqlite3_prepare_v2(b->db,
                           "INSERT INTO events VALUES (?, ?, ?, ?, ?, "
                           "?, ?, ?, ?, ?, ?, ?, ?)",
                           -1, &b->insert, NULL) != SQLITE_OK) {
        fprintf(stderr, "baseline: %s\n", sqlite3_errmsg(b->db));
        exit(1);
    }
}

static double baseline_batch(void *target, struct slot *slots, size_t n)
{
    struct baseline *b = target;
    double t0 = now_s();
    baseline_exec(b->db, "BEGIN");
    for (size_t i = 0; i < n; i++) {
        const aw_audit_event *e = &slots[i].event;
        const char *text[] = {e->id,
                              e->zone_id,
                              e->event_type,
                              e->request_id,
                              e->decision,
                              e->evaluation_status,
                              e->application_id,
                              e->resource,
                              slots[i].session,
                              slots[i].agent,
                              slots[i].edge};
        for (int k = 0; k < 11; k++)
            sqlite3_bind_text(b->insert, k + 1, text[k], -1, SQLITE_STATIC);
        sqlite3_bind_int64(b->insert, 12, e->occurred_at_ns);
        sqlite3_bind_blob(b->insert, 13, slots[i].data,
                          (int)strlen(slots[i].data), SQLITE_STATIC);
        if (sqlite3_step(b->insert) != SQLITE_DONE) {
            fprintf(stderr, "baseline: %s\n", sqlite3_errmsg(b->db));
            exit(1);
        }
        sqlite3_reset(b->insert);
    }
    baseline_exec(b->db, "COMMIT");
    return now_s() - t0;
}

struct result {
    double first, last, overall; /* events per second */
    double file_mib;
};

static double file_mib(const char *path)
{
    struct stat st;
    char wal[512];
    double bytes = stat(path, &st) == 0 ? (double)st.st_size : 0;
    snprintf(wal, sizeof wal, "%s-wal", path);
    if (stat(wal, &st) == 0)
        bytes += (double)st.st_size;
    return bytes / (1024.0 * 1024.0);
}

static struct result run(const char *name, insert_fn insert, void *target,
                         int64_t total, const char *path)
{
    struct slot *slots = calloc(BATCH, sizeof *slots);
    if (slots == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    struct generator g = {.rng = 0x2545F4914F6CDD1DULL};
    int64_t tenth = total / 10;
    double first = 0, last = 0, overall = 0;
    int64_t first_n = 0, last_n = 0;
    for (int64_t done = 0; done < total;) {
        size_t n = (size_t)(total - done < BATCH ? total - done : BATCH);
        for (size_t i = 0; i < n; i++)
            generate(&g, &slots[i]);
        double t = insert(target, slots, n);
        for (size_t i = 0; i < n; i++)
            aw_raw_entry_free(slots[i].raw);
        overall += t;
        if (done < tenth) {
            first += t;
            first_n += (int64_t)n;
        }
        if (done >= total - tenth) {
            last += t;
            last_n += (int64_t)n;
        }
        done += (int64_t)n;
    }
    free(slots);
    struct result r = {first_n / first, last_n / last, total / overall,
                       file_mib(path)};
    printf("%-9s first 10%%: %8.0f/s   last 10%%: %8.0f/s   overall: "
           "%8.0f/s   (%.1f s, %.0f MiB on disk)\n",
           name, r.first, r.last, r.overall, overall, r.file_mib);
    fflush(stdout);
    return r;
}

static void remove_index(const char *path)
{
    char file[512];
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(file, sizeof file, "%s%s", path, suffixes[i]);
        unlink(file);
    }
}

int main(int argc, char **argv)
{
    int64_t total = argc > 1 ? atoll(argv[1]) : 1000000;
    const char *dir = argc > 2 ? argv[2] : "/tmp";
    if (total < 10) {
        fprintf(stderr, "usage: store_insert [EVENTS>=10 [DIR]]\n");
        return 2;
    }
    char store_path[256], base_path[256];
    snprintf(store_path, sizeof store_path, "%s/store_insert.%d.db", dir,
             (int)getpid());
    snprintf(base_path, sizeof base_path, "%s/store_insert_plain.%d.db", dir,
             (int)getpid());
    printf("%lld events, batches of %d, synchronous=FULL\n", (long long)total,
           BATCH);

    aw_store *store;
    aw_error err;
    if (aw_store_open(store_path, 0, &store, &err) != AW_OK) {
        fprintf(stderr, "open: %s\n", err.msg);
        return 1;
    }
    struct result s = run("store", store_batch, store, total, store_path);
    aw_store_close(store);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("store peak RSS: %.1f MiB\n", ru.ru_maxrss / 1024.0);
    remove_index(store_path);

    struct baseline b;
    baseline_open(&b, base_path);
    struct result p = run("baseline", baseline_batch, &b, total, base_path);
    sqlite3_finalize(b.insert);
    sqlite3_close(b.db);
    remove_index(base_path);

    printf("store/baseline: first 10%% %.2fx, last 10%% %.2fx, overall "
           "%.2fx\n",
           s.first / p.first, s.last / p.last, s.overall / p.overall);
    return 0;
}
