/* consumer.h -- getting stream entries into the index, and the only header
 * of consumer/.
 *
 * Two layers, kept apart the way hiredis keeps its core apart from its
 * event-loop adapters:
 *
 *  - Ingest (aw_ingest_*): no Redis, no event loop. It takes raw stream
 *    entries that someone already holds and commits them to the index in
 *    one transaction per batch, detectors included. The daemon uses it, and
 *    so do the one-shot commands that bring entries from elsewhere (`replay`
 *    from a bundle or XRANGE, `import-calls` from NDJSON files).
 *
 *  - The daemon (aw_daemon_*): Redis and libuv. It joins auditwatch's own
 *    consumer groups on Caracal's streams, reads, reclaims and reconnects,
 *    hands batches to the ingest layer on the libuv thread pool, and
 *    acknowledges an entry only after the transaction holding it committed
 *    (DESIGN §3). A crash at any point loses nothing: unacknowledged entries
 *    are delivered again, and the index recognises them. Inside it, too,
 *    decisions and I/O are apart: the consumer core (core.c, private header
 *    core.h) takes typed facts and returns actions, with no hiredis or libuv
 *    type in sight; daemon.c performs them and turns replies into facts.
 *
 * Plus three small helpers the command line shares: secrets from files,
 * Redis addresses, and the JSON form of an alert.
 */
#ifndef AW_CONSUMER_H
#define AW_CONSUMER_H

#include <limits.h>

#include "detectors/detectors.h"

/* ---- Ingest -------------------------------------------------------------- */

typedef struct aw_ingest aw_ingest;

/* Entries of a stream whose name starts with this prefix ("import:access.log")
 * are observed calls from an NDJSON file: one field, AW_INGEST_IMPORT_FIELD,
 * holding one line, decoded with the configured call field names. The entry
 * id's time is the fallback time of a line without one. */
#define AW_INGEST_IMPORT_PREFIX "import:"
#define AW_INGEST_IMPORT_FIELD  "line"

/* The absolute form of path (relative to the working directory when it
 * does not start with '/'; no symbolic link is resolved) into
 * out[PATH_MAX], and the stream of its lines, AW_INGEST_IMPORT_PREFIX and
 * that, into stream[PATH_MAX + sizeof AW_INGEST_IMPORT_PREFIX]: a file
 * followed by `run --calls-log` and imported by `import-calls` is one
 * stream. AW_ERR_INVALID when path is empty or too long. */
#define AW_INGEST_IMPORT_STREAM_MAX (PATH_MAX + sizeof AW_INGEST_IMPORT_PREFIX)
int aw_ingest_import_path(const char *path, char absolute[PATH_MAX],
                          char stream[AW_INGEST_IMPORT_STREAM_MAX],
                          aw_error *err);

/* The raw entry of one access-log line of stream (AW_INGEST_IMPORT_PREFIX
 * and the file): its one field holds the line's bytes, its id is
 * "<ms>-<seq>", ms being the line's own time read with names (or, without
 * one, fallback_ns). seq must make the id unique in the stream (a line
 * number). *out is the caller's (aw_raw_entry_free). */
int aw_ingest_import_entry(const char *stream, const char *line, size_t len,
                           const aw_call_fields *names, int64_t fallback_ns,
                           int64_t seq, aw_raw_entry **out, aw_error *err);

typedef struct aw_ingest_options {
    const char *db_path;  /* the index; created when absent */
    unsigned store_flags; /* AW_STORE_* for aw_store_open */
    /* Borrowed; must outlive the handle and be used by no other thread while
     * a batch runs. NULL: signatures are not required and entries are
     * indexed as unsigned. */
    aw_hmac_key *audit_key;   /* `sig` of the audit stream */
    aw_hmac_key *streams_key; /* `_sig` of Caracal's other streams */
    /* `_sig` of the calls stream. It is written by the team's own log
     * shippers, not by Caracal, so Caracal's streams key never applies to
     * it: NULL accepts its entries unsigned (indexed as unsigned). */
    aw_hmac_key *calls_key;
    /* The stream of each role (aw_stream_role); NULL takes its default
     * (aw_stream_names_resolve: a dead-letter stream follows its origin's
     * name). Borrowed. */
    const char *streams[AW_ROLE_COUNT];
    const aw_detector_config *detectors; /* NULL: defaults; borrowed */
    aw_call_fields call_fields;          /* NDJSON names; NULLs take defaults */
} aw_ingest_options;

