/* anchor_parts.c -- the anchor index in parts (schema/0014): uses go to
 * the open part until it holds STORE_PART_USES, then a new part opens.
 *
 * A part's pages are written while it is open and never again, so the
 * pages an insert touches stay few and cached, however large the history
 * (an index keyed by anchor alone took each use on its anchor's leaf,
 * anywhere). The open part's anchor_parts row claims all time, so a
 * look-up in the same transaction finds what was just stored; closing it
 * writes the occurred_at range of its uses, by which later look-ups skip
 * it (query.c).
 *
 * The open part is read once per handle (and again after a rollback,
 * which may have undone an opening or a closing): its row, and the count
 * and range of its uses, at most STORE_PART_USES rows.
 */
#include "store/handle.h"

#include <stdint.h>
#include <string.h>

/* 65,536 uses are ~1.3 MB of leaves: cached with room to spare, and a
 * look-up over all the parts of 10M events seeks about 300 of them. */
#define STORE_PART_USES 65536

static int parts_read(aw_store *store, aw_error *err)
{
    sqlite3_stmt *last = NULL, *uses = NULL;
    struct store_anchor_part *p = &store->part;
    int rc = AW_OK;
    if (sqlite3_prepare_v2(store->db,
                           "SELECT part_no, base_at FROM anchor_parts "
                           "ORDER BY part_no DESC LIMIT 1",
                           -1, &last, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(store->db,
                           "SELECT count(*), min(at), max(at) FROM "
                           "anchor_uses WHERE part_no = ?1",
                           -1, &uses, NULL) != SQLITE_OK) {
        rc = store_fail(store, err, "read anchor parts");
        goto done;
    }
    memset(p, 0, sizeof *p);
    int step = sqlite3_step(last);
    if (step == SQLITE_ROW) {
        p->no = sqlite3_column_int64(last, 0);
        p->base_at = sqlite3_column_int64(last, 1);
        /* A part closes only as the next one opens, in one transaction,
         * so the newest is open, unless it is part 0: the uses of an index
         * from before schema 14, closed at migration. (Its min_at, which
         * an open part's row sets to INT64_MIN, may be INT64_MIN too.) */
        p->open = p->no > 0;
    } else if (step != SQLITE_DONE) {
        rc = store_fail(store, err, "read anchor parts");
        goto done;
    }
    if (p->open) {
        sqlite3_bind_int64(uses, 1, p->no);
        if (sqlite3_step(uses) != SQLITE_ROW) {
            rc = store_fail(store, err, "count anchor uses");
            goto done;
        }
        p->uses = sqlite3_column_int64(uses, 0);
        p->min_at = p->base_at + sqlite3_column_int64(uses, 1);
        p->max_at = p->base_at + sqlite3_column_int64(uses, 2);
    }
    p->known = true;
done:
    sqlite3_finalize(last);
    sqlite3_finalize(uses);
    return rc;
}

static int part_close(aw_store *store, aw_error *err)
{
    struct store_anchor_part *p = &store->part;
    sqlite3_stmt *close;
    int rc = store_stmt(store, STMT_PART_CLOSE, &close, err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_int64(close, 1, p->min_at);
    sqlite3_bind_int64(close, 2, p->max_at);
    sqlite3_bind_int64(close, 3, p->no);
    rc = store_exec_stmt(store, close, err, "close anchor part");
    if (rc == AW_OK)
        p->open = false;
    return rc;
}

static int part_open(aw_store *store, int64_t base_at, int64_t first_rowid,
                     aw_error *err)
{
    struct store_anchor_part *p = &store->part;
    sqlite3_stmt *open;
    int rc = store_stmt(store, STMT_PART_OPEN, &open, err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_int64(open, 1, p->no + 1);
    sqlite3_bind_int64(open, 2, first_rowid);
    sqlite3_bind_int64(open, 3, base_at);
    rc = store_exec_stmt(store, open, err, "open anchor part");
    if (rc == AW_OK)
        *p = (struct store_anchor_part){.known = true,
                                        .open = true,
                                        .no = p->no + 1,
                                        .base_at = base_at,
                                        .min_at = base_at,
                                        .max_at = base_at};
    return rc;
}

int store_anchor_part(aw_store *store, int64_t occurred_at, int64_t event_rowid,
                      size_t nuses, int64_t *part_no, int64_t *at,
                      aw_error *err)
{
    struct store_anchor_part *p = &store->part;
    int rc = p->known ? AW_OK : parts_read(store, err);
    /* A time too far from the part's base for the difference to fit opens
     * a part of its own (times are checked, but not to be this close). */
    bool fits = p->open && !__builtin_sub_overflow(occurred_at, p->base_at, at);
    if (rc == AW_OK && p->open && (!fits || p->uses >= STORE_PART_USES))
        rc = part_close(store, err);
    if (rc == AW_OK && !p->open) {
        rc = part_open(store, occurred_at, event_rowid, err);
        *at = 0;
    }
    if (rc != AW_OK)
        return rc;
    p->uses += (int64_t)nuses;
    if (occurred_at < p->min_at)
        p->min_at = occurred_at;
    if (occurred_at > p->max_at)
        p->max_at = occurred_at;
    *part_no = p->no;
    return AW_OK;
}

void store_anchor_parts_forget(aw_store *store)
{
    store->part.known = false;
}
