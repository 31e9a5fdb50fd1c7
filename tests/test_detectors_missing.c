/* test_detectors_missing.c -- "call succeeded, but no audit": a Gateway call
 * without its token_exchange decision (decision_missing) and an observed
 * call without any audit event (call_without_audit), through a real index.
 * Grace 300 s unless a test says otherwise.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "tests/support/detectors_world.h"
#include "tests/support/store_fixture.h"

static dw_world w;

static void setup(void)
{
    dw_open(&w, DW_S(300), DW_S(5));
}

static void teardown(void)
{
    dw_close(&w);
}

static void gateway_call(const char *id, const char *request, int64_t occurred,
                         int64_t arrival, int upstream,
                         const char *result_class)
{
    dw_audit g = {
        .id = id,
        .type = "gateway_resource_request",
        .request = request,
        .evaluation_status = "executed",
        .upstream_status = upstream,
        .result_class = result_class,
        .occurred_ms = occurred,
        .arrival_ms = arrival,
    };
    cr_assert_eq(dw_feed_audit(&w, &g), AW_PUT_INSERTED);
}

static void decision_in(const char *zone, const char *type, const char *id,
                        const char *request, int64_t occurred, int64_t arrival)
{
    dw_audit te = {
        .id = id,
        .zone = zone,
        .type = type,
        .request = request,
        .occurred_ms = occurred,
        .arrival_ms = arrival,
    };
    cr_assert_eq(dw_feed_audit(&w, &te), AW_PUT_INSERTED);
}

static void decision(const char *id, const char *request, int64_t occurred,
                     int64_t arrival)
{
    decision_in(NULL, "token_exchange", id, request, occurred, arrival);
}

static size_t count(const char *kind)
{
    return dw_alerts(&w, kind, NULL, NULL, 0);
}

TestSuite(decision_missing, .init = setup, .fini = teardown);

Test(decision_missing, raises_after_grace_when_no_token_exchange)
{
    gateway_call("g-1", "req-1", 0, 0, 502, "server_error");
    dw_advance(&w, DW_S(299));
    cr_assert_eq(count(AW_ALERT_DECISION_MISSING), 0,
                 "raised inside the grace window");

    dw_advance(&w, DW_S(300));
    dw_alert a = dw_the_alert(&w, AW_ALERT_DECISION_MISSING, "req-1");
    char id[33];
    cr_assert_str_eq(a.id, aw_detectors_alert_id(AW_ALERT_DECISION_MISSING,
                                                 "zone-1", NULL, "req-1", id));
    cr_assert_eq(a.state, AW_ALERT_OPEN);
    cr_assert_str_eq(a.severity, "high");
    cr_assert_str_eq(a.zone, "zone-1");
    cr_assert_not_null(strstr(a.evidence, "\"event:g-1\""), "%s", a.evidence);
    cr_assert_not_null(strstr(a.evidence, "\"entry:" DW_AUDIT_STREAM "/"), "%s",
                       a.evidence);
    cr_assert_not_null(strstr(a.summary, "req-1"), "%s", a.summary);
    cr_assert_not_null(strstr(a.summary, "2026-05-21T12:00:00Z"), "%s",
                       a.summary);
    cr_assert_eq(a.event_time_ns, DW_NS(0));
    cr_assert_eq(a.raised_at_ns, DW_NS(DW_S(300)));
    cr_assert_eq(
        dw_count_changes(&w, AW_ALERT_DECISION_MISSING, AW_ALERT_RAISED), 1);
}

Test(decision_missing, critical_when_upstream_answered_2xx_or_success)
{
    gateway_call("g-1", "req-2xx", 0, 0, 204, NULL);
    gateway_call("g-2", "req-success", 0, 0, 0, "success");
    gateway_call("g-3", "req-404", 0, 0, 404, "client_error");
    dw_advance(&w, DW_S(301));
    cr_assert_str_eq(
        dw_the_alert(&w, AW_ALERT_DECISION_MISSING, "req-2xx").severity,
        "critical");
    cr_assert_str_eq(
        dw_the_alert(&w, AW_ALERT_DECISION_MISSING, "req-success").severity,
        "critical");
    cr_assert_str_eq(
        dw_the_alert(&w, AW_ALERT_DECISION_MISSING, "req-404").severity,
        "high");
}

Test(decision_missing,
     no_alert_when_token_exchange_present_before_or_within_grace)
{
    decision("te-1", "req-before", DW_S(-10), DW_S(-10));
    gateway_call("g-1", "req-before", 0, 0, 200, "success");
    gateway_call("g-2", "req-within", 0, 0, 200, "success");
    decision("te-2", "req-within", DW_S(1), DW_S(200));
    gateway_call("g-3", "req-at-deadline", 0, 0, 200, "success");
    decision("te-3", "req-at-deadline", DW_S(1), DW_S(300));
    dw_advance(&w, DW_S(1000));
    cr_assert_eq(count(AW_ALERT_DECISION_MISSING), 0);
    cr_assert_eq(w.nchanges, 0);
}

Test(decision_missing, decision_indexed_before_restart_still_counts)
{
    decision("te-1", "req-1", 0, 0);
    dw_reopen(&w);
    gateway_call("g-1", "req-1", DW_S(1), DW_S(1), 200, "success");
    dw_advance(&w, DW_S(1000));
    cr_assert_eq(count(AW_ALERT_DECISION_MISSING), 0);
}

Test(decision_missing, decision_from_a_rolled_back_batch_does_not_count)
{
    dw_audit te = {.id = "te-1", .type = "token_exchange", .request = "req-1"};
    dw_feed_audit_rolled_back(&w, &te);
    gateway_call("g-1", "req-1", DW_S(1), DW_S(1), 200, "success");
    dw_advance(&w, DW_S(1000));
    cr_assert_eq(count(AW_ALERT_DECISION_MISSING), 1);
}

Test(decision_missing, dotted_token_exchange_spelling_counts_as_decision)
{
    gateway_call("g-1", "req-1", 0, 0, 200, "success");
    decision_in(NULL, "token.exchange", "te-1", "req-1", 0, DW_S(1));
    dw_advance(&w, DW_S(1000));
    cr_assert_eq(count(AW_ALERT_DECISION_MISSING), 0);
}

Test(decision_missing, decision_in_another_zone_does_not_count)
{
    gateway_call("g-1", "req-1", 0, 0, 200, "success");
    decision_in("zone-2", "token_exchange", "te-1", "req-1", 0, DW_S(1));
    dw_advance(&w, DW_S(301));
    cr_assert_eq(dw_the_alert(&w, AW_ALERT_DECISION_MISSING, "req-1").state,
                 AW_ALERT_OPEN);
}

Test(decision_missing, resolves_when_decision_arrives_late)
{
    gateway_call("g-1", "req-1", 0, 0, 200, "success");
    dw_advance(&w, DW_S(301));
    cr_assert_eq(dw_the_alert(&w, AW_ALERT_DECISION_MISSING, "req-1").state,
                 AW_ALERT_OPEN);

    decision("te-1", "req-1", DW_S(1), DW_S(400));
    dw_alert a = dw_the_alert(&w, AW_ALERT_DECISION_MISSING, "req-1");
    cr_assert_eq(a.state, AW_ALERT_RESOLVED);
    cr_assert_str_eq(a.resolved_by, "te-1");
    cr_assert_eq(a.late_ns, DW_S(400) * 1000000LL, "late_ns %lld",
                 (long long)a.late_ns);
    cr_assert_eq(a.resolved_at_ns, DW_NS(DW_S(400)));
    cr_assert_eq(
        dw_count_changes(&w, AW_ALERT_DECISION_MISSING, AW_ALERT_RAISED), 1);
    cr_assert_eq(
        dw_count_changes(&w, AW_ALERT_DECISION_MISSING, AW_ALERT_RESOLVED_NOW),
        1);
}

/* Request ids are the client's X-Request-Id and repeat: a decision that
 * occurred a day after the call is a later use of the id (an allow whose
 * call never came), not the decision the call lacked. */
