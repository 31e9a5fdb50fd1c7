/* redis_conn.c -- the byte-moving part of the consumer: one hiredis async
 * connection on the libuv loop, guarded and restarted.
 *
 * hiredis 0.14's async API has no connect or command timeouts, so a Redis
 * that stops answering (a dead peer, a black-holed route, a SIGSTOPped
 * server) would leave a read pending forever. Every command therefore gets
 * a deadline: the time the server may hold it on purpose (BLOCK) plus a
 * margin. Replies arrive in the order commands were sent, so the commands
 * in flight form a FIFO whose deadlines never decrease (a command queued
 * behind a blocking read cannot be answered before it), and one uv_timer
 * armed for the oldest deadline guards them all. A connect is guarded the
 * same way: the handshake (AUTH, SELECT, PING) is just the first commands.
 *
 * When the connection goes -- an error, EOF, a missed deadline, or the
 * owner resetting it -- hiredis answers every command in flight with NULL,
 * and only after the last of those does the owner hear `lost`, so nothing
 * it allocated for a command is touched after it cleaned up. Reconnects
 * back off exponentially from 100 ms to 10 s and reset on success. Each
 * change of state is logged once: a Redis that stays down for an hour
 * yields one line, not thirty thousand.
 *
 * The password is sent with AUTH and never logged; hiredis' error strings
 * do not contain it.
 *
 * The loop adapter is our own rather than hiredis 0.14's adapters/libuv.h:
 * that one returns early when libuv reports a poll error, so a refused
 * connect or a reset socket is never handed to hiredis and the connection
 * hangs until the deadline. Ours lets hiredis read or write on an error, so
 * it sees the failing syscall and reports it at once (as hiredis 1.x does).
 */
#include "consumer/redis_conn.h"

#include <assert.h>
#include <hiredis/async.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS   10000

typedef enum conn_state {
    CONN_IDLE,      /* not connected; maybe a reconnect is scheduled */
    CONN_HANDSHAKE, /* socket connecting, AUTH / SELECT / PING in flight */
    CONN_READY,
} conn_state;

typedef struct in_flight {
    aw_redis_reply_fn *fn;
    void *privdata;
    uint64_t deadline; /* loop time, ms */
} in_flight;

struct aw_redis_conn {
    uv_loop_t *loop;
    aw_redis_conn_config config;
    aw_redis_conn_handlers handlers;
    void *ud;
    aw_log *log;

    redisAsyncContext *ac; /* NULL while idle or being torn down */
    conn_state state;
    bool dropping; /* ac gone; waiting for its NULL answers */
    bool in_reply; /* a reply callback is running */
    bool closing;
    bool down_logged; /* "unreachable" said since the last ready */
    bool ever_ready;
    int64_t backoff_ms;
    int open_handles;

    in_flight *ring; /* FIFO of commands awaiting an answer */
    size_t head, count, cap;

    uv_timer_t watchdog;
    uv_timer_t retry;
};

static void connect_now(aw_redis_conn *c);

/* ---- The loop adapter ------------------------------------------------------- */

typedef struct uv_events {
    redisAsyncContext *ac;
    uv_poll_t poll;
    int events;
} uv_events;

static void on_poll(uv_poll_t *handle, int status, int events)
{
    uv_events *p = handle->data;
    /* On an error, try what we were waiting for: the syscall fails and
     * hiredis reports why. */
    int ready = status < 0 ? p->events : events;
    if (p->ac && (ready & UV_READABLE))
        redisAsyncHandleRead(p->ac);
    if (p->ac && (ready & UV_WRITABLE))
        redisAsyncHandleWrite(p->ac);
}

static void poll_update(uv_events *p, int events)
{
    p->events = events;
    if (events)
        uv_poll_start(&p->poll, events, on_poll);
    else
        uv_poll_stop(&p->poll);
}

static void ev_add_read(void *data)
{
    uv_events *p = data;
    poll_update(p, p->events | UV_READABLE);
}
static void ev_del_read(void *data)
{
    uv_events *p = data;
    poll_update(p, p->events & ~UV_READABLE);
}
static void ev_add_write(void *data)
{
    uv_events *p = data;
    poll_update(p, p->events | UV_WRITABLE);
}
static void ev_del_write(void *data)
{
    uv_events *p = data;
    poll_update(p, p->events & ~UV_WRITABLE);
}

static void on_poll_closed(uv_handle_t *handle)
{
    free(handle->data);
}

static void ev_cleanup(void *data)
{
    uv_events *p = data;
    p->ac = NULL; /* the context is being freed */
    uv_close((uv_handle_t *)&p->poll, on_poll_closed);
}

static int attach_to_loop(redisAsyncContext *ac, uv_loop_t *loop)
{
    uv_events *p;
    if (ac->ev.data)
        return REDIS_ERR;
    if (!(p = calloc(1, sizeof *p)))
        return REDIS_ERR;
    if (uv_poll_init(loop, &p->poll, ac->c.fd) != 0) {
        free(p);
        return REDIS_ERR;
    }
    p->ac = ac;
    p->poll.data = p;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    ac->ev.data = p;
    return REDIS_OK;
}

