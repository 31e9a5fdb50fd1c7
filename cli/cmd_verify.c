/* cmd_verify.c -- `auditwatch verify`: is the evidence in the index still
 * the evidence that arrived, and is what trace, query and the detectors
 * read still what that evidence says?
 *
 * Three checks:
 *  - the hash chain (store/) catches a raw entry edited, deleted or inserted
 *    after the fact, even by someone who can write the SQLite file; with
 *    --chain-head HASH@COUNT (lowercase hex SHA-256 after COUNT entries, the
 *    form of the index's own chain tip), the first COUNT entries are also
 *    held against a head kept outside the index, which catches an index
 *    edited and re-chained from scratch; a grown index checks its prefix;
 *  - the signatures catch what the chain cannot: evidence forged before it
 *    was indexed (by a daemon run without keys, say). Every stored
 *    signature is re-verified from the raw entry, with the audit scheme
 *    (`sig` over the exact `data` bytes) for entries that carry `sig`, and
 *    the stream scheme (`_sig`) for entries that carry `_sig`;
 *  - the decoded rows: the chain protects raw entries only, but events,
 *    revocations, calls and rejected are what everything else reads. Each
 *    row is held against its raw entry, re-decoded with event/'s decoders,
 *    column by column; the anchor index (anchor_runs, what revocation
 *    checks search) must list each event under every anchor it names, and
 *    the request index (request_tier_N, what trace and the missing-evidence
 *    checks search) under its request id; rows whose entry is gone,
 *    entries that should have given rows and have none, and entries that
 *    are both decoded and rejected are mismatches too. Each mismatch is one
 *    line on stdout, naming table, row and key, before the summary (in CSV
 *    under the summary's one header);
 *  - the file: SQLite's integrity_check, since an index edited in the file
 *    itself hides rows from the look-ups through it while every row and
 *    the chain stay intact.
 *
 * Which decoder an entry needs follows from its table (events: audit;
 * calls: a flat entry, or an import line) or, for revocations, from the
 * role of its stream: the default names or --stream ROLE=NAME, else the
 * entry's shape (an `event` field names a lifecycle or delegation entry).
 * Rows are compared through the public row structs (store.h), so a column
 * added to them is compared once it is added below.
 *
 * What cannot be re-checked is counted as unchecked, never passed over in
 * silence: entries stored truncated (oversized; their rows came from the
 * untruncated original), calls imported with mapped field names, and
 * rejections that depended on configuration verify does not know. An entry
 * that the daemon already rejected for its signature is known bad (it is
 * in `rejected` and was alerted on): it is counted, not reported as a new
 * break. The exit status is 1 when any check failed.
 */
#include "cli/cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: auditwatch verify [--audit-hmac-key-file FILE]\n"
    "                         [--streams-hmac-key-file FILE]\n"
    "                         [--chain-head HASH@COUNT] [--stream ROLE=NAME]\n"
    "                         [--format F] [--db PATH] [--progress]\n\n"
    "Re-computes the index's hash chain, re-verifies every stored signature\n"
    "from the raw entries, and re-decodes every raw entry to check that the\n"
    "decoded rows (events, revocations, calls, rejected) still say what it\n"
    "says and that the indexes find them; then has SQLite check the file's\n"
    "structure. Prints one line per row that does not (table, row id, key,\n"
    "column, stored and raw value), then one summary line per check.\n\n"
    "  --audit-hmac-key-file FILE    hex key of the audit scheme (`sig`); else\n"
    "                                $AUDIT_HMAC_KEY_FILE, else $AUDIT_HMAC_KEY (hex)\n"
    "  --streams-hmac-key-file FILE  hex key of the stream scheme (`_sig`); else\n"
    "                                $STREAMS_HMAC_KEY_FILE, else $STREAMS_HMAC_KEY\n"
    "  --chain-head HASH@COUNT       a chain head kept outside the index: the\n"
    "                                lowercase hex SHA-256 after COUNT entries\n"
    "                                (as the daemon publishes it); an index that\n"
    "                                has grown since verifies against its prefix\n"
    "  --stream ROLE=NAME            the stream of a role, as given to `run`\n"
    "                                (audit, sessions, lifecycle, delegations,\n"
    "                                calls, audit_dlq, ...; repeatable; dead\n"
    "                                letters follow <audit>.dlq, <stream>.dead)\n"
    "  -f, --format F                table (default), json or csv\n"
    "  --progress                    progress on stderr even when not a terminal\n"
    "  --db PATH                     the index (default $AUDITWATCH_DB or ./auditwatch.db)\n\n"
    "Without a key, signatures of that scheme are counted as unchecked.\n"
    "Exit status: 0 all intact, 1 a check failed, 2 bad usage, 3 failure.\n";

enum {
    OPT_AUDIT_KEY = AW_CLI_OPT_BASE,
    OPT_STREAMS_KEY,
    OPT_CHAIN_HEAD,
    OPT_STREAM
};

static const struct option options[] = {
    {"audit-hmac-key-file", required_argument, NULL, OPT_AUDIT_KEY},
    {"streams-hmac-key-file", required_argument, NULL, OPT_STREAMS_KEY},
    {"chain-head", required_argument, NULL, OPT_CHAIN_HEAD},
    {"stream", required_argument, NULL, OPT_STREAM},
    {0},
};

static const aw_cli_command command = {
    .name = "verify",
    .usage = usage,
    .common = AW_CLI_WANT_DB | AW_CLI_WANT_FORMAT | AW_CLI_WANT_PROGRESS,
    .options = options,
};

/* An external chain head: the chain value after `count` entries. */
typedef struct chain_head {
    bool given;
    int64_t count;
    unsigned char hash[32];
} chain_head;

typedef struct verify_args {
    const char *audit_key_file;
    const char *streams_key_file;
    const char *streams[AW_ROLE_COUNT]; /* as given */
    aw_stream_names names;
    chain_head head;
} verify_args;

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* "<64 hex>@<decimal count>", the form of store/chain.c's chain_tip. */
static int parse_chain_head(const char *arg, chain_head *head)
{
    const char *at = strchr(arg, '@');
    bool ok = at && at - arg == 64 &&
              aw_cli_parse_int(at + 1, 0, INT64_MAX, &head->count) == AW_OK;
    for (int i = 0; ok && i < 32; i++) {
        int hi = hex_digit(arg[2 * i]), lo = hex_digit(arg[2 * i + 1]);
        ok = hi >= 0 && lo >= 0;
        head->hash[i] = (unsigned char)(hi << 4 | lo);
    }
    if (!ok)
        return aw_cli_usage_error(
            &command,
            "--chain-head: expected HASH@COUNT (64 hex digits, "
            "'@', a row count), got \"%s\"",
            arg);
    head->given = true;
    return 0;
}

static int on_option(int opt, const char *arg, void *ud)
{
    verify_args *a = ud;
    switch (opt) {
    case OPT_AUDIT_KEY: a->audit_key_file = arg; return 0;
    case OPT_STREAMS_KEY: a->streams_key_file = arg; return 0;
    case OPT_CHAIN_HEAD: return parse_chain_head(arg, &a->head);
    case OPT_STREAM: return aw_cli_stream_option(&command, arg, a->streams);
    }
    return AW_EXIT_USAGE;
}

/* ---- state --------------------------------------------------------------- */

/* One signature scheme's tally. */
typedef struct scheme {
    const char *name;
    aw_hmac_key *key;
    int64_t verified, failed, known_rejected, unchecked;
    char first_break[2 * AW_ERRMSG_MAX];
} scheme;