/* An entry decoded and verified ahead of its batch (aw_ingest_decode). */
typedef struct aw_ingest_decoded aw_ingest_decoded;

/* One entry of a batch. */
typedef struct aw_ingest_item {
    const aw_raw_entry *entry; /* borrowed for the call */
    /* AW_REJECT_NONE, or a reason to reject the entry without decoding it
     * (the daemon uses TOO_MANY_DELIVERIES); detail says why (may be NULL). */
    aw_reject_reason forced_reason;
    const char *forced_detail;
    /* What aw_ingest_decode made of entry, borrowed for the call; NULL: the
     * batch decodes it. */
    const aw_ingest_decoded *decoded;
} aw_ingest_item;

/* Entries [first_id, last_id] of stream were deleted before this index got
 * them. delivered: they had been delivered to the group (a pending entry
 * found deleted) and may have been indexed before a crash, so the loss is
 * reported only when the index does not hold them (first_id == last_id). */
typedef struct aw_ingest_trim {
    const char *stream;
    const char *first_id;
    const char *last_id;
    bool delivered;
} aw_ingest_trim;

/* What one batch did. Counted per entry: indexed (decoded and stored new),
 * duplicates (an entry stored before, or an event id already stored with the
 * same content), conflicts (an event id stored before with other content:
 * tampered_on_redelivery), rejected (stored in the rejected table). */
typedef struct aw_ingest_stats {
    size_t indexed, duplicates, conflicts, rejected;
    size_t duplicates_rejected; /* of duplicates: stored as rejected then */
    size_t indexed_by_role[AW_ROLE_COUNT]; /* of indexed: by stream role */
    size_t indexed_imports;                /* of indexed: import:... files */
    size_t rejected_by_reason[AW_REJECT_REASON_COUNT];
    size_t trims_reported;
} aw_ingest_stats;

/* Opens (creating and migrating) the index and the detectors over it. On
 * success *out is a new handle (aw_ingest_close). Errors: those of
 * aw_store_open and aw_detectors_new, and AW_ERR_INVALID when a stream name
 * is empty, starts with AW_INGEST_IMPORT_PREFIX, or two roles share one. */
int aw_ingest_open(const aw_ingest_options *options, aw_ingest **out,
                   aw_error *err);
void aw_ingest_close(aw_ingest *ing);

/* Commits n items and ntrims trims in ONE transaction, in order: every raw
 * entry is stored (an entry stored before is counted as a duplicate and
 * nothing derived from it is redone), decoded by the role of its stream,
 * and stored with the matching detector hook; an entry that cannot be
 * decoded -- including one of a stream no role names -- is stored as
 * rejected with its reason, never dropped. Then each trim is handed to the
 * detectors, checkpoints move to the newest entry id of each stream, and the
 * detector clock advances to max(clock_ns, newest audit entry-id time of the
 * batch). clock_ns 0: the batch's own time only.
 *
 * Returns 0 with *stats filled (stats may be NULL), or the store's error
 * after a rollback that leaves the index and the detectors as they were: the
 * caller must then NOT acknowledge the entries, and may retry the batch.
 * The code tells how (aw_commit_class_of in core.h): AW_ERR_BUSY, _FULL,
 * _IO, _NOMEM pass; AW_ERR_BROKEN, _VERSION do not; any other code would
 * recur with the same entries.
 * Runs on any one thread at a time. */
int aw_ingest_batch(aw_ingest *ing, const aw_ingest_item *items, size_t n,
                    const aw_ingest_trim *trims, size_t ntrims,
                    int64_t clock_ns, aw_ingest_stats *stats, aw_error *err);

/* What a poll of Caracal's consumer groups found, for the next batch to hand
 * to the detectors inside its transaction (aw_detectors_on_pipeline), so
 * those alerts reach the table and the sinks like every other. findings
 * are borrowed until that aw_ingest_batch returns; the batch forgets them
 * either way, so after a failed one carry them again. */
void aw_ingest_carry_findings(aw_ingest *ing,
                              const aw_pipeline_finding *findings, size_t n);

/* Where a followed access log stands once the batch commits. */
typedef struct aw_ingest_log_position {
    const char *path; /* as the index keys it; borrowed */
    aw_log_position position;
} aw_ingest_log_position;

/* aw_ingest_batch of import entries (no trims, the batch's own clock) that
 * also stores each position in the same transaction: the lines and the
 * place after them commit together or not at all. */
int aw_ingest_log_batch(aw_ingest *ing, const aw_ingest_item *items, size_t n,
                        const aw_ingest_log_position *positions,
                        size_t npositions, aw_ingest_stats *stats,
                        aw_error *err);

