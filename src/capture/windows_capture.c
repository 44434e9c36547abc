/*
 * Windows capture backend: walks a process with VirtualQueryEx from address 0, the way
 * Sysinternals VMMap does, names image and mapped views with GetMappedFileNameW, finds heaps in
 * the PEB and thread stacks in the TEBs, and reads per-region working sets with
 * QueryWorkingSetEx when per-region detail is asked for.
 */
#include <windows.h>

#include <psapi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tlhelp32.h>

#include "capture/capture.h"
#include "capture/windows_regions.h"
#include "platform/platform.h"
#include "util/xalloc.h"

typedef LONG(NTAPI *nt_query_process_fn)(HANDLE, ULONG, PVOID, ULONG, PULONG);
typedef LONG(NTAPI *nt_query_thread_fn)(HANDLE, ULONG, PVOID, ULONG, PULONG);
typedef LONG(NTAPI *nt_query_system_fn)(ULONG, PVOID, ULONG, PULONG);

struct capture {
    HANDLE h;
    int64_t pid;
    struct capture_target target;
    struct region_list lists[2];
    int cur;
    struct win_drive drives[26];
    char device_names[26][MAX_PATH];
    size_t ndrives;
    uint64_t *heaps, *stacks; /* allocation bases */
    uint64_t *stack_tids;     /* the thread of each stack */
    size_t nheaps, nstacks;
};

static int os_error(struct err *e, DWORD code, int64_t pid, const char *what)
{
    if (code == ERROR_ACCESS_DENIED)
        return err_set(e, ERR_PERM,
                       "cannot %s process %lld: access denied -- run vmsnap as the same user or "
                       "as Administrator",
                       what, (long long)pid);
    if (code == ERROR_INVALID_PARAMETER)
        return err_set(e, ERR_NOPROC, "no such process '%lld'", (long long)pid);
    return err_set(e, ERR_IO, "cannot %s process %lld: error %lu", what, (long long)pid,
                   (unsigned long)code);
}

static int alive(struct capture *c)
{
    DWORD code = 0;
    return GetExitCodeProcess(c->h, &code) && code == STILL_ACTIVE &&
           WaitForSingleObject(c->h, 0) == WAIT_TIMEOUT;
}

static void load_drives(struct capture *c)
{
    c->ndrives = 0;
    for (char l = 'A'; l <= 'Z'; l++) {
        wchar_t dev[3] = {(wchar_t)l, L':', 0}, target[MAX_PATH];
        if (!QueryDosDeviceW(dev, target, MAX_PATH))
            continue;
        char *t = plat_utf8_of_wide(target, -1);
        snprintf(c->device_names[c->ndrives], MAX_PATH, "%s", t);
        free(t);
        c->drives[c->ndrives].letter = l;
        c->drives[c->ndrives].device = c->device_names[c->ndrives];
        c->ndrives++;
    }
}

static char *boot_id(void)
{
    /* SystemTimeOfDayInformation: the boot time, exact, in 100-ns units since 1601. */
    struct {
        LARGE_INTEGER boot, current, bias;
        ULONG zone, reserved;
        ULONGLONG boot_bias, sleep_bias;
    } tod;
    nt_query_system_fn q = (nt_query_system_fn)(void *)GetProcAddress(GetModuleHandleA("ntdll.dll"),
                                                                      "NtQuerySystemInformation");
    memset(&tod, 0, sizeof(tod));
    if (q && q(3, &tod, sizeof(tod), NULL) == 0 && tod.boot.QuadPart)
        return xasprintf("windows-boot-%lld", (long long)tod.boot.QuadPart);
    return xstrdup("windows-boot-unknown");
}

/* The PEB's address, or NULL. */
static void *peb_of(HANDLE h)
{
    struct {
        LONG status;
        PVOID peb;
        ULONG_PTR affinity;
        LONG priority;
        ULONG_PTR pid, parent;
    } pbi;
    nt_query_process_fn q = (nt_query_process_fn)(void *)GetProcAddress(
        GetModuleHandleA("ntdll.dll"), "NtQueryInformationProcess");
    if (!q || q(h, 0, &pbi, sizeof(pbi), NULL) != 0)
        return NULL;
    return pbi.peb;
}

/* The command line, from the 64-bit PEB: ProcessParameters (0x20), then its CommandLine
 * UNICODE_STRING (0x70: length in bytes, then the buffer's address at 0x78). */
