/* daemon.c -- the consumer's I/O layer: Redis commands out, typed facts in.
 *
 * Every decision -- what to read, when to commit, what to acknowledge, what
 * was trimmed, when to back off, when to stop -- is the core's (core.c, where
 * the state machine and the ack-after-commit rule are told). This file only
 * moves bytes, the way a hiredis adapter does: it performs the core's
 * actions on one Redis connection (redis_conn.c) and the libuv loop, and
 * turns every reply into the core's types.
 *
 * Each command is sent with its own callback and its own context (which
 * round, which stream, what kind of answer), as redisAsyncCommand pairs
 * them; a reply finds its meaning through that pairing, never through its
 * position in a pipeline. A round (the commands of one action: XGROUP
 * CREATE per stream; XINFO STREAM + XINFO GROUPS per stream and one
 * XREADGROUP; XAUTOCLAIM per stream; XPENDING per stream) reports to the
 * core once every command of it was answered.
 *
 * Commits run aw_ingest_batch on the libuv thread pool, one at a time; the
 * loop thread reads the next batch meanwhile. Alert changes go to the sinks
 * after their commit, then the acknowledgements the core hands out. The
 * access logs of --calls-log (calls_log.c) take turns on that one worker:
 * a step polled due runs between two of the core's commits, and a commit
 * the core hands out meanwhile waits for it, so the index has one writer.
 *
 * Metrics (metrics.c): the loop counts what each commit did and every alert
 * change, and once a second publishes a rendered page that the HTTP thread
 * serves; the lag is the one XINFO GROUPS reported before the last live
 * read, less what that read delivered.
 *
 * Caracal's own groups are polled on a timer (pipeline_watch.c: read-only
 * XINFO/XPENDING/XRANGE/XLEN on the same connection); what a poll found
 * rides with the next commit (aw_ingest_carry_findings) -- an idle daemon
 * commits an empty batch after every empty read, so that is soon -- and is
 * carried again if that commit fails. The page shows the figures of the
 * newest complete poll.
 *
 * Stopping. SIGTERM or SIGINT (or aw_daemon_stop) tells the core; when it
 * says stop (everything committed and acknowledged), the connection and the
 * handles close once the sinks are idle. A deadline bounds all of it
 * (STOP_DEADLINE_MS); a second signal stops at once. SIGHUP reopens the log.
 */
#include "consumer/consumer.h"

#include <assert.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "consumer/calls_log.h"
#include "consumer/core.h"
#include "consumer/log.h"
#include "consumer/pipeline_watch.h"
#include "consumer/metrics.h"
#include "consumer/redis_conn.h"
#include "consumer/reply.h"
#include "consumer/sinks.h"

#define REPLY_MARGIN_MS      5000
#define STOP_DEADLINE_MS     4000
#define SUMMARY_INTERVAL_MS  60000
#define RETRY_FIRST_MS       500
#define RETRY_MAX_MS         30000
#define NSTREAMS             AW_CORE_STREAMS
#define METRICS_INTERVAL_MS  1000
#define CALLS_LOG_POLL_MS    250
#define CALLS_LOG_STEP_LINES 2000
/* Reads stop being merged into the waiting batch once it holds this many
 * entries (a read adds at most COUNT per stream). Measured at 600k entries
 * on 2026-12-03: 8000 drained no faster (1.00x) and took the resident set
 * to 70.7 MiB, past the 64 MiB budget; 4000 keeps it at 54 MiB. */
#define GROUP_MAX_ENTRIES 4000
/* XREADGROUP GROUP g c COUNT n BLOCK ms STREAMS names... ids... */
#define READ_ARGV_MAX (9 + 2 * NSTREAMS)

typedef enum round_kind { ROUND_GROUPS, ROUND_READ, ROUND_COUNT } round_kind;

typedef enum reply_kind {
    REPLY_CREATE, /* XGROUP CREATE of one stream */
    REPLY_INFO,   /* XINFO STREAM of one stream */
    REPLY_GROUPS, /* XINFO GROUPS of one stream */
    REPLY_READ,   /* XREADGROUP over several streams */
    REPLY_CLAIM,  /* XAUTOCLAIM of one stream */
    REPLY_COUNT,  /* XPENDING of one stream */
    REPLY_TIME,   /* TIME, just before a live read */
} reply_kind;

struct round;

/* The privdata of one command. */
typedef struct reply_ctx {
    struct round *round;
    reply_kind kind;
    int stream; /* -1 for a read over several streams */
} reply_ctx;

/* Growable arrays behind one stream's part of a read. */
typedef struct stream_arrays {
    size_t entries_cap, deleted_cap, claim_deleted_cap, rows_cap;
    aw_core_delivery *rows;
    size_t nrows;
} stream_arrays;

typedef struct round {
    aw_daemon *d;
    round_kind kind;
    size_t sent, answered;
    bool failed, lost, group_missing;
    char why[AW_ERRMSG_MAX];
    reply_ctx ctx[2 * NSTREAMS + 2];
    /* A live read: Redis' clock just before it, less a millisecond (0: not
     * known), so that every entry added after it has a later id time. */
    int64_t redis_now_ns;
    /* ROUND_GROUPS: the start id each XGROUP CREATE named (the
     * configured one, or formatted into group_start_text). */
    const char *group_start[NSTREAMS];
    char group_start_text[NSTREAMS][AW_STREAM_ID_TEXT_MAX];
    aw_core_read read;
    stream_arrays arrays[NSTREAMS];
} round;

struct aw_daemon {
    const aw_daemon_config *config;
    aw_log *log;
    aw_ingest *ing;
    aw_ingest_decoder *decoder; /* the loop thread's, for reads */
    aw_core *core;
    uv_loop_t loop;
    aw_redis_conn *conn;
    aw_sinks *sinks;
    aw_stream_names stream_names; /* as aw_ingest_open resolved them */
    const char *names[NSTREAMS];  /* into stream_names */
    char count_text[24], block_text[24], idle_text[24];

    bool driving, drive_again;
    bool time_refused_logged;
    size_t rounds_in_flight;

    uv_work_t work; /* the commit on the thread pool */
    aw_core_commit commit;
    int commit_rc;
    aw_error commit_err;
    aw_ingest_stats commit_stats;
    bool in_worker;

    bool loop_ready, running, stopping, core_stopped, finished;
    uv_async_t stop_async;
    uv_signal_t sigterm, sigint, sighup;
    uv_timer_t claim_timer, summary_timer, read_timer, commit_timer, stop_timer,
        chain_timer;
    uv_timer_t watch_timer;
    aw_watch *watch; /* Caracal's groups, polled (pipeline_watch.c) */

    bool chain_due; /* the timer fired while a commit ran */
    bool chain_published;
    int64_t chain_published_count;
    size_t chain_in_flight; /* XADDs of the head not answered yet */

    aw_ingest_stats totals;
    aw_sinks_stats sink_totals;
    size_t minute_rejects[AW_REJECT_REASON_COUNT];
    size_t indexed_at_summary;  /* totals.indexed at the last summary */
    int64_t committed_clock_ns; /* detector clock after the last commit */
    uint64_t started_ms;

    aw_metrics *metrics;           /* NULL without --metrics-listen */
    aw_metrics_state figures;      /* the loop's counters behind /metrics */
    int64_t lag_read_ms[NSTREAMS]; /* when a live read last set a lag */
    uv_timer_t metrics_timer;
    double commit_seconds; /* of the last commit (worker-written) */

    /* --calls-log: its steps share the worker with the core's commits,
     * one at a time; a commit the core hands out meanwhile waits. */
    aw_calls_log *calls_log; /* NULL without --calls-log */
    uv_timer_t calls_log_timer;
    uv_work_t calls_log_work;
    bool calls_log_due, calls_log_more, core_commit_waiting;
    int calls_log_rc;
    aw_error calls_log_err;
    aw_ingest_stats calls_log_stats;
    bool calls_log_failing;
};

