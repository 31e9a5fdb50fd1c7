/* audit.c -- decoding entries of caracal.audit.events (DESIGN §2.1).
 *
 * An audit entry has flat fields `data` (one JSON object), `sig` when the
 * producer signs, and possibly `id`, `outbox_id` and `_sig` from Caracal's
 * outbox relay. The stream field `id` is not always the event id (some
 * producers put the request id there), so the event is keyed on data.id and
 * the flat `id` is never read; neither is `_sig`, which belongs to the
 * streams key, not the audit key.
 *
 * Order of checks, and why:
 *   1. `data` present, `data`/`sig` not repeated;
 *   2. with a key, `sig` must verify over the exact bytes of `data` -- before
 *      anything is parsed, so that nothing an attacker wrote is interpreted
 *      unauthenticated, and a forged entry is always signature_invalid;
 *   3. size bounds of the entry;
 *   4. aw_json_validate (UTF-8, NUL, duplicate keys, depth), then the
 *      members are read in place (json_read.c);
 *   5. the model's fields, with the type rules of decode.h.
 *
 * Fields read: from data, the id/zone/decision strings and occurred_at (any
 * RFC 3339 offset); determining_policies_json and diagnostics_json only have
 * their type checked (array or null; diagnostics an object too); from metadata_json, the Gateway's
 * request facts and the authority the event used. Statuses may be JSON
 * numbers or digit strings (some producers stringify numbers). Unknown keys
 * are tolerated. Every string is bounded: ids by AW_MAX_ID_BYTES, the
 * strings that only describe an event by AW_MAX_TEXT_BYTES.
 *
 * Anchors are collected in a fixed order -- session_id (the authority
 * record), agent_session_id, delegation_edge_id, then each delegation_chain
 * element's agent_session_id and delegation_edge_id -- each (kind, id) once;
 * an empty id names nothing.
 */
#include "event/event.h"
#include "event/decode.h"

#include <stdio.h>
#include <stdlib.h>

enum {
    D_ID,
    D_ZONE,
    D_EVENT_TYPE,
    D_REQUEST_ID,
    D_DECISION,
    D_POLICY_SET,
    D_POLICY_VERSION,
    D_MANIFEST,
    D_EVALUATION,
    D_OCCURRED_AT,
    D_METADATA,
    D_POLICIES,
    D_DIAGNOSTICS,
    D_COUNT
};
static const char *const data_names[D_COUNT] = {
    "id",
    "zone_id",
    "event_type",
    "request_id",
    "decision",
    "policy_set_id",
    "policy_set_version_id",
    "manifest_sha",
    "evaluation_status",
    "occurred_at",
    "metadata_json",
    "determining_policies_json",
    "diagnostics_json",
};

enum {
    M_APPLICATION,
    M_RESOURCE,
    M_METHOD,
    M_SUBJECT_KIND,
    M_RESULT_CLASS,
    M_ERROR_KIND,
    M_TRACE_ID,
    M_UPSTREAM_STATUS,
    M_GATEWAY_STATUS,
    M_INTERRUPTED,
    M_SESSION,
    M_AGENT_SESSION,
    M_EDGE,
    M_CHAIN,
    M_EPOCH,
    M_COUNT
};
static const char *const meta_names[M_COUNT] = {
    "application_id",
    "resource",
    "method",
    "subject_kind",
    "result_class",
    "error_kind",
    "trace_id",
    "upstream_status",
    "gateway_status",
    "revocation_interrupted",
    "session_id",
    "agent_session_id",
    "delegation_edge_id",
    "delegation_chain",
    "delegation_graph_epoch",
};

/* A string member of aw_audit_event, the JSON member it comes from, and
 * its bound: what events are keyed and paired on is an id (AW_MAX_ID_BYTES);
 * what only describes them may be longer (the Gateway's resource is the
 * client's X-Caracal-Resource header, of any length). */
typedef struct string_member {
    int slot;
    size_t at;
    const char *what;
    bool required;
    size_t max;
} string_member;

#define AT(member) offsetof(aw_audit_event, member)
#define ID_BOUND   AW_MAX_ID_BYTES
#define TEXT_BOUND AW_MAX_TEXT_BYTES

