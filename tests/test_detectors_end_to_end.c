/* test_detectors_end_to_end.c -- the detectors as a security team meets
 * them: realistic signed Caracal traffic with injected gaps goes through a
 * real redis-server and the daemon, and the index must hold exactly the
 * alerts the injections call for.
 *
 * The traffic comes from bench's loadgen, whose ground truth names, for
 * every injected anomaly, the alert id the detectors must compute and what
 * must become of it: "open" (every kind: a Gateway call or an observed call
 * without its decision, access after a session revoke / agent terminate /
 * edge revoke / suspension / revoked chain edge, a revocation that arrives
 * after the access, bad audit and revocation signatures, Caracal's own
 * anomalies, a decision and a revocation Caracal dead-lettered, an
 * enforcer group that read a revocation and never acknowledged it), "resolved_or_none" (the counterpart arrives after the grace
 * window: late resolution) or "none" (near misses: access inside the
 * propagation grace, a deny after revocation, access after a resume, a
 * failed call). Normal traffic around them is complete, so any other alert
 * is a false positive. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/support/support.h"

/* The sanitizers slow the daemon several times over: same anomalies, less
 * surrounding traffic. */
#if defined(__SANITIZE_ADDRESS__)
#define NORMAL_EVENTS "40000"
#else
#define NORMAL_EVENTS "200000"
#endif
#define ANOMALIES 200

static const char *const streams[] = {"caracal.audit.events",
                                      "caracal.sessions.revoke",
                                      "caracal.agents.lifecycle",
                                      "caracal.delegations.invalidate",
                                      "auditwatch.calls",
                                      "caracal.audit.events.dlq",
                                      "caracal.sessions.revoke.dead",
                                      NULL};

static aw_test_redis redis;
static char dir[PATH_MAX], db[PATH_MAX], key[PATH_MAX], truth[PATH_MAX];

static void setup(void)
{
    aw_test_world_up(&redis, false, dir, db);
    aw_test_path(dir, "truth.jsonl", truth);
    aw_test_key_file(dir, "hmac.key", key);
}

static void teardown(void)
{
    aw_test_world_down(&redis, dir);
}

TestSuite(detectors_end_to_end, .init = setup, .fini = teardown,
          .timeout = 600);

static bool drained(void *ud)
{
    redisContext *c = ud;
    for (const char *const *s = streams; *s; s++)
        if (aw_test_group_lag(c, *s, "auditwatch") != 0)
            return false;
    return true;
}

static int copy_alert(const aw_alert *alert, void *ud)
{
    aw_alert *out = ud;
    out->state = alert->state;
    out->severity = strdup(alert->severity);
    return 1;
}

/* The alert with this id: state 0 when there is none. Caller frees
 * severity. */
static aw_alert find_alert(aw_store *store, const char *id)
{
    aw_alert found = {0};
    aw_error err;
    aw_alert_filter filter = {.id = id};
    int rc = aw_store_query_alerts(store, &filter, copy_alert, &found, &err);
    cr_assert(rc == AW_OK || rc == 1, "query alerts: %s", err.msg);
    return found;
}

static int count_alert(const aw_alert *alert, void *ud)
{
    cJSON *known = ud;
    cr_expect(cJSON_GetObjectItemCaseSensitive(known, alert->id) != NULL,
              "false positive: %s %s alert %s (%s)", alert->severity,
              alert->kind, alert->id, alert->summary ? alert->summary : "");
    return 0;
}

/* Publishes the traffic, lets the daemon index it and scores the index
 * against the ground truth. backlog: everything is published before the
 * daemon starts (the catch-up after an outage), and it reads `batch`
 * entries per stream and read, so every read comes back full and the
 * sparse streams (calls, revocations) are read far ahead of the audit
 * stream in time: each call reaches the detectors before the audit events
 * of its moment, and the clock must wait for them, not jump to the wall
 * clock. */
