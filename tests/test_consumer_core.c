/* test_consumer_core.c -- the consumer's rules as tables, in process: the
 * core (consumer/core.c) is fed typed facts and its actions are checked. No
 * Redis; where a commit must really happen, the real index (aw_ingest) runs
 * it.
 */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "consumer/core.h"
#include "store/store.h"
#include "support/support.h"

#define AUDIT  AW_ROLE_AUDIT
#define REVOKE AW_ROLE_SESSION_REVOKE

/* What the core asked for, copied out as it came. */
typedef struct seen {
    int creates, reads, counts, commits, stops, waits[2];
    aw_core_action last_read;
    aw_core_action last_count;
    aw_core_commit commit; /* valid until the commit is answered */
    bool commit_open;
    char acked[512][64];
    size_t nacked, ack_actions;
    char logs[64][48];
    size_t nlogs;
} seen;

static void record(seen *s, const aw_core_action *a)
{
    switch (a->kind) {
    case AW_ACT_NONE: break;
    case AW_ACT_CREATE_GROUPS: s->creates++; break;
    case AW_ACT_READ:
        s->reads++;
        s->last_read = *a;
        break;
    case AW_ACT_COUNT:
        s->counts++;
        s->last_count = *a;
        break;
    case AW_ACT_COMMIT:
        cr_assert(!s->commit_open, "a second commit while one runs");
        s->commits++;
        s->commit = a->commit;
        s->commit_open = true;
        break;
    case AW_ACT_ACK:
        s->ack_actions++;
        for (size_t i = 0; i < a->ack.n; i++) {
            cr_assert_lt(s->nacked, 512);
            snprintf(s->acked[s->nacked++], 64, "%d:%s", a->ack.stream,
                     a->ack.ids[i]);
        }
        break;
    case AW_ACT_WAIT: s->waits[a->wait.timer]++; break;
    case AW_ACT_LOG:
        if (s->nlogs < 64)
            snprintf(s->logs[s->nlogs++], 48, "%s", a->log.event);
        break;
    case AW_ACT_STOP: s->stops++; break;
    }
}

static void step(aw_core *c, seen *s)
{
    aw_core_action a;
    for (aw_core_next(c, &a); a.kind != AW_ACT_NONE; aw_core_next(c, &a))
        record(s, &a);
}

static size_t logged(const seen *s, const char *event)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nlogs; i++)
        n += strcmp(s->logs[i], event) == 0;
    return n;
}

static bool was_acked(const seen *s, int stream, const char *id)
{
    char key[64];
    snprintf(key, sizeof key, "%d:%s", stream, id);
    for (size_t i = 0; i < s->nacked; i++)
        if (strcmp(s->acked[i], key) == 0)
            return true;
    return false;
}

static aw_core *new_core(void)
{
    aw_core_config cfg = {.group_max_entries = 4000,
                          .max_deliveries = 8,
                          .retry_first_ms = 500,
                          .retry_max_ms = 30000};
    for (int r = 0; r < AW_CORE_STREAMS; r++)
        cfg.streams[r] = aw_stream_role_default_stream((aw_stream_role)r);
    aw_core *c = aw_core_new(&cfg);
    cr_assert_not_null(c);
    return c;
}

static aw_raw_entry *entry_with(int stream, const char *id, const char *data)
{
    const char *name = aw_stream_role_default_stream((aw_stream_role)stream);
    aw_field f = {{"data", 4}, {data, strlen(data)}};
    aw_raw_entry *e;
    aw_error err;
    cr_assert_eq(aw_raw_entry_new((aw_bytes){name, strlen(name)},
                                  (aw_bytes){id, strlen(id)}, &f, 1, &e, &err),
                 AW_OK, "%s", err.msg);
    return e;
}

static aw_raw_entry *entry(int stream, const char *id)
{
    return entry_with(stream, id, "{}");
}

/* Connected, groups made, nothing pending, nothing to claim: the first live
 * read is in flight. */
/* Connected, the audit group made by this consumer (made) or found there,
 * pending and claim reads answered empty. */
static void to_live_with(aw_core *c, seen *s, bool made)
{
    aw_core_read pending = {.kind = AW_CORE_READ_PENDING};
    aw_core_read claim = {.kind = AW_CORE_READ_CLAIM};
    aw_core_on_connected(c);
    step(c, s);
    cr_assert_eq(s->creates, 1);
    if (made)
        aw_core_on_group_created(c, AUDIT);
    aw_core_on_groups(c, true, NULL);
    step(c, s);
    cr_assert_eq(s->last_read.read.kind, AW_CORE_READ_PENDING);
    aw_core_on_read(c, &pending);
    step(c, s);
    cr_assert_eq(s->last_read.read.kind, AW_CORE_READ_CLAIM);
    aw_core_on_read(c, &claim);
    step(c, s);
    cr_assert_eq(aw_core_get_state(c), AW_CORE_LIVE);
    cr_assert_eq(s->last_read.read.kind, AW_CORE_READ_LIVE);
}

static void to_live(aw_core *c, seen *s)
{
    to_live_with(c, s, false);
}

/* A snapshot of the audit stream with everything known: length entries
 * from first-0 to last-0, our group at delivered-0 with that lag. */
static aw_core_snapshot known(long long length, long long lag, uint64_t first,
                              uint64_t last, uint64_t delivered)
{
    return (aw_core_snapshot){.has_info = true,
                              .has_first = true,
                              .has_group = true,
                              .has_lag = true,
                              .length = length,
                              .lag = lag,
                              .first = {first, 0},
                              .last_generated = {last, 0},
                              .last_delivered = {delivered, 0}};
}

/* A live read answering with entries of one stream, and what was decoded
 * of them ahead (NULL: nothing). */
static void answer_live_decoded(aw_core *c, seen *s, int stream,
                                aw_raw_entry **entries,
                                aw_ingest_decoded **decoded, size_t n)
{
    aw_core_read r = {.kind = AW_CORE_READ_LIVE,
                      .blocking = s->last_read.read.blocking,
                      .now_ns = 1};
    r.streams[stream].entries = entries;
    r.streams[stream].decoded = decoded;
    r.streams[stream].n = n;
    aw_core_on_read(c, &r);
    step(c, s);
}