/* Decoding ahead. Decoding and verifying an entry needs nothing of the
 * index, so the daemon does it on its loop thread while the worker commits
 * the batch before (DESIGN §6). A decoder decodes as the batch would, with
 * copies of ing's keys of its own: it may run on one other thread while
 * batches run. It borrows ing's call field names (ing must outlive it).
 * *out is the caller's (aw_ingest_decoder_free). Errors: AW_ERR_NOMEM. */
typedef struct aw_ingest_decoder aw_ingest_decoder;
int aw_ingest_decoder_new(const aw_ingest *ing, aw_ingest_decoder **out,
                          aw_error *err);
void aw_ingest_decoder_free(aw_ingest_decoder *decoder);

/* Decodes and verifies e by the role of its stream, as a batch would: the
 * result holds the decoded event, revocations or call, or the reason the
 * batch will reject e with. NULL when out of memory (the batch decodes e
 * itself then). The result is the caller's (aw_ingest_decoded_free) and
 * belongs to e: hand it to a batch only in the item of e. */
aw_ingest_decoded *aw_ingest_decode(aw_ingest_decoder *decoder,
                                    const aw_raw_entry *e);
void aw_ingest_decoded_free(aw_ingest_decoded *decoded);

/* Hands every alert change of the batches committed since the last call to
 * fn (see aw_detectors_drain). Call after a successful aw_ingest_batch. */
void aw_ingest_drain_alerts(aw_ingest *ing, aw_alert_change_fn fn, void *ud);

/* The index, borrowed (for reads between batches, on the same thread). */
aw_store *aw_ingest_store(aw_ingest *ing);

/* The detector clock (ns) after the last committed batch. */
int64_t aw_ingest_clock(const aw_ingest *ing);

/* ---- The daemon --------------------------------------------------------- */

typedef struct aw_daemon aw_daemon;

typedef enum aw_log_format {
    AW_LOG_KV = 0, /* time=... level=info event=start key=value */
    AW_LOG_JSON,   /* one JSON object a line */
} aw_log_format;

/* Which of the two forms the sinks send (aw_alert_to_json, aw_alert_to_ocsf). */
typedef enum aw_alert_format {
    AW_ALERT_FORMAT_JSON = 0, /* aw_alert_to_json (the stream: flat fields) */
    AW_ALERT_FORMAT_OCSF,     /* aw_alert_to_ocsf everywhere */
} aw_alert_format;

typedef struct aw_daemon_config {
    aw_ingest_options ingest; /* the index, keys, stream names */

    const char *redis_host;     /* default 127.0.0.1 */
    int redis_port;             /* default 6379 */
    int redis_db;               /* SELECTed when not 0 */
    const char *redis_password; /* AUTH when not NULL; never logged */

    const char *group;    /* default "auditwatch"; never Caracal's */
    const char *consumer; /* this instance's name in the group */
    /* Where a new group starts: "0" (default) every retained entry, "$"
     * only new ones, or an entry id. */
    const char *start_id;

    size_t count;           /* COUNT per stream and read; 1000 */
    int64_t block_ms;       /* BLOCK of a caught-up read; 1000 */
    int64_t claim_idle_ms;  /* XAUTOCLAIM entries idle longer; 60000 */
    int64_t max_deliveries; /* more: rejected TOO_MANY_DELIVERIES; 8 */

    bool alerts_stdout;           /* JSON lines on stdout */
    const char *alert_stream;     /* XADD here; NULL: no stream sink */
    size_t alert_stream_maxlen;   /* MAXLEN ~ of that stream; 100000 */
    const char *alert_exec;       /* /bin/sh -c CMD per alert, JSON on stdin */
    int alert_exec_max;           /* hooks running at once; 4 */
    aw_alert_format alert_format; /* what every sink sends; JSON */

    aw_log_format log_format;
    const char *log_file; /* NULL: stderr; reopened on SIGHUP */

    /* The chain head (entries + hash, as `verify --chain-head` takes it) is
     * logged every chain_interval_ms when it moved, and at shutdown; also
     * XADDed to chain_stream when that is not NULL, so a copy outside the
     * index exists. */
    const char *chain_stream;
    int64_t chain_interval_ms; /* 60000 */

    /* Caracal's own pipeline (DESIGN §8): every enforcer_poll_ms the groups
     * of the revocation streams and the audit stream are read (read-only,
     * never in their name) and judged: revocation_not_consumed for an
     * enforcer group that has not applied a revocation within
     * grace_enforcer_ms, audit_ingest_stalled for audit-ingestor. */
    int64_t enforcer_poll_ms;           /* 5000 */
    int64_t grace_enforcer_ms;          /* AW_ENFORCER_DEFAULT_GRACE_MS */
    const char *const *enforcer_groups; /* globs; none: Caracal's defaults */
    size_t nenforcer_groups;
    aw_ingest_limits ingest_limits; /* AW_INGEST_DEFAULT_MAX_LAG, _MAX_AGE_MS */

    /* "ADDR:PORT" to serve /metrics on (Prometheus text format, figures
     * refreshed every second); NULL: no endpoint. */
    const char *metrics_listen;

    /* NDJSON access logs followed in place (polled every 250 ms; rotation
     * by create or copytruncate survived), their lines indexed as observed
     * calls with ingest.call_fields, each file's position committed with
     * the lines read up to it. Borrowed. */
    const char *const *calls_logs;
    size_t ncalls_logs;
} aw_daemon_config;

