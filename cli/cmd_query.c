/* cmd_query.c -- `auditwatch query`: search the indexed audit events.
 *
 * Every filter maps onto one aw_event_filter, so the store answers from its
 * indexes; nothing is filtered after the fact. Results are ordered by
 * (occurred_at, row id), a total order that does not change when late
 * evidence is indexed before the current position, which is what makes
 * paging stable: --limit N prints N events and, when more follow, a cursor
 * "<occurred_ns>:<rowid>" on stderr ("next-cursor: ..."), to pass back with
 * --cursor. The cursor goes to stderr in every format so that stdout stays
 * pure data (JSON lines stay one kind of object, CSV one header).
 *
 * The table is compact, for people: the row's own columns. JSON lines and
 * CSV are for machines and carry what Caracal wrote, under its own names,
 * read from the verbatim raw entry (aw_cli_event_record); CSV columns name
 * the members of that record.
 */
#include "cli/cli.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: auditwatch query [--since TIME] [--until TIME] [--zone ZONE]\n"
    "                        [--decision D] [--event-type T[,T...]]\n"
    "                        [--request-id ID] [--session ID | --agent-session ID |\n"
    "                         --edge ID] [--resource R] [--application APP]\n"
    "                        [--limit N] [--cursor TOKEN] [--format F] [--db PATH]\n\n"
    "Prints the audit events that match every filter, oldest first.\n\n"
    "  --since TIME        occurred at or after TIME\n"
    "  --until TIME        occurred before TIME\n"
    "                      TIME: RFC 3339 (2026-05-21T14:00:00Z), now, -30s,\n"
    "                      -15m, -2h, -7d\n"
    "  --zone ZONE         one zone\n"
    "  --decision D        allow, deny, pending, consumed, approved, rejected\n"
    "  --event-type T,...  any of these event types (repeatable)\n"
    "  --request-id ID     one request\n"
    "  --session ID        used authority record ID (or named it in the chain)\n"
    "  --agent-session ID  used agent session ID\n"
    "  --edge ID           used delegation edge ID\n"
    "  --resource R        one resource\n"
    "  --application APP   one application\n"
    "  --limit N           at most N events; when more follow, stderr gets\n"
    "                      \"next-cursor: TOKEN\"\n"
    "  --cursor TOKEN      continue after the page that printed TOKEN\n"
    "  -f, --format F      table (default), json or csv; json and csv carry\n"
    "                      Caracal's own fields from the raw entry, and\n"
    "                      auditwatch's under \"auditwatch\" (README: JSON output)\n"
    "  --db PATH           the index (default $AUDITWATCH_DB or ./auditwatch.db)\n\n"
    "Exit status: 0 events found, 1 none, 2 bad usage, 3 failure.\n";

enum {
    OPT_SINCE = AW_CLI_OPT_BASE,
    OPT_UNTIL,
    OPT_ZONE,
    OPT_DECISION,
    OPT_EVENT_TYPE,
    OPT_REQUEST_ID,
    OPT_SESSION,
    OPT_AGENT_SESSION,
    OPT_EDGE,
    OPT_RESOURCE,
    OPT_APPLICATION,
    OPT_LIMIT,
    OPT_CURSOR,
};

static const struct option options[] = {
    {"since", required_argument, NULL, OPT_SINCE},
    {"until", required_argument, NULL, OPT_UNTIL},
    {"zone", required_argument, NULL, OPT_ZONE},
    {"decision", required_argument, NULL, OPT_DECISION},
    {"event-type", required_argument, NULL, OPT_EVENT_TYPE},
    {"request-id", required_argument, NULL, OPT_REQUEST_ID},
    {"session", required_argument, NULL, OPT_SESSION},
    {"agent-session", required_argument, NULL, OPT_AGENT_SESSION},
    {"edge", required_argument, NULL, OPT_EDGE},
    {"resource", required_argument, NULL, OPT_RESOURCE},
    {"application", required_argument, NULL, OPT_APPLICATION},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"cursor", required_argument, NULL, OPT_CURSOR},
    {0},
};

static const aw_cli_command command = {
    .name = "query",
    .usage = usage,
    .common = AW_CLI_WANT_DB | AW_CLI_WANT_FORMAT,
    .options = options,
};

#define MAX_EVENT_TYPES 32

typedef struct query_args {
    aw_event_filter filter;
    const char *types[MAX_EVENT_TYPES];
    char *type_lists[MAX_EVENT_TYPES]; /* owned copies the types point into */
    size_t ntype_lists;
    size_t limit; /* the page size the user asked for */
    int64_t now_ns;
} query_args;

