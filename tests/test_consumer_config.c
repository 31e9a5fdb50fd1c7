/* test_consumer_config.c -- how `auditwatch run` is configured: options and
 * their environment variables, Caracal's own variable names, secrets from
 * files only, and clear refusals of what would be unsafe. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/support.h"

#define AUDIT    "caracal.audit.events"
#define PASSWORD "s3cret-Pa55word"

static aw_test_redis redis;
static char dir[PATH_MAX], db[PATH_MAX];

static void setup(void)
{
    aw_test_world_up(&redis, false, dir, db);
}

static void teardown(void)
{
    aw_test_world_down(&redis, dir);
}

TestSuite(consumer_config, .init = setup, .fini = teardown, .timeout = 60);

static char *run_and_read_stderr(const char *const *args,
                                 const char *const *env, int *status)
{
    aw_test_proc p;
    *status = aw_test_run(&p, dir, "cli", args, env, 10000);
    return aw_test_read_file(p.err_path, NULL);
}

Test(consumer_config, help_goes_to_stdout_and_exits_0)
{
    aw_test_proc p;
    const char *args[] = {"run", "--help", NULL};
    cr_assert_eq(aw_test_run(&p, dir, "help", args, NULL, 10000), 0);
    char *out = aw_test_read_file(p.out_path, NULL);
    cr_assert(out && strstr(out, "usage: auditwatch run") &&
              strstr(out, "--claim-idle-ms"));
    free(out);
}

Test(consumer_config, bad_usage_exits_2_and_names_the_option)
{
    int status;
    const char *bad_value[] = {"run", "--batch", "0", NULL};
    const char *unknown[] = {"run", "--frobnicate", NULL};
    const char *caracal_group[] = {"run",  "--group", "audit-ingestor",
                                   "--db", db,        NULL};
    const char *bad_env[] = {"AUDITWATCH_BLOCK_MS=soon", NULL};
    const char *plain[] = {"run", NULL};
    char *err;

    err = run_and_read_stderr(bad_value, NULL, &status);
    cr_assert_eq(status, 2);
    cr_assert(strstr(err, "--batch"), "%s", err);
    free(err);
    err = run_and_read_stderr(unknown, NULL, &status);
    cr_assert_eq(status, 2);
    cr_assert(strstr(err, "--frobnicate"), "%s", err);
    free(err);
    err = run_and_read_stderr(caracal_group, NULL, &status);
    cr_assert_eq(status, 2);
    cr_assert(strstr(err, "Caracal"), "%s", err);
    free(err);
    err = run_and_read_stderr(plain, bad_env, &status);
    cr_assert_eq(status, 2);
    cr_assert(strstr(err, "$AUDITWATCH_BLOCK_MS"), "%s", err);
    free(err);
}

Test(consumer_config, refuses_secrets_in_the_url_and_world_readable_key_files)
{
    int status;
    char key[PATH_MAX];
    const char *url_secret[] = {"run", "--redis",
                                "redis://:" PASSWORD "@127.0.0.1:6379", NULL};
    const char *open_key[] = {"run", "--db", db, "--audit-hmac-key-file",
                              key,   NULL};
    char *err;

    err = run_and_read_stderr(url_secret, NULL, &status);
    cr_assert_eq(status, 2);
    cr_assert(strstr(err, "password"), "%s", err);
    cr_assert(!strstr(err, PASSWORD), "the password was echoed: %s", err);
    free(err);

    aw_test_write_file(aw_test_path(dir, "open.key", key), AW_TEST_KEY_HEX,
                       0644);
    err = run_and_read_stderr(open_key, NULL, &status);
    cr_assert_eq(status, 3);
    cr_assert(strstr(err, "readable by others"), "%s", err);
    cr_assert(!strstr(err, AW_TEST_KEY_HEX), "the key was echoed: %s", err);
    free(err);
}

/* Redis with a password, set the way Caracal deploys it. */
static void require_password(void)
{
    redisContext *c = aw_test_redis_connect(&redis);
    freeReplyObject(aw_test_command(c, "CONFIG SET requirepass %s", PASSWORD));
    redisFree(c);
}

