/* test_cli_doctor.c -- `auditwatch doctor` against a real redis-server
 * where Caracal's groups are created at `$` as Caracal creates them, and
 * Caracal's consumers are played by hand (XREADGROUP, XACK): a healthy
 * pipeline, enforcers that never read, read and never ack, or join late, a
 * stalled audit-ingestor, dead letters, and Redis or the index unreadable.
 * Every run also checks that doctor changed nothing in Redis. */
#include "tests/support/cli_world.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define AUDIT     "caracal.audit.events"
#define REVOKE    "caracal.sessions.revoke"
#define GW        "gateway-revocation:gw-1"

static aw_test_redis redis;
static redisContext *rc;
static cli_world w;
static char url[64];

static void up(void)
{
    aw_test_redis_start(&redis, false);
    aw_test_redis_url(&redis, url);
    rc = aw_test_redis_connect(&redis);
    aw_test_tmpdir(w.dir);
    aw_test_path(w.dir, "index.db", w.db);
    aw_store *store;
    aw_error err = {0};
    cr_assert_eq(aw_store_open(w.db, 0, &store, &err), AW_OK, "%s", err.msg);
    aw_store_close(store);
}

static void down(void)
{
    redisFree(rc);
    aw_test_redis_destroy(&redis);
    cw_cleanup(&w);
}

TestSuite(cli_doctor, .init = up, .fini = down, .timeout = 120);

static void command(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    cr_assert(r && r->type != REDIS_REPLY_ERROR, "%s: %s", fmt,
              r ? r->str : rc->errstr);
    freeReplyObject(r);
}

/* Caracal's start-up: each group created at `$` (MKSTREAM). */
static void caracal_groups(void)
{
    command("XGROUP CREATE %s audit-ingestor $ MKSTREAM", AUDIT);
    command("XGROUP CREATE %s sts-revocation $ MKSTREAM", REVOKE);
    command("XGROUP CREATE %s %s $ MKSTREAM", REVOKE, GW);
}

/* Redis' clock, on this machine: entry ids are its milliseconds. */
static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* An entry written ago_ms before now, as a producer did then. Stream ids
 * must grow, so callers add entries oldest first. */
static void add_revocation(int64_t ago_ms, const char *session)
{
    command("XADD %s %lld-0 zone_id zone-1 session_id %s reason test", REVOKE,
            (long long)(wall_ms() - ago_ms), session);
}

static void add_audit(int64_t ago_ms, int n)
{
    int64_t ms = wall_ms() - ago_ms;
    for (int i = 0; i < n; i++)
        command("XADD %s %lld-%d id evt-%d data {}", AUDIT, (long long)ms, i,
                i);
}

/* A consumer of group reads everything new; acknowledges it when ack. */
static void consume(const char *stream, const char *group, const char *consumer,
                    bool ack)
{
    redisReply *r =
        aw_test_command(rc, "XREADGROUP GROUP %s %s COUNT 1000 STREAMS %s >",
                        group, consumer, stream);
    if (ack && r->type == REDIS_REPLY_ARRAY)
        for (size_t e = 0; e < r->element[0]->element[1]->elements; e++)
            command("XACK %s %s %s", stream, group,
                    r->element[0]->element[1]->element[e]->element[0]->str);
    freeReplyObject(r);
}

/* Everything doctor could have changed: every group of every Caracal
 * stream (position, read count, pending, consumers) and which keys exist. */
static char *redis_state(void)
{
    static const char *const streams[] = {
        AUDIT,
        REVOKE,
        "caracal.agents.lifecycle",
        "caracal.delegations.invalidate",
        AUDIT ".dlq",
        REVOKE ".dead",
        "caracal.agents.lifecycle.dead",
        "caracal.delegations.invalidate.dead"};
    size_t cap = 8192, len = 0;
    char *out = calloc(1, cap);
    for (size_t s = 0; s < sizeof streams / sizeof *streams; s++) {
        redisReply *e = aw_test_command(rc, "EXISTS %s", streams[s]);
        len += (size_t)snprintf(out + len, cap - len, "%s exists=%lld\n",
                                streams[s], e->integer);
        freeReplyObject(e);
        redisReply *g = redisCommand(rc, "XINFO GROUPS %s", streams[s]);
        if (g && g->type == REDIS_REPLY_ARRAY)
            for (size_t i = 0; i < g->elements; i++) {
                const redisReply *m = g->element[i];
                for (size_t k = 0; k + 1 < m->elements; k += 2) {
                    const redisReply *v = m->element[k + 1];
                    if (v->type == REDIS_REPLY_STRING)
                        len += (size_t)snprintf(out + len, cap - len, " %s=%s",
                                                m->element[k]->str, v->str);
                    else
                        len +=
                            (size_t)snprintf(out + len, cap - len, " %s=%lld",
                                             m->element[k]->str, v->integer);
                }
                len += (size_t)snprintf(out + len, cap - len, "\n");
            }
        freeReplyObject(g);
    }
    return out;
}

