/* support.h -- what integration tests share: a private redis-server, temp
 * directories, the auditwatch binary as a child process, and test data
 * (signed audit entries, pipelined XADDs, index figures).
 *
 * Helpers that can fail assert with Criterion (cr_assert), so a test reads
 * as its scenario. Child processes (redis-server, auditwatch) die with the
 * test process (PR_SET_PDEATHSIG), so a failed test leaves nothing running.
 * Nothing here mocks Redis or SQLite: it starts the real ones.
 */
#ifndef AW_TESTS_SUPPORT_H
#define AW_TESTS_SUPPORT_H

#include <hiredis/hiredis.h>
#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "consumer/consumer.h"

/* ---- Temp directories ----------------------------------------------------- */

/* A new empty directory under $TMPDIR (or /tmp), path into dir
 * (PATH_MAX bytes). */
void aw_test_tmpdir(char *dir);
/* Removes path and everything below it. */
void aw_test_rmtree(const char *path);
/* dir "/" name into out (PATH_MAX bytes); returns out. */
char *aw_test_path(const char *dir, const char *name, char *out);
/* The whole file, NUL-terminated, heap (free); *len may be NULL. NULL when
 * the file cannot be read. */
char *aw_test_read_file(const char *path, size_t *len);
/* Writes text to path with mode. */
void aw_test_write_file(const char *path, const char *text, int mode);

/* ---- A private redis-server --------------------------------------------------- */

typedef struct aw_test_redis {
    pid_t pid;          /* 0 while stopped */
    int port;           /* a free loopback port, kept across restarts */
    bool persistent;    /* appendonly: data survives stop/start */
    char dir[PATH_MAX]; /* its working directory (own temp dir) */
} aw_test_redis;

/* Starts redis-server on a free 127.0.0.1 port in a new temp dir and waits
 * for PING. persistent: append-only file on, so aw_test_redis_stop followed
 * by aw_test_redis_start_again keeps every entry and group. */
void aw_test_redis_start(aw_test_redis *r, bool persistent);
/* SIGTERM and wait: a persistent server writes its data first. */
void aw_test_redis_stop(aw_test_redis *r);
/* Starts it again on the same port and directory. */
void aw_test_redis_start_again(aw_test_redis *r);
/* Stops it if running and removes its directory. */
void aw_test_redis_destroy(aw_test_redis *r);

/* The fixture of the daemon tests: a private redis-server (persistent as
 * for aw_test_redis_start), a fresh temp dir, and db = "<dir>/index.db".
 * dir and db need PATH_MAX bytes. Down stops the server, removes the dir. */
void aw_test_world_up(aw_test_redis *r, bool persistent, char *dir, char *db);
void aw_test_world_down(aw_test_redis *r, const char *dir);
/* "redis://127.0.0.1:PORT" into out (64 bytes); returns out. */
char *aw_test_redis_url(const aw_test_redis *r, char *out);
/* A blocking connection (redisFree it). */
redisContext *aw_test_redis_connect(const aw_test_redis *r);
/* Runs a command that must not fail; returns the reply (freeReplyObject). */
redisReply *aw_test_command(redisContext *c, const char *fmt, ...);

/* ---- The auditwatch binary ------------------------------------------------------- */

typedef struct aw_test_proc {
    pid_t pid;               /* 0 once reaped */
    int status;              /* exit status, or 128 + signal */
    char out_path[PATH_MAX]; /* its stdout */
    char err_path[PATH_MAX]; /* its stderr */
} aw_test_proc;

/* Starts AW_BINARY with args (NULL-terminated, without the program name)
 * and env ("NAME=value" strings, NULL-terminated, may be NULL) on top of
 * this process' environment. stdout and stderr go to files in dir, named
 * after tag (so several processes can share a dir). */
void aw_test_spawn(aw_test_proc *p, const char *dir, const char *tag,
                   const char *const *args, const char *const *env);
/* The same for another program of the build (AW_LOADGEN, AW_DRAINWATCH). */
void aw_test_spawn_program(aw_test_proc *p, const char *program,
                           const char *dir, const char *tag,
                           const char *const *args, const char *const *env);
