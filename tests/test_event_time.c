/* test_event_time.c -- occurred_at as Caracal's producers write it (Go with
 * any offset and up to nine fraction digits, JS milliseconds with Z) lands on
 * the right UTC nanosecond, malformed times are refused with bad_time, and
 * what aw_time_format prints parses back to the same instant. Expected
 * values were computed independently (Python calendar.timegm). */
#include "event/event.h"

#include <criterion/criterion.h>
#include <string.h>

static int parse(const char *text, int64_t *ns, aw_error *err)
{
    return aw_time_parse_rfc3339(text, strlen(text), ns, err);
}

static void expect_time(const char *text, int64_t want)
{
    int64_t ns = 0;
    aw_error err = {0};
    cr_assert_eq(parse(text, &ns, &err), AW_OK, "%s: %s", text, err.msg);
    cr_expect_eq(ns, want, "%s gave %lld, want %lld", text, (long long)ns,
                 (long long)want);
}

static void expect_bad_time(const char *text)
{
    int64_t ns = 12345;
    aw_error err = {0};
    cr_expect_eq(parse(text, &ns, &err), AW_ERR_INVALID, "%s accepted", text);
    cr_expect_eq(err.reason, AW_REJECT_BAD_TIME, "%s: reason %s", text,
                 aw_reject_reason_name(err.reason));
    cr_expect_eq(ns, 12345, "%s: output written on failure", text);
}

Test(event_time, reads_utc_designators_upper_and_lower_case)
{
    expect_time("2026-05-21T12:00:00Z", 1779364800000000000LL);
    expect_time("2026-05-21T12:00:00z", 1779364800000000000LL);
    expect_time("2026-05-21t12:00:00Z", 1779364800000000000LL);
}

Test(event_time, applies_positive_negative_and_half_hour_offsets)
{
    expect_time("2026-05-21T14:00:00+02:00", 1779364800000000000LL);
    expect_time("2026-05-21T14:00:00-07:00", 1779397200000000000LL);
    expect_time("2026-05-21T14:00:00+05:30", 1779352200000000000LL);
    expect_time("2026-05-21T12:00:00+00:00", 1779364800000000000LL);
    expect_time("2026-05-21T12:00:00-00:00", 1779364800000000000LL);
}

Test(event_time, keeps_every_fraction_digit_up_to_nanoseconds)
{
    expect_time("2026-05-21T12:00:00.1Z", 1779364800100000000LL);
    expect_time("2026-05-21T12:00:00.123Z", 1779364800123000000LL);
    expect_time("2026-05-21T12:00:00.123456Z", 1779364800123456000LL);
    expect_time("2026-05-21T12:00:00.000000001Z", 1779364800000000001LL);
    expect_time("2026-05-21T14:00:00.123456789+02:00", 1779364800123456789LL);
}

Test(event_time, knows_leap_years_and_the_epoch_edges)
{
    expect_time("2024-02-29T23:59:59.999Z", 1709251199999000000LL);
    expect_time("2000-02-29T00:00:00Z", 951782400000000000LL);
    expect_time("1970-01-01T00:00:00Z", 0);
    expect_time("1969-12-31T23:59:59.5Z", -500000000LL);
    expect_time("2262-04-11T23:47:16.854775807Z", INT64_MAX);
    expect_time("1677-09-21T00:12:43.145224192Z", INT64_MIN);
}

Test(event_time, rejects_times_without_an_offset)
{
    expect_bad_time("2026-05-21T12:00:00");
    expect_bad_time("2026-05-21T12:00:00.123");
    expect_bad_time("2026-05-21");
    expect_bad_time("");
}

