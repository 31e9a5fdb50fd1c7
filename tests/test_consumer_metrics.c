/* test_consumer_metrics.c -- what a Prometheus server scraping /metrics
 * relies on, in process: a page promtool accepts, counters that add up,
 * open alerts that follow raise and resolve, label values that cannot break
 * the format, an endpoint that answers only /metrics and is not held up by
 * a client that never finishes its request; and the example alerting rules
 * in deploy/ load and fire when they should (promtool test rules), on
 * Caracal's pipeline and on alert changes no sink delivered. promtool
 * (Debian's prometheus package) checks the page and the rules when
 * installed; otherwise those tests skip and say why. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "consumer/metrics.h"
#include "tests/support/support.h"

static const char *streams[AW_ROLE_COUNT];

static void name_streams(void)
{
    for (int r = 0; r < AW_ROLE_COUNT; r++)
        streams[r] = aw_stream_role_default_stream((aw_stream_role)r);
}

TestSuite(consumer_metrics, .init = name_streams);

static bool have_promtool(void)
{
    return system("command -v promtool >/dev/null 2>&1") == 0;
}

static char *render(const aw_metrics_state *s)
{
    size_t len;
    char *page = aw_metrics_render(s, &len);
    cr_assert(page);
    cr_assert_eq(strlen(page), len);
    return page;
}

static double value_of(const char *page, const char *series)
{
    double v = 0;
    cr_assert(aw_test_metric(page, series, &v), "no sample %s in:\n%s", series,
              page);
    return v;
}

static aw_alert alert(const char *kind, const char *severity)
{
    return (aw_alert){
        .id = "a", .kind = kind, .severity = severity, .state = AW_ALERT_OPEN};
}

/* What a pipeline poll saw: an enforcer behind, one that joined late (lag
 * unknown), audit-ingestor, and dead letters on two streams. */
static aw_watch_figures caracal = {
    .polled = true,
    .groups = {{"caracal.sessions.revoke", "sts-revocation", 4, 2, 61500},
               {"caracal.sessions.revoke", "gateway-revocation:h\"1",
                AW_FIGURE_UNKNOWN, 0, 0},
               {"caracal.audit.events", "audit-ingestor", 0, 1, 250}},
    .ngroups = 3,
    .dead_letter_streams = {"caracal.audit.events.dlq",
                            "caracal.sessions.revoke.dead",
                            "caracal.agents.lifecycle.dead",
                            "caracal.delegations.invalidate.dead"},
    .dead_letters = {3, 1, 0, AW_FIGURE_UNKNOWN},
};

static void busy_state(aw_metrics_state *s)
{
    aw_ingest_stats st = {0};
    aw_metrics_state_init(s, streams);
    s->caracal = &caracal;
    st.indexed_by_role[AW_ROLE_AUDIT] = 7;
    st.indexed_by_role[AW_ROLE_CALLS] = 2;
    st.indexed_imports = 1;
    st.rejected_by_reason[AW_REJECT_SIGNATURE_INVALID] = 3;
    aw_metrics_count_batch(s, &st, 0.004);
    aw_metrics_count_batch(s, &st, 0.3);
    aw_metrics_count_batch(s, &st, 42);
    aw_metrics_set_open(s, AW_ALERT_DECISION_MISSING, 2);
    aw_alert a = alert(AW_ALERT_ACCESS_AFTER_REVOCATION, "critical");
    aw_metrics_count_alert(s, &a, AW_ALERT_RAISED);
    s->has_lag[AW_ROLE_AUDIT] = true;
    s->lag[AW_ROLE_AUDIT] = 1500;
    s->oldest_pending_seconds[AW_ROLE_AUDIT] = 2.5;
    s->detector_clock_seconds = 1779364800.25;
    s->redis_connected = true;
    s->alert_stream_failed = 4;
    s->alert_hook_failed = 5;
    s->alert_hook_dropped = 6;
}

/* busy_state's page (free). */
static char *busy_page(void)
{
    aw_metrics_state s;
    busy_state(&s);
    return render(&s);
}

Test(consumer_metrics, page_passes_promtool_check_metrics)
{
    char dir[PATH_MAX], path[PATH_MAX], cmd[PATH_MAX + 64];
    char *page;
    if (!have_promtool())
        cr_skip_test("promtool is not installed (Debian package prometheus)");
    page = busy_page();
    aw_test_tmpdir(dir);
    aw_test_write_file(aw_test_path(dir, "metrics.txt", path), page, 0600);
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s", path);
    cr_assert_eq(system(cmd), 0, "promtool check metrics refused:\n%s", page);
    free(page);
    aw_test_rmtree(dir);
}

