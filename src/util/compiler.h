/* Compiler annotations. mingw's C99 printf (__USE_MINGW_ANSI_STDIO) is checked as gnu_printf. */
#ifndef VMSNAP_COMPILER_H
#define VMSNAP_COMPILER_H

#if defined(__MINGW32__)
#define VMSNAP_PRINTF(fmt, args) __attribute__((format(gnu_printf, fmt, args)))
#else
#define VMSNAP_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#endif

#endif
