/* cmd_export.c -- `auditwatch export`: a time window of evidence, as the
 * streams delivered it, in one file that can be handed over, archived and
 * replayed (schema/bundle-format.md).
 *
 * The window is on entry ids (Redis' own clock, the time an entry was
 * published), not on occurred_at, so a bundle holds exactly the entries a
 * replay of the same window from Redis would read. Entries are written in
 * entry-id order (id_ms, id_seq, stream), the order a replay consumes them,
 * while the index keeps them in ingest order; the header, which must come
 * first, carries the SHA-256 of the body. Hence three steps: copy the
 * window's raw entries to an unlinked scratch file while noting each one's
 * id and place, sort those notes, then hash and write the body in sorted
 * order behind the header. The bundle is written to a temporary file beside
 * the target, synced and renamed, so FILE is either the old file or a whole
 * new bundle, never half of one.
 *
 * A bundle is handed over as evidence, so the index's hash chain is walked
 * first, in the same read snapshot as the copy: when it breaks, the index
 * holds entries that are not what arrived, and nothing is written unless
 * --unverified says to (the break is then said on stderr).
 */
#include "cli/cli.h"

#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const char usage[] =
    "usage: auditwatch export --since TIME [--until TIME] -o FILE\n"
    "                         [--unverified] [--db PATH] [--progress]\n\n"
    "Writes every raw entry whose stream entry id falls in [--since, --until)\n"
    "to a msgpack evidence bundle: a header (window, source index, counts,\n"
    "SHA-256 of the body) followed by the entries in entry-id order. The\n"
    "index's hash chain is checked first; when it breaks, nothing is written.\n\n"
    "  --since TIME     start of the window (RFC 3339, now, -30s, -15m, -2h, -7d)\n"
    "  --until TIME     end of the window, excluded (default now)\n"
    "  -o, --output F   the bundle to write (replaced atomically); - for stdout\n"
    "                   (not a terminal)\n"
    "  --unverified     write it even when the chain breaks (said on stderr)\n"
    "  --progress       progress on stderr even when it is not a terminal\n"
    "  --db PATH        the index (default $AUDITWATCH_DB or ./auditwatch.db)\n\n"
    "Exit status: 0 written, 1 the chain breaks (nothing written without\n"
    "--unverified), 2 bad usage, 3 failure.\n";

enum {
    OPT_SINCE = AW_CLI_OPT_BASE,
    OPT_UNTIL,
    OPT_UNVERIFIED,
    OPT_OUTPUT = 'o'
};

static const struct option options[] = {
    {"since", required_argument, NULL, OPT_SINCE},
    {"until", required_argument, NULL, OPT_UNTIL},
    {"unverified", no_argument, NULL, OPT_UNVERIFIED},
    {"output", required_argument, NULL, OPT_OUTPUT},
    {0},
};

static const aw_cli_command command = {
    .name = "export",
    .usage = usage,
    .common = AW_CLI_WANT_DB | AW_CLI_WANT_PROGRESS,
    .shortopts = "o:",
    .options = options,
};

typedef struct export_args {
    bool has_since, has_until, unverified;
    int64_t since_ns, until_ns, now_ns;
    const char *output;
} export_args;

static int on_option(int opt, const char *arg, void *ud)
{
    export_args *a = ud;
    switch (opt) {
    case OPT_SINCE:
        a->has_since = true;
        return aw_cli_time_option(&command, "--since", arg, a->now_ns,
                                  &a->since_ns);
    case OPT_UNTIL:
        a->has_until = true;
        return aw_cli_time_option(&command, "--until", arg, a->now_ns,
                                  &a->until_ns);
    case OPT_UNVERIFIED: a->unverified = true; return 0;
    case OPT_OUTPUT:
        if (!*arg)
            return aw_cli_usage_error(&command, "--output: empty path");
        a->output = arg;
        return 0;
    }
    return AW_EXIT_USAGE;
}

/* Where one entry sits in the scratch file, and where it sorts. */
typedef struct note {
    uint64_t id_ms, id_seq;
    uint32_t stream; /* index into streams, then its rank by name */
    uint32_t len;
    uint64_t offset;
} note;

typedef struct export_state {
    FILE *scratch;
    uint64_t scratch_len;
    note *notes;
    size_t nnotes, cap;
    aw_bundle_stream_count *streams;
    size_t nstreams;
    int64_t truncated;
    aw_chain_report chain;
    aw_cli_progress progress;
    aw_error err;
} export_state;

