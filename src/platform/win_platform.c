/* Windows implementation of platform.h. */
#include <windows.h>

#include <sddl.h>

#include <errno.h>
#include <io.h>
#include <stdlib.h>
#include <string.h>

#include "platform/platform.h"
#include "util/xalloc.h"

/* 100-ns intervals between 1601-01-01 (FILETIME) and 1970-01-01 (Unix). */
#define FILETIME_UNIX_EPOCH 116444736000000000ULL

int64_t plat_realtime_ms(void)
{
    FILETIME ft;
    GetSystemTimeAsFileTime(&ft);
    uint64_t t = ((uint64_t)ft.dwHighDateTime << 32) | ft.dwLowDateTime;
    return (int64_t)((t - FILETIME_UNIX_EPOCH) / 10000);
}

int64_t plat_monotonic_us(void)
{
    static LARGE_INTEGER freq;
    LARGE_INTEGER now;
    if (!freq.QuadPart)
        QueryPerformanceFrequency(&freq);
    QueryPerformanceCounter(&now);
    return (int64_t)(now.QuadPart / freq.QuadPart * 1000000 +
                     now.QuadPart % freq.QuadPart * 1000000 / freq.QuadPart);
}

void plat_sleep_ms(long ms)
{
    Sleep((DWORD)ms);
}

void plat_gmtime(int64_t unix_s, struct tm *out)
{
    /* Civil date from days since 1970-01-01 (Howard Hinnant's algorithm): no CRT needed. */
    int64_t days = unix_s / 86400, secs = unix_s % 86400;
    if (secs < 0) {
        secs += 86400;
        days--;
    }
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400, doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153, d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    memset(out, 0, sizeof(*out));
    out->tm_year = (int)(y + (m <= 2) - 1900);
    out->tm_mon = (int)(m - 1);
    out->tm_mday = (int)d;
    out->tm_hour = (int)(secs / 3600);
    out->tm_min = (int)(secs / 60 % 60);
    out->tm_sec = (int)(secs % 60);
}

static int errno_of(DWORD err)
{
    switch (err) {
    case ERROR_FILE_EXISTS:
    case ERROR_ALREADY_EXISTS:
        return EEXIST;
    case ERROR_ACCESS_DENIED:
        return EACCES;
    case ERROR_WRITE_PROTECT:
        return EROFS;
    case ERROR_PATH_NOT_FOUND:
    case ERROR_FILE_NOT_FOUND:
        return ENOENT;
    default:
        return EIO;
    }
}

/* A security descriptor whose protected DACL lets only the current user in, or NULL. */
static PSECURITY_DESCRIPTOR owner_only(void)
{
    HANDLE token;
    if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token))
        return NULL;
    union {
        TOKEN_USER user;
        char bytes[256];
    } info;
    DWORD got = 0;
    PSECURITY_DESCRIPTOR sd = NULL;
    char *sid = NULL;
    if (GetTokenInformation(token, TokenUser, &info, sizeof(info), &got) &&
        ConvertSidToStringSidA(info.user.User.Sid, &sid)) {
        char sddl[256];
        snprintf(sddl, sizeof(sddl), "D:P(A;;FA;;;%s)", sid);
        if (!ConvertStringSecurityDescriptorToSecurityDescriptorA(sddl, SDDL_REVISION_1, &sd, NULL))
            sd = NULL;
        LocalFree(sid);
    }
    CloseHandle(token);
    return sd;
}

int plat_open_input(const char *path, FILE **out)
{
    DWORD a = GetFileAttributesA(path);
    *out = NULL;
    if (a != INVALID_FILE_ATTRIBUTES && (a & FILE_ATTRIBUTE_DIRECTORY))
        return -EISDIR;
    if (a != INVALID_FILE_ATTRIBUTES && (a & FILE_ATTRIBUTE_DEVICE))
        return -ENODEV;
    *out = fopen(path, "rb");
    return *out ? 0 : -errno;
}

char *plat_dirname(const char *path)
{
    const char *slash = strrchr(path, '/'), *back = strrchr(path, '\\');
    if (back && (!slash || back > slash))
        slash = back;
    return slash ? xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : xstrdup(".");
}

const char *plat_basename(const char *path)
{
    const char *slash = strrchr(path, '/'), *back = strrchr(path, '\\');
    if (back && (!slash || back > slash))
        slash = back;
    return slash && slash[1] ? slash + 1 : path;
}