static int add_event_types(query_args *a, const char *arg)
{
    char *copy, *save = NULL;
    if (a->ntype_lists == MAX_EVENT_TYPES || !(copy = strdup(arg)))
        return aw_cli_usage_error(&command, "--event-type: too many types");
    a->type_lists[a->ntype_lists++] = copy;
    for (char *t = strtok_r(copy, ",", &save); t;
         t = strtok_r(NULL, ",", &save)) {
        if (a->filter.n_event_types == MAX_EVENT_TYPES)
            return aw_cli_usage_error(
                &command, "--event-type: at most %d types", MAX_EVENT_TYPES);
        a->types[a->filter.n_event_types++] = t;
    }
    if (a->filter.n_event_types == 0)
        return aw_cli_usage_error(&command, "--event-type: empty list");
    a->filter.event_types = a->types;
    return 0;
}

static int set_anchor(query_args *a, aw_anchor_kind kind, const char *id)
{
    if (a->filter.anchor.kind && a->filter.anchor.kind != kind)
        return aw_cli_usage_error(
            &command, "use only one of --session, --agent-session, --edge");
    a->filter.anchor = (aw_anchor){kind, id};
    return 0;
}

static int parse_cursor(query_args *a, const char *arg)
{
    const char *colon = strchr(arg, ':');
    char ns[24];
    size_t n = colon ? (size_t)(colon - arg) : 0;
    if (!colon || n == 0 || n >= sizeof ns)
        goto bad;
    memcpy(ns, arg, n);
    ns[n] = '\0';
    if (aw_cli_parse_int(ns, INT64_MIN, INT64_MAX,
                         &a->filter.cursor_occurred_ns) != AW_OK ||
        aw_cli_parse_int(colon + 1, 1, INT64_MAX, &a->filter.cursor_rowid) !=
            AW_OK)
        goto bad;
    a->filter.has_cursor = true;
    return 0;
bad:
    return aw_cli_usage_error(
        &command, "--cursor: \"%s\" is not a cursor printed by query", arg);
}

static int on_option(int opt, const char *arg, void *ud)
{
    query_args *a = ud;
    aw_event_filter *f = &a->filter;
    int64_t n;
    switch (opt) {
    case OPT_SINCE:
        f->has_since = true;
        return aw_cli_time_option(&command, "--since", arg, a->now_ns,
                                  &f->since_ns);
    case OPT_UNTIL:
        f->has_until = true;
        return aw_cli_time_option(&command, "--until", arg, a->now_ns,
                                  &f->until_ns);
    case OPT_ZONE: f->zone_id = arg; return 0;
    case OPT_DECISION: f->decision = arg; return 0;
    case OPT_EVENT_TYPE: return add_event_types(a, arg);
    case OPT_REQUEST_ID: f->request_id = arg; return 0;
    case OPT_SESSION: return set_anchor(a, AW_ANCHOR_AUTHORITY_RECORD, arg);
    case OPT_AGENT_SESSION: return set_anchor(a, AW_ANCHOR_AGENT_SESSION, arg);
    case OPT_EDGE: return set_anchor(a, AW_ANCHOR_DELEGATION_EDGE, arg);
    case OPT_RESOURCE: f->resource = arg; return 0;
    case OPT_APPLICATION: f->application_id = arg; return 0;
    case OPT_LIMIT:
        if (aw_cli_parse_int(arg, 1, INT32_MAX, &n) != AW_OK)
            return aw_cli_usage_error(
                &command, "--limit: expected a positive integer, got \"%s\"",
                arg);
        a->limit = (size_t)n;
        return 0;
    case OPT_CURSOR: return parse_cursor(a, arg);
    }
    return AW_EXIT_USAGE;
}

static const char *const columns[] = {
    "occurred_at",     "event_id",     "zone",          "event_type",
    "decision",        "status",       "request_id",    "application",
    "resource",        "session",      "agent_session", "edge",
    "upstream_status", "result_class", "signed",        "stream",
    "entry_id",
};
#define NCOLS (sizeof columns / sizeof columns[0])

/* CSV: members of the machine record (aw_cli_event_record). */
static const char *const record_columns[] = {
    "id",
    "occurred_at",
    "zone_id",
    "event_type",
    "request_id",
    "decision",
    "evaluation_status",
    "policy_set_id",
    "policy_set_version_id",
    "manifest_sha",
    "anchors.session_id",
    "anchors.agent_session_id",
    "anchors.delegation_edge_id",
    "anchors.delegation_chain",
    "metadata_json.application_id",
    "metadata_json.resource",
    "metadata_json",
    "determining_policies_json",
    "diagnostics_json",
    "auditwatch.stream",
    "auditwatch.entry_id",
    "auditwatch.signed",
    "auditwatch.alerts",
};
#define NRECORD_COLS (sizeof record_columns / sizeof record_columns[0])

