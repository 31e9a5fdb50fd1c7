/* seen.c -- the detectors' Bloom filter (see seen.h for why it exists).
 *
 * Double hashing (Kirsch and Mitzenmacher): one 64-bit FNV-1a pass over the
 * key, finished with the splitmix64 mixer, gives h1; mixing h1 again gives
 * h2 (forced odd); probe i sets bit h1 + i * h2. Seven probes keep false
 * positives near 1% up to ~0.1 keys per bit. This is not a security
 * boundary: an attacker who forces false positives only forces look-ups.
 */
#include "detectors/seen.h"

#include <stdlib.h>

#include "event/event.h"

#define SEEN_PROBES 7

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

aw_seen_key aw_seen_key_of(char tag, const char *const *parts, size_t nparts)
{
    uint64_t h = fnv1a(0xcbf29ce484222325ULL, &tag, 1);
    for (size_t i = 0; i < nparts; i++) {
        const char *s = parts[i] ? parts[i] : "";
        size_t len = 0;
        while (s[len])
            len++;
        /* The terminating NUL separates parts: ("ab","c") != ("a","bc"). */
        h = fnv1a(h, s, len + 1);
    }
    aw_seen_key key;
    key.h1 = mix64(h);
    key.h2 = mix64(key.h1 ^ 0x9e3779b97f4a7c15ULL) | 1;
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
