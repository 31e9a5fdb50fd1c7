/* verify.c -- what `verify` needs from the index beyond the public row
 * queries: decoded rows whose raw entry is gone, and SQLite's own check of
 * the file's structure.
 *
 * Every row of events, revocations, calls and rejected names the raw entry
 * it was decoded from (entry_rowid). The row queries of query.c join that
 * entry (for its stream and id), so a row whose entry was deleted never
 * shows up there, yet the detectors may still read it. This file finds
 * those rows with one anti-join per table. It reads only the row id, the
 * entry row id and one key column of each table, the columns least likely
 * to move when the schema grows; comparing the rest is the caller's work,
 * through the public row structs and the event/ decoders.
 */
#include <stdio.h>
#include <string.h>

#include "store/handle.h"

/* One SELECT per table: table name, row id, entry row id, key text. */
static const char orphans_sql[] =
    "SELECT 'events', e.rowid, e.entry_rowid, e.event_id FROM events e "
    "WHERE NOT EXISTS (SELECT 1 FROM entries n WHERE n.rowid = e.entry_rowid) "
    "UNION ALL "
    "SELECT 'revocations', r.rowid, r.entry_rowid, r.anchor_id FROM revocations r "
    "WHERE NOT EXISTS (SELECT 1 FROM entries n WHERE n.rowid = r.entry_rowid) "
    "UNION ALL "
    "SELECT 'calls', c.rowid, c.entry_rowid, c.request_id FROM calls c "
    "WHERE NOT EXISTS (SELECT 1 FROM entries n WHERE n.rowid = c.entry_rowid) "
    "UNION ALL "
    "SELECT 'rejected', j.rowid, j.entry_rowid, j.reason FROM rejected j "
    "WHERE NOT EXISTS (SELECT 1 FROM entries n WHERE n.rowid = j.entry_rowid)";

struct orphan_ctx {
    aw_orphan_row_fn fn;
    void *ud;
};

static int orphan_row(sqlite3_stmt *stmt, void *ctx)
{
    struct orphan_ctx *c = ctx;
    char key[STORE_ID_TEXT_MAX];
    aw_orphan_row row = {
        .table = store_column_text(stmt, 0),
        .rowid = sqlite3_column_int64(stmt, 1),
        .entry_rowid = sqlite3_column_int64(stmt, 2),
        .key = store_column_id(stmt, 3, key),
    };
    return c->fn(&row, c->ud);
}

int aw_store_iter_orphans(aw_store *store, aw_orphan_row_fn fn, void *ud,
                          aw_error *err)
{
    sqlite3_stmt *stmt;
    int rc = store_prepare(store, orphans_sql, &stmt, err);
    if (rc != AW_OK)
        return rc;
    struct orphan_ctx ctx = {fn, ud};
    rc = store_each_row(store, stmt, orphan_row, &ctx, err,
                        "look for rows without their entry");
    sqlite3_finalize(stmt);
    return rc;
}

struct structure_ctx {
    aw_structure_problem_fn fn;
    void *ud;
};

static int structure_row(sqlite3_stmt *stmt, void *ctx)
{
    struct structure_ctx *c = ctx;
    const char *text = store_column_text(stmt, 0);
    return text && strcmp(text, "ok") == 0 ? 0 : c->fn(text, c->ud);
}

int aw_store_check_structure(aw_store *store, aw_structure_problem_fn fn,
                             void *ud, aw_error *err)
{
    sqlite3_stmt *stmt;
    int rc = store_prepare(store, "PRAGMA integrity_check", &stmt, err);
    if (rc != AW_OK)
        return rc;
    struct structure_ctx ctx = {fn, ud};
    rc = store_each_row(store, stmt, structure_row, &ctx, err,
                        "check the file's structure");
    sqlite3_finalize(stmt);
    return rc;
}
