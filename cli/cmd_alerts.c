/* cmd_alerts.c -- `auditwatch alerts`: list the alerts of the index, or
 * acknowledge one.
 *
 * Listing opens the index read-only, so it can run beside the daemon at any
 * time. --ack is the one write a person makes to the index: it records who
 * looked (a note) and when, and never changes the alert's state, since only
 * evidence resolves an alert.
 */
#include "cli/cli.h"

#include <string.h>

static const char usage[] =
    "usage: auditwatch alerts [--state open|resolved|all] [--kind KIND]\n"
    "                         [--severity medium|high|critical] [--since TIME]\n"
    "                         [--request-id ID] [--limit N] [--format F] [--db PATH]\n"
    "       auditwatch alerts --ack ID [--note TEXT] [--db PATH]\n\n"
    "Lists alerts, oldest raised first. Open alerts are the ones that still\n"
    "matter: an alert is resolved when its missing evidence arrives late.\n\n"
    "  --state S        open (default), resolved or all\n"
    "  --kind KIND      decision_missing, call_without_audit,\n"
    "                   access_after_revocation, audit_evidence_trimmed,\n"
    "                   signature_invalid, tampered_on_redelivery, caracal_anomaly,\n"
    "                   audit_dead_lettered, revocation_dead_lettered,\n"
    "                   revocation_not_consumed, audit_ingest_stalled\n"
    "  --severity S     at least this severe\n"
    "  --since TIME     raised at or after TIME (RFC 3339, now, -30s, -15m, -2h, -7d)\n"
    "  --request-id ID  alerts about one request\n"
    "  --limit N        at most N alerts\n"
    "  --ack ID         acknowledge alert ID (writes to the index)\n"
    "  --note TEXT      a note stored with --ack\n"
    "  -f, --format F   table (default), json, csv, or ocsf: one OCSF 1.3.0\n"
    "                   Detection Finding a line (open Create, resolved Close)\n"
    "  --db PATH        the index (default $AUDITWATCH_DB or ./auditwatch.db)\n\n"
    "Exit status: 0 listed or acknowledged, 1 no such alert to acknowledge,\n"
    "2 bad usage, 3 failure.\n";

enum {
    OPT_STATE = AW_CLI_OPT_BASE,
    OPT_KIND,
    OPT_SEVERITY,
    OPT_SINCE,
    OPT_REQUEST_ID,
    OPT_LIMIT,
    OPT_ACK,
    OPT_NOTE,
};

static const struct option options[] = {
    {"state", required_argument, NULL, OPT_STATE},
    {"kind", required_argument, NULL, OPT_KIND},
    {"severity", required_argument, NULL, OPT_SEVERITY},
    {"since", required_argument, NULL, OPT_SINCE},
    {"request-id", required_argument, NULL, OPT_REQUEST_ID},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"ack", required_argument, NULL, OPT_ACK},
    {"note", required_argument, NULL, OPT_NOTE},
    {0},
};

static const aw_cli_command command = {
    .name = "alerts",
    .usage = usage,
    .common = AW_CLI_WANT_DB | AW_CLI_WANT_FORMAT | AW_CLI_WANT_OCSF,
    .options = options,
};

typedef struct alerts_args {
    aw_alert_filter filter;
    const char *ack_id;
    const char *note;
    int64_t now_ns;
} alerts_args;

static int on_option(int opt, const char *arg, void *ud)
{
    alerts_args *a = ud;
    int64_t n;
    switch (opt) {
    case OPT_STATE:
        if (strcmp(arg, "all") == 0)
            a->filter.state = 0;
        else if (!(a->filter.state = aw_alert_state_from_name(arg)))
            return aw_cli_usage_error(
                &command, "--state: expected open, resolved or all, got \"%s\"",
                arg);
        return 0;
    case OPT_KIND:
        /* a misspelt kind would list nothing, as if there were no alerts */
        if (!aw_alert_kind_known(arg))
            return aw_cli_usage_error(&command,
                                      "--kind: no alert is of kind \"%s\" "
                                      "(see --help for the kinds)",
                                      arg);
        a->filter.kind = arg;
        return 0;
    case OPT_SEVERITY:
        if (strcmp(arg, "medium") && strcmp(arg, "high") &&
            strcmp(arg, "critical"))
            return aw_cli_usage_error(
                &command,
                "--severity: expected medium, high or critical, got \"%s\"",
                arg);
        a->filter.severity = arg;
        return 0;
    case OPT_SINCE:
        a->filter.has_since = true;
        return aw_cli_time_option(&command, "--since", arg, a->now_ns,
                                  &a->filter.since_ns);
    case OPT_REQUEST_ID: a->filter.request_id = arg; return 0;
    case OPT_LIMIT:
        if (aw_cli_parse_int(arg, 1, INT64_MAX, &n) != AW_OK)
            return aw_cli_usage_error(
                &command, "--limit: expected a positive integer, got \"%s\"",
                arg);
        a->filter.limit = (size_t)n;
        return 0;
    case OPT_ACK: a->ack_id = arg; return 0;
    case OPT_NOTE: a->note = arg; return 0;
    }
    return AW_EXIT_USAGE;
}

static int acknowledge(const aw_cli_common *common, const alerts_args *a)
{
    aw_store *store;
    aw_error err = {0};
    int rc = aw_cli_open_store(&command, common, AW_STORE_EXISTING, &store);
    if (rc)
        return rc;
    rc = aw_store_begin(store, &err);
    if (rc == AW_OK)
        rc = aw_store_alert_ack(store, a->ack_id, a->note, a->now_ns, &err);
    if (rc == AW_OK)
        rc = aw_store_commit(store, &err);
    else
        aw_store_rollback(store);
    aw_store_close(store);
    if (rc == AW_ERR_NOTFOUND)
        return aw_cli_fail(&command, AW_EXIT_NO, "no alert with id %s",
                           a->ack_id);
    if (rc != AW_OK)
        return aw_cli_fail(&command, AW_EXIT_FAILURE,
                           "cannot acknowledge %s: %s", a->ack_id, err.msg);
    fprintf(stderr, "auditwatch alerts: acknowledged %s\n", a->ack_id);
    return AW_EXIT_OK;
}

int aw_cmd_alerts(int argc, char **argv)
{
    alerts_args a = {.filter.state = AW_ALERT_OPEN, .now_ns = aw_cli_now_ns()};
    aw_cli_common common;
    aw_store *store;
    aw_error err = {0};
    size_t count;
    int first, rc;

    rc = aw_cli_parse(&command, argc, argv, &common, on_option, &a, &first);
    if (rc != AW_CLI_PROCEED)
        return rc;
    if ((rc = aw_cli_expect_args(&command, argc, argv, first, 0, "")) !=
        AW_CLI_PROCEED)
        return rc;
    if (a.note && !a.ack_id)
        return aw_cli_usage_error(&command, "--note goes with --ack ID");
    if (a.ack_id)
        return acknowledge(&common, &a);

    if ((rc = aw_cli_open_store(&command, &common, AW_STORE_READONLY, &store)))
        return rc;
    rc = aw_cli_print_alerts(store, &a.filter, common.format, &count, &err);
    aw_store_close(store);
    if (rc != AW_OK)
        return aw_cli_fail(&command, AW_EXIT_FAILURE, "%s", err.msg);
    return AW_EXIT_OK;
}
