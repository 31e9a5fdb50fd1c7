/* test_consumer_sinks.c -- alerts leave the daemon as JSON lines on stdout,
 * entries of a Redis stream, and JSON on an exec hook's stdin, or with
 * --alert-format ocsf as one OCSF finding on all three; a failing hook is
 * logged and counted on /metrics, and does not hold ingest up. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/support/support.h"

#define AUDIT "caracal.audit.events"

static aw_test_redis redis;
static char dir[PATH_MAX], db[PATH_MAX], keyfile[PATH_MAX], hooks[PATH_MAX];

static void setup(void)
{
    aw_test_world_up(&redis, false, dir, db);
    aw_test_key_file(dir, "hmac.key", keyfile);
    aw_test_path(dir, "hooks", hooks);
    cr_assert(mkdir(hooks, 0700) == 0);
}

static void teardown(void)
{
    aw_test_world_down(&redis, dir);
}

TestSuite(consumer_sinks, .init = setup, .fini = teardown, .timeout = 60);

/* An audit entry whose signature does not match: a signature_invalid alert. */
static void publish_forged(redisContext *c, const char *id)
{
    aw_test_pipe pipe = {c, 0, 0};
    char data[1024];
    aw_test_audit_data(&(aw_test_audit){.id = id}, data, sizeof data);
    const char *fields[] = {
        "id",
        id,
        "data",
        data,
        "sig",
        "0000000000000000000000000000000000000000000000000000000000000000"};
    aw_test_pipe_xadd(&pipe, AUDIT, fields, NULL, 3);
    aw_test_pipe_flush(&pipe);
}

static int files_in(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    int n = 0;
    cr_assert(d);
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static bool one_hook_file(void *ud)
{
    (void)ud;
    return files_in(hooks) == 1;
}

static bool stream_has_alert(void *ud)
{
    redisContext *c = ud;
    redisReply *r = aw_test_command(c, "XLEN auditwatch.alerts");
    bool yes = r->integer == 1;
    freeReplyObject(r);
    return yes;
}

/* Checks one alert's JSON as every sink writes it. */
static void assert_alert_json(const char *text)
{
    cJSON *o = cJSON_Parse(text);
    cr_assert(o, "not JSON: %s", text);
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(o, "kind")),
                     AW_ALERT_SIGNATURE_INVALID);
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(o, "state")),
                     "open");
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(o, "change")),
                     "raised");
    cr_assert_eq(strlen(cJSON_GetStringValue(cJSON_GetObjectItem(o, "id"))),
                 32);
    cr_assert(cJSON_IsString(cJSON_GetObjectItem(o, "raised_at")));
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(o, "resolved_at")));
    cr_assert(cJSON_IsArray(cJSON_GetObjectItem(o, "evidence")));
    cr_assert(cJSON_IsString(cJSON_GetObjectItem(o, "summary")));
    cJSON_Delete(o);
}

/* What one forged entry made every sink send, with --alert-format format
 * (NULL: the default). */
typedef struct delivered {
    char *out;          /* the daemon's stdout */
    char *hook;         /* the hook's stdin */
    redisReply *stream; /* XRANGE auditwatch.alerts */
} delivered;

static delivered deliver_forged(const char *format)
{
    redisContext *c = aw_test_redis_connect(&redis);
    char env_dir[PATH_MAX + 16], path[PATH_MAX];
    const char *args[] = {"--audit-hmac-key-file",
                          keyfile,
                          "--alerts-stdout",
                          "--alert-exec",
                          "cat > \"$HOOK_DIR/alert.json\"",
                          format ? "--alert-format" : NULL,
                          format,
                          NULL};
    const char *env[] = {env_dir, NULL};
    aw_test_proc daemon;
    delivered d;

    aw_hmac_key *key = aw_test_key();
    aw_test_pipe pipe = {c, 0, 0};

    snprintf(env_dir, sizeof env_dir, "HOOK_DIR=%s", hooks);
    aw_test_daemon_start(&daemon, dir, "sinks", &redis, db, args, env);
    aw_test_pipe_audit(&pipe, AUDIT, key, &(aw_test_audit){.id = "good"});
    aw_test_pipe_flush(&pipe);
    cr_assert(aw_test_wait_entries(db, 1, 20000));
    publish_forged(c, "forged-1");
    cr_assert(aw_test_wait_for(one_hook_file, NULL, 20000),
              "the hook did not run");
    cr_assert(aw_test_wait_for(stream_has_alert, c, 10000),
              "no entry on auditwatch.alerts");
    aw_test_daemon_stop(&daemon, 5000);

    d.hook = aw_test_read_file(aw_test_path(hooks, "alert.json", path), NULL);
    d.out = aw_test_read_file(daemon.out_path, NULL);
    cr_assert(d.hook && d.out);
    cr_assert_eq(strchr(d.out, '\n') - d.out + 1, (long)strlen(d.out),
                 "one line on stdout: %s", d.out);
    cr_assert_str_eq(d.out, d.hook, "stdout and the hook got different text");
    d.stream = aw_test_command(c, "XRANGE auditwatch.alerts - +");
    aw_hmac_key_free(key);
    redisFree(c);
    return d;
}