typedef struct doctor_run {
    int status;
    char *err;
    cJSON *rows;
} doctor_run;

/* Runs doctor -f json with extra args, and asserts it changed nothing. */
static doctor_run doctor(const char *const *extra)
{
    const char *args[32] = {"doctor", "--redis", url,   "--db",
                            w.db,     "-f",      "json"};
    size_t n = 7;
    for (; extra && *extra; extra++)
        args[n++] = *extra;
    args[n] = NULL;
    char *before = redis_state();
    cw_result r = cw_run(&w, args, NULL);
    char *after = redis_state();
    cr_expect_str_eq(after, before, "doctor changed Redis");
    free(before);
    free(after);
    doctor_run d = {r.status, r.err, cw_json_lines(r.out)};
    free(r.out);
    return d;
}

static void done(doctor_run *d)
{
    free(d->err);
    cJSON_Delete(d->rows);
}

static bool is(const cJSON *row, const char *name, const char *want)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, name);
    return want ? cJSON_IsString(v) && strcmp(v->valuestring, want) == 0
                : cJSON_IsNull(v);
}

/* The value of the row (section, stream, group, item); NULL when absent. */
static const cJSON *value(const doctor_run *d, const char *section,
                          const char *stream, const char *group,
                          const char *item)
{
    const cJSON *row;
    cJSON_ArrayForEach(
        row,
        d->rows) if (is(row, "section", section) && is(row, "stream", stream) &&
                     is(row, "group", group) &&
                     is(row, "item",
                        item)) return cJSON_GetObjectItemCaseSensitive(row,
                                                                       "value");
    return NULL;
}

static const char *verdict(const doctor_run *d, const char *section)
{
    const cJSON *v = value(d, "verdict", NULL, NULL, section);
    cr_assert(cJSON_IsString(v), "no verdict for %s", section);
    return v->valuestring;
}

static int64_t number(const doctor_run *d, const char *section,
                      const char *stream, const char *group, const char *item)
{
    const cJSON *v = value(d, section, stream, group, item);
    cr_assert(cJSON_IsNumber(v), "%s %s %s %s is not a number", section,
              stream ? stream : "-", group ? group : "-", item);
    return (int64_t)v->valuedouble;
}

static const char *text(const doctor_run *d, const char *section,
                        const char *stream, const char *group, const char *item)
{
    const cJSON *v = value(d, section, stream, group, item);
    cr_assert(cJSON_IsString(v), "%s %s %s %s is not a string", section,
              stream ? stream : "-", group ? group : "-", item);
    return v->valuestring;
}

/* A pipeline where every Caracal consumer keeps up. */
static void healthy_traffic(void)
{
    caracal_groups();
    add_audit(5000, 3);
    add_revocation(4000, "ar-1");
    consume(AUDIT, "audit-ingestor", "audit-1", true);
    consume(REVOKE, "sts-revocation", "sts-1", true);
    consume(REVOKE, GW, "gateway-gw-1-1", true);
}

