/* cli.c: the command-line conventions every tgpt tool follows: messages
 * prefixed with the program's name, sysexits codes, strict number parsing,
 * --version with library versions, atomic output files and terminal-only
 * progress. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *progname = "tgpt";

void cli_init(int argc, char **argv)
{
	(void)argc;
	if (argv && argv[0]) {
		const char *slash = strrchr(argv[0], '/');
		progname = slash ? slash + 1 : argv[0];
	}
}

const char *cli_progname(void) { return progname; }

_Noreturn void cli_version(const char *const *libs)
{
	printf("%s (tgpt) %s\n", progname, TGPT_VERSION);
	printf("msgpack-c %s\n", msgpack_version());
	for (; libs && *libs; libs++)
		printf("%s\n", *libs);
	cli_close_out(stdout, "stdout");
	exit(0);
}

_Noreturn void cli_help(const char *usage)
{
	fputs(usage, stdout);
	cli_close_out(stdout, "stdout");
	exit(0);
}

_Noreturn void cli_usage_error(const char *usage, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	/* The first line of the usage text is the synopsis. */
	const char *nl = strchr(usage, '\n');
	fprintf(stderr, "\n%.*s\nTry '%s --help' for more.\n",
		(int)(nl ? nl - usage : (long)strlen(usage)), usage, progname);
	exit(EX_USAGE);
}

int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ') {
		errno = EINVAL;
		return -1;
	}
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (*end) {
		errno = EINVAL;
		return -1;
	}
	if (errno == ERANGE || v < min || v > max) {
		errno = ERANGE;
		return -1;
	}
	*out = v;
	return 0;
}

int parse_double(const char *s, double min, double max, double *out)
{
	char *end;
	if (!s || !*s || *s == ' ') {
		errno = EINVAL;
		return -1;
	}
	errno = 0;
	double v = strtod(s, &end);
	if (*end || isnan(v)) {
		errno = EINVAL;
		return -1;
	}
	if (errno == ERANGE || v < min || v > max) {
		errno = ERANGE;
		return -1;
	}
	*out = v;
	return 0;
}

uint64_t opt_u64(const char *usage, const char *opt, const char *s, uint64_t min, uint64_t max)
{
	uint64_t v;
	if (parse_u64(s, min, max, &v) < 0)
		cli_usage_error(usage, "%s: '%s' is not a whole number from %llu to %llu",
				opt, s, (unsigned long long)min, (unsigned long long)max);
	return v;
}

double opt_double(const char *usage, const char *opt, const char *s, double min, double max)
{
	double v;
	if (parse_double(s, min, max, &v) < 0)
		cli_usage_error(usage, "%s: '%s' is not a number from %g to %g", opt, s, min, max);
	return v;
}

void cli_refuse_tty(int force)
{
	if (!force && isatty(STDOUT_FILENO))
		errx(EX_USAGE, "binary output not written to a terminal; redirect it, or use --force");
}

FILE *cli_open_in(const char *path)
{
	if (!path || strcmp(path, "-") == 0)
		return stdin;
	FILE *f = fopen(path, "rb");
	if (!f)
		err(EX_NOINPUT, "%s", path);
	return f;
}

void cli_close_out(FILE *f, const char *name)
{
	int bad = fflush(f) != 0 || ferror(f);
	if (f != stdout && fclose(f) != 0)
		bad = 1;
	if (bad)
		err(EX_IOERR, "%s", name);
}

void atomic_open(struct atomic_file *a, const char *path)
{
	memset(a, 0, sizeof *a);
	if (!path || strcmp(path, "-") == 0) {
		a->f = stdout;
		return;
	}
	a->path = xstrdup(path);
	struct stat st;
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		/* a device or a pipe (/dev/null, /dev/stdout, a FIFO): written in
		 * place, since renaming a file over it would replace it */
		a->f = fopen(path, "wb");
		if (!a->f)
			err(EX_CANTCREAT, "%s", path);
		return;
	}
	size_t n = strlen(path) + 32;
	a->tmp = xmalloc(n);
	snprintf(a->tmp, n, "%s.tmp.%ld", path, (long)getpid());
	a->f = fopen(a->tmp, "wb");
	if (!a->f)
		err(EX_CANTCREAT, "%s", a->tmp);
}

void atomic_commit(struct atomic_file *a)
{
	if (!a->path) {
		cli_close_out(a->f, "stdout");
		return;
	}
	if (!a->tmp) {
		cli_close_out(a->f, a->path);
		free(a->path);
		a->path = NULL;
		return;
	}
	int bad = fflush(a->f) != 0 || ferror(a->f) || fsync(fileno(a->f)) != 0;
	if (fclose(a->f) != 0)
		bad = 1;
	a->f = NULL;
	if (bad || rename(a->tmp, a->path) != 0) {
		int e = errno;
		unlink(a->tmp);
		errno = e;
		err(EX_IOERR, "%s", a->path);
	}
	free(a->path);
	free(a->tmp);
	a->path = a->tmp = NULL;
}

void atomic_abort(struct atomic_file *a)
{
	if (!a->path)
		return;
	if (a->f)
		fclose(a->f);
	if (a->tmp)
		unlink(a->tmp);
	free(a->path);
	free(a->tmp);
	memset(a, 0, sizeof *a);
}

void format_error(char *err, size_t errlen, const char *path, const char *fmt, va_list ap)
{
	int n = snprintf(err, errlen, "%s: ", path);
	if (n >= 0 && (size_t)n < errlen)
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
}

double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void progress_init(struct progress *p, int quiet)
{
	p->on = !quiet && isatty(STDERR_FILENO);
	p->last = 0;
}

void progress_tick(struct progress *p, const char *fmt, ...)
{
	if (!p->on)
		return;
	double t = now_seconds();
	if (t - p->last < 0.5)
		return;
	p->last = t;
	va_list ap;
	fprintf(stderr, "\r%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\033[K", stderr);
}

void progress_done(struct progress *p)
{
	if (p->on && p->last > 0)
		fputc('\n', stderr);
	p->last = 0;
}
