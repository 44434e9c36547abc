/*
 * A test target whose address space changes only when told to. It reads one command per line
 * on stdin and answers one line on stdout: "ok [VALUE]" or "err MESSAGE". Between commands it
 * blocks in read(), so its mappings hold still while a test captures them.
 *
 *   pid                          -> ok PID
 *   map SIZE PROT                -> ok ADDR      private anonymous; PROT like rw- r-- ---
 *   mapat ADDR SIZE PROT         -> ok ADDR      at a fixed address (fails if taken)
 *   unmap ADDR SIZE              -> ok
 *   protect ADDR SIZE PROT       -> ok
 *   anonname ADDR SIZE NAME      -> ok           name anonymous memory (PR_SET_VMA_ANON_NAME;
 *                                                err where the kernel cannot)
 *   touch ADDR SIZE              -> ok           write one byte per page
 *   mremap ADDR OLD NEW          -> ok ADDR      resize in place (no move)
 *   brk SIZE                     -> ok OLDBRK    grow the heap with sbrk
 *   mapfile PATH SIZE PROT p|s   -> ok ADDR      create PATH (SIZE bytes) and map it
 *   unlink PATH                  -> ok
 *   memfd NAME SIZE              -> ok ADDR      shared mapping of a memfd
 *   shm SIZE                     -> ok ADDR      SysV shared memory segment, attached
 *   huge SIZE                    -> ok ADDR      MAP_HUGETLB anonymous (err if no huge pages)
 *   many N                       -> ok ADDR      N one-page mappings, alternating r--/rw-
 *   churn on|off                 -> ok           a thread that maps and unmaps in a loop
 *   flip N MS                    -> ok           a thread that, every MS ms, flips the protection
 *                                                of N pages of the last `many` block (0 0: stop)
 *   leak SIZE MS DELAY_MS        -> ok           a thread that, DELAY_MS from now, maps and touches
 *                                                SIZE bytes rw- every MS ms on a fixed schedule,
 *                                                each under a no-access page so none merge
 *   leak 0                       -> ok COUNT     stops it; COUNT regions were leaked
 *   threads N                    -> ok           starts N threads, named worker-1, worker-2, ...,
 *                                                with 256 KiB stacks, that each malloc (a glibc
 *                                                arena each, up to its limit) and then wait in a
 *                                                system call
 *   exec                         -> (re-executes itself; answers nothing until the next command)
 *   sleep MS                     -> ok           waits MS milliseconds (a script read from a file)
 *   title TEXT                   -> ok           retitles itself as a server does: its command
 *                                                line (argv, rewritten in place) reads TEXT
 *   exit CODE                    -> (exits)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <time.h>
#include <unistd.h>

static int prot_of(const char *s)
{
    int p = PROT_NONE;
    if (strchr(s, 'r'))
        p |= PROT_READ;
    if (strchr(s, 'w'))
        p |= PROT_WRITE;
    if (strchr(s, 'x'))
        p |= PROT_EXEC;
    return p;
}

static atomic_int churning;

/* `flip`: a steady, known rate of change, for measuring ticks where a few regions change. */
static char *many_base;
static unsigned long many_pages;
static atomic_int flip_n, flip_ms;
static pthread_t flipper;
static int flipper_running;

static void *flip(void *arg)
{
    (void)arg;
    long page = sysconf(_SC_PAGESIZE);
    /* Odd pages are rw- between r-- neighbours: making one r-- merges three regions into one.
     * The last RING pages made r-- are put back in turn, so the region count holds steady. */
    enum { RING = 256 };
    unsigned long ring[RING], i = 0;
    size_t head = 0, used = 0;
    while (atomic_load(&flip_n) > 0) {
        int n = atomic_load(&flip_n);
        for (int k = 0; k < n; k++, i++) {
            if (used == RING) {
                mprotect(many_base + ring[head] * (unsigned long)page, (size_t)page,
                         PROT_READ | PROT_WRITE);
                used--;
            }
            unsigned long at = 1 + 2 * ((i * 2654435761u) % (many_pages / 2 - 1));
            mprotect(many_base + at * (unsigned long)page, (size_t)page, PROT_READ);
            ring[head] = at;
            head = (head + 1) % RING;
            used++;
        }
        usleep((useconds_t)atomic_load(&flip_ms) * 1000);
    }
    while (used--) {
        head = (head + RING - 1) % RING;
        mprotect(many_base + ring[head] * (unsigned long)page, (size_t)page,
                 PROT_READ | PROT_WRITE);
    }
    return NULL;
}
static pthread_t churner;

