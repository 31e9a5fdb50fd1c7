/* test_cli_status.c -- `auditwatch status`: the index figures an operator
 * reads, and --ready as a probe, with and without a real redis-server. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/cli_world.h"

static cli_world w;

static void build(void)
{
    cw_build(&w, true);
}
static void cleanup(void)
{
    cw_cleanup(&w);
}

TestSuite(cli_status, .init = build, .fini = cleanup, .timeout = 120);

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* The value of (section, item) in status JSON lines; NULL when absent. */
static const cJSON *figure(const cJSON *rows, const char *section,
                           const char *item)
{
    const cJSON *row;
    cJSON_ArrayForEach(row, rows)
    {
        if (strcmp(cw_str(row, "section"), section) == 0 &&
            strcmp(cw_str(row, "item"), item) == 0)
            return cJSON_GetObjectItemCaseSensitive(row, "value");
    }
    return NULL;
}

static double number(const cJSON *rows, const char *section, const char *item)
{
    const cJSON *v = figure(rows, section, item);
    cr_assert(cJSON_IsNumber(v), "no number for %s/%s", section, item);
    return v->valuedouble;
}

static bool pending_over_a_second(void *ud)
{
    return aw_test_pending_idle_ms(ud, "caracal.audit.events", "auditwatch") >
           1000;
}

Test(cli_status, reports_what_the_index_holds)
{
    cw_result r = cw_run(&w, ARGS("status", "--db", w.db, "-f", "json"), NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cJSON *rows = cw_json_lines(r.out);
    cr_expect_eq(number(rows, "index", "events"), CW_EVENTS);
    cr_expect_eq(number(rows, "index", "revocations"), 1);
    cr_expect_eq(number(rows, "index", "calls"), 2);
    cr_expect_eq(number(rows, "index", "rejected"), 2);
    cr_expect_eq(number(rows, "index", "alerts_open"), 5);
    cr_expect_eq(number(rows, "index", "alerts_resolved"), 1);
    cr_expect_gt(number(rows, "index", "size_bytes"), 0);
    cr_expect_str_eq(figure(rows, "index", "oldest_event")->valuestring,
                     "2026-05-21T12:00:01Z");
    cr_expect_str_eq(figure(rows, "index", "newest_event")->valuestring,
                     "2026-05-21T12:05:19.5Z");
    cr_expect_eq(number(rows, "rejected_by_reason", "not_json"), 1);
    cr_expect_eq(number(rows, "rejected_by_reason", "signature_invalid"), 1);
    cr_expect_eq(number(rows, "open_alerts_by_kind", "decision_missing"), 1);
    cr_expect_eq(number(rows, "open_alerts_by_kind", "access_after_revocation"),
                 1);
    cr_expect_null(figure(rows, "redis", "reachable"),
                   "Redis is not asked without --redis");
    /* The late token_exchange at +600 s is the audit stream's last entry. */
    const cJSON *audit = figure(rows, "checkpoint", "caracal.audit.events");
    cr_assert(cJSON_IsString(audit));
    cr_expect(strncmp(audit->valuestring, "1779365400000-", 14) == 0, "%s",
              audit->valuestring);
    cr_expect(figure(rows, "checkpoint", "caracal.sessions.revoke"));
    cr_expect(figure(rows, "checkpoint", "auditwatch.calls"));
    cJSON_Delete(rows);
    cw_result_free(&r);
}

Test(cli_status, ready_without_redis_needs_only_a_readable_index)
{
    char absent[PATH_MAX];
    cw_result ok = cw_run(&w, ARGS("status", "--db", w.db, "--ready"), NULL);
    cw_result missing = cw_run(&w,
                               ARGS("status", "--ready", "--db",
                                    aw_test_path(w.dir, "absent.db", absent)),
                               NULL);
    cr_expect_eq(ok.status, 0, "%s", ok.err);
    cr_expect_str_empty(ok.out);
    cr_expect_eq(missing.status, 1);
    cr_expect_str_empty(missing.out);
    cr_expect(strstr(missing.err, "not ready") &&
                  strstr(missing.err, "absent.db"),
              "%s", missing.err);
    cw_result_free(&ok);
    cw_result_free(&missing);
}

Test(cli_status, without_ready_a_missing_index_is_a_failure)
{
    char absent[PATH_MAX];
    cw_result r = cw_run(
        &w, ARGS("status", "--db", aw_test_path(w.dir, "absent.db", absent)),
        NULL);
    cr_expect_eq(r.status, 3);
    cw_result_free(&r);
}

Test(cli_status, unreachable_redis_is_not_ready)
{
    aw_test_redis redis;
    char url[64];
    aw_test_redis_start(&redis, false);
    aw_test_redis_url(&redis, url);
    aw_test_redis_stop(&redis); /* the port is now closed */
    cw_result r = cw_run(
        &w, ARGS("status", "--db", w.db, "--redis", url, "--ready"), NULL);
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "connect"), "%s", r.err);
    cw_result_free(&r);

    /* without --ready the figures are printed, and the status still says
     * so: a script reading only the exit status is not told all is well */
    cw_result shown = cw_run(
        &w, ARGS("status", "--db", w.db, "--redis", url, "--format", "json"),
        NULL);
    cr_expect_eq(shown.status, 1, "%s", shown.err);
    cr_expect(strstr(shown.out, "\"reachable\""), "%s", shown.out);
    cr_expect(strstr(shown.err, "connect"), "%s", shown.err);
    cw_result_free(&shown);
    aw_test_redis_destroy(&redis);
}

