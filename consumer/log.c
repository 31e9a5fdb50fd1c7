/* log.c -- the daemon's log: one line per event of note (start, group
 * created, connection lost and back, rejections per minute, shutdown), never
 * one per entry, so the log stays readable at 100,000 entries a second.
 *
 * Two formats carry the same content: key=value pairs for people and
 * journald, JSON objects for log shippers. Every line starts with the time,
 * the level and the event name; the fields follow in the order given.
 * Values are escaped so a line is always one line, and JSON is always valid
 * (bytes that are not UTF-8 become \u00XX).
 *
 * The log goes to stderr, or to a file opened for appending and reopened on
 * SIGHUP so logrotate can move it away. Only the loop thread logs, so no
 * locking is needed. Secrets are never passed in.
 */
#include "consumer/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 8192

struct aw_log {
    aw_log_format format;
    char *path;
    FILE *fp; /* stderr when path is NULL */
};

static const char *level_name(aw_log_level level)
{
    switch (level) {
    case AW_LOG_WARN: return "warn";
    case AW_LOG_ERROR: return "error";
    default: return "info";
    }
}

static FILE *open_append(const char *path, aw_error *err)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    FILE *fp;
    if (fd < 0) {
        aw_error_set(err, AW_ERR_IO, "cannot open log file %s: %s", path,
                     strerror(errno));
        return NULL;
    }
    if (!(fp = fdopen(fd, "a"))) {
        aw_error_set(err, AW_ERR_IO, "cannot open log file %s: %s", path,
                     strerror(errno));
        close(fd);
    }
    return fp;
}

int aw_log_open(aw_log_format format, const char *path, aw_log **out,
                aw_error *err)
{
    aw_log *log = calloc(1, sizeof *log);
    *out = NULL;
    if (!log || (path && !(log->path = strdup(path)))) {
        free(log);
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    }
    log->format = format;
    log->fp = path ? open_append(path, err) : stderr;
    if (!log->fp) {
        free(log->path);
        free(log);
        return AW_ERR_IO;
    }
    *out = log;
    return AW_OK;
}

void aw_log_reopen(aw_log *log)
{
    aw_error err = {0};
    FILE *fp;
    if (!log->path)
        return;
    if (!(fp = open_append(log->path, &err))) {
        AW_LOG(log, AW_LOG_ERROR, "log_reopen_failed",
               AW_LOG_S("error", err.msg));
        return;
    }
    fclose(log->fp);
    log->fp = fp;
    AW_LOG(log, AW_LOG_INFO, "log_reopened", AW_LOG_S("file", log->path));
}

void aw_log_close(aw_log *log)
{
    if (!log)
        return;
    if (log->path)
        fclose(log->fp);
    else
        fflush(log->fp);
    free(log->path);
    free(log);
}

/* ---- Formatting ------------------------------------------------------------ */

typedef struct line {
    char buf[LINE_MAX_BYTES];
    size_t len;
} line;

static void put(line *l, const char *s, size_t n)
{
    if (n > sizeof l->buf - 2 - l->len)
        n = sizeof l->buf - 2 - l->len; /* room for \n */
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void puts_(line *l, const char *s)
{
    put(l, s, strlen(s));
}

static void putf(line *l, const char *fmt, long long v)
{
    char num[32];
    int n = snprintf(num, sizeof num, fmt, v);
    put(l, num, (size_t)n);
}

/* Length of the UTF-8 sequence starting s[0..left), 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t left)
{
    size_t n = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 0;
    return n && n <= left && aw_utf8_valid((const char *)s, n) ? n : 0;
}

/* s escaped for the inside of a JSON string or a quoted kv value. */
static void put_escaped(line *l, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t left = strlen(s);
    while (left) {
        size_t n;
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            put(l, esc, 2);
            n = 1;
        } else if (*p == '\n') {
            puts_(l, "\\n"), n = 1;
        } else if (*p < 0x20 || *p == 0x7f) {
            putf(l, "\\u%04llx", *p), n = 1;
        } else if (*p < 0x80) {
            put(l, (const char *)p, 1), n = 1;
        } else if ((n = utf8_len(p, left)) != 0) {
            put(l, (const char *)p, n);
        } else {
            putf(l, "\\u%04llx", *p), n = 1;
        }
        p += n;
        left -= n;
    }
}

static bool needs_quotes(const char *s)
{
    if (!*s)
        return true;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == '"' || *s == '=' || *s == '\\' ||
            (unsigned char)*s >= 0x7f)
            return true;
    return false;
}

static void put_kv(line *l, const char *key, const aw_log_field *f)
{
    if (l->len)
        puts_(l, " ");
    puts_(l, key);
    puts_(l, "=");
    if (f->is_num) {
        putf(l, "%lld", f->num);
    } else if (!f->str || needs_quotes(f->str)) {
        puts_(l, "\"");
        if (f->str)
            put_escaped(l, f->str);
        puts_(l, "\"");
    } else {
        puts_(l, f->str);
    }
}

static void put_json(line *l, const char *key, const aw_log_field *f)
{
    puts_(l, l->len > 1 ? ",\"" : "\"");
    put_escaped(l, key);
    puts_(l, "\":");
    if (f->is_num) {
        putf(l, "%lld", f->num);
    } else if (!f->str) {
        puts_(l, "null");
    } else {
        puts_(l, "\"");
        put_escaped(l, f->str);
        puts_(l, "\"");
    }
}

void aw_log_event(aw_log *log, aw_log_level level, const char *event,
                  const aw_log_field *fields, size_t nfields)
{
    struct timespec ts;
    char when[40];
    line l;
    void (*field)(line *, const char *, const aw_log_field *) =
        log->format == AW_LOG_JSON ? put_json : put_kv;

    clock_gettime(CLOCK_REALTIME, &ts);
    aw_time_format((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec, when,
                   sizeof when);
    l.len = 0;
    if (log->format == AW_LOG_JSON)
        puts_(&l, "{");
    field(&l, "time", &AW_LOG_S(NULL, when));
    field(&l, "level", &AW_LOG_S(NULL, level_name(level)));
    field(&l, "event", &AW_LOG_S(NULL, event));
    for (size_t i = 0; i < nfields; i++)
        field(&l, fields[i].key, &fields[i]);
    if (log->format == AW_LOG_JSON)
        puts_(&l, "}");
    l.buf[l.len++] = '\n';
    fwrite(l.buf, 1, l.len, log->fp);
    fflush(log->fp);
}
