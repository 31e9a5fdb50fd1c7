/* loadgen.c -- publishes realistic Caracal traffic into Redis, as fast as a
 * blocking, pipelined client can, with a known set of injected anomalies.
 *
 * The traffic is what auditwatch reads in production (DESIGN §2): signed
 * audit events on caracal.audit.events shaped like Go's json.Marshal output
 * (struct fields in declaration order, map keys sorted, <>& escaped, times
 * in RFC 3339 with trimmed nanoseconds and the zone's offset), revocations
 * on the three revocation streams signed with the `_sig` stream scheme, and
 * calls observed by resource servers on auditwatch.calls. Every normal call
 * is complete: a Gateway call has its token_exchange with the same request
 * id, an observed call has its audit events, and an authority is revoked
 * only after its last use. Normal traffic also holds what real Caracal does
 * that a naive detector gets wrong (DESIGN §2.4): request ids that clients
 * reuse (several complete calls under one id; an allow then a
 * provider_credential_unavailable deny and no call; control.invoke events
 * whose event id is the request id), suspend/resume cycles (a session revoke
 * of the authority record and agent session, a lifecycle suspend, a resume,
 * then a new authority record), outbox redeliveries (same outbox_id and
 * dedupe_key, some after the resume), edges revoked as edge_id or expired
 * through edge_ids, spawns and edge_creates, root parent_id "null", and
 * decisions that carry the zone's delegation graph epoch. So on normal
 * traffic the detectors must stay silent, and every alert is either an
 * injected anomaly or a false positive.
 *
 * Anomalies (--anomalies K) cycle through the scenarios of lg_scenarios[]:
 * evidence that must alert, near misses that must not, and counterparts that
 * arrive late and must leave no open alert. Among them is Caracal's own
 * pipeline failing (DESIGN §8): a decision its audit service dead-lettered
 * to caracal.audit.events.dlq, a revocation a Gateway dead-lettered to
 * caracal.sessions.revoke.dead (signed, `values` as Go's json.Marshal
 * writes a map), and a Gateway host's enforcer group, created at `$` as
 * Caracal creates it, that read a revocation and never acknowledged it. Each one is written to the truth
 * file (--truth) as one JSON line with the alert id the detectors must use
 * (aw_detectors_alert_id), so the bench can score recall and false positives.
 *
 * Time is the delicate part: a revocation's time is its entry id, chosen by
 * Redis when the XADD runs, while occurred_at is chosen by the producer. So
 * revocations that an injected access must follow are published first, in
 * their own round trip, and the access gets an occurred_at well past the
 * revocation's id time. Evidence never reaches Redis before it happened,
 * and the detectors rely on that (an STS clock ahead of Redis' is no
 * violation), so such an access is published only once Redis' clock is past
 * the revocation and its grace, normal traffic going on meanwhile. The
 * revocation that "arrives late" is published in the late phase, after an
 * access dated far ahead: that access reached Redis first, so it came
 * first, whatever its stamp, and must raise nothing. Late counterparts keep
 * their original occurred_at, as a producer replaying its spool file would.
 *
 * Counting: --events N is the number of entries of the main phase, over all
 * streams, anomalies included; the late phase adds its few entries after it.
 */
#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "consumer/consumer.h"

#define LG_ID_MAX         40   /* a UUID and its NUL, with room */
#define LG_JSON_MAX       4096 /* one event's data; ours stay < 1.5 KiB */
#define LG_MAX_FIELDS     12
#define LG_SLOTS_PER_ZONE 32
#define LG_APPS_PER_ZONE  8
#define LG_CHAIN_MAX      2
/* Client-chosen request ids (X-Request-Id) a zone's clients reuse, each for
 * LG_CLIENT_ID_USES requests before the client picks another. */
#define LG_CLIENT_IDS     16
#define LG_CLIENT_ID_USES 4
/* Resumed agent sessions the late phase uses again. */
#define LG_RESUMED_MAX 256
#define LG_NS          1000000000LL
/* How far past a revocation's id time an injected access is dated: well
 * over the default propagation grace (5 s) and any sane configured one. */
#define LG_AFTER_REVOCATION_NS (120LL * LG_NS)
/* An access whose revocation is published only in the late phase is dated
 * this far ahead: as an STS clock far ahead of Redis' would stamp it. */
#define LG_AHEAD_OF_LATE_REVOCATION_NS (1800LL * LG_NS)
/* A near miss: used this soon after the revocation, inside the grace. */
#define LG_WITHIN_GRACE_NS (1LL * LG_NS)

/* ---- Deterministic randomness (splitmix64) ------------------------------ */

typedef struct lg_rng {
    uint64_t state;
} lg_rng;

static uint64_t rng_next(lg_rng *rng)
{
    uint64_t z = (rng->state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n); n > 0. The modulo bias is irrelevant here. */
static uint64_t rng_below(lg_rng *rng, uint64_t n)
{
    return rng_next(rng) % n;
}

/* True with probability percent / 100. */
static bool rng_percent(lg_rng *rng, unsigned percent)
{
    return rng_below(rng, 100) < percent;
}

/* The low ndigits hex digits of v, most significant first. */
static void put_hex(char *out, uint64_t v, int ndigits)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = ndigits - 1; i >= 0; i--, v >>= 4)
        out[i] = digits[v & 15];
}

/* Decimal digits of v; returns how many were written (at most 20). */
static size_t put_decimal(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

/* A random version-4 UUID, lowercase. */
static void rng_uuid(lg_rng *rng, char out[LG_ID_MAX])
{
    uint64_t a = rng_next(rng), b = rng_next(rng);
    put_hex(out, a >> 32, 8);
    out[8] = '-';
    put_hex(out + 9, a >> 16, 4);
    memcpy(out + 13, "-4", 2);
    put_hex(out + 15, a, 3);
    out[18] = '-';
    put_hex(out + 19, 0x8000 | (b >> 48 & 0x3fff), 4);
    out[23] = '-';
    put_hex(out + 24, b, 12);
    out[36] = '\0';
}

/* nhex random hex digits and a NUL. */
static void rng_hex(lg_rng *rng, char *out, size_t nhex)
{
    for (size_t i = 0; i < nhex; i += 16) {
        char block[16];
        put_hex(block, rng_next(rng), 16);
        memcpy(out + i, block, nhex - i < 16 ? nhex - i : 16);
    }
    out[nhex] = '\0';
}

/* ---- Time ------------------------------------------------------------------ */

static int64_t now_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * LG_NS + ts.tv_nsec;
}

/* Go's time.RFC3339Nano in the zone's fixed offset: fraction with trailing
 * zeros trimmed (none when zero), "Z" for UTC. out needs 48 bytes. */
static void format_rfc3339(int64_t ns, int offset_min, char out[48])
{
    int64_t local = ns + (int64_t)offset_min * 60 * LG_NS;
    time_t secs = (time_t)(local / LG_NS);
    long frac = (long)(local % LG_NS);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, 48, "%Y-%m-%dT%H:%M:%S", &tm);
    if (frac) {
        char digits[16];
        int len = snprintf(digits, sizeof digits, "%09ld", frac);
        while (len > 0 && digits[len - 1] == '0')
            len--;
        n += (size_t)snprintf(out + n, 48 - n, ".%.*s", len, digits);
    }
    if (offset_min == 0) {
        snprintf(out + n, 48 - n, "Z");
    } else {
        int abs_min = offset_min < 0 ? -offset_min : offset_min;
        snprintf(out + n, 48 - n, "%c%02d:%02d", offset_min < 0 ? '-' : '+',
                 abs_min / 60, abs_min % 60);
    }
}

/* ---- JSON the way Go's encoding/json writes it ------------------------- */

typedef struct lg_json {
    char buf[LG_JSON_MAX];
    size_t len;
    bool comma; /* the next value or key needs a separator */
} lg_json;

static void json_put(lg_json *j, const char *s, size_t n)
{
    assert(j->len + n < sizeof j->buf); /* our events are bounded */
    memcpy(j->buf + j->len, s, n);
    j->len += n;
}

static void json_separate(lg_json *j)
{
    if (j->comma)
        json_put(j, ",", 1);
    j->comma = true;
}

static bool json_needs_escape(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' ||
           c == '&';
}

/* Escapes like Go: quote, backslash, controls, and <, >, & as \u00XX.
 * Runs of plain bytes are copied at once. */
static void json_quoted(lg_json *j, const char *s)
{
    json_put(j, "\"", 1);
    const char *run = s;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (!json_needs_escape(c))
            continue;
        json_put(j, run, (size_t)(p - run));
        run = p + 1;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            json_put(j, esc, 2);
        } else {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            json_put(j, esc, 6);
        }
    }
    json_put(j, run, strlen(run));
    json_put(j, "\"", 1);
}

static void json_open(lg_json *j, char bracket)
{
    json_separate(j);
    json_put(j, &bracket, 1);
    j->comma = false;
}

static void json_close(lg_json *j, char bracket)
{
    json_put(j, &bracket, 1);
    j->comma = true;
}

static void json_key(lg_json *j, const char *key)
{
    json_separate(j);
    json_quoted(j, key);
    json_put(j, ":", 1);
    j->comma = false;
}

static void json_string(lg_json *j, const char *value)
{
    json_separate(j);
    json_quoted(j, value);
}

/* A string member; omitted when value is NULL (Go's omitempty). */
static void json_member(lg_json *j, const char *key, const char *value)
{
    if (!value)
        return;
    json_key(j, key);
    json_string(j, value);
}

static void json_member_uint(lg_json *j, const char *key, uint64_t value)
{
    char num[20];
    json_key(j, key);
    json_separate(j);
    json_put(j, num, put_decimal(num, value));
}

static void json_member_raw(lg_json *j, const char *key, const char *raw)
{
    json_key(j, key);
    json_separate(j);
    json_put(j, raw, strlen(raw));
}

/* ---- The world: zones, applications, resources, authorities ------------ */

typedef enum lg_subject { LG_AGENT, LG_USER, LG_SERVICE } lg_subject;
static const char *const lg_subject_names[] = {"agent", "user", "service"};

typedef struct lg_delegation {
    int app;
    char agent_session_id[LG_ID_MAX];
    char edge_id[LG_ID_MAX];
} lg_delegation;

/* The authority one token carries: an authority record (session_id) and,
 * for agents, the agent session, its delegation edge and the chain above. */
typedef struct lg_authority {
    int app;
    lg_subject subject;
    char session_id[LG_ID_MAX];
    char agent_session_id[LG_ID_MAX];
    char edge_id[LG_ID_MAX];
    int chain_len;
    lg_delegation chain[LG_CHAIN_MAX];
} lg_authority;

/* An authority in use; retired (and revoked) after its last use. */
typedef struct lg_slot {
    lg_authority auth;
    unsigned uses_left;
} lg_slot;

typedef struct lg_zone {
    char id[LG_ID_MAX];
    int offset_min;
    char policy_set_id[LG_ID_MAX];
    char policy_set_version_id[LG_ID_MAX];
    char manifest_sha[80];
    char apps[LG_APPS_PER_ZONE][LG_ID_MAX];
    lg_slot slots[LG_SLOTS_PER_ZONE];
    uint64_t epoch; /* the delegation graph's, bumped by every
                                     edge_create, edge_revoke, edge_expire */
    char client_ids[LG_CLIENT_IDS][LG_ID_MAX];
    unsigned client_uses[LG_CLIENT_IDS];
} lg_zone;

typedef struct lg_resource {
    const char *uri;
    const char *method;
    const char *scopes; /* the requested_scopes array, as JSON */
} lg_resource;

static const lg_resource lg_resources[] = {
    {"https://api.billing.example.com/v1/invoices?limit=50&status=open", "GET",
     "[\"invoices:read\"]"},
    {"https://api.billing.example.com/v1/invoices", "POST",
     "[\"invoices:read\",\"invoices:write\"]"},
    {"resource://crm/contacts", "GET", "[\"contacts:read\"]"},
    {"resource://crm/contacts", "PATCH", "[\"contacts:write\"]"},
    {"https://files.internal.example.com/buckets/reports/objects", "GET",
     "[\"files:read\"]"},
    {"mcp://github/tools/create_pull_request", "POST",
     "[\"repo:write\",\"pull_requests:write\"]"},
    {"mcp://slack/tools/post_message", "POST", "[\"chat:write\"]"},
    {"https://search.example.com/v2/query?q=quarterly+report&top=10", "GET",
     "[\"search:query\"]"},
};
#define LG_NRESOURCES (sizeof lg_resources / sizeof lg_resources[0])

static const int lg_offsets_min[] = {0, 0, 120, -300, 330, 60};

static void authority_new(lg_rng *rng, lg_authority *auth)
{
    memset(auth, 0, sizeof *auth);
    auth->app = (int)rng_below(rng, LG_APPS_PER_ZONE);
    unsigned roll = (unsigned)rng_below(rng, 100);
    auth->subject = roll < 70 ? LG_AGENT : roll < 90 ? LG_USER : LG_SERVICE;
    rng_uuid(rng, auth->session_id);
    if (auth->subject != LG_AGENT)
        return;
    rng_uuid(rng, auth->agent_session_id);
    rng_uuid(rng, auth->edge_id);
    /* Most agents act for a person directly; some were delegated to. */
    unsigned depth = (unsigned)rng_below(rng, 100);
    auth->chain_len = depth < 50 ? 0 : depth < 85 ? 1 : 2;
    for (int i = 0; i < auth->chain_len; i++) {
        auth->chain[i].app = (int)rng_below(rng, LG_APPS_PER_ZONE);
        rng_uuid(rng, auth->chain[i].agent_session_id);
        rng_uuid(rng, auth->chain[i].edge_id);
    }
}

