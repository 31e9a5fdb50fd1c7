/* handle.h -- the store handle and its prepared-statement cache (private to
 * store/). Every fixed statement is named in enum store_stmt, prepared on
 * first use with SQLITE_PREPARE_PERSISTENT and kept until close; event
 * queries, whose SQL depends on the filter's shape, have a cache of their
 * own (query.c). A statement handed out by store_stmt must be reset
 * (sqlite3_reset; bindings stay, every caller rebinds every parameter)
 * before the function that took it returns, so that no read
 * transaction stays open on the connection behind the caller's back. */
#ifndef AW_STORE_HANDLE_H
#define AW_STORE_HANDLE_H

#include <sqlite3.h>
#include <zstd.h>

#include "store/store.h"

enum store_stmt {
    STMT_STREAM_FIND,
    STMT_STREAM_ADD,
    STMT_TIP_GET,
    STMT_DATA_VERSION,
    STMT_TIP_SET,
    STMT_ENTRY_ADD,
    STMT_ENTRY_FIND,
    STMT_EVENT_ADD,
    STMT_EVENT_FIND,
    STMT_EVENT_MOVE,
    STMT_ANCHOR_FIND,
    STMT_ANCHOR_NAME_ADD,
    STMT_ANCHOR_RUN_ADD,
    STMT_PART_OPEN,
    STMT_PART_CLOSE,
    STMT_TERM_FIND,
    STMT_TERM_ADD,
    STMT_REVOCATION_ADD,
    STMT_DELIVERY_FIRST,
    STMT_DELIVERY_MOVE,
    STMT_CALL_ADD,
    STMT_REJECTED_ADD,
    STMT_CHECKPOINT_SET,
    STMT_META_GET,
    STMT_META_SET,
    STMT_PENDING_ADD,
    STMT_PENDING_DUE,
    STMT_PENDING_DELETE,
    STMT_REVOCATIONS_BY_ANCHOR,
    STMT_REVOCATIONS_BY_TIME,
    STMT_CALL_BY_ROWID,
    STMT_CALLS_BY_REQUEST,
    STMT_CALLS_BY_TIME,
    STMT_CALLS_FROM_ROWID,
    STMT_REJECTED_SINCE,
    STMT_ALERT_GET,
    STMT_ALERT_ADD,
    STMT_ALERT_ESCALATE,
    STMT_ALERT_REOPEN,
    STMT_ALERT_RESOLVE,
    STMT_ALERT_ACK,
    STMT_ALERTS_BY_ID,
    STMT_ALERTS_BY_REQUEST,
    STMT_ALERTS_BY_TIME,
    STMT_ENTRIES_WINDOW,
    STMT_ENTRIES_ALL,
    STMT_ENTRY_BY_ROWID,
    STMT_ENTRIES_ROWS,
    STMT_CHECKPOINTS_ALL,
    STMT_REJECTED_BY_REASON,
    STMT_OPEN_ALERTS_BY_KIND,
    STMT_STATS,
    STMT_DICT_NEWEST,
    STMT_DICT_GET,
    STMT_DICT_ADD,
    STMT_ENTRIES_AFTER,
    STMT_BLOCK_PUT,
    STMT_BLOCK_FOR_ROW,
    STMT_REQUEST_ADD,
    STMT_COUNT
};

/* One cached event query: the filter shape it was built for. */
struct store_shape_stmt {
    unsigned shape;
    size_t n_event_types;
    sqlite3_stmt *stmt;
};

#define STORE_SHAPE_CACHE 32

/* A remembered number of a numbered name (anchor_names, terms). Names are
 * never deleted, so a number stays right for as long as the transaction
 * that added it is not rolled back; the caches are emptied on rollback.
 * no 0: empty slot. Names of 52 bytes or more are not cached (they are
 * looked up each time). */
#define STORE_ANCHOR_CACHE 8192 /* slots, a power of two */
#define STORE_TERM_CACHE   1024 /* slots, a power of two */
struct store_name_slot {
    int64_t no;
    int kind;
    char id[52];
};

/* The terms number of text (store/ingest.c): added when absent if add,
 * else 0 when absent (a word never stored matches no row). */
int store_term_no(aw_store *store, const char *text, bool add, int64_t *no,
                  aw_error *err);

struct store_stream_name {
    char *name;
    int64_t stream_no;
};

/* A dictionary loaded for reading; dict_no 0: empty slot. */
#define STORE_DDICT_CACHE 4
struct store_ddict_slot {
    int64_t dict_no;
    ZSTD_DDict *ddict;
};

/* The compression state of evidence.c, created on first use and kept for
 * the life of the handle. */
