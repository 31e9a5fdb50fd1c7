/* evidence_sealer.c -- the thread that seals evidence blocks: it folds a
 * block's new entries into the hash chain and compresses the block, while
 * the writer goes on storing the entries after it.
 *
 * The chain's SHA-256 and zstd were a sixth of the writer's time, and
 * neither needs the database: a block holds everything both read. So the
 * writer hands a block over once it is full (and the open one at every
 * settle: before a commit, or before the block is read), and writes the
 * sealed block's row itself, on its own connection. Blocks are sealed in
 * the order they were handed over, so the chain runs in row order: each
 * sealing starts from the chain value the previous one ended on
 * (sealer->chain, set by the writer while the sealer is idle).
 *
 * A handed-over block belongs to the thread until it is sealed; the writer
 * touches it again only after store_sealer_wait. Everything else the
 * thread reads (its context, the block's dictionary) is not changed while
 * it has blocks: dictionaries change only at aw_store_begin, in training
 * and on rollback, and each of those waits for the sealer first.
 */
#include <string.h>

#include "store/handle.h"

/* Folds b's entries from b->chained on into chain, leaving the value
 * after its last entry in b->chain. */
static int sealer_chain(struct store_sealer *s, struct store_block *b)
{
    size_t raw_at = 0, label_at = 0;
    for (size_t i = 0; i < b->n; i++) {
        size_t label_end = b->label_ends[i];
        if (i >= b->chained) {
            s->scratch.len = 0;
            if (aw_buf_append(&s->scratch, s->chain, 32) != AW_OK ||
                aw_buf_append(&s->scratch, b->labels.ptr + label_at,
                              label_end - label_at) != AW_OK ||
                aw_buf_append(&s->scratch, b->plain.ptr + raw_at,
                              b->sizes[i]) != AW_OK)
                return aw_error_set(&b->err, AW_ERR_NOMEM, "out of memory");
            aw_sha256(s->scratch.ptr, s->scratch.len, s->chain);
        }
        raw_at += b->sizes[i];
        label_at = label_end;
    }
    b->chained = b->n;
    memcpy(b->chain, s->chain, 32);
    return AW_OK;
}

/* The frame of b: its entries, then their sizes (4 bytes each, little
 * endian), for the frame only. */
static int sealer_compress(struct store_sealer *s, struct store_block *b)
{
    size_t entries_len = b->plain.len;
    unsigned char size_le[4];
    for (size_t i = 0; i < b->n; i++) {
        for (int k = 0; k < 4; k++)
            size_le[k] = (unsigned char)(b->sizes[i] >> (8 * k));
        if (aw_buf_append(&b->plain, size_le, 4) != AW_OK) {
            b->plain.len = entries_len;
            return aw_error_set(&b->err, AW_ERR_NOMEM, "out of memory");
        }
    }
    int rc = s->cctx != NULL ? AW_OK : store_evidence_cctx(&s->cctx, &b->err);
    if (rc == AW_OK)
        rc = store_evidence_compress(s->cctx, b->cdict, b->plain.ptr,
                                     b->plain.len, &b->frame, &b->err);
    b->plain.len = entries_len;
    return rc;
}

static void sealer_seal(struct store_sealer *s, struct store_block *b)
{
    b->rc = sealer_chain(s, b);
    if (b->rc == AW_OK)
        b->rc = sealer_compress(s, b);
}

static void *sealer_main(void *arg)
{
    struct store_sealer *s = arg;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (s->queued == 0 && !s->stopping)
            pthread_cond_wait(&s->work, &s->lock);
        if (s->queued == 0)
            break;
        struct store_block *b = s->queue[s->next];
        pthread_mutex_unlock(&s->lock);
        sealer_seal(s, b);
        pthread_mutex_lock(&s->lock);
        b->sealing = false;
        s->next = (s->next + 1) % STORE_BLOCK_SLOTS;
        s->queued--;
        pthread_cond_broadcast(&s->sealed);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static int sealer_start(struct store_sealer *s, aw_error *err)
{
    if (pthread_mutex_init(&s->lock, NULL) != 0)
        return aw_error_set(err, AW_ERR, "cannot set up the evidence sealer");
    if (pthread_cond_init(&s->work, NULL) != 0) {
        pthread_mutex_destroy(&s->lock);
        return aw_error_set(err, AW_ERR, "cannot set up the evidence sealer");
    }
    if (pthread_cond_init(&s->sealed, NULL) != 0) {
        pthread_cond_destroy(&s->work);
        pthread_mutex_destroy(&s->lock);
        return aw_error_set(err, AW_ERR, "cannot set up the evidence sealer");
    }
    int e = pthread_create(&s->thread, NULL, sealer_main, s);
    if (e != 0) {
        pthread_cond_destroy(&s->sealed);
        pthread_cond_destroy(&s->work);
        pthread_mutex_destroy(&s->lock);
        return aw_error_set(err, AW_ERR,
                            "cannot start the evidence sealer thread: %s",
                            strerror(e));
    }
    s->running = true;
    return AW_OK;
}

int store_sealer_seal(aw_store *store, struct store_block *b, aw_error *err)
{
    struct store_sealer *s = &store->sealer;
    if (!s->running && (b->rc = sealer_start(s, &b->err)) != AW_OK) {
        /* b stays unsealed for good: a settle reports this again. */
        if (err != NULL)
            *err = b->err;
        return b->rc;
    }
    b->cdict = store->evidence.cdict;
    b->dict_no = store->evidence.cdict != NULL ? store->evidence.cdict_no : 0;
    b->rc = AW_OK;
    pthread_mutex_lock(&s->lock);
    b->sealing = true;
    s->queue[(s->next + s->queued) % STORE_BLOCK_SLOTS] = b;
    s->queued++;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->lock);
    return AW_OK;
}

void store_sealer_wait(aw_store *store, const struct store_block *b)
{
    struct store_sealer *s = &store->sealer;
    if (!s->running)
        return;
    pthread_mutex_lock(&s->lock);
    while (b != NULL ? b->sealing : s->queued > 0)
        pthread_cond_wait(&s->sealed, &s->lock);
    pthread_mutex_unlock(&s->lock);
}

void store_sealer_set_chain(aw_store *store, const unsigned char chain[32])
{
    memcpy(store->sealer.chain, chain, 32);
}

void store_sealer_stop(aw_store *store)
{
    struct store_sealer *s = &store->sealer;
    if (s->running) {
        pthread_mutex_lock(&s->lock);
        s->stopping = true;
        pthread_cond_signal(&s->work);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->thread, NULL);
        pthread_cond_destroy(&s->sealed);
        pthread_cond_destroy(&s->work);
        pthread_mutex_destroy(&s->lock);
    }
    ZSTD_freeCCtx(s->cctx);
    aw_buf_free(&s->scratch);
    memset(s, 0, sizeof *s);
}
