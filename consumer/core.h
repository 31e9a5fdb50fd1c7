/* core.h -- private to consumer/: the consumer's decisions, without I/O.
 *
 * The core knows neither hiredis nor libuv. The I/O layer (daemon.c) tells it
 * facts -- connected, a read answered with these entries and these deleted
 * ids, a stream looked like this before the read, these entries were
 * delivered that often, a commit ended with this class of outcome, a timer
 * fired -- and asks it, with aw_core_next, what to do now: read, claim,
 * count deliveries, commit these, acknowledge these, wait, stop. That is what
 * lets ack-after-commit, trimming detection, delivery limits, group commit,
 * error classification and drain-on-stop be tested as tables in process
 * (tests/test_consumer_core*.c). The state machine is drawn in core.c.
 *
 * Threads: every function runs on one thread. The commit an action hands out
 * may be run on another thread until its aw_core_on_commit; the core does
 * not touch it meanwhile.
 */
#ifndef AW_CONSUMER_CORE_H
#define AW_CONSUMER_CORE_H

#include "consumer/consumer.h"

#define AW_CORE_STREAMS AW_ROLE_COUNT

typedef struct aw_core aw_core;

typedef enum aw_core_state {
    AW_CORE_DISCONNECTED = 0, /* no connection: nothing can be sent */
    AW_CORE_SETUP,            /* creating the groups */
    AW_CORE_PENDING,          /* re-reading this consumer's pending entries */
    AW_CORE_CLAIMING,         /* taking over entries idle too long */
    AW_CORE_LIVE,             /* reading new entries */
    AW_CORE_PAUSED,           /* a command failed: waiting before retrying */
    AW_CORE_DRAINING,         /* stopping: no reads, in-flight work finishes */
    AW_CORE_STOPPED,          /* nothing left to do: close */
    AW_CORE_BROKEN,           /* the index cannot go on: stop, exit non-zero */
    AW_CORE_STATE_COUNT
} aw_core_state;

/* Stable lower-case name ("live"). */
const char *aw_core_state_name(aw_core_state state);

typedef struct aw_core_config {
    const char *streams[AW_CORE_STREAMS]; /* by role; borrowed */
    size_t group_max_entries; /* stop merging reads into the waiting batch */
    int64_t max_deliveries;   /* more: rejected TOO_MANY_DELIVERIES */
    int64_t retry_first_ms, retry_max_ms; /* backoff of commands and commits */
} aw_core_config;

/* How a commit ended, as the commit boundary sees it. */
typedef enum aw_commit_class {
    AW_COMMIT_OK = 0,
    AW_COMMIT_TRANSIENT,     /* busy, locked, I/O, full disk, memory: retry */
    AW_COMMIT_DETERMINISTIC, /* the same entries fail again: find the one */
    AW_COMMIT_BROKEN,        /* corrupt, read-only, too new: stop */
} aw_commit_class;

/* The class of an aw_ingest_batch return code. */
aw_commit_class aw_commit_class_of(int rc);

/* ---- Inputs -------------------------------------------------------------- */

/* XINFO STREAM and XINFO GROUPS of one stream, just before a live read. */
typedef struct aw_core_snapshot {
    bool has_info;  /* length, last_generated, max_deleted known */
    bool has_first; /* the stream holds at least one entry */
    bool has_group; /* our group was listed, last_delivered known */
    bool has_lag;   /* Redis could compute the group's lag */
    long long length, lag;
    aw_stream_id first, last_generated, max_deleted, last_delivered;
} aw_core_snapshot;

typedef enum aw_core_read_kind {
    AW_CORE_READ_PENDING, /* XREADGROUP ... <id>: our own pending entries */
    AW_CORE_READ_LIVE,    /* XREADGROUP ... > */
    AW_CORE_READ_CLAIM,   /* XAUTOCLAIM */
} aw_core_read_kind;

/* What one stream answered. entries are owned by the read until
 * aw_core_on_read, which takes them all (success or not). deleted are ids
 * delivered to us whose entry Redis no longer holds (nil fields); for a
 * claim, claim_deleted are the ids XAUTOCLAIM removed from the group's
 * pending list because their entry was gone. */
typedef struct aw_core_stream_read {
    aw_raw_entry **entries;
    /* NULL, or one per entry: what aw_ingest_decode made of it (each may be
     * NULL), owned and taken with the entries. */
    aw_ingest_decoded **decoded;
    size_t n;
    aw_stream_id *deleted;
    size_t ndeleted;
    aw_stream_id *claim_deleted;
    size_t nclaim_deleted;
    aw_stream_id claim_cursor; /* the next XAUTOCLAIM start; 0-0: done */
    aw_core_snapshot before;   /* AW_CORE_READ_LIVE only */
} aw_core_stream_read;

typedef struct aw_core_read {
    aw_core_read_kind kind;
    bool blocking;
    /* The read failed (reply error, bad shape, connection lost): nothing of
     * it is used; group_missing when Redis said NOGROUP. why is the reason
     * (logged once per distinct reason). */
    bool failed, group_missing;
    bool lost; /* failed because the connection went */
    const char *why;
    /* A live read: Redis' clock just before it (else this host's, when it
     * was answered); the detector clock when the audit stream is read up. */
    int64_t now_ns;
    aw_core_stream_read streams[AW_CORE_STREAMS];
} aw_core_read;

/* One XPENDING row: an entry and how often it was delivered. */
typedef struct aw_core_delivery {
    aw_stream_id id;
    long long count;
} aw_core_delivery;

/* ---- Actions ------------------------------------------------------------- */

