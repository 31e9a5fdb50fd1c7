/* daemon.c -- the consumer's state machine: what to read, when to commit,
 * what to acknowledge.
 *
 * The rule everything else serves: an entry is acknowledged (XACK) only
 * after the SQLite transaction holding it committed. Until then it stays in
 * the group's pending list, so a crash, a lost connection or a failed commit
 * at any point loses nothing: the entry is delivered again, and the index
 * recognises it (aw_ingest_batch is idempotent per stream and entry id).
 *
 * The loop. One connection (redis_conn.c) carries everything, in phases:
 *   SETUP    XGROUP CREATE <stream> <group> <start> MKSTREAM for every
 *            stream, BUSYGROUP tolerated (start "0": every retained entry).
 *   PENDING  re-read this consumer's own pending entries (XREADGROUP ... 0,
 *            paging by id) until none are left: what was read before a
 *            crash or a disconnect and never acknowledged.
 *   LIVE     XREADGROUP ... > over all streams, COUNT per stream, and
 *            BLOCK only when nothing is committing (a blocked read would
 *            hold the acks queued behind it); every claim interval, a round
 *            of XAUTOCLAIM takes over entries idle too long in the group
 *            (a dead consumer's), processed like new ones.
 * Entries that were delivered before (pending, claimed) have their delivery
 * count read with XPENDING; past max_deliveries they are rejected
 * TOO_MANY_DELIVERIES instead of decoded, so one poisonous entry cannot
 * crash-loop the daemon. A pending entry that Redis deleted meanwhile
 * comes back as an id without fields: it is acknowledged and reported as
 * trimmed unless the index already holds it.
 *
 * Overlap. A read answer becomes a batch (entries copied out of hiredis'
 * reply); the batch commits on the libuv thread pool while the next read is
 * in flight. At most one batch commits at a time, so commits stay in order.
 * Group commit: reads that complete while a commit is under way are
 * appended, in read order, to the one batch waiting for the commit slot,
 * and reading goes on until that batch holds GROUP_MAX_ENTRIES. A commit
 * (an fsync, and every index page it dirtied written once) is then shared
 * by many reads instead of one; under load each transaction grows to what
 * arrived while the previous one committed. Memory stays bounded by the
 * committing batch, the waiting one and a read. A batch whose commit fails
 * is retried with backoff, never dropped: reading pauses behind it once the
 * waiting batch is full.
 *
 * Trimming. Producers trim with MAXLEN ~; a group that lags can lose entries
 * it never read. Each live read is preceded, in the same pipeline, by XINFO
 * STREAM and XINFO GROUPS for every stream: a snapshot of where the group
 * stood (last-delivered id, lag) and what the stream still holds, taken
 * just before the read moves the group on. Entries deleted after the
 * group's position were never delivered (find_losses says how each kind of
 * deletion shows); their id range goes to the detectors in the next batch
 * (audit_evidence_trimmed). Redis 7.0 does not record trimming in
 * max-deleted-entry-id, hence the lag arithmetic. History trimmed before
 * the group existed is no loss: Redis counts it as read when the group is
 * created. A crash between the read and the commit of its batch forgets a
 * loss it revealed: the window is one batch.
 *
 * The clock. The detectors follow the audit stream's watermark (the newest
 * entry-id time read). When a read of the audit stream comes back with
 * nothing new, the stream is caught up and the batch carries the wall
 * clock; an idle blocking read that returns nothing commits an empty batch
 * just for that, so deadlines fall due while nothing arrives.
 *
 * Stopping. SIGTERM or SIGINT (or aw_daemon_stop): no new reads; the batches
 * in flight commit and are acknowledged, then the connection and the index
 * close. A blocking read still waiting is simply dropped: whatever it might
 * deliver stays pending for the next start. A deadline bounds all of it
 * (STOP_DEADLINE_MS); a second signal stops at once. SIGHUP reopens the log.
 */
#include "consumer/consumer.h"

#include <assert.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "consumer/log.h"
#include "consumer/redis_conn.h"
#include "consumer/reply.h"
#include "consumer/sinks.h"

#define REPLY_MARGIN_MS 5000
#define STOP_DEADLINE_MS 4000
#define SUMMARY_INTERVAL_MS 60000
#define RETRY_FIRST_MS 500
#define RETRY_MAX_MS 30000
#define NSTREAMS AW_ROLE_COUNT
/* Reads stop being merged into the waiting batch once it holds this many
 * entries (a read adds at most COUNT per stream). Measured at 300k entries:
 * 8000 took the resident set to 73 MiB, past the 64 MiB budget; 4000 keeps
 * it at 63 MiB. */
#define GROUP_MAX_ENTRIES 4000
/* XREADGROUP GROUP g c COUNT n BLOCK ms STREAMS names... ids... */
#define READ_ARGV_MAX (9 + 2 * NSTREAMS)

typedef enum phase { PHASE_SETUP, PHASE_PENDING, PHASE_LIVE } phase;

typedef enum fetch_kind {
    FETCH_CREATE,    /* XGROUP CREATE */
    FETCH_PENDING,   /* XREADGROUP ... 0 */
    FETCH_LIVE,      /* XINFO GROUPS, XREADGROUP ... >, XINFO STREAM */
    FETCH_CLAIM,     /* XAUTOCLAIM */
    FETCH_COUNTS,    /* XPENDING for what PENDING or CLAIM brought */
} fetch_kind;

typedef struct stream_state {
    const char *name;
    char pending_from[AW_SID_TEXT_MAX];
    bool pending_done;
    char claim_cursor[AW_SID_TEXT_MAX];
    bool claim_done;
    bool has_lost_through;
    aw_sid lost_through;   /* newest id already reported lost */
    long long lost_counted;  /* entries reported lost, still in the group's lag */
} stream_state;

typedef struct batch_entry {
    aw_raw_entry *entry;
    int stream;
    char *detail;          /* why it is forced out; NULL when it is not */
} batch_entry;

/* An entry id that needs no decoding: a deleted pending entry, or the ends
 * of a lost range. */
typedef struct batch_gap {
    int stream;
    char first[AW_SID_TEXT_MAX];
    char last[AW_SID_TEXT_MAX];
    bool delivered;        /* a deleted pending entry */
    bool ack;              /* still in our pending list */
} batch_gap;

typedef struct batch {
    aw_daemon *d;
    uv_work_t work;
    batch_entry *entries;
    size_t n, cap;
    batch_gap *gaps;
    size_t ngaps, capgaps;
    int64_t clock_ns;
    bool tick;             /* commit even when empty: the clock moved */
    int rc;
    aw_error err;
    aw_ingest_stats stats;
} batch;

typedef struct fetch {
    aw_daemon *d;
    fetch_kind kind;
    bool blocking;
    size_t sent, answered;     /* this round */
    bool failed;
    batch *b;
    int round_streams[2 * NSTREAMS + 1];   /* stream of each reply, by position */
    size_t range_begin[NSTREAMS], range_end[NSTREAMS];   /* entries per stream */
    bool seen_any[NSTREAMS];
    aw_sid last_seen[NSTREAMS];    /* newest id of each stream, gaps included */
    /* FETCH_LIVE: each stream as it was right before the read */
    struct stream_snapshot {
        bool has_info, has_group, has_lag, has_first;
        long long length, lag;
        aw_sid first, last_generated, max_deleted, last_delivered;
    } before[NSTREAMS];
} fetch;

