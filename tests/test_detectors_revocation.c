/* test_detectors_revocation.c -- access_after_revocation through a real
 * index: authority used after it was revoked or suspended, whichever side
 * arrives first. Propagation grace 5 s.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "tests/support/detectors_world.h"

#define KIND AW_ALERT_ACCESS_AFTER_REVOCATION

static dw_world w;

static void setup(void)
{
    dw_open(&w, DW_S(300), DW_S(5));
}

static void teardown(void)
{
    dw_close(&w);
}

TestSuite(access_after_revocation, .init = setup, .fini = teardown);

static void revocation(aw_revocation_action action, const char *zone,
                       aw_anchor anchor, int64_t at)
{
    dw_revocation r = {
        .zone = zone, .action = action, .at_ms = at, .anchors = {anchor}};
    dw_feed_revocation(&w, &r);
}

static void revoke(aw_anchor anchor, int64_t at)
{
    revocation(AW_ACTION_REVOKE, NULL, anchor, at);
}

/* A token_exchange that granted access using `anchor`, stamped
 * occurred_at `at` by the STS and arriving in Redis at `arrival`. */
static void access_arriving(const char *zone, const char *id,
                            const char *request, int64_t at, int64_t arrival,
                            aw_anchor anchor)
{
    dw_audit te = {.id = id,
                   .zone = zone,
                   .type = "token_exchange",
                   .request = request,
                   .occurred_ms = at,
                   .arrival_ms = arrival,
                   .anchors = {anchor}};
    cr_assert_eq(dw_feed_audit(&w, &te), AW_PUT_INSERTED);
}

static void access_in(const char *zone, const char *id, const char *request,
                      int64_t at, aw_anchor anchor)
{
    access_arriving(zone, id, request, at, at, anchor);
}

static void access(const char *id, const char *request, int64_t at,
                   aw_anchor anchor)
{
    access_in(NULL, id, request, at, anchor);
}

static size_t alerts_for(const char *request)
{
    return dw_alerts(&w, KIND, request, NULL, 0);
}

Test(access_after_revocation, raises_when_access_follows_revocation)
{
    revoke(DW_AGENT("as-1"), 0);
    access("te-1", "req-1", DW_S(10), DW_AGENT("as-1"));

    dw_alert a = dw_the_alert(&w, KIND, "req-1");
    char id[33];
    cr_assert_str_eq(a.id,
                     aw_detectors_alert_id(KIND, "zone-1", "agent_session:as-1",
                                           "req-1", id));
    cr_assert_str_eq(a.severity, "high");
    cr_assert_eq(a.state, AW_ALERT_OPEN);
    cr_assert_str_eq(a.anchor, "agent_session:as-1");
    cr_assert_eq(a.event_time_ns, DW_NS(DW_S(10)));
    cr_assert_not_null(strstr(a.evidence, "\"event:te-1\""), "%s", a.evidence);
    cr_assert_not_null(strstr(a.evidence, "\"revocation:" DW_REVOKE_STREAM "/"),
                       "%s", a.evidence);
    cr_assert_not_null(strstr(a.summary, "req-1"), "%s", a.summary);
    cr_assert_not_null(strstr(a.summary, "agent_session:as-1"), "%s",
                       a.summary);
    cr_assert_not_null(strstr(a.summary, "revoked at 2026-05-21T12:00:00Z"),
                       "%s", a.summary);
}

Test(access_after_revocation, no_alert_within_propagation_grace)
{
    revoke(DW_AGENT("as-1"), 0);
    access("te-1", "req-early", DW_S(3), DW_AGENT("as-1"));
    access("te-2", "req-at-grace", DW_S(5), DW_AGENT("as-1"));
    access("te-3", "req-after", DW_S(5) + 1, DW_AGENT("as-1"));
    cr_assert_eq(alerts_for("req-early"), 0);
    cr_assert_eq(alerts_for("req-at-grace"), 0);
    cr_assert_eq(alerts_for("req-after"), 1);
}

/* An STS clock 10 s ahead of Redis' stamps an access occurred_at 10 s,
 * though it reached Redis before the revocation did: it came first. */
