/* store.h -- the SQLite index of auditwatch, and the only header of store/.
 *
 * The index is one SQLite file in WAL mode: one writer (the daemon, or a
 * one-shot command such as import-calls) and any number of readers (the
 * CLI) at once. It is created with mode 0600: it holds security evidence.
 *
 * What is kept:
 *  - entries:      every raw stream entry (msgpack), in ingest order, kept
 *                  verbatim but stored as a zstd frame (with a dictionary
 *                  trained on the traffic) when that is smaller, each hashed
 *                  into a chain with the one before it so that an edited or
 *                  deleted row is detectable (`verify`);
 *  - events:       the decoded audit events, keyed by their identity
 *                  (event id, occurred_at), as Caracal's ledger keys them;
 *  - anchors:      the authority each event used (session, agent session,
 *                  delegation edge, chain elements), for revocation joins;
 *  - revocations, calls (observed calls), rejected (entries that could not
 *    be indexed, with the reason), alerts, checkpoints, pending detector
 *    deadlines, and small counters (meta).
 *
 * Idempotence is the backbone of "ack only after commit": a redelivered
 * entry (same stream and entry id) is recognised by aw_store_put_entry and
 * everything derived from it is skipped; an event id seen again in another
 * entry is compared by content hash (same → duplicate, different →
 * conflict, the first version stays).
 *
 * All SQL uses bound parameters. Every writing function must be called
 * between aw_store_begin and aw_store_commit/rollback. A store handle is used
 * by one thread at a time.
 *
 * Row structs handed to callbacks (aw_*_row) are borrowed: their strings and
 * blobs are valid only during the callback. Callbacks return 0 to go on;
 * any other value stops the iteration and is returned by the iterating
 * function.
 */
#ifndef AW_STORE_H
#define AW_STORE_H

#include "event/event.h"

typedef struct aw_store aw_store;

/* ---- Open, close, transactions ------------------------------------------ */

enum {
    AW_STORE_READONLY = 1 << 0, /* never writes; fails if the file is absent */
    AW_STORE_SYNC_NORMAL = 1 << 1, /* synchronous=NORMAL instead of FULL */
    AW_STORE_EXISTING = 1 << 2     /* fails if the file is absent */
};

/* Opens (creating with 0600 when absent, unless READONLY or EXISTING) and
 * migrates the index at path to the newest schema this binary knows.
 * Re-opening a current index is a no-op. An index whose schema is newer
 * than the binary, and a SQLite database with tables that is not an
 * auditwatch index, fail with AW_ERR_VERSION before anything is written to
 * them. On success *out is a new handle (aw_store_close). */
int aw_store_open(const char *path, unsigned flags, aw_store **out,
                  aw_error *err);
void aw_store_close(aw_store *store);

/* The schema version of an open index. */
int aw_store_schema_version(aw_store *store);

/* Caps the index file at max_pages pages for this handle (SQLite's
 * max_page_count); a write past it fails with AW_ERR_FULL, as on a full
 * disk. 0 lifts the cap. For tests and for operators who want a bound. */
int aw_store_set_max_pages(aw_store *store, int64_t max_pages, aw_error *err);

/* BEGIN IMMEDIATE; waits for another writer up to the busy timeout (5 s).
 * Fails on a READONLY handle. */
int aw_store_begin(aw_store *store, aw_error *err);
int aw_store_commit(aw_store *store, aw_error *err);
/* Never fails; safe to call when no transaction is open. */
void aw_store_rollback(aw_store *store);

/* On a READONLY handle: every read from here until aw_store_rollback sees
 * one snapshot of the index, whatever a writer commits meanwhile (a WAL
 * read transaction; the writer's checkpoints stop short of it until it
 * ends). For a reader whose checks span many queries, as verify's do. */
int aw_store_read_snapshot(aw_store *store, aw_error *err);

/* ---- Ingest (inside a transaction) -------------------------------------- */

typedef enum aw_put_result {
    AW_PUT_INSERTED = 1,
    AW_PUT_DUPLICATE = 2, /* already there with the same content */
    AW_PUT_CONFLICT = 3,  /* same id, different content; first kept */
} aw_put_result;

