/* test_consumer_trim.c -- entries deleted from a stream before the group
 * read them are reported with their id range, not silently missed. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/support.h"

#define AUDIT "caracal.audit.events"
#define DLQ   "caracal.audit.events.dlq"

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

TestSuite(consumer_trim, .init = setup, .fini = teardown, .timeout = 60);

/* XADDs n audit events; the id of the last one into last (48 bytes). */
static void publish(redisContext *c, const char *prefix, int n, char *last)
{
    for (int i = 0; i < n; i++) {
        char id[32], data[1024];
        snprintf(id, sizeof id, "%s-%d", prefix, i);
        aw_test_audit_data(&(aw_test_audit){.id = id}, data, sizeof data);
        redisReply *r =
            aw_test_command(c, "XADD %s * id %s data %s", AUDIT, id, data);
        snprintf(last, 48, "%s", r->str);
        freeReplyObject(r);
    }
}

typedef struct alerts_seen {
    int n;
    char anchor[64], request_id[128], severity[16];
} alerts_seen;

static int keep_alert(const aw_alert *a, void *ud)
{
    alerts_seen *s = ud;
    s->n++;
    snprintf(s->anchor, sizeof s->anchor, "%s", a->anchor ? a->anchor : "");
    snprintf(s->request_id, sizeof s->request_id, "%s",
             a->request_id ? a->request_id : "");
    snprintf(s->severity, sizeof s->severity, "%s",
             a->severity ? a->severity : "");
    return 0;
}

static alerts_seen trimmed_alerts(void)
{
    alerts_seen seen = {0};
    aw_store *store;
    aw_error err = {0};
    cr_assert(aw_store_open(db, AW_STORE_READONLY, &store, &err) == AW_OK, "%s",
              err.msg);
    cr_assert(aw_store_query_alerts(
                  store, &(aw_alert_filter){.kind = AW_ALERT_EVIDENCE_TRIMMED},
                  keep_alert, &seen, &err) == AW_OK,
              "%s", err.msg);
    aw_store_close(store);
    return seen;
}

static bool trim_alerted(void *ud)
{
    (void)ud;
    return trimmed_alerts().n > 0;
}

/* Runs a daemon until the group has read what is there, then stops it. */
static void read_everything(redisContext *c, const char *tag, int64_t entries)
{
    const char *streams[] = {AUDIT, NULL};
    aw_test_proc daemon;
    aw_test_daemon_start(&daemon, dir, tag, &redis, db, NULL, NULL);
    cr_assert(aw_test_wait_entries(db, entries, 20000));
    cr_assert(aw_test_wait_no_pending(c, streams, "auditwatch", 10000));
    aw_test_daemon_stop(&daemon, 5000);
}

Test(consumer_trim, reports_the_exact_range_trimmed_before_the_group_read_it)
{
    redisContext *c = aw_test_redis_connect(&redis);
    const char *streams[] = {AUDIT, NULL};
    const char *args[] = {"--alerts-stdout", NULL};
    char read_last[48], lost_last[48], after_last[48], expected[128];
    uint64_t ms, seq;
    aw_test_proc daemon;

    publish(c, "read", 5, read_last);
    read_everything(c, "first", 5);

    /* While the daemon is down, 100 entries arrive and are trimmed away. */
    publish(c, "lost", 100, lost_last);
    freeReplyObject(aw_test_command(c, "XTRIM %s MAXLEN 0", AUDIT));

    aw_test_daemon_start(&daemon, dir, "second", &redis, db, args, NULL);
    cr_assert(aw_test_wait_for(trim_alerted, NULL, 20000),
              "no alert for the trimmed entries");
    publish(c, "after", 3, after_last);
    cr_assert(aw_test_wait_entries(db, 8, 20000),
              "entries after the loss were not indexed");
    cr_assert(aw_test_wait_no_pending(c, streams, "auditwatch", 10000));
    aw_test_daemon_stop(&daemon, 5000);

    /* Lost: everything after the last entry read, up to the last deleted. */
    cr_assert(aw_stream_id_parse(read_last, strlen(read_last), &ms, &seq) ==
              AW_OK);
    snprintf(expected, sizeof expected, "%" PRIu64 "-%" PRIu64 "..%s", ms,
             seq + 1, lost_last);
    alerts_seen seen = trimmed_alerts();
    cr_assert_eq(seen.n, 1);
    cr_assert_str_eq(seen.anchor, AUDIT);
    cr_assert_str_eq(seen.request_id, expected);
    cr_assert_str_eq(seen.severity, "critical");

    char *out = aw_test_read_file(daemon.out_path, NULL);
    cr_assert(out && strstr(out, "\"kind\":\"audit_evidence_trimmed\""),
              "the alert did not reach stdout: %s", out ? out : "");
    free(out);
    redisFree(c);
}

