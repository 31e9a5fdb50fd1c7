/* test_consumer_pipeline.c -- the daemon watching Caracal's own pipeline
 * against a real redis-server (DESIGN §8), with Caracal's consumer groups
 * created at `$` the way Caracal creates them: what Caracal dead-lettered is
 * read in auditwatch's own group, alerted, and traceable, and nothing is
 * ever created, joined or acknowledged in Caracal's groups. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/support.h"

#define AUDIT  "caracal.audit.events"
#define DLQ    "caracal.audit.events.dlq"
#define REVOKE "caracal.sessions.revoke"
#define DEAD   "caracal.sessions.revoke.dead"

static aw_test_redis redis;
static char dir[PATH_MAX], db[PATH_MAX], keyfile[PATH_MAX];

static void setup(void)
{
    aw_test_world_up(&redis, false, dir, db);
    aw_test_key_file(dir, "hmac.key", keyfile);
}

static void teardown(void)
{
    aw_test_world_down(&redis, dir);
}

TestSuite(consumer_pipeline, .init = setup, .fini = teardown, .timeout = 120);

static const struct {
    const char *stream, *group;
} caracal_groups[] = {
    {AUDIT, "audit-ingestor"},
    {AUDIT, "siem-export"},
    {REVOKE, "sts-revocation"},
    {REVOKE, "gateway-revocation:host-a"},
};
#define NCARACAL (sizeof caracal_groups / sizeof *caracal_groups)

static void create_caracal_groups(redisContext *c)
{
    for (size_t i = 0; i < NCARACAL; i++) {
        redisReply *r =
            aw_test_command(c, "XGROUP CREATE %s %s $ MKSTREAM",
                            caracal_groups[i].stream, caracal_groups[i].group);
        cr_assert(r->type == REDIS_REPLY_STATUS, "XGROUP CREATE: %s", r->str);
        freeReplyObject(r);
    }
}

static long long map_int(const redisReply *map, const char *key)
{
    const redisReply *v = aw_redis_map_get(map, key);
    cr_assert(v && v->type == REDIS_REPLY_INTEGER, "no %s", key);
    return v->integer;
}

/* Caracal's groups as Caracal left them: no consumer, nothing delivered,
 * nothing pending; and on the dead-letter streams no group but ours. */
static void assert_caracal_groups_untouched(redisContext *c)
{
    for (size_t i = 0; i < NCARACAL; i++) {
        redisReply *r =
            aw_test_command(c, "XINFO GROUPS %s", caracal_groups[i].stream);
        bool found = false;
        for (size_t g = 0; g < r->elements; g++) {
            const redisReply *name = aw_redis_map_get(r->element[g], "name");
            if (!name || strcmp(name->str, caracal_groups[i].group) != 0)
                continue;
            found = true;
            cr_expect_eq(map_int(r->element[g], "consumers"), 0, "%s",
                         name->str);
            cr_expect_eq(map_int(r->element[g], "pending"), 0, "%s", name->str);
            const redisReply *last =
                aw_redis_map_get(r->element[g], "last-delivered-id");
            cr_expect_str_eq(last->str, "0-0", "%s got deliveries", name->str);
        }
        cr_expect(found, "group %s vanished", caracal_groups[i].group);
        freeReplyObject(r);
    }
    const char *dead_streams[] = {DLQ, DEAD};
    for (size_t s = 0; s < 2; s++) {
        redisReply *r = aw_test_command(c, "XINFO GROUPS %s", dead_streams[s]);
        cr_assert_eq(r->elements, 1, "%s has groups besides auditwatch's",
                     dead_streams[s]);
        cr_expect_str_eq(aw_redis_map_get(r->element[0], "name")->str,
                         "auditwatch");
        freeReplyObject(r);
    }
}

typedef struct alert_count {
    const char *kind;
    size_t want;
    aw_alert_state state; /* 0: any */
} alert_count;

static int count_alert(const aw_alert *a, void *ud)
{
    (void)a;
    ++*(size_t *)ud;
    return 0;
}

static size_t alerts_in(const char *kind, aw_alert_state state)
{
    aw_store *store;
    aw_error err = {0};
    size_t n = 0;
    if (aw_store_open(db, AW_STORE_READONLY, &store, &err) != AW_OK)
        return 0;
    if (aw_store_query_alerts(store,
                              &(aw_alert_filter){.kind = kind, .state = state},
                              count_alert, &n, &err) != AW_OK)
        n = 0;
    aw_store_close(store);
    return n;
}