/* Stores a raw entry and chains it. Entries whose packed form exceeds
 * AW_STORE_MAX_RAW_BYTES are stored with every value cut to
 * AW_MAX_VALUE_BYTES and marked truncated (the original size is kept).
 * *result is INSERTED (with *rowid the new row) or DUPLICATE (same stream
 * and entry id already stored; *rowid the existing row): the caller then
 * skips everything derived from the entry. */
#define AW_STORE_MAX_RAW_BYTES (1024 * 1024)
int aw_store_put_entry(aw_store *store, const aw_raw_entry *entry,
                       int64_t *rowid, aw_put_result *result, aw_error *err);

/* Stores a decoded audit event found in entry row entry_rowid, with its
 * anchors. *result: INSERTED, DUPLICATE (same event id, occurred_at and
 * content hash) or CONFLICT (same event id and occurred_at, different
 * content). *event_rowid is the new row, or the existing one for
 * DUPLICATE/CONFLICT. A DUPLICATE found in an entry of earlier id time
 * than the stored one's becomes the event's entry (so its arrival), as the
 * original does when it is read after its dead letter. The stored event's
 * hash is its row's, or the one aw_store_set_event_content's function
 * re-reads from its entry. */
int aw_store_put_event(aw_store *store, int64_t entry_rowid,
                       const aw_audit_event *event, int64_t *event_rowid,
                       aw_put_result *result, aw_error *err);

/* Stores every revocation of set, found in entry row entry_rowid. When the
 * set has a delivery_id that an earlier row of the same stream and zone
 * holds, the earliest delivery's time is every such row's at_ns (a copy
 * read before the first moves the others back). */
int aw_store_put_revocations(aw_store *store, int64_t entry_rowid,
                             const aw_revocation_set *set, aw_error *err);

/* Stores an observed call found in entry row entry_rowid. */
int aw_store_put_call(aw_store *store, int64_t entry_rowid,
                      const aw_observed_call *call, int64_t *call_rowid,
                      aw_error *err);

/* Records that entry row entry_rowid could not be indexed, and why. detail
 * is the decoder's message (may be NULL). */
/* Whether the entry at entry_rowid was stored as rejected. */
int aw_store_entry_was_rejected(aw_store *store, int64_t entry_rowid,
                                bool *rejected, aw_error *err);
int aw_store_put_rejected(aw_store *store, int64_t entry_rowid,
                          aw_reject_reason reason, const char *detail,
                          aw_error *err);

/* Remembers the last entry id of stream that this transaction covers, with
 * the wall-clock time of the call as updated_at (the one place the store
 * reads a clock). */
int aw_store_set_checkpoint(aw_store *store, const char *stream,
                            const char *entry_id, aw_error *err);

/* Small durable integers (detector clock, watermarks). A missing key reads
 * as AW_ERR_NOTFOUND and leaves *value untouched. */
int aw_store_meta_get(aw_store *store, const char *key, int64_t *value,
                      aw_error *err);
int aw_store_meta_set(aw_store *store, const char *key, int64_t value,
                      aw_error *err);

/* ---- Pending detector deadlines (inside a transaction) ------------------ */

/* A check the detectors must make once their clock reaches deadline_ns;
 * kind is the detector's own small integer, ref a row id it understands.
 * Durable. The detectors keep their checks in memory and write here only
 * what overflows their bound (and indexes of schema 3 and older hold the
 * checks of then). Adding the same (deadline, kind, ref) twice keeps one. */
int aw_store_pending_add(aw_store *store, int kind, int64_t deadline_ns,
                         int64_t ref, aw_error *err);

typedef int (*aw_pending_fn)(int kind, int64_t deadline_ns, int64_t ref,
                             void *ud);
/* Calls fn for every check due at clock_ns (deadline <= clock), oldest
 * first, then deletes them. If fn stops the iteration nothing is deleted. */
int aw_store_pending_take_due(aw_store *store, int64_t clock_ns,
                              aw_pending_fn fn, void *ud, aw_error *err);

/* ---- Events -------------------------------------------------------------- */

