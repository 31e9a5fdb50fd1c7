/* test_consumer_pipeline_watch.c -- the pipeline watch's judges in process,
 * as tables: which enforcer group is reported for which revocation, and
 * when audit-ingestor counts as stalled and as recovered. */
#include <criterion/criterion.h>
#include <string.h>

#include "consumer/pipeline_watch.h"

#define NOW           1779364900000LL /* epoch ms of the poll */
#define GRACE         30000
#define ID(ms_, seq_) ((aw_stream_id){(ms_), (seq_)})
#define NONE          ID(0, 0)

typedef struct enforcer_case {
    const char *what;
    aw_group_snapshot group;
    bool trouble;
    aw_stream_id revocation; /* when trouble */
    const char *state;       /* in the detail */
} enforcer_case;

Test(pipeline_watch,
     an_enforcer_is_reported_for_its_oldest_revocation_past_the_grace)
{
    const aw_stream_snapshot stream = {.exists = true,
                                       .length = 3,
                                       .first_entry = ID(NOW - 90000, 0),
                                       .last_entry = ID(NOW - 1000, 0),
                                       .max_deleted_known = true};
    const enforcer_case cases[] = {
        {"applied everything",
         {.last_delivered = ID(NOW - 1000, 0), .lag = 0},
         false,
         NONE,
         "ok"},
        {"never read, past the grace",
         {.last_delivered = ID(NOW - 100000, 0),
          .lag = 3,
          .first_undelivered = ID(NOW - 90000, 0)},
         true,
         ID(NOW - 90000, 0),
         "not_reading"},
        {"never read, within the grace",
         {.last_delivered = ID(NOW - 10000, 0),
          .lag = 1,
          .first_undelivered = ID(NOW - 1000, 0)},
         false,
         NONE,
         "ok"},
        {"read, never acknowledged",
         {.last_delivered = ID(NOW - 1000, 0),
          .lag = 0,
          .pending = 2,
          .oldest_pending = ID(NOW - 60000, 0)},
         true,
         ID(NOW - 60000, 0),
         "not_acking"},
        {"joined late at $: nothing before it counts",
         {.last_delivered = ID(NOW - 1000, 0), .lag = AW_FIGURE_UNKNOWN},
         false,
         NONE,
         "ok"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        aw_watch_enforcer e = {"caracal.sessions.revoke",
                               "gateway-revocation:h1", stream, cases[i].group,
                               "gw-1 idle 90.0 s"};
        aw_pipeline_finding f;
        char detail[512];
        aw_watch_judge_enforcer(&e, NOW, GRACE, &f, detail, sizeof detail);
        cr_expect_eq(f.kind, AW_FINDING_NOT_CONSUMED, "%s", cases[i].what);
        cr_expect_eq(f.trouble, cases[i].trouble, "%s: %s", cases[i].what,
                     detail);
        if (cases[i].trouble)
            cr_expect_eq(aw_stream_id_cmp(f.entry, cases[i].revocation), 0,
                         "%s", cases[i].what);
        cr_expect(strstr(detail, cases[i].state), "%s: %s", cases[i].what,
                  detail);
        cr_expect(strstr(detail, "gw-1 idle 90.0 s"), "%s: %s", cases[i].what,
                  detail);
    }
}

typedef struct ingest_poll {
    int64_t lag;
    uint64_t last_generated_ms; /* the audit stream's newest id */
    bool carried, trouble;
} ingest_poll;

Test(
    pipeline_watch,
    the_ingestor_is_stalled_after_two_growing_polls_over_limits_and_recovers_once)
{
    const aw_ingest_limits limits = {.max_lag = 10, .max_age_ms = 60000};
    const ingest_poll polls[] = {
        {0, 100, false, false},  /* healthy */
        {50, 200, false, false}, /* over once: noise */
        {60, 300, true, true},   /* over twice while growing: stalled */
        {70, 400, true,
         true}, /* still: repeated (the detectors keep one alert) */
        {70, 400, true, true},   /* the stream stopped growing: still stalled */
        {0, 500, true, false},   /* recovered: carried once (committed) */
        {0, 600, false, false},  /* and then nothing */
        {50, 700, false, false}, /* over, once */
        {50, 700, false, false}, /* over, but the stream is quiet: no stall */
    };
    aw_watch_ingest_memory m = {0};
    for (size_t i = 0; i < sizeof polls / sizeof *polls; i++) {
        aw_group_snapshot g = {.last_delivered = ID(NOW - 1000, 0),
                               .lag = polls[i].lag};
        aw_pipeline_finding f;
        char detail[512];
        bool carried = aw_watch_judge_ingest(
            &m, "caracal.audit.events", &g, ID(polls[i].last_generated_ms, 0),
            NOW, &limits, &f, detail, sizeof detail);
        cr_expect_eq(carried, polls[i].carried, "poll %zu: %s", i, detail);
        if (carried && !f.trouble)
            aw_watch_ingest_recovered(&m); /* as the batch committed */
        if (carried) {
            cr_expect_eq(f.kind, AW_FINDING_INGEST_STALLED, "poll %zu", i);
            cr_expect_eq(f.trouble, polls[i].trouble, "poll %zu: %s", i,
                         detail);
            cr_expect_str_eq(f.group, "audit-ingestor");
        }
    }
}

/* A poll's findings replace the previous poll's when no batch took them
 * (the commit was busy): the recovery must not be lost with them. */
Test(pipeline_watch, the_recovery_is_carried_until_a_batch_commits_it)
{
    const aw_ingest_limits limits = {.max_lag = 10, .max_age_ms = 60000};
    const int64_t lags[] = {50, 60, 70, 0, 0, 0};
    aw_watch_ingest_memory m = {0};
    aw_pipeline_finding f;
    char detail[512];
    bool carried[6], trouble[6];
    for (size_t i = 0; i < 6; i++) {
        aw_group_snapshot g = {.last_delivered = ID(NOW - 1000, 0),
                               .lag = lags[i]};
        carried[i] = aw_watch_judge_ingest(&m, "caracal.audit.events", &g,
                                           ID(100 * (i + 1), 0), NOW, &limits,
                                           &f, detail, sizeof detail);
        trouble[i] = carried[i] && f.trouble;
        if (i == 4)
            aw_watch_ingest_recovered(&m);
    }
    cr_expect(trouble[2], "stalled");
    cr_expect(carried[3] && !trouble[3] && carried[4] && !trouble[4],
              "the recovery, again while no batch committed it");
    cr_expect_not(carried[5], "committed: not carried again");
}

Test(pipeline_watch, a_second_stall_is_about_its_own_oldest_entry)
{
    const aw_ingest_limits limits = {.max_lag = 10, .max_age_ms = 60000};
    aw_watch_ingest_memory m = {0};
    aw_pipeline_finding f;
    char detail[512];
    /* lag, first undelivered, newest id */
    const struct {
        int64_t lag;
        uint64_t first_ms, newest_ms;
    } polls[] = {
        {0, 0, 500},                        /* healthy: the baseline */
        {50, 1000, 2000}, {60, 1000, 3000}, /* stall about 1000-0 */
        {0, 0, 4000},                       /* recovered */
        {50, 5000, 6000}, {60, 5000, 7000}, /* stall about 5000-0 */
    };
    aw_stream_id about[6] = {{0, 0}};
    for (size_t i = 0; i < 6; i++) {
        aw_group_snapshot g = {
            .last_delivered =
                ID(polls[i].first_ms ? polls[i].first_ms - 1 : 3999, 0),
            .lag = polls[i].lag,
            .first_undelivered = ID(polls[i].first_ms, 0)};
        if (aw_watch_judge_ingest(&m, "caracal.audit.events", &g,
                                  ID(polls[i].newest_ms, 0), NOW, &limits, &f,
                                  detail, sizeof detail))
            about[i] = f.entry;
    }
    cr_expect_eq(about[2].ms, 1000);
    cr_expect_eq(about[3].ms, 1000, "the recovery names the stall it ends");
    cr_expect_eq(about[5].ms, 5000, "the second stall is a new alert");
}
