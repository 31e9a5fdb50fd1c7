/* evidence.c -- the dictionaries and zstd frames the verbatim evidence is
 * stored in, and its way back to verbatim bytes.
 *
 * Caracal's entries are JSON with the same keys, enum values and id shapes
 * over and over, so a dictionary trained on the index's own traffic takes
 * most of each entry. The first dictionary is trained (ZDICT_trainFromBuffer)
 * over the first EVIDENCE_TRAIN_SAMPLES entries, when the next entry is
 * stored; until then frames are made without one. aw_store_train_dictionary
 * trains another over the newest entries; each frame's row names the
 * dictionary it was made with, so older rows stay readable and
 * dictionaries are never changed or deleted.
 *
 * Entries are written in blocks of consecutive rows (evidence_blocks.c,
 * schema/0008), one frame per block. Rows written before that are read
 * here: raw verbatim (zstd_dict NULL, every row before schema 3) or a frame
 * of its own (zstd_dict 0 or a dictionary, schema 3 to 7).
 *
 * The hash chain covers the verbatim bytes, computed before compression;
 * readers decompress and hash those. So a damaged or edited frame, a
 * swapped dictionary number or an edited dictionary shows in `verify` as
 * an edited row or block (or as a frame that cannot be decompressed, with
 * zstd's reason), and `export`/`replay` hand out the very bytes that were
 * received.
 *
 * Frames are written without a dictionary id and without a checksum (the
 * row says which dictionary, the chain is the checksum) but with the
 * content size, which the reader checks against what the row can hold
 * before allocating. The decompression context and the current dictionary
 * (CDict) are made once per handle, the compression context by the sealer
 * (evidence_sealer.c), which compresses blocks with the dictionary of the
 * moment they were handed over; read-side dictionaries (DDict) are kept in
 * a small cache. Training happens inside the writer's transaction, so a
 * rolled-back one takes its dictionary with it (store_evidence_end forgets
 * it); it waits for the sealer and writes its blocks first, so that it
 * reads the newest entries and no sealing uses a dictionary it replaces.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zdict.h>

#include "store/handle.h"

/* A 64 KiB dictionary trained on 5,000 entries. Level 1, not 3: on
 * loadgen's Caracal traffic both take a 690-byte entry to ~148 bytes (3 is
 * under 1 % smaller), and 1 costs about half the CPU (bench/README.md). */
#define EVIDENCE_LEVEL         1
#define EVIDENCE_DICT_BYTES    (64 * 1024)
#define EVIDENCE_TRAIN_SAMPLES 5000
/* A per-row frame (schema 3 to 7) claiming more is damaged. */
#define EVIDENCE_MAX_PLAIN AW_STORE_MAX_RAW_BYTES

/* Empties buf and makes room for n bytes in it. */
static int evidence_room(aw_buf *buf, size_t n, aw_error *err)
{
    buf->len = 0;
    if (aw_buf_reserve(buf, n) != AW_OK)
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    return AW_OK;
}

int store_evidence_cctx(ZSTD_CCtx **cctx, aw_error *err)
{
    ZSTD_CCtx *c = ZSTD_createCCtx();
    if (c == NULL)
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    size_t r =
        ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, EVIDENCE_LEVEL);
    if (!ZSTD_isError(r))
        r = ZSTD_CCtx_setParameter(c, ZSTD_c_dictIDFlag, 0);
    if (!ZSTD_isError(r))
        r = ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 0);
    if (!ZSTD_isError(r))
        r = ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1);
    if (ZSTD_isError(r)) {
        ZSTD_freeCCtx(c);
        return aw_error_set(err, AW_ERR, "set up zstd: %s",
                            ZSTD_getErrorName(r));
    }
    *cctx = c;
    return AW_OK;
}

/* Makes dict (trained as dict_no) the one new entries are written with. */
static int evidence_use_cdict(struct store_evidence *ev, const void *dict,
                              size_t len, int64_t dict_no, aw_error *err)
{
    ZSTD_CDict *cdict = ZSTD_createCDict(dict, len, EVIDENCE_LEVEL);
    if (cdict == NULL)
        return aw_error_set(err, AW_ERR,
                            "evidence dictionary %lld cannot "
                            "be loaded for compression",
                            (long long)dict_no);
    ZSTD_freeCDict(ev->cdict);
    ev->cdict = cdict;
    ev->cdict_no = dict_no;
    return AW_OK;
}

/* The dictionary dict_no as stored: *blob points into get's current row,
 * and the caller resets get once done with it. */
