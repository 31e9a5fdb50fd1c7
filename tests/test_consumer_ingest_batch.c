/* test_consumer_ingest_batch.c -- the ingest layer on its own (no Redis):
 * what `replay` and `import-calls` rely on as much as the daemon. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/support.h"

static char dir[PATH_MAX], db[PATH_MAX];
static aw_ingest *ing;

static void open_ingest(const aw_ingest_options *extra)
{
    aw_ingest_options o = extra ? *extra : (aw_ingest_options){0};
    aw_error err = {0};
    o.db_path = db;
    cr_assert(aw_ingest_open(&o, &ing, &err) == AW_OK, "%s", err.msg);
}

static void setup(void)
{
    aw_test_tmpdir(dir);
    aw_test_path(dir, "index.db", db);
    ing = NULL;
}

static void teardown(void)
{
    aw_ingest_close(ing);
    aw_test_rmtree(dir);
}

TestSuite(consumer_ingest_batch, .init = setup, .fini = teardown,
          .timeout = 30);

/* A raw entry of stream with id and one field pair list. */
static aw_raw_entry *entry(const char *stream, const char *id,
                           const char *const *kv, size_t n)
{
    aw_field f[8];
    aw_raw_entry *e;
    aw_error err = {0};
    cr_assert(n <= 8);
    for (size_t i = 0; i < n; i++)
        f[i] = (aw_field){{kv[2 * i], strlen(kv[2 * i])},
                          {kv[2 * i + 1], strlen(kv[2 * i + 1])}};
    cr_assert(aw_raw_entry_new((aw_bytes){stream, strlen(stream)},
                               (aw_bytes){id, strlen(id)}, f, n, &e,
                               &err) == AW_OK,
              "%s", err.msg);
    return e;
}

static aw_raw_entry *audit_entry(const char *id, const char *event_id)
{
    static char data[1024];
    aw_test_audit_data(&(aw_test_audit){.id = event_id}, data, sizeof data);
    const char *kv[] = {"data", data};
    return entry("caracal.audit.events", id, kv, 1);
}

static aw_ingest_stats batch(aw_raw_entry **entries, size_t n)
{
    aw_ingest_item items[16];
    aw_ingest_stats st;
    aw_error err = {0};
    cr_assert(n <= 16);
    for (size_t i = 0; i < n; i++)
        items[i] = (aw_ingest_item){.entry = entries[i]};
    cr_assert(aw_ingest_batch(ing, items, n, NULL, 0, 0, &st, &err) == AW_OK,
              "%s", err.msg);
    return st;
}

static void free_entries(aw_raw_entry **entries, size_t n)
{
    for (size_t i = 0; i < n; i++)
        aw_raw_entry_free(entries[i]);
}

typedef struct first_reject {
    int n;
    aw_reject_reason reason;
    char detail[AW_ERRMSG_MAX];
} first_reject;

static int keep_reject(const aw_rejected_row *row, void *ud)
{
    first_reject *r = ud;
    if (r->n++ == 0) {
        r->reason = row->reason;
        snprintf(r->detail, sizeof r->detail, "%s",
                 row->detail ? row->detail : "");
    }
    return 0;
}

static first_reject rejects(void)
{
    first_reject r = {0};
    aw_error err = {0};
    cr_assert(aw_store_query_rejected(aw_ingest_store(ing), 0, 0, keep_reject,
                                      &r, &err) == AW_OK,
              "%s", err.msg);
    return r;
}

Test(consumer_ingest_batch, redelivered_entries_are_duplicates_stored_once)
{
    aw_raw_entry *e[2] = {audit_entry("1-0", "evt-1"),
                          audit_entry("2-0", "evt-2")};
    aw_ingest_stats st;
    aw_store_stats s;
    aw_error err = {0};
    open_ingest(NULL);
    st = batch(e, 2);
    cr_assert_eq(st.indexed, 2);
    st = batch(e, 2);
    cr_assert_eq(st.indexed, 0);
    cr_assert_eq(st.duplicates, 2);
    cr_assert(aw_store_get_stats(aw_ingest_store(ing), &s, &err) == AW_OK);
    cr_assert_eq(s.entries, 2);
    cr_assert_eq(s.events, 2);
    free_entries(e, 2);
}

