/* sinks.h -- private to consumer/: where alert changes go after the commit
 * that made them (besides the alerts table, which always has them). */
#ifndef AW_CONSUMER_SINKS_H
#define AW_CONSUMER_SINKS_H

#include "consumer/redis_conn.h"

typedef struct aw_sinks aw_sinks;

typedef struct aw_sinks_config {
    bool to_stdout;       /* JSON lines */
    const char *stream;   /* XADD target; NULL: none */
    size_t stream_maxlen; /* MAXLEN ~; 0: unbounded */
    const char *exec_cmd; /* /bin/sh -c; NULL: none */
    int exec_max;         /* hooks running at once */
    /* Called when the last XADD or hook in flight finishes. */
    void (*idle)(void *ud);
    void *ud;
    /* JSON: aw_alert_to_json, flat fields on the stream. OCSF: the finding
     * on stdout and the hook's stdin, fields id and ocsf on the stream. */
    aw_alert_format format;
} aw_sinks_config;

/* Counters for the shutdown line. */
typedef struct aw_sinks_stats {
    size_t emitted;
    size_t stream_failed; /* XADD refused or not sent (Redis down) */
    size_t hook_failed;   /* non-zero exit, signal, spawn failure */
    size_t hook_dropped;  /* queue full */
} aw_sinks_stats;

/* config (and the strings in it), log and loop are borrowed. */
int aw_sinks_new(uv_loop_t *loop, const aw_sinks_config *config, aw_log *log,
                 aw_sinks **out, aw_error *err);
/* Hands one alert change to every sink; XADDs go on conn (skipped and
 * counted when it is not ready). Never blocks on a hook. */
void aw_sinks_emit(aw_sinks *s, const aw_alert *alert, aw_alert_change change,
                   aw_redis_conn *conn);
/* XADDs or hooks still in flight. */
bool aw_sinks_busy(const aw_sinks *s);
const aw_sinks_stats *aw_sinks_stats_get(const aw_sinks *s);
/* Stops starting hooks; hooks still running are left to finish on their
 * own (their handles are closed). Frees s once nothing is left on the
 * loop. */
void aw_sinks_close(aw_sinks *s);

#endif /* AW_CONSUMER_SINKS_H */