Test(decision_missing, a_later_use_of_the_request_id_does_not_resolve)
{
    gateway_call("g-1", "req-1", 0, 0, 200, "success");
    dw_advance(&w, DW_S(301));
    decision("te-next-day", "req-1", DW_S(86400), DW_S(86400));
    dw_alert a = dw_the_alert(&w, AW_ALERT_DECISION_MISSING, "req-1");
    cr_assert_eq(a.state, AW_ALERT_OPEN, "resolved by %s", a.resolved_by);

    /* the call's own decision, published late, still resolves it */
    decision("te-1", "req-1", DW_S(-1), DW_S(86401));
    a = dw_the_alert(&w, AW_ALERT_DECISION_MISSING, "req-1");
    cr_assert_eq(a.state, AW_ALERT_RESOLVED);
    cr_assert_str_eq(a.resolved_by, "te-1");
}

/* Entries of the audit stream trimmed before auditwatch read them: a call
 * whose decision may have been one of them is not alerted, the trimmed
 * alert stands for it; a call outside the span still is. */
Test(decision_missing,
     a_call_whose_decision_may_have_been_trimmed_is_not_raised)
{
    char first[32], last[32];
    snprintf(first, sizeof first, "%lld-0", (long long)(DW_T0_MS - 2000));
    snprintf(last, sizeof last, "%lld-5", (long long)(DW_T0_MS - 1000));
    cr_assert_eq(dw_trimmed(&w, DW_AUDIT_STREAM, AW_ROLE_AUDIT, first, last),
                 AW_OK);
    dw_reopen(&w); /* the span is known from the index after a restart */
    gateway_call("g-1", "req-trimmed", 0, 0, 200, "success");
    gateway_call("g-2", "req-later", DW_S(7200), DW_S(7200), 200, "success");
    dw_advance(&w, DW_S(7600));
    cr_expect_eq(
        dw_alerts(&w, AW_ALERT_DECISION_MISSING, "req-trimmed", NULL, 0), 0,
        "its decision may be in the trimmed span");
    cr_expect_eq(dw_alerts(&w, AW_ALERT_DECISION_MISSING, "req-later", NULL, 0),
                 1, "two hours later: no grant of then reaches it");
    cr_expect_eq(count(AW_ALERT_EVIDENCE_TRIMMED), 1);
}

