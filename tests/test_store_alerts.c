/* test_store_alerts.c -- alerts only move forward: raised once, escalated
 * (severity up, evidence merged), resolved for good, acknowledged. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "support/store_fixture.h"

static store_fixture fx;
static aw_error err;

static void setup(void)
{
    memset(&err, 0, sizeof err);
    store_fixture_open(&fx);
    cr_assert_eq(aw_store_begin(fx.store, &err), AW_OK);
}

static void teardown(void)
{
    store_fixture_close(&fx);
}

TestSuite(store_alerts, .init = setup, .fini = teardown);

static aw_alert alert(const char *id, const char *severity,
                      const char *evidence)
{
    return (aw_alert){
        .id = id,
        .kind = "decision_missing",
        .severity = severity,
        .state = AW_ALERT_OPEN,
        .zone_id = "z",
        .request_id = "req-1",
        .anchor = "request:req-1",
        .event_time_ns = 100,
        .raised_at_ns = 400,
        .evidence_json = evidence,
        .summary = severity,
    };
}

static aw_alert_change upsert(aw_alert a)
{
    aw_alert_change change;
    cr_assert_eq(aw_store_alert_upsert(fx.store, &a, &change, &err), AW_OK,
                 "upsert: %s", err.msg);
    return change;
}

/* The stored alert, copied out of the callback. */
struct stored {
    int n;
    char severity[16], evidence[128], summary[64], resolved_by[32], note[32];
    aw_alert_state state;
    int64_t resolved_at, late, acked_at;
};

static int keep(const aw_alert *a, void *ud)
{
    struct stored *s = ud;
    s->n++;
    snprintf(s->severity, sizeof s->severity, "%s", a->severity);
    snprintf(s->evidence, sizeof s->evidence, "%s", a->evidence_json);
    snprintf(s->summary, sizeof s->summary, "%s", a->summary);
    snprintf(s->resolved_by, sizeof s->resolved_by, "%s",
             a->resolved_by ? a->resolved_by : "");
    snprintf(s->note, sizeof s->note, "%s", a->ack_note ? a->ack_note : "");
    s->state = a->state;
    s->resolved_at = a->resolved_at_ns;
    s->late = a->late_ns;
    s->acked_at = a->acked_at_ns;
    return 0;
}

static struct stored find(const aw_alert_filter *filter)
{
    struct stored s = {0};
    cr_assert_eq(aw_store_query_alerts(fx.store, filter, keep, &s, &err), AW_OK,
                 "query: %s", err.msg);
    return s;
}

static struct stored stored(const char *id)
{
    aw_alert_filter f = {.id = id};
    return find(&f);
}

Test(store_alerts, raising_the_same_alert_again_changes_nothing)
{
    cr_expect_eq(upsert(alert("a1", "high", "[\"ev-1\"]")), AW_ALERT_RAISED);
    cr_expect_eq(upsert(alert("a1", "high", "[\"ev-1\"]")), AW_ALERT_UNCHANGED);
    struct stored s = stored("a1");
    cr_expect_eq(s.n, 1);
    cr_expect_str_eq(s.evidence, "[\"ev-1\"]");
    cr_expect_eq(s.state, AW_ALERT_OPEN);
}

Test(store_alerts, severity_only_goes_up_and_evidence_is_merged)
{
    upsert(alert("a1", "high", "[\"ev-1\"]"));
    cr_expect_eq(upsert(alert("a1", "critical", "[\"ev-1\",\"gw-1\"]")),
                 AW_ALERT_ESCALATED);
    struct stored s = stored("a1");
    cr_expect_str_eq(s.severity, "critical");
    cr_expect_str_eq(s.evidence, "[\"ev-1\",\"gw-1\"]");
    cr_expect_str_eq(s.summary, "critical", "the summary follows severity");

    cr_expect_eq(upsert(alert("a1", "medium", "[\"ev-2\"]")),
                 AW_ALERT_ESCALATED, "new evidence alone escalates");
    s = stored("a1");
    cr_expect_str_eq(s.severity, "critical", "never lowered");
    cr_expect_str_eq(s.evidence, "[\"ev-1\",\"gw-1\",\"ev-2\"]");
    cr_expect_str_eq(s.summary, "critical");
}

Test(store_alerts, resolved_alert_stays_resolved)
{
    upsert(alert("a1", "high", "[]"));
    aw_alert_change change;
    cr_assert_eq(
        aw_store_alert_resolve(fx.store, "a1", "te-9", 900, 500, &change, &err),
        AW_OK);
    cr_expect_eq(change, AW_ALERT_RESOLVED_NOW);
    cr_assert_eq(aw_store_alert_resolve(fx.store, "a1", "te-10", 950, 550,
                                        &change, &err),
                 AW_OK);
    cr_expect_eq(change, AW_ALERT_UNCHANGED, "already resolved");
    cr_expect_eq(upsert(alert("a1", "critical", "[]")), AW_ALERT_UNCHANGED,
                 "the same evidence again does not reopen");
    struct stored s = stored("a1");
    cr_expect_eq(s.state, AW_ALERT_RESOLVED);
    cr_expect_str_eq(s.resolved_by, "te-9");
    cr_expect_eq(s.resolved_at, 900);
    cr_expect_eq(s.late, 500);
    cr_expect_str_eq(s.severity, "high");
    cr_assert_eq(
        aw_store_alert_resolve(fx.store, "nope", "x", 1, 1, &change, &err),
        AW_OK);
    cr_expect_eq(change, AW_ALERT_UNCHANGED);
}