static char *read_cmdline(struct capture *c)
{
    char *peb = peb_of(c->h);
    uint64_t params = 0, buffer = 0;
    USHORT len = 0;
    SIZE_T got;
    if (!peb || !ReadProcessMemory(c->h, peb + 0x20, &params, sizeof(params), &got) || !params ||
        !ReadProcessMemory(c->h, (char *)(uintptr_t)params + 0x70, &len, sizeof(len), &got) ||
        !ReadProcessMemory(c->h, (char *)(uintptr_t)params + 0x78, &buffer, sizeof(buffer), &got) ||
        !len || !buffer)
        return NULL;
    wchar_t *w = xmalloc((size_t)len + sizeof(wchar_t));
    char *out = NULL;
    if (ReadProcessMemory(c->h, (void *)(uintptr_t)buffer, w, len, &got))
        out = plat_utf8_of_wide(w, (int)(got / sizeof(wchar_t)));
    free(w);
    return out;
}

static void fill_target(struct capture *c, FILETIME created)
{
    struct capture_target *t = &c->target;
    t->pid = c->pid;
    t->start_time = ((uint64_t)created.dwHighDateTime << 32) | created.dwLowDateTime;
    t->os = "windows";
    t->boot_id = boot_id();
    /* Windows has no exec: a process keeps its program, so the creation time says it all. */
    t->exec_key = xasprintf("%llu", (unsigned long long)t->start_time);
    wchar_t path[MAX_PATH * 4];
    DWORD n = sizeof(path) / sizeof(path[0]);
    if (QueryFullProcessImageNameW(c->h, 0, path, &n))
        t->exe = plat_utf8_of_wide(path, (int)n);
    t->cmdline = read_cmdline(c);
    if (!t->cmdline && t->exe)
        t->cmdline = xstrdup(t->exe);
    char host[256];
    plat_hostname(host, sizeof(host));
    t->host = xstrdup(host);
}

int capture_open(struct capture **out, int64_t pid, struct err *e)
{
    *out = NULL;
    if (pid <= 0 || pid > 0xffffffffLL)
        return err_set(e, ERR_NOPROC, "no such process '%lld'", (long long)pid);
    HANDLE h =
        OpenProcess(PROCESS_QUERY_INFORMATION | PROCESS_VM_READ | SYNCHRONIZE, FALSE, (DWORD)pid);
    if (!h)
        return os_error(e, GetLastError(), pid, "open");
    struct capture *c = xcalloc(1, sizeof(*c));
    c->h = h;
    c->pid = pid;
    c->cur = -1;
    region_list_init(&c->lists[0]);
    region_list_init(&c->lists[1]);
    FILETIME created, exited, kernel, user;
    if (!alive(c) || !GetProcessTimes(h, &created, &exited, &kernel, &user)) {
        capture_close(c);
        return err_set(e, ERR_EXITED, "process %lld has exited", (long long)pid);
    }
    fill_target(c, created);
    load_drives(c);
    *out = c;
    return 0;
}

int capture_identify(int64_t pid, struct capture_proc *out, struct err *e)
{
    memset(out, 0, sizeof(*out));
    HANDLE h = pid > 0 && pid <= 0xffffffffLL
                   ? OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION | SYNCHRONIZE, FALSE, (DWORD)pid)
                   : NULL;
    FILETIME created, exited, kernel, user;
    int ok = h && WaitForSingleObject(h, 0) == WAIT_TIMEOUT &&
             GetProcessTimes(h, &created, &exited, &kernel, &user);
    if (h)
        CloseHandle(h);
    if (!ok)
        return err_set(e, ERR_NOPROC, "no such process '%lld'", (long long)pid);
    out->pid = pid;
    out->start_time = ((uint64_t)created.dwHighDateTime << 32) | created.dwLowDateTime;
    char *boot = boot_id();
    snprintf(out->boot_id, sizeof(out->boot_id), "%s", boot);
    free(boot);
    plat_hostname(out->host, sizeof(out->host));
    return 0;
}

const struct capture_target *capture_get_target(const struct capture *c)
{
    return &c->target;
}

int capture_retitle(struct capture *c)
{
    /* A child seen before its loader filled the PEB has no command line yet: it keeps the
     * image's path until it does. */
    return capture_target_retitle(&c->target, read_cmdline(c));
}

void capture_release_previous(struct capture *c)
{
    /* Every walk fills a list anew: releasing one would only make the next walk allocate it
     * again. */
    (void)c;
}