static int evidence_dict_blob(aw_store *store, int64_t dict_no,
                              sqlite3_stmt **get, const void **blob,
                              size_t *len, aw_error *err)
{
    int rc = store_stmt(store, STMT_DICT_GET, get, err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_int64(*get, 1, dict_no);
    int step = sqlite3_step(*get);
    if (step == SQLITE_ROW) {
        *blob = sqlite3_column_blob(*get, 0);
        *len = (size_t)sqlite3_column_bytes(*get, 0);
        return AW_OK;
    }
    sqlite3_reset(*get);
    if (step == SQLITE_DONE)
        return aw_error_set(err, AW_ERR_NOTFOUND,
                            "the index holds no "
                            "evidence dictionary %lld",
                            (long long)dict_no);
    return store_fail(store, err, "read evidence dictionary");
}

int store_evidence_begin(aw_store *store, aw_error *err)
{
    struct store_evidence *ev = &store->evidence;
    sqlite3_stmt *newest;
    int rc = store_stmt(store, STMT_DICT_NEWEST, &newest, err);
    if (rc != AW_OK)
        return rc;
    int step = sqlite3_step(newest);
    int64_t dict_no = step == SQLITE_ROW ? sqlite3_column_int64(newest, 0) : 0;
    sqlite3_reset(newest);
    if (step != SQLITE_ROW)
        return store_fail(store, err, "read evidence dictionaries");
    if (dict_no == ev->cdict_no)
        return AW_OK;
    sqlite3_stmt *get = NULL;
    const void *blob = NULL;
    size_t len = 0;
    rc = evidence_dict_blob(store, dict_no, &get, &blob, &len, err);
    if (rc != AW_OK)
        return rc;
    rc = evidence_use_cdict(ev, blob, len, dict_no, err);
    sqlite3_reset(get);
    return rc;
}

void store_evidence_end(aw_store *store, bool committed)
{
    struct store_evidence *ev = &store->evidence;
    if (ev->trained_in_tx != 0 && !committed) {
        /* Their numbers will be given again, to other dictionaries. */
        for (size_t i = 0; i < STORE_DDICT_CACHE; i++) {
            if (ev->ddicts[i].dict_no >= ev->trained_in_tx) {
                ZSTD_freeDDict(ev->ddicts[i].ddict);
                ev->ddicts[i] = (struct store_ddict_slot){0, NULL};
            }
        }
        if (ev->cdict_no >= ev->trained_in_tx) {
            ZSTD_freeCDict(ev->cdict);
            ev->cdict = NULL;
            ev->cdict_no = 0;
        }
    }
    ev->trained_in_tx = 0;
}

void store_evidence_free(aw_store *store)
{
    struct store_evidence *ev = &store->evidence;
    ZSTD_freeDCtx(ev->dctx);
    ZSTD_freeCDict(ev->cdict);
    for (size_t i = 0; i < STORE_DDICT_CACHE; i++)
        ZSTD_freeDDict(ev->ddicts[i].ddict);
    memset(ev, 0, sizeof *ev);
}

/* The read-side dictionary dict_no, loaded into the cache if absent. */
static int evidence_ddict(aw_store *store, int64_t dict_no, ZSTD_DDict **out,
                          aw_error *err)
{
    struct store_evidence *ev = &store->evidence;
    for (size_t i = 0; i < STORE_DDICT_CACHE; i++) {
        if (ev->ddicts[i].dict_no == dict_no) {
            *out = ev->ddicts[i].ddict;
            return AW_OK;
        }
    }
    sqlite3_stmt *get = NULL;
    const void *blob = NULL;
    size_t len = 0;
    int rc = evidence_dict_blob(store, dict_no, &get, &blob, &len, err);
    if (rc != AW_OK)
        return rc;
    ZSTD_DDict *ddict = ZSTD_createDDict(blob, len);
    sqlite3_reset(get);
    if (ddict == NULL)
        return aw_error_set(err, AW_ERR,
                            "evidence dictionary %lld is "
                            "damaged",
                            (long long)dict_no);
    struct store_ddict_slot *slot = &ev->ddicts[ev->next_slot];
    ev->next_slot = (ev->next_slot + 1) % STORE_DDICT_CACHE;
    ZSTD_freeDDict(slot->ddict);
    *slot = (struct store_ddict_slot){dict_no, ddict};
    *out = ddict;
    return AW_OK;
}

int store_evidence_decompress(aw_store *store, const void *frame,
                              size_t frame_len, int64_t dict_no,
                              size_t max_plain, const char *what, aw_buf *plain,
                              aw_error *err)
{
    struct store_evidence *ev = &store->evidence;
    ZSTD_DDict *ddict = NULL;
    int rc = AW_OK;
    if (dict_no < 0)
        return aw_error_set(err, AW_ERR,
                            "%s names evidence dictionary %lld, which "
                            "cannot exist",
                            what, (long long)dict_no);
    aw_error why = {0};
    if (dict_no > 0 && (rc = evidence_ddict(store, dict_no, &ddict, &why)))
        return aw_error_set(err, rc, "%s: %s", what, why.msg);
    unsigned long long size = ZSTD_getFrameContentSize(frame, frame_len);
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN)
        return aw_error_set(err, AW_ERR,
                            "%s: stored evidence is not a zstd frame with "
                            "its size",
                            what);
    if (size > max_plain)
        return aw_error_set(err, AW_ERR,
                            "%s: stored evidence claims %llu bytes, more "
                            "than it can hold",
                            what, size);
    if (ev->dctx == NULL && (ev->dctx = ZSTD_createDCtx()) == NULL)
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    /* One byte more than claimed, so a frame that holds more than its
     * header says cannot pass for a whole one. */
    if ((rc = evidence_room(plain, (size_t)size + 1, err)) != AW_OK)
        return rc;
    size_t got =
        ddict != NULL
            ? ZSTD_decompress_usingDDict(ev->dctx, plain->ptr, plain->cap,
                                         frame, frame_len, ddict)
            : ZSTD_decompressDCtx(ev->dctx, plain->ptr, plain->cap, frame,
                                  frame_len);
    if (ZSTD_isError(got))
        return aw_error_set(err, AW_ERR,
                            "%s: stored evidence cannot be decompressed: %s",
                            what, ZSTD_getErrorName(got));
    if (got != size)
        return aw_error_set(err, AW_ERR,
                            "%s: stored evidence holds %zu bytes, its frame "
                            "says %llu",
                            what, got, size);
    plain->len = got;
    return AW_OK;
}

