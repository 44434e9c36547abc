/*
 * Windows tests, run under Wine by ctest (or on Windows itself). Self-checking: it prints one
 * line per check and ends with "N passed, N failed". It drives win_child.exe, whose reserve,
 * commit, protect, decommit, release and file mapping are known, through vmsnap.exe, and checks
 * a walk against winedbg's own listing when winedbg is there.
 * usage: test_win VMSNAP_EXE WIN_CHILD_EXE WIN_SITES_EXE [DIR]
 */
#include <windows.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture/windows_regions.h"

static int passed, failed;

static void check(int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s: ", ok ? "ok" : "FAILED");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (ok)
        passed++;
    else
        failed++;
}

/* Starts a command line with stdout and stderr into a pipe; *rd reads them. */
static BOOL start_captured(const char *cmdline, PROCESS_INFORMATION *pi, HANDLE *rd)
{
    SECURITY_ATTRIBUTES sa = {sizeof(sa), NULL, TRUE};
    HANDLE wr;
    CreatePipe(rd, &wr, &sa, 0);
    SetHandleInformation(*rd, HANDLE_FLAG_INHERIT, 0);
    STARTUPINFOA si;
    memset(&si, 0, sizeof(si));
    si.cb = sizeof(si);
    si.dwFlags = STARTF_USESTDHANDLES;
    si.hStdOutput = wr;
    si.hStdError = wr;
    si.hStdInput = GetStdHandle(STD_INPUT_HANDLE);
    char *cmd = _strdup(cmdline);
    BOOL ok = CreateProcessA(NULL, cmd, NULL, NULL, TRUE, 0, NULL, NULL, &si, pi);
    free(cmd);
    CloseHandle(wr);
    return ok;
}

/* Reads a pipe to its end into a heap string. */
static char *drain(HANDLE rd)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    DWORD got;
    while (ReadFile(rd, buf + n, (DWORD)(cap - n - 1), &got, NULL) && got) {
        n += got;
        if (cap - n < 4096)
            buf = realloc(buf, cap *= 2);
    }
    buf[n] = '\0';
    return buf;
}

/* Runs a command line, returns its exit code and (heap) output, stdout and stderr together. */
static int run(const char *cmdline, char **output)
{
    PROCESS_INFORMATION pi;
    HANDLE rd;
    if (!start_captured(cmdline, &pi, &rd)) {
        CloseHandle(rd);
        *output = malloc(4200);
        snprintf(*output, 4200, "cannot run: %s", cmdline);
        return -1;
    }
    *output = drain(rd);
    CloseHandle(rd);
    WaitForSingleObject(pi.hProcess, INFINITE);
    DWORD code = 0;
    GetExitCodeProcess(pi.hProcess, &code);
    CloseHandle(pi.hProcess);
    CloseHandle(pi.hThread);
    return (int)code;
}

/*
 * Checks that vmsnap.exe's one-value query on db answers 1 (a condition that holds), and
 * prints what: "ok: what (the output)".
 */
static void check_query(const char *vmsnap, const char *db, const char *sql, const char *what)
{
    char cmd[4096], *text = NULL;
    snprintf(cmd, sizeof(cmd), "\"%s\" -d \"%s\" query \"%s\"", vmsnap, db, sql);
    int rc = run(cmd, &text);
    check(rc == 0 && strchr(text, '\n') && atoi(strchr(text, '\n') + 1) == 1, "%s (%s)", what,
          text);
    free(text);
}

struct child {
    HANDLE process, in, out;
    DWORD pid;
};

