/* request_tiers.c -- the request-id index in tiers (schema/0011, 0016): a
 * small tier every new pair goes to, and larger ones it is drained into in
 * key order.
 *
 * A B-tree keyed by a hash takes each insert on a random leaf, so once it
 * outgrows the page cache every event costs a page read and a page write
 * (twice: the WAL, then the checkpoint). Tier 0 stays within the cache.
 * Moving pairs into the next tier in key order writes each page they land
 * on once per move, however many land there. A tier holds at most sixteen
 * times the pairs of the one before it (but the last, which is unbounded
 * and reached only past ~286 million events), so moving a tier's pairs
 * writes about a page for every twelve of them (~200 pairs to a page), at
 * any age of the index.
 *
 * Tier 0 moves whole, in the commit that fills it: tier 1, which
 * receives it, is bounded, so the move costs the same at any age, and
 * tier 0 starts empty again. The later tiers do not move in one commit:
 * the tier they go to holds the history, and that commit would hold up
 * ingest for as long as rewriting it takes (2.3 s for tier 1 into tier 2
 * in a drain of 10 million events, bench/README.md; longer the longer
 * auditwatch has run). They drain instead, a slice per commit: the next
 * pairs above the drain cursor, in (request_key, event_rowid) order, four
 * times as many as the commit added to tier 0, so every drain outpaces
 * what flows into its tier and ends. Pairs that reach a draining tier
 * below its cursor stay for its next drain. Moves and slices run inside
 * the commit of the batch, so at every commit each pair is in exactly one
 * tier and a look-up seeks all of them (query.c).
 *
 * The tiers' sizes and cursors are kept in meta, read on first use (and
 * after a rollback or another writer's commit), and written with each
 * commit that added pairs.
 */
#include "store/handle.h"

#include <stdio.h>

enum {
    TIER_GROWTH = 16,    /* a tier's limit over the one before it */
    WHOLE_TIERS = 1,     /* the tiers that move whole */
    SLICE_PER_ADDED = 4, /* pairs drained per tier per pair added */
};

#define TIER_NO_DRAIN INT64_MAX /* cursor key and rowid: not draining */

static const int64_t default_first_limit = 65536;

/* meta key NAME_t, with the value a missing row stands for. */
static int tiers_meta_get(aw_store *store, const char *name, int t,
                          int64_t missing, int64_t *value, aw_error *err)
{
    char key[64];
    aw_error lookup = {0};
    if (t >= 0)
        snprintf(key, sizeof key, "%s_%d", name, t);
    else
        snprintf(key, sizeof key, "%s", name);
    int rc = aw_store_meta_get(store, key, value, &lookup);
    if (rc == AW_ERR_NOTFOUND) {
        *value = missing;
        return AW_OK;
    }
    if (rc != AW_OK)
        *err = lookup;
    return rc;
}

static int tiers_meta_set(aw_store *store, const char *name, int t,
                          int64_t value, aw_error *err)
{
    char key[64];
    snprintf(key, sizeof key, "%s_%d", name, t);
    return aw_store_meta_set(store, key, value, err);
}

static int tiers_read(aw_store *store, aw_error *err)
{
    struct store_request_tiers *tiers = &store->tiers;
    int rc = tiers_meta_get(store, "request_tier_first_limit", -1,
                            default_first_limit, &tiers->first_limit, err);
    if (rc == AW_OK &&
        (tiers->first_limit < 1 ||
         tiers->first_limit > INT64_MAX / TIER_GROWTH / TIER_GROWTH /
                                  TIER_GROWTH)) /* tier 3's limit fits */
        rc = aw_error_set(err, AW_ERR,
                          "index %s: request_tier_first_limit %lld in meta "
                          "is out of range",
                          store->path, (long long)tiers->first_limit);
    for (int t = 0; rc == AW_OK && t < STORE_REQUEST_TIERS - 1; t++) {
        rc = tiers_meta_get(store, "request_tier_rows", t, 0, &tiers->rows[t],
                            err);
        if (rc == AW_OK)
            rc = tiers_meta_get(store, "request_tier_cursor_key", t,
                                TIER_NO_DRAIN, &tiers->cursor_key[t], err);
        if (rc == AW_OK)
            rc = tiers_meta_get(store, "request_tier_cursor_rowid", t,
                                TIER_NO_DRAIN, &tiers->cursor_rowid[t], err);
    }
    tiers->known = rc == AW_OK;
    tiers->added = 0;
    return rc;
}

static int tiers_write(aw_store *store, aw_error *err)
{
    const struct store_request_tiers *tiers = &store->tiers;
    int rc = AW_OK;
    for (int t = 0; rc == AW_OK && t < STORE_REQUEST_TIERS - 1; t++) {
        rc = tiers_meta_set(store, "request_tier_rows", t, tiers->rows[t], err);
        if (rc == AW_OK)
            rc = tiers_meta_set(store, "request_tier_cursor_key", t,
                                tiers->cursor_key[t], err);
        if (rc == AW_OK)
            rc = tiers_meta_set(store, "request_tier_cursor_rowid", t,
                                tiers->cursor_rowid[t], err);
    }
    return rc;
}

