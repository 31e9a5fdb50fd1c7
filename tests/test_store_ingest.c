/* test_store_ingest.c -- idempotent batch writes: entries, events,
 * rejections, checkpoints, meta values and pending detector checks. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "support/store_fixture.h"

static store_fixture fx;
static aw_error err;

static void setup(void)
{
    memset(&err, 0, sizeof err);
    store_fixture_open(&fx);
    cr_assert_eq(aw_store_begin(fx.store, &err), AW_OK, "begin: %s", err.msg);
}

static void teardown(void)
{
    store_fixture_close(&fx);
}

TestSuite(store_ingest, .init = setup, .fini = teardown);

static aw_store_stats stats(void)
{
    aw_store_stats s;
    cr_assert_eq(aw_store_get_stats(fx.store, &s, &err), AW_OK, "stats: %s",
                 err.msg);
    return s;
}

static void commit(void)
{
    cr_assert_eq(aw_store_commit(fx.store, &err), AW_OK, "commit: %s", err.msg);
}

static int64_t put_entry(const char *stream, const char *id,
                         aw_put_result *result)
{
    aw_raw_entry *entry = fixture_entry(stream, id, "payload");
    int64_t rowid = 0;
    cr_assert_eq(aw_store_put_entry(fx.store, entry, &rowid, result, &err),
                 AW_OK, "put entry: %s", err.msg);
    aw_raw_entry_free(entry);
    return rowid;
}

Test(store_ingest, redelivered_entry_is_a_duplicate_and_nothing_doubles)
{
    aw_audit_event ev =
        fixture_event("ev-1", "z", "token_exchange", "r-1", "allow", 1000);
    aw_put_result result;
    fixture_put_event(fx.store, "caracal.audit.events", "1700000000000-0", &ev,
                      &result);
    cr_assert_eq(result, AW_PUT_INSERTED);
    commit();

    cr_assert_eq(aw_store_begin(fx.store, &err), AW_OK);
    int64_t rowid =
        put_entry("caracal.audit.events", "1700000000000-0", &result);
    cr_expect_eq(result, AW_PUT_DUPLICATE);
    cr_expect_eq(rowid, 1, "the existing entry's row");
    commit();

    aw_store_stats s = stats();
    cr_expect_eq(s.entries, 1);
    cr_expect_eq(s.events, 1);
}

Test(store_ingest, same_entry_id_on_another_stream_is_a_new_entry)
{
    aw_put_result result;
    cr_expect_eq(put_entry("caracal.sessions.revoke", "5-1", &result), 1);
    cr_expect_eq(result, AW_PUT_INSERTED);
    cr_expect_eq(put_entry("caracal.agents.lifecycle", "5-1", &result), 2);
    cr_expect_eq(result, AW_PUT_INSERTED);
}

static int copy_decision(const aw_event_row *row, void *ud)
{
    snprintf(ud, 16, "%s", row->decision);
    return 0;
}

Test(store_ingest, same_event_id_with_other_content_conflicts_and_first_stays)
{
    aw_audit_event first =
        fixture_event("ev-1", "z", "token_exchange", "r-1", "deny", 1000);
    aw_audit_event forged =
        fixture_event("ev-1", "z", "token_exchange", "r-1", "allow", 1000);
    aw_put_result result;
    int64_t a = fixture_put_event(fx.store, "caracal.audit.events", "1-0",
                                  &first, &result);
    cr_assert_eq(result, AW_PUT_INSERTED);
    int64_t b = fixture_put_event(fx.store, "caracal.audit.events", "2-0",
                                  &forged, &result);
    cr_expect_eq(result, AW_PUT_CONFLICT);
    cr_expect_eq(b, a, "a conflict names the stored event");
    int64_t c = fixture_put_event(fx.store, "caracal.audit.events", "3-0",
                                  &first, &result);
    cr_expect_eq(result, AW_PUT_DUPLICATE, "same content from another entry");
    cr_expect_eq(c, a);
    commit();

    cr_expect_eq(stats().events, 1);
    cr_expect_eq(stats().entries, 3, "every raw entry is kept");
    char decision[16] = "";
    aw_event_filter by_id = {.event_id = "ev-1"};
    cr_assert_eq(
        aw_store_query_events(fx.store, &by_id, copy_decision, decision, &err),
        AW_OK);
    cr_expect_str_eq(decision, "deny");
}

struct seen_entry {
    int n;
    bool truncated;
    aw_raw_entry *entry;
};

static int keep_entry(const aw_entry_row *row, void *ud)
{
    struct seen_entry *seen = ud;
    seen->n++;
    seen->truncated = row->truncated;
    aw_error e = {0};
    cr_assert_eq(
        aw_raw_entry_unpack(row->raw, row->raw_len, &seen->entry, NULL, &e),
        AW_OK, "unpack: %s", e.msg);
    return 0;
}

Test(store_ingest, oversized_entry_is_kept_truncated_with_its_original_size)
{
    size_t big = 600 * 1024;
    char *value = malloc(big);
    cr_assert_not_null(value);
    memset(value, 'v', big);
    /* Two big values push the packed form over AW_STORE_MAX_RAW_BYTES. */
    aw_field fields[3] = {{{"a", 1}, {value, big}},
                          {{"b", 1}, {value, big}},
                          {{"c", 1}, {value, 10}}};
    aw_raw_entry *over = NULL;
    cr_assert_eq(aw_raw_entry_new((aw_bytes){"s", 1}, (aw_bytes){"9-9", 3},
                                  fields, 3, &over, &err),
                 AW_OK);
    int64_t rowid;
    aw_put_result result;
    cr_assert_eq(aw_store_put_entry(fx.store, over, &rowid, &result, &err),
                 AW_OK, "%s", err.msg);
    aw_raw_entry_free(over);
    free(value);
    commit();

    struct seen_entry seen = {0};
    cr_assert_eq(
        aw_store_iter_entries(fx.store, 0, INT64_MAX, keep_entry, &seen, &err),
        AW_OK);
    cr_assert_eq(seen.n, 1);
    cr_expect(seen.truncated);
    cr_assert_eq(seen.entry->nfields, 3);
    cr_expect_eq(seen.entry->fields[0].value.len, AW_MAX_VALUE_BYTES);
    cr_expect_eq(seen.entry->fields[1].value.len, AW_MAX_VALUE_BYTES);
    cr_expect_eq(seen.entry->fields[2].value.len, 10, "small values intact");
    aw_raw_entry_free(seen.entry);

    sqlite3 *db;
    sqlite3_stmt *stmt;
    cr_assert_eq(sqlite3_open(fx.path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT orig_size FROM entries", -1,
                                    &stmt, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_step(stmt), SQLITE_ROW);
    cr_expect_gt(sqlite3_column_int64(stmt, 0), 2 * (int64_t)big,
                 "the original packed size is kept");
    sqlite3_finalize(stmt);
    sqlite3_close(db);
}

