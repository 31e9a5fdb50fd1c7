/* cmd_replay.c -- `auditwatch replay`: rebuild a fresh index for one time
 * window, from an evidence bundle or straight from Redis, and show the
 * alerts the detectors raise over it.
 *
 * Detection runs on event time (DESIGN §4), so replaying the same entries
 * gives the same alerts as the daemon did, whenever and however often it is
 * run. To keep that promise the entries go through exactly the daemon's
 * ingest path (consumer/'s aw_ingest_batch) in entry-id order, with streams
 * merged by (id_ms, id_seq) the way Redis' clock interleaved them; each
 * batch moves the detector clock to its newest entry's time, and at the end
 * the clock moves to --until, so every grace window inside the window has
 * run out.
 *
 * From Redis: XRANGE per stream with COUNT paging (no group is joined and
 * nothing is acknowledged: replay never disturbs the daemon); the window is
 * on entry ids, which are milliseconds. From a bundle: the header's body
 * SHA-256 is checked before any entry is used, and the bundle's own window
 * is the default.
 *
 * The target must not exist: a replay builds a new index, never adds to
 * one. When replay fails, the partial index is removed.
 */
#include "cli/cli.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: auditwatch replay (--bundle FILE | --from-redis URL) --db NEW_PATH\n"
    "                         [--since TIME] [--until TIME] [--stream ROLE=NAME]\n"
    "                         [--redis-password-file FILE]\n"
    "                         [--audit-hmac-key-file FILE] [--streams-hmac-key-file FILE]\n"
    "                         [--calls-hmac-key-file FILE]\n"
    "                         [--grace-missing SECONDS] [--grace-revocation SECONDS]\n"
    "                         [--audit-lookback SECONDS]\n"
    "                         [--format F] [--progress]\n\n"
    "Builds a fresh index at NEW_PATH from the entries of [--since, --until)\n"
    "(entry-id time), runs the detectors over them in entry-id order with the\n"
    "detector clock at each entry's time, then at --until, and prints the\n"
    "alerts that were raised.\n\n"
    "  --bundle FILE          read an evidence bundle (auditwatch export);\n"
    "                         the window defaults to the bundle's\n"
    "  --from-redis URL       read with XRANGE from redis://host:port[/db]\n"
    "                         (--since and --until required)\n"
    "  --db NEW_PATH          the index to create; must not exist\n"
    "  --since TIME           start of the window (RFC 3339, now, -30s, -15m, +1h, -7d)\n"
    "  --until TIME           end of the window, excluded\n"
    "  --stream ROLE=NAME     stream of a role (audit, sessions, lifecycle,\n"
    "                         delegations, calls, audit_dlq, ...); defaults\n"
    "                         are Caracal's, dead letters follow <audit>.dlq,\n"
    "                         <stream>.dead\n"
    "  --redis-password-file  password for AUTH (else $REDIS_PASSWORD_FILE)\n"
    "  --audit-hmac-key-file FILE, --streams-hmac-key-file FILE\n"
    "                         require and check signatures (else the files in\n"
    "                         $AUDIT_HMAC_KEY_FILE, $STREAMS_HMAC_KEY_FILE, else hex in\n"
    "                         $AUDIT_HMAC_KEY, $STREAMS_HMAC_KEY; none: not required)\n"
    "  --calls-hmac-key-file FILE\n"
    "                         require `_sig` on the calls stream (written by your\n"
    "                         own shippers; without it its entries may be unsigned)\n"
    "  --grace-missing D      decision_missing/call_without_audit grace (300;\n"
    "                         seconds, or 30s, 5m, 2h, fractions too)\n"
    "  --grace-revocation D   access_after_revocation grace (5)\n"
    "  --audit-lookback D     call_without_audit: audit evidence of a call whose\n"
    "                         log gives its time may lie at most this long\n"
    "                         before it (1h; 0: any time)\n"
    "  -f, --format F         table (default), json or csv, for the alerts\n"
    "  --progress             progress on stderr even when not a terminal\n\n"
    "Exit status: 0 replayed, 2 bad usage, 3 failure (bundle altered, Redis\n"
    "unreachable, index error).\n";

