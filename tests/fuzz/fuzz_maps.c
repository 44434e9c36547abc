/*
 * libFuzzer target for the pure parsers of /proc/PID/maps, smaps and smaps_rollup text, and for
 * import's reading of a saved map (format detection included). Any input must parse or fail
 * with a message naming its line, never crash; what parses must be a list the rest of vmsnap
 * can take: classified, sorted and sanitised without trouble. An import that succeeds is
 * sorted and disjoint already.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "capture/maps_parse.h"
#include "import/import.h"

static void check_list(struct region_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        const struct region *r = &l->v[i];
        if (r->path && strlen(r->path) > r->path_len)
            abort(); /* a name is its bytes; an embedded NUL only shortens what strlen sees */
        if (r->perms[4] != '\0')
            abort();
    }
    region_list_classify(l);
    region_list_sanitize(l);
    if (region_list_first_disorder(l) != l->n)
        abort(); /* the parser refuses empty ranges; sanitising leaves a sorted, disjoint list */
    (void)region_list_mapped(l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct region_list l;
    struct err e = {0};
    struct mem_totals t;
    region_list_init(&l);
    if (maps_parse((const char *)data, size, &l, &e) == 0)
        check_list(&l);
    else if (e.code != ERR_PARSE || strncmp(e.msg, "line ", 5) != 0)
        abort();
    region_list_clear(&l);
    if (smaps_parse((const char *)data, size, &l, &e) == 0)
        check_list(&l);
    else if (e.code != ERR_PARSE)
        abort();
    memset(&t, 0, sizeof(t));
    (void)rollup_parse((const char *)data, size, &t, &e);
    region_list_release(&l);
    struct import_map m;
    if (import_parse((const char *)data, size, IMPORT_AUTO, &m, &e) == 0) {
        if (region_list_first_disorder(&m.regions) != m.regions.n || m.regions.n == 0)
            abort();
    } else if (e.code != ERR_PARSE && e.code != ERR_UNSUPPORTED) {
        abort();
    }
    import_map_release(&m);
    return 0;
}