/* A decision read in the same batch as the deadline but published after it
 * is still late: the outcome depends on timestamps, not on batching. */
Test(decision_missing,
     decision_published_after_deadline_is_late_even_in_one_batch)
{
    gateway_call("g-1", "req-1", 0, 0, 200, "success");
    decision("te-1", "req-1", DW_S(1), DW_S(350));
    dw_alert a = dw_the_alert(&w, AW_ALERT_DECISION_MISSING, "req-1");
    cr_assert_eq(a.state, AW_ALERT_RESOLVED);
    cr_assert_str_eq(a.resolved_by, "te-1");
    cr_assert_eq(a.late_ns, DW_S(350) * 1000000LL);
    cr_assert_eq(dw_count_changes(&w, NULL, AW_ALERT_RAISED), 1);
    cr_assert_eq(dw_count_changes(&w, NULL, AW_ALERT_RESOLVED_NOW), 1);
}

Test(decision_missing, grace_counts_from_arrival_for_evidence_published_late)
{
    gateway_call("g-1", "req-1", 0, DW_S(1000), 200, "success");
    dw_advance(&w, DW_S(1299));
    cr_assert_eq(count(AW_ALERT_DECISION_MISSING), 0,
                 "a call replayed late must get its full grace window");
    dw_advance(&w, DW_S(1300));
    cr_assert_eq(count(AW_ALERT_DECISION_MISSING), 1);
}

Test(decision_missing, raised_once_however_often_the_clock_advances)
{
    gateway_call("g-1", "req-1", 0, 0, 200, "success");
    for (int s = 301; s < 310; s++)
        dw_advance(&w, DW_S(s));
    cr_assert_eq(count(AW_ALERT_DECISION_MISSING), 1);
    cr_assert_eq(w.nchanges, 1);
}

TestSuite(call_without_audit, .init = setup, .fini = teardown);

Test(call_without_audit, raises_when_no_audit_event_follows_a_successful_call)
{
    dw_call c = {
        .request = "req-9", .status = 200, .occurred_ms = 0, .arrival_ms = 0};
    dw_feed_call(&w, &c);
    dw_advance(&w, DW_S(299));
    cr_assert_eq(count(AW_ALERT_CALL_WITHOUT_AUDIT), 0);
    dw_advance(&w, DW_S(300));
    dw_alert a = dw_the_alert(&w, AW_ALERT_CALL_WITHOUT_AUDIT, "req-9");
    cr_assert_str_eq(a.severity, "high");
    cr_assert_eq(a.state, AW_ALERT_OPEN);
    cr_assert_not_null(strstr(a.evidence, "\"entry:" DW_CALLS_STREAM "/"), "%s",
                       a.evidence);
    cr_assert_not_null(strstr(a.summary, "req-9"), "%s", a.summary);
    cr_assert_eq(a.event_time_ns, DW_NS(0));
}

Test(call_without_audit, no_alert_when_any_audit_event_has_the_request_id)
{
    dw_call c = {.request = "req-9", .status = 200};
    dw_feed_call(&w, &c);
    dw_audit e = {.id = "e-1",
                  .type = "credential_revealed",
                  .request = "req-9",
                  .occurred_ms = DW_S(2),
                  .arrival_ms = DW_S(100)};
    dw_feed_audit(&w, &e);
    dw_advance(&w, DW_S(1000));
    cr_assert_eq(count(AW_ALERT_CALL_WITHOUT_AUDIT), 0);
}

Test(call_without_audit, only_successful_calls_need_audit)
{
    dw_call failed = {.request = "req-500", .status = 500};
    dw_call redirected = {.request = "req-302", .status = 302};
    dw_feed_call(&w, &failed);
    dw_feed_call(&w, &redirected);
    dw_advance(&w, DW_S(1000));
    cr_assert_eq(dw_alerts(&w, AW_ALERT_CALL_WITHOUT_AUDIT, "req-500", NULL, 0),
                 0);
    cr_assert_eq(dw_alerts(&w, AW_ALERT_CALL_WITHOUT_AUDIT, "req-302", NULL, 0),
                 1);
}

Test(call_without_audit, resolves_when_audit_event_arrives_late)
{
    dw_call c = {.request = "req-9", .status = 200};
    dw_feed_call(&w, &c);
    dw_advance(&w, DW_S(301));
    dw_audit e = {.id = "e-1",
                  .type = "token_exchange",
                  .request = "req-9",
                  .occurred_ms = 0,
                  .arrival_ms = DW_S(500)};
    dw_feed_audit(&w, &e);
    dw_alert a = dw_the_alert(&w, AW_ALERT_CALL_WITHOUT_AUDIT, "req-9");
    cr_assert_eq(a.state, AW_ALERT_RESOLVED);
    cr_assert_str_eq(a.resolved_by, "e-1");
    cr_assert_eq(a.late_ns, DW_S(500) * 1000000LL);
}