static void answer_live(aw_core *c, seen *s, int stream, aw_raw_entry **entries,
                        size_t n)
{
    answer_live_decoded(c, s, stream, entries, NULL, n);
}

static void answer_commit(aw_core *c, seen *s, int rc, const char *msg)
{
    aw_error err = {0};
    cr_assert(s->commit_open, "no commit was handed out");
    s->commit_open = false;
    if (rc)
        aw_error_set(&err, rc, "%s", msg);
    aw_core_on_commit(c, rc, &err);
    step(c, s);
}

static void answer_acks(aw_core *c, seen *s)
{
    while (s->ack_actions) {
        s->ack_actions--;
        aw_core_on_acked(c, false, 1);
    }
    step(c, s);
}

Test(consumer_core, acks_only_after_the_commit_holding_the_entries)
{
    aw_core *c = new_core();
    seen s = {0};
    aw_raw_entry *e[] = {entry(AUDIT, "1-0"), entry(AUDIT, "2-0"),
                         entry(AUDIT, "3-0")};
    to_live(c, &s);
    answer_live(c, &s, AUDIT, e, 3);
    cr_assert_eq(s.commits, 1);
    cr_assert_eq(s.commit.n, 3);
    cr_assert_eq(s.nacked, 0, "acknowledged before the commit");
    answer_commit(c, &s, AW_OK, NULL);
    cr_assert_eq(s.nacked, 3);
    cr_assert(was_acked(&s, AUDIT, "1-0") && was_acked(&s, AUDIT, "3-0"));
    answer_acks(c, &s);
    aw_core_free(c);
}

Test(consumer_core, a_live_read_blocks_only_while_nothing_commits)
{
    aw_core *c = new_core();
    seen s = {0};
    aw_raw_entry *e[] = {entry(AUDIT, "1-0")};
    to_live(c, &s);
    cr_assert(s.last_read.read.blocking, "an idle consumer should block");
    answer_live(c, &s, AUDIT, e, 1);
    cr_assert_eq(s.reads, 4);
    cr_assert_not(s.last_read.read.blocking,
                  "blocked while acks wait behind it");
    answer_commit(c, &s, AW_OK, NULL);
    aw_core_free(c);
}

Test(consumer_core,
     reads_during_a_commit_are_grouped_into_one_next_commit_in_read_order)
{
    aw_core *c = new_core();
    seen s = {0};
    aw_raw_entry *a[] = {entry(AUDIT, "1-0")};
    aw_raw_entry *b[] = {entry(AUDIT, "2-0"), entry(AUDIT, "3-0")};
    aw_raw_entry *d[] = {entry(REVOKE, "4-0")};
    to_live(c, &s);
    answer_live(c, &s, AUDIT, a, 1);
    answer_live(c, &s, AUDIT, b, 2);
    answer_live(c, &s, REVOKE, d, 1);
    cr_assert_eq(s.commits, 1, "a second commit started while one ran");
    answer_commit(c, &s, AW_OK, NULL);
    cr_assert_eq(s.commits, 2);
    cr_assert_eq(s.commit.n, 3, "the two reads were not grouped");
    cr_assert_str_eq(s.commit.items[0].entry->id.ptr, "2-0");
    cr_assert_str_eq(s.commit.items[2].entry->id.ptr, "4-0");
    answer_commit(c, &s, AW_OK, NULL);
    cr_assert_eq(s.nacked, 4);
    cr_assert(was_acked(&s, REVOKE, "4-0"));
    aw_core_free(c);
}

Test(consumer_core, reads_pause_once_the_waiting_batch_is_full)
{
    aw_core_config cfg = {.group_max_entries = 2,
                          .max_deliveries = 8,
                          .retry_first_ms = 1,
                          .retry_max_ms = 1};
    for (int r = 0; r < AW_CORE_STREAMS; r++)
        cfg.streams[r] = aw_stream_role_default_stream((aw_stream_role)r);
    aw_core *c = aw_core_new(&cfg);
    seen s = {0};
    aw_raw_entry *a[] = {entry(AUDIT, "1-0")};
    aw_raw_entry *b[] = {entry(AUDIT, "2-0"), entry(AUDIT, "3-0")};
    to_live(c, &s);
    answer_live(c, &s, AUDIT, a, 1);
    int reads = s.reads;
    answer_live(c, &s, AUDIT, b, 2);
    cr_assert_eq(s.reads, reads, "read on past a full waiting batch");
    answer_commit(c, &s, AW_OK, NULL);
    cr_assert_eq(s.reads, reads + 1,
                 "reading did not resume once the batch moved on");
    answer_commit(c, &s, AW_OK, NULL);
    aw_core_free(c);
}

/* The trimming table: what the group had read, what the stream still holds,
 * and the lost range the batch must carry. */
typedef struct trim_case {
    const char *name;
    long long length, lag;
    aw_stream_id first, last_generated, max_deleted, last_delivered;
    const char *lost_first, *lost_last; /* NULL: no loss */
} trim_case;

static const trim_case trim_cases[] = {
    {"maxlen trimmed 5 unread entries",
     10,
     15,
     {6, 0},
     {15, 0},
     {0, 0},
     {0, 0},
     "0-1",
     "5-18446744073709551615"},
    {"xdel of an unread entry",
     10,
     1,
     {1, 0},
     {10, 0},
     {10, 0},
     {9, 0},
     "9-1",
     "10-0"},
    {"history trimmed before the group existed",
     10,
     10,
     {6, 0},
     {15, 0},
     {0, 0},
     {5, 0},
     NULL,
     NULL},
    {"caught up, nothing deleted",
     10,
     0,
     {1, 0},
     {10, 0},
     {0, 0},
     {10, 0},
     NULL,
     NULL},
    {"xdel of an entry already read",
     9,
     0,
     {1, 0},
     {10, 0},
     {4, 0},
     {10, 0},
     NULL,
     NULL},
    {"everything trimmed, 3 never read",
     0,
     3,
     {0, 0},
     {12, 0},
     {0, 0},
     {9, 0},
     "9-1",
     "12-0"},
};

