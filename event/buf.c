/* buf.c -- the growable byte buffer that msgpack output, the stream
 * signature's canonical text and the command line's output rows are written
 * into (declared in event.h: the one byte buffer of the tree).
 *
 * Capacity doubles, so appending n bytes in pieces costs O(n) copies. On
 * failure the buffer keeps what it had: a caller may report the error and
 * still free it normally.
 */
#include "event/event.h"

#include <stdlib.h>
#include <string.h>

int aw_buf_reserve(aw_buf *buf, size_t more)
{
    if (more <= buf->cap - buf->len)
        return AW_OK;
    if (more > SIZE_MAX - buf->len)
        return AW_ERR_NOMEM;
    size_t need = buf->len + more;
    size_t cap = buf->cap ? buf->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(buf->ptr, cap);
    if (p == NULL)
        return AW_ERR_NOMEM;
    buf->ptr = p;
    buf->cap = cap;
    return AW_OK;
}

bool aw_array_grow(void **p, size_t *cap, size_t need, size_t size)
{
    size_t n = *cap ? *cap : 64;
    void *grown;
    if (need <= *cap)
        return true;
    while (n < need)
        n = n > SIZE_MAX / 2 ? need : n * 2;
    if (size && n > SIZE_MAX / size)
        return false;
    if (!(grown = realloc(*p, n * size)))
        return false;
    *p = grown;
    *cap = n;
    return true;
}

int aw_buf_append(aw_buf *buf, const void *data, size_t len)
{
    if (len == 0)
        return AW_OK;
    if (aw_buf_reserve(buf, len) != AW_OK)
        return AW_ERR_NOMEM;
    memcpy(buf->ptr + buf->len, data, len);
    buf->len += len;
    return AW_OK;
}

int aw_buf_append_text(aw_buf *buf, const char *text, size_t len)
{
    if (aw_buf_reserve(buf, len + 1) != AW_OK)
        return AW_ERR_NOMEM;
    memcpy(buf->ptr + buf->len, text, len);
    buf->len += len;
    buf->ptr[buf->len] = '\0';
    return AW_OK;
}

void aw_buf_free(aw_buf *buf)
{
    if (buf == NULL)
        return;
    free(buf->ptr);
    buf->ptr = NULL;
    buf->len = buf->cap = 0;
}
