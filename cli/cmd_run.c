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
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "consumer/consumer.h"

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
    "                              delegations, calls (repeatable)\n"
    "Signatures (keys are hex files; never on the command line):\n"
    "  --audit-hmac-key-file F     require `sig` on audit events (else $AUDIT_HMAC_KEY_FILE,\n"
    "                              else the hex in $AUDIT_HMAC_KEY)\n"
    "  --streams-hmac-key-file F   require `_sig` on the other streams (else\n"
    "                              $STREAMS_HMAC_KEY_FILE, else $STREAMS_HMAC_KEY)\n"
    "Detectors:\n"
    "  --grace-missing SECONDS     wait for a missing decision or audit (default 300)\n"
    "  --grace-revocation SECONDS  revocation propagation grace (default 5)\n"
    "Reading:\n"
    "  --batch N                   entries per stream and read (default 1000)\n"
    "  --block-ms N                how long a caught-up read waits (default 1000)\n"
    "  --claim-idle-ms N           take over entries pending this long (default 60000)\n"
    "  --max-deliveries N          reject an entry delivered more often (default 8)\n"
    "Alerts (always in the index; also):\n"
    "  --alerts-stdout             JSON lines on stdout\n"
    "  --alert-stream NAME         XADD to this stream (default auditwatch.alerts)\n"
    "  --no-alert-stream           do not XADD alerts\n"
    "  --alert-stream-maxlen N     MAXLEN ~ of that stream (default 100000)\n"
    "  --alert-exec CMD            run /bin/sh -c CMD per alert, JSON on stdin\n"
    "  --alert-exec-max N          hooks running at once (default 4)\n"
    "Logging (stderr unless --log-file):\n"
    "  --log-format kv|json        (default kv)\n"
    "  --log-file F                append here; reopened on SIGHUP\n"
    "  --help                      this text\n";

enum {
    OPT_REDIS = 0x100, OPT_REDIS_PASSWORD_FILE, OPT_DB, OPT_GROUP, OPT_CONSUMER,
    OPT_START_ID, OPT_STREAM, OPT_AUDIT_KEY_FILE, OPT_STREAMS_KEY_FILE,
    OPT_GRACE_MISSING, OPT_GRACE_REVOCATION, OPT_BATCH, OPT_BLOCK_MS,
    OPT_CLAIM_IDLE_MS, OPT_MAX_DELIVERIES, OPT_ALERTS_STDOUT, OPT_ALERT_STREAM,
    OPT_NO_ALERT_STREAM, OPT_ALERT_STREAM_MAXLEN, OPT_ALERT_EXEC, OPT_ALERT_EXEC_MAX,
    OPT_LOG_FORMAT, OPT_LOG_FILE, OPT_HELP,
};

