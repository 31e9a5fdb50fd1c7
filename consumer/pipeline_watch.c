/* pipeline_watch.c -- the daemon's poll of Caracal's consumer groups, and
 * the judges that turn what it saw into findings (DESIGN §8).
 *
 * Judging. An enforcer group (STS, each Gateway host) has applied a
 * revocation once it was delivered there and is no longer pending
 * (event/'s aw_enforcer_judge, which doctor uses too); what the STS leaves
 * pending by design awaits nothing. Its oldest revocation not applied
 * within the grace is the finding: one alert per (group, revocation),
 * resolved once the group has moved past it. A group
 * created later at `$` never saw older entries as undelivered, so it is
 * judged only on what came after it. The audit ingestor is in trouble when
 * aw_ingest_judge says lagging or stuck on two consecutive polls while the
 * audit stream grows (one slow poll is noise; a quiet stream with an idle
 * ingestor is not a stall), and recovers on the first poll within limits.
 * Ages are measured on Redis' clock (TIME, asked in each poll) against
 * entry-id times, which it stamped; this host's clock stands in only where
 * Redis refuses TIME.
 *
 * Polling. Two pipelined rounds, each command with its own callback and
 * context: first XINFO STREAM and XINFO GROUPS of the three revocation
 * streams and the audit stream (which groups are there, where each is);
 * then per watched group XPENDING (oldest pending), XRANGE COUNT 1 just
 * after its last-delivered id (the oldest undelivered entry) and XINFO
 * CONSUMERS (idle times), and for the STS's group the scan of its pending
 * list past what it declines by design (aw_sts_scan) -- the second round
 * depends on the group names the first one found. The first round also
 * takes XLEN of the dead-letter streams (0 when absent). Read-only: nothing is created, read, claimed or
 * acknowledged in anyone's group. A lost connection abandons the poll; the
 * next tick starts another.
 *
 * Figures. A complete poll also leaves what it saw for /metrics (each
 * watched group's lag, pending count and oldest unapplied age; each
 * dead-letter stream's length), replaced as a whole by the next complete
 * poll, so a page never mixes two polls.
 *
 * Findings live in three fixed sets (filling, ready, carried by a batch)
 * whose roles rotate, so a poll can finish while the previous findings are
 * still in a commit on the worker thread.
 */
#include "consumer/pipeline_watch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "consumer/reply.h"

#define NSTREAMS      4 /* three revocation streams, then the audit stream */
#define SESSIONS_SLOT 0 /* caracal.sessions.revoke, where the STS reads */
#define AUDIT_SLOT    3
#define MAX_GROUPS    AW_WATCH_GROUPS_MAX
#define NAME_MAX_LEN  AW_WATCH_NAME_MAX_LEN
#define NDEAD         AW_WATCH_DEAD_LETTER_STREAMS
#define DETAIL_LEN    512
#define CONSUMERS_LEN 256

/* ---- The judges ------------------------------------------------------------ */

static void seconds(int64_t ms, char *buf, size_t size)
{
    if (ms == AW_FIGURE_UNKNOWN)
        snprintf(buf, size, "unknown");
    else
        snprintf(buf, size, "%.1f s", (double)ms / 1000.0);
}

void aw_watch_judge_enforcer(const aw_watch_enforcer *e, int64_t now_ms,
                             int64_t grace_ms, aw_pipeline_finding *out,
                             char *detail, size_t size)
{
    aw_enforcer_judgment j;
    char age[32];
    aw_enforcer_judge(&e->stream_snap, &e->snap, now_ms, grace_ms, &j);
    *out = (aw_pipeline_finding){
        .kind = AW_FINDING_NOT_CONSUMED,
        .stream = e->stream,
        .group = e->group,
        .trouble = !aw_stream_pos_is_none(j.oldest_unapplied) &&
                   j.unapplied_age_ms > grace_ms,
        .entry = j.oldest_unapplied,
        .first_retained = e->stream_snap.first_entry,
        .left_behind = aw_enforcer_left_behind(e->group, &j),
        .detail = detail,
    };
    seconds(j.unapplied_age_ms, age, sizeof age);
    snprintf(detail, size,
             "%s for %s (grace %.1f s), %lld pending, consumers: %s",
             j.state == AW_ENFORCER_OK && out->trouble
                 ? "unapplied"
                 : aw_enforcer_state_name(j.state),
             age, (double)grace_ms / 1000.0, (long long)e->snap.pending,
             e->consumers && *e->consumers ? e->consumers : "none");
}

