/* cmd_run.c -- `auditwatch run`, the daemon.
 *
 * Everything here is configuration: every option also has an environment
 * variable (AUDITWATCH_ and the option's name in capitals, '-' as '_'), so a
 * systemd unit can keep the whole setup in an EnvironmentFile; an option on
 * the command line wins over its variable. Caracal's own variable names are
 * honoured after ours: REDIS_PASSWORD_FILE, AUDIT_HMAC_KEY_FILE,
 * STREAMS_HMAC_KEY_FILE, and the hex keys themselves in AUDIT_HMAC_KEY and
 * STREAMS_HMAC_KEY.
 *
 * Secrets never come from argv (every local user can read it): only file
 * names do. Hex keys taken from the environment are removed from it once
 * loaded, so alert hooks started later do not inherit them.
 *
 * Parsing, usage errors and key loading are the shared ones (cli/options.c,
 * cli/chores.c), so `run` and `replay` spell and check every common option
 * the same way; a value from the environment goes through the same checks
 * as one from argv, and its errors name the variable.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

static const char usage_text[] =
    "usage: auditwatch run [OPTIONS]\n"
    "\n"
    "Joins auditwatch's own consumer groups on Caracal's streams, indexes every\n"
    "entry into the local index, raises alerts, and acknowledges an entry only\n"
    "after it is committed. Stops cleanly on SIGTERM or SIGINT; SIGHUP reopens\n"
    "the log file.\n"
    "\n"
    "Every option can also be set with AUDITWATCH_<OPTION> (e.g. --block-ms as\n"
    "AUDITWATCH_BLOCK_MS, --alerts-stdout as AUDITWATCH_ALERTS_STDOUT=1,\n"
    "--stream as a comma-separated AUDITWATCH_STREAM); options win.\n"
    "\n"
    "Redis and the index:\n"
    "  --redis URL                 redis://HOST[:PORT][/DB] (default redis://127.0.0.1:6379)\n"
    "  --redis-password-file F     AUTH password file (else $REDIS_PASSWORD_FILE)\n"
    "  --db PATH                   the index (default ./auditwatch.db)\n"
    "  --group NAME                consumer group (default auditwatch; never Caracal's)\n"
    "  --consumer NAME             this instance in the group (default: host name)\n"
    "  --start-id ID               where a new group starts: 0 (every retained entry,\n"
    "                              default), $ (new entries only) or an entry id\n"
    "  --stream ROLE=NAME          stream of a role: audit, sessions, lifecycle,\n"
    "                              delegations, calls, and Caracal's dead letters\n"
    "                              audit_dlq, sessions_dead, lifecycle_dead,\n"
    "                              delegations_dead (repeatable); a dead-letter\n"
    "                              stream not given follows its origin:\n"
    "                              <audit>.dlq, <stream>.dead\n"
    "Signatures (keys are hex files; never on the command line):\n"
    "  --audit-hmac-key-file F     require `sig` on audit events (else $AUDIT_HMAC_KEY_FILE,\n"
    "                              else the hex in $AUDIT_HMAC_KEY)\n"
    "  --streams-hmac-key-file F   require `_sig` on Caracal's other streams (else\n"
    "                              $STREAMS_HMAC_KEY_FILE, else $STREAMS_HMAC_KEY)\n"
    "  --calls-hmac-key-file F     require `_sig` on the calls stream (your own\n"
    "                              shippers'); without it calls may be unsigned\n"
    "Detectors:\n"
    "  --grace-missing DURATION    wait for a missing decision or audit (default 300;\n"
    "                              seconds, or 30s, 5m, 2h, fractions too)\n"
    "  --grace-revocation DURATION revocation propagation grace (default 5)\n"
    "  --audit-lookback DURATION   an observed call whose log gives its time needs\n"
    "                              audit evidence from at most this long before it\n"
    "                              (default 1h; 0: any time)\n"
    "Reading:\n"
    "  --batch N                   entries per stream and read (default 1000)\n"
    "  --block-ms N                how long a caught-up read waits (default 1000 ms;\n"
    "                              or 2s, 0.5s...)\n"
    "  --claim-idle-ms N           take over entries pending this long (default 60000\n"
    "                              ms; or 1m...)\n"
    "  --max-deliveries N          reject an entry delivered more often (default 8)\n"
    "Alerts (always in the index; also):\n"
    "  --alerts-stdout             JSON lines on stdout\n"
    "  --alert-stream NAME         XADD to this stream (default auditwatch.alerts)\n"
    "  --no-alert-stream           do not XADD alerts\n"
    "  --alert-stream-maxlen N     MAXLEN ~ of that stream (default 100000)\n"
    "  --alert-exec CMD            run /bin/sh -c CMD per alert, JSON on stdin\n"
    "  --alert-exec-max N          hooks running at once (default 4)\n"
    "  --alert-format json|ocsf    what every sink above sends (default json; ocsf:\n"
    "                              OCSF 1.3.0 Detection Findings, see README)\n"
    "Caracal's own pipeline (read-only; never in Caracal's groups):\n"
    "  --enforcer-poll DURATION    how often its groups are read (default 5s)\n"
    "  --enforcer-group PATTERN    a revocation enforcer's group, a shell glob;\n"
    "                              repeatable (default sts-revocation* and\n"
    "                              gateway-revocation*)\n"
    "  --grace-enforcer DURATION   an enforcer must apply a revocation within this\n"
    "                              (default 30s)\n"
    "  --ingest-max-lag N          audit-ingestor may lag this many entries (default 1000)\n"
    "  --ingest-max-age DURATION   and leave an entry unread or pending this long\n"
    "                              (default 60s)\n"
    "The chain head (entries and hash, for 'verify --chain-head'), logged when it\n"
    "moved and at shutdown:\n"
    "  --chain-interval DURATION   how often (default 60s)\n"
    "  --chain-stream NAME         also XADD it to this Redis stream\n"
    "Access logs followed in place (NDJSON; rotation by create or copytruncate):\n"
    "  --calls-log PATH            index each new line as an observed call (repeatable)\n";

static const char usage_after_call_fields[] =
    "Metrics:\n"
    "  --metrics-listen ADDR:PORT  serve Prometheus' /metrics there (e.g. 127.0.0.1:9464)\n"
    "Logging (stderr unless --log-file):\n"
    "  --log-format kv|json        (default kv)\n"
    "  --log-file F                append here; reopened on SIGHUP\n"
    "  --help                      this text\n";

enum {
    OPT_REDIS = AW_CLI_OPT_BASE,
    OPT_REDIS_PASSWORD_FILE,
    OPT_GROUP,
    OPT_CONSUMER,
    OPT_START_ID,
    OPT_STREAM,
    OPT_AUDIT_KEY_FILE,
    OPT_STREAMS_KEY_FILE,
    OPT_CALLS_KEY_FILE,
    OPT_GRACE_MISSING,
    OPT_GRACE_REVOCATION,
    OPT_AUDIT_LOOKBACK,
    OPT_BATCH,
    OPT_BLOCK_MS,
    OPT_CLAIM_IDLE_MS,
    OPT_MAX_DELIVERIES,
    OPT_ALERTS_STDOUT,
    OPT_ALERT_STREAM,
    OPT_NO_ALERT_STREAM,
    OPT_ALERT_STREAM_MAXLEN,
    OPT_ALERT_EXEC,
    OPT_ALERT_EXEC_MAX,
    OPT_ALERT_FORMAT,
    OPT_LOG_FORMAT,
    OPT_LOG_FILE,
    OPT_CHAIN_STREAM,
    OPT_CHAIN_INTERVAL,
    OPT_ENFORCER_POLL,
    OPT_ENFORCER_GROUP,
    OPT_GRACE_ENFORCER,
    OPT_INGEST_MAX_LAG,
    OPT_INGEST_MAX_AGE,
    OPT_METRICS_LISTEN,
    OPT_CALLS_LOG,
};

/* --db and --help come from the shared parser (cli/options.c). */
static const struct option long_options[] = {
    {"redis", required_argument, NULL, OPT_REDIS},
    {"redis-password-file", required_argument, NULL, OPT_REDIS_PASSWORD_FILE},
    {"group", required_argument, NULL, OPT_GROUP},
    {"consumer", required_argument, NULL, OPT_CONSUMER},
    {"start-id", required_argument, NULL, OPT_START_ID},
    {"stream", required_argument, NULL, OPT_STREAM},
    {"audit-hmac-key-file", required_argument, NULL, OPT_AUDIT_KEY_FILE},
    {"streams-hmac-key-file", required_argument, NULL, OPT_STREAMS_KEY_FILE},
    {"calls-hmac-key-file", required_argument, NULL, OPT_CALLS_KEY_FILE},
    {"grace-missing", required_argument, NULL, OPT_GRACE_MISSING},
    {"grace-revocation", required_argument, NULL, OPT_GRACE_REVOCATION},
    {"audit-lookback", required_argument, NULL, OPT_AUDIT_LOOKBACK},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"block-ms", required_argument, NULL, OPT_BLOCK_MS},
    {"claim-idle-ms", required_argument, NULL, OPT_CLAIM_IDLE_MS},
    {"max-deliveries", required_argument, NULL, OPT_MAX_DELIVERIES},
    {"alerts-stdout", no_argument, NULL, OPT_ALERTS_STDOUT},
    {"alert-stream", required_argument, NULL, OPT_ALERT_STREAM},
    {"no-alert-stream", no_argument, NULL, OPT_NO_ALERT_STREAM},
    {"alert-stream-maxlen", required_argument, NULL, OPT_ALERT_STREAM_MAXLEN},
    {"alert-exec", required_argument, NULL, OPT_ALERT_EXEC},
    {"alert-exec-max", required_argument, NULL, OPT_ALERT_EXEC_MAX},
    {"alert-format", required_argument, NULL, OPT_ALERT_FORMAT},
    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
    {"log-file", required_argument, NULL, OPT_LOG_FILE},
    {"chain-stream", required_argument, NULL, OPT_CHAIN_STREAM},
    {"chain-interval", required_argument, NULL, OPT_CHAIN_INTERVAL},
    {"enforcer-poll", required_argument, NULL, OPT_ENFORCER_POLL},
    {"enforcer-group", required_argument, NULL, OPT_ENFORCER_GROUP},
    {"grace-enforcer", required_argument, NULL, OPT_GRACE_ENFORCER},
    {"ingest-max-lag", required_argument, NULL, OPT_INGEST_MAX_LAG},
    {"ingest-max-age", required_argument, NULL, OPT_INGEST_MAX_AGE},
    {"metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN},
    {"calls-log", required_argument, NULL, OPT_CALLS_LOG},
    {NULL, 0, NULL, 0},
};