void capture_close(struct capture *c)
{
    if (!c)
        return;
    if (c->h)
        CloseHandle(c->h);
    region_list_release(&c->lists[0]);
    region_list_release(&c->lists[1]);
    free(c->heaps);
    free(c->stacks);
    free(c->stack_tids);
    free(c->target.boot_id);
    free(c->target.exe);
    free(c->target.cmdline);
    free(c->target.exec_key);
    free(c->target.host);
    free(c);
}

int capture_check(struct capture *c, struct err *e)
{
    if (!alive(c))
        return err_set(e, ERR_EXITED, "process %lld exited", (long long)c->pid);
    return 0;
}

/* x's index in v, or -1. */
static long list_index(const uint64_t *v, size_t n, uint64_t x)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == x)
            return (long)i;
    return -1;
}

static int in_list(const uint64_t *v, size_t n, uint64_t x)
{
    return list_index(v, n, x) >= 0;
}

/* The process heaps: ProcessHeaps and NumberOfHeaps in the 64-bit PEB. */
static void load_heaps(struct capture *c)
{
    c->nheaps = 0;
    char *peb = peb_of(c->h);
    if (!peb)
        return;
    ULONG count = 0;
    uint64_t array = 0, process_heap = 0;
    SIZE_T got;
    /* PEB (x64): ProcessHeap at 0x30, NumberOfHeaps at 0xE8, ProcessHeaps at 0xF0. */
    if (!ReadProcessMemory(c->h, peb + 0x30, &process_heap, sizeof(process_heap), &got))
        process_heap = 0;
    if (!ReadProcessMemory(c->h, peb + 0xE8, &count, sizeof(count), &got) ||
        !ReadProcessMemory(c->h, peb + 0xF0, &array, sizeof(array), &got) || count > 4096 || !array)
        count = 0;
    c->heaps = xreallocarray(c->heaps, (size_t)count + 1, sizeof(uint64_t));
    if (count &&
        ReadProcessMemory(c->h, (void *)(uintptr_t)array, c->heaps, count * sizeof(uint64_t), &got))
        c->nheaps = got / sizeof(uint64_t);
    if (process_heap && !in_list(c->heaps, c->nheaps, process_heap))
        c->heaps[c->nheaps++] = process_heap;
}

/* Thread stacks: DeallocationStack (the stack's allocation base) in each thread's TEB. */
static void load_stacks(struct capture *c)
{
    c->nstacks = 0;
    nt_query_thread_fn q = (nt_query_thread_fn)(void *)GetProcAddress(GetModuleHandleA("ntdll.dll"),
                                                                      "NtQueryInformationThread");
    HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0);
    if (!q || snap == INVALID_HANDLE_VALUE)
        return;
    THREADENTRY32 te;
    te.dwSize = sizeof(te);
    size_t cap = 0;
    for (BOOL ok = Thread32First(snap, &te); ok; ok = Thread32Next(snap, &te)) {
        if (te.th32OwnerProcessID != (DWORD)c->pid)
            continue;
        HANDLE th = OpenThread(THREAD_QUERY_INFORMATION, FALSE, te.th32ThreadID);
        if (!th)
            continue;
        struct {
            LONG status;
            PVOID teb;
            PVOID pid, tid;
            ULONG_PTR affinity;
            LONG priority, base_priority;
        } tbi;
        uint64_t base = 0;
        SIZE_T got;
        if (q(th, 0, &tbi, sizeof(tbi), NULL) == 0 && tbi.teb &&
            ReadProcessMemory(c->h, (char *)tbi.teb + 0x1478, &base, sizeof(base), &got) && base) {
            size_t tcap = cap;
            c->stacks = xgrow(c->stacks, &cap, c->nstacks + 1, sizeof(uint64_t));
            c->stack_tids = xgrow(c->stack_tids, &tcap, c->nstacks + 1, sizeof(uint64_t));
            c->stack_tids[c->nstacks] = te.th32ThreadID;
            c->stacks[c->nstacks++] = base;
        }
        CloseHandle(th);
    }
    CloseHandle(snap);
}