bool aw_watch_judge_ingest(aw_watch_ingest_memory *m, const char *stream,
                           const aw_group_snapshot *group,
                           aw_stream_id last_generated, int64_t now_ms,
                           const aw_ingest_limits *limits,
                           aw_pipeline_finding *out, char *detail, size_t size)
{
    aw_ingest_judgment j;
    char unread[32], pending[32];
    bool grew =
        m->seen && aw_stream_id_cmp(last_generated, m->last_generated) > 0;
    aw_ingest_judge(group, now_ms, limits, &j);
    bool over = j.state == AW_INGEST_LAGGING || j.state == AW_INGEST_STUCK;
    if (!over)
        m->over_polls = 0;
    else if (grew)
        m->over_polls++;
    m->seen = true;
    m->last_generated = last_generated;

    *out = (aw_pipeline_finding){
        .kind = AW_FINDING_INGEST_STALLED,
        .stream = stream,
        .group = AW_INGEST_GROUP,
        .trouble = m->over_polls >= 2,
        .detail = detail,
    };
    seconds(j.oldest_unread_age_ms, unread, sizeof unread);
    seconds(j.oldest_pending_age_ms, pending, sizeof pending);
    snprintf(
        detail, size,
        "%s: lag %lld (limit %lld), oldest unread %s, oldest pending %s (limit %.1f s)",
        aw_ingest_state_name(j.state), (long long)j.lag,
        (long long)limits->max_lag, unread, pending,
        (double)limits->max_age_ms / 1000.0);
    if (out->trouble) {
        /* a stall is named after the oldest entry not applied when it
         * began, so a later stall is a new alert */
        if (!m->raised) {
            m->episode = group->first_undelivered;
            if (group->pending > 0 &&
                (aw_stream_pos_is_none(m->episode) ||
                 aw_stream_id_cmp(group->oldest_pending, m->episode) < 0))
                m->episode = group->oldest_pending;
        }
        out->entry = m->episode;
        m->raised = true;
        m->recovering = false;
        return true;
    }
    if ((m->raised || m->recovering) && !over) {
        out->entry = m->episode;
        m->raised = false;
        m->recovering = true;
        return true;
    }
    return false;
}

void aw_watch_ingest_recovered(aw_watch_ingest_memory *m)
{
    m->recovering = false;
}

/* ---- The poll -------------------------------------------------------------- */

typedef enum watch_reply {
    W_INFO,
    W_GROUPS,
    W_PENDING,
    W_FIRST,
    W_CONSUMERS,
    W_STS_SCAN,
    W_DEAD_LETTERS,
    W_TIME
} watch_reply;

typedef struct watch_ctx {
    aw_watch *w;
    watch_reply kind;
    size_t index; /* the stream or dead-letter stream (round 1), the group */
} watch_ctx;

typedef struct watched_group {
    size_t stream;
    char name[NAME_MAX_LEN];
    aw_group_snapshot snap;
    char consumers[CONSUMERS_LEN];
    bool sts; /* the STS's group: its pending list is scanned */
} watched_group;

/* Per enforcer group one finding, per revocation stream one of the groups
 * present, and one of the ingestor. */
#define MAX_FINDINGS (MAX_GROUPS + 3 + 1)

typedef struct finding_set {
    aw_pipeline_finding f[MAX_FINDINGS];
    char group[MAX_GROUPS + 1][NAME_MAX_LEN];
    char detail[MAX_GROUPS + 1][DETAIL_LEN];
    const char *present[3][MAX_GROUPS]; /* into group */
    size_t n;
} finding_set;

struct aw_watch {
    aw_watch_config config;
    const char *streams[NSTREAMS];

    int round; /* 0: no poll in flight */
    size_t outstanding;
    bool failed;
    aw_stream_snapshot snaps[NSTREAMS];
    aw_stream_id last_generated[NSTREAMS];
    /* XINFO GROUPS named every group of the stream (none when it is gone) */
    bool groups_known[NSTREAMS];
    int64_t dead_letters[NDEAD];
    int64_t own_lag[NSTREAMS];
    watched_group groups[MAX_GROUPS];
    size_t ngroups;
    bool ingestor_found;
    size_t ingestor; /* its index in groups */
    watch_ctx ctx[2 * NSTREAMS + NDEAD + 3 * MAX_GROUPS + 2];
    /* Redis' clock at the poll (TIME), which stamped the entry ids the
     * ages are of; 0: not known, this host's clock stands in. */
    int64_t redis_now_ms;
    size_t nctx;
    char first_text[MAX_GROUPS][AW_STREAM_ID_TEXT_MAX];
    /* The STS's pending list up to here was found declined, as long as its
     * group's last-delivered-id never moves back (aw_sts_scan). */
    aw_stream_pos sts_declined_through;
    aw_stream_pos sts_last_delivered;
    aw_sts_scan_command sts_scan;