Test(store_ingest, raw_entry_is_kept_byte_for_byte_and_found_by_row)
{
    static const char binary[] = {'a', 0, (char)0xff, '\n', 'z'};
    aw_field fields[2] = {{{"sig", 3}, {binary, sizeof binary}},
                          {{"data", 4}, {"{}", 2}}};
    aw_raw_entry *entry = NULL;
    cr_assert_eq(aw_raw_entry_new((aw_bytes){"s", 1},
                                  (aw_bytes){"1700000000000-7", 15}, fields, 2,
                                  &entry, &err),
                 AW_OK);
    int64_t rowid;
    aw_put_result result;
    cr_assert_eq(aw_store_put_entry(fx.store, entry, &rowid, &result, &err),
                 AW_OK);
    aw_raw_entry_free(entry);
    commit();

    struct seen_entry seen = {0};
    cr_assert_eq(aw_store_get_entry(fx.store, rowid, keep_entry, &seen, &err),
                 AW_OK, "%s", err.msg);
    cr_assert_eq(seen.n, 1);
    cr_expect_not(seen.truncated);
    cr_expect_str_eq(seen.entry->id.ptr, "1700000000000-7");
    cr_assert_eq(seen.entry->nfields, 2);
    cr_expect_eq(seen.entry->fields[0].value.len, sizeof binary);
    cr_expect_arr_eq(seen.entry->fields[0].value.ptr, binary, sizeof binary);
    aw_raw_entry_free(seen.entry);
    cr_expect_eq(
        aw_store_get_entry(fx.store, rowid + 1, keep_entry, &seen, &err),
        AW_ERR_NOTFOUND);
}

