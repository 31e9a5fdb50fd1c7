/* test_store_query.c -- the look-ups `trace`, `query` and the detectors
 * rely on: by request id, by window and filters, by anchor, revocations,
 * observed calls, with stable cursor paging. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/store_fixture.h"

#define SEC 1000000000LL

static store_fixture fx;
static aw_error err;

static void setup(void)
{
    memset(&err, 0, sizeof err);
    store_fixture_open(&fx);
}

static void teardown(void)
{
    store_fixture_close(&fx);
}

TestSuite(store_query, .init = setup, .fini = teardown);

/* Event ids of a query, in order, joined by spaces. */
struct ids {
    char text[512];
    int n;
    int64_t last_occurred, last_rowid;
};

static int collect(const aw_event_row *row, void *ud)
{
    struct ids *ids = ud;
    size_t len = strlen(ids->text);
    snprintf(ids->text + len, sizeof ids->text - len, "%s%s", ids->n ? " " : "",
             row->event_id);
    ids->n++;
    ids->last_occurred = row->occurred_at_ns;
    ids->last_rowid = row->rowid;
    return 0;
}

static struct ids query(const aw_event_filter *filter)
{
    struct ids ids = {"", 0, 0, 0};
    cr_assert_eq(aw_store_query_events(fx.store, filter, collect, &ids, &err),
                 AW_OK, "query: %s", err.msg);
    return ids;
}

/* Stores events in one transaction; entry ids follow their order. */
static void store_events(aw_audit_event *events, size_t n)
{
    cr_assert_eq(aw_store_begin(fx.store, &err), AW_OK);
    for (size_t i = 0; i < n; i++) {
        char entry_id[32];
        snprintf(entry_id, sizeof entry_id, "%zu-0", 1700000000000 + i);
        aw_put_result result;
        fixture_put_event(fx.store, "caracal.audit.events", entry_id,
                          &events[i], &result);
        cr_assert_eq(result, AW_PUT_INSERTED);
    }
    cr_assert_eq(aw_store_commit(fx.store, &err), AW_OK);
}

/* Request req-1 in zones z (a call and its decision) and y, req-2 in z. */
static void store_two_requests(void)
{
    aw_audit_event events[] = {
        fixture_event("gw-1", "z", "gateway_resource_request", "req-1", "allow",
                      20 * SEC),
        fixture_event("te-1", "z", "token_exchange", "req-1", "allow",
                      10 * SEC),
        fixture_event("te-2", "z", "token_exchange", "req-2", "allow",
                      15 * SEC),
        fixture_event("te-3", "y", "token_exchange", "req-1", "allow",
                      12 * SEC),
    };
    store_events(events, 4);
}

Test(store_query, request_id_finds_every_event_of_the_request_in_time_order)
{
    store_two_requests();
    aw_event_filter f = {.request_id = "req-1"};
    cr_expect_str_eq(query(&f).text, "te-1 te-3 gw-1");
    f.request_id = "req-none";
    cr_expect_eq(query(&f).n, 0);
}

/* The detectors' pairing asks for any order: the same rows, in some order. */
static void expect_same_rows_in_any_order(aw_event_filter f, const char *a,
                                          const char *b)
{
    f.any_order = true;
    struct ids ids = query(&f);
    char ab[128], ba[128];
    snprintf(ab, sizeof ab, "%s %s", a, b);
    snprintf(ba, sizeof ba, "%s %s", b, a);
    cr_expect(strcmp(ids.text, ab) == 0 || strcmp(ids.text, ba) == 0,
              "any order gave \"%s\", not %s and %s", ids.text, a, b);
}

Test(store_query, any_order_finds_the_same_rows_and_refuses_to_page)
{
    store_two_requests();
    expect_same_rows_in_any_order(
        (aw_event_filter){.request_id = "req-1", .zone_id = "z"}, "te-1",
        "gw-1");
    static const char *const exchanges[] = {"token_exchange"};
    expect_same_rows_in_any_order((aw_event_filter){.request_id = "req-1",
                                                    .event_types = exchanges,
                                                    .n_event_types = 1,
                                                    .key_columns_only = true},
                                  "te-1", "te-3");

    aw_event_filter paged = {.zone_id = "z", .any_order = true, .limit = 1};
    struct ids ids = {"", 0, 0, 0};
    cr_expect_eq(aw_store_query_events(fx.store, &paged, collect, &ids, &err),
                 AW_ERR_INVALID);
    cr_expect(strstr(err.msg, "ordered") != NULL, "%s", err.msg);
    cr_expect_eq(ids.n, 0);
}