/* Resident bytes of [start, end): QueryWorkingSetEx over its pages, in batches. */
static uint64_t working_set(HANDLE h, uint64_t start, uint64_t end)
{
    enum { BATCH = 1024 };
    PSAPI_WORKING_SET_EX_INFORMATION ws[BATCH];
    uint64_t resident = 0;
    for (uint64_t a = start; a < end;) {
        size_t n = 0;
        for (; n < BATCH && a < end; n++, a += 4096)
            ws[n].VirtualAddress = (PVOID)(uintptr_t)a;
        if (!QueryWorkingSetEx(h, ws, (DWORD)(n * sizeof(ws[0]))))
            return 0;
        for (size_t k = 0; k < n; k++)
            if (ws[k].VirtualAttributes.Valid)
                resident += 4096;
    }
    return resident;
}

int capture_walk(struct capture *c, int detail, const struct region_list **list,
                 struct capture_info *info, struct err *e)
{
    memset(info, 0, sizeof(*info));
    info->detail = detail;
    info->method = "virtualquery";
    info->taken_at_ms = plat_realtime_ms();
    if (!alive(c))
        return err_set(e, ERR_EXITED, "process %lld exited", (long long)c->pid);
    int k = c->cur < 0 ? 0 : 1 - c->cur;
    struct region_list *l = &c->lists[k];
    region_list_clear(l);
    load_heaps(c);
    load_stacks(c);
    uint64_t name_base = UINT64_MAX;
    const char *name = NULL;
    uint32_t name_len = 0;
    for (uint64_t addr = 0;;) {
        MEMORY_BASIC_INFORMATION mbi;
        if (VirtualQueryEx(c->h, (LPCVOID)(uintptr_t)addr, &mbi, sizeof(mbi)) == 0) {
            DWORD err = GetLastError();
            if (err == ERROR_INVALID_PARAMETER)
                break; /* past the highest user address */
            if (!alive(c))
                return err_set(e, ERR_EXITED, "process %lld exited during the walk",
                               (long long)c->pid);
            return os_error(e, err, c->pid, "query");
        }
        uint64_t base = (uint64_t)(uintptr_t)mbi.BaseAddress, size = mbi.RegionSize;
        /* A 32-bit build querying a 64-bit process gets saturated values here, not an error:
         * stop rather than loop or wrap. */
        if (size == 0 || base < addr || size > UINT64_MAX - base)
            break;
        uint64_t next = base + size;
        if (mbi.State != MEM_FREE) {
            struct region *r = region_list_push(l);
            r->start = base;
            r->end = next;
            r->flags |= REGION_HAS_WIN;
            struct region_extra *x = region_extra_set(l, r);
            x->state = mbi.State == MEM_COMMIT ? WIN_STATE_COMMIT : WIN_STATE_RESERVE;
            x->type = mbi.Type == MEM_IMAGE    ? WIN_TYPE_IMAGE
                      : mbi.Type == MEM_MAPPED ? WIN_TYPE_MAPPED
                                               : WIN_TYPE_PRIVATE;
            x->protect = mbi.Protect;
            x->alloc_base = (uint64_t)(uintptr_t)mbi.AllocationBase;
            x->alloc_protect = mbi.AllocationProtect;
            win_protect_perms(mbi.State == MEM_COMMIT ? mbi.Protect : 0, mbi.Type, r->perms);
            r->offset = base - x->alloc_base;
            if (mbi.Type == MEM_IMAGE || mbi.Type == MEM_MAPPED) {
                /* One name per allocation: its views share the section. */
                if (x->alloc_base != name_base) {
                    wchar_t w[MAX_PATH * 2];
                    DWORD n =
                        GetMappedFileNameW(c->h, mbi.BaseAddress, w, sizeof(w) / sizeof(w[0]));
                    name = NULL;
                    name_len = 0;
                    if (n) {
                        char *nt = plat_utf8_of_wide(w, (int)n), dos[MAX_PATH * 6];
                        win_dos_path(nt, c->drives, c->ndrives, dos, sizeof(dos));
                        name_len = (uint32_t)strlen(dos);
                        name = region_list_intern(l, dos, name_len);
                        free(nt);
                    }
                    name_base = x->alloc_base;
                }
                r->path = name;
                r->path_len = name_len;
            }
            long stack = list_index(c->stacks, c->nstacks, x->alloc_base);
            long heap = stack < 0 ? list_index(c->heaps, c->nheaps, x->alloc_base) : -1;
            r->category = (uint8_t)win_category(mbi.State, mbi.Type, mbi.Protect, r->path != NULL,
                                                heap >= 0, stack >= 0);
            /* Owners, as VMMap names them: the heap's number in the PEB's list, the stack's
             * thread. */
            char owner[48];
            if (stack >= 0 || heap >= 0) {
                if (stack >= 0)
                    snprintf(owner, sizeof(owner), "thread %llu",
                             (unsigned long long)c->stack_tids[stack]);
                else
                    snprintf(owner, sizeof(owner), "heap %ld", heap);
                region_set_owner(l, r, owner, strlen(owner));
            }
            if (detail == DETAIL_SMAPS) {
                r->flags |= REGION_HAS_MEM;
                if (mbi.State == MEM_COMMIT) {
                    x->rss = working_set(c->h, base, next);
                    if (mbi.Type == MEM_PRIVATE)
                        x->anonymous = x->rss;
                }
            }
        }
        if (next <= addr)
            break;
        addr = next;
    }
    /* A process that exited mid-walk may have answered with a cut-short map. */
    if (!alive(c))
        return err_set(e, ERR_EXITED, "process %lld exited during the walk", (long long)c->pid);
    if (l->n == 0)
        return err_set(e, ERR_EXITED, "process %lld exited during the walk", (long long)c->pid);
    if (detail == DETAIL_SMAPS) {
        region_list_mem_totals(l, &info->totals);
        info->have_totals = 1;
    } else if (detail == DETAIL_ROLLUP) {
        PROCESS_MEMORY_COUNTERS_EX pmc;
        if (GetProcessMemoryInfo(c->h, (PROCESS_MEMORY_COUNTERS *)&pmc, sizeof(pmc))) {
            info->totals.rss = pmc.WorkingSetSize;
            info->totals.anonymous = pmc.PrivateUsage;
            info->have_totals = 1;
        }
    }
    c->cur = k;
    *list = l;
    return 0;
}