Test(consumer_core, trimming_table)
{
    for (size_t k = 0; k < sizeof trim_cases / sizeof *trim_cases; k++) {
        const trim_case *t = &trim_cases[k];
        aw_core *c = new_core();
        seen s = {0};
        aw_core_read r = {
            .kind = AW_CORE_READ_LIVE, .blocking = true, .now_ns = 1};
        to_live(c, &s);
        r.streams[AUDIT].before =
            (aw_core_snapshot){.has_info = true,
                               .has_first = t->length > 0,
                               .has_group = true,
                               .has_lag = true,
                               .length = t->length,
                               .lag = t->lag,
                               .first = t->first,
                               .last_generated = t->last_generated,
                               .max_deleted = t->max_deleted,
                               .last_delivered = t->last_delivered};
        aw_core_on_read(c, &r);
        step(c, &s);
        cr_assert_eq(s.commits, 1,
                     "%s: the idle blocking read did not commit its tick",
                     t->name);
        if (!t->lost_first) {
            cr_expect_eq(s.commit.ntrims, 0, "%s: reported a loss", t->name);
        } else {
            cr_assert_eq(s.commit.ntrims, 1, "%s: loss not reported", t->name);
            cr_expect_str_eq(s.commit.trims[0].first_id, t->lost_first, "%s",
                             t->name);
            cr_expect_str_eq(s.commit.trims[0].last_id, t->lost_last, "%s",
                             t->name);
            cr_expect_not(s.commit.trims[0].delivered, "%s", t->name);
            cr_expect_eq(logged(&s, "entries_deleted_unread"), 1, "%s",
                         t->name);
        }
        answer_commit(c, &s, AW_OK, NULL);
        cr_expect_eq(s.nacked, 0, "%s: acknowledged an entry never delivered",
                     t->name);
        aw_core_free(c);
    }
}

Test(consumer_core, a_loss_is_reported_once_though_the_lag_still_counts_it)
{
    aw_core *c = new_core();
    seen s = {0};
    aw_core_snapshot before = known(10, 15, 6, 15, 0);
    to_live(c, &s);
    for (int round = 0; round < 2; round++) {
        aw_core_read r = {
            .kind = AW_CORE_READ_LIVE, .blocking = true, .now_ns = 1};
        r.streams[AUDIT].before = before;
        aw_core_on_read(c, &r);
        step(c, &s);
        cr_assert_eq(s.commit.ntrims, round == 0 ? 1 : 0, "round %d", round);
        answer_commit(c, &s, AW_OK, NULL);
    }
    aw_core_free(c);
}

/* Pending entries: counted, and past the limit rejected undecoded. */
Test(consumer_core, an_entry_delivered_past_the_limit_is_rejected_not_decoded)
{
    aw_core *c = new_core();
    seen s = {0};
    aw_raw_entry *e[] = {entry(AUDIT, "1-0"), entry(AUDIT, "2-0")};
    aw_core_read pending = {.kind = AW_CORE_READ_PENDING};
    aw_core_on_connected(c);
    step(c, &s);
    aw_core_on_groups(c, true, NULL);
    step(c, &s);
    pending.streams[AUDIT].entries = e;
    pending.streams[AUDIT].n = 2;
    aw_core_on_read(c, &pending);
    step(c, &s);
    cr_assert_eq(s.counts, 1, "delivery counts were not asked for");
    cr_assert_eq(s.commits, 0, "committed before the counts were in");
    cr_assert_str_eq(s.last_count.count.first[AUDIT], "1-0");
    cr_assert_str_eq(s.last_count.count.last[AUDIT], "2-0");
    aw_core_delivery rows[] = {{{1, 0}, 3}, {{2, 0}, 9}};
    const aw_core_delivery *all[AW_CORE_STREAMS] = {[AUDIT] = rows};
    size_t n[AW_CORE_STREAMS] = {[AUDIT] = 2};
    aw_core_on_counts(c, false, NULL, all, n);
    step(c, &s);
    cr_assert_eq(s.commits, 1);
    cr_assert_eq(s.commit.items[0].forced_reason, AW_REJECT_NONE);
    cr_assert_eq(s.commit.items[1].forced_reason,
                 AW_REJECT_TOO_MANY_DELIVERIES);
    cr_assert_str_eq(s.commit.items[1].forced_detail,
                     "delivered 9 times (limit 8)");
    /* the next pending page starts after what this one returned */
    cr_assert_eq(s.last_read.read.kind, AW_CORE_READ_PENDING);
    cr_assert_str_eq(s.last_read.read.from[AUDIT], "2-0");
    answer_commit(c, &s, AW_OK, NULL);
    cr_assert(was_acked(&s, AUDIT, "2-0"),
              "the rejected entry stays pending forever");
    aw_core_free(c);
}

Test(consumer_core, a_pending_entry_deleted_by_redis_is_acked_and_reported)
{
    aw_core *c = new_core();
    seen s = {0};
    aw_stream_id gone[] = {{7, 0}};
    aw_core_read pending = {.kind = AW_CORE_READ_PENDING};
    aw_core_on_connected(c);
    step(c, &s);
    aw_core_on_groups(c, true, NULL);
    step(c, &s);
    pending.streams[AUDIT].deleted = gone;
    pending.streams[AUDIT].ndeleted = 1;
    aw_core_on_read(c, &pending);
    step(c, &s);
    cr_assert_eq(s.commits, 1);
    cr_assert_eq(s.commit.ntrims, 1);
    cr_assert(s.commit.trims[0].delivered,
              "a delivered entry reported as never read");
    answer_commit(c, &s, AW_OK, NULL);
    cr_assert(was_acked(&s, AUDIT, "7-0"));
    aw_core_free(c);
}

Test(consumer_core,
     a_claim_does_not_take_back_an_entry_this_consumer_is_committing)
{
    aw_core *c = new_core();
    seen s = {0};
    aw_raw_entry *e[] = {entry(AUDIT, "1-0")};
    aw_raw_entry *again[] = {entry(AUDIT, "1-0")};
    aw_core_read claim = {.kind = AW_CORE_READ_CLAIM};
    to_live(c, &s);
    answer_live(c, &s, AUDIT, e, 1);
    aw_core_on_claim_due(c);
    /* the non-blocking live read in flight answers empty; then the claim */
    answer_live(c, &s, AUDIT, NULL, 0);
    cr_assert_eq(s.last_read.read.kind, AW_CORE_READ_CLAIM);
    claim.streams[AUDIT].entries = again;
    claim.streams[AUDIT].n = 1;
    aw_core_on_read(c, &claim);
    step(c, &s);
    cr_assert_eq(s.counts, 0,
                 "our own in-flight entry was counted as a redelivery");
    answer_commit(c, &s, AW_OK, NULL);
    cr_assert_eq(s.nacked, 1);
    aw_core_free(c);
}