static int copy_row(const aw_event_row *row, void *ud)
{
    aw_event_row *out = ud;
    *out = *row;
    out->event_id = strdup(row->event_id);
    out->zone_id = strdup(row->zone_id);
    out->event_type = strdup(row->event_type);
    out->request_id = strdup(row->request_id);
    out->decision = strdup(row->decision);
    out->entry_id = strdup(row->entry_id);
    out->resource = row->resource ? strdup(row->resource) : NULL;
    out->stream = row->stream ? strdup(row->stream) : NULL;
    return 1;
}

static void free_row(aw_event_row *row)
{
    free((char *)row->event_id);
    free((char *)row->zone_id);
    free((char *)row->event_type);
    free((char *)row->request_id);
    free((char *)row->decision);
    free((char *)row->entry_id);
    free((char *)row->resource);
    free((char *)row->stream);
}

/* typeof() and size of one events column of row rowid, as SQLite itself
 * sees it (schema 10 keeps canonical UUIDs as 16 bytes). */
static void expect_stored_as(const char *column, int64_t rowid,
                             const char *type, int bytes)
{
    sqlite3 *db;
    sqlite3_stmt *stmt;
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT typeof(%s), length(CAST(%s AS BLOB)) FROM events WHERE "
             "rowid = ?1",
             column, column);
    cr_assert_eq(sqlite3_open(fx.path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK, "%s",
                 sqlite3_errmsg(db));
    sqlite3_bind_int64(stmt, 1, rowid);
    cr_assert_eq(sqlite3_step(stmt), SQLITE_ROW, "no row %lld",
                 (long long)rowid);
    cr_expect_str_eq((const char *)sqlite3_column_text(stmt, 0), type, "%s",
                     column);
    cr_expect_eq(sqlite3_column_int(stmt, 1), bytes, "%s", column);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
}

/* Canonical UUIDs are stored as 16 bytes and read back as the same text;
 * anything else (upper case, not a UUID) stays text; both are found by the
 * same filters. */
Test(store_query, uuid_ids_are_stored_as_bytes_and_read_back_as_text)
{
    const char *ev = "0f8fad5b-d9cb-469f-a165-70867728950e",
               *req = "7c9e6679-7425-40de-944b-e07fc1f90ae7",
               *upper = "7C9E6679-7425-40DE-944B-E07FC1F90AE7";
    aw_audit_event events[] = {
        fixture_event(ev, "z", "token_exchange", req, "allow", 10 * SEC),
        fixture_event("te-2", "z", "token_exchange", upper, "allow", 11 * SEC),
    };
    store_events(events, 2);
    expect_stored_as("event_id", 1, "blob", 16);
    expect_stored_as("request_id", 1, "blob", 16);
    expect_stored_as("event_id", 2, "text", 4);
    expect_stored_as("request_id", 2, "text", 36);

    aw_event_filter f = {.request_id = req};
    cr_expect_str_eq(query(&f).text, ev);
    f = (aw_event_filter){.event_id = ev};
    cr_expect_str_eq(query(&f).text, ev);
    f = (aw_event_filter){.request_id = upper};
    cr_expect_str_eq(query(&f).text, "te-2");
    aw_event_filter all = {0};
    aw_event_row row = {0};
    cr_assert_eq(aw_store_query_events(fx.store, &all, copy_row, &row, &err), 1,
                 "%s", err.msg);
    cr_expect_str_eq(row.request_id, req);
    free_row(&row);
}

/* The detectors' pairing reads key columns only: they must be the same as
 * a full row's, and the display columns are left out. */
Test(store_query, key_columns_only_gives_the_keys_of_the_full_row)
{
    aw_audit_event ev = fixture_event("gw-1", "z", "gateway_resource_request",
                                      "req-1", "allow", 20 * SEC);
    ev.resource = "repo:acme/app";
    ev.has_delegation_epoch = true;
    ev.delegation_epoch = 7;
    store_events(&ev, 1);
    aw_event_row full = {0}, keys = {0};
    aw_event_filter f = {.request_id = "req-1"};
    cr_assert_geq(aw_store_query_events(fx.store, &f, copy_row, &full, &err), 0,
                  "%s", err.msg);
    f.key_columns_only = true;
    cr_assert_geq(aw_store_query_events(fx.store, &f, copy_row, &keys, &err), 0,
                  "%s", err.msg);
    cr_expect_eq(keys.rowid, full.rowid);
    cr_expect_eq(keys.entry_rowid, full.entry_rowid);
    cr_expect_str_eq(keys.entry_id, full.entry_id);
    cr_expect_eq(keys.arrived_ns, full.arrived_ns);
    cr_expect_str_eq(keys.event_id, "gw-1");
    cr_expect_str_eq(keys.zone_id, "z");
    cr_expect_str_eq(keys.event_type, "gateway_resource_request");
    cr_expect_str_eq(keys.request_id, "req-1");
    cr_expect_str_eq(keys.decision, "allow");
    cr_expect_eq(keys.occurred_at_ns, 20 * SEC);
    cr_expect(keys.has_delegation_epoch);
    cr_expect_eq(keys.delegation_epoch, 7);
    cr_expect_str_eq(full.resource, "repo:acme/app");
    cr_expect_str_eq(full.stream, "caracal.audit.events");
    cr_expect_null(keys.resource);
    cr_expect_null(keys.stream);
    free_row(&full);
    free_row(&keys);
}

