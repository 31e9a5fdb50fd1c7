/* cmd_import_calls.c -- `auditwatch import-calls`: calls seen by resource
 * servers and proxies (NDJSON access logs), indexed as observed calls so
 * the call_without_audit detector can hold them against Caracal's audit.
 *
 * Each line becomes one raw entry of stream "import:<absolute path>" (the
 * stream `run --calls-log` gives the same file) with one field, "line",
 * holding the line's bytes, and goes through the same ingest path as
 * entries from Redis: stored verbatim, decoded (with the field names given
 * here), detected, or rejected with its reason. The entry id is
 * "<ms>-<line number>", ms being the line's own time (or, without one, the
 * file's modification time), so importing the same file again finds every
 * line already stored and adds nothing, and two files of one name in two
 * directories stay apart. stdin has no name: its stream is "import:-" and
 * a line's sequence is a digest of its number and bytes, so the same data
 * piped twice is stored once, and other data is never taken for it. A line that cannot be decoded is
 * not skipped: it is stored as rejected, counted by reason in the summary,
 * and the exit status says that some were.
 *
 * With --redis the lines go to the calls stream instead (auditwatch.calls,
 * or --stream calls=NAME), for the daemon that owns the index: it indexes
 * them, judges them on its clock and tells its sinks. Each call becomes a
 * flat entry of the calls stream's fields (signed with `_sig` under the
 * calls key when one is given); a line that cannot be read is published
 * as its bytes in a field `line`, which the daemon records as rejected,
 * raw, so nothing is dropped there either. Publishing is not idempotent:
 * the stream has no memory of a file.
 */
#include "cli/cli.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char usage[] =
    "usage: auditwatch import-calls FILE|- [--request-id-field NAME]\n"
    "                               [--status-field NAME] [--time-field NAME]\n"
    "                               [--db PATH | --redis URL] [--progress]\n\n"
    "Indexes every NDJSON line of FILE (- for stdin) as an observed call:\n"
    "a request id, an HTTP status and a time (RFC 3339 or epoch seconds;\n"
    "without one, the file's modification time). A file's lines are the\n"
    "stream import:<absolute path>, as `run --calls-log` names it:\n"
    "re-importing a file adds nothing new, and two files of one name stay\n"
    "apart. Lines piped on stdin are told apart by their number and bytes.\n"
    "Lines that cannot be read are stored as rejected, with the reason, and\n"
    "counted in the summary on stderr. A call is judged once the index's\n"
    "audit reaches its time plus the grace; the summary counts the alerts\n"
    "raised and the calls the index's audit does not reach yet.\n\n"
    "With --redis, the calls are published to the calls stream instead, for\n"
    "a running daemon to index, judge and alert on (each run publishes them\n"
    "anew); a line that cannot be read is published as a field `line`.\n\n";

static const char usage_after_call_fields[] =
    "  --redis URL              publish to the calls stream of this Redis\n"
    "                           (redis://host:port[/db] or host:port)\n"
    "  --redis-password-file F  password for AUTH (else $REDIS_PASSWORD_FILE)\n"
    "  --stream calls=NAME      the calls stream (default auditwatch.calls)\n"
    "  --calls-hmac-key-file F  sign each entry (`_sig`) with this hex key, as\n"
    "                           `run --calls-hmac-key-file` requires\n"
    "  --progress               progress on stderr even when not a terminal\n"
    "  --db PATH                the index (default $AUDITWATCH_DB or ./auditwatch.db)\n\n"
    "Exit status: 0 every line indexed (or already there) or published, 1\n"
    "some lines rejected (now or by an earlier import), 2 bad usage, 3\n"
    "failure.\n";

enum {
    OPT_REDIS = AW_CLI_OPT_BASE,
    OPT_PASSWORD_FILE,
    OPT_STREAM,
    OPT_CALLS_KEY_FILE,
};

static const struct option options[] = {
    {"redis", required_argument, NULL, OPT_REDIS},
    {"redis-password-file", required_argument, NULL, OPT_PASSWORD_FILE},
    {"stream", required_argument, NULL, OPT_STREAM},
    {"calls-hmac-key-file", required_argument, NULL, OPT_CALLS_KEY_FILE},
    {0},
};

static const aw_cli_command command = {
    .name = "import-calls",
    .usage = usage,
    .common = AW_CLI_WANT_DB | AW_CLI_WANT_PROGRESS | AW_CLI_WANT_CALL_FIELDS,
    .call_fields_column = 27, /* that of --progress and --db */
    .usage_after_call_fields = usage_after_call_fields,
    .options = options,
};