/* An agent authority with a chain of at least one delegation: the anomaly
 * scenarios need every kind of anchor to exist. */
static void authority_new_agent(lg_rng *rng, lg_authority *auth)
{
    do
        authority_new(rng, auth);
    while (auth->subject != LG_AGENT || auth->chain_len == 0);
}

static void slot_refill(lg_rng *rng, lg_slot *slot)
{
    authority_new(rng, &slot->auth);
    slot->uses_left = 50 + (unsigned)rng_below(rng, 450);
}

static void zone_init(lg_rng *rng, lg_zone *zone, int index)
{
    rng_uuid(rng, zone->id);
    zone->offset_min = lg_offsets_min[index % (int)(sizeof lg_offsets_min /
                                                    sizeof lg_offsets_min[0])];
    rng_uuid(rng, zone->policy_set_id);
    rng_uuid(rng, zone->policy_set_version_id);
    memcpy(zone->manifest_sha, "sha256:", 7);
    rng_hex(rng, zone->manifest_sha + 7, 64);
    for (int i = 0; i < LG_APPS_PER_ZONE; i++)
        rng_uuid(rng, zone->apps[i]);
    for (int i = 0; i < LG_SLOTS_PER_ZONE; i++)
        slot_refill(rng, &zone->slots[i]);
    zone->epoch = 1 + rng_below(rng, 1000);
    for (int i = 0; i < LG_CLIENT_IDS; i++)
        zone->client_uses[i] = LG_CLIENT_ID_USES;
}

/* A request id a client of the zone chose and uses again (1-128 printable
 * characters, kept by the API and the Gateway). Valid until the next call. */
static const char *client_request_id(lg_rng *rng, lg_zone *zone)
{
    unsigned i = (unsigned)rng_below(rng, LG_CLIENT_IDS);
    if (zone->client_uses[i] >= LG_CLIENT_ID_USES) {
        memcpy(zone->client_ids[i], "client-req-", 11);
        rng_hex(rng, zone->client_ids[i] + 11, 16);
        zone->client_uses[i] = 0;
    }
    zone->client_uses[i]++;
    return zone->client_ids[i];
}

/* ---- Stream entries and the pipelined publisher ----------------------- */

/* One XADD in the making. Names and values are borrowed until published. */
typedef struct lg_entry {
    const char *stream;
    size_t n;
    const char *name[LG_MAX_FIELDS];
    const char *value[LG_MAX_FIELDS];
    size_t value_len[LG_MAX_FIELDS];
    char sig[65];
} lg_entry;

static void entry_start(lg_entry *e, const char *stream)
{
    e->stream = stream;
    e->n = 0;
}

static void entry_field(lg_entry *e, const char *name, const char *value,
                        size_t len)
{
    assert(e->n < LG_MAX_FIELDS);
    e->name[e->n] = name;
    e->value[e->n] = value;
    e->value_len[e->n] = len;
    e->n++;
}

/* A text field; skipped when value is NULL (optional field absent). */
static void entry_text(lg_entry *e, const char *name, const char *value)
{
    if (value)
        entry_field(e, name, value, strlen(value));
}

enum {
    LG_STREAM_AUDIT,
    LG_STREAM_SESSIONS,
    LG_STREAM_LIFECYCLE,
    LG_STREAM_DELEGATIONS,
    LG_STREAM_CALLS,
    LG_STREAM_AUDIT_DLQ,
    LG_STREAM_SESSIONS_DEAD,
    LG_NSTREAMS
};

typedef struct lg_counts {
    uint64_t entries;
    uint64_t per_stream[LG_NSTREAMS];
} lg_counts;

struct lg_anomaly;

/* Commands are formatted here (RESP) and appended to hiredis' output
 * buffer; every `depth` commands the batch is sent. Two batches are in
 * flight: the replies of a batch are read only after the next one was
 * built and sent, so Redis works on one batch while the next is generated.
 * A command may carry the anomaly whose evidence it is: its reply (the
 * entry id Redis chose) is recorded there. */
typedef struct lg_publisher {
    redisContext *redis;
    size_t depth;
    size_t queued;                /* in the batch being built */
    size_t in_flight;             /* sent, replies not read yet */
    int building;                 /* which owner array the new batch uses */
    struct lg_anomaly **owner[2]; /* depth slots each: the anomaly, or NULL */
    aw_buf resp;                  /* the command being formatted */
    double rate;                  /* entries per second; 0 = unpaced */
    int64_t paced_since_ns;
    uint64_t paced_count;
    lg_counts counts;
} lg_publisher;

/* ---- Anomaly scenarios -------------------------------------------------- */

/* What the detectors must do about a scenario. */
typedef enum lg_expect {
    LG_EXPECT_OPEN,             /* an open alert with the expected id */
    LG_EXPECT_RESOLVED_OR_NONE, /* raised then resolved, or never raised */
    LG_EXPECT_NONE,             /* no alert at all */
} lg_expect;
static const char *const lg_expect_names[] = {"open", "resolved_or_none",
                                              "none"};

typedef enum lg_scenario_id {
    SC_GATEWAY_WITHOUT_DECISION,
    SC_CALL_WITHOUT_AUDIT,
    SC_ACCESS_AFTER_SESSION_REVOKE,
    SC_ACCESS_AFTER_AGENT_TERMINATE,
    SC_ACCESS_AFTER_EDGE_REVOKE,
    SC_ACCESS_VIA_REVOKED_CHAIN_EDGE,
    SC_REVOCATION_ARRIVES_LATE,
    SC_DECISION_ARRIVES_LATE,
    SC_AUDIT_ARRIVES_LATE,
    SC_BAD_AUDIT_SIGNATURE,
    SC_BAD_REVOCATION_SIGNATURE,
    SC_JTI_COLLISION,
    SC_REPLAY_DETECTED,
    SC_ACCESS_DURING_SUSPENSION,
    SC_ACCESS_WITHIN_GRACE,
    SC_DENY_AFTER_REVOCATION,
    SC_ACCESS_AFTER_RESUME,
    SC_FAILED_CALL_WITHOUT_AUDIT,
    SC_SECOND_CALL_WITHOUT_DECISION,
    SC_ACCESS_AFTER_EDGE_EXPIRE,
    SC_ACCESS_AT_REVOKED_EPOCH,
    SC_OLD_RECORD_AFTER_RESUME,
    SC_AGENT_AFTER_SUSPEND_RESUME,
    SC_AUDIT_DEAD_LETTERED,
    SC_REVOCATION_DEAD_LETTERED,
    SC_STS_DECLINES_EDGE,
    SC_ENFORCER_STALLED,
    SC_STALE_REQUEST_ID,
    SC_COUNT
} lg_scenario_id;

typedef struct lg_scenario {
    const char *name;
    const char *kind; /* the alert kind concerned */
    lg_expect expect;
} lg_scenario;

static const lg_scenario lg_scenarios[SC_COUNT] = {
    [SC_GATEWAY_WITHOUT_DECISION] = {"gateway_call_without_decision",
                                     AW_ALERT_DECISION_MISSING, LG_EXPECT_OPEN},
    [SC_CALL_WITHOUT_AUDIT] = {"observed_call_without_audit",
                               AW_ALERT_CALL_WITHOUT_AUDIT, LG_EXPECT_OPEN},
    [SC_ACCESS_AFTER_SESSION_REVOKE] = {"access_after_session_revoke",
                                        AW_ALERT_ACCESS_AFTER_REVOCATION,
                                        LG_EXPECT_OPEN},
    [SC_ACCESS_AFTER_AGENT_TERMINATE] = {"access_after_agent_terminate",
                                         AW_ALERT_ACCESS_AFTER_REVOCATION,
                                         LG_EXPECT_OPEN},
    [SC_ACCESS_AFTER_EDGE_REVOKE] = {"access_after_edge_revoke",
                                     AW_ALERT_ACCESS_AFTER_REVOCATION,
                                     LG_EXPECT_OPEN},
    [SC_ACCESS_VIA_REVOKED_CHAIN_EDGE] = {"access_via_revoked_chain_edge",
                                          AW_ALERT_ACCESS_AFTER_REVOCATION,
                                          LG_EXPECT_OPEN},
    /* stamped after it, but in Redis before the revocation was */
    [SC_REVOCATION_ARRIVES_LATE] = {"revocation_arrives_after_access",
                                    AW_ALERT_ACCESS_AFTER_REVOCATION,
                                    LG_EXPECT_NONE},
    [SC_DECISION_ARRIVES_LATE] = {"decision_arrives_late",
                                  AW_ALERT_DECISION_MISSING,
                                  LG_EXPECT_RESOLVED_OR_NONE},
    [SC_AUDIT_ARRIVES_LATE] = {"audit_arrives_late",
                               AW_ALERT_CALL_WITHOUT_AUDIT,
                               LG_EXPECT_RESOLVED_OR_NONE},
    [SC_BAD_AUDIT_SIGNATURE] = {"bad_audit_signature",
                                AW_ALERT_SIGNATURE_INVALID, LG_EXPECT_OPEN},
    [SC_BAD_REVOCATION_SIGNATURE] = {"bad_revocation_signature",
                                     AW_ALERT_SIGNATURE_INVALID,
                                     LG_EXPECT_OPEN},
    [SC_JTI_COLLISION] = {"jti_collision", AW_ALERT_CARACAL_ANOMALY,
                          LG_EXPECT_OPEN},
    [SC_REPLAY_DETECTED] = {"replay_detected", AW_ALERT_CARACAL_ANOMALY,
                            LG_EXPECT_OPEN},
    [SC_ACCESS_DURING_SUSPENSION] = {"access_during_suspension",
                                     AW_ALERT_ACCESS_AFTER_REVOCATION,
                                     LG_EXPECT_OPEN},
    [SC_ACCESS_WITHIN_GRACE] = {"access_within_revocation_grace",
                                AW_ALERT_ACCESS_AFTER_REVOCATION,
                                LG_EXPECT_NONE},
    [SC_DENY_AFTER_REVOCATION] = {"deny_after_revocation",
                                  AW_ALERT_ACCESS_AFTER_REVOCATION,
                                  LG_EXPECT_NONE},
    [SC_ACCESS_AFTER_RESUME] = {"access_after_resume",
                                AW_ALERT_ACCESS_AFTER_REVOCATION,
                                LG_EXPECT_NONE},
    [SC_FAILED_CALL_WITHOUT_AUDIT] = {"failed_call_without_audit",
                                      AW_ALERT_CALL_WITHOUT_AUDIT,
                                      LG_EXPECT_NONE},
    /* one decision, two Gateway calls under the same request id */
    [SC_SECOND_CALL_WITHOUT_DECISION] = {"second_call_without_decision",
                                         AW_ALERT_DECISION_MISSING,
                                         LG_EXPECT_OPEN},
    [SC_ACCESS_AFTER_EDGE_EXPIRE] = {"access_after_edge_expire",
                                     AW_ALERT_ACCESS_AFTER_REVOCATION,
                                     LG_EXPECT_OPEN},
    /* dated before the edge_revoke, decided at its epoch: no clock needed */
    [SC_ACCESS_AT_REVOKED_EPOCH] = {"access_at_revoked_epoch",
                                    AW_ALERT_ACCESS_AFTER_REVOCATION,
                                    LG_EXPECT_OPEN},
    /* suspended and resumed: the old authority record stays revoked... */
    [SC_OLD_RECORD_AFTER_RESUME] = {"old_authority_record_after_resume",
                                    AW_ALERT_ACCESS_AFTER_REVOCATION,
                                    LG_EXPECT_OPEN},
    /* ...and the agent session is usable again */
    [SC_AGENT_AFTER_SUSPEND_RESUME] = {"agent_session_after_suspend_resume",
                                       AW_ALERT_ACCESS_AFTER_REVOCATION,
                                       LG_EXPECT_NONE},
    /* Caracal's audit service gave up on a decision: its DLQ copy */
    [SC_AUDIT_DEAD_LETTERED] = {"audit_dead_lettered",
                                AW_ALERT_AUDIT_DEAD_LETTERED, LG_EXPECT_OPEN},
    /* a Gateway gave up applying a revocation: its .dead copy */
    [SC_REVOCATION_DEAD_LETTERED] = {"revocation_dead_lettered",
                                     AW_ALERT_REVOCATION_DEAD_LETTERED,
                                     LG_EXPECT_OPEN},
    /* Caracal's API revokes an edge naming it alone; the STS fails that by
     * design and dead-letters it (the Gateway applies it): no alert */
    [SC_STS_DECLINES_EDGE] = {"sts_dead_letters_an_edge_revocation",
                              AW_ALERT_REVOCATION_DEAD_LETTERED,
                              LG_EXPECT_NONE},
    /* a Gateway host's group read a revocation and never acknowledged it */
    [SC_ENFORCER_STALLED] = {"enforcer_group_stalled",
                             AW_ALERT_REVOCATION_NOT_CONSUMED, LG_EXPECT_OPEN},
    /* a call around the Gateway under the id of a request audited long ago */
    [SC_STALE_REQUEST_ID] = {"call_with_a_stale_request_id",
                             AW_ALERT_CALL_WITHOUT_AUDIT, LG_EXPECT_OPEN},
};

