/* main.c -- the auditwatch binary: one program, one subcommand per job.
 *
 * main only dispatches: it finds the subcommand named by argv[1] and hands
 * it the rest of the arguments (argv[0] becomes the subcommand's name, as
 * getopt expects). Every subcommand lives in cli/cmd_<name>.c and returns
 * the process exit status itself (cli/commands.h: 0 yes, 1 no, 2 usage,
 * 3 failure).
 */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

typedef struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} subcommand;

static const subcommand subcommands[] = {
    {"run", aw_cmd_run,
     "consume Caracal's streams, index them and raise alerts (the daemon)"},
    {"trace", aw_cmd_trace,
     "every event, revocation, call and alert of one request id, in time order"},
    {"query", aw_cmd_query,
     "search indexed audit events by time, zone, decision, type, session, resource"},
    {"alerts", aw_cmd_alerts,
     "list alerts (open by default) and acknowledge them"},
    {"status", aw_cmd_status,
     "index figures, checkpoints, Redis lag and pending; --ready for probes"},
    {"export", aw_cmd_export,
     "write a time window of raw entries to a msgpack evidence bundle"},
    {"replay", aw_cmd_replay,
     "rebuild a fresh index for a window from a bundle or Redis and detect"},
    {"verify", aw_cmd_verify,
     "re-check the index hash chain and every stored signature"},
    {"import-calls", aw_cmd_import_calls,
     "index calls observed in NDJSON access logs"},
    {"doctor", aw_cmd_doctor,
     "check Caracal's pipeline in Redis: streams, groups, dead letters, enforcers"},
};

#define NSUBCOMMANDS (sizeof subcommands / sizeof subcommands[0])

static void usage(FILE *fp)
{
    fputs("usage: auditwatch COMMAND [OPTIONS]\n"
          "       auditwatch COMMAND --help\n"
          "       auditwatch --version\n\n"
          "Watches Caracal's audit evidence for calls without a decision and\n"
          "access after revocation.\n\ncommands:\n",
          fp);
    for (size_t i = 0; i < NSUBCOMMANDS; i++)
        fprintf(fp, "  %-13s %s\n", subcommands[i].name,
                subcommands[i].summary);
    fputs(
        "\nThe index is --db PATH, else $AUDITWATCH_DB, else ./auditwatch.db.\n"
        "Exit status: 0 yes, 1 no (nothing found, not ready, verification\n"
        "failed), 2 bad usage, 3 operational failure.\n",
        fp);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return AW_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return fflush(stdout) == 0 ? AW_EXIT_OK : AW_EXIT_FAILURE;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("auditwatch %s\n", AW_VERSION);
        return fflush(stdout) == 0 ? AW_EXIT_OK : AW_EXIT_FAILURE;
    }
    for (size_t i = 0; i < NSUBCOMMANDS; i++)
        if (strcmp(argv[1], subcommands[i].name) == 0)
            return subcommands[i].run(argc - 1, argv + 1);
    fprintf(stderr,
            "auditwatch: unknown command \"%s\" (see 'auditwatch --help')\n",
            argv[1]);
    return AW_EXIT_USAGE;
}