#define BATCH_LINES 2000
#define PIPELINE    256 /* XADDs sent before their replies are read */

typedef struct import_args {
    const char *redis_url, *password_file, *calls_key_file;
    const char *streams[AW_ROLE_COUNT];
} import_args;

static int on_option(int opt, const char *arg, void *ud)
{
    import_args *a = ud;
    switch (opt) {
    case OPT_REDIS:
        a->redis_url = arg;
        return aw_cli_redis_option(&command, "--redis", arg);
    case OPT_PASSWORD_FILE: a->password_file = arg; return 0;
    case OPT_STREAM: return aw_cli_stream_option(&command, arg, a->streams);
    case OPT_CALLS_KEY_FILE: a->calls_key_file = arg; return 0;
    }
    return AW_EXIT_USAGE;
}

/* --redis: where the calls go instead of the index. */
typedef struct publisher {
    redisContext *redis;
    const char *stream; /* borrowed from names */
    aw_stream_names names;
    aw_hmac_key *key; /* NULL: unsigned */
    aw_buf canonical;
    size_t in_flight;
    int64_t published, unreadable;
    size_t unreadable_by_reason[AW_REJECT_REASON_COUNT];
} publisher;

typedef struct importer {
    aw_ingest *ing;
    publisher *pub; /* NULL: into the index */
    const aw_call_fields *names;
    char stream[AW_INGEST_IMPORT_STREAM_MAX]; /* "import:<absolute path>" */
    bool from_stdin;
    int64_t mtime_ns;
    aw_raw_entry *batch[BATCH_LINES];
    aw_ingest_item items[BATCH_LINES];
    size_t n;
    int64_t lines, blank;
    aw_ingest_stats total;
    size_t alerts_raised;
    int64_t grace_ns; /* the detectors' missing-evidence grace */
    aw_cli_progress progress;
    aw_error err;
} importer;

static void count_raised(const aw_alert *alert, aw_alert_change change,
                         void *ud)
{
    (void)alert;
    if (change == AW_ALERT_RAISED || change == AW_ALERT_REOPENED)
        ((importer *)ud)->alerts_raised++;
}

static int flush_batch(importer *im)
{
    aw_ingest_stats s = {0};
    int rc = im->n ? aw_ingest_batch(im->ing, im->items, im->n, NULL, 0, 0, &s,
                                     &im->err)
                   : AW_OK;
    for (size_t i = 0; i < im->n; i++)
        aw_raw_entry_free(im->batch[i]);
    im->n = 0;
    if (rc != AW_OK)
        return rc;
    aw_ingest_drain_alerts(im->ing, count_raised, im);
    im->total.indexed += s.indexed;
    im->total.duplicates += s.duplicates;
    im->total.duplicates_rejected += s.duplicates_rejected;
    im->total.conflicts += s.conflicts;
    im->total.rejected += s.rejected;
    for (int r = 0; r < AW_REJECT_REASON_COUNT; r++)
        im->total.rejected_by_reason[r] += s.rejected_by_reason[r];
    return AW_OK;
}

static bool is_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return false;
    return true;
}

/* A line of stdin is told by its number and bytes (see the top). */
static int64_t stdin_sequence(int64_t number, const char *line, size_t len)
{
    unsigned char digest[32];
    uint64_t x;
    aw_sha256(line, len, digest);
    memcpy(&x, digest, sizeof x);
    return (int64_t)((x ^ aw_mix64((uint64_t)number)) & INT64_MAX);
}

/* ---- Publishing (--redis) ------------------------------------------------ */

static int read_replies(importer *im, size_t keep)
{
    publisher *pub = im->pub;
    while (pub->in_flight > keep) {
        redisReply *r = NULL;
        if (redisGetReply(pub->redis, (void **)&r) != REDIS_OK || !r)
            return aw_error_set(&im->err, AW_ERR_IO, "Redis: %s",
                                pub->redis->errstr);
        bool failed = r->type == REDIS_REPLY_ERROR;
        if (failed)
            aw_error_set(&im->err, AW_ERR_IO, "Redis XADD %s: %s", pub->stream,
                         r->str);
        freeReplyObject(r);
        pub->in_flight--;
        if (failed)
            return AW_ERR_IO;
    }
    return AW_OK;
}

