/* pipeline.c -- judging Caracal's own pipeline from Redis snapshots
 * (DESIGN §8): has each revocation enforcer applied what it was sent, is the
 * audit ingestor keeping up, and how close is MAXLEN trimming to entries a
 * group still needs.
 *
 * The facts come from Redis' consumer-group bookkeeping (§2.4): an entry is
 * applied by a group once it was delivered there (its id is at or before
 * the group's last-delivered-id) and is no longer in the group's pending
 * list. So the oldest revocation a group has not applied is the earlier of
 * its oldest pending entry and the first entry after last-delivered-id, and
 * its age is measured on Redis' own clock: the entry id's milliseconds
 * against now. A group created at `$` starts with last-delivered-id at the
 * stream's end, so everything before its creation counts as applied and a
 * late Gateway host is judged only on what came after it.
 *
 * Everything here is pure: the caller takes the snapshots (XINFO, XPENDING,
 * XRANGE COUNT 1; never in Caracal's groups) and the time, which is what
 * lets `doctor` and the daemon judge alike and tests state the rules as
 * tables.
 */
#include "event/event.h"

#include <fnmatch.h>
#include <string.h>

static const char *const default_enforcers[] = {"sts-revocation*",
                                                "gateway-revocation*"};

bool aw_enforcer_group_matches(const char *const *patterns, size_t npatterns,
                               const char *group)
{
    if (npatterns == 0) {
        patterns = default_enforcers;
        npatterns = sizeof default_enforcers / sizeof *default_enforcers;
    }
    for (size_t i = 0; i < npatterns; i++)
        if (fnmatch(patterns[i], group, 0) == 0)
            return true;
    return false;
}

bool aw_stream_pos_is_none(aw_stream_pos p)
{
    return p.ms == 0 && p.seq == 0;
}

static int64_t age_ms(aw_stream_pos p, int64_t now_ms)
{
    if (p.ms > (uint64_t)INT64_MAX || (int64_t)p.ms >= now_ms)
        return 0;
    return now_ms - (int64_t)p.ms;
}

aw_applied aw_group_applied(const aw_group_snapshot *group, aw_stream_pos r)
{
    if (aw_stream_id_cmp(r, group->last_delivered) > 0)
        return AW_APPLIED_NOT_DELIVERED;
    int64_t awaited = group->pending - group->declined;
    if (awaited <= 0)
        return AW_APPLIED_YES;
    int vs_oldest = aw_stream_id_cmp(r, group->oldest_pending);
    if (vs_oldest < 0)
        return AW_APPLIED_YES;
    if (vs_oldest == 0)
        return AW_APPLIED_PENDING;
    return awaited == 1 ? AW_APPLIED_YES : AW_APPLIED_UNKNOWN;
}

/* Entries deleted after the group's position: it will never read them.
 * XDEL shows in max-deleted-entry-id; trimming (MAXLEN, MINID) does not in
 * Redis 7.0, and shows instead as the group's position lying before the
 * first retained entry while it lags by more than the stream retains (the
 * rule the consumer's find_losses applies to auditwatch's own group). */
static bool lost_unread(const aw_stream_snapshot *stream,
                        const aw_group_snapshot *group)
{
    if (stream->max_deleted_known &&
        aw_stream_id_cmp(stream->max_deleted, group->last_delivered) > 0)
        return true;
    return group->lag != AW_FIGURE_UNKNOWN && group->lag > stream->length &&
           (stream->length == 0 ||
            aw_stream_id_cmp(group->last_delivered, stream->first_entry) < 0);
}

/* The earlier of the oldest pending and the first undelivered entry. */
static aw_stream_pos oldest_unapplied(const aw_group_snapshot *group,
                                      bool *is_pending)
{
    aw_stream_pos oldest = group->first_undelivered;
    *is_pending = false;
    if (group->pending > group->declined &&
        (aw_stream_pos_is_none(oldest) ||
         aw_stream_id_cmp(group->oldest_pending, oldest) < 0)) {
        oldest = group->oldest_pending;
        *is_pending = true;
    }
    return oldest;
}

