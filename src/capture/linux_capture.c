/*
 * Linux capture backend: /proc/PID/maps (hand-parsed), smaps, smaps_rollup, and PROCMAP_QUERY
 * where it is better than text (raw names; a consistent walk when text reads stay torn).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capture/capture.h"
#include "capture/linux_procmap.h"
#include "capture/linux_capture.h"
#include "capture/maps_parse.h"
#include "platform/platform.h"
#include "util/xalloc.h"

/* The arguments joined by spaces; NULL when there are none (a kernel thread, a zombie). */
static char *read_cmdline(struct capture *c)
{
    char *s = linux_read_text_file(c, "cmdline");
    if (!s)
        return NULL;
    size_t len = c->small->len;
    while (len > 0 && s[len - 1] == '\0')
        len--;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\0')
            s[i] = ' ';
    if (!len) {
        free(s);
        return NULL;
    }
    return s;
}

static void fill_target(struct capture *c, const struct proc_stat *st)
{
    struct capture_target *t = &c->target;
    t->pid = c->pid;
    t->start_time = st->start_time;
    t->exec_key = xstrdup(st->exec_key);
    t->os = "linux";

    char boot[64];
    linux_read_boot_id(c, boot, sizeof(boot));
    t->boot_id = xstrdup(boot);

    char *exe = linux_proc_path(c, "exe");
    char link[4096];
    ssize_t n = readlink(exe, link, sizeof(link) - 1);
    free(exe);
    t->exe = n > 0 ? xstrndup(link, (size_t)n) : NULL;

    t->cmdline = read_cmdline(c);
    char host[256];
    plat_hostname(host, sizeof(host));
    t->host = xstrdup(host);
}

static int check_alive(struct capture *c, const struct proc_stat *st, struct err *e)
{
    if (st->state == 'Z' || st->state == 'X')
        return err_set(e, ERR_ZOMBIE, "process %lld is a zombie: it has no address space left",
                       (long long)c->pid);
    if (st->flags & PF_KTHREAD)
        return err_set(e, ERR_KTHREAD,
                       "process %lld is a kernel thread: it has no user address space",
                       (long long)c->pid);
    return 0;
}

static int open_maps(struct capture *c, struct err *e)
{
    char *path = linux_proc_path(c, "maps");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int saved = errno;
    free(path);
    if (fd < 0) {
        if (saved == EACCES || saved == EPERM)
            return err_set(e, ERR_PERM,
                           "cannot read the memory map of process %lld: permission denied -- "
                           "root or CAP_SYS_PTRACE is needed",
                           (long long)c->pid);
        if (saved == ENOENT || saved == ESRCH)
            return err_set(e, ERR_NOPROC, "no such process '%lld'", (long long)c->pid);
        return err_set(e, ERR_IO, "cannot open the memory map of process %lld: %s",
                       (long long)c->pid, strerror(saved));
    }
    c->maps_fd = fd;
    return 0;
}

/*
 * What a walk reads into and is done with when it returns (the maps text, smaps a piece at a
 * time, the small files): buffers for all the captures open, as the recorder walks one process
 * at a time, so a tree of followed processes holds one of each and not one each. Freed with the
 * last capture.
 */
static char *scratch;
static size_t scratch_cap;
static struct linux_buf small;
static size_t captures_open;

/* The key of the maps text's hash: random, so that no process can choose a text that hashes
 * like its last one and hide a change. Without one, every walk parses. */
static unsigned char text_key[16];
static int have_text_key;

int capture_open(struct capture **out, int64_t pid, struct err *e)
{
    return capture_open_at(out, "/proc", pid, e);
}

