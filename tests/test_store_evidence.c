/* test_store_evidence.c -- raw entries stored in evidence blocks (zstd
 * frames of up to 256 consecutive rows, with a dictionary trained on the
 * traffic, or without one for an index's first entries) are handed back
 * byte for byte, keep verifying after a new dictionary, across commits,
 * rollbacks and writers taking turns, name a damaged block or dictionary
 * in `verify`, and an index written before compression (schema 1) opens,
 * verifies and exports the same bytes after its migration.
 *
 * The entries look like Caracal's (JSON audit events with random ids, a
 * signature), because that is what the dictionary is trained on; how they
 * are stored is looked at with SQLite directly, as `verify` cannot tell. */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/store_fixture.h"
#include "tests/support/cli_world.h"

/* Rows per evidence block, and the bytes that close one. */
#define BLOCK_ROWS  256
#define BLOCK_BYTES (512 * 1024)
/* More than the entries the first dictionary is trained on (5,000). */
#define BEFORE_DICT 5000
#define ENTRIES     6000

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

TestSuite(store_evidence, .init = setup, .fini = teardown, .timeout = 120);

/* Entry i of a traffic shape (0 or 1): the same i and shape give the same
 * bytes. */
static aw_raw_entry *traffic_entry(int i, int shape)
{
    uint64_t x = (uint64_t)i * 6364136223846793005ULL + 1442695040888963407ULL;
    char uuid[3][40], sig[65], data[1500], id[32];
    for (int u = 0; u < 3; u++) {
        x = x * 6364136223846793005ULL + 1;
        snprintf(uuid[u], sizeof uuid[u],
                 "%08" PRIx64 "-%04" PRIx64 "-4%03" PRIx64 "-a%03" PRIx64
                 "-%012" PRIx64,
                 x >> 32, (x >> 16) & 0xffff, (x >> 4) & 0xfff,
                 (x >> 20) & 0xfff, (uint64_t)((x * 31) & 0xffffffffffffULL));
    }
    for (int k = 0; k < 64; k++) {
        x = x * 6364136223846793005ULL + 1;
        sig[k] = "0123456789abcdef"[x >> 60];
    }
    sig[64] = 0;
    if (shape == 0)
        snprintf(
            data, sizeof data,
            "{\"id\":\"%s\",\"zone_id\":\"zone-%d\",\"event_type\":\"token_exchange\","
            "\"request_id\":\"%s\",\"decision\":\"%s\",\"evaluation_status\":\"ok\","
            "\"application_id\":\"app-%d\",\"resource\":\"https://api.example.test/v1/"
            "items/%d\",\"session_id\":\"%s\",\"occurred_at\":\"2026-12-01T10:%02d:%02d."
            "%06dZ\",\"metadata\":{\"delegation_graph_epoch\":%d,\"policy\":\"default-"
            "allow\",\"scopes\":[\"read\",\"write\"]},\"determining_policies\":[\"pol-"
            "%d\"],\"diagnostics\":{\"latency_ms\":%d,\"cache\":\"hit\"}}",
            uuid[0], i % 4, uuid[1], i % 5 ? "allow" : "deny", i % 8, i % 997,
            uuid[2], (i / 60) % 60, i % 60, (i * 7919) % 1000000, i / 100,
            i % 13, i % 250);
    else
        snprintf(
            data, sizeof data,
            "{\"kind\":\"revoke\",\"edge\":\"%s\",\"subject\":\"%s\",\"at\":%d,"
            "\"because\":\"operator request %d\",\"trace\":\"%s\"}",
            uuid[0], uuid[1], 1700000000 + i, i % 17, uuid[2]);
    snprintf(id, sizeof id, "%d-%d", 1000000 + i / 4, i % 4);
    aw_field fields[2] = {{{"data", 4}, {data, strlen(data)}},
                          {{"sig", 3}, {sig, 64}}};
    const char *stream = "caracal.audit.events";
    aw_raw_entry *entry = NULL;
    cr_assert_eq(aw_raw_entry_new((aw_bytes){stream, strlen(stream)},
                                  (aw_bytes){id, strlen(id)}, fields, 2, &entry,
                                  &err),
                 AW_OK, "%s", err.msg);
    return entry;
}

/* Stores entries [first, first + n) of shape, 1,000 per transaction, or
 * every one in the open transaction when in_tx. */