/* `leak`: a known leak, for growth's rate, onset and survivors. */
static atomic_int leaking;
static atomic_long leaked;
static unsigned long leak_size, leak_ms, leak_delay_ms;
static pthread_t leaker;

static void add_ms(struct timespec *t, unsigned long ms)
{
    t->tv_sec += (time_t)(ms / 1000);
    t->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

static void *leak(void *arg)
{
    (void)arg;
    long page = sysconf(_SC_PAGESIZE);
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    add_ms(&next, leak_delay_ms);
    while (atomic_load(&leaking)) {
        /* An absolute schedule: a late wake-up does not slow the leak down. */
        if (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) != 0)
            continue;
        if (!atomic_load(&leaking))
            break;
        char *p = mmap(NULL, leak_size + (size_t)page, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED) {
            mprotect(p, (size_t)page, PROT_NONE);
            for (size_t o = 0; o < leak_size; o += (size_t)page)
                p[(size_t)page + o] = 1;
            atomic_fetch_add(&leaked, 1);
        }
        add_ms(&next, leak_ms);
    }
    return NULL;
}

static pthread_mutex_t idle_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t idle_cond = PTHREAD_COND_INITIALIZER;

static void *idle_thread(void *arg)
{
    (void)arg;
    /* glibc gives a new thread an arena of its own (volatile: the pair must not be elided). */
    char *volatile p = malloc(1000);
    p[0] = 1;
    free(p);
    pthread_mutex_lock(&idle_lock);
    for (;;)
        pthread_cond_wait(&idle_cond, &idle_lock);
    return NULL;
}

