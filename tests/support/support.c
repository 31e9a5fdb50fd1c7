/* support.c -- the shared ground of the integration tests (support.h).
 *
 * Real servers, real processes: a redis-server per test on a free loopback
 * port (found by binding port 0), the auditwatch binary started with fork
 * and exec so its stdout and stderr land in files the test can read, and a
 * blocking hiredis connection to publish with. Every child is tied to the
 * test process with PR_SET_PDEATHSIG, because Criterion runs each test in
 * its own process and a failed assertion ends it on the spot.
 */
#include "tests/support/support.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REDIS_SERVER "redis-server"
#define PIPE_WINDOW  1000

/* ---- Files ----------------------------------------------------------------- */

void aw_test_tmpdir(char *dir)
{
    const char *base = getenv("TMPDIR");
    snprintf(dir, PATH_MAX, "%s/aw-test-XXXXXX", base && *base ? base : "/tmp");
    cr_assert(mkdtemp(dir) != NULL, "mkdtemp %s: %s", dir, strerror(errno));
}

void aw_test_rmtree(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    if (!d) {
        unlink(path);
        return;
    }
    while ((e = readdir(d))) {
        char child[PATH_MAX];
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        aw_test_rmtree(aw_test_path(path, e->d_name, child));
    }
    closedir(d);
    rmdir(path);
}

char *aw_test_path(const char *dir, const char *name, char *out)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);
    cr_assert(n > 0 && n < PATH_MAX, "path too long: %s/%s", dir, name);
    return out;
}

char *aw_test_read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0;
    if (!fp)
        return NULL;
    for (;;) {
        if (cap - n < 4096) {
            cap = cap ? cap * 2 : 65536;
            buf = realloc(buf, cap + 1);
            cr_assert(buf);
        }
        size_t got = fread(buf + n, 1, cap - n, fp);
        n += got;
        if (got == 0)
            break;
    }
    fclose(fp);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

void aw_test_write_file(const char *path, const char *text, int mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    size_t len = strlen(text);
    cr_assert(fd >= 0, "create %s: %s", path, strerror(errno));
    cr_assert(write(fd, text, len) == (ssize_t)len);
    cr_assert(fchmod(fd, (mode_t)mode) == 0);
    close(fd);
}

/* ---- Time and waiting --------------------------------------------------------- */

int64_t aw_test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool aw_test_wait_for(bool (*cond)(void *ud), void *ud, int timeout_ms)
{
    int64_t until = aw_test_now_ms() + timeout_ms;
    for (;;) {
        if (cond(ud))
            return true;
        if (aw_test_now_ms() >= until)
            return false;
        usleep(20000);
    }
}

/* ---- Children ---------------------------------------------------------------------- */

/* fork + exec with stdout/stderr to files; the child dies with us. */
static pid_t start_child(const char *file, char *const *argv,
                         const char *const *env, const char *out_path,
                         const char *err_path)
{
    pid_t parent = getpid(), pid;
    fflush(NULL);
    pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int out = open(out_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int err = open(err_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent || out < 0 || err < 0)
            _exit(127);
        dup2(out, 1);
        dup2(err, 2);
        close(out);
        close(err);
        for (const char *const *e = env; e && *e; e++)
            putenv((char *)*e);
        execvp(file, argv);
        _exit(127);
    }
    return pid;
}

static void reap(aw_test_proc *p, int wstatus)
{
    p->status =
        WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    p->pid = 0;
}

void aw_test_spawn_program(aw_test_proc *p, const char *program,
                           const char *dir, const char *tag,
                           const char *const *args, const char *const *env)
{
    char *argv[64];
    char name[64];
    size_t n = 0;
    argv[n++] = (char *)program;
    for (const char *const *a = args; *a; a++) {
        cr_assert(n < sizeof argv / sizeof *argv - 1);
        argv[n++] = (char *)*a;
    }
    argv[n] = NULL;
    memset(p, 0, sizeof *p);
    snprintf(name, sizeof name, "%s.out", tag);
    aw_test_path(dir, name, p->out_path);
    snprintf(name, sizeof name, "%s.err", tag);
    aw_test_path(dir, name, p->err_path);
    p->pid = start_child(program, argv, env, p->out_path, p->err_path);
}

