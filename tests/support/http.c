/* http.c -- a minimal HTTP/1.0 client for the /metrics tests: one request
 * written as given (so a test can also send a malformed one), the whole
 * answer read until the server closes, every step under a deadline; and
 * the port a daemon's /metrics listens on. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "tests/support/support.h"

int aw_test_http_connect(int port, int timeout_ms)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    cr_assert(connect(fd, (struct sockaddr *)&a, sizeof a) == 0,
              "cannot connect to port %d", port);
    return fd;
}

char *aw_test_http_request(int port, const char *request, int timeout_ms)
{
    int fd = aw_test_http_connect(port, timeout_ms);
    size_t len = 0, cap = 4096;
    char *out = malloc(cap);
    ssize_t got;
    cr_assert(out);
    cr_assert(write(fd, request, strlen(request)) == (ssize_t)strlen(request));
    while ((got = read(fd, out + len, cap - len - 1)) > 0) {
        len += (size_t)got;
        if (cap - len < 1024)
            cr_assert((out = realloc(out, cap *= 2)));
    }
    close(fd);
    out[len] = '\0';
    return out;
}

bool aw_test_metric(const char *page, const char *series, double *value)
{
    size_t n = strlen(series);
    for (const char *line = page; line && *line;) {
        const char *next = strchr(line, '\n');
        if (strncmp(line, series, n) == 0 && line[n] == ' ') {
            *value = strtod(line + n + 1, NULL);
            return true;
        }
        line = next ? next + 1 : NULL;
    }
    return false;
}

static bool metrics_listening(void *ud)
{
    const aw_test_proc *p = ud;
    char *err = aw_test_read_file(p->err_path, NULL);
    const char *at = err ? strstr(err, "event=metrics_listening") : NULL;
    bool yes = at && strstr(at, " port=") && strchr(strstr(at, " port="), '\n');
    free(err);
    return yes;
}

int aw_test_daemon_metrics_port(aw_test_proc *p)
{
    char *err;
    int port;
    cr_assert(aw_test_wait_for(metrics_listening, p, 10000),
              "the daemon did not log metrics_listening");
    err = aw_test_read_file(p->err_path, NULL);
    port = atoi(strstr(strstr(err, "event=metrics_listening"), " port=") + 6);
    free(err);
    return port;
}