static size_t alerts_of(const char *kind)
{
    return alerts_in(kind, 0);
}

static bool has_alerts(void *ud)
{
    const alert_count *want = ud;
    for (; want->kind; want++)
        if (alerts_in(want->kind, want->state) < want->want)
            return false;
    return true;
}

/* The original revocation's fields, signed for stream, as a JSON object. */
static void revocation_json(aw_hmac_key *key, const char *stream,
                            const char *session, char *out, size_t size)
{
    const char *fields[] = {"zone_id", "zone-1", "session_id",
                            session,   "reason", "grant_revoked"};
    char sig[65];
    aw_test_sign_stream(key, stream, fields, 3, sig);
    snprintf(
        out, size,
        "{\"zone_id\":\"zone-1\",\"session_id\":\"%s\",\"reason\":\"grant_revoked\","
        "\"_sig\":\"%s\"}",
        session, sig);
}

/* The audit service's DLQ copy of event a, on stream dlq. */
static void xadd_dlq_copy(aw_test_pipe *pipe, aw_hmac_key *key, const char *dlq,
                          const aw_test_audit *a)
{
    aw_test_dlq_copy copy;
    aw_test_dlq_copy_of(a, key, NULL, &copy);
    aw_test_pipe_xadd(pipe, dlq, copy.kv, NULL, 5);
}

/* A Gateway's dead letter of a revocation of session on origin: on
 * "<origin>.dead", signed under that name. */
static void xadd_gateway_dead_letter(aw_test_pipe *pipe, aw_hmac_key *key,
                                     const char *origin, const char *session)
{
    char values[512], dead[256];
    snprintf(dead, sizeof dead, "%s.dead", origin);
    revocation_json(key, origin, session, values, sizeof values);
    aw_test_dead_letter letter;
    aw_test_dead_letter_of(dead, values, "apply_failed", key, &letter);
    aw_test_pipe_xadd(pipe, dead, letter.kv, NULL, 4);
}

Test(consumer_pipeline,
     dead_letters_are_alerted_and_traceable_without_touching_caracal_groups)
{
    aw_hmac_key *key = aw_test_key();
    redisContext *c = aw_test_redis_connect(&redis);
    aw_test_pipe pipe = {c, 0, 0};
    aw_test_proc daemon;
    const char *args[] = {"--audit-hmac-key-file", keyfile,
                          "--streams-hmac-key-file", keyfile, NULL};
    create_caracal_groups(c);
    aw_test_daemon_start(&daemon, dir, "pipeline", &redis, db, args, NULL);

    /* The audit service's DLQ copy of a Gateway call. */
    xadd_dlq_copy(&pipe, key, DLQ,
                  &(aw_test_audit){.id = "evt-dl",
                                   .request_id = "req-dl",
                                   .event_type = "gateway_resource_request"});
    /* A Gateway's dead letter (signed under the .dead stream) and the SDK's. */
    xadd_gateway_dead_letter(&pipe, key, REVOKE, "ar-gateway");
    char payload[512];
    revocation_json(key, REVOKE, "ar-sdk", payload, sizeof payload);
    const char *sdk[] = {"source_id",      "1779364801000-0", "reason",
                         "handler_failed", "payload",         payload};
    aw_test_pipe_xadd(&pipe, DEAD, sdk, NULL, 3);
    aw_test_pipe_flush(&pipe);

    alert_count want[] = {
        {"audit_dead_lettered", 1, 0}, {"revocation_dead_lettered", 2, 0}, {0}};
    cr_assert(aw_test_wait_for(has_alerts, want, 20000),
              "the dead letters were not alerted");
    const char *streams[] = {DLQ, DEAD, NULL};
    cr_assert(aw_test_wait_no_pending(c, streams, "auditwatch", 10000));
    aw_test_daemon_stop(&daemon, 5000);

    aw_test_proc trace;
    const char *trace_args[] = {"trace", "req-dl", "--format", "json",
                                "--db",  db,       NULL};
    cr_assert_eq(aw_test_run(&trace, dir, "trace", trace_args, NULL, 10000), 0);
    char *out = aw_test_read_file(trace.out_path, NULL);
    cr_assert(out);
    cr_expect(strstr(out, "\"dead_letter\""),
              "the event is marked dead-lettered: %s", out);
    cr_expect(strstr(out, "max_deliveries_exceeded"),
              "Caracal's reason is shown: %s", out);
    cr_expect(strstr(out, "audit_dead_lettered"),
              "the alert is in the story: %s", out);
    free(out);

    /* The rows decoded from dead letters hold against their raw entries. */
    aw_test_proc verify;
    const char *verify_args[] = {"verify", "--db", db, NULL};
    int status = aw_test_run(&verify, dir, "verify", verify_args, NULL, 10000);
    out = aw_test_read_file(verify.out_path, NULL);
    cr_expect_eq(status, 0, "verify: %s", out ? out : "");
    free(out);

    assert_caracal_groups_untouched(c);
    redisFree(c);
    aw_hmac_key_free(key);
}