void aw_test_spawn(aw_test_proc *p, const char *dir, const char *tag,
                   const char *const *args, const char *const *env)
{
    aw_test_spawn_program(p, AW_BINARY, dir, tag, args, env);
}

bool aw_test_wait(aw_test_proc *p, int timeout_ms)
{
    int64_t until = aw_test_now_ms() + timeout_ms;
    int wstatus;
    while (p->pid) {
        pid_t got = waitpid(p->pid, &wstatus, WNOHANG);
        cr_assert(got >= 0, "waitpid: %s", strerror(errno));
        if (got == p->pid) {
            reap(p, wstatus);
            return true;
        }
        if (aw_test_now_ms() >= until)
            return false;
        usleep(10000);
    }
    return true;
}

void aw_test_signal(aw_test_proc *p, int sig)
{
    cr_assert(p->pid > 0, "no process to signal");
    kill(p->pid, sig);
}

void aw_test_kill(aw_test_proc *p)
{
    int wstatus;
    if (!p->pid)
        return;
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &wstatus, 0);
    reap(p, wstatus);
}

int aw_test_run(aw_test_proc *p, const char *dir, const char *tag,
                const char *const *args, const char *const *env, int timeout_ms)
{
    aw_test_spawn(p, dir, tag, args, env);
    if (!aw_test_wait(p, timeout_ms)) {
        aw_test_kill(p);
        cr_assert_fail("auditwatch %s did not finish within %d ms", args[0],
                       timeout_ms);
    }
    return p->status;
}

void aw_test_daemon_start(aw_test_proc *p, const char *dir, const char *tag,
                          const aw_test_redis *r, const char *db,
                          const char *const *extra_args, const char *const *env)
{
    const char *args[64];
    char url[64];
    size_t n = 0;
    const char *base[] = {"run",  "--redis",    aw_test_redis_url(r, url),
                          "--db", db,           "--consumer",
                          tag,    "--block-ms", "200"};
    for (size_t i = 0; i < sizeof base / sizeof *base; i++)
        args[n++] = base[i];
    for (const char *const *a = extra_args; a && *a; a++) {
        cr_assert(n < sizeof args / sizeof *args - 1);
        args[n++] = *a;
    }
    args[n] = NULL;
    aw_test_spawn(p, dir, tag, args, env);
}

void aw_test_daemon_stop(aw_test_proc *p, int timeout_ms)
{
    char *err;
    aw_test_signal(p, SIGTERM);
    if (!aw_test_wait(p, timeout_ms)) {
        aw_test_kill(p);
        cr_assert_fail("auditwatch did not stop within %d ms of SIGTERM",
                       timeout_ms);
    }
    err = aw_test_read_file(p->err_path, NULL);
    cr_assert_eq(p->status, 0, "auditwatch exited %d; stderr:\n%s", p->status,
                 err ? err : "");
    free(err);
}

