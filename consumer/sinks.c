/* sinks.c -- alert changes, after the commit, to stdout, a Redis stream and
 * an exec hook.
 *
 * The alerts table is the record; sinks are notifications. They run after
 * the commit (so nobody is told about an alert that was rolled back) and
 * must never hold ingest up: a slow pager is not a reason to stop indexing
 * evidence. So the Redis copy is one pipelined XADD on the daemon's
 * connection (a flat entry, MAXLEN ~ so the stream stays bounded), and each
 * hook is a child started with uv_spawn that reads the alert as JSON on
 * stdin, at most exec_max at a time; more wait in a bounded queue, and
 * what does not fit is dropped with a log line and a count. A failure of
 * any sink is logged and counted, never retried into a storm: the alert is
 * in the table either way.
 *
 * A hook's stdout and stderr go to the daemon's stderr, next to the log
 * line that reports its failure. stdout is left to the JSON lines.
 */
#include "consumer/sinks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOOK_QUEUE_MAX  1024
#define XADD_FIELDS_MAX 16

typedef struct queued {
    struct queued *next;
    char *json;
    char *alert_id;
} queued;

typedef struct hook_run {
    struct hook_run *prev, *next; /* the running list */
    aw_sinks *s;
    uv_process_t proc;
    uv_pipe_t in;
    uv_write_t write;
    uv_buf_t buf;
    queued *item;
    int open_handles;
} hook_run;

struct aw_sinks {
    uv_loop_t *loop;
    aw_sinks_config config;
    aw_log *log;
    aw_sinks_stats stats;
    size_t xadds_in_flight;
    int hooks_running;
    hook_run *running;
    queued *head, *tail;
    size_t queued_count;
    bool closing;
};

int aw_sinks_new(uv_loop_t *loop, const aw_sinks_config *config, aw_log *log,
                 aw_sinks **out, aw_error *err)
{
    aw_sinks *s = calloc(1, sizeof *s);
    *out = NULL;
    if (!s)
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    s->loop = loop;
    s->config = *config;
    s->log = log;
    *out = s;
    return AW_OK;
}

bool aw_sinks_busy(const aw_sinks *s)
{
    return s->xadds_in_flight || s->hooks_running;
}

const aw_sinks_stats *aw_sinks_stats_get(const aw_sinks *s)
{
    return &s->stats;
}

static void maybe_free(aw_sinks *s)
{
    if (!s->closing || aw_sinks_busy(s))
        return;
    free(s);
}

static void became_quieter(aw_sinks *s)
{
    if (s->closing) {
        maybe_free(s);
        return;
    }
    if (!aw_sinks_busy(s) && s->config.idle)
        s->config.idle(s->config.ud);
}

/* ---- stdout ---------------------------------------------------------------- */

static void emit_stdout(const char *json)
{
    fputs(json, stdout);
    fputc('\n', stdout);
    fflush(stdout);
}

/* ---- The Redis stream --------------------------------------------------------- */

static void on_xadd(aw_redis_conn *conn, redisReply *reply, void *privdata)
{
    aw_sinks *s = privdata;
    (void)conn;
    s->xadds_in_flight--;
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        s->stats.stream_failed++;
        AW_LOG(s->log, AW_LOG_WARN, "alert_stream_failed",
               AW_LOG_S("stream", s->config.stream),
               AW_LOG_S("error", reply ? reply->str : "connection lost"));
    }
    became_quieter(s);
}

static void add_field(const char **argv, int *argc, const char *key,
                      const char *value)
{
    if (!value)
        return;
    argv[(*argc)++] = key;
    argv[(*argc)++] = value;
}