/* What Caracal's DLQ replay (POST /api/audit/dlq/replay) does: the dead
 * letter's src_data and src_sig re-published on the audit stream, then the
 * DLQ entry deleted. The copy resolves the alert; deleting an entry the
 * group already read is no lost evidence. */
Test(consumer_pipeline, a_dlq_replay_resolves_its_dead_lettered_alert)
{
    aw_hmac_key *key = aw_test_key();
    redisContext *c = aw_test_redis_connect(&redis);
    aw_test_pipe pipe = {c, 0, 0};
    aw_test_proc daemon;
    const char *args[] = {"--audit-hmac-key-file", keyfile, NULL};
    aw_test_daemon_start(&daemon, dir, "replay", &redis, db, args, NULL);

    aw_test_audit a = {.id = "evt-replay",
                       .request_id = "req-replay",
                       .event_type = "gateway_resource_request"};
    xadd_dlq_copy(&pipe, key, DLQ, &a);
    aw_test_pipe_flush(&pipe);
    alert_count open[] = {{"audit_dead_lettered", 1, AW_ALERT_OPEN}, {0}};
    cr_assert(aw_test_wait_for(has_alerts, open, 20000),
              "the dead letter was not alerted");
    const char *dlq[] = {DLQ, NULL};
    cr_assert(aw_test_wait_no_pending(c, dlq, "auditwatch", 10000));

    aw_test_dlq_copy copy;
    aw_test_dlq_copy_of(&a, key, NULL, &copy);
    const char *replayed[] = {"data", copy.data, "sig", copy.sig};
    aw_test_pipe_xadd(&pipe, AUDIT, replayed, NULL, 2);
    aw_test_pipe_flush(&pipe);
    redisReply *r = redisCommand(c, "XRANGE %s - +", DLQ);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 1);
    redisReply *del =
        redisCommand(c, "XDEL %s %s", DLQ, r->element[0]->element[0]->str);
    cr_assert(del && del->type == REDIS_REPLY_INTEGER && del->integer == 1);
    freeReplyObject(del);
    freeReplyObject(r);

    alert_count resolved[] = {{"audit_dead_lettered", 1, AW_ALERT_RESOLVED},
                              {0}};
    cr_assert(aw_test_wait_for(has_alerts, resolved, 20000),
              "the replay copy did not resolve the alert");
    aw_test_daemon_stop(&daemon, 5000);
    cr_expect_eq(alerts_of("audit_dead_lettered"), 1, "one alert, resolved");
    cr_expect_eq(alerts_of("audit_evidence_trimmed"), 0,
                 "the DLQ entry was read before its deletion");
    cr_expect_eq(alerts_of("tampered_on_redelivery"), 0);
    redisFree(c);
    aw_hmac_key_free(key);
}

