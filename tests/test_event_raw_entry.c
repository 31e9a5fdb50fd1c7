/* test_event_raw_entry.c -- stream entries are kept byte for byte: any
 * binary field survives the msgpack round trip, stream ids are read as Redis
 * writes them, and a truncated or hostile blob is refused at every length
 * instead of crashing or allocating what its header claims. */
#include "event/event.h"

#include <criterion/criterion.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#define B(lit) ((aw_bytes){(lit), sizeof(lit) - 1})

static aw_raw_entry *make(aw_bytes stream, aw_bytes id, const aw_field *f,
                          size_t n)
{
    aw_raw_entry *e = NULL;
    aw_error err;
    cr_assert_eq(aw_raw_entry_new(stream, id, f, n, &e, &err), AW_OK, "%s",
                 err.msg);
    return e;
}

static void expect_same_entry(const aw_raw_entry *a, const aw_raw_entry *b)
{
    cr_assert_eq(a->stream.len, b->stream.len);
    cr_assert_eq(memcmp(a->stream.ptr, b->stream.ptr, a->stream.len), 0);
    cr_assert_str_eq(a->id.ptr, b->id.ptr);
    cr_assert_eq(a->id_ms, b->id_ms);
    cr_assert_eq(a->id_seq, b->id_seq);
    cr_assert_eq(a->nfields, b->nfields);
    for (size_t i = 0; i < a->nfields; i++) {
        const aw_field *x = &a->fields[i], *y = &b->fields[i];
        cr_assert_eq(x->name.len, y->name.len, "field %zu", i);
        cr_assert_eq(x->value.len, y->value.len, "field %zu", i);
        cr_assert_eq(memcmp(x->name.ptr, y->name.ptr, x->name.len), 0);
        cr_assert_eq(memcmp(x->value.ptr, y->value.ptr, x->value.len), 0,
                     "field %zu value differs", i);
    }
}

static int parse_id(const char *s, uint64_t *ms, uint64_t *seq)
{
    return aw_stream_id_parse(s, strlen(s), ms, seq);
}

Test(event_raw_entry, parses_stream_ids_as_redis_writes_them)
{
    uint64_t ms = 1, seq = 1;
    cr_assert_eq(parse_id("1716300000000-5", &ms, &seq), AW_OK);
    cr_expect_eq(ms, 1716300000000ULL);
    cr_expect_eq(seq, 5);
    cr_assert_eq(parse_id("42", &ms, &seq), AW_OK);
    cr_expect_eq(ms, 42);
    cr_expect_eq(seq, 0);
    cr_assert_eq(
        parse_id("18446744073709551615-18446744073709551615", &ms, &seq),
        AW_OK);
    cr_expect_eq(ms, UINT64_MAX);
    cr_expect_eq(seq, UINT64_MAX);
}

Test(event_raw_entry, rejects_malformed_stream_ids)
{
    const char *bad[] = {"",
                         "-",
                         "1-",
                         "-1",
                         "a-1",
                         "1-2-3",
                         " 1-0",
                         "1-0 ",
                         "18446744073709551616-0",
                         "1-18446744073709551616",
                         "+1-0"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        uint64_t ms, seq;
        cr_expect_eq(parse_id(bad[i], &ms, &seq), AW_ERR_INVALID, "'%s'",
                     bad[i]);
    }
}

Test(event_raw_entry, refuses_an_entry_with_a_bad_id)
{
    aw_raw_entry *e = (aw_raw_entry *)1;
    aw_error err;
    cr_expect_eq(aw_raw_entry_new(B("s"), B("12:7"), NULL, 0, &e, &err),
                 AW_ERR_INVALID);
    cr_expect_eq(err.reason, AW_REJECT_BAD_VALUE);
    cr_expect_null(e);
}

Test(event_raw_entry, keeps_binary_fields_in_order_with_first_match_lookup)
{
    aw_field f[] = {
        {B("data"), B("a\0b\xff")},
        {B("empty"), B("")},
        {B("data"), B("second")},
    };
    aw_raw_entry *e = make(B("caracal.audit.events"), B("7-3"), f, 3);
    cr_expect_str_eq(e->stream.ptr, "caracal.audit.events");
    cr_expect_str_eq(e->id.ptr, "7-3");
    cr_expect_eq(e->id_ms, 7);
    cr_expect_eq(e->id_seq, 3);
    const aw_bytes *data = aw_raw_entry_get(e, "data");
    cr_assert_not_null(data);
    cr_expect_eq(data->len, 4);
    cr_expect_eq(memcmp(data->ptr, "a\0b\xff", 4), 0);
    cr_expect_eq(aw_raw_entry_get(e, "empty")->len, 0);
    cr_expect_null(aw_raw_entry_get(e, "missing"));
    cr_expect_null(aw_raw_entry_get(e, "dat"));
    cr_expect_eq(e->fields[2].value.ptr[e->fields[2].value.len], '\0');
    aw_raw_entry_free(e);
}

static aw_raw_entry *binary_entry(size_t big)
{
    char *large = malloc(big);
    for (size_t i = 0; i < big; i++)
        large[i] = (char)(i * 7);
    aw_field f[20];
    f[0] = (aw_field){B("nul"), B("\0\0\0")};
    f[1] = (aw_field){B("ff"), B("\xff\xfe\x00\x80")};
    f[2] = (aw_field){B("\xff\0name"), B("")};
    f[3] = (aw_field){B("large"), {large, big}};
    for (int i = 4; i < 20; i++) /* more than 15 items: array16 */
        f[i] = (aw_field){B("k"), B("v")};
    aw_raw_entry *e = make(B("s\xfftream"), B("1716300000000-0"), f, 20);
    free(large);
    return e;
}

