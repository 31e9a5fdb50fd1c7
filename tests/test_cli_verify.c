/* test_cli_verify.c -- `auditwatch verify`: an intact index passes; a row
 * edited or deleted behind auditwatch's back with SQLite itself, or
 * evidence whose signature was forged before it was indexed, fails with
 * exit status 1 and names the first break. */
#define _GNU_SOURCE /* memmem */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/cli_world.h"
#include "tests/support/store_fixture.h"

static cli_world w;

static void cleanup(void)
{
    cw_cleanup(&w);
}

TestSuite(cli_verify, .fini = cleanup, .timeout = 120);

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define KEYS                                                                   \
    ((const char *const[]){"AUDIT_HMAC_KEY=" AW_TEST_KEY_HEX,                  \
                           "STREAMS_HMAC_KEY=" AW_TEST_KEY_HEX, NULL})
#define ENTRIES (CW_EVENTS + 2 + 1 + 2) /* + rejected, revocation, calls */

/* The row of check in verify's JSON output. */
static const cJSON *check(const cJSON *rows, const char *name)
{
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) if (strcmp(cw_str(row, "check"), name) ==
                                      0) return row;
    cr_assert_fail("no %s check", name);
    return NULL;
}

static double figure(const cJSON *row, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(row, name)->valuedouble;
}

/* Runs SQL on the index with the sqlite3 API (as a tamperer would). */
static void tamper(const char *sql)
{
    sqlite3 *db;
    char *msg = NULL;
    cr_assert_eq(sqlite3_open(w.db, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, &msg), SQLITE_OK, "%s", msg);
    cr_assert_eq(sqlite3_changes(db), 1, "%s changed %d rows", sql,
                 sqlite3_changes(db));
    sqlite3_close(db);
}

/* The first entry whose verbatim bytes hold `from`, as the store hands it
 * out (raw may be stored compressed). */
typedef struct found_entry {
    const char *from;
    int64_t rowid;
    char *raw;
    size_t len;
} found_entry;

static int find_entry(const aw_entry_row *row, void *ud)
{
    found_entry *f = ud;
    if (!memmem(row->raw, row->raw_len, f->from, strlen(f->from)))
        return 0;
    f->rowid = row->rowid;
    f->raw = malloc(row->raw_len);
    cr_assert_not_null(f->raw);
    memcpy(f->raw, row->raw, row->raw_len);
    f->len = row->raw_len;
    return 1;
}

/* Replaces from by to (same length) in the first entry holding it and
 * writes the edited bytes back verbatim, as a tamperer who knows the
 * format would. */
static void tamper_entry(const char *from, const char *to)
{
    aw_store *store = NULL;
    aw_error err = {0};
    found_entry f = {.from = from};
    cr_assert_eq(aw_store_open(w.db, AW_STORE_READONLY, &store, &err), AW_OK,
                 "%s", err.msg);
    aw_store_iter_entries(store, 0, INT64_MAX, find_entry, &f, &err);
    aw_store_close(store);
    cr_assert_not_null(f.raw, "no entry holds %s", from);
    char *at = memmem(f.raw, f.len, from, strlen(from));
    memcpy(at, to, strlen(to));
    sqlite3 *db;
    sqlite3_stmt *stmt;
    cr_assert_eq(sqlite3_open(w.db, &db), SQLITE_OK);
    cr_assert_eq(
        sqlite3_prepare_v2(db,
                           "UPDATE entries SET raw = ?1, zstd_dict = NULL "
                           "WHERE rowid = ?2",
                           -1, &stmt, NULL),
        SQLITE_OK);
    sqlite3_bind_blob(stmt, 1, f.raw, (int)f.len, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 2, f.rowid);
    cr_assert_eq(sqlite3_step(stmt), SQLITE_DONE, "%s", sqlite3_errmsg(db));
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    free(f.raw);
}

/* Event rows hold their words as numbers (terms): ev-4's decision made a
 * deny. */
#define EV4_DENIED                                                                    \
    "INSERT OR IGNORE INTO terms(term) VALUES ('deny'); UPDATE events SET "           \
    "decision_no = (SELECT term_no FROM terms WHERE term = 'deny') WHERE event_id = " \
    "'ev-4'"

