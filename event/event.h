/* event.h -- the decoded event model of auditwatch, and the only header of
 * the event/ module.
 *
 * Everything that arrives from Caracal's streams is first a raw stream entry:
 * a stream name, an entry id ("<ms>-<seq>") and an ordered list of binary
 * field/value pairs. auditwatch keeps every raw entry verbatim (msgpack) so
 * signatures can be re-verified and windows exported exactly; the decoded
 * forms below are derived from it and never replace it.
 *
 * This module is pure: no I/O, no clocks, and no global state but one
 * read-only cache (the SHA-256 algorithm, fetched from OpenSSL once, in
 * hmac.c). Decoding either succeeds or fails with one named reason
 * (aw_reject_reason) plus a message that says which field and why, so that
 * nothing is dropped without a record.
 *
 * Ownership: every decoded object owns one heap block holding all of its
 * strings; free it with its own _free function. Strings in decoded objects are
 * NUL-terminated, valid UTF-8, and contain no NUL byte (input with an embedded
 * NUL is rejected), so they are safe to hand to printf and SQLite. A NULL
 * string means "absent".
 */
#ifndef AW_EVENT_H
#define AW_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Errors shared by every module ------------------------------------- */

#define AW_ERRMSG_MAX 256

/* Return codes. 0 is success; failures are negative. */
enum {
    AW_OK = 0,
    AW_ERR = -1, /* generic failure; see aw_error.msg */
    AW_ERR_NOMEM = -2,
    AW_ERR_INVALID = -3, /* bad input: see aw_error.reason */
    AW_ERR_IO = -4,
    AW_ERR_NOTFOUND = -5,
    AW_ERR_CONFLICT = -6,
    AW_ERR_VERSION = -7, /* index written by a newer auditwatch */
    AW_ERR_BUSY = -8,    /* another writer holds the lock: try again */
    AW_ERR_FULL = -9,    /* no space left: try again when there is */
    AW_ERR_BROKEN = -10, /* corrupt, not an index, or read-only */
};

/* Why an entry could not be indexed. Stable names (aw_reject_reason_name)
 * are stored in the rejected table and shown to users. */
typedef enum aw_reject_reason {
    AW_REJECT_NONE = 0,
    AW_REJECT_NOT_JSON,
    AW_REJECT_NOT_OBJECT,
    AW_REJECT_DUPLICATE_KEY,
    AW_REJECT_INVALID_UTF8,
    AW_REJECT_EMBEDDED_NUL,
    AW_REJECT_MISSING_FIELD,
    AW_REJECT_WRONG_TYPE,
    AW_REJECT_OVERSIZED,
    AW_REJECT_BAD_TIME,
    AW_REJECT_BAD_VALUE, /* a field holds a value outside its domain */
    AW_REJECT_SIGNATURE_MISSING,
    AW_REJECT_SIGNATURE_INVALID,
    AW_REJECT_TOO_MANY_DELIVERIES,
    AW_REJECT_AMBIGUOUS_SIGNED_FIELD, /* `\n` in a signed key or value, or
                                         `=` in a key: the stream scheme's
                                         canonical form cannot tell it from
                                         another field set (DESIGN §2.4) */
    AW_REJECT_INDEX_ERROR, /* the index refused it (found by splitting) */
    AW_REJECT_REASON_COUNT
} aw_reject_reason;

/* Stable snake_case name ("duplicate_key"); never NULL. */
const char *aw_reject_reason_name(aw_reject_reason reason);
/* Inverse of aw_reject_reason_name; AW_REJECT_NONE when unknown. */
aw_reject_reason aw_reject_reason_from_name(const char *name);
/* True for the signature reasons (they raise signature_invalid). */
bool aw_reject_reason_is_signature(aw_reject_reason reason);

/* Filled by every fallible function. msg is always NUL-terminated and never
 * contains key material. */
typedef struct aw_error {
    int code;                /* AW_ERR_* */
    aw_reject_reason reason; /* set when code == AW_ERR_INVALID */
    char msg[AW_ERRMSG_MAX];
} aw_error;