/* finding: the OCSF form, sent whole as one field; NULL: the flat fields. */
static void emit_stream(aw_sinks *s, const aw_alert *a, aw_alert_change change,
                        const char *finding, aw_redis_conn *conn)
{
    const char *argv[6 + 2 * XADD_FIELDS_MAX];
    char maxlen[24], event_time[40], raised_at[40], resolved_at[40], late[32];
    int argc = 0;

    argv[argc++] = "XADD";
    argv[argc++] = s->config.stream;
    if (s->config.stream_maxlen) {
        snprintf(maxlen, sizeof maxlen, "%zu", s->config.stream_maxlen);
        argv[argc++] = "MAXLEN";
        argv[argc++] = "~";
        argv[argc++] = maxlen;
    }
    argv[argc++] = "*";
    add_field(argv, &argc, "id", a->id);
    if (finding) {
        add_field(argv, &argc, "ocsf", finding);
    } else {
        add_field(argv, &argc, "kind", a->kind);
        add_field(argv, &argc, "severity", a->severity);
        add_field(argv, &argc, "state", aw_alert_state_name(a->state));
        add_field(argv, &argc, "change", aw_alert_change_name(change));
        add_field(argv, &argc, "zone", a->zone_id);
        add_field(argv, &argc, "request_id", a->request_id);
        add_field(argv, &argc, "anchor", a->anchor);
        if (a->event_time_ns)
            add_field(argv, &argc, "event_time",
                      aw_time_format(a->event_time_ns, event_time, 40));
        if (a->raised_at_ns)
            add_field(argv, &argc, "raised_at",
                      aw_time_format(a->raised_at_ns, raised_at, 40));
        if (a->resolved_at_ns)
            add_field(argv, &argc, "resolved_at",
                      aw_time_format(a->resolved_at_ns, resolved_at, 40));
        add_field(argv, &argc, "resolved_by", a->resolved_by);
        if (a->state == AW_ALERT_RESOLVED) {
            snprintf(late, sizeof late, "%.3f", (double)a->late_ns / 1e9);
            add_field(argv, &argc, "late_seconds", late);
        }
        add_field(argv, &argc, "evidence", a->evidence_json);
        add_field(argv, &argc, "summary", a->summary);
    }
    if (aw_redis_conn_send(conn, 0, on_xadd, s, argc, argv, NULL) != AW_OK) {
        s->stats.stream_failed++;
        AW_LOG(s->log, AW_LOG_WARN, "alert_stream_failed",
               AW_LOG_S("stream", s->config.stream), AW_LOG_S("alert", a->id),
               AW_LOG_S("error", "Redis not connected"));
        return;
    }
    s->xadds_in_flight++;
}

/* ---- The exec hook --------------------------------------------------------------- */

static void start_hooks(aw_sinks *s);

static void free_queued(queued *q)
{
    free(q->json);
    free(q->alert_id);
    free(q);
}

static void on_hook_closed(uv_handle_t *h)
{
    hook_run *run = h->data;
    aw_sinks *s = run->s;
    if (--run->open_handles > 0)
        return;
    if (run->prev)
        run->prev->next = run->next;
    else
        s->running = run->next;
    if (run->next)
        run->next->prev = run->prev;
    free_queued(run->item);
    free(run);
    s->hooks_running--;
    start_hooks(s);
    became_quieter(s);
}

static void close_once(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, on_hook_closed);
}

static void on_hook_exit(uv_process_t *proc, int64_t status, int term_signal)
{
    hook_run *run = proc->data;
    if (status != 0 || term_signal != 0) {
        run->s->stats.hook_failed++;
        AW_LOG(run->s->log, AW_LOG_WARN, "alert_hook_failed",
               AW_LOG_S("alert", run->item->alert_id),
               AW_LOG_I("exit_status", status),
               AW_LOG_I("signal", term_signal));
    }
    close_once((uv_handle_t *)proc);
}

static void on_hook_written(uv_write_t *w, int status)
{
    hook_run *run = w->data;
    (void)
        status; /* a hook that does not read its stdin reports by its exit status */
    close_once((uv_handle_t *)&run->in);
}

