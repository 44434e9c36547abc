#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#include "analyze/sites.h"
#include "json/forms.h"
#include "util/xalloc.h"

/*
 * Writes s to f with what a terminal would act on made visible: C0 controls (but newline and
 * tab when keep_lines), DEL, the C1 controls in UTF-8 (U+0080..U+009F) and bytes that are not
 * UTF-8 become "\xNN"; with keep_lines unset a newline becomes "\n". A crafted database's label
 * or path must not move the cursor, retitle the window or fake a line.
 */
static void put_safe(FILE *f, const char *s, size_t len, int keep_lines)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len, *run = p;
    while (p < end) {
        unsigned c = *p;
        size_t n = c < 0x80 ? 1 : json_utf8_seq(p, (size_t)(end - p));
        int plain = n > 1 ? !(c == 0xc2 && p[1] < 0xa0)
                          : n == 1 && ((c >= 0x20 && c != 0x7f) ||
                                       (keep_lines && (c == '\n' || c == '\t')));
        if (plain) {
            p += n;
            continue;
        }
        fwrite(run, 1, (size_t)(p - run), f);
        if (c == '\n')
            fputs("\\n", f);
        else
            fprintf(f, "\\x%02x", c);
        run = ++p;
    }
    fwrite(run, 1, (size_t)(p - run), f);
}

/* Formats into a buffer of its own when the stack's is too small; caller frees *heap. */
VMSNAP_PRINTF(4, 0)
static size_t format(char *buf, size_t size, char **heap, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(buf, size, fmt, ap);
    *heap = NULL;
    if (n < 0)
        n = 0;
    if ((size_t)n >= size) {
        *heap = xmalloc((size_t)n + 1);
        vsnprintf(*heap, (size_t)n + 1, fmt, again);
    }
    va_end(again);
    return (size_t)n;
}

int cli_printf(const char *fmt, ...)
{
    char buf[1024], *heap;
    va_list ap;
    va_start(ap, fmt);
    size_t n = format(buf, sizeof(buf), &heap, fmt, ap);
    va_end(ap);
    put_safe(stdout, heap ? heap : buf, n, 1);
    free(heap);
    return (int)n;
}

void cli_puts(const char *s)
{
    put_safe(stdout, s, strlen(s), 1);
}

int cli_fail(const char *fmt, ...)
{
    char buf[1024], *heap;
    va_list ap;
    fflush(stdout);
    va_start(ap, fmt);
    size_t n = format(buf, sizeof(buf), &heap, fmt, ap);
    va_end(ap);
    fputs("vmsnap: ", stderr);
    put_safe(stderr, heap ? heap : buf, n, 0);
    fputc('\n', stderr);
    free(heap);
    return EXIT_TROUBLE;
}

int cli_fail_err(const struct err *e)
{
    return cli_fail("%s", e->msg[0] ? e->msg : "unknown error");
}

int cli_open_store(const struct cli *cli, int mode, struct store **st)
{
    struct err e = {0};
    if (store_open(st, cli->db_path, mode, &e) < 0)
        return cli_fail_err(&e);
    return 0;
}

/* Parses a non-negative decimal number with an optional fraction; *end gets the rest. */
static int parse_number(const char *s, double *v, const char **end)
{
    if (!isdigit((unsigned char)*s) && !(*s == '.' && isdigit((unsigned char)s[1])))
        return -1;
    errno = 0;
    char *e;
    *v = strtod(s, &e);
    if (errno || e == s || !isfinite(*v) || *v < 0)
        return -1;
    *end = e;
    return 0;
}

int cli_parse_duration_ms(const char *s, int64_t *ms)
{
    double v;
    const char *unit;
    if (!s || parse_number(s, &v, &unit) < 0)
        return -1;
    double scale;
    if (*unit == '\0' || strcmp(unit, "s") == 0)
        scale = 1000;
    else if (strcmp(unit, "ms") == 0)
        scale = 1;
    else if (strcmp(unit, "m") == 0)
        scale = 60000;
    else if (strcmp(unit, "h") == 0)
        scale = 3600000;
    else
        return -1;
    double r = v * scale;
    if (r > 9.0e15)
        return -1;
    *ms = (int64_t)llround(r);
    return 0;
}