Test(consumer_metrics, counters_add_up_per_stream_reason_and_kind)
{
    char *page = busy_page();
    cr_assert_eq(
        value_of(
            page,
            "auditwatch_entries_indexed_total{stream=\"caracal.audit.events\"}"),
        21);
    cr_assert_eq(
        value_of(
            page,
            "auditwatch_entries_indexed_total{stream=\"auditwatch.calls\"}"),
        6);
    cr_assert_eq(
        value_of(page, "auditwatch_entries_indexed_total{stream=\"import\"}"),
        3);
    cr_assert_eq(
        value_of(
            page,
            "auditwatch_entries_rejected_total{reason=\"signature_invalid\"}"),
        9);
    cr_assert_eq(
        value_of(
            page,
            "auditwatch_alerts_raised_total{kind=\"access_after_revocation\",severity=\"critical\"}"),
        1);
    cr_assert_eq(
        value_of(
            page,
            "auditwatch_stream_lag_entries{stream=\"caracal.audit.events\"}"),
        1500);
    cr_assert(
        !strstr(page,
                "auditwatch_stream_lag_entries{stream=\"auditwatch.calls\"}"),
        "a lag Redis never reported is not shown as 0");
    cr_assert_eq(
        value_of(
            page,
            "auditwatch_oldest_pending_seconds{stream=\"caracal.audit.events\"}"),
        2.5);
    cr_assert_eq(value_of(page, "auditwatch_redis_connected"), 1);
    cr_assert_float_eq(value_of(page, "auditwatch_detector_clock_seconds"),
                       1779364800.25, 0.001);
    cr_assert_eq(
        value_of(page, "auditwatch_build_info{version=\"" AW_VERSION "\"}"), 1);
    free(page);
}

/* The sample of auditwatch_alert_notifications_failed_total for (sink,
 * reason) in page. */
static double undelivered(const char *page, const char *sink,
                          const char *reason)
{
    char series[160];
    snprintf(series, sizeof series,
             "auditwatch_alert_notifications_failed_total{sink=\"%s\","
             "reason=\"%s\"}",
             sink, reason);
    return value_of(page, series);
}

Test(consumer_metrics,
     undelivered_alert_changes_are_counted_per_sink_and_reason)
{
    char *page = busy_page();
    cr_assert_eq(undelivered(page, "stream", "failed"), 4);
    cr_assert_eq(undelivered(page, "exec", "failed"), 5);
    cr_assert_eq(undelivered(page, "exec", "dropped"), 6);
    free(page);

    aw_metrics_state quiet;
    aw_metrics_state_init(&quiet, streams);
    page = render(&quiet);
    cr_assert_eq(undelivered(page, "exec", "failed"), 0,
                 "a counter nothing failed on still has its sample, at 0");
    free(page);
}

Test(consumer_metrics,
     caracal_groups_and_dead_letters_show_what_the_last_poll_saw)
{
    char *page = busy_page();
    cr_assert_eq(
        value_of(
            page,
            "auditwatch_caracal_group_lag_entries{stream=\"caracal.sessions.revoke\",group=\"sts-revocation\"}"),
        4);
    cr_assert_eq(
        value_of(
            page,
            "auditwatch_caracal_group_pending_entries{stream=\"caracal.sessions.revoke\",group=\"sts-revocation\"}"),
        2);
    cr_assert_eq(
        value_of(
            page,
            "auditwatch_caracal_group_oldest_unapplied_seconds{stream=\"caracal.sessions.revoke\",group=\"sts-revocation\"}"),
        61.5);
    cr_assert_eq(
        value_of(
            page,
            "auditwatch_caracal_group_pending_entries{stream=\"caracal.audit.events\",group=\"audit-ingestor\"}"),
        1);
    cr_assert_eq(
        value_of(
            page,
            "auditwatch_caracal_group_pending_entries{stream=\"caracal.sessions.revoke\",group=\"gateway-revocation:h\\\"1\"}"),
        0, "a group name cannot break the format");
    cr_assert(!strstr(page, "auditwatch_caracal_group_lag_entries{stream=\""
                            "caracal.sessions.revoke\",group=\"gateway"),
              "a lag Redis did not report is not shown as 0:\n%s", page);
    cr_assert_eq(
        value_of(
            page,
            "auditwatch_dead_letter_entries{stream=\"caracal.audit.events.dlq\"}"),
        3);
    cr_assert_eq(
        value_of(
            page,
            "auditwatch_dead_letter_entries{stream=\"caracal.agents.lifecycle.dead\"}"),
        0);
    cr_assert(!strstr(page, "auditwatch_dead_letter_entries{stream=\""
                            "caracal.delegations.invalidate.dead"),
              "a length Redis did not report is not shown as 0");
    free(page);
}

