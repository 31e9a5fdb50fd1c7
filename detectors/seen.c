/* seen.c -- the detectors' Bloom filter (see seen.h for why it exists).
 *
 * Double hashing (Kirsch and Mitzenmacher): one aw_hash64 pass over the
 * key's parts gives h1; mixing h1 again gives h2 (forced odd); probe i
 * sets bit h1 + i * h2. Seven probes keep false positives near 1% up to
 * ~0.1 keys per bit. This is not a security boundary: an attacker who
 * forces false positives only forces look-ups.
 */
#include "detectors/seen.h"

#include <stdlib.h>
#include <string.h>

#include "event/event.h"

#define SEEN_PROBES 7

aw_seen_key aw_seen_key_of(char tag, const char *const *parts, size_t nparts)
{
    /* Each part's length is hashed with it: ("ab","c") != ("a","bc"). */
    uint64_t h = (unsigned char)tag;
    for (size_t i = 0; i < nparts; i++) {
        const char *s = parts[i] ? parts[i] : "";
        h = aw_hash64(h, s, strlen(s));
    }
    aw_seen_key key;
    key.h1 = h;
    key.h2 = aw_mix64(h ^ 0x9e3779b97f4a7c15ULL) | 1;
    return key;
}

int aw_seen_init(aw_seen *seen, unsigned log2_bits)
{
    seen->words = NULL;
    seen->mask = 0;
    if (log2_bits < 6 || log2_bits > 32)
        return AW_ERR_INVALID;
    seen->words = calloc((size_t)1 << (log2_bits - 6), sizeof *seen->words);
    if (!seen->words)
        return AW_ERR_NOMEM;
    seen->mask = ((uint64_t)1 << log2_bits) - 1;
    return AW_OK;
}

void aw_seen_free(aw_seen *seen)
{
    free(seen->words);
    seen->words = NULL;
}

void aw_seen_add(aw_seen *seen, aw_seen_key key)
{
    uint64_t bit = key.h1;
    for (int i = 0; i < SEEN_PROBES; i++, bit += key.h2) {
        uint64_t b = bit & seen->mask;
        seen->words[b / 64] |= 1ULL << (b % 64);
    }
}

bool aw_seen_maybe(const aw_seen *seen, aw_seen_key key)
{
    uint64_t bit = key.h1;
    for (int i = 0; i < SEEN_PROBES; i++, bit += key.h2) {
        uint64_t b = bit & seen->mask;
        if (!(seen->words[b / 64] & (1ULL << (b % 64))))
            return false;
    }
    return true;
}