Test(event_time, rejects_fields_out_of_range)
{
    expect_bad_time("2026-13-01T00:00:00Z");
    expect_bad_time("2026-00-01T00:00:00Z");
    expect_bad_time("2026-01-00T00:00:00Z");
    expect_bad_time("2026-02-29T00:00:00Z"); /* 2026 is a common year */
    expect_bad_time("1900-02-29T00:00:00Z"); /* centuries are not leap */
    expect_bad_time("2024-02-30T00:00:00Z");
    expect_bad_time("2026-04-31T00:00:00Z");
    expect_bad_time("2026-05-21T24:00:00Z");
    expect_bad_time("2026-05-21T12:60:00Z");
    expect_bad_time("2026-05-21T12:00:61Z");
    expect_bad_time("2026-05-21T12:00:00+24:00");
    expect_bad_time("2026-05-21T12:00:00+02:60");
}

Test(event_time, rejects_the_leap_second)
{
    expect_bad_time("2016-12-31T23:59:60Z");
}

Test(event_time, rejects_malformed_shapes_and_trailing_bytes)
{
    expect_bad_time("2026-05-21 12:00:00Z");
    expect_bad_time("2026-5-21T12:00:00Z");
    expect_bad_time("2026-05-21T12:00:00.Z");
    expect_bad_time("2026-05-21T12:00:00.1234567890Z");
    expect_bad_time("2026-05-21T12:00:00+0200");
    expect_bad_time("2026-05-21T12:00:00+02");
    expect_bad_time("2026-05-21T12:00:00Z ");
    expect_bad_time("2026-05-21T12:00:00Zjunk");
    expect_bad_time("2026-05-21T12:00:00+02:00x");
    expect_bad_time("+2026-05-21T12:00:00Z");
}

Test(event_time, rejects_instants_beyond_int64_nanoseconds)
{
    expect_bad_time("2262-04-11T23:47:16.854775808Z");
    expect_bad_time("1677-09-21T00:12:43.145224191Z");
    expect_bad_time("9999-12-31T23:59:59Z");
}

Test(event_time, stops_at_the_given_length)
{
    const char text[] = "2026-05-21T12:00:00Zgarbage";
    int64_t ns;
    aw_error err;
    cr_assert_eq(aw_time_parse_rfc3339(text, 20, &ns, &err), AW_OK, "%s",
                 err.msg);
    cr_expect_eq(ns, 1779364800000000000LL);
}

Test(event_time, names_the_bad_value_in_the_message)
{
    int64_t ns;
    aw_error err;
    parse("2026-13-01T00:00:00Z", &ns, &err);
    cr_expect(strstr(err.msg, "2026-13-01T00:00:00Z") != NULL, "%s", err.msg);
    cr_expect(strstr(err.msg, "month") != NULL, "%s", err.msg);
}

Test(event_time, formats_utc_with_trimmed_fraction)
{
    char buf[40];
    cr_expect_str_eq(aw_time_format(1779364800000000000LL, buf, sizeof buf),
                     "2026-05-21T12:00:00Z");
    cr_expect_str_eq(aw_time_format(1779364800123000000LL, buf, sizeof buf),
                     "2026-05-21T12:00:00.123Z");
    cr_expect_str_eq(aw_time_format(1, buf, sizeof buf),
                     "1970-01-01T00:00:00.000000001Z");
    cr_expect_str_eq(aw_time_format(-500000000LL, buf, sizeof buf),
                     "1969-12-31T23:59:59.5Z");
    cr_expect_str_eq(aw_time_format(INT64_MIN, buf, sizeof buf),
                     "1677-09-21T00:12:43.145224192Z");
    cr_expect_str_eq(aw_time_format(INT64_MAX, buf, sizeof buf),
                     "2262-04-11T23:47:16.854775807Z");
}

Test(event_time, formatted_times_parse_back_to_the_same_instant)
{
    /* a spread of instants over the whole range, negative ones included */
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < 20000; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        int64_t ns = (int64_t)x;
        if (i % 3 == 0)
            ns -= ns % 1000000000; /* whole seconds too */
        char buf[40];
        aw_time_format(ns, buf, sizeof buf);
        int64_t back = 0;
        aw_error err;
        cr_assert_eq(parse(buf, &back, &err), AW_OK, "%s: %s", buf, err.msg);
        cr_assert_eq(back, ns, "%s parsed to %lld, formatted from %lld", buf,
                     (long long)back, (long long)ns);
    }
}