/* ---- redis-server -------------------------------------------------------------------- */

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;
    cr_assert(fd >= 0);
    cr_assert(bind(fd, (struct sockaddr *)&a, sizeof a) == 0, "bind: %s",
              strerror(errno));
    cr_assert(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static bool redis_answers(void *ud)
{
    const aw_test_redis *r = ud;
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    bool ok = false;
    if (c && !c->err) {
        redisReply *reply = redisCommand(c, "PING");
        ok = reply && reply->type == REDIS_REPLY_STATUS;
        if (reply)
            freeReplyObject(reply);
    }
    if (c)
        redisFree(c);
    return ok;
}

void aw_test_redis_start_again(aw_test_redis *r)
{
    char port[16], log[PATH_MAX];
    char *argv[] = {REDIS_SERVER,
                    "--port",
                    port,
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    r->persistent ? "yes" : "no",
                    "--dir",
                    r->dir,
                    "--daemonize",
                    "no",
                    NULL};
    cr_assert(r->pid == 0, "redis-server is already running");
    snprintf(port, sizeof port, "%d", r->port);
    aw_test_path(r->dir, "redis.log", log);
    r->pid = start_child(REDIS_SERVER, argv, NULL, log, log);
    cr_assert(aw_test_wait_for(redis_answers, r, 10000),
              "redis-server on port %d did not answer PING", r->port);
}

void aw_test_redis_start(aw_test_redis *r, bool persistent)
{
    memset(r, 0, sizeof *r);
    r->persistent = persistent;
    aw_test_tmpdir(r->dir);
    r->port = free_port();
    aw_test_redis_start_again(r);
}

void aw_test_redis_stop(aw_test_redis *r)
{
    aw_test_proc p = {.pid = r->pid};
    if (!r->pid)
        return;
    kill(r->pid, SIGTERM);
    if (!aw_test_wait(&p, 10000))
        aw_test_kill(&p);
    r->pid = 0;
}

void aw_test_redis_destroy(aw_test_redis *r)
{
    aw_test_redis_stop(r);
    if (r->dir[0])
        aw_test_rmtree(r->dir);
}

void aw_test_world_up(aw_test_redis *r, bool persistent, char *dir, char *db)
{
    aw_test_redis_start(r, persistent);
    aw_test_tmpdir(dir);
    aw_test_path(dir, "index.db", db);
}

void aw_test_world_down(aw_test_redis *r, const char *dir)
{
    aw_test_redis_destroy(r);
    aw_test_rmtree(dir);
}

char *aw_test_redis_url(const aw_test_redis *r, char *out)
{
    snprintf(out, 64, "redis://127.0.0.1:%d", r->port);
    return out;
}

redisContext *aw_test_redis_connect(const aw_test_redis *r)
{
    struct timeval tv = {10, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    cr_assert(c && !c->err, "connect to redis on port %d: %s", r->port,
              c ? c->errstr : "oom");
    redisSetTimeout(c, tv);
    return c;
}

redisReply *aw_test_command(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    redisReply *reply;
    va_start(ap, fmt);
    reply = redisvCommand(c, fmt, ap);
    va_end(ap);
    cr_assert(reply, "redis: %s", c->errstr);
    cr_assert(reply->type != REDIS_REPLY_ERROR, "redis: %s", reply->str);
    return reply;
}

/* ---- Test data --------------------------------------------------------------------- */

int64_t aw_test_sql_int(const char *db_path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *stmt;
    cr_assert_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK,
                 "%s: %s", sql, sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(stmt), SQLITE_ROW, "%s", sql);
    int64_t v = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return v;
}

aw_hmac_key *aw_test_key(void)
{
    aw_hmac_key *key;
    aw_error err = {0};
    cr_assert(aw_hmac_key_from_hex(AW_TEST_KEY_HEX, strlen(AW_TEST_KEY_HEX),
                                   &key, &err) == AW_OK,
              "test key: %s", err.msg);
    return key;
}

char *aw_test_key_file(const char *dir, const char *name, char *out)
{
    aw_test_write_file(aw_test_path(dir, name, out), AW_TEST_KEY_HEX "\n",
                       0600);
    return out;
}

size_t aw_test_audit_data(const aw_test_audit *a, char *buf, size_t size)
{
    int n;
    cr_assert(a->id, "an audit event needs an id");
    n = snprintf(
        buf, size,
        "{\"id\":\"%s\",\"zone_id\":\"%s\",\"event_type\":\"%s\",\"request_id\":\"%s\","
        "\"decision\":\"%s\",\"evaluation_status\":\"%s\","
        "\"determining_policies_json\":null,\"diagnostics_json\":null,%s%s%s"
        "\"occurred_at\":\"%s\"}",
        a->id, a->zone_id ? a->zone_id : "zone-1",
        a->event_type ? a->event_type : "token_exchange",
        a->request_id ? a->request_id : a->id,
        a->decision ? a->decision : "allow",
        a->evaluation_status ? a->evaluation_status : "complete",
        a->metadata_json ? "\"metadata_json\":" : "",
        a->metadata_json ? a->metadata_json : "", a->metadata_json ? "," : "",
        a->occurred_at ? a->occurred_at : "2026-05-21T12:00:00Z");
    cr_assert(n > 0 && (size_t)n < size, "audit data does not fit %zu bytes",
              size);
    return (size_t)n;
}

void aw_test_dlq_copy_of(const aw_test_audit *a, aw_hmac_key *key,
                         const char *sig_override, aw_test_dlq_copy *out)
{
    size_t len = aw_test_audit_data(a, out->data, sizeof out->data);
    aw_test_sign(key, out->data, len, out->sig);
    const char *kv[] = {"reason",      "max_deliveries_exceeded",
                        "received_at", "1779364805000",
                        "src_id",      a->id,
                        "src_data",    out->data,
                        "src_sig",     sig_override ? sig_override : out->sig};
    memcpy(out->kv, kv, sizeof kv);
}

void aw_test_dead_letter_of(const char *dead, const char *values,
                            const char *error, aw_hmac_key *key,
                            aw_test_dead_letter *out)
{
    const char *kv[] = {"original_id", "1779364800000-0",
                        "error",       error,
                        "values",      values,
                        "_sig",        ""};
    memcpy(out->kv, kv, sizeof kv);
    aw_test_sign_stream(key, dead, out->kv, 3, out->sig);
    out->kv[7] = out->sig;
}

void aw_test_sign(aw_hmac_key *key, const char *data, size_t len, char hex[65])
{
    unsigned char mac[32];
    cr_assert(aw_hmac_compute(key, data, len, mac) == AW_OK);
    aw_hex(mac, sizeof mac, hex);
}

void aw_test_sign_stream(aw_hmac_key *key, const char *stream,
                         const char *const *fields, size_t n, char hex[65])
{
    aw_field f[AW_MAX_FIELDS];
    aw_raw_entry *entry;
    aw_buf canon = {0};
    aw_error err = {0};
    cr_assert(n <= AW_MAX_FIELDS);
    for (size_t i = 0; i < n; i++)
        f[i] = (aw_field){{fields[2 * i], strlen(fields[2 * i])},
                          {fields[2 * i + 1], strlen(fields[2 * i + 1])}};
    cr_assert(aw_raw_entry_new((aw_bytes){stream, strlen(stream)},
                               (aw_bytes){"0-1", 3}, f, n, &entry,
                               &err) == AW_OK,
              "%s", err.msg);
    cr_assert(aw_stream_canonical(entry, &canon, &err) == AW_OK, "%s", err.msg);
    aw_test_sign(key, canon.ptr, canon.len, hex);
    aw_buf_free(&canon);
    aw_raw_entry_free(entry);
}

static void pipe_read(aw_test_pipe *p, size_t keep)
{
    while (p->queued > keep) {
        redisReply *reply = NULL;
        cr_assert(redisGetReply(p->c, (void **)&reply) == REDIS_OK, "XADD: %s",
                  p->c->errstr);
        cr_assert(reply->type == REDIS_REPLY_STRING, "XADD: %s",
                  reply->type == REDIS_REPLY_ERROR ? reply->str
                                                   : "unexpected reply");
        freeReplyObject(reply);
        p->queued--;
    }
}

void aw_test_pipe_xadd(aw_test_pipe *p, const char *stream,
                       const char *const *fields, const size_t *lens, size_t n)
{
    const char *argv[3 + 2 * AW_MAX_FIELDS + 2];
    size_t argl[3 + 2 * AW_MAX_FIELDS + 2];
    int argc = 0;
    cr_assert(n <= AW_MAX_FIELDS + 1);
    argv[argc] = "XADD", argl[argc++] = 4;
    argv[argc] = stream, argl[argc++] = strlen(stream);
    argv[argc] = "*", argl[argc++] = 1;
    for (size_t i = 0; i < 2 * n; i++) {
        argv[argc] = fields[i];
        argl[argc++] = lens ? lens[i] : strlen(fields[i]);
    }
    cr_assert(redisAppendCommandArgv(p->c, argc, argv, argl) == REDIS_OK);
    p->queued++;
    p->added++;
    if (p->queued >= PIPE_WINDOW)
        pipe_read(p, PIPE_WINDOW / 2);
}

void aw_test_pipe_audit(aw_test_pipe *p, const char *stream, aw_hmac_key *key,
                        const aw_test_audit *a)
{
    char data[4096], sig[65];
    size_t len = aw_test_audit_data(a, data, sizeof data);
    const char *fields[] = {"id", a->id, "data", data, "sig", sig};
    size_t lens[] = {2, strlen(a->id), 4, len, 3, 64};
    if (key)
        aw_test_sign(key, data, len, sig);
    aw_test_pipe_xadd(p, stream, fields, lens, key ? 3 : 2);
}

void aw_test_pipe_flush(aw_test_pipe *p)
{
    pipe_read(p, 0);
}

/* ---- Looking ------------------------------------------------------------------------ */

long long aw_test_pending_count(redisContext *c, const char *stream,
                                const char *group)
{
    redisReply *r = aw_test_command(c, "XPENDING %s %s", stream, group);
    long long n;
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
              r->element[0]->type == REDIS_REPLY_INTEGER);
    n = r->element[0]->integer;
    freeReplyObject(r);
    return n;
}

