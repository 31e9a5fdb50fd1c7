/* core.c -- the consumer's state machine: what to read, when to commit, what
 * to acknowledge. No I/O: facts in (core.h), actions out.
 *
 * The rule everything else serves: an entry is acknowledged only after the
 * SQLite transaction holding it committed. Until then it stays in the
 * group's pending list, so a crash, a lost connection or a failed commit at
 * any point loses nothing: the entry is delivered again, and the index
 * recognises it (aw_ingest_batch is idempotent per stream and entry id).
 *
 * The read side is one state, c->state, moved one step per fact:
 *
 *   DISCONNECTED --connected--------------------------> SETUP
 *   SETUP        --groups made------------------------> PENDING
 *   PENDING      --no stream has pending entries left--> CLAIMING (claim due)
 *                                                        or LIVE
 *   CLAIMING     --every stream claimed through--------> LIVE
 *   LIVE         --claim tick--------------------------> CLAIMING
 *   SETUP, PENDING, CLAIMING, LIVE
 *                --a command failed--------------------> PAUSED
 *   PAUSED       --backoff over------------------------> the state that failed
 *                                                        (LIVE: PENDING, to re-read
 *                                                        what it was delivered)
 *   any of SETUP..PAUSED --NOGROUP--> SETUP, --connection lost--> DISCONNECTED
 *   any but STOPPED, BROKEN --stop--> DRAINING --nothing in flight, or a
 *                                               second stop--> STOPPED
 *   any but STOPPED --index broken--> BROKEN (terminal; STOP is handed out)
 *
 *   from \ to     DISC SETUP PEND CLAIM LIVE PAUSE DRAIN STOP BROKEN
 *   DISCONNECTED   .    x     .    .     .    .     x     .    x
 *   SETUP          x    .     x    .     .    x     x     .    x
 *   PENDING        x    x     .    x     x    x     x     .    x
 *   CLAIMING       x    x     .    .     x    x     x     .    x
 *   LIVE           x    x     x    x     .    x     x     .    x
 *   PAUSED         x    x     x    x     .    .     x     .    x
 *   DRAINING       .    .     .    .     .    .     .     x    x
 *   STOPPED, BROKEN: terminal.
 * core_set_state() checks every move against this table.
 *
 *   SETUP     XGROUP CREATE <stream> <group> <start> MKSTREAM, every stream.
 *   PENDING   XREADGROUP ... <id>, paging by id, until every stream answers
 *             nothing: what was read before a crash or a disconnect.
 *   CLAIMING  XAUTOCLAIM, paging by cursor: entries idle too long in the
 *             group (a dead consumer's). After setup and on each claim tick.
 *   LIVE      XREADGROUP ... >, preceded by XINFO STREAM and XINFO GROUPS of
 *             every stream: the snapshot trimming is judged against.
 * One read is in flight at a time. Entries of PENDING and CLAIMING reads
 * were delivered before: their delivery counts are read (XPENDING) before
 * they are committed, and past max_deliveries they are rejected
 * TOO_MANY_DELIVERIES instead of decoded, so one poisonous entry cannot
 * crash-loop the daemon. A pending entry Redis deleted meanwhile comes back
 * as an id without fields: it is acknowledged and reported as trimmed
 * unless the index already holds it.
 *
 * The commit side is two slots, `committing` and `ready`. At most one batch
 * commits at a time, so commits stay in read order. Group commit: reads that
 * complete while a commit is under way are appended to the one `ready`
 * batch, and reading goes on until it holds group_max_entries; a commit (an
 * fsync) is then shared by many reads. A live read blocks only when nothing
 * is committing (a blocked read would hold the acks queued behind it).
 *
 * Commit outcomes are classified (aw_commit_class_of):
 *   transient      busy, locked, I/O, full disk, memory: the batch waits and
 *                  is tried again with capped exponential backoff; nothing is
 *                  acknowledged; logged once when it starts (and when the
 *                  reason changes), once when it recovers.
 *   deterministic  the same entries would fail again. The batch is split:
 *                  its first half is tried alone, halving until one entry is
 *                  left; that entry is rejected INDEX_ERROR with the index's
 *                  message (it is still stored verbatim, and acknowledged),
 *                  and the rest commits. Each committed part is acknowledged
 *                  at once. Trims and the clock ride with the last part.
 *   broken         corrupt, read-only, schema too new -- or a deterministic
 *                  failure with no entry left to blame: BROKEN, stop, exit
 *                  non-zero with a message saying what to do.
 *
 * Trimming. Producers trim with MAXLEN ~; a group that lags can lose entries
 * it never read. Entries deleted after the group's last-delivered id were
 * never delivered (find_losses says how each kind of deletion shows); their
 * range goes to the detectors in the batch of the read whose snapshot
 * reveals it (audit_evidence_trimmed) -- for a trim that ran between a
 * snapshot and its read, a later one. History trimmed before the group
 * existed is no loss: Redis counts it as read when the group is created. A
 * crash between the read and its commit forgets a loss it revealed: the
 * window is one batch.
 *
 * The clock. The detectors follow the audit stream's watermark. When a live
 * read brings nothing new from the audit stream, the stream is caught up and
 * the batch carries the wall clock of the answer; an idle blocking read that
 * returns nothing commits an empty batch just for that, so deadlines fall
 * due while nothing arrives.
 *
 * Stopping. No new reads; the batches read commit and are acknowledged; a
 * non-blocking read in flight is waited for (its entries commit too), a
 * blocking one is not (what it might deliver stays pending). A second stop
 * stops at once.
 */
#include "consumer/core.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NSTREAMS    AW_CORE_STREAMS
#define TEXT        AW_STREAM_ID_TEXT_MAX
#define LOG_QUEUE   16
#define LOG_TEXT    320
#define BROKEN_TEXT 1024

enum {
    S_DISC,
    S_SETUP,
    S_PEND,
    S_CLAIM,
    S_LIVE,
    S_PAUSE,
    S_DRAIN,
    S_STOP,
    S_BROKEN
};

/* The table drawn above: legal[from][to]. */
static const bool legal[AW_CORE_STATE_COUNT][AW_CORE_STATE_COUNT] = {
    [S_DISC] = {[S_SETUP] = 1, [S_DRAIN] = 1, [S_BROKEN] = 1},
    [S_SETUP] = {[S_DISC] = 1,
                 [S_PEND] = 1,
                 [S_PAUSE] = 1,
                 [S_DRAIN] = 1,
                 [S_BROKEN] = 1},
    [S_PEND] = {[S_DISC] = 1,
                [S_SETUP] = 1,
                [S_CLAIM] = 1,
                [S_LIVE] = 1,
                [S_PAUSE] = 1,
                [S_DRAIN] = 1,
                [S_BROKEN] = 1},
    [S_CLAIM] = {[S_DISC] = 1,
                 [S_SETUP] = 1,
                 [S_LIVE] = 1,
                 [S_PAUSE] = 1,
                 [S_DRAIN] = 1,
                 [S_BROKEN] = 1},
    [S_LIVE] = {[S_DISC] = 1,
                [S_SETUP] = 1,
                [S_PEND] = 1,
                [S_CLAIM] = 1,
                [S_PAUSE] = 1,
                [S_DRAIN] = 1,
                [S_BROKEN] = 1},
    [S_PAUSE] = {[S_DISC] = 1,
                 [S_SETUP] = 1,
                 [S_PEND] = 1,
                 [S_CLAIM] = 1,
                 [S_DRAIN] = 1,
                 [S_BROKEN] = 1},
    [S_DRAIN] = {[S_STOP] = 1, [S_BROKEN] = 1},
};