Test(access_after_revocation, an_sts_clock_ahead_of_redis_raises_nothing)
{
    access_arriving(NULL, "te-1", "req-ahead", DW_S(10), DW_S(-1),
                    DW_AGENT("as-1"));
    revoke(DW_AGENT("as-1"), 0);
    access_arriving(NULL, "te-2", "req-ahead-read-late", DW_S(10), DW_S(-1),
                    DW_AGENT("as-1"));
    access_arriving(NULL, "te-3", "req-after", DW_S(10), DW_S(10),
                    DW_AGENT("as-1"));
    cr_assert_eq(alerts_for("req-ahead"), 0, "judged when the revocation came");
    cr_assert_eq(alerts_for("req-ahead-read-late"), 0,
                 "judged when the access came");
    cr_assert_eq(alerts_for("req-after"), 1);
}

/* An STS clock behind Redis' stamps an access during the suspension that
 * reached Redis after the resume: it may have come after the resume. */
Test(access_after_revocation,
     an_sts_clock_behind_redis_after_a_resume_is_legitimate)
{
    revocation(AW_ACTION_SUSPEND, NULL, DW_AGENT("as-1"), 0);
    access_arriving(NULL, "te-1", "req-behind-resolved", DW_S(15), DW_S(25),
                    DW_AGENT("as-1"));
    cr_assert_eq(alerts_for("req-behind-resolved"), 1,
                 "forbidden while no resume is known");
    revocation(AW_ACTION_RESUME, NULL, DW_AGENT("as-1"), DW_S(20));
    access_arriving(NULL, "te-2", "req-behind", DW_S(15), DW_S(25),
                    DW_AGENT("as-1"));
    access_arriving(NULL, "te-3", "req-suspended", DW_S(15), DW_S(16),
                    DW_AGENT("as-1"));
    cr_assert_eq(dw_the_alert(&w, KIND, "req-behind-resolved").state,
                 AW_ALERT_RESOLVED, "the resume resolves it");
    cr_assert_eq(alerts_for("req-behind"), 0);
    cr_assert_eq(dw_the_alert(&w, KIND, "req-suspended").state, AW_ALERT_OPEN,
                 "it reached Redis during the suspension");
}

/* Entries of the lifecycle stream trimmed unread between a suspension and
 * an access: its resume may have been one of them. A revocation no resume
 * undoes still raises. */
Test(access_after_revocation,
     a_suspension_whose_resume_may_have_been_trimmed_raises_nothing)
{
    char first[32], last[32];
    revocation(AW_ACTION_SUSPEND, NULL, DW_AGENT("as-1"), 0);
    revoke(DW_AUTHORITY("ar-1"), 0);
    snprintf(first, sizeof first, "%lld-0", (long long)(DW_T0_MS + 10000));
    snprintf(last, sizeof last, "%lld-3", (long long)(DW_T0_MS + 11000));
    cr_assert_eq(dw_trimmed(&w, DW_LIFECYCLE_STREAM, AW_ROLE_AGENT_LIFECYCLE,
                            first, last),
                 AW_OK);
    access("te-1", "req-suspended", DW_S(30), DW_AGENT("as-1"));
    access("te-2", "req-revoked", DW_S(30), DW_AUTHORITY("ar-1"));
    cr_expect_eq(alerts_for("req-suspended"), 0,
                 "a resume may be among the trimmed entries");
    cr_expect_eq(alerts_for("req-revoked"), 1, "nothing resumes a revocation");
}

Test(access_after_revocation, denied_access_is_not_an_alert)
{
    revoke(DW_AGENT("as-1"), 0);
    dw_audit denied = {.id = "te-1",
                       .type = "token_exchange",
                       .request = "req-1",
                       .decision = "deny",
                       .occurred_ms = DW_S(10),
                       .arrival_ms = DW_S(10),
                       .anchors = {DW_AGENT("as-1")}};
    dw_feed_audit(&w, &denied);
    cr_assert_eq(alerts_for(NULL), 0);
}

