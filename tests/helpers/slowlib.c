/*
 * A library whose constructor takes 300 ms and then maps 64 KiB at 0x250000000: a program
 * linked with it (slowload.c) is "loaded" only once that mapping exists, so a first snapshot
 * taken before the loader is done cannot show it.
 */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <unistd.h>

__attribute__((constructor)) static void slow_start(void)
{
    usleep(300 * 1000);
    mmap((void *)0x250000000UL, 65536, PROT_READ | PROT_WRITE,
         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
}

int slowlib_ready(void)
{
    return 1;
}