typedef struct lg_anomaly {
    lg_scenario_id scenario;
    int zone;
    uint64_t position; /* normal entries published before it */
    char request_id[LG_ID_MAX];
    lg_authority auth;    /* fresh: used by nothing else */
    const char *severity; /* expected, for the alerts that must open */
    /* Filled while publishing. */
    char entry_id[48];        /* id of the last entry tagged with it */
    char event_id[LG_ID_MAX]; /* data.id of the last audit event tagged */
    int64_t entry_ms;
    int64_t evidence_ns; /* occurred_at of the main-phase evidence */
    lg_expect expect;    /* the scenario's, unless time defeated it */
    char *dead_values;   /* the dead-letter scenarios: the original's
                            fields as JSON (owned) */
    char group[64];      /* SC_ENFORCER_STALLED: the stalled group */
} lg_anomaly;

/* ---- Configuration ------------------------------------------------------ */

typedef struct lg_options {
    const char *redis_url;
    uint64_t events;
    double rate;
    int zones;
    int anomalies;
    const char *truth_path;
    uint64_t seed;
    size_t pipeline;
    const char *audit_key_file;
    const char *streams_key_file;
    double late_delay_s;
    bool late_on_stdin;
} lg_options;

typedef struct lg_gen {
    lg_options opt;
    lg_rng rng;
    lg_zone *zones;
    aw_hmac_key *audit_key;
    aw_hmac_key *streams_key;
    aw_buf canonical;
    lg_json json; /* the event being written */
    lg_publisher pub;
    const char *stream_names[LG_NSTREAMS];
    lg_anomaly *anomalies;
    /* Agent sessions suspended and resumed in the main phase, used again
     * in the late phase (more than any grace later): normal traffic that
     * must raise nothing. slot is NULL once the slot's authority retired. */
    struct lg_resumed {
        const lg_slot *slot;
        int zone;
        lg_authority auth;
    } resumed[LG_RESUMED_MAX];
    size_t nresumed;
    uint64_t normal_budget; /* main-phase entries for normal traffic */
    uint64_t normal_published;
    /* When Redis' clock is past every revocation published before the
     * main traffic and its grace (CLOCK_REALTIME: Redis runs here). */
    int64_t revocations_settled_ns;
} lg_gen;

/* A benchmark run that cannot go on as asked is worthless: every failure
 * (bad option, Redis error, key problem) ends it with a message. */
static void die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* ---- Publishing ------------------------------------------------------- */

/* Reads n replies; records entry ids for the anomalies that asked. */
static void collect_replies(lg_publisher *pub, lg_anomaly **owners, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        redisReply *reply = NULL;
        if (redisGetReply(pub->redis, (void **)&reply) != REDIS_OK)
            die("redis: %s", pub->redis->errstr);
        if (reply->type != REDIS_REPLY_STRING)
            die("XADD failed: %s", reply->type == REDIS_REPLY_ERROR
                                       ? reply->str
                                       : "unexpected reply");
        lg_anomaly *owner = owners[i];
        if (owner) {
            uint64_t ms, seq;
            if (aw_stream_id_parse(reply->str, reply->len, &ms, &seq) !=
                    AW_OK ||
                reply->len >= sizeof owner->entry_id)
                die("XADD returned an odd entry id");
            memcpy(owner->entry_id, reply->str, reply->len);
            owner->entry_id[reply->len] = '\0';
            owner->entry_ms = (int64_t)ms;
        }
        freeReplyObject(reply);
    }
}

/* Sends the batch being built, then reads the replies of the batch sent
 * before it. When paced, sleeps until the rate allows what was sent. */
static void publisher_send(lg_publisher *pub)
{
    int done = 0;
    while (!done)
        if (redisBufferWrite(pub->redis, &done) != REDIS_OK)
            die("redis: %s", pub->redis->errstr);
    collect_replies(pub, pub->owner[!pub->building], pub->in_flight);
    pub->in_flight = pub->queued;
    pub->queued = 0;
    pub->building = !pub->building;
    if (pub->rate > 0) {
        int64_t due = pub->paced_since_ns +
                      (int64_t)((double)pub->paced_count / pub->rate * 1e9);
        int64_t wait = due - now_ns(CLOCK_MONOTONIC);
        if (wait > 0) {
            struct timespec ts = {wait / LG_NS, wait % LG_NS};
            nanosleep(&ts, NULL);
        }
    }
}

/* Sends what is queued and reads every reply. */
static void publisher_drain(lg_publisher *pub)
{
    publisher_send(pub);
    publisher_send(pub);
}

static void resp_append(aw_buf *b, const char *bytes, size_t len)
{
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len)
            cap *= 2;
        char *p = realloc(b->ptr, cap);
        if (!p)
            die("out of memory");
        b->ptr = p;
        b->cap = cap;
    }
    memcpy(b->ptr + b->len, bytes, len);
    b->len += len;
}

/* "<prefix><decimal>\r\n", as RESP heads its arrays and bulk strings. */
static void resp_head(aw_buf *b, char prefix, size_t n)
{
    char head[24];
    head[0] = prefix;
    size_t len = 1 + put_decimal(head + 1, n);
    memcpy(head + len, "\r\n", 2);
    resp_append(b, head, len + 2);
}

static void resp_bulk(aw_buf *b, const char *bytes, size_t len)
{
    resp_head(b, '$', len);
    resp_append(b, bytes, len);
    resp_append(b, "\r\n", 2);
}

static void publish(lg_gen *g, int stream, lg_entry *e, lg_anomaly *owner)
{
    lg_publisher *pub = &g->pub;
    aw_buf *b = &pub->resp;
    b->len = 0;
    resp_head(b, '*', 3 + 2 * e->n);
    resp_bulk(b, "XADD", 4);
    resp_bulk(b, e->stream, strlen(e->stream));
    resp_bulk(b, "*", 1);
    for (size_t i = 0; i < e->n; i++) {
        resp_bulk(b, e->name[i], strlen(e->name[i]));
        resp_bulk(b, e->value[i], e->value_len[i]);
    }
    if (redisAppendFormattedCommand(pub->redis, b->ptr, b->len) != REDIS_OK)
        die("redis: %s", pub->redis->errstr);
    pub->owner[pub->building][pub->queued++] = owner;
    pub->counts.entries++;
    pub->counts.per_stream[stream]++;
    pub->paced_count++;
    if (pub->queued == pub->depth)
        publisher_send(pub);
}

/* ---- Signing ---------------------------------------------------------- */

static void sign_bytes(aw_hmac_key *key, const char *data, size_t len,
                       char hex[65])
{
    unsigned char mac[32];
    if (aw_hmac_compute(key, data, len, mac) != AW_OK)
        die("HMAC computation failed");
    aw_hex(mac, sizeof mac, hex);
}

/* Makes a valid signature invalid, keeping it well-formed hex. */
static void spoil_signature(char hex[65])
{
    hex[0] = hex[0] == '0' ? '1' : '0';
}

/* Appends `_sig` over the stream scheme's canonical form of e. */
static void sign_stream_entry(lg_gen *g, lg_entry *e)
{
    aw_field fields[LG_MAX_FIELDS];
    for (size_t i = 0; i < e->n; i++) {
        fields[i].name = (aw_bytes){e->name[i], strlen(e->name[i])};
        fields[i].value = (aw_bytes){e->value[i], e->value_len[i]};
    }
    aw_raw_entry *raw = NULL;
    aw_error err;
    aw_bytes stream = {e->stream, strlen(e->stream)};
    if (aw_raw_entry_new(stream, (aw_bytes){"0-0", 3}, fields, e->n, &raw,
                         &err) != AW_OK)
        die("building a raw entry: %s", err.msg);
    g->canonical.len = 0;
    if (aw_stream_canonical(raw, &g->canonical, &err) != AW_OK)
        die("canonical form: %s", err.msg);
    aw_raw_entry_free(raw);
    sign_bytes(g->streams_key, g->canonical.ptr, g->canonical.len, e->sig);
    entry_field(e, "_sig", e->sig, 64);
}

/* ---- Audit events ----------------------------------------------------- */

/* The variable parts of one audit event; the rest comes from the zone. */
typedef struct lg_event {
    const char *event_id; /* NULL: a fresh UUID */
    const char *event_type;
    const char *request_id;
    const char *decision;
    const char *evaluation_status;
    const char *determining; /* raw JSON, "null" allowed */
    const char *diagnostics; /* raw JSON */
    bool policy;             /* carries the policy set and manifest */
    int64_t occurred_at_ns;
    const lg_authority *auth; /* NULL: no anchors in the metadata */
    int app;                  /* application when auth is NULL */
    const lg_resource *resource;
    bool dead_lettered; /* on the audit DLQ, as the audit service moves it */
    /* Gateway calls. */
    int gateway_status, upstream_status; /* 0: absent */
    int latency_ms;
    uint64_t response_bytes;
    const char *result_class, *error_kind;
    /* Caracal anomaly events. */
    const char *jti;
} lg_event;

/* Metadata keys sorted bytewise, as Go writes a map[string]any. */
static void write_metadata(lg_json *j, const lg_zone *zone, const lg_event *ev,
                           const char *trace_id)
{
    const lg_authority *a = ev->auth;
    bool gateway = ev->gateway_status != 0;
    json_key(j, "metadata_json");
    json_open(j, '{');
    if (a && a->subject == LG_AGENT)
        json_member(j, "agent_session_id", a->agent_session_id);
    json_member(j, "application_id", zone->apps[a ? a->app : ev->app]);
    if (a && a->subject == LG_AGENT) {
        json_key(j, "delegation_chain");
        json_open(j, '[');
        for (int i = 0; i < a->chain_len; i++) {
            json_open(j, '{');
            json_member(j, "agent_session_id", a->chain[i].agent_session_id);
            json_member(j, "application_id", zone->apps[a->chain[i].app]);
            json_member(j, "delegation_edge_id", a->chain[i].edge_id);
            json_close(j, '}');
        }
        json_close(j, ']');
        json_member(j, "delegation_edge_id", a->edge_id);
        /* the graph epoch the STS read when it decided */
        if (strcmp(ev->event_type, "token_exchange") == 0)
            json_member_uint(j, "delegation_graph_epoch", zone->epoch);
    }
    json_member(j, "error_kind", ev->error_kind);
    if (gateway) {
        json_member_uint(j, "gateway_status", (uint64_t)ev->gateway_status);
        json_member_uint(j, "latency_ms", (uint64_t)ev->latency_ms);
    }
    json_member(j, "jti", ev->jti);
    if (gateway)
        json_member(j, "method", ev->resource->method);
    if (!gateway && a)
        json_member_raw(j, "requested_scopes", ev->resource->scopes);
    json_member(j, "resource", ev->resource->uri);
    if (gateway) {
        json_member_uint(j, "response_bytes", ev->response_bytes);
        json_member(j, "result_class", ev->result_class);
    }
    if (a)
        json_member(j, "session_id", a->session_id);
    if (a && !gateway)
        json_member(j, "subject_kind", lg_subject_names[a->subject]);
    json_member(j, "trace_id", trace_id);
    if (ev->upstream_status)
        json_member_uint(j, "upstream_status", (uint64_t)ev->upstream_status);
    json_close(j, '}');
}

typedef enum lg_signing {
    LG_SIGNED,
    LG_BADLY_SIGNED,
} lg_signing;

