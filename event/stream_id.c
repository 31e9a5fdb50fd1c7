/* stream_id.c -- Redis stream entry ids as numbers, and the time unit they
 * carry.
 *
 * An entry id is "<ms>-<seq>": the milliseconds of the server clock when the
 * entry was added, and a sequence within that millisecond. Every layer needs
 * to order ids, name the id right before or after one (to start a group at
 * the oldest retained entry, to name a lost range) and print them; this is
 * the one place that does it. Ordering is Redis's: by ms, then by seq.
 *
 * Milliseconds become the nanoseconds the rest of auditwatch counts in by
 * saturating at INT64_MAX: an id from far in the future (a producer's bad
 * clock, a hand-written id) must order last, never wrap negative.
 */
#include "event/event.h"

#include <inttypes.h>
#include <stdio.h>

int aw_stream_id_cmp(aw_stream_id a, aw_stream_id b)
{
    if (a.ms != b.ms)
        return a.ms < b.ms ? -1 : 1;
    return a.seq < b.seq ? -1 : a.seq > b.seq;
}

aw_stream_id aw_stream_id_next(aw_stream_id id)
{
    if (id.seq < UINT64_MAX)
        return (aw_stream_id){id.ms, id.seq + 1};
    if (id.ms < UINT64_MAX)
        return (aw_stream_id){id.ms + 1, 0};
    return id;
}

aw_stream_id aw_stream_id_prev(aw_stream_id id)
{
    if (id.seq > 0)
        return (aw_stream_id){id.ms, id.seq - 1};
    if (id.ms > 0)
        return (aw_stream_id){id.ms - 1, UINT64_MAX};
    return id;
}

char *aw_stream_id_format(aw_stream_id id, char *buf)
{
    snprintf(buf, AW_STREAM_ID_TEXT_MAX, "%" PRIu64 "-%" PRIu64, id.ms, id.seq);
    return buf;
}

int aw_stream_id_from_text(const char *s, size_t len, aw_stream_id *out)
{
    return aw_stream_id_parse(s, len, &out->ms, &out->seq);
}

int64_t aw_ms_to_ns(uint64_t ms)
{
    return ms > (uint64_t)(INT64_MAX / 1000000) ? INT64_MAX
                                                : (int64_t)ms * 1000000;
}

int64_t aw_ms_to_ns_signed(int64_t ms)
{
    if (ms > INT64_MAX / 1000000)
        return INT64_MAX;
    if (ms < INT64_MIN / 1000000)
        return INT64_MIN;
    return ms * 1000000;
}