Test(consumer_pipeline, renamed_streams_take_their_dead_letter_streams_along)
{
    aw_hmac_key *key = aw_test_key();
    redisContext *c = aw_test_redis_connect(&redis);
    aw_test_pipe pipe = {c, 0, 0};
    aw_test_proc daemon;
    const char *args[] = {"--audit-hmac-key-file",
                          keyfile,
                          "--streams-hmac-key-file",
                          keyfile,
                          "--stream",
                          "audit=tenant.audit",
                          "--stream",
                          "sessions=tenant.revoke",
                          NULL};
    aw_test_daemon_start(&daemon, dir, "renamed", &redis, db, args, NULL);

    xadd_dlq_copy(
        &pipe, key, "tenant.audit.dlq",
        &(aw_test_audit){.id = "evt-renamed", .request_id = "req-renamed"});
    xadd_gateway_dead_letter(&pipe, key, "tenant.revoke", "ar-renamed");
    aw_test_pipe_flush(&pipe);

    alert_count want[] = {
        {"audit_dead_lettered", 1, 0}, {"revocation_dead_lettered", 1, 0}, {0}};
    cr_assert(aw_test_wait_for(has_alerts, want, 20000),
              "dead letters of renamed streams were not alerted");
    const char *streams[] = {"tenant.audit.dlq", "tenant.revoke.dead", NULL};
    cr_assert(aw_test_wait_no_pending(c, streams, "auditwatch", 10000));
    aw_test_daemon_stop(&daemon, 5000);
    cr_expect_eq(alerts_of("signature_invalid"), 0,
                 "the original verified under the renamed stream");

    /* verify, told the same names, decodes them as the daemon did. */
    aw_test_proc verify;
    const char *verify_args[] = {"verify",
                                 "--db",
                                 db,
                                 "--stream",
                                 "audit=tenant.audit",
                                 "--stream",
                                 "sessions=tenant.revoke",
                                 NULL};
    int status = aw_test_run(&verify, dir, "verify", verify_args, NULL, 10000);
    char *out = aw_test_read_file(verify.out_path, NULL);
    cr_expect_eq(status, 0, "verify: %s", out ? out : "");
    free(out);
    redisFree(c);
    aw_hmac_key_free(key);
}

/* ---- Revocation enforcers and the audit ingestor, polled ------------------------ */

typedef struct open_alerts {
    const char *kind, *group; /* group NULL: any */
    size_t n;
    char summary[768], evidence[512], id[33], severity[16];
} open_alerts;

static int count_open(const aw_alert *a, void *ud)
{
    open_alerts *o = ud;
    if (o->group && (!a->anchor || strcmp(a->anchor, o->group) != 0))
        return 0;
    o->n++;
    snprintf(o->summary, sizeof o->summary, "%s", a->summary ? a->summary : "");
    snprintf(o->evidence, sizeof o->evidence, "%s",
             a->evidence_json ? a->evidence_json : "");
    snprintf(o->id, sizeof o->id, "%s", a->id);
    snprintf(o->severity, sizeof o->severity, "%s", a->severity);
    return 0;
}

static open_alerts open_of(const char *kind, const char *group,
                           aw_alert_state state)
{
    open_alerts o = {kind, group, 0, "", "", "", ""};
    aw_store *store;
    aw_error err = {0};
    if (aw_store_open(db, AW_STORE_READONLY, &store, &err) != AW_OK)
        return o;
    aw_store_query_alerts(store,
                          &(aw_alert_filter){.kind = kind, .state = state},
                          count_open, &o, &err);
    aw_store_close(store);
    return o;
}

typedef struct group_wait {
    const char *kind, *group;
    aw_alert_state state;
    size_t want;
} group_wait;

static bool group_alerted(void *ud)
{
    const group_wait *g = ud;
    return open_of(g->kind, g->group, g->state).n == g->want;
}

/* A signed revocation of anchor (session_id, delegation_edge_id, ...) id. */
static void xadd_revocation(redisContext *c, aw_hmac_key *key,
                            const char *anchor, const char *id)
{
    aw_test_pipe pipe = {c, 0, 0};
    char sig[65];
    const char *fields[8] = {"zone_id", "zone-1", anchor,
                             id,        "reason", "grant_revoked"};
    aw_test_sign_stream(key, REVOKE, fields, 3, sig);
    fields[6] = "_sig";
    fields[7] = sig;
    aw_test_pipe_xadd(&pipe, REVOKE, fields, NULL, 4);
    aw_test_pipe_flush(&pipe);
}

/* What an enforcer does: read as consumer of group, and acknowledge or not. */
static void enforcer_reads(redisContext *c, const char *group, bool ack)
{
    redisReply *r =
        aw_test_command(c, "XREADGROUP GROUP %s %s-1 COUNT 100 STREAMS %s >",
                        group, group, REVOKE);
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 1, "XREADGROUP %s",
              group);
    const redisReply *entries = r->element[0]->element[1];
    for (size_t i = 0; ack && i < entries->elements; i++)
        freeReplyObject(aw_test_command(c, "XACK %s %s %s", REVOKE, group,
                                        entries->element[i]->element[0]->str));
    freeReplyObject(r);
}

