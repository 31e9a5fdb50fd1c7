/* metrics.c -- the daemon's figures for Prometheus (DESIGN §9).
 *
 * The loop thread owns the counters (aw_metrics_state) and turns them into
 * a page of the text exposition format; the endpoint, on libmicrohttpd's
 * own polling thread, serves the last published page. The only thing the
 * two threads share is that page, swapped and copied under one mutex, so a
 * scrape never waits on SQLite or Redis and ingest never waits on a
 * scrape. libmicrohttpd parses HTTP (no parser of ours), and bounds what a
 * client can hold: a connection limit, a per-connection memory limit, and
 * an idle timeout that drops a client that sends its request slowly or
 * not at all.
 *
 * Names follow Prometheus' conventions: counters end in _total and reset
 * when the daemon starts (Prometheus' rate() expects that), durations are
 * seconds, labels are of low cardinality (stream roles' names, reject
 * reasons, alert kinds and severities). Open alerts are the index's count
 * at start, moved by every change since.
 */
#include "consumer/metrics.h"

#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef AW_VERSION
#define AW_VERSION "0.1.0"
#endif

#define CONNECTIONS_MAX      16
#define CONNECTION_TIMEOUT_S 5
#define CONNECTION_MEMORY    16384

static const double bucket_bounds[AW_METRICS_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

void aw_metrics_state_init(aw_metrics_state *s,
                           const char *const streams[AW_ROLE_COUNT])
{
    memset(s, 0, sizeof *s);
    for (int r = 0; r < AW_ROLE_COUNT; r++)
        s->streams[r] = streams[r];
}

void aw_metrics_count_batch(aw_metrics_state *s, const aw_ingest_stats *st,
                            double seconds)
{
    for (int r = 0; r < AW_ROLE_COUNT; r++)
        s->indexed[r] += st->indexed_by_role[r];
    s->indexed_imports += st->indexed_imports;
    for (int r = 0; r < AW_REJECT_REASON_COUNT; r++)
        s->rejected[r] += st->rejected_by_reason[r];
    for (int b = 0; b < AW_METRICS_BUCKETS; b++)
        if (seconds <= bucket_bounds[b]) {
            s->commit_buckets[b]++;
            break;
        }
    s->commit_count++;
    s->commit_sum += seconds;
}

/* The row of (kind, severity), added when new; NULL when the table is full
 * (a kind past AW_METRICS_KINDS_MAX is not counted rather than mislabeled). */
static aw_metrics_alert_row *alert_row(aw_metrics_alert_row *rows, size_t *n,
                                       const char *kind, const char *severity)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(rows[i].kind, kind) == 0 &&
            strcmp(rows[i].severity, severity) == 0)
            return &rows[i];
    if (*n == AW_METRICS_KINDS_MAX)
        return NULL;
    aw_metrics_alert_row *row = &rows[(*n)++];
    snprintf(row->kind, sizeof row->kind, "%s", kind);
    snprintf(row->severity, sizeof row->severity, "%s", severity);
    row->count = 0;
    return row;
}

void aw_metrics_count_alert(aw_metrics_state *s, const aw_alert *alert,
                            aw_alert_change change)
{
    aw_metrics_alert_row *row;
    if (change == AW_ALERT_RAISED || change == AW_ALERT_REOPENED) {
        if ((row = alert_row(s->raised, &s->nraised, alert->kind,
                             alert->severity)))
            row->count++;
        if ((row = alert_row(s->open, &s->nopen, alert->kind, "")))
            row->count++;
    } else if (change == AW_ALERT_RESOLVED_NOW) {
        if ((row = alert_row(s->open, &s->nopen, alert->kind, "")) &&
            row->count > 0)
            row->count--;
    }
}

void aw_metrics_set_open(aw_metrics_state *s, const char *kind, int64_t count)
{
    aw_metrics_alert_row *row = alert_row(s->open, &s->nopen, kind, "");
    if (row)
        row->count = count;
}

/* ---- The page ---------------------------------------------------------------- */

typedef struct page {
    aw_buf buf;
    bool failed;
} page;

static void put(page *p, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    int n;
    if (p->failed)
        return;
    va_start(ap, fmt);
    n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof small ||
        aw_buf_append_text(&p->buf, small, (size_t)n) != AW_OK)
        p->failed = true;
}