static const aw_cli_command command = {
    .name = "run",
    .usage = usage_text,
    .common = AW_CLI_WANT_DB | AW_CLI_WANT_CALL_FIELDS,
    .options = long_options,
    .call_fields_column = 30, /* that of every other option */
    .usage_after_call_fields = usage_after_call_fields,
};

#define NOPTIONS (sizeof long_options / sizeof *long_options)

/* What the options say, before secrets and addresses are resolved. */
typedef struct run_args {
    aw_daemon_config config;
    aw_detector_config detectors;
    const char *redis_url;
    const char *password_file;
    const char *audit_key_file;
    const char *streams_key_file;
    const char *calls_key_file;
    const char *source; /* "$AUDITWATCH_BATCH" while the environment is read */
    const char **calls_logs; /* --calls-log, in order */
    size_t ncalls_logs;
    char **owned; /* copies of values, freed at the end */
    size_t nowned;
    char env_names[NOPTIONS][64]; /* "$AUDITWATCH_BATCH", for messages */
    const char *enforcer_groups[AW_CLI_MAX_ENFORCER_GROUPS];
} run_args;

/* "--batch", or the variable the value came from. */
static const char *source_of(const run_args *a, int opt, char *buf, size_t size)
{
    if (a->source)
        return a->source;
    for (const struct option *o = long_options; o->name; o++)
        if (o->val == opt) {
            snprintf(buf, size, "--%s", o->name);
            return buf;
        }
    return "?";
}

