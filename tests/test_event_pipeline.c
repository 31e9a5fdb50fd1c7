/* test_event_pipeline.c -- the rules by which `doctor` (and later the
 * daemon's pipeline alerts) judge Caracal's consumer groups from Redis
 * snapshots: when a revocation counts as applied by an enforcer, which way
 * an enforcer is failing, when the audit ingestor is stalled, and how far a
 * group is from MAXLEN trimming. */
#include "event/event.h"

#include <criterion/criterion.h>

#define NOW 1779364900000LL /* ms, Redis' clock */
#define AT(ms_before_now)                                                      \
    ((aw_stream_pos){(uint64_t)(NOW - (ms_before_now)), 0})
#define NONE ((aw_stream_pos){0, 0})

static const aw_stream_snapshot stream = {
    .exists = true,
    .length = 10,
    .first_entry = {(uint64_t)(NOW - 600000), 0},
    .last_entry = {(uint64_t)(NOW - 1000), 0},
    .max_deleted_known = true,
};

Test(event_pipeline,
     revocation_before_a_late_group_was_created_counts_as_applied)
{
    /* created at `$` when the stream ended 60 s ago; nothing since */
    aw_group_snapshot late = {.last_delivered = AT(60000), .lag = 0};
    cr_expect_eq(aw_group_applied(&late, AT(120000)), AW_APPLIED_YES);
    cr_expect_eq(aw_group_applied(&late, AT(1000)), AW_APPLIED_NOT_DELIVERED);
}

Test(event_pipeline,
     a_pending_revocation_is_not_applied_and_others_may_be_unknown)
{
    aw_group_snapshot g = {.last_delivered = AT(1000),
                           .lag = 0,
                           .pending = 2,
                           .oldest_pending = AT(50000)};
    cr_expect_eq(aw_group_applied(&g, AT(60000)), AW_APPLIED_YES,
                 "before the oldest pending");
    cr_expect_eq(aw_group_applied(&g, AT(50000)), AW_APPLIED_PENDING);
    cr_expect_eq(aw_group_applied(&g, AT(20000)), AW_APPLIED_UNKNOWN,
                 "XPENDING must tell");
    g.pending = 1;
    cr_expect_eq(aw_group_applied(&g, AT(20000)), AW_APPLIED_YES,
                 "the only pending is older");
}

Test(event_pipeline,
     enforcer_that_never_reads_is_judged_on_the_first_undelivered_revocation)
{
    aw_group_snapshot g = {.last_delivered = AT(300000),
                           .lag = 3,
                           .first_undelivered = AT(45000),
                           .consumers = 1,
                           .freshest_consumer_idle_ms = 300000};
    aw_enforcer_judgment j;
    aw_enforcer_judge(&stream, &g, NOW, 30000, &j);
    cr_expect_eq(j.state, AW_ENFORCER_NOT_READING);
    cr_expect_eq(j.unapplied_age_ms, 45000);
    cr_expect_str_eq(aw_enforcer_state_name(j.state), "not_reading");
    aw_enforcer_judge(&stream, &g, NOW, 60000, &j);
    cr_expect_eq(j.state, AW_ENFORCER_OK, "still within a 60 s grace");
}

Test(event_pipeline, enforcer_that_reads_and_never_acks_is_not_acking)
{
    aw_group_snapshot g = {.last_delivered = AT(1000),
                           .lag = 0,
                           .pending = 4,
                           .oldest_pending = AT(90000),
                           .oldest_pending_idle_ms = 89000};
    aw_enforcer_judgment j;
    aw_enforcer_judge(&stream, &g, NOW, 30000, &j);
    cr_expect_eq(j.state, AW_ENFORCER_NOT_ACKING);
    cr_expect_eq(j.unapplied_age_ms, 90000);
    cr_expect_eq(aw_stream_id_cmp(j.oldest_unapplied, AT(90000)), 0);
}