Test(consumer_core,
     a_transient_commit_failure_retries_acks_nothing_and_logs_once)
{
    aw_core *c = new_core();
    seen s = {0};
    aw_raw_entry *e[] = {entry(AUDIT, "1-0"), entry(AUDIT, "2-0")};
    to_live(c, &s);
    answer_live(c, &s, AUDIT, e, 2);
    for (int i = 0; i < 3; i++) {
        answer_commit(c, &s, i % 2 ? AW_ERR_BUSY : AW_ERR_FULL,
                      "database or disk is full");
        cr_assert_eq(s.waits[AW_CORE_TIMER_COMMIT], i + 1,
                     "no backoff before the retry");
        cr_assert_eq(s.commits, i + 1, "retried without waiting");
        aw_core_on_timer(c, AW_CORE_TIMER_COMMIT);
        step(c, &s);
        cr_assert_eq(s.commits, i + 2);
        cr_assert_eq(s.commit.n, 2, "a transient failure split the batch");
    }
    cr_assert_eq(s.nacked, 0, "acknowledged what never committed");
    /* full, busy, full: three changes of reason, three lines, not one per try */
    cr_assert_eq(logged(&s, "index_commit_failed"), 3);
    answer_commit(c, &s, AW_OK, NULL);
    cr_assert_eq(logged(&s, "index_commit_recovered"), 1);
    cr_assert_eq(s.nacked, 2);
    aw_core_free(c);
}

Test(consumer_core, the_same_transient_reason_is_logged_once)
{
    aw_core *c = new_core();
    seen s = {0};
    aw_raw_entry *e[] = {entry(AUDIT, "1-0")};
    to_live(c, &s);
    answer_live(c, &s, AUDIT, e, 1);
    for (int i = 0; i < 4; i++) {
        answer_commit(c, &s, AW_ERR_FULL, "database or disk is full");
        aw_core_on_timer(c, AW_CORE_TIMER_COMMIT);
        step(c, &s);
    }
    cr_assert_eq(logged(&s, "index_commit_failed"), 1);
    answer_commit(c, &s, AW_OK, NULL);
    aw_core_free(c);
}

/* The index refuses any part holding the poisoned entry (unless it is
 * forced out): the core must find it, reject it, commit the rest. */
static int refuse_poison(const aw_core_commit *cm, const char *poison)
{
    for (size_t i = 0; i < cm->n; i++)
        if (strcmp(cm->items[i].entry->id.ptr, poison) == 0 &&
            cm->items[i].forced_reason == AW_REJECT_NONE)
            return AW_ERR_CONFLICT;
    return AW_OK;
}

Test(consumer_core,
     a_deterministic_failure_splits_the_batch_and_rejects_only_that_entry)
{
    const char *ids[] = {"1-0", "2-0", "3-0", "4-0", "5-0", "6-0", "7-0"};
    for (size_t p = 0; p < 7; p++) {
        aw_core *c = new_core();
        seen s = {0};
        aw_raw_entry *e[7];
        size_t committed = 0, guard = 0;
        for (size_t i = 0; i < 7; i++)
            e[i] = entry(AUDIT, ids[i]);
        to_live(c, &s);
        answer_live(c, &s, AUDIT, e, 7);
        while (s.commit_open && guard++ < 64) {
            int rc = refuse_poison(&s.commit, ids[p]);
            if (rc == AW_OK) {
                for (size_t i = 0; i < s.commit.n; i++) {
                    bool poisoned =
                        strcmp(s.commit.items[i].entry->id.ptr, ids[p]) == 0;
                    cr_assert_eq(s.commit.items[i].forced_reason,
                                 poisoned ? AW_REJECT_INDEX_ERROR
                                          : AW_REJECT_NONE,
                                 "poison at %zu: entry %s", p,
                                 s.commit.items[i].entry->id.ptr);
                }
                committed += s.commit.n;
            }
            answer_commit(c, &s, rc, "events: constraint failed");
            answer_acks(c, &s);
        }
        cr_assert_eq(committed, 7, "poison at %zu: %zu entries committed", p,
                     committed);
        cr_assert_eq(s.nacked, 7, "poison at %zu", p);
        cr_assert_eq(aw_core_totals_get(c)->rejected_by_index, 1);
        cr_assert_eq(logged(&s, "entry_refused_by_index"), 1);
        cr_assert_lt(s.commits, 16,
                     "poison at %zu: %d commits to find one entry", p,
                     s.commits);
        cr_assert_eq(aw_core_get_state(c), AW_CORE_LIVE);
        aw_core_free(c);
    }
}

Test(consumer_core, a_broken_index_stops_with_a_message_saying_what_to_do)
{
    aw_core *c = new_core();
    seen s = {0};
    aw_raw_entry *e[] = {entry(AUDIT, "1-0")};
    to_live(c, &s);
    answer_live(c, &s, AUDIT, e, 1);
    answer_commit(c, &s, AW_ERR_BROKEN, "database disk image is malformed");
    cr_assert_eq(aw_core_get_state(c), AW_CORE_BROKEN);
    cr_assert_eq(s.stops, 1);
    cr_assert_eq(s.nacked, 0);
    cr_assert_eq(logged(&s, "index_broken"), 1);
    cr_assert(strstr(aw_core_broken_reason(c), "malformed"));
    cr_assert(strstr(aw_core_broken_reason(c), "auditwatch verify"));
    aw_core_free(c);
}