static const char *const state_names[AW_CORE_STATE_COUNT] = {
    "disconnected", "setup",    "pending", "claiming", "live",
    "paused",       "draining", "stopped", "broken",
};

typedef struct core_gap {
    int stream;
    char first[TEXT], last[TEXT];
    bool delivered; /* a deleted pending entry */
    bool ack;       /* still in our pending list */
} core_gap;

typedef struct core_batch {
    aw_raw_entry **entries;
    aw_ingest_decoded **decoded; /* of each entry, or NULL; owned */
    int *streams;
    char **details; /* why an entry is forced out; NULL when not */
    aw_reject_reason *reasons;
    size_t n, cap;
    core_gap *gaps;
    size_t ngaps, capgaps;
    int64_t clock_ns;
    bool tick;         /* commit even when empty: the clock moved */
    size_t done, span; /* committed so far; size of the part on trial */
} core_batch;

typedef struct core_stream {
    char pending_from[TEXT];
    bool pending_done;
    char claim_cursor[TEXT];
    bool claim_done;
    bool has_lost_through;
    aw_stream_id lost_through; /* newest id already reported lost */
    long long lost_counted;    /* entries reported lost, still in the lag */
    /* lost_counted is what Redis counts: the group was made here, or a
     * snapshot that knew what is unread set it. Until then (a group that
     * existed when we started) its lag may hold losses reported by an
     * earlier run, so no suspect ids are reported on its word. */
    bool count_known;
    bool has_suspect; /* ids reads skipped that may have been trimmed */
    aw_stream_id suspect_first, suspect_last;
    /* of the read being counted: where its cursor moves once committed */
    char next_from[TEXT];
    bool next_done;
    bool has_committed;
    aw_stream_id committed; /* the newest entry id committed */
    bool rolled_back;       /* said once per rollback (find_losses) */
} core_stream;

typedef struct core_ack {
    char id[TEXT];
    int stream;
} core_ack;

typedef enum in_flight { IN_NONE, IN_GROUPS, IN_READ, IN_COUNT } in_flight;

typedef struct core_log {
    aw_core_log_level level;
    const char *event;
    char stream[128], first[TEXT], last[TEXT];
    char error[BROKEN_TEXT]; /* the longest: a broken index's reason */
    const char *action;
    long long entries;
} core_log;

struct aw_core {
    aw_core_config cfg;
    aw_core_state state;
    aw_core_state resume_to; /* PAUSED: where the timer leads */
    core_stream streams[NSTREAMS];

    in_flight in_flight;
    aw_core_read_kind read_kind;
    bool read_blocking;
    bool claim_due, caught_up;
    bool claim_held;      /* a claim round handed back entries a commit holds */
    core_batch *counting; /* a read waiting for its delivery counts */
    bool count_due;

    core_batch *committing; /* handed out, or waiting to be retried */
    bool commit_running;    /* handed out, not answered yet */
    bool commit_due;        /* hand it out at the next chance */
    core_batch *ready;      /* read, waiting for the commit slot */
    aw_ingest_item *items;  /* the part handed out */
    size_t items_cap;
    aw_ingest_trim *trims;
    size_t trims_cap;

    /* acknowledgements to hand out: ids per stream, copied */
    core_ack *acks;
    const char **ack_ids; /* acks[i].id, for the ACK actions */
    size_t nack, ack_cap;
    size_t ack_pos; /* next one to hand out */
    size_t acks_in_flight;

    bool read_timer_due, read_timer_on;
    bool commit_timer_due, commit_timer_on;
    int64_t read_retry_ms, commit_retry_ms;
    char read_error[LOG_TEXT]; /* last one logged */
    bool commit_failing;
    char commit_error[LOG_TEXT];
    bool splitting;

    core_log logs[LOG_QUEUE];
    size_t nlogs, log_head;
    core_log log_out;

    bool stop_emitted;
    char broken[BROKEN_TEXT];
    aw_core_totals totals;
};

const char *aw_core_state_name(aw_core_state state)
{
    return (unsigned)state < AW_CORE_STATE_COUNT ? state_names[state]
                                                 : "unknown";
}

aw_commit_class aw_commit_class_of(int rc)
{
    switch (rc) {
    case AW_OK: return AW_COMMIT_OK;
    case AW_ERR_BUSY:
    case AW_ERR_FULL:
    case AW_ERR_IO:
    case AW_ERR_NOMEM: return AW_COMMIT_TRANSIENT;
    case AW_ERR_BROKEN:
    case AW_ERR_VERSION: return AW_COMMIT_BROKEN;
    default: return AW_COMMIT_DETERMINISTIC;
    }
}

static const char *transient_words(int rc)
{
    switch (rc) {
    case AW_ERR_BUSY: return "the index is locked by another writer";
    case AW_ERR_FULL: return "the disk holding the index is full";
    case AW_ERR_NOMEM: return "out of memory";
    default: return "the index could not be read or written (I/O error)";
    }
}

/* The one place the state changes: every move is checked against the
 * drawn table. */
static void core_set_state(aw_core *c, aw_core_state to)
{
    bool allowed = legal[c->state][to] || c->state == to;
    assert(allowed);
    (void)allowed; /* read by assert() only */
    c->state = to;
}

static void core_log_add(aw_core *c, aw_core_log_level level, const char *event,
                         const char *stream, const char *first,
                         const char *last, const char *error,
                         const char *action, long long entries)
{
    core_log *l;
    if (c->nlogs == LOG_QUEUE)
        return; /* a burst: the first ones tell it */
    l = &c->logs[(c->log_head + c->nlogs++) % LOG_QUEUE];
    memset(l, 0, sizeof *l);
    l->level = level;
    l->event = event;
    snprintf(l->stream, sizeof l->stream, "%s", stream ? stream : "");
    snprintf(l->first, sizeof l->first, "%s", first ? first : "");
    snprintf(l->last, sizeof l->last, "%s", last ? last : "");
    snprintf(l->error, sizeof l->error, "%.*s", (int)sizeof l->error - 1,
             error ? error : "");
    l->action = action;
    l->entries = entries;
}

/* ---- Batches ------------------------------------------------------------- */

static void batch_free(core_batch *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++) {
        aw_raw_entry_free(b->entries[i]);
        aw_ingest_decoded_free(b->decoded[i]);
        free(b->details[i]);
    }
    free(b->entries);
    free(b->decoded);
    free(b->streams);
    free(b->details);
    free(b->reasons);
    free(b->gaps);
    free(b);
}

