/* test_detectors_lifecycle.c -- what holds across the detectors as a whole:
 * deterministic alert ids, the persisted event-time clock, restarts inside a
 * grace window, order independence, and the change queue handed to sinks.
 */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/detectors_world.h"

Test(alert_ids, are_the_documented_hash_of_kind_zone_anchor_request)
{
    char id[33], again[33];
    /* sha256("decision_missing\0zone-1\0\0req-1"), first 16 bytes. */
    cr_assert_str_eq(
        aw_detectors_alert_id("decision_missing", "zone-1", NULL, "req-1", id),
        "c6be7ec9a39a2144c27116c9fe887c18");
    cr_assert_str_eq(
        aw_detectors_alert_id("decision_missing", "zone-1", "", "req-1", again),
        id, "NULL hashes as the empty string");
    cr_assert_str_neq(
        aw_detectors_alert_id("decision_missing", "zone-1", "req", "-1", again),
        id, "the separators keep fields apart");
}

Test(detectors, refuse_negative_grace)
{
    dw_world w;
    dw_open(&w, DW_S(300), DW_S(5));
    aw_detector_config bad = {.grace_missing_ns = -1, .grace_revocation_ns = 0};
    aw_detectors *det = NULL;
    aw_error err = {0};
    cr_assert_eq(aw_detectors_new(w.store, &bad, &det, &err), AW_ERR_INVALID);
    cr_assert_null(det);
    cr_assert_neq(err.msg[0], '\0');
    dw_close(&w);
}

/* ---- Order independence and stable ids ---------------------------------- */

/* A scenario whose entries all arrive within one grace window:
 * 4 alerts (decision_missing req-a, access_after_revocation req-c,
 * call_without_audit req-e, caracal_anomaly req-f). */
enum { NSTEPS = 10 };

static void scenario_step(dw_world *w, int step)
{
    switch (step) {
    case 0: {
        dw_audit g = {.id = "g-a",
                      .type = "gateway_resource_request",
                      .request = "req-a",
                      .upstream_status = 200,
                      .arrival_ms = DW_S(1)};
        dw_feed_audit(w, &g);
        break;
    }
    case 1: {
        dw_audit g = {.id = "g-b",
                      .type = "gateway_resource_request",
                      .request = "req-b",
                      .upstream_status = 200,
                      .arrival_ms = DW_S(2)};
        dw_feed_audit(w, &g);
        break;
    }
    case 2: {
        dw_audit te = {.id = "te-b",
                       .type = "token_exchange",
                       .request = "req-b",
                       .occurred_ms = DW_S(2),
                       .arrival_ms = DW_S(40)};
        dw_feed_audit(w, &te);
        break;
    }
    case 3: {
        dw_revocation r = {.action = AW_ACTION_REVOKE,
                           .at_ms = DW_S(10),
                           .anchors = {DW_AGENT("as-1")}};
        dw_feed_revocation(w, &r);
        break;
    }
    case 4: {
        dw_audit te = {.id = "te-c",
                       .type = "token_exchange",
                       .request = "req-c",
                       .occurred_ms = DW_S(20),
                       .arrival_ms = DW_S(20),
                       .anchors = {DW_AGENT("as-1")}};
        dw_feed_audit(w, &te);
        break;
    }
    case 5: {
        dw_audit te = {.id = "te-d",
                       .type = "token_exchange",
                       .request = "req-d",
                       .occurred_ms = DW_S(12),
                       .arrival_ms = DW_S(12),
                       .anchors = {DW_AGENT("as-1")}};
        dw_feed_audit(w, &te);
        break;
    }
    case 6: {
        dw_call c = {.request = "req-e", .status = 200, .arrival_ms = DW_S(5)};
        dw_feed_call(w, &c);
        break;
    }
    case 7: {
        dw_call c = {.request = "req-b", .status = 200, .arrival_ms = DW_S(6)};
        dw_feed_call(w, &c);
        break;
    }
    case 8: {
        dw_audit an = {.id = "an-f",
                       .type = "jti_collision",
                       .request = "req-f",
                       .decision = "deny",
                       .arrival_ms = DW_S(30)};
        dw_feed_audit(w, &an);
        break;
    }
    case 9: {
        dw_revocation r = {.action = AW_ACTION_REVOKE,
                           .at_ms = DW_S(11),
                           .zone = "zone-2",
                           .anchors = {DW_AGENT("as-1")}};
        dw_feed_revocation(w, &r);
        break;
    }
    default: cr_assert_fail("no step %d", step);
    }
}

