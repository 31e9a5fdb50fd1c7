/* evidence_blocks.c -- raw entries stored as zstd frames of consecutive
 * rows (schema/0008), and read back one row at a time.
 *
 * Writing: aw_store_put_entry adds every new entry to the open block
 * (store_block_for_entry, store_block_keep), which keeps the entries'
 * labels and verbatim bytes in memory. A full block is handed to the
 * sealer (evidence_sealer.c), which chains and compresses it while the
 * next block fills; its row (one evidence_blocks row, compressed with the
 * dictionary of the moment it was handed over) is written when its slot is
 * needed again or at the next settle. Every commit settles: the open block
 * is sealed and written too while it is not full, and the same row is
 * then rewritten by later commits until it is, so a committed entry is
 * always in a stored block, and at a high rate, where batches are large,
 * each block is compressed about once. The open block survives a commit
 * only: a rollback drops it (its stored row, if any, is rolled back with
 * it), and a transaction that finds rows it did not write after the block
 * (another writer's) starts a new one.
 *
 * Reading: a row whose raw is empty is in the block whose first_rowid is
 * the greatest one not above it. The reader (struct store_reader, one per
 * walk) keeps the last block it decompressed, so a walk in row order
 * decompresses each block once. Inside the writer's transaction the
 * blocks are settled before one of their rows is read.
 */
#include <stdio.h>
#include <string.h>

#include "store/handle.h"

/* A block never holds more: it is closed once it reaches STORE_BLOCK_BYTES,
 * and one entry is at most about AW_STORE_MAX_RAW_BYTES. A frame claiming
 * more is damaged. */
#define BLOCK_MAX_PLAIN                                                        \
    (STORE_BLOCK_BYTES + 2 * (size_t)AW_STORE_MAX_RAW_BYTES +                  \
     4 * STORE_BLOCK_ENTRIES)

static bool block_full(const struct store_block *b)
{
    return b->n == STORE_BLOCK_ENTRIES || b->kept_bytes >= STORE_BLOCK_BYTES;
}

static void block_empty(struct store_block *b)
{
    b->first = 0;
    b->n = 0;
    b->kept_bytes = 0;
    b->plain.len = 0;
    b->labels.len = 0;
    b->chained = 0;
    b->unsealed = false;
    b->unwritten = false;
}

void store_block_begin(aw_store *store)
{
    struct store_block *b = &store->blocks[store->open_block];
    if (b->first != 0 && b->first + (int64_t)b->n - 1 != store->last_rowid)
        block_empty(b);
    store_sealer_set_chain(store, store->head);
}

void store_block_discard(aw_store *store)
{
    store_sealer_wait(store, NULL);
    for (size_t i = 0; i < STORE_BLOCK_SLOTS; i++)
        block_empty(&store->blocks[i]);
}

void store_block_free(aw_store *store)
{
    store_sealer_stop(store);
    for (size_t i = 0; i < STORE_BLOCK_SLOTS; i++) {
        aw_buf_free(&store->blocks[i].plain);
        aw_buf_free(&store->blocks[i].labels);
        aw_buf_free(&store->blocks[i].frame);
    }
    memset(store->blocks, 0, sizeof store->blocks);
}