Test(cli_doctor, healthy_pipeline_exits_0_with_every_verdict_ok)
{
    healthy_traffic();
    doctor_run d = doctor(NULL);
    cr_expect_eq(d.status, 0, "stderr: %s", d.err);
    cr_expect_str_empty(d.err);
    static const char *const sections[] = {
        "streams", "trimming", "dead_letters", "enforcers", "ingest", "index"};
    for (size_t i = 0; i < sizeof sections / sizeof *sections; i++)
        cr_expect_str_eq(verdict(&d, sections[i]), "ok", "%s", sections[i]);
    cr_expect(cJSON_IsTrue(value(&d, "redis", NULL, NULL, "reachable")));
    cr_expect_eq(number(&d, "stream", AUDIT, NULL, "length"), 3);
    cr_expect_geq(number(&d, "stream", AUDIT, NULL, "first_entry_age_ms"),
                  5000);
    cr_expect_eq(number(&d, "group", REVOKE, GW, "lag"), 0);
    cr_expect_eq(number(&d, "group", REVOKE, GW, "pending"), 0);
    cr_expect_eq(number(&d, "group", REVOKE, GW, "trim_headroom"), 100000);
    cr_expect_geq(number(&d, "consumer", REVOKE, GW, "gateway-gw-1-1"), 0,
                  "its idle time");
    cr_expect_str_eq(text(&d, "enforcer", REVOKE, "sts-revocation", "state"),
                     "ok");
    cr_expect_str_eq(text(&d, "enforcer", REVOKE, GW, "state"), "ok");
    cr_expect_str_eq(text(&d, "ingest", AUDIT, "audit-ingestor", "state"),
                     "ok");
    cr_expect_eq(number(&d, "dead_letters", AUDIT ".dlq", NULL, "depth"), 0);
    cr_expect_eq(number(&d, "index", NULL, NULL, "alerts_open"), 0);
    done(&d);
}

Test(cli_doctor, enforcer_that_never_reads_needs_attention_after_the_grace)
{
    caracal_groups();
    add_revocation(45000, "ar-1");
    consume(REVOKE, "sts-revocation", "sts-1", true);
    command("XGROUP CREATECONSUMER %s %s gateway-gw-1-1", REVOKE, GW);
    doctor_run d = doctor(NULL);
    cr_expect_eq(d.status, 1, "stderr: %s", d.err);
    cr_expect_str_eq(verdict(&d, "enforcers"), "attention");
    cr_expect_str_eq(text(&d, "enforcer", REVOKE, GW, "state"), "not_reading");
    cr_expect_geq(number(&d, "enforcer", REVOKE, GW, "unapplied_age_ms"),
                  45000);
    cr_expect_str_eq(text(&d, "enforcer", REVOKE, "sts-revocation", "state"),
                     "ok");
    cr_expect(strstr(d.err, GW) && strstr(d.err, "has not read"), "%s", d.err);
    cr_expect_not(strstr(d.err, "sts-revocation "),
                  "only the failing one is named: %s", d.err);
    done(&d);

    doctor_run patient = doctor(ARGS("--grace-enforcer", "120"));
    cr_expect_eq(patient.status, 0, "within a 120 s grace: %s", patient.err);
    done(&patient);
}

/* Caracal's Redis provisioner creates siem-export on the audit stream (and
 * other observer groups) at `$` for consumers outside Caracal; in Caracal
 * nothing reads them. A group no consumer ever joined loses nothing to
 * trimming: a healthy Caracal is not told otherwise forever. */
Test(cli_doctor, a_provisioned_group_nobody_reads_is_no_trimming_concern)
{
    caracal_groups();
    command("XGROUP CREATE %s siem-export $", AUDIT);
    add_audit(5000, 95); /* 95 of --maxlen 100: trimming reaches soon */
    consume(AUDIT, "audit-ingestor", "audit-1", true);
    doctor_run d = doctor(ARGS("--maxlen", "100"));
    cr_expect_str_eq(verdict(&d, "trimming"), "ok", "stderr: %s", d.err);
    cr_expect_eq(d.status, 0, "stderr: %s", d.err);
    done(&d);

    /* one that a consumer reads, and lags, still needs attention */
    consume(AUDIT, "siem-export", "siem-1", true);
    add_audit(1000, 95);
    doctor_run lagging = doctor(ARGS("--maxlen", "100"));
    cr_expect_str_eq(verdict(&lagging, "trimming"), "attention", "stderr: %s",
                     lagging.err);
    done(&lagging);
}

/* Caracal's API revokes each delegation edge on caracal.sessions.revoke
 * naming the edge alone; the STS fails such entries and leaves them
 * pending, by design (the Gateway applies them). */
