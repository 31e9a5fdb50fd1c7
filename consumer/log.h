/* log.h -- private to consumer/: the daemon's log, one line per event of
 * note, as key=value pairs or JSON objects. */
#ifndef AW_CONSUMER_LOG_H
#define AW_CONSUMER_LOG_H

#include "consumer/consumer.h"

typedef struct aw_log aw_log;

typedef enum aw_log_level {
    AW_LOG_INFO = 0,
    AW_LOG_WARN,
    AW_LOG_ERROR,
} aw_log_level;

/* One key and its value: a string (NULL logs as null/empty) or a number. */
typedef struct aw_log_field {
    const char *key;
    const char *str;
    long long num;
    bool is_num;
} aw_log_field;

#define AW_LOG_S(k, v) ((aw_log_field){(k), (v), 0, false})
#define AW_LOG_I(k, v) ((aw_log_field){(k), NULL, (long long)(v), true})

/* Opens the log: path NULL writes to stderr, else appends to path (created
 * 0640). *out is freed with aw_log_close. */
int aw_log_open(aw_log_format format, const char *path, aw_log **out,
                aw_error *err);
/* Reopens the file (after rotation; SIGHUP). Keeps the old stream when the
 * file cannot be opened, and says so in the log. No-op for stderr. */
void aw_log_reopen(aw_log *log);
void aw_log_close(aw_log *log);

/* Writes one line: time, level, event, then the fields in order. */
void aw_log_event(aw_log *log, aw_log_level level, const char *event,
                  const aw_log_field *fields, size_t nfields);

#define AW_LOG(log, level, event, ...)                                         \
    aw_log_event((log), (level), (event), (aw_log_field[]){__VA_ARGS__},       \
                 sizeof((aw_log_field[]){__VA_ARGS__}) / sizeof(aw_log_field))
#define AW_LOG0(log, level, event)                                             \
    aw_log_event((log), (level), (event), NULL, 0)

#endif /* AW_CONSUMER_LOG_H */
