/* metrics.h -- private to consumer/: the daemon's figures in the Prometheus
 * text format, served on /metrics.
 *
 * Two halves that never share mutable state but one string. The loop
 * thread keeps aw_metrics_state (plain counters, no locks), renders it into
 * a page (aw_metrics_render) and publishes that page; the HTTP thread
 * (libmicrohttpd's own) only ever copies the last published page under a
 * mutex. No SQLite, Redis or libuv is touched from the HTTP thread, so a
 * slow or malformed client can cost at most its own connection.
 */
#ifndef AW_CONSUMER_METRICS_H
#define AW_CONSUMER_METRICS_H

#include "consumer/consumer.h"
#include "consumer/pipeline_watch.h"

#define AW_METRICS_KINDS_MAX 32 /* distinct alert kinds tracked */
#define AW_METRICS_BUCKETS   13 /* commit duration buckets, +Inf apart */

/* An alert kind (and severity, for the raised counter) with its counts. */
typedef struct aw_metrics_alert_row {
    char kind[48];
    char severity[16]; /* "" for an open-count row */
    int64_t count;
} aw_metrics_alert_row;

typedef struct aw_metrics_state {
    const char *streams[AW_ROLE_COUNT]; /* label of each role; borrowed */
    uint64_t indexed[AW_ROLE_COUNT];
    uint64_t indexed_imports; /* files: import-calls, --calls-log */
    uint64_t rejected[AW_REJECT_REASON_COUNT];
    aw_metrics_alert_row raised[AW_METRICS_KINDS_MAX];
    size_t nraised;
    aw_metrics_alert_row open[AW_METRICS_KINDS_MAX];
    size_t nopen;
    bool has_lag[AW_ROLE_COUNT];
    int64_t lag[AW_ROLE_COUNT]; /* entries not yet delivered to us */
    double oldest_pending_seconds[AW_ROLE_COUNT];
    uint64_t commit_buckets[AW_METRICS_BUCKETS]; /* cumulative at render */
    uint64_t commit_count;
    double commit_sum;
    double detector_clock_seconds;
    bool redis_connected;
    /* Alert changes a sink did not deliver (aw_sinks_stats, copied in by
     * the daemon before each render): the alerts table has them all, but
     * nobody was paged about these. */
    uint64_t alert_stream_failed, alert_hook_failed, alert_hook_dropped;
    /* Caracal's groups and dead letters as the pipeline watch last saw
     * them; borrowed (aw_watch_figures_get), NULL for none */
    const aw_watch_figures *caracal;
} aw_metrics_state;

/* Zeroes state and names the streams (borrowed, must outlive it). */
void aw_metrics_state_init(aw_metrics_state *s,
                           const char *const streams[AW_ROLE_COUNT]);
/* One committed batch and how long its commit took. */
void aw_metrics_count_batch(aw_metrics_state *s, const aw_ingest_stats *st,
                            double seconds);
/* One alert change (raised: both counters; resolved: one fewer open). */
void aw_metrics_count_alert(aw_metrics_state *s, const aw_alert *alert,
                            aw_alert_change change);
/* The open alerts of kind, as the index counts them at start. */
void aw_metrics_set_open(aw_metrics_state *s, const char *kind, int64_t count);

/* The page: every family with HELP and TYPE, label values escaped. A heap
 * string (free) with *len, or NULL when out of memory. */
char *aw_metrics_render(const aw_metrics_state *s, size_t *len);

/* ---- The HTTP endpoint ----------------------------------------------------- */

typedef struct aw_metrics aw_metrics;

/* Listens on "ADDR:PORT" ("127.0.0.1:9464", "[::1]:9464", "localhost:0";
 * port 0 takes a free one) in a thread of its own, answering GET /metrics
 * with the last published page (an empty one until the first), 404 for any
 * other path, 405 for other methods. Connections are limited in number and
 * time (a client that sends nothing is dropped). AW_ERR_INVALID for a bad
 * address, AW_ERR_IO when it cannot listen. */
int aw_metrics_listen(const char *addr_port, aw_metrics **out, aw_error *err);
/* The port it listens on (the chosen one for port 0). */
int aw_metrics_port(const aw_metrics *m);
/* Replaces the page; takes ownership of text (heap, from aw_metrics_render). */
void aw_metrics_publish(aw_metrics *m, char *text, size_t len);
/* Stops the thread and closes the socket. NULL is a no-op. */
void aw_metrics_close(aw_metrics *m);

#endif /* AW_CONSUMER_METRICS_H */