Test(cli_doctor, the_sts_is_judged_past_the_edge_revocations_it_declines)
{
    enum { EDGES = AW_STS_SCAN_ENTRIES + 100 }; /* more than one scan's worth */
    caracal_groups();
    long long ms = (long long)(wall_ms() - 120000);
    for (int i = 0; i < EDGES; i++)
        command("XADD %s %lld-%d zone_id zone-1 delegation_edge_id edge-%d "
                "reason test",
                REVOKE, ms, i, i);
    for (int pass = 0; pass < 2; pass++) { /* consume reads 1000 at a time */
        consume(REVOKE, "sts-revocation", "sts-1", false);
        consume(REVOKE, GW, "gateway-gw-1-1", true);
    }
    doctor_run d = doctor(NULL);
    cr_expect_eq(d.status, 0, "stderr: %s", d.err);
    cr_expect_str_eq(text(&d, "enforcer", REVOKE, "sts-revocation", "state"),
                     "ok");
    cr_expect_eq(number(&d, "group", REVOKE, "sts-revocation", "pending"),
                 EDGES);
    cr_expect_eq(
        number(&d, "group", REVOKE, "sts-revocation", "declined_pending"),
        EDGES);
    done(&d);

    /* a session revocation behind them that the STS does not apply */
    add_revocation(60000, "ar-1");
    consume(REVOKE, "sts-revocation", "sts-1", false);
    consume(REVOKE, GW, "gateway-gw-1-1", true);
    doctor_run late = doctor(NULL);
    cr_expect_eq(late.status, 1, "stderr: %s", late.err);
    cr_expect_str_eq(text(&late, "enforcer", REVOKE, "sts-revocation", "state"),
                     "not_acking");
    int64_t age =
        number(&late, "enforcer", REVOKE, "sts-revocation", "unapplied_age_ms");
    cr_expect(age >= 60000 && age < 120000, "ar-1's age, not edge-0's: %lld",
              (long long)age);
    cr_expect_eq(
        number(&late, "group", REVOKE, "sts-revocation", "declined_pending"),
        EDGES);
    done(&late);
}

/* The STS reclaims its pending list only when it starts, so the edge
 * revocations it declines stay pending for as long as it runs, while the
 * outbox's MAXLEN trims the stream under them. A pending entry gone from
 * the stream is never delivered again (XAUTOCLAIM drops it from the list):
 * the STS awaits nothing of it, and what lies behind it is still judged. */
Test(cli_doctor,
     an_entry_trimmed_from_under_the_sts_pending_list_awaits_nothing)
{
    caracal_groups();
    long long ms = (long long)(wall_ms() - 120000);
    command("XADD %s %lld-0 zone_id zone-1 delegation_edge_id edge-1 "
            "reason test",
            REVOKE, ms);
    for (int i = 0; i < 5; i++)
        add_revocation(100000 - i * 1000, "ar-applied");
    consume(REVOKE, "sts-revocation", "sts-1", false);
    consume(REVOKE, GW, "gateway-gw-1-1", true);
    /* the STS applied the session revocations; edge-1 stays pending */
    redisReply *r = aw_test_command(rc, "XRANGE %s - +", REVOKE);
    for (size_t e = 1; e < r->elements; e++)
        command("XACK %s sts-revocation %s", REVOKE,
                r->element[e]->element[0]->str);
    freeReplyObject(r);
    command("XTRIM %s MAXLEN 5", REVOKE); /* edge-1 is trimmed */

    doctor_run d = doctor(NULL);
    cr_expect_str_eq(text(&d, "enforcer", REVOKE, "sts-revocation", "state"),
                     "ok", "stderr: %s", d.err);
    cr_expect_eq(d.status, 0, "stderr: %s", d.err);
    done(&d);

    /* a session revocation behind it that the STS does not apply */
    add_revocation(60000, "ar-1");
    consume(REVOKE, "sts-revocation", "sts-1", false);
    consume(REVOKE, GW, "gateway-gw-1-1", true);
    doctor_run late = doctor(NULL);
    cr_expect_str_eq(text(&late, "enforcer", REVOKE, "sts-revocation", "state"),
                     "not_acking");
    int64_t age =
        number(&late, "enforcer", REVOKE, "sts-revocation", "unapplied_age_ms");
    cr_expect(age >= 60000 && age < 100000, "ar-1's age, not edge-1's: %lld",
              (long long)age);
    done(&late);
}

Test(cli_doctor, enforcer_that_reads_and_never_acks_is_not_acking)
{
    caracal_groups();
    add_revocation(60000, "ar-1");
    consume(REVOKE, "sts-revocation", "sts-1", true);
    consume(REVOKE, GW, "gateway-gw-1-1", false);
    doctor_run d = doctor(NULL);
    cr_expect_eq(d.status, 1);
    cr_expect_str_eq(text(&d, "enforcer", REVOKE, GW, "state"), "not_acking");
    cr_expect_eq(number(&d, "group", REVOKE, GW, "pending"), 1);
    cr_expect_geq(number(&d, "group", REVOKE, GW, "oldest_pending_age_ms"),
                  60000);
    cr_expect(strstr(d.err, "has not acknowledged"), "%s", d.err);
    done(&d);
}

