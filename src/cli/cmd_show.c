#include <inttypes.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "json/forms.h"

static const struct cli_command show_command = {
    .name = "show",
    .min_args = 1,
    .missing = "which snapshot? give an id, first, last, last~N or a label",
    .max_args = 1,
    .synopsis = "usage: vmsnap show SNAP [--category C] [--target ID]\n\n"
                "Shows the regions of one snapshot, like pmap, with totals by category.\n"
                "SNAP is a snapshot id, first, last, last~N, or a label.\n",
};

struct cat_total {
    uint64_t count, mapped, rss, pss, dirty, swap;
};

/* With per-region figures, pmap -X's: resident, proportional, private dirty and swapped. */
static void print_figures(const struct region *r)
{
    char v[4][16];
    if (!(r->flags & REGION_HAS_MEM)) {
        cli_printf(" %7s %7s %7s %7s", "-", "-", "-", "-");
        return;
    }
    const struct region_extra *x = region_extra(r);
    cli_printf(" %7s %7s %7s %7s", cli_human(x->rss, v[0]), cli_human(x->pss, v[1]),
               cli_human(x->private_dirty, v[2]), cli_human(x->swap, v[3]));
}

static void add(struct cat_total *c, const struct region *r)
{
    const struct region_extra *x = region_extra(r);
    c->count++;
    c->mapped += r->end - r->start;
    c->rss += x->rss;
    c->pss += x->pss;
    c->dirty += x->private_dirty;
    c->swap += x->swap;
}

static int hex_width(const struct region_list *l)
{
    int w = 12;
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].end > 0xffffffffffffULL)
            w = 16;
    return w;
}

/* Writes a path for a table cell: control characters (a newline in a file name) escaped. */
static void print_path(const struct region *r)
{
    if (!r->path)
        return;
    cli_print_escaped(stdout, r->path, r->path_len);
    if (r->flags & REGION_DELETED)
        fputs(" (deleted)", stdout);
}

static void print_table(const struct store_snapshot *s, const struct store_target *t,
                        const struct region_list *l, int category, struct sites_map *made)
{
    struct cat_total tot[CAT_COUNT + 1];
    memset(tot, 0, sizeof(tot));
    int w = hex_width(l), mem = 0;
    char a[16], b[16], pss[16], swap[16];
    for (size_t i = 0; i < l->n; i++)
        mem |= (l->v[i].flags & REGION_HAS_MEM) != 0;
    /* The program's name and the label are anyone's text: a newline in them is "\n". */
    cli_printf("snapshot %lld (target %lld seq %lld)  pid %lld  ", (long long)s->id,
               (long long)s->target_id, (long long)s->seq, (long long)t->pid);
    const char *exe = t->exe ? t->exe : "?";
    cli_print_escaped(stdout, exe, strlen(exe));
    cli_printf("  taken %s", s->taken_at);
    if (s->label) {
        cli_printf("  label ");
        cli_print_escaped(stdout, s->label, strlen(s->label));
    }
    cli_printf("%s\n", s->torn ? "  (torn)" : "");
    cli_printf("%lld regions  mapped %s", (long long)s->region_count,
               cli_human(s->mapped_bytes, a));
    if (s->have_mem)
        cli_printf("  rss %s  pss %s  swap %s", cli_human(s->rss_bytes, b),
                   cli_human(s->pss_bytes, pss), cli_human(s->swap_bytes, swap));
    cli_printf("  (detail %s)\n", s->detail);
    /* What a core file cannot say about a mapping. */
    if (s->method && strncmp(s->method, "import-", 7) == 0 && strstr(s->method, "core"))
        cli_printf("from a core file: shared mappings read as private (p), and [heap], [stack] and "
                   "[vdso] are not named%s\n",
                   strcmp(s->method, "import-gcore") == 0
                       ? "; gdb's gcore leaves out mappings it does not dump (text, [vvar]) and "
                         "writes no-access ranges with other permissions"
                       : "");
    putchar('\n');
    cli_printf("%-*s %-*s %8s %-5s %-7s", w, "START", w, "END", "SIZE", "PERMS", "CATEGORY");
    if (mem)
        cli_printf(" %7s %7s %7s %7s", "RSS", "PSS", "DIRTY", "SWAP");
    cli_printf(" PATH [OWNER]\n");
    for (size_t i = 0; i < l->n; i++) {
        const struct region *r = &l->v[i];
        if (category >= 0 && r->category != category)
            continue;
        uint64_t size = r->end - r->start;
        cli_printf("%0*" PRIx64 " %0*" PRIx64 " %8s %-5s %-7s", w, r->start, w, r->end,
                   cli_human(size, a), r->perms, region_category_name(r->category));
        if (mem)
            print_figures(r);
        fputc(' ', stdout);
        print_path(r);
        if (r->owner && !(r->path && r->path_len == (uint32_t)r->owner_len + 7 &&
                          memcmp(r->path + 6, r->owner, r->owner_len) == 0)) {
            fputs(r->path ? " [" : "[", stdout);
            cli_print_escaped(stdout, r->owner, r->owner_len);
            fputc(']', stdout);
        }
        /* Recorded with --stacks: the code that made it. */
        const struct site_frame *by = sites_map_made_by(made, r->start, r->end);
        if (by) {
            fputs("  <- ", stdout);
            cli_print_frame(stdout, by);
        }
        fputc('\n', stdout);
        add(&tot[r->category], r);
        add(&tot[CAT_COUNT], r);
    }
    cli_printf("\n%-8s %7s %9s", "CATEGORY", "REGIONS", "MAPPED");
    if (mem)
        cli_printf(" %9s %9s %9s %9s", "RSS", "PSS", "DIRTY", "SWAP");
    fputc('\n', stdout);
    for (int c = 0; c <= CAT_COUNT; c++) {
        if (c < CAT_COUNT && tot[c].count == 0)
            continue;
        cli_printf("%-8s %7" PRIu64 " %9s", c == CAT_COUNT ? "total" : region_category_name(c),
                   tot[c].count, cli_human(tot[c].mapped, a));
        if (mem) {
            char v[4][16];
            cli_printf(" %9s %9s %9s %9s", cli_human(tot[c].rss, v[0]), cli_human(tot[c].pss, v[1]),
                       cli_human(tot[c].dirty, v[2]), cli_human(tot[c].swap, v[3]));
        }
        fputc('\n', stdout);
    }
}