static const string_member data_strings[] = {
    {D_ID, AT(id), "data.id", true, ID_BOUND},
    {D_ZONE, AT(zone_id), "data.zone_id", true, ID_BOUND},
    {D_EVENT_TYPE, AT(event_type), "data.event_type", false, ID_BOUND},
    {D_REQUEST_ID, AT(request_id), "data.request_id", false, ID_BOUND},
    {D_DECISION, AT(decision), "data.decision", false, ID_BOUND},
    {D_POLICY_SET, AT(policy_set_id), "data.policy_set_id", false, TEXT_BOUND},
    {D_POLICY_VERSION, AT(policy_set_version_id), "data.policy_set_version_id",
     false, TEXT_BOUND},
    {D_MANIFEST, AT(manifest_sha), "data.manifest_sha", false, TEXT_BOUND},
    {D_EVALUATION, AT(evaluation_status), "data.evaluation_status", false,
     TEXT_BOUND},
};

static const string_member meta_strings[] = {
    {M_APPLICATION, AT(application_id), "metadata_json.application_id", false,
     TEXT_BOUND},
    {M_RESOURCE, AT(resource), "metadata_json.resource", false, TEXT_BOUND},
    {M_METHOD, AT(method), "metadata_json.method", false, TEXT_BOUND},
    {M_SUBJECT_KIND, AT(subject_kind), "metadata_json.subject_kind", false,
     TEXT_BOUND},
    {M_RESULT_CLASS, AT(result_class), "metadata_json.result_class", false,
     TEXT_BOUND},
    {M_ERROR_KIND, AT(error_kind), "metadata_json.error_kind", false,
     TEXT_BOUND},
    {M_TRACE_ID, AT(trace_id), "metadata_json.trace_id", false, TEXT_BOUND},
};

#define MAX_ANCHORS (3 + 2 * AW_MAX_CHAIN)
#define MAX_STRINGS                                                            \
    (AW_COUNT_OF(data_strings) + AW_COUNT_OF(meta_strings) + MAX_ANCHORS)

/* What decoding gathers before the block is built; strings are borrowed
 * from the JSON text (or its document's scratch). */
typedef struct audit_draft {
    aw_audit_event event; /* numbers and flags; strings come later */
    aw_block block;
    aw_block_string slots[MAX_STRINGS];
    aw_anchor_list anchors;
    aw_anchor_ref anchor_items[MAX_ANCHORS];
} audit_draft;

static int read_strings(const aw_json *slots, const string_member *members,
                        size_t n, aw_block *block, aw_error *err)
{
    for (size_t i = 0; i < n; i++) {
        const string_member *m = &members[i];
        aw_bytes text;
        int rc = m->required ? aw_json_required_text(&slots[m->slot], m->what,
                                                     m->max, &text, err)
                             : aw_json_text(&slots[m->slot], m->what, m->max,
                                            &text, err);
        if (rc != AW_OK)
            return rc;
        aw_block_add(block, m->at, text);
    }
    return AW_OK;
}

static int read_anchor(const aw_json *item, const char *what,
                       aw_anchor_kind kind, aw_anchor_list *anchors,
                       aw_error *err)
{
    aw_bytes id;
    int rc = aw_json_text(item, what, AW_MAX_ID_BYTES, &id, err);
    if (rc == AW_OK)
        aw_anchor_list_add(anchors, kind, id);
    return rc;
}

static bool absent(const aw_json *item)
{
    return item->type == AW_JSON_ABSENT || item->type == AW_JSON_NULL;
}

static int check_array_or_null(const aw_json *item, const char *what,
                               aw_error *err)
{
    if (absent(item) || item->type == AW_JSON_ARRAY)
        return AW_OK;
    return aw_error_reject(err, AW_REJECT_WRONG_TYPE,
                           "%s: expected an array or null", what);
}

/* An object too: Caracal's Python AuditClient writes {} when an event has
 * no diagnostics (packages/core/python/caracalai_core/audit.py), where its
 * services write [] or null. */
static int check_diagnostics(const aw_json *item, aw_error *err)
{
    if (item->type == AW_JSON_OBJECT)
        return AW_OK;
    return check_array_or_null(item, "data.diagnostics_json", err);
}