struct aw_daemon {
    const aw_daemon_config *config;
    aw_log *log;
    aw_ingest *ing;
    uv_loop_t loop;
    aw_redis_conn *conn;
    aw_sinks *sinks;
    stream_state streams[NSTREAMS];
    char count_text[24], block_text[24], idle_text[24];

    phase phase;
    fetch *fetch;
    batch *committing;        /* in the worker, or waiting to retry */
    bool in_worker;
    batch *ready;             /* read, waiting for the commit slot */
    bool caught_up;           /* the last live read found nothing */
    bool claiming;            /* a round of XAUTOCLAIM is under way */
    bool need_setup;
    bool paused;              /* after a command error, for retry_ms */
    int64_t retry_ms;
    char command_error[AW_ERRMSG_MAX];   /* last one logged */
    bool commit_failing;
    int64_t commit_retry_ms;
    char commit_error[AW_ERRMSG_MAX];
    size_t acks_in_flight;

    bool loop_ready, running, stopping, finished;
    uv_async_t stop_async;
    uv_signal_t sigterm, sigint, sighup;
    uv_timer_t claim_timer, summary_timer, pause_timer, commit_timer, stop_timer;

    aw_ingest_stats totals;
    aw_sinks_stats sink_totals;
    size_t minute_rejects[AW_REJECT_REASON_COUNT];
    size_t acked;
    size_t indexed_at_summary;   /* totals.indexed at the last summary */
    int64_t committed_clock_ns;  /* detector clock after the last commit */
    uint64_t started_ms;
};

static void pump(aw_daemon *d);
static void maybe_finish(aw_daemon *d);

static int64_t wall_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int stream_index(const aw_daemon *d, const char *name, size_t len) {
    for (int i = 0; i < NSTREAMS; i++)
        if (strlen(d->streams[i].name) == len && memcmp(d->streams[i].name, name, len) == 0)
            return i;
    return -1;
}

/* ---- Batches ------------------------------------------------------------------ */

static batch *batch_new(aw_daemon *d) {
    batch *b = calloc(1, sizeof *b);
    if (b) {
        b->d = d;
        b->work.data = b;
    }
    return b;
}

static void batch_free(batch *b) {
    if (!b) return;
    for (size_t i = 0; i < b->n; i++) {
        aw_raw_entry_free(b->entries[i].entry);
        free(b->entries[i].detail);
    }
    free(b->entries);
    free(b->gaps);
    free(b);
}

static bool batch_empty(const batch *b) { return b->n == 0 && b->ngaps == 0; }

/* Grows b's arrays to hold n entries and ngaps gaps. */
static int batch_reserve(batch *b, size_t n, size_t ngaps) {
    if (n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < n) cap *= 2;
        batch_entry *grown = realloc(b->entries, cap * sizeof *grown);
        if (!grown) return AW_ERR_NOMEM;
        b->entries = grown;
        b->cap = cap;
    }
    if (ngaps > b->capgaps) {
        size_t cap = b->capgaps ? b->capgaps : 8;
        while (cap < ngaps) cap *= 2;
        batch_gap *grown = realloc(b->gaps, cap * sizeof *grown);
        if (!grown) return AW_ERR_NOMEM;
        b->gaps = grown;
        b->capgaps = cap;
    }
    return AW_OK;
}

static int batch_add_entry(batch *b, int stream, aw_raw_entry *e) {
    if (batch_reserve(b, b->n + 1, 0) != AW_OK) return AW_ERR_NOMEM;
    b->entries[b->n++] = (batch_entry){e, stream, NULL};
    return AW_OK;
}

/* Appends what `from` holds to `into`, after what is there (read order is
 * commit order), and frees `from`. The clock is the later of the two. */
static int batch_merge(batch *into, batch *from) {
    if (batch_reserve(into, into->n + from->n, into->ngaps + from->ngaps) != AW_OK)
        return AW_ERR_NOMEM;
    /* An empty batch's arrays may be NULL, which memcpy must never see. */
    if (from->n)
        memcpy(into->entries + into->n, from->entries, from->n * sizeof *from->entries);
    if (from->ngaps)
        memcpy(into->gaps + into->ngaps, from->gaps, from->ngaps * sizeof *from->gaps);
    into->n += from->n;
    into->ngaps += from->ngaps;
    if (from->clock_ns > into->clock_ns) into->clock_ns = from->clock_ns;
    into->tick = into->tick || from->tick;
    from->n = from->ngaps = 0;
    batch_free(from);
    return AW_OK;
}

static bool ready_full(const aw_daemon *d) {
    return d->ready && d->ready->n >= GROUP_MAX_ENTRIES;
}

static int batch_add_gap(batch *b, int stream, aw_sid first, aw_sid last,
                         bool delivered, bool ack) {
    batch_gap *g;
    if (batch_reserve(b, 0, b->ngaps + 1) != AW_OK) return AW_ERR_NOMEM;
    g = &b->gaps[b->ngaps++];
    g->stream = stream;
    aw_sid_format(first, g->first);
    aw_sid_format(last, g->last);
    g->delivered = delivered;
    g->ack = ack;
    return AW_OK;
}

/* ---- Committing (the worker thread runs work_commit only) --------------------- */

static void work_commit(uv_work_t *w) {
    batch *b = w->data;
    aw_daemon *d = b->d;
    aw_ingest_item *items = calloc(b->n ? b->n : 1, sizeof *items);
    aw_ingest_trim *trims = calloc(b->ngaps ? b->ngaps : 1, sizeof *trims);

    if (!items || !trims) {
        b->rc = aw_error_set(&b->err, AW_ERR_NOMEM, "out of memory");
    } else {
        for (size_t i = 0; i < b->n; i++)
            items[i] = (aw_ingest_item){b->entries[i].entry,
                                        b->entries[i].detail ? AW_REJECT_TOO_MANY_DELIVERIES
                                                             : AW_REJECT_NONE,
                                        b->entries[i].detail};
        for (size_t i = 0; i < b->ngaps; i++)
            trims[i] = (aw_ingest_trim){d->streams[b->gaps[i].stream].name, b->gaps[i].first,
                                        b->gaps[i].last, b->gaps[i].delivered};
        b->rc = aw_ingest_batch(d->ing, items, b->n, trims, b->ngaps, b->clock_ns, &b->stats,
                                &b->err);
    }
    free(items);
    free(trims);
}

static void after_commit(uv_work_t *w, int status);

static void start_commit(aw_daemon *d, batch *b) {
    d->committing = b;
    d->in_worker = true;
    if (uv_queue_work(&d->loop, &b->work, work_commit, after_commit) != 0) {
        d->in_worker = false;
        b->rc = aw_error_set(&b->err, AW_ERR, "cannot queue the commit");
        after_commit(&b->work, 0);
    }
}

