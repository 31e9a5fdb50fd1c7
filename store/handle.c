/* handle.c -- opening, migrating and closing the index; transactions; the
 * prepared-statement cache.
 *
 * The file is created by us with open(O_CREAT|O_EXCL, 0600) and then
 * fchmod'ed, so its mode is 0600 whatever the umask; SQLite gives the -wal
 * and -shm files the mode of the database. The journal is WAL: one writer
 * and any number of readers (a READONLY handle) at the same time.
 * synchronous=FULL by default, because an entry is acknowledged to Redis as
 * soon as its transaction commits and must then survive a power cut.
 *
 * Migrations are numbered; PRAGMA user_version holds the newest one applied.
 * Each runs in its own BEGIN IMMEDIATE transaction that re-reads the version
 * first, so two processes opening a fresh file at once apply each migration
 * once. An index newer than this binary is refused (AW_ERR_VERSION) rather
 * than written with assumptions that no longer hold.
 *
 * The chain head lives in the chain_tip row, written by every commit that
 * added entries; aw_store_begin re-reads it under the write lock, so
 * another writer's entries (import-calls) are chained onto, never forked.
 *
 * Page cache: bounded (STORE_WRITER_CACHE_KIB, STORE_READER_CACHE_KIB
 * below), as the daemon's resident set must stay under 64 MiB in total
 * and the rest of it grows with the traffic (zstd's code, contexts and
 * dictionaries, 2 MB: evidence.c; up to STORE_BLOCK_SLOTS evidence blocks
 * of ~0.3 MB each: evidence_blocks.c; the batches read ahead of a commit).
 * No mmap, for the same reason: mapped pages count as resident.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/handle.h"
#include "store/schema.h"

#define STORE_BUSY_TIMEOUT_MS 5000
/* The writer's page cache: 20 MB drained 1.05x as fast as 8 MB; 12 MB
 * leaves the decoded read-ahead and the detectors' revocation histories
 * room under the 64 MiB budget (DESIGN §6). */
#define STORE_WRITER_CACHE_KIB "-12000"
#define STORE_READER_CACHE_KIB "-8000"
/* Checkpoint when the WAL reaches ~32 MB rather than SQLite's 4 MB: a
 * page dirtied by several batches in a row (table tails, the recent end
 * of the anchor index, index interiors) is then copied into the database once,
 * not once per batch. Measured: ~25 % less wall time at 300k events. */
#define STORE_CHECKPOINT_PAGES "8000"

#define STREAM_NAME "(SELECT name FROM streams WHERE stream_no = n.stream_no)"
#define ALERT_COLUMNS                                                          \
    "SELECT id, kind, severity, state, zone_id, request_id, anchor, "          \
    "event_time, raised_at, resolved_at, resolved_by, late_ns, "               \
    "evidence_json, summary, acked_at, ack_note FROM alerts "
/* ?2 state (0 any), ?3 kind, ?4 minimum severity, ?5 request id,
 * ?6 raised since, ?7 limit (-1 none). */
#define ALERT_FILTER                                                           \
    " (?2 = 0 OR state = ?2) AND (?3 IS NULL OR kind = ?3) AND "               \
    "severity >= ?4 AND (?5 IS NULL OR request_id = ?5) AND "                  \
    "raised_at >= ?6 ORDER BY raised_at, id LIMIT ?7"
#define REVOCATION_COLUMNS                                                     \
    "SELECT r.rowid, r.entry_rowid, " STREAM_NAME ", n.id_ms, n.id_seq, "      \
    "r.zone_id, r.kind, r.anchor_id, r.action, r.at_ns, r.reason, "            \
    "r.epoch, r.delivery_id "                                                  \
    "FROM revocations r JOIN entries n ON n.rowid = r.entry_rowid WHERE "
#define CALL_COLUMNS                                                           \
    "SELECT c.rowid, c.entry_rowid, " STREAM_NAME ", n.id_ms, n.id_seq, "      \
    "c.request_id, c.status, c.occurred_at, c.zone_id, c.resource, "           \
    "c.source, c.is_signed, c.time_is_logged FROM calls c JOIN entries n "     \
    "ON n.rowid = c.entry_rowid WHERE "
#define ENTRY_COLUMNS                                                          \
    "SELECT n.rowid, " STREAM_NAME ", n.id_ms, n.id_seq, n.raw, "              \
    "n.orig_size, n.chain, n.zstd_dict FROM entries n "