int plat_seek(FILE *f, uint64_t off)
{
    return off > (uint64_t)INT64_MAX || _fseeki64(f, (long long)off, SEEK_SET) != 0 ? -1 : 0;
}

/* SQLite's unix VFS, the only caller, is not on Windows. */
int plat_fd_file(int fd, struct plat_file *out)
{
    (void)fd;
    memset(out, 0, sizeof(*out));
    return -ENOSYS;
}

void plat_close_fd(int fd)
{
    _close(fd);
}

int plat_dir_shared(const char *path, char **dir)
{
    /* NEEDSWORK: the directory's DACL. */
    *dir = plat_dirname(path);
    return 0;
}

int plat_create_private(const char *path)
{
    /* An address map defeats ASLR for whoever reads it: only its owner may open the file. */
    SECURITY_ATTRIBUTES sa = {sizeof(sa), NULL, FALSE};
    PSECURITY_DESCRIPTOR sd = owner_only();
    sa.lpSecurityDescriptor = sd;
    HANDLE h = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, 0, &sa, CREATE_NEW,
                           FILE_ATTRIBUTE_NORMAL, NULL);
    if (sd)
        LocalFree(sd);
    if (h == INVALID_HANDLE_VALUE) {
        int e = errno_of(GetLastError());
        return e == EEXIST ? 1 : -e;
    }
    CloseHandle(h);
    return 0;
}

int plat_writable(const char *path)
{
    return _access(path, 2) == 0;
}

int plat_file_stat(const char *path, struct plat_file *out)
{
    WIN32_FILE_ATTRIBUTE_DATA a;
    memset(out, 0, sizeof(*out));
    if (!GetFileAttributesExA(path, GetFileExInfoStandard, &a)) {
        int e = errno_of(GetLastError());
        return e == ENOENT ? 0 : -e;
    }
    out->kind = (a.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) ? PLAT_FILE_DIR
                : (a.dwFileAttributes & FILE_ATTRIBUTE_DEVICE)  ? PLAT_FILE_OTHER
                                                                : PLAT_FILE_REGULAR;
    /* NEEDSWORK: compare the file's owner SID and DACL with the current user's. New databases
     * get an owner-only DACL (plat_create_private); an existing file is taken as it is. */
    out->owned = 1;
    out->shared = 0;
    out->size = (int64_t)(((uint64_t)a.nFileSizeHigh << 32) | a.nFileSizeLow);
    return 0;
}

struct plat_fds *plat_fds_now(void)
{
    return NULL; /* NEEDSWORK: the handles of the files opened, by GetFileInformationByHandle */
}

size_t plat_fds_opened(const struct plat_fds *before, struct plat_file **out)
{
    (void)before;
    *out = NULL;
    return 0;
}

int plat_open_file_path(uint64_t dev, uint64_t ino, char **path)
{
    (void)dev;
    (void)ino;
    *path = NULL;
    return 0;
}

void plat_fds_free(struct plat_fds *fds)
{
    (void)fds;
}

int plat_isatty(FILE *f)
{
    return _isatty(_fileno(f));
}

void plat_hostname(char *out, size_t n)
{
    DWORD size = (DWORD)n;
    if (!GetComputerNameA(out, &size))
        snprintf(out, n, "unknown");
}

/*
 * Windows has no SIGTERM or SIGUSR1: another process stops a recording, or takes a mark, by
 * setting the named events Local\vmsnap-stop-PID and Local\vmsnap-mark-PID (PID: vmsnap's).
 * Ctrl+C and Ctrl+Break raise the stop event too.
 */
struct plat_recorder {
    HANDLE stop_event, mark_event;
    HANDLE child;
    int child_done, child_status;
    /* The child, started under the debugger, is held at the loader's breakpoint: its static
     * imports are loaded. held_thread is the thread that reported it. */
    int held;
    DWORD child_pid, held_thread;
};

/* Console events arrive on a thread of their own: they only raise the event. */
static HANDLE g_stop_event;
static volatile LONG g_console_stop;

static BOOL WINAPI on_console_event(DWORD type)
{
    if (type == CTRL_C_EVENT || type == CTRL_BREAK_EVENT || type == CTRL_CLOSE_EVENT) {
        InterlockedExchange(&g_console_stop, 1);
        SetEvent(g_stop_event);
        return TRUE;
    }
    return FALSE;
}