struct store_evidence {
    ZSTD_CCtx *cctx;
    ZSTD_DCtx *dctx;
    ZSTD_CDict *cdict;        /* the newest dictionary; NULL: none yet */
    int64_t cdict_no;         /* its dict_no, 0 without one */
    int64_t trained_in_tx;    /* first dict_no the open transaction added */
    int64_t next_train_rowid; /* train once the index has this many rows */
    struct store_ddict_slot ddicts[STORE_DDICT_CACHE];
    size_t next_slot;
    aw_buf frame; /* the compressed form of the last entry */
};

/* Evidence blocks (evidence_blocks.c, schema/0008): a block holds up to
 * STORE_BLOCK_ENTRIES consecutive rows, and is closed once its entries
 * reach STORE_BLOCK_BYTES. The open one is the block a writer is filling:
 * rows first .. first + n - 1; first 0: none. */
#define STORE_BLOCK_ENTRIES 256
#define STORE_BLOCK_BYTES   (512 * 1024)
struct store_open_block {
    int64_t first;
    size_t n;
    uint32_t sizes[STORE_BLOCK_ENTRIES]; /* an entry is ~1 MiB at most */
    aw_buf plain;            /* the entries, verbatim, concatenated */
    unsigned char chain[32]; /* the chain value after its last entry */
    bool unwritten;          /* holds entries its stored row does not */
};

/* What a reader of raw entries keeps between rows, so that a walk in row
 * order decompresses each block once: the last block it read (rows
 * first..last, entry i at block.ptr + offsets[i]; first 0: none) and the
 * verbatim form of the last per-row frame. Owned by the caller: zeroed
 * before first use, released with store_reader_free. */
struct store_reader {
    aw_buf plain;
    aw_buf block;
    int64_t first, last;
    size_t offsets[STORE_BLOCK_ENTRIES + 1];
    unsigned char chain[32]; /* the block's chain value, after last */
};

/* The open part of the anchor index (schema/0014, anchor_index.c). */
struct store_anchor_part {
    bool known; /* read since the handle opened or last rolled back */
    bool open;  /* else the next use opens part no + 1 */
    int64_t no;
    int64_t uses, min_at, max_at; /* of its uses so far */
};

/* An anchor use stored in this transaction and not yet in a run
 * (schema/0015, anchor_index.c). */
struct store_anchor_use {
    int64_t anchor_no, event_rowid, occurred_at;
};

/* request_tier_0 .. request_tier_2 (schema/0011, request_tiers.c). */
#define STORE_REQUEST_TIERS 3

struct aw_store {
    sqlite3 *db;
    char *path;
    unsigned flags;
    int schema_version;

    /* Valid between aw_store_begin and commit/rollback: the chain head and
     * last entry row as this transaction has extended them. */
    bool in_tx;
    bool chain_dirty;
    int64_t last_rowid;
    bool last_whole; /* this handle stored the entry at last_rowid whole */
    unsigned char head[32];

    /* Stream name -> stream_no; forgotten on rollback, since a name added
     * by a rolled-back transaction no longer exists. */
    struct store_stream_name *streams;
    size_t nstreams;

    /* aw_store_set_event_content: how the owner re-reads an event's
     * content hash from its entry; NULL: rows keep their hashes. */
    aw_event_content_fn event_content;
    void *event_content_ud;

    struct store_name_slot *anchors; /* STORE_ANCHOR_CACHE, lazily */
    struct store_name_slot *terms;   /* STORE_TERM_CACHE, lazily */

    aw_buf pack; /* reused to pack entries */
    struct store_evidence evidence;
    struct store_open_block open_block;

    /* Events rows of schema 11 and before keep the long id key, and none
     * occurred after long_keys_until (meta, schema/0013; INT64_MIN when
     * there are none): a later event needs no probe by the long key. Read
     * on first use; it never changes. */
    bool long_keys_read;
    int64_t long_keys_until;

    /* Pairs in each request tier but the last (request_tiers.c), valid
     * while tiers_counted: counted on first use and after a rollback (and
     * so another writer's pairs are noticed then). */
    int64_t tier_rows[STORE_REQUEST_TIERS - 1];
    bool tiers_counted;
    struct store_anchor_part part;
    /* The open part's uses waiting for their runs, in row order; empty
     * outside a transaction. run_text is reused to write a run. */
    struct store_anchor_use *uses;
    size_t nuses, uses_cap;
    aw_buf run_text;
    /* PRAGMA data_version after this handle's last transaction: another
     * changes it by committing, and then the tier counts and the open
     * anchor part are read again. */
    int64_t data_version;
    sqlite3_stmt *stmts[STMT_COUNT];
    struct store_shape_stmt shapes[STORE_SHAPE_CACHE];
    size_t nshapes;
};