static redisContext *connect_with_password(void)
{
    redisContext *c = aw_test_redis_connect(&redis);
    freeReplyObject(aw_test_command(c, "AUTH %s", PASSWORD));
    return c;
}

Test(consumer_config, authenticates_with_redis_password_file_and_never_logs_it)
{
    char pw[PATH_MAX], env_pw[PATH_MAX + 32];
    const char *env[] = {env_pw, NULL};
    aw_test_proc daemon;

    require_password();
    aw_test_write_file(aw_test_path(dir, "redis.pw", pw), PASSWORD "\n", 0600);
    snprintf(env_pw, sizeof env_pw, "REDIS_PASSWORD_FILE=%s", pw);
    aw_test_daemon_start(&daemon, dir, "auth", &redis, db, NULL, env);
    redisContext *c = connect_with_password();
    aw_test_pipe pipe = {c, 0, 0};
    aw_test_pipe_audit(&pipe, AUDIT, NULL,
                       &(aw_test_audit){.id = "after-auth"});
    aw_test_pipe_flush(&pipe);
    cr_assert(aw_test_wait_entries(db, 1, 20000),
              "nothing indexed with the password");
    aw_test_daemon_stop(&daemon, 5000);
    char *log = aw_test_read_file(daemon.err_path, NULL);
    cr_assert(log && !strstr(log, PASSWORD), "the password is in the log");
    free(log);
    redisFree(c);
}

static bool refused_logged(void *ud)
{
    char *log = aw_test_read_file(ud, NULL);
    bool yes =
        log && strstr(log, "event=redis_unreachable") && strstr(log, "NOAUTH");
    free(log);
    return yes;
}

/* Redis has seen this many connections (ours included). */
typedef struct connections_seen {
    redisContext *c;
    long long at_least;
} connections_seen;

static bool connected_again(void *ud)
{
    connections_seen *s = ud;
    return aw_test_redis_connections(s->c) >= s->at_least;
}

Test(consumer_config, without_the_password_says_so_once_and_keeps_waiting)
{
    aw_test_proc daemon;
    require_password();
    aw_test_daemon_start(&daemon, dir, "noauth", &redis, db, NULL, NULL);
    cr_assert(aw_test_wait_for(refused_logged, daemon.err_path, 10000),
              "the refusal was not logged");
    redisContext *c = connect_with_password();
    connections_seen seen = {c, aw_test_redis_connections(c) + 1};
    cr_assert(aw_test_wait_for(connected_again, &seen, 20000),
              "the daemon stopped retrying");
    redisFree(c);
    cr_assert(!aw_test_wait(&daemon, 0),
              "the daemon gave up instead of retrying");
    aw_test_daemon_stop(&daemon, 5000);
    char *log = aw_test_read_file(daemon.err_path, NULL);
    const char *first = strstr(log, "event=redis_unreachable");
    cr_assert(first && !strstr(first + 1, "event=redis_unreachable"),
              "logged more than once: %s", log);
    free(log);
}