int plat_recorder_init(struct plat_recorder **out)
{
    struct plat_recorder *r = xcalloc(1, sizeof(*r));
    char name[64];
    snprintf(name, sizeof(name), "Local\\vmsnap-stop-%lu", (unsigned long)GetCurrentProcessId());
    r->stop_event = CreateEventA(NULL, TRUE, FALSE, name);
    snprintf(name, sizeof(name), "Local\\vmsnap-mark-%lu", (unsigned long)GetCurrentProcessId());
    r->mark_event = CreateEventA(NULL, FALSE, FALSE, name);
    g_stop_event = r->stop_event;
    SetConsoleCtrlHandler(on_console_event, TRUE);
    *out = r;
    return 0;
}

/* Quotes one argument the way the C runtime splits a command line back into argv. */
static void append_arg(char **buf, size_t *len, size_t *cap, const char *arg)
{
    size_t need = *len + strlen(arg) * 2 + 4;
    *buf = xgrow(*buf, cap, need, 1);
    char *p = *buf + *len;
    if (*len)
        *p++ = ' ';
    int quote = !*arg || strpbrk(arg, " \t\"") != NULL;
    if (quote)
        *p++ = '"';
    size_t slashes = 0;
    for (const char *a = arg; *a; a++) {
        if (*a == '\\') {
            slashes++;
        } else if (*a == '"') {
            for (size_t k = 0; k < slashes + 1; k++)
                *p++ = '\\';
            slashes = 0;
        } else {
            slashes = 0;
        }
        *p++ = *a;
    }
    if (quote) {
        for (size_t k = 0; k < slashes; k++)
            *p++ = '\\';
        *p++ = '"';
    }
    *p = '\0';
    *len = (size_t)(p - *buf);
}

int64_t plat_win_start(char *const argv[], int debugged, void **process, char *err, size_t n)
{
    char *cmd = NULL;
    size_t len = 0, cap = 0;
    for (char *const *a = argv; *a; a++)
        append_arg(&cmd, &len, &cap, *a);
    STARTUPINFOA si;
    PROCESS_INFORMATION pi;
    memset(&si, 0, sizeof(si));
    si.cb = sizeof(si);
    BOOL ok = CreateProcessA(NULL, cmd ? cmd : "", NULL, NULL, TRUE,
                             debugged ? DEBUG_ONLY_THIS_PROCESS : 0, NULL, NULL, &si, &pi);
    DWORD e = GetLastError();
    free(cmd);
    if (!ok) {
        if (e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND)
            snprintf(err, n, "No such file or directory");
        else
            snprintf(err, n, "CreateProcess failed (error %lu)", (unsigned long)e);
        return -1;
    }
    CloseHandle(pi.hThread);
    *process = pi.hProcess;
    return (int64_t)pi.dwProcessId;
}

char *plat_utf8_of_wide(const wchar_t *w, int wlen)
{
    int n = WideCharToMultiByte(CP_UTF8, 0, w, wlen, NULL, 0, NULL, NULL);
    if (n < 0)
        n = 0;
    char *s = xmalloc((size_t)n + 1);
    WideCharToMultiByte(CP_UTF8, 0, w, wlen, s, n, NULL, NULL);
    s[n] = '\0';
    return s;
}

void plat_recorder_adopt(struct plat_recorder *r, int64_t pid, int flags)
{
    (void)flags; /* only the command is traced here: no orphan to adopt */
    /* Its tracer waits for it; the recorder's wait wakes when it exits. */
    r->child = OpenProcess(SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION, FALSE, (DWORD)pid);
    r->child_pid = (DWORD)pid;
}

int plat_recorder_own(const struct plat_recorder *r, int64_t pid)
{
    (void)r;
    (void)pid;
    return 0;
}

void plat_recorder_let_go(struct plat_recorder *r)
{
    if (!r->held)
        return;
    ContinueDebugEvent(r->child_pid, r->held_thread, DBG_CONTINUE);
    DebugActiveProcessStop(r->child_pid);
    r->held = 0;
}

/*
 * Runs a child started with DEBUG_ONLY_THIS_PROCESS until the loader's breakpoint (reported
 * once the static imports are loaded, before the program's entry point), and holds it there.
 * 1 when held; 0 when it could not be (it is let go, or gone).
 */