struct capture_scan {
    struct capture_pidset known;
};

int capture_scan_open(struct capture_scan **out, struct err *e)
{
    (void)e;
    *out = xcalloc(1, sizeof(**out));
    return 0;
}

/* A process's creation time, or 0 when it cannot be opened. */
static uint64_t created_at(DWORD pid)
{
    HANDLE h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid);
    FILETIME c, x, k, u;
    uint64_t t = 0;
    if (h && GetProcessTimes(h, &c, &x, &k, &u))
        t = ((uint64_t)c.dwHighDateTime << 32) | c.dwLowDateTime;
    if (h)
        CloseHandle(h);
    return t;
}

int capture_scan_new(struct capture_scan *s, struct capture_seen **v, size_t *n, struct err *e)
{
    *v = NULL;
    *n = 0;
    HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
    if (snap == INVALID_HANDLE_VALUE)
        return err_set(e, ERR_IO, "cannot list the processes (error %lu)",
                       (unsigned long)GetLastError());
    PROCESSENTRY32W pe;
    pe.dwSize = sizeof(pe);
    int64_t *cur = NULL, *parent = NULL;
    size_t ncur = 0, cap = 0, pcap = 0;
    for (BOOL ok = Process32FirstW(snap, &pe); ok; ok = Process32NextW(snap, &pe)) {
        cur = xgrow(cur, &cap, ncur + 1, sizeof(*cur));
        parent = xgrow(parent, &pcap, ncur + 1, sizeof(*parent));
        /* pid and parent in one number, split again below once the pids are sorted. */
        cur[ncur] = pe.th32ProcessID;
        parent[ncur] = ((int64_t)pe.th32ProcessID << 32) | pe.th32ParentProcessID;
        ncur++;
    }
    CloseHandle(snap);
    size_t fresh = capture_pidset_update(&s->known, cur, ncur);
    if (fresh)
        *v = xmalloc(fresh * sizeof(**v));
    for (size_t i = 0; i < fresh; i++) {
        int64_t ppid = -1;
        for (size_t k = 0; k < ncur; k++)
            if ((parent[k] >> 32) == cur[i])
                ppid = parent[k] & 0xffffffff;
        /* Windows keeps a parent's pid after the parent exits and reuses pids at once: a
         * "parent" younger than its child is another process. */
        uint64_t t = created_at((DWORD)cur[i]);
        if (ppid >= 0 && t && created_at((DWORD)ppid) > t)
            ppid = 0;
        (*v)[*n].pid = cur[i];
        (*v)[*n].ppid = ppid < 0 ? 0 : ppid;
        (*v)[*n].start_time = t;
        (*n)++;
    }
    free(cur);
    free(parent);
    return 0;
}

void capture_scan_close(struct capture_scan *s)
{
    if (!s)
        return;
    free(s->known.v);
    free(s);
}