static void spawn_hook(aw_sinks *s, queued *item)
{
    hook_run *run = calloc(1, sizeof *run);
    const char *args[] = {"/bin/sh", "-c", s->config.exec_cmd, NULL};
    uv_stdio_container_t stdio[3];
    uv_process_options_t opts;
    int rc;

    if (!run) {
        s->stats.hook_failed++;
        free_queued(item);
        return;
    }
    run->s = s;
    run->item = item;
    run->proc.data = run->in.data = run->write.data = run;
    uv_pipe_init(s->loop, &run->in, 0);
    stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
    stdio[0].data.stream = (uv_stream_t *)&run->in;
    stdio[1].flags = stdio[2].flags = UV_INHERIT_FD;
    stdio[1].data.fd = stdio[2].data.fd = 2;
    memset(&opts, 0, sizeof opts);
    opts.file = args[0];
    opts.args = (char **)args;
    opts.exit_cb = on_hook_exit;
    opts.stdio = stdio;
    opts.stdio_count = 3;
    s->hooks_running++;
    run->open_handles = 2;
    run->next = s->running;
    if (s->running)
        s->running->prev = run;
    s->running = run;
    rc = uv_spawn(s->loop, &run->proc, &opts);
    if (rc != 0) {
        s->stats.hook_failed++;
        AW_LOG(s->log, AW_LOG_WARN, "alert_hook_failed",
               AW_LOG_S("alert", item->alert_id),
               AW_LOG_S("error", uv_strerror(rc)));
        close_once((uv_handle_t *)&run->proc);
        close_once((uv_handle_t *)&run->in);
        return;
    }
    run->buf = uv_buf_init(item->json, (unsigned)strlen(item->json));
    if (uv_write(&run->write, (uv_stream_t *)&run->in, &run->buf, 1,
                 on_hook_written) != 0)
        close_once((uv_handle_t *)&run->in);
}

static void start_hooks(aw_sinks *s)
{
    while (!s->closing && s->head && s->hooks_running < s->config.exec_max) {
        queued *q = s->head;
        s->head = q->next;
        if (!s->head)
            s->tail = NULL;
        s->queued_count--;
        spawn_hook(s, q);
    }
}

static void emit_hook(aw_sinks *s, const aw_alert *a, const char *json)
{
    queued *q;
    size_t len = strlen(json);
    if (s->queued_count >= HOOK_QUEUE_MAX) {
        s->stats.hook_dropped++;
        AW_LOG(s->log, AW_LOG_WARN, "alert_hook_dropped",
               AW_LOG_S("alert", a->id), AW_LOG_S("reason", "hook queue full"));
        return;
    }
    if (!(q = calloc(1, sizeof *q)) || !(q->json = malloc(len + 2)) ||
        !(q->alert_id = strdup(a->id ? a->id : ""))) {
        if (q)
            free_queued(q);
        s->stats.hook_failed++;
        return;
    }
    memcpy(q->json, json, len);
    memcpy(q->json + len, "\n", 2);
    if (s->tail)
        s->tail->next = q;
    else
        s->head = q;
    s->tail = q;
    s->queued_count++;
    start_hooks(s);
}

/* ---- All of them ------------------------------------------------------------------ */

void aw_sinks_emit(aw_sinks *s, const aw_alert *alert, aw_alert_change change,
                   aw_redis_conn *conn)
{
    bool ocsf = s->config.format == AW_ALERT_FORMAT_OCSF;
    char *json = NULL;
    if (s->closing || change == AW_ALERT_UNCHANGED)
        return;
    s->stats.emitted++;
    if (s->config.to_stdout || s->config.exec_cmd ||
        (ocsf && s->config.stream)) {
        if (!(json = ocsf ? aw_alert_to_ocsf(alert, change)
                          : aw_alert_to_json(alert, change))) {
            AW_LOG(s->log, AW_LOG_ERROR, "alert_sink_failed",
                   AW_LOG_S("alert", alert->id),
                   AW_LOG_S("error", "out of memory"));
            return;
        }
    }
    if (s->config.to_stdout)
        emit_stdout(json);
    if (s->config.stream)
        emit_stream(s, alert, change, ocsf ? json : NULL, conn);
    if (s->config.exec_cmd)
        emit_hook(s, alert, json);
    free(json);
}

void aw_sinks_close(aw_sinks *s)
{
    s->closing = true;
    while (s->head) {
        queued *q = s->head;
        s->head = q->next;
        s->stats.hook_dropped++;
        free_queued(q);
    }
    s->tail = NULL;
    s->queued_count = 0;
    /* A hook still running keeps going on its own; the daemon does not wait. */
    for (hook_run *run = s->running; run; run = run->next) {
        close_once((uv_handle_t *)&run->proc);
        close_once((uv_handle_t *)&run->in);
    }
    maybe_free(s);
}
