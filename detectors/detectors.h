/* detectors.h -- the gap detectors of auditwatch, the only header of
 * detectors/.
 *
 * The detectors turn what the store holds into alerts (DESIGN §4). They run
 * inside the transaction of the batch that brought the evidence, so an alert
 * is committed together with its cause, or not at all.
 *
 * Event time drives detection. The detector clock is the audit stream's
 * watermark: the newest entry-id time read from it (Redis' own clock, which
 * a producer cannot push forward), advanced to the wall clock by the daemon
 * when the stream is caught up. A check that waits for a counterpart is due
 * at max(occurred_at, arrival) + grace, so evidence published late from
 * replay files still gets its grace window. Replaying the same entries
 * yields the same alerts, whatever the interleaving of streams.
 *
 * Every rule is checked when either side arrives (order independence), and
 * an alert whose missing counterpart shows up later is resolved, never
 * deleted. Alert ids are a hash of (kind, zone, anchor, request id), so
 * redundant instances raise identical ids.
 *
 * Checks waiting for a counterpart are kept in memory, not written to the
 * index: 24 bytes each (48 at most with the array's growth), at most
 * max_waiting_checks of them (default 131,072: 3 MiB); beyond that they
 * go to the store's pending table. They are rebuilt from the index after a restart or a rollback,
 * so a restart inside a grace window neither loses nor repeats a check.
 *
 * A handle is used by one thread at a time, and only between
 * aw_store_begin and aw_store_commit of the store it was created on.
 */
#ifndef AW_DETECTORS_H
#define AW_DETECTORS_H

#include "store/store.h"

typedef struct aw_detectors aw_detectors;

typedef struct aw_detector_config {
    int64_t grace_missing_ns;    /* decision_missing, call_without_audit */
    int64_t grace_revocation_ns; /* access_after_revocation */
    size_t max_waiting_checks;   /* kept in memory; 0: the default */
    /* call_without_audit: an audit event counts for a call whose log gives
     * its time only if it occurred at most this long before it; 0: any
     * time before. */
    int64_t audit_lookback_ns;
    /* The audit stream: a span of it trimmed unread may have held the audit
     * events an observed call lacks. Copied by aw_detectors_new; NULL:
     * aw_stream_role_default_stream(AW_ROLE_AUDIT). */
    const char *audit_stream;
} aw_detector_config;

#define AW_DEFAULT_GRACE_MISSING_NS    (300LL * 1000000000LL)
#define AW_DEFAULT_GRACE_REVOCATION_NS (5LL * 1000000000LL)
#define AW_DEFAULT_MAX_WAITING_CHECKS  (128 * 1024) /* 3 MiB */
/* Caracal's longest grant (the STS's MAX_GRANT_TTL_SECONDS default): no
 * token it issued outlives this, and clocks are far closer than that. */
#define AW_DEFAULT_AUDIT_LOOKBACK_NS (3600LL * 1000000000LL)

/* Fills config with the defaults above. */
void aw_detector_config_init(aw_detector_config *config);

/* The alert kinds (the `kind` of aw_alert). */
#define AW_ALERT_DECISION_MISSING        "decision_missing"
#define AW_ALERT_CALL_WITHOUT_AUDIT      "call_without_audit"
#define AW_ALERT_EVIDENCE_TRIMMED        "audit_evidence_trimmed"
#define AW_ALERT_ACCESS_AFTER_REVOCATION "access_after_revocation"
#define AW_ALERT_SIGNATURE_INVALID       "signature_invalid"
#define AW_ALERT_TAMPERED_ON_REDELIVERY  "tampered_on_redelivery"
#define AW_ALERT_CARACAL_ANOMALY         "caracal_anomaly"
/* Caracal's own pipeline (DESIGN §8). */
#define AW_ALERT_AUDIT_DEAD_LETTERED      "audit_dead_lettered"
#define AW_ALERT_REVOCATION_DEAD_LETTERED "revocation_dead_lettered"
#define AW_ALERT_REVOCATION_NOT_CONSUMED  "revocation_not_consumed"
#define AW_ALERT_AUDIT_INGEST_STALLED     "audit_ingest_stalled"

