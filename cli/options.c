/* options.c -- argument parsing shared by every subcommand.
 *
 * Each command declares its own getopt_long options; the common ones
 * (--help, --db, --format, --progress) are appended here so they are spelled
 * and handled the same way everywhere. Anything malformed ends in exactly
 * one line on stderr that names the command and the option, and exit status
 * 2, so a script can tell "you called me wrong" from "the answer is no" (1)
 * and "something broke" (3).
 *
 * Time arguments accept RFC 3339 (any offset, up to 9 fraction digits, via
 * event/) or a relative form counted back from now or forward: "-30s",
 * "-15m", "+1h", "-1.5d", and "now". A relative time is resolved once, when
 * the command starts, so --since and --until of one invocation agree on
 * "now". Durations are one syntax for every command: a number with an
 * optional fraction and a unit (ms, s, m, h, d); a bare number is in the
 * option's own unit (seconds, or milliseconds for the -ms options).
 */
#include "cli/cli.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
    OPT_HELP = 'h',
    OPT_REQUEST_ID_FIELD = AW_CLI_OPT_BASE - 6,
    OPT_STATUS_FIELD = AW_CLI_OPT_BASE - 5,
    OPT_TIME_FIELD = AW_CLI_OPT_BASE - 4,
    OPT_DB = AW_CLI_OPT_BASE - 3,
    OPT_FORMAT = AW_CLI_OPT_BASE - 2,
    OPT_PROGRESS = AW_CLI_OPT_BASE - 1,
};

#define MAX_OPTIONS 48

/* AW_CLI_WANT_CALL_FIELDS: getopt's entries and their --help lines. */
static const struct call_field_option {
    const char *name; /* the option without "--"; its argument is NAME */
    int opt;
    const char *help;
} call_field_options[] = {
    {"request-id-field", OPT_REQUEST_ID_FIELD,
     "field of the request id (default request_id)"},
    {"status-field", OPT_STATUS_FIELD,
     "field of the HTTP status (default status)"},
    {"time-field", OPT_TIME_FIELD, "field of the time (default occurred_at)"},
};
#define NCALL_FIELD_OPTIONS                                                    \
    (sizeof call_field_options / sizeof *call_field_options)

static const char *call_field_option_name(int opt)
{
    for (size_t i = 0; i < NCALL_FIELD_OPTIONS; i++)
        if (call_field_options[i].opt == opt)
            return call_field_options[i].name;
    return "?";
}

/* "  --name NAME", the help from column (0-based) on, per option. */
static void print_call_field_options(FILE *fp, int column)
{
    for (size_t i = 0; i < NCALL_FIELD_OPTIONS; i++) {
        int width = fprintf(fp, "  --%s NAME", call_field_options[i].name);
        assert(width < column); /* a command's column fits its options */
        fprintf(fp, "%*s%s\n", column - width, "", call_field_options[i].help);
    }
}

/* cmd's --help: its text, with the call-field options' lines in place. */
static int print_usage(const aw_cli_command *cmd)
{
    fputs(cmd->usage, stdout);
    if (cmd->common & AW_CLI_WANT_CALL_FIELDS) {
        print_call_field_options(stdout, cmd->call_fields_column);
        fputs(cmd->usage_after_call_fields, stdout);
    }
    return fflush(stdout) == 0 ? AW_EXIT_OK : AW_EXIT_FAILURE;
}

int aw_cli_usage_error(const aw_cli_command *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "auditwatch %s: ", cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'auditwatch %s --help')\n", cmd->name);
    return AW_EXIT_USAGE;
}

int aw_cli_fail(const aw_cli_command *cmd, int status, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "auditwatch %s: ", cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return status;
}

static int parse_format(const char *arg, bool ocsf_too, aw_cli_format *out)
{
    if (strcmp(arg, "table") == 0)
        *out = AW_CLI_TABLE;
    else if (strcmp(arg, "json") == 0)
        *out = AW_CLI_JSON;
    else if (strcmp(arg, "csv") == 0)
        *out = AW_CLI_CSV;
    else if (ocsf_too && strcmp(arg, "ocsf") == 0)
        *out = AW_CLI_OCSF;
    else
        return AW_ERR_INVALID;
    return AW_OK;
}

/* The argument getopt just looked at, for messages. */
static const char *last_arg(char **argv)
{
    return optind > 0 && argv[optind - 1] ? argv[optind - 1] : "?";
}