static void enter_pending(aw_daemon *d);

/* Commits b now, or makes it (part of) the batch waiting for the slot. */
static void submit(aw_daemon *d, batch *b) {
    if (!d->committing) {
        start_commit(d, b);
    } else if (!d->ready) {
        d->ready = b;
    } else if (batch_merge(d->ready, b) != AW_OK) {
        /* Its entries stay pending in Redis: read them again. */
        AW_LOG(d->log, AW_LOG_ERROR, "out_of_memory", AW_LOG_S("while", "grouping reads"));
        batch_free(b);
        if (d->phase == PHASE_LIVE) enter_pending(d);
    }
}

static void on_ack(aw_redis_conn *conn, redisReply *reply, void *privdata) {
    aw_daemon *d = privdata;
    (void)conn;
    d->acks_in_flight--;
    if (reply && reply->type == REDIS_REPLY_INTEGER) {
        d->acked += (size_t)reply->integer;
    } else if (reply) {
        AW_LOG(d->log, AW_LOG_WARN, "ack_failed", AW_LOG_S("error", reply->str));
    }
    maybe_finish(d);
}

/* XACK per stream. When the connection is down the acks are skipped: the
 * entries stay pending and come back as duplicates after the reconnect. */
static void ack_batch(aw_daemon *d, const batch *b) {
    const char **argv = malloc((3 + b->n + b->ngaps) * sizeof *argv);
    if (!argv) {
        AW_LOG(d->log, AW_LOG_WARN, "ack_failed", AW_LOG_S("error", "out of memory"));
        return;
    }
    for (int s = 0; s < NSTREAMS; s++) {
        int argc = 3;
        argv[0] = "XACK";
        argv[1] = d->streams[s].name;
        argv[2] = d->config->group;
        for (size_t i = 0; i < b->n; i++)
            if (b->entries[i].stream == s) argv[argc++] = b->entries[i].entry->id.ptr;
        for (size_t i = 0; i < b->ngaps; i++)
            if (b->gaps[i].stream == s && b->gaps[i].ack) argv[argc++] = b->gaps[i].first;
        if (argc > 3 &&
            aw_redis_conn_send(d->conn, 0, on_ack, d, argc, argv, NULL) == AW_OK)
            d->acks_in_flight++;
    }
    free(argv);
}

/* After the stop the alerts stay in the table only. */
static void on_alert(const aw_alert *alert, aw_alert_change change, void *ud) {
    aw_daemon *d = ud;
    if (d->sinks) aw_sinks_emit(d->sinks, alert, change, d->conn);
}

static void add_stats(aw_daemon *d, const aw_ingest_stats *s) {
    d->totals.indexed += s->indexed;
    d->totals.duplicates += s->duplicates;
    d->totals.conflicts += s->conflicts;
    d->totals.rejected += s->rejected;
    d->totals.trims_reported += s->trims_reported;
    for (int r = 0; r < AW_REJECT_REASON_COUNT; r++) {
        d->totals.rejected_by_reason[r] += s->rejected_by_reason[r];
        d->minute_rejects[r] += s->rejected_by_reason[r];
    }
}

static void on_commit_retry(uv_timer_t *t) {
    aw_daemon *d = t->data;
    if (d->committing && !d->in_worker && !d->finished) start_commit(d, d->committing);
}

static void commit_failed(aw_daemon *d, batch *b) {
    if (!d->commit_failing || strcmp(d->commit_error, b->err.msg) != 0) {
        AW_LOG(d->log, AW_LOG_ERROR, "index_commit_failed", AW_LOG_S("error", b->err.msg),
               AW_LOG_I("entries", b->n), AW_LOG_S("action", "retrying; nothing is acknowledged"));
        snprintf(d->commit_error, sizeof d->commit_error, "%s", b->err.msg);
    }
    d->commit_failing = true;
    d->commit_retry_ms = d->commit_retry_ms ? d->commit_retry_ms * 2 : RETRY_FIRST_MS;
    if (d->commit_retry_ms > RETRY_MAX_MS) d->commit_retry_ms = RETRY_MAX_MS;
    if (!d->finished) uv_timer_start(&d->commit_timer, on_commit_retry, (uint64_t)d->commit_retry_ms, 0);
}

static void after_commit(uv_work_t *w, int status) {
    batch *b = w->data;
    aw_daemon *d = b->d;
    (void)status;
    d->in_worker = false;
    if (b->rc != AW_OK) {
        if (d->finished) {
            d->committing = NULL;
            batch_free(b);
            return;
        }
        commit_failed(d, b);
        return;
    }
    if (d->commit_failing) {
        AW_LOG0(d->log, AW_LOG_INFO, "index_commit_recovered");
        d->commit_failing = false;
        d->commit_retry_ms = 0;
    }
    d->committing = NULL;
    d->committed_clock_ns = aw_ingest_clock(d->ing);   /* the worker is idle now */
    add_stats(d, &b->stats);
    aw_ingest_drain_alerts(d->ing, on_alert, d);
    if (!d->finished) ack_batch(d, b);
    batch_free(b);
    if (d->ready) {
        batch *next = d->ready;
        d->ready = NULL;
        start_commit(d, next);
    }
    pump(d);
}

/* ---- Fetches: one request round trip (or two) that yields a batch -------------- */

static fetch *fetch_begin(aw_daemon *d, fetch_kind kind) {
    fetch *f = calloc(1, sizeof *f);
    if (!f || !(f->b = batch_new(d))) {
        free(f);
        AW_LOG(d->log, AW_LOG_ERROR, "out_of_memory", AW_LOG_S("while", "starting a read"));
        return NULL;
    }
    f->d = d;
    f->kind = kind;
    d->fetch = f;
    return f;
}

static void on_fetch_reply(aw_redis_conn *conn, redisReply *reply, void *privdata);

static void fetch_send(fetch *f, int stream, int64_t wait_ms, int argc, const char **argv) {
    if (f->failed) return;
    if (aw_redis_conn_send(f->d->conn, wait_ms, on_fetch_reply, f, argc, argv, NULL) != AW_OK) {
        f->failed = true;
        return;
    }
    if (stream >= 0) f->round_streams[f->sent] = stream;
    f->sent++;
}

/* The group vanished (deleted, or Redis restarted without its data). */
static void group_missing(fetch *f, int s) {
    aw_daemon *d = f->d;
    f->failed = true;
    if (d->need_setup) return;
    d->need_setup = true;
    AW_LOG(d->log, AW_LOG_WARN, "group_missing", AW_LOG_S("group", d->config->group),
           AW_LOG_S("stream", s >= 0 ? d->streams[s].name : NULL),
           AW_LOG_S("action", "creating it again"));
}

