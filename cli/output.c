/* output.c -- the one output layer of the command line.
 *
 * A command names its columns once and then hands over rows of typed cells
 * (text, integer, time, boolean, JSON text, or null). This file alone
 * decides how they look:
 *  - table: aligned columns for people. The first TABLE_SAMPLE rows are held
 *    back to size the columns, then rows stream (a later, longer cell just
 *    pushes its line wider rather than holding the whole result in memory).
 *    Control bytes and invalid UTF-8 are shown escaped ("\n", "\x1b") so a
 *    hostile field cannot drive the terminal. Null shows as "-".
 *  - json: one object per line, keys in column order. Strings are escaped
 *    here (control bytes as \u00XX, invalid UTF-8 as U+FFFD), times are
 *    RFC 3339 UTC strings, null is null, and JSON text is embedded as a
 *    value once it has been checked to be JSON.
 *  - csv: RFC 4180: a header line, CRLF line ends, a field quoted when it
 *    holds a comma, quote, CR or LF, quotes doubled. Null is an empty field.
 * A row may also come as a JSON object (a record, aw_cli_out_record): JSON
 * lines print it whole, the other formats pick one member per column.
 */
#include "cli/cli.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#define TABLE_SAMPLE 1000
#define TABLE_GAP    2

struct aw_cli_out {
    aw_cli_format format;
    const char *const *columns;
    size_t ncols;
    FILE *fp;
    size_t rows;
    bool failed;
    /* table only */
    size_t *widths;
    char **held; /* held rows: ncols display strings each */
    size_t nheld;
    bool streaming; /* header written, widths fixed */
    aw_buf line;
};

aw_cli_cell aw_cli_str(const char *s)
{
    return (aw_cli_cell){s ? AW_CLI_STR : AW_CLI_NULL, s, 0};
}
aw_cli_cell aw_cli_int(int64_t i)
{
    return (aw_cli_cell){AW_CLI_INT, NULL, i};
}
aw_cli_cell aw_cli_time(int64_t ns)
{
    return (aw_cli_cell){AW_CLI_TIME, NULL, ns};
}
aw_cli_cell aw_cli_time_or_null(int64_t ns)
{
    return ns ? aw_cli_time(ns) : (aw_cli_cell){AW_CLI_NULL, NULL, 0};
}
aw_cli_cell aw_cli_bool(bool b)
{
    return (aw_cli_cell){AW_CLI_BOOL, NULL, b};
}
aw_cli_cell aw_cli_json(const char *json)
{
    return (aw_cli_cell){json ? AW_CLI_JSON_TEXT : AW_CLI_NULL, json, 0};
}

/* ---- a growable buffer ------------------------------------------------- */

static int buf_put(aw_buf *b, const char *s, size_t n)
{
    return aw_buf_append_text(b, s, n);
}

static int buf_puts(aw_buf *b, const char *s)
{
    return buf_put(b, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at p[0..n), 0 when invalid. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    size_t k;
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xC2 && p[0] <= 0xDF)
        k = 2;
    else if (p[0] >= 0xE0 && p[0] <= 0xEF)
        k = 3;
    else if (p[0] >= 0xF0 && p[0] <= 0xF4)
        k = 4;
    else
        return 0;
    return k <= n && aw_utf8_valid((const char *)p, k) ? k : 0;
}

/* ---- cell text ----------------------------------------------------------- */

/* The plain text of a cell (table and CSV). NULL for a null cell. */
static const char *cell_text(const aw_cli_cell *c, char *tmp, size_t size)
{
    switch (c->kind) {
    case AW_CLI_NULL: return NULL;
    case AW_CLI_STR:
    case AW_CLI_JSON_TEXT: return c->s;
    case AW_CLI_INT: snprintf(tmp, size, "%lld", (long long)c->i); return tmp;
    case AW_CLI_TIME: return aw_time_format(c->i, tmp, size);
    case AW_CLI_BOOL: return c->i ? "true" : "false";
    }
    return NULL;
}