/* With entries retained after the gap, the range runs up to the first of
 * them: it holds every lost id and no retained one. */
Test(consumer_trim, bounds_the_range_by_the_first_retained_entry)
{
    redisContext *c = aw_test_redis_connect(&redis);
    char read_last[48], lost_first[48], lost_last[48], after_first[48],
        after_last[48];
    char first[48], last[48];
    uint64_t f_ms, f_seq, l_ms, l_seq, ms, seq;

    publish(c, "read", 5, read_last);
    read_everything(c, "first", 5);
    publish(c, "lost-a", 1, lost_first);
    publish(c, "lost-b", 99, lost_last);
    freeReplyObject(aw_test_command(c, "XTRIM %s MAXLEN 0", AUDIT));
    publish(c, "after-a", 1, after_first);
    publish(c, "after-b", 2, after_last);
    read_everything(c, "second", 8);

    alerts_seen seen = trimmed_alerts();
    cr_assert_eq(seen.n, 1);
    cr_assert(sscanf(seen.request_id, "%47[0-9-]..%47[0-9-]", first, last) == 2,
              "%s", seen.request_id);
    cr_assert(aw_stream_id_parse(first, strlen(first), &f_ms, &f_seq) == AW_OK);
    cr_assert(aw_stream_id_parse(last, strlen(last), &l_ms, &l_seq) == AW_OK);
    cr_assert(aw_stream_id_parse(lost_first, strlen(lost_first), &ms, &seq) ==
              AW_OK);
    cr_assert(f_ms < ms || (f_ms == ms && f_seq <= seq), "%s starts after %s",
              first, lost_first);
    cr_assert(aw_stream_id_parse(read_last, strlen(read_last), &ms, &seq) ==
              AW_OK);
    cr_assert(f_ms > ms || (f_ms == ms && f_seq > seq),
              "%s includes %s, which was read", first, read_last);
    cr_assert(aw_stream_id_parse(lost_last, strlen(lost_last), &ms, &seq) ==
              AW_OK);
    cr_assert(l_ms > ms || (l_ms == ms && l_seq >= seq), "%s ends before %s",
              last, lost_last);
    cr_assert(aw_stream_id_parse(after_first, strlen(after_first), &ms, &seq) ==
              AW_OK);
    cr_assert(l_ms < ms || (l_ms == ms && l_seq < seq),
              "%s includes %s, which was kept", last, after_first);
    redisFree(c);
}

Test(consumer_trim, history_trimmed_before_the_group_existed_is_no_loss)
{
    redisContext *c = aw_test_redis_connect(&redis);
    const char *streams[] = {AUDIT, NULL};
    char last[48];
    aw_test_proc daemon;

    publish(c, "old", 20, last);
    freeReplyObject(aw_test_command(c, "XTRIM %s MAXLEN 5", AUDIT));
    aw_test_daemon_start(&daemon, dir, "fresh", &redis, db, NULL, NULL);
    cr_assert(aw_test_wait_entries(db, 5, 20000),
              "the retained entries were not indexed");
    cr_assert(aw_test_wait_no_pending(c, streams, "auditwatch", 10000));
    aw_test_daemon_stop(&daemon, 5000);
    cr_assert_eq(trimmed_alerts().n, 0);
    redisFree(c);
}