typedef struct query_print {
    aw_store *store;
    bool records; /* machine formats: one record a row */
    aw_error *err;
    aw_cli_out *out;
    size_t limit; /* 0: all */
    size_t seen;
    int64_t last_occurred_ns, last_rowid;
    bool more;
    int rc;
} query_print;

/* A machine record of the event, through the output layer. */
static int print_record(query_print *p, const aw_event_row *r)
{
    cJSON *record = NULL;
    int rc = aw_cli_event_record(p->store, r, &record, p->err);
    if (rc == AW_OK)
        p->rc = aw_cli_out_record(p->out, record);
    cJSON_Delete(record);
    return rc != AW_OK ? rc : p->rc;
}

static int print_event(const aw_event_row *r, void *ud)
{
    query_print *p = ud;
    if (p->limit && p->seen == p->limit) {
        p->more = true;
        return 1;
    }
    p->seen++;
    p->last_occurred_ns = r->occurred_at_ns;
    p->last_rowid = r->rowid;
    if (p->records)
        return print_record(p, r);
    aw_cli_cell cells[NCOLS] = {
        aw_cli_time(r->occurred_at_ns),
        aw_cli_str(r->event_id),
        aw_cli_str(r->zone_id),
        aw_cli_str(r->event_type),
        aw_cli_str(r->decision),
        aw_cli_str(r->evaluation_status),
        aw_cli_str(r->request_id),
        aw_cli_str(r->application_id),
        aw_cli_str(r->resource),
        aw_cli_str(r->session_id),
        aw_cli_str(r->agent_session_id),
        aw_cli_str(r->delegation_edge_id),
        r->upstream_status ? aw_cli_int(r->upstream_status) : aw_cli_str(NULL),
        aw_cli_str(r->result_class),
        aw_cli_bool(r->is_signed),
        aw_cli_str(r->stream),
        aw_cli_str(r->entry_id),
    };
    return p->rc = aw_cli_out_row(p->out, cells);
}

static int run_query(const aw_cli_common *common, query_args *a)
{
    aw_error err = {0};
    query_print p = {.limit = a->limit,
                     .records = common->format != AW_CLI_TABLE,
                     .err = &err};
    aw_store *store;
    int rc;

    if (a->filter.has_since && a->filter.has_until &&
        a->filter.since_ns >= a->filter.until_ns)
        return aw_cli_usage_error(&command, "--since must be before --until");
    if ((rc = aw_cli_open_store(&command, common, AW_STORE_READONLY, &store)))
        return rc;
    /* One row past the page tells whether another page follows. */
    a->filter.limit = a->limit ? a->limit + 1 : 0;
    p.store = store;
    p.out = p.records ? aw_cli_out_new(common->format, record_columns,
                                       NRECORD_COLS, stdout)
                      : aw_cli_out_new(common->format, columns, NCOLS, stdout);
    rc = p.out ? aw_store_query_events(store, &a->filter, print_event, &p, &err)
               : aw_error_set(&err, AW_ERR_NOMEM, "out of memory");
    aw_store_close(store);
    if (rc == 1)
        rc = AW_OK;
    if (p.rc)
        rc = aw_error_set(&err, p.rc, "out of memory");
    if (aw_cli_out_close(p.out) != AW_OK && rc == AW_OK)
        rc = aw_error_set(&err, AW_ERR_IO, "cannot write the output");
    if (rc != AW_OK)
        return aw_cli_fail(&command, AW_EXIT_FAILURE, "%s", err.msg);
    if (p.more)
        fprintf(stderr, "next-cursor: %" PRId64 ":%" PRId64 "\n",
                p.last_occurred_ns, p.last_rowid);
    return p.seen ? AW_EXIT_OK : AW_EXIT_NO;
}

int aw_cmd_query(int argc, char **argv)
{
    query_args a = {.now_ns = aw_cli_now_ns()};
    aw_cli_common common;
    int first, rc;

    rc = aw_cli_parse(&command, argc, argv, &common, on_option, &a, &first);
    if (rc == AW_CLI_PROCEED)
        rc = aw_cli_expect_args(&command, argc, argv, first, 0, "");
    if (rc == AW_CLI_PROCEED)
        rc = run_query(&common, &a);
    for (size_t i = 0; i < a.ntype_lists; i++)
        free(a.type_lists[i]);
    return rc;
}
