/* alerting.h -- private to detectors/: the detector handle that the rule
 * files share, and the helpers they use to build, raise and resolve alerts.
 * Nothing outside detectors/ includes this file.
 */
#ifndef AW_DETECTORS_ALERTING_H
#define AW_DETECTORS_ALERTING_H

#include "detectors/detectors.h"
#include "detectors/seen.h"

/* What a due check means (in memory, and as aw_store_pending_add's kind
 * when it overflows); the ref is the row id named in each comment. Stored
 * values: never renumber. */
enum aw_det_pending_kind {
    AW_PENDING_DECISION_MISSING = 1,   /* events rowid of the Gateway call */
    AW_PENDING_CALL_WITHOUT_AUDIT = 2, /* calls rowid of the observed call */
    AW_PENDING_KINDS = 3
};

/* The meta key of the persisted detector clock. */
#define AW_DET_CLOCK_META_KEY "detector_clock_ns"

/* One check waiting for its deadline: 24 bytes in memory. */
typedef struct aw_det_due {
    int64_t deadline_ns;
    int64_t ref;
    int kind;
} aw_det_due;

/* The checks waiting in memory: a binary min-heap on (deadline, kind,
 * ref). next_ref[kind] is one past the newest row of that kind the rules
 * looked at (0: none known); stale after a rollback, until rebuilt. */
typedef struct aw_det_due_heap {
    aw_det_due *items;
    size_t n, cap;
    int64_t next_ref[AW_PENDING_KINDS];
    int64_t mark[AW_PENDING_KINDS]; /* as last persisted */
    bool stale;
} aw_det_due_heap;

/* Tags of the questions asked of det->seen (see seen.h). */
enum {
    AW_SEEN_REVOKED_ANCHOR = 'R',  /* (zone, anchor kind name, anchor id) */
    AW_SEEN_ALERT = 'A',           /* (kind, zone, anchor, request id) of
                                      an alert: what its id hashes */
    AW_SEEN_REVOKED_REQUEST = 'Q', /* (zone, request id) of an
                                      access_after_revocation alert */
    AW_SEEN_GATEWAY_CALL = 'G',    /* (zone, request id) of a Gateway
                                      call, in det->calls */
    AW_SEEN_GRANT = 'D',           /* (zone, request id) of a granting
                                      decision: its det->grants slot */
};

aw_seen_key aw_det_key_revoked_anchor(const char *zone_id,
                                      const aw_anchor *anchor);
aw_seen_key aw_det_key_alert(const char *kind, const char *zone_id,
                             const char *anchor, const char *request_id);
aw_seen_key aw_det_key_revoked_request(const char *zone_id,
                                       const char *request_id);

/* A judgement deferred to the end of the batch (revocation.c). */
typedef struct aw_det_deferred aw_det_deferred;
typedef struct aw_det_histories aw_det_histories;
typedef struct aw_det_grants aw_det_grants;

typedef struct aw_det_change {
    aw_alert *alert; /* aw_det_alert_dup block; owned */
    aw_alert_change change;
} aw_det_change;

struct aw_detectors {
    aw_store *store;           /* borrowed */
    aw_detector_config config; /* .audit_stream points at audit_stream */
    char audit_stream[AW_MAX_STREAM_NAME_BYTES];
    int64_t clock_ns;
    bool clock_dirty; /* moved since it was last persisted */
    aw_seen seen;
    /* The Gateway calls the index holds (missing.c): calls has the (zone,
     * request id) of every one in an events row up to calls_through
     * (INT64_MIN: not known, so never trusted); calls_at_advance is that
     * row when the last batch was judged, where a rollback goes back to. */
    aw_seen calls;
    int64_t calls_through, calls_at_advance;
    aw_det_grants *grants;       /* recent granting decisions (missing.c) */
    aw_det_deferred *deferred;   /* this batch's, until advance */
    aw_det_histories *histories; /* revocation histories (revocation.c) */
    size_t ndeferred, deferred_cap;
    aw_det_change *changes; /* since the last drain/discard */
    size_t nchanges, changes_cap;
    aw_det_due_heap due;
    /* The spans audit_evidence_trimmed alerts name (integrity.c): kept in
     * memory, since the rules waiting for a counterpart ask about them on
     * every check they would raise, and an incident raises many. */
    struct aw_det_trimmed_span *trimmed;
    size_t ntrimmed, trimmed_cap;
};

