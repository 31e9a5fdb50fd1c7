/* chain.c -- raw entries read back, and the hash chain that makes editing
 * or deleting them detectable.
 *
 * Raw entries are read by id-time window (`export`, `replay`) or one at a
 * time by row (`trace` shows what only the raw entry holds: determining
 * policies, diagnostics, the whole delegation chain). Rows stored as zstd
 * frames are decompressed first (evidence.c): readers and the chain only
 * ever see the verbatim bytes.
 *
 * chain_0 is 32 zero bytes and chain_i = SHA-256(chain_{i-1} || stream ||
 * 0x00 || entry_id || 0x00 || raw). Entry rows are numbered 1, 2, 3, ...
 * without gaps (aw_store_put_entry assigns them), and the tip (last row and
 * head) is written with every commit that added entries. A row written
 * before schema 8 stores its chain value; a row in an evidence block does
 * not, its block stores the value after its last row. So verification,
 * walking rows in order inside one read snapshot, can name the first break:
 *  - a gap in row numbers: rows deleted;
 *  - a row whose stored chain differs from the recomputed one: that row was
 *    edited (its raw bytes, its ids, or its chain value); for rows in a
 *    block, the block's rows are named (one of them, or the block, was);
 *  - a row whose stored frame cannot be decompressed (or names a missing
 *    dictionary, or no block holds it): that row, its block or its
 *    dictionary was edited; the reason;
 *  - fewer rows than the tip says: the last rows were deleted;
 *  - a last head that differs from the tip's: rows edited and re-chained.
 */
#include <stdio.h>
#include <string.h>

#include "store/handle.h"

#define VERIFY_PROGRESS_EVERY 100000
#define VERIFY_STOP           1

/* Columns of ENTRY_COLUMNS (handle.c). */
enum {
    COL_ROWID,
    COL_STREAM,
    COL_ID_MS,
    COL_ID_SEQ,
    COL_RAW,
    COL_ORIG_SIZE,
    COL_CHAIN,
    COL_ZSTD_DICT
};

/* What entry_row needs besides the callback: where to decompress to, and
 * where to say why a row could not be. */
struct entry_ctx {
    struct row_ctx c;
    aw_store *store;
    struct store_reader reader;
    aw_error *err;
};

static int entry_row(sqlite3_stmt *stmt, void *ctx)
{
    struct entry_ctx *e = ctx;
    char entry_id[STORE_ENTRY_ID_MAX];
    int64_t id_ms = sqlite3_column_int64(stmt, COL_ID_MS);
    aw_entry_row row = {
        .rowid = sqlite3_column_int64(stmt, COL_ROWID),
        .stream = store_column_text(stmt, COL_STREAM),
        .entry_id = store_format_entry_id(
            id_ms, sqlite3_column_int64(stmt, COL_ID_SEQ), entry_id),
        .id_ms = id_ms,
        .truncated = sqlite3_column_type(stmt, COL_ORIG_SIZE) != SQLITE_NULL,
    };
    int rc =
        store_evidence_unpack(e->store, stmt, COL_RAW, COL_ZSTD_DICT, row.rowid,
                              &e->reader, &row.raw, &row.raw_len, e->err);
    return rc != AW_OK ? rc : e->c.fn.entry(&row, e->c.ud);
}