/* A label value: backslash, double quote and newline escaped. */
static void put_label(page *p, const char *value)
{
    for (const char *c = value; *c && !p->failed; c++) {
        const char *esc = *c == '\\'   ? "\\\\"
                          : *c == '"'  ? "\\\""
                          : *c == '\n' ? "\\n"
                                       : NULL;
        if (aw_buf_append_text(&p->buf, esc ? esc : c, esc ? 2 : 1) != AW_OK)
            p->failed = true;
    }
}

static void family(page *p, const char *name, const char *type,
                   const char *help)
{
    put(p, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{label="value"} */
static void sample_start(page *p, const char *name, const char *label,
                         const char *value)
{
    put(p, "%s{%s=\"", name, label);
    put_label(p, value);
    put(p, "\"}");
}

/* name{label="value",label2="value2"} */
static void sample_start2(page *p, const char *name, const char *label,
                          const char *value, const char *label2,
                          const char *value2)
{
    put(p, "%s{%s=\"", name, label);
    put_label(p, value);
    put(p, "\",%s=\"", label2);
    put_label(p, value2);
    put(p, "\"}");
}

static void put_streams_u64(page *p, const aw_metrics_state *s,
                            const char *name, const uint64_t *values)
{
    for (int r = 0; r < AW_ROLE_COUNT; r++) {
        sample_start(p, name, "stream", s->streams[r]);
        put(p, " %llu\n", (unsigned long long)values[r]);
    }
}

/* One gauge of every watched group; a figure Redis did not report is
 * left out rather than shown as 0. */
static void put_caracal_groups(page *p, const aw_watch_figures *f,
                               const char *name, const char *help,
                               size_t offset, double scale)
{
    family(p, name, "gauge", help);
    for (size_t i = 0; f && f->polled && i < f->ngroups; i++) {
        const aw_watch_group_figures *g = &f->groups[i];
        int64_t v = *(const int64_t *)((const char *)g + offset);
        if (v == AW_FIGURE_UNKNOWN)
            continue;
        sample_start2(p, name, "stream", g->stream, "group", g->group);
        put(p, " %.15g\n", (double)v * scale);
    }
}

static void put_caracal(page *p, const aw_watch_figures *f)
{
    put_caracal_groups(
        p, f, "auditwatch_caracal_group_lag_entries",
        "Entries of the stream not yet delivered to Caracal's group (enforcers, audit-ingestor), as of the last pipeline poll.",
        offsetof(aw_watch_group_figures, lag), 1);
    put_caracal_groups(
        p, f, "auditwatch_caracal_group_pending_entries",
        "Entries delivered to Caracal's group and not yet acknowledged, as of the last pipeline poll.",
        offsetof(aw_watch_group_figures, pending), 1);
    put_caracal_groups(
        p, f, "auditwatch_caracal_group_oldest_unapplied_seconds",
        "Age of the oldest entry Caracal's group has not applied (undelivered or pending; 0: none), as of the last pipeline poll.",
        offsetof(aw_watch_group_figures, oldest_unapplied_ms), 0.001);
    family(
        p, "auditwatch_dead_letter_entries", "gauge",
        "Entries in the dead-letter stream (0: absent), as of the last pipeline poll.");
    for (size_t d = 0; f && f->polled && d < AW_WATCH_DEAD_LETTER_STREAMS;
         d++) {
        if (f->dead_letters[d] == AW_FIGURE_UNKNOWN)
            continue;
        sample_start(p, "auditwatch_dead_letter_entries", "stream",
                     f->dead_letter_streams[d]);
        put(p, " %lld\n", (long long)f->dead_letters[d]);
    }
}

char *aw_metrics_render(const aw_metrics_state *s, size_t *len)
{
    page p = {{0}, false};
    uint64_t cumulative = 0;

    family(&p, "auditwatch_build_info", "gauge",
           "Always 1; the version of this auditwatch.");
    put(&p, "auditwatch_build_info{version=\"%s\"} 1\n", AW_VERSION);

    family(
        &p, "auditwatch_entries_indexed_total", "counter",
        "Stream entries decoded and indexed as new, by stream (import: access-log files).");
    put_streams_u64(&p, s, "auditwatch_entries_indexed_total", s->indexed);
    put(&p, "auditwatch_entries_indexed_total{stream=\"import\"} %llu\n",
        (unsigned long long)s->indexed_imports);

    family(&p, "auditwatch_entries_rejected_total", "counter",
           "Entries stored in the rejected table, by reason.");
    for (int r = 1; r < AW_REJECT_REASON_COUNT; r++) {
        sample_start(&p, "auditwatch_entries_rejected_total", "reason",
                     aw_reject_reason_name((aw_reject_reason)r));
        put(&p, " %llu\n", (unsigned long long)s->rejected[r]);
    }

    family(&p, "auditwatch_alerts_raised_total", "counter",
           "Alerts raised since start, by kind and severity.");
    for (size_t i = 0; i < s->nraised; i++) {
        sample_start2(&p, "auditwatch_alerts_raised_total", "kind",
                      s->raised[i].kind, "severity", s->raised[i].severity);
        put(&p, " %lld\n", (long long)s->raised[i].count);
    }

    family(&p, "auditwatch_alerts_open", "gauge",
           "Alerts open in the index, by kind.");
    for (size_t i = 0; i < s->nopen; i++) {
        sample_start(&p, "auditwatch_alerts_open", "kind", s->open[i].kind);
        put(&p, " %lld\n", (long long)s->open[i].count);
    }

    family(
        &p, "auditwatch_stream_lag_entries", "gauge",
        "Entries of the stream not yet delivered to auditwatch's group, as of the last read.");
    for (int r = 0; r < AW_ROLE_COUNT; r++) {
        if (!s->has_lag[r])
            continue;
        sample_start(&p, "auditwatch_stream_lag_entries", "stream",
                     s->streams[r]);
        put(&p, " %lld\n", (long long)s->lag[r]);
    }

    family(
        &p, "auditwatch_oldest_pending_seconds", "gauge",
        "Age of the oldest entry read from the stream and not yet acknowledged (0: none).");
    for (int r = 0; r < AW_ROLE_COUNT; r++) {
        sample_start(&p, "auditwatch_oldest_pending_seconds", "stream",
                     s->streams[r]);
        put(&p, " %.3f\n", s->oldest_pending_seconds[r]);
    }

    family(&p, "auditwatch_commit_duration_seconds", "histogram",
           "Time of one index transaction (a batch with its detectors).");
    for (int b = 0; b < AW_METRICS_BUCKETS; b++) {
        cumulative += s->commit_buckets[b];
        put(&p, "auditwatch_commit_duration_seconds_bucket{le=\"%g\"} %llu\n",
            bucket_bounds[b], (unsigned long long)cumulative);
    }
    put(&p, "auditwatch_commit_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
        (unsigned long long)s->commit_count);
    put(&p, "auditwatch_commit_duration_seconds_sum %.6f\n", s->commit_sum);
    put(&p, "auditwatch_commit_duration_seconds_count %llu\n",
        (unsigned long long)s->commit_count);

    family(&p, "auditwatch_detector_clock_seconds", "gauge",
           "The detectors' event-time clock, seconds since the epoch.");
    put(&p, "auditwatch_detector_clock_seconds %.3f\n",
        s->detector_clock_seconds);

    family(&p, "auditwatch_redis_connected", "gauge",
           "1 while the Redis connection is ready.");
    put(&p, "auditwatch_redis_connected %d\n", s->redis_connected ? 1 : 0);

    family(&p, "auditwatch_alert_notifications_failed_total", "counter",
           "Alert changes a sink did not deliver (the alerts table has them "
           "all): the alert stream (XADD refused, or Redis down) and the exec "
           "hook (failed: exit status, signal or spawn; dropped: its queue "
           "was full).");
    const struct {
        const char *sink, *reason;
        uint64_t count;
    } undelivered[] = {
        {"stream", "failed", s->alert_stream_failed},
        {"exec", "failed", s->alert_hook_failed},
        {"exec", "dropped", s->alert_hook_dropped},
    };
    for (size_t i = 0; i < sizeof undelivered / sizeof *undelivered; i++) {
        sample_start2(&p, "auditwatch_alert_notifications_failed_total", "sink",
                      undelivered[i].sink, "reason", undelivered[i].reason);
        put(&p, " %llu\n", (unsigned long long)undelivered[i].count);
    }

    put_caracal(&p, s->caracal);

    if (p.failed) {
        aw_buf_free(&p.buf);
        return NULL;
    }
    *len = p.buf.len;
    return p.buf.ptr;
}

/* ---- The endpoint -------------------------------------------------------------- */

struct aw_metrics {
    struct MHD_Daemon *mhd;
    pthread_mutex_t lock;
    char *page; /* owned; NULL until the first publish */
    size_t page_len;
    int port;
};

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status,
                              const char *type, char *body, size_t len)
{
    struct MHD_Response *r =
        body ? MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE)
             : MHD_create_response_from_buffer(0, (void *)"",
                                               MHD_RESPMEM_PERSISTENT);
    enum MHD_Result rc;
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_size, void **ctx)
{
    aw_metrics *m = cls;
    char *body;
    size_t len;
    (void)version;
    (void)upload_data;
    if (!*ctx) { /* headers only so far: answer once they are all in */
        *ctx = m;
        return MHD_YES;
    }
    if (*upload_size) { /* a body nobody asked for: ignore it */
        *upload_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return answer(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", NULL, 0);
    if (strcmp(url, "/metrics") != 0)
        return answer(c, MHD_HTTP_NOT_FOUND, "text/plain", NULL, 0);
    pthread_mutex_lock(&m->lock);
    if (!m->page) {
        /* A page without series would read as every figure gone. */
        pthread_mutex_unlock(&m->lock);
        return answer(c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", NULL, 0);
    }
    len = m->page_len;
    body = malloc(len + 1);
    if (body && len)
        memcpy(body, m->page, len);
    pthread_mutex_unlock(&m->lock);
    if (!body)
        return MHD_NO;
    return answer(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                  body, len);
}

/* "HOST:PORT" or "[V6]:PORT" into host and port text. */
static int split_address(const char *text, char *host, size_t hsize,
                         const char **port, aw_error *err)
{
    const char *colon = strrchr(text, ':');
    const char *h = text, *h_end = colon;
    if (!colon || !colon[1])
        return aw_error_set(err, AW_ERR_INVALID,
                            "metrics address \"%s\": expected ADDR:PORT", text);
    if (*text == '[') {
        if (colon == text || colon[-1] != ']')
            return aw_error_set(err, AW_ERR_INVALID,
                                "metrics address \"%s\": expected [V6]:PORT",
                                text);
        h = text + 1;
        h_end = colon - 1;
    }
    if (h_end <= h || (size_t)(h_end - h) >= hsize)
        return aw_error_set(err, AW_ERR_INVALID,
                            "metrics address \"%s\": no host", text);
    memcpy(host, h, (size_t)(h_end - h));
    host[h_end - h] = '\0';
    *port = colon + 1;
    for (const char *c = *port; *c; c++)
        if (*c < '0' || *c > '9')
            return aw_error_set(err, AW_ERR_INVALID,
                                "metrics address \"%s\": bad port", text);
    if (atoi(*port) > 65535)
        return aw_error_set(err, AW_ERR_INVALID,
                            "metrics address \"%s\": bad port", text);
    return AW_OK;
}

int aw_metrics_listen(const char *addr_port, aw_metrics **out, aw_error *err)
{
    char host[256];
    const char *port = NULL;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV},
                    *ai = NULL;
    const union MHD_DaemonInfo *info;
    aw_metrics *m;
    int rc, gai;

    *out = NULL;
    if ((rc = split_address(addr_port, host, sizeof host, &port, err)) != AW_OK)
        return rc;
    if ((gai = getaddrinfo(host, port, &hints, &ai)) != 0)
        return aw_error_set(err, AW_ERR_INVALID, "metrics address \"%s\": %s",
                            addr_port, gai_strerror(gai));
    if (!(m = calloc(1, sizeof *m))) {
        freeaddrinfo(ai);
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    }
    pthread_mutex_init(&m->lock, NULL);
    m->mhd = MHD_start_daemon(
        MHD_USE_AUTO_INTERNAL_THREAD |
            (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0),
        0, NULL, NULL, on_request, m, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTIONS_MAX,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
        MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!m->mhd) {
        aw_metrics_close(m);
        return aw_error_set(err, AW_ERR_IO, "cannot listen for metrics on %s",
                            addr_port);
    }
    info = MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_BIND_PORT);
    m->port = info ? info->port : atoi(port);
    *out = m;
    return AW_OK;
}

int aw_metrics_port(const aw_metrics *m)
{
    return m->port;
}

void aw_metrics_publish(aw_metrics *m, char *text, size_t len)
{
    char *old;
    pthread_mutex_lock(&m->lock);
    old = m->page;
    m->page = text;
    m->page_len = len;
    pthread_mutex_unlock(&m->lock);
    free(old);
}

void aw_metrics_close(aw_metrics *m)
{
    if (!m)
        return;
    if (m->mhd)
        MHD_stop_daemon(m->mhd);
    pthread_mutex_destroy(&m->lock);
    free(m->page);
    free(m);
}