/* A duration (bare: seconds) into ms, at least min_ms. */
static int seconds_ms_option(const char *source, const char *arg,
                             int64_t min_ms, int64_t *out_ms)
{
    int64_t ns;
    int rc = aw_cli_duration_option(&command, source, arg, AW_CLI_SECONDS,
                                    AW_CLI_GRACE_MAX_NS, &ns);
    if (rc)
        return rc;
    *out_ms = ns / AW_CLI_MILLISECONDS;
    if (*out_ms < min_ms)
        return aw_cli_usage_error(&command, "%s: at least %lld ms, got \"%s\"",
                                  source, (long long)min_ms, arg);
    return 0;
}

static int count_option(const char *source, const char *arg, int64_t min,
                        int64_t max, int64_t *out)
{
    if (aw_cli_parse_int(arg, min, max, out) == AW_OK)
        return 0;
    return aw_cli_usage_error(
        &command, "%s: expected a whole number from %lld to %lld, got \"%s\"",
        source, (long long)min, (long long)max, arg);
}

/* A -ms option: milliseconds bare, or any duration. */
static int ms_option(const char *source, const char *arg, int64_t max_ms,
                     int64_t *out_ms)
{
    int64_t ns;
    int rc = aw_cli_duration_option(&command, source, arg, AW_CLI_MILLISECONDS,
                                    max_ms * AW_CLI_MILLISECONDS, &ns);
    if (rc)
        return rc;
    *out_ms = ns / AW_CLI_MILLISECONDS;
    if (*out_ms < 1)
        return aw_cli_usage_error(&command, "%s: at least 1 ms, got \"%s\"",
                                  source, arg);
    return 0;
}