static void drive(aw_daemon *d);
static void try_finish(aw_daemon *d);
static void start_calls_log_step(aw_daemon *d);
static void on_stop_deadline(uv_timer_t *t);

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int stream_index(const aw_daemon *d, const char *name, size_t len)
{
    for (int i = 0; i < NSTREAMS; i++)
        if (strlen(d->names[i]) == len && memcmp(d->names[i], name, len) == 0)
            return i;
    return -1;
}

/* ---- Rounds --------------------------------------------------------------- */

static round *round_new(aw_daemon *d, round_kind kind)
{
    round *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->d = d;
    r->kind = kind;
    d->rounds_in_flight++;
    return r;
}

static void round_free(round *r)
{
    for (int s = 0; s < NSTREAMS; s++) {
        aw_core_stream_read *sr = &r->read.streams[s];
        for (size_t i = 0; i < sr->n; i++) {
            aw_raw_entry_free(sr->entries[i]);
            aw_ingest_decoded_free(sr->decoded[i]);
        }
        free(sr->entries);
        free(sr->decoded);
        free(sr->deleted);
        free(sr->claim_deleted);
        free(r->arrays[s].rows);
    }
    free(r);
}

static void round_fail(round *r, const char *what, const redisReply *reply)
{
    if (r->failed)
        return;
    r->failed = true;
    if (!reply) {
        r->lost = true;
        return;
    }
    if (aw_reply_is_error(reply, "NOGROUP"))
        r->group_missing = true;
    snprintf(r->why, sizeof r->why, "%s: %.200s", what,
             reply->type == REDIS_REPLY_ERROR ? reply->str
                                              : "unexpected reply shape");
}

/* Every command of the round answered: tell the core. */
static void round_report(round *r)
{
    aw_daemon *d = r->d;
    const char *why = r->lost ? NULL : r->why;
    d->rounds_in_flight--;
    switch (r->kind) {
    case ROUND_GROUPS: aw_core_on_groups(d->core, !r->failed, why); break;
    case ROUND_READ:
        if (r->read.kind == AW_CORE_READ_LIVE && !r->failed)
            for (int s = 0; s < NSTREAMS; s++) {
                const aw_core_stream_read *sr = &r->read.streams[s];
                if (!(d->figures.has_lag[s] = sr->before.has_lag))
                    continue;
                d->lag_read_ms[s] = wall_ns() / 1000000;
                d->figures.lag[s] = sr->before.lag > (long long)sr->n
                                        ? sr->before.lag - (long long)sr->n
                                        : 0;
            }
        r->read.failed = r->failed;
        r->read.lost = r->lost;
        r->read.group_missing = r->group_missing;
        r->read.why = why;
        r->read.now_ns = r->redis_now_ns ? r->redis_now_ns : wall_ns();
        aw_core_on_read(d->core, &r->read);
        break;
    case ROUND_COUNT: {
        const aw_core_delivery *rows[NSTREAMS];
        size_t nrows[NSTREAMS];
        for (int s = 0; s < NSTREAMS; s++) {
            rows[s] = r->arrays[s].rows;
            nrows[s] = r->arrays[s].nrows;
        }
        aw_core_on_counts(d->core, r->failed, why, rows, nrows);
        break;
    }
    }
    round_free(r);
    drive(d);
}

static void round_answered(round *r)
{
    if (++r->answered == r->sent)
        round_report(r);
}

static void send_in_round(round *r, aw_redis_reply_fn *fn, reply_kind kind,
                          int stream, int64_t wait_ms, int argc,
                          const char **argv)
{
    reply_ctx *x = &r->ctx[r->sent];
    if (r->failed)
        return;
    assert(r->sent < sizeof r->ctx / sizeof *r->ctx);
    *x = (reply_ctx){r, kind, stream};
    if (aw_redis_conn_send(r->d->conn, wait_ms, fn, x, argc, argv, NULL) !=
        AW_OK) {
        r->failed = r->lost = true;
        return;
    }
    r->sent++;
}

/* After the sends: a round none of whose commands went out is answered now,
 * and the core learns the connection is not there. */
static void round_sent(round *r)
{
    aw_daemon *d = r->d;
    if (r->sent == 0) {
        if (r->lost)
            aw_core_on_lost(d->core);
        round_report(r);
    } else if (r->lost && aw_redis_conn_is_ready(d->conn)) {
        aw_redis_conn_reset(d->conn, "a command could not be sent");
    }
}

/* ---- Replies, one callback per kind --------------------------------------- */

static void on_create_reply(aw_redis_conn *conn, redisReply *reply,
                            void *privdata)
{
    reply_ctx *x = privdata;
    aw_daemon *d = x->round->d;
    (void)conn;
    if (!reply || (reply->type == REDIS_REPLY_ERROR &&
                   !aw_reply_is_error(reply, "BUSYGROUP")))
        round_fail(x->round, "XGROUP CREATE", reply);
    else if (reply->type != REDIS_REPLY_ERROR) {
        AW_LOG(d->log, AW_LOG_INFO, "group_created",
               AW_LOG_S("stream", d->names[x->stream]),
               AW_LOG_S("group", d->config->group),
               AW_LOG_S("start_id", x->round->group_start[x->stream]));
        aw_core_on_group_created(d->core, x->stream);
    }
    round_answered(x->round);
}

/* Copies one entry list of stream s into the read: entries, and the ids of
 * entries deleted after delivery. */
typedef struct entry_sink {
    round *r;
    int stream;
    aw_field *scratch;
    size_t scratch_cap;
    aw_error err;
} entry_sink;

static int take_entry(const redisReply *id, const redisReply *fields, void *ud)
{
    entry_sink *k = ud;
    aw_core_stream_read *sr = &k->r->read.streams[k->stream];
    stream_arrays *ar = &k->r->arrays[k->stream];
    aw_raw_entry *e;
    aw_stream_id sid;
    int rc;
    if (!aw_reply_stream_id(id, &sid))
        return AW_ERR_INVALID;
    if (!fields) {
        if (!aw_array_grow((void **)&sr->deleted, &ar->deleted_cap,
                           sr->ndeleted + 1, sizeof *sr->deleted))
            return AW_ERR_NOMEM;
        sr->deleted[sr->ndeleted++] = sid;
        return AW_OK;
    }
    size_t cap = ar->entries_cap;
    if (!aw_array_grow((void **)&sr->entries, &cap, sr->n + 1,
                       sizeof *sr->entries) ||
        !aw_array_grow((void **)&sr->decoded, &ar->entries_cap, sr->n + 1,
                       sizeof *sr->decoded))
        return AW_ERR_NOMEM;
    rc = aw_redis_entry_copy(k->r->d->names[k->stream], id, fields, &k->scratch,
                             &k->scratch_cap, &e, &k->err);
    if (rc != AW_OK)
        return rc;
    /* Decoded here, on the loop thread, while the worker commits the batch
     * before: a batch then only stores (NULL: out of memory, it decodes). */
    sr->decoded[sr->n] = aw_ingest_decode(k->r->d->decoder, e);
    sr->entries[sr->n++] = e;
    return AW_OK;
}

static bool take_entries(round *r, int stream, const redisReply *list,
                         const char *what)
{
    entry_sink sink = {r, stream, NULL, 0, {0}};
    int rc = aw_reply_each_entry(list, take_entry, &sink);
    free(sink.scratch);
    if (rc == AW_OK)
        return true;
    r->failed = true;
    snprintf(r->why, sizeof r->why, "%s of %.40s: %.180s", what,
             r->d->names[stream],
             sink.err.msg[0]      ? sink.err.msg
             : rc == AW_ERR_NOMEM ? "out of memory"
                                  : "unexpected reply shape");
    return false;
}