int capture_open_at(struct capture **out, const char *proc_root, int64_t pid, struct err *e)
{
    struct capture *c = xcalloc(1, sizeof(*c));
    struct proc_stat st;
    int rc;
    captures_open++;
    c->root = xstrdup(proc_root ? proc_root : "/proc");
    c->pid = pid;
    c->maps_fd = -1;
    c->cur = -1;
    c->text_of = -1;
    c->small = &small;
    if (!have_text_key)
        have_text_key = getrandom(text_key, sizeof(text_key), 0) == (ssize_t)sizeof(text_key);
    region_list_init(&c->lists[0]);
    region_list_init(&c->lists[1]);
    *out = NULL;
    if (pid <= 0) {
        rc = err_set(e, ERR_NOPROC, "no such process '%lld'", (long long)pid);
        goto fail;
    }
    rc = linux_read_stat(c, &st, e);
    if (rc < 0)
        goto fail;
    rc = check_alive(c, &st, e);
    if (rc < 0)
        goto fail;
    rc = open_maps(c, e);
    if (rc < 0)
        goto fail;
    c->have_query = procmap_probe(c->maps_fd);
    fill_target(c, &st);
    *out = c;
    return 0;
fail:
    capture_close(c);
    return rc;
}

const struct capture_target *capture_get_target(const struct capture *c)
{
    return &c->target;
}

int capture_retitle(struct capture *c)
{
    return capture_target_retitle(&c->target, read_cmdline(c));
}

void capture_release_previous(struct capture *c)
{
    if (c->cur < 0)
        return;
    /* The next walk that fills it finds it empty; its gen still only goes up. */
    struct region_list *l = &c->lists[1 - c->cur];
    uint64_t gen = l->gen;
    region_list_release(l);
    l->gen = gen + 1;
}

void capture_close(struct capture *c)
{
    if (!c)
        return;
    if (c->maps_fd >= 0)
        close(c->maps_fd);
    region_list_release(&c->lists[0]);
    region_list_release(&c->lists[1]);
    free(c->root);
    free(c->target.boot_id);
    free(c->target.exe);
    free(c->target.cmdline);
    free(c->target.exec_key);
    free(c->target.host);
    free(c);
    if (--captures_open == 0) {
        free(scratch);
        scratch = NULL;
        scratch_cap = 0;
        free(small.p);
        memset(&small, 0, sizeof(small));
    }
}

/* Compares the target's identity now with what it was at open. */
static int check_same_target(struct capture *c, const struct proc_stat *st, int during,
                             struct err *e)
{
    if (st->start_time != c->target.start_time)
        return err_set(e, ERR_EXITED, "process %lld exited%s (its pid was reused)",
                       (long long)c->pid, during ? " during the walk" : "");
    if (st->state == 'Z' || st->state == 'X')
        return err_set(e, ERR_EXITED, "process %lld exited%s", (long long)c->pid,
                       during ? " during the walk" : "");
    if (strcmp(st->exec_key, c->target.exec_key) != 0)
        return err_set(e, ERR_EXECED, "process %lld replaced its program (exec)%s",
                       (long long)c->pid, during ? " during the walk" : "");
    return 0;
}

static int stat_now(struct capture *c, int during, struct err *e)
{
    struct proc_stat st;
    int rc = linux_read_stat(c, &st, e);
    if (rc == ERR_NOPROC)
        return err_set(e, ERR_EXITED, "process %lld exited%s", (long long)c->pid,
                       during ? " during the walk" : "");
    if (rc < 0)
        return rc;
    return check_same_target(c, &st, during, e);
}

int capture_identify(int64_t pid, struct capture_proc *out, struct err *e)
{
    return capture_identify_at("/proc", pid, out, e);
}

int capture_identify_at(const char *proc_root, int64_t pid, struct capture_proc *out, struct err *e)
{
    struct capture c;
    struct linux_buf buf = {0};
    struct proc_stat st;
    memset(&c, 0, sizeof(c));
    c.small = &buf;
    c.root = (char *)(proc_root ? proc_root : "/proc");
    c.pid = pid;
    memset(out, 0, sizeof(*out));
    int rc = pid > 0 ? linux_read_stat(&c, &st, e)
                     : err_set(e, ERR_NOPROC, "no such process '%lld'", (long long)pid);
    if (rc == 0 && (st.state == 'Z' || st.state == 'X'))
        rc = err_set(e, ERR_NOPROC, "process %lld has exited", (long long)pid);
    if (rc == 0) {
        out->pid = pid;
        out->start_time = st.start_time;
        linux_read_boot_id(&c, out->boot_id, sizeof(out->boot_id));
        plat_hostname(out->host, sizeof(out->host));
    }
    free(buf.p);
    return rc;
}