/* Fills config with the defaults above (consumer, password and keys NULL;
 * streams NULL, meaning each role's default; alert_stream
 * "auditwatch.alerts"). */
void aw_daemon_config_init(aw_daemon_config *config);

/* Opens the log and the index. config and every string and key it points to
 * are borrowed and must outlive the daemon. Fails on a bad config
 * (AW_ERR_INVALID), an unreadable index or log file. Nothing touches Redis
 * yet. */
int aw_daemon_new(const aw_daemon_config *config, aw_daemon **out,
                  aw_error *err);

/* Runs until stopped by aw_daemon_stop, SIGTERM or SIGINT (SIGHUP reopens
 * the log file): connects (retrying with capped exponential backoff, so an
 * unreachable Redis is waited for, not an error), ingests, and on stop
 * finishes and acknowledges the batches in flight. Returns 0 after a clean
 * stop, or AW_ERR_BROKEN when the index cannot be written (corrupt,
 * read-only, too new; err says what to do). Transient index errors (busy,
 * full disk, I/O) are retried, never returned. Ignores SIGPIPE
 * for the whole process (sockets and hook pipes report EPIPE instead). */
int aw_daemon_run(aw_daemon *d, aw_error *err);

/* What an operator should do about an index that failed with code: words
 * for AW_ERR_BROKEN (corrupt, not an index, read-only) and AW_ERR_VERSION
 * (written by a newer auditwatch); NULL for other codes. */
const char *aw_index_error_advice(int code);

/* Asks a running daemon to stop. Safe from any thread and from a signal
 * handler. */
void aw_daemon_stop(aw_daemon *d);

/* Closes the index and the log. Not while aw_daemon_run runs. */
void aw_daemon_free(aw_daemon *d);

/* ---- Helpers shared with the command line -------------------------------- */

/* Reads a secret file (a password, a hex key): at most 4096 bytes, surrounding
 * whitespace cut. Refuses a file others may read (mode o+r) or that is not
 * a regular file, so a key left world-readable is noticed. *out is a
 * NUL-terminated heap copy; release it with aw_secret_free. Messages never
 * contain the secret. */
int aw_secret_read_file(const char *path, char **out, aw_error *err);
/* Clears and frees a secret from aw_secret_read_file; NULL is a no-op. */
void aw_secret_free(char *secret);

/* An HMAC key from path (hex) when path is not NULL, else from the
 * environment variable env_hex (hex text) when set, else *out = NULL.
 * The caller frees *out with aw_hmac_key_free. */
int aw_secret_load_hmac_key(const char *path, const char *env_hex,
                            aw_hmac_key **out, aw_error *err);

/* "redis://HOST[:PORT][/DB]" or "HOST[:PORT]". A password in the URL is
 * refused (secrets never on the command line). */
typedef struct aw_redis_address {
    char host[256];
    int port; /* default 6379 */
    int db;   /* default 0 */
} aw_redis_address;
int aw_redis_address_parse(const char *url, aw_redis_address *out,
                           aw_error *err);

/* ---- Redis replies and connections shared with the command line ---------- */

/* hiredis' types, for the one-shot commands that talk to Redis themselves;
 * nothing else of consumer.h needs hiredis. */
struct redisReply;
struct redisContext;

/* The value of key in a RESP2 flat map (XINFO: key, value, key, value...),
 * or NULL. Borrowed from map. */
const struct redisReply *aw_redis_map_get(const struct redisReply *map,
                                          const char *key);

