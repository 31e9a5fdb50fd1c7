/* test_store_open.c -- creating, migrating and sharing the index file. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/store_fixture.h"
#include "tests/support/support.h"

static store_fixture fx;

static void setup(void)
{
    store_fixture_open(&fx);
}

static void teardown(void)
{
    store_fixture_close(&fx);
}

TestSuite(store_open, .init = setup, .fini = teardown);

/* The version of schema/'s newest migration. */
#define NEWEST_SCHEMA 18

static int count_events(const aw_event_row *row, void *ud)
{
    (void)row;
    (*(int *)ud)++;
    return 0;
}

static int events_in(aw_store *store)
{
    int n = 0;
    aw_error err = {0};
    aw_event_filter all = {0};
    cr_assert_eq(aw_store_query_events(store, &all, count_events, &n, &err),
                 AW_OK, "query: %s", err.msg);
    return n;
}

static void set_user_version(const char *path, int version)
{
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", version);
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

Test(store_open, index_and_wal_are_private_to_the_owner_whatever_the_umask)
{
    char path[256];
    snprintf(path, sizeof path, "%s/umask.db", fx.dir);
    mode_t old = umask(0277); /* would leave 0400 */
    aw_store *store = NULL;
    aw_error err = {0};
    int rc = aw_store_open(path, 0, &store, &err);
    umask(old);
    cr_assert_eq(rc, AW_OK, "open: %s", err.msg);
    aw_audit_event ev =
        fixture_event("ev-1", "z", "token_exchange", "r", "allow", 1);
    fixture_commit_event(store, "1-0", &ev);

    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0600, "index mode %o", st.st_mode & 0777);
    char wal[300];
    snprintf(wal, sizeof wal, "%s-wal", path);
    cr_assert_eq(stat(wal, &st), 0, "WAL journal in use");
    cr_expect_eq(st.st_mode & 0777, 0600, "wal mode %o", st.st_mode & 0777);
    aw_store_close(store);
}

Test(store_open, reopening_a_current_index_keeps_its_data_and_version)
{
    aw_audit_event ev =
        fixture_event("ev-1", "z", "token_exchange", "r", "allow", 1);
    fixture_commit_event(fx.store, "1-0", &ev);
    int version = aw_store_schema_version(fx.store);
    cr_assert_gt(version, 0);
    aw_store_close(fx.store);
    fx.store = NULL;

    aw_error err = {0};
    cr_assert_eq(aw_store_open(fx.path, 0, &fx.store, &err), AW_OK,
                 "reopen: %s", err.msg);
    cr_expect_eq(aw_store_schema_version(fx.store), version);
    cr_expect_eq(events_in(fx.store), 1);
}

Test(store_open, refuses_an_index_written_by_a_newer_auditwatch)
{
    int newest = aw_store_schema_version(fx.store);
    aw_store_close(fx.store);
    fx.store = NULL;
    set_user_version(fx.path, newest + 1);

    aw_error err = {0};
    cr_assert_eq(aw_store_open(fx.path, 0, &fx.store, &err), AW_ERR_VERSION);
    cr_expect_null(fx.store);
    cr_expect_not_null(strstr(err.msg, "newer"), "message: %s", err.msg);
    cr_assert_eq(aw_store_open(fx.path, AW_STORE_READONLY, &fx.store, &err),
                 AW_ERR_VERSION);
}

Test(store_open, readonly_or_existing_open_of_a_missing_index_creates_nothing)
{
    char path[256];
    snprintf(path, sizeof path, "%s/absent.db", fx.dir);
    const unsigned flags[] = {AW_STORE_READONLY, AW_STORE_EXISTING};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        aw_store *store = NULL;
        aw_error err = {0};
        cr_assert_eq(aw_store_open(path, flags[i], &store, &err), AW_ERR_IO,
                     "flags %u", flags[i]);
        cr_expect_null(store);
        struct stat st;
        cr_expect_neq(stat(path, &st), 0, "file was created (flags %u)",
                      flags[i]);
    }
}

Test(store_open, another_programs_database_is_refused_and_left_unchanged)
{
    char path[256];
    snprintf(path, sizeof path, "%s/customers.db", fx.dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db,
                              "CREATE TABLE customers (name TEXT);"
                              "INSERT INTO customers VALUES ('alice');",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(db);

    const unsigned flags[] = {0, AW_STORE_READONLY, AW_STORE_EXISTING};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        aw_store *store = NULL;
        aw_error err = {0};
        cr_assert_eq(aw_store_open(path, flags[i], &store, &err),
                     AW_ERR_VERSION, "flags %u: %s", flags[i], err.msg);
        cr_expect_null(store);
        cr_expect(strstr(err.msg, "not an auditwatch index"), "%s", err.msg);
    }

    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *stmt;
    cr_assert_eq(
        sqlite3_prepare_v2(db,
                           "SELECT (SELECT count(*) FROM sqlite_master),"
                           " (SELECT journal_mode FROM"
                           "  pragma_journal_mode),"
                           " (SELECT user_version FROM"
                           "  pragma_user_version)",
                           -1, &stmt, NULL),
        SQLITE_OK, "%s", sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(stmt), SQLITE_ROW);
    cr_expect_eq(sqlite3_column_int(stmt, 0), 1, "tables were added");
    cr_expect_str_eq((const char *)sqlite3_column_text(stmt, 1), "delete");
    cr_expect_eq(sqlite3_column_int(stmt, 2), 0);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
}