/* ---- Time ---------------------------------------------------------------- */

/* The arrival time of an entry: its id's milliseconds, in ns (saturated). */
int64_t aw_det_entry_ns(const aw_raw_entry *entry);
int64_t aw_det_ms_to_ns(uint64_t ms);
/* a + b, saturated at INT64_MAX / INT64_MIN. */
int64_t aw_det_add_ns(int64_t a, int64_t b);
/* Moves the clock forward to at least ns (never back). */
void aw_det_observe(aw_detectors *det, int64_t ns);

/* ---- Text ---------------------------------------------------------------- */

/* printf into a new heap string (caller frees); NULL when out of memory. */
char *aw_det_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* s, or "unknown" when s is NULL. */
const char *aw_det_or_unknown(const char *s);
/* A duration for people: "300 s", "1.5 s". Returns buf. */
char *aw_det_seconds(int64_t ns, char buf[32]);

/* An evidence list under construction: a JSON array of strings such as
 * "event:<event id>", "entry:<stream>/<entry id>",
 * "revocation:<stream>/<entry id>". Items appear once, in insertion
 * order. Out of memory is remembered and reported by aw_det_evidence_json. */
typedef struct aw_det_evidence {
    char *json;
    size_t len, cap;
    bool nomem;
    bool closed;
} aw_det_evidence;

void aw_det_evidence_init(aw_det_evidence *ev);
/* Adds "<what>:<a>" (b NULL) or "<what>:<a>/<b>". */
void aw_det_evidence_add(aw_det_evidence *ev, const char *what, const char *a,
                         const char *b);
/* Closes the array and returns it (owned by ev; NULL when out of memory).
 * Nothing may be added afterwards. */
const char *aw_det_evidence_json(aw_det_evidence *ev);
void aw_det_evidence_free(aw_det_evidence *ev);

/* Copies the n strings src[i] into one new block, after `front` bytes left
 * for the caller, and points dst[i] at the copies (NULL stays NULL).
 * Returns the block (free with free()), or NULL when out of memory. */
char *aw_det_copy_strings(const char *const *src, const char **dst, size_t n,
                          size_t front);

/* Event types the rules join on. A decision is "token_exchange"; Caracal's
 * interoperability fixture spells it "token.exchange", so both count. */
#define AW_EVENT_GATEWAY_CALL "gateway_resource_request"
extern const char *const aw_det_decision_types[2];
bool aw_det_is_decision(const char *event_type);
bool aw_det_is_gateway_call(const char *event_type);

/* What an iterating store call returned, when the detector's callback may
 * have stopped it: AW_ERR_NOMEM from a callback (which cannot fill err)
 * gets its message, a positive "found it, stop" value means success, and
 * a store error passes through. */
int aw_det_store_result(int rc, aw_error *err);

/* ---- Alerts -------------------------------------------------------------- */

/* A deep copy of alert in one heap block (free with free()); NULL when out
 * of memory. */
aw_alert *aw_det_alert_dup(const aw_alert *alert);

/* Copies of the alerts a query found, for changing them once it is done.
 * Zero it to start; aw_det_alert_list_free frees the copies and the array. */
typedef struct aw_det_alert_list {
    aw_alert **items;
    size_t n, cap;
} aw_det_alert_list;
/* Appends a copy of alert: 0, or AW_ERR_NOMEM (an aw_alert_fn's answer). */
int aw_det_alert_list_add(aw_det_alert_list *list, const aw_alert *alert);
void aw_det_alert_list_free(aw_det_alert_list *list);

/* The stored alert with this id (state 0: any state), copied into *out
 * (free with free()), or *out NULL when there is none. */
