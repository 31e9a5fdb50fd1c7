/* store_fixture.c -- temporary indexes and in-memory events for the store
 * tests (see store_fixture.h). Every failure here is a test failure. */
#include "store_fixture.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void store_fixture_open(store_fixture *fx)
{
    memset(fx, 0, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/aw-store-XXXXXX");
    cr_assert_not_null(mkdtemp(fx->dir), "mkdtemp");
    snprintf(fx->path, sizeof fx->path, "%s/index.db", fx->dir);
    aw_error err = {0};
    int rc = aw_store_open(fx->path, 0, &fx->store, &err);
    cr_assert_eq(rc, AW_OK, "open: %s", err.msg);
}

void store_fixture_close(store_fixture *fx)
{
    aw_store_close(fx->store);
    fx->store = NULL;
    DIR *d = opendir(fx->dir);
    if (d == NULL)
        return;
    struct dirent *de;
    char file[512];
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(file, sizeof file, "%s/%s", fx->dir, de->d_name);
        unlink(file);
    }
    closedir(d);
    rmdir(fx->dir);
}

aw_raw_entry *fixture_entry(const char *stream, const char *id,
                            const char *data)
{
    aw_field field = {{"data", 4}, {data, strlen(data)}};
    aw_raw_entry *entry = NULL;
    aw_error err = {0};
    int rc =
        aw_raw_entry_new((aw_bytes){stream, strlen(stream)},
                         (aw_bytes){id, strlen(id)}, &field, 1, &entry, &err);
    cr_assert_eq(rc, AW_OK, "raw entry: %s", err.msg);
    return entry;
}

aw_audit_event fixture_event(const char *id, const char *zone, const char *type,
                             const char *request_id, const char *decision,
                             int64_t occurred_at_ns)
{
    aw_audit_event ev = {
        .id = id,
        .zone_id = zone,
        .event_type = type,
        .request_id = request_id,
        .decision = decision,
        .occurred_at_ns = occurred_at_ns,
    };
    char content[1024];
    snprintf(content, sizeof content, "%s|%s|%s|%s|%s|%lld", id, zone,
             type ? type : "", request_id ? request_id : "",
             decision ? decision : "", (long long)occurred_at_ns);
    aw_sha256(content, strlen(content), ev.content_hash);
    return ev;
}

int64_t fixture_put_event(aw_store *store, const char *stream,
                          const char *entry_id, const aw_audit_event *ev,
                          aw_put_result *result)
{
    aw_raw_entry *entry = fixture_entry(stream, entry_id, ev->id);
    aw_error err = {0};
    int64_t entry_rowid = 0, event_rowid = 0;
    aw_put_result entry_result;
    int rc =
        aw_store_put_entry(store, entry, &entry_rowid, &entry_result, &err);
    aw_raw_entry_free(entry);
    cr_assert_eq(rc, AW_OK, "put entry: %s", err.msg);
    rc = aw_store_put_event(store, entry_rowid, ev, &event_rowid, result, &err);
    cr_assert_eq(rc, AW_OK, "put event: %s", err.msg);
    return event_rowid;
}

int64_t fixture_commit_event(aw_store *store, const char *entry_id,
                             const aw_audit_event *ev)
{
    aw_error err = {0};
    cr_assert_eq(aw_store_begin(store, &err), AW_OK, "begin: %s", err.msg);
    aw_put_result result;
    int64_t rowid =
        fixture_put_event(store, "caracal.audit.events", entry_id, ev, &result);
    cr_assert_eq(result, AW_PUT_INSERTED);
    cr_assert_eq(aw_store_commit(store, &err), AW_OK, "commit: %s", err.msg);
    return rowid;
}

/* One entry row as schema 7 kept it. */
typedef struct verbatim_row {
    int64_t rowid;
    char *raw;
    size_t len;
    unsigned char chain[32];
} verbatim_row;

typedef struct verbatim_rows {
    verbatim_row *rows;
    size_t n;
} verbatim_rows;

static int keep_verbatim(const aw_entry_row *row, void *ud)
{
    verbatim_rows *all = ud;
    all->rows = realloc(all->rows, (all->n + 1) * sizeof *all->rows);
    cr_assert_not_null(all->rows);
    verbatim_row *v = &all->rows[all->n++];
    v->rowid = row->rowid;
    v->len = row->raw_len;
    v->raw = malloc(row->raw_len);
    cr_assert_not_null(v->raw);
    memcpy(v->raw, row->raw, row->raw_len);
    return 0;
}

/* The text of an events.event_id value: a UUID's 16 bytes, or the text. */
static void event_id_text(sqlite3_stmt *stmt, int col, char out[64])
{
    const unsigned char *b = sqlite3_column_blob(stmt, col);
    int n = sqlite3_column_bytes(stmt, col);
    if (sqlite3_column_type(stmt, col) != SQLITE_BLOB) {
        snprintf(out, 64, "%.*s", n, (const char *)b);
        return;
    }
    cr_assert_eq(n, 16);
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        p += sprintf(p, "%02x", b[i]);
    }
}