Test(store_open, reader_sees_only_committed_events_while_a_writer_works)
{
    aw_store *reader = NULL;
    aw_error err = {0};
    cr_assert_eq(aw_store_open(fx.path, AW_STORE_READONLY, &reader, &err),
                 AW_OK, "open reader: %s", err.msg);

    cr_assert_eq(aw_store_begin(fx.store, &err), AW_OK, "begin: %s", err.msg);
    aw_audit_event ev =
        fixture_event("ev-1", "z", "token_exchange", "r", "allow", 1);
    aw_put_result result;
    fixture_put_event(fx.store, "caracal.audit.events", "1-0", &ev, &result);
    cr_expect_eq(events_in(reader), 0, "uncommitted event visible");

    cr_assert_eq(aw_store_commit(fx.store, &err), AW_OK, "commit: %s", err.msg);
    cr_expect_eq(events_in(reader), 1, "committed event not visible");
    cr_expect_eq(aw_store_begin(reader, &err), AW_ERR,
                 "a reader must not write");
    aw_store_close(reader);
}

static void exec_sql(const char *path, const char *sql)
{
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s: %s",
                 sql, sqlite3_errmsg(db));
    sqlite3_close(db);
}

static int count_rows(void *ud, int ncols, char **values, char **names)
{
    (void)ncols, (void)values, (void)names;
    (*(int *)ud)++;
    return 0;
}

static int index_named(const char *path, const char *name)
{
    sqlite3 *db;
    sqlite3_stmt *stmt;
    int n = 0;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db,
                                    "SELECT 1 FROM sqlite_master WHERE "
                                    "type = 'index' AND name = ?1",
                                    -1, &stmt, NULL),
                 SQLITE_OK);
    sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
    while (sqlite3_step(stmt) == SQLITE_ROW)
        n++;
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return n;
}

/* An index written before event identity became (id, occurred_at) opens,
 * migrates, keeps its events, and from then on tells events sharing an id
 * apart by their time. */
static void close_index(void)
{
    aw_store_close(fx.store);
    fx.store = NULL;
}

/* Opens the index again, which migrates it to the newest schema. */
static void reopen_migrated(void)
{
    aw_error err = {0};
    cr_assert_eq(aw_store_open(fx.path, 0, &fx.store, &err), AW_OK, "%s",
                 err.msg);
    cr_expect_eq(aw_store_schema_version(fx.store), NEWEST_SCHEMA);
}

/* Puts events[i] as entry "<i + 2>-0", all in one batch, expecting want[i]. */
static void expect_puts(const aw_audit_event *events, const aw_put_result *want,
                        size_t n)
{
    aw_error err = {0};
    cr_assert_eq(aw_store_begin(fx.store, &err), AW_OK, "%s", err.msg);
    for (size_t i = 0; i < n; i++) {
        char entry_id[32];
        aw_put_result result;
        snprintf(entry_id, sizeof entry_id, "%zu-0", i + 2);
        fixture_put_event(fx.store, "caracal.audit.events", entry_id,
                          &events[i], &result);
        cr_expect_eq(result, want[i], "event %zu", i);
    }
    cr_assert_eq(aw_store_commit(fx.store, &err), AW_OK, "%s", err.msg);
}

Test(store_open, an_index_of_schema_1_migrates_to_event_identity)
{
    aw_audit_event old =
        fixture_event("req-9", "z", "control.invoke", "req-9", "allow", 1000);
    fixture_commit_event(fx.store, "1-0", &old);
    close_index();
    /* back to what 0001_initial.sql made */
    fixture_back_to_schema_3(fx.path);
    exec_sql(fx.path, "DROP INDEX events_by_identity;"
                      "CREATE INDEX events_by_event_id ON events (id_key);"
                      "ALTER TABLE events DROP COLUMN delegation_epoch;"
                      "DROP INDEX revocations_by_delivery;"
                      "ALTER TABLE revocations DROP COLUMN delivery_id;"
                      "ALTER TABLE revocations DROP COLUMN epoch;"
                      "ALTER TABLE entries DROP COLUMN zstd_dict;"
                      "DROP TABLE evidence_dicts;"
                      "PRAGMA user_version = 1;");
    reopen_migrated();
    cr_expect_eq(events_in(fx.store), 1, "the old event is kept");
    cr_expect_eq(index_named(fx.path, "events_by_event_id"), 0);
    cr_expect_eq(index_named(fx.path, "events_by_identity"), 1);

    aw_audit_event later =
        fixture_event("req-9", "z", "control.invoke", "req-9", "deny", 2000);
    aw_audit_event forged =
        fixture_event("req-9", "z", "control.invoke", "req-9", "deny", 1000);
    aw_audit_event next[] = {later, forged};
    expect_puts(next, (aw_put_result[]){AW_PUT_INSERTED, AW_PUT_CONFLICT}, 2);
    cr_expect_eq(events_in(fx.store), 2);
    int plans = 0;
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(fx.path, &db), SQLITE_OK);
    sqlite3_exec(db, "SELECT 1 FROM events WHERE delegation_epoch IS NULL",
                 count_rows, &plans, NULL);
    sqlite3_close(db);
    cr_expect_eq(plans, 2, "the new column reads as absent for every event");
}

