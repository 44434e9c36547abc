/*
 * Call stacks by elfutils' libdw, as strace and systemd-coredump take them: a Dwfl per
 * process, its modules read from /proc/PID/maps, attached to the tracer's own stops (our
 * thread callbacks: the stopped thread's registers by PTRACE_GETREGS, its stack by
 * process_vm_readv a page at a time, not a ptrace peek a word), each stack walked by
 * dwfl_getthread_frames. The modules are read again only when code may have been mapped
 * (trace_unwinder_stale): re-reading the maps at every call is what makes `strace -k` slow.
 */
#define _GNU_SOURCE
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>

#include "trace/trace.h"
#include "util/xalloc.h"

/* Stack memory is read a page at a time: a walk reads a few words of a page or two, and one
 * read of a page costs what one ptrace peek of a word does. Cleared at each walk. */
#define CACHE_LINES 4
#define CACHE_PAGE  4096

/*
 * The fast walk: at each address a frame is at, the CFI's rule as four numbers (the CFA a
 * register plus an offset, the return address and rbp at offsets from it, or rbp unchanged),
 * found once by libdw and kept with the frame's module, build id and offset, so a walk is a few
 * stack reads and lookups. Where the CFI says more than that (a signal frame, an expression),
 * or has nothing, the whole stack is libdw's own walk.
 */
struct rule {
    uint64_t at;  /* the address looked up; 0: an empty slot */
    int how;      /* RULE_* */
    int cfa_reg;  /* DWARF's numbers: 6 rbp, 7 rsp */
    int rbp_same; /* rbp is the caller's */
    int64_t cfa_off, ra_off, rbp_off;
    const char *module; /* dwfl's: valid until the modules are read again */
    uint64_t offset;
    char build_id[41];
};

enum {
    RULE_LIBDW,  /* not as simple: libdw walks the stack */
    RULE_STEP,   /* one frame up by the rule */
    RULE_LAST,   /* the outermost frame: the return address is undefined */
    RULE_NOWHERE /* in no module: the walk ends with it, as libdw's does */
};

struct trace_unwinder {
    int64_t pid;
    pid_t tid;                           /* the thread being walked */
    const struct user_regs_struct *regs; /* its registers, when the tracer has them */
    struct cache_line {
        uint64_t page;
        int valid;
        unsigned char b[CACHE_PAGE];
    } cache[CACHE_LINES];
    Dwfl *dwfl;                     /* NULL: to be made at the next unwind */
    char ids[TRACE_MAX_FRAMES][41]; /* the frames' build ids, hex */
    /* The walk in progress. */
    struct trace_frame *frames;
    int n, max;
    struct rule *rules; /* open addressing by address; emptied when the modules go */
    size_t nrules, rules_cap;
};

static const Dwfl_Callbacks proc_callbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
};

static pid_t next_thread(Dwfl *dwfl, void *arg, void **thread_arg)
{
    (void)dwfl;
    struct trace_unwinder *u = arg;
    if (*thread_arg)
        return 0; /* one thread a walk: the one asked for */
    *thread_arg = u;
    return u->tid;
}

static bool get_thread(Dwfl *dwfl, pid_t tid, void *arg, void **thread_arg)
{
    (void)dwfl;
    struct trace_unwinder *u = arg;
    *thread_arg = u;
    return tid == u->tid;
}

static int read_word(struct trace_unwinder *u, uint64_t addr, uint64_t *out)
{
    uint64_t page = addr & ~(uint64_t)(CACHE_PAGE - 1);
    struct cache_line *l = &u->cache[(page / CACHE_PAGE) % CACHE_LINES];
    if (!l->valid || l->page != page) {
        struct iovec local = {l->b, CACHE_PAGE}, remote = {(void *)(uintptr_t)page, CACHE_PAGE};
        l->valid = process_vm_readv((pid_t)u->pid, &local, 1, &remote, 1, 0) == CACHE_PAGE;
        l->page = page;
        if (!l->valid) {
            errno = 0;
            long w = ptrace(PTRACE_PEEKDATA, u->tid, (void *)(uintptr_t)addr, 0);
            if (errno)
                return -1;
            memcpy(out, &w, sizeof(*out));
            return 0;
        }
    }
    memcpy(out, l->b + (addr - page), sizeof(*out));
    return 0;
}