static int stream_index(export_state *x, const char *name, uint32_t *out)
{
    for (size_t i = 0; i < x->nstreams; i++)
        if (strcmp(x->streams[i].stream, name) == 0) {
            *out = (uint32_t)i;
            return AW_OK;
        }
    aw_bundle_stream_count *grown =
        realloc(x->streams, (x->nstreams + 1) * sizeof *grown);
    char *copy = strdup(name);
    if (grown)
        x->streams = grown;
    if (!grown || !copy) {
        free(copy);
        return aw_error_set(&x->err, AW_ERR_NOMEM, "out of memory");
    }
    x->streams[x->nstreams] = (aw_bundle_stream_count){copy, 0};
    *out = (uint32_t)x->nstreams++;
    return AW_OK;
}

static int collect_entry(const aw_entry_row *row, void *ud)
{
    export_state *x = ud;
    note n = {.len = (uint32_t)row->raw_len, .offset = x->scratch_len};
    int rc;

    if (aw_stream_id_parse(row->entry_id, strlen(row->entry_id), &n.id_ms,
                           &n.id_seq) != AW_OK)
        return aw_error_set(&x->err, AW_ERR,
                            "row %lld has a malformed entry id",
                            (long long)row->rowid);
    if ((rc = stream_index(x, row->stream ? row->stream : "", &n.stream)) !=
        AW_OK)
        return rc;
    if (x->nnotes == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 4096;
        note *grown = realloc(x->notes, cap * sizeof *grown);
        if (!grown)
            return aw_error_set(&x->err, AW_ERR_NOMEM, "out of memory");
        x->notes = grown;
        x->cap = cap;
    }
    if (fwrite(row->raw, 1, row->raw_len, x->scratch) != row->raw_len)
        return aw_error_set(&x->err, AW_ERR_IO,
                            "cannot write the scratch file: %s",
                            strerror(errno));
    x->notes[x->nnotes++] = n;
    x->scratch_len += row->raw_len;
    x->streams[n.stream].entries++;
    x->truncated += row->truncated;
    aw_cli_progress_update(&x->progress, "export: %zu entries read", x->nnotes);
    return 0;
}

static int by_entry_id(const void *pa, const void *pb)
{
    const note *a = pa, *b = pb;
    int by_id = aw_stream_id_cmp((aw_stream_id){a->id_ms, a->id_seq},
                                 (aw_stream_id){b->id_ms, b->id_seq});
    if (by_id)
        return by_id;
    return a->stream < b->stream ? -1 : a->stream > b->stream;
}

static int by_stream_name(const void *pa, const void *pb)
{
    return strcmp(((const aw_bundle_stream_count *)pa)->stream,
                  ((const aw_bundle_stream_count *)pb)->stream);
}

/* Sorts the streams by name and renumbers the notes by that rank, so that
 * entries with the same id in two streams come in a fixed order. */
static int rank_streams(export_state *x)
{
    if (x->nnotes == 0)
        return AW_OK;
    uint32_t *rank = calloc(x->nstreams, sizeof *rank);
    if (!rank)
        return aw_error_set(&x->err, AW_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < x->nstreams; i++) {
        rank[i] = 0;
        for (size_t j = 0; j < x->nstreams; j++)
            rank[i] += strcmp(x->streams[j].stream, x->streams[i].stream) < 0;
    }
    for (size_t i = 0; i < x->nnotes; i++)
        x->notes[i].stream = rank[x->notes[i].stream];
    free(rank);
    qsort(x->streams, x->nstreams, sizeof *x->streams, by_stream_name);
    qsort(x->notes, x->nnotes, sizeof *x->notes, by_entry_id);
    return AW_OK;
}

static int body_sha256(const export_state *x, const unsigned char *scratch,
                       unsigned char sha[32], aw_error *err)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned len = 32;
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
    for (size_t i = 0; ok && i < x->nnotes; i++)
        ok = EVP_DigestUpdate(ctx, scratch + x->notes[i].offset,
                              x->notes[i].len) == 1;
    ok = ok && EVP_DigestFinal_ex(ctx, sha, &len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok ? AW_OK : aw_error_set(err, AW_ERR, "SHA-256 failed");
}

/* Writes header + sorted body to a temporary file beside path, then
 * renames it over path. */
