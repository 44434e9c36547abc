#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "json/forms.h"
#include "util/xalloc.h"

static const struct cli_command list_command = {
    .name = "list",
    .synopsis = "usage: vmsnap list [--target ID]\n\n"
                "Lists the targets (process instances) in the database and their snapshots.\n",
};

/* A target as the tree shows it. */
struct node {
    int64_t id, parent, pid;
    char *cmd; /* owned, escaped for the terminal */
};

struct list_ctx {
    struct json j;
    int json;
    int ntargets;
    struct node *nodes;
    size_t nnodes, cap;
    int forked; /* some target names a parent */
};

static int on_target(void *ctx, const struct store_target *t)
{
    struct list_ctx *c = ctx;
    if (c->json) {
        json_begin_object(&c->j);
        json_key(&c->j, "id");
        json_int(&c->j, t->id);
        json_key(&c->j, "pid");
        json_int(&c->j, t->pid);
        json_key(&c->j, "start_time");
        json_uint(&c->j, t->start_time);
        json_text(&c->j, "exe", t->exe, t->exe ? strlen(t->exe) : 0);
        json_text(&c->j, "cmdline", t->cmdline, t->cmdline ? strlen(t->cmdline) : 0);
        json_key(&c->j, "host");
        json_string(&c->j, t->host);
        json_key(&c->j, "os");
        json_string(&c->j, t->os);
        json_key(&c->j, "first_seen");
        json_string(&c->j, t->first_seen);
        json_key(&c->j, "parent_target_id");
        if (t->parent_target_id)
            json_int(&c->j, t->parent_target_id);
        else
            json_null(&c->j);
        json_key(&c->j, "snapshots");
        json_begin_array(&c->j);
    } else {
        const char *cmd =
            t->cmdline && *t->cmdline ? t->cmdline : (t->exe ? t->exe : "(unknown command)");
        cli_printf("%starget %lld  pid %lld  %s  %s  first seen %s", c->ntargets ? "\n" : "",
                   (long long)t->id, (long long)t->pid, t->os ? t->os : "?",
                   t->host ? t->host : "?", t->first_seen ? t->first_seen : "?");
        if (t->parent_target_id)
            cli_printf("  forked by target %lld", (long long)t->parent_target_id);
        cli_printf("\n  ");
        c->nodes = xgrow(c->nodes, &c->cap, c->nnodes + 1, sizeof(*c->nodes));
        c->nodes[c->nnodes++] =
            (struct node){t->id, t->parent_target_id, t->pid, cli_escape(cmd, strlen(cmd))};
        c->forked |= t->parent_target_id != 0;
        cli_print_escaped(stdout, cmd, strlen(cmd));
        fputc('\n', stdout);
        cli_printf("  %6s %5s  %-24s  %-16s %8s %9s %9s\n", "ID", "SEQ", "TAKEN_AT", "LABEL",
                   "REGIONS", "MAPPED", "RSS");
    }
    c->ntargets++;
    return 0;
}

static int on_snapshot(void *ctx, const struct store_snapshot *s)
{
    struct list_ctx *c = ctx;
    if (c->json) {
        json_begin_object(&c->j);
        json_snapshot_fields(&c->j, s);
        json_end_object(&c->j);
        return 0;
    }
    char mapped[16], rss[16];
    cli_printf("  %6lld %5lld  %-24s  %-16s %8lld %9s %9s%s\n", (long long)s->id, (long long)s->seq,
               s->taken_at, s->label ? s->label : "-", (long long)s->region_count,
               cli_human(s->mapped_bytes, mapped), s->have_mem ? cli_human(s->rss_bytes, rss) : "-",
               s->torn ? "  (torn)" : "");
    return ferror(stdout) ? -1 : 0;
}

/* The parent a target hangs under in the tree: 0 when it has none in the listing. */
static int64_t tree_parent(const struct list_ctx *c, const struct node *n)
{
    for (size_t k = 0; k < c->nnodes && n->parent; k++)
        if (c->nodes[k].id == n->parent)
            return n->parent;
    return 0;
}

/* Prints the targets under parent (0: the roots), depth levels in. */
static void print_tree(const struct list_ctx *c, int64_t parent, int depth)
{
    for (size_t i = 0; i < c->nnodes; i++) {
        const struct node *n = &c->nodes[i];
        if (tree_parent(c, n) != parent)
            continue;
        cli_printf("  %*s%s%lld  pid %lld  %.60s\n", depth ? (depth - 1) * 3 : 0, "",
                   depth ? "\u2514\u2500 " : "", (long long)n->id, (long long)n->pid, n->cmd);
        print_tree(c, n->id, depth + 1);
    }
}

static int on_target_end(void *ctx, const struct store_target *t)
{
    struct list_ctx *c = ctx;
    (void)t;
    if (c->json) {
        json_end_array(&c->j);
        json_end_object(&c->j);
    }
    return 0;
}

int cmd_list(struct cli *cli, int argc, char **argv)
{
    int64_t target = 0;
    const struct cli_opt opts[] = {
        CLI_OPT_TARGET_ROW(&target, "only this target"),
        CLI_OPT_TABLE_END,
    };
    struct cli_args args;
    int rc = cli_parse_options(cli, &list_command, opts, argc, argv, &args);
    if (rc)
        return cli_options_exit(rc);
    struct store *st = NULL;
    if (cli_open_store(cli, STORE_READ, &st))
        return EXIT_TROUBLE;
    struct err e = {0};
    struct store_target t;
    if (target) {
        /* Refuse an unknown target before any output starts. */
        if (store_target_get(st, target, &t, &e) < 0) {
            store_close(st);
            return cli_fail_err(&e);
        }
        store_target_release(&t);
    }
    struct list_ctx c;
    memset(&c, 0, sizeof(c));
    c.json = cli->json;
    struct store_list_cb cb = {on_target, on_snapshot, on_target_end, &c};
    if (c.json) {
        json_init(&c.j, stdout);
        json_begin_object(&c.j);
        json_key(&c.j, "targets");
        json_begin_array(&c.j);
    }
    rc = store_list(st, target, &cb, &e);
    store_close(st);
    if (rc < 0) {
        if (c.json)
            fputc('\n', stdout);
        return cli_fail_err(&e);
    }
    if (c.json) {
        json_end_array(&c.j);
        json_end_object(&c.j);
        json_finish(&c.j);
    } else if (c.ntargets == 0) {
        cli_printf("no snapshots in '%s' yet\n", cli->db_path);
    } else if (c.forked) {
        cli_printf("\nprocess tree (target, pid, command):\n");
        print_tree(&c, 0, 0);
    }
    for (size_t i = 0; i < c.nnodes; i++)
        free(c.nodes[i].cmd);
    free(c.nodes);
    if (fflush(stdout) != 0)
        return cli_fail("list: cannot write the output");
    return EXIT_OK;
}