Test(consumer_core, a_stop_drains_commits_and_acks_then_stops)
{
    aw_core *c = new_core();
    seen s = {0};
    aw_raw_entry *e[] = {entry(AUDIT, "1-0")};
    aw_raw_entry *f[] = {entry(AUDIT, "2-0")};
    to_live(c, &s);
    answer_live(c, &s, AUDIT, e, 1); /* committing; a quick read in flight */
    aw_core_on_stop(c);
    step(c, &s);
    cr_assert_eq(s.stops, 0, "stopped with a commit running");
    int reads = s.reads;
    answer_live(c, &s, AUDIT, f,
                1); /* what the quick read brought commits too */
    cr_assert_eq(s.reads, reads, "read on after the stop");
    answer_commit(c, &s, AW_OK, NULL);
    cr_assert_eq(s.stops, 0, "stopped before the acks were answered");
    answer_acks(c, &s);
    answer_commit(c, &s, AW_OK, NULL);
    cr_assert_eq(s.stops, 0);
    answer_acks(c, &s);
    cr_assert_eq(s.stops, 1);
    cr_assert_eq(s.nacked, 2);
    cr_assert_eq(aw_core_get_state(c), AW_CORE_STOPPED);
    aw_core_free(c);
}

Test(consumer_core, a_stop_does_not_wait_for_a_blocking_read)
{
    aw_core *c = new_core();
    seen s = {0};
    to_live(c, &s);
    cr_assert(s.last_read.read.blocking);
    aw_core_on_stop(c);
    step(c, &s);
    cr_assert_eq(s.stops, 1);
    aw_core_free(c);
}

Test(consumer_core, a_failed_live_read_backs_off_then_rereads_pending_entries)
{
    aw_core *c = new_core();
    seen s = {0};
    aw_core_read failed = {
        .kind = AW_CORE_READ_LIVE, .failed = true, .why = "XREADGROUP: ERR x"};
    to_live(c, &s);
    aw_core_on_read(c, &failed);
    step(c, &s);
    cr_assert_eq(aw_core_get_state(c), AW_CORE_PAUSED);
    cr_assert_eq(s.waits[AW_CORE_TIMER_READS], 1);
    cr_assert_eq(logged(&s, "redis_command_failed"), 1);
    aw_core_on_timer(c, AW_CORE_TIMER_READS);
    step(c, &s);
    cr_assert_eq(s.last_read.read.kind, AW_CORE_READ_PENDING);
    cr_assert_str_eq(s.last_read.read.from[AUDIT], "0");
    aw_core_free(c);
}

Test(consumer_core, a_missing_group_is_created_again)
{
    aw_core *c = new_core();
    seen s = {0};
    aw_core_read failed = {.kind = AW_CORE_READ_LIVE,
                           .failed = true,
                           .group_missing = true,
                           .why = "NOGROUP"};
    to_live(c, &s);
    aw_core_on_read(c, &failed);
    step(c, &s);
    cr_assert_eq(s.creates, 2);
    aw_core_free(c);
}

Test(consumer_core, a_lost_connection_waits_for_the_next_one_then_sets_up_again)
{
    aw_core *c = new_core();
    seen s = {0};
    aw_core_read lost = {
        .kind = AW_CORE_READ_LIVE, .failed = true, .lost = true};
    to_live(c, &s);
    aw_core_on_read(c, &lost);
    aw_core_on_lost(c);
    step(c, &s);
    cr_assert_eq(aw_core_get_state(c), AW_CORE_DISCONNECTED);
    cr_assert_eq(logged(&s, "redis_command_failed"), 0,
                 "a lost connection is not a command error");
    aw_core_on_connected(c);
    step(c, &s);
    cr_assert_eq(s.creates, 2);
    aw_core_free(c);
}

Test(consumer_core,
     the_clock_is_the_wall_clock_only_when_the_audit_stream_is_caught_up)
{
    aw_core *c = new_core();
    seen s = {0};
    aw_raw_entry *e[] = {entry(AUDIT, "1-0")};
    aw_raw_entry *r[] = {entry(REVOKE, "2-0")};
    to_live(c, &s);
    answer_live(c, &s, AUDIT, e, 1);
    cr_assert_eq(s.commit.clock_ns, 0,
                 "the wall clock ran ahead of unread audit entries");
    answer_commit(c, &s, AW_OK, NULL);
    answer_acks(c, &s);
    answer_live(c, &s, REVOKE, r, 1);
    cr_assert_eq(s.commit.clock_ns, 1);
    answer_commit(c, &s, AW_OK, NULL);
    aw_core_free(c);
}

/* ---- With the real index ------------------------------------------------ */

typedef struct real {
    char dir[PATH_MAX], db[PATH_MAX];
    aw_ingest *ing;
} real;

/* The index; audit entries must be signed with audit_key unless NULL. */
static void real_open_keyed(real *w, aw_hmac_key *audit_key)
{
    aw_ingest_options opts = {.store_flags = AW_STORE_SYNC_NORMAL,
                              .audit_key = audit_key};
    aw_error err;
    aw_test_tmpdir(w->dir);
    opts.db_path = aw_test_path(w->dir, "index.db", w->db);
    cr_assert_eq(aw_ingest_open(&opts, &w->ing, &err), AW_OK, "%s", err.msg);
}

static void real_open(real *w)
{
    real_open_keyed(w, NULL);
}

static void real_close(real *w)
{
    aw_ingest_close(w->ing);
    aw_test_rmtree(w->dir);
}

/* Runs the commit the core handed out on the index; returns its code. */
static int real_commit(real *w, aw_core *c, seen *s)
{
    aw_error err = {0};
    int rc;
    cr_assert(s->commit_open);
    s->commit_open = false;
    rc = aw_ingest_batch(w->ing, s->commit.items, s->commit.n, s->commit.trims,
                         s->commit.ntrims, s->commit.clock_ns, NULL, &err);
    aw_core_on_commit(c, rc, &err);
    step(c, s);
    return rc;
}