Test(consumer_ingest_batch, an_unknown_stream_is_rejected_with_a_reason)
{
    const char *kv[] = {"x", "y"};
    aw_raw_entry *e[1] = {entry("somebody.else", "5-0", kv, 1)};
    open_ingest(NULL);
    aw_ingest_stats st = batch(e, 1);
    cr_assert_eq(st.rejected, 1);
    first_reject r = rejects();
    cr_assert_eq(r.n, 1);
    cr_assert_eq(r.reason, AW_REJECT_BAD_VALUE);
    cr_assert(strstr(r.detail, "somebody.else"), "%s", r.detail);
    free_entries(e, 1);
}

Test(consumer_ingest_batch, a_forced_reason_rejects_without_decoding)
{
    aw_raw_entry *e = audit_entry("7-0", "evt-7");
    aw_ingest_item item = {.entry = e,
                           .forced_reason = AW_REJECT_TOO_MANY_DELIVERIES,
                           .forced_detail = "delivered 9 times (limit 8)"};
    aw_ingest_stats st;
    aw_error err = {0};
    open_ingest(NULL);
    cr_assert(aw_ingest_batch(ing, &item, 1, NULL, 0, 0, &st, &err) == AW_OK,
              "%s", err.msg);
    cr_assert_eq(st.rejected, 1);
    cr_assert_eq(st.rejected_by_reason[AW_REJECT_TOO_MANY_DELIVERIES], 1);
    first_reject r = rejects();
    cr_assert_eq(r.reason, AW_REJECT_TOO_MANY_DELIVERIES);
    cr_assert_str_eq(r.detail, "delivered 9 times (limit 8)");
    aw_raw_entry_free(e);
}

static int count_call(const aw_call_row *row, void *ud)
{
    int *n = ud;
    cr_assert_str_eq(row->request_id, "req-42");
    cr_assert_eq(row->status, 200);
    (*n)++;
    return 0;
}

Test(consumer_ingest_batch, imports_ndjson_lines_with_mapped_field_names)
{
    const char *good[] = {AW_INGEST_IMPORT_FIELD,
                          "{\"rid\":\"req-42\",\"code\":200}"};
    const char *bad[] = {AW_INGEST_IMPORT_FIELD, "{\"rid\":"};
    aw_raw_entry *e[2] = {entry("import:access.log", "0-1", good, 1),
                          entry("import:access.log", "0-2", bad, 1)};
    aw_ingest_options o = {
        .call_fields = {.request_id = "rid", .status = "code"}};
    aw_error err = {0};
    int calls = 0;
    open_ingest(&o);
    aw_ingest_stats st = batch(e, 2);
    cr_assert_eq(st.indexed, 1);
    cr_assert_eq(st.rejected, 1);
    cr_assert(aw_store_query_calls(aw_ingest_store(ing), 0, NULL, INT64_MIN,
                                   INT64_MAX, count_call, &calls,
                                   &err) == AW_OK,
              "%s", err.msg);
    cr_assert_eq(calls, 1);
    cr_assert_eq(rejects().reason, AW_REJECT_NOT_JSON);
    free_entries(e, 2);
}

static int keep_checkpoint(const char *stream, const char *entry_id, int64_t at,
                           void *ud)
{
    (void)at;
    if (!strcmp(stream, "caracal.audit.events"))
        snprintf(ud, 48, "%s", entry_id);
    return 0;
}

