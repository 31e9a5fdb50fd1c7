/* redis_conn.h -- private to consumer/: one hiredis async connection on a
 * libuv loop that never hangs and always comes back. */
#ifndef AW_CONSUMER_REDIS_CONN_H
#define AW_CONSUMER_REDIS_CONN_H

#include <hiredis/hiredis.h>
#include <uv.h>

#include "consumer/log.h"

typedef struct aw_redis_conn aw_redis_conn;

/* The answer to one command. reply NULL: the connection went away first.
 * The reply is freed when the callback returns: copy what you keep. */
typedef void aw_redis_reply_fn(aw_redis_conn *conn, redisReply *reply,
                               void *privdata);

typedef struct aw_redis_conn_handlers {
    /* Connected, authenticated, database selected: commands may be sent. */
    void (*ready)(aw_redis_conn *conn, void *ud);
    /* A ready connection went away. Every command sent on it has been
     * answered NULL already; a reconnect is scheduled. */
    void (*lost)(aw_redis_conn *conn, void *ud);
    /* After aw_redis_conn_close, once nothing of the connection is left on
     * the loop. The handle is freed when this returns. */
    void (*closed)(aw_redis_conn *conn, void *ud);
} aw_redis_conn_handlers;

typedef struct aw_redis_conn_config {
    const char *host;
    int port;
    int db;
    const char *password; /* borrowed; NULL: no AUTH */
    int64_t margin_ms;    /* on top of a command's own wait */
} aw_redis_conn_config;

/* config, handlers, ud and log are borrowed. Does not connect yet. */
int aw_redis_conn_new(uv_loop_t *loop, const aw_redis_conn_config *config,
                      const aw_redis_conn_handlers *handlers, void *ud,
                      aw_log *log, aw_redis_conn **out, aw_error *err);
/* Connects now, and again after every loss until closed. */
void aw_redis_conn_start(aw_redis_conn *conn);

/* Sends one command while ready. wait_ms is how long the server may hold
 * the answer on purpose (BLOCK); an answer later than that plus the margin
 * means the connection is dead, and it is dropped. fn is called exactly
 * once unless this returns an error (AW_ERR_IO when not ready). */
int aw_redis_conn_send(aw_redis_conn *conn, int64_t wait_ms,
                       aw_redis_reply_fn *fn, void *privdata, int argc,
                       const char **argv, const size_t *argvlen);

bool aw_redis_conn_is_ready(const aw_redis_conn *conn);
/* Commands sent and not answered yet. */
size_t aw_redis_conn_in_flight(const aw_redis_conn *conn);

/* Drops the connection (commands in flight are answered NULL) and
 * reconnects after the backoff. why goes to the log. */
void aw_redis_conn_reset(aw_redis_conn *conn, const char *why);
/* Drops the connection for good; handlers->closed follows. */
void aw_redis_conn_close(aw_redis_conn *conn);

#endif /* AW_CONSUMER_REDIS_CONN_H */