/* Builds, signs and publishes one audit event. */
static void publish_audit(lg_gen *g, const lg_zone *zone, const lg_event *ev,
                          lg_signing signing, lg_anomaly *owner)
{
    char event_id[LG_ID_MAX], trace_id[33], occurred[48], outbox_id[LG_ID_MAX];
    if (ev->event_id)
        snprintf(event_id, sizeof event_id, "%s", ev->event_id);
    else
        rng_uuid(&g->rng, event_id);
    if (owner)
        memcpy(owner->event_id, event_id, sizeof event_id);
    rng_hex(&g->rng, trace_id, 32);
    format_rfc3339(ev->occurred_at_ns, zone->offset_min, occurred);

    lg_json *j = &g->json;
    j->len = 0;
    j->comma = false;
    json_open(j, '{');
    json_member(j, "id", event_id);
    json_member(j, "zone_id", zone->id);
    json_member(j, "event_type", ev->event_type);
    json_member(j, "request_id", ev->request_id);
    json_member(j, "decision", ev->decision);
    if (ev->policy) {
        json_member(j, "policy_set_id", zone->policy_set_id);
        json_member(j, "policy_set_version_id", zone->policy_set_version_id);
        json_member(j, "manifest_sha", zone->manifest_sha);
    }
    json_member(j, "evaluation_status", ev->evaluation_status);
    json_member_raw(j, "determining_policies_json", ev->determining);
    json_member_raw(j, "diagnostics_json", ev->diagnostics);
    write_metadata(j, zone, ev, trace_id);
    json_member(j, "occurred_at", occurred);
    json_close(j, '}');

    lg_entry e;
    char sig[65];
    sign_bytes(g->audit_key, j->buf, j->len, sig);
    if (signing == LG_BADLY_SIGNED)
        spoil_signature(sig);
    if (ev->dead_lettered) {
        /* reason, received_at (epoch ms), then src_<field> of the original */
        char received[24];
        received[put_decimal(
            received, (uint64_t)(now_ns(CLOCK_REALTIME) / 1000000))] = '\0';
        entry_start(&e, g->stream_names[LG_STREAM_AUDIT_DLQ]);
        entry_text(&e, "reason", "max_deliveries_exceeded");
        entry_text(&e, "received_at", received);
        entry_text(&e, "src_id", event_id);
        entry_field(&e, "src_data", j->buf, j->len);
        entry_field(&e, "src_sig", sig, 64);
        publish(g, LG_STREAM_AUDIT_DLQ, &e, owner);
        return;
    }
    entry_start(&e, g->stream_names[LG_STREAM_AUDIT]);
    /* Some producers put the request id in the stream's `id` field. */
    entry_text(&e, "id",
               rng_percent(&g->rng, 10) && ev->request_id ? ev->request_id
                                                          : event_id);
    entry_field(&e, "data", j->buf, j->len);
    entry_field(&e, "sig", sig, 64);
    /* Entries relayed through Caracal's outbox also carry outbox_id, _sig. */
    if (rng_percent(&g->rng, 10)) {
        rng_uuid(&g->rng, outbox_id);
        entry_text(&e, "outbox_id", outbox_id);
        sign_stream_entry(g, &e);
    }
    publish(g, LG_STREAM_AUDIT, &e, owner);
}

static const char *const lg_policies_allow =
    "[{\"id\":\"baseline-resource-scope\"}]";
static const char *const lg_policies_deny =
    "[{\"id\":\"deny-scope-not-granted\"}]";
static const char *const lg_diagnostics_deny =
    "[{\"code\":\"scope_denied\",\"message\":\"requested scope is not granted "
    "to this application\"}]";

/* The STS's token exchange for request_id. */
static void publish_exchange(lg_gen *g, const lg_zone *zone,
                             const lg_authority *auth, const char *request_id,
                             const lg_resource *res, bool allow,
                             int64_t occurred_at_ns, lg_anomaly *owner)
{
    lg_event ev = {
        .event_type = "token_exchange",
        .request_id = request_id,
        .decision = allow ? "allow" : "deny",
        .evaluation_status = "complete",
        .determining = allow ? lg_policies_allow : lg_policies_deny,
        .diagnostics = allow ? "null" : lg_diagnostics_deny,
        .policy = true,
        .occurred_at_ns = occurred_at_ns,
        .auth = auth,
        .resource = res,
    };
    publish_audit(g, zone, &ev, LG_SIGNED, owner);
}

/* How the upstream answered a Gateway call. */
typedef struct lg_outcome {
    int upstream_status; /* 0: the upstream was not reached */
    int gateway_status;
    const char *evaluation_status;
    const char *result_class;
    const char *error_kind;
} lg_outcome;

static lg_outcome outcome_pick(lg_rng *rng)
{
    static const lg_outcome outcomes[] = {
        {200, 200, "executed", "success", NULL},
        {201, 201, "executed", "success", NULL},
        {204, 204, "executed", "success", NULL},
        {302, 302, "executed", "redirect", NULL},
        {404, 404, "upstream_rejected", "client_error", NULL},
        {403, 403, "upstream_rejected", "client_error", NULL},
        {503, 503, "upstream_error", "server_error", NULL},
        {0, 502, "upstream_error", "server_error", "upstream_timeout"},
    };
    static const unsigned weights[] = {70, 6, 4, 4, 6, 3, 4, 3};
    unsigned roll = (unsigned)rng_below(rng, 100);
    for (size_t i = 0; i < sizeof weights / sizeof weights[0]; i++) {
        if (roll < weights[i])
            return outcomes[i];
        roll -= weights[i];
    }
    return outcomes[0];
}

static const lg_outcome lg_ok = {200, 200, "executed", "success", NULL};

/* The Gateway's record of a proxied call. */
static void publish_gateway(lg_gen *g, const lg_zone *zone, int app,
                            const char *request_id, const lg_resource *res,
                            const lg_outcome *out, int latency_ms,
                            int64_t occurred_at_ns, lg_anomaly *owner)
{
    lg_event ev = {
        .event_type = "gateway_resource_request",
        .request_id = request_id,
        .decision = "allow",
        .evaluation_status = out->evaluation_status,
        .determining = "null",
        .diagnostics = "null",
        .occurred_at_ns = occurred_at_ns,
        .app = app,
        .resource = res,
        .gateway_status = out->gateway_status,
        .upstream_status = out->upstream_status,
        .latency_ms = latency_ms,
        .response_bytes =
            out->upstream_status ? 64 + rng_below(&g->rng, 64 * 1024) : 0,
        .result_class = out->result_class,
        .error_kind = out->error_kind,
    };
    publish_audit(g, zone, &ev, LG_SIGNED, owner);
}

/* A resource server's access-log line for request_id. */
static void publish_call(lg_gen *g, const lg_zone *zone, const char *request_id,
                         const lg_resource *res, int status,
                         int64_t occurred_at_ns, bool always_timed,
                         lg_anomaly *owner)
{
    char status_text[8], occurred[48];
    snprintf(status_text, sizeof status_text, "%d", status);
    lg_entry e;
    entry_start(&e, g->stream_names[LG_STREAM_CALLS]);
    entry_text(&e, "request_id", request_id);
    entry_text(&e, "status", status_text);
    /* Some access logs carry no time: the entry id's time stands in. */
    if (rng_percent(&g->rng, 80) || always_timed) {
        format_rfc3339(occurred_at_ns, zone->offset_min, occurred);
        entry_text(&e, "occurred_at", occurred);
    }
    entry_text(&e, "zone_id", zone->id);
    entry_text(&e, "resource", res->uri);
    entry_text(&e, "source",
               rng_percent(&g->rng, 50) ? "nginx-edge" : "envoy-sidecar");
    sign_stream_entry(g, &e);
    publish(g, LG_STREAM_CALLS, &e, owner);
}

/* A whole Gateway call: the exchange, the upstream's access-log line when
 * logged (only a reached upstream logs), and the Gateway's record. */
static void publish_gateway_call(lg_gen *g, const lg_zone *zone,
                                 const lg_authority *auth, bool logged,
                                 const lg_outcome *out, const char *reused_id,
                                 int64_t exchanged_at_ns)
{
    char request_id[LG_ID_MAX];
    if (reused_id)
        snprintf(request_id, sizeof request_id, "%s", reused_id);
    else
        rng_uuid(&g->rng, request_id);
    const lg_resource *res = &lg_resources[rng_below(&g->rng, LG_NRESOURCES)];
    int latency_ms = 5 + (int)rng_below(&g->rng, 400);
    int64_t done_ns = exchanged_at_ns + (int64_t)latency_ms * 1000000;
    publish_exchange(g, zone, auth, request_id, res, true, exchanged_at_ns,
                     NULL);
    if (logged)
        publish_call(g, zone, request_id, res, out->upstream_status,
                     done_ns - 1000000, false, NULL);
    publish_gateway(g, zone, auth->app, request_id, res, out, latency_ms,
                    done_ns, NULL);
}

/* ---- Revocations ------------------------------------------------------ */

typedef enum lg_revocation_kind {
    LG_REVOKE_AUTHORITY,    /* sessions.revoke naming the whole authority */
    LG_REVOKE_SESSION_ONLY, /* sessions.revoke naming the record alone */
    LG_REVOKE_EDGE_ONLY,    /* sessions.revoke naming one delegation edge,
                                 as delegation_edge_id or as edge_id */
    LG_SUSPEND_SESSION,     /* sessions.revoke of a suspend: the record and
                                 the agent session (coordinator) */
    LG_TERMINATE_AGENT,     /* agents.lifecycle terminate */
    LG_SUSPEND_AGENT,       /* agents.lifecycle suspend */
    LG_RESUME_AGENT,        /* agents.lifecycle resume */
    LG_SPAWN_AGENT,         /* agents.lifecycle spawn: revokes nothing */
    LG_INVALIDATE_EDGE,     /* delegations.invalidate edge_revoke */
    LG_EXPIRE_EDGE,         /* delegations.invalidate edge_expire */
    LG_CREATE_EDGE,         /* delegations.invalidate edge_create */
} lg_revocation_kind;

/* An outbox delivery's identity: its redeliveries carry the same. */
typedef struct lg_delivery {
    char outbox_id[LG_ID_MAX];
    char dedupe_key[LG_ID_MAX + 64];
} lg_delivery;

typedef struct lg_revocation {
    lg_revocation_kind kind;
    const lg_authority *auth;
    const char *edge_id;  /* LG_REVOKE_EDGE_ONLY, the edge kinds */
    bool edge_as_edge_id; /* LG_REVOKE_EDGE_ONLY: the Gateway's alias */
    lg_signing signing;
    const lg_delivery *delivery; /* NULL: a fresh one */
    /* Not NULL: receives the entry's fields (`_sig` included) as one JSON
     * object, as an enforcer's dead letter carries them (malloc'd). */
    char **fields_json;
} lg_revocation;

static void delivery_new(lg_rng *rng, lg_delivery *d, const char *kind,
                         const char *about)
{
    char when[17];
    rng_uuid(rng, d->outbox_id);
    rng_hex(rng, when, 16);
    snprintf(d->dedupe_key, sizeof d->dedupe_key, "%s:%s:%s", kind, about,
             when);
}

/* e's fields as Go's json.Marshal writes a map[string]any of strings: keys
 * sorted, values escaped like any Go string. malloc'd. */
static char *entry_fields_json(const lg_entry *e)
{
    size_t order[LG_MAX_FIELDS];
    for (size_t i = 0; i < e->n; i++) {
        size_t k = i;
        for (; k > 0 && strcmp(e->name[order[k - 1]], e->name[i]) > 0; k--)
            order[k] = order[k - 1];
        order[k] = i;
    }
    lg_json j = {.len = 0, .comma = false};
    json_open(&j, '{');
    for (size_t i = 0; i < e->n; i++) {
        char value[LG_JSON_MAX / 4];
        size_t len = e->value_len[order[i]];
        assert(len < sizeof value);
        memcpy(value, e->value[order[i]], len);
        value[len] = '\0';
        json_member(&j, e->name[order[i]], value);
    }
    json_close(&j, '}');
    char *out = malloc(j.len + 1);
    if (!out)
        die("out of memory");
    memcpy(out, j.buf, j.len);
    out[j.len] = '\0';
    return out;
}