/* Copies one [id, fields] element of an entry list (XRANGE, XREADGROUP,
 * XAUTOCLAIM) of stream into a new entry (aw_raw_entry_free). scratch is a
 * field array reused between calls (grown as needed; free it at the end).
 * AW_ERR_INVALID when a field is not a string. */
int aw_redis_entry_copy(const char *stream, const struct redisReply *id,
                        const struct redisReply *fields, aw_field **scratch,
                        size_t *scratch_cap, aw_raw_entry **out, aw_error *err);

/* ---- The STS's pending list ---------------------------------------------
 * The STS leaves pending, by design, every revocation it declines (event.h,
 * AW_STS_REVOCATION_GROUP), so its group's oldest pending entry says
 * nothing of what it failed to apply. A read-only script (EVAL of
 * XPENDING and XRANGE, nothing else) walks that group's pending list
 * oldest first, from just after `after` (none: its start), examining at
 * most AW_STS_SCAN_ENTRIES entries per call so Redis is never held long,
 * up to the first entry the STS applies. An entry deleted while pending
 * counts as one it applies: it lost that revocation. Entries found
 * declined stay declined (an entry never changes), so a caller goes on
 * from declined_through while the group's last-delivered-id never moves
 * back. */
#define AW_STS_SCAN_ENTRIES 1000
#define AW_STS_SCAN_ARGC    7

typedef struct aw_sts_scan_command {
    const char
        *argv[AW_STS_SCAN_ARGC]; /* EVAL's; into this struct and stream */
    char after[AW_STREAM_ID_TEXT_MAX + 1];
} aw_sts_scan_command;

/* Fills *out for the STS group of stream (borrowed: it must outlive out). */
void aw_sts_scan_command_init(aw_sts_scan_command *out, const char *stream,
                              aw_stream_pos after);

typedef struct aw_sts_scan {
    bool found;                     /* a pending entry the STS applies */
    aw_stream_pos oldest;           /* that entry, when found */
    int64_t oldest_idle_ms;         /* since its last delivery */
    int64_t declined;               /* entries examined and found declined */
    aw_stream_pos declined_through; /* the last of them; none when none */
    bool done; /* found, or the end of the list was reached */
} aw_sts_scan;

/* Reads the script's reply. AW_ERR_IO with Redis' message when it is an
 * error (NOSCRIPT cannot happen: the script is sent whole); AW_ERR_INVALID
 * when its shape is wrong. */
int aw_sts_scan_parse(const struct redisReply *reply, aw_sts_scan *out,
                      aw_error *err);

/* On a blocking connection: AUTH when password is not NULL, SELECT when db
 * is not 0. Messages never contain the password. */
int aw_redis_handshake(struct redisContext *c, const char *password, int db,
                       aw_error *err);

/* A blocking connection for url (aw_redis_address_parse), with connect and
 * command timeouts of timeout_ms. The password in password_file (or in the
 * file $REDIS_PASSWORD_FILE names, when NULL) is sent with AUTH. *out is
 * freed with redisFree. */
int aw_redis_connect(const char *url, const char *password_file, int timeout_ms,
                     struct redisContext **out, aw_error *err);

/* The JSON object of an alert, as the sinks emit it: id, kind, severity,
 * state, zone, request_id, anchor, event_time, raised_at, resolved_at,
 * resolved_by, late_seconds, evidence (array), summary, and "change"
 * (raised, escalated, resolved) unless change is AW_ALERT_UNCHANGED. Times
 * are RFC 3339; absent values are null. Returns a heap string (free), or
 * NULL when out of memory. */
char *aw_alert_to_json(const aw_alert *alert, aw_alert_change change);

/* The same alert as one OCSF 1.3.0 Detection Finding (class_uid 2004): the
 * change is the activity (raised Create, escalated Update, resolved Close);
 * AW_ALERT_UNCHANGED takes the activity of the alert's state (open Create,
 * resolved Close). The mapping is in the README. Returns a heap string
 * (free), or NULL when out of memory. */
char *aw_alert_to_ocsf(const aw_alert *alert, aw_alert_change change);

/* Whether kind is one the detectors raise (detectors.h, AW_ALERT_*); each
 * has its OCSF mapping. For the command line's --kind. */
bool aw_alert_kind_known(const char *kind);

/* "raised", "escalated", "resolved"; NULL for AW_ALERT_UNCHANGED. */
const char *aw_alert_change_name(aw_alert_change change);

#endif /* AW_CONSUMER_H */
