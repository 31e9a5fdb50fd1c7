/* redis_client.c -- blocking Redis connections for the one-shot commands
 * (`status`, `replay --from-redis`).
 *
 * The daemon talks to Redis through the consumer's async machinery; a
 * command that asks a few questions and exits is simpler with hiredis'
 * blocking API. Both the connect and every command are bounded by a
 * timeout, so a black-holed Redis makes `status --ready` answer "not ready"
 * instead of hanging a health check.
 *
 * The address is parsed by consumer/ (the same rules as `run`: no password
 * in the URL); the password comes from --redis-password-file or
 * $REDIS_PASSWORD_FILE (Caracal's variable) and is cleared after AUTH.
 */
#include "cli/cli.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

int aw_cli_redis_connect(const char *url, const char *password_file,
                         int timeout_ms, redisContext **out, aw_error *err)
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
