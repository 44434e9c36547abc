/* The Linux capture backend's state, shared by linux_capture.c and linux_proc.c; not part of
 * the capture interface. */
#ifndef VMSNAP_LINUX_CAPTURE_H
#define VMSNAP_LINUX_CAPTURE_H

#include <stddef.h>
#include <stdint.h>

#include "capture/capture.h"
#include "util/siphash.h"

#define PF_KTHREAD 0x00200000

#define TORN_RETRIES 4

struct proc_stat {
    char state;
    int64_t ppid;
    uint64_t flags;
    uint64_t start_time; /* clock ticks after boot */
    char exec_key[96];
};

/* What a read fills, for its reader to be done with before the next read. */
struct linux_buf {
    char *p;
    size_t len, cap;
};

struct capture {
    char *root; /* "/proc" */
    int64_t pid;
    int maps_fd;
    int have_query; /* PROCMAP_QUERY works on this kernel */
    struct capture_target target;
    struct region_list lists[2];
    int cur;         /* index of the list returned by the last walk, or -1 */
    int last_detail; /* detail of the last successful walk */
    /* The length and keyed hash of the last walk's maps text, to spot an unchanged target
     * without keeping its text: valid while text_of is the list parsed from it (else -1). */
    size_t text_len;
    struct siphash_tag text_tag;
    int text_of;
    struct linux_buf *small; /* the small files read (stat, smaps_rollup, ...): every capture's */
    int has_vsyscall;
    uint32_t last_flags; /* capture flags of the last walk */
};

/* capture_open, capture_identify and capture_scan_open against another /proc tree (a test's
 * fixture); the others read /proc. */
int capture_open_at(struct capture **out, const char *proc_root, int64_t pid, struct err *e);
int capture_identify_at(const char *proc_root, int64_t pid, struct capture_proc *out,
                        struct err *e);
int capture_scan_open_at(struct capture_scan **out, const char *proc_root, struct err *e);

/* root/PID/leaf (caller frees). */
char *linux_proc_path(const struct capture *c, const char *leaf);
/* Reads all of fd (from its start when rewind) into *buf: 0 or -errno. */
int linux_read_all_fd(int fd, int rewind, char **buf, size_t *len, size_t *cap);
int linux_read_all_path(const char *path, char **buf, size_t *len, size_t *cap);
/* Reads path into c->small: 0 or -errno. */
int linux_read_small(struct capture *c, const char *path);
/* The target's /proc/PID/stat: 0, or an error naming the process. */
int linux_read_stat(struct capture *c, struct proc_stat *st, struct err *e);
/* A small text file of the target's, NUL-terminated (caller frees), or NULL. */
char *linux_read_text_file(struct capture *c, const char *leaf);
void linux_read_boot_id(struct capture *c, char *out, size_t n);
/* Names the regions of l that hold a thread's stack pointer (prev: the last walk's list). */
void linux_find_thread_stacks(struct capture *c, struct region_list *l, struct region_list *prev);

#endif
