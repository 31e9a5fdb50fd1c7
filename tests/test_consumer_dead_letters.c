/* test_consumer_dead_letters.c -- what Caracal dead-lettered, through the
 * ingest layer on a real index (no Redis): an audit DLQ entry is indexed as
 * the event it holds and alerted, once per event however many copies come;
 * an original that does not verify is rejected as a signature failure, one
 * that cannot be read for another reason is rejected and still alerted; a
 * revocation an enforcer dead-lettered (either `.dead` shape) is alerted and
 * still revokes. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/support.h"

#define AUDIT  "caracal.audit.events"
#define DLQ    "caracal.audit.events.dlq"
#define REVOKE "caracal.sessions.revoke"
#define DEAD   "caracal.sessions.revoke.dead"
/* 2026-05-21T12:00:00Z, the default occurred_at of aw_test_audit */
#define NOON_MS 1779364800000LL

static char dir[PATH_MAX], db[PATH_MAX];
static aw_ingest *ing;
static aw_hmac_key *key;

static void setup(void)
{
    aw_error err = {0};
    aw_test_tmpdir(dir);
    aw_test_path(dir, "index.db", db);
    key = aw_test_key();
    aw_ingest_options o = {.db_path = db, .audit_key = key, .streams_key = key};
    cr_assert(aw_ingest_open(&o, &ing, &err) == AW_OK, "%s", err.msg);
}

static void teardown(void)
{
    aw_ingest_close(ing);
    aw_hmac_key_free(key);
    aw_test_rmtree(dir);
}

TestSuite(consumer_dead_letters, .init = setup, .fini = teardown,
          .timeout = 30);

/* fields: name, value, ... (n names). */
static aw_raw_entry *entry(const char *stream, const char *id,
                           const char *const *kv, size_t n)
{
    aw_field f[12];
    aw_raw_entry *e;
    aw_error err = {0};
    cr_assert(n <= 12);
    for (size_t i = 0; i < n; i++)
        f[i] = (aw_field){{kv[2 * i], strlen(kv[2 * i])},
                          {kv[2 * i + 1], strlen(kv[2 * i + 1])}};
    cr_assert(aw_raw_entry_new((aw_bytes){stream, strlen(stream)},
                               (aw_bytes){id, strlen(id)}, f, n, &e,
                               &err) == AW_OK,
              "%s", err.msg);
    return e;
}

static void commit(aw_raw_entry *e)
{
    aw_ingest_item item = {.entry = e};
    aw_error err = {0};
    cr_assert(aw_ingest_batch(ing, &item, 1, NULL, 0, 0, NULL, &err) == AW_OK,
              "%s", err.msg);
    aw_raw_entry_free(e);
}

/* An audit event on the main stream, signed. */
static aw_raw_entry *audit_entry(const char *entry_id, const aw_test_audit *a)
{
    static char data[1024];
    char sig[65];
    size_t len = aw_test_audit_data(a, data, sizeof data);
    aw_test_sign(key, data, len, sig);
    const char *kv[] = {"id", a->id, "data", data, "sig", sig};
    return entry(AUDIT, entry_id, kv, 3);
}

/* The audit service's DLQ copy of that event: src_ fields, reason,
 * received_at; sig_override replaces the signature. */
static aw_raw_entry *dlq_entry(const char *entry_id, const aw_test_audit *a,
                               const char *sig_override)
{
    aw_test_dlq_copy copy;
    aw_test_dlq_copy_of(a, key, sig_override, &copy);
    return entry(DLQ, entry_id, copy.kv, 5);
}

/* Caracal's DLQ replay of that event: the DLQ entry's src_data and
 * src_sig re-published on the audit stream as data and sig, nothing else
 * (services/audit/internal/server.go, replayDLQ). */
static aw_raw_entry *replay_entry(const char *entry_id, const aw_test_audit *a)
{
    aw_test_dlq_copy copy;
    aw_test_dlq_copy_of(a, key, NULL, &copy);
    const char *kv[] = {"data", copy.data, "sig", copy.sig};
    return entry(AUDIT, entry_id, kv, 2);
}

