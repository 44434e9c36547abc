/* Capture backend for systems vmsnap cannot walk yet: everything builds, walks say so. */
#include <stdlib.h>

#include "capture/capture.h"

int capture_open(struct capture **out, int64_t pid, struct err *e)
{
    (void)pid;
    *out = NULL;
    return err_set(e, ERR_UNSUPPORTED, "capturing processes is not supported on this system");
}

const struct capture_target *capture_get_target(const struct capture *c)
{
    (void)c;
    return NULL;
}

int capture_retitle(struct capture *c)
{
    (void)c;
    return 0;
}

int capture_walk(struct capture *c, int detail, const struct region_list **list,
                 struct capture_info *info, struct err *e)
{
    (void)c;
    (void)detail;
    (void)list;
    (void)info;
    return err_set(e, ERR_UNSUPPORTED, "capturing processes is not supported on this system");
}

int capture_check(struct capture *c, struct err *e)
{
    (void)c;
    return err_set(e, ERR_UNSUPPORTED, "capturing processes is not supported on this system");
}

void capture_release_previous(struct capture *c)
{
    (void)c;
}

void capture_close(struct capture *c)
{
    (void)c;
}

int capture_identify(int64_t pid, struct capture_proc *out, struct err *e)
{
    (void)pid;
    (void)out;
    return err_set(e, ERR_UNSUPPORTED, "capturing processes is not supported on this system");
}

int capture_scan_open(struct capture_scan **out, struct err *e)
{
    *out = NULL;
    return err_set(e, ERR_UNSUPPORTED, "listing processes is not supported on this system");
}

int capture_scan_new(struct capture_scan *s, struct capture_seen **v, size_t *n, struct err *e)
{
    (void)s;
    *v = NULL;
    *n = 0;
    return err_set(e, ERR_UNSUPPORTED, "listing processes is not supported on this system");
}

void capture_scan_close(struct capture_scan *s)
{
    (void)s;
}
