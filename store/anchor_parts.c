/* anchor_parts.c -- the anchor index in time parts (schema/0014).
 *
 * Part p holds the uses that occurred from its start_at up to the next
 * part's. The newest part takes every use at or after its start until it
 * holds STORE_PART_USES; the next use after its start then opens a part
 * starting at that use's time, or just after the newest use the full
 * part holds if that is later (a clock ahead of the others must not leave
 * a use behind the next part's start). A use that occurred before the newest
 * part's start goes to the part covering its time: late evidence, which
 * is rare and recent, so its part's pages are as a rule still cached.
 * Either way the pages an insert touches are few, however large the
 * history (an index keyed by anchor alone took each use on its anchor's
 * leaf, anywhere), and a look-up over a time range seeks only the parts
 * covering it (query.c).
 *
 * The newest part is read once per handle (and again after a rollback,
 * which may have undone an opening), with the count and the latest time
 * of its uses (a part holds about STORE_PART_USES: the migration gives
 * the uses of an older index a part of their own); the part a late use
 * went to is remembered, since late uses come in runs.
 */
#include "store/handle.h"

#include <stdint.h>

/* 65,536 uses are ~1.3 MB of leaves: cached with room to spare, and a
 * look-up with no time bounds over the parts of 10M events seeks about
 * 300 of them. */
#define STORE_PART_USES 65536

/* A part starting before 1970 keeps whole times: a time after it less a
 * negative base could overflow. */
static int64_t part_base(int64_t start_at)
{
    return start_at >= 0 ? start_at : 0;
}

static int parts_read(aw_store *store, aw_error *err)
{
    struct store_anchor_parts *p = &store->parts;
    sqlite3_stmt *last = NULL, *uses = NULL;
    int rc = AW_OK;
    if (sqlite3_prepare_v2(store->db,
                           "SELECT part_no, start_at, base_at FROM "
                           "anchor_parts ORDER BY part_no DESC LIMIT 1",
                           -1, &last, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(store->db,
                           "SELECT count(*), max(at) FROM anchor_uses "
                           "WHERE part_no = ?1",
                           -1, &uses, NULL) != SQLITE_OK ||
        sqlite3_step(last) != SQLITE_ROW) {
        rc = store_fail(store, err, "read anchor parts");
        goto done;
    }
    p->newest = (struct store_anchor_part){
        sqlite3_column_int64(last, 0), sqlite3_column_int64(last, 1), INT64_MAX,
        sqlite3_column_int64(last, 2)};
    sqlite3_bind_int64(uses, 1, p->newest.no);
    if (sqlite3_step(uses) != SQLITE_ROW) {
        rc = store_fail(store, err, "count anchor uses");
        goto done;
    }
    p->newest_uses = sqlite3_column_int64(uses, 0);
    p->newest_max_at = p->newest_uses
                           ? p->newest.base_at + sqlite3_column_int64(uses, 1)
                           : INT64_MIN;
    p->late.no = -1;
    p->known = true;
done:
    sqlite3_finalize(last);
    sqlite3_finalize(uses);
    return rc;
}

static int part_open(aw_store *store, int64_t start_at, aw_error *err)
{
    struct store_anchor_parts *p = &store->parts;
    sqlite3_stmt *open;
    int rc = store_stmt(store, STMT_PART_OPEN, &open, err);
    if (rc != AW_OK)
        return rc;
    struct store_anchor_part next = {p->newest.no + 1, start_at, INT64_MAX,
                                     part_base(start_at)};
    sqlite3_bind_int64(open, 1, next.no);
    sqlite3_bind_int64(open, 2, next.start_at);
    sqlite3_bind_int64(open, 3, next.base_at);
    rc = store_exec_stmt(store, open, err, "open anchor part");
    if (rc != AW_OK)
        return rc;
    if (p->late.no == p->newest.no)
        p->late.end_at = start_at;
    p->newest = next;
    p->newest_uses = 0;
    p->newest_max_at = INT64_MIN;
    return AW_OK;
}

/* The part covering a time before the newest part's start. */
static int part_covering(aw_store *store, int64_t occurred_at, aw_error *err)
{
    struct store_anchor_part *late = &store->parts.late;
    if (late->no >= 0 && occurred_at >= late->start_at &&
        occurred_at < late->end_at)
        return AW_OK;
    sqlite3_stmt *find;
    int rc = store_stmt(store, STMT_PART_COVERING, &find, err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_int64(find, 1, occurred_at);
    int step = sqlite3_step(find);
    if (step == SQLITE_ROW)
        *late = (struct store_anchor_part){
            sqlite3_column_int64(find, 0), sqlite3_column_int64(find, 1),
            sqlite3_column_int64(find, 2), sqlite3_column_int64(find, 3)};
    sqlite3_reset(find);
    /* Part 0 starts at INT64_MIN, so some part covers every time. */
    return step == SQLITE_ROW ? AW_OK
                              : store_fail(store, err, "find anchor part");
}

int store_anchor_part(aw_store *store, int64_t occurred_at, size_t nuses,
                      int64_t *part_no, int64_t *at, aw_error *err)
{
    struct store_anchor_parts *p = &store->parts;
    const struct store_anchor_part *part = &p->newest;
    int rc = p->known ? AW_OK : parts_read(store, err);
    if (rc == AW_OK && occurred_at > p->newest.start_at &&
        p->newest_uses >= STORE_PART_USES && p->newest_max_at < INT64_MAX)
        rc = part_open(store,
                       occurred_at > p->newest_max_at ? occurred_at
                                                      : p->newest_max_at + 1,
                       err);
    if (rc == AW_OK && occurred_at < p->newest.start_at) {
        rc = part_covering(store, occurred_at, err);
        part = &p->late;
    }
    if (rc != AW_OK)
        return rc;
    if (part == &p->newest) {
        p->newest_uses += (int64_t)nuses;
        if (occurred_at > p->newest_max_at)
            p->newest_max_at = occurred_at;
    }
    *part_no = part->no;
    *at = occurred_at - part->base_at; /* occurred_at >= start_at >= base */
    return AW_OK;
}

void store_anchor_parts_forget(aw_store *store)
{
    store->parts.known = false;
}
