/* stats.c -- the figures `status` shows: row counts, the event time span,
 * file size, rejections by reason, open alerts by kind, and checkpoints.
 *
 * Every figure must stay cheap on a 10-million-event index: row counts come
 * from max(rowid) of append-only tables and the time span from the ends of
 * events_by_identity (keyed by time first), one seek each; only the small
 * tables (alerts, rejected, checkpoints) are scanned.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "store/handle.h"

int aw_store_get_stats(aw_store *store, aw_store_stats *stats, aw_error *err)
{
    memset(stats, 0, sizeof *stats);
    sqlite3_stmt *stmt;
    int rc = store_stmt(store, STMT_STATS, &stmt, err);
    if (rc != AW_OK)
        return rc;
    int step = sqlite3_step(stmt);
    if (step == SQLITE_ROW) {
        int64_t *figures[] = {
            &stats->entries,         &stats->events,
            &stats->revocations,     &stats->calls,
            &stats->rejected,        &stats->alerts_open,
            &stats->alerts_resolved, &stats->oldest_event_ns,
            &stats->newest_event_ns, &stats->file_bytes,
        };
        for (int i = 0; i < (int)(sizeof figures / sizeof *figures); i++)
            *figures[i] = sqlite3_column_int64(stmt, i);
    } else {
        rc = store_fail(store, err, "read index figures");
    }
    sqlite3_reset(stmt);
    if (rc != AW_OK)
        return rc;
    /* Committed data not yet checkpointed lives in the WAL. */
    char wal[4096];
    struct stat st;
    if ((size_t)snprintf(wal, sizeof wal, "%s-wal", store->path) < sizeof wal &&
        stat(wal, &st) == 0)
        stats->file_bytes += (int64_t)st.st_size;
    stats->schema_version = store->schema_version;
    return AW_OK;
}

static int count_row(sqlite3_stmt *stmt, void *ctx)
{
    struct row_ctx *c = ctx;
    return c->fn.count(store_column_text(stmt, 0),
                       sqlite3_column_int64(stmt, 1), c->ud);
}

int aw_store_count_by(aw_store *store, const char *what, aw_count_fn fn,
                      void *ud, aw_error *err)
{
    enum store_stmt id;
    if (what != NULL && strcmp(what, "rejected_by_reason") == 0)
        id = STMT_REJECTED_BY_REASON;
    else if (what != NULL && strcmp(what, "open_alerts_by_kind") == 0)
        id = STMT_OPEN_ALERTS_BY_KIND;
    else
        return aw_error_reject(err, AW_REJECT_BAD_VALUE,
                               "unknown count \"%s\" (rejected_by_reason, "
                               "open_alerts_by_kind)",
                               what ? what : "");
    sqlite3_stmt *stmt;
    int rc = store_stmt(store, id, &stmt, err);
    if (rc != AW_OK)
        return rc;
    struct row_ctx ctx = {.fn.count = fn, .ud = ud};
    return store_each_row(store, stmt, count_row, &ctx, err, "count");
}

static int checkpoint_row(sqlite3_stmt *stmt, void *ctx)
{
    struct row_ctx *c = ctx;
    return c->fn.checkpoint(store_column_text(stmt, 0),
                            store_column_text(stmt, 1),
                            sqlite3_column_int64(stmt, 2), c->ud);
}

int aw_store_query_checkpoints(aw_store *store, aw_checkpoint_fn fn, void *ud,
                               aw_error *err)
{
    sqlite3_stmt *stmt;
    int rc = store_stmt(store, STMT_CHECKPOINTS_ALL, &stmt, err);
    if (rc != AW_OK)
        return rc;
    struct row_ctx ctx = {.fn.checkpoint = fn, .ud = ud};
    return store_each_row(store, stmt, checkpoint_row, &ctx, err,
                          "read checkpoints");
}