Test(cli_doctor,
     enforcer_group_that_joins_late_is_judged_only_on_what_came_after)
{
    caracal_groups();
    add_revocation(120000, "ar-old");
    consume(REVOKE, "sts-revocation", "sts-1", true);
    consume(REVOKE, GW, "gateway-gw-1-1", true);
    /* a new Gateway host starts: its group is created at `$` */
    command("XGROUP CREATE %s gateway-revocation:gw-2 $", REVOKE);
    doctor_run before = doctor(NULL);
    cr_expect_eq(before.status, 0, "the old revocation predates gw-2: %s",
                 before.err);
    cr_expect_str_eq(
        text(&before, "enforcer", REVOKE, "gateway-revocation:gw-2", "state"),
        "ok");
    done(&before);

    add_revocation(60000, "ar-new");
    consume(REVOKE, "sts-revocation", "sts-1", true);
    consume(REVOKE, GW, "gateway-gw-1-1", true);
    doctor_run after = doctor(NULL);
    cr_expect_eq(after.status, 1);
    cr_expect_str_eq(
        text(&after, "enforcer", REVOKE, "gateway-revocation:gw-2", "state"),
        "not_reading");
    cr_expect_str_eq(text(&after, "enforcer", REVOKE, GW, "state"), "ok");
    done(&after);

    doctor_run narrowed = doctor(
        ARGS("--enforcer-group", "sts-revocation*", "--enforcer-group", GW));
    cr_expect_eq(narrowed.status, 0,
                 "gw-2 is not an enforcer by these patterns: %s", narrowed.err);
    cr_expect_null(value(&narrowed, "enforcer", REVOKE,
                         "gateway-revocation:gw-2", "state"));
    done(&narrowed);
}

Test(cli_doctor, no_enforcer_on_the_revocation_stream_needs_attention)
{
    command("XGROUP CREATE %s audit-ingestor $ MKSTREAM", AUDIT);
    command("XGROUP CREATE %s opa-engine $ MKSTREAM", REVOKE);
    doctor_run d = doctor(NULL);
    cr_expect_eq(d.status, 1);
    cr_expect(strstr(d.err, "no enforcer group reads " REVOKE), "%s", d.err);
    done(&d);
}

Test(cli_doctor,
     trimming_near_or_past_what_a_group_has_not_read_needs_attention)
{
    caracal_groups();
    command("XGROUP CREATE %s opa-engine $", REVOKE);
    for (int i = 0; i < 20; i++)
        add_revocation(60000 - i, "ar-t");
    consume(REVOKE, "sts-revocation", "sts-1", true);
    consume(REVOKE, GW, "gateway-gw-1-1", true);
    consume(REVOKE, "opa-engine", "opa-1", true);
    command("XGROUP CREATE %s gateway-revocation:gw-3 $", REVOKE);
    for (int i = 0; i < 95; i++)
        add_revocation(30000 - i, "ar-u");
    consume(REVOKE, "sts-revocation", "sts-1", true);
    consume(REVOKE, GW, "gateway-gw-1-1", true);
    consume(REVOKE, "gateway-revocation:gw-3", "gateway-gw-3-1", true);
    doctor_run near = doctor(ARGS("--maxlen", "100"));
    cr_expect_eq(near.status, 1);
    cr_expect_eq(number(&near, "group", REVOKE, "opa-engine", "trim_headroom"),
                 5, "95 unread entries under MAXLEN ~ 100");
    cr_expect_eq(number(&near, "group", REVOKE, GW, "trim_headroom"), 100);
    cr_expect_str_eq(verdict(&near, "trimming"), "attention");
    cr_expect(strstr(near.err, "opa-engine: 5 entries before MAXLEN"), "%s",
              near.err);
    done(&near);

    /* a producer trims with MAXLEN 50: opa-engine never read what went */
    command("XADD %s MAXLEN 50 * zone_id zone-1 session_id ar-v", REVOKE);
    consume(REVOKE, "sts-revocation", "sts-1", true);
    consume(REVOKE, GW, "gateway-gw-1-1", true);
    consume(REVOKE, "gateway-revocation:gw-3", "gateway-gw-3-1", true);
    doctor_run past = doctor(NULL);
    cr_expect_eq(number(&past, "group", REVOKE, "opa-engine", "trim_headroom"),
                 0);
    cr_expect(strstr(past.err, "opa-engine: 0 entries before MAXLEN"), "%s",
              past.err);
    cr_expect_str_eq(text(&past, "enforcer", REVOKE, GW, "state"), "ok",
                     "its trimmed entries had all been read");
    done(&past);
}

