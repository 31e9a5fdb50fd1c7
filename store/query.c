/* query.c -- reading the index: events, revocations, observed calls and
 * rejected entries.
 *
 * Event queries are built from the filter's shape (which members are set)
 * and cached, one prepared statement per shape, so the detectors can ask
 * "events of request R" or "grants of anchor A after T" on the hot path
 * without parsing SQL. Values are bound by name, so the text builder and
 * the binder need only agree on which members are set. An anchor filter
 * drives the query from the anchor's runs in each part (anchor_index.c),
 * each run's event rows read by json_each; everything else walks
 * events, through the request tiers (request_tiers.c) or
 * events_by_identity (keyed by time first, so it serves time ranges too).
 * An events row holds numbers for its repeated words (terms) and its first
 * anchors (anchor_names); the query maps them back to text, and a filter
 * on a word compares with the word's number.
 *
 * Results are ordered by (occurred_at, rowid), and the cursor names the
 * last row seen, so paging is stable while rows are being added; a caller
 * that folds rows into counts asks for any order and is spared the sort.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/handle.h"

#define EVENT_TYPES_MAX 32

enum event_shape_bit {
    SHAPE_ROWID = 1 << 0,
    SHAPE_EVENT_ID = 1 << 1,
    SHAPE_REQUEST_ID = 1 << 2,
    SHAPE_ZONE = 1 << 3,
    SHAPE_DECISION = 1 << 4,
    SHAPE_RESOURCE = 1 << 5,
    SHAPE_APPLICATION = 1 << 6,
    SHAPE_EVENT_TYPES = 1 << 7,
    SHAPE_GRANTS = 1 << 8,
    SHAPE_ANCHOR = 1 << 9,
    SHAPE_SINCE = 1 << 10,
    SHAPE_UNTIL = 1 << 11,
    SHAPE_CURSOR = 1 << 12,
    SHAPE_FROM_ROWID = 1 << 13,
    SHAPE_KEY_COLUMNS = 1 << 14,
    SHAPE_LIMIT = 1 << 15,
    SHAPE_ANY_ORDER = 1 << 16,
};

static unsigned event_filter_shape(const aw_event_filter *f)
{
    unsigned shape = 0;
    shape |= f->rowid != 0 ? SHAPE_ROWID : 0;
    shape |= f->event_id != NULL ? SHAPE_EVENT_ID : 0;
    shape |= f->request_id != NULL ? SHAPE_REQUEST_ID : 0;
    shape |= f->zone_id != NULL ? SHAPE_ZONE : 0;
    shape |= f->decision != NULL ? SHAPE_DECISION : 0;
    shape |= f->resource != NULL ? SHAPE_RESOURCE : 0;
    shape |= f->application_id != NULL ? SHAPE_APPLICATION : 0;
    shape |= f->n_event_types > 0 ? SHAPE_EVENT_TYPES : 0;
    shape |= f->grants_only ? SHAPE_GRANTS : 0;
    shape |= f->anchor.kind != 0 ? SHAPE_ANCHOR : 0;
    shape |= f->has_since ? SHAPE_SINCE : 0;
    shape |= f->has_until ? SHAPE_UNTIL : 0;
    shape |= f->has_cursor ? SHAPE_CURSOR : 0;
    shape |= f->from_rowid != 0 ? SHAPE_FROM_ROWID : 0;
    shape |= f->key_columns_only ? SHAPE_KEY_COLUMNS : 0;
    shape |= f->limit != 0 ? SHAPE_LIMIT : 0;
    shape |= f->any_order ? SHAPE_ANY_ORDER : 0;
    return shape;
}

/* Conditions that need no more than their shape bit and one value. Words
 * are compared by their terms numbers, bound before the query runs (the
 * writer's cache knows them), so a query builds no table of its own for
 * them; a word never stored is 0 and matches nothing. */
