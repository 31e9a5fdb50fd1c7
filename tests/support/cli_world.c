/* cli_world.c -- builds the index of cli_world.h: every entry signed the
 * way Caracal signs (audit `sig` over the exact data bytes, `_sig` over the
 * canonical fields of the other streams) and fed through aw_ingest_batch,
 * in entry-id order, a few batches with the detector clock moved between
 * them as the daemon would.
 */
#include "tests/support/cli_world.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BATCH 512

typedef struct feed {
    aw_ingest *ing;
    aw_hmac_key *key;
    aw_raw_entry *entries[MAX_BATCH];
    aw_ingest_item items[MAX_BATCH];
    size_t n;
    uint64_t seq;
} feed;

static aw_raw_entry *entry(feed *f, const char *stream, int64_t ms,
                           const aw_field *fields, size_t n)
{
    char id[AW_STREAM_ID_TEXT_MAX];
    aw_raw_entry *e = NULL;
    aw_error err = {0};
    snprintf(id, sizeof id, "%lld-%llu", (long long)(CW_T0_MS + ms),
             (unsigned long long)f->seq++);
    cr_assert_eq(aw_raw_entry_new((aw_bytes){stream, strlen(stream)},
                                  (aw_bytes){id, strlen(id)}, fields, n, &e,
                                  &err),
                 AW_OK, "%s", err.msg);
    return e;
}

static void push(feed *f, aw_raw_entry *e)
{
    cr_assert_lt(f->n, MAX_BATCH);
    f->entries[f->n] = e;
    f->items[f->n] = (aw_ingest_item){.entry = e};
    f->n++;
}

static void ignore_change(const aw_alert *a, aw_alert_change c, void *ud)
{
    (void)a;
    (void)c;
    (void)ud;
}

/* Commits what is queued, then moves the clock to +clock_ms (0: leave). */
static void commit(feed *f, int64_t clock_ms)
{
    aw_error err = {0};
    int64_t clock_ns = clock_ms ? CW_NS(clock_ms) : 0;
    cr_assert_eq(
        aw_ingest_batch(f->ing, f->items, f->n, NULL, 0, clock_ns, NULL, &err),
        AW_OK, "%s", err.msg);
    aw_ingest_drain_alerts(f->ing, ignore_change, NULL);
    for (size_t i = 0; i < f->n; i++)
        aw_raw_entry_free(f->entries[i]);
    f->n = 0;
}

/* An audit entry at +entry_ms: fields id, data, sig (over data). A NULL
 * forged_sig signs properly. */
static void audit(feed *f, int64_t entry_ms, const char *event_id,
                  const char *data, const char *forged_sig)
{
    char sig[65];
    if (forged_sig)
        snprintf(sig, sizeof sig, "%s", forged_sig);
    else
        aw_test_sign(f->key, data, strlen(data), sig);
    aw_field fields[3] = {{{"id", 2}, {event_id, strlen(event_id)}},
                          {{"data", 4}, {data, strlen(data)}},
                          {{"sig", 3}, {sig, 64}}};
    push(f, entry(f, "caracal.audit.events", entry_ms, fields, 3));
}

/* An event's data JSON. meta is the inside of metadata_json; extra is
 * more top-level members (may be ""). */
static void event_json(char *out, size_t size, const char *id, const char *zone,
                       const char *type, const char *request,
                       const char *decision, const char *status,
                       int64_t occurred_ns, const char *meta, const char *extra)
{
    char when[40];
    aw_time_format(occurred_ns, when, sizeof when);
    snprintf(
        out, size,
        "{\"id\":\"%s\",\"zone_id\":\"%s\",\"event_type\":\"%s\",\"request_id\":\"%s\","
        "\"decision\":\"%s\",\"evaluation_status\":\"%s\",%s\"metadata_json\":{%s},"
        "\"occurred_at\":\"%s\"}",
        id, zone, type, request, decision, status, extra, meta, when);
}

static void exchange(feed *f, int64_t ms, const char *id, const char *zone,
                     const char *request, const char *decision,
                     const char *meta, const char *extra)
{
    char data[2048];
    event_json(data, sizeof data, id, zone, "token_exchange", request, decision,
               "complete", CW_NS(ms), meta, extra);
    audit(f, ms, id, data, NULL);
}

static void gateway(feed *f, int64_t ms, const char *id, const char *zone,
                    const char *request, const char *meta)
{
    char data[2048], m[1024];
    snprintf(
        m, sizeof m,
        "%s,\"method\":\"GET\",\"gateway_status\":200,\"upstream_status\":200,"
        "\"result_class\":\"success\",\"latency_ms\":12,\"response_bytes\":512",
        meta);
    event_json(data, sizeof data, id, zone, "gateway_resource_request", request,
               "allow", "executed", CW_NS(ms), m,
               "\"determining_policies_json\":null,\"diagnostics_json\":null,");
    audit(f, ms, id, data, NULL);
}