Test(call_without_audit, zone_of_the_call_must_match_when_known)
{
    dw_call zoned = {.request = "req-z", .zone = "zone-2", .status = 200};
    dw_call unzoned = {.request = "req-u", .status = 200};
    dw_feed_call(&w, &zoned);
    dw_feed_call(&w, &unzoned);
    dw_audit e1 = {.id = "e-1",
                   .type = "token_exchange",
                   .request = "req-z",
                   .arrival_ms = DW_S(1)};
    dw_audit e2 = {.id = "e-2",
                   .type = "token_exchange",
                   .request = "req-u",
                   .arrival_ms = DW_S(1)};
    dw_feed_audit(&w, &e1);
    dw_feed_audit(&w, &e2);
    dw_advance(&w, DW_S(1000));
    cr_assert_eq(dw_alerts(&w, AW_ALERT_CALL_WITHOUT_AUDIT, "req-z", NULL, 0),
                 1, "an audit event of zone-1 does not cover a call in zone-2");
    cr_assert_eq(dw_alerts(&w, AW_ALERT_CALL_WITHOUT_AUDIT, "req-u", NULL, 0),
                 0);
}

Test(call_without_audit, late_audit_event_in_the_calls_zone_resolves)
{
    dw_call zoned = {.request = "req-z", .zone = "zone-2", .status = 200};
    dw_feed_call(&w, &zoned);
    dw_advance(&w, DW_S(301));
    dw_audit e = {.id = "e-1",
                  .zone = "zone-2",
                  .type = "token_exchange",
                  .request = "req-z",
                  .arrival_ms = DW_S(400)};
    dw_feed_audit(&w, &e);
    cr_assert_eq(dw_the_alert(&w, AW_ALERT_CALL_WITHOUT_AUDIT, "req-z").state,
                 AW_ALERT_RESOLVED);
}

/* The audit events of an observed call may have been among audit entries
 * trimmed unread: the trimmed alert stands for it. A span of another
 * stream holds no audit event, and a call two hours after the span is
 * beyond any grant of then. */
Test(call_without_audit, a_call_whose_audit_may_have_been_trimmed_is_not_raised)
{
    char first[32], last[32];
    snprintf(first, sizeof first, "%lld-0", (long long)(DW_T0_MS - 2000));
    snprintf(last, sizeof last, "%lld-5", (long long)(DW_T0_MS - 1000));
    cr_assert_eq(dw_trimmed(&w, DW_AUDIT_STREAM, AW_ROLE_AUDIT, first, last),
                 AW_OK);
    cr_assert_eq(
        dw_trimmed(&w, DW_REVOKE_STREAM, AW_ROLE_SESSION_REVOKE, first, last),
        AW_OK);
    dw_reopen(&w); /* the span is known from the index after a restart */
    dw_call trimmed = {.request = "req-trimmed", .status = 200, .logged = true};
    dw_call later = {.request = "req-later",
                     .status = 200,
                     .occurred_ms = DW_S(7200),
                     .arrival_ms = DW_S(7200),
                     .logged = true};
    dw_feed_call(&w, &trimmed);
    dw_feed_call(&w, &later);
    dw_advance(&w, DW_S(7600));
    cr_expect_eq(
        dw_alerts(&w, AW_ALERT_CALL_WITHOUT_AUDIT, "req-trimmed", NULL, 0), 0,
        "its audit event may be in the trimmed span");
    cr_expect_eq(
        dw_alerts(&w, AW_ALERT_CALL_WITHOUT_AUDIT, "req-later", NULL, 0), 1,
        "two hours later: no grant of then reaches it");
}

/* Only the audit stream the daemon reads counts: a renamed one is told to
 * the detectors, and the default name then holds no audit event. */
Test(call_without_audit, a_trim_of_the_configured_audit_stream_counts)
{
    char first[32], last[32];
    snprintf(first, sizeof first, "%lld-0", (long long)(DW_T0_MS - 2000));
    snprintf(last, sizeof last, "%lld-5", (long long)(DW_T0_MS - 1000));
    w.config.audit_stream = "tenant-a.audit";
    dw_reopen(&w);
    cr_assert_eq(dw_trimmed(&w, DW_AUDIT_STREAM, AW_ROLE_AUDIT, first, last),
                 AW_OK);
    dw_call in_default = {.request = "req-default", .status = 200};
    dw_feed_call(&w, &in_default);
    dw_advance(&w, DW_S(400));
    cr_expect_eq(
        dw_alerts(&w, AW_ALERT_CALL_WITHOUT_AUDIT, "req-default", NULL, 0), 1,
        "the default stream is not the one being read");
    cr_assert_eq(dw_trimmed(&w, "tenant-a.audit", AW_ROLE_AUDIT, first, last),
                 AW_OK);
    dw_call in_configured = {.request = "req-configured",
                             .status = 200,
                             .occurred_ms = DW_S(400),
                             .arrival_ms = DW_S(400)};
    dw_feed_call(&w, &in_configured);
    dw_advance(&w, DW_S(800));
    cr_expect_eq(
        dw_alerts(&w, AW_ALERT_CALL_WITHOUT_AUDIT, "req-configured", NULL, 0),
        0);
}