/* What the decoded tables hold of each entry (index: entry row id). */
enum { HAS_EVENT = 1, HAS_REVOCATION = 2, HAS_CALL = 4, HAS_REJECTED = 8 };
#define HAS_DECODED (HAS_EVENT | HAS_REVOCATION | HAS_CALL)

/* The entry the revocation rows being read came from, decoded once, and
 * which of its revocations a row has matched so far. */
typedef struct revocation_group {
    int64_t entry_rowid;
    aw_revocation_set *set; /* NULL: not decodable, already reported */
    bool *matched;
    /* An outbox delivery (outbox_id or dedupe_key): its revocations take the
     * time of the earliest delivery of the same id, at or before its own. */
    bool outbox;
    char entry_id[AW_STREAM_ID_TEXT_MAX];
} revocation_group;

/* An entry row rejected for a signature reason, and the reason. */
typedef struct signature_rejection {
    int64_t entry_rowid;
    aw_reject_reason reason;
} signature_rejection;

typedef struct verify_state {
    aw_store *store;
    const aw_stream_names *streams;
    scheme audit, stream;
    signature_rejection *rejected; /* sorted by entry row */
    size_t nrejected, cap;
    int64_t entries, truncated, unreadable;
    char first_unreadable[2 * AW_ERRMSG_MAX];
    /* decoded rows */
    unsigned char *has; /* HAS_* by entry row id, 1..nhas */
    int64_t nhas;
    int64_t rows_checked, rows_unchecked, mismatches;
    char first_mismatch[2 * AW_ERRMSG_MAX];
    /* SQLite's check of the file */
    int64_t structure_problems;
    char first_structure_problem[2 * AW_ERRMSG_MAX];
    aw_cli_format format;
    aw_cli_out *mismatch_out; /* opened with the first mismatch */
    aw_cli_out *csv_out;      /* CSV: every line, one header */
    revocation_group group;
    aw_cli_progress progress;
    aw_error err;
} verify_state;

/* ---- mismatches ---------------------------------------------------------- */

static const char *const mismatch_columns[] = {
    "check",    "table", "row_id", "key", "request_id", "entry_row",
    "entry_id", "field", "stored", "raw", "detail",
};
#define NMISMATCH (sizeof mismatch_columns / sizeof mismatch_columns[0])

/* One decoded row (or entry) that does not match. row_id 0: no row. */
typedef struct mismatch {
    const char *table;
    int64_t row_id;
    const char *key, *request_id;
    int64_t entry_row;
    const char *entry_id;
    const char *field, *stored, *raw;
    const char *detail;
} mismatch;

/* CSV has one header: mismatch and summary lines share these columns. */
static const char *const csv_columns[] = {
    "check",     "result",         "table",     "row_id", "key", "request_id",
    "entry_row", "entry_id",       "field",     "stored", "raw", "checked",
    "failed",    "known_rejected", "unchecked", "detail",
};
#define NCSV (sizeof csv_columns / sizeof csv_columns[0])

/* Writes one line of n cells named names[] to *out (opened on first use):
 * in a table or JSON lines as they are, in CSV into the shared columns of
 * v->csv_out. */
static int write_line(verify_state *v, aw_cli_out **out,
                      const char *const *names, size_t n,
                      const aw_cli_cell *cells)
{
    aw_cli_cell shared[NCSV];
    if (v->format == AW_CLI_CSV) {
        for (size_t j = 0; j < NCSV; j++) {
            shared[j] = aw_cli_str(NULL);
            for (size_t i = 0; i < n; i++)
                if (strcmp(names[i], csv_columns[j]) == 0)
                    shared[j] = cells[i];
        }
        out = &v->csv_out;
        names = csv_columns;
        n = NCSV;
        cells = shared;
    }
    if (!*out && !(*out = aw_cli_out_new(v->format, names, n, stdout)))
        return aw_error_set(&v->err, AW_ERR_NOMEM, "out of memory");
    if (aw_cli_out_row(*out, cells) != AW_OK)
        return aw_error_set(&v->err, AW_ERR_NOMEM, "out of memory");
    return 0;
}

static int report(verify_state *v, const mismatch *m)
{
    aw_cli_cell cells[NMISMATCH] = {
        aw_cli_str("row_mismatch"),
        aw_cli_str(m->table),
        m->row_id ? aw_cli_int(m->row_id) : aw_cli_str(NULL),
        aw_cli_str(m->key),
        aw_cli_str(m->request_id),
        m->entry_row ? aw_cli_int(m->entry_row) : aw_cli_str(NULL),
        aw_cli_str(m->entry_id),
        aw_cli_str(m->field),
        aw_cli_str(m->stored),
        aw_cli_str(m->raw),
        aw_cli_str(m->detail),
    };
    if (v->mismatches++ == 0) {
        if (m->field)
            snprintf(v->first_mismatch, sizeof v->first_mismatch,
                     "%s row %" PRId64
                     " (%s): %s is \"%s\", its raw entry says \"%s\"",
                     m->table, m->row_id, m->key ? m->key : "-", m->field,
                     m->stored ? m->stored : "null", m->raw ? m->raw : "null");
        else
            snprintf(v->first_mismatch, sizeof v->first_mismatch,
                     "%s %s%" PRId64 " (%s): %s", m->table,
                     m->row_id ? "row " : "entry row ",
                     m->row_id ? m->row_id : m->entry_row,
                     m->key ? m->key : "-", m->detail);
    }
    return write_line(v, &v->mismatch_out, mismatch_columns, NMISMATCH, cells);
}