    aw_watch_ingest_memory ingest;
    finding_set sets[3];
    int filling, ready, carried;
    bool has_ready, has_carried;

    aw_watch_figures figures; /* of the newest complete poll */
};

aw_watch *aw_watch_new(const aw_watch_config *config)
{
    aw_watch *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->config = *config;
    for (int i = 0; i < 3; i++)
        w->streams[i] = config->revocation_streams[i];
    w->streams[AUDIT_SLOT] = config->audit_stream;
    memcpy(w->figures.dead_letter_streams, config->dead_letter_streams,
           sizeof w->figures.dead_letter_streams);
    memcpy(w->figures.own_streams, w->streams, sizeof w->figures.own_streams);
    w->filling = 0;
    w->ready = 1;
    w->carried = 2;
    return w;
}

void aw_watch_free(aw_watch *w)
{
    free(w);
}

bool aw_watch_in_flight(const aw_watch *w)
{
    return w->round != 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool integer_of(const redisReply *r, int64_t *out)
{
    if (!r || r->type != REDIS_REPLY_INTEGER)
        return false;
    *out = r->integer;
    return true;
}

static void watch_send(aw_watch *w, aw_redis_conn *conn, watch_reply kind,
                       size_t index, int argc, const char **argv);

/* Round 1: a stream's XINFO STREAM. */
static void take_info(aw_watch *w, size_t s, const redisReply *reply)
{
    aw_stream_snapshot *snap = &w->snaps[s];
    const redisReply *first, *last;
    memset(snap, 0, sizeof *snap);
    if (reply->type == REDIS_REPLY_ERROR)
        return; /* no such stream: nothing to judge */
    snap->exists = reply->type == REDIS_REPLY_ARRAY;
    integer_of(aw_redis_map_get(reply, "length"), &snap->length);
    first = aw_redis_map_get(reply, "first-entry");
    last = aw_redis_map_get(reply, "last-entry");
    if (first && first->type == REDIS_REPLY_ARRAY && first->elements == 2)
        aw_reply_stream_id(first->element[0], &snap->first_entry);
    if (last && last->type == REDIS_REPLY_ARRAY && last->elements == 2)
        aw_reply_stream_id(last->element[0], &snap->last_entry);
    snap->max_deleted_known = aw_reply_stream_id(
        aw_redis_map_get(reply, "max-deleted-entry-id"), &snap->max_deleted);
    aw_reply_stream_id(aw_redis_map_get(reply, "last-generated-id"),
                       &w->last_generated[s]);
}

/* Round 1: a stream's XINFO GROUPS; the groups worth a closer look. */
static void take_groups(aw_watch *w, size_t s, const redisReply *reply)
{
    if (reply->type != REDIS_REPLY_ARRAY) {
        w->groups_known[s] = reply->type == REDIS_REPLY_ERROR &&
                             strstr(reply->str, "no such key") != NULL;
        return;
    }
    w->groups_known[s] = w->ngroups + reply->elements <= MAX_GROUPS;
    for (size_t i = 0; i < reply->elements && w->ngroups < MAX_GROUPS; i++) {
        const redisReply *name = aw_redis_map_get(reply->element[i], "name");
        if (!name || name->type != REDIS_REPLY_STRING ||
            name->len >= NAME_MAX_LEN)
            continue;
        if (w->config.own_group &&
            strcmp(name->str, w->config.own_group) == 0) {
            if (!integer_of(aw_redis_map_get(reply->element[i], "lag"),
                            &w->own_lag[s]))
                w->own_lag[s] = AW_FIGURE_UNKNOWN;
            continue;
        }
        bool ingestor =
            s == AUDIT_SLOT && strcmp(name->str, AW_INGEST_GROUP) == 0;
        if (s == AUDIT_SLOT ? !ingestor
                            : !aw_enforcer_group_matches(
                                  w->config.enforcer_groups,
                                  w->config.nenforcer_groups, name->str))
            continue;
        watched_group *g = &w->groups[w->ngroups];
        memset(g, 0, sizeof *g);
        g->stream = s;
        memcpy(g->name, name->str, name->len + 1);
        g->sts =
            s == SESSIONS_SLOT && strcmp(g->name, AW_STS_REVOCATION_GROUP) == 0;
        aw_reply_stream_id(
            aw_redis_map_get(reply->element[i], "last-delivered-id"),
            &g->snap.last_delivered);
        if (!integer_of(aw_redis_map_get(reply->element[i], "lag"),
                        &g->snap.lag))
            g->snap.lag = AW_FIGURE_UNKNOWN;
        integer_of(aw_redis_map_get(reply->element[i], "pending"),
                   &g->snap.pending);
        int64_t consumers = 0;
        integer_of(aw_redis_map_get(reply->element[i], "consumers"),
                   &consumers);
        g->snap.consumers = (size_t)consumers;
        g->snap.oldest_pending_idle_ms = AW_FIGURE_UNKNOWN;
        g->snap.freshest_consumer_idle_ms = AW_FIGURE_UNKNOWN;
        if (ingestor) {
            w->ingestor_found = true;
            w->ingestor = w->ngroups;
        }
        w->ngroups++;
    }
}

/* Round 2: XPENDING summary [count, smallest, greatest, consumers]. */
static void take_pending(watched_group *g, const redisReply *reply)
{
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 2 &&
        reply->element[0]->type == REDIS_REPLY_INTEGER) {
        g->snap.pending = reply->element[0]->integer;
        if (g->snap.pending > 0)
            aw_reply_stream_id(reply->element[1], &g->snap.oldest_pending);
    }
}

