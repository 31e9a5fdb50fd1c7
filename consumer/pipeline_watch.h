/* pipeline_watch.h -- private to consumer/: the daemon's poll of Caracal's
 * consumer groups (DESIGN §8): are the revocation enforcers applying what
 * they are sent, is Caracal's audit ingestor keeping up.
 *
 * Two parts, kept apart like the consumer core and its I/O layer. The
 * judges (aw_watch_judge_*) are pure: snapshots and a time in, one finding
 * out, tested in process as tables. The poll (aw_watch_poll) only fetches,
 * read-only, on the daemon's connection: XINFO STREAM and XINFO GROUPS of
 * the revocation and audit streams, then, for each watched group, XPENDING
 * (summary), XRANGE COUNT 1 after its last-delivered id and XINFO
 * CONSUMERS -- each reply with its own callback; and XLEN of the dead-letter
 * streams. Its findings ride with the next batch (aw_ingest_carry_findings),
 * so the alerts commit like any; its figures (aw_watch_figures) are what
 * /metrics shows of Caracal's groups.
 * Nothing is ever sent in Caracal's groups' name: no XREADGROUP, XACK,
 * XCLAIM or XGROUP on them.
 */
#ifndef AW_CONSUMER_PIPELINE_WATCH_H
#define AW_CONSUMER_PIPELINE_WATCH_H

#include "consumer/consumer.h"
#include "consumer/redis_conn.h"

/* ---- The judges (pure) ---------------------------------------------------- */

/* A revocation enforcer's group as one poll saw it. */
typedef struct aw_watch_enforcer {
    const char *stream, *group;
    aw_stream_snapshot stream_snap;
    aw_group_snapshot snap;
    const char *consumers; /* "gw-a idle 35.0 s, ..."; may be NULL */
} aw_watch_enforcer;

/* Fills *out (its strings point into e and detail): trouble when the oldest
 * revocation the group has not applied (aw_enforcer_judge) waited longer
 * than grace_ms; detail says how, with the consumers' idle times. */
void aw_watch_judge_enforcer(const aw_watch_enforcer *e, int64_t now_ms,
                             int64_t grace_ms, aw_pipeline_finding *out,
                             char *detail, size_t size);

/* What the ingest judge remembers between polls. Zero it to start. */
typedef struct aw_watch_ingest_memory {
    int over_polls; /* consecutive polls over the limits, stream growing */
    bool seen;      /* last_generated is known */
    aw_stream_id last_generated; /* the audit stream's, at the last poll */
    bool raised;                 /* the last finding carried was trouble */
    bool recovering;      /* the recovery is out, no batch committed it yet */
    aw_stream_id episode; /* what the stall under way is about */
} aw_watch_ingest_memory;

/* One poll of audit-ingestor (group NULL: absent, judged healthy here --
 * doctor reports it) on the audit stream whose newest id is last_generated.
 * Over the limits (aw_ingest_judge) for two consecutive polls while that id
 * moved: trouble, about the oldest entry it had not applied when the stall
 * began. Returns true when *out is to be carried: trouble (every poll while
 * it lasts) or the recovery -- at every poll until a batch that carried it
 * committed (aw_watch_ingest_recovered): a poll's findings replace those of
 * the poll before when no batch took them yet. */
bool aw_watch_judge_ingest(aw_watch_ingest_memory *m, const char *stream,
                           const aw_group_snapshot *group,
                           aw_stream_id last_generated, int64_t now_ms,
                           const aw_ingest_limits *limits,
                           aw_pipeline_finding *out, char *detail, size_t size);
/* A batch that carried the recovery committed: it is not carried again. */
void aw_watch_ingest_recovered(aw_watch_ingest_memory *m);

/* ---- The poll ------------------------------------------------------------- */

#define AW_WATCH_DEAD_LETTER_STREAMS 4 /* the audit DLQ, three `.dead` */

typedef struct aw_watch_config {
    const char *audit_stream;
    const char *revocation_streams[3]; /* sessions, agents, delegations */
    const char *dead_letter_streams[AW_WATCH_DEAD_LETTER_STREAMS];
    const char *own_group; /* auditwatch's group: its lag is a figure too */
    const char *const *enforcer_groups; /* globs; none: the defaults */
    size_t nenforcer_groups;
    int64_t grace_ms;
    aw_ingest_limits ingest;
} aw_watch_config;

typedef struct aw_watch aw_watch;

/* config and its strings are borrowed. NULL when out of memory. */
aw_watch *aw_watch_new(const aw_watch_config *config);
/* Not while a poll is in flight (close the connection first). */
void aw_watch_free(aw_watch *w);

/* Starts a poll on conn unless one is in flight or conn is not ready. */
void aw_watch_poll(aw_watch *w, aw_redis_conn *conn);
bool aw_watch_in_flight(const aw_watch *w);

/* The findings of the newest poll not yet committed, for the next batch
 * (valid until aw_watch_settle); 0 when there are none. */
size_t aw_watch_take(aw_watch *w, const aw_pipeline_finding **out);
/* That batch committed (forget them) or not (carry them again, unless a
 * newer poll replaced them). */
void aw_watch_settle(aw_watch *w, bool committed);

/* ---- The figures (for /metrics) ------------------------------------------- */

/* Caracal's Gateway has a group per host and deletes none, so an
 * autoscaled fleet leaves many behind. */
#define AW_WATCH_GROUPS_MAX   128
#define AW_WATCH_OWN_STREAMS  4 /* the three revocation streams, audit */
#define AW_WATCH_NAME_MAX_LEN 200

/* A watched group (an enforcer's, or audit-ingestor) as a poll saw it. */
typedef struct aw_watch_group_figures {
    const char *stream; /* borrowed from the config */
    char group[AW_WATCH_NAME_MAX_LEN];
    int64_t lag;     /* entries not yet delivered to it, or UNKNOWN */
    int64_t pending; /* delivered, not acknowledged */
    /* age of its oldest entry not applied (undelivered or pending), 0 when
     * none (aw_enforcer_judge's unapplied_age_ms) */
    int64_t oldest_unapplied_ms;
} aw_watch_group_figures;

typedef struct aw_watch_figures {
    bool polled; /* false until a poll completed */
    aw_watch_group_figures groups[AW_WATCH_GROUPS_MAX];
    size_t ngroups;
    const char
        *dead_letter_streams[AW_WATCH_DEAD_LETTER_STREAMS]; /* config's */
    int64_t dead_letters[AW_WATCH_DEAD_LETTER_STREAMS]; /* XLEN, or UNKNOWN */
    /* own_group's lag on the audit and revocation streams, or UNKNOWN: it
     * moves while the daemon's own reads wait (an idle daemon reads again
     * only after its commit, which another writer's lock can hold) */
    const char *own_streams[AW_WATCH_OWN_STREAMS]; /* config's */
    int64_t own_lag[AW_WATCH_OWN_STREAMS];
    int64_t polled_at_ms; /* when the newest complete poll ended */
} aw_watch_figures;

/* The figures of the newest complete poll; they change only when a poll
 * completes (on the loop thread). Owned by w, valid while w lives. */
const aw_watch_figures *aw_watch_figures_get(const aw_watch *w);

#endif /* AW_CONSUMER_PIPELINE_WATCH_H */
