/* revocation.c -- decoding the three revocation streams (DESIGN §2.2, §2.4)
 * into one shape: a zone, a time, and the anchors whose authority ended (or
 * was suspended, or resumed) then.
 *
 *   caracal.sessions.revoke        zone_id, session_id (authority record),
 *                                  agent_session_id?, delegation_edge_id?
 *                                  (or its alias edge_id, as the Gateway
 *                                  reads it), reason?. The authority record
 *                                  and the edge are revoked for good. The
 *                                  agent session is only suspended: Caracal
 *                                  writes this entry for a suspend as well
 *                                  as for a terminate, and a later lifecycle
 *                                  `resume` makes the agent session usable
 *                                  again (a terminate is final through its
 *                                  own lifecycle entry). Some entries carry
 *                                  only an edge.
 *   caracal.agents.lifecycle       event terminate|suspend|resume on
 *                                  agent_session_id; `spawn` is ordinary
 *                                  traffic and names nothing revoked; any
 *                                  other event is BAD_VALUE (it cannot be
 *                                  placed). parent_id (the string "null"
 *                                  for a root) is not needed.
 *   caracal.delegations.invalidate edge_revoke: edge_id, and
 *                                  affected_edges? -- a JSON array of
 *                                  strings, a comma-separated list, or a
 *                                  count (the coordinator writes the number
 *                                  of transitively revoked edges, which it
 *                                  never names); edge_expire: edge_ids, a
 *                                  JSON array written as a string;
 *                                  edge_create names nothing revoked.
 *                                  epoch, when there, is the zone's graph
 *                                  epoch after the change.
 *
 * None of them carries a timestamp: the revocation time is the entry id's
 * milliseconds, which Redis assigns on arrival. The coordinator's outbox
 * delivers at least once; a redelivery shares the first's dedupe_key and
 * outbox_id, which the set carries as delivery_id so that the store can
 * keep the earliest delivery's time. zone_id is required everywhere; an
 * entry that must name an anchor and names none is MISSING_FIELD, since a
 * revocation of nothing is a producer bug worth seeing. Other fields (sid,
 * root_sid, grant_id, parent_id, application_id) are kept in the raw entry
 * and covered by `_sig`, but not decoded.
 *
 * Most entries name one to three anchors and decode with the final block as
 * the only allocation; an edge list longer than a few takes one more, sized
 * to the list.
 */
#include "event/event.h"
#include "event/decode.h"

#include <stdlib.h>
#include <string.h>

#define LOCAL_ANCHORS 4

