/* commands.h -- the subcommands of the auditwatch binary, one file each
 * (cli/cmd_<name>.c). Each takes the arguments after its own name
 * (argv[0] is the subcommand name, for getopt) and returns the process exit
 * status:
 *   0  success (for trace/query: something was found),
 *   1  the command ran but the answer is "no" (nothing found, not ready,
 *      verification failed),
 *   2  bad usage (a clear message on stderr),
 *   3  an operational failure (index unreadable, Redis unreachable, I/O).
 * Data goes to stdout, diagnostics to stderr. Every command has --help.
 */
#ifndef AW_CLI_COMMANDS_H
#define AW_CLI_COMMANDS_H

enum {
    AW_EXIT_OK = 0,
    AW_EXIT_NO = 1,
    AW_EXIT_USAGE = 2,
    AW_EXIT_FAILURE = 3,
};

int aw_cmd_run(int argc, char **argv);
int aw_cmd_trace(int argc, char **argv);
int aw_cmd_query(int argc, char **argv);
int aw_cmd_alerts(int argc, char **argv);
int aw_cmd_status(int argc, char **argv);
int aw_cmd_export(int argc, char **argv);
int aw_cmd_replay(int argc, char **argv);
int aw_cmd_verify(int argc, char **argv);
int aw_cmd_import_calls(int argc, char **argv);
int aw_cmd_doctor(int argc, char **argv);

#endif /* AW_CLI_COMMANDS_H */