/* The detectors fill their filter of Gateway calls from this pass once per
 * start: every call's zone and request id as the hooks see them (a UUID
 * stored as 16 bytes comes back as its text), nothing else, and the row it
 * is complete up to. */
struct requests {
    char text[256];
    int n;
};

static int collect_request(const char *zone_id, const char *request_id,
                           void *ud)
{
    struct requests *r = ud;
    size_t len = strlen(r->text);
    snprintf(r->text + len, sizeof r->text - len, "%s%s/%s", r->n ? " " : "",
             zone_id, request_id);
    r->n++;
    return 0;
}

Test(store_query, each_request_of_type_reads_every_call_and_where_it_ends)
{
    struct requests r = {"", 0};
    int64_t through = -1;
    cr_assert_eq(
        aw_store_each_request_of_type(fx.store, "gateway_resource_request",
                                      collect_request, &r, &through, &err),
        AW_OK, "%s", err.msg);
    cr_expect_eq(r.n, 0);
    cr_expect_eq(through, 0, "an empty index ends at row 0");

    const char *uuid = "0b7e8f2a-3c4d-4e5f-8a9b-0c1d2e3f4a5b";
    aw_audit_event events[] = {
        fixture_event("gw-1", "z1", "gateway_resource_request", uuid, "allow",
                      1 * SEC),
        fixture_event("te-1", "z1", "token_exchange", "req-2", "allow",
                      2 * SEC),
        fixture_event("gw-2", "z2", "gateway_resource_request", "req-2",
                      "allow", 3 * SEC),
        fixture_event("gw-3", "z2", "gateway_resource_request", NULL, "allow",
                      4 * SEC),
    };
    store_events(events, 4);
    memset(&r, 0, sizeof r);
    cr_assert_eq(
        aw_store_each_request_of_type(fx.store, "gateway_resource_request",
                                      collect_request, &r, &through, &err),
        AW_OK, "%s", err.msg);
    char want[256];
    snprintf(want, sizeof want, "z1/%s z2/req-2", uuid);
    cr_expect_str_eq(r.text, want);
    cr_expect_eq(through, 4);
    memset(&r, 0, sizeof r);
    cr_assert_eq(aw_store_each_request_of_type(fx.store, "never_stored",
                                               collect_request, &r, &through,
                                               &err),
                 AW_OK, "%s", err.msg);
    cr_expect_eq(r.n, 0);
    cr_expect_eq(through, 4);
}

Test(store_query, window_zone_decision_and_type_filters_select_events)
{
    aw_audit_event events[] = {
        fixture_event("a", "z1", "token_exchange", "r1", "allow", 1 * SEC),
        fixture_event("b", "z1", "token_exchange", "r2", "deny", 2 * SEC),
        fixture_event("c", "z2", "token_exchange", "r3", "allow", 3 * SEC),
        fixture_event("d", "z1", "gateway_resource_request", "r1", "allow",
                      4 * SEC),
        fixture_event("e", "z1", "step_up_consumed", "r4", "consumed", 5 * SEC),
        fixture_event("f", "z1", "token_exchange", "r5", "allow", 6 * SEC),
    };
    store_events(events, 6);

    aw_event_filter window = {.has_since = true,
                              .since_ns = 2 * SEC,
                              .has_until = true,
                              .until_ns = 6 * SEC};
    cr_expect_str_eq(query(&window).text, "b c d e", "until is exclusive");
    window.zone_id = "z1";
    cr_expect_str_eq(query(&window).text, "b d e");
    window.decision = "allow";
    cr_expect_str_eq(query(&window).text, "d");
    window.decision = NULL;
    window.grants_only = true;
    cr_expect_str_eq(query(&window).text, "d e", "allow and consumed");
    const char *types[] = {"token_exchange", "step_up_consumed"};
    aw_event_filter typed = {
        .event_types = types, .n_event_types = 2, .zone_id = "z1"};
    cr_expect_str_eq(query(&typed).text, "a b e f");
    typed.n_event_types = 1;
    cr_expect_str_eq(query(&typed).text, "a b f");
    const char *unknown_and_known[] = {"never_stored", "step_up_consumed"};
    typed.event_types = unknown_and_known;
    typed.n_event_types = 2;
    cr_expect_str_eq(query(&typed).text, "e",
                     "a word never stored matches nothing");
    typed.n_event_types = 0;
    typed.zone_id = "zone-never-stored";
    cr_expect_eq(query(&typed).n, 0);
}