static char *run_scenario(const int order[NSTEPS])
{
    dw_world w;
    dw_open(&w, DW_S(300), DW_S(5));
    for (int i = 0; i < NSTEPS; i++)
        scenario_step(&w, order[i]);
    dw_advance(&w, DW_S(1000));
    cr_assert_eq(dw_alerts(&w, NULL, NULL, NULL, 0), 4);
    char *snapshot = dw_snapshot(&w);
    dw_close(&w);
    return snapshot;
}

Test(detectors, same_events_in_any_order_give_the_same_alerts)
{
    const int forward[NSTEPS] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    const int backward[NSTEPS] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0};
    const int shuffled[NSTEPS] = {4, 7, 2, 9, 0, 5, 8, 3, 6, 1};
    char *a = run_scenario(forward);
    char *b = run_scenario(backward);
    char *c = run_scenario(shuffled);
    cr_assert_str_eq(a, b);
    cr_assert_str_eq(a, c);
    free(a);
    free(b);
    free(c);
}

Test(detectors, alert_ids_are_identical_across_instances)
{
    const int order[NSTEPS] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    char *first = run_scenario(order);
    char *second = run_scenario(order);
    cr_assert_str_eq(first, second);
    char id[33];
    cr_assert_not_null(
        strstr(first, aw_detectors_alert_id(AW_ALERT_DECISION_MISSING, "zone-1",
                                            NULL, "req-a", id)),
        "%s", first);
    free(first);
    free(second);
}

/* ---- The clock and restarts --------------------------------------------- */

static dw_world w;

static void setup(void)
{
    dw_open(&w, DW_S(300), DW_S(5));
}

static void teardown(void)
{
    dw_close(&w);
}

TestSuite(clock, .init = setup, .fini = teardown);

Test(clock, follows_the_audit_watermark_and_never_moves_back)
{
    dw_audit e = {
        .id = "e-1", .type = "step_up_issued", .arrival_ms = DW_S(50)};
    dw_feed_audit(&w, &e);
    cr_assert_eq(aw_detectors_clock(w.det), DW_NS(DW_S(50)));
    dw_advance(&w, DW_S(100));
    dw_advance(&w, DW_S(60));
    cr_assert_eq(aw_detectors_clock(w.det), DW_NS(DW_S(100)));
    dw_reopen(&w);
    cr_assert_eq(aw_detectors_clock(w.det), DW_NS(DW_S(100)),
                 "the clock survives a restart");
}

Test(clock, restart_inside_grace_window_raises_exactly_once)
{
    dw_audit g = {.id = "g-1",
                  .type = "gateway_resource_request",
                  .request = "req-1",
                  .upstream_status = 200};
    dw_feed_audit(&w, &g);
    dw_advance(&w, DW_S(100));
    dw_reopen(&w);
    dw_advance(&w, DW_S(200));
    cr_assert_eq(dw_alerts(&w, AW_ALERT_DECISION_MISSING, NULL, NULL, 0), 0);
    dw_reopen(&w);
    dw_advance(&w, DW_S(301));
    cr_assert_eq(dw_alerts(&w, AW_ALERT_DECISION_MISSING, NULL, NULL, 0), 1,
                 "the pending check survived two restarts");
    dw_reopen(&w);
    dw_advance(&w, DW_S(400));
    cr_assert_eq(dw_alerts(&w, AW_ALERT_DECISION_MISSING, NULL, NULL, 0), 1);
    cr_assert_eq(dw_count_changes(&w, NULL, AW_ALERT_RAISED), 1,
                 "sinks hear of the alert once");
}

static int count_row(void *ud, int ncols, char **values, char **names)
{
    (void)ncols, (void)values, (void)names;
    (*(int *)ud)++;
    return 0;
}

