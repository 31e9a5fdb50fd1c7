/* names.c -- the small vocabularies of the event model: stream roles and
 * their default stream names, anchor kinds, revocation actions, and the
 * decision and status values the detectors act on.
 *
 * Each name here is stored in the index or typed by users (--stream
 * ROLE=NAME, query filters), so it is part of the interface: add names,
 * never rename them. Look-ups are exact and case-sensitive, like Caracal's
 * own values.
 */
#include "event/event.h"
#include "event/decode.h"

#include <stdio.h>
#include <string.h>

/* A dead-letter role names its origin and the suffix Caracal appends to the
 * origin's name: the audit service writes "<audit stream>.dlq", the STS,
 * Gateway and SDK "<stream>.dead" (DESIGN §2.4). */
static const struct {
    const char *name;
    const char *stream;
    int origin; /* -1: not a dead-letter role */
    const char *suffix;
} roles[AW_ROLE_COUNT] = {
    [AW_ROLE_AUDIT] = {"audit", "caracal.audit.events", -1, NULL},
    [AW_ROLE_SESSION_REVOKE] = {"sessions", "caracal.sessions.revoke", -1,
                                NULL},
    [AW_ROLE_AGENT_LIFECYCLE] = {"lifecycle", "caracal.agents.lifecycle", -1,
                                 NULL},
    [AW_ROLE_DELEGATION_INVALIDATE] = {"delegations",
                                       "caracal.delegations.invalidate", -1,
                                       NULL},
    [AW_ROLE_CALLS] = {"calls", "auditwatch.calls", -1, NULL},
    [AW_ROLE_AUDIT_DLQ] = {"audit_dlq", "caracal.audit.events.dlq",
                           AW_ROLE_AUDIT, ".dlq"},
    [AW_ROLE_SESSION_REVOKE_DEAD] = {"sessions_dead",
                                     "caracal.sessions.revoke.dead",
                                     AW_ROLE_SESSION_REVOKE, ".dead"},
    [AW_ROLE_AGENT_LIFECYCLE_DEAD] = {"lifecycle_dead",
                                      "caracal.agents.lifecycle.dead",
                                      AW_ROLE_AGENT_LIFECYCLE, ".dead"},
    [AW_ROLE_DELEGATION_INVALIDATE_DEAD] =
        {"delegations_dead", "caracal.delegations.invalidate.dead",
         AW_ROLE_DELEGATION_INVALIDATE, ".dead"},
};

const char *aw_stream_role_name(aw_stream_role role)
{
    if ((unsigned)role >= AW_ROLE_COUNT)
        return "unknown";
    return roles[role].name;
}

const char *aw_stream_role_default_stream(aw_stream_role role)
{
    if ((unsigned)role >= AW_ROLE_COUNT)
        return "unknown";
    return roles[role].stream;
}

int aw_stream_role_from_name(const char *name)
{
    if (name == NULL)
        return -1;
    for (int r = 0; r < AW_ROLE_COUNT; r++)
        if (strcmp(roles[r].name, name) == 0)
            return r;
    return -1;
}

int aw_stream_role_dead_letter_origin(aw_stream_role role)
{
    if ((unsigned)role >= AW_ROLE_COUNT)
        return -1;
    return roles[role].origin;
}

static int copy_name(aw_stream_names *out, int role, const char *name,
                     const char *suffix, aw_error *err)
{
    size_t cap = sizeof out->of[role];
    int n = snprintf(out->of[role], cap, "%s%s", name, suffix);
    if (n < 0 || (size_t)n >= cap)
        return aw_error_set(err, AW_ERR_INVALID,
                            "the %s stream's name is longer than %zu bytes",
                            roles[role].name, cap - 1);
    return AW_OK;
}

int aw_stream_names_resolve(const char *const given[AW_ROLE_COUNT],
                            aw_stream_names *out, aw_error *err)
{
    int rc;
    /* Origins first: every dead-letter role comes after its origin. */
    for (int r = 0; r < AW_ROLE_COUNT; r++) {
        const char *name = given ? given[r] : NULL;
        int origin = roles[r].origin;
        if (name)
            rc = copy_name(out, r, name, "", err);
        else if (origin >= 0)
            rc = copy_name(out, r, out->of[origin], roles[r].suffix, err);
        else
            rc = copy_name(out, r, roles[r].stream, "", err);
        if (rc != AW_OK)
            return rc;
    }
    return AW_OK;
}

/* Indexed by the enum value; index 0 is "no such value", for which the
 * name functions return "unknown" (callers print names unchecked) and the
 * look-ups return 0. */
static const char *const anchor_names[] = {
    [AW_ANCHOR_AUTHORITY_RECORD] = "authority_record",
    [AW_ANCHOR_AGENT_SESSION] = "agent_session",
    [AW_ANCHOR_DELEGATION_EDGE] = "delegation_edge",
};

static const char *const action_names[] = {
    [AW_ACTION_REVOKE] = "revoke",
    [AW_ACTION_SUSPEND] = "suspend",
    [AW_ACTION_RESUME] = "resume",
};

static const char *name_of(const char *const *names, size_t n, unsigned v)
{
    return v > 0 && v < n ? names[v] : "unknown";
}

static unsigned value_of(const char *const *names, size_t n, const char *name)
{
    if (name == NULL)
        return 0;
    for (unsigned v = 1; v < n; v++)
        if (strcmp(names[v], name) == 0)
            return v;
    return 0;
}

const char *aw_anchor_kind_name(aw_anchor_kind kind)
{
    return name_of(anchor_names, AW_COUNT_OF(anchor_names), kind);
}

aw_anchor_kind aw_anchor_kind_from_name(const char *name)
{
    return (aw_anchor_kind)value_of(anchor_names, AW_COUNT_OF(anchor_names),
                                    name);
}

const char *aw_revocation_action_name(aw_revocation_action action)
{
    return name_of(action_names, AW_COUNT_OF(action_names), action);
}

aw_revocation_action aw_revocation_action_from_name(const char *name)
{
    return (aw_revocation_action)value_of(action_names,
                                          AW_COUNT_OF(action_names), name);
}

bool aw_decision_grants(const char *decision)
{
    return decision != NULL && (strcmp(decision, "allow") == 0 ||
                                strcmp(decision, "consumed") == 0);
}

bool aw_status_is_success(int status)
{
    return status >= 200 && status < 400;
}
