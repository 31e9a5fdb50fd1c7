/* cmd_status.c -- `auditwatch status`: what the index holds and how far
 * the daemon is behind.
 *
 * Three sources, each optional but the first: the index (figures, rejected
 * entries by reason, open alerts by kind, per-stream checkpoints), opened
 * read-only; and, when a Redis URL is given, each stream's consumer group
 * as Redis sees it (XINFO GROUPS lag, XPENDING count, and how long the
 * oldest pending entry has sat idle). Redis is asked with the blocking API
 * under a timeout, so an unreachable Redis is reported, not waited on.
 *
 * --ready turns this into a probe: nothing on stdout, exit 0 when ready,
 * else 1 with the first reason on stderr. Not ready means: the index cannot
 * be opened, Redis (when given) cannot be reached, the group is absent on
 * the audit stream, or a group is over --max-lag / --max-pending-age.
 */
#include "cli/cli.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: auditwatch status [--redis URL] [--redis-password-file FILE]\n"
    "                         [--group NAME] [--stream ROLE=NAME]\n"
    "                         [--ready] [--max-lag N] [--max-pending-age DURATION]\n"
    "                         [--timeout-ms DURATION] [--format F] [--db PATH]\n\n"
    "Prints index figures, checkpoints and, when --redis is given, each\n"
    "consumer group's lag and pending entries, as rows of (section, item,\n"
    "value). Like `run`, options not given are taken from AUDITWATCH_REDIS,\n"
    "AUDITWATCH_REDIS_PASSWORD_FILE, AUDITWATCH_GROUP and AUDITWATCH_STREAM\n"
    "(ROLE=NAME,...), so a probe shares the daemon's environment file.\n\n"
    "  --redis URL                 redis://host:port[/db] or host:port\n"
    "  --redis-password-file FILE  password for AUTH (else $REDIS_PASSWORD_FILE)\n"
    "  --group NAME                consumer group (default auditwatch)\n"
    "  --stream ROLE=NAME          stream of a role (audit, sessions, lifecycle,\n"
    "                              delegations, calls, audit_dlq, ...); defaults\n"
    "                              are Caracal's, dead letters follow <audit>.dlq,\n"
    "                              <stream>.dead\n"
    "  --ready                     print nothing; exit 0 when ready, 1 when not\n"
    "  --max-lag N                 not ready when a group lags more than N entries\n"
    "  --max-pending-age DURATION  not ready when a pending entry idled longer\n"
    "                              (seconds, or 30s, 5m, 1h)\n"
    "  --timeout-ms DURATION       Redis connect and command timeout (default\n"
    "                              2000: milliseconds, or 2s)\n"
    "  -f, --format F              table (default), json or csv\n"
    "  --db PATH                   the index (default $AUDITWATCH_DB or ./auditwatch.db)\n\n"
    "Exit status: 0 (ready), 1 not ready, 2 bad usage, 3 failure.\n";

enum {
    OPT_REDIS = AW_CLI_OPT_BASE,
    OPT_PASSWORD_FILE,
    OPT_GROUP,
    OPT_STREAM,
    OPT_READY,
    OPT_MAX_LAG,
    OPT_MAX_PENDING_AGE,
    OPT_TIMEOUT,
};

static const struct option options[] = {
    {"redis", required_argument, NULL, OPT_REDIS},
    {"redis-password-file", required_argument, NULL, OPT_PASSWORD_FILE},
    {"group", required_argument, NULL, OPT_GROUP},
    {"stream", required_argument, NULL, OPT_STREAM},
    {"ready", no_argument, NULL, OPT_READY},
    {"max-lag", required_argument, NULL, OPT_MAX_LAG},
    {"max-pending-age", required_argument, NULL, OPT_MAX_PENDING_AGE},
    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
    {0},
};

static const aw_cli_command command = {
    .name = "status",
    .usage = usage,
    .common = AW_CLI_WANT_DB | AW_CLI_WANT_FORMAT,
    .options = options,
};

typedef struct status_args {
    const char *redis_url;
    const char *password_file;
    const char *group;
    const char *streams[AW_ROLE_COUNT]; /* as given */
    aw_stream_names names;
    bool streams_given;
    char *env_streams; /* owned copy of $AUDITWATCH_STREAM */
    bool ready;
    int64_t max_lag;            /* -1: no bound */
    int64_t max_pending_age_ms; /* -1: no bound */
    int64_t timeout_ms;
} status_args;