static void fetch_fail(fetch *f, const char *what, const redisReply *reply) {
    aw_daemon *d = f->d;
    char msg[AW_ERRMSG_MAX];
    f->failed = true;
    if (aw_reply_is_error(reply, "NOGROUP")) {
        group_missing(f, -1);
        return;
    }
    snprintf(msg, sizeof msg, "%s: %s", what,
             reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply shape");
    if (strcmp(msg, d->command_error) != 0) {
        AW_LOG(d->log, AW_LOG_ERROR, "redis_command_failed", AW_LOG_S("error", msg),
               AW_LOG_S("action", "retrying with backoff"));
        snprintf(d->command_error, sizeof d->command_error, "%s", msg);
    }
    d->paused = true;
}

static void on_pause_end(uv_timer_t *t) {
    aw_daemon *d = t->data;
    d->paused = false;
    pump(d);
}

/* A failed fetch leaves what it was delivered pending in Redis: the next
 * fetch re-reads it (or, after the connection went, the next setup does). */
static void fetch_discard(fetch *f) {
    aw_daemon *d = f->d;
    d->fetch = NULL;
    batch_free(f->b);
    free(f);
    if (d->need_setup) {
        d->need_setup = false;
        d->phase = PHASE_SETUP;
    } else if (d->phase == PHASE_LIVE) {
        enter_pending(d);
    }
    if (d->paused && !d->stopping) {
        d->retry_ms = d->retry_ms ? d->retry_ms * 2 : RETRY_FIRST_MS;
        if (d->retry_ms > RETRY_MAX_MS) d->retry_ms = RETRY_MAX_MS;
        uv_timer_start(&d->pause_timer, on_pause_end, (uint64_t)d->retry_ms, 0);
    }
    pump(d);
}

static void fetch_complete(fetch *f) {
    aw_daemon *d = f->d;
    batch *b = f->b;
    d->fetch = NULL;
    d->retry_ms = 0;
    d->command_error[0] = '\0';
    free(f);
    if (batch_empty(b) && !b->tick) batch_free(b);
    else submit(d, b);
    pump(d);
}

/* Copies the entries of one stream's list into the batch; deleted ones
 * become gaps. Records the stream's range of entries in the batch. */
typedef struct entry_sink {
    fetch *f;
    int stream;
    bool ack_deleted;
    aw_field *scratch;
    size_t scratch_cap;
    aw_error err;
} entry_sink;

/* True when this daemon already holds the entry in a batch not yet
 * committed: XAUTOCLAIM hands back our own entries too once a slow commit
 * lets them idle past the claim threshold, and taking them again would
 * count a delivery that never failed. Claim rounds are rare and the batches
 * in flight bounded, so a scan is cheap enough. */
static bool held_in_flight(const aw_daemon *d, int stream, aw_sid id) {
    const batch *held[] = {d->committing, d->ready};
    for (size_t k = 0; k < sizeof held / sizeof *held; k++)
        for (size_t i = 0; held[k] && i < held[k]->n; i++) {
            const batch_entry *e = &held[k]->entries[i];
            if (e->stream == stream && e->entry->id_ms == id.ms && e->entry->id_seq == id.seq)
                return true;
        }
    return false;
}

static int take_entry(const redisReply *id, const redisReply *fields, void *ud) {
    entry_sink *s = ud;
    fetch *f = s->f;
    batch *b = f->b;
    aw_raw_entry *e;
    aw_sid sid;
    int rc;
    if (!aw_sid_from_reply(id, &sid)) return AW_ERR_INVALID;
    f->seen_any[s->stream] = true;
    f->last_seen[s->stream] = sid;
    if (f->kind == FETCH_CLAIM && held_in_flight(f->d, s->stream, sid)) return AW_OK;
    if (!fields) return batch_add_gap(b, s->stream, sid, sid, true, s->ack_deleted);
    rc = aw_reply_copy_entry(s->f->d->streams[s->stream].name, id, fields, &s->scratch,
                             &s->scratch_cap, &e, &s->err);
    if (rc != AW_OK) return rc;
    if ((rc = batch_add_entry(b, s->stream, e)) != AW_OK) aw_raw_entry_free(e);
    return rc;
}

static bool take_entries(fetch *f, int stream, const redisReply *list, bool ack_deleted) {
    entry_sink sink = {f, stream, ack_deleted, NULL, 0, {0}};
    int rc;
    f->range_begin[stream] = f->b->n;
    rc = aw_reply_each_entry(list, take_entry, &sink);
    f->range_end[stream] = f->b->n;
    free(sink.scratch);
    if (rc != AW_OK) {
        AW_LOG(f->d->log, AW_LOG_ERROR, "entry_copy_failed",
               AW_LOG_S("stream", f->d->streams[stream].name),
               AW_LOG_S("error", sink.err.msg[0] ? sink.err.msg : "unexpected reply shape"));
        return false;
    }
    return true;
}

/* XREADGROUP answers: nil, or [[stream, entries], ...]. */
static bool take_read_reply(fetch *f, const redisReply *r, bool ack_deleted) {
    if (r->type == REDIS_REPLY_NIL) return true;
    if (r->type != REDIS_REPLY_ARRAY) return false;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *pair = r->element[i];
        int s;
        if (pair->type != REDIS_REPLY_ARRAY || pair->elements != 2 ||
            pair->element[0]->type != REDIS_REPLY_STRING)
            return false;
        s = stream_index(f->d, pair->element[0]->str, pair->element[0]->len);
        if (s < 0 || !take_entries(f, s, pair->element[1], ack_deleted)) return false;
    }
    return true;
}

/* ---- Setup ------------------------------------------------------------------------ */

static void start_setup(aw_daemon *d) {
    fetch *f = fetch_begin(d, FETCH_CREATE);
    if (!f) return;
    for (int s = 0; s < NSTREAMS; s++) {
        const char *argv[] = {"XGROUP", "CREATE", d->streams[s].name, d->config->group,
                              d->config->start_id, "MKSTREAM"};
        fetch_send(f, s, 0, 6, argv);
    }
}

static void take_create(fetch *f, int s, const redisReply *r) {
    aw_daemon *d = f->d;
    if (aw_reply_is_error(r, "BUSYGROUP")) return;
    if (r->type == REDIS_REPLY_ERROR) {
        fetch_fail(f, "XGROUP CREATE", r);
        return;
    }
    AW_LOG(d->log, AW_LOG_INFO, "group_created", AW_LOG_S("stream", d->streams[s].name),
           AW_LOG_S("group", d->config->group), AW_LOG_S("start_id", d->config->start_id));
}

/* Re-reads this consumer's pending entries from the start. */
static void enter_pending(aw_daemon *d) {
    d->phase = PHASE_PENDING;
    for (int s = 0; s < NSTREAMS; s++) {
        snprintf(d->streams[s].pending_from, AW_SID_TEXT_MAX, "0");
        d->streams[s].pending_done = false;
    }
}

static void setup_done(aw_daemon *d) {
    enter_pending(d);
    d->claiming = true;
    for (int s = 0; s < NSTREAMS; s++) {
        snprintf(d->streams[s].claim_cursor, AW_SID_TEXT_MAX, "0-0");
        d->streams[s].claim_done = false;
    }
}

/* ---- Reads -------------------------------------------------------------------------- */

/* Fills argv with XREADGROUP over the streams for which want(stream) holds,
 * each starting at id(stream). Returns argc; 0 when no stream qualifies. */