Test(access_after_revocation, revocation_arriving_after_the_access_raises)
{
    access("te-1", "req-late", DW_S(10), DW_AGENT("as-1"));
    access("te-2", "req-in-grace", DW_S(3), DW_AGENT("as-1"));
    access("te-3", "req-before", DW_S(-10), DW_AGENT("as-1"));
    cr_assert_eq(alerts_for(NULL), 0);

    revoke(DW_AGENT("as-1"), 0);
    cr_assert_eq(alerts_for("req-late"), 1);
    cr_assert_eq(alerts_for("req-in-grace"), 0);
    cr_assert_eq(alerts_for("req-before"), 0);
}

Test(access_after_revocation, suspend_then_resume_then_access_is_legitimate)
{
    revocation(AW_ACTION_SUSPEND, NULL, DW_AGENT("as-1"), 0);
    revocation(AW_ACTION_RESUME, NULL, DW_AGENT("as-1"), DW_S(20));
    access("te-1", "req-after-resume", DW_S(30), DW_AGENT("as-1"));
    access("te-2", "req-suspended", DW_S(10), DW_AGENT("as-1"));
    cr_assert_eq(alerts_for("req-after-resume"), 0);
    dw_alert a = dw_the_alert(&w, KIND, "req-suspended");
    cr_assert_not_null(strstr(a.summary, "suspended"), "%s", a.summary);
}

/* The history of an anchor in use again is kept in memory between
 * batches: a later suspension must still count. */
Test(access_after_revocation, suspended_again_after_resume_raises)
{
    revocation(AW_ACTION_SUSPEND, NULL, DW_AGENT("as-1"), 0);
    revocation(AW_ACTION_RESUME, NULL, DW_AGENT("as-1"), DW_S(20));
    access("te-1", "req-resumed", DW_S(30), DW_AGENT("as-1"));
    revocation(AW_ACTION_SUSPEND, NULL, DW_AGENT("as-1"), DW_S(40));
    access("te-2", "req-suspended-again", DW_S(50), DW_AGENT("as-1"));
    access("te-3", "req-resumed-2", DW_S(35), DW_AGENT("as-1"));
    cr_assert_eq(alerts_for("req-resumed"), 0);
    cr_assert_eq(alerts_for("req-resumed-2"), 0);
    cr_assert_eq(alerts_for("req-suspended-again"), 1);
}

/* A resume whose batch was rolled back never happened. */
Test(access_after_revocation, rolled_back_resume_does_not_count)
{
    revocation(AW_ACTION_SUSPEND, NULL, DW_AGENT("as-1"), 0);
    access("te-0", "req-suspended", DW_S(10), DW_AGENT("as-1"));
    dw_revocation resume = {.action = AW_ACTION_RESUME,
                            .at_ms = DW_S(20),
                            .anchors = {DW_AGENT("as-1")}};
    dw_feed_revocation_rolled_back(&w, &resume);
    access("te-1", "req-after-lost-resume", DW_S(30), DW_AGENT("as-1"));
    cr_assert_eq(alerts_for("req-suspended"), 1);
    cr_assert_eq(alerts_for("req-after-lost-resume"), 1);
}

Test(access_after_revocation, resume_arriving_late_resolves_the_alert)
{
    revocation(AW_ACTION_SUSPEND, NULL, DW_AGENT("as-1"), 0);
    access("te-1", "req-after-resume", DW_S(30), DW_AGENT("as-1"));
    access("te-2", "req-suspended", DW_S(10), DW_AGENT("as-1"));
    cr_assert_eq(dw_the_alert(&w, KIND, "req-after-resume").state,
                 AW_ALERT_OPEN);

    revocation(AW_ACTION_RESUME, NULL, DW_AGENT("as-1"), DW_S(20));
    dw_alert a = dw_the_alert(&w, KIND, "req-after-resume");
    cr_assert_eq(a.state, AW_ALERT_RESOLVED);
    cr_assert_eq(strncmp(a.resolved_by, "revocation:" DW_LIFECYCLE_STREAM "/",
                         strlen("revocation:" DW_LIFECYCLE_STREAM "/")),
                 0, "%s", a.resolved_by);
    cr_assert_eq(a.late_ns, 0);
    cr_assert_eq(dw_the_alert(&w, KIND, "req-suspended").state, AW_ALERT_OPEN,
                 "an access during the suspension stays forbidden");
    cr_assert_eq(dw_count_changes(&w, KIND, AW_ALERT_RESOLVED_NOW), 1);
}