/* ---- The lookback: how old an answering audit event may be --------------- */

/* Clients choose request ids: a call made around the Gateway with the id of
 * an audited request two hours old, or that request replayed, is no
 * audited call. The lookback is 1 h (the default). */
static void old_event(const char *id, int64_t occurred, int64_t arrival)
{
    dw_audit e = {.id = id,
                  .type = "token_exchange",
                  .request = "req-9",
                  .occurred_ms = occurred,
                  .arrival_ms = arrival};
    cr_assert_eq(dw_feed_audit(&w, &e), AW_PUT_INSERTED);
}

/* An observed call of req-9 two hours in, at its arrival; logged: the
 * line gave that time. Its deadline is 300 s later. */
static void call_two_hours_in(bool logged)
{
    dw_call c = {.request = "req-9",
                 .status = 200,
                 .occurred_ms = DW_S(7200),
                 .arrival_ms = DW_S(7200),
                 .logged = logged};
    dw_feed_call(&w, &c);
}

Test(call_without_audit, an_event_older_than_the_lookback_does_not_count)
{
    old_event("e-old", 0, 0);
    call_two_hours_in(true);
    dw_advance(&w, DW_S(7501));
    dw_alert a = dw_the_alert(&w, AW_ALERT_CALL_WITHOUT_AUDIT, "req-9");
    cr_expect_eq(a.state, AW_ALERT_OPEN);
    cr_expect_not_null(strstr(a.summary, "at most 3600 s before it"), "%s",
                       a.summary);
}

Test(call_without_audit, an_event_within_the_lookback_counts)
{
    old_event("e-recent", DW_S(7200 - 3600), DW_S(7200 - 3600));
    call_two_hours_in(true);
    dw_advance(&w, DW_S(7501));
    cr_expect_eq(count(AW_ALERT_CALL_WITHOUT_AUDIT), 0);
}

/* A log line without a time gets its arrival as a stand-in: the call
 * happened at or before it, so any earlier event may be its evidence. */
Test(call_without_audit, a_stand_in_time_takes_any_earlier_event)
{
    old_event("e-old", 0, 0);
    call_two_hours_in(false);
    dw_advance(&w, DW_S(7501));
    cr_expect_eq(count(AW_ALERT_CALL_WITHOUT_AUDIT), 0);
}

/* The same rule picks the late event that resolves the alert, so the
 * outcome does not depend on whether the old event came before or after
 * the deadline; and it holds for checks rebuilt after a restart. */
Test(call_without_audit, only_an_event_within_the_lookback_resolves)
{
    old_event("e-old", 0, 0);
    call_two_hours_in(true);
    dw_reopen(&w);
    dw_advance(&w, DW_S(7501));
    cr_assert_eq(dw_the_alert(&w, AW_ALERT_CALL_WITHOUT_AUDIT, "req-9").state,
                 AW_ALERT_OPEN,
                 "the old event does not count after a restart either");
    old_event("e-older", DW_S(10), DW_S(7600));
    cr_expect_eq(dw_the_alert(&w, AW_ALERT_CALL_WITHOUT_AUDIT, "req-9").state,
                 AW_ALERT_OPEN, "nor does an old event read late");
    old_event("e-late", DW_S(7199), DW_S(7700));
    dw_alert a = dw_the_alert(&w, AW_ALERT_CALL_WITHOUT_AUDIT, "req-9");
    cr_expect_eq(a.state, AW_ALERT_RESOLVED);
    cr_expect_str_eq(a.resolved_by, "e-late");
}

/* A request id reused two hours later: the late event of the first call
 * is no evidence of the second, whose alert it is. */
Test(call_without_audit, an_event_of_an_earlier_call_does_not_resolve_a_later)
{
    old_event("e-first", 0, 0);
    dw_call first = {.request = "req-9",
                     .status = 200,
                     .occurred_ms = 0,
                     .arrival_ms = 0,
                     .logged = true};
    dw_feed_call(&w, &first);
    call_two_hours_in(true);
    dw_advance(&w, DW_S(7501));
    dw_alert a = dw_the_alert(&w, AW_ALERT_CALL_WITHOUT_AUDIT, "req-9");
    cr_assert_eq(a.state, AW_ALERT_OPEN);
    cr_expect_eq(a.event_time_ns, DW_NS(DW_S(7200)), "raised by the second");
    old_event("e-first-late", DW_S(5), DW_S(7600));
    cr_expect_eq(dw_the_alert(&w, AW_ALERT_CALL_WITHOUT_AUDIT, "req-9").state,
                 AW_ALERT_OPEN);
}

/* ---- One to one: request ids repeat (DESIGN §2.4) ------------------------ */

