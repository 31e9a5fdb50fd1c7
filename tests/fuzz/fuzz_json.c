/* fuzz_json.c -- libFuzzer target for the JSON checker (event/json_check.c).
 *
 * Input: the bytes of one JSON text. aw_json_validate must either refuse
 * them with a reason, or accept text that every decoder can rely on: valid
 * UTF-8 without a NUL byte, that cJSON parses (a decoder reports a cJSON
 * failure after a passed check as out of memory), and whose objects hold no
 * key twice once cJSON has decoded the escapes -- a second opinion on the
 * checker's hash-and-compare duplicate detection.
 */
#include "tests/fuzz/fuzz_support.h"

#include <cjson/cJSON.h>
#include <string.h>

static void expect_unique_keys(const cJSON *item)
{
    for (const cJSON *a = item->child; a != NULL; a = a->next) {
        if (cJSON_IsObject(item))
            for (const cJSON *b = a->next; b != NULL; b = b->next)
                if (strcmp(a->string, b->string) == 0)
                    fuzz_fail("accepted an object with key \"%s\" twice",
                              a->string);
        expect_unique_keys(a);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    aw_error err;
    int rc = aw_json_validate(text, size, &err);
    if (rc != AW_OK) {
        fuzz_expect_rejection("aw_json_validate", rc, &err);
        return 0;
    }
    if (!aw_utf8_valid(text, size))
        fuzz_fail("accepted invalid UTF-8");
    if (memchr(text, '\0', size) != NULL)
        fuzz_fail("accepted a NUL byte");
    cJSON *root = cJSON_ParseWithLength(text, size);
    if (root == NULL)
        fuzz_fail("accepted text that cJSON cannot parse");
    expect_unique_keys(root);
    cJSON_Delete(root);
    return 0;
}
