/*
 * trace.h on Windows: record --stacks -- COMMAND through the debugger API.
 *
 * The program is started under the debugger (DEBUG_ONLY_THIS_PROCESS) and held at the loader's
 * breakpoint, its static imports loaded. There the tracer puts a breakpoint (int3) on the first
 * byte of ntdll's NtAllocateVirtualMemory, NtFreeVirtualMemory, NtProtectVirtualMemory,
 * NtMapViewOfSection and NtUnmapViewOfSection, where VirtualAlloc, VirtualFree, the heap and
 * the loader all end. At a call's entry it reads the arguments and walks the calling thread's
 * stack by the modules' own x64 unwind tables (.pdata and UNWIND_INFO, read from the process:
 * DbgHelp's StackWalk64 took 17-19 ms a stack under Wine), and sets a hardware breakpoint of
 * that thread alone on the return address; at the return, the range the call acted on (its
 * in/out BaseAddress and size, as rounded by the system) and its NTSTATUS.
 *
 * A thread stopped at a breakpoint goes on by the instruction under it: ntdll's stubs begin
 * with "mov r10, rcx", which the tracer does for it; any other instruction is stepped (the
 * original byte put back, the trap flag set, every other thread suspended so that none passes
 * the breakpoint meanwhile). A breakpoint hit by another thread while one steps is taken again
 * later: its thread is put back on the int3.
 *
 * Unlike Linux's filter, breakpoints can be taken away: once recording stops (trace_quiet) the
 * tracer removes them, drains the events already raised and detaches; the program runs on
 * untraced. If vmsnap is killed outright the program is killed with it (a program left with
 * breakpoints would crash at the next call).
 *
 * Frames are module path, no build id ("" : PE files have none that DbgHelp checks) and the
 * offset from the module's base. Names come from DbgHelp (SymFromAddr and SymGetLineFromAddr64
 * on the module's file; a mingw program built with -gdwarf-4 has its functions and lines named
 * under Wine). DbgHelp is not thread-safe: every call into it holds one lock.
 */
#include <windows.h>

#include <dbghelp.h>
#include <psapi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform/platform.h"
#include "trace/trace.h"
#include "util/xalloc.h"

static const char *const call_names[] = {
    [TRACE_MMAP] = "mmap",
    [TRACE_MUNMAP] = "munmap",
    [TRACE_MREMAP] = "mremap",
    [TRACE_MPROTECT] = "mprotect",
    [TRACE_BRK] = "brk",
    [TRACE_SHMAT] = "shmat",
    [TRACE_SHMDT] = "shmdt",
    [TRACE_NT_ALLOCATE] = "NtAllocateVirtualMemory",
    [TRACE_NT_FREE] = "NtFreeVirtualMemory",
    [TRACE_NT_PROTECT] = "NtProtectVirtualMemory",
    [TRACE_NT_MAP_VIEW] = "NtMapViewOfSection",
    [TRACE_NT_UNMAP_VIEW] = "NtUnmapViewOfSection",
};
#define NNAMES ((int)(sizeof(call_names) / sizeof(call_names[0])))

const char *trace_call_name(int call)
{
    return call >= 0 && call < NNAMES && call_names[call] ? call_names[call] : "?";
}

/* Every call into DbgHelp (the namers', whichever thread names). */
static SRWLOCK dbghelp_lock = SRWLOCK_INIT;

#define TRAP_FLAG   0x100
#define RESUME_FLAG 0x10000
#define INT3        0xcc
/* Dr7: debug register 0 enabled for this thread, as a breakpoint on execution. */
#define DR7_EXEC0 1
/* The process's own handle, as its calls pass it (NtCurrentProcess()). */
#define SELF_HANDLE UINT64_MAX

/* A call's entry (a software breakpoint: int3 in ntdll's code). */
struct bp {
    uint64_t at;
    unsigned char orig;
    int call;    /* enum trace_call */
    int emulate; /* the instruction under it is "mov r10, rcx" */
};

/* A call between its entry and its return. */
struct pending {
    int active, call;
    uint64_t ret, rsp;
    uint64_t base_p, size_p; /* where the call writes the range (0: not a pointer) */
    uint64_t start, len, prot, type;
    int nframes;
    const char *stack_error;
    struct trace_frame frames[TRACE_MAX_FRAMES];
};

/* A call's return is a hardware breakpoint of its thread's alone (debug register 0 on the
 * return address), set in the same context write that lets it go on from the entry: no code
 * is written and no other thread sees it. */
struct thr {
    DWORD tid;
    HANDLE h;                     /* the debug event's: closed by the system */
    int suspended;                /* by the tracer, while another thread steps */
    uint64_t stack_lo, stack_end; /* the region its stack was last found in */
    struct pending p;
};

/* A function's unwind entry (.pdata's RUNTIME_FUNCTION): offsets from the module's base. */
struct rt_function {
    uint32_t begin, end, unwind;
};

struct module {
    uint64_t base, size;
    char *path;
    struct rt_function *pdata; /* read the first time a frame is in it */
    size_t npdata;
    int pdata_read;
};

struct tracer {
    HANDLE proc;  /* ours, from CreateProcess */
    HANDLE dproc; /* the debug events' */
    DWORD pid;
    char *argv0;
    int stacks, loaded, draining, detached, finished;
    volatile LONG quiet;
    uint64_t ntdll; /* its base in the program */
    struct bp *bps;
    size_t nbps, bps_cap;
    uint64_t *former; /* where breakpoints were, taken away since */
    size_t nformer, former_cap;
    struct thr *thr;
    size_t nthr, thr_cap;
    struct module *mods;
    size_t nmods, mods_cap;
    struct uinfo *uinfo; /* UNWIND_INFO read, by address */
    size_t nuinfo, uinfo_slots;
    DWORD stepping; /* the thread stepping over step_at, or 0 */
    uint64_t step_at;
};