Test(store_ingest, writes_outside_a_transaction_are_refused)
{
    commit();
    aw_put_result result;
    aw_raw_entry *entry = fixture_entry("s", "1-0", "x");
    int64_t rowid;
    cr_expect_eq(aw_store_put_entry(fx.store, entry, &rowid, &result, &err),
                 AW_ERR);
    aw_raw_entry_free(entry);
    cr_expect_eq(stats().entries, 0);
}

Test(store_ingest, rolled_back_batch_leaves_nothing_and_is_redelivered_fresh)
{
    aw_put_result result;
    put_entry("s", "1-0", &result);
    aw_store_rollback(fx.store);
    cr_expect_eq(stats().entries, 0);

    cr_assert_eq(aw_store_begin(fx.store, &err), AW_OK);
    cr_expect_eq(put_entry("s", "1-0", &result), 1);
    cr_expect_eq(result, AW_PUT_INSERTED);
    commit();
    aw_chain_report report;
    cr_assert_eq(aw_store_verify_chain(fx.store, &report, NULL, NULL, &err),
                 AW_OK);
    cr_expect(report.ok, "%s", report.what);
}

static int count_reason(const char *name, int64_t count, void *ud)
{
    if (strcmp(name, "signature_invalid") == 0)
        *(int64_t *)ud = count;
    return 0;
}

static int keep_rejected(const aw_rejected_row *row, void *ud)
{
    *(aw_rejected_row *)ud = *row;
    cr_expect_str_eq(row->stream, "caracal.audit.events");
    cr_expect_str_eq(row->entry_id, "1700000000123-4");
    cr_expect_str_eq(row->detail, "sig does not verify");
    return 0;
}

Test(store_ingest, rejected_entries_are_recorded_with_reason_and_counted)
{
    aw_put_result result;
    int64_t a = put_entry("caracal.audit.events", "1700000000123-4", &result);
    int64_t b = put_entry("caracal.audit.events", "1700000000124-0", &result);
    cr_assert_eq(aw_store_put_rejected(fx.store, a, AW_REJECT_SIGNATURE_INVALID,
                                       "sig does not verify", &err),
                 AW_OK);
    cr_assert_eq(
        aw_store_put_rejected(fx.store, b, AW_REJECT_NOT_JSON, NULL, &err),
        AW_OK);
    commit();

    aw_rejected_row row = {0};
    cr_assert_eq(
        aw_store_query_rejected(fx.store, 0, 1, keep_rejected, &row, &err),
        AW_OK);
    cr_expect_eq(row.reason, AW_REJECT_SIGNATURE_INVALID);
    cr_expect_eq(row.rejected_at_ns, 1700000000123LL * 1000000);
    int64_t n = 0;
    cr_assert_eq(aw_store_count_by(fx.store, "rejected_by_reason", count_reason,
                                   &n, &err),
                 AW_OK);
    cr_expect_eq(n, 1);
    cr_expect_eq(
        aw_store_count_by(fx.store, "nonsense", count_reason, &n, &err),
        AW_ERR_INVALID);
}

struct checkpoint_seen {
    char entry_id[32];
    int64_t updated_at;
};

static int keep_checkpoint(const char *stream, const char *entry_id,
                           int64_t updated_at_ns, void *ud)
{
    struct checkpoint_seen *seen = ud;
    cr_expect_str_eq(stream, "caracal.audit.events");
    snprintf(seen->entry_id, sizeof seen->entry_id, "%s", entry_id);
    seen->updated_at = updated_at_ns;
    return 0;
}