static bool batch_reserve(core_batch *b, size_t n)
{
    size_t cap;
    if (n <= b->cap)
        return true;
    cap = b->cap;
    if (!aw_array_grow((void **)&b->entries, &cap, n, sizeof *b->entries))
        return false;
    cap = b->cap;
    if (!aw_array_grow((void **)&b->decoded, &cap, n, sizeof *b->decoded))
        return false;
    cap = b->cap;
    if (!aw_array_grow((void **)&b->streams, &cap, n, sizeof *b->streams))
        return false;
    cap = b->cap;
    if (!aw_array_grow((void **)&b->details, &cap, n, sizeof *b->details))
        return false;
    cap = b->cap;
    if (!aw_array_grow((void **)&b->reasons, &cap, n, sizeof *b->reasons))
        return false;
    b->cap = cap;
    return true;
}

static bool batch_add_entry(core_batch *b, int stream, aw_raw_entry *e,
                            aw_ingest_decoded *decoded)
{
    if (!batch_reserve(b, b->n + 1))
        return false;
    b->entries[b->n] = e;
    b->decoded[b->n] = decoded;
    b->streams[b->n] = stream;
    b->details[b->n] = NULL;
    b->reasons[b->n] = AW_REJECT_NONE;
    b->n++;
    return true;
}

static bool batch_add_gap(core_batch *b, int stream, aw_stream_id first,
                          aw_stream_id last, bool delivered, bool ack)
{
    core_gap *g;
    if (!aw_array_grow((void **)&b->gaps, &b->capgaps, b->ngaps + 1,
                       sizeof *b->gaps))
        return false;
    g = &b->gaps[b->ngaps++];
    g->stream = stream;
    aw_stream_id_format(first, g->first);
    aw_stream_id_format(last, g->last);
    g->delivered = delivered;
    g->ack = ack;
    return true;
}

static bool batch_force(core_batch *b, size_t i, aw_reject_reason reason,
                        const char *detail)
{
    char *copy = strdup(detail);
    if (!copy)
        return false;
    free(b->details[i]);
    b->details[i] = copy;
    b->reasons[i] = reason;
    return true;
}

/* Appends from's content after into's (read order is commit order). */
static bool batch_merge(core_batch *into, core_batch *from)
{
    if (!batch_reserve(into, into->n + from->n) ||
        !aw_array_grow((void **)&into->gaps, &into->capgaps,
                       into->ngaps + from->ngaps, sizeof *into->gaps))
        return false;
    for (size_t i = 0; i < from->n; i++) {
        into->entries[into->n + i] = from->entries[i];
        into->decoded[into->n + i] = from->decoded[i];
        into->streams[into->n + i] = from->streams[i];
        into->details[into->n + i] = from->details[i];
        into->reasons[into->n + i] = from->reasons[i];
    }
    for (size_t i = 0; i < from->ngaps; i++)
        into->gaps[into->ngaps + i] = from->gaps[i];
    into->n += from->n;
    into->ngaps += from->ngaps;
    if (from->clock_ns > into->clock_ns)
        into->clock_ns = from->clock_ns;
    into->tick = into->tick || from->tick;
    from->n = from->ngaps = 0;
    batch_free(from);
    return true;
}

static bool batch_empty(const core_batch *b)
{
    return b->n == 0 && b->ngaps == 0;
}

/* ---- Life ---------------------------------------------------------------- */

aw_core *aw_core_new(const aw_core_config *config)
{
    aw_core *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->cfg = *config;
    c->state = AW_CORE_DISCONNECTED;
    return c;
}

void aw_core_free(aw_core *c)
{
    if (!c)
        return;
    assert(!c->commit_running);
    batch_free(c->counting);
    batch_free(c->committing);
    batch_free(c->ready);
    free(c->items);
    free(c->trims);
    free(c->acks);
    free(c->ack_ids);
    free(c);
}

aw_core_state aw_core_get_state(const aw_core *c)
{
    return c->state;
}
const aw_core_totals *aw_core_totals_get(const aw_core *c)
{
    return &c->totals;
}
const char *aw_core_broken_reason(const aw_core *c)
{
    return c->broken;
}

static bool terminal(const aw_core *c)
{
    return c->state == AW_CORE_STOPPED || c->state == AW_CORE_BROKEN;
}

static bool reading_state(aw_core_state s)
{
    return s == AW_CORE_SETUP || s == AW_CORE_PENDING ||
           s == AW_CORE_CLAIMING || s == AW_CORE_LIVE || s == AW_CORE_PAUSED;
}

const char *aw_index_error_advice(int code)
{
    switch (code) {
    case AW_ERR_BROKEN:
        return "check that the file is an auditwatch index and that this user may write it "
               "and its directory, then run 'auditwatch verify'; if it is damaged, move it "
               "aside and rebuild it with 'auditwatch replay' (or let 'run' index the "
               "retained history again into a new file)";
    case AW_ERR_VERSION:
        return "it was written by a newer auditwatch: run that version, or point --db at "
               "another file";
    default: return NULL;
    }
}

static void go_broken(aw_core *c, const char *what, const char *msg)
{
    if (terminal(c))
        return;
    snprintf(
        c->broken, sizeof c->broken,
        "%.100s: %.300s. Nothing of the failed batch was acknowledged, so it is delivered "
        "again after a restart. To go on: %.400s",
        what, msg, aw_index_error_advice(AW_ERR_BROKEN));
    core_log_add(c, AW_CORE_ERROR, "index_broken", NULL, NULL, NULL, c->broken,
                 "stopping; exit status 3", -1);
    core_set_state(c, AW_CORE_BROKEN);
}

static void enter_pending(aw_core *c)
{
    for (int s = 0; s < NSTREAMS; s++) {
        snprintf(c->streams[s].pending_from, TEXT, "0");
        c->streams[s].pending_done = false;
    }
    core_set_state(c, AW_CORE_PENDING);
}

static void enter_claiming(aw_core *c)
{
    for (int s = 0; s < NSTREAMS; s++) {
        snprintf(c->streams[s].claim_cursor, TEXT, "0-0");
        c->streams[s].claim_done = false;
    }
    c->claim_due = false;
    core_set_state(c, AW_CORE_CLAIMING);
}

/* A read-side command failed: wait, then go to `then`. */
static void pause_reads(aw_core *c, aw_core_state then, const char *why)
{
    if (!reading_state(c->state))
        return; /* draining: nothing is retried, the rest stays pending */
    if (strcmp(why, c->read_error) != 0) {
        core_log_add(c, AW_CORE_ERROR, "redis_command_failed", NULL, NULL, NULL,
                     why, "retrying with backoff", -1);
        snprintf(c->read_error, sizeof c->read_error, "%s", why);
    }
    c->read_retry_ms =
        c->read_retry_ms ? c->read_retry_ms * 2 : c->cfg.retry_first_ms;
    if (c->read_retry_ms > c->cfg.retry_max_ms)
        c->read_retry_ms = c->cfg.retry_max_ms;
    c->resume_to = then;
    c->read_timer_due = true;
    core_set_state(c, AW_CORE_PAUSED);
}

