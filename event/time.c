/* time.c -- RFC 3339 date-times to and from nanoseconds since the epoch.
 *
 * Caracal's producers write occurred_at with Go (any offset, up to nine
 * fraction digits), JS (milliseconds, Z) and Python; all of it must land on
 * one UTC nanosecond axis, because event time drives detection. The
 * conversion is plain calendar arithmetic (days_from_civil, after Howard
 * Hinnant's public-domain algorithms): no timegm, no TZ, no locale, so the
 * answer never depends on the machine.
 *
 * Accepted: YYYY-MM-DD, `T` or `t`, hh:mm:ss, an optional fraction of 1-9
 * digits, then `Z`, `z` or ±hh:mm, and nothing after. Rejected: a missing
 * offset, fields out of range (month 13, Feb 29 of a common year, hour 24,
 * minute 60), and the leap second :60, which a nanosecond count cannot hold
 * (Caracal's producers never emit one). Times outside 1677-2262 do not fit
 * an int64 of nanoseconds and are rejected too.
 */
#include "event/event.h"
#include "event/decode.h"

#include <stdio.h>
#include <string.h>

#define NS_PER_SEC 1000000000LL

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned char days[12] = {31, 28, 31, 30, 31, 30,
                                           31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* n decimal digits at s[at..], or -1. */
static int digits(const char *s, size_t len, size_t at, size_t n)
{
    if (at + n > len)
        return -1;
    int v = 0;
    for (size_t i = at; i < at + n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static bool char_at(const char *s, size_t len, size_t at, char c)
{
    return at < len && s[at] == c;
}

static int bad_time(aw_error *err, const char *s, size_t len, const char *why)
{
    char q[AW_QUOTE_SIZE];
    return aw_error_reject(err, AW_REJECT_BAD_TIME, "\"%s\": %s",
                           aw_quote(s, len, q), why);
}

int aw_time_parse_rfc3339(const char *s, size_t len, int64_t *ns_out,
                          aw_error *err)
{
    int year = digits(s, len, 0, 4), month = digits(s, len, 5, 2),
        day = digits(s, len, 8, 2), hour = digits(s, len, 11, 2),
        minute = digits(s, len, 14, 2), second = digits(s, len, 17, 2);
    bool shape = year >= 0 && month >= 0 && day >= 0 && hour >= 0 &&
                 minute >= 0 && second >= 0 && char_at(s, len, 4, '-') &&
                 char_at(s, len, 7, '-') &&
                 (char_at(s, len, 10, 'T') || char_at(s, len, 10, 't')) &&
                 char_at(s, len, 13, ':') && char_at(s, len, 16, ':');
    if (!shape)
        return bad_time(err, s, len,
                        "not an RFC 3339 date-time (YYYY-MM-DDThh:mm:ss)");
    if (month < 1 || month > 12)
        return bad_time(err, s, len, "month out of range");
    if (day < 1 || (unsigned)day > days_in_month(year, (unsigned)month))
        return bad_time(err, s, len, "no such day in that month");
    if (hour > 23 || minute > 59)
        return bad_time(err, s, len, "hour or minute out of range");
    if (second == 60)
        return bad_time(err, s, len, "leap second not supported");
    if (second > 59)
        return bad_time(err, s, len, "second out of range");

    size_t at = 19;
    int64_t fraction = 0;
    if (char_at(s, len, at, '.')) {
        size_t first = ++at;
        int64_t scale = NS_PER_SEC;
        while (at < len && s[at] >= '0' && s[at] <= '9') {
            if (at - first == 9)
                return bad_time(err, s, len, "more than 9 fraction digits");
            scale /= 10;
            fraction += (s[at] - '0') * scale;
            at++;
        }
        if (at == first)
            return bad_time(err, s, len, "no digit after the decimal point");
    }

    int offset = 0;
    if (char_at(s, len, at, 'Z') || char_at(s, len, at, 'z')) {
        at++;
    } else if (char_at(s, len, at, '+') || char_at(s, len, at, '-')) {
        int oh = digits(s, len, at + 1, 2), om = digits(s, len, at + 4, 2);
        if (oh < 0 || om < 0 || !char_at(s, len, at + 3, ':'))
            return bad_time(err, s, len, "malformed offset (want ±hh:mm)");
        if (oh > 23 || om > 59)
            return bad_time(err, s, len, "offset out of range");
        offset = (oh * 60 + om) * 60 * (s[at] == '-' ? -1 : 1);
        at += 6;
    } else {
        return bad_time(err, s, len, "missing offset (Z or ±hh:mm)");
    }
    if (at != len)
        return bad_time(err, s, len, "trailing bytes after the offset");

    int64_t secs =
        days_from_civil(year, (unsigned)month, (unsigned)day) * 86400 +
        hour * 3600 + minute * 60 + second - offset;
    if (secs < 0 && fraction > 0) {
        /* keeps the product in range down to the very first nanosecond */
        secs++;
        fraction -= NS_PER_SEC;
    }
    int64_t ns;
    if (__builtin_mul_overflow(secs, NS_PER_SEC, &ns) ||
        __builtin_add_overflow(ns, fraction, &ns))
        return bad_time(err, s, len, "outside the years 1677-2262");
    *ns_out = ns;
    return AW_OK;
}

char *aw_time_format(int64_t ns, char *buf, size_t size)
{
    int64_t secs = ns / NS_PER_SEC, frac = ns % NS_PER_SEC;
    if (frac < 0) {
        frac += NS_PER_SEC;
        secs--;
    }
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    int64_t year;
    unsigned month, day;
    civil_from_days(days, &year, &month, &day);

    char fraction[11] = "";
    if (frac != 0) {
        int width = 9;
        while (frac % 10 == 0) {
            frac /= 10;
            width--;
        }
        snprintf(fraction, sizeof fraction, ".%0*lld", width, (long long)frac);
    }
    snprintf(buf, size, "%04lld-%02u-%02uT%02d:%02d:%02d%sZ", (long long)year,
             month, day, (int)(sod / 3600), (int)(sod / 60 % 60),
             (int)(sod % 60), fraction);
    return buf;
}
