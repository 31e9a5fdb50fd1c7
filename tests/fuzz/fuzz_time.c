/* fuzz_time.c -- libFuzzer target for time parsing: RFC 3339
 * (aw_time_parse_rfc3339, event/time.c) and the command line's time
 * arguments (aw_cli_parse_time, cli/options.c: RFC 3339, "now", "-15m",
 * "+1h").
 *
 * Input: the bytes of one time text. A refusal must carry a reason. An
 * accepted RFC 3339 time must come back unchanged through aw_time_format
 * and a second parse (the formatter's output is what export and trace
 * print). The command-line parser, given the input as a C string and a
 * fixed "now", must agree with the RFC 3339 parser on what both accept, and
 * put "-N<unit>" at or before now and "+N<unit>" at or after it.
 */
#include "cli/cli.h"
#include "tests/fuzz/fuzz_support.h"

#include <stdlib.h>
#include <string.h>

#define NOW_NS 1779364800123456789LL /* 2026-05-21T12:00:00.123456789Z */

static void parse_rfc3339(const char *text, size_t size)
{
    int64_t ns;
    aw_error err;
    int rc = aw_time_parse_rfc3339(text, size, &ns, &err);
    if (rc != AW_OK) {
        fuzz_expect_rejection("aw_time_parse_rfc3339", rc, &err);
        return;
    }
    char formatted[40];
    aw_time_format(ns, formatted, sizeof formatted);
    int64_t again;
    if (aw_time_parse_rfc3339(formatted, strlen(formatted), &again, &err) !=
        AW_OK)
        fuzz_fail("cannot parse the formatted \"%s\": %s", formatted, err.msg);
    if (again != ns)
        fuzz_fail("%lld formats as \"%s\", which parses as %lld", (long long)ns,
                  formatted, (long long)again);
}

static void parse_argument(const char *text, size_t size)
{
    char *arg = malloc(size + 1);
    if (arg == NULL)
        return;
    memcpy(arg, text, size);
    arg[size] = '\0';
    int64_t ns, direct;
    aw_error err;
    int rc = aw_cli_parse_time(arg, NOW_NS, &ns, &err);
    if (rc != AW_OK) {
        /* not fuzz_expect_rejection: the message echoes the user's own
         * argument back to the user's terminal, unquoted on purpose */
        if (rc != AW_ERR_INVALID || err.reason != AW_REJECT_BAD_TIME)
            fuzz_fail("\"%s\" refused without BAD_TIME", arg);
    } else if (arg[0] == '-' || arg[0] == '+') {
        if (arg[0] == '-' ? ns > NOW_NS : ns < NOW_NS)
            fuzz_fail("relative time \"%s\" on the wrong side of now", arg);
    } else if (strcmp(arg, "now") != 0 &&
               (aw_time_parse_rfc3339(arg, strlen(arg), &direct, NULL) !=
                    AW_OK ||
                direct != ns)) {
        fuzz_fail("\"%s\" read differently as an argument", arg);
    }
    free(arg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    parse_rfc3339((const char *)data, size);
    parse_argument((const char *)data, size);
    return 0;
}