static void put_traffic(aw_store *store, int first, int n, int shape,
                        bool in_tx)
{
    for (int i = first; i < first + n; i++) {
        if (!in_tx && (i - first) % 1000 == 0)
            cr_assert_eq(aw_store_begin(store, &err), AW_OK, "begin: %s",
                         err.msg);
        aw_raw_entry *entry = traffic_entry(i, shape);
        int64_t rowid;
        aw_put_result result;
        cr_assert_eq(aw_store_put_entry(store, entry, &rowid, &result, &err),
                     AW_OK, "put %d: %s", i, err.msg);
        cr_assert_eq(result, AW_PUT_INSERTED);
        aw_raw_entry_free(entry);
        if (!in_tx && ((i - first) % 1000 == 999 || i == first + n - 1))
            cr_assert_eq(aw_store_commit(store, &err), AW_OK, "commit: %s",
                         err.msg);
    }
}

static void tamper(const char *sql)
{
    sqlite3 *db;
    char *msg = NULL;
    cr_assert_eq(sqlite3_open(fx.path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, &msg), SQLITE_OK, "%s",
                 msg ? msg : "");
    cr_assert_gt(sqlite3_changes(db), 0, "tampering changed nothing");
    sqlite3_close(db);
}

/* Rewrites the blob column of the row whose key column is key, after
 * edit(bytes, len) changed it in place. */
static void edit_blob(const char *table, const char *column,
                      const char *key_column, int64_t key,
                      void (*edit)(unsigned char *bytes, size_t len))
{
    sqlite3 *db;
    sqlite3_stmt *stmt;
    char sql[256];
    cr_assert_eq(sqlite3_open(fx.path, &db), SQLITE_OK);
    snprintf(sql, sizeof sql, "SELECT %s FROM %s WHERE %s = ?1", column, table,
             key_column);
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    sqlite3_bind_int64(stmt, 1, key);
    cr_assert_eq(sqlite3_step(stmt), SQLITE_ROW);
    size_t len = (size_t)sqlite3_column_bytes(stmt, 0);
    unsigned char *bytes = malloc(len);
    cr_assert_not_null(bytes);
    memcpy(bytes, sqlite3_column_blob(stmt, 0), len);
    sqlite3_finalize(stmt);
    edit(bytes, len);
    snprintf(sql, sizeof sql, "UPDATE %s SET %s = ?1 WHERE %s = ?2", table,
             column, key_column);
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    sqlite3_bind_blob(stmt, 1, bytes, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 2, key);
    cr_assert_eq(sqlite3_step(stmt), SQLITE_DONE);
    cr_assert_eq(sqlite3_changes(db), 1);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    free(bytes);
}

/* Rows held by evidence blocks made with dictionary dict_no. */
static int64_t rows_with_dict(const char *path, int dict_no)
{
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT coalesce(sum(last_rowid - first_rowid + 1), 0) FROM "
             "evidence_blocks WHERE zstd_dict = %d",
             dict_no);
    return aw_test_sql_int(path, sql);
}

/* The first row of the block that holds row rowid. */
static int64_t block_of(int64_t rowid)
{
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT max(first_rowid) FROM evidence_blocks WHERE "
             "first_rowid <= %lld",
             (long long)rowid);
    return aw_test_sql_int(fx.path, sql);
}

static void flip_middle_byte(unsigned char *bytes, size_t len)
{
    bytes[len / 2] ^= 0xff;
}

/* Everything after the magic number and dictionary id. */
static void scramble_after_header(unsigned char *bytes, size_t len)
{
    for (size_t i = 8; i < len; i++)
        bytes[i] ^= 0x5a;
}

/* Checks every entry read back against the bytes it was stored from:
 * row r holds entry first + r - 1, of shape shape_of(r). */
typedef struct expect {
    int (*shape_of)(int64_t rowid);
    int64_t seen;
} expect;

static int check_entry(const aw_entry_row *row, void *ud)
{
    expect *e = ud;
    aw_raw_entry *entry =
        traffic_entry((int)row->rowid - 1, e->shape_of(row->rowid));
    aw_buf packed = {0};
    cr_assert_eq(aw_raw_entry_pack(entry, &packed, &err), AW_OK);
    cr_assert_eq(row->raw_len, packed.len,
                 "row %" PRId64 ": %zu bytes, stored %zu", row->rowid,
                 row->raw_len, packed.len);
    cr_assert(memcmp(row->raw, packed.ptr, packed.len) == 0,
              "row %" PRId64 " differs", row->rowid);
    aw_buf_free(&packed);
    aw_raw_entry_free(entry);
    e->seen++;
    return 0;
}