Test(cli_verify, an_intact_index_verifies_every_chain_link_and_signature)
{
    cw_build(&w, true);
    cw_result r = cw_run(&w, ARGS("verify", "--db", w.db, "-f", "json"), KEYS);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    cJSON *rows = cw_json_lines(r.out);
    cr_expect_str_eq(cw_str(check(rows, "hash_chain"), "result"), "ok");
    cr_expect_eq(figure(check(rows, "hash_chain"), "checked"), ENTRIES);
    const cJSON *audit = check(rows, "audit_signatures"),
                *stream = check(rows, "stream_signatures");
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

/* An index written while events held their words as text migrates when a
 * writer opens it, and every migrated row still matches its raw entry. */
Test(cli_verify, an_index_migrated_from_text_rows_verifies_every_row)
{
    cw_build(&w, true);
    fixture_back_to_schema_3(w.db);
    aw_store *store = NULL;
    aw_error err = {0};
    cr_assert_eq(aw_store_open(w.db, 0, &store, &err), AW_OK, "%s", err.msg);
    aw_store_close(store);
    cw_result r = cw_run(&w, ARGS("verify", "--db", w.db, "-f", "json"), KEYS);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    cJSON *rows = cw_json_lines(r.out);
    const cJSON *decoded = check(rows, "decoded_rows");
    cr_expect_str_eq(cw_str(decoded, "result"), "ok");
    cr_expect_geq(figure(decoded, "checked"), CW_EVENTS, "%s", r.out);
    cJSON_Delete(rows);
    cw_result_free(&r);
}

Test(cli_verify,
     without_keys_only_the_chain_is_checked_and_signatures_are_counted)
{
    cw_build(&w, true);
    cw_result r = cw_run(&w, ARGS("verify", "--db", w.db, "-f", "json"), NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cJSON *rows = cw_json_lines(r.out);
    cr_expect_str_eq(cw_str(check(rows, "audit_signatures"), "result"),
                     "no key");
    cr_expect_eq(figure(check(rows, "audit_signatures"), "unchecked"),
                 CW_EVENTS + 2);
    cJSON_Delete(rows);
    cw_result_free(&r);
}

Test(cli_verify, detects_a_row_edited_with_sqlite)
{
    cw_build(&w, true);
    tamper_entry("\"req-4\"", "\"req-X\"");
    cw_result r = cw_run(&w, ARGS("verify", "--db", w.db, "-f", "json"), KEYS);
    cr_expect_eq(r.status, 1);
    cJSON *rows = cw_json_lines(r.out);
    cr_expect_str_eq(cw_str(check(rows, "hash_chain"), "result"), "FAILED");
    cr_expect(strstr(cw_str(check(rows, "hash_chain"), "detail"), "edited"),
              "%s", r.out);
    /* The signature over the original bytes no longer matches either. */
    cr_expect_str_eq(cw_str(check(rows, "audit_signatures"), "result"),
                     "FAILED");
    cr_expect_eq(figure(check(rows, "audit_signatures"), "failed"), 1);
    cr_expect(strstr(r.err, "FAILED") && strstr(r.err, "edited"), "%s", r.err);
    cJSON_Delete(rows);
    cw_result_free(&r);
}

Test(cli_verify, detects_a_deleted_row)
{
    cw_build(&w, true);
    tamper("DELETE FROM entries WHERE rowid = 100");
    cw_result r = cw_run(&w, ARGS("verify", "--db", w.db), NULL);
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "100"), "%s", r.err);
    cr_expect(strstr(r.out, "hash_chain") && strstr(r.out, "FAILED"), "%s",
              r.out);
    cw_result_free(&r);
}

/* A row id far past any the file could hold: named as a break, not an
 * allocation of that size. */
Test(cli_verify, a_row_renumbered_far_past_the_end_is_a_break)
{
    cw_build(&w, true);
    tamper("UPDATE entries SET rowid = 1099511627776 WHERE rowid = "
           "(SELECT max(rowid) FROM entries)");
    cw_result r = cw_run(&w, ARGS("verify", "--db", w.db), NULL);
    cr_expect_eq(r.status, 1, "%s", r.err);
    cr_expect(strstr(r.err, "FAILED") && strstr(r.err, "missing"), "%s", r.err);
    cw_result_free(&r);
}

