#include "capture/linux_procmap.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/ioctl.h>

#include "capture/maps_parse.h"

/* From include/uapi/linux/fs.h (Linux 6.11); declared here for older installed headers. */
struct vmsnap_procmap_query {
    uint64_t size;
    uint64_t query_flags;
    uint64_t query_addr;
    uint64_t vma_start;
    uint64_t vma_end;
    uint64_t vma_flags;
    uint64_t vma_page_size;
    uint64_t vma_offset; /* bytes */
    uint64_t inode;
    uint32_t dev_major;
    uint32_t dev_minor;
    uint32_t vma_name_size; /* bytes, including the NUL */
    uint32_t build_id_size;
    uint64_t vma_name_addr;
    uint64_t build_id_addr;
};

enum {
    PQ_VMA_READABLE = 0x01,
    PQ_VMA_WRITABLE = 0x02,
    PQ_VMA_EXECUTABLE = 0x04,
    PQ_VMA_SHARED = 0x08,
    PQ_COVERING_OR_NEXT_VMA = 0x10,
};

#define VMSNAP_PROCMAP_QUERY _IOWR('f', 17, struct vmsnap_procmap_query)

_Static_assert(sizeof(struct vmsnap_procmap_query) == 104, "procmap_query ABI is 104 bytes");

int procmap_probe(int maps_fd)
{
    struct vmsnap_procmap_query q;
    memset(&q, 0, sizeof(q));
    q.size = sizeof(q);
    q.query_flags = PQ_COVERING_OR_NEXT_VMA;
    if (ioctl(maps_fd, VMSNAP_PROCMAP_QUERY, &q) == 0)
        return 1;
    /* ENOENT means the ioctl exists but found no VMA (an exiting target). */
    return errno == ENOENT ? 1 : 0;
}

int procmap_query_one(int maps_fd, uint64_t addr, int next, struct region_list *out,
                      struct region *r, struct err *e)
{
    char name[PATH_MAX + 64];
    struct vmsnap_procmap_query q;
    memset(&q, 0, sizeof(q));
    q.size = sizeof(q);
    q.query_flags = next ? PQ_COVERING_OR_NEXT_VMA : 0;
    q.query_addr = addr;
    q.vma_name_size = sizeof(name);
    q.vma_name_addr = (uint64_t)(uintptr_t)name;
    if (ioctl(maps_fd, VMSNAP_PROCMAP_QUERY, &q) < 0) {
        if (errno == ENOENT)
            return 1;
        if (errno == ESRCH)
            return err_set(e, ERR_EXITED, "process exited during the walk");
        return err_set(e, ERR_IO, "PROCMAP_QUERY at 0x%llx failed: %s", (unsigned long long)addr,
                       strerror(errno));
    }
    memset(r, 0, sizeof(*r));
    r->start = q.vma_start;
    r->end = q.vma_end;
    r->offset = q.vma_offset;
    r->inode = q.inode;
    r->dev_major = q.dev_major;
    r->dev_minor = q.dev_minor;
    r->perms[0] = (q.vma_flags & PQ_VMA_READABLE) ? 'r' : '-';
    r->perms[1] = (q.vma_flags & PQ_VMA_WRITABLE) ? 'w' : '-';
    r->perms[2] = (q.vma_flags & PQ_VMA_EXECUTABLE) ? 'x' : '-';
    r->perms[3] = (q.vma_flags & PQ_VMA_SHARED) ? 's' : 'p';
    r->perms[4] = '\0';
    if (q.vma_name_size > 1) {
        /* The size counts the NUL; the name is raw bytes, never escaped. */
        maps_set_name(out, r, name, q.vma_name_size - 1, 0);
    }
    return 0;
}

int procmap_walk(int maps_fd, struct region_list *out, struct err *e)
{
    uint64_t addr = 0;
    for (;;) {
        struct region r;
        int rc = procmap_query_one(maps_fd, addr, 1, out, &r, e);
        if (rc < 0)
            return rc;
        if (rc == 1)
            return 0;
        *region_list_push(out) = r;
        if (r.end <= addr)
            return err_set(e, ERR_IO, "PROCMAP_QUERY walk did not advance at 0x%llx",
                           (unsigned long long)addr);
        addr = r.end;
    }
}