static int read_mem(struct tracer *t, uint64_t at, void *buf, size_t n)
{
    SIZE_T got = 0;
    return ReadProcessMemory(t->dproc, (LPCVOID)(uintptr_t)at, buf, n, &got) && got == n ? 0 : -1;
}

static uint64_t read_u64(struct tracer *t, uint64_t at)
{
    uint64_t v = 0;
    read_mem(t, at, &v, sizeof(v));
    return v;
}

static int write_byte(struct tracer *t, uint64_t at, unsigned char b)
{
    SIZE_T put = 0;
    if (!WriteProcessMemory(t->dproc, (LPVOID)(uintptr_t)at, &b, 1, &put) || put != 1)
        return -1;
    FlushInstructionCache(t->dproc, (LPCVOID)(uintptr_t)at, 1);
    return 0;
}

static struct bp *bp_find(struct tracer *t, uint64_t at)
{
    for (size_t i = 0; i < t->nbps; i++)
        if (t->bps[i].at == at)
            return &t->bps[i];
    return NULL;
}

static int was_bp(const struct tracer *t, uint64_t at)
{
    for (size_t i = 0; i < t->nformer; i++)
        if (t->former[i] == at)
            return 1;
    return 0;
}

/* A breakpoint at at: 0, or -1 when the process's code there cannot be written. */
static int bp_add(struct tracer *t, uint64_t at, int call)
{
    unsigned char code[3];
    if (read_mem(t, at, code, sizeof(code)) < 0 || write_byte(t, at, INT3) < 0)
        return -1;
    t->bps = xgrow(t->bps, &t->bps_cap, t->nbps + 1, sizeof(*t->bps));
    t->bps[t->nbps++] =
        (struct bp){.at = at,
                    .orig = code[0],
                    .call = call,
                    .emulate = code[0] == 0x4c && code[1] == 0x8b && code[2] == 0xd1};
    return 0;
}

/* Takes the breakpoint away: its byte back, and its address remembered. */
static void bp_remove(struct tracer *t, struct bp *b)
{
    write_byte(t, b->at, b->orig);
    if (!was_bp(t, b->at)) {
        t->former = xgrow(t->former, &t->former_cap, t->nformer + 1, sizeof(*t->former));
        t->former[t->nformer++] = b->at;
    }
    *b = t->bps[--t->nbps];
}

static struct thr *thr_find(struct tracer *t, DWORD tid)
{
    for (size_t i = 0; i < t->nthr; i++)
        if (t->thr[i].tid == tid)
            return &t->thr[i];
    return NULL;
}

static void thr_add(struct tracer *t, DWORD tid, HANDLE h)
{
    t->thr = xgrow(t->thr, &t->thr_cap, t->nthr + 1, sizeof(*t->thr));
    struct thr *th = &t->thr[t->nthr++];
    memset(th, 0, sizeof(*th));
    th->tid = tid;
    th->h = h;
    if (t->stepping) {
        /* Born while another thread steps: it waits too. */
        SuspendThread(h);
        th->suspended = 1;
    }
}

static void thr_remove(struct tracer *t, DWORD tid)
{
    struct thr *th = thr_find(t, tid);
    if (th)
        *th = t->thr[--t->nthr];
}

static wchar_t *wide_of(const char *s)
{
    int n = MultiByteToWideChar(CP_UTF8, 0, s, -1, NULL, 0);
    wchar_t *w = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(*w));
    if (n <= 0 || !MultiByteToWideChar(CP_UTF8, 0, s, -1, w, n))
        w[0] = 0;
    return w;
}

/* A loaded image's path: from its file's handle, else from the section mapped at base. */
static char *image_path(struct tracer *t, HANDLE file, uint64_t base)
{
    wchar_t w[MAX_PATH * 2];
    DWORD n = file ? GetFinalPathNameByHandleW(file, w, MAX_PATH * 2, 0) : 0;
    if (n > 0 && n < MAX_PATH * 2) {
        const wchar_t *p = wcsncmp(w, L"\\\\?\\", 4) == 0 ? w + 4 : w;
        return plat_utf8_of_wide(p, -1);
    }
    n = GetMappedFileNameW(t->dproc, (LPVOID)(uintptr_t)base, w, MAX_PATH * 2);
    if (n > 0 && n < MAX_PATH * 2)
        return plat_utf8_of_wide(w, -1);
    return xstrdup("");
}

/* n bytes at off into the optional header of the image loaded at base: 0, or -1. */
static int optional_header(struct tracer *t, uint64_t base, uint32_t off, void *buf, size_t n)
{
    uint32_t lfanew = 0;
    if (read_mem(t, base + 0x3c, &lfanew, 4) < 0 || lfanew > 4096)
        return -1;
    /* The optional header follows the signature and the file header (4 + 20 bytes). */
    return read_mem(t, base + lfanew + 24 + off, buf, n);
}

/* SizeOfImage from the image's PE header in the process, or 0. */
static uint64_t image_size(struct tracer *t, uint64_t base)
{
    uint32_t size = 0;
    return optional_header(t, base, 56, &size, 4) == 0 ? size : 0;
}

