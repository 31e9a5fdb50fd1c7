/* ingest.c -- raw stream entries into the index, one transaction a batch.
 *
 * This is the part of the consumer that knows nothing of Redis: the daemon,
 * `replay` and `import-calls` all hand it entries they already hold. A batch
 * is all-or-nothing. Inside its transaction every entry is stored verbatim
 * first (so the evidence exists whatever the decoders think of it), then
 * decoded by the role of its stream and stored with the detector hook, or
 * stored as rejected with the decoder's reason. Nothing is dropped: an entry
 * of a stream no role names is rejected too, with that as the reason.
 *
 * Idempotence comes from the store: an entry stored before (same stream and
 * id) is a redelivery, and everything derived from it is skipped. That is
 * what lets the daemon acknowledge only after the commit, and redeliver
 * freely after a crash.
 *
 * Dead letters (DESIGN §8): an entry of the audit DLQ or of a revocation
 * stream's `.dead` is read back into the original Caracal gave up on, which
 * is then verified and indexed exactly as an entry of its origin stream
 * would be -- stored under the dead letter's own row, so the raw entry keeps
 * Caracal's reason and received_at -- and alerted as dead-lettered on top.
 *
 * Signature policy is per stream: the audit stream needs the audit key,
 * Caracal's revocation streams the streams key, and the calls stream (the
 * team's own shippers) its own key or none.
 *
 * Checkpoints only move forward: a batch of reclaimed, older entries must
 * not make `status` report less progress than was made. The newest
 * committed id of every stream is kept in memory (loaded at open) and a
 * batch writes a checkpoint only for streams it moved past that. After a
 * failed batch the store rolls back, the detectors discard their queued
 * changes, and the in-memory checkpoints are left as they were, so the same
 * batch can simply be tried again.
 */
#include "consumer/consumer.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Role of an import stream: calls, read from NDJSON lines. */
#define ROLE_IMPORT AW_ROLE_COUNT
/* Role of a stream no option names. */
#define ROLE_UNKNOWN (-1)

/* A stream seen by this handle: its role and its checkpoint. */
typedef struct stream_slot {
    char *name;
    size_t len;
    int role;
    uint64_t done_ms, done_seq; /* newest committed entry id */
    bool in_batch;              /* the batch holds an entry newer than done */
    uint64_t batch_ms, batch_seq;
    char batch_id[AW_STREAM_ID_TEXT_MAX];
} stream_slot;

/* What decoding reads. A key holds its MAC context, so each thread that
 * decodes has keys of its own (aw_ingest_decoder_new copies them). */
typedef struct decoder {
    aw_hmac_key *audit_key;
    aw_hmac_key *streams_key;
    aw_hmac_key *calls_key;
    aw_stream_names streams; /* .of[role] */
    aw_call_fields call_fields;
} decoder;

struct aw_ingest {
    aw_store *store;
    aw_detectors *det;
    decoder dec; /* the keys borrowed from the options */
    stream_slot *slots;
    size_t nslots, capslots;
    const aw_pipeline_finding *findings; /* for the next batch; borrowed */
    size_t nfindings;
};

static bool has_import_prefix(const char *name, size_t len)
{
    size_t plen = sizeof AW_INGEST_IMPORT_PREFIX - 1;
    return len >= plen && memcmp(name, AW_INGEST_IMPORT_PREFIX, plen) == 0;
}

static int role_of(const aw_stream_names *streams, const char *name, size_t len)
{
    if (has_import_prefix(name, len))
        return ROLE_IMPORT;
    for (int r = 0; r < AW_ROLE_COUNT; r++)
        if (strlen(streams->of[r]) == len &&
            memcmp(streams->of[r], name, len) == 0)
            return r;
    return ROLE_UNKNOWN;
}

