/* fuzz_json.c -- libFuzzer target for the JSON checker (event/json_check.c)
 * and the reader the decoders build on (event/json_read.c).
 *
 * Input: the bytes of one JSON text. aw_json_validate must either refuse
 * them with a reason, or accept text that every decoder can rely on: valid
 * UTF-8 without a NUL byte, that cJSON parses too, and whose objects hold
 * no key twice once cJSON has decoded the escapes -- a second opinion on
 * the checker's hash-and-compare duplicate detection. cJSON's tree is then
 * the reference for the reader: every value has the same type, every
 * string and key the same decoded text, every number the same double, and
 * aw_json_pick finds each member under its decoded name.
 */
#include "tests/fuzz/fuzz_support.h"

#include "event/decode.h" /* the reader is private to event/ */

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

static aw_json_type type_of(const cJSON *item)
{
    if (cJSON_IsString(item))
        return AW_JSON_STRING;
    if (cJSON_IsNumber(item))
        return AW_JSON_NUMBER;
    if (cJSON_IsTrue(item))
        return AW_JSON_TRUE;
    if (cJSON_IsFalse(item))
        return AW_JSON_FALSE;
    if (cJSON_IsObject(item))
        return AW_JSON_OBJECT;
    if (cJSON_IsArray(item))
        return AW_JSON_ARRAY;
    return AW_JSON_NULL;
}

static void expect_text(const aw_json *s, const char *want, const char *what)
{
    aw_bytes got;
    aw_error err;
    if (aw_json_string(s, &got, &err) != AW_OK)
        fuzz_fail("reader could not decode a %s: %s", what, err.msg);
    if (got.len != strlen(want) || memcmp(got.ptr, want, got.len) != 0)
        fuzz_fail("reader decoded a %s as \"%.*s\", cJSON as \"%s\"", what,
                  (int)got.len, got.ptr, want);
}

/* v, read by the reader, is what cJSON made of the same bytes. A number is
 * compared only as a member or element (top is false), where the reader's
 * aw_json_number applies. */
static void expect_same(const aw_json *v, const cJSON *item, bool top)
{
    if (v->type != type_of(item))
        fuzz_fail("reader type %d, cJSON type %d", v->type, type_of(item));
    if (v->type == AW_JSON_STRING)
        expect_text(v, item->valuestring, "string");
    if (v->type == AW_JSON_NUMBER && !top) {
        double got = aw_json_number(v);
        if (memcmp(&got, &item->valuedouble, sizeof got) != 0)
            fuzz_fail("reader number %.17g, cJSON %.17g", got,
                      item->valuedouble);
    }
    if (v->type != AW_JSON_OBJECT && v->type != AW_JSON_ARRAY)
        return;
    aw_json_iter it;
    aw_json key, value;
    const cJSON *child = item->child;
    size_t n = 0;
    aw_json_iter_init(&it, v);
    while (v->type == AW_JSON_OBJECT ? aw_json_next_member(&it, &key, &value)
                                     : aw_json_next_element(&it, &value)) {
        if (child == NULL)
            fuzz_fail("reader found more members than cJSON");
        if (v->type == AW_JSON_OBJECT) {
            expect_text(&key, child->string, "key");
            /* a name cJSON decoded, looked up the way the decoders do */
            const char *name = child->string;
            aw_json slot;
            aw_json_pick(v, &name, 1, &slot);
            if (slot.ptr != value.ptr || slot.type != value.type)
                fuzz_fail("aw_json_pick missed member \"%s\"", name);
        }
        expect_same(&value, child, false);
        child = child->next;
        n++;
    }
    if (child != NULL)
        fuzz_fail("reader found fewer members than cJSON");
    if (aw_json_count(v) != n)
        fuzz_fail("aw_json_count %zu, iterated %zu", aw_json_count(v), n);
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
    aw_json_doc doc;
    aw_json value;
    if (aw_json_open(&doc, text, size, &value, &err) != AW_OK)
        fuzz_fail("aw_json_open refused what aw_json_validate accepted");
    expect_same(&value, root, true);
    aw_json_close(&doc);
    cJSON_Delete(root);
    return 0;
}
