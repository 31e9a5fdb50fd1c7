/* fuzz_support.h -- what the libFuzzer targets of tests/fuzz share: turning
 * a fuzz input into a stream entry, signing it with a fixed test key, and
 * the checks every decoder's answer must pass.
 *
 * Entry inputs (fuzz_audit, fuzz_revocation, fuzz_call in entry mode) are
 *
 *     byte 0      control: (c % 3) is the signing mode (below); the targets
 *                 read c / 3 as their own selector (the revocation role)
 *     bytes 1..   NUL-separated strings: the entry id, then field name,
 *                 field value, name, value, ... (a last name without a
 *                 value gets an empty value; fields past FUZZ_MAX_FIELDS
 *                 are ignored)
 *
 * so that a mutation of a JSON value or a field name stays an entry and the
 * fuzzer reaches the real decode paths. Signing modes:
 *
 *     FUZZ_UNSIGNED   the decoder gets no key;
 *     FUZZ_SIGNED     the decoder gets the test key and the harness appends
 *                     a valid signature (audit `sig` over the first `data`,
 *                     or stream `_sig` over the canonical form), so every
 *                     check after verification is reached;
 *     FUZZ_AS_GIVEN   the decoder gets the test key and the entry keeps only
 *                     the signature fields the input wrote.
 *
 * A violated expectation prints what and aborts, which libFuzzer reports as
 * a crash with the input saved.
 */
#ifndef AW_FUZZ_SUPPORT_H
#define AW_FUZZ_SUPPORT_H

#include "event/event.h"

#include <stddef.h>
#include <stdint.h>

#define FUZZ_MAX_FIELDS 80 /* above AW_MAX_FIELDS, so that bound is reached */

/* The fixed test key (hex), the one of Caracal's canonical-form vectors. */
extern const char fuzz_key_hex[];

typedef enum fuzz_signing {
    FUZZ_UNSIGNED = 0,
    FUZZ_SIGNED = 1,
    FUZZ_AS_GIVEN = 2,
} fuzz_signing;

typedef enum fuzz_scheme {
    FUZZ_SCHEME_AUDIT,  /* `sig` over the bytes of `data` */
    FUZZ_SCHEME_STREAM, /* `_sig` over the canonical form */
} fuzz_scheme;

/* The test key, made once per process; never freed (libFuzzer runs until
 * exit, and LeakSanitizer does not count a still-reachable static). */
aw_hmac_key *fuzz_key(void);

/* Builds the entry the input describes on `stream` (see above); *signing
 * gets the mode of byte 0 (a target reads its selector, byte 0 / 3, itself,
 * since it may pick the stream). Returns NULL when the
 * input is too short to hold a control byte, or when aw_raw_entry_new
 * refuses it (then the refusal was checked with fuzz_expect_rejection).
 * Caller frees with aw_raw_entry_free. */
aw_raw_entry *fuzz_entry_from_input(const uint8_t *data, size_t size,
                                    const char *stream, fuzz_scheme scheme,
                                    fuzz_signing *signing);

/* The key a decoder gets for a signing mode: NULL, or fuzz_key(). */
aw_hmac_key *fuzz_key_for(fuzz_signing signing);

/* A decoder refused its input: it must say so as bad input -- rc
 * AW_ERR_INVALID, err->code equal, a reason, and a non-empty, terminated
 * message of valid UTF-8 without control bytes (input bytes quoted).
 * Anything else (out of memory on a small input, a generic failure)
 * aborts. */
void fuzz_expect_rejection(const char *what, int rc, const aw_error *err);

/* A string of a decoded object: NULL (absent) or a NUL-terminated, valid
 * UTF-8 string (non-empty when required). */
void fuzz_expect_text(const char *what, const char *s, bool required);

/* Prints "fuzz: <what>: ..." to stderr and aborts. */
void fuzz_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

#endif /* AW_FUZZ_SUPPORT_H */