typedef struct alerts_seen {
    int n;
    aw_alert_state state;
    char severity[16], summary[512], zone[32], request[64], resolved_by[128];
} alerts_seen;

static int keep_alert(const aw_alert *a, void *ud)
{
    alerts_seen *s = ud;
    s->n++;
    s->state = a->state;
    snprintf(s->resolved_by, sizeof s->resolved_by, "%s",
             a->resolved_by ? a->resolved_by : "");
    snprintf(s->severity, sizeof s->severity, "%s", a->severity);
    snprintf(s->summary, sizeof s->summary, "%s", a->summary ? a->summary : "");
    snprintf(s->zone, sizeof s->zone, "%s", a->zone_id ? a->zone_id : "");
    snprintf(s->request, sizeof s->request, "%s",
             a->request_id ? a->request_id : "");
    return 0;
}

static alerts_seen alerts_of(const char *kind)
{
    alerts_seen s = {0};
    aw_error err = {0};
    cr_assert(aw_store_query_alerts(aw_ingest_store(ing),
                                    &(aw_alert_filter){.kind = kind},
                                    keep_alert, &s, &err) == AW_OK,
              "%s", err.msg);
    return s;
}

static int count_row(const aw_event_row *row, void *ud)
{
    (void)row;
    ++*(int *)ud;
    return 0;
}

static int events_with_id(const char *id)
{
    int n = 0;
    aw_error err = {0};
    cr_assert(aw_store_query_events(aw_ingest_store(ing),
                                    &(aw_event_filter){.event_id = id},
                                    count_row, &n, &err) == AW_OK,
              "%s", err.msg);
    return n;
}

static aw_store_stats stats(void)
{
    aw_store_stats st;
    aw_error err = {0};
    cr_assert(aw_store_get_stats(aw_ingest_store(ing), &st, &err) == AW_OK,
              "%s", err.msg);
    return st;
}

Test(consumer_dead_letters,
     a_dead_lettered_allow_is_indexed_and_alerted_critical)
{
    commit(dlq_entry("1779364806000-0",
                     &(aw_test_audit){.id = "evt-dl", .request_id = "req-dl"},
                     NULL));
    cr_expect_eq(events_with_id("evt-dl"), 1,
                 "the original event is queryable");
    alerts_seen s = alerts_of("audit_dead_lettered");
    cr_assert_eq(s.n, 1);
    cr_expect_str_eq(s.severity, "critical");
    cr_expect_str_eq(s.request, "req-dl");
    cr_expect(strstr(s.summary, "max_deliveries_exceeded"), "%s", s.summary);
    cr_expect(strstr(s.summary, "2026-05-21T12:00:05"),
              "received_at is named: %s", s.summary);
}

Test(consumer_dead_letters, a_dead_lettered_deny_is_high)
{
    commit(dlq_entry("1779364806000-0",
                     &(aw_test_audit){.id = "evt-deny", .decision = "deny"},
                     NULL));
    alerts_seen s = alerts_of("audit_dead_lettered");
    cr_assert_eq(s.n, 1);
    cr_expect_str_eq(s.severity, "high");
}

Test(consumer_dead_letters,
     a_dlq_copy_of_an_indexed_event_is_one_event_and_one_alert)
{
    aw_test_audit a = {.id = "evt-twice",
                       .event_type = "gateway_resource_request"};
    commit(audit_entry("1779364801000-0", &a));
    commit(dlq_entry("1779364806000-0", &a, NULL));
    commit(dlq_entry("1779364807000-0", &a, NULL));
    cr_expect_eq(events_with_id("evt-twice"), 1, "no duplicate event");
    alerts_seen s = alerts_of("audit_dead_lettered");
    cr_expect_eq(s.n, 1, "one alert for one event");
    cr_expect_str_eq(s.severity, "critical", "a Gateway call is critical");
    cr_expect_eq(alerts_of("tampered_on_redelivery").n, 0);
}

