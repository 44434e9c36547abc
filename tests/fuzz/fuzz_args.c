/*
 * libFuzzer target for what users type: durations (-i, -t), sizes (--min-size), counts, pids,
 * and snapshot selectors resolved against a real database (ids, first, last, last~N, labels).
 * The first byte picks the parser; the rest is the argument. Nothing may crash, and what is
 * accepted must mean what it says.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "store/store.h"

static struct store *st;
static int64_t snaps[3];

/* A database with one target and three snapshots, two of them labelled. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char path[] = "/tmp/vmsnap-fuzz-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        abort();
    close(fd);
    unlink(path);
    struct err e = {0};
    if (store_open(&st, path, STORE_WRITE, &e) < 0) {
        fprintf(stderr, "%s\n", e.msg);
        abort();
    }
    struct capture_target t = {.pid = 42,
                               .start_time = 7,
                               .exe = "/bin/x",
                               .cmdline = "x",
                               .host = "h",
                               .os = "linux",
                               .boot_id = "b",
                               .exec_key = "k"};
    struct store_writer *w = NULL;
    if (store_writer_open(st, &t, &w, &e) < 0)
        abort();
    struct region_list l;
    region_list_init(&l);
    struct region *r = region_list_push(&l);
    r->start = 0x10000;
    r->end = 0x20000;
    memcpy(r->perms, "rw-p", 5);
    const char *labels[] = {"before", NULL, "after"};
    for (int i = 0; i < 3; i++) {
        struct capture_info info = {
            .taken_at_ms = 1700000000000LL + i, .detail = DETAIL_MAPS, .method = "maps"};
        if (store_writer_write(
                w, &l, &info,
                &(struct store_snap_opts){labels[i], STORE_LABEL_EXACT, STORE_NO_MARK, 0, 0, 0}, 0,
                &snaps[i], &e) < 0)
            abort();
    }
    store_writer_close(w);
    region_list_release(&l);
    unlink(path); /* the open connection keeps it */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 256)
        return 0;
    char s[257];
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    int64_t v;
    uint64_t u;
    struct err e = {0};
    switch (data[0] % 5) {
    case 0:
        if (cli_parse_duration_ms(s, &v) == 0 && v < 0)
            abort();
        break;
    case 1:
        (void)cli_parse_size(s, &u);
        break;
    case 2:
        if (cli_parse_count(s, &v) == 0 && v < 0)
            abort();
        break;
    case 3:
        if (cli_parse_pid(s, &v) == 0 && (v <= 0 || v > 0x7fffffff))
            abort();
        break;
    case 4:
        if (store_resolve(st, s, 0, &v, &e) == 0 && v != snaps[0] && v != snaps[1] && v != snaps[2])
            abort();
        break;
    }
    return 0;
}