static int read_chain(const aw_json *chain, aw_anchor_list *anchors,
                      aw_error *err)
{
    static const char *const link_names[] = {"agent_session_id",
                                             "delegation_edge_id"};
    static const aw_anchor_kind link_kinds[] = {AW_ANCHOR_AGENT_SESSION,
                                                AW_ANCHOR_DELEGATION_EDGE};
    int rc = check_array_or_null(chain, "metadata_json.delegation_chain", err);
    if (rc != AW_OK || absent(chain))
        return rc;
    size_t n = aw_json_count(chain);
    if (n > AW_MAX_CHAIN)
        return aw_error_reject(err, AW_REJECT_OVERSIZED,
                               "metadata_json.delegation_chain has %zu "
                               "elements, at most %d allowed",
                               n, AW_MAX_CHAIN);
    int index = 0;
    aw_json_iter it;
    aw_json link;
    aw_json_iter_init(&it, chain);
    for (; aw_json_next_element(&it, &link); index++) {
        aw_json slots[2];
        if (link.type != AW_JSON_OBJECT) {
            rc = aw_error_reject(err, AW_REJECT_WRONG_TYPE,
                                 "expected an object");
        } else {
            aw_json_pick(&link, link_names, 2, slots);
            for (int i = 0; i < 2 && rc == AW_OK; i++)
                rc = read_anchor(&slots[i], link_names[i], link_kinds[i],
                                 anchors, err);
        }
        if (rc != AW_OK) {
            /* the element's place is worth a printf only on failure */
            char where[64];
            snprintf(where, sizeof where, "metadata_json.delegation_chain[%d]",
                     index);
            aw_error_prefix(err, where);
            return rc;
        }
    }
    return AW_OK;
}

/* delegation_graph_epoch: a non-negative integral JSON number (Go writes
 * an int64), absent or null when the decision used no delegation. */
static int read_epoch(const aw_json *item, aw_audit_event *event, aw_error *err)
{
    if (absent(item))
        return AW_OK;
    double v = item->type == AW_JSON_NUMBER ? aw_json_number(item) : -1;
    if (v < 0 || v > 9007199254740992.0 || v != (double)(int64_t)v)
        return aw_error_reject(err, AW_REJECT_WRONG_TYPE,
                               "metadata_json.delegation_graph_epoch: "
                               "expected a non-negative integer");
    event->has_delegation_epoch = true;
    event->delegation_epoch = (int64_t)v;
    return AW_OK;
}

static int read_metadata(const aw_json *meta, audit_draft *d, aw_error *err)
{
    if (absent(meta))
        return AW_OK;
    if (meta->type != AW_JSON_OBJECT)
        return aw_error_reject(err, AW_REJECT_WRONG_TYPE,
                               "metadata_json: expected an object");
    aw_json m[M_COUNT];
    aw_json_pick(meta, meta_names, M_COUNT, m);
    int rc = read_strings(m, meta_strings, AW_COUNT_OF(meta_strings), &d->block,
                          err);
    if (rc != AW_OK)
        return rc;
    if ((rc = aw_json_status(&m[M_UPSTREAM_STATUS],
                             "metadata_json.upstream_status",
                             &d->event.upstream_status, NULL, err)) != AW_OK ||
        (rc = aw_json_status(&m[M_GATEWAY_STATUS],
                             "metadata_json.gateway_status",
                             &d->event.gateway_status, NULL, err)) != AW_OK ||
        (rc = read_epoch(&m[M_EPOCH], &d->event, err)) != AW_OK)
        return rc;

    const aw_json *interrupted = &m[M_INTERRUPTED];
    if (interrupted->type == AW_JSON_TRUE || interrupted->type == AW_JSON_FALSE)
        d->event.revocation_interrupted = interrupted->type == AW_JSON_TRUE;
    else if (!absent(interrupted))
        return aw_error_reject(err, AW_REJECT_WRONG_TYPE,
                               "metadata_json.revocation_interrupted: "
                               "expected a boolean");

    if ((rc = read_anchor(&m[M_SESSION], "metadata_json.session_id",
                          AW_ANCHOR_AUTHORITY_RECORD, &d->anchors, err)) ||
        (rc = read_anchor(&m[M_AGENT_SESSION], "metadata_json.agent_session_id",
                          AW_ANCHOR_AGENT_SESSION, &d->anchors, err)) ||
        (rc = read_anchor(&m[M_EDGE], "metadata_json.delegation_edge_id",
                          AW_ANCHOR_DELEGATION_EDGE, &d->anchors, err)))
        return rc;
    return read_chain(&m[M_CHAIN], &d->anchors, err);
}