/* XADD stream * fields..., with `_sig` over them when a key is given. */
static int publish_fields(importer *im, aw_field *f, size_t n)
{
    publisher *pub = im->pub;
    char sig[65];
    if (pub->key) {
        aw_raw_entry *raw = NULL;
        unsigned char mac[32];
        pub->canonical.len = 0;
        int rc = aw_raw_entry_new((aw_bytes){pub->stream, strlen(pub->stream)},
                                  (aw_bytes){"0-0", 3}, f, n, &raw, &im->err);
        if (rc == AW_OK)
            rc = aw_stream_canonical(raw, &pub->canonical, &im->err);
        if (rc == AW_OK)
            rc = aw_hmac_compute(pub->key, pub->canonical.ptr,
                                 pub->canonical.len, mac);
        aw_raw_entry_free(raw);
        if (rc != AW_OK)
            return rc;
        aw_hex(mac, sizeof mac, sig);
        f[n++] = (aw_field){{"_sig", 4}, {sig, 64}};
    }
    const char *argv[3 + 2 * 8];
    size_t lens[3 + 2 * 8], argc = 0;
    argv[argc] = "XADD", lens[argc++] = 4;
    argv[argc] = pub->stream, lens[argc++] = strlen(pub->stream);
    argv[argc] = "*", lens[argc++] = 1;
    for (size_t i = 0; i < n; i++) {
        argv[argc] = f[i].name.ptr, lens[argc++] = f[i].name.len;
        argv[argc] = f[i].value.ptr, lens[argc++] = f[i].value.len;
    }
    if (redisAppendCommandArgv(pub->redis, (int)argc, argv, lens) != REDIS_OK)
        return aw_error_set(&im->err, AW_ERR_NOMEM, "out of memory");
    pub->in_flight++;
    return pub->in_flight >= PIPELINE ? read_replies(im, 0) : AW_OK;
}

#define FIELD(name, ptr, len)                                                  \
    ((aw_field){{(name), strlen(name)}, {(ptr), (len)}})

/* A line as the calls stream's entry: its call, or its bytes as `line`. */
static int publish_line(importer *im, const char *line, size_t len)
{
    publisher *pub = im->pub;
    aw_observed_call *call = NULL;
    aw_error why = {0};
    aw_field f[8];
    size_t n = 0;
    char status[8], when[40];
    int rc;
    if (aw_event_decode_call_json(line, len, im->names, im->mtime_ns, &call,
                                  &why) != AW_OK) {
        pub->unreadable++;
        if (why.reason > 0 && why.reason < AW_REJECT_REASON_COUNT)
            pub->unreadable_by_reason[why.reason]++;
        f[n++] = FIELD("line", line, len);
        return publish_fields(im, f, n);
    }
    snprintf(status, sizeof status, "%d", call->status);
    f[n++] = FIELD("request_id", call->request_id, strlen(call->request_id));
    f[n++] = FIELD("status", status, strlen(status));
    if (call->time_is_logged) {
        aw_time_format(call->occurred_at_ns, when, sizeof when);
        f[n++] = FIELD("occurred_at", when, strlen(when));
    }
    if (call->zone_id)
        f[n++] = FIELD("zone_id", call->zone_id, strlen(call->zone_id));
    if (call->resource)
        f[n++] = FIELD("resource", call->resource, strlen(call->resource));
    if (call->source)
        f[n++] = FIELD("source", call->source, strlen(call->source));
    if ((rc = publish_fields(im, f, n)) == AW_OK)
        pub->published++;
    aw_observed_call_free(call);
    return rc;
}

static int add_line(importer *im, const char *line, size_t len)
{
    if (im->pub)
        return publish_line(im, line, len);
    int64_t seq =
        im->from_stdin ? stdin_sequence(im->lines, line, len) : im->lines;
    int rc =
        aw_ingest_import_entry(im->stream, line, len, im->names, im->mtime_ns,
                               seq, &im->batch[im->n], &im->err);
    if (rc != AW_OK)
        return rc;
    im->items[im->n] = (aw_ingest_item){.entry = im->batch[im->n]};
    if (++im->n == BATCH_LINES)
        return flush_batch(im);
    return AW_OK;
}