static void decision_as(const char *id, const char *request,
                        const char *verdict, int64_t occurred, int64_t arrival)
{
    dw_audit te = {
        .id = id,
        .type = "token_exchange",
        .request = request,
        .decision = verdict,
        .occurred_ms = occurred,
        .arrival_ms = arrival,
    };
    cr_assert_eq(dw_feed_audit(&w, &te), AW_PUT_INSERTED);
}

Test(decision_missing, second_gateway_call_of_a_request_needs_its_own_decision)
{
    decision("te-1", "req-1", 0, 0);
    gateway_call("g-1", "req-1", DW_S(1), DW_S(1), 200, "success");
    gateway_call("g-2", "req-1", DW_S(2), DW_S(2), 200, "success");
    dw_advance(&w, DW_S(400));
    dw_alert a = dw_the_alert(&w, AW_ALERT_DECISION_MISSING, "req-1");
    cr_assert_eq(a.state, AW_ALERT_OPEN);
    cr_assert_str_eq(a.severity, "critical");
    cr_assert(strstr(a.evidence, "g-2") != NULL, "the unpaired call: %s",
              a.evidence);
    cr_assert(strstr(a.evidence, "g-1") == NULL, "the paired call: %s",
              a.evidence);
}

/* req-1's alert is open and names call unpaired. */
static void expect_unpaired(const char *call)
{
    dw_alert a = dw_the_alert(&w, AW_ALERT_DECISION_MISSING, "req-1");
    cr_assert_eq(a.state, AW_ALERT_OPEN);
    cr_assert(strstr(a.evidence, call) != NULL, "the unpaired call: %s",
              a.evidence);
}

/* Once past the grace, req-1's alert is open and names g-2 unpaired. */
static void expect_g2_unpaired(void)
{
    dw_advance(&w, DW_S(400));
    expect_unpaired("g-2");
}

/* The pairing keeps every stored call's request in memory, so that the
 * first call of a request is paired by a decision it remembers, without a
 * look-up. A call stored before a restart must still count: the second
 * call, after the restart, ranks second and the one decision pairs only
 * the first. */
Test(decision_missing, a_call_stored_before_a_restart_still_ranks_first)
{
    gateway_call("g-1", "req-1", 0, 0, 200, "success");
    dw_reopen(&w);
    decision("te-1", "req-1", DW_S(1), DW_S(1));
    gateway_call("g-2", "req-1", DW_S(2), DW_S(2), 200, "success");
    expect_g2_unpaired();
}

/* A call another writer stored (an events row the detectors never saw,
 * say from `auditwatch import`) is not in that memory: the detectors
 * notice the rows they missed and ask the store again. */
Test(decision_missing, a_call_stored_behind_the_detectors_back_still_counts)
{
    decision("te-0", "req-0", 0, 0);
    aw_audit_event other = fixture_event(
        "g-1", "zone-1", "gateway_resource_request", "req-1", NULL, DW_NS(0));
    fixture_commit_event(w.store, "1779364800000-999", &other);
    decision("te-1", "req-1", DW_S(1), DW_S(1));
    gateway_call("g-2", "req-1", DW_S(2), DW_S(2), 200, "success");
    expect_g2_unpaired();
}

Test(decision_missing, a_deny_pairs_with_no_gateway_call)
{
    decision_as("te-1", "req-1", "deny", 0, 0);
    gateway_call("g-1", "req-1", DW_S(1), DW_S(1), 200, "success");
    dw_advance(&w, DW_S(400));
    cr_assert_eq(dw_the_alert(&w, AW_ALERT_DECISION_MISSING, "req-1").state,
                 AW_ALERT_OPEN);
}

Test(decision_missing, allow_then_deny_without_a_gateway_call_is_no_gap)
{
    decision_as("te-1", "req-1", "allow", 0, 0);
    decision_as("te-2", "req-1", "deny", DW_S(1), DW_S(1));
    gateway_call("g-1", "req-2", DW_S(1), DW_S(1), 200, "success");
    decision("te-3", "req-2", 0, DW_S(1));
    dw_advance(&w, DW_S(400));
    cr_assert_eq(count(NULL), 0);
}

Test(decision_missing, late_decisions_resolve_only_once_every_call_is_paired)
{
    gateway_call("g-1", "req-1", 0, 0, 200, "success");
    gateway_call("g-2", "req-1", DW_S(1), DW_S(1), 200, "success");
    dw_advance(&w, DW_S(400));
    cr_assert_eq(dw_the_alert(&w, AW_ALERT_DECISION_MISSING, "req-1").state,
                 AW_ALERT_OPEN);
    decision("te-1", "req-1", 0, DW_S(500));
    cr_assert_eq(dw_the_alert(&w, AW_ALERT_DECISION_MISSING, "req-1").state,
                 AW_ALERT_OPEN, "one of two calls is still unpaired");
    decision("te-2", "req-1", DW_S(1), DW_S(600));
    dw_alert a = dw_the_alert(&w, AW_ALERT_DECISION_MISSING, "req-1");
    cr_assert_eq(a.state, AW_ALERT_RESOLVED);
    cr_assert_str_eq(a.resolved_by, "te-2");
}