/* Waits up to timeout_ms for it to exit; true (status filled) if it did. */
bool aw_test_wait(aw_test_proc *p, int timeout_ms);
void aw_test_signal(aw_test_proc *p, int sig);
/* SIGKILL and reap, if still running. */
void aw_test_kill(aw_test_proc *p);
/* Runs to completion (at most timeout_ms, else killed and the test fails);
 * returns the exit status. */
int aw_test_run(aw_test_proc *p, const char *dir, const char *tag,
                const char *const *args, const char *const *env,
                int timeout_ms);

/* `auditwatch run` against r with index db, consumer name tag, BLOCK
 * 200 ms, plus extra args (NULL-terminated, may be NULL) and env. */
void aw_test_daemon_start(aw_test_proc *p, const char *dir, const char *tag,
                          const aw_test_redis *r, const char *db,
                          const char *const *extra_args,
                          const char *const *env);
/* SIGTERM, and asserts a clean exit (status 0, which under the sanitizers
 * also means no leak) within timeout_ms. */
void aw_test_daemon_stop(aw_test_proc *p, int timeout_ms);

/* Polls cond every 20 ms for up to timeout_ms. */
bool aw_test_wait_for(bool (*cond)(void *ud), void *ud, int timeout_ms);
/* Monotonic milliseconds. */
int64_t aw_test_now_ms(void);

/* ---- Test data ------------------------------------------------------------------- */

/* The test HMAC key, as a key file would hold it (64 hex digits). */
#define AW_TEST_KEY_HEX                                                        \
    "5ca1ab1e0ddba11c0ffeec0de5eed5a1ad5a1ad5eedc0dec0ffee0ddba115ca1"
/* A new key from AW_TEST_KEY_HEX (aw_hmac_key_free). */
aw_hmac_key *aw_test_key(void);
/* The integer the first column of sql's first row holds, read from the
 * index file at db_path as anyone with the file sees it. */
int64_t aw_test_sql_int(const char *db_path, const char *sql);
/* Writes AW_TEST_KEY_HEX to dir/name with mode 0600; path into out. */
char *aw_test_key_file(const char *dir, const char *name, char *out);

/* One audit event's `data`. Members left NULL take the defaults shown;
 * values are written as they are (plain ASCII, no escaping). */
typedef struct aw_test_audit {
    const char *id;                /* required */
    const char *zone_id;           /* "zone-1" */
    const char *event_type;        /* "token_exchange" */
    const char *request_id;        /* the id */
    const char *decision;          /* "allow" */
    const char *occurred_at;       /* "2026-05-21T12:00:00Z" */
    const char *metadata_json;     /* an object's JSON text, or absent */
    const char *evaluation_status; /* "complete" */
} aw_test_audit;

/* The JSON text into buf; returns its length (asserts it fits). */
size_t aw_test_audit_data(const aw_test_audit *a, char *buf, size_t size);
/* The audit service's DLQ copy of a (DESIGN §8): fields name, value, ...
 * (5 names) into kv, its data into data (which must outlive kv), signed
 * with key unless sig_override is given. */
typedef struct aw_test_dlq_copy {
    char data[1024];
    char sig[65];
    const char *kv[10];
} aw_test_dlq_copy;
void aw_test_dlq_copy_of(const aw_test_audit *a, aw_hmac_key *key,
                         const char *sig_override, aw_test_dlq_copy *out);
/* A Gateway's dead letter on stream dead of the revocation whose JSON is
 * values (borrowed: must outlive kv), failed with error: fields name,
 * value, ... (4 names) into kv, `_sig` signed with key for dead. */
typedef struct aw_test_dead_letter {
    char sig[65];
    const char *kv[8];
} aw_test_dead_letter;
void aw_test_dead_letter_of(const char *dead, const char *values,
                            const char *error, aw_hmac_key *key,
                            aw_test_dead_letter *out);
