/*
 * Pure helpers of the Windows capture backend: turning MEMORY_BASIC_INFORMATION values into
 * vmsnap's region model, and NT device paths into drive-letter paths. They take the documented
 * constant values, not <windows.h>, so they build and are tested on every system.
 */
#ifndef VMSNAP_WINDOWS_REGIONS_H
#define VMSNAP_WINDOWS_REGIONS_H

#include <stddef.h>
#include <stdint.h>

#include "model/region.h"

enum {
    WPAGE_NOACCESS = 0x01,
    WPAGE_READONLY = 0x02,
    WPAGE_READWRITE = 0x04,
    WPAGE_WRITECOPY = 0x08,
    WPAGE_EXECUTE = 0x10,
    WPAGE_EXECUTE_READ = 0x20,
    WPAGE_EXECUTE_READWRITE = 0x40,
    WPAGE_EXECUTE_WRITECOPY = 0x80,
    WPAGE_GUARD = 0x100,
    WMEM_COMMIT = 0x1000,
    WMEM_RESERVE = 0x2000,
    WMEM_FREE = 0x10000,
    WMEM_PRIVATE = 0x20000,
    WMEM_MAPPED = 0x40000,
    WMEM_IMAGE = 0x1000000,
};

/*
 * "rwxp"-style permissions of a Protect value (0 for a reservation: no access). The fourth
 * character is 'g' for a guard page, 'c' for copy-on-write, 's' for a shareable view of a file
 * or section, else 'p'.
 */
void win_protect_perms(uint32_t protect, uint32_t type, char perms[5]);

/* The category VMMap would show, in vmsnap's words (Image, Mapped File -> file, Shareable ->
 * shm, Heap, Stack, Private Data -> anon); committed no-access memory is guard. */
int win_category(uint32_t state, uint32_t type, uint32_t protect, int has_name, int is_heap,
                 int is_stack);

struct win_drive {
    char letter;        /* 'C' */
    const char *device; /* "\\Device\\HarddiskVolume3" */
};

/*
 * Rewrites an NT path ("\\Device\\HarddiskVolume3\\x", or Wine's "\\??\\C:\\x") to a drive-letter
 * path ("C:\\x") when a drive maps to its device; otherwise copies it. Returns out.
 */
char *win_dos_path(const char *nt, const struct win_drive *drives, size_t ndrives, char *out,
                   size_t cap);

#endif