static const char *const stmt_sql[STMT_COUNT] = {
    [STMT_STREAM_FIND] = "SELECT stream_no FROM streams WHERE name = :name",
    [STMT_STREAM_ADD] = "INSERT INTO streams(name) VALUES (:name)",
    [STMT_TIP_GET] = "SELECT last_rowid, head FROM chain_tip WHERE one = 1",
    [STMT_DATA_VERSION] = "PRAGMA data_version",
    [STMT_TIP_SET] =
        "UPDATE chain_tip SET last_rowid = ?1, head = ?2 WHERE one = 1",
    [STMT_ENTRY_ADD] =
        "INSERT INTO entries(rowid, stream_no, id_ms, id_seq, chain, "
        "orig_size, raw) VALUES (?1, ?2, ?3, ?4, X'', ?5, X'') "
        "ON CONFLICT(id_ms, id_seq, stream_no) DO NOTHING",
    [STMT_ENTRY_FIND] = "SELECT rowid FROM entries WHERE id_ms = ?1 AND "
                        "id_seq = ?2 AND stream_no = ?3",
    [STMT_EVENT_ADD] =
        "INSERT INTO events(id_key, request_key, entry_rowid, occurred_at, "
        "zone_no, type_no, decision_no, status_no, application_no, "
        "resource_no, result_class_no, session_no, agent_session_no, "
        "edge_no, upstream_status, is_signed, delegation_epoch, event_id, "
        "request_id, content_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
        "?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
    [STMT_EVENT_FIND] = "SELECT rowid, content_hash, entry_rowid FROM events "
                        "WHERE occurred_at = ?1 AND id_key = ?2 AND "
                        "(event_id = ?3 OR event_id = ?4)",
    [STMT_EVENT_MOVE] =
        "UPDATE events SET entry_rowid = ?2, content_hash = ?3, is_signed = ?4 "
        "WHERE rowid = ?1 AND (SELECT id_ms FROM entries WHERE rowid = "
        "events.entry_rowid) > (SELECT id_ms FROM entries WHERE rowid = ?2)",
    [STMT_ANCHOR_FIND] = "SELECT anchor_no FROM anchor_names WHERE "
                         "kind = :kind AND anchor_id = :name",
    [STMT_ANCHOR_NAME_ADD] =
        "INSERT INTO anchor_names(kind, anchor_id) VALUES (:kind, :name)",
    [STMT_TERM_FIND] = "SELECT term_no FROM terms WHERE term = :name",
    [STMT_TERM_ADD] = "INSERT INTO terms(term) VALUES (:name)",
    [STMT_ANCHOR_RUN_ADD] = "INSERT INTO anchor_runs(part_no, anchor_no, "
                            "first_rowid, last_rowid, min_at, max_at, "
                            "event_rows) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    /* An open part claims all time (anchor_index.c). */
    [STMT_PART_OPEN] = "INSERT INTO anchor_parts(part_no, first_rowid, "
                       "base_at, min_at, max_at) VALUES (?1, ?2, ?3, "
                       "-9223372036854775808, 9223372036854775807)",
    [STMT_PART_CLOSE] = "UPDATE anchor_parts SET min_at = ?1, max_at = ?2 "
                        "WHERE part_no = ?3",
    [STMT_REVOCATION_ADD] =
        "INSERT INTO revocations(entry_rowid, zone_id, kind, anchor_id, "
        "action, at_ns, reason, delivery_id, epoch) VALUES (?1, ?2, ?3, ?4, "
        "?5, ?6, ?7, ?8, ?9)",
    /* ?1 delivery id, ?2 zone, ?3 the entry row of the new delivery. */
    [STMT_DELIVERY_FIRST] =
        "SELECT min(r.at_ns) FROM revocations r JOIN entries n ON "
        "n.rowid = r.entry_rowid WHERE r.delivery_id = ?1 AND "
        "r.zone_id = ?2 AND n.stream_no = "
        "(SELECT stream_no FROM entries WHERE rowid = ?3)",
    /* ... and ?4 the earlier time to move every delivery to. */
    [STMT_DELIVERY_MOVE] =
        "UPDATE revocations SET at_ns = ?4 WHERE delivery_id = ?1 AND "
        "zone_id = ?2 AND at_ns > ?4 AND entry_rowid IN (SELECT rowid FROM "
        "entries WHERE stream_no = (SELECT stream_no FROM entries WHERE "
        "rowid = ?3))",
    [STMT_CALL_ADD] =
        "INSERT INTO calls(entry_rowid, request_id, status, occurred_at, "
        "zone_id, resource, source, is_signed, time_is_logged) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [STMT_REJECTED_ADD] = "INSERT INTO rejected(entry_rowid, reason, detail) "
                          "VALUES (?1, ?2, ?3)",
    [STMT_REJECTED_OF_ENTRY] =
        "SELECT 1 FROM rejected WHERE entry_rowid = ?1 LIMIT 1",
    [STMT_CHECKPOINT_SET] =
        "INSERT INTO checkpoints(stream, entry_id, updated_at) "
        "VALUES (?1, ?2, ?3) ON CONFLICT(stream) DO UPDATE SET "
        "entry_id = excluded.entry_id, updated_at = excluded.updated_at",
    [STMT_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [STMT_META_SET] = "INSERT INTO meta(key, value) VALUES (?1, ?2) "
                      "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [STMT_PENDING_ADD] = "INSERT OR IGNORE INTO pending(deadline, kind, ref) "
                         "VALUES (?1, ?2, ?3)",
    [STMT_PENDING_DUE] =
        "SELECT deadline, kind, ref FROM pending WHERE deadline <= ?1 AND "
        "(deadline, kind, ref) > (?2, ?3, ?4) "
        "ORDER BY deadline, kind, ref LIMIT ?5",
    [STMT_PENDING_DELETE] =
        "DELETE FROM pending WHERE deadline = ?1 AND kind = ?2 AND ref = ?3",
    [STMT_REVOCATIONS_BY_ANCHOR] = REVOCATION_COLUMNS
    "r.kind = ?1 AND r.anchor_id = ?2 AND (?3 IS NULL OR r.zone_id = ?3) "
    "AND r.at_ns >= ?4 AND r.at_ns < ?5 ORDER BY r.at_ns, r.rowid "
    "LIMIT ?6",
    [STMT_REVOCATIONS_BY_TIME] = REVOCATION_COLUMNS
    "(?3 IS NULL OR r.zone_id = ?3) AND r.at_ns >= ?4 AND r.at_ns < ?5 "
    "ORDER BY r.at_ns, r.rowid LIMIT ?6",
    [STMT_CALL_BY_ROWID] = CALL_COLUMNS "c.rowid = ?1",
    [STMT_CALLS_BY_REQUEST] =
        CALL_COLUMNS "c.request_id = ?1 AND c.occurred_at >= ?2 AND "
                     "c.occurred_at < ?3 ORDER BY c.occurred_at, c.rowid",
    [STMT_CALLS_BY_TIME] =
        CALL_COLUMNS "c.occurred_at >= ?2 AND c.occurred_at < ?3 "
                     "ORDER BY c.occurred_at, c.rowid",
    [STMT_CALLS_FROM_ROWID] = CALL_COLUMNS "c.rowid >= ?1 ORDER BY c.rowid",
    [STMT_REJECTED_SINCE] =
        "SELECT j.rowid, j.entry_rowid, " STREAM_NAME ", n.id_ms, n.id_seq, "
        "j.reason, j.detail FROM rejected j JOIN entries n ON "
        "n.rowid = j.entry_rowid WHERE n.id_ms >= ?1 ORDER BY j.rowid "
        "LIMIT ?2",
    [STMT_ALERT_GET] = "SELECT severity, state, evidence_json, event_time "
                       "FROM alerts WHERE id = ?1",
    [STMT_ALERT_ADD] =
        "INSERT INTO alerts(id, kind, severity, state, zone_id, request_id, "
        "anchor, event_time, raised_at, resolved_at, resolved_by, late_ns, "
        "evidence_json, summary, acked_at, ack_note) VALUES (?1, ?2, ?3, "
        "?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    [STMT_ALERT_ESCALATE] =
        "UPDATE alerts SET severity = ?2, evidence_json = ?3, "
        "summary = coalesce(?4, summary) WHERE id = ?1",
    [STMT_ALERT_REOPEN] =
        "UPDATE alerts SET severity = ?2, state = 1, event_time = ?3, "
        "raised_at = ?4, resolved_at = 0, resolved_by = NULL, late_ns = 0, "
        "evidence_json = ?5, summary = ?6, acked_at = 0, ack_note = NULL "
        "WHERE id = ?1",
    [STMT_ALERT_RESOLVE] =
        "UPDATE alerts SET state = 2, resolved_at = ?2, resolved_by = ?3, "
        "late_ns = ?4 WHERE id = ?1 AND state = 1",
    [STMT_ALERT_ACK] =
        "UPDATE alerts SET acked_at = CASE WHEN acked_at > 0 THEN acked_at "
        "ELSE ?2 END, "
        "ack_note = coalesce(?3, ack_note) WHERE id = ?1",
    [STMT_ALERTS_BY_ID] = ALERT_COLUMNS "WHERE id = ?1 AND" ALERT_FILTER,
    [STMT_ALERTS_BY_REQUEST] =
        ALERT_COLUMNS "WHERE request_id = ?5 AND" ALERT_FILTER,
    [STMT_ALERTS_BY_TIME] = ALERT_COLUMNS "WHERE" ALERT_FILTER,
    [STMT_ENTRIES_WINDOW] =
        ENTRY_COLUMNS "WHERE n.id_ms >= ?1 AND n.id_ms < ?2 ORDER BY n.rowid",
    [STMT_ENTRIES_ALL] = ENTRY_COLUMNS "ORDER BY n.rowid",
    [STMT_ENTRY_BY_ROWID] = ENTRY_COLUMNS "WHERE n.rowid = ?1",
    [STMT_ENTRIES_ROWS] =
        ENTRY_COLUMNS "WHERE n.rowid BETWEEN ?1 AND ?2 ORDER BY n.rowid",
    [STMT_CHECKPOINTS_ALL] =
        "SELECT stream, entry_id, updated_at FROM checkpoints ORDER BY stream",
    [STMT_REJECTED_BY_REASON] = "SELECT reason, count(*) FROM rejected "
                                "GROUP BY reason ORDER BY reason",
    [STMT_OPEN_ALERTS_BY_KIND] = "SELECT kind, count(*) FROM alerts WHERE "
                                 "state = 1 GROUP BY kind ORDER BY kind",
    /* The big tables are append-only and their rowids contiguous, so
     * max(rowid) is the row count at the cost of one seek. */
    [STMT_STATS] =
        "SELECT (SELECT max(rowid) FROM entries), "
        "(SELECT max(rowid) FROM events), "
        "(SELECT max(rowid) FROM revocations), "
        "(SELECT max(rowid) FROM calls), (SELECT max(rowid) FROM rejected), "
        "(SELECT count(*) FROM alerts WHERE state = 1), "
        "(SELECT count(*) FROM alerts WHERE state = 2), "
        "(SELECT min(occurred_at) FROM events), "
        "(SELECT max(occurred_at) FROM events), "
        "(SELECT page_count * page_size FROM pragma_page_count(), "
        "pragma_page_size())",
    [STMT_DICT_NEWEST] = "SELECT max(dict_no) FROM evidence_dicts",
    [STMT_DICT_GET] = "SELECT dict FROM evidence_dicts WHERE dict_no = ?1",
    [STMT_DICT_ADD] = "INSERT INTO evidence_dicts(zstd_id, trained_at, "
                      "samples, dict) VALUES (?1, ?2, ?3, ?4)",
    [STMT_ENTRIES_AFTER] = "SELECT rowid, raw, zstd_dict FROM entries "
                           "WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
    [STMT_BLOCK_PUT] =
        "INSERT OR REPLACE INTO evidence_blocks(first_rowid, last_rowid, "
        "zstd_dict, chain, frame) VALUES (?1, ?2, ?3, ?4, ?5)",
    [STMT_REQUEST_ADD] = "INSERT INTO request_tier_0(request_key, event_rowid) "
                         "VALUES (?1, ?2)",
    [STMT_BLOCK_FOR_ROW] =
        "SELECT first_rowid, last_rowid, zstd_dict, chain, frame FROM "
        "evidence_blocks WHERE first_rowid <= ?1 ORDER BY first_rowid DESC "
        "LIMIT 1",
};

/* ---- Small helpers shared by store/ ------------------------------------- */

int store_fail(aw_store *store, aw_error *err, const char *what)
{
    int rc = sqlite3_errcode(store->db);
    int code = AW_ERR;
    switch (rc & 0xff) {
    case SQLITE_NOMEM: code = AW_ERR_NOMEM; break;
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN: code = AW_ERR_IO; break;
    case SQLITE_FULL: code = AW_ERR_FULL; break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: code = AW_ERR_BUSY; break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_READONLY: code = AW_ERR_BROKEN; break;
    case SQLITE_CONSTRAINT: code = AW_ERR_CONFLICT; break;
    default: break;
    }
    return aw_error_set(err, code, "%s: %s", what, sqlite3_errmsg(store->db));
}

int store_exec_stmt(aw_store *store, sqlite3_stmt *stmt, aw_error *err,
                    const char *what)
{
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE)
        return store_fail(store, err, what);
    return AW_OK;
}