/* Sets err (if not NULL) and returns code. printf-style message. */
int aw_error_set(aw_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Same, for bad input: code AW_ERR_INVALID with the given reason. */
int aw_error_reject(aw_error *err, aw_reject_reason reason, const char *fmt,
                    ...) __attribute__((format(printf, 3, 4)));

/* ---- Size bounds (DESIGN §7) ------------------------------------------- */

#define AW_MAX_FIELDS     64          /* fields in one stream entry */
#define AW_MAX_KEY_BYTES  256         /* one field name */
#define AW_MAX_DATA_BYTES (64 * 1024) /* the audit `data` JSON */
/* edge_ids of an edge_expire: Caracal's retention cleaner expires up to
 * RETENTION_CLEANUP_BATCH_SIZE (500) edges at a time, ~20 KB of ids; and a
 * dead letter's copy of such an entry (values, payload) */
#define AW_MAX_EDGE_LIST_BYTES   (64 * 1024)
#define AW_MAX_VALUE_BYTES       (16 * 1024) /* any other field value */
#define AW_MAX_ID_BYTES          512         /* ids, zone, names inside data */
#define AW_MAX_TEXT_BYTES        (16 * 1024) /* resource, method... in data */
#define AW_MAX_STREAM_NAME_BYTES 512         /* a stream name, with its NUL */
#define AW_MAX_CHAIN             64          /* delegation_chain elements */
#define AW_MAX_JSON_DEPTH        32

/* ---- Raw stream entries ------------------------------------------------ */

typedef struct aw_bytes {
    const char *ptr;
    size_t len;
} aw_bytes;

typedef struct aw_field {
    aw_bytes name;
    aw_bytes value;
} aw_field;

/* One stream entry, verbatim. Built by aw_raw_entry_new or
 * aw_raw_entry_unpack; one heap block owns the struct, the field array and
 * every byte. stream and id are also NUL-terminated (for printing); field
 * bytes are binary and may hold anything. Every field name and value is
 * followed by a NUL byte that its len does not count, so a value known to
 * hold no NUL can be read as a C string. */
typedef struct aw_raw_entry {
    aw_bytes stream;
    aw_bytes id;            /* "<ms>-<seq>" as Redis gave it */
    uint64_t id_ms, id_seq; /* parsed from id */
    size_t nfields;
    aw_field *fields;
} aw_raw_entry;

/* Copies stream, id and fields into one new block. Fails with AW_ERR_INVALID
 * (reason BAD_VALUE) when id is not "<ms>-<seq>". Caller frees with
 * aw_raw_entry_free. */
int aw_raw_entry_new(aw_bytes stream, aw_bytes id, const aw_field *fields,
                     size_t nfields, aw_raw_entry **out, aw_error *err);
void aw_raw_entry_free(aw_raw_entry *entry);

/* First field named `name`, or NULL. Borrowed from entry. */
const aw_bytes *aw_raw_entry_get(const aw_raw_entry *entry, const char *name);

/* Parses "<ms>-<seq>" (or "<ms>", seq 0). 0 on success, AW_ERR_INVALID. */
int aw_stream_id_parse(const char *s, size_t len, uint64_t *ms, uint64_t *seq);

/* An entry id as numbers, ordered like Redis orders them
 * (event/stream_id.c). */
typedef struct aw_stream_id {
    uint64_t ms, seq;
} aw_stream_id;

#define AW_STREAM_ID_TEXT_MAX 48 /* "<20 digits>-<20 digits>" and a NUL */

/* aw_stream_id_parse into an aw_stream_id. 0 or AW_ERR_INVALID. */
int aw_stream_id_from_text(const char *s, size_t len, aw_stream_id *out);
/* <0, 0, >0 as a orders before, with, after b. */
int aw_stream_id_cmp(aw_stream_id a, aw_stream_id b);
/* The id right after / right before (saturating at the ends). */
aw_stream_id aw_stream_id_next(aw_stream_id id);
aw_stream_id aw_stream_id_prev(aw_stream_id id);
/* "<ms>-<seq>" into buf (AW_STREAM_ID_TEXT_MAX bytes); returns buf. */
char *aw_stream_id_format(aw_stream_id id, char *buf);

/* Milliseconds to nanoseconds, saturating at INT64_MAX (and, signed, at
 * INT64_MIN) instead of overflowing. */
int64_t aw_ms_to_ns(uint64_t ms);
int64_t aw_ms_to_ns_signed(int64_t ms);

/* A growable byte buffer (msgpack output, canonical signature text, the
 * command line's output rows). Owns ptr; start from {0}. On failure a
 * buffer keeps what it had. */
typedef struct aw_buf {
    char *ptr;
    size_t len, cap;
} aw_buf;
void aw_buf_free(aw_buf *buf);
/* Makes room for `more` bytes after buf->len. AW_ERR_NOMEM on failure. */
int aw_buf_reserve(aw_buf *buf, size_t more);
/* Appends len bytes; AW_ERR_NOMEM on failure. */
int aw_buf_append(aw_buf *buf, const void *data, size_t len);
/* Appends len bytes of text and keeps a NUL after them (not counted in
 * len), so ptr can be read as a C string. AW_ERR_NOMEM on failure. */
int aw_buf_append_text(aw_buf *buf, const char *text, size_t len);

/* Grows the array *p of elements of `size` bytes so that it holds at least
 * `need`, doubling *cap (from 64); *p and *cap are left as they were when
 * memory runs out or the size would overflow. False then. */
bool aw_array_grow(void **p, size_t *cap, size_t need, size_t size);

/* Appends the msgpack form of entry to out: an array
 * [stream(bin), id(bin), [name(bin), value(bin), ...]]. */
int aw_raw_entry_pack(const aw_raw_entry *entry, aw_buf *out, aw_error *err);
/* Decodes one packed entry from data[0..len). On success *out is a new
 * entry (free with aw_raw_entry_free) and *used, if not NULL, the bytes
 * consumed. Truncated or malformed input fails with AW_ERR_INVALID. */
int aw_raw_entry_unpack(const char *data, size_t len, aw_raw_entry **out,
                        size_t *used, aw_error *err);

/* ---- Stream roles ------------------------------------------------------ */

typedef enum aw_stream_role {
    AW_ROLE_AUDIT = 0,             /* caracal.audit.events */
    AW_ROLE_SESSION_REVOKE,        /* caracal.sessions.revoke */
    AW_ROLE_AGENT_LIFECYCLE,       /* caracal.agents.lifecycle */
    AW_ROLE_DELEGATION_INVALIDATE, /* caracal.delegations.invalidate */
    AW_ROLE_CALLS,                 /* auditwatch.calls */
    /* Where Caracal moves what it gave up on (DESIGN §2.4, §8): */
    AW_ROLE_AUDIT_DLQ,                  /* caracal.audit.events.dlq */
    AW_ROLE_SESSION_REVOKE_DEAD,        /* caracal.sessions.revoke.dead */
    AW_ROLE_AGENT_LIFECYCLE_DEAD,       /* caracal.agents.lifecycle.dead */
    AW_ROLE_DELEGATION_INVALIDATE_DEAD, /* caracal.delegations.invalidate.dead */
    AW_ROLE_COUNT
} aw_stream_role;

/* "audit", "sessions", "lifecycle", "delegations", "calls", "audit_dlq",
 * "sessions_dead", "lifecycle_dead", "delegations_dead" (the ROLE of
 * --stream ROLE=NAME) and the default stream names. Never NULL. */
const char *aw_stream_role_name(aw_stream_role role);
const char *aw_stream_role_default_stream(aw_stream_role role);
/* -1 when unknown. */
int aw_stream_role_from_name(const char *name);
/* The role whose entries a dead-letter role holds (AUDIT for AUDIT_DLQ,
 * SESSION_REVOKE for SESSION_REVOKE_DEAD, ...); -1 for any other role. */
int aw_stream_role_dead_letter_origin(aw_stream_role role);

/* The stream name of every role, each a NUL-terminated copy. */
typedef struct aw_stream_names {
    char of[AW_ROLE_COUNT][AW_MAX_STREAM_NAME_BYTES];
} aw_stream_names;

/* Fills *out from given (borrowed; given itself or any member may be NULL):
 * a role given takes that name; a dead-letter role not given follows its
 * origin's name as Caracal derives it ("<audit>.dlq", "<stream>.dead"), so
 * renaming the audit stream renames its DLQ too; any other role takes
 * aw_stream_role_default_stream. AW_ERR_INVALID when a name would not fit
 * AW_MAX_STREAM_NAME_BYTES - 1 bytes. */
int aw_stream_names_resolve(const char *const given[AW_ROLE_COUNT],
                            aw_stream_names *out, aw_error *err);

/* ---- Time ----------------------------------------------------------------*/

/* RFC 3339 date-time with 0-9 fraction digits and `Z`/`z` or ±hh:mm offset,
 * to nanoseconds since the Unix epoch, UTC. Anything else (missing offset,
 * out-of-range fields, trailing bytes) fails with reason BAD_TIME, and so do
 * the leap second :60 (a count of nanoseconds cannot hold it) and instants
 * outside 1677-2262 (they do not fit in an int64). */
int aw_time_parse_rfc3339(const char *s, size_t len, int64_t *ns_out,
                          aw_error *err);
/* Formats ns as "YYYY-MM-DDTHH:MM:SS.fffffffffZ" (fraction trimmed of
 * trailing zeros, omitted when zero). buf needs 40 bytes. Returns buf. */
char *aw_time_format(int64_t ns, char *buf, size_t size);

/* ---- Signatures (HMAC-SHA256, OpenSSL) --------------------------------- */

#define AW_HMAC_MIN_KEY_BYTES 32
#define AW_HMAC_MAX_KEY_BYTES 256

/* A verification key. Holds a reusable keyed context, so verifying costs one
 * HMAC, not a key schedule. Not thread-safe: one per thread. */
typedef struct aw_hmac_key aw_hmac_key;

/* Key from hex text (surrounding whitespace ignored, as in a key file).
 * Fails with a message that never contains the key. Caller frees. */
int aw_hmac_key_from_hex(const char *hex, size_t len, aw_hmac_key **out,
                         aw_error *err);
/* A second, independent context with the same key (for another thread). */
int aw_hmac_key_dup(const aw_hmac_key *key, aw_hmac_key **out, aw_error *err);
void aw_hmac_key_free(aw_hmac_key *key);

/* Writes the 32-byte HMAC-SHA256 of data to mac. */
int aw_hmac_compute(aw_hmac_key *key, const void *data, size_t len,
                    unsigned char mac[32]);

/* Audit scheme: sig_hex (64 lowercase/uppercase hex chars) over the exact
 * bytes of data. AW_OK, or AW_ERR_INVALID with reason SIGNATURE_INVALID.
 * The comparison is constant-time. */
int aw_hmac_verify_audit(aw_hmac_key *key, aw_bytes data, aw_bytes sig_hex,
                         aw_error *err);
/* Stream scheme: `_sig` over "<stream>\n" + "k=v\n" for every field but
 * `_sig`, keys sorted bytewise. Missing `_sig` → SIGNATURE_MISSING; a key
 * holding `\n` or `=`, or a value with a line that reads as one more field
 * in its sorted place, → AMBIGUOUS_SIGNED_FIELD (checked before the MAC:
 * such a signature proves nothing). role is the aw_stream_role whose
 * decoder reads the entry, or -1: a line counts only when the value's own
 * field, or the field the line would be, is one that decoder takes meaning
 * from (aw_stream_name_matters). */
int aw_hmac_verify_stream(aw_hmac_key *key, const aw_raw_entry *entry, int role,
                          aw_error *err);

/* Whether the decoder of role (an aw_stream_role; -1: unknown) takes
 * meaning from a field named name: for a revocation role, a field it reads
 * other than its free-text `reason`; for any other role, every field. */
bool aw_stream_name_matters(int role, aw_bytes name);
/* The canonical form the stream scheme signs (for tests and `verify`).
 * Appends to out. */
int aw_stream_canonical(const aw_raw_entry *entry, aw_buf *out, aw_error *err);

/* SHA-256 of data; used for content hashes and the index hash chain. */
void aw_sha256(const void *data, size_t len, unsigned char out[32]);
/* The first 8 bytes, big-endian, of the SHA-256 of the NUL-terminated id. */
uint64_t aw_id_digest(const char *id);
/* A 64-bit hash of len bytes at data, chained through seed; fast, not
 * cryptographic, for in-memory tables only (values may differ between
 * machines and versions). aw_mix64 is its finaliser, a bijection. */
uint64_t aw_hash64(uint64_t seed, const void *data, size_t len);
uint64_t aw_mix64(uint64_t x);
/* Lowercase hex of len bytes into out (2*len+1 bytes). Returns out. */
char *aw_hex(const unsigned char *bytes, size_t len, char *out);

/* ---- Anchors: the authority an event used, and a revocation names ------ */

typedef enum aw_anchor_kind {
    AW_ANCHOR_AUTHORITY_RECORD =
        1,                         /* metadata session_id / revoke session_id */
    AW_ANCHOR_AGENT_SESSION = 2,   /* agent_session_id */
    AW_ANCHOR_DELEGATION_EDGE = 3, /* delegation_edge_id / edge_id */
} aw_anchor_kind;

/* "authority_record", "agent_session", "delegation_edge"; "unknown" for
 * any other value (never NULL). */
const char *aw_anchor_kind_name(aw_anchor_kind kind);
/* 0 when unknown. */
aw_anchor_kind aw_anchor_kind_from_name(const char *name);

typedef struct aw_anchor {
    aw_anchor_kind kind;
    const char *id;
} aw_anchor;

/* ---- Audit events (caracal.audit.events, DESIGN §2.1) ------------------ */

typedef struct aw_audit_event {
    /* From `data`. id, zone_id and occurred_at are required. */
    const char *id;
    const char *zone_id;
    const char *event_type;
    const char *request_id;
    const char *decision;
    const char *policy_set_id;
    const char *policy_set_version_id;
    const char *manifest_sha;
    const char *evaluation_status;
    int64_t occurred_at_ns;

    /* From metadata_json; absent when not there. */
    const char *application_id;
    const char *resource;
    const char *method;
    const char *subject_kind;
    const char *result_class;
    const char *error_kind;
    const char *trace_id;
    int upstream_status; /* 0 when absent */
    int gateway_status;  /* 0 when absent */
    bool revocation_interrupted;
    /* delegation_graph_epoch: the zone's delegation graph epoch the STS read
     * when it decided (DESIGN §2.4). */
    bool has_delegation_epoch;
    int64_t delegation_epoch;

    /* Every anchor the event names, in this order: session_id,
     * agent_session_id, delegation_edge_id, then each delegation_chain
     * element's agent_session_id and delegation_edge_id. Duplicates
     * (same kind and id) appear once. */
    size_t nanchors;
    aw_anchor *anchors;

    bool is_signed;                 /* a verified `sig` was present */
    unsigned char content_hash[32]; /* SHA-256 of the raw `data` bytes */

    /* aw_id_digest of id and of request_id (0 when it is NULL), which the
     * index keys ids by: computed where the event is decoded, so that the
     * thread writing the index does not pay for them. False in an event
     * built by hand; the store then computes them itself. */
    bool has_id_digests;
    uint64_t id_digest, request_digest;
} aw_audit_event;

/* Decodes an audit entry. When key is not NULL, `sig` is required and must
 * verify over the raw `data` bytes (before any parsing); otherwise an
 * unverified `sig` is ignored and is_signed is false. On failure returns
 * AW_ERR_INVALID with err->reason and a message naming the field. Caller
 * frees *out with aw_audit_event_free. */
int aw_event_decode_audit(const aw_raw_entry *entry, aw_hmac_key *key,
                          aw_audit_event **out, aw_error *err);
void aw_audit_event_free(aw_audit_event *event);

/* True for decisions that grant access: "allow", "consumed". */
bool aw_decision_grants(const char *decision);

/* ---- Revocations (DESIGN §2.2) ----------------------------------------- */

typedef enum aw_revocation_action {
    AW_ACTION_REVOKE = 1,  /* final: revoke, terminate, edge_revoke,
                               edge_expire */
    AW_ACTION_SUSPEND = 2, /* until a later resume: lifecycle suspend, and
                               the agent session a session revoke names */
    AW_ACTION_RESUME = 3,
} aw_revocation_action;

/* "revoke", "suspend", "resume" ("unknown", never NULL, for any other
 * value); from_name gives 0 when unknown. */
const char *aw_revocation_action_name(aw_revocation_action action);
aw_revocation_action aw_revocation_action_from_name(const char *name);

typedef struct aw_revocation {
    aw_anchor anchor;
    aw_revocation_action action;
} aw_revocation;

/* One revocation entry; it may name several anchors (a session revoke with
 * session_id, agent_session_id and delegation_edge_id names three; an
 * edge_revoke names edge_id and every affected_edges element; edge_expire
 * every edge_ids element). Ordinary lifecycle and delegation traffic that
 * ends no authority (spawn, edge_create) decodes to a set with n == 0. */
typedef struct aw_revocation_set {
    const char *zone_id;
    const char *reason; /* may be NULL */
    int64_t at_ns;      /* the entry id's milliseconds, in ns */
    /* The outbox delivery's identity: the dedupe_key, else the outbox_id
     * (NULL when neither is there). Redeliveries share it, and the earliest
     * delivery is the revocation time (DESIGN §2.4). */
    const char *delivery_id;
    bool has_epoch; /* delegations: the graph epoch it was made at */
    int64_t epoch;
    bool is_signed;
    size_t n;
    aw_revocation *items;
} aw_revocation_set;

/* Decodes an entry of a revocation role (SESSION_REVOKE, AGENT_LIFECYCLE,
 * DELEGATION_INVALIDATE). When key is not NULL, `_sig` must verify (stream
 * scheme). A revocation that names no anchor fails with MISSING_FIELD;
 * spawn and edge_create end no authority and decode to an empty set. Caller
 * frees *out with aw_revocation_set_free. */
int aw_event_decode_revocation(aw_stream_role role, const aw_raw_entry *entry,
                               aw_hmac_key *key, aw_revocation_set **out,
                               aw_error *err);
void aw_revocation_set_free(aw_revocation_set *set);

/* The time of the state change a delivery id names, when it names one:
 * Caracal's repeatable lifecycle changes have outbox keys
 * "suspend:<session>:<time>", "resume:..." and "agent_suspend:...", ending
 * with the coordinator's ISO 8601 time of the change
 * (2026-05-21T12:00:00.000Z). Their entries can reach Redis out of order
 * (a failed XADD is retried after later rows were published), so this,
 * not the entry id, orders one session's suspensions and resumes. False
 * for any other id. */
bool aw_delivery_occurrence(const char *delivery_id, int64_t *ns);

/* ---- Observed calls (DESIGN §2.3) -------------------------------------- */

typedef struct aw_observed_call {
    const char *request_id; /* required */
    int status;             /* HTTP status; required */
    int64_t occurred_at_ns; /* occurred_at, else the entry id's time */
    /* occurred_at came from the log itself, not from when the line reached
     * auditwatch (a stand-in: the call happened at or before it). */
    bool time_is_logged;
    const char *zone_id;
    const char *resource;
    const char *source;
    bool is_signed; /* a verified `_sig` (calls stream only) */
} aw_observed_call;

/* Names of the fields of an observed call, so access logs with other field
 * names (nginx JSON logs) map onto the model. NULL members take defaults
 * ("request_id", "status", "occurred_at", "zone_id", "resource", "source"). */
typedef struct aw_call_fields {
    const char *request_id;
    const char *status;
    const char *occurred_at;
} aw_call_fields;

/* From a flat stream entry (auditwatch.calls). Without an occurred_at field
 * the entry id's time is used. When key is not NULL, `_sig` must verify
 * (stream scheme). */
int aw_event_decode_call_entry(const aw_raw_entry *entry, aw_hmac_key *key,
                               aw_observed_call **out, aw_error *err);
/* From one NDJSON line (import-calls); status may be a number or a string;
 * the time field, if present, is RFC 3339 or a number of seconds since the
 * epoch. Without a time field, fallback_ns is used. */
int aw_event_decode_call_json(const char *line, size_t len,
                              const aw_call_fields *names, int64_t fallback_ns,
                              aw_observed_call **out, aw_error *err);
void aw_observed_call_free(aw_observed_call *call);

/* True for 2xx and 3xx statuses: the call reached and was served. */
bool aw_status_is_success(int status);

/* ---- JSON validation shared by the decoders ---------------------------- */

/* Checks bytes as JSON the way a signed payload must be read: valid UTF-8,
 * no NUL byte, no duplicate key in any object, depth bounded, one value and
 * nothing after it. Returns AW_OK or AW_ERR_INVALID with the reason. */
int aw_json_validate(const char *text, size_t len, aw_error *err);

/* True when s[0..len) is valid UTF-8 (no overlongs, no surrogates). */
bool aw_utf8_valid(const char *s, size_t len);

/* ---- Dead letters (DESIGN §2.4, §8) ------------------------------------ */

/* Where Caracal puts the entries it gave up on, in three shapes:
 *   AUDIT_DLQ  caracal.audit.events.dlq (the audit service): `reason`,
 *              `received_at` (epoch ms) and `src_<field>` for every field of
 *              the original entry (`src_id`, `src_data`, `src_sig`, ...);
 *   ENFORCER   <stream>.dead written by the STS or a Gateway: `original_id`
 *              (the original entry id), `error`, `values` (the original
 *              fields as one JSON object of strings), signed with `_sig`
 *              under the stream name `<stream>.dead`;
 *   SDK        <stream>.dead written by Caracal's SDK: `source_id` (the
 *              original entry id), `reason`, `payload` (the original fields
 *              as a JSON object of strings), unsigned. */
typedef enum aw_dead_letter_shape {
    AW_DEAD_AUDIT_DLQ = 1,
    AW_DEAD_ENFORCER = 2,
    AW_DEAD_SDK = 3,
} aw_dead_letter_shape;

/* "audit_dlq", "enforcer", "sdk"; "unknown" for any other value. */
const char *aw_dead_letter_shape_name(aw_dead_letter_shape shape);

/* A dead letter: why Caracal gave up, and the original entry rebuilt so the
 * decoder of its stream (aw_event_decode_audit, aw_event_decode_revocation)
 * verifies and decodes it exactly as if it had been read from there. One
 * heap block owns the struct and its strings; `original` is a separate
 * aw_raw_entry owned by it. Free with aw_dead_letter_free. */
typedef struct aw_dead_letter {
    aw_dead_letter_shape shape;
    const char *reason;     /* reason / error; never NULL */
    const char *source_id;  /* src_id / original_id / source_id; may be NULL */
    int64_t received_at_ns; /* AUDIT_DLQ: received_at; else 0 */
    int64_t dead_lettered_ns; /* the dead-letter entry id's time */
    bool is_signed;           /* ENFORCER: the envelope's `_sig` verified */
    /* The original entry: stream = the origin stream name given; fields in
     * the order the dead letter lists them. Its id is the original entry id
     * for ENFORCER and SDK (so a revocation keeps its time); for AUDIT_DLQ
     * it is the dead letter's own id, since Caracal's `src_id` holds the
     * original `id` field whenever there was one and the entry id is lost
     * (an audit event's time is its occurred_at, not the entry id). */
    aw_raw_entry *original;
} aw_dead_letter;

/* An entry of caracal.audit.events.dlq. `src_<name>` fields become fields
 * <name> of the original entry of stream origin_stream. Fails with
 * AW_ERR_INVALID and a reason when reason or received_at is missing or
 * malformed, no `src_` field is there, a field repeats (DUPLICATE_KEY),
 * or a bound is exceeded (src_data up to AW_MAX_DATA_BYTES). The original
 * itself is not decoded here: its `data` may be missing or bad, which is
 * often why it was dead-lettered. Caller frees *out. */
int aw_dead_letter_decode_audit(const aw_raw_entry *entry,
                                const char *origin_stream, aw_dead_letter **out,
                                aw_error *err);

/* An entry of a revocation stream's `.dead` stream, either shape (told
 * apart by its fields; an entry mixing both is BAD_VALUE). For ENFORCER,
 * when key (STREAMS_HMAC_KEY) is not NULL the envelope's `_sig` must verify
 * under entry->stream before anything is read. `values` / `payload` must be
 * one JSON object (aw_json_validate: UTF-8, no NUL, no duplicate key) of at
 * most AW_MAX_FIELDS string members; the original entry id must be a
 * stream id. The original's own `_sig`, when it has one, is left for
 * aw_event_decode_revocation to verify. Caller frees *out. */
int aw_dead_letter_decode_revocation(const aw_raw_entry *entry,
                                     const char *origin_stream,
                                     aw_hmac_key *key, aw_dead_letter **out,
                                     aw_error *err);
void aw_dead_letter_free(aw_dead_letter *letter);

/* Whether letter is the STS's dead letter of an entry it declines by design
 * (AW_STS_REVOCATION_GROUP): an enforcer's, with AW_STS_NO_SESSION_ERROR,
 * of set, read from a stream of role origin, SESSION_REVOKE, naming
 * delegation edges and no session. The same entry dead-lettered for any
 * other reason (the STS's database down) was not applied. */
bool aw_sts_declined(aw_stream_role origin, const aw_dead_letter *letter,
                     const aw_revocation_set *set);

/* Caracal's reason in a dead letter, read even when the rest of it cannot
 * be: the `reason` field (audit DLQ, SDK shape), else `error` (STS/Gateway
 * shape), printable and cut with "..." to fit buf. NULL when it has
 * neither. */
#define AW_DEAD_LETTER_REASON_SIZE 48
const char *aw_dead_letter_raw_reason(const aw_raw_entry *entry,
                                      char buf[AW_DEAD_LETTER_REASON_SIZE]);

/* ---- Caracal's pipeline, judged from snapshots (DESIGN §8) ------------- */

/* Pure judgments over what XINFO STREAM / XINFO GROUPS / XINFO CONSUMERS /
 * XPENDING report, so `doctor` and the daemon's pipeline alerts judge alike.
 * Callers take the snapshots (read-only: never in Caracal's groups). */

/* A stream entry id (the one id type, aw_stream_id, compared with
 * aw_stream_id_cmp); {0, 0} means "none". */
typedef aw_stream_id aw_stream_pos;
bool aw_stream_pos_is_none(aw_stream_pos p);

/* A figure this Redis does not report (lag before 7.0, or when Redis cannot
 * compute it) or that does not apply. */
#define AW_FIGURE_UNKNOWN (-1)

typedef struct aw_stream_snapshot {
    bool exists;
    int64_t length;            /* XLEN */
    aw_stream_pos first_entry; /* none when empty */
    aw_stream_pos last_entry;
    aw_stream_pos max_deleted; /* max-deleted-entry-id; none when none */
    bool max_deleted_known;    /* false before Redis 7.0 */
} aw_stream_snapshot;

typedef struct aw_group_snapshot {
    aw_stream_pos last_delivered;
    int64_t lag;     /* undelivered entries, or UNKNOWN */
    int64_t pending; /* delivered, not acknowledged */
    /* Of those, how many the group declines by design (AW_STS_REVOCATION_GROUP):
     * they stay pending and await nothing. oldest_pending is the oldest of
     * the others, when pending > declined. */
    int64_t declined;
    aw_stream_pos oldest_pending;
    int64_t oldest_pending_idle_ms; /* since its last delivery, or UNKNOWN */
    aw_stream_pos
        first_undelivered; /* first entry after last_delivered; none */
    size_t consumers;
    int64_t freshest_consumer_idle_ms; /* least idle consumer, or UNKNOWN */
} aw_group_snapshot;

/* Whether a group has applied (DESIGN §2.4: delivered to it and no longer
 * pending there) the entry at r. A snapshot cannot tell for an entry
 * between the oldest pending one and last_delivered: UNKNOWN (ask
 * XPENDING <stream> <group> r r 1). An entry from before the group was
 * created at `$` counts as applied: a late group is judged only on what
 * came after it. */
typedef enum aw_applied {
    AW_APPLIED_YES = 0,
    AW_APPLIED_NOT_DELIVERED,
    AW_APPLIED_PENDING,
    AW_APPLIED_UNKNOWN,
} aw_applied;
aw_applied aw_group_applied(const aw_group_snapshot *group, aw_stream_pos r);

typedef enum aw_enforcer_state {
    AW_ENFORCER_OK = 0,      /* nothing unapplied older than the grace */
    AW_ENFORCER_NOT_READING, /* the oldest unapplied entry was never delivered */
    AW_ENFORCER_NOT_ACKING,  /* delivered, still pending past the grace */
    AW_ENFORCER_TRIMMED,     /* entries were deleted before it read them */
} aw_enforcer_state;

/* "ok", "not_reading", "not_acking", "trimmed"; "unknown" otherwise. */
const char *aw_enforcer_state_name(aw_enforcer_state state);

typedef struct aw_enforcer_judgment {
    aw_enforcer_state state;
    aw_stream_pos oldest_unapplied; /* none when every entry is applied */
    int64_t unapplied_age_ms;       /* now - its id time; 0 when none */
    /* NOT_READING, and no consumer of the group has been delivered an
     * entry (Redis 7.0) or tried to read (7.2 on) since before that
     * revocation was written: the least idle one is idle longer than its
     * age. Redis cannot tell a reader that stopped from a host that is
     * gone. */
    bool readers_gone;
} aw_enforcer_judgment;

/* Defaults shared by `doctor` and the daemon. An enforcer group is named by
 * shell globs (fnmatch); none given: Caracal's STS and every Gateway host
 * (DESIGN §2.4). */
#define AW_ENFORCER_DEFAULT_GRACE_MS 30000
#define AW_INGEST_DEFAULT_MAX_LAG    1000
#define AW_INGEST_DEFAULT_MAX_AGE_MS 60000
#define AW_INGEST_GROUP              "audit-ingestor"
bool aw_enforcer_group_matches(const char *const *patterns, size_t npatterns,
                               const char *group);

/* Caracal's STS reads caracal.sessions.revoke in group
 * AW_STS_REVOCATION_GROUP and applies only the entries that name a session
 * (session_id or agent_session_id). Any other fails its handler with
 * AW_STS_NO_SESSION_ERROR, stays pending in that group, and is
 * dead-lettered on its fifth delivery (services/sts/internal/consumer.go).
 * Caracal's API publishes there every delegation edge it revokes, naming
 * the edge alone; the Gateway applies it, and the STS checks edges in
 * Postgres at every exchange. Such an entry is declined by design, not
 * left unapplied; so is a pending entry trimmed from the stream, which the
 * STS (reclaiming only when it starts) can never be delivered again. */
#define AW_STS_REVOCATION_GROUP "sts-revocation"
#define AW_STS_NO_SESSION_ERROR "missing session_id or agent_session_id"

/* Judges a revocation enforcer's group at now_ms (epoch ms; entry ids are
 * Redis' clock): its oldest revocation not yet applied, and whether that
 * has waited longer than grace_ms. */
void aw_enforcer_judge(const aw_stream_snapshot *stream,
                       const aw_group_snapshot *group, int64_t now_ms,
                       int64_t grace_ms, aw_enforcer_judgment *out);

/* Whether group, so judged, is most likely one host's left behind: its
 * readers are gone and it is not the STS's group, which every STS replica
 * shares. Caracal names a Gateway's group after its host and deletes none
 * (services/gateway/internal/revocations.go), so every host scaled away
 * or recreated under a new name leaves one; and a Gateway also reloads
 * its revocations from Postgres every 30 s, so a reader that stopped
 * leaves them unenforced there for no longer than that. */
bool aw_enforcer_left_behind(const char *group, const aw_enforcer_judgment *j);

typedef enum aw_ingest_state {
    AW_INGEST_OK = 0,
    AW_INGEST_ABSENT,  /* no such group: the ingestor never started */
    AW_INGEST_LAGGING, /* lag over max_lag, or an entry unread too long */
    AW_INGEST_STUCK,   /* an entry pending (read, not acked) too long */
} aw_ingest_state;

/* "ok", "absent", "lagging", "stuck"; "unknown" otherwise. */
const char *aw_ingest_state_name(aw_ingest_state state);

typedef struct aw_ingest_limits {
    int64_t max_lag;    /* entries not yet delivered */
    int64_t max_age_ms; /* since an entry arrived, unread or pending */
} aw_ingest_limits;

typedef struct aw_ingest_judgment {
    aw_ingest_state state;
    int64_t lag;                   /* or UNKNOWN */
    int64_t oldest_pending_age_ms; /* since arrival, or UNKNOWN */
    int64_t oldest_unread_age_ms;  /* since arrival, or UNKNOWN */
} aw_ingest_judgment;

/* Judges the audit ingestor's group (group NULL: it does not exist). */
void aw_ingest_judge(const aw_group_snapshot *group, int64_t now_ms,
                     const aw_ingest_limits *limits, aw_ingest_judgment *out);

/* How many more entries producers writing `MAXLEN ~ maxlen` can add before
 * trimming reaches the oldest entry the group still needs (unread or
 * pending): maxlen - (lag + pending). 0 when trimming already took entries
 * it needed (a pending entry it awaits, not one it declines, before the
 * first retained one, or deletions past last_delivered). Without a lag from Redis, every retained entry is
 * unread when last_delivered is before the first one; otherwise UNKNOWN.
 * Acknowledged entries between its pending ones count too but cannot be
 * seen in a snapshot, so with entries pending this is an upper bound; and
 * `~` trims whole nodes (about 100 entries), so it is approximate. */
int64_t aw_group_trim_headroom(const aw_stream_snapshot *stream,
                               const aw_group_snapshot *group, int64_t maxlen);

#endif /* AW_EVENT_H */