Test(consumer_dead_letters,
     a_dlq_original_that_does_not_verify_is_rejected_as_a_signature_failure)
{
    char bad[65];
    memset(bad, 'a', 64);
    bad[64] = '\0';
    commit(dlq_entry("1779364806000-0", &(aw_test_audit){.id = "evt-forged"},
                     bad));
    cr_expect_eq(events_with_id("evt-forged"), 0);
    cr_expect_eq(alerts_of("audit_dead_lettered").n, 0);
    cr_expect_eq(alerts_of("signature_invalid").n, 1);
    cr_expect_eq(stats().rejected, 1);
}

/* The original revocation's fields, signed, as JSON (values / payload):
 * the zone, anchor (session_id, delegation_edge_id, ...) = id, a reason. */
static void revocation_json(const char *anchor, const char *id, char *out,
                            size_t size)
{
    const char *fields[] = {"zone_id", "zone-1", anchor,
                            id,        "reason", "grant_revoked"};
    char sig[65];
    aw_test_sign_stream(key, REVOKE, fields, 3, sig);
    snprintf(out, size,
             "{\"zone_id\":\"zone-1\",\"%s\":\"%s\",\"reason\":"
             "\"grant_revoked\",\"_sig\":\"%s\"}",
             anchor, id, sig);
}

/* An enforcer's dead letter (entry dead_id) of a signed revocation of
 * anchor id, with Caracal's error. */
static void commit_enforcer_dead_letter(const char *anchor, const char *id,
                                        const char *error, const char *dead_id)
{
    char values[512];
    revocation_json(anchor, id, values, sizeof values);
    aw_test_dead_letter letter;
    aw_test_dead_letter_of(DEAD, values, error, key, &letter);
    commit(entry(DEAD, dead_id, letter.kv, 4));
}

/* An access by session 60 s after the revocation at NOON_MS. */
static void commit_access(const char *session)
{
    char meta[128];
    snprintf(meta, sizeof meta, "{\"session_id\":\"%s\"}", session);
    commit(audit_entry("1779364860000-0",
                       &(aw_test_audit){.id = "evt-after",
                                        .occurred_at = "2026-05-21T12:01:00Z",
                                        .metadata_json = meta}));
}

Test(consumer_dead_letters,
     an_enforcer_dead_letter_is_alerted_and_still_revokes)
{
    commit_enforcer_dead_letter("session_id", "ar-enforcer",
                                "snapshot_apply_failed", "1779364802000-0");
    alerts_seen s = alerts_of("revocation_dead_lettered");
    cr_assert_eq(s.n, 1);
    cr_expect_str_eq(s.severity, "critical");
    cr_expect_str_eq(s.zone, "zone-1");
    cr_expect(strstr(s.summary, "authority_record ar-enforcer"), "%s",
              s.summary);
    cr_expect(strstr(s.summary, "snapshot_apply_failed"), "%s", s.summary);

    commit_access("ar-enforcer");
    cr_expect_eq(alerts_of("access_after_revocation").n, 1,
                 "the dead-lettered revocation counts from its own time");
}

/* Caracal's API revokes a delegation edge on caracal.sessions.revoke
 * naming the edge alone; the STS fails such an entry ("missing session_id
 * or agent_session_id") and dead-letters it on its fifth delivery, while
 * the Gateway applies it. */
Test(consumer_dead_letters,
     the_sts_dead_letter_of_an_edge_revocation_it_declines_raises_nothing)
{
    commit_enforcer_dead_letter("delegation_edge_id", "edge-api",
                                "missing session_id or agent_session_id",
                                "1779364802000-0");
    cr_expect_eq(alerts_of("revocation_dead_lettered").n, 0,
                 "the STS declines edge-only entries by design");
    cr_expect_eq(stats().revocations, 1, "the edge is still revoked");
    cr_expect_eq(stats().rejected, 0);

    /* the same entry dead-lettered for any other reason was not applied */
    commit_enforcer_dead_letter("delegation_edge_id", "edge-api",
                                "pq: connection refused", "1779364803000-0");
    alerts_seen s = alerts_of("revocation_dead_lettered");
    cr_assert_eq(s.n, 1);
    cr_expect(strstr(s.summary, "delegation_edge edge-api"), "%s", s.summary);
}