static int first_column(void *ud, int ncols, char **values, char **names)
{
    (void)names;
    if (ncols >= 3 && strcmp(values[0], "0") == 0)
        snprintf(ud, 64, "%s", values[2]);
    return 0;
}

/* Schema 7 keys the identity index by time first: the same duplicates and
 * conflicts are found through it after the migration. */
Test(store_open, an_index_of_schema_6_migrates_to_identity_by_time)
{
    aw_audit_event old =
        fixture_event("ev-1", "z", "token_exchange", "req-1", "allow", 1000);
    fixture_commit_event(fx.store, "1-0", &old);
    close_index();
    fixture_back_to_schema_7(fx.path);
    exec_sql(fx.path,
             "DROP INDEX events_by_identity;"
             "CREATE INDEX events_by_identity ON events (id_key, occurred_at);"
             "PRAGMA user_version = 6;");
    reopen_migrated();
    char first[64] = "";
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(fx.path, &db), SQLITE_OK);
    sqlite3_exec(db, "PRAGMA index_info(events_by_identity)", first_column,
                 first, NULL);
    sqlite3_close(db);
    cr_expect_str_eq(first, "occurred_at");

    aw_audit_event again = old;
    aw_audit_event forged =
        fixture_event("ev-1", "z", "token_exchange", "req-1", "deny", 1000);
    aw_audit_event next[] = {again, forged};
    expect_puts(next, (aw_put_result[]){AW_PUT_DUPLICATE, AW_PUT_CONFLICT}, 2);
    cr_expect_eq(events_in(fx.store), 1);
}

/* Every member of a row as one line, so two reads can be compared. */
static int append_row_line(const aw_event_row *r, void *ud)
{
    char line[2048];
    snprintf(line, sizeof line,
             "%lld|%lld|%s|%s|%lld|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%d|"
             "%lld|%d|%d|%lld\n",
             (long long)r->rowid, (long long)r->entry_rowid, r->stream,
             r->entry_id, (long long)r->arrived_ns, r->event_id, r->zone_id,
             r->event_type ? r->event_type : "(null)",
             r->request_id ? r->request_id : "(null)",
             r->decision ? r->decision : "(null)",
             r->evaluation_status ? r->evaluation_status : "(null)",
             r->application_id ? r->application_id : "(null)",
             r->resource ? r->resource : "(null)",
             r->session_id ? r->session_id : "(null)",
             r->agent_session_id ? r->agent_session_id : "(null)",
             r->delegation_edge_id ? r->delegation_edge_id : "(null)",
             r->result_class ? r->result_class : "(null)", r->upstream_status,
             (long long)r->occurred_at_ns, r->is_signed,
             r->has_delegation_epoch, (long long)r->delegation_epoch);
    strncat(ud, line, 16383 - strlen(ud));
    return 0;
}

static void read_all_rows(aw_store *store, const aw_event_filter *filter,
                          char out[16384])
{
    out[0] = 0;
    aw_error err = {0};
    cr_assert_eq(
        aw_store_query_events(store, filter, append_row_line, out, &err), AW_OK,
        "query: %s", err.msg);
}

/* An index whose events hold their words as text (schema 3) migrates to
 * numbered words, and every row struct reads back with the same strings,
 * found by the same filters. */