int store_require_tx(aw_store *store, aw_error *err, const char *what)
{
    if (!store->in_tx)
        return aw_error_set(err, AW_ERR,
                            "%s: no transaction is open "
                            "(call aw_store_begin first)",
                            what);
    return AW_OK;
}

int store_each_row(aw_store *store, sqlite3_stmt *stmt, store_row_fn row,
                   void *ctx, aw_error *err, const char *what)
{
    int step = SQLITE_DONE, rc = AW_OK;
    while (rc == AW_OK && (step = sqlite3_step(stmt)) == SQLITE_ROW)
        rc = row(stmt, ctx);
    if (rc == AW_OK && step != SQLITE_DONE)
        rc = store_fail(store, err, what);
    sqlite3_reset(stmt);
    return rc;
}

int64_t store_limit(size_t limit)
{
    return limit == 0 || limit > INT64_MAX ? -1 : (int64_t)limit;
}

const char *store_column_text(sqlite3_stmt *stmt, int col)
{
    return (const char *)sqlite3_column_text(stmt, col);
}

int64_t store_id_key(const char *id)
{
    return (int64_t)aw_id_digest(id);
}

int64_t store_id_time_key(int64_t id_key)
{
    uint64_t top24 = (uint64_t)id_key >> 40;
    return (int64_t)top24 - (1 << 23);
}