static const char *base_name(const char *path)
{
    const char *b = path;
    for (const char *p = path; *p; p++)
        if (*p == '\\' || *p == '/')
            b = p + 1;
    return b;
}

static void module_add(struct tracer *t, HANDLE file, uint64_t base)
{
    char *path = image_path(t, file, base);
    t->mods = xgrow(t->mods, &t->mods_cap, t->nmods + 1, sizeof(*t->mods));
    t->mods[t->nmods++] = (struct module){.base = base, .size = image_size(t, base), .path = path};
    if (_stricmp(base_name(path), "ntdll.dll") == 0)
        t->ntdll = base;
}

/* The module unloaded from base leaves the table (its path stays valid: frames may point at
 * it until the tracer closes). */
static void module_gone(struct tracer *t, uint64_t base)
{
    for (size_t i = 0; i < t->nmods; i++)
        if (t->mods[i].base == base)
            t->mods[i].size = 0;
}

static struct module *module_at(struct tracer *t, uint64_t pc)
{
    for (size_t i = 0; i < t->nmods; i++)
        if (pc >= t->mods[i].base && pc - t->mods[i].base < t->mods[i].size)
            return &t->mods[i];
    return NULL;
}

/*
 * Unwinding: x64's unwind tables, read from the process (each module's .pdata once, a
 * function's UNWIND_INFO at each frame), and its stack read in one piece. Every frame but the
 * innermost is at a return address, past its function's prologue and never in an epilogue;
 * the innermost is the first byte of an ntdll function, before its prologue.
 */
#define OP_PUSH_NONVOL     0
#define OP_ALLOC_LARGE     1
#define OP_ALLOC_SMALL     2
#define OP_SET_FPREG       3
#define OP_SAVE_NONVOL     4
#define OP_SAVE_NONVOL_FAR 5
#define OP_EPILOG          6
#define OP_SPARE           7
#define OP_SAVE_XMM128     8
#define OP_SAVE_XMM128_FAR 9
#define OP_PUSH_MACHFRAME  10
#define INFO_CHAINED       4
#define STACK_READ         (64 * 1024)

/* The thread's stack from rsp, as read once at a call's entry. */
struct stack_copy {
    uint64_t from;
    size_t n;
    unsigned char buf[STACK_READ];
};
static struct stack_copy sc; /* the tracer's thread's alone */

/* A function's UNWIND_INFO (and the chained entry after it), as read once. */
#define UINFO_MAX (4 + 2 * 256 + 12)
struct uinfo {
    uint64_t at;
    unsigned char bytes[UINFO_MAX];
};

static const unsigned char *uinfo_get(struct tracer *t, uint64_t at)
{
    if (2 * (t->nuinfo + 1) > t->uinfo_slots) {
        size_t n = t->uinfo_slots ? 2 * t->uinfo_slots : 256;
        struct uinfo *v = xcalloc(n, sizeof(*v));
        for (size_t i = 0; i < t->uinfo_slots; i++)
            if (t->uinfo[i].at) {
                size_t h = (size_t)(t->uinfo[i].at >> 2) & (n - 1);
                while (v[h].at)
                    h = (h + 1) & (n - 1);
                v[h] = t->uinfo[i];
            }
        free(t->uinfo);
        t->uinfo = v;
        t->uinfo_slots = n;
    }
    size_t h = (size_t)(at >> 2) & (t->uinfo_slots - 1);
    for (; t->uinfo[h].at; h = (h + 1) & (t->uinfo_slots - 1))
        if (t->uinfo[h].at == at)
            return t->uinfo[h].bytes;
    unsigned char *b = t->uinfo[h].bytes;
    if (read_mem(t, at, b, 4) < 0)
        return NULL;
    size_t slots = (size_t)((b[2] + 1) & ~1);
    size_t len = 4 + 2 * slots + ((b[0] >> 3) & INFO_CHAINED ? 12 : 0);
    if (read_mem(t, at, b, len) < 0)
        return NULL;
    t->uinfo[h].at = at;
    t->nuinfo++;
    return b;
}

/* Reads the stack of a thread stopped with rsp, the region it is in found once a thread. */
static void stack_read(struct tracer *t, struct thr *th, uint64_t rsp)
{
    sc.from = rsp;
    sc.n = 0;
    if (rsp < th->stack_lo || rsp >= th->stack_end) {
        MEMORY_BASIC_INFORMATION mi;
        if (VirtualQueryEx(t->dproc, (LPCVOID)(uintptr_t)rsp, &mi, sizeof(mi)) != sizeof(mi))
            return;
        th->stack_lo = (uint64_t)(uintptr_t)mi.BaseAddress;
        th->stack_end = th->stack_lo + mi.RegionSize;
    }
    size_t n = th->stack_end - rsp < STACK_READ ? (size_t)(th->stack_end - rsp) : STACK_READ;
    if (read_mem(t, rsp, sc.buf, n) == 0)
        sc.n = n;
}
static int stack_u64(struct tracer *t, const struct stack_copy *copy, uint64_t at, uint64_t *v)
{
    if (at >= copy->from && at - copy->from + 8 <= copy->n) {
        memcpy(v, copy->buf + (at - copy->from), 8);
        return 0;
    }
    return read_mem(t, at, v, 8);
}