/* Calls rank by deadline: g-y occurred first but was published at 250 s, so
 * it is due at 550 s; te-x came in time for g-x (due at 310 s) and must
 * stay g-x's, even though g-y's own decision only arrives at 400 s. */
Test(decision_missing,
     a_call_published_late_does_not_take_an_earlier_due_decision)
{
    gateway_call("g-x", "req-1", DW_S(10), DW_S(10), 200, "success");
    decision("te-x", "req-1", DW_S(9), DW_S(200));
    gateway_call("g-y", "req-1", 0, DW_S(250), 200, "success");
    dw_advance(&w, DW_S(310));
    cr_assert_eq(count(AW_ALERT_DECISION_MISSING), 0,
                 "g-x had its decision in time");
    decision("te-y", "req-1", 0, DW_S(400));
    dw_advance(&w, DW_S(600));
    cr_assert_eq(count(AW_ALERT_DECISION_MISSING), 0);
    cr_assert_eq(dw_count_changes(&w, NULL, AW_ALERT_RAISED), 0);
}

/* g-1 was paired on arrival with the only decision. g-2, published late
 * with an earlier occurred_at, ranks after it (due later), so it is the
 * call without a decision, and g-1 stays paired. */
Test(decision_missing, a_call_published_late_behind_a_paired_one_is_unpaired)
{
    decision("te-1", "req-1", 0, 0);
    gateway_call("g-1", "req-1", DW_S(10), DW_S(10), 200, "success");
    gateway_call("g-2", "req-1", DW_S(5), DW_S(100), 200, "success");
    dw_advance(&w, DW_S(1000));
    expect_unpaired("g-2");
}

/* A call stamped ahead of Redis' clock (occurred 200 s, stored at 20 s) is
 * due at 500 s; g-2, stored after it but due at 350 s, ranks first and
 * takes the one decision, so g-1, paired when it arrived, is checked again
 * and found without one. */
static void g1_stamped_ahead_then_g2(void)
{
    decision("te-1", "req-1", 0, 0);
    gateway_call("g-1", "req-1", DW_S(200), DW_S(20), 200, "success");
    gateway_call("g-2", "req-1", DW_S(50), DW_S(50), 200, "success");
}

Test(decision_missing, a_call_that_ranks_ahead_of_a_paired_one_checks_it_again)
{
    g1_stamped_ahead_then_g2();
    dw_advance(&w, DW_S(400));
    cr_assert_eq(count(AW_ALERT_DECISION_MISSING), 0, "g-2 is paired");
    dw_advance(&w, DW_S(500));
    expect_unpaired("g-1");
}

Test(decision_missing, a_call_checked_again_is_still_checked_after_a_restart)
{
    g1_stamped_ahead_then_g2();
    dw_reopen(&w);
    dw_advance(&w, DW_S(500));
    expect_unpaired("g-1");
}

/* Request ids repeat: the next day's call of req-1 without a decision is a
 * new gap under the resolved alert's id, which opens again about it. */
Test(decision_missing, a_new_gap_reopens_the_resolved_alert_of_its_request)
{
    gateway_call("g-1", "req-1", 0, 0, 200, "success");
    dw_advance(&w, DW_S(400));
    decision("te-1", "req-1", 0, DW_S(500));
    cr_assert_eq(dw_the_alert(&w, AW_ALERT_DECISION_MISSING, "req-1").state,
                 AW_ALERT_RESOLVED);

    gateway_call("g-2", "req-1", DW_S(86400), DW_S(86400), 502, "server_error");
    dw_advance(&w, DW_S(86800));
    dw_alert a = dw_the_alert(&w, AW_ALERT_DECISION_MISSING, "req-1");
    cr_assert_eq(a.state, AW_ALERT_OPEN);
    cr_assert_str_eq(a.severity, "high", "the new gap's severity");
    cr_assert_eq(a.event_time_ns, DW_NS(DW_S(86400)));
    cr_assert_eq(a.resolved_at_ns, 0);
    cr_assert(strstr(a.evidence, "g-2") != NULL, "%s", a.evidence);
    cr_assert_eq(
        dw_count_changes(&w, AW_ALERT_DECISION_MISSING, AW_ALERT_REOPENED), 1);
}

/* A call published late that ranks ahead of g-1 leaves g-1, whose gap was
 * resolved, without a decision again: two calls, one decision. That is new
 * evidence under the resolved id, which opens again. */
Test(decision_missing, a_call_that_takes_a_resolved_calls_decision_reopens)
{
    gateway_call("g-1", "req-1", 0, 0, 200, "success");
    dw_advance(&w, DW_S(400));
    decision("te-1", "req-1", 0, DW_S(500));
    cr_assert_eq(dw_the_alert(&w, AW_ALERT_DECISION_MISSING, "req-1").state,
                 AW_ALERT_RESOLVED);
    gateway_call("g-0", "req-1", DW_S(-20), DW_S(-10), 200, "success");
    dw_advance(&w, DW_S(1000));
    cr_assert_eq(dw_the_alert(&w, AW_ALERT_DECISION_MISSING, "req-1").state,
                 AW_ALERT_OPEN, "two calls, one decision");
    cr_assert_eq(dw_count_changes(&w, NULL, AW_ALERT_REOPENED), 1);
}

