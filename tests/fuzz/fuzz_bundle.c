/* fuzz_bundle.c -- libFuzzer target for the evidence bundle reader
 * (aw_cli_bundle_open and aw_cli_bundle_next, cli/bundle.c, compiled into
 * this target).
 *
 * Input: byte 0 picks what the rest is. Even: the rest is the whole bundle
 * file, so the header reader (maps, skipped unknown values, required keys,
 * version, body length and hash) sees anything. Odd: the rest is a bundle
 * body, and the harness writes a valid header in front of it with the
 * body's true length and SHA-256 and byte 0 / 2 as the entry count -- a
 * fuzzer cannot forge a SHA-256, and without this no input would reach the
 * entries. The file lives in a memfd, opened through /proc/self/fd. A
 * refusal must carry a reason; a bundle read to its end must have handed
 * out the entry count of its header, in entry-id order.
 */
#define _GNU_SOURCE
#include "cli/cli.h"
#include "tests/fuzz/fuzz_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static int bundle_fd = -1;
static char bundle_path[64];

static void write_file(const void *header, size_t header_len, const void *body,
                       size_t body_len)
{
    if (bundle_fd < 0) {
        bundle_fd = memfd_create("fuzz_bundle", MFD_CLOEXEC);
        if (bundle_fd < 0)
            fuzz_fail("memfd_create failed");
        snprintf(bundle_path, sizeof bundle_path, "/proc/self/fd/%d",
                 bundle_fd);
    }
    if (ftruncate(bundle_fd, 0) != 0 ||
        pwrite(bundle_fd, header, header_len, 0) != (ssize_t)header_len ||
        pwrite(bundle_fd, body, body_len, (off_t)header_len) !=
            (ssize_t)body_len)
        fuzz_fail("cannot write the bundle file");
}

/* A header that tells the truth about body[0..len). */
static void write_wrapped(const uint8_t *body, size_t len, int64_t entries)
{
    aw_bundle_info info = {
        .version = AW_BUNDLE_VERSION,
        .since_ms = 1779364800000,
        .until_ms = 1779368400000,
        .source = "/var/lib/auditwatch/index.db",
        .created_at_ns = 1779368400000000000,
        .entries = entries,
        .body_bytes = len,
    };
    aw_sha256(body, len, info.body_sha256);
    char *header = NULL;
    size_t header_len = 0;
    FILE *fp = open_memstream(&header, &header_len);
    aw_error err;
    if (fp == NULL || aw_cli_bundle_write_header(fp, &info, &err) != AW_OK ||
        fclose(fp) != 0)
        fuzz_fail("cannot write a bundle header");
    write_file(header, header_len, body, len);
    free(header);
}

static void read_bundle(void)
{
    aw_bundle *bundle = NULL;
    aw_error err;
    int rc = aw_cli_bundle_open(bundle_path, &bundle, &err);
    if (rc != AW_OK) {
        fuzz_expect_rejection("aw_cli_bundle_open", rc, &err);
        return;
    }
    int64_t read = 0;
    uint64_t prev_ms = 0, prev_seq = 0;
    for (;;) {
        aw_raw_entry *entry = NULL;
        rc = aw_cli_bundle_next(bundle, &entry, &err);
        if (rc != AW_OK) {
            fuzz_expect_rejection("aw_cli_bundle_next", rc, &err);
            break;
        }
        if (entry == NULL) {
            if (read != aw_cli_bundle_info(bundle)->entries)
                fuzz_fail("read %lld entries, the header says %lld",
                          (long long)read,
                          (long long)aw_cli_bundle_info(bundle)->entries);
            break;
        }
        if (read > 0 && (entry->id_ms < prev_ms ||
                         (entry->id_ms == prev_ms && entry->id_seq < prev_seq)))
            fuzz_fail("entry %s handed out of order", entry->id.ptr);
        prev_ms = entry->id_ms;
        prev_seq = entry->id_seq;
        read++;
        aw_raw_entry_free(entry);
    }
    aw_cli_bundle_close(bundle);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] % 2 == 0)
        write_file(data + 1, size - 1, "", 0);
    else
        write_wrapped(data + 1, size - 1, data[0] / 2);
    read_bundle();
    return 0;
}