static void publish_index_and_score(bool backlog, const char *batch)
{
    const char *daemon_args[] = {"--audit-hmac-key-file",
                                 key,
                                 "--streams-hmac-key-file",
                                 key,
                                 "--grace-missing",
                                 "2",
                                 "--no-alert-stream",
                                 "--grace-enforcer",
                                 "1",
                                 "--enforcer-poll",
                                 "200ms",
                                 batch ? "--batch" : NULL,
                                 batch,
                                 NULL};
    char url[64];
    const char *loadgen_args[] = {"--redis",
                                  aw_test_redis_url(&redis, url),
                                  "--events",
                                  NORMAL_EVENTS,
                                  "--anomalies",
                                  "200",
                                  "--truth",
                                  truth,
                                  "--late-delay",
                                  "5",
                                  "--seed",
                                  "7",
                                  "--audit-key-file",
                                  key,
                                  "--streams-key-file",
                                  key,
                                  NULL};
    aw_test_proc daemon, loadgen;
    redisContext *c = aw_test_redis_connect(&redis);

    if (!backlog)
        aw_test_daemon_start(&daemon, dir, "daemon", &redis, db, daemon_args,
                             NULL);
    aw_test_spawn_program(&loadgen, AW_LOADGEN, dir, "loadgen", loadgen_args,
                          NULL);
    cr_assert(aw_test_wait(&loadgen, 400000), "loadgen did not finish");
    cr_assert_eq(loadgen.status, 0, "loadgen failed");
    if (backlog)
        aw_test_daemon_start(&daemon, dir, "daemon", &redis, db, daemon_args,
                             NULL);
    cr_assert(aw_test_wait_for(drained, c, 300000),
              "the daemon did not drain the streams");
    cr_assert(aw_test_wait_no_pending(c, streams, "auditwatch", 10000));
    /* Caught up, the daemon moves its clock with the wall clock: wait until
     * it is past the grace of the last checks. */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    cr_assert(aw_test_wait_detector_clock(db,
                                          (int64_t)now.tv_sec * 1000000000 +
                                              now.tv_nsec + 4000000000LL,
                                          30000),
              "the detector clock stopped moving while idle");
    aw_test_daemon_stop(&daemon, 5000);
    redisFree(c);

    char *text = aw_test_read_file(truth, NULL);
    cr_assert(text, "no ground truth written");
    aw_store *store;
    aw_error err;
    cr_assert_eq(aw_store_open(db, AW_STORE_READONLY, &store, &err), AW_OK,
                 "%s", err.msg);

    cJSON *known = cJSON_CreateObject();
    int lines = 0, must_open = 0, late = 0, near = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *t = cJSON_Parse(line);
        cr_assert(t, "bad truth line: %s", line);
        const char *id =
            cJSON_GetObjectItemCaseSensitive(t, "alert_id")->valuestring;
        const char *expect =
            cJSON_GetObjectItemCaseSensitive(t, "expect")->valuestring;
        const char *scenario =
            cJSON_GetObjectItemCaseSensitive(t, "scenario")->valuestring;
        aw_alert got = find_alert(store, id);
        lines++;
        cJSON_AddTrueToObject(known, id);
        if (strcmp(expect, "open") == 0) {
            const char *severity =
                cJSON_GetObjectItemCaseSensitive(t, "severity")->valuestring;
            must_open++;
            cr_expect_eq(got.state, AW_ALERT_OPEN, "%s: alert %s is not open",
                         scenario, id);
            if (got.state)
                cr_expect_str_eq(got.severity, severity, "%s: alert %s",
                                 scenario, id);
        } else if (strcmp(expect, "resolved_or_none") == 0) {
            late++;
            cr_expect_neq(got.state, AW_ALERT_OPEN,
                          "%s: late evidence did not resolve alert %s",
                          scenario, id);
        } else {
            near++;
            cr_expect_eq(got.state, 0, "%s: near miss raised alert %s",
                         scenario, id);
        }
        free((char *)got.severity);
        cJSON_Delete(t);
    }
    cr_assert_eq(lines, ANOMALIES, "loadgen injected %d anomalies, not %d",
                 lines, ANOMALIES);
    cr_assert_gt(must_open, 0);
    cr_assert_gt(late, 0);
    cr_assert_gt(near, 0);

    aw_alert_filter all = {0};
    cr_assert_eq(aw_store_query_alerts(store, &all, count_alert, known, &err),
                 AW_OK, "%s", err.msg);
    cJSON_Delete(known);
    aw_store_close(store);
    free(text);
}

Test(detectors_end_to_end, injected_anomalies_raise_exactly_their_alerts)
{
    publish_index_and_score(false, NULL);
}

Test(detectors_end_to_end,
     a_backlog_read_in_small_reads_raises_exactly_the_same_alerts)
{
    publish_index_and_score(true, "100");
}

static int copy_decision(const aw_event_row *row, void *ud)
{
    snprintf(ud, 16, "%s", row->decision ? row->decision : "");
    return 0;
}

/* A producer (or someone with write access to the stream) republishes an
 * event id with other content: the first version stays, and the daemon
 * raises one critical tampered_on_redelivery alert for it. */
Test(detectors_end_to_end, changed_content_under_a_known_event_id_is_tampering)
{
    redisContext *c = aw_test_redis_connect(&redis);
    aw_test_pipe pipe = {c, 0, 0};
    aw_test_proc daemon;
    char id[33];

    aw_test_pipe_audit(&pipe, streams[0], NULL,
                       &(aw_test_audit){.id = "evt-1",
                                        .request_id = "req-1",
                                        .decision = "deny"});
    aw_test_pipe_audit(&pipe, streams[0], NULL,
                       &(aw_test_audit){.id = "evt-1",
                                        .request_id = "req-1",
                                        .decision = "allow"});
    aw_test_pipe_flush(&pipe);
    aw_test_daemon_start(&daemon, dir, "daemon", &redis, db, NULL, NULL);
    cr_assert(aw_test_wait_entries(db, 2, 30000));
    cr_assert(aw_test_wait_no_pending(c, streams, "auditwatch", 10000));
    aw_test_daemon_stop(&daemon, 5000);
    redisFree(c);

    aw_store *store;
    aw_error err;
    cr_assert_eq(aw_store_open(db, AW_STORE_READONLY, &store, &err), AW_OK,
                 "%s", err.msg);
    aw_detectors_alert_id(AW_ALERT_TAMPERED_ON_REDELIVERY, "zone-1", "evt-1",
                          "req-1", id);
    aw_alert got = find_alert(store, id);
    cr_assert_eq(got.state, AW_ALERT_OPEN,
                 "no open tampered_on_redelivery alert %s", id);
    cr_assert_str_eq(got.severity, "critical");
    free((char *)got.severity);

    char decision[16] = "";
    aw_event_filter by_id = {.event_id = "evt-1"};
    cr_assert_eq(
        aw_store_query_events(store, &by_id, copy_decision, decision, &err),
        AW_OK, "%s", err.msg);
    cr_assert_str_eq(decision, "deny", "the first version must stay indexed");
    aw_store_close(store);
}
