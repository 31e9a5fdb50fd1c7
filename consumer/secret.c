/* secret.c -- passwords and keys from files, and Redis addresses.
 *
 * Secrets reach auditwatch through files or the environment, never argv
 * (DESIGN §5, §7): argv is visible to every local user in ps. A secret file
 * that others may read defeats the point, so it is refused with a message
 * that says how to fix it; a group-readable file is accepted (a service
 * group sharing a key with Caracal is the usual deployment). Buffers that
 * held a secret are cleared before they are freed, and no message ever
 * quotes one.
 *
 * Addresses live here because the same rule applies to them: a URL with a
 * password in it is refused rather than quietly used.
 */
#include "consumer/consumer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET_MAX_BYTES 4096

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
           c == '\f';
}

static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

void aw_secret_free(char *secret)
{
    if (!secret)
        return;
    wipe(secret, strlen(secret));
    free(secret);
}

/* Reads all of fd into buf (SECRET_MAX_BYTES + 1 bytes), *len the size. */
static int read_all(int fd, const char *path, char *buf, size_t *len,
                    aw_error *err)
{
    size_t n = 0;
    for (;;) {
        ssize_t got = read(fd, buf + n, SECRET_MAX_BYTES + 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return aw_error_set(err, AW_ERR_IO, "cannot read %s: %s", path,
                                strerror(errno));
        if (got == 0)
            break;
        n += (size_t)got;
        if (n > SECRET_MAX_BYTES)
            return aw_error_set(err, AW_ERR_INVALID,
                                "%s is larger than %d bytes: not a secret file",
                                path, SECRET_MAX_BYTES);
    }
    *len = n;
    return AW_OK;
}

int aw_secret_read_file(const char *path, char **out, aw_error *err)
{
    struct stat st;
    char *buf;
    size_t len = 0, start = 0;
    int fd, rc;

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return aw_error_set(err, AW_ERR_IO, "cannot open %s: %s", path,
                            strerror(errno));
    if (fstat(fd, &st) != 0) {
        rc = aw_error_set(err, AW_ERR_IO, "cannot stat %s: %s", path,
                          strerror(errno));
        close(fd);
        return rc;
    }
    if (!S_ISREG(st.st_mode) || (st.st_mode & S_IROTH)) {
        close(fd);
        return aw_error_set(
            err, AW_ERR_INVALID,
            S_ISREG(st.st_mode)
                ? "%s is readable by others (mode %04o): chmod o-r it"
                : "%s is not a regular file (mode %04o)",
            path, (unsigned)(st.st_mode & 07777));
    }
    if (!(buf = malloc(SECRET_MAX_BYTES + 2))) {
        close(fd);
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    }
    rc = read_all(fd, path, buf, &len, err);
    close(fd);
    if (rc != AW_OK) {
        wipe(buf, SECRET_MAX_BYTES + 2);
        free(buf);
        return rc;
    }
    while (len > 0 && is_space(buf[len - 1]))
        len--;
    while (start < len && is_space(buf[start]))
        start++;
    if (memchr(buf + start, '\0', len - start)) {
        wipe(buf, SECRET_MAX_BYTES + 2);
        free(buf);
        return aw_error_set(err, AW_ERR_INVALID, "%s holds a NUL byte", path);
    }
    memmove(buf, buf + start, len - start);
    wipe(buf + (len - start), SECRET_MAX_BYTES + 2 - (len - start));
    *out = buf;
    return AW_OK;
}

int aw_secret_load_hmac_key(const char *path, const char *env_hex,
                            aw_hmac_key **out, aw_error *err)
{
    aw_error kerr = {0};
    const char *hex;
    int rc;

    *out = NULL;
    if (path) {
        char *text;
        if ((rc = aw_secret_read_file(path, &text, err)) != AW_OK)
            return rc;
        rc = aw_hmac_key_from_hex(text, strlen(text), out, &kerr);
        aw_secret_free(text);
        return rc == AW_OK
                   ? AW_OK
                   : aw_error_set(err, rc, "key file %s: %s", path, kerr.msg);
    }
    if (!env_hex || !(hex = getenv(env_hex)) || !*hex)
        return AW_OK;
    rc = aw_hmac_key_from_hex(hex, strlen(hex), out, &kerr);
    return rc == AW_OK ? AW_OK
                       : aw_error_set(err, rc, "$%s: %s", env_hex, kerr.msg);
}

/* A decimal number in [min, max] spanning exactly s[0..len). */
static bool parse_number(const char *s, size_t len, long min, long max,
                         int *out)
{
    long v = 0;
    if (len == 0 || len > 9)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max)
        return false;
    *out = (int)v;
    return true;
}

int aw_redis_address_parse(const char *url, aw_redis_address *out,
                           aw_error *err)
{
    const char *p = url, *end, *host, *host_end, *slash;
    size_t hostlen;

    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (strncmp(p, "redis://", 8) == 0)
        p += 8;
    else if (strstr(p, "://"))
        return aw_error_set(
            err, AW_ERR_INVALID,
            "Redis URL \"%s\": only redis:// is supported (no TLS in hiredis 0.14)",
            url);
    slash = strchr(p, '/');
    end = slash ? slash : p + strlen(p);
    if (memchr(p, '@', (size_t)(end - p)))
        return aw_error_set(err, AW_ERR_INVALID,
                            "a password in the Redis URL is refused: use "
                            "--redis-password-file or REDIS_PASSWORD_FILE");
    host = p;
    if (*p == '[') { /* [v6 address] */
        host = p + 1;
        host_end = memchr(host, ']', (size_t)(end - host));
        if (!host_end)
            return aw_error_set(err, AW_ERR_INVALID,
                                "Redis URL \"%s\": unclosed [", url);
        p = host_end + 1;
    } else {
        host_end = memchr(p, ':', (size_t)(end - p));
        if (!host_end)
            host_end = end;
        p = host_end;
    }
    hostlen = (size_t)(host_end - host);
    if (hostlen == 0 || hostlen >= sizeof out->host)
        return aw_error_set(err, AW_ERR_INVALID, "Redis URL \"%s\": no host",
                            url);
    memcpy(out->host, host, hostlen);
    if (p < end && (*p != ':' || !parse_number(p + 1, (size_t)(end - p - 1), 1,
                                               65535, &out->port)))
        return aw_error_set(err, AW_ERR_INVALID, "Redis URL \"%s\": bad port",
                            url);
    if (slash && slash[1] &&
        !parse_number(slash + 1, strlen(slash + 1), 0, 1 << 20, &out->db))
        return aw_error_set(err, AW_ERR_INVALID,
                            "Redis URL \"%s\": bad database number", url);
    return AW_OK;
}