static int read_argv(aw_daemon *d, const char **argv, bool blocking,
                     bool (*want)(const stream_state *), const char *(*id)(const stream_state *)) {
    int argc = 0, n = 0, picked[NSTREAMS];
    for (int s = 0; s < NSTREAMS; s++)
        if (want(&d->streams[s])) picked[n++] = s;
    if (!n) return 0;
    argv[argc++] = "XREADGROUP";
    argv[argc++] = "GROUP";
    argv[argc++] = d->config->group;
    argv[argc++] = d->config->consumer;
    argv[argc++] = "COUNT";
    argv[argc++] = d->count_text;
    if (blocking) {
        argv[argc++] = "BLOCK";
        argv[argc++] = d->block_text;
    }
    argv[argc++] = "STREAMS";
    for (int i = 0; i < n; i++) argv[argc++] = d->streams[picked[i]].name;
    for (int i = 0; i < n; i++) argv[argc++] = id(&d->streams[picked[i]]);
    return argc;
}

static bool pending_left(const stream_state *st) { return !st->pending_done; }
static const char *pending_from(const stream_state *st) { return st->pending_from; }
static bool every_stream(const stream_state *st) { (void)st; return true; }
static const char *new_entries(const stream_state *st) { (void)st; return ">"; }

static void start_pending(aw_daemon *d) {
    const char *argv[READ_ARGV_MAX];
    int argc = read_argv(d, argv, false, pending_left, pending_from);
    fetch *f;
    if (!argc) {
        d->phase = PHASE_LIVE;
        pump(d);
        return;
    }
    if ((f = fetch_begin(d, FETCH_PENDING))) fetch_send(f, -1, 0, argc, argv);
}

/* Moves each stream's pending cursor past what this page returned; a
 * stream with nothing left is done. */
static void take_pending(fetch *f, const redisReply *r) {
    aw_daemon *d = f->d;
    if (!take_read_reply(f, r, true)) {
        fetch_fail(f, "XREADGROUP (pending)", r);
        return;
    }
    for (int s = 0; s < NSTREAMS; s++) {
        stream_state *st = &d->streams[s];
        if (st->pending_done) continue;
        if (f->seen_any[s]) aw_sid_format(f->last_seen[s], st->pending_from);
        else st->pending_done = true;
    }
}

static void start_live(aw_daemon *d, bool blocking) {
    const char *argv[READ_ARGV_MAX];
    int argc = read_argv(d, argv, blocking, every_stream, new_entries);
    fetch *f = fetch_begin(d, FETCH_LIVE);
    if (!f) return;
    f->blocking = blocking;
    for (int s = 0; s < NSTREAMS; s++) {
        const char *info[] = {"XINFO", "STREAM", d->streams[s].name};
        const char *groups[] = {"XINFO", "GROUPS", d->streams[s].name};
        fetch_send(f, s, 0, 3, info);
        fetch_send(f, s, 0, 3, groups);
    }
    fetch_send(f, -1, blocking ? (int64_t)d->config->block_ms : 0, argc, argv);
}

static bool integer_of(const redisReply *r, long long *out) {
    if (!r || r->type != REDIS_REPLY_INTEGER) return false;
    *out = r->integer;
    return true;
}

static void take_stream_info(fetch *f, int s, const redisReply *r) {
    struct stream_snapshot *b = &f->before[s];
    const redisReply *first;
    if (r->type != REDIS_REPLY_ARRAY) {
        fetch_fail(f, "XINFO STREAM", r);
        return;
    }
    first = aw_reply_map_get(r, "first-entry");
    b->has_first = first && first->type == REDIS_REPLY_ARRAY && first->elements == 2 &&
                   aw_sid_from_reply(first->element[0], &b->first);
    b->has_info = integer_of(aw_reply_map_get(r, "length"), &b->length) &&
                  aw_sid_from_reply(aw_reply_map_get(r, "last-generated-id"), &b->last_generated) &&
                  aw_sid_from_reply(aw_reply_map_get(r, "max-deleted-entry-id"), &b->max_deleted);
}

/* Our group's last-delivered id and lag, from XINFO GROUPS. */
static void take_groups(fetch *f, int s, const redisReply *r) {
    struct stream_snapshot *b = &f->before[s];
    const char *group = f->d->config->group;
    if (r->type != REDIS_REPLY_ARRAY) {
        fetch_fail(f, "XINFO GROUPS", r);
        return;
    }
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *name = aw_reply_map_get(r->element[i], "name");
        if (name && name->type == REDIS_REPLY_STRING && name->len == strlen(group) &&
            memcmp(name->str, group, name->len) == 0) {
            b->has_group = aw_sid_from_reply(aw_reply_map_get(r->element[i], "last-delivered-id"),
                                             &b->last_delivered);
            b->has_lag = integer_of(aw_reply_map_get(r->element[i], "lag"), &b->lag);
            return;
        }
    }
    group_missing(f, s);
}

static bool report_loss(fetch *f, int s, aw_sid first, aw_sid last) {
    stream_state *st = &f->d->streams[s];
    char a[AW_SID_TEXT_MAX], b[AW_SID_TEXT_MAX];
    if (batch_add_gap(f->b, s, first, last, false, false) != AW_OK) return false;
    st->has_lost_through = true;
    st->lost_through = last;
    AW_LOG(f->d->log, AW_LOG_WARN, "entries_deleted_unread", AW_LOG_S("stream", st->name),
           AW_LOG_S("first_id", aw_sid_format(first, a)), AW_LOG_S("last_id", aw_sid_format(last, b)));
    return true;
}

/* Entries deleted after the group's last-delivered id L were never
 * delivered. Trimming (MAXLEN, MINID) deletes from the head and leaves no
 * tombstone id: it shows as L lying before the first retained entry while
 * the group's lag (entries added after L) exceeds what is retained; the
 * lost range is (L, first retained). XDEL leaves max-deleted-entry-id:
 * beyond L, the range (L, max deleted] went unread. Each range is reported
 * once; Redis keeps counting reported entries in the lag, so they are
 * subtracted. */
static bool find_losses(fetch *f) {
    aw_daemon *d = f->d;
    for (int s = 0; s < NSTREAMS; s++) {
        stream_state *st = &d->streams[s];
        const struct stream_snapshot *b = &f->before[s];
        aw_sid from, last;
        if (!b->has_info || !b->has_group) continue;
        from = b->last_delivered;
        if (st->has_lost_through && aw_sid_cmp(st->lost_through, from) > 0) from = st->lost_through;
        if (b->has_lag && (b->length == 0 || (b->has_first && aw_sid_cmp(b->last_delivered, b->first) < 0))) {
            long long lost = b->lag - b->length - st->lost_counted;
            last = b->length ? aw_sid_prev(b->first) : b->last_generated;
            if (lost > 0 && aw_sid_cmp(aw_sid_next(from), last) <= 0) {
                if (!report_loss(f, s, aw_sid_next(from), last)) return false;
                st->lost_counted += lost;
                from = last;
            }
        }
        if (aw_sid_cmp(b->max_deleted, from) > 0 &&
            !report_loss(f, s, aw_sid_next(from), b->max_deleted))
            return false;
    }
    return true;
}