/* Where the hex digits of a canonical UUID are, and its dashes. */
static bool uuid_dash_at(size_t i)
{
    return i == 8 || i == 13 || i == 18 || i == 23;
}

/* The value of a lowercase hex digit, or -1: uppercase stays text, so that
 * the id reads back exactly as it came. */
static int uuid_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static bool uuid_pack(const char *id, unsigned char out[16])
{
    size_t n = 0;
    for (size_t i = 0; i < STORE_ID_TEXT_MAX - 1; i++) {
        if (uuid_dash_at(i)) {
            if (id[i] != '-')
                return false;
            continue;
        }
        int d = uuid_digit(id[i]);
        if (d < 0)
            return false;
        out[n / 2] = (unsigned char)(n % 2 ? out[n / 2] | d : d << 4);
        n++;
    }
    return id[STORE_ID_TEXT_MAX - 1] == 0;
}

void store_bind_id(sqlite3_stmt *stmt, int i, const char *id)
{
    unsigned char uuid[16];
    if (id == NULL)
        sqlite3_bind_null(stmt, i);
    else if (uuid_pack(id, uuid))
        sqlite3_bind_blob(stmt, i, uuid, 16, SQLITE_TRANSIENT);
    else
        sqlite3_bind_text(stmt, i, id, -1, SQLITE_STATIC);
}