long long aw_test_group_lag(redisContext *c, const char *stream,
                            const char *group)
{
    redisReply *r = aw_test_command(c, "XINFO GROUPS %s", stream);
    long long lag = -1;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *g = r->element[i];
        bool ours = false;
        for (size_t k = 0; k + 1 < g->elements; k += 2) {
            const redisReply *key = g->element[k], *v = g->element[k + 1];
            if (!strcmp(key->str, "name"))
                ours = v->type == REDIS_REPLY_STRING && !strcmp(v->str, group);
            if (ours && !strcmp(key->str, "lag") &&
                v->type == REDIS_REPLY_INTEGER)
                lag = v->integer;
        }
    }
    freeReplyObject(r);
    return lag;
}

typedef struct entries_wait {
    const char *db;
    int64_t want;
} entries_wait;

static bool has_entries(void *ud)
{
    entries_wait *w = ud;
    aw_store_stats st;
    return aw_test_index_stats(w->db, &st) && st.entries >= w->want;
}

bool aw_test_wait_entries(const char *db_path, int64_t entries, int timeout_ms)
{
    entries_wait w = {db_path, entries};
    return aw_test_wait_for(has_entries, &w, timeout_ms);
}

typedef struct pending_wait {
    redisContext *c;
    const char *const *streams;
    const char *group;
} pending_wait;

