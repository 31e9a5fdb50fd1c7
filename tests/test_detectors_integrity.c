/* test_detectors_integrity.c -- alerts about the evidence itself: bad
 * signatures, tampered redeliveries, trimmed entries, and Caracal's own
 * anomaly events.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "tests/support/detectors_world.h"

static dw_world w;

static void setup(void)
{
    dw_open(&w, DW_S(300), DW_S(5));
}

static void teardown(void)
{
    dw_close(&w);
}

TestSuite(integrity, .init = setup, .fini = teardown);

Test(integrity, signature_failures_raise_signature_invalid)
{
    dw_feed_rejected(&w, AW_ROLE_AUDIT, 0, AW_REJECT_SIGNATURE_INVALID,
                     "sig does not match data");
    dw_feed_rejected(&w, AW_ROLE_SESSION_REVOKE, DW_S(1),
                     AW_REJECT_SIGNATURE_MISSING, NULL);
    dw_alert alerts[2];
    cr_assert_eq(dw_alerts(&w, AW_ALERT_SIGNATURE_INVALID, NULL, alerts, 2), 2);
    for (int i = 0; i < 2; i++) {
        cr_assert_str_eq(alerts[i].severity, "high");
        cr_assert_not_null(strstr(alerts[i].evidence, "\"entry:caracal."), "%s",
                           alerts[i].evidence);
    }
    dw_alert *audit = strncmp(alerts[0].anchor, DW_AUDIT_STREAM ":",
                              strlen(DW_AUDIT_STREAM ":")) == 0
                          ? &alerts[0]
                          : &alerts[1];
    cr_assert_eq(strncmp(audit->anchor, DW_AUDIT_STREAM ":1779364800000-",
                         strlen(DW_AUDIT_STREAM ":1779364800000-")),
                 0, "%s", audit->anchor);
    cr_assert_not_null(strstr(audit->summary, "signature_invalid"), "%s",
                       audit->summary);
    cr_assert_eq(audit->event_time_ns, DW_NS(0));
}

Test(integrity, other_rejections_raise_no_alert)
{
    dw_feed_rejected(&w, AW_ROLE_AUDIT, 0, AW_REJECT_NOT_JSON, "expected {");
    dw_feed_rejected(&w, AW_ROLE_AUDIT, 0, AW_REJECT_DUPLICATE_KEY, "id twice");
    dw_feed_rejected(&w, AW_ROLE_SESSION_REVOKE, 0, AW_REJECT_MISSING_FIELD,
                     "no anchor");
    cr_assert_eq(dw_alerts(&w, NULL, NULL, NULL, 0), 0);
}

/* Which alert a rejected entry raises, by its stream's role and the reason:
 * a dead letter neither Caracal nor auditwatch can read is still evidence
 * Caracal gave up on; a bad signature is signature_invalid everywhere. */