Test(store_ingest, checkpoint_keeps_the_last_entry_id_and_when_it_moved)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t before = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    cr_assert_eq(
        aw_store_set_checkpoint(fx.store, "caracal.audit.events", "10-0", &err),
        AW_OK);
    cr_assert_eq(
        aw_store_set_checkpoint(fx.store, "caracal.audit.events", "12-3", &err),
        AW_OK);
    commit();
    struct checkpoint_seen seen = {"", 0};
    cr_assert_eq(
        aw_store_query_checkpoints(fx.store, keep_checkpoint, &seen, &err),
        AW_OK);
    cr_expect_str_eq(seen.entry_id, "12-3");
    cr_expect_geq(seen.updated_at, before);
}

Test(store_ingest, meta_values_are_durable_and_missing_keys_say_so)
{
    int64_t value = 42;
    cr_expect_eq(aw_store_meta_get(fx.store, "clock", &value, &err),
                 AW_ERR_NOTFOUND);
    cr_expect_eq(value, 42, "untouched when missing");
    cr_assert_eq(aw_store_meta_set(fx.store, "clock", 7, &err), AW_OK);
    cr_assert_eq(aw_store_meta_set(fx.store, "clock", 9, &err), AW_OK);
    commit();
    aw_store_close(fx.store);
    cr_assert_eq(aw_store_open(fx.path, 0, &fx.store, &err), AW_OK);
    cr_assert_eq(aw_store_meta_get(fx.store, "clock", &value, &err), AW_OK);
    cr_expect_eq(value, 9);
}

struct due {
    int n;
    int64_t refs[8];
    int stop_at; /* 1-based call that stops; 0 never */
};

static int take(int kind, int64_t deadline_ns, int64_t ref, void *ud)
{
    struct due *d = ud;
    (void)kind;
    (void)deadline_ns;
    d->refs[d->n++] = ref;
    return d->n == d->stop_at ? 99 : 0;
}

Test(store_ingest, pending_checks_come_due_oldest_first_and_only_once)
{
    cr_assert_eq(aw_store_pending_add(fx.store, 1, 300, 3, &err), AW_OK);
    cr_assert_eq(aw_store_pending_add(fx.store, 1, 100, 1, &err), AW_OK);
    cr_assert_eq(aw_store_pending_add(fx.store, 1, 100, 1, &err), AW_OK);
    cr_assert_eq(aw_store_pending_add(fx.store, 2, 200, 2, &err), AW_OK);
    commit();

    cr_assert_eq(aw_store_begin(fx.store, &err), AW_OK);
    struct due d = {0};
    cr_assert_eq(aw_store_pending_take_due(fx.store, 200, take, &d, &err),
                 AW_OK, "%s", err.msg);
    cr_assert_eq(d.n, 2, "the duplicate was kept once, 300 is not due");
    cr_expect_eq(d.refs[0], 1);
    cr_expect_eq(d.refs[1], 2);
    memset(&d, 0, sizeof d);
    cr_assert_eq(aw_store_pending_take_due(fx.store, 250, take, &d, &err),
                 AW_OK);
    cr_expect_eq(d.n, 0, "taken checks are gone");
    cr_assert_eq(aw_store_pending_take_due(fx.store, 300, take, &d, &err),
                 AW_OK);
    cr_expect_eq(d.n, 1);
    cr_expect_eq(d.refs[0], 3);
}

Test(store_ingest, pending_checks_stay_when_the_callback_stops)
{
    cr_assert_eq(aw_store_pending_add(fx.store, 1, 100, 1, &err), AW_OK);
    cr_assert_eq(aw_store_pending_add(fx.store, 1, 200, 2, &err), AW_OK);
    struct due d = {.stop_at = 2};
    cr_expect_eq(aw_store_pending_take_due(fx.store, 500, take, &d, &err), 99);
    memset(&d, 0, sizeof d);
    cr_assert_eq(aw_store_pending_take_due(fx.store, 500, take, &d, &err),
                 AW_OK);
    cr_expect_eq(d.n, 2, "nothing was deleted");
}