static int on_option(int opt, const char *arg, void *ud)
{
    status_args *a = ud;
    int64_t ns;
    int rc;
    switch (opt) {
    case OPT_REDIS:
        a->redis_url = arg;
        return aw_cli_redis_option(&command, "--redis", arg);
    case OPT_PASSWORD_FILE: a->password_file = arg; return 0;
    case OPT_GROUP: a->group = arg; return 0;
    case OPT_STREAM:
        a->streams_given = true;
        return aw_cli_stream_option(&command, arg, a->streams);
    case OPT_READY: a->ready = true; return 0;
    case OPT_MAX_LAG:
        if (aw_cli_parse_int(arg, 0, INT64_MAX, &a->max_lag) != AW_OK)
            return aw_cli_usage_error(
                &command, "--max-lag: expected a number of entries, got \"%s\"",
                arg);
        return 0;
    case OPT_MAX_PENDING_AGE:
        if ((rc = aw_cli_duration_option(&command, "--max-pending-age", arg,
                                         AW_CLI_SECONDS, AW_CLI_GRACE_MAX_NS,
                                         &ns)) == 0)
            a->max_pending_age_ms = ns / 1000000;
        return rc;
    case OPT_TIMEOUT:
        if ((rc = aw_cli_duration_option(&command, "--timeout-ms", arg,
                                         AW_CLI_MILLISECONDS,
                                         600LL * 1000000000LL, &ns)) == 0 &&
            ns < 1000000)
            rc = aw_cli_usage_error(
                &command, "--timeout-ms: at least 1 ms, got \"%s\"", arg);
        if (rc == 0)
            a->timeout_ms = ns / 1000000;
        return rc;
    }
    return AW_EXIT_USAGE;
}

/* ---- the report ---------------------------------------------------------- */

static const char *const columns[] = {"section", "item", "value"};

typedef struct report {
    aw_cli_out *out; /* NULL with --ready: figures are not printed */
    char not_ready[AW_ERRMSG_MAX]; /* first reason, "" while ready */
    int rc;
} report;

static void add(report *r, const char *section, const char *item,
                aw_cli_cell value)
{
    aw_cli_cell cells[3] = {aw_cli_str(section), aw_cli_str(item), value};
    if (r->out && r->rc == AW_OK)
        r->rc = aw_cli_out_row(r->out, cells);
}