static const struct option long_options[] = {
    {"redis", required_argument, NULL, OPT_REDIS},
    {"redis-password-file", required_argument, NULL, OPT_REDIS_PASSWORD_FILE},
    {"db", required_argument, NULL, OPT_DB},
    {"group", required_argument, NULL, OPT_GROUP},
    {"consumer", required_argument, NULL, OPT_CONSUMER},
    {"start-id", required_argument, NULL, OPT_START_ID},
    {"stream", required_argument, NULL, OPT_STREAM},
    {"audit-hmac-key-file", required_argument, NULL, OPT_AUDIT_KEY_FILE},
    {"streams-hmac-key-file", required_argument, NULL, OPT_STREAMS_KEY_FILE},
    {"grace-missing", required_argument, NULL, OPT_GRACE_MISSING},
    {"grace-revocation", required_argument, NULL, OPT_GRACE_REVOCATION},
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
    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
    {"log-file", required_argument, NULL, OPT_LOG_FILE},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* What the options say, before secrets and addresses are resolved. */
typedef struct run_args {
    aw_daemon_config config;
    aw_detector_config detectors;
    const char *redis_url;
    const char *password_file;
    const char *audit_key_file;
    const char *streams_key_file;
    const char *source;      /* "--batch" or "$AUDITWATCH_BATCH", for messages */
    char *env_values[sizeof long_options / sizeof *long_options];   /* owned copies */
    size_t nenv;
} run_args;

/* parse_args: go on and run. Anything else is the exit status. */
#define PROCEED (-1)

static int usage_error(const run_args *a, const char *fmt, const char *value) {
    fprintf(stderr, "auditwatch run: %s: ", a->source);
    fprintf(stderr, fmt, value);
    fputs(" (see 'auditwatch run --help')\n", stderr);
    return AW_EXIT_USAGE;
}

static int parse_count(const run_args *a, const char *arg, long long min, long long max,
                       long long *out) {
    char *end;
    errno = 0;
    *out = strtoll(arg, &end, 10);
    if (errno || end == arg || *end || *out < min || *out > max)
        return usage_error(a, "expected a whole number, got \"%s\"", arg);
    return 0;
}

static int parse_seconds(const run_args *a, const char *arg, int64_t *ns) {
    char *end;
    double v;
    errno = 0;
    v = strtod(arg, &end);
    if (errno || end == arg || *end || !isfinite(v) || v < 0 || v > 1e8)
        return usage_error(a, "expected seconds, got \"%s\"", arg);
    *ns = (int64_t)(v * 1e9 + 0.5);
    return 0;
}

/* ROLE=NAME, or several separated by commas (the environment form). */
static int parse_streams(run_args *a, char *arg) {
    for (char *save = NULL, *item = strtok_r(arg, ", ", &save); item;
         item = strtok_r(NULL, ", ", &save)) {
        char *eq = strchr(item, '=');
        int role;
        if (!eq || eq == item || !eq[1])
            return usage_error(a, "expected ROLE=NAME, got \"%s\"", item);
        *eq = '\0';
        if ((role = aw_stream_role_from_name(item)) < 0)
            return usage_error(a, "unknown role \"%s\" (audit, sessions, lifecycle, "
                                  "delegations, calls)", item);
        a->config.ingest.streams[role] = eq + 1;
    }
    return 0;
}

static bool env_true(const char *v) {
    return strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0;
}

/* One option's value; arg is NULL for a flag given on the command line. */
static int apply(run_args *a, int opt, char *arg) {
    aw_daemon_config *c = &a->config;
    long long n;
    int rc = 0;
    switch (opt) {
    case OPT_REDIS: a->redis_url = arg; break;
    case OPT_REDIS_PASSWORD_FILE: a->password_file = arg; break;
    case OPT_DB: c->ingest.db_path = arg; break;
    case OPT_GROUP: c->group = arg; break;
    case OPT_CONSUMER: c->consumer = arg; break;
    case OPT_START_ID: c->start_id = arg; break;
    case OPT_STREAM: rc = parse_streams(a, arg); break;
    case OPT_AUDIT_KEY_FILE: a->audit_key_file = arg; break;
    case OPT_STREAMS_KEY_FILE: a->streams_key_file = arg; break;
    case OPT_GRACE_MISSING: rc = parse_seconds(a, arg, &a->detectors.grace_missing_ns); break;
    case OPT_GRACE_REVOCATION:
        rc = parse_seconds(a, arg, &a->detectors.grace_revocation_ns);
        break;
    case OPT_BATCH:
        if (!(rc = parse_count(a, arg, 1, 100000, &n))) c->count = (size_t)n;
        break;
    case OPT_BLOCK_MS:
        if (!(rc = parse_count(a, arg, 1, 3600000, &n))) c->block_ms = n;
        break;
    case OPT_CLAIM_IDLE_MS:
        if (!(rc = parse_count(a, arg, 1, INT_MAX, &n))) c->claim_idle_ms = n;
        break;
    case OPT_MAX_DELIVERIES:
        if (!(rc = parse_count(a, arg, 1, INT_MAX, &n))) c->max_deliveries = n;
        break;
    case OPT_ALERTS_STDOUT: c->alerts_stdout = !arg || env_true(arg); break;
    case OPT_ALERT_STREAM: c->alert_stream = *arg ? arg : NULL; break;
    case OPT_NO_ALERT_STREAM:
        if (!arg || env_true(arg)) c->alert_stream = NULL;
        break;
    case OPT_ALERT_STREAM_MAXLEN:
        if (!(rc = parse_count(a, arg, 0, LLONG_MAX, &n))) c->alert_stream_maxlen = (size_t)n;
        break;
    case OPT_ALERT_EXEC: c->alert_exec = *arg ? arg : NULL; break;
    case OPT_ALERT_EXEC_MAX:
        if (!(rc = parse_count(a, arg, 1, 1024, &n))) c->alert_exec_max = (int)n;
        break;
    case OPT_LOG_FORMAT:
        if (strcmp(arg, "kv") == 0) c->log_format = AW_LOG_KV;
        else if (strcmp(arg, "json") == 0) c->log_format = AW_LOG_JSON;
        else rc = usage_error(a, "expected kv or json, got \"%s\"", arg);
        break;
    case OPT_LOG_FILE: c->log_file = arg; break;
    }
    return rc;
}

/* AUDITWATCH_<NAME> for every option. Values are copied (parse_streams
 * writes into them) and live as long as the run. */
static int apply_environment(run_args *a) {
    for (const struct option *o = long_options; o->name; o++) {
        char var[64] = "AUDITWATCH_", source[80];
        size_t len = strlen(var);
        const char *value;
        char *copy;
        int rc;
        if (o->val == OPT_HELP) continue;
        for (const char *p = o->name; *p && len < sizeof var - 1; p++)
            var[len++] = *p == '-' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        var[len] = '\0';
        if (!(value = getenv(var)) || !*value) continue;
        if (!(copy = strdup(value))) {
            fputs("auditwatch run: out of memory\n", stderr);
            return AW_EXIT_FAILURE;
        }
        a->env_values[a->nenv++] = copy;
        snprintf(source, sizeof source, "$%s", var);
        a->source = source;
        rc = apply(a, o->val, copy);
        a->source = NULL;
        if (rc) return rc;
    }
    return 0;
}

static const char *first_set(const char *a, const char *env_name) {
    const char *v;
    if (a) return a;
    v = getenv(env_name);
    return v && *v ? v : NULL;
}

static int parse_args(run_args *a, int argc, char **argv) {
    static char host[256];
    int opt, idx, rc;
    aw_daemon_config_init(&a->config);
    a->config.ingest.db_path = "./auditwatch.db";
    a->detectors = (aw_detector_config){AW_DEFAULT_GRACE_MISSING_NS,
                                        AW_DEFAULT_GRACE_REVOCATION_NS};
    a->config.ingest.detectors = &a->detectors;
    a->redis_url = "redis://127.0.0.1:6379";
    if ((rc = apply_environment(a)) != 0) return rc;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", long_options, &idx)) != -1) {
        char source[80];
        if (opt == OPT_HELP) {
            fputs(usage_text, stdout);
            return fflush(stdout) == 0 ? AW_EXIT_OK : AW_EXIT_FAILURE;
        }
        if (opt == '?') {
            fprintf(stderr, "auditwatch run: %s \"%s\" (see 'auditwatch run --help')\n",
                    optopt ? "missing value for" : "unknown option", argv[optind - 1]);
            return AW_EXIT_USAGE;
        }
        snprintf(source, sizeof source, "--%s", long_options[idx].name);
        a->source = source;
        rc = apply(a, opt, optarg);
        a->source = NULL;
        if (rc) return rc;
    }
    if (optind < argc) {
        fprintf(stderr, "auditwatch run: unexpected argument \"%s\" (see 'auditwatch run --help')\n",
                argv[optind]);
        return AW_EXIT_USAGE;
    }
    if (!a->config.consumer) {
        if (gethostname(host, sizeof host - 1) != 0 || !*host) snprintf(host, sizeof host, "auditwatch");
        a->config.consumer = host;
    }
    a->password_file = first_set(a->password_file, "REDIS_PASSWORD_FILE");
    a->audit_key_file = first_set(a->audit_key_file, "AUDIT_HMAC_KEY_FILE");
    a->streams_key_file = first_set(a->streams_key_file, "STREAMS_HMAC_KEY_FILE");
    return PROCEED;
}

