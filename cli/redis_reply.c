/* redis_reply.c -- reading the map-shaped replies of XINFO and friends.
 *
 * RESP2 (all hiredis 0.14 speaks) has no map type: XINFO STREAM / GROUPS /
 * CONSUMERS answer flat arrays [key, value, key, value, ...]. One look-up,
 * shared by `status` and `doctor`, so a missing key (a field an older Redis
 * does not report) is NULL everywhere and never a crash.
 */
#include "cli/cli.h"

#include <hiredis/hiredis.h>
#include <string.h>

const redisReply *aw_cli_reply_field(const redisReply *map, const char *key) {
    if (!map || map->type != REDIS_REPLY_ARRAY) return NULL;
    for (size_t i = 0; i + 1 < map->elements; i += 2) {
        const redisReply *k = map->element[i];
        if ((k->type == REDIS_REPLY_STRING || k->type == REDIS_REPLY_STATUS) &&
            strcmp(k->str, key) == 0)
            return map->element[i + 1];
    }
    return NULL;
}