static int hold_at_loader_break(struct plat_recorder *r)
{
    DebugSetProcessKillOnExit(FALSE);
    for (;;) {
        DEBUG_EVENT ev;
        if (!WaitForDebugEvent(&ev, 10000))
            break;
        DWORD how = DBG_CONTINUE;
        switch (ev.dwDebugEventCode) {
        case CREATE_PROCESS_DEBUG_EVENT:
            if (ev.u.CreateProcessInfo.hFile)
                CloseHandle(ev.u.CreateProcessInfo.hFile);
            break;
        case LOAD_DLL_DEBUG_EVENT:
            if (ev.u.LoadDll.hFile)
                CloseHandle(ev.u.LoadDll.hFile);
            break;
        case EXCEPTION_DEBUG_EVENT:
            if (ev.u.Exception.ExceptionRecord.ExceptionCode == EXCEPTION_BREAKPOINT) {
                r->held = 1;
                r->held_thread = ev.dwThreadId;
                return 1;
            }
            how = DBG_EXCEPTION_NOT_HANDLED; /* its own: handled as without us */
            break;
        case EXIT_PROCESS_DEBUG_EVENT:
            ContinueDebugEvent(ev.dwProcessId, ev.dwThreadId, DBG_CONTINUE);
            DebugActiveProcessStop(r->child_pid);
            return 0;
        default:
            break;
        }
        ContinueDebugEvent(ev.dwProcessId, ev.dwThreadId, how);
    }
    DebugActiveProcessStop(r->child_pid);
    return 0;
}

int64_t plat_recorder_spawn(struct plat_recorder *r, char **argv, int flags, char *err, size_t n)
{
    int held = (flags & PLAT_SPAWN_LOADED) != 0;
    void *process;
    int64_t pid = plat_win_start(argv, held, &process, err, n);
    if (pid < 0)
        return -1;
    r->child = process;
    r->child_pid = (DWORD)pid;
    if (held)
        hold_at_loader_break(r);
    return pid;
}

int plat_recorder_wait(struct plat_recorder *r, int64_t until_us)
{
    int64_t left = until_us - plat_monotonic_us();
    DWORD ms = left <= 0 ? 0 : (DWORD)((left + 999) / 1000);
    HANDLE hs[3] = {r->stop_event, r->mark_event, r->child};
    DWORD n = r->child && !r->child_done ? 3 : 2;
    DWORD w = WaitForMultipleObjects(n, hs, FALSE, ms);
    if (w == WAIT_OBJECT_0) {
        ResetEvent(r->stop_event);
        return PLAT_EV_STOP;
    }
    if (w == WAIT_OBJECT_0 + 1)
        return PLAT_EV_MARK;
    if (w == WAIT_OBJECT_0 + 2)
        return PLAT_EV_CHILD;
    return PLAT_EV_TIMEOUT;
}

const char *plat_recorder_stop_reason(const struct plat_recorder *r)
{
    (void)r;
    return g_console_stop ? "interrupted" : "terminated";
}

void plat_recorder_forward_stop(struct plat_recorder *r)
{
    /* The command shares the console: Ctrl+C reaches it without our help. */
    (void)r;
}

int plat_recorder_child_exited(struct plat_recorder *r, int block, int *status)
{
    if (!r->child)
        return 0;
    if (!r->child_done && WaitForSingleObject(r->child, block ? INFINITE : 0) == WAIT_OBJECT_0) {
        DWORD code = 0;
        GetExitCodeProcess(r->child, &code);
        r->child_done = 1;
        r->child_status = (int)code;
    }
    if (r->child_done && status)
        *status = r->child_status;
    return r->child_done;
}

void plat_recorder_unblock(struct plat_recorder *r)
{
    (void)r;
    SetConsoleCtrlHandler(on_console_event, FALSE);
}

void plat_recorder_release(struct plat_recorder *r)
{
    if (!r)
        return;
    plat_recorder_let_go(r);
    if (r->child)
        CloseHandle(r->child);
    CloseHandle(r->stop_event);
    CloseHandle(r->mark_event);
    free(r);
}

int plat_raise_open_files(void)
{
    return 0; /* handles are not limited per process this way */
}

int64_t plat_open_files_left(void)
{
    return -1;
}

int64_t plat_getpid(void)
{
    return (int64_t)GetCurrentProcessId();
}