static const struct {
    unsigned bit;
    const char *sql;
} event_equalities[] = {
    {SHAPE_ROWID, " AND e.rowid = :rowid"},
    {SHAPE_FROM_ROWID, " AND e.rowid >= :from_rowid"},
    {SHAPE_EVENT_ID,
     " AND (e.event_id = :event_id OR e.event_id = :event_text)"},
    {SHAPE_REQUEST_ID,
     " AND (e.request_id = :request_id OR e.request_id = :request_text)"},
    {SHAPE_ZONE, " AND e.zone_no = :zone_no"},
    {SHAPE_DECISION, " AND e.decision_no = :decision_no"},
    {SHAPE_RESOURCE, " AND e.resource_no = :resource_no"},
    {SHAPE_APPLICATION, " AND e.application_no = :application_no"},
    {SHAPE_GRANTS, " AND e.decision_no IN (:allow_no, :consumed_no)"},
};

/* The rows of one request key, from every tier (request_tiers.c). */
#define REQUEST_TIER(t)                                                        \
    "SELECT event_rowid FROM request_tier_" #t                                 \
    " WHERE request_key = :request_key"
#define REQUEST_TIER_ROWS                                                      \
    REQUEST_TIER(0)                                                            \
    " UNION ALL " REQUEST_TIER(1) " UNION ALL " REQUEST_TIER(                  \
        2) " UNION ALL " REQUEST_TIER(3) " UNION ALL " REQUEST_TIER(4)
_Static_assert(STORE_REQUEST_TIERS == 5, "REQUEST_TIER_ROWS seeks every tier");