/* ---- The FIFO of commands in flight ---------------------------------------- */

static int ring_push(aw_redis_conn *c, aw_redis_reply_fn *fn, void *privdata,
                     uint64_t deadline)
{
    if (c->count == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 32;
        in_flight *grown = malloc(cap * sizeof *grown);
        if (!grown)
            return AW_ERR_NOMEM;
        for (size_t i = 0; i < c->count; i++)
            grown[i] = c->ring[(c->head + i) % c->cap];
        free(c->ring);
        c->ring = grown;
        c->head = 0;
        c->cap = cap;
    }
    if (c->count) {
        uint64_t last = c->ring[(c->head + c->count - 1) % c->cap].deadline;
        if (deadline < last)
            deadline = last;
    }
    c->ring[(c->head + c->count) % c->cap] =
        (in_flight){fn, privdata, deadline};
    c->count++;
    return AW_OK;
}

static in_flight ring_pop(aw_redis_conn *c)
{
    in_flight f;
    assert(c->count > 0);
    f = c->ring[c->head];
    c->head = (c->head + 1) % c->cap;
    c->count--;
    return f;
}

static void on_watchdog(uv_timer_t *t);

static void arm_watchdog(aw_redis_conn *c)
{
    uint64_t now = uv_now(c->loop), deadline;
    if (!c->count || !c->ac) {
        uv_timer_stop(&c->watchdog);
        return;
    }
    deadline = c->ring[c->head].deadline;
    uv_timer_start(&c->watchdog, on_watchdog,
                   deadline > now ? deadline - now : 0, 0);
}

/* ---- Losing and regaining the connection ---------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    aw_redis_conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    c->handlers.closed(c, c->ud);
    free(c->ring);
    free(c);
}

static void on_retry(uv_timer_t *t)
{
    connect_now(t->data);
}

/* Called once the torn-down context has answered everything. */
static void settle_loss(aw_redis_conn *c)
{
    bool was_ready = c->state == CONN_READY;
    if (!c->dropping || c->count || c->in_reply)
        return;
    c->dropping = false;
    c->state = CONN_IDLE;
    uv_timer_stop(&c->watchdog);
    if (was_ready)
        c->handlers.lost(c, c->ud);
    if (c->closing) {
        uv_close((uv_handle_t *)&c->watchdog, on_handle_closed);
        uv_close((uv_handle_t *)&c->retry, on_handle_closed);
        return;
    }
    uv_timer_start(&c->retry, on_retry, (uint64_t)c->backoff_ms, 0);
    if (!was_ready) {
        c->backoff_ms *= 2;
        if (c->backoff_ms > BACKOFF_MAX_MS)
            c->backoff_ms = BACKOFF_MAX_MS;
    }
}

static void log_loss(aw_redis_conn *c, const char *why)
{
    if (c->closing)
        return;
    if (c->state == CONN_READY) {
        AW_LOG(c->log, AW_LOG_WARN, "redis_disconnected",
               AW_LOG_S("host", c->config.host),
               AW_LOG_I("port", c->config.port), AW_LOG_S("reason", why));
        c->down_logged = false;
    } else if (!c->down_logged) {
        AW_LOG(c->log, AW_LOG_WARN, "redis_unreachable",
               AW_LOG_S("host", c->config.host),
               AW_LOG_I("port", c->config.port), AW_LOG_S("reason", why),
               AW_LOG_S("retrying", "with backoff up to 10 s"));
        c->down_logged = true;
    }
}

/* The context is gone or going: free_context says whether we must free it
 * (hiredis frees it itself after an error or a failed connect). */
static void lose(aw_redis_conn *c, const char *why, bool free_context)
{
    redisAsyncContext *ac = c->ac;
    if (!ac)
        return;
    log_loss(c, why);
    c->ac = NULL;
    c->dropping = true;
    if (free_context)
        redisAsyncFree(ac);
    settle_loss(c);
}

static void on_watchdog(uv_timer_t *t)
{
    aw_redis_conn *c = t->data;
    char why[96];
    snprintf(why, sizeof why, "no answer within the deadline (margin %lld ms)",
             (long long)c->config.margin_ms);
    lose(c, why, true);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    aw_redis_conn *c = privdata;
    in_flight f = ring_pop(c);
    c->in_reply = true;
    if (!reply && c->ac == ac)
        lose(c, ac->errstr[0] ? ac->errstr : "connection closed", false);
    f.fn(c, reply, f.privdata);
    c->in_reply = false;
    if (c->dropping)
        settle_loss(c);
    else
        arm_watchdog(c);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    aw_redis_conn *c = ac->data;
    if (status != REDIS_OK && c->ac == ac)
        lose(c, ac->errstr[0] ? ac->errstr : "connect failed", false);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    aw_redis_conn *c = ac->data;
    (void)status;
    if (c->ac == ac)
        lose(c, ac->errstr[0] ? ac->errstr : "connection closed", false);
}

/* ---- The handshake ----------------------------------------------------------- */

