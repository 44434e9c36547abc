/*
 * Reading a process's small /proc files (stat, text files, the boot id), the stack pointers of its
 * threads (to name the regions that are their stacks), and scanning /proc for processes.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capture/linux_capture.h"
#include "platform/platform.h"
#include "util/xalloc.h"

char *linux_proc_path(const struct capture *c, const char *leaf)
{
    return xasprintf("%s/%lld/%s", c->root, (long long)c->pid, leaf);
}

/* Reads fd from offset 0 (rewinding it when asked) to EOF into *buf. Returns 0 or -errno. */
int linux_read_all_fd(int fd, int rewind, char **buf, size_t *len, size_t *cap)
{
    if (rewind && lseek(fd, 0, SEEK_SET) < 0)
        return -errno;
    *len = 0;
    for (;;) {
        if (*cap - *len < 64 * 1024)
            *buf = xgrow(*buf, cap, *len + 256 * 1024, 1);
        ssize_t n = read(fd, *buf + *len, *cap - *len - 1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        *len += (size_t)n;
    }
    (*buf)[*len] = '\0';
    return 0;
}

int linux_read_all_path(const char *path, char **buf, size_t *len, size_t *cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = linux_read_all_fd(fd, 0, buf, len, cap);
    close(fd);
    return rc;
}

int linux_read_small(struct capture *c, const char *path)
{
    return linux_read_all_path(path, &c->small->p, &c->small->len, &c->small->cap);
}

/* Parses /proc/PID/stat. Fields are counted after the last ')' since comm may hold anything. */
static int stat_parse(const char *text, struct proc_stat *st)
{
    const char *p = strrchr(text, ')');
    if (!p || p[1] != ' ')
        return -1;
    p += 2;
    memset(st, 0, sizeof(*st));
    st->state = *p;
    unsigned long long f[52] = {0};
    int field = 3;
    while (*p && field < 52) {
        while (*p == ' ')
            p++;
        if (field > 3)
            f[field] = strtoull(p, NULL, 10);
        while (*p && *p != ' ')
            p++;
        field++;
    }
    if (field <= 22)
        return -1;
    st->ppid = (int64_t)f[4];
    st->flags = f[9];
    st->start_time = f[22];
    /* startcode, endcode, startstack and arg_start move on every exec (ASLR). */
    snprintf(st->exec_key, sizeof(st->exec_key), "%llx:%llx:%llx:%llx", f[26], f[27], f[28], f[48]);
    return 0;
}

/* Reads the target's stat. Returns 0, ERR_NOPROC when it is gone, or another error. */
int linux_read_stat(struct capture *c, struct proc_stat *st, struct err *e)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%lld/stat", c->root, (long long)c->pid);
    int rc = linux_read_small(c, path);
    if (rc == -ENOENT || rc == -ESRCH)
        return err_set(e, ERR_NOPROC, "no such process '%lld'", (long long)c->pid);
    if (rc < 0)
        return err_set(e, ERR_IO, "cannot read '%s': %s", path, strerror(-rc));
    if (stat_parse(c->small->p, st) < 0)
        return err_set(e, ERR_PARSE, "cannot parse '%s'", path);
    return 0;
}

char *linux_read_text_file(struct capture *c, const char *leaf)
{
    char *path = linux_proc_path(c, leaf);
    int rc = linux_read_small(c, path);
    free(path);
    if (rc < 0 || c->small->len == 0)
        return NULL;
    return xstrndup(c->small->p, c->small->len);
}

/* The boot's id, or "unknown". */
void linux_read_boot_id(struct capture *c, char *out, size_t n)
{
    char *boot = xasprintf("%s/sys/kernel/random/boot_id", c->root);
    int rc = linux_read_small(c, boot);
    free(boot);
    if (rc < 0) {
        snprintf(out, n, "unknown");
        return;
    }
    while (c->small->len && (c->small->p[c->small->len - 1] == '\n'))
        c->small->len--;
    snprintf(out, n, "%.*s", (int)c->small->len, c->small->p);
}

/* The region of l (sorted) holding address a, or NULL. */
static struct region *region_at(struct region_list *l, uint64_t a)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->v[mid].end <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < l->n && l->v[lo].start <= a ? &l->v[lo] : NULL;
}

/* A thread's stack pointer from task/TID/syscall ("NR ARGS... SP PC" while it waits in a
 * system call, "-1 SP PC" while blocked otherwise, "running" while it runs): 0 when unknown. */
