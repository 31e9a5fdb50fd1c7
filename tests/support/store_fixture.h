/* store_fixture.h -- what the store tests share: a fresh index in its own
 * temporary directory, and raw entries and audit events built in memory
 * (the store takes decoded events, so tests need no decoder to feed it). */
#ifndef AW_TESTS_STORE_FIXTURE_H
#define AW_TESTS_STORE_FIXTURE_H

#include "store/store.h"

typedef struct store_fixture {
    char dir[64];
    char path[128];
    aw_store *store;
} store_fixture;

/* Makes a temporary directory and opens a new index in it (writer). */
void store_fixture_open(store_fixture *fx);
/* Closes the index if open and removes the directory with all its files. */
void store_fixture_close(store_fixture *fx);

/* A raw entry of stream with id "<ms>-<seq>" and one field data=data.
 * Caller frees with aw_raw_entry_free. */
aw_raw_entry *fixture_entry(const char *stream, const char *id,
                            const char *data);

/* An audit event with the given members; strings are borrowed, anchors
 * none. content_hash is SHA-256 of every member, so two events built from
 * the same arguments have the same content. */
aw_audit_event fixture_event(const char *id, const char *zone, const char *type,
                             const char *request_id, const char *decision,
                             int64_t occurred_at_ns);

/* Stores a raw entry for ev in stream under entry_id, then ev itself,
 * asserting success of both; returns the event's row and its put result.
 * Must be called inside a transaction. */
int64_t fixture_put_event(aw_store *store, const char *stream,
                          const char *entry_id, const aw_audit_event *ev,
                          aw_put_result *result);

/* Runs fixture_put_event in a transaction of its own. */
int64_t fixture_commit_event(aw_store *store, const char *entry_id,
                             const aw_audit_event *ev);

/* Rewrites the closed index at path as schema 16 wrote it: calls without
 * time_is_logged. */
void fixture_back_to_schema_16(const char *path);

/* Rewrites the closed index at path as schema 15 wrote it: the request
 * index in three tiers (the pairs of tiers 3 and 4 in tier 2), and no
 * tier sizes or drain cursors in meta, and what fixture_back_to_schema_16
 * restores. */
void fixture_back_to_schema_15(const char *path);

/* Rewrites the closed index at path as schema 14 wrote it: a row per
 * anchor use in each part of the anchor index, with its time less the
 * part's base_at, in place of the runs, and what fixture_back_to_schema_15
 * restores. */
void fixture_back_to_schema_14(const char *path);

/* Rewrites the closed index at path as schema 13 wrote it: the anchor
 * index keyed (anchor_no, occurred_at, event_rowid), in no parts. */
void fixture_back_to_schema_13(const char *path);

/* Rewrites the closed index at path as schema 11 wrote it: every event's
 * id_key the 8-byte hash of its id (the fixture's events keep their content
 * hashes, as every row then did), and what fixture_back_to_schema_13
 * restores. */
void fixture_back_to_schema_11(const char *path);

/* Rewrites the closed index at path as schema 10 wrote it: request keys in
 * events.request_key and events_by_request, no request tiers, and what
 * fixture_back_to_schema_11 restores. */
void fixture_back_to_schema_10(const char *path);

/* Rewrites the closed index at path as schema 7 wrote it: every entry
 * verbatim in its own row with its chain value, no evidence blocks, the
 * events_by_time index, and what fixture_back_to_schema_10 restores. */
void fixture_back_to_schema_7(const char *path);

/* Rewrites the closed index at path as schema 3 wrote it (events with
 * their words and first anchors as text, no terms table), user_version 3,
 * entries as fixture_back_to_schema_7 leaves them, keeping every row id:
 * an index "written by an older auditwatch". */
void fixture_back_to_schema_3(const char *path);

#endif /* AW_TESTS_STORE_FIXTURE_H */