static bool memory_read(Dwfl *dwfl, Dwarf_Addr addr, Dwarf_Word *result, void *arg)
{
    (void)dwfl;
    struct trace_unwinder *u = arg;
    uint64_t w;
    if ((addr & (CACHE_PAGE - 1)) > CACHE_PAGE - sizeof(w)) {
        /* Across two pages: byte by byte from both. */
        uint64_t lo, hi;
        uint64_t a = addr & ~(uint64_t)7;
        if (read_word(u, a, &lo) < 0 || read_word(u, a + 8, &hi) < 0)
            return false;
        unsigned shift = (unsigned)(addr - a) * 8;
        w = (lo >> shift) | (hi << (64 - shift));
    } else if (read_word(u, addr, &w) < 0) {
        return false;
    }
    *result = w;
    return true;
}

/* The thread's registers, stopped at the call's exit, in DWARF's order for x86-64: rax, rdx,
 * rcx, rbx, rsi, rdi, rbp, rsp, r8-r15, then the return address (rip). */
static bool set_initial_registers(Dwfl_Thread *thread, void *thread_arg)
{
    struct trace_unwinder *u = thread_arg;
    struct user_regs_struct r;
    if (u->regs)
        r = *u->regs; /* the tracer's, read at its stop */
    else if (ptrace(PTRACE_GETREGS, u->tid, 0, &r) < 0)
        return false;
    const Dwarf_Word regs[17] = {r.rax, r.rdx, r.rcx, r.rbx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8,
                                 r.r9,  r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rip};
    return dwfl_thread_state_registers(thread, 0, 17, regs);
}

static const Dwfl_Thread_Callbacks thread_callbacks = {
    .next_thread = next_thread,
    .get_thread = get_thread,
    .memory_read = memory_read,
    .set_initial_registers = set_initial_registers,
};

static const Dwfl_Callbacks offline_callbacks = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = dwfl_offline_section_address,
};

int trace_unwinder_open(struct trace_unwinder **out, int64_t pid, struct err *e)
{
    (void)e;
    struct trace_unwinder *u = xcalloc(1, sizeof(*u));
    u->pid = pid;
    *out = u;
    return 0;
}

void trace_unwinder_stale(struct trace_unwinder *u)
{
    if (u->dwfl)
        dwfl_end(u->dwfl);
    u->dwfl = NULL;
    if (u->rules)
        memset(u->rules, 0, u->rules_cap * sizeof(*u->rules));
    u->nrules = 0;
}

struct overlap {
    uint64_t start, end;
    int found;
};

static int module_overlaps(Dwfl_Module *m, void **user, const char *name, Dwarf_Addr low, void *arg)
{
    (void)m, (void)user, (void)name;
    struct overlap *o = arg;
    Dwarf_Addr end = 0;
    dwfl_module_info(m, NULL, NULL, &end, NULL, NULL, NULL, NULL);
    if (low < o->end && end > o->start) {
        o->found = 1;
        return DWARF_CB_ABORT;
    }
    return DWARF_CB_OK;
}

int trace_unwinder_knows(struct trace_unwinder *u, uint64_t start, uint64_t len)
{
    if (!u->dwfl)
        return 0;
    struct overlap o = {start, start + len, 0};
    if (o.end < o.start)
        o.end = UINT64_MAX;
    dwfl_getmodules(u->dwfl, module_overlaps, &o, 0);
    return o.found;
}

static int make(struct trace_unwinder *u, struct err *e)
{
    u->dwfl = dwfl_begin(&proc_callbacks);
    if (!u->dwfl)
        return err_set(e, ERR_IO, "cannot unwind process %lld: %s", (long long)u->pid,
                       dwfl_errmsg(-1));
    int rc = dwfl_linux_proc_report(u->dwfl, (pid_t)u->pid);
    if (rc == 0 && dwfl_report_end(u->dwfl, NULL, NULL) != 0)
        rc = -1;
    if (rc == 0 && !dwfl_attach_state(u->dwfl, NULL, (pid_t)u->pid, &thread_callbacks, u))
        rc = -1;
    if (rc != 0) {
        int saved = dwfl_errno();
        dwfl_end(u->dwfl);
        u->dwfl = NULL;
        return err_set(e, ERR_IO, "cannot unwind process %lld: %s", (long long)u->pid,
                       rc > 0 ? strerror(rc) : dwfl_errmsg(saved));
    }
    return 0;
}

