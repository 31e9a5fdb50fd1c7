/* test_event_names.c -- the names auditwatch stores in the index and users
 * type on the command line map one-to-one onto the model's values. */
#include "event/event.h"

#include <criterion/criterion.h>
#include <string.h>

Test(event_names, every_reject_reason_has_a_distinct_stable_name)
{
    for (int r = 0; r < AW_REJECT_REASON_COUNT; r++) {
        const char *name = aw_reject_reason_name((aw_reject_reason)r);
        cr_assert(name != NULL && name[0] != '\0');
        cr_expect_eq(aw_reject_reason_from_name(name), (aw_reject_reason)r,
                     "%s", name);
        for (int o = 0; o < r; o++)
            cr_expect_str_neq(name, aw_reject_reason_name((aw_reject_reason)o));
    }
    cr_expect_str_eq(aw_reject_reason_name(AW_REJECT_DUPLICATE_KEY),
                     "duplicate_key");
    cr_expect_str_eq(aw_reject_reason_name(AW_REJECT_SIGNATURE_MISSING),
                     "signature_missing");
}

Test(event_names, unknown_reason_names_and_values_are_harmless)
{
    cr_expect_eq(aw_reject_reason_from_name("no_such_reason"), AW_REJECT_NONE);
    cr_expect_eq(aw_reject_reason_from_name(NULL), AW_REJECT_NONE);
    cr_expect(aw_reject_reason_name(AW_REJECT_REASON_COUNT) != NULL);
}

Test(event_names, only_the_signature_reasons_raise_signature_alerts)
{
    for (int r = 0; r < AW_REJECT_REASON_COUNT; r++)
        cr_expect_eq(aw_reject_reason_is_signature((aw_reject_reason)r),
                     r == AW_REJECT_SIGNATURE_MISSING ||
                         r == AW_REJECT_SIGNATURE_INVALID ||
                         r == AW_REJECT_AMBIGUOUS_SIGNED_FIELD,
                     "%s", aw_reject_reason_name((aw_reject_reason)r));
}

Test(event_names, stream_roles_round_trip_and_default_to_caracal_streams)
{
    for (int r = 0; r < AW_ROLE_COUNT; r++)
        cr_expect_eq(
            aw_stream_role_from_name(aw_stream_role_name((aw_stream_role)r)),
            r);
    cr_expect_str_eq(aw_stream_role_default_stream(AW_ROLE_AUDIT),
                     "caracal.audit.events");
    cr_expect_str_eq(aw_stream_role_default_stream(AW_ROLE_SESSION_REVOKE),
                     "caracal.sessions.revoke");
    cr_expect_str_eq(aw_stream_role_default_stream(AW_ROLE_AGENT_LIFECYCLE),
                     "caracal.agents.lifecycle");
    cr_expect_str_eq(
        aw_stream_role_default_stream(AW_ROLE_DELEGATION_INVALIDATE),
        "caracal.delegations.invalidate");
    cr_expect_str_eq(aw_stream_role_default_stream(AW_ROLE_CALLS),
                     "auditwatch.calls");
    cr_expect_eq(aw_stream_role_from_name("sessions"), AW_ROLE_SESSION_REVOKE);
    cr_expect_eq(aw_stream_role_from_name("Audit"), -1);
    cr_expect_eq(aw_stream_role_from_name(NULL), -1);
}