static int event_query_sql(unsigned shape, size_t n_types, aw_buf *sql)
{
    bool anchor = shape & SHAPE_ANCHOR;
    char part[512];
    int rc = AW_OK;
#define SQL_ADD(text)                                                          \
    do {                                                                       \
        if (rc == AW_OK)                                                       \
            rc = store_buf_append(sql, (text), strlen(text));                  \
    } while (0)
#define TERM(col) "(SELECT term FROM terms WHERE term_no = e." col "), "
#define ANCHOR_ID(col)                                                         \
    "(SELECT anchor_id FROM anchor_names WHERE anchor_no = e." col "), "
    /* Every column of aw_event_row, in its order; the display columns are
     * NULL for key_columns_only, sparing their look-ups. */
    bool all = !(shape & SHAPE_KEY_COLUMNS);
    SQL_ADD("SELECT e.rowid, e.entry_rowid, ");
    SQL_ADD(all ? "(SELECT name FROM streams WHERE stream_no = n.stream_no), "
                : "NULL, ");
    SQL_ADD("n.id_ms, n.id_seq, e.event_id, " TERM("zone_no") TERM(
        "type_no") "e.request_id, " TERM("decision_no") TERM("status_no"));
    SQL_ADD(all ? TERM("application_no") TERM("resource_no")
                      ANCHOR_ID("session_no") ANCHOR_ID("agent_session_no")
                          ANCHOR_ID("edge_no")
                              TERM("result_class_no") "e.upstream_status, "
                : "NULL, NULL, NULL, NULL, NULL, NULL, 0, ");
    SQL_ADD("e.occurred_at, e.is_signed, e.delegation_epoch ");
#undef TERM
#undef ANCHOR_ID
    if (anchor)
        /* Each part of the anchor index (anchor_parts.c) is sought in turn;
         * the bounds below skip the parts whose uses are all outside
         * them. */
        SQL_ADD("FROM anchor_names an CROSS JOIN anchor_parts p CROSS JOIN "
                "anchor_runs r ON r.part_no = p.part_no AND "
                "r.anchor_no = an.anchor_no CROSS JOIN "
                "json_each(r.event_rows) u CROSS JOIN events e ON "
                "e.rowid = r.first_rowid + u.value JOIN entries n ON "
                "n.rowid = e.entry_rowid WHERE an.kind = :anchor_kind AND "
                "an.anchor_id = :anchor_id");
    else if ((shape & SHAPE_REQUEST_ID) && (shape & SHAPE_ANY_ORDER))
        /* Driven by the tiers' rows. SQLite would instead build the row
         * ids into a table of its own on every run, which only pays for
         * itself when it also sorts them. */
        SQL_ADD("FROM (" REQUEST_TIER_ROWS ") t CROSS JOIN events e ON "
                "e.rowid = t.event_rowid JOIN entries n ON "
                "n.rowid = e.entry_rowid WHERE 1");
    else if (shape & SHAPE_REQUEST_ID)
        SQL_ADD("FROM events e JOIN entries n ON n.rowid = e.entry_rowid "
                "WHERE e.rowid IN (" REQUEST_TIER_ROWS ")");
    else
        SQL_ADD("FROM events e JOIN entries n ON n.rowid = e.entry_rowid "
                "WHERE 1");
    for (size_t i = 0; i < sizeof event_equalities / sizeof *event_equalities;
         i++)
        if (shape & event_equalities[i].bit)
            SQL_ADD(event_equalities[i].sql);
    if (shape & SHAPE_EVENT_TYPES) {
        /* ORs, not IN: SQLite builds an IN list of three bound values into
         * a table of its own (a B-tree with its pager) on every run */
        SQL_ADD(" AND (");
        for (size_t i = 0; i < n_types; i++) {
            snprintf(part, sizeof part, "%se.type_no = :type_no%zu",
                     i ? " OR " : "", i);
            SQL_ADD(part);
        }
        SQL_ADD(")");
    }
    /* For an anchor: one event's row is in the part of the last first_rowid
     * at or before it (parts follow row order), in the one run of its
     * anchor there whose rows hold it; a part reaches a time by its max_at
     * (indexed), and so does a run. The bounds on e are the exact test. */
    if (anchor && (shape & SHAPE_ROWID))
        SQL_ADD(" AND p.part_no = (SELECT part_no FROM anchor_parts WHERE "
                "first_rowid <= :rowid ORDER BY first_rowid DESC LIMIT 1) "
                "AND r.first_rowid <= :rowid AND r.last_rowid >= :rowid");
    if (shape & SHAPE_SINCE) {
        SQL_ADD(" AND e.occurred_at >= :since");
        if (anchor)
            SQL_ADD(" AND p.max_at >= :since AND r.max_at >= :since");
    }
    if (shape & SHAPE_UNTIL) {
        SQL_ADD(" AND e.occurred_at < :until");
        if (anchor)
            SQL_ADD(" AND p.min_at < :until AND r.min_at < :until");
    }
    if (shape & SHAPE_CURSOR) {
        /* The plain >= lets the planner use the time index as a range. */
        SQL_ADD(" AND e.occurred_at >= :cursor_t AND "
                "(e.occurred_at > :cursor_t OR e.rowid > :cursor_r)");
        if (anchor)
            SQL_ADD(" AND p.max_at >= :cursor_t AND r.max_at >= :cursor_t");
    }
    /* With LIMIT, SQLite sorts in a temporary B-tree (to keep the top N);
     * without, in its in-memory sorter, much cheaper for the few rows the
     * detectors' unlimited queries return. */
    if (!(shape & SHAPE_ANY_ORDER))
        SQL_ADD(shape & SHAPE_LIMIT
                    ? " ORDER BY e.occurred_at, e.rowid LIMIT :limit"
                    : " ORDER BY e.occurred_at, e.rowid");
    if (rc == AW_OK)
        rc = store_buf_append(sql, "", 1);
#undef SQL_ADD
    return rc;
}

static void bind_text_named(sqlite3_stmt *stmt, const char *name,
                            const char *value)
{
    int i = sqlite3_bind_parameter_index(stmt, name);
    if (i > 0)
        sqlite3_bind_text(stmt, i, value, -1, SQLITE_STATIC);
}

static void bind_id_named(sqlite3_stmt *stmt, const char *name, const char *id)
{
    int i = sqlite3_bind_parameter_index(stmt, name);
    if (i > 0)
        store_bind_id(stmt, i, id);
}

static void bind_int64_named(sqlite3_stmt *stmt, const char *name,
                             int64_t value)
{
    int i = sqlite3_bind_parameter_index(stmt, name);
    if (i > 0)
        sqlite3_bind_int64(stmt, i, value);
}