const char *store_column_id(sqlite3_stmt *stmt, int col,
                            char buf[STORE_ID_TEXT_MAX])
{
    if (sqlite3_column_type(stmt, col) != SQLITE_BLOB ||
        sqlite3_column_bytes(stmt, col) != 16)
        return store_column_text(stmt, col);
    static const char digits[] = "0123456789abcdef";
    const unsigned char *uuid = sqlite3_column_blob(stmt, col);
    size_t n = 0;
    for (size_t i = 0; i < STORE_ID_TEXT_MAX - 1; i++)
        buf[i] = uuid_dash_at(i) ? '-'
                 : n % 2         ? digits[uuid[n++ / 2] & 0xf]
                                 : digits[uuid[n++ / 2] >> 4];
    buf[STORE_ID_TEXT_MAX - 1] = 0;
    return buf;
}

char *store_format_entry_id(int64_t ms, int64_t seq, char *buf)
{
    return aw_stream_id_format((aw_stream_id){(uint64_t)ms, (uint64_t)seq},
                               buf);
}

int store_buf_append(aw_buf *buf, const void *bytes, size_t n)
{
    return aw_buf_append(buf, bytes, n);
}

int store_chain_label(aw_buf *buf, const char *stream, const char *entry_id)
{
    /* Both with their NUL: neither holds one (aw_store_put_entry). */
    if (store_buf_append(buf, stream, strlen(stream) + 1) != AW_OK ||
        store_buf_append(buf, entry_id, strlen(entry_id) + 1) != AW_OK)
        return AW_ERR_NOMEM;
    return AW_OK;
}

int store_chain_prefix(aw_buf *buf, const unsigned char prev[32],
                       const char *stream, const char *entry_id)
{
    buf->len = 0;
    if (store_buf_append(buf, prev, 32) != AW_OK)
        return AW_ERR_NOMEM;
    return store_chain_label(buf, stream, entry_id);
}

int store_prepare(aw_store *store, const char *sql, sqlite3_stmt **out,
                  aw_error *err)
{
    *out = NULL;
    if (sqlite3_prepare_v3(store->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out,
                           NULL) != SQLITE_OK)
        return store_fail(store, err, "prepare statement");
    return AW_OK;
}

int store_stmt(aw_store *store, enum store_stmt id, sqlite3_stmt **out,
               aw_error *err)
{
    assert(id < STMT_COUNT && stmt_sql[id] != NULL);
    if (store->stmts[id] == NULL) {
        int rc = store_prepare(store, stmt_sql[id], &store->stmts[id], err);
        if (rc != AW_OK)
            return rc;
    }
    *out = store->stmts[id];
    return AW_OK;
}

/* ---- Open and migrate ----------------------------------------------------- */

/* Creates the file 0600 if absent; an existing file keeps its mode. */
static int store_create_file(const char *path, aw_error *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            return AW_OK;
        return aw_error_set(err, AW_ERR_IO, "cannot create index %s: %s", path,
                            strerror(errno));
    }
    /* The umask may have taken bits away from 0600; put them back. */
    int rc = fchmod(fd, 0600);
    int saved = errno;
    close(fd);
    if (rc != 0)
        return aw_error_set(err, AW_ERR_IO, "cannot set mode 0600 on %s: %s",
                            path, strerror(saved));
    return AW_OK;
}

