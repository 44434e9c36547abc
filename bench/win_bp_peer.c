/*
 * The peer of bench/win_trace_cost.sh: the least a debugger can do to see each call, one
 * breakpoint event per call. It launches a program under the debugger API, puts an int3 on
 * ntdll's NtAllocateVirtualMemory and NtFreeVirtualMemory at the loader's breakpoint, and at
 * each hit does the stub's first instruction (mov r10, rcx) for the thread and lets it go:
 * no arguments read, no return caught, no stack.
 *   win_bp_peer PROGRAM [ARG]
 */
#include <windows.h>

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "\"%s\" %s", argv[1], argc > 2 ? argv[2] : "");
    STARTUPINFOA si;
    PROCESS_INFORMATION pi;
    memset(&si, 0, sizeof(si));
    si.cb = sizeof(si);
    if (!CreateProcessA(NULL, cmd, NULL, NULL, TRUE, DEBUG_ONLY_THIS_PROCESS, NULL, NULL, &si,
                        &pi))
        return 2;
    HMODULE nt = GetModuleHandleA("ntdll.dll");
    ULONG_PTR at[2] = {(ULONG_PTR)GetProcAddress(nt, "NtAllocateVirtualMemory"),
                       (ULONG_PTR)GetProcAddress(nt, "NtFreeVirtualMemory")};
    unsigned char orig[2][3];
    HANDLE threads[256];
    DWORD tids[256], nthreads = 0, loaded = 0;
    for (;;) {
        DEBUG_EVENT ev;
        if (!WaitForDebugEvent(&ev, INFINITE))
            return 2;
        DWORD how = DBG_CONTINUE;
        if (ev.dwDebugEventCode == CREATE_PROCESS_DEBUG_EVENT && nthreads < 256) {
            tids[nthreads] = ev.dwThreadId;
            threads[nthreads++] = ev.u.CreateProcessInfo.hThread;
        } else if (ev.dwDebugEventCode == CREATE_THREAD_DEBUG_EVENT && nthreads < 256) {
            tids[nthreads] = ev.dwThreadId;
            threads[nthreads++] = ev.u.CreateThread.hThread;
        } else if (ev.dwDebugEventCode == EXIT_PROCESS_DEBUG_EVENT) {
            ContinueDebugEvent(ev.dwProcessId, ev.dwThreadId, DBG_CONTINUE);
            return (int)ev.u.ExitProcess.dwExitCode;
        } else if (ev.dwDebugEventCode == EXCEPTION_DEBUG_EVENT) {
            EXCEPTION_RECORD *r = &ev.u.Exception.ExceptionRecord;
            ULONG_PTR a = (ULONG_PTR)r->ExceptionAddress;
            if (r->ExceptionCode != EXCEPTION_BREAKPOINT) {
                how = DBG_EXCEPTION_NOT_HANDLED;
            } else if (!loaded) {
                loaded = 1;
                unsigned char cc = 0xcc;
                for (int i = 0; i < 2; i++) {
                    ReadProcessMemory(pi.hProcess, (void *)at[i], orig[i], 3, NULL);
                    if (orig[i][0] != 0x4c || orig[i][1] != 0x8b || orig[i][2] != 0xd1)
                        return 3; /* not the stub this peer knows */
                    WriteProcessMemory(pi.hProcess, (void *)at[i], &cc, 1, NULL);
                }
                FlushInstructionCache(pi.hProcess, NULL, 0);
            } else if (a == at[0] || a == at[1]) {
                for (DWORD i = 0; i < nthreads; i++)
                    if (tids[i] == ev.dwThreadId) {
                        CONTEXT c;
                        memset(&c, 0, sizeof(c));
                        c.ContextFlags = CONTEXT_FULL;
                        GetThreadContext(threads[i], &c);
                        c.R10 = c.Rcx;
                        c.Rip = a + 3;
                        SetThreadContext(threads[i], &c);
                    }
            } else {
                how = DBG_EXCEPTION_NOT_HANDLED;
            }
        }
        ContinueDebugEvent(ev.dwProcessId, ev.dwThreadId, how);
    }
}
