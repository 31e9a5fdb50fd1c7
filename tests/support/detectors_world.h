/* detectors_world.h -- a small world for the detector tests: a real SQLite
 * index in a temp directory, detectors on it, and helpers that store
 * hand-built evidence exactly as the consumer does (put the raw entry, put
 * the decoded form, call the hook, advance the clock to its watermark,
 * commit, drain the change queue), one entry per transaction.
 *
 * Times are milliseconds relative to DW_T0_MS (2026-05-21T12:00:00Z), so a
 * test reads "revoked at 0, used at 10 s".
 */
#ifndef AW_TESTS_DETECTORS_WORLD_H
#define AW_TESTS_DETECTORS_WORLD_H

#include "detectors/detectors.h"

#define DW_T0_MS       1779364800000LL
#define DW_S(seconds)  ((int64_t)(seconds)*1000)       /* seconds → ms */
#define DW_NS(ms)      ((DW_T0_MS + (ms)) * 1000000LL) /* relative ms → ns */
#define DW_MAX_ANCHORS 8

#define DW_AUTHORITY(id) ((aw_anchor){AW_ANCHOR_AUTHORITY_RECORD, (id)})
#define DW_AGENT(id)     ((aw_anchor){AW_ANCHOR_AGENT_SESSION, (id)})
#define DW_EDGE(id)      ((aw_anchor){AW_ANCHOR_DELEGATION_EDGE, (id)})

#define DW_AUDIT_STREAM       "caracal.audit.events"
#define DW_AUDIT_DLQ_STREAM   "caracal.audit.events.dlq"
#define DW_REVOKE_STREAM      "caracal.sessions.revoke"
#define DW_LIFECYCLE_STREAM   "caracal.agents.lifecycle"
#define DW_DELEGATIONS_STREAM "caracal.delegations.invalidate"
#define DW_CALLS_STREAM       "auditwatch.calls"

/* One audit event. NULL zone means "zone-1", NULL decision "allow". The
 * content hash covers every field and `variant`, so changing variant makes
 * a tampered copy of the same event id. dead_lettered: the entry is Caracal's
 * audit DLQ copy (stream DW_AUDIT_DLQ_STREAM, judged as the consumer judges
 * a dead letter), not the audit stream's original. */
typedef struct dw_audit {
    const char *id, *zone, *type, *request, *decision;
    const char *evaluation_status, *result_class, *variant;
    int upstream_status;
    int64_t occurred_ms, arrival_ms;
    aw_anchor anchors[DW_MAX_ANCHORS]; /* kind 0 ends the list */
    bool dead_lettered;
    bool has_epoch; /* delegation_graph_epoch, as the STS read it */
    int64_t epoch;
} dw_audit;

/* One revocation entry naming up to DW_MAX_ANCHORS anchors with the same
 * action; REVOKE goes to the revoke stream (to the delegations stream, as
 * an edge_revoke, with an epoch), SUSPEND/RESUME to lifecycle. dedupe_key,
 * when given, is the outbox delivery's. */
typedef struct dw_revocation {
    const char *zone;
    aw_revocation_action action;
    int64_t at_ms;
    aw_anchor anchors[DW_MAX_ANCHORS];
    const char *dedupe_key;
    bool has_epoch; /* the zone's graph epoch after the revocation */
    int64_t epoch;
} dw_revocation;

typedef struct dw_call {
    const char *request, *zone;
    int status;
    int64_t occurred_ms, arrival_ms;
    bool logged; /* occurred_ms is the log's time, not a stand-in */
} dw_call;

/* An alert as read back from the store (copies, truncated to fit). */
typedef struct dw_alert {
    char id[33], kind[40], severity[16], zone[64], request[128];
    char anchor[192], resolved_by[192], evidence[2048], summary[1024];
    aw_alert_state state;
    int64_t event_time_ns, raised_at_ns, resolved_at_ns, late_ns;
} dw_alert;

/* A change handed out by aw_detectors_drain. */
typedef struct dw_change {
    char id[33], kind[40], severity[16];
    aw_alert_state state;
    aw_alert_change change;
} dw_change;

typedef struct dw_world {
    char dir[64], path[128];
    aw_detector_config config;
    aw_store *store;
    aw_detectors *det;
    uint64_t seq;       /* makes every entry id unique */
    dw_change *changes; /* every drained change, in order */
    size_t nchanges, changes_cap;
} dw_world;

/* Opens a fresh index with the given grace periods (ms). */
void dw_open(dw_world *w, int64_t grace_missing_ms,
             int64_t grace_revocation_ms);
/* Closes detectors and store, opens both again on the same file. */
void dw_reopen(dw_world *w);
/* Closes and deletes the index. */
void dw_close(dw_world *w);

aw_put_result dw_feed_audit(dw_world *w, const dw_audit *audit);
/* Runs the same steps, then rolls the transaction back and discards the
 * detectors' changes, as the consumer does when a commit fails. */
void dw_feed_audit_rolled_back(dw_world *w, const dw_audit *audit);
void dw_feed_revocation(dw_world *w, const dw_revocation *rev);
/* Judged in its batch, then rolled back as when the commit fails. */
void dw_feed_revocation_rolled_back(dw_world *w, const dw_revocation *rev);
void dw_feed_call(dw_world *w, const dw_call *call);
/* An entry of role's default stream stored as rejected; a dead letter's
 * carries Caracal's `reason` DW_CARACAL_REASON. */
#define DW_CARACAL_REASON "json_parse_error:unexpected end"
void dw_feed_rejected(dw_world *w, aw_stream_role role, int64_t arrival_ms,
                      aw_reject_reason reason, const char *detail);
/* on_trimmed for stream of role in its own transaction; returns its result
 * code. */
int dw_trimmed(dw_world *w, const char *stream, int role, const char *first_id,
               const char *last_id);
/* Advances the detector clock to DW_NS(ms) in its own transaction. */
void dw_advance(dw_world *w, int64_t ms);

/* Alerts of kind (NULL: any) and request id (NULL: any), up to max, sorted
 * by id. Returns how many there are (may exceed max). */
size_t dw_alerts(dw_world *w, const char *kind, const char *request,
                 dw_alert *out, size_t max);
/* The one alert of kind for request; fails the test unless exactly one. */
dw_alert dw_the_alert(dw_world *w, const char *kind, const char *request);
/* Every alert as sorted "id state\n" lines, for comparing worlds. The
 * caller frees. */
char *dw_snapshot(dw_world *w);
/* How many drained changes of this kind (NULL: any) were `change`. */
size_t dw_count_changes(const dw_world *w, const char *kind,
                        aw_alert_change change);

#endif /* AW_TESTS_DETECTORS_WORLD_H */