/* A copy of value that lives as long as the run; NULL when out of memory. */
static char *keep_copy(run_args *a, const char *value)
{
    char **grown = realloc(a->owned, (a->nowned + 1) * sizeof *grown);
    if (!grown)
        return NULL;
    a->owned = grown;
    return (a->owned[a->nowned] = strdup(value)) ? a->owned[a->nowned++] : NULL;
}

static bool env_true(const char *v)
{
    return strcmp(v, "1") == 0 || strcmp(v, "true") == 0 ||
           strcmp(v, "yes") == 0;
}

/* One option's value; arg is NULL for a flag given on the command line. */
static int on_option(int opt, const char *arg, void *ud)
{
    run_args *a = ud;
    aw_daemon_config *c = &a->config;
    char buf[64];
    const char *src = source_of(a, opt, buf, sizeof buf);
    int64_t n;
    int rc = 0;
    switch (opt) {
    case OPT_REDIS:
        a->redis_url = arg;
        return aw_cli_redis_option(&command, src, arg);
    case OPT_REDIS_PASSWORD_FILE: a->password_file = arg; break;
    case OPT_GROUP: c->group = arg; break;
    case OPT_CONSUMER: c->consumer = arg; break;
    case OPT_START_ID: c->start_id = arg; break;
    case OPT_STREAM: {
        /* ROLE=NAME, or several separated by commas (the environment form);
         * tokenised in an owned copy the names then point into. */
        char *copy = keep_copy(a, arg), *save = NULL;
        if (!copy)
            return aw_cli_fail(&command, AW_EXIT_FAILURE, "out of memory");
        for (char *item = strtok_r(copy, ", ", &save); item && !rc;
             item = strtok_r(NULL, ", ", &save))
            rc = aw_cli_stream_option(&command, item, c->ingest.streams);
        break;
    }
    case OPT_AUDIT_KEY_FILE: a->audit_key_file = arg; break;
    case OPT_STREAMS_KEY_FILE: a->streams_key_file = arg; break;
    case OPT_CALLS_KEY_FILE: a->calls_key_file = arg; break;
    case OPT_GRACE_MISSING:
        rc = aw_cli_duration_option(&command, src, arg, AW_CLI_SECONDS,
                                    AW_CLI_GRACE_MAX_NS,
                                    &a->detectors.grace_missing_ns);
        break;
    case OPT_GRACE_REVOCATION:
        rc = aw_cli_duration_option(&command, src, arg, AW_CLI_SECONDS,
                                    AW_CLI_GRACE_MAX_NS,
                                    &a->detectors.grace_revocation_ns);
        break;
    case OPT_AUDIT_LOOKBACK:
        rc = aw_cli_duration_option(&command, src, arg, AW_CLI_SECONDS,
                                    AW_CLI_GRACE_MAX_NS,
                                    &a->detectors.audit_lookback_ns);
        break;
    case OPT_BATCH:
        if (!(rc = count_option(src, arg, 1, 100000, &n)))
            c->count = (size_t)n;
        break;
    case OPT_BLOCK_MS: rc = ms_option(src, arg, 3600000, &c->block_ms); break;
    case OPT_CLAIM_IDLE_MS:
        rc = ms_option(src, arg, INT_MAX, &c->claim_idle_ms);
        break;
    case OPT_MAX_DELIVERIES:
        if (!(rc = count_option(src, arg, 1, INT_MAX, &n)))
            c->max_deliveries = n;
        break;
    case OPT_ALERTS_STDOUT: c->alerts_stdout = !arg || env_true(arg); break;
    case OPT_ALERT_STREAM: c->alert_stream = *arg ? arg : NULL; break;
    case OPT_NO_ALERT_STREAM:
        if (!arg || env_true(arg))
            c->alert_stream = NULL;
        break;
    case OPT_ALERT_STREAM_MAXLEN:
        if (!(rc = count_option(src, arg, 0, INT64_MAX, &n)))
            c->alert_stream_maxlen = (size_t)n;
        break;
    case OPT_ALERT_EXEC: c->alert_exec = *arg ? arg : NULL; break;
    case OPT_ALERT_EXEC_MAX:
        if (!(rc = count_option(src, arg, 1, 1024, &n)))
            c->alert_exec_max = (int)n;
        break;
    case OPT_ALERT_FORMAT:
        if (strcmp(arg, "json") == 0)
            c->alert_format = AW_ALERT_FORMAT_JSON;
        else if (strcmp(arg, "ocsf") == 0)
            c->alert_format = AW_ALERT_FORMAT_OCSF;
        else
            rc = aw_cli_usage_error(
                &command, "%s: expected json or ocsf, got \"%s\"", src, arg);
        break;
    case OPT_LOG_FORMAT:
        if (strcmp(arg, "kv") == 0)
            c->log_format = AW_LOG_KV;
        else if (strcmp(arg, "json") == 0)
            c->log_format = AW_LOG_JSON;
        else
            rc = aw_cli_usage_error(
                &command, "%s: expected kv or json, got \"%s\"", src, arg);
        break;
    case OPT_LOG_FILE: c->log_file = arg; break;
    case OPT_CHAIN_STREAM: c->chain_stream = *arg ? arg : NULL; break;
    case OPT_CHAIN_INTERVAL:
        rc = seconds_ms_option(src, arg, 1, &c->chain_interval_ms);
        break;
    case OPT_ENFORCER_POLL:
        rc = seconds_ms_option(src, arg, 1, &c->enforcer_poll_ms);
        break;
    case OPT_ENFORCER_GROUP:
        rc = aw_cli_enforcer_group_option(&command, arg, a->enforcer_groups,
                                          &c->nenforcer_groups);
        c->enforcer_groups = a->enforcer_groups;
        break;
    case OPT_GRACE_ENFORCER:
        rc = seconds_ms_option(src, arg, 0, &c->grace_enforcer_ms);
        break;
    case OPT_INGEST_MAX_LAG:
        rc = count_option(src, arg, 0, INT64_MAX, &c->ingest_limits.max_lag);
        break;
    case OPT_INGEST_MAX_AGE:
        rc = seconds_ms_option(src, arg, 0, &c->ingest_limits.max_age_ms);
        break;
    case OPT_METRICS_LISTEN: c->metrics_listen = *arg ? arg : NULL; break;
    case OPT_CALLS_LOG: {
        const char **grown =
            realloc(a->calls_logs, (a->ncalls_logs + 1) * sizeof *grown);
        if (!grown)
            return aw_cli_fail(&command, AW_EXIT_FAILURE, "out of memory");
        a->calls_logs = grown;
        a->calls_logs[a->ncalls_logs++] = arg;
        c->calls_logs = a->calls_logs;
        c->ncalls_logs = a->ncalls_logs;
        break;
    }
    default: return AW_EXIT_USAGE;
    }
    return rc;
}

