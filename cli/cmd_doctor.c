/* cmd_doctor.c -- `auditwatch doctor`: is Caracal's own pipeline healthy, as
 * Redis sees it (DESIGN §8)?
 *
 * Caracal's troubleshooting guide sends an operator to "Redis stream health
 * and Audit readiness" when a call has no audit event, and to "whether the
 * revocation consumers run" when access continues after revocation. doctor
 * answers both in one picture: per Caracal stream (the audit stream, the
 * three revocation streams, the audit DLQ and each revocation stream's
 * `.dead`) its length and first/last entry age; per consumer group its lag,
 * pending entries, oldest pending age, consumers and how far MAXLEN trimming
 * is from entries it still needs; each dead-letter stream's depth and oldest
 * entry (decoded, with Caracal's reason); each revocation enforcer's oldest
 * unapplied revocation; the audit ingestor against thresholds; and
 * auditwatch's own index and checkpoints. One verdict per section.
 *
 * Strictly read-only toward Caracal: only TIME, XINFO STREAM / GROUPS /
 * CONSUMERS, XPENDING, XRANGE and the read-only script of aw_sts_scan are
 * sent; no group is created, joined, acknowledged in or trimmed. Two
 * pipelined rounds: streams and their groups, then every group's oldest
 * pending entry, consumers and first undelivered entry; then the STS's
 * pending list and each revocation `.dead` are walked past what the STS
 * declines by design (event.h, AW_STS_REVOCATION_GROUP). Ages are taken on
 * Redis' clock (TIME), the clock that stamped the entry ids. Fields an older Redis does not report (lag,
 * entries-read, max-deleted-entry-id before 7.0) print as "unknown" and
 * judgments that need them say so.
 *
 * The judging itself is event/'s pure aw_enforcer_judge, aw_ingest_judge
 * and aw_group_trim_headroom, and dead letters are read with
 * aw_dead_letter_decode_*, so the daemon's pipeline alerts judge alike.
 *
 * Exit: 0 when every verdict is ok, 1 when something needs attention (each
 * on stderr), 3 when Redis or the index cannot be read.
 */
#include "cli/cli.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: auditwatch doctor [--redis URL] [--redis-password-file FILE]\n"
    "                         [--stream ROLE=NAME] [--maxlen N]\n"
    "                         [--enforcer-group PATTERN]... [--grace-enforcer SECONDS]\n"
    "                         [--max-ingest-lag N] [--max-ingest-age SECONDS]\n"
    "                         [--timeout-ms MS] [--format F] [--db PATH]\n\n"
    "Checks Caracal's pipeline from Redis, read-only (it never creates, joins,\n"
    "acknowledges in or trims a group or stream): each Caracal stream's length\n"
    "and entry ages; each consumer group's lag, pending entries, consumers and\n"
    "headroom before MAXLEN trimming reaches what it has not read; the audit\n"
    "DLQ and each revocation stream's .dead; every revocation enforcer's oldest\n"
    "unapplied revocation; Caracal's audit-ingestor; and auditwatch's own index\n"
    "and checkpoints. Rows are (section, stream, group, item, value, detail);\n"
    "section \"verdict\" holds one line per section: ok, attention or unknown.\n\n"
    "  --redis URL                 redis://host:port[/db] or host:port (else\n"
    "                              $AUDITWATCH_REDIS)\n"
    "  --redis-password-file FILE  password for AUTH (else $REDIS_PASSWORD_FILE)\n"
    "  --stream ROLE=NAME          stream of a role (audit, sessions, lifecycle,\n"
    "                              delegations, audit_dlq, sessions_dead, ...);\n"
    "                              unless given, the DLQ is <audit>.dlq and each\n"
    "                              revocation stream's dead letters <name>.dead\n"
    "  --maxlen N                  the producers' MAXLEN ~ N (default 100000)\n"
    "  --enforcer-group PATTERN    a revocation enforcer's group, a shell glob;\n"
    "                              repeatable (default sts-revocation* and\n"
    "                              gateway-revocation*)\n"
    "  --grace-enforcer SECONDS    an enforcer must apply a revocation within\n"
    "                              this (default 30)\n"
    "  --max-ingest-lag N          audit-ingestor may lag this many entries\n"
    "                              (default 1000)\n"
    "  --max-ingest-age SECONDS    and leave an entry unread or pending this\n"
    "                              long (default 60)\n"
    "  --timeout-ms MS             Redis connect and command timeout (default 2000)\n"
    "  -f, --format F              table (default), json or csv\n"
    "  --db PATH                   the index (default $AUDITWATCH_DB or ./auditwatch.db)\n\n"
    "Exit status: 0 all healthy, 1 something needs attention (on stderr),\n"
    "2 bad usage, 3 Redis or the index cannot be read.\n";

enum {
    OPT_REDIS = AW_CLI_OPT_BASE,
    OPT_PASSWORD_FILE,
    OPT_STREAM,
    OPT_MAXLEN,
    OPT_ENFORCER_GROUP,
    OPT_GRACE_ENFORCER,
    OPT_MAX_INGEST_LAG,
    OPT_MAX_INGEST_AGE,
    OPT_TIMEOUT,
};

static const struct option options[] = {
    {"redis", required_argument, NULL, OPT_REDIS},
    {"redis-password-file", required_argument, NULL, OPT_PASSWORD_FILE},
    {"stream", required_argument, NULL, OPT_STREAM},
    {"maxlen", required_argument, NULL, OPT_MAXLEN},
    {"enforcer-group", required_argument, NULL, OPT_ENFORCER_GROUP},
    {"grace-enforcer", required_argument, NULL, OPT_GRACE_ENFORCER},
    {"max-ingest-lag", required_argument, NULL, OPT_MAX_INGEST_LAG},
    {"max-ingest-age", required_argument, NULL, OPT_MAX_INGEST_AGE},
    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
    {0},
};

static const aw_cli_command command = {
    .name = "doctor",
    .usage = usage,
    .common = AW_CLI_WANT_DB | AW_CLI_WANT_FORMAT,
    .options = options,
};

#define INGEST_GROUP AW_INGEST_GROUP

typedef struct doctor_args {
    const char *redis_url;
    const char *password_file;
    const char *streams[AW_ROLE_COUNT]; /* as given */
    aw_stream_names names;
    const char *patterns[AW_CLI_MAX_ENFORCER_GROUPS];
    size_t npatterns;
    int64_t maxlen;
    int64_t grace_ms;
    aw_ingest_limits ingest;
    int64_t timeout_ms;
} doctor_args;