/* Binds the terms number of word (if the statement has the parameter). */
static int bind_term_named(aw_store *store, sqlite3_stmt *stmt,
                           const char *name, const char *word, aw_error *err)
{
    int64_t no = 0;
    int rc = word && sqlite3_bind_parameter_index(stmt, name) > 0
                 ? store_term_no(store, word, false, &no, err)
                 : AW_OK;
    if (rc == AW_OK)
        bind_int64_named(stmt, name, no);
    return rc;
}

static int event_query_bind(aw_store *store, sqlite3_stmt *stmt,
                            const aw_event_filter *f, aw_error *err)
{
    bind_int64_named(stmt, ":rowid", f->rowid);
    bind_int64_named(stmt, ":from_rowid", f->from_rowid);
    bind_id_named(stmt, ":event_id", f->event_id);
    bind_text_named(stmt, ":event_text", f->event_id);
    bind_id_named(stmt, ":request_id", f->request_id);
    bind_text_named(stmt, ":request_text", f->request_id);
    if (f->request_id != NULL)
        bind_int64_named(stmt, ":request_key", store_id_key(f->request_id));
    const char *const words[][2] = {
        {":zone_no", f->zone_id},      {":decision_no", f->decision},
        {":resource_no", f->resource}, {":application_no", f->application_id},
        {":allow_no", "allow"},        {":consumed_no", "consumed"},
    };
    int rc = AW_OK;
    for (size_t i = 0; rc == AW_OK && i < sizeof words / sizeof *words; i++)
        rc = bind_term_named(store, stmt, words[i][0], words[i][1], err);
    for (size_t i = 0; rc == AW_OK && i < f->n_event_types; i++) {
        char name[32];
        snprintf(name, sizeof name, ":type_no%zu", i);
        rc = bind_term_named(store, stmt, name, f->event_types[i], err);
    }
    bind_int64_named(stmt, ":anchor_kind", f->anchor.kind);
    bind_text_named(stmt, ":anchor_id", f->anchor.id);
    bind_int64_named(stmt, ":since", f->since_ns);
    bind_int64_named(stmt, ":until", f->until_ns);
    bind_int64_named(stmt, ":cursor_t", f->cursor_occurred_ns);
    bind_int64_named(stmt, ":cursor_r", f->cursor_rowid);
    bind_int64_named(stmt, ":limit", store_limit(f->limit));
    return rc;
}

/* The cached statement for this shape, or a new one (*owned: the caller
 * finalizes it) once the cache is full. */
static int event_query_stmt(aw_store *store, unsigned shape, size_t n_types,
                            sqlite3_stmt **out, bool *owned, aw_error *err)
{
    *owned = false;
    for (size_t i = 0; i < store->nshapes; i++) {
        if (store->shapes[i].shape == shape &&
            store->shapes[i].n_event_types == n_types) {
            *out = store->shapes[i].stmt;
            return AW_OK;
        }
    }
    aw_buf sql = {0};
    int rc = event_query_sql(shape, n_types, &sql);
    if (rc != AW_OK) {
        aw_buf_free(&sql);
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    }
    rc = store_prepare(store, sql.ptr, out, err);
    aw_buf_free(&sql);
    if (rc != AW_OK)
        return rc;
    if (store->nshapes < STORE_SHAPE_CACHE)
        store->shapes[store->nshapes++] =
            (struct store_shape_stmt){shape, n_types, *out};
    else
        *owned = true;
    return AW_OK;
}

void store_shapes_free(aw_store *store)
{
    for (size_t i = 0; i < store->nshapes; i++)
        sqlite3_finalize(store->shapes[i].stmt);
    store->nshapes = 0;
}