Test(cli_doctor, stalled_audit_ingestor_is_lagging_then_stuck)
{
    caracal_groups();
    add_audit(120000, 3);
    doctor_run lagging =
        doctor(ARGS("--max-ingest-lag", "10", "--max-ingest-age", "60"));
    cr_expect_eq(lagging.status, 1);
    cr_expect_str_eq(verdict(&lagging, "ingest"), "attention");
    cr_expect_str_eq(text(&lagging, "ingest", AUDIT, "audit-ingestor", "state"),
                     "lagging");
    cr_expect_eq(number(&lagging, "ingest", AUDIT, "audit-ingestor", "lag"), 3);
    cr_expect_geq(number(&lagging, "ingest", AUDIT, "audit-ingestor",
                         "oldest_unread_age_ms"),
                  120000);
    done(&lagging);

    consume(AUDIT, "audit-ingestor", "audit-1", false);
    doctor_run stuck = doctor(ARGS("--max-ingest-age", "60"));
    cr_expect_eq(stuck.status, 1);
    cr_expect_str_eq(text(&stuck, "ingest", AUDIT, "audit-ingestor", "state"),
                     "stuck");
    cr_expect_geq(number(&stuck, "ingest", AUDIT, "audit-ingestor",
                         "oldest_pending_age_ms"),
                  120000);
    done(&stuck);

    doctor_run lenient = doctor(ARGS("--max-ingest-age", "300"));
    cr_expect_str_eq(text(&lenient, "ingest", AUDIT, "audit-ingestor", "state"),
                     "ok");
    done(&lenient);
}

Test(cli_doctor, dead_letters_need_attention_with_their_reason)
{
    healthy_traffic();
    command(
        "XADD %s.dlq * reason hmac_verify_failed src_id evt-9 received_at 1779364899123 "
        "src_data {} src_sig 00",
        AUDIT);
    command("XADD %s.dead * original_id 1779364830000-0 error %s values %s",
            REVOKE, "missing session_id", "{\"zone_id\":\"zone-1\"}");
    command("XADD %s.dead * original_id 1779364831000-0 error again values {}",
            REVOKE);
    doctor_run d = doctor(NULL);
    cr_expect_eq(d.status, 1);
    cr_expect_str_eq(verdict(&d, "dead_letters"), "attention");
    cr_expect_str_eq(verdict(&d, "enforcers"), "ok",
                     "dead letters are their own section");
    cr_expect_eq(number(&d, "dead_letters", AUDIT ".dlq", NULL, "depth"), 1);
    cr_expect_str_eq(
        text(&d, "dead_letters", AUDIT ".dlq", NULL, "oldest_reason"),
        "hmac_verify_failed");
    cr_expect_str_eq(
        text(&d, "dead_letters", AUDIT ".dlq", NULL, "oldest_source_id"),
        "evt-9");
    cr_expect_eq(number(&d, "dead_letters", REVOKE ".dead", NULL, "depth"), 2);
    cr_expect_str_eq(
        text(&d, "dead_letters", REVOKE ".dead", NULL, "oldest_shape"),
        "enforcer");
    cr_expect_str_eq(
        text(&d, "dead_letters", REVOKE ".dead", NULL, "oldest_reason"),
        "missing session_id");
    cr_expect(strstr(d.err, REVOKE ".dead holds 2"), "%s", d.err);
    done(&d);
}

/* The STS dead-letters every edge revocation of Caracal's API on its fifth
 * delivery, by design; a dead letter for any other reason still counts. */
