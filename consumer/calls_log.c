/* calls_log.c -- access logs followed in place (DESIGN §9): the lines a
 * resource server or proxy appends become observed calls, the same entries
 * `import-calls` makes (aw_ingest_import_entry), through the same ingest.
 *
 * Position. Each path's place -- the inode of the file being read, the
 * bytes of it consumed, the lines read over all its files -- is written in
 * the transaction holding the lines read up to it, so after a crash or a
 * restart reading resumes exactly after the last committed line: nothing
 * skipped, nothing repeated. The lines count is each entry id's sequence
 * ("<ms>-<lines>"), unique for the path across rotations and truncations.
 * Only '\n'-terminated lines are read: a line still being written waits.
 *
 * Over-long lines. A line longer than one read (CHUNK) is one rejection:
 * its first CHUNK bytes are taken (and rejected oversized), the rest is
 * skipped up to its newline, however many reads, steps or restarts that
 * takes. Only that rejection commits a position inside a line, so a
 * position whose previous byte is not '\n' means "skip to the next
 * newline": the file itself says so, and the skipped bytes are committed
 * with the rejection or after it, never before.
 *
 * Rotation, polled by path (robust whatever the rotation does between two
 * looks):
 *   create        PATH names another inode. The old file, still open, is
 *                 read to its end (a writer may append until it reopens);
 *                 once a step finds nothing new in it, it is closed and the
 *                 new file read from 0. An unterminated last line of the old
 *                 file is left (no writer will finish it).
 *   copytruncate  PATH is the same inode but shorter than the position: it
 *                 was truncated; read from 0. (Lines written between
 *                 logrotate's copy and its truncation are lost by
 *                 copytruncate itself, whatever reads the file.)
 *   stopped       the stored inode is not PATH's at start: the old file is
 *                 finished from "PATH.1" when that is it, else PATH is read
 *                 from 0.
 */
#include "consumer/calls_log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* One read; also the longest line taken whole (a longer one is cut). */
#define CHUNK          262144 /* 256 KiB */
#define TEXT_OF(x)     #x
#define NUMBER_TEXT(x) TEXT_OF(x)

typedef struct followed {
    char *path;   /* absolute */
    char *stream; /* "import:<path>" */
    int fd;       /* -1 while PATH does not exist */
    int64_t fd_inode;
    aw_log_position at;      /* committed */
    aw_log_position reading; /* after this step's lines */
    bool replaced;           /* PATH names a new file; the old one is open */
    const char *note;
} followed;

struct aw_calls_log {
    followed *files;
    size_t n;
    const aw_call_fields *names;
    char *buf;
    size_t buf_cap;
    aw_raw_entry **entries;
    aw_ingest_item *items;
    size_t nitems, cap;
    aw_ingest_log_position *positions;
    aw_calls_log_note *notes;
    size_t nnotes;
};

static int open_file(const char *path, int64_t *inode)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return -1;
    }
    *inode = (int64_t)st.st_ino;
    return fd;
}

static int64_t file_size(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? (int64_t)st.st_size : -1;
}

/* At start: the committed position, or the rotation that happened while
 * stopped. */
static void resume(followed *f, bool found)
{
    char older[PATH_MAX];
    int64_t inode;
    f->fd = open_file(f->path, &f->fd_inode);
    if (!found || f->fd < 0 || f->fd_inode == f->at.inode) {
        if (f->fd >= 0 && (!found || file_size(f->fd) < f->at.offset))
            f->at.offset = 0;
        if (f->fd >= 0)
            f->at.inode = f->fd_inode;
        f->reading = f->at;
        return;
    }
    snprintf(older, sizeof older, "%s.1", f->path);
    int old = open_file(older, &inode);
    if (old >= 0 && inode == f->at.inode) {
        close(f->fd);
        f->fd = old;
        f->fd_inode = inode;
        f->replaced = true;
    } else {
        if (old >= 0)
            close(old);
        f->at.inode = f->fd_inode;
        f->at.offset = 0;
        f->note =
            "rotated while stopped; the older file was not found: reading the new one";
    }
    f->reading = f->at;
}