static int read_data(const aw_json *root, audit_draft *d, aw_error *err)
{
    if (root->type != AW_JSON_OBJECT)
        return aw_error_reject(err, AW_REJECT_NOT_OBJECT,
                               "data is not a JSON object");
    aw_json m[D_COUNT];
    aw_json_pick(root, data_names, D_COUNT, m);
    int rc = read_strings(m, data_strings, AW_COUNT_OF(data_strings), &d->block,
                          err);
    if (rc != AW_OK)
        return rc;

    aw_bytes when;
    rc = aw_json_required_text(&m[D_OCCURRED_AT], "data.occurred_at",
                               AW_MAX_ID_BYTES, &when, err);
    if (rc == AW_OK) {
        rc = aw_time_parse_rfc3339(when.ptr, when.len, &d->event.occurred_at_ns,
                                   err);
        if (rc != AW_OK)
            aw_error_prefix(err, "data.occurred_at");
    }
    if (rc != AW_OK ||
        (rc = check_array_or_null(&m[D_POLICIES],
                                  "data.determining_policies_json", err)) ||
        (rc = check_diagnostics(&m[D_DIAGNOSTICS], err)))
        return rc;
    return read_metadata(&m[D_METADATA], d, err);
}

/* Builds the one block from a complete draft. */
static int audit_finish(audit_draft *d, aw_audit_event **out, aw_error *err)
{
    size_t nanchors = d->anchors.n;
    aw_block_add_anchor_ids(&d->block, sizeof(aw_audit_event),
                            sizeof(aw_anchor), &d->anchors);
    aw_audit_event *e = aw_block_alloc(
        &d->block, sizeof(aw_audit_event) + nanchors * sizeof(aw_anchor));
    if (e == NULL)
        return aw_error_set(err, AW_ERR_NOMEM,
                            "out of memory for a decoded event");
    *e = d->event;
    e->nanchors = nanchors;
    e->anchors = nanchors ? (aw_anchor *)(e + 1) : NULL;
    for (size_t i = 0; i < nanchors; i++)
        e->anchors[i] = (aw_anchor){d->anchors.items[i].kind, NULL};
    aw_block_place(&d->block, e);
    *out = e;
    return AW_OK;
}

/* Steps 1-3 of the order above: which `data`, whether it is signed. */
static int admit_audit_entry(const aw_raw_entry *entry, aw_hmac_key *key,
                             aw_bytes *data, bool *is_signed, aw_error *err)
{
    static const char *const names[] = {"data", "sig"};
    const aw_bytes *fields[2];
    int rc = aw_flat_pick(entry, names, 2, fields, err);
    if (rc != AW_OK)
        return rc;
    if (fields[0] == NULL)
        return aw_error_reject(err, AW_REJECT_MISSING_FIELD, "no data field");
    *data = *fields[0];
    if (key != NULL) {
        if (fields[1] == NULL)
            return aw_error_reject(err, AW_REJECT_SIGNATURE_MISSING,
                                   "no sig field, and an audit key is set");
        if ((rc = aw_hmac_verify_audit(key, *data, *fields[1], err)) != AW_OK)
            return rc;
        *is_signed = true;
    }
    return aw_entry_check_bounds(entry, "data", AW_MAX_DATA_BYTES, err);
}

int aw_event_decode_audit(const aw_raw_entry *entry, aw_hmac_key *key,
                          aw_audit_event **out, aw_error *err)
{
    aw_bytes data;
    bool is_signed = false;
    *out = NULL;
    int rc = admit_audit_entry(entry, key, &data, &is_signed, err);
    if (rc != AW_OK)
        return rc;
    aw_json_doc doc;
    aw_json root;
    if ((rc = aw_json_open(&doc, data.ptr, data.len, &root, err)) != AW_OK) {
        aw_error_prefix(err, "data");
        return rc;
    }

    /* about 7 KB, on the stack: the block is the only allocation (and the
     * document's scratch, when a string holds escapes) */
    audit_draft d;
    d.event = (aw_audit_event){.is_signed = is_signed};
    aw_block_init(&d.block, d.slots, MAX_STRINGS);
    d.anchors = (aw_anchor_list){d.anchor_items, 0, MAX_ANCHORS};
    rc = read_data(&root, &d, err);
    if (rc == AW_OK) {
        aw_sha256(data.ptr, data.len, d.event.content_hash);
        rc = audit_finish(&d, out, err);
    }
    if (rc == AW_OK && (*out)->id != NULL) {
        (*out)->has_id_digests = true;
        (*out)->id_digest = aw_id_digest((*out)->id);
        if ((*out)->request_id != NULL)
            (*out)->request_digest = aw_id_digest((*out)->request_id);
    }
    aw_json_close(&doc);
    return rc;
}

void aw_audit_event_free(aw_audit_event *event)
{
    free(event);
}