bool store_row_in_block(sqlite3_stmt *stmt, int raw_col)
{
    return sqlite3_column_type(stmt, raw_col) == SQLITE_BLOB &&
           sqlite3_column_bytes(stmt, raw_col) == 0;
}

int store_evidence_unpack(aw_store *store, sqlite3_stmt *stmt, int raw_col,
                          int dict_col, int64_t rowid,
                          struct store_reader *reader, const char **raw,
                          size_t *raw_len, aw_error *err)
{
    if (store_row_in_block(stmt, raw_col))
        return store_reader_entry(store, reader, rowid, raw, raw_len, err);
    const void *frame = sqlite3_column_blob(stmt, raw_col);
    size_t frame_len = (size_t)sqlite3_column_bytes(stmt, raw_col);
    if (sqlite3_column_type(stmt, dict_col) == SQLITE_NULL) {
        *raw = frame;
        *raw_len = frame_len;
        return AW_OK;
    }
    char what[32];
    snprintf(what, sizeof what, "row %lld", (long long)rowid);
    int rc = store_evidence_decompress(
        store, frame, frame_len, sqlite3_column_int64(stmt, dict_col),
        EVIDENCE_MAX_PLAIN, what, &reader->plain, err);
    if (rc == AW_OK) {
        *raw = reader->plain.ptr;
        *raw_len = reader->plain.len;
    }
    return rc;
}

/* Reads the verbatim form of up to n entries after row `after` into
 * samples (concatenated) and sizes. */