static int event_row(sqlite3_stmt *stmt, void *ctx)
{
    struct row_ctx *c = ctx;
    char entry_id[STORE_ENTRY_ID_MAX];
    char event_id[STORE_ID_TEXT_MAX], request_id[STORE_ID_TEXT_MAX];
    aw_event_row row = {
        .rowid = sqlite3_column_int64(stmt, 0),
        .entry_rowid = sqlite3_column_int64(stmt, 1),
        .stream = store_column_text(stmt, 2),
        .entry_id =
            store_format_entry_id(sqlite3_column_int64(stmt, 3),
                                  sqlite3_column_int64(stmt, 4), entry_id),
        .arrived_ns = aw_ms_to_ns_signed(sqlite3_column_int64(stmt, 3)),
        .event_id = store_column_id(stmt, 5, event_id),
        .zone_id = store_column_text(stmt, 6),
        .event_type = store_column_text(stmt, 7),
        .request_id = store_column_id(stmt, 8, request_id),
        .decision = store_column_text(stmt, 9),
        .evaluation_status = store_column_text(stmt, 10),
        .application_id = store_column_text(stmt, 11),
        .resource = store_column_text(stmt, 12),
        .session_id = store_column_text(stmt, 13),
        .agent_session_id = store_column_text(stmt, 14),
        .delegation_edge_id = store_column_text(stmt, 15),
        .result_class = store_column_text(stmt, 16),
        .upstream_status = sqlite3_column_int(stmt, 17),
        .occurred_at_ns = sqlite3_column_int64(stmt, 18),
        .is_signed = sqlite3_column_int(stmt, 19) != 0,
        .has_delegation_epoch = sqlite3_column_type(stmt, 20) != SQLITE_NULL,
        .delegation_epoch = sqlite3_column_int64(stmt, 20),
    };
    return c->fn.event(&row, c->ud);
}

int aw_store_query_events(aw_store *store, const aw_event_filter *filter,
                          aw_event_row_fn fn, void *ud, aw_error *err)
{
    if (filter->n_event_types > EVENT_TYPES_MAX)
        return aw_error_reject(err, AW_REJECT_BAD_VALUE,
                               "at most %d event types in one query",
                               EVENT_TYPES_MAX);
    if (filter->anchor.kind != 0 && filter->anchor.id == NULL)
        return aw_error_reject(err, AW_REJECT_MISSING_FIELD,
                               "anchor filter without an anchor id");
    if (filter->any_order && (filter->has_cursor || filter->limit != 0))
        return aw_error_reject(err, AW_REJECT_BAD_VALUE,
                               "a cursor or a limit needs ordered rows");
    unsigned shape = event_filter_shape(filter);
    size_t n_types = filter->n_event_types;
    sqlite3_stmt *stmt;
    bool owned;
    /* The anchor uses this transaction stored are read from their runs. */
    int rc = shape & SHAPE_ANCHOR ? store_anchor_runs_flush(store, err) : AW_OK;
    if (rc == AW_OK)
        rc = event_query_stmt(store, shape, n_types, &stmt, &owned, err);
    if (rc != AW_OK)
        return rc;
    rc = event_query_bind(store, stmt, filter, err);
    struct row_ctx ctx = {.fn.event = fn, .ud = ud};
    if (rc == AW_OK)
        rc = store_each_row(store, stmt, event_row, &ctx, err, "query events");
    else
        sqlite3_reset(stmt);
    if (owned)
        sqlite3_finalize(stmt);
    return rc;
}

/* ---- Requests of one event type ----------------------------------------- */

static int request_row(sqlite3_stmt *stmt, void *ctx)
{
    struct row_ctx *c = ctx;
    char request_id[STORE_ID_TEXT_MAX];
    return c->fn.request(store_column_text(stmt, 0),
                         store_column_id(stmt, 1, request_id), c->ud);
}