static void create_group(redisContext *c, const char *stream, const char *group)
{
    redisReply *r =
        aw_test_command(c, "XGROUP CREATE %s %s $ MKSTREAM", stream, group);
    cr_assert(r->type == REDIS_REPLY_STATUS, "XGROUP CREATE %s: %s", group,
              r->str);
    freeReplyObject(r);
}

/* sts-revocation and groups (NULL-terminated) created at `$`, then a daemon
 * that polls them every 100 ms and judges after half a second. */
static void start_enforcer_daemon(aw_test_proc *daemon, redisContext *c,
                                  const char *tag, const char *const *groups)
{
    const char *args[] = {"--streams-hmac-key-file",
                          keyfile,
                          "--enforcer-poll",
                          "100ms",
                          "--grace-enforcer",
                          "0.5s",
                          NULL};
    create_group(c, REVOKE, "sts-revocation");
    for (; *groups; groups++)
        create_group(c, REVOKE, *groups);
    aw_test_daemon_start(daemon, dir, tag, &redis, db, args, NULL);
}

Test(consumer_pipeline,
     enforcers_that_do_not_apply_a_revocation_are_alerted_until_they_catch_up)
{
    aw_hmac_key *key = aw_test_key();
    redisContext *c = aw_test_redis_connect(&redis);
    aw_test_proc daemon;
    const char *groups[] = {"gateway-revocation:never",
                            "gateway-revocation:no-ack",
                            "opa-engine", /* not an enforcer: never judged */
                            NULL};
    start_enforcer_daemon(&daemon, c, "enforcers", groups);

    xadd_revocation(c, key, "session_id", "ar-1");
    enforcer_reads(c, "sts-revocation", true);
    enforcer_reads(c, "gateway-revocation:no-ack", false);
    create_group(c, REVOKE,
                 "gateway-revocation:late"); /* joins after ar-1, at $ */

    group_wait never = {"revocation_not_consumed", "gateway-revocation:never",
                        AW_ALERT_OPEN, 1};
    group_wait no_ack = {"revocation_not_consumed", "gateway-revocation:no-ack",
                         AW_ALERT_OPEN, 1};
    cr_assert(aw_test_wait_for(group_alerted, &never, 15000),
              "a group that never reads");
    cr_assert(aw_test_wait_for(group_alerted, &no_ack, 15000),
              "a group that never acks");
    open_alerts o = open_of("revocation_not_consumed",
                            "gateway-revocation:never", AW_ALERT_OPEN);
    cr_expect(strstr(o.summary, "authority_record ar-1"),
              "names the anchors: %s", o.summary);
    cr_expect(strstr(o.summary, "not_reading"), "%s", o.summary);
    cr_expect_str_eq(o.severity, "critical");
    o = open_of("revocation_not_consumed", "gateway-revocation:no-ack",
                AW_ALERT_OPEN);
    cr_expect(strstr(o.summary, "not_acking"), "%s", o.summary);
    cr_expect(strstr(o.summary, "gateway-revocation:no-ack-1 idle"),
              "consumer idle: %s", o.summary);
    cr_expect_eq(
        open_of("revocation_not_consumed", NULL, AW_ALERT_OPEN).n, 2,
        "sts-revocation applied it, opa-engine is no enforcer, the late group never "
        "had it");

    enforcer_reads(c, "gateway-revocation:never", true);
    redisReply *pending = aw_test_command(
        c, "XPENDING %s gateway-revocation:no-ack - + 10", REVOKE);
    for (size_t i = 0; i < pending->elements; i++)
        freeReplyObject(
            aw_test_command(c, "XACK %s gateway-revocation:no-ack %s", REVOKE,
                            pending->element[i]->element[0]->str));
    freeReplyObject(pending);
    group_wait resolved = {"revocation_not_consumed", NULL, AW_ALERT_RESOLVED,
                           2};
    cr_assert(aw_test_wait_for(group_alerted, &resolved, 15000),
              "both alerts resolve once the groups caught up");
    aw_test_daemon_stop(&daemon, 5000);
    redisFree(c);
    aw_hmac_key_free(key);
}

/* Caracal's API revokes each delegation edge on caracal.sessions.revoke
 * naming the edge alone. The STS fails such an entry and leaves it pending
 * (the Gateway applies it): that is no revocation the STS left unapplied,
 * and one it did fail behind it is still seen. */
