/* recent.h -- private to detectors/: an exact, fixed-size cache of the
 * decisions (token_exchange events) indexed most recently, keyed by
 * (zone, request id), holding the earliest arrival seen for the key.
 *
 * The Gateway re-exchanges the mandate at the STS before it proxies a
 * call, so a call's decision is normally indexed moments before the
 * Gateway's own event. Asking this cache first spares decision_missing its
 * store look-up for nearly every call. It is direct-mapped (a newer key
 * evicts an older one in its slot) and compares whole keys, so a hit is
 * always true and a miss only costs the look-up it would have cost anyway.
 * Keys longer than AW_RECENT_KEY_MAX are not cached. Because a hit claims
 * that a row is in the store, the cache is cleared when a transaction is
 * rolled back (aw_detectors_discard).
 *
 * Memory is fixed: AW_RECENT_SLOTS slots of about 100 bytes (6.5 MiB),
 * about a second of decisions at the target ingest rate.
 */
#ifndef AW_DETECTORS_RECENT_H
#define AW_DETECTORS_RECENT_H

#include <stdbool.h>
#include <stdint.h>

#define AW_RECENT_SLOTS (1u << 16)
#define AW_RECENT_KEY_MAX 88        /* zone + NUL + request id */

typedef struct aw_recent_slot {
    int64_t arrived_ns;
    uint16_t len;                   /* 0: empty */
    char key[AW_RECENT_KEY_MAX];
} aw_recent_slot;

typedef struct aw_recent {
    aw_recent_slot *slots;          /* AW_RECENT_SLOTS; owned */
} aw_recent;

/* 0, or AW_ERR_NOMEM. */
int aw_recent_init(aw_recent *recent);
void aw_recent_free(aw_recent *recent);
void aw_recent_clear(aw_recent *recent);
void aw_recent_note(aw_recent *recent, const char *zone_id,
                    const char *request_id, int64_t arrived_ns);
/* True, with the earliest arrival noted, when the key is cached. */
bool aw_recent_find(const aw_recent *recent, const char *zone_id,
                    const char *request_id, int64_t *arrived_ns);

#endif /* AW_DETECTORS_RECENT_H */
