/* cli.h -- helpers shared by the subcommands of the auditwatch binary
 * (private to cli/; never included from another module).
 *
 * Four things every subcommand needs, written once:
 *  - option parsing: getopt_long over the command's own options plus the
 *    common ones (--help, --db, --format, --progress), one clear line on
 *    stderr and exit status 2 for anything malformed;
 *  - time arguments: RFC 3339, or relative to now ("-15m", "+2h", "-7d",
 *    "-30s", "now"), and durations ("30", "30s", "5m", "1.5h");
 *  - one output layer: a list of column names, then rows of typed cells,
 *    written as an aligned table, JSON lines or RFC 4180 CSV. Commands never
 *    print data themselves, so the three formats cannot drift apart;
 *  - the small shared chores: opening the index, progress lines on stderr,
 *    blocking Redis connections, evidence bundles, stream names.
 */
#ifndef AW_CLI_CLI_H
#define AW_CLI_CLI_H

#include <getopt.h>
#include <stdio.h>

#include "cli/commands.h"
#include "consumer/consumer.h"

struct redisContext;
struct cJSON;

/* ---- Options ------------------------------------------------------------ */

typedef enum aw_cli_format {
    AW_CLI_TABLE = 0,
    AW_CLI_JSON,
    AW_CLI_CSV,
    AW_CLI_OCSF, /* alerts only (AW_CLI_WANT_OCSF): OCSF Detection Findings */
} aw_cli_format;

/* Which common options a command accepts. --help is always accepted. */
enum {
    AW_CLI_WANT_DB = 1 << 0,       /* --db PATH */
    AW_CLI_WANT_FORMAT = 1 << 1,   /* --format table|json|csv */
    AW_CLI_WANT_PROGRESS = 1 << 2, /* --progress */
    AW_CLI_WANT_OCSF = 1 << 3,     /* --format also takes ocsf */
    /* --request-id-field, --status-field, --time-field: the NDJSON names of
     * an access log's calls (import-calls, run --calls-log) */
    AW_CLI_WANT_CALL_FIELDS = 1 << 4,
};

/* Long-only option values start here, above every short option letter. */
#define AW_CLI_OPT_BASE 0x100

/* The values of the common options after parsing. */
typedef struct aw_cli_common {
    const char *db;       /* --db, else $AUDITWATCH_DB, else ./auditwatch.db */
    bool db_given;        /* --db was on the command line */
    aw_cli_format format; /* default table */
    bool progress;        /* --progress, or stderr is a terminal */
    aw_call_fields call_fields; /* AW_CLI_WANT_CALL_FIELDS; NULLs: defaults */
} aw_cli_common;

typedef struct aw_cli_command {
    const char *name;             /* "query" */
    const char *usage;            /* the --help text (see below) */
    unsigned common;              /* AW_CLI_WANT_* */
    const char *shortopts;        /* the command's own short options */
    const struct option *options; /* its own long options, {0}-terminated */
    /* AW_CLI_WANT_CALL_FIELDS: usage ends before those options' lines,
     * printed with their help from this (0-based) column on, the command's
     * own options' column, and then this text */
    int call_fields_column;
    const char *usage_after_call_fields;
} aw_cli_command;

/* Called for each of the command's own options; arg is NULL for options
 * without an argument. Returns 0, or AW_EXIT_USAGE after aw_cli_usage_error. */
typedef int (*aw_cli_option_fn)(int opt, const char *arg, void *ud);

/* Return value of aw_cli_parse when the command should go on. */
#define AW_CLI_PROCEED (-1)

/* Parses argv (argv[0] is the command name). Fills common, calls fn for the
 * command's own options and sets *first_arg to the index of the first
 * positional argument (getopt permutes them to the end). Returns
 * AW_CLI_PROCEED, or the exit status to return at once: 0 after --help
 * (usage printed on stdout), 2 after a bad option (one line on stderr). */
int aw_cli_parse(const aw_cli_command *cmd, int argc, char **argv,
                 aw_cli_common *common, aw_cli_option_fn fn, void *ud,
                 int *first_arg);

/* "auditwatch <cmd>: <message> (see 'auditwatch <cmd> --help')" on stderr;
 * returns AW_EXIT_USAGE. */