Test(consumer_ingest_batch, checkpoints_never_move_back)
{
    aw_raw_entry *newer[1] = {audit_entry("900-3", "evt-new")};
    aw_raw_entry *older[1] = {audit_entry("100-0", "evt-old")};
    char checkpoint[48] = "";
    aw_error err = {0};
    open_ingest(NULL);
    batch(newer, 1);
    batch(older, 1); /* a reclaimed, older entry */
    cr_assert(aw_store_query_checkpoints(aw_ingest_store(ing), keep_checkpoint,
                                         checkpoint, &err) == AW_OK,
              "%s", err.msg);
    cr_assert_str_eq(checkpoint, "900-3");
    aw_ingest_close(ing); /* and after a restart */
    ing = NULL;
    open_ingest(NULL);
    batch(older, 1);
    cr_assert(aw_store_query_checkpoints(aw_ingest_store(ing), keep_checkpoint,
                                         checkpoint, &err) == AW_OK);
    cr_assert_str_eq(checkpoint, "900-3");
    free_entries(newer, 1);
    free_entries(older, 1);
}

static int count_alert(const aw_alert *a, void *ud)
{
    (void)a;
    (*(int *)ud)++;
    return 0;
}

static int trimmed_alerts(void)
{
    int n = 0;
    aw_error err = {0};
    cr_assert(aw_store_query_alerts(
                  aw_ingest_store(ing),
                  &(aw_alert_filter){.kind = AW_ALERT_EVIDENCE_TRIMMED},
                  count_alert, &n, &err) == AW_OK,
              "%s", err.msg);
    return n;
}

Test(consumer_ingest_batch, a_deleted_pending_entry_already_indexed_is_no_loss)
{
    aw_raw_entry *e[1] = {audit_entry("300-0", "evt-300")};
    aw_ingest_trim indexed = {"caracal.audit.events", "300-0", "300-0", true};
    aw_ingest_trim missing = {"caracal.audit.events", "301-0", "301-0", true};
    aw_ingest_stats st;
    aw_error err = {0};
    open_ingest(NULL);
    batch(e, 1);
    cr_assert(aw_ingest_batch(ing, NULL, 0, &indexed, 1, 0, &st, &err) == AW_OK,
              "%s", err.msg);
    cr_assert_eq(st.trims_reported, 0);
    cr_assert_eq(trimmed_alerts(), 0);
    cr_assert(aw_ingest_batch(ing, NULL, 0, &missing, 1, 0, &st, &err) == AW_OK,
              "%s", err.msg);
    cr_assert_eq(st.trims_reported, 1);
    cr_assert_eq(trimmed_alerts(), 1);
    free_entries(e, 1);
}

Test(consumer_ingest_batch,
     moves_the_clock_to_the_newest_audit_entry_or_the_given_time)
{
    aw_raw_entry *e[1] = {audit_entry("5000-0", "evt-5000")};
    const char *kv[] = {"zone_id", "zone-1", "session_id", "s-1"};
    aw_raw_entry *later_revocation[1] = {
        entry("caracal.sessions.revoke", "7000-0", kv, 2)};
    aw_error err = {0};
    open_ingest(NULL);
    batch(e, 1);
    cr_assert_eq(aw_ingest_clock(ing), 5000LL * 1000000);
    batch(later_revocation, 1); /* only the audit stream drives the clock */
    cr_assert_eq(aw_ingest_clock(ing), 5000LL * 1000000);
    cr_assert(aw_ingest_batch(ing, NULL, 0, NULL, 0, 9000LL * 1000000, NULL,
                              &err) == AW_OK);
    cr_assert_eq(aw_ingest_clock(ing), 9000LL * 1000000);
    aw_ingest_close(ing); /* kept across a restart */
    ing = NULL;
    open_ingest(NULL);
    cr_assert_eq(aw_ingest_clock(ing), 9000LL * 1000000);
    free_entries(e, 1);
    free_entries(later_revocation, 1);
}

Test(consumer_ingest_batch, refuses_two_roles_on_one_stream)
{
    aw_ingest_options o = {.db_path = db};
    aw_error err = {0};
    o.streams[AW_ROLE_CALLS] = "caracal.audit.events";
    cr_assert_eq(aw_ingest_open(&o, &ing, &err), AW_ERR_INVALID);
    cr_assert(strstr(err.msg, "caracal.audit.events"), "%s", err.msg);
}