Test(cli_verify, detects_the_newest_row_deleted)
{
    cw_build(&w, true);
    tamper(
        "DELETE FROM entries WHERE rowid = (SELECT max(rowid) FROM entries)");
    cw_result r = cw_run(&w, ARGS("verify", "--db", w.db), NULL);
    cr_expect_eq(r.status, 1, "%s", r.out);
    cw_result_free(&r);
}

Test(cli_verify, finds_a_forged_signature_that_was_indexed_without_a_key)
{
    cw_build(&w, false);
    cw_result r = cw_run(&w, ARGS("verify", "--db", w.db, "-f", "json"), KEYS);
    cr_expect_eq(r.status, 1);
    cJSON *rows = cw_json_lines(r.out);
    const cJSON *audit = check(rows, "audit_signatures");
    cr_expect_str_eq(cw_str(check(rows, "hash_chain"), "result"), "ok");
    cr_expect_str_eq(cw_str(audit, "result"), "FAILED");
    cr_expect_eq(figure(audit, "failed"), 1);
    cr_expect(strstr(cw_str(audit, "detail"), "caracal.audit.events"), "%s",
              r.out);
    cJSON_Delete(rows);
    cw_result_free(&r);
}

Test(cli_verify, an_unusable_key_is_a_usage_error_that_never_shows_the_key)
{
    cw_build(&w, true);
    char file[PATH_MAX];
    aw_test_path(w.dir, "short.key", file);
    aw_test_write_file(file, "abcdef0123\n", 0600);
    cw_result r = cw_run(
        &w, ARGS("verify", "--db", w.db, "--audit-hmac-key-file", file), NULL);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "short.key"), "%s", r.err);
    cr_expect_null(strstr(r.err, "abcdef0123"), "%s", r.err);
    cw_result_free(&r);
}

/* ---- decoded rows against their raw entries ------------------------------ */

/* The one mismatch line of table (asserting there is exactly one). */
static const cJSON *mismatch_of(const cJSON *rows, const char *table)
{
    const cJSON *row, *found = NULL;
    int n = 0;
    cJSON_ArrayForEach(row, rows)
    {
        if (strcmp(cw_str(row, "check"), "row_mismatch") == 0 &&
            strcmp(cw_str(row, "table"), table) == 0) {
            found = row;
            n++;
        }
    }
    cr_assert_eq(n, 1, "want one %s mismatch, got %d", table, n);
    return found;
}

/* Runs verify (json, with keys) after tampering; asserts exit 1, the chain
 * intact (the raw entries were not touched) and decoded_rows FAILED. */
static cJSON *verify_tampered(cw_result *r)
{
    *r = cw_run(&w, ARGS("verify", "--db", w.db, "-f", "json"), KEYS);
    cr_assert_eq(r->status, 1, "%s%s", r->out, r->err);
    cJSON *rows = cw_json_lines(r->out);
    cr_expect_str_eq(cw_str(check(rows, "hash_chain"), "result"), "ok");
    cr_expect_str_eq(cw_str(check(rows, "decoded_rows"), "result"), "FAILED");
    return rows;
}

Test(cli_verify, an_event_row_edited_from_allow_to_deny_is_named_with_its_key)
{
    cw_build(&w, true);
    tamper(EV4_DENIED);
    cw_result r;
    cJSON *rows = verify_tampered(&r);
    const cJSON *m = mismatch_of(rows, "events");
    cr_expect_str_eq(cw_str(m, "key"), "ev-4");
    cr_expect_str_eq(cw_str(m, "request_id"), "req-4");
    cr_expect(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(m, "row_id")),
              "%s", r.out);
    cr_expect_str_eq(cw_str(m, "field"), "decision");
    cr_expect_str_eq(cw_str(m, "stored"), "deny");
    cr_expect_str_eq(cw_str(m, "raw"), "allow");
    cr_expect(strstr(r.err, "events") && strstr(r.err, "ev-4"), "%s", r.err);
    cJSON_Delete(rows);
    cw_result_free(&r);
}