static void publish_revocation(lg_gen *g, lg_zone *zone,
                               const lg_revocation *rev, lg_anomaly *owner)
{
    static const char *const lifecycle_events[] = {
        [LG_TERMINATE_AGENT] = "terminate",
        [LG_SUSPEND_AGENT] = "suspend",
        [LG_RESUME_AGENT] = "resume",
        [LG_SPAWN_AGENT] = "spawn",
    };
    static const char *const delegation_events[] = {
        [LG_INVALIDATE_EDGE] = "edge_revoke",
        [LG_EXPIRE_EDGE] = "edge_expire",
        [LG_CREATE_EDGE] = "edge_create",
    };
    const lg_authority *a = rev->auth;
    char grant_id[LG_ID_MAX], epoch[24], edge_ids[LG_ID_MAX + 8];
    lg_delivery fresh;
    const lg_delivery *d = rev->delivery;
    if (!d) {
        delivery_new(&g->rng, &fresh, "revocation", zone->id);
        d = &fresh;
    }
    const char *parent = a->chain_len ? a->chain[0].agent_session_id
                                      : "null"; /* JSON-encoded null */
    lg_entry e;
    int stream;
    switch (rev->kind) {
    case LG_REVOKE_AUTHORITY:
    case LG_REVOKE_SESSION_ONLY:
    case LG_REVOKE_EDGE_ONLY:
    case LG_SUSPEND_SESSION:
        stream = LG_STREAM_SESSIONS;
        entry_start(&e, g->stream_names[stream]);
        entry_text(&e, "outbox_id", d->outbox_id);
        entry_text(&e, "dedupe_key", d->dedupe_key);
        entry_text(&e, "zone_id", zone->id);
        if (rev->kind == LG_REVOKE_EDGE_ONLY) {
            entry_text(&e,
                       rev->edge_as_edge_id ? "edge_id" : "delegation_edge_id",
                       rev->edge_id);
            entry_text(&e, "reason", "delegation_revoked");
        } else if (rev->kind == LG_SUSPEND_SESSION) {
            entry_text(&e, "session_id", a->session_id);
            entry_text(&e, "agent_session_id", a->agent_session_id);
            entry_text(&e, "reason", "requested");
        } else {
            entry_text(&e, "session_id", a->session_id);
            if (rev->kind == LG_REVOKE_AUTHORITY && a->subject == LG_AGENT) {
                entry_text(&e, "agent_session_id", a->agent_session_id);
                entry_text(&e, "delegation_edge_id", a->edge_id);
            }
            entry_text(&e, "reason", "grant_revoked");
            rng_uuid(&g->rng, grant_id);
            entry_text(&e, "grant_id", grant_id);
        }
        break;
    case LG_TERMINATE_AGENT:
    case LG_SUSPEND_AGENT:
    case LG_RESUME_AGENT:
    case LG_SPAWN_AGENT:
        stream = LG_STREAM_LIFECYCLE;
        entry_start(&e, g->stream_names[stream]);
        entry_text(&e, "outbox_id", d->outbox_id);
        entry_text(&e, "dedupe_key", d->dedupe_key);
        entry_text(&e, "event", lifecycle_events[rev->kind]);
        entry_text(&e, "zone_id", zone->id);
        entry_text(&e, "agent_session_id", a->agent_session_id);
        if (rev->kind == LG_SPAWN_AGENT)
            entry_text(&e, "application_id", zone->apps[a->app]);
        entry_text(&e, "parent_id", parent);
        if (rev->kind != LG_SPAWN_AGENT)
            entry_text(&e, "reason",
                       rev->kind == LG_RESUME_AGENT ? "operator_resumed"
                                                    : "operator_action");
        break;
    case LG_INVALIDATE_EDGE:
    case LG_EXPIRE_EDGE:
    case LG_CREATE_EDGE:
        stream = LG_STREAM_DELEGATIONS;
        entry_start(&e, g->stream_names[stream]);
        entry_text(&e, "outbox_id", d->outbox_id);
        entry_text(&e, "dedupe_key", d->dedupe_key);
        entry_text(&e, "event", delegation_events[rev->kind]);
        entry_text(&e, "zone_id", zone->id);
        /* every change of the graph moves the zone's epoch */
        snprintf(epoch, sizeof epoch, "%" PRIu64, ++zone->epoch);
        if (rev->kind == LG_EXPIRE_EDGE) {
            /* a JSON array written as a string, and their count */
            snprintf(edge_ids, sizeof edge_ids, "[\"%s\"]", rev->edge_id);
            entry_text(&e, "edge_ids", edge_ids);
            entry_text(&e, "affected_edges", "1");
        } else {
            entry_text(&e, "edge_id", rev->edge_id);
        }
        if (rev->kind == LG_CREATE_EDGE) {
            entry_text(&e, "source_session_id", parent);
            entry_text(&e, "target_session_id", a->agent_session_id);
        } else if (rev->kind == LG_INVALIDATE_EDGE) {
            entry_text(&e, "affected_edges", "0");
        }
        entry_text(&e, "epoch", epoch);
        break;
    default: assert(!"unknown revocation kind"); return;
    }
    sign_stream_entry(g, &e);
    if (rev->signing == LG_BADLY_SIGNED)
        spoil_signature(e.sig);
    if (rev->fields_json)
        *rev->fields_json = entry_fields_json(&e);
    publish(g, stream, &e, owner);
}

/* A retired authority is revoked through one of the sources; one in ten
 * revocations is delivered twice by the outbox. Returns the entries. */
static unsigned publish_retirement(lg_gen *g, lg_zone *zone,
                                   const lg_authority *auth, uint64_t room)
{
    lg_revocation rev = {
        .kind = LG_REVOKE_AUTHORITY, .auth = auth, .signing = LG_SIGNED};
    if (auth->subject == LG_AGENT) {
        unsigned roll = (unsigned)rng_below(&g->rng, 100);
        rev.edge_id = auth->edge_id;
        if (roll < 25) {
            rev.kind = LG_TERMINATE_AGENT;
        } else if (roll < 35) {
            rev.kind = LG_SUSPEND_AGENT;
        } else if (roll < 43) {
            rev.kind = LG_INVALIDATE_EDGE;
        } else if (roll < 50) {
            rev.kind = LG_EXPIRE_EDGE;
        } else if (roll < 57) {
            rev.kind = LG_REVOKE_EDGE_ONLY;
            rev.edge_as_edge_id = rng_percent(&g->rng, 50);
        }
    }
    lg_delivery d;
    delivery_new(&g->rng, &d, "retire", auth->session_id);
    rev.delivery = &d;
    publish_revocation(g, zone, &rev, NULL);
    if (room < 2 || !rng_percent(&g->rng, 10))
        return 1;
    publish_revocation(g, zone, &rev, NULL);
    return 2;
}

/* The coordinator suspends an agent session and resumes it: a session
 * revoke of its authority record and agent session plus a lifecycle
 * suspend, then a lifecycle resume; sometimes the outbox redelivers a
 * suspend entry after the resume. The agent session goes on under a new
 * authority record (the old one stays revoked). Returns the entries. */
static unsigned publish_suspend_cycle(lg_gen *g, lg_zone *zone,
                                      lg_authority *auth)
{
    lg_delivery revoke_d, suspend_d, resume_d;
    delivery_new(&g->rng, &revoke_d, "agent_suspend", auth->agent_session_id);
    delivery_new(&g->rng, &suspend_d, "suspend", auth->agent_session_id);
    delivery_new(&g->rng, &resume_d, "resume", auth->agent_session_id);
    lg_revocation revoke = {.kind = LG_SUSPEND_SESSION,
                            .auth = auth,
                            .signing = LG_SIGNED,
                            .delivery = &revoke_d};
    lg_revocation suspend = {.kind = LG_SUSPEND_AGENT,
                             .auth = auth,
                             .signing = LG_SIGNED,
                             .delivery = &suspend_d};
    lg_revocation resume = {.kind = LG_RESUME_AGENT,
                            .auth = auth,
                            .signing = LG_SIGNED,
                            .delivery = &resume_d};
    publish_revocation(g, zone, &suspend, NULL);
    publish_revocation(g, zone, &revoke, NULL);
    publish_revocation(g, zone, &resume, NULL);
    unsigned used = 3;
    if (rng_percent(&g->rng, 30)) {
        publish_revocation(g, zone,
                           rng_percent(&g->rng, 50) ? &revoke : &suspend, NULL);
        used++;
    }
    rng_uuid(&g->rng, auth->session_id);
    return used;
}

/* Remembers the resumed authority of slot for the late phase. */
static void remember_resumed(lg_gen *g, int zone, const lg_slot *slot)
{
    /* a later cycle revoked the record an earlier one left */
    for (size_t i = 0; i < g->nresumed; i++)
        if (g->resumed[i].slot == slot) {
            g->resumed[i].auth = slot->auth;
            return;
        }
    if (g->nresumed == LG_RESUMED_MAX)
        return;
    g->resumed[g->nresumed++] = (struct lg_resumed){slot, zone, slot->auth};
}

/* The slot's authority is retired (revoked): its late use would be a
 * violation, so it is not made. */
static void forget_resumed(lg_gen *g, const lg_slot *slot)
{
    for (size_t i = 0; i < g->nresumed; i++)
        if (g->resumed[i].slot == slot)
            g->resumed[i].slot = NULL;
}

/* A new agent session: the coordinator's spawn and, for a delegated one,
 * the edge it got. Ordinary traffic; returns the entries. */
static unsigned publish_spawn(lg_gen *g, lg_zone *zone,
                              const lg_authority *auth, uint64_t room)
{
    if (auth->subject != LG_AGENT || room < 2)
        return 0;
    lg_revocation spawn = {
        .kind = LG_SPAWN_AGENT, .auth = auth, .signing = LG_SIGNED};
    publish_revocation(g, zone, &spawn, NULL);
    lg_revocation create = spawn;
    create.kind = LG_CREATE_EDGE;
    create.edge_id = auth->edge_id;
    publish_revocation(g, zone, &create, NULL);
    return 2;
}

/* ---- Normal traffic ----------------------------------------------------- */

/* One interaction of normal traffic taking at most `room` entries (≥ 1).
 * Returns the entries it published. Besides calls, tokens and step-ups it
 * holds what real Caracal traffic holds and a naive detector gets wrong
 * (DESIGN §2.4): clients reusing their request ids (for Gateway calls, for
 * an allow followed by a provider_credential_unavailable deny, and as the
 * event id of control.invoke), suspend/resume cycles, outbox redeliveries,
 * edges revoked as edge_id or expired through edge_ids, spawns and
 * edge_creates, and decisions that carry the graph epoch. None of it may
 * raise an alert. */
static unsigned publish_normal(lg_gen *g, uint64_t room)
{
    int zi = (int)rng_below(&g->rng, (uint64_t)g->opt.zones);
    lg_zone *zone = &g->zones[zi];
    lg_slot *slot = &zone->slots[rng_below(&g->rng, LG_SLOTS_PER_ZONE)];
    const lg_authority *auth = &slot->auth;
    int64_t t = now_ns(CLOCK_REALTIME);
    unsigned roll = (unsigned)rng_below(&g->rng, 100);
    unsigned used;

    lg_outcome out = outcome_pick(&g->rng);
    bool logged = rng_percent(&g->rng, 30) && out.upstream_status != 0;
    if (roll < 57 && room >= 2u + logged) {
        publish_gateway_call(
            g, zone, auth, logged, &out,
            rng_percent(&g->rng, 10) ? client_request_id(&g->rng, zone) : NULL,
            t);
        used = 2 + logged;
    } else if (roll < 59 && room >= 2) {
        /* The STS allowed, then found no upstream credential: no call. */
        const char *request_id = client_request_id(&g->rng, zone);
        const lg_resource *res =
            &lg_resources[rng_below(&g->rng, LG_NRESOURCES)];
        publish_exchange(g, zone, auth, request_id, res, true, t, NULL);
        lg_event deny = {
            .event_type = "token_exchange",
            .request_id = request_id,
            .decision = "deny",
            .evaluation_status = "provider_credential_unavailable",
            .determining = "null",
            .diagnostics = "null",
            .occurred_at_ns = t + 1000000,
            .auth = NULL,
            .app = auth->app,
            .resource = res,
        };
        publish_audit(g, zone, &deny, LG_SIGNED, NULL);
        used = 2;
    } else if (roll < 60 && auth->subject == LG_AGENT && room >= 5) {
        used = publish_suspend_cycle(g, zone, &slot->auth);
        remember_resumed(g, zi, slot);
    } else if (roll < 64 && room >= 3) {
        /* A step-up: issued, decided by a person, consumed by the agent. */
        char request_id[LG_ID_MAX];
        rng_uuid(&g->rng, request_id);
        const lg_resource *res =
            &lg_resources[rng_below(&g->rng, LG_NRESOURCES)];
        bool approved = rng_percent(&g->rng, 85);
        lg_event ev = {
            .event_type = "step_up_issued",
            .request_id = request_id,
            .decision = "pending",
            .evaluation_status = "pending",
            .determining = lg_policies_allow,
            .diagnostics = "null",
            .policy = true,
            .occurred_at_ns = t,
            .auth = auth,
            .resource = res,
        };
        publish_audit(g, zone, &ev, LG_SIGNED, NULL);
        ev.event_type = "step_up_decided";
        ev.decision = approved ? "approved" : "rejected";
        ev.evaluation_status = "complete";
        ev.occurred_at_ns = t + 1000000;
        publish_audit(g, zone, &ev, LG_SIGNED, NULL);
        ev.event_type = "step_up_consumed";
        ev.decision = approved ? "consumed" : "deny";
        ev.occurred_at_ns = t + 2000000;
        publish_audit(g, zone, &ev, LG_SIGNED, NULL);
        used = 3;
    } else if (roll < 66) {
        static const char *const types[] = {"run_launch", "control.invoke",
                                            "credential_revealed"};
        const char *type = types[rng_below(&g->rng, 3)];
        char request_id[LG_ID_MAX];
        bool invoke = strcmp(type, "control.invoke") == 0;
        /* control.invoke takes the client's request id as its event id */
        snprintf(request_id, sizeof request_id, "%s",
                 invoke ? client_request_id(&g->rng, zone) : "");
        if (!invoke)
            rng_uuid(&g->rng, request_id);
        lg_event ev = {
            .event_id = invoke ? request_id : NULL,
            .event_type = type,
            .request_id = request_id,
            .decision = "allow",
            .evaluation_status = "complete",
            .determining = lg_policies_allow,
            .diagnostics = "null",
            .policy = true,
            .occurred_at_ns = t,
            .auth = auth,
            .resource = &lg_resources[rng_below(&g->rng, LG_NRESOURCES)],
        };
        publish_audit(g, zone, &ev, LG_SIGNED, NULL);
        used = 1;
    } else {
        /* A token for direct use; about one in four is denied. */
        char request_id[LG_ID_MAX];
        rng_uuid(&g->rng, request_id);
        publish_exchange(g, zone, auth, request_id,
                         &lg_resources[rng_below(&g->rng, LG_NRESOURCES)],
                         !rng_percent(&g->rng, 25), t, NULL);
        used = 1;
    }
    if (--slot->uses_left == 0 && used < room)
        used += publish_retirement(g, zone, auth, room - used);
    if (slot->uses_left == 0) {
        forget_resumed(g, slot);
        slot_refill(&g->rng, slot);
        used += publish_spawn(g, zone, &slot->auth, room - used);
    }
    return used;
}

/* ---- Anomalies ---------------------------------------------------------- */

/* Entries a scenario publishes before the main traffic (revocations whose
 * time an access must follow), within it, and in the late phase. */