Test(integrity, an_unreadable_dead_letter_raises_its_dead_letter_alert)
{
    static const struct {
        aw_stream_role role;
        aw_reject_reason reason;
        const char *kind, *severity; /* kind NULL: no alert */
    } cases[] = {
        {AW_ROLE_AUDIT_DLQ, AW_REJECT_NOT_JSON, AW_ALERT_AUDIT_DEAD_LETTERED,
         "high"},
        {AW_ROLE_AUDIT_DLQ, AW_REJECT_MISSING_FIELD,
         AW_ALERT_AUDIT_DEAD_LETTERED, "high"},
        {AW_ROLE_AUDIT_DLQ, AW_REJECT_TOO_MANY_DELIVERIES,
         AW_ALERT_AUDIT_DEAD_LETTERED, "high"},
        {AW_ROLE_SESSION_REVOKE_DEAD, AW_REJECT_MISSING_FIELD,
         AW_ALERT_REVOCATION_DEAD_LETTERED, "critical"},
        {AW_ROLE_DELEGATION_INVALIDATE_DEAD, AW_REJECT_BAD_VALUE,
         AW_ALERT_REVOCATION_DEAD_LETTERED, "critical"},
        {AW_ROLE_AUDIT_DLQ, AW_REJECT_SIGNATURE_INVALID,
         AW_ALERT_SIGNATURE_INVALID, "high"},
        {AW_ROLE_SESSION_REVOKE_DEAD, AW_REJECT_SIGNATURE_MISSING,
         AW_ALERT_SIGNATURE_INVALID, "high"},
        {AW_ROLE_CALLS, AW_REJECT_BAD_VALUE, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        dw_world one;
        dw_open(&one, DW_S(300), DW_S(5));
        dw_feed_rejected(&one, cases[i].role, DW_S(2), cases[i].reason,
                         "the detail");
        const char *role = aw_stream_role_name(cases[i].role);
        if (!cases[i].kind) {
            cr_expect_eq(dw_alerts(&one, NULL, NULL, NULL, 0), 0, "%s", role);
            dw_close(&one);
            continue;
        }
        cr_expect_eq(dw_alerts(&one, NULL, NULL, NULL, 0), 1, "%s", role);
        dw_alert a = dw_the_alert(&one, cases[i].kind, NULL);
        cr_expect_str_eq(a.severity, cases[i].severity, "%s", role);
        cr_expect_eq(a.event_time_ns, DW_NS(DW_S(2)), "%s", role);
        cr_expect_str_eq(a.zone, "", "%s: nothing unread is trusted", role);
        if (strcmp(cases[i].kind, AW_ALERT_SIGNATURE_INVALID) != 0) {
            cr_expect(strstr(a.summary, DW_CARACAL_REASON), "%s: %s", role,
                      a.summary);
            cr_expect(strstr(a.summary, aw_reject_reason_name(cases[i].reason)),
                      "%s: %s", role, a.summary);
            cr_expect(strstr(a.summary, "the detail"), "%s: %s", role,
                      a.summary);
            cr_expect(strstr(a.evidence, "\"rejected:"), "%s: %s", role,
                      a.evidence);
        }
        dw_close(&one);
    }
}

Test(integrity, tampered_redelivery_raises_critical_and_feeds_no_other_rule)
{
    dw_audit first = {.id = "e-1",
                      .type = "token_exchange",
                      .request = "req-1",
                      .occurred_ms = 0,
                      .arrival_ms = 0};
    cr_assert_eq(dw_feed_audit(&w, &first), AW_PUT_INSERTED);
    dw_audit altered = {.id = "e-1",
                        .type = "gateway_resource_request",
                        .request = "req-2",
                        .variant = "altered",
                        .occurred_ms = 0,
                        .arrival_ms = DW_S(1)};
    cr_assert_eq(dw_feed_audit(&w, &altered), AW_PUT_CONFLICT);

    dw_alert a = dw_the_alert(&w, AW_ALERT_TAMPERED_ON_REDELIVERY, NULL);
    cr_assert_str_eq(a.severity, "critical");
    cr_assert_str_eq(a.anchor, "e-1");
    cr_assert_str_eq(a.request, "req-1", "keyed on the stored first version");
    cr_assert_not_null(strstr(a.evidence, "\"event:e-1\""), "%s", a.evidence);
    cr_assert_not_null(
        strstr(a.evidence, "\"entry:" DW_AUDIT_STREAM "/1779364800000-1\""),
        "%s", a.evidence);
    cr_assert_not_null(
        strstr(a.evidence, "\"entry:" DW_AUDIT_STREAM "/1779364801000-2\""),
        "%s", a.evidence);

    dw_advance(&w, DW_S(1000));
    cr_assert_eq(dw_alerts(&w, AW_ALERT_DECISION_MISSING, NULL, NULL, 0), 0,
                 "the altered copy must not be treated as a Gateway call");
}

Test(integrity, identical_redelivery_is_not_tampering)
{
    dw_audit e = {.id = "e-1", .type = "token_exchange", .request = "req-1"};
    dw_feed_audit(&w, &e);
    e.arrival_ms = DW_S(1);
    cr_assert_eq(dw_feed_audit(&w, &e), AW_PUT_DUPLICATE);
    cr_assert_eq(dw_alerts(&w, NULL, NULL, NULL, 0), 0);
}

Test(integrity, every_altered_copy_of_one_event_lands_in_one_alert)
{
    dw_audit e = {.id = "e-1", .type = "token_exchange", .request = "req-1"};
    dw_feed_audit(&w, &e);
    e.variant = "one";
    e.arrival_ms = DW_S(1);
    dw_feed_audit(&w, &e);
    e.variant = "two";
    e.request = "req-other";
    e.arrival_ms = DW_S(2);
    dw_feed_audit(&w, &e);
    dw_alert a = dw_the_alert(&w, AW_ALERT_TAMPERED_ON_REDELIVERY, NULL);
    cr_assert_not_null(strstr(a.evidence, "/1779364801000-2\""), "%s",
                       a.evidence);
    cr_assert_not_null(strstr(a.evidence, "/1779364802000-3\""), "%s",
                       a.evidence);
}

Test(integrity, trimmed_entries_raise_critical_with_the_lost_range)
{
    cr_assert_eq(dw_trimmed(&w, DW_AUDIT_STREAM, AW_ROLE_AUDIT,
                            "1779364800000-0", "1779364805000-3"),
                 AW_OK);
    dw_alert a = dw_the_alert(&w, AW_ALERT_EVIDENCE_TRIMMED, NULL);
    cr_assert_str_eq(a.severity, "critical");
    cr_assert_str_eq(a.anchor, DW_AUDIT_STREAM);
    cr_assert_str_eq(a.request, "1779364800000-0..1779364805000-3");
    cr_assert_eq(a.event_time_ns, DW_NS(0));
    cr_assert_not_null(strstr(a.summary, "2026-05-21T12:00:05Z"), "%s",
                       a.summary);
}

/* Caracal's DLQ replay re-publishes each entry on the audit stream, then
 * deletes it from the DLQ: deleted unread there, the events are likely
 * indexed from the audit stream, so the loss is high, and says why. */
Test(integrity, entries_deleted_from_the_audit_dlq_are_high)
{
    cr_assert_eq(dw_trimmed(&w, "caracal.audit.events.dlq", AW_ROLE_AUDIT_DLQ,
                            "1779364800000-0", "1779364805000-3"),
                 AW_OK);
    dw_alert a = dw_the_alert(&w, AW_ALERT_EVIDENCE_TRIMMED, NULL);
    cr_assert_str_eq(a.severity, "high");
    cr_assert_not_null(strstr(a.summary, "DLQ replay"), "%s", a.summary);
}

Test(integrity, trimmed_range_with_bad_ids_is_refused)
{
    cr_assert_eq(
        dw_trimmed(&w, DW_AUDIT_STREAM, AW_ROLE_AUDIT, "yesterday", "1-0"),
        AW_ERR_INVALID);
    cr_assert_eq(dw_trimmed(&w, DW_AUDIT_STREAM, AW_ROLE_AUDIT, NULL, "1-0"),
                 AW_ERR_INVALID);
    cr_assert_eq(dw_alerts(&w, NULL, NULL, NULL, 0), 0);
}

Test(integrity, caracal_anomaly_events_raise_medium_alerts)
{
    dw_audit jti = {.id = "an-1",
                    .type = "jti_collision",
                    .request = "req-1",
                    .decision = "deny",
                    .evaluation_status = "anomaly"};
    dw_audit replay = {.id = "an-2",
                       .type = "replay_detected",
                       .request = "req-2",
                       .decision = "deny",
                       .evaluation_status = "anomaly"};
    dw_audit ordinary = {
        .id = "st-1", .type = "step_up_issued", .request = "req-3"};
    dw_feed_audit(&w, &jti);
    dw_feed_audit(&w, &replay);
    dw_feed_audit(&w, &ordinary);
    dw_alert a = dw_the_alert(&w, AW_ALERT_CARACAL_ANOMALY, "req-1");
    cr_assert_str_eq(a.severity, "medium");
    cr_assert_str_eq(a.anchor, "an-1");
    cr_assert_not_null(strstr(a.summary, "jti_collision"), "%s", a.summary);
    cr_assert_eq(dw_alerts(&w, AW_ALERT_CARACAL_ANOMALY, "req-2", NULL, 0), 1);
    cr_assert_eq(dw_alerts(&w, AW_ALERT_CARACAL_ANOMALY, NULL, NULL, 0), 2);
}

/* Identity is (id, occurred_at): a copy altered at one time is compared
 * with the version of that time, not with the id's other events. */
Test(integrity, tampering_names_the_version_of_the_same_time)
{
    dw_audit early = {.id = "req-9",
                      .type = "control.invoke",
                      .request = "req-9",
                      .occurred_ms = 0,
                      .arrival_ms = 0};
    dw_audit later = {.id = "req-9",
                      .type = "control.invoke",
                      .request = "req-9",
                      .variant = "later",
                      .occurred_ms = DW_S(60),
                      .arrival_ms = DW_S(60)};
    dw_audit altered = later;
    altered.variant = "altered";
    altered.arrival_ms = DW_S(61);
    cr_assert_eq(dw_feed_audit(&w, &early), AW_PUT_INSERTED);
    cr_assert_eq(dw_feed_audit(&w, &later), AW_PUT_INSERTED,
                 "another time, another event");
    cr_assert_eq(dw_alerts(&w, AW_ALERT_TAMPERED_ON_REDELIVERY, NULL, NULL, 0),
                 0);
    cr_assert_eq(dw_feed_audit(&w, &altered), AW_PUT_CONFLICT);
    dw_alert a = dw_the_alert(&w, AW_ALERT_TAMPERED_ON_REDELIVERY, NULL);
    cr_assert_not_null(
        strstr(a.evidence, "\"entry:" DW_AUDIT_STREAM "/1779364860000-2\""),
        "the stored version of that time: %s", a.evidence);
    cr_assert_null(strstr(a.evidence, "/1779364800000-1\""), "%s", a.evidence);
}