int aw_store_each_request_of_type(aw_store *store, const char *event_type,
                                  aw_request_fn fn, void *ud,
                                  int64_t *through_rowid, aw_error *err)
{
    *through_rowid = 0;
    sqlite3_stmt *stmt;
    int rc = store_prepare(store, "SELECT coalesce(max(rowid), 0) FROM events",
                           &stmt, err);
    if (rc != AW_OK)
        return rc;
    if (sqlite3_step(stmt) == SQLITE_ROW)
        *through_rowid = sqlite3_column_int64(stmt, 0);
    else
        rc = store_fail(store, err, "find the newest event");
    sqlite3_finalize(stmt);
    int64_t type_no = 0;
    if (rc == AW_OK)
        rc = store_term_no(store, event_type, false, &type_no, err);
    if (rc != AW_OK || type_no == 0)
        return rc;
    /* Rows up to the newest one read above: a row added since (by another
     * writer) is not in what the caller was told it has. */
    rc = store_prepare(store,
                       "SELECT (SELECT term FROM terms WHERE term_no = "
                       "e.zone_no), e.request_id FROM events e WHERE "
                       "e.rowid <= ?1 AND e.type_no = ?2 AND e.request_id "
                       "IS NOT NULL ORDER BY e.rowid",
                       &stmt, err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_int64(stmt, 1, *through_rowid);
    sqlite3_bind_int64(stmt, 2, type_no);
    struct row_ctx ctx = {.fn.request = fn, .ud = ud};
    rc = store_each_row(store, stmt, request_row, &ctx, err,
                        "read the requests of an event type");
    sqlite3_finalize(stmt);
    return rc;
}

/* ---- Revocations, calls, rejected ---------------------------------------- */

static int revocation_row(sqlite3_stmt *stmt, void *ctx)
{
    struct row_ctx *c = ctx;
    char entry_id[STORE_ENTRY_ID_MAX];
    aw_revocation_row row = {
        .rowid = sqlite3_column_int64(stmt, 0),
        .entry_rowid = sqlite3_column_int64(stmt, 1),
        .stream = store_column_text(stmt, 2),
        .entry_id =
            store_format_entry_id(sqlite3_column_int64(stmt, 3),
                                  sqlite3_column_int64(stmt, 4), entry_id),
        .zone_id = store_column_text(stmt, 5),
        .anchor = {(aw_anchor_kind)sqlite3_column_int(stmt, 6),
                   store_column_text(stmt, 7)},
        .action = (aw_revocation_action)sqlite3_column_int(stmt, 8),
        .at_ns = sqlite3_column_int64(stmt, 9),
        .reason = store_column_text(stmt, 10),
        .has_epoch = sqlite3_column_type(stmt, 11) != SQLITE_NULL,
        .epoch = sqlite3_column_int64(stmt, 11),
        .delivery_id = store_column_text(stmt, 12),
    };
    return c->fn.revocation(&row, c->ud);
}

int aw_store_query_revocations(aw_store *store,
                               const aw_revocation_filter *filter,
                               aw_revocation_row_fn fn, void *ud, aw_error *err)
{
    bool by_anchor = filter->anchor.kind != 0;
    if (by_anchor && filter->anchor.id == NULL)
        return aw_error_reject(err, AW_REJECT_MISSING_FIELD,
                               "anchor filter without an anchor id");
    sqlite3_stmt *stmt;
    int rc = store_stmt(store,
                        by_anchor ? STMT_REVOCATIONS_BY_ANCHOR
                                  : STMT_REVOCATIONS_BY_TIME,
                        &stmt, err);
    if (rc != AW_OK)
        return rc;
    if (by_anchor) {
        sqlite3_bind_int(stmt, 1, (int)filter->anchor.kind);
        sqlite3_bind_text(stmt, 2, filter->anchor.id, -1, SQLITE_STATIC);
    }
    sqlite3_bind_text(stmt, 3, filter->zone_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 4,
                       filter->has_since ? filter->since_ns : INT64_MIN);
    sqlite3_bind_int64(stmt, 5,
                       filter->has_until ? filter->until_ns : INT64_MAX);
    sqlite3_bind_int64(stmt, 6, store_limit(filter->limit));
    struct row_ctx ctx = {.fn.revocation = fn, .ud = ud};
    return store_each_row(store, stmt, revocation_row, &ctx, err,
                          "query revocations");
}

static int call_row(sqlite3_stmt *stmt, void *ctx)
{
    struct row_ctx *c = ctx;
    char entry_id[STORE_ENTRY_ID_MAX];
    aw_call_row row = {
        .rowid = sqlite3_column_int64(stmt, 0),
        .entry_rowid = sqlite3_column_int64(stmt, 1),
        .stream = store_column_text(stmt, 2),
        .entry_id =
            store_format_entry_id(sqlite3_column_int64(stmt, 3),
                                  sqlite3_column_int64(stmt, 4), entry_id),
        .request_id = store_column_text(stmt, 5),
        .status = sqlite3_column_int(stmt, 6),
        .occurred_at_ns = sqlite3_column_int64(stmt, 7),
        .zone_id = store_column_text(stmt, 8),
        .resource = store_column_text(stmt, 9),
        .source = store_column_text(stmt, 10),
        .is_signed = sqlite3_column_int(stmt, 11) != 0,
        .time_is_logged = sqlite3_column_int(stmt, 12) != 0,
    };
    return c->fn.call(&row, c->ud);
}

int aw_store_query_calls(aw_store *store, int64_t rowid, const char *request_id,
                         int64_t since_ns, int64_t until_ns, aw_call_row_fn fn,
                         void *ud, aw_error *err)
{
    enum store_stmt id = rowid != 0           ? STMT_CALL_BY_ROWID
                         : request_id != NULL ? STMT_CALLS_BY_REQUEST
                                              : STMT_CALLS_BY_TIME;
    sqlite3_stmt *stmt;
    int rc = store_stmt(store, id, &stmt, err);
    if (rc != AW_OK)
        return rc;
    if (rowid != 0) {
        sqlite3_bind_int64(stmt, 1, rowid);
    } else {
        sqlite3_bind_text(stmt, 1, request_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 2, since_ns);
        sqlite3_bind_int64(stmt, 3, until_ns != 0 ? until_ns : INT64_MAX);
    }
    struct row_ctx ctx = {.fn.call = fn, .ud = ud};
    return store_each_row(store, stmt, call_row, &ctx, err, "query calls");
}

int aw_store_query_calls_from(aw_store *store, int64_t from_rowid,
                              aw_call_row_fn fn, void *ud, aw_error *err)
{
    sqlite3_stmt *stmt;
    int rc = store_stmt(store, STMT_CALLS_FROM_ROWID, &stmt, err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_int64(stmt, 1, from_rowid);
    struct row_ctx ctx = {.fn.call = fn, .ud = ud};
    return store_each_row(store, stmt, call_row, &ctx, err, "query calls");
}

static int rejected_row(sqlite3_stmt *stmt, void *ctx)
{
    struct row_ctx *c = ctx;
    char entry_id[STORE_ENTRY_ID_MAX];
    const char *reason = store_column_text(stmt, 5);
    aw_rejected_row row = {
        .rowid = sqlite3_column_int64(stmt, 0),
        .entry_rowid = sqlite3_column_int64(stmt, 1),
        .stream = store_column_text(stmt, 2),
        .entry_id =
            store_format_entry_id(sqlite3_column_int64(stmt, 3),
                                  sqlite3_column_int64(stmt, 4), entry_id),
        .reason = reason ? aw_reject_reason_from_name(reason) : AW_REJECT_NONE,
        .detail = store_column_text(stmt, 6),
        .rejected_at_ns = aw_ms_to_ns_signed(sqlite3_column_int64(stmt, 3)),
    };
    return c->fn.rejected(&row, c->ud);
}

int aw_store_query_rejected(aw_store *store, int64_t since_ns, size_t limit,
                            aw_rejected_row_fn fn, void *ud, aw_error *err)
{
    sqlite3_stmt *stmt;
    int rc = store_stmt(store, STMT_REJECTED_SINCE, &stmt, err);
    if (rc != AW_OK)
        return rc;
    /* Entry time is id_ms * 1e6: the first whole ms at or after since. */
    int64_t since_ms = since_ns / 1000000;
    if (since_ns > 0 && since_ns % 1000000 != 0)
        since_ms++;
    sqlite3_bind_int64(stmt, 1, since_ms);
    sqlite3_bind_int64(stmt, 2, store_limit(limit));
    struct row_ctx ctx = {.fn.rejected = fn, .ud = ud};
    return store_each_row(store, stmt, rejected_row, &ctx, err,
                          "query rejected entries");
}