/* Caracal keys events on (id, occurred_at): control.invoke events carry the
 * client's request id as their id, so one id names events at many times. */
Test(store_ingest, same_event_id_at_another_time_is_another_event)
{
    aw_audit_event first =
        fixture_event("req-7", "z", "control.invoke", "req-7", "allow", 1000);
    aw_audit_event later =
        fixture_event("req-7", "z", "control.invoke", "req-7", "deny", 2000);
    aw_audit_event forged =
        fixture_event("req-7", "z", "control.invoke", "req-7", "deny", 1000);
    aw_put_result result;
    int64_t a = fixture_put_event(fx.store, "caracal.audit.events", "1-0",
                                  &first, &result);
    cr_assert_eq(result, AW_PUT_INSERTED);
    int64_t b = fixture_put_event(fx.store, "caracal.audit.events", "2-0",
                                  &later, &result);
    cr_expect_eq(result, AW_PUT_INSERTED, "another time is another event");
    cr_expect_neq(b, a);
    int64_t c = fixture_put_event(fx.store, "caracal.audit.events", "3-0",
                                  &forged, &result);
    cr_expect_eq(result, AW_PUT_CONFLICT, "same id and time, other content");
    cr_expect_eq(c, a, "the conflict names the event of that time");
    commit();
    cr_expect_eq(stats().events, 2);
}

static int count_rows(const aw_event_row *row, void *ud)
{
    (void)row;
    ++*(int *)ud;
    return 0;
}

/* The consumer hands events with their id digests computed on another
 * thread; a hand-built event has none. Both must key the same identity and
 * request, or a redelivery would be indexed twice and a request look-up
 * would miss half of it. */
Test(store_ingest, precomputed_id_digests_key_the_same_event_and_request)
{
    aw_audit_event plain =
        fixture_event("ev-9", "z", "token_exchange", "req-9", "allow", 1000);
    aw_audit_event digested = plain;
    digested.has_id_digests = true;
    digested.id_digest = aw_id_digest("ev-9");
    digested.request_digest = aw_id_digest("req-9");
    aw_audit_event other =
        fixture_event("ev-10", "z", "token_exchange", "req-9", "allow", 1000);
    other.has_id_digests = true;
    other.id_digest = aw_id_digest("ev-10");
    other.request_digest = aw_id_digest("req-9");
    aw_put_result result;
    fixture_put_event(fx.store, "caracal.audit.events", "1-0", &plain, &result);
    cr_assert_eq(result, AW_PUT_INSERTED);
    fixture_put_event(fx.store, "caracal.audit.events", "2-0", &digested,
                      &result);
    cr_expect_eq(result, AW_PUT_DUPLICATE, "the same event, once");
    fixture_put_event(fx.store, "caracal.audit.events", "3-0", &other, &result);
    cr_expect_eq(result, AW_PUT_INSERTED);
    commit();

    int n = 0;
    aw_event_filter f = {.request_id = "req-9"};
    cr_assert_eq(aw_store_query_events(fx.store, &f, count_rows, &n, &err),
                 AW_OK, "query: %s", err.msg);
    cr_expect_eq(n, 2, "both events of the request are found by its id");
}

/* Another writer's commit (an `import` while the daemon runs) must be seen:
 * the event it added is a duplicate here, not indexed a second time. */
Test(store_ingest, an_event_another_writer_added_is_still_a_duplicate)
{
    aw_audit_event ev =
        fixture_event("ev-w", "z", "token_exchange", "r-w", "allow", 5000);
    aw_audit_event first =
        fixture_event("ev-0", "z", "token_exchange", "r-0", "allow", 1000);
    aw_put_result result;
    fixture_put_event(fx.store, "caracal.audit.events", "1-0", &first, &result);
    commit();

    aw_store *other = NULL;
    cr_assert_eq(aw_store_open(fx.path, 0, &other, &err), AW_OK, "%s", err.msg);
    fixture_commit_event(other, "2-0", &ev);
    aw_store_close(other);

    cr_assert_eq(aw_store_begin(fx.store, &err), AW_OK, "%s", err.msg);
    fixture_put_event(fx.store, "caracal.audit.events", "3-0", &ev, &result);
    cr_expect_eq(result, AW_PUT_DUPLICATE, "the other writer's event");
    commit();
    cr_expect_eq(stats().events, 2);
}

