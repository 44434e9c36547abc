#include "cli/json.h"

#include <inttypes.h>
#include <string.h>

void json_init(struct json *j, FILE *out, int pretty)
{
    memset(j, 0, sizeof(*j));
    j->out = out;
    j->pretty = pretty;
    j->first[0] = 1;
}

static void newline(struct json *j)
{
    if (!j->pretty)
        return;
    fputc('\n', j->out);
    for (int i = 0; i < j->depth; i++)
        fputs("  ", j->out);
}

/* Before a value or a key: a comma when the container already has members. */
static void separate(struct json *j)
{
    if (j->depth == 0)
        return;
    if (!j->first[j->depth])
        fputc(',', j->out);
    j->first[j->depth] = 0;
    newline(j);
}

static void before_value(struct json *j)
{
    if (j->pending_key) {
        j->pending_key = 0;
        return;
    }
    separate(j);
}

static void open_container(struct json *j, char c)
{
    before_value(j);
    fputc(c, j->out);
    if (j->depth < 63)
        j->depth++;
    j->first[j->depth] = 1;
}

static void close_container(struct json *j, char c)
{
    int empty = j->first[j->depth];
    if (j->depth > 0)
        j->depth--;
    if (!empty)
        newline(j);
    fputc(c, j->out);
}

void json_begin_object(struct json *j)
{
    open_container(j, '{');
}

void json_end_object(struct json *j)
{
    close_container(j, '}');
}

void json_begin_array(struct json *j)
{
    open_container(j, '[');
}

void json_end_array(struct json *j)
{
    close_container(j, ']');
}

static void write_escaped(FILE *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    fputc('"', out);
    while (p < end) {
        unsigned c = *p;
        if (c == '"' || c == '\\') {
            fputc('\\', out);
            fputc((int)c, out);
            p++;
        } else if (c == '\n') {
            fputs("\\n", out);
            p++;
        } else if (c == '\t') {
            fputs("\\t", out);
            p++;
        } else if (c == '\r') {
            fputs("\\r", out);
            p++;
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(out, "\\u%04x", c);
            p++;
        } else if (c < 0x80) {
            fputc((int)c, out);
            p++;
        } else {
            /* Pass valid UTF-8 through; a stray byte becomes U+FFFD so the output stays JSON. */
            size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
            int ok = n > 0 && (size_t)(end - p) >= n && c < 0xf5;
            for (size_t k = 1; ok && k < n; k++)
                ok = (p[k] & 0xc0) == 0x80;
            if (ok) {
                fwrite(p, 1, n, out);
                p += n;
            } else {
                fputs("\\ufffd", out);
                p++;
            }
        }
    }
    fputc('"', out);
}

void json_key(struct json *j, const char *key)
{
    separate(j);
    write_escaped(j->out, key, strlen(key));
    fputs(j->pretty ? ": " : ":", j->out);
    j->pending_key = 1;
}

void json_string_len(struct json *j, const char *s, size_t len)
{
    before_value(j);
    write_escaped(j->out, s, len);
}

void json_string(struct json *j, const char *s)
{
    if (!s) {
        json_null(j);
        return;
    }
    json_string_len(j, s, strlen(s));
}

void json_int(struct json *j, int64_t v)
{
    before_value(j);
    fprintf(j->out, "%" PRId64, v);
}

void json_uint(struct json *j, uint64_t v)
{
    before_value(j);
    fprintf(j->out, "%" PRIu64, v);
}

void json_double(struct json *j, double v)
{
    before_value(j);
    fprintf(j->out, "%.17g", v);
}

void json_bool(struct json *j, int v)
{
    before_value(j);
    fputs(v ? "true" : "false", j->out);
}

void json_null(struct json *j)
{
    before_value(j);
    fputs("null", j->out);
}

void json_hex(struct json *j, uint64_t v)
{
    before_value(j);
    fprintf(j->out, "\"0x%" PRIx64 "\"", v);
}

void json_finish(struct json *j)
{
    fputc('\n', j->out);
    fflush(j->out);
}
