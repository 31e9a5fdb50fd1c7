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

#include <pthread.h>
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
    STMT_REJECTED_OF_ENTRY,
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

/* The dictionaries and decompression state of evidence.c, created on
 * first use and kept for the life of the handle (the sealer has the
 * compression context). */
struct store_evidence {
    ZSTD_DCtx *dctx;
    ZSTD_CDict *cdict;        /* the newest dictionary; NULL: none yet */
    int64_t cdict_no;         /* its dict_no, 0 without one */
    int64_t trained_in_tx;    /* first dict_no the open transaction added */
    int64_t next_train_rowid; /* train once the index has this many rows */
    struct store_ddict_slot ddicts[STORE_DDICT_CACHE];
    size_t next_slot;
};

/* Evidence blocks (evidence_blocks.c, schema/0008): a block holds up to
 * STORE_BLOCK_ENTRIES consecutive rows, and is closed once its entries
 * reach STORE_BLOCK_BYTES. A writer keeps STORE_BLOCK_SLOTS of them in
 * memory: the open one it fills, and full ones the sealer
 * (evidence_sealer.c) has, or has sealed and whose rows are not written
 * yet. A block holds rows first .. first + n - 1 (first 0: a free slot)
 * and, for each, what the chain hashes: its label (stream 0x00 entry id
 * 0x00, the end of entry i's at label_ends[i]) and its verbatim bytes. */
#define STORE_BLOCK_ENTRIES 256
#define STORE_BLOCK_BYTES   (512 * 1024)
#define STORE_BLOCK_SLOTS   3
struct store_block {
    int64_t first;
    size_t n;
    uint32_t sizes[STORE_BLOCK_ENTRIES]; /* an entry is ~1 MiB at most */
    uint32_t label_ends[STORE_BLOCK_ENTRIES];
    aw_buf plain;      /* the entries, verbatim, concatenated */
    size_t kept_bytes; /* of plain, the n entries' (more: one being added) */
    aw_buf labels;     /* their labels, concatenated */
    bool unsealed;     /* holds entries no sealing has covered */
    bool unwritten;    /* sealed, and its stored row is older than that */
    /* Set by store_sealer_seal, then the sealer's until it is sealed. */
    bool sealing;            /* guarded by the sealer's lock */
    const ZSTD_CDict *cdict; /* the dictionary to compress with, or NULL */
    int64_t dict_no;         /* its number, 0 without one */
    /* What sealing made: the entries before `chained` are in the hash
     * chain, whose value after the last of them is `chain`; the frame to
     * store; or rc and err when sealing failed. */
    size_t chained;
    unsigned char chain[32];
    aw_buf frame;
    int rc;
    aw_error err;
};

/* The evidence sealer's thread and queue (evidence_sealer.c), started
 * with the first block a writer hands over. queue holds the blocks handed
 * over and not yet sealed, oldest at next; chain is the chain value after
 * the last row sealed (the sealer's while queued > 0). */
struct store_sealer {
    bool running;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t work;   /* a block was queued, or stopping was set */
    pthread_cond_t sealed; /* a block was sealed */
    struct store_block *queue[STORE_BLOCK_SLOTS];
    size_t next, queued;
    bool stopping;
    unsigned char chain[32];
    /* The thread's own. */
    ZSTD_CCtx *cctx;
    aw_buf scratch; /* what one chain step hashes */
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

/* request_tier_0 .. request_tier_4 (schema/0011, 0016, request_tiers.c). */
#define STORE_REQUEST_TIERS 5

/* What the writer knows of the request tiers but the last, as meta holds
 * it at the last commit plus this transaction's pairs. */
struct store_request_tiers {
    bool known; /* read since the handle opened, rolled back, or saw another
                   writer's commit */
    int64_t first_limit;
    int64_t rows[STORE_REQUEST_TIERS - 1];
    /* The drain cursor of each: its pairs above (key, rowid) still move to
     * the next tier; INT64_MAX, INT64_MAX when it is not draining. */
    int64_t cursor_key[STORE_REQUEST_TIERS - 1];
    int64_t cursor_rowid[STORE_REQUEST_TIERS - 1];
    int64_t added; /* pairs added to tier 0 in this transaction */
};

struct aw_store {
    sqlite3 *db;
    char *path;
    unsigned flags;
    int schema_version;

    /* Valid between aw_store_begin and commit/rollback: the last entry row
     * as this transaction has extended it, and the chain head as of the
     * blocks' last settle (store_blocks_settle). */
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