/* Round 2, the STS's group: its oldest pending entry is the oldest it
 * applies; the others await nothing. A scan that has not reached one yet
 * (a long list of declined entries, AW_STS_SCAN_ENTRIES per poll) judges
 * none awaited this poll. A failed scan (scripting refused) leaves the
 * summary's figures, judged as before. */
static void take_sts_scan(aw_watch *w, watched_group *g,
                          const redisReply *reply)
{
    aw_sts_scan scan;
    aw_error err = {0};
    if (aw_sts_scan_parse(reply, &scan, &err) != AW_OK)
        return;
    if (!aw_stream_pos_is_none(scan.declined_through))
        w->sts_declined_through = scan.declined_through;
    if (!scan.found) {
        g->snap.declined = g->snap.pending;
        return;
    }
    g->snap.oldest_pending = scan.oldest;
    g->snap.oldest_pending_idle_ms = scan.oldest_idle_ms;
    g->snap.declined =
        scan.declined < g->snap.pending ? scan.declined : g->snap.pending - 1;
    if (g->snap.declined < 0)
        g->snap.declined = 0;
}

/* Round 2: XRANGE after last-delivered, COUNT 1. */
static void take_first(watched_group *g, const redisReply *reply)
{
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
        reply->element[0]->type == REDIS_REPLY_ARRAY &&
        reply->element[0]->elements == 2)
        aw_reply_stream_id(reply->element[0]->element[0],
                           &g->snap.first_undelivered);
}

/* Round 2: XINFO CONSUMERS: names and idle times, and the least idle. */
static void take_consumers(watched_group *g, const redisReply *reply)
{
    size_t len = 0;
    if (reply->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *name = aw_redis_map_get(reply->element[i], "name");
        int64_t idle;
        if (!name || name->type != REDIS_REPLY_STRING ||
            !integer_of(aw_redis_map_get(reply->element[i], "idle"), &idle))
            continue;
        if (g->snap.freshest_consumer_idle_ms == AW_FIGURE_UNKNOWN ||
            idle < g->snap.freshest_consumer_idle_ms)
            g->snap.freshest_consumer_idle_ms = idle;
        if (len < sizeof g->consumers)
            len +=
                (size_t)snprintf(g->consumers + len, sizeof g->consumers - len,
                                 "%s%.64s idle %.1f s", len ? ", " : "",
                                 name->str, (double)idle / 1000.0);
    }
}

/* Round 1: a dead-letter stream's XLEN. */
static void take_dead_letters(aw_watch *w, size_t d, const redisReply *reply)
{
    if (!integer_of(reply, &w->dead_letters[d]))
        w->dead_letters[d] = AW_FIGURE_UNKNOWN;
}