Test(event_pipeline, enforcer_caught_up_is_ok_and_one_behind_a_trim_is_trimmed)
{
    aw_group_snapshot g = {.last_delivered = stream.last_entry, .lag = 0};
    aw_enforcer_judgment j;
    aw_enforcer_judge(&stream, &g, NOW, 30000, &j);
    cr_expect_eq(j.state, AW_ENFORCER_OK);
    cr_expect(aw_stream_pos_is_none(j.oldest_unapplied));
    aw_stream_snapshot trimmed = stream;
    trimmed.max_deleted = AT(500000);
    aw_group_snapshot behind = {.last_delivered = AT(700000),
                                .lag = AW_FIGURE_UNKNOWN,
                                .first_undelivered = trimmed.first_entry};
    aw_enforcer_judge(&trimmed, &behind, NOW, 30000, &j);
    cr_expect_eq(j.state, AW_ENFORCER_TRIMMED);
    cr_expect_eq(aw_group_trim_headroom(&trimmed, &behind, 100000), 0);

    /* MAXLEN trimming leaves max-deleted-entry-id alone: it shows as a lag
     * larger than what the stream still holds, from before its first entry */
    aw_group_snapshot outrun = {.last_delivered = AT(700000),
                                .lag = 25,
                                .first_undelivered = stream.first_entry};
    aw_enforcer_judge(&stream, &outrun, NOW, 30000, &j);
    cr_expect_eq(j.state, AW_ENFORCER_TRIMMED, "25 unread, 10 retained");
    outrun.lag = 10;
    aw_enforcer_judge(&stream, &outrun, NOW, 30000, &j);
    cr_expect_eq(j.state, AW_ENFORCER_NOT_READING,
                 "all 10 unread are still there");
}

Test(event_pipeline, ingestor_absent_lagging_or_stuck_against_its_limits)
{
    aw_ingest_limits lim = {.max_lag = 100, .max_age_ms = 60000};
    aw_ingest_judgment j;
    aw_ingest_judge(NULL, NOW, &lim, &j);
    cr_expect_eq(j.state, AW_INGEST_ABSENT);

    aw_group_snapshot g = {
        .last_delivered = AT(2000), .lag = 101, .first_undelivered = AT(1500)};
    aw_ingest_judge(&g, NOW, &lim, &j);
    cr_expect_eq(j.state, AW_INGEST_LAGGING, "over max_lag");
    g.lag = 5;
    aw_ingest_judge(&g, NOW, &lim, &j);
    cr_expect_eq(j.state, AW_INGEST_OK, "a few fresh entries unread");
    g.first_undelivered = AT(61000);
    aw_ingest_judge(&g, NOW, &lim, &j);
    cr_expect_eq(j.state, AW_INGEST_LAGGING,
                 "few entries, but unread for 61 s");
    cr_expect_eq(j.oldest_unread_age_ms, 61000);

    aw_group_snapshot stuck = {.last_delivered = stream.last_entry,
                               .lag = 0,
                               .pending = 1,
                               .oldest_pending = AT(120000)};
    aw_ingest_judge(&stuck, NOW, &lim, &j);
    cr_expect_eq(j.state, AW_INGEST_STUCK);
    cr_expect_eq(j.oldest_pending_age_ms, 120000);
    cr_expect_str_eq(aw_ingest_state_name(j.state), "stuck");
}

Test(event_pipeline, trim_headroom_counts_unread_and_pending_against_maxlen)
{
    aw_group_snapshot g = {.last_delivered = AT(5000),
                           .lag = 300,
                           .pending = 200,
                           .oldest_pending = AT(9000),
                           .first_undelivered = AT(4000)};
    cr_expect_eq(aw_group_trim_headroom(&stream, &g, 100000), 99500);
    cr_expect_eq(aw_group_trim_headroom(&stream, &g, 400), 0,
                 "already within reach");
    g.oldest_pending =
        AT(700000); /* before the first retained entry: trimmed away */
    cr_expect_eq(aw_group_trim_headroom(&stream, &g, 100000), 0);
    aw_group_snapshot unknown = {.last_delivered = AT(5000),
                                 .lag = AW_FIGURE_UNKNOWN,
                                 .first_undelivered = AT(4000)};
    cr_expect_eq(aw_group_trim_headroom(&stream, &unknown, 100000),
                 AW_FIGURE_UNKNOWN);
    aw_group_snapshot before_all = {.last_delivered = AT(700000),
                                    .lag = AW_FIGURE_UNKNOWN,
                                    .first_undelivered = stream.first_entry};
    cr_expect_eq(aw_group_trim_headroom(&stream, &before_all, 100000),
                 100000 - stream.length, "every retained entry is unread");
    unknown.first_undelivered = NONE;
    cr_expect_eq(aw_group_trim_headroom(&stream, &unknown, 100000), 100000,
                 "nothing unread even if Redis cannot count");
}