enum {
    OPT_BUNDLE = AW_CLI_OPT_BASE,
    OPT_FROM_REDIS,
    OPT_SINCE,
    OPT_UNTIL,
    OPT_STREAM,
    OPT_PASSWORD_FILE,
    OPT_AUDIT_KEY,
    OPT_STREAMS_KEY,
    OPT_CALLS_KEY,
    OPT_GRACE_MISSING,
    OPT_GRACE_REVOCATION,
    OPT_AUDIT_LOOKBACK,
};

static const struct option options[] = {
    {"bundle", required_argument, NULL, OPT_BUNDLE},
    {"from-redis", required_argument, NULL, OPT_FROM_REDIS},
    {"since", required_argument, NULL, OPT_SINCE},
    {"until", required_argument, NULL, OPT_UNTIL},
    {"stream", required_argument, NULL, OPT_STREAM},
    {"redis-password-file", required_argument, NULL, OPT_PASSWORD_FILE},
    {"audit-hmac-key-file", required_argument, NULL, OPT_AUDIT_KEY},
    {"streams-hmac-key-file", required_argument, NULL, OPT_STREAMS_KEY},
    {"calls-hmac-key-file", required_argument, NULL, OPT_CALLS_KEY},
    {"grace-missing", required_argument, NULL, OPT_GRACE_MISSING},
    {"grace-revocation", required_argument, NULL, OPT_GRACE_REVOCATION},
    {"audit-lookback", required_argument, NULL, OPT_AUDIT_LOOKBACK},
    {0},
};

static const aw_cli_command command = {
    .name = "replay",
    .usage = usage,
    .common = AW_CLI_WANT_DB | AW_CLI_WANT_FORMAT | AW_CLI_WANT_PROGRESS,
    .options = options,
};

/* Entries per transaction: large enough to amortise the commit, small
 * enough to keep memory flat. */
#define BATCH_ENTRIES 2000
/* Entries per XRANGE call. */
#define XRANGE_COUNT     1000
#define REDIS_TIMEOUT_MS 10000

typedef struct replay_args {
    const char *bundle;
    const char *redis_url;
    const char *password_file;
    const char *audit_key_file, *streams_key_file, *calls_key_file;
    const char *streams[AW_ROLE_COUNT]; /* as given */
    aw_stream_names names;
    bool has_since, has_until;
    int64_t since_ns, until_ns, now_ns;
    aw_detector_config detectors;
} replay_args;

static int on_option(int opt, const char *arg, void *ud)
{
    replay_args *a = ud;
    switch (opt) {
    case OPT_BUNDLE: a->bundle = arg; return 0;
    case OPT_FROM_REDIS:
        a->redis_url = arg;
        return aw_cli_redis_option(&command, "--from-redis", arg);
    case OPT_SINCE:
        a->has_since = true;
        return aw_cli_time_option(&command, "--since", arg, a->now_ns,
                                  &a->since_ns);
    case OPT_UNTIL:
        a->has_until = true;
        return aw_cli_time_option(&command, "--until", arg, a->now_ns,
                                  &a->until_ns);
    case OPT_STREAM: return aw_cli_stream_option(&command, arg, a->streams);
    case OPT_PASSWORD_FILE: a->password_file = arg; return 0;
    case OPT_AUDIT_KEY: a->audit_key_file = arg; return 0;
    case OPT_STREAMS_KEY: a->streams_key_file = arg; return 0;
    case OPT_CALLS_KEY: a->calls_key_file = arg; return 0;
    case OPT_GRACE_MISSING:
        return aw_cli_duration_option(&command, "--grace-missing", arg,
                                      AW_CLI_SECONDS, AW_CLI_GRACE_MAX_NS,
                                      &a->detectors.grace_missing_ns);
    case OPT_GRACE_REVOCATION:
        return aw_cli_duration_option(&command, "--grace-revocation", arg,
                                      AW_CLI_SECONDS, AW_CLI_GRACE_MAX_NS,
                                      &a->detectors.grace_revocation_ns);
    case OPT_AUDIT_LOOKBACK:
        return aw_cli_duration_option(&command, "--audit-lookback", arg,
                                      AW_CLI_SECONDS, AW_CLI_GRACE_MAX_NS,
                                      &a->detectors.audit_lookback_ns);
    }
    return AW_EXIT_USAGE;
}

/* ---- feeding the ingest layer, one batch at a time ----------------------- */