Test(store_open,
     an_index_of_schema_3_migrates_to_narrow_rows_with_the_same_strings)
{
    aw_anchor anchors[] = {{AW_ANCHOR_AUTHORITY_RECORD, "ar-1"},
                           {AW_ANCHOR_AGENT_SESSION, "as-1"},
                           {AW_ANCHOR_DELEGATION_EDGE, "edge-1"},
                           {AW_ANCHOR_AGENT_SESSION, "as-chain"}};
    aw_audit_event full = fixture_event("ev-1", "zone-a", "token_exchange",
                                        "req-1", "allow", 1000);
    full.evaluation_status = "evaluated";
    full.application_id = "app-1";
    full.resource = "resource://crm/contacts";
    full.result_class = "success";
    full.upstream_status = 201;
    full.is_signed = true;
    full.has_delegation_epoch = true;
    full.delegation_epoch = 7;
    full.anchors = anchors;
    full.nanchors = 4;
    aw_audit_event bare =
        fixture_event("ev-2", "zone-b", NULL, NULL, NULL, 2000);
    aw_audit_event gateway = fixture_event(
        "ev-3", "zone-a", "gateway_resource_request", "req-1", NULL, 3000);
    gateway.resource = "resource://crm/contacts";
    gateway.anchors = anchors + 1;
    gateway.nanchors = 1;
    fixture_commit_event(fx.store, "1-0", &full);
    fixture_commit_event(fx.store, "2-0", &bare);
    fixture_commit_event(fx.store, "3-0", &gateway);
    static char before[16384], after[16384], filtered[16384];
    aw_event_filter all = {0};
    read_all_rows(fx.store, &all, before);
    aw_store_close(fx.store);
    fx.store = NULL;
    fixture_back_to_schema_3(fx.path);

    aw_error err = {0};
    cr_assert_eq(aw_store_open(fx.path, 0, &fx.store, &err), AW_OK, "%s",
                 err.msg);
    cr_expect_eq(aw_store_schema_version(fx.store), NEWEST_SCHEMA);
    read_all_rows(fx.store, &all, after);
    cr_expect_str_eq(after, before);
    cr_expect(strstr(after, "|as-1|edge-1|") != NULL, "%s", after);

    static const char *const grants[] = {"token_exchange"};
    aw_event_filter by_words = {
        .zone_id = "zone-a",
        .resource = "resource://crm/contacts",
        .application_id = "app-1",
        .decision = "allow",
        .event_types = grants,
        .n_event_types = 1,
        .grants_only = true,
    };
    read_all_rows(fx.store, &by_words, filtered);
    cr_expect(strncmp(filtered, before, strcspn(before, "\n") + 1) == 0 &&
                  strchr(filtered, '\n')[1] == 0,
              "only ev-1: %s", filtered);
    aw_event_filter unknown = {.zone_id = "zone-never-seen"};
    read_all_rows(fx.store, &unknown, filtered);
    cr_expect_str_eq(filtered, "");
    aw_event_filter by_anchor = {.anchor = {AW_ANCHOR_AGENT_SESSION, "as-1"}};
    read_all_rows(fx.store, &by_anchor, filtered);
    cr_expect(strstr(filtered, "ev-1") && strstr(filtered, "ev-3") &&
                  !strstr(filtered, "ev-2"),
              "%s", filtered);

    /* A new event reuses the migrated words' numbers. */
    aw_audit_event later = fixture_event("ev-4", "zone-a", "token_exchange",
                                         "req-4", "allow", 4000);
    fixture_commit_event(fx.store, "4-0", &later);
    int terms = 0;
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(fx.path, &db), SQLITE_OK);
    sqlite3_exec(db, "SELECT 1 FROM terms WHERE term = 'zone-a'", count_rows,
                 &terms, NULL);
    sqlite3_close(db);
    cr_expect_eq(terms, 1, "zone-a numbered once");
    aw_event_filter zone_a = {.zone_id = "zone-a"};
    read_all_rows(fx.store, &zone_a, filtered);
    cr_expect(strstr(filtered, "ev-4") != NULL, "%s", filtered);
}

typedef struct time_order {
    int64_t times[8], rowids[8];
    int n;
} time_order;

static int keep_time(const aw_event_row *row, void *ud)
{
    time_order *t = ud;
    if (t->n < 8) {
        t->times[t->n] = row->occurred_at_ns;
        t->rowids[t->n] = row->rowid;
    }
    t->n++;
    return 0;
}

/* Schema 9 drops events_by_time: a time window is then walked through
 * events_by_identity, in the same order, with the same limit. */
Test(store_open,
     an_index_of_schema_8_answers_time_windows_without_its_time_index)
{
    static const int64_t at[] = {5000, 1000, 3000, 3000, 2000, 4000};
    aw_error err = {0};
    cr_assert_eq(aw_store_begin(fx.store, &err), AW_OK, "%s", err.msg);
    for (int i = 0; i < 6; i++) {
        char id[16], entry_id[16];
        snprintf(id, sizeof id, "ev-%d", i);
        snprintf(entry_id, sizeof entry_id, "%d-0", i + 1);
        aw_audit_event ev =
            fixture_event(id, "z", "token_exchange", id, "allow", at[i]);
        aw_put_result result;
        fixture_put_event(fx.store, "caracal.audit.events", entry_id, &ev,
                          &result);
    }
    cr_assert_eq(aw_store_commit(fx.store, &err), AW_OK, "%s", err.msg);
    close_index();
    fixture_back_to_schema_10(fx.path);
    exec_sql(fx.path, "CREATE INDEX events_by_time ON events (occurred_at);"
                      "PRAGMA user_version = 8;");
    reopen_migrated();
    cr_expect_eq(index_named(fx.path, "events_by_time"), 0);
    aw_event_filter window = {.has_since = true,
                              .since_ns = 2000,
                              .has_until = true,
                              .until_ns = 5000,
                              .limit = 3};
    time_order t = {0};
    cr_assert_eq(aw_store_query_events(fx.store, &window, keep_time, &t, &err),
                 AW_OK, "%s", err.msg);
    cr_expect_eq(t.n, 3);
    cr_expect_eq(t.times[0], 2000);
    cr_expect_eq(t.times[1], 3000);
    cr_expect_eq(t.times[2], 3000);
    cr_expect_lt(t.rowids[1], t.rowids[2], "equal times in row order");
}

static int count_requests(const char *request_id)
{
    int n = 0;
    aw_error err = {0};
    aw_event_filter f = {.request_id = request_id};
    cr_assert_eq(aw_store_query_events(fx.store, &f, count_events, &n, &err),
                 AW_OK, "query: %s", err.msg);
    return n;
}

/* Rows of schema 9 and before hold UUIDs as text: after the migration they
 * are still found by their ids, and a redelivery of one is still known. */
