/* fuzz_dead_letter.c -- libFuzzer target for dead-letter decoding
 * (aw_dead_letter_decode_audit and aw_dead_letter_decode_revocation,
 * event/dead_letter.c), followed by the decoder of the rebuilt original.
 *
 * Input: an entry in the format of fuzz_support.h. The control byte's
 * selector (byte 0 / 3, even or odd) picks caracal.audit.events.dlq or
 * caracal.sessions.revoke.dead (enforcer or SDK shape, told apart by the
 * fields), and its signing mode the envelope's `_sig` with the test key
 * (revocation dead letters only; the audit DLQ is unsigned). A refusal must
 * carry a reason; an accepted letter must have its reason, a valid source
 * id and an original entry, which then goes through its stream's decoder
 * (no key: the original's own signature is not the harness's to make) and
 * must again be accepted or refused with a reason.
 */
#include "tests/fuzz/fuzz_support.h"

static void decode_original(const aw_raw_entry *original, bool audit)
{
    aw_error err;
    int rc;
    if (audit) {
        aw_audit_event *event = NULL;
        rc = aw_event_decode_audit(original, NULL, &event, &err);
        aw_audit_event_free(event);
    } else {
        aw_revocation_set *set = NULL;
        rc = aw_event_decode_revocation(AW_ROLE_SESSION_REVOKE, original, NULL,
                                        &set, &err);
        aw_revocation_set_free(set);
    }
    if (rc != AW_OK)
        fuzz_expect_rejection("decoding the original", rc, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool audit = size == 0 || data[0] / 3 % 2 == 0;
    fuzz_signing signing;
    aw_raw_entry *entry = fuzz_entry_from_input(
        data, size,
        audit ? "caracal.audit.events.dlq" : "caracal.sessions.revoke.dead",
        FUZZ_SCHEME_STREAM, &signing);
    if (entry == NULL)
        return 0;
    aw_dead_letter *letter = NULL;
    aw_error err;
    int rc = audit ? aw_dead_letter_decode_audit(entry, "caracal.audit.events",
                                                 &letter, &err)
                   : aw_dead_letter_decode_revocation(
                         entry, "caracal.sessions.revoke",
                         fuzz_key_for(signing), &letter, &err);
    if (rc == AW_OK) {
        fuzz_expect_text("reason", letter->reason, true);
        fuzz_expect_text("source_id", letter->source_id, false);
        if (letter->original == NULL)
            fuzz_fail("accepted a dead letter without its original");
        decode_original(letter->original, audit);
    } else {
        fuzz_expect_rejection(audit ? "aw_dead_letter_decode_audit"
                                    : "aw_dead_letter_decode_revocation",
                              rc, &err);
    }
    aw_dead_letter_free(letter);
    aw_raw_entry_free(entry);
    return 0;
}
