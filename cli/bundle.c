/* bundle.c -- the evidence bundle format (schema/bundle-format.md), both
 * ways: `export` writes the header, `replay --bundle` reads it back and
 * walks the body.
 *
 * A bundle is one msgpack map (the header) followed by the raw entries of a
 * window, each as aw_raw_entry_pack writes it, sorted by entry id
 * (id_ms, id_seq). The header carries the body's length and SHA-256, so a
 * reader checks the whole body before it trusts a single entry: a bundle
 * that was cut short or altered is refused, never half-replayed.
 *
 * The header is read with the small bounds-checked reader below rather than
 * msgpack-c's unpacker, for the reason event/raw_entry.c gives: a bundle is
 * outside input, and msgpack-c allocates from a container's declared count
 * before reading it. Here nothing is allocated; every declared length is
 * checked against the bytes that are left, and unknown keys are skipped so
 * that later versions can add fields.
 */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <msgpack/fbuffer.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DEPTH 32

int64_t aw_cli_ns_to_ms_ceil(int64_t ns)
{
    int64_t ms = ns / 1000000;
    return ms * 1000000 < ns ? ms + 1 : ms;
}

/* ---- writing ------------------------------------------------------------- */

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

int aw_cli_bundle_write_header(FILE *fp, const aw_bundle_info *info,
                               aw_error *err)
{
    msgpack_packer pk;
    char since[40], until[40], created[40], hex[65];

    msgpack_packer_init(&pk, fp, msgpack_fbuffer_write);
    msgpack_pack_map(&pk, 8);
    pack_str(&pk, "format");
    pack_str(&pk, AW_BUNDLE_FORMAT);
    pack_str(&pk, "version");
    msgpack_pack_int(&pk, AW_BUNDLE_VERSION);
    pack_str(&pk, "window");
    msgpack_pack_map(&pk, 4);
    pack_str(&pk, "since_ms");
    msgpack_pack_int64(&pk, info->since_ms);
    pack_str(&pk, "until_ms");
    msgpack_pack_int64(&pk, info->until_ms);
    pack_str(&pk, "since");
    pack_str(&pk, aw_time_format(aw_ms_to_ns_signed(info->since_ms), since,
                                 sizeof since));
    pack_str(&pk, "until");
    pack_str(&pk, aw_time_format(aw_ms_to_ns_signed(info->until_ms), until,
                                 sizeof until));
    pack_str(&pk, "source");
    pack_str(&pk, info->source);
    pack_str(&pk, "created_at");
    pack_str(&pk, aw_time_format(info->created_at_ns, created, sizeof created));
    pack_str(&pk, "counts");
    msgpack_pack_map(&pk, 3);
    pack_str(&pk, "entries");
    msgpack_pack_int64(&pk, info->entries);
    pack_str(&pk, "truncated");
    msgpack_pack_int64(&pk, info->truncated);
    pack_str(&pk, "streams");
    msgpack_pack_map(&pk, info->nstreams);
    for (size_t i = 0; i < info->nstreams; i++) {
        pack_str(&pk, info->streams[i].stream);
        msgpack_pack_int64(&pk, info->streams[i].entries);
    }
    pack_str(&pk, "body_bytes");
    msgpack_pack_uint64(&pk, info->body_bytes);
    pack_str(&pk, "body_sha256");
    pack_str(&pk, aw_hex(info->body_sha256, 32, hex));
    if (ferror(fp))
        return aw_error_set(err, AW_ERR_IO, "cannot write the bundle header");
    return AW_OK;
}

/* ---- a bounded msgpack reader -------------------------------------------- */

typedef struct mp {
    const unsigned char *p, *end;
} mp;

static bool take(mp *m, size_t n, const unsigned char **out)
{
    if ((size_t)(m->end - m->p) < n)
        return false;
    *out = m->p;
    m->p += n;
    return true;
}

static bool big_endian(mp *m, size_t width, uint64_t *v)
{
    const unsigned char *b;
    if (!take(m, width, &b))
        return false;
    *v = 0;
    for (size_t i = 0; i < width; i++)
        *v = *v << 8 | b[i];
    return true;
}

static bool mp_byte(mp *m, unsigned *c)
{
    const unsigned char *b;
    if (!take(m, 1, &b))
        return false;
    *c = *b;
    return true;
}

