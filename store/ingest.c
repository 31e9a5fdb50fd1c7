/* ingest.c -- everything the consumer writes inside one batch transaction:
 * raw entries (chained), decoded events with their anchors, revocations,
 * observed calls, rejections, checkpoints, meta counters and the pending
 * detector deadlines.
 *
 * Idempotence: an entry is inserted with ON CONFLICT DO NOTHING on its
 * (stream, id) key, and only when that changed no row (a redelivery) is the
 * existing row looked up. An event is first looked up by its identity, the
 * id key and occurred_at (the events table has no unique text index, see
 * schema), and its content hash compared; writers are serialised by BEGIN
 * IMMEDIATE, so look-up then insert cannot race. The entry's packed form is
 * built right behind the chain prefix in one reused buffer, so hashing it
 * into the chain costs no copy; the chain covers those verbatim bytes, and
 * they are kept, with the chain value, by the open evidence block
 * (evidence_blocks.c), which compresses them with its neighbours. Stream
 * names, anchor names and the repeated words of an event (zone, type,
 * decision, ...: terms) are numbered dictionaries (see schema), with the
 * numbers remembered in the handle, so a known name costs no look-up
 * query; an events row holds numbers, not those texts.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/handle.h"

/* Rows visited per read of the pending table. */
#define PENDING_CHUNK 256

static void store_bind_name(sqlite3_stmt *stmt, int kind, const char *name)
{
    int kind_at = sqlite3_bind_parameter_index(stmt, ":kind");
    if (kind_at > 0)
        sqlite3_bind_int(stmt, kind_at, kind);
    sqlite3_bind_text(stmt, sqlite3_bind_parameter_index(stmt, ":name"), name,
                      -1, SQLITE_STATIC);
}

/* The number of a name in a dictionary table (streams, anchor_names,
 * terms), added if absent -- or, add_id STORE_FIND_ONLY, 0 if absent. find
 * and add bind :name and, if they have it, :kind. */
#define STORE_FIND_ONLY STMT_COUNT
static int store_name_no(aw_store *store, enum store_stmt find_id,
                         enum store_stmt add_id, int kind, const char *name,
                         int64_t *no, aw_error *err)
{
    sqlite3_stmt *find, *add;
    int rc = store_stmt(store, find_id, &find, err);
    if (rc != AW_OK)
        return rc;
    store_bind_name(find, kind, name);
    int step = sqlite3_step(find);
    if (step == SQLITE_ROW)
        *no = sqlite3_column_int64(find, 0);
    sqlite3_reset(find);
    if (step == SQLITE_ROW)
        return AW_OK;
    if (step != SQLITE_DONE)
        return store_fail(store, err, "look up name");
    *no = 0;
    if (add_id == STORE_FIND_ONLY ||
        (rc = store_stmt(store, add_id, &add, err)) != AW_OK)
        return rc;
    store_bind_name(add, kind, name);
    rc = store_exec_stmt(store, add, err, "store name");
    if (rc == AW_OK)
        *no = sqlite3_last_insert_rowid(store->db);
    return rc;
}

static int store_stream_no(aw_store *store, const char *name, int64_t *no,
                           aw_error *err)
{
    for (size_t i = 0; i < store->nstreams; i++) {
        if (strcmp(store->streams[i].name, name) == 0) {
            *no = store->streams[i].stream_no;
            return AW_OK;
        }
    }
    int rc = store_name_no(store, STMT_STREAM_FIND, STMT_STREAM_ADD, 0, name,
                           no, err);
    if (rc != AW_OK)
        return rc;
    struct store_stream_name *grown =
        realloc(store->streams, (store->nstreams + 1) * sizeof *grown);
    if (grown != NULL)
        store->streams = grown;
    char *copy = grown != NULL ? strdup(name) : NULL;
    if (copy == NULL)
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    store->streams[store->nstreams++] = (struct store_stream_name){copy, *no};
    return AW_OK;
}

/* Appends the packed form of entry with every value cut to
 * AW_MAX_VALUE_BYTES. */