Test(cli_verify, a_revocation_row_moved_in_time_is_named_with_its_anchor)
{
    cw_build(&w, true);
    tamper("UPDATE revocations SET at_ns = at_ns + 3600000000000");
    cw_result r;
    cJSON *rows = verify_tampered(&r);
    const cJSON *m = mismatch_of(rows, "revocations");
    cr_expect_str_eq(cw_str(m, "key"), "authority_record:ar-1");
    cr_expect_str_eq(cw_str(m, "field"), "at");
    cr_expect_str_eq(cw_str(m, "raw"), "2026-05-21T12:00:30Z");
    cJSON_Delete(rows);
    cw_result_free(&r);
}

/* A frame that no longer decompresses is damaged evidence: verify fails
 * (exit 1) naming the rows, rather than giving up as if it could not run. */
Test(cli_verify, a_damaged_evidence_frame_fails_verification_naming_its_rows)
{
    cw_build(&w, true);
    tamper("UPDATE evidence_blocks SET frame = X'0102030405' "
           "WHERE first_rowid = 1");
    cw_result r = cw_run(&w, ARGS("verify", "--db", w.db), NULL);
    cr_expect_eq(r.status, 1, "%s", r.err);
    cr_expect(strstr(r.err, "FAILED") &&
                  strstr(r.err, "the evidence block of rows 1-"),
              "%s", r.err);
    cw_result_free(&r);
}

/* The delegation-epoch rule reads these columns with no clock involved:
 * an epoch written into a row is as much tampering as an edited time. */
Test(cli_verify, an_epoch_written_into_decoded_rows_is_named)
{
    cw_build(&w, true);
    tamper("UPDATE events SET delegation_epoch = 7 WHERE event_id = 'ev-4'");
    tamper(
        "UPDATE revocations SET epoch = 99 WHERE rowid = (SELECT min(rowid) FROM revocations)");
    cw_result r;
    cJSON *rows = verify_tampered(&r);
    const cJSON *ev = mismatch_of(rows, "events");
    cr_expect_str_eq(cw_str(ev, "key"), "ev-4");
    cr_expect_str_eq(cw_str(ev, "field"), "delegation_epoch");
    cr_expect_str_eq(cw_str(ev, "stored"), "7");
    const cJSON *rv = mismatch_of(rows, "revocations");
    cr_expect_str_eq(cw_str(rv, "field"), "epoch");
    cr_expect_str_eq(cw_str(rv, "stored"), "99");
    cJSON_Delete(rows);
    cw_result_free(&r);
}

Test(cli_verify, a_call_row_with_an_edited_status_is_named_with_its_request_id)
{
    cw_build(&w, true);
    tamper("UPDATE calls SET status = 500 WHERE request_id = 'req-5'");
    cw_result r;
    cJSON *rows = verify_tampered(&r);
    const cJSON *m = mismatch_of(rows, "calls");
    cr_expect_str_eq(cw_str(m, "key"), "req-5");
    cr_expect_str_eq(cw_str(m, "field"), "status");
    cr_expect_str_eq(cw_str(m, "stored"), "500");
    cr_expect_str_eq(cw_str(m, "raw"), "200");
    cJSON_Delete(rows);
    cw_result_free(&r);
}

Test(cli_verify, a_deleted_event_row_is_named_by_the_entry_that_held_it)
{
    cw_build(&w, true);
    tamper("DELETE FROM events WHERE event_id = 'ev-4'");
    cw_result r;
    cJSON *rows = verify_tampered(&r);
    const cJSON *m = mismatch_of(rows, "events");
    cr_expect_str_eq(cw_str(m, "key"), "ev-4");
    cr_expect(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(m, "row_id")), "%s",
              r.out);
    cr_expect(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(m, "entry_row")),
              "%s", r.out);
    cr_expect(strstr(cw_str(m, "detail"), "no events row"), "%s", r.out);
    cJSON_Delete(rows);
    cw_result_free(&r);
}

Test(cli_verify, a_deleted_revocation_row_is_named_by_its_anchor)
{
    cw_build(&w, true);
    tamper("DELETE FROM revocations");
    cw_result r;
    cJSON *rows = verify_tampered(&r);
    const cJSON *m = mismatch_of(rows, "revocations");
    cr_expect_str_eq(cw_str(m, "key"), "authority_record:ar-1");
    cJSON_Delete(rows);
    cw_result_free(&r);
}