int aw_cli_usage_error(const aw_cli_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "auditwatch <cmd>: <message>" on stderr; returns status. */
int aw_cli_fail(const aw_cli_command *cmd, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Checks that exactly `want` positional arguments remain. Returns
 * AW_CLI_PROCEED or AW_EXIT_USAGE (message printed). */
int aw_cli_expect_args(const aw_cli_command *cmd, int argc, char **argv,
                       int first_arg, int want, const char *what);

/* A decimal integer in [min, max], nothing else. 0 or AW_ERR_INVALID. */
int aw_cli_parse_int(const char *arg, int64_t min, int64_t max, int64_t *out);

/* A point in time: RFC 3339 (any offset), "now", or "-<duration>" /
 * "+<duration>" with a unit (aw_cli_parse_duration), counted from now_ns. Fails with reason BAD_TIME and a
 * message naming the forms that are accepted. */
int aw_cli_parse_time(const char *arg, int64_t now_ns, int64_t *out_ns,
                      aw_error *err);
/* Same, for an option: prints the usage error itself. Returns 0 or
 * AW_EXIT_USAGE. */
int aw_cli_time_option(const aw_cli_command *cmd, const char *option,
                       const char *arg, int64_t now_ns, int64_t *out_ns);

#define AW_CLI_SECONDS      1000000000LL
#define AW_CLI_MILLISECONDS 1000000LL
/* The longest grace a detector takes: a year. */
#define AW_CLI_GRACE_MAX_NS (366LL * 86400 * 1000000000LL)

/* A duration: "30", "30s", "1.5m", "2h", "7d", "250ms". A bare number is
 * counted in bare_unit_ns (1e9: seconds; 1e6: milliseconds). Refuses
 * negative values and anything above max_ns. 0 or AW_ERR_INVALID. */
int aw_cli_parse_duration(const char *arg, int64_t bare_unit_ns, int64_t max_ns,
                          int64_t *out_ns);
/* Same, for an option: prints the usage error itself. 0 or AW_EXIT_USAGE. */
int aw_cli_duration_option(const aw_cli_command *cmd, const char *option,
                           const char *arg, int64_t bare_unit_ns,
                           int64_t max_ns, int64_t *out_ns);

/* --enforcer-group PATTERN (doctor, run): a shell glob naming revocation
 * enforcers' groups, appended to patterns (at most
 * AW_CLI_MAX_ENFORCER_GROUPS; none: aw_enforcer_group_matches' defaults).
 * 0 or AW_EXIT_USAGE (printed). */
#define AW_CLI_MAX_ENFORCER_GROUPS 16
int aw_cli_enforcer_group_option(
    const aw_cli_command *cmd, const char *arg,
    const char *patterns[AW_CLI_MAX_ENFORCER_GROUPS], size_t *npatterns);

/* The wall clock, ns since the epoch. */
int64_t aw_cli_now_ns(void);

/* ---- Output ----------------------------------------------------------- */

typedef enum aw_cli_kind {
    AW_CLI_NULL = 0, /* absent: null / empty cell */
    AW_CLI_STR,      /* text (made printable in tables) */
    AW_CLI_INT,
    AW_CLI_TIME, /* ns since the epoch, shown as RFC 3339 UTC */
    AW_CLI_BOOL,
    AW_CLI_JSON_TEXT, /* JSON text: embedded as-is in JSON lines */
} aw_cli_kind;

typedef struct aw_cli_cell {
    aw_cli_kind kind;
    const char *s; /* STR, JSON_TEXT; borrowed for the call */
    int64_t i;     /* INT, TIME, BOOL */
} aw_cli_cell;

/* Cell constructors; a NULL string gives a NULL cell. */
aw_cli_cell aw_cli_str(const char *s);
aw_cli_cell aw_cli_int(int64_t i);
aw_cli_cell aw_cli_time(int64_t ns);
/* A time where 0 means "not yet" (resolved_at, acked_at). */
aw_cli_cell aw_cli_time_or_null(int64_t ns);
aw_cli_cell aw_cli_bool(bool b);
aw_cli_cell aw_cli_json(const char *json);

typedef struct aw_cli_out aw_cli_out;

/* Starts output of rows with ncols columns named columns[] (borrowed; must
 * outlive the handle) to fp. Tables keep the first rows to size the
 * columns, then stream. Returns NULL on memory exhaustion. */
aw_cli_out *aw_cli_out_new(aw_cli_format format, const char *const *columns,
                           size_t ncols, FILE *fp);
/* One row of ncols cells (copied). 0, or AW_ERR_NOMEM. */
int aw_cli_out_row(aw_cli_out *out, const aw_cli_cell *cells);
/* Rows written so far. */
size_t aw_cli_out_rows(const aw_cli_out *out);
/* One row given as a JSON object (cJSON, borrowed). JSON lines print it
 * whole, nested objects included; tables and CSV take one cell per column,
 * each column naming a member, or a nested one as "outer.inner": strings
 * as text, absent or null as null, anything else as its JSON text. So a
 * command builds each row once and every format shows the same data.
 * 0, or AW_ERR_NOMEM. */
int aw_cli_out_record(aw_cli_out *out, const struct cJSON *record);
/* Flushes, frees. 0, or AW_ERR_IO when writing failed. NULL is a no-op. */
int aw_cli_out_close(aw_cli_out *out);

/* ---- Progress on stderr -------------------------------------------------- */

/* A "\r..." line redrawn at most a few times a second, only when enabled;
 * when stderr is no terminal (--progress into a log), plain lines, one a
 * second, with no control characters. */
typedef struct aw_cli_progress {
    bool enabled;
    bool drawn;
    int terminal; /* stderr is one: 1, is not: -1, not asked yet: 0 */
    int64_t last_ns;
} aw_cli_progress;

void aw_cli_progress_update(aw_cli_progress *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Clears the line if one was drawn. */
void aw_cli_progress_end(aw_cli_progress *p);

/* ---- Shared chores ------------------------------------------------------ */

/* Opens common->db with flags; on failure prints why and returns the exit
 * status (3), else 0 with *out open. */
int aw_cli_open_store(const aw_cli_command *cmd, const aw_cli_common *common,
                      unsigned flags, aw_store **out);

/* The value of key in a reply laid out as [key, value, key, value...]
 * (XINFO's replies under RESP2), borrowed from map; NULL when map is not an
 * array or has no such key (a field this Redis version does not report). */
struct redisReply;
const struct redisReply *aw_redis_map_get(const struct redisReply *map,
                                          const char *key);

/* ---- Evidence bundles (schema/bundle-format.md) ------------------------- */

#define AW_BUNDLE_FORMAT  "auditwatch-bundle"
#define AW_BUNDLE_VERSION 1

typedef struct aw_bundle_stream_count {
    const char *stream;
    int64_t entries;
} aw_bundle_stream_count;

/* The header of a bundle. Strings and the stream array are borrowed: from
 * the writer's memory when packing, from the mapped file when reading (then
 * streams is NULL: the per-stream counts are informative only). */
typedef struct aw_bundle_info {
    int version;
    int64_t since_ms, until_ms; /* entry-id window [since, until) */
    const char *source;         /* path of the index exported from */
    size_t source_len;
    int64_t created_at_ns;
    int64_t entries, truncated;
    const aw_bundle_stream_count *streams;
    size_t nstreams;
    uint64_t body_bytes;
    unsigned char body_sha256[32];
} aw_bundle_info;

/* Writes the header map to fp. 0, or AW_ERR_IO. */
int aw_cli_bundle_write_header(FILE *fp, const aw_bundle_info *info,
                               aw_error *err);

/* A bundle open for reading: the file is mapped, the header parsed and the
 * body's length and SHA-256 checked before any entry is handed out. */
typedef struct aw_bundle aw_bundle;

/* AW_ERR_IO when unreadable; AW_ERR_INVALID when not a bundle, of an
 * unknown version, truncated, or its body does not hash to the header's
 * SHA-256. On success *out is freed with aw_cli_bundle_close. */
int aw_cli_bundle_open(const char *path, aw_bundle **out, aw_error *err);
const aw_bundle_info *aw_cli_bundle_info(const aw_bundle *b);
/* The next entry of the body (caller frees with aw_raw_entry_free), or
 * *entry NULL at the end. Entries must come in (id_ms, id_seq) order: a
 * bundle that is not sorted fails with AW_ERR_INVALID. */
int aw_cli_bundle_next(aw_bundle *b, aw_raw_entry **entry, aw_error *err);
void aw_cli_bundle_close(aw_bundle *b);

/* Milliseconds m with m * 1e6 >= ns: the entry-id window matching a time
 * window given in ns. */
int64_t aw_cli_ns_to_ms_ceil(int64_t ns);

/* The alerts table view shared by `alerts` and `replay`: every alert the
 * filter matches, through the output layer. *count gets how many. */
int aw_cli_print_alerts(aw_store *store, const aw_alert_filter *filter,
                        aw_cli_format format, size_t *count, aw_error *err);

/* The machine form of an audit event (`query`, `trace`; README "JSON
 * output"): Caracal's own fields read from the event's verbatim raw entry
 * (the members of `data`, with determining_policies_json, diagnostics_json
 * and metadata_json as JSON values), an "anchors" object (session_id,
 * agent_session_id, delegation_edge_id, delegation_chain from the
 * metadata) and auditwatch's own keys under "auditwatch" (source, stream,
 * entry_id, row_id, signed, time, alerts: the alerts of the request). When
 * the raw entry is missing or unreadable, the row's columns stand in and
 * auditwatch.raw_entry says why. *out is a new object (cJSON_Delete). */
int aw_cli_event_record(aw_store *store, const aw_event_row *row,
                        struct cJSON **out, aw_error *err);

/* The entry an audit event's raw entry holds: raw itself, or -- for an
 * entry of Caracal's audit DLQ (DESIGN §8: `src_data`, `reason`,
 * `received_at`) -- the original it carries, with *letter the dead letter
 * (owns that original; aw_dead_letter_free). *letter is NULL otherwise. An
 * event record shows the mark as auditwatch.dead_letter {stream, reason,
 * received_at}; `trace` in its detail column. */
const aw_raw_entry *aw_cli_audit_original(const aw_raw_entry *raw,
                                          aw_dead_letter **letter);

/* The machine form of other evidence in a request's story (`trace`):
 * a revocation or an observed call is the fields of its raw entry (an
 * imported access-log line as the JSON object it is; stream fields as
 * strings, signatures left out) with "auditwatch" holding source, stream,
 * entry_id, row_id, time and the decoded "revocation" or "call"; an alert,
 * auditwatch's own, is {"auditwatch": {source, time, alert}}. *out is a new
 * object (cJSON_Delete). */
int aw_cli_revocation_record(aw_store *store, const aw_revocation_row *row,
                             struct cJSON **out, aw_error *err);
int aw_cli_call_record(aw_store *store, const aw_call_row *row,
                       struct cJSON **out, aw_error *err);
int aw_cli_alert_record(const aw_alert *alert, struct cJSON **out,
                        aw_error *err);

/* Names of the stream roles as "audit=caracal.audit.events" pairs: a
 * --stream ROLE=NAME argument sets one role's stream name in names[]
 * (indexed by aw_stream_role; NULL until given). Returns 0 or
 * AW_EXIT_USAGE (printed). */
int aw_cli_stream_option(const aw_cli_command *cmd, const char *arg,
                         const char *names[AW_ROLE_COUNT]);
/* Every role's stream once the options are read (aw_stream_names_resolve:
 * a dead-letter stream not given follows its origin's name). Returns 0 or
 * AW_EXIT_USAGE (printed). */
int aw_cli_resolve_streams(const aw_cli_command *cmd,
                           const char *const given[AW_ROLE_COUNT],
                           aw_stream_names *out);

/* The two HMAC keys, as `run` finds them: each from its file when given,
 * else from the file $AUDIT_HMAC_KEY_FILE / $STREAMS_HMAC_KEY_FILE names,
 * else from Caracal's hex variable ($AUDIT_HMAC_KEY, $STREAMS_HMAC_KEY),
 * else NULL. On error neither is returned and err names the file or
 * variable (never the key). */
int aw_cli_load_keys(const char *audit_file, const char *streams_file,
                     aw_hmac_key **audit, aw_hmac_key **streams, aw_error *err);

/* Empties the ingest handle's list of alert changes: one-shot commands
 * (`replay`, `import-calls`) read alerts from the index, and the list is
 * for the daemon's live sinks; left alone it would grow with every batch. */
void aw_cli_drop_alert_changes(aw_ingest *ing);

/* A Redis URL option, checked now (aw_redis_address_parse) so that a bad
 * one is a usage error. Returns 0 or AW_EXIT_USAGE (printed). */
int aw_cli_redis_option(const aw_cli_command *cmd, const char *option,
                        const char *arg);

#endif /* AW_CLI_CLI_H */