static int store_pack_truncated(const aw_raw_entry *entry, aw_buf *out,
                                aw_error *err)
{
    aw_field *fields =
        calloc(entry->nfields ? entry->nfields : 1, sizeof *fields);
    if (fields == NULL)
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < entry->nfields; i++) {
        fields[i] = entry->fields[i];
        if (fields[i].value.len > AW_MAX_VALUE_BYTES)
            fields[i].value.len = AW_MAX_VALUE_BYTES;
    }
    aw_raw_entry *cut = NULL;
    int rc = aw_raw_entry_new(entry->stream, entry->id, fields, entry->nfields,
                              &cut, err);
    free(fields);
    if (rc == AW_OK)
        rc = aw_raw_entry_pack(cut, out, err);
    aw_raw_entry_free(cut);
    return rc;
}

static int store_find_entry(aw_store *store, const aw_raw_entry *entry,
                            int64_t stream_no, int64_t *rowid, aw_error *err)
{
    sqlite3_stmt *find;
    int rc = store_stmt(store, STMT_ENTRY_FIND, &find, err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_int64(find, 1, (int64_t)entry->id_ms);
    sqlite3_bind_int64(find, 2, (int64_t)entry->id_seq);
    sqlite3_bind_int64(find, 3, stream_no);
    int step = sqlite3_step(find);
    if (step == SQLITE_ROW)
        *rowid = sqlite3_column_int64(find, 0);
    sqlite3_reset(find);
    if (step == SQLITE_ROW)
        return AW_OK;
    if (step == SQLITE_DONE)
        return aw_error_set(err, AW_ERR,
                            "entry %s of %s was refused but is "
                            "not stored (row %lld taken?)",
                            entry->id.ptr, entry->stream.ptr,
                            (long long)store->last_rowid + 1);
    return store_fail(store, err, "look up entry");
}

int aw_store_put_entry(aw_store *store, const aw_raw_entry *entry,
                       int64_t *rowid, aw_put_result *result, aw_error *err)
{
    int rc = store_require_tx(store, err, "store entry");
    if (rc != AW_OK)
        return rc;
    if (memchr(entry->stream.ptr, 0, entry->stream.len) != NULL)
        return aw_error_reject(err, AW_REJECT_EMBEDDED_NUL,
                               "stream name holds a NUL byte");
    int64_t stream_no = 0;
    rc = store_stream_no(store, entry->stream.ptr, &stream_no, err);
    if (rc != AW_OK)
        return rc;

    /* Training reads the newest entries, so it goes before this one is
     * added to a block. */
    rc = store_evidence_maybe_train(store, err);
    struct store_block *b = NULL;
    if (rc == AW_OK)
        rc = store_block_for_entry(store, &b, err);
    if (rc != AW_OK)
        return rc;
    char id[STORE_ENTRY_ID_MAX];
    store_format_entry_id((int64_t)entry->id_ms, (int64_t)entry->id_seq, id);
    if (store_chain_label(&b->labels, entry->stream.ptr, id) != AW_OK) {
        store_block_drop(b);
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    }
    size_t raw_off = b->plain.len;
    rc = aw_raw_entry_pack(entry, &b->plain, err);
    size_t orig_size = b->plain.len - raw_off;
    bool truncated = rc == AW_OK && orig_size > AW_STORE_MAX_RAW_BYTES;
    if (truncated) {
        b->plain.len = raw_off;
        rc = store_pack_truncated(entry, &b->plain, err);
    }

    /* raw and chain stay empty: both are kept by the entry's block. */
    sqlite3_stmt *add;
    if (rc == AW_OK)
        rc = store_stmt(store, STMT_ENTRY_ADD, &add, err);
    if (rc != AW_OK) {
        store_block_drop(b);
        return rc;
    }
    int bind = sqlite3_bind_int64(add, 1, store->last_rowid + 1);
    bind |= sqlite3_bind_int64(add, 2, stream_no);
    bind |= sqlite3_bind_int64(add, 3, (int64_t)entry->id_ms);
    bind |= sqlite3_bind_int64(add, 4, (int64_t)entry->id_seq);
    bind |= truncated ? sqlite3_bind_int64(add, 5, (int64_t)orig_size)
                      : sqlite3_bind_null(add, 5);
    if (bind != SQLITE_OK) {
        sqlite3_reset(add);
        rc = store_fail(store, err, "store entry");
    } else {
        rc = store_exec_stmt(store, add, err, "store entry");
    }
    if (rc != AW_OK || sqlite3_changes(store->db) == 0) {
        store_block_drop(b);
        if (rc != AW_OK)
            return rc;
        *result = AW_PUT_DUPLICATE;
        return store_find_entry(store, entry, stream_no, rowid, err);
    }
    rc = store_block_keep(store, b, store->last_rowid + 1, err);
    if (rc != AW_OK)
        return rc;
    store->last_rowid++;
    store->last_whole = !truncated;
    store->chain_dirty = true;
    *rowid = store->last_rowid;
    *result = AW_PUT_INSERTED;
    return AW_OK;
}

/* The cache slot for (kind, name) in cache (nslots, a power of two,
 * indexed by aw_hash64 of name seeded with kind), or NULL when the name is
 * too long to be cached or memory runs out. */
static struct store_name_slot *store_name_slot(struct store_name_slot **cache,
                                               size_t nslots, int kind,
                                               const char *name)
{
    size_t len = strlen(name);
    if (len >= sizeof(*cache)->id)
        return NULL;
    if (*cache == NULL && (*cache = calloc(nslots, sizeof **cache)) == NULL)
        return NULL;
    return &(*cache)[aw_hash64((uint64_t)kind, name, len) & (nslots - 1)];
}

/* The number of a name in a numbered dictionary (store_name_no), given to
 * it the first time it is seen. Names repeat (a session makes many calls,
 * a zone is on every event), so numbers are remembered in a small
 * direct-mapped cache before asking SQLite. */
static int store_cached_no(aw_store *store, struct store_name_slot **cache,
                           size_t nslots, enum store_stmt find_id,
                           enum store_stmt add_id, int kind, const char *name,
                           int64_t *no, aw_error *err)
{
    struct store_name_slot *slot = store_name_slot(cache, nslots, kind, name);
    if (slot != NULL && slot->no != 0 && slot->kind == kind &&
        strcmp(slot->id, name) == 0) {
        *no = slot->no;
        return AW_OK;
    }
    int rc = store_name_no(store, find_id, add_id, kind, name, no, err);
    if (rc != AW_OK)
        return rc;
    if (slot != NULL && *no != 0) {
        slot->no = *no;
        slot->kind = kind;
        strcpy(slot->id, name);
    }
    return AW_OK;
}

static int store_anchor_no(aw_store *store, const aw_anchor *a, int64_t *no,
                           aw_error *err)
{
    return store_cached_no(store, &store->anchors, STORE_ANCHOR_CACHE,
                           STMT_ANCHOR_FIND, STMT_ANCHOR_NAME_ADD, (int)a->kind,
                           a->id, no, err);
}

int store_term_no(aw_store *store, const char *text, bool add, int64_t *no,
                  aw_error *err)
{
    return store_cached_no(
        store, &store->terms, STORE_TERM_CACHE, STMT_TERM_FIND,
        add ? STMT_TERM_ADD : STORE_FIND_ONLY, 0, text, no, err);
}

/* Binds at column i the terms number of text, or NULL when text is. */
static int store_bind_term(aw_store *store, sqlite3_stmt *stmt, int i,
                           const char *text, aw_error *err)
{
    if (text == NULL) {
        sqlite3_bind_null(stmt, i);
        return AW_OK;
    }
    int64_t no = 0;
    int rc = store_term_no(store, text, true, &no, err);
    if (rc == AW_OK)
        sqlite3_bind_int64(stmt, i, no);
    return rc;
}

/* Binds at column i the anchor number of the first anchor of kind (the
 * decoder lists session_id, agent_session_id, delegation_edge_id, chain
 * elements, in that order), or NULL when the event has none. */
static int store_bind_first_anchor(aw_store *store, sqlite3_stmt *stmt, int i,
                                   const aw_audit_event *event,
                                   aw_anchor_kind kind, aw_error *err)
{
    for (size_t a = 0; a < event->nanchors; a++) {
        if (event->anchors[a].kind != kind)
            continue;
        int64_t no = 0;
        int rc = store_anchor_no(store, &event->anchors[a], &no, err);
        if (rc == AW_OK)
            sqlite3_bind_int64(stmt, i, no);
        return rc;
    }
    sqlite3_bind_null(stmt, i);
    return AW_OK;
}

static int store_put_anchors(aw_store *store, const aw_audit_event *event,
                             int64_t event_rowid, aw_error *err)
{
    if (event->nanchors == 0)
        return AW_OK;
    int rc = store_anchor_part(store, event->occurred_at_ns, event_rowid,
                               event->nanchors, err);
    for (size_t i = 0; rc == AW_OK && i < event->nanchors; i++) {
        int64_t no = 0;
        rc = store_anchor_no(store, &event->anchors[i], &no, err);
        if (rc == AW_OK)
            store_anchor_keep(store, no, event_rowid, event->occurred_at_ns);
    }
    return rc;
}

void aw_store_set_event_content(aw_store *store, aw_event_content_fn fn,
                                void *ud)
{
    store->event_content = fn;
    store->event_content_ud = ud;
}

struct stored_content {
    aw_store *store;
    aw_error *err;
    unsigned char hash[32];
};

static int stored_content_of(const aw_entry_row *row, void *ud)
{
    struct stored_content *c = ud;
    return c->store->event_content(row, c->store->event_content_ud, c->hash,
                                   c->err);
}

/* Whether a stored event has the content of event: by the hash its row
 * keeps (stored_hash, hash_len bytes), or, when the row keeps none (schema
 * 12), by the one its owner re-reads from the entry at entry_rowid. */
static int store_same_content(aw_store *store, const aw_audit_event *event,
                              const void *stored_hash, int hash_len,
                              int64_t entry_rowid, bool *same, aw_error *err)
{
    if (hash_len == 32) {
        *same = memcmp(stored_hash, event->content_hash, 32) == 0;
        return AW_OK;
    }
    if (hash_len != 0 || store->event_content == NULL)
        return aw_error_set(err, AW_ERR,
                            "the event of entry row %lld keeps no content "
                            "hash this handle can compare",
                            (long long)entry_rowid);
    struct stored_content c = {.store = store, .err = err};
    int rc = aw_store_get_entry(store, entry_rowid, stored_content_of, &c, err);
    if (rc != AW_OK)
        return rc;
    *same = memcmp(c.hash, event->content_hash, 32) == 0;
    return AW_OK;
}

/* The stored event of event's identity whose row holds key as its id key:
 * *found false, or true with its row, content hash (hash_len bytes of hash:
 * 32, or 0 when it keeps none) and entry row. */
static int store_probe_event(aw_store *store, const aw_audit_event *event,
                             int64_t key, bool *found, int64_t *event_rowid,
                             unsigned char hash[32], int *hash_len,
                             int64_t *entry_rowid, aw_error *err)
{
    sqlite3_stmt *find;
    int rc = store_stmt(store, STMT_EVENT_FIND, &find, err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_int64(find, 1, event->occurred_at_ns);
    sqlite3_bind_int64(find, 2, key);
    store_bind_id(find, 3, event->id);
    sqlite3_bind_text(find, 4, event->id, -1, SQLITE_STATIC);
    int step = sqlite3_step(find);
    *found = step == SQLITE_ROW;
    if (*found) {
        *event_rowid = sqlite3_column_int64(find, 0);
        *hash_len = sqlite3_column_bytes(find, 1);
        if (*hash_len == 32)
            memcpy(hash, sqlite3_column_blob(find, 1), 32);
        *entry_rowid = sqlite3_column_int64(find, 2);
    }
    sqlite3_reset(find);
    return step == SQLITE_ROW || step == SQLITE_DONE
               ? AW_OK
               : store_fail(store, err, "look up event");
}

/* When the newest long-keyed row occurred (store->long_keys_until). */
static int store_read_long_keys(aw_store *store, aw_error *err)
{
    aw_error absent;
    int rc = aw_store_meta_get(store, "long_id_keys_until",
                               &store->long_keys_until, &absent);
    if (rc == AW_ERR_NOTFOUND) {
        store->long_keys_until = INT64_MIN;
        rc = AW_OK;
    }
    if (rc != AW_OK)
        return aw_error_set(err, rc, "%s", absent.msg);
    store->long_keys_read = true;
    return AW_OK;
}

/* *found false, or true with the stored event's row and whether its
 * content is the same. Rows of schema 12 on have the short id key; older
 * ones the long key, probed only for an event that may match one. */
static int store_find_event(aw_store *store, const aw_audit_event *event,
                            int64_t id_key, bool *found, int64_t *event_rowid,
                            aw_put_result *result, aw_error *err)
{
    unsigned char hash[32];
    int hash_len = 0;
    int64_t entry_rowid = 0;
    int rc = store->long_keys_read ? AW_OK : store_read_long_keys(store, err);
    if (rc == AW_OK)
        rc = store_probe_event(store, event, store_id_time_key(id_key), found,
                               event_rowid, hash, &hash_len, &entry_rowid, err);
    if (rc == AW_OK && !*found &&
        event->occurred_at_ns <= store->long_keys_until)
        rc = store_probe_event(store, event, id_key, found, event_rowid, hash,
                               &hash_len, &entry_rowid, err);
    if (rc != AW_OK || !*found)
        return rc;
    bool same = false;
    rc = store_same_content(store, event, hash, hash_len, entry_rowid, &same,
                            err);
    *result = same ? AW_PUT_DUPLICATE : AW_PUT_CONFLICT;
    return rc;
}

/* The key of one of event's ids: the digest the decoder computed, or, for
 * an event built by hand, the same digest computed here. */
static int64_t event_id_key(const aw_audit_event *event, uint64_t digest,
                            const char *id)
{
    return event->has_id_digests ? (int64_t)digest : store_id_key(id);
}

/* Whether the row of an event found in entry_rowid may leave its content
 * hash out: the entry just stored whole reproduces it (schema 12). */
static bool store_hash_in_entry(const aw_store *store, int64_t entry_rowid)
{
    return store->event_content != NULL && entry_rowid == store->last_rowid &&
           store->last_whole;
}

/* A copy of a stored event in an entry of earlier id time -- the original
 * on the audit stream, read after its dead letter -- becomes the event's
 * entry, so its arrival is the earliest one and the index does not depend
 * on which copy was read first. */
static int store_event_earliest_entry(aw_store *store, int64_t event_rowid,
                                      int64_t entry_rowid,
                                      const aw_audit_event *event,
                                      aw_error *err)
{
    sqlite3_stmt *move;
    int rc = store_stmt(store, STMT_EVENT_MOVE, &move, err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_int64(move, 1, event_rowid);
    sqlite3_bind_int64(move, 2, entry_rowid);
    sqlite3_bind_blob(move, 3, event->content_hash,
                      store_hash_in_entry(store, entry_rowid) ? 0 : 32,
                      SQLITE_STATIC);
    sqlite3_bind_int(move, 4, event->is_signed);
    return store_exec_stmt(store, move, err,
                           "move event to its earliest entry");
}

int aw_store_put_event(aw_store *store, int64_t entry_rowid,
                       const aw_audit_event *event, int64_t *event_rowid,
                       aw_put_result *result, aw_error *err)
{
    int rc = store_require_tx(store, err, "store event");
    if (rc != AW_OK)
        return rc;
    if (event->id == NULL || event->zone_id == NULL)
        return aw_error_reject(err, AW_REJECT_MISSING_FIELD, "event without %s",
                               event->id == NULL ? "id" : "zone_id");
    int64_t id_key = event_id_key(event, event->id_digest, event->id);
    bool found = false;
    rc = store_find_event(store, event, id_key, &found, event_rowid, result,
                          err);
    if (rc == AW_OK && found && *result == AW_PUT_DUPLICATE)
        rc = store_event_earliest_entry(store, *event_rowid, entry_rowid, event,
                                        err);
    if (rc != AW_OK || found)
        return rc;
    sqlite3_stmt *add;
    rc = store_stmt(store, STMT_EVENT_ADD, &add, err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_int64(add, 1, store_id_time_key(id_key));
    sqlite3_bind_null(add, 2); /* request_key: the request tiers hold it */
    sqlite3_bind_int64(add, 3, entry_rowid);
    sqlite3_bind_int64(add, 4, event->occurred_at_ns);
    const char *const terms[] = {
        event->zone_id,           event->event_type,     event->decision,
        event->evaluation_status, event->application_id, event->resource,
        event->result_class,
    };
    for (int i = 0; rc == AW_OK && i < 7; i++)
        rc = store_bind_term(store, add, 5 + i, terms[i], err);
    static const aw_anchor_kind first_of[] = {AW_ANCHOR_AUTHORITY_RECORD,
                                              AW_ANCHOR_AGENT_SESSION,
                                              AW_ANCHOR_DELEGATION_EDGE};
    for (int i = 0; rc == AW_OK && i < 3; i++)
        rc = store_bind_first_anchor(store, add, 12 + i, event, first_of[i],
                                     err);
    if (rc != AW_OK) {
        sqlite3_clear_bindings(add);
        return rc;
    }
    sqlite3_bind_int(add, 15, event->upstream_status);
    sqlite3_bind_int(add, 16, event->is_signed);
    if (event->has_delegation_epoch)
        sqlite3_bind_int64(add, 17, event->delegation_epoch);
    else
        sqlite3_bind_null(add, 17);
    store_bind_id(add, 18, event->id);
    store_bind_id(add, 19, event->request_id);
    /* The hash is re-read from the entry on the rare identity hit when the
     * entry reproduces it (schema 12): 32 bytes fewer a row. */
    sqlite3_bind_blob(add, 20, event->content_hash,
                      store_hash_in_entry(store, entry_rowid) ? 0 : 32,
                      SQLITE_STATIC);
    rc = store_exec_stmt(store, add, err, "store event");
    if (rc != AW_OK)
        return rc;
    *event_rowid = sqlite3_last_insert_rowid(store->db);
    *result = AW_PUT_INSERTED;
    if (event->request_id != NULL)
        rc = store_request_add(
            store,
            event_id_key(event, event->request_digest, event->request_id),
            *event_rowid, err);
    return rc == AW_OK ? store_put_anchors(store, event, *event_rowid, err)
                       : rc;
}

/* The time a revocation of set takes effect: the earliest delivery of its
 * delivery_id; an earlier-read later copy is moved back to this one's time. */
static int store_delivery_time(aw_store *store, int64_t entry_rowid,
                               const aw_revocation_set *set, int64_t *at_ns,
                               aw_error *err)
{
    *at_ns = set->at_ns;
    if (set->delivery_id == NULL)
        return AW_OK;
    sqlite3_stmt *first, *move;
    int rc = store_stmt(store, STMT_DELIVERY_FIRST, &first, err);
    if (rc == AW_OK)
        rc = store_stmt(store, STMT_DELIVERY_MOVE, &move, err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_text(first, 1, set->delivery_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(first, 2, set->zone_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(first, 3, entry_rowid);
    int step = sqlite3_step(first);
    bool earlier =
        step == SQLITE_ROW && sqlite3_column_type(first, 0) != SQLITE_NULL;
    int64_t earliest = earlier ? sqlite3_column_int64(first, 0) : 0;
    sqlite3_reset(first);
    if (step != SQLITE_ROW)
        return store_fail(store, err, "look up revocation delivery");
    if (earlier && earliest <= set->at_ns) {
        *at_ns = earliest;
        return AW_OK;
    }
    if (!earlier)
        return AW_OK;
    sqlite3_bind_text(move, 1, set->delivery_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(move, 2, set->zone_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(move, 3, entry_rowid);
    sqlite3_bind_int64(move, 4, set->at_ns);
    return store_exec_stmt(store, move, err, "move revocation delivery");
}

int aw_store_put_revocations(aw_store *store, int64_t entry_rowid,
                             const aw_revocation_set *set, aw_error *err)
{
    int rc = store_require_tx(store, err, "store revocations");
    if (rc != AW_OK)
        return rc;
    if (set->zone_id == NULL)
        return aw_error_reject(err, AW_REJECT_MISSING_FIELD,
                               "revocation without zone_id");
    int64_t at_ns = set->at_ns;
    sqlite3_stmt *add;
    rc = set->n ? store_delivery_time(store, entry_rowid, set, &at_ns, err)
                : AW_OK;
    if (rc == AW_OK)
        rc = store_stmt(store, STMT_REVOCATION_ADD, &add, err);
    for (size_t i = 0; rc == AW_OK && i < set->n; i++) {
        const aw_revocation *item = &set->items[i];
        sqlite3_bind_int64(add, 1, entry_rowid);
        sqlite3_bind_text(add, 2, set->zone_id, -1, SQLITE_STATIC);
        sqlite3_bind_int(add, 3, (int)item->anchor.kind);
        sqlite3_bind_text(add, 4, item->anchor.id, -1, SQLITE_STATIC);
        sqlite3_bind_int(add, 5, (int)item->action);
        sqlite3_bind_int64(add, 6, at_ns);
        sqlite3_bind_text(add, 7, set->reason, -1, SQLITE_STATIC);
        sqlite3_bind_text(add, 8, set->delivery_id, -1, SQLITE_STATIC);
        if (set->has_epoch)
            sqlite3_bind_int64(add, 9, set->epoch);
        else
            sqlite3_bind_null(add, 9);
        rc = store_exec_stmt(store, add, err, "store revocation");
    }
    return rc;
}

int aw_store_put_call(aw_store *store, int64_t entry_rowid,
                      const aw_observed_call *call, int64_t *call_rowid,
                      aw_error *err)
{
    int rc = store_require_tx(store, err, "store call");
    if (rc != AW_OK)
        return rc;
    if (call->request_id == NULL)
        return aw_error_reject(err, AW_REJECT_MISSING_FIELD,
                               "observed call without request_id");
    sqlite3_stmt *add;
    rc = store_stmt(store, STMT_CALL_ADD, &add, err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_int64(add, 1, entry_rowid);
    sqlite3_bind_text(add, 2, call->request_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(add, 3, call->status);
    sqlite3_bind_int64(add, 4, call->occurred_at_ns);
    sqlite3_bind_text(add, 5, call->zone_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(add, 6, call->resource, -1, SQLITE_STATIC);
    sqlite3_bind_text(add, 7, call->source, -1, SQLITE_STATIC);
    sqlite3_bind_int(add, 8, call->is_signed);
    sqlite3_bind_int(add, 9, call->time_is_logged);
    rc = store_exec_stmt(store, add, err, "store call");
    if (rc == AW_OK)
        *call_rowid = sqlite3_last_insert_rowid(store->db);
    return rc;
}

int aw_store_put_rejected(aw_store *store, int64_t entry_rowid,
                          aw_reject_reason reason, const char *detail,
                          aw_error *err)
{
    int rc = store_require_tx(store, err, "store rejection");
    sqlite3_stmt *add;
    if (rc == AW_OK)
        rc = store_stmt(store, STMT_REJECTED_ADD, &add, err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_int64(add, 1, entry_rowid);
    sqlite3_bind_text(add, 2, aw_reject_reason_name(reason), -1, SQLITE_STATIC);
    sqlite3_bind_text(add, 3, detail, -1, SQLITE_STATIC);
    return store_exec_stmt(store, add, err, "store rejection");
}

int aw_store_entry_was_rejected(aw_store *store, int64_t entry_rowid,
                                bool *rejected, aw_error *err)
{
    sqlite3_stmt *find;
    int rc = store_stmt(store, STMT_REJECTED_OF_ENTRY, &find, err);
    *rejected = false;
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_int64(find, 1, entry_rowid);
    int step = sqlite3_step(find);
    *rejected = step == SQLITE_ROW;
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = store_fail(store, err, "look up a rejection");
    sqlite3_reset(find);
    return rc;
}

int aw_store_set_checkpoint(aw_store *store, const char *stream,
                            const char *entry_id, aw_error *err)
{
    int rc = store_require_tx(store, err, "store checkpoint");
    sqlite3_stmt *set;
    if (rc == AW_OK)
        rc = store_stmt(store, STMT_CHECKPOINT_SET, &set, err);
    if (rc != AW_OK)
        return rc;
    /* The one wall-clock read of the store: when the checkpoint moved. */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    sqlite3_bind_text(set, 1, stream, -1, SQLITE_STATIC);
    sqlite3_bind_text(set, 2, entry_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(set, 3, (int64_t)now.tv_sec * 1000000000 + now.tv_nsec);
    return store_exec_stmt(store, set, err, "store checkpoint");
}

int aw_store_meta_get(aw_store *store, const char *key, int64_t *value,
                      aw_error *err)
{
    sqlite3_stmt *get;
    int rc = store_stmt(store, STMT_META_GET, &get, err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_text(get, 1, key, -1, SQLITE_STATIC);
    int step = sqlite3_step(get);
    if (step == SQLITE_ROW) {
        *value = sqlite3_column_int64(get, 0);
        rc = AW_OK;
    } else if (step == SQLITE_DONE) {
        rc = aw_error_set(err, AW_ERR_NOTFOUND, "no meta value %s", key);
    } else {
        rc = store_fail(store, err, "read meta value");
    }
    sqlite3_reset(get);
    return rc;
}

int aw_store_meta_set(aw_store *store, const char *key, int64_t value,
                      aw_error *err)
{
    int rc = store_require_tx(store, err, "store meta value");
    sqlite3_stmt *set;
    if (rc == AW_OK)
        rc = store_stmt(store, STMT_META_SET, &set, err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_text(set, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(set, 2, value);
    return store_exec_stmt(store, set, err, "store meta value");
}

int aw_store_pending_add(aw_store *store, int kind, int64_t deadline_ns,
                         int64_t ref, aw_error *err)
{
    int rc = store_require_tx(store, err, "add pending check");
    sqlite3_stmt *add;
    if (rc == AW_OK)
        rc = store_stmt(store, STMT_PENDING_ADD, &add, err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_int64(add, 1, deadline_ns);
    sqlite3_bind_int(add, 2, kind);
    sqlite3_bind_int64(add, 3, ref);
    return store_exec_stmt(store, add, err, "add pending check");
}

struct pending_key {
    int64_t deadline;
    int64_t ref;
    int kind;
};

/* Reads up to PENDING_CHUNK due checks after *after into chunk. */
static int store_pending_read(aw_store *store, int64_t clock_ns,
                              const struct pending_key *after,
                              struct pending_key *chunk, size_t *n,
                              aw_error *err)
{
    sqlite3_stmt *due;
    int rc = store_stmt(store, STMT_PENDING_DUE, &due, err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_int64(due, 1, clock_ns);
    sqlite3_bind_int64(due, 2, after->deadline);
    sqlite3_bind_int(due, 3, after->kind);
    sqlite3_bind_int64(due, 4, after->ref);
    sqlite3_bind_int(due, 5, PENDING_CHUNK);
    int step;
    *n = 0;
    while ((step = sqlite3_step(due)) == SQLITE_ROW) {
        chunk[*n].deadline = sqlite3_column_int64(due, 0);
        chunk[*n].kind = sqlite3_column_int(due, 1);
        chunk[*n].ref = sqlite3_column_int64(due, 2);
        (*n)++;
    }
    sqlite3_reset(due);
    if (step != SQLITE_DONE)
        return store_fail(store, err, "read pending checks");
    return AW_OK;
}

/* The due rows are read in chunks and the callbacks run with no statement
 * open on the pending table, so fn may add checks; each visited key is
 * remembered and deleted only once every callback agreed. */
int aw_store_pending_take_due(aw_store *store, int64_t clock_ns,
                              aw_pending_fn fn, void *ud, aw_error *err)
{
    int rc = store_require_tx(store, err, "take pending checks");
    if (rc != AW_OK)
        return rc;
    struct pending_key chunk[PENDING_CHUNK];
    struct pending_key after = {INT64_MIN, INT64_MIN, INT32_MIN};
    struct pending_key *visited = NULL;
    size_t nvisited = 0, cap = 0, n = 0;
    do {
        rc = store_pending_read(store, clock_ns, &after, chunk, &n, err);
        if (rc == AW_OK && nvisited + n > cap) {
            size_t grown_cap = cap ? cap * 2 : PENDING_CHUNK;
            while (grown_cap < nvisited + n)
                grown_cap *= 2;
            struct pending_key *grown =
                realloc(visited, grown_cap * sizeof *grown);
            if (grown == NULL)
                rc = aw_error_set(err, AW_ERR_NOMEM, "out of memory");
            else {
                visited = grown;
                cap = grown_cap;
            }
        }
        for (size_t i = 0; rc == AW_OK && i < n; i++) {
            rc = fn(chunk[i].kind, chunk[i].deadline, chunk[i].ref, ud);
            visited[nvisited++] = chunk[i];
        }
        if (n > 0)
            after = chunk[n - 1];
    } while (rc == AW_OK && n == PENDING_CHUNK);

    sqlite3_stmt *del = NULL;
    if (rc == AW_OK && nvisited > 0)
        rc = store_stmt(store, STMT_PENDING_DELETE, &del, err);
    for (size_t i = 0; rc == AW_OK && i < nvisited; i++) {
        sqlite3_bind_int64(del, 1, visited[i].deadline);
        sqlite3_bind_int(del, 2, visited[i].kind);
        sqlite3_bind_int64(del, 3, visited[i].ref);
        rc = store_exec_stmt(store, del, err, "delete pending check");
    }
    free(visited);
    return rc;
}