/* Appends s with control bytes and invalid UTF-8 made visible; returns
 * the number of characters shown. */
static size_t put_printable(aw_buf *b, const char *s, int *rc)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), shown = 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(p + i, n - i);
        char esc[8];
        if (k == 1 && (p[i] < 0x20 || p[i] == 0x7f)) {
            if (p[i] == '\n')
                strcpy(esc, "\\n");
            else if (p[i] == '\t')
                strcpy(esc, "\\t");
            else if (p[i] == '\r')
                strcpy(esc, "\\r");
            else
                snprintf(esc, sizeof esc, "\\x%02x", p[i]);
        } else if (k == 0) {
            snprintf(esc, sizeof esc, "\\x%02x", p[i]);
            k = 1;
        } else {
            *rc |= buf_put(b, s + i, k);
            i += k;
            shown++;
            continue;
        }
        *rc |= buf_puts(b, esc);
        shown += strlen(esc);
        i += k;
    }
    return shown;
}

/* ---- JSON lines ---------------------------------------------------------- */

static int json_string(aw_buf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    int rc = buf_put(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(p + i, n - i);
        char esc[8];
        if (k == 0) {
            rc |= buf_puts(b, "\\ufffd");
            i++;
            continue;
        }
        if (k > 1 || (p[i] >= 0x20 && p[i] != '"' && p[i] != '\\')) {
            rc |= buf_put(b, s + i, k);
            i += k;
            continue;
        }
        switch (p[i]) {
        case '"': strcpy(esc, "\\\""); break;
        case '\\': strcpy(esc, "\\\\"); break;
        case '\n': strcpy(esc, "\\n"); break;
        case '\r': strcpy(esc, "\\r"); break;
        case '\t': strcpy(esc, "\\t"); break;
        default: snprintf(esc, sizeof esc, "\\u%04x", p[i]);
        }
        rc |= buf_puts(b, esc);
        i++;
    }
    rc |= buf_put(b, "\"", 1);
    return rc ? AW_ERR_NOMEM : AW_OK;
}

static int json_row(aw_cli_out *out, const aw_cli_cell *cells)
{
    aw_buf *b = &out->line;
    char tmp[40];
    int rc = 0;
    b->len = 0;
    rc |= buf_put(b, "{", 1);
    for (size_t i = 0; i < out->ncols; i++) {
        const aw_cli_cell *c = &cells[i];
        if (i)
            rc |= buf_put(b, ",", 1);
        rc |= json_string(b, out->columns[i]);
        rc |= buf_put(b, ":", 1);
        switch (c->kind) {
        case AW_CLI_NULL: rc |= buf_puts(b, "null"); break;
        case AW_CLI_STR: rc |= json_string(b, c->s); break;
        case AW_CLI_JSON_TEXT:
            if (aw_json_validate(c->s, strlen(c->s), NULL) == AW_OK)
                rc |= buf_puts(b, c->s);
            else
                rc |= json_string(b, c->s);
            break;
        case AW_CLI_TIME:
            rc |= json_string(b, cell_text(c, tmp, sizeof tmp));
            break;
        case AW_CLI_INT:
        case AW_CLI_BOOL:
            rc |= buf_puts(b, cell_text(c, tmp, sizeof tmp));
            break;
        }
    }
    rc |= buf_put(b, "}\n", 2);
    if (rc)
        return AW_ERR_NOMEM;
    if (fwrite(b->ptr, 1, b->len, out->fp) != b->len)
        out->failed = true;
    return AW_OK;
}

/* ---- CSV ----------------------------------------------------------------- */

static int csv_field(aw_buf *b, const char *s)
{
    if (!s)
        return AW_OK;
    if (!strpbrk(s, ",\"\r\n"))
        return buf_puts(b, s);
    int rc = buf_put(b, "\"", 1);
    for (const char *q; (q = strchr(s, '"')); s = q + 1) {
        rc |= buf_put(b, s, (size_t)(q - s));
        rc |= buf_put(b, "\"\"", 2);
    }
    rc |= buf_puts(b, s);
    rc |= buf_put(b, "\"", 1);
    return rc ? AW_ERR_NOMEM : AW_OK;
}