static bool mp_map(mp *m, uint64_t *n)
{
    unsigned c;
    if (!mp_byte(m, &c))
        return false;
    if (c >= 0x80 && c <= 0x8f)
        *n = c & 0x0f;
    else if (c == 0xde) {
        if (!big_endian(m, 2, n))
            return false;
    } else if (c == 0xdf) {
        if (!big_endian(m, 4, n))
            return false;
    } else
        return false;
    return *n <= (uint64_t)(m->end - m->p) / 2;
}

static bool mp_str(mp *m, const char **s, size_t *len)
{
    unsigned c;
    uint64_t n;
    const unsigned char *b;
    if (!mp_byte(m, &c))
        return false;
    if (c >= 0xa0 && c <= 0xbf)
        n = c & 0x1f;
    else if (c == 0xd9) {
        if (!big_endian(m, 1, &n))
            return false;
    } else if (c == 0xda) {
        if (!big_endian(m, 2, &n))
            return false;
    } else if (c == 0xdb) {
        if (!big_endian(m, 4, &n))
            return false;
    } else
        return false;
    if (!take(m, n, &b))
        return false;
    *s = (const char *)b;
    *len = n;
    return true;
}

static bool mp_int(mp *m, int64_t *v)
{
    unsigned c;
    uint64_t u;
    if (!mp_byte(m, &c))
        return false;
    if (c <= 0x7f) {
        *v = c;
        return true;
    }
    if (c >= 0xe0) {
        *v = (int64_t)c - 0x100;
        return true;
    }
    if (c >= 0xcc && c <= 0xcf) {
        if (!big_endian(m, (size_t)1 << (c - 0xcc), &u) || u > INT64_MAX)
            return false;
        *v = (int64_t)u;
        return true;
    }
    if (c >= 0xd0 && c <= 0xd3) {
        size_t width = (size_t)1 << (c - 0xd0);
        if (!big_endian(m, width, &u))
            return false;
        if (width < 8 && (u >> (width * 8 - 1)))
            u |= ~(uint64_t)0 << (width * 8);
        memcpy(v, &u, sizeof *v);
        return true;
    }
    return false;
}

/* Skips one value of any type. */
static bool mp_skip(mp *m, int depth)
{
    unsigned c;
    uint64_t n = 0, items = 0;
    const unsigned char *b;
    if (depth > MAX_DEPTH || !mp_byte(m, &c))
        return false;
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
        return true;
    if (c >= 0x80 && c <= 0x8f)
        items = 2 * (uint64_t)(c & 0x0f);
    else if (c >= 0x90 && c <= 0x9f)
        items = c & 0x0f;
    else if (c >= 0xa0 && c <= 0xbf)
        return take(m, c & 0x1f, &b);
    else
        switch (c) {
        case 0xcc:
        case 0xd0: return take(m, 1, &b);
        case 0xcd:
        case 0xd1: return take(m, 2, &b);
        case 0xce:
        case 0xd2:
        case 0xca: return take(m, 4, &b);
        case 0xcf:
        case 0xd3:
        case 0xcb: return take(m, 8, &b);
        case 0xd4: return take(m, 2, &b);
        case 0xd5: return take(m, 3, &b);
        case 0xd6: return take(m, 5, &b);
        case 0xd7: return take(m, 9, &b);
        case 0xd8: return take(m, 17, &b);
        case 0xc4:
        case 0xd9: return big_endian(m, 1, &n) && take(m, n, &b);
        case 0xc5:
        case 0xda: return big_endian(m, 2, &n) && take(m, n, &b);
        case 0xc6:
        case 0xdb: return big_endian(m, 4, &n) && take(m, n, &b);
        case 0xc7: return big_endian(m, 1, &n) && take(m, n + 1, &b);
        case 0xc8: return big_endian(m, 2, &n) && take(m, n + 1, &b);
        case 0xc9: return big_endian(m, 4, &n) && take(m, n + 1, &b);
        case 0xdc:
        case 0xdd:
        case 0xde:
        case 0xdf: /* array16/32, map16/32 */
            if (!big_endian(m, c & 1 ? 4 : 2, &items))
                return false;
            if (c >= 0xde)
                items *= 2;
            break;
        default: return false;
        }
    for (uint64_t i = 0; i < items; i++)
        if (!mp_skip(m, depth + 1))
            return false;
    return true;
}

static bool key_is(const char *k, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(k, want, len) == 0;
}

/* ---- reading ------------------------------------------------------------- */

