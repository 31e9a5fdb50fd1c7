/* test_consumer_sinks_format.c -- the sinks send the form their config
 * names: with OCSF, stdout and the exec hook's stdin both get the same
 * Detection Finding, and the Redis stream gets it whole in one field; by
 * default, auditwatch's own JSON. In process: a libuv loop, a real /bin/sh
 * hook, stdout pointed at a file, a private redis-server. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "consumer/log.h"
#include "consumer/redis_conn.h"
#include "consumer/sinks.h"
#include "tests/support/support.h"

static char dir[PATH_MAX];

static void setup(void)
{
    aw_test_tmpdir(dir);
}
static void teardown(void)
{
    aw_test_rmtree(dir);
}

TestSuite(consumer_sinks_format, .init = setup, .fini = teardown,
          .timeout = 30);

typedef struct delivered {
    char *stdout_text;
    char *hook_text;
} delivered;

static const aw_alert alert = {
    .id = "0123456789abcdef0123456789abcdef",
    .kind = AW_ALERT_SIGNATURE_INVALID,
    .severity = "high",
    .state = AW_ALERT_OPEN,
    .anchor = "caracal.audit.events:1-0",
    .raised_at_ns = 1779364800000000000LL,
    .evidence_json = "[\"entry:caracal.audit.events/1-0\"]",
    .summary = "Entry 1-0 failed signature verification.",
};

/* One raised alert through a stdout sink and an exec hook of that format. */
static delivered deliver(aw_alert_format format)
{
    char out_path[PATH_MAX], hook_path[PATH_MAX], cmd[PATH_MAX + 16];
    uv_loop_t loop;
    aw_log *log;
    aw_sinks *sinks;
    aw_error err = {0};
    delivered d;
    int saved_stdout, fd;

    aw_test_path(dir, "stdout", out_path);
    aw_test_path(dir, "hook", hook_path);
    snprintf(cmd, sizeof cmd, "cat > '%s'", hook_path);
    aw_sinks_config config = {
        .to_stdout = true, .exec_cmd = cmd, .exec_max = 1, .format = format};

    cr_assert_eq(uv_loop_init(&loop), 0);
    cr_assert_eq(aw_log_open(AW_LOG_KV, NULL, &log, &err), AW_OK, "%s",
                 err.msg);
    cr_assert_eq(aw_sinks_new(&loop, &config, log, &sinks, &err), AW_OK, "%s",
                 err.msg);

    fflush(stdout);
    saved_stdout = dup(STDOUT_FILENO);
    fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(saved_stdout >= 0 && fd >= 0);
    dup2(fd, STDOUT_FILENO);
    close(fd);
    aw_sinks_emit(sinks, &alert, AW_ALERT_RAISED, NULL);
    fflush(stdout);
    dup2(saved_stdout, STDOUT_FILENO);
    close(saved_stdout);

    uv_run(&loop, UV_RUN_DEFAULT); /* until the hook exited */
    cr_expect_eq(aw_sinks_stats_get(sinks)->hook_failed, 0);
    aw_sinks_close(sinks);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
    aw_log_close(log);

    d.stdout_text = aw_test_read_file(out_path, NULL);
    d.hook_text = aw_test_read_file(hook_path, NULL);
    cr_assert(d.stdout_text && d.hook_text);
    return d;
}

static void delivered_free(delivered *d)
{
    free(d->stdout_text);
    free(d->hook_text);
}

Test(consumer_sinks_format,
     ocsf_sends_the_same_detection_finding_to_stdout_and_the_hook)
{
    delivered d = deliver(AW_ALERT_FORMAT_OCSF);
    cr_expect_str_eq(d.stdout_text, d.hook_text,
                     "stdout and the hook got different text");
    cJSON *f = cJSON_Parse(d.hook_text);
    cr_assert(f, "not JSON: %s", d.hook_text);
    cr_expect_eq(cJSON_GetObjectItem(f, "class_uid")->valueint, 2004);
    cr_expect_eq(cJSON_GetObjectItem(f, "type_uid")->valueint, 200401);
    cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(
                         cJSON_GetObjectItem(f, "finding_info"), "uid")),
                     "0123456789abcdef0123456789abcdef");
    cr_expect(!cJSON_GetObjectItem(f, "kind"), "not auditwatch's own JSON");
    cJSON_Delete(f);
    delivered_free(&d);
}