Test(consumer_metrics, caracal_figures_wait_for_the_first_poll)
{
    aw_metrics_state s;
    aw_watch_figures none = caracal;
    char *page;
    busy_state(&s);
    none.polled = false;
    s.caracal = &none;
    page = render(&s);
    cr_assert(strstr(page, "# TYPE auditwatch_dead_letter_entries gauge\n"));
    cr_assert(!strstr(page, "auditwatch_dead_letter_entries{"),
              "figures shown before any poll:\n%s", page);
    cr_assert(!strstr(page, "auditwatch_caracal_group_pending_entries{"));
    free(page);
}

Test(consumer_metrics, commit_histogram_buckets_are_cumulative)
{
    char *page = busy_page();
    cr_assert_eq(
        value_of(page,
                 "auditwatch_commit_duration_seconds_bucket{le=\"0.001\"}"),
        0);
    cr_assert_eq(
        value_of(page,
                 "auditwatch_commit_duration_seconds_bucket{le=\"0.005\"}"),
        1);
    cr_assert_eq(
        value_of(page, "auditwatch_commit_duration_seconds_bucket{le=\"0.5\"}"),
        2);
    cr_assert_eq(
        value_of(page, "auditwatch_commit_duration_seconds_bucket{le=\"10\"}"),
        2);
    cr_assert_eq(
        value_of(page,
                 "auditwatch_commit_duration_seconds_bucket{le=\"+Inf\"}"),
        3);
    cr_assert_eq(value_of(page, "auditwatch_commit_duration_seconds_count"), 3);
    cr_assert_float_eq(value_of(page, "auditwatch_commit_duration_seconds_sum"),
                       42.304, 1e-6);
    free(page);
}

Test(consumer_metrics,
     open_alerts_start_from_the_index_and_follow_raise_and_resolve)
{
    aw_metrics_state s;
    aw_alert a = alert(AW_ALERT_DECISION_MISSING, "high");
    char *page;
    aw_metrics_state_init(&s, streams);
    aw_metrics_set_open(&s, AW_ALERT_DECISION_MISSING, 2);
    aw_metrics_count_alert(&s, &a, AW_ALERT_RAISED);
    aw_metrics_count_alert(&s, &a, AW_ALERT_ESCALATED);
    page = render(&s);
    cr_assert_eq(
        value_of(page, "auditwatch_alerts_open{kind=\"decision_missing\"}"), 3);
    free(page);
    aw_metrics_count_alert(&s, &a, AW_ALERT_RESOLVED_NOW);
    aw_metrics_count_alert(&s, &a, AW_ALERT_RESOLVED_NOW);
    page = render(&s);
    cr_assert_eq(
        value_of(page, "auditwatch_alerts_open{kind=\"decision_missing\"}"), 1);
    cr_assert_eq(
        value_of(
            page,
            "auditwatch_alerts_raised_total{kind=\"decision_missing\",severity=\"high\"}"),
        1);
    free(page);
}

Test(consumer_metrics, stream_names_cannot_break_the_format)
{
    const char *odd[AW_ROLE_COUNT];
    aw_metrics_state s;
    for (int r = 0; r < AW_ROLE_COUNT; r++)
        odd[r] = streams[r];
    odd[0] = "a\"b\\c\nd";
    char *page;
    aw_metrics_state_init(&s, odd);
    page = render(&s);
    cr_assert(
        strstr(
            page,
            "auditwatch_entries_indexed_total{stream=\"a\\\"b\\\\c\\nd\"} 0\n"),
        "%s", page);
    free(page);
}

/* ---- The endpoint ---------------------------------------------------------------- */

static aw_metrics *serve(const char *page)
{
    aw_metrics *m;
    aw_error err = {0};
    cr_assert_eq(aw_metrics_listen("127.0.0.1:0", &m, &err), AW_OK, "%s",
                 err.msg);
    cr_assert_gt(aw_metrics_port(m), 0);
    aw_metrics_publish(m, strdup(page), strlen(page));
    return m;
}