struct aw_bundle {
    const unsigned char *map;
    size_t map_len;
    aw_bundle_info info;
    const unsigned char *next; /* next entry in the body */
    uint64_t prev_ms, prev_seq;
    int64_t read;
};

enum {
    HAVE_FORMAT = 1,
    HAVE_VERSION = 2,
    HAVE_SINCE = 4,
    HAVE_UNTIL = 8,
    HAVE_BYTES = 16,
    HAVE_SHA = 32,
    HAVE_ENTRIES = 64,
};
#define HAVE_ALL 127

static bool parse_window(mp *m, aw_bundle_info *info, unsigned *have)
{
    uint64_t n;
    if (!mp_map(m, &n))
        return false;
    for (uint64_t i = 0; i < n; i++) {
        const char *k;
        size_t klen;
        if (!mp_str(m, &k, &klen))
            return false;
        if (key_is(k, klen, "since_ms")) {
            if (!mp_int(m, &info->since_ms))
                return false;
            *have |= HAVE_SINCE;
        } else if (key_is(k, klen, "until_ms")) {
            if (!mp_int(m, &info->until_ms))
                return false;
            *have |= HAVE_UNTIL;
        } else if (!mp_skip(m, 1)) {
            return false;
        }
    }
    return true;
}

static bool parse_counts(mp *m, aw_bundle_info *info, unsigned *have)
{
    uint64_t n;
    if (!mp_map(m, &n))
        return false;
    for (uint64_t i = 0; i < n; i++) {
        const char *k;
        size_t klen;
        if (!mp_str(m, &k, &klen))
            return false;
        if (key_is(k, klen, "entries")) {
            if (!mp_int(m, &info->entries) || info->entries < 0)
                return false;
            *have |= HAVE_ENTRIES;
        } else if (key_is(k, klen, "truncated")) {
            if (!mp_int(m, &info->truncated))
                return false;
        } else if (!mp_skip(m, 1)) {
            return false;
        }
    }
    return true;
}