/* The slot of stream name, added when new. NULL when out of memory. */
static stream_slot *slot_for(aw_ingest *ing, const char *name, size_t len)
{
    for (size_t i = 0; i < ing->nslots; i++)
        if (ing->slots[i].len == len &&
            memcmp(ing->slots[i].name, name, len) == 0)
            return &ing->slots[i];
    if (ing->nslots == ing->capslots) {
        size_t cap = ing->capslots ? ing->capslots * 2 : 8;
        stream_slot *grown = realloc(ing->slots, cap * sizeof *grown);
        if (!grown)
            return NULL;
        ing->slots = grown;
        ing->capslots = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return NULL;
    memcpy(copy, name, len);
    copy[len] = '\0';
    stream_slot *s = &ing->slots[ing->nslots++];
    memset(s, 0, sizeof *s);
    s->name = copy;
    s->len = len;
    s->role = role_of(&ing->dec.streams, name, len);
    return s;
}

/* The store's aw_event_content_fn: the content hash of the audit event
 * stored from row, decoded as decode_entry decoded it (from the entry,
 * or from the original a DLQ entry holds). Its signature was checked when
 * it was stored, and the hash chain covers its bytes since, so none is
 * checked again: a rotated key must not turn a redelivery into tampering.
 * An events row names the entry, so it held an audit event whatever its
 * stream; a stream no option names any more (renamed since) is read by
 * its shape: a dead letter carries the original's fields as src_*. */
static int stored_event_content(const aw_entry_row *row, void *ud,
                                unsigned char content_hash[32], aw_error *err)
{
    aw_ingest *ing = ud;
    stream_slot *slot = slot_for(ing, row->stream, strlen(row->stream));
    if (!slot)
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    aw_raw_entry *e = NULL;
    aw_dead_letter *letter = NULL;
    aw_audit_event *ev = NULL;
    aw_error why = {0};
    int rc = aw_raw_entry_unpack(row->raw, row->raw_len, &e, NULL, &why);
    bool dead_letter =
        rc == AW_OK &&
        (slot->role == AW_ROLE_AUDIT_DLQ ||
         (slot->role != AW_ROLE_AUDIT && aw_raw_entry_get(e, "src_data")));
    if (dead_letter)
        rc = aw_dead_letter_decode_audit(e, ing->dec.streams.of[AW_ROLE_AUDIT],
                                         &letter, &why);
    if (rc == AW_OK)
        rc = aw_event_decode_audit(letter ? letter->original : e, NULL, &ev,
                                   &why);
    if (rc == AW_OK)
        memcpy(content_hash, ev->content_hash, 32);
    else
        rc = aw_error_set(err, rc == AW_ERR_NOMEM ? rc : AW_ERR,
                          "the event stored at entry row %lld (stream %s) no "
                          "longer decodes: %s",
                          (long long)row->rowid, row->stream, why.msg);
    aw_audit_event_free(ev);
    aw_dead_letter_free(letter);
    aw_raw_entry_free(e);
    return rc;
}

static int load_checkpoint(const char *stream, const char *entry_id,
                           int64_t updated_at_ns, void *ud)
{
    aw_ingest *ing = ud;
    stream_slot *s = slot_for(ing, stream, strlen(stream));
    (void)updated_at_ns;
    if (!s)
        return AW_ERR_NOMEM;
    if (aw_stream_id_parse(entry_id, strlen(entry_id), &s->done_ms,
                           &s->done_seq) != AW_OK)
        s->done_ms = s->done_seq = 0;
    return 0;
}

static int check_stream_names(const aw_ingest *ing, aw_error *err)
{
    for (int r = 0; r < AW_ROLE_COUNT; r++) {
        const char *name = ing->dec.streams.of[r];
        if (!*name)
            return aw_error_set(err, AW_ERR_INVALID,
                                "the %s stream has an empty name",
                                aw_stream_role_name((aw_stream_role)r));
        if (has_import_prefix(name, strlen(name)))
            return aw_error_set(
                err, AW_ERR_INVALID,
                "stream name \"%s\" is reserved for imports (%s...)", name,
                AW_INGEST_IMPORT_PREFIX);
        for (int o = 0; o < r; o++)
            if (strcmp(ing->dec.streams.of[o], name) == 0)
                return aw_error_set(err, AW_ERR_INVALID,
                                    "roles %s and %s both name stream \"%s\"",
                                    aw_stream_role_name((aw_stream_role)o),
                                    aw_stream_role_name((aw_stream_role)r),
                                    name);
    }
    return AW_OK;
}

int aw_ingest_open(const aw_ingest_options *options, aw_ingest **out,
                   aw_error *err)
{
    aw_ingest *ing = calloc(1, sizeof *ing);
    aw_detector_config detectors;
    int rc;
    *out = NULL;
    if (!ing)
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    if (options->detectors)
        detectors = *options->detectors;
    else
        aw_detector_config_init(&detectors);
    /* named by the resolved names below, before the detectors copy it */
    detectors.audit_stream = ing->dec.streams.of[AW_ROLE_AUDIT];
    ing->dec.audit_key = options->audit_key;
    ing->dec.streams_key = options->streams_key;
    ing->dec.calls_key = options->calls_key;
    ing->dec.call_fields = options->call_fields;
    if ((rc = aw_stream_names_resolve(options->streams, &ing->dec.streams,
                                      err)) != AW_OK ||
        (rc = check_stream_names(ing, err)) != AW_OK ||
        (rc = aw_store_open(options->db_path, options->store_flags, &ing->store,
                            err)) != AW_OK ||
        (rc = aw_detectors_new(ing->store, &detectors, &ing->det, err)) !=
            AW_OK ||
        (rc = aw_store_query_checkpoints(ing->store, load_checkpoint, ing,
                                         err)) != AW_OK) {
        if (rc == AW_ERR_NOMEM)
            aw_error_set(err, rc, "out of memory");
        aw_ingest_close(ing);
        return rc;
    }
    aw_store_set_event_content(ing->store, stored_event_content, ing);
    *out = ing;
    return AW_OK;
}

void aw_ingest_close(aw_ingest *ing)
{
    if (!ing)
        return;
    aw_detectors_free(ing->det);
    aw_store_close(ing->store);
    for (size_t i = 0; i < ing->nslots; i++)
        free(ing->slots[i].name);
    free(ing->slots);
    free(ing);
}

aw_store *aw_ingest_store(aw_ingest *ing)
{
    return ing->store;
}

void aw_ingest_carry_findings(aw_ingest *ing,
                              const aw_pipeline_finding *findings, size_t n)
{
    ing->findings = findings;
    ing->nfindings = n;
}

int64_t aw_ingest_clock(const aw_ingest *ing)
{
    return aw_detectors_clock(ing->det);
}

void aw_ingest_drain_alerts(aw_ingest *ing, aw_alert_change_fn fn, void *ud)
{
    aw_detectors_drain(ing->det, fn, ud);
}

/* ---- One entry ------------------------------------------------------------ */

/* What the decoder of an entry's role made of it: one of event,
 * revocations and call, and for a dead letter the letter, whose original
 * is what was decoded. */
typedef struct decoding {
    aw_dead_letter *letter;
    aw_audit_event *event;
    aw_revocation_set *revocations;
    aw_observed_call *call;
} decoding;

static void decoding_free(decoding *d)
{
    aw_audit_event_free(d->event);
    aw_revocation_set_free(d->revocations);
    aw_observed_call_free(d->call);
    aw_dead_letter_free(d->letter);
}

static int decode_import(const decoder *dec, const aw_raw_entry *e, decoding *d,
                         aw_error *why)
{
    const aw_bytes *line = aw_raw_entry_get(e, AW_INGEST_IMPORT_FIELD);
    if (!line)
        return aw_error_reject(why, AW_REJECT_MISSING_FIELD,
                               "import entry has no \"%s\" field",
                               AW_INGEST_IMPORT_FIELD);
    return aw_event_decode_call_json(line->ptr, line->len, &dec->call_fields,
                                     aw_ms_to_ns(e->id_ms), &d->call, why);
}

/* Decodes e by the role of its stream. The original a dead letter holds is
 * verified and decoded exactly as an entry of its origin stream would be
 * (DESIGN §8). Signature policy is per stream: the audit key for audit
 * events, the streams key for Caracal's revocations, the calls key (or
 * none) for the team's own calls. Returns the decoder's code, with why
 * filled: AW_ERR_INVALID rejects the input, any other failure (memory)
 * fails the batch. */
static int decode_entry(const decoder *dec, int role, const aw_raw_entry *e,
                        decoding *d, aw_error *why)
{
    aw_stream_role origin;
    int rc;
    switch (role) {
    case AW_ROLE_AUDIT:
        return aw_event_decode_audit(e, dec->audit_key, &d->event, why);
    case AW_ROLE_SESSION_REVOKE:
    case AW_ROLE_AGENT_LIFECYCLE:
    case AW_ROLE_DELEGATION_INVALIDATE:
        return aw_event_decode_revocation(
            (aw_stream_role)role, e, dec->streams_key, &d->revocations, why);
    case AW_ROLE_CALLS:
        return aw_event_decode_call_entry(e, dec->calls_key, &d->call, why);
    case ROLE_IMPORT: return decode_import(dec, e, d, why);
    case AW_ROLE_AUDIT_DLQ:
        rc = aw_dead_letter_decode_audit(e, dec->streams.of[AW_ROLE_AUDIT],
                                         &d->letter, why);
        return rc == AW_OK
                   ? aw_event_decode_audit(d->letter->original, dec->audit_key,
                                           &d->event, why)
                   : rc;
    case AW_ROLE_SESSION_REVOKE_DEAD:
    case AW_ROLE_AGENT_LIFECYCLE_DEAD:
    case AW_ROLE_DELEGATION_INVALIDATE_DEAD:
        origin = (aw_stream_role)aw_stream_role_dead_letter_origin(
            (aw_stream_role)role);
        rc = aw_dead_letter_decode_revocation(
            e, dec->streams.of[origin], dec->streams_key, &d->letter, why);
        return rc == AW_OK
                   ? aw_event_decode_revocation(origin, d->letter->original,
                                                dec->streams_key,
                                                &d->revocations, why)
                   : rc;
    default:
        return aw_error_reject(
            why, AW_REJECT_BAD_VALUE,
            "stream \"%.*s\" is not one of the configured streams",
            (int)e->stream.len, e->stream.ptr);
    }
}

/* ---- Decoding ahead --------------------------------------------------------- */

struct aw_ingest_decoder {
    decoder dec; /* its keys are copies, owned */
};

/* Kept small: a read ahead holds thousands. */
struct aw_ingest_decoded {
    int rc;                  /* decode_entry's */
    aw_reject_reason reason; /* and, when not AW_OK, its reason */
    char *why;               /* and message */
    decoding d;
};

/* *out = a copy of key, or NULL for none. */
static int key_copy(const aw_hmac_key *key, aw_hmac_key **out, aw_error *err)
{
    *out = NULL;
    return key ? aw_hmac_key_dup(key, out, err) : AW_OK;
}

int aw_ingest_decoder_new(const aw_ingest *ing, aw_ingest_decoder **out,
                          aw_error *err)
{
    aw_ingest_decoder *ad = calloc(1, sizeof *ad);
    int rc;
    *out = NULL;
    if (!ad)
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    ad->dec = ing->dec;
    ad->dec.audit_key = ad->dec.streams_key = ad->dec.calls_key = NULL;
    if ((rc = key_copy(ing->dec.audit_key, &ad->dec.audit_key, err)) != AW_OK ||
        (rc = key_copy(ing->dec.streams_key, &ad->dec.streams_key, err)) !=
            AW_OK ||
        (rc = key_copy(ing->dec.calls_key, &ad->dec.calls_key, err)) != AW_OK) {
        aw_ingest_decoder_free(ad);
        return rc;
    }
    *out = ad;
    return AW_OK;
}

void aw_ingest_decoder_free(aw_ingest_decoder *ad)
{
    if (!ad)
        return;
    aw_hmac_key_free(ad->dec.audit_key);
    aw_hmac_key_free(ad->dec.streams_key);
    aw_hmac_key_free(ad->dec.calls_key);
    free(ad);
}

aw_ingest_decoded *aw_ingest_decode(aw_ingest_decoder *ad,
                                    const aw_raw_entry *e)
{
    aw_ingest_decoded *out = calloc(1, sizeof *out);
    aw_error why = {0};
    if (!out)
        return NULL;
    out->rc = decode_entry(
        &ad->dec, role_of(&ad->dec.streams, e->stream.ptr, e->stream.len), e,
        &out->d, &why);
    out->reason = why.reason;
    if (out->rc == AW_ERR_NOMEM ||
        (out->rc != AW_OK && !(out->why = strdup(why.msg)))) {
        aw_ingest_decoded_free(out);
        return NULL;
    }
    return out;
}

void aw_ingest_decoded_free(aw_ingest_decoded *decoded)
{
    if (!decoded)
        return;
    decoding_free(&decoded->d);
    free(decoded->why);
    free(decoded);
}

static void count_put(aw_put_result put, aw_ingest_stats *st)
{
    if (put == AW_PUT_INSERTED)
        st->indexed++;
    else if (put == AW_PUT_DUPLICATE)
        st->duplicates++;
    else
        st->conflicts++;
}

/* Stores what d holds of entry e (stored at rowid) and runs its detector
 * hook. An audit event of a dead letter is stored under the dead letter's
 * row and alerted as dead-lettered on top of the ordinary rules; so is a
 * revocation an enforcer dead-lettered, which still revokes. */
static int store_decoded(aw_ingest *ing, int role, const aw_raw_entry *e,
                         int64_t rowid, const decoding *d, aw_ingest_stats *st,
                         aw_error *err)
{
    aw_detectors *det = ing->det;
    int64_t derived_rowid;
    aw_put_result put;
    int rc;
    if (d->event) {
        if ((rc = aw_store_put_event(ing->store, rowid, d->event,
                                     &derived_rowid, &put, err)) == AW_OK &&
            (rc = d->letter
                      ? aw_detectors_on_dead_event(det, e, d->letter, d->event,
                                                   derived_rowid, put, err)
                      : aw_detectors_on_event(det, e, d->event, derived_rowid,
                                              put, err)) == AW_OK)
            count_put(put, st);
        return rc;
    }
    if (d->revocations) {
        if ((rc = aw_store_put_revocations(ing->store, rowid, d->revocations,
                                           err)) == AW_OK &&
            (rc = aw_detectors_on_revocations(det, e, d->revocations, err)) ==
                AW_OK &&
            (!d->letter ||
             (rc = aw_detectors_on_dead_revocations(
                  det, e,
                  (aw_stream_role)aw_stream_role_dead_letter_origin(
                      (aw_stream_role)role),
                  d->letter, d->revocations, err)) == AW_OK))
            st->indexed++;
        return rc;
    }
    if ((rc = aw_store_put_call(ing->store, rowid, d->call, &derived_rowid,
                                err)) == AW_OK &&
        (rc = aw_detectors_on_call(det, e, d->call, derived_rowid, err)) ==
            AW_OK)
        st->indexed++;
    return rc;
}

/* ---- One item of the batch ------------------------------------------------ */

static int reject(aw_ingest *ing, const stream_slot *slot,
                  const aw_raw_entry *e, int64_t rowid, aw_reject_reason reason,
                  const char *detail, aw_ingest_stats *st, aw_error *err)
{
    int role = slot->role < AW_ROLE_COUNT ? slot->role : ROLE_UNKNOWN;
    int rc;
    if ((rc = aw_store_put_rejected(ing->store, rowid, reason, detail, err)) !=
            AW_OK ||
        (rc = aw_detectors_on_rejected(ing->det, e, role, reason, detail,
                                       err)) != AW_OK)
        return rc;
    st->rejected++;
    st->rejected_by_reason[reason]++;
    return AW_OK;
}

static void note_progress(stream_slot *slot, const aw_raw_entry *e)
{
    uint64_t ms = slot->in_batch ? slot->batch_ms : slot->done_ms;
    uint64_t seq = slot->in_batch ? slot->batch_seq : slot->done_seq;
    if (aw_stream_id_cmp((aw_stream_id){e->id_ms, e->id_seq},
                         (aw_stream_id){ms, seq}) <= 0)
        return;
    slot->in_batch = true;
    slot->batch_ms = e->id_ms;
    slot->batch_seq = e->id_seq;
    snprintf(slot->batch_id, sizeof slot->batch_id, "%.*s", (int)e->id.len,
             e->id.ptr);
}

/* The raw entry is stored first, whatever its decoding, then (unless it
 * was stored before) what it decoded to, or its rejection. */
static int ingest_item(aw_ingest *ing, const aw_ingest_item *item,
                       uint64_t *audit_ms, aw_ingest_stats *st, aw_error *err)
{
    const aw_raw_entry *e = item->entry;
    stream_slot *slot = slot_for(ing, e->stream.ptr, e->stream.len);
    aw_put_result put;
    decoding d = {0};
    const decoding *use = &d; /* or the one decoded ahead, borrowed */
    aw_error why = {0};
    int64_t rowid;
    int rc;

    if (!slot)
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    note_progress(slot, e);
    if (slot->role == AW_ROLE_AUDIT && e->id_ms > *audit_ms)
        *audit_ms = e->id_ms;
    if ((rc = aw_store_put_entry(ing->store, e, &rowid, &put, err)) != AW_OK)
        return rc;
    if (put == AW_PUT_DUPLICATE) {
        bool was_rejected;
        st->duplicates++;
        if ((rc = aw_store_entry_was_rejected(ing->store, rowid, &was_rejected,
                                              err)) == AW_OK &&
            was_rejected)
            st->duplicates_rejected++;
        return rc;
    }
    if (item->forced_reason != AW_REJECT_NONE)
        return reject(ing, slot, e, rowid, item->forced_reason,
                      item->forced_detail, st, err);
    if (item->decoded) {
        rc = item->decoded->rc;
        use = &item->decoded->d;
        if (rc != AW_OK)
            aw_error_reject(&why, item->decoded->reason, "%s",
                            item->decoded->why);
    } else {
        rc = decode_entry(&ing->dec, slot->role, e, &d, &why);
    }
    if (rc == AW_ERR_INVALID) {
        rc = reject(ing, slot, e, rowid,
                    why.reason ? why.reason : AW_REJECT_BAD_VALUE, why.msg, st,
                    err);
    } else if (rc != AW_OK) {
        why.code = rc;
        *err = why;
    } else {
        size_t indexed_before = st->indexed;
        rc = store_decoded(ing, slot->role, e, rowid, use, st, err);
        if (rc == AW_OK && st->indexed > indexed_before) {
            if (slot->role == ROLE_IMPORT)
                st->indexed_imports++;
            else if (slot->role >= 0 && slot->role < AW_ROLE_COUNT)
                st->indexed_by_role[slot->role]++;
        }
    }
    decoding_free(&d);
    return rc;
}

/* ---- Trims ---------------------------------------------------------------- */

typedef struct entry_probe {
    const char *stream;
    const char *id;
    bool found;
} entry_probe;

static int probe_entry(const aw_entry_row *row, void *ud)
{
    entry_probe *p = ud;
    if (strcmp(row->stream, p->stream) == 0 &&
        strcmp(row->entry_id, p->id) == 0) {
        p->found = true;
        return 1;
    }
    return 0;
}

/* A pending entry found deleted may have been indexed just before a crash. */
static int already_indexed(aw_ingest *ing, const aw_ingest_trim *t, bool *found,
                           aw_error *err)
{
    entry_probe probe = {t->stream, t->first_id, false};
    uint64_t ms, seq;
    int rc;
    *found = false;
    if (!t->delivered || strcmp(t->first_id, t->last_id) != 0 ||
        aw_stream_id_parse(t->first_id, strlen(t->first_id), &ms, &seq) !=
            AW_OK ||
        ms >= INT64_MAX)
        return AW_OK;
    rc = aw_store_iter_entries(ing->store, (int64_t)ms, (int64_t)ms + 1,
                               probe_entry, &probe, err);
    if (rc < 0)
        return rc;
    *found = probe.found;
    return AW_OK;
}

static int ingest_trim(aw_ingest *ing, const aw_ingest_trim *t,
                       aw_ingest_stats *st, aw_error *err)
{
    bool found;
    int rc = already_indexed(ing, t, &found, err);
    if (rc != AW_OK || found)
        return rc;
    const stream_slot *slot = slot_for(ing, t->stream, strlen(t->stream));
    if (!slot)
        return aw_error_set(err, AW_ERR_NOMEM, "out of memory");
    if ((rc = aw_detectors_on_trimmed(ing->det, t->stream, slot->role,
                                      t->first_id, t->last_id, err)) == AW_OK)
        st->trims_reported++;
    return rc;
}

/* ---- The batch ------------------------------------------------------------ */

static int write_checkpoints(aw_ingest *ing, aw_error *err)
{
    for (size_t i = 0; i < ing->nslots; i++) {
        stream_slot *s = &ing->slots[i];
        int rc;
        if (s->in_batch &&
            (rc = aw_store_set_checkpoint(ing->store, s->name, s->batch_id,
                                          err)) != AW_OK)
            return rc;
    }
    return AW_OK;
}

/* After the commit the batch's ids become the committed ones; after a
 * rollback they are forgotten. */
static void settle_checkpoints(aw_ingest *ing, bool committed)
{
    for (size_t i = 0; i < ing->nslots; i++) {
        stream_slot *s = &ing->slots[i];
        if (s->in_batch && committed) {
            s->done_ms = s->batch_ms;
            s->done_seq = s->batch_seq;
        }
        s->in_batch = false;
    }
}

/* The batch, with the followed logs' positions written in its transaction. */
static int run_batch(aw_ingest *ing, const aw_ingest_item *items, size_t n,
                     const aw_ingest_trim *trims, size_t ntrims,
                     const aw_ingest_log_position *positions, size_t npositions,
                     int64_t clock_ns, aw_ingest_stats *stats, aw_error *err)
{
    aw_ingest_stats st;
    uint64_t audit_ms = 0;
    int64_t clock;
    int rc;

    memset(&st, 0, sizeof st);
    if ((rc = aw_store_begin(ing->store, err)) != AW_OK)
        return rc;
    for (size_t i = 0; i < n && rc == AW_OK; i++)
        rc = ingest_item(ing, &items[i], &audit_ms, &st, err);
    for (size_t i = 0; i < ntrims && rc == AW_OK; i++)
        rc = ingest_trim(ing, &trims[i], &st, err);
    if (rc == AW_OK && ing->nfindings)
        rc = aw_detectors_on_pipeline(ing->det, ing->findings, ing->nfindings,
                                      err);
    ing->findings = NULL;
    ing->nfindings = 0;
    for (size_t i = 0; i < npositions && rc == AW_OK; i++)
        rc = aw_store_set_log_position(ing->store, positions[i].path,
                                       &positions[i].position, err);
    if (rc == AW_OK)
        rc = write_checkpoints(ing, err);
    clock = aw_ms_to_ns(audit_ms) > clock_ns ? aw_ms_to_ns(audit_ms) : clock_ns;
    if (rc == AW_OK)
        rc = aw_detectors_advance(ing->det, clock, err);
    if (rc == AW_OK)
        rc = aw_store_commit(ing->store, err);
    if (rc != AW_OK) {
        assert(rc < 0);
        aw_store_rollback(ing->store);
        aw_detectors_discard(ing->det);
        settle_checkpoints(ing, false);
        return rc;
    }
    settle_checkpoints(ing, true);
    if (stats)
        *stats = st;
    return AW_OK;
}

int aw_ingest_batch(aw_ingest *ing, const aw_ingest_item *items, size_t n,
                    const aw_ingest_trim *trims, size_t ntrims,
                    int64_t clock_ns, aw_ingest_stats *stats, aw_error *err)
{
    return run_batch(ing, items, n, trims, ntrims, NULL, 0, clock_ns, stats,
                     err);
}

int aw_ingest_log_batch(aw_ingest *ing, const aw_ingest_item *items, size_t n,
                        const aw_ingest_log_position *positions,
                        size_t npositions, aw_ingest_stats *stats,
                        aw_error *err)
{
    return run_batch(ing, items, n, NULL, 0, positions, npositions, 0, stats,
                     err);
}

int aw_ingest_import_path(const char *path, char absolute[PATH_MAX],
                          char stream[AW_INGEST_IMPORT_STREAM_MAX],
                          aw_error *err)
{
    char cwd[PATH_MAX];
    int n;
    if (!*path)
        return aw_error_set(err, AW_ERR_INVALID, "an empty path");
    if (path[0] == '/')
        n = snprintf(absolute, PATH_MAX, "%s", path);
    else if (getcwd(cwd, sizeof cwd))
        n = snprintf(absolute, PATH_MAX, "%s/%s", cwd, path);
    else
        n = PATH_MAX;
    if (n < 0 || n >= PATH_MAX)
        return aw_error_set(err, AW_ERR_INVALID, "%s: path too long", path);
    snprintf(stream, AW_INGEST_IMPORT_STREAM_MAX, "%s%s",
             AW_INGEST_IMPORT_PREFIX, absolute);
    return AW_OK;
}

int aw_ingest_import_entry(const char *stream, const char *line, size_t len,
                           const aw_call_fields *names, int64_t fallback_ns,
                           int64_t seq, aw_raw_entry **out, aw_error *err)
{
    char id[AW_STREAM_ID_TEXT_MAX];
    aw_field field = {{AW_INGEST_IMPORT_FIELD, strlen(AW_INGEST_IMPORT_FIELD)},
                      {line, len}};
    aw_observed_call *call = NULL;
    int64_t ns = fallback_ns;
    if (aw_event_decode_call_json(line, len, names, fallback_ns, &call, NULL) ==
            AW_OK &&
        call->occurred_at_ns >= 0)
        ns = call->occurred_at_ns;
    aw_observed_call_free(call);
    snprintf(id, sizeof id, "%lld-%lld", (long long)(ns / 1000000),
             (long long)seq);
    return aw_raw_entry_new((aw_bytes){stream, strlen(stream)},
                            (aw_bytes){id, strlen(id)}, &field, 1, out, err);
}
