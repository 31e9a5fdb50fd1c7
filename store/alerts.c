/* alerts.c -- the alerts table: the sink that always exists.
 *
 * An alert id is deterministic (the detectors hash kind + anchor + request),
 * so raising the same alert again is an upsert, and it only ever moves
 * forward: severity goes up and never down (medium < high < critical),
 * evidence is the union of every evidence array seen (first-seen order), and
 * a resolved alert stays resolved; late evidence does not reopen it.
 * Severity and state are stored as small integers so "at least high" is a
 * comparison.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "store/handle.h"

static const char *const severity_names[] = {NULL, "medium", "high",
                                             "critical"};
#define SEVERITY_MAX 3

/* 1..3, or 0 when name is not a severity. */
static int severity_rank(const char *name)
{
    for (int i = 1; name != NULL && i <= SEVERITY_MAX; i++)
        if (strcmp(name, severity_names[i]) == 0)
            return i;
    return 0;
}

const char *aw_alert_state_name(aw_alert_state state)
{
    switch (state) {
    case AW_ALERT_OPEN: return "open";
    case AW_ALERT_RESOLVED: return "resolved";
    }
    return NULL;
}

aw_alert_state aw_alert_state_from_name(const char *name)
{
    if (name != NULL && strcmp(name, "open") == 0)
        return AW_ALERT_OPEN;
    if (name != NULL && strcmp(name, "resolved") == 0)
        return AW_ALERT_RESOLVED;
    return 0;
}

static cJSON *evidence_parse(const char *json)
{
    cJSON *array = cJSON_Parse(json != NULL ? json : "[]");
    if (array != NULL && !cJSON_IsArray(array)) {
        cJSON_Delete(array);
        return NULL;
    }
    return array;
}

/* Appends to stored every element of added it lacks. *merged is the new
 * text (caller frees with cJSON_free), or NULL when nothing was added. */
static int evidence_merge(const char *stored, const char *added, char **merged,
                          aw_error *err)
{
    *merged = NULL;
    cJSON *have = evidence_parse(stored);
    cJSON *more = evidence_parse(added);
    int rc = AW_OK;
    if (more == NULL)
        rc = aw_error_reject(err, AW_REJECT_BAD_VALUE,
                             "alert evidence is not a JSON array");
    else if (have == NULL)
        rc = aw_error_set(err, AW_ERR, "stored alert evidence is damaged");
    bool grew = false;
    cJSON *todo = rc == AW_OK ? more : NULL;
    cJSON *item;
    cJSON_ArrayForEach(item, todo)
    {
        bool known = false;
        cJSON *old;
        cJSON_ArrayForEach(old, have)
        {
            if (cJSON_Compare(old, item, true)) {
                known = true;
                break;
            }
        }
        if (known)
            continue;
        cJSON *copy = cJSON_Duplicate(item, true);
        if (copy == NULL || !cJSON_AddItemToArray(have, copy)) {
            cJSON_Delete(copy);
            rc = aw_error_set(err, AW_ERR_NOMEM, "out of memory");
            break;
        }
        grew = true;
    }
    if (rc == AW_OK && grew && (*merged = cJSON_PrintUnformatted(have)) == NULL)
        rc = aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    cJSON_Delete(have);
    cJSON_Delete(more);
    return rc;
}