Test(consumer_metrics, serves_the_published_page_on_metrics_only)
{
    aw_metrics *m = serve("auditwatch_redis_connected 1\n");
    char *ok = aw_test_http_request(aw_metrics_port(m),
                                    "GET /metrics HTTP/1.0\r\n\r\n", 3000);
    char *missing = aw_test_http_request(aw_metrics_port(m),
                                         "GET /other HTTP/1.0\r\n\r\n", 3000);
    char *post = aw_test_http_request(
        aw_metrics_port(m),
        "POST /metrics HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi", 3000);
    cr_assert(strstr(ok, " 200 "), "%s", ok);
    cr_assert(strstr(ok, "text/plain; version=0.0.4"), "%s", ok);
    cr_assert(strstr(ok, "\r\n\r\nauditwatch_redis_connected 1\n"), "%s", ok);
    cr_assert(strstr(missing, " 404 "), "%s", missing);
    cr_assert(strstr(post, " 405 "), "%s", post);
    free(ok);
    free(missing);
    free(post);
    aw_metrics_close(m);
}

/* Before the daemon's first page a scrape fails, rather than reading as a
 * page on which every series has gone. */
Test(consumer_metrics, no_page_yet_is_unavailable_not_empty)
{
    aw_metrics *m;
    aw_error err = {0};
    cr_assert_eq(aw_metrics_listen("127.0.0.1:0", &m, &err), AW_OK, "%s",
                 err.msg);
    char *early = aw_test_http_request(aw_metrics_port(m),
                                       "GET /metrics HTTP/1.0\r\n\r\n", 3000);
    cr_assert(strstr(early, " 503 "), "%s", early);
    const char *page = "auditwatch_redis_connected 1\n";
    aw_metrics_publish(m, strdup(page), strlen(page));
    char *ok = aw_test_http_request(aw_metrics_port(m),
                                    "GET /metrics HTTP/1.0\r\n\r\n", 3000);
    cr_assert(strstr(ok, " 200 "), "%s", ok);
    free(early);
    free(ok);
    aw_metrics_close(m);
}

Test(consumer_metrics,
     a_malformed_or_unfinished_request_does_not_hold_up_a_scrape)
{
    aw_metrics *m = serve("auditwatch_redis_connected 0\n");
    int port = aw_metrics_port(m);
    int slow = aw_test_http_connect(port, 3000);
    char *garbage, *ok;
    cr_assert(write(slow, "GET /metr", 9) == 9); /* and never the rest */
    garbage =
        aw_test_http_request(port, "\x01\x02 not http at all\r\n\r\n", 3000);
    cr_assert(!strstr(garbage, " 200 "), "%s", garbage);
    ok = aw_test_http_request(
        port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        3000);
    cr_assert(strstr(ok, "auditwatch_redis_connected 0\n"), "%s", ok);
    close(slow);
    free(garbage);
    free(ok);
    aw_metrics_close(m);
}

Test(consumer_metrics, refuses_an_address_without_a_port)
{
    aw_metrics *m;
    aw_error err = {0};
    cr_assert_eq(aw_metrics_listen("127.0.0.1", &m, &err), AW_ERR_INVALID);
    cr_assert_null(m);
    cr_assert(strstr(err.msg, "ADDR:PORT"), "%s", err.msg);
}

Test(consumer_metrics, example_alerting_rules_pass_promtool_check_rules)
{
    if (!have_promtool())
        cr_skip_test("promtool is not installed (Debian package prometheus)");
    cr_assert_eq(system("promtool check rules " AW_SOURCE_DIR
                        "/deploy/auditwatch.rules.yml"),
                 0);
}

/* promtool test rules on tests/fixtures/prometheus/<fixture>. */
static void assert_rules_test_passes(const char *fixture)
{
    char cmd[PATH_MAX + 64];
    if (!have_promtool())
        cr_skip_test("promtool is not installed (Debian package prometheus)");
    snprintf(cmd, sizeof cmd,
             "promtool test rules " AW_SOURCE_DIR
             "/tests/fixtures/prometheus/%s",
             fixture);
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);
}

Test(consumer_metrics,
     example_rules_page_on_a_stuck_enforcer_and_growing_dead_letters)
{
    assert_rules_test_passes("caracal_rules_test.yml");
}

Test(consumer_metrics, example_rules_page_when_alert_changes_reach_no_sink)
{
    assert_rules_test_passes("auditwatch_rules_test.yml");
}