void aw_core_on_connected(aw_core *c)
{
    if (!reading_state(c->state) && c->state != AW_CORE_DISCONNECTED)
        return;
    c->caught_up = false;
    core_set_state(c, AW_CORE_SETUP);
}

void aw_core_on_lost(aw_core *c)
{
    c->in_flight = IN_NONE;
    batch_free(c->counting);
    c->counting = NULL;
    c->count_due = false;
    if (reading_state(c->state))
        core_set_state(c, AW_CORE_DISCONNECTED);
}

void aw_core_on_groups(aw_core *c, bool ok, const char *why)
{
    if (c->in_flight == IN_GROUPS)
        c->in_flight = IN_NONE;
    if (c->state != AW_CORE_SETUP)
        return;
    if (!ok && !why)
        return; /* the connection went: aw_core_on_lost follows */
    if (!ok) {
        pause_reads(c, AW_CORE_SETUP, why);
        return;
    }
    c->read_retry_ms = 0;
    c->read_error[0] = '\0';
    c->claim_due = true;
    enter_pending(c);
}

void aw_core_on_group_created(aw_core *c, int stream)
{
    core_stream *st = &c->streams[stream];
    /* The new group's lag holds none of the old one's reported losses. */
    st->has_lost_through = false;
    st->lost_counted = 0;
    st->count_known = true;
    st->has_suspect = false;
}

void aw_core_set_committed(aw_core *c, int stream, aw_stream_id id)
{
    core_stream *st = &c->streams[stream];
    if (!st->has_committed || aw_stream_id_cmp(id, st->committed) > 0)
        st->committed = id;
    st->has_committed = true;
}

bool aw_core_committed(const aw_core *c, int stream, aw_stream_id *id)
{
    *id = c->streams[stream].committed;
    return c->streams[stream].has_committed;
}

/* ---- Committing ---------------------------------------------------------- */

static void start_batch(aw_core *c, core_batch *b)
{
    c->committing = b;
    b->done = 0;
    b->span = b->n;
    c->commit_due = true;
}

static void submit(aw_core *c, core_batch *b)
{
    if (batch_empty(b) && !b->tick) {
        batch_free(b);
    } else if (!c->committing) {
        start_batch(c, b);
    } else if (!c->ready) {
        c->ready = b;
    } else if (!batch_merge(c->ready, b)) {
        /* Its entries stay pending in Redis: read them again. */
        core_log_add(c, AW_CORE_ERROR, "out_of_memory", NULL, NULL, NULL,
                     "grouping reads",
                     "reading this consumer's pending entries again", -1);
        batch_free(b);
        if (c->state == AW_CORE_LIVE)
            enter_pending(c);
    }
}

static bool ready_full(const aw_core *c)
{
    return c->ready && c->ready->n >= c->cfg.group_max_entries;
}

/* Fills the commit of the part on trial. false when out of memory. */
static bool build_commit(aw_core *c, aw_core_commit *out)
{
    core_batch *b = c->committing;
    bool last = b->done + b->span == b->n;
    if (!aw_array_grow((void **)&c->items, &c->items_cap, b->span ? b->span : 1,
                       sizeof *c->items) ||
        !aw_array_grow((void **)&c->trims, &c->trims_cap,
                       b->ngaps ? b->ngaps : 1, sizeof *c->trims))
        return false;
    for (size_t i = 0; i < b->span; i++) {
        size_t k = b->done + i;
        c->items[i] = (aw_ingest_item){b->entries[k], b->reasons[k],
                                       b->details[k], b->decoded[k]};
    }
    for (size_t i = 0; last && i < b->ngaps; i++)
        c->trims[i] = (aw_ingest_trim){c->cfg.streams[b->gaps[i].stream],
                                       b->gaps[i].first, b->gaps[i].last,
                                       b->gaps[i].delivered};
    *out = (aw_core_commit){c->items, b->span, c->trims, last ? b->ngaps : 0,
                            last ? b->clock_ns : 0};
    return true;
}

static bool ack_add(aw_core *c, int stream, const char *id)
{
    if (c->nack == c->ack_cap) {
        size_t cap = c->ack_cap;
        if (!aw_array_grow((void **)&c->acks, &cap, c->nack + 1,
                           sizeof *c->acks))
            return false;
        cap = c->ack_cap;
        if (!aw_array_grow((void **)&c->ack_ids, &cap, c->nack + 1,
                           sizeof *c->ack_ids))
            return false;
        c->ack_cap = cap;
    }
    snprintf(c->acks[c->nack].id, TEXT, "%s", id);
    c->acks[c->nack].stream = stream;
    c->nack++;
    return true;
}

/* The part just committed becomes acknowledgements, grouped by stream. */
static void queue_acks(aw_core *c, const core_batch *b, bool last)
{
    assert(c->ack_pos == c->nack); /* the previous part's were handed out */
    c->nack = c->ack_pos = 0;
    for (int s = 0; s < NSTREAMS; s++) {
        for (size_t i = b->done; i < b->done + b->span; i++)
            if (b->streams[i] == s && !ack_add(c, s, b->entries[i]->id.ptr))
                goto nomem;
        for (size_t i = 0; last && i < b->ngaps; i++)
            if (b->gaps[i].stream == s && b->gaps[i].ack &&
                !ack_add(c, s, b->gaps[i].first))
                goto nomem;
    }
    /* Pointers only now: acks may have moved while it grew. */
    for (size_t i = 0; i < c->nack; i++)
        c->ack_ids[i] = c->acks[i].id;
    return;
nomem:
    /* Unacknowledged entries are delivered again and found stored. */
    core_log_add(
        c, AW_CORE_WARN, "ack_failed", NULL, NULL, NULL, "out of memory",
        "the entries stay pending and are found stored when delivered again",
        -1);
    c->nack = c->ack_pos = 0;
}

static void commit_succeeded(aw_core *c)
{
    core_batch *b = c->committing;
    bool last = b->done + b->span == b->n;
    if (c->commit_failing) {
        core_log_add(c, AW_CORE_INFO, "index_commit_recovered", NULL, NULL,
                     NULL, NULL, NULL, -1);
        c->commit_failing = false;
        c->commit_error[0] = '\0';
    }
    c->commit_retry_ms = 0;
    c->totals.entries_committed += b->span;
    for (size_t i = b->done; i < b->done + b->span; i++)
        aw_core_set_committed(
            c, b->streams[i],
            (aw_stream_id){b->entries[i]->id_ms, b->entries[i]->id_seq});
    queue_acks(c, b, last);
    if (!last) {
        b->done += b->span;
        b->span = b->n - b->done; /* try the rest whole */
        c->commit_due = true;
        return;
    }
    if (c->splitting) {
        core_log_add(c, AW_CORE_INFO, "batch_split_done", NULL, NULL, NULL,
                     NULL, NULL, (long long)b->n);
        c->splitting = false;
    }
    batch_free(b);
    c->committing = NULL;
    c->claim_held = false;
    if (c->ready) {
        core_batch *next = c->ready;
        c->ready = NULL;
        start_batch(c, next);
    }
}