/* AUDITWATCH_<NAME> for every option, through the same on_option as argv.
 * Values are copied and live as long as the run. */
static int apply_environment(run_args *a)
{
    for (size_t i = 0; long_options[i].name; i++) {
        const struct option *o = &long_options[i];
        char *var = a->env_names[i];
        size_t len;
        const char *value;
        char *copy;
        int rc;
        snprintf(var, sizeof a->env_names[i], "$AUDITWATCH_");
        len = strlen(var);
        for (const char *p = o->name; *p && len < sizeof a->env_names[i] - 1;
             p++)
            var[len++] =
                *p == '-' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        var[len] = '\0';
        if (!(value = getenv(var + 1)) || !*value)
            continue;
        if (!(copy = keep_copy(a, value)))
            return aw_cli_fail(&command, AW_EXIT_FAILURE, "out of memory");
        a->source = var;
        rc = on_option(o->val, copy, a);
        a->source = NULL;
        if (rc)
            return rc;
    }
    return 0;
}

/* The shared call-field options (cli/options.c) are not in long_options:
 * their variables are read here, and the command line wins. */
static void call_fields_from_environment(aw_call_fields *out,
                                         const aw_call_fields *given)
{
    const char *v;
    *out = *given;
    if (!out->request_id && (v = getenv("AUDITWATCH_REQUEST_ID_FIELD")) && *v)
        out->request_id = v;
    if (!out->status && (v = getenv("AUDITWATCH_STATUS_FIELD")) && *v)
        out->status = v;
    if (!out->occurred_at && (v = getenv("AUDITWATCH_TIME_FIELD")) && *v)
        out->occurred_at = v;
}