/* The header, then the body in entry-id order. */
static int write_entries(const export_state *x, const unsigned char *scratch,
                         const aw_bundle_info *info, FILE *fp, const char *name,
                         aw_error *err)
{
    int rc = aw_cli_bundle_write_header(fp, info, err);
    for (size_t i = 0; rc == AW_OK && i < x->nnotes; i++)
        if (fwrite(scratch + x->notes[i].offset, 1, x->notes[i].len, fp) !=
            x->notes[i].len)
            rc = aw_error_set(err, AW_ERR_IO, "cannot write %s: %s", name,
                              strerror(errno));
    if (rc == AW_OK && fflush(fp) != 0)
        rc = aw_error_set(err, AW_ERR_IO, "cannot write %s: %s", name,
                          strerror(errno));
    return rc;
}

static int write_bundle(const export_state *x, const unsigned char *scratch,
                        const aw_bundle_info *info, const char *path,
                        aw_error *err)
{
    if (strcmp(path, "-") == 0)
        return write_entries(x, scratch, info, stdout, "stdout", err);
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    FILE *fp = NULL;
    int fd, rc = AW_OK;

    if (!tmp)
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);
    if ((fd = mkstemp(tmp)) < 0 || !(fp = fdopen(fd, "wb"))) {
        rc = aw_error_set(err, AW_ERR_IO, "cannot create %s: %s", tmp,
                          strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        free(tmp);
        return rc;
    }
    rc = write_entries(x, scratch, info, fp, tmp, err);
    if (rc == AW_OK && fsync(fileno(fp)) != 0)
        rc = aw_error_set(err, AW_ERR_IO, "cannot write %s: %s", tmp,
                          strerror(errno));
    if (fclose(fp) != 0 && rc == AW_OK)
        rc = aw_error_set(err, AW_ERR_IO, "cannot write %s: %s", tmp,
                          strerror(errno));
    if (rc == AW_OK && rename(tmp, path) != 0)
        rc = aw_error_set(err, AW_ERR_IO, "cannot rename %s to %s: %s", tmp,
                          path, strerror(errno));
    if (rc != AW_OK)
        unlink(tmp);
    free(tmp);
    return rc;
}

/* A scratch file beside the bundle (in $TMPDIR for stdout), unlinked at
 * once: it vanishes with us. */
static FILE *open_scratch(const char *path, aw_error *err)
{
    const char *tmpdir = getenv("TMPDIR");
    char in_tmp[PATH_MAX];
    if (strcmp(path, "-") == 0) {
        snprintf(in_tmp, sizeof in_tmp, "%s/auditwatch-export",
                 tmpdir && *tmpdir ? tmpdir : "/tmp");
        path = in_tmp;
    }
    size_t plen = strlen(path);
    char *name = malloc(plen + 20);
    FILE *fp = NULL;
    int fd;
    if (!name) {
        aw_error_set(err, AW_ERR_NOMEM, "out of memory");
        return NULL;
    }
    memcpy(name, path, plen);
    memcpy(name + plen, ".scratch.XXXXXX", 16);
    if ((fd = mkstemp(name)) >= 0) {
        unlink(name);
        if (!(fp = fdopen(fd, "w+b")))
            close(fd);
    }
    if (!fp)
        aw_error_set(err, AW_ERR_IO,
                     "cannot create a scratch file beside %s: %s", path,
                     strerror(errno));
    free(name);
    return fp;
}

static void chain_progress(int64_t checked, void *ud)
{
    aw_cli_progress_update(ud, "export: hash chain, %lld entries",
                           (long long)checked);
}

/* Walks the chain, then copies the window, in one read snapshot. A break
 * (x->chain says where) leaves x->scratch NULL unless --unverified. */
static int copy_window(aw_store *store, const export_args *a,
                       const aw_bundle_info *info, export_state *x)
{
    int rc = aw_store_read_snapshot(store, &x->err);
    if (rc == AW_OK)
        rc = aw_store_verify_chain(store, &x->chain, chain_progress,
                                   &x->progress, &x->err);
    bool go_on = x->chain.ok || a->unverified;
    if (rc == AW_OK && go_on &&
        !(x->scratch = open_scratch(a->output, &x->err)))
        rc = AW_ERR_IO;
    if (rc == AW_OK && go_on)
        rc = aw_store_iter_entries(store, info->since_ms, info->until_ms,
                                   collect_entry, x, &x->err);
    aw_store_rollback(store);
    return rc;
}