/* An event is known by its identity wherever it was read: after the audit
 * stream is renamed, the same event read again from the new stream is a
 * duplicate of the one stored from the old, and other content under its
 * identity a conflict, not an entry that cannot be indexed. */
Test(consumer_ingest_batch, an_event_stored_from_a_renamed_stream_is_known)
{
    aw_raw_entry *old[1] = {audit_entry("1-0", "evt-1")};
    open_ingest(NULL);
    cr_assert_eq(batch(old, 1).indexed, 1);
    aw_ingest_close(ing);
    ing = NULL;

    aw_ingest_options renamed = {0};
    renamed.streams[AW_ROLE_AUDIT] = "caracal.audit.v2";
    open_ingest(&renamed);
    static char same[1024], other[1024];
    aw_test_audit_data(&(aw_test_audit){.id = "evt-1"}, same, sizeof same);
    aw_test_audit_data(&(aw_test_audit){.id = "evt-1", .decision = "deny"},
                       other, sizeof other);
    const char *same_kv[] = {"data", same}, *other_kv[] = {"data", other};
    aw_raw_entry *again[2] = {entry("caracal.audit.v2", "5-0", same_kv, 1),
                              entry("caracal.audit.v2", "6-0", other_kv, 1)};
    aw_ingest_stats st = batch(again, 2);
    cr_expect_eq(st.duplicates, 1);
    cr_expect_eq(st.conflicts, 1);
    cr_expect_eq(st.rejected, 0, "rejected: %s", rejects().detail);
    free_entries(old, 1);
    free_entries(again, 2);
}

static int alerts_of(const char *kind, const char *request_id)
{
    int n = 0;
    aw_error err = {0};
    cr_assert(aw_store_query_alerts(
                  aw_ingest_store(ing),
                  &(aw_alert_filter){.kind = kind, .request_id = request_id},
                  count_alert, &n, &err) == AW_OK,
              "%s", err.msg);
    return n;
}

/* The detectors are told which stream is the audit stream: a span trimmed
 * from a renamed one may have held the audit event of a call made just
 * after it, so that call is not alerted (the trimmed alert stands for it);
 * a call two hours later is. */
Test(consumer_ingest_batch, a_trim_of_the_renamed_audit_stream_covers_its_calls)
{
    aw_ingest_options renamed = {0};
    renamed.streams[AW_ROLE_AUDIT] = "caracal.audit.v2";
    aw_ingest_trim lost = {"caracal.audit.v2", "1000-0", "1000-5", false};
    const char *soon_kv[] = {"request_id", "req-soon", "status", "200"};
    const char *later_kv[] = {"request_id", "req-later", "status", "200"};
    aw_raw_entry *soon[1] = {entry("auditwatch.calls", "2000-0", soon_kv, 2)};
    aw_raw_entry *later[1] = {
        entry("auditwatch.calls", "7200000-0", later_kv, 2)};
    aw_ingest_stats st;
    aw_error err = {0};
    open_ingest(&renamed);
    cr_assert(aw_ingest_batch(ing, NULL, 0, &lost, 1, 0, &st, &err) == AW_OK,
              "%s", err.msg);
    cr_assert_eq(st.trims_reported, 1);
    cr_assert_eq(batch(soon, 1).indexed, 1);
    cr_assert_eq(batch(later, 1).indexed, 1);
    cr_assert(aw_ingest_batch(ing, NULL, 0, NULL, 0, 7600LL * 1000000000, NULL,
                              &err) == AW_OK,
              "%s", err.msg);
    cr_expect_eq(alerts_of(AW_ALERT_CALL_WITHOUT_AUDIT, "req-soon"), 0,
                 "its audit event may have been trimmed");
    cr_expect_eq(alerts_of(AW_ALERT_CALL_WITHOUT_AUDIT, "req-later"), 1);
    free_entries(soon, 1);
    free_entries(later, 1);
}