/* Writes the row of b, sealed, and frees its slot once it is full. */
static int block_write(aw_store *store, struct store_block *b, aw_error *err)
{
    if (b->rc != AW_OK) {
        *err = b->err;
        return b->rc;
    }
    sqlite3_stmt *put;
    int rc = store_stmt(store, STMT_BLOCK_PUT, &put, err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_int64(put, 1, b->first);
    sqlite3_bind_int64(put, 2, b->first + (int64_t)b->n - 1);
    sqlite3_bind_int64(put, 3, b->dict_no);
    sqlite3_bind_blob(put, 4, b->chain, 32, SQLITE_STATIC);
    sqlite3_bind_blob64(put, 5, b->frame.ptr, b->frame.len, SQLITE_STATIC);
    rc = store_exec_stmt(store, put, err, "store evidence block");
    if (rc != AW_OK)
        return rc;
    b->unwritten = false;
    if (block_full(b))
        block_empty(b);
    return AW_OK;
}

static int block_seal(aw_store *store, struct store_block *b, aw_error *err)
{
    b->unsealed = false;
    b->unwritten = true;
    return store_sealer_seal(store, b, err);
}

int store_blocks_settle(aw_store *store, aw_error *err)
{
    struct store_block *open = &store->blocks[store->open_block];
    int rc = open->unsealed ? block_seal(store, open, err) : AW_OK;
    store_sealer_wait(store, NULL);
    /* Oldest first, the open block last: rows in row order. */
    for (size_t k = 1; rc == AW_OK && k <= STORE_BLOCK_SLOTS; k++) {
        struct store_block *b =
            &store->blocks[(store->open_block + k) % STORE_BLOCK_SLOTS];
        if (b->unwritten)
            rc = block_write(store, b, err);
    }
    if (rc == AW_OK)
        memcpy(store->head, store->sealer.chain, 32);
    return rc;
}

int store_block_for_entry(aw_store *store, struct store_block **out,
                          aw_error *err)
{
    struct store_block *b = &store->blocks[store->open_block];
    if (b->first != 0 && block_full(b)) {
        /* The block this slot held a round ago. */
        store_sealer_wait(store, b);
        int rc = b->unwritten ? block_write(store, b, err) : AW_OK;
        if (rc != AW_OK)
            return rc;
        block_empty(b);
    }
    *out = b;
    return AW_OK;
}

void store_block_drop(struct store_block *b)
{
    b->plain.len = b->kept_bytes;
    b->labels.len = b->n == 0 ? 0 : b->label_ends[b->n - 1];
}

int store_block_keep(aw_store *store, struct store_block *b, int64_t rowid,
                     aw_error *err)
{
    if (b->n == 0)
        b->first = rowid;
    b->sizes[b->n] = (uint32_t)(b->plain.len - b->kept_bytes);
    b->label_ends[b->n] = (uint32_t)b->labels.len;
    b->n++;
    b->kept_bytes = b->plain.len;
    b->unsealed = true;
    if (!block_full(b))
        return AW_OK;
    store->open_block = (store->open_block + 1) % STORE_BLOCK_SLOTS;
    return block_seal(store, b, err);
}

void store_reader_free(struct store_reader *reader)
{
    aw_buf_free(&reader->plain);
    aw_buf_free(&reader->block);
    memset(reader, 0, sizeof *reader);
}

/* Splits the decompressed block of rows first..last into its entries:
 * the sizes behind them must add up to exactly the bytes before them. */
static int reader_split(struct store_reader *r, int64_t first, int64_t last,
                        aw_error *err)
{
    size_t n = (size_t)(last - first + 1);
    const unsigned char *p = (const unsigned char *)r->block.ptr;
    bool ok = r->block.len >= 4 * n;
    size_t entries_len = ok ? r->block.len - 4 * n : 0;
    size_t at = 0;
    for (size_t i = 0; ok && i < n; i++) {
        const unsigned char *s = p + entries_len + 4 * i;
        size_t size = (size_t)s[0] | (size_t)s[1] << 8 | (size_t)s[2] << 16 |
                      (size_t)s[3] << 24;
        r->offsets[i] = at;
        ok = size <= entries_len - at;
        at += ok ? size : 0;
    }
    if (!ok || at != entries_len)
        return aw_error_set(err, AW_ERR,
                            "the evidence block of rows %lld-%lld is "
                            "damaged: its entry sizes do not add up",
                            (long long)first, (long long)last);
    r->offsets[n] = at;
    r->first = first;
    r->last = last;
    return AW_OK;
}

/* The first row of the oldest block whose stored row is not up to date,
 * or INT64_MAX. */
static int64_t blocks_unwritten_from(const aw_store *store)
{
    int64_t from = INT64_MAX;
    for (size_t i = 0; i < STORE_BLOCK_SLOTS; i++) {
        const struct store_block *b = &store->blocks[i];
        if ((b->unsealed || b->unwritten) && b->first < from)
            from = b->first;
    }
    return from;
}

/* Loads into r the block that holds row rowid. */
static int reader_load(aw_store *store, struct store_reader *r, int64_t rowid,
                       aw_error *err)
{
    int rc = AW_OK;
    if (store->in_tx && blocks_unwritten_from(store) <= rowid)
        rc = store_blocks_settle(store, err);
    sqlite3_stmt *find;
    if (rc == AW_OK)
        rc = store_stmt(store, STMT_BLOCK_FOR_ROW, &find, err);
    if (rc != AW_OK)
        return rc;
    r->first = 0;
    sqlite3_bind_int64(find, 1, rowid);
    int step = sqlite3_step(find);
    int64_t first = step == SQLITE_ROW ? sqlite3_column_int64(find, 0) : 0;
    int64_t last = step == SQLITE_ROW ? sqlite3_column_int64(find, 1) : 0;
    if (step == SQLITE_ROW && last >= rowid) {
        if (last - first >= STORE_BLOCK_ENTRIES)
            rc = aw_error_set(err, AW_ERR,
                              "the evidence block at row %lld claims "
                              "rows up to %lld, more than a block holds",
                              (long long)first, (long long)last);
        else if (sqlite3_column_bytes(find, 3) != 32)
            rc = aw_error_set(err, AW_ERR,
                              "the evidence block of rows %lld-%lld has "
                              "no chain value",
                              (long long)first, (long long)last);
        char label[64];
        snprintf(label, sizeof label, "the evidence block of rows %lld-%lld",
                 (long long)first, (long long)last);
        if (rc == AW_OK)
            rc = store_evidence_decompress(
                store, sqlite3_column_blob(find, 4),
                (size_t)sqlite3_column_bytes(find, 4),
                sqlite3_column_int64(find, 2), BLOCK_MAX_PLAIN, label,
                &r->block, err);
        if (rc == AW_OK) {
            memcpy(r->chain, sqlite3_column_blob(find, 3), 32);
            rc = reader_split(r, first, last, err);
        }
    } else if (step == SQLITE_ROW || step == SQLITE_DONE) {
        rc = aw_error_set(err, AW_ERR, "row %lld: no evidence block holds it",
                          (long long)rowid);
    } else {
        rc = store_fail(store, err, "read evidence block");
    }
    sqlite3_reset(find);
    return rc;
}

int store_reader_entry(aw_store *store, struct store_reader *r, int64_t rowid,
                       const char **raw, size_t *raw_len, aw_error *err)
{
    if (r->first == 0 || rowid < r->first || rowid > r->last) {
        int rc = reader_load(store, r, rowid, err);
        if (rc != AW_OK)
            return rc;
    }
    size_t i = (size_t)(rowid - r->first);
    *raw = r->block.ptr + r->offsets[i];
    *raw_len = r->offsets[i + 1] - r->offsets[i];
    return AW_OK;
}