typedef struct lg_footprint {
    unsigned before, during, late;
} lg_footprint;

static lg_footprint scenario_footprint(lg_scenario_id sc)
{
    switch (sc) {
    case SC_ACCESS_AFTER_SESSION_REVOKE:
    case SC_ACCESS_AFTER_AGENT_TERMINATE:
    case SC_ACCESS_AFTER_EDGE_REVOKE:
    case SC_ACCESS_VIA_REVOKED_CHAIN_EDGE:
    case SC_ACCESS_DURING_SUSPENSION:
    case SC_ACCESS_AFTER_EDGE_EXPIRE:
    case SC_ACCESS_AT_REVOKED_EPOCH:
        return (lg_footprint){1, 2, 0}; /* revoke; exchange + gateway */
    case SC_OLD_RECORD_AFTER_RESUME:
    case SC_AGENT_AFTER_SUSPEND_RESUME:
        return (lg_footprint){3, 2, 0}; /* suspend, revoke, resume */
    case SC_SECOND_CALL_WITHOUT_DECISION: return (lg_footprint){0, 3, 0};
    case SC_STALE_REQUEST_ID: return (lg_footprint){0, 2, 0};
    case SC_REVOCATION_DEAD_LETTERED:
    case SC_STS_DECLINES_EDGE:
        return (lg_footprint){1, 1, 0}; /* the revocation; its dead letter */
    case SC_ENFORCER_STALLED: return (lg_footprint){1, 0, 0};
    case SC_ACCESS_WITHIN_GRACE:
    case SC_DENY_AFTER_REVOCATION: return (lg_footprint){1, 1, 0};
    case SC_ACCESS_AFTER_RESUME: return (lg_footprint){2, 1, 0};
    case SC_REVOCATION_ARRIVES_LATE: return (lg_footprint){0, 2, 1};
    case SC_DECISION_ARRIVES_LATE: return (lg_footprint){0, 1, 1};
    case SC_AUDIT_ARRIVES_LATE: return (lg_footprint){0, 1, 2};
    default: return (lg_footprint){0, 1, 0};
    }
}

/* The revocation a scenario needs, published before (or, for the late
 * revocation, after) the access. Each names exactly one anchor the access
 * uses, so each access raises exactly one alert. */
static lg_revocation scenario_revocation(const lg_anomaly *an)
{
    lg_revocation rev = {.kind = LG_REVOKE_SESSION_ONLY,
                         .auth = &an->auth,
                         .signing = LG_SIGNED};
    switch (an->scenario) {
    case SC_ACCESS_AFTER_AGENT_TERMINATE: rev.kind = LG_TERMINATE_AGENT; break;
    case SC_ACCESS_AFTER_EDGE_REVOKE:
        rev.kind = LG_INVALIDATE_EDGE;
        rev.edge_id = an->auth.edge_id;
        break;
    case SC_ACCESS_VIA_REVOKED_CHAIN_EDGE:
        rev.kind = LG_REVOKE_EDGE_ONLY;
        rev.edge_id = an->auth.chain[0].edge_id;
        rev.edge_as_edge_id = an->request_id[0] & 1;
        break;
    case SC_ACCESS_DURING_SUSPENSION:
    case SC_ACCESS_AFTER_RESUME: rev.kind = LG_SUSPEND_AGENT; break;
    case SC_ACCESS_AFTER_EDGE_EXPIRE:
        rev.kind = LG_EXPIRE_EDGE;
        rev.edge_id = an->auth.edge_id;
        break;
    case SC_ACCESS_AT_REVOKED_EPOCH:
        rev.kind = LG_INVALIDATE_EDGE;
        rev.edge_id = an->auth.edge_id;
        break;
    case SC_BAD_REVOCATION_SIGNATURE: rev.signing = LG_BADLY_SIGNED; break;
    case SC_STS_DECLINES_EDGE: /* as the API writes it: delegation_edge_id */
        rev.kind = LG_REVOKE_EDGE_ONLY;
        rev.edge_id = an->auth.edge_id;
        break;
    default: break;
    }
    return rev;
}

/* What the alert id of a scenario hashes, per the detectors' conventions:
 * access_after_revocation names the anchor ("<kind>:<id>") in the zone with
 * the request id; signature_invalid names only "<stream>:<entry id>" (the
 * unverified fields are not trusted); caracal_anomaly the event id; the
 * missing-counterpart kinds the zone and request id alone. */
typedef struct lg_alert_key {
    const char *zone_id;
    const char *request_id;
    char anchor[LG_ID_MAX + 64];
    char request[LG_ID_MAX + 64]; /* when request_id is composed */
} lg_alert_key;

static void scenario_alert_key(const lg_gen *g, const lg_anomaly *an,
                               lg_alert_key *key)
{
    const lg_authority *a = &an->auth;
    aw_anchor_kind kind = 0;
    const char *id = NULL;
    key->zone_id = g->zones[an->zone].id;
    key->request_id = an->request_id;
    key->anchor[0] = '\0';
    switch (an->scenario) {
    case SC_ACCESS_AFTER_SESSION_REVOKE:
    case SC_REVOCATION_ARRIVES_LATE:
    case SC_ACCESS_WITHIN_GRACE:
    case SC_DENY_AFTER_REVOCATION:
    case SC_OLD_RECORD_AFTER_RESUME:
        kind = AW_ANCHOR_AUTHORITY_RECORD;
        id = a->session_id;
        break;
    case SC_ACCESS_AFTER_AGENT_TERMINATE:
    case SC_ACCESS_DURING_SUSPENSION:
    case SC_ACCESS_AFTER_RESUME:
    case SC_AGENT_AFTER_SUSPEND_RESUME:
        kind = AW_ANCHOR_AGENT_SESSION;
        id = a->agent_session_id;
        break;
    case SC_ACCESS_AFTER_EDGE_REVOKE:
    case SC_ACCESS_AFTER_EDGE_EXPIRE:
    case SC_ACCESS_AT_REVOKED_EPOCH:
        kind = AW_ANCHOR_DELEGATION_EDGE;
        id = a->edge_id;
        break;
    case SC_ACCESS_VIA_REVOKED_CHAIN_EDGE:
        kind = AW_ANCHOR_DELEGATION_EDGE;
        id = a->chain[0].edge_id;
        break;
    case SC_BAD_AUDIT_SIGNATURE:
    case SC_BAD_REVOCATION_SIGNATURE:
        key->zone_id = NULL;
        key->request_id = NULL;
        snprintf(key->anchor, sizeof key->anchor, "%s:%s",
                 g->stream_names[an->scenario == SC_BAD_AUDIT_SIGNATURE
                                     ? LG_STREAM_AUDIT
                                     : LG_STREAM_SESSIONS],
                 an->entry_id);
        return;
    case SC_JTI_COLLISION:
    case SC_REPLAY_DETECTED:
        snprintf(key->anchor, sizeof key->anchor, "%s", an->event_id);
        return;
    case SC_AUDIT_DEAD_LETTERED: /* (zone, event id, request id) */
        snprintf(key->anchor, sizeof key->anchor, "%s", an->event_id);
        return;
    case SC_REVOCATION_DEAD_LETTERED: /* (zone, "<stream>/<entry id>") */
    case SC_STS_DECLINES_EDGE:
        key->request_id = NULL;
        snprintf(key->anchor, sizeof key->anchor, "%s/%s",
                 g->stream_names[LG_STREAM_SESSIONS], an->entry_id);
        return;
    case SC_ENFORCER_STALLED: /* (group, "<stream>/<entry id>"), no zone */
        key->zone_id = NULL;
        snprintf(key->anchor, sizeof key->anchor, "%s", an->group);
        snprintf(key->request, sizeof key->request, "%s/%s",
                 g->stream_names[LG_STREAM_SESSIONS], an->entry_id);
        key->request_id = key->request;
        return;
    default: return;
    }
    snprintf(key->anchor, sizeof key->anchor, "%s:%s",
             aw_anchor_kind_name(kind), id);
}

/* Expected severity of the alerts that must open (DESIGN §4). */
static const char *scenario_severity(lg_scenario_id sc, int variant)
{
    switch (sc) {
    case SC_GATEWAY_WITHOUT_DECISION:
        return variant ? "high" : "critical"; /* critical when 2xx */
    case SC_SECOND_CALL_WITHOUT_DECISION:
    case SC_ACCESS_AFTER_EDGE_EXPIRE:
    case SC_ACCESS_AT_REVOKED_EPOCH:
    case SC_OLD_RECORD_AFTER_RESUME:
    case SC_ACCESS_AFTER_SESSION_REVOKE:
    case SC_ACCESS_AFTER_AGENT_TERMINATE:
    case SC_ACCESS_AFTER_EDGE_REVOKE:
    case SC_ACCESS_VIA_REVOKED_CHAIN_EDGE:
    case SC_ACCESS_DURING_SUSPENSION:
    case SC_REVOCATION_ARRIVES_LATE:
        return "critical";                          /* the Gateway executed */
    case SC_AUDIT_DEAD_LETTERED: return "critical"; /* an allow */
    case SC_REVOCATION_DEAD_LETTERED:
    case SC_ENFORCER_STALLED: return "critical";
    case SC_JTI_COLLISION:
    case SC_REPLAY_DETECTED: return "medium";
    default: return "high";
    }
}

/* Builds the plan: scenarios in turn, fresh authorities, random positions
 * among the normal traffic. Fails when N leaves no room for normal traffic. */
static void plan_anomalies(lg_gen *g)
{
    int k = g->opt.anomalies;
    uint64_t main_entries = 0;
    g->anomalies = calloc((size_t)(k ? k : 1), sizeof *g->anomalies);
    if (!g->anomalies)
        die("out of memory");
    for (int i = 0; i < k; i++) {
        lg_anomaly *an = &g->anomalies[i];
        an->scenario = (lg_scenario_id)(i % SC_COUNT);
        an->zone = (int)rng_below(&g->rng, (uint64_t)g->opt.zones);
        rng_uuid(&g->rng, an->request_id);
        authority_new_agent(&g->rng, &an->auth);
        an->severity = scenario_severity(an->scenario, (i / SC_COUNT) % 2);
        an->expect = lg_scenarios[an->scenario].expect;
        lg_footprint fp = scenario_footprint(an->scenario);
        main_entries += fp.before + fp.during;
    }
    if (main_entries >= g->opt.events)
        die("--events %" PRIu64 " leaves no room for normal traffic next to "
            "%d anomalies (%" PRIu64 " entries)",
            g->opt.events, k, main_entries);
    g->normal_budget = g->opt.events - main_entries;
    for (int i = 0; i < k; i++)
        g->anomalies[i].position = rng_below(&g->rng, g->normal_budget + 1);
}

static int by_position(const void *a, const void *b)
{
    uint64_t pa = ((const lg_anomaly *)a)->position;
    uint64_t pb = ((const lg_anomaly *)b)->position;
    return (pa > pb) - (pa < pb);
}

/* A synchronous command between drained batches (so it runs after every
 * entry published so far and before any later one). */
static redisReply *command_now(lg_gen *g, const char *fmt, ...)
{
    va_list ap;
    publisher_drain(&g->pub);
    va_start(ap, fmt);
    redisReply *r = redisvCommand(g->pub.redis, fmt, ap);
    va_end(ap);
    if (!r)
        die("redis: %s", g->pub.redis->errstr);
    if (r->type == REDIS_REPLY_ERROR)
        die("%s: %s", fmt, r->str);
    return r;
}

/* A Gateway host's enforcer group, created at `$` as Caracal creates it,
 * that reads revocation R and never acknowledges it (its apply hangs): R
 * stays pending there past any grace. R is published alone right after
 * the group's creation, so it is the first entry the group has. */
static void publish_stalled_enforcer(lg_gen *g, lg_anomaly *an,
                                     const lg_revocation *rev)
{
    const char *stream = g->stream_names[LG_STREAM_SESSIONS];
    snprintf(an->group, sizeof an->group, "gateway-revocation:bench-%.8s",
             an->request_id);
    freeReplyObject(
        command_now(g, "XGROUP CREATE %s %s $ MKSTREAM", stream, an->group));
    publish_revocation(g, &g->zones[an->zone], rev, an);
    redisReply *r =
        command_now(g, "XREADGROUP GROUP %s %s-host COUNT 1 STREAMS %s >",
                    an->group, an->group, stream);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 1 ||
        r->element[0]->element[1]->elements != 1 ||
        strcmp(r->element[0]->element[1]->element[0]->element[0]->str,
               an->entry_id) != 0)
        die("the stalled enforcer %s did not read revocation %s", an->group,
            an->entry_id);
    freeReplyObject(r);
}

/* An STS or Gateway gave up applying revocation an->entry_id and moved it
 * to <stream>.dead: the original's fields in `values`, the envelope signed
 * under the .dead stream's name. The STS's error for an entry naming no
 * session is its own (services/sts/internal/consumer.go). */