/* te-1 and te-2 share a request id, hence one alert; the late resume makes
 * only te-2 legitimate, so the alert stands for te-1. */
Test(access_after_revocation,
     a_late_resume_resolves_only_when_every_access_is_legitimate)
{
    revocation(AW_ACTION_SUSPEND, NULL, DW_AGENT("as-1"), 0);
    access("te-1", "req-1", DW_S(10), DW_AGENT("as-1"));
    access("te-2", "req-1", DW_S(30), DW_AGENT("as-1"));
    revocation(AW_ACTION_RESUME, NULL, DW_AGENT("as-1"), DW_S(20));
    cr_assert_eq(dw_the_alert(&w, KIND, "req-1").state, AW_ALERT_OPEN);
    cr_assert_eq(dw_count_changes(&w, KIND, AW_ALERT_RESOLVED_NOW), 0);
}

/* A second suspension of the same agent session, and an access with the
 * same request id during it: a new violation under the resolved id. */
Test(access_after_revocation, a_new_violation_reopens_the_resolved_alert)
{
    revocation(AW_ACTION_SUSPEND, NULL, DW_AGENT("as-1"), 0);
    access("te-1", "req-1", DW_S(30), DW_AGENT("as-1"));
    revocation(AW_ACTION_RESUME, NULL, DW_AGENT("as-1"), DW_S(20));
    cr_assert_eq(dw_the_alert(&w, KIND, "req-1").state, AW_ALERT_RESOLVED);

    revocation(AW_ACTION_SUSPEND, NULL, DW_AGENT("as-1"), DW_S(100));
    access("te-2", "req-1", DW_S(200), DW_AGENT("as-1"));
    dw_alert a = dw_the_alert(&w, KIND, "req-1");
    cr_assert_eq(a.state, AW_ALERT_OPEN);
    cr_assert_eq(a.event_time_ns, DW_NS(DW_S(200)));
    cr_assert_not_null(strstr(a.evidence, "\"event:te-2\""), "%s", a.evidence);
    cr_assert_eq(dw_count_changes(&w, KIND, AW_ALERT_REOPENED), 1);
}

/* The coordinator suspended as-1 at 12:00:00 and resumed it at 12:00:10;
 * the suspend's XADD failed and its retry reached Redis at 20 s, after the
 * resume. The outbox keys' times order them: as-1 is active from 10 s. */
Test(access_after_revocation, an_outbox_retry_does_not_undo_the_resume_after_it)
{
    dw_revocation resume = {.action = AW_ACTION_RESUME,
                            .at_ms = DW_S(10),
                            .anchors = {DW_AGENT("as-1")},
                            .dedupe_key =
                                "resume:as-1:2026-05-21T12:00:10.000Z"};
    dw_revocation suspend = {.action = AW_ACTION_SUSPEND,
                             .at_ms = DW_S(20),
                             .anchors = {DW_AGENT("as-1")},
                             .dedupe_key =
                                 "suspend:as-1:2026-05-21T12:00:00.000Z"};
    dw_feed_revocation(&w, &resume);
    access("te-1", "req-1", DW_S(30), DW_AGENT("as-1"));
    dw_feed_revocation(&w, &suspend);
    access("te-2", "req-2", DW_S(40), DW_AGENT("as-1"));
    cr_assert_eq(alerts_for(NULL), 0);
}

Test(access_after_revocation, resume_does_not_undo_a_final_revocation)
{
    revoke(DW_AGENT("as-1"), 0);
    access("te-1", "req-1", DW_S(30), DW_AGENT("as-1"));
    revocation(AW_ACTION_RESUME, NULL, DW_AGENT("as-1"), DW_S(20));
    access("te-2", "req-2", DW_S(40), DW_AGENT("as-1"));
    cr_assert_eq(dw_the_alert(&w, KIND, "req-1").state, AW_ALERT_OPEN);
    cr_assert_eq(dw_the_alert(&w, KIND, "req-2").state, AW_ALERT_OPEN);
}