int capture_check(struct capture *c, struct err *e)
{
    return stat_now(c, 0, e);
}

/*
 * The kernel appends " (deleted)" to unlinked files, but a file may also be named that way.
 * If the full name still resolves in the target's root to the mapped inode, it is a real name.
 */
static void resolve_deleted_suffix(struct capture *c, struct region_list *l, struct region *r)
{
    char *full = xasprintf("%s/%lld/root%.*s (deleted)", c->root, (long long)c->pid,
                           (int)r->path_len, r->path);
    struct stat sb;
    if (stat(full, &sb) == 0 && (uint64_t)sb.st_ino == r->inode) {
        char *name = xasprintf("%.*s (deleted)", (int)r->path_len, r->path);
        r->path = region_list_intern(l, name, strlen(name));
        r->path_len = (uint32_t)strlen(name);
        r->flags &= ~(uint32_t)REGION_DELETED;
        free(name);
    }
    r->flags &= ~(uint32_t)REGION_NAME_SUFFIX;
    free(full);
}

/* Settles what the text left ambiguous: "\012" (ask PROCMAP_QUERY for the raw name), " (deleted)".
 */
static void resolve_names(struct capture *c, struct region_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        struct region *r = &l->v[i];
        if ((r->flags & REGION_NAME_ESCAPED) && c->have_query) {
            struct region q;
            if (procmap_query_one(c->maps_fd, r->start, 0, l, &q, NULL) == 0 &&
                q.start == r->start && q.end == r->end) {
                r = &l->v[i];
                r->path = q.path;
                r->path_len = q.path_len;
                r->flags = (r->flags & ~(uint32_t)(REGION_DELETED | REGION_NAME_SUFFIX)) |
                           (q.flags & (REGION_DELETED | REGION_NAME_SUFFIX));
                r->flags &= ~(uint32_t)REGION_NAME_ESCAPED;
            }
        }
        if (r->flags & REGION_NAME_SUFFIX)
            resolve_deleted_suffix(c, l, r);
    }
}

static int read_rollup(struct capture *c, struct capture_info *info, struct err *e)
{
    char *path = linux_proc_path(c, "smaps_rollup");
    int rc = linux_read_small(c, path);
    free(path);
    if (rc == -ENOENT || rc == -ESRCH)
        return err_set(e, ERR_EXITED, "process %lld exited during the walk", (long long)c->pid);
    if (rc < 0)
        return err_set(e, ERR_IO, "cannot read smaps_rollup of process %lld: %s", (long long)c->pid,
                       strerror(-rc));
    if (c->small->len == 0)
        return err_set(e, ERR_EXITED, "process %lld exited during the walk", (long long)c->pid);
    rc = rollup_parse(c->small->p, c->small->len, &info->totals, e);
    if (rc < 0)
        return err_wrap(e, "smaps_rollup of process %lld", (long long)c->pid);
    info->have_totals = 1;
    return 0;
}

/* Turns a failed read of the target's memory map (-errno) into its error. */
static int read_error(struct capture *c, int rc, struct err *e)
{
    if (rc == -ESRCH || rc == -ENOENT)
        return err_set(e, ERR_EXITED, "process %lld exited during the walk", (long long)c->pid);
    if (rc == -EACCES || rc == -EPERM)
        return err_set(e, ERR_PERM,
                       "cannot read the memory map of process %lld: permission denied -- "
                       "root or CAP_SYS_PTRACE is needed",
                       (long long)c->pid);
    return err_set(e, ERR_IO, "cannot read the memory map of process %lld: %s", (long long)c->pid,
                   strerror(-rc));
}