/* Caracal's DLQ replay, while auditwatch is down: the event goes back on
 * the audit stream, its dead letter is deleted. The deletion is reported,
 * as high, about the DLQ; the replayed entry is read from the audit
 * stream. */
Test(consumer_trim, a_dlq_entry_replayed_while_down_is_a_high_loss)
{
    redisContext *c = aw_test_redis_connect(&redis);
    char last[48], data[1024];
    aw_test_proc daemon;

    publish(c, "read", 2, last);
    read_everything(c, "first", 2);
    aw_test_audit_data(&(aw_test_audit){.id = "replayed"}, data, sizeof data);
    redisReply *r =
        aw_test_command(c, "XADD %s * reason pg_down src_data %s", DLQ, data);
    char dead[48];
    snprintf(dead, sizeof dead, "%s", r->str);
    freeReplyObject(r);
    freeReplyObject(aw_test_command(c, "XADD %s * data %s", AUDIT, data));
    freeReplyObject(aw_test_command(c, "XDEL %s %s", DLQ, dead));

    aw_test_daemon_start(&daemon, dir, "second", &redis, db, NULL, NULL);
    cr_assert(aw_test_wait_for(trim_alerted, NULL, 20000),
              "no alert for the deleted dead letter");
    cr_assert(aw_test_wait_entries(db, 3, 20000),
              "the replayed entry was not stored");
    aw_test_daemon_stop(&daemon, 5000);
    alerts_seen seen = trimmed_alerts();
    cr_assert_eq(seen.n, 1);
    cr_assert_str_eq(seen.anchor, DLQ);
    cr_assert_str_eq(seen.severity, "high");
    redisFree(c);
}

static bool group_made(void *ud)
{
    redisReply *r = redisCommand(ud, "XINFO GROUPS %s", AUDIT);
    bool made = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0;
    freeReplyObject(r);
    return made;
}

/* The line of the log at path that says the group was made, or NULL;
 * freed with the text *log. */
static const char *group_created_line(const char *path, char **log)
{
    *log = aw_test_read_file(path, NULL);
    cr_assert_not_null(*log, "no log at %s", path);
    for (char *line = strtok(*log, "\n"); line; line = strtok(NULL, "\n"))
        if (strstr(line, "group_created"))
            return line;
    return NULL;
}

/* With --start-id $, a group deleted while auditwatch is down is made again
 * after the newest entry the index holds, not at the end: the entries
 * published since are read, and the log names the id it was made at. */
Test(consumer_trim, a_group_deleted_while_down_resumes_from_the_index)
{
    redisContext *c = aw_test_redis_connect(&redis);
    const char *streams[] = {AUDIT, NULL};
    const char *args[] = {"--start-id", "$", NULL};
    char last[48];
    aw_test_proc daemon;

    aw_test_daemon_start(&daemon, dir, "first", &redis, db, args, NULL);
    cr_assert(aw_test_wait_for(group_made, c, 10000));
    publish(c, "read", 3, last);
    cr_assert(aw_test_wait_entries(db, 3, 20000));
    cr_assert(aw_test_wait_no_pending(c, streams, "auditwatch", 10000));
    aw_test_daemon_stop(&daemon, 5000);
    char newest_stored[48];
    snprintf(newest_stored, sizeof newest_stored, "%s", last);

    freeReplyObject(aw_test_command(c, "XGROUP DESTROY %s auditwatch", AUDIT));
    publish(c, "since", 2, last);
    aw_test_daemon_start(&daemon, dir, "second", &redis, db, args, NULL);
    cr_assert(aw_test_wait_entries(db, 5, 20000),
              "the entries published while the group was gone were skipped");
    aw_test_daemon_stop(&daemon, 5000);
    char *log;
    const char *line = group_created_line(daemon.err_path, &log);
    cr_assert_not_null(line, "the second daemon logged no group_created");
    cr_expect(strstr(line, newest_stored) != NULL,
              "group_created does not name the id it was made at (%s): %s",
              newest_stored, line);
    free(log);
    redisFree(c);
}