int aw_det_find_alert(aw_detectors *det, const char *id, aw_alert_state state,
                      aw_alert **out, aw_error *err);

/* Upserts alert (kind, severity, zone, request id, anchor, event time,
 * evidence and summary filled by the caller; the id is computed here from
 * kind, zone, anchor and request id, and raised_at and state are set) and
 * records the change for the sinks. */
int aw_det_raise(aw_detectors *det, aw_alert *alert, aw_error *err);
/* pipeline.c: event came again on the audit stream (put DUPLICATE) in entry;
 * resolves its audit_dead_lettered when entry is later than every dead
 * letter of it (a DLQ replay). */
int aw_det_dead_letter_replayed(aw_detectors *det, const aw_raw_entry *entry,
                                const aw_audit_event *event, aw_error *err);
/* pipeline.c: a dead letter that could not be read (aw_detectors_on_rejected
 * decided it was one); revocation tells a `.dead` entry from an audit DLQ
 * one. */
int aw_det_dead_letter_unreadable(aw_detectors *det, const aw_raw_entry *entry,
                                  bool revocation, aw_reject_reason reason,
                                  const char *detail, aw_error *err);
/* Upserts an already stored alert whose severity or evidence grew. */
int aw_det_escalate(aw_detectors *det, const aw_alert *alert, aw_error *err);
/* The open alert about (kind, zone, anchor, request id) into *open (free()
 * it), or NULL when there is none. When det->seen knows no such alert this
 * costs no look-up. */
int aw_det_find_open(aw_detectors *det, const char *kind, const char *zone_id,
                     const char *anchor, const char *request_id,
                     aw_alert **open, aw_error *err);
/* Resolves the open alert about (kind, zone, anchor, request id), if there
 * is one, in favour of resolved_by; late_ns = max(0, resolver_ns - the
 * alert's event time), i.e. how long after the evidence that raised it the
 * counterpart arrived. When det->seen knows no such alert this costs no
 * hashing and no look-up. */
int aw_det_resolve(aw_detectors *det, const char *kind, const char *zone_id,
                   const char *anchor, const char *request_id,
                   const char *resolved_by, int64_t resolver_ns, aw_error *err);

/* ---- The rules (one file each) ------------------------------------------- */

/* Every rule about an audit event that was stored with result put (what
 * aw_detectors_on_event does after moving the clock). */
int aw_det_event_rules(aw_detectors *det, const aw_raw_entry *entry,
                       const aw_audit_event *event, int64_t event_rowid,
                       aw_put_result put, aw_error *err);

/* missing.c: decision_missing and call_without_audit. */
/* Fills what the pairing keeps in memory from the store (at creation). */
int aw_det_missing_new(aw_detectors *det, aw_error *err);
void aw_det_missing_free(aw_detectors *det);
/* The batch was judged (advance), or rolled back (discard). */
void aw_det_missing_judged(aw_detectors *det);
void aw_det_missing_forget(aw_detectors *det);
/* Every events row the batch inserts is handed here, in row order. */
int aw_det_missing_on_event(aw_detectors *det, const aw_raw_entry *entry,
                            const aw_audit_event *event, int64_t event_rowid,
                            aw_error *err);
int aw_det_missing_on_call(aw_detectors *det, const aw_raw_entry *entry,
                           const aw_observed_call *call, int64_t call_rowid,
                           aw_error *err);
/* A copy of the event stored at event_rowid (a DUPLICATE). When the store
 * made entry its entry (the copy came earlier), its arrival is earlier:
 * a Gateway call is ranked again at its new deadline, a decision's grant
 * remembered with it. */
int aw_det_missing_on_copy(aw_detectors *det, const aw_raw_entry *entry,
                           const aw_audit_event *event, int64_t event_rowid,
                           aw_error *err);
/* Runs one due check (kind is an aw_det_pending_kind). */
int aw_det_missing_check(aw_detectors *det, int kind, int64_t deadline_ns,
                         int64_t ref, aw_error *err);