/* A duration (bare: seconds) into ms. */
static int seconds_option(const char *name, const char *arg, int64_t *ms)
{
    int64_t ns;
    int rc = aw_cli_duration_option(&command, name, arg, AW_CLI_SECONDS,
                                    AW_CLI_GRACE_MAX_NS, &ns);
    if (rc == 0)
        *ms = ns / AW_CLI_MILLISECONDS;
    return rc;
}

static int on_option(int opt, const char *arg, void *ud)
{
    doctor_args *a = ud;
    switch (opt) {
    case OPT_REDIS:
        a->redis_url = arg;
        return aw_cli_redis_option(&command, "--redis", arg);
    case OPT_PASSWORD_FILE: a->password_file = arg; return 0;
    case OPT_STREAM: return aw_cli_stream_option(&command, arg, a->streams);
    case OPT_MAXLEN:
        if (aw_cli_parse_int(arg, 1, INT64_MAX, &a->maxlen) != AW_OK)
            return aw_cli_usage_error(
                &command, "--maxlen: expected a number of entries, got \"%s\"",
                arg);
        return 0;
    case OPT_ENFORCER_GROUP:
        return aw_cli_enforcer_group_option(&command, arg, a->patterns,
                                            &a->npatterns);
    case OPT_GRACE_ENFORCER:
        return seconds_option("--grace-enforcer", arg, &a->grace_ms);
    case OPT_MAX_INGEST_LAG:
        if (aw_cli_parse_int(arg, 0, INT64_MAX, &a->ingest.max_lag) != AW_OK)
            return aw_cli_usage_error(
                &command,
                "--max-ingest-lag: expected a number of entries, got \"%s\"",
                arg);
        return 0;
    case OPT_MAX_INGEST_AGE:
        return seconds_option("--max-ingest-age", arg, &a->ingest.max_age_ms);
    case OPT_TIMEOUT:
        if (aw_cli_parse_int(arg, 1, 600000, &a->timeout_ms) != AW_OK)
            return aw_cli_usage_error(
                &command, "--timeout-ms: expected 1..600000, got \"%s\"", arg);
        return 0;
    }
    return AW_EXIT_USAGE;
}

/* ---- What was read from Redis ---------------------------------------------- */

typedef enum stream_kind {
    KIND_AUDIT,           /* caracal.audit.events */
    KIND_REVOCATION,      /* the three revocation streams */
    KIND_AUDIT_DLQ,       /* <audit>.dlq */
    KIND_REVOCATION_DEAD, /* <revocation stream>.dead */
} stream_kind;

typedef struct group_view {
    const char *name;           /* borrowed from the XINFO GROUPS reply */
    const char *last_delivered; /* same */
    int64_t entries_read;       /* or unknown */
    aw_group_snapshot snap;
    redisReply *pending;     /* XPENDING - + 1, owned */
    redisReply *consumers;   /* XINFO CONSUMERS, owned */
    redisReply *undelivered; /* XRANGE (last-delivered + COUNT 1, owned */
    /* The STS's group: its pending list was scanned (aw_sts_scan), or why
     * it could not be and it is judged on its oldest pending entry. */
    bool sts_scanned;
    char sts_scan_error[AW_ERRMSG_MAX];
} group_view;

typedef struct stream_view {
    char name[AW_MAX_ID_BYTES];
    stream_kind kind;
    aw_stream_role role; /* its own, or the origin's for dead letters */
    const char *origin;  /* dead letters: the stream they came from */
    aw_stream_snapshot snap;
    redisReply *info;         /* XINFO STREAM, owned (an error: absent) */
    redisReply *groups_reply; /* XINFO GROUPS, owned */
    group_view *groups;
    size_t ngroups;
    /* A revocation stream's `.dead`: its entries were read, and those the
     * STS dead-letters by design (aw_sts_declined) counted; the oldest
     * other one is `attention`, in the page `attention_page` (owned). */
    bool dead_scanned;
    int64_t declined;
    redisReply *attention_page;
    const redisReply *attention;
} stream_view;

#define NSTREAMS 8

typedef struct doctor {
    const doctor_args *args;
    redisContext *redis;
    int64_t now_ms; /* Redis' clock */
    stream_view streams[NSTREAMS];
    aw_cli_out *out;
    int out_rc;
    bool redis_read;   /* the views hold every stream's groups */
    bool attention;    /* some verdict is not ok */
    bool queue_failed; /* a command of the round was not queued */
} doctor;

/* ---- Output ------------------------------------------------------------------ */

static const char *const columns[] = {"section", "stream", "group",
                                      "item",    "value",  "detail"};

static void row(doctor *d, const char *section, const char *stream,
                const char *group, const char *item, aw_cli_cell value,
                const char *detail)
{
    aw_cli_cell cells[6] = {aw_cli_str(section),
                            aw_cli_str(stream),
                            aw_cli_str(group),
                            aw_cli_str(item),
                            value,
                            aw_cli_str(detail)};
    if (d->out_rc == AW_OK)
        d->out_rc = aw_cli_out_row(d->out, cells);
}

/* A figure that may be unknown: the word "unknown" rather than a number. */
static aw_cli_cell figure(int64_t v)
{
    return v == AW_FIGURE_UNKNOWN ? aw_cli_str("unknown") : aw_cli_int(v);
}

static void pos_text(aw_stream_pos p, char *buf, size_t size)
{
    snprintf(buf, size, "%" PRIu64 "-%" PRIu64, p.ms, p.seq);
}

static aw_cli_cell pos_cell(aw_stream_pos p, char *buf, size_t size)
{
    if (aw_stream_pos_is_none(p))
        return aw_cli_str(NULL);
    pos_text(p, buf, size);
    return aw_cli_str(buf);
}

/* One section's verdict: ok when detail is empty, else attention (or
 * unknown) with the reasons, which also go to stderr. */
typedef struct verdict {
    char detail[1024];
    bool attention;
    bool unknown;
} verdict;

