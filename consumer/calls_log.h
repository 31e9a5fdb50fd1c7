/* calls_log.h -- private to consumer/: access logs followed in place
 * (run --calls-log PATH), their lines indexed as observed calls.
 *
 * The daemon's loop calls aw_calls_log_step on the libuv thread pool, never
 * while another batch commits; between steps the loop owns the handle.
 */
#ifndef AW_CONSUMER_CALLS_LOG_H
#define AW_CONSUMER_CALLS_LOG_H

#include "consumer/consumer.h"

typedef struct aw_calls_log aw_calls_log;

/* Follows paths (n of them; made absolute, each names its stream
 * "import:<absolute path>"), from the positions committed in store. A file
 * that does not exist yet is waited for. A position whose file was rotated
 * away while the daemon was stopped is finished from "<path>.1" when that
 * is the same file (logrotate's first name), else the new file is read
 * from its start. names: the NDJSON field names (borrowed). *out: new
 * handle (aw_calls_log_free). */
int aw_calls_log_new(const char *const *paths, size_t n,
                     const aw_call_fields *names, aw_store *store,
                     aw_calls_log **out, aw_error *err);
void aw_calls_log_free(aw_calls_log *cl);

/* One step: notices rotation (a new file at the path: the old one is read
 * to its end first; a file shorter than the position: it was truncated,
 * read from 0), reads the complete lines ('\n'-terminated) that arrived,
 * at most max_lines in all, and commits them with every moved position in
 * one aw_ingest_log_batch. Returns its result; on failure nothing moved
 * and the same lines are read again at the next step. *stats is the
 * batch's (zero when nothing was read). *more: lines were left for the
 * next step. */
int aw_calls_log_step(aw_calls_log *cl, aw_ingest *ing, size_t max_lines,
                      aw_ingest_stats *stats, bool *more, aw_error *err);

/* What the last step noticed ("rotated", "truncated", "opened"), one entry
 * a file (NULL when nothing); path and note borrowed until the next step. */
typedef struct aw_calls_log_note {
    const char *path;
    const char *note;
} aw_calls_log_note;
size_t aw_calls_log_notes(const aw_calls_log *cl,
                          const aw_calls_log_note **out);

#endif /* AW_CONSUMER_CALLS_LOG_H */