/* The module's .pdata (its exception directory), read once: sorted by begin. */
static void pdata_read(struct tracer *t, struct module *m)
{
    m->pdata_read = 1;
    uint32_t dir[2] = {0, 0};
    /* PE32+: the data directories start 112 bytes into the optional header; the exception
     * directory is the fourth. */
    if (optional_header(t, m->base, 112 + 3 * 8, dir, sizeof(dir)) < 0 || !dir[1] ||
        dir[0] >= m->size || dir[1] > m->size - dir[0])
        return;
    size_t n = dir[1] / sizeof(struct rt_function);
    struct rt_function *v = xcalloc(n ? n : 1, sizeof(*v));
    if (read_mem(t, m->base + dir[0], v, n * sizeof(*v)) < 0) {
        free(v);
        return;
    }
    m->pdata = v;
    m->npdata = n;
}

static const struct rt_function *function_at(struct tracer *t, struct module *m, uint64_t pc)
{
    if (!m->pdata_read)
        pdata_read(t, m);
    uint32_t rva = (uint32_t)(pc - m->base);
    size_t lo = 0, hi = m->npdata;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->pdata[mid].end <= rva)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < m->npdata && m->pdata[lo].begin <= rva ? &m->pdata[lo] : NULL;
}

/* One frame up: regs (rax..r15, as x64 numbers them), *pc; 0, or -1 when it cannot be. */
static int unwind_step(struct tracer *t, const struct stack_copy *copy, struct module *m,
                       uint64_t *pc, uint64_t regs[16])
{
    const struct rt_function *f = function_at(t, m, *pc);
    uint64_t *rsp = &regs[4];
    /* How far into its function pc is: codes of the prologue not yet run are not undone. */
    uint32_t into = f ? (uint32_t)(*pc - m->base) - f->begin : 0;
    struct rt_function chained; /* the entry a chained UNWIND_INFO continues with */
    for (int chain = 0; f && chain < 32; chain++) {
        const unsigned char *info = uinfo_get(t, m->base + f->unwind);
        if (!info)
            return -1;
        int count = info[2], frame_reg = info[3] & 15, frame_off = info[3] >> 4;
        size_t slots = (size_t)((count + 1) & ~1);
        const unsigned char *code = info + 4;
        uint64_t frame = frame_reg ? regs[frame_reg] - 16 * (uint64_t)frame_off : *rsp;
        for (int i = 0; i < count;) {
            int at = code[2 * i], op = code[2 * i + 1] & 15, opinfo = code[2 * i + 1] >> 4;
            int size = op == OP_ALLOC_LARGE ? (opinfo ? 3 : 2)
                       : op == OP_SAVE_NONVOL || op == OP_SAVE_XMM128 || op == OP_EPILOG ? 2
                       : op == OP_SAVE_NONVOL_FAR || op == OP_SAVE_XMM128_FAR            ? 3
                                                                                         : 1;
            uint16_t s1 = i + 1 < count ? (uint16_t)(code[2 * i + 2] | code[2 * i + 3] << 8) : 0;
            uint32_t s2 =
                i + 2 < count ? s1 | (uint32_t)(code[2 * i + 4] | code[2 * i + 5] << 8) << 16 : s1;
            if (chain > 0 || (uint32_t)at <= into) {
                uint64_t v;
                switch (op) {
                case OP_PUSH_NONVOL:
                    if (stack_u64(t, copy, *rsp, &v) < 0)
                        return -1;
                    regs[opinfo] = v;
                    *rsp += 8;
                    break;
                case OP_ALLOC_LARGE:
                    *rsp += opinfo ? s2 : (uint64_t)s1 * 8;
                    break;
                case OP_ALLOC_SMALL:
                    *rsp += (uint64_t)opinfo * 8 + 8;
                    break;
                case OP_SET_FPREG:
                    *rsp = frame;
                    break;
                case OP_SAVE_NONVOL:
                case OP_SAVE_NONVOL_FAR:
                    if (stack_u64(t, copy, frame + (op == OP_SAVE_NONVOL ? (uint64_t)s1 * 8 : s2),
                                  &v) < 0)
                        return -1;
                    regs[opinfo] = v;
                    break;
                case OP_PUSH_MACHFRAME:
                    /* An interrupt's frame: rip and rsp as the processor pushed them. */
                    if (opinfo)
                        *rsp += 8;
                    if (stack_u64(t, copy, *rsp, pc) < 0 || stack_u64(t, copy, *rsp + 24, &v) < 0)
                        return -1;
                    *rsp = v;
                    return 0;
                default: /* xmm registers, and epilogue notes: nothing a stack needs */
                    break;
                }
            }
            i += size;
        }
        if (!((info[0] >> 3) & INFO_CHAINED))
            break;
        memcpy(&chained, code + 2 * slots, sizeof(chained));
        f = &chained;
    }
    /* A function without an entry is a leaf: its return address is at rsp. */
    if (stack_u64(t, copy, *rsp, pc) < 0)
        return -1;
    *rsp += 8;
    return 0;
}

/* The stack of a thread stopped at c (its stack read into sc), innermost first. */
static int unwind(struct tracer *t, const CONTEXT *c, struct trace_frame *f, int max)
{
    uint64_t regs[16] = {c->Rax, c->Rcx, c->Rdx, c->Rbx, c->Rsp, c->Rbp, c->Rsi, c->Rdi,
                         c->R8,  c->R9,  c->R10, c->R11, c->R12, c->R13, c->R14, c->R15};
    uint64_t pc = c->Rip;
    int n = 0;
    while (n < max && pc) {
        struct module *m = module_at(t, pc);
        uint64_t at = n ? pc - 1 : pc; /* a caller's frame names its call */
        f[n].pc = pc;
        f[n].module = m ? m->path : "";
        f[n].build_id = "";
        f[n].offset = m ? at - m->base : at;
        n++;
        uint64_t sp = regs[4];
        if (!m || unwind_step(t, &sc, m, &pc, regs) < 0 || regs[4] <= sp)
            break; /* code of no module (generated), or a stack that does not go up */
    }
    return n;
}

