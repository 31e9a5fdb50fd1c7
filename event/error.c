/* error.c -- the one error convention of auditwatch, and the names of the
 * reasons an entry can be rejected for.
 *
 * Every fallible function returns 0 or a negative AW_ERR_* code and fills an
 * aw_error. Bad input is never a crash and never a silent drop: it is
 * AW_ERR_INVALID with one aw_reject_reason plus a sentence naming the field.
 * The reason names below are stored in the index (rejected.reason) and shown
 * to users, so they are part of the on-disk format: never rename one, only
 * add.
 *
 * Messages never carry key material; callers that format attacker-supplied
 * text into a message cut it short first (aw_quote in decode.h).
 */
#include "event/event.h"
#include "event/decode.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const reason_names[AW_REJECT_REASON_COUNT] = {
    [AW_REJECT_NONE] = "none",
    [AW_REJECT_NOT_JSON] = "not_json",
    [AW_REJECT_NOT_OBJECT] = "not_object",
    [AW_REJECT_DUPLICATE_KEY] = "duplicate_key",
    [AW_REJECT_INVALID_UTF8] = "invalid_utf8",
    [AW_REJECT_EMBEDDED_NUL] = "embedded_nul",
    [AW_REJECT_MISSING_FIELD] = "missing_field",
    [AW_REJECT_WRONG_TYPE] = "wrong_type",
    [AW_REJECT_OVERSIZED] = "oversized",
    [AW_REJECT_BAD_TIME] = "bad_time",
    [AW_REJECT_BAD_VALUE] = "bad_value",
    [AW_REJECT_SIGNATURE_MISSING] = "signature_missing",
    [AW_REJECT_SIGNATURE_INVALID] = "signature_invalid",
    [AW_REJECT_TOO_MANY_DELIVERIES] = "too_many_deliveries",
    [AW_REJECT_AMBIGUOUS_SIGNED_FIELD] = "ambiguous_signed_field",
    [AW_REJECT_INDEX_ERROR] = "index_error",
};

const char *aw_reject_reason_name(aw_reject_reason reason)
{
    if ((unsigned)reason >= AW_REJECT_REASON_COUNT)
        return "unknown";
    return reason_names[reason];
}

aw_reject_reason aw_reject_reason_from_name(const char *name)
{
    if (name == NULL)
        return AW_REJECT_NONE;
    for (int r = 0; r < AW_REJECT_REASON_COUNT; r++)
        if (strcmp(reason_names[r], name) == 0)
            return (aw_reject_reason)r;
    return AW_REJECT_NONE;
}

bool aw_reject_reason_is_signature(aw_reject_reason reason)
{
    return reason == AW_REJECT_SIGNATURE_MISSING ||
           reason == AW_REJECT_SIGNATURE_INVALID ||
           reason == AW_REJECT_AMBIGUOUS_SIGNED_FIELD;
}

static int error_fill(aw_error *err, int code, aw_reject_reason reason,
                      const char *fmt, va_list ap)
{
    if (err == NULL)
        return code;
    err->code = code;
    err->reason = reason;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    return code;
}

int aw_error_set(aw_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_fill(err, code, AW_REJECT_NONE, fmt, ap);
    va_end(ap);
    return code;
}

int aw_error_reject(aw_error *err, aw_reject_reason reason, const char *fmt,
                    ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_fill(err, AW_ERR_INVALID, reason, fmt, ap);
    va_end(ap);
    return AW_ERR_INVALID;
}

void aw_error_prefix(aw_error *err, const char *what)
{
    if (err == NULL || what == NULL)
        return;
    /* "<what>: " in front; the old message loses its tail if need be */
    size_t room = sizeof err->msg - 1, head = strlen(what) + 2;
    if (head > room)
        return;
    size_t keep = strlen(err->msg);
    if (keep > room - head)
        keep = room - head;
    memmove(err->msg + head, err->msg, keep);
    err->msg[head + keep] = '\0';
    memcpy(err->msg, what, head - 2);
    memcpy(err->msg + head - 2, ": ", 2);
}
