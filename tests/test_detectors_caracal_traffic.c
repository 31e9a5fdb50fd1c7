/* test_detectors_caracal_traffic.c -- the detectors on traffic shaped exactly
 * as Caracal's producers write it (DESIGN §2.4, issue 9), through a real
 * redis-server and the daemon, every entry signed as Caracal signs it (the
 * audit `sig` over `data`, the stream `_sig` over the canonical fields, the
 * outbox's outbox_id and dedupe_key included).
 *
 * One daemon run reads a set of scenarios, each in its own zone so that
 * none can hide or cause another's alert, published before the daemon
 * starts so that they arrive in one batch (the audit stream is read before
 * the revocation streams in a batch: the order that used to raise and
 * resolve at once). Revocation entries get explicit entry ids (their time)
 * in the past, so revocation times are known to the millisecond; accesses
 * are placed around them. The index must then hold exactly the expected
 * alerts: anything else is a false positive.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/support/support.h"

#define AUDIT       "caracal.audit.events"
#define SESSIONS    "caracal.sessions.revoke"
#define LIFECYCLE   "caracal.agents.lifecycle"
#define DELEGATIONS "caracal.delegations.invalidate"

static const char *const streams[] = {
    AUDIT, SESSIONS, LIFECYCLE, DELEGATIONS, "auditwatch.calls", NULL};

static aw_test_redis redis;
static char dir[PATH_MAX], db[PATH_MAX], key_path[PATH_MAX];

static void setup(void)
{
    aw_test_world_up(&redis, false, dir, db);
    aw_test_key_file(dir, "hmac.key", key_path);
}

static void teardown(void)
{
    aw_test_world_down(&redis, dir);
}

TestSuite(detectors_caracal_traffic, .init = setup, .fini = teardown,
          .timeout = 120);

/* ---- Publishing as Caracal does ----------------------------------------------- */

typedef struct world {
    redisContext *c;
    aw_hmac_key *key;
    int64_t base_ms; /* revocations are at base + n s */
    int next_revocation;
    size_t entries; /* everything published */
} world;

static void iso(int64_t ms, char out[40])
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 40 - n, ".%03dZ", (int)(ms % 1000));
}

/* XADD of a stream-scheme entry signed with `_sig`, at entry id `id` ("*"
 * for Redis' own); the entry id into out_id (64 bytes) when not NULL. */
