/* identity_filter.c -- which new events need no identity probe.
 *
 * Before an event is added, the index is searched for one of the same
 * identity (occurred_at, event id): a B-tree seek on every event, which
 * nearly always finds nothing. The handle knows a time, the floor, at or
 * after which every stored event is one it added itself since, and it
 * keeps a fingerprint of each of those; an event at or after the floor
 * whose fingerprint is not kept cannot be stored yet, and is not probed.
 * A kept fingerprint (the event, or another with the same fingerprint) or
 * an earlier time means a probe, as before: the filter only ever skips
 * look-ups whose answer is known.
 *
 * The floor starts as the newest occurred_at in the index plus one: on
 * first use, and after another writer committed (aw_store_begin sees
 * PRAGMA data_version move). When the table is half full, the older half
 * of its events by occurred_at is dropped and the floor rises to the
 * oldest time kept, which bounds its memory. The median, not the newest,
 * so that an event dated far ahead (a producer's clock, a replayed spool)
 * does not lift the floor past the traffic that follows it. A rolled-back
 * event leaves its fingerprint behind: that only costs a probe.
 */
#include <stdlib.h>
#include <string.h>

#include "store/handle.h"

/* 2^16 slots (1 MiB), thinned out at half of them. Producers interleave:
 * on loadgen's traffic an event comes up to ~25,000 events after others
 * that occurred later, and with 2^14 slots most events fell below the
 * floor; with 2^16, 0.06 %. */
#define IDENTITY_SLOTS_LOG2 16
#define IDENTITY_SLOTS      ((size_t)1 << IDENTITY_SLOTS_LOG2)
#define IDENTITY_KEEP       (IDENTITY_SLOTS / 2)

/* Never 0, which marks an empty slot. */
static uint64_t identity_print(int64_t occurred_at, int64_t id_key)
{
    return aw_mix64((uint64_t)occurred_at ^ aw_mix64((uint64_t)id_key)) | 1;
}

/* The slot holding print, or the empty one it would go to. */
static struct store_identity_slot *identity_slot(
    struct store_identity_filter *f, uint64_t print)
{
    size_t i = print & (IDENTITY_SLOTS - 1);
    while (f->slots[i].print != 0 && f->slots[i].print != print)
        i = (i + 1) & (IDENTITY_SLOTS - 1);
    return &f->slots[i];
}

static void identity_put(struct store_identity_filter *f, uint64_t print,
                         int64_t occurred_at)
{
    struct store_identity_slot *slot = identity_slot(f, print);
    if (slot->print == 0) {
        *slot = (struct store_identity_slot){print, occurred_at};
        f->n++;
    }
}

/* Empties the table; the floor goes past every stored event. */
static int identity_start(aw_store *store, aw_error *err)
{
    struct store_identity_filter *f = &store->identities;
    f->started = false; /* until it has a floor */
    if (f->slots == NULL &&
        (f->slots = calloc(IDENTITY_SLOTS, sizeof *f->slots)) == NULL)
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    sqlite3_stmt *newest;
    int rc = store_stmt(store, STMT_EVENT_NEWEST, &newest, err);
    if (rc != AW_OK)
        return rc;
    int step = sqlite3_step(newest);
    f->floor = sqlite3_column_type(newest, 0) != SQLITE_INTEGER ? INT64_MIN
               : sqlite3_column_int64(newest, 0) == INT64_MAX
                   ? INT64_MAX
                   : sqlite3_column_int64(newest, 0) + 1;
    sqlite3_reset(newest);
    if (step != SQLITE_ROW)
        return store_fail(store, err, "read the newest event time");
    memset(f->slots, 0, IDENTITY_SLOTS * sizeof *f->slots);
    f->n = 0;
    f->started = true;
    return AW_OK;
}

static int compare_times(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Drops the events older than the median of the kept ones; the floor rises
 * to the median. (Sorting 32,768 times once per 16,384 events costs about
 * 0.2 us an event; the probe it saves, about 1 us.) */
static int identity_thin(struct store_identity_filter *f, aw_error *err)
{
    struct store_identity_slot *kept = malloc(f->n * sizeof *kept);
    int64_t *at = malloc(f->n * sizeof *at);
    if (kept == NULL || at == NULL) {
        free(kept);
        free(at);
        f->started = false;
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    }
    size_t n = 0;
    for (size_t i = 0; i < IDENTITY_SLOTS; i++)
        if (f->slots[i].print != 0)
            at[n++] = f->slots[i].occurred_at;
    qsort(at, n, sizeof *at, compare_times);
    if (at[n / 2] > f->floor)
        f->floor = at[n / 2];
    size_t nkept = 0;
    for (size_t i = 0; i < IDENTITY_SLOTS; i++)
        if (f->slots[i].print != 0 && f->slots[i].occurred_at >= f->floor)
            kept[nkept++] = f->slots[i];
    /* Most events at one time would keep the table full: go above them. */
    if (nkept > IDENTITY_KEEP - IDENTITY_KEEP / 4) {
        f->floor = at[n - 1] == INT64_MAX ? INT64_MAX : at[n - 1] + 1;
        nkept = 0;
    }
    memset(f->slots, 0, IDENTITY_SLOTS * sizeof *f->slots);
    f->n = 0;
    for (size_t i = 0; i < nkept; i++)
        identity_put(f, kept[i].print, kept[i].occurred_at);
    free(kept);
    free(at);
    return AW_OK;
}

int store_identity_surely_new(aw_store *store, int64_t occurred_at,
                              int64_t id_key, bool *surely_new, aw_error *err)
{
    struct store_identity_filter *f = &store->identities;
    *surely_new = false;
    int rc = f->started ? AW_OK : identity_start(store, err);
    if (rc != AW_OK || occurred_at < f->floor)
        return rc;
    *surely_new =
        identity_slot(f, identity_print(occurred_at, id_key))->print == 0;
    return AW_OK;
}

int store_identity_add(aw_store *store, int64_t occurred_at, int64_t id_key,
                       aw_error *err)
{
    struct store_identity_filter *f = &store->identities;
    if (!f->started || occurred_at < f->floor)
        return AW_OK; /* probed whatever the table says */
    identity_put(f, identity_print(occurred_at, id_key), occurred_at);
    return f->n < IDENTITY_KEEP ? AW_OK : identity_thin(f, err);
}

void store_identity_forget(aw_store *store)
{
    store->identities.started = false;
}

void store_identity_free(aw_store *store)
{
    free(store->identities.slots);
    memset(&store->identities, 0, sizeof store->identities);
}
