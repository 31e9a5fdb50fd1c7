/* log_position.c -- the position of each access log `run --calls-log`
 * follows (schema 0005). Written inside the batch transaction that holds
 * the calls read up to it, read once at start. Rare statements: prepared
 * per call rather than kept in the handle's table. */
#include "store/handle.h"

#include <time.h>

int aw_store_get_log_position(aw_store *store, const char *path,
                              aw_log_position *out, bool *found, aw_error *err)
{
    sqlite3_stmt *stmt;
    int rc =
        store_prepare(store,
                      "SELECT inode, offset, lines FROM calls_log_positions "
                      "WHERE path = ?1",
                      &stmt, err);
    *found = false;
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_text(stmt, 1, path, -1, SQLITE_STATIC);
    int step = sqlite3_step(stmt);
    if (step == SQLITE_ROW) {
        *found = true;
        out->inode = sqlite3_column_int64(stmt, 0);
        out->offset = sqlite3_column_int64(stmt, 1);
        out->lines = sqlite3_column_int64(stmt, 2);
    } else if (step != SQLITE_DONE) {
        rc = store_fail(store, err, "read calls log position");
    }
    sqlite3_finalize(stmt);
    return rc;
}

int aw_store_set_log_position(aw_store *store, const char *path,
                              const aw_log_position *pos, aw_error *err)
{
    sqlite3_stmt *stmt;
    struct timespec now;
    int rc = store_require_tx(store, err, "set calls log position");
    if (rc != AW_OK ||
        (rc = store_prepare(
             store,
             "INSERT INTO calls_log_positions "
             "(path, inode, offset, lines, updated_at) "
             "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (path) DO UPDATE "
             "SET inode = ?2, offset = ?3, lines = ?4, updated_at = ?5",
             &stmt, err)) != AW_OK)
        return rc;
    clock_gettime(CLOCK_REALTIME, &now);
    sqlite3_bind_text(stmt, 1, path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 2, pos->inode);
    sqlite3_bind_int64(stmt, 3, pos->offset);
    sqlite3_bind_int64(stmt, 4, pos->lines);
    sqlite3_bind_int64(stmt, 5, (int64_t)now.tv_sec * 1000000000 + now.tv_nsec);
    rc = store_exec_stmt(store, stmt, err, "write calls log position");
    sqlite3_finalize(stmt);
    return rc;
}