int store_exec(aw_store *store, const char *sql, aw_error *err,
               const char *what)
{
    if (sqlite3_exec(store->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return store_fail(store, err, what);
    return AW_OK;
}

static int store_user_version(aw_store *store, int *version, aw_error *err)
{
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(store->db, "PRAGMA user_version", -1, &stmt, NULL) !=
        SQLITE_OK)
        return store_fail(store, err, "read schema version");
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        *version = sqlite3_column_int(stmt, 0);
    sqlite3_finalize(stmt);
    if (rc != SQLITE_ROW)
        return store_fail(store, err, "read schema version");
    return AW_OK;
}

static int store_newest_version(void)
{
    assert(aw_schema_migration_count > 0);
    return aw_schema_migrations[aw_schema_migration_count - 1].version;
}

static int store_too_new(aw_store *store, int have, aw_error *err)
{
    return aw_error_set(err, AW_ERR_VERSION,
                        "index %s has schema version %d, newer than the %d "
                        "this auditwatch knows: use a newer auditwatch",
                        store->path, have, store_newest_version());
}

/* Applies the first migration newer than the file's version, under the
 * write lock. *applied is false when there was none left. */
static int store_migrate_one(aw_store *store, bool *applied, aw_error *err)
{
    *applied = false;
    int rc = store_exec(store, "BEGIN IMMEDIATE", err, "begin migration");
    if (rc != AW_OK)
        return rc;
    int have = 0;
    rc = store_user_version(store, &have, err);
    if (rc == AW_OK && have > store_newest_version())
        rc = store_too_new(store, have, err);
    const struct aw_schema_migration *next = NULL;
    for (size_t i = 0; rc == AW_OK && i < aw_schema_migration_count; i++) {
        if (aw_schema_migrations[i].version > have) {
            next = &aw_schema_migrations[i];
            break;
        }
    }
    if (rc == AW_OK && next != NULL) {
        char what[128];
        snprintf(what, sizeof what, "apply migration %s", next->name);
        rc = store_exec(store, next->sql, err, what);
        if (rc == AW_OK) {
            char pragma[64];
            snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d",
                     next->version);
            rc = store_exec(store, pragma, err, what);
        }
    }
    if (rc == AW_OK)
        rc = store_exec(store, "COMMIT", err, "commit migration");
    if (rc != AW_OK) {
        sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    *applied = next != NULL;
    return AW_OK;
}

/* A database with tables of its own and no schema version is somebody
 * else's (a typo in --db, say): migrating it would add our tables to it. */
static int store_check_ours(aw_store *store, aw_error *err)
{
    int version = 0;
    int rc = store_user_version(store, &version, err);
    if (rc != AW_OK || version != 0)
        return rc;
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(store->db, "SELECT count(*) FROM sqlite_master", -1,
                           &stmt, NULL) != SQLITE_OK)
        return store_fail(store, err, "read the index's tables");
    int step = sqlite3_step(stmt);
    int64_t objects = step == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : 0;
    if (step != SQLITE_ROW)
        rc = store_fail(store, err, "read the index's tables");
    else if (objects > 0)
        rc = aw_error_set(err, AW_ERR_VERSION,
                          "%s is a SQLite database but not an auditwatch "
                          "index (it has tables and no schema version); "
                          "it was left as it is",
                          store->path);
    sqlite3_finalize(stmt);
    return rc;
}

static int store_migrate(aw_store *store, aw_error *err)
{
    int have = 0;
    int rc = store_user_version(store, &have, err);
    if (rc != AW_OK)
        return rc;
    if (have > store_newest_version())
        return store_too_new(store, have, err);
    if (have < store_newest_version()) {
        if (store->flags & AW_STORE_READONLY)
            return aw_error_set(err, AW_ERR_VERSION,
                                "index %s has schema version %d, older than "
                                "%d: open it once for writing (auditwatch "
                                "run) to migrate it",
                                store->path, have, store_newest_version());
        bool applied = true;
        while (applied) {
            rc = store_migrate_one(store, &applied, err);
            if (rc != AW_OK)
                return rc;
        }
    }
    store->schema_version = store_newest_version();
    return AW_OK;
}

/* Switches to WAL, or fails: readers beside the writer depend on it. */
static int store_use_wal(aw_store *store, aw_error *err)
{
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(store->db, "PRAGMA journal_mode = WAL", -1, &stmt,
                           NULL) != SQLITE_OK)
        return store_fail(store, err, "switch index to WAL");
    int step = sqlite3_step(stmt);
    const char *mode = step == SQLITE_ROW ? store_column_text(stmt, 0) : NULL;
    int rc = AW_OK;
    if (step != SQLITE_ROW)
        rc = store_fail(store, err, "switch index to WAL");
    else if (mode == NULL || strcmp(mode, "wal") != 0)
        rc = aw_error_set(err, AW_ERR_IO,
                          "index %s cannot use a WAL journal "
                          "(journal mode stays %s)",
                          store->path, mode ? mode : "unknown");
    sqlite3_finalize(stmt);
    return rc;
}

static int store_configure(aw_store *store, aw_error *err)
{
    sqlite3_busy_timeout(store->db, STORE_BUSY_TIMEOUT_MS);
    if (store->flags & AW_STORE_READONLY)
        return store_exec(store, "PRAGMA cache_size = " STORE_READER_CACHE_KIB,
                          err, "configure index");
    int rc = store_use_wal(store, err);
    if (rc == AW_OK)
        rc = store_exec(store,
                        (store->flags & AW_STORE_SYNC_NORMAL)
                            ? "PRAGMA synchronous = NORMAL"
                            : "PRAGMA synchronous = FULL",
                        err, "configure index");
    if (rc == AW_OK)
        rc = store_exec(store,
                        "PRAGMA cache_size = " STORE_WRITER_CACHE_KIB "; "
                        "PRAGMA wal_autocheckpoint = " STORE_CHECKPOINT_PAGES,
                        err, "configure index");
    return rc;
}