static int import_stream(importer *im, FILE *in, int64_t size)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int rc = AW_OK;

    while (rc == AW_OK && (got = getline(&line, &cap, in)) >= 0) {
        size_t len = (size_t)got;
        im->lines++;
        if (len && line[len - 1] == '\n')
            len--;
        if (len && line[len - 1] == '\r')
            len--;
        if (is_blank(line, len)) {
            im->blank++;
            continue;
        }
        rc = add_line(im, line, len);
        if (size > 0)
            aw_cli_progress_update(
                &im->progress, "import-calls: %lld lines (%d%%)",
                (long long)im->lines,
                (int)(100.0 * (double)ftell(in) / (double)size));
        else
            aw_cli_progress_update(&im->progress, "import-calls: %lld lines",
                                   (long long)im->lines);
    }
    free(line);
    if (rc == AW_OK && ferror(in))
        rc = aw_error_set(&im->err, AW_ERR_IO, "read error: %s",
                          strerror(errno));
    if (rc == AW_OK)
        rc = im->pub ? read_replies(im, 0) : flush_batch(im);
    for (size_t i = 0; i < im->n; i++)
        aw_raw_entry_free(im->batch[i]);
    im->n = 0;
    aw_cli_progress_end(&im->progress);
    return rc;
}

/* " (not_json: 1, missing_field: 2)" when any. */
static void print_reasons(const size_t *by_reason)
{
    const char *sep = " (";
    for (int r = 0; r < AW_REJECT_REASON_COUNT; r++)
        if (by_reason[r]) {
            fprintf(stderr, "%s%s: %zu", sep,
                    aw_reject_reason_name((aw_reject_reason)r), by_reason[r]);
            sep = ", ";
        }
    if (*sep == ',')
        fputc(')', stderr);
}

static void print_published(const importer *im, const char *path)
{
    const publisher *pub = im->pub;
    fprintf(stderr,
            "auditwatch import-calls: %s: %lld lines, %lld calls published to "
            "%s, %lld unreadable (published as their bytes, for the daemon "
            "to record as rejected)",
            path, (long long)im->lines, (long long)pub->published, pub->stream,
            (long long)pub->unreadable);
    print_reasons(pub->unreadable_by_reason);
    fprintf(stderr, ", %lld blank\n", (long long)im->blank);
}

/* The successful calls of this file still within their grace. Only audit
 * entries move the index's clock (its newest audit entry), and an import
 * brings none, so these wait: a call is judged once the clock passes its
 * time plus the grace. An import's line time is its arrival too. */
typedef struct waiting_calls {
    const char *stream;
    int64_t count;
} waiting_calls;

static int count_waiting(const aw_call_row *row, void *ud)
{
    waiting_calls *w = ud;
    if (aw_status_is_success(row->status) &&
        strcmp(row->stream, w->stream) == 0)
        w->count++;
    return 0;
}

static int print_summary(importer *im, const char *path)
{
    int64_t clock = aw_ingest_clock(im->ing);
    waiting_calls waiting = {.stream = im->stream};
    int64_t since =
        clock > INT64_MIN + im->grace_ns ? clock - im->grace_ns + 1 : INT64_MIN;
    int rc = aw_store_query_calls(aw_ingest_store(im->ing), 0, NULL, since, 0,
                                  count_waiting, &waiting, &im->err);
    if (rc != AW_OK)
        return rc;
    fprintf(stderr,
            "auditwatch import-calls: %s: %lld lines, %zu calls indexed, "
            "%zu already in the index (%zu of them rejected then), %zu "
            "rejected, %lld blank",
            path, (long long)im->lines, im->total.indexed, im->total.duplicates,
            im->total.duplicates_rejected, im->total.rejected,
            (long long)im->blank);
    print_reasons(im->total.rejected_by_reason);
    fprintf(stderr, "; %zu alert%s raised\n", im->alerts_raised,
            im->alerts_raised == 1 ? "" : "s");
    if (waiting.count) {
        char when[40];
        fprintf(stderr,
                "auditwatch import-calls: %lld call%s of %s %s not judged yet: "
                "the index's audit reaches %s, and a call is judged once it "
                "reaches the call's time plus the %lld s grace; `auditwatch "
                "run` on this index judges them as it reads the audit\n",
                (long long)waiting.count, waiting.count == 1 ? "" : "s", path,
                waiting.count == 1 ? "is" : "are",
                clock > 0 ? aw_time_format(clock, when, sizeof when)
                          : "nothing yet",
                (long long)(im->grace_ns / 1000000000));
    }
    return AW_OK;
}