static int csv_line(aw_cli_out *out, const char *const *fields)
{
    aw_buf *b = &out->line;
    int rc = 0;
    b->len = 0;
    for (size_t i = 0; i < out->ncols; i++) {
        if (i)
            rc |= buf_put(b, ",", 1);
        rc |= csv_field(b, fields[i]);
    }
    rc |= buf_put(b, "\r\n", 2);
    if (rc)
        return AW_ERR_NOMEM;
    if (fwrite(b->ptr, 1, b->len, out->fp) != b->len)
        out->failed = true;
    return AW_OK;
}

static int csv_row(aw_cli_out *out, const aw_cli_cell *cells)
{
    const char *fields[out->ncols];
    char tmp[out->ncols][40];
    for (size_t i = 0; i < out->ncols; i++)
        fields[i] = cell_text(&cells[i], tmp[i], sizeof tmp[i]);
    return csv_line(out, fields);
}

/* ---- tables -------------------------------------------------------------- */

/* UTF-8 characters in s (display width, near enough for ids and names). */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    return w;
}

static int table_write(aw_cli_out *out, char *const *cells)
{
    aw_buf *b = &out->line;
    int rc = 0;
    b->len = 0;
    for (size_t i = 0; i < out->ncols; i++) {
        rc |= buf_puts(b, cells[i]);
        if (i + 1 == out->ncols)
            break;
        size_t w = text_width(cells[i]);
        size_t pad = (w < out->widths[i] ? out->widths[i] - w : 0) + TABLE_GAP;
        for (; pad > 0; pad--)
            rc |= buf_put(b, " ", 1);
    }
    rc |= buf_put(b, "\n", 1);
    if (rc)
        return AW_ERR_NOMEM;
    if (fwrite(b->ptr, 1, b->len, out->fp) != b->len)
        out->failed = true;
    return AW_OK;
}

/* Writes the header and every held row, then streams from here on. */
static int table_flush(aw_cli_out *out)
{
    char *header[out->ncols];
    int rc = AW_OK;
    for (size_t i = 0; i < out->ncols; i++) {
        header[i] = (char *)out->columns[i];
        size_t w = text_width(header[i]);
        if (w > out->widths[i])
            out->widths[i] = w;
    }
    rc = table_write(out, header);
    for (size_t r = 0; r < out->nheld && rc == AW_OK; r++)
        rc = table_write(out, &out->held[r * out->ncols]);
    for (size_t i = 0; i < out->nheld * out->ncols; i++)
        free(out->held[i]);
    out->nheld = 0;
    out->streaming = true;
    return rc;
}

static int table_row(aw_cli_out *out, const aw_cli_cell *cells)
{
    char *shown[out->ncols];
    aw_buf cell = {0};
    int rc = AW_OK;
    for (size_t i = 0; i < out->ncols; i++)
        shown[i] = NULL;
    for (size_t i = 0; i < out->ncols && rc == AW_OK; i++) {
        char tmp[40];
        const char *text = cell_text(&cells[i], tmp, sizeof tmp);
        size_t w;
        cell = (aw_buf){0};
        rc = buf_puts(&cell, "");
        w = put_printable(&cell, text ? text : "-", &rc);
        shown[i] = cell.ptr;
        if (!out->streaming && w > out->widths[i])
            out->widths[i] = w;
    }
    if (rc == AW_OK && out->streaming)
        rc = table_write(out, shown);
    if (rc != AW_OK || out->streaming) {
        for (size_t i = 0; i < out->ncols; i++)
            free(shown[i]);
        return rc;
    }
    memcpy(&out->held[out->nheld * out->ncols], shown, sizeof shown);
    if (++out->nheld == TABLE_SAMPLE)
        return table_flush(out);
    return AW_OK;
}

/* ---- the handle ---------------------------------------------------------- */