typedef struct aw_event_row {
    int64_t rowid;
    int64_t entry_rowid;
    const char *stream; /* where the entry came from */
    const char *entry_id;
    int64_t arrived_ns; /* the entry id's time */
    const char *event_id;
    const char *zone_id;
    const char *event_type;
    const char *request_id;
    const char *decision;
    const char *evaluation_status;
    const char *application_id;
    const char *resource;
    const char *session_id;
    const char *agent_session_id;
    const char *delegation_edge_id;
    const char *result_class;
    int upstream_status;
    int64_t occurred_at_ns;
    bool is_signed;
    bool has_delegation_epoch;
    int64_t delegation_epoch;
} aw_event_row;

typedef int (*aw_event_row_fn)(const aw_event_row *row, void *ud);

/* Filters for aw_store_query_events. Zero/NULL members do not filter. */
typedef struct aw_event_filter {
    int64_t rowid;        /* one event by row id */
    int64_t from_rowid;   /* rows at or after this row id */
    const char *event_id; /* with since/until for one identity */
    const char *request_id;
    const char *zone_id;
    const char *decision;
    const char *resource;
    const char *application_id;
    const char *const *event_types; /* any of these */
    size_t n_event_types;
    bool grants_only; /* decision allow or consumed */
    aw_anchor anchor; /* kind 0: no anchor filter */
    bool has_since, has_until;
    int64_t since_ns, until_ns; /* since <= occurred_at < until */
    /* Cursor: rows strictly after (occurred_at, rowid) in the ordering. */
    bool has_cursor;
    int64_t cursor_occurred_ns, cursor_rowid;
    size_t limit; /* 0: no limit */
    /* Read only what the detectors join on: the ids, times, zone, event
     * type, request id, decision, evaluation status, signature and epoch;
     * stream, application, resource, the three anchors and result class are
     * NULL and upstream_status 0 (no look-up per row for them). */
    bool key_columns_only;
    /* Rows in no particular order, for a caller that folds them into counts
     * or an extreme (no sort; a request id's rows are read tier by tier).
     * Not with a cursor or a limit. */
    bool any_order;
} aw_event_filter;

/* Matching events ordered by (occurred_at, rowid), ascending, unless
 * any_order. Statements are prepared once per filter shape and reused, so
 * detectors may call this on the hot path. */
int aw_store_query_events(aw_store *store, const aw_event_filter *filter,
                          aw_event_row_fn fn, void *ud, aw_error *err);

/* The zone and request id of every stored event of event_type that has a
 * request id, in row order, up to the newest events row when the call
 * begins, whose row id goes to *through_rowid (0: no events). Both strings
 * are borrowed for the call. One pass over the events table, for a filter
 * the caller fills once per start; fn's non-zero return stops it and is
 * returned. */
typedef int (*aw_request_fn)(const char *zone_id, const char *request_id,
                             void *ud);
int aw_store_each_request_of_type(aw_store *store, const char *event_type,
                                  aw_request_fn fn, void *ud,
                                  int64_t *through_rowid, aw_error *err);

/* ---- Revocations --------------------------------------------------------- */

typedef struct aw_revocation_row {
    int64_t rowid;
    int64_t entry_rowid;
    const char *stream;
    const char *entry_id;
    const char *zone_id;
    aw_anchor anchor;
    aw_revocation_action action;
    int64_t at_ns; /* the earliest delivery's time */
    const char *reason;
    bool has_epoch; /* delegation graph epoch of the entry */
    int64_t epoch;
    const char *delivery_id; /* outbox delivery identity, or NULL */
} aw_revocation_row;

typedef int (*aw_revocation_row_fn)(const aw_revocation_row *row, void *ud);

/* Revocations of one anchor in zone (zone NULL: any), ordered by (at, rowid);
 * anchor kind 0 with has_since/has_until lists every revocation of the
 * window (for `query`, `status`). */
typedef struct aw_revocation_filter {
    const char *zone_id;
    aw_anchor anchor;
    bool has_since, has_until;
    int64_t since_ns, until_ns;
    size_t limit;
} aw_revocation_filter;

int aw_store_query_revocations(aw_store *store,
                               const aw_revocation_filter *filter,
                               aw_revocation_row_fn fn, void *ud,
                               aw_error *err);