int aw_calls_log_new(const char *const *paths, size_t n,
                     const aw_call_fields *names, aw_store *store,
                     aw_calls_log **out, aw_error *err)
{
    aw_calls_log *cl = calloc(1, sizeof *cl);
    int rc = AW_OK;
    *out = NULL;
    if (!cl || !(cl->files = calloc(n, sizeof *cl->files)) ||
        !(cl->positions = calloc(n, sizeof *cl->positions)) ||
        !(cl->notes = calloc(n, sizeof *cl->notes))) {
        aw_calls_log_free(cl);
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    }
    cl->names = names;
    for (size_t i = 0; i < n && rc == AW_OK; i++) {
        followed *f = &cl->files[cl->n++];
        char absolute[PATH_MAX], stream[AW_INGEST_IMPORT_STREAM_MAX];
        aw_error why = {0};
        bool found;
        f->fd = -1;
        if (aw_ingest_import_path(paths[i], absolute, stream, &why) != AW_OK) {
            rc = aw_error_set(err, AW_ERR_INVALID, "--calls-log: %s", why.msg);
            break;
        }
        for (size_t j = 0; j + 1 < cl->n; j++)
            if (strcmp(cl->files[j].path, absolute) == 0)
                rc = aw_error_set(err, AW_ERR_INVALID,
                                  "--calls-log %s given twice", paths[i]);
        if (rc != AW_OK)
            break;
        if (!(f->path = strdup(absolute)) || !(f->stream = strdup(stream))) {
            rc = aw_error_set(err, AW_ERR_NOMEM, "out of memory");
            break;
        }
        if ((rc = aw_store_get_log_position(store, f->path, &f->at, &found,
                                            err)) != AW_OK)
            break;
        resume(f, found);
    }
    if (rc != AW_OK) {
        aw_calls_log_free(cl);
        return rc;
    }
    *out = cl;
    return AW_OK;
}

static void drop_entries(aw_calls_log *cl)
{
    for (size_t i = 0; i < cl->nitems; i++)
        aw_raw_entry_free(cl->entries[i]);
    cl->nitems = 0;
}

void aw_calls_log_free(aw_calls_log *cl)
{
    if (!cl)
        return;
    drop_entries(cl);
    for (size_t i = 0; i < cl->n; i++) {
        if (cl->files[i].fd >= 0)
            close(cl->files[i].fd);
        free(cl->files[i].path);
        free(cl->files[i].stream);
    }
    free(cl->files);
    free(cl->positions);
    free(cl->notes);
    free(cl->entries);
    free(cl->items);
    free(cl->buf);
    free(cl);
}

size_t aw_calls_log_notes(const aw_calls_log *cl, const aw_calls_log_note **out)
{
    *out = cl->notes;
    return cl->nnotes;
}

/* ---- One step ------------------------------------------------------------------ */

static const char over_long_detail[] = "line longer than " NUMBER_TEXT(
    CHUNK) " bytes (its first " NUMBER_TEXT(CHUNK) " kept, the rest skipped)";

/* The entry of a line; an over-long one is rejected oversized as it is
 * stored (cut to CHUNK bytes). */
static int add_entry(aw_calls_log *cl, const followed *f, const char *line,
                     size_t len, bool over_long, int64_t now_ns, aw_error *err)
{
    if (cl->nitems == cl->cap) {
        size_t cap = cl->cap ? cl->cap * 2 : 256;
        aw_raw_entry **e = realloc(cl->entries, cap * sizeof *e);
        if (e)
            cl->entries = e;
        aw_ingest_item *it = e ? realloc(cl->items, cap * sizeof *it) : NULL;
        if (!it)
            return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
        cl->items = it;
        cl->cap = cap;
    }
    int rc =
        aw_ingest_import_entry(f->stream, line, len, cl->names, now_ns,
                               f->reading.lines, &cl->entries[cl->nitems], err);
    if (rc != AW_OK)
        return rc;
    cl->items[cl->nitems] = (aw_ingest_item){
        .entry = cl->entries[cl->nitems],
        .forced_reason = over_long ? AW_REJECT_OVERSIZED : AW_REJECT_NONE,
        .forced_detail = over_long ? over_long_detail : NULL};
    cl->nitems++;
    return AW_OK;
}

static bool is_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t')
            return false;
    return true;
}

/* Whether offset is inside a line (the rest of an over-long one). */
static int inside_line(const followed *f, int64_t offset, bool *inside,
                       aw_error *err)
{
    char before = '\n';
    ssize_t n = offset > 0 ? pread(f->fd, &before, 1, offset - 1) : 0;
    if (n < 0)
        return aw_error_set(err, AW_ERR_IO, "read %s: %s", f->path,
                            strerror(errno));
    *inside = n == 1 && before != '\n';
    return AW_OK;
}

/* Complete lines of f from reading.offset, up to *budget of them. *got: how
 * many bytes were consumed. */
