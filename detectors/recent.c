/* recent.c -- the cache of recent decisions (see recent.h for why).
 *
 * A key is the zone, a NUL, and the request id, stored whole so that a hit
 * never rests on a hash alone; the slot is chosen by the same hash as the
 * detectors' filter (seen.h). An attacker who makes keys collide only
 * evicts entries, i.e. turns hits into store look-ups.
 */
#include "detectors/recent.h"

#include <stdlib.h>
#include <string.h>

#include "detectors/seen.h"
#include "event/event.h"

int aw_recent_init(aw_recent *recent)
{
    recent->slots = calloc(AW_RECENT_SLOTS, sizeof *recent->slots);
    return recent->slots ? AW_OK : AW_ERR_NOMEM;
}

void aw_recent_free(aw_recent *recent)
{
    free(recent->slots);
    recent->slots = NULL;
}

void aw_recent_clear(aw_recent *recent)
{
    memset(recent->slots, 0, AW_RECENT_SLOTS * sizeof *recent->slots);
}

/* Builds the key into key[AW_RECENT_KEY_MAX]; 0 when it does not fit. */
static size_t make_key(const char *zone_id, const char *request_id,
                       char key[AW_RECENT_KEY_MAX])
{
    size_t zone_len = strlen(zone_id), request_len = strlen(request_id);
    size_t len = zone_len + 1 + request_len;
    if (len > AW_RECENT_KEY_MAX)
        return 0;
    memcpy(key, zone_id, zone_len + 1);
    memcpy(key + zone_len + 1, request_id, request_len);
    return len;
}

static aw_recent_slot *slot_of(const aw_recent *recent, const char *zone_id,
                               const char *request_id)
{
    const char *parts[] = {zone_id, request_id};
    aw_seen_key hash = aw_seen_key_of('D', parts, 2);
    return &recent->slots[hash.h1 & (AW_RECENT_SLOTS - 1)];
}

void aw_recent_note(aw_recent *recent, const char *zone_id,
                    const char *request_id, int64_t arrived_ns)
{
    char key[AW_RECENT_KEY_MAX];
    size_t len = make_key(zone_id, request_id, key);
    if (!len)
        return;
    aw_recent_slot *slot = slot_of(recent, zone_id, request_id);
    if (slot->len == len && memcmp(slot->key, key, len) == 0) {
        if (arrived_ns < slot->arrived_ns)
            slot->arrived_ns = arrived_ns;
        return;
    }
    slot->len = (uint16_t)len;
    memcpy(slot->key, key, len);
    slot->arrived_ns = arrived_ns;
}

bool aw_recent_find(const aw_recent *recent, const char *zone_id,
                    const char *request_id, int64_t *arrived_ns)
{
    char key[AW_RECENT_KEY_MAX];
    size_t len = make_key(zone_id, request_id, key);
    if (!len)
        return false;
    const aw_recent_slot *slot = slot_of(recent, zone_id, request_id);
    if (slot->len != len || memcmp(slot->key, key, len) != 0)
        return false;
    *arrived_ns = slot->arrived_ns;
    return true;
}
