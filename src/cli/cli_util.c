#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/json.h"
#include "util/xalloc.h"

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fputs("vmsnap: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
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

void cli_json_text(struct json *j, const char *key, const char *s, size_t len)
{
    json_key(j, key);
    if (!s) {
        json_null(j);
        return;
    }
    json_string_len(j, s, len);
    if (json_utf8_valid(s, len))
        return;
    /* Not UTF-8 (Linux file names are bytes): the exact bytes beside the readable form. */
    static const char hex[] = "0123456789abcdef";
    char *h = xmalloc(len * 2 + 1);
    for (size_t i = 0; i < len; i++) {
        h[2 * i] = hex[(unsigned char)s[i] >> 4];
        h[2 * i + 1] = hex[(unsigned char)s[i] & 15];
    }
    h[2 * len] = '\0';
    char name[64];
    snprintf(name, sizeof(name), "%s_hex", key);
    json_key(j, name);
    json_string(j, h);
    free(h);
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
        snprintf(out, 16, "%lluB", (unsigned long long)bytes);
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

int cli_common_opt(struct cli *cli, int opt, const char *arg)
{
    switch (opt) {
    case 'j':
        cli->json = 1;
        return 1;
    case 'd':
        cli->db_path = arg;
        return 1;
    default:
        return 0;
    }
}

void cli_usage(FILE *f, const char *usage)
{
    fputs(usage, f);
}

void cli_json_region_fields(struct json *j, const struct region *r)
{
    int mem = (r->flags & REGION_HAS_MEM) != 0, win = (r->flags & REGION_HAS_WIN) != 0;
    char dev[24];
    json_key(j, "start");
    json_hex(j, r->start);
    json_key(j, "end");
    json_hex(j, r->end);
    json_key(j, "size");
    json_uint(j, r->end - r->start);
    json_key(j, "perms");
    json_string(j, r->perms);
    json_key(j, "offset");
    json_uint(j, r->offset);
    snprintf(dev, sizeof(dev), "%02x:%02x", r->dev_major, r->dev_minor);
    json_key(j, "dev");
    json_string(j, dev);
    json_key(j, "inode");
    json_uint(j, r->inode);
    cli_json_text(j, "path", r->path, r->path_len);
    json_key(j, "category");
    json_string(j, region_category_name(r->category));
    const char *names[] = {"rss", "pss", "private_dirty", "anonymous", "swap"};
    const uint64_t vals[] = {r->rss, r->pss, r->private_dirty, r->anonymous, r->swap};
    for (int i = 0; i < 5; i++) {
        json_key(j, names[i]);
        if (mem)
            json_uint(j, vals[i]);
        else
            json_null(j);
    }
    json_key(j, "state");
    json_string(j, win ? region_win_state_name(r->state) : NULL);
    json_key(j, "type");
    json_string(j, win ? region_win_type_name(r->type) : NULL);
    json_key(j, "protect");
    if (win)
        json_uint(j, r->protect);
    else
        json_null(j);
    json_key(j, "alloc_base");
    if (win)
        json_hex(j, r->alloc_base);
    else
        json_null(j);
    json_key(j, "alloc_protect");
    if (win)
        json_uint(j, r->alloc_protect);
    else
        json_null(j);
    json_key(j, "deleted");
    json_bool(j, (r->flags & REGION_DELETED) != 0);
}

void cli_json_target(struct json *j, const struct store_target *t)
{
    json_begin_object(j);
    json_key(j, "id");
    json_int(j, t->id);
    json_key(j, "pid");
    json_int(j, t->pid);
    json_key(j, "start_time");
    json_uint(j, t->start_time);
    cli_json_text(j, "exe", t->exe, t->exe ? strlen(t->exe) : 0);
    cli_json_text(j, "cmdline", t->cmdline, t->cmdline ? strlen(t->cmdline) : 0);
    json_key(j, "host");
    json_string(j, t->host);
    json_key(j, "os");
    json_string(j, t->os);
    json_key(j, "first_seen");
    json_string(j, t->first_seen);
    json_end_object(j);
}

void cli_json_snapshot_fields(struct json *j, const struct store_snapshot *s)
{
    json_key(j, "id");
    json_int(j, s->id);
    json_key(j, "seq");
    json_int(j, s->seq);
    json_key(j, "taken_at");
    json_string(j, s->taken_at);
    json_key(j, "label");
    json_string(j, s->label);
    json_key(j, "region_count");
    json_int(j, s->region_count);
    json_key(j, "mapped_bytes");
    json_uint(j, s->mapped_bytes);
    json_key(j, "rss_bytes");
    if (s->have_mem)
        json_uint(j, s->rss_bytes);
    else
        json_null(j);
    json_key(j, "detail");
    json_string(j, s->detail);
    json_key(j, "torn");
    json_bool(j, s->torn);
}