static void not_ready(report *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void not_ready(report *r, const char *fmt, ...)
{
    va_list ap;
    if (r->not_ready[0])
        return;
    va_start(ap, fmt);
    vsnprintf(r->not_ready, sizeof r->not_ready, fmt, ap);
    va_end(ap);
}

typedef struct section_count {
    report *r;
    const char *section;
} section_count;

static int add_section_count(const char *name, int64_t count, void *ud)
{
    section_count *s = ud;
    add(s->r, s->section, name, aw_cli_int(count));
    return 0;
}

static int add_checkpoint(const char *stream, const char *entry_id,
                          int64_t updated_at_ns, void *ud)
{
    report *r = ud;
    (void)updated_at_ns;
    add(r, "checkpoint", stream, aw_cli_str(entry_id));
    return 0;
}

static int index_figures(aw_store *store, report *r, aw_error *err)
{
    aw_store_stats st;
    int rc = aw_store_get_stats(store, &st, err);
    if (rc != AW_OK)
        return rc;
    add(r, "index", "schema_version", aw_cli_int(st.schema_version));
    add(r, "index", "size_bytes", aw_cli_int(st.file_bytes));
    add(r, "index", "entries", aw_cli_int(st.entries));
    add(r, "index", "events", aw_cli_int(st.events));
    add(r, "index", "revocations", aw_cli_int(st.revocations));
    add(r, "index", "calls", aw_cli_int(st.calls));
    add(r, "index", "rejected", aw_cli_int(st.rejected));
    add(r, "index", "alerts_open", aw_cli_int(st.alerts_open));
    add(r, "index", "alerts_resolved", aw_cli_int(st.alerts_resolved));
    add(r, "index", "oldest_event",
        st.events ? aw_cli_time(st.oldest_event_ns) : aw_cli_str(NULL));
    add(r, "index", "newest_event",
        st.events ? aw_cli_time(st.newest_event_ns) : aw_cli_str(NULL));
    section_count rej = {r, "rejected_by_reason"},
                  open = {r, "open_alerts_by_kind"};
    rc = aw_store_count_by(store, "rejected_by_reason", add_section_count, &rej,
                           err);
    if (rc == AW_OK)
        rc = aw_store_count_by(store, "open_alerts_by_kind", add_section_count,
                               &open, err);
    if (rc != AW_OK)
        return rc;
    return aw_store_query_checkpoints(store, add_checkpoint, r, err);
}

/* ---- Redis ----------------------------------------------------------------- */

static aw_cli_cell reply_cell(const redisReply *v)
{
    if (v && v->type == REDIS_REPLY_INTEGER)
        return aw_cli_int(v->integer);
    if (v && (v->type == REDIS_REPLY_STRING || v->type == REDIS_REPLY_STATUS))
        return aw_cli_str(v->str);
    return aw_cli_str(NULL);
}

/* The oldest pending entry of the group: its id and idle time. */
static int oldest_pending(redisContext *c, const char *stream,
                          const char *group, const char *section,
                          const status_args *a, report *r, aw_error *err)
{
    redisReply *x = redisCommand(c, "XPENDING %s %s - + 1", stream, group);
    if (!x)
        return aw_error_set(err, AW_ERR_IO, "Redis XPENDING %s: %s", stream,
                            c->errstr);
    if (x->type == REDIS_REPLY_ARRAY && x->elements == 1 &&
        x->element[0]->type == REDIS_REPLY_ARRAY &&
        x->element[0]->elements >= 3) {
        const redisReply *e = x->element[0];
        int64_t idle = e->element[2]->type == REDIS_REPLY_INTEGER
                           ? e->element[2]->integer
                           : 0;
        add(r, section, "oldest_pending_id", reply_cell(e->element[0]));
        add(r, section, "oldest_pending_idle_ms", aw_cli_int(idle));
        if (a->max_pending_age_ms >= 0 && idle > a->max_pending_age_ms)
            not_ready(r,
                      "%s: pending entry %s idle for %" PRId64
                      " s (max %" PRId64 ")",
                      stream, e->element[0]->str, idle / 1000,
                      a->max_pending_age_ms / 1000);
    }
    freeReplyObject(x);
    return AW_OK;
}

static int group_figures(redisContext *c, aw_stream_role role,
                         const char *stream, const status_args *a, report *r,
                         aw_error *err)
{
    char section[AW_MAX_ID_BYTES];
    const redisReply *group = NULL;
    redisReply *x;
    int rc = AW_OK;

    snprintf(section, sizeof section, "redis:%s", stream);
    if (!(x = redisCommand(c, "XINFO GROUPS %s", stream)))
        return aw_error_set(err, AW_ERR_IO, "Redis XINFO GROUPS %s: %s", stream,
                            c->errstr);
    if (x->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < x->elements && !group; i++) {
            const redisReply *name = aw_redis_map_get(x->element[i], "name");
            if (name && name->type == REDIS_REPLY_STRING &&
                strcmp(name->str, a->group) == 0)
                group = x->element[i];
        }
    if (!group) {
        /* No such key, or no such group: the daemon has not joined. */
        add(r, section, "group", aw_cli_str(NULL));
        if (role == AW_ROLE_AUDIT)
            not_ready(r, "%s: consumer group %s does not exist", stream,
                      a->group);
        freeReplyObject(x);
        return AW_OK;
    }
    const redisReply *lag = aw_redis_map_get(group, "lag");
    const redisReply *pending = aw_redis_map_get(group, "pending");
    add(r, section, "group", aw_cli_str(a->group));
    add(r, section, "last_delivered_id",
        reply_cell(aw_redis_map_get(group, "last-delivered-id")));
    add(r, section, "lag", reply_cell(lag));
    add(r, section, "pending", reply_cell(pending));
    if (a->max_lag >= 0 && lag && lag->type == REDIS_REPLY_INTEGER &&
        lag->integer > a->max_lag)
        not_ready(r, "%s: group %s lags %lld entries (max %" PRId64 ")", stream,
                  a->group, lag->integer, a->max_lag);
    if (pending && pending->type == REDIS_REPLY_INTEGER && pending->integer > 0)
        rc = oldest_pending(c, stream, a->group, section, a, r, err);
    freeReplyObject(x);
    return rc;
}

static void redis_figures(const status_args *a, report *r)
{
    redisContext *c;
    aw_error err = {0};
    if (aw_redis_connect(a->redis_url, a->password_file, (int)a->timeout_ms, &c,
                         &err) != AW_OK) {
        add(r, "redis", "reachable", aw_cli_bool(false));
        add(r, "redis", "error", aw_cli_str(err.msg));
        not_ready(r, "%s", err.msg);
        return;
    }
    add(r, "redis", "reachable", aw_cli_bool(true));
    for (int role = 0; role < AW_ROLE_COUNT; role++) {
        bool seen = false;
        for (int prev = 0; prev < role; prev++)
            seen |= strcmp(a->names.of[prev], a->names.of[role]) == 0;
        if (seen)
            continue;
        if (group_figures(c, (aw_stream_role)role, a->names.of[role], a, r,
                          &err) != AW_OK) {
            add(r, "redis", "error", aw_cli_str(err.msg));
            not_ready(r, "%s", err.msg);
            break;
        }
    }
    redisFree(c);
}

/* What `run` reads from its environment, for the options not given here. */
static int options_from_environment(status_args *a)
{
    const char *v;
    if (!a->redis_url && (v = getenv("AUDITWATCH_REDIS")) && *v) {
        a->redis_url = v;
        if (aw_cli_redis_option(&command, "$AUDITWATCH_REDIS", v) != 0)
            return AW_EXIT_USAGE;
    }
    if (!a->password_file && (v = getenv("AUDITWATCH_REDIS_PASSWORD_FILE")) &&
        *v)
        a->password_file = v;
    if (!a->group && (v = getenv("AUDITWATCH_GROUP")) && *v)
        a->group = v;
    if (!a->group)
        a->group = "auditwatch";
    if (a->streams_given || !(v = getenv("AUDITWATCH_STREAM")) || !*v)
        return 0;
    if (!(a->env_streams = strdup(v)))
        return aw_cli_fail(&command, AW_EXIT_FAILURE, "out of memory");
    for (char *save = NULL, *item = strtok_r(a->env_streams, ", ", &save); item;
         item = strtok_r(NULL, ", ", &save))
        if (aw_cli_stream_option(&command, item, a->streams) != 0)
            return AW_EXIT_USAGE;
    return 0;
}

int aw_cmd_status(int argc, char **argv)
{
    status_args a = {
        .max_lag = -1, .max_pending_age_ms = -1, .timeout_ms = 2000};
    aw_cli_common common;
    aw_store *store;
    aw_error err = {0};
    report r = {0};
    bool index_open = false;
    int first, rc;

    rc = aw_cli_parse(&command, argc, argv, &common, on_option, &a, &first);
    if (rc != AW_CLI_PROCEED)
        return rc;
    if ((rc = aw_cli_expect_args(&command, argc, argv, first, 0, "")) !=
        AW_CLI_PROCEED)
        return rc;
    if ((rc = options_from_environment(&a)) != 0 ||
        (rc = aw_cli_resolve_streams(&command, a.streams, &a.names)) != 0) {
        free(a.env_streams);
        return rc;
    }
    if (!a.ready &&
        !(r.out = aw_cli_out_new(common.format, columns, 3, stdout))) {
        free(a.env_streams);
        return aw_cli_fail(&command, AW_EXIT_FAILURE, "out of memory");
    }

    if (aw_store_open(common.db, AW_STORE_READONLY, &store, &err) != AW_OK) {
        not_ready(&r, "%s", err.msg);
        add(&r, "index", "error", aw_cli_str(err.msg));
    } else {
        index_open = true;
        add(&r, "index", "path", aw_cli_str(common.db));
        if (index_figures(store, &r, &err) != AW_OK) {
            not_ready(&r, "cannot read index %s: %s", common.db, err.msg);
            add(&r, "index", "error", aw_cli_str(err.msg));
        }
        aw_store_close(store);
    }
    if (a.redis_url)
        redis_figures(&a, &r);
    free(a.env_streams);

    if (r.rc != AW_OK || aw_cli_out_close(r.out) != AW_OK)
        return aw_cli_fail(&command, AW_EXIT_FAILURE,
                           "cannot write the output");
    if (a.ready) {
        if (r.not_ready[0])
            return aw_cli_fail(&command, AW_EXIT_NO, "not ready: %s",
                               r.not_ready);
        return AW_EXIT_OK;
    }
    /* the figures are printed either way; the exit status says what
     * --ready would, so a script need not parse them */
    if (r.not_ready[0]) {
        fprintf(stderr, "auditwatch status: %s\n", r.not_ready);
        return index_open ? AW_EXIT_NO : AW_EXIT_FAILURE;
    }
    return AW_EXIT_OK;
}