/* ---- Observed calls ------------------------------------------------------ */

typedef struct aw_call_row {
    int64_t rowid;
    int64_t entry_rowid;
    const char *stream;
    const char *entry_id;
    const char *request_id;
    int status;
    int64_t occurred_at_ns;
    const char *zone_id;
    const char *resource;
    const char *source;
    bool is_signed;      /* its `_sig` verified at ingest */
    bool time_is_logged; /* occurred_at is the log's, not a stand-in */
} aw_call_row;

typedef int (*aw_call_row_fn)(const aw_call_row *row, void *ud);

/* rowid != 0: that call; else request_id (NULL: any) within the window
 * since_ns <= occurred_at < until_ns, where until_ns 0 means no end. */
int aw_store_query_calls(aw_store *store, int64_t rowid, const char *request_id,
                         int64_t since_ns, int64_t until_ns, aw_call_row_fn fn,
                         void *ud, aw_error *err);

/* Calls stored at row from_rowid or after, in row order (rebuilding what
 * the detectors wait for after a restart). */
int aw_store_query_calls_from(aw_store *store, int64_t from_rowid,
                              aw_call_row_fn fn, void *ud, aw_error *err);

/* ---- Rejected entries ---------------------------------------------------- */

typedef struct aw_rejected_row {
    int64_t rowid;
    int64_t entry_rowid;
    const char *stream;
    const char *entry_id;
    aw_reject_reason reason;
    const char *detail;
    int64_t rejected_at_ns; /* the entry id's time */
} aw_rejected_row;

typedef int (*aw_rejected_row_fn)(const aw_rejected_row *row, void *ud);

int aw_store_query_rejected(aw_store *store, int64_t since_ns, size_t limit,
                            aw_rejected_row_fn fn, void *ud, aw_error *err);

/* ---- Alerts -------------------------------------------------------------- */

typedef enum aw_alert_state {
    AW_ALERT_OPEN = 1,
    AW_ALERT_RESOLVED = 2,
} aw_alert_state;

/* "open", "resolved"; 0 when unknown. */
const char *aw_alert_state_name(aw_alert_state state);
aw_alert_state aw_alert_state_from_name(const char *name);

/* An alert as stored and as handed to sinks. Strings are borrowed from
 * whoever fills the struct. */
typedef struct aw_alert {
    const char *id;       /* deterministic, chosen by the detectors */
    const char *kind;     /* decision_missing, ... */
    const char *severity; /* medium, high, critical */
    aw_alert_state state;
    const char *zone_id;
    const char *request_id;
    const char *anchor;        /* "agent_session:as-1", a stream, ... */
    int64_t event_time_ns;     /* occurred_at of the evidence */
    int64_t raised_at_ns;      /* detector clock when raised */
    int64_t resolved_at_ns;    /* 0 while open */
    const char *resolved_by;   /* what resolved it (an event id, an entry,
                                  a group), or NULL */
    int64_t late_ns;           /* how late the resolving evidence came */
    const char *evidence_json; /* JSON array of event/entry ids */
    const char *summary;       /* one human sentence */
    int64_t acked_at_ns;       /* 0 when nobody acknowledged it */
    const char *ack_note;
} aw_alert;

typedef enum aw_alert_change {
    AW_ALERT_UNCHANGED = 0,
    AW_ALERT_RAISED = 1,
    AW_ALERT_ESCALATED = 2, /* severity went up, or evidence grew */
    AW_ALERT_RESOLVED_NOW = 3,
    AW_ALERT_REOPENED = 4, /* resolved, then raised by later evidence */
} aw_alert_change;

/* Inserts the alert, or when its id exists raises its severity and merges
 * evidence. A resolved alert is reopened -- open again, resolution and
 * acknowledgement cleared, severity, summary and event time the new
 * raise's, evidence merged -- when the raise is about evidence of another
 * event time and brings evidence it does not hold: ids name (kind, zone,
 * anchor, request), and request ids repeat, so a gap a day later is a new
 * gap under the same id, while the same evidence raised again leaves it
 * resolved. *change tells what happened. */