static void publish_dead_revocation(lg_gen *g, lg_anomaly *an)
{
    lg_entry e;
    entry_start(&e, g->stream_names[LG_STREAM_SESSIONS_DEAD]);
    entry_text(&e, "original_id", an->entry_id);
    entry_text(&e, "error",
               an->scenario == SC_STS_DECLINES_EDGE
                   ? AW_STS_NO_SESSION_ERROR
                   : "mark revoked: context deadline exceeded");
    entry_text(&e, "values", an->dead_values);
    sign_stream_entry(g, &e);
    publish(g, LG_STREAM_SESSIONS_DEAD, &e, NULL);
}

/* Revocations that accesses must follow go out first; the replies give
 * their times. A resume follows its suspension. */
static void publish_anomalies_before(lg_gen *g)
{
    for (int i = 0; i < g->opt.anomalies; i++) {
        lg_anomaly *an = &g->anomalies[i];
        if (scenario_footprint(an->scenario).before == 0)
            continue;
        lg_revocation rev = scenario_revocation(an);
        if (an->scenario == SC_ENFORCER_STALLED) {
            publish_stalled_enforcer(g, an, &rev);
            continue;
        }
        if (an->scenario == SC_REVOCATION_DEAD_LETTERED ||
            an->scenario == SC_STS_DECLINES_EDGE)
            rev.fields_json = &an->dead_values;
        if (an->scenario == SC_OLD_RECORD_AFTER_RESUME ||
            an->scenario == SC_AGENT_AFTER_SUSPEND_RESUME) {
            /* a suspend cycle whose access comes after the resume: by the
             * old authority record, or under a new one */
            rev.kind = LG_SUSPEND_AGENT;
            publish_revocation(g, &g->zones[an->zone], &rev, an);
            rev.kind = LG_SUSPEND_SESSION;
            publish_revocation(g, &g->zones[an->zone], &rev, an);
            rev.kind = LG_RESUME_AGENT;
            publish_revocation(g, &g->zones[an->zone], &rev, an);
            if (an->scenario == SC_AGENT_AFTER_SUSPEND_RESUME)
                rng_uuid(&g->rng, an->auth.session_id);
            continue;
        }
        publish_revocation(g, &g->zones[an->zone], &rev, an);
        if (an->scenario == SC_ACCESS_AFTER_RESUME) {
            rev.kind = LG_RESUME_AGENT;
            publish_revocation(g, &g->zones[an->zone], &rev, an);
        }
    }
    publisher_drain(&g->pub);
}

/* The access an access-after-revocation scenario makes: an exchange naming
 * the revoked anchor and, when it went through, the Gateway's call. */
static void publish_access(lg_gen *g, lg_anomaly *an, bool allow,
                           bool through_gateway, int64_t at_ns)
{
    lg_zone *zone = &g->zones[an->zone];
    const lg_resource *res = &lg_resources[0];
    an->evidence_ns = at_ns;
    publish_exchange(g, zone, &an->auth, an->request_id, res, allow, at_ns,
                     NULL);
    if (through_gateway)
        publish_gateway(g, zone, an->auth.app, an->request_id, res, &lg_ok, 40,
                        at_ns + 40 * 1000000LL, NULL);
}

static void publish_anomaly_during(lg_gen *g, lg_anomaly *an)
{
    lg_zone *zone = &g->zones[an->zone];
    const lg_resource *res = &lg_resources[2];
    int64_t t = now_ns(CLOCK_REALTIME);
    int64_t revoked_ns = an->entry_ms * 1000000LL;
    static const lg_outcome unreachable = {0, 502, "upstream_error",
                                           "server_error", "upstream_timeout"};
    an->evidence_ns = t;
    switch (an->scenario) {
    case SC_GATEWAY_WITHOUT_DECISION:
        publish_gateway(g, zone, an->auth.app, an->request_id, res,
                        strcmp(an->severity, "critical") == 0 ? &lg_ok
                                                              : &unreachable,
                        30, t, NULL);
        break;
    case SC_DECISION_ARRIVES_LATE:
        publish_gateway(g, zone, an->auth.app, an->request_id, res, &lg_ok, 30,
                        t, NULL);
        break;
    case SC_CALL_WITHOUT_AUDIT:
    case SC_AUDIT_ARRIVES_LATE:
        publish_call(g, zone, an->request_id, res, 200, t, false, NULL);
        break;
    case SC_FAILED_CALL_WITHOUT_AUDIT:
        publish_call(g, zone, an->request_id, res, 404, t, false, NULL);
        break;
    case SC_STALE_REQUEST_ID:
        /* Audited twice the lookback ago; the call's log gives its time. */
        publish_exchange(g, zone, &an->auth, an->request_id, res, true,
                         t - 2 * AW_DEFAULT_AUDIT_LOOKBACK_NS, NULL);
        publish_call(g, zone, an->request_id, res, 200, t, true, NULL);
        break;
    case SC_ACCESS_AFTER_SESSION_REVOKE:
    case SC_ACCESS_AFTER_AGENT_TERMINATE:
    case SC_ACCESS_AFTER_EDGE_REVOKE:
    case SC_ACCESS_VIA_REVOKED_CHAIN_EDGE:
    case SC_ACCESS_DURING_SUSPENSION:
    case SC_ACCESS_AFTER_EDGE_EXPIRE:
    case SC_OLD_RECORD_AFTER_RESUME:
    case SC_AGENT_AFTER_SUSPEND_RESUME:
        publish_access(g, an, true, true, revoked_ns + LG_AFTER_REVOCATION_NS);
        break;
    case SC_ACCESS_AT_REVOKED_EPOCH:
        /* the STS's clock says before; its graph epoch says after */
        publish_access(g, an, true, true, revoked_ns - LG_AFTER_REVOCATION_NS);
        break;
    case SC_SECOND_CALL_WITHOUT_DECISION:
        publish_exchange(g, zone, &an->auth, an->request_id, res, true,
                         t - 40 * 1000000LL, NULL);
        publish_gateway(g, zone, an->auth.app, an->request_id, res, &lg_ok, 30,
                        t, NULL);
        publish_gateway(g, zone, an->auth.app, an->request_id, res, &lg_ok, 30,
                        t + 50 * 1000000LL, NULL);
        break;
    case SC_ACCESS_AFTER_RESUME:
        publish_access(g, an, true, false, revoked_ns + LG_AFTER_REVOCATION_NS);
        break;
    case SC_ACCESS_WITHIN_GRACE:
        publish_access(g, an, true, false, revoked_ns + LG_WITHIN_GRACE_NS);
        break;
    case SC_DENY_AFTER_REVOCATION:
        publish_access(g, an, false, false,
                       revoked_ns + LG_AFTER_REVOCATION_NS);
        break;
    case SC_REVOCATION_ARRIVES_LATE:
        publish_access(g, an, true, true, t + LG_AHEAD_OF_LATE_REVOCATION_NS);
        break;
    case SC_BAD_AUDIT_SIGNATURE: {
        lg_event ev = {
            .event_type = "token_exchange",
            .request_id = an->request_id,
            .decision = "allow",
            .evaluation_status = "complete",
            .determining = lg_policies_allow,
            .diagnostics = "null",
            .policy = true,
            .occurred_at_ns = t,
            .auth = &an->auth,
            .resource = res,
        };
        publish_audit(g, zone, &ev, LG_BADLY_SIGNED, an);
        break;
    }
    case SC_BAD_REVOCATION_SIGNATURE: {
        lg_revocation rev = scenario_revocation(an);
        publish_revocation(g, zone, &rev, an);
        break;
    }
    case SC_AUDIT_DEAD_LETTERED: {
        lg_event ev = {
            .event_type = "token_exchange",
            .request_id = an->request_id,
            .decision = "allow",
            .evaluation_status = "complete",
            .determining = lg_policies_allow,
            .diagnostics = "null",
            .policy = true,
            .occurred_at_ns = t,
            .auth = &an->auth,
            .resource = res,
            .dead_lettered = true,
        };
        publish_audit(g, zone, &ev, LG_SIGNED, an);
        break;
    }
    case SC_REVOCATION_DEAD_LETTERED:
    case SC_STS_DECLINES_EDGE: publish_dead_revocation(g, an); break;
    case SC_ENFORCER_STALLED: break; /* the group's stall is the evidence */
    case SC_JTI_COLLISION:
    case SC_REPLAY_DETECTED: {
        char jti[LG_ID_MAX];
        rng_uuid(&g->rng, jti);
        lg_event ev = {
            .event_type = an->scenario == SC_JTI_COLLISION ? "jti_collision"
                                                           : "replay_detected",
            .request_id = an->request_id,
            .decision = "deny",
            .evaluation_status = "anomaly",
            .determining = "null",
            .diagnostics = "null",
            .occurred_at_ns = t,
            .auth = &an->auth,
            .resource = res,
            .jti = jti,
        };
        publish_audit(g, zone, &ev, LG_SIGNED, an);
        break;
    }
    default: assert(!"scenario without main-phase evidence");
    }
}

/* Late counterparts carry their original occurred_at, like a producer
 * publishing its replay file. */
static void publish_anomaly_late(lg_gen *g, lg_anomaly *an)
{
    lg_zone *zone = &g->zones[an->zone];
    const lg_resource *res = &lg_resources[2];
    switch (an->scenario) {
    case SC_DECISION_ARRIVES_LATE:
        publish_exchange(g, zone, &an->auth, an->request_id, res, true,
                         an->evidence_ns - 30 * 1000000LL, NULL);
        break;
    case SC_AUDIT_ARRIVES_LATE:
        publish_exchange(g, zone, &an->auth, an->request_id, res, true,
                         an->evidence_ns - 30 * 1000000LL, NULL);
        publish_gateway(g, zone, an->auth.app, an->request_id, res, &lg_ok, 30,
                        an->evidence_ns + 1000000LL, NULL);
        break;
    case SC_REVOCATION_ARRIVES_LATE: {
        lg_revocation rev = scenario_revocation(an);
        publish_revocation(g, zone, &rev, an);
        break;
    }
    default: assert(!"scenario without a late counterpart");
    }
}

/* ---- Truth file ------------------------------------------------------- */

/* One line per anomaly: what happened and which alert must (not) exist. */
static void write_truth(lg_gen *g, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        die("cannot write %s: %s", path, strerror(errno));
    for (int i = 0; i < g->opt.anomalies; i++) {
        const lg_anomaly *an = &g->anomalies[i];
        const lg_scenario *sc = &lg_scenarios[an->scenario];
        lg_zone *zone = &g->zones[an->zone];
        char alert_id[33], occurred[48];
        lg_alert_key key;
        scenario_alert_key(g, an, &key);
        aw_detectors_alert_id(sc->kind, key.zone_id, key.anchor, key.request_id,
                              alert_id);
        format_rfc3339(an->evidence_ns, 0, occurred);
        lg_json *j = &g->json;
        j->len = 0;
        j->comma = false;
        json_open(j, '{');
        json_member_uint(j, "seq", (uint64_t)i + 1);
        json_member(j, "scenario", sc->name);
        json_member(j, "kind", sc->kind);
        json_member(j, "expect", lg_expect_names[an->expect]);
        json_member(j, "severity",
                    an->expect == LG_EXPECT_OPEN ? an->severity : NULL);
        json_member(j, "alert_id", alert_id);
        json_member(j, "zone_id", zone->id);
        json_member(j, "request_id", an->request_id);
        json_member(j, "anchor", key.anchor[0] ? key.anchor : NULL);
        json_member(j, "entry_id", an->entry_id[0] ? an->entry_id : NULL);
        json_member(j, "evidence_occurred_at", occurred);
        json_close(j, '}');
        fprintf(f, "%.*s\n", (int)j->len, j->buf);
    }
    if (fclose(f) != 0)
        die("writing %s: %s", path, strerror(errno));
}

/* ---- Phases ----------------------------------------------------------- */

static void report_phase(const char *phase, const lg_counts *c,
                         int64_t elapsed_ns)
{
    double secs = (double)elapsed_ns / 1e9;
    printf("loadgen phase=%s entries=%" PRIu64 " audit=%" PRIu64
           " revocations=%" PRIu64 " calls=%" PRIu64 " seconds=%.3f"
           " rate=%.0f\n",
           phase, c->entries, c->per_stream[LG_STREAM_AUDIT],
           c->per_stream[LG_STREAM_SESSIONS] +
               c->per_stream[LG_STREAM_LIFECYCLE] +
               c->per_stream[LG_STREAM_DELEGATIONS],
           c->per_stream[LG_STREAM_CALLS], secs,
           secs > 0 ? (double)c->entries / secs : 0.0);
    fflush(stdout);
}

/* An anomaly whose access must follow a revocation published before the
 * main traffic waits until Redis' clock is past it and its grace. */
static bool anomaly_may_go(const lg_gen *g, const lg_anomaly *an)
{
    return scenario_footprint(an->scenario).before == 0 ||
           now_ns(CLOCK_REALTIME) > g->revocations_settled_ns;
}

static void settle_revocations_before(lg_gen *g)
{
    int64_t newest_ms = 0;
    for (int i = 0; i < g->opt.anomalies; i++)
        if (scenario_footprint(g->anomalies[i].scenario).before > 0 &&
            g->anomalies[i].entry_ms > newest_ms)
            newest_ms = g->anomalies[i].entry_ms;
    /* a second more: entry ids are whole milliseconds */
    g->revocations_settled_ns =
        newest_ms * 1000000LL + AW_DEFAULT_GRACE_REVOCATION_NS + LG_NS;
}