Test(store_query, cursor_pages_through_every_event_once_in_stable_order)
{
    /* Equal times force the rowid tie-break. */
    aw_audit_event events[] = {
        fixture_event("e1", "z", "t", "r", "allow", 5 * SEC),
        fixture_event("e2", "z", "t", "r", "allow", 1 * SEC),
        fixture_event("e3", "z", "t", "r", "allow", 5 * SEC),
        fixture_event("e4", "z", "t", "r", "allow", 5 * SEC),
        fixture_event("e5", "z", "t", "r", "allow", 3 * SEC),
    };
    store_events(events, 5);
    aw_event_filter f = {.limit = 2};
    char pages[3][sizeof((struct ids *)0)->text];
    for (int page = 0; page < 3; page++) {
        struct ids ids = query(&f);
        snprintf(pages[page], sizeof pages[page], "%s", ids.text);
        f.has_cursor = true;
        f.cursor_occurred_ns = ids.last_occurred;
        f.cursor_rowid = ids.last_rowid;
    }
    cr_expect_str_eq(pages[0], "e2 e5");
    cr_expect_str_eq(pages[1], "e1 e3");
    cr_expect_str_eq(pages[2], "e4");
    cr_expect_eq(query(&f).n, 0, "past the last page");
}

static int show_anchors(const aw_event_row *row, void *ud)
{
    snprintf(ud, 64, "%s %s %s", row->session_id, row->agent_session_id,
             row->delegation_edge_id);
    return 0;
}

Test(store_query, anchor_lookup_finds_grants_that_used_it_after_a_time)
{
    aw_anchor used[] = {{AW_ANCHOR_AUTHORITY_RECORD, "sess-1"},
                        {AW_ANCHOR_AGENT_SESSION, "as-1"},
                        {AW_ANCHOR_DELEGATION_EDGE, "edge-1"},
                        {AW_ANCHOR_AGENT_SESSION, "as-parent"}};
    aw_audit_event events[] = {
        fixture_event("before", "z", "token_exchange", "r1", "allow", 10 * SEC),
        fixture_event("denied", "z", "token_exchange", "r2", "deny", 30 * SEC),
        fixture_event("after", "z", "token_exchange", "r3", "allow", 40 * SEC),
        fixture_event("other", "z", "token_exchange", "r4", "allow", 50 * SEC),
    };
    for (int i = 0; i < 3; i++) {
        events[i].anchors = used;
        events[i].nanchors = 4;
    }
    store_events(events, 4);

    aw_event_filter f = {.anchor = {AW_ANCHOR_AGENT_SESSION, "as-parent"},
                         .grants_only = true,
                         .has_since = true,
                         .since_ns = 20 * SEC};
    cr_expect_str_eq(query(&f).text, "after", "a delegation chain element");
    f.anchor = (aw_anchor){AW_ANCHOR_AUTHORITY_RECORD, "sess-1"};
    f.grants_only = false;
    cr_expect_str_eq(query(&f).text, "denied after");
    f.anchor = (aw_anchor){AW_ANCHOR_DELEGATION_EDGE, "sess-1"};
    cr_expect_eq(query(&f).n, 0, "the kind is part of the anchor");

    aw_event_filter one = {.event_id = "after"};
    char shown[64] = "";
    cr_assert_eq(
        aw_store_query_events(fx.store, &one, show_anchors, shown, &err),
        AW_OK);
    cr_expect_str_eq(shown, "sess-1 as-1 edge-1", "the event's own anchors");
}

Test(store_query, anchor_first_seen_in_a_rolled_back_batch_is_found_later)
{
    aw_anchor used[] = {{AW_ANCHOR_AGENT_SESSION, "as-9"}};
    aw_audit_event lost =
        fixture_event("lost", "z", "token_exchange", "r1", "allow", 1 * SEC);
    lost.anchors = used;
    lost.nanchors = 1;
    cr_assert_eq(aw_store_begin(fx.store, &err), AW_OK);
    aw_put_result result;
    fixture_put_event(fx.store, "caracal.audit.events", "1-0", &lost, &result);
    aw_store_rollback(fx.store);

    aw_audit_event kept =
        fixture_event("kept", "z", "token_exchange", "r2", "allow", 2 * SEC);
    kept.anchors = used;
    kept.nanchors = 1;
    store_events(&kept, 1);
    aw_event_filter f = {.anchor = used[0]};
    cr_expect_str_eq(query(&f).text, "kept");
}

struct revs {
    char text[256];
    int n;
};