int aw_store_iter_entries(aw_store *store, int64_t since_ms, int64_t until_ms,
                          aw_entry_row_fn fn, void *ud, aw_error *err)
{
    sqlite3_stmt *stmt;
    int rc = store_stmt(store, STMT_ENTRIES_WINDOW, &stmt, err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_int64(stmt, 1, since_ms);
    sqlite3_bind_int64(stmt, 2, until_ms);
    struct entry_ctx ctx = {
        .c = {.fn.entry = fn, .ud = ud}, .store = store, .err = err};
    rc = store_each_row(store, stmt, entry_row, &ctx, err, "read entries");
    store_reader_free(&ctx.reader);
    return rc;
}

int aw_store_get_entry(aw_store *store, int64_t rowid, aw_entry_row_fn fn,
                       void *ud, aw_error *err)
{
    sqlite3_stmt *stmt;
    int rc = store_stmt(store, STMT_ENTRY_BY_ROWID, &stmt, err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_int64(stmt, 1, rowid);
    struct entry_ctx ctx = {
        .c = {.fn.entry = fn, .ud = ud}, .store = store, .err = err};
    int step = sqlite3_step(stmt);
    if (step == SQLITE_ROW)
        rc = entry_row(stmt, &ctx);
    else if (step == SQLITE_DONE)
        rc = aw_error_set(err, AW_ERR_NOTFOUND, "no entry at row %lld",
                          (long long)rowid);
    else
        rc = store_fail(store, err, "look up entry");
    sqlite3_reset(stmt);
    store_reader_free(&ctx.reader);
    return rc;
}

/* The chain value after the entries row at stmt's current row, from the
 * value before it (prev and next may be the same bytes); buf is scratch.
 * Fails with the reason the row's evidence cannot be read, or
 * AW_ERR_NOMEM. */
static int chain_next(aw_store *store, sqlite3_stmt *stmt,
                      struct store_reader *reader, aw_buf *buf,
                      const unsigned char prev[32], unsigned char next[32],
                      aw_error *err)
{
    const char *stream = store_column_text(stmt, COL_STREAM);
    char entry_id[STORE_ENTRY_ID_MAX];
    store_format_entry_id(sqlite3_column_int64(stmt, COL_ID_MS),
                          sqlite3_column_int64(stmt, COL_ID_SEQ), entry_id);
    const char *raw;
    size_t raw_len;
    int rc = store_evidence_unpack(store, stmt, COL_RAW, COL_ZSTD_DICT,
                                   sqlite3_column_int64(stmt, COL_ROWID),
                                   reader, &raw, &raw_len, err);
    if (rc != AW_OK)
        return rc;
    if (store_chain_prefix(buf, prev, stream ? stream : "", entry_id) !=
            AW_OK ||
        store_buf_append(buf, raw, raw_len) != AW_OK)
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    aw_sha256(buf->ptr, buf->len, next);
    return AW_OK;
}

/* What aw_store_chain_at re-hashes with: the value after the previous
 * row. */
struct chain_at {
    aw_store *store;
    struct store_reader reader;
    aw_buf buf;
    unsigned char head[32];
    int64_t next_rowid;
    aw_error *err;
};

/* Re-hashes one more row onto c->head. */
static int chain_row(sqlite3_stmt *stmt, void *ctx)
{
    struct chain_at *c = ctx;
    int64_t rowid = sqlite3_column_int64(stmt, COL_ROWID);
    if (rowid != c->next_rowid)
        return aw_error_set(c->err, AW_ERR_BROKEN, "row %lld is missing",
                            (long long)c->next_rowid);
    int rc = chain_next(c->store, stmt, &c->reader, &c->buf, c->head, c->head,
                        c->err);
    if (rc == AW_OK)
        c->next_rowid++;
    return rc;
}

/* The chain value stored for row rowid, into c->head: the row's own, or
 * its block's when it is the block's last row (*stored false when it is
 * inside a block); then c->reader holds that block. */
static int chain_stored(struct chain_at *c, int64_t rowid, bool *stored)
{
    *stored = true;
    if (rowid == 0) {
        memset(c->head, 0, 32);
        return AW_OK;
    }
    sqlite3_stmt *stmt;
    int rc = store_stmt(c->store, STMT_ENTRY_BY_ROWID, &stmt, c->err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_int64(stmt, 1, rowid);
    int step = sqlite3_step(stmt);
    if (step == SQLITE_ROW && !store_row_in_block(stmt, COL_RAW)) {
        if (sqlite3_column_bytes(stmt, COL_CHAIN) == 32)
            memcpy(c->head, sqlite3_column_blob(stmt, COL_CHAIN), 32);
        else
            rc = aw_error_set(c->err, AW_ERR_BROKEN,
                              "row %lld has no chain value", (long long)rowid);
    } else if (step == SQLITE_ROW) {
        const char *raw;
        size_t raw_len;
        rc = store_reader_entry(c->store, &c->reader, rowid, &raw, &raw_len,
                                c->err);
        *stored = rc == AW_OK && c->reader.last == rowid;
        if (*stored)
            memcpy(c->head, c->reader.chain, 32);
    } else if (step == SQLITE_DONE) {
        rc = aw_error_set(c->err, AW_ERR_NOTFOUND, "no entry at row %lld",
                          (long long)rowid);
    } else {
        rc = store_fail(c->store, c->err, "look up entry");
    }
    sqlite3_reset(stmt);
    return rc;
}

int aw_store_chain_at(aw_store *store, int64_t rowid, unsigned char hash[32],
                      aw_error *err)
{
    struct chain_at c = {.store = store, .err = err};
    bool stored = false;
    int rc = chain_stored(&c, rowid < 0 ? 0 : rowid, &stored);
    int64_t first = c.reader.first;
    if (rc == AW_OK && !stored) {
        /* Inside a block: from the value before the block, re-hashed. */
        rc = chain_stored(&c, first - 1, &stored);
        if (rc == AW_OK && !stored)
            rc = aw_error_set(err, AW_ERR_BROKEN,
                              "the evidence block of row %lld starts inside "
                              "another",
                              (long long)rowid);
        sqlite3_stmt *rows;
        if (rc == AW_OK)
            rc = store_stmt(store, STMT_ENTRIES_ROWS, &rows, err);
        if (rc == AW_OK) {
            sqlite3_bind_int64(rows, 1, first);
            sqlite3_bind_int64(rows, 2, rowid);
            c.next_rowid = first;
            rc =
                store_each_row(store, rows, chain_row, &c, err, "read entries");
        }
    }
    if (rc == AW_OK)
        memcpy(hash, c.head, 32);
    aw_buf_free(&c.buf);
    store_reader_free(&c.reader);
    return rc;
}

struct verify {
    aw_store *store;
    aw_chain_report *report;
    void (*progress)(int64_t checked, void *ud);
    void *ud;
    int64_t next_rowid;
    unsigned char head[32];
    aw_buf buf;
    struct store_reader reader;
    int rc; /* an error that is not a break, with why */
    aw_error why;
};

static int verify_break(struct verify *v, int64_t rowid, const char *fmt,
                        int64_t a, int64_t b)
{
    v->report->ok = false;
    v->report->first_bad_rowid = rowid;
    snprintf(v->report->what, sizeof v->report->what, fmt, (long long)a,
             (long long)b);
    return VERIFY_STOP;
}

static int verify_missing(struct verify *v, int64_t first, int64_t last)
{
    if (first == last)
        return verify_break(v, first, "row %lld missing", first, last);
    return verify_break(v, first, "rows %lld-%lld missing", first, last);
}

static int verify_row(sqlite3_stmt *stmt, void *ctx)
{
    struct verify *v = ctx;
    int64_t rowid = sqlite3_column_int64(stmt, COL_ROWID);
    if (rowid != v->next_rowid)
        return verify_missing(v, v->next_rowid, rowid - 1);
    bool in_block = store_row_in_block(stmt, COL_RAW);
    unsigned char chain[32];
    int rc = chain_next(v->store, stmt, &v->reader, &v->buf, v->head, chain,
                        &v->why);
    if (rc == AW_ERR_NOMEM || rc == AW_ERR_IO) {
        v->rc = rc;
        return VERIFY_STOP;
    }
    if (rc != AW_OK) {
        /* Not readable is as edited as it gets; say why. */
        v->report->ok = false;
        v->report->first_bad_rowid = rowid;
        snprintf(v->report->what, sizeof v->report->what, "%s", v->why.msg);
        return VERIFY_STOP;
    }
    int stored_chain = sqlite3_column_bytes(stmt, COL_CHAIN);
    if (in_block
            ? stored_chain != 0
            : stored_chain != 32 ||
                  memcmp(sqlite3_column_blob(stmt, COL_CHAIN), chain, 32) != 0)
        return verify_break(v, rowid, "row %lld edited", rowid, 0);
    if (in_block && rowid == v->reader.last &&
        memcmp(v->reader.chain, chain, 32) != 0)
        return verify_break(v, v->reader.first,
                            "rows %lld-%lld edited (their evidence block "
                            "does not chain)",
                            v->reader.first, v->reader.last);
    memcpy(v->head, chain, 32);
    v->next_rowid++;
    v->report->checked++;
    if (v->progress != NULL && v->report->checked % VERIFY_PROGRESS_EVERY == 0)
        v->progress(v->report->checked, v->ud);
    return AW_OK;
}

/* The tip the walk must end on: this transaction's, if it added entries,
 * else the committed one. */
static int verify_read_tip(aw_store *store, int64_t *last_rowid,
                           unsigned char head[32], aw_error *err)
{
    if (store->in_tx) {
        int rc = store_blocks_settle(store, err);
        *last_rowid = store->last_rowid;
        memcpy(head, store->head, 32);
        return rc;
    }
    sqlite3_stmt *tip;
    int rc = store_stmt(store, STMT_TIP_GET, &tip, err);
    if (rc != AW_OK)
        return rc;
    int step = sqlite3_step(tip);
    if (step == SQLITE_ROW && sqlite3_column_bytes(tip, 1) == 32) {
        *last_rowid = sqlite3_column_int64(tip, 0);
        memcpy(head, sqlite3_column_blob(tip, 1), 32);
        rc = AW_OK;
    } else if (step == SQLITE_ROW || step == SQLITE_DONE) {
        rc = aw_error_set(err, AW_ERR, "index %s: chain tip is damaged",
                          store->path);
    } else {
        rc = store_fail(store, err, "read chain tip");
    }
    sqlite3_reset(tip);
    return rc;
}

static int verify_walk(aw_store *store, struct verify *v, aw_error *err)
{
    int64_t tip_rowid = 0;
    unsigned char tip_head[32];
    int rc = verify_read_tip(store, &tip_rowid, tip_head, err);
    sqlite3_stmt *stmt;
    if (rc == AW_OK)
        rc = store_stmt(store, STMT_ENTRIES_ALL, &stmt, err);
    if (rc == AW_OK)
        rc = store_each_row(store, stmt, verify_row, v, err, "read entries");
    if (rc == VERIFY_STOP)
        return v->rc != AW_OK ? aw_error_set(err, v->rc, "%s", v->why.msg)
                              : AW_OK;
    if (rc != AW_OK)
        return rc;
    int64_t last = v->next_rowid - 1;
    if (last < tip_rowid)
        verify_missing(v, last + 1, tip_rowid);
    else if (last > tip_rowid)
        verify_break(v, tip_rowid + 1,
                     "rows %lld-%lld were added outside auditwatch",
                     tip_rowid + 1, last);
    else if (memcmp(v->head, tip_head, 32) != 0)
        verify_break(v, last,
                     "chain ends differently from its tip at row "
                     "%lld: rows were edited and re-chained",
                     last, 0);
    return AW_OK;
}

int aw_store_verify_chain(aw_store *store, aw_chain_report *report,
                          void (*progress)(int64_t checked, void *ud), void *ud,
                          aw_error *err)
{
    memset(report, 0, sizeof *report);
    report->ok = true;
    struct verify v = {.store = store,
                       .report = report,
                       .progress = progress,
                       .ud = ud,
                       .next_rowid = 1};
    /* One snapshot for the tip and every row (the caller's, when it holds
     * a transaction or a read snapshot). */
    bool own_snapshot = sqlite3_get_autocommit(store->db) != 0;
    if (own_snapshot &&
        sqlite3_exec(store->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return store_fail(store, err, "begin read");
    int rc = verify_walk(store, &v, err);
    if (own_snapshot)
        sqlite3_exec(store->db, "COMMIT", NULL, NULL, NULL);
    aw_buf_free(&v.buf);
    store_reader_free(&v.reader);
    return rc;
}