Test(store_open, an_index_of_schema_9_still_finds_its_text_uuids)
{
    const char *id = "0f8fad5b-d9cb-469f-a165-70867728950e",
               *req = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
    aw_audit_event old =
        fixture_event(id, "z", "token_exchange", req, "allow", 1000);
    fixture_commit_event(fx.store, "1-0", &old);
    close_index();
    fixture_back_to_schema_10(fx.path);
    char sql[256];
    snprintf(sql, sizeof sql,
             "UPDATE events SET event_id = '%s', request_id = '%s';"
             "PRAGMA user_version = 9;",
             id, req);
    exec_sql(fx.path, sql);
    reopen_migrated();
    cr_expect_eq(count_requests(req), 1);

    aw_audit_event forged =
        fixture_event(id, "z", "token_exchange", req, "deny", 1000);
    aw_audit_event next[] = {old, forged};
    expect_puts(next, (aw_put_result[]){AW_PUT_DUPLICATE, AW_PUT_CONFLICT}, 2);
    aw_audit_event later = fixture_event(
        "ev-2", "z", "gateway_resource_request", req, "allow", 2000);
    expect_puts(&later, (aw_put_result[]){AW_PUT_INSERTED}, 1);
    cr_expect_eq(count_requests(req), 2, "old text row and new bytes row");
}

/* Rows of schema 11 and before keep the 8-byte id key and the content
 * hash: after the migration a redelivery of one is still a duplicate, an
 * altered copy still a conflict, and new rows take the short key. */
Test(store_open, an_index_of_schema_11_still_knows_its_events)
{
    aw_audit_event old =
        fixture_event("ev-1", "z", "token_exchange", "req-1", "allow", 1000);
    fixture_commit_event(fx.store, "1-0", &old);
    close_index();
    fixture_back_to_schema_11(fx.path);
    cr_assert_eq(aw_test_sql_int(fx.path,
                                 "SELECT count(*) FROM events WHERE "
                                 "id_key NOT BETWEEN -8388608 AND 8388607"),
                 1, "the fixture wrote a long key");
    reopen_migrated();
    aw_audit_event forged =
        fixture_event("ev-1", "z", "token_exchange", "req-1", "deny", 1000);
    aw_audit_event next[] = {old, forged};
    expect_puts(next, (aw_put_result[]){AW_PUT_DUPLICATE, AW_PUT_CONFLICT}, 2);
    aw_audit_event later = fixture_event(
        "ev-2", "z", "gateway_resource_request", "req-1", "allow", 1000);
    expect_puts(&later, (aw_put_result[]){AW_PUT_INSERTED}, 1);
    expect_puts(&later, (aw_put_result[]){AW_PUT_DUPLICATE}, 1);
    cr_expect_eq(aw_test_sql_int(fx.path,
                                 "SELECT count(*) FROM events WHERE "
                                 "id_key BETWEEN -8388608 AND 8388607"),
                 1, "the new row has a 3-byte key");
}

/* Stores ev-1 and ev-2 of request req-1 at 1000 and 2000, a commit each,
 * and closes the index. */
static void store_two_of_a_request_and_close(void)
{
    aw_audit_event a =
        fixture_event("ev-1", "z", "token_exchange", "req-1", "allow", 1000);
    aw_audit_event b = fixture_event("ev-2", "z", "gateway_resource_request",
                                     "req-1", "allow", 2000);
    fixture_commit_event(fx.store, "1-0", &a);
    fixture_commit_event(fx.store, "2-0", &b);
    close_index();
}

/* Schema 11 moves the request index into tiers: the request keys of the
 * events stored before fill tier 2, and look-ups find them there. */
Test(store_open, an_index_of_schema_10_moves_its_request_keys_to_a_tier)
{
    store_two_of_a_request_and_close();
    fixture_back_to_schema_10(fx.path);
    cr_assert_eq(index_named(fx.path, "events_by_request"), 1);
    reopen_migrated();
    cr_expect_eq(index_named(fx.path, "events_by_request"), 0);
    cr_expect_eq(count_requests("req-1"), 2);
    sqlite3 *db;
    int in_tier_2 = 0;
    cr_assert_eq(sqlite3_open(fx.path, &db), SQLITE_OK);
    sqlite3_exec(db, "SELECT 1 FROM request_tier_2", count_rows, &in_tier_2,
                 NULL);
    sqlite3_close(db);
    cr_expect_eq(in_tier_2, 2);
}

static int collect_event_ids(const aw_event_row *row, void *ud)
{
    size_t len = strlen(ud);
    snprintf((char *)ud + len, 64 - len, "%s%s", len ? " " : "", row->event_id);
    return 0;
}

/* Schema 14 puts the anchor index in parts: the uses stored before become
 * part 0, closed with their time range, and a look-up by anchor finds them
 * with the ones stored after, in time order. */