int aw_cli_parse(const aw_cli_command *cmd, int argc, char **argv,
                 aw_cli_common *common, aw_cli_option_fn fn, void *ud,
                 int *first_arg)
{
    struct option longopts[MAX_OPTIONS];
    size_t n = 0;
    char shortopts[64];

    const char *env_db = getenv("AUDITWATCH_DB");
    common->db = env_db && *env_db ? env_db : "./auditwatch.db";
    common->db_given = false;
    common->format = AW_CLI_TABLE;
    common->progress = isatty(STDERR_FILENO) == 1;
    common->call_fields = (aw_call_fields){0};

    longopts[n++] = (struct option){"help", no_argument, NULL, OPT_HELP};
    if (cmd->common & AW_CLI_WANT_DB)
        longopts[n++] = (struct option){"db", required_argument, NULL, OPT_DB};
    if (cmd->common & AW_CLI_WANT_FORMAT)
        longopts[n++] =
            (struct option){"format", required_argument, NULL, OPT_FORMAT};
    if (cmd->common & AW_CLI_WANT_PROGRESS)
        longopts[n++] =
            (struct option){"progress", no_argument, NULL, OPT_PROGRESS};
    for (size_t i = 0;
         cmd->common & AW_CLI_WANT_CALL_FIELDS && i < NCALL_FIELD_OPTIONS; i++)
        longopts[n++] =
            (struct option){call_field_options[i].name, required_argument, NULL,
                            call_field_options[i].opt};
    for (const struct option *o = cmd->options; o && o->name; o++) {
        assert(n + 1 < MAX_OPTIONS);
        longopts[n++] = *o;
    }
    longopts[n] = (struct option){0};
    /* ':' first: report a missing argument as ':' rather than '?'. */
    snprintf(shortopts, sizeof shortopts, ":h%s%s",
             cmd->shortopts ? cmd->shortopts : "",
             cmd->common & AW_CLI_WANT_FORMAT ? "f:" : "");

    opterr = 0;
    optind = 0; /* GNU: full re-initialisation */
    for (;;) {
        int opt = getopt_long(argc, argv, shortopts, longopts, NULL);
        if (opt == -1)
            break;
        switch (opt) {
        case OPT_HELP: return print_usage(cmd);
        case OPT_DB:
            if (!*optarg)
                return aw_cli_usage_error(cmd, "--db: empty path");
            common->db = optarg;
            common->db_given = true;
            break;
        case 'f':
        case OPT_FORMAT:
            if (parse_format(optarg, cmd->common & AW_CLI_WANT_OCSF,
                             &common->format) != AW_OK)
                return aw_cli_usage_error(
                    cmd, "--format: expected table, json%s csv%s, got \"%s\"",
                    cmd->common & AW_CLI_WANT_OCSF ? "," : " or",
                    cmd->common & AW_CLI_WANT_OCSF ? " or ocsf" : "", optarg);
            break;
        case OPT_PROGRESS: common->progress = true; break;
        case OPT_REQUEST_ID_FIELD:
        case OPT_STATUS_FIELD:
        case OPT_TIME_FIELD:
            if (!*optarg)
                return aw_cli_usage_error(cmd, "--%s: empty field name",
                                          call_field_option_name(opt));
            *(opt == OPT_REQUEST_ID_FIELD ? &common->call_fields.request_id
              : opt == OPT_STATUS_FIELD   ? &common->call_fields.status
                                          : &common->call_fields.occurred_at) =
                optarg;
            break;
        case ':':
            return aw_cli_usage_error(cmd, "%s needs an argument",
                                      last_arg(argv));
        case '?':
            if (strncmp(last_arg(argv), "--", 2) != 0 && optopt > 0 &&
                optopt < 128 && isalnum(optopt))
                return aw_cli_usage_error(cmd, "unknown option -%c", optopt);
            return aw_cli_usage_error(cmd, "unknown or malformed option %s",
                                      last_arg(argv));
        default: {
            int rc = fn ? fn(opt, optarg, ud) : AW_EXIT_USAGE;
            if (rc != 0)
                return rc;
        }
        }
    }
    *first_arg = optind;
    return AW_CLI_PROCEED;
}

int aw_cli_expect_args(const aw_cli_command *cmd, int argc, char **argv,
                       int first_arg, int want, const char *what)
{
    int have = argc - first_arg;
    if (have < want)
        return aw_cli_usage_error(cmd, "missing %s", what);
    if (have > want)
        return aw_cli_usage_error(cmd, "unexpected argument \"%s\"",
                                  argv[first_arg + want]);
    return AW_CLI_PROCEED;
}

