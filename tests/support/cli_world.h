/* cli_world.h -- an index of realistic Caracal traffic for the command-line
 * tests, built through the consumer's ingest path (the daemon's own), with
 * signed entries, then handed to the real auditwatch binary.
 *
 * The story, times relative to CW_T0_MS (2026-05-21T12:00:00Z):
 *   +1 s      req-1: token_exchange allow (ar-1, as-1, e-1, chain as-0/e-0)
 *             with policies and diagnostics, its Gateway call, and an
 *             observed upstream call (200)
 *   +10 s     req-2: a Gateway call (upstream 200) with no token_exchange
 *   +20 s     req-3: token_exchange deny (app-2, resource://billing)
 *   +30 s     session ar-1 revoked
 *   +60 s     req-4: token_exchange allow on ar-1 and its Gateway call
 *   +100 s    req-5: an observed call (200) with no audit at all
 *   +120 s    req-6: zone-2, token_exchange + Gateway call
 *   +130 s    req-an: Caracal's own replay_detected (deny, anomaly)
 *   +135 s    an audit entry with a forged signature (rejected)
 *   +136 s    an audit entry whose data is not JSON (rejected)
 *   +140 s    req-7: a Gateway call whose token_exchange arrives late
 *   +150 s    req-odd: zone-3, token_exchange whose resource holds a quote,
 *             a comma, a newline, a backslash, ESC and non-ASCII text
 *             (CW_ODD_RESOURCE)
 *   +200 s .. CW_FILLERS requests req-f000.. (app-fill), one a second:
 *             token_exchange + Gateway call each
 *   clock to +500 s; then the late token_exchange of req-7 (entry at +600 s,
 *   occurred at +139.95 s); clock to +2000 s.
 *
 * Alerts that follow: open decision_missing (req-2, critical),
 * access_after_revocation (req-4, critical), call_without_audit (req-5),
 * caracal_anomaly (req-an), signature_invalid; resolved decision_missing
 * (req-7).
 */
#ifndef AW_TESTS_CLI_WORLD_H
#define AW_TESTS_CLI_WORLD_H

#include "tests/support/support.h"

#define CW_T0_MS   1779364800000LL
#define CW_FILLERS 120
/* ar-1's revocation reason: an operator's two lines, the second reading
 * "key=value" out of sorted place (free text, signed as Caracal signs). */
#define CW_REVOKE_REASON "grant_revoked\nticket=INC-7"
/* Events in the index: 11 named, 2 per filler, and the late one. */
#define CW_EVENTS (11 + 2 * CW_FILLERS + 1)
/* The resource of req-odd, as C text (its JSON form escapes it). */
#define CW_ODD_RESOURCE "res \"q\", a\nb \\ \x1b[31m h\xc3\xa9llo"

typedef struct cli_world {
    char dir[PATH_MAX]; /* a fresh temporary directory (aw_test_tmpdir) */
    char db[PATH_MAX];  /* dir/auditwatch.db */
    int runs;           /* names the output files of cw_run */
} cli_world;

/* Makes the directory and builds the index in it. Every entry is signed
 * with AW_TEST_KEY_HEX (both schemes). keys: the ingest verifies them (the
 * forged entry is then rejected); without keys every entry is indexed
 * unverified, the forged one included. */
void cw_build(cli_world *w, bool keys);
/* Removes the directory and everything in it. */
void cw_cleanup(cli_world *w);

/* Adds one signed token_exchange (zone-1, allow, session ar-extra) that
 * occurred at occurred_ns and was published at published_ms, both since
 * the epoch: for tests that need evidence relative to the wall clock, or
 * at the edges of time. */
void cw_add_exchange(cli_world *w, const char *id, const char *request_id,
                     int64_t occurred_ns, int64_t published_ms);

/* One run of the binary: exit status, stdout and stderr (heap). */
typedef struct cw_result {
    int status;
    char *out;
    char *err;
} cw_result;

/* Runs auditwatch with args (NULL-terminated, without the program name) and
 * env ("NAME=value", NULL-terminated, may be NULL) to the end, its output
 * kept in files in w->dir. It runs in the test's working directory, so
 * paths in args go under w->dir. */
cw_result cw_run(cli_world *w, const char *const *args, const char *const *env);
void cw_result_free(cw_result *r);

/* Parses every line of out as a JSON object (asserting each one is);
 * returns a cJSON array of them (cJSON_Delete it). */
struct cJSON *cw_json_lines(const char *out);
/* Member name of JSON object row as a string ("" when absent or not a
 * string). */
const char *cw_str(const struct cJSON *row, const char *name);
/* Lines in text. */
size_t cw_lines(const char *text);

/* The ns time of CW_T0_MS + ms. */
#define CW_NS(ms) ((CW_T0_MS + (ms)) * 1000000LL)

#endif /* AW_TESTS_CLI_WORLD_H */