static int parse_args(run_args *a, int argc, char **argv)
{
    static char host[256];
    aw_cli_common common;
    int first, rc;
    aw_daemon_config_init(&a->config);
    aw_detector_config_init(&a->detectors);
    a->config.ingest.detectors = &a->detectors;
    a->redis_url = "redis://127.0.0.1:6379";
    if ((rc = apply_environment(a)) != 0)
        return rc;
    if ((rc = aw_cli_parse(&command, argc, argv, &common, on_option, a,
                           &first)) != AW_CLI_PROCEED ||
        (rc = aw_cli_expect_args(&command, argc, argv, first, 0, "")) !=
            AW_CLI_PROCEED)
        return rc;
    a->config.ingest.db_path = common.db;
    call_fields_from_environment(&a->config.ingest.call_fields,
                                 &common.call_fields);
    if (!a->config.consumer) {
        if (gethostname(host, sizeof host - 1) != 0 || !*host)
            snprintf(host, sizeof host, "auditwatch");
        a->config.consumer = host;
    }
    if (!a->password_file) {
        const char *v = getenv("REDIS_PASSWORD_FILE");
        a->password_file = v && *v ? v : NULL;
    }
    return AW_CLI_PROCEED;
}

/* The secrets and the Redis address: everything that needs more than text. */
typedef struct run_resources {
    aw_redis_address address;
    char *password;
    aw_hmac_key *audit_key;
    aw_hmac_key *streams_key;
    aw_hmac_key *calls_key;
} run_resources;

