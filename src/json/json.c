#include "json/json.h"

#include <inttypes.h>
#include <string.h>

void json_init(struct json *j, FILE *out)
{
    memset(j, 0, sizeof(*j));
    j->out = out;
    j->first[0] = 1;
}

/* Before a value or a key: a comma when the container already has members. */
static void separate(struct json *j)
{
    if (j->depth == 0)
        return;
    if (!j->first[j->depth])
        fputc(',', j->out);
    j->first[j->depth] = 0;
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
    if (j->depth > 0)
        j->depth--;
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

/*
 * The length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), or 0 when the bytes there are not one.
 */
size_t json_utf8_seq(const unsigned char *p, size_t avail)
{
    unsigned c = p[0];
    size_t n;
    unsigned lo = 0x80, hi = 0xbf; /* the range of the second byte */
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong below U+0800 */
        else if (c == 0xed)
            hi = 0x9f; /* U+D800..U+DFFF are surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong below U+10000 */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (avail < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t k = 2; k < n; k++)
        if ((p[k] & 0xc0) != 0x80)
            return 0;
    return n;
}

int json_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        size_t n = json_utf8_seq(p, (size_t)(end - p));
        if (!n)
            return 0;
        p += n;
    }
    return 1;
}

static void write_escaped(FILE *out, const char *s, size_t len, int script_safe)
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
        } else if (c < 0x20 || c == 0x7f || (script_safe && (c == '<' || c == '>' || c == '&'))) {
            fprintf(out, "\\u%04x", c);
            p++;
        } else if (c < 0x80) {
            fputc((int)c, out);
            p++;
        } else {
            /* Pass valid UTF-8 through; a stray byte becomes U+FFFD so the output stays JSON. */
            size_t n = json_utf8_seq(p, (size_t)(end - p));
            if (n) {
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
    write_escaped(j->out, key, strlen(key), j->script_safe);
    fputc(':', j->out);
    j->pending_key = 1;
}

void json_string_len(struct json *j, const char *s, size_t len)
{
    before_value(j);
    write_escaped(j->out, s, len, j->script_safe);
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