/* XREADGROUP answers nil, or [[stream, entries], ...]. */
static void on_read_reply(aw_redis_conn *conn, redisReply *reply,
                          void *privdata)
{
    reply_ctx *x = privdata;
    round *r = x->round;
    (void)conn;
    if (!reply || reply->type == REDIS_REPLY_ERROR ||
        (reply->type != REDIS_REPLY_NIL && reply->type != REDIS_REPLY_ARRAY)) {
        round_fail(r, "XREADGROUP", reply);
    } else if (!r->failed && reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < reply->elements; i++) {
            const redisReply *pair = reply->element[i];
            int s = -1;
            if (pair->type == REDIS_REPLY_ARRAY && pair->elements == 2 &&
                pair->element[0]->type == REDIS_REPLY_STRING)
                s = stream_index(r->d, pair->element[0]->str,
                                 pair->element[0]->len);
            if (s < 0) {
                round_fail(r, "XREADGROUP", pair);
                break;
            }
            if (!take_entries(r, s, pair->element[1], "XREADGROUP"))
                break;
        }
    }
    round_answered(r);
}

/* TIME answers [seconds, microseconds]. The detector clock is Redis' clock
 * throughout (entry ids are too), so this host's clock being ahead, or
 * stepped, does not bring deadlines forward. Refused (an ACL without
 * TIME), the host's clock stands in, and the log says so once. */
static void on_time_reply(aw_redis_conn *conn, redisReply *reply,
                          void *privdata)
{
    reply_ctx *x = privdata;
    round *r = x->round;
    aw_daemon *d = r->d;
    int64_t now;
    (void)conn;
    if (aw_reply_time_ns(reply, &now))
        r->redis_now_ns = now - 1000000;
    else if (reply && reply->type == REDIS_REPLY_ERROR &&
             !d->time_refused_logged) {
        d->time_refused_logged = true;
        AW_LOG(d->log, AW_LOG_WARN, "redis_time_refused",
               AW_LOG_S("reason", reply->str),
               AW_LOG_S("clock", "this host's, while the streams are read up"));
    }
    round_answered(r);
}

static bool integer_of(const redisReply *r, long long *out)
{
    if (!r || r->type != REDIS_REPLY_INTEGER)
        return false;
    *out = r->integer;
    return true;
}

static void on_info_reply(aw_redis_conn *conn, redisReply *reply,
                          void *privdata)
{
    reply_ctx *x = privdata;
    aw_core_snapshot *b = &x->round->read.streams[x->stream].before;
    const redisReply *first;
    (void)conn;
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        round_fail(x->round, "XINFO STREAM", reply);
    } else {
        first = aw_redis_map_get(reply, "first-entry");
        b->has_first = first && first->type == REDIS_REPLY_ARRAY &&
                       first->elements == 2 &&
                       aw_reply_stream_id(first->element[0], &b->first);
        b->has_info =
            integer_of(aw_redis_map_get(reply, "length"), &b->length) &&
            aw_reply_stream_id(aw_redis_map_get(reply, "last-generated-id"),
                               &b->last_generated) &&
            aw_reply_stream_id(aw_redis_map_get(reply, "max-deleted-entry-id"),
                               &b->max_deleted);
    }
    round_answered(x->round);
}

/* Our group's last-delivered id and lag. */
static void on_groups_reply(aw_redis_conn *conn, redisReply *reply,
                            void *privdata)
{
    reply_ctx *x = privdata;
    round *r = x->round;
    aw_core_snapshot *b = &r->read.streams[x->stream].before;
    const char *group = r->d->config->group;
    bool found = false;
    (void)conn;
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        round_fail(r, "XINFO GROUPS", reply);
        round_answered(r);
        return;
    }
    for (size_t i = 0; i < reply->elements && !found; i++) {
        const redisReply *name = aw_redis_map_get(reply->element[i], "name");
        if (name && name->type == REDIS_REPLY_STRING &&
            name->len == strlen(group) &&
            memcmp(name->str, group, name->len) == 0) {
            found = true;
            b->has_group = aw_reply_stream_id(
                aw_redis_map_get(reply->element[i], "last-delivered-id"),
                &b->last_delivered);
            b->has_lag =
                integer_of(aw_redis_map_get(reply->element[i], "lag"), &b->lag);
        }
    }
    if (!found && !r->failed) {
        r->failed = r->group_missing = true;
        snprintf(r->why, sizeof r->why, "group %s is missing on %s", group,
                 r->d->names[x->stream]);
    }
    round_answered(r);
}

/* [next cursor, entries, deleted ids] */
static void on_claim_reply(aw_redis_conn *conn, redisReply *reply,
                           void *privdata)
{
    reply_ctx *x = privdata;
    round *r = x->round;
    aw_core_stream_read *sr = &r->read.streams[x->stream];
    stream_arrays *ar = &r->arrays[x->stream];
    (void)conn;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
        !aw_reply_stream_id(reply->element[0], &sr->claim_cursor)) {
        round_fail(r, "XAUTOCLAIM", reply);
    } else if (!r->failed &&
               take_entries(r, x->stream, reply->element[1], "XAUTOCLAIM") &&
               reply->elements > 2 &&
               reply->element[2]->type == REDIS_REPLY_ARRAY) {
        const redisReply *del = reply->element[2];
        aw_stream_id id;
        for (size_t i = 0; i < del->elements; i++) {
            if (!aw_reply_stream_id(del->element[i], &id))
                continue;
            if (!aw_array_grow((void **)&sr->claim_deleted,
                               &ar->claim_deleted_cap, sr->nclaim_deleted + 1,
                               sizeof *sr->claim_deleted)) {
                round_fail(r, "XAUTOCLAIM", NULL);
                r->lost = false;
                snprintf(r->why, sizeof r->why, "XAUTOCLAIM: out of memory");
                break;
            }
            sr->claim_deleted[sr->nclaim_deleted++] = id;
        }
    }
    round_answered(r);
}

/* Rows [id, consumer, idle ms, deliveries]. */
static void on_count_reply(aw_redis_conn *conn, redisReply *reply,
                           void *privdata)
{
    reply_ctx *x = privdata;
    round *r = x->round;
    stream_arrays *ar = &r->arrays[x->stream];
    (void)conn;
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        round_fail(r, "XPENDING", reply);
        round_answered(r);
        return;
    }
    for (size_t k = 0; k < reply->elements; k++) {
        const redisReply *row = reply->element[k];
        aw_stream_id id;
        if (row->type != REDIS_REPLY_ARRAY || row->elements < 4 ||
            !aw_reply_stream_id(row->element[0], &id) ||
            row->element[3]->type != REDIS_REPLY_INTEGER)
            continue;
        if (!aw_array_grow((void **)&ar->rows, &ar->rows_cap, ar->nrows + 1,
                           sizeof *ar->rows)) {
            r->failed = true;
            snprintf(r->why, sizeof r->why, "XPENDING: out of memory");
            break;
        }
        ar->rows[ar->nrows++] =
            (aw_core_delivery){id, row->element[3]->integer};
    }
    round_answered(r);
}

static void on_ack_reply(aw_redis_conn *conn, redisReply *reply, void *privdata)
{
    aw_daemon *d = privdata;
    (void)conn;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        AW_LOG(d->log, AW_LOG_WARN, "ack_failed",
               AW_LOG_S("error", reply->str));
    aw_core_on_acked(
        d->core, !reply || reply->type != REDIS_REPLY_INTEGER,
        reply && reply->type == REDIS_REPLY_INTEGER ? reply->integer : 0);
    drive(d);
    try_finish(d);
}

/* ---- Performing the core's actions --------------------------------------- */