static void release(run_args *a, run_resources *r)
{
    aw_secret_free(r->password);
    aw_hmac_key_free(r->audit_key);
    aw_hmac_key_free(r->streams_key);
    aw_hmac_key_free(r->calls_key);
    for (size_t i = 0; i < a->nowned; i++)
        free(a->owned[i]);
    free(a->owned);
    free(a->calls_logs);
}

static int resolve(run_args *a, run_resources *r)
{
    aw_error err = {0};
    if (aw_redis_address_parse(a->redis_url, &r->address, &err) != AW_OK)
        return aw_cli_usage_error(&command, "--redis: %s", err.msg);
    if ((a->password_file &&
         aw_secret_read_file(a->password_file, &r->password, &err) != AW_OK) ||
        aw_cli_load_keys(a->audit_key_file, a->streams_key_file, &r->audit_key,
                         &r->streams_key, &err) != AW_OK ||
        aw_secret_load_hmac_key(a->calls_key_file, NULL, &r->calls_key, &err) !=
            AW_OK)
        return aw_cli_fail(&command, AW_EXIT_FAILURE, "%s", err.msg);
    /* Hooks started later must not inherit the hex keys. */
    unsetenv("AUDIT_HMAC_KEY");
    unsetenv("STREAMS_HMAC_KEY");
    /* The daemon hands libuv's thread pool one batch at a time (and the
     * calls log's reads). On the default four threads, batches wandered
     * from thread to thread and each thread's malloc arena kept a peak of
     * its own: one thread held 62.9 MiB at 2M entries where four held
     * 66.1. An operator's own setting wins. */
    setenv("UV_THREADPOOL_SIZE", "1", 0);
    a->config.redis_host = r->address.host;
    a->config.redis_port = r->address.port;
    a->config.redis_db = r->address.db;
    a->config.redis_password = r->password;
    a->config.ingest.audit_key = r->audit_key;
    a->config.ingest.streams_key = r->streams_key;
    a->config.ingest.calls_key = r->calls_key;
    return 0;
}

int aw_cmd_run(int argc, char **argv)
{
    run_args a;
    run_resources r;
    aw_daemon *d = NULL;
    aw_error err = {0};
    int rc;

    memset(&a, 0, sizeof a);
    memset(&r, 0, sizeof r);
    if ((rc = parse_args(&a, argc, argv)) != AW_CLI_PROCEED ||
        (rc = resolve(&a, &r)) != 0) {
        release(&a, &r);
        return rc;
    }
    if (aw_daemon_new(&a.config, &d, &err) != AW_OK) {
        const char *advice = aw_index_error_advice(err.code);
        if (advice)
            rc = aw_cli_fail(&command, AW_EXIT_FAILURE,
                             "index %s cannot be used: %s. To go on: %s",
                             a.config.ingest.db_path, err.msg, advice);
        else
            rc = aw_cli_fail(&command,
                             err.code == AW_ERR_INVALID ? AW_EXIT_USAGE
                                                        : AW_EXIT_FAILURE,
                             "%s", err.msg);
        release(&a, &r);
        return rc;
    }
    rc = aw_daemon_run(d, &err) == AW_OK ? AW_EXIT_OK : AW_EXIT_FAILURE;
    if (rc != AW_EXIT_OK)
        aw_cli_fail(&command, rc, "%s", err.msg);
    aw_daemon_free(d);
    release(&a, &r);
    return rc;
}