Test(access_after_revocation, delegation_chain_element_anchor_matches)
{
    dw_audit te = {
        .id = "te-1",
        .type = "token_exchange",
        .request = "req-1",
        .occurred_ms = DW_S(10),
        .arrival_ms = DW_S(10),
        .anchors = {DW_AUTHORITY("ar-1"), DW_AGENT("as-1"), DW_EDGE("e-1"),
                    DW_AGENT("as-root"), DW_EDGE("e-root")},
    };
    dw_feed_audit(&w, &te);
    revoke(DW_EDGE("e-root"), 0);
    te.id = "te-2";
    te.request = "req-2";
    te.arrival_ms = DW_S(11);
    dw_feed_audit(&w, &te);

    cr_assert_str_eq(dw_the_alert(&w, KIND, "req-1").anchor,
                     "delegation_edge:e-root");
    cr_assert_str_eq(dw_the_alert(&w, KIND, "req-2").anchor,
                     "delegation_edge:e-root");
}

Test(access_after_revocation, revocation_in_another_zone_does_not_match)
{
    revocation(AW_ACTION_REVOKE, "zone-2", DW_AGENT("as-1"), 0);
    access("te-1", "req-1", DW_S(10), DW_AGENT("as-1"));
    access("te-2", "req-2", DW_S(20), DW_AGENT("as-2"));
    revocation(AW_ACTION_REVOKE, "zone-2", DW_AGENT("as-2"), DW_S(1));
    cr_assert_eq(alerts_for(NULL), 0);

    access_in("zone-2", "te-3", "req-3", DW_S(30), DW_AGENT("as-1"));
    cr_assert_str_eq(dw_the_alert(&w, KIND, "req-3").zone, "zone-2");
}

static void gateway_call(const char *id, const char *request, int64_t at,
                         const char *evaluation_status)
{
    dw_audit g = {.id = id,
                  .type = "gateway_resource_request",
                  .request = request,
                  .evaluation_status = evaluation_status,
                  .upstream_status = 200,
                  .result_class = "success",
                  .occurred_ms = at,
                  .arrival_ms = at};
    dw_feed_audit(&w, &g);
}

Test(access_after_revocation, critical_when_gateway_call_executed_before)
{
    revoke(DW_AGENT("as-1"), 0);
    gateway_call("g-1", "req-1", DW_S(10), "executed");
    access("te-1", "req-1", DW_S(10), DW_AGENT("as-1"));
    dw_alert a = dw_the_alert(&w, KIND, "req-1");
    cr_assert_str_eq(a.severity, "critical");
    cr_assert_not_null(strstr(a.evidence, "\"event:te-1\""), "%s", a.evidence);
    cr_assert_not_null(strstr(a.evidence, "\"event:g-1\""), "%s", a.evidence);
}

Test(access_after_revocation,
     escalates_when_executed_gateway_call_arrives_later)
{
    revoke(DW_AGENT("as-1"), 0);
    access("te-1", "req-1", DW_S(10), DW_AGENT("as-1"));
    cr_assert_str_eq(dw_the_alert(&w, KIND, "req-1").severity, "high");

    gateway_call("g-1", "req-1", DW_S(11), "executed");
    dw_alert a = dw_the_alert(&w, KIND, "req-1");
    cr_assert_str_eq(a.severity, "critical");
    cr_assert_not_null(strstr(a.evidence, "\"event:te-1\""), "%s", a.evidence);
    cr_assert_not_null(strstr(a.evidence, "\"event:g-1\""), "%s", a.evidence);
    cr_assert_eq(dw_count_changes(&w, KIND, AW_ALERT_ESCALATED), 1);
}

Test(access_after_revocation, stays_high_when_gateway_call_did_not_execute)
{
    revoke(DW_AGENT("as-1"), 0);
    access("te-1", "req-1", DW_S(10), DW_AGENT("as-1"));
    gateway_call("g-1", "req-1", DW_S(11), "upstream_error");
    dw_alert a = dw_the_alert(&w, KIND, "req-1");
    cr_assert_str_eq(a.severity, "high");
    cr_assert_not_null(strstr(a.evidence, "\"event:g-1\""), "%s", a.evidence);
}

/* Request ids repeat: a call that ended a day after the decision is
 * another call, whichever of the two arrives first. */