/* Runs sql on the index with the sqlite3 API; returns the rows it gave. */
static int sql_rows(const char *sql)
{
    sqlite3 *db;
    int n = 0;
    cr_assert_eq(sqlite3_open(w.path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, sql, count_row, &n, NULL), SQLITE_OK,
                 "%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_close(db);
    return n;
}

Test(clock, checks_waiting_across_restarts_write_no_row_and_raise_once)
{
    dw_audit g = {.id = "g-1",
                  .type = "gateway_resource_request",
                  .request = "req-1",
                  .upstream_status = 200};
    dw_call c = {.request = "req-2",
                 .status = 200,
                 .occurred_ms = DW_S(10),
                 .arrival_ms = DW_S(10)};
    dw_audit settled = {.id = "g-2",
                        .type = "gateway_resource_request",
                        .request = "req-3",
                        .occurred_ms = DW_S(20),
                        .arrival_ms = DW_S(20)};
    dw_audit its_decision = {.id = "te-3",
                             .type = "token_exchange",
                             .request = "req-3",
                             .occurred_ms = DW_S(19),
                             .arrival_ms = DW_S(19)};
    dw_feed_audit(&w, &g);
    dw_feed_call(&w, &c);
    dw_feed_audit(&w, &its_decision);
    dw_feed_audit(&w, &settled);
    dw_advance(&w, DW_S(100));
    cr_assert_eq(sql_rows("SELECT 1 FROM pending"), 0,
                 "waiting checks are kept in memory, not written per check");
    dw_reopen(&w);
    dw_advance(&w, DW_S(305));
    cr_assert_eq(dw_alerts(&w, AW_ALERT_DECISION_MISSING, NULL, NULL, 0), 1,
                 "the Gateway call's check survived the restart");
    cr_assert_eq(dw_alerts(&w, AW_ALERT_CALL_WITHOUT_AUDIT, NULL, NULL, 0), 0,
                 "the observed call's deadline is not reached yet");
    dw_reopen(&w);
    dw_advance(&w, DW_S(311));
    cr_assert_eq(dw_alerts(&w, AW_ALERT_CALL_WITHOUT_AUDIT, "req-2", NULL, 0),
                 1, "the observed call's check survived two restarts");
    dw_reopen(&w);
    dw_advance(&w, DW_S(1000));
    cr_assert_eq(dw_alerts(&w, NULL, NULL, NULL, 0), 2, "req-3 was paired");
    cr_assert_eq(dw_count_changes(&w, NULL, AW_ALERT_RAISED), 2,
                 "sinks hear of each alert once");
}

Test(clock, a_check_run_by_a_rolled_back_batch_runs_again_in_the_next)
{
    dw_audit g = {.id = "g-1",
                  .type = "gateway_resource_request",
                  .request = "req-1",
                  .upstream_status = 200};
    dw_feed_audit(&w, &g);
    aw_error err = {0};
    cr_assert_eq(aw_store_begin(w.store, &err), AW_OK);
    cr_assert_eq(aw_detectors_advance(w.det, DW_NS(DW_S(301)), &err), AW_OK);
    aw_store_rollback(w.store);
    aw_detectors_discard(w.det);
    cr_assert_eq(dw_alerts(&w, AW_ALERT_DECISION_MISSING, NULL, NULL, 0), 0);
    dw_advance(&w, DW_S(302));
    cr_assert_eq(dw_alerts(&w, AW_ALERT_DECISION_MISSING, "req-1", NULL, 0), 1);
    cr_assert_eq(sql_rows("SELECT 1 FROM pending"), 0);
}

/* Beyond the memory bound checks wait as rows, and each still runs once,
 * across a restart too. */
Test(clock, checks_beyond_the_memory_bound_wait_in_the_index_and_run_once)
{
    w.config.max_waiting_checks = 2;
    dw_reopen(&w);
    const char *const requests[] = {"req-1", "req-2", "req-3"};
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof id, "g-%d", i);
        dw_audit g = {.id = id,
                      .type = "gateway_resource_request",
                      .request = requests[i],
                      .occurred_ms = DW_S(i),
                      .arrival_ms = DW_S(i)};
        dw_feed_audit(&w, &g);
    }
    cr_assert_eq(sql_rows("SELECT 1 FROM pending"), 1,
                 "one check over the bound");
    dw_reopen(&w);
    dw_advance(&w, DW_S(301));
    cr_assert_eq(dw_alerts(&w, AW_ALERT_DECISION_MISSING, NULL, NULL, 0), 2);
    dw_advance(&w, DW_S(302));
    cr_assert_eq(dw_alerts(&w, AW_ALERT_DECISION_MISSING, NULL, NULL, 0), 3);
    cr_assert_eq(dw_count_changes(&w, NULL, AW_ALERT_RAISED), 3,
                 "sinks hear of each alert once");
    cr_assert_eq(sql_rows("SELECT 1 FROM pending"), 0);
}