/* The range [base, base + n) of a view, summed over its regions (one allocation). */
static uint64_t view_size(struct tracer *t, uint64_t base)
{
    uint64_t len = 0;
    MEMORY_BASIC_INFORMATION mi;
    while (VirtualQueryEx(t->dproc, (LPCVOID)(uintptr_t)(base + len), &mi, sizeof(mi)) ==
               sizeof(mi) &&
           (uint64_t)(uintptr_t)mi.AllocationBase == base && mi.State != MEM_FREE)
        len += mi.RegionSize;
    return len;
}

/* A call's entry: what it is asked, and who asks. Its return's breakpoint goes into c. */
static void on_entry(struct tracer *t, struct thr *th, int call, CONTEXT *c)
{
    stack_read(t, th, c->Rsp);
    uint64_t stk[6] = {0}; /* the fifth argument on, above the return address and home space */
    for (int i = 0; i < 6; i++)
        stack_u64(t, &sc, c->Rsp + 0x28 + 8 * (uint64_t)i, &stk[i]);
    struct pending *p = &th->p;
    memset(p, 0, offsetof(struct pending, frames));
    uint64_t handle;
    switch (call) {
    case TRACE_NT_ALLOCATE: /* (process, *base, zero_bits, *size, type, protect) */
        handle = c->Rcx;
        p->base_p = c->Rdx;
        p->size_p = c->R9;
        p->type = stk[0] & 0xffffffff;
        p->prot = stk[1] & 0xffffffff;
        break;
    case TRACE_NT_FREE: /* (process, *base, *size, type) */
        handle = c->Rcx;
        p->base_p = c->Rdx;
        p->size_p = c->R8;
        p->type = c->R9 & 0xffffffff;
        break;
    case TRACE_NT_PROTECT: /* (process, *base, *size, protect, *old) */
        handle = c->Rcx;
        p->base_p = c->Rdx;
        p->size_p = c->R8;
        p->prot = c->R9 & 0xffffffff;
        break;
    case TRACE_NT_MAP_VIEW:
        /* (section, process, *base, zero_bits, commit, *offset, *size, inherit, type,
         * protect) */
        handle = c->Rdx;
        p->base_p = c->R8;
        p->size_p = stk[2];
        p->type = stk[4] & 0xffffffff;
        p->prot = stk[5] & 0xffffffff;
        break;
    case TRACE_NT_UNMAP_VIEW: /* (process, base) */
        handle = c->Rcx;
        p->start = c->Rdx;
        p->len = view_size(t, c->Rdx);
        break;
    default:
        return;
    }
    if (handle != SELF_HANDLE)
        return; /* another process's memory */
    if (stack_u64(t, &sc, c->Rsp, &p->ret) < 0)
        return; /* its return cannot be caught */
    p->active = 1;
    p->call = call;
    p->rsp = c->Rsp;
    if (t->stacks) {
        p->nframes = unwind(t, c, p->frames, TRACE_MAX_FRAMES);
        if (p->nframes <= 0)
            p->stack_error = "the stack could not be walked";
    }
    c->ContextFlags |= CONTEXT_DEBUG_REGISTERS;
    c->Dr0 = p->ret;
    c->Dr7 = DR7_EXEC0;
}

/* A call returned (rip at its return address, rsp above it): its event. */
static void on_return(struct tracer *t, struct thr *th, const CONTEXT *c,
                      const struct trace_hooks *h)
{
    struct pending *p = &th->p;
    p->active = 0;
    /* The two are mostly the caller's locals, side by side: one read (each read of another
     * process's memory costs a round trip to the system, and much more under Wine). */
    uint64_t lo = p->base_p < p->size_p ? p->base_p : p->size_p;
    uint64_t hi = p->base_p < p->size_p ? p->size_p : p->base_p;
    unsigned char both[256];
    if (p->base_p && p->size_p && hi - lo + 8 <= sizeof(both) &&
        read_mem(t, lo, both, (size_t)(hi - lo + 8)) == 0) {
        memcpy(&p->start, both + (p->base_p - lo), 8);
        memcpy(&p->len, both + (p->size_p - lo), 8);
    } else {
        if (p->base_p)
            p->start = read_u64(t, p->base_p);
        if (p->size_p)
            p->len = read_u64(t, p->size_p);
    }
    struct trace_event ev = {.pid = t->pid,
                             .tid = th->tid,
                             .call = p->call,
                             .args = {p->start, p->len, p->prot, p->type},
                             .result = (int32_t)(uint32_t)c->Rax,
                             .frames = p->frames,
                             .nframes = p->nframes,
                             .stack_error = p->stack_error};
    if (!t->quiet && h->event)
        h->event(h->ctx, &ev);
}

static void suspend_others(struct tracer *t, DWORD tid)
{
    for (size_t i = 0; i < t->nthr; i++)
        if (t->thr[i].tid != tid && !t->thr[i].suspended) {
            SuspendThread(t->thr[i].h);
            t->thr[i].suspended = 1;
        }
}

static void resume_others(struct tracer *t)
{
    for (size_t i = 0; i < t->nthr; i++)
        if (t->thr[i].suspended) {
            ResumeThread(t->thr[i].h);
            t->thr[i].suspended = 0;
        }
}