Test(consumer_pipeline,
     the_sts_is_judged_past_the_edge_revocations_it_declines_by_design)
{
    aw_hmac_key *key = aw_test_key();
    redisContext *c = aw_test_redis_connect(&redis);
    aw_test_proc daemon;
    const char *groups[] = {"gateway-revocation:gw", NULL};
    start_enforcer_daemon(&daemon, c, "sts-declines", groups);

    xadd_revocation(c, key, "delegation_edge_id", "edge-1");
    xadd_revocation(c, key, "session_id", "ar-1");
    enforcer_reads(c, "gateway-revocation:gw", true);
    /* the STS: edge-1 fails its handler and stays pending, ar-1 applies */
    redisReply *r = aw_test_command(
        c, "XREADGROUP GROUP sts-revocation sts-1 COUNT 2 STREAMS %s >",
        REVOKE);
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 1);
    cr_assert_eq(r->element[0]->element[1]->elements, 2);
    freeReplyObject(aw_test_command(
        c, "XACK %s sts-revocation %s", REVOKE,
        r->element[0]->element[1]->element[1]->element[0]->str));
    freeReplyObject(r);

    /* then a session revocation it reads and does not apply */
    xadd_revocation(c, key, "agent_session_id", "as-2");
    enforcer_reads(c, "gateway-revocation:gw", true);
    enforcer_reads(c, "sts-revocation", false);
    group_wait raised = {"revocation_not_consumed", "sts-revocation",
                         AW_ALERT_OPEN, 1};
    cr_assert(aw_test_wait_for(group_alerted, &raised, 15000),
              "the STS's unapplied as-2 is not seen past edge-1");
    open_alerts o =
        open_of("revocation_not_consumed", "sts-revocation", AW_ALERT_OPEN);
    cr_expect(strstr(o.summary, "agent_session as-2"), "about as-2: %s",
              o.summary);
    cr_expect(!strstr(o.summary, "edge-1"), "%s", o.summary);

    redisReply *pending =
        aw_test_command(c, "XPENDING %s sts-revocation - + 10", REVOKE);
    cr_assert_eq(pending->elements, 2, "edge-1 and as-2 pending");
    freeReplyObject(aw_test_command(c, "XACK %s sts-revocation %s", REVOKE,
                                    pending->element[1]->element[0]->str));
    freeReplyObject(pending);
    group_wait resolved = {"revocation_not_consumed", "sts-revocation",
                           AW_ALERT_RESOLVED, 1};
    cr_assert(aw_test_wait_for(group_alerted, &resolved, 15000),
              "resolved once as-2 is applied, edge-1 still pending");
    aw_test_daemon_stop(&daemon, 5000);
    cr_expect_eq(open_of("revocation_not_consumed", NULL, AW_ALERT_OPEN).n, 0,
                 "edge-1 was never alerted");
    cr_expect_eq(open_of("revocation_not_consumed", NULL, 0).n, 1);
    redisFree(c);
    aw_hmac_key_free(key);
}

/* Caracal names a Gateway's group after its host and deletes none: a host
 * scaled away leaves a group whose consumer last tried to read before the
 * revocation was written. That is said, and not as a critical. */
Test(consumer_pipeline, a_group_nobody_has_read_since_the_revocation_is_medium)
{
    aw_hmac_key *key = aw_test_key();
    redisContext *c = aw_test_redis_connect(&redis);
    aw_test_proc daemon;
    const char *groups[] = {"gateway-revocation:gone-host", NULL};
    start_enforcer_daemon(&daemon, c, "gone-host", groups);
    /* its host applied ar-0, then was scaled away */
    xadd_revocation(c, key, "session_id", "ar-0");
    enforcer_reads(c, "sts-revocation", true);
    enforcer_reads(c, "gateway-revocation:gone-host", true);
    usleep(50 * 1000);
    /* ar-1 reaches neither: the STS's group, which its replicas share, is
     * no host's left behind */
    xadd_revocation(c, key, "session_id", "ar-1");
    group_wait raised = {"revocation_not_consumed", NULL, AW_ALERT_OPEN, 2};
    cr_assert(aw_test_wait_for(group_alerted, &raised, 15000));
    aw_test_daemon_stop(&daemon, 5000);
    open_alerts o = open_of("revocation_not_consumed",
                            "gateway-revocation:gone-host", AW_ALERT_OPEN);
    cr_expect_str_eq(o.severity, "medium");
    cr_expect(strstr(o.summary,
                     "no consumer of the group has read since before it was "
                     "written"),
              "%s", o.summary);
    o = open_of("revocation_not_consumed", "sts-revocation", AW_ALERT_OPEN);
    cr_expect_str_eq(o.severity, "critical");
    redisFree(c);
    aw_hmac_key_free(key);
}