Test(cli_doctor, the_sts_dead_letters_of_edge_revocations_need_no_attention)
{
    healthy_traffic();
    const char *edge = "{\"zone_id\":\"zone-1\",\"delegation_edge_id\":"
                       "\"edge-1\",\"reason\":\"subject_revoked\"}";
    for (int i = 0; i < 2; i++)
        command(
            "XADD %s.dead * original_id 1779364830000-%d error %s values %s",
            REVOKE, i, "missing session_id or agent_session_id", edge);
    doctor_run d = doctor(NULL);
    cr_expect_eq(d.status, 0, "stderr: %s", d.err);
    cr_expect_str_eq(verdict(&d, "dead_letters"), "ok");
    cr_expect_eq(
        number(&d, "dead_letters", REVOKE ".dead", NULL, "declined_by_design"),
        2);
    done(&d);

    command("XADD %s.dead * original_id 1779364831000-0 error %s values %s",
            REVOKE, "pq: connection refused", edge);
    doctor_run failed = doctor(NULL);
    cr_expect_eq(failed.status, 1);
    cr_expect_str_eq(verdict(&failed, "dead_letters"), "attention");
    cr_expect_str_eq(
        text(&failed, "dead_letters", REVOKE ".dead", NULL, "oldest_reason"),
        "pq: connection refused", "the oldest that needs attention");
    done(&failed);
}

Test(cli_doctor, open_alerts_in_the_index_need_attention)
{
    healthy_traffic();
    /* an index with open alerts: the command-line world's traffic */
    cw_cleanup(&w);
    cw_build(&w, true);
    doctor_run d = doctor(NULL);
    cr_expect_eq(d.status, 1);
    cr_expect_str_eq(verdict(&d, "index"), "attention");
    cr_expect_gt(number(&d, "index", NULL, NULL, "alerts_open"), 0);
    cr_expect_str_eq(verdict(&d, "ingest"), "ok");
    done(&d);
}

Test(cli_doctor, unreachable_redis_or_unreadable_index_exits_3)
{
    healthy_traffic();
    aw_test_path(w.dir, "missing.db", w.db);
    doctor_run no_index = doctor(NULL);
    cr_expect_eq(no_index.status, 3);
    cr_expect_str_eq(verdict(&no_index, "index"), "unknown");
    cr_expect_str_eq(verdict(&no_index, "ingest"), "ok",
                     "Redis was still read");
    done(&no_index);

    aw_test_path(w.dir, "index.db", w.db);
    redisFree(rc);
    aw_test_redis_stop(&redis);
    const char *args[] = {"doctor", "--redis", url,    "--db",
                          w.db,     "-f",      "json", NULL};
    cw_result r = cw_run(&w, args, NULL);
    cr_expect_eq(r.status, 3);
    cr_expect(strstr(r.err, "cannot connect"), "%s", r.err);
    cr_expect(strstr(r.out, "\"item\":\"reachable\",\"value\":false"), "%s",
              r.out);
    cw_result_free(&r);
    aw_test_redis_start_again(&redis);
    rc = aw_test_redis_connect(&redis);
}

Test(cli_doctor, needs_a_redis_url)
{
    const char *args[] = {"doctor", "--db", w.db, NULL};
    cw_result r =
        cw_run(&w, args, (const char *const[]){"AUDITWATCH_REDIS=", NULL});
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "--redis"), "%s", r.err);
    cw_result_free(&r);
}

Test(cli_doctor, renamed_streams_take_their_dead_letter_streams_along)
{
    command("XADD tenant.audit.dlq * reason hmac_verify_failed src_id evt-9 "
            "received_at 1779364899123 src_data {} src_sig 00");
    command("XADD tenant.revoke.dead * original_id 1779364830000-0 error boom "
            "values {}");
    command("XADD elsewhere.dlq * reason x src_id evt-1 received_at 1 "
            "src_data {}");
    command("XADD elsewhere.dlq * reason x src_id evt-2 received_at 1 "
            "src_data {}");
    doctor_run d = doctor(ARGS("--stream", "audit=tenant.audit", "--stream",
                               "sessions=tenant.revoke"));
    cr_expect_eq(number(&d, "dead_letters", "tenant.audit.dlq", NULL, "depth"),
                 1, "the DLQ follows the renamed audit stream");
    cr_expect_eq(
        number(&d, "dead_letters", "tenant.revoke.dead", NULL, "depth"), 1,
        "the .dead stream follows the renamed revocation stream");
    cr_expect(strstr(d.err, "tenant.revoke.dead holds 1"), "%s", d.err);
    done(&d);

    d = doctor(ARGS("--stream", "audit=tenant.audit", "--stream",
                    "audit_dlq=elsewhere.dlq"));
    cr_expect_eq(number(&d, "dead_letters", "elsewhere.dlq", NULL, "depth"), 2,
                 "a DLQ named explicitly wins");
    done(&d);
}