Test(consumer_config, honours_caracal_key_variable_and_stream_overrides)
{
    char env_key[128];
    const char *env[] = {
        env_key, "AUDITWATCH_STREAM=audit=tenant.audit,calls=tenant.calls",
        NULL};
    aw_test_proc daemon;
    redisContext *c = aw_test_redis_connect(&redis);
    aw_test_pipe pipe = {c, 0, 0};
    aw_hmac_key *key = aw_test_key();
    aw_store_stats st;

    snprintf(env_key, sizeof env_key, "AUDIT_HMAC_KEY=%s", AW_TEST_KEY_HEX);
    aw_test_daemon_start(&daemon, dir, "env", &redis, db, NULL, env);
    aw_test_pipe_audit(&pipe, "tenant.audit", key,
                       &(aw_test_audit){.id = "signed"});
    aw_test_pipe_audit(&pipe, "tenant.audit", NULL,
                       &(aw_test_audit){.id = "unsigned"});
    aw_test_pipe_audit(&pipe, AUDIT, key, &(aw_test_audit){.id = "elsewhere"});
    aw_test_pipe_flush(&pipe);
    cr_assert(aw_test_wait_entries(db, 2, 20000));
    aw_test_daemon_stop(&daemon, 5000);
    cr_assert(aw_test_index_stats(db, &st));
    cr_assert_eq(st.entries, 2, "the default audit stream was read too");
    cr_assert_eq(st.events, 1);
    cr_assert_eq(st.rejected, 1,
                 "an unsigned entry passed although AUDIT_HMAC_KEY was set");
    aw_hmac_key_free(key);
    redisFree(c);
}

static bool file_mentions(const char *path, const char *text)
{
    char *content = aw_test_read_file(path, NULL);
    bool yes = content && strstr(content, text);
    free(content);
    return yes;
}

static bool connected_logged(void *ud)
{
    return file_mentions(ud, "\"redis_connected\"");
}
static bool reopen_logged(void *ud)
{
    return file_mentions(ud, "\"log_reopened\"");
}

/* Every line is one JSON object with time, level and event. */
static void assert_json_lines(const char *path)
{
    char *content = aw_test_read_file(path, NULL);
    int lines = 0;
    cr_assert(content, "%s is missing", path);
    for (char *save = NULL, *line = strtok_r(content, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save), lines++) {
        cJSON *o = cJSON_Parse(line);
        cr_assert(o && cJSON_IsString(cJSON_GetObjectItem(o, "time")) &&
                      cJSON_IsString(cJSON_GetObjectItem(o, "level")) &&
                      cJSON_IsString(cJSON_GetObjectItem(o, "event")),
                  "not a JSON log line: %s", line);
        cJSON_Delete(o);
    }
    cr_assert_gt(lines, 0);
    free(content);
}

Test(consumer_config, json_log_file_is_reopened_on_sighup)
{
    char log[PATH_MAX], rotated[PATH_MAX];
    const char *args[] = {"--log-format", "json", "--log-file", log, NULL};
    aw_test_proc daemon;

    aw_test_path(dir, "auditwatch.log", log);
    aw_test_path(dir, "auditwatch.log.1", rotated);
    aw_test_daemon_start(&daemon, dir, "logs", &redis, db, args, NULL);
    cr_assert(aw_test_wait_for(connected_logged, log, 10000));
    cr_assert(rename(log, rotated) == 0);
    aw_test_signal(&daemon, SIGHUP);
    cr_assert(aw_test_wait_for(reopen_logged, log, 10000),
              "no new log file after SIGHUP");
    aw_test_daemon_stop(&daemon, 5000);
    assert_json_lines(rotated);
    assert_json_lines(log);
    cr_assert(file_mentions(log, "\"shutdown\""));
    cr_assert(file_mentions(rotated, "\"start\""));
}

Test(consumer_config, a_broken_index_exits_3_saying_what_to_do)
{
    char bad[PATH_MAX];
    const char *args[] = {"run", "--db", bad, NULL};
    int status;
    aw_test_write_file(aw_test_path(dir, "not-an-index.db", bad),
                       "this is not a SQLite database, it only has its name\n",
                       0600);
    char *err = run_and_read_stderr(args, NULL, &status);
    cr_assert_eq(status, 3, "%s", err);
    cr_expect(strstr(err, "not-an-index.db") && strstr(err, "not a database"),
              "%s", err);
    cr_expect(strstr(err, "auditwatch verify") &&
                  strstr(err, "auditwatch replay"),
              "no word on what to do: %s", err);
    cr_expect_eq(strchr(err, '\n') - err + 1, (long)strlen(err),
                 "more than one line: %s", err);
    free(err);
}