static void live_done(fetch *f) {
    aw_daemon *d = f->d;
    bool audit_new = f->range_end[AW_ROLE_AUDIT] > f->range_begin[AW_ROLE_AUDIT];
    if (!find_losses(f)) {
        f->failed = true;
        return;
    }
    if (!audit_new) f->b->clock_ns = wall_ns();
    d->caught_up = f->b->n == 0;
    /* An idle blocking read moves the clock; an idle quick one waits. */
    f->b->tick = f->blocking;
}

/* ---- Claims and delivery counts ------------------------------------------------------ */

static void start_claim(aw_daemon *d) {
    fetch *f = fetch_begin(d, FETCH_CLAIM);
    if (!f) return;
    for (int s = 0; s < NSTREAMS; s++) {
        stream_state *st = &d->streams[s];
        const char *argv[] = {"XAUTOCLAIM", st->name, d->config->group, d->config->consumer,
                              d->idle_text, st->claim_cursor, "COUNT", d->count_text};
        if (!st->claim_done) fetch_send(f, s, 0, 8, argv);
    }
}

/* [next cursor, entries, deleted ids] */
static void take_claim(fetch *f, int s, const redisReply *r) {
    stream_state *st = &f->d->streams[s];
    aw_sid cursor, id;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        !aw_sid_from_reply(r->element[0], &cursor)) {
        fetch_fail(f, "XAUTOCLAIM", r);
        return;
    }
    if (!take_entries(f, s, r->element[1], true)) {
        f->failed = true;
        return;
    }
    if (r->elements > 2 && r->element[2]->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->element[2]->elements; i++)
            if (aw_sid_from_reply(r->element[2]->element[i], &id) &&
                batch_add_gap(f->b, s, id, id, true, false) != AW_OK)
                f->failed = true;
    aw_sid_format(cursor, st->claim_cursor);
    st->claim_done = cursor.ms == 0 && cursor.seq == 0;
}

static bool claims_done(const aw_daemon *d) {
    for (int s = 0; s < NSTREAMS; s++)
        if (!d->streams[s].claim_done) return false;
    return true;
}

/* Second round of PENDING and CLAIM: XPENDING over each stream's range of
 * entries, for their delivery counts. */
static bool send_counts(fetch *f) {
    aw_daemon *d = f->d;
    f->kind = FETCH_COUNTS;
    f->sent = f->answered = 0;
    for (int s = 0; s < NSTREAMS; s++) {
        size_t n = f->range_end[s] - f->range_begin[s];
        char count[24];
        if (!n) continue;
        snprintf(count, sizeof count, "%zu", 2 * n + 100);
        const char *argv[] = {"XPENDING", d->streams[s].name, d->config->group,
                              f->b->entries[f->range_begin[s]].entry->id.ptr,
                              f->b->entries[f->range_end[s] - 1].entry->id.ptr, count,
                              d->config->consumer};
        fetch_send(f, s, 0, 7, argv);
    }
    return f->sent > 0;
}

/* Rows [id, consumer, idle ms, deliveries], in id order like the entries. */
static void take_counts(fetch *f, int s, const redisReply *r) {
    aw_daemon *d = f->d;
    size_t i = f->range_begin[s];
    if (r->type != REDIS_REPLY_ARRAY) {
        fetch_fail(f, "XPENDING", r);
        return;
    }
    for (size_t k = 0; k < r->elements && i < f->range_end[s]; k++) {
        const redisReply *row = r->element[k];
        aw_sid id;
        if (row->type != REDIS_REPLY_ARRAY || row->elements < 4 ||
            !aw_sid_from_reply(row->element[0], &id) ||
            row->element[3]->type != REDIS_REPLY_INTEGER)
            continue;
        while (i < f->range_end[s] &&
               aw_sid_cmp((aw_sid){f->b->entries[i].entry->id_ms, f->b->entries[i].entry->id_seq},
                          id) < 0)
            i++;
        if (i < f->range_end[s] && f->b->entries[i].entry->id_ms == id.ms &&
            f->b->entries[i].entry->id_seq == id.seq &&
            row->element[3]->integer > d->config->max_deliveries) {
            char detail[96];
            snprintf(detail, sizeof detail, "delivered %lld times (limit %lld)",
                     row->element[3]->integer, (long long)d->config->max_deliveries);
            free(f->b->entries[i].detail);
            f->b->entries[i].detail = strdup(detail);
            if (!f->b->entries[i].detail) f->failed = true;
        }
    }
}

/* ---- Dispatching replies ----------------------------------------------------------- */

static void take_reply(fetch *f, size_t pos, const redisReply *r) {
    int s = f->round_streams[pos];
    switch (f->kind) {
    case FETCH_CREATE: take_create(f, s, r); break;
    case FETCH_PENDING: take_pending(f, r); break;
    case FETCH_CLAIM: take_claim(f, s, r); break;
    case FETCH_COUNTS: take_counts(f, s, r); break;
    case FETCH_LIVE:
        if (pos == 2 * NSTREAMS) {
            if (!take_read_reply(f, r, true)) fetch_fail(f, "XREADGROUP", r);
        } else if (pos % 2 == 0) {
            take_stream_info(f, s, r);
        } else {
            take_groups(f, s, r);
        }
        break;
    }
}

static void round_done(fetch *f);

/* A round that sent nothing has no answers to wait for. */
static void round_started(fetch *f) {
    if (f->sent == 0) round_done(f);
}

/* What follows a round whose answers are all in. */
static void round_done(fetch *f) {
    aw_daemon *d = f->d;
    if (f->failed) {
        fetch_discard(f);
        return;
    }
    switch (f->kind) {
    case FETCH_CREATE:
        setup_done(d);
        break;
    case FETCH_PENDING:
    case FETCH_CLAIM:
        if (f->kind == FETCH_CLAIM && claims_done(d)) d->claiming = false;
        if (send_counts(f)) {
            round_started(f);
            return;
        }
        break;
    case FETCH_COUNTS:
        break;
    case FETCH_LIVE:
        live_done(f);
        if (f->failed) {
            fetch_discard(f);
            return;
        }
        break;
    }
    fetch_complete(f);
}

static void on_fetch_reply(aw_redis_conn *conn, redisReply *reply, void *privdata) {
    fetch *f = privdata;
    size_t pos = f->answered++;
    (void)conn;
    if (!reply) f->failed = true;
    else if (!f->failed) take_reply(f, pos, reply);
    if (f->answered == f->sent) round_done(f);
}

/* ---- The scheduler ------------------------------------------------------------------- */