static int one_shape(int64_t rowid)
{
    (void)rowid;
    return 0;
}

static void expect_all_verbatim(aw_store *store, int (*shape_of)(int64_t),
                                int64_t n)
{
    expect e = {.shape_of = shape_of};
    cr_assert_eq(
        aw_store_iter_entries(store, 0, INT64_MAX, check_entry, &e, &err),
        AW_OK, "%s", err.msg);
    cr_expect_eq(e.seen, n);
    aw_chain_report report;
    cr_assert_eq(aw_store_verify_chain(store, &report, NULL, NULL, &err), AW_OK,
                 "%s", err.msg);
    cr_expect(report.ok, "%s", report.what);
    cr_expect_eq(report.checked, n);
}

Test(store_evidence, entries_come_back_verbatim_with_and_without_a_dictionary)
{
    put_traffic(fx.store, 0, ENTRIES, 0, false);
    cr_expect_eq(aw_test_sql_int(fx.path,
                                 "SELECT count(*) FROM entries WHERE "
                                 "length(raw) = 0 AND length(chain) = 0"),
                 ENTRIES, "every entry is kept by a block");
    cr_expect_eq(aw_test_sql_int(fx.path,
                                 "SELECT count(*) FROM evidence_blocks WHERE "
                                 "last_rowid - first_rowid >= 256"),
                 0, "no block holds more than 256 rows");
    /* The block open when the dictionary was trained is written with it. */
    int64_t without = rows_with_dict(fx.path, 0);
    cr_expect(without > BEFORE_DICT - BLOCK_ROWS && without <= BEFORE_DICT,
              "%" PRId64 " rows compressed without a dictionary", without);
    cr_expect_eq(rows_with_dict(fx.path, 1), ENTRIES - without,
                 "then with the dictionary trained on them");
    int64_t verbatim = 0;
    for (int i = (int)without; i < ENTRIES; i++) {
        aw_raw_entry *entry = traffic_entry(i, 0);
        aw_buf packed = {0};
        aw_raw_entry_pack(entry, &packed, &err);
        verbatim += (int64_t)packed.len;
        aw_buf_free(&packed);
        aw_raw_entry_free(entry);
    }
    int64_t stored =
        aw_test_sql_int(fx.path, "SELECT sum(length(frame)) FROM "
                                 "evidence_blocks WHERE zstd_dict = 1");
    cr_expect_lt(stored * 4, verbatim,
                 "stored %" PRId64 " of %" PRId64 " bytes", stored, verbatim);
    expect_all_verbatim(fx.store, one_shape, ENTRIES);

    /* A fresh handle (no dictionary loaded) reads one row by its number. */
    aw_store *reader = NULL;
    cr_assert_eq(aw_store_open(fx.path, AW_STORE_READONLY, &reader, &err),
                 AW_OK);
    expect e = {.shape_of = one_shape};
    cr_assert_eq(aw_store_get_entry(reader, ENTRIES, check_entry, &e, &err),
                 AW_OK, "%s", err.msg);
    cr_expect_eq(e.seen, 1);
    aw_store_close(reader);
}

static int second_shape_after_6000(int64_t rowid)
{
    return rowid > ENTRIES;
}

Test(store_evidence, old_rows_stay_readable_after_a_new_dictionary)
{
    put_traffic(fx.store, 0, ENTRIES, 0, false);
    put_traffic(fx.store, ENTRIES, BEFORE_DICT, 1, false);
    cr_assert_eq(aw_store_begin(fx.store, &err), AW_OK);
    cr_assert_eq(aw_store_train_dictionary(fx.store, &err), AW_OK, "%s",
                 err.msg);
    put_traffic(fx.store, ENTRIES + BEFORE_DICT, 1000, 1, true);
    cr_assert_eq(aw_store_commit(fx.store, &err), AW_OK);
    /* The block left open by the last commit is rewritten with it too. */
    int64_t with_new = rows_with_dict(fx.path, 2);
    cr_expect(with_new >= 1000 && with_new < 1000 + BLOCK_ROWS, "%" PRId64,
              with_new);
    cr_expect_eq(rows_with_dict(fx.path, 0) + rows_with_dict(fx.path, 1),
                 ENTRIES + BEFORE_DICT + 1000 - with_new);
    int64_t total = ENTRIES + BEFORE_DICT + 1000;
    expect_all_verbatim(fx.store, second_shape_after_6000, total);
    aw_store_close(fx.store);
    cr_assert_eq(aw_store_open(fx.path, AW_STORE_READONLY, &fx.store, &err),
                 AW_OK);
    expect_all_verbatim(fx.store, second_shape_after_6000, total);
}

