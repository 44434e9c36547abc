/*
 * A Windows test target whose address space changes only when told to (the Windows twin of
 * vm_child). One command per line on stdin, one answer per line on stdout: "ok [VALUE]" or
 * "err CODE".
 *
 *   pid                         -> ok PID
 *   reserve SIZE                -> ok ADDR   VirtualAlloc(MEM_RESERVE, PAGE_NOACCESS)
 *   commit ADDR SIZE PROT       -> ok        VirtualAlloc(MEM_COMMIT); PROT like rw- r-- rwx
 *   protect ADDR SIZE PROT      -> ok        VirtualProtect
 *   decommit ADDR SIZE          -> ok        VirtualFree(MEM_DECOMMIT)
 *   release ADDR                -> ok        VirtualFree(MEM_RELEASE)
 *   mapfile SIZE PATH           -> ok ADDR   a read-only view of a new file (PATH: rest of line)
 *   unmap ADDR                  -> ok        UnmapViewOfFile
 *   exit CODE
 *
 * With an argument instead: `win_child tree` starts `win_child leaf` and waits for it, then
 * exits 5; `win_child leaf` commits 4 MiB at 300 ms and exits at 1,500 ms.
 */
#include <windows.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static DWORD prot_of(const char *s)
{
    int r = strchr(s, 'r') != NULL, w = strchr(s, 'w') != NULL, x = strchr(s, 'x') != NULL;
    if (x)
        return w ? PAGE_EXECUTE_READWRITE : r ? PAGE_EXECUTE_READ : PAGE_EXECUTE;
    if (w)
        return PAGE_READWRITE;
    return r ? PAGE_READONLY : PAGE_NOACCESS;
}

static void ok_addr(void *p)
{
    if (p)
        printf("ok 0x%llx\n", (unsigned long long)(uintptr_t)p);
    else
        printf("err %lu\n", (unsigned long)GetLastError());
}

static void ok_bool(BOOL b)
{
    if (b)
        printf("ok\n");
    else
        printf("err %lu\n", (unsigned long)GetLastError());
}

/* The process tree of the tests of following. */
static int tree(const char *mode)
{
    if (strcmp(mode, "leaf") == 0) {
        Sleep(300);
        char *p = VirtualAlloc(NULL, 4 << 20, MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE);
        for (int i = 0; p && i < (4 << 20); i += 4096)
            p[i] = 1;
        Sleep(1200);
        return 0;
    }
    char exe[MAX_PATH], cmd[MAX_PATH + 16];
    GetModuleFileNameA(NULL, exe, sizeof(exe));
    snprintf(cmd, sizeof(cmd), "\"%s\" leaf", exe);
    STARTUPINFOA si;
    PROCESS_INFORMATION pi;
    memset(&si, 0, sizeof(si));
    si.cb = sizeof(si);
    if (!CreateProcessA(NULL, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi))
        return 90;
    WaitForSingleObject(pi.hProcess, INFINITE);
    CloseHandle(pi.hProcess);
    CloseHandle(pi.hThread);
    return 5;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        return tree(argv[1]);
    char line[4096];
    setvbuf(stdout, NULL, _IONBF, 0);
    while (fgets(line, sizeof(line), stdin)) {
        char cmd[32] = "", a[2048] = "", b[64] = "", c[64] = "";
        sscanf(line, "%31s %2047s %63s %63s", cmd, a, b, c);
        unsigned long long x = strtoull(a, NULL, 0), y = strtoull(b, NULL, 0);
        if (strcmp(cmd, "pid") == 0) {
            printf("ok %lu\n", (unsigned long)GetCurrentProcessId());
        } else if (strcmp(cmd, "reserve") == 0) {
            ok_addr(VirtualAlloc(NULL, (SIZE_T)x, MEM_RESERVE, PAGE_NOACCESS));
        } else if (strcmp(cmd, "commit") == 0) {
            ok_addr(VirtualAlloc((void *)(uintptr_t)x, (SIZE_T)y, MEM_COMMIT, prot_of(c)));
        } else if (strcmp(cmd, "protect") == 0) {
            DWORD old;
            ok_bool(VirtualProtect((void *)(uintptr_t)x, (SIZE_T)y, prot_of(c), &old));
        } else if (strcmp(cmd, "decommit") == 0) {
            ok_bool(VirtualFree((void *)(uintptr_t)x, (SIZE_T)y, MEM_DECOMMIT));
        } else if (strcmp(cmd, "release") == 0) {
            ok_bool(VirtualFree((void *)(uintptr_t)x, 0, MEM_RELEASE));
        } else if (strcmp(cmd, "mapfile") == 0) {
            /* The path is the rest of the line: it may hold spaces. */
            char *path = strstr(line, a);
            path = path ? strchr(path, ' ') : NULL;
            path = path ? path + 1 : "";
            path[strcspn(path, "\r\n")] = '\0';
            y = x;
            HANDLE f = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ, NULL,
                                   CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
            HANDLE m = f == INVALID_HANDLE_VALUE
                           ? NULL
                           : CreateFileMappingA(f, NULL, PAGE_READWRITE, 0, (DWORD)y, NULL);
            ok_addr(m ? MapViewOfFile(m, FILE_MAP_READ, 0, 0, (SIZE_T)y) : NULL);
        } else if (strcmp(cmd, "unmap") == 0) {
            ok_bool(UnmapViewOfFile((void *)(uintptr_t)x));
        } else if (strcmp(cmd, "exit") == 0) {
            return (int)x;
        } else {
            printf("err unknown-command\n");
        }
    }
    return 0;
}
