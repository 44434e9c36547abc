/* Shared pieces of the command line: options, error printing, value parsing and formatting. */
#ifndef VMSNAP_CLI_H
#define VMSNAP_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "util/compiler.h"

#include "model/region.h"
#include "store/store.h"
#include "util/err.h"

#define VMSNAP_VERSION "0.1.0"

struct cli {
    const char *db_path; /* -d, $VMSNAP_DB, or ./vmsnap.db */
    int json;            /* -j */
};

/* Exit statuses: 0 success, 2 trouble (diff also uses 1). */
enum { EXIT_OK = 0, EXIT_TROUBLE = 2 };

/*
 * Table output: printf and fputs to stdout, with the controls a terminal would act on (ESC, CR,
 * BEL, ..., the C1 range) and bytes that are not UTF-8 written as "\xNN". Newlines and tabs
 * pass. Everything the CLI prints for people goes through these.
 */
int cli_printf(const char *fmt, ...) VMSNAP_PRINTF(1, 2);
void cli_puts(const char *s);

/* Prints "vmsnap: <message>" on stderr as one line (controls and newlines escaped) and returns
 * EXIT_TROUBLE. */
int cli_fail(const char *fmt, ...) VMSNAP_PRINTF(1, 2);
int cli_fail_err(const struct err *e);

/* Opens the database named by the options; prints the error and returns EXIT_TROUBLE on failure. */
int cli_open_store(const struct cli *cli, int mode, struct store **st);

/* "250ms", "1.5s", "2m", "1h", or a plain number of seconds. Returns 0 or -1. */
int cli_parse_duration_ms(const char *s, int64_t *ms);
/* "4096", "64K", "1.5M", "2G" (binary units; a trailing "B"/"iB" is accepted). Returns 0 or -1. */
int cli_parse_size(const char *s, uint64_t *bytes);
/* A non-negative whole number. Returns 0 or -1. */
int cli_parse_count(const char *s, int64_t *n);
/* A pid: a positive whole number. Returns 0 or -1. */
int cli_parse_pid(const char *s, int64_t *pid);

/* s for a table cell: a newline as "\n", other control bytes and bytes that are not UTF-8 as
 * "\xNN". cli_escape returns it (caller frees); cli_print_escaped writes it. */
char *cli_escape(const char *s, size_t len);
void cli_print_escaped(FILE *f, const char *s, size_t len);
struct site_frame;
/* A frame as a line names it: "function (file:line)", or "function (module+0xOFF)" without a
 * line, or "module+0xOFF" without a function (the module by its file's name). */
void cli_print_frame(FILE *f, const struct site_frame *fr);

/* Formats bytes as "4.0K", "132K", "1.2M", "12G" into out. */
const char *cli_human(uint64_t bytes, char out[16]);
/* Formats a change in bytes as "+1.2M", "-64K" or "0B" into out. */
const char *cli_human_signed(int64_t bytes, char out[24]);

int cmd_snap(struct cli *cli, int argc, char **argv);
int cmd_record(struct cli *cli, int argc, char **argv);
int cmd_list(struct cli *cli, int argc, char **argv);
int cmd_show(struct cli *cli, int argc, char **argv);
int cmd_query(struct cli *cli, int argc, char **argv);
int cmd_import(struct cli *cli, int argc, char **argv);
int cmd_merge(struct cli *cli, int argc, char **argv);
int cmd_diff(struct cli *cli, int argc, char **argv);
int cmd_growth(struct cli *cli, int argc, char **argv);
int cmd_mark(struct cli *cli, int argc, char **argv);
int cmd_report(struct cli *cli, int argc, char **argv);

#endif