/* Lowercase hex HMAC-SHA256 of data[0..len). */
void aw_test_sign(aw_hmac_key *key, const char *data, size_t len, char hex[65]);
/* The stream scheme's `_sig` for fields (name, value, name, value, ...; n
 * names) of an entry of stream. */
void aw_test_sign_stream(aw_hmac_key *key, const char *stream,
                         const char *const *fields, size_t n, char hex[65]);

/* Pipelined XADDs over a blocking connection: replies are read every 1000
 * commands and at flush, and each must be an entry id. */
typedef struct aw_test_pipe {
    redisContext *c;
    size_t queued;
    size_t added;
} aw_test_pipe;

/* fields: name, value, ... (n names); lens NULL for C strings. */
void aw_test_pipe_xadd(aw_test_pipe *p, const char *stream,
                       const char *const *fields, const size_t *lens, size_t n);
/* XADD of an audit entry: id, data and (key not NULL) sig. */
void aw_test_pipe_audit(aw_test_pipe *p, const char *stream, aw_hmac_key *key,
                        const aw_test_audit *a);
void aw_test_pipe_flush(aw_test_pipe *p);
/* Unsigned audit events "evt-<from>" .. "evt-<to - 1>" on stream, flushed. */
void aw_test_publish_audit_range(aw_test_pipe *p, const char *stream, int from,
                                 int to);

/* ---- Looking at Redis and the index ---------------------------------------------- */

/* XPENDING's count for group on stream. */
long long aw_test_pending_count(redisContext *c, const char *stream,
                                const char *group);
/* XINFO GROUPS' lag of group (entries not yet delivered); -1 when Redis
 * cannot tell. */
long long aw_test_group_lag(redisContext *c, const char *stream,
                            const char *group);
/* The index's figures; false when it cannot be opened (not there yet). */
bool aw_test_index_stats(const char *db_path, aw_store_stats *out);
/* Asserts that the index holds exactly `events` entries, all indexed as
 * events, none rejected: nothing lost, nothing doubled. */
void aw_test_assert_indexed_exactly(const char *db_path, int64_t events);
/* Waits until the index holds at least `entries` raw entries. */
bool aw_test_wait_entries(const char *db_path, int64_t entries, int timeout_ms);
/* Waits until XPENDING of group is 0 on every stream in streams
 * (NULL-terminated). */
bool aw_test_wait_no_pending(redisContext *c, const char *const *streams,
                             const char *group, int timeout_ms);

/* ---- Waiting on conditions (waits.c) ---------------------------------------------- */

/* The seed of a randomized test: $AW_TEST_SEED when set, else a fresh one;
 * printed on stderr either way so a failure can be repeated. */
unsigned aw_test_seed(void);
/* The detector clock persisted in the index (meta), or -1. */
int64_t aw_test_detector_clock_ns(const char *db_path);
/* Waits until that clock is at least at_least_ns. */
bool aw_test_wait_detector_clock(const char *db_path, int64_t at_least_ns,
                                 int timeout_ms);
/* INFO stats' total_connections_received, or -1. */
long long aw_test_redis_connections(redisContext *c);
/* Idle time (ms) of the oldest pending entry of group on stream, or -1. */
long long aw_test_pending_idle_ms(redisContext *c, const char *stream,
                                  const char *group);

/* ---- HTTP (http.c) ---------------------------------------------------------------- */

/* A blocking connection to 127.0.0.1:port whose reads and writes give up
 * after timeout_ms (close it). */
int aw_test_http_connect(int port, int timeout_ms);
/* Sends request as it is and returns everything the server answered until
 * it closed (heap, free; "" when it closed without a word). */
char *aw_test_http_request(int port, const char *request, int timeout_ms);
/* The value of the sample named exactly series (name and labels, as
 * `m{a="b"}`) in a Prometheus text page; false when there is none. */
bool aw_test_metric(const char *page, const char *series, double *value);
/* The port of a daemon started with --metrics-listen 127.0.0.1:0, from its
 * metrics_listening log line (waited for up to 10 s). */
int aw_test_daemon_metrics_port(aw_test_proc *p);

#endif /* AW_TESTS_SUPPORT_H */