Test(store_open, an_index_of_schema_13_keeps_its_anchor_uses_in_part_0)
{
    aw_anchor agent = {AW_ANCHOR_AGENT_SESSION, "as-1"};
    aw_audit_event old =
        fixture_event("ev-old", "z", "token_exchange", "req-1", "allow", 3000);
    old.anchors = &agent;
    old.nanchors = 1;
    fixture_commit_event(fx.store, "1-0", &old);
    close_index();
    fixture_back_to_schema_13(fx.path);
    cr_assert_eq(aw_test_sql_int(fx.path, "SELECT count(*) FROM sqlite_master "
                                          "WHERE name = 'anchor_parts'"),
                 0, "the fixture left the parts");
    reopen_migrated();
    cr_expect_eq(aw_test_sql_int(fx.path,
                                 "SELECT count(*) FROM anchor_parts WHERE "
                                 "part_no = 0 AND base_at = 0 AND "
                                 "min_at = 3000 AND max_at = 3000"),
                 1);
    aw_audit_event before = fixture_event("ev-before", "z", "token_exchange",
                                          "req-2", "allow", 1000);
    aw_audit_event after = fixture_event("ev-after", "z", "token_exchange",
                                         "req-3", "allow", 5000);
    before.anchors = after.anchors = &agent;
    before.nanchors = after.nanchors = 1;
    fixture_commit_event(fx.store, "2-0", &after);
    fixture_commit_event(fx.store, "3-0", &before);
    char found[64] = "";
    aw_event_filter f = {.anchor = agent};
    aw_error err = {0};
    cr_assert_eq(
        aw_store_query_events(fx.store, &f, collect_event_ids, found, &err),
        AW_OK, "%s", err.msg);
    cr_expect_str_eq(found, "ev-before ev-old ev-after");
    found[0] = '\0';
    f.has_since = true;
    f.since_ns = 2000;
    f.has_until = true;
    f.until_ns = 4000;
    cr_assert_eq(
        aw_store_query_events(fx.store, &f, collect_event_ids, found, &err),
        AW_OK, "%s", err.msg);
    cr_expect_str_eq(found, "ev-old");
}

/* Part 0, the uses of an index from before schema 14, is closed at
 * migration whatever its times: one use at the very first nanosecond an
 * index can hold (the value an open part's row claims as its start) must
 * not reopen it, or the uses stored after would go to part 0 beyond its
 * recorded end, where a look-up after a time (a revocation's) skips them. */
Test(store_open, a_migrated_use_at_the_first_nanosecond_leaves_part_0_closed)
{
    aw_anchor agent = {AW_ANCHOR_AGENT_SESSION, "as-1"};
    aw_audit_event first = fixture_event("ev-first", "z", "token_exchange",
                                         "req-1", "allow", INT64_MIN);
    first.anchors = &agent;
    first.nanchors = 1;
    fixture_commit_event(fx.store, "1-0", &first);
    close_index();
    fixture_back_to_schema_13(fx.path);
    reopen_migrated();
    aw_audit_event after = fixture_event("ev-after", "z", "token_exchange",
                                         "req-2", "allow", 5000);
    after.anchors = &agent;
    after.nanchors = 1;
    fixture_commit_event(fx.store, "2-0", &after);
    cr_expect_eq(aw_test_sql_int(fx.path, "SELECT count(*) FROM anchor_runs "
                                          "WHERE part_no = 0"),
                 1, "a use went to the closed part 0");
    char found[64] = "";
    aw_event_filter f = {.anchor = agent, .has_since = true, .since_ns = 4000};
    aw_error err = {0};
    cr_assert_eq(
        aw_store_query_events(fx.store, &f, collect_event_ids, found, &err),
        AW_OK, "%s", err.msg);
    cr_expect_str_eq(found, "ev-after");
}

/* Schema 15 writes the anchor uses of each part as runs: the uses of an
 * index of schema 14 become runs of at most 512 events, and a look-up by
 * anchor finds them with the ones stored after, also within the
 * transaction that stores them, and not after it rolled back. */
Test(store_open, an_index_of_schema_14_keeps_its_anchor_uses_in_runs)
{
    aw_anchor agent = {AW_ANCHOR_AGENT_SESSION, "as-1"};
    aw_error err = {0};
    cr_assert_eq(aw_store_begin(fx.store, &err), AW_OK, "%s", err.msg);
    for (int i = 0; i < 600; i++) {
        char id[32], req[32], entry_id[32];
        snprintf(id, sizeof id, "ev-%d", i);
        snprintf(req, sizeof req, "req-%d", i);
        snprintf(entry_id, sizeof entry_id, "%d-0", i + 1);
        aw_audit_event ev =
            fixture_event(id, "z", "token_exchange", req, "allow", 1000 + i);
        aw_anchor twice[] = {agent, agent};
        ev.anchors = twice;
        ev.nanchors = 2;
        aw_put_result result;
        fixture_put_event(fx.store, "caracal.audit.events", entry_id, &ev,
                          &result);
    }
    cr_assert_eq(aw_store_commit(fx.store, &err), AW_OK, "%s", err.msg);
    close_index();
    fixture_back_to_schema_14(fx.path);
    cr_assert_eq(aw_test_sql_int(fx.path, "SELECT count(*) FROM anchor_uses"),
                 600, "an event naming its anchor twice is one use");
    reopen_migrated();
    cr_expect_eq(aw_test_sql_int(fx.path,
                                 "SELECT count(*) = 2 AND sum(json_array_"
                                 "length(event_rows)) = 600 AND max(json_"
                                 "array_length(event_rows)) <= 512 FROM "
                                 "anchor_runs"),
                 1, "600 uses of one anchor are not two runs of them");
    cr_expect_eq(aw_test_sql_int(fx.path, "SELECT count(*) FROM sqlite_master "
                                          "WHERE name = 'anchor_uses'"),
                 0);

    aw_event_filter f = {.anchor = agent, .has_since = true, .since_ns = 1598};
    char found[64] = "";
    cr_assert_eq(
        aw_store_query_events(fx.store, &f, collect_event_ids, found, &err),
        AW_OK, "%s", err.msg);
    cr_expect_str_eq(found, "ev-598 ev-599");

    aw_audit_event late =
        fixture_event("ev-late", "z", "token_exchange", "req-l", "allow", 1599);
    late.anchors = &agent;
    late.nanchors = 1;
    for (int commit = 0; commit < 2; commit++) {
        cr_assert_eq(aw_store_begin(fx.store, &err), AW_OK, "%s", err.msg);
        aw_put_result result;
        fixture_put_event(fx.store, "caracal.audit.events", "900-0", &late,
                          &result);
        found[0] = '\0';
        cr_assert_eq(
            aw_store_query_events(fx.store, &f, collect_event_ids, found, &err),
            AW_OK, "%s", err.msg);
        cr_expect_str_eq(found, "ev-598 ev-599 ev-late",
                         "a use of this transaction is not found in it");
        if (commit)
            cr_assert_eq(aw_store_commit(fx.store, &err), AW_OK, "%s", err.msg);
        else
            aw_store_rollback(fx.store);
    }
    found[0] = '\0';
    cr_assert_eq(
        aw_store_query_events(fx.store, &f, collect_event_ids, found, &err),
        AW_OK, "%s", err.msg);
    cr_expect_str_eq(found, "ev-598 ev-599 ev-late");
}