static bool none_pending(void *ud)
{
    pending_wait *w = ud;
    for (const char *const *s = w->streams; *s; s++)
        if (aw_test_pending_count(w->c, *s, w->group) != 0)
            return false;
    return true;
}

bool aw_test_wait_no_pending(redisContext *c, const char *const *streams,
                             const char *group, int timeout_ms)
{
    pending_wait w = {c, streams, group};
    return aw_test_wait_for(none_pending, &w, timeout_ms);
}

void aw_test_publish_audit_range(aw_test_pipe *p, const char *stream, int from,
                                 int to)
{
    for (int i = from; i < to; i++) {
        char id[32];
        snprintf(id, sizeof id, "evt-%06d", i);
        aw_test_pipe_audit(p, stream, NULL, &(aw_test_audit){.id = id});
    }
    aw_test_pipe_flush(p);
}

void aw_test_assert_indexed_exactly(const char *db_path, int64_t events)
{
    aw_store_stats st;
    cr_assert(aw_test_index_stats(db_path, &st), "cannot open the index %s",
              db_path);
    cr_assert_eq(st.entries, events, "%lld entries for %lld published",
                 (long long)st.entries, (long long)events);
    cr_assert_eq(st.events, events, "%lld events for %lld published",
                 (long long)st.events, (long long)events);
    cr_assert_eq(st.rejected, 0);
}

bool aw_test_index_stats(const char *db_path, aw_store_stats *out)
{
    aw_store *store;
    aw_error err = {0};
    bool ok;
    if (access(db_path, F_OK) != 0)
        return false;
    if (aw_store_open(db_path, AW_STORE_READONLY, &store, &err) != AW_OK)
        return false;
    ok = aw_store_get_stats(store, out, &err) == AW_OK;
    aw_store_close(store);
    return ok;
}