Test(access_after_revocation, a_call_a_day_later_is_not_the_decisions)
{
    revoke(DW_AGENT("as-1"), 0);
    access("te-1", "req-1", DW_S(10), DW_AGENT("as-1"));
    gateway_call("g-1", "req-1", DW_S(86400), "executed");
    cr_assert_str_eq(dw_the_alert(&w, KIND, "req-1").severity, "high");
    cr_assert_eq(dw_count_changes(&w, KIND, AW_ALERT_ESCALATED), 0);

    gateway_call("g-2", "req-2", DW_S(86400), "executed");
    access("te-2", "req-2", DW_S(20), DW_AGENT("as-1"));
    dw_alert a = dw_the_alert(&w, KIND, "req-2");
    cr_assert_str_eq(a.severity, "high");
    cr_assert_null(strstr(a.evidence, "\"event:g-2\""), "%s", a.evidence);
}

/* The call that ends when the missing-evidence grace does still counts. */
Test(access_after_revocation, a_call_ending_at_the_grace_is_the_decisions)
{
    revoke(DW_AGENT("as-1"), 0);
    access("te-1", "req-1", DW_S(10), DW_AGENT("as-1"));
    gateway_call("g-1", "req-1", DW_S(310), "executed");
    cr_assert_str_eq(dw_the_alert(&w, KIND, "req-1").severity, "critical");
}

/* The Gateway call of an access found legitimate since is no violation. */
Test(access_after_revocation, a_gateway_call_leaves_a_resolved_alert_resolved)
{
    revocation(AW_ACTION_SUSPEND, NULL, DW_AGENT("as-1"), 0);
    access("te-1", "req-1", DW_S(30), DW_AGENT("as-1"));
    revocation(AW_ACTION_RESUME, NULL, DW_AGENT("as-1"), DW_S(20));
    gateway_call("g-1", "req-1", DW_S(31), "executed");
    dw_alert a = dw_the_alert(&w, KIND, "req-1");
    cr_assert_eq(a.state, AW_ALERT_RESOLVED);
    cr_assert_str_eq(a.severity, "high");
    cr_assert_eq(dw_count_changes(&w, KIND, AW_ALERT_REOPENED), 0);
}

Test(access_after_revocation, same_call_seen_twice_is_one_alert)
{
    revoke(DW_AGENT("as-1"), 0);
    access("te-1", "req-1", DW_S(10), DW_AGENT("as-1"));
    dw_audit g = {.id = "g-1",
                  .type = "gateway_resource_request",
                  .request = "req-1",
                  .evaluation_status = "executed",
                  .occurred_ms = DW_S(11),
                  .arrival_ms = DW_S(11),
                  .anchors = {DW_AGENT("as-1")}};
    dw_feed_audit(&w, &g);
    revoke(DW_AGENT("as-1"), DW_S(1));

    dw_alert a = dw_the_alert(&w, KIND, "req-1");
    cr_assert_str_eq(a.severity, "critical");
    cr_assert_not_null(strstr(a.evidence, "\"event:te-1\""), "%s", a.evidence);
    cr_assert_not_null(strstr(a.evidence, "\"event:g-1\""), "%s", a.evidence);
    cr_assert_eq(dw_count_changes(&w, KIND, AW_ALERT_RAISED), 1);
}

Test(access_after_revocation, revocation_indexed_before_restart_still_matches)
{
    revoke(DW_AGENT("as-1"), 0);
    dw_reopen(&w);
    access("te-1", "req-1", DW_S(10), DW_AGENT("as-1"));
    cr_assert_eq(alerts_for("req-1"), 1);
}

Test(access_after_revocation, late_resume_after_restart_resolves)
{
    revocation(AW_ACTION_SUSPEND, NULL, DW_AGENT("as-1"), 0);
    access("te-1", "req-1", DW_S(30), DW_AGENT("as-1"));
    dw_reopen(&w);
    revocation(AW_ACTION_RESUME, NULL, DW_AGENT("as-1"), DW_S(20));
    cr_assert_eq(dw_the_alert(&w, KIND, "req-1").state, AW_ALERT_RESOLVED);
}

/* One alert stands for te-1 and te-2 (same request id); g-2, te-2's
 * executed call, arrives after both and makes it critical. */