static bool parse_sha(const char *s, size_t len, unsigned char out[32])
{
    if (len != 64)
        return false;
    for (size_t i = 0; i < 32; i++) {
        unsigned v = 0;
        for (size_t j = 0; j < 2; j++) {
            char c = s[2 * i + j];
            v <<= 4;
            if (c >= '0' && c <= '9')
                v |= (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f')
                v |= (unsigned)(c - 'a' + 10);
            else
                return false;
        }
        out[i] = (unsigned char)v;
    }
    return true;
}

/* Parses the header map; *have tells which required keys were seen. */
static bool parse_header(mp *m, aw_bundle_info *info, unsigned *have)
{
    uint64_t n;
    int64_t v;
    if (!mp_map(m, &n))
        return false;
    for (uint64_t i = 0; i < n; i++) {
        const char *k, *s;
        size_t klen, slen;
        if (!mp_str(m, &k, &klen))
            return false;
        if (key_is(k, klen, "format")) {
            if (!mp_str(m, &s, &slen) || !key_is(s, slen, AW_BUNDLE_FORMAT))
                return false;
            *have |= HAVE_FORMAT;
        } else if (key_is(k, klen, "version")) {
            if (!mp_int(m, &v) || v < 1 || v > INT32_MAX)
                return false;
            info->version = (int)v;
            *have |= HAVE_VERSION;
        } else if (key_is(k, klen, "window")) {
            if (!parse_window(m, info, have))
                return false;
        } else if (key_is(k, klen, "counts")) {
            if (!parse_counts(m, info, have))
                return false;
        } else if (key_is(k, klen, "source")) {
            if (!mp_str(m, &info->source, &info->source_len))
                return false;
        } else if (key_is(k, klen, "created_at")) {
            if (!mp_str(m, &s, &slen) ||
                aw_time_parse_rfc3339(s, slen, &info->created_at_ns, NULL) !=
                    AW_OK)
                return false;
        } else if (key_is(k, klen, "body_bytes")) {
            if (!mp_int(m, &v) || v < 0)
                return false;
            info->body_bytes = (uint64_t)v;
            *have |= HAVE_BYTES;
        } else if (key_is(k, klen, "body_sha256")) {
            if (!mp_str(m, &s, &slen) || !parse_sha(s, slen, info->body_sha256))
                return false;
            *have |= HAVE_SHA;
        } else if (!mp_skip(m, 1)) {
            return false;
        }
    }
    return true;
}

static int check_bundle(aw_bundle *b, const char *path, aw_error *err)
{
    mp m = {b->map, b->map + b->map_len};
    unsigned have = 0;
    unsigned char sha[32];
    const unsigned char *body;
    size_t body_len;

    if (!parse_header(&m, &b->info, &have) || !(have & HAVE_FORMAT))
        return aw_error_reject(err, AW_REJECT_BAD_VALUE,
                               "%s is not an auditwatch bundle (bad header)",
                               path);
    if ((have & HAVE_VERSION) && b->info.version > AW_BUNDLE_VERSION)
        return aw_error_reject(
            err, AW_REJECT_BAD_VALUE,
            "%s is a version %d bundle; this auditwatch reads "
            "version %d",
            path, b->info.version, AW_BUNDLE_VERSION);
    if (have != HAVE_ALL)
        return aw_error_reject(err, AW_REJECT_MISSING_FIELD,
                               "%s: the bundle header lacks a required field",
                               path);
    body = m.p;
    body_len = (size_t)(m.end - m.p);
    if (body_len != b->info.body_bytes)
        return aw_error_reject(err, AW_REJECT_BAD_VALUE,
                               "%s: body is %zu bytes, the header says %llu "
                               "(truncated or extended)",
                               path, body_len,
                               (unsigned long long)b->info.body_bytes);
    aw_sha256(body, body_len, sha);
    if (memcmp(sha, b->info.body_sha256, 32) != 0)
        return aw_error_reject(err, AW_REJECT_BAD_VALUE,
                               "%s: body SHA-256 does not match the header "
                               "(the bundle was altered)",
                               path);
    b->next = body;
    return AW_OK;
}

int aw_cli_bundle_open(const char *path, aw_bundle **out, aw_error *err)
{
    struct stat st;
    aw_bundle *b;
    int fd, rc;

    *out = NULL;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return aw_error_set(err, AW_ERR_IO, "cannot open %s: %s", path,
                            strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
        close(fd);
        return aw_error_reject(
            err, AW_REJECT_BAD_VALUE,
            "%s is not an auditwatch bundle (empty or not a file)", path);
    }
    if (!(b = calloc(1, sizeof *b))) {
        close(fd);
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    }
    b->map_len = (size_t)st.st_size;
    b->map = mmap(NULL, b->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (b->map == MAP_FAILED) {
        free(b);
        return aw_error_set(err, AW_ERR_IO, "cannot map %s: %s", path,
                            strerror(errno));
    }
    if ((rc = check_bundle(b, path, err)) != AW_OK) {
        aw_cli_bundle_close(b);
        return rc;
    }
    *out = b;
    return AW_OK;
}

const aw_bundle_info *aw_cli_bundle_info(const aw_bundle *b)
{
    return &b->info;
}

int aw_cli_bundle_next(aw_bundle *b, aw_raw_entry **entry, aw_error *err)
{
    const unsigned char *end = b->map + b->map_len;
    size_t used = 0;
    int rc;

    *entry = NULL;
    if (b->next == end) {
        if (b->read != b->info.entries)
            return aw_error_reject(
                err, AW_REJECT_BAD_VALUE,
                "bundle holds %lld entries, the header says %lld",
                (long long)b->read, (long long)b->info.entries);
        return AW_OK;
    }
    rc = aw_raw_entry_unpack((const char *)b->next, (size_t)(end - b->next),
                             entry, &used, err);
    if (rc != AW_OK)
        return rc;
    if (b->read > 0 &&
        aw_stream_id_cmp((aw_stream_id){(*entry)->id_ms, (*entry)->id_seq},
                         (aw_stream_id){b->prev_ms, b->prev_seq}) < 0) {
        /* by position and id, never by stream name: the name is bundle
         * bytes that may hold anything, and this message goes to a terminal */
        rc = aw_error_reject(
            err, AW_REJECT_BAD_VALUE,
            "bundle entry %lld (id %s) is out of entry-id order",
            (long long)b->read + 1, (*entry)->id.ptr);
        aw_raw_entry_free(*entry);
        *entry = NULL;
        return rc;
    }
    b->prev_ms = (*entry)->id_ms;
    b->prev_seq = (*entry)->id_seq;
    b->next += used;
    b->read++;
    return AW_OK;
}

void aw_cli_bundle_close(aw_bundle *b)
{
    if (!b)
        return;
    munmap((void *)b->map, b->map_len);
    free(b);
}