Test(consumer_sinks_format, json_stays_the_default_form)
{
    delivered d = deliver(AW_ALERT_FORMAT_JSON);
    cJSON *a = cJSON_Parse(d.stdout_text);
    cr_assert(a, "not JSON: %s", d.stdout_text);
    cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(a, "kind")),
                     AW_ALERT_SIGNATURE_INVALID);
    cr_expect(!cJSON_GetObjectItem(a, "class_uid"));
    cr_expect_str_eq(d.stdout_text, d.hook_text);
    cJSON_Delete(a);
    delivered_free(&d);
}

/* ---- The Redis stream ------------------------------------------------------ */

typedef struct stream_run {
    aw_sinks *sinks;
    aw_redis_conn *conn;
} stream_run;

static void on_ready(aw_redis_conn *conn, void *ud)
{
    stream_run *run = ud;
    aw_sinks_emit(run->sinks, &alert, AW_ALERT_RAISED, conn);
}

/* lost and closed: nothing to do, the test reads the stream afterwards. */
static void on_nothing(aw_redis_conn *conn, void *ud)
{
    (void)conn;
    (void)ud;
}

/* The XADD was answered: nothing more to wait for. */
static void on_sinks_idle(void *ud)
{
    stream_run *run = ud;
    aw_redis_conn_close(run->conn);
}

Test(consumer_sinks_format, ocsf_puts_the_finding_on_the_stream_in_one_field)
{
    aw_test_redis redis;
    aw_redis_conn_handlers handlers = {on_ready, on_nothing, on_nothing};
    stream_run run = {0};
    aw_sinks_config config = {.stream = "auditwatch.alerts",
                              .stream_maxlen = 1000,
                              .idle = on_sinks_idle,
                              .ud = &run,
                              .format = AW_ALERT_FORMAT_OCSF};
    uv_loop_t loop;
    aw_log *log;
    aw_error err = {0};

    aw_test_redis_start(&redis, false);
    aw_redis_conn_config cc = {"127.0.0.1", redis.port, 0, NULL, 1000};
    cr_assert_eq(uv_loop_init(&loop), 0);
    cr_assert_eq(aw_log_open(AW_LOG_KV, NULL, &log, &err), AW_OK, "%s",
                 err.msg);
    cr_assert_eq(aw_sinks_new(&loop, &config, log, &run.sinks, &err), AW_OK,
                 "%s", err.msg);
    cr_assert_eq(
        aw_redis_conn_new(&loop, &cc, &handlers, &run, log, &run.conn, &err),
        AW_OK, "%s", err.msg);
    aw_redis_conn_start(run.conn);
    uv_run(
        &loop,
        UV_RUN_DEFAULT); /* until the XADD was answered and the conn closed */
    cr_expect_eq(aw_sinks_stats_get(run.sinks)->emitted, 1);
    cr_expect_eq(aw_sinks_stats_get(run.sinks)->stream_failed, 0);
    aw_sinks_close(run.sinks);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
    aw_log_close(log);

    redisContext *c = aw_test_redis_connect(&redis);
    redisReply *r = aw_test_command(c, "XRANGE auditwatch.alerts - +");
    cr_assert_eq(r->elements, 1);
    const redisReply *fields = r->element[0]->element[1];
    cr_assert_eq(fields->elements, 4, "fields id and ocsf only");
    cr_expect_str_eq(fields->element[0]->str, "id");
    cr_expect_str_eq(fields->element[1]->str, alert.id);
    cr_expect_str_eq(fields->element[2]->str, "ocsf");
    cJSON *f = cJSON_Parse(fields->element[3]->str);
    cr_assert(f, "not JSON: %s", fields->element[3]->str);
    cr_expect_eq(cJSON_GetObjectItem(f, "class_uid")->valueint, 2004);
    cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(
                         cJSON_GetObjectItem(f, "finding_info"), "uid")),
                     alert.id);
    cJSON_Delete(f);
    freeReplyObject(r);
    redisFree(c);
    aw_test_redis_destroy(&redis);
}