static bool same_text(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* Compares one text column; reports it when it differs. */
static int compare_text(verify_state *v, mismatch m, const char *field,
                        const char *stored, const char *raw, bool *differs)
{
    if (same_text(stored, raw))
        return 0;
    *differs = true;
    m.field = field;
    m.stored = stored;
    m.raw = raw;
    m.detail = "the row differs from its raw entry";
    return report(v, &m);
}

static int compare_int(verify_state *v, mismatch m, const char *field,
                       int64_t stored, int64_t raw, bool *differs)
{
    char s[24], r[24];
    if (stored == raw)
        return 0;
    snprintf(s, sizeof s, "%" PRId64, stored);
    snprintf(r, sizeof r, "%" PRId64, raw);
    return compare_text(v, m, field, s, r, differs);
}

/* An integer column that may be absent (NULL): absent on one side only
 * differs as much as two values do. */
static int compare_optional_int(verify_state *v, mismatch m, const char *field,
                                bool stored_has, int64_t stored, bool raw_has,
                                int64_t raw, bool *differs)
{
    char s[24], r[24];
    if (stored_has == raw_has && (!stored_has || stored == raw))
        return 0;
    snprintf(s, sizeof s, "%" PRId64, stored);
    snprintf(r, sizeof r, "%" PRId64, raw);
    return compare_text(v, m, field, stored_has ? s : NULL, raw_has ? r : NULL,
                        differs);
}

static int compare_time(verify_state *v, mismatch m, const char *field,
                        int64_t stored, int64_t raw, bool *differs)
{
    char s[40], r[40];
    if (stored == raw)
        return 0;
    return compare_text(v, m, field, aw_time_format(stored, s, sizeof s),
                        aw_time_format(raw, r, sizeof r), differs);
}

/* ---- raw entries, roles ---------------------------------------------------- */

/* Marks what entry row `entry` holds; false for a row id no entry has. */
static bool mark(verify_state *v, int64_t entry, unsigned what,
                 unsigned *before)
{
    if (entry < 1 || entry > v->nhas)
        return false;
    *before = v->has[entry];
    v->has[entry] |= (unsigned char)what;
    return true;
}

typedef struct loaded {
    aw_raw_entry *raw;
    bool truncated;
    aw_error err;
} loaded;

static int load_cb(const aw_entry_row *row, void *ud)
{
    loaded *l = ud;
    l->truncated = row->truncated;
    if (aw_raw_entry_unpack(row->raw, row->raw_len, &l->raw, NULL, &l->err) !=
        AW_OK)
        l->raw = NULL;
    return 0;
}

/* The raw entry of row `entry`, unpacked: AW_OK with l->raw set, AW_OK
 * with l->raw NULL when it cannot be unpacked (l->err says why), or a
 * failure of the store. */
static int load_entry(verify_state *v, int64_t entry, loaded *l)
{
    memset(l, 0, sizeof *l);
    int rc = aw_store_get_entry(v->store, entry, load_cb, l, &v->err);
    if (rc == AW_ERR_NOTFOUND) {
        aw_error_set(&l->err, AW_ERR_NOTFOUND,
                     "raw entry row %" PRId64 " is missing", entry);
        return AW_OK;
    }
    return rc;
}

#define ROLE_IMPORT  AW_ROLE_COUNT
#define ROLE_UNKNOWN (-1)

static bool is_import(const char *stream)
{
    return strncmp(stream, AW_INGEST_IMPORT_PREFIX,
                   strlen(AW_INGEST_IMPORT_PREFIX)) == 0;
}

static int role_by_name(const verify_state *v, const char *stream)
{
    if (is_import(stream))
        return ROLE_IMPORT;
    for (int r = 0; r < AW_ROLE_COUNT; r++)
        if (strcmp(v->streams->of[r], stream) == 0)
            return r;
    return ROLE_UNKNOWN;
}

/* The raw entry of row `entry` as its events or revocations rows were
 * decoded from it: for an entry of a dead-letter stream, the original it
 * holds (DESIGN §8), which is what the consumer decoded. */
static int load_decoded_entry(verify_state *v, int64_t entry, loaded *l)
{
    int rc = load_entry(v, entry, l);
    int role = l->raw ? role_by_name(v, l->raw->stream.ptr) : ROLE_UNKNOWN;
    int origin = role >= 0 && role < AW_ROLE_COUNT
                     ? aw_stream_role_dead_letter_origin((aw_stream_role)role)
                     : -1;
    aw_dead_letter *letter = NULL;
    if (rc != AW_OK || origin < 0)
        return rc;
    rc = origin == AW_ROLE_AUDIT
             ? aw_dead_letter_decode_audit(l->raw, v->streams->of[origin],
                                           &letter, &l->err)
             : aw_dead_letter_decode_revocation(l->raw, v->streams->of[origin],
                                                NULL, &letter, &l->err);
    aw_raw_entry_free(l->raw);
    l->raw = NULL;
    if (rc == AW_OK) {
        const aw_raw_entry *o = letter->original;
        if (aw_raw_entry_new(o->stream, o->id, o->fields, o->nfields, &l->raw,
                             &l->err) != AW_OK)
            l->raw = NULL;
    }
    aw_dead_letter_free(letter);
    return AW_OK;
}

static bool field_is(const aw_raw_entry *raw, const char *name,
                     const char *const *values)
{
    const aw_bytes *f = aw_raw_entry_get(raw, name);
    for (; f && *values; values++)
        if (f->len == strlen(*values) && memcmp(f->ptr, *values, f->len) == 0)
            return true;
    return false;
}

/* The role of an entry: by its stream's name, else by its shape. */
static int role_of(const verify_state *v, const aw_raw_entry *raw)
{
    static const char *const lifecycle[] = {"terminate", "suspend", "resume",
                                            "spawn", NULL};
    static const char *const delegations[] = {"edge_revoke", "edge_create",
                                              "edge_expire", NULL};
    int role = role_by_name(v, raw->stream.ptr);
    if (role != ROLE_UNKNOWN)
        return role;
    if (aw_raw_entry_get(raw, "data"))
        return AW_ROLE_AUDIT;
    if (field_is(raw, "event", lifecycle))
        return AW_ROLE_AGENT_LIFECYCLE;
    if (field_is(raw, "event", delegations))
        return AW_ROLE_DELEGATION_INVALIDATE;
    if (aw_raw_entry_get(raw, "request_id"))
        return AW_ROLE_CALLS;
    if (aw_raw_entry_get(raw, "session_id") ||
        aw_raw_entry_get(raw, "agent_session_id") ||
        aw_raw_entry_get(raw, "delegation_edge_id") ||
        aw_raw_entry_get(raw, "edge_id"))
        return AW_ROLE_SESSION_REVOKE;
    return ROLE_UNKNOWN;
}

/* The aw_stream_role whose decoder read raw, or -1 (imports, unknown). */
static int stream_role(const verify_state *v, const aw_raw_entry *raw)
{
    int role = role_of(v, raw);
    return role >= 0 && role < AW_ROLE_COUNT ? role : -1;
}

static bool is_revocation_role(int role)
{
    return role == AW_ROLE_SESSION_REVOKE || role == AW_ROLE_AGENT_LIFECYCLE ||
           role == AW_ROLE_DELEGATION_INVALIDATE;
}

/* The call an entry of role calls or import decodes to. With mapped field
 * names an import line may not decode with the default ones: *call NULL. */
static int decode_call(const aw_raw_entry *raw, aw_hmac_key *key,
                       aw_observed_call **call, aw_error *err)
{
    if (!is_import(raw->stream.ptr))
        return aw_event_decode_call_entry(raw, key, call, err);
    const aw_bytes *line = aw_raw_entry_get(raw, AW_INGEST_IMPORT_FIELD);
    if (!line)
        return aw_error_reject(err, AW_REJECT_MISSING_FIELD,
                               "import entry has no \"%s\" field",
                               AW_INGEST_IMPORT_FIELD);
    return aw_event_decode_call_json(line->ptr, line->len, NULL,
                                     aw_ms_to_ns(raw->id_ms), call, err);
}

/* A row that names an entry that cannot be re-decoded: one mismatch,
 * unless the entry was stored truncated (then unchecked). */
static int entry_unusable(verify_state *v, mismatch m, const loaded *l)
{
    if (l->truncated) {
        v->rows_unchecked++;
        return 0;
    }
    m.detail = l->err.msg;
    return report(v, &m);
}

/* ---- events ---------------------------------------------------------------- */

static const char *first_anchor(const aw_audit_event *ev, aw_anchor_kind kind)
{
    for (size_t i = 0; i < ev->nanchors; i++)
        if (ev->anchors[i].kind == kind)
            return ev->anchors[i].id;
    return NULL;
}

/* Whether the entry's `sig` verifies over its `data` (verify has the key). */
static bool audit_signed(verify_state *v, const aw_raw_entry *raw)
{
    const aw_bytes *sig = aw_raw_entry_get(raw, "sig"),
                   *data = aw_raw_entry_get(raw, "data");
    return sig && data &&
           aw_hmac_verify_audit(v->audit.key, *data, *sig, NULL) == AW_OK;
}

/* Narrows f to the events that occurred at at_ns. until is exclusive, and
 * past the last nanosecond an index holds there is none. */
static void occurred_exactly_at(aw_event_filter *f, int64_t at_ns)
{
    f->has_since = true;
    f->since_ns = at_ns;
    f->has_until = !__builtin_add_overflow(at_ns, 1, &f->until_ns);
}

static int found_use(const aw_event_row *r, void *ud)
{
    (void)r;
    *(bool *)ud = true;
    return 1;
}

/* Whether the look-up f (naming the row by f->rowid) finds that row. */
static int finds_row(verify_state *v, const aw_event_filter *f, bool *found)
{
    *found = false;
    int rc = aw_store_query_events(v->store, f, found_use, found, &v->err);
    return rc == 1 ? 0 : rc;
}

/* The detectors find an event by the anchors it used through the anchor
 * index: every anchor its raw entry names must find this very row there. */
static int check_anchor_uses(verify_state *v, mismatch m, const aw_event_row *r,
                             const aw_audit_event *ev)
{
    int rc = 0;
    for (size_t i = 0; i < ev->nanchors && !rc; i++) {
        aw_event_filter f = {.rowid = r->rowid, .anchor = ev->anchors[i]};
        occurred_exactly_at(&f, ev->occurred_at_ns);
        bool found;
        rc = finds_row(v, &f, &found);
        if (!rc && !found) {
            char key[AW_MAX_ID_BYTES + 32];
            snprintf(key, sizeof key, "%s:%s",
                     aw_anchor_kind_name(ev->anchors[i].kind),
                     ev->anchors[i].id);
            m.table = "anchor_runs";
            m.key = key;
            m.detail =
                "its raw entry names this anchor, but the anchor index does not "
                "list this event under it (revocation checks would miss it)";
            rc = report(v, &m);
        }
    }
    return rc;
}

/* trace and the missing-evidence rules find an event by its request id
 * through the request index (its tiers): the id its raw entry names must
 * find this very row there. */
static int check_request_use(verify_state *v, mismatch m, const aw_event_row *r,
                             const aw_audit_event *ev)
{
    if (!ev->request_id)
        return 0;
    aw_event_filter f = {.rowid = r->rowid, .request_id = ev->request_id};
    bool found;
    int rc = finds_row(v, &f, &found);
    if (!rc && !found) {
        m.table = "request_tiers";
        m.key = ev->request_id;
        m.detail = "its raw entry names this request id, but the request index "
                   "does not list this event under it (trace and the "
                   "missing-evidence checks would miss it)";
        rc = report(v, &m);
    }
    return rc;
}

/* Counts a decoded row of m.table, shows progress, and marks its entry as
 * holding one; *again is true (and reported) when the entry already held a
 * row of that table, since one raw entry decodes to one such row. */
static int start_row(verify_state *v, mismatch m, int64_t entry, unsigned what,
                     bool *again)
{
    unsigned before = 0;
    char why[64];
    v->rows_checked++;
    aw_cli_progress_update(&v->progress,
                           "verify: decoded rows, %" PRId64 " checked",
                           v->rows_checked);
    *again = mark(v, entry, what, &before) && (before & what);
    if (!*again)
        return AW_OK;
    snprintf(why, sizeof why, "a second %s row decoded from one raw entry",
             m.table);
    m.detail = why;
    return report(v, &m);
}

static int compare_event(verify_state *v, mismatch m, const aw_event_row *r,
                         const aw_raw_entry *raw, const aw_audit_event *ev)
{
    bool differs = false;
    int rc = 0;
#define TEXT(name, stored, decoded)                                            \
    if (!rc)                                                                   \
    rc = compare_text(v, m, name, stored, decoded, &differs)
    TEXT("event_id", r->event_id, ev->id);
    TEXT("zone_id", r->zone_id, ev->zone_id);
    TEXT("event_type", r->event_type, ev->event_type);
    TEXT("request_id", r->request_id, ev->request_id);
    TEXT("decision", r->decision, ev->decision);
    TEXT("evaluation_status", r->evaluation_status, ev->evaluation_status);
    TEXT("application_id", r->application_id, ev->application_id);
    TEXT("resource", r->resource, ev->resource);
    TEXT("session_id", r->session_id,
         first_anchor(ev, AW_ANCHOR_AUTHORITY_RECORD));
    TEXT("agent_session_id", r->agent_session_id,
         first_anchor(ev, AW_ANCHOR_AGENT_SESSION));
    TEXT("delegation_edge_id", r->delegation_edge_id,
         first_anchor(ev, AW_ANCHOR_DELEGATION_EDGE));
    TEXT("result_class", r->result_class, ev->result_class);
#undef TEXT
    if (!rc)
        rc = compare_int(v, m, "upstream_status", r->upstream_status,
                         ev->upstream_status, &differs);
    if (!rc)
        rc = compare_time(v, m, "occurred_at", r->occurred_at_ns,
                          ev->occurred_at_ns, &differs);
    if (!rc)
        rc = compare_optional_int(v, m, "delegation_epoch",
                                  r->has_delegation_epoch, r->delegation_epoch,
                                  ev->has_delegation_epoch,
                                  ev->delegation_epoch, &differs);
    /* Unsigned is what a daemon without the key records for any entry;
     * signed must still verify. */
    if (!rc && v->audit.key && r->is_signed && !audit_signed(v, raw))
        rc = compare_text(v, m, "is_signed", "true",
                          "signature does not verify", &differs);
    /* An edited occurred_at already fails; its uses are keyed by the old one. */
    if (!rc && !differs)
        rc = check_anchor_uses(v, m, r, ev);
    if (!rc && !differs)
        rc = check_request_use(v, m, r, ev);
    return rc;
}

static int check_event(const aw_event_row *r, void *ud)
{
    verify_state *v = ud;
    mismatch m = {.table = "events",
                  .row_id = r->rowid,
                  .key = r->event_id,
                  .request_id = r->request_id,
                  .entry_row = r->entry_rowid,
                  .entry_id = r->entry_id};
    bool again;
    loaded l;
    int rc;

    if ((rc = start_row(v, m, r->entry_rowid, HAS_EVENT, &again)) != AW_OK ||
        again)
        return rc;
    if ((rc = load_decoded_entry(v, r->entry_rowid, &l)) != AW_OK)
        return rc;
    if (!l.raw || l.truncated) {
        rc = entry_unusable(v, m, &l);
        aw_raw_entry_free(l.raw);
        return rc;
    }
    aw_audit_event *ev = NULL;
    aw_error err = {0};
    if (aw_event_decode_audit(l.raw, NULL, &ev, &err) != AW_OK) {
        char why[2 * AW_ERRMSG_MAX];
        snprintf(why, sizeof why, "its raw entry is not an audit event: %s",
                 err.msg);
        m.detail = why;
        rc = report(v, &m);
    } else {
        rc = compare_event(v, m, r, l.raw, ev);
    }
    aw_audit_event_free(ev);
    aw_raw_entry_free(l.raw);
    return rc;
}

/* ---- revocations ------------------------------------------------------------ */

static void group_free(revocation_group *g)
{
    aw_revocation_set_free(g->set);
    free(g->matched);
    memset(g, 0, sizeof *g);
}

/* Reports every revocation of the group's entry that no row matched. */
static int close_group(verify_state *v)
{
    revocation_group *g = &v->group;
    int rc = 0;
    for (size_t i = 0; g->set && i < g->set->n && !rc; i++) {
        if (g->matched[i])
            continue;
        const aw_revocation *item = &g->set->items[i];
        char key[AW_MAX_ID_BYTES + 32];
        snprintf(key, sizeof key, "%s:%s",
                 aw_anchor_kind_name(item->anchor.kind), item->anchor.id);
        mismatch m = {
            .table = "revocations",
            .key = key,
            .entry_row = g->entry_rowid,
            .entry_id = g->entry_id,
            .field = NULL,
            .detail =
                "its raw entry revokes this anchor, but no revocations row "
                "does"};
        rc = report(v, &m);
    }
    group_free(g);
    return rc;
}

/* Decodes the entry of row r as the group's, after closing the last one.
 * *usable false when it cannot be decoded (already reported or counted). */
static int open_group(verify_state *v, const aw_revocation_row *r, mismatch m,
                      bool *usable)
{
    revocation_group *g = &v->group;
    loaded l;
    aw_error err = {0};
    int rc = close_group(v);
    *usable = false;
    if (rc || (rc = load_decoded_entry(v, r->entry_rowid, &l)) != AW_OK)
        return rc;
    g->entry_rowid = r->entry_rowid;
    snprintf(g->entry_id, sizeof g->entry_id, "%s", r->entry_id);
    g->outbox = l.raw && (aw_raw_entry_get(l.raw, "outbox_id") ||
                          aw_raw_entry_get(l.raw, "dedupe_key"));
    if (!l.raw || l.truncated) {
        rc = entry_unusable(v, m, &l);
        aw_raw_entry_free(l.raw);
        return rc;
    }
    int role = role_of(v, l.raw);
    if (!is_revocation_role(role)) {
        m.detail = "its raw entry is not a revocation";
        rc = report(v, &m);
    } else if (aw_event_decode_revocation((aw_stream_role)role, l.raw, NULL,
                                          &g->set, &err) != AW_OK) {
        char why[2 * AW_ERRMSG_MAX];
        snprintf(why, sizeof why, "its raw entry does not decode: %s", err.msg);
        m.detail = why;
        rc = report(v, &m);
    } else if (!(g->matched =
                     calloc(g->set->n ? g->set->n : 1, sizeof *g->matched))) {
        rc = aw_error_set(&v->err, AW_ERR_NOMEM, "out of memory");
    } else {
        *usable = true;
    }
    aw_raw_entry_free(l.raw);
    return rc;
}

static int check_revocation(const aw_revocation_row *r, void *ud)
{
    verify_state *v = ud;
    char key[AW_MAX_ID_BYTES + 32];
    snprintf(key, sizeof key, "%s:%s", aw_anchor_kind_name(r->anchor.kind),
             r->anchor.id ? r->anchor.id : "");
    mismatch m = {.table = "revocations",
                  .row_id = r->rowid,
                  .key = key,
                  .entry_row = r->entry_rowid,
                  .entry_id = r->entry_id};
    revocation_group *g = &v->group;
    unsigned before = 0;
    bool usable = g->set != NULL && g->entry_rowid == r->entry_rowid;
    int rc = 0;

    v->rows_checked++;
    aw_cli_progress_update(&v->progress,
                           "verify: decoded rows, %" PRId64 " checked",
                           v->rows_checked);
    if (g->entry_rowid != r->entry_rowid) {
        mark(v, r->entry_rowid, HAS_REVOCATION, &before);
        if ((rc = open_group(v, r, m, &usable)) != 0)
            return rc;
    }
    if (!usable)
        return 0;
    const aw_revocation_set *set = g->set;
    size_t i;
    for (i = 0; i < set->n; i++)
        if (!g->matched[i] && set->items[i].anchor.kind == r->anchor.kind &&
            set->items[i].action == r->action &&
            same_text(set->items[i].anchor.id, r->anchor.id))
            break;
    if (i == set->n) {
        char stored[AW_MAX_ID_BYTES + 48];
        snprintf(stored, sizeof stored, "%s %s",
                 aw_revocation_action_name(r->action), key);
        m.field = "anchor";
        m.stored = stored;
        m.raw = "none";
        m.detail = "its raw entry names no such revocation";
        return report(v, &m);
    }
    g->matched[i] = true;
    bool differs = false;
    rc = compare_text(v, m, "zone_id", r->zone_id, set->zone_id, &differs);
    int64_t at = g->outbox && r->at_ns <= set->at_ns ? r->at_ns : set->at_ns;
    if (!rc)
        rc = compare_time(v, m, "at", r->at_ns, at, &differs);
    if (!rc)
        rc = compare_text(v, m, "reason", r->reason, set->reason, &differs);
    if (!rc)
        rc = compare_text(v, m, "delivery_id", r->delivery_id, set->delivery_id,
                          &differs);
    if (!rc)
        rc = compare_optional_int(v, m, "epoch", r->has_epoch, r->epoch,
                                  set->has_epoch, set->epoch, &differs);
    return rc;
}

/* ---- calls ------------------------------------------------------------------ */

static int compare_call(verify_state *v, mismatch m, const aw_call_row *r,
                        const aw_raw_entry *raw, const aw_observed_call *c)
{
    bool differs = false;
    int64_t occurred = c->occurred_at_ns;
    /* An import line without a time got the file's time, of which the
     * entry id keeps the milliseconds only. */
    if (is_import(raw->stream.ptr) && occurred == aw_ms_to_ns(raw->id_ms) &&
        r->occurred_at_ns / 1000000 == (int64_t)raw->id_ms)
        occurred = r->occurred_at_ns;
    int rc = compare_text(v, m, "request_id", r->request_id, c->request_id,
                          &differs);
    if (!rc)
        rc = compare_int(v, m, "status", r->status, c->status, &differs);
    if (!rc)
        rc = compare_time(v, m, "occurred_at", r->occurred_at_ns, occurred,
                          &differs);
    if (!rc)
        rc = compare_text(v, m, "zone_id", r->zone_id, c->zone_id, &differs);
    if (!rc)
        rc = compare_text(v, m, "resource", r->resource, c->resource, &differs);
    if (!rc)
        rc = compare_text(v, m, "source", r->source, c->source, &differs);
    return rc;
}

static int check_call(const aw_call_row *r, void *ud)
{
    verify_state *v = ud;
    mismatch m = {.table = "calls",
                  .row_id = r->rowid,
                  .key = r->request_id,
                  .request_id = r->request_id,
                  .entry_row = r->entry_rowid,
                  .entry_id = r->entry_id};
    aw_observed_call *call = NULL;
    aw_error err = {0};
    bool again;
    loaded l;
    int rc;

    if ((rc = start_row(v, m, r->entry_rowid, HAS_CALL, &again)) != AW_OK ||
        again)
        return rc;
    if ((rc = load_entry(v, r->entry_rowid, &l)) != AW_OK)
        return rc;
    if (!l.raw || l.truncated) {
        rc = entry_unusable(v, m, &l);
    } else if (decode_call(l.raw, NULL, &call, &err) != AW_OK) {
        if (is_import(l.raw->stream.ptr)) {
            v->rows_unchecked++; /* imported with mapped field names */
        } else {
            char why[2 * AW_ERRMSG_MAX];
            snprintf(why, sizeof why,
                     "its raw entry is not an observed call: %s", err.msg);
            m.detail = why;
            rc = report(v, &m);
        }
    } else {
        rc = compare_call(v, m, r, l.raw, call);
    }
    aw_observed_call_free(call);
    aw_raw_entry_free(l.raw);
    return rc;
}

/* ---- rejected --------------------------------------------------------------- */

/* Whether raw's content decodes cleanly with the decoder of its role.
 * *known false when no decoder is known for it. */
static bool decodes(const aw_raw_entry *raw, int role, bool *known)
{
    aw_error err = {0};
    aw_audit_event *ev = NULL;
    aw_revocation_set *set = NULL;
    aw_observed_call *call = NULL;
    int rc = AW_ERR_INVALID;
    *known = true;
    if (role == AW_ROLE_AUDIT)
        rc = aw_event_decode_audit(raw, NULL, &ev, &err);
    else if (is_revocation_role(role))
        rc = aw_event_decode_revocation((aw_stream_role)role, raw, NULL, &set,
                                        &err);
    else if (role == AW_ROLE_CALLS || role == ROLE_IMPORT)
        rc = decode_call(raw, NULL, &call, &err);
    else
        *known = false;
    aw_audit_event_free(ev);
    aw_revocation_set_free(set);
    aw_observed_call_free(call);
    return rc == AW_OK;
}

/* Reasons a decoder gives for content it cannot read; the others are
 * about signatures (checked with the keys), delivery or the index. */
static bool is_content_reason(aw_reject_reason reason)
{
    return reason >= AW_REJECT_NOT_JSON && reason <= AW_REJECT_BAD_VALUE;
}

static int remember_signature_rejection(verify_state *v,
                                        const aw_rejected_row *r)
{
    if (v->nrejected == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        signature_rejection *grown = realloc(v->rejected, cap * sizeof *grown);
        if (!grown)
            return aw_error_set(&v->err, AW_ERR_NOMEM, "out of memory");
        v->rejected = grown;
        v->cap = cap;
    }
    v->rejected[v->nrejected++] =
        (signature_rejection){r->entry_rowid, r->reason};
    return 0;
}

/* A rejection for its content must be of content that does not decode:
 * else it may hide evidence from everything that reads the decoded rows. */
static int check_rejected(const aw_rejected_row *r, void *ud)
{
    verify_state *v = ud;
    unsigned before = 0;
    loaded l;
    int rc;

    mark(v, r->entry_rowid, HAS_REJECTED, &before);
    v->rows_checked++;
    if (aw_reject_reason_is_signature(r->reason))
        return remember_signature_rejection(v, r);
    if (!is_content_reason(r->reason)) {
        v->rows_unchecked++;
        return 0;
    }
    if ((rc = load_entry(v, r->entry_rowid, &l)) != AW_OK)
        return rc;
    /* A stream `run` was not told about is rejected as a bad value: only a
     * stream verify knows by name can tell. */
    bool unknown_stream = l.raw &&
                          role_by_name(v, l.raw->stream.ptr) == ROLE_UNKNOWN &&
                          r->reason == AW_REJECT_BAD_VALUE;
    bool known = false;
    if (!l.raw || l.truncated || unknown_stream) {
        v->rows_unchecked++;
    } else if (decodes(l.raw, role_of(v, l.raw), &known)) {
        mismatch m = {.table = "rejected",
                      .row_id = r->rowid,
                      .key = aw_reject_reason_name(r->reason),
                      .entry_row = r->entry_rowid,
                      .entry_id = r->entry_id,
                      .field = "reason",
                      .stored = aw_reject_reason_name(r->reason),
                      .raw = "none",
                      .detail = "rejected, yet its raw entry decodes cleanly"};
        rc = report(v, &m);
    } else if (!known) {
        v->rows_unchecked++;
    }
    aw_raw_entry_free(l.raw);
    return rc;
}

/* ---- rows without entries, entries without rows ------------------------------ */

static int check_orphan(const aw_orphan_row *o, void *ud)
{
    verify_state *v = ud;
    mismatch m = {.table = o->table,
                  .row_id = o->rowid,
                  .key = o->key,
                  .entry_row = o->entry_rowid,
                  .detail = "its raw entry is missing"};
    v->rows_checked++;
    return report(v, &m);
}

typedef struct identity {
    const char *id;
    int64_t occurred_at_ns;
    bool found;
} identity;

static int same_identity(const aw_event_row *r, void *ud)
{
    identity *want = ud;
    if (r->occurred_at_ns == want->occurred_at_ns) {
        want->found = true;
        return 1;
    }
    return 0;
}

/* An entry with no row in any decoded table: fine when it was a redelivery
 * of an event already indexed (same identity (id, occurred_at)), or a
 * revocation entry that revokes nothing (spawn, edge_create); else the rows
 * it gave, or its rejection, are gone. */
static int check_rowless(verify_state *v, const aw_entry_row *row,
                         const aw_raw_entry *raw)
{
    mismatch m = {.entry_row = row->rowid, .entry_id = row->entry_id};
    aw_error err = {0};
    aw_audit_event *ev = NULL;
    aw_revocation_set *set = NULL;
    aw_observed_call *call = NULL;
    int role = role_of(v, raw), rc = 0;
    char why[2 * AW_ERRMSG_MAX];

    if (role == AW_ROLE_AUDIT &&
        aw_event_decode_audit(raw, NULL, &ev, &err) == AW_OK) {
        identity want = {ev->id, ev->occurred_at_ns, false};
        aw_event_filter f = {.event_id = ev->id};
        occurred_exactly_at(&f, ev->occurred_at_ns);
        rc = aw_store_query_events(v->store, &f, same_identity, &want, &v->err);
        if (rc == 1)
            rc = 0;
        if (!rc && !want.found) {
            m.table = "events";
            m.key = ev->id;
            m.request_id = ev->request_id;
            m.detail =
                "its raw entry is an audit event, but no events row holds it";
            rc = report(v, &m);
        }
    } else if (is_revocation_role(role) &&
               aw_event_decode_revocation((aw_stream_role)role, raw, NULL, &set,
                                          &err) == AW_OK) {
        char key[AW_MAX_ID_BYTES + 32];
        if (set->n > 0) {
            snprintf(key, sizeof key, "%s:%s",
                     aw_anchor_kind_name(set->items[0].anchor.kind),
                     set->items[0].anchor.id);
            m.table = "revocations";
            m.key = key;
            m.detail =
                "its raw entry revokes anchors, but no revocations row holds them";
            rc = report(v, &m);
        }
    } else if ((role == AW_ROLE_CALLS || role == ROLE_IMPORT) &&
               decode_call(raw, NULL, &call, &err) == AW_OK) {
        m.table = "calls";
        m.key = m.request_id = call->request_id;
        m.detail =
            "its raw entry is an observed call, but no calls row holds it";
        rc = report(v, &m);
    } else {
        m.table = "rejected";
        snprintf(why, sizeof why,
                 "its raw entry was not indexed and has no rejected row%s%s",
                 err.msg[0] ? ": " : "", err.msg);
        m.detail = why;
        rc = report(v, &m);
    }
    aw_audit_event_free(ev);
    aw_revocation_set_free(set);
    aw_observed_call_free(call);
    return rc;
}

/* ---- signatures, one pass over the entries ------------------------------------ */

static int cmp_rowid(const void *a, const void *b)
{
    int64_t x = ((const signature_rejection *)a)->entry_rowid,
            y = ((const signature_rejection *)b)->entry_rowid;
    return x < y ? -1 : x > y;
}

/* The signature rejection of entry row rowid, or NULL. */
static const signature_rejection *rejection_of(const verify_state *v,
                                               int64_t rowid)
{
    signature_rejection key = {.entry_rowid = rowid};
    return v->nrejected
               ? bsearch(&key, v->rejected, v->nrejected, sizeof key, cmp_rowid)
               : NULL;
}

/* Earlier versions refused more as ambiguous: any newline in a signed name
 * or value, then any line holding '=' after one. A rejection of an entry
 * that held none of these was never theirs. */
static bool ambiguous_once(const aw_raw_entry *raw)
{
    for (size_t i = 0; i < raw->nfields; i++) {
        const aw_field *f = &raw->fields[i];
        if (memchr(f->name.ptr, '\n', f->name.len) ||
            memchr(f->name.ptr, '=', f->name.len) ||
            memchr(f->value.ptr, '\n', f->value.len))
            return true;
    }
    return false;
}

static void tally(verify_state *v, scheme *s, const aw_entry_row *row, int rc,
                  const aw_error *err)
{
    if (rc == AW_OK) {
        s->verified++;
    } else if (rejection_of(v, row->rowid)) {
        s->known_rejected++;
    } else if (s->failed++ == 0) {
        snprintf(s->first_break, sizeof s->first_break, "row %lld (%s %s): %s",
                 (long long)row->rowid, row->stream, row->entry_id, err->msg);
    }
}

/* The mark "stored truncated" lies outside the chain, and excuses an entry
 * from every check. The store marks an entry only when its packed form is
 * over AW_STORE_MAX_RAW_BYTES, and then cuts every value to
 * AW_MAX_VALUE_BYTES: so a value longer than that, or a stored entry small
 * enough to have been kept whole with no value at that length (nothing
 * was cut), says the mark was forged. */
static int check_truncation(verify_state *v, const aw_entry_row *row,
                            const aw_raw_entry *raw)
{
    bool cut = false, over = false;
    for (size_t i = 0; i < raw->nfields; i++) {
        cut |= raw->fields[i].value.len == AW_MAX_VALUE_BYTES;
        over |= raw->fields[i].value.len > AW_MAX_VALUE_BYTES;
    }
    if (!over && (cut || row->raw_len > AW_STORE_MAX_RAW_BYTES)) {
        v->truncated++;
        return 0;
    }
    mismatch m = {.table = "entries",
                  .entry_row = row->rowid,
                  .entry_id = row->entry_id,
                  .field = "orig_size",
                  .stored = "truncated",
                  .raw = over ? "a value longer than the cut" : "nothing cut",
                  .detail = "marked as stored truncated, which excuses it "
                            "from every check, yet it was not cut"};
    return report(v, &m);
}

static int check_entry(const aw_entry_row *row, void *ud)
{
    verify_state *v = ud;
    aw_raw_entry *raw = NULL;
    aw_error err = {0};
    int rc = 0;

    v->entries++;
    aw_cli_progress_update(&v->progress, "verify: signatures of %lld entries",
                           (long long)v->entries);
    if (aw_raw_entry_unpack(row->raw, row->raw_len, &raw, NULL, &err) !=
        AW_OK) {
        if (v->unreadable++ == 0)
            snprintf(v->first_unreadable, sizeof v->first_unreadable,
                     "row %lld (%s %s): %s", (long long)row->rowid, row->stream,
                     row->entry_id, err.msg);
        return 0;
    }
    if (row->truncated) {
        rc = check_truncation(v, row, raw);
        aw_raw_entry_free(raw);
        return rc;
    }
    const aw_bytes *sig = aw_raw_entry_get(raw, "sig");
    const aw_bytes *data = aw_raw_entry_get(raw, "data");
    int checked = 0, verified = 0;
    if (sig && data) {
        if (!v->audit.key)
            v->audit.unchecked++;
        else {
            int vrc = aw_hmac_verify_audit(v->audit.key, *data, *sig, &err);
            tally(v, &v->audit, row, vrc, &err);
            checked++;
            verified += vrc == AW_OK;
        }
    }
    if (aw_raw_entry_get(raw, "_sig")) {
        if (!v->stream.key)
            v->stream.unchecked++;
        else {
            int vrc = aw_hmac_verify_stream(v->stream.key, raw,
                                            stream_role(v, raw), &err);
            tally(v, &v->stream, row, vrc, &err);
            checked++;
            verified += vrc == AW_OK;
        }
    }
    unsigned has =
        row->rowid >= 1 && row->rowid <= v->nhas ? v->has[row->rowid] : 0;
    /* A rejection for its signature hides the entry from everything that
     * reads the decoded rows: with every signature it carries verified
     * here, it was not the entry's (a forged row, or another key). */
    bool all_signatures_verify =
        checked > 0 && verified == checked && !(sig && data && !v->audit.key) &&
        !(aw_raw_entry_get(raw, "_sig") && !v->stream.key);
    const signature_rejection *rejected = rejection_of(v, row->rowid);
    if (rejected && all_signatures_verify &&
        !(rejected->reason == AW_REJECT_AMBIGUOUS_SIGNED_FIELD &&
          ambiguous_once(raw))) {
        mismatch m = {.table = "rejected",
                      .entry_row = row->rowid,
                      .entry_id = row->entry_id,
                      .field = "reason",
                      .stored = "a signature reason",
                      .raw = "every signature verifies",
                      .detail = "rejected for its signature, yet every "
                                "signature it carries verifies under the "
                                "keys given"};
        rc = report(v, &m);
    } else if ((has & HAS_REJECTED) && (has & HAS_DECODED)) {
        mismatch m = {.table = "rejected",
                      .entry_row = row->rowid,
                      .entry_id = row->entry_id,
                      .detail = "its raw entry is both rejected and decoded"};
        rc = report(v, &m);
    } else if (!has) {
        rc = check_rowless(v, row, raw);
    }
    aw_raw_entry_free(raw);
    return rc;
}

/* ---- the summary -------------------------------------------------------------- */

static void chain_progress(int64_t checked, void *ud)
{
    aw_cli_progress_update(ud, "verify: hash chain, %lld entries",
                           (long long)checked);
}

/* The result of --chain-head. */
typedef struct head_result {
    bool ok;
    char detail[2 * AW_ERRMSG_MAX];
} head_result;

/* The chain value the index records for row COUNT is the head after COUNT
 * entries once the walk found rows 1..COUNT intact. */
static int check_head(verify_state *v, const chain_head *head,
                      const aw_chain_report *chain, head_result *out)
{
    unsigned char at[32] = {0};
    char want[65], got[65];
    int rc = AW_OK;
    out->ok = false;
    if (!chain->ok && chain->first_bad_rowid <= head->count) {
        snprintf(out->detail, sizeof out->detail,
                 "the chain breaks within the head's %" PRId64 " entries (%s)",
                 head->count, chain->what);
        return AW_OK;
    }
    if (head->count > 0) {
        rc = aw_store_chain_at(v->store, head->count, at, &v->err);
        if (rc == AW_ERR_NOTFOUND) {
            snprintf(out->detail, sizeof out->detail,
                     "the head names %" PRId64
                     " entries; the index has %" PRId64,
                     head->count, chain->checked);
            return AW_OK;
        }
        if (rc != AW_OK)
            return rc;
    }
    aw_hex(head->hash, 32, want);
    aw_hex(at, 32, got);
    out->ok = memcmp(at, head->hash, 32) == 0;
    if (out->ok)
        snprintf(out->detail, sizeof out->detail, "%s@%" PRId64 " matches",
                 want, head->count);
    else
        snprintf(out->detail, sizeof out->detail,
                 "after %" PRId64
                 " entries the chain is %s, the head says %s: the index "
                 "was rewritten",
                 head->count, got, want);
    return AW_OK;
}

static int structure_problem(const char *problem, void *ud)
{
    verify_state *v = ud;
    if (v->structure_problems++ == 0)
        snprintf(v->first_structure_problem, sizeof v->first_structure_problem,
                 "the index file's structure: %s", problem);
    return 0;
}

static const char *const columns[] = {
    "check",          "result",    "checked", "failed",
    "known_rejected", "unchecked", "detail",
};
#define NCOLS (sizeof columns / sizeof columns[0])

static int summary_row(verify_state *v, aw_cli_out **out, const char *check,
                       const char *result, int64_t checked, int64_t failed,
                       int64_t known, int64_t unchecked, const char *detail)
{
    aw_cli_cell row[NCOLS] = {
        aw_cli_str(check),  aw_cli_str(result), aw_cli_int(checked),
        aw_cli_int(failed), aw_cli_int(known),  aw_cli_int(unchecked),
        aw_cli_str(detail),
    };
    return write_line(v, out, columns, NCOLS, row);
}

static int print_report(verify_state *v, const aw_chain_report *chain,
                        const head_result *head)
{
    aw_cli_out *out = NULL;
    int rc = summary_row(v, &out, "hash_chain", chain->ok ? "ok" : "FAILED",
                         chain->checked, !chain->ok, 0, 0,
                         chain->ok ? NULL : chain->what);
    if (rc == AW_OK && head)
        rc = summary_row(v, &out, "chain_head", head->ok ? "ok" : "FAILED", 1,
                         !head->ok, 0, 0, head->detail);
    if (rc == AW_OK)
        rc = summary_row(
            v, &out, "raw_entries", v->unreadable ? "FAILED" : "ok", v->entries,
            v->unreadable, 0, v->truncated,
            v->unreadable  ? v->first_unreadable
            : v->truncated ? "truncated entries cannot be re-verified"
                           : NULL);
    for (int i = 0; i < 2 && rc == AW_OK; i++) {
        const scheme *s = i ? &v->stream : &v->audit;
        const char *result = s->failed                 ? "FAILED"
                             : !s->key && s->unchecked ? "no key"
                                                       : "ok";
        rc = summary_row(v, &out, s->name, result, s->verified + s->failed,
                         s->failed, s->known_rejected, s->unchecked,
                         s->failed ? s->first_break : NULL);
    }
    if (rc == AW_OK)
        rc = summary_row(v, &out, "decoded_rows",
                         v->mismatches ? "FAILED" : "ok", v->rows_checked,
                         v->mismatches, 0, v->rows_unchecked,
                         v->mismatches ? v->first_mismatch : NULL);
    if (rc == AW_OK)
        rc = summary_row(
            v, &out, "index_structure", v->structure_problems ? "FAILED" : "ok",
            1, v->structure_problems, 0, 0,
            v->structure_problems ? v->first_structure_problem : NULL);
    if (aw_cli_out_close(out) != AW_OK && rc == AW_OK)
        rc = AW_ERR_IO;
    if (aw_cli_out_close(v->csv_out) != AW_OK && rc == AW_OK)
        rc = AW_ERR_IO;
    v->csv_out = NULL;
    return rc;
}

static int run_checks(verify_state *v, const verify_args *a,
                      aw_chain_report *chain, head_result *head)
{
    aw_event_filter all_events = {0};
    aw_revocation_filter all_revocations = {0};
    aw_store_stats stats;
    /* one snapshot for every check: a daemon committing meanwhile would
     * otherwise show entries whose rows an earlier query did not see */
    int rc = aw_store_read_snapshot(v->store, &v->err);
    if (rc == AW_OK)
        rc = aw_store_verify_chain(v->store, chain, chain_progress,
                                   &v->progress, &v->err);
    if (rc == AW_OK && a->head.given)
        rc = check_head(v, &a->head, chain, head);
    /* Every entry row, also past a break in the chain. */
    if (rc == AW_OK)
        rc = aw_store_get_stats(v->store, &stats, &v->err);
    /* Row ids are max(rowid): a hostile file's can be anything, but no more
     * rows fit than the file has bytes (rows past that show as rowless) */
    v->nhas = rc != AW_OK                        ? 0
              : stats.entries > stats.file_bytes ? stats.file_bytes
                                                 : stats.entries;
    if (rc == AW_OK && !(v->has = calloc((size_t)v->nhas + 1, 1)))
        rc = aw_error_set(&v->err, AW_ERR_NOMEM, "out of memory");
    if (rc == AW_OK)
        rc = aw_store_query_events(v->store, &all_events, check_event, v,
                                   &v->err);
    if (rc == AW_OK)
        rc = aw_store_query_revocations(v->store, &all_revocations,
                                        check_revocation, v, &v->err);
    if (rc == AW_OK)
        rc = close_group(v);
    if (rc == AW_OK)
        rc = aw_store_query_calls(v->store, 0, NULL, INT64_MIN, 0, check_call,
                                  v, &v->err);
    if (rc == AW_OK)
        rc =
            aw_store_query_rejected(v->store, 0, 0, check_rejected, v, &v->err);
    if (rc == AW_OK)
        rc = aw_store_iter_orphans(v->store, check_orphan, v, &v->err);
    if (rc == AW_OK) {
        if (v->nrejected)
            qsort(v->rejected, v->nrejected, sizeof *v->rejected, cmp_rowid);
        rc = aw_store_iter_entries(v->store, 0, INT64_MAX, check_entry, v,
                                   &v->err);
    }
    if (rc == AW_OK) {
        aw_cli_progress_update(&v->progress,
                               "verify: the index file's structure");
        rc = aw_store_check_structure(v->store, structure_problem, v, &v->err);
    }
    aw_cli_progress_end(&v->progress);
    aw_store_rollback(v->store);
    return rc;
}

/* The reason for exit status 1, or NULL when every check passed. */
static const char *first_failure(const aw_chain_report *chain,
                                 const head_result *head, const verify_state *v)
{
    if (!chain->ok)
        return chain->what;
    if (head && !head->ok)
        return head->detail;
    if (v->unreadable)
        return v->first_unreadable;
    if (v->audit.failed)
        return v->audit.first_break;
    if (v->stream.failed)
        return v->stream.first_break;
    if (v->mismatches)
        return v->first_mismatch;
    if (v->structure_problems)
        return v->first_structure_problem;
    return NULL;
}

int aw_cmd_verify(int argc, char **argv)
{
    verify_args a = {0};
    verify_state v = {.audit.name = "audit_signatures",
                      .stream.name = "stream_signatures"};
    aw_chain_report chain = {0};
    head_result head = {0};
    aw_cli_common common;
    int first, rc;

    rc = aw_cli_parse(&command, argc, argv, &common, on_option, &a, &first);
    if (rc != AW_CLI_PROCEED)
        return rc;
    if ((rc = aw_cli_expect_args(&command, argc, argv, first, 0, "")) !=
            AW_CLI_PROCEED ||
        (rc = aw_cli_resolve_streams(&command, a.streams, &a.names)) != 0)
        return rc;
    v.progress.enabled = common.progress;
    v.format = common.format;
    v.streams = &a.names;
    if (aw_cli_load_keys(a.audit_key_file, a.streams_key_file, &v.audit.key,
                         &v.stream.key, &v.err) != AW_OK)
        rc = aw_cli_usage_error(&command, "%s", v.err.msg);
    else if (!(rc = aw_cli_open_store(&command, &common, AW_STORE_READONLY,
                                      &v.store))) {
        const head_result *h = a.head.given ? &head : NULL;
        int checks = run_checks(&v, &a, &chain, &head);
        /* Mismatches first, then the summary (a blank line apart in a table). */
        bool any = v.mismatch_out != NULL;
        int printed = aw_cli_out_close(v.mismatch_out);
        if (any && common.format == AW_CLI_TABLE)
            putchar('\n');
        v.mismatch_out = NULL;
        /* Evidence too damaged to read stops the row checks; the chain
         * check already named the row, so that is a failed verification,
         * not a failure to verify. */
        if (checks != AW_OK && !chain.ok)
            rc = aw_cli_fail(
                &command, AW_EXIT_NO,
                "verification FAILED: %s (the row checks stopped there: %s)",
                chain.what, v.err.msg);
        else if (checks != AW_OK)
            rc = aw_cli_fail(&command, AW_EXIT_FAILURE, "%s", v.err.msg);
        else if (printed != AW_OK || print_report(&v, &chain, h) != AW_OK)
            rc = aw_cli_fail(&command, AW_EXIT_FAILURE,
                             "cannot write the output");
        else if (first_failure(&chain, h, &v))
            rc = aw_cli_fail(&command, AW_EXIT_NO, "verification FAILED: %s",
                             first_failure(&chain, h, &v));
        else
            rc = AW_EXIT_OK;
        aw_store_close(v.store);
    }
    aw_cli_out_close(v.csv_out);
    group_free(&v.group);
    aw_hmac_key_free(v.audit.key);
    aw_hmac_key_free(v.stream.key);
    free(v.rejected);
    free(v.has);
    return rc;
}
