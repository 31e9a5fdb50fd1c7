/* revocation.c -- decoding the three revocation streams (DESIGN §2.2) into
 * one shape: a zone, a time, and the anchors whose authority ended (or was
 * suspended, or resumed) then.
 *
 *   caracal.sessions.revoke        zone_id, session_id (authority record),
 *                                  agent_session_id?, delegation_edge_id?,
 *                                  reason?; each named anchor is revoked.
 *                                  Some entries carry only an edge.
 *   caracal.agents.lifecycle       event terminate|suspend|resume on
 *                                  agent_session_id; any other event is
 *                                  BAD_VALUE (it cannot be placed).
 *   caracal.delegations.invalidate event edge_revoke, edge_id, and
 *                                  affected_edges? -- a JSON array of strings
 *                                  or a comma-separated list; every edge
 *                                  named is revoked.
 *
 * None of them carries a timestamp: the revocation time is the entry id's
 * milliseconds, which Redis assigns on arrival. zone_id is required
 * everywhere; an entry that names no anchor is MISSING_FIELD, since a
 * revocation of nothing is a producer bug worth seeing. Other fields (sid,
 * root_sid, grant_id, outbox_id, dedupe_key, parent_id, epoch) are kept in
 * the raw entry and covered by `_sig`, but not decoded.
 *
 * Most entries name one to three anchors and decode with the final block as
 * the only allocation; an edge_revoke with a long affected_edges list takes
 * one more, sized to the list.
 */
#include "event/event.h"
#include "event/decode.h"

#include <stdlib.h>
#include <string.h>

#define LOCAL_ANCHORS 4

typedef struct revocation_draft {
    aw_revocation_set set;      /* zone, reason and items come later */
    aw_bytes zone, reason;
    aw_revocation_action action;
    aw_anchor_list anchors;
    aw_anchor_ref local[LOCAL_ANCHORS];
    aw_anchor_ref *heap;        /* when more anchors than local */
    cJSON *edges_json;          /* a parsed affected_edges array */
} revocation_draft;

/* Room for up to `max` anchors. */
static int reserve_anchors(revocation_draft *d, size_t max, aw_error *err)
{
    aw_anchor_ref *items = d->local;
    if (max > LOCAL_ANCHORS) {
        items = d->heap = malloc(max * sizeof *items);
        if (items == NULL)
            return aw_error_set(err, AW_ERR_NOMEM,
                                "out of memory for %zu anchors", max);
    }
    d->anchors = (aw_anchor_list){items, 0, max};
    return AW_OK;
}

/* zone_id (required) and reason (optional), the fields every role has. */
static int read_zone_reason(const aw_bytes *zone, const aw_bytes *reason,
                            revocation_draft *d, aw_error *err)
{
    int rc = aw_flat_required_text(zone, "zone_id", AW_MAX_ID_BYTES, &d->zone,
                                   err);
    if (rc != AW_OK)
        return rc;
    return aw_flat_text(reason, "reason", AW_MAX_VALUE_BYTES, &d->reason, err);
}

static int add_anchor(revocation_draft *d, const aw_bytes *value,
                      const char *name, aw_anchor_kind kind, aw_error *err)
{
    aw_bytes id;
    int rc = aw_flat_text(value, name, AW_MAX_ID_BYTES, &id, err);
    if (rc == AW_OK)
        aw_anchor_list_add(&d->anchors, kind, id);
    return rc;
}

static int read_session_revoke(const aw_raw_entry *entry, revocation_draft *d,
                               aw_error *err)
{
    static const char *const names[] = {
        "zone_id", "reason", "session_id", "agent_session_id",
        "delegation_edge_id",
    };
    static const aw_anchor_kind kinds[] = {
        AW_ANCHOR_AUTHORITY_RECORD, AW_ANCHOR_AGENT_SESSION,
        AW_ANCHOR_DELEGATION_EDGE,
    };
    const aw_bytes *f[5];
    int rc = aw_flat_pick(entry, names, 5, f, err);
    if (rc != AW_OK || (rc = read_zone_reason(f[0], f[1], d, err)) != AW_OK ||
        (rc = reserve_anchors(d, 3, err)) != AW_OK)
        return rc;
    d->action = AW_ACTION_REVOKE;
    for (int i = 0; i < 3; i++)
        if ((rc = add_anchor(d, f[2 + i], names[2 + i], kinds[i], err)) != AW_OK)
            return rc;
    return AW_OK;
}

