/*
 * The Windows target of record --stacks: each of its functions changes the address space by a
 * known amount, so the sites the tracer finds can be checked byte for byte. Built -O0
 * -gdwarf-4, so that Wine's DbgHelp names its functions and lines.
 *
 *   win_sites          the calls below, then it waits 800 ms and exits 0
 *   win_sites churn    allocates and frees in a loop for 1.5 s, then exits 3 (stopping)
 *
 * Sites held at the end: commit_part 3 MiB (of an 8 MiB reservation that reserve_only
 * holds, uncommitted), big_alloc 5 MiB, thread_alloc 1 MiB (called by a thread), map_view
 * 1 MiB (a view of a page-file section), heap_big at least 16 MiB (malloc: the heap's own
 * VirtualAlloc). freed_alloc's 2 MiB are given back.
 */
#include <windows.h>

#include <stdlib.h>
#include <string.h>

#define MIB (1024 * 1024)

static void touch(char *p, size_t n)
{
    for (size_t i = 0; p && i < n; i += 4096)
        p[i] = 1;
}

__attribute__((noinline)) static char *reserve_only(void)
{
    return VirtualAlloc(NULL, 8 * MIB, MEM_RESERVE, PAGE_NOACCESS);
}

__attribute__((noinline)) static void commit_part(char *r)
{
    touch(VirtualAlloc(r, 3 * MIB, MEM_COMMIT, PAGE_READWRITE), 3 * MIB);
}

__attribute__((noinline)) static void big_alloc(void)
{
    touch(VirtualAlloc(NULL, 5 * MIB, MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE), 5 * MIB);
}

__attribute__((noinline)) static void freed_alloc(void)
{
    char *p = VirtualAlloc(NULL, 2 * MIB, MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE);
    touch(p, 2 * MIB);
    VirtualFree(p, 0, MEM_RELEASE);
}

__attribute__((noinline)) static void thread_alloc(void)
{
    touch(VirtualAlloc(NULL, 1 * MIB, MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE), 1 * MIB);
}

static DWORD WINAPI thread_main(void *arg)
{
    (void)arg;
    thread_alloc();
    return 0;
}

__attribute__((noinline)) static void map_view(void)
{
    HANDLE m = CreateFileMappingA(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, 1 * MIB, NULL);
    touch(m ? MapViewOfFile(m, FILE_MAP_WRITE, 0, 0, 1 * MIB) : NULL, 1 * MIB);
}

__attribute__((noinline)) static void heap_big(void)
{
    touch(malloc(16 * MIB), 16 * MIB);
}

static int churn(void)
{
    DWORD until = GetTickCount() + 1500;
    while (GetTickCount() < until) {
        char *p = VirtualAlloc(NULL, 64 * 1024, MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE);
        if (!p)
            return 90;
        touch(p, 64 * 1024);
        if (!VirtualFree(p, 0, MEM_RELEASE))
            return 91;
    }
    return 3;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "churn") == 0)
        return churn();
    commit_part(reserve_only());
    big_alloc();
    freed_alloc();
    HANDLE t = CreateThread(NULL, 0, thread_main, NULL, 0, NULL);
    if (t) {
        WaitForSingleObject(t, INFINITE);
        CloseHandle(t);
    }
    map_view();
    heap_big();
    Sleep(800);
    return 0;
}