int aw_store_alert_upsert(aw_store *store, const aw_alert *alert,
                          aw_alert_change *change, aw_error *err);

/* Marks an open alert resolved. *change is RESOLVED_NOW or UNCHANGED (no
 * such open alert). */
int aw_store_alert_resolve(aw_store *store, const char *id,
                           const char *resolved_by, int64_t resolved_at_ns,
                           int64_t late_ns, aw_alert_change *change,
                           aw_error *err);

/* Records that a person looked at the alert. A later ack keeps the first
 * one's time, and its note unless it brings one of its own (NULL keeps it).
 * AW_ERR_NOTFOUND if absent. */
int aw_store_alert_ack(aw_store *store, const char *id, const char *note,
                       int64_t at_ns, aw_error *err);

typedef int (*aw_alert_fn)(const aw_alert *alert, void *ud);

typedef struct aw_alert_filter {
    const char *id;
    aw_alert_state state; /* 0: any */
    const char *kind;
    const char *severity; /* at least this severe */
    const char *request_id;
    bool has_since;
    int64_t since_ns; /* raised at or after */
    size_t limit;
} aw_alert_filter;

/* Ordered by (raised_at, id). */
int aw_store_query_alerts(aw_store *store, const aw_alert_filter *filter,
                          aw_alert_fn fn, void *ud, aw_error *err);

/* ---- Raw entries, the hash chain, figures -------------------------------- */

typedef struct aw_entry_row {
    int64_t rowid;
    const char *stream;
    const char *entry_id;
    int64_t id_ms;
    const char *raw; /* msgpack, aw_raw_entry_unpack */
    size_t raw_len;
    bool truncated;
} aw_entry_row;

typedef int (*aw_entry_row_fn)(const aw_entry_row *row, void *ud);

/* Fills content_hash with the content hash (aw_audit_event.content_hash)
 * of the audit event stored from row, decoded as its owner decoded it when
 * it was stored; an error, with the reason, when it cannot. */
typedef int (*aw_event_content_fn)(const aw_entry_row *row, void *ud,
                                   unsigned char content_hash[32],
                                   aw_error *err);

/* Gives the store a way to re-read an event's content hash from its entry
 * (ud is borrowed for the life of the handle). From then on an events row
 * keeps no hash (32 bytes fewer) when its entry, stored whole just before
 * it, reproduces it; on an identity hit (same event id and occurred_at)
 * aw_store_put_event re-reads the stored event's hash with fn. Without it
 * every row keeps its hash, as rows stored before schema 12 do. */
void aw_store_set_event_content(aw_store *store, aw_event_content_fn fn,
                                void *ud);

/* Trains a new evidence dictionary over the newest entries (inside a
 * transaction); entries stored after it are compressed with it, older ones
 * keep the dictionary they were written with. The first dictionary is
 * trained by aw_store_put_entry on its own once the index holds enough
 * entries; call this when the traffic changed shape. Fails with zstd's
 * reason when the entries are too few or too alike to train on. */
int aw_store_train_dictionary(aw_store *store, aw_error *err);

/* Entries whose id time is in [since_ms, until_ms), in ingest order. raw is
 * always the verbatim entry, decompressed if it is stored compressed; a
 * stored entry that cannot be decompressed stops the walk with AW_ERR and
 * the reason. */
int aw_store_iter_entries(aw_store *store, int64_t since_ms, int64_t until_ms,
                          aw_entry_row_fn fn, void *ud, aw_error *err);

/* The one entry stored at row rowid (an aw_entry_row rowid, or the
 * entry_rowid of an event, revocation, call or rejected row): fn is called
 * once with it, and its return value is returned. AW_ERR_NOTFOUND (err set)
 * when no entry has that row id. One primary-key seek. */
int aw_store_get_entry(aw_store *store, int64_t rowid, aw_entry_row_fn fn,
                       void *ud, aw_error *err);

/* The chain value after row rowid (all zero for 0) as the index records
 * it: the row's own stored value, or for a row in an evidence block the
 * value stored before its block, re-hashed over the block's rows up to
 * rowid. AW_ERR_NOTFOUND when there is no such row, AW_ERR_BROKEN (or the
 * reason a frame cannot be read) when what it needs is damaged; the full
 * check is aw_store_verify_chain. */
