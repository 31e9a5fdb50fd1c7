/* test_cli_verify.c -- `auditwatch verify`: an intact index passes; a row
 * edited or deleted behind auditwatch's back with SQLite itself, or
 * evidence whose signature was forged before it was indexed, fails with
 * exit status 1 and names the first break. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <string.h>

#include "tests/support/cli_world.h"

static cli_world w;

static void cleanup(void) { cw_cleanup(&w); }

TestSuite(cli_verify, .fini = cleanup, .timeout = 120);

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define KEYS ((const char *const[]){"AUDIT_HMAC_KEY=" AW_TEST_KEY_HEX, \
                                    "STREAMS_HMAC_KEY=" AW_TEST_KEY_HEX, NULL})
#define ENTRIES (CW_EVENTS + 2 + 1 + 2)   /* + rejected, revocation, calls */

/* The row of check in verify's JSON output. */
static const cJSON *check(const cJSON *rows, const char *name) {
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) if (strcmp(cw_str(row, "check"), name) == 0) return row;
    cr_assert_fail("no %s check", name);
    return NULL;
}

static double figure(const cJSON *row, const char *name) {
    return cJSON_GetObjectItemCaseSensitive(row, name)->valuedouble;
}

/* Runs SQL on the index with the sqlite3 API (as a tamperer would). */
static void tamper(const char *sql) {
    sqlite3 *db;
    char *msg = NULL;
    cr_assert_eq(sqlite3_open(w.db, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, &msg), SQLITE_OK, "%s", msg);
    cr_assert_eq(sqlite3_changes(db), 1, "%s changed %d rows", sql, sqlite3_changes(db));
    sqlite3_close(db);
}

Test(cli_verify, an_intact_index_verifies_every_chain_link_and_signature) {
    cw_build(&w, true);
    cw_result r = cw_run(&w, ARGS("verify", "--db", w.db, "-f", "json"), KEYS);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    cJSON *rows = cw_json_lines(r.out);
    cr_expect_str_eq(cw_str(check(rows, "hash_chain"), "result"), "ok");
    cr_expect_eq(figure(check(rows, "hash_chain"), "checked"), ENTRIES);
    const cJSON *audit = check(rows, "audit_signatures"), *stream = check(rows, "stream_signatures");
    cr_expect_str_eq(cw_str(audit, "result"), "ok");
    /* Every audit entry carries `sig`; the forged one was rejected at
     * ingest (and alerted on), so it is known, not a new break. */
    cr_expect_eq(figure(audit, "checked"), CW_EVENTS + 1);
    cr_expect_eq(figure(audit, "known_rejected"), 1);
    cr_expect_str_eq(cw_str(stream, "result"), "ok");
    cr_expect_eq(figure(stream, "checked"), 3);
    cJSON_Delete(rows);
    cw_result_free(&r);
}

Test(cli_verify, without_keys_only_the_chain_is_checked_and_signatures_are_counted) {
    cw_build(&w, true);
    cw_result r = cw_run(&w, ARGS("verify", "--db", w.db, "-f", "json"), NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cJSON *rows = cw_json_lines(r.out);
    cr_expect_str_eq(cw_str(check(rows, "audit_signatures"), "result"), "no key");
    cr_expect_eq(figure(check(rows, "audit_signatures"), "unchecked"), CW_EVENTS + 2);
    cJSON_Delete(rows);
    cw_result_free(&r);
}

Test(cli_verify, detects_a_row_edited_with_sqlite) {
    cw_build(&w, true);
    tamper("UPDATE entries SET raw = replace(raw, CAST('\"req-4\"' AS BLOB), "
           "CAST('\"req-X\"' AS BLOB)) WHERE rowid = (SELECT min(rowid) FROM entries "
           "WHERE instr(raw, CAST('\"req-4\"' AS BLOB)) > 0)");
    cw_result r = cw_run(&w, ARGS("verify", "--db", w.db, "-f", "json"), KEYS);
    cr_expect_eq(r.status, 1);
    cJSON *rows = cw_json_lines(r.out);
    cr_expect_str_eq(cw_str(check(rows, "hash_chain"), "result"), "FAILED");
    cr_expect(strstr(cw_str(check(rows, "hash_chain"), "detail"), "edited"), "%s", r.out);
    /* The signature over the original bytes no longer matches either. */
    cr_expect_str_eq(cw_str(check(rows, "audit_signatures"), "result"), "FAILED");
    cr_expect_eq(figure(check(rows, "audit_signatures"), "failed"), 1);
    cr_expect(strstr(r.err, "FAILED") && strstr(r.err, "edited"), "%s", r.err);
    cJSON_Delete(rows);
    cw_result_free(&r);
}

Test(cli_verify, detects_a_deleted_row) {
    cw_build(&w, true);
    tamper("DELETE FROM entries WHERE rowid = 100");
    cw_result r = cw_run(&w, ARGS("verify", "--db", w.db), NULL);
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "100"), "%s", r.err);
    cr_expect(strstr(r.out, "hash_chain") && strstr(r.out, "FAILED"), "%s", r.out);
    cw_result_free(&r);
}

Test(cli_verify, detects_the_newest_row_deleted) {
    cw_build(&w, true);
    tamper("DELETE FROM entries WHERE rowid = (SELECT max(rowid) FROM entries)");
    cw_result r = cw_run(&w, ARGS("verify", "--db", w.db), NULL);
    cr_expect_eq(r.status, 1, "%s", r.out);
    cw_result_free(&r);
}

Test(cli_verify, finds_a_forged_signature_that_was_indexed_without_a_key) {
    cw_build(&w, false);
    cw_result r = cw_run(&w, ARGS("verify", "--db", w.db, "-f", "json"), KEYS);
    cr_expect_eq(r.status, 1);
    cJSON *rows = cw_json_lines(r.out);
    const cJSON *audit = check(rows, "audit_signatures");
    cr_expect_str_eq(cw_str(check(rows, "hash_chain"), "result"), "ok");
    cr_expect_str_eq(cw_str(audit, "result"), "FAILED");
    cr_expect_eq(figure(audit, "failed"), 1);
    cr_expect(strstr(cw_str(audit, "detail"), "caracal.audit.events"), "%s", r.out);
    cJSON_Delete(rows);
    cw_result_free(&r);
}

Test(cli_verify, an_unusable_key_is_a_usage_error_that_never_shows_the_key) {
    cw_build(&w, true);
    char file[PATH_MAX];
    aw_test_path(w.dir, "short.key", file);
    aw_test_write_file(file, "abcdef0123\n", 0600);
    cw_result r = cw_run(&w, ARGS("verify", "--db", w.db, "--audit-hmac-key-file", file), NULL);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "short.key"), "%s", r.err);
    cr_expect_null(strstr(r.err, "abcdef0123"), "%s", r.err);
    cw_result_free(&r);
}
