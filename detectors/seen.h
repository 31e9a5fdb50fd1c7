/* seen.h -- private to detectors/: a fixed-size Bloom filter over short
 * keys, the in-memory shortcut that keeps store look-ups off the hot path.
 *
 * The rules ask questions such as "was this anchor ever revoked?" or "is
 * there an alert with this id?" for nearly every audit event, and almost
 * always the answer is no. The filter answers "certainly not" or "maybe";
 * only a "maybe" costs an indexed look-up in the store, which remains the
 * only source of truth. A wrong "maybe" (false positive) costs one wasted
 * look-up; a wrong "no" cannot happen as long as every key that the store
 * can hold was added (loaded at start, added as rows are written). Keys are
 * never removed, so a rolled-back transaction only leaves false positives.
 *
 * Memory is fixed (2^log2_bits / 8 bytes, chosen at init) whatever the
 * index size; past the keys a size was chosen for, the false-positive rate
 * grows and the detectors degrade gracefully towards one look-up per
 * question.
 */
#ifndef AW_DETECTORS_SEEN_H
#define AW_DETECTORS_SEEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 2^23 bits (1 MiB): ~1% false positives at 870k keys; 2^24, at 1.7M. */
typedef struct aw_seen {
    uint64_t *words; /* mask + 1 bits; owned */
    uint64_t mask;
} aw_seen;

/* A key is a short tuple of strings (NULL hashes like ""), prefixed by a
 * tag byte naming what the tuple means, so different questions never
 * collide. */
typedef struct aw_seen_key {
    uint64_t h1, h2;
} aw_seen_key;

aw_seen_key aw_seen_key_of(char tag, const char *const *parts, size_t nparts);

/* A filter of 2^log2_bits bits (6 to 32), empty. 0, AW_ERR_NOMEM, or
 * AW_ERR_INVALID for a size out of range. */
int aw_seen_init(aw_seen *seen, unsigned log2_bits);
void aw_seen_free(aw_seen *seen);
void aw_seen_add(aw_seen *seen, aw_seen_key key);
bool aw_seen_maybe(const aw_seen *seen, aw_seen_key key);

#endif /* AW_DETECTORS_SEEN_H */