Test(access_after_revocation, the_call_of_a_later_access_of_the_alert_escalates)
{
    revoke(DW_AGENT("as-1"), 0);
    access("te-1", "req-1", DW_S(10), DW_AGENT("as-1"));
    access("te-2", "req-1", DW_S(1000), DW_AGENT("as-1"));
    gateway_call("g-2", "req-1", DW_S(1005), "executed");
    dw_alert a = dw_the_alert(&w, KIND, "req-1");
    cr_assert_str_eq(a.severity, "critical", "evidence %s", a.evidence);
}

/* Two transactions that raced: Redis has the resume after the suspend, the
 * coordinator's times the other way round. The resume counts as the later:
 * a disagreement leaves no session suspended that either says resumed. */
Test(access_after_revocation, when_the_two_orders_disagree_the_resume_is_later)
{
    dw_revocation suspend = {.action = AW_ACTION_SUSPEND,
                             .at_ms = 0,
                             .anchors = {DW_AGENT("as-1")},
                             .dedupe_key =
                                 "suspend:as-1:2026-05-21T12:00:02.000Z"};
    dw_revocation resume = {.action = AW_ACTION_RESUME,
                            .at_ms = DW_S(1),
                            .anchors = {DW_AGENT("as-1")},
                            .dedupe_key =
                                "resume:as-1:2026-05-21T12:00:01.000Z"};
    dw_feed_revocation(&w, &suspend);
    dw_feed_revocation(&w, &resume);
    access("te-1", "req-1", DW_S(30), DW_AGENT("as-1"));
    cr_assert_eq(alerts_for(NULL), 0);
}

/* The resume's XADD was retried: the coordinator resumed at 10 s, Redis
 * got it at 60 s. The access at 30 s was legitimate. */
Test(access_after_revocation, a_retried_resume_is_in_force_from_its_key_time)
{
    dw_revocation suspend = {.action = AW_ACTION_SUSPEND,
                             .at_ms = 0,
                             .anchors = {DW_AGENT("as-1")},
                             .dedupe_key =
                                 "suspend:as-1:2026-05-21T12:00:00.000Z"};
    dw_revocation resume = {.action = AW_ACTION_RESUME,
                            .at_ms = DW_S(60),
                            .anchors = {DW_AGENT("as-1")},
                            .dedupe_key =
                                "resume:as-1:2026-05-21T12:00:10.000Z"};
    dw_feed_revocation(&w, &suspend);
    access("te-1", "req-1", DW_S(30), DW_AGENT("as-1"));
    dw_feed_revocation(&w, &resume);
    cr_assert_eq(dw_the_alert(&w, KIND, "req-1").state, AW_ALERT_RESOLVED);
}

/* An access without a request id shares no alert with req-2's. */
Test(access_after_revocation,
     a_late_resume_resolves_an_access_without_request_id)
{
    revocation(AW_ACTION_SUSPEND, NULL, DW_AGENT("as-1"), 0);
    access("te-1", NULL, DW_S(30), DW_AGENT("as-1"));
    access("te-2", "req-2", DW_S(10), DW_AGENT("as-1"));
    cr_assert_eq(alerts_for(NULL), 2);
    revocation(AW_ACTION_RESUME, NULL, DW_AGENT("as-1"), DW_S(20));
    cr_assert_eq(dw_count_changes(&w, KIND, AW_ALERT_RESOLVED_NOW), 1);
    cr_assert_eq(dw_the_alert(&w, KIND, "req-2").state, AW_ALERT_OPEN);
}

/* ---- The delegation-epoch rule -------------------------------------------- */

/* A delegated exchange as Caracal's STS writes it: its own edge
 * (delegation_edge_id, the path's last edge) first, then the chain's hops
 * (upstream edges first), with the graph epoch the STS read. */
static void delegated(const char *id, const char *request, int64_t at,
                      const char *own_edge, const char *upstream_edge,
                      int64_t epoch)
{
    dw_audit te = {.id = id,
                   .type = "token_exchange",
                   .request = request,
                   .occurred_ms = at,
                   .arrival_ms = at,
                   .anchors = {DW_AUTHORITY("ar-c"), DW_AGENT("as-c"),
                               DW_EDGE(own_edge), DW_AGENT("as-a")},
                   .has_epoch = true,
                   .epoch = epoch};
    if (upstream_edge)
        te.anchors[4] = DW_EDGE(upstream_edge);
    cr_assert_eq(dw_feed_audit(&w, &te), AW_PUT_INSERTED);
}

