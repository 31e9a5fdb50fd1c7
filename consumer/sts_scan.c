/* sts_scan.c -- finding, in the STS's pending list, the oldest revocation
 * it has not applied, past the ones it declines by design (event.h,
 * AW_STS_REVOCATION_GROUP).
 *
 * The walk runs in Redis as one script: XPENDING gives the pending ids
 * page by page and XRANGE each one's fields, which would otherwise cost a
 * round trip per entry. The script's rule is aw_sts_declined's rule on the
 * raw fields, as the STS reads them (services/sts/internal/consumer.go):
 * an entry it applies names a non-empty session_id or agent_session_id.
 * A pending entry no longer in the stream (MAXLEN trimmed it while the STS,
 * which reclaims its pending list only when it starts, still held it) is
 * never delivered again -- XAUTOCLAIM drops it from the list -- so the STS
 * awaits nothing of it either, and the walk goes on past it.
 * It writes nothing, and examines a bounded number of entries per call.
 */
#include <stdio.h>
#include <string.h>

#include "consumer/reply.h"

/* KEYS[1] the stream; ARGV[1] the group, ARGV[2] the exclusive start ('-':
 * the first), ARGV[3] how many entries to examine at most. Returns {oldest
 * id, its idle ms, the last declined id, declined count, done}, with false
 * (nil) for what it has not found. */
static const char scan_script[] =
    "local function applies(entry)\n"
    "  if not entry then return false end\n"
    "  local f = entry[2]\n"
    "  for i = 1, #f - 1, 2 do\n"
    "    if (f[i] == 'session_id' or f[i] == 'agent_session_id') and\n"
    "       f[i + 1] ~= '' then return true end\n"
    "  end\n"
    "  return false\n"
    "end\n"
    "local start, left = ARGV[2], tonumber(ARGV[3])\n"
    "local declined, through = 0, false\n"
    "while left > 0 do\n"
    "  local page = redis.call('XPENDING', KEYS[1], ARGV[1], start, '+',\n"
    "                          math.min(left, 100))\n"
    "  if #page == 0 then return {false, false, through, declined, 1} end\n"
    "  for _, p in ipairs(page) do\n"
    "    if applies(redis.call('XRANGE', KEYS[1], p[1], p[1])[1]) then\n"
    "      return {p[1], p[3], through, declined, 1}\n"
    "    end\n"
    "    declined = declined + 1\n"
    "    through = p[1]\n"
    "  end\n"
    "  left = left - #page\n"
    "  start = '(' .. through\n"
    "end\n"
    "return {false, false, through, declined, 0}\n";

#define STRINGIFY(x) #x
#define DECIMAL(x)   STRINGIFY(x)

void aw_sts_scan_command_init(aw_sts_scan_command *out, const char *stream,
                              aw_stream_pos after)
{
    if (aw_stream_pos_is_none(after))
        snprintf(out->after, sizeof out->after, "-");
    else {
        char id[AW_STREAM_ID_TEXT_MAX];
        snprintf(out->after, sizeof out->after, "(%s",
                 aw_stream_id_format(after, id));
    }
    const char *argv[AW_STS_SCAN_ARGC] = {"EVAL",
                                          scan_script,
                                          "1",
                                          stream,
                                          AW_STS_REVOCATION_GROUP,
                                          out->after,
                                          DECIMAL(AW_STS_SCAN_ENTRIES)};
    memcpy(out->argv, argv, sizeof argv);
}

int aw_sts_scan_parse(const redisReply *reply, aw_sts_scan *out, aw_error *err)
{
    *out = (aw_sts_scan){.oldest_idle_ms = AW_FIGURE_UNKNOWN};
    if (reply->type == REDIS_REPLY_ERROR)
        return aw_error_set(err, AW_ERR_IO, "Redis EVAL (the STS scan): %s",
                            reply->str);
    const redisReply *const *e = (const redisReply *const *)reply->element;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 5 ||
        e[3]->type != REDIS_REPLY_INTEGER || e[4]->type != REDIS_REPLY_INTEGER)
        return aw_error_set(err, AW_ERR_INVALID,
                            "the STS scan's reply is not what it returns");
    out->declined = e[3]->integer;
    out->done = e[4]->integer != 0;
    out->found = aw_reply_stream_id(e[0], &out->oldest);
    if (out->found && e[1]->type == REDIS_REPLY_INTEGER)
        out->oldest_idle_ms = e[1]->integer;
    if (e[2]->type != REDIS_REPLY_NIL &&
        !aw_reply_stream_id(e[2], &out->declined_through))
        return aw_error_set(err, AW_ERR_INVALID,
                            "the STS scan's reply is not what it returns");
    return AW_OK;
}