/* The check for the Gateway call at event row rowid (zone, request) due
 * at deadline_ns, unless it is paired in time already, and the checks
 * again of the calls it ranks ahead of; and the check for the observed
 * call at calls row ref likewise. Used on arrival and when due.c rebuilds
 * its checks. */
int aw_det_missing_expect_decision(aw_detectors *det, const char *zone_id,
                                   const char *request_id, int64_t deadline_ns,
                                   int64_t rowid, aw_error *err);
int aw_det_missing_expect_audit(aw_detectors *det, const char *zone_id,
                                const char *request_id, int64_t floor_ns,
                                int64_t deadline_ns, int64_t ref,
                                aw_error *err);
/* The earliest occurred_at of an audit event that counts for an observed
 * call of occurred_ns: audit_lookback before it when its log gives its
 * time, else INT64_MIN (a stand-in time bounds nothing: the call happened
 * at or before it). */
int64_t aw_det_audit_floor(const aw_detectors *det, int64_t occurred_ns,
                           bool time_is_logged);
/* max(occurred, arrival) + grace_missing. */
int64_t aw_det_missing_deadline(const aw_detectors *det, int64_t occurred_ns,
                                int64_t arrival_ns);

/* due.c: the checks waiting for their deadline. */
/* Rebuilds the checks from the index (at creation and after a rollback). */
int aw_det_due_rebuild(aw_detectors *det, aw_error *err);
/* A rule looked at row ref of kind (whether or not it waits for it). */
void aw_det_due_seen(aw_detectors *det, int kind, int64_t ref);
/* Waits for (kind, ref) until deadline_ns. */
int aw_det_due_add(aw_detectors *det, int kind, int64_t deadline_ns,
                   int64_t ref, aw_error *err);
/* Runs every check due at the clock, once, and persists the marks. */
int aw_det_due_run(aw_detectors *det, aw_error *err);
void aw_det_due_free(aw_detectors *det);

/* revocation.c: access_after_revocation. */
int aw_det_revocation_on_event(aw_detectors *det, const aw_raw_entry *entry,
                               const aw_audit_event *event, aw_error *err);
int aw_det_revocation_on_set(aw_detectors *det, const aw_raw_entry *entry,
                             const aw_revocation_set *set, aw_error *err);
/* The two hooks above only defer; this judges what they deferred, once the
 * whole batch is stored (from aw_detectors_advance), and forgets it. */
int aw_det_revocation_run_deferred(aw_detectors *det, aw_error *err);
/* Forgets the deferred judgements (after a rollback, and at free). */
void aw_det_revocation_drop_deferred(aw_detectors *det);
/* The revocation histories kept in memory between batches: allocated
 * (AW_ERR_NOMEM when out of memory), forgotten (after a rollback), freed. */
int aw_det_histories_new(aw_detectors *det);
void aw_det_histories_forget(aw_detectors *det);
void aw_det_histories_free(aw_detectors *det);

/* integrity.c: tampered_on_redelivery and caracal_anomaly (signature and
 * trimming are public hooks there). */
int aw_det_integrity_on_conflict(aw_detectors *det, const aw_raw_entry *entry,
                                 const aw_audit_event *event, aw_error *err);
int aw_det_integrity_on_event(aw_detectors *det, const aw_raw_entry *entry,
                              const aw_audit_event *event, aw_error *err);
/* Whether entries of stream with times in [from_ns, to_ns] were trimmed
 * before auditwatch read them (an audit_evidence_trimmed alert of stream
 * overlaps it): a counterpart there may be gone unseen, so the rules that
 * wait for one do not raise for its absence. */
bool aw_det_trimmed_within(const aw_detectors *det, const char *stream,
                           int64_t from_ns, int64_t to_ns);
/* Loads the spans of the index's trimmed alerts (at start); frees them. */
int aw_det_trimmed_load(aw_detectors *det, aw_error *err);
void aw_det_trimmed_free(aw_detectors *det);

#endif /* AW_DETECTORS_ALERTING_H */