int aw_cli_parse_int(const char *arg, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    long long v;
    if (!arg || !*arg || isspace((unsigned char)*arg))
        return AW_ERR_INVALID;
    errno = 0;
    v = strtoll(arg, &end, 10);
    if (errno || *end || v < min || v > max)
        return AW_ERR_INVALID;
    *out = v;
    return AW_OK;
}

int64_t aw_cli_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int aw_cli_parse_duration(const char *arg, int64_t bare_unit_ns, int64_t max_ns,
                          int64_t *out_ns)
{
    static const struct {
        const char *suffix;
        int64_t ns;
    } units[] = {{"ms", 1000000LL},
                 {"s", 1000000000LL},
                 {"m", 60000000000LL},
                 {"h", 3600000000000LL},
                 {"d", 86400000000000LL}};
    char *end;
    double v, ns;
    int64_t unit_ns = 0;
    if (!arg || !isdigit((unsigned char)*arg))
        return AW_ERR_INVALID;
    errno = 0;
    v = strtod(arg, &end);
    if (errno || end == arg)
        return AW_ERR_INVALID;
    if (!*end)
        unit_ns = bare_unit_ns;
    for (size_t i = 0; !unit_ns && i < sizeof units / sizeof *units; i++)
        if (strcmp(end, units[i].suffix) == 0)
            unit_ns = units[i].ns;
    if (!unit_ns)
        return AW_ERR_INVALID;
    /* In double first, so a huge value is refused instead of overflowing. */
    ns = v * (double)unit_ns;
    if (!(ns >= 0) || ns > (double)max_ns)
        return AW_ERR_INVALID;
    *out_ns = (int64_t)(ns + 0.5);
    return AW_OK;
}

int aw_cli_duration_option(const aw_cli_command *cmd, const char *option,
                           const char *arg, int64_t bare_unit_ns,
                           int64_t max_ns, int64_t *out_ns)
{
    if (aw_cli_parse_duration(arg, bare_unit_ns, max_ns, out_ns) == AW_OK)
        return 0;
    return aw_cli_usage_error(
        cmd,
        "%s: expected a duration like 30, 30s, 1.5m, 2h or 7d "
        "(a bare number is %s), got \"%s\"",
        option, bare_unit_ns == 1000000LL ? "milliseconds" : "seconds", arg);
}

/* "-2h" counts back from now, "+2h" forward; the unit is required. */
static int parse_relative(const char *arg, int64_t now_ns, int64_t *out_ns)
{
    int64_t amount;
    size_t len = strlen(arg);
    if (len < 3 || (arg[0] != '-' && arg[0] != '+') ||
        isdigit((unsigned char)arg[len - 1]))
        return AW_ERR_INVALID;
    /* Bounded so the sum cannot overflow: 100 years either way at most. */
    if (aw_cli_parse_duration(arg + 1, 0, 100LL * 366 * 86400 * 1000000000LL,
                              &amount) != AW_OK)
        return AW_ERR_INVALID;
    *out_ns = arg[0] == '-' ? now_ns - amount : now_ns + amount;
    return AW_OK;
}

int aw_cli_parse_time(const char *arg, int64_t now_ns, int64_t *out_ns,
                      aw_error *err)
{
    if (strcmp(arg, "now") == 0) {
        *out_ns = now_ns;
        return AW_OK;
    }
    if (arg[0] == '-' || arg[0] == '+') {
        if (parse_relative(arg, now_ns, out_ns) == AW_OK)
            return AW_OK;
    } else if (aw_time_parse_rfc3339(arg, strlen(arg), out_ns, NULL) == AW_OK) {
        return AW_OK;
    }
    return aw_error_reject(
        err, AW_REJECT_BAD_TIME,
        "\"%s\" is not a time: use RFC 3339 "
        "(2026-05-21T14:00:00Z), now, or -30s/-15m/+1.5h/-7d",
        arg);
}

int aw_cli_time_option(const aw_cli_command *cmd, const char *option,
                       const char *arg, int64_t now_ns, int64_t *out_ns)
{
    aw_error err = {0};
    if (aw_cli_parse_time(arg, now_ns, out_ns, &err) != AW_OK)
        return aw_cli_usage_error(cmd, "%s: %s", option, err.msg);
    return 0;
}