Test(cli_verify,
     an_event_dropped_from_the_anchor_index_is_named_with_its_anchor)
{
    cw_build(&w, true);
    tamper(
        "UPDATE anchor_runs SET event_rows = (SELECT json_group_array(value) "
        "FROM json_each(event_rows) WHERE first_rowid + value != (SELECT rowid "
        "FROM events WHERE event_id = 'ev-4')) WHERE anchor_no = (SELECT "
        "anchor_no FROM anchor_names WHERE anchor_id = 'ar-1')");
    cw_result r;
    cJSON *rows = verify_tampered(&r);
    const cJSON *m = mismatch_of(rows, "anchor_runs");
    cr_expect_str_eq(cw_str(m, "key"), "authority_record:ar-1");
    cr_expect_str_eq(cw_str(m, "request_id"), "req-4");
    cJSON_Delete(rows);
    cw_result_free(&r);
}

/* A pair deleted from the request index hides the event from `trace` and
 * from the missing-evidence checks, though its row and entry are intact. */
Test(cli_verify,
     an_event_dropped_from_the_request_index_is_named_by_its_request)
{
    cw_build(&w, true);
    /* a small index holds every pair in its first tier */
    tamper("DELETE FROM request_tier_0 WHERE event_rowid = (SELECT rowid FROM "
           "events WHERE event_id = 'ev-4')");
    cw_result r;
    cJSON *rows = verify_tampered(&r);
    const cJSON *m = mismatch_of(rows, "request_tiers");
    cr_expect_str_eq(cw_str(m, "key"), "req-4");
    cr_expect_str_eq(cw_str(m, "request_id"), "req-4");
    cJSON_Delete(rows);
    cw_result_free(&r);
}

/* An edit of the file itself, below SQL: one byte of req-5's key in the
 * calls' request-id index. Every row and the chain are intact, yet `trace`
 * no longer finds the call; SQLite's own check of the file does. */
Test(cli_verify, an_index_edited_in_the_file_is_a_broken_structure)
{
    cw_build(&w, true);
    sqlite3 *db;
    sqlite3_stmt *stmt;
    cr_assert_eq(sqlite3_open(w.db, &db), SQLITE_OK);
    cr_assert_eq(
        sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL),
        SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db,
                                    "SELECT rootpage, (SELECT page_size FROM "
                                    "pragma_page_size) FROM sqlite_schema "
                                    "WHERE name = 'calls_by_request'",
                                    -1, &stmt, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_step(stmt), SQLITE_ROW);
    long page = sqlite3_column_int64(stmt, 0);
    long size = sqlite3_column_int64(stmt, 1);
    sqlite3_finalize(stmt);
    sqlite3_close(db);

    size_t len;
    char *file = aw_test_read_file(w.db, &len);
    cr_assert_not_null(file);
    cr_assert((size_t)(page * size) <= len);
    char *key = memmem(file + (page - 1) * size, (size_t)size, "req-5", 5);
    cr_assert_not_null(key, "the index's one page holds req-5");
    off_t at = (off_t)(key - file) + 4;
    free(file);
    int fd = open(w.db, O_WRONLY);
    cr_assert(fd >= 0);
    cr_assert_eq(pwrite(fd, "6", 1, at), 1);
    close(fd);

    cw_result r =
        cw_run(&w, ARGS("trace", "req-5", "--db", w.db, "-f", "json"), NULL);
    cr_expect(strstr(r.out, "call_without_audit"), "%s", r.out);
    cr_expect_null(strstr(r.out, "\"source\":\"call\""),
                   "the edit hides the call: %s", r.out);
    cw_result_free(&r);
    r = cw_run(&w, ARGS("verify", "--db", w.db, "-f", "json"), KEYS);
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    cJSON *rows = cw_json_lines(r.out);
    cr_expect_str_eq(cw_str(check(rows, "hash_chain"), "result"), "ok");
    cr_expect_str_eq(cw_str(check(rows, "decoded_rows"), "result"), "ok");
    const cJSON *structure = check(rows, "index_structure");
    cr_expect_str_eq(cw_str(structure, "result"), "FAILED");
    cr_expect(strstr(cw_str(structure, "detail"), "calls_by_request"), "%s",
              r.out);
    cJSON_Delete(rows);
    cw_result_free(&r);
}