static void sleep_until(int64_t realtime_ns)
{
    int64_t left = realtime_ns - now_ns(CLOCK_REALTIME);
    if (left <= 0)
        return;
    struct timespec ts = {(time_t)(left / LG_NS), (long)(left % LG_NS)};
    nanosleep(&ts, NULL);
}

static void run_main_phase(lg_gen *g)
{
    int64_t start = now_ns(CLOCK_MONOTONIC);
    g->pub.paced_since_ns = start;
    publish_anomalies_before(g); /* drained: their entry ids are known */
    settle_revocations_before(g);
    qsort(g->anomalies, (size_t)g->opt.anomalies, sizeof *g->anomalies,
          by_position);
    int next = 0;
    for (;;) {
        while (next < g->opt.anomalies &&
               g->anomalies[next].position <= g->normal_published &&
               anomaly_may_go(g, &g->anomalies[next]))
            publish_anomaly_during(g, &g->anomalies[next++]);
        uint64_t room = g->normal_budget - g->normal_published;
        if (room > 0)
            g->normal_published += publish_normal(g, room);
        else if (next < g->opt.anomalies)
            sleep_until(g->revocations_settled_ns);
        else
            break;
    }
    assert(next == g->opt.anomalies);
    publisher_drain(&g->pub);
    assert(g->pub.counts.entries == g->opt.events);
    report_phase("main", &g->pub.counts, now_ns(CLOCK_MONOTONIC) - start);
}

static bool has_late_phase(const lg_gen *g)
{
    for (int i = 0; i < g->opt.anomalies; i++)
        if (scenario_footprint(g->anomalies[i].scenario).late)
            return true;
    return false;
}

static void wait_for_late_phase(const lg_options *opt)
{
    if (opt->late_on_stdin) {
        char line[64];
        if (!fgets(line, sizeof line, stdin))
            fprintf(stderr, "loadgen: stdin closed; publishing late "
                            "counterparts now\n");
    } else if (opt->late_delay_s > 0) {
        struct timespec ts = {
            (time_t)opt->late_delay_s,
            (long)((opt->late_delay_s - (double)(time_t)opt->late_delay_s) *
                   1e9)};
        nanosleep(&ts, NULL);
    }
}

static void run_late_phase(lg_gen *g)
{
    wait_for_late_phase(&g->opt);
    g->pub.counts = (lg_counts){0};
    g->pub.paced_since_ns = now_ns(CLOCK_MONOTONIC);
    g->pub.paced_count = 0;
    int64_t start = now_ns(CLOCK_MONOTONIC);
    for (int i = 0; i < g->opt.anomalies; i++)
        if (scenario_footprint(g->anomalies[i].scenario).late)
            publish_anomaly_late(g, &g->anomalies[i]);
    /* Resumed agent sessions at work again, under their new authority
     * record, long after the suspend and its redeliveries: complete calls. */
    for (size_t i = 0; i < g->nresumed; i++)
        if (g->resumed[i].slot)
            publish_gateway_call(g, &g->zones[g->resumed[i].zone],
                                 &g->resumed[i].auth, false, &lg_ok, NULL,
                                 now_ns(CLOCK_REALTIME));
    publisher_drain(&g->pub);
    report_phase("late", &g->pub.counts, now_ns(CLOCK_MONOTONIC) - start);
}

/* ---- Set-up ------------------------------------------------------------- */

/* A key from --*-key-file, else the file named by $NAME_FILE, else the hex
 * in $NAME (Caracal's variable names). */
static aw_hmac_key *load_key(const char *file, const char *env_name)
{
    char text[2 * AW_HMAC_MAX_KEY_BYTES + 64], file_var[64];
    size_t len;
    snprintf(file_var, sizeof file_var, "%s_FILE", env_name);
    const char *file_from_env = getenv(file_var);
    if (!file && file_from_env && *file_from_env)
        file = file_from_env;
    if (file) {
        FILE *f = fopen(file, "r");
        if (!f)
            die("cannot read key file %s: %s", file, strerror(errno));
        len = fread(text, 1, sizeof text, f);
        fclose(f);
    } else {
        const char *value = getenv(env_name);
        if (!value)
            die("no %s: set it (hex), or %s, or pass the key file", env_name,
                file_var);
        len = strlen(value);
        if (len > sizeof text)
            len = sizeof text;
        memcpy(text, value, len);
    }
    aw_hmac_key *key = NULL;
    aw_error err;
    if (aw_hmac_key_from_hex(text, len, &key, &err) != AW_OK)
        die("%s: %s", file ? file : env_name, err.msg);
    return key;
}

/* redis://host[:port][/db] or host[:port]; the password, if any, comes from
 * the file named by REDIS_PASSWORD_FILE (never from the command line). */
static redisContext *connect_redis(const char *url)
{
    char host[256];
    int port = 6379, db = 0;
    const char *p = strncmp(url, "redis://", 8) == 0 ? url + 8 : url;
    size_t hostlen = strcspn(p, ":/");
    if (hostlen == 0 || hostlen >= sizeof host)
        die("bad --redis URL");
    memcpy(host, p, hostlen);
    host[hostlen] = '\0';
    p += hostlen;
    if (*p == ':') {
        char *end;
        long v = strtol(p + 1, &end, 10);
        if (end == p + 1 || v <= 0 || v > 65535)
            die("bad port in --redis");
        port = (int)v;
        p = end;
    }
    if (*p == '/' && p[1]) {
        char *end;
        long v = strtol(p + 1, &end, 10);
        if (*end || v < 0)
            die("bad database in --redis");
        db = (int)v;
    }
    redisContext *c =
        redisConnectWithTimeout(host, port, (struct timeval){5, 0});
    if (!c || c->err)
        die("cannot connect to %s:%d: %s", host, port,
            c ? c->errstr : "out of memory");
    const char *pwfile = getenv("REDIS_PASSWORD_FILE");
    char *pw = NULL;
    aw_error err = {0};
    if ((pwfile && aw_secret_read_file(pwfile, &pw, &err) != AW_OK) ||
        aw_redis_handshake(c, pw, db, &err) != AW_OK)
        die("%s", err.msg);
    aw_secret_free(pw);
    return c;
}

static void usage(FILE *out)
{
    fputs(
        "usage: loadgen [options]\n"
        "Publishes signed Caracal traffic to Redis with pipelined XADD.\n"
        "  --redis URL            redis://host:port[/db] (default redis://127.0.0.1:6379)\n"
        "  --events N             main-phase entries over all streams (default 100000)\n"
        "  --rate R               entries per second; 0 = as fast as possible (default 0)\n"
        "  --zones N              Caracal zones (default 4)\n"
        "  --anomalies K          injected anomalies, cycling through the scenarios\n"
        "                         (default 0)\n"
        "  --truth FILE           ground truth: one JSON line per anomaly\n"
        "  --seed S               randomness seed (default 1)\n"
        "  --pipeline P           commands per round trip (default 1000)\n"
        "  --audit-key-file F     hex key for `sig` (default: the file named by\n"
        "                         $AUDIT_HMAC_KEY_FILE, else the hex in $AUDIT_HMAC_KEY)\n"
        "  --streams-key-file F   hex key for `_sig` (likewise STREAMS_HMAC_KEY)\n"
        "  --late-delay S         seconds between the main and the late phase\n"
        "  --late-on-stdin        start the late phase when a line arrives on stdin\n"
        "Prints one summary line per phase: loadgen phase=... entries=... rate=...\n"
        "Password: the file named by REDIS_PASSWORD_FILE, if set.\n",
        out);
}

static uint64_t parse_count(const char *arg, const char *name, uint64_t min)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(arg, &end, 10);
    if (errno || *end || end == arg || arg[0] == '-' || v < min)
        die("%s needs a whole number >= %" PRIu64, name, min);
    return v;
}

static void parse_options(int argc, char **argv, lg_options *opt)
{
    enum {
        O_REDIS = 1,
        O_EVENTS,
        O_RATE,
        O_ZONES,
        O_ANOMALIES,
        O_TRUTH,
        O_SEED,
        O_PIPELINE,
        O_AUDIT_KEY,
        O_STREAMS_KEY,
        O_LATE_DELAY,
        O_LATE_STDIN,
        O_HELP
    };
    static const struct option longopts[] = {
        {"redis", required_argument, NULL, O_REDIS},
        {"events", required_argument, NULL, O_EVENTS},
        {"rate", required_argument, NULL, O_RATE},
        {"zones", required_argument, NULL, O_ZONES},
        {"anomalies", required_argument, NULL, O_ANOMALIES},
        {"truth", required_argument, NULL, O_TRUTH},
        {"seed", required_argument, NULL, O_SEED},
        {"pipeline", required_argument, NULL, O_PIPELINE},
        {"audit-key-file", required_argument, NULL, O_AUDIT_KEY},
        {"streams-key-file", required_argument, NULL, O_STREAMS_KEY},
        {"late-delay", required_argument, NULL, O_LATE_DELAY},
        {"late-on-stdin", no_argument, NULL, O_LATE_STDIN},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    *opt = (lg_options){.redis_url = "redis://127.0.0.1:6379",
                        .events = 100000,
                        .zones = 4,
                        .seed = 1,
                        .pipeline = 1000};
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_REDIS: opt->redis_url = optarg; break;
        case O_EVENTS: opt->events = parse_count(optarg, "--events", 1); break;
        case O_RATE:
            opt->rate = strtod(optarg, &end);
            if (*end || end == optarg || opt->rate < 0)
                die("--rate needs a number >= 0");
            break;
        case O_ZONES:
            opt->zones = (int)parse_count(optarg, "--zones", 1);
            if (opt->zones > 1000)
                die("--zones is at most 1000");
            break;
        case O_ANOMALIES:
            opt->anomalies = (int)parse_count(optarg, "--anomalies", 0);
            if (opt->anomalies > 1000000)
                die("--anomalies is at most 1000000");
            break;
        case O_TRUTH: opt->truth_path = optarg; break;
        case O_SEED: opt->seed = parse_count(optarg, "--seed", 0); break;
        case O_PIPELINE:
            opt->pipeline = parse_count(optarg, "--pipeline", 1);
            if (opt->pipeline > 100000)
                die("--pipeline is at most 100000");
            break;
        case O_AUDIT_KEY: opt->audit_key_file = optarg; break;
        case O_STREAMS_KEY: opt->streams_key_file = optarg; break;
        case O_LATE_DELAY:
            opt->late_delay_s = strtod(optarg, &end);
            if (*end || end == optarg || opt->late_delay_s < 0)
                die("--late-delay needs a number of seconds >= 0");
            break;
        case O_LATE_STDIN: opt->late_on_stdin = true; break;
        case O_HELP: usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind < argc) {
        usage(stderr);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    static lg_gen g;
    parse_options(argc, argv, &g.opt);
    g.rng.state = g.opt.seed;
    g.audit_key = load_key(g.opt.audit_key_file, "AUDIT_HMAC_KEY");
    g.streams_key = load_key(g.opt.streams_key_file, "STREAMS_HMAC_KEY");
    static const aw_stream_role roles[LG_NSTREAMS] = {
        [LG_STREAM_AUDIT] = AW_ROLE_AUDIT,
        [LG_STREAM_SESSIONS] = AW_ROLE_SESSION_REVOKE,
        [LG_STREAM_LIFECYCLE] = AW_ROLE_AGENT_LIFECYCLE,
        [LG_STREAM_DELEGATIONS] = AW_ROLE_DELEGATION_INVALIDATE,
        [LG_STREAM_CALLS] = AW_ROLE_CALLS,
        [LG_STREAM_AUDIT_DLQ] = AW_ROLE_AUDIT_DLQ,
        [LG_STREAM_SESSIONS_DEAD] = AW_ROLE_SESSION_REVOKE_DEAD,
    };
    for (int i = 0; i < LG_NSTREAMS; i++)
        g.stream_names[i] = aw_stream_role_default_stream(roles[i]);

    g.zones = calloc((size_t)g.opt.zones, sizeof *g.zones);
    for (int i = 0; i < 2; i++)
        g.pub.owner[i] = calloc(g.opt.pipeline, sizeof *g.pub.owner[i]);
    if (!g.zones || !g.pub.owner[0] || !g.pub.owner[1])
        die("out of memory");
    for (int i = 0; i < g.opt.zones; i++)
        zone_init(&g.rng, &g.zones[i], i);
    plan_anomalies(&g);

    g.pub.redis = connect_redis(g.opt.redis_url);
    g.pub.depth = g.opt.pipeline;
    g.pub.rate = g.opt.rate;

    run_main_phase(&g);
    if (has_late_phase(&g))
        run_late_phase(&g);
    if (g.opt.truth_path)
        write_truth(&g, g.opt.truth_path);

    redisFree(g.pub.redis);
    aw_buf_free(&g.canonical);
    aw_hmac_key_free(g.audit_key);
    aw_hmac_key_free(g.streams_key);
    for (int i = 0; i < g.opt.anomalies; i++)
        free(g.anomalies[i].dead_values);
    free(g.anomalies);
    free(g.pub.owner[0]);
    free(g.pub.owner[1]);
    aw_buf_free(&g.pub.resp);
    free(g.zones);
    return 0;
}
