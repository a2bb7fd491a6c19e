/* cli.c: the command-line conventions every tgpt tool follows: messages
 * prefixed with the program's name, sysexits codes, strict number parsing,
 * --version with library versions, atomic output files and terminal-only
 * progress. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <fcntl.h>
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

int cli_getopt(int argc, char **argv, const char *optstring, const struct option *longopts,
	       const char *usage)
{
	/* a leading ':' makes a missing value ':' rather than '?' */
	static char quiet[128];
	if (optstring[0] != ':' && strlen(optstring) + 2 <= sizeof quiet) {
		quiet[0] = ':';
		strcpy(quiet + 1, optstring);
		optstring = quiet;
	}
	opterr = 0;
	int c = getopt_long(argc, argv, optstring, longopts, NULL);
	if (c != '?' && c != ':')
		return c;
	/* the word at fault: a long option as typed (without "=value"), or
	 * the short option's letter */
	const char *word = optind > 0 && optind <= argc ? argv[optind - 1] : "";
	int is_long = strncmp(word, "--", 2) == 0;
	int len = is_long ? (int)strcspn(word, "=") : 2;
	char letter[3] = { '-', (char)optopt, '\0' };
	if (!is_long)
		word = letter;
	if (c == ':')
		cli_usage_error(usage, "option '%.*s' needs a value", len, word);
	cli_usage_error(usage, "unknown option '%.*s'", len, word);
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

const char *plural(uint64_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

/* The descriptor a path names, when it names one of this process's open
 * descriptors (/dev/stdout, /dev/fd/N, ...), else -1. Opening such a path
 * again would start a regular file over from its first byte. */
static int descriptor_of(const char *path)
{
	static const char *const dirs[] = { "/dev/fd/", "/proc/self/fd/", "/proc/thread-self/fd/" };
	if (strcmp(path, "/dev/stdout") == 0)
		return STDOUT_FILENO;
	if (strcmp(path, "/dev/stderr") == 0)
		return STDERR_FILENO;
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		size_t n = strlen(dirs[i]);
		uint64_t fd;
		if (strncmp(path, dirs[i], n) == 0 && parse_u64(path + n, 0, INT32_MAX, &fd) == 0)
			return (int)fd;
	}
	return -1;
}

/* The file a write to path reaches: path with the symbolic links of its
 * last component followed (rename(2) would replace a link, not its target).
 * *fd is set when the way leads to an open descriptor (descriptor_of). A
 * link that leads nowhere gives its target, which the write creates. */
static char *follow_links(const char *path, int *fd)
{
	char *p = xstrdup(path);
	for (int hops = 0; hops < 40; hops++) {
		if ((*fd = descriptor_of(p)) >= 0)
			return p;
		struct stat st;
		char to[4096];
		ssize_t n;
		if (lstat(p, &st) < 0 || !S_ISLNK(st.st_mode) ||
		    (n = readlink(p, to, sizeof to - 1)) < 0)
			return p;
		to[n] = '\0';
		const char *slash = strrchr(p, '/');
		size_t dir = to[0] == '/' || !slash ? 0 : (size_t)(slash - p) + 1;
		char *next = xmalloc(dir + (size_t)n + 1);
		memcpy(next, p, dir);
		memcpy(next + dir, to, (size_t)n + 1);
		free(p);
		p = next;
	}
	return p; /* a loop: opening it says so (ELOOP) */
}

void atomic_open(struct atomic_file *a, const char *path)
{
	memset(a, 0, sizeof *a);
	if (!path || strcmp(path, "-") == 0) {
		a->f = stdout;
		return;
	}
	if (!*path)
		errx(EX_USAGE, "an empty file name names no output");
	a->path = xstrdup(path);
	int fd;
	a->target = follow_links(path, &fd);
	if (fd == STDOUT_FILENO) {
		free(a->path);
		free(a->target);
		memset(a, 0, sizeof *a);
		a->f = stdout;
		return;
	}
	if (fd >= 0) {
		int d = dup(fd);
		if (d < 0 || !(a->f = fdopen(d, "wb")))
			err(EX_CANTCREAT, "%s", path);
		return;
	}
	struct stat st;
	a->existed = stat(a->target, &st) == 0;
	if (a->existed && !S_ISREG(st.st_mode)) {
		a->existed = 0;
		a->f = fopen(a->target, "wb");
		if (!a->f)
			err(EX_CANTCREAT, "%s", path);
		return;
	}
	size_t n = strlen(a->target) + 32;
	a->tmp = xmalloc(n);
	snprintf(a->tmp, n, "%s.tmp.%ld", a->target, (long)getpid());
	/* a stale one of a process that had our id is ours to replace */
	unlink(a->tmp);
	int tfd = open(a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		       a->existed ? st.st_mode & 07777 : 0666);
	if (tfd < 0 || !(a->f = fdopen(tfd, "wb")))
		err(EX_CANTCREAT, "%s: cannot create %s to write it", path, a->tmp);
}