/* A flat entry of a stream-scheme stream: fields (name, value, ...; n
 * names, room for one more pair) get _sig appended. */
static void flat(feed *f, const char *stream, int64_t ms, const char **fields,
                 size_t n)
{
    aw_field entry_fields[AW_MAX_FIELDS];
    char sig[65];
    aw_test_sign_stream(f->key, stream, fields, n, sig);
    fields[2 * n] = "_sig";
    fields[2 * n + 1] = sig;
    for (size_t i = 0; i <= n; i++)
        entry_fields[i] =
            (aw_field){{fields[2 * i], strlen(fields[2 * i])},
                       {fields[2 * i + 1], strlen(fields[2 * i + 1])}};
    push(f, entry(f, stream, ms, entry_fields, n + 1));
}

static void call(feed *f, int64_t ms, const char *request, const char *status)
{
    const char *fields[12] = {
        "request_id", request,    "status",         status,   "zone_id",
        "zone-1",     "resource", "resource://api", "source", "nginx"};
    flat(f, "auditwatch.calls", ms, fields, 5);
}

static void revoke_session(feed *f, int64_t ms, const char *session)
{
    const char *fields[8] = {"zone_id", "zone-1", "session_id",
                             session,   "reason", CW_REVOKE_REASON};
    flat(f, "caracal.sessions.revoke", ms, fields, 3);
}

static const char chain_meta[] =
    "\"application_id\":\"app-1\",\"resource\":\"resource://api\",\"session_id\":\"ar-1\","
    "\"agent_session_id\":\"as-1\",\"delegation_edge_id\":\"e-1\",\"delegation_chain\":"
    "[{\"application_id\":\"app-0\",\"agent_session_id\":\"as-0\",\"delegation_edge_id\":\"e-0\"}]";

static void story(feed *f)
{
    char data[2048], id[32], req[32];

    exchange(
        f, 1000, "ev-1", "zone-1", "req-1", "allow", chain_meta,
        "\"determining_policies_json\":[{\"id\":\"baseline-resource-scope\"}],"
        "\"diagnostics_json\":[{\"code\":\"scope_allowed\"}],");
    gateway(
        f, 1100, "gw-1", "zone-1", "req-1",
        "\"application_id\":\"app-1\",\"resource\":\"resource://api\",\"session_id\":\"ar-1\","
        "\"agent_session_id\":\"as-1\"");
    call(f, 1200, "req-1", "200");
    gateway(
        f, 10000, "gw-2", "zone-1", "req-2",
        "\"application_id\":\"app-1\",\"resource\":\"resource://api\",\"session_id\":\"ar-2\","
        "\"agent_session_id\":\"as-2\"");
    exchange(
        f, 20000, "ev-3", "zone-1", "req-3", "deny",
        "\"application_id\":\"app-2\",\"resource\":\"resource://billing\",\"session_id\":\"ar-3\"",
        "\"determining_policies_json\":[{\"id\":\"billing-deny\"}],"
        "\"diagnostics_json\":[{\"code\":\"scope_denied\"}],");
    revoke_session(f, 30000, "ar-1");
    exchange(
        f, 60000, "ev-4", "zone-1", "req-4", "allow",
        "\"application_id\":\"app-1\",\"resource\":\"resource://api\",\"session_id\":\"ar-1\","
        "\"agent_session_id\":\"as-4\"",
        "");
    gateway(
        f, 60500, "gw-4", "zone-1", "req-4",
        "\"application_id\":\"app-1\",\"resource\":\"resource://api\",\"session_id\":\"ar-1\","
        "\"agent_session_id\":\"as-4\"");
    call(f, 100000, "req-5", "200");
    exchange(
        f, 120000, "ev-6", "zone-2", "req-6", "allow",
        "\"application_id\":\"app-3\",\"resource\":\"resource://z2\",\"session_id\":\"ar-6\"",
        "");
    gateway(
        f, 120100, "gw-6", "zone-2", "req-6",
        "\"application_id\":\"app-3\",\"resource\":\"resource://z2\",\"session_id\":\"ar-6\"");
    event_json(data, sizeof data, "ev-an", "zone-1", "replay_detected",
               "req-an", "deny", "anomaly", CW_NS(130000),
               "\"application_id\":\"app-1\"", "");
    audit(f, 130000, "ev-an", data, NULL);
    event_json(data, sizeof data, "ev-bad", "zone-1", "token_exchange",
               "req-bad", "allow", "complete", CW_NS(135000),
               "\"session_id\":\"ar-9\"", "");
    audit(f, 135000, "ev-bad", data,
          "0000000000000000000000000000000000000000000000000000000000000000");
    audit(f, 136000, "ev-junk", "not json at all", NULL);
    gateway(
        f, 140000, "gw-7", "zone-1", "req-7",
        "\"application_id\":\"app-1\",\"resource\":\"resource://api\",\"session_id\":\"ar-7\"");
    exchange(f, 150000, "ev-odd", "zone-3", "req-odd", "allow",
             "\"application_id\":\"app-odd\",\"resource\":"
             "\"res \\\"q\\\", a\\nb \\\\ \\u001b[31m h\xc3\xa9llo\"",
             "");
    commit(f, 0);

    for (int i = 0; i < CW_FILLERS; i++) {
        int64_t ms = 200000 + (int64_t)i * 1000;
        snprintf(req, sizeof req, "req-f%03d", i);
        snprintf(id, sizeof id, "evf-%03d", i);
        exchange(
            f, ms, id, "zone-1", req, "allow",
            "\"application_id\":\"app-fill\",\"resource\":\"resource://fill\","
            "\"session_id\":\"ar-f\"",
            "");
        snprintf(id, sizeof id, "gwf-%03d", i);
        gateway(
            f, ms + 500, id, "zone-1", req,
            "\"application_id\":\"app-fill\",\"resource\":\"resource://fill\","
            "\"session_id\":\"ar-f\"");
    }
    commit(f, 500000);

    /* req-7's decision, published late from a replay file. */
    event_json(data, sizeof data, "ev-7", "zone-1", "token_exchange", "req-7",
               "allow", "complete", CW_NS(139950),
               "\"application_id\":\"app-1\",\"session_id\":\"ar-7\"", "");
    audit(f, 600000, "ev-7", data, NULL);
    commit(f, 0);
    commit(f, 2000000);
}