static void *churn(void *arg)
{
    (void)arg;
    long page = sysconf(_SC_PAGESIZE);
    void *slots[64] = {0};
    unsigned i = 0;
    /* A block whose pages flip protection: VMAs split and merge in place, so boundaries move
     * under a reader's feet, as well as whole mappings coming and going. */
    size_t npages = 4096;
    char *block = mmap(NULL, npages * (size_t)page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    while (atomic_load(&churning)) {
        if (block != MAP_FAILED) {
            size_t at = ((size_t)i * 2654435761u) % npages;
            mprotect(block + at * (size_t)page, (size_t)page * (1 + i % 3),
                     (i & 1) ? PROT_READ : PROT_READ | PROT_WRITE);
        }
        unsigned k = i++ % 64;
        if (slots[k]) {
            munmap(slots[k], (size_t)page * 2);
            slots[k] = NULL;
        } else {
            slots[k] = mmap(NULL, (size_t)page * 2, (k & 1) ? PROT_READ : PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (slots[k] == MAP_FAILED)
                slots[k] = NULL;
        }
    }
    for (unsigned k = 0; k < 64; k++)
        if (slots[k])
            munmap(slots[k], (size_t)page * 2);
    if (block != MAP_FAILED)
        munmap(block, npages * (size_t)page);
    return NULL;
}

static void reply_addr(void *p)
{
    if (p == MAP_FAILED || p == NULL)
        printf("err %s\n", strerror(errno));
    else
        printf("ok 0x%lx\n", (unsigned long)(uintptr_t)p);
}

static void reply_rc(int rc)
{
    if (rc < 0)
        printf("err %s\n", strerror(errno));
    else
        printf("ok\n");
}

/* Decodes "\n" in a path argument so tests can ask for file names with newlines. */
static void decode(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (p[0] == '\\' && p[1] == 'n') {
            *o++ = '\n';
            p++;
        } else if (p[0] == '\\' && p[1] == 's') {
            *o++ = ' ';
            p++;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
}

/* Rewrites the arguments in place, so /proc/PID/cmdline reads text (cut to the room argv has). */
static int retitle(int argc, char **argv, const char *text)
{
    char *end = argv[argc - 1] + strlen(argv[argc - 1]);
    size_t room = (size_t)(end - argv[0]);
    size_t n = strlen(text);
    if (n > room)
        return -1;
    memcpy(argv[0], text, n);
    memset(argv[0] + n, 0, room - n + 1);
    return 0;
}

int main(int argc, char **argv)
{
    char line[8192];
    long page = sysconf(_SC_PAGESIZE);
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* Unbuffered input: an exec must not drop commands already read ahead. */
    setvbuf(stdin, NULL, _IONBF, 0);
    while (fgets(line, sizeof(line), stdin)) {
        char cmd[32] = "", a[4096] = "", b[64] = "", c[64] = "", d[64] = "";
        line[strcspn(line, "\n")] = '\0';
        sscanf(line, "%31s %4095s %63s %63s %63s", cmd, a, b, c, d);
        unsigned long x = strtoul(a, NULL, 0), y = strtoul(b, NULL, 0);
        if (strcmp(cmd, "pid") == 0) {
            printf("ok %d\n", (int)getpid());
        } else if (strcmp(cmd, "map") == 0) {
            reply_addr(mmap(NULL, x, prot_of(b), MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        } else if (strcmp(cmd, "mapat") == 0) {
            reply_addr(mmap((void *)x, y, prot_of(c),
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0));
        } else if (strcmp(cmd, "title") == 0) {
            const char *text = line + strspn(line, " ") + strlen("title");
            text += strspn(text, " ");
            if (retitle(argc, argv, text) == 0)
                printf("ok\n");
            else
                printf("err title too long\n");
        } else if (strcmp(cmd, "sleep") == 0) {
            struct timespec ts = {(time_t)(x / 1000), (long)(x % 1000) * 1000000L};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
            }
            printf("ok\n");
        } else if (strcmp(cmd, "unmap") == 0) {
            reply_rc(munmap((void *)x, y));
        } else if (strcmp(cmd, "protect") == 0) {
            reply_rc(mprotect((void *)x, y, prot_of(c)));
        } else if (strcmp(cmd, "anonname") == 0) {
            /* PR_SET_VMA (0x53564d41), PR_SET_VMA_ANON_NAME (0): named anonymous memory. */
            reply_rc(prctl(0x53564d41, 0, x, y, c));
        } else if (strcmp(cmd, "touch") == 0) {
            for (unsigned long o = 0; o < y; o += (unsigned long)page)
                ((volatile char *)x)[o] = 1;
            printf("ok\n");
        } else if (strcmp(cmd, "mremap") == 0) {
            reply_addr(mremap((void *)x, y, strtoul(c, NULL, 0), 0));
        } else if (strcmp(cmd, "brk") == 0) {
            void *old = sbrk((intptr_t)x);
            reply_addr(old == (void *)-1 ? MAP_FAILED : old);
        } else if (strcmp(cmd, "mapfile") == 0) {
            decode(a);
            int fd = open(a, O_RDWR | O_CREAT | O_TRUNC, 0600);
            if (fd < 0 || ftruncate(fd, (off_t)y) < 0) {
                printf("err %s\n", strerror(errno));
            } else {
                reply_addr(
                    mmap(NULL, y, prot_of(c), d[0] == 's' ? MAP_SHARED : MAP_PRIVATE, fd, 0));
            }
            if (fd >= 0)
                close(fd);
        } else if (strcmp(cmd, "unlink") == 0) {
            decode(a);
            reply_rc(unlink(a));
        } else if (strcmp(cmd, "memfd") == 0) {
            int fd = memfd_create(a, 0);
            if (fd < 0 || ftruncate(fd, (off_t)y) < 0)
                printf("err %s\n", strerror(errno));
            else
                reply_addr(mmap(NULL, y, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
            if (fd >= 0)
                close(fd);
        } else if (strcmp(cmd, "shm") == 0) {
            int id = shmget(IPC_PRIVATE, x, IPC_CREAT | 0600);
            void *p = id < 0 ? (void *)-1 : shmat(id, NULL, 0);
            if (id >= 0)
                shmctl(id, IPC_RMID, NULL); /* goes away when detached */
            reply_addr(p == (void *)-1 ? MAP_FAILED : p);
        } else if (strcmp(cmd, "huge") == 0) {
            reply_addr(mmap(NULL, x, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0));
        } else if (strcmp(cmd, "many") == 0) {
            /* One reservation split by alternating protections: N regions the kernel cannot
             * merge, placed together. */
            char *base = mmap(NULL, x * (unsigned long)page, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (base == MAP_FAILED) {
                reply_addr(MAP_FAILED);
                continue;
            }
            int ok = 1;
            for (unsigned long i = 0; i < x && ok; i += 2)
                ok = mprotect(base + i * (unsigned long)page, (size_t)page, PROT_READ) == 0;
            if (ok) {
                many_base = base;
                many_pages = x;
                reply_addr(base);
            } else
                printf("err %s\n", strerror(errno));
        } else if (strcmp(cmd, "flip") == 0) {
            if (flipper_running) {
                atomic_store(&flip_n, 0);
                pthread_join(flipper, NULL);
                flipper_running = 0;
            }
            if (x > 0 && many_base) {
                atomic_store(&flip_n, (int)x);
                atomic_store(&flip_ms, (int)y);
                flipper_running = pthread_create(&flipper, NULL, flip, NULL) == 0;
            }
            printf("ok\n");
        } else if (strcmp(cmd, "churn") == 0) {
            if (strcmp(a, "on") == 0 && !atomic_load(&churning)) {
                atomic_store(&churning, 1);
                pthread_create(&churner, NULL, churn, NULL);
            } else if (strcmp(a, "off") == 0 && atomic_load(&churning)) {
                atomic_store(&churning, 0);
                pthread_join(churner, NULL);
            }
            printf("ok\n");
        } else if (strcmp(cmd, "leak") == 0) {
            if (atomic_load(&leaking)) {
                atomic_store(&leaking, 0);
                pthread_join(leaker, NULL);
            }
            if (x > 0) {
                leak_size = x;
                leak_ms = y;
                leak_delay_ms = strtoul(c, NULL, 0);
                atomic_store(&leaked, 0);
                atomic_store(&leaking, 1);
                pthread_create(&leaker, NULL, leak, NULL);
                printf("ok\n");
            } else {
                printf("ok %ld\n", atomic_load(&leaked));
            }
        } else if (strcmp(cmd, "threads") == 0) {
            pthread_attr_t attr;
            pthread_attr_init(&attr);
            pthread_attr_setstacksize(&attr, 256 * 1024);
            int ok = 1;
            for (unsigned long i = 0; i < x && ok; i++) {
                pthread_t t;
                ok = pthread_create(&t, &attr, idle_thread, NULL) == 0;
                if (ok) {
                    char name[16];
                    snprintf(name, sizeof(name), "worker-%u", (unsigned)(i + 1) % 1000);
                    pthread_setname_np(t, name);
                }
            }
            pthread_attr_destroy(&attr);
            usleep(100000); /* until each has made its arena */
            printf(ok ? "ok\n" : "err cannot start a thread\n");
        } else if (strcmp(cmd, "exec") == 0) {
            execl("/proc/self/exe", "vm_child", (char *)NULL);
            printf("err %s\n", strerror(errno));
        } else if (strcmp(cmd, "exit") == 0) {
            exit((int)x);
        } else {
            printf("err unknown command '%s'\n", cmd);
        }
    }
    return 0;
}