static aw_buf pack(const aw_raw_entry *e)
{
    aw_buf buf = {0};
    aw_error err;
    cr_assert_eq(aw_raw_entry_pack(e, &buf, &err), AW_OK, "%s", err.msg);
    return buf;
}

Test(event_raw_entry, round_trips_binary_values_through_msgpack)
{
    /* 70,000 bytes: the bin32 form */
    aw_raw_entry *e = binary_entry(70000);
    aw_buf buf = pack(e);
    aw_raw_entry *back = NULL;
    size_t used = 0;
    aw_error err;
    cr_assert_eq(aw_raw_entry_unpack(buf.ptr, buf.len, &back, &used, &err),
                 AW_OK, "%s", err.msg);
    cr_expect_eq(used, buf.len);
    expect_same_entry(e, back);
    aw_raw_entry_free(back);
    aw_raw_entry_free(e);
    aw_buf_free(&buf);
}

Test(event_raw_entry, reads_consecutive_packed_entries_by_bytes_used)
{
    aw_field f1[] = {{B("a"), B("1")}};
    aw_field f2[] = {{B("b"), B("\0")}};
    aw_raw_entry *e1 = make(B("s"), B("1-0"), f1, 1);
    aw_raw_entry *e2 = make(B("s"), B("2-0"), f2, 1);
    aw_raw_entry *e0 = make(B("s"), B("3-0"), NULL, 0);
    aw_buf buf = {0};
    aw_error err;
    cr_assert_eq(aw_raw_entry_pack(e1, &buf, &err), AW_OK);
    cr_assert_eq(aw_raw_entry_pack(e2, &buf, &err), AW_OK);
    cr_assert_eq(aw_raw_entry_pack(e0, &buf, &err), AW_OK);
    const aw_raw_entry *want[] = {e1, e2, e0};
    size_t at = 0;
    for (int i = 0; i < 3; i++) {
        aw_raw_entry *got;
        size_t used;
        cr_assert_eq(
            aw_raw_entry_unpack(buf.ptr + at, buf.len - at, &got, &used, &err),
            AW_OK, "%s", err.msg);
        expect_same_entry(want[i], got);
        aw_raw_entry_free(got);
        at += used;
    }
    cr_expect_eq(at, buf.len);
    aw_raw_entry_free(e1);
    aw_raw_entry_free(e2);
    aw_raw_entry_free(e0);
    aw_buf_free(&buf);
}

Test(event_raw_entry, rejects_truncated_msgpack_at_every_length)
{
    aw_raw_entry *e = binary_entry(300);
    aw_buf buf = pack(e);
    for (size_t cut = 0; cut < buf.len; cut++) {
        aw_raw_entry *got = (aw_raw_entry *)1;
        aw_error err = {0};
        int rc = aw_raw_entry_unpack(buf.ptr, cut, &got, NULL, &err);
        cr_assert_eq(rc, AW_ERR_INVALID, "%zu of %zu bytes accepted", cut,
                     buf.len);
        cr_assert_null(got);
        cr_assert(strstr(err.msg, "truncated") != NULL, "%zu: %s", cut,
                  err.msg);
    }
    aw_raw_entry_free(e);
    aw_buf_free(&buf);
}

static void expect_unpack_rejected(const char *data, size_t len)
{
    aw_raw_entry *got = NULL;
    aw_error err = {0};
    cr_expect_eq(aw_raw_entry_unpack(data, len, &got, NULL, &err),
                 AW_ERR_INVALID);
    cr_expect_eq(err.reason, AW_REJECT_BAD_VALUE, "%s", err.msg);
    cr_expect_null(got);
}

Test(event_raw_entry, rejects_malformed_msgpack)
{
    /* [ "s", "1-0" ] : two elements, not three */
    expect_unpack_rejected("\x92\xa1s\xa3"
                           "1-0",
                           6);
    /* the field list has an odd number of items */
    expect_unpack_rejected("\x93\xa1s\xa3"
                           "1-0\x91\xa1k",
                           9);
    /* a field value that is an integer */
    expect_unpack_rejected("\x93\xa1s\xa3"
                           "1-0\x92\xa1k\x05",
                           10);
    /* the id is not <ms>-<seq> */
    expect_unpack_rejected("\x93\xa1s\xa3"
                           "x-0\x90",
                           7);
    /* not an array at all */
    expect_unpack_rejected("\xc0", 1);
}

Test(event_raw_entry, refuses_headers_that_claim_more_than_the_input_holds)
{
    /* array32 of 4 billion elements, then array16 of 65535 fields */
    expect_unpack_rejected("\xdd\xff\xff\xff\xff\xa1s", 7);
    expect_unpack_rejected("\x93\xa1s\xa3"
                           "1-0\xdc\xff\xfe\xa1k",
                           11);
    /* bin32 claiming 4 GB */
    expect_unpack_rejected("\x93\xc6\xff\xff\xff\xff", 6);
}

Test(event_raw_entry, reads_str_objects_from_other_msgpack_writers)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_str_with_body(&pk, "calls", 5);
    msgpack_pack_str_with_body(&pk, "5-1", 3);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_str_with_body(&pk, "status", 6);
    msgpack_pack_str_with_body(&pk, "200", 3);
    aw_raw_entry *got = NULL;
    aw_error err;
    cr_assert_eq(aw_raw_entry_unpack(sb.data, sb.size, &got, NULL, &err), AW_OK,
                 "%s", err.msg);
    cr_expect_str_eq(got->stream.ptr, "calls");
    cr_expect_eq(got->id_seq, 1);
    cr_expect_str_eq(aw_raw_entry_get(got, "status")->ptr, "200");
    aw_raw_entry_free(got);
    msgpack_sbuffer_destroy(&sb);
}