void cw_build(cli_world *w, bool keys)
{
    feed *f = calloc(1, sizeof *f);
    aw_ingest_options opts = {.store_flags = AW_STORE_SYNC_NORMAL};
    aw_error err = {0};

    cr_assert_not_null(f);
    aw_test_tmpdir(w->dir);
    aw_test_path(w->dir, "auditwatch.db", w->db);
    f->key = aw_test_key();
    opts.db_path = w->db;
    if (keys) {
        opts.audit_key = f->key;
        opts.streams_key = f->key;
    }
    cr_assert_eq(aw_ingest_open(&opts, &f->ing, &err), AW_OK, "%s", err.msg);
    story(f);
    aw_ingest_close(f->ing);
    aw_hmac_key_free(f->key);
    free(f);
}

void cw_add_exchange(cli_world *w, const char *id, const char *request_id,
                     int64_t occurred_ns, int64_t published_ms)
{
    char data[2048];
    feed *f = calloc(1, sizeof *f);
    aw_ingest_options opts = {.db_path = w->db};
    aw_error err = {0};
    cr_assert_not_null(f);
    f->key = aw_test_key();
    f->seq = 1000000;
    cr_assert_eq(aw_ingest_open(&opts, &f->ing, &err), AW_OK, "%s", err.msg);
    event_json(data, sizeof data, id, "zone-1", "token_exchange", request_id,
               "allow", "complete", occurred_ns,
               "\"application_id\":\"app-1\",\"session_id\":\"ar-extra\"", "");
    audit(f, published_ms - CW_T0_MS, id, data, NULL);
    commit(f, 0);
    aw_ingest_close(f->ing);
    aw_hmac_key_free(f->key);
    free(f);
}

void cw_cleanup(cli_world *w)
{
    if (w->dir[0])
        aw_test_rmtree(w->dir);
    w->dir[0] = '\0';
}

cw_result cw_run(cli_world *w, const char *const *args, const char *const *env)
{
    aw_test_proc p;
    cw_result r;
    char tag[32];
    snprintf(tag, sizeof tag, "run-%d", w->runs++);
    r.status = aw_test_run(&p, w->dir, tag, args, env, 120000);
    r.out = aw_test_read_file(p.out_path, NULL);
    r.err = aw_test_read_file(p.err_path, NULL);
    cr_assert(r.out && r.err, "cannot read the output of auditwatch %s",
              args[0]);
    return r;
}

void cw_result_free(cw_result *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

cJSON *cw_json_lines(const char *out)
{
    cJSON *rows = cJSON_CreateArray();
    for (const char *line = out; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        cJSON *row = cJSON_ParseWithLength(line, len);
        cr_assert(cJSON_IsObject(row), "not a JSON object: %.*s", (int)len,
                  line);
        cJSON_AddItemToArray(rows, row);
        line += len + (end != NULL);
    }
    return rows;
}

const char *cw_str(const cJSON *row, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}

size_t cw_lines(const char *text)
{
    size_t n = 0;
    for (; *text; text++)
        n += *text == '\n';
    return n;
}
