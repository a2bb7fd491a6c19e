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

/* getopt_long(3) that says itself what is wrong, once, as a usage error
 * with the program's name: "unknown option '--frob'", "option '-o' needs
 * a value" (getopt's own messages name argv[0] as typed, and the tool's
 * usage error came after them). */
struct option;
int cli_getopt(int argc, char **argv, const char *optstring, const struct option *longopts,
	       const char *usage);

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

/* An output file that a failed run never damages. atomic_open(PATH):
 * - "-" is stdout; so are /dev/stdout, /dev/fd/1 and /proc/self/fd/1, and
 *   /dev/fd/N is descriptor N: written as they are (offset, append mode),
 *   never reopened, truncated or replaced;
 * - a PATH that is, or leads by symbolic links to, something other than a
 *   regular file (/dev/null, a FIFO, a terminal) is written in place, since
 *   renaming a file over it would replace it;
 * - any other PATH is written to a temporary file beside the file PATH leads
 *   to (TARGET.tmp.PID; a symbolic link stays a link), which atomic_commit
 *   renames onto it: an existing file is replaced only then, complete.
 * A run that fails calls atomic_fail instead: PATH stays as it was (the old
 * file, or none), and a message says which; what the run wrote before the
 * failure, when there is any (n > 0 WHAT, e.g. "flows"), is kept as
 * TARGET.partial. Messages name PATH as given. */
struct atomic_file {
	FILE *f;
	char *path;   /* as given, for messages; NULL: stdout */
	char *target; /* the file written: PATH after its symbolic links */
	char *tmp;    /* the temporary file; NULL: written in place */
	int existed;  /* the target was a regular file before */
};
void atomic_open(struct atomic_file *a, const char *path);
/* Exits EX_CANTCREAT naming PATH unless atomic_open could write it now: a
 * run that writes its output only at its end (a checkpoint) checks first. */
void atomic_check(const char *path);
void atomic_commit(struct atomic_file *a);
void atomic_fail(struct atomic_file *a, uint64_t n, const char *what);
/* atomic_fail saying nothing: the caller says it once for several files. */
void atomic_fail_quietly(struct atomic_file *a, uint64_t n);
/* atomic_fail with nothing kept. */
void atomic_abort(struct atomic_file *a);
/* "1 flow", "2 flows": WHAT's singular and plural. */
const char *plural(uint64_t n, const char *one, const char *many);

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