/* An event dated far ahead (a producer's clock) and one whose first copy
 * was rolled back: each redelivery is found, each event stored once. */
Test(store_ingest, redeliveries_of_far_ahead_and_rolled_back_events_are_found)
{
    aw_put_result result;
    aw_audit_event ahead = fixture_event("ev-ahead", "z", "token_exchange",
                                         NULL, "allow", INT64_C(1) << 60);
    aw_audit_event now =
        fixture_event("ev-now", "z", "token_exchange", NULL, "allow", 1000);
    fixture_put_event(fx.store, "caracal.audit.events", "5-0", &ahead, &result);
    fixture_put_event(fx.store, "caracal.audit.events", "6-0", &now, &result);
    commit();
    aw_audit_event gone =
        fixture_event("ev-gone", "z", "token_exchange", NULL, "allow", 2000);
    cr_assert_eq(aw_store_begin(fx.store, &err), AW_OK, "%s", err.msg);
    fixture_put_event(fx.store, "caracal.audit.events", "7-0", &gone, &result);
    cr_assert_eq(result, AW_PUT_INSERTED);
    aw_store_rollback(fx.store);

    cr_assert_eq(aw_store_begin(fx.store, &err), AW_OK, "%s", err.msg);
    fixture_put_event(fx.store, "caracal.audit.events", "5-1", &ahead, &result);
    cr_expect_eq(result, AW_PUT_DUPLICATE, "the event dated far ahead");
    fixture_put_event(fx.store, "caracal.audit.events", "6-1", &now, &result);
    cr_expect_eq(result, AW_PUT_DUPLICATE);
    fixture_put_event(fx.store, "caracal.audit.events", "7-0", &gone, &result);
    cr_expect_eq(result, AW_PUT_INSERTED, "the rolled-back event, once");
    fixture_put_event(fx.store, "caracal.audit.events", "7-1", &gone, &result);
    cr_expect_eq(result, AW_PUT_DUPLICATE);
    commit();
    cr_expect_eq(stats().events, 3);
}

static int keep_times(const aw_revocation_row *row, void *ud)
{
    int64_t *at = ud;
    at[row->rowid - 1] = row->at_ns;
    return 0;
}

static void put_delivery(const char *entry_id, int64_t at_ns)
{
    aw_revocation item = {{AW_ANCHOR_AGENT_SESSION, "as-1"}, AW_ACTION_SUSPEND};
    aw_revocation_set set = {
        .zone_id = "z",
        .at_ns = at_ns,
        .delivery_id = "suspend:as-1:t1",
        .n = 1,
        .items = &item,
    };
    aw_put_result result;
    int64_t rowid = put_entry("caracal.agents.lifecycle", entry_id, &result);
    cr_assert_eq(aw_store_put_revocations(fx.store, rowid, &set, &err), AW_OK,
                 "%s", err.msg);
}

/* The outbox delivers at least once: every copy of one revocation takes the
 * time of its earliest delivery, whichever copy is read first. */
Test(store_ingest, redelivered_revocation_keeps_the_earliest_delivery_time)
{
    put_delivery("20-0", 20);
    put_delivery("30-0", 30);
    put_delivery("10-0", 10);
    commit();
    int64_t at[3] = {0};
    aw_revocation_filter filter = {.anchor = {AW_ANCHOR_AGENT_SESSION, "as-1"}};
    cr_assert_eq(
        aw_store_query_revocations(fx.store, &filter, keep_times, at, &err),
        AW_OK, "%s", err.msg);
    cr_expect_eq(at[0], 10);
    cr_expect_eq(at[1], 10);
    cr_expect_eq(at[2], 10);
}