static void on_handshake(aw_redis_conn *c, redisReply *reply, void *last)
{
    if (!reply || c->state != CONN_HANDSHAKE)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        char why[160];
        snprintf(why, sizeof why, "handshake refused: %.*s", (int)reply->len,
                 reply->str);
        aw_redis_conn_reset(c, why);
        return;
    }
    if (!last)
        return;
    c->state = CONN_READY;
    c->backoff_ms = BACKOFF_FIRST_MS;
    c->down_logged = false;
    AW_LOG(c->log, AW_LOG_INFO,
           c->ever_ready ? "redis_reconnected" : "redis_connected",
           AW_LOG_S("host", c->config.host), AW_LOG_I("port", c->config.port),
           AW_LOG_I("db", c->config.db));
    c->ever_ready = true;
    c->handlers.ready(c, c->ud);
}

static int send_raw(aw_redis_conn *c, int64_t wait_ms, aw_redis_reply_fn *fn,
                    void *privdata, int argc, const char **argv,
                    const size_t *argvlen)
{
    uint64_t deadline =
        uv_now(c->loop) + (uint64_t)(wait_ms + c->config.margin_ms);
    if (ring_push(c, fn, privdata, deadline) != AW_OK)
        return AW_ERR_NOMEM;
    if (redisAsyncCommandArgv(c->ac, on_reply, c, argc, argv, argvlen) !=
        REDIS_OK) {
        c->count--;
        return AW_ERR_IO;
    }
    if (c->count == 1)
        arm_watchdog(c);
    return AW_OK;
}

static void send_handshake(aw_redis_conn *c)
{
    static char last_marker;
    char db[16];
    const char *auth[] = {"AUTH", c->config.password};
    const char *select[] = {"SELECT", db};
    const char *ping[] = {"PING"};
    int rc = AW_OK;

    snprintf(db, sizeof db, "%d", c->config.db);
    if (c->config.password)
        rc = send_raw(c, 0, on_handshake, NULL, 2, auth, NULL);
    if (rc == AW_OK && c->config.db)
        rc = send_raw(c, 0, on_handshake, NULL, 2, select, NULL);
    if (rc == AW_OK)
        rc = send_raw(c, 0, on_handshake, &last_marker, 1, ping, NULL);
    if (rc != AW_OK)
        lose(c, "cannot queue the handshake", true);
}

static void connect_now(aw_redis_conn *c)
{
    redisAsyncContext *ac;
    if (c->closing || c->ac || c->dropping)
        return;
    assert(c->count == 0);
    ac = redisAsyncConnect(c->config.host, c->config.port);
    if (!ac || ac->err) {
        char why[160];
        snprintf(why, sizeof why, "%s", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        c->state = CONN_HANDSHAKE; /* counts as a failed attempt */
        c->ac = NULL;
        log_loss(c, why);
        c->dropping = true;
        settle_loss(c);
        return;
    }
    ac->data = c;
    if (attach_to_loop(ac, c->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        c->state = CONN_HANDSHAKE;
        log_loss(c, "cannot attach to the event loop");
        c->dropping = true;
        settle_loss(c);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    c->ac = ac;
    c->state = CONN_HANDSHAKE;
    send_handshake(c);
}

/* ---- The public surface ------------------------------------------------------- */

int aw_redis_conn_new(uv_loop_t *loop, const aw_redis_conn_config *config,
                      const aw_redis_conn_handlers *handlers, void *ud,
                      aw_log *log, aw_redis_conn **out, aw_error *err)
{
    aw_redis_conn *c = calloc(1, sizeof *c);
    *out = NULL;
    if (!c)
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    c->loop = loop;
    c->config = *config;
    c->handlers = *handlers;
    c->ud = ud;
    c->log = log;
    c->backoff_ms = BACKOFF_FIRST_MS;
    uv_timer_init(loop, &c->watchdog);
    uv_timer_init(loop, &c->retry);
    c->watchdog.data = c->retry.data = c;
    c->open_handles = 2;
    *out = c;
    return AW_OK;
}

void aw_redis_conn_start(aw_redis_conn *c)
{
    connect_now(c);
}

int aw_redis_conn_send(aw_redis_conn *c, int64_t wait_ms, aw_redis_reply_fn *fn,
                       void *privdata, int argc, const char **argv,
                       const size_t *argvlen)
{
    if (c->state != CONN_READY || !c->ac)
        return AW_ERR_IO;
    return send_raw(c, wait_ms, fn, privdata, argc, argv, argvlen);
}

bool aw_redis_conn_is_ready(const aw_redis_conn *c)
{
    return c->state == CONN_READY && c->ac;
}

size_t aw_redis_conn_in_flight(const aw_redis_conn *c)
{
    return c->count;
}

void aw_redis_conn_reset(aw_redis_conn *c, const char *why)
{
    lose(c, why, true);
}

void aw_redis_conn_close(aw_redis_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    uv_timer_stop(&c->retry);
    if (c->ac) {
        lose(c, "closing", true);
    } else if (!c->dropping) {
        c->dropping = true;
        settle_loss(c);
    }
}