Test(store_evidence, a_dictionary_rolled_back_with_its_transaction_is_forgotten)
{
    put_traffic(fx.store, 0, ENTRIES, 0, false);
    /* Dictionary 2, trained on the first shape, and a row read with it:
     * then the transaction is rolled back. */
    cr_assert_eq(aw_store_begin(fx.store, &err), AW_OK);
    cr_assert_eq(aw_store_train_dictionary(fx.store, &err), AW_OK, "%s",
                 err.msg);
    put_traffic(fx.store, ENTRIES, 10, 1, true);
    expect e = {.shape_of = second_shape_after_6000};
    cr_assert_eq(
        aw_store_get_entry(fx.store, ENTRIES + 1, check_entry, &e, &err),
        AW_OK);
    aw_store_rollback(fx.store);
    /* Another dictionary 2, trained on the second shape. */
    put_traffic(fx.store, ENTRIES, BEFORE_DICT, 1, false);
    cr_assert_eq(aw_store_begin(fx.store, &err), AW_OK);
    cr_assert_eq(aw_store_train_dictionary(fx.store, &err), AW_OK, "%s",
                 err.msg);
    put_traffic(fx.store, ENTRIES + BEFORE_DICT, 500, 1, true);
    cr_assert_eq(aw_store_commit(fx.store, &err), AW_OK);
    int64_t with_new = rows_with_dict(fx.path, 2);
    cr_expect(with_new >= 500 && with_new < 500 + BLOCK_ROWS, "%" PRId64,
              with_new);
    expect_all_verbatim(fx.store, second_shape_after_6000,
                        ENTRIES + BEFORE_DICT + 500);
}

Test(store_evidence,
     a_second_writer_compresses_with_the_dictionary_the_first_trained)
{
    aw_store *other = NULL;
    cr_assert_eq(aw_store_open(fx.path, 0, &other, &err), AW_OK, "%s", err.msg);
    put_traffic(fx.store, 0, ENTRIES, 0, false);
    put_traffic(other, ENTRIES, 1000, 0, false);
    aw_store_close(other);
    cr_expect_eq(
        aw_test_sql_int(fx.path, "SELECT count(*) FROM evidence_dicts"), 1,
        "the second writer trained a dictionary of its own");
    cr_expect_eq(aw_test_sql_int(fx.path,
                                 "SELECT count(*) FROM evidence_blocks WHERE "
                                 "first_rowid > 6000 AND zstd_dict <> 1"),
                 0, "the second writer's blocks use the first's dictionary");
    cr_expect_eq(aw_test_sql_int(fx.path,
                                 "SELECT count(*) FROM evidence_blocks WHERE "
                                 "first_rowid <= 6000 AND last_rowid > 6000"),
                 0, "the second writer starts a block of its own");
    expect_all_verbatim(fx.store, one_shape, ENTRIES + 1000);
    /* The first writer, back, does not continue its old block either. */
    put_traffic(fx.store, ENTRIES + 1000, 10, 0, false);
    expect_all_verbatim(fx.store, one_shape, ENTRIES + 1010);
}

static aw_chain_report verify(void)
{
    aw_chain_report report;
    cr_assert_eq(aw_store_verify_chain(fx.store, &report, NULL, NULL, &err),
                 AW_OK, "verify: %s", err.msg);
    return report;
}

static int count_entry(const aw_entry_row *row, void *ud)
{
    (void)row;
    (*(int64_t *)ud)++;
    return 0;
}