static int evidence_samples(aw_store *store, int64_t after, size_t n,
                            aw_buf *samples, size_t *sizes, size_t *nsizes,
                            aw_error *err)
{
    sqlite3_stmt *rows;
    int rc = store_stmt(store, STMT_ENTRIES_AFTER, &rows, err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_int64(rows, 1, after);
    sqlite3_bind_int64(rows, 2, (int64_t)n);
    struct store_reader reader = {0};
    int step;
    *nsizes = 0;
    while (rc == AW_OK && (step = sqlite3_step(rows)) == SQLITE_ROW) {
        const char *raw;
        size_t len;
        rc = store_evidence_unpack(store, rows, 1, 2,
                                   sqlite3_column_int64(rows, 0), &reader, &raw,
                                   &len, err);
        if (rc == AW_OK && aw_buf_append(samples, raw, len) != AW_OK)
            rc = aw_error_set(err, AW_ERR_NOMEM, "out of memory");
        if (rc == AW_OK)
            sizes[(*nsizes)++] = len;
    }
    if (rc == AW_OK && step != SQLITE_DONE)
        rc = store_fail(store, err, "read entries for a dictionary");
    sqlite3_reset(rows);
    store_reader_free(&reader);
    return rc;
}

/* Trains a dictionary over the newest EVIDENCE_TRAIN_SAMPLES entries and
 * stores it; new entries are compressed with it from now on. *trained is
 * false, with the reason in err, when zstd could not train one (too few or
 * too uniform samples): not an error of the index. */
static int evidence_train(aw_store *store, bool *trained, aw_error *err)
{
    struct store_evidence *ev = &store->evidence;
    *trained = false;
    aw_buf samples = {0};
    size_t *sizes = calloc(EVIDENCE_TRAIN_SAMPLES, sizeof *sizes);
    void *dict = malloc(EVIDENCE_DICT_BYTES);
    size_t nsizes = 0;
    int rc = sizes != NULL && dict != NULL
                 ? store_blocks_settle(store, err)
                 : aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    int64_t after = store->last_rowid > EVIDENCE_TRAIN_SAMPLES
                        ? store->last_rowid - EVIDENCE_TRAIN_SAMPLES
                        : 0;
    if (rc == AW_OK)
        rc = evidence_samples(store, after, EVIDENCE_TRAIN_SAMPLES, &samples,
                              sizes, &nsizes, err);
    size_t len = 0;
    if (rc == AW_OK) {
        len = nsizes == 0
                  ? 0
                  : ZDICT_trainFromBuffer(dict, EVIDENCE_DICT_BYTES,
                                          samples.ptr, sizes, (unsigned)nsizes);
        if (nsizes == 0 || ZDICT_isError(len)) {
            aw_error_set(err, AW_ERR,
                         "cannot train an evidence dictionary "
                         "on %zu entries: %s",
                         nsizes,
                         nsizes == 0 ? "no entries" : ZDICT_getErrorName(len));
            len = 0;
        }
    }
    aw_buf_free(&samples);
    free(sizes);
    sqlite3_stmt *add;
    if (rc == AW_OK && len > 0 &&
        (rc = store_stmt(store, STMT_DICT_ADD, &add, err)) == AW_OK) {
        sqlite3_bind_int64(add, 1, ZDICT_getDictID(dict, len));
        sqlite3_bind_int64(add, 2, store->last_rowid);
        sqlite3_bind_int64(add, 3, (int64_t)nsizes);
        sqlite3_bind_blob(add, 4, dict, (int)len, SQLITE_STATIC);
        rc = store_exec_stmt(store, add, err, "store evidence dictionary");
        int64_t dict_no = sqlite3_last_insert_rowid(store->db);
        if (rc == AW_OK)
            rc = evidence_use_cdict(ev, dict, len, dict_no, err);
        if (rc == AW_OK) {
            if (ev->trained_in_tx == 0)
                ev->trained_in_tx = dict_no;
            *trained = true;
        }
    }
    free(dict);
    /* Training's scratch (~16 MB, mostly ZDICT's tables) would otherwise
     * stay in the heap, counted in the daemon's resident set. */
    malloc_trim(0);
    return rc;
}

int aw_store_train_dictionary(aw_store *store, aw_error *err)
{
    int rc = store_require_tx(store, err, "train evidence dictionary");
    bool trained = false;
    if (rc == AW_OK)
        rc = evidence_train(store, &trained, err);
    if (rc == AW_OK && !trained)
        rc = AW_ERR; /* err holds zstd's reason */
    return rc;
}

/* A failed attempt is retried EVIDENCE_TRAIN_SAMPLES entries later;
 * meanwhile entries are compressed without a dictionary. */
int store_evidence_maybe_train(aw_store *store, aw_error *err)
{
    struct store_evidence *ev = &store->evidence;
    if (ev->cdict != NULL)
        return AW_OK;
    if (ev->next_train_rowid == 0)
        ev->next_train_rowid = EVIDENCE_TRAIN_SAMPLES;
    if (store->last_rowid < ev->next_train_rowid)
        return AW_OK;
    bool trained = false;
    aw_error why = {0}; /* a failed training is no error of the entry */
    int rc = evidence_train(store, &trained, &why);
    if (rc != AW_OK) {
        *err = why;
        return rc;
    }
    if (!trained)
        ev->next_train_rowid = store->last_rowid + EVIDENCE_TRAIN_SAMPLES;
    return AW_OK;
}

int store_evidence_compress(ZSTD_CCtx *cctx, const ZSTD_CDict *cdict,
                            const char *plain, size_t len, aw_buf *frame,
                            aw_error *err)
{
    int rc = evidence_room(frame, ZSTD_compressBound(len), err);
    if (rc != AW_OK)
        return rc;
    size_t r = ZSTD_CCtx_refCDict(cctx, cdict);
    if (!ZSTD_isError(r))
        r = ZSTD_compress2(cctx, frame->ptr, frame->cap, plain, len);
    if (ZSTD_isError(r))
        return aw_error_set(err, AW_ERR, "compress evidence: %s",
                            ZSTD_getErrorName(r));
    frame->len = r;
    return AW_OK;
}