    struct store_evidence evidence;
    struct store_block blocks[STORE_BLOCK_SLOTS];
    size_t open_block; /* the slot of the block new entries go to */
    struct store_sealer sealer;

    /* Events rows of schema 11 and before keep the long id key, and none
     * occurred after long_keys_until (meta, schema/0013; INT64_MIN when
     * there are none): a later event needs no probe by the long key. Read
     * on first use; it never changes. */
    bool long_keys_read;
    int64_t long_keys_until;

    struct store_request_tiers tiers;
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
/* The hash chain: chain_i = SHA-256(chain_{i-1} || label_i || raw_i), an
 * entry's label being stream || 0x00 || entry_id || 0x00.
 * store_chain_label appends the label to buf; store_chain_prefix empties
 * buf and writes everything before raw, for the caller to append raw and
 * hash buf whole. */
int store_chain_label(aw_buf *buf, const char *stream, const char *entry_id);
int store_chain_prefix(aw_buf *buf, const unsigned char prev[32],
                       const char *stream, const char *entry_id);

/* ---- Evidence compression (evidence.c) ---------------------------------- */

/* Trains the first dictionary once the index has grown enough to have
 * samples (before an entry is added to the open block). Inside a
 * transaction. */
int store_evidence_maybe_train(aw_store *store, aw_error *err);

/* *cctx = a compression context set up for evidence frames; the caller
 * frees it with ZSTD_freeCCtx. */
int store_evidence_cctx(ZSTD_CCtx **cctx, aw_error *err);
/* Compresses plain[0..len) with cctx and cdict (NULL: none) into frame
 * (emptied first, grown as needed, owned by the caller). Touches nothing
 * else, so the sealer's thread can call it. */
int store_evidence_compress(ZSTD_CCtx *cctx, const ZSTD_CDict *cdict,
                            const char *plain, size_t len, aw_buf *frame,
                            aw_error *err);

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

/* A new entry goes into the open block in three steps, inside a
 * transaction, in row order: store_block_for_entry gives the block (a free
 * slot once the open one is full: then the block that held the slot a
 * round ago is waited for and written); the entry's label and verbatim
 * bytes are appended to its labels and plain; then store_block_keep makes
 * them row rowid's, handing the block to the sealer once it is full, or
 * store_block_drop takes them back (the entry was not stored). */
int store_block_for_entry(aw_store *store, struct store_block **out,
                          aw_error *err);
int store_block_keep(aw_store *store, struct store_block *b, int64_t rowid,
                     aw_error *err);
void store_block_drop(struct store_block *b);
/* Seals the open block if it holds entries no sealing covered, waits for
 * the sealer and writes every block whose stored row is not up to date;
 * store->head is then the chain value after the last row. Before every
 * commit, and before any entry of those blocks is read. */
int store_blocks_settle(aw_store *store, aw_error *err);
/* aw_store_begin, once the tip is read: a block that does not end at the
 * last row (another writer added rows) is not continued, and the sealer's
 * chain starts from the tip. */
void store_block_begin(aw_store *store);
/* On rollback, before the transaction's dictionary is forgotten: waits
 * for the sealer, then keeps no block (the open block's stored row, if
 * any, is gone or stale). */
void store_block_discard(aw_store *store);
/* On close: stops the sealer and frees the blocks. */
void store_block_free(aw_store *store);

/* ---- The evidence sealer (evidence_sealer.c) ---------------------------- */

/* Hands b over to the sealer thread (started on first use), to be sealed
 * with the newest dictionary after every block handed over before it.
 * Outside a transaction the sealer is always idle: a commit settles the
 * blocks, and a rollback waits for it. */
int store_sealer_seal(aw_store *store, struct store_block *b, aw_error *err);
/* Waits until b (NULL: every block handed over) is sealed. */
void store_sealer_wait(aw_store *store, const struct store_block *b);
/* While the sealer is idle: the chain value the next sealing starts from. */
void store_sealer_set_chain(aw_store *store, const unsigned char chain[32]);
/* Stops the thread, if it runs, and frees what it holds. */
void store_sealer_stop(aw_store *store);

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
/* Before a commit that added pairs: moves a full tier 0 into tier 1,
 * starts the drain of every later full tier, and moves the next slice of
 * every draining one into the tier after it. */
int store_request_tiers_settle(aw_store *store, aw_error *err);
/* On rollback, or another writer's commit: the tiers' state is read from
 * meta again on next use. */
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