static long long real_count(real *w, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    long long n = -1;
    cr_assert_eq(sqlite3_open_v2(w->db, &db, SQLITE_OPEN_READONLY, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s",
                 sqlite3_errmsg(db));
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* The index refuses the event of that id, as a schema constraint would. */
static void refuse_event(real *w, const char *event_id)
{
    sqlite3 *db;
    char sql[256];
    snprintf(sql, sizeof sql,
             "CREATE TRIGGER poison BEFORE INSERT ON events "
             "WHEN NEW.event_id = '%s' "
             "BEGIN SELECT RAISE(ABORT, 'this event is refused'); END",
             event_id);
    cr_assert_eq(sqlite3_open(w->db, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s",
                 sqlite3_errmsg(db));
    sqlite3_close(db);
}

static aw_raw_entry *audit_entry(const char *id, const char *event_id)
{
    char data[1024];
    aw_test_audit a = {.id = event_id};
    aw_test_audit_data(&a, data, sizeof data);
    return entry_with(AUDIT, id, data);
}

Test(consumer_core,
     a_deterministic_store_error_on_one_entry_rejects_it_and_commits_the_rest)
{
    real w;
    aw_core *c = new_core();
    seen s = {0};
    aw_raw_entry *e[6];
    real_open(&w);
    refuse_event(&w, "ev-4");
    for (int i = 0; i < 6; i++) {
        char id[16], ev[16];
        snprintf(id, sizeof id, "%d-0", 1000 + i);
        snprintf(ev, sizeof ev, "ev-%d", i);
        e[i] = audit_entry(id, ev);
    }
    to_live(c, &s);
    answer_live(c, &s, AUDIT, e, 6);
    for (int guard = 0; s.commit_open && guard < 32; guard++) {
        real_commit(&w, c, &s);
        answer_acks(c, &s);
    }
    cr_assert_eq(s.nacked, 6, "entries left unacknowledged: ingest wedged");
    cr_assert_eq(real_count(&w, "SELECT count(*) FROM events"), 5);
    cr_assert_eq(
        real_count(&w,
                   "SELECT count(*) FROM rejected WHERE reason = 'index_error' "
                   "AND detail LIKE '%this event is refused%'"),
        1);
    cr_assert_eq(real_count(&w, "SELECT count(*) FROM entries"), 6,
                 "the refused entry's evidence was not kept");
    aw_core_free(c);
    real_close(&w);
}

Test(consumer_core,
     a_full_disk_acks_nothing_loses_nothing_and_resumes_when_space_returns)
{
    real w;
    aw_core *c = new_core();
    seen s = {0};
    aw_raw_entry *e[200];
    aw_error err;
    real_open(&w);
    /* SQLite's max_page_count: writes past the cap fail with SQLITE_FULL,
     * exactly as on a full disk, without needing a small filesystem. */
    cr_assert_eq(aw_store_set_max_pages(aw_ingest_store(w.ing), 1, &err), AW_OK,
                 "%s", err.msg);
    for (int i = 0; i < 200; i++) {
        char id[16], ev[16];
        snprintf(id, sizeof id, "%d-0", 1000 + i);
        snprintf(ev, sizeof ev, "ev-%d", i);
        e[i] = audit_entry(id, ev);
    }
    to_live(c, &s);
    answer_live(c, &s, AUDIT, e, 200);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(real_commit(&w, c, &s), AW_ERR_FULL);
        aw_core_on_timer(c, AW_CORE_TIMER_COMMIT);
        step(c, &s);
    }
    cr_assert_eq(s.nacked, 0, "acknowledged entries the index does not hold");
    cr_assert_eq(logged(&s, "index_commit_failed"), 1);
    cr_assert_eq(real_count(&w, "SELECT count(*) FROM entries"), 0);
    cr_assert_eq(s.commit.n, 200, "a full disk split the batch");
    cr_assert_eq(aw_store_set_max_pages(aw_ingest_store(w.ing), 0, &err), AW_OK,
                 "%s", err.msg);
    cr_assert_eq(real_commit(&w, c, &s), AW_OK);
    cr_assert_eq(logged(&s, "index_commit_recovered"), 1);
    cr_assert_eq(s.nacked, 200);
    cr_assert_eq(real_count(&w, "SELECT count(*) FROM events"), 200);
    aw_core_free(c);
    real_close(&w);
}

/* An audit entry signed with key, or with a signature that does not match. */
static aw_raw_entry *signed_audit_entry(aw_hmac_key *key, const char *id,
                                        const char *event_id, bool good)
{
    const char *name = aw_stream_role_default_stream(AW_ROLE_AUDIT);
    char data[1024], sig[65];
    aw_test_audit a = {.id = event_id};
    size_t len = aw_test_audit_data(&a, data, sizeof data);
    aw_raw_entry *e;
    aw_error err;
    aw_test_sign(key, data, len, sig);
    if (!good)
        sig[0] = sig[0] == '0' ? '1' : '0';
    aw_field f[] = {{{"id", 2}, {event_id, strlen(event_id)}},
                    {{"data", 4}, {data, len}},
                    {{"sig", 3}, {sig, 64}}};
    cr_assert_eq(aw_raw_entry_new((aw_bytes){name, strlen(name)},
                                  (aw_bytes){id, strlen(id)}, f, 3, &e, &err),
                 AW_OK, "%s", err.msg);
    return e;
}

/* The daemon decodes entries as it reads them (aw_ingest_decode) while the
 * commit before runs; each decoding must reach the batch with its own
 * entry, through reads grouped while a commit runs and through the split
 * of a batch that one entry fails, and a forged signature must be rejected
 * as the batch itself would reject it. */
Test(consumer_core, entries_decoded_ahead_are_committed_with_their_own_decoding)
{
    real w;
    aw_hmac_key *key = aw_test_key();
    aw_ingest_decoder *decoder;
    aw_core *c = new_core();
    seen s = {0};
    aw_raw_entry *first[2], *second[5];
    aw_ingest_decoded *first_decoded[2], *second_decoded[5];
    aw_error err;
    real_open_keyed(&w, key);
    cr_assert_eq(aw_ingest_decoder_new(w.ing, &decoder, &err), AW_OK, "%s",
                 err.msg);
    refuse_event(&w, "ev-4");
    for (int i = 0; i < 7; i++) {
        char id[16], ev[16];
        snprintf(id, sizeof id, "%d-0", 1000 + i);
        snprintf(ev, sizeof ev, "ev-%d", i);
        aw_raw_entry *e = signed_audit_entry(key, id, ev, i != 5);
        aw_ingest_decoded *d = aw_ingest_decode(decoder, e);
        cr_assert_not_null(d);
        if (i < 2) {
            first[i] = e;
            first_decoded[i] = d;
        } else {
            second[i - 2] = e;
            second_decoded[i - 2] = d;
        }
    }
    to_live(c, &s);
    answer_live_decoded(c, &s, AUDIT, first, first_decoded, 2);
    answer_live_decoded(c, &s, AUDIT, second, second_decoded, 3);
    answer_live_decoded(c, &s, AUDIT, second + 3, second_decoded + 3, 2);
    cr_assert_eq(s.commit.items[1].decoded, first_decoded[1]);
    for (int guard = 0; s.commit_open && guard < 32; guard++) {
        real_commit(&w, c, &s);
        answer_acks(c, &s);
    }
    cr_assert_eq(s.nacked, 7, "entries left unacknowledged");
    cr_assert_eq(real_count(&w, "SELECT count(*) FROM events"), 5);
    cr_assert_eq(real_count(&w, "SELECT count(*) FROM events e "
                                "JOIN entries n ON n.rowid = e.entry_rowid "
                                "WHERE e.event_id = 'ev-' || (n.id_ms - 1000)"),
                 5, "an event was stored under another entry's row");
    cr_assert_eq(real_count(&w, "SELECT count(*) FROM rejected r "
                                "JOIN entries n ON n.rowid = r.entry_rowid "
                                "WHERE n.id_ms = 1005 "
                                "AND r.reason = 'signature_invalid'"),
                 1, "the forged signature was not rejected as such");
    cr_assert_eq(real_count(&w, "SELECT count(*) FROM rejected r "
                                "JOIN entries n ON n.rowid = r.entry_rowid "
                                "WHERE n.id_ms = 1004 "
                                "AND r.reason = 'index_error'"),
                 1);
    aw_core_free(c);
    aw_ingest_decoder_free(decoder);
    real_close(&w);
    aw_hmac_key_free(key);
}

/* A stop while a pending read or its delivery count is in flight: the read's
 * entries are still counted, committed and acknowledged, then the core
 * stops. */
Test(consumer_core, a_stop_during_a_pending_read_counts_commits_then_stops)
{
    for (int stop_at_count = 0; stop_at_count < 2; stop_at_count++) {
        aw_core *c = new_core();
        seen s = {0};
        aw_raw_entry *e[] = {entry(AUDIT, "1-0")};
        aw_core_read pending = {.kind = AW_CORE_READ_PENDING};
        aw_core_delivery rows[] = {{{1, 0}, 1}};
        const aw_core_delivery *all[AW_CORE_STREAMS] = {[AUDIT] = rows};
        size_t n[AW_CORE_STREAMS] = {[AUDIT] = 1};
        aw_core_on_connected(c);
        step(c, &s);
        aw_core_on_groups(c, true, NULL);
        step(c, &s);
        cr_assert_eq(s.last_read.read.kind, AW_CORE_READ_PENDING);
        if (!stop_at_count)
            aw_core_on_stop(c);
        pending.streams[AUDIT].entries = e;
        pending.streams[AUDIT].n = 1;
        aw_core_on_read(c, &pending);
        step(c, &s);
        cr_assert_eq(s.counts, 1, "the delivery counts were never asked for");
        if (stop_at_count) {
            aw_core_on_stop(c);
            step(c, &s);
        }
        cr_assert_eq(s.stops, 0, "stopped with a read's entries uncounted");
        aw_core_on_counts(c, false, NULL, all, n);
        step(c, &s);
        cr_assert_eq(s.commits, 1);
        answer_commit(c, &s, AW_OK, NULL);
        answer_acks(c, &s);
        cr_assert(was_acked(&s, AUDIT, "1-0"));
        cr_assert_eq(s.stops, 1);
        cr_assert_eq(aw_core_get_state(c), AW_CORE_STOPPED);
        aw_core_free(c);
    }
}

/* A live read whose snapshot of the audit stream is `before`, answered with
 * n entries of it; returns the trims its commit carries, the first one's
 * range in first and last (the commit is answered, its acks too). */
static size_t live_trims(aw_core *c, seen *s, aw_core_snapshot before,
                         aw_raw_entry **entries, size_t nentries,
                         char first[64], char last[64])
{
    aw_core_read r = {.kind = AW_CORE_READ_LIVE,
                      .blocking = s->last_read.read.blocking,
                      .now_ns = 1};
    size_t n;
    r.streams[AUDIT].before = before;
    r.streams[AUDIT].entries = entries;
    r.streams[AUDIT].n = nentries;
    aw_core_on_read(c, &r);
    step(c, s);
    if (!s->commit_open)
        return 0; /* an empty quick read: nothing to commit */
    n = s->commit.ntrims;
    if (n) {
        snprintf(first, 64, "%s", s->commit.trims[0].first_id);
        snprintf(last, 64, "%s", s->commit.trims[0].last_id);
    }
    answer_commit(c, s, AW_OK, NULL);
    answer_acks(c, s);
    return n;
}

Test(consumer_core, a_group_created_again_reports_its_own_losses)
{
    aw_core *c = new_core();
    seen s = {0};
    char first[64], last[64];
    aw_core_read nogroup = {.kind = AW_CORE_READ_LIVE,
                            .failed = true,
                            .group_missing = true,
                            .why = "NOGROUP"};
    aw_core_read pending = {.kind = AW_CORE_READ_PENDING};
    aw_core_read claim = {.kind = AW_CORE_READ_CLAIM};
    to_live(c, &s);
    /* 5 trimmed unread: reported, and counted in the lag from now on */
    cr_assert_eq(
        live_trims(c, &s, known(10, 15, 6, 15, 0), NULL, 0, first, last), 1);
    /* someone deletes the group; it is made again at 0, where Redis counts
     * the trimmed history as read */
    aw_core_on_read(c, &nogroup);
    step(c, &s);
    cr_assert_eq(s.creates, 2);
    aw_core_on_group_created(c, AUDIT);
    aw_core_on_groups(c, true, NULL);
    step(c, &s);
    aw_core_on_read(c, &pending);
    step(c, &s);
    aw_core_on_read(c, &claim);
    step(c, &s);
    cr_assert_eq(s.last_read.read.kind, AW_CORE_READ_LIVE);
    /* 3 added, 3 trimmed before the new group read them */
    cr_assert_eq(
        live_trims(c, &s, known(10, 13, 9, 18, 0), NULL, 0, first, last), 1,
        "a loss of the new group was hidden by the old one's");
    cr_expect_str_eq(first, "0-1");
    cr_expect_str_eq(last, "8-18446744073709551615");
    aw_core_free(c);
}

/* XINFO and XREADGROUP are separate commands: a producer's trim can run
 * between them. The read then skips what was trimmed, and only the lag of a
 * later snapshot, once nothing is left unread, shows it. */
Test(consumer_core, a_trim_between_the_snapshot_and_the_read_is_reported)
{
    aw_core *c = new_core();
    seen s = {0};
    char first[64], last[64];
    aw_raw_entry *e[] = {entry(AUDIT, "9-0"), entry(AUDIT, "10-0"),
                         entry(AUDIT, "11-0"), entry(AUDIT, "12-0"),
                         entry(AUDIT, "13-0")};
    /* 6-0..8-0 were never read */
    aw_core_snapshot caught_up = known(5, 3, 9, 13, 13);
    to_live_with(c, &s, true);
    /* 1-0..10-0 retained, 6-0..10-0 unread; then 11-0..13-0 are added and
     * 1-0..8-0 trimmed before the read runs */
    cr_assert_eq(live_trims(c, &s, known(10, 5, 1, 10, 5), e, 5, first, last),
                 0);
    cr_assert_eq(live_trims(c, &s, caught_up, NULL, 0, first, last), 1,
                 "entries trimmed unread between XINFO and XREADGROUP");
    cr_expect_str_eq(first, "5-1");
    cr_expect_str_eq(last, "8-18446744073709551615");
    cr_expect_eq(live_trims(c, &s, caught_up, NULL, 0, first, last), 0,
                 "the loss was reported again");
    aw_core_free(c);
}

/* After a restart the group's lag still counts the 4 entries an earlier
 * run reported trimmed; reads skip ids between entries as always. Once
 * caught up, that count is no new loss. */
Test(consumer_core, a_restart_does_not_report_losses_an_earlier_run_reported)
{
    aw_core *c = new_core();
    seen s = {0};
    char first[64], last[64];
    aw_raw_entry *e[] = {entry(AUDIT, "6-0"), entry(AUDIT, "8-0"),
                         entry(AUDIT, "10-0")};
    to_live(c, &s);
    cr_assert_eq(live_trims(c, &s, known(5, 7, 1, 10, 5), e, 3, first, last),
                 0);
    cr_assert_eq(
        live_trims(c, &s, known(5, 4, 1, 10, 10), NULL, 0, first, last), 0,
        "reported %s..%s", first, last);
    aw_core_free(c);
}

Test(consumer_core, entries_read_without_a_trim_leave_no_loss)
{
    aw_core *c = new_core();
    seen s = {0};
    char first[64], last[64];
    aw_raw_entry *e[] = {entry(AUDIT, "6-0"), entry(AUDIT, "10-0")};
    aw_core_snapshot before = known(10, 2, 1, 10, 5);
    to_live(c, &s);
    cr_assert_eq(live_trims(c, &s, before, e, 2, first, last), 0);
    before.lag = 0;
    before.last_delivered = before.last_generated;
    cr_expect_eq(live_trims(c, &s, before, NULL, 0, first, last), 0,
                 "a read's gap between ids was taken for a trim");
    aw_core_free(c);
}

/* An XDEL ahead of the group (max-deleted-entry-id 9-0, group at 5-0) loses
 * only what it deleted: the entries the read brings were not lost. */
Test(consumer_core, an_xdel_ahead_of_the_group_reports_only_what_it_deleted)
{
    static const struct {
        const char *ids[4];
        size_t n;
        const char *lost_first;
    } cases[] = {
        /* the read passed the deleted id: nothing between 8-0 and it is
         * retained */
        {{"6-0", "7-0", "8-0", "10-0"}, 4, "8-1"},
        /* the read stopped short of it (COUNT): only the id is known */
        {{"6-0"}, 1, "9-0"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        aw_core *c = new_core();
        seen s = {0};
        char first[64], last[64];
        aw_raw_entry *e[4];
        for (size_t i = 0; i < cases[k].n; i++)
            e[i] = entry(AUDIT, cases[k].ids[i]);
        to_live(c, &s);
        cr_assert_eq(live_trims(c, &s,
                                (aw_core_snapshot){.has_info = true,
                                                   .has_first = true,
                                                   .has_group = true,
                                                   .length = 9,
                                                   .first = {1, 0},
                                                   .last_generated = {10, 0},
                                                   .max_deleted = {9, 0},
                                                   .last_delivered = {5, 0}},
                                e, cases[k].n, first, last),
                     1, "case %zu", k);
        cr_expect_str_eq(first, cases[k].lost_first, "case %zu", k);
        cr_expect_str_eq(last, "9-0", "case %zu", k);
        aw_core_free(c);
    }
}

/* The newest id committed of each stream is where a group made again (it
 * was deleted) starts when --start-id is $; the index's checkpoint seeds
 * it, commits move it on. */
Test(consumer_core, it_knows_the_newest_entry_committed_of_each_stream)
{
    aw_core *c = new_core();
    seen s = {0};
    aw_stream_id id;
    cr_assert_not(aw_core_committed(c, AUDIT, &id));
    aw_core_set_committed(c, AUDIT, (aw_stream_id){5, 0});
    to_live(c, &s);
    aw_raw_entry *e[] = {entry(AUDIT, "7-0"), entry(AUDIT, "9-1")};
    answer_live(c, &s, AUDIT, e, 2);
    cr_assert(aw_core_committed(c, AUDIT, &id));
    cr_assert_eq(id.ms, 5, "moved before its commit");
    answer_commit(c, &s, AW_OK, NULL);
    cr_assert(aw_core_committed(c, AUDIT, &id));
    cr_assert(id.ms == 9 && id.seq == 1, "%llu-%llu", (unsigned long long)id.ms,
              (unsigned long long)id.seq);
    aw_core_set_committed(c, AUDIT, (aw_stream_id){6, 0});
    cr_assert(aw_core_committed(c, AUDIT, &id));
    cr_assert_eq(id.ms, 9, "moved back");
    cr_assert_not(aw_core_committed(c, AW_ROLE_SESSION_REVOKE, &id));
    aw_core_free(c);
}