int aw_store_chain_at(aw_store *store, int64_t rowid, unsigned char hash[32],
                      aw_error *err);

/* Result of re-computing the chain over every entry. */
typedef struct aw_chain_report {
    int64_t checked;
    bool ok;
    int64_t first_bad_rowid;  /* when !ok */
    char what[AW_ERRMSG_MAX]; /* "row 42 edited", "rows 9-11 missing" */
} aw_chain_report;

/* The chain head as of the last commit: *count is the row id of the last
 * chained entry (entries are numbered from 1, so it is also their number),
 * hash the chain value after it (all zero for an empty index). Together they
 * are what `verify --chain-head HASH@COUNT` checks against. Not inside a
 * transaction. */
int aw_store_chain_head(aw_store *store, int64_t *count, unsigned char hash[32],
                        aw_error *err);

/* progress (may be NULL) is called every 100,000 entries. */
int aw_store_verify_chain(aw_store *store, aw_chain_report *report,
                          void (*progress)(int64_t checked, void *ud), void *ud,
                          aw_error *err);

typedef struct aw_store_stats {
    int64_t entries, events, revocations, calls, rejected;
    int64_t alerts_open, alerts_resolved;
    int64_t oldest_event_ns, newest_event_ns; /* 0 when no event */
    int64_t file_bytes;
    int schema_version;
} aw_store_stats;

int aw_store_get_stats(aw_store *store, aw_store_stats *stats, aw_error *err);

/* name/count pairs: what is "rejected_by_reason", "open_alerts_by_kind". */
typedef int (*aw_count_fn)(const char *name, int64_t count, void *ud);
int aw_store_count_by(aw_store *store, const char *what, aw_count_fn fn,
                      void *ud, aw_error *err);

typedef int (*aw_checkpoint_fn)(const char *stream, const char *entry_id,
                                int64_t updated_at_ns, void *ud);
int aw_store_query_checkpoints(aw_store *store, aw_checkpoint_fn fn, void *ud,
                               aw_error *err);

/* ---- Verification: decoded rows without their raw entry ---------------- */

/* A row of events, revocations, calls or rejected whose entry_rowid names
 * no stored entry (the row queries above, which join the entry, never
 * return it). key is the row's event id, revoked anchor id, request id or
 * reject reason. Strings are borrowed for the call. */
typedef struct aw_orphan_row {
    const char *table;
    int64_t rowid;
    int64_t entry_rowid;
    const char *key;
} aw_orphan_row;

typedef int (*aw_orphan_row_fn)(const aw_orphan_row *row, void *ud);

/* Calls fn for every such row, table by table. One scan of each table. */
int aw_store_iter_orphans(aw_store *store, aw_orphan_row_fn fn, void *ud,
                          aw_error *err);

/* SQLite's own check of the file (PRAGMA integrity_check): every B-tree
 * well formed, and every index holding exactly its table's rows. The
 * decoded rows and the chain say nothing of an index edited in the file
 * itself, which would hide rows from the look-ups that go through it.
 * Calls fn with each problem found (the text is borrowed for the call;
 * SQLite stops after 100); none when the file is sound. */
typedef int (*aw_structure_problem_fn)(const char *problem, void *ud);
int aw_store_check_structure(aw_store *store, aw_structure_problem_fn fn,
                             void *ud, aw_error *err);

/* ---- Positions in followed access logs (run --calls-log) ----------------- */

/* Where reading PATH stands: the file (inode) being read, the bytes of it
 * consumed (just after a '\n'), and the lines read from PATH so far over
 * every file it named. */
typedef struct aw_log_position {
    int64_t inode, offset, lines;
} aw_log_position;

/* The committed position of path; *found false when it has none. */
int aw_store_get_log_position(aw_store *store, const char *path,
                              aw_log_position *out, bool *found, aw_error *err);
/* Sets it, inside the open transaction (so it commits with the calls read
 * up to it). */
int aw_store_set_log_position(aw_store *store, const char *path,
                              const aw_log_position *pos, aw_error *err);

#endif /* AW_STORE_H */