typedef struct revocation_draft {
    aw_revocation_set set; /* zone, reason and items come later */
    aw_bytes zone, reason, delivery;
    aw_revocation_action action;
    bool agent_session_suspends; /* a session revoke: see the top */
    bool needs_anchor;           /* naming nothing is MISSING_FIELD */
    aw_anchor_list anchors;
    aw_anchor_ref local[LOCAL_ANCHORS];
    aw_anchor_ref *heap;   /* when more anchors than local */
    aw_json_doc edges_doc; /* an affected_edges JSON array, when there */
    aw_json edges_json;    /* its value; type ABSENT when not JSON */
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

/* The fields every role has: zone_id (required), reason, and the outbox
 * delivery's identity (dedupe_key, else outbox_id). */
enum { F_ZONE, F_REASON, F_DEDUPE, F_OUTBOX, F_COMMON };
#define COMMON_NAMES "zone_id", "reason", "dedupe_key", "outbox_id"

static int read_common(const aw_bytes *const *f, revocation_draft *d,
                       aw_error *err)
{
    int rc = aw_flat_required_text(f[F_ZONE], "zone_id", AW_MAX_ID_BYTES,
                                   &d->zone, err);
    if (rc == AW_OK)
        rc = aw_flat_text(f[F_REASON], "reason", AW_MAX_VALUE_BYTES, &d->reason,
                          err);
    if (rc == AW_OK)
        rc = aw_flat_text(f[F_DEDUPE], "dedupe_key", AW_MAX_ID_BYTES,
                          &d->delivery, err);
    if (rc == AW_OK && (d->delivery.ptr == NULL || d->delivery.len == 0))
        rc = aw_flat_text(f[F_OUTBOX], "outbox_id", AW_MAX_ID_BYTES,
                          &d->delivery, err);
    if (rc == AW_OK && d->delivery.len == 0)
        d->delivery.ptr = NULL;
    return rc;
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

static const char *const session_revoke_names[] = {
    COMMON_NAMES,         "session_id", "agent_session_id",
    "delegation_edge_id", "edge_id",
};

static int read_session_revoke(const aw_raw_entry *entry, revocation_draft *d,
                               aw_error *err)
{
    static const aw_anchor_kind kinds[] = {
        AW_ANCHOR_AUTHORITY_RECORD,
        AW_ANCHOR_AGENT_SESSION,
        AW_ANCHOR_DELEGATION_EDGE,
        AW_ANCHOR_DELEGATION_EDGE,
    };
    const aw_bytes *f[F_COMMON + 4];
    int rc = aw_flat_pick(entry, session_revoke_names, F_COMMON + 4, f, err);
    if (rc != AW_OK || (rc = read_common(f, d, err)) != AW_OK ||
        (rc = reserve_anchors(d, 3, err)) != AW_OK)
        return rc;
    d->action = AW_ACTION_REVOKE;
    d->agent_session_suspends = true;
    d->needs_anchor = true;
    /* edge_id only stands in when delegation_edge_id is absent, as in
     * Caracal's Gateway (services/gateway/internal/revocations.go). */
    const aw_bytes *edge = f[F_COMMON + 2];
    if (edge == NULL || edge->len == 0)
        f[F_COMMON + 2] = f[F_COMMON + 3];
    for (int i = 0; i < 3; i++)
        if ((rc = add_anchor(d, f[F_COMMON + i],
                             session_revoke_names[F_COMMON + i], kinds[i],
                             err)) != AW_OK)
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
    int rc =
        aw_flat_required_text(value, "event", AW_MAX_ID_BYTES, &event, err);
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
                           "carries",
                           aw_quote(event.ptr, event.len, q));
}

/* An `event` that ends no authority: the entry is indexed, names nothing. */
#define ACTION_NONE ((aw_revocation_action)0)

static const char *const lifecycle_names[] = {COMMON_NAMES, "event",
                                              "agent_session_id"};

static int read_lifecycle(const aw_raw_entry *entry, revocation_draft *d,
                          aw_error *err)
{
    static const char *const events[] = {"terminate", "suspend", "resume",
                                         "spawn"};
    static const aw_revocation_action actions[] = {
        AW_ACTION_REVOKE, AW_ACTION_SUSPEND, AW_ACTION_RESUME, ACTION_NONE};
    const aw_bytes *f[F_COMMON + 2];
    int rc = aw_flat_pick(entry, lifecycle_names, F_COMMON + 2, f, err);
    if (rc != AW_OK || (rc = read_common(f, d, err)) != AW_OK ||
        (rc = read_event(f[F_COMMON], events, actions, 4, &d->action, err)) !=
            AW_OK ||
        (rc = reserve_anchors(d, 1, err)) != AW_OK || d->action == ACTION_NONE)
        return rc;
    d->needs_anchor = true;
    return add_anchor(d, f[F_COMMON + 1], lifecycle_names[F_COMMON + 1],
                      AW_ANCHOR_AGENT_SESSION, err);
}

/* An edge list as a JSON array (field `what`): kept in d->edges_json. */
static int parse_edges_json(aw_bytes text, const char *what,
                            revocation_draft *d, size_t *count, aw_error *err)
{
    aw_json root;
    int rc = aw_json_open(&d->edges_doc, text.ptr, text.len, &root, err);
    if (rc != AW_OK) {
        aw_error_prefix(err, what);
        return rc;
    }
    if (root.type != AW_JSON_ARRAY)
        return aw_error_reject(err, AW_REJECT_WRONG_TYPE,
                               "%s: expected an array", what);
    d->edges_json = root;
    *count = aw_json_count(&root);
    return AW_OK;
}

static int add_json_edges(revocation_draft *d, const char *what, aw_error *err)
{
    aw_json_iter it;
    aw_json e;
    aw_json_iter_init(&it, &d->edges_json);
    while (aw_json_next_element(&it, &e)) {
        aw_bytes id;
        int rc = e.type == AW_JSON_STRING
                     ? aw_json_text(&e, what, AW_MAX_ID_BYTES, &id, err)
                     : aw_error_reject(err, AW_REJECT_WRONG_TYPE,
                                       "%s: expected strings", what);
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
                                   "at most %d allowed",
                                   (size_t)(b - a), AW_MAX_ID_BYTES);
        aw_anchor_list_add(&d->anchors, AW_ANCHOR_DELEGATION_EDGE,
                           (aw_bytes){a, (size_t)(b - a)});
        if (comma == NULL)
            return AW_OK;
        p = comma + 1;
    }
}