static void commit_transient(aw_core *c, int rc, const char *msg)
{
    char words[LOG_TEXT];
    snprintf(words, sizeof words, "%s (%s)", transient_words(rc), msg);
    if (!c->commit_failing || strcmp(c->commit_error, words) != 0) {
        core_log_add(c, AW_CORE_ERROR, "index_commit_failed", NULL, NULL, NULL,
                     words, "retrying with backoff; nothing is acknowledged",
                     (long long)c->committing->span);
        snprintf(c->commit_error, sizeof c->commit_error, "%s", words);
    }
    c->commit_failing = true;
    c->commit_retry_ms =
        c->commit_retry_ms ? c->commit_retry_ms * 2 : c->cfg.retry_first_ms;
    if (c->commit_retry_ms > c->cfg.retry_max_ms)
        c->commit_retry_ms = c->cfg.retry_max_ms;
    c->commit_timer_due = true;
}

static void commit_deterministic(aw_core *c, const char *msg)
{
    core_batch *b = c->committing;
    if (b->span > 1) {
        if (!c->splitting)
            core_log_add(c, AW_CORE_WARN, "index_refused_batch", NULL, NULL,
                         NULL, msg, "splitting the batch to find the entry",
                         (long long)b->n);
        c->splitting = true;
        b->span = (b->span + 1) / 2;
        c->commit_due = true;
        return;
    }
    if (b->span == 1 && b->reasons[b->done] == AW_REJECT_NONE) {
        size_t k = b->done;
        char detail[LOG_TEXT];
        snprintf(detail, sizeof detail, "the index refused it: %s", msg);
        if (!batch_force(b, k, AW_REJECT_INDEX_ERROR, detail)) {
            commit_transient(c, AW_ERR_NOMEM,
                             "keeping the reason of a refused entry");
            return;
        }
        c->totals.rejected_by_index++;
        core_log_add(c, AW_CORE_WARN, "entry_refused_by_index",
                     c->cfg.streams[b->streams[k]], b->entries[k]->id.ptr, NULL,
                     msg, "stored as rejected (index_error)", 1);
        c->commit_due = true;
        return;
    }
    go_broken(c, "the index refused a batch even without its entries", msg);
}

void aw_core_on_commit(aw_core *c, int rc, const aw_error *err)
{
    const char *msg = err && err->msg[0] ? err->msg : "unknown error";
    assert(c->commit_running && c->committing);
    c->commit_running = false;
    if (terminal(c)) {
        batch_free(c->committing);
        c->committing = NULL;
        return;
    }
    switch (aw_commit_class_of(rc)) {
    case AW_COMMIT_OK: commit_succeeded(c); break;
    case AW_COMMIT_TRANSIENT: commit_transient(c, rc, msg); break;
    case AW_COMMIT_DETERMINISTIC: commit_deterministic(c, msg); break;
    case AW_COMMIT_BROKEN:
        go_broken(c, "the index cannot be written", msg);
        break;
    }
}

void aw_core_on_acked(aw_core *c, bool failed, long long acked)
{
    assert(c->acks_in_flight > 0);
    c->acks_in_flight--;
    if (!failed && acked > 0)
        c->totals.acked += (size_t)acked;
}

/* ---- Reads --------------------------------------------------------------- */

/* True when an uncommitted batch holds the entry: XAUTOCLAIM hands back our
 * own entries too once a slow commit lets them idle past the claim
 * threshold, and taking them again would count a delivery that never
 * failed. Claim rounds are rare and the batches bounded: a scan will do. */
static bool held_in_flight(const aw_core *c, int stream, const aw_raw_entry *e)
{
    const core_batch *held[] = {c->committing, c->ready};
    for (size_t k = 0; k < 2; k++)
        for (size_t i = 0; held[k] && i < held[k]->n; i++)
            if (held[k]->streams[i] == stream &&
                held[k]->entries[i]->id_ms == e->id_ms &&
                held[k]->entries[i]->id_seq == e->id_seq)
                return true;
    return false;
}

static void free_read(aw_core_read *r, size_t from_stream, size_t from_entry)
{
    for (size_t s = from_stream; s < NSTREAMS; s++) {
        aw_core_stream_read *sr = &r->streams[s];
        for (size_t i = s == from_stream ? from_entry : 0; i < sr->n; i++) {
            aw_raw_entry_free(sr->entries[i]);
            if (sr->decoded)
                aw_ingest_decoded_free(sr->decoded[i]);
        }
        sr->n = 0;
    }
}

static bool report_loss(aw_core *c, core_batch *b, int s, aw_stream_id first,
                        aw_stream_id last)
{
    core_stream *st = &c->streams[s];
    char a[TEXT], z[TEXT];
    if (!batch_add_gap(b, s, first, last, false, false))
        return false;
    if (!st->has_lost_through || aw_stream_id_cmp(last, st->lost_through) > 0)
        st->lost_through = last;
    st->has_lost_through = true;
    core_log_add(c, AW_CORE_WARN, "entries_deleted_unread", c->cfg.streams[s],
                 aw_stream_id_format(first, a), aw_stream_id_format(last, z),
                 NULL, "reported as audit_evidence_trimmed", -1);
    return true;
}

/* Widens the range [*lo, *hi] (none yet when !*has) to hold [first, last]. */
static void widen(bool *has, aw_stream_id *lo, aw_stream_id *hi,
                  aw_stream_id first, aw_stream_id last)
{
    if (!*has || aw_stream_id_cmp(first, *lo) < 0)
        *lo = first;
    if (!*has || aw_stream_id_cmp(last, *hi) > 0)
        *hi = last;
    *has = true;
}

/* The oldest entry of stream s in a read's batch (reads are in id order). */
static bool oldest_read(const core_batch *b, int s, aw_stream_id *out)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->streams[i] == s) {
            *out = (aw_stream_id){b->entries[i]->id_ms, b->entries[i]->id_seq};
            return true;
        }
    return false;
}

/* Where the unread range an XDEL left ends at deleted starts, from after
 * `from`: the entries the read brought below it are retained, so after the
 * newest of them -- once the read went past it; short of it (COUNT), entries
 * before it may still come, and only the deleted id is known. */
static aw_stream_id deleted_from(const core_batch *b, int s, aw_stream_id from,
                                 aw_stream_id deleted)
{
    bool passed = true;
    for (size_t i = 0; i < b->n; i++) {
        aw_stream_id id = {b->entries[i]->id_ms, b->entries[i]->id_seq};
        if (b->streams[i] != s)
            continue;
        passed = aw_stream_id_cmp(id, deleted) > 0;
        if (!passed && aw_stream_id_cmp(id, from) > 0)
            from = id;
    }
    return passed ? aw_stream_id_next(from) : deleted;
}