static void delivered_free(delivered *d)
{
    free(d->out);
    free(d->hook);
    freeReplyObject(d->stream);
}

/* The value of field name of the first stream entry ("" when absent). */
static const char *stream_field(const delivered *d, const char *name)
{
    const redisReply *fields = d->stream->element[0]->element[1];
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (!strcmp(fields->element[i]->str, name))
            return fields->element[i + 1]->str;
    return "";
}

Test(consumer_sinks, delivers_an_alert_to_stdout_the_alert_stream_and_the_hook)
{
    delivered d = deliver_forged(NULL);
    assert_alert_json(d.hook);
    cr_assert_str_eq(stream_field(&d, "kind"), AW_ALERT_SIGNATURE_INVALID,
                     "the stream entry does not carry kind=signature_invalid");
    delivered_free(&d);
}

Test(consumer_sinks,
     alert_format_ocsf_sends_one_detection_finding_to_every_sink)
{
    delivered d = deliver_forged("ocsf");
    cJSON *f = cJSON_Parse(d.hook),
          *from_stream = cJSON_Parse(stream_field(&d, "ocsf"));
    cr_assert(f && from_stream, "not JSON: %s / %s", d.hook,
              stream_field(&d, "ocsf"));
    cr_expect_eq(cJSON_GetObjectItem(f, "class_uid")->valueint, 2004);
    cr_expect_eq(cJSON_GetObjectItem(f, "type_uid")->valueint, 200401);
    const char *uid = cJSON_GetStringValue(
        cJSON_GetObjectItem(cJSON_GetObjectItem(f, "finding_info"), "uid"));
    cr_assert(uid);
    cr_expect_str_eq(uid, stream_field(&d, "id"));
    cr_expect(cJSON_Compare(f, from_stream, true),
              "the stream carries another finding");
    cr_expect_str_eq(stream_field(&d, "kind"), "",
                     "no flat fields beside the finding");
    cJSON_Delete(f);
    cJSON_Delete(from_stream);
    delivered_free(&d);
}

static bool hook_failure_logged(void *ud)
{
    char *log = aw_test_read_file(ud, NULL);
    bool yes = log && strstr(log, "event=alert_hook_failed");
    free(log);
    return yes;
}

#define HOOK_FAILED                                                            \
    "auditwatch_alert_notifications_failed_total{sink=\"exec\",reason="        \
    "\"failed\"}"

/* The hook's failure as /metrics counts it, once it counts one. */
static bool hook_failure_counted(void *ud)
{
    int port = *(int *)ud;
    double failed = 0;
    char *page =
        aw_test_http_request(port, "GET /metrics HTTP/1.0\r\n\r\n", 3000);
    cr_assert(aw_test_metric(page, HOOK_FAILED, &failed), "no %s in:\n%s",
              HOOK_FAILED, page);
    free(page);
    cr_assert(failed <= 1, "one alert, %g failures counted", failed);
    return failed == 1;
}

Test(consumer_sinks, a_failing_hook_is_logged_counted_and_ingest_goes_on)
{
    redisContext *c = aw_test_redis_connect(&redis);
    const char *args[] = {"--audit-hmac-key-file",
                          keyfile,
                          "--no-alert-stream",
                          "--alert-exec",
                          "cat >/dev/null; exit 3",
                          "--metrics-listen",
                          "127.0.0.1:0",
                          NULL};
    aw_test_proc daemon;
    aw_test_pipe pipe = {c, 0, 0};
    aw_hmac_key *key = aw_test_key();

    aw_test_daemon_start(&daemon, dir, "failing", &redis, db, args, NULL);
    publish_forged(c, "forged-2");
    aw_test_pipe_audit(&pipe, AUDIT, key, &(aw_test_audit){.id = "good"});
    aw_test_pipe_flush(&pipe);
    cr_assert(aw_test_wait_entries(db, 2, 20000));
    cr_assert(aw_test_wait_for(hook_failure_logged, daemon.err_path, 10000),
              "no hook failure logged");
    int port = aw_test_daemon_metrics_port(&daemon);
    cr_assert(aw_test_wait_for(hook_failure_counted, &port, 10000),
              "/metrics does not count the failed hook");
    aw_test_daemon_stop(&daemon, 5000);

    char *log = aw_test_read_file(daemon.err_path, NULL);
    cr_assert(log);
    cr_assert(strstr(log, "exit_status=3"), "%s", log);
    cr_assert(strstr(log, "alert_hook_failed=1"),
              "the shutdown line does not count it: %s", log);
    free(log);
    redisReply *r = aw_test_command(c, "EXISTS auditwatch.alerts");
    cr_assert_eq(r->integer, 0, "--no-alert-stream still wrote alerts");
    freeReplyObject(r);
    aw_store_stats st;
    cr_assert(aw_test_index_stats(db, &st));
    cr_assert_eq(st.events, 1);
    aw_hmac_key_free(key);
    redisFree(c);
}