/* SQLite counts every allocation under a global mutex (two lock round
 * trips per malloc/free) unless told otherwise, and nothing here reads the
 * counts. The setting must come before SQLite initializes, once per
 * process; when something else initialized SQLite first it is refused and
 * the counts stay on, which changes nothing but speed. */
static pthread_once_t sqlite_once = PTHREAD_ONCE_INIT;

static void store_configure_sqlite(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

/* A read-only index on read-only media (an evidence copy, a snapshot
 * mounted read-only): a WAL reader must create the -shm file it shares with
 * the writer, cannot, and SQLite refuses to read. With no -wal file beside
 * it nobody is writing and every page is in the file itself, so it is read
 * as immutable: no lock, no shared memory. Only then: an index being
 * written must be read through its WAL. */
static bool store_needs_immutable(const aw_store *store)
{
    char wal[PATH_MAX];
    int code = sqlite3_errcode(store->db) & 0xff;
    return (store->flags & AW_STORE_READONLY) &&
           (code == SQLITE_READONLY || code == SQLITE_CANTOPEN) &&
           snprintf(wal, sizeof wal, "%s-wal", store->path) < (int)sizeof wal &&
           access(wal, F_OK) != 0 && errno == ENOENT &&
           access(store->path, R_OK) == 0;
}

/* "file:<path>?immutable=1", the path percent-encoded where a URI would
 * read it otherwise. */
static char *store_immutable_uri(const char *path)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t len = strlen(path);
    char *uri = malloc(3 * len + sizeof "file:?immutable=1");
    if (uri == NULL)
        return NULL;
    char *p = uri + sprintf(uri, "file:");
    for (const unsigned char *c = (const unsigned char *)path; *c; c++) {
        if (*c == '?' || *c == '#' || *c == '%' || *c < 0x20) {
            *p++ = '%';
            *p++ = hex[*c >> 4];
            *p++ = hex[*c & 15];
        } else {
            *p++ = (char)*c;
        }
    }
    strcpy(p, "?immutable=1");
    return uri;
}

static int store_reopen_immutable(aw_store *store, aw_error *err)
{
    char *uri = store_immutable_uri(store->path);
    if (uri == NULL)
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    sqlite3_close(store->db);
    store->db = NULL;
    int rc = sqlite3_open_v2(uri, &store->db,
                             SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX |
                                 SQLITE_OPEN_URI,
                             NULL) == SQLITE_OK
                 ? store_check_ours(store, err)
                 : aw_error_set(
                       err, AW_ERR_IO, "cannot open index %s: %s", store->path,
                       store->db ? sqlite3_errmsg(store->db) : "out of memory");
    free(uri);
    return rc;
}

int aw_store_open(const char *path, unsigned flags, aw_store **out,
                  aw_error *err)
{
    *out = NULL;
    pthread_once(&sqlite_once, store_configure_sqlite);
    bool readonly = (flags & AW_STORE_READONLY) != 0;
    if (!readonly && !(flags & AW_STORE_EXISTING)) {
        int rc = store_create_file(path, err);
        if (rc != AW_OK)
            return rc;
    }
    aw_store *store = calloc(1, sizeof *store);
    if (store == NULL || (store->path = strdup(path)) == NULL) {
        free(store);
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    }
    store->flags = flags;
    int oflags = (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) |
                 SQLITE_OPEN_NOMUTEX;
    int rc = AW_OK;
    if (sqlite3_open_v2(path, &store->db, oflags, NULL) != SQLITE_OK) {
        rc = aw_error_set(err, AW_ERR_IO, "cannot open index %s: %s", path,
                          store->db ? sqlite3_errmsg(store->db)
                                    : "out of memory");
    }
    if (rc == AW_OK && (rc = store_check_ours(store, err)) != AW_OK &&
        store_needs_immutable(store))
        rc = store_reopen_immutable(store, err);
    if (rc == AW_OK)
        rc = store_configure(store, err);
    if (rc == AW_OK)
        rc = store_migrate(store, err);
    if (rc != AW_OK) {
        aw_store_close(store);
        return rc;
    }
    *out = store;
    return AW_OK;
}

void aw_store_close(aw_store *store)
{
    if (store == NULL)
        return;
    aw_store_rollback(store);
    for (size_t i = 0; i < STMT_COUNT; i++)
        sqlite3_finalize(store->stmts[i]);
    store_shapes_free(store);
    for (size_t i = 0; i < store->nstreams; i++)
        free(store->streams[i].name);
    free(store->streams);
    free(store->anchors);
    free(store->terms);
    free(store->uses);
    aw_buf_free(&store->run_text);
    store_block_free(store);
    store_evidence_free(store);
    sqlite3_close(store->db);
    free(store->path);
    free(store);
}

int aw_store_schema_version(aw_store *store)
{
    return store->schema_version;
}