static int export_window(const aw_cli_common *common, const export_args *a,
                         export_state *x)
{
    aw_store *store;
    aw_bundle_info info = {.version = AW_BUNDLE_VERSION};
    unsigned char *scratch = NULL;
    char source[PATH_MAX];
    int rc;

    info.since_ms = aw_cli_ns_to_ms_ceil(a->since_ns);
    info.until_ms = aw_cli_ns_to_ms_ceil(a->until_ns);
    info.created_at_ns = a->now_ns;
    info.source = realpath(common->db, source) ? source : common->db;
    if ((rc = aw_cli_open_store(&command, common, AW_STORE_READONLY, &store)))
        return rc;
    rc = copy_window(store, a, &info, x);
    aw_store_close(store);
    aw_cli_progress_end(&x->progress);
    if (rc == AW_OK && !x->scratch)
        return AW_OK; /* the chain breaks: nothing to write */
    if (rc == AW_OK && fflush(x->scratch) != 0)
        rc = aw_error_set(&x->err, AW_ERR_IO,
                          "cannot write the scratch file: %s", strerror(errno));
    if (rc == AW_OK)
        rc = rank_streams(x);
    if (rc == AW_OK && x->scratch_len > 0) {
        scratch = mmap(NULL, x->scratch_len, PROT_READ, MAP_PRIVATE,
                       fileno(x->scratch), 0);
        if (scratch == MAP_FAILED) {
            scratch = NULL;
            rc = aw_error_set(&x->err, AW_ERR_IO,
                              "cannot map the scratch file: %s",
                              strerror(errno));
        }
    }
    info.entries = (int64_t)x->nnotes;
    info.truncated = x->truncated;
    info.streams = x->streams;
    info.nstreams = x->nstreams;
    info.body_bytes = x->scratch_len;
    if (rc == AW_OK)
        rc = body_sha256(x, scratch, info.body_sha256, &x->err);
    if (rc == AW_OK)
        rc = write_bundle(x, scratch, &info, a->output, &x->err);
    if (scratch)
        munmap(scratch, x->scratch_len);
    if (rc == AW_OK)
        fprintf(stderr,
                "auditwatch export: %zu entries (%llu bytes, %lld truncated) "
                "from %zu streams written to %s\n",
                x->nnotes, (unsigned long long)x->scratch_len,
                (long long)x->truncated, x->nstreams,
                strcmp(a->output, "-") == 0 ? "stdout" : a->output);
    return rc;
}

int aw_cmd_export(int argc, char **argv)
{
    export_args a = {.now_ns = aw_cli_now_ns()};
    aw_cli_common common;
    export_state x = {0};
    int first, rc;

    rc = aw_cli_parse(&command, argc, argv, &common, on_option, &a, &first);
    if (rc != AW_CLI_PROCEED)
        return rc;
    if ((rc = aw_cli_expect_args(&command, argc, argv, first, 0, "")) !=
        AW_CLI_PROCEED)
        return rc;
    if (!a.has_since)
        return aw_cli_usage_error(&command, "--since is required");
    if (!a.output)
        return aw_cli_usage_error(&command, "-o FILE is required");
    if (strcmp(a.output, "-") == 0 && isatty(STDOUT_FILENO))
        return aw_cli_usage_error(&command,
                                  "-o -: stdout is a terminal, and a bundle "
                                  "is binary; redirect it or name a file");
    if (!a.has_until)
        a.until_ns = a.now_ns;
    if (a.since_ns >= a.until_ns)
        return aw_cli_usage_error(&command, "--since must be before --until");

    x.progress.enabled = common.progress;
    rc = export_window(&common, &a, &x);
    bool refused = rc == AW_OK && !x.chain.ok && !a.unverified;
    if (rc == AW_OK && !x.chain.ok)
        fprintf(stderr,
                "auditwatch export: the index's hash chain breaks: %s; it "
                "holds entries that are not what arrived (auditwatch verify "
                "names them)%s\n",
                x.chain.what,
                refused ? ". Nothing was written; --unverified writes the "
                          "bundle all the same."
                        : ". Written anyway (--unverified).");
    if (x.scratch)
        fclose(x.scratch);
    for (size_t i = 0; i < x.nstreams; i++)
        free((char *)x.streams[i].stream);
    free(x.streams);
    free(x.notes);
    if (rc > 0)
        return rc; /* the index could not be opened: already said */
    if (refused)
        return AW_EXIT_NO;
    if (rc != AW_OK)
        return aw_cli_fail(&command, AW_EXIT_FAILURE, "%s", x.err.msg);
    return AW_EXIT_OK;
}