/* Entries deleted after the group's last-delivered id L were never
 * delivered. Trimming (MAXLEN, MINID) deletes from the head and leaves no
 * tombstone id; Redis still counts what it took unread in the group's lag.
 * So lag - unread - lost_counted entries were lost unreported, which a
 * snapshot can tell only when it knows what is unread: everything retained
 * when L lies before the first retained entry (the lost range is then
 * (L, first retained)), nothing when L is the newest id. A trim can also run
 * between the snapshot and the read (separate commands): the read then
 * skips what it took, so each read leaves the ids between L and the oldest
 * entry it brought as suspect, and the next snapshot that knows what is
 * unread reports the suspects with the loss it counts. XDEL leaves
 * max-deleted-entry-id: beyond L, it went unread, and so did what lies
 * between it and the retained entry before it (deleted_from).
 * Each range is reported once; Redis keeps counting reported entries in the
 * lag (until the group is made again), so they are subtracted. */
/* Our group was delivered less than was committed: Redis came back from an
 * older save (or an AOF that lost its last second). What producers
 * published after that save, if auditwatch had not read it yet, is gone
 * with no id range to report, so it is said, once per rollback. */
static void note_rollback(aw_core *c, int s, const aw_core_snapshot *b)
{
    core_stream *st = &c->streams[s];
    char a[TEXT], z[TEXT];
    bool back = st->has_committed &&
                aw_stream_id_cmp(b->last_delivered, st->committed) < 0;
    if (back && !st->rolled_back)
        core_log_add(c, AW_CORE_WARN, "redis_rolled_back", c->cfg.streams[s],
                     aw_stream_id_format(b->last_delivered, a),
                     aw_stream_id_format(st->committed, z), NULL,
                     "Redis holds an older state than auditwatch indexed: "
                     "entries published after its last save and not read "
                     "before the restart are lost",
                     -1);
    st->rolled_back = back;
}

static bool find_losses(aw_core *c, const aw_core_read *r, core_batch *batch)
{
    for (int s = 0; s < NSTREAMS; s++) {
        core_stream *st = &c->streams[s];
        const aw_core_snapshot *b = &r->streams[s].before;
        aw_stream_id from, oldest;
        bool behind;
        if (!b->has_info || !b->has_group)
            continue;
        note_rollback(c, s, b);
        from = b->last_delivered;
        if (st->has_lost_through &&
            aw_stream_id_cmp(st->lost_through, from) > 0)
            from = st->lost_through;
        behind =
            b->length == 0 ||
            (b->has_first && aw_stream_id_cmp(b->last_delivered, b->first) < 0);
        if (b->has_lag &&
            (behind ||
             aw_stream_id_cmp(b->last_delivered, b->last_generated) == 0)) {
            long long counted = b->lag - (behind ? b->length : 0);
            aw_stream_id lo, hi;
            bool gap = false;
            if (behind) {
                aw_stream_id last =
                    b->length ? aw_stream_id_prev(b->first) : b->last_generated;
                if (aw_stream_id_cmp(aw_stream_id_next(from), last) <= 0)
                    widen(&gap, &lo, &hi, aw_stream_id_next(from), last);
            }
            if (st->has_suspect && st->count_known)
                widen(&gap, &lo, &hi, st->suspect_first, st->suspect_last);
            st->has_suspect = false;
            if (counted > st->lost_counted && gap) {
                if (!report_loss(c, batch, s, lo, hi))
                    return false;
                if (aw_stream_id_cmp(hi, from) > 0)
                    from = hi;
            }
            /* Redis's count, now reported (or lower: after an XDEL it may
             * estimate the group's counter again). */
            st->lost_counted = counted;
            st->count_known = true;
        }
        if (aw_stream_id_cmp(b->max_deleted, from) > 0) {
            if (!report_loss(c, batch, s,
                             deleted_from(batch, s, from, b->max_deleted),
                             b->max_deleted))
                return false;
            from = b->max_deleted;
        }
        if (oldest_read(batch, s, &oldest) &&
            aw_stream_id_cmp(aw_stream_id_next(from), oldest) < 0)
            widen(&st->has_suspect, &st->suspect_first, &st->suspect_last,
                  aw_stream_id_next(from), aw_stream_id_prev(oldest));
    }
    return true;
}

/* Moves the read's entries and deleted ids into a new batch. NULL when out
 * of memory (the read's entries are freed either way). */
static core_batch *take_read(aw_core *c, aw_core_read *r)
{
    core_batch *b = calloc(1, sizeof *b);
    for (int s = 0; s < NSTREAMS; s++) {
        aw_core_stream_read *sr = &r->streams[s];
        core_stream *st = &c->streams[s];
        bool seen = false;
        aw_stream_id newest = {0, 0};
        for (size_t i = 0; b && i < sr->n; i++) {
            aw_raw_entry *e = sr->entries[i];
            aw_ingest_decoded *decoded = sr->decoded ? sr->decoded[i] : NULL;
            aw_stream_id id = {e->id_ms, e->id_seq};
            if (!seen || aw_stream_id_cmp(id, newest) > 0)
                newest = id;
            seen = true;
            if (r->kind == AW_CORE_READ_CLAIM && held_in_flight(c, s, e)) {
                c->claim_held = true;
                aw_raw_entry_free(e);
                aw_ingest_decoded_free(decoded);
            } else if (!batch_add_entry(b, s, e, decoded)) {
                free_read(r, (size_t)s, i);
                batch_free(b);
                return NULL;
            }
        }
        sr->n = 0;
        for (size_t i = 0; b && i < sr->ndeleted; i++) {
            if (!seen || aw_stream_id_cmp(sr->deleted[i], newest) > 0)
                newest = sr->deleted[i];
            seen = true;
            if (!batch_add_gap(b, s, sr->deleted[i], sr->deleted[i], true,
                               true)) {
                free_read(r, (size_t)s + 1, 0);
                batch_free(b);
                return NULL;
            }
        }
        for (size_t i = 0; b && i < sr->nclaim_deleted; i++)
            if (!batch_add_gap(b, s, sr->claim_deleted[i], sr->claim_deleted[i],
                               true, false)) {
                free_read(r, (size_t)s + 1, 0);
                batch_free(b);
                return NULL;
            }
        if (r->kind == AW_CORE_READ_PENDING) {
            st->next_done = !seen;
            if (seen)
                aw_stream_id_format(newest, st->next_from);
        } else if (r->kind == AW_CORE_READ_CLAIM) {
            st->next_done =
                sr->claim_cursor.ms == 0 && sr->claim_cursor.seq == 0;
            aw_stream_id_format(sr->claim_cursor, st->next_from);
        }
    }
    if (!b)
        free_read(r, 0, 0);
    return b;
}