/* Puts ntdll's breakpoints in: 0, or an error when none could be. */
static int install(struct tracer *t, struct err *e)
{
    static const struct {
        int call;
        const char *name;
    } entries[] = {
        {TRACE_NT_ALLOCATE, "NtAllocateVirtualMemory"}, {TRACE_NT_FREE, "NtFreeVirtualMemory"},
        {TRACE_NT_PROTECT, "NtProtectVirtualMemory"},   {TRACE_NT_MAP_VIEW, "NtMapViewOfSection"},
        {TRACE_NT_UNMAP_VIEW, "NtUnmapViewOfSection"},
    };
    HMODULE ours = GetModuleHandleA("ntdll.dll");
    if (!ours)
        return err_set(e, ERR_UNSUPPORTED, "cannot trace '%s': no ntdll.dll", t->argv0);
    /* ntdll is the same file in both processes: each function at the same offset. */
    uint64_t base = t->ntdll ? t->ntdll : (uint64_t)(uintptr_t)ours;
    int set = 0;
    for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); i++) {
        FARPROC f = GetProcAddress(ours, entries[i].name);
        if (f && bp_add(t, base + ((uint64_t)(uintptr_t)f - (uint64_t)(uintptr_t)ours),
                        entries[i].call) == 0)
            set++;
    }
    if (!set)
        return err_set(e, ERR_IO, "cannot trace '%s': ntdll's code cannot be written (error %lu)",
                       t->argv0, (unsigned long)GetLastError());
    return 0;
}

/* Takes the thread's return breakpoint away (it is stopped): resume, when it stopped at it. */
static void disarm(struct thr *th, int resume)
{
    CONTEXT c;
    memset(&c, 0, sizeof(c));
    c.ContextFlags = CONTEXT_DEBUG_REGISTERS | (resume ? CONTEXT_CONTROL : 0);
    if (!GetThreadContext(th->h, &c))
        return;
    c.Dr0 = 0;
    c.Dr7 = 0;
    if (resume)
        c.EFlags |= RESUME_FLAG;
    SetThreadContext(th->h, &c);
}

/* Recording is over: every breakpoint goes; the events already raised are drained next. */
static void take_all_away(struct tracer *t)
{
    while (t->nbps)
        bp_remove(t, &t->bps[0]);
    /* A thread inside a call has its return's breakpoint taken away too (it runs: stopped
     * for that). One that hits it meanwhile is let through (on_exception). */
    for (size_t i = 0; i < t->nthr; i++) {
        struct thr *th = &t->thr[i];
        if (!th->p.active)
            continue;
        SuspendThread(th->h);
        disarm(th, 0);
        ResumeThread(th->h);
        th->p.active = 0;
    }
    t->draining = 1;
}

/* A breakpoint event: how to continue. */
static DWORD on_breakpoint(struct tracer *t, const DEBUG_EVENT *ev, const struct trace_hooks *h,
                           struct err *e, int *failed)
{
    uint64_t at = (uint64_t)(uintptr_t)ev->u.Exception.ExceptionRecord.ExceptionAddress;
    struct thr *th = thr_find(t, ev->dwThreadId);
    struct bp *b = bp_find(t, at);
    if (!t->loaded && !b) {
        /* The loader's: the program's imports are loaded, its entry point not yet run. */
        t->loaded = 1;
        if (install(t, e) < 0) {
            *failed = 1;
            return DBG_CONTINUE;
        }
        if (h->held)
            h->held(h->ctx, t->pid);
        return DBG_CONTINUE;
    }
    if (!th || (!b && !was_bp(t, at)))
        return DBG_EXCEPTION_NOT_HANDLED; /* the program's own */
    CONTEXT c;
    memset(&c, 0, sizeof(c));
    c.ContextFlags = CONTEXT_FULL;
    if (!GetThreadContext(th->h, &c))
        return DBG_CONTINUE;
    c.Rip = at;
    if (!b || (t->stepping && t->stepping != th->tid)) {
        /* Taken away since it was hit, or hit while another thread steps: the thread goes
         * back onto the instruction, to take the breakpoint again if it is still there. */
        SetThreadContext(th->h, &c);
        return DBG_CONTINUE;
    }
    if (!t->quiet)
        on_entry(t, th, b->call, &c);
    if (b->emulate) {
        c.R10 = c.Rcx;
        c.Rip = at + 3;
        SetThreadContext(th->h, &c);
        return DBG_CONTINUE;
    }
    /* Steps over it alone: the others wait, so none passes while its byte is back. */
    write_byte(t, at, b->orig);
    c.EFlags |= TRAP_FLAG;
    SetThreadContext(th->h, &c);
    suspend_others(t, th->tid);
    t->stepping = th->tid;
    t->step_at = at;
    return DBG_CONTINUE;
}

/* A thread's return breakpoint: the call's event, if it is the call's return (not the same
 * code run by a callback inside the call). */
static DWORD on_return_break(struct tracer *t, struct thr *th, const struct trace_hooks *h)
{
    CONTEXT c;
    memset(&c, 0, sizeof(c));
    c.ContextFlags = CONTEXT_FULL;
    if (!GetThreadContext(th->h, &c))
        return DBG_CONTINUE;
    c.ContextFlags |= CONTEXT_DEBUG_REGISTERS;
    if (c.Rsp == th->p.rsp + 8) {
        on_return(t, th, &c, h);
        c.Dr0 = 0;
        c.Dr7 = 0;
    } else {
        c.EFlags |= RESUME_FLAG; /* on past it, the breakpoint kept */
    }
    SetThreadContext(th->h, &c);
    return DBG_CONTINUE;
}