Test(cli_verify, a_rejection_that_hides_a_decodable_event_is_a_mismatch)
{
    cw_build(&w, true);
    tamper(
        "UPDATE events SET entry_rowid = -entry_rowid WHERE event_id = 'ev-4'");
    tamper(
        "INSERT INTO rejected(entry_rowid, reason, detail) SELECT -entry_rowid, "
        "'not_json', 'hidden' FROM events WHERE event_id = 'ev-4'");
    cw_result r;
    cJSON *rows = verify_tampered(&r);
    const cJSON *m = mismatch_of(rows, "rejected");
    cr_expect_str_eq(cw_str(m, "key"), "not_json");
    cr_expect(strstr(cw_str(m, "detail"), "decodes"), "%s", r.out);
    /* The event row now points at no entry at all. */
    const cJSON *orphan = mismatch_of(rows, "events");
    cr_expect_str_eq(cw_str(orphan, "key"), "ev-4");
    cr_expect(strstr(cw_str(orphan, "detail"), "missing"), "%s", r.out);
    cJSON_Delete(rows);
    cw_result_free(&r);
}

/* ev-4 moved from events to a rejection for reason, which its signature,
 * verifying, belies: verify names the forged rejection. */
static void expect_forged_rejection(const char *reason)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "INSERT INTO rejected(entry_rowid, reason, detail) SELECT "
             "entry_rowid, '%s', 'hidden' FROM events WHERE event_id = 'ev-4'",
             reason);
    tamper(sql);
    tamper("DELETE FROM events WHERE event_id = 'ev-4'");
    cw_result r;
    cJSON *rows = verify_tampered(&r);
    const cJSON *m = mismatch_of(rows, "rejected");
    cr_expect(
        strstr(cw_str(m, "detail"), "every signature it carries verifies"),
        "%s: %s", reason, r.out);
    cJSON_Delete(rows);
    cw_result_free(&r);
}

/* A forged rejection for a signature reason: the daemon's rejections for
 * signatures are not re-decoded, so only the keys can tell. */
Test(cli_verify, a_signature_rejection_of_an_entry_that_verifies_is_a_mismatch)
{
    cw_build(&w, true);
    expect_forged_rejection("signature_invalid");
}

/* Earlier versions refused more entries as ambiguous_signed_field (any
 * newline in a value, then any line holding '='): such a rejection of an
 * entry that now verifies was theirs, not a forgery; on an entry with no
 * newline at all it was never anyone's. */
Test(cli_verify, an_ambiguous_rejection_an_earlier_version_made_is_no_mismatch)
{
    cw_build(&w, true);
    tamper("INSERT INTO rejected(entry_rowid, reason, detail) SELECT "
           "entry_rowid, 'ambiguous_signed_field', 'earlier rule' FROM "
           "revocations WHERE anchor_id = 'ar-1'");
    tamper("DELETE FROM revocations WHERE anchor_id = 'ar-1'");
    cw_result r = cw_run(&w, ARGS("verify", "--db", w.db, "-f", "json"), KEYS);
    cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
    cw_result_free(&r);

    expect_forged_rejection("ambiguous_signed_field");
}

/* The truncation mark is outside the chain and excuses an entry from the
 * row checks: set on an entry that was never cut, it hides an edit. */
Test(cli_verify, a_forged_truncation_mark_is_a_mismatch)
{
    cw_build(&w, true);
    tamper("UPDATE entries SET orig_size = 2000000 WHERE rowid = (SELECT "
           "entry_rowid FROM events WHERE event_id = 'ev-4')");
    tamper(EV4_DENIED);
    cw_result r;
    cJSON *rows = verify_tampered(&r);
    const cJSON *m = mismatch_of(rows, "entries");
    cr_expect(strstr(cw_str(m, "detail"), "yet it was not cut"), "%s", r.out);
    cJSON_Delete(rows);
    cw_result_free(&r);
}