/* The `event` field: required, and one of the values the role knows. */
static int read_event(const aw_bytes *value, const char *const *events,
                      const aw_revocation_action *actions, size_t n,
                      aw_revocation_action *action, aw_error *err)
{
    char q[AW_QUOTE_SIZE];
    aw_bytes event;
    int rc = aw_flat_required_text(value, "event", AW_MAX_ID_BYTES, &event,
                                   err);
    if (rc != AW_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (event.len == strlen(events[i]) &&
            memcmp(event.ptr, events[i], event.len) == 0) {
            *action = actions[i];
            return AW_OK;
        }
    }
    return aw_error_reject(err, AW_REJECT_BAD_VALUE,
                           "event \"%s\" is not a revocation this stream "
                           "carries", aw_quote(event.ptr, event.len, q));
}

static int read_lifecycle(const aw_raw_entry *entry, revocation_draft *d,
                          aw_error *err)
{
    static const char *const names[] = {"zone_id", "reason", "event",
                                        "agent_session_id"};
    static const char *const events[] = {"terminate", "suspend", "resume"};
    static const aw_revocation_action actions[] = {
        AW_ACTION_REVOKE, AW_ACTION_SUSPEND, AW_ACTION_RESUME};
    const aw_bytes *f[4];
    int rc = aw_flat_pick(entry, names, 4, f, err);
    if (rc != AW_OK || (rc = read_zone_reason(f[0], f[1], d, err)) != AW_OK ||
        (rc = read_event(f[2], events, actions, 3, &d->action, err)) != AW_OK ||
        (rc = reserve_anchors(d, 1, err)) != AW_OK)
        return rc;
    return add_anchor(d, f[3], names[3], AW_ANCHOR_AGENT_SESSION, err);
}

/* affected_edges as a JSON array: kept parsed in d->edges_json. */
static int parse_edges_json(aw_bytes text, revocation_draft *d, size_t *count,
                            aw_error *err)
{
    int rc = aw_json_validate(text.ptr, text.len, err);
    if (rc != AW_OK) {
        aw_error_prefix(err, "affected_edges");
        return rc;
    }
    d->edges_json = cJSON_ParseWithLength(text.ptr, text.len);
    if (d->edges_json == NULL)
        return aw_error_set(err, AW_ERR_NOMEM,
                            "out of memory parsing affected_edges");
    if (!cJSON_IsArray(d->edges_json))
        return aw_error_reject(err, AW_REJECT_WRONG_TYPE,
                               "affected_edges: expected an array");
    *count = (size_t)cJSON_GetArraySize(d->edges_json);
    return AW_OK;
}

static int add_json_edges(revocation_draft *d, aw_error *err)
{
    for (const cJSON *e = d->edges_json->child; e != NULL; e = e->next) {
        aw_bytes id;
        int rc = cJSON_IsString(e)
                     ? aw_json_text(e, "affected_edges[]", AW_MAX_ID_BYTES,
                                    &id, err)
                     : aw_error_reject(err, AW_REJECT_WRONG_TYPE,
                                       "affected_edges: expected strings");
        if (rc != AW_OK)
            return rc;
        aw_anchor_list_add(&d->anchors, AW_ANCHOR_DELEGATION_EDGE, id);
    }
    return AW_OK;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* "e1, e2,e3": every non-empty item, spaces trimmed. */
static int add_listed_edges(revocation_draft *d, aw_bytes text, aw_error *err)
{
    const char *p = text.ptr, *end = text.ptr + text.len;
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *a = p, *b = comma ? comma : end;
        while (a < b && is_blank(*a))
            a++;
        while (b > a && is_blank(b[-1]))
            b--;
        if (b - a > AW_MAX_ID_BYTES)
            return aw_error_reject(err, AW_REJECT_OVERSIZED,
                                   "affected_edges: an edge id of %zu bytes, "
                                   "at most %d allowed", (size_t)(b - a),
                                   AW_MAX_ID_BYTES);
        aw_anchor_list_add(&d->anchors, AW_ANCHOR_DELEGATION_EDGE,
                           (aw_bytes){a, (size_t)(b - a)});
        if (comma == NULL)
            return AW_OK;
        p = comma + 1;
    }
}