Test(consumer_dead_letters,
     the_sts_error_on_an_entry_naming_a_session_is_still_alerted)
{
    commit_enforcer_dead_letter("agent_session_id", "as-sts",
                                "missing session_id or agent_session_id",
                                "1779364802000-0");
    alerts_seen s = alerts_of("revocation_dead_lettered");
    cr_assert_eq(s.n, 1, "the STS applies sessions: this one it did not");
    cr_expect(strstr(s.summary, "agent_session as-sts"), "%s", s.summary);
}

Test(consumer_dead_letters, an_sdk_dead_letter_is_alerted)
{
    char payload[512];
    revocation_json("session_id", "ar-sdk", payload, sizeof payload);
    const char *kv[] = {"source_id",      "1779364800000-0", "reason",
                        "handler_failed", "payload",         payload};
    commit(entry(DEAD, "1779364802000-0", kv, 3));
    alerts_seen s = alerts_of("revocation_dead_lettered");
    cr_assert_eq(s.n, 1);
    cr_expect(strstr(s.summary, "authority_record ar-sdk"), "%s", s.summary);
    cr_expect(strstr(s.summary, "sdk"), "%s", s.summary);
}

Test(
    consumer_dead_letters,
    a_dlq_original_that_cannot_be_read_is_rejected_and_alerted_as_dead_lettered)
{
    const char *data = "{\"id\":\"evt-cut\",\"zone_id\":";
    char sig[65];
    aw_test_sign(key, data, strlen(data), sig);
    const char *kv[] = {"reason",      "json_parse_error:unexpected end",
                        "received_at", "1779364805000",
                        "src_id",      "evt-cut",
                        "src_data",    data,
                        "src_sig",     sig};
    commit(entry(DLQ, "1779364806000-0", kv, 5));
    /* A DLQ entry that lost its received_at: not even the envelope reads. */
    const char *bare[] = {"reason", "missing_data_field", "src_id", "evt-bare"};
    commit(entry(DLQ, "1779364807000-0", bare, 2));

    cr_expect_eq(stats().rejected, 2, "both are kept as rejected");
    cr_expect_eq(alerts_of("signature_invalid").n, 0,
                 "the signature verified: this is not forgery");
    alerts_seen s = alerts_of("audit_dead_lettered");
    cr_assert_eq(s.n, 2, "one alert per unreadable dead letter");
    cr_expect_str_eq(s.severity, "high");
    cr_expect_str_eq(s.zone, "", "no unread zone is trusted");
    cr_expect(strstr(s.summary, "1779364806000-0") ||
                  strstr(s.summary, "1779364807000-0"),
              "%s", s.summary);
}

Test(consumer_dead_letters,
     a_dead_revocation_that_cannot_be_read_is_rejected_and_alerted_critical)
{
    /* The SDK dead-letters a signed entry naming no anchor, which no
     * decoder can turn into a revocation either. */
    const char *fields[] = {"zone_id", "zone-1", "reason", "grant_revoked"};
    char sig[65], payload[256];
    aw_test_sign_stream(key, REVOKE, fields, 2, sig);
    snprintf(payload, sizeof payload,
             "{\"zone_id\":\"zone-1\",\"reason\":\"grant_revoked\","
             "\"_sig\":\"%s\"}",
             sig);
    const char *kv[] = {"source_id", "1779364800000-0",
                        "reason",    "missing_revocation_anchor",
                        "payload",   payload};
    commit(entry(DEAD, "1779364802000-0", kv, 3));
    cr_expect_eq(alerts_of("signature_invalid").n, 0);
    cr_expect_eq(stats().rejected, 1);
    alerts_seen s = alerts_of("revocation_dead_lettered");
    cr_assert_eq(s.n, 1);
    cr_expect_str_eq(s.severity, "critical");
    cr_expect(strstr(s.summary, "missing_revocation_anchor"),
              "Caracal's reason: %s", s.summary);
    cr_expect(strstr(s.summary, "missing_field"), "why auditwatch cannot: %s",
              s.summary);
}