static int64_t meta_value(const char *key)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT value FROM meta WHERE key = '%s'", key);
    return aw_test_sql_int(fx.path, sql);
}

/* Schema 16 adds two request tiers and keeps the tiers' sizes in meta: an
 * index of schema 15 gets its tiers' counts and no drain under way, and
 * its events are found with the ones stored after. */
Test(store_open, an_index_of_schema_15_counts_its_request_tiers)
{
    store_two_of_a_request_and_close();
    fixture_back_to_schema_15(fx.path);
    exec_sql(fx.path,
             "INSERT INTO request_tier_2 SELECT * FROM request_tier_0 WHERE "
             "event_rowid = (SELECT min(event_rowid) FROM request_tier_0);"
             "DELETE FROM request_tier_0 WHERE event_rowid IN (SELECT "
             "event_rowid FROM request_tier_2)");
    cr_assert_eq(aw_test_sql_int(fx.path, "SELECT count(*) FROM sqlite_master "
                                          "WHERE name LIKE 'request_tier_%'"),
                 3, "the fixture left three tiers");
    reopen_migrated();
    cr_expect_eq(aw_test_sql_int(fx.path, "SELECT count(*) FROM sqlite_master "
                                          "WHERE name LIKE 'request_tier_%'"),
                 5);
    cr_expect_eq(meta_value("request_tier_first_limit"), 65536);
    const int64_t rows[] = {1, 0, 1, 0};
    for (int t = 0; t < 4; t++) {
        char key[64];
        snprintf(key, sizeof key, "request_tier_rows_%d", t);
        cr_expect_eq(meta_value(key), rows[t], "tier %d", t);
        snprintf(key, sizeof key, "request_tier_cursor_key_%d", t);
        cr_expect_eq(meta_value(key), INT64_MAX, "tier %d is not draining", t);
    }
    aw_audit_event c = fixture_event("ev-3", "z", "gateway_resource_request",
                                     "req-1", "allow", 1500);
    fixture_commit_event(fx.store, "3-0", &c);
    char found[64] = "";
    aw_event_filter f = {.request_id = "req-1"};
    aw_error err = {0};
    cr_assert_eq(
        aw_store_query_events(fx.store, &f, collect_event_ids, found, &err),
        AW_OK, "%s", err.msg);
    cr_expect_str_eq(found, "ev-1 ev-3 ev-2");
    cr_expect_eq(meta_value("request_tier_rows_0"), 2);
}

static void store_call(const char *entry_id, bool time_is_logged)
{
    aw_error err = {0};
    cr_assert_eq(aw_store_begin(fx.store, &err), AW_OK, "%s", err.msg);
    aw_raw_entry *entry = fixture_entry("auditwatch.calls", entry_id, "x");
    int64_t rowid, call_rowid;
    aw_put_result result;
    cr_assert_eq(aw_store_put_entry(fx.store, entry, &rowid, &result, &err),
                 AW_OK, "%s", err.msg);
    aw_raw_entry_free(entry);
    aw_observed_call call = {.request_id = "req-1",
                             .status = 200,
                             .occurred_at_ns = 1000,
                             .time_is_logged = time_is_logged};
    cr_assert_eq(aw_store_put_call(fx.store, rowid, &call, &call_rowid, &err),
                 AW_OK, "%s", err.msg);
    cr_assert_eq(aw_store_commit(fx.store, &err), AW_OK, "%s", err.msg);
}

static int count_logged_times(const aw_call_row *row, void *ud)
{
    ++((int *)ud)[row->time_is_logged];
    return 0;
}

/* Schema 17 records whether a call's time is its log's: calls of older
 * indexes did not say, and read as stand-ins (their detector rule stays as
 * it was). */