/* A group of `$` made where the index already holds entries of its stream
 * (it was deleted, while we ran or were down) starts after the newest: `$`
 * would skip what came since, unseen. */
static const char *group_start(aw_daemon *d, int stream,
                               char buf[AW_STREAM_ID_TEXT_MAX])
{
    aw_stream_id committed;
    if (strcmp(d->config->start_id, "$") != 0 ||
        !aw_core_committed(d->core, stream, &committed))
        return d->config->start_id;
    return aw_stream_id_format(committed, buf);
}

static void perform_create(aw_daemon *d)
{
    round *r = round_new(d, ROUND_GROUPS);
    if (!r) {
        aw_core_on_groups(d->core, false, "out of memory");
        return;
    }
    for (int s = 0; s < NSTREAMS; s++) {
        r->group_start[s] = group_start(d, s, r->group_start_text[s]);
        const char *argv[] = {"XGROUP",         "CREATE",          d->names[s],
                              d->config->group, r->group_start[s], "MKSTREAM"};
        send_in_round(r, on_create_reply, REPLY_CREATE, s, 0, 6, argv);
    }
    round_sent(r);
}

static void send_xreadgroup(aw_daemon *d, round *r, const aw_core_action *a)
{
    const char *argv[READ_ARGV_MAX];
    int argc = 0, picked[NSTREAMS], n = 0;
    for (int s = 0; s < NSTREAMS; s++)
        if (a->read.want[s])
            picked[n++] = s;
    argv[argc++] = "XREADGROUP";
    argv[argc++] = "GROUP";
    argv[argc++] = d->config->group;
    argv[argc++] = d->config->consumer;
    argv[argc++] = "COUNT";
    argv[argc++] = d->count_text;
    if (a->read.blocking) {
        argv[argc++] = "BLOCK";
        argv[argc++] = d->block_text;
    }
    argv[argc++] = "STREAMS";
    for (int i = 0; i < n; i++)
        argv[argc++] = d->names[picked[i]];
    for (int i = 0; i < n; i++)
        argv[argc++] = a->read.from[picked[i]];
    send_in_round(r, on_read_reply, REPLY_READ, -1,
                  a->read.blocking ? (int64_t)d->config->block_ms : 0, argc,
                  argv);
}

static void perform_read(aw_daemon *d, const aw_core_action *a)
{
    round *r = round_new(d, ROUND_READ);
    if (!r) {
        aw_core_read failed = {
            .kind = a->read.kind, .failed = true, .why = "out of memory"};
        aw_core_on_read(d->core, &failed);
        return;
    }
    r->read.kind = a->read.kind;
    r->read.blocking = a->read.blocking;
    if (a->read.kind == AW_CORE_READ_CLAIM) {
        for (int s = 0; s < NSTREAMS; s++) {
            const char *argv[] = {"XAUTOCLAIM",     d->names[s],
                                  d->config->group, d->config->consumer,
                                  d->idle_text,     a->read.from[s],
                                  "COUNT",          d->count_text};
            if (a->read.want[s])
                send_in_round(r, on_claim_reply, REPLY_CLAIM, s, 0, 8, argv);
        }
    } else {
        /* The snapshot trimming is judged against, taken before the read
         * moves the group on. */
        for (int s = 0; a->read.kind == AW_CORE_READ_LIVE && s < NSTREAMS;
             s++) {
            const char *info[] = {"XINFO", "STREAM", d->names[s]};
            const char *groups[] = {"XINFO", "GROUPS", d->names[s]};
            send_in_round(r, on_info_reply, REPLY_INFO, s, 0, 3, info);
            send_in_round(r, on_groups_reply, REPLY_GROUPS, s, 0, 3, groups);
        }
        if (a->read.kind == AW_CORE_READ_LIVE) {
            const char *time_argv[] = {"TIME"};
            send_in_round(r, on_time_reply, REPLY_TIME, -1, 0, 1, time_argv);
        }
        send_xreadgroup(d, r, a);
    }
    round_sent(r);
}

static void perform_count(aw_daemon *d, const aw_core_action *a)
{
    round *r = round_new(d, ROUND_COUNT);
    if (!r) {
        const aw_core_delivery *rows[NSTREAMS] = {0};
        size_t nrows[NSTREAMS] = {0};
        aw_core_on_counts(d->core, true, "out of memory", rows, nrows);
        return;
    }
    for (int s = 0; s < NSTREAMS; s++) {
        char count[24];
        if (!a->count.want[s])
            continue;
        snprintf(count, sizeof count, "%zu", a->count.max_rows[s]);
        const char *argv[] = {"XPENDING",         d->names[s],
                              d->config->group,   a->count.first[s],
                              a->count.last[s],   count,
                              d->config->consumer};
        send_in_round(r, on_count_reply, REPLY_COUNT, s, 0, 7, argv);
    }
    round_sent(r);
}

static void perform_ack(aw_daemon *d, const aw_core_action *a)
{
    const char **argv = malloc((3 + a->ack.n) * sizeof *argv);
    if (argv) {
        argv[0] = "XACK";
        argv[1] = d->names[a->ack.stream];
        argv[2] = d->config->group;
        memcpy(argv + 3, a->ack.ids, a->ack.n * sizeof *argv);
    }
    /* Unsent, the entries stay pending and come back as duplicates. */
    if (!argv || aw_redis_conn_send(d->conn, 0, on_ack_reply, d,
                                    (int)(3 + a->ack.n), argv, NULL) != AW_OK)
        aw_core_on_acked(d->core, true, 0);
    free(argv);
}

/* ---- Committing (the worker thread runs work_commit only) ------------------ */

static double monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void work_commit(uv_work_t *w)
{
    aw_daemon *d = w->data;
    double started = monotonic_seconds();
    memset(&d->commit_err, 0, sizeof d->commit_err);
    d->commit_rc = aw_ingest_batch(
        d->ing, d->commit.items, d->commit.n, d->commit.trims, d->commit.ntrims,
        d->commit.clock_ns, &d->commit_stats, &d->commit_err);
    d->commit_seconds = monotonic_seconds() - started;
}

/* After the stop the alerts stay in the table only. */
static void on_alert(const aw_alert *alert, aw_alert_change change, void *ud)
{
    aw_daemon *d = ud;
    aw_metrics_count_alert(&d->figures, alert, change);
    if (d->sinks)
        aw_sinks_emit(d->sinks, alert, change, d->conn);
}