/* ---- Copies of a stored event ----------------------------------------------
 * A new event with the identity (id and occurred_at) of a stored one is a
 * redelivery or tampering. The stored event's content is re-read from its
 * entry (its row keeps no hash, schema 12), decoded as it was decoded then:
 * from a DLQ entry's original, unsigned checks skipped. */

static int64_t events_keeping_a_hash(void)
{
    return aw_test_sql_int(db, "SELECT count(*) FROM events "
                               "WHERE length(content_hash) > 0");
}

Test(consumer_dead_letters, an_altered_copy_is_told_from_the_stored_entry)
{
    aw_test_audit a = {.id = "evt-1", .decision = "deny"};
    commit(audit_entry("1779364801000-0", &a));
    commit(audit_entry("1779364802000-0", &a));
    cr_expect_eq(alerts_of("tampered_on_redelivery").n, 0,
                 "an identical copy is a redelivery");
    a.decision = "allow";
    commit(audit_entry("1779364803000-0", &a));
    alerts_seen s = alerts_of("tampered_on_redelivery");
    cr_assert_eq(s.n, 1, "a copy that turns a deny into an allow");
    cr_expect_str_eq(s.severity, "critical");
    cr_expect_eq(events_with_id("evt-1"), 1, "the first version is kept");
    cr_expect_eq(events_keeping_a_hash(), 0,
                 "the entry, stored whole, holds the content");
}

Test(consumer_dead_letters, the_original_of_a_stored_dlq_copy_is_a_redelivery)
{
    aw_test_audit a = {.id = "evt-dlq-first",
                       .event_type = "gateway_resource_request"};
    commit(dlq_entry("1779364806000-0", &a, NULL));
    commit(audit_entry("1779364807000-0", &a));
    cr_expect_eq(alerts_of("tampered_on_redelivery").n, 0);
    cr_expect_eq(events_with_id("evt-dlq-first"), 1);
    a.decision = "deny";
    commit(audit_entry("1779364808000-0", &a));
    cr_expect_eq(alerts_of("tampered_on_redelivery").n, 1,
                 "the DLQ copy's original is what is compared");
}

/* Caracal's DLQ replay re-publishes a dead-lettered event on the audit
 * stream, which gives its audit service another go at the ledger: the
 * alert is resolved by that copy, and reopened if Caracal dead-letters the
 * event again. */
Test(consumer_dead_letters, a_dlq_replay_resolves_and_a_new_dead_letter_reopens)
{
    aw_test_audit a = {.id = "evt-replayed", .request_id = "req-r"};
    commit(audit_entry("1779364801000-0", &a));
    commit(dlq_entry("1779364806000-0", &a, NULL));
    cr_assert_eq(alerts_of("audit_dead_lettered").state, AW_ALERT_OPEN);
    commit(replay_entry("1779364900000-0", &a));
    alerts_seen s = alerts_of("audit_dead_lettered");
    cr_assert_eq(s.n, 1);
    cr_expect_eq(s.state, AW_ALERT_RESOLVED, "the replay copy resolves it");
    cr_expect_str_eq(s.resolved_by, "entry:" AUDIT "/1779364900000-0");
    cr_expect_eq(events_with_id("evt-replayed"), 1, "the copy is no event");
    cr_expect_eq(alerts_of("tampered_on_redelivery").n, 0);
    cr_expect_eq(alerts_of("signature_invalid").n, 0);

    commit(dlq_entry("1779364960000-0", &a, NULL));
    s = alerts_of("audit_dead_lettered");
    cr_assert_eq(s.n, 1, "the same event, the same alert");
    cr_expect_eq(s.state, AW_ALERT_OPEN, "dead-lettered again: open again");
    commit(replay_entry("1779365000000-0", &a));
    cr_expect_eq(alerts_of("audit_dead_lettered").state, AW_ALERT_RESOLVED);
}