Test(cli_verify,
     rows_indexed_without_a_key_are_not_mismatches_for_being_unsigned)
{
    cw_build(&w, false);
    cw_result r = cw_run(&w, ARGS("verify", "--db", w.db, "-f", "json"), KEYS);
    cJSON *rows = cw_json_lines(r.out);
    /* The forged entry fails its signature check; no row is a mismatch. */
    cr_expect_str_eq(cw_str(check(rows, "audit_signatures"), "result"),
                     "FAILED");
    cr_expect_str_eq(cw_str(check(rows, "decoded_rows"), "result"), "ok", "%s",
                     r.out);
    cJSON_Delete(rows);
    cw_result_free(&r);
}

Test(cli_verify, a_row_marked_signed_whose_signature_fails_is_a_mismatch)
{
    cw_build(&w, false);
    tamper("UPDATE events SET is_signed = 1 WHERE event_id = 'ev-bad'");
    cw_result r = cw_run(&w, ARGS("verify", "--db", w.db, "-f", "json"), KEYS);
    cr_expect_eq(r.status, 1);
    cJSON *rows = cw_json_lines(r.out);
    const cJSON *m = mismatch_of(rows, "events");
    cr_expect_str_eq(cw_str(m, "key"), "ev-bad");
    cr_expect_str_eq(cw_str(m, "field"), "is_signed");
    cJSON_Delete(rows);
    cw_result_free(&r);
}

Test(cli_verify, an_untouched_index_checks_every_decoded_row)
{
    cw_build(&w, true);
    cw_result r = cw_run(&w, ARGS("verify", "--db", w.db, "-f", "json"), KEYS);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    cJSON *rows = cw_json_lines(r.out);
    const cJSON *decoded = check(rows, "decoded_rows");
    cr_expect_str_eq(cw_str(decoded, "result"), "ok");
    /* events, the revocation, two calls, two rejections */
    cr_expect_eq(figure(decoded, "checked"), CW_EVENTS + 1 + 2 + 2);
    cr_expect_eq(figure(decoded, "unchecked"), 0);
    cJSON_Delete(rows);
    cw_result_free(&r);
}

/* ---- --chain-head -------------------------------------------------------- */

/* The index's own chain tip as "hex@count". */
static void chain_tip(char out[96])
{
    sqlite3 *db;
    sqlite3_stmt *stmt;
    cr_assert_eq(sqlite3_open(w.db, &db), SQLITE_OK);
    cr_assert_eq(
        sqlite3_prepare_v2(db,
                           "SELECT lower(hex(head)) || '@' || last_rowid "
                           "FROM chain_tip",
                           -1, &stmt, NULL),
        SQLITE_OK);
    cr_assert_eq(sqlite3_step(stmt), SQLITE_ROW);
    snprintf(out, 96, "%s", (const char *)sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    sqlite3_close(db);
}

Test(cli_verify, chain_head_of_the_index_itself_verifies)
{
    cw_build(&w, true);
    char head[96];
    chain_tip(head);
    cw_result r = cw_run(
        &w, ARGS("verify", "--db", w.db, "--chain-head", head, "-f", "json"),
        NULL);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    cJSON *rows = cw_json_lines(r.out);
    cr_expect_str_eq(cw_str(check(rows, "chain_head"), "result"), "ok");
    cJSON_Delete(rows);
    cw_result_free(&r);
}

Test(cli_verify, a_chain_head_the_index_does_not_reach_fails)
{
    cw_build(&w, true);
    char head[96];
    chain_tip(head);
    head[0] = head[0] == '0' ? '1' : '0';
    cw_result r = cw_run(
        &w, ARGS("verify", "--db", w.db, "--chain-head", head, "-f", "json"),
        NULL);
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    cJSON *rows = cw_json_lines(r.out);
    cr_expect_str_eq(cw_str(check(rows, "chain_head"), "result"), "FAILED");
    cr_expect_str_eq(cw_str(check(rows, "hash_chain"), "result"), "ok");
    cr_expect(strstr(r.err, "rewritten"), "%s", r.err);
    cJSON_Delete(rows);
    cw_result_free(&r);

    /* More entries than the index holds: a count it never reached. */
    char *at = strchr(head, '@');
    snprintf(at, 32, "@%d", ENTRIES + 1);
    r = cw_run(&w, ARGS("verify", "--db", w.db, "--chain-head", head), NULL);
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    cw_result_free(&r);
}

/* Runs verify (JSON output) to a pass: check `name` is ok, and the hash
 * chain covered `entries` entries. */
static void expect_verified(const char *const *args, const char *const *env,
                            const char *name, double entries)
{
    cw_result r = cw_run(&w, args, env);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    cJSON *rows = cw_json_lines(r.out);
    cr_expect_str_eq(cw_str(check(rows, name), "result"), "ok");
    cr_expect_eq(figure(check(rows, "hash_chain"), "checked"), entries);
    cJSON_Delete(rows);
    cw_result_free(&r);
}

Test(cli_verify, an_index_that_grew_since_the_head_verifies_against_its_prefix)
{
    cw_build(&w, true);
    char head[96];
    chain_tip(head);
    cw_add_exchange(&w, "ev-later", "req-later", CW_NS(3000000),
                    CW_T0_MS + 3000000);
    expect_verified(
        ARGS("verify", "--db", w.db, "--chain-head", head, "-f", "json"), NULL,
        "chain_head", ENTRIES + 1);
}

Test(cli_verify, a_malformed_chain_head_is_a_usage_error)
{
    cw_build(&w, true);
    cw_result r = cw_run(
        &w, ARGS("verify", "--db", w.db, "--chain-head", "abc@12"), NULL);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "HASH@COUNT"), "%s", r.err);
    cw_result_free(&r);
}