/* The secrets and the Redis address: everything that needs more than text. */
typedef struct run_resources {
    aw_redis_address address;
    char *password;
    aw_hmac_key *audit_key;
    aw_hmac_key *streams_key;
} run_resources;

static void release(run_args *a, run_resources *r) {
    aw_secret_free(r->password);
    aw_hmac_key_free(r->audit_key);
    aw_hmac_key_free(r->streams_key);
    for (size_t i = 0; i < a->nenv; i++) free(a->env_values[i]);
}

static int resolve(run_args *a, run_resources *r) {
    aw_error err = {0};
    if (aw_redis_address_parse(a->redis_url, &r->address, &err) != AW_OK) {
        fprintf(stderr, "auditwatch run: --redis: %s (see 'auditwatch run --help')\n", err.msg);
        return AW_EXIT_USAGE;
    }
    if ((a->password_file && aw_secret_read_file(a->password_file, &r->password, &err) != AW_OK) ||
        aw_secret_load_hmac_key(a->audit_key_file, "AUDIT_HMAC_KEY", &r->audit_key, &err) != AW_OK ||
        aw_secret_load_hmac_key(a->streams_key_file, "STREAMS_HMAC_KEY", &r->streams_key,
                                &err) != AW_OK) {
        fprintf(stderr, "auditwatch run: %s\n", err.msg);
        return AW_EXIT_FAILURE;
    }
    unsetenv("AUDIT_HMAC_KEY");
    unsetenv("STREAMS_HMAC_KEY");
    a->config.redis_host = r->address.host;
    a->config.redis_port = r->address.port;
    a->config.redis_db = r->address.db;
    a->config.redis_password = r->password;
    a->config.ingest.audit_key = r->audit_key;
    a->config.ingest.streams_key = r->streams_key;
    return 0;
}

int aw_cmd_run(int argc, char **argv) {
    run_args a;
    run_resources r;
    aw_daemon *d = NULL;
    aw_error err = {0};
    int rc;

    memset(&a, 0, sizeof a);
    memset(&r, 0, sizeof r);
    if ((rc = parse_args(&a, argc, argv)) != PROCEED || (rc = resolve(&a, &r)) != 0) {
        release(&a, &r);
        return rc;
    }
    if (aw_daemon_new(&a.config, &d, &err) != AW_OK) {
        fprintf(stderr, "auditwatch run: %s\n", err.msg);
        release(&a, &r);
        return err.code == AW_ERR_INVALID ? AW_EXIT_USAGE : AW_EXIT_FAILURE;
    }
    rc = aw_daemon_run(d, &err) == AW_OK ? AW_EXIT_OK : AW_EXIT_FAILURE;
    if (rc != AW_EXIT_OK) fprintf(stderr, "auditwatch run: %s\n", err.msg);
    aw_daemon_free(d);
    release(&a, &r);
    return rc;
}