typedef struct feeder {
    aw_ingest *ing;
    int64_t since_ms, until_ms;
    aw_raw_entry *batch[BATCH_ENTRIES]; /* owned until committed */
    aw_ingest_item items[BATCH_ENTRIES];
    size_t n;
    int64_t fed, outside;
    aw_ingest_stats total;
    aw_field *scratch; /* reused by aw_redis_entry_copy */
    size_t scratch_cap;
    aw_cli_progress progress;
    aw_error err;
} feeder;

static int flush_batch(feeder *f)
{
    aw_ingest_stats stats = {0};
    int64_t clock_ns;
    int rc;
    if (f->n == 0)
        return AW_OK;
    /* Entries come sorted: the last one is the newest. */
    clock_ns = aw_ms_to_ns(f->batch[f->n - 1]->id_ms);
    rc = aw_ingest_batch(f->ing, f->items, f->n, NULL, 0, clock_ns, &stats,
                         &f->err);
    for (size_t i = 0; i < f->n; i++)
        aw_raw_entry_free(f->batch[i]);
    f->fed += (int64_t)f->n;
    f->n = 0;
    if (rc != AW_OK)
        return rc;
    aw_cli_drop_alert_changes(f->ing);
    f->total.indexed += stats.indexed;
    f->total.duplicates += stats.duplicates;
    f->total.conflicts += stats.conflicts;
    f->total.rejected += stats.rejected;
    aw_cli_progress_update(&f->progress, "replay: %lld entries",
                           (long long)f->fed);
    return AW_OK;
}

/* Takes ownership of entry. Entries outside the window are counted and
 * freed (a bundle may cover more than the window asked for). */
static int feed(feeder *f, aw_raw_entry *entry)
{
    if ((int64_t)entry->id_ms < f->since_ms ||
        (int64_t)entry->id_ms >= f->until_ms) {
        f->outside++;
        aw_raw_entry_free(entry);
        return AW_OK;
    }
    f->batch[f->n] = entry;
    f->items[f->n] = (aw_ingest_item){.entry = entry};
    if (++f->n == BATCH_ENTRIES)
        return flush_batch(f);
    return AW_OK;
}

static void feeder_discard(feeder *f)
{
    for (size_t i = 0; i < f->n; i++)
        aw_raw_entry_free(f->batch[i]);
    f->n = 0;
}

/* ---- from a bundle ------------------------------------------------------- */

static int replay_bundle(feeder *f, aw_bundle *b)
{
    for (;;) {
        aw_raw_entry *entry;
        int rc = aw_cli_bundle_next(b, &entry, &f->err);
        if (rc != AW_OK)
            return rc;
        if (!entry)
            return flush_batch(f);
        if ((rc = feed(f, entry)) != AW_OK)
            return rc;
    }
}

/* ---- from Redis ---------------------------------------------------------- */

/* One stream's page of XRANGE results and where the next page starts. */
typedef struct stream_cursor {
    const char *stream;
    redisReply *page;
    size_t next; /* index into page->element */
    char after[AW_STREAM_ID_TEXT_MAX +
               1]; /* exclusive start of the next page, "(ms-seq" */
    bool done;
    aw_stream_id head;
} stream_cursor;

static int fetch_page(redisContext *c, stream_cursor *s, const char *end,
                      aw_error *err)
{
    freeReplyObject(s->page);
    s->page = redisCommand(c, "XRANGE %s %s %s COUNT %d", s->stream, s->after,
                           end, XRANGE_COUNT);
    s->next = 0;
    if (!s->page)
        return aw_error_set(err, AW_ERR_IO, "Redis XRANGE %s: %s", s->stream,
                            c->errstr);
    if (s->page->type != REDIS_REPLY_ARRAY)
        return aw_error_set(err, AW_ERR_IO, "Redis XRANGE %s: %s", s->stream,
                            s->page->type == REDIS_REPLY_ERROR
                                ? s->page->str
                                : "unexpected reply");
    if (s->page->elements == 0)
        s->done = true;
    return AW_OK;
}

/* Checks the shape [id, [field, value, ...]] and reads the id. */
static int head_of(stream_cursor *s, aw_error *err)
{
    const redisReply *e = s->page->element[s->next];
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING ||
        aw_stream_id_from_text(e->element[0]->str, e->element[0]->len,
                               &s->head) != AW_OK)
        return aw_error_set(err, AW_ERR_IO, "Redis XRANGE %s: malformed entry",
                            s->stream);
    return AW_OK;
}