int aw_store_set_max_pages(aw_store *store, int64_t max_pages, aw_error *err)
{
    char sql[64];
    if (max_pages < 0)
        return aw_error_set(err, AW_ERR_INVALID, "page limit must be >= 0");
    /* A PRAGMA takes no bound parameter; the value is a formatted integer. */
    snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld",
             (long long)(max_pages ? max_pages : 4294967294LL));
    return store_exec(store, sql, err, "set page limit");
}

/* ---- Transactions --------------------------------------------------------- */

int aw_store_begin(aw_store *store, aw_error *err)
{
    if (store->in_tx)
        return aw_error_set(err, AW_ERR, "a transaction is already open");
    if (store->flags & AW_STORE_READONLY)
        return aw_error_set(err, AW_ERR, "index %s was opened read-only",
                            store->path);
    int rc = store_exec(store, "BEGIN IMMEDIATE", err, "begin transaction");
    if (rc != AW_OK)
        return rc;
    sqlite3_stmt *version, *tip;
    rc = store_stmt(store, STMT_DATA_VERSION, &version, err);
    if (rc == AW_OK) {
        int64_t was = store->data_version;
        rc = sqlite3_step(version) == SQLITE_ROW
                 ? AW_OK
                 : store_fail(store, err, "read data version");
        store->data_version = sqlite3_column_int64(version, 0);
        sqlite3_reset(version);
        if (store->data_version != was) {
            store_request_tiers_forget(store);
            store_anchor_index_forget(store);
        }
    }
    if (rc == AW_OK)
        rc = store_stmt(store, STMT_TIP_GET, &tip, err);
    if (rc != AW_OK) {
        sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    rc = sqlite3_step(tip);
    if (rc == SQLITE_ROW && sqlite3_column_bytes(tip, 1) == 32) {
        store->last_rowid = sqlite3_column_int64(tip, 0);
        store->last_whole = false;
        memcpy(store->head, sqlite3_column_blob(tip, 1), 32);
        rc = AW_OK;
    } else if (rc == SQLITE_ROW) {
        rc = aw_error_set(err, AW_ERR, "index %s: chain tip is damaged",
                          store->path);
    } else {
        rc = store_fail(store, err, "read chain tip");
    }
    sqlite3_reset(tip);
    if (rc == AW_OK)
        rc = store_evidence_begin(store, err);
    if (rc != AW_OK) {
        sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    store_block_begin(store);
    store->in_tx = true;
    store->chain_dirty = false;
    return AW_OK;
}

int aw_store_commit(aw_store *store, aw_error *err)
{
    int rc = store_require_tx(store, err, "commit");
    if (rc != AW_OK)
        return rc;
    rc = store_blocks_settle(store, err);
    if (rc == AW_OK)
        rc = store_anchor_runs_flush(store, err);
    if (rc == AW_OK)
        rc = store_request_tiers_settle(store, err);
    if (rc == AW_OK && store->chain_dirty) {
        sqlite3_stmt *tip;
        rc = store_stmt(store, STMT_TIP_SET, &tip, err);
        if (rc == AW_OK) {
            sqlite3_bind_int64(tip, 1, store->last_rowid);
            sqlite3_bind_blob(tip, 2, store->head, 32, SQLITE_STATIC);
            rc = store_exec_stmt(store, tip, err, "write chain tip");
        }
    }
    if (rc == AW_OK)
        rc = store_exec(store, "COMMIT", err, "commit");
    if (rc != AW_OK) {
        aw_store_rollback(store);
        return rc;
    }
    store->in_tx = false;
    store_evidence_end(store, true);
    return AW_OK;
}

int aw_store_read_snapshot(aw_store *store, aw_error *err)
{
    if (!(store->flags & AW_STORE_READONLY))
        return aw_error_set(err, AW_ERR,
                            "a read snapshot needs a read-only handle");
    int rc = store_exec(store, "BEGIN", err, "begin a read snapshot");
    /* SQLite takes the snapshot at the first read, not at BEGIN */
    if (rc == AW_OK)
        rc = store_exec(store, "SELECT count(*) FROM sqlite_master", err,
                        "begin a read snapshot");
    if (rc != AW_OK)
        aw_store_rollback(store);
    return rc;
}

void aw_store_rollback(aw_store *store)
{
    if (store->db != NULL && !sqlite3_get_autocommit(store->db))
        sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
    if (store->in_tx) {
        for (size_t i = 0; i < store->nstreams; i++)
            free(store->streams[i].name);
        store->nstreams = 0;
        if (store->anchors != NULL)
            memset(store->anchors, 0,
                   STORE_ANCHOR_CACHE * sizeof *store->anchors);
        store_block_discard(store);
        store_evidence_end(store, false);
        store_request_tiers_forget(store);
        store_anchor_index_forget(store);
        if (store->terms != NULL)
            memset(store->terms, 0, STORE_TERM_CACHE * sizeof *store->terms);
    }
    store->in_tx = false;
}
