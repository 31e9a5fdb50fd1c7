/* test_consumer_helpers.c -- the small things the command line shares with
 * the daemon: Redis addresses, secret files, the JSON form of an alert. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/support/support.h"

static char dir[PATH_MAX];

static void setup(void)
{
    aw_test_tmpdir(dir);
}
static void teardown(void)
{
    aw_test_rmtree(dir);
}

TestSuite(consumer_helpers, .init = setup, .fini = teardown, .timeout = 10);

Test(consumer_helpers, parses_redis_addresses_in_their_usual_forms)
{
    aw_redis_address a;
    aw_error err = {0};
    cr_assert(aw_redis_address_parse("redis://cache.internal:6380/2", &a,
                                     &err) == AW_OK,
              "%s", err.msg);
    cr_assert_str_eq(a.host, "cache.internal");
    cr_assert_eq(a.port, 6380);
    cr_assert_eq(a.db, 2);
    cr_assert(aw_redis_address_parse("10.0.0.5", &a, &err) == AW_OK);
    cr_assert_str_eq(a.host, "10.0.0.5");
    cr_assert_eq(a.port, 6379);
    cr_assert_eq(a.db, 0);
    cr_assert(aw_redis_address_parse("redis://[::1]:7000", &a, &err) == AW_OK);
    cr_assert_str_eq(a.host, "::1");
    cr_assert_eq(a.port, 7000);
}

Test(consumer_helpers, refuses_bad_addresses_and_passwords_in_them)
{
    aw_redis_address a;
    aw_error err = {0};
    cr_assert_eq(
        aw_redis_address_parse("redis://user:hunter2@host:6379", &a, &err),
        AW_ERR_INVALID);
    cr_assert(strstr(err.msg, "password") && !strstr(err.msg, "hunter2"), "%s",
              err.msg);
    cr_assert_eq(aw_redis_address_parse("redis://host:99999", &a, &err),
                 AW_ERR_INVALID);
    cr_assert_eq(aw_redis_address_parse("redis://host:6379/x", &a, &err),
                 AW_ERR_INVALID);
    cr_assert_eq(aw_redis_address_parse("rediss://host", &a, &err),
                 AW_ERR_INVALID);
    cr_assert_eq(aw_redis_address_parse("redis://:6379", &a, &err),
                 AW_ERR_INVALID);
}

Test(consumer_helpers, reads_a_secret_file_without_surrounding_whitespace)
{
    char path[PATH_MAX], *secret;
    aw_error err = {0};
    aw_test_write_file(aw_test_path(dir, "pw", path), "  correct horse \n\n",
                       0640);
    cr_assert(aw_secret_read_file(path, &secret, &err) == AW_OK, "%s", err.msg);
    cr_assert_str_eq(secret, "correct horse");
    aw_secret_free(secret);
}

Test(consumer_helpers, refuses_secret_files_others_can_read)
{
    char path[PATH_MAX], *secret = NULL;
    aw_error err = {0};
    aw_test_write_file(aw_test_path(dir, "pw", path), "topsecret\n", 0644);
    cr_assert_eq(aw_secret_read_file(path, &secret, &err), AW_ERR_INVALID);
    cr_assert_null(secret);
    cr_assert(strstr(err.msg, "chmod o-r") && !strstr(err.msg, "topsecret"),
              "%s", err.msg);
    cr_assert_eq(aw_secret_read_file(dir, &secret, &err), AW_ERR_INVALID,
                 "a directory was accepted");
    cr_assert_eq(
        aw_secret_read_file(aw_test_path(dir, "absent", path), &secret, &err),
        AW_ERR_IO);
}

Test(consumer_helpers, loads_hmac_keys_from_a_file_or_the_environment)
{
    char path[PATH_MAX];
    aw_hmac_key *key = NULL;
    aw_error err = {0};
    cr_assert(aw_secret_load_hmac_key(NULL, "AW_TEST_UNSET_KEY_VARIABLE", &key,
                                      &err) == AW_OK);
    cr_assert_null(key, "no file and no variable must mean no key");
    cr_assert(aw_secret_load_hmac_key(aw_test_key_file(dir, "k", path), NULL,
                                      &key, &err) == AW_OK,
              "%s", err.msg);
    cr_assert_not_null(key);
    aw_hmac_key_free(key);
    setenv("AW_TEST_KEY_VARIABLE", "not hex", 1);
    cr_assert_eq(
        aw_secret_load_hmac_key(NULL, "AW_TEST_KEY_VARIABLE", &key, &err),
        AW_ERR_INVALID);
    cr_assert(strstr(err.msg, "$AW_TEST_KEY_VARIABLE"), "%s", err.msg);
}

Test(consumer_helpers, alert_json_has_every_field_with_nulls_for_absent_ones)
{
    aw_alert a = {
        .id = "0123456789abcdef0123456789abcdef",
        .kind = AW_ALERT_DECISION_MISSING,
        .severity = "critical",
        .state = AW_ALERT_RESOLVED,
        .zone_id = "zone-1",
        .request_id = "req-1",
        .anchor = NULL,
        .event_time_ns = 1779364800000000000LL,
        .raised_at_ns = 1779365100000000000LL,
        .resolved_at_ns = 1779365160500000000LL,
        .resolved_by = "audit-9",
        .late_ns = 60500000000LL,
        .evidence_json = "[{\"entry\":\"caracal.audit.events:1-0\"}]",
        .summary = "late decision",
    };
    char *text = aw_alert_to_json(&a, AW_ALERT_RESOLVED_NOW);
    cJSON *o = cJSON_Parse(text);
    cr_assert(o, "%s", text);
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(o, "state")),
                     "resolved");
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(o, "change")),
                     "resolved");
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(o, "zone")),
                     "zone-1");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(o, "anchor")));
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(o, "event_time")),
                     "2026-05-21T12:00:00Z");
    cr_assert_str_eq(
        cJSON_GetStringValue(cJSON_GetObjectItem(o, "resolved_at")),
        "2026-05-21T12:06:00.5Z");
    cr_assert_float_eq(
        cJSON_GetNumberValue(cJSON_GetObjectItem(o, "late_seconds")), 60.5,
        1e-9);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "evidence")), 1);
    cJSON_Delete(o);
    free(text);

    a.state = AW_ALERT_OPEN;
    a.resolved_at_ns = 0;
    a.evidence_json = "not an array";
    text = aw_alert_to_json(&a, AW_ALERT_UNCHANGED);
    o = cJSON_Parse(text);
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(o, "resolved_at")));
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(o, "late_seconds")));
    cr_assert_null(cJSON_GetObjectItem(o, "change"));
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetArrayItem(
                         cJSON_GetObjectItem(o, "evidence"), 0)),
                     "not an array",
                     "evidence that is not an array must be kept, not lost");
    cJSON_Delete(o);
    free(text);
}