/* *out = the statement, prepared on first use; owned by the handle. */
int store_stmt(aw_store *store, enum store_stmt id, sqlite3_stmt **out,
               aw_error *err);
/* Prepares sql for the life of the handle (PERSISTENT); caller finalizes. */
int store_prepare(aw_store *store, const char *sql, sqlite3_stmt **out,
                  aw_error *err);

/* Fills err from the connection's last error and returns the matching
 * AW_ERR_* code. what names the operation ("insert event"). */
int store_fail(aw_store *store, aw_error *err, const char *what);
/* Runs sql (no parameters, no rows wanted). */
int store_exec(aw_store *store, const char *sql, aw_error *err,
               const char *what);
/* Steps a statement that returns no row, then resets it. */
int store_exec_stmt(aw_store *store, sqlite3_stmt *stmt, aw_error *err,
                    const char *what);
/* AW_ERR unless a transaction is open (writers must be inside one). */
int store_require_tx(aw_store *store, aw_error *err, const char *what);

/* Steps stmt to the end, calling row for each row; row's non-zero return
 * stops the walk and is returned. Resets stmt in every case. */
typedef int (*store_row_fn)(sqlite3_stmt *stmt, void *ctx);
int store_each_row(aw_store *store, sqlite3_stmt *stmt, store_row_fn row,
                   void *ctx, aw_error *err, const char *what);

/* What a row callback of store_each_row hands a row to. */
struct row_ctx {
    union {
        aw_event_row_fn event;
        aw_revocation_row_fn revocation;
        aw_call_row_fn call;
        aw_rejected_row_fn rejected;
        aw_alert_fn alert;
        aw_entry_row_fn entry;
        aw_count_fn count;
        aw_checkpoint_fn checkpoint;
        aw_request_fn request;
    } fn;
    void *ud;
};

/* LIMIT value for a size_t limit where 0 means none. */
int64_t store_limit(size_t limit);

/* Column text, or NULL for SQL NULL. */
const char *store_column_text(sqlite3_stmt *stmt, int col);

/* The indexed key of a random id (events.id_key, request_key): the first
 * 8 bytes of its SHA-256. A cryptographic hash, so nobody can make many ids
 * share a key and turn look-ups into scans. */
int64_t store_id_key(const char *id);
/* events.id_key from schema 12, from the id's store_id_key: its first 3
 * bytes, as a signed 24-bit value (3 bytes in a record instead of 8). It
 * only tells apart events of the same occurred_at, which are few, and
 * every look-up compares the id itself. */
int64_t store_id_time_key(int64_t id_key);

/* Event and request ids in events rows (schema/0010): 16 bytes when the
 * id is a UUID in canonical text (8-4-4-4-12 lowercase hex), which formats
 * back to the very same text, else the text itself. store_bind_id binds id
 * (NULL: SQL NULL) that way at parameter i; store_column_id reads column
 * col back as text, formatted into buf for 16 bytes. Rows written before
 * schema 10 hold UUIDs as text, so a comparison also tries the text. */
#define STORE_ID_TEXT_MAX 37
void store_bind_id(sqlite3_stmt *stmt, int i, const char *id);
const char *store_column_id(sqlite3_stmt *stmt, int col,
                            char buf[STORE_ID_TEXT_MAX]);

/* "<ms>-<seq>" into buf (at least STORE_ENTRY_ID_MAX bytes). */
#define STORE_ENTRY_ID_MAX AW_STREAM_ID_TEXT_MAX
char *store_format_entry_id(int64_t ms, int64_t seq, char *buf);

/* Appends n bytes to buf (event/'s aw_buf_append). */
int store_buf_append(aw_buf *buf, const void *bytes, size_t n);
/* The hash chain: chain_i = SHA-256(chain_{i-1} || stream || 0x00 ||
 * entry_id || 0x00 || raw). store_chain_prefix empties buf and writes
 * everything before raw; the caller appends raw and hashes buf whole, so
 * the packed entry is hashed where it was built, without a copy. */
int store_chain_prefix(aw_buf *buf, const unsigned char prev[32],
                       const char *stream, const char *entry_id);

/* ---- Evidence compression (evidence.c) ---------------------------------- */

/* Trains the first dictionary once the index has grown enough to have
 * samples (before an entry is added to the open block). Inside a
 * transaction. */
int store_evidence_maybe_train(aw_store *store, aw_error *err);

/* Compresses plain[0..len) with the newest dictionary: *frame is held by
 * the handle until the next call, *dict_no the dictionary's number (0:
 * none yet). */