static int read_edge_revoke(const aw_raw_entry *entry, revocation_draft *d,
                            aw_error *err)
{
    static const char *const names[] = {"zone_id", "reason", "event",
                                        "edge_id", "affected_edges"};
    static const char *const events[] = {"edge_revoke"};
    static const aw_revocation_action actions[] = {AW_ACTION_REVOKE};
    const aw_bytes *f[5];
    aw_bytes edges;
    int rc = aw_flat_pick(entry, names, 5, f, err);
    if (rc != AW_OK || (rc = read_zone_reason(f[0], f[1], d, err)) != AW_OK ||
        (rc = read_event(f[2], events, actions, 1, &d->action, err)) != AW_OK ||
        (rc = aw_flat_text(f[4], "affected_edges", AW_MAX_VALUE_BYTES, &edges,
                           err)) != AW_OK)
        return rc;

    size_t start = 0, count = 0;
    while (start < edges.len && is_blank(edges.ptr[start]))
        start++;
    bool as_json = start < edges.len && edges.ptr[start] == '[';
    if (as_json) {
        rc = parse_edges_json(edges, d, &count, err);
    } else if (edges.ptr != NULL) {
        count = 1;
        for (size_t i = 0; i < edges.len; i++)
            count += edges.ptr[i] == ',';
    }
    if (rc != AW_OK || (rc = reserve_anchors(d, 1 + count, err)) != AW_OK ||
        (rc = add_anchor(d, f[3], names[3], AW_ANCHOR_DELEGATION_EDGE, err)))
        return rc;
    if (as_json)
        return add_json_edges(d, err);
    return edges.ptr ? add_listed_edges(d, edges, err) : AW_OK;
}

static int revocation_finish(revocation_draft *d, aw_revocation_set **out,
                             aw_error *err)
{
    size_t n = d->anchors.n;
    aw_block_string local_slots[2 + LOCAL_ANCHORS];
    aw_block_string *slots = local_slots;
    if (n > LOCAL_ANCHORS) {
        slots = malloc((2 + n) * sizeof *slots);
        if (slots == NULL)
            return aw_error_set(err, AW_ERR_NOMEM,
                                "out of memory for %zu revocations", n);
    }
    aw_block block;
    aw_block_init(&block, slots, 2 + n);
    aw_block_add(&block, offsetof(aw_revocation_set, zone_id), d->zone);
    aw_block_add(&block, offsetof(aw_revocation_set, reason), d->reason);
    aw_block_add_anchor_ids(&block,
                            sizeof(aw_revocation_set) +
                                offsetof(aw_revocation, anchor),
                            sizeof(aw_revocation), &d->anchors);
    aw_revocation_set *set = aw_block_alloc(
        &block, sizeof(aw_revocation_set) + n * sizeof(aw_revocation));
    int rc = AW_OK;
    if (set == NULL) {
        rc = aw_error_set(err, AW_ERR_NOMEM,
                          "out of memory for a decoded revocation");
    } else {
        *set = d->set;
        set->n = n;
        set->items = (aw_revocation *)(set + 1);
        for (size_t i = 0; i < n; i++)
            set->items[i] = (aw_revocation){
                .anchor = {d->anchors.items[i].kind, NULL},
                .action = d->action,
            };
        aw_block_place(&block, set);
        *out = set;
    }
    if (slots != local_slots)
        free(slots);
    return rc;
}

int aw_event_decode_revocation(aw_stream_role role, const aw_raw_entry *entry,
                               aw_hmac_key *key, aw_revocation_set **out,
                               aw_error *err)
{
    int (*read)(const aw_raw_entry *, revocation_draft *, aw_error *);
    switch (role) {
    case AW_ROLE_SESSION_REVOKE: read = read_session_revoke; break;
    case AW_ROLE_AGENT_LIFECYCLE: read = read_lifecycle; break;
    case AW_ROLE_DELEGATION_INVALIDATE: read = read_edge_revoke; break;
    default:
        *out = NULL;
        return aw_error_set(err, AW_ERR, "stream role %s carries no "
                            "revocations", aw_stream_role_name(role));
    }
    *out = NULL;
    revocation_draft d = {0};
    int rc = aw_stream_entry_admit(entry, key, &d.set.is_signed, err);
    if (rc == AW_OK)
        rc = aw_entry_time_ns(entry, &d.set.at_ns, err);
    if (rc == AW_OK)
        rc = read(entry, &d, err);
    if (rc == AW_OK && d.anchors.n == 0)
        rc = aw_error_reject(err, AW_REJECT_MISSING_FIELD,
                             "the entry names no session, agent session or "
                             "delegation edge");
    if (rc == AW_OK)
        rc = revocation_finish(&d, out, err);
    free(d.heap);
    cJSON_Delete(d.edges_json);
    return rc;
}

void aw_revocation_set_free(aw_revocation_set *set)
{
    free(set);
}