/* A Gateway reclaims its pending entries with XAUTOCLAIM, which drops one
 * trimmed from the stream: no longer pending, yet never applied. Its alert
 * stays open; the group's later revocations are judged as usual. */
Test(consumer_pipeline,
     a_revocation_trimmed_while_pending_is_not_taken_for_applied)
{
    aw_hmac_key *key = aw_test_key();
    redisContext *c = aw_test_redis_connect(&redis);
    aw_test_proc daemon;
    const char *groups[] = {"gateway-revocation:gw", NULL};
    start_enforcer_daemon(&daemon, c, "trimmed-pending", groups);
    xadd_revocation(c, key, "session_id", "ar-1");
    enforcer_reads(c, "sts-revocation", true);
    enforcer_reads(c, "gateway-revocation:gw", false);
    group_wait raised = {"revocation_not_consumed", "gateway-revocation:gw",
                         AW_ALERT_OPEN, 1};
    cr_assert(aw_test_wait_for(group_alerted, &raised, 15000));

    xadd_revocation(c, key, "session_id", "ar-2");
    redisReply *last = aw_test_command(c, "XREVRANGE %s + - COUNT 1", REVOKE);
    freeReplyObject(aw_test_command(c, "XTRIM %s MINID %s", REVOKE,
                                    last->element[0]->element[0]->str));
    freeReplyObject(last);
    redisReply *claimed = aw_test_command(
        c, "XAUTOCLAIM %s gateway-revocation:gw gw-1 0 0-0", REVOKE);
    cr_assert(claimed->type == REDIS_REPLY_ARRAY && claimed->elements == 3 &&
                  claimed->element[2]->elements == 1,
              "XAUTOCLAIM drops the trimmed ar-1");
    freeReplyObject(claimed);
    enforcer_reads(c, "sts-revocation", true);
    enforcer_reads(c, "gateway-revocation:gw", true);

    /* the group applied ar-2 and holds nothing pending: polls go by */
    group_wait sts_fine = {"revocation_not_consumed", "sts-revocation",
                           AW_ALERT_OPEN, 0};
    cr_assert(aw_test_wait_for(group_alerted, &sts_fine, 5000));
    usleep(1000 * 1000);
    aw_test_daemon_stop(&daemon, 5000);
    open_alerts o = open_of("revocation_not_consumed", "gateway-revocation:gw",
                            AW_ALERT_OPEN);
    cr_expect_eq(o.n, 1, "ar-1 was dropped unapplied: still open");
    cr_expect(strstr(o.summary, "authority_record ar-1"), "%s", o.summary);
    cr_expect_eq(open_of("revocation_not_consumed", NULL, AW_ALERT_RESOLVED).n,
                 0);
    redisFree(c);
    aw_hmac_key_free(key);
}

static bool marked_deleted(void *ud)
{
    open_alerts o = open_of("revocation_not_consumed", ud, AW_ALERT_OPEN);
    return o.n == 1 && strstr(o.evidence, "group_deleted:");
}

