/* anchor_index.c -- the anchor index: parts (schema/0014) holding runs
 * (schema/0015).
 *
 * Uses go to the open part until it holds STORE_PART_USES, then a new part
 * opens. A part's pages are written while it is open and never again, so
 * the pages a write touches stay few and cached, however large the
 * history. The open part's anchor_parts row claims all time, so a look-up
 * in the same transaction finds what was just stored; closing it writes
 * the occurred_at range of its uses, by which later look-ups skip it
 * (query.c).
 *
 * Within a part, a use is not a row: the uses of a transaction are kept
 * in memory and written by anchor, one row (a run) per anchor and up to
 * STORE_RUN_USES events, when the transaction commits, when a look-up by
 * anchor comes first (the detectors' checks of a batch's revocations), or
 * when the part closes. Uses are kept in row order, so the runs of one
 * anchor in one part never overlap in rows, and an event that names an
 * anchor twice is listed once.
 *
 * The open part is read once per handle (and again after a rollback,
 * which may have undone an opening or a closing): its row, and the count
 * and range of its uses.
 */
#include "store/handle.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Uses in one part: a look-up over all the parts of 10M events seeks
 * about 300 of them. */
#define STORE_PART_USES 65536
/* Events in one run, so that a look-up of one event (`verify`) reads a
 * few kilobytes of it. */
#define STORE_RUN_USES 512
/* Uses kept before they are written whatever the transaction does next:
 * a batch of the daemon (4,000 entries) keeps fewer. */
#define STORE_KEPT_USES 16384

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
                           "SELECT sum(json_array_length(event_rows)), "
                           "min(min_at), max(max_at) FROM anchor_runs "
                           "WHERE part_no = ?1",
                           -1, &uses, NULL) != SQLITE_OK) {
        rc = store_fail(store, err, "read anchor parts");
        goto done;
    }
    memset(p, 0, sizeof *p);
    int step = sqlite3_step(last);
    if (step == SQLITE_ROW) {
        p->no = sqlite3_column_int64(last, 0);
        p->min_at = p->max_at = sqlite3_column_int64(last, 1);
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
        if (p->uses > 0) {
            p->min_at = sqlite3_column_int64(uses, 1);
            p->max_at = sqlite3_column_int64(uses, 2);
        }
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
    int rc = store_anchor_runs_flush(store, err);
    if (rc == AW_OK)
        rc = store_stmt(store, STMT_PART_CLOSE, &close, err);
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

static int part_open(aw_store *store, int64_t occurred_at, int64_t first_rowid,
                     aw_error *err)
{
    struct store_anchor_part *p = &store->part;
    sqlite3_stmt *open;
    int rc = store_stmt(store, STMT_PART_OPEN, &open, err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_int64(open, 1, p->no + 1);
    sqlite3_bind_int64(open, 2, first_rowid);
    sqlite3_bind_int64(open, 3, occurred_at);
    rc = store_exec_stmt(store, open, err, "open anchor part");
    if (rc == AW_OK)
        *p = (struct store_anchor_part){.known = true,
                                        .open = true,
                                        .no = p->no + 1,
                                        .min_at = occurred_at,
                                        .max_at = occurred_at};
    return rc;
}

int store_anchor_part(aw_store *store, int64_t occurred_at, int64_t event_rowid,
                      size_t nuses, aw_error *err)
{
    struct store_anchor_part *p = &store->part;
    int rc = p->known ? AW_OK : parts_read(store, err);
    if (rc == AW_OK && p->open && p->uses >= STORE_PART_USES)
        rc = part_close(store, err);
    if (rc == AW_OK && !p->open)
        rc = part_open(store, occurred_at, event_rowid, err);
    if (rc == AW_OK && store->nuses >= STORE_KEPT_USES)
        rc = store_anchor_runs_flush(store, err);
    if (rc != AW_OK)
        return rc;
    if (!aw_array_grow((void **)&store->uses, &store->uses_cap,
                       store->nuses + nuses, sizeof *store->uses))
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    p->uses += (int64_t)nuses;
    if (occurred_at < p->min_at)
        p->min_at = occurred_at;
    if (occurred_at > p->max_at)
        p->max_at = occurred_at;
    return AW_OK;
}

void store_anchor_keep(aw_store *store, int64_t anchor_no, int64_t event_rowid,
                       int64_t occurred_at)
{
    store->uses[store->nuses++] =
        (struct store_anchor_use){anchor_no, event_rowid, occurred_at};
}

static int use_order(const void *a, const void *b)
{
    const struct store_anchor_use *x = a, *y = b;
    if (x->anchor_no != y->anchor_no)
        return x->anchor_no < y->anchor_no ? -1 : 1;
    return (x->event_rowid > y->event_rowid) -
           (x->event_rowid < y->event_rowid);
}

/* Writes uses[0..n), one anchor's in row order, each row once, as a run. */
static int run_write(aw_store *store, const struct store_anchor_use *uses,
                     size_t n, aw_error *err)
{
    aw_buf *text = &store->run_text;
    int64_t first = uses[0].event_rowid;
    int64_t min_at = uses[0].occurred_at, max_at = min_at;
    char offset[24];
    text->len = 0;
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(offset, sizeof offset, "%c%lld", i ? ',' : '[',
                           (long long)(uses[i].event_rowid - first));
        if (aw_buf_append(text, offset, (size_t)len) != AW_OK)
            return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
        if (uses[i].occurred_at < min_at)
            min_at = uses[i].occurred_at;
        if (uses[i].occurred_at > max_at)
            max_at = uses[i].occurred_at;
    }
    if (aw_buf_append(text, "]", 1) != AW_OK)
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    sqlite3_stmt *add;
    int rc = store_stmt(store, STMT_ANCHOR_RUN_ADD, &add, err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_int64(add, 1, store->part.no);
    sqlite3_bind_int64(add, 2, uses[0].anchor_no);
    sqlite3_bind_int64(add, 3, first);
    sqlite3_bind_int64(add, 4, uses[n - 1].event_rowid);
    sqlite3_bind_int64(add, 5, min_at);
    sqlite3_bind_int64(add, 6, max_at);
    sqlite3_bind_text(add, 7, text->ptr, (int)text->len, SQLITE_STATIC);
    return store_exec_stmt(store, add, err, "store anchor run");
}

int store_anchor_runs_flush(aw_store *store, aw_error *err)
{
    struct store_anchor_use *uses = store->uses;
    size_t n = 0;
    if (store->nuses == 0)
        return AW_OK;
    qsort(uses, store->nuses, sizeof *uses, use_order);
    for (size_t i = 0; i < store->nuses; i++)
        if (n == 0 || uses[i].anchor_no != uses[n - 1].anchor_no ||
            uses[i].event_rowid != uses[n - 1].event_rowid)
            uses[n++] = uses[i];
    int rc = AW_OK;
    for (size_t from = 0; rc == AW_OK && from < n;) {
        size_t to = from + 1;
        while (to < n && to - from < STORE_RUN_USES &&
               uses[to].anchor_no == uses[from].anchor_no)
            to++;
        rc = run_write(store, uses + from, to - from, err);
        from = to;
    }
    if (rc == AW_OK)
        store->nuses = 0;
    return rc;
}

void store_anchor_index_forget(aw_store *store)
{
    store->part.known = false;
    store->nuses = 0;
}