static DWORD on_exception(struct tracer *t, const DEBUG_EVENT *ev, const struct trace_hooks *h,
                          struct err *e, int *failed)
{
    DWORD code = ev->u.Exception.ExceptionRecord.ExceptionCode;
    if (code == EXCEPTION_BREAKPOINT)
        return on_breakpoint(t, ev, h, e, failed);
    struct thr *th = thr_find(t, ev->dwThreadId);
    uint64_t at = (uint64_t)(uintptr_t)ev->u.Exception.ExceptionRecord.ExceptionAddress;
    if (code == EXCEPTION_SINGLE_STEP && th && th->p.active && at == th->p.ret)
        return on_return_break(t, th, h);
    if (code == EXCEPTION_SINGLE_STEP && th && th->p.ret && at == th->p.ret) {
        disarm(th, 1); /* taken away as recording stopped, but hit meanwhile */
        return DBG_CONTINUE;
    }
    if (code == EXCEPTION_SINGLE_STEP && t->stepping == ev->dwThreadId) {
        if (bp_find(t, t->step_at))
            write_byte(t, t->step_at, INT3);
        t->stepping = 0;
        resume_others(t);
        return DBG_CONTINUE;
    }
    return DBG_EXCEPTION_NOT_HANDLED;
}

int trace_launch(struct tracer **out, char *const argv[], struct err *e)
{
    *out = NULL;
    char why[128];
    void *process;
    int64_t pid = plat_win_start(argv, 1, &process, why, sizeof(why));
    if (pid < 0)
        return err_set(e, ERR_NOPROC, "cannot run '%s': %s", argv[0], why);
    /* A recorder killed outright takes the program with it: its breakpoints would kill it. */
    DebugSetProcessKillOnExit(TRUE);
    struct tracer *t = xcalloc(1, sizeof(*t));
    t->proc = process;
    t->pid = (DWORD)pid;
    t->argv0 = xstrdup(argv[0]);
    *out = t;
    return 0;
}

int trace_attach(struct tracer **out, const int64_t *pids, size_t n, struct err *e)
{
    (void)pids, (void)n;
    *out = NULL;
    return err_set(e, ERR_UNSUPPORTED,
                   "--stacks -p: attaching to a running process is Linux's; on Windows, "
                   "record --stacks -- COMMAND");
}

void trace_detach(struct tracer *t)
{
    (void)t; /* nothing is attached here */
}

int trace_stacks(struct tracer *t, struct err *e)
{
    (void)e;
    t->stacks = 1;
    return 0;
}

int64_t trace_pid(const struct tracer *t)
{
    return t->pid;
}

void trace_quiet(struct tracer *t)
{
    InterlockedExchange(&t->quiet, 1);
}

void trace_release(struct tracer *t, int64_t pid)
{
    (void)t, (void)pid; /* no process is held for its birth here */
}

/* Recording is over and every event raised is drained: the program runs on untraced, and
 * its exit status is waited for. */
static void let_go(struct tracer *t, int *status)
{
    DebugActiveProcessStop(t->pid);
    t->detached = 1;
    WaitForSingleObject(t->proc, INFINITE);
    DWORD code = 0;
    GetExitCodeProcess(t->proc, &code);
    *status = (int)code;
    t->finished = 1;
}

int trace_run(struct tracer *t, const struct trace_hooks *h, int *status, struct err *e)
{
    *status = 0;
    int failed = 0;
    for (;;) {
        if (t->quiet && !t->draining && !t->stepping)
            take_all_away(t);
        DEBUG_EVENT ev;
        if (!WaitForDebugEvent(&ev, t->draining ? 50 : 100)) {
            if (t->draining) {
                let_go(t, status);
                return 0;
            }
            continue;
        }
        DWORD how = DBG_CONTINUE;
        switch (ev.dwDebugEventCode) {
        case CREATE_PROCESS_DEBUG_EVENT: {
            const CREATE_PROCESS_DEBUG_INFO *ci = &ev.u.CreateProcessInfo;
            t->dproc = ci->hProcess;
            thr_add(t, ev.dwThreadId, ci->hThread);
            module_add(t, ci->hFile, (uint64_t)(uintptr_t)ci->lpBaseOfImage);
            if (ci->hFile)
                CloseHandle(ci->hFile);
            if (h->process)
                h->process(h->ctx, t->pid, 0);
            break;
        }
        case CREATE_THREAD_DEBUG_EVENT:
            thr_add(t, ev.dwThreadId, ev.u.CreateThread.hThread);
            break;
        case EXIT_THREAD_DEBUG_EVENT:
            thr_remove(t, ev.dwThreadId);
            if (t->stepping == ev.dwThreadId) {
                t->stepping = 0;
                resume_others(t);
            }
            break;
        case LOAD_DLL_DEBUG_EVENT:
            module_add(t, ev.u.LoadDll.hFile, (uint64_t)(uintptr_t)ev.u.LoadDll.lpBaseOfDll);
            if (ev.u.LoadDll.hFile)
                CloseHandle(ev.u.LoadDll.hFile);
            break;
        case UNLOAD_DLL_DEBUG_EVENT:
            module_gone(t, (uint64_t)(uintptr_t)ev.u.UnloadDll.lpBaseOfDll);
            break;
        case EXCEPTION_DEBUG_EVENT:
            how = on_exception(t, &ev, h, e, &failed);
            break;
        case EXIT_PROCESS_DEBUG_EVENT:
            *status = (int)ev.u.ExitProcess.dwExitCode;
            t->finished = 1;
            if (h->exited)
                h->exited(h->ctx, t->pid, *status);
            ContinueDebugEvent(ev.dwProcessId, ev.dwThreadId, DBG_CONTINUE);
            return 0;
        default:
            break;
        }
        ContinueDebugEvent(ev.dwProcessId, ev.dwThreadId, how);
        if (failed) {
            TerminateProcess(t->proc, 1);
            t->finished = 1;
            return err_wrap(e, "record --stacks");
        }
    }
}

