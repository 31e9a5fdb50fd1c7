/* clock_shift.c -- an LD_PRELOAD library for tests: CLOCK_REALTIME runs
 * AW_TEST_CLOCK_SHIFT_S seconds ahead (or behind) in the process it is
 * loaded into, as on a host whose clock is off or was stepped. Other
 * clocks, and the clocks of every other process (Redis's), are untouched.
 * Built without sanitizers: it is loaded ahead of their runtime. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

int clock_gettime(clockid_t id, struct timespec *ts)
{
    static int (*real)(clockid_t, struct timespec *);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "clock_gettime");
    int rc = real(id, ts);
    const char *shift = getenv("AW_TEST_CLOCK_SHIFT_S");
    if (rc == 0 && id == CLOCK_REALTIME && shift)
        ts->tv_sec += atol(shift);
    return rc;
}