static int read_lines(aw_calls_log *cl, followed *f, size_t *budget,
                      int64_t now_ns, int64_t *got, aw_error *err)
{
    bool skipping = false;
    int rc = inside_line(f, f->reading.offset, &skipping, err);
    *got = 0;
    if (rc != AW_OK)
        return rc;
    while (*budget > 0) {
        ssize_t n = pread(f->fd, cl->buf, cl->buf_cap, f->reading.offset);
        size_t start = 0, end;
        if (n < 0)
            return aw_error_set(err, AW_ERR_IO, "read %s: %s", f->path,
                                strerror(errno));
        if (n == 0)
            return AW_OK;
        for (end = 0; end<(size_t)n && * budget> 0; end++) {
            if (cl->buf[end] != '\n')
                continue;
            if (skipping) { /* the end of an over-long line */
                skipping = false;
                start = end + 1;
                continue;
            }
            size_t len = end - start;
            if (len && cl->buf[start + len - 1] == '\r')
                len--;
            f->reading.lines++;
            if (!is_blank(cl->buf + start, len)) {
                rc = add_entry(cl, f, cl->buf + start, len, false, now_ns, err);
                if (rc != AW_OK)
                    return rc;
                (*budget)--;
            }
            start = end + 1;
        }
        if (skipping) {
            start = (size_t)n; /* all of it more of the over-long line */
        } else if (start == 0) {
            /* No newline in a whole buffer: a line longer than any access
             * log's; rejected oversized, not waited on, its rest skipped. */
            if ((size_t)n < cl->buf_cap)
                return AW_OK;
            f->reading.lines++;
            rc = add_entry(cl, f, cl->buf, (size_t)n, true, now_ns, err);
            if (rc != AW_OK)
                return rc;
            (*budget)--;
            skipping = true;
            start = (size_t)n;
        }
        f->reading.offset += (int64_t)start;
        *got += (int64_t)start;
    }
    return AW_OK;
}

/* Rotation by path, before reading. */
static void look_at_path(followed *f)
{
    struct stat st;
    if (f->fd < 0) {
        if ((f->fd = open_file(f->path, &f->fd_inode)) >= 0) {
            f->reading.inode = f->fd_inode;
            f->reading.offset = 0;
            f->note = "opened";
        }
        return;
    }
    if (!f->replaced && stat(f->path, &st) == 0 &&
        (int64_t)st.st_ino != f->fd_inode)
        f->replaced = true;
    if (!f->replaced && file_size(f->fd) < f->reading.offset) {
        f->reading.offset = 0;
        f->note = "truncated: reading from the start";
    }
}

/* The old file gave nothing more: on to the one at PATH now. */
static void switch_file(followed *f)
{
    int64_t inode;
    int fd = open_file(f->path, &inode);
    if (fd < 0)
        return; /* gone again: the next step looks once more */
    close(f->fd);
    f->fd = fd;
    f->fd_inode = inode;
    f->replaced = false;
    f->reading.inode = inode;
    f->reading.offset = 0;
    f->note = "rotated: reading the new file";
}

static bool moved(const followed *f)
{
    return f->reading.inode != f->at.inode ||
           f->reading.offset != f->at.offset || f->reading.lines != f->at.lines;
}

int aw_calls_log_step(aw_calls_log *cl, aw_ingest *ing, size_t max_lines,
                      aw_ingest_stats *stats, bool *more, aw_error *err)
{
    struct timespec now;
    size_t budget = max_lines, npos = 0;
    int rc = AW_OK;

    memset(stats, 0, sizeof *stats);
    *more = false;
    cl->nnotes = 0;
    if (!cl->buf) {
        if (!(cl->buf = malloc(CHUNK)))
            return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
        cl->buf_cap = CHUNK;
    }
    clock_gettime(CLOCK_REALTIME, &now);
    for (size_t i = 0; i < cl->n && rc == AW_OK; i++) {
        followed *f = &cl->files[i];
        int64_t got = 0;
        f->note = NULL;
        look_at_path(f);
        if (f->fd < 0)
            continue;
        rc = read_lines(cl, f, &budget,
                        (int64_t)now.tv_sec * 1000000000 + now.tv_nsec, &got,
                        err);
        if (rc == AW_OK && f->replaced && got == 0 && budget > 0)
            switch_file(f);
        if (budget == 0)
            *more = true;
    }
    for (size_t i = 0; i < cl->n && rc == AW_OK; i++)
        if (moved(&cl->files[i]))
            cl->positions[npos++] = (aw_ingest_log_position){
                cl->files[i].path, cl->files[i].reading};
    if (rc == AW_OK && (cl->nitems || npos))
        rc = aw_ingest_log_batch(ing, cl->items, cl->nitems, cl->positions,
                                 npos, stats, err);
    drop_entries(cl);
    for (size_t i = 0; i < cl->n; i++) {
        followed *f = &cl->files[i];
        if (rc == AW_OK) {
            f->at = f->reading;
        } else if (f->reading.inode != f->at.inode) {
            /* It switched files this step, the old one read to its end:
             * the new one from its start once more. */
            f->reading.offset = 0;
            f->reading.lines = f->at.lines;
        } else {
            f->reading = f->at;
        }
        if (f->note)
            cl->notes[cl->nnotes++] = (aw_calls_log_note){f->path, f->note};
    }
    return rc;
}