Test(store_open, an_index_of_schema_16_reads_its_call_times_as_stand_ins)
{
    store_call("1-0", true);
    close_index();
    fixture_back_to_schema_16(fx.path);
    reopen_migrated();
    store_call("2-0", true);
    store_call("3-0", false);
    int stand_in_and_logged[2] = {0, 0};
    aw_error err = {0};
    cr_assert_eq(aw_store_query_calls(fx.store, 0, "req-1", INT64_MIN, 0,
                                      count_logged_times, stand_in_and_logged,
                                      &err),
                 AW_OK, "%s", err.msg);
    cr_expect_eq(stand_in_and_logged[0], 2, "the migrated call and 3-0");
    cr_expect_eq(stand_in_and_logged[1], 1, "2-0, stored logged");
}

static int keep_resource(const aw_event_row *row, void *ud)
{
    char **out = ud;
    free(*out);
    *out = row->resource ? strdup(row->resource) : NULL;
    return 0;
}

/* The Gateway's resource is the client's header, of any length: what the
 * decoder lets through (AW_MAX_TEXT_BYTES) is stored and found whole. */
Test(store_open, a_resource_as_long_as_the_decoder_allows_is_kept_whole)
{
    char *resource = malloc(AW_MAX_TEXT_BYTES + 1);
    memset(resource, 'r', AW_MAX_TEXT_BYTES);
    resource[AW_MAX_TEXT_BYTES] = '\0';
    aw_audit_event ev = fixture_event(
        "ev-1", "zone-a", "gateway_resource_request", "req-1", NULL, 1000);
    ev.resource = resource;
    fixture_commit_event(fx.store, "1-0", &ev);
    char *found = NULL;
    aw_error err = {0};
    aw_event_filter by_resource = {.resource = resource};
    cr_assert_eq(aw_store_query_events(fx.store, &by_resource, keep_resource,
                                       &found, &err),
                 AW_OK, "%s", err.msg);
    cr_assert_not_null(found);
    cr_expect_str_eq(found, resource);
    free(found);
    free(resource);
}

/* In a child that cannot write dir (nobody, when the tests run as root):
 * 0 when the index opens read-only and shows its one event. */
static int open_as_a_reader(const char *path)
{
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        if (getuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(2);
        aw_store *store;
        aw_error err = {0};
        int n = 0;
        if (aw_store_open(path, AW_STORE_READONLY, &store, &err) != AW_OK) {
            fprintf(stderr, "%s\n", err.msg);
            _exit(3);
        }
        aw_event_filter all = {0};
        int rc = aw_store_query_events(store, &all, count_events, &n, &err);
        aw_store_close(store);
        _exit(rc == AW_OK && n == 1 ? 0 : 4);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* An evidence copy on read-only media: no -shm can be made beside it. A
 * quiescent index (no -wal) is read as immutable; the directory is left as
 * it was. */
Test(store_open, a_quiescent_index_on_read_only_media_opens_read_only)
{
    aw_audit_event ev =
        fixture_event("ev-1", "zone-a", "token_exchange", "req-1", "allow", 1);
    fixture_commit_event(fx.store, "1-0", &ev);
    aw_store_close(fx.store);
    fx.store = NULL;
    char wal[160], shm[160];
    snprintf(wal, sizeof wal, "%s-wal", fx.path);
    snprintf(shm, sizeof shm, "%s-shm", fx.path);
    cr_assert_neq(access(wal, F_OK), 0, "a clean close leaves no -wal");
    cr_assert_eq(chmod(fx.path, 0444), 0);
    cr_assert_eq(chmod(fx.dir, 0555), 0);
    int status = open_as_a_reader(fx.path);
    cr_expect_neq(access(shm, F_OK), 0, "nothing was written beside it");
    chmod(fx.dir, 0755);
    cr_expect_eq(status, 0, "the reader could not read the index (%d)", status);
}

/* verify's checks span many queries beside a writing daemon: under one
 * read snapshot they all see the index as it was when it began. */
Test(store_open, a_read_snapshot_does_not_see_what_a_writer_commits_meanwhile)
{
    aw_audit_event first =
        fixture_event("ev-1", "zone-a", "token_exchange", "req-1", "allow", 1);
    fixture_commit_event(fx.store, "1-0", &first);
    aw_store *reader;
    aw_error err = {0};
    cr_assert_eq(aw_store_open(fx.path, AW_STORE_READONLY, &reader, &err),
                 AW_OK, "%s", err.msg);
    cr_assert_eq(aw_store_read_snapshot(reader, &err), AW_OK, "%s", err.msg);
    cr_expect_eq(events_in(reader), 1);
    aw_audit_event second =
        fixture_event("ev-2", "zone-a", "token_exchange", "req-2", "allow", 2);
    fixture_commit_event(fx.store, "2-0", &second);
    cr_expect_eq(events_in(reader), 1, "the snapshot still holds");
    aw_store_stats stats;
    cr_assert_eq(aw_store_get_stats(reader, &stats, &err), AW_OK, "%s",
                 err.msg);
    cr_expect_eq(stats.entries, 1, "every query of it");
    aw_store_rollback(reader);
    cr_expect_eq(events_in(reader), 2, "after it, the index as it is now");
    cr_expect_neq(aw_store_read_snapshot(fx.store, &err), AW_OK,
                  "a writer's handle has transactions, not snapshots");
    aw_store_close(reader);
}