Test(cli_verify, csv_carries_mismatches_and_summary_under_one_header)
{
    cw_build(&w, true);
    tamper(EV4_DENIED);
    cw_result r = cw_run(&w, ARGS("verify", "--db", w.db, "-f", "csv"), KEYS);
    cr_expect_eq(r.status, 1);
    const char *header =
        "check,result,table,row_id,key,request_id,entry_row,entry_id,field,"
        "stored,raw,checked,failed,known_rejected,unchecked,detail\r\n";
    cr_expect(strncmp(r.out, header, strlen(header)) == 0, "%s", r.out);
    cr_expect_null(strstr(r.out + 1, "\ncheck,"), "%s", r.out);
    cr_expect(strstr(r.out, "\r\nrow_mismatch,,events,"), "%s", r.out);
    cr_expect(strstr(r.out, "\r\ndecoded_rows,FAILED,"), "%s", r.out);
    cw_result_free(&r);
}

Test(cli_verify, a_deleted_call_row_is_named_by_its_request_id)
{
    cw_build(&w, true);
    tamper("DELETE FROM calls WHERE request_id = 'req-5'");
    cw_result r;
    cJSON *rows = verify_tampered(&r);
    const cJSON *m = mismatch_of(rows, "calls");
    cr_expect_str_eq(cw_str(m, "key"), "req-5");
    cr_expect(strstr(cw_str(m, "detail"), "no calls row"), "%s", r.out);
    cJSON_Delete(rows);
    cw_result_free(&r);
}

Test(cli_verify, shows_progress_of_the_row_check_on_stderr_when_asked)
{
    cw_build(&w, true);
    cw_result r = cw_run(&w, ARGS("verify", "--db", w.db, "--progress"), NULL);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.err, "verify: decoded rows"), "%s", r.err);
    cr_expect_null(strstr(r.out, "verify: decoded rows"), "%s", r.out);
    cw_result_free(&r);
}

/* The last nanosecond an index can hold is a time like any other: verify
 * seeks the event's anchor uses at it without overflowing, and trace
 * shows it to the nanosecond. */
Test(cli_verify, an_event_at_the_last_nanosecond_verifies)
{
    cw_build(&w, true);
    cw_add_exchange(&w, "ev-last", "req-last", INT64_MAX, CW_T0_MS + 3000000);
    expect_verified(ARGS("verify", "--db", w.db, "-f", "json"), KEYS,
                    "hash_chain", ENTRIES + 1);
    cw_result r =
        cw_run(&w, ARGS("trace", "--db", w.db, "req-last", "-f", "json"), KEYS);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_expect(
        strstr(r.out, "\"occurred_at\":\"2262-04-11T23:47:16.854775807Z\""),
        "%s", r.out);
    cw_result_free(&r);
}