Test(event_names, dead_letter_streams_follow_their_origin_unless_named)
{
    const char *given[AW_ROLE_COUNT] = {
        [AW_ROLE_AUDIT] = "tenant-a.audit",
        [AW_ROLE_SESSION_REVOKE] = "tenant-a.revoke",
        [AW_ROLE_AGENT_LIFECYCLE_DEAD] = "lifecycle.graveyard"};
    aw_stream_names names;
    aw_error err = {0};
    cr_assert(aw_stream_names_resolve(given, &names, &err) == AW_OK, "%s",
              err.msg);
    cr_expect_str_eq(names.of[AW_ROLE_AUDIT_DLQ], "tenant-a.audit.dlq");
    cr_expect_str_eq(names.of[AW_ROLE_SESSION_REVOKE_DEAD],
                     "tenant-a.revoke.dead");
    cr_expect_str_eq(names.of[AW_ROLE_AGENT_LIFECYCLE],
                     "caracal.agents.lifecycle");
    cr_expect_str_eq(names.of[AW_ROLE_AGENT_LIFECYCLE_DEAD],
                     "lifecycle.graveyard", "a name given wins");
    cr_expect_str_eq(names.of[AW_ROLE_DELEGATION_INVALIDATE_DEAD],
                     "caracal.delegations.invalidate.dead");

    cr_assert(aw_stream_names_resolve(NULL, &names, &err) == AW_OK);
    for (int r = 0; r < AW_ROLE_COUNT; r++)
        cr_expect_str_eq(names.of[r],
                         aw_stream_role_default_stream((aw_stream_role)r));
}

Test(event_names, a_stream_name_too_long_for_its_dead_letter_is_refused)
{
    char longest[AW_MAX_STREAM_NAME_BYTES];
    memset(longest, 'a', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0';
    const char *given[AW_ROLE_COUNT] = {[AW_ROLE_AUDIT] = longest};
    aw_stream_names names;
    aw_error err = {0};
    cr_expect(aw_stream_names_resolve(given, &names, &err) == AW_ERR_INVALID);
    cr_expect(strstr(err.msg, "audit_dlq"), "%s", err.msg);
    longest[sizeof longest - 5] = '\0';
    cr_expect(aw_stream_names_resolve(given, &names, &err) == AW_OK, "%s",
              err.msg);
    cr_expect_eq(strlen(names.of[AW_ROLE_AUDIT_DLQ]), sizeof longest - 1);
}

Test(event_names, anchor_kinds_and_actions_round_trip)
{
    aw_anchor_kind kinds[] = {AW_ANCHOR_AUTHORITY_RECORD,
                              AW_ANCHOR_AGENT_SESSION,
                              AW_ANCHOR_DELEGATION_EDGE};
    for (size_t i = 0; i < 3; i++)
        cr_expect_eq(aw_anchor_kind_from_name(aw_anchor_kind_name(kinds[i])),
                     kinds[i]);
    cr_expect_str_eq(aw_anchor_kind_name(AW_ANCHOR_AGENT_SESSION),
                     "agent_session");
    cr_expect_eq(aw_anchor_kind_from_name("session"), 0);
    cr_expect_str_eq(aw_anchor_kind_name((aw_anchor_kind)0), "unknown");

    aw_revocation_action actions[] = {AW_ACTION_REVOKE, AW_ACTION_SUSPEND,
                                      AW_ACTION_RESUME};
    for (size_t i = 0; i < 3; i++)
        cr_expect_eq(aw_revocation_action_from_name(
                         aw_revocation_action_name(actions[i])),
                     actions[i]);
    cr_expect_eq(aw_revocation_action_from_name("terminate"), 0);
    cr_expect_str_eq(aw_revocation_action_name((aw_revocation_action)9),
                     "unknown");
}

Test(event_names, only_allow_and_consumed_grant_access)
{
    cr_expect(aw_decision_grants("allow"));
    cr_expect(aw_decision_grants("consumed"));
    const char *others[] = {"deny",  "pending", "approved", "rejected",
                            "Allow", "",        NULL};
    for (size_t i = 0; i < sizeof others / sizeof *others; i++)
        cr_expect(!aw_decision_grants(others[i]), "%s",
                  others[i] ? others[i] : "NULL");
}

Test(event_names, only_2xx_and_3xx_count_as_served)
{
    cr_expect(!aw_status_is_success(199));
    cr_expect(aw_status_is_success(200));
    cr_expect(aw_status_is_success(302));
    cr_expect(aw_status_is_success(399));
    cr_expect(!aw_status_is_success(400));
    cr_expect(!aw_status_is_success(0));
    cr_expect(!aw_status_is_success(499));
}