Test(cli_status, reports_group_lag_and_pending_and_judges_readiness_by_them)
{
    aw_test_redis redis;
    char url[64];
    aw_test_redis_start(&redis, false);
    aw_test_redis_url(&redis, url);
    redisContext *c = aw_test_redis_connect(&redis);
    freeReplyObject(aw_test_command(
        c, "XGROUP CREATE caracal.audit.events auditwatch 0 MKSTREAM"));
    for (int i = 0; i < 3; i++)
        freeReplyObject(aw_test_command(
            c, "XADD caracal.audit.events * id e%d data {}", i));
    /* One entry delivered and not acknowledged: pending 1, lag 2. */
    freeReplyObject(
        aw_test_command(c, "XREADGROUP GROUP auditwatch c1 COUNT 1 STREAMS "
                           "caracal.audit.events >"));

    cw_result r = cw_run(
        &w, ARGS("status", "--db", w.db, "--redis", url, "-f", "json"), NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cJSON *rows = cw_json_lines(r.out);
    cr_expect(cJSON_IsTrue(figure(rows, "redis", "reachable")));
    cr_expect_eq(number(rows, "redis:caracal.audit.events", "lag"), 2);
    cr_expect_eq(number(rows, "redis:caracal.audit.events", "pending"), 1);
    cr_expect_geq(
        number(rows, "redis:caracal.audit.events", "oldest_pending_idle_ms"),
        0);
    cr_expect(
        cJSON_IsNull(figure(rows, "redis:caracal.sessions.revoke", "group")),
        "no group on a stream the daemon never joined");
    cJSON_Delete(rows);
    cw_result_free(&r);

    cw_result lagging = cw_run(&w,
                               ARGS("status", "--db", w.db, "--redis", url,
                                    "--ready", "--max-lag", "1"),
                               NULL);
    cw_result within = cw_run(
        &w,
        ARGS("status", "--db", w.db, "--redis", url, "--ready", "--max-lag",
             "2", "--max-pending-age", "1m", "--timeout-ms", "2s"),
        NULL);
    cr_expect_eq(lagging.status, 1);
    cr_expect(strstr(lagging.err, "lags 2"), "%s", lagging.err);
    cr_expect_eq(within.status, 0, "%s", within.err);
    cw_result_free(&lagging);
    cw_result_free(&within);

    cr_assert(aw_test_wait_for(pending_over_a_second, c, 10000));
    cw_result stale = cw_run(&w,
                             ARGS("status", "--db", w.db, "--redis", url,
                                  "--ready", "--max-pending-age", "1000ms"),
                             NULL);
    cr_expect_eq(stale.status, 1);
    cr_expect(strstr(stale.err, "idle"), "%s", stale.err);
    cw_result_free(&stale);

    redisFree(c);
    aw_test_redis_destroy(&redis);
}

Test(cli_status, a_missing_group_on_the_audit_stream_is_not_ready)
{
    aw_test_redis redis;
    char url[64];
    aw_test_redis_start(&redis, false);
    aw_test_redis_url(&redis, url);
    cw_result r = cw_run(
        &w, ARGS("status", "--db", w.db, "--redis", url, "--ready"), NULL);
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "group auditwatch does not exist"), "%s", r.err);
    cw_result_free(&r);
    aw_test_redis_destroy(&redis);
}

Test(cli_status, takes_redis_group_and_streams_from_the_daemons_environment)
{
    aw_test_redis redis;
    char url[64], redis_env[96];
    aw_test_redis_start(&redis, false);
    snprintf(redis_env, sizeof redis_env, "AUDITWATCH_REDIS=%s",
             aw_test_redis_url(&redis, url));
    redisContext *c = aw_test_redis_connect(&redis);
    freeReplyObject(
        aw_test_command(c, "XGROUP CREATE audit.copy watchers 0 MKSTREAM"));
    redisFree(c);

    cw_result joined =
        cw_run(&w, ARGS("status", "--db", w.db, "--ready"),
               (const char *[]){redis_env, "AUDITWATCH_GROUP=watchers",
                                "AUDITWATCH_STREAM=audit=audit.copy", NULL});
    cw_result other = cw_run(&w, ARGS("status", "--db", w.db, "--ready"),
                             (const char *[]){redis_env, NULL});
    cr_expect_eq(joined.status, 0, "%s", joined.err);
    cr_expect_eq(other.status, 1,
                 "group auditwatch on caracal.audit.events is absent");
    cr_expect(strstr(other.err, "caracal.audit.events"), "%s", other.err);
    cw_result_free(&joined);
    cw_result_free(&other);
    aw_test_redis_destroy(&redis);
}

Test(cli_status, bad_arguments_exit_2)
{
    cw_result lag =
        cw_run(&w, ARGS("status", "--db", w.db, "--max-lag", "many"), NULL);
    cw_result url = cw_run(
        &w, ARGS("status", "--db", w.db, "--redis", "redis://:pw@host"), NULL);
    cr_expect_eq(lag.status, 2);
    cr_expect(strstr(lag.err, "--max-lag"), "%s", lag.err);
    /* A password in the URL is refused, and never echoed. */
    cr_expect_eq(url.status, 2, "%s", url.err);
    cr_expect(strstr(url.err, "password"), "%s", url.err);
    cr_expect_null(strstr(url.err, "pw"), "%s", url.err);
    cw_result_free(&lag);
    cw_result_free(&url);
}