/* Runs sql on the closed index at path; what names it in a failure. */
static void exec_on(const char *path, const char *sql, const char *what)
{
    sqlite3 *db;
    char *msg = NULL;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, &msg), SQLITE_OK, "%s: %s",
                 what, msg);
    sqlite3_close(db);
}

void fixture_back_to_schema_16(const char *path)
{
    exec_on(path,
            "BEGIN; ALTER TABLE calls DROP COLUMN time_is_logged;"
            "PRAGMA user_version = 16; COMMIT",
            "back to schema 16");
}

void fixture_back_to_schema_15(const char *path)
{
    fixture_back_to_schema_16(path);
    exec_on(path,
            "BEGIN;"
            "INSERT INTO request_tier_2 SELECT * FROM request_tier_3"
            " UNION ALL SELECT * FROM request_tier_4;"
            "DROP TABLE request_tier_3; DROP TABLE request_tier_4;"
            "DELETE FROM meta WHERE key LIKE 'request\\_tier\\_%' ESCAPE '\\';"
            "PRAGMA user_version = 15; COMMIT",
            "back to schema 15");
}

void fixture_back_to_schema_14(const char *path)
{
    fixture_back_to_schema_15(path);
    exec_on(path,
            "BEGIN;"
            "CREATE TABLE anchor_uses (part_no INTEGER NOT NULL,"
            " anchor_no INTEGER NOT NULL, at INTEGER NOT NULL,"
            " event_rowid INTEGER NOT NULL,"
            " PRIMARY KEY (part_no, anchor_no, at, event_rowid))"
            " WITHOUT ROWID;"
            "INSERT INTO anchor_uses SELECT r.part_no, r.anchor_no,"
            " e.occurred_at - p.base_at, e.rowid FROM anchor_runs r"
            " JOIN anchor_parts p ON p.part_no = r.part_no,"
            " json_each(r.event_rows) u"
            " JOIN events e ON e.rowid = r.first_rowid + u.value;"
            "DROP TABLE anchor_runs;"
            "PRAGMA user_version = 14; COMMIT",
            "back to schema 14");
}

void fixture_back_to_schema_13(const char *path)
{
    fixture_back_to_schema_14(path);
    exec_on(path,
            "BEGIN;"
            "CREATE TABLE anchor_uses_13 (anchor_no INTEGER NOT NULL,"
            " occurred_at INTEGER NOT NULL,"
            " event_rowid INTEGER NOT NULL,"
            " PRIMARY KEY (anchor_no, occurred_at, event_rowid))"
            " WITHOUT ROWID;"
            "INSERT INTO anchor_uses_13 SELECT a.anchor_no,"
            " p.base_at + a.at, a.event_rowid FROM anchor_uses a"
            " JOIN anchor_parts p ON p.part_no = a.part_no;"
            "DROP TABLE anchor_uses; DROP TABLE anchor_parts;"
            "ALTER TABLE anchor_uses_13 RENAME TO anchor_uses;"
            "PRAGMA user_version = 13; COMMIT",
            "back to schema 13");
}

void fixture_back_to_schema_11(const char *path)
{
    sqlite3 *db;
    sqlite3_stmt *ids, *put;
    fixture_back_to_schema_13(path);
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT rowid, event_id FROM events",
                                    -1, &ids, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db,
                                    "UPDATE events SET id_key = ?1 "
                                    "WHERE rowid = ?2",
                                    -1, &put, NULL),
                 SQLITE_OK);
    while (sqlite3_step(ids) == SQLITE_ROW) {
        char id[64];
        unsigned char digest[32];
        event_id_text(ids, 1, id);
        aw_sha256(id, strlen(id), digest);
        uint64_t key = 0;
        for (int i = 0; i < 8; i++)
            key = key << 8 | digest[i];
        sqlite3_bind_int64(put, 1, (int64_t)key);
        sqlite3_bind_int64(put, 2, sqlite3_column_int64(ids, 0));
        cr_assert_eq(sqlite3_step(put), SQLITE_DONE, "%s", sqlite3_errmsg(db));
        sqlite3_reset(put);
    }
    sqlite3_finalize(ids);
    sqlite3_finalize(put);
    cr_assert_eq(
        sqlite3_exec(db, "PRAGMA user_version = 11; COMMIT", NULL, NULL, NULL),
        SQLITE_OK, "back to schema 11: %s", sqlite3_errmsg(db));
    sqlite3_close(db);
}

void fixture_back_to_schema_10(const char *path)
{
    fixture_back_to_schema_11(path);
    exec_on(path,
            "UPDATE events SET request_key = (SELECT request_key FROM "
            "(SELECT * FROM request_tier_0 UNION ALL SELECT * FROM "
            "request_tier_1 UNION ALL SELECT * FROM request_tier_2) t "
            "WHERE t.event_rowid = events.rowid);"
            "DROP TABLE request_tier_0; DROP TABLE request_tier_1;"
            "DROP TABLE request_tier_2;"
            "CREATE INDEX events_by_request ON events (request_key);"
            "PRAGMA user_version = 10;",
            "back to schema 10");
}