static int collect_revocation(const aw_revocation_row *row, void *ud)
{
    struct revs *r = ud;
    size_t len = strlen(r->text);
    snprintf(r->text + len, sizeof r->text - len, "%s%s:%s:%s@%lld",
             r->n ? " " : "", row->zone_id,
             aw_anchor_kind_name(row->anchor.kind), row->anchor.id,
             (long long)(row->at_ns / SEC));
    r->n++;
    return 0;
}

static struct revs revocations(const aw_revocation_filter *filter)
{
    struct revs r = {"", 0};
    cr_assert_eq(aw_store_query_revocations(fx.store, filter,
                                            collect_revocation, &r, &err),
                 AW_OK, "%s", err.msg);
    return r;
}

static void store_revocation(const char *entry_id, const char *zone,
                             aw_revocation *items, size_t n, int64_t at_ns)
{
    aw_raw_entry *entry =
        fixture_entry("caracal.sessions.revoke", entry_id, "x");
    int64_t rowid;
    aw_put_result result;
    cr_assert_eq(aw_store_put_entry(fx.store, entry, &rowid, &result, &err),
                 AW_OK);
    aw_raw_entry_free(entry);
    aw_revocation_set set = {.zone_id = zone,
                             .reason = "test",
                             .at_ns = at_ns,
                             .n = n,
                             .items = items};
    cr_assert_eq(aw_store_put_revocations(fx.store, rowid, &set, &err), AW_OK,
                 "%s", err.msg);
}

Test(store_query, revocations_are_found_by_anchor_zone_and_window)
{
    aw_revocation first[] = {
        {{AW_ANCHOR_AUTHORITY_RECORD, "sess-1"}, AW_ACTION_REVOKE},
        {{AW_ANCHOR_AGENT_SESSION, "as-1"}, AW_ACTION_REVOKE},
    };
    aw_revocation later[] = {
        {{AW_ANCHOR_AGENT_SESSION, "as-1"}, AW_ACTION_SUSPEND},
    };
    cr_assert_eq(aw_store_begin(fx.store, &err), AW_OK);
    store_revocation("1000-0", "z1", first, 2, 100 * SEC);
    store_revocation("2000-0", "z2", later, 1, 200 * SEC);
    cr_assert_eq(aw_store_commit(fx.store, &err), AW_OK);

    aw_revocation_filter f = {.anchor = {AW_ANCHOR_AGENT_SESSION, "as-1"}};
    cr_expect_str_eq(revocations(&f).text,
                     "z1:agent_session:as-1@100 z2:agent_session:as-1@200");
    f.zone_id = "z2";
    cr_expect_str_eq(revocations(&f).text, "z2:agent_session:as-1@200");
    aw_revocation_filter window = {.has_since = true,
                                   .since_ns = 50 * SEC,
                                   .has_until = true,
                                   .until_ns = 150 * SEC};
    cr_expect_str_eq(
        revocations(&window).text,
        "z1:authority_record:sess-1@100 z1:agent_session:as-1@100");
}

static int count_call(const aw_call_row *row, void *ud)
{
    cr_expect_str_eq(row->request_id, "req-9");
    cr_expect_eq(row->status, 200);
    (*(int *)ud)++;
    return 0;
}

Test(store_query, observed_calls_are_found_by_request_id)
{
    cr_assert_eq(aw_store_begin(fx.store, &err), AW_OK);
    const char *requests[] = {"req-9", "req-8", "req-9"};
    for (int i = 0; i < 3; i++) {
        char entry_id[16];
        snprintf(entry_id, sizeof entry_id, "%d-0", i + 1);
        aw_raw_entry *entry = fixture_entry("auditwatch.calls", entry_id, "x");
        int64_t rowid, call_rowid;
        aw_put_result result;
        cr_assert_eq(aw_store_put_entry(fx.store, entry, &rowid, &result, &err),
                     AW_OK);
        aw_raw_entry_free(entry);
        aw_observed_call call = {.request_id = requests[i],
                                 .status = 200,
                                 .occurred_at_ns = (i + 1) * SEC};
        cr_assert_eq(
            aw_store_put_call(fx.store, rowid, &call, &call_rowid, &err),
            AW_OK);
    }
    cr_assert_eq(aw_store_commit(fx.store, &err), AW_OK);
    int n = 0;
    cr_assert_eq(
        aw_store_query_calls(fx.store, 0, "req-9", 0, 0, count_call, &n, &err),
        AW_OK, "%s", err.msg);
    cr_expect_eq(n, 2);
    n = 0;
    cr_assert_eq(aw_store_query_calls(fx.store, 0, "req-9", 2 * SEC, 0,
                                      count_call, &n, &err),
                 AW_OK);
    cr_expect_eq(n, 1, "window start applies");
}

