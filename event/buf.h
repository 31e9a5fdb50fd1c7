/* buf.h -- private to event/: appending to an aw_buf (event.h). */
#ifndef AW_EVENT_BUF_H
#define AW_EVENT_BUF_H

#include "event/event.h"

/* Makes room for `more` bytes after buf->len. AW_ERR_NOMEM on failure (buf
 * unchanged). */
int aw_buf_reserve(aw_buf *buf, size_t more);
/* Appends len bytes; AW_ERR_NOMEM on failure (buf unchanged). */
int aw_buf_append(aw_buf *buf, const void *data, size_t len);

#endif /* AW_EVENT_BUF_H */