aw_cli_out *aw_cli_out_new(aw_cli_format format, const char *const *columns,
                           size_t ncols, FILE *fp)
{
    aw_cli_out *out = calloc(1, sizeof *out);
    if (!out)
        return NULL;
    out->format = format;
    out->columns = columns;
    out->ncols = ncols;
    out->fp = fp;
    if (format == AW_CLI_TABLE) {
        out->widths = calloc(ncols, sizeof *out->widths);
        out->held = calloc(TABLE_SAMPLE * ncols, sizeof *out->held);
        if (!out->widths || !out->held) {
            aw_cli_out_close(out);
            return NULL;
        }
    } else if (format == AW_CLI_CSV &&
               csv_line(out, (const char *const *)columns) != AW_OK) {
        aw_cli_out_close(out);
        return NULL;
    }
    return out;
}

int aw_cli_out_row(aw_cli_out *out, const aw_cli_cell *cells)
{
    int rc;
    switch (out->format) {
    case AW_CLI_JSON: rc = json_row(out, cells); break;
    case AW_CLI_CSV: rc = csv_row(out, cells); break;
    default: rc = table_row(out, cells); break;
    }
    if (rc == AW_OK)
        out->rows++;
    return rc;
}

/* The member at path ("name" or "outer.inner"), or NULL. */
static const cJSON *record_member(const cJSON *record, const char *path)
{
    const char *dot;
    char name[AW_MAX_KEY_BYTES];
    while (record && (dot = strchr(path, '.'))) {
        size_t n = (size_t)(dot - path);
        if (n >= sizeof name)
            return NULL;
        memcpy(name, path, n);
        name[n] = '\0';
        record = cJSON_GetObjectItemCaseSensitive(record, name);
        path = dot + 1;
    }
    return record ? cJSON_GetObjectItemCaseSensitive(record, path) : NULL;
}

int aw_cli_out_record(aw_cli_out *out, const cJSON *record)
{
    if (out->format == AW_CLI_JSON) {
        char *text = cJSON_PrintUnformatted(record);
        size_t len = text ? strlen(text) : 0;
        if (!text)
            return AW_ERR_NOMEM;
        if (fwrite(text, 1, len, out->fp) != len || fputc('\n', out->fp) == EOF)
            out->failed = true;
        free(text);
        out->rows++;
        return AW_OK;
    }
    aw_cli_cell cells[out->ncols];
    char *printed[out->ncols];
    int rc = AW_OK;
    for (size_t i = 0; i < out->ncols; i++) {
        const cJSON *v = record_member(record, out->columns[i]);
        printed[i] = NULL;
        if (!v || cJSON_IsNull(v))
            cells[i] = aw_cli_str(NULL);
        else if (cJSON_IsString(v))
            cells[i] = aw_cli_str(v->valuestring);
        else if ((printed[i] = cJSON_PrintUnformatted(v)))
            cells[i] = aw_cli_json(printed[i]);
        else
            rc = AW_ERR_NOMEM;
    }
    if (rc == AW_OK)
        rc = aw_cli_out_row(out, cells);
    for (size_t i = 0; i < out->ncols; i++)
        free(printed[i]);
    return rc;
}

size_t aw_cli_out_rows(const aw_cli_out *out)
{
    return out->rows;
}

int aw_cli_out_close(aw_cli_out *out)
{
    int rc = AW_OK;
    if (!out)
        return AW_OK;
    /* An empty table prints nothing, not a lone header. */
    if (out->format == AW_CLI_TABLE && out->held && !out->streaming &&
        out->nheld > 0)
        rc = table_flush(out);
    if (out->held)
        for (size_t i = 0; i < out->nheld * out->ncols; i++)
            free(out->held[i]);
    if (fflush(out->fp) != 0 || ferror(out->fp))
        out->failed = true;
    if (out->failed && rc == AW_OK)
        rc = AW_ERR_IO;
    free(out->held);
    free(out->widths);
    aw_buf_free(&out->line);
    free(out);
    return rc;
}