static void atomic_free(struct atomic_file *a)
{
	free(a->path);
	free(a->target);
	free(a->tmp);
	memset(a, 0, sizeof *a);
}

void atomic_check(const char *path)
{
	if (!path || strcmp(path, "-") == 0)
		return;
	int fd;
	char *target = path[0] ? follow_links(path, &fd) : NULL;
	struct stat st;
	if (target && fd < 0 && stat(target, &st) == 0 && !S_ISREG(st.st_mode)) {
		/* opened in place when written: a FIFO would block here */
		if (S_ISDIR(st.st_mode))
			errx(EX_CANTCREAT, "%s: a directory, not a file to write", path);
		if (access(target, W_OK) < 0)
			err(EX_CANTCREAT, "%s", path);
	} else if (!target || fd < 0) {
		struct atomic_file a;
		atomic_open(&a, path); /* exits when the temporary file cannot be made */
		fclose(a.f);
		unlink(a.tmp);
		atomic_free(&a);
	}
	free(target);
}

void atomic_commit(struct atomic_file *a)
{
	if (!a->path) {
		cli_close_out(a->f, "stdout");
		return;
	}
	if (!a->tmp) {
		cli_close_out(a->f, a->path);
		atomic_free(a);
		return;
	}
	int bad = fflush(a->f) != 0 || ferror(a->f) || fsync(fileno(a->f)) != 0;
	if (fclose(a->f) != 0)
		bad = 1;
	a->f = NULL;
	if (bad || rename(a->tmp, a->target) != 0) {
		int e = errno;
		unlink(a->tmp);
		errno = e;
		err(EX_IOERR, "%s: %s", a->path,
		    a->existed ? "not replaced, the old file is kept" : "not written");
	}
	atomic_free(a);
}

/* Keeps what a failed run wrote (n > 0) as TARGET.partial, or removes it.
 * Returns the .partial file's name (to free), or NULL. */
static char *keep_partial(struct atomic_file *a, uint64_t n)
{
	size_t len = strlen(a->target) + sizeof ".partial";
	char *partial = xmalloc(len);
	snprintf(partial, len, "%s.partial", a->target);
	if (n > 0 && rename(a->tmp, partial) == 0)
		return partial;
	unlink(a->tmp);
	free(partial);
	return NULL;
}

void atomic_fail_quietly(struct atomic_file *a, uint64_t n)
{
	if (a->f && a->f != stdout)
		fclose(a->f);
	else if (a->f)
		fflush(a->f);
	if (a->tmp)
		free(keep_partial(a, n));
	atomic_free(a);
}

void atomic_fail(struct atomic_file *a, uint64_t n, const char *what)
{
	if (!a->path) { /* a stream: what was written is the reader's */
		fflush(a->f);
		return;
	}
	if (a->f)
		fclose(a->f);
	a->f = NULL;
	if (!a->tmp) { /* written in place: no old file to keep */
		atomic_free(a);
		return;
	}
	const char *kept = a->existed ? "not replaced, the old file is kept" : "not written";
	char *partial = keep_partial(a, n);
	if (partial)
		warnx("%s: %s; what was written before the error (%llu %s) is in %s", a->path,
		      kept, (unsigned long long)n, what, partial);
	else
		warnx("%s: %s", a->path, kept);
	free(partial);
	atomic_free(a);
}

void atomic_abort(struct atomic_file *a)
{
	atomic_fail(a, 0, NULL);
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