/* The cursors move once the read's batch is in a commit slot. */
static void advance_cursors(aw_core *c, aw_core_read_kind kind,
                            const bool asked[NSTREAMS])
{
    for (int s = 0; s < NSTREAMS; s++) {
        core_stream *st = &c->streams[s];
        if (!asked[s])
            continue;
        if (kind == AW_CORE_READ_PENDING) {
            st->pending_done = st->next_done;
            if (!st->next_done)
                memcpy(st->pending_from, st->next_from, TEXT);
        } else if (kind == AW_CORE_READ_CLAIM) {
            st->claim_done = st->next_done;
            memcpy(st->claim_cursor, st->next_from, TEXT);
        }
    }
}

static void asked_of(const aw_core *c, aw_core_read_kind kind,
                     bool out[NSTREAMS])
{
    for (int s = 0; s < NSTREAMS; s++)
        out[s] = kind == AW_CORE_READ_PENDING ? !c->streams[s].pending_done
                 : kind == AW_CORE_READ_CLAIM ? !c->streams[s].claim_done
                                              : true;
}

/* A read that went wrong: where to go from here. */
static void read_failed(aw_core *c, const aw_core_read *r)
{
    /* A lost connection is told apart (aw_core_on_lost): nothing to retry. */
    if (r->lost || !reading_state(c->state) || c->state == AW_CORE_PAUSED)
        return;
    if (r->group_missing) {
        core_log_add(c, AW_CORE_WARN, "group_missing", NULL, NULL, NULL, r->why,
                     "creating it again", -1);
        core_set_state(c, AW_CORE_SETUP);
        return;
    }
    pause_reads(c, c->state == AW_CORE_LIVE ? AW_CORE_PENDING : c->state,
                r->why ? r->why : "unexpected reply");
}

static void read_succeeded(aw_core *c)
{
    c->read_retry_ms = 0;
    c->read_error[0] = '\0';
}

void aw_core_on_read(aw_core *c, aw_core_read *r)
{
    bool asked[NSTREAMS];
    core_batch *b;
    bool was_blocking = c->read_blocking;
    if (c->in_flight == IN_READ)
        c->in_flight = IN_NONE;
    if (terminal(c) || c->state == AW_CORE_DISCONNECTED || r->failed) {
        free_read(r, 0, 0);
        if (r->failed)
            read_failed(c, r);
        return;
    }
    asked_of(c, r->kind, asked);
    if (!(b = take_read(c, r))) {
        pause_reads(c, c->state == AW_CORE_LIVE ? AW_CORE_PENDING : c->state,
                    "out of memory while copying a read");
        return;
    }
    read_succeeded(c);
    if (r->kind == AW_CORE_READ_LIVE) {
        bool audit_new = false;
        for (size_t i = 0; i < b->n; i++)
            if (b->streams[i] == AW_ROLE_AUDIT)
                audit_new = true;
        if (!find_losses(c, r, b)) {
            batch_free(b);
            pause_reads(c, AW_CORE_PENDING,
                        "out of memory while noting a loss");
            return;
        }
        if (!audit_new)
            b->clock_ns = r->now_ns;
        c->caught_up = b->n == 0;
        b->tick = was_blocking; /* an idle blocking read moves the clock */
        submit(c, b);
        return;
    }
    if (b->n == 0) {
        advance_cursors(c, r->kind, asked);
        submit(c, b);
        return;
    }
    c->counting = b;
    c->read_kind = r->kind;
    c->count_due = true;
}

void aw_core_on_counts(aw_core *c, bool failed, const char *why,
                       const aw_core_delivery *const rows[NSTREAMS],
                       const size_t nrows[NSTREAMS])
{
    bool asked[NSTREAMS];
    core_batch *b = c->counting;
    if (c->in_flight == IN_COUNT)
        c->in_flight = IN_NONE;
    if (!b)
        return;
    c->counting = NULL;
    if (failed) {
        batch_free(b);
        if (why && c->state != AW_CORE_PAUSED)
            pause_reads(c, c->state, why);
        return;
    }
    for (size_t i = 0; i < b->n; i++) {
        const aw_raw_entry *e = b->entries[i];
        int s = b->streams[i];
        aw_stream_id id = {e->id_ms, e->id_seq};
        for (size_t k = 0; k < nrows[s]; k++) {
            char detail[96];
            if (aw_stream_id_cmp(rows[s][k].id, id) != 0 ||
                rows[s][k].count <= c->cfg.max_deliveries)
                continue;
            snprintf(detail, sizeof detail, "delivered %lld times (limit %lld)",
                     rows[s][k].count, (long long)c->cfg.max_deliveries);
            if (!batch_force(b, i, AW_REJECT_TOO_MANY_DELIVERIES, detail)) {
                batch_free(b);
                pause_reads(c, c->state,
                            "out of memory while counting deliveries");
                return;
            }
            break;
        }
    }
    asked_of(c, c->read_kind, asked);
    advance_cursors(c, c->read_kind, asked);
    submit(c, b);
}

/* ---- Timers and stopping ------------------------------------------------- */

void aw_core_on_timer(aw_core *c, aw_core_timer timer)
{
    if (timer == AW_CORE_TIMER_READS && c->read_timer_on) {
        c->read_timer_on = false;
        if (c->state == AW_CORE_PAUSED) {
            if (c->resume_to == AW_CORE_PENDING)
                enter_pending(c);
            else
                core_set_state(c, c->resume_to);
        }
    }
    if (timer == AW_CORE_TIMER_COMMIT && c->commit_timer_on) {
        c->commit_timer_on = false;
        if (c->committing && !c->commit_running)
            c->commit_due = true;
    }
}

void aw_core_on_claim_due(aw_core *c)
{
    c->claim_due = true;
}

void aw_core_on_stop(aw_core *c)
{
    if (terminal(c))
        return;
    if (c->state == AW_CORE_DRAINING) {
        core_log_add(
            c, AW_CORE_WARN, "stop_now", NULL, NULL, NULL, NULL,
            "what was not acknowledged is delivered again at the next start",
            -1);
        core_set_state(c, AW_CORE_STOPPED);
        return;
    }
    core_set_state(c, AW_CORE_DRAINING);
}

static bool drained(const aw_core *c)
{
    return !c->committing && !c->ready && !c->counting &&
           c->acks_in_flight == 0 && c->ack_pos == c->nack &&
           !(c->in_flight == IN_READ && !c->read_blocking) &&
           c->in_flight != IN_COUNT;
}

/* ---- What to do now ------------------------------------------------------ */

static bool next_log(aw_core *c, aw_core_action *a)
{
    core_log *l;
    if (!c->nlogs)
        return false;
    c->log_out = c->logs[c->log_head];
    c->log_head = (c->log_head + 1) % LOG_QUEUE;
    c->nlogs--;
    l = &c->log_out;
    a->kind = AW_ACT_LOG;
    a->log.level = l->level;
    a->log.event = l->event;
    a->log.stream = l->stream[0] ? l->stream : NULL;
    a->log.first_id = l->first[0] ? l->first : NULL;
    a->log.last_id = l->last[0] ? l->last : NULL;
    a->log.error = l->error[0] ? l->error : NULL;
    a->log.action = l->action;
    a->log.entries = l->entries;
    return true;
}