static void child_start(struct child *c, const char *exe)
{
    SECURITY_ATTRIBUTES sa = {sizeof(sa), NULL, TRUE};
    HANDLE in_rd, in_wr, out_rd, out_wr;
    CreatePipe(&in_rd, &in_wr, &sa, 0);
    CreatePipe(&out_rd, &out_wr, &sa, 0);
    SetHandleInformation(in_wr, HANDLE_FLAG_INHERIT, 0);
    SetHandleInformation(out_rd, HANDLE_FLAG_INHERIT, 0);
    STARTUPINFOA si;
    PROCESS_INFORMATION pi;
    memset(&si, 0, sizeof(si));
    si.cb = sizeof(si);
    si.dwFlags = STARTF_USESTDHANDLES;
    si.hStdInput = in_rd;
    si.hStdOutput = out_wr;
    si.hStdError = GetStdHandle(STD_ERROR_HANDLE);
    char *cmd = _strdup(exe);
    if (!CreateProcessA(NULL, cmd, NULL, NULL, TRUE, 0, NULL, NULL, &si, &pi)) {
        printf("FAILED: cannot start %s\n", exe);
        exit(1);
    }
    free(cmd);
    CloseHandle(in_rd);
    CloseHandle(out_wr);
    CloseHandle(pi.hThread);
    c->process = pi.hProcess;
    c->pid = pi.dwProcessId;
    c->in = in_wr;
    c->out = out_rd;
}