/* Opens path ("-": stdin) and names its stream after the file. */
static int open_input(importer *im, const char *path, FILE **in, int64_t *size)
{
    struct stat st;
    char absolute[PATH_MAX];
    int rc;

    *in = NULL;
    im->from_stdin = strcmp(path, "-") == 0;
    if (im->from_stdin)
        snprintf(im->stream, sizeof im->stream, "%s-", AW_INGEST_IMPORT_PREFIX);
    else if ((rc = aw_ingest_import_path(path, absolute, im->stream,
                                         &im->err)) != AW_OK)
        return rc;
    *in = im->from_stdin ? stdin : fopen(path, "rb");
    if (!*in || fstat(fileno(*in), &st) != 0)
        return aw_error_set(&im->err, AW_ERR_IO, "cannot read %s: %s", path,
                            strerror(errno));
    /* stdin has no stable time of its own: now, so lines without a time
     * are not idempotent there (the summary counts them all the same). */
    im->mtime_ns =
        S_ISREG(st.st_mode)
            ? (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec
            : aw_cli_now_ns();
    *size = S_ISREG(st.st_mode) ? (int64_t)st.st_size : 0;
    return AW_OK;
}

/* --redis: the connection, the calls stream's name and the key. */
static int open_publisher(const import_args *a, publisher *pub, aw_error *err)
{
    int rc = aw_secret_load_hmac_key(a->calls_key_file, NULL, &pub->key, err);
    if (rc == AW_OK)
        rc = aw_redis_connect(a->redis_url, a->password_file, 5000, &pub->redis,
                              err);
    pub->stream = pub->names.of[AW_ROLE_CALLS];
    return rc;
}

static void close_publisher(publisher *pub)
{
    if (pub->redis)
        redisFree(pub->redis);
    aw_hmac_key_free(pub->key);
    aw_buf_free(&pub->canonical);
}

int aw_cmd_import_calls(int argc, char **argv)
{
    aw_cli_common common;
    aw_ingest_options opts = {0};
    aw_detector_config detectors;
    import_args a = {0};
    publisher pub = {0};
    importer *im;
    FILE *in = NULL;
    int64_t size = 0;
    int first, rc;

    rc = aw_cli_parse(&command, argc, argv, &common, on_option, &a, &first);
    if (rc != AW_CLI_PROCEED)
        return rc;
    rc = aw_cli_expect_args(&command, argc, argv, first, 1,
                            "FILE (or - for stdin)");
    if (rc != AW_CLI_PROCEED ||
        (rc = aw_cli_resolve_streams(&command, a.streams, &pub.names)) != 0)
        return rc;
    if (!a.redis_url && a.calls_key_file)
        return aw_cli_usage_error(&command,
                                  "--calls-hmac-key-file signs what --redis "
                                  "publishes; give --redis too");
    if (!(im = calloc(1, sizeof *im)))
        return aw_cli_fail(&command, AW_EXIT_FAILURE, "out of memory");
    im->names = &common.call_fields;
    im->progress.enabled = common.progress;
    im->pub = a.redis_url ? &pub : NULL;
    opts.db_path = common.db;
    opts.call_fields = common.call_fields;
    aw_detector_config_init(&detectors);
    opts.detectors = &detectors;
    im->grace_ns = detectors.grace_missing_ns;

    if ((rc = open_input(im, argv[first], &in, &size)) == AW_OK &&
        (rc = im->pub ? open_publisher(&a, &pub, &im->err)
                      : aw_ingest_open(&opts, &im->ing, &im->err)) == AW_OK)
        rc = import_stream(im, in, size);
    if (rc == AW_OK && im->pub) {
        print_published(im, argv[first]);
        rc = pub.unreadable ? AW_EXIT_NO : AW_EXIT_OK;
    } else if (rc == AW_OK && (rc = print_summary(im, argv[first])) == AW_OK) {
        rc = im->total.rejected || im->total.duplicates_rejected ? AW_EXIT_NO
                                                                 : AW_EXIT_OK;
    } else if (aw_index_error_advice(rc)) {
        rc = aw_cli_fail(&command, AW_EXIT_FAILURE,
                         "index %s cannot be used: %s. To go on: %s", common.db,
                         im->err.msg, aw_index_error_advice(rc));
    } else {
        rc = aw_cli_fail(&command, AW_EXIT_FAILURE, "%s", im->err.msg);
    }
    if (in && in != stdin)
        fclose(in);
    aw_ingest_close(im->ing);
    close_publisher(&pub);
    free(im);
    return rc;
}