/* Feeds the head entry of s (a copy) and moves the cursor on, fetching the
 * next page when this one is used up. */
static int pop_head(redisContext *c, stream_cursor *s, const char *end,
                    feeder *f)
{
    const redisReply *e = s->page->element[s->next];
    aw_raw_entry *entry;
    int rc = aw_redis_entry_copy(s->stream, e->element[0], e->element[1],
                                 &f->scratch, &f->scratch_cap, &entry, &f->err);
    if (rc == AW_OK)
        rc = feed(f, entry);
    if (rc != AW_OK)
        return rc;
    snprintf(s->after, sizeof s->after, "(%.*s", (int)e->element[0]->len,
             e->element[0]->str);
    if (++s->next == s->page->elements) {
        if (s->page->elements < XRANGE_COUNT)
            s->done = true;
        else if ((rc = fetch_page(c, s, end, &f->err)) != AW_OK)
            return rc;
    }
    return s->done ? AW_OK : head_of(s, &f->err);
}

static int replay_redis(feeder *f, redisContext *c,
                        const aw_stream_names *names)
{
    stream_cursor cur[AW_ROLE_COUNT] = {0};
    size_t ncur = 0;
    char end[32];
    int rc = AW_OK;

    snprintf(end, sizeof end, "%lld", (long long)f->until_ms - 1);
    for (int r = 0; r < AW_ROLE_COUNT; r++) {
        bool dup = false;
        for (size_t i = 0; i < ncur; i++)
            dup |= strcmp(cur[i].stream, names->of[r]) == 0;
        if (dup)
            continue;
        stream_cursor *s = &cur[ncur++];
        s->stream = names->of[r];
        snprintf(s->after, sizeof s->after, "%lld", (long long)f->since_ms);
        if ((rc = fetch_page(c, s, end, &f->err)) == AW_OK && !s->done)
            rc = head_of(s, &f->err);
        if (rc != AW_OK)
            break;
    }
    /* Merge: always take the stream whose head has the smallest id. */
    while (rc == AW_OK) {
        stream_cursor *min = NULL;
        for (size_t i = 0; i < ncur; i++) {
            stream_cursor *s = &cur[i];
            if (s->done)
                continue;
            if (!min || aw_stream_id_cmp(s->head, min->head) < 0)
                min = s;
        }
        if (!min)
            break;
        rc = pop_head(c, min, end, f);
    }
    if (rc == AW_OK)
        rc = flush_batch(f);
    for (size_t i = 0; i < ncur; i++)
        freeReplyObject(cur[i].page);
    return rc;
}

/* ---- the command --------------------------------------------------------- */

static void remove_index(const char *path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
        size_t n = strlen(path) + strlen(suffixes[i]) + 1;
        char *p = malloc(n);
        if (!p)
            return;
        snprintf(p, n, "%s%s", path, suffixes[i]);
        unlink(p);
        free(p);
    }
}

static int open_source(const replay_args *a, aw_bundle **bundle,
                       redisContext **redis, feeder *f)
{
    if (a->bundle) {
        if (aw_cli_bundle_open(a->bundle, bundle, &f->err) != AW_OK)
            return AW_EXIT_FAILURE;
        const aw_bundle_info *info = aw_cli_bundle_info(*bundle);
        f->since_ms =
            a->has_since ? aw_cli_ns_to_ms_ceil(a->since_ns) : info->since_ms;
        f->until_ms =
            a->has_until ? aw_cli_ns_to_ms_ceil(a->until_ns) : info->until_ms;
        return 0;
    }
    f->since_ms = aw_cli_ns_to_ms_ceil(a->since_ns);
    f->until_ms = aw_cli_ns_to_ms_ceil(a->until_ns);
    if (aw_redis_connect(a->redis_url, a->password_file, REDIS_TIMEOUT_MS,
                         redis, &f->err) != AW_OK)
        return AW_EXIT_FAILURE;
    return 0;
}