/* Request ids repeat, so a resolved id can see a new gap: new evidence
 * opens it again as the new raise describes it, history merged. */
Test(store_alerts, new_evidence_reopens_a_resolved_alert)
{
    upsert(alert("a1", "critical", "[\"ev-1\"]"));
    aw_alert_change change;
    cr_assert_eq(
        aw_store_alert_resolve(fx.store, "a1", "te-9", 900, 500, &change, &err),
        AW_OK);
    cr_assert_eq(aw_store_alert_ack(fx.store, "a1", "seen", 950, &err), AW_OK);
    aw_alert again = alert("a1", "high", "[\"ev-2\"]");
    again.event_time_ns = 86400;
    again.raised_at_ns = 86700;
    cr_expect_eq(upsert(again), AW_ALERT_REOPENED);
    struct stored s = stored("a1");
    cr_expect_eq(s.state, AW_ALERT_OPEN);
    cr_expect_str_eq(s.severity, "high", "the new gap's severity");
    cr_expect_str_eq(s.summary, "high");
    cr_expect_str_eq(s.evidence, "[\"ev-1\",\"ev-2\"]");
    cr_expect_str_eq(s.resolved_by, "");
    cr_expect_eq(s.resolved_at, 0);
    cr_expect_eq(s.late, 0);
    cr_expect_eq(s.acked_at, 0, "a new gap needs a new look");
    cr_expect_eq(upsert(again), AW_ALERT_UNCHANGED);
    cr_assert_eq(aw_store_alert_resolve(fx.store, "a1", "te-10", 90000, 0,
                                        &change, &err),
                 AW_OK);
    again.evidence_json = "[\"ev-3\"]";
    cr_expect_eq(upsert(again), AW_ALERT_UNCHANGED,
                 "the same gap with other evidence (its entry moved)");
}

Test(store_alerts, acknowledging_records_who_looked_and_missing_ids_fail)
{
    upsert(alert("a1", "high", "[]"));
    cr_assert_eq(aw_store_alert_ack(fx.store, "a1", "on it", 777, &err), AW_OK);
    struct stored s = stored("a1");
    cr_expect_eq(s.acked_at, 777);
    cr_expect_str_eq(s.note, "on it");
    cr_expect_eq(aw_store_alert_ack(fx.store, "missing", NULL, 1, &err),
                 AW_ERR_NOTFOUND);
}

Test(store_alerts, evidence_that_is_not_a_json_array_is_refused)
{
    aw_alert_change change;
    aw_alert bad = alert("a1", "high", "{\"not\":\"array\"}");
    cr_expect_eq(aw_store_alert_upsert(fx.store, &bad, &change, &err),
                 AW_ERR_INVALID);
    bad = alert("a2", "severe", "[]");
    cr_expect_eq(aw_store_alert_upsert(fx.store, &bad, &change, &err),
                 AW_ERR_INVALID, "unknown severity");
    cr_expect_eq(stored("a1").n + stored("a2").n, 0);
}

static int count_kind(const char *name, int64_t count, void *ud)
{
    char *out = ud;
    size_t len = strlen(out);
    snprintf(out + len, 128 - len, "%s=%lld ", name, (long long)count);
    return 0;
}

Test(store_alerts, alerts_are_filtered_by_state_severity_and_request)
{
    upsert(alert("a1", "medium", "[]"));
    upsert(alert("a2", "critical", "[]"));
    aw_alert other = alert("a3", "high", "[]");
    other.kind = "caracal_anomaly";
    other.request_id = "req-2";
    upsert(other);
    aw_alert_change change;
    cr_assert_eq(
        aw_store_alert_resolve(fx.store, "a2", "x", 1, 1, &change, &err),
        AW_OK);

    aw_alert_filter open = {.state = AW_ALERT_OPEN};
    cr_expect_eq(find(&open).n, 2);
    aw_alert_filter severe = {.severity = "high"};
    cr_expect_eq(find(&severe).n, 2, "high and critical");
    aw_alert_filter by_request = {.request_id = "req-2"};
    struct stored s = find(&by_request);
    cr_expect_eq(s.n, 1);
    cr_expect_str_eq(s.severity, "high");
    aw_alert_filter bad = {.severity = "extreme"};
    cr_expect_eq(aw_store_query_alerts(fx.store, &bad, keep, &s, &err),
                 AW_ERR_INVALID);

    char counts[128] = "";
    cr_assert_eq(aw_store_count_by(fx.store, "open_alerts_by_kind", count_kind,
                                   counts, &err),
                 AW_OK);
    cr_expect_str_eq(counts, "caracal_anomaly=1 decision_missing=1 ");
}
