/* alert_view.c -- how an alert is shown, shared by `alerts` (the live
 * index) and `replay` (the alerts a rebuilt window raised), so both print
 * the same columns in every format. The OCSF form is not columns: it is one
 * Detection Finding a line, from the renderer the daemon's sinks use, so a
 * SIEM reads the same object from either.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>

static const char *const alert_columns[] = {
    "id",        "kind",        "severity",    "state",
    "zone",      "request_id",  "anchor",      "event_time",
    "raised_at", "resolved_at", "resolved_by", "late_seconds",
    "acked_at",  "ack_note",    "summary",     "evidence",
};
#define NCOLS (sizeof alert_columns / sizeof alert_columns[0])

typedef struct alert_print {
    aw_cli_out *out;
    int rc;
} alert_print;

static int print_alert(const aw_alert *a, void *ud)
{
    alert_print *p = ud;
    /* as the sinks' JSON has it (aw_alert_to_json): seconds, fractional */
    char late[32];
    snprintf(late, sizeof late, "%.9g", (double)a->late_ns / 1e9);
    aw_cli_cell cells[NCOLS] = {
        aw_cli_str(a->id),
        aw_cli_str(a->kind),
        aw_cli_str(a->severity),
        aw_cli_str(aw_alert_state_name(a->state)),
        aw_cli_str(a->zone_id),
        aw_cli_str(a->request_id),
        aw_cli_str(a->anchor),
        aw_cli_time_or_null(a->event_time_ns),
        aw_cli_time(a->raised_at_ns),
        aw_cli_time_or_null(a->resolved_at_ns),
        aw_cli_str(a->resolved_by),
        a->state == AW_ALERT_RESOLVED ? aw_cli_json(late) : aw_cli_str(NULL),
        aw_cli_time_or_null(a->acked_at_ns),
        aw_cli_str(a->ack_note),
        aw_cli_str(a->summary),
        aw_cli_json(a->evidence_json),
    };
    p->rc = aw_cli_out_row(p->out, cells);
    return p->rc;
}

typedef struct finding_print {
    size_t rows;
    bool nomem;
} finding_print;

/* A stored alert has no pending change: its state picks the activity. */
static int print_finding(const aw_alert *a, void *ud)
{
    finding_print *p = ud;
    char *line = aw_alert_to_ocsf(a, AW_ALERT_UNCHANGED);
    if (!line) {
        p->nomem = true;
        return AW_ERR_NOMEM;
    }
    fputs(line, stdout);
    fputc('\n', stdout);
    free(line);
    p->rows++;
    return 0;
}

static int print_findings(aw_store *store, const aw_alert_filter *filter,
                          size_t *count, aw_error *err)
{
    finding_print p = {0, false};
    int rc = aw_store_query_alerts(store, filter, print_finding, &p, err);
    if (p.nomem)
        rc = aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    *count = p.rows;
    if ((fflush(stdout) != 0 || ferror(stdout)) && rc == AW_OK)
        rc = aw_error_set(err, AW_ERR_IO, "cannot write the output");
    return rc;
}

int aw_cli_print_alerts(aw_store *store, const aw_alert_filter *filter,
                        aw_cli_format format, size_t *count, aw_error *err)
{
    if (format == AW_CLI_OCSF)
        return print_findings(store, filter, count, err);
    alert_print p = {aw_cli_out_new(format, alert_columns, NCOLS, stdout), 0};
    int rc;
    if (!p.out)
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    rc = aw_store_query_alerts(store, filter, print_alert, &p, err);
    if (p.rc)
        rc = aw_error_set(err, p.rc, "out of memory");
    *count = aw_cli_out_rows(p.out);
    if (aw_cli_out_close(p.out) != AW_OK && rc == AW_OK)
        rc = aw_error_set(err, AW_ERR_IO, "cannot write the output");
    return rc;
}