/* Every reply is in: what it saw, for /metrics. */
static void record_figures(aw_watch *w, int64_t now)
{
    aw_watch_figures *f = &w->figures;
    f->ngroups = 0;
    for (size_t i = 0; i < w->ngroups; i++) {
        const watched_group *g = &w->groups[i];
        aw_watch_group_figures *out = &f->groups[f->ngroups++];
        aw_enforcer_judgment j;
        /* the age of the oldest unapplied entry, whatever the grace */
        aw_enforcer_judge(&w->snaps[g->stream], &g->snap, now, 0, &j);
        out->stream = w->streams[g->stream];
        memcpy(out->group, g->name, sizeof out->group);
        out->lag = g->snap.lag;
        out->pending = g->snap.pending;
        out->oldest_unapplied_ms = j.unapplied_age_ms;
    }
    memcpy(f->dead_letters, w->dead_letters, sizeof f->dead_letters);
    memcpy(f->own_lag, w->own_lag, sizeof f->own_lag);
    f->polled_at_ms = now;
    f->polled = true;
}

/* Every reply is in: judge into the filling set, which becomes ready. */
static void judge_all(aw_watch *w)
{
    finding_set *set = &w->sets[w->filling];
    int64_t now = w->redis_now_ms ? w->redis_now_ms : now_ms();
    set->n = 0;
    for (size_t i = 0; i < w->ngroups; i++) {
        watched_group *g = &w->groups[i];
        if (g->stream == AUDIT_SLOT)
            continue;
        memcpy(set->group[set->n], g->name, sizeof g->name);
        aw_watch_enforcer e = {w->streams[g->stream], set->group[set->n],
                               w->snaps[g->stream], g->snap, g->consumers};
        aw_watch_judge_enforcer(&e, now, w->config.grace_ms, &set->f[set->n],
                                set->detail[set->n], DETAIL_LEN);
        set->n++;
    }
    /* which enforcer groups each stream has, so alerts about a group since
     * deleted say so (never judged from a partial list) */
    size_t judged = set->n;
    for (size_t s = 0; s < AUDIT_SLOT; s++) {
        if (!w->groups_known[s])
            continue;
        size_t npresent = 0;
        for (size_t i = 0; i < judged; i++)
            if (set->f[i].stream == w->streams[s])
                set->present[s][npresent++] = set->group[i];
        set->f[set->n++] = (aw_pipeline_finding){
            .kind = AW_FINDING_ENFORCERS_PRESENT,
            .stream = w->streams[s],
            .present = set->present[s],
            .npresent = npresent,
        };
    }
    if (aw_watch_judge_ingest(
            &w->ingest, w->streams[AUDIT_SLOT],
            w->ingestor_found ? &w->groups[w->ingestor].snap : NULL,
            w->last_generated[AUDIT_SLOT], now, &w->config.ingest,
            &set->f[set->n], set->detail[set->n], DETAIL_LEN))
        set->n++;
    int t = w->ready;
    w->ready = w->filling;
    w->filling = t;
    w->has_ready = true;
}

static void on_watch_reply(aw_redis_conn *conn, redisReply *reply,
                           void *privdata);

/* The scan goes on from where the last one found declined entries, unless
 * the group was recreated or moved back (its last-delivered-id went back):
 * entries before that point may be pending again. */
static void send_sts_scan(aw_watch *w, aw_redis_conn *conn, size_t i)
{
    const watched_group *g = &w->groups[i];
    if (aw_stream_id_cmp(g->snap.last_delivered, w->sts_last_delivered) < 0)
        w->sts_declined_through = (aw_stream_pos){0};
    w->sts_last_delivered = g->snap.last_delivered;
    aw_sts_scan_command_init(&w->sts_scan, w->streams[g->stream],
                             w->sts_declined_through);
    watch_send(w, conn, W_STS_SCAN, i, AW_STS_SCAN_ARGC, w->sts_scan.argv);
}

static void start_details(aw_watch *w, aw_redis_conn *conn)
{
    w->round = 2;
    for (size_t i = 0; i < w->ngroups; i++) {
        watched_group *g = &w->groups[i];
        const char *stream = w->streams[g->stream];
        snprintf(w->first_text[i], sizeof w->first_text[i], "%llu-%llu",
                 (unsigned long long)g->snap.last_delivered.ms,
                 (unsigned long long)g->snap.last_delivered.seq + 1);
        const char *pending[] = {"XPENDING", stream, g->name};
        const char *first[] = {"XRANGE", stream,  w->first_text[i],
                               "+",      "COUNT", "1"};
        const char *consumers[] = {"XINFO", "CONSUMERS", stream, g->name};
        watch_send(w, conn, W_PENDING, i, 3, pending);
        watch_send(w, conn, W_FIRST, i, 6, first);
        watch_send(w, conn, W_CONSUMERS, i, 4, consumers);
        if (g->sts && g->snap.pending > 0)
            send_sts_scan(w, conn, i);
    }
}

