/* hash.c -- the fast non-cryptographic hash of in-memory tables.
 *
 * Eight bytes a step (multiply and fold, as in splitmix64), the tail read
 * into a zeroed word, the length folded in first so that keys differing
 * only by trailing NULs differ; the splitmix64 finaliser mixes the result.
 * Values depend on byte order and may change between versions: they key
 * in-memory caches and filters only, never anything written to disk.
 */
#include "event/event.h"

#include <string.h>

#define HASH_K1 0x9e3779b97f4a7c15ULL
#define HASH_K2 0xbf58476d1ce4e5b9ULL

uint64_t aw_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= HASH_K2;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

uint64_t aw_hash64(uint64_t seed, const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = seed ^ ((uint64_t)len * HASH_K1);
    uint64_t w;
    for (; len >= 8; p += 8, len -= 8) {
        memcpy(&w, p, 8);
        h = (h ^ w) * HASH_K2;
        h ^= h >> 29;
    }
    if (len > 0) {
        w = 0;
        memcpy(&w, p, len);
        h = (h ^ w) * HASH_K2;
        h ^= h >> 29;
    }
    return aw_mix64(h);
}