int store_request_add(aw_store *store, int64_t request_key, int64_t event_rowid,
                      aw_error *err)
{
    sqlite3_stmt *add;
    int rc = store->tiers.known ? AW_OK : tiers_read(store, err);
    if (rc == AW_OK)
        rc = store_stmt(store, STMT_REQUEST_ADD, &add, err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_int64(add, 1, request_key);
    sqlite3_bind_int64(add, 2, event_rowid);
    rc = store_exec_stmt(store, add, err, "store request id");
    if (rc == AW_OK) {
        store->tiers.rows[0]++;
        store->tiers.added++;
    }
    return rc;
}

/* Prepares the SQL of format, which names tier t (and tier t + 1 where
 * next is true). */
static int tier_prepare(aw_store *store, const char *format, int t, bool next,
                        sqlite3_stmt **stmt, aw_error *err)
{
    char sql[320];
    if (next)
        snprintf(sql, sizeof sql, format, t + 1, t);
    else
        snprintf(sql, sizeof sql, format, t);
    if (sqlite3_prepare_v2(store->db, sql, -1, stmt, NULL) != SQLITE_OK)
        return store_fail(store, err, "prepare request tier drain");
    return AW_OK;
}

#define ABOVE_CURSOR "(request_key, event_rowid) > (?1, ?2)"
#define SLICE        ABOVE_CURSOR " AND (request_key, event_rowid) <= (?3, ?4)"

/* Moves the slice of tier t from its cursor to (end_key, end_rowid), both
 * ends as the cursor's, into tier t + 1. */
static int tier_move(aw_store *store, int t, int64_t end_key, int64_t end_rowid,
                     aw_error *err)
{
    static const char *const steps[] = {
        "INSERT INTO request_tier_%d SELECT request_key, event_rowid FROM "
        "request_tier_%d WHERE " SLICE " ORDER BY 1, 2",
        "DELETE FROM request_tier_%d WHERE " SLICE,
    };
    struct store_request_tiers *tiers = &store->tiers;
    int64_t moved = 0;
    int rc = AW_OK;
    for (size_t i = 0; rc == AW_OK && i < sizeof steps / sizeof *steps; i++) {
        sqlite3_stmt *step;
        rc = tier_prepare(store, steps[i], t, i == 0, &step, err);
        if (rc != AW_OK)
            break;
        sqlite3_bind_int64(step, 1, tiers->cursor_key[t]);
        sqlite3_bind_int64(step, 2, tiers->cursor_rowid[t]);
        sqlite3_bind_int64(step, 3, end_key);
        sqlite3_bind_int64(step, 4, end_rowid);
        rc = sqlite3_step(step) == SQLITE_DONE
                 ? AW_OK
                 : store_fail(store, err, "drain request tier");
        int64_t changed = sqlite3_changes64(store->db);
        sqlite3_finalize(step);
        if (rc == AW_OK && i == 0)
            moved = changed;
        else if (rc == AW_OK && changed != moved)
            rc = aw_error_set(err, AW_ERR,
                              "index %s: request tier %d drained %lld pairs "
                              "into the next but removed %lld",
                              store->path, t, (long long)moved,
                              (long long)changed);
    }
    if (rc != AW_OK)
        return rc;
    tiers->rows[t] -= moved;
    if (t + 1 < STORE_REQUEST_TIERS - 1)
        tiers->rows[t + 1] += moved;
    tiers->cursor_key[t] = end_key;
    tiers->cursor_rowid[t] = end_rowid;
    return AW_OK;
}

/* Moves the next slice of the draining tier t: its next n pairs above the
 * cursor, or all of them, which ends the drain. */
static int tier_drain(aw_store *store, int t, int64_t n, aw_error *err)
{
    if (n >= store->tiers.rows[t])
        return tier_move(store, t, TIER_NO_DRAIN, TIER_NO_DRAIN, err);
    sqlite3_stmt *find;
    int rc = tier_prepare(store,
                          "SELECT request_key, event_rowid FROM "
                          "request_tier_%d WHERE " ABOVE_CURSOR
                          " ORDER BY 1, 2 LIMIT 1 OFFSET ?3",
                          t, false, &find, err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_int64(find, 1, store->tiers.cursor_key[t]);
    sqlite3_bind_int64(find, 2, store->tiers.cursor_rowid[t]);
    sqlite3_bind_int64(find, 3, n - 1);
    int64_t end_key = TIER_NO_DRAIN, end_rowid = TIER_NO_DRAIN;
    int step = sqlite3_step(find);
    if (step == SQLITE_ROW) {
        end_key = sqlite3_column_int64(find, 0);
        end_rowid = sqlite3_column_int64(find, 1);
    } else if (step != SQLITE_DONE) {
        rc = store_fail(store, err, "find request tier slice");
    }
    sqlite3_finalize(find);
    return rc == AW_OK ? tier_move(store, t, end_key, end_rowid, err) : rc;
}

int store_request_tiers_settle(aw_store *store, aw_error *err)
{
    struct store_request_tiers *tiers = &store->tiers;
    if (!tiers->known || tiers->added == 0)
        return AW_OK; /* no pair was added: nothing flows, nothing moves */
    int64_t limit = tiers->first_limit;
    int rc = AW_OK;
    for (int t = 0; rc == AW_OK && t < STORE_REQUEST_TIERS - 1; t++) {
        if (t > 0)
            limit *= TIER_GROWTH;
        bool draining = tiers->cursor_key[t] != TIER_NO_DRAIN ||
                        tiers->cursor_rowid[t] != TIER_NO_DRAIN;
        if (!draining && tiers->rows[t] >= limit) {
            tiers->cursor_key[t] = tiers->cursor_rowid[t] = INT64_MIN;
            draining = true;
        }
        if (draining)
            rc = tier_drain(store, t,
                            t < WHOLE_TIERS ? tiers->rows[t]
                                            : SLICE_PER_ADDED * tiers->added,
                            err);
    }
    if (rc == AW_OK)
        rc = tiers_write(store, err);
    tiers->added = 0;
    return rc;
}

void store_request_tiers_forget(aw_store *store)
{
    store->tiers.known = false;
    store->tiers.added = 0;
}
