/* test_cli_durations.c -- one syntax for durations and relative times in
 * every command: `run` and `replay` accept and refuse the same values, with
 * units and fractions, and --since/--until count forward as well as back.
 *
 * Acceptance is seen without starting anything: a valid value is followed by
 * a deliberately bad option, and the one usage line must name that option,
 * not the value under test. */
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

TestSuite(cli_durations, .init = make_dir, .fini = cleanup, .timeout = 120);

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* `cmd OPTION value`, then an option the command refuses: which one is named? */
static cw_result try_value(const char *cmd, const char *option,
                           const char *value)
{
    if (strcmp(cmd, "run") == 0)
        return cw_run(&w, ARGS("run", option, value, "--batch", "0"), NULL);
    return cw_run(&w, ARGS("replay", option, value, "--format", "bogus"), NULL);
}

static const char *const commands[] = {"run", "replay"};
static const char *const options[] = {"--grace-missing", "--grace-revocation",
                                      "--audit-lookback"};
#define NOPTIONS (sizeof options / sizeof *options)

Test(cli_durations, seconds_flags_take_units_and_fractions_in_run_and_replay)
{
    const char *good[] = {"30",   "30s",   "5m", "2h",   "0.5",
                          "1.5m", "0.25h", "1d", "250ms"};
    for (size_t c = 0; c < 2; c++)
        for (size_t o = 0; o < NOPTIONS; o++)
            for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
                cw_result r = try_value(commands[c], options[o], good[i]);
                cr_expect_eq(r.status, 2, "%s %s %s", commands[c], options[o],
                             good[i]);
                cr_expect(!strstr(r.err, options[o]), "%s refused %s %s: %s",
                          commands[c], options[o], good[i], r.err);
                cw_result_free(&r);
            }
}

Test(cli_durations,
     malformed_durations_are_refused_the_same_way_in_run_and_replay)
{
    const char *bad[] = {"5x", "-1", "s", "1e400", "1.5.2", "2 h", "+3"};
    for (size_t c = 0; c < 2; c++)
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
            cw_result r = try_value(commands[c], "--grace-missing", bad[i]);
            cr_expect_eq(r.status, 2, "%s %s", commands[c], bad[i]);
            cr_expect(strstr(r.err, "--grace-missing") &&
                          strstr(r.err, "duration"),
                      "%s accepted %s or did not say why: %s", commands[c],
                      bad[i], r.err);
            cr_expect_eq(cw_lines(r.err), 1, "%s", r.err);
            cw_result_free(&r);
        }
}

Test(cli_durations, millisecond_flags_of_run_take_durations_too)
{
    const char *good[] = {"1500", "2s", "0.5s", "1m"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        cw_result a = try_value("run", "--block-ms", good[i]);
        cw_result b = try_value("run", "--claim-idle-ms", good[i]);
        cr_expect(!strstr(a.err, "--block-ms"), "%s: %s", good[i], a.err);
        cr_expect(!strstr(b.err, "--claim-idle-ms"), "%s: %s", good[i], b.err);
        cw_result_free(&a);
        cw_result_free(&b);
    }
}

Test(cli_durations, an_environment_value_is_checked_like_an_option_and_named)
{
    cw_result r =
        cw_run(&w, ARGS("run"),
               (const char *const[]){"AUDITWATCH_GRACE_MISSING=soon", NULL});
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "$AUDITWATCH_GRACE_MISSING"), "%s", r.err);
    cw_result_free(&r);
}

Test(cli_durations, since_and_until_count_forward_as_well_as_back)
{
    const char *good[] = {"-1h", "+1h", "+90m", "-1.5d", "+30s", "now"};
    const char *bad[] = {"+1", "+h", "+1x", "++1h"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        cw_result r = cw_run(
            &w, ARGS("replay", "--until", good[i], "--format", "bogus"), NULL);
        cr_expect(!strstr(r.err, "--until"), "%s refused: %s", good[i], r.err);
        cw_result_free(&r);
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cw_result r = cw_run(&w, ARGS("query", "--since", bad[i]), NULL);
        cr_expect_eq(r.status, 2, "%s", bad[i]);
        cr_expect(strstr(r.err, "--since"), "%s accepted: %s", bad[i], r.err);
        cw_result_free(&r);
    }
}
