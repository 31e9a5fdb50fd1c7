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
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char usage[] =
    "usage: auditwatch import-calls FILE|- [--request-id-field NAME]\n"
    "                               [--status-field NAME] [--time-field NAME]\n"
    "                               [--db PATH] [--progress]\n\n"
    "Indexes every NDJSON line of FILE (- for stdin) as an observed call:\n"
    "a request id, an HTTP status and a time (RFC 3339 or epoch seconds;\n"
    "without one, the file's modification time). A file's lines are the\n"
    "stream import:<absolute path>, as `run --calls-log` names it:\n"
    "re-importing a file adds nothing new, and two files of one name stay\n"
    "apart. Lines piped on stdin are told apart by their number and bytes.\n"
    "Lines that cannot be read are stored as rejected, with the reason, and\n"
    "counted in the summary on stderr.\n\n";

static const char usage_after_call_fields[] =
    "  --progress               progress on stderr even when not a terminal\n"
    "  --db PATH                the index (default $AUDITWATCH_DB or ./auditwatch.db)\n\n"
    "Exit status: 0 every line indexed (or already there), 1 some lines\n"
    "rejected, 2 bad usage, 3 failure.\n";

static const aw_cli_command command = {
    .name = "import-calls",
    .usage = usage,
    .common = AW_CLI_WANT_DB | AW_CLI_WANT_PROGRESS | AW_CLI_WANT_CALL_FIELDS,
    .call_fields_column = 27, /* that of --progress and --db */
    .usage_after_call_fields = usage_after_call_fields,
};

#define BATCH_LINES 2000

typedef struct importer {
    aw_ingest *ing;
    const aw_call_fields *names;
    char stream[AW_INGEST_IMPORT_STREAM_MAX]; /* "import:<absolute path>" */
    bool from_stdin;
    int64_t mtime_ns;
    aw_raw_entry *batch[BATCH_LINES];
    aw_ingest_item items[BATCH_LINES];
    size_t n;
    int64_t lines, blank;
    aw_ingest_stats total;
    aw_cli_progress progress;
    aw_error err;
} importer;

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
    aw_cli_drop_alert_changes(im->ing);
    im->total.indexed += s.indexed;
    im->total.duplicates += s.duplicates;
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

static int add_line(importer *im, const char *line, size_t len)
{
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
        rc = flush_batch(im);
    for (size_t i = 0; i < im->n; i++)
        aw_raw_entry_free(im->batch[i]);
    im->n = 0;
    aw_cli_progress_end(&im->progress);
    return rc;
}

static void print_summary(const importer *im, const char *path)
{
    fprintf(stderr,
            "auditwatch import-calls: %s: %lld lines, %zu calls indexed, "
            "%zu already in the index, %zu rejected, %lld blank",
            path, (long long)im->lines, im->total.indexed, im->total.duplicates,
            im->total.rejected, (long long)im->blank);
    if (im->total.rejected) {
        const char *sep = " (";
        for (int r = 0; r < AW_REJECT_REASON_COUNT; r++)
            if (im->total.rejected_by_reason[r]) {
                fprintf(stderr, "%s%s: %zu", sep,
                        aw_reject_reason_name((aw_reject_reason)r),
                        im->total.rejected_by_reason[r]);
                sep = ", ";
            }
        fputc(')', stderr);
    }
    fputc('\n', stderr);
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

int aw_cmd_import_calls(int argc, char **argv)
{
    aw_cli_common common;
    aw_ingest_options opts = {0};
    importer *im;
    FILE *in = NULL;
    int64_t size = 0;
    int first, rc;

    rc = aw_cli_parse(&command, argc, argv, &common, NULL, NULL, &first);
    if (rc != AW_CLI_PROCEED)
        return rc;
    rc = aw_cli_expect_args(&command, argc, argv, first, 1,
                            "FILE (or - for stdin)");
    if (rc != AW_CLI_PROCEED)
        return rc;
    if (!(im = calloc(1, sizeof *im)))
        return aw_cli_fail(&command, AW_EXIT_FAILURE, "out of memory");
    im->names = &common.call_fields;
    im->progress.enabled = common.progress;
    opts.db_path = common.db;
    opts.call_fields = common.call_fields;

    if ((rc = open_input(im, argv[first], &in, &size)) == AW_OK &&
        (rc = aw_ingest_open(&opts, &im->ing, &im->err)) == AW_OK)
        rc = import_stream(im, in, size);
    if (rc == AW_OK) {
        print_summary(im, argv[first]);
        rc = im->total.rejected ? AW_EXIT_NO : AW_EXIT_OK;
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
    free(im);
    return rc;
}
