/* cmd_verify.c -- `auditwatch verify`: is the evidence in the index still
 * the evidence that arrived?
 *
 * Two independent checks. The hash chain (store/) catches a row edited,
 * deleted or inserted after the fact, even by someone who can write the
 * SQLite file. The signatures catch what the chain cannot: evidence that
 * was forged before it was indexed (by a daemon run without keys, say).
 * Every stored signature is re-verified from the raw entry, with the audit
 * scheme (`sig` over the exact `data` bytes) for entries that carry `sig`,
 * and the stream scheme (`_sig` over the canonical fields) for entries that
 * carry `_sig`; an outbox-relayed audit entry carries both and is checked
 * both ways. The scheme is chosen by the field the producer wrote, so a
 * renamed stream is still checked.
 *
 * An entry that the daemon already rejected for its signature is known bad,
 * recorded in `rejected` and alerted on: it is counted, not reported as a
 * new break. Entries stored truncated (oversized) cannot be re-verified and
 * are counted as such. The first break of each check is reported; the exit
 * status is 1 when any check failed.
 */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: auditwatch verify [--audit-hmac-key-file FILE]\n"
    "                         [--streams-hmac-key-file FILE]\n"
    "                         [--format F] [--db PATH] [--progress]\n\n"
    "Re-computes the index's hash chain and re-verifies every stored\n"
    "signature from the raw entries. Reports the first break of each check.\n\n"
    "  --audit-hmac-key-file FILE    hex key of the audit scheme (`sig`); else\n"
    "                                $AUDIT_HMAC_KEY_FILE, else $AUDIT_HMAC_KEY (hex)\n"
    "  --streams-hmac-key-file FILE  hex key of the stream scheme (`_sig`); else\n"
    "                                $STREAMS_HMAC_KEY_FILE, else $STREAMS_HMAC_KEY\n"
    "  -f, --format F                table (default), json or csv\n"
    "  --progress                    progress on stderr even when not a terminal\n"
    "  --db PATH                     the index (default $AUDITWATCH_DB or ./auditwatch.db)\n\n"
    "Without a key, signatures of that scheme are counted as unchecked.\n"
    "Exit status: 0 all intact, 1 a check failed, 2 bad usage, 3 failure.\n";

enum { OPT_AUDIT_KEY = AW_CLI_OPT_BASE, OPT_STREAMS_KEY };

static const struct option options[] = {
    {"audit-hmac-key-file", required_argument, NULL, OPT_AUDIT_KEY},
    {"streams-hmac-key-file", required_argument, NULL, OPT_STREAMS_KEY},
    {0},
};

static const aw_cli_command command = {
    "verify", usage, AW_CLI_WANT_DB | AW_CLI_WANT_FORMAT | AW_CLI_WANT_PROGRESS,
    NULL, options,
};

typedef struct verify_args {
    const char *audit_key_file;
    const char *streams_key_file;
} verify_args;

static int on_option(int opt, const char *arg, void *ud) {
    verify_args *a = ud;
    switch (opt) {
    case OPT_AUDIT_KEY: a->audit_key_file = arg; return 0;
    case OPT_STREAMS_KEY: a->streams_key_file = arg; return 0;
    }
    return AW_EXIT_USAGE;
}

/* One signature scheme's tally. */
typedef struct scheme {
    const char *name;
    aw_hmac_key *key;
    int64_t verified, failed, known_rejected, unchecked;
    char first_break[2 * AW_ERRMSG_MAX];
} scheme;

typedef struct verify_state {
    scheme audit, stream;
    int64_t *rejected;          /* entry rows rejected for their signature, sorted */
    size_t nrejected, cap;
    int64_t entries, truncated, unreadable;
    char first_unreadable[2 * AW_ERRMSG_MAX];
    aw_cli_progress progress;
    aw_error err;
} verify_state;

static int note_rejected(const aw_rejected_row *row, void *ud) {
    verify_state *v = ud;
    if (!aw_reject_reason_is_signature(row->reason)) return 0;
    if (v->nrejected == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int64_t *grown = realloc(v->rejected, cap * sizeof *grown);
        if (!grown) return aw_error_set(&v->err, AW_ERR_NOMEM, "out of memory");
        v->rejected = grown;
        v->cap = cap;
    }
    v->rejected[v->nrejected++] = row->entry_rowid;
    return 0;
}