Test(store_query, stats_count_what_is_indexed)
{
    aw_audit_event events[] = {
        fixture_event("a", "z", "t", "r", "allow", 7 * SEC),
        fixture_event("b", "z", "t", "r", "allow", 3 * SEC),
    };
    store_events(events, 2);
    aw_store_stats s;
    cr_assert_eq(aw_store_get_stats(fx.store, &s, &err), AW_OK);
    cr_expect_eq(s.entries, 2);
    cr_expect_eq(s.events, 2);
    cr_expect_eq(s.oldest_event_ns, 3 * SEC);
    cr_expect_eq(s.newest_event_ns, 7 * SEC);
    cr_expect_gt(s.file_bytes, 0);
    cr_expect_eq(s.schema_version, aw_store_schema_version(fx.store));
}

/* One integer from SQL on the index file. */
static int64_t sql_count(const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *stmt;
    cr_assert_eq(sqlite3_open(fx.path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK, "%s",
                 sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(stmt), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return n;
}

/* Pairs in request tier t, as the index file holds them. */
static int64_t tier_pairs(int t)
{
    char sql[64];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM request_tier_%d", t);
    return sql_count(sql);
}

enum { EVENTS_TO_TIERS = 6000 };

/* Stores a batch of n fillers, numbered from *next, and commits it or rolls
 * it back. Every 500th and the last 20 of EVENTS_TO_TIERS are of request
 * req-r, the others each of its own. */
static void store_filler_batch(int n, int *next, bool commit)
{
    cr_assert_eq(aw_store_begin(fx.store, &err), AW_OK, "%s", err.msg);
    for (int k = 0; k < n; k++, (*next)++) {
        char id[32], req[32], entry_id[32];
        snprintf(id, sizeof id, "f-%d", *next);
        bool in_r = *next % 500 == 0 || *next >= EVENTS_TO_TIERS - 20;
        snprintf(req, sizeof req, in_r ? "req-r" : "fr-%d", *next);
        snprintf(entry_id, sizeof entry_id, "%d-0", *next + 1);
        aw_audit_event ev = fixture_event(id, "z", "token_exchange", req,
                                          "allow", 3 * SEC + *next);
        aw_put_result result;
        fixture_put_event(fx.store, "caracal.audit.events", entry_id, &ev,
                          &result);
    }
    if (commit)
        cr_assert_eq(aw_store_commit(fx.store, &err), AW_OK, "%s", err.msg);
    else
        aw_store_rollback(fx.store);
}

/* A full tier of the request index but the first drains into the next one
 * a slice per commit, never all at once (a whole move into the history's
 * tier held up ingest for longer the older the index): no commit takes
 * more than four times the pairs it added out of any of them. At every commit each pair is in
 * exactly one of the five tiers and meta holds each tier's size, through a
 * rolled-back drain and a restart; a request whose events went to every
 * tier is found whole, in time order. The tiers here start at 1 pair
 * (limits 1, 16, 256, 4,096) so that 6,000 events reach the last. */
Test(store_query, full_request_tiers_drain_in_slices_and_keep_every_pair,
     .timeout = 120)
{
    enum { EVENTS = EVENTS_TO_TIERS, TIERS = 5 };
    cr_assert_eq(aw_store_begin(fx.store, &err), AW_OK);
    cr_assert_eq(
        aw_store_meta_set(fx.store, "request_tier_first_limit", 1, &err), AW_OK,
        "%s", err.msg);
    cr_assert_eq(aw_store_commit(fx.store, &err), AW_OK);
    int next = 0;
    int64_t before[TIERS] = {0};
    int most_moved[TIERS] = {0};
    for (int batch = 0; next < EVENTS; batch++) {
        int added =
            1 + batch % 19 < EVENTS - next ? 1 + batch % 19 : EVENTS - next;
        if (batch == 300)
            store_filler_batch(added, &(int){next}, false);
        if (batch == 450) {
            aw_store_close(fx.store);
            cr_assert_eq(aw_store_open(fx.path, 0, &fx.store, &err), AW_OK,
                         "%s", err.msg);
        }
        store_filler_batch(added, &next, true);
        int64_t after[TIERS], total = 0, into = added;
        for (int t = 0; t < TIERS; t++) {
            after[t] = tier_pairs(t);
            total += after[t];
            int64_t out = before[t] + into - after[t];
            if (out > most_moved[t])
                most_moved[t] = (int)out;
            if (t == 0)
                cr_assert(out == 0 || out == before[t] + into,
                          "tier 0 moves whole");
            else
                cr_assert_leq(out, 4 * added,
                              "batch %d of %d pairs took %lld out of tier %d",
                              batch, added, (long long)out, t);
            into = out;
            before[t] = after[t];
            if (t < TIERS - 1) {
                char sql[96];
                snprintf(sql, sizeof sql,
                         "SELECT value FROM meta WHERE key = "
                         "'request_tier_rows_%d'",
                         t);
                cr_assert_eq(sql_count(sql), after[t], "tier %d's size", t);
            }
        }
        cr_assert_eq(total, next, "every pair in exactly one tier");
    }
    for (int t = 1; t < TIERS; t++)
        cr_expect_gt(most_moved[t - 1], 0, "tier %d received pairs", t);
    cr_expect_eq(sql_count("SELECT count(DISTINCT event_rowid) FROM "
                           "(SELECT * FROM request_tier_0 UNION ALL "
                           "SELECT * FROM request_tier_1 UNION ALL "
                           "SELECT * FROM request_tier_2 UNION ALL "
                           "SELECT * FROM request_tier_3 UNION ALL "
                           "SELECT * FROM request_tier_4)"),
                 EVENTS);

    int64_t spread = sql_count(
        "SELECT (SELECT count(*) > 0 FROM request_tier_0 t JOIN events e ON "
        "e.rowid = t.event_rowid WHERE e.request_id = 'req-r') + (SELECT "
        "count(*) > 0 FROM request_tier_1 t JOIN events e ON e.rowid = "
        "t.event_rowid WHERE e.request_id = 'req-r') + (SELECT count(*) > 0 "
        "FROM request_tier_2 t JOIN events e ON e.rowid = t.event_rowid WHERE "
        "e.request_id = 'req-r') + (SELECT count(*) > 0 FROM request_tier_3 t "
        "JOIN events e ON e.rowid = t.event_rowid WHERE e.request_id = "
        "'req-r') + (SELECT count(*) > 0 FROM request_tier_4 t JOIN events e "
        "ON e.rowid = t.event_rowid WHERE e.request_id = 'req-r')");
    cr_expect_geq(spread, 3, "req-r's events lie in %lld tiers",
                  (long long)spread);
    aw_event_filter f = {.request_id = "req-r"};
    char want[512] = "";
    for (int i = 0; i < EVENTS; i++)
        if (i % 500 == 0 || i >= EVENTS - 20)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%sf-%d",
                     *want ? " " : "", i);
    cr_expect_str_eq(query(&f).text, want);
    f.request_id = "fr-4321";
    cr_expect_str_eq(query(&f).text, "f-4321");
}

/* Every use in the anchor runs: its part, the event's row and time. */
#define ANCHOR_USES                                                            \
    "(SELECT r.part_no, e.rowid AS event_rowid, e.occurred_at FROM "           \
    "anchor_runs r, json_each(r.event_rows) u JOIN events e ON "               \
    "e.rowid = r.first_rowid + u.value)"

/* Enough events with three anchors each to fill the first part of the
 * anchor index (65,536 uses) and open a second. */
#define PART_EVENTS 22000
static char part_event_ids[PART_EVENTS + 1][16];

/* Stores events [from, to) of the anchor-part test in one transaction,
 * committed or rolled back. Each uses its own agent session among 500, a
 * shared session, and its edge; "as-marked" is used by the first and the
 * last event, and by "late", stored last but occurred before them all. */
static void store_part_events(int from, int to, bool commit)
{
    static const int64_t base = 1700000000 * SEC;
    cr_assert_eq(aw_store_begin(fx.store, &err), AW_OK, "%s", err.msg);
    for (int i = from; i < to; i++) {
        bool late = i == PART_EVENTS;
        char agent[24], edge[24], entry_id[32];
        snprintf(agent, sizeof agent, "as-%d", i % 500);
        snprintf(edge, sizeof edge, "edge-%d", i);
        snprintf(part_event_ids[i], sizeof part_event_ids[i], "%s",
                 late     ? "late"
                 : i == 0 ? "first"
                          : "");
        if (!*part_event_ids[i])
            snprintf(part_event_ids[i], sizeof part_event_ids[i],
                     i == PART_EVENTS - 1 ? "last" : "ev-%d", i);
        aw_anchor used[] = {
            {AW_ANCHOR_AGENT_SESSION,
             i == 0 || i >= PART_EVENTS - 1 ? "as-marked" : agent},
            {AW_ANCHOR_AUTHORITY_RECORD, "sess-all"},
            {AW_ANCHOR_DELEGATION_EDGE, edge}};
        aw_audit_event ev = fixture_event(
            part_event_ids[i], "z", "token_exchange", part_event_ids[i],
            "allow", late ? base - 3600 * SEC : base + i * (SEC / 1000));
        ev.anchors = used;
        ev.nanchors = 3;
        snprintf(entry_id, sizeof entry_id, "%d-0", 1000 + i);
        aw_put_result result;
        fixture_put_event(fx.store, "caracal.audit.events", entry_id, &ev,
                          &result);
        cr_assert_eq(result, AW_PUT_INSERTED);
    }
    if (commit)
        cr_assert_eq(aw_store_commit(fx.store, &err), AW_OK, "%s", err.msg);
    else
        aw_store_rollback(fx.store);
}

/* The anchor index goes to a new part once the open one is full, a part
 * closed keeps its uses' time range, and a look-up by anchor finds its
 * uses in every part, in time order, including one that occurred before
 * its part began -- also after a rollback undid the batch that first
 * opened the new part. */
Test(store_query, anchor_uses_fill_parts_and_every_part_is_found)
{
    for (int from = 0; from < 20000; from += 4000)
        store_part_events(from, from + 4000, true);
    store_part_events(20000, PART_EVENTS + 1, false);
    cr_expect_eq(sql_count("SELECT count(*) FROM anchor_parts"), 1,
                 "the rolled-back part is still there");
    store_part_events(20000, PART_EVENTS + 1, true);

    cr_expect_eq(sql_count("SELECT count(*) FROM " ANCHOR_USES),
                 3 * (PART_EVENTS + 1), "a use was lost or doubled");
    cr_expect_eq(sql_count("SELECT count(*) FROM anchor_parts"), 2);
    cr_expect_eq(
        sql_count("SELECT count(*) FROM " ANCHOR_USES " WHERE part_no = 1"),
        3 * 21846,
        "the first part closes at the first event "
        "that finds it holding 65,536 uses or more");
    cr_expect_eq(
        sql_count("SELECT count(*) FROM anchor_parts p WHERE p.part_no = 1 "
                  "AND p.min_at = (SELECT min(occurred_at) FROM " ANCHOR_USES
                  " WHERE part_no = 1) AND p.max_at = (SELECT "
                  "max(occurred_at) FROM " ANCHOR_USES " WHERE part_no = 1)"),
        1, "the closed part does not say the times of its uses");
    cr_expect_eq(sql_count("SELECT count(*) FROM anchor_runs WHERE "
                           "json_array_length(event_rows) > 512 OR "
                           "min_at > max_at OR first_rowid > last_rowid"),
                 0, "a run is longer than 512 events or its ranges are wrong");
    cr_expect_lt(sql_count("SELECT count(*) FROM anchor_runs"),
                 (PART_EVENTS + 1) * 2,
                 "the shared session's uses are not gathered into runs");

    aw_event_filter f = {.anchor = {AW_ANCHOR_AGENT_SESSION, "as-marked"}};
    cr_expect_str_eq(query(&f).text, "late first last");
    f.has_since = true;
    f.since_ns = 1700000000 * SEC + 1;
    cr_expect_str_eq(query(&f).text, "last");
    f.has_since = false;
    f.has_until = true;
    f.until_ns = 1700000000 * SEC + 1;
    cr_expect_str_eq(query(&f).text, "late first");
    f = (aw_event_filter){.anchor = {AW_ANCHOR_AGENT_SESSION, "as-7"},
                          .limit = 3};
    cr_expect_str_eq(query(&f).text, "ev-7 ev-507 ev-1007");
    /* One event's uses, as `verify` asks for them, in either part. */
    const char *const one_each[] = {"first", "last", "late"};
    for (size_t i = 0; i < 3; i++) {
        aw_event_filter by_id = {.event_id = one_each[i]};
        f = (aw_event_filter){.anchor = {AW_ANCHOR_AGENT_SESSION, "as-marked"},
                              .rowid = query(&by_id).last_rowid};
        cr_expect_str_eq(query(&f).text, one_each[i]);
    }
}

/* Another writer's commits are noticed: after a second handle filled the
 * open part and opened the next, this one stores into that next part,
 * where a look-up after a time looks. */
Test(store_query, another_writers_new_part_is_noticed)
{
    aw_anchor used = {AW_ANCHOR_AGENT_SESSION, "as-mine"};
    aw_audit_event first =
        fixture_event("before", "z", "token_exchange", "r-0", "allow", SEC);
    first.anchors = &used;
    first.nanchors = 1;
    fixture_commit_event(fx.store, "1-0", &first);
    aw_store *mine = fx.store, *other;
    cr_assert_eq(aw_store_open(fx.path, 0, &other, &err), AW_OK, "%s", err.msg);
    fx.store = other;
    store_part_events(0, PART_EVENTS, true);
    fx.store = mine;
    aw_store_close(other);

    aw_audit_event ev = fixture_event("mine", "z", "token_exchange", "r-mine",
                                      "allow", 1700000000 * SEC + 30 * SEC);
    ev.anchors = &used;
    ev.nanchors = 1;
    fixture_commit_event(fx.store, "2-0", &ev);
    aw_event_filter f = {.anchor = used,
                         .has_since = true,
                         .since_ns = 1700000000 * SEC + 25 * SEC};
    cr_expect_str_eq(query(&f).text, "mine");
}