/* Creates detectors over store (borrowed; must outlive the handle); reads
 * the persisted clock from the store. config NULL takes the defaults. */
int aw_detectors_new(aw_store *store, const aw_detector_config *config,
                     aw_detectors **out, aw_error *err);
void aw_detectors_free(aw_detectors *det);

/* Hooks, called after the evidence was stored in the open transaction.
 * entry is the raw entry it came from (for arrival time and evidence ids).
 * on_event also moves the clock to the entry's id time (the audit stream's
 * watermark); checks that come due run only in aw_detectors_advance. put is
 * what aw_store_put_event answered: a DUPLICATE only counts as a copy (an
 * earlier arrival; a copy on the audit stream after the event's dead
 * letters, as Caracal's DLQ replay writes, resolves its
 * audit_dead_lettered), CONFLICT only raises tampered_on_redelivery (the
 * stored first version is the one the other rules already saw). */
int aw_detectors_on_event(aw_detectors *det, const aw_raw_entry *entry,
                          const aw_audit_event *event, int64_t event_rowid,
                          aw_put_result put, aw_error *err);
int aw_detectors_on_revocations(aw_detectors *det, const aw_raw_entry *entry,
                                const aw_revocation_set *set, aw_error *err);
int aw_detectors_on_call(aw_detectors *det, const aw_raw_entry *entry,
                         const aw_observed_call *call, int64_t call_rowid,
                         aw_error *err);
/* An entry stored as rejected; role is its stream's aw_stream_role, -1 when
 * no role names the stream (imports included). A signature reason raises
 * signature_invalid (high), whatever the stream; any other reason on a
 * dead-letter stream raises that stream's dead-letter alert about the entry
 * itself ("<stream>:<entry id>", no zone: nothing in it is trusted), since
 * the evidence Caracal gave up on cannot be read here either:
 * audit_dead_lettered (high: whether it recorded an allow is unknown) or
 * revocation_dead_lettered (critical, as for a readable one). Any other
 * rejection raises nothing (it is kept in the rejected table). */
int aw_detectors_on_rejected(aw_detectors *det, const aw_raw_entry *entry,
                             int role, aw_reject_reason reason,
                             const char *detail, aw_error *err);
/* Entries [first_id, last_id] of stream (of role, an aw_stream_role; any
 * other value for none)
 * were deleted before being read: audit_evidence_trimmed, critical, or
 * high for Caracal's audit DLQ, which its DLQ replay empties by
 * re-publishing each entry on the audit stream before deleting it. */
int aw_detectors_on_trimmed(aw_detectors *det, const char *stream, int role,
                            const char *first_id, const char *last_id,
                            aw_error *err);

/* Dead letters (DESIGN §8): the original was stored (an audit event with
 * result put, revocations like any) from entry, the dead letter itself.
 * on_dead_event stands in for on_event -- every rule of an audit event,
 * but without moving the clock: a dead-letter stream is no watermark, and
 * its entries may be read far ahead of the audit stream's backlog -- and
 * raises audit_dead_lettered about (zone, event id, request id), high,
 * critical for a Gateway call or an allow, so a DLQ copy of an event
 * indexed before, or a second copy, lands in the same alert. Its event
 * time is the dead letter's entry time, so a dead letter after the alert
 * was resolved (by a replay copy, see on_event) reopens it.
 * on_dead_revocations follows on_revocations and raises
 * revocation_dead_lettered (critical) about the original revocation entry
 * (read as a stream of role origin), naming its anchors; a set naming no
 * anchor raises nothing, and neither does the STS's dead letter of an entry
 * it declines by design (aw_sts_declined). */
int aw_detectors_on_dead_event(aw_detectors *det, const aw_raw_entry *entry,
                               const aw_dead_letter *letter,
                               const aw_audit_event *event, int64_t event_rowid,
                               aw_put_result put, aw_error *err);
int aw_detectors_on_dead_revocations(
    aw_detectors *det, const aw_raw_entry *entry, aw_stream_role origin,
    const aw_dead_letter *letter, const aw_revocation_set *set, aw_error *err);

/* What one poll of Caracal's consumer groups found (the daemon judges, with
 * event/'s aw_enforcer_judge and aw_ingest_judge; this only raises and
 * resolves, inside the batch's transaction like every alert). */
