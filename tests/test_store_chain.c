/* test_store_chain.c -- the hash chain over raw entries: `verify` must
 * notice an edited row, a deleted row and a deleted last row, and must not
 * cry wolf when two writers take turns. Tampering is done with the SQLite
 * API directly, as an attacker with the file would. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "support/store_fixture.h"

static store_fixture fx;
static aw_error err;

static void add_entries(aw_store *store, int first, int n)
{
    cr_assert_eq(aw_store_begin(store, &err), AW_OK, "begin: %s", err.msg);
    for (int i = first; i < first + n; i++) {
        char id[32];
        snprintf(id, sizeof id, "%d-0", 1000 + i);
        aw_raw_entry *entry = fixture_entry("caracal.audit.events", id, id);
        int64_t rowid;
        aw_put_result result;
        cr_assert_eq(aw_store_put_entry(store, entry, &rowid, &result, &err),
                     AW_OK, "%s", err.msg);
        aw_raw_entry_free(entry);
    }
    cr_assert_eq(aw_store_commit(store, &err), AW_OK, "commit: %s", err.msg);
}

static void setup(void)
{
    memset(&err, 0, sizeof err);
    store_fixture_open(&fx);
    add_entries(fx.store, 1, 5);
}

static void teardown(void)
{
    store_fixture_close(&fx);
}

TestSuite(store_chain, .init = setup, .fini = teardown);

static aw_chain_report verify(void)
{
    aw_chain_report report;
    cr_assert_eq(aw_store_verify_chain(fx.store, &report, NULL, NULL, &err),
                 AW_OK, "verify: %s", err.msg);
    return report;
}

static void tamper(const char *sql)
{
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(fx.path, &db), SQLITE_OK);
    char *msg = NULL;
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, &msg), SQLITE_OK, "%s",
                 msg ? msg : "");
    cr_assert_gt(sqlite3_changes(db), 0, "tampering changed nothing");
    sqlite3_close(db);
}

Test(store_chain, intact_index_verifies)
{
    aw_chain_report report = verify();
    cr_expect(report.ok, "%s", report.what);
    cr_expect_eq(report.checked, 5);
}

Test(store_chain, edited_raw_bytes_are_caught_at_their_row)
{
    tamper("UPDATE entries SET raw = raw || x'00' WHERE rowid = 3");
    aw_chain_report report = verify();
    cr_expect_not(report.ok);
    cr_expect_eq(report.first_bad_rowid, 3);
    cr_expect_str_eq(report.what, "row 3 edited");
}

/* The five entries share one evidence block, which keeps their chain
 * value: the edit is located to the block's rows. */
Test(store_chain, edited_entry_id_is_caught_at_its_block)
{
    tamper("UPDATE entries SET id_seq = 7 WHERE rowid = 2");
    aw_chain_report report = verify();
    cr_expect_not(report.ok);
    cr_expect_eq(report.first_bad_rowid, 1);
    cr_expect_str_eq(report.what,
                     "rows 1-5 edited (their evidence block does not chain)");
}

Test(store_chain, deleted_row_is_caught)
{
    tamper("DELETE FROM entries WHERE rowid = 2");
    aw_chain_report report = verify();
    cr_expect_not(report.ok);
    cr_expect_eq(report.first_bad_rowid, 2);
    cr_expect_str_eq(report.what, "row 2 missing");
    cr_expect_eq(report.checked, 1);
}

Test(store_chain, deleted_last_rows_are_caught)
{
    tamper("DELETE FROM entries WHERE rowid >= 4");
    aw_chain_report report = verify();
    cr_expect_not(report.ok);
    cr_expect_eq(report.first_bad_rowid, 4);
    cr_expect_str_eq(report.what, "rows 4-5 missing");
}

Test(store_chain, deleted_last_row_stays_visible_after_more_ingest)
{
    tamper("DELETE FROM entries WHERE rowid = 5");
    add_entries(fx.store, 6, 2);
    aw_chain_report report = verify();
    cr_expect_not(report.ok);
    cr_expect_eq(report.first_bad_rowid, 5);
}

Test(store_chain, two_writers_taking_turns_extend_one_chain)
{
    aw_store *other = NULL;
    cr_assert_eq(aw_store_open(fx.path, 0, &other, &err), AW_OK);
    add_entries(other, 6, 3);
    add_entries(fx.store, 9, 2);
    aw_store_close(other);
    aw_chain_report report = verify();
    cr_expect(report.ok, "%s", report.what);
    cr_expect_eq(report.checked, 10);
}