static void add_stats(aw_daemon *d, const aw_ingest_stats *s)
{
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

/* ---- The chain head, published outside the index ---------------------------- */

#define CHAIN_STREAM_MAXLEN "100000"

static void on_chain_reply(aw_redis_conn *conn, redisReply *reply,
                           void *privdata)
{
    aw_daemon *d = privdata;
    (void)conn;
    d->chain_in_flight--;
    if (!reply || reply->type == REDIS_REPLY_ERROR)
        AW_LOG(d->log, AW_LOG_WARN, "chain_head_not_published",
               AW_LOG_S("stream", d->config->chain_stream),
               AW_LOG_S("error", reply ? reply->str : "connection lost"));
    try_finish(d);
}

/* Logs the head (and XADDs it) when it moved since the last time, or
 * always at shutdown. Reads the index, so only while no commit runs. */
static void publish_chain_head(aw_daemon *d, const char *reason)
{
    bool shutdown = strcmp(reason, "shutdown") == 0;
    unsigned char hash[32];
    char hex[65], head[96], count_text[24], at[40];
    int64_t count;
    aw_error err = {0};
    if (d->in_worker) {
        d->chain_due = true;
        return;
    }
    d->chain_due = false;
    if (aw_store_chain_head(aw_ingest_store(d->ing), &count, hash, &err) !=
        AW_OK) {
        AW_LOG(d->log, AW_LOG_WARN, "chain_head_unreadable",
               AW_LOG_S("error", err.msg));
        return;
    }
    if (!shutdown && d->chain_published && count == d->chain_published_count)
        return;
    d->chain_published = true;
    d->chain_published_count = count;
    aw_hex(hash, 32, hex);
    snprintf(head, sizeof head, "%s@%lld", hex, (long long)count);
    snprintf(count_text, sizeof count_text, "%lld", (long long)count);
    aw_time_format(wall_ns(), at, sizeof at);
    AW_LOG(d->log, AW_LOG_INFO, "chain_head", AW_LOG_S("chain_head", head),
           AW_LOG_I("entries", count), AW_LOG_S("reason", reason));
    if (!d->config->chain_stream)
        return;
    const char *argv[] = {"XADD",
                          d->config->chain_stream,
                          "MAXLEN",
                          "~",
                          CHAIN_STREAM_MAXLEN,
                          "*",
                          "chain_head",
                          head,
                          "entries",
                          count_text,
                          "hash",
                          hex,
                          "published_at",
                          at,
                          "consumer",
                          d->config->consumer,
                          "reason",
                          reason};
    if (d->conn && aw_redis_conn_send(d->conn, 0, on_chain_reply, d,
                                      (int)(sizeof argv / sizeof *argv), argv,
                                      NULL) == AW_OK)
        d->chain_in_flight++;
    else
        AW_LOG(d->log, AW_LOG_WARN, "chain_head_not_published",
               AW_LOG_S("stream", d->config->chain_stream),
               AW_LOG_S("error", "Redis is not connected"));
}

static void on_chain_timer(uv_timer_t *t)
{
    publish_chain_head(t->data, "timer");
}

static void after_commit(uv_work_t *w, int status)
{
    aw_daemon *d = w->data;
    (void)status;
    d->in_worker = false;
    aw_watch_settle(d->watch, d->commit_rc == AW_OK);
    if (d->commit_rc == AW_OK) {
        d->committed_clock_ns =
            aw_ingest_clock(d->ing); /* the worker is idle now */
        add_stats(d, &d->commit_stats);
        aw_metrics_count_batch(&d->figures, &d->commit_stats,
                               d->commit_seconds);
        aw_ingest_drain_alerts(d->ing, on_alert, d);
    }
    if (d->calls_log_due)
        start_calls_log_step(d);
    aw_core_on_commit(d->core, d->commit_rc, &d->commit_err);
    if (d->chain_due && !d->finished)
        publish_chain_head(d, "timer");
    drive(d);
    try_finish(d);
}

static void start_core_commit(aw_daemon *d)
{
    const aw_pipeline_finding *findings;
    size_t nfindings = aw_watch_take(d->watch, &findings);
    aw_ingest_carry_findings(d->ing, findings,
                             nfindings); /* they ride with this batch */
    d->core_commit_waiting = false;
    d->work.data = d;
    d->in_worker = true;
    if (uv_queue_work(&d->loop, &d->work, work_commit, after_commit) != 0) {
        d->in_worker = false;
        aw_ingest_carry_findings(d->ing, NULL, 0);
        aw_watch_settle(d->watch, false);
        aw_error err;
        aw_error_set(&err, AW_ERR_NOMEM, "cannot queue the commit");
        aw_core_on_commit(d->core, AW_ERR_NOMEM, &err);
    }
}

static void perform_commit(aw_daemon *d, const aw_core_action *a)
{
    d->commit = a->commit;
    if (d->in_worker)
        d->core_commit_waiting = true; /* a calls-log step runs */
    else
        start_core_commit(d);
}

/* ---- Access logs followed in place (calls_log.c), on the same worker ------- */

static void work_calls_log(uv_work_t *w)
{
    aw_daemon *d = w->data;
    double started = monotonic_seconds();
    memset(&d->calls_log_err, 0, sizeof d->calls_log_err);
    d->calls_log_rc = aw_calls_log_step(
        d->calls_log, d->ing, CALLS_LOG_STEP_LINES, &d->calls_log_stats,
        &d->calls_log_more, &d->calls_log_err);
    d->commit_seconds = monotonic_seconds() - started;
}

static void after_calls_log(uv_work_t *w, int status)
{
    aw_daemon *d = w->data;
    const aw_calls_log_note *notes;
    size_t nnotes = aw_calls_log_notes(d->calls_log, &notes);
    (void)status;
    d->in_worker = false;
    for (size_t i = 0; i < nnotes; i++)
        AW_LOG(d->log, AW_LOG_INFO, "calls_log",
               AW_LOG_S("path", notes[i].path),
               AW_LOG_S("note", notes[i].note));
    if (d->calls_log_rc == AW_OK) {
        if (d->calls_log_failing)
            AW_LOG(d->log, AW_LOG_INFO, "calls_log_recovered");
        d->calls_log_failing = false;
        add_stats(d, &d->calls_log_stats);
        if (d->calls_log_stats.indexed + d->calls_log_stats.rejected)
            aw_metrics_count_batch(&d->figures, &d->calls_log_stats,
                                   d->commit_seconds);
        aw_ingest_drain_alerts(d->ing, on_alert, d);
    } else if (!d->calls_log_failing) {
        /* Nothing moved: the same lines are read again at the next poll. */
        d->calls_log_failing = true;
        AW_LOG(d->log, AW_LOG_WARN, "calls_log_commit_failed",
               AW_LOG_S("error", d->calls_log_err.msg),
               AW_LOG_S("action", "the lines are read again at the next poll"));
    }
    d->calls_log_due = d->calls_log_rc == AW_OK && d->calls_log_more;
    if (d->core_commit_waiting && !d->finished)
        start_core_commit(d);
    /* The core stopped while this step ran: the shutdown head is due now. */
    if (d->core_stopped && !d->finished &&
        aw_core_get_state(d->core) != AW_CORE_BROKEN)
        publish_chain_head(d, "shutdown");
    else if (d->chain_due && !d->finished)
        publish_chain_head(d, "timer");
    drive(d);
    try_finish(d);
}

static void start_calls_log_step(aw_daemon *d)
{
    if (d->in_worker || !d->calls_log || d->stopping || d->finished)
        return;
    d->calls_log_due = false;
    d->calls_log_work.data = d;
    d->in_worker = true;
    if (uv_queue_work(&d->loop, &d->calls_log_work, work_calls_log,
                      after_calls_log) != 0)
        d->in_worker = false;
}

static void on_calls_log_timer(uv_timer_t *t)
{
    aw_daemon *d = t->data;
    d->calls_log_due = true;
    start_calls_log_step(d);
}

/* ---- Timers, logs, the loop that drives the core --------------------------- */

static void on_read_timer(uv_timer_t *t)
{
    aw_daemon *d = t->data;
    aw_core_on_timer(d->core, AW_CORE_TIMER_READS);
    drive(d);
}

static void on_commit_timer(uv_timer_t *t)
{
    aw_daemon *d = t->data;
    aw_core_on_timer(d->core, AW_CORE_TIMER_COMMIT);
    drive(d);
}

static void perform_log(aw_daemon *d, const aw_core_action *a)
{
    static const aw_log_level levels[] = {AW_LOG_INFO, AW_LOG_WARN,
                                          AW_LOG_ERROR};
    aw_log_field f[6];
    size_t n = 0;
    if (a->log.stream)
        f[n++] = AW_LOG_S("stream", a->log.stream);
    if (a->log.first_id)
        f[n++] = AW_LOG_S(a->log.last_id ? "first_id" : "id", a->log.first_id);
    if (a->log.last_id)
        f[n++] = AW_LOG_S("last_id", a->log.last_id);
    if (a->log.entries >= 0)
        f[n++] = AW_LOG_I("entries", a->log.entries);
    if (a->log.error)
        f[n++] = AW_LOG_S("error", a->log.error);
    if (a->log.action)
        f[n++] = AW_LOG_S("action", a->log.action);
    aw_log_event(d->log, levels[a->log.level], a->log.event, f, n);
}

static void perform(aw_daemon *d, const aw_core_action *a)
{
    switch (a->kind) {
    case AW_ACT_NONE: break;
    case AW_ACT_CREATE_GROUPS: perform_create(d); break;
    case AW_ACT_READ: perform_read(d, a); break;
    case AW_ACT_COUNT: perform_count(d, a); break;
    case AW_ACT_COMMIT: perform_commit(d, a); break;
    case AW_ACT_ACK: perform_ack(d, a); break;
    case AW_ACT_WAIT:
        uv_timer_start(a->wait.timer == AW_CORE_TIMER_READS ? &d->read_timer
                                                            : &d->commit_timer,
                       a->wait.timer == AW_CORE_TIMER_READS ? on_read_timer
                                                            : on_commit_timer,
                       (uint64_t)a->wait.ms, 0);
        break;
    case AW_ACT_LOG: perform_log(d, a); break;
    case AW_ACT_STOP:
        d->core_stopped = true;
        /* A stop of the core's own (a broken index) is bounded too. */
        if (!d->stopping)
            uv_timer_start(&d->stop_timer, on_stop_deadline, STOP_DEADLINE_MS,
                           0);
        /* A copy of where the chain ended, unless the index is broken or a
         * commit is still running (a stop at once). */
        if (aw_core_get_state(d->core) != AW_CORE_BROKEN && !d->in_worker)
            publish_chain_head(d, "shutdown");
        break;
    }
}

/* Asks the core what to do until it has nothing; re-entrant calls (a
 * failed send answering at once) just ask for another pass. */
static void drive(aw_daemon *d)
{
    aw_core_action a;
    if (d->finished)
        return;
    if (d->driving) {
        d->drive_again = true;
        return;
    }
    d->driving = true;
    do {
        d->drive_again = false;
        for (aw_core_next(d->core, &a); a.kind != AW_ACT_NONE;
             aw_core_next(d->core, &a))
            perform(d, &a);
    } while (d->drive_again);
    d->driving = false;
    try_finish(d);
}

static void on_ready(aw_redis_conn *conn, void *ud)
{
    aw_daemon *d = ud;
    (void)conn;
    d->figures.redis_connected = true;
    aw_core_on_connected(d->core);
    drive(d);
}

static void on_lost(aw_redis_conn *conn, void *ud)
{
    aw_daemon *d = ud;
    (void)conn;
    d->figures.redis_connected = false;
    aw_core_on_lost(d->core);
    drive(d);
}

static void on_conn_closed(aw_redis_conn *conn, void *ud)
{
    aw_daemon *d = ud;
    (void)conn;
    d->conn = NULL;
}

static void on_watch_timer(uv_timer_t *t)
{
    aw_daemon *d = t->data;
    if (!d->stopping)
        aw_watch_poll(d->watch, d->conn);
}

static void on_claim_timer(uv_timer_t *t)
{
    aw_daemon *d = t->data;
    aw_core_on_claim_due(d->core);
    drive(d);
}

/* Once a minute: how far ingest got (so an operator sees it work), and the
 * rejections of that minute, summarized instead of one line each. */
static void on_summary_timer(uv_timer_t *t)
{
    aw_daemon *d = t->data;
    aw_log_field fields[AW_REJECT_REASON_COUNT + 1];
    size_t n = 1, total = 0;
    char clock[40];
    if (d->totals.indexed != d->indexed_at_summary) {
        AW_LOG(d->log, AW_LOG_INFO, "ingest_progress",
               AW_LOG_I("indexed", d->totals.indexed - d->indexed_at_summary),
               AW_LOG_I("indexed_total", d->totals.indexed),
               AW_LOG_I("acked_total", aw_core_totals_get(d->core)->acked),
               AW_LOG_S("detector_clock", aw_time_format(d->committed_clock_ns,
                                                         clock, sizeof clock)));
        d->indexed_at_summary = d->totals.indexed;
    }
    for (int r = 0; r < AW_REJECT_REASON_COUNT; r++) {
        if (!d->minute_rejects[r])
            continue;
        total += d->minute_rejects[r];
        fields[n++] = AW_LOG_I(aw_reject_reason_name((aw_reject_reason)r),
                               d->minute_rejects[r]);
        d->minute_rejects[r] = 0;
    }
    if (!total)
        return;
    fields[0] = AW_LOG_I("total", total);
    aw_log_event(d->log, AW_LOG_WARN, "entries_rejected", fields, n);
}

/* ---- Metrics: the loop's figures, rendered for the HTTP thread ------------- */

/* Our lag on the audit and revocation streams as the pipeline watch's
 * newest poll saw it, where that is newer than our last live read's: an
 * idle daemon reads again only after its commit, and while another writer
 * holds the index that commit waits, and so would the lag shown. */
static void take_watched_lag(aw_daemon *d)
{
    const aw_watch_figures *f = aw_watch_figures_get(d->watch);
    for (int k = 0; f->polled && k < AW_WATCH_OWN_STREAMS; k++) {
        int s = stream_index(d, f->own_streams[k], strlen(f->own_streams[k]));
        if (s < 0 || f->own_lag[k] == AW_FIGURE_UNKNOWN ||
            f->polled_at_ms <= d->lag_read_ms[s])
            continue;
        d->figures.has_lag[s] = true;
        d->figures.lag[s] = f->own_lag[k];
    }
}

/* The gauges only the loop can read now, then the page. */
static void publish_metrics(aw_daemon *d)
{
    uint64_t now_ms = (uint64_t)(wall_ns() / 1000000), oldest_ms;
    size_t len;
    char *page;
    for (int s = 0; s < NSTREAMS; s++)
        d->figures.oldest_pending_seconds[s] =
            aw_core_oldest_unacked_ms(d->core, s, &oldest_ms) &&
                    oldest_ms < now_ms
                ? (double)(now_ms - oldest_ms) / 1000.0
                : 0;
    d->figures.detector_clock_seconds = (double)d->committed_clock_ns / 1e9;
    if (d->sinks) {
        const aw_sinks_stats *sent = aw_sinks_stats_get(d->sinks);
        d->figures.alert_stream_failed = sent->stream_failed;
        d->figures.alert_hook_failed = sent->hook_failed;
        d->figures.alert_hook_dropped = sent->hook_dropped;
    }
    take_watched_lag(d);
    if ((page = aw_metrics_render(&d->figures, &len)))
        aw_metrics_publish(d->metrics, page, len);
}

static void on_metrics_timer(uv_timer_t *t)
{
    publish_metrics(t->data);
}

static int count_open_alert(const char *kind, int64_t count, void *ud)
{
    aw_metrics_set_open(ud, kind, count);
    return 0;
}

/* Listens, and starts the open-alert gauges from the index. */
static int metrics_open(aw_daemon *d, aw_error *err)
{
    int rc;
    aw_metrics_state_init(&d->figures, d->names);
    d->figures.caracal = aw_watch_figures_get(d->watch);
    if (!d->config->metrics_listen)
        return AW_OK;
    if ((rc = aw_store_count_by(aw_ingest_store(d->ing), "open_alerts_by_kind",
                                count_open_alert, &d->figures, err)) < 0)
        return rc;
    d->committed_clock_ns = aw_ingest_clock(d->ing);
    return aw_metrics_listen(d->config->metrics_listen, &d->metrics, err);
}

/* ---- Stopping ------------------------------------------------------------------------- */

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void finish(aw_daemon *d)
{
    if (d->finished)
        return;
    d->finished = true;
    on_summary_timer(&d->summary_timer);
    if (d->conn)
        aw_redis_conn_close(d->conn);
    d->sink_totals = *aw_sinks_stats_get(d->sinks);
    aw_sinks_close(d->sinks);
    d->sinks = NULL;
    close_handle((uv_handle_t *)&d->stop_async);
    close_handle((uv_handle_t *)&d->sigterm);
    close_handle((uv_handle_t *)&d->sigint);
    close_handle((uv_handle_t *)&d->sighup);
    close_handle((uv_handle_t *)&d->claim_timer);
    close_handle((uv_handle_t *)&d->summary_timer);
    close_handle((uv_handle_t *)&d->read_timer);
    close_handle((uv_handle_t *)&d->commit_timer);
    close_handle((uv_handle_t *)&d->stop_timer);
    close_handle((uv_handle_t *)&d->chain_timer);
    close_handle((uv_handle_t *)&d->watch_timer);
    close_handle((uv_handle_t *)&d->metrics_timer);
    close_handle((uv_handle_t *)&d->calls_log_timer);
}

/* The core is done; the sinks may still be writing alerts out. */
static void try_finish(aw_daemon *d)
{
    if (d->core_stopped && !d->finished && !aw_sinks_busy(d->sinks) &&
        !d->chain_in_flight && !d->in_worker)
        finish(d);
}

static void on_stop_deadline(uv_timer_t *t)
{
    aw_daemon *d = t->data;
    AW_LOG(
        d->log, AW_LOG_WARN, "stop_deadline",
        AW_LOG_I("after_ms", STOP_DEADLINE_MS),
        AW_LOG_S(
            "note",
            "what was not acknowledged is delivered again at the next start"));
    aw_core_on_stop(d->core); /* the second stop: at once */
    drive(d);
    finish(d);
}

static void begin_stop(aw_daemon *d, const char *why)
{
    if (d->finished)
        return;
    if (!d->stopping) {
        d->stopping = true;
        AW_LOG(d->log, AW_LOG_INFO, "stopping", AW_LOG_S("reason", why));
        uv_timer_stop(&d->claim_timer);
        uv_timer_stop(&d->watch_timer);
        uv_timer_stop(&d->calls_log_timer);
        uv_timer_start(&d->stop_timer, on_stop_deadline, STOP_DEADLINE_MS, 0);
    }
    aw_core_on_stop(d->core);
    drive(d);
}

static void on_stop_async(uv_async_t *a)
{
    begin_stop(a->data, "requested");
}

static void on_signal(uv_signal_t *h, int signum)
{
    aw_daemon *d = h->data;
    if (signum == SIGHUP)
        aw_log_reopen(d->log);
    else
        begin_stop(d, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void on_sinks_idle(void *ud)
{
    try_finish(ud);
}

/* ---- The public surface ---------------------------------------------------------------- */

void aw_daemon_config_init(aw_daemon_config *c)
{
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
    c->chain_interval_ms = 60000;
    c->enforcer_poll_ms = 5000;
    c->grace_enforcer_ms = AW_ENFORCER_DEFAULT_GRACE_MS;
    c->ingest_limits = (aw_ingest_limits){AW_INGEST_DEFAULT_MAX_LAG,
                                          AW_INGEST_DEFAULT_MAX_AGE_MS};
}

static bool valid_start_id(const char *id)
{
    uint64_t ms, seq;
    return strcmp(id, "$") == 0 ||
           aw_stream_id_parse(id, strlen(id), &ms, &seq) == AW_OK;
}

static int check_config(const aw_daemon_config *c, aw_error *err)
{
    static const char *const caracal_groups[] = {"audit-ingestor",
                                                 "sts-revocation"};
    if (!c->consumer || !*c->consumer)
        return aw_error_set(err, AW_ERR_INVALID, "a consumer name is required");
    if (!c->group || !*c->group)
        return aw_error_set(err, AW_ERR_INVALID,
                            "a consumer group name is required");
    for (size_t i = 0; i < sizeof caracal_groups / sizeof *caracal_groups; i++)
        if (strcmp(c->group, caracal_groups[i]) == 0)
            return aw_error_set(
                err, AW_ERR_INVALID,
                "group \"%s\" is Caracal's own: sharing it would take entries "
                "away from Caracal",
                c->group);
    if (!c->start_id || !valid_start_id(c->start_id))
        return aw_error_set(err, AW_ERR_INVALID,
                            "start id must be 0, $ or an entry id");
    if (!c->redis_host || !*c->redis_host || c->redis_port < 1 ||
        c->redis_port > 65535)
        return aw_error_set(err, AW_ERR_INVALID, "bad Redis address");
    if (c->count < 1 || c->block_ms < 1 || c->claim_idle_ms < 1 ||
        c->max_deliveries < 1 || c->alert_exec_max < 1 ||
        c->chain_interval_ms < 1 || c->enforcer_poll_ms < 1)
        return aw_error_set(
            err, AW_ERR_INVALID,
            "count, block, claim idle, max deliveries, hook limit, chain "
            "interval and enforcer poll must be at least 1");
    return AW_OK;
}

/* The index's checkpoint of each stream this daemon reads. */
static int seed_committed(const char *stream, const char *entry_id,
                          int64_t updated_at_ns, void *ud)
{
    aw_daemon *d = ud;
    aw_stream_id id;
    (void)updated_at_ns;
    for (int s = 0; s < NSTREAMS; s++)
        if (strcmp(d->names[s], stream) == 0 &&
            aw_stream_id_from_text(entry_id, strlen(entry_id), &id) == AW_OK)
            aw_core_set_committed(d->core, s, id);
    return 0;
}

int aw_daemon_new(const aw_daemon_config *config, aw_daemon **out,
                  aw_error *err)
{
    aw_daemon *d;
    int rc;
    *out = NULL;
    if ((rc = check_config(config, err)) != AW_OK)
        return rc;
    if (!(d = calloc(1, sizeof *d)))
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    d->config = config;
    if ((rc = aw_log_open(config->log_format, config->log_file, &d->log,
                          err)) != AW_OK ||
        (rc = aw_ingest_open(&config->ingest, &d->ing, err)) != AW_OK ||
        (rc = aw_ingest_decoder_new(d->ing, &d->decoder, err)) != AW_OK) {
        aw_daemon_free(d);
        return rc;
    }
    if ((rc = aw_stream_names_resolve(config->ingest.streams, &d->stream_names,
                                      err)) != AW_OK) {
        aw_daemon_free(d);
        return rc;
    }
    for (int s = 0; s < NSTREAMS; s++)
        d->names[s] = d->stream_names.of[s];
    aw_core_config core_config = {.group_max_entries = GROUP_MAX_ENTRIES,
                                  .max_deliveries = config->max_deliveries,
                                  .retry_first_ms = RETRY_FIRST_MS,
                                  .retry_max_ms = RETRY_MAX_MS};
    memcpy(core_config.streams, d->names, sizeof d->names);
    aw_watch_config watch_config = {
        .audit_stream = d->names[AW_ROLE_AUDIT],
        .revocation_streams = {d->names[AW_ROLE_SESSION_REVOKE],
                               d->names[AW_ROLE_AGENT_LIFECYCLE],
                               d->names[AW_ROLE_DELEGATION_INVALIDATE]},
        .dead_letter_streams = {d->names[AW_ROLE_AUDIT_DLQ],
                                d->names[AW_ROLE_SESSION_REVOKE_DEAD],
                                d->names[AW_ROLE_AGENT_LIFECYCLE_DEAD],
                                d->names[AW_ROLE_DELEGATION_INVALIDATE_DEAD]},
        .own_group = config->group,
        .enforcer_groups = config->enforcer_groups,
        .nenforcer_groups = config->nenforcer_groups,
        .grace_ms = config->grace_enforcer_ms,
        .ingest = config->ingest_limits,
    };
    if (!(d->core = aw_core_new(&core_config)) ||
        !(d->watch = aw_watch_new(&watch_config))) {
        aw_daemon_free(d);
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    }
    if ((rc = aw_store_query_checkpoints(aw_ingest_store(d->ing),
                                         seed_committed, d, err)) < 0) {
        aw_daemon_free(d);
        return rc;
    }
    if ((rc = metrics_open(d, err)) != AW_OK ||
        (config->ncalls_logs &&
         (rc = aw_calls_log_new(config->calls_logs, config->ncalls_logs,
                                &config->ingest.call_fields,
                                aw_ingest_store(d->ing), &d->calls_log, err)) !=
             AW_OK)) {
        aw_daemon_free(d);
        return rc;
    }
    snprintf(d->count_text, sizeof d->count_text, "%zu", config->count);
    snprintf(d->block_text, sizeof d->block_text, "%lld",
             (long long)config->block_ms);
    snprintf(d->idle_text, sizeof d->idle_text, "%lld",
             (long long)config->claim_idle_ms);
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

void aw_daemon_stop(aw_daemon *d)
{
    uv_async_send(&d->stop_async);
}

static void init_timer(aw_daemon *d, uv_timer_t *t)
{
    uv_timer_init(&d->loop, t);
    t->data = d;
}

static void init_signal(aw_daemon *d, uv_signal_t *h, int signum)
{
    uv_signal_init(&d->loop, h);
    h->data = d;
    uv_signal_start(h, on_signal, signum);
}

static void log_start(aw_daemon *d)
{
    const aw_daemon_config *c = d->config;
    AW_LOG(d->log, AW_LOG_INFO, "start", AW_LOG_S("consumer", c->consumer),
           AW_LOG_S("group", c->group), AW_LOG_S("db", c->ingest.db_path),
           AW_LOG_S("redis_host", c->redis_host),
           AW_LOG_I("redis_port", c->redis_port),
           AW_LOG_S("audit_stream", d->names[AW_ROLE_AUDIT]),
           AW_LOG_S("audit_signatures",
                    c->ingest.audit_key ? "required" : "not checked"),
           AW_LOG_S("stream_signatures",
                    c->ingest.streams_key ? "required" : "not checked"),
           AW_LOG_S("calls_signatures",
                    c->ingest.calls_key ? "required" : "not required"),
           AW_LOG_S("start_id", c->start_id), AW_LOG_I("count", c->count),
           AW_LOG_I("block_ms", c->block_ms),
           AW_LOG_I("claim_idle_ms", c->claim_idle_ms));
}

static void log_shutdown(aw_daemon *d, const aw_sinks_stats *sinks)
{
    AW_LOG(d->log, AW_LOG_INFO, "shutdown",
           AW_LOG_I("indexed", d->totals.indexed),
           AW_LOG_I("duplicates", d->totals.duplicates),
           AW_LOG_I("conflicts", d->totals.conflicts),
           AW_LOG_I("rejected", d->totals.rejected),
           AW_LOG_I("trims", d->totals.trims_reported),
           AW_LOG_I("acked", aw_core_totals_get(d->core)->acked),
           AW_LOG_I("refused_by_index",
                    aw_core_totals_get(d->core)->rejected_by_index),
           AW_LOG_I("alerts_emitted", sinks->emitted),
           AW_LOG_I("alert_stream_failed", sinks->stream_failed),
           AW_LOG_I("alert_hook_failed", sinks->hook_failed),
           AW_LOG_I("alert_hook_dropped", sinks->hook_dropped),
           AW_LOG_I("seconds", (uv_now(&d->loop) - d->started_ms) / 1000));
}

int aw_daemon_run(aw_daemon *d, aw_error *err)
{
    const aw_daemon_config *c = d->config;
    aw_redis_conn_config cc = {c->redis_host, c->redis_port, c->redis_db,
                               c->redis_password, REPLY_MARGIN_MS};
    aw_redis_conn_handlers handlers = {on_ready, on_lost, on_conn_closed};
    aw_sinks_config sc = {c->alerts_stdout,
                          c->alert_stream,
                          c->alert_stream_maxlen,
                          c->alert_exec,
                          c->alert_exec_max,
                          on_sinks_idle,
                          d,
                          c->alert_format};
    uint64_t claim_every =
        (uint64_t)(c->claim_idle_ms / 2 > 0 ? c->claim_idle_ms / 2 : 1);
    int rc;

    assert(!d->running);
    d->running = true;
    signal(SIGPIPE, SIG_IGN);
    if ((rc = aw_sinks_new(&d->loop, &sc, d->log, &d->sinks, err)) != AW_OK ||
        (rc = aw_redis_conn_new(&d->loop, &cc, &handlers, d, d->log, &d->conn,
                                err)) != AW_OK) {
        if (d->sinks)
            aw_sinks_close(d->sinks);
        close_handle((uv_handle_t *)&d->stop_async);
        uv_run(&d->loop, UV_RUN_DEFAULT);
        return rc;
    }
    init_timer(d, &d->claim_timer);
    init_timer(d, &d->summary_timer);
    init_timer(d, &d->read_timer);
    init_timer(d, &d->commit_timer);
    init_timer(d, &d->stop_timer);
    init_timer(d, &d->chain_timer);
    init_timer(d, &d->watch_timer);
    init_timer(d, &d->metrics_timer);
    init_timer(d, &d->calls_log_timer);
    init_signal(d, &d->sigterm, SIGTERM);
    init_signal(d, &d->sigint, SIGINT);
    init_signal(d, &d->sighup, SIGHUP);
    uv_timer_start(&d->claim_timer, on_claim_timer, claim_every, claim_every);
    uv_timer_start(&d->summary_timer, on_summary_timer, SUMMARY_INTERVAL_MS,
                   SUMMARY_INTERVAL_MS);
    uv_timer_start(&d->chain_timer, on_chain_timer,
                   (uint64_t)c->chain_interval_ms,
                   (uint64_t)c->chain_interval_ms);
    uv_timer_start(&d->watch_timer, on_watch_timer,
                   (uint64_t)c->enforcer_poll_ms,
                   (uint64_t)c->enforcer_poll_ms);
    d->started_ms = uv_now(&d->loop);
    log_start(d);
    if (d->metrics) {
        publish_metrics(d); /* before the log line a client may wait for */
        AW_LOG(d->log, AW_LOG_INFO, "metrics_listening",
               AW_LOG_S("address", c->metrics_listen),
               AW_LOG_I("port", aw_metrics_port(d->metrics)));
        uv_timer_start(&d->metrics_timer, on_metrics_timer, METRICS_INTERVAL_MS,
                       METRICS_INTERVAL_MS);
    }
    if (d->calls_log)
        uv_timer_start(&d->calls_log_timer, on_calls_log_timer, 0,
                       CALLS_LOG_POLL_MS);
    aw_redis_conn_start(d->conn);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    log_shutdown(d, &d->sink_totals);
    if (aw_core_get_state(d->core) == AW_CORE_BROKEN)
        return aw_error_set(err, AW_ERR_BROKEN, "index %s: %s",
                            c->ingest.db_path, aw_core_broken_reason(d->core));
    return AW_OK;
}

void aw_daemon_free(aw_daemon *d)
{
    if (!d)
        return;
    if (d->loop_ready) {
        if (!d->running)
            close_handle((uv_handle_t *)&d->stop_async);
        uv_run(&d->loop, UV_RUN_DEFAULT);
        uv_loop_close(&d->loop);
    }
    aw_metrics_close(d->metrics);
    aw_calls_log_free(d->calls_log);
    aw_core_free(d->core);
    aw_watch_free(d->watch);
    aw_ingest_decoder_free(d->decoder);
    aw_ingest_close(d->ing);
    aw_log_close(d->log);
    free(d);
}
