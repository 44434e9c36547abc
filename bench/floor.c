/*
 * The floor: the least a tool must do to know what vmsnap knows -- read the same files, and
 * nothing else. Each round reads every file named whole (read(2) into one buffer, as vmsnap's
 * own reader does), so `floor -n 101` less `floor -n 1` is what 100 rounds of reading cost.
 *   floor [-n ROUNDS] [-i MS] FILE...
 * A FILE may name a process's file (/proc/PID/maps, /proc/PID/stat, /proc/PID/smaps_rollup)
 * or a saved dump. -i sleeps MS milliseconds between rounds (record's interval, for its CPU).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char *buf;
static size_t cap = 1 << 20;

static int read_whole(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    for (;;) {
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf)
                abort();
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    long rounds = 1, interval_ms = 0;
    int opt;
    while ((opt = getopt(argc, argv, "n:i:")) != -1) {
        if (opt == 'n')
            rounds = strtol(optarg, NULL, 10);
        else if (opt == 'i')
            interval_ms = strtol(optarg, NULL, 10);
        else
            return 2;
    }
    if (optind >= argc) {
        fprintf(stderr, "usage: floor [-n ROUNDS] [-i MS] FILE...\n");
        return 2;
    }
    buf = malloc(cap);
    if (!buf)
        return 1;
    for (long r = 0; r < rounds; r++) {
        if (r && interval_ms) {
            struct timespec ts = {interval_ms / 1000, (interval_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        for (int i = optind; i < argc; i++)
            if (read_whole(argv[i]) < 0) {
                fprintf(stderr, "floor: %s: %s\n", argv[i], strerror(errno));
                return 1;
            }
    }
    free(buf);
    return 0;
}
