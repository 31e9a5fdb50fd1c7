/* chores.c -- small things several subcommands do the same way: open the
 * index, draw a progress line on stderr, and name the streams of each role.
 * (Secrets are read by consumer/'s aw_secret_* helpers, shared with `run`.)
 */
#include "cli/cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROGRESS_INTERVAL_NS      (250LL * 1000000LL)
#define PROGRESS_LINE_INTERVAL_NS (1000LL * 1000000LL)

int aw_cli_open_store(const aw_cli_command *cmd, const aw_cli_common *common,
                      unsigned flags, aw_store **out)
{
    aw_error err = {0};
    if (aw_store_open(common->db, flags, out, &err) != AW_OK)
        return aw_cli_fail(cmd, AW_EXIT_FAILURE, "%s", err.msg);
    return 0;
}

void aw_cli_progress_update(aw_cli_progress *p, const char *fmt, ...)
{
    va_list ap;
    int64_t now;
    if (!p->enabled)
        return;
    if (!p->terminal) /* once: updates come per line */
        p->terminal = isatty(fileno(stderr)) ? 1 : -1;
    bool terminal = p->terminal > 0;
    now = aw_cli_now_ns();
    if (p->last_ns && now - p->last_ns < (terminal ? PROGRESS_INTERVAL_NS
                                                   : PROGRESS_LINE_INTERVAL_NS))
        return;
    p->last_ns = now;
    p->drawn = terminal;
    if (terminal)
        fputs("\r\033[K", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (!terminal)
        fputc('\n', stderr);
    fflush(stderr);
}

void aw_cli_progress_end(aw_cli_progress *p)
{
    p->last_ns = 0;
    if (!p->drawn)
        return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    p->drawn = false;
}

int aw_cli_resolve_streams(const aw_cli_command *cmd,
                           const char *const given[AW_ROLE_COUNT],
                           aw_stream_names *out)
{
    aw_error err = {0};
    if (aw_stream_names_resolve(given, out, &err) != AW_OK)
        return aw_cli_usage_error(cmd, "--stream: %s", err.msg);
    return 0;
}

int aw_cli_stream_option(const aw_cli_command *cmd, const char *arg,
                         const char *names[AW_ROLE_COUNT])
{
    const char *eq = strchr(arg, '=');
    char role[32];
    int r;
    if (!eq || eq == arg || !eq[1] || (size_t)(eq - arg) >= sizeof role)
        return aw_cli_usage_error(
            cmd, "--stream: expected ROLE=NAME, got \"%s\"", arg);
    memcpy(role, arg, (size_t)(eq - arg));
    role[eq - arg] = '\0';
    if ((r = aw_stream_role_from_name(role)) < 0)
        return aw_cli_usage_error(cmd,
                                  "--stream: unknown role \"%s\" (audit, "
                                  "sessions, lifecycle, delegations, calls, "
                                  "audit_dlq, sessions_dead, lifecycle_dead, "
                                  "delegations_dead)",
                                  role);
    names[r] = eq + 1;
    return 0;
}

int aw_cli_enforcer_group_option(
    const aw_cli_command *cmd, const char *arg,
    const char *patterns[AW_CLI_MAX_ENFORCER_GROUPS], size_t *npatterns)
{
    if (!*arg)
        return aw_cli_usage_error(cmd, "--enforcer-group: expected a pattern");
    if (*npatterns == AW_CLI_MAX_ENFORCER_GROUPS)
        return aw_cli_usage_error(cmd, "--enforcer-group: at most %d patterns",
                                  AW_CLI_MAX_ENFORCER_GROUPS);
    patterns[(*npatterns)++] = arg;
    return 0;
}

int aw_cli_redis_option(const aw_cli_command *cmd, const char *option,
                        const char *arg)
{
    aw_redis_address address;
    aw_error err = {0};
    if (aw_redis_address_parse(arg, &address, &err) != AW_OK)
        return aw_cli_usage_error(cmd, "%s: %s", option, err.msg);
    return 0;
}

static void ignore_change(const aw_alert *alert, aw_alert_change change,
                          void *ud)
{
    (void)alert;
    (void)change;
    (void)ud;
}

void aw_cli_drop_alert_changes(aw_ingest *ing)
{
    aw_ingest_drain_alerts(ing, ignore_change, NULL);
}

/* file, else the non-empty value of env_file. */
static const char *key_file(const char *file, const char *env_file)
{
    const char *v = getenv(env_file);
    return file ? file : v && *v ? v : NULL;
}

int aw_cli_load_keys(const char *audit_file, const char *streams_file,
                     aw_hmac_key **audit, aw_hmac_key **streams, aw_error *err)
{
    audit_file = key_file(audit_file, "AUDIT_HMAC_KEY_FILE");
    streams_file = key_file(streams_file, "STREAMS_HMAC_KEY_FILE");
    int rc = aw_secret_load_hmac_key(audit_file, "AUDIT_HMAC_KEY", audit, err);
    if (rc != AW_OK)
        return rc;
    if ((rc = aw_secret_load_hmac_key(streams_file, "STREAMS_HMAC_KEY", streams,
                                      err)) != AW_OK) {
        aw_hmac_key_free(*audit);
        *audit = NULL;
    }
    return rc;
}