static int alert_insert(aw_store *store, const aw_alert *a, int severity,
                        const char *evidence, aw_error *err)
{
    sqlite3_stmt *add;
    int rc = store_stmt(store, STMT_ALERT_ADD, &add, err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_text(add, 1, a->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(add, 2, a->kind, -1, SQLITE_STATIC);
    sqlite3_bind_int(add, 3, severity);
    sqlite3_bind_int(add, 4, a->state != 0 ? (int)a->state : AW_ALERT_OPEN);
    sqlite3_bind_text(add, 5, a->zone_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(add, 6, a->request_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(add, 7, a->anchor, -1, SQLITE_STATIC);
    sqlite3_bind_int64(add, 8, a->event_time_ns);
    sqlite3_bind_int64(add, 9, a->raised_at_ns);
    sqlite3_bind_int64(add, 10, a->resolved_at_ns);
    sqlite3_bind_text(add, 11, a->resolved_by, -1, SQLITE_STATIC);
    sqlite3_bind_int64(add, 12, a->late_ns);
    sqlite3_bind_text(add, 13, evidence, -1, SQLITE_STATIC);
    sqlite3_bind_text(add, 14, a->summary, -1, SQLITE_STATIC);
    sqlite3_bind_int64(add, 15, a->acked_at_ns);
    sqlite3_bind_text(add, 16, a->ack_note, -1, SQLITE_STATIC);
    return store_exec_stmt(store, add, err, "raise alert");
}

/* Opens the resolved alert a->id again, as a describes it, when a is about
 * evidence of another time and brings evidence it does not hold yet: a new
 * gap or violation under its id, not the same one judged again (whose
 * entry may have changed: an event's earliest copy becomes its entry). The
 * evidence merges, so what was once seen reopens nothing later. */
static int alert_reopen(aw_store *store, const aw_alert *a, int severity,
                        const char *stored_evidence, int64_t stored_event_time,
                        aw_alert_change *change, aw_error *err)
{
    char *evidence = NULL;
    if (a->event_time_ns == stored_event_time)
        return AW_OK;
    int rc = evidence_merge(stored_evidence, a->evidence_json, &evidence, err);
    if (rc != AW_OK || evidence == NULL)
        return rc;
    sqlite3_stmt *up;
    rc = store_stmt(store, STMT_ALERT_REOPEN, &up, err);
    if (rc == AW_OK) {
        sqlite3_bind_text(up, 1, a->id, -1, SQLITE_STATIC);
        sqlite3_bind_int(up, 2, severity);
        sqlite3_bind_int64(up, 3, a->event_time_ns);
        sqlite3_bind_int64(up, 4, a->raised_at_ns);
        sqlite3_bind_text(up, 5, evidence, -1, SQLITE_STATIC);
        sqlite3_bind_text(up, 6, a->summary, -1, SQLITE_STATIC);
        rc = store_exec_stmt(store, up, err, "reopen alert");
    }
    cJSON_free(evidence);
    if (rc == AW_OK)
        *change = AW_ALERT_REOPENED;
    return rc;
}

/* Raises severity and merges evidence of the open alert a->id, whose
 * stored severity and evidence are given. */
static int alert_escalate(aw_store *store, const aw_alert *a, int severity,
                          int stored_severity, const char *stored_evidence,
                          aw_alert_change *change, aw_error *err)
{
    char *merged = NULL;
    int rc = evidence_merge(stored_evidence, a->evidence_json, &merged, err);
    bool higher = severity > stored_severity;
    if (rc != AW_OK || (!higher && merged == NULL))
        return rc;
    sqlite3_stmt *up;
    rc = store_stmt(store, STMT_ALERT_ESCALATE, &up, err);
    if (rc == AW_OK) {
        sqlite3_bind_text(up, 1, a->id, -1, SQLITE_STATIC);
        sqlite3_bind_int(up, 2, higher ? severity : stored_severity);
        sqlite3_bind_text(up, 3, merged ? merged : stored_evidence, -1,
                          SQLITE_STATIC);
        /* The summary explains the severity, so it follows it. */
        sqlite3_bind_text(up, 4, higher ? a->summary : NULL, -1, SQLITE_STATIC);
        rc = store_exec_stmt(store, up, err, "escalate alert");
    }
    cJSON_free(merged);
    if (rc == AW_OK)
        *change = AW_ALERT_ESCALATED;
    return rc;
}

int aw_store_alert_upsert(aw_store *store, const aw_alert *alert,
                          aw_alert_change *change, aw_error *err)
{
    *change = AW_ALERT_UNCHANGED;
    int rc = store_require_tx(store, err, "raise alert");
    if (rc != AW_OK)
        return rc;
    int severity = severity_rank(alert->severity);
    if (alert->id == NULL || alert->kind == NULL)
        return aw_error_reject(err, AW_REJECT_MISSING_FIELD, "alert without %s",
                               alert->id == NULL ? "id" : "kind");
    if (severity == 0)
        return aw_error_reject(err, AW_REJECT_BAD_VALUE,
                               "alert %s: unknown severity", alert->id);
    sqlite3_stmt *get;
    rc = store_stmt(store, STMT_ALERT_GET, &get, err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_text(get, 1, alert->id, -1, SQLITE_STATIC);
    int step = sqlite3_step(get);
    if (step == SQLITE_DONE) {
        sqlite3_reset(get);
        /* Merging into nothing validates and de-duplicates. */
        char *evidence = NULL;
        rc = evidence_merge("[]", alert->evidence_json, &evidence, err);
        if (rc == AW_OK)
            rc = alert_insert(store, alert, severity,
                              evidence != NULL ? evidence : "[]", err);
        cJSON_free(evidence);
        if (rc == AW_OK)
            *change = AW_ALERT_RAISED;
        return rc;
    }
    if (step != SQLITE_ROW) {
        rc = store_fail(store, err, "look up alert");
        sqlite3_reset(get);
        return rc;
    }
    int stored_severity = sqlite3_column_int(get, 0);
    bool resolved = sqlite3_column_int(get, 1) == AW_ALERT_RESOLVED;
    int64_t stored_event_time = sqlite3_column_int64(get, 3);
    const char *text = store_column_text(get, 2);
    char *stored_evidence = strdup(text != NULL ? text : "[]");
    sqlite3_reset(get);
    if (stored_evidence == NULL)
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    rc = resolved ? alert_reopen(store, alert, severity, stored_evidence,
                                 stored_event_time, change, err)
                  : alert_escalate(store, alert, severity, stored_severity,
                                   stored_evidence, change, err);
    free(stored_evidence);
    return rc;
}

int aw_store_alert_resolve(aw_store *store, const char *id,
                           const char *resolved_by, int64_t resolved_at_ns,
                           int64_t late_ns, aw_alert_change *change,
                           aw_error *err)
{
    *change = AW_ALERT_UNCHANGED;
    int rc = store_require_tx(store, err, "resolve alert");
    sqlite3_stmt *up;
    if (rc == AW_OK)
        rc = store_stmt(store, STMT_ALERT_RESOLVE, &up, err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_text(up, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(up, 2, resolved_at_ns);
    sqlite3_bind_text(up, 3, resolved_by, -1, SQLITE_STATIC);
    sqlite3_bind_int64(up, 4, late_ns);
    rc = store_exec_stmt(store, up, err, "resolve alert");
    if (rc == AW_OK && sqlite3_changes(store->db) > 0)
        *change = AW_ALERT_RESOLVED_NOW;
    return rc;
}

int aw_store_alert_ack(aw_store *store, const char *id, const char *note,
                       int64_t at_ns, aw_error *err)
{
    int rc = store_require_tx(store, err, "acknowledge alert");
    sqlite3_stmt *up;
    if (rc == AW_OK)
        rc = store_stmt(store, STMT_ALERT_ACK, &up, err);
    if (rc != AW_OK)
        return rc;
    sqlite3_bind_text(up, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(up, 2, at_ns);
    sqlite3_bind_text(up, 3, note, -1, SQLITE_STATIC);
    rc = store_exec_stmt(store, up, err, "acknowledge alert");
    if (rc == AW_OK && sqlite3_changes(store->db) == 0)
        rc = aw_error_set(err, AW_ERR_NOTFOUND, "no alert %s", id);
    return rc;
}

static int alert_row(sqlite3_stmt *stmt, void *ctx)
{
    struct row_ctx *c = ctx;
    int severity = sqlite3_column_int(stmt, 2);
    aw_alert alert = {
        .id = store_column_text(stmt, 0),
        .kind = store_column_text(stmt, 1),
        .severity = severity >= 1 && severity <= SEVERITY_MAX
                        ? severity_names[severity]
                        : "unknown",
        .state = (aw_alert_state)sqlite3_column_int(stmt, 3),
        .zone_id = store_column_text(stmt, 4),
        .request_id = store_column_text(stmt, 5),
        .anchor = store_column_text(stmt, 6),
        .event_time_ns = sqlite3_column_int64(stmt, 7),
        .raised_at_ns = sqlite3_column_int64(stmt, 8),
        .resolved_at_ns = sqlite3_column_int64(stmt, 9),
        .resolved_by = store_column_text(stmt, 10),
        .late_ns = sqlite3_column_int64(stmt, 11),
        .evidence_json = store_column_text(stmt, 12),
        .summary = store_column_text(stmt, 13),
        .acked_at_ns = sqlite3_column_int64(stmt, 14),
        .ack_note = store_column_text(stmt, 15),
    };
    return c->fn.alert(&alert, c->ud);
}

int aw_store_query_alerts(aw_store *store, const aw_alert_filter *filter,
                          aw_alert_fn fn, void *ud, aw_error *err)
{
    int min_severity = 0;
    if (filter->severity != NULL &&
        (min_severity = severity_rank(filter->severity)) == 0)
        return aw_error_reject(err, AW_REJECT_BAD_VALUE,
                               "unknown severity (medium, high, critical)");
    enum store_stmt id = filter->id != NULL           ? STMT_ALERTS_BY_ID
                         : filter->request_id != NULL ? STMT_ALERTS_BY_REQUEST
                                                      : STMT_ALERTS_BY_TIME;
    sqlite3_stmt *stmt;
    int rc = store_stmt(store, id, &stmt, err);
    if (rc != AW_OK)
        return rc;
    if (id == STMT_ALERTS_BY_ID)
        sqlite3_bind_text(stmt, 1, filter->id, -1, SQLITE_STATIC);
    sqlite3_bind_int(stmt, 2, (int)filter->state);
    sqlite3_bind_text(stmt, 3, filter->kind, -1, SQLITE_STATIC);
    sqlite3_bind_int(stmt, 4, min_severity);
    sqlite3_bind_text(stmt, 5, filter->request_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 6,
                       filter->has_since ? filter->since_ns : INT64_MIN);
    sqlite3_bind_int64(stmt, 7, store_limit(filter->limit));
    struct row_ctx ctx = {.fn.alert = fn, .ud = ud};
    return store_each_row(store, stmt, alert_row, &ctx, err, "query alerts");
}