/* Only a copy published after every dead letter of the event is a replay:
 * the original, read after its dead letter (a backlog), and a copy older
 * than the newest dead letter resolve nothing. */
Test(consumer_dead_letters,
     copies_older_than_the_newest_dead_letter_resolve_nothing)
{
    aw_test_audit a = {.id = "evt-kept-open", .request_id = "req-k"};
    commit(dlq_entry("1779364806000-0", &a, NULL));
    commit(audit_entry("1779364801000-0", &a));
    cr_expect_eq(alerts_of("audit_dead_lettered").state, AW_ALERT_OPEN,
                 "the original is older than its dead letter");
    commit(dlq_entry("1779364830000-0", &a, NULL));
    commit(replay_entry("1779364820000-0", &a));
    cr_expect_eq(alerts_of("audit_dead_lettered").state, AW_ALERT_OPEN,
                 "dead-lettered again after that copy");
    commit(replay_entry("1779364830000-5", &a));
    cr_expect_eq(alerts_of("audit_dead_lettered").state, AW_ALERT_OPEN,
                 "the dead letter's millisecond is not after it");
    commit(replay_entry("1779364831000-0", &a));
    cr_expect_eq(alerts_of("audit_dead_lettered").state, AW_ALERT_RESOLVED);
}

/* After downtime the DLQ, a short stream, is read ahead of the audit
 * stream's backlog: the copy of te-1, dead-lettered at 400 s, comes before
 * its original of 0 s. The original's entry is the event's arrival, so te-1
 * is in time for the Gateway call it granted, and trace names the original
 * entry. */
Test(consumer_dead_letters, the_original_read_after_its_dlq_copy_sets_arrival)
{
    aw_test_audit te = {.id = "te-1", .request_id = "req-1"};
    aw_test_audit call = {.id = "g-1",
                          .request_id = "req-1",
                          .event_type = "gateway_resource_request",
                          .evaluation_status = "executed"};
    commit(dlq_entry("1779365200000-0", &te, NULL));
    commit(audit_entry("1779364800000-0", &te));
    commit(audit_entry("1779364801000-0", &call));
    commit(audit_entry("1779365800000-0",
                       &(aw_test_audit){.id = "later", .request_id = "r-2"}));
    cr_expect_eq(alerts_of("decision_missing").n, 0,
                 "te-1 was on the audit stream before g-1's deadline");
    cr_expect_eq(alerts_of("audit_dead_lettered").n, 1);
    cr_expect_eq(events_with_id("te-1"), 1);
    cr_expect_eq(aw_test_sql_int(db, "SELECT n.id_ms FROM events e JOIN "
                                     "entries n ON n.rowid = e.entry_rowid "
                                     "WHERE e.rowid = 1"),
                 NOON_MS, "the event's entry is its original");
}

Test(consumer_dead_letters,
     a_redelivery_signed_with_a_rotated_key_is_not_tampering)
{
    aw_test_audit a = {.id = "evt-rotated"};
    commit(audit_entry("1779364801000-0", &a));
    aw_ingest_close(ing);
    aw_hmac_key_free(key);
    aw_error err = {0};
    static const char rotated[] =
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    cr_assert_eq(aw_hmac_key_from_hex(rotated, strlen(rotated), &key, &err),
                 AW_OK, "%s", err.msg);
    aw_ingest_options o = {.db_path = db, .audit_key = key, .streams_key = key};
    cr_assert(aw_ingest_open(&o, &ing, &err) == AW_OK, "%s", err.msg);
    commit(audit_entry("1779364802000-0", &a));
    cr_expect_eq(alerts_of("tampered_on_redelivery").n, 0,
                 "the stored entry's old signature is not checked again");
    cr_expect_eq(alerts_of("signature_invalid").n, 0);
    cr_expect_eq(events_with_id("evt-rotated"), 1);
}