static uint64_t thread_sp(struct capture *c, const char *tid)
{
    char *path = xasprintf("%s/%lld/task/%s/syscall", c->root, (long long)c->pid, tid);
    int rc = linux_read_small(c, path);
    free(path);
    if (rc < 0 || c->small->len == 0 || strncmp(c->small->p, "running", 7) == 0)
        return 0;
    /* The second to last word. */
    char *words[9];
    int n = 0;
    for (char *w = strtok(c->small->p, " \n"); w && n < 9; w = strtok(NULL, " \n"))
        words[n++] = w;
    return n >= 3 ? strtoull(words[n - 2], NULL, 16) : 0;
}

/*
 * Names thread stacks after their threads, "thread TID (NAME)": the main thread's [stack], and
 * each other thread's anonymous stack, found by its stack pointer. A thread that is running
 * has no stack pointer to read: its stack keeps the owner the previous walk gave it.
 */
void linux_find_thread_stacks(struct capture *c, struct region_list *l, struct region_list *prev)
{
    char *dir = xasprintf("%s/%lld/task", c->root, (long long)c->pid);
    DIR *d = opendir(dir);
    free(dir);
    if (!d)
        return;
    struct dirent *de;
    char owner[512];
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        char *path = xasprintf("%s/%lld/task/%s/comm", c->root, (long long)c->pid, de->d_name);
        int rc = linux_read_small(c, path);
        free(path);
        if (rc < 0)
            continue;
        int len = (int)strcspn(c->small->p, "\n");
        snprintf(owner, sizeof(owner), "thread %s (%.*s)", de->d_name, len, c->small->p);
        struct region *r = NULL;
        if (strtoll(de->d_name, NULL, 10) == c->pid) {
            for (size_t i = 0; i < l->n && !r; i++)
                if (l->v[i].path && strcmp(l->v[i].path, "[stack]") == 0)
                    r = &l->v[i];
        } else {
            uint64_t sp = thread_sp(c, de->d_name);
            r = sp ? region_at(l, sp) : NULL;
            if (r && (r->path || r->perms[1] != 'w'))
                r = NULL; /* a thread's stack is anonymous and writable */
            if (!sp && prev) {
                /* Running: the stack the last walk named after it, if it is still there. */
                size_t olen = strlen(owner);
                for (size_t i = 0; i < prev->n && !r; i++) {
                    const struct region *o = &prev->v[i];
                    if (o->owner && o->owner_len == olen && memcmp(o->owner, owner, olen) == 0) {
                        struct region *same = region_at(l, o->start);
                        if (same && same->start == o->start && same->end == o->end)
                            r = same;
                    }
                }
            }
        }
        if (r) {
            r->category = CAT_STACK;
            region_set_owner(l, r, owner, strlen(owner));
        }
    }
    closedir(d);
}

struct capture_scan {
    struct capture probe; /* root, buffer and pid for read_stat */
    struct linux_buf buf;
    struct capture_pidset known;
};

int capture_scan_open(struct capture_scan **out, struct err *e)
{
    return capture_scan_open_at(out, "/proc", e);
}

int capture_scan_open_at(struct capture_scan **out, const char *proc_root, struct err *e)
{
    (void)e;
    struct capture_scan *s = xcalloc(1, sizeof(*s));
    s->probe.root = xstrdup(proc_root ? proc_root : "/proc");
    s->probe.maps_fd = -1;
    s->probe.small = &s->buf;
    *out = s;
    return 0;
}

int capture_scan_new(struct capture_scan *s, struct capture_seen **v, size_t *n, struct err *e)
{
    *v = NULL;
    *n = 0;
    DIR *d = opendir(s->probe.root);
    if (!d)
        return err_set(e, ERR_IO, "cannot list '%s': %s", s->probe.root, strerror(errno));
    int64_t *cur = NULL;
    size_t ncur = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char *end;
        long long pid = strtoll(de->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        cur = xgrow(cur, &cap, ncur + 1, sizeof(*cur));
        cur[ncur++] = pid;
    }
    closedir(d);
    size_t fresh = capture_pidset_update(&s->known, cur, ncur);
    if (fresh)
        *v = xmalloc(fresh * sizeof(**v));
    for (size_t i = 0; i < fresh; i++) {
        struct proc_stat st;
        s->probe.pid = cur[i];
        /* Gone since the listing: nothing to follow. */
        if (linux_read_stat(&s->probe, &st, NULL) < 0)
            continue;
        (*v)[*n].pid = cur[i];
        (*v)[*n].ppid = st.ppid;
        (*v)[*n].start_time = st.start_time;
        (*n)++;
    }
    free(cur);
    return 0;
}

void capture_scan_close(struct capture_scan *s)
{
    if (!s)
        return;
    free(s->buf.p);
    free(s->probe.root);
    free(s->known.v);
    free(s);
}
