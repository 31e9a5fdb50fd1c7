/* reply.h -- private to consumer/: reading Redis stream replies (RESP2) and
 * turning them into the types of event/ and consumer/core.h. */
#ifndef AW_CONSUMER_REPLY_H
#define AW_CONSUMER_REPLY_H

#include <hiredis/hiredis.h>

#include "consumer/consumer.h"

/* Parses a string reply holding an entry id. false when it is not one. */
bool aw_reply_stream_id(const redisReply *r, aw_stream_id *out);

/* Parses TIME's [seconds, microseconds] into ns since the epoch. false
 * when the reply is not that (an error: an ACL may refuse TIME). */
bool aw_reply_time_ns(const redisReply *r, int64_t *ns);

/* True for a reply that is an error starting with prefix ("BUSYGROUP"). */
bool aw_reply_is_error(const redisReply *r, const char *prefix);

/* For each [id, fields] element of a stream entry list (XREADGROUP,
 * XAUTOCLAIM): fields is NULL when the entry was deleted after it was
 * delivered (Redis answers nil or an empty array). Stops at, and returns,
 * the first non-zero value of fn; AW_ERR_INVALID when the shape is wrong. */
typedef int (*aw_reply_entry_fn)(const redisReply *id, const redisReply *fields,
                                 void *ud);
int aw_reply_each_entry(const redisReply *list, aw_reply_entry_fn fn, void *ud);

#endif /* AW_CONSUMER_REPLY_H */