const char *aw_enforcer_state_name(aw_enforcer_state state)
{
    switch (state) {
    case AW_ENFORCER_OK: return "ok";
    case AW_ENFORCER_NOT_READING: return "not_reading";
    case AW_ENFORCER_NOT_ACKING: return "not_acking";
    case AW_ENFORCER_TRIMMED: return "trimmed";
    }
    return "unknown";
}

void aw_enforcer_judge(const aw_stream_snapshot *stream,
                       const aw_group_snapshot *group, int64_t now_ms,
                       int64_t grace_ms, aw_enforcer_judgment *out)
{
    bool is_pending;
    *out = (aw_enforcer_judgment){.state = AW_ENFORCER_OK};
    out->oldest_unapplied = oldest_unapplied(group, &is_pending);
    if (!aw_stream_pos_is_none(out->oldest_unapplied))
        out->unapplied_age_ms = age_ms(out->oldest_unapplied, now_ms);
    if (lost_unread(stream, group))
        out->state = AW_ENFORCER_TRIMMED;
    else if (out->unapplied_age_ms > grace_ms)
        out->state =
            is_pending ? AW_ENFORCER_NOT_ACKING : AW_ENFORCER_NOT_READING;
    out->readers_gone =
        out->state == AW_ENFORCER_NOT_READING &&
        group->freshest_consumer_idle_ms != AW_FIGURE_UNKNOWN &&
        group->freshest_consumer_idle_ms >= out->unapplied_age_ms;
}

bool aw_enforcer_left_behind(const char *group, const aw_enforcer_judgment *j)
{
    return j->readers_gone && strcmp(group, AW_STS_REVOCATION_GROUP) != 0;
}

const char *aw_ingest_state_name(aw_ingest_state state)
{
    switch (state) {
    case AW_INGEST_OK: return "ok";
    case AW_INGEST_ABSENT: return "absent";
    case AW_INGEST_LAGGING: return "lagging";
    case AW_INGEST_STUCK: return "stuck";
    }
    return "unknown";
}

void aw_ingest_judge(const aw_group_snapshot *group, int64_t now_ms,
                     const aw_ingest_limits *limits, aw_ingest_judgment *out)
{
    *out = (aw_ingest_judgment){
        .state = AW_INGEST_OK,
        .lag = AW_FIGURE_UNKNOWN,
        .oldest_pending_age_ms = AW_FIGURE_UNKNOWN,
        .oldest_unread_age_ms = AW_FIGURE_UNKNOWN,
    };
    if (group == NULL) {
        out->state = AW_INGEST_ABSENT;
        return;
    }
    out->lag = group->lag;
    if (group->pending > 0)
        out->oldest_pending_age_ms = age_ms(group->oldest_pending, now_ms);
    if (!aw_stream_pos_is_none(group->first_undelivered))
        out->oldest_unread_age_ms = age_ms(group->first_undelivered, now_ms);
    if ((out->lag != AW_FIGURE_UNKNOWN && out->lag > limits->max_lag) ||
        out->oldest_unread_age_ms > limits->max_age_ms)
        out->state = AW_INGEST_LAGGING;
    else if (out->oldest_pending_age_ms > limits->max_age_ms)
        out->state = AW_INGEST_STUCK;
}

int64_t aw_group_trim_headroom(const aw_stream_snapshot *stream,
                               const aw_group_snapshot *group, int64_t maxlen)
{
    if (lost_unread(stream, group) ||
        (group->pending > group->declined &&
         aw_stream_id_cmp(group->oldest_pending, stream->first_entry) < 0))
        return 0;
    int64_t unread = group->lag;
    if (unread == AW_FIGURE_UNKNOWN) {
        /* Redis cannot count (a group created at `$` that has not read
         * since): every retained entry is unread when its position is
         * before the first one, none when nothing follows it */
        if (aw_stream_pos_is_none(group->first_undelivered))
            unread = 0;
        else if (aw_stream_id_cmp(group->last_delivered, stream->first_entry) <
                 0)
            unread = stream->length;
        else
            return AW_FIGURE_UNKNOWN;
    }
    int64_t headroom =
        maxlen - unread - (group->pending > 0 ? group->pending : 0);
    return headroom > 0 ? headroom : 0;
}