/* One XACK per stream with ids in the part just committed. */
static bool next_ack(aw_core *c, aw_core_action *a)
{
    size_t from = c->ack_pos;
    if (from == c->nack)
        return false;
    while (c->ack_pos < c->nack &&
           c->acks[c->ack_pos].stream == c->acks[from].stream)
        c->ack_pos++;
    a->kind = AW_ACT_ACK;
    a->ack.stream = c->acks[from].stream;
    a->ack.ids = &c->ack_ids[from];
    a->ack.n = c->ack_pos - from;
    c->acks_in_flight++;
    return true;
}

/* A claim round is due and may run. Not while a commit is failing, nor
 * once a round handed back entries a commit still holds (held_in_flight):
 * those idle in the group while the commit waits (a lock, a full disk), and
 * Redis counts every XAUTOCLAIM hand-over as a delivery, so claim rounds
 * over max_deliveries claim periods, then a restart, would reject them
 * TOO_MANY_DELIVERIES though nothing is wrong with them. Nothing claimed
 * could commit before them anyway; claiming resumes once they committed. */
static bool claim_now(const aw_core *c)
{
    return c->claim_due && !c->commit_failing && !c->claim_held;
}

static bool next_read(aw_core *c, aw_core_action *a)
{
    for (;;) {
        aw_core_read_kind kind;
        bool any = false;
        if (c->in_flight != IN_NONE || c->counting || ready_full(c))
            return false;
        switch (c->state) {
        case AW_CORE_SETUP:
            a->kind = AW_ACT_CREATE_GROUPS;
            c->in_flight = IN_GROUPS;
            return true;
        case AW_CORE_PENDING: kind = AW_CORE_READ_PENDING; break;
        case AW_CORE_CLAIMING: kind = AW_CORE_READ_CLAIM; break;
        case AW_CORE_LIVE:
            if (claim_now(c)) {
                enter_claiming(c);
                continue;
            }
            if (c->caught_up && c->committing)
                return false; /* block after the commit */
            kind = AW_CORE_READ_LIVE;
            break;
        default: return false;
        }
        a->read.kind = kind;
        a->read.blocking = kind == AW_CORE_READ_LIVE && !c->committing;
        for (int s = 0; s < NSTREAMS; s++) {
            core_stream *st = &c->streams[s];
            a->read.want[s] = kind == AW_CORE_READ_PENDING ? !st->pending_done
                              : kind == AW_CORE_READ_CLAIM ? !st->claim_done
                                                           : true;
            a->read.from[s] = kind == AW_CORE_READ_PENDING ? st->pending_from
                              : kind == AW_CORE_READ_CLAIM ? st->claim_cursor
                                                           : ">";
            any = any || a->read.want[s];
        }
        if (!any) {
            if (kind == AW_CORE_READ_PENDING && claim_now(c))
                enter_claiming(c);
            else
                core_set_state(c, AW_CORE_LIVE);
            continue;
        }
        a->kind = AW_ACT_READ;
        c->in_flight = IN_READ;
        c->read_kind = kind;
        c->read_blocking = a->read.blocking;
        return true;
    }
}

static bool next_count(aw_core *c, aw_core_action *a)
{
    core_batch *b = c->counting;
    bool any = false;
    if (!c->count_due || !b)
        return false;
    c->count_due = false;
    for (int s = 0; s < NSTREAMS; s++) {
        size_t first = SIZE_MAX, last = 0, n = 0;
        for (size_t i = 0; i < b->n; i++)
            if (b->streams[i] == s) {
                if (first == SIZE_MAX)
                    first = i;
                last = i;
                n++;
            }
        a->count.want[s] = n > 0;
        a->count.first[s] = n ? b->entries[first]->id.ptr : NULL;
        a->count.last[s] = n ? b->entries[last]->id.ptr : NULL;
        a->count.max_rows[s] = 2 * n + 100;
        any = any || n > 0;
    }
    assert(any);
    a->kind = AW_ACT_COUNT;
    c->in_flight = IN_COUNT;
    return true;
}

void aw_core_next(aw_core *c, aw_core_action *a)
{
    memset(a, 0, sizeof *a);
    if (next_log(c, a))
        return;
    if (next_ack(c, a))
        return;
    if (c->state == AW_CORE_BROKEN || c->state == AW_CORE_STOPPED) {
        if (!c->stop_emitted) {
            c->stop_emitted = true;
            a->kind = AW_ACT_STOP;
        }
        return;
    }
    if (c->commit_due && c->committing && !c->commit_running) {
        if (!build_commit(c, &a->commit)) {
            commit_transient(c, AW_ERR_NOMEM, "building the commit");
        } else {
            c->commit_due = false;
            c->commit_running = true;
            a->kind = AW_ACT_COMMIT;
            return;
        }
    }
    if (c->commit_timer_due) {
        c->commit_timer_due = false;
        c->commit_timer_on = true;
        a->kind = AW_ACT_WAIT;
        a->wait.timer = AW_CORE_TIMER_COMMIT;
        a->wait.ms = c->commit_retry_ms;
        return;
    }
    if (c->read_timer_due) {
        c->read_timer_due = false;
        c->read_timer_on = true;
        a->kind = AW_ACT_WAIT;
        a->wait.timer = AW_CORE_TIMER_READS;
        a->wait.ms = c->read_retry_ms;
        return;
    }
    /* Draining too: a read answered after the stop commits once counted. */
    if (next_count(c, a))
        return;
    if (c->state == AW_CORE_DRAINING) {
        if (drained(c)) {
            core_set_state(c, AW_CORE_STOPPED);
            c->stop_emitted = true;
            a->kind = AW_ACT_STOP;
        }
        return;
    }
    next_read(c, a);
}

static void oldest_in(const core_batch *b, int stream, bool *found,
                      uint64_t *ms)
{
    for (size_t i = 0; b && i < b->n; i++)
        if (b->streams[i] == stream &&
            (!*found || b->entries[i]->id_ms < *ms)) {
            *found = true;
            *ms = b->entries[i]->id_ms;
        }
}

bool aw_core_oldest_unacked_ms(const aw_core *c, int stream, uint64_t *ms)
{
    bool found = false;
    oldest_in(c->counting, stream, &found, ms);
    oldest_in(c->committing, stream, &found, ms);
    oldest_in(c->ready, stream, &found, ms);
    for (size_t i = 0;
         (c->ack_pos < c->nack || c->acks_in_flight) && i < c->nack; i++) {
        uint64_t id_ms, seq;
        if (c->acks[i].stream == stream &&
            aw_stream_id_parse(c->acks[i].id, strlen(c->acks[i].id), &id_ms,
                               &seq) == AW_OK &&
            (!found || id_ms < *ms)) {
            found = true;
            *ms = id_ms;
        }
    }
    return found;
}