/* "12": 1 to 18 decimal digits (a count, or an epoch). */
static bool parse_count(aw_bytes text, int64_t *out)
{
    if (text.len == 0 || text.len > 18)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < text.len; i++) {
        if (text.ptr[i] < '0' || text.ptr[i] > '9')
            return false;
        v = v * 10 + (text.ptr[i] - '0');
    }
    *out = v;
    return true;
}

static int read_epoch(const aw_bytes *value, revocation_draft *d, aw_error *err)
{
    char q[AW_QUOTE_SIZE];
    aw_bytes text;
    int rc = aw_flat_text(value, "epoch", AW_MAX_ID_BYTES, &text, err);
    if (rc != AW_OK || text.ptr == NULL)
        return rc;
    if (!parse_count(text, &d->set.epoch))
        return aw_error_reject(err, AW_REJECT_BAD_VALUE,
                               "epoch \"%s\" is not a non-negative integer",
                               aw_quote(text.ptr, text.len, q));
    d->set.has_epoch = true;
    return AW_OK;
}

/* A list field of edges: a JSON array (parsed into d->edges_json), a count
 * (names nothing), or a comma-separated list (*listed, else its ptr NULL).
 * Reserves room for its edges and `extra` more; add_edges adds them. */
static int read_edge_list(const aw_bytes *value, const char *what, size_t max,
                          size_t extra, revocation_draft *d, aw_bytes *listed,
                          aw_error *err)
{
    aw_bytes edges;
    int64_t count_only;
    int rc = aw_flat_text(value, what, max, &edges, err);
    if (rc != AW_OK)
        return rc;
    size_t start = 0, count = 0;
    while (start < edges.len && is_blank(edges.ptr[start]))
        start++;
    bool as_json = start < edges.len && edges.ptr[start] == '[';
    *listed = (aw_bytes){NULL, 0};
    if (as_json) {
        rc = parse_edges_json(edges, what, d, &count, err);
    } else if (edges.ptr != NULL && !parse_count(edges, &count_only)) {
        *listed = edges;
        count = 1;
        for (size_t i = 0; i < edges.len; i++)
            count += edges.ptr[i] == ',';
    }
    if (rc != AW_OK)
        return rc;
    return reserve_anchors(d, extra + count, err);
}

static int add_edges(revocation_draft *d, const char *item_what,
                     aw_bytes listed, aw_error *err)
{
    if (d->edges_json.type == AW_JSON_ARRAY)
        return add_json_edges(d, item_what, err);
    return listed.ptr != NULL ? add_listed_edges(d, listed, err) : AW_OK;
}

static const char *const delegation_names[] = {
    COMMON_NAMES, "event", "edge_id", "affected_edges", "edge_ids", "epoch"};

static int read_delegation(const aw_raw_entry *entry, revocation_draft *d,
                           aw_error *err)
{
    enum { F_EVENT = F_COMMON, F_EDGE, F_AFFECTED, F_EDGE_IDS, F_EPOCH, F_N };
    static const char *const events[] = {"edge_revoke", "edge_expire",
                                         "edge_create"};
    /* edge_expire is told from edge_revoke by its list field, below */
    static const aw_revocation_action actions[] = {
        AW_ACTION_REVOKE, AW_ACTION_REVOKE, ACTION_NONE};
    const aw_bytes *f[F_N];
    int rc = aw_flat_pick(entry, delegation_names, F_N, f, err);
    if (rc != AW_OK || (rc = read_common(f, d, err)) != AW_OK ||
        (rc = read_event(f[F_EVENT], events, actions, 3, &d->action, err)) !=
            AW_OK ||
        (rc = read_epoch(f[F_EPOCH], d, err)) != AW_OK)
        return rc;
    if (d->action == ACTION_NONE)
        return reserve_anchors(d, 0, err);
    bool expire = f[F_EVENT]->len == strlen("edge_expire") &&
                  memcmp(f[F_EVENT]->ptr, "edge_expire", f[F_EVENT]->len) == 0;
    aw_bytes listed;
    d->needs_anchor = true; /* an expiry or revoke of no edge is a bug */
    if (expire) {
        /* edge_ids delegation_names the edges; affected_edges is their count */
        rc = read_edge_list(f[F_EDGE_IDS], "edge_ids", AW_MAX_EDGE_LIST_BYTES,
                            0, d, &listed, err);
        return rc == AW_OK ? add_edges(d, "edge_ids[]", listed, err) : rc;
    }
    if ((rc = read_edge_list(f[F_AFFECTED], "affected_edges",
                             AW_MAX_VALUE_BYTES, 1, d, &listed, err)) !=
            AW_OK ||
        (rc = add_anchor(d, f[F_EDGE], "edge_id", AW_ANCHOR_DELEGATION_EDGE,
                         err)) != AW_OK)
        return rc;
    return add_edges(d, "affected_edges[]", listed, err);
}

