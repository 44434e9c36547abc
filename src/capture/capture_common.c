/* Capture helpers that do not depend on the OS. */
#include <stdlib.h>
#include <string.h>

#include "capture/capture.h"
#include "util/xalloc.h"

static const char *const detail_names[] = {"maps", "rollup", "smaps"};

const char *capture_detail_name(int detail)
{
    if (detail < 0 || detail > DETAIL_SMAPS)
        return "maps";
    return detail_names[detail];
}

int capture_detail_parse(const char *name)
{
    for (int i = 0; i <= DETAIL_SMAPS; i++)
        if (strcmp(name, detail_names[i]) == 0)
            return i;
    return -1;
}

static int cmp_pid(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return a < b ? -1 : a > b;
}

size_t capture_pidset_update(struct capture_pidset *known, int64_t *cur, size_t n)
{
    if (n)
        qsort(cur, n, sizeof(*cur), cmp_pid);
    /* Both sorted: one merge finds what the last scan did not have. The new set is cur as it
     * was, so it is kept before the new pids are moved to the front. */
    int64_t *all = xmalloc((n ? n : 1) * sizeof(*all));
    if (n)
        memcpy(all, cur, n * sizeof(*cur));
    size_t fresh = 0, k = 0;
    for (size_t i = 0; i < n; i++) {
        while (k < known->n && known->v[k] < all[i])
            k++;
        if (k < known->n && known->v[k] == all[i])
            continue;
        cur[fresh++] = all[i];
    }
    free(known->v);
    known->v = all;
    known->n = n;
    return fresh;
}

int capture_target_retitle(struct capture_target *t, char *now)
{
    if (!now || !*now || (t->cmdline && strcmp(now, t->cmdline) == 0)) {
        free(now);
        return 0;
    }
    free(t->cmdline);
    t->cmdline = now;
    return 1;
}