/* The maps text is read this much at a time. */
#define MAPS_PIECE (256 * 1024)

/* Reads the maps text into scratch[0..*len), NUL-terminated. */
static int read_maps_text(struct capture *c, size_t *len, struct err *e)
{
    size_t pos = 0;
    if (lseek(c->maps_fd, 0, SEEK_SET) < 0)
        return read_error(c, -errno, e);
    for (;;) {
        if (scratch_cap - pos < MAPS_PIECE / 4 + 1)
            scratch = xgrow(scratch, &scratch_cap, pos + MAPS_PIECE + 1, 1);
        ssize_t n = read(c->maps_fd, scratch + pos, scratch_cap - pos - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return read_error(c, -errno, e);
        if (n == 0)
            break;
        pos += (size_t)n;
    }
    scratch[pos] = '\0';
    *len = pos;
    return 0;
}

/* smaps is read a piece at a time (it is ~25 lines a region: ~45 MiB at 60,000 regions). */
#define SMAPS_PIECE (256 * 1024)

/*
 * Reads and parses smaps into l through a buffer of SMAPS_PIECE (larger only for a line that
 * does not fit). *got is how many bytes the kernel gave.
 */
static int read_smaps(struct capture *c, struct region_list *l, size_t *got, struct err *e)
{
    char *path = linux_proc_path(c, "smaps");
    *got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    if (fd < 0)
        return read_error(c, -errno, e);
    struct smaps_parser sp;
    smaps_parser_init(&sp, l);
    /* About as many regions as the last walk saw: the list is sized once, not regrown. */
    if (c->cur >= 0 && &c->lists[c->cur] != l)
        region_list_reserve(l, c->lists[c->cur].n + c->lists[c->cur].n / 16);
    size_t have = 0;
    int rc = 0;
    for (;;) {
        if (scratch_cap - have < SMAPS_PIECE / 4)
            scratch = xgrow(scratch, &scratch_cap, have + SMAPS_PIECE, 1);
        ssize_t n = read(fd, scratch + have, scratch_cap - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = read_error(c, -errno, e);
            break;
        }
        have += (size_t)n;
        *got += (size_t)n;
        size_t used = 0;
        if ((rc = smaps_parse_lines(&sp, scratch, have, n == 0, &used, e)) < 0 || n == 0)
            break;
        memmove(scratch, scratch + used, have - used);
        have -= used;
    }
    close(fd);
    return rc;
}

/* Reads and parses until the list is sorted and disjoint, or the retries run out. Returns 0,
 * 1 when the read was empty (the caller decides what that means), or an error. */
static int walk_text(struct capture *c, int detail, int k, struct capture_info *info, struct err *e)
{
    struct region_list *l = &c->lists[k];
    for (unsigned attempt = 0;; attempt++) {
        int rc;
        if (detail == DETAIL_SMAPS) {
            size_t got;
            region_list_clear(l);
            rc = read_smaps(c, l, &got, e);
            if (rc == ERR_PARSE)
                return err_wrap(e, "smaps of process %lld", (long long)c->pid);
            if (rc < 0)
                return rc;
            c->text_of = -1; /* smaps is not compared with the last walk's */
            if (!got)
                return 1;
        } else {
            size_t len = 0;
            if ((rc = read_maps_text(c, &len, e)) < 0)
                return rc;
            if (len == 0)
                return 1;
            /* The common steady tick is byte for byte what the last walk read and parsed: its
             * length and 128-bit keyed hash say so (keeping each process's text would cost
             * ~75 bytes a region in a followed tree). */
            struct siphash_tag tag = {0, 0};
            if (have_text_key)
                tag = siphash128(text_key, scratch, len);
            if (have_text_key && c->cur >= 0 && c->cur != k && c->text_of == c->cur &&
                c->last_detail == detail && len == c->text_len && tag.lo == c->text_tag.lo &&
                tag.hi == c->text_tag.hi) {
                info->unchanged = 1;
                info->flags |= c->last_flags & CAPTURE_TORN;
                return 0;
            }
            region_list_clear(l);
            rc = maps_parse(scratch, len, l, e);
            c->text_len = len;
            c->text_tag = tag;
            c->text_of = rc < 0 ? -1 : k;
        }
        if (rc < 0)
            return err_wrap(e, "maps of process %lld", (long long)c->pid);
        if (region_list_first_disorder(l) == l->n)
            return 0;
        /* Torn read: the target changed its mappings while the kernel printed them. */
        info->flags |= CAPTURE_RETRIED;
        if (attempt >= TORN_RETRIES)
            break;
        info->retries++;
        plat_sleep_ms(1L << attempt);
    }
    if (detail != DETAIL_SMAPS && c->have_query) {
        /* A PROCMAP_QUERY walk cannot go backwards or overlap: each query starts at the last end.
         */
        region_list_clear(l);
        int rc = procmap_walk(c->maps_fd, l, e);
        if (rc < 0)
            return rc;
        if (c->has_vsyscall) {
            /* The gate area is not a VMA, so the ioctl never returns it; the text always does. */
            struct region *r = region_list_push(l);
            r->start = 0xffffffffff600000ULL;
            r->end = 0xffffffffff601000ULL;
            memcpy(r->perms, "--xp", 5);
            r->path = region_list_intern(l, "[vsyscall]", 10);
            r->path_len = 10;
        }
        info->method = "procmap_query";
        c->text_of = -1; /* no text to compare the next walk with */
        return 0;
    }
    region_list_sanitize(l);
    info->flags |= CAPTURE_TORN;
    return 0;
}

int capture_walk(struct capture *c, int detail, const struct region_list **list,
                 struct capture_info *info, struct err *e)
{
    memset(info, 0, sizeof(*info));
    info->detail = detail;
    info->method = detail == DETAIL_SMAPS ? "smaps" : "maps";
    info->taken_at_ms = plat_realtime_ms();
    /*
     * The maps file stays open, and an open maps file reads the address space it was opened on:
     * once the process has exited or replaced its program, or its pid is another's, it reads as
     * empty. So /proc/PID/stat is read once, after everything else: it says whether an empty
     * read was an exit or an exec, whether a process dying mid-read was cut short, and that the
     * files opened by name (smaps, smaps_rollup) were the target's.
     */
    int k = c->cur < 0 ? 0 : 1 - c->cur;
    int empty = walk_text(c, detail, k, info, e);
    if (empty < 0)
        return empty;
    int rc;
    if (empty) {
        if ((rc = stat_now(c, 0, e)) < 0)
            return rc;
        /* every live process has mappings; this one is on its way out */
        return err_set(e, ERR_EXITED, "process %lld exited during the walk", (long long)c->pid);
    }

    struct region_list *l = &c->lists[k];
    if (info->unchanged) {
        /* The previous list, names already resolved, still holds. */
        k = c->cur;
        l = &c->lists[k];
    } else {
        if (l->n && l->v[l->n - 1].start == 0xffffffffff600000ULL)
            c->has_vsyscall = 1;
        resolve_names(c, l);
        region_list_classify(l);
        linux_find_thread_stacks(c, l, c->cur >= 0 ? &c->lists[c->cur] : NULL);
    }
    if (detail == DETAIL_ROLLUP) {
        rc = read_rollup(c, info, e);
        if (rc < 0)
            return rc;
    } else if (detail == DETAIL_SMAPS) {
        region_list_mem_totals(l, &info->totals);
        info->have_totals = 1;
    }
    if ((rc = stat_now(c, 1, e)) < 0)
        return rc;
    c->cur = k;
    c->last_detail = detail;
    c->last_flags = info->flags;
    *list = l;
    return 0;
}