static void edge_revoke(const char *edge, int64_t at, int64_t epoch)
{
    dw_revocation r = {.action = AW_ACTION_REVOKE,
                       .at_ms = at,
                       .anchors = {DW_EDGE(edge)},
                       .has_epoch = true,
                       .epoch = epoch};
    dw_feed_revocation(&w, &r);
}

/* Caracal's STS reads the decision's own edge (GetDelegationLineage), then
 * the graph epoch: an edge_revoke committed between the two reads gives an
 * allow at the revocation's epoch, 1 ms after it, within the propagation
 * grace. Nothing is wrong; whichever side arrives first, nothing is
 * raised. */
Test(access_after_revocation,
     the_epoch_of_a_revocation_racing_the_decisions_own_edge_raises_nothing)
{
    edge_revoke("e-own", DW_S(10), 7);
    delegated("te-1", "req-1", DW_S(10) + 1, "e-own", NULL, 7);
    delegated("te-2", "req-2", DW_S(20) + 1, "e-late", NULL, 9);
    edge_revoke("e-late", DW_S(20), 9);
    cr_assert_eq(alerts_for(NULL), 0);
}

/* The decision's own edge is still judged by the clock. */
Test(access_after_revocation, the_decisions_own_edge_past_the_grace_raises)
{
    edge_revoke("e-own", 0, 7);
    delegated("te-1", "req-1", DW_S(10), "e-own", NULL, 7);
    cr_assert_str_eq(dw_the_alert(&w, KIND, "req-1").anchor,
                     "delegation_edge:e-own");
}

/* Past the grace on Redis' own clock, the epoch still tells on the
 * decision's own edge when the STS's clock does not: an allow stamped two
 * minutes before the revocation, arriving ten seconds after it, at its
 * epoch. Arriving within the grace, it is the race above. */
Test(access_after_revocation,
     the_decisions_own_edge_at_its_revocation_epoch_past_the_grace_raises)
{
    edge_revoke("e-own", DW_S(200), 7);
    dw_audit behind = {
        .id = "te-behind",
        .type = "token_exchange",
        .request = "req-behind",
        .occurred_ms = DW_S(80),
        .arrival_ms = DW_S(210),
        .anchors = {DW_AUTHORITY("ar-c"), DW_AGENT("as-c"), DW_EDGE("e-own")},
        .has_epoch = true,
        .epoch = 7};
    dw_audit racing = behind;
    racing.id = "te-racing";
    racing.request = "req-racing";
    racing.arrival_ms = DW_S(203);
    cr_assert_eq(dw_feed_audit(&w, &behind), AW_PUT_INSERTED);
    cr_assert_eq(dw_feed_audit(&w, &racing), AW_PUT_INSERTED);
    dw_alert a = dw_the_alert(&w, KIND, "req-behind");
    cr_expect_str_eq(a.anchor, "delegation_edge:e-own");
    cr_expect(strstr(a.summary, "epoch 7"), "%s", a.summary);
    cr_expect_eq(alerts_for("req-racing"), 0);
}

/* An upstream edge of the path is read again after the epoch
 * (buildDelegationChain): an allow at its revocation epoch is a violation,
 * whatever the clocks say, and whichever side arrives first. */
Test(access_after_revocation, the_epoch_rule_holds_for_an_upstream_edge)
{
    edge_revoke("e-up", DW_S(10), 7);
    delegated("te-1", "req-1", DW_S(10) + 1, "e-own", "e-up", 7);
    delegated("te-2", "req-2", DW_S(10) + 2, "e-own", "e-up", 6);
    delegated("te-3", "req-3", DW_S(20) + 1, "e-own2", "e-up2", 9);
    edge_revoke("e-up2", DW_S(20), 9);
    cr_assert_str_eq(dw_the_alert(&w, KIND, "req-1").anchor,
                     "delegation_edge:e-up");
    cr_assert_eq(alerts_for("req-2"), 0);
    cr_assert_str_eq(dw_the_alert(&w, KIND, "req-3").anchor,
                     "delegation_edge:e-up2");
}
