/* reply.c -- what Redis says about streams, read without trusting its shape.
 *
 * The daemon's decisions (what to ack, what was trimmed, how often an entry
 * was delivered) rest on a handful of reply shapes: entry lists
 * ([id, [field, value, ...]] with nil for an entry deleted after delivery),
 * XINFO's flat key/value maps, and XPENDING rows. Each is checked here
 * element by element, so a surprising reply is an error with a name, never
 * a crash. Entries are copied out of the reply into one aw_raw_entry block
 * each, because hiredis frees the reply when the callback returns.
 * Entry ids become aw_stream_id (event/), the one id type of the tree.
 *
 * The map look-up, the entry copy and the blocking connection with its
 * AUTH/SELECT handshake are public (consumer.h): the one-shot commands and
 * the bench tools that talk to Redis use these instead of copies of their
 * own. A blocking connection bounds the connect and every command by a
 * timeout, so a black-holed Redis makes `status --ready` answer "not
 * ready" instead of hanging a health check.
 */
#include "consumer/reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool aw_reply_stream_id(const redisReply *r, aw_stream_id *out)
{
    return r && r->type == REDIS_REPLY_STRING &&
           aw_stream_id_from_text(r->str, r->len, out) == AW_OK;
}

bool aw_reply_time_ns(const redisReply *r, int64_t *ns)
{
    long long sec, usec;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_STRING ||
        sscanf(r->element[0]->str, "%lld", &sec) != 1 ||
        sscanf(r->element[1]->str, "%lld", &usec) != 1 || sec <= 0 ||
        sec >= INT64_MAX / 1000000000 - 1 || usec < 0 || usec >= 1000000)
        return false;
    *ns = (int64_t)sec * 1000000000 + (int64_t)usec * 1000;
    return true;
}

bool aw_reply_is_error(const redisReply *r, const char *prefix)
{
    size_t n = strlen(prefix);
    return r && r->type == REDIS_REPLY_ERROR && r->len >= n &&
           memcmp(r->str, prefix, n) == 0;
}

const redisReply *aw_redis_map_get(const redisReply *map, const char *key)
{
    size_t n = strlen(key);
    if (!map || map->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < map->elements; i += 2) {
        const redisReply *k = map->element[i];
        if ((k->type == REDIS_REPLY_STRING || k->type == REDIS_REPLY_STATUS) &&
            k->len == n && memcmp(k->str, key, n) == 0)
            return map->element[i + 1];
    }
    return NULL;
}

int aw_reply_each_entry(const redisReply *list, aw_reply_entry_fn fn, void *ud)
{
    if (!list || list->type == REDIS_REPLY_NIL)
        return AW_OK;
    if (list->type != REDIS_REPLY_ARRAY)
        return AW_ERR_INVALID;
    for (size_t i = 0; i < list->elements; i++) {
        const redisReply *e = list->element[i], *fields;
        int rc;
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[0]->type != REDIS_REPLY_STRING)
            return AW_ERR_INVALID;
        fields = e->element[1];
        if (fields->type == REDIS_REPLY_NIL ||
            (fields->type == REDIS_REPLY_ARRAY && fields->elements == 0))
            fields = NULL;
        else if (fields->type != REDIS_REPLY_ARRAY || fields->elements % 2)
            return AW_ERR_INVALID;
        if ((rc = fn(e->element[0], fields, ud)) != 0)
            return rc;
    }
    return AW_OK;
}

int aw_redis_entry_copy(const char *stream, const redisReply *id,
                        const redisReply *fields, aw_field **scratch,
                        size_t *scratch_cap, aw_raw_entry **out, aw_error *err)
{
    size_t n =
        fields && fields->type == REDIS_REPLY_ARRAY ? fields->elements / 2 : 0;
    if (n > *scratch_cap) {
        aw_field *grown = realloc(*scratch, n * sizeof *grown);
        if (!grown)
            return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
        *scratch = grown;
        *scratch_cap = n;
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *k = fields->element[2 * i],
                         *v = fields->element[2 * i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            return aw_error_set(err, AW_ERR_INVALID,
                                "entry %.*s of %s: a field is not a string",
                                (int)id->len, id->str, stream);
        (*scratch)[i] = (aw_field){{k->str, k->len}, {v->str, v->len}};
    }
    return aw_raw_entry_new((aw_bytes){stream, strlen(stream)},
                            (aw_bytes){id->str, id->len}, *scratch, n, out,
                            err);
}

/* One command of the handshake; the reply must not be an error. */
static int handshake_step(redisContext *c, const char *what, int argc,
                          const char **argv, aw_error *err)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    int rc = AW_OK;
    if (!r)
        return aw_error_set(err, AW_ERR_IO, "Redis %s: %s", what, c->errstr);
    if (r->type == REDIS_REPLY_ERROR)
        rc = aw_error_set(err, AW_ERR, "Redis %s: %.*s", what, (int)r->len,
                          r->str);
    freeReplyObject(r);
    return rc;
}

int aw_redis_handshake(redisContext *c, const char *password, int db,
                       aw_error *err)
{
    char dbtext[16];
    const char *auth[] = {"AUTH", password};
    const char *select[] = {"SELECT", dbtext};
    int rc;
    if (password && (rc = handshake_step(c, "AUTH", 2, auth, err)) != AW_OK)
        return rc;
    snprintf(dbtext, sizeof dbtext, "%d", db);
    return db ? handshake_step(c, "SELECT", 2, select, err) : AW_OK;
}

int aw_redis_connect(const char *url, const char *password_file, int timeout_ms,
                     redisContext **out, aw_error *err)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    aw_redis_address a;
    redisContext *c;
    int rc;

    *out = NULL;
    if ((rc = aw_redis_address_parse(url, &a, err)) != AW_OK)
        return rc;
    if (!(c = redisConnectWithTimeout(a.host, a.port, tv)))
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    if (c->err) {
        rc = aw_error_set(err, AW_ERR_IO, "cannot connect to Redis at %s: %s",
                          url, c->errstr);
        redisFree(c);
        return rc;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        redisFree(c);
        return aw_error_set(err, AW_ERR_IO, "cannot set the Redis timeout");
    }
    if (!password_file)
        password_file = getenv("REDIS_PASSWORD_FILE");
    if (password_file && !*password_file)
        password_file = NULL;
    char *password = NULL;
    if ((password_file &&
         (rc = aw_secret_read_file(password_file, &password, err)) != AW_OK) ||
        (rc = aw_redis_handshake(c, password, a.db, err)) != AW_OK) {
        aw_secret_free(password);
        redisFree(c);
        return rc;
    }
    aw_secret_free(password);
    *out = c;
    return AW_OK;
}