int plat_runs_vmsnap(int64_t pid)
{
    /* Only a recorder creates the event plat_wake_recorder signals. */
    (void)pid;
    return 1;
}

int plat_wake_recorder(int64_t pid)
{
    char name[64];
    snprintf(name, sizeof(name), "Local\\vmsnap-mark-%lu", (unsigned long)pid);
    HANDLE ev = OpenEventA(EVENT_MODIFY_STATE, FALSE, name);
    if (!ev)
        return GetLastError() == ERROR_ACCESS_DENIED ? -EPERM : -ESRCH;
    int ok = SetEvent(ev);
    CloseHandle(ev);
    return ok ? 0 : -EPERM;
}

/* The volume and file index of path, which identify a file as an inode does. */
static int file_id(const char *path, BY_HANDLE_FILE_INFORMATION *info)
{
    HANDLE h = CreateFileA(path, 0, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                           OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, NULL);
    if (h == INVALID_HANDLE_VALUE)
        return -1;
    int ok = GetFileInformationByHandle(h, info);
    CloseHandle(h);
    return ok ? 0 : -1;
}

int plat_same_file(const char *a, const char *b)
{
    BY_HANDLE_FILE_INFORMATION x, y;
    if (file_id(a, &x) < 0 || file_id(b, &y) < 0)
        return strcmp(a, b) == 0;
    return x.dwVolumeSerialNumber == y.dwVolumeSerialNumber &&
           x.nFileIndexHigh == y.nFileIndexHigh && x.nFileIndexLow == y.nFileIndexLow;
}

int plat_replace(const char *from, const char *to)
{
    return MoveFileExA(from, to, MOVEFILE_REPLACE_EXISTING) ? 0 : -errno_of(GetLastError());
}

struct plat_output {
    char *path, *tmp;
};

int plat_output_open(const char *path, struct plat_output **out, FILE **f)
{
    struct plat_output *o = xcalloc(1, sizeof(*o));
    o->path = xstrdup(path);
    SECURITY_ATTRIBUTES sa = {sizeof(sa), NULL, FALSE};
    PSECURITY_DESCRIPTOR sd = owner_only();
    sa.lpSecurityDescriptor = sd;
    HANDLE h = INVALID_HANDLE_VALUE;
    int e = 0;
    /* A new name of our own, created exclusively and written through its handle, never
     * reopened by name. */
    for (int i = 0; i < 100 && h == INVALID_HANDLE_VALUE; i++) {
        free(o->tmp);
        o->tmp = xasprintf("%s.tmp-%lu-%d", path, (unsigned long)GetCurrentProcessId(), i);
        h = CreateFileA(o->tmp, GENERIC_WRITE, 0, &sa, CREATE_NEW, FILE_ATTRIBUTE_NORMAL, NULL);
        if (h == INVALID_HANDLE_VALUE && (e = errno_of(GetLastError())) != EEXIST)
            break;
    }
    if (sd)
        LocalFree(sd);
    int fd = h == INVALID_HANDLE_VALUE ? -1 : _open_osfhandle((intptr_t)h, 0);
    if (fd < 0 || !(*f = _fdopen(fd, "wb"))) {
        if (fd >= 0)
            _close(fd);
        else if (h != INVALID_HANDLE_VALUE)
            CloseHandle(h);
        if (h != INVALID_HANDLE_VALUE)
            DeleteFileA(o->tmp);
        free(o->tmp);
        o->tmp = NULL;
        plat_output_discard(o, NULL);
        return -(e ? e : EIO);
    }
    *out = o;
    return 0;
}

int plat_output_commit(struct plat_output *o, FILE *f)
{
    int rc = fflush(f) != 0 || ferror(f) ? -(errno ? errno : EIO) : 0;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && !MoveFileExA(o->tmp, o->path, MOVEFILE_REPLACE_EXISTING))
        rc = -errno_of(GetLastError());
    if (rc == 0) {
        free(o->tmp);
        o->tmp = NULL;
    }
    plat_output_discard(o, NULL);
    return rc;
}

void plat_output_discard(struct plat_output *o, FILE *f)
{
    if (!o)
        return;
    if (f)
        fclose(f);
    if (o->tmp)
        DeleteFileA(o->tmp);
    free(o->tmp);
    free(o->path);
    free(o);
}

void plat_advise_large(void *p, size_t n)
{
    (void)p;
    (void)n;
}