Test(consumer_pipeline,
     an_alert_about_a_deleted_enforcer_group_stays_open_and_says_why)
{
    aw_hmac_key *key = aw_test_key();
    redisContext *c = aw_test_redis_connect(&redis);
    aw_test_proc daemon;
    const char *groups[] = {"gateway-revocation:retired", NULL};
    start_enforcer_daemon(&daemon, c, "deleted", groups);
    xadd_revocation(c, key, "session_id", "ar-1");
    enforcer_reads(c, "sts-revocation", true);
    group_wait raised = {"revocation_not_consumed",
                         "gateway-revocation:retired", AW_ALERT_OPEN, 1};
    cr_assert(aw_test_wait_for(group_alerted, &raised, 15000));
    open_alerts before = open_of("revocation_not_consumed",
                                 "gateway-revocation:retired", AW_ALERT_OPEN);
    cr_expect(!strstr(before.evidence, "group_deleted"), "%s", before.evidence);

    freeReplyObject(aw_test_command(c, "XGROUP DESTROY %s %s", REVOKE,
                                    "gateway-revocation:retired"));
    cr_assert(
        aw_test_wait_for(marked_deleted, "gateway-revocation:retired", 15000),
        "the alert does not say its group was deleted");
    /* several more polls: it stays open, marked once */
    group_wait applied = {"revocation_not_consumed", "sts-revocation",
                          AW_ALERT_OPEN, 0};
    cr_assert(aw_test_wait_for(group_alerted, &applied, 5000));
    aw_test_daemon_stop(&daemon, 5000);
    open_alerts o = open_of("revocation_not_consumed",
                            "gateway-revocation:retired", AW_ALERT_OPEN);
    cr_assert_eq(o.n, 1, "a deleted enforcer applies nothing: still open");
    cr_expect(strstr(o.evidence,
                     "\"group_deleted:" REVOKE "/gateway-revocation:retired\""),
              "%s", o.evidence);
    cr_expect_str_eq(o.id, before.id, "the same alert, not a new one");

    /* doctor names it; an operator who retired the host acknowledges it */
    aw_test_proc doctor;
    char url[64];
    aw_test_redis_url(&redis, url);
    const char *doctor_args[] = {"doctor", "--redis", url, "--db", db, NULL};
    cr_expect_eq(aw_test_run(&doctor, dir, "doctor", doctor_args, NULL, 10000),
                 1);
    char *err = aw_test_read_file(doctor.err_path, NULL);
    cr_expect(err && strstr(err, "gateway-revocation:retired") &&
                  strstr(err, "deleted") && strstr(err, o.id),
              "doctor: %s", err ? err : "");
    free(err);
    aw_test_proc ack;
    const char *ack_args[] = {
        "alerts", "--ack", o.id, "--note", "gateway host retired",
        "--db",   db,      NULL};
    cr_expect_eq(aw_test_run(&ack, dir, "ack", ack_args, NULL, 10000), 0);
    redisFree(c);
    aw_hmac_key_free(key);
}

typedef struct ingest_world {
    redisContext *c;
    int published;
} ingest_world;

/* Caracal's producers keep writing while audit-ingestor reads nothing. */
static bool stalled_while_growing(void *ud)
{
    ingest_world *w = ud;
    char id[32];
    snprintf(id, sizeof id, "evt-%d", w->published++);
    freeReplyObject(
        aw_test_command(w->c, "XADD %s * id %s data {}", AUDIT, id));
    return open_of("audit_ingest_stalled", "audit-ingestor", AW_ALERT_OPEN).n ==
           1;
}

/* audit-ingestor catches up: reads and acknowledges everything. */
static bool recovered(void *ud)
{
    ingest_world *w = ud;
    redisReply *r =
        aw_test_command(w->c,
                        "XREADGROUP GROUP audit-ingestor ingest-1 COUNT 1000 "
                        "STREAMS %s >",
                        AUDIT);
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
        const redisReply *entries = r->element[0]->element[1];
        for (size_t i = 0; i < entries->elements; i++)
            freeReplyObject(
                aw_test_command(w->c, "XACK %s audit-ingestor %s", AUDIT,
                                entries->element[i]->element[0]->str));
    }
    freeReplyObject(r);
    return open_of("audit_ingest_stalled", "audit-ingestor", AW_ALERT_RESOLVED)
               .n == 1;
}

Test(consumer_pipeline,
     a_stalled_audit_ingestor_is_alerted_and_resolved_when_it_recovers)
{
    redisContext *c = aw_test_redis_connect(&redis);
    ingest_world w = {c, 0};
    aw_test_proc daemon;
    const char *args[] = {"--enforcer-poll", "100ms", "--ingest-max-lag", "3",
                          NULL};
    create_group(c, AUDIT, "audit-ingestor");
    aw_test_daemon_start(&daemon, dir, "ingestor", &redis, db, args, NULL);
    cr_assert(aw_test_wait_for(stalled_while_growing, &w, 15000),
              "audit_ingest_stalled was not raised while the stream grew");
    open_alerts o =
        open_of("audit_ingest_stalled", "audit-ingestor", AW_ALERT_OPEN);
    cr_expect(strstr(o.summary, "lagging"), "%s", o.summary);
    cr_assert(aw_test_wait_for(recovered, &w, 15000),
              "the alert did not resolve");
    aw_test_daemon_stop(&daemon, 5000);
    redisFree(c);
}