static void round_done(aw_watch *w, aw_redis_conn *conn)
{
    if (!w->failed && w->round == 1 && w->ngroups > 0) {
        start_details(w, conn);
        if (w->outstanding > 0)
            return;
    }
    if (!w->failed) {
        judge_all(w);
        record_figures(w, now_ms());
    }
    w->round = 0;
}

static void on_watch_reply(aw_redis_conn *conn, redisReply *reply,
                           void *privdata)
{
    watch_ctx *x = privdata;
    aw_watch *w = x->w;
    if (!reply) {
        w->failed = true;
    } else {
        switch (x->kind) {
        case W_INFO: take_info(w, x->index, reply); break;
        case W_GROUPS: take_groups(w, x->index, reply); break;
        case W_PENDING: take_pending(&w->groups[x->index], reply); break;
        case W_FIRST: take_first(&w->groups[x->index], reply); break;
        case W_CONSUMERS: take_consumers(&w->groups[x->index], reply); break;
        case W_STS_SCAN: take_sts_scan(w, &w->groups[x->index], reply); break;
        case W_DEAD_LETTERS: take_dead_letters(w, x->index, reply); break;
        case W_TIME: {
            int64_t ns;
            if (aw_reply_time_ns(reply, &ns))
                w->redis_now_ms = ns / 1000000;
            break;
        }
        }
    }
    if (--w->outstanding == 0)
        round_done(w, conn);
}

static void watch_send(aw_watch *w, aw_redis_conn *conn, watch_reply kind,
                       size_t index, int argc, const char **argv)
{
    watch_ctx *x = &w->ctx[w->nctx++];
    *x = (watch_ctx){w, kind, index};
    if (aw_redis_conn_send(conn, 0, on_watch_reply, x, argc, argv, NULL) ==
        AW_OK)
        w->outstanding++;
    else
        w->failed = true;
}

void aw_watch_poll(aw_watch *w, aw_redis_conn *conn)
{
    if (w->round != 0 || !conn || !aw_redis_conn_is_ready(conn))
        return;
    w->round = 1;
    w->failed = false;
    w->ngroups = 0;
    w->nctx = 0;
    w->ingestor_found = false;
    w->redis_now_ms = 0;
    memset(w->snaps, 0, sizeof w->snaps);
    memset(w->last_generated, 0, sizeof w->last_generated);
    memset(w->groups_known, 0, sizeof w->groups_known);
    for (size_t s = 0; s < NSTREAMS; s++)
        w->own_lag[s] = AW_FIGURE_UNKNOWN;
    for (size_t s = 0; s < NSTREAMS; s++) {
        const char *info[] = {"XINFO", "STREAM", w->streams[s]};
        const char *groups[] = {"XINFO", "GROUPS", w->streams[s]};
        watch_send(w, conn, W_INFO, s, 3, info);
        watch_send(w, conn, W_GROUPS, s, 3, groups);
    }
    for (size_t d = 0; d < NDEAD; d++) {
        const char *len[] = {"XLEN", w->config.dead_letter_streams[d]};
        watch_send(w, conn, W_DEAD_LETTERS, d, 2, len);
    }
    const char *time_argv[] = {"TIME"};
    watch_send(w, conn, W_TIME, 0, 1, time_argv);
    if (w->outstanding == 0)
        w->round = 0;
}

size_t aw_watch_take(aw_watch *w, const aw_pipeline_finding **out)
{
    *out = NULL;
    if (!w->has_ready || w->has_carried)
        return 0;
    int t = w->carried;
    w->carried = w->ready;
    w->ready = t;
    w->has_ready = false;
    w->has_carried = true;
    *out = w->sets[w->carried].f;
    return w->sets[w->carried].n;
}

void aw_watch_settle(aw_watch *w, bool committed)
{
    if (!w->has_carried)
        return;
    w->has_carried = false;
    const finding_set *carried = &w->sets[w->carried];
    for (size_t i = 0; committed && i < carried->n; i++)
        if (carried->f[i].kind == AW_FINDING_INGEST_STALLED &&
            !carried->f[i].trouble)
            aw_watch_ingest_recovered(&w->ingest);
    if (!committed && !w->has_ready) {
        int t = w->ready;
        w->ready = w->carried;
        w->carried = t;
        w->has_ready = true;
    }
}

const aw_watch_figures *aw_watch_figures_get(const aw_watch *w)
{
    return &w->figures;
}