/* An index written before checks moved to memory holds them as rows. */
Test(clock, a_check_left_in_the_pending_table_still_runs_once)
{
    dw_audit g = {.id = "g-1",
                  .type = "gateway_resource_request",
                  .request = "req-1",
                  .upstream_status = 200};
    dw_feed_audit(&w, &g);
    dw_reopen(&w);
    sql_rows("INSERT INTO pending(deadline, kind, ref) SELECT occurred_at + "
             "300000000000, 1, rowid FROM events WHERE event_id = 'g-1'");
    dw_advance(&w, DW_S(301));
    cr_assert_eq(dw_alerts(&w, AW_ALERT_DECISION_MISSING, "req-1", NULL, 0), 1);
    cr_assert_eq(dw_count_changes(&w, NULL, AW_ALERT_RAISED), 1,
                 "the row and the rebuilt check are one check");
    cr_assert_eq(sql_rows("SELECT 1 FROM pending"), 0, "the row was taken");
}

Test(clock, alert_raised_before_restart_is_resolved_after_it)
{
    dw_audit g = {.id = "g-1",
                  .type = "gateway_resource_request",
                  .request = "req-1",
                  .upstream_status = 200};
    dw_feed_audit(&w, &g);
    dw_advance(&w, DW_S(301));
    dw_reopen(&w);
    dw_audit te = {.id = "te-1",
                   .type = "token_exchange",
                   .request = "req-1",
                   .arrival_ms = DW_S(310)};
    dw_feed_audit(&w, &te);
    cr_assert_eq(dw_the_alert(&w, AW_ALERT_DECISION_MISSING, "req-1").state,
                 AW_ALERT_RESOLVED);
}

/* ---- The change queue --------------------------------------------------- */

static int drained;

static void count_drained(const aw_alert *alert, aw_alert_change change,
                          void *ud)
{
    (void)alert;
    (void)change;
    (void)ud;
    drained++;
}

Test(clock, rolled_back_batch_leaves_no_alert_and_tells_no_sink)
{
    aw_error err = {0};
    cr_assert_eq(aw_store_begin(w.store, &err), AW_OK);
    cr_assert_eq(aw_detectors_on_trimmed(w.det, DW_AUDIT_STREAM, AW_ROLE_AUDIT,
                                         "1-0", "2-0", &err),
                 AW_OK);
    aw_store_rollback(w.store);
    aw_detectors_discard(w.det);
    drained = 0;
    aw_detectors_drain(w.det, count_drained, NULL);
    cr_assert_eq(drained, 0);
    cr_assert_eq(dw_alerts(&w, NULL, NULL, NULL, 0), 0);

    cr_assert_eq(dw_trimmed(&w, DW_AUDIT_STREAM, AW_ROLE_AUDIT, "1-0", "2-0"),
                 AW_OK);
    cr_assert_eq(
        dw_count_changes(&w, AW_ALERT_EVIDENCE_TRIMMED, AW_ALERT_RAISED), 1);
    cr_assert_eq(dw_alerts(&w, NULL, NULL, NULL, 0), 1);
}

Test(clock, each_change_is_handed_out_once_with_the_stored_state)
{
    cr_assert_eq(dw_trimmed(&w, DW_AUDIT_STREAM, AW_ROLE_AUDIT, "1-0", "2-0"),
                 AW_OK);
    cr_assert_eq(w.nchanges, 1);
    cr_assert_eq(w.changes[0].change, AW_ALERT_RAISED);
    cr_assert_eq(w.changes[0].state, AW_ALERT_OPEN);
    cr_assert_str_eq(w.changes[0].severity, "critical");
    drained = 0;
    aw_detectors_drain(w.det, count_drained, NULL);
    cr_assert_eq(drained, 0, "a drained change is not handed out again");

    cr_assert_eq(dw_trimmed(&w, DW_AUDIT_STREAM, AW_ROLE_AUDIT, "1-0", "2-0"),
                 AW_OK);
    cr_assert_eq(w.nchanges, 1, "raising the same alert again changes nothing");
}