/* An entry over AW_STORE_MAX_RAW_BYTES is stored with every value cut to
 * 16 KiB, its data too: it cannot reproduce its event's content, so the
 * events row keeps the hash, and a copy is still a redelivery. */
Test(consumer_dead_letters,
     an_event_whose_entry_was_stored_truncated_keeps_its_hash)
{
    static char metadata[56 * 1024], data[AW_MAX_DATA_BYTES],
        pad[AW_MAX_VALUE_BYTES];
    int n = snprintf(metadata, sizeof metadata, "{\"note\":\"");
    memset(metadata + n, 'm', sizeof metadata - (size_t)n - 3);
    memcpy(metadata + sizeof metadata - 3, "\"}", 3);
    aw_test_audit a = {.id = "evt-large", .metadata_json = metadata};
    size_t len = aw_test_audit_data(&a, data, sizeof data);
    char sig[65];
    aw_test_sign(key, data, len, sig);
    memset(pad, 'p', sizeof pad);
    enum { PADS = AW_MAX_FIELDS - 3 };
    aw_field f[3 + PADS];
    char names[PADS][8];
    f[0] = (aw_field){{"id", 2}, {a.id, strlen(a.id)}};
    f[1] = (aw_field){{"data", 4}, {data, len}};
    f[2] = (aw_field){{"sig", 3}, {sig, 64}};
    for (int i = 0; i < PADS; i++) {
        snprintf(names[i], sizeof names[i], "pad%02d", i);
        f[3 + i] = (aw_field){{names[i], 5}, {pad, sizeof pad}};
    }
    aw_error err = {0};
    for (int copy = 0; copy < 2; copy++) {
        const char *id = copy == 0 ? "1779364801000-0" : "1779364802000-0";
        aw_raw_entry *e;
        cr_assert(aw_raw_entry_new((aw_bytes){AUDIT, strlen(AUDIT)},
                                   (aw_bytes){id, strlen(id)}, f, 3 + PADS, &e,
                                   &err) == AW_OK,
                  "%s", err.msg);
        commit(e);
    }
    cr_assert_eq(events_with_id("evt-large"), 1, "the event was indexed");
    cr_expect_eq(aw_test_sql_int(db, "SELECT count(*) FROM entries WHERE "
                                     "orig_size IS NOT NULL"),
                 2, "both copies were stored truncated");
    cr_expect_eq(events_keeping_a_hash(), 1);
    cr_expect_eq(alerts_of("tampered_on_redelivery").n, 0);

    /* verify tells them from a forged truncation mark */
    aw_test_proc verify;
    const char *args[] = {"verify", "--db", db, NULL};
    int status = aw_test_run(&verify, dir, "verify", args, NULL, 60000);
    char *out = aw_test_read_file(verify.out_path, NULL);
    cr_expect_eq(status, 0, "%s", out ? out : "");
    free(out);
}

/* A dead letter stored before its stream was renamed still answers for
 * its event: the original, published again on the audit stream, is a
 * duplicate, not an entry that cannot be indexed. */
Test(consumer_dead_letters,
     a_dead_letter_from_a_renamed_stream_still_knows_its_event)
{
    aw_test_audit a = {.id = "evt-dl", .request_id = "req-dl"};
    commit(dlq_entry("1779364806000-0", &a, NULL));
    aw_ingest_close(ing);
    aw_ingest_options o = {.db_path = db, .audit_key = key, .streams_key = key};
    o.streams[AW_ROLE_AUDIT_DLQ] = DLQ ".v2";
    aw_error err = {0};
    cr_assert(aw_ingest_open(&o, &ing, &err) == AW_OK, "%s", err.msg);
    aw_raw_entry *again = audit_entry("1779364807000-0", &a);
    aw_ingest_item item = {.entry = again};
    aw_ingest_stats st;
    cr_assert(aw_ingest_batch(ing, &item, 1, NULL, 0, 0, &st, &err) == AW_OK,
              "%s", err.msg);
    aw_raw_entry_free(again);
    cr_expect_eq(st.duplicates, 1);
    cr_expect_eq(events_with_id("evt-dl"), 1);
}