static void print_json(const struct store_snapshot *s, const struct store_target *t,
                       const struct region_list *l, int category, struct sites_map *made)
{
    struct json j;
    struct cat_total tot[CAT_COUNT];
    memset(tot, 0, sizeof(tot));
    json_init(&j, stdout);
    json_begin_object(&j);
    json_key(&j, "snapshot");
    json_begin_object(&j);
    json_snapshot_fields(&j, s);
    json_key(&j, "target");
    json_target(&j, t);
    json_end_object(&j);
    json_key(&j, "regions");
    json_begin_array(&j);
    for (size_t i = 0; i < l->n; i++) {
        const struct region *r = &l->v[i];
        if (category >= 0 && r->category != category)
            continue;
        json_begin_object(&j);
        json_region_fields(&j, r);
        if (made)
            json_made_by(&j, "created_by", sites_map_made_by(made, r->start, r->end));
        json_end_object(&j);
        tot[r->category].count++;
        tot[r->category].mapped += r->end - r->start;
        tot[r->category].rss += region_extra(r)->rss;
    }
    json_end_array(&j);
    json_key(&j, "by_category");
    json_begin_object(&j);
    for (int c = 0; c < CAT_COUNT; c++) {
        if (!tot[c].count)
            continue;
        json_key(&j, region_category_name(c));
        json_begin_object(&j);
        json_key(&j, "regions");
        json_uint(&j, tot[c].count);
        json_key(&j, "mapped");
        json_uint(&j, tot[c].mapped);
        json_key(&j, "rss");
        if (strcmp(s->detail, "smaps") == 0)
            json_uint(&j, tot[c].rss);
        else
            json_null(&j);
        json_end_object(&j);
    }
    json_end_object(&j);
    json_end_object(&j);
    json_finish(&j);
}

int cmd_show(struct cli *cli, int argc, char **argv)
{
    int category = -1;
    int64_t target = 0;
    const struct cli_opt opts[] = {
        CLI_OPT_CATEGORY_ROW(&category, "only regions of this category: heap, stack, image, file, "
                                        "anon,\nshm, guard, reserve, kernel"),
        CLI_OPT_TARGET_ROW(&target, "first/last/last~N count within this target"),
        CLI_OPT_TABLE_END,
    };
    struct cli_args args;
    int rc = cli_parse_options(cli, &show_command, opts, argc, argv, &args);
    if (rc)
        return cli_options_exit(rc);
    struct store *st = NULL;
    if (cli_open_store(cli, STORE_READ, &st))
        return EXIT_TROUBLE;
    struct err e = {0};
    struct store_snapshot s = {0};
    struct store_target t = {0};
    struct region_list l;
    region_list_init(&l);
    int64_t id;
    int status = EXIT_TROUBLE;
    struct sites_map *made = NULL;
    if (store_resolve(st, args.v[0], target, &id, &e) < 0 ||
        store_snapshot_get(st, id, &s, &e) < 0 || store_target_get(st, s.target_id, &t, &e) < 0 ||
        store_read_regions(st, id, &l, &e) < 0 ||
        sites_map_open(st, s.target_id, id, &made, &e) < 0) {
        cli_fail_err(&e);
        goto out;
    }
    if (cli->json)
        print_json(&s, &t, &l, category, made);
    else
        print_table(&s, &t, &l, category, made);
    status = fflush(stdout) == 0 ? EXIT_OK : cli_fail("show: cannot write the output");
out:
    sites_map_close(made);
    region_list_release(&l);
    store_snapshot_release(&s);
    store_target_release(&t);
    store_close(st);
    return status;
}