static void pump(aw_daemon *d) {
    if (d->stopping) {
        maybe_finish(d);
        return;
    }
    if (!aw_redis_conn_is_ready(d->conn) || d->fetch || ready_full(d) || d->paused) return;
    switch (d->phase) {
    case PHASE_SETUP:
        start_setup(d);
        break;
    case PHASE_PENDING:
        start_pending(d);
        break;
    case PHASE_LIVE:
        if (d->claiming) start_claim(d);
        else if (d->caught_up && d->committing) return;   /* block once the commit is done */
        else start_live(d, !d->committing);
        break;
    }
    if (d->fetch && d->fetch->sent == 0) round_done(d->fetch);
}

static void on_ready(aw_redis_conn *conn, void *ud) {
    aw_daemon *d = ud;
    (void)conn;
    d->phase = PHASE_SETUP;
    d->caught_up = false;
    pump(d);
}

static void on_lost(aw_redis_conn *conn, void *ud) {
    aw_daemon *d = ud;
    (void)conn;
    d->phase = PHASE_SETUP;
    d->claiming = false;
    maybe_finish(d);
}

static void on_conn_closed(aw_redis_conn *conn, void *ud) {
    aw_daemon *d = ud;
    (void)conn;
    d->conn = NULL;
}

static void on_claim_timer(uv_timer_t *t) {
    aw_daemon *d = t->data;
    if (d->claiming || d->phase != PHASE_LIVE) return;
    d->claiming = true;
    for (int s = 0; s < NSTREAMS; s++) {
        snprintf(d->streams[s].claim_cursor, AW_SID_TEXT_MAX, "0-0");
        d->streams[s].claim_done = false;
    }
    pump(d);
}

/* Once a minute: how far ingest got (so an operator sees it work), and the
 * rejections of that minute, summarized instead of one line each. */
static void on_summary_timer(uv_timer_t *t) {
    aw_daemon *d = t->data;
    aw_log_field fields[AW_REJECT_REASON_COUNT + 1];
    size_t n = 1, total = 0;
    char clock[40];
    if (d->totals.indexed != d->indexed_at_summary) {
        AW_LOG(d->log, AW_LOG_INFO, "ingest_progress",
               AW_LOG_I("indexed", d->totals.indexed - d->indexed_at_summary),
               AW_LOG_I("indexed_total", d->totals.indexed), AW_LOG_I("acked_total", d->acked),
               AW_LOG_S("detector_clock",
                        aw_time_format(d->committed_clock_ns, clock, sizeof clock)));
        d->indexed_at_summary = d->totals.indexed;
    }
    for (int r = 0; r < AW_REJECT_REASON_COUNT; r++) {
        if (!d->minute_rejects[r]) continue;
        total += d->minute_rejects[r];
        fields[n++] = AW_LOG_I(aw_reject_reason_name((aw_reject_reason)r), d->minute_rejects[r]);
        d->minute_rejects[r] = 0;
    }
    if (!total) return;
    fields[0] = AW_LOG_I("total", total);
    aw_log_event(d->log, AW_LOG_WARN, "entries_rejected", fields, n);
}

/* ---- Stopping ------------------------------------------------------------------------- */