Test(store_evidence, a_frame_that_is_not_zstd_is_named_with_its_reason)
{
    put_traffic(fx.store, 0, ENTRIES, 0, false);
    int64_t first = block_of(5500);
    tamper("UPDATE evidence_blocks SET frame = x'00112233445566778899' "
           "WHERE first_rowid = (SELECT max(first_rowid) FROM "
           "evidence_blocks WHERE first_rowid <= 5500)");
    char rows[64];
    snprintf(rows, sizeof rows, "rows %lld-", (long long)first);
    aw_chain_report report = verify();
    cr_expect_not(report.ok);
    cr_expect_eq(report.first_bad_rowid, first);
    cr_expect(strstr(report.what, rows) && strstr(report.what, "zstd"), "%s",
              report.what);
    /* Readers stop there with the same reason, after handing out the rows
     * before it. */
    int64_t seen = 0;
    cr_expect_eq(
        aw_store_iter_entries(fx.store, 0, INT64_MAX, count_entry, &seen, &err),
        AW_ERR);
    cr_expect(strstr(err.msg, rows), "%s", err.msg);
    cr_expect_eq(seen, first - 1);
}

Test(store_evidence, a_damaged_frame_shows_as_that_block_edited_or_undecodable)
{
    put_traffic(fx.store, 0, ENTRIES, 0, false);
    int64_t first = block_of(5800);
    edit_blob("evidence_blocks", "frame", "first_rowid", first,
              flip_middle_byte);
    char rows[64];
    snprintf(rows, sizeof rows, "rows %lld-", (long long)first);
    aw_chain_report report = verify();
    cr_expect_not(report.ok);
    cr_expect_eq(report.first_bad_rowid, first, "%s", report.what);
    cr_expect(strstr(report.what, rows), "%s", report.what);
}

Test(store_evidence,
     an_edited_dictionary_breaks_the_first_block_written_with_it)
{
    put_traffic(fx.store, 0, ENTRIES, 0, false);
    int64_t first =
        aw_test_sql_int(fx.path, "SELECT min(first_rowid) FROM "
                                 "evidence_blocks WHERE zstd_dict = 1");
    edit_blob("evidence_dicts", "dict", "dict_no", 1, scramble_after_header);
    aw_chain_report report = verify();
    cr_expect_not(report.ok);
    cr_expect_eq(report.first_bad_rowid, first, "%s", report.what);
}

/* The export window of the fixture, and what today's export of it holds. */
#define OLD_SINCE      "2026-11-30T00:00:00Z"
#define OLD_UNTIL      "2026-12-01T00:00:00Z"
#define OLD_BODY_BYTES 4262
#define OLD_BODY_SHA256                                                        \
    "464368afe8f4fe02f0f84a2d3834eccd1169f131c118a28ca90a1fa0faf62dd2"

static void load_schema1_fixture(const char *path)
{
    char *sql = aw_test_read_file(
        AW_SOURCE_DIR "/tests/fixtures/schema1/index.sql", NULL);
    cr_assert_not_null(sql);
    sqlite3 *db;
    char *msg = NULL;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, &msg), SQLITE_OK, "%s", msg);
    sqlite3_close(db);
    free(sql);
}