void trace_close(struct tracer *t)
{
    if (!t)
        return;
    if (!t->finished && !t->detached)
        TerminateProcess(t->proc, 1); /* it cannot run on with breakpoints and no tracer */
    CloseHandle(t->proc);
    for (size_t i = 0; i < t->nmods; i++) {
        free(t->mods[i].path);
        free(t->mods[i].pdata);
    }
    free(t->mods);
    free(t->bps);
    free(t->former);
    free(t->thr);
    free(t->argv0);
    free(t);
}

/*
 * Naming: a DbgHelp session of vmsnap's own (keyed by its own process's handle, no module of
 * its loaded), each module's file loaded once at a base of its own, far from any other.
 */
struct nmod {
    char *path;
    uint64_t base; /* 0: it could not be loaded */
};

struct trace_namer {
    struct nmod *m;
    size_t n, cap;
    uint64_t next;
};

static HANDLE namer_session(void)
{
    return GetCurrentProcess();
}

static int namer_users;

int trace_namer_open(struct trace_namer **out, struct err *e)
{
    AcquireSRWLockExclusive(&dbghelp_lock);
    int ok = namer_users > 0;
    if (!ok) {
        SymSetOptions(SYMOPT_UNDNAME | SYMOPT_DEFERRED_LOADS | SYMOPT_LOAD_LINES |
                      SYMOPT_FAIL_CRITICAL_ERRORS | SYMOPT_NO_PROMPTS);
        ok = SymInitialize(namer_session(), NULL, FALSE) != FALSE;
    }
    if (ok)
        namer_users++;
    ReleaseSRWLockExclusive(&dbghelp_lock);
    if (!ok) {
        *out = NULL;
        return err_set(e, ERR_IO, "cannot name call stacks: DbgHelp failed (error %lu)",
                       (unsigned long)GetLastError());
    }
    struct trace_namer *nm = xcalloc(1, sizeof(*nm));
    nm->next = 0x100000000000ULL;
    *out = nm;
    return 0;
}

/* The module's base in the session (loaded the first time): 0 when it cannot be read. */
static uint64_t namer_module(struct trace_namer *nm, const char *path)
{
    for (size_t i = 0; i < nm->n; i++)
        if (strcmp(nm->m[i].path, path) == 0)
            return nm->m[i].base;
    uint64_t base = nm->next;
    nm->next += 0x100000000ULL; /* 4 GiB apart: no image is bigger */
    wchar_t *w = wide_of(path);
    DWORD64 got = *path ? SymLoadModuleExW(namer_session(), NULL, w, NULL, base, 0, NULL, 0) : 0;
    free(w);
    nm->m = xgrow(nm->m, &nm->cap, nm->n + 1, sizeof(*nm->m));
    nm->m[nm->n++] = (struct nmod){xstrdup(path), got ? got : 0};
    return got;
}

int trace_namer_frames(struct trace_namer *nm, const char *module, const char *build_id,
                       uint64_t offset, struct trace_name *v, int max, struct err *e)
{
    (void)build_id, (void)max;
    memset(v, 0, sizeof(*v));
    AcquireSRWLockExclusive(&dbghelp_lock);
    uint64_t base = namer_module(nm, module);
    if (!base) {
        ReleaseSRWLockExclusive(&dbghelp_lock);
        return err_set(e, ERR_NOTFOUND, "%s: no symbols", module);
    }
    union {
        SYMBOL_INFO info;
        char room[sizeof(SYMBOL_INFO) + 512];
    } sym;
    memset(&sym, 0, sizeof(sym));
    sym.info.SizeOfStruct = sizeof(SYMBOL_INFO);
    sym.info.MaxNameLen = 511;
    DWORD64 disp = 0;
    if (SymFromAddr(namer_session(), base + offset, &disp, &sym.info) && sym.info.Name[0])
        v->function = xstrdup(sym.info.Name);
    IMAGEHLP_LINE64 line;
    memset(&line, 0, sizeof(line));
    line.SizeOfStruct = sizeof(line);
    DWORD d32 = 0;
    if (SymGetLineFromAddr64(namer_session(), base + offset, &d32, &line) && line.FileName) {
        v->file = xstrdup(line.FileName);
        v->line = (int)line.LineNumber;
    }
    ReleaseSRWLockExclusive(&dbghelp_lock);
    return 1;
}

void trace_namer_close(struct trace_namer *nm)
{
    if (!nm)
        return;
    AcquireSRWLockExclusive(&dbghelp_lock);
    for (size_t i = 0; i < nm->n; i++) {
        if (nm->m[i].base)
            SymUnloadModule64(namer_session(), nm->m[i].base);
        free(nm->m[i].path);
    }
    if (--namer_users == 0)
        SymCleanup(namer_session());
    ReleaseSRWLockExclusive(&dbghelp_lock);
    free(nm->m);
    free(nm);
}
