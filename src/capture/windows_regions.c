#include "capture/windows_regions.h"

#include <stdio.h>
#include <string.h>

void win_protect_perms(uint32_t protect, uint32_t type, char perms[5])
{
    uint32_t base = protect & 0xff;
    const char *rwx;
    switch (base) {
    case WPAGE_READONLY:
        rwx = "r--";
        break;
    case WPAGE_READWRITE:
    case WPAGE_WRITECOPY:
        rwx = "rw-";
        break;
    case WPAGE_EXECUTE:
        rwx = "--x";
        break;
    case WPAGE_EXECUTE_READ:
        rwx = "r-x";
        break;
    case WPAGE_EXECUTE_READWRITE:
    case WPAGE_EXECUTE_WRITECOPY:
        rwx = "rwx";
        break;
    default: /* PAGE_NOACCESS, or 0 for a reservation */
        rwx = "---";
    }
    memcpy(perms, rwx, 3);
    if (protect & WPAGE_GUARD)
        perms[3] = 'g';
    else if (base == WPAGE_WRITECOPY || base == WPAGE_EXECUTE_WRITECOPY)
        perms[3] = 'c';
    else if (type == WMEM_MAPPED || type == WMEM_IMAGE)
        perms[3] = 's';
    else
        perms[3] = 'p';
    perms[4] = '\0';
}

int win_category(uint32_t state, uint32_t type, uint32_t protect, int has_name, int is_heap,
                 int is_stack)
{
    if (is_stack)
        return CAT_STACK;
    if (is_heap)
        return CAT_HEAP;
    if (type == WMEM_IMAGE)
        return CAT_IMAGE;
    if (type == WMEM_MAPPED)
        return has_name ? CAT_FILE : CAT_SHM;
    if (state == WMEM_COMMIT && ((protect & 0xff) == WPAGE_NOACCESS || (protect & WPAGE_GUARD)))
        return CAT_GUARD;
    /* Private address space reserved and not committed: VMMap's Reserved. */
    if (state == WMEM_RESERVE)
        return CAT_RESERVE;
    return CAT_ANON;
}

char *win_dos_path(const char *nt, const struct win_drive *drives, size_t ndrives, char *out,
                   size_t cap)
{
    /* Wine (and some APIs) give "\\??\\C:\\..." : the drive letter is already there. */
    if (strncmp(nt, "\\??\\", 4) == 0 && nt[4] && nt[5] == ':') {
        snprintf(out, cap, "%s", nt + 4);
        return out;
    }
    for (size_t i = 0; i < ndrives; i++) {
        size_t n = strlen(drives[i].device);
        if (n && strncmp(nt, drives[i].device, n) == 0 && (nt[n] == '\\' || nt[n] == '\0')) {
            snprintf(out, cap, "%c:%s", drives[i].letter, nt + n);
            return out;
        }
    }
    snprintf(out, cap, "%s", nt);
    return out;
}
