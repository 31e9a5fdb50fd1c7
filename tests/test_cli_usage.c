/* test_cli_usage.c -- the contract every subcommand keeps: --help on
 * stdout with exit 0, a malformed call answered by exactly one line on
 * stderr and exit 2, and the top level's --help, --version and unknown
 * subcommands; the shared call-field options listed in line with each
 * command's own. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "tests/support/cli_world.h"

static cli_world w;

static void make_dir(void)
{
    aw_test_tmpdir(w.dir);
}
static void cleanup(void)
{
    cw_cleanup(&w);
}

TestSuite(cli_usage, .init = make_dir, .fini = cleanup, .timeout = 120);

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static const char *const subcommands[] = {
    "run",    "trace",  "query",  "alerts",       "status",
    "export", "replay", "verify", "import-calls", "doctor",
};
#define NSUB (sizeof subcommands / sizeof *subcommands)

Test(cli_usage, help_lists_every_subcommand_with_one_line_each)
{
    cw_result r = cw_run(&w, ARGS("--help"), NULL);
    cr_expect_eq(r.status, 0);
    cr_expect_str_empty(r.err);
    for (size_t i = 0; i < NSUB; i++) {
        char line[64];
        snprintf(line, sizeof line, "\n  %s ", subcommands[i]);
        cr_expect(strstr(r.out, line), "%s missing from:\n%s", subcommands[i],
                  r.out);
    }
    cw_result_free(&r);
}

Test(cli_usage, version_prints_the_version)
{
    cw_result r = cw_run(&w, ARGS("--version"), NULL);
    cr_expect_eq(r.status, 0);
    cr_expect(strncmp(r.out, "auditwatch ", 11) == 0 && r.out[11] >= '0' &&
                  r.out[11] <= '9',
              "%s", r.out);
    cw_result_free(&r);
}

Test(cli_usage, an_unknown_subcommand_exits_2)
{
    cw_result r = cw_run(&w, ARGS("frobnicate"), NULL);
    cr_expect_eq(r.status, 2);
    cr_expect_str_empty(r.out);
    cr_expect(strstr(r.err, "frobnicate"), "%s", r.err);
    cr_expect_eq(cw_lines(r.err), 1, "%s", r.err);
    cw_result_free(&r);
}

Test(cli_usage, no_subcommand_exits_2_with_the_usage_on_stderr)
{
    cw_result r = cw_run(&w, (const char *[]){NULL}, NULL);
    cr_expect_eq(r.status, 2);
    cr_expect_str_empty(r.out);
    cr_expect(strstr(r.err, "usage: auditwatch"), "%s", r.err);
    cw_result_free(&r);
}

Test(cli_usage, every_subcommand_prints_its_help_on_stdout)
{
    for (size_t i = 0; i < NSUB; i++) {
        char head[64];
        cw_result r = cw_run(&w, ARGS(subcommands[i], "--help"), NULL);
        snprintf(head, sizeof head, "usage: auditwatch %s", subcommands[i]);
        cr_expect_eq(r.status, 0, "%s --help", subcommands[i]);
        cr_expect(strstr(r.out, head), "%s --help printed:\n%s", subcommands[i],
                  r.out);
        cr_expect_str_empty(r.err, "%s --help", subcommands[i]);
        cw_result_free(&r);
    }
}

Test(cli_usage, every_subcommand_rejects_an_unknown_option_in_one_line)
{
    for (size_t i = 0; i < NSUB; i++) {
        cw_result r =
            cw_run(&w, ARGS(subcommands[i], "--no-such-option"), NULL);
        cr_expect_eq(r.status, 2, "%s: %s", subcommands[i], r.err);
        cr_expect_eq(cw_lines(r.err), 1, "%s: %s", subcommands[i], r.err);
        cr_expect(strstr(r.err, "--no-such-option"), "%s: %s", subcommands[i],
                  r.err);
        cr_expect_str_empty(r.out, "%s", subcommands[i]);
        cw_result_free(&r);
    }
}

Test(cli_usage, an_option_missing_its_argument_is_named)
{
    const char *const *cases[] = {
        ARGS("query", "--since"),
        ARGS("trace", "req-1", "--format"),
        ARGS("export", "-o"),
    };
    const char *mention[] = {"--since", "--format", "-o"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cw_result r = cw_run(&w, cases[i], NULL);
        cr_expect_eq(r.status, 2, "case %zu", i);
        cr_expect(strstr(r.err, mention[i]) &&
                      strstr(r.err, "needs an argument"),
                  "case %zu: %s", i, r.err);
        cw_result_free(&r);
    }
}

/* The column where the help of option (its line starts "  <option>")
 * begins in text; -1 when no line lists it. */
static int help_column(const char *text, const char *option)
{
    char start[64];
    snprintf(start, sizeof start, "\n  %s ", option);
    const char *line = strstr(text, start);
    if (!line)
        return -1;
    const char *help = line + strlen(start);
    while (*help == ' ')
        help++;
    return (int)(help - line - 1);
}

Test(cli_usage, call_field_options_are_listed_in_line_with_each_commands_own)
{
    static const struct {
        const char *command, *own_option;
    } commands[] = {{"run", "--calls-log PATH"},
                    {"import-calls", "--progress"}};
    static const char *const call_fields[] = {
        "--request-id-field NAME", "--status-field NAME", "--time-field NAME"};
    for (size_t i = 0; i < 2; i++) {
        cw_result r = cw_run(&w, ARGS(commands[i].command, "--help"), NULL);
        int column = help_column(r.out, commands[i].own_option);
        cr_assert_gt(column, 0, "%s --help lists no %s:\n%s",
                     commands[i].command, commands[i].own_option, r.out);
        for (size_t f = 0; f < 3; f++)
            cr_expect_eq(help_column(r.out, call_fields[f]), column,
                         "%s --help: %s not in line with %s:\n%s",
                         commands[i].command, call_fields[f],
                         commands[i].own_option, r.out);
        cw_result_free(&r);
    }
}