int cli_parse_size(const char *s, uint64_t *bytes)
{
    double v;
    const char *unit;
    if (!s || parse_number(s, &v, &unit) < 0)
        return -1;
    double scale = 1;
    switch (toupper((unsigned char)*unit)) {
    case '\0':
        break;
    case 'K':
        scale = 1024.0;
        unit++;
        break;
    case 'M':
        scale = 1024.0 * 1024;
        unit++;
        break;
    case 'G':
        scale = 1024.0 * 1024 * 1024;
        unit++;
        break;
    case 'T':
        scale = 1024.0 * 1024 * 1024 * 1024;
        unit++;
        break;
    case 'B':
        break;
    default:
        return -1;
    }
    if (strcmp(unit, "") != 0 && strcmp(unit, "B") != 0 && strcmp(unit, "iB") != 0 &&
        strcmp(unit, "b") != 0)
        return -1;
    double r = v * scale;
    if (r >= 1.8e19 || (scale == 1 && v != floor(v)))
        return -1;
    *bytes = (uint64_t)llround(r);
    return 0;
}

int cli_parse_count(const char *s, int64_t *n)
{
    if (!s || !*s)
        return -1;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p))
            return -1;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno)
        return -1;
    *n = v;
    return 0;
}

int cli_parse_pid(const char *s, int64_t *pid)
{
    if (cli_parse_count(s, pid) < 0 || *pid <= 0 || *pid > 0x7fffffff)
        return -1;
    return 0;
}

char *cli_escape(const char *s, size_t len)
{
    /* Each byte becomes at most four ("\xNN"). */
    char *out = xmalloc(len * 4 + 1), *o = out;
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        unsigned c = *p;
        size_t n = json_utf8_seq(p, (size_t)(end - p));
        if (c == '\n') {
            *o++ = '\\';
            *o++ = 'n';
            p++;
        } else if (c < 0x20 || c == 0x7f || n == 0) {
            o += sprintf(o, "\\x%02x", c);
            p++;
        } else {
            memcpy(o, p, n);
            o += n;
            p += n;
        }
    }
    *o = '\0';
    return out;
}

void cli_print_escaped(FILE *f, const char *s, size_t len)
{
    char *t = cli_escape(s, len);
    fputs(t, f);
    free(t);
}

const char *cli_human(uint64_t bytes, char out[16])
{
    static const char units[] = "BKMGTPE";
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 6) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, 16, "%uB", (unsigned)bytes); /* below 1024 here */
    else if (v < 10)
        snprintf(out, 16, "%.1f%c", v, units[u]);
    else
        snprintf(out, 16, "%.0f%c", v, units[u]);
    return out;
}

const char *cli_human_signed(int64_t v, char out[24])
{
    char h[16];
    cli_human(v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, h);
    snprintf(out, 24, "%s%s", v < 0 ? "-" : v > 0 ? "+" : "", h);
    return out;
}

void cli_print_frame(FILE *f, const struct site_frame *fr)
{
    const char *base = strrchr(fr->module, '/');
    base = base ? base + 1 : fr->module;
    if (fr->function) {
        cli_print_escaped(f, fr->function, strlen(fr->function));
        fputs(" (", f);
    }
    if (fr->file) {
        const char *src = strrchr(fr->file, '/');
        src = src ? src + 1 : fr->file;
        cli_print_escaped(f, src, strlen(src));
        fprintf(f, ":%d", fr->line);
    } else {
        cli_print_escaped(f, *base ? base : "?", strlen(*base ? base : "?"));
        fprintf(f, "+0x%llx", (unsigned long long)fr->offset);
    }
    if (fr->function)
        fputc(')', f);
}