typedef enum aw_core_action_kind {
    AW_ACT_NONE = 0,      /* nothing to do until the next input */
    AW_ACT_CREATE_GROUPS, /* XGROUP CREATE ... MKSTREAM, every stream */
    AW_ACT_READ,          /* read.kind, for the streams with want[s] */
    AW_ACT_COUNT,  /* XPENDING over [first, last] of the streams with want */
    AW_ACT_COMMIT, /* run commit (aw_ingest_batch), then aw_core_on_commit */
    AW_ACT_ACK,    /* XACK ack.ids on stream ack.stream, then on_acked */
    AW_ACT_WAIT,   /* call aw_core_on_timer(wait.timer) after wait.ms */
    AW_ACT_LOG,    /* a change worth one log line */
    AW_ACT_STOP,   /* all done: close the connection, leave the loop */
} aw_core_action_kind;

typedef struct aw_core_commit {
    const aw_ingest_item *items;
    size_t n;
    const aw_ingest_trim *trims;
    size_t ntrims;
    int64_t clock_ns;
} aw_core_commit;

/* The two waits: reads after a failed command, a commit after a transient
 * failure. Each has its own timer. */
typedef enum aw_core_timer {
    AW_CORE_TIMER_READS,
    AW_CORE_TIMER_COMMIT
} aw_core_timer;

typedef enum aw_core_log_level {
    AW_CORE_INFO,
    AW_CORE_WARN,
    AW_CORE_ERROR
} aw_core_log_level;

/* Everything an action points to is owned by the core and valid until the
 * next call into it (commit: until aw_core_on_commit). */
typedef struct aw_core_action {
    aw_core_action_kind kind;
    struct {
        aw_core_read_kind kind;
        bool blocking;
        bool want[AW_CORE_STREAMS];
        const char
            *from[AW_CORE_STREAMS]; /* PENDING: start id; CLAIM: cursor */
    } read;
    struct {
        bool want[AW_CORE_STREAMS];
        const char *first[AW_CORE_STREAMS], *last[AW_CORE_STREAMS];
        size_t max_rows[AW_CORE_STREAMS];
    } count;
    aw_core_commit commit;
    struct {
        int stream;
        const char **ids;
        size_t n;
    } ack;
    struct {
        aw_core_timer timer;
        int64_t ms;
    } wait;
    struct {
        aw_core_log_level level;
        const char *event;              /* "index_commit_failed" */
        const char *stream;             /* may be NULL */
        const char *first_id, *last_id; /* a lost range; may be NULL */
        const char *error;              /* the reason in words; may be NULL */
        const char *action;             /* what happens now; may be NULL */
        long long entries;              /* -1 when not about entries */
    } log;
} aw_core_action;

/* ---- The surface --------------------------------------------------------- */

/* config is copied (its strings borrowed). NULL when out of memory. */
aw_core *aw_core_new(const aw_core_config *config);
/* Frees whatever the core holds; the commit handed out must be finished. */
void aw_core_free(aw_core *c);

aw_core_state aw_core_get_state(const aw_core *c);

/* The next thing to do; AW_ACT_NONE when waiting for an input. Call until it
 * returns AW_ACT_NONE after every input. */
void aw_core_next(aw_core *c, aw_core_action *out);

void aw_core_on_connected(aw_core *c);
/* The connection went away; reads and acks in flight are answered failed. */
void aw_core_on_lost(aw_core *c);
/* The XGROUP CREATE round: ok, or why not. */
void aw_core_on_groups(aw_core *c, bool ok, const char *why);
/* XGROUP CREATE made the group on stream (it was not there): Redis counts
 * its reads and lag afresh. */
void aw_core_on_group_created(aw_core *c, int stream);
/* The newest entry id of stream the index already holds (its checkpoint),
 * told once at start; the core follows its own commits after that. */
void aw_core_set_committed(aw_core *c, int stream, aw_stream_id id);
/* The newest entry id of stream committed, in *id; false when none. A group
 * made again with a start id of `$` (it was deleted) starts there instead,
 * so what came since is read, not skipped. */
bool aw_core_committed(const aw_core *c, int stream, aw_stream_id *id);
/* A read's answer; takes the entries in r. */
void aw_core_on_read(aw_core *c, aw_core_read *r);
/* The XPENDING rows of each stream (in id order), or failed. */
void aw_core_on_counts(aw_core *c, bool failed, const char *why,
                       const aw_core_delivery *const rows[AW_CORE_STREAMS],
                       const size_t nrows[AW_CORE_STREAMS]);
/* The commit handed out ended with rc (aw_ingest_batch's) and err. */
void aw_core_on_commit(aw_core *c, int rc, const aw_error *err);
/* An XACK answered: acked entries, or failed (they stay pending). */
void aw_core_on_acked(aw_core *c, bool failed, long long acked);
/* The wait of an AW_ACT_WAIT on that timer is over. */
void aw_core_on_timer(aw_core *c, aw_core_timer timer);
/* Claim idle entries at the next chance. */
void aw_core_on_claim_due(aw_core *c);
/* Stop: finish what is in flight. A second call stops at once. */
void aw_core_on_stop(aw_core *c);

/* Totals since aw_core_new. */
typedef struct aw_core_totals {
    size_t acked;
    size_t entries_committed;
    size_t rejected_by_index; /* entries the index refused (split out) */
} aw_core_totals;
const aw_core_totals *aw_core_totals_get(const aw_core *c);
/* The entry-id time (ms) of the oldest entry of stream read and not yet
 * acknowledged (waiting for its counts, its commit or its XACK); false when
 * there is none. For the oldest-pending gauge. */
bool aw_core_oldest_unacked_ms(const aw_core *c, int stream, uint64_t *ms);
/* The message of a BROKEN core. */
const char *aw_core_broken_reason(const aw_core *c);

#endif /* AW_CONSUMER_CORE_H */