static void expect_export_as_before(cli_world *w, const char *db)
{
    char bundle[PATH_MAX + 16];
    snprintf(bundle, sizeof bundle, "%s/old.bundle", w->dir);
    cw_result r =
        cw_run(w,
               (const char *const[]){"export", "--db", db, "--since", OLD_SINCE,
                                     "--until", OLD_UNTIL, "-o", bundle, NULL},
               NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cw_result_free(&r);
    size_t len = 0;
    char *bytes = aw_test_read_file(bundle, &len);
    cr_assert(bytes && len > OLD_BODY_BYTES);
    unsigned char digest[32];
    aw_sha256(bytes + len - OLD_BODY_BYTES, OLD_BODY_BYTES, digest);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    cr_expect_str_eq(hex, OLD_BODY_SHA256,
                     "the bundle's body differs from before");
    cr_expect(memmem(bytes, len - OLD_BODY_BYTES, OLD_BODY_SHA256, 64) != NULL,
              "the header names another body");
    free(bytes);
}

Test(store_evidence, a_schema_1_index_opens_verifies_and_exports_the_same_bytes)
{
    char old[PATH_MAX];
    snprintf(old, sizeof old, "%s/old.db", fx.dir);
    load_schema1_fixture(old);
    aw_store *store = NULL;
    cr_assert_eq(aw_store_open(old, 0, &store, &err), AW_OK, "open: %s",
                 err.msg);
    cr_expect_geq(aw_store_schema_version(store), 3);
    aw_chain_report report;
    cr_assert_eq(aw_store_verify_chain(store, &report, NULL, NULL, &err),
                 AW_OK);
    cr_expect(report.ok, "%s", report.what);
    cr_expect_eq(report.checked, 20);

    /* New entries go on the old chain, compressed; the old rows stay. */
    put_traffic(store, 20, 100, 1, false);
    cr_assert_eq(aw_store_verify_chain(store, &report, NULL, NULL, &err),
                 AW_OK);
    cr_expect(report.ok, "%s", report.what);
    cr_expect_eq(report.checked, 120);
    aw_store_close(store);
    cr_expect_eq(aw_test_sql_int(old, "SELECT count(*) FROM entries WHERE "
                                      "length(raw) > 0 AND zstd_dict IS NULL"),
                 20);
    cr_expect_eq(aw_test_sql_int(old,
                                 "SELECT coalesce(sum(last_rowid - first_rowid "
                                 "+ 1), 0) FROM evidence_blocks WHERE "
                                 "first_rowid > 20"),
                 100);

    cli_world w = {0};
    snprintf(w.dir, sizeof w.dir, "%s", fx.dir);
    expect_export_as_before(&w, old);
}

static int shape_1_after_5(int64_t rowid)
{
    return rowid > 5;
}

/* Live traffic commits an entry or two at a time: the open block's row is
 * rewritten by every commit, so a reader sees each entry once committed,
 * and the block closes at BLOCK_ROWS rows. */
Test(store_evidence, an_open_block_is_rewritten_by_each_commit_until_full)
{
    aw_store *reader = NULL;
    cr_assert_eq(aw_store_open(fx.path, AW_STORE_READONLY, &reader, &err),
                 AW_OK, "%s", err.msg);
    for (int i = 0; i < BLOCK_ROWS + 8; i++) {
        put_traffic(fx.store, i, 1, 0, false);
        expect e = {.shape_of = one_shape};
        cr_assert_eq(aw_store_get_entry(reader, i + 1, check_entry, &e, &err),
                     AW_OK, "row %d: %s", i + 1, err.msg);
    }
    aw_store_close(reader);
    cr_expect_eq(
        aw_test_sql_int(fx.path, "SELECT count(*) FROM evidence_blocks"), 2);
    cr_expect_eq(aw_test_sql_int(fx.path,
                                 "SELECT last_rowid FROM evidence_blocks "
                                 "WHERE first_rowid = 1"),
                 BLOCK_ROWS);
    cr_expect_eq(aw_test_sql_int(fx.path,
                                 "SELECT last_rowid FROM evidence_blocks "
                                 "WHERE first_rowid = 257"),
                 BLOCK_ROWS + 8);
    expect_all_verbatim(fx.store, one_shape, BLOCK_ROWS + 8);
}

/* Entries of a rolled-back transaction were in the open block (and read
 * from it inside the transaction); the rows that take their numbers must
 * come back as what was committed. */
Test(store_evidence, a_rolled_back_entry_leaves_no_trace_in_its_block)
{
    put_traffic(fx.store, 0, 5, 0, false);
    cr_assert_eq(aw_store_begin(fx.store, &err), AW_OK);
    put_traffic(fx.store, 5, 3, 0, true);
    expect inside = {.shape_of = one_shape};
    cr_assert_eq(aw_store_get_entry(fx.store, 7, check_entry, &inside, &err),
                 AW_OK, "%s", err.msg);
    aw_store_rollback(fx.store);
    put_traffic(fx.store, 5, 4, 1, false);
    expect_all_verbatim(fx.store, shape_1_after_5, 9);
}

/* Blocks fill and close inside one long transaction: a read of any of
 * their rows inside it, and the commit, must find each entry as it was
 * received. */
Test(store_evidence, full_blocks_are_read_inside_their_transaction)
{
    cr_assert_eq(aw_store_begin(fx.store, &err), AW_OK);
    put_traffic(fx.store, 0, 2 * BLOCK_ROWS + 10, 0, true);
    for (int64_t rowid = 1; rowid <= 2 * BLOCK_ROWS + 10; rowid += 97) {
        expect e = {.shape_of = one_shape};
        cr_assert_eq(aw_store_get_entry(fx.store, rowid, check_entry, &e, &err),
                     AW_OK, "row %" PRId64 ": %s", rowid, err.msg);
        cr_expect_eq(e.seen, 1);
    }
    put_traffic(fx.store, 2 * BLOCK_ROWS + 10, BLOCK_ROWS, 0, true);
    cr_assert_eq(aw_store_commit(fx.store, &err), AW_OK, "%s", err.msg);
    cr_expect_eq(
        aw_test_sql_int(fx.path, "SELECT count(*) FROM evidence_blocks"), 4);
    expect_all_verbatim(fx.store, one_shape, 3 * BLOCK_ROWS + 10);
}

/* A rolled-back transaction that filled and closed a block must leave
 * nothing of it: the committed rows it shared the block with stay, and the
 * rows that take its numbers are what was committed. */
Test(store_evidence, a_rolled_back_full_block_leaves_no_trace)
{
    put_traffic(fx.store, 0, 5, 0, false);
    cr_assert_eq(aw_store_begin(fx.store, &err), AW_OK);
    put_traffic(fx.store, 5, BLOCK_ROWS + 3, 0, true);
    aw_store_rollback(fx.store);
    put_traffic(fx.store, 5, BLOCK_ROWS + 20, 1, false);
    expect_all_verbatim(fx.store, shape_1_after_5, BLOCK_ROWS + 25);
}

/* The chain head after entries [0, n) of shape 0, computed here entry by
 * entry: SHA-256(previous || stream 0x00 entry id 0x00 || verbatim). */
static void chain_of_traffic(int n, unsigned char head[32])
{
    memset(head, 0, 32);
    aw_buf step = {0};
    for (int i = 0; i < n; i++) {
        aw_raw_entry *entry = traffic_entry(i, 0);
        step.len = 0;
        cr_assert_eq(aw_buf_append(&step, head, 32), AW_OK);
        cr_assert_eq(
            aw_buf_append(&step, entry->stream.ptr, entry->stream.len + 1),
            AW_OK);
        cr_assert_eq(aw_buf_append(&step, entry->id.ptr, entry->id.len + 1),
                     AW_OK);
        cr_assert_eq(aw_raw_entry_pack(entry, &step, &err), AW_OK);
        aw_sha256(step.ptr, step.len, head);
        aw_raw_entry_free(entry);
    }
    aw_buf_free(&step);
}

/* Full blocks are chained and compressed on the sealer's thread while the
 * next ones fill, more of them in one transaction than the writer keeps
 * in memory, and one such transaction is rolled back with blocks still
 * being sealed: the head must be the one of every committed entry in row
 * order, as a verifier outside auditwatch would compute it. */
Test(store_evidence, blocks_sealed_on_their_own_thread_keep_the_chain_in_order)
{
    enum { ROWS = 7 * BLOCK_ROWS + 17 };
    put_traffic(fx.store, 0, 3, 0, false);
    cr_assert_eq(aw_store_begin(fx.store, &err), AW_OK);
    put_traffic(fx.store, 3, 4 * BLOCK_ROWS, 1, true);
    aw_store_rollback(fx.store);
    cr_assert_eq(aw_store_begin(fx.store, &err), AW_OK);
    put_traffic(fx.store, 3, ROWS - 3, 0, true);
    cr_assert_eq(aw_store_commit(fx.store, &err), AW_OK, "%s", err.msg);

    unsigned char want[32], head[32];
    int64_t count = 0;
    chain_of_traffic(ROWS, want);
    cr_assert_eq(aw_store_chain_head(fx.store, &count, head, &err), AW_OK, "%s",
                 err.msg);
    cr_expect_eq(count, ROWS);
    cr_expect(memcmp(head, want, 32) == 0, "the head is not the chain of "
                                           "the committed entries");
    /* Rows 1-3, whose open block the rollback dropped, then 7 full blocks
     * and one of 14 rows. */
    cr_expect_eq(
        aw_test_sql_int(fx.path, "SELECT count(*) FROM evidence_blocks"), 9);
    expect_all_verbatim(fx.store, one_shape, ROWS);
}

/* An entry larger than BLOCK_BYTES: forty values of 15,000 bytes. */
static aw_raw_entry *large_entry(const char *id)
{
    enum { VALUES = 40 };
    static char value[15000];
    memset(value, 'v', sizeof value);
    aw_field fields[VALUES];
    char keys[VALUES][4];
    for (int i = 0; i < VALUES; i++) {
        snprintf(keys[i], sizeof keys[i], "k%02d", i);
        fields[i] = (aw_field){{keys[i], 3}, {value, sizeof value}};
    }
    const char *stream = "caracal.audit.events";
    aw_raw_entry *entry = NULL;
    cr_assert_eq(aw_raw_entry_new((aw_bytes){stream, strlen(stream)},
                                  (aw_bytes){id, strlen(id)}, fields, VALUES,
                                  &entry, &err),
                 AW_OK, "%s", err.msg);
    return entry;
}

static int keep_len(const aw_entry_row *row, void *ud)
{
    *(size_t *)ud = row->raw_len;
    return 0;
}

Test(store_evidence, a_block_closes_once_it_holds_512_kib)
{
    put_traffic(fx.store, 0, 2, 0, false);
    aw_raw_entry *large = large_entry("9000000-0");
    aw_buf packed = {0};
    cr_assert_eq(aw_raw_entry_pack(large, &packed, &err), AW_OK);
    cr_assert_gt(packed.len, BLOCK_BYTES);
    int64_t rowid;
    aw_put_result result;
    cr_assert_eq(aw_store_begin(fx.store, &err), AW_OK);
    cr_assert_eq(aw_store_put_entry(fx.store, large, &rowid, &result, &err),
                 AW_OK, "%s", err.msg);
    cr_assert_eq(aw_store_commit(fx.store, &err), AW_OK);
    aw_raw_entry_free(large);
    put_traffic(fx.store, 3, 2, 0, false);
    cr_expect_eq(aw_test_sql_int(fx.path,
                                 "SELECT last_rowid FROM evidence_blocks "
                                 "WHERE first_rowid = 1"),
                 3);
    cr_expect_eq(aw_test_sql_int(fx.path,
                                 "SELECT last_rowid FROM evidence_blocks "
                                 "WHERE first_rowid = 4"),
                 5);
    size_t len = 0;
    cr_assert_eq(aw_store_get_entry(fx.store, 3, keep_len, &len, &err), AW_OK,
                 "%s", err.msg);
    cr_expect_eq(len, packed.len);
    aw_buf_free(&packed);
    aw_chain_report report = verify();
    cr_expect(report.ok, "%s", report.what);
}

/* `verify --chain-head HASH@COUNT` compares with the value after row
 * COUNT, which a block does not store unless COUNT is its last row. */
Test(store_evidence, the_chain_value_inside_a_block_is_the_head_of_its_commit)
{
    unsigned char heads[3][32], at[32];
    int64_t counts[3];
    for (int c = 0; c < 3; c++) {
        put_traffic(fx.store, 5 * c, 5, 0, false);
        cr_assert_eq(aw_store_chain_head(fx.store, &counts[c], heads[c], &err),
                     AW_OK, "%s", err.msg);
    }
    cr_expect_eq(
        aw_test_sql_int(fx.path, "SELECT count(*) FROM evidence_blocks"), 1);
    for (int c = 0; c < 3; c++) {
        cr_assert_eq(aw_store_chain_at(fx.store, counts[c], at, &err), AW_OK,
                     "%s", err.msg);
        cr_expect(memcmp(at, heads[c], 32) == 0, "head after %lld rows",
                  (long long)counts[c]);
    }
    cr_expect_eq(aw_store_chain_at(fx.store, 16, at, &err), AW_ERR_NOTFOUND);
}

Test(store_evidence, a_deleted_or_stretched_block_is_named)
{
    put_traffic(fx.store, 0, BLOCK_ROWS + 8, 0, false);
    tamper("DELETE FROM evidence_blocks WHERE first_rowid = 257");
    aw_chain_report report = verify();
    cr_expect_not(report.ok);
    cr_expect_eq(report.first_bad_rowid, 257);
    cr_expect_str_eq(report.what, "row 257: no evidence block holds it");

    tamper("UPDATE evidence_blocks SET last_rowid = 264 WHERE first_rowid = 1");
    report = verify();
    cr_expect_not(report.ok);
    cr_expect_eq(report.first_bad_rowid, 1);
    cr_expect(strstr(report.what, "more than a block holds"), "%s",
              report.what);
}