typedef enum aw_pipeline_finding_kind {
    AW_FINDING_NOT_CONSUMED = 1,  /* revocation_not_consumed */
    AW_FINDING_INGEST_STALLED,    /* audit_ingest_stalled */
    AW_FINDING_ENFORCERS_PRESENT, /* the enforcer groups a stream has now */
} aw_pipeline_finding_kind;

typedef struct aw_pipeline_finding {
    aw_pipeline_finding_kind kind;
    const char *stream; /* the revocation stream; the audit stream */
    const char *group;  /* the enforcer; audit-ingestor */
    /* true: the trouble is there; false: it is over. */
    bool trouble;
    /* With trouble, what it is about: NOT_CONSUMED, the oldest revocation
     * the group has not applied in time; INGEST_STALLED, the oldest entry
     * the ingestor had not applied when the stall began (so a later stall
     * is a new alert). */
    aw_stream_id entry;
    /* NOT_CONSUMED: the stream's first entry at the poll (none: empty or
     * not known). A revocation before it was trimmed: a group that no
     * longer holds it pending may have dropped it unapplied. */
    aw_stream_id first_retained;
    /* NOT_CONSUMED: the group is most likely one host's left behind
     * (aw_enforcer_left_behind). */
    bool left_behind;
    const char *detail;  /* figures in words (idle times, lag) */
    int64_t observed_ns; /* wall clock of the poll */
    /* ENFORCERS_PRESENT only (group, trouble and entry unused): every
     * enforcer group the poll found on stream. */
    const char *const *present;
    size_t npresent;
} aw_pipeline_finding;

/* Raises or resolves per finding. Alerts are about (group,
 * "<stream>/<entry id>"), with no zone, so redundant instances agree;
 * NOT_CONSUMED ones name the revocation's anchors when the index holds it.
 * A finding with trouble resolves the group's other alerts of its kind
 * (for NOT_CONSUMED: those about older revocations, which it caught up
 * on); without, all of them. But a NOT_CONSUMED alert about a revocation
 * trimmed from the stream stays open: an enforcer that reclaims its
 * pending entries drops a trimmed one unapplied (XAUTOCLAIM), so moving
 * past it says nothing of it having been applied. An alert already open
 * is left as it is.
 * ENFORCERS_PRESENT: an open revocation_not_consumed about a group of that
 * stream that is not there any more (XGROUP DESTROY: it receives no
 * revocations at all) stays open and gains the evidence
 * "group_deleted:<stream>/<group>" (once: the sinks hear it escalated);
 * a person who retired the group on purpose acknowledges it. */
int aw_detectors_on_pipeline(aw_detectors *det,
                             const aw_pipeline_finding *findings, size_t n,
                             aw_error *err);

/* Moves the clock forward to clock_ns (never back) and runs every check
 * now due. Persists the clock in the store. Call it once per batch, before
 * the commit, with the audit watermark (aw_detectors_clock) or, when the
 * stream is caught up, the wall clock. */
int aw_detectors_advance(aw_detectors *det, int64_t clock_ns, aw_error *err);
int64_t aw_detectors_clock(const aw_detectors *det);

/* Alert state changes made since the last call, for the sinks: call after
 * the transaction committed (and aw_detectors_discard after a rollback).
 * fn sees each change once; the alert is borrowed for the call. */
typedef void (*aw_alert_change_fn)(const aw_alert *alert,
                                   aw_alert_change change, void *ud);
void aw_detectors_drain(aw_detectors *det, aw_alert_change_fn fn, void *ud);
void aw_detectors_discard(aw_detectors *det);

/* The deterministic id of an alert: the first 16 bytes of
 * SHA-256(kind 0x00 zone 0x00 anchor 0x00 request_id), hex. NULLs hash as
 * empty strings. out needs 33 bytes. Returns out (NULL only when the inputs
 * exceed 4 KiB together and memory runs out). */
char *aw_detectors_alert_id(const char *kind, const char *zone_id,
                            const char *anchor, const char *request_id,
                            char out[33]);

#endif /* AW_DETECTORS_H */