int store_evidence_compress(aw_store *store, const char *plain, size_t len,
                            const char **frame, size_t *frame_len,
                            int64_t *dict_no, aw_error *err);

/* Decompresses a stored frame made with dictionary dict_no (0 none) into
 * plain (emptied first, grown as needed, owned by the caller). A frame
 * that claims more than max_plain bytes or cannot be decompressed fails
 * with AW_ERR and the reason, prefixed with what ("row 12"). */
int store_evidence_decompress(aw_store *store, const void *frame,
                              size_t frame_len, int64_t dict_no,
                              size_t max_plain, const char *what, aw_buf *plain,
                              aw_error *err);

/* Whether the entries row at stmt's current row keeps its raw bytes in an
 * evidence block (raw, column raw_col, is an empty blob). */
bool store_row_in_block(sqlite3_stmt *stmt, int raw_col);

/* The verbatim entry of row rowid, whose stored raw and zstd_dict are the
 * columns raw_col and dict_col of stmt's current row: *raw points into the
 * statement's row (verbatim rows) or into reader (per-row frames, blocks),
 * valid until reader's next use. A frame that cannot be decompressed, or a
 * block row no block holds, fails with AW_ERR and the reason. */
int store_evidence_unpack(aw_store *store, sqlite3_stmt *stmt, int raw_col,
                          int dict_col, int64_t rowid,
                          struct store_reader *reader, const char **raw,
                          size_t *raw_len, aw_error *err);

/* ---- Evidence blocks (evidence_blocks.c) -------------------------------- */

/* Adds the new entry row rowid (its verbatim bytes, and the chain value
 * after it) to the open block, writing the block once it is full. Inside
 * a transaction. */
int store_block_append(aw_store *store, int64_t rowid, const char *raw,
                       size_t len, const unsigned char chain[32],
                       aw_error *err);
/* Writes the open block's row if it holds entries the row does not:
 * before every commit, and before the open block is read. */
int store_block_flush(aw_store *store, aw_error *err);
/* aw_store_begin, once the tip is read: a block that does not end at the
 * last row (another writer added rows) is not continued. */
void store_block_begin(aw_store *store);
/* On rollback: the open block's stored row is gone or stale. */
void store_block_discard(aw_store *store);
void store_block_free(aw_store *store);

/* Entry row rowid, which is in a block: *raw points into reader. */
int store_reader_entry(aw_store *store, struct store_reader *reader,
                       int64_t rowid, const char **raw, size_t *raw_len,
                       aw_error *err);
void store_reader_free(struct store_reader *reader);

/* Called by aw_store_begin under the write lock: picks up a dictionary
 * another writer trained. */
int store_evidence_begin(aw_store *store, aw_error *err);
/* Called on commit (keep) and rollback (forget a dictionary the rolled-back
 * transaction trained). */
void store_evidence_end(aw_store *store, bool committed);
void store_evidence_free(aw_store *store);

/* ---- The request-id index in tiers (request_tiers.c) ------------------- */

/* Indexes event_rowid under request_key (the request id's store_id_key),
 * in tier 0. Inside a transaction. */
int store_request_add(aw_store *store, int64_t request_key, int64_t event_rowid,
                      aw_error *err);
/* Before a commit: moves every full tier into the next one. */
int store_request_tiers_settle(aw_store *store, aw_error *err);
/* On rollback: the tier counts are recounted on next use. */
void store_request_tiers_forget(aw_store *store);

/* ---- The anchor index in parts and runs (anchor_index.c) --------------- */

/* Makes room for the nuses uses of the event stored at event_rowid, at
 * occurred_at, in the open part, opening a part when the open one is
 * full; the uses kept so far are written as runs first when that closes a
 * part or they are many. Then store_anchor_keep each of the uses, before
 * the next event. Inside a transaction, in row order. */
int store_anchor_part(aw_store *store, int64_t occurred_at, int64_t event_rowid,
                      size_t nuses, aw_error *err);
/* Keeps one of the uses store_anchor_part made room for. */
void store_anchor_keep(aw_store *store, int64_t anchor_no, int64_t event_rowid,
                       int64_t occurred_at);
/* Writes the uses kept so far as runs: before a commit, and before a
 * look-up by anchor in the same transaction. */
int store_anchor_runs_flush(aw_store *store, aw_error *err);
/* On rollback: the kept uses are dropped, and the open part is read again
 * on next use. */
void store_anchor_index_forget(aw_store *store);

/* Releases the event query cache (query.c). */
void store_shapes_free(aw_store *store);

#endif /* AW_STORE_HANDLE_H */