static void xadd_signed(world *w, const char *stream, const char *id,
                        const char *const *fields, size_t n, char *out_id)
{
    const char *argv[3 + 2 * 16 + 2];
    char sig[65];
    cr_assert(n <= 16);
    aw_test_sign_stream(w->key, stream, fields, n, sig);
    size_t argc = 0;
    argv[argc++] = "XADD";
    argv[argc++] = stream;
    argv[argc++] = id;
    for (size_t i = 0; i < 2 * n; i++)
        argv[argc++] = fields[i];
    argv[argc++] = "_sig";
    argv[argc++] = sig;
    redisReply *r = redisCommandArgv(w->c, (int)argc, argv, NULL);
    cr_assert(r && r->type == REDIS_REPLY_STRING, "XADD %s: %s", stream,
              r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
    if (out_id)
        snprintf(out_id, 64, "%s", r->str);
    freeReplyObject(r);
    w->entries++;
}

/* A revocation-stream entry at the next revocation time; returns it (ms). */
static int64_t revoke(world *w, const char *stream, const char *const *fields,
                      size_t n)
{
    int64_t at = w->base_ms + 1000LL * ++w->next_revocation;
    char id[32];
    snprintf(id, sizeof id, "%lld-0", (long long)at);
    xadd_signed(w, stream, id, fields, n, NULL);
    return at;
}

/* A signed audit event at occurred_ms. */
static void audit(world *w, const char *id, const char *zone, const char *type,
                  const char *request, const char *decision, const char *status,
                  int64_t occurred_ms, const char *metadata)
{
    char when[40];
    aw_test_pipe pipe = {w->c, 0, 0};
    iso(occurred_ms, when);
    aw_test_pipe_audit(&pipe, AUDIT, w->key,
                       &(aw_test_audit){.id = id,
                                        .zone_id = zone,
                                        .event_type = type,
                                        .request_id = request,
                                        .decision = decision,
                                        .occurred_at = when,
                                        .metadata_json = metadata,
                                        .evaluation_status = status});
    aw_test_pipe_flush(&pipe);
    w->entries++;
}

/* A token_exchange allow by an agent session under an authority record. */
static void exchange(world *w, const char *id, const char *zone,
                     const char *request, int64_t occurred_ms,
                     const char *record, const char *agent)
{
    char meta[512];
    snprintf(meta, sizeof meta,
             "{\"application_id\":\"app-1\",\"resource\":\"resource://api\","
             "\"requested_scopes\":[\"read\"],\"session_id\":\"%s\","
             "\"agent_session_id\":\"%s\",\"subject_kind\":\"agent\"}",
             record, agent);
    audit(w, id, zone, "token_exchange", request, "allow", "complete",
          occurred_ms, meta);
}

/* A token_exchange allow through delegation edge `edge` (also the chain's
 * one hop), with the graph epoch the STS read (-1: none). */
static void delegated_exchange(world *w, const char *id, const char *zone,
                               const char *request, int64_t occurred_ms,
                               const char *edge, long long epoch)
{
    char meta[768], epoch_json[48] = "";
    if (epoch >= 0)
        snprintf(epoch_json, sizeof epoch_json,
                 ",\"delegation_graph_epoch\":%lld", epoch);
    snprintf(
        meta, sizeof meta,
        "{\"application_id\":\"app-2\",\"resource\":\"resource://api\","
        "\"session_id\":\"ar-%s\",\"agent_session_id\":\"as-%s\","
        "\"delegation_edge_id\":\"%s\",\"delegation_chain\":[{\"application_id\":"
        "\"app-1\",\"agent_session_id\":\"as-parent-%s\",\"delegation_edge_id\":\"%s\"}],"
        "\"delegation_hop_count\":1%s}",
        request, request, edge, request, edge, epoch_json);
    audit(w, id, zone, "token_exchange", request, "allow", "complete",
          occurred_ms, meta);
}

/* A gateway_resource_request: no session, agent session or edge (§2.4);
 * occurred_ms is the end of the call. */
static void gateway_call(world *w, const char *id, const char *zone,
                         const char *request, int64_t occurred_ms,
                         const char *status, int upstream)
{
    char meta[384];
    snprintf(
        meta, sizeof meta,
        "{\"application_id\":\"app-1\",\"resource\":\"resource://api\",\"method\":\"GET\","
        "\"gateway_status\":%d,\"upstream_status\":%d,\"result_class\":\"%s\","
        "\"latency_ms\":12,\"response_bytes\":512,\"trace_id\":\"4bf92f3577b34da6\"}",
        upstream, upstream, upstream < 300 ? "success" : "server_error");
    audit(w, id, zone, "gateway_resource_request", request, "allow", status,
          occurred_ms, meta);
}

/* ---- Reading the outcome --------------------------------------------------------- */

typedef struct expected {
    const char *kind, *zone, *anchor, *request, *severity, *why;
    char id[33];
    bool found;
} expected;

typedef struct outcome {
    expected *want;
    size_t n;
} outcome;

static int check_alert(const aw_alert *alert, void *ud)
{
    outcome *o = ud;
    for (size_t i = 0; i < o->n; i++) {
        if (strcmp(o->want[i].id, alert->id) != 0)
            continue;
        o->want[i].found = true;
        cr_expect_eq(alert->state, AW_ALERT_OPEN, "%s: alert is not open",
                     o->want[i].why);
        cr_expect_str_eq(alert->severity, o->want[i].severity, "%s",
                         o->want[i].why);
        return 0;
    }
    cr_expect_fail(
        "false positive: %s %s alert (zone %s, anchor %s, request %s, %s): %s",
        alert->severity, alert->kind, alert->zone_id ? alert->zone_id : "-",
        alert->anchor ? alert->anchor : "-",
        alert->request_id ? alert->request_id : "-",
        aw_alert_state_name(alert->state),
        alert->summary ? alert->summary : "");
    return 0;
}

static int count_row(const aw_event_row *row, void *ud)
{
    (void)row;
    ++*(int *)ud;
    return 0;
}

typedef struct rejected_count {
    int64_t ambiguous, other;
} rejected_count;

static int count_rejected(const char *name, int64_t count, void *ud)
{
    rejected_count *rc = ud;
    if (strcmp(name, "ambiguous_signed_field") == 0)
        rc->ambiguous += count;
    else
        rc->other += count;
    return 0;
}

typedef struct alert_wait {
    const char *id;
} alert_wait;

static int found_alert(const aw_alert *alert, void *ud)
{
    (void)alert;
    *(bool *)ud = true;
    return 0;
}

static bool alert_exists(void *ud)
{
    aw_store *store;
    aw_error err;
    bool found = false;
    if (aw_store_open(db, AW_STORE_READONLY, &store, &err) != AW_OK)
        return false;
    aw_alert_filter filter = {.id = ((alert_wait *)ud)->id};
    aw_store_query_alerts(store, &filter, found_alert, &found, &err);
    aw_store_close(store);
    return found;
}

/* ---- The scenarios ---------------------------------------------------------------- */

Test(detectors_caracal_traffic,
     caracal_shaped_traffic_raises_exactly_the_real_violations)
{
    world w = {.c = aw_test_redis_connect(&redis), .key = aw_test_key()};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    w.base_ms = now - 600000;
    int64_t after = w.base_ms + 120000; /* past every revocation + grace */
    char when[40], dedupe[128], amb_id[64];
    iso(w.base_ms, when);

    /* 1. Suspend (coordinator: lifecycle suspend + a session revoke naming the
     * authority record and the agent session), then resume. The agent session
     * is usable again under a new authority record; the old record is not. */
    snprintf(dedupe, sizeof dedupe, "agent_suspend:as-s1:%s", when);
    revoke(&w, SESSIONS,
           (const char *[]){"outbox_id", "ob-s1", "dedupe_key", dedupe,
                            "zone_id", "z-suspend", "session_id", "ar-s1",
                            "agent_session_id", "as-s1", "reason", "requested"},
           6);
    snprintf(dedupe, sizeof dedupe, "suspend:as-s1:%s", when);
    revoke(&w, LIFECYCLE,
           (const char *[]){"outbox_id", "ob-s2", "dedupe_key", dedupe, "event",
                            "suspend", "zone_id", "z-suspend",
                            "agent_session_id", "as-s1", "parent_id", "null",
                            "reason", "requested"},
           7);
    snprintf(dedupe, sizeof dedupe, "resume:as-s1:%s", when);
    revoke(&w, LIFECYCLE,
           (const char *[]){"outbox_id", "ob-s3", "dedupe_key", dedupe, "event",
                            "resume", "zone_id", "z-suspend",
                            "agent_session_id", "as-s1", "parent_id", "null"},
           6);
    exchange(&w, "ev-s-new", "z-suspend", "r-s-new", after, "ar-s1b", "as-s1");
    exchange(&w, "ev-s-old", "z-suspend", "r-s-old", after, "ar-s1", "as-s1");

    /* 6. A suspend and its resume read in the same batch as the access
     * after them: nothing to raise, not even for a moment. */
    revoke(&w, LIFECYCLE,
           (const char *[]){"event", "suspend", "zone_id", "z-batch",
                            "agent_session_id", "as-b1", "parent_id", "null",
                            "reason", "requested"},
           5);
    revoke(&w, LIFECYCLE,
           (const char *[]){"event", "resume", "zone_id", "z-batch",
                            "agent_session_id", "as-b1", "parent_id", "null"},
           4);
    exchange(&w, "ev-b1", "z-batch", "r-b1", after, "ar-b1", "as-b1");

    /* 2. control.invoke uses the client's request id as the event id: the
     * same id at another time is another event; the same id and time with
     * other content is tampering. */
    audit(&w, "req-ctl-1", "z-ctl", "control.invoke", "req-ctl-1", "allow",
          "complete", after, "{\"operation\":\"run.start\"}");
    audit(&w, "req-ctl-1", "z-ctl", "control.invoke", "req-ctl-1", "allow",
          "complete", after + 60000, "{\"operation\":\"run.stop\"}");
    audit(&w, "evt-tamper", "z-ctl", "token_exchange", "r-tamper", "deny",
          "complete", after, NULL);
    audit(&w, "evt-tamper", "z-ctl", "token_exchange", "r-tamper", "allow",
          "complete", after, NULL);

    /* 3. A session revoke that names the edge as edge_id. */
    revoke(&w, SESSIONS,
           (const char *[]){"outbox_id", "ob-e3", "dedupe_key",
                            "delegation:de-3:edge", "zone_id", "z-edge",
                            "edge_id", "de-3", "reason", "delegation_revoked"},
           5);
    delegated_exchange(&w, "ev-e3", "z-edge", "r-e3", after, "de-3", -1);

    /* 4. edge_expire: edge_ids is a JSON array written as a string,
     * affected_edges a count, no edge_id. */
    revoke(&w, DELEGATIONS,
           (const char *[]){"outbox_id", "ob-e4", "dedupe_key", "edge_expire:1",
                            "event", "edge_expire", "zone_id", "z-expire",
                            "edge_ids", "[\"de-4a\",\"de-4b\"]",
                            "affected_edges", "2", "epoch", "5"},
           7);
    delegated_exchange(&w, "ev-e4", "z-expire", "r-e4", after, "de-4b", -1);

    /* 5. Request ids repeat: two Gateway calls with one decision is a gap;
     * two with two is not; an allow then a deny and no call is not. */
    int64_t past = now - 120000;
    exchange(&w, "ev-p1", "z-pair", "r-pair", past, "ar-p", "as-p");
    gateway_call(&w, "gw-p1", "z-pair", "r-pair", past + 1000, "executed", 200);
    gateway_call(&w, "gw-p2", "z-pair", "r-pair", past + 2000, "executed", 200);
    exchange(&w, "ev-p2a", "z-pair", "r-2x", past, "ar-p", "as-p");
    exchange(&w, "ev-p2b", "z-pair", "r-2x", past + 5000, "ar-p", "as-p");
    gateway_call(&w, "gw-p2a", "z-pair", "r-2x", past + 1000, "executed", 200);
    gateway_call(&w, "gw-p2b", "z-pair", "r-2x", past + 6000, "executed", 200);
    exchange(&w, "ev-ad1", "z-pair", "r-ad", past, "ar-p", "as-p");
    audit(&w, "ev-ad2", "z-pair", "token_exchange", "r-ad", "deny",
          "provider_credential_unavailable", past + 10,
          "{\"resource\":\"resource://api\",\"reason\":\"idp down\"}");

    /* Gateway events carry no anchors: a call's authority is its decision's,
     * judged at the decision's time (the Gateway stamps the call's end). */
    int64_t gw_revoked =
        revoke(&w, SESSIONS,
               (const char *[]){"zone_id", "z-gw", "session_id", "ar-gw",
                                "reason", "grant_revoked"},
               3);
    exchange(&w, "ev-gw1", "z-gw", "r-gw1", gw_revoked - 1000, "ar-gw",
             "as-gw");
    gateway_call(&w, "gw-gw1", "z-gw", "r-gw1", gw_revoked + 30000, "executed",
                 200);
    exchange(&w, "ev-gw2", "z-gw", "r-gw2", gw_revoked - 60000, "ar-gw",
             "as-gw");
    gateway_call(&w, "gw-gw2", "z-gw", "r-gw2", gw_revoked - 59000, "executed",
                 200);
    exchange(&w, "ev-gw3", "z-gw", "r-gw2", after, "ar-gw", "as-gw");
    gateway_call(&w, "gw-gw3", "z-gw", "r-gw2", after + 1000, "upstream_error",
                 502);

    /* The delegation-epoch rule: an allow at the edge's revocation epoch is a
     * violation even when its clock says it came first; one epoch earlier
     * is not. */
    int64_t ep_revoked =
        revoke(&w, DELEGATIONS,
               (const char *[]){"outbox_id", "ob-e8", "dedupe_key",
                                "edge_revoke:de-8", "event", "edge_revoke",
                                "zone_id", "z-epoch", "edge_id", "de-8",
                                "affected_edges", "0", "epoch", "7"},
               7);
    delegated_exchange(&w, "ev-ep7", "z-epoch", "r-ep7", ep_revoked - 30000,
                       "de-8", 7);
    delegated_exchange(&w, "ev-ep6", "z-epoch", "r-ep6", ep_revoked - 30000,
                       "de-8", 6);

    /* Outbox delivery is at least once: a suspend redelivered after the
     * resume is the same suspend, at its first delivery's time. */
    const char *suspend_o[] = {
        "outbox_id", "ob-o1",   "dedupe_key", "suspend:as-o:1",   "event",
        "suspend",   "zone_id", "z-outbox",   "agent_session_id", "as-o",
        "parent_id", "as-root", "reason",     "requested"};
    revoke(&w, LIFECYCLE, suspend_o, 7);
    revoke(&w, LIFECYCLE,
           (const char *[]){"outbox_id", "ob-o2", "dedupe_key", "resume:as-o:1",
                            "event", "resume", "zone_id", "z-outbox",
                            "agent_session_id", "as-o", "parent_id", "as-root"},
           6);
    revoke(&w, LIFECYCLE, suspend_o, 7);
    exchange(&w, "ev-o1", "z-outbox", "r-o1", after, "ar-o", "as-o");

    /* spawn and edge_create are ordinary traffic; a root's parent_id is the
     * string "null". */
    revoke(&w, LIFECYCLE,
           (const char *[]){"outbox_id", "ob-sp", "dedupe_key", "spawn:as-sp",
                            "event", "spawn", "zone_id", "z-spawn",
                            "agent_session_id", "as-sp", "application_id",
                            "app-1", "parent_id", "null"},
           7);
    revoke(&w, DELEGATIONS,
           (const char *[]){"outbox_id", "ob-ec", "dedupe_key",
                            "edge_create:de-c", "event", "edge_create",
                            "zone_id", "z-spawn", "edge_id", "de-c",
                            "source_session_id", "as-root", "target_session_id",
                            "as-sp", "epoch", "3"},
           8);
    exchange(&w, "ev-sp", "z-spawn", "r-sp", after, "ar-sp", "as-sp");

    /* Enforcement grace: an allow 2 s after the revocation is propagation,
     * 8 s after is a violation. */
    int64_t g_revoked =
        revoke(&w, SESSIONS,
               (const char *[]){"zone_id", "z-grace", "session_id", "ar-g",
                                "reason", "grant_revoked"},
               3);
    exchange(&w, "ev-g2", "z-grace", "r-g2", g_revoked + 2000, "ar-g", "as-g");
    exchange(&w, "ev-g8", "z-grace", "r-g8", g_revoked + 8000, "ar-g", "as-g");

    /* 10. A correctly signed entry whose value holds a line that reads as a
     * further field in its sorted place (session_id, between reason and
     * zone_id): the canonical form cannot tell it from another field set. */
    xadd_signed(&w, SESSIONS, "*",
                (const char *[]){"zone_id", "z-amb", "agent_session_id",
                                 "as-amb", "reason", "x\nsession_id=ar-victim"},
                3, amb_id);

    /* ---- run the daemon over all of it ---- */
    const char *args[] = {
        "--audit-hmac-key-file", key_path, "--streams-hmac-key-file", key_path,
        "--grace-missing",       "2",      "--no-alert-stream",       NULL};
    aw_test_proc daemon;
    expected want[] = {
        {AW_ALERT_ACCESS_AFTER_REVOCATION, "z-suspend",
         "authority_record:ar-s1", "r-s-old", "high",
         "the suspended session's old authority record stays revoked", "",
         false},
        {AW_ALERT_TAMPERED_ON_REDELIVERY, "z-ctl", "evt-tamper", "r-tamper",
         "critical", "same id and occurred_at, other content", "", false},
        {AW_ALERT_ACCESS_AFTER_REVOCATION, "z-edge", "delegation_edge:de-3",
         "r-e3", "high", "edge revoked as edge_id", "", false},
        {AW_ALERT_ACCESS_AFTER_REVOCATION, "z-expire", "delegation_edge:de-4b",
         "r-e4", "high", "edge expired through edge_ids", "", false},
        {AW_ALERT_DECISION_MISSING, "z-pair", NULL, "r-pair", "critical",
         "two Gateway calls, one decision", "", false},
        {AW_ALERT_ACCESS_AFTER_REVOCATION, "z-gw", "authority_record:ar-gw",
         "r-gw2", "high",
         "reused request id: the executed call ended before this decision", "",
         false},
        {AW_ALERT_ACCESS_AFTER_REVOCATION, "z-epoch", "delegation_edge:de-8",
         "r-ep7", "high", "allow at the edge's revocation epoch", "", false},
        {AW_ALERT_ACCESS_AFTER_REVOCATION, "z-grace", "authority_record:ar-g",
         "r-g8", "high", "allow past the propagation grace", "", false},
        {AW_ALERT_SIGNATURE_INVALID, NULL, NULL, NULL, "high",
         "signed value holding a newline", "", false},
    };
    size_t nwant = sizeof want / sizeof *want;
    char amb_anchor[128];
    snprintf(amb_anchor, sizeof amb_anchor, "%s:%s", SESSIONS, amb_id);
    want[nwant - 1].anchor = amb_anchor;
    for (size_t i = 0; i < nwant; i++)
        aw_detectors_alert_id(want[i].kind, want[i].zone, want[i].anchor,
                              want[i].request, want[i].id);

    aw_test_daemon_start(&daemon, dir, "daemon", &redis, db, args, NULL);
    cr_assert(aw_test_wait_entries(db, (int64_t)w.entries, 30000),
              "the daemon did not index");
    cr_assert(aw_test_wait_no_pending(w.c, streams, "auditwatch", 10000));
    alert_wait gap = {want[4].id};
    cr_expect(aw_test_wait_for(alert_exists, &gap, 20000),
              "no decision_missing for two Gateway calls with one decision");
    aw_test_daemon_stop(&daemon, 5000);

    aw_store *store;
    aw_error err;
    cr_assert_eq(aw_store_open(db, AW_STORE_READONLY, &store, &err), AW_OK,
                 "%s", err.msg);
    outcome o = {want, nwant};
    aw_alert_filter all = {0};
    cr_assert_eq(aw_store_query_alerts(store, &all, check_alert, &o, &err),
                 AW_OK, "%s", err.msg);
    for (size_t i = 0; i < nwant; i++)
        cr_expect(want[i].found, "missed: %s (%s %s)", want[i].why,
                  want[i].kind, want[i].anchor ? want[i].anchor : "");

    int ctl = 0;
    aw_event_filter by_id = {.event_id = "req-ctl-1"};
    cr_assert_eq(aw_store_query_events(store, &by_id, count_row, &ctl, &err),
                 AW_OK, "%s", err.msg);
    cr_expect_eq(ctl, 2,
                 "both control.invoke events sharing an id are indexed");

    rejected_count rejected = {0};
    cr_assert_eq(aw_store_count_by(store, "rejected_by_reason", count_rejected,
                                   &rejected, &err),
                 AW_OK, "%s", err.msg);
    cr_expect_eq(rejected.ambiguous, 1,
                 "the newline entry is rejected with its own reason");
    cr_expect_eq(rejected.other, 0,
                 "spawn, edge_create, edge_expire, edge_id are not rejected");
    aw_store_close(store);
    aw_hmac_key_free(w.key);
    redisFree(w.c);
}