static int run_replay(const aw_cli_common *common, replay_args *a, feeder *f)
{
    aw_ingest_options opts = {.db_path = common->db,
                              .store_flags = AW_STORE_SYNC_NORMAL,
                              .detectors = &a->detectors};
    aw_bundle *bundle = NULL;
    redisContext *redis = NULL;
    size_t nalerts = 0;
    int rc;

    for (int r = 0; r < AW_ROLE_COUNT; r++)
        opts.streams[r] = a->names.of[r];
    if (aw_cli_load_keys(a->audit_key_file, a->streams_key_file,
                         &opts.audit_key, &opts.streams_key,
                         &f->err) != AW_OK ||
        aw_secret_load_hmac_key(a->calls_key_file, NULL, &opts.calls_key,
                                &f->err) != AW_OK) {
        rc = aw_cli_usage_error(&command, "%s", f->err.msg);
        goto out;
    }
    if ((rc = open_source(a, &bundle, &redis, f)) != 0)
        goto fail;
    if (f->since_ms >= f->until_ms) {
        rc = aw_cli_usage_error(&command, "--since must be before --until");
        goto out;
    }
    if (aw_ingest_open(&opts, &f->ing, &f->err) != AW_OK) {
        rc = AW_EXIT_FAILURE;
        goto fail;
    }
    rc = bundle ? replay_bundle(f, bundle) : replay_redis(f, redis, &a->names);
    feeder_discard(f);
    aw_cli_progress_end(&f->progress);
    /* Every grace window inside the window has run out by its end. */
    if (rc == AW_OK)
        rc = aw_ingest_batch(f->ing, NULL, 0, NULL, 0,
                             aw_ms_to_ns_signed(f->until_ms), NULL, &f->err);
    if (rc == AW_OK) {
        aw_alert_filter all = {0};
        aw_cli_drop_alert_changes(f->ing);
        rc = aw_cli_print_alerts(aw_ingest_store(f->ing), &all, common->format,
                                 &nalerts, &f->err);
    }
    if (rc != AW_OK) {
        rc = AW_EXIT_FAILURE;
        goto fail;
    }
    fprintf(
        stderr,
        "auditwatch replay: %lld entries replayed into %s (%zu indexed, "
        "%zu duplicates, %zu conflicts, %zu rejected, %lld outside the window); "
        "%zu alerts\n",
        (long long)f->fed, common->db, f->total.indexed, f->total.duplicates,
        f->total.conflicts, f->total.rejected, (long long)f->outside, nalerts);
    rc = AW_EXIT_OK;
    goto out;
fail:
    aw_cli_fail(&command, rc, "%s", f->err.msg);
    if (f->ing) {
        aw_ingest_close(f->ing);
        f->ing = NULL;
    }
    remove_index(common->db);
out:
    aw_ingest_close(f->ing);
    aw_cli_bundle_close(bundle);
    if (redis)
        redisFree(redis);
    aw_hmac_key_free(opts.audit_key);
    aw_hmac_key_free(opts.streams_key);
    aw_hmac_key_free(opts.calls_key);
    return rc;
}

int aw_cmd_replay(int argc, char **argv)
{
    replay_args a = {.now_ns = aw_cli_now_ns()};
    aw_cli_common common;
    feeder *f;
    int first, rc;

    aw_detector_config_init(&a.detectors);
    rc = aw_cli_parse(&command, argc, argv, &common, on_option, &a, &first);
    if (rc != AW_CLI_PROCEED)
        return rc;
    if ((rc = aw_cli_expect_args(&command, argc, argv, first, 0, "")) !=
            AW_CLI_PROCEED ||
        (rc = aw_cli_resolve_streams(&command, a.streams, &a.names)) != 0)
        return rc;
    if (!a.bundle == !a.redis_url)
        return aw_cli_usage_error(
            &command, "give exactly one of --bundle FILE, --from-redis URL");
    if (a.redis_url && (!a.has_since || !a.has_until))
        return aw_cli_usage_error(&command,
                                  "--from-redis needs --since and --until");
    if (!common.db_given)
        return aw_cli_usage_error(&command,
                                  "--db NEW_PATH is required (a fresh index)");
    if (access(common.db, F_OK) == 0)
        return aw_cli_usage_error(
            &command, "%s exists: replay builds a fresh index", common.db);
    if (!(f = calloc(1, sizeof *f)))
        return aw_cli_fail(&command, AW_EXIT_FAILURE, "out of memory");
    f->progress.enabled = common.progress;
    rc = run_replay(&common, &a, f);
    free(f->scratch);
    free(f);
    return rc;
}
