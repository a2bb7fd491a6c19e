/* cli.h: what every tgpt tool shares on the command line: messages with the
 * program's name (glibc's err(3) family), sysexits codes, number parsing,
 * --version, the refusal to write binary to a terminal, progress on a
 * terminal only, and (alloc.h) allocation that exits when memory runs out. */
#ifndef TGPT_CLI_H
#define TGPT_CLI_H

#include <err.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <sysexits.h>

#include "alloc.h"   /* xmalloc, xcalloc, xrealloc, xstrdup, grow */

#define TGPT_VERSION "0.1.0"

/* Sets the program name that err(3) and our messages use. */
void cli_init(int argc, char **argv);
const char *cli_progname(void);

/* Prints "PROG (tgpt) VERSION" and then one line per library the tool links
 * (msgpack-c always; each tool adds its own, e.g. pcap_lib_version()). The
 * list ends with NULL. Exits 0. */
_Noreturn void cli_version(const char *const *libs);

/* Prints the usage text to stdout and exits 0 (for -h/--help). */
_Noreturn void cli_help(const char *usage);
/* Prints "PROG: MSG" and the short usage to stderr and exits EX_USAGE. */
_Noreturn void cli_usage_error(const char *usage, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Strict numbers: the whole string, in [min, max]. Return 0 on success, -1 on
 * a malformed or out-of-range string (errno says which: EINVAL or ERANGE). */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
int parse_double(const char *s, double min, double max, double *out);
/* parse_u64 or a usage error naming the option. */
uint64_t opt_u64(const char *usage, const char *opt, const char *s, uint64_t min, uint64_t max);
double opt_double(const char *usage, const char *opt, const char *s, double min, double max);

/* Exits EX_USAGE unless stdout is not a terminal or force is set: binary
 * msgpack or pcap on a terminal is never what the user meant. */
void cli_refuse_tty(int force);

/* Opens PATH for reading, "-" meaning stdin; exits EX_NOINPUT on failure. */
FILE *cli_open_in(const char *path);
/* Flushes and closes an output stream; exits EX_IOERR naming it on error. */
void cli_close_out(FILE *f, const char *name);

/* Atomic output file: writes go to PATH.tmp.PID, renamed onto PATH by
 * atomic_commit. With PATH "-" it is stdout and commit only flushes; a PATH
 * that is not a regular file (/dev/null, a FIFO) is written in place. */
struct atomic_file {
	FILE *f;
	char *path, *tmp;
};
void atomic_open(struct atomic_file *a, const char *path);
void atomic_commit(struct atomic_file *a);
void atomic_abort(struct atomic_file *a);

/* Progress on stderr, only when it is a terminal and not quiet; at most two
 * updates a second, each overwriting the last. */
struct progress {
	int on;
	double last;
};
void progress_init(struct progress *p, int quiet);
void progress_tick(struct progress *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void progress_done(struct progress *p);

/* Formats "PATH: message" into err (truncated to errlen): the error
 * buffers that readers of shards and checkpoints fill for their callers. */
void format_error(char *err, size_t errlen, const char *path, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));

double now_seconds(void);

#endif