static int revocation_finish(revocation_draft *d, aw_revocation_set **out,
                             aw_error *err)
{
    size_t n = d->anchors.n;
    aw_block_string local_slots[3 + LOCAL_ANCHORS];
    aw_block_string *slots = local_slots;
    if (n > LOCAL_ANCHORS) {
        slots = malloc((3 + n) * sizeof *slots);
        if (slots == NULL)
            return aw_error_set(err, AW_ERR_NOMEM,
                                "out of memory for %zu revocations", n);
    }
    aw_block block;
    aw_block_init(&block, slots, 3 + n);
    aw_block_add(&block, offsetof(aw_revocation_set, zone_id), d->zone);
    aw_block_add(&block, offsetof(aw_revocation_set, reason), d->reason);
    aw_block_add(&block, offsetof(aw_revocation_set, delivery_id), d->delivery);
    aw_block_add_anchor_ids(
        &block, sizeof(aw_revocation_set) + offsetof(aw_revocation, anchor),
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
        for (size_t i = 0; i < n; i++) {
            aw_anchor_kind kind = d->anchors.items[i].kind;
            set->items[i] = (aw_revocation){
                .anchor = {kind, NULL},
                .action =
                    d->agent_session_suspends && kind == AW_ANCHOR_AGENT_SESSION
                        ? AW_ACTION_SUSPEND
                        : d->action,
            };
        }
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
    case AW_ROLE_DELEGATION_INVALIDATE: read = read_delegation; break;
    default:
        *out = NULL;
        return aw_error_set(err, AW_ERR,
                            "stream role %s carries no "
                            "revocations",
                            aw_stream_role_name(role));
    }
    *out = NULL;
    revocation_draft d = {0};
    int rc = aw_stream_entry_admit(
        entry, key, (int)role,
        role == AW_ROLE_DELEGATION_INVALIDATE ? "edge_ids" : NULL,
        AW_MAX_EDGE_LIST_BYTES, &d.set.is_signed, err);
    if (rc == AW_OK)
        rc = aw_entry_time_ns(entry, &d.set.at_ns, err);
    if (rc == AW_OK)
        rc = read(entry, &d, err);
    if (rc == AW_OK && d.needs_anchor && d.anchors.n == 0)
        rc = aw_error_reject(err, AW_REJECT_MISSING_FIELD,
                             "the entry names no session, agent session or "
                             "delegation edge");
    if (rc == AW_OK)
        rc = revocation_finish(&d, out, err);
    free(d.heap);
    aw_json_close(&d.edges_doc);
    return rc;
}

static bool listed(const char *const *names, size_t n, aw_bytes name)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(names[i]) == name.len &&
            memcmp(names[i], name.ptr, name.len) == 0)
            return true;
    return false;
}

bool aw_stream_name_matters(int role, aw_bytes name)
{
    bool is_reason = name.len == 6 && memcmp(name.ptr, "reason", 6) == 0;
    switch (role) {
    case AW_ROLE_SESSION_REVOKE:
        return !is_reason && listed(session_revoke_names,
                                    AW_COUNT_OF(session_revoke_names), name);
    case AW_ROLE_AGENT_LIFECYCLE:
        return !is_reason &&
               listed(lifecycle_names, AW_COUNT_OF(lifecycle_names), name);
    case AW_ROLE_DELEGATION_INVALIDATE:
        return !is_reason &&
               listed(delegation_names, AW_COUNT_OF(delegation_names), name);
    default: return true;
    }
}

bool aw_delivery_occurrence(const char *delivery_id, int64_t *ns)
{
    static const char *const repeatable[] = {
        "suspend:", "resume:", "agent_suspend:"};
    enum { ISO_LEN = sizeof "2026-05-21T12:00:00.000Z" - 1 };
    if (!delivery_id)
        return false;
    size_t len = strlen(delivery_id);
    bool known = false;
    for (size_t i = 0; !known && i < sizeof repeatable / sizeof *repeatable;
         i++)
        known = strncmp(delivery_id, repeatable[i], strlen(repeatable[i])) == 0;
    /* <prefix><session>:<time>: the time is the fixed-width tail. */
    if (!known || len < ISO_LEN + 1 || delivery_id[len - ISO_LEN - 1] != ':')
        return false;
    return aw_time_parse_rfc3339(delivery_id + len - ISO_LEN, ISO_LEN, ns,
                                 NULL) == AW_OK;
}

void aw_revocation_set_free(aw_revocation_set *set)
{
    free(set);
}