static void note(verdict *v, bool attention, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void note(verdict *v, bool attention, const char *fmt, ...)
{
    size_t len = strlen(v->detail);
    va_list ap;
    if (len + 4 >= sizeof v->detail)
        return;
    if (len) {
        memcpy(v->detail + len, "; ", 3);
        len += 2;
    }
    va_start(ap, fmt);
    vsnprintf(v->detail + len, sizeof v->detail - len, fmt, ap);
    va_end(ap);
    if (attention)
        v->attention = true;
    else
        v->unknown = true;
}

static void finish_verdict(doctor *d, const char *section, const verdict *v,
                           const char *ok)
{
    const char *word = v->attention ? "attention"
                       : v->unknown ? "unknown"
                                    : "ok";
    row(d, "verdict", NULL, NULL, section, aw_cli_str(word),
        v->detail[0] ? v->detail : ok);
    if (v->attention) {
        d->attention = true;
        fprintf(stderr, "auditwatch doctor: %s: %s\n", section, v->detail);
    }
}

/* ---- Reading replies ------------------------------------------------------------ */

static bool reply_is(const redisReply *r, int type)
{
    return r && r->type == type;
}

static int64_t int_field(const redisReply *map, const char *key)
{
    const redisReply *v = aw_redis_map_get(map, key);
    if (reply_is(v, REDIS_REPLY_INTEGER))
        return v->integer;
    /* lag / entries-read are nil when Redis cannot compute them */
    return AW_FIGURE_UNKNOWN;
}

static const char *str_field(const redisReply *map, const char *key)
{
    const redisReply *v = aw_redis_map_get(map, key);
    return reply_is(v, REDIS_REPLY_STRING) || reply_is(v, REDIS_REPLY_STATUS)
               ? v->str
               : NULL;
}

static aw_stream_pos parse_pos(const char *id)
{
    aw_stream_pos p = {0, 0};
    if (id && aw_stream_id_parse(id, strlen(id), &p.ms, &p.seq) != AW_OK)
        p = (aw_stream_pos){0, 0};
    return p;
}

/* The id of an entry reply [id, [field, value, ...]]. */
static const char *entry_id(const redisReply *entry)
{
    if (!reply_is(entry, REDIS_REPLY_ARRAY) || entry->elements != 2 ||
        !reply_is(entry->element[0], REDIS_REPLY_STRING))
        return NULL;
    return entry->element[0]->str;
}

static int read_reply(doctor *d, redisReply **out, aw_error *err)
{
    void *reply = NULL;
    if (redisGetReply(d->redis, &reply) != REDIS_OK || !reply)
        return aw_error_set(err, AW_ERR_IO, "Redis: %s", d->redis->errstr);
    *out = reply;
    return AW_OK;
}

/* Queues one command of a round; a failure (out of memory) is kept and
 * reported once the round's replies are read, so replies never misalign. */
static void queue(doctor *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (redisvAppendCommand(d->redis, fmt, ap) != REDIS_OK)
        d->queue_failed = true;
    va_end(ap);
}

static int round_queued(const doctor *d, aw_error *err)
{
    return d->queue_failed
               ? aw_error_set(err, AW_ERR_NOMEM,
                              "out of memory queueing Redis commands")
               : AW_OK;
}

/* XINFO on an absent key answers "no such key"; anything else (NOPERM, a
 * wrong type) means the stream cannot be read. */
static int stream_reply_error(const stream_view *s, const redisReply *r,
                              aw_error *err)
{
    if (!reply_is(r, REDIS_REPLY_ERROR) || strstr(r->str, "no such key"))
        return AW_OK;
    return aw_error_set(err, AW_ERR, "Redis XINFO on %s: %s", s->name, r->str);
}

static void name_streams(doctor *d)
{
    const doctor_args *a = d->args;
    static const aw_stream_role revocations[3] = {
        AW_ROLE_SESSION_REVOKE, AW_ROLE_AGENT_LIFECYCLE,
        AW_ROLE_DELEGATION_INVALIDATE};
    static const aw_stream_role dead[3] = {AW_ROLE_SESSION_REVOKE_DEAD,
                                           AW_ROLE_AGENT_LIFECYCLE_DEAD,
                                           AW_ROLE_DELEGATION_INVALIDATE_DEAD};
    stream_view *s = d->streams;
    snprintf(s[0].name, sizeof s[0].name, "%s", a->names.of[AW_ROLE_AUDIT]);
    s[0].kind = KIND_AUDIT;
    s[0].role = AW_ROLE_AUDIT;
    for (int i = 0; i < 3; i++) {
        stream_view *v = &s[1 + i], *dead_view = &s[5 + i];
        snprintf(v->name, sizeof v->name, "%s", a->names.of[revocations[i]]);
        v->kind = KIND_REVOCATION;
        v->role = revocations[i];
        snprintf(dead_view->name, sizeof dead_view->name, "%s",
                 a->names.of[dead[i]]);
        dead_view->kind = KIND_REVOCATION_DEAD;
        dead_view->role = revocations[i];
        dead_view->origin = v->name;
    }
    snprintf(s[4].name, sizeof s[4].name, "%s", a->names.of[AW_ROLE_AUDIT_DLQ]);
    s[4].kind = KIND_AUDIT_DLQ;
    s[4].role = AW_ROLE_AUDIT;
    s[4].origin = s[0].name;
}

/* Round 1: the time, then XINFO STREAM and XINFO GROUPS of every stream. */
static int read_streams(doctor *d, aw_error *err)
{
    redisReply *time_reply = NULL;
    int rc;
    queue(d, "TIME");
    for (size_t i = 0; i < NSTREAMS; i++) {
        queue(d, "XINFO STREAM %s", d->streams[i].name);
        queue(d, "XINFO GROUPS %s", d->streams[i].name);
    }
    if ((rc = round_queued(d, err)) != AW_OK ||
        (rc = read_reply(d, &time_reply, err)) != AW_OK)
        return rc;
    if (reply_is(time_reply, REDIS_REPLY_ARRAY) && time_reply->elements == 2 &&
        reply_is(time_reply->element[0], REDIS_REPLY_STRING) &&
        reply_is(time_reply->element[1], REDIS_REPLY_STRING))
        d->now_ms = strtoll(time_reply->element[0]->str, NULL, 10) * 1000 +
                    strtoll(time_reply->element[1]->str, NULL, 10) / 1000;
    else
        d->now_ms = aw_cli_now_ns() / 1000000;
    freeReplyObject(time_reply);
    for (size_t i = 0; i < NSTREAMS; i++) {
        stream_view *s = &d->streams[i];
        if ((rc = read_reply(d, &s->info, err)) != AW_OK ||
            (rc = read_reply(d, &s->groups_reply, err)) != AW_OK ||
            (rc = stream_reply_error(s, s->info, err)) != AW_OK ||
            (rc = stream_reply_error(s, s->groups_reply, err)) != AW_OK)
            return rc;
        /* an error reply ("no such key") means the stream does not exist */
        if (!reply_is(s->info, REDIS_REPLY_ARRAY))
            continue;
        s->snap.exists = true;
        s->snap.length = int_field(s->info, "length");
        s->snap.first_entry =
            parse_pos(entry_id(aw_redis_map_get(s->info, "first-entry")));
        s->snap.last_entry =
            parse_pos(entry_id(aw_redis_map_get(s->info, "last-entry")));
        const char *max_deleted = str_field(s->info, "max-deleted-entry-id");
        s->snap.max_deleted_known = max_deleted != NULL;
        s->snap.max_deleted = parse_pos(max_deleted);
        if (!reply_is(s->groups_reply, REDIS_REPLY_ARRAY) ||
            s->groups_reply->elements == 0)
            continue;
        s->groups = calloc(s->groups_reply->elements, sizeof *s->groups);
        if (!s->groups)
            return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
        for (size_t g = 0; g < s->groups_reply->elements; g++) {
            const redisReply *info = s->groups_reply->element[g];
            group_view *v = &s->groups[s->ngroups];
            if (!(v->name = str_field(info, "name")))
                continue;
            v->last_delivered = str_field(info, "last-delivered-id");
            v->entries_read = int_field(info, "entries-read");
            v->snap.last_delivered = parse_pos(v->last_delivered);
            v->snap.lag = int_field(info, "lag");
            v->snap.pending = int_field(info, "pending");
            int64_t consumers = int_field(info, "consumers");
            v->snap.consumers = consumers > 0 ? (size_t)consumers : 0;
            v->snap.oldest_pending_idle_ms = AW_FIGURE_UNKNOWN;
            v->snap.freshest_consumer_idle_ms = AW_FIGURE_UNKNOWN;
            s->ngroups++;
        }
    }
    return AW_OK;
}

/* Round 2: per group its oldest pending entry, its consumers and the first
 * entry it has not been delivered. */
static int read_groups(doctor *d, aw_error *err)
{
    int rc;
    for (size_t i = 0; i < NSTREAMS; i++)
        for (size_t g = 0; g < d->streams[i].ngroups; g++) {
            const stream_view *s = &d->streams[i];
            const group_view *v = &s->groups[g];
            queue(d, "XPENDING %s %s - + 1", s->name, v->name);
            queue(d, "XINFO CONSUMERS %s %s", s->name, v->name);
            queue(d, "XRANGE %s (%s + COUNT 1", s->name,
                  v->last_delivered ? v->last_delivered : "0-0");
        }
    if ((rc = round_queued(d, err)) != AW_OK)
        return rc;
    for (size_t i = 0; i < NSTREAMS; i++)
        for (size_t g = 0; g < d->streams[i].ngroups; g++) {
            group_view *v = &d->streams[i].groups[g];
            if ((rc = read_reply(d, &v->pending, err)) != AW_OK ||
                (rc = read_reply(d, &v->consumers, err)) != AW_OK ||
                (rc = read_reply(d, &v->undelivered, err)) != AW_OK)
                return rc;
            /* XPENDING extended: [[id, consumer, idle-ms, deliveries]] */
            if (reply_is(v->pending, REDIS_REPLY_ARRAY) &&
                v->pending->elements == 1) {
                const redisReply *p = v->pending->element[0];
                if (reply_is(p, REDIS_REPLY_ARRAY) && p->elements >= 4 &&
                    reply_is(p->element[0], REDIS_REPLY_STRING)) {
                    v->snap.oldest_pending = parse_pos(p->element[0]->str);
                    if (reply_is(p->element[2], REDIS_REPLY_INTEGER))
                        v->snap.oldest_pending_idle_ms = p->element[2]->integer;
                }
            }
            if (reply_is(v->consumers, REDIS_REPLY_ARRAY))
                for (size_t c = 0; c < v->consumers->elements; c++) {
                    int64_t idle = int_field(v->consumers->element[c], "idle");
                    if (idle != AW_FIGURE_UNKNOWN &&
                        (v->snap.freshest_consumer_idle_ms ==
                             AW_FIGURE_UNKNOWN ||
                         idle < v->snap.freshest_consumer_idle_ms))
                        v->snap.freshest_consumer_idle_ms = idle;
                }
            if (reply_is(v->undelivered, REDIS_REPLY_ARRAY) &&
                v->undelivered->elements == 1)
                v->snap.first_undelivered =
                    parse_pos(entry_id(v->undelivered->element[0]));
        }
    return AW_OK;
}

/* The STS's pending list, walked whole (AW_STS_SCAN_ENTRIES per call, so
 * Caracal's own commands get in between): snap then holds the oldest
 * entry it applies and how many it declines. A script Redis refuses
 * (scripting disabled, an ACL) is a detail of the group's rows, not a
 * failure of doctor. */
static int scan_sts_pending(doctor *d, const stream_view *s, group_view *v,
                            aw_error *err)
{
    aw_sts_scan_command command;
    aw_sts_scan scan = {0};
    int64_t declined = 0;
    aw_error why = {0};
    /* the list may grow while it is walked: every entry is met once */
    for (int64_t left = v->snap.pending / AW_STS_SCAN_ENTRIES + 2;
         !scan.done && left > 0; left--) {
        aw_sts_scan_command_init(&command, s->name, scan.declined_through);
        redisReply *r =
            redisCommandArgv(d->redis, AW_STS_SCAN_ARGC, command.argv, NULL);
        if (!r)
            return aw_error_set(err, AW_ERR_IO, "Redis: %s", d->redis->errstr);
        aw_stream_pos through = scan.declined_through;
        int rc = aw_sts_scan_parse(r, &scan, &why);
        freeReplyObject(r);
        if (rc != AW_OK) {
            snprintf(v->sts_scan_error, sizeof v->sts_scan_error, "%s",
                     why.msg);
            return AW_OK;
        }
        if (aw_stream_pos_is_none(scan.declined_through))
            scan.declined_through = through;
        declined += scan.declined;
    }
    v->sts_scanned = scan.done;
    if (!scan.done) {
        snprintf(v->sts_scan_error, sizeof v->sts_scan_error,
                 "its pending list kept growing while it was read");
        return AW_OK;
    }
    if (scan.found) {
        v->snap.oldest_pending = scan.oldest;
        v->snap.oldest_pending_idle_ms = scan.oldest_idle_ms;
    }
    v->snap.declined = scan.found ? declined : v->snap.pending;
    if (v->snap.declined >= v->snap.pending && scan.found)
        v->snap.declined = v->snap.pending - 1;
    return AW_OK;
}

static int scan_sts_groups(doctor *d, aw_error *err)
{
    int rc;
    for (size_t i = 0; i < NSTREAMS; i++) {
        stream_view *s = &d->streams[i];
        if (s->kind != KIND_REVOCATION || s->role != AW_ROLE_SESSION_REVOKE)
            continue;
        for (size_t g = 0; g < s->ngroups; g++)
            if (strcmp(s->groups[g].name, AW_STS_REVOCATION_GROUP) == 0 &&
                s->groups[g].snap.pending > 0 &&
                (rc = scan_sts_pending(d, s, &s->groups[g], err)) != AW_OK)
                return rc;
    }
    return AW_OK;
}

/* Entry [id, fields] of a `.dead` stream s as a dead letter of s->origin,
 * and the revocations of its original: *letter is NULL (err says why) when
 * it cannot be read. Caller frees both. */
static int read_dead_revocation(const stream_view *s, const redisReply *entry,
                                aw_field **scratch, size_t *scratch_cap,
                                aw_dead_letter **letter,
                                aw_revocation_set **set, aw_error *err)
{
    aw_raw_entry *raw = NULL;
    int rc =
        entry_id(entry)
            ? aw_redis_entry_copy(s->name, entry->element[0], entry->element[1],
                                  scratch, scratch_cap, &raw, err)
            : aw_error_set(err, AW_ERR_INVALID, "not a stream entry");
    if (rc == AW_OK)
        rc =
            aw_dead_letter_decode_revocation(raw, s->origin, NULL, letter, err);
    if (rc == AW_OK && set)
        rc = aw_event_decode_revocation(s->role, (*letter)->original, NULL, set,
                                        err);
    aw_raw_entry_free(raw);
    return rc;
}

/* Walks a `.dead` stream oldest first, in pages, up to its first entry
 * that is not the STS's dead letter of an entry it declines by design. */
static int scan_dead_revocations(doctor *d, stream_view *s, aw_error *err)
{
    char start[AW_STREAM_ID_TEXT_MAX + 1] = "-";
    aw_field *scratch = NULL;
    size_t scratch_cap = 0;
    int rc = AW_OK;
    while (rc == AW_OK && !s->attention) {
        redisReply *page =
            redisCommand(d->redis, "XRANGE %s %s + COUNT 1000", s->name, start);
        if (!page) {
            rc = aw_error_set(err, AW_ERR_IO, "Redis: %s", d->redis->errstr);
            break;
        }
        if (!reply_is(page, REDIS_REPLY_ARRAY) || page->elements == 0) {
            freeReplyObject(page);
            break;
        }
        for (size_t i = 0; i < page->elements && !s->attention; i++) {
            aw_dead_letter *letter = NULL;
            aw_revocation_set *set = NULL;
            aw_error why = {0};
            if (read_dead_revocation(s, page->element[i], &scratch,
                                     &scratch_cap, &letter, &set,
                                     &why) == AW_OK &&
                aw_sts_declined(s->role, letter, set))
                s->declined++;
            else
                s->attention = page->element[i];
            aw_revocation_set_free(set);
            aw_dead_letter_free(letter);
        }
        const char *last = entry_id(page->element[page->elements - 1]);
        if (s->attention)
            s->attention_page = page;
        else if (last && strlen(last) < AW_STREAM_ID_TEXT_MAX)
            snprintf(start, sizeof start, "(%s", last);
        if (!s->attention) {
            freeReplyObject(page);
            if (!last)
                break;
        }
    }
    free(scratch);
    s->dead_scanned = rc == AW_OK;
    return rc;
}

static int scan_dead_letter_streams(doctor *d, aw_error *err)
{
    int rc;
    for (size_t i = 0; i < NSTREAMS; i++)
        if (d->streams[i].kind == KIND_REVOCATION_DEAD &&
            d->streams[i].snap.exists && d->streams[i].snap.length > 0 &&
            (rc = scan_dead_revocations(d, &d->streams[i], err)) != AW_OK)
            return rc;
    return AW_OK;
}

static void free_views(doctor *d)
{
    for (size_t i = 0; i < NSTREAMS; i++) {
        stream_view *s = &d->streams[i];
        for (size_t g = 0; g < s->ngroups; g++) {
            freeReplyObject(s->groups[g].pending);
            freeReplyObject(s->groups[g].consumers);
            freeReplyObject(s->groups[g].undelivered);
        }
        free(s->groups);
        freeReplyObject(s->attention_page);
        freeReplyObject(s->info);
        freeReplyObject(s->groups_reply);
    }
}

/* ---- Sections -------------------------------------------------------------------- */

static int64_t age_of(const doctor *d, aw_stream_pos p)
{
    if (aw_stream_pos_is_none(p))
        return AW_FIGURE_UNKNOWN;
    return (int64_t)p.ms < d->now_ms ? d->now_ms - (int64_t)p.ms : 0;
}

static void stream_section(doctor *d)
{
    verdict v = {0};
    char buf[64];
    size_t present = 0;
    for (size_t i = 0; i < NSTREAMS; i++) {
        const stream_view *s = &d->streams[i];
        const aw_stream_snapshot *n = &s->snap;
        row(d, "stream", s->name, NULL, "exists", aw_cli_bool(n->exists), NULL);
        if (!n->exists) {
            if (s->kind == KIND_AUDIT)
                note(&v, true,
                     "%s does not exist: nothing was ever published and no "
                     "audit-ingestor has started",
                     s->name);
            continue;
        }
        present++;
        row(d, "stream", s->name, NULL, "length", aw_cli_int(n->length), NULL);
        row(d, "stream", s->name, NULL, "first_entry_id",
            pos_cell(n->first_entry, buf, sizeof buf), NULL);
        row(d, "stream", s->name, NULL, "first_entry_age_ms",
            figure(age_of(d, n->first_entry)), NULL);
        row(d, "stream", s->name, NULL, "last_entry_id",
            pos_cell(n->last_entry, buf, sizeof buf), NULL);
        row(d, "stream", s->name, NULL, "last_entry_age_ms",
            figure(age_of(d, n->last_entry)), NULL);
        row(d, "stream", s->name, NULL, "max_deleted_entry_id",
            n->max_deleted_known ? pos_cell(n->max_deleted, buf, sizeof buf)
                                 : aw_cli_str("unknown"),
            NULL);
        row(d, "stream", s->name, NULL, "groups",
            aw_cli_int((int64_t)s->ngroups), NULL);
    }
    snprintf(buf, sizeof buf, "%zu of %d streams exist", present, NSTREAMS);
    finish_verdict(d, "streams", &v, buf);
}

static void group_section(doctor *d)
{
    verdict v = {0};
    char buf[64], detail[160];
    size_t ngroups = 0;
    for (size_t i = 0; i < NSTREAMS; i++) {
        const stream_view *s = &d->streams[i];
        for (size_t g = 0; g < s->ngroups; g++) {
            const group_view *gv = &s->groups[g];
            const aw_group_snapshot *n = &gv->snap;
            int64_t headroom =
                aw_group_trim_headroom(&s->snap, n, d->args->maxlen);
            ngroups++;
            row(d, "group", s->name, gv->name, "last_delivered_id",
                aw_cli_str(gv->last_delivered), NULL);
            row(d, "group", s->name, gv->name, "entries_read",
                figure(gv->entries_read), NULL);
            row(d, "group", s->name, gv->name, "lag", figure(n->lag), NULL);
            row(d, "group", s->name, gv->name, "pending",
                aw_cli_int(n->pending), NULL);
            if (gv->sts_scanned || *gv->sts_scan_error)
                row(d, "group", s->name, gv->name, "declined_pending",
                    figure(gv->sts_scanned ? n->declined : AW_FIGURE_UNKNOWN),
                    gv->sts_scanned
                        ? "revocations naming no session, which the STS "
                          "leaves pending by design"
                        : gv->sts_scan_error);
            if (n->pending > 0) {
                row(d, "group", s->name, gv->name, "oldest_pending_id",
                    pos_cell(n->oldest_pending, buf, sizeof buf), NULL);
                row(d, "group", s->name, gv->name, "oldest_pending_age_ms",
                    figure(age_of(d, n->oldest_pending)), NULL);
                row(d, "group", s->name, gv->name, "oldest_pending_idle_ms",
                    figure(n->oldest_pending_idle_ms), NULL);
            }
            row(d, "group", s->name, gv->name, "consumers",
                aw_cli_int((int64_t)n->consumers), NULL);
            row(d, "group", s->name, gv->name, "trim_headroom",
                figure(headroom), NULL);
            if (reply_is(gv->consumers, REDIS_REPLY_ARRAY))
                for (size_t c = 0; c < gv->consumers->elements; c++) {
                    const redisReply *info = gv->consumers->element[c];
                    /* `inactive` (Redis 7.2+): since its last successful read */
                    int64_t inactive = int_field(info, "inactive");
                    if (inactive == AW_FIGURE_UNKNOWN)
                        snprintf(detail, sizeof detail, "%" PRId64 " pending",
                                 int_field(info, "pending"));
                    else
                        snprintf(detail, sizeof detail,
                                 "%" PRId64 " pending, inactive %" PRId64 " ms",
                                 int_field(info, "pending"), inactive);
                    row(d, "consumer", s->name, gv->name,
                        str_field(info, "name"),
                        figure(int_field(info, "idle")), detail);
                }
            /* unread entries are at most the stream's length */
            int64_t at_least = d->args->maxlen - s->snap.length -
                               (n->pending > 0 ? n->pending : 0);
            /* a group no consumer ever joined (Caracal provisions
             * siem-export, audit-dlq-observer and delegations-observer at
             * `$` for readers outside it) loses nothing to trimming */
            if (n->consumers == 0)
                continue;
            if (headroom == AW_FIGURE_UNKNOWN &&
                at_least < d->args->maxlen / 10)
                note(&v, false,
                     "%s %s: Redis does not report its lag, so how close "
                     "trimming is cannot be told",
                     s->name, gv->name);
            else if (headroom < d->args->maxlen / 10)
                note(
                    &v, true,
                    "%s %s: %" PRId64 " entries before MAXLEN ~ %" PRId64
                    " trimming reaches entries it has not read or acknowledged",
                    s->name, gv->name, headroom, d->args->maxlen);
        }
    }
    snprintf(buf, sizeof buf, "%zu groups clear of trimming", ngroups);
    finish_verdict(d, "trimming", &v, buf);
}

/* The oldest dead letter that needs attention: the first entry of the
 * audit DLQ, or of a `.dead` the first one that is not the STS's by design
 * (scan_dead_revocations). */
static void dead_letter_section(doctor *d)
{
    verdict v = {0};
    char buf[64];
    aw_field *scratch = NULL;
    size_t scratch_cap = 0;
    for (size_t i = 0; i < NSTREAMS; i++) {
        const stream_view *s = &d->streams[i];
        if (s->kind != KIND_AUDIT_DLQ && s->kind != KIND_REVOCATION_DEAD)
            continue;
        int64_t depth = s->snap.exists ? s->snap.length : 0;
        row(d, "dead_letters", s->name, NULL, "depth", aw_cli_int(depth), NULL);
        if (s->dead_scanned && s->declined > 0)
            row(d, "dead_letters", s->name, NULL, "declined_by_design",
                aw_cli_int(s->declined),
                "the STS's dead letters of edge revocations, which it "
                "declines by design (the Gateway applies them)");
        const redisReply *e = s->kind == KIND_REVOCATION_DEAD
                                  ? s->attention
                                  : aw_redis_map_get(s->info, "first-entry");
        if (depth <= 0 || !e)
            continue;
        aw_stream_pos first = parse_pos(entry_id(e));
        row(d, "dead_letters", s->name, NULL, "oldest_entry_id",
            pos_cell(first, buf, sizeof buf), NULL);
        row(d, "dead_letters", s->name, NULL, "oldest_entry_age_ms",
            figure(age_of(d, first)), NULL);

        const char *reason = "undecodable";
        aw_dead_letter *letter = NULL;
        aw_raw_entry *raw = NULL;
        aw_error err = {0};
        int rc =
            s->kind == KIND_REVOCATION_DEAD
                ? read_dead_revocation(s, e, &scratch, &scratch_cap, &letter,
                                       NULL, &err)
            : entry_id(e)
                ? aw_redis_entry_copy(s->name, e->element[0], e->element[1],
                                      &scratch, &scratch_cap, &raw, &err)
                : aw_error_set(&err, AW_ERR_INVALID, "not a stream entry");
        if (rc == AW_OK && s->kind == KIND_AUDIT_DLQ)
            rc = aw_dead_letter_decode_audit(raw, s->origin, &letter, &err);
        if (rc == AW_OK) {
            reason = letter->reason;
            row(d, "dead_letters", s->name, NULL, "oldest_shape",
                aw_cli_str(aw_dead_letter_shape_name(letter->shape)), NULL);
            row(d, "dead_letters", s->name, NULL, "oldest_source_id",
                aw_cli_str(letter->source_id), NULL);
        }
        row(d, "dead_letters", s->name, NULL, "oldest_reason",
            aw_cli_str(reason), letter ? NULL : err.msg);
        note(&v, true,
             "%s holds %" PRId64 " dead-lettered entr%s, the oldest %" PRId64
             " s old (%s)",
             s->name, depth, depth == 1 ? "y" : "ies", age_of(d, first) / 1000,
             reason);
        aw_dead_letter_free(letter);
        aw_raw_entry_free(raw);
    }
    free(scratch);
    finish_verdict(d, "dead_letters", &v, "no dead-lettered entries");
}

static bool is_enforcer(const doctor_args *a, const char *group)
{
    return aw_enforcer_group_matches(a->patterns, a->npatterns, group);
}

static void enforcer_section(doctor *d)
{
    verdict v = {0};
    char buf[64], ok[64];
    size_t nenforcers = 0;
    for (size_t i = 0; i < NSTREAMS; i++) {
        const stream_view *s = &d->streams[i];
        size_t here = 0;
        if (s->kind != KIND_REVOCATION)
            continue;
        for (size_t g = 0; g < s->ngroups; g++) {
            const group_view *gv = &s->groups[g];
            aw_enforcer_judgment j;
            if (!is_enforcer(d->args, gv->name))
                continue;
            here++;
            aw_enforcer_judge(&s->snap, &gv->snap, d->now_ms, d->args->grace_ms,
                              &j);
            row(d, "enforcer", s->name, gv->name, "state",
                aw_cli_str(aw_enforcer_state_name(j.state)), NULL);
            row(d, "enforcer", s->name, gv->name, "oldest_unapplied_id",
                pos_cell(j.oldest_unapplied, buf, sizeof buf), NULL);
            row(d, "enforcer", s->name, gv->name, "unapplied_age_ms",
                aw_cli_int(j.unapplied_age_ms), NULL);
            row(d, "enforcer", s->name, gv->name, "freshest_consumer_idle_ms",
                figure(gv->snap.freshest_consumer_idle_ms), NULL);
            pos_text(j.oldest_unapplied, buf, sizeof buf);
            switch (j.state) {
            case AW_ENFORCER_OK: break;
            case AW_ENFORCER_NOT_READING:
                note(&v, true,
                     "%s on %s has not read revocation %s for %" PRId64
                     " s (consumers: %zu, the least idle for %" PRId64 " ms)%s",
                     gv->name, s->name, buf, j.unapplied_age_ms / 1000,
                     gv->snap.consumers, gv->snap.freshest_consumer_idle_ms,
                     aw_enforcer_left_behind(gv->name, &j)
                         ? ": no consumer has read since before it was "
                           "written; a retired or renamed host's group? If "
                           "so, XGROUP DESTROY it"
                         : "");
                break;
            case AW_ENFORCER_NOT_ACKING:
                note(&v, true,
                     "%s on %s read revocation %s but has not acknowledged "
                     "it for %" PRId64 " s",
                     gv->name, s->name, buf, j.unapplied_age_ms / 1000);
                break;
            case AW_ENFORCER_TRIMMED:
                note(&v, true,
                     "%s on %s lost revocations to trimming before reading "
                     "them",
                     gv->name, s->name);
                break;
            }
        }
        nenforcers += here;
        if (s->role == AW_ROLE_SESSION_REVOKE && here == 0)
            note(
                &v, true,
                "no enforcer group reads %s: revocations reach no STS or Gateway",
                s->name);
    }
    snprintf(ok, sizeof ok, "%zu enforcer groups applied every revocation",
             nenforcers);
    finish_verdict(d, "enforcers", &v, ok);
}

static void ingest_section(doctor *d)
{
    verdict v = {0};
    const stream_view *s = &d->streams[0];
    const aw_group_snapshot *group = NULL;
    aw_ingest_judgment j;
    for (size_t g = 0; g < s->ngroups; g++)
        if (strcmp(s->groups[g].name, INGEST_GROUP) == 0)
            group = &s->groups[g].snap;
    aw_ingest_judge(group, d->now_ms, &d->args->ingest, &j);
    row(d, "ingest", s->name, INGEST_GROUP, "state",
        aw_cli_str(aw_ingest_state_name(j.state)), NULL);
    row(d, "ingest", s->name, INGEST_GROUP, "lag", figure(j.lag), NULL);
    row(d, "ingest", s->name, INGEST_GROUP, "oldest_unread_age_ms",
        figure(j.oldest_unread_age_ms), NULL);
    row(d, "ingest", s->name, INGEST_GROUP, "oldest_pending_age_ms",
        figure(j.oldest_pending_age_ms), NULL);
    switch (j.state) {
    case AW_INGEST_OK: break;
    case AW_INGEST_ABSENT:
        note(&v, true,
             "no %s group on %s: Caracal's audit service never started",
             INGEST_GROUP, s->name);
        break;
    case AW_INGEST_LAGGING:
        note(&v, true,
             "%s lags %" PRId64
             " entries (-1: unknown), the oldest unread for %" PRId64
             " s (limits %" PRId64 " entries, %" PRId64 " s)",
             INGEST_GROUP, j.lag, j.oldest_unread_age_ms / 1000,
             d->args->ingest.max_lag, d->args->ingest.max_age_ms / 1000);
        break;
    case AW_INGEST_STUCK:
        note(&v, true,
             "%s has left an entry pending for %" PRId64 " s (limit %" PRId64
             " s)",
             INGEST_GROUP, j.oldest_pending_age_ms / 1000,
             d->args->ingest.max_age_ms / 1000);
        break;
    }
    finish_verdict(d, "ingest", &v, INGEST_GROUP " keeps up");
}

static int add_checkpoint(const char *stream, const char *entry_id_text,
                          int64_t updated_at_ns, void *ud)
{
    doctor *d = ud;
    char when[40];
    aw_time_format(updated_at_ns, when, sizeof when);
    row(d, "checkpoint", stream, NULL, "entry_id", aw_cli_str(entry_id_text),
        when);
    return 0;
}

typedef struct deleted_scan {
    doctor *d;
    verdict *v;
} deleted_scan;

static bool has_group(const stream_view *s, const char *group)
{
    for (size_t g = 0; g < s->ngroups; g++)
        if (strcmp(s->groups[g].name, group) == 0)
            return true;
    return false;
}

/* An open revocation_not_consumed is about (group, "<stream>/<entry id>"):
 * a group gone from its stream applies no revocation any more, and nothing
 * will resolve the alert, so it is named with how to close the case. */
static int note_deleted_group(const aw_alert *a, void *ud)
{
    deleted_scan *scan = ud;
    for (size_t i = 0; a->anchor && a->request_id && i < NSTREAMS; i++) {
        const stream_view *s = &scan->d->streams[i];
        size_t len = strlen(s->name);
        if (s->kind != KIND_REVOCATION ||
            strncmp(a->request_id, s->name, len) != 0 ||
            a->request_id[len] != '/' || has_group(s, a->anchor))
            continue;
        row(scan->d, "index", s->name, a->anchor, "alert_of_deleted_group",
            aw_cli_str(a->id), a->acked_at_ns ? "acknowledged" : NULL);
        note(scan->v, true,
             "enforcer group %s was deleted from %s, so it applies no "
             "revocation, and alert %s (revocation_not_consumed) stays open: "
             "if it was retired on purpose, auditwatch alerts --ack %s",
             a->anchor, s->name, a->id, a->id);
    }
    return 0;
}

/* auditwatch's own index. Returns false when it cannot be read. */
static bool index_section(doctor *d, const char *db)
{
    verdict v = {0};
    aw_store *store;
    aw_store_stats st;
    aw_error err = {0};
    int rc = aw_store_open(db, AW_STORE_READONLY, &store, &err);
    if (rc == AW_OK) {
        if ((rc = aw_store_get_stats(store, &st, &err)) == AW_OK) {
            row(d, "index", NULL, NULL, "path", aw_cli_str(db), NULL);
            row(d, "index", NULL, NULL, "entries", aw_cli_int(st.entries),
                NULL);
            row(d, "index", NULL, NULL, "events", aw_cli_int(st.events), NULL);
            row(d, "index", NULL, NULL, "revocations",
                aw_cli_int(st.revocations), NULL);
            row(d, "index", NULL, NULL, "calls", aw_cli_int(st.calls), NULL);
            row(d, "index", NULL, NULL, "rejected", aw_cli_int(st.rejected),
                NULL);
            row(d, "index", NULL, NULL, "alerts_open",
                aw_cli_int(st.alerts_open), NULL);
            row(d, "index", NULL, NULL, "newest_event",
                st.events ? aw_cli_time(st.newest_event_ns) : aw_cli_str(NULL),
                NULL);
            rc = aw_store_query_checkpoints(store, add_checkpoint, d, &err);
            deleted_scan scan = {d, &v};
            if (rc == AW_OK && d->redis_read)
                rc = aw_store_query_alerts(
                    store,
                    &(aw_alert_filter){.kind = AW_ALERT_REVOCATION_NOT_CONSUMED,
                                       .state = AW_ALERT_OPEN},
                    note_deleted_group, &scan, &err);
            if (rc == AW_OK && st.alerts_open > 0)
                note(&v, true,
                     "%" PRId64 " open alerts (auditwatch alerts --db %s)",
                     st.alerts_open, db);
        }
        aw_store_close(store);
    }
    if (rc != AW_OK) {
        row(d, "index", NULL, NULL, "error", aw_cli_str(err.msg), NULL);
        row(d, "verdict", NULL, NULL, "index", aw_cli_str("unknown"), err.msg);
        fprintf(stderr, "auditwatch doctor: index: %s\n", err.msg);
        return false;
    }
    finish_verdict(d, "index", &v, "readable, no open alerts");
    return true;
}

/* ---- The command -------------------------------------------------------------------- */

static int redis_sections(doctor *d)
{
    aw_error err = {0};
    int rc = aw_redis_connect(d->args->redis_url, d->args->password_file,
                              (int)d->args->timeout_ms, &d->redis, &err);
    name_streams(d);
    if (rc == AW_OK && (rc = read_streams(d, &err)) == AW_OK &&
        (rc = read_groups(d, &err)) == AW_OK &&
        (rc = scan_sts_groups(d, &err)) == AW_OK)
        rc = scan_dead_letter_streams(d, &err);
    row(d, "redis", NULL, NULL, "reachable", aw_cli_bool(rc == AW_OK),
        rc == AW_OK ? NULL : err.msg);
    if (rc != AW_OK) {
        row(d, "verdict", NULL, NULL, "redis", aw_cli_str("unknown"), err.msg);
        fprintf(stderr, "auditwatch doctor: %s\n", err.msg);
    } else {
        stream_section(d);
        group_section(d);
        dead_letter_section(d);
        enforcer_section(d);
        ingest_section(d);
    }
    d->redis_read = rc == AW_OK;
    return rc;
}

int aw_cmd_doctor(int argc, char **argv)
{
    doctor_args a = {
        .maxlen = 100000,
        .grace_ms = AW_ENFORCER_DEFAULT_GRACE_MS,
        .ingest = {.max_lag = AW_INGEST_DEFAULT_MAX_LAG,
                   .max_age_ms = AW_INGEST_DEFAULT_MAX_AGE_MS},
        .timeout_ms = 2000,
    };
    aw_cli_common common;
    doctor d = {.args = &a};
    const char *v;
    int first, rc;

    rc = aw_cli_parse(&command, argc, argv, &common, on_option, &a, &first);
    if (rc != AW_CLI_PROCEED)
        return rc;
    if ((rc = aw_cli_expect_args(&command, argc, argv, first, 0, "")) !=
            AW_CLI_PROCEED ||
        (rc = aw_cli_resolve_streams(&command, a.streams, &a.names)) != 0)
        return rc;
    if (!a.redis_url && (v = getenv("AUDITWATCH_REDIS")) && *v) {
        a.redis_url = v;
        if (aw_cli_redis_option(&command, "$AUDITWATCH_REDIS", v) != 0)
            return AW_EXIT_USAGE;
    }
    if (!a.redis_url)
        return aw_cli_usage_error(
            &command, "--redis URL is required (or $AUDITWATCH_REDIS)");
    if (!(d.out = aw_cli_out_new(common.format, columns, 6, stdout)))
        return aw_cli_fail(&command, AW_EXIT_FAILURE, "out of memory");

    bool redis_read = redis_sections(&d) == AW_OK;
    bool index_read = index_section(&d, common.db);
    free_views(&d);
    if (d.redis)
        redisFree(d.redis);
    if (d.out_rc != AW_OK || aw_cli_out_close(d.out) != AW_OK)
        return aw_cli_fail(&command, AW_EXIT_FAILURE,
                           "cannot write the output");
    if (!redis_read || !index_read)
        return AW_EXIT_FAILURE;
    return d.attention ? AW_EXIT_NO : AW_EXIT_OK;
}