static int cmp_rowid(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static bool was_rejected(const verify_state *v, int64_t rowid) {
    return v->nrejected &&
           bsearch(&rowid, v->rejected, v->nrejected, sizeof rowid, cmp_rowid) != NULL;
}

static void tally(verify_state *v, scheme *s, const aw_entry_row *row, int rc,
                  const aw_error *err) {
    if (rc == AW_OK) {
        s->verified++;
    } else if (was_rejected(v, row->rowid)) {
        s->known_rejected++;
    } else if (s->failed++ == 0) {
        snprintf(s->first_break, sizeof s->first_break, "row %lld (%s %s): %s",
                 (long long)row->rowid, row->stream, row->entry_id, err->msg);
    }
}

static int check_entry(const aw_entry_row *row, void *ud) {
    verify_state *v = ud;
    aw_raw_entry *raw = NULL;
    aw_error err = {0};

    v->entries++;
    aw_cli_progress_update(&v->progress, "verify: signatures of %lld entries",
                           (long long)v->entries);
    if (row->truncated) {
        v->truncated++;
        return 0;
    }
    if (aw_raw_entry_unpack(row->raw, row->raw_len, &raw, NULL, &err) != AW_OK) {
        if (v->unreadable++ == 0)
            snprintf(v->first_unreadable, sizeof v->first_unreadable,
                     "row %lld (%s %s): %s", (long long)row->rowid, row->stream,
                     row->entry_id, err.msg);
        return 0;
    }
    const aw_bytes *sig = aw_raw_entry_get(raw, "sig");
    const aw_bytes *data = aw_raw_entry_get(raw, "data");
    if (sig && data) {
        if (!v->audit.key) v->audit.unchecked++;
        else tally(v, &v->audit, row,
                   aw_hmac_verify_audit(v->audit.key, *data, *sig, &err), &err);
    }
    if (aw_raw_entry_get(raw, "_sig")) {
        if (!v->stream.key) v->stream.unchecked++;
        else tally(v, &v->stream, row, aw_hmac_verify_stream(v->stream.key, raw, &err), &err);
    }
    aw_raw_entry_free(raw);
    return 0;
}

static void chain_progress(int64_t checked, void *ud) {
    aw_cli_progress_update(ud, "verify: hash chain, %lld entries", (long long)checked);
}

static const char *const columns[] = {
    "check", "result", "checked", "failed", "known_rejected", "unchecked", "detail",
};
#define NCOLS (sizeof columns / sizeof columns[0])

static int print_report(aw_cli_format format, const aw_chain_report *chain,
                        const verify_state *v) {
    aw_cli_out *out = aw_cli_out_new(format, columns, NCOLS, stdout);
    int rc = out ? AW_OK : AW_ERR_NOMEM;
    aw_cli_cell row[NCOLS] = {
        aw_cli_str("hash_chain"), aw_cli_str(chain->ok ? "ok" : "FAILED"),
        aw_cli_int(chain->checked), aw_cli_int(!chain->ok), aw_cli_int(0), aw_cli_int(0),
        aw_cli_str(chain->ok ? NULL : chain->what),
    };
    if (rc == AW_OK) rc = aw_cli_out_row(out, row);
    aw_cli_cell unreadable[NCOLS] = {
        aw_cli_str("raw_entries"), aw_cli_str(v->unreadable ? "FAILED" : "ok"),
        aw_cli_int(v->entries), aw_cli_int(v->unreadable), aw_cli_int(0),
        aw_cli_int(v->truncated),
        aw_cli_str(v->unreadable ? v->first_unreadable
                                 : v->truncated ? "truncated entries cannot be re-verified" : NULL),
    };
    if (rc == AW_OK) rc = aw_cli_out_row(out, unreadable);
    for (int i = 0; i < 2 && rc == AW_OK; i++) {
        const scheme *s = i ? &v->stream : &v->audit;
        const char *result = s->failed ? "FAILED" : !s->key && s->unchecked ? "no key" : "ok";
        aw_cli_cell cells[NCOLS] = {
            aw_cli_str(s->name), aw_cli_str(result), aw_cli_int(s->verified + s->failed),
            aw_cli_int(s->failed), aw_cli_int(s->known_rejected), aw_cli_int(s->unchecked),
            aw_cli_str(s->failed ? s->first_break : NULL),
        };
        rc = aw_cli_out_row(out, cells);
    }
    if (aw_cli_out_close(out) != AW_OK && rc == AW_OK) rc = AW_ERR_IO;
    return rc;
}

static int run_checks(aw_store *store, verify_state *v, aw_chain_report *chain) {
    int rc = aw_store_verify_chain(store, chain, chain_progress, &v->progress, &v->err);
    if (rc == AW_OK) rc = aw_store_query_rejected(store, 0, 0, note_rejected, v, &v->err);
    if (rc == AW_OK) {
        if (v->nrejected) qsort(v->rejected, v->nrejected, sizeof *v->rejected, cmp_rowid);
        rc = aw_store_iter_entries(store, 0, INT64_MAX, check_entry, v, &v->err);
    }
    aw_cli_progress_end(&v->progress);
    return rc;
}

int aw_cmd_verify(int argc, char **argv) {
    verify_args a = {0};
    verify_state v = {.audit.name = "audit_signatures", .stream.name = "stream_signatures"};
    aw_chain_report chain = {0};
    aw_cli_common common;
    aw_store *store = NULL;
    int first, rc;

    rc = aw_cli_parse(&command, argc, argv, &common, on_option, &a, &first);
    if (rc != AW_CLI_PROCEED) return rc;
    if ((rc = aw_cli_expect_args(&command, argc, argv, first, 0, "")) != AW_CLI_PROCEED)
        return rc;
    v.progress.enabled = common.progress;
    if (aw_cli_load_keys(a.audit_key_file, a.streams_key_file, &v.audit.key, &v.stream.key,
                         &v.err) != AW_OK)
        rc = aw_cli_usage_error(&command, "%s", v.err.msg);
    else if (!(rc = aw_cli_open_store(&command, &common, AW_STORE_READONLY, &store))) {
        if (run_checks(store, &v, &chain) != AW_OK)
            rc = aw_cli_fail(&command, AW_EXIT_FAILURE, "%s", v.err.msg);
        else if (print_report(common.format, &chain, &v) != AW_OK)
            rc = aw_cli_fail(&command, AW_EXIT_FAILURE, "cannot write the output");
        else if (!chain.ok || v.unreadable || v.audit.failed || v.stream.failed)
            rc = aw_cli_fail(&command, AW_EXIT_NO, "verification FAILED: %s",
                             !chain.ok ? chain.what
                             : v.unreadable ? v.first_unreadable
                             : v.audit.failed ? v.audit.first_break
                                              : v.stream.first_break);
        else
            rc = AW_EXIT_OK;
        aw_store_close(store);
    }
    aw_hmac_key_free(v.audit.key);
    aw_hmac_key_free(v.stream.key);
    free(v.rejected);
    return rc;
}