void fixture_back_to_schema_7(const char *path)
{
    aw_store *store = NULL;
    aw_error err = {0};
    verbatim_rows all = {0};
    cr_assert_eq(aw_store_open(path, AW_STORE_READONLY, &store, &err), AW_OK,
                 "%s", err.msg);
    cr_assert_eq(
        aw_store_iter_entries(store, 0, INT64_MAX, keep_verbatim, &all, &err),
        AW_OK, "%s", err.msg);
    for (size_t i = 0; i < all.n; i++)
        cr_assert_eq(aw_store_chain_at(store, all.rows[i].rowid,
                                       all.rows[i].chain, &err),
                     AW_OK, "%s", err.msg);
    aw_store_close(store);
    fixture_back_to_schema_10(path);

    sqlite3 *db;
    sqlite3_stmt *put;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db,
                                    "UPDATE entries SET raw = ?1, chain = ?2, "
                                    "zstd_dict = NULL WHERE rowid = ?3",
                                    -1, &put, NULL),
                 SQLITE_OK);
    for (size_t i = 0; i < all.n; i++) {
        sqlite3_bind_blob(put, 1, all.rows[i].raw, (int)all.rows[i].len,
                          SQLITE_STATIC);
        sqlite3_bind_blob(put, 2, all.rows[i].chain, 32, SQLITE_STATIC);
        sqlite3_bind_int64(put, 3, all.rows[i].rowid);
        cr_assert_eq(sqlite3_step(put), SQLITE_DONE, "%s", sqlite3_errmsg(db));
        sqlite3_reset(put);
        free(all.rows[i].raw);
    }
    sqlite3_finalize(put);
    free(all.rows);
    char *msg = NULL;
    cr_assert_eq(sqlite3_exec(db,
                              "DROP TABLE evidence_blocks;"
                              "CREATE INDEX events_by_time ON events "
                              "(occurred_at);"
                              "PRAGMA user_version = 7; COMMIT",
                              NULL, NULL, &msg),
                 SQLITE_OK, "back to schema 7: %s", msg);
    sqlite3_close(db);
}

/* The events table of 0001_initial.sql with 0002's delegation_epoch, filled
 * from the narrow rows of 0004 by mapping their numbers back to text; and
 * without 0005's calls-log positions and 0006's calls.is_signed. */
static const char back_to_schema_3_sql[] =
    "DROP TABLE calls_log_positions;"
    "ALTER TABLE calls DROP COLUMN is_signed;"
    "CREATE TABLE events_wide ("
    " rowid INTEGER PRIMARY KEY, id_key INTEGER NOT NULL,"
    " request_key INTEGER, event_id TEXT NOT NULL,"
    " content_hash BLOB NOT NULL, entry_rowid INTEGER NOT NULL,"
    " occurred_at INTEGER NOT NULL, request_id TEXT, zone_id TEXT NOT NULL,"
    " event_type TEXT, decision TEXT, evaluation_status TEXT,"
    " application_id TEXT, resource TEXT, session_id TEXT,"
    " agent_session_id TEXT, delegation_edge_id TEXT, result_class TEXT,"
    " upstream_status INTEGER, is_signed INTEGER NOT NULL,"
    " delegation_epoch INTEGER);"
    "INSERT INTO events_wide SELECT e.rowid, e.id_key, e.request_key,"
    " e.event_id, e.content_hash, e.entry_rowid, e.occurred_at, e.request_id,"
    " (SELECT term FROM terms WHERE term_no = e.zone_no),"
    " (SELECT term FROM terms WHERE term_no = e.type_no),"
    " (SELECT term FROM terms WHERE term_no = e.decision_no),"
    " (SELECT term FROM terms WHERE term_no = e.status_no),"
    " (SELECT term FROM terms WHERE term_no = e.application_no),"
    " (SELECT term FROM terms WHERE term_no = e.resource_no),"
    " (SELECT anchor_id FROM anchor_names WHERE anchor_no = e.session_no),"
    " (SELECT anchor_id FROM anchor_names WHERE anchor_no = "
    "e.agent_session_no),"
    " (SELECT anchor_id FROM anchor_names WHERE anchor_no = e.edge_no),"
    " (SELECT term FROM terms WHERE term_no = e.result_class_no),"
    " e.upstream_status, e.is_signed, e.delegation_epoch FROM events e;"
    "DROP TABLE events; DROP TABLE terms;"
    "ALTER TABLE events_wide RENAME TO events;"
    "CREATE INDEX events_by_identity ON events (id_key, occurred_at);"
    "CREATE INDEX events_by_request ON events (request_key);"
    "CREATE INDEX events_by_time ON events (occurred_at);"
    "PRAGMA user_version = 3;";

void fixture_back_to_schema_3(const char *path)
{
    fixture_back_to_schema_7(path);
    exec_on(path, back_to_schema_3_sql, "back to schema 3");
}