static aw_put_result feed_call(const char *id, const char *request,
                               int64_t occurred, int64_t arrival)
{
    dw_audit g = {
        .id = id,
        .type = "gateway_resource_request",
        .request = request,
        .evaluation_status = "executed",
        .upstream_status = 200,
        .result_class = "success",
        .occurred_ms = occurred,
        .arrival_ms = arrival,
    };
    return dw_feed_audit(&w, &g);
}

/* g-a is stored from its DLQ copy (arrival 200 s, due 500 s), then its
 * original (arrival 0) becomes its entry: due at 300 s, it ranks ahead of
 * g-b (due 450 s) again, and takes te-1. By 450 s two calls are due and
 * one decision came. */
Test(decision_missing, a_call_whose_original_comes_later_is_ranked_again)
{
    decision("te-1", "req-1", 0, 0);
    cr_assert_eq(feed_call("g-a", "req-1", 0, DW_S(200)), AW_PUT_INSERTED);
    cr_assert_eq(feed_call("g-b", "req-1", DW_S(150), DW_S(150)),
                 AW_PUT_INSERTED);
    cr_assert_eq(feed_call("g-a", "req-1", 0, 0), AW_PUT_DUPLICATE);
    dw_advance(&w, DW_S(460));
    expect_unpaired("g-b");
}

/* g-1's gap, resolved by a late te-1, is judged again once its original
 * (an earlier entry) and a replayed g-0 that ranks ahead of it come: the
 * same gap, whose entry changed, reopens nothing. */
Test(decision_missing, the_same_gap_judged_again_leaves_its_alert_resolved)
{
    cr_assert_eq(feed_call("g-1", "req-1", 0, DW_S(100)), AW_PUT_INSERTED);
    dw_advance(&w, DW_S(400));
    decision("te-1", "req-1", 0, DW_S(450));
    cr_assert_eq(dw_the_alert(&w, AW_ALERT_DECISION_MISSING, "req-1").state,
                 AW_ALERT_RESOLVED);
    cr_assert_eq(feed_call("g-1", "req-1", 0, 0), AW_PUT_DUPLICATE);
    decision("te-0", "req-1", DW_S(-40), DW_S(-30));
    cr_assert_eq(feed_call("g-0", "req-1", DW_S(-50), DW_S(-20)),
                 AW_PUT_INSERTED);
    dw_advance(&w, DW_S(2000));
    cr_assert_eq(dw_the_alert(&w, AW_ALERT_DECISION_MISSING, "req-1").state,
                 AW_ALERT_RESOLVED);
    cr_assert_eq(dw_count_changes(&w, NULL, AW_ALERT_REOPENED), 0);
}

/* ---- Dead-lettered copies ------------------------------------------------- */

/* auditwatch lagged and the audit stream was trimmed past a Gateway call and
 * the token_exchange the STS published just before it; Caracal's audit
 * service had dead-lettered the call (a Postgres outage that began after it
 * ledgered the decision), so the call is indexed from its DLQ copy. Its
 * decision lies on the audit stream, in the trimmed span: the trimmed alert
 * stands for it there as it does for a call read from the audit stream. A
 * call of the DLQ outside any trimmed span still raises. */
Test(decision_missing,
     a_dead_lettered_call_whose_decision_was_trimmed_is_not_raised)
{
    char first[32], last[32];
    snprintf(first, sizeof first, "%lld-0", (long long)(DW_T0_MS - 1000));
    snprintf(last, sizeof last, "%lld-9", (long long)(DW_T0_MS + 1000));
    cr_assert_eq(dw_trimmed(&w, DW_AUDIT_STREAM, AW_ROLE_AUDIT, first, last),
                 AW_OK);
    dw_audit dead = {
        .id = "g-dlq",
        .type = "gateway_resource_request",
        .request = "req-dlq",
        .evaluation_status = "executed",
        .upstream_status = 200,
        .result_class = "success",
        .occurred_ms = 0,
        .arrival_ms = DW_S(60),
        .dead_lettered = true,
    };
    cr_assert_eq(dw_feed_audit(&w, &dead), AW_PUT_INSERTED);
    dw_audit later = dead;
    later.id = "g-dlq-later";
    later.request = "req-dlq-later";
    later.occurred_ms = later.arrival_ms = DW_S(7200);
    cr_assert_eq(dw_feed_audit(&w, &later), AW_PUT_INSERTED);
    dw_advance(&w, DW_S(7600));
    cr_expect_eq(dw_alerts(&w, AW_ALERT_DECISION_MISSING, "req-dlq", NULL, 0),
                 0, "its decision may be in the audit stream's trimmed span");
    cr_expect_eq(
        dw_alerts(&w, AW_ALERT_DECISION_MISSING, "req-dlq-later", NULL, 0), 1,
        "two hours later: no trimmed span reaches it");
    cr_expect_eq(count(AW_ALERT_AUDIT_DEAD_LETTERED), 2);
}