static void hex(char *out, const unsigned char *id, int len)
{
    static const char digits[] = "0123456789abcdef";
    if (len > 20)
        len = 20;
    for (int i = 0; i < len; i++) {
        out[2 * i] = digits[id[i] >> 4];
        out[2 * i + 1] = digits[id[i] & 15];
    }
    out[2 * (len > 0 ? len : 0)] = '\0';
}

/* The module that holds at: its name, at as an address of its file, its build id in hex
 * ("" when none); "" and at itself when no module does (NULL). */
static Dwfl_Module *module_at(struct trace_unwinder *u, uint64_t at, const char **name,
                              uint64_t *offset, char id_hex[41])
{
    *name = "";
    *offset = at;
    id_hex[0] = '\0';
    Dwfl_Module *m = dwfl_addrmodule(u->dwfl, at);
    if (!m)
        return NULL;
    const char *n = dwfl_module_info(m, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    Dwarf_Addr bias = 0;
    if (dwfl_module_getelf(m, &bias))
        *offset = at - bias;
    const unsigned char *id;
    GElf_Addr id_at;
    int len = dwfl_module_build_id(m, &id, &id_at);
    if (len > 0)
        hex(id_hex, id, len);
    *name = n ? n : "";
    return m;
}

static int frame(Dwfl_Frame *state, void *arg)
{
    struct trace_unwinder *u = arg;
    Dwarf_Addr pc;
    bool activation;
    if (!dwfl_frame_pc(state, &pc, &activation))
        return DWARF_CB_ABORT;
    Dwarf_Addr at = activation ? pc : pc - 1;
    struct trace_frame *f = &u->frames[u->n];
    memset(f, 0, sizeof(*f));
    f->pc = at;
    f->build_id = u->ids[u->n];
    module_at(u, at, &f->module, &f->offset, u->ids[u->n]);
    return ++u->n >= u->max ? DWARF_CB_ABORT : DWARF_CB_OK;
}

/* A location the CFI gives as the CFA plus an offset: 0 and *off, or -1. */
static int cfa_plus(const Dwarf_Op *ops, size_t nops, int64_t *off)
{
    if (nops == 1 && ops[0].atom == DW_OP_call_frame_cfa) {
        *off = 0;
        return 0;
    }
    if (nops == 2 && ops[0].atom == DW_OP_call_frame_cfa && ops[1].atom == DW_OP_plus_uconst) {
        *off = (int64_t)ops[1].number;
        return 0;
    }
    return -1;
}

/* The rule at frame address at (rip of the innermost frame, a return address - 1 above). */
static void rule_make(struct trace_unwinder *u, uint64_t at, struct rule *r)
{
    memset(r, 0, sizeof(*r));
    r->at = at;
    r->how = RULE_LIBDW;
    Dwfl_Module *m = module_at(u, at, &r->module, &r->offset, r->build_id);
    if (!m) {
        r->how = RULE_NOWHERE;
        return;
    }
    Dwarf_Addr bias = 0;
    /* As libdwfl looks: .eh_frame first, then .debug_frame. */
    Dwarf_Frame *fr = NULL;
    Dwarf_CFI *cfi = dwfl_module_eh_cfi(m, &bias);
    if (!cfi || dwarf_cfi_addrframe(cfi, at - bias, &fr) != 0) {
        fr = NULL;
        cfi = dwfl_module_dwarf_cfi(m, &bias);
        if (!cfi || dwarf_cfi_addrframe(cfi, at - bias, &fr) != 0)
            return;
    }
    bool signal = false;
    int ra_reg = dwarf_frame_info(fr, NULL, NULL, &signal);
    Dwarf_Op mem[3], *ops;
    size_t nops;
    if (signal || ra_reg < 0 || dwarf_frame_cfa(fr, &ops, &nops) != 0 || nops != 1)
        goto done;
    if (ops[0].atom == DW_OP_bregx) { /* libdw's form: the register, then the offset */
        r->cfa_reg = (int)ops[0].number;
        r->cfa_off = (int64_t)ops[0].number2;
    } else if (ops[0].atom >= DW_OP_breg0 && ops[0].atom <= DW_OP_breg31) {
        r->cfa_reg = ops[0].atom - DW_OP_breg0;
        r->cfa_off = (int64_t)ops[0].number;
    } else {
        goto done;
    }
    if (r->cfa_reg != 6 && r->cfa_reg != 7)
        goto done; /* another register's: not kept by the walk */
    if (dwarf_frame_register(fr, ra_reg, mem, &ops, &nops) != 0)
        goto done;
    int last = nops == 0 && ops == mem; /* undefined: nothing calls this frame */
    if (!last && cfa_plus(ops, nops, &r->ra_off) < 0)
        goto done;
    if (dwarf_frame_register(fr, 6, mem, &ops, &nops) != 0)
        goto done;
    if (nops == 0 && ops == NULL)
        r->rbp_same = 1;
    else if (cfa_plus(ops, nops, &r->rbp_off) < 0)
        goto done;
    r->how = last ? RULE_LAST : RULE_STEP;
done:
    free(fr);
}

static const struct rule *rule_of(struct trace_unwinder *u, uint64_t at)
{
    if (2 * (u->nrules + 1) > u->rules_cap) {
        size_t n = u->rules_cap ? 2 * u->rules_cap : 1024;
        struct rule *v = xcalloc(n, sizeof(*v));
        for (size_t i = 0; i < u->rules_cap; i++)
            if (u->rules[i].at) {
                size_t h = (size_t)(u->rules[i].at * 0x9e3779b97f4a7c15ULL >> 20) & (n - 1);
                while (v[h].at)
                    h = (h + 1) & (n - 1);
                v[h] = u->rules[i];
            }
        free(u->rules);
        u->rules = v;
        u->rules_cap = n;
    }
    size_t h = (size_t)(at * 0x9e3779b97f4a7c15ULL >> 20) & (u->rules_cap - 1);
    for (; u->rules[h].at; h = (h + 1) & (u->rules_cap - 1))
        if (u->rules[h].at == at)
            return &u->rules[h];
    rule_make(u, at, &u->rules[h]);
    u->nrules++;
    return &u->rules[h];
}

/* The walk by the rules: how many frames, or -1 when it is libdw's to do. */
static int fast_walk(struct trace_unwinder *u, const struct user_regs_struct *r)
{
    uint64_t pc = r->rip, sp = r->rsp, bp = r->rbp;
    for (int n = 0; n < u->max; n++) {
        uint64_t at = n ? pc - 1 : pc;
        const struct rule *ru = rule_of(u, at);
        if (ru->how == RULE_LIBDW)
            return -1;
        struct trace_frame *f = &u->frames[n];
        f->pc = at;
        f->module = ru->module;
        memcpy(u->ids[n], ru->build_id, sizeof(ru->build_id));
        f->build_id = u->ids[n];
        f->offset = ru->offset;
        if (ru->how != RULE_STEP)
            return n + 1;
        uint64_t cfa = (ru->cfa_reg == 7 ? sp : bp) + (uint64_t)ru->cfa_off, ra;
        if (read_word(u, cfa + (uint64_t)ru->ra_off, &ra) < 0 || ra == 0)
            return n + 1;
        if (!ru->rbp_same && read_word(u, cfa + (uint64_t)ru->rbp_off, &bp) < 0)
            return -1;
        if (n && cfa <= sp)
            return -1; /* a stack that does not go up: libdw says what it makes of it */
        sp = cfa;
        pc = ra;
    }
    return u->max;
}

int trace_unwind(struct trace_unwinder *u, int64_t tid, const void *regs,
                 struct trace_frame *frames, int max, struct err *e)
{
    if (max > TRACE_MAX_FRAMES)
        max = TRACE_MAX_FRAMES;
    int rc;
    if (!u->dwfl && (rc = make(u, e)) < 0)
        return rc;
    u->frames = frames;
    u->n = 0;
    u->max = max;
    u->tid = (pid_t)tid;
    u->regs = regs;
    for (int i = 0; i < CACHE_LINES; i++)
        u->cache[i].valid = 0; /* the thread ran since the last walk */
    if (max <= 0)
        return 0;
    struct user_regs_struct now;
    const struct user_regs_struct *r = regs;
    if (!r && ptrace(PTRACE_GETREGS, u->tid, 0, &now) == 0)
        r = &now;
    if (r && (rc = fast_walk(u, r)) > 0)
        return rc;
    memset(frames, 0, (size_t)max * sizeof(*frames));
    /* -1 also when a frame cannot be unwound further (no CFI): what was walked holds. */
    if (dwfl_getthread_frames(u->dwfl, (pid_t)tid, frame, u) != 0 && u->n == 0)
        return err_set(e, ERR_IO, "cannot unwind thread %lld: %s", (long long)tid, dwfl_errmsg(-1));
    return u->n;
}

void trace_unwinder_close(struct trace_unwinder *u)
{
    if (!u)
        return;
    if (u->dwfl)
        dwfl_end(u->dwfl);
    free(u->rules);
    free(u);
}

/* The modules named so far, each read once. */
struct namer_module {
    char *path;
    char *build_id; /* hex, as the file has it now; "" when none */
    Dwfl *dwfl;     /* NULL: it could not be read (why) */
    Dwfl_Module *m;
    char *why;
};

struct trace_namer {
    struct namer_module *v;
    size_t n, cap;
};

int trace_namer_open(struct trace_namer **out, struct err *e)
{
    (void)e;
    unsetenv("DEBUGINFOD_URLS"); /* nothing is fetched over the network */
    *out = xcalloc(1, sizeof(**out));
    return 0;
}

static struct namer_module *module_of(struct trace_namer *nm, const char *path)
{
    for (size_t i = 0; i < nm->n; i++)
        if (strcmp(nm->v[i].path, path) == 0)
            return &nm->v[i];
    nm->v = xgrow(nm->v, &nm->cap, nm->n + 1, sizeof(*nm->v));
    struct namer_module *x = &nm->v[nm->n++];
    memset(x, 0, sizeof(*x));
    x->path = xstrdup(path);
    x->build_id = xstrdup("");
    char why[512];
    Dwfl *d = dwfl_begin(&offline_callbacks);
    Dwfl_Module *m = d ? dwfl_report_offline(d, path, path, -1) : NULL;
    if (!m || dwfl_report_end(d, NULL, NULL) != 0) {
        snprintf(why, sizeof(why), "cannot read '%s': %s", path, dwfl_errmsg(-1));
        x->why = xstrdup(why);
        if (d)
            dwfl_end(d);
        return x;
    }
    x->dwfl = d;
    x->m = m;
    const unsigned char *id;
    GElf_Addr id_at;
    int len = dwfl_module_build_id(m, &id, &id_at);
    if (len > 0) {
        char hexed[41];
        hex(hexed, id, len);
        free(x->build_id);
        x->build_id = xstrdup(hexed);
    }
    return x;
}

/* A DIE's name, through its abstract origin (an inlined instance names none of its own). */
static const char *die_name(Dwarf_Die *d)
{
    Dwarf_Attribute attr;
    return dwarf_formstring(dwarf_attr_integrate(d, DW_AT_name, &attr));
}

/* The source file of a DW_AT_call_file index in the unit cu, or NULL. */
static const char *call_file(Dwarf_Die *cu, Dwarf_Die *d)
{
    Dwarf_Attribute attr;
    Dwarf_Word idx;
    Dwarf_Files *files;
    size_t n;
    if (dwarf_formudata(dwarf_attr(d, DW_AT_call_file, &attr), &idx) != 0 ||
        dwarf_getsrcfiles(cu, &files, &n) != 0 || idx >= n)
        return NULL;
    return dwarf_filesrc(files, idx, NULL, NULL);
}

int trace_namer_frames(struct trace_namer *nm, const char *module, const char *build_id,
                       uint64_t offset, struct trace_name *v, int max, struct err *e)
{
    if (max < 1)
        return 0;
    memset(v, 0, sizeof(*v));
    if (!module || !*module)
        return err_set(e, ERR_NOTFOUND, "the frame is in no module");
    struct namer_module *x = module_of(nm, module);
    if (!x->dwfl)
        return err_set(e, ERR_IO, "%s", x->why);
    if (build_id && *build_id && strcmp(build_id, x->build_id) != 0)
        return err_set(e, ERR_NOTFOUND,
                       "'%s' is not the file that ran (its build id is %s, the recorded one %s)",
                       module, *x->build_id ? x->build_id : "none", build_id);
    Dwfl_Module *m = x->m;
    Dwarf_Addr bias = 0;
    dwfl_module_getelf(m, &bias);
    Dwarf_Addr at = offset + bias;
    GElf_Off off;
    GElf_Sym sym;
    const char *symbol = dwfl_module_addrinfo(m, at, &off, &sym, NULL, NULL, NULL);
    if (symbol)
        v[0].function = xstrdup(symbol);
    /* The unit that holds the address: by .debug_aranges, or (clang writes none) by each
     * unit's ranges. */
    Dwarf_Addr cu_bias = 0;
    Dwarf_Die *cu = dwfl_module_addrdie(m, at, &cu_bias);
    for (Dwarf_Die *u = NULL; !cu && (u = dwfl_module_nextcu(m, u, &cu_bias)) != NULL;)
        if (dwarf_haspc(u, at - cu_bias) > 0)
            cu = u;
    if (!cu)
        return 1;
    Dwarf_Line *dl = dwarf_getsrc_die(cu, at - cu_bias);
    int ln = 0;
    const char *src = dl ? dwarf_linesrc(dl, NULL, NULL) : NULL;
    if (src && dwarf_lineno(dl, &ln) == 0) {
        v[0].file = xstrdup(src);
        v[0].line = ln;
    }
    /* Code inlined into the symbol's function (an optimized build): a frame for each inlined
     * function, innermost first, each called at its DW_AT_call_file:line in the next. */
    Dwarf_Die *scopes = NULL;
    int nscopes = dwarf_getscopes(cu, at - cu_bias, &scopes);
    if (nscopes > 0) {
        /* The innermost scope's own nesting, through every function inlined around it (the
         * scopes by address stop at the first inlined one, as eu-addr2line -i finds). */
        Dwarf_Die inner = scopes[0];
        free(scopes);
        scopes = NULL;
        nscopes = dwarf_getscopes_die(&inner, &scopes);
    }
    int k = 0;
    for (int i = 0; i < nscopes && k < max; i++) {
        int tag = dwarf_tag(&scopes[i]);
        if (tag == DW_TAG_subprogram)
            break; /* the symbol's own function: named already */
        if (tag != DW_TAG_inlined_subroutine)
            continue;
        const char *name = die_name(&scopes[i]);
        if (name) {
            free(v[k].function);
            v[k].function = xstrdup(name);
        }
        if (k + 1 >= max)
            break;
        /* Its caller: the next function scope out, at the call's line. */
        struct trace_name *up = &v[++k];
        memset(up, 0, sizeof(*up));
        Dwarf_Attribute attr;
        Dwarf_Word line = 0;
        const char *cf = call_file(cu, &scopes[i]);
        if (cf && dwarf_formudata(dwarf_attr(&scopes[i], DW_AT_call_line, &attr), &line) == 0) {
            up->file = xstrdup(cf);
            up->line = (int)line;
        }
        if (symbol)
            up->function = xstrdup(symbol); /* unless an inlined function encloses it */
    }
    free(scopes);
    return k + 1;
}

int trace_namer_name(struct trace_namer *nm, const char *module, const char *build_id,
                     uint64_t offset, char **function, char **file, int *line, struct err *e)
{
    struct trace_name v[1];
    int n = trace_namer_frames(nm, module, build_id, offset, v, 1, e);
    *function = n > 0 ? v[0].function : NULL;
    *file = n > 0 ? v[0].file : NULL;
    *line = n > 0 ? v[0].line : 0;
    return n < 0 ? n : 0;
}

void trace_namer_close(struct trace_namer *nm)
{
    if (!nm)
        return;
    for (size_t i = 0; i < nm->n; i++) {
        if (nm->v[i].dwfl)
            dwfl_end(nm->v[i].dwfl);
        free(nm->v[i].path);
        free(nm->v[i].build_id);
        free(nm->v[i].why);
    }
    free(nm->v);
    free(nm);
}

int trace_name(const char *module, uint64_t offset, char **function, char **file, int *line,
               struct err *e)
{
    struct trace_namer *nm;
    int rc = trace_namer_open(&nm, e);
    if (rc == 0)
        rc = trace_namer_name(nm, module, NULL, offset, function, file, line, e);
    trace_namer_close(nm);
    return rc;
}