static void close_handle(uv_handle_t *h) {
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void finish(aw_daemon *d) {
    if (d->finished) return;
    d->finished = true;
    on_summary_timer(&d->summary_timer);
    if (d->conn) aw_redis_conn_close(d->conn);
    d->sink_totals = *aw_sinks_stats_get(d->sinks);
    aw_sinks_close(d->sinks);
    d->sinks = NULL;
    close_handle((uv_handle_t *)&d->stop_async);
    close_handle((uv_handle_t *)&d->sigterm);
    close_handle((uv_handle_t *)&d->sigint);
    close_handle((uv_handle_t *)&d->sighup);
    close_handle((uv_handle_t *)&d->claim_timer);
    close_handle((uv_handle_t *)&d->summary_timer);
    close_handle((uv_handle_t *)&d->pause_timer);
    close_handle((uv_handle_t *)&d->commit_timer);
    close_handle((uv_handle_t *)&d->stop_timer);
    if (d->ready) {
        batch_free(d->ready);
        d->ready = NULL;
    }
    if (d->committing && !d->in_worker) {
        batch_free(d->committing);
        d->committing = NULL;
    }
}

static void maybe_finish(aw_daemon *d) {
    if (!d->stopping || d->finished) return;
    if (d->committing || d->ready) return;
    if (d->fetch && !d->fetch->blocking && aw_redis_conn_is_ready(d->conn)) return;
    if (d->acks_in_flight || aw_sinks_busy(d->sinks)) return;
    finish(d);
}

static void on_stop_deadline(uv_timer_t *t) {
    aw_daemon *d = t->data;
    AW_LOG(d->log, AW_LOG_WARN, "stop_deadline", AW_LOG_I("after_ms", STOP_DEADLINE_MS),
           AW_LOG_S("note", "what was not acknowledged is delivered again at the next start"));
    finish(d);
}

static void begin_stop(aw_daemon *d, const char *why) {
    if (d->finished) return;
    if (d->stopping) {
        AW_LOG(d->log, AW_LOG_WARN, "stop_now", AW_LOG_S("reason", why));
        finish(d);
        return;
    }
    d->stopping = true;
    AW_LOG(d->log, AW_LOG_INFO, "stopping", AW_LOG_S("reason", why));
    uv_timer_stop(&d->claim_timer);
    uv_timer_stop(&d->pause_timer);
    uv_timer_start(&d->stop_timer, on_stop_deadline, STOP_DEADLINE_MS, 0);
    maybe_finish(d);
}

static void on_stop_async(uv_async_t *a) { begin_stop(a->data, "requested"); }

static void on_signal(uv_signal_t *h, int signum) {
    aw_daemon *d = h->data;
    if (signum == SIGHUP) aw_log_reopen(d->log);
    else begin_stop(d, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void on_sinks_idle(void *ud) { maybe_finish(ud); }

/* ---- The public surface ---------------------------------------------------------------- */

void aw_daemon_config_init(aw_daemon_config *c) {
    memset(c, 0, sizeof *c);
    c->redis_host = "127.0.0.1";
    c->redis_port = 6379;
    c->group = "auditwatch";
    c->start_id = "0";
    c->count = 1000;
    c->block_ms = 1000;
    c->claim_idle_ms = 60000;
    c->max_deliveries = 8;
    c->alert_stream = "auditwatch.alerts";
    c->alert_stream_maxlen = 100000;
    c->alert_exec_max = 4;
    c->log_format = AW_LOG_KV;
}

static bool valid_start_id(const char *id) {
    uint64_t ms, seq;
    return strcmp(id, "$") == 0 || aw_stream_id_parse(id, strlen(id), &ms, &seq) == AW_OK;
}

static int check_config(const aw_daemon_config *c, aw_error *err) {
    static const char *const caracal_groups[] = {"audit-ingestor", "sts-revocation"};
    if (!c->consumer || !*c->consumer)
        return aw_error_set(err, AW_ERR_INVALID, "a consumer name is required");
    if (!c->group || !*c->group)
        return aw_error_set(err, AW_ERR_INVALID, "a consumer group name is required");
    for (size_t i = 0; i < sizeof caracal_groups / sizeof *caracal_groups; i++)
        if (strcmp(c->group, caracal_groups[i]) == 0)
            return aw_error_set(err, AW_ERR_INVALID,
                                "group \"%s\" is Caracal's own: sharing it would take entries "
                                "away from Caracal",
                                c->group);
    if (!c->start_id || !valid_start_id(c->start_id))
        return aw_error_set(err, AW_ERR_INVALID, "start id must be 0, $ or an entry id");
    if (!c->redis_host || !*c->redis_host || c->redis_port < 1 || c->redis_port > 65535)
        return aw_error_set(err, AW_ERR_INVALID, "bad Redis address");
    if (c->count < 1 || c->block_ms < 1 || c->claim_idle_ms < 1 || c->max_deliveries < 1 ||
        c->alert_exec_max < 1)
        return aw_error_set(err, AW_ERR_INVALID,
                            "count, block, claim idle, max deliveries and hook limit must be "
                            "at least 1");
    return AW_OK;
}

int aw_daemon_new(const aw_daemon_config *config, aw_daemon **out, aw_error *err) {
    aw_daemon *d;
    int rc;
    *out = NULL;
    if ((rc = check_config(config, err)) != AW_OK) return rc;
    if (!(d = calloc(1, sizeof *d))) return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    d->config = config;
    if ((rc = aw_log_open(config->log_format, config->log_file, &d->log, err)) != AW_OK ||
        (rc = aw_ingest_open(&config->ingest, &d->ing, err)) != AW_OK) {
        aw_daemon_free(d);
        return rc;
    }
    for (int s = 0; s < NSTREAMS; s++)
        d->streams[s].name = config->ingest.streams[s]
                                 ? config->ingest.streams[s]
                                 : aw_stream_role_default_stream((aw_stream_role)s);
    snprintf(d->count_text, sizeof d->count_text, "%zu", config->count);
    snprintf(d->block_text, sizeof d->block_text, "%lld", (long long)config->block_ms);
    snprintf(d->idle_text, sizeof d->idle_text, "%lld", (long long)config->claim_idle_ms);
    if (uv_loop_init(&d->loop) != 0) {
        aw_daemon_free(d);
        return aw_error_set(err, AW_ERR, "cannot set up the event loop");
    }
    d->loop_ready = true;
    uv_async_init(&d->loop, &d->stop_async, on_stop_async);
    d->stop_async.data = d;
    *out = d;
    return AW_OK;
}

void aw_daemon_stop(aw_daemon *d) { uv_async_send(&d->stop_async); }

static void init_timer(aw_daemon *d, uv_timer_t *t) {
    uv_timer_init(&d->loop, t);
    t->data = d;
}

static void init_signal(aw_daemon *d, uv_signal_t *h, int signum) {
    uv_signal_init(&d->loop, h);
    h->data = d;
    uv_signal_start(h, on_signal, signum);
}

static void log_start(aw_daemon *d) {
    const aw_daemon_config *c = d->config;
    AW_LOG(d->log, AW_LOG_INFO, "start", AW_LOG_S("consumer", c->consumer),
           AW_LOG_S("group", c->group), AW_LOG_S("db", c->ingest.db_path),
           AW_LOG_S("redis_host", c->redis_host), AW_LOG_I("redis_port", c->redis_port),
           AW_LOG_S("audit_stream", d->streams[AW_ROLE_AUDIT].name),
           AW_LOG_S("audit_signatures", c->ingest.audit_key ? "required" : "not checked"),
           AW_LOG_S("stream_signatures", c->ingest.streams_key ? "required" : "not checked"),
           AW_LOG_S("start_id", c->start_id), AW_LOG_I("count", c->count),
           AW_LOG_I("block_ms", c->block_ms), AW_LOG_I("claim_idle_ms", c->claim_idle_ms));
}

static void log_shutdown(aw_daemon *d, const aw_sinks_stats *sinks) {
    AW_LOG(d->log, AW_LOG_INFO, "shutdown", AW_LOG_I("indexed", d->totals.indexed),
           AW_LOG_I("duplicates", d->totals.duplicates), AW_LOG_I("conflicts", d->totals.conflicts),
           AW_LOG_I("rejected", d->totals.rejected), AW_LOG_I("trims", d->totals.trims_reported),
           AW_LOG_I("acked", d->acked), AW_LOG_I("alerts_emitted", sinks->emitted),
           AW_LOG_I("alert_stream_failed", sinks->stream_failed),
           AW_LOG_I("alert_hook_failed", sinks->hook_failed),
           AW_LOG_I("alert_hook_dropped", sinks->hook_dropped),
           AW_LOG_I("seconds", (uv_now(&d->loop) - d->started_ms) / 1000));
}

int aw_daemon_run(aw_daemon *d, aw_error *err) {
    const aw_daemon_config *c = d->config;
    aw_redis_conn_config cc = {c->redis_host, c->redis_port, c->redis_db, c->redis_password,
                               REPLY_MARGIN_MS};
    aw_redis_conn_handlers handlers = {on_ready, on_lost, on_conn_closed};
    aw_sinks_config sc = {c->alerts_stdout, c->alert_stream, c->alert_stream_maxlen,
                          c->alert_exec, c->alert_exec_max, on_sinks_idle, d};
    uint64_t claim_every = (uint64_t)(c->claim_idle_ms / 2 > 0 ? c->claim_idle_ms / 2 : 1);
    int rc;

    assert(!d->running);
    d->running = true;
    signal(SIGPIPE, SIG_IGN);
    if ((rc = aw_sinks_new(&d->loop, &sc, d->log, &d->sinks, err)) != AW_OK ||
        (rc = aw_redis_conn_new(&d->loop, &cc, &handlers, d, d->log, &d->conn, err)) != AW_OK) {
        if (d->sinks) aw_sinks_close(d->sinks);
        close_handle((uv_handle_t *)&d->stop_async);
        uv_run(&d->loop, UV_RUN_DEFAULT);
        return rc;
    }
    init_timer(d, &d->claim_timer);
    init_timer(d, &d->summary_timer);
    init_timer(d, &d->pause_timer);
    init_timer(d, &d->commit_timer);
    init_timer(d, &d->stop_timer);
    init_signal(d, &d->sigterm, SIGTERM);
    init_signal(d, &d->sigint, SIGINT);
    init_signal(d, &d->sighup, SIGHUP);
    uv_timer_start(&d->claim_timer, on_claim_timer, claim_every, claim_every);
    uv_timer_start(&d->summary_timer, on_summary_timer, SUMMARY_INTERVAL_MS, SUMMARY_INTERVAL_MS);
    d->started_ms = uv_now(&d->loop);
    log_start(d);
    aw_redis_conn_start(d->conn);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    log_shutdown(d, &d->sink_totals);
    return AW_OK;
}

void aw_daemon_free(aw_daemon *d) {
    if (!d) return;
    if (d->loop_ready) {
        if (!d->running) close_handle((uv_handle_t *)&d->stop_async);
        uv_run(&d->loop, UV_RUN_DEFAULT);
        uv_loop_close(&d->loop);
    }
    aw_ingest_close(d->ing);
    aw_log_close(d->log);
    free(d);
}
