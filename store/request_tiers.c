/* request_tiers.c -- the request-id index in tiers (schema/0011): a small
 * tier every new pair goes to, and larger ones it is moved into in key
 * order.
 *
 * A B-tree keyed by a hash takes each insert on a random leaf, so once it
 * outgrows the page cache every event costs a page read and a page write
 * (twice: the WAL, then the checkpoint). Tier 0 stays within the cache.
 * Moving a full tier into the next one inserts its pairs in key order, so
 * each page of the receiving tier is read and written about once per move
 * however many pairs land on it: with these sizes, about an eighth of a
 * page per event in all, against about one. Moves run inside the commit
 * of the batch that filled the tier, so a tier's pairs are in exactly one
 * tier at every commit, and a look-up seeks the three (query.c).
 *
 * The rows of each tier are counted once per handle (and again after a
 * rollback, which may have undone a move) and then kept up to date.
 */
#include "store/handle.h"

/* Pairs a tier holds before they move to the next one. */
static const int64_t tier_limit[STORE_REQUEST_TIERS - 1] = {65536, 1048576};

static const char *const tier_count_sql[STORE_REQUEST_TIERS - 1] = {
    "SELECT count(*) FROM request_tier_0",
    "SELECT count(*) FROM request_tier_1",
};

static const char *const tier_move_sql[STORE_REQUEST_TIERS - 1] = {
    "INSERT INTO request_tier_1 SELECT * FROM request_tier_0 ORDER BY 1, 2; "
    "DELETE FROM request_tier_0",
    "INSERT INTO request_tier_2 SELECT * FROM request_tier_1 ORDER BY 1, 2; "
    "DELETE FROM request_tier_1",
};

static int tiers_count(aw_store *store, aw_error *err)
{
    for (int t = 0; t < STORE_REQUEST_TIERS - 1; t++) {
        sqlite3_stmt *count;
        if (sqlite3_prepare_v2(store->db, tier_count_sql[t], -1, &count,
                               NULL) != SQLITE_OK)
            return store_fail(store, err, "count request tier");
        int step = sqlite3_step(count);
        store->tier_rows[t] = sqlite3_column_int64(count, 0);
        sqlite3_finalize(count);
        if (step != SQLITE_ROW)
            return store_fail(store, err, "count request tier");
    }
    store->tiers_counted = true;
    return AW_OK;
}

int store_request_add(aw_store *store, int64_t request_key, int64_t event_rowid,
                      aw_error *err)
{
    sqlite3_stmt *add;
    int rc = store->tiers_counted ? AW_OK : tiers_count(store, err);
    if (rc == AW_OK)
        rc = store_stmt(store, STMT_REQUEST_ADD, &add, err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_int64(add, 1, request_key);
    sqlite3_bind_int64(add, 2, event_rowid);
    rc = store_exec_stmt(store, add, err, "store request id");
    if (rc == AW_OK)
        store->tier_rows[0]++;
    return rc;
}

int store_request_tiers_settle(aw_store *store, aw_error *err)
{
    if (!store->tiers_counted)
        return AW_OK; /* nothing was added since they were last right */
    for (int t = 0; t < STORE_REQUEST_TIERS - 1; t++) {
        if (store->tier_rows[t] < tier_limit[t])
            return AW_OK;
        int rc = store_exec(store, tier_move_sql[t], err, "move request tier");
        if (rc != AW_OK)
            return rc;
        if (t + 1 < STORE_REQUEST_TIERS - 1)
            store->tier_rows[t + 1] += store->tier_rows[t];
        store->tier_rows[t] = 0;
    }
    return AW_OK;
}

void store_request_tiers_forget(aw_store *store)
{
    store->tiers_counted = false;
}