/* Sends a command and returns the value after "ok" (0 if none); fails the run on "err". */
static unsigned long long ask(struct child *c, const char *fmt, ...)
{
    char line[4096], reply[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    line[n++] = '\n';
    DWORD w;
    WriteFile(c->in, line, (DWORD)n, &w, NULL);
    size_t k = 0;
    DWORD got;
    while (k < sizeof(reply) - 1 && ReadFile(c->out, reply + k, 1, &got, NULL) && got) {
        if (reply[k] == '\n')
            break;
        k++;
    }
    reply[k] = '\0';
    if (k && reply[k - 1] == '\r')
        reply[k - 1] = '\0';
    if (strncmp(reply, "ok", 2) != 0) {
        printf("FAILED: win_child: '%.*s' -> '%s'\n", n - 1, line, reply);
        failed++;
        return 0;
    }
    return reply[2] ? strtoull(reply + 3, NULL, 0) : 0;
}

/* Finds {"change":"KIND","start":"0xS","end":"0xE" in diff JSON. */
static int has_change(const char *json, const char *kind, unsigned long long s,
                      unsigned long long e)
{
    char want[160];
    snprintf(want, sizeof(want), "{\"change\":\"%s\",\"start\":\"0x%llx\",\"end\":\"0x%llx\"", kind,
             s, e);
    return strstr(json, want) != NULL;
}

static int count_changes(const char *json)
{
    int n = 0;
    for (const char *p = strstr(json, "{\"change\":\""); p; p = strstr(p + 1, "{\"change\":\""))
        n++;
    return n;
}

static void test_pure_helpers(void)
{
    char p[5];
    win_protect_perms(WPAGE_READWRITE, WMEM_PRIVATE, p);
    check(strcmp(p, "rw-p") == 0, "PAGE_READWRITE private is rw-p (%s)", p);
    win_protect_perms(WPAGE_EXECUTE_WRITECOPY, WMEM_IMAGE, p);
    check(strcmp(p, "rwxc") == 0, "PAGE_EXECUTE_WRITECOPY image is rwxc (%s)", p);
    win_protect_perms(WPAGE_READWRITE | WPAGE_GUARD, WMEM_PRIVATE, p);
    check(strcmp(p, "rw-g") == 0, "a guard page shows g (%s)", p);
    char out[256];
    struct win_drive d[] = {{'C', "\\Device\\HarddiskVolume3"}};
    win_dos_path("\\Device\\HarddiskVolume3\\Windows\\a.dll", d, 1, out, sizeof(out));
    check(strcmp(out, "C:\\Windows\\a.dll") == 0, "device path to drive letter (%s)", out);
    win_dos_path("\\??\\C:\\windows\\system32\\ntdll.dll", d, 1, out, sizeof(out));
    check(strcmp(out, "C:\\windows\\system32\\ntdll.dll") == 0, "Wine's \\??\\ prefix (%s)", out);
}

static void test_known_changes(const char *vmsnap, const char *child_exe, const char *dir)
{
    struct child c;
    char cmd[2048], db[MAX_PATH], *out = NULL;
    snprintf(db, sizeof(db), "%s\\win.db", dir);
    DeleteFileA(db);
    child_start(&c, child_exe);
    check(ask(&c, "pid") == c.pid, "win_child answers with its pid %lu", (unsigned long)c.pid);
    unsigned long long r = ask(&c, "reserve %d", 1 << 20);
    ask(&c, "commit 0x%llx %d rw-", r, 65536);
    unsigned long long r2 = ask(&c, "reserve %d", 4 << 20);
    unsigned long long r3 = ask(&c, "reserve %d", 1 << 20);
    ask(&c, "commit 0x%llx %d rw-", r3, 65536);

    snprintf(cmd, sizeof(cmd), "\"%s\" -d \"%s\" snap -p %lu --detail maps --label a", vmsnap, db,
             (unsigned long)c.pid);
    int rc = run(cmd, &out);
    check(rc == 0, "snap a exits 0 (%d: %s)", rc, out);
    free(out);

    ask(&c, "commit 0x%llx %d rw-", r + 65536, 131072);
    ask(&c, "protect 0x%llx %d r--", r, 4096);
    ask(&c, "decommit 0x%llx %d", r + 32768, 32768);
    /* Committing right after a committed block merges them in VirtualQueryEx's answer. */
    ask(&c, "commit 0x%llx %d rw-", r3 + 65536, 131072);
    char file[MAX_PATH];
    snprintf(file, sizeof(file), "%s\\mapped file.bin", dir);
    /* Map before releasing, so the view cannot land where the reservation was. */
    unsigned long long v = ask(&c, "mapfile 65536 %s", file);
    ask(&c, "release 0x%llx", r2);
    snprintf(cmd, sizeof(cmd), "\"%s\" -d \"%s\" snap -p %lu --detail maps --label b", vmsnap, db,
             (unsigned long)c.pid);
    rc = run(cmd, &out);
    check(rc == 0, "snap b exits 0");
    free(out);

    snprintf(cmd, sizeof(cmd), "\"%s\" -d \"%s\" -j diff a b", vmsnap, db);
    rc = run(cmd, &out);
    check(rc == 1, "diff a b exits 1 (changes)");
    check(has_change(out, "committed", r + 65536, r + 196608), "committed 128 KiB at 0x%llx",
          r + 65536);
    check(has_change(out, "reprotected", r, r + 4096), "reprotected one page at 0x%llx", r);
    check(strstr(out, "\"perms\":\"r--p\"") && strstr(out, "\"before\":{\"perms\":\"rw-p\""),
          "reprotected from rw-p to r--p");
    check(has_change(out, "decommitted", r + 32768, r + 65536), "decommitted 32 KiB at 0x%llx",
          r + 32768);
    check(has_change(out, "freed", r2, r2 + (4 << 20)), "released reservation freed at 0x%llx", r2);
    check(has_change(out, "new", v, v + 65536), "mapped view new at 0x%llx", v);
    check(strstr(out, "mapped file.bin\"") != NULL, "the view is named by its file");
    check(has_change(out, "committed", r3 + 65536, r3 + 196608),
          "committed next to a committed block: only the new pages at 0x%llx", r3 + 65536);
    /* Nothing else in the ranges the child changed; elsewhere only the loader may differ. */
    int mine = has_change(out, "committed", r + 65536, r + 196608) +
               has_change(out, "reprotected", r, r + 4096) +
               has_change(out, "decommitted", r + 32768, r + 65536) +
               has_change(out, "freed", r2, r2 + (4 << 20)) + has_change(out, "new", v, v + 65536) +
               has_change(out, "committed", r3 + 65536, r3 + 196608);
    check(count_changes(out) == mine && mine == 6, "six changes made, six reported (%d in all)",
          count_changes(out));
    free(out);

    snprintf(cmd, sizeof(cmd), "\"%s\" -d \"%s\" diff b b", vmsnap, db);
    rc = run(cmd, &out);
    check(rc == 0, "diff of a snapshot with itself exits 0");
    free(out);

    /* record: three snapshots, then it stops by itself. */
    snprintf(cmd, sizeof(cmd), "\"%s\" -d \"%s\" record -p %lu -i 50ms -n 3 --detail smaps", vmsnap,
             db, (unsigned long)c.pid);
    rc = run(cmd, &out);
    check(rc == 0 && strstr(out, "recorded 3 snapshots"), "record -n 3 (%d: %s)", rc, out);
    free(out);
    snprintf(cmd, sizeof(cmd),
             "\"%s\" -d \"%s\" query \"SELECT count(*) AS n FROM snapshots s WHERE region_count "
             "= (SELECT count(*) FROM regions r WHERE r.snapshot_id = s.id)\"",
             vmsnap, db);
    rc = run(cmd, &out);
    check(rc == 0 && strstr(out, "5"), "every snapshot reads back whole (%s)", out);
    free(out);

    /* record stops at its duration, and when the target exits. */
    snprintf(cmd, sizeof(cmd), "\"%s\" -d \"%s\" record -p %lu -i 50ms -t 400ms", vmsnap, db,
             (unsigned long)c.pid);
    rc = run(cmd, &out);
    check(rc == 0 && strstr(out, "duration reached"), "record -t 400ms stops (%d: %s)", rc, out);
    free(out);
    snprintf(cmd, sizeof(cmd), "\"%s\" -d \"%s\" record -i 50ms -- cmd.exe /c exit 7", vmsnap, db);
    rc = run(cmd, &out);
    check(rc == 7, "record -- COMMAND exits with the command's status (%d: %s)", rc, out);
    free(out);
    {
        /* A second child that exits while recorded: the recorder notices and stops. */
        struct child d;
        child_start(&d, child_exe);
        ask(&d, "pid");
        char rcmd[2048];
        snprintf(rcmd, sizeof(rcmd), "\"%s\" -d \"%s\" record -p %lu -i 100ms", vmsnap, db,
                 (unsigned long)d.pid);
        PROCESS_INFORMATION pi;
        HANDLE rd;
        BOOL started = start_captured(rcmd, &pi, &rd);
        Sleep(400);
        DWORD w;
        WriteFile(d.in, "exit 0\n", 7, &w, NULL);
        DWORD waited = started ? WaitForSingleObject(pi.hProcess, 10000) : WAIT_FAILED;
        char *text = drain(rd);
        DWORD code = 99;
        if (started)
            GetExitCodeProcess(pi.hProcess, &code);
        check(waited == WAIT_OBJECT_0 && code == 0 && strstr(text, "target exited"),
              "record stops when the target exits (%lu: %s)", (unsigned long)code, text);
        free(text);
        CloseHandle(rd);
        if (started) {
            CloseHandle(pi.hProcess);
            CloseHandle(pi.hThread);
        }
    }

    {
        /* The named events: a mark, then a stop, each taken between snapshots. */
        char rcmd[2048];
        snprintf(rcmd, sizeof(rcmd), "\"%s\" -d \"%s\" record -p %lu -i 1h", vmsnap, db,
                 (unsigned long)c.pid);
        PROCESS_INFORMATION pi;
        HANDLE rd;
        BOOL started = start_captured(rcmd, &pi, &rd);
        char name[64];
        HANDLE mark = NULL, stop = NULL;
        for (int i = 0; started && i < 100 && (!mark || !stop); i++) {
            snprintf(name, sizeof(name), "Local\\vmsnap-mark-%lu", (unsigned long)pi.dwProcessId);
            if (!mark)
                mark = OpenEventA(EVENT_MODIFY_STATE, FALSE, name);
            snprintf(name, sizeof(name), "Local\\vmsnap-stop-%lu", (unsigned long)pi.dwProcessId);
            if (!stop)
                stop = OpenEventA(EVENT_MODIFY_STATE, FALSE, name);
            Sleep(50);
        }
        check(mark && stop, "record makes its mark and stop events");
        Sleep(500); /* the first snapshot */
        if (mark)
            SetEvent(mark);
        Sleep(500);
        /* vmsnap mark from another process: found through the database, woken by its event. */
        char mcmd[2048], *mtext = NULL;
        snprintf(mcmd, sizeof(mcmd), "\"%s\" -d \"%s\" mark --label win-mark", vmsnap, db);
        int mrc = run(mcmd, &mtext);
        check(mrc == 0 && atoi(mtext) > 0,
              "vmsnap mark wakes the recorder and prints the "
              "snapshot it took (%d: %s)",
              mrc, mtext);
        free(mtext);
        if (stop)
            SetEvent(stop);
        DWORD waited = started ? WaitForSingleObject(pi.hProcess, 10000) : WAIT_FAILED;
        char *text = drain(rd);
        DWORD code = 99;
        if (started)
            GetExitCodeProcess(pi.hProcess, &code);
        check(waited == WAIT_OBJECT_0 && code == 0 && strstr(text, "recorded 3 snapshots") &&
                  strstr(text, "terminated"),
              "a mark, vmsnap mark, then a stop (%lu: %s)", (unsigned long)code, text);
        free(text);
        if (mark)
            CloseHandle(mark);
        if (stop)
            CloseHandle(stop);
        CloseHandle(rd);
        if (started) {
            CloseHandle(pi.hProcess);
            CloseHandle(pi.hThread);
        }
        snprintf(rcmd, sizeof(rcmd),
                 "\"%s\" -d \"%s\" query \"SELECT count(*) FROM snapshots "
                 "WHERE label = 'mark-1' AND mark = 0 OR label = 'win-mark' AND mark = 1\"",
                 vmsnap, db);
        int qrc = run(rcmd, &text);
        check(qrc == 0 && strstr(text, "2"),
              "the marks are snapshots labelled mark-1 and win-mark (%s)", text);
        free(text);
        snprintf(rcmd, sizeof(rcmd), "\"%s\" -d \"%s\" mark", vmsnap, db);
        qrc = run(rcmd, &text);
        check(qrc == 2 && strstr(text, "no recorder is running"),
              "vmsnap mark with no recorder running says so (%d: %s)", qrc, text);
        free(text);

        /* The report, written by vmsnap.exe: the whole file, with the marks in its data. */
        char html[1200];
        snprintf(html, sizeof(html), "%s.html", db);
        snprintf(rcmd, sizeof(rcmd), "\"%s\" -d \"%s\" report -o \"%s\"", vmsnap, db, html);
        qrc = run(rcmd, &text);
        free(text);
        FILE *f = fopen(html, "rb");
        char *page = NULL;
        long len = 0;
        if (f) {
            fseek(f, 0, SEEK_END);
            len = ftell(f);
            fseek(f, 0, SEEK_SET);
            page = calloc(1, (size_t)len + 1);
            if (fread(page, 1, (size_t)len, f) != (size_t)len)
                len = 0;
            fclose(f);
        }
        check(qrc == 0 && page && strstr(page, "id=\"vmsnap-data\">{\"vmsnap_report\":1,") &&
                  strstr(page, "\"label\":\"win-mark\"") && strstr(page, "</html>"),
              "vmsnap report writes the whole page with the marks (%d, %ld bytes)", qrc, len);
        free(page);
    }

    {
        /* Following: win_child tree starts win_child leaf; both are recorded, the leaf names
         * its parent, and vmsnap exits with the tree's status once the last is gone. */
        char tdb[1100], rcmd[3000], *text = NULL;
        snprintf(tdb, sizeof(tdb), "%s.tree.db", db);
        DeleteFileA(tdb);
        snprintf(rcmd, sizeof(rcmd), "\"%s\" -d \"%s\" record -i 100ms -- \"%s\" tree", vmsnap, tdb,
                 child_exe);
        int trc = run(rcmd, &text);
        check(trc == 5 && strstr(text, "and 1 process it forked"),
              "record -- COMMAND follows the process it starts (%d: %s)", trc, text);
        free(text);
        check_query(vmsnap, tdb,
                    "SELECT count(*) FROM targets c JOIN targets p ON c.parent_target_id = p.id "
                    "WHERE c.cmdline LIKE '%leaf%' AND p.cmdline LIKE '%tree%'",
                    "the leaf names the tree as its parent");
        check_query(vmsnap, tdb,
                    "SELECT max(s.mapped_bytes) - min(s.mapped_bytes) >= 4194304 FROM snapshots s "
                    "JOIN targets t ON t.id = s.target_id WHERE t.cmdline LIKE '%leaf%'",
                    "the leaf's 4 MiB are seen");
        /* The command's first snapshot shows it loaded: its imports (msvcrt) are mapped. */
        check_query(vmsnap, tdb,
                    "SELECT count(*) > 0 FROM regions WHERE snapshot_id = 1 AND lower(path) LIKE "
                    "'%msvcrt.dll'",
                    "the first snapshot shows the program loaded");
    }

    /* Owners: the heaps by their number in the PEB's list, the stacks by their thread. */
    check_query(vmsnap, db,
                "SELECT (SELECT count(*) FROM regions WHERE owner LIKE 'heap %' AND category = "
                "'heap') > 0 AND (SELECT count(*) FROM regions WHERE owner LIKE 'thread %' AND "
                "category = 'stack') > 0",
                "heaps and stacks carry their owners");

    /* Compare a walk with winedbg's own listing of the process (when under Wine). */
    snprintf(cmd, sizeof(cmd), "\"%s\" -d \"%s\" snap -p %lu --detail maps --label w", vmsnap, db,
             (unsigned long)c.pid);
    run(cmd, &out);
    free(out);
    snprintf(cmd, sizeof(cmd), "winedbg --command \"info maps %lu\"", (unsigned long)c.pid);
    char *maps = NULL;
    rc = run(cmd, &maps);
    snprintf(cmd, sizeof(cmd), "\"%s\" -d \"%s\" -j show w", vmsnap, db);
    run(cmd, &out);
    check(strstr(out, "\"category\":\"heap\"") != NULL, "the process heap is found (PEB)");
    check(strstr(out, "\"cmdline\":\"") && strstr(out, "win_child.exe"),
          "the target's command line comes from its PEB");
    check(strstr(out, "\"category\":\"stack\"") != NULL, "the thread stack is found (TEB)");
    check(strstr(out, "\"category\":\"image\"") && strstr(out, ".dll\""),
          "DLLs are image regions named by their files");
    if (rc == 0 && strstr(maps, "Address")) {
        int lines = 0, matched = 0;
        for (char *p = maps; (p = strchr(p, '\n')) != NULL;) {
            p++;
            unsigned long long s, e;
            char state[16], type[16];
            if (sscanf(p, "%llx %llx %15s %15s", &s, &e, state, type) != 4 ||
                strcmp(state, "free") == 0)
                continue;
            lines++;
            char want[200];
            snprintf(want, sizeof(want), "\"start\":\"0x%llx\",\"end\":\"0x%llx\"", s, e + 1);
            const char *at = strstr(out, want);
            char st[40];
            snprintf(st, sizeof(st), "\"state\":\"%s\",\"type\":\"%s\"", state, type);
            const char *next = at ? strstr(at + 1, "{\"start\"") : NULL;
            const char *stp = at ? strstr(at, st) : NULL;
            if (at && stp && (!next || stp < next))
                matched++;
            else
                printf("  not in the snapshot: %s", p);
        }
        check(lines > 10 && matched == lines, "winedbg info maps: %d of %d ranges match", matched,
              lines);
    } else {
        printf("skipped: winedbg not available\n");
    }
    free(maps);
    free(out);

    DWORD w;
    WriteFile(c.in, "exit 0\n", 7, &w, NULL);
    WaitForSingleObject(c.process, 5000);
    snprintf(cmd, sizeof(cmd), "\"%s\" -d \"%s\" snap -p %lu", vmsnap, db, (unsigned long)c.pid);
    rc = run(cmd, &out);
    check(rc == 2 && strstr(out, "vmsnap: "), "snap of an exited process exits 2 (%s)", out);
    free(out);
    snprintf(cmd, sizeof(cmd), "\"%s\" -d \"%s\" snap -p 4000000", vmsnap, db);
    rc = run(cmd, &out);
    check(rc == 2 && strstr(out, "no such process"), "snap of no such process exits 2 (%s)", out);
    free(out);
}

/*
 * The bytes held by the site of growth's JSON whose frames hold function name, or -1 when no
 * site does. Sites are split at each "bytes" key; a name in a site's frames belongs to it.
 */
static long long site_bytes(const char *json, const char *name)
{
    const char *sites = strstr(json, "\"sites\"");
    if (!sites)
        return -1;
    char want[256], want_tight[256];
    snprintf(want, sizeof(want), "\"function\": \"%s\"", name);
    snprintf(want_tight, sizeof(want_tight), "\"function\":\"%s\"", name);
    for (const char *at = strstr(sites, "\"bytes\""); at;) {
        const char *next = strstr(at + 1, "\"bytes\"");
        const char *tree = strstr(at, "\"tree\"");
        size_t len = next ? (size_t)(next - at) : strlen(at);
        if (tree && (size_t)(tree - at) < len)
            len = (size_t)(tree - at);
        char *one = malloc(len + 1);
        memcpy(one, at, len);
        one[len] = '\0';
        int here = strstr(one, want) || strstr(one, want_tight);
        long long bytes = atoll(strchr(one, ':') + 1);
        free(one);
        if (here)
            return bytes;
        at = next;
    }
    return -1;
}

/*
 * record --stacks under the debugger API: win_sites.exe's calls, each from a known function
 * (built -gdwarf-4, so Wine's DbgHelp names them), their held bytes exact; show and diff name
 * the code behind a region; stopping lets the program run on to its end untraced; and what
 * cannot be done says so.
 */
static void test_stacks(const char *vmsnap, const char *sites_exe, const char *child_exe,
                        const char *dir)
{
    char db[MAX_PATH], cmd[4096], *out = NULL;
    snprintf(db, sizeof(db), "%s\\stacks.db", dir);
    DeleteFileA(db);
    snprintf(cmd, sizeof(cmd), "\"%s\" -d \"%s\" record --stacks -i 50ms -- \"%s\"", vmsnap, db,
             sites_exe);
    int rc = run(cmd, &out);
    check(rc == 0 && strstr(out, "calls with") && strstr(out, "target exited"),
          "record --stacks -- win_sites.exe (%d: %s)", rc, out);
    free(out);

    snprintf(cmd, sizeof(cmd), "\"%s\" -d \"%s\" growth -j", vmsnap, db);
    rc = run(cmd, &out);
    check(rc == 0 && strstr(out, "\"sites_recorded\":true"), "growth -j has sites (%d)", rc);
    const long long mib = 1024 * 1024;
    long long b = site_bytes(out, "commit_part");
    check(b == 3 * mib, "commit_part holds the 3 MiB it committed of a reservation (%lld)", b);
    b = site_bytes(out, "big_alloc");
    check(b == 5 * mib, "big_alloc holds its 5 MiB (%lld)", b);
    b = site_bytes(out, "thread_alloc");
    check(b == mib, "thread_alloc, called by a thread, holds its 1 MiB (%lld)", b);
    b = site_bytes(out, "map_view");
    check(b == mib, "map_view holds its 1 MiB view of a section (%lld)", b);
    b = site_bytes(out, "heap_big");
    check(b >= 16 * mib && b < 17 * mib, "heap_big's malloc holds 16 MiB of the heap's (%lld)", b);
    b = site_bytes(out, "freed_alloc");
    check(b == -1, "freed_alloc gave its 2 MiB back: no site (%lld)", b);
    b = site_bytes(out, "reserve_only");
    check(b == -1, "reserve_only committed nothing: no site (%lld)", b);
    check(strstr(out, "win_sites.c") != NULL, "sites name their source file");
    free(out);

    snprintf(cmd, sizeof(cmd), "\"%s\" -d \"%s\" growth", vmsnap, db);
    rc = run(cmd, &out);
    check(rc == 0 && strstr(out, "call sites holding memory") && strstr(out, "  big_alloc ("),
          "growth's table shows each site by its first frame outside the system DLLs (%d)", rc);
    free(out);

    check_query(vmsnap, db,
                "select count(*) = 1 from events where call = 'NtFreeVirtualMemory' and "
                "end - start = 2097152 and result = 0",
                "events: freed_alloc's NtFreeVirtualMemory of 2 MiB");
    check_query(vmsnap, db,
                "select count(*) >= 1 from events where call = 'NtMapViewOfSection' and "
                "end - start = 1048576",
                "events: map_view's NtMapViewOfSection of 1 MiB");
    check_query(vmsnap, db, "select count(distinct tid) >= 2 from events",
                "events: the thread's calls have its own tid");
    check_query(vmsnap, db,
                "select count(*) >= 1 from stack_frames where function = 'commit_part' and "
                "line > 0 and file like '%win_sites.c'",
                "stack_frames: commit_part named with its file and line");

    snprintf(cmd, sizeof(cmd), "\"%s\" -d \"%s\" show -j last", vmsnap, db);
    rc = run(cmd, &out);
    check(rc == 0 && strstr(out, "\"created_by\":{\"function\":\"big_alloc\""),
          "show -j: the region big_alloc made has created_by (%d)", rc);
    free(out);
    snprintf(cmd, sizeof(cmd), "\"%s\" -d \"%s\" diff first last", vmsnap, db);
    rc = run(cmd, &out);
    check(rc == 1 && strstr(out, "<- commit_part ("), "diff names the code of a new region (%d)",
          rc);
    free(out);

    /* Stopped while the program runs: it runs on untraced to its end (3), with none of its
     * calls failing (90, 91) and no breakpoint left behind (it would crash). */
    snprintf(db, sizeof(db), "%s\\stacks-stop.db", dir);
    DeleteFileA(db);
    snprintf(cmd, sizeof(cmd), "\"%s\" -d \"%s\" record --stacks -i 50ms -t 300ms -- \"%s\" churn",
             vmsnap, db, sites_exe);
    rc = run(cmd, &out);
    check(rc == 3 && strstr(out, "duration reached"),
          "record --stacks -t: the program runs on untraced to its own end (%d: %s)", rc, out);
    free(out);
    check_query(vmsnap, db, "select count(*) > 0 from events where call = 'NtFreeVirtualMemory'",
                "the calls made while recording are kept");

    /* What cannot be done here says so, in one line. */
    struct child c;
    child_start(&c, child_exe);
    unsigned long long pid = ask(&c, "pid");
    snprintf(cmd, sizeof(cmd), "\"%s\" -d \"%s\" record --stacks -p %llu -n 1", vmsnap, db, pid);
    rc = run(cmd, &out);
    check(rc == 2 && strstr(out, "Linux's") && strstr(out, "record --stacks -- COMMAND"),
          "record --stacks -p says attaching is Linux's (%d: %s)", rc, out);
    free(out);
    DWORD w;
    WriteFile(c.in, "exit 0\n", 7, &w, NULL);
    WaitForSingleObject(c.process, 10000);
    CloseHandle(c.process);
    CloseHandle(c.in);
    CloseHandle(c.out);
    snprintf(cmd, sizeof(cmd), "\"%s\" -d \"%s\" record --stacks -- \"%s\\no-such.exe\"", vmsnap,
             db, dir);
    rc = run(cmd, &out);
    check(rc == 2 && strstr(out, "cannot run") && strstr(out, "No such file"),
          "record --stacks of a missing program says so (%d: %s)", rc, out);
    free(out);
}

/* ctest under Wine passes Unix paths; Windows wants them on Wine's Z: drive. */
static const char *win_path(const char *p, char *out, size_t n)
{
    if (p[0] != '/') {
        snprintf(out, n, "%s", p);
        return out;
    }
    snprintf(out, n, "Z:%s", p);
    for (char *c = out; *c; c++)
        if (*c == '/')
            *c = '\\';
    return out;
}

int main(int argc, char **argv)
{
    char vmsnap[MAX_PATH], child[MAX_PATH], sites[MAX_PATH], given[MAX_PATH];
    if (argc < 4) {
        fprintf(stderr, "usage: test_win VMSNAP_EXE WIN_CHILD_EXE WIN_SITES_EXE [DIR]\n");
        return 2;
    }
    char dir[MAX_PATH];
    if (argc > 4) {
        win_path(argv[4], given, sizeof(given));
        snprintf(dir, sizeof(dir), "%s", given);
        CreateDirectoryA(dir, NULL);
    } else {
        GetTempPathA(sizeof(dir), dir);
        size_t n = strlen(dir);
        if (n && dir[n - 1] == '\\')
            dir[n - 1] = '\0';
    }
    test_pure_helpers();
    test_known_changes(win_path(argv[1], vmsnap, sizeof(vmsnap)),
                       win_path(argv[2], child, sizeof(child)), dir);
    test_stacks(vmsnap, win_path(argv[3], sites, sizeof(sites)), child, dir);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
